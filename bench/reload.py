#!/usr/bin/python3
"""Reload-latency benchmark: save -> new code served, netreload vs uWSGI's own ways.

Each row runs a private uWSGI (2 workers, 127.0.0.1, a trivial WSGI app that
returns its VERSION string) and measures, per round:

    t0 = just before app.py is saved atomically (temp file + os.replace)
    t1 = the first moment an HTTP GET returns the new VERSION
         (GETs polled every --poll-ms ms, each with a short timeout)

Rows: touch-reload, SIGHUP, master FIFO "r", netreload graceful, netreload
workers (lazy-apps), and a cold start (process start -> first 200). Rounds of
all rows are interleaved (round 1 of every row, then round 2, ...) so that
background load on the machine hits every row alike.

For the netreload rows it also reports "ping received -> reload started",
which the plugin logs itself with microsecond resolution:
"netreload: generation N: MODE reload, X.XXX ms after the request".

Standard library only; run with /usr/bin/python3 (make bench-reload).
Writes bench/results/reload.csv (one row per round) and reload.md.
See bench/README.md.
"""
import argparse
import errno
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
# a relative uWSGI path (make UWSGI=build/...) would be looked up from each server's dir
if "/" in os.environ.get("NETRELOAD_UWSGI", ""):
    os.environ["NETRELOAD_UWSGI"] = os.path.abspath(os.environ["NETRELOAD_UWSGI"])
from proctools import free_port, kill_trees  # noqa: E402
import uwsgibin  # noqa: E402
import benchlib  # noqa: E402
from benchlib import csv_cells, fmt, machine, pct  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# the plugin build made for the uWSGI that runs (make bench-reload UWSGI=... BUILD=...);
# a relative NETRELOAD_BUILD is taken from the repository root, as the Makefile gives it
BUILD = (ROOT / os.environ.get("NETRELOAD_BUILD", "build")).resolve()
CLIENT = BUILD / "netreload"
PLUGIN = BUILD / "netreload_plugin.so"
RESULTS = ROOT / "bench" / "results"
# the run uses a private copy of build/ (taken at the start), so that a rebuild by
# someone else during the run cannot mix two builds
RUN_BUILD = BUILD
RUN_CLIENT = CLIENT

APP_TEMPLATE = '''\
VERSION = {version!r}

def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''

STALL_MS = 3000.0  # a round slower than this is a stall (uWSGI lost a SIGHUP)
GEN_RE = re.compile(r"netreload: generation (\d+): ([a-z-]+) reload"
                    r"(?:, ([0-9.]+) ms after the request)?")

METHODS = ["touch-reload", "py-autoreload=1", "fs-reload", "SIGHUP", "master FIFO r",
           "inotifywait|nc -> touch-reload", "netreload graceful", "netreload graceful+fast",
           "netreload workers", "netreload workers+fast", "cold start"]
# uWSGI's own triggers: they signal workers, so they need the 0.5 s settle (see --settle-native)
NATIVE = {"touch-reload", "py-autoreload=1", "fs-reload", "SIGHUP", "master FIFO r",
          "inotifywait|nc -> touch-reload"}
# the fast switch of README.md (the old hand-written recipe in one option): imports the
# python plugin repeats in every new worker are done once in the master, and old workers
# skip the interpreter teardown
FAST = ["--netreload-fast"]
PIPELINE = "inotifywait|nc -> touch-reload"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# processes ------------------------------------------------------------------








def http_get(port, timeout):
    """Body of GET / (str), 'HTTP nnn' for a non-200 answer, or None if nothing answers."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return None
    try:
        s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except OSError:
        return None
    finally:
        s.close()
    data = b"".join(chunks)
    head, sep, body = data.partition(b"\r\n\r\n")
    parts = head.split(None, 2)
    if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        return None
    if parts[1] != b"200":
        return "HTTP " + parts[1].decode(errors="replace")
    return body.decode(errors="replace")


def poll_until(port, want, deadline, interval, req_timeout):
    """Poll GET / until it returns `want` (None: any 200). Returns time.monotonic() of
    the answer that did, or None at the deadline."""
    while True:
        t_req = time.monotonic()
        body = http_get(port, req_timeout)
        now = time.monotonic()
        if body is not None and not body.startswith("HTTP ") and (want is None or body == want):
            return now
        if now >= deadline:
            return None
        pause = t_req + interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)


# servers --------------------------------------------------------------------
class Server:
    """A private uWSGI master for one row, in its own dir, with its own ports.

    method says how it reloads (one of METHODS); name is the row (default: method).
    ub is the uWSGI to run, as a tests/uwsgibin.py module; build and client are the
    plugin build dir and the client binary of the run (default: the run's copies)."""

    def __init__(self, method, base_dir, name=None, ub=uwsgibin, build=None, client=None):
        self.method = method
        self.name = name or method
        self.ub = ub
        self.build = build or RUN_BUILD
        self.client = client or RUN_CLIENT
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")
        self.dir = Path(base_dir) / slug
        self.dir.mkdir()
        self.app = self.dir / "app.py"
        self.fifo = self.dir / "master.fifo"
        self.log = self.dir / "uwsgi.log"
        self.proc = None
        self.logf = None
        self.version = None
        self.save_counter = 0
        self.last_save_sec = None
        self.nr_port = None
        self.http_port = None
        self.helpers = []  # the pipeline row's inotifywait | nc processes

    def args(self):
        self.http_port = free_port()
        a = self.ub.uwsgi_cmd(self.build)
        if self.method.startswith("netreload"):
            self.nr_port = free_port()
            a += ["--plugin", "netreload", "--netreload-port", str(self.nr_port)]
        a += ["--master", "--processes", "2",
              "--http-socket", f"127.0.0.1:{self.http_port}",
              "--wsgi-file", str(self.app), "--max-fd", "1024",
              "--chdir", str(self.dir),
              "--disable-logging"]  # no request log line for each polled GET
        if self.method in NATIVE:
            a += ["--worker-reload-mercy", "5"]
        if self.method == "touch-reload":
            a += ["--touch-reload", str(self.app)]
        elif self.method == "py-autoreload=1":
            a += ["--py-autoreload", "1"]
        elif self.method == "fs-reload":
            a += ["--fs-reload", str(self.app)]
        elif self.method == "master FIFO r":
            a += ["--master-fifo", str(self.fifo)]
        elif self.method == PIPELINE:
            a += ["--touch-reload", str(self.dir / ".reload")]
        elif self.method.startswith("netreload workers"):
            a += ["--netreload-mode", "workers", "--lazy-apps"]
        if self.method.endswith("+fast"):
            a += FAST
        return a

    def start_pipeline(self):
        """The seed's recipe, locally: a watcher pipes one line per change into nc, and a
        listening nc appends it to .reload, which uWSGI's touch-reload watches."""
        port = free_port()
        (self.dir / ".reload").touch()
        listen = subprocess.Popen(f"exec nc -l -k 127.0.0.1 {port} >> .reload", shell=True,
                                  cwd=self.dir, stdin=subprocess.DEVNULL, start_new_session=True)
        watch = subprocess.Popen(
            "inotifywait -m -q -e close_write,moved_to --format %f --include '/app\\.py$' . "
            f"| xargs -n1 -I{{}} sh -c 'echo . | nc -N 127.0.0.1 {port}'",
            shell=True, cwd=self.dir, stdin=subprocess.DEVNULL, start_new_session=True)
        self.helpers = [listen, watch]
        time.sleep(0.3)  # inotifywait sets up its watch

    def write_app(self, version):
        tmp = self.app.with_name(f".{self.app.name}.tmp{os.getpid()}")
        tmp.write_text(APP_TEMPLATE.format(version=version))
        os.replace(tmp, self.app)
        self.version = version
        self.last_save_sec = int(time.time())

    def next_version(self):
        self.save_counter += 1
        return f"{self.name}#{self.save_counter}-{random.getrandbits(32):08x}"

    def launch(self):
        """Start the process (do not wait); returns time.monotonic() just before."""
        if self.version is None:
            self.write_app(self.next_version())
        args = self.args()
        self.logf = open(self.log, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     env={**os.environ, **self.ub.env_vars()})
        if self.method == PIPELINE and not self.helpers:
            self.start_pipeline()
        return t0

    def start(self, timeout=30.0):
        self.launch()
        if poll_until(self.http_port, self.version, time.monotonic() + timeout, 0.02, 1.0) is None:
            raise RuntimeError(f"{self.name}: uWSGI did not serve within {timeout} s "
                               f"(log: {self.log})\n{self.tail()}")
        if self.nr_port:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    socket.create_connection(("127.0.0.1", self.nr_port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.name}: netreload does not listen")
                    time.sleep(0.02)
        if self.method == "master FIFO r":
            self.fifo_ready(timeout)

    def fifo_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.fifo.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("master FIFO not created")
            time.sleep(0.01)

    def write_fifo(self, cmd, timeout=5.0):
        """Write to the master FIFO; the master reopens it after a re-exec (ENXIO meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno not in (errno.ENXIO, errno.ENOENT) or time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
                continue
            try:
                os.write(fd, cmd)
            finally:
                os.close(fd)
            return

    def stop(self):
        if self.proc is not None:
            kill_trees([self.proc])
            self.proc = None
        for h in self.helpers:  # each leads its own process group
            try:
                os.killpg(h.pid, signal.SIGKILL)
            except OSError:
                pass
            h.wait()
        self.helpers = []
        if self.logf is not None:
            self.logf.close()
            self.logf = None

    def restart(self):
        self.stop()
        self.start()

    def tail(self, n=15):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def recv_to_start_ms(self, gen, wait=1.0):
        """The plugin's own 'X ms after the request' for generation GEN (request
        received -> reload started), or None if this plugin build does not log it."""
        deadline = time.monotonic() + wait
        while True:
            try:
                text = self.log.read_text(errors="replace")
            except OSError:
                text = ""
            for m in GEN_RE.finditer(text):
                if int(m.group(1)) == gen:
                    return float(m.group(3)) if m.group(3) else None
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)


# rounds ---------------------------------------------------------------------
class Bench:
    """The rounds of a run. opts.methods lists the rows; make_server gives each row its
    Server (here one per method, named after it; bench/compat.py has other rows)."""

    def __init__(self, opts, base_dir):
        self.o = opts
        self.base = base_dir
        self.servers = {}
        self.last_live = {}  # row -> time.monotonic() the last reload went live
        self.rows = []       # dicts: method (the row), round, ms, stalled, timeout, client_ms, ...
        self.client = None    # the `netreload ping` of the round in flight

    def server(self, row):
        return self.servers[row]

    def make_server(self, row):
        return Server(row, self.base)

    def setup(self):
        for m in self.o.methods:
            s = self.make_server(m)
            self.servers[m] = s
            if s.method != "cold start":
                s.start()
                self.last_live[m] = time.monotonic()

    def teardown(self):
        if self.client is not None and self.client.poll() is None:
            self.client.kill()
            self.client.wait()
        # all masters shut down in parallel
        kill_trees([s.proc for s in self.servers.values()])
        for s in self.servers.values():
            s.proc = None
            s.stop()

    def settle(self, row):
        """Wait until the server is idle before the next save."""
        s = self.server(row)
        pause = self.o.settle_native if s.method in NATIVE else self.o.settle
        t = self.last_live.get(row)
        if t is not None:
            left = t + pause - time.monotonic()
            if left > 0:
                time.sleep(left)
        if s.method == "touch-reload":
            # uWSGI compares st_mtime in whole seconds: the save must land in a later
            # second than the last one, then at a random phase of the 1 s master tick.
            while int(time.time()) <= (s.last_save_sec or 0):
                time.sleep(0.01)
            time.sleep(self.rng.uniform(0.0, 1.0))

    def ensure_current(self, method):
        """Before a round: the server must serve the last saved version (a stalled or
        timed-out round may still be finishing); restart it if it never does."""
        s = self.server(method)
        if s.proc is None or s.proc.poll() is not None:
            log(f"  {method}: uWSGI is gone; restarting it")
            s.restart()
            self.last_live[method] = time.monotonic()
            return
        if http_get(s.http_port, 1.0) == s.version:
            return
        t = poll_until(s.http_port, s.version, time.monotonic() + self.o.timeout,
                       self.o.poll_ms / 1000, 0.25)
        if t is None:
            log(f"  {method}: still not serving {s.version!r}; restarting it")
            s.restart()
            t = time.monotonic()
        self.last_live[method] = t

    def record(self, method, rnd, ms, timeout=False, **extra):
        stalled = timeout or ms > STALL_MS
        row = {"method": method, "round": rnd, "ms": ms, "stalled": int(stalled),
               "timeout": int(timeout)}
        row.update(extra)
        self.rows.append(row)
        flag = " TIMEOUT" if timeout else (" STALL" if stalled else "")
        more = "".join(f" {k}={v}" for k, v in extra.items() if v not in (None, ""))
        log(f"  {method:<20} round {rnd:>2}: {ms:9.1f} ms{flag}{more}")

    def round(self, method, rnd):
        s = self.server(method)
        if s.method == "cold start":
            return self.round_cold(rnd)
        self.ensure_current(method)
        self.settle(method)
        version = s.next_version()
        client = None
        t0 = time.monotonic()
        s.write_app(version)
        if s.method == "SIGHUP":
            os.kill(s.proc.pid, signal.SIGHUP)
        elif s.method == "master FIFO r":
            s.write_fifo(b"r")
        elif s.method.startswith("netreload"):
            client = self.client = subprocess.Popen([str(s.client), "ping", "--json", "--timeout",
                                       str(int(self.o.timeout) + 5), f"127.0.0.1:{s.nr_port}"],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
        t1 = poll_until(s.http_port, version, t0 + self.o.timeout, self.o.poll_ms / 1000,
                        self.o.req_timeout)
        extra = {}
        if client is not None:
            try:
                out, err = client.communicate(timeout=self.o.timeout + 10)
            except subprocess.TimeoutExpired:
                client.kill()
                out, err = client.communicate()
            info = {}
            for line in out.splitlines():
                try:
                    info = json.loads(line)
                except ValueError:
                    pass
            extra["client_ms"] = info.get("ms")
            extra["client_exit"] = client.returncode
            if client.returncode != 0:
                log(f"  {method}: client exit {client.returncode}: {out.strip()} {err.strip()}")
            gen = info.get("gen")
            if gen is not None:
                extra["recv_to_start_ms"] = s.recv_to_start_ms(gen)
        if t1 is None:
            self.record(method, rnd, self.o.timeout * 1000, timeout=True, **extra)
        else:
            self.record(method, rnd, (t1 - t0) * 1000, **extra)
            self.last_live[method] = t1

    def round_cold(self, rnd):
        s = self.server("cold start")
        s.write_app(s.next_version())
        time.sleep(self.o.settle)
        t0 = s.launch()
        t1 = poll_until(s.http_port, s.version, t0 + self.o.timeout, self.o.poll_ms / 1000,
                        self.o.req_timeout)
        if t1 is None:
            self.record("cold start", rnd, self.o.timeout * 1000, timeout=True)
        else:
            self.record("cold start", rnd, (t1 - t0) * 1000)
            # a worker ignores signals in its first ~100 ms: a SIGINT then is lost and
            # the shutdown waits for the mercy timeout
            time.sleep(self.o.settle_native)
        s.stop()

    def order(self, rnd):
        """The rows in the order round rnd goes through them."""
        return self.o.methods

    def run(self):
        """opts.rounds rounds of every row, interleaved. With opts.budget (s), no round is
        begun that would likely end past the budget (if it took as long as the last)."""
        self.rng = random.Random(self.o.seed)
        t_start = time.monotonic()
        self.setup()
        self.rounds_done = 0
        self.last_end = None
        last = 0.0
        for rnd in range(1, self.o.rounds + 1):
            t = time.monotonic()
            if self.o.budget and rnd > 1 and t + last - t_start > self.o.budget:
                log(f"stopping after {rnd - 1} rounds: --budget {self.o.budget:g} s")
                break
            log(f"round {rnd}/{self.o.rounds}")
            for m in self.order(rnd):
                # the last round's server may still work after its "live" (spares)
                benchlib.wait_quiet([s.proc.pid for s in self.servers.values() if s.proc],
                                    self.last_end, self.o.quiet)
                self.round(m, rnd)
                self.last_end = time.monotonic()
            self.rounds_done = rnd
            last = time.monotonic() - t


# report ---------------------------------------------------------------------
def plugin_hash(path=PLUGIN):
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        return "?"


def uwsgi_desc(ub=uwsgibin):
    """The uWSGI a run used: version, binary, and how it gets Python."""
    how = "Python built in" if ub.builtin_python() else "python3 plugin"
    return f"uWSGI {ub.version()} ({ub.UWSGI}, {how})"


def machine_line(opts):
    return (machine(f"{uwsgi_desc()}; Python {platform.python_version()}")
            + f" (plugin build sha256 {opts.plugin_hash}, copied at the start of the run)")


def report(bench, opts, elapsed):
    by = {}
    for r in bench.rows:
        by.setdefault(r["method"], []).append(r)
    good = {m: [r["ms"] for r in rows if not r["stalled"]] for m, rows in by.items()}
    ref = statistics.median(good["touch-reload"]) if good.get("touch-reload") else float("nan")
    lines = ["| row | rounds | median ms | p90 ms | min ms | max ms | vs touch-reload | stalls |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m in opts.methods:
        rows = by.get(m, [])
        v = good.get(m, [])
        med = statistics.median(v) if v else float("nan")
        ratio = "–" if (med != med or ref != ref) else f"{med / ref:.2f}×"
        stalls = sum(r["stalled"] for r in rows)
        tos = sum(r["timeout"] for r in rows)
        st = f"{stalls}" + (f" ({tos} timeout)" if tos else "")
        lines.append(f"| {m} | {len(rows)} | {fmt(med)} | {fmt(pct(v, 90))} | "
                     f"{fmt(min(v) if v else float('nan'))} | {fmt(max(v) if v else float('nan'))} "
                     f"| {ratio} | {st} |")
    notes = []
    stalled = [r for r in bench.rows if r["stalled"]]
    if stalled:
        notes.append("Stalled rounds (> 3 s, or no new code within the timeout), left out of "
                     "median/p90/min/max: " + ", ".join(
            f"{r['method']} #{r['round']} " + (f"timeout (≥ {r['ms']:.0f} ms)" if r["timeout"]
                                               else f"{r['ms']:.0f} ms")
            for r in stalled) + ".")
    extra_lines = []
    for m in opts.methods:
        rows = [r for r in by.get(m, []) if not r["stalled"]]
        for key, what, digits in (
                ("recv_to_start_ms", "ping received → reload started (plugin log, ms)", 3),
                ("client_ms", "`netreload ping` \"live\" (request sent → all workers new; whole ms)", 0)):
            v = [r[key] for r in rows if r.get(key) is not None]
            if v:
                extra_lines.append(f"| {m} | {what} | {len(v)} | {fmt(statistics.median(v), digits)} "
                                   f"| {fmt(pct(v, 90), digits)} | {fmt(min(v), digits)} "
                                   f"| {fmt(max(v), digits)} |")
    if any(m.startswith("netreload") for m in opts.methods) and not any(
            r.get("recv_to_start_ms") is not None for r in bench.rows):
        notes.append("Ping received → reload started: not measured (this plugin build does not log "
                     "\"ms after the request\" on its \"generation N: MODE reload\" line).")
    start_lines = []
    if extra_lines:
        start_lines = ["", "netreload rows, server and client figures (stalled rounds left out):", "",
                       "| row | figure | n | median ms | p90 ms | min ms | max ms |",
                       "|---|---|---:|---:|---:|---:|---:|"] + extra_lines
    head = (f"Save → new code served, {rounds_note(bench, opts)} (interleaved; each round "
            f"{opts.quiet:g} s after the last and once every server idles), GET polled every "
            f"{opts.poll_ms:g} ms; cold start = process start → first 200. Run took {elapsed:.0f} s.")
    md = "\n".join([head, ""] + lines + ([""] + [f"- {n}" for n in notes] if notes else []) +
                   start_lines +
                   ["", machine_line(opts),
                    "", "Other jobs may share this machine; figures from one run can be noisy."]) + "\n"
    return md


def rounds_note(bench, opts):
    note = f"{bench.rounds_done} rounds per row"
    if bench.rounds_done < opts.rounds:
        note += f" (of {opts.rounds}; stopped by --budget {opts.budget:g} s)"
    return note


def write_results(bench, md, out_dir):
    cols = ["method", "round", "ms", "stalled", "timeout", "client_ms", "client_exit",
            "recv_to_start_ms"]
    return benchlib.write_results(out_dir, "reload", cols,
                                  [csv_cells(r, cols) for r in bench.rows], md)


def add_run_options(ap, rounds, native=True):
    """The options of a run of rounds (bench/compat.py has them too); native: also the
    ones only uWSGI's own reload triggers need."""
    ap.add_argument("--rounds", type=int, default=rounds, help=f"rounds per row (default {rounds})")
    ap.add_argument("--budget", type=float, default=None,
                    help="begin no round that would likely end after this many seconds "
                         "(default: no limit)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="give up on a round after this many seconds (default 30)")
    ap.add_argument("--poll-ms", type=float, default=2.0, help="GET poll interval (default 2)")
    ap.add_argument("--req-timeout", type=float, default=0.25,
                    help="timeout of one polled GET, s (default 0.25)")
    benchlib.add_quiet_option(ap)
    ap.add_argument("--settle", type=float, default=0.3,
                    help="pause after a reload went live before the next round, s (default 0.3)")
    if native:
        ap.add_argument("--settle-native", type=float, default=0.6,
                        help="same for touch-reload/SIGHUP/FIFO rows (>= 0.5: uWSGI drops a "
                             "SIGHUP in a worker's first ~100 ms; default 0.6)")
        ap.add_argument("--seed", type=int, default=None,
                        help="seed for the touch-reload save phase")
    else:
        ap.set_defaults(settle_native=None, seed=None)
    ap.add_argument("--out", type=Path, default=RESULTS, help="results dir (default bench/results)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (uWSGI logs)")


def private_build(build, dst):
    """Copy a build's plugin and client into dst (the run uses only these copies).
    Returns dst, the client's copy, and the plugin's short sha256."""
    dst.mkdir(parents=True)
    client = dst / CLIENT.name
    shutil.copy2(build / PLUGIN.name, dst / PLUGIN.name)
    shutil.copy2(build / CLIENT.name, client)
    return dst, client, plugin_hash(dst / PLUGIN.name)


def run_in_tmp(opts, make_bench, prefix="netreload-bench-"):
    """Run the rounds in a fresh temp dir: make_bench(dir) gives the Bench. Every uWSGI
    is stopped on the way out, also on Ctrl-C or SIGTERM, and the dir removed unless
    opts.keep_tmp. Returns the bench and the seconds the run took."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    t_start = time.monotonic()

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    bench = None
    try:
        bench = make_bench(base)
        bench.run()
    finally:
        if bench is not None:
            bench.teardown()
        if opts.keep_tmp:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return bench, time.monotonic() - t_start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_options(ap, rounds=10)
    ap.add_argument("--only", action="append", choices=METHODS, metavar="ROW",
                    help="run only this row (repeatable); touch-reload is the ratio reference")
    opts = ap.parse_args()
    opts.methods = [m for m in METHODS if not opts.only or m in opts.only]
    if opts.rounds < 1:
        ap.error("--rounds must be >= 1")

    if not shutil.which(uwsgibin.UWSGI):
        sys.exit(f"reload.py: {uwsgibin.UWSGI} not found (make deps-test, or make bench-reload "
                 "UWSGI=/path/to/uwsgi)")
    if not PLUGIN.exists() or not CLIENT.exists():
        subprocess.run(["make", "-C", str(ROOT), f"UWSGI={uwsgibin.UWSGI}", f"BUILD={BUILD}",
                        "all"], check=True)

    def make_bench(base):
        global RUN_BUILD, RUN_CLIENT
        RUN_BUILD, RUN_CLIENT, opts.plugin_hash = private_build(BUILD, base / "build")
        return Bench(opts, base)

    bench, elapsed = run_in_tmp(opts, make_bench)
    md = report(bench, opts, elapsed)
    csv_path, md_path = write_results(bench, md, opts.out)
    print(md, end="")
    log(f"wrote {csv_path} and {md_path}")


if __name__ == "__main__":
    main()
