"""netreload in Emperor vassals: each vassal reloads on its own ping, in place.

A graceful reload re-execs the vassal's master in place, so the Emperor sees
nothing die and must not respawn it: the vassal master pid stays the same.
"""
import json
import subprocess

import pytest

from conftest import (APP_TEMPLATE, BUILD, SANITIZER_MARKS, UWSGI, atomic_write, children_of, free_port,
                      http_get, kill_tree, pid_alive, run_client, uwsgi_env, wait_for)

VASSAL_INI = """\
[uwsgi]
plugin = python3
plugins-dir = {build}
need-plugin = netreload
netreload-port = {nr_port}
master = true
processes = 2
http-socket = 127.0.0.1:{http_port}
wsgi-file = {app}
max-fd = 1024
"""


class Vassal:
    def __init__(self, root, name, version):
        self.name = name
        self.dir = root / name
        self.dir.mkdir()
        self.app = self.dir / "app.py"
        self.app.write_text(APP_TEMPLATE.format(version=version))
        self.nr_port = free_port()
        self.http_port = free_port()
        self.target = f"127.0.0.1:{self.nr_port}"
        self.ini_text = VASSAL_INI.format(build=BUILD, nr_port=self.nr_port,
                                          http_port=self.http_port, app=self.app)

    def get(self, timeout=2.0):
        return http_get(self.http_port, "/", timeout)

    def status(self):
        r = run_client("status", "--json", self.target, timeout=10)
        if r.returncode != 0 or not r.stdout.strip():
            return None
        return json.loads(r.stdout.strip().splitlines()[-1])

    def set_version(self, version):
        atomic_write(self.app, APP_TEMPLATE.format(version=version))

    def ping(self):
        return run_client("ping", self.target, timeout=60)


@pytest.fixture
def emperor(tmp_path):
    vassals_dir = tmp_path / "vassals"
    vassals_dir.mkdir()
    a = Vassal(tmp_path, "a", "a1")
    b = Vassal(tmp_path, "b", "b1")
    for v in (a, b):
        (vassals_dir / f"{v.name}.ini").write_text(v.ini_text)
    log = tmp_path / "emperor.log"
    logf = open(log, "ab")
    proc = subprocess.Popen([UWSGI, "--emperor", str(vassals_dir), "--emperor-freq", "1"],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                            cwd=tmp_path, env=uwsgi_env())
    try:
        yield proc, log, a, b
    finally:
        # SIGINT the emperor (kill_tree does that first), then kill anything left by pid
        kill_tree(proc.pid, timeout=15)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        logf.close()


def test_vassals_reload_independently_in_place(emperor):
    proc, log, a, b = emperor

    def logtail():
        return "\n".join(log.read_text(errors="replace").splitlines()[-60:])

    for v in (a, b):
        wait_for(lambda: v.get() == f"{v.name}1", 30, interval=0.1,
                 what=f"vassal {v.name} to serve ({log})")
        wait_for(lambda: v.status(), 15, interval=0.1, what=f"vassal {v.name}'s netreload")
    sa, sb = a.status(), b.status()
    pid_a, pid_b = sa["pid"], sb["pid"]
    assert sa["gen"] == 0 and sb["gen"] == 0
    vassal_pids = children_of(proc.pid)
    assert pid_a in vassal_pids and pid_b in vassal_pids, (pid_a, pid_b, vassal_pids)
    workers_b = sorted(children_of(pid_b))
    assert len(workers_b) == 2, workers_b
    spawned0 = log.read_text(errors="replace").count("spawned uWSGI master process")

    # ping A: only A reloads, in place
    a.set_version("a2")
    b.set_version("b2")   # on disk, but B is not pinged: it must keep serving b1
    r = a.ping()
    assert r.returncode == 0, f"{r.stdout}{r.stderr}\n{logtail()}"
    assert "live in" in r.stdout
    assert a.get() == "a2"
    assert b.get() == "b1"
    sa, sb = a.status(), b.status()
    assert sa["gen"] == 1 and sa["last"] == "live"
    assert sb["gen"] == 0 and sb["last"] == "none"
    assert sa["pid"] == pid_a, "vassal A's master was replaced instead of re-exec'd"
    assert sb["pid"] == pid_b
    assert sorted(children_of(pid_b)) == workers_b, "B's workers changed on A's ping"
    assert pid_alive(pid_a) and pid_a in children_of(proc.pid)

    # ping B
    r = b.ping()
    assert r.returncode == 0, f"{r.stdout}{r.stderr}\n{logtail()}"
    assert b.get() == "b2"
    assert a.get() == "a2"
    sa, sb = a.status(), b.status()
    assert sb["gen"] == 1 and sb["pid"] == pid_b
    assert sa["gen"] == 1 and sa["pid"] == pid_a
    assert not set(children_of(pid_b)) & set(workers_b), "B's old workers survived its reload"

    # the Emperor respawned nothing: still exactly these two vassal masters
    assert sorted(children_of(proc.pid)) == sorted([pid_a, pid_b])
    text = log.read_text(errors="replace")
    assert text.count("spawned uWSGI master process") == spawned0 + 2, \
        "expected one in-place re-exec per vassal (gracefully (RE)spawned)"
    assert text.count("has been spawned") == 2, logtail()
    assert "respawn" not in text.lower().replace("(re)spawned", ""), logtail()
    assert proc.poll() is None, "the Emperor died"
    found = [m for m in SANITIZER_MARKS if m in text]
    assert not found, f"sanitizer report in {log}: {found}"
