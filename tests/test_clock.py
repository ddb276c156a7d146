"""The master reads the clock more than once per pass (its cycle, the listener's
drain, the reload's tick). Every timestamp taken in a pass must be compared with
a reading no older than itself: a connection accepted at 1001 ms and checked for
its read timeout "at 1000 ms" is 2^64 ms old, and was closed unanswered
("no complete request within 5000 ms") a few times in a hundred CI runs.

tests/shim/tickclock.c makes every monotonic reading in uWSGI at least 1 ms
later than the one before, so the boundary falls between any two reads."""
import pytest

from conftest import run_client, tickclock_env


def answered(server):
    r = run_client("status", "--timeout", "5", server.target, timeout=20)
    return r.returncode, r.stdout + r.stderr


def test_fresh_connections_are_answered_whatever_the_clock_did(servers):
    server = servers(env=tickclock_env())
    for i in range(10):
        rc, out = answered(server)
        assert rc == 0 and "generation 0" in out, f"status #{i}: {out}\n{server.log_text()}"
    assert "no complete request" not in server.log_text()


@pytest.mark.parametrize("mode", ["graceful", "workers"])
def test_reload_goes_live_whatever_the_clock_did(servers, mode):
    server = servers(mode=mode, lazy=mode == "workers", env=tickclock_env())
    for gen in (1, 2):
        server.set_version(f"v{gen + 1}")
        r = server.ping()
        assert r.returncode == 0 and "live in" in r.stdout and f"generation {gen};" in r.stdout, \
            r.stdout + r.stderr + server.log_text()
        assert server.get() == f"v{gen + 1}"
        rc, out = answered(server)
        assert rc == 0 and f"generation {gen}" in out, out
