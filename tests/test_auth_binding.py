"""Signed requests bound to one start of one instance, and signed replies
(issue 12, findings 3, 4 and 7; PROTOCOL.md, "Instances" and "Signed replies").

An attacker on the VM network who captures a signed request must not reload
another instance that shares the secret with it, nor the same instance after
a cold restart; a sender who forges, or replays, an answer must never make the
client report success. Port forwards and several targets with one secret keep
working. Real uWSGI masters with the real plugin and the real client, on
127.0.0.1; the "attacker" here is a recording forwarder and fake servers.
"""
import re
import select
import socket
import threading
import time

import pytest

from authtools import exchange, hello, key_of, reply_body, sign_reply, sign_request
from conftest import run_client, wait_for
from fakenet import FakeTcp, FakeUdp
from test_auth import make_secret, reloads
from test_watch import Watcher

LIVE_OUT = re.compile(r"live in \d+ ms \(generation (\d+)")


@pytest.fixture
def secret(tmp_path):
    return make_secret(tmp_path / "secret")


@pytest.fixture
def pair(servers, secret):
    """Two instances that share one secret, as two VMs set up from one recipe."""
    return [servers(extra=["--netreload-secret-file", str(secret)]) for _ in range(2)]


class Forwarder:
    """127.0.0.1:port -> 127.0.0.1:to, over TCP and UDP, as Vagrant's port
    forward or `ssh -L` is, and recording what the client sent on the way
    (what an attacker on the path captures): TCP requests per connection,
    UDP datagrams in order."""

    def __init__(self, to):
        self.to = to
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # towards the server
        self.up.connect(("127.0.0.1", to))
        self.peer = None
        self.tcp_sent, self.udp_sent = [], []
        self.stopped = False
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self.accept, self.pump_udp)]
        for t in self.threads:
            t.start()

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"

    def accept(self):
        while not self.stopped:
            try:
                c, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self.pump_tcp, args=(c,), daemon=True).start()

    def pump_tcp(self, c):
        sent = bytearray()
        self.tcp_sent.append(sent)
        try:
            s = socket.create_connection(("127.0.0.1", self.to), timeout=5)
        except OSError:
            c.close()
            return
        with c, s:
            ends = {c: s, s: c}
            while ends and not self.stopped:
                ready, _, _ = select.select(list(ends), [], [], 0.2)
                for r in ready:
                    data = r.recv(65536)
                    if r is c:
                        sent += data
                    if not data:
                        try:
                            ends[r].shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        del ends[r]
                    else:
                        ends[r].sendall(data)

    def pump_udp(self):
        while not self.stopped:
            ready, _, _ = select.select([self.udp, self.up], [], [], 0.2)
            for r in ready:
                try:
                    data, addr = r.recvfrom(4096)
                except OSError:
                    continue
                if r is self.udp:
                    self.peer = addr
                    self.udp_sent.append(data)
                    self.up.send(data)
                elif self.peer:
                    self.udp.sendto(data, self.peer)

    def requests(self, verb):
        """The signed request lines the client sent that carry verb."""
        lines = [bytes(b).split(b"\n")[0] + b"\n" for b in self.tcp_sent if b]
        lines += [d if d.endswith(b"\n") else d + b"\n" for d in self.udp_sent]
        return [l for l in lines if l.split(b" ")[1:2] == [verb.encode()]]

    def close(self):
        self.stopped = True
        for s in (self.tcp, self.udp, self.up):
            s.close()
        for t in self.threads:
            t.join(2)


@pytest.fixture
def forward():
    made = []

    def make(to):
        f = Forwarder(to)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def ping(secret, *targets, udp=False, timeout=30, extra=()):
    args = ["--secret-file", str(secret), *(["--udp"] if udp else []), *extra]
    return run_client("ping", "--timeout", str(timeout), *args, *targets, timeout=timeout + 15)


def assert_no_reload(server, before=0, seconds=0.8):
    """A refused request never starts a generation (checked over a window)."""
    time.sleep(seconds)
    assert reloads(server) == before, server.log_text()
    assert server.get() == "v1"


# ---- finding 3: a request for one instance does not reload another ------------------

@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
def test_request_for_one_instance_cannot_reload_another(pair, secret, forward, udp):
    a, b = pair
    fa = forward(a.port)
    b.set_version("v2")  # what a reload of b would serve
    r = ping(secret, fa.target, udp=udp)
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
    # over UDP a slow answer brings a retry of the same request: any one will do
    captured = fa.requests("reload")[0]
    out = exchange(b.port, captured, udp=udp, timeout=1.0)
    if udp:
        assert out is None, out  # nothing answered: no reflection either
    else:
        assert out.startswith(b"NETRELOAD/1 error code=instance "), out
    assert_no_reload(b)
    wait_for(lambda: "signed for another netreload instance" in b.log_text(), 5,
             what="the rate-limited log line")
    # it named a's instance id; b itself still reloads for the client
    assert b"sid=" + hello(a.port, key_of(secret)).encode() in captured, captured
    r = ping(secret, b.target)
    assert r.returncode == 0 and b.get() == "v2", r.stdout + r.stderr


# ---- finding 4: a request does not outlive a cold restart -----------------------------

def test_request_cannot_be_replayed_after_a_cold_restart(servers, secret, forward):
    s = servers(extra=["--netreload-secret-file", str(secret)])
    f = forward(s.port)
    key = key_of(secret)
    r = ping(secret, f.target, extra=["--mode", "graceful"])
    assert r.returncode == 0, r.stdout + r.stderr
    [captured] = f.requests("reload")
    # a graceful re-exec keeps the nonces: still a replay
    assert b"replayed" in exchange(s.port, captured)
    s.stop()
    s.start()
    assert reloads(s) == 1  # the log goes on across the restart
    s.set_version("v2")
    for udp in (False, True):
        out = exchange(s.port, captured, udp=udp, timeout=1.0)
        assert (out is None) if udp else out.startswith(b"NETRELOAD/1 error code=instance "), out
    time.sleep(0.8)
    assert reloads(s) == 1 and s.get() == "v1", s.log_text()
    # the instance id came through the re-exec, and the cold start made a new one
    sid0 = re.search(rb"sid=([0-9a-f]{32})", captured).group(1).decode()
    sid1 = hello(s.port, key)
    assert sid1 != sid0
    assert re.findall(r"netreload: instance ([0-9a-f]{32}) \((new|kept)", s.log_text()) == [
        (sid0, "new"), (sid0, "kept"), (sid1, "new")]


def test_old_signed_requests_are_refused_with_a_clear_error(servers, secret):
    """A 0.1 client's signed line names no instance: over TCP it is told to upgrade."""
    s = servers(extra=["--netreload-secret-file", str(secret)])
    line, _ = sign_request(key_of(secret), "NETRELOAD/1 reload id=old wait=1", id_is_nonce=False)
    out = exchange(s.port, line).decode()
    assert out.startswith("NETRELOAD/1 error code=version reason=signed requests need protocol 2"), out
    assert "upgrade the netreload client" in out
    assert exchange(s.port, line, udp=True, timeout=0.5) is None
    assert_no_reload(s)


def test_a_signed_request_must_have_its_nonce_as_id(servers, secret):
    s = servers(extra=["--netreload-secret-file", str(secret)])
    key = key_of(secret)
    line, _ = sign_request(key, "NETRELOAD/2 reload id=mine", sid=hello(s.port, key),
                           id_is_nonce=False)
    out = exchange(s.port, line).decode()
    assert out.startswith("NETRELOAD/1 error code=bad-request reason=a signed protocol 2"), out
    assert_no_reload(s)


# ---- finding 7: answers are signed and tied to the request --------------------------------

@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
def test_replies_are_signed_and_echo_the_nonce(servers, secret, udp):
    s = servers(extra=["--netreload-secret-file", str(secret)])
    key = key_of(secret)
    line, nonce = sign_request(key, "NETRELOAD/2 reload wait=1", sid=hello(s.port, key, udp=udp))
    if udp:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(15)
            u.sendto(line, ("127.0.0.1", s.port))
            got = [u.recv(2048), u.recv(2048)]
    else:
        got = exchange(s.port, line, timeout=15).splitlines(keepends=True)
    bodies = [reply_body(key, g) for g in got]
    assert bodies[0].startswith(f"NETRELOAD/2 accepted id={nonce} gen=1 "), got
    assert bodies[1].startswith(f"NETRELOAD/2 live id={nonce} gen=1 "), got
    assert reply_body(b"another secret", got[1]) is None


def request_id(line):
    m = re.search(rb" id=([\w.-]+)", line)
    return m.group(1).decode() if m else "x"


def forged(key, other_key):
    """Every kind of answer an attacker can make without the secret, for the
    request line it saw (an on-path sender sees the request; it still lacks the key)."""
    def answers(line):
        rid = request_id(line)
        live = f"NETRELOAD/1 live id={rid} gen=4242 ms=1 stop_ms=0"
        out = [
            (live + "\n").encode(),                                  # unsigned
            sign_reply(other_key, live),                              # another secret
            sign_reply(key, live.replace(rid, "0123456789abcdef")),   # another request's
            sign_reply(key, live)[:-10] + b"0000000000\n",            # MAC cut and patched
            b"HTTP/1.1 200 OK\r\n",                                   # not netreload
        ]
        if line.split(b" ")[1:2] == [b"hello"]:
            h = f"NETRELOAD/2 hello id={rid} sid={'ab' * 16}"
            out += [(h + "\n").encode(), sign_reply(other_key, h)]
        return out
    return answers


def test_forged_udp_answers_are_not_believed(secret, tmp_path):
    """The issue's attack: `ping --udp --secret-file` to a port with no server while
    someone answers with forgeries. It used to print "live ... (generation 4242)"."""
    key = key_of(secret)
    other = key_of(make_secret(tmp_path / "other", "not the secret"))
    with FakeUdp(forged(key, other)) as fake:
        r = ping(secret, fake.target, udp=True, timeout=2)
    assert r.returncode == 8, (r.returncode, r.stdout, r.stderr)
    assert "live" not in r.stdout and "4242" not in r.stdout + r.stderr
    assert "no answer to believe within 2.0 s" in r.stderr, r.stderr
    assert len(fake.got) >= 2  # hellos, resent, each with a fresh nonce
    assert len({request_id(g) for g in fake.got}) == len(fake.got)


def test_forged_udp_answers_without_a_secret_need_the_id(tmp_path):
    """Without a secret an answer cannot be signed, but it must still echo the
    request's random id: a blind sender cannot."""
    def answers(line):
        return [b"NETRELOAD/1 accepted id=guess gen=4242 mode=graceful\n",
                b"NETRELOAD/1 live gen=4242 ms=1 stop_ms=0\n"]
    with FakeUdp(answers) as fake:
        r = run_client("ping", "--udp", "--timeout", "2", fake.target, timeout=20)
    assert r.returncode == 8 and "4242" not in r.stdout, (r.returncode, r.stdout, r.stderr)
    assert "another request" in r.stderr


@pytest.mark.parametrize("case", ["unsigned", "other-secret", "other-id", "no-id"])
def test_tcp_answer_that_is_not_ours_is_refused(secret, tmp_path, case):
    key = key_of(secret)
    other = key_of(make_secret(tmp_path / "other", "not the secret"))

    def answers(line):
        rid = request_id(line)
        if line.split(b" ")[1:2] == [b"hello"]:  # a good hello: the request is what is forged
            return [sign_reply(key, f"NETRELOAD/2 hello id={rid} sid={'ab' * 16}")]
        live = f"NETRELOAD/1 live id={rid} gen=9 ms=1 stop_ms=0"
        return [{"unsigned": (live + "\n").encode(),
                 "other-secret": sign_reply(other, live),
                 "other-id": sign_reply(key, live.replace(rid, "0123456789abcdef")),
                 "no-id": sign_reply(key, live.replace(f" id={rid}", ""))}[case]]
    with FakeTcp(answers) as fake:
        r = ping(secret, fake.target, timeout=5)
        plain = run_client("ping", "--timeout", "5", fake.target, timeout=20)
    assert r.returncode == 8, (r.returncode, r.stdout, r.stderr)
    assert "not believed" in r.stderr and "live" not in r.stdout
    if case in ("other-id", "no-id"):
        # without a secret the id is all there is to check, and it is checked
        assert plain.returncode == 8 and "another request" in plain.stderr, plain.stderr


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
def test_new_client_with_a_secret_tells_to_upgrade_an_old_server(secret, udp):
    """What a netreload 0.1 plugin answers a protocol 2 line: a clear error, at once."""
    old = b"NETRELOAD/1 error code=version reason=protocol version 2 not supported (this side speaks 1)\n"
    with (FakeUdp if udp else FakeTcp)(lambda line: [old]) as fake:
        t0 = time.monotonic()
        r = ping(secret, fake.target, udp=udp, timeout=20)
    assert r.returncode == 5, (r.returncode, r.stderr)
    assert "upgrade the plugin there" in r.stderr and time.monotonic() - t0 < 5, r.stderr


# ---- what must keep working ------------------------------------------------------------

@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
def test_port_forward_with_a_secret(servers, secret, forward, udp):
    """Vagrant's host 19001 -> guest 9001, or ssh -L: the client's address and port
    are not the server's, and nothing in a signed request depends on them."""
    s = servers(extra=["--netreload-secret-file", str(secret)])
    f = forward(s.port)
    s.set_version("v2")
    r = ping(secret, f.target, udp=udp)
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
    assert s.get() == "v2"
    r = run_client("status", "--secret-file", str(secret), f.target, timeout=15)
    assert r.returncode == 0 and "generation 1" in r.stdout, r.stdout + r.stderr


def test_several_targets_with_one_secret(pair, secret, code, tmp_path):
    a, b = pair
    for s in pair:
        s.set_version("v2")
    r = ping(secret, a.target, b.target)
    assert r.returncode == 0 and r.stdout.count("live in") == 2, r.stdout + r.stderr
    assert a.get() == b.get() == "v2"
    r = ping(secret, a.target, b.target, udp=True)
    assert r.returncode == 0 and r.stdout.count("live in") == 2, r.stdout + r.stderr
    w = Watcher(tmp_path, 0, ["--to", a.target, "--to", b.target, "--secret-file", secret,
                              "--no-files"], code).started()
    try:
        (code / "views.py").write_text("x = 2\n")
        w.wait_lives(2)
        assert a.target in w.stdout() and b.target in w.stdout()
    finally:
        w.stop()
    assert reloads(a) == reloads(b) == 3


def test_watch_asks_again_after_a_cold_restart(servers, secret, code, tmp_path, forward):
    """The watcher keeps each target's instance id (no hello per save); after a
    cold restart the server says so, and the watcher asks again, once."""
    s = servers(extra=["--netreload-secret-file", str(secret)])
    f = forward(s.port)
    w = Watcher(tmp_path, 0, ["--to", f.target, "--secret-file", secret, "--no-files"],
                code).started()
    try:
        (code / "views.py").write_text("x = 2\n")
        w.wait_lives(1)
        (code / "views.py").write_text("x = 3\n")
        w.wait_lives(2)
        s.stop()
        s.start()
        (code / "views.py").write_text("x = 4\n")
        w.wait_lives(3)
    finally:
        assert w.stop() == 0
    assert "error" not in w.stdout(), w.stdout()
    # one hello before the first save and one after the restart; the second save needed none
    assert len(f.requests("hello")) == 2 and len(f.requests("reload")) == 4, f.tcp_sent
    wait_for(lambda: "signed for another netreload instance" in s.log_text(), 5,
             what="the refused request with the old instance id")
