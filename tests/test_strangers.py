"""What an attacker on the guest or the VM network can do to the listener
(issue 12, findings 1, 2, 5 and 6's neighbours): take the UDP port over, use
the UDP port as a reflector, or squeeze real waiters out of the re-exec
hand-over. Real uWSGI masters with the real plugin, 127.0.0.1 only.
"""
import errno
import os
import socket
import subprocess
import time

import pytest

from conftest import BUILD, free_port, run_client, uwsgi_cmd, uwsgi_env, wait_for


def make_secret(path):
    path.write_text("correct horse battery staple\n")
    os.chmod(path, 0o600)
    return path


def udp_replies(port, payload, src=None, wait=0.4):
    """Send payload from src (a bound UDP socket, or a fresh one); the replies
    that come back within wait seconds."""
    u = src or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if src is None:
        u.bind(("127.0.0.1", 0))
    u.sendto(payload, ("127.0.0.1", port))
    got = []
    u.settimeout(wait)
    try:
        while True:
            got.append(u.recv(2048))
    except socket.timeout:
        pass
    finally:
        if src is None:
            u.close()
    return got


# 1. no port sharing -------------------------------------------------------------
def test_udp_port_cannot_be_bound_by_another_socket(server):
    for opt in (socket.SO_REUSEADDR, socket.SO_REUSEPORT):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, opt, 1)
        with pytest.raises(OSError) as e:
            s.bind(("127.0.0.1", server.port))
        s.close()
        assert e.value.errno == errno.EADDRINUSE


def test_taken_udp_port_stops_startup_and_names_the_holder(tmp_path):
    port = free_port()
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # would have shared it
    holder.bind(("127.0.0.1", port))
    try:
        (tmp_path / "app.py").write_text("def application(e, s):\n    return []\n")
        r = subprocess.run(uwsgi_cmd(BUILD, "--plugin", "netreload", "--netreload-port", str(port),
                                     "--master", "--http-socket", f"127.0.0.1:{free_port()}",
                                     "--wsgi-file", str(tmp_path / "app.py")),
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                           env=uwsgi_env(), cwd=tmp_path)
    finally:
        holder.close()
    log = r.stdout + r.stderr
    assert r.returncode != 0, log
    assert f"cannot listen on UDP 127.0.0.1:{port}" in log, log
    assert f"held by pid {os.getpid()} (" in log and "pick a free port" in log, log


# 2. UDP says nothing to strangers ------------------------------------------------
def test_udp_with_a_secret_answers_nothing_before_the_mac(servers, tmp_path):
    secret = make_secret(tmp_path / "secret")
    s = servers(extra=["--netreload-secret-file", str(secret)])
    for payload in (b"N", b"NETRELOAD/1 status\n", b"NETRELOAD/9 reload\n",
                    b"NETRELOAD/1 reload id=x ts=%d nonce=00112233aabbccdd mac=%s\n"
                    % (int(time.time()), b"00" * 32)):
        assert udp_replies(s.port, payload) == [], payload
    # a signed client still gets its answers over UDP
    r = run_client("ping", "--udp", "--secret-file", str(secret), s.target, timeout=30)
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr


def test_udp_retry_is_answered_only_to_its_sender(server):
    line = b"NETRELOAD/1 reload id=retry1\n"
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    try:
        first = udp_replies(server.port, line, src=a, wait=1.0)
        assert any(b"accepted id=retry1" in m for m in first), first
        assert udp_replies(server.port, line, src=b) == []  # same id, another source
        again = udp_replies(server.port, line, src=a, wait=1.0)
        assert again and all(b"id=retry1" in m for m in again), again
    finally:
        a.close()
        b.close()


def test_udp_replies_are_rate_capped(server):
    """2000 status requests in a burst: at most the cap (200 a second, bursts of
    200) is answered, so the port cannot be an amplifier."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    t0 = time.monotonic()
    for i in range(2000):
        u.sendto(b"NETRELOAD/1 status id=s%d\n" % i, ("127.0.0.1", server.port))
    sent_s = time.monotonic() - t0
    got = 0
    u.settimeout(0.5)
    try:
        while True:
            u.recv(2048)
            got += 1
    except socket.timeout:
        pass
    u.close()
    elapsed = time.monotonic() - t0
    assert 0 < got <= 200 + 200 * elapsed + 10, (got, sent_s, elapsed)
    wait_for(lambda: "UDP replies over 200/s dropped" in server.log_text(), 5,
             what="the rate-limited log line")


# 5. the re-exec hand-over cannot be squeezed -----------------------------------------
def test_half_sent_requests_cannot_squeeze_out_a_waiting_client(servers, tmp_path):
    secret = make_secret(tmp_path / "secret")
    s = servers(extra=["--netreload-secret-file", str(secret)])
    junk = []
    try:
        for _ in range(126):  # with the signed client, 127 of the 128 connection slots
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            line = b"NETRELOAD/1 reload x="
            c.sendall(line + b"y" * (510 - len(line)))  # a request that never ends
            junk.append(c)
        s.set_version("v2")
        r = run_client("ping", "--secret-file", str(secret), s.target, timeout=60)
        assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
        assert s.get() == "v2"
    finally:
        for c in junk:
            c.close()
