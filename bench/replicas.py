#!/usr/bin/python3
"""Fan-out benchmark: save -> every replica live, for 1, 5 and 20 replicas.

All replicas run inside one network namespace of the bench's own, each a
uWSGI master (1 worker, graceful reloads) on its own loopback address
127.0.0.K with its own netreload-bind, all reading one app file (as replicas
of one compose service share a volume). /etc/netns/NS/hosts maps the names
web1, web5 and web20 to 1, 5 and 20 of those addresses, and one
`netreload watch --json --to webN:PORT` per set runs in the namespace too.
Rounds are interleaved: in each round every set gets one save.

Per save it records:

    all live     the save -> the watcher's last replica "live" event
                 (read from its stdout as it comes)
    client over  the client's reload time for the name (max over replicas of
    slowest      the ping's own time) minus the slowest replica's server-side
                 ms: what the client and the network add to the fan-out

Writes bench/results/replicas.csv and replicas.md. Needs root (ip netns).
Standard library only; run with /usr/bin/python3 (make bench-replicas).
"""
import argparse
import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from proctools import kill_trees  # noqa: E402
import uwsgibin  # noqa: E402
import benchlib  # noqa: E402
from benchlib import fmt, pct  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUILD = (ROOT / os.environ.get("NETRELOAD_BUILD", "build")).resolve()
CLIENT = BUILD / "netreload"
RESULTS = ROOT / "bench" / "results"
SIZES = [1, 5, 20]
APP = '''\
VERSION = {version!r}

def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''


def log(msg):
    print(f"replicas.py: {msg}", file=sys.stderr, flush=True)


class Netns:
    def __init__(self, name):
        self.name = name
        self.etc = Path("/etc/netns") / name
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.etc.mkdir(parents=True, exist_ok=True)
        subprocess.run(self.exec() + ["ip", "link", "set", "lo", "up"], check=True)

    def exec(self):
        return ["ip", "netns", "exec", self.name]

    def remove(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)
        shutil.rmtree(self.etc, ignore_errors=True)


class Set:
    """N replicas behind the name webN, and the watcher that reloads them."""

    def __init__(self, ns, base, n, first_addr):
        self.n, self.ns = n, ns
        self.port = 9000 + n
        self.dir = base / f"web{n}"
        (self.dir / "code").mkdir(parents=True)
        self.app = self.dir / "code" / "app.py"
        self.app.write_text(APP.format(version="v0"))
        self.addrs = [f"127.0.0.{first_addr + i}" for i in range(n)]
        self.procs, self.logs = [], []
        self.watcher = None
        self.buf = b""
        self.version = 0

    def start(self):
        env = {**os.environ, **uwsgibin.env_vars()}
        for a in self.addrs:
            logf = open(self.dir / f"uwsgi-{a}.log", "ab")
            self.logs.append(logf)
            self.procs.append(subprocess.Popen(
                self.ns.exec() + uwsgibin.uwsgi_cmd(
                    BUILD, "--master", "--processes", "1", "--http-socket", f"{a}:8000",
                    "--wsgi-file", str(self.app), "--max-fd", "1024",
                    "--chdir", str(self.app.parent),  # the watched tree: listed files match
                    "--plugin", "netreload", "--netreload-port", str(self.port),
                    "--netreload-bind", a),
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env))

    def watch(self):
        self.err = open(self.dir / "watch.err", "wb")
        self.watcher = subprocess.Popen(
            self.ns.exec() + [str(CLIENT), "watch", "--json", "--to", f"web{self.n}:{self.port}",
                              str(self.dir / "code")],
            stdout=subprocess.PIPE, stderr=self.err, stdin=subprocess.DEVNULL)
        os.set_blocking(self.watcher.stdout.fileno(), False)

    def lines(self):
        try:
            chunk = os.read(self.watcher.stdout.fileno(), 65536)
        except BlockingIOError:
            return []
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\n")
        return [json.loads(x) for x in done if x.strip()]

    def save(self, timeout):
        """Save, then wait for every replica's event; (all live ms, client over slowest ms)."""
        self.version += 1
        tmp = self.app.with_name(".app.py.tmp")
        tmp.write_text(APP.format(version=f"v{self.version}"))
        sel = selectors.DefaultSelector()
        sel.register(self.watcher.stdout, selectors.EVENT_READ)
        t0 = time.monotonic()
        os.replace(tmp, self.app)
        events, deadline = [], t0 + timeout
        while len(events) < self.n and time.monotonic() < deadline:
            sel.select(max(0.0, deadline - time.monotonic()))
            events += [e for e in self.lines() if e.get("event") in ("live", "failed")]
        t1 = time.monotonic()
        sel.close()
        if len(events) < self.n or any(e["event"] != "live" for e in events):
            log(f"web{self.n}: {len(events)} of {self.n} live ({events[-1:]})")
            return None, None
        over = max(e["reload_ms"] for e in events) - max(e["server_ms"] for e in events)
        return (t1 - t0) * 1000, over

    def ready(self):
        r = subprocess.run(self.ns.exec() + [str(CLIENT), "status", "-t", "2",
                                             f"web{self.n}:{self.port}"],
                           capture_output=True, text=True)
        return r.returncode == 0

    def stop(self):
        if self.watcher:
            self.watcher.terminate()
            self.watcher.wait(5)
        kill_trees(self.procs)
        for f in self.logs:
            f.close()


def wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    sys.exit(f"replicas.py: timed out waiting for {what}")


def report(rows, opts, elapsed):
    head = ("# Fan-out: save -> every replica live\n\n"
            f"{opts.rounds} rounds, interleaved; 1 worker per replica, graceful reloads, "
            "all replicas in one network namespace on 127.0.0.K, one `netreload watch "
            "--to webN` per set (bench/replicas.py). \"client over slowest\": the client's "
            "reload time for the name minus the slowest replica's own server-side ms, "
            "per save.\n")
    lines = ["| replicas | all live median ms | p90 | client over slowest median ms | max | "
             "saves |", "|---|---|---|---|---|---|"]
    for n in SIZES:
        live = [r[1] for r in rows if r[0] == n and r[1] is not None]
        over = [r[2] for r in rows if r[0] == n and r[2] is not None]
        lines.append(f"| {n} | {fmt(statistics.median(live) if live else None)} | "
                     f"{fmt(pct(live, 90))} | {fmt(statistics.median(over) if over else None, 0)}"
                     f" | {fmt(max(over) if over else None, 0)} | {len(live)}/"
                     f"{sum(1 for r in rows if r[0] == n)} |")
    extra = (f"uWSGI {uwsgibin.version()}; load before {opts.load0}; "
             f"run {elapsed:.0f} s")
    return "\n".join([head, ""] + lines + ["", benchlib.machine(extra), ""])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--settle", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    opts = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("ip"):
        sys.exit("replicas.py: needs root and `ip` (iproute2) for a network namespace")
    if not CLIENT.exists():
        subprocess.run(["make", "-C", str(ROOT), "all"], check=True)
    opts.load0 = benchlib.loadavg()
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"netreload-bench-replicas-{os.getpid()}"
    ns = Netns(f"nrbench{os.getpid()}")
    sets, rows, t_start = [], [], time.monotonic()
    try:
        first = 1
        for n in SIZES:
            sets.append(Set(ns, base, n, first))
            first += n
        (ns.etc / "hosts").write_text("127.0.0.1 localhost\n" + "".join(
            f"{a} web{s.n}\n" for s in sets for a in s.addrs))
        for s in sets:
            s.start()
        for s in sets:
            wait(s.ready, 60, f"the {s.n} replica(s) of web{s.n}")
            s.watch()
        time.sleep(1.5)  # the watchers' start-up lines; names looked up once
        for rnd in range(opts.rounds):
            for s in sets:
                live, over = s.save(opts.timeout)
                rows.append((s.n, live, over))
                log(f"round {rnd + 1}: {s.n} replica(s): all live {fmt(live)} ms, "
                    f"client over slowest {fmt(over, 0)} ms")
                time.sleep(opts.settle)
    finally:
        for s in sets:
            s.stop()
        ns.remove()
        shutil.rmtree(base, ignore_errors=True)
    md = report(rows, opts, time.monotonic() - t_start)
    csv_rows = [[n, "" if live is None else f"{live:.3f}", "" if over is None else over]
                for n, live, over in rows]
    for p in benchlib.write_results(opts.out, "replicas", ["replicas", "all_live_ms",
                                                            "client_over_slowest_ms"],
                                    csv_rows, md):
        log(f"wrote {p}")
    print(md)


if __name__ == "__main__":
    main()
