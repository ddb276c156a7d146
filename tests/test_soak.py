"""Soak: 1,000 reloads in a row, mixed modes. Every ping is answered "live",
and the master's fd count and memory do not grow.

Set NETRELOAD_SOAK_RELOADS to run more or fewer (default 1000).
"""
import os
import socket
import time

from conftest import fd_count, wait_for

RELOADS = int(os.environ.get("NETRELOAD_SOAK_RELOADS", "1000"))
# mostly worker reloads (the master lives on, so leaks would show), some re-execs
MODES = ["workers"] * 4 + ["brutal-workers"] * 2 + ["chain", "graceful", "workers", "brutal"]
FAST = ["--shared-import", "random", "--shared-import", "threading", "--skip-atexit-teardown"]


def reload_once(port, mode, n):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"NETRELOAD/1 reload id=soak{n} mode={mode} wait=1\n".encode())
        data = b""
        while b" live " not in data and b" failed " not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_thousand_reloads_no_leaks(servers):
    server = servers(lazy=True, extra=FAST)
    master = server.pid
    warmup = 30
    unanswered = []
    for n in range(warmup):
        if " live " not in reload_once(server.port, MODES[n % len(MODES)], n):
            unanswered.append(n)
    fds0, rss0 = fd_count(master), rss_kb(master)
    t0 = time.monotonic()
    for n in range(warmup, RELOADS):
        out = reload_once(server.port, MODES[n % len(MODES)], n)
        if " live " not in out:
            unanswered.append((n, out))
    elapsed = time.monotonic() - t0
    # a reload can hold an fd for a moment; a leak would not settle back
    wait_for(lambda: fd_count(master) <= fds0, timeout=5, what=f"master fds back to {fds0}")
    fds1, rss1 = fd_count(master), rss_kb(master)
    print(f"soak: {RELOADS} reloads, {elapsed:.1f} s after warm-up; master fds {fds0} -> {fds1},"
          f" RSS {rss0} -> {rss1} kB")
    assert not unanswered, unanswered[:5]
    assert server.pid == master and server.proc.poll() is None
    assert fds1 <= fds0
    assert rss1 - rss0 < 1024, f"master RSS grew by {rss1 - rss0} kB"
    assert server.count(f"generation {RELOADS} live") == 1
    assert server.get() == "v1"
