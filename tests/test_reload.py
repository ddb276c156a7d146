"""Reloads end to end: every mode, failures, re-exec survival, coalescing,
lost signals and workers that refuse to stop.

Each test runs a real uWSGI master with the real plugin (conftest fixtures);
"live" from the client must mean the new code is served on the very next
request, so no GET after a ping is retried.
"""
import json
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (APP_TEMPLATE, BUILD, CLIENT, accepts_tcp, atomic_write, descendants,
                      free_port, kill_tree, pid_alive, run_client, tcp_exchange, uwsgi_env,
                      wait_for)
from uwsgibin import uwsgi_cmd

GEN_LINE = re.compile(r"netreload: generation \d+: \w[\w-]* reload")

# An app that reports its version, its pid, and misbehaves on request.
TRICKY_APP = '''\
import os, signal, time
VERSION = {version!r}

def application(env, start_response):
    path = env.get("PATH_INFO", "/")
    if path == "/ignore":
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        time.sleep(0.3)  # keep this worker busy so the other one takes the next request
        body = str(os.getpid())
    elif path == "/sleep":
        open(os.path.join({dir!r}, "sleeping.%d" % os.getpid()), "w").close()
        time.sleep(30)
        body = "woke"
    else:
        body = VERSION
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
'''


def gen_lines(server):
    return len(GEN_LINE.findall(server.log_text()))


def wait_log(server, needle, timeout=10):
    """A worker's lines can land in the file a moment after the reply that
    follows them: poll, bounded."""
    return wait_for(lambda: server.count(needle), timeout, what=f"{needle!r} in {server.log}")


def json_lines(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def status(server):
    r = run_client("status", "--json", server.target, timeout=15)
    assert r.returncode == 0, r.stderr
    [s] = json_lines(r.stdout)
    return s


def assert_live(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "live in" in r.stdout, r.stdout


# 1. every mode ---------------------------------------------------------------

@pytest.mark.parametrize("mode,lazy", [
    ("graceful", False),
    ("chain", True),
    ("workers", True),
    ("brutal-workers", True),
    ("brutal", False),
])
def test_mode_reloads_new_code(servers, mode, lazy):
    s = servers(mode=None if mode == "graceful" else mode, lazy=lazy)
    assert s.get() == "v1"
    for v in ("v2", "v3"):  # twice: the second reload starts from a reloaded instance
        s.set_version(v)
        r = s.ping(timeout=60)
        assert_live(r)
        assert s.get() == v
    assert wait_log(s, "netreload: generation 2 live") == 1
    assert f"netreload: generation 1: {mode} reload" in s.log_text()


def test_per_request_mode_override(servers):
    s = servers(lazy=True)  # default mode graceful
    s.set_version("v2")
    r = s.ping("-m", "workers", "--json")
    assert r.returncode == 0, r.stderr
    [j] = json_lines(r.stdout)
    assert j["event"] == "live" and j["mode"] == "workers"
    assert s.get() == "v2"
    wait_log(s, "netreload: generation 1 live")
    assert "netreload: generation 1: workers reload" in s.log_text()


# 2. which processes are replaced ---------------------------------------------

def test_workers_reload_replaces_every_worker(servers):
    s = servers(mode="workers", lazy=True)
    before = set(s.worker_pids())
    assert len(before) == 2
    master = s.pid
    s.set_version("v2")
    assert_live(s.ping())
    after = set(s.worker_pids())
    assert len(after) == 2
    assert not (before & after), (before, after)
    assert s.pid == master and s.proc.poll() is None
    assert s.get() == "v2"


def test_graceful_reload_keeps_master_pid(server):
    before = set(server.worker_pids())
    server.set_version("v2")
    assert_live(server.ping())
    assert server.proc.poll() is None  # the master re-exec'd in place, same pid
    assert status(server)["pid"] == server.pid
    assert not (before & set(server.worker_pids()))
    assert server.get() == "v2"


# 3. broken app: failed, still listening, then recovered ----------------------

BROKEN_APPS = {
    "import": ("import nonexistent_module_xyz\n" + APP_TEMPLATE.format(version="bad"),
               ["ModuleNotFoundError", "No module named 'nonexistent_module_xyz'"]),
    "syntax": ("def application(env, start_response:\n    pass\n",
               ["SyntaxError"]),
}


# need-app (on by default in uWSGI 2.1) would end the instance on a broken save:
# the plugin turns it off and says so.
@pytest.mark.parametrize("mode,lazy", [("graceful", False), ("workers", True)])
@pytest.mark.parametrize("broken,need_app", [("import", False), ("syntax", False),
                                             ("import", True)])
def test_broken_app_fails_then_recovers(servers, mode, lazy, broken, need_app):
    s = servers(mode=mode, lazy=lazy, extra=("--need-app",) if need_app else ())
    if need_app:
        assert "netreload: need-app turned off" in s.log_text()
    src, needles = BROKEN_APPS[broken]
    atomic_write(s.app, src)
    r = s.ping(timeout=60)
    assert r.returncode == 1, f"stdout: {r.stdout}\nstderr: {r.stderr}"
    assert "reload failed" in r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr
    assert s.accepts_tcp()
    st = status(s)
    assert st["last"] == "failed" and st["state"] == "idle"
    assert needles[0] in st.get("reason", "")
    assert wait_log(s, "netreload: generation 1 FAILED") == 1

    s.set_version("v2")
    r = s.ping(timeout=60)
    assert_live(r)
    assert s.get() == "v2"
    assert status(s)["last"] == "live"


# 4. re-exec survival -----------------------------------------------------------

def test_graceful_twice_in_a_row_and_generations_increase(server):
    gens = []
    for v in ("v2", "v3"):
        server.set_version(v)
        r = server.ping("--json")
        assert r.returncode == 0, r.stderr
        [j] = json_lines(r.stdout)
        assert j["event"] == "live"
        gens.append(j["gen"])
        assert server.get() == v
    assert gens[0] >= 1 and gens[1] > gens[0], gens


def test_ping_during_graceful_reexec_is_answered(server):
    """A request arriving while the master re-execs rides on (or follows) it and is
    answered live, with the code saved before it was sent."""
    server.set_version("v2")
    r1 = server.ping("--no-wait", "--json")
    assert r1.returncode == 0, r1.stderr
    [a] = json_lines(r1.stdout)
    assert a["event"] == "accepted"
    server.set_version("v3")
    r2 = server.ping("--json")
    assert r2.returncode == 0, r2.stderr
    [b] = json_lines(r2.stdout)
    assert b["event"] == "live" and b["gen"] >= a["gen"]
    assert server.get() == "v3"


def test_raw_connections_survive_reexec(server):
    """Waiting TCP clients are handed over the re-exec: open several while the first
    reload is in flight (before, across and after the exec) and all get live."""
    server.set_version("v2")
    socks, files = [], []
    try:
        for i in range(6):
            c = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            socks.append(c)
            files.append(c.makefile("rb"))
            c.sendall(f"NETRELOAD/1 reload id=r{i}\n".encode())
            accepted = files[i].readline().decode()
            assert accepted.startswith(f"NETRELOAD/1 accepted id=r{i} gen="), accepted
            time.sleep(0.05)  # spread the requests over the reload in flight
        gens = []
        for i, f in enumerate(files):
            line = f.readline().decode()
            assert line.startswith(f"NETRELOAD/1 live id=r{i} gen="), line
            gens.append(int(re.search(r"gen=(\d+)", line).group(1)))
            assert f.read() == b""  # the server closes after its last reply
        assert gens == sorted(gens) and gens[0] == 1
    finally:
        for f in files:
            f.close()
        for c in socks:
            c.close()
    assert server.get() == "v2"


def raw_reload_after_connect(port, delay):
    """Connect, wait `delay` s (a client busy between connect and send, as the real
    one is while it polls for the connect to finish), then send a wait=0 request."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        time.sleep(delay)
        try:
            c.sendall(b"NETRELOAD/1 reload wait=0\n")
            return c.makefile("rb").read().decode()
        except OSError as e:
            return f"<{e!r}>"


def test_pings_during_reexec_are_never_dropped(server):
    """Every ping that connects while a graceful re-exec is in flight gets an answer:
    a connection the old master accepted but whose request it had not read yet
    must not be closed by the exec. Pings (real client runs, and raw connections
    that send 2 ms after connecting) keep coming across each reload."""
    failures, total = [], 0
    for rnd in range(4):
        server.set_version(f"d{rnd}")
        out = tcp_exchange(server.port, b"NETRELOAD/1 reload wait=0\n", shutdown=False)
        assert out.startswith("NETRELOAD/1 accepted"), out
        t0 = time.monotonic()
        for i in range(100):  # bounded; stop once the reload is surely over
            if time.monotonic() - t0 > 0.5:
                break
            total += 1
            if i % 2:
                r = server.ping("--no-wait", "--timeout", "10", timeout=15)
                if r.returncode != 0:
                    failures.append(("client", r.returncode, r.stderr.strip()))
            else:
                out = raw_reload_after_connect(server.port, 0.002)
                if not out.startswith("NETRELOAD/1 accepted"):
                    failures.append(("raw", out))
        assert_live(server.ping())  # settle before the next round
    assert not failures, f"{len(failures)} of {total} pings dropped: {failures[:4]}"
    assert server.get() == "d3"


def test_partial_request_survives_reexec(server):
    """Deterministic form of the race above: a client that connected and sent part
    of its request line before a re-exec finishes it afterwards (well within the
    protocol's 5 s) and is still answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as c:
        c.sendall(b"NETRELOAD/1 reload")
        server.set_version("v2")
        out = tcp_exchange(server.port, b"NETRELOAD/1 reload wait=0\n", shutdown=False)
        assert out.startswith("NETRELOAD/1 accepted gen=1"), out
        wait_for(lambda: server.count("netreload: generation 1 live"), 10,
                 what="the re-exec to go live")
        try:
            c.sendall(b" id=late\n")
            reply = c.makefile("rb").read().decode()
        except OSError as e:
            reply = f"<{e!r}>"
    assert reply.startswith("NETRELOAD/1 accepted id=late gen="), reply
    assert "NETRELOAD/1 live id=late" in reply, reply


# 5. ping storm -----------------------------------------------------------------

STORM_APP = ("import time\ntime.sleep(0.2)  # a realistic import: a reload takes a while\n"
             + APP_TEMPLATE)


def test_ping_storm_coalesces(servers):
    """30 pings fired back to back (each after saving new code) cause at most two
    reloads, and the last code saved is what ends up live."""
    s = servers(app=STORM_APP.format(version="s"))
    before = gen_lines(s)
    g0 = status(s)["gen"]
    clients, socks = [], []
    try:
        for i in range(30):  # fire everything first, read the answers afterwards
            atomic_write(s.app, STORM_APP.format(version=f"s{i}"))
            if i % 2:
                c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
                socks.append(c)
                c.sendall(b"NETRELOAD/1 reload wait=0\n")
            else:
                clients.append(subprocess.Popen(
                    [str(CLIENT), "ping", "--no-wait", "--timeout", "10", s.target],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        promised = []
        for c in socks:
            try:
                out = c.makefile("rb").read().decode()
            except ConnectionResetError:
                out = "<connection reset without a reply>"
            m = re.match(r"NETRELOAD/1 accepted gen=(\d+) mode=graceful\n$", out)
            assert m, out
            promised.append(int(m.group(1)))
        for p in clients:
            out, err = p.communicate(timeout=20)
            assert p.returncode == 0, err
            m = re.search(r"reload accepted \(generation (\d+), graceful\)", out)
            assert m, out
            promised.append(int(m.group(1)))
    finally:
        for c in socks:
            c.close()
        for p in clients:
            if p.poll() is None:
                p.kill()
                p.wait()
    r = s.ping("--json")
    assert r.returncode == 0, r.stderr
    [j] = json_lines(r.stdout)
    assert j["event"] == "live"
    assert s.get() == "s29"
    # the storm asked for at most two generations, and the log agrees
    assert set(promised) <= {g0 + 1, g0 + 2}, promised
    wait_log(s, f"netreload: generation {j['gen']} live")
    storm_lines = gen_lines(s) - before - (1 if j["gen"] > max(promised) else 0)
    assert 1 <= storm_lines <= 2, s.log_text()


# 6. uWSGI's lost SIGHUP ----------------------------------------------------------

@pytest.mark.parametrize("mode,lazy", [("workers", True), ("graceful", False)])
def test_ping_right_after_live_does_not_stall(servers, mode, lazy):
    """uWSGI ignores SIGHUP in a new worker for ~100 ms and drops one sent then; a
    ping right after "live" must not wait for reload-mercy (60 s)."""
    s = servers(mode=mode, lazy=lazy)
    for i in range(8):
        s.set_version(f"q{i}")
        r = s.ping("--timeout", "10", timeout=20)
        assert_live(r)
        assert s.get() == f"q{i}"
    wait_log(s, "netreload: generation 8 live")  # every line before it is in the file
    assert "did not stop within" not in s.log_text()
    assert "killing it" not in s.log_text()


# 7. workers that refuse to stop ---------------------------------------------------

def tricky(servers, version="v1", **kw):
    srv = servers(start=False, **kw)
    atomic_write(srv.app, TRICKY_APP.format(version=version, dir=str(srv.dir)))
    return srv.start()


def test_worker_ignoring_sighup_is_killed_after_grace(servers):
    s = tricky(servers, extra=["--netreload-grace", "500"])
    workers = set(s.worker_pids())
    assert len(workers) == 2
    seen = set()
    for _ in range(10):
        results = []
        ts = [threading.Thread(target=lambda: results.append(s.get("/ignore", timeout=5)))
              for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        seen |= {int(x) for x in results if x and x.isdigit()}
        if seen >= workers:
            break
    assert seen >= workers, (seen, workers)

    atomic_write(s.app, TRICKY_APP.format(version="v2", dir=str(s.dir)))
    t0 = time.monotonic()
    r = s.ping("--timeout", "10", timeout=20)
    assert_live(r)
    assert time.monotonic() - t0 < 9
    assert s.get() == "v2"
    assert wait_log(s, "did not stop within 500 ms, killing it") == 2  # both workers
    assert not (workers & set(s.worker_pids()))


def test_busy_worker_is_killed_after_grace(servers):
    s = tricky(servers, extra=["--netreload-grace", "500"])
    t = threading.Thread(target=s.get, args=("/sleep",), kwargs={"timeout": 3}, daemon=True)
    t.start()
    try:
        wait_for(lambda: list(s.dir.glob("sleeping.*")), 10, what="the slow request to start")
        atomic_write(s.app, TRICKY_APP.format(version="v2", dir=str(s.dir)))
        t0 = time.monotonic()
        r = s.ping("--timeout", "10", timeout=20)
        assert_live(r)
        assert time.monotonic() - t0 < 9  # well under the 30 s request
        assert s.get() == "v2"
        wait_log(s, "did not stop within 500 ms, killing it")
    finally:
        t.join(10)


# 8. timeout reported by the server ----------------------------------------------------

def test_reload_timeout_is_reported(servers):
    s = servers(mode="workers", lazy=True, extra=["--netreload-timeout", "1"])
    atomic_write(s.app, "import time\ntime.sleep(30)\n" + APP_TEMPLATE.format(version="slow"))
    try:
        t0 = time.monotonic()
        r = s.ping("--timeout", "20", timeout=30)
        assert r.returncode == 1, f"stdout: {r.stdout}\nstderr: {r.stderr}"
        assert "timeout" in r.stderr
        assert time.monotonic() - t0 < 15
        st = status(s)
        assert st["last"] == "failed" and "timeout" in st["reason"]
        assert st["state"] == "idle"
    finally:
        # workers stuck in the 30 s import ignore SIGINT; kill the whole tree by pid
        # now rather than let the fixture wait 10 s for it
        pids = [s.pid] + descendants(s.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not any(pid_alive(p) for p in pids), 10, what="uWSGI to die")


# 9. the user's worker-reload-mercy wins over netreload's default grace ------------------

SLOW_APP = '''\
import os, time
VERSION = {version!r}

def application(env, start_response):
    if env.get("PATH_INFO") == "/slow":
        open(os.path.join({dir!r}, "slow.started"), "w").close()
        time.sleep(4)
        body = "slow done"
    else:
        body = VERSION
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
'''


@pytest.mark.parametrize("mode,lazy", [("graceful", False), ("workers", True)])
def test_worker_reload_mercy_lets_a_long_request_finish(servers, mode, lazy):
    """netreload-grace (3 s) used to kill a 4 s request although the user had set
    worker-reload-mercy: uWSGI itself would have waited."""
    s = servers(start=False, mode=mode, lazy=lazy, processes=1,
                extra=["--worker-reload-mercy", "10"])
    atomic_write(s.app, SLOW_APP.format(version="v1", dir=str(s.dir)))
    s.start()
    assert "netreload: old workers get 10 s to finish their requests (worker-reload-mercy" \
        in s.log_text()
    got = {}
    t = threading.Thread(target=lambda: got.update(body=s.get("/slow", timeout=15)), daemon=True)
    t.start()
    try:
        wait_for(lambda: (s.dir / "slow.started").exists(), 10, what="the slow request")
        atomic_write(s.app, SLOW_APP.format(version="v2", dir=str(s.dir)))
        r = s.ping(timeout=40)
        assert_live(r)
        assert s.get() == "v2"
    finally:
        t.join(20)
    assert got.get("body") == "slow done", got
    assert "killing it" not in s.log_text()


# 10. --cheap: no worker runs between requests -------------------------------------------

@pytest.mark.parametrize("mode,lazy", [("graceful", False), ("workers", True)])
def test_cheap_instance_goes_live_at_once(servers, mode, lazy):
    """With --cheap uWSGI runs no worker until a request comes: every ping used to
    wait 30 s and answer "failed: 0 of 0 workers running new code"."""
    s = servers(mode=mode, lazy=lazy, extra=["--cheap"])
    s.set_version("v2")
    t0 = time.monotonic()
    r = s.ping(timeout=40)
    assert_live(r)
    assert time.monotonic() - t0 < 10
    assert s.get() == "v2"


def test_cheap_instance_broken_save_fails_with_the_reason(servers):
    s = servers(extra=["--cheap"])
    src, needles = BROKEN_APPS["import"]
    atomic_write(s.app, src)
    r = s.ping(timeout=40)
    assert r.returncode == 1 and "reload failed" in r.stderr, r.stdout + r.stderr
    assert needles[1] in r.stderr, r.stderr
    s.set_version("v3")
    assert_live(s.ping(timeout=40))
    assert s.get() == "v3"


# 11. a worker on its way out is not signalled again ---------------------------------------

TEARDOWN_APP = '''\
import atexit, os, time
VERSION = {version!r}

def teardown():  # a slow atexit teardown, as Django's without skip-atexit-teardown
    with open(os.path.join({dir!r}, "teardown.log"), "a") as f:
        f.write("start %d\\n" % os.getpid())
    time.sleep(1)
    with open(os.path.join({dir!r}, "teardown.log"), "a") as f:
        f.write("end %d\\n" % os.getpid())

atexit.register(teardown)

def application(env, start_response):
    if env.get("PATH_INFO") == "/slow":
        with open(os.path.join({dir!r}, "slow.started"), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(0.5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''


@pytest.mark.parametrize("mode,lazy", [("graceful", False), ("workers", True)])
def test_worker_in_its_teardown_gets_no_second_sighup(servers, mode, lazy):
    """A worker that got SIGHUP during a request leaves after it, through
    exit() and the app's atexit teardown, with SIGHUP no longer blocked. The
    SIGHUP netreload repeated every 100 ms to idle old workers (for the ones
    that lost theirs) re-entered uWSGI's handler there, which logged again and
    called exit() again: the app's teardown was cut off halfway."""
    s = servers(start=False, mode=mode, lazy=lazy, extra=["--netreload-grace", "8000"])
    atomic_write(s.app, TEARDOWN_APP.format(version="v1", dir=str(s.dir)))
    s.start()
    t = threading.Thread(target=s.get, args=("/slow",), kwargs={"timeout": 10}, daemon=True)
    t.start()
    try:
        wait_for(lambda: (s.dir / "slow.started").exists() and
                 (s.dir / "slow.started").read_text(), 10, what="the slow request")
        busy = int((s.dir / "slow.started").read_text())
        atomic_write(s.app, TEARDOWN_APP.format(version="v2", dir=str(s.dir)))
        assert_live(s.ping(timeout=40))
        assert s.get() == "v2"
    finally:
        t.join(10)
    teardown = (s.dir / "teardown.log").read_text()
    assert f"start {busy}\n" in teardown and f"end {busy}\n" in teardown, teardown
    assert s.count("Gracefully killing worker") >= 2
    assert len(re.findall(rf"Gracefully killing worker \d+ \(pid: {busy}\)", s.log_text())) == 1
    assert "killing it" not in s.log_text()


def test_graceful_reexec_closes_fds_only_up_to_the_highest_open_one(server):
    """uWSGI closes every fd below max_fd (the RLIMIT_NOFILE soft limit, 1048576 in
    many containers) one by one before it re-execs, and the new master looks at
    each twice for inherited sockets; netreload ends those loops at the highest
    open fd. The sockets, the listener and the new code survive it."""
    logged = lambda: [int(m) for m in re.findall(r"closing all non-uwsgi socket fds > 2 "
                                                  r"\(max_fd = (\d+)\)", server.log_text())]
    for n in (2, 3):
        server.set_version(f"v{n}")
        r = server.ping()
        assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
        assert server.get() == f"v{n}"
    loops = logged()
    assert len(loops) == 2, server.log_text()
    # the server runs with --max-fd 1024; a handful of fds are open
    assert all(3 < m < 100 for m in loops), f"close loops went up to {loops}"
    # the new master's two loops over inherited fds end there too, and max_fd
    # is back to 1024 for the rest of its life
    checks = re.findall(r"netreload: looked for inherited sockets in fds 3-(\d+), the highest "
                        r"open, not up to max_fd (\d+)", server.log_text())
    assert len(checks) == 2 and all(3 < int(top) < 100 and full == "1024" for top, full in checks), \
        (checks, server.log_text())


@pytest.mark.parametrize("nofile,extra,expect", [
    (20000, [], "hint"), (20000, ["--max-fd", "8192"], None), (4096, [], None),
    (20000, ["--netreload-fast"], "lowered"), (20000, ["--netreload-fast", "--max-fd", "8192"], None)])
def test_a_huge_fd_limit_is_lowered_by_netreload_fast_or_named_at_startup(tmp_path, nofile, extra,
                                                                         expect):
    """The re-exec'd master checks every fd up to max_fd twice: with a container's
    RLIMIT_NOFILE that is seconds per graceful reload. netreload-fast lowers the soft
    limit to 4096 (a max-fd the user set wins); without it startup says how to cut it."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < nofile:
        pytest.skip(f"the hard RLIMIT_NOFILE here is below {nofile}")
    port = free_port()
    app = tmp_path / "app.py"
    app.write_text(APP_TEMPLATE.format(version="v1"))
    args = ["--plugin", "netreload", "--netreload-port", str(port), "--master",
            "--http-socket", f"127.0.0.1:{free_port()}", "--wsgi-file", str(app), *extra]

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    def soft_limit():
        with open(f"/proc/{proc.pid}/limits") as f:
            return int(next(l for l in f if l.startswith("Max open files")).split()[3])

    log = tmp_path / "uwsgi.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(uwsgi_cmd(BUILD, *args), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=tmp_path, env=uwsgi_env(),
                                preexec_fn=limit)
    try:
        wait_for(lambda: accepts_tcp(port), 15, what="netreload to listen")
        text = log.read_text()
        hint = re.search(r"netreload: max_fd is (\d+): .* set max-fd = 4096", text)
        lowered = re.search(r"netreload-fast: max-fd = 4096 \(the soft ulimit -n was (\d+)", text)
        assert bool(hint) == (expect == "hint") and bool(lowered) == (expect == "lowered"), text
        assert (hint or lowered or [None, str(nofile)])[1] == str(nofile), text
        want = 4096 if expect == "lowered" else int(dict(zip(extra, extra[1:])).get("--max-fd", nofile))
        assert soft_limit() == want
        atomic_write(app, APP_TEMPLATE.format(version="v2"))
        r = run_client("ping", f"127.0.0.1:{port}")
        assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr + log.read_text()
        assert soft_limit() == want, "the limit changed across the re-exec"
    finally:
        kill_tree(proc.pid)
        proc.wait(timeout=10)
