"""Options, startup errors, build and install paths, and fd hygiene of workers."""
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import (BUILD, ROOT, UWSGI, children_of, free_port, run_client, uwsgi_cmd, uwsgi_env,
                      wait_for, workers_settled)


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


# 12. a mode that cannot load new code is refused, never answered "live" ---------------------
def test_workers_mode_without_lazy_apps_stops_startup(servers):
    s = servers(mode="workers", start=False)
    s.start(wait=False)
    rc = s.proc.wait(timeout=30)
    lines = netreload_lines(s.log_text())
    assert rc != 0 and len(lines) == 1, lines
    assert "netreload-mode = workers cannot load new code without lazy-apps" in lines[0]
    assert "add lazy-apps = true or use netreload-mode = graceful" in lines[0]


@pytest.mark.parametrize("mode", ["workers", "chain", "brutal-workers"])
@pytest.mark.parametrize("udp", [False, True])
def test_per_request_mode_without_lazy_apps_is_refused(servers, mode, udp):
    """It used to answer "live" while every worker still served the old code."""
    s = servers()  # graceful, no lazy-apps
    s.set_version("v2")
    r = s.ping("-m", mode, *(["--udp"] if udp else []))
    assert r.returncode != 0 and "live" not in r.stdout, r.stdout + r.stderr
    assert "cannot load new code here" in r.stderr and "(mode)" in r.stderr, r.stderr
    assert s.get() == "v1" and "netreload: generation 1" not in s.log_text()
    assert s.ping().returncode == 0 and s.get() == "v2"  # the default mode still works


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
    r = subprocess.run([UWSGI, "--plugins-dir", str(BUILD), "--plugin", "netreload", "--help"],
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
    r = subprocess.run([UWSGI, "--build-plugin", str(ROOT)], capture_output=True, text=True,
                       timeout=180, cwd=out, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    so = out / "netreload_plugin.so"
    assert so.is_file()
    # what `uwsgi --build-plugin .` leaves in a checkout is all in .gitignore
    made = sorted(p.name + "/" * p.is_dir() for p in out.iterdir())
    assert made == [".uwsgi_plugins_builder/", "netreload_plugin.so"], made
    ign = subprocess.run(["git", "-C", str(ROOT), "check-ignore", *made], capture_output=True,
                         text=True, timeout=30)
    if ign.returncode != 128:  # 128: not a git checkout (a release tarball)
        assert ign.stdout.split() == made, ign.stdout + ign.stderr
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


def test_make_never_installs_packages_and_names_a_missing_uwsgi(tmp_path):
    dry = subprocess.run(["make", "-C", str(ROOT), "-n", f"BUILD={tmp_path / 'b'}", "all"],
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "ensure-deps" not in dry.stdout and "apt-get" not in dry.stdout, dry.stdout
    r = subprocess.run(["make", "-C", str(ROOT), f"BUILD={tmp_path / 'b'}",
                        f"UWSGI={tmp_path / 'no-such-uwsgi'}", "plugin"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "cannot find uWSGI" in r.stderr and "make deps" in r.stderr, r.stderr
    assert "make UWSGI=/path/to/uwsgi" in r.stderr, r.stderr


def compiled_plugin_dir():
    out = subprocess.run([UWSGI, "--cflags"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r'-DUWSGI_PLUGIN_DIR="\\"([^"\\]*)\\""', out)
    assert m, out
    return m.group(1)


def test_make_install_and_uninstall_destdir(tmp_path):
    """The plugin goes where `plugin = netreload` finds it (uWSGI's compiled-in dir),
    or, with PREFIX given or a relative compiled-in dir (pip's "."), into
    PREFIX/lib/uwsgi/plugins with a hint; uninstall removes what install put."""
    def make(*args):
        r = subprocess.run(["make", "-C", str(ROOT), f"UWSGI={UWSGI}", f"BUILD={tmp_path / 'b'}",
                            *args], capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"make {args} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
        return r.stdout

    pdir = compiled_plugin_dir()
    for dest, prefix, plugins in (
            (tmp_path / "d1", "/usr", "/usr/lib/uwsgi/plugins"),
            (tmp_path / "d2", None, pdir if pdir.startswith("/") else "/usr/local/lib/uwsgi/plugins")):
        args = [f"DESTDIR={dest}"] + ([f"PREFIX={prefix}"] if prefix else [])
        out = make("install", *args)
        bindir = dest / (prefix or "/usr/local").lstrip("/") / "bin"
        files = [dest / plugins.lstrip("/") / "netreload_plugin.so", bindir / "netreload",
                 bindir.parent / "share/man/man1/netreload.1"]
        for f in files:
            assert f.is_file(), f"{f} not installed:\n{out}"
        assert ("plugins-dir = " in out) == (plugins != pdir), out
        v = subprocess.run([str(files[1]), "--version"], capture_output=True, text=True,
                           timeout=10)
        assert v.returncode == 0 and v.stdout.startswith("netreload "), v.stdout + v.stderr
        make("uninstall", *args)
        assert not [f for f in files if f.exists()]


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
        # a worker drops them in uWSGI's post-fork hook, a moment after fork
        wait_for(lambda: workers_settled(s.pid), 10, what="the workers to start")
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


# 17. a privileged port after uWSGI dropped privileges: the cause, not "in use" ----------------
def test_privileged_port_after_uid_drop_says_why(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to start uWSGI and drop to nobody")
    port = None
    for p in range(1000, 1024):
        with socket.socket() as t:
            try:
                t.bind(("127.0.0.1", p))
                port = p
                break
            except OSError:
                continue
    if port is None:
        pytest.skip("no free port below 1024")
    d = tmp_path / "world"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    (d / "app.py").write_text("def application(e, s):\n    return []\n")
    r = subprocess.run(uwsgi_cmd(BUILD, "--plugin", "netreload", "--netreload-port", str(port),
                                 "--master", "--uid", "nobody", "--gid", "nogroup",
                                 "--http-socket", f"127.0.0.1:{free_port()}",
                                 "--wsgi-file", str(d / "app.py")),
                       capture_output=True, text=True, timeout=30, cwd=d,
                       stdin=subprocess.DEVNULL, env=uwsgi_env())
    log = r.stdout + r.stderr
    assert r.returncode != 0, log
    assert f"cannot listen on TCP 127.0.0.1:{port}: Permission denied (a port below 1024 needs " \
        "root" in log and "master-as-root = true" in log, log
    assert "is taken" not in log, log
