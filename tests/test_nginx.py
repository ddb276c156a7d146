"""Through nginx, as most deployments serve: nginx `uwsgi_pass`es to the
master's unix socket, and a reload in every mode costs no request an error.

nginx queues nothing itself: while no worker accepts, requests wait in the
socket's backlog (kept across a graceful re-exec), so a reload must never make
nginx see a refused or reset upstream (502) or a timeout (504). Each test polls
through nginx from a thread for the whole run (bounded in count and time) and
counts every answer that is not 200 with a known version. The only 502s let
through are an upstream closing on nginx, at most one per reload (most likely
uWSGI's accept race, see the test), told apart by nginx's error log."""
import shutil
import subprocess
import threading
import time

import pytest

from conftest import free_port, http_get, kill_tree, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RELOADS = 5

pytestmark = pytest.mark.skipif(not shutil.os.path.exists(NGINX),
                                reason="nginx is not installed (make test installs nginx-light)")

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:{sock};
            uwsgi_read_timeout 30s;
        }}
    }}
}}
"""


@pytest.fixture
def nginx(tmp_path):
    started = []

    def make(sock):
        d = tmp_path / "nginx"
        d.mkdir()
        port = free_port()
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=d, port=port, sock=sock))
        proc = subprocess.Popen([NGINX, "-p", str(d), "-c", str(conf), "-e", str(d / "nginx-error.log")],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
        started.append(proc)
        wait_for(lambda: http_get(port) is not None or proc.poll() is not None, 10,
                 what="nginx to answer")
        assert proc.poll() is None, (d / "nginx-error.log").read_text()
        return port

    yield make
    for p in started:
        kill_tree(p.pid)


class Poller:
    """GETs through nginx back to back until stopped (at most 60 s, 20,000 requests)."""

    def __init__(self, port):
        self.port = port
        self.answers = {}
        self.bad = []
        self.stopped = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        end = time.monotonic() + 60
        for _ in range(20000):
            if self.stopped or time.monotonic() > end:
                return
            body = http_get(self.port, timeout=10)
            self.answers[body] = self.answers.get(body, 0) + 1
            if body is None or not body.startswith("v"):
                self.bad.append(body)

    def stop(self):
        self.stopped = True
        self.thread.join(15)
        return sum(self.answers.values())


@pytest.mark.parametrize("mode,lazy", [("graceful", False), ("workers", True), ("chain", True)])
def test_no_request_fails_through_nginx_while_reloading(servers, nginx, tmp_path, mode, lazy):
    sock = tmp_path / "uwsgi.sock"
    server = servers(mode=mode, lazy=lazy, extra=["--socket", str(sock), "--chmod-socket=666"])
    port = nginx(sock)
    assert http_get(port) == "v1"
    poller = Poller(port)
    try:
        for gen in range(1, RELOADS + 1):
            version = f"v{gen + 1}"
            server.set_version(version)
            r = server.ping()
            assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
            # "live" means nginx's next request already gets the new code
            assert http_get(port, timeout=10) == version
    finally:
        polled = poller.stop()
    print(f"nginx {mode}: {polled} requests over {RELOADS} reloads, answers {poller.answers}")
    assert polled > RELOADS, f"the poller made only {polled} requests"
    assert poller.answers.get(f"v{RELOADS + 1}", 0) > 0
    errors = (tmp_path / "nginx" / "nginx-error.log").read_text()
    # Most likely uWSGI's own race (read in its code, not yet proven here): a
    # worker stopping on SIGHUP exits at once unless it is in a request
    # (gracefully_kill), and it is in one only once it starts reading, so a
    # connection it accepted in that instant is closed unanswered; nginx logs
    # that the upstream closed (before it wrote the request: broken pipe;
    # after, unread: reset; after, read: premature close) and answers 502.
    # Seen about once in 100-400 requests during graceful reloads. At most
    # one per reload is let through; a refused connection, a timeout or any
    # other error fails.
    closed = ("upstream prematurely closed connection",
              "writev() failed (32: Broken pipe) while sending request to upstream",
              "recv() failed (104: Connection reset by peer) while reading response header "
              "from upstream")
    lines = [l for l in errors.splitlines() if "[error]" in l]
    races = sum(any(c in l for c in closed) for l in lines)
    other = [l for l in lines if not any(c in l for c in closed)]
    assert not other and len(poller.bad) <= races and set(poller.bad) <= {"HTTP 502"}, (
        f"{len(poller.bad)} of {polled} requests through nginx failed during {RELOADS} {mode} "
        f"reloads: {sorted(set(map(str, poller.bad)))}; nginx: {errors[-1500:]}; "
        f"uWSGI: {server.log_text()[-3000:]}")
    assert races <= RELOADS, f"more than one accept race per reload: {errors[-1500:]}"
