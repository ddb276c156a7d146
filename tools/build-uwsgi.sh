#!/bin/sh
# build-uwsgi.sh TARBALL KIND OUTDIR - build a uWSGI from an unmodified source
# archive (third_party/uwsgi/) for the compatibility matrix (make test-compat).
#
#   KIND pip     the way `pip install uwsgi` builds it: the default profile,
#                Python compiled into the binary, plugin dir "."
#   KIND plugin  the core profile, and python3_plugin.so next to the binary
#
# OUTDIR/uwsgi is the result. It is built with Debian's /usr/bin/python3: a
# pyenv python3 first on PATH would give a Python that does not match Debian's
# python3-* modules the tests use. A build whose archive and kind have not
# changed (OUTDIR/.built) is reused.
set -eu
tarball=$1 kind=$2 out=$3
py=/usr/bin/python3
stamp="$(sha256sum "$tarball" | cut -d' ' -f1) $kind"
if [ -x "$out/uwsgi" ] && [ "$(cat "$out/.built" 2>/dev/null)" = "$stamp" ]; then
	echo "build-uwsgi: $out/uwsgi is up to date ($("$out/uwsgi" --version))"
	exit 0
fi
rm -rf "$out"
mkdir -p "$out"
tar -xzf "$tarball" -C "$out" --strip-components=1
log="$out/build.log"
echo "build-uwsgi: building $(basename "$tarball") ($kind) in $out (log: $log)"
t0=$(date +%s)
case $kind in
pip)
	(cd "$out" && $py uwsgiconfig.py --build default) >"$log" 2>&1 ;;
plugin)
	(cd "$out" && $py uwsgiconfig.py --build core &&
		$py uwsgiconfig.py --plugin plugins/python core python3) >"$log" 2>&1 ;;
*)
	echo "build-uwsgi: unknown kind '$kind' (pip or plugin)" >&2
	exit 2 ;;
esac || { tail -n 30 "$log" >&2; echo "build-uwsgi: build failed, see $log" >&2; exit 1; }
echo "$stamp" >"$out/.built"
echo "build-uwsgi: $("$out/uwsgi" --version) built in $(($(date +%s) - t0)) s"
