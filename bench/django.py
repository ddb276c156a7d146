#!/usr/bin/python3
"""Django benchmark: save a view -> new view served, for examples/django.

First it measures what the project costs to import, in fresh interpreters:

    cold      import mysite.wsgi (django.setup(), middleware, URLconf and views)
              with nothing imported before, plus the first request
    project   the same after importing what examples/django/uwsgi.ini's
              shared-import lines import in the master: only the project is left

Then, per round (interleaved over the rows), it saves hello/views.py with a new
VIEW_VERSION (temp file + os.replace) at t0 and polls GET / until the page shows
it (t1). Rows, each a private uWSGI with 2 workers on 127.0.0.1:

    touch-reload                 no plugin; --touch-reload hello/views.py (uWSGI's own)
    netreload graceful           plugin, default mode (re-exec; the master imports the app)
    netreload workers+lazy-apps  --netreload-mode workers --lazy-apps, nothing shared
    fast recipe by hand          examples/django/uwsgi.ini with `netreload-fast = true`
                                 written out as the recipe (no spares, no _exit)
    netreload-fast (example ini) examples/django/uwsgi.ini as shipped (ports rewritten):
                                 a parked spare per worker takes over
    ... 1 worker                 the same with --processes 1

Standard library only; run with /usr/bin/python3 (it needs python3-django).
Writes bench/results/django.md and django.csv. See bench/README.md.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
import reload as rl  # noqa: E402  (bench/reload.py: processes, HTTP polling, report helpers)

ROOT = rl.ROOT
EXAMPLE = ROOT / "examples" / "django"
RESULTS = ROOT / "bench" / "results"
PYTHON = "/usr/bin/python3"
STALL_MS = rl.STALL_MS

FAST = "netreload-fast (example ini)"
RECIPE = "fast recipe by hand (no spares)"
ROWS = ["touch-reload", "netreload graceful", "netreload workers+lazy-apps", RECIPE, FAST,
        FAST + ", 1 worker"]
# what netreload-fast sets that the recipe writes out (and skips: _exit, spares)
RECIPE_LINES = "shared-import = random\nshared-import = threading\nskip-atexit-teardown = true"
VIEW_RE = re.compile(r'^VIEW_VERSION = ".*"$', re.M)
SHOWN_RE = re.compile(r"<p>view: (.*)</p>")

IMPORT_PROBE = r"""
import importlib, io, os, sys, time
sys.path.insert(0, os.getcwd())
for m in sys.argv[1:]:
    importlib.import_module(m)
t0 = time.perf_counter()
import mysite.wsgi
t1 = time.perf_counter()
env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "127.0.0.1",
       "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(),
       "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr}
status = []
b"".join(mysite.wsgi.application(env, lambda s, h: status.append(s)))
t2 = time.perf_counter()
assert status == ["200 OK"], status
print((t1 - t0) * 1000, (t2 - t0) * 1000)
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def shared_imports(ini_text):
    """What the master imports: the ini's shared-import lines, and netreload-fast's."""
    fast = ["random", "threading"] if re.search(r"^netreload-fast = true", ini_text, re.M) else []
    return re.findall(r"^shared-import = (\S+)", ini_text, re.M) + fast


def measure_imports(site_dir, rounds, shared):
    """Fresh-interpreter import times (ms): cold, and with the ini's shared imports first."""
    out = {"cold": [], "project": []}
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for i in range(rounds):
        for kind, pre in (("cold", []), ("project", shared)):
            r = subprocess.run([PYTHON, "-c", IMPORT_PROBE, *pre], cwd=site_dir, env=env,
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"import probe failed: {r.stderr[-2000:]}")
            imp, total = (float(x) for x in r.stdout.split())
            out[kind].append((imp, total))
    return out


class Row:
    """One row's private copy of the example and its uWSGI."""

    def __init__(self, name, base, build):
        self.name = name
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        self.dir = base / slug
        shutil.copytree(EXAMPLE, self.dir, ignore=shutil.ignore_patterns("__pycache__"))
        self.views = self.dir / "hello" / "views.py"
        self.log = base / f"{slug}.log"
        self.build = build
        self.proc = None
        self.logf = None
        self.version = "view v1"
        self.counter = 0
        self.last_save_sec = 0
        self.nr_port = None
        self.http_port = None

    def args(self):
        self.http_port = rl.free_port()
        if self.name.startswith((FAST, RECIPE)):
            self.nr_port = rl.free_port()
            ini = self.dir / "uwsgi.ini"
            text = (EXAMPLE / "uwsgi.ini").read_text()
            for old, new in (("plugins-dir = %d../../build", f"plugins-dir = {self.build}"),
                             ("netreload-port = 9001", f"netreload-port = {self.nr_port}"),
                             ("http-socket = 127.0.0.1:8000",
                              f"http-socket = 127.0.0.1:{self.http_port}"),
                             ("netreload-fast = true",
                              RECIPE_LINES if self.name == RECIPE else "netreload-fast = true")):
                if old not in text:
                    raise RuntimeError(f"{old!r} is no longer in examples/django/uwsgi.ini")
                text = text.replace(old, new)
            ini.write_text(text)
            one = ["--processes", "1"] if self.name.endswith("1 worker") else []
            return ["uwsgi", "--ini", str(ini), "--disable-logging", *one]
        a = ["uwsgi", "--plugin", "python3", "--plugins-dir", str(self.build)]
        if self.name.startswith("netreload"):
            self.nr_port = rl.free_port()
            a += ["--plugin", "netreload", "--netreload-port", str(self.nr_port)]
        a += ["--master", "--processes", "2", "--http-socket", f"127.0.0.1:{self.http_port}",
              "--chdir", str(self.dir), "--pythonpath", str(self.dir),
              "--module", "mysite.wsgi:application", "--max-fd", "1024", "--disable-logging"]
        if self.name == "touch-reload":
            a += ["--touch-reload", str(self.views), "--worker-reload-mercy", "5"]
        elif self.name == "netreload workers+lazy-apps":
            a += ["--netreload-mode", "workers", "--lazy-apps"]
        return a

    def shown(self, timeout=1.0):
        body = rl.http_get(self.http_port, timeout)
        m = SHOWN_RE.search(body or "")
        return m.group(1) if m else None

    def wait_shows(self, version, deadline, interval):
        while True:
            t = time.monotonic()
            if self.shown(0.25) == version:
                return time.monotonic()
            if t >= deadline:
                return None
            pause = t + interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)

    def start(self, timeout=60.0):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args(), cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        if self.wait_shows(self.version, time.monotonic() + timeout, 0.02) is None:
            raise RuntimeError(f"{self.name}: not serving {self.version!r} (log: {self.log})")
        if self.nr_port:
            deadline = time.monotonic() + timeout
            while True:
                r = subprocess.run([str(self.build / "netreload"), "status", "--json",
                                    f"127.0.0.1:{self.nr_port}"], capture_output=True,
                                   text=True, timeout=10)
                if r.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: netreload does not answer")
                time.sleep(0.05)
            workers = json.loads(r.stdout.strip().splitlines()[-1])["workers_total"]
            want = 1 if self.name.endswith("1 worker") else 2
            if workers != want:
                raise RuntimeError(f"{self.name}: {workers} workers, expected {want}")

    def stop(self):
        if self.proc is not None:
            rl.kill_trees([self.proc])
            self.proc = None
        if self.logf is not None:
            self.logf.close()
            self.logf = None

    def save(self):
        self.counter += 1
        self.version = f"{self.name} #{self.counter} {random.getrandbits(32):08x}"
        text = VIEW_RE.sub(f'VIEW_VERSION = "{self.version}"', self.views.read_text())
        tmp = self.views.with_name(f".views.py.tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, self.views)
        self.last_save_sec = int(time.time())


def run_rounds(opts, rows, rng):
    data = []
    last_live = {r.name: time.monotonic() for r in rows}
    last_end = None
    for rnd in range(1, opts.rounds + 1):
        log(f"round {rnd}/{opts.rounds}")
        for row in rows:
            # idle server: the previous version served, a pause after it went live
            if row.proc.poll() is not None:
                log(f"  {row.name}: uWSGI is gone; restarting it")
                row.stop()
                row.start()
            if row.shown() != row.version and row.wait_shows(
                    row.version, time.monotonic() + opts.timeout, 0.01) is None:
                log(f"  {row.name}: not serving {row.version!r}; restarting it")
                row.stop()
                row.start()
            # the last round's server may still work after its "live" (spares)
            benchlib.wait_quiet([r.proc.pid for r in rows if r.proc], last_end, opts.quiet)
            native = row.name == "touch-reload"
            pause = last_live[row.name] + (opts.settle_native if native else opts.settle)
            while time.monotonic() < pause:
                time.sleep(0.01)
            if native:  # st_mtime in whole seconds; then a random phase of the 1 s tick
                while int(time.time()) <= row.last_save_sec:
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 1.0))
            client = None
            t0 = time.monotonic()
            row.save()
            if row.nr_port:
                client = subprocess.Popen(
                    [str(row.build / "netreload"), "ping", "--json", "--timeout",
                     str(int(opts.timeout) + 5), f"127.0.0.1:{row.nr_port}"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
            t1 = row.wait_shows(row.version, t0 + opts.timeout, opts.poll_ms / 1000)
            rec = {"row": row.name, "round": rnd, "timeout": int(t1 is None),
                   "ms": opts.timeout * 1000 if t1 is None else (t1 - t0) * 1000}
            rec["stalled"] = int(rec["timeout"] or rec["ms"] > STALL_MS)
            if client is not None:
                try:
                    out, err = client.communicate(timeout=opts.timeout + 10)
                except subprocess.TimeoutExpired:
                    client.kill()
                    out, err = client.communicate()
                info = {}
                for line in out.splitlines():
                    try:
                        info = json.loads(line)
                    except ValueError:
                        pass
                rec.update(client_exit=client.returncode, client_ms=info.get("ms"),
                           stop_ms=info.get("stop_ms"), spawn_ms=info.get("spawn_ms"),
                           server_ms=info.get("server_ms"))
                if client.returncode != 0:
                    log(f"  {row.name}: client exit {client.returncode}: {out.strip()} "
                        f"{err.strip()}")
            if t1 is not None:
                last_live[row.name] = t1
            last_end = time.monotonic()
            data.append(rec)
            flag = " TIMEOUT" if rec["timeout"] else (" STALL" if rec["stalled"] else "")
            log(f"  {row.name:<28} {rec['ms']:8.1f} ms{flag}")
    return data


def med(v):
    return statistics.median(v) if v else float("nan")


def report(opts, imports, data, elapsed, plugin_hash):
    f = rl.fmt
    cold_imp = [x[0] for x in imports["cold"]]
    cold_tot = [x[1] for x in imports["cold"]]
    proj_imp = [x[0] for x in imports["project"]]
    proj_tot = [x[1] for x in imports["project"]]
    lines = [f"Django example (examples/django, Django {opts.django}, 2 workers unless said): save "
             f"hello/views.py → first GET / showing the new view. {opts.rounds} rounds per row, "
             f"interleaved (each round {opts.quiet:g} s after the last and once every server idles), "
             f"GET polled every {opts.poll_ms:g} ms. Run took {elapsed:.0f} s.", "",
             f"Import cost of the project in a fresh interpreter ({opts.import_rounds} runs each):",
             "", "| measured | median ms | p90 ms | min ms |", "|---|---:|---:|---:|"]
    for what, v in (("cold: `import mysite.wsgi` (setup, middleware, URLconf, views)", cold_imp),
                    ("cold: the same + first request", cold_tot),
                    ("project only (uwsgi.ini's shared imports done first): import", proj_imp),
                    ("project only: + first request", proj_tot)):
        lines.append(f"| {what} | {f(med(v))} | {f(rl.pct(v, 90))} | {f(min(v))} |")
    by = {r: [d for d in data if d["row"] == r] for r in ROWS}
    good = {r: [d["ms"] for d in by[r] if not d["stalled"]] for r in ROWS}
    ref = med(good["touch-reload"])
    lines += ["", "| row | rounds | median ms | p90 ms | min ms | max ms | vs touch-reload "
              "| stalls |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in ROWS:
        v = good[r]
        m = med(v)
        ratio = "–" if m != m or ref != ref else f"{m / ref:.3f}× ({ref / m:.0f}× faster)"
        if r == "touch-reload":
            ratio = "1×"
        st = sum(d["stalled"] for d in by[r])
        lines.append(f"| {r} | {len(by[r])} | {f(m)} | {f(rl.pct(v, 90))} | "
                     f"{f(min(v) if v else float('nan'))} | {f(max(v) if v else float('nan'))} "
                     f"| {ratio} | {st} |")
    lines += ["", "Server side of the netreload rows (`netreload ping --json`; medians, ms):", "",
              "| row | live (client) | old workers gone | first new process | "
              "first new process → all workers ready |", "|---|---:|---:|---:|---:|"]
    for r in ROWS[1:]:
        ok = [d for d in by[r] if not d["stalled"] and d.get("client_exit") == 0]
        ready = [d["server_ms"] - d["spawn_ms"] for d in ok
                 if d.get("server_ms") is not None and d.get("spawn_ms")]
        lines.append(f"| {r} | {f(med([d['client_ms'] for d in ok if d.get('client_ms') is not None]), 0)} "
                     f"| {f(med([d['stop_ms'] for d in ok if d.get('stop_ms') is not None]), 0)} "
                     f"| {f(med([d['spawn_ms'] for d in ok if d.get('spawn_ms')]), 0)} "
                     f"| {f(med(ready), 0)} |")
    fast = med(good[FAST])
    cold = med(cold_tot)
    budget = cold + 50
    lines += ["", "Targets (medians):", "",
              f"- {FAST} save→live {f(fast)} ms ≤ 0.25 × (cold import + first request "
              f"{f(cold)} ms) = {f(0.25 * cold)} ms: {fast / cold:.2f}× "
              f"**{'met' if fast <= 0.25 * cold else 'NOT met'}**",
              f"- {FAST} ≥ 30× faster than touch-reload: {f(ref / fast)}× "
              f"**{'met' if ref / fast >= 30 else 'NOT met'}**",
              f"- {FAST} ≤ cold import + first request + 50 ms = {f(budget)} ms: "
              f"**{'met' if fast <= budget else 'NOT met'}**",
              f"- for reference, project-only import + first request + 50 ms = "
              f"{f(med(proj_tot) + 50)} ms: "
              f"{'met' if fast <= med(proj_tot) + 50 else 'not met'} (see bench/README.md)"]
    stalled = [d for d in data if d["stalled"]]
    if stalled:
        lines += ["", "Stalled rounds (> 3 s or timeout), left out: " + ", ".join(
            f"{d['row']} #{d['round']} {d['ms']:.0f} ms" for d in stalled) + "."]
    opts.plugin_hash = plugin_hash
    lines += ["", rl.machine_line(opts),
              "", "Other jobs may share this machine; figures from one run can be noisy."]
    return "\n".join(lines) + "\n"


def write_results(out_dir, imports, data, md):
    cols = ["row", "round", "ms", "stalled", "timeout", "client_exit", "client_ms", "stop_ms",
            "spawn_ms", "server_ms"]
    pad = [""] * (len(cols) - 3)
    rows = []
    for kind in ("cold", "project"):
        for i, (imp, tot) in enumerate(imports[kind], 1):
            rows.append([f"import {kind}", i, f"{imp:.3f}"] + pad)
            rows.append([f"import {kind} + first request", i, f"{tot:.3f}"] + pad)
    rows += [benchlib.csv_cells(d, cols) for d in data]
    return benchlib.write_results(out_dir, "django", cols, rows, md)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10, help="rounds per row (default 10)")
    ap.add_argument("--import-rounds", type=int, default=10,
                    help="fresh-interpreter import measurements of each kind (default 10)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="give up on a round after this many seconds (default 30)")
    ap.add_argument("--poll-ms", type=float, default=2.0, help="GET poll interval (default 2)")
    benchlib.add_quiet_option(ap)
    ap.add_argument("--settle", type=float, default=0.3,
                    help="pause after a netreload reload went live, s (default 0.3)")
    ap.add_argument("--settle-native", type=float, default=0.6,
                    help="same for touch-reload (uWSGI drops a SIGHUP in a worker's first "
                         "~100 ms; default 0.6)")
    ap.add_argument("--seed", type=int, default=None, help="seed for the touch-reload phase")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results dir (default bench/results)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (uWSGI logs)")
    opts = ap.parse_args()
    if opts.rounds < 1 or opts.import_rounds < 1:
        ap.error("--rounds and --import-rounds must be >= 1")
    r = subprocess.run([PYTHON, "-c", "import django; print(django.get_version())"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        sys.exit("django.py: /usr/bin/python3 cannot import django (apt-get install python3-django)")
    opts.django = r.stdout.strip()
    if not rl.PLUGIN.exists() or not rl.CLIENT.exists():
        subprocess.run(["make", "-C", str(ROOT), "all"], check=True)
    if not shutil.which("uwsgi"):
        sys.exit("django.py: uwsgi not found (make deps-test)")

    base = Path(tempfile.mkdtemp(prefix="netreload-django-bench-"))
    rows = []

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    t_start = time.monotonic()
    try:
        build = base / "build"  # a private copy: a rebuild during the run cannot mix builds
        build.mkdir()
        shutil.copy2(rl.PLUGIN, build / rl.PLUGIN.name)
        shutil.copy2(rl.CLIENT, build / rl.CLIENT.name)
        phash = rl.plugin_hash(build / rl.PLUGIN.name)
        probe_dir = base / "import-probe"
        shutil.copytree(EXAMPLE, probe_dir, ignore=shutil.ignore_patterns("__pycache__"))
        log(f"import times, {opts.import_rounds} runs each")
        imports = measure_imports(probe_dir, opts.import_rounds,
                                  shared_imports((EXAMPLE / "uwsgi.ini").read_text()))
        for name in ROWS:
            rows.append(Row(name, base, build))
        for row in rows:
            row.start()
        data = run_rounds(opts, rows, random.Random(opts.seed))
    finally:
        rl.kill_trees([r.proc for r in rows if r.proc is not None])
        for r in rows:
            r.proc = None
            r.stop()
        if opts.keep_tmp:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    md = report(opts, imports, data, time.monotonic() - t_start, phash)
    csv_path, md_path = write_results(opts.out, imports, data, md)
    print(md, end="")
    log(f"wrote {csv_path} and {md_path}")


if __name__ == "__main__":
    main()
