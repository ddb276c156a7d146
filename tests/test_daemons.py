"""--attach-daemon across netreload's reloads.

uWSGI stops "dumb" daemons before a graceful (re-exec) or brutal reload and the
next master starts them again. netreload stops them itself first, polling every
few ms instead of uWSGI's 1 s sleep (bench/configs.py measures that); these
tests hold it to the rest: the old daemon is gone, a new one runs, and a daemon
that ignores its stop signal is still killed after reload-mercy."""
import os
import time

import pytest

from conftest import children_of, pid_alive, wait_for


def daemon_pids(server, tag):
    """Pids of the master's children that run a command holding tag: its daemons
    (uWSGI forks each and runs it through /bin/sh -c; workers hold the tag in
    their uWSGI argv, not as the command)."""
    pids = []
    for p in children_of(server.pid):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if b"uwsgi" not in os.path.basename(argv[0]) and tag.encode() in b" ".join(argv):
                pids.append(p)
        except OSError:
            pass
    return pids


def reload_with_daemon(server, tag):
    """Wait for the one daemon tagged TAG, reload to v2, and return the daemon's old pid."""
    wait_for(lambda: daemon_pids(server, tag), 10, what="the daemon to start")
    [old] = daemon_pids(server, tag)
    server.set_version("v2")
    r = server.ping()
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr + server.log_text()
    assert server.get() == "v2"
    return old


@pytest.mark.parametrize("mode", ["graceful", "brutal"])
def test_daemon_is_restarted_by_the_reload(servers, tmp_path, mode):
    tag = f"{os.getpid()}{time.monotonic_ns() % 10**9}"
    server = servers(mode=mode, extra=["--attach-daemon", f"sleep 36{tag}"])
    old = reload_with_daemon(server, tag)
    wait_for(lambda: not pid_alive(old), 10, what=f"the old daemon {old} to be gone")
    wait_for(lambda: daemon_pids(server, tag), 10, what="the next master to start the daemon again")
    assert old not in daemon_pids(server, tag)


def test_daemon_that_ignores_its_stop_signal_is_killed_after_mercy(servers):
    tag = f"{os.getpid()}{time.monotonic_ns() % 10**9}"
    script = f"trap '' TERM HUP INT; while :; do sleep 1; done # {tag}"
    server = servers(extra=["--attach-daemon", script, "--reload-mercy", "1"])
    old = reload_with_daemon(server, tag)
    wait_for(lambda: not pid_alive(old), 10, what=f"the stubborn daemon {old} to be killed")
    assert "did not die in time, killing" in server.log_text()
