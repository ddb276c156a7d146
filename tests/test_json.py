"""--json is a contract (issue 13, item 3): `ping`, `status` and `watch` print one
schema. Every stdout line is one JSON object, valid UTF-8, whose first members are
`event`, `time` (ISO 8601, milliseconds, zone), then `target`, `exit`, `ms` where
they apply; a file name that is not UTF-8 keeps its raw bytes in `path_bytes`.

Real client, real uWSGI. Every stdout line goes through json.loads.
"""
import json
import os
import re
import subprocess
from datetime import datetime

from conftest import CLIENT, free_port, run_client, wait_for
from test_watch import Watcher

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
HEAD = ["event", "time", "target", "exit", "ms"]


def objects(raw):
    """Every line of raw (bytes) as a JSON object; strict UTF-8 first."""
    text = raw.decode("utf-8")  # raises on any byte that is not UTF-8
    lines = text.splitlines()
    assert lines, "no output"
    return [json.loads(line) for line in lines]


def check_head(obj):
    """The members every event starts with, in this order."""
    assert list(obj)[:len(HEAD)] == HEAD, list(obj)
    assert ISO_MS.match(obj["time"]), obj["time"]
    when = datetime.fromisoformat(obj["time"])
    assert when.tzinfo is not None and when.microsecond % 1000 == 0
    assert isinstance(obj["exit"], int) and isinstance(obj["ms"], int)


def run_bytes(*args):
    return subprocess.run([str(CLIENT), *args], capture_output=True, timeout=60)


def test_ping_and_status_share_the_schema(server):
    r = run_bytes("ping", "--json", server.target)
    assert r.returncode == 0, r.stderr
    [live] = objects(r.stdout)
    check_head(live)
    assert live["event"] == "live" and live["target"] == server.target and live["exit"] == 0

    r = run_bytes("status", "--json", server.target)
    assert r.returncode == 0, r.stderr
    [status] = objects(r.stdout)
    check_head(status)
    assert status["event"] == "status" and status["gen"] == 1

    dead = f"127.0.0.1:{free_port()}"
    r = run_bytes("ping", "--json", dead)
    assert r.returncode == 3
    [down] = objects(r.stdout)
    check_head(down)
    assert down["event"] == "unreachable" and down["exit"] == 3 and down["error"]


def test_watch_events_share_the_schema(servers, code, tmp_path):
    """unreachable while the server is down, then live once it is up: same head,
    and the parts of ms add up."""
    srv = servers(start=False)
    w = Watcher(tmp_path, 0, ["--json", "--to", srv.target], code).started()
    try:
        (code / "views.py").write_text("x = 2\n")
        wait_for(lambda: '"unreachable"' in w.stdout(), 20, what="an unreachable event")
        srv.start()
        wait_for(lambda: '"live"' in w.stdout(), 30, what=f"a live event: {w.stdout()!r}")
    finally:
        w.stop()
    events = objects(w.out.read_bytes())
    for e in events:
        check_head(e)
    down = next(e for e in events if e["event"] == "unreachable")
    assert down["exit"] == 3 and down["path"] == "views.py" and down["error"]
    live = next(e for e in events if e["event"] == "live")
    check_head(live)
    assert live["path"] == "views.py" and live["gen"] == 1 and live["max_delay_cut"] is False
    parts = ("debounce_ms", "queued_ms", "down_ms", "reload_ms")
    assert sum(live[k] for k in parts) == live["ms"], live
    assert live["down_ms"] > 0, live  # it waited for the server, and says so


def test_watch_json_keeps_undecodable_file_names(server, code, tmp_path):
    """A name that is not UTF-8: the line stays valid UTF-8 (U+FFFD in path) and
    path_bytes carries the name byte for byte."""
    name = b"caf\xe9-\xff.py"
    w = Watcher(tmp_path, 0, ["--json", "--no-files", "--to", server.target], code).started()
    try:
        with open(os.path.join(os.fsencode(code), name), "w") as f:
            f.write("x = 1\n")
        wait_for(lambda: '"live"' in w.stdout(), 30, what="a live event")
    finally:
        w.stop()
    [live] = [e for e in objects(w.out.read_bytes()) if e["event"] == "live"]
    check_head(live)
    assert live["path"] == "caf\ufffd-\ufffd.py", live
    assert bytes.fromhex(live["path_bytes"]) == name
    # a name that is UTF-8 has no path_bytes
    r = run_client("status", "--json", server.target)
    assert "path_bytes" not in r.stdout
