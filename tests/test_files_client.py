"""The changed files a reload lists (PROTOCOL.md, "Changed files"), as the client
sends them: `netreload watch` after editor saves, deletions and bursts, and
`netreload ping --changed`; signatures over the list; the stale failure.

The server here is a stand-in: a Python socket on a free port that records the
bytes of each request (its line and the file lines after it) and answers
`accepted` then `live` (or a given final line), echoing the request's id (and,
given the secret, answering hello and signing as PROTOCOL.md says). Every
expectation about the bytes is computed here, independently of the C code.
"""
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from authtools import sign_reply
from conftest import CLIENT, wait_for
from test_watch import QUIET, Watcher, save_atomic, save_jetbrains, save_vim

LIVE = b"NETRELOAD/1 live gen=1 ms=1 stop_ms=0\n"
STALE = (b"NETRELOAD/1 failed gen=1 ms=10004 stop_ms=0 stale=2 "
         b"reason=the share did not catch up: 2 files still old after 10 s\n")


class Request:
    def __init__(self, line, rest):
        self.line = line  # the request line, with its LF
        self.rest = rest  # everything after it
        words = line.decode().split()
        self.verb = words[1]
        self.fields = dict(w.split("=", 1) for w in words[2:])
        self.files = rest.decode().splitlines(keepends=True)

    def paths(self):
        return [f.split(" ")[4].rstrip("\n") for f in self.files]


def answer_to(line, reply, key=None):
    """reply (a line without id) as the answer to the request line: with its id, and
    signed (protocol 2) when there is a key."""
    m = re.search(rb" id=([\w.-]+)", line)
    head, kind, rest = reply.rstrip(b"\n").split(b" ", 2)
    text = b" ".join([head, kind] + ([b"id=" + m.group(1)] if m else []) + [rest])
    return sign_reply(key, text.replace(b"NETRELOAD/1", b"NETRELOAD/2")) if key else text + b"\n"


class FakeServer:
    """Records each TCP request; answers accepted, then final (after hold is set).
    With key, it answers hello with a made-up instance id and signs its answers."""

    def __init__(self, final=LIVE, key=None):
        self.final = final
        self.key = key
        self.requests = []
        self.hold = threading.Event()
        self.hold.set()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.target = f"127.0.0.1:{self.port}"
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self.answer(conn)
                except OSError:
                    pass

    def answer(self, conn):
        conn.settimeout(5)
        buf = b""
        while b"\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
        line, _, rest = buf.partition(b"\n")
        if line.startswith(b"NETRELOAD/2 hello"):
            conn.sendall(answer_to(line, b"NETRELOAD/2 hello sid=" + b"5a" * 16, self.key))
            return
        m = re.search(rb" files=(\d+)", line)
        n = int(m.group(1)) if m else 0
        while rest.count(b"\n") < n:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        self.requests.append(Request(line + b"\n", rest))
        conn.sendall(answer_to(line, b"NETRELOAD/1 accepted gen=1 mode=graceful\n", self.key))
        self.hold.wait(10)
        conn.sendall(answer_to(line, self.final, self.key))

    def wait_requests(self, n, timeout=10):
        wait_for(lambda: len(self.requests) >= n, timeout, what=f"{n} request(s)")
        return self.requests

    def close(self):
        self.stopped = True
        self.hold.set()
        self.sock.close()


@pytest.fixture
def fake():
    servers = []

    def make(final=LIVE, key=None):
        s = FakeServer(final, key)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def watch(tmp_path, code):
    started = []

    def make(*args, cwd=None, env=None):
        w = Watcher(tmp_path, len(started), args, cwd or code, env=env)
        started.append(w)
        return w.started()

    yield make
    for w in started:
        w.stop()


# ---- what the bytes must be, computed here -----------------------------------

def quote(rel):
    """PROTOCOL.md: bytes outside 0x21-0x7e, and '%', as %XX (uppercase)."""
    return "".join(chr(b) if 0x21 <= b <= 0x7e and b != 0x25 else f"%{b:02X}"
                   for b in os.fsencode(rel))


def file_line(root, rel):
    """The line for root/rel as it is now (following symlinks), or deleted."""
    p = root / rel
    if not os.path.exists(p):
        return f"F - - - {quote(rel)}\n"
    st = os.stat(p)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    return (f"F {st.st_size} {st.st_mtime_ns // 10**9}.{st.st_mtime_ns % 10**9:09d} "
            f"{digest} {quote(rel)}\n")


def check_list(req):
    """files=, sum= and the lines agree, and every line has the protocol's shape."""
    n = int(req.fields.get("files", "0"))
    assert len(req.files) == n, req.rest
    if n:
        assert req.fields["sum"] == hashlib.sha256(req.rest).hexdigest()
    else:
        assert "sum" not in req.fields and req.rest == b""
    for f in req.files:
        assert len(f.encode()) <= 512 and f.endswith("\n"), f
        assert re.fullmatch(r"F (- - -|\d+ \d+\.\d{9} ([0-9a-f]{64}|-)) [\x21-\x7e]+\n", f), f


# ---- watch ------------------------------------------------------------------

@pytest.mark.parametrize("save", [save_atomic, save_vim, save_jetbrains],
                         ids=["atomic", "vim", "jetbrains"])
def test_editor_save_lists_exactly_the_saved_file(fake, code, watch, save):
    srv = fake()
    w = watch("--to", srv.target)
    save(code / "views.py", "x = 2\n")
    req = srv.wait_requests(1)[0]
    time.sleep(QUIET)
    assert len(srv.requests) == 1, [r.line for r in srv.requests]
    check_list(req)
    assert req.fields["files"] == "1" and "more" not in req.fields, req.line
    assert req.files == [file_line(code, "views.py")]
    assert req.files[0].split(" ")[1] == "6"  # "x = 2\n"
    w.wait_lives(1)


def test_deleted_file_is_listed_with_dashes(fake, code, watch):
    srv = fake()
    watch("--to", srv.target)
    os.unlink(code / "pkg" / "models.py")
    req = srv.wait_requests(1)[0]
    check_list(req)
    assert req.files == ["F - - - pkg/models.py\n"]


def test_seventy_changes_list_64_and_count_6(fake, code, watch):
    srv = fake()
    watch("--to", srv.target, "--debounce", "300", "--max-delay", "5000")
    names = [f"m{i:02d}.py" for i in range(70)]
    for name in names:
        (code / name).write_text(f"v = {name!r}\n")
    req = srv.wait_requests(1)[0]
    time.sleep(QUIET)
    assert len(srv.requests) == 1, [r.line for r in srv.requests]
    check_list(req)
    assert req.fields["files"] == "64" and req.fields["more"] == "6", req.line
    assert len(set(req.paths())) == 64 and set(req.paths()) <= set(names)
    for rel, line in zip(req.paths(), req.files):
        assert line == file_line(code, rel)


def test_odd_names_are_percent_encoded(fake, code, watch):
    srv = fake()
    watch("--to", srv.target)
    d = code / "dir with space"
    d.mkdir()
    time.sleep(0.2)  # let the watcher add the new directory
    (d / "caf\u00e9 100%.py").write_text("z = 1\n")
    req = srv.wait_requests(1)[0]
    check_list(req)
    assert req.paths()[-1] == "dir%20with%20space/caf%C3%A9%20100%25.py", req.files
    assert req.files[-1] == file_line(code, "dir with space/caf\u00e9 100%.py")


def test_changes_during_a_reload_are_listed_together_next(fake, code, watch):
    """Batches that wait for a ping in flight merge, and so do their files."""
    srv = fake()
    srv.hold.clear()
    w = watch("--to", srv.target)
    (code / "views.py").write_text("x = 2\n")
    srv.wait_requests(1)
    (code / "pkg" / "models.py").write_text("y = 2\n")
    time.sleep(0.2)  # another batch
    (code / "new.py").write_text("n = 1\n")
    time.sleep(0.2)
    srv.hold.set()
    reqs = srv.wait_requests(2)
    time.sleep(QUIET)
    assert len(reqs) == 2, [r.line for r in reqs]
    assert reqs[0].paths() == ["views.py"]
    check_list(reqs[1])
    assert sorted(reqs[1].paths()) == ["new.py", "pkg/models.py"]
    assert sorted(reqs[1].files) == sorted([file_line(code, "new.py"),
                                            file_line(code, "pkg/models.py")])
    w.wait_lives(2)


def test_only_the_first_dir_is_listed(fake, code, tmp_path, watch):
    srv = fake()
    other = tmp_path / "other"
    other.mkdir()
    watch("--to", srv.target, str(code), str(other))
    (other / "lib.py").write_text("l = 1\n")
    req = srv.wait_requests(1)[0]
    check_list(req)
    assert "files" not in req.fields and req.fields["more"] == "1", req.line


def test_no_files_sends_the_old_request(fake, code, watch):
    srv = fake()
    watch("--to", srv.target, "--no-files")
    (code / "views.py").write_text("x = 2\n")
    req = srv.wait_requests(1)[0]
    assert not {"files", "more", "sum"} & set(req.fields) and req.rest == b"", req.line


def test_signed_request_covers_the_list(fake, code, tmp_path, watch):
    secret = tmp_path / "secret"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)
    key = secret.read_bytes().rstrip()
    srv = fake(key=key)
    watch("--to", srv.target, "--secret-file", str(secret))
    (code / "views.py").write_text("x = 2\n")
    req = srv.wait_requests(1)[0]
    check_list(req)
    line = req.line.rstrip(b"\n")
    signed, _, mac = line.rpartition(b" mac=")
    assert hmac.compare_digest(hmac.new(key, signed, hashlib.sha256).hexdigest().encode(), mac)
    # the MAC covers sum=, which covers the lines; the request names the instance
    assert list(req.fields)[-4:] == ["sid", "ts", "nonce", "mac"]
    assert req.fields["sid"] == "5a" * 16 and req.fields["id"] == req.fields["nonce"]
    assert req.fields["sum"] == hashlib.sha256(req.rest).hexdigest()
    assert req.files == [file_line(code, "views.py")]


# ---- ping ---------------------------------------------------------------------

def ping(*args, cwd):
    """`netreload ping ARGS` run in cwd (--changed paths are relative to it)."""
    return subprocess.run([str(CLIENT), "ping", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=30)


def test_ping_changed_lists_files_relative_to_root(fake, code):
    srv = fake()
    os.symlink("views.py", code / "link.py")
    r = ping("--changed", "views.py", "-c", "pkg/models.py", "-c", "./pkg/../gone.py",
             "-c", "link.py", "-c", "pkg", srv.target, cwd=code)
    assert r.returncode == 0, r.stderr
    req = srv.requests[0]
    check_list(req)
    assert req.paths() == ["views.py", "pkg/models.py", "gone.py", "link.py"]
    assert req.files == [file_line(code, p) for p in ("views.py", "pkg/models.py", "gone.py",
                                                       "link.py")]
    assert req.files[3].split(" ")[1] == "6"  # the symlink's target: "x = 1\n"
    assert req.fields["more"] == "1"  # the directory


def test_ping_changed_with_root_from_elsewhere(fake, code, tmp_path):
    srv = fake()
    os.symlink(code, tmp_path / "link")
    r = ping("--root", code, "-c", code / "pkg" / "models.py", "-c", "link/views.py",
             srv.target, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert srv.requests[0].paths() == ["pkg/models.py", "views.py"]
    # the root itself: something changed, the server checks the whole tree
    r = ping("--root", "link", "-c", "code", srv.target, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    req = srv.requests[1]
    assert req.fields["more"] == "1" and "files" not in req.fields, req.line


def test_ping_changed_outside_root_is_a_usage_error(fake, code, tmp_path):
    srv = fake()
    (tmp_path / "elsewhere.py").write_text("")
    for bad in ("../elsewhere.py", tmp_path / "elsewhere.py", "/etc/passwd"):
        r = ping("--changed", bad, srv.target, cwd=code)
        assert r.returncode == 2, r.stderr
        assert "is not a path inside" in r.stderr and str(code) in r.stderr, r.stderr
    r = ping("--root", code / "views.py", "-c", "views.py", srv.target, cwd=code)
    assert r.returncode == 2 and "--root" in r.stderr, r.stderr
    time.sleep(0.2)
    assert srv.requests == []


def test_ping_no_files_wins_over_changed(fake, code):
    srv = fake()
    r = ping("--no-files", "--changed", "views.py", srv.target, cwd=code)
    assert r.returncode == 0, r.stderr
    req = srv.requests[0]
    assert not {"files", "more", "sum"} & set(req.fields) and req.rest == b"", req.line


def test_ping_over_udp_only_counts_the_files(code):
    """No file lines over UDP: the request line says more=N instead."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    port = sock.getsockname()[1]
    got = []

    def answer():
        data, peer = sock.recvfrom(4096)
        got.append(data)
        sock.sendto(answer_to(data, b"NETRELOAD/1 accepted gen=1 mode=graceful\n"), peer)
        sock.sendto(answer_to(data, LIVE), peer)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        r = ping("--udp", "-c", "views.py", "-c", "gone.py", f"127.0.0.1:{port}", cwd=code)
        t.join(10)
    finally:
        sock.close()
    assert r.returncode == 0, r.stderr
    assert got[0].count(b"\n") == 1 and b" more=2" in got[0], got
    assert b"files=" not in got[0] and b"sum=" not in got[0], got


def test_stale_failure_exits_1_and_says_what_to_do(fake, code):
    srv = fake(final=STALE)
    r = ping("--changed", "views.py", srv.target, cwd=code)
    assert r.returncode == 1, r.stderr
    err = r.stderr
    assert "reload failed" in err and "the share did not catch up" in err, err
    # the failure line first, then the advice
    assert err.index("reload failed") < err.index("actimeo=0")
    for advice in ("actimeo=0", "noac", "lookupcache=positive", "cache=none",
                   "PYTHONDONTWRITEBYTECODE=1", "netreload-share-timeout", "default 10"):
        assert advice in err, err
    r = ping("--json", "--changed", "views.py", srv.target, cwd=code)
    assert r.returncode == 1
    event = json.loads(r.stdout)
    assert event["event"] == "failed" and event["stale"] == 2, event
    assert "actimeo" not in r.stderr


def test_watch_says_it_once(fake, code, watch):
    srv = fake(final=STALE)
    w = watch("--to", srv.target)
    (code / "views.py").write_text("x = 2\n")
    srv.wait_requests(1)
    wait_for(lambda: "actimeo=0" in w.stderr(), 10, what="the advice")
    (code / "views.py").write_text("x = 3\n")
    srv.wait_requests(2)
    wait_for(lambda: w.stdout().count("failed") >= 2, 10, what="two failed lines")
    assert w.stderr().count("actimeo=0") == 1, w.stderr()


# ---- with the real plugin -------------------------------------------------------

def test_real_server_waits_for_the_listed_file_then_reloads(servers, code):
    server = servers(extra=["--netreload-root", str(code)])
    (code / "views.py").write_text("x = 2\n")
    r = ping("--changed", "views.py", "-c", "gone.py", server.target, cwd=code)
    assert r.returncode == 0, r.stderr + server.log_text()[-2000:]
    assert "live in" in r.stdout


def test_real_server_that_never_sees_the_file_fails_stale(servers, code, tmp_path):
    """The server's tree holds an old views.py that never becomes the saved one, as
    on a share that keeps serving its cache: exit 1, stale=1, and the advice."""
    guest = tmp_path / "guest"
    guest.mkdir()
    (guest / "views.py").write_text("x = 0  # the old version\n")
    server = servers(extra=["--netreload-root", str(guest), "--netreload-share-timeout", "1"])
    r = ping("--json", "--changed", "views.py", server.target, cwd=code)
    assert r.returncode == 1, r.stdout + r.stderr
    event = json.loads(r.stdout)
    assert event["event"] == "failed" and event["stale"] == 1, event
    assert "views.py" in event["reason"], event
    r = ping("--changed", "views.py", server.target, cwd=code)
    assert r.returncode == 1
    assert "actimeo=0" in r.stderr and "netreload-root" in r.stderr, r.stderr
