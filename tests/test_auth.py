"""Authenticated pings: netreload-secret-file in the plugin, --secret-file in the client.

Signed requests reload; unsigned, forged, replayed and skewed ones never do,
and each gets the error a user can act on. A flood of them leaves the master
as healthy as the attacks in test_hostile.py do (health.assert_healthy).
"""
import os
import re
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from authtools import hello, key_of, reply_body, sign_request
from conftest import BUILD, run_client, tcp_exchange, uwsgi_cmd, uwsgi_env, wait_for
from health import assert_healthy, baseline_fds, wait_idle

GEN_LINE = re.compile(r"netreload: generation \d+: [\w-]+ reload")


def make_secret(path, text="correct horse battery staple", mode=0o600):
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return path


@pytest.fixture
def secret(tmp_path):
    return make_secret(tmp_path / "secret")


@pytest.fixture
def auth_server(servers, secret):
    return servers(extra=["--netreload-secret-file", str(secret)])


def signed(secret_path, server, body, ts=None):
    """body signed for server's instance the way PROTOCOL.md says (tests/authtools.py,
    independent of the C code). Returns (line, id): the id is the nonce."""
    key = key_of(secret_path)
    return sign_request(key, body, sid=hello(server.port, key), ts=ts)


def reloads(server):
    return len(GEN_LINE.findall(server.log_text()))


def test_signed_ping_reloads_unsigned_is_refused(auth_server, secret):
    auth_server.set_version("v2")
    r = auth_server.ping()
    assert r.returncode == 6, r.stderr
    assert "--secret-file" in r.stderr
    assert auth_server.get() == "v1"
    r = auth_server.ping("--secret-file", str(secret))
    assert r.returncode == 0, r.stderr
    assert auth_server.get() == "v2"
    env = dict(os.environ, NETRELOAD_SECRET_FILE=str(secret))
    r = run_client("status", auth_server.target, env=env, timeout=10)
    assert r.returncode == 0 and "generation 1" in r.stdout


def test_wrong_secret_is_refused(auth_server, tmp_path):
    wrong = make_secret(tmp_path / "wrong", "not the secret")
    r = auth_server.ping("--secret-file", str(wrong))
    assert r.returncode == 6
    assert f"rejected the signature made with the secret in {wrong}" in r.stderr
    assert reloads(auth_server) == 0


def test_plain_pings_do_not_reload_with_a_secret(auth_server):
    out = tcp_exchange(auth_server.port, b".\n")
    assert "error code=auth" in out
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(0.5)
        u.sendto(b".\n", ("127.0.0.1", auth_server.port))
        with pytest.raises(socket.timeout):
            u.recv(600)
    time.sleep(0.3)
    assert reloads(auth_server) == 0
    assert auth_server.get() == "v1"


def test_forged_and_replayed_requests(auth_server, secret, tmp_path):
    good, rid = signed(secret, auth_server, "NETRELOAD/2 reload wait=1")
    forged = good.replace(b"wait=1", b"wait=0")
    assert "error code=auth" in tcp_exchange(auth_server.port, forged)
    assert reloads(auth_server) == 0
    out = tcp_exchange(auth_server.port, good)
    assert f"accepted id={rid}" in out and f"live id={rid}" in out
    # both answers are signed (PROTOCOL.md, "Signed replies")
    assert all(reply_body(key_of(secret), l.encode()) for l in out.splitlines()), out
    assert reloads(auth_server) == 1
    # the same bytes again, before and after a re-exec, are a replay
    assert "replayed" in tcp_exchange(auth_server.port, good)
    r = auth_server.ping("--secret-file", str(secret), "-m", "graceful")
    assert r.returncode == 0, r.stderr
    assert "replayed" in tcp_exchange(auth_server.port, good)
    assert reloads(auth_server) == 2


def test_forged_and_replayed_flood_leaves_the_master_healthy(auth_server, secret, tmp_path):
    auth_server.client_args = ["--secret-file", str(secret)]
    pid0 = auth_server.pid
    wait_idle(auth_server)
    base = baseline_fds(pid0)
    good, rid = signed(secret, auth_server, "NETRELOAD/2 reload wait=0")
    assert f"accepted id={rid}" in tcp_exchange(auth_server.port, good)
    wait_idle(auth_server)
    wrong = key_of(make_secret(tmp_path / "wrong", "not the secret"))
    sid = hello(auth_server.port, key_of(secret))
    # TCP: replays of the good line, lines signed with another key, the good
    # line with a field changed (its mac no longer matches), all at once
    attacks = []
    for i in range(240):
        attacks.append([good, sign_request(wrong, "NETRELOAD/2 reload", sid=sid)[0],
                        good.replace(b"wait=0", b"wait=1")][i % 3])
    with ThreadPoolExecutor(max_workers=8) as ex:
        replies = list(ex.map(lambda line: tcp_exchange(auth_server.port, line), attacks))
    for line, rep in zip(attacks, replies):
        assert rep.startswith("NETRELOAD/1 error code=auth"), f"{line[:40]!r} got {rep!r}"
    assert sum("replayed" in r for r in replies) == 80
    # UDP: the same, 3,000 datagrams; none is answered (no reflection), none reloads
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        for i in range(3000):
            u.sendto(attacks[i % len(attacks)], ("127.0.0.1", auth_server.port))
        u.settimeout(0.5)
        with pytest.raises(socket.timeout):
            u.recv(600)
    wait_for(lambda: "dropped" in auth_server.log_text(), what="the rate-limited log line")
    assert reloads(auth_server) == 1
    assert_healthy(auth_server, pid0, base, "after-forgeries")
    assert reloads(auth_server) == 2


def test_clock_skew_is_reported_with_the_amount(auth_server, secret):
    out = tcp_exchange(auth_server.port,
                       signed(secret, auth_server, "NETRELOAD/2 reload",
                              ts=int(time.time()) - 500)[0])
    assert "code=clock-skew" in out
    m = re.search(r"clock is (\d+) s behind", out)
    assert m and 495 <= int(m.group(1)) <= 505, out
    assert reloads(auth_server) == 0


def test_udp_signed_retry_reloads_once_forged_is_silent(auth_server, secret):
    line, rid = signed(secret, auth_server, "NETRELOAD/2 reload wait=0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(line, ("127.0.0.1", auth_server.port))
        assert b"accepted id=%s" % rid.encode() in u.recv(600)
        wait_for(lambda: reloads(auth_server) == 1, what="the signed UDP reload")
        u.sendto(line, ("127.0.0.1", auth_server.port))  # a retry: same id, same nonce
        assert b"accepted id=%s" % rid.encode() in u.recv(600)
        u.sendto(line.replace(b"wait=0", b"wait=1"), ("127.0.0.1", auth_server.port))
        u.settimeout(0.5)
        with pytest.raises(socket.timeout):
            u.recv(600)
    wait_for(lambda: "dropped" in auth_server.log_text(), what="the rate-limited log line")
    assert reloads(auth_server) == 1


def uwsgi_startup_error(tmp_path, *extra):
    (tmp_path / "app.py").write_text("def application(e, s):\n    return []\n")
    r = subprocess.run([*uwsgi_cmd(BUILD),
                        "--plugin", "netreload", "--netreload-port", "1", "--master",
                        "--http-socket", "127.0.0.1:0", "--wsgi-file", str(tmp_path / "app.py"),
                        *extra], capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL, env=uwsgi_env())
    return r.returncode, r.stdout + r.stderr


def test_missing_or_empty_secret_stops_startup(tmp_path):
    rc, log = uwsgi_startup_error(tmp_path, "--netreload-secret-file", str(tmp_path / "nope"))
    assert rc != 0 and "netreload-secret-file" in log and "cannot read" in log
    empty = tmp_path / "empty"
    empty.write_text("\n")
    rc, log = uwsgi_startup_error(tmp_path, "--netreload-secret-file", str(empty))
    assert rc != 0 and "is empty" in log


def test_fifo_or_directory_as_secret_stops_startup_at_once(tmp_path):
    """open() of a FIFO waits for a writer: it used to hang startup for good."""
    fifo = tmp_path / "secret.fifo"
    os.mkfifo(fifo, 0o600)
    for path, kind in ((fifo, "FIFO"), (tmp_path, "directory")):
        t0 = time.monotonic()
        rc, log = uwsgi_startup_error(tmp_path, "--netreload-secret-file", str(path))
        assert rc != 0 and f"is a {kind}, not a regular file" in log, log
        assert time.monotonic() - t0 < 10
    r = run_client("ping", "--secret-file", str(fifo), "127.0.0.1:1", timeout=10)
    assert r.returncode != 0 and "is a FIFO, not a regular file" in r.stderr, r.stderr


def test_loose_secret_warns_and_non_loopback_needs_no_insecure(servers, tmp_path):
    loose = make_secret(tmp_path / "loose", mode=0o644)
    s = servers(extra=["--netreload-secret-file", str(loose), "--netreload-bind", "0.0.0.0"])
    assert "readable by group or others" in s.log_text()
    assert "chmod 600" in s.log_text()
    r = run_client("ping", "--secret-file", str(loose), s.target)
    assert r.returncode == 0, r.stderr
    assert "readable by group or others" in r.stderr


def loaded_libraries(args):
    """Run the client with the dynamic loader telling which files it opens."""
    r = run_client(*args, env=dict(os.environ, LD_DEBUG="files"))
    return r, re.findall(r"file=(\S*libcrypto\S*)", r.stderr)


def test_libcrypto_is_loaded_only_to_sign(servers, auth_server, secret):
    """The client links no libcrypto (it cost ~4 ms of every start): a ping without a
    secret never loads it, a signed one loads it and is believed."""
    plain = servers()
    r, libs = loaded_libraries(["ping", plain.target])
    assert r.returncode == 0, r.stderr[-2000:]
    assert libs == [], libs
    r, libs = loaded_libraries(["ping", "--secret-file", str(secret), auth_server.target])
    assert r.returncode == 0, r.stderr[-2000:]
    assert any("libcrypto.so" in lib for lib in libs), r.stderr[-2000:]


def test_a_libcrypto_that_cannot_load_is_named_with_the_fix(auth_server, secret, tmp_path):
    broken = tmp_path / "lib"
    broken.mkdir()
    for name in ("libcrypto.so.3", "libcrypto.so.1.1"):
        (broken / name).write_bytes(b"not a library")
    env = dict(os.environ, LD_LIBRARY_PATH=str(broken))
    r = run_client("ping", "--secret-file", str(secret), auth_server.target, env=env)
    assert r.returncode == 2, r.stderr
    assert "cannot load OpenSSL's libcrypto.so" in r.stderr and "apt-get install libssl3" in r.stderr
    assert reloads(auth_server) == 0
