"""Shared fixtures for netreload's integration tests.

Every test gets its own temp dir, free ports on 127.0.0.1 and a private uWSGI
master running the real plugin from build/. Processes are tracked by pid and
killed at teardown, children first. Nothing here sleeps for a fixed time where
it can poll for a condition instead; every wait is bounded.
"""
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import uwsgibin
# re-exported: the test modules import these from conftest
from uwsgibin import UWSGI, uwsgi_cmd  # noqa: F401
from proctools import (children_of, descendants, free_port, kill_tree, kill_trees,  # noqa: F401
                       pid_alive, workers_settled)

ROOT = Path(__file__).resolve().parent.parent
# make check-asan points these at an ASan+UBSan build and preloads libasan into uWSGI
BUILD = Path(os.environ.get("NETRELOAD_BUILD", ROOT / "build")).resolve()
PRELOAD = os.environ.get("NETRELOAD_PRELOAD", "")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def uwsgi_env(preload=(), **extra):
    """Environment for uWSGI processes: the sanitizer runtime when testing an ASan
    build (it must come first), then any test shims in preload, then extra vars."""
    env = dict(os.environ)
    env.update(uwsgibin.env_vars())
    libs = ([PRELOAD] if PRELOAD else []) + [str(p) for p in preload]
    if libs:
        env["LD_PRELOAD"] = ":".join(libs)
    if PRELOAD:
        # uWSGI itself leaks by design, and has a known overflow (tests/asan.supp)
        env["ASAN_OPTIONS"] = ("detect_leaks=0:abort_on_error=1:"
                               f"suppressions={ROOT / 'tests' / 'asan.supp'}")
    env.update(extra)
    return env


def slowfork_env(ms):
    """uwsgi_env arguments that make every child of uWSGI hold its inherited fds
    for ms milliseconds after fork (tests/shim/slowfork.c)."""
    return {"preload": [BUILD / "slowfork.so"], "SLOWFORK_MS": str(ms)}


def tickclock_env():
    """uwsgi_env arguments that make every monotonic clock reading in uWSGI at
    least 1 ms later than the one before (tests/shim/tickclock.c)."""
    return {"preload": [BUILD / "tickclock.so"]}
CLIENT = BUILD / "netreload"
PLUGIN = BUILD / "netreload_plugin.so"

APP_TEMPLATE = '''\
VERSION = {version!r}

def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''




def wait_for(cond, timeout=10.0, interval=0.02, what="condition"):
    """Poll cond() until it returns something truthy; fail the test after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def atomic_write(path, text):
    """Save the way editors do: write a temp file, then rename it over the target."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)












def http_get(port, path="/", timeout=2.0):
    """The body served on 127.0.0.1:port now, or None if nothing answers
    (HTTP errors give 'HTTP nnn')."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (OSError, urllib.error.URLError):
        return None


def accepts_tcp(port):
    """Whether something accepts TCP connections on 127.0.0.1:port now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Uwsgi:
    """A private uWSGI master with the netreload plugin, serving a WSGI file over HTTP."""

    def __init__(self, tmp_path, processes=2, mode=None, lazy=False, extra=(), app=None,
                 netreload=True, version="v1", env=None):
        self.dir = Path(tmp_path)
        self.env = env or {}
        self.client_args = []  # e.g. ["--secret-file", PATH] for ping() and health checks
        self.app = self.dir / "app.py"
        self.log = self.dir / "uwsgi.log"
        self.port = free_port()
        self.http_port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.proc = None
        self.args = uwsgi_cmd(BUILD, "--master", "--processes", str(processes),
                              "--http-socket", f"127.0.0.1:{self.http_port}",
                              "--wsgi-file", str(self.app), "--max-fd", "1024",
                              "--chdir", str(self.dir))
        if netreload:
            self.args += ["--plugin", "netreload", "--netreload-port", str(self.port)]
        if mode:
            self.args += ["--netreload-mode", mode]
        if lazy:
            self.args += ["--lazy-apps"]
        self.args += list(extra)
        if app is None:
            app = APP_TEMPLATE.format(version=version)
        self.app.write_text(app)

    # life cycle -------------------------------------------------------------
    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     env=uwsgi_env(**self.env))
        if wait:
            self.wait_serving()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def wait_serving(self, timeout=15.0):
        wait_for(lambda: self.get() is not None, timeout, what=f"uWSGI to serve (log: {self.log})")
        if "--netreload-port" in self.args:
            wait_for(lambda: self.accepts_tcp(), timeout, what="netreload to listen")

    def accepts_tcp(self):
        return accepts_tcp(self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            kill_tree(self.proc.pid)
        if self.proc:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.logf.close()
            found = [m for m in SANITIZER_MARKS if m in self.log_text()]
            assert not found, f"sanitizer report in {self.log}: {found}"

    # interaction ----------------------------------------------------------------
    def get(self, path="/", timeout=2.0):
        return http_get(self.http_port, path, timeout)

    def set_version(self, version):
        atomic_write(self.app, APP_TEMPLATE.format(version=version))

    def ping(self, *args, timeout=30):
        """Run `netreload ping` against this server; returns the CompletedProcess."""
        return run_client("ping", *self.client_args, *args, self.target, timeout=timeout)

    def log_text(self):
        return self.log.read_text(errors="replace")

    def count(self, needle):
        return self.log_text().count(needle)

    def worker_pids(self):
        return [p for p in children_of(self.pid)]


def run_client(*args, timeout=30, input=None, env=None):
    return subprocess.run([str(CLIENT), *args], capture_output=True, text=True,
                          timeout=timeout, input=input, env=env)


def tcp_exchange(port, data, timeout=10.0, shutdown=True):
    """Send bytes over TCP, read until the server closes; returns what it sent.
    A server that closes before it has read everything (it refused the input
    early) still has its answer read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        while True:
            try:
                b = s.recv(4096)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="session", autouse=True)
def built():
    shims = [BUILD / "slowfork.so", BUILD / "tickclock.so"]
    if not PLUGIN.exists() or not CLIENT.exists() or not all(s.exists() for s in shims):
        subprocess.run(["make", "-C", str(ROOT), f"UWSGI={UWSGI}", f"BUILD={BUILD}", "all",
                        *map(str, shims)], check=True)
    return True


@pytest.fixture
def code(tmp_path):
    """A small source tree to watch, separate from the server's own directory."""
    d = tmp_path / "code"
    (d / "pkg").mkdir(parents=True)
    (d / "views.py").write_text("x = 1\n")
    (d / "pkg" / "models.py").write_text("y = 1\n")
    return d


@pytest.fixture
def servers(tmp_path):
    """Factory: servers(cls=Uwsgi, **kw) starts a Uwsgi (or a subclass) in its own
    subdir; all are stopped at teardown."""
    started = []

    def make(cls=None, start=True, **kw):
        d = tmp_path / f"srv{len(started)}"
        d.mkdir()
        s = (cls or Uwsgi)(d, **kw)
        started.append(s)
        return s.start() if start else s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def server(servers):
    return servers()
