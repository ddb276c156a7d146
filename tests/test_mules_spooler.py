"""Mules and the spooler across netreload's reloads (issue 11).

A reload that only replaces workers (workers, chain, and every mode under
--lazy) leaves the mules and the spooler running, with the code they started
with: "live" must say so (`old=mules,spooler` in the reply, a note from the
client, "old" in --json). A graceful reload re-execs the master, which starts
them again with the new code, so nothing is said. Real uWSGI with a mule script
(--mule=FILE, run by the python3 plugin) that records the version it loaded,
and a real spooler; 127.0.0.1 only.
"""
import json
import re

import pytest

from conftest import APP_TEMPLATE, atomic_write, pid_alive, wait_for

MULE = '''\
import os, time
import shared
with open("mule.tmp", "w") as f:
    f.write("%d %s" % (os.getpid(), shared.VERSION))
os.replace("mule.tmp", "mule.txt")
while True:
    time.sleep(1)
'''


def mule_says(srv):
    """(pid, version) the running mule wrote, or None before it wrote."""
    try:
        pid, version = (srv.dir / "mule.txt").read_text().split()
    except (OSError, ValueError):
        return None
    return int(pid), version


def spooler_pids(srv):
    return [int(p) for p in re.findall(r"spawned the uWSGI spooler on dir \S+ with pid (\d+)",
                                       srv.log_text())]


def start(servers, mode, lazy):
    srv = servers(start=False, mode=mode, lazy=lazy,
                  extra=["--mule=mule.py", "--spooler", "spool"])
    (srv.dir / "spool").mkdir()
    (srv.dir / "shared.py").write_text("VERSION = 'v1'\n")
    (srv.dir / "mule.py").write_text(MULE)
    srv.start()
    wait_for(lambda: mule_says(srv), 15, what="the mule to start")
    wait_for(lambda: spooler_pids(srv), 15, what="the spooler to start")
    return srv


def save(srv, version):
    atomic_write(srv.dir / "shared.py", f"VERSION = {version!r}\n")
    srv.set_version(version)


@pytest.mark.parametrize("mode", ["workers", "chain"])
def test_worker_modes_say_mules_and_spooler_run_old_code(servers, mode):
    srv = start(servers, mode, lazy=True)
    mule = mule_says(srv)
    [spooler] = spooler_pids(srv)
    save(srv, "v2")
    r = srv.ping()
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
    assert srv.get() == "v2"
    assert "mules and the spooler still run the old code" in r.stdout, r.stdout
    # what the note says is true: the same mule, with the code it loaded first
    assert mule_says(srv) == mule and pid_alive(mule[0]) and pid_alive(spooler)
    save(srv, "v3")
    r = srv.ping("--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["old"] == ["mules", "spooler"], r.stdout
    assert "netreload: still running the old code: mules,spooler" in srv.log_text()


def test_graceful_restarts_them_and_says_nothing(servers):
    srv = start(servers, "graceful", lazy=False)
    old_mule = mule_says(srv)
    [old_spooler] = spooler_pids(srv)
    save(srv, "v2")
    r = srv.ping("--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "old" not in json.loads(r.stdout), r.stdout
    assert srv.get() == "v2"
    # the next master started them again, with the new code
    wait_for(lambda: (mule_says(srv) or (0, ""))[1] == "v2", 15, what="the mule to load v2")
    assert mule_says(srv)[0] != old_mule[0]
    wait_for(lambda: len(spooler_pids(srv)) == 2, 15, what="a new spooler")
    assert not pid_alive(old_spooler)
    save(srv, "v3")
    r = srv.ping()
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
    assert "old code" not in r.stdout, r.stdout


def test_reply_names_only_what_runs(servers):
    """A mule alone (no spooler): the reply names the mules only."""
    srv = servers(mode="workers", lazy=True, extra=["--mule"])
    wait_for(lambda: "spawned uWSGI mule 1" in srv.log_text(), 15, what="the mule")
    srv.set_version("v2")
    r = srv.ping("--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["old"] == ["mules"], r.stdout
    assert srv.get() == "v2"
