"""The examples run as shipped: each test copies one, rewrites only ports and
paths (so tests stay isolated), runs it and reloads through it.

examples/vagrant/Vagrantfile itself cannot run here (no hypervisor); its
uwsgi.ini is exercised with the VM's address swapped for 127.0.0.1, and
tests/test_vm.py covers the VM situation with namespaces and a FUSE share.
"""
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (BUILD, ROOT, UWSGI, atomic_write, free_port, http_get, kill_tree, run_client,
                      uwsgi_env, wait_for)

EXAMPLES = ROOT / "examples"


def start_uwsgi(args, cwd, log):
    logf = open(log, "wb")
    proc = subprocess.Popen([UWSGI, *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=logf,
                            stderr=subprocess.STDOUT, env=uwsgi_env())
    logf.close()
    return proc


def stop(proc):
    kill_tree(proc.pid)
    proc.wait(timeout=10)


def test_minimal_ini(tmp_path):
    nr, http = free_port(), free_port()
    app = tmp_path / "app.py"
    app.write_text((EXAMPLES / "app.py").read_text())
    ini = (EXAMPLES / "minimal.ini").read_text()
    ini = ini.replace("%d../build", str(BUILD)).replace("%dapp.py", str(app))
    ini = ini.replace("9001", str(nr)).replace("127.0.0.1:8000", f"127.0.0.1:{http}")
    (tmp_path / "minimal.ini").write_text(ini)
    proc = start_uwsgi(["--ini", "minimal.ini"], tmp_path, tmp_path / "log")
    try:
        wait_for(lambda: http_get(http), 15, what="the example to serve")
        assert "hello from examples/app.py" in http_get(http)
        atomic_write(app, app.read_text().replace("hello from", "edited in"))
        r = run_client("ping", f"127.0.0.1:{nr}")
        assert r.returncode == 0, r.stderr
        assert "edited in examples/app.py" in http_get(http)
    finally:
        stop(proc)


def test_emperor_example(tmp_path):
    src = EXAMPLES / "emperor"
    vassals = tmp_path / "vassals"
    vassals.mkdir()
    ports = {}
    for i in (1, 2):
        appdir = tmp_path / f"app{i}"
        appdir.mkdir()
        (appdir / "app.py").write_text((src / f"app{i}" / "app.py").read_text())
        nr, http = free_port(), free_port()
        ports[i] = (nr, http, appdir / "app.py")
        ini = (src / "vassals" / f"app{i}.ini").read_text()
        ini = ini.replace("%d../../../build", str(BUILD))
        ini = ini.replace(f"%d../app{i}/app.py", str(appdir / "app.py"))
        ini = ini.replace(f"910{i}", str(nr)).replace(f"127.0.0.1:810{i}", f"127.0.0.1:{http}")
        (vassals / f"app{i}.ini").write_text(ini)
    proc = start_uwsgi(["--emperor", str(vassals)], tmp_path, tmp_path / "log")
    try:
        for i in (1, 2):
            wait_for(lambda: http_get(ports[i][1]) == f"app{i} v1\n", 20, what=f"vassal app{i}")
        nr1, http1, app1 = ports[1]
        atomic_write(app1, app1.read_text().replace("app1 v1", "app1 v2"))
        r = run_client("ping", f"127.0.0.1:{nr1}")
        assert r.returncode == 0, r.stderr
        assert http_get(http1) == "app1 v2\n"
        assert http_get(ports[2][1]) == "app2 v1\n"
    finally:
        kill_tree(proc.pid)
        proc.wait(timeout=10)


def unit_value(text, key):
    return [m.group(1) for m in re.finditer(rf"^{key}=(.*)$", text, re.M)]


def test_systemd_user_unit_command_line(servers, tmp_path):
    """Run the unit's ExecStart as systemd would (with %h and its Environment), aimed
    at a local server instead of the VM address; a save must reload the server."""
    home = tmp_path / "home"
    (home / "src" / "myapp").mkdir(parents=True)
    secret = home / ".netreload.secret"
    secret.write_text("unit test secret\n")
    secret.chmod(0o600)
    server = servers(extra=["--netreload-secret-file", str(secret)])
    unit = (EXAMPLES / "systemd" / "netreload-watch.service").read_text()
    unit = unit.replace("%h", str(home))
    (workdir,) = unit_value(unit, "WorkingDirectory")
    env = dict(os.environ)
    for assignment in unit_value(unit, "Environment"):
        k, v = assignment.split("=", 1)
        env[k] = v
    (cmd,) = unit_value(unit, "ExecStart")
    argv = shlex.split(cmd.replace("192.168.56.10:9001", server.target))
    assert argv[0] == "/usr/local/bin/netreload"
    argv[0] = str(BUILD / "netreload")
    out_path = tmp_path / "watch.out"
    with open(out_path, "w") as out_file:
        watcher = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out_file,
                                   stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # let it set up its watches
        (Path(workdir) / "views.py").write_text("x = 1\n")
        # the watcher's own line (stdout is line-buffered): the server logs
        # "generation 1 live" a moment before the watcher has read the answer
        wait_for(lambda: "live in" in out_path.read_text(), 15,
                 what="the unit's watcher to report the reload live")
    finally:
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=10)
    assert watcher.returncode == 0, err
    assert "generation 1 live" in server.log_text()


def test_vagrant_guest_ini(tmp_path):
    """The guest's uwsgi.ini, with the VM address and paths swapped for local ones."""
    nr, http = free_port(), free_port()
    app = tmp_path / "app.py"
    app.write_text((EXAMPLES / "vagrant" / "app" / "app.py").read_text())
    secret = tmp_path / "secret"
    secret.write_text("vagrant test secret\n")
    secret.chmod(0o600)
    ini = (EXAMPLES / "vagrant" / "uwsgi.ini").read_text()
    ini = ini.replace("plugin = netreload", f"plugins-dir = {BUILD}\nplugin = netreload")
    ini = ini.replace("192.168.56.10", "127.0.0.1").replace("9001", str(nr))
    ini = ini.replace("0.0.0.0:8000", f"127.0.0.1:{http}")
    ini = ini.replace("/etc/netreload.secret", str(secret)).replace("/srv/app/app.py", str(app))
    ini = ini.replace("/srv/app", str(tmp_path))
    (tmp_path / "uwsgi.ini").write_text(ini)
    proc = start_uwsgi(["--ini", "uwsgi.ini"], tmp_path, tmp_path / "log")
    try:
        wait_for(lambda: http_get(http), 15, what="the guest ini to serve")
        atomic_write(app, app.read_text().replace("hello from", "vm says"))
        r = run_client("ping", "--secret-file", str(secret), f"127.0.0.1:{nr}")
        assert r.returncode == 0, r.stderr
        assert "vm says" in http_get(http)
        assert run_client("ping", f"127.0.0.1:{nr}").returncode == 6  # unsigned: refused
    finally:
        stop(proc)


@pytest.mark.parametrize("path", ["examples/vagrant/Vagrantfile"])
def test_untestable_examples_say_so(path):
    assert "NOT TESTED HERE" in (ROOT / path).read_text()
