"""Process and port helpers shared by the tests and the benchmarks (stdlib only).

uWSGI masters are stopped with SIGINT (SIGTERM is a brutal *reload* in uWSGI
2.0), then whatever is left of the tree is killed by pid. Children are found
through /proc, since Debian's Python has no psutil by default.
"""
import fcntl
import os
import signal
import socket
import subprocess
import time


# Ports are handed out below the kernel's ephemeral range (32768-60999 by
# default), which every outgoing connection draws its source port from: a port
# picked there (bind to 0) can be taken by some connection before the server
# under test binds it. Each pytest-xdist worker gets its own slice, and each
# process starts at its own place in it and counts up. Two sessions running at
# once (make test-compat runs one per uWSGI build, with the same worker names)
# share slices, so a process also owns every port it hands out: it holds an
# flock on /tmp/netreload-ports/PORT until it exits, and skips ports another
# live process holds. A bind test alone is not enough: between the pick and the
# server's bind, or after the server stopped while a client of its test still
# sends, the port looks free to the other session.
_PORT_LOW, _PORT_HIGH, _SLICES = 10000, 32000, 8


def _port_slice():
    w = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(w[2:]) if w[2:].isdigit() else 0
    size = (_PORT_HIGH - _PORT_LOW) // _SLICES
    return _PORT_LOW + (n % _SLICES) * size, size


_next_port = None
_owned = {}  # port -> open lock file, held for this process's life
_LOCK_DIR = "/tmp/netreload-ports"


def _lock_dir():
    """/tmp/netreload-ports, open to every user (sticky, like /tmp itself)."""
    os.makedirs(_LOCK_DIR, exist_ok=True)
    if os.stat(_LOCK_DIR).st_mode & 0o7777 != 0o1777:
        try:
            os.chmod(_LOCK_DIR, 0o1777)  # makedirs' mode is cut by the umask
        except OSError:
            pass  # another user's: it made it open already, or nothing can be done
    return _LOCK_DIR


def _own(port):
    """Take port for this process unless another live process holds it. The
    lock file is opened read-only (flock needs no more), so a file another user
    left there works too; a port whose file cannot be opened is not taken."""
    if port in _owned:
        return True
    path = os.path.join(_lock_dir(), str(port))
    fd = -1
    try:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        if fd >= 0:
            os.close(fd)
        return False
    _owned[port] = fd
    return True


def _bindable(port):
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            s.bind(("127.0.0.1", port))
            u.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1, not in the ephemeral range."""
    global _next_port
    base, size = _port_slice()
    if _next_port is None:
        _next_port = (os.getpid() * 7919 + time.monotonic_ns()) % size
    for _ in range(size):
        port = base + _next_port % size
        _next_port += 1
        if _own(port) and _bindable(port):
            return port
    raise RuntimeError(f"no free port in {base}-{base + size - 1}")


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
