"""Hostile input: garbage, floods, slowloris, resets. The master must shrug it all off.

After every attack the same health check runs (health.assert_healthy): the
master pid is unchanged and alive, it is not spinning, its fd count is back to
the baseline taken before the attack, HTTP is served promptly and a real
`netreload ping` still reloads to new code.
"""
import random
import resource
import select
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import children_of, fd_count, slowfork_env, tcp_exchange, wait_for
from health import (CLOSE_DEADLINE, LAST_STATUS, assert_healthy, baseline_fds, cpu_share, log_tail,
                    status, wait_idle)

NR_MAX_CONNS = 128          # plugin/netreload.h
NR_LINE_MAX = 512           # common/nr_proto.h, LF included
READ_TIMEOUT = 5.0          # NR_READ_TIMEOUT_MS


def dropped_lines(server):
    return server.count("netreload: dropped")


@pytest.fixture
def attacked(server):
    """The server, its pid and fd baseline, checked healthy before the attack."""
    assert server.get() == "v1"
    pid0 = server.pid
    wait_idle(server)
    return server, pid0, baseline_fds(pid0)


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        new = n if hard == resource.RLIM_INFINITY else min(n, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


REPLY_PREFIXES = ("NETRELOAD/1 accepted ", "NETRELOAD/1 error ", "NETRELOAD/1 live ",
                  "NETRELOAD/1 failed ")


def safe_exchange(port, data, timeout=10.0):
    """tcp_exchange that treats a reset by the server as 'closed' (returns '').

    A timeout (the server neither answered nor hung up) is still an error."""
    try:
        return tcp_exchange(port, data, timeout=timeout)
    except TimeoutError:
        raise
    except OSError:  # EPIPE, ECONNRESET, ENOTCONN from shutdown() after a reset
        return ""


# 1. garbage over TCP ---------------------------------------------------------------------
def test_tcp_garbage_connections(attacked):
    server, pid0, base = attacked
    rnd = random.Random(1)
    blobs = []
    for i in range(300):
        b = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 700)))
        blobs.append(b)
    # a few that look almost versioned, to exercise the parser too
    blobs += [b"NETRELOAD/", b"NETRELOAD/1", b"NETRELOAD/1 \x00\xff\n", b"NETRELOAD/x reload\n",
              b"NETRELOAD/99999 reload\n", b"NETRELOAD/1 reload id=" + b"x" * 40 + b"\n",
              b"NETRELOAD/1 reload mode=\xff\n", b"\r\n", b"\n" * 600]
    with ThreadPoolExecutor(max_workers=8) as ex:
        replies = list(ex.map(lambda b: safe_exchange(server.port, b), blobs))
    for blob, rep in zip(blobs, replies):
        for line in rep.splitlines():
            assert line.startswith(REPLY_PREFIXES), f"odd reply {line!r} to {blob[:40]!r}"
    # most got an answer (plain pings are answered with "accepted")
    answered = sum(1 for r in replies if r)
    assert answered >= len(blobs) * 0.9, f"only {answered}/{len(blobs)} connections answered"
    assert any("NETRELOAD/1 error code=bad-request" in r for r in replies[300:])
    assert_healthy(server, pid0, base, "after-garbage")


# 2. one huge stream ---------------------------------------------------------------------
def _send_all_tolerant(sock, data):
    """Send as much as the peer takes; returns (bytes sent, error or None)."""
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent:sent + 65536])
    except OSError as e:
        return sent, e
    return sent, None


def _read_until_closed(sock, limit=1 << 16):
    chunks, total = [], 0
    while total < limit:
        try:
            b = sock.recv(4096)
        except ConnectionResetError:
            break
        if not b:
            break
        chunks.append(b)
        total += len(b)
    return b"".join(chunks).decode(errors="replace")


def test_one_megabyte_streams(attacked):
    server, pid0, base = attacked
    rnd = random.Random(2)
    mb = 1 << 20

    # 1 MB of random bytes: a plain ping at the first byte, then the server hangs up
    junk = bytes([0x41]) + rnd.randbytes(mb - 1)   # 'A': cannot start "NETRELOAD/"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        sent, err = _send_all_tolerant(s, junk)
        reply = _read_until_closed(s)
    assert reply == "" or reply.startswith("NETRELOAD/1 accepted "), reply
    assert err is not None or sent == mb

    # a versioned line that never ends: exactly one line's worth first, so the
    # server has read everything we sent when it answers and closes cleanly
    line = b"NETRELOAD/1 " + b"a" * (mb - 12)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(line[:512])
        first = s.recv(4096).decode(errors="replace")
        assert first.startswith("NETRELOAD/1 error code=bad-request"), first
        assert "512" in first and "line" in first, first
        # the server hung up: wait for that first (sending meanwhile races the kernel's
        # socket buffers, which can absorb a megabyte on loopback before the reset lands),
        # then the rest of the megabyte must not be swallowed
        rest = _read_until_closed(s)
        sent, err = _send_all_tolerant(s, line[512:])
    assert err is not None or rest == "", f"server kept reading: sent {sent}, rest {rest!r}"
    assert sent < mb - 512, f"server accepted all {sent} further bytes of a single line"

    # and the whole megabyte in one go: an error reply or a closed connection
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        sent, err = _send_all_tolerant(s, line)
        reply = _read_until_closed(s)
    # (_read_until_closed returning at all means the server hung up: a server that
    # kept reading would leave recv() to time out, which raises)
    assert reply == "" or (reply.startswith("NETRELOAD/1 error code=bad-request")
                           and "512" in reply), reply
    assert_healthy(server, pid0, base, "after-megabyte")


# 3. more idle connections than slots ---------------------------------------------------
def test_500_idle_connections(attacked):
    server, pid0, base = attacked
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    raise_nofile(4096)
    socks = []
    try:
        for _ in range(500):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            socks.append(s)
        # the master keeps at most NR_MAX_CONNS of them and closes the oldest idle ones
        wait_for(lambda: fd_count(pid0) <= base + NR_MAX_CONNS + 2, 5, interval=0.05,
                 what=f"master to cap its connections (fds {fd_count(pid0)}, base {base})")
        assert server.get() == "v1", "HTTP not served while 500 connections are held"
        share = cpu_share(pid0, 0.5)
        assert share < 0.2, f"master uses {share:.0%} of a core while connections idle"
        # a real client still gets through (it evicts an idle reader)
        server.set_version("v2")
        r = server.ping(timeout=60)
        assert r.returncode == 0, f"{r.stdout}{r.stderr}\n{log_tail(server)}"
        assert server.get() == "v2"
        assert fd_count(pid0) <= base + NR_MAX_CONNS + 2
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)
    wait_for(lambda: fd_count(pid0) <= base, CLOSE_DEADLINE, interval=0.1,
             what=f"master fd count back to {base} (now {fd_count(pid0)})")
    assert_healthy(server, pid0, base, "after-idle-flood")


def test_1000_concurrent_connections(attacked):
    """1,000 clients at once, each asking for status: more than the plugin keeps open
    (NR_MAX_CONNS), all arriving in one burst. Most are answered, none hangs the master."""
    server, pid0, base = attacked
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    raise_nofile(4096)

    def status(_):
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
                c.sendall(b"NETRELOAD/1 status\n")
                return c.recv(600).decode(errors="replace")
        except OSError:
            return ""

    try:
        with ThreadPoolExecutor(max_workers=200) as ex:
            replies = list(ex.map(status, range(1000)))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)
    answered = sum(r.startswith("NETRELOAD/1 status ") for r in replies)
    assert answered >= 950, f"only {answered}/1000 answered"
    assert all(r == "" or r.startswith("NETRELOAD/1 ") for r in replies)
    wait_for(lambda: fd_count(pid0) <= base, CLOSE_DEADLINE, interval=0.1,
             what=f"master fd count back to {base} (now {fd_count(pid0)})")
    assert_healthy(server, pid0, base, "after-1000")


# 4. half-open connections -----------------------------------------------------------------
def test_half_open_connections_are_closed(servers):
    # workers mode + lazy-apps: the ping below does not re-exec the master, so the
    # half-open connections can only go away through the 5 s read timeout
    server = servers(lazy=True, mode="workers")
    assert server.get() == "v1"
    pid0 = server.pid
    wait_idle(server)
    base = baseline_fds(pid0)

    socks, closed_at = [], {}
    stop = threading.Event()

    def trickle(s):
        # slowloris: one byte every 0.5 s, never a newline
        for b in b"NETRELOAD/1 reload id=slow":
            if stop.wait(0.5):
                return
            try:
                s.send(bytes([b]))
            except OSError:
                return

    t_open = time.monotonic()
    a = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    a.sendall(b"NETRELOAD/1 rel")
    b = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    c = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    socks = [a, b, c]
    th = threading.Thread(target=trickle, args=(c,), daemon=True)
    th.start()

    def reader(i, s):
        try:
            data = s.recv(4096)
            while data:
                data = s.recv(4096)
        except OSError:
            pass
        closed_at[i] = time.monotonic() - t_open

    readers = [threading.Thread(target=reader, args=(i, s), daemon=True)
               for i, s in enumerate(socks)]
    try:
        for r in readers:
            r.start()
        # meanwhile the master serves and reloads
        assert server.get() == "v1"
        server.set_version("v2")
        r = server.ping(timeout=30)
        assert r.returncode == 0, f"{r.stdout}{r.stderr}\n{log_tail(server)}"
        assert server.get() == "v2"
        assert len(closed_at) == 0 or min(closed_at.values()) > 3.0, closed_at
        for r in readers:
            r.join(timeout=max(0.1, CLOSE_DEADLINE + 1 - (time.monotonic() - t_open)))
        assert len(closed_at) == 3, f"not closed within {CLOSE_DEADLINE} s: {closed_at}"
        for i, t in closed_at.items():
            assert 3.5 < t < CLOSE_DEADLINE + 1, f"connection {i} closed after {t:.1f} s"
    finally:
        stop.set()
        for s in socks:
            s.close()
        th.join(timeout=5)
    assert server.count("no complete request within") >= 1
    assert_healthy(server, pid0, base, "after-half-open")


# 5. UDP floods --------------------------------------------------------------------------
def test_udp_garbage_flood(attacked):
    server, pid0, base = attacked
    dropped0 = dropped_lines(server)
    rnd = random.Random(5)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setblocking(False)
    t0 = time.monotonic()
    try:
        for i in range(10000):
            blob = rnd.randbytes(rnd.randrange(0, 600))
            try:
                u.sendto(blob, ("127.0.0.1", server.port))
            except (BlockingIOError, OSError):
                pass
            if time.monotonic() - t0 > 20:
                break
    finally:
        u.close()
    flood_s = time.monotonic() - t0
    assert_healthy(server, pid0, base, "after-udp-flood")
    # whatever got logged about it was rate-limited (a re-exec restarts the limiter)
    gens = server.count("netreload: generation ") // 2 + 1
    grown = dropped_lines(server) - dropped0
    assert grown <= flood_s + 2 + gens, f"{grown} 'dropped' lines for a {flood_s:.1f} s flood"


def test_udp_bad_version(attacked):
    server, pid0, base = attacked
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(2.0)
    replies = []
    try:
        for i in range(300):
            u.sendto(b"NETRELOAD/7 reload id=v%d\n" % i, ("127.0.0.1", server.port))
            try:
                replies.append(u.recv(1024).decode(errors="replace"))
            except socket.timeout:
                pass
    finally:
        u.close()
    assert len(replies) >= 290, f"only {len(replies)} of 300 answered"
    bad = [r for r in replies if not r.startswith("NETRELOAD/1 error code=version")]
    assert not bad, bad[:5]
    st = status(server)
    assert st["gen"] == 0, "a wrong-version request reloaded the server"
    assert_healthy(server, pid0, base, "after-bad-version")


# 6. the log is not flooded -------------------------------------------------------------------
def test_bad_requests_are_logged_rate_limited(attacked):
    server, pid0, base = attacked
    dropped0 = dropped_lines(server)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setblocking(False)
    sent_bad = 0
    t0 = time.monotonic()
    try:
        # about 3 s of bad requests that do not reload: wrong version and bad fields
        # over UDP, bad lines over TCP
        while time.monotonic() - t0 < 3.0 and sent_bad < 200000:
            for _ in range(50):
                try:
                    u.sendto(b"NETRELOAD/7 reload\n", ("127.0.0.1", server.port))
                    u.sendto(b"NETRELOAD/1 reload mode=fast\n", ("127.0.0.1", server.port))
                    sent_bad += 2
                except (BlockingIOError, OSError):
                    pass
            rep = safe_exchange(server.port, b"NETRELOAD/1 frobnicate\n", timeout=5)
            assert rep == "" or rep.startswith("NETRELOAD/1 error "), rep
            sent_bad += 1
    finally:
        u.close()
    attack_s = time.monotonic() - t0
    # the logger may print the last line a little after the attack
    time.sleep(0.2)
    grown = dropped_lines(server) - dropped0
    assert grown >= 1, "bad requests were not logged at all"
    assert grown <= attack_s + 2, \
        f"{grown} 'dropped' lines for {sent_bad} bad requests in {attack_s:.1f} s"
    st = status(server)
    assert st is not None, f"no status after the attack: {LAST_STATUS}\n{log_tail(server)}"
    assert st["gen"] == 0, "bad requests reloaded the server"
    assert_healthy(server, pid0, base, "after-log-flood")


# 7. a waiting client that resets ---------------------------------------------------------
def _rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def test_waiting_client_resets(attacked):
    server, pid0, base = attacked
    gen0 = status(server)["gen"]
    server.set_version("v2")
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"NETRELOAD/1 reload id=rst%d\n" % i)
        if i % 2:
            # half of them read the "accepted" first, the others vanish at once
            s.settimeout(5)
            got = s.recv(512)
            assert got.startswith(b"NETRELOAD/1 accepted "), got
        _rst_close(s)
    # the reload those requests asked for completes; the master survives it
    st = wait_for(lambda: (x := status(server)) and x["state"] == "idle" and x["gen"] > gen0
                  and x, 45, interval=0.1, what="the reset clients' reload to finish")
    assert st["last"] == "live" and st["pid"] == pid0
    assert server.get() == "v2"
    assert "Segmentation" not in server.log_text() and "SIGSEGV" not in server.log_text()
    assert_healthy(server, pid0, base, "after-rst")


# 8. connections closed while a new worker still holds a copy -----------------------------
# A forked child holds copies of the master's fds until the plugin's atfork handler
# closes them. Closing an fd takes it out of an epoll set only when no other copy of
# it is open, so a connection closed inside that window used to stay registered with
# a pointer to freed memory: the next event for it made the master free it twice
# (seen as "double free detected in tcache 2" right after a re-exec under a ping
# flood). The slowfork shim stretches the window from microseconds to seconds.
FORK_HOLD_MS = 2000


def test_connections_closed_while_a_new_worker_holds_them(servers):
    server = servers(mode="workers", lazy=True, env=slowfork_env(FORK_HOLD_MS))
    pid0 = server.pid
    wait_idle(server)
    base = baseline_fds(pid0)
    old_workers = set(children_of(pid0))
    readers = []
    for _ in range(8):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"NETRELOAD/1 bogus")  # could still become a request: the master keeps it
        readers.append(s)
    assert status(server)["state"] == "idle"  # one round trip: the master has taken them
    assert tcp_exchange(server.port, b".\n").startswith("NETRELOAD/1 accepted ")
    # the reload forks new workers, each holding copies of the readers for FORK_HOLD_MS
    wait_for(lambda: set(children_of(pid0)) - old_workers, 10, interval=0.005,
             what="the reload to fork a new worker")
    for s in readers:
        s.sendall(b"\n")  # now a bad request: the master answers and closes its fd
        assert s.recv(512).startswith(b"NETRELOAD/1 error code=bad-request")
    # no end of file yet: a new worker still holds every connection open
    readable, _, _ = select.select(readers, [], [], 0.2)
    assert not readable, "the connections closed at once: the shim did not hold them"
    for s in readers:
        s.sendall(b"more bytes after the close\n")  # events for connections already freed
    share = cpu_share(pid0, 0.5)
    assert share < 0.2, f"master uses {share:.0%} of a core on events for closed connections"
    # once the workers drop their copies the clients see the end, and the master is fine
    for s in readers:
        s.settimeout(FORK_HOLD_MS / 1000 + 10)
        try:
            assert s.recv(512) == b"", "a connection stayed open after the workers dropped it"
        except ConnectionResetError:
            pass  # closed with our last bytes unread: the kernel resets instead
        s.close()
    assert server.proc.poll() is None, \
        f"master died (exit {server.proc.returncode}):\n{log_tail(server)}"
    log = server.log_text()
    assert "double free" not in log and "AddressSanitizer" not in log, log_tail(server)
    assert_healthy(server, pid0, base, "after-fork-window")


# 9. fragmented requests ------------------------------------------------------------------
def _send_in_pieces(port, data, sizes, gap):
    """Send data in pieces of the given sizes (cycled), each its own TCP segment, gap
    seconds apart; then read until the server closes. Returns the reply text."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        off, i = 0, 0
        while off < len(data):
            n = sizes[i % len(sizes)]
            s.sendall(data[off:off + n])
            off, i = off + n, i + 1
            time.sleep(gap)
        chunks = []
        while (b := s.recv(4096)):
            chunks.append(b)
        return b"".join(chunks).decode(errors="replace")


def test_fragmented_requests_are_reassembled(attacked):
    server, pid0, base = attacked
    gen0 = status(server)["gen"]
    # one byte per segment, 10 ms apart, CRLF split across two segments
    server.set_version("v-frag1")
    out = _send_in_pieces(server.port, b"NETRELOAD/1 reload id=frag1 wait=1\r\n", [1], 0.01)
    assert "accepted id=frag1" in out and "live id=frag1" in out, out
    assert server.get() == "v-frag1"
    # odd-sized pieces, the magic itself cut in the middle, a status request too
    server.set_version("v-frag2")
    out = _send_in_pieces(server.port, b"NETRELOAD/1 reload id=frag2 mode=brutal wait=1\n",
                          [4, 7, 1, 13], 0.02)
    assert "accepted id=frag2" in out and "live id=frag2" in out, out
    out = _send_in_pieces(server.port, b"NETRELOAD/1 status id=frag3\n", [5, 3], 0.02)
    assert out.startswith("NETRELOAD/1 status id=frag3 "), out
    st = status(server)
    assert st["gen"] == gen0 + 2, "fragmented requests reloaded more or less than twice"
    # a line of exactly the limit (LF included) in pieces is one request; one byte more is not
    head = b"NETRELOAD/1 status id=x pad="
    ok = head + b"p" * (NR_LINE_MAX - len(head) - 1) + b"\n"
    assert len(ok) == NR_LINE_MAX
    assert _send_in_pieces(server.port, ok, [100], 0.01).startswith("NETRELOAD/1 status id=x")
    too_long = ok[:-1] + b"p\n"
    assert "longer than 512" in _send_in_pieces(server.port, too_long, [100], 0.01)
    assert_healthy(server, pid0, base, "after-fragments")
