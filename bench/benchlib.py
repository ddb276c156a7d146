"""Report and run helpers shared by the benchmark scripts (stdlib only)."""
import csv
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from proctools import descendants  # noqa: E402

# Apps import with their bytecode cached, as on a developer's machine: a
# PYTHONDONTWRITEBYTECODE left in the environment (some shells and CI images
# set it) would have every server and import probe compile every module from
# source, every round. The scaling figures before 2026-12-02 were measured so.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pct(values, q):
    """Percentile q (0-100) by linear interpolation between closest ranks."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def fmt(x, digits=1):
    """A figure for a table; missing (None) or NaN shows as a dash."""
    return "–" if x is None or x != x else f"{x:.{digits}f}"


def cmd_output(args):
    """First line of a command's output, or "?" if it cannot run."""
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
        return out.split("\n")[0] or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def loadavg():
    """The load averages (1, 5, 15 min) from /proc/loadavg, as one string."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((x.split(":", 1)[1].strip() for x in f if x.startswith("model name")),
                        "?")
    except OSError:
        return "?"


def machine(extra):
    """The machine line of a report: kernel, CPU, cores, then extra (what the script
    wants to say about versions and builds), the date, and the netreload commit."""
    u = os.uname()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = cmd_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return (f"Machine: {u.sysname} {u.release} {u.machine}; CPU {cpu_model()}; "
            f"nproc {os.cpu_count()}; {extra}; {date}; netreload at {head}")


def csv_cells(row, cols):
    """A result dict as CSV cells: ms with 3 decimals, a missing or None field empty."""
    return [f"{row[c]:.3f}" if c == "ms" else ("" if row.get(c) is None else row[c])
            for c in cols]


def write_results(out_dir, name, cols, rows, md):
    """Write out_dir/NAME.csv (header cols, then rows of cells) and NAME.md, each
    replaced atomically, so a reader never sees half a file. Returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    tmp = csv_path.with_name(f"{name}.csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows(rows)
    os.replace(tmp, csv_path)
    tmp = md_path.with_name(f"{name}.md.tmp")
    tmp.write_text(md)
    os.replace(tmp, md_path)
    return csv_path, md_path


def _cpu_ns(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # gone meanwhile
    return total


# A reload goes on after "live": with netreload-fast's spare workers the old
# workers exit ~0.1 s later, the master forks the next spares, and those copy
# their pages 0.5 s after that. Work one server does then must not land in
# another row's round.
QUIET_FLOOR_S = 1.0


def add_quiet_option(ap):
    """--quiet, the floor of wait_quiet(), for a script's argument parser."""
    ap.add_argument("--quiet", type=float, default=QUIET_FLOOR_S,
                    help="before every round: this long after the last round of any row, "
                         "then until every server idles, s (default %(default)g)")


def wait_quiet(roots, since, floor=QUIET_FLOOR_S, window=0.05, idle_ms=2.0, timeout=5.0):
    """Before a round: wait until floor s after `since` (time.monotonic() of the
    last round's end, or None), then until the process trees under the pids in
    roots use less than idle_ms of CPU in a window of `window` s (at most timeout
    s more). Returns the seconds waited."""
    t0 = time.monotonic()
    if since is not None and since + floor > t0:
        time.sleep(since + floor - t0)
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for r in roots if r for p in [r] + descendants(r)]
        before = _cpu_ns(pids)
        time.sleep(window)
        if (_cpu_ns(pids) - before) / 1e6 < idle_ms or time.monotonic() > deadline:
            return time.monotonic() - t0
