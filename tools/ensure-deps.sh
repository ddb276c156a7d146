#!/bin/sh
# ensure-deps.sh PKG... - install the Debian packages that are missing, and only those.
set -eu
missing=""
for p in "$@"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in *" installed") ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
echo "netreload: installing missing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "netreload: error: need root to install:$missing (run: apt-get install$missing)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt-get on the machine holds the lock: wait for it (up to 10 min; a failing update is retried for 2 min)
# instead of failing the build.
wait_lock="-o DPkg::Lock::Timeout=600"
tries=0
until $SUDO apt-get $wait_lock update -q >/dev/null; do
	tries=$((tries + 1))
	[ $tries -lt 12 ] || exit 1
	sleep 10
done
# shellcheck disable=SC2086
$SUDO apt-get $wait_lock install -y -q --no-install-recommends $missing >/dev/null
