"""FUSE mounts for the tests' shares (tests/vm.py's bindfs, tests/share.py's sshfs):
whether the machine can mount one, what is mounted where, and unmounting with
retries. Standard library only: the benchmarks use it too."""
import os
import shutil
import subprocess
import time


def run(args, timeout=10.0):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def fuse_missing():
    """None if this process can mount FUSE filesystems, or the missing piece."""
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "no `fusermount3`/`fusermount` on PATH (Debian package fuse3)"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse (FUSE is not available here)"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as e:
        return f"cannot open /dev/fuse: {e.strerror}"
    return None


def _unescape(p):
    # /proc/mounts escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(p):
        if p[i] == "\\" and i + 4 <= len(p) and p[i + 1:i + 4].isdigit():
            out.append(chr(int(p[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(p[i])
            i += 1
    return "".join(out)


def mounts_at(path):
    """The /proc/mounts lines (of this process's mount namespace) mounted on path."""
    path = os.path.realpath(path)
    found = []
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and _unescape(fields[1]) == path:
                    found.append(line.strip())
    except OSError:
        pass
    return found


def unmount(mnt):
    """Unmount mnt: fusermount -u, retried while busy (right after a process in it
    exited), then umount -l. Returns what could not be done (empty: unmounted)."""
    fusermount = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
    last = ""
    for _ in range(30):
        if not mounts_at(mnt):
            return []
        try:
            r = run([fusermount, "-u", mnt])
            last = (r.stderr or r.stdout).strip()
        except subprocess.TimeoutExpired:
            last = "timed out"
        if not mounts_at(mnt):
            return []
        time.sleep(0.1)
    r = run(["umount", "-l", mnt])
    problems = [f"fusermount -u {mnt} kept failing ({last}); "
                f"umount -l: exit {r.returncode} {r.stderr.strip()}"]
    if mounts_at(mnt):
        problems.append(f"{mnt} is still mounted")
    return problems
