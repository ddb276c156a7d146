"""What the client says when something is wrong: usage errors, options that
mean the same in every command, secrets, and ports that are not netreload.

Each message is read the way a user reads it: from the real binary, against a
real uWSGI (or, for other services, a real HTTP server and plain sockets).
"""
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from authtools import hello, key_of, sign_request
from conftest import CLIENT, ROOT, accepts_tcp, free_port, run_client, tcp_exchange, wait_for

TRY = {None: "try 'netreload --help'", "ping": "try 'netreload ping --help'",
       "status": "try 'netreload status --help'", "watch": "try 'netreload watch --help'"}


def assert_usage(r, cmd, first):
    """Exactly two lines on stderr: what is wrong, and where the help is; exit 2."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.splitlines() == [first, TRY[cmd]], r.stderr


# ---- usage errors ---------------------------------------------------------------

@pytest.mark.parametrize("args,cmd,first", [
    ([], None, "netreload: no command given (ping, status or watch)"),
    (["pong"], None, "netreload: unknown command 'pong' (ping, status or watch)"),
    (["ping", "--bogus", "127.0.0.1:9"], "ping", "netreload ping: unknown option '--bogus'"),
    (["ping", "-Z", "127.0.0.1:9"], "ping", "netreload ping: unknown option '-Z'"),
    (["ping", "-qZ", "127.0.0.1:9"], "ping", "netreload ping: unknown option '-Z'"),
    (["ping", "127.0.0.1:9", "-t"], "ping", "netreload ping: option '-t' needs a value"),
    (["ping", "--json=yes", "127.0.0.1:9"], "ping", "netreload ping: option '--json' takes no value"),
    (["ping"], "ping", "netreload ping: no target given (e.g. 127.0.0.1:9001)"),
    (["ping", "-m", "nope", "9"], "ping",
     "netreload ping: unknown mode 'nope' (graceful, chain, workers, brutal-workers, brutal)"),
    (["ping", "--timeout", "abc", "9"], "ping", "netreload ping: bad --timeout 'abc': give seconds"),
    (["status", "--nope", "9"], "status", "netreload status: unknown option '--nope'"),
    (["status", "9", "--timeout"], "status", "netreload status: option '--timeout' needs a value"),
    (["watch", "--bogus"], "watch", "netreload watch: unknown option '--bogus'"),
    (["watch", "--t", "1"], "watch", "netreload watch: ambiguous option '--t' (--to, --targets, --timeout)"),
    (["watch", "."], "watch",
     "netreload watch: no target: add --to HOST:PORT (e.g. --to 127.0.0.1:9001)"),
])
def test_usage_error_is_one_line_and_where_the_help_is(args, cmd, first):
    assert_usage(run_client(*args, timeout=10), cmd, first)


def test_usage_errors_after_parsing_have_the_same_form(tmp_path):
    r = run_client("watch", "--to", "127.0.0.1:9", str(tmp_path / "nope"), timeout=10)
    assert_usage(r, "watch", f"netreload watch: cannot watch '{tmp_path / 'nope'}': "
                 "No such file or directory (give an existing directory)")
    r = subprocess.run([str(CLIENT), "ping", "--root", "nope", "-c", "x.py", "9"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=10)
    assert_usage(r, "ping", "netreload ping: --root 'nope' is not a directory (give the "
                 "directory the changed paths are under; default .)")


def test_getopt_never_speaks_for_us():
    """getopt's own messages name the command as a program ("ping: unrecognized
    option"), which reads like iputils' ping."""
    for args in (["ping", "--bogus"], ["ping", "-t"], ["status", "-x"], ["watch", "--nope"]):
        r = run_client(*args, timeout=10)
        assert r.returncode == 2
        assert all(l.startswith(("netreload:", "netreload ping:", "netreload status:",
                                 "netreload watch:", "try 'netreload")) for l in
                   r.stderr.splitlines()), r.stderr
        assert "unrecognized" not in r.stderr and "invalid option" not in r.stderr


# ---- -t is --timeout everywhere -------------------------------------------------------

@pytest.mark.parametrize("cmd", ["ping", "status", "watch"])
def test_dash_t_is_timeout_in_every_command(cmd):
    h = run_client(cmd, "--help", timeout=10).stdout
    assert "-t, --timeout SEC" in h, h
    r = run_client(cmd, "-t", "abc", "--to" if cmd == "watch" else "9", "127.0.0.1:9", timeout=10)
    assert_usage(r, cmd, f"netreload {cmd}: bad --timeout 'abc': give seconds")


def test_watch_dash_t_sets_the_timeout_and_capital_t_still_works(server, tmp_path):
    """watch -t 30 --to SERVER reloads it (before, -t was --to and 30 a target
    that is not there); -T, the old short form of --timeout, still works."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "views.py").write_text("x = 1\n")
    for flag in ("-t", "-T"):
        r = subprocess.run([str(CLIENT), "watch", "--stdin", flag, "30", "--to", server.target,
                            str(code)], input=f"{code / 'views.py'}\n", capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, (flag, r.stdout, r.stderr)
        assert f"{server.target} live in" in r.stdout, (flag, r.stdout)
    assert "--to" in run_client("watch", "-t", "1", "--to", timeout=10).stderr
    assert_usage(run_client("watch", "-T", "0", "--to", "9", timeout=10), "watch",
                 "netreload watch: bad --timeout '0': give seconds")


def test_docs_give_watch_dash_t_as_timeout():
    man = (ROOT / "client" / "netreload.1").read_text()
    assert '.BR \\-t ", " \\-\\-to' not in man
    assert man.count('.BR \\-t ", " \\-\\-timeout') == 3  # ping, status, watch


# ---- secrets ----------------------------------------------------------------------

def make_secret(path, text):
    path.write_text(text + "\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def secret(tmp_path):
    return make_secret(tmp_path / "secret", "correct horse battery staple")


@pytest.fixture
def wrong(tmp_path):
    return make_secret(tmp_path / "wrong", "not the secret")


@pytest.fixture
def auth_server(servers, secret):
    return servers(extra=["--netreload-secret-file", str(secret)])


def client_env(**env):
    e = {k: v for k, v in os.environ.items() if k != "NETRELOAD_SECRET_FILE"}
    e.update(env)
    return e


def ping(*args, env=None):
    return subprocess.run([str(CLIENT), "ping", *args], capture_output=True, text=True,
                          timeout=60, env=env or client_env())


@pytest.mark.parametrize("udp", [[], ["--udp"]], ids=["tcp", "udp"])
def test_no_secret_given_but_the_server_requires_one(auth_server, udp):
    r = ping(*udp, "-t", "1", auth_server.target)
    assert r.returncode == 6, r.stderr
    assert (f"{auth_server.target} requires signed requests, and no secret was given: pass "
            "--secret-file FILE") in r.stderr, r.stderr
    assert "NETRELOAD_SECRET_FILE" in r.stderr
    assert auth_server.get() == "v1"


@pytest.mark.parametrize("udp", [[], ["--udp"]], ids=["tcp", "udp"])
def test_a_secret_file_the_server_rejects_is_named(auth_server, secret, wrong, udp):
    """Over UDP the server answers nothing it cannot verify: after the UDP
    timeout one TCP exchange on the same port says why (exit 6, not 4)."""
    r = ping(*udp, "-t", "1", "--secret-file", str(wrong), auth_server.target)
    assert r.returncode == 6, r.stderr
    assert (f"{auth_server.target} rejected the signature made with the secret in {wrong}: "
            "it is not the secret in the server's netreload-secret-file") in r.stderr, r.stderr
    if udp:
        assert "no answer over UDP" in r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert auth_server.get() == "v1"
    # the right one reloads, over either transport
    auth_server.set_version("v2")
    r = ping(*udp, "--secret-file", str(secret), auth_server.target)
    assert r.returncode == 0, r.stderr
    assert auth_server.get() == "v2"


@pytest.mark.parametrize("given", ["wrong", "none"])
def test_over_udp_a_rejected_secret_is_named_before_the_timeout(auth_server, wrong, given):
    """Over UDP the server answers nothing it cannot verify. After a second of
    silence one look over TCP asks why; a refusal ends the ping then, not
    after the whole --timeout."""
    args = ["--secret-file", str(wrong)] if given == "wrong" else []
    t0 = time.monotonic()
    r = ping("--udp", "-t", "20", *args, auth_server.target)
    took = time.monotonic() - t0
    assert r.returncode == 6, r.stderr
    why = (f"rejected the signature made with the secret in {wrong}" if given == "wrong"
           else "requires signed requests, and no secret was given")
    assert f"{auth_server.target} {why}" in r.stderr, r.stderr
    assert "no answer over UDP" in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert took < 5, f"took {took:.1f} s"
    assert auth_server.get() == "v1"


def test_a_rejected_secret_from_the_environment_says_so(auth_server, wrong):
    r = ping(auth_server.target, env=client_env(NETRELOAD_SECRET_FILE=str(wrong)))
    assert r.returncode == 6, r.stderr
    assert f"the secret in {wrong}, named by NETRELOAD_SECRET_FILE:" in r.stderr, r.stderr


@pytest.mark.parametrize("cmd", [["ping", "9"], ["status", "9"], ["watch", "--to", "9"]])
def test_a_missing_secret_file_from_the_environment_says_so(tmp_path, cmd):
    missing = tmp_path / "no-such-secret"
    r = subprocess.run([str(CLIENT), *cmd], capture_output=True, text=True, timeout=10,
                       env=client_env(NETRELOAD_SECRET_FILE=str(missing)))
    assert r.returncode == 2, r.stderr
    assert f"cannot read secret file {missing}: No such file or directory" in r.stderr
    assert "named by NETRELOAD_SECRET_FILE in the environment" in r.stderr, r.stderr
    # given on the command line, it is not blamed on the environment
    r = run_client(cmd[0], "--secret-file", str(missing), *cmd[1:], timeout=10)
    assert r.returncode == 2 and "NETRELOAD_SECRET_FILE" not in r.stderr, r.stderr


class SilentUdpNetreloadTcp:
    """A port whose UDP side swallows everything (a UDP forward that loses it)
    and whose TCP side answers like a netreload server without a secret."""

    STATUS = (b"NETRELOAD/1 status id=probe gen=1 state=idle mode=graceful workers=1/1 apps=1 "
              b"last=none last_ms=0 pid=1\n")

    def __init__(self):
        for _ in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket()
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(4)
        self.lines = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                c, _ = self.tcp.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                try:
                    self.lines.append(c.recv(600))
                    c.sendall(self.STATUS)
                except OSError:
                    pass

    def close(self):
        self.tcp.close()
        self.udp.close()
        self.thread.join(2)


def test_udp_lost_on_the_way_is_told_from_a_silent_server():
    s = SilentUdpNetreloadTcp()
    try:
        r = ping("--udp", "-t", "1", f"127.0.0.1:{s.port}")
        assert r.returncode == 4, r.stderr
        assert "no answer over UDP within 1.0 s, but TCP on the same port answers" in r.stderr
        # the probe asked for a status: it reloads nothing
        assert s.lines and all(b" status " in l for l in s.lines), s.lines
    finally:
        s.close()


# ---- ports that are not netreload --------------------------------------------------

NOT_NETRELOAD = "not a netreload port"


def test_the_apps_http_socket_is_named(server):
    """uWSGI's http-socket, one digit away from netreload-port: it waits for
    the rest of a request, then hangs up; its UDP side is closed."""
    r = ping("-t", "10", f"127.0.0.1:{server.http_port}")
    assert r.returncode == 5, r.stderr
    assert NOT_NETRELOAD in r.stderr and "did uWSGI exit" not in r.stderr, r.stderr
    assert "http-socket" in r.stderr
    # and the netreload port of the same uWSGI is still netreload
    server.set_version("v2")
    r = ping(server.target)
    assert r.returncode == 0 and server.get() == "v2", r.stderr


def test_a_uwsgi_protocol_socket_is_named(servers):
    port = free_port()
    s = servers(extra=["--socket", f"127.0.0.1:{port}"])
    r = ping(f"127.0.0.1:{port}")
    assert r.returncode == 5, r.stderr
    assert NOT_NETRELOAD in r.stderr and "did uWSGI exit" not in r.stderr, r.stderr
    assert s.get() == "v1"


def test_an_http_server_is_named(tmp_path):
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                         cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: accepts_tcp(port), what="http.server to listen")
        for args in ([], ["--udp"]):
            r = ping(*args, "-t", "2", f"127.0.0.1:{port}")
            assert r.returncode == 5, (args, r.stderr)
            assert f"127.0.0.1:{port} answered HTTP" in r.stderr, (args, r.stderr)
            assert "likely the app's port" in r.stderr
    finally:
        p.kill()
        p.wait()


def test_other_bytes_are_quoted():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def run():
        try:
            c, _ = srv.accept()
        except OSError:
            return
        with c:
            c.sendall(b"SSH-2.0-OpenSSH_9.2p1 \x1b[2J\r\n")
    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        r = ping("-t", "5", f"127.0.0.1:{port}")
        assert r.returncode == 5, r.stderr
        assert ('answered something that is not netreload ("SSH-2.0-OpenSSH_9.2p1 ?[2J")'
                in r.stderr), r.stderr
    finally:
        srv.close()
        t.join(2)


def test_the_server_tells_a_bad_signature_from_a_missing_one(auth_server, secret, wrong):
    """For any client (nc, a script): a request signed with another secret is
    told "bad signature", an unsigned one that a signature is needed."""
    sid = hello(auth_server.port, key_of(secret))
    line, _ = sign_request(key_of(wrong), "NETRELOAD/2 reload", sid=sid)
    out = tcp_exchange(auth_server.port, line)
    assert "error code=auth" in out and "bad signature" in out, out
    out = tcp_exchange(auth_server.port, b"NETRELOAD/1 reload\n")
    assert "error code=auth" in out and "needs requests signed" in out, out
    assert auth_server.get() == "v1"
