#!/usr/bin/python3
"""uWSGI compatibility benchmark: save -> new code served with netreload on every uWSGI.

The same rounds as bench/reload.py's netreload rows (graceful, and workers with
lazy-apps; 2 workers, a trivial app, 127.0.0.1), on Debian's uWSGI 2.0.21
(/usr/bin/uwsgi, the reference), on 2.0.30 built the way pip builds it, and on
master (2.1-dev, core + python3 plugin), in one run:

    t0 = just before app.py is saved atomically (temp file + os.replace)
    t1 = the first moment an HTTP GET returns the new VERSION (polled every 2 ms)

and the client's own figure, `netreload ping --json` -> "ms" (request sent ->
every worker new). Each (uWSGI, mode) is one row with its own server; rounds are
interleaved (round 1 of every row, then round 2, ...) and the order of the rows
turns by one each round, so load from other jobs and the after-effects of one
reload on the next hit every row alike. Each median is compared with 2.0.21's
in the same mode: the target is "within 20 %", i.e. at most 1.2x.

The uWSGIs are built first from third_party/uwsgi/ with tools/build-uwsgi.sh into
build/compat/uwsgi-V/, with netreload built for each into build/compat/uwsgi-V/
netreload/ (the same paths as make test-compat; an up-to-date build is reused);
Debian's uses build/. Writes bench/results/compat.csv (one line per round) and
compat.md. Standard library only; run with /usr/bin/python3 (make bench-compat).
See bench/README.md.
"""
import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import reload  # bench/reload.py: the servers, the rounds, the temp-dir run
import benchlib
from benchlib import csv_cells, fmt, loadavg, machine, pct

ROOT = benchlib.ROOT
REF = "2.0.21"
MODES = {"graceful": "netreload graceful", "workers": "netreload workers"}
TARGET = 1.20  # "within 20 %" of the reference median
log = reload.log


class Build:
    """One uWSGI and the netreload build made for it."""

    def __init__(self, label, kind, uwsgi, build):
        self.label, self.kind = label, kind
        self.uwsgi = Path(os.path.abspath(uwsgi))
        self.build = Path(os.path.abspath(build))
        self.ub = None  # its own tests/uwsgibin.py module, set by load()

    def prepare(self, src):
        """Build (or reuse) this uWSGI and its netreload build."""
        if self.kind != "debian":
            tarball = Path(src) / f"uwsgi-{self.label}.tar.gz"
            run(["sh", "tools/build-uwsgi.sh", str(tarball), self.kind, str(self.uwsgi.parent)])
        run(["make", "--no-print-directory", f"UWSGI={self.uwsgi}", f"BUILD={self.build}", "all"])

    def load(self):
        """tests/uwsgibin.py once more, as a module of its own that runs this uWSGI."""
        spec = importlib.util.spec_from_file_location(
            f"uwsgibin_{self.label.replace('.', '_')}", ROOT / "tests" / "uwsgibin.py")
        self.ub = importlib.util.module_from_spec(spec)
        saved = os.environ.get("NETRELOAD_UWSGI")
        os.environ["NETRELOAD_UWSGI"] = str(self.uwsgi)
        try:
            spec.loader.exec_module(self.ub)
        finally:
            if saved is None:
                del os.environ["NETRELOAD_UWSGI"]
            else:
                os.environ["NETRELOAD_UWSGI"] = saved
        return self

    def python(self):
        if self.ub.builtin_python():
            return "built in"
        d = self.ub.env_vars().get("UWSGI_PLUGINS_DIR")
        return "`--plugin python3`" + (f" from `UWSGI_PLUGINS_DIR={d}`" if d else "")


def run(args):
    """A build step, from the repository root, its output to stderr. Make's own
    variables from a calling make (make bench-compat UWSGI=...) are not passed on."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    subprocess.run(args, cwd=ROOT, env=env, stdout=sys.stderr, check=True)


def load1():
    try:
        return float(loadavg().split()[0])
    except ValueError:
        return float("nan")


class CompatBench(reload.Bench):
    """reload.py's rounds, with rows "LABEL MODE", each on its own uWSGI."""

    def __init__(self, opts, base_dir, builds):
        super().__init__(opts, base_dir)
        self.builds = {b.label: b for b in builds}
        self.row_of = {}  # row -> (build, mode)
        for mode in MODES:
            for b in builds:
                self.row_of[f"{b.label} {mode}"] = (b, mode)
        opts.methods = list(self.row_of)
        self.loads = []

    def make_server(self, row):
        b, mode = self.row_of[row]
        return reload.Server(MODES[mode], self.base, name=row, ub=b.ub, build=b.run_build,
                             client=b.run_client)

    def settle(self, row):
        """--settle after the last reload of any row went live, not only this row's:
        the rows run back to back, and each has its own uWSGI to calm down."""
        if self.last_live:
            left = max(self.last_live.values()) + self.o.settle - time.monotonic()
            if left > 0:
                time.sleep(left)

    def round(self, row, rnd):
        self.loads.append(load1())
        super().round(row, rnd)

    def order(self, rnd):
        """Each round starts one row later than the one before."""
        rows = self.o.methods
        k = (rnd - 1) % len(rows)
        return rows[k:] + rows[:k]


def summary(bench, row):
    rows = [r for r in bench.rows if r["method"] == row]
    good = [r for r in rows if not r["stalled"]]
    ms = [r["ms"] for r in good]
    cl = [r["client_ms"] for r in good if r.get("client_ms") is not None]
    return {"n": len(rows), "stalls": len(rows) - len(good),
            "timeouts": sum(r["timeout"] for r in rows),
            "med": statistics.median(ms) if ms else float("nan"), "p90": pct(ms, 90),
            "cmed": statistics.median(cl) if cl else float("nan"), "cp90": pct(cl, 90)}


def ratio(x, ref):
    return x / ref if ref == ref and ref > 0 and x == x else float("nan")


def report(bench, builds, opts, elapsed, load_start, load_end):
    ref = builds[0]
    stats = {row: summary(bench, row) for row in bench.row_of}
    lines = [f"| uWSGI | built | mode | rounds | save→live median ms | p90 ms | vs {ref.label} "
             f"| client \"live\" median ms | p90 ms | vs {ref.label} | within 20 % | stalls |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    verdicts = []
    for mode in MODES:
        r0 = stats[f"{ref.label} {mode}"]
        for b in builds:
            s = stats[f"{b.label} {mode}"]
            q, cq = ratio(s["med"], r0["med"]), ratio(s["cmed"], r0["cmed"])
            if b is ref:
                verdict = "reference"
            elif q != q:
                verdict = "–"
            else:
                verdict = "yes" if q <= TARGET else "**no**"
                verdicts.append((b.label, mode, q <= TARGET, cq <= TARGET))
            st = f"{s['stalls']}" + (f" ({s['timeouts']} timeout)" if s["timeouts"] else "")
            lines.append(f"| {b.label} | {b.kind} | {mode} | {s['n']} | {fmt(s['med'])} "
                         f"| {fmt(s['p90'])} | {fmt(q, 2)}× | {fmt(s['cmed'], 0)} "
                         f"| {fmt(s['cp90'], 0)} | {fmt(cq, 2)}× | {verdict} | {st} |")
    notes = []
    if verdicts:
        missed = [f"{v[0]} {v[1]}" for v in verdicts if not v[2]]
        notes.append(f"Target (save→live median within 20 % of {ref.label}'s, same mode, same "
                     "run): " + (f"NOT met for {', '.join(missed)}." if missed
                                 else "met for every uWSGI and mode."))
        off = [f"{v[0]} {v[1]}" for v in verdicts if v[2] != v[3]]
        if off:
            notes.append("The client's figure judges otherwise for: " + ", ".join(off) + ".")
    stalled = [r for r in bench.rows if r["stalled"]]
    if stalled:
        notes.append("Stalled rounds (> 3 s, or no new code within the timeout), left out: " +
                     ", ".join(f"{r['method']} #{r['round']} ({r['ms']:.0f} ms)" for r in stalled)
                     + ".")
    build_lines = ["| uWSGI | version | binary | how built | Python | netreload build (sha256) |",
                   "|---|---|---|---|---|---|"]
    how = {"debian": "Debian package uwsgi-core", "pip": "`uwsgiconfig.py --build default` "
           "(pip's way)", "plugin": "`--build core` + python3 plugin"}
    for b in builds:
        try:
            binary = b.uwsgi.relative_to(ROOT)
        except ValueError:
            binary = b.uwsgi
        try:
            build = b.build.relative_to(ROOT)
        except ValueError:
            build = b.build
        build_lines.append(f"| {b.label} | {b.ub.version()} | `{binary}` | {how.get(b.kind, b.kind)} "
                           f"| {b.python()} | `{build}` ({b.plugin_hash}) |")
    loads = [x for x in bench.loads if x == x]
    head = (f"netreload save → new code served on each uWSGI, "
            f"{reload.rounds_note(bench, opts)} (interleaved, the row order turning each round), "
            f"GET polled every {opts.poll_ms:g} ms, {opts.settle:g} s after the previous reload of "
            f"any row went live; 2 workers, trivial app; workers mode with `--lazy-apps`. "
            f"Run took {elapsed:.0f} s. Load average (1, 5, 15 min) {load_start} at the start, "
            f"{load_end} at the end" + (f"; 1-min load {min(loads):.2f}–{max(loads):.2f} during "
                                        f"the rounds." if loads else "."))
    md = "\n".join(
        [head, ""] + lines + ([""] + [f"- {n}" for n in notes] if notes else []) +
        ["", "\"vs\" is the row's median over the same mode's median on "
             f"{ref.label} in this run; \"within 20 %\" judges the save→live median "
             f"(at most {TARGET:.2f}×; faster counts as within). The client's figure is "
             "`netreload ping --json` \"ms\", request sent → every worker new, in whole ms.",
         "", "Builds:", ""] + build_lines +
        ["", machine(f"{', '.join('uWSGI ' + b.ub.version() for b in builds)}; "
                     f"Python {platform.python_version()}")
         + " (each netreload build copied at the start of the run)",
         "", "Other jobs may share this machine; figures from one run can be noisy."]) + "\n"
    return md


def write_results(bench, md, out_dir):
    cols = ["uwsgi", "built", "mode", "round", "ms", "stalled", "timeout", "client_ms",
            "client_exit", "recv_to_start_ms"]
    rows = []
    for r in bench.rows:
        b, mode = bench.row_of[r["method"]]
        rows.append(csv_cells({**r, "uwsgi": b.label, "built": b.kind, "mode": mode}, cols))
    return benchlib.write_results(out_dir, "compat", cols, rows, md)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    reload.add_run_options(ap, rounds=15, native=False)
    ap.set_defaults(budget=300.0)
    ap.add_argument("--builds", default="2.0.30:pip master:plugin",
                    help="the uWSGIs besides Debian's, VERSION:KIND (pip or plugin) separated by "
                         "spaces, from SRC/uwsgi-VERSION.tar.gz (default: %(default)s)")
    ap.add_argument("--src", type=Path, default=ROOT / "third_party" / "uwsgi",
                    help="where the uWSGI source archives are (default third_party/uwsgi)")
    ap.add_argument("--compat-dir", type=Path, default=ROOT / "build" / "compat",
                    help="where they are built (default build/compat)")
    ap.add_argument("--ref-uwsgi", default="/usr/bin/uwsgi",
                    help=f"the reference uWSGI, {REF} (default /usr/bin/uwsgi)")
    ap.add_argument("--ref-build", type=Path, default=ROOT / "build",
                    help="the netreload build for it (default build)")
    opts = ap.parse_args()
    if opts.rounds < 1:
        ap.error("--rounds must be >= 1")
    if not Path(opts.ref_uwsgi).exists():
        sys.exit(f"compat.py: {opts.ref_uwsgi} not found (make deps-test)")
    # each uWSGI finds its own python3 plugin (tests/uwsgibin.py)
    os.environ.pop("NETRELOAD_UWSGI_PLUGINS", None)

    builds = [Build(REF, "debian", opts.ref_uwsgi, opts.ref_build)]
    for spec in opts.builds.split():
        label, _, kind = spec.partition(":")
        d = (ROOT / opts.compat_dir) / f"uwsgi-{label}"
        builds.append(Build(label, kind or "plugin", d / "uwsgi", d / "netreload"))
    t0 = time.monotonic()
    for b in builds:
        b.prepare(ROOT / opts.src)
        b.load()
    log(f"builds ready in {time.monotonic() - t0:.0f} s")

    def make_bench(base):
        for b in builds:
            b.run_build, b.run_client, b.plugin_hash = reload.private_build(
                b.build, base / f"build-{b.label}")
        return CompatBench(opts, base, builds)

    load_start = loadavg()
    bench, elapsed = reload.run_in_tmp(opts, make_bench, prefix="netreload-compat-")
    load_end = loadavg()
    md = report(bench, builds, opts, elapsed, load_start, load_end)
    csv_path, md_path = write_results(bench, md, opts.out)
    print(md, end="")
    log(f"wrote {csv_path} and {md_path}")


if __name__ == "__main__":
    main()
