#!/usr/bin/python3
"""What each part of netreload-fast gives, and what was tried and dropped.

One private uWSGI per (build, configuration): 2 workers, a trivial app on
127.0.0.1. Each round saves the app (temp file + rename), runs
`netreload ping --json` and records the server's own figures: "live" (request
-> every worker new), "stop" (-> old workers gone) and "spawn" (-> new workers
forked). Rounds go through every server in turn, so load on the machine hits
all alike; a cold start (process start -> first 200, GET polled every 2 ms) of
the same app runs in the same rounds as the reference.

Configurations: workers + lazy-apps and graceful, each without and with
netreload-fast; two trials: gc.freeze() in the master before it forks (a
shared-import of a module that calls it), with netreload-fast; and graceful
+ fast with max-fd 20000 set, so the switch cannot lower the fd limit (what
that part saves).

    python3 bench/fast.py --build now=build [--build before=OTHER_BUILD] [--rounds 15]

Writes bench/results/fast.md and fast.csv. Standard library only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from proctools import free_port, kill_tree  # noqa: E402
import uwsgibin  # noqa: E402
import benchlib  # noqa: E402

APP = "VERSION = {v!r}\ndef application(e, sr):\n    sr('200 OK', [])\n    return [VERSION.encode()]\n"
WORKERS = ["--lazy-apps", "--netreload-mode", "workers"]
FAST = ["--netreload-fast"]
FREEZE = ["--shared-import", "nr_gc_freeze"]
CONFIGS = {
    "workers + lazy-apps": WORKERS,
    "workers + lazy-apps + fast": WORKERS + FAST,
    "workers + lazy-apps + fast + gc.freeze (trial)": WORKERS + FAST + FREEZE,
    "graceful": [],
    "graceful + fast": FAST,
    "graceful + fast + gc.freeze (trial)": FAST + FREEZE,
    "graceful + fast, max-fd 20000 set (no lowered fd limit)": FAST + ["--max-fd", "20000"],
}


def get(port, timeout=1.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as r:
            return r.read().decode()
    except OSError:
        return None


def save(path, version):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(APP.format(v=version))
    os.replace(tmp, path)


class Server:
    def __init__(self, build, tmp, extra, netreload=True):
        self.build = Path(build).resolve()
        self.dir = Path(tempfile.mkdtemp(dir=tmp))
        self.app = self.dir / "app.py"
        self.port, self.http = free_port(), free_port()
        (self.dir / "nr_gc_freeze.py").write_text("import gc\ngc.freeze()\n")
        save(self.app, "v0")
        nr = ["--plugin", "netreload", "--netreload-port", str(self.port)] if netreload else []
        self.args = uwsgibin.uwsgi_cmd(self.build, *nr, "--master", "--processes", "2",
                                       "--http-socket", f"127.0.0.1:{self.http}",
                                       "--wsgi-file", str(self.app), "--pythonpath", str(self.dir),
                                       "--disable-logging", *extra)
        self.proc = None

    def start(self, version="v0"):
        """Start uWSGI; returns the ms from the start to the first 200 with version."""
        self.log = open(self.dir / "uwsgi.log", "ab")
        env = dict(os.environ, **uwsgibin.env_vars())
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir, env=env)
        deadline = t0 + 30
        while get(self.http, 0.25) != version:
            if time.monotonic() > deadline:
                raise SystemExit(f"uWSGI did not start: {self.dir}/uwsgi.log")
            time.sleep(0.002)
        return (time.monotonic() - t0) * 1000

    def round(self, n):
        save(self.app, f"v{n}")
        r = subprocess.run([str(self.build / "netreload"), "ping", "--json", f"127.0.0.1:{self.port}"],
                           capture_output=True, text=True, timeout=60)
        j = json.loads(r.stdout.splitlines()[-1])
        served = get(self.http)
        if j.get("event") != "live" or served != f"v{n}":
            raise SystemExit(f"round {n}: {r.stdout} {r.stderr} served {served!r} ({self.dir})")
        return j["ms"], j.get("stop_ms"), j.get("spawn_ms")

    def cold(self, n):
        save(self.app, f"v{n}")
        ms = self.start(f"v{n}")
        self.stop()
        return ms, None, None

    def stop(self):
        if self.proc:
            kill_tree(self.proc.pid)
            self.proc.wait(timeout=10)
            self.proc = None
            self.log.close()


def med(xs):
    xs = [x for x in xs if x is not None]
    return f"{statistics.median(xs):.1f}" if xs else "–"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append", required=True,
                    help="LABEL=DIR or DIR: a build dir (repeat)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    a = ap.parse_args()
    builds = [b.split("=", 1) if "=" in b else (b, b) for b in a.build]
    t_start = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cold = Server(builds[0][1], tmp, [], netreload=False)
        servers = [(label, name, Server(d, tmp, extra)) for label, d in builds
                   for name, extra in CONFIGS.items()]
        try:
            for _, _, s in servers:
                s.start()
            last_end = None
            for n in range(1, a.rounds + 1):
                for label, name, s in servers + [("–", "cold start (reference)", cold)]:
                    # the last round's server may still work after its "live" (spares)
                    benchlib.wait_quiet([x.proc.pid for _, _, x in servers if x.proc], last_end)
                    ms, stop, spawn = s.cold(n) if s is cold else s.round(n)
                    last_end = time.monotonic()
                    rows.append((label, name, n, ms, stop, spawn))
                    print(f"{label}: {name}: round {n}: {ms} ms (stop {stop}, spawn {spawn})",
                          file=sys.stderr)
        finally:
            for _, _, s in servers:
                s.stop()
            cold.stop()
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "fast.csv", "w") as f:
        f.write("build,config,round,live_ms,stop_ms,spawn_ms\n")
        for r in rows:
            f.write(",".join("" if x is None else str(x) for x in r) + "\n")
    cold_ms = statistics.median(r[3] for r in rows if r[0] == "–")
    lines = ["Save → live, by what netreload-fast does (2 workers, trivial app; "
             f"{a.rounds} rounds per row, rows interleaved, each round {benchlib.QUIET_FLOOR_S:g} s after the last "
             f"and once every server idles; run took {time.monotonic() - t_start:.0f} s). "
             "live / stop / spawn: the server's figures from the request (ms, median); "
             "cold start: process start → first 200 of the same app.", "",
             "| build | configuration | rounds | live | old workers gone | new workers forked | live ÷ cold start |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for label, _ in builds:
        for name in CONFIGS:
            mine = [r for r in rows if r[0] == label and r[1] == name]
            live = statistics.median(r[3] for r in mine)
            lines.append(f"| `{label}` | {name} | {len(mine)} | {live:.1f} | {med(r[4] for r in mine)} | "
                         f"{med(r[5] for r in mine)} | {live / cold_ms:.2f}× |")
    lines.append(f"| – | cold start (reference) | {sum(r[0] == '–' for r in rows)} | {cold_ms:.1f} | – | – | 1.00× |")
    lines += ["", benchlib.machine(f"uWSGI {uwsgibin.version()}; builds "
                                   f"{', '.join(f'{l}={d}' for l, d in builds)}"), ""]
    (a.out / "fast.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
