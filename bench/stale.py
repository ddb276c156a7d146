#!/usr/bin/python3
"""Stale-share benchmark: does "live" mean the saved code is served, and what does it cost?

uWSGI (graceful mode, the python3 plugin) runs its app from a "guest" directory:
an sshfs mount of the "host" directory the benchmark edits (tests/share.py:
kinds attr, NFS-like, and content, which caches content too), or, for the
local row, the host directory itself. Each save edits version.py (cycling
through same-size in place, growing in place, temp file + rename), then runs
`netreload ping --root HOST --changed HOST/version.py` and, after a live
reply, one GET:

    save -> live   time from just before the edit to the live reply
    stale lives    live replies after which the GET served an older version
    honest         failed replies that said the share was stale (nothing reloaded)
    false failures "app failed to load" for an error that is not in the saved
                   file (the new source read cut at a cached old size)
    check          the plugin's own figure for the share check ("the share shows
                   N changed file(s) after X ms" in its log), median

Each share runs twice: with the file list (netreload 0.2) and with --no-files
(what 0.1 did: reload at once). Rows run in one process, one after another,
with the same app and the same number of saves. Needs root, /dev/fuse, sshfs,
socat, openssh-sftp-server, uwsgi + python3 plugin, build/ from `make all`.
Writes bench/results/stale.md and stale.csv.
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import share  # noqa: E402
import benchlib  # noqa: E402
from benchlib import cmd_output, fmt, machine, pct  # noqa: E402
from proctools import free_port, kill_tree  # noqa: E402

BUILD = ROOT / "build"
CLIENT = BUILD / "netreload"
RESULTS = ROOT / "bench" / "results"
APP = '''\
import version

def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [version.VERSION.encode()]
'''
STYLES = ("same-size", "growing", "rename")
CHECK_RE = re.compile(r"the share shows \d+ changed file\(s\).* after ([0-9.]+) ms")


def get(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            return r.read().decode()
    except OSError:
        return None


def edit(path, i, style):
    if style == "same-size":
        with open(path, "r+") as f:
            f.write(f'VERSION = "v{i:04d}"\n')
            f.truncate()
    elif style == "growing":
        path.write_text(f'VERSION = "v{i:04d}{"+" * (i % 50)}"\n')
    else:
        tmp = path.with_name(".version.py.tmp")
        tmp.write_text(f'VERSION = "v{i:04d}"\n')
        tmp.replace(path)
    return f"v{i:04d}"


def start_uwsgi(host, guest, work):
    (host / "app.py").write_text(APP)
    (host / "version.py").write_text('VERSION = "v0000"\n')
    port, http = free_port(), free_port()
    log = work / f"uwsgi-{port}.log"
    args = ["uwsgi", "--plugin", "python3", "--plugins-dir", str(BUILD), "--master",
            "--processes", "2", "--http-socket", f"127.0.0.1:{http}", "--max-fd", "1024",
            "--wsgi-file", str(guest / "app.py"), "--chdir", str(guest),
            "--plugin", "netreload", "--netreload-port", str(port)]
    proc = subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while get(http) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"uWSGI did not start, see {log}")
        time.sleep(0.05)
    time.sleep(0.5)  # workers install their signal handlers
    return proc, port, http, log


def run_row(name, host, guest, work, saves, files):
    proc, port, http, log = start_uwsgi(host, guest, work)
    ms, stale, honest, false_fail = [], 0, 0, 0
    try:
        for i in range(1, saves + 1):
            t0 = time.monotonic()
            want = edit(host / "version.py", i, STYLES[i % len(STYLES)])
            p = subprocess.run([str(CLIENT), "ping", *([] if files else ["--no-files"]),
                                "--root", str(host), "--changed", str(host / "version.py"),
                                f"127.0.0.1:{port}"], capture_output=True, text=True,
                               timeout=60)
            t1 = time.monotonic()
            if p.returncode == 0:
                ms.append((t1 - t0) * 1000)
                stale += not (get(http) or "").startswith(want)
            elif "stale share:" in p.stdout + p.stderr:
                honest += 1
            elif "app failed to load" in p.stdout + p.stderr:
                false_fail += 1  # an error that is not in the saved file: a cut read
            else:
                raise SystemExit(f"{name}: ping failed: {p.stdout}{p.stderr}")
            time.sleep(0.2)  # the next save comes after the page was looked at
    finally:
        kill_tree(proc.pid)
        proc.wait(timeout=10)
    checks = [float(x) for x in CHECK_RE.findall(log.read_text(errors="replace"))]
    return {"row": name, "saves": saves, "lives": len(ms), "stale_lives": stale,
            "honest": honest, "false_failures": false_fail, "median_ms": pct(ms, 50), "p90_ms": pct(ms, 90),
            "check_ms": pct(checks, 50) if checks else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--saves", type=int, default=20)
    ap.add_argument("--out", type=Path, default=RESULTS)
    o = ap.parse_args()
    why = share.missing()
    if why:
        raise SystemExit(f"bench/stale.py: cannot mount a share here: {why}")
    rows = []
    base = Path(tempfile.mkdtemp(prefix="netreload-stale-"))
    try:
        for files in (True, False):
            local = base / f"local-{files}"
            local.mkdir()
            label = "file list" if files else "no list (0.1)"
            print(f"local disk, {label} ...", flush=True)
            rows.append(run_row(f"local disk, {label}", local, local, base, o.saves, files))
        for kind in ("attr", "content"):
            for files in (True, False):
                label = "file list" if files else "no list (0.1)"
                print(f"{kind} share, {label} ...", flush=True)
                with share.mounted(base / f"{kind}-{files}", kind) as sh:
                    rows.append(run_row(f"{kind} share, {label}", sh.host(), sh.guest(),
                                        base, o.saves, files))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    cols = ["row", "saves", "lives", "stale_lives", "honest", "false_failures", "median_ms",
            "p90_ms", "check_ms"]
    local_files, local_plain = rows[0]["median_ms"], rows[1]["median_ms"]
    lines = ["# Stale shares: save -> live, and whether live served the saved code", "",
             machine(f"uWSGI {cmd_output(['uwsgi', '--version'])}, "
                     f"{cmd_output(['sshfs', '--version'])}"), "",
             "| row | saves | live | stale lives | honest stale | false failures "
             "| save→live median ms | p90 ms | check ms (plugin) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['row']} | {r['saves']} | {r['lives']} | {r['stale_lives']} | "
                     f"{r['honest']} | {r['false_failures']} | {fmt(r['median_ms'])} | {fmt(r['p90_ms'])} | "
                     f"{fmt(r['check_ms'], 3)} |")
    lines += ["", f"The check on local disk: save→live {fmt(local_files)} ms with the file "
              f"list vs {fmt(local_plain)} ms without "
              f"({fmt(local_files / local_plain, 3)}×), same run.", ""]
    md = "\n".join(lines)
    cells = [[r[c] if not isinstance(r[c], float) else f"{r[c]:.3f}" for c in cols]
             for r in rows]
    benchlib.write_results(o.out, "stale", cols, cells, md)
    print(md)


if __name__ == "__main__":
    main()
