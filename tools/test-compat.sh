#!/bin/sh
# test-compat.sh SRCDIR OUTDIR TESTS... - the compatibility matrix (make test-compat).
#
# Builds uWSGI 2.0.30 the way pip builds it and master with its python3 plugin
# from the archives in SRCDIR (tools/build-uwsgi.sh), the plugin and the unit
# tests for each (make UWSGI=... BUILD=OUTDIR/uwsgi-V/netreload), then runs the
# given tests against both at once: the tests mostly wait on uWSGI, so two runs
# side by side take little longer than one. Each run's output is printed in
# full when both are done; any failure fails the matrix.
set -eu
src=$1 out=$2
shift 2
make=${MAKE:-make}
builds=${COMPAT_BUILDS:-2.0.30:pip master:plugin}
for b in $builds; do
	v=${b%%:*} kind=${b#*:} u="$out/uwsgi-$v"
	sh tools/build-uwsgi.sh "$src/uwsgi-$v.tar.gz" "$kind" "$u"
	$make --no-print-directory -s UWSGI="$u/uwsgi" BUILD="$u/netreload" all unit \
		"$u/netreload/slowfork.so" "$u/netreload/tickclock.so" >"$u/unit.log" 2>&1 ||
		{ cat "$u/unit.log"; echo "test-compat: building or unit tests failed for $v"; exit 1; }
	echo "test-compat: uWSGI $v ($kind build): plugin built, $(grep -c ' passed, 0 failed' "$u/unit.log") unit test binaries pass"
done
# the builds run side by side, so each one's tests run one at a time (PYTEST_JOBS=)
pids=""
for b in $builds; do
	v=${b%%:*} u="$out/uwsgi-$v"
	echo "test-compat: uWSGI $v: pytest $* (log: $u/pytest.log)"
	$make --no-print-directory UWSGI="$u/uwsgi" BUILD="$u/netreload" pytest \
		PYTEST_ARGS="$*" PYTEST_JOBS= >"$u/pytest.log" 2>&1 &
	pids="$pids $!"
done
rc=0
for p in $pids; do
	wait "$p" || rc=1
done
for b in $builds; do
	v=${b%%:*} kind=${b#*:} u="$out/uwsgi-$v"
	echo "===== uWSGI $v ($kind build) ====="
	cat "$u/pytest.log"
done
for b in $builds; do
	v=${b%%:*} kind=${b#*:} u="$out/uwsgi-$v"
	echo "test-compat: uWSGI $v ($kind build): $(grep -E '^=*.* (passed|failed|error)' "$u/pytest.log" | tail -n 1 | tr -d '=')"
done
exit $rc
