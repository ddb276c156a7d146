"""What the client prints that it did not write itself (issue 12, findings 8
and 9): a server's fields in --json, and file names and server text on a
terminal. Every JSON string is escaped; control and format characters and
bytes that are not UTF-8 are shown escaped, so neither a hostile server nor a
hostile file name can inject JSON keys or drive the terminal.
"""
import json
import os
import re

from conftest import run_client, wait_for
from fakenet import FakeTcp
from test_watch import Watcher

HOSTILE_STATE = 'x","i":"1'  # on 0.1: "state":"x","i":"1", an extra key
HOSTILE_REASON = 'he said "hi" \\ then } {"injected": 1'


def echo_id(line):
    """ID for an answer to line: " id=..." as the request had it, or ""."""
    m = re.search(rb" id=\S+", line)
    return m.group(0).decode() if m else ""


def status_answer(line):
    return [(f"NETRELOAD/1 status{echo_id(line)} gen=3 state={HOSTILE_STATE} mode=graceful "
             f"workers=1/1 apps=1 last=failed\",\"x\":\"y last_ms=5 pid=7 "
             f"reason={HOSTILE_REASON}\n").encode()]


def test_status_json_escapes_every_server_field():
    with FakeTcp(status_answer) as srv:
        r = run_client("status", "--json", srv.target, timeout=15)
    assert r.returncode == 0, r.stderr
    [obj] = [json.loads(l) for l in r.stdout.splitlines()]
    assert "i" not in obj and set(obj) == {"event", "time", "target", "exit", "ms", "gen", "state", "mode", "workers_live",
                        "workers_total", "apps", "last", "last_ms", "pid", "reason"}, obj
    assert obj["state"] == HOSTILE_STATE and obj["last"] == 'failed","x":"y'
    assert obj["reason"] == HOSTILE_REASON


def failed_answer(line):
    rid = echo_id(line)
    return [f"NETRELOAD/1 accepted{rid} gen=1 mode=graceful\n".encode(),
            f"NETRELOAD/1 failed{rid} gen=1 ms=1 stop_ms=0 reason={HOSTILE_REASON}\n".encode()]


def test_ping_json_escapes_the_reason():
    with FakeTcp(failed_answer) as srv:
        r = run_client("ping", "--json", srv.target, timeout=15)
    assert r.returncode == 1, r.stderr
    [obj] = [json.loads(l) for l in r.stdout.splitlines()]
    assert obj["event"] == "failed" and obj["reason"] == HOSTILE_REASON, obj
    assert "injected" not in obj


# Names an attacker (or an unlucky unzip) can give files in the watched tree.
NAMES = {
    "clear\x1b[2J\x1b[31mred.py": r"clear\x1b[2J\x1b[31mred.py",
    "two\nlines.py": r"two\nlines.py",
    "bell\x07tab\t.py": r"bell\x07tab\t.py",
    "txt.\u202eyp.py": r"txt.\u202eyp.py",   # right-to-left override: shows as "txt.py.py"
    "back\\slash.py": r"back\\slash.py",
    "caf\u00e9.py": "caf\u00e9.py",           # plain UTF-8 stays as it is
}


def json_lives(w):
    return w.stdout().count('"event":"live"')


def test_watch_shows_control_characters_in_file_names_escaped(server, code, tmp_path):
    w = Watcher(tmp_path, 0, ["--to", server.target, "--no-files", "-v"], code).started()
    j = Watcher(tmp_path, 1, ["--to", server.target, "--no-files", "--json"], code).started()
    try:
        names = [*NAMES, os.fsdecode(b"bad\xff.py")]
        for n, name in enumerate(names, 1):  # one name per reload, so each is the one shown
            (code / name).write_text("x = 1\n")
            w.wait_lives(n, timeout=30)
            wait_for(lambda: json_lives(j) >= n, 30, what=f"{n} JSON live events")
    finally:
        w.stop()
        j.stop()
    out = w.out.read_bytes() + w.err.read_bytes()
    for raw in (b"\x1b", b"\x07", b"\t.py", b"\xe2\x80\xae", b"\xff"):
        assert raw not in out, (raw, out)
    text = out.decode()
    for name, shown in NAMES.items():
        assert shown in text, (shown, text)
    assert r"bad\xff.py" in text
    assert not re.search(r"^lines\.py", text, re.M)  # the newline never split a line
    events = [json.loads(l) for l in j.out.read_bytes().decode().splitlines()]
    paths = {e["path"] for e in events if e["event"] == "live"}
    for name in NAMES:
        assert name in paths, (name, paths)
    assert "bad\ufffd.py" in paths, paths
    [bad] = [e for e in events if e.get("path") == "bad\ufffd.py"]
    assert bytes.fromhex(bad["path_bytes"]) == b"bad\xff.py"
