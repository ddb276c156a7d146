"""Process and port helpers shared by the tests and the benchmarks (stdlib only).

uWSGI masters are stopped with SIGINT (SIGTERM is a brutal *reload* in uWSGI
2.0), then whatever is left of the tree is killed by pid. Children are found
through /proc, since Debian's Python has no psutil by default.
"""
import os
import signal
import socket
import subprocess
import time


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def children_of(pid):
    """Direct children of pid, from /proc (no psutil on Debian by default)."""
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children_of(p):
            out.append(c)
            todo.append(c)
    return out


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def workers_settled(master_pid):
    """True once every worker has installed uWSGI's signal handlers (SIGHUP caught).

    uWSGI starts workers with signals ignored for ~0.1 s; a SIGINT that lands then
    is lost, and the master waits for that worker until kill_tree's SIGKILL
    fallback. This happens without netreload too; teardown waits for it.
    """
    for pid in children_of(master_pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                cgt = next(line for line in f if line.startswith("SigCgt:"))
        except (OSError, StopIteration):
            continue
        if not int(cgt.split()[1], 16) & 1:
            return False
    return True


def kill_tree(pid, timeout=10.0, settle=5.0):
    """Stop a uWSGI master: wait (up to settle s) until its workers can hear signals,
    SIGINT it (uWSGI's shutdown), then SIGKILL whatever is left after timeout, by pid."""
    deadline = time.monotonic() + settle
    while pid_alive(pid) and time.monotonic() < deadline and not workers_settled(pid):
        time.sleep(0.02)
    pids = [pid] + descendants(pid)
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.02)
    for p in pids + descendants(pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_trees(procs, timeout=10.0):
    """SIGINT each master (uWSGI's shutdown), all at once, then SIGKILL what is left
    after timeout; every pid is collected before the first signal."""
    procs = [p for p in procs if p is not None]
    pids = []
    for p in procs:
        pids += [p.pid] + descendants(p.pid)
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            p.poll()  # reap the masters so they do not linger as zombies
        if not any(pid_alive(x) for x in pids):
            break
        time.sleep(0.01)
    for p in procs:
        pids += descendants(p.pid)
    for x in pids:
        if pid_alive(x):
            try:
                os.kill(x, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# HTTP -----------------------------------------------------------------------
