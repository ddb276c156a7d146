"""Options, startup errors, build and install paths, and fd hygiene of workers."""
import os
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD, ROOT, children_of, free_port, run_client, uwsgi_env, wait_for


# helpers ---------------------------------------------------------------------------
def start_expect_exit(servers, **kw):
    """Start uWSGI with these options; it must exit by itself within 15 s."""
    s = servers(start=False, **kw)
    s.start(wait=False)
    try:
        rc = s.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"uWSGI kept running with {kw}:\n{s.log_text()[-3000:]}")
    s.logf.flush()
    return rc, s.log_text()


def netreload_lines(log):
    return [l for l in log.splitlines() if l.startswith("netreload:")]


def listening_inodes(port):
    """Inodes of sockets bound to local port `port`: TCP listeners and UDP sockets."""
    inodes = {}
    for table, want_state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", None), ("udp6", None)):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, state, inode = f[1], f[3], f[9]
            if int(local.rsplit(":", 1)[1], 16) != port:
                continue
            if want_state and state != want_state:
                continue
            inodes[int(inode)] = (table, local)
    return inodes


def socket_inodes(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def has_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# 9. bad values stop startup ---------------------------------------------------------
@pytest.mark.parametrize("opt,value", [
    ("netreload-port", "0"),
    ("netreload-port", "abc"),
    ("netreload-port", "70000"),
    ("netreload-mode", "fast"),
    ("netreload-timeout", "10s"),
    ("netreload-timeout", "0"),
    ("netreload-grace", "-5"),
])
def test_bad_option_value_stops_startup(servers, opt, value):
    extra = ["--plugin", "netreload"]
    if opt != "netreload-port":
        extra += ["--netreload-port", str(free_port())]
    extra += [f"--{opt}", value]
    rc, log = start_expect_exit(servers, netreload=False, extra=extra)
    assert rc != 0, log[-2000:]
    hits = [l for l in netreload_lines(log) if opt in l and f"'{value}'" in l]
    assert len(hits) == 1, f"expected one line naming {opt} and '{value}':\n{log[-2000:]}"
    # and nothing got as far as serving
    assert "spawned uWSGI worker" not in log


# 10. non-loopback needs netreload-insecure; IPv6 loopback works ----------------------------
@pytest.mark.parametrize("addr", ["0.0.0.0", "::"])
def test_non_loopback_bind_refused_without_insecure(servers, addr):
    if addr == "::" and not has_ipv6_loopback():
        pytest.skip("no IPv6 on this machine")
    rc, log = start_expect_exit(servers, extra=["--netreload-bind", addr])
    assert rc != 0
    hits = [l for l in netreload_lines(log) if "netreload-insecure" in l]
    assert len(hits) == 1, log[-2000:]
    assert addr in hits[0]
    assert "spawned uWSGI worker" not in log


def test_non_loopback_bind_with_insecure_works(servers):
    s = servers(extra=["--netreload-bind", "0.0.0.0", "--netreload-insecure"])
    # it really listens on the wildcard address (00000000:PORT), TCP and UDP
    socks = listening_inodes(s.port)
    assert {(t, l) for t, l in socks.values()} >= {("tcp", f"00000000:{s.port:04X}"),
                                                    ("udp", f"00000000:{s.port:04X}")}, socks
    s.set_version("v2")
    r = s.ping()    # only ever over loopback
    assert r.returncode == 0, r.stderr
    assert s.get() == "v2"


def test_ipv6_loopback_bind(servers):
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this machine")
    s = servers(start=False, extra=["--netreload-bind", "::1"])
    s.start(wait=False)
    wait_for(lambda: s.get() is not None, 15, what=f"uWSGI to serve ({s.log})")

    def accepts6():
        try:
            with socket.create_connection(("::1", s.port), timeout=0.5):
                return True
        except OSError:
            return False
    wait_for(accepts6, 15, what="netreload to listen on [::1]")
    assert not s.accepts_tcp(), "bound to ::1 but also reachable on 127.0.0.1"
    assert "netreload: listening on ::1 port" in s.log_text()
    s.set_version("v2")
    r = run_client("ping", f"[::1]:{s.port}", timeout=30)
    assert r.returncode == 0, r.stderr
    assert "live in" in r.stdout
    assert s.get() == "v2"
    st = run_client("status", f"[::1]:{s.port}", timeout=10)
    assert st.returncode == 0 and "generation 1" in st.stdout, st.stdout + st.stderr


# 11. loaded without a port: idle ----------------------------------------------------------
def test_plugin_without_port_is_idle(servers):
    s = servers(netreload=False, extra=["--plugin", "netreload"])
    assert s.get() == "v1"
    log = s.log_text()
    assert "netreload: plugin loaded but idle" in log
    assert "netreload: listening" not in log
    # the master holds no netreload epoll/timer fds: nothing of it runs
    links = [os.readlink(f"/proc/{s.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{s.pid}/fd")]
    assert not any("timerfd" in l for l in links), links


# 12. workers mode without lazy-apps warns ---------------------------------------------------
def test_workers_mode_without_lazy_apps_warns(servers):
    s = servers(mode="workers")
    assert s.get() == "v1"
    warn = [l for l in netreload_lines(s.log_text()) if "WARNING" in l]
    assert len(warn) == 1 and "lazy-apps" in warn[0], warn


def test_workers_mode_with_lazy_apps_does_not_warn(servers):
    s = servers(mode="workers", lazy=True)
    assert s.get() == "v1"
    assert not [l for l in netreload_lines(s.log_text()) if "WARNING" in l]


# 13. port in use ------------------------------------------------------------------------
@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_port_in_use(servers, proto):
    s = servers(start=False)
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    blocker = socket.socket(socket.AF_INET, kind)
    try:
        blocker.bind(("127.0.0.1", s.port))
        if proto == "tcp":
            blocker.listen(1)
        s.start(wait=False)
        try:
            rc = s.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"uWSGI started on a port in use:\n{s.log_text()[-2000:]}")
    finally:
        blocker.close()
    log = s.log_text()
    assert rc != 0
    hits = [l for l in netreload_lines(log) if "in use" in l.lower()]
    assert len(hits) == 1, log[-2000:]
    assert str(s.port) in hits[0] and proto.upper() in hits[0]


# 14. --help lists every option ------------------------------------------------------------
def test_help_lists_options(tmp_path):
    r = subprocess.run(["uwsgi", "--plugins-dir", str(BUILD), "--plugin", "netreload", "--help"],
                       capture_output=True, text=True, timeout=15, cwd=tmp_path,
                       stdin=subprocess.DEVNULL, env=uwsgi_env())
    out = r.stdout + r.stderr
    for opt in ("netreload-port", "netreload-bind", "netreload-mode", "netreload-timeout",
                "netreload-grace", "netreload-insecure"):
        lines = [l for l in out.splitlines() if l.strip().startswith(f"--{opt} ")]
        assert len(lines) == 1, f"--{opt} missing from --help"
        assert len(lines[0].split(None, 1)) == 2, f"--{opt} has no description"


# 15. build and install paths ---------------------------------------------------------------
def test_build_plugin_with_uwsgi(tmp_path, servers):
    out = tmp_path / "bp"
    out.mkdir()
    r = subprocess.run(["uwsgi", "--build-plugin", str(ROOT)], capture_output=True, text=True,
                       timeout=180, cwd=out, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    so = out / "netreload_plugin.so"
    assert so.is_file()
    # the freshly built .so loads (from that dir, not build/) and works
    s = servers(start=False)
    s.args[s.args.index(str(BUILD))] = str(out)
    s.start()
    maps = Path(f"/proc/{s.pid}/maps").read_text()
    assert str(so) in maps and str(BUILD / "netreload_plugin.so") not in maps
    s.set_version("v2")
    p = s.ping()
    assert p.returncode == 0, p.stderr
    assert s.get() == "v2"


def test_make_install_destdir(tmp_path):
    dest = tmp_path / "dest"
    r = subprocess.run(["make", "-C", str(ROOT), "install", f"DESTDIR={dest}", "PREFIX=/usr"],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    plugin = dest / "usr/lib/uwsgi/plugins/netreload_plugin.so"
    client = dest / "usr/bin/netreload"
    assert plugin.is_file(), r.stdout + r.stderr
    assert client.is_file() and os.access(client, os.X_OK), r.stdout + r.stderr
    v = subprocess.run([str(client), "--version"], capture_output=True, text=True, timeout=10)
    assert v.returncode == 0 and v.stdout.startswith("netreload "), v.stdout + v.stderr
    assert r.returncode == 0, f"make install failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
    assert (dest / "usr/share/man/man1/netreload.1").is_file()


# 16. workers never hold the listener -------------------------------------------------------
def test_workers_do_not_hold_netreload_sockets(servers):
    s = servers(processes=3)

    def check(phase):
        inodes = listening_inodes(s.port)
        tables = {t for t, _ in inodes.values()}
        assert {"tcp", "udp"} <= tables, f"{phase}: listeners not found: {inodes}"
        master = socket_inodes(s.pid)
        assert set(inodes) <= master, f"{phase}: the master does not hold {inodes}"
        workers = wait_for(lambda: (w := children_of(s.pid)) and len(w) == 3 and w, 10,
                           what="3 workers")
        for w in workers:
            held = socket_inodes(w) & set(inodes)
            assert not held, f"{phase}: worker {w} holds netreload sockets {held}"
        return workers

    before = check("startup")
    s.set_version("v2")
    r = s.ping()
    assert r.returncode == 0, r.stderr
    after = check("after a reload")
    assert not set(before) & set(after)
