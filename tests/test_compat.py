"""Compatibility and edges: plain `nc` pings over TCP and UDP, versioned UDP
requests and retries, the client's exit codes, and error replies.

Real uWSGI masters with the real plugin, on 127.0.0.1 only.
"""
import json
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port, run_client, tcp_exchange, wait_for

GEN_LINE = re.compile(r"netreload: generation \d+: \w[\w-]* reload")


def gen_lines(server):
    return len(GEN_LINE.findall(server.log_text()))


def tcp_status(server):
    out = tcp_exchange(server.port, b"NETRELOAD/1 status\n", shutdown=False)
    m = re.match(r"NETRELOAD/1 status gen=(\d+) state=(\w+) ", out)
    assert m, out
    return int(m.group(1)), m.group(2)


def assert_no_reload_for(server, gen_before, lines_before, seconds=0.6):
    """Absence can only be checked over a window: poll it, then compare the log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        gen, state = tcp_status(server)
        assert (gen, state) == (gen_before, "idle"), (gen, state)
        time.sleep(0.05)
    assert gen_lines(server) == lines_before, server.log_text()


def wait_all_workers(server):
    """At startup the second worker may not accept yet when the first one serves."""
    wait_for(lambda: "workers=2/2" in tcp_exchange(server.port, b"NETRELOAD/1 status\n",
                                                   shutdown=False),
             10, what="both workers to accept")


def nc(*args, input=".\n", timeout=10):
    return subprocess.run(["nc", *args], input=input, capture_output=True, text=True,
                          timeout=timeout)


def udp_socket():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    return u


def udp_recv(u, timeout):
    u.settimeout(timeout)
    data, _ = u.recvfrom(2048)
    return data.decode()


class FakeServer:
    """A TCP listener on 127.0.0.1 that answers each connection with `reply`
    (None: accept and say nothing). With udp, a UDP socket on the same port
    swallows datagrams, as a netreload server that is stuck would. Closed by
    close(), in the test's finally."""

    def __init__(self, reply=None, udp=False):
        self.reply = reply
        self.udp = None
        for _ in range(50):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            if not udp:
                break
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self.udp.bind(self.sock.getsockname())
                break
            except OSError:
                self.sock.close()
                self.udp.close()
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            if self.reply is not None:
                try:
                    c.settimeout(2)
                    c.recv(600)
                    c.sendall(self.reply)
                    c.close()
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()
        if self.udp:
            self.udp.close()


# 9. echo . | nc ------------------------------------------------------------------

@pytest.mark.parametrize("flags", [[], ["-N"]], ids=["nc", "nc-N"])
def test_tcp_plain_ping_with_nc(server, flags):
    server.set_version("v2")
    r = nc(*flags, "127.0.0.1", str(server.port))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("NETRELOAD/1 accepted gen=1 mode=graceful"), r.stdout
    wait_for(lambda: server.get() == "v2", 15, what="v2 to be served")
    wait_for(lambda: server.count("netreload: generation 1 live"), 10, what="generation 1 live")


def test_empty_tcp_connection_is_not_a_ping(server):
    lines = gen_lines(server)
    assert tcp_exchange(server.port, b"") == ""
    assert_no_reload_for(server, 0, lines)


# 10. UDP plain ping ------------------------------------------------------------------

def test_udp_plain_ping_reloads_without_reply(server):
    server.set_version("v2")
    r = nc("-u", "-w1", "127.0.0.1", str(server.port))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    wait_for(lambda: server.get() == "v2", 15, what="v2 to be served (nc -u)")

    wait_for(lambda: tcp_status(server)[1] == "idle", 10, what="the reload to finish")
    server.set_version("v3")
    u = udp_socket()
    try:
        u.sendto(b".\n", ("127.0.0.1", server.port))
        with pytest.raises(socket.timeout):
            print("unexpected reply:", udp_recv(u, 0.5))
    finally:
        u.close()
    wait_for(lambda: server.get() == "v3", 15, what="v3 to be served (python udp)")


# 11. UDP versioned requests and retries -------------------------------------------------

UDP_MODES = pytest.mark.parametrize("kw", [dict(mode="workers", lazy=True), dict()],
                                    ids=["workers-lazy", "graceful-reexec"])


@UDP_MODES
def test_udp_versioned_request_and_retry(servers, kw):
    """accepted then live, ids echoed; a retry of the same id (a lost "live" is
    why clients retry) gets the same generation's outcome and never reloads."""
    s = servers(**kw)
    mode = kw.get("mode", "graceful")
    s.set_version("v2")
    u = udp_socket()
    try:
        addr = ("127.0.0.1", s.port)
        u.sendto(b"NETRELOAD/1 reload id=u1\n", addr)
        a = udp_recv(u, 5)
        assert re.match(r"NETRELOAD/1 accepted id=u1 gen=1 mode=%s\n?$" % mode, a), a
        live = udp_recv(u, 15)
        # optional step fields (spawn_ms, load_ms, killed) may follow: PROTOCOL.md
        assert re.match(r"NETRELOAD/1 live id=u1 gen=1 ms=\d+ stop_ms=\d+( \w+=\d+)*\n?$",
                        live), live
        assert s.get() == "v2"
        wait_for(lambda: s.count("netreload: generation 1 live"), 10, what="gen 1 live")
        lines = gen_lines(s)

        s.set_version("v3")  # a retry must not pick this up
        u.sendto(b"NETRELOAD/1 reload id=u1\n", addr)
        again = [udp_recv(u, 5)]
        if again[0].startswith("NETRELOAD/1 accepted"):  # acknowledged, then the outcome
            assert re.match(r"NETRELOAD/1 accepted id=u1 gen=1 ", again[0]), again
            try:
                again.append(udp_recv(u, 3))
            except socket.timeout:
                again.append("<no live within 3 s>")
        assert re.match(r"NETRELOAD/1 live id=u1 gen=1 ms=\d+ stop_ms=\d+( \w+=\d+)*\n?$",
                        again[-1]), again
        assert_no_reload_for(s, 1, lines)
        assert s.get() == "v2"

        # a new id is a new request again
        u.sendto(b"NETRELOAD/1 reload id=u2\n", addr)
        assert udp_recv(u, 5).startswith("NETRELOAD/1 accepted id=u2 gen=2 ")
        assert udp_recv(u, 15).startswith("NETRELOAD/1 live id=u2 gen=2 ")
        assert s.get() == "v3"
    finally:
        u.close()


def test_udp_status_and_wait0(server):
    u = udp_socket()
    try:
        addr = ("127.0.0.1", server.port)
        wait_all_workers(server)
        u.sendto(b"NETRELOAD/1 status id=s1", addr)  # LF optional over UDP
        st = udp_recv(u, 5)
        assert re.match(r"NETRELOAD/1 status id=s1 gen=0 state=idle mode=graceful "
                        r"workers=2/2 apps=1 last=none last_ms=0 pid=%d" % server.pid, st), st
        server.set_version("v2")
        u.sendto(b"NETRELOAD/1 reload id=w0 wait=0\n", addr)
        assert udp_recv(u, 5).startswith("NETRELOAD/1 accepted id=w0 gen=1")
        wait_for(lambda: server.get() == "v2", 15, what="v2 to be served")
        wait_for(lambda: server.count("netreload: generation 1 live"), 10, what="gen 1 live")
        with pytest.raises(socket.timeout):
            print("unexpected reply:", udp_recv(u, 0.3))  # wait=0: no "live"
    finally:
        u.close()


# 12. client exit codes ---------------------------------------------------------------------

def test_client_unreachable_exits_3():
    port = free_port()
    r = run_client("ping", "--timeout", "5", f"127.0.0.1:{port}", timeout=15)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "cannot connect" in r.stderr


def test_client_timeout_exits_4():
    fake = FakeServer(reply=None, udp=True)
    try:
        t0 = time.monotonic()
        r = run_client("ping", "--timeout", "0.5", f"127.0.0.1:{fake.port}", timeout=15)
        assert r.returncode == 4, (r.stdout, r.stderr)
        assert "no answer within 0.5 s" in r.stderr
        assert time.monotonic() - t0 < 5
    finally:
        fake.close()


def test_client_protocol_error_exits_5():
    fake = FakeServer(reply=b"HTTP/1.1 400 Bad Request\r\n")
    try:
        r = run_client("ping", "--timeout", "5", f"127.0.0.1:{fake.port}", timeout=15)
        assert r.returncode == 5, (r.stdout, r.stderr)
        assert "answered HTTP (\"HTTP/1.1 400 Bad Request\"), not netreload" in r.stderr
    finally:
        fake.close()


@pytest.mark.parametrize("args,needle", [
    ([], "no target"),
    (["-m", "nope", "127.0.0.1:9"], "unknown mode 'nope'"),
    (["host:99999"], "bad target 'host:99999'"),
    (["--timeout", "abc", "127.0.0.1:9"], "bad --timeout"),
    (["--bogus", "127.0.0.1:9"], "netreload ping: unknown option '--bogus'\n"
                                 "try 'netreload ping --help'\n"),
])
def test_client_usage_errors_exit_2(args, needle):
    r = run_client("ping", *args, timeout=10)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr, r.stderr


def test_client_no_wait_json_status_and_several_targets(server):
    # --no-wait: accepted only
    server.set_version("v2")
    r = server.ping("--no-wait")
    assert r.returncode == 0, r.stderr
    assert re.search(r"reload accepted \(generation 1, graceful\)", r.stdout), r.stdout
    wait_for(lambda: server.get() == "v2", 15, what="v2 to be served")

    # --json: one valid object per line
    server.set_version("v3")
    r = server.ping("--json")
    assert r.returncode == 0, r.stderr
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(objs) == 1
    assert objs[0]["event"] == "live" and objs[0]["exit"] == 0 and objs[0]["gen"] >= 1
    assert objs[0]["target"] == server.target
    assert server.get() == "v3"

    # status
    r = run_client("status", server.target, timeout=10)
    assert r.returncode == 0, r.stderr
    assert "workers 2/2" in r.stdout
    assert "last reload live" in r.stdout
    r = run_client("status", "--json", server.target, timeout=10)
    [st] = [json.loads(line) for line in r.stdout.splitlines()]
    assert st["event"] == "status" and st["workers_live"] == 2 and st["pid"] == server.pid

    # two targets, one unreachable: the worst exit code, one line per target
    dead = f"127.0.0.1:{free_port()}"
    server.set_version("v4")
    r = run_client("ping", "--timeout", "20", server.target, dead, timeout=30)
    assert r.returncode == 3, (r.stdout, r.stderr)
    lines = (r.stdout + r.stderr).splitlines()
    assert len(lines) == 2, lines
    assert any(server.target in l and "live in" in l for l in lines), lines
    assert any(dead in l and "cannot connect" in l for l in lines), lines
    assert server.get() == "v4"

    r = run_client("ping", "--json", "--timeout", "20", server.target, dead, timeout=30)
    assert r.returncode == 3
    objs = {o["target"]: o for o in map(json.loads, r.stdout.splitlines())}
    assert objs[server.target]["event"] == "live"
    assert objs[dead]["event"] == "unreachable" and objs[dead]["exit"] == 3


# 13. status and error replies over raw TCP -------------------------------------------------------

def test_raw_tcp_status_and_errors(server):
    lines = gen_lines(server)
    wait_all_workers(server)
    st = tcp_exchange(server.port, b"NETRELOAD/1 status\n", shutdown=False)
    assert re.match(r"NETRELOAD/1 status gen=0 state=idle mode=graceful workers=2/2 apps=1 "
                    r"last=none last_ms=0 pid=%d\n$" % server.pid, st), st

    cases = [
        (b"NETRELOAD/9 reload\n", "version"),
        (b"NETRELOAD/1 reload mode=nope\n", "bad-request"),
        (b"NETRELOAD/1 reload id=a id=b\n", "bad-request"),
        (b"NETRELOAD/1 reload id=" + b"x" * 40 + b"\n", "bad-request"),
        (b"NETRELOAD/1 frobnicate\n", "bad-request"),
        # 512 bytes and no LF yet: too long (exactly 512, so the server has read it all
        # when it answers and closes; with more unread bytes the close is a reset)
        ((b"NETRELOAD/1 reload " + b"f=1 " * 200)[:512], "bad-request"),
    ]
    for req, code in cases:
        out = tcp_exchange(server.port, req, shutdown=False)  # it answers and closes
        assert re.match(r"NETRELOAD/1 error code=%s reason=\S" % code, out), (req[:40], out)
        assert out.count("\n") == 1, out
    assert_no_reload_for(server, 0, lines)
    assert server.get() == "v1"
