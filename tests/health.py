"""The health check every attack test ends with, and the probes it is made of.

assert_healthy: the master pid is unchanged and alive, it is not spinning, its
fd count is back to the baseline taken before the attack, HTTP is served
promptly and a real `netreload ping` still reloads to new code. Servers that
require signed requests carry the client's --secret-file in server.client_args.
"""
import json
import os
import time

from conftest import fd_count, pid_alive, run_client, wait_for

CLOSE_DEADLINE = 8.0        # what we allow for the server to close an idle connection
CLK_TCK = os.sysconf("SC_CLK_TCK")
LAST_STATUS = {}


def status(server, timeout=10):
    """`netreload status --json` as a dict, or None if the server did not answer."""
    try:
        r = run_client("status", "--json", "--timeout", "5", *server.client_args, server.target,
                       timeout=timeout)
    except Exception as e:
        LAST_STATUS["error"] = repr(e)
        return None
    LAST_STATUS["error"] = f"exit {r.returncode}: {r.stdout}{r.stderr}"
    if r.returncode != 0 or not r.stdout.strip():
        return None
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except ValueError:
        return None


def wait_idle(server, timeout=45.0):
    """Wait until no reload is in flight (attacks made of plain pings start reloads)."""
    def idle():
        st = status(server)
        return st if st and st.get("state") == "idle" else None
    return wait_for(idle, timeout, interval=0.1, what="netreload to be idle")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    # after "pid (comm) ": state is fields[0]; utime, stime are fields 14, 15 of stat(5)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_share(pid, interval=0.5):
    """Share of one core the process used over about `interval` seconds."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(interval)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return (c1 - c0) / (t1 - t0)


def baseline_fds(pid):
    """The master's fd count at rest (min over a short window: probes come and go)."""
    samples = []
    for _ in range(10):
        samples.append(fd_count(pid))
        time.sleep(0.05)
    return min(samples)


def log_tail(server, n=40):
    return "\n".join(server.log_text().splitlines()[-n:])


def assert_healthy(server, pid0, base_fds, version, check_fds=True):
    """The checks every attack is followed by (see the module docstring)."""
    assert server.proc.poll() is None, f"master exited:\n{log_tail(server)}"
    assert server.pid == pid0 and pid_alive(pid0), "master pid changed or died"
    st = wait_idle(server)
    assert st["pid"] == pid0, f"status reports pid {st['pid']}, master is {pid0}"
    # HTTP right away, inside Uwsgi.get's 2 s timeout
    body = server.get()
    assert body is not None and body.startswith("v"), f"HTTP not served: {body!r}"
    # not spinning: the attack is over, the master should be near 0% CPU
    share = cpu_share(pid0, 0.5)
    assert share < 0.2, f"master uses {share:.0%} of a core after the attack"
    # every attack connection is gone again (idle ones are closed after 5 s)
    if check_fds:
        wait_for(lambda: fd_count(pid0) <= base_fds, CLOSE_DEADLINE, interval=0.1,
                 what=f"master fd count back to {base_fds} (now {fd_count(pid0)})")
    # and a real ping still reloads to new code
    server.set_version(version)
    r = server.ping(timeout=60)
    assert r.returncode == 0, f"ping failed: {r.stdout}{r.stderr}\n{log_tail(server)}"
    assert "live in" in r.stdout
    assert server.get() == version
    assert server.proc.poll() is None and pid_alive(pid0) and server.pid == pid0
    if check_fds:
        wait_for(lambda: fd_count(pid0) <= base_fds, CLOSE_DEADLINE, interval=0.1,
                 what=f"master fd count back to {base_fds} after the ping")
