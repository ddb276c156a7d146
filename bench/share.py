#!/usr/bin/python3
"""Stale shares: how long a host edit stays invisible in the guest, per way of looking.

Uses the sshfs shares of tests/share.py (sshfs over a local sftp-server; kinds
attr, content, content-slow). One trial = one fresh file, one edit kind, one
way of looking (method), so that no method refreshes a cache for another:

  1. the host writes v1 (100 bytes) into BACKING/f, mtime set 10 s back, so that
     a same-size edit changes the mtime even in whole seconds;
  2. the guest fills its caches: a read of MNT/f, then stat (in this order: a
     read marks the cached atime stale, and stat() would then go to sshfs);
  3. t0: the host edits BACKING/f:
       same    in place, same size (open r+, write, close)
       grow    in place, 40 bytes longer
       rename  a temp file in the same dir, then os.replace over f (editors' save)
  4. the guest polls MNT/f every --poll-ms with the method until it sees the
     new state; t1 = that poll. "new" means: size and mtime (whole seconds) equal
     the host's (stat methods), or the bytes equal the host's (read).
       stat    os.stat (the kernel's attribute cache)
       statx   statx(AT_STATX_FORCE_SYNC) through libc
       fstat   open + os.fstat + close
       read    open + read to EOF + close
  5. once the method saw the new state, another process does a plain stat and
     a read: does it see it too ("others")?

The read method also records every distinct state it went through: old (v1
bytes), cut (new bytes cut at the old size: the kernel's cached i_size stops
the read) and new. The guest's mtime and inode numbers are compared with the
host's.

Needs root, /dev/fuse, sshfs, socat, openssh-sftp-server. Standard library
only; run with /usr/bin/python3. Writes bench/results/share.md and share.csv.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import share  # noqa: E402
import benchlib  # noqa: E402
from benchlib import cmd_output, fmt, machine  # noqa: E402

RESULTS = ROOT / "bench" / "results"
EDITS = ("same", "grow", "rename")
METHODS = ("stat", "statx", "fstat", "read")

OTHER = r'''
import os, sys
p = sys.argv[1]
st = os.stat(p)
with open(p, "rb") as f:
    data = f.read()
print(st.st_size, st.st_mtime_ns, len(data), data.hex())
'''


def v1():
    return b"VERSION = 'v1'\n" + b"#" * 84 + b"\n"


def v2(edit):
    body = b"VERSION = 'v2'\n" + b"#" * 84 + b"\n"
    return body + (b"x" * 39 + b"\n" if edit == "grow" else b"")


def do_edit(path, edit, data):
    if edit == "rename":
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    else:
        with open(path, "r+b") as f:  # in place: same inode, no truncation first
            f.write(data)


def look(method, path):
    """(size, mtime_ns, ino, bytes or None) as the guest sees them now."""
    if method == "stat":
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns, st.st_ino, None
    if method == "statx":
        st = share.statx(path)
        return st.st_size, st.st_mtime_ns, st.st_ino, None
    if method == "fstat":
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        return st.st_size, st.st_mtime_ns, st.st_ino, None
    with open(path, "rb") as f:
        return None, None, None, f.read()


def classify(data, old, new):
    if data == new:
        return "new"
    if data == old:
        return "old"
    if new.startswith(data):
        return f"cut@{len(data)}"
    return f"other({len(data)})"


def trial(s, edit, method, n, timeout, poll):
    name = f"{edit}-{method}-{n}.py"
    host, guest = s.host(name), s.guest(name)
    old, new = v1(), v2(edit)
    host.write_bytes(old)
    back = time.time_ns() - 10_000_000_000
    os.utime(host, ns=(back, back))
    # the guest has never looked up this name: its first look is fresh
    # read first: a read through FUSE marks the cached atime stale, and a plain
    # stat() asks for atime, so a stat after a read goes to the server anyway
    with open(guest, "rb") as f:
        seen0 = f.read()
    st0 = os.stat(guest)
    assert seen0 == old and st0.st_size == len(old), (seen0, st0)
    host_ino_before = os.stat(host).st_ino
    t0 = time.monotonic()
    do_edit(host, edit, new)
    hst = os.stat(host)
    want = (hst.st_size, hst.st_mtime_ns // 10**9)
    states, t1, last = [], None, None
    while True:
        now = time.monotonic()
        try:
            size, mtime_ns, ino, data = look(method, guest)
        except OSError as e:
            size = mtime_ns = ino = data = None
            state = f"error {e.errno}"
        else:
            if method == "read":
                state = classify(data, old, new)
                done = state == "new"
            else:
                done = (size, mtime_ns // 10**9) == want
                state = "new" if done else ("old" if size == len(old) else f"size {size}")
            if not states or states[-1][0] != state:
                states.append((state, round((now - t0) * 1000)))
            if done:
                t1 = now
                last = (size, mtime_ns, ino)
                break
        if now - t0 > timeout:
            break
        time.sleep(poll)
    row = {"kind": s.kind, "edit": edit, "method": method, "n": n,
           "ms": (t1 - t0) * 1000 if t1 else None,
           "states": " ".join(f"{st}@{ms}" for st, ms in states)}
    # the final state, seen by a forced statx (fresh for attr; may lag for content)
    fin = share.statx(guest)
    row.update(host_mtime_ns=hst.st_mtime_ns, guest_mtime_ns=fin.st_mtime_ns,
               host_size=hst.st_size, guest_size=fin.st_size,
               host_ino_before=host_ino_before, host_ino_after=hst.st_ino,
               guest_ino_before=st0.st_ino, guest_ino_after=fin.st_ino,
               last_ino=last[2] if last else None)
    if t1:
        r = subprocess.run([sys.executable, "-c", OTHER, str(guest)], capture_output=True,
                           text=True, timeout=30)
        if r.returncode == 0:
            size, mt, n_read, hexdata = r.stdout.split()
            ok_stat = (int(size), int(mt) // 10**9) == want
            ok_read = bytes.fromhex(hexdata) == new
            row["others"] = ("stat " + ("new" if ok_stat else "OLD") + ", read "
                             + ("new" if ok_read else classify(bytes.fromhex(hexdata), old, new)))
        else:
            row["others"] = "error: " + r.stderr.strip()[-200:]
    else:
        row["others"] = None
    return row


COLS = ["kind", "edit", "method", "n", "ms", "states", "others", "host_mtime_ns",
        "guest_mtime_ns", "host_size", "guest_size", "host_ino_before", "host_ino_after",
        "guest_ino_before", "guest_ino_after", "last_ino"]


def summary(rows, kinds, timeout):
    out = []
    for kind in kinds:
        out.append(f"\n### {kind}: `{share.KINDS[kind]}`\n")
        out.append("ms from the host's edit until the guest sees the new state "
                   "(min / median / max over the rounds; `never` = not within "
                   f"{timeout:g} s)\n")
        out.append("| edit | " + " | ".join(METHODS) + " |")
        out.append("|---|" + "---:|" * len(METHODS))
        for edit in EDITS:
            cells = []
            for m in METHODS:
                rs = [r for r in rows if (r["kind"], r["edit"], r["method"]) == (kind, edit, m)]
                ms = sorted(r["ms"] for r in rs if r["ms"] is not None)
                never = sum(r["ms"] is None for r in rs)
                if not ms:
                    cells.append(f"never ×{never}")
                    continue
                c = f"{fmt(ms[0], 0)} / {fmt(benchlib.pct(ms, 50), 0)} / {fmt(ms[-1], 0)}"
                cells.append(c + (f" (never ×{never})" if never else ""))
            out.append(f"| {edit} | " + " | ".join(cells) + " |")
        out.append("\nWhat the read method saw on its way (state@ms), and what another "
                   "process saw right after each method succeeded:\n")
        for edit in EDITS:
            reads = [r["states"] for r in rows if (r["kind"], r["edit"], r["method"])
                     == (kind, edit, "read")]
            out.append(f"- {edit}, read: " + "; ".join(reads))
            for m in METHODS:
                oth = sorted({r["others"] for r in rows if (r["kind"], r["edit"], r["method"])
                              == (kind, edit, m) and r["others"]})
                out.append(f"  - after {m}: another process: " + "; ".join(oth))
        out.append("\nmtime and inode seen by the guest vs the host (last round of each edit):\n")
        out.append("| edit | host mtime ns | guest mtime ns | host ino before → after "
                   "| guest ino before → after |")
        out.append("|---|---|---|---|---|")
        for edit in EDITS:
            rs = [r for r in rows if (r["kind"], r["edit"]) == (kind, edit)]
            if rs:
                r = rs[-1]
                out.append(f"| {edit} | {r['host_mtime_ns']} | {r['guest_mtime_ns']} | "
                           f"{r['host_ino_before']} → {r['host_ino_after']} | "
                           f"{r['guest_ino_before']} → {r['guest_ino_after']} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kind", action="append", choices=list(share.KINDS),
                    help="repeatable; default: all")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--poll-ms", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the share is unmounted and its processes stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    reason = share.missing()
    if reason:
        sys.exit(f"bench/share.py: {reason}")
    kinds = a.kind or list(share.KINDS)
    rows = []
    start = time.monotonic()
    for kind in kinds:
        base = Path(tempfile.mkdtemp(prefix=f"netreload-share-{kind}-"))
        try:
            with share.mounted(base, kind) as s:
                print(f"{kind}: {' '.join(s.command())}", file=sys.stderr)
                for n in range(a.rounds):
                    for edit in EDITS:
                        for m in METHODS:
                            r = trial(s, edit, m, n, a.timeout, a.poll_ms / 1000)
                            rows.append(r)
                            print(f"  {kind} {edit:6} {m:5} #{n}: {fmt(r['ms'], 0):>6} ms  "
                                  f"{r['states']}  others: {r['others']}", file=sys.stderr)
        finally:
            if not share.mounts_at(base / "guest"):  # never remove through a live mount
                shutil.rmtree(base, ignore_errors=True)
    sshfs_v = cmd_output(["dpkg-query", "-W", "-f=${Version}", "sshfs"])
    md = (f"# Stale shares (bench/share.py)\n\n"
          f"{machine(f'sshfs {sshfs_v}')}. {a.rounds} rounds per cell, polled every "
          f"{a.poll_ms:g} ms; run took {time.monotonic() - start:.0f} s.\n"
          + summary(rows, kinds, a.timeout))
    cells = [["" if r.get(c) is None else (f"{r[c]:.3f}" if c == "ms" else r[c]) for c in COLS]
             for r in rows]
    benchlib.write_results(a.out, "share", COLS, cells, md)
    print(md)


if __name__ == "__main__":
    main()
