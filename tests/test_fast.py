"""netreload-fast: the README's fast recipe in one switch. The new code still goes
live in every mode, and the switch does what it says (old workers skip the
interpreter teardown, so the app's atexit handlers do not run there)."""
import re
import subprocess
import threading
import time

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


# A C library that registers an exit handler when it loads, as OpenSSL does: the
# handler appends "PID" to the file named at build time.
EXIT_MARK_C = r'''
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void mark(void)
{
	char line[32];
	int fd = open(MARK, O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd >= 0) {
		snprintf(line, sizeof line, "%d\n", (int)getpid());
		if (write(fd, line, strlen(line)) < 0)
			_exit(99);
		close(fd);
	}
}

__attribute__((constructor)) static void init(void) { atexit(mark); }
'''

EXIT_APP = '''\
import ctypes, os, uwsgi
VERSION = {version!r}
HERE = os.path.dirname(os.path.abspath(__file__))
ctypes.CDLL(os.path.join(HERE, "exitmark.so"))

def _bye():
    with open(os.path.join(HERE, "uwsgi-atexit.log"), "a") as f:
        f.write("%d\\n" % os.getpid())

uwsgi.atexit = _bye

def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("mode,lazy", [("workers", True), ("graceful", False)])
@pytest.mark.parametrize("fast", [False, True])
def test_old_workers_skip_library_exit_handlers_only_with_netreload_fast(servers, tmp_path,
                                                                        mode, lazy, fast):
    """With netreload-fast an old worker leaves with _exit() once uWSGI's language
    hooks ran: uwsgi.atexit still runs, the exit handlers that libraries registered
    while the app loaded do not (they only cost copy-on-write faults)."""
    src = tmp_path / "exitmark.c"
    src.write_text(EXIT_MARK_C)
    server = servers(mode=mode, lazy=lazy, extra=["--netreload-fast"] if fast else [],
                     start=False, app=EXIT_APP.format(version="v1"))
    mark = server.dir / "c-atexit.log"
    subprocess.run(["cc", "-shared", "-fPIC", f'-DMARK="{mark}"', "-o",
                    str(server.dir / "exitmark.so"), str(src)], check=True)
    server.start()
    pids = set()
    for n in range(2, 4):
        pids |= set(server.worker_pids())
        atomic_write(server.app, EXIT_APP.format(version=f"v{n}"))
        r = server.ping()
        assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr + server.log_text()
        assert server.get() == f"v{n}"
    # two reloads of two workers: four left (with spares the two that took
    # over at the first reload, the rest still serve or wait parked)
    gone = wait_for(lambda: len(pids - set(server.worker_pids())) >= 4 and
                    pids - set(server.worker_pids()), 10, what="the old workers to exit")
    old = {str(p) for p in gone}
    wait_for(lambda: old <= set(lines(server.dir / "uwsgi-atexit.log")), 10,
             what="uwsgi.atexit to run in every old worker")
    ran = old & set(lines(mark))
    if fast:
        assert ran == set(), f"library exit handlers ran in old workers {ran}: {server.log_text()}"
    else:
        assert ran == old, f"library exit handlers ran in {ran} of the old workers {old}"


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
        # nor does the rest of it (the fd limit of a high ulimit -n stays as it was)
        assert "netreload-fast: max-fd" not in text, text
    finally:
        kill_tree(proc.pid)
        proc.wait(timeout=10)


SLOW_APP = '''\
import os, time
VERSION = {version!r}

def application(env, start_response):
    if env["PATH_INFO"] == "/slow":
        time.sleep(1.5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %d" % (VERSION, os.getpid())).encode()]
'''


@pytest.mark.parametrize("fast", [False, True])
def test_graceful_fast_execs_while_idle_old_workers_exit(servers, fast):
    """With netreload-fast a graceful reload re-execs the master as soon as the old
    workers took their SIGHUP and hold no request: the new master reaps them
    ("subprocess N exited"). A worker still in a request is waited for, as
    uWSGI does; without the switch every old worker is reaped before the exec."""
    server = servers(extra=["--netreload-fast"] if fast else [],
                     app=SLOW_APP.format(version="v1"))
    wait_for(lambda: len(server.worker_pids()) == 2, what="2 workers")
    old = set(server.worker_pids())
    slow = {}
    t = threading.Thread(target=lambda: slow.update(body=server.get("/slow", timeout=10)))
    t.start()
    time.sleep(0.3)  # the slow request is in a worker now
    atomic_write(server.app, SLOW_APP.format(version="v2"))
    r = server.ping()
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr + server.log_text()
    t.join(15)
    assert slow.get("body", "").startswith("v1 "), slow  # the request in flight finished
    assert server.get().startswith("v2 ")
    # the exec waited for the request: 1.5 s, started 0.3 s before the ping
    gone = int(re.search(r"old workers gone after (\d+) ms", r.stdout).group(1))
    assert gone >= 1000, r.stdout
    if fast:
        for pid in old:
            wait_for(lambda: f"subprocess {pid} exited" in server.log_text(),
                     what=f"the new master to reap old worker {pid}")
    else:
        assert "subprocess" not in server.log_text(), server.log_text()
