#!/bin/sh
# build-deb.sh UWSGI PLUGINDIR BUILD VERSION - what `make deb` runs: a Debian
# package of what `make all` builds for the uWSGI binary UWSGI (absolute path),
# whose plugin dir is PLUGINDIR, as BUILD/netreload_VERSION_ARCH.deb.
#
# Debian's tools do the work: dpkg-buildpackage and debhelper with
# packaging/debian/ as debian/, in a copy of the source tree under BUILD/deb/
# (they write into debian/ and put the .deb next to the tree), so the tree
# stays clean. uwsgi-dev's dh_uwsgi adds Depends: uwsgi-abi-<md5 of
# `uwsgi-core --dot-h`>, the way Debian's uwsgi-plugin-* packages pin the
# uWSGI build; `uwsgi-core` is made to mean UWSGI here, and the result is
# checked. lintian must report no error.
set -eu

die() {
	echo "netreload: error: make deb: $*" >&2
	exit 1
}

[ $# -eq 4 ] || die "usage: build-deb.sh UWSGI PLUGINDIR BUILD VERSION"
uwsgi=$1 plugindir=$2 build=$3 version=$4
src=$(pwd)

[ -n "$uwsgi" ] && [ -x "$uwsgi" ] ||
	die "cannot find uWSGI: install it with make deps (Debian's uwsgi-core) or name one: make deb UWSGI=/path/to/uwsgi"
case "$plugindir" in
/*) ;;
*) die "$uwsgi has the plugin dir '$plugindir', not an absolute path: a package cannot install into it" ;;
esac
[ -n "$version" ] || die "no version: client/main.c defines no NR_VERSION"

# One version: NR_VERSION in client/main.c; the man page and NEWS.md must agree.
grep -q "^\.TH NETRELOAD 1 .*\"netreload $version\"" client/netreload.1 ||
	die "client/netreload.1 (.TH) does not say netreload $version like client/main.c"
news=$(sed -n 's/^## \([^ ]*\).*/\1/p' NEWS.md | head -n 1)
[ "$news" = "$version" ] || die "NEWS.md's first release is '$news', client/main.c says $version"

abi=$("$uwsgi" --dot-h | md5sum | cut -d' ' -f1)
arch=$(dpkg --print-architecture)
work=$build/deb
tree=$work/netreload-$version
rm -rf "$work"
mkdir -p "$tree" "$work/bin"
work=$(cd "$work" && pwd)
tree=$work/netreload-$version

# The sources: what git tracks plus untracked files it does not ignore (the
# build dir and uWSGI's source archives left out), or the whole tree outside git.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files --cached --others --exclude-standard |
		while IFS= read -r f; do
			case "$f" in third_party/* | "${build#./}"/*) continue ;; esac
			[ -f "$f" ] && printf '%s\n' "$f"
		done | tar -c -T - -f - | tar -x -C "$tree"
else
	tar -c --exclude-vcs --exclude-vcs-ignores --exclude=./build --exclude='./build-*' \
		--exclude=./third_party --exclude="./${build#./}" --exclude=.vagrant \
		--exclude=.pytest_cache --exclude=__pycache__ -f - . | tar -x -C "$tree"
fi
cp -R packaging/debian "$tree/debian"

# Who built it: DEBFULLNAME/DEBEMAIL as for dch, else git's user.
name=${DEBFULLNAME:-$(git config user.name 2>/dev/null || echo "netreload builder")}
email=${DEBEMAIL:-$(git config user.email 2>/dev/null || echo "root@localhost")}
maint="$name <$email>"
sed -i "s|@MAINTAINER@|$maint|" "$tree/debian/control" "$tree/debian/copyright"
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
cat >"$tree/debian/changelog" <<EOF
netreload ($version) unstable; urgency=medium

  * netreload $version, see NEWS.md.gz. Built by make deb for
    $("$uwsgi" --version) ($uwsgi, uwsgi-abi-$abi).

 -- $maint  $date
EOF

# Nothing of the calling make reaches the one in the copy (its BUILD would make
# `debian/rules clean` remove this very tree), and the package gets Debian's build
# flags (adjust them the Debian way: DEB_CFLAGS_APPEND=..., DEB_BUILD_OPTIONS=nocheck).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES BUILD CFLAGS CPPFLAGS LDFLAGS
# dh_uwsgi runs `uwsgi-core --dot-h` from PATH.
ln -s "$uwsgi" "$work/bin/uwsgi-core"
(cd "$tree" && PATH="$work/bin:$PATH" UWSGI="$uwsgi" PLUGINDIR="$plugindir" \
	dpkg-buildpackage -b -us -uc) || die "dpkg-buildpackage failed (the tree is in $tree)"

deb=netreload_${version}_${arch}.deb
depends=$(dpkg-deb -f "$work/$deb" Depends)
case "$depends" in
*"uwsgi-abi-$abi"*) ;;
*) die "$deb does not depend on uwsgi-abi-$abi (Depends: $depends): is $plugindir Debian's /usr/lib/uwsgi/plugins?" ;;
esac

echo "netreload: lintian $deb"
lintian --fail-on error "$work/$deb" || die "lintian reports errors in $work/$deb"

cp "$work/$deb" "$build/$deb"
echo "netreload: built $build/$deb for $uwsgi (Depends: $depends)"
