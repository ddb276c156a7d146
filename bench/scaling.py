#!/usr/bin/python3
"""Scaling benchmark: how save -> live grows with the size of the app.

Generated apps of 10, 100, 1,000 and 5,000 modules (a package whose
__init__ imports every module; each module ~40 lines: constants, a class,
functions, a compiled regex), one edited leaf module carrying VERSION. Per
size, side by side in one run, rounds interleaved:

    import floor  the app's own cold import in a fresh /usr/bin/python3
                  (bytecode cached, as in a reload): `import app`, in-process timer
    import in uWSGI  the same import, timed the same way, in the one worker of a
                  fresh uWSGI (lazy-apps): the interpreter every reload runs in.
                  Debian's /usr/bin/python3 is a static, PGO-built binary; uWSGI
                  embeds libpython3.11.so, which imports a little slower
    cold start    uWSGI process start -> first 200 (2 workers, the plugin loaded)
    graceful      save -> new VERSION served, netreload graceful
    workers       save -> new VERSION served, netreload workers + lazy-apps
    workers + fast  the same with netreload-fast: a parked spare per worker,
                  forked before the save, with the app's bytecode read ahead,
                  imports the app when woken

Each reload median is also given as a ratio to the import floor of the same
size: how far reload time is from what importing the app costs anyway.
Writes bench/results/scaling.csv and scaling.md (and scaling.png with gnuplot).
Standard library only; run with /usr/bin/python3 (make bench-scaling).
"""
import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import reload  # bench/reload.py: the servers, polling, the temp-dir run
import benchlib
from benchlib import csv_cells, fmt, pct

log = reload.log
SIZES = [10, 100, 1000, 5000]
ROWS = ["import floor", "import in uWSGI", "cold start", "graceful", "workers", "workers + fast"]

MODULE = '''\
"""Generated module {i} of {n}."""
import re

NAME = "m{i:04d}"
TABLE = {{k: k * {i} for k in range(20)}}
PATTERN = re.compile(r"^m{i:04d}-([a-z]+)-(\\\\d+)$")


class Thing{i}:
    """A small class, as apps have many."""

    def __init__(self, value):
        self.value = value

    def double(self):
        return self.value * 2

    def __repr__(self):
        return f"Thing{i}({{self.value!r}})"


def helper_{i}(x, y=1):
    total = 0
    for k in range(x):
        total += k * y
    return total


def parse_{i}(text):
    m = PATTERN.match(text)
    return (m.group(1), int(m.group(2))) if m else None
'''

APP = '''\
import genapp

def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [genapp.VERSION.encode()]
'''


# the import floor inside uWSGI: the app, with the import of the package timed
TIMED_APP = '''\
import sys
import time

t = time.perf_counter()
import genapp
sys.stderr.write("netreload-bench: import %.3f ms\\n" % ((time.perf_counter() - t) * 1000))
sys.stderr.flush()

def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [genapp.VERSION.encode()]
'''
IMPORT_LINE = re.compile(r"netreload-bench: import ([0-9.]+) ms")


def generate(root, n):
    pkg = root / "genapp"
    pkg.mkdir(parents=True)
    for i in range(n):
        (pkg / f"m{i:04d}.py").write_text(MODULE.format(i=i, n=n))
    imports = "".join(f"from . import m{i:04d}\n" for i in range(n))
    (pkg / "__init__.py").write_text(imports + "from .leaf import VERSION\n")
    (root / "app.py").write_text(APP)
    (root / "timed.py").write_text(TIMED_APP)


class ScaledServer(reload.Server):
    """A reload.Server whose app is a generated package; a save edits its leaf."""

    def __init__(self, method, base_dir, n, row):
        super().__init__(method, base_dir, name=f"{n} modules {row}")
        self.n = n
        self.row = row
        generate(self.dir, n)

    def write_app(self, version):
        leaf = self.dir / "genapp" / "leaf.py"
        tmp = leaf.with_name(".leaf.py.tmp")
        tmp.write_text(f"VERSION = {version!r}\n")
        tmp.replace(leaf)
        self.version = version
        self.last_save_sec = int(time.time())

    def args(self):
        a = super().args() + ["--pythonpath", str(self.dir)]
        if self.row == "import in uWSGI":
            a[a.index("--wsgi-file") + 1] = str(self.dir / "timed.py")
            a[a.index("--processes") + 1] = "1"
            a += ["--lazy-apps"]
        return a


def import_ms(d):
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); t = time.perf_counter(); "
            "import app; print((time.perf_counter() - t) * 1000)")
    r = subprocess.run(["/usr/bin/python3", "-c", code, str(d)], capture_output=True, text=True,
                       timeout=120)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return float(r.stdout)


def import_times(log, offset):
    """The import times a timed app logged past offset (this run's part of the log)."""
    with open(log, "rb") as f:
        f.seek(offset)
        return IMPORT_LINE.findall(f.read().decode(errors="replace"))


def key(n, row):
    return f"{n} modules: {row}"


def unkey(k):
    n, row = k.split(" modules: ")
    return int(n), row


class ScalingBench(reload.Bench):
    def __init__(self, opts, base_dir):
        super().__init__(opts, base_dir)
        self.o.methods = [key(n, row) for n in opts.sizes for row in ROWS]

    def make_server(self, k):
        n, row = unkey(k)
        method = {"graceful": "netreload graceful", "workers": "netreload workers",
                  "workers + fast": "netreload workers+fast",
                  "cold start": "cold start", "import floor": "cold start",
                  "import in uWSGI": "cold start"}[row]
        return ScaledServer(method, self.base, n, row)

    def setup(self):
        for k in self.o.methods:
            s = self.make_server(k)
            self.servers[k] = s
            row = unkey(k)[1]
            s.write_app(s.next_version())
            import_ms(s.dir)  # every row's app dir gets its bytecode cached once
            if row not in ("import floor", "cold start", "import in uWSGI"):
                s.start(timeout=120)
                self.last_live[k] = time.monotonic()

    def round(self, k, rnd):
        row = unkey(k)[1]
        s = self.server(k)
        if row == "import floor":
            self.record(k, rnd, import_ms(s.dir))
        elif row in ("cold start", "import in uWSGI"):
            self.round_cold_of(k, rnd)
        else:
            super().round(k, rnd)

    def round_cold_of(self, key, rnd):
        s = self.server(key)
        s.write_app(s.next_version())
        time.sleep(self.o.settle)
        log_from = s.log.stat().st_size if s.log.exists() else 0  # the log is appended to
        t0 = s.launch()
        t1 = reload.poll_until(s.http_port, s.version, t0 + self.o.timeout, self.o.poll_ms / 1000,
                               self.o.req_timeout)
        ms = (t1 - t0) * 1000 if t1 else self.o.timeout * 1000
        if t1 and s.row == "import in uWSGI":
            for _ in range(100):  # it goes through the log relay: a moment after the 200
                found = import_times(s.log, log_from)
                if found:
                    break
                time.sleep(0.01)
            if not found:
                raise RuntimeError(f"{s.name}: no import time in {s.log}\n{s.tail()}")
            ms = float(found[-1])
        self.record(key, rnd, ms, timeout=t1 is None)
        time.sleep(self.o.settle_native)
        s.stop()

    def order(self, rnd):
        rows = self.o.methods
        k = (rnd - 1) % len(rows)
        return rows[k:] + rows[:k]


def report(bench, opts, elapsed):
    med = {}
    for k in opts.methods:
        v = [r["ms"] for r in bench.rows if r["method"] == k and not r["timeout"]]
        med[unkey(k)] = (statistics.median(v) if v else float("nan"), pct(v, 90))
    lines = ["| modules | import floor ms | import in uWSGI ms | cold start ms | graceful ms "
             "| workers ms | workers + fast ms | graceful / floor | workers / floor "
             "| workers + fast / floor | workers + fast / import in uWSGI |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in opts.sizes:
        f = med[(n, "import floor")][0]
        fu = med[(n, "import in uWSGI")][0]
        g = med[(n, "graceful")][0]
        w = med[(n, "workers")][0]
        wf = med[(n, "workers + fast")][0]
        lines.append(f"| {n} | {fmt(f)} | {fmt(fu)} | {fmt(med[(n, 'cold start')][0])} | {fmt(g)} "
                     f"| {fmt(w)} | {fmt(wf)} | {g / f:.2f}× | {w / f:.2f}× | {wf / f:.2f}× "
                     f"| {wf / fu:.2f}× |")
    head = (f"Save → new code served, by app size (medians of {bench.rounds_done} interleaved "
            f"rounds; one edited leaf module; 2 workers). Run took {elapsed:.0f} s.")
    return "\n".join([head, ""] + lines + ["", reload.machine_line(opts), "",
                      "Other jobs may share this machine; figures from one run can be noisy."]) + "\n"


def plot(out):
    if not shutil.which("gnuplot"):
        log("scaling.py: no gnuplot, no plot")
        return
    script = f"""
set terminal pngcairo size 800,500
set output '{out}/scaling.png'
set datafile separator ','
set logscale xy
set xlabel 'modules in the app'
set ylabel 'ms (median)'
set key left top
plot for [c=2:7] '{out}/scaling-medians.csv' using 1:c with linespoints title columnheader(c)
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    reload.add_run_options(ap, rounds=5)
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=SIZES,
                    help="app sizes in modules, comma-separated (default 10,100,1000,5000)")
    opts = ap.parse_args()
    opts.timeout = max(opts.timeout, 60.0)
    if not reload.PLUGIN.exists() or not reload.CLIENT.exists():
        subprocess.run(["make", "-C", str(reload.ROOT), "all"], check=True)

    def make_bench(base):
        reload.RUN_BUILD, reload.RUN_CLIENT, opts.plugin_hash = reload.private_build(
            reload.BUILD, base / "build")
        return ScalingBench(opts, base)

    bench, elapsed = reload.run_in_tmp(opts, make_bench, prefix="netreload-scaling-")
    md = report(bench, opts, elapsed)
    cols = ["method", "round", "ms", "timeout", "client_ms", "client_exit"]
    benchlib.write_results(opts.out, "scaling", cols, [csv_cells(r, cols) for r in bench.rows], md)
    with open(Path(opts.out) / "scaling-medians.csv", "w") as f:
        f.write("modules," + ",".join(ROWS) + "\n")
        for n in opts.sizes:
            meds = [statistics.median([r["ms"] for r in bench.rows if r["method"] == key(n, row)]
                                      or [float("nan")]) for row in ROWS]
            f.write(f"{n}," + ",".join(f"{m:.1f}" for m in meds) + "\n")
    plot(opts.out)
    print(md)


if __name__ == "__main__":
    main()
