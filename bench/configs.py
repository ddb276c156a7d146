#!/usr/bin/python3
"""Configurations benchmark: save -> new code served with netreload, per uWSGI feature.

The "works with" table of the README: each row is one private uWSGI (2 workers,
a trivial app, 127.0.0.1) with netreload and one uWSGI feature switched on, and
the same rounds as bench/reload.py's netreload rows:

    t0 = just before app.py is saved atomically (temp file + os.replace)
    t1 = the first moment an HTTP GET returns the new VERSION (polled every 2 ms)

plus the client's own figure (`netreload ping --json` -> "ms") and its exit
code: a round whose ping does not exit 0 ("live") is counted as failed. Rounds
are interleaved and the row order turns each round (as bench/compat.py), so load
from other jobs hits every row alike; each median is also given as a ratio to
the plain graceful row of the same run.

Writes bench/results/configs.csv (one line per round) and configs.md.
Standard library only; run with /usr/bin/python3 (make bench-configs).
"""
import argparse
import shutil
import statistics
import subprocess
import sys

import reload  # bench/reload.py: the servers, the rounds, the temp-dir run
import benchlib
from benchlib import csv_cells, fmt, pct

log = reload.log
REF = "graceful (plain)"

# row -> (reload.Server method, extra uWSGI options; {dir} is the row's own dir)
CONFIGS = {
    REF: ("netreload", []),
    "workers + lazy-apps": ("netreload workers", []),
    "chain + lazy-apps": ("netreload", ["--netreload-mode", "chain", "--lazy-apps"]),
    "threads (--threads 4)": ("netreload workers", ["--threads", "4"]),
    "--enable-threads": ("netreload workers", ["--enable-threads"]),
    "cheaper (--cheaper 1)": ("netreload workers", ["--cheaper", "1"]),
    "--cheap": ("netreload workers", ["--cheap"]),
    "--logto FILE": ("netreload", ["--logto", "{dir}/logto.log"]),
    "--log-master": ("netreload workers", ["--log-master"]),
    "--threaded-logger": ("netreload workers", ["--log-master", "--threaded-logger"]),
    "--log-maxsize": ("netreload", ["--logto", "{dir}/rot.log", "--log-maxsize", "100000"]),
    "--harakiri 30": ("netreload workers", ["--harakiri", "30"]),
    "--max-requests 50": ("netreload workers", ["--max-requests", "50"]),
    "--touch-reload also set": ("netreload", ["--touch-reload", "{dir}/never-touched"]),
    "--attach-daemon": ("netreload", ["--attach-daemon", "sleep 3600"]),
    "--vacuum + unix socket": ("netreload workers", ["--vacuum", "--socket", "{dir}/u.sock"]),
    "--master-fifo": ("netreload", ["--master-fifo", "{dir}/fifo"]),
}


class ConfigServer(reload.Server):
    def __init__(self, row, base_dir):
        method, self.extra = CONFIGS[row]
        super().__init__(method, base_dir, name=row)

    def args(self):
        return super().args() + [a.format(dir=self.dir) for a in self.extra]


class ConfigBench(reload.Bench):
    def make_server(self, row):
        return ConfigServer(row, self.base)

    def order(self, rnd):
        rows = self.o.methods
        k = (rnd - 1) % len(rows)
        return rows[k:] + rows[:k]


def report(bench, opts, elapsed):
    by = {}
    for r in bench.rows:
        by.setdefault(r["method"], []).append(r)

    def good(row):
        return [r["ms"] for r in by.get(row, []) if not r["stalled"] and r.get("client_exit") == 0]

    ref = statistics.median(good(REF)) if good(REF) else float("nan")
    lines = ["| configuration | rounds | live (exit 0) | median ms | p90 ms | client ms (median) "
             f"| vs {REF} |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in opts.methods:
        rows = by.get(row, [])
        v = good(row)
        live = sum(r.get("client_exit") == 0 for r in rows)
        med = statistics.median(v) if v else float("nan")
        cms = [r["client_ms"] for r in rows if r.get("client_ms") is not None]
        ratio = "–" if med != med or ref != ref else f"{med / ref:.2f}×"
        lines.append(f"| {row} | {len(rows)} | {live}/{len(rows)} | {fmt(med)} | {fmt(pct(v, 90))} "
                     f"| {fmt(statistics.median(cms) if cms else None, 0)} | {ratio} |")
    head = (f"Save → new code served through each configuration, {bench.rounds_done} rounds per "
            f"row (interleaved, order turning), GET polled every {opts.poll_ms:g} ms; a round "
            f"counts only if `netreload ping` answered live (exit 0). Run took {elapsed:.0f} s.")
    return "\n".join([head, ""] + lines + ["", reload.machine_line(opts),
                     "", "Other jobs may share this machine; figures from one run can be noisy."]) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    reload.add_run_options(ap, rounds=5, native=False)
    opts = ap.parse_args()
    opts.methods = list(CONFIGS)
    if not shutil.which(reload.uwsgibin.UWSGI):
        sys.exit(f"configs.py: {reload.uwsgibin.UWSGI} not found (make deps-test)")
    if not reload.PLUGIN.exists() or not reload.CLIENT.exists():
        subprocess.run(["make", "-C", str(reload.ROOT), "all"], check=True)

    def make_bench(base):
        reload.RUN_BUILD, reload.RUN_CLIENT, opts.plugin_hash = reload.private_build(reload.BUILD, base / "build")
        return ConfigBench(opts, base)

    bench, elapsed = reload.run_in_tmp(opts, make_bench, prefix="netreload-configs-")
    md = report(bench, opts, elapsed)
    cols = ["method", "round", "ms", "stalled", "timeout", "client_ms", "client_exit"]
    benchlib.write_results(opts.out, "configs", cols, [csv_cells(r, cols) for r in bench.rows], md)
    print(md)


if __name__ == "__main__":
    main()
