"""Bursts: a formatter or a code generator rewriting hundreds of files over a
few seconds ends in at most two reloads of a real uWSGI, and the last one
serves the final tree; contradictory timing options are refused.

The app served reads the watched tree when it is imported, so what it serves
after a reload is the tree that reload saw. Reloads are counted twice: the
watcher's live lines and the server's generation.
"""
import os
import random
import subprocess
import time

import pytest

from conftest import CLIENT, run_client, wait_for
from test_watch import Watcher, gen

FILES = 200

# what the watched tree holds, read when the app is imported
TREE_APP = '''\
import glob, os
ROOT = {root!r}
_texts = [open(p).read() for p in sorted(glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True))]
VERSION = "%d/%d formatted, %d generated" % (
    sum("# formatted" in t for t in _texts), sum("x=" in t or "# formatted" in t for t in _texts),
    sum("# generated" in t for t in _texts))

def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''


@pytest.fixture
def tree(tmp_path):
    """FILES unformatted modules in 10 packages."""
    root = tmp_path / "tree"
    for i in range(FILES):
        p = root / f"pkg{i % 10}" / f"mod{i}.py"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"x={i}\n")
    return root


@pytest.fixture
def server(servers, tree):
    return servers(app=TREE_APP.format(root=str(tree)), extra=["--netreload-root", str(tree)])


@pytest.fixture
def watcher(tmp_path, tree):
    started = []

    def make(*args):
        w = Watcher(tmp_path, len(started), args, tree)
        started.append(w)
        return w.started()

    yield make
    for w in started:
        w.stop()


class Stalls:
    """Counts the writer's own pauses longer than the burst's quiet gap
    (--burst-quiet, 250 ms). The writers here never pause that long by
    design; on a loaded machine one may be descheduled that long, and then
    it has really paused and the watcher may rightly reload there: each such
    stall allows one more reload."""
    QUIET_S = 0.25

    def __init__(self):
        self.last = None
        self.count = 0

    def wrote(self):
        now = time.monotonic()
        if self.last is not None and now - self.last > self.QUIET_S:
            self.count += 1
        self.last = now


def settle(w, server, g0, final):
    """Wait until the final tree is served and the watcher has gone quiet
    (no new live line for 1.5 s: six times the burst's quiet gap); returns
    the number of reloads."""
    wait_for(lambda: server.get() == final, 60, interval=0.1,
             what=f"the final tree served ({final!r}); stdout={w.stdout()!r}")
    seen = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = (w.lives(), gen(server))
        if now == seen:
            break
        seen = now
        time.sleep(1.5)
    assert w.lives() == gen(server) - g0, w.stdout()
    print(f"reloads: {gen(server) - g0}")
    return gen(server) - g0


def test_formatter_is_at_most_two_reloads(server, tree, watcher):
    """black on 200 files: one rewrite every 25-40 ms. Before: a reload per
    300 ms (--max-delay) at best, each file its own batch at worst, many on
    half-formatted trees."""
    w = watcher("--to", server.target)
    assert server.get() == f"0/{FILES} formatted, 0 generated"
    g0 = gen(server)
    rng = random.Random(13)
    stalls = Stalls()
    for i in range(FILES):
        p = tree / f"pkg{i % 10}" / f"mod{i}.py"
        p.write_text(f"x = {i}  # formatted\n")  # in place, as black does
        stalls.wrote()
        time.sleep(rng.uniform(0.025, 0.040))
    n = settle(w, server, g0, f"{FILES}/{FILES} formatted, 0 generated")
    assert 1 <= n <= 2 + stalls.count, (stalls.count, w.stdout())
    assert server.get() == f"{FILES}/{FILES} formatted, 0 generated"


def test_code_generator_is_at_most_two_reloads(server, tree, watcher):
    """A generator writing 300 new modules (temp file + rename) in chunks of 10,
    60 ms of work between chunks, into directories it creates as it goes."""
    w = watcher("--to", server.target)
    g0 = gen(server)
    stalls = Stalls()
    for chunk in range(30):
        d = tree / "generated" / f"part{chunk // 10}"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(10):
            p = d / f"gen{chunk * 10 + k}.py"
            tmp = p.with_name(p.name + ".tmp1")
            tmp.write_text(f"# generated\nN = {chunk * 10 + k}\n")
            os.replace(tmp, p)
            stalls.wrote()
        time.sleep(0.06)
    n = settle(w, server, g0, f"0/{FILES} formatted, 300 generated")
    assert 1 <= n <= 2 + stalls.count, (stalls.count, w.stdout())


@pytest.mark.parametrize("args, says", [
    (["--debounce", "500", "--max-delay", "100"], "--debounce 500 is longer than --max-delay 100"),
    (["--debounce", "20000"], "--debounce 20000 is longer than --max-delay (default 10000)"),
    (["--debounce", "300", "--burst-quiet", "100"], "--burst-quiet 100 is shorter than --debounce 300"),
    (["--burst-quiet", "2000", "--max-delay", "1000"], "--burst-quiet 2000 is longer than --max-delay 1000"),
])
def test_conflicting_timing_options_are_refused(tree, args, says):
    r = subprocess.run([str(CLIENT), "watch", *args, "--to", "127.0.0.1:1", "--explain", "x.py"],
                       cwd=tree, capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "netreload watch: conflicting timing: " + says in r.stderr, r.stderr


@pytest.mark.parametrize("args", [
    ["--burst-quiet", "1000"],
    ["--debounce", "0", "--burst-quiet", "0", "--max-delay", "1"],
])
def test_burst_quiet_option(tree, args):
    r = run_client("watch", *args, "--to", "127.0.0.1:1", "--explain", str(tree / "x.py"), str(tree))
    assert r.returncode == 0, r.stderr
