#!/usr/bin/python3
"""Idle benchmark: how late a ping is read around uWSGI's --idle.

One private uWSGI per build (2 workers, `--idle 1`, graceful mode, a trivial
app on 127.0.0.1). Each round makes one request, waits 1 s plus a random phase
of 0-2.5 s (so some pings land while the workers go idle, some once idle),
then runs `netreload ping --json` and records "accepted_ms" (request sent ->
the server took it) and "ms" (-> live). Builds alternate round by round.

    python3 bench/idle.py --build now=build --build before=OTHER_BUILD [--rounds 12]

Writes bench/results/idle.md and idle.csv. Standard library only.
"""
import argparse
import json
import os
import random
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


def get(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            return r.read().decode()
    except OSError:
        return None


class Server:
    def __init__(self, build, tmp):
        self.build = Path(build).resolve()
        self.dir = Path(tempfile.mkdtemp(dir=tmp))
        self.port, self.http = free_port(), free_port()
        (self.dir / "app.py").write_text(APP.format(v="v0"))
        self.log = open(self.dir / "uwsgi.log", "wb")
        args = uwsgibin.uwsgi_cmd(self.build, "--master", "--processes", "2",
                                  "--http-socket", f"127.0.0.1:{self.http}",
                                  "--wsgi-file", str(self.dir / "app.py"),
                                  "--plugin", "netreload", "--netreload-port", str(self.port),
                                  "--idle", "1")
        env = dict(os.environ, **uwsgibin.env_vars())
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir, env=env)
        deadline = time.monotonic() + 15
        while get(self.http) is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"uWSGI did not start: {self.dir}/uwsgi.log")
            time.sleep(0.05)

    def round(self, n, phase):
        get(self.http)
        time.sleep(1.0 + phase)
        tmp = self.dir / "app.py.tmp"
        tmp.write_text(APP.format(v=f"v{n}"))
        os.replace(tmp, self.dir / "app.py")
        r = subprocess.run([str(self.build / "netreload"), "ping", "--json", f"127.0.0.1:{self.port}"],
                           capture_output=True, text=True, timeout=60)
        j = json.loads(r.stdout.splitlines()[-1])
        return j.get("accepted_ms"), j.get("ms"), j.get("event")

    def stop(self):
        kill_tree(self.proc.pid)
        self.proc.wait(timeout=10)
        self.log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append", required=True,
                    help="LABEL=DIR or DIR: a build dir (repeat)")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    a = ap.parse_args()
    labels = [b.split("=", 1)[0] if "=" in b else b for b in a.build]
    a.build = [b.split("=", 1)[1] if "=" in b else b for b in a.build]
    rng = random.Random(a.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        servers = [Server(b, tmp) for b in a.build]
        try:
            for n in range(1, a.rounds + 1):
                phase = rng.uniform(0, 2.5)
                for s, b in zip(servers, labels):
                    acc, ms, ev = s.round(n, phase)
                    rows.append((b, n, round(phase, 3), acc, ms, ev))
                    print(f"{b}: round {n} phase {phase:.2f}s accepted {acc} ms live {ms} ms ({ev})",
                          file=sys.stderr)
        finally:
            for s in servers:
                s.stop()
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "idle.csv", "w") as f:
        f.write("build,round,phase_s,accepted_ms,live_ms,event\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + "\n")
    lines = ["Ping around `--idle 1` (2 workers, graceful): one request, then the ping "
             f"1 s + a random 0-2.5 s later; {a.rounds} rounds per build, builds alternating.", "",
             "| build | rounds | live | accepted median ms | accepted max ms | live median ms | live max ms | rounds accepted after > 500 ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for b in labels:
        mine = [r for r in rows if r[0] == b]
        acc = [r[3] for r in mine]
        live = [r[4] for r in mine]
        lines.append(f"| `{b}` | {len(mine)} | {sum(r[5] == 'live' for r in mine)} | "
                     f"{statistics.median(acc):.1f} | {max(acc):.1f} | {statistics.median(live):.0f} | "
                     f"{max(live)} | {sum(x > 500 for x in acc)} |")
    lines += ["", benchlib.machine(f"uWSGI {uwsgibin.version()}; builds {', '.join(f'{l}={b}' for l, b in zip(labels, a.build))}"), ""]
    (a.out / "idle.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
