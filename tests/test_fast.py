"""netreload-fast: the README's fast recipe in one switch. The new code still goes
live in every mode, and the switch does what it says (old workers skip the
interpreter teardown, so the app's atexit handlers do not run there)."""
import subprocess

import pytest

from conftest import BUILD, accepts_tcp, atomic_write, free_port, kill_tree, uwsgi_env, wait_for
from uwsgibin import UWSGI, builtin_python

APP = '''\
import atexit, os
VERSION = {version!r}
HERE = os.path.dirname(os.path.abspath(__file__))

def _bye():
    with open(os.path.join(HERE, "atexit.log"), "a") as f:
        f.write("%d %s\\n" % (os.getpid(), VERSION))

atexit.register(_bye)

def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''


def reload_to(server, version):
    atomic_write(server.app, APP.format(version=version))
    r = server.ping()
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr + server.log_text()
    seen = {server.get() for _ in range(8)}
    assert seen == {version}, f"after live: {seen} ({server.log_text()})"


@pytest.mark.parametrize("mode,lazy", [("graceful", False), ("graceful", True),
                                       ("workers", True), ("chain", True)])
def test_new_code_goes_live_with_netreload_fast(servers, mode, lazy):
    server = servers(mode=mode, lazy=lazy, extra=["--netreload-fast"],
                     app=APP.format(version="v1"))
    assert "netreload-fast: shared-import = random, shared-import = threading, " \
           "skip-atexit-teardown = true" in server.log_text()
    for n in range(2, 6):
        reload_to(server, f"v{n}")


@pytest.mark.parametrize("fast", [False, True])
def test_old_workers_skip_the_teardown_only_with_netreload_fast(servers, fast):
    extra = ["--netreload-fast"] if fast else []
    server = servers(mode="workers", lazy=True, extra=extra, app=APP.format(version="v1"))
    for n in range(2, 4):
        reload_to(server, f"v{n}")
    log = server.dir / "atexit.log"
    lines = log.read_text().splitlines() if log.exists() else []
    if fast:
        assert lines == [], f"atexit ran in old workers with netreload-fast: {lines}"
    else:
        # two reloads of two workers each: the old workers finalize their interpreter
        assert len(lines) >= 4, f"expected the old workers' atexit lines, got {lines}"


@pytest.mark.skipif(builtin_python(), reason="this uWSGI has Python built in")
def test_netreload_fast_without_the_python_plugin_says_so(tmp_path):
    port = free_port()
    log = tmp_path / "uwsgi.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([UWSGI, "--plugins-dir", str(BUILD), "--plugin", "netreload",
                                 "--netreload-port", str(port), "--netreload-fast", "--master",
                                 "--http-socket", f"127.0.0.1:{free_port()}"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path, env=uwsgi_env())
    try:
        wait_for(lambda: accepts_tcp(port), 15, what="netreload to listen")
        text = log.read_text()
        assert "netreload-fast changes nothing here" in text, text
        assert "shared-import = random" not in text, text
    finally:
        kill_tree(proc.pid)
        proc.wait(timeout=10)
