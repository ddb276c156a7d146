#!/usr/bin/python3
"""Plot save -> new code served, from the benchmarks' per-round CSV files, with gnuplot.

    bench/plot.py [CSV...] [--out bench/results/reload.png]

Each CSV has a header with `method` (or `row`) and `ms`, one line per round;
rounds marked `stalled` or `timeout` = 1 are left out, as in the tables, and
so are rows that time a part rather than a save (imports, round trips,
reads: see NOT_A_SAVE). One
horizontal bar per method: the median, with a whisker to the p90, on a log
scale so 30 ms and 1.7 s fit on one picture. The group of a bar is the CSV's
file name (reload, django, vm). Standard library only, plus Debian's gnuplot.
"""
import argparse
import csv
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# rows of django.csv and vm.csv that time one component, not save -> served
NOT_A_SAVE = ("import", "status round trip", "stat + read")


def pct(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def rows_of(path):
    """(label, median, p90) per method, in the order methods first appear."""
    rounds = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            name = r.get("method") or r.get("row") or ""
            if (r.get("stalled") == "1" or r.get("timeout") == "1" or not r.get("ms")
                    or name.startswith(NOT_A_SAVE)):
                continue
            rounds.setdefault(name, []).append(float(r["ms"]))
    group = path.stem
    return [(f"{group}: {m}" if group != "reload" else m, statistics.median(v), pct(v, 0.9))
            for m, v in rounds.items() if v]


def plot(rows, out, title):
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.tsv"
        # gnuplot draws bottom-up: reverse so the first row is on top
        data.write_text("".join(f'{i}\t"{label}"\t{med:.3f}\t{p90:.3f}\n'
                                for i, (label, med, p90) in enumerate(reversed(rows))))
        height = 120 + 28 * len(rows)
        script = f"""
set terminal pngcairo size 1000,{height} font "sans,10"
set output "{out}"
set title "{title}"
set logscale x 10
set xrange [10:*]
set xlabel "save -> new code served, ms (median; whisker: p90; log scale)"
set ytics nomirror
set grid xtics
set style fill solid 0.6
unset key
set yrange [-0.7:{len(rows) - 0.3}]
plot "{data}" using 3:1:(10):3:($1-0.35):($1+0.35):ytic(2) with boxxyerror lc rgb "#3a7bd5", \\
     "" using 3:1:3:4 with xerrorbars lc rgb "#222222" pt 7 ps 0.5, \\
     "" using 3:1:(sprintf("%.0f", $3)) with labels left offset 1,0.6 font "sans,8"
"""
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        if r.returncode != 0:
            sys.exit(f"plot.py: gnuplot failed: {r.stderr.strip()}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="*", type=Path,
                    help="per-round CSV files (default: reload, django, vm in bench/results)")
    ap.add_argument("--out", type=Path, default=RESULTS / "reload.png")
    ap.add_argument("--title", default="netreload vs uWSGI's own reload triggers (2 workers)")
    opts = ap.parse_args()
    if not shutil.which("gnuplot"):
        sys.exit("plot.py: gnuplot not found (apt-get install gnuplot-nox, or make deps-bench)")
    paths = opts.csv or [p for p in (RESULTS / n for n in ("reload.csv", "django.csv", "vm.csv"))
                         if p.exists()]
    rows = [r for p in paths for r in rows_of(p)]
    if not rows:
        sys.exit("plot.py: no rounds to plot; run make bench first")
    plot(rows, opts.out, opts.title)
    print(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
