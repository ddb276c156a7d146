"""The simulated VM share: why netreload exists, and that it works across a "VM".

Code is edited on the host. uWSGI runs in a VM whose shared folder (NFS,
vboxsf, 9p) delivers no inotify events for host edits. tests/vm.py builds
this with a host and a guest network namespace, joined by a veth pair
(10.231.0.1/30 and 10.231.0.2/30, only inside the two namespaces), and a
`bindfs SRC MNT` FUSE mount. The host edits SRC. The guest uWSGI serves
MNT/app.py.

- uWSGI's own `fs-reload` in the guest misses a host save: the old version
  is served for BLIND seconds, although MNT already shows the new bytes.
  The control: the same save made through MNT (inside the guest) reloads.
- `netreload watch` in the host namespace sees the save and pings the guest
  over the veth with a signed request. The guest serves the new code and the
  watcher prints "live in". An unsigned ping from the host is refused.

The tests need root, `ip` (iproute2), /dev/fuse and bindfs. Without them
they skip and name the missing piece. Every process is stopped by pid, the
mount is removed (fusermount -u, retried, then umount -l) and the namespaces
are deleted at teardown, also when the test failed. Teardown fails the test
if a namespace or a mount is left behind.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import vm
from conftest import APP_TEMPLATE, BUILD, CLIENT, SANITIZER_MARKS, atomic_write, kill_tree, \
    uwsgi_env, wait_for, workers_settled

HTTP_PORT = 8000  # inside the guest namespace: nothing else listens there
NR_PORT = 9001
BLIND = 3.0       # how long a missed reload is watched for


def app_text(version):
    return APP_TEMPLATE.format(version=version)


class Guest:
    """A uWSGI master in the guest namespace serving MNT/app.py."""

    def __init__(self, sim, n, netreload=True, extra=(), secret=True):
        self.sim, self.vm = sim, sim.vm
        self.log = self.vm.base / f"guest{n}.log"
        args = vm.uwsgi_args(BUILD, self.vm.mnt / "app.py", self.vm.guest_addr, HTTP_PORT,
                             nr_port=NR_PORT if netreload else None,
                             nr_bind=self.vm.guest_addr,
                             secret_file=sim.guest_secret if secret else None,
                             insecure=not secret, extra=extra)
        self.netreload = netreload
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.vm.guest(args), stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     cwd=self.vm.mnt, env=uwsgi_env())

    def get(self):
        return self.vm.get(HTTP_PORT)

    def log_text(self):
        return self.log.read_text(errors="replace")

    def tail(self, n=25):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_serving(self, version, timeout=20):
        wait_for(lambda: self.get() == version or self.proc.poll() is not None, timeout,
                 what=f"the guest to serve {version!r}; log:\n{self.tail()}")
        assert self.proc.poll() is None, f"guest uWSGI exited:\n{self.tail()}"
        if self.netreload:
            wait_for(lambda: self.vm.guest_listens(NR_PORT), timeout,
                     what=f"netreload to listen on {self.vm.guest_addr}:{NR_PORT}")
        # a new worker ignores signals for ~0.1 s; let them settle before anything reloads
        wait_for(lambda: workers_settled(self.proc.pid), 10, what="workers to settle")
        return self

    def stop(self):
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.logf.close()


class Watcher:
    """`netreload watch --to GUEST:NR_PORT --secret-file HOST_SECRET SRC` in the host namespace."""

    def __init__(self, sim, n):
        self.vm = sim.vm
        self.out = self.vm.base / f"watch{n}.out"
        self.err = self.vm.base / f"watch{n}.err"
        self._out, self._err = open(self.out, "wb"), open(self.err, "wb")
        env = {k: v for k, v in os.environ.items() if k != "NETRELOAD_SECRET_FILE"}
        self.target = f"{self.vm.guest_addr}:{NR_PORT}"
        self.proc = subprocess.Popen(
            self.vm.host([CLIENT, "watch", "--to", self.target, "--secret-file",
                          sim.host_secret, self.vm.src]),
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err, env=env)

    def stdout(self):
        return self.out.read_text(errors="replace")

    def stderr(self):
        return self.err.read_text(errors="replace")

    def started(self):
        wait_for(lambda: "netreload: watching" in self.stderr() or self.proc.poll() is not None,
                 10, what="the watcher's startup line")
        assert self.proc.poll() is None, self.stderr()
        return self

    def lives(self):
        return [line for line in self.stdout().splitlines() if " live in " in line]

    def stop(self):
        vm.stop_proc(self.proc)
        self._out.close()
        self._err.close()


class Sim:
    def __init__(self, machine):
        self.vm = machine
        # the same secret, once on the guest's own disk and once on the host's
        self.guest_secret = vm.write_secret(machine.base / "guest.secret")
        self.host_secret = machine.base / "host.secret"
        shutil.copyfile(self.guest_secret, self.host_secret)
        os.chmod(self.host_secret, 0o600)
        self.guests, self.watchers = [], []

    def guest(self, **kw):
        g = Guest(self, len(self.guests), **kw)
        self.guests.append(g)
        return g

    def watcher(self):
        w = Watcher(self, len(self.watchers))
        self.watchers.append(w)
        return w.started()

    def host_client(self, *args, timeout=30):
        """build/netreload run in the host namespace (no secret unless given)."""
        env = {k: v for k, v in os.environ.items() if k != "NETRELOAD_SECRET_FILE"}
        return subprocess.run(self.vm.host([CLIENT, *args]), capture_output=True, text=True,
                              timeout=timeout, env=env, stdin=subprocess.DEVNULL)


@pytest.fixture
def sim(tmp_path, request):
    """The simulated VM; parametrize it indirectly with a tests/share.py kind
    ("attr", "content") for a caching share instead of bindfs."""
    reason = vm.missing()
    if reason:
        pytest.skip(f"simulated VM share: {reason}")
    base = Path(tempfile.mkdtemp(prefix="netreload-vm-"))
    machine = vm.VM(base, share_kind=getattr(request, "param", None))
    try:
        machine.up()
    except vm.Unavailable as e:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"simulated VM share: {e}")
    except BaseException:
        if not machine.mounted:
            shutil.rmtree(base, ignore_errors=True)
        raise
    s = Sim(machine)
    problems = []
    try:
        yield s
    finally:
        for w in s.watchers:
            w.stop()
        for g in s.guests:
            g.stop()
        problems += machine.down()
        # nothing left behind: no namespace, no mount, no process of ours
        names = vm.netns_list()
        problems += [f"namespace {ns} still listed" for ns in (machine.host_ns, machine.guest_ns)
                     if ns in names]
        problems += [f"mount left: {m}" for m in vm.mounts_mentioning(str(base))]
        problems += [f"process {p.pid} still running"
                     for p in [g.proc for g in s.guests] + [w.proc for w in s.watchers]
                     if p.poll() is None]
        # keep the logs with the test's tmp_path (pytest keeps the last runs), then remove ours
        for f in base.iterdir():
            if f.is_file() and f.suffix in (".log", ".out", ".err"):
                shutil.copy(f, tmp_path / f.name)
        for g in s.guests:
            found = [m for m in SANITIZER_MARKS if m in g.log_text()]
            problems += [f"sanitizer report in {g.log.name}: {found}"] if found else []
        if not machine.mounted:  # never rmtree through a live mount
            shutil.rmtree(base, ignore_errors=True)
        else:
            problems.append(f"{base} kept: {machine.mnt} is still mounted")
    if problems:
        pytest.fail("teardown: " + "; ".join(problems))


# -----------------------------------------------------------------------------------------
def test_vm_is_isolated(sim):
    """The simulation is what it claims: the guest is reachable only from the host
    namespace, MNT is a FUSE mount showing SRC, and a host save reaches MNT's bytes."""
    v = sim.vm
    assert any(" fuse" in m for m in vm.mounts_at(v.mnt))
    with pytest.raises(ValueError):
        vm.http_get(v.guest_addr, HTTP_PORT)  # never from the root namespace
    r = subprocess.run(v.host(["ip", "-4", "route"]), capture_output=True, text=True, timeout=10)
    assert "default" not in r.stdout and f"10.231.0.0/{vm.PREFIX_LEN}" in r.stdout, r.stdout
    atomic_write(v.src / "x.py", "X = 1\n")
    assert (v.mnt / "x.py").read_text() == "X = 1\n"


@pytest.mark.parametrize("watched", ["file", "dir"])
def test_fs_reload_misses_host_edits(sim, watched):
    """uWSGI's fs-reload (inotify) in the guest never sees a save made on the host;
    the same save made through the mount (inside the guest) does reload."""
    v = sim.vm
    atomic_write(v.src / "app.py", app_text("v1"))
    target = v.mnt / "app.py" if watched == "file" else v.mnt
    g = sim.guest(netreload=False, extra=["--fs-reload", target]).wait_serving("v1")
    wait_for(lambda: f'registered monitor for "{target}"' in g.log_text(), 10,
             what="uWSGI's fs-reload monitor")
    respawns = g.log_text().count("gracefully (RE)spawned uWSGI master")

    atomic_write(v.src / "app.py", app_text("v2"))  # the host saves
    assert "'v2'" in (v.mnt / "app.py").read_text()  # the share has the new bytes...
    seen, deadline = set(), time.monotonic() + BLIND
    while time.monotonic() < deadline:
        seen.add(g.get())
        time.sleep(0.05)
    assert seen == {"v1"}, f"fs-reload should miss a host edit; served {seen}\n{g.tail()}"
    assert g.log_text().count("gracefully (RE)spawned uWSGI master") == respawns

    # control: the same kind of save made inside the guest, through the mount
    atomic_write(v.mnt / "app.py", app_text("v3"))
    wait_for(lambda: g.get() == "v3", 15,
             what=f"fs-reload to reload after a save through the mount; log:\n{g.tail()}")


def test_netreload_watch_reloads_the_guest(sim):
    """The watcher in the host namespace sees the host save and pings the guest over
    the veth (signed); the guest serves the new code and the watcher says "live in"."""
    v = sim.vm
    atomic_write(v.src / "app.py", app_text("v1"))
    g = sim.guest().wait_serving("v1")

    # the guest listens on a non-loopback address with a secret: unsigned pings are refused
    r = sim.host_client("ping", f"{v.guest_addr}:{NR_PORT}")
    assert r.returncode == 6, (r.returncode, r.stdout, r.stderr)
    assert g.get() == "v1"

    w = sim.watcher()
    assert f"\u2192 {w.target}" in w.stderr(), w.stderr()
    for i, version in enumerate(["v2", "v3"], 1):
        atomic_write(v.src / "app.py", app_text(version))
        wait_for(lambda: g.get() == version, 15,
                 what=f"the guest to serve {version}; watcher: {w.stdout()!r} {w.stderr()!r}"
                      f"\nguest log:\n{g.tail()}")
        wait_for(lambda: len(w.lives()) >= i, 15,
                 what=f"live line {i}; stdout={w.stdout()!r} stderr={w.stderr()!r}")
        line = w.lives()[-1]
        assert f"app.py \u2192 {w.target} live in " in line, line
    assert len(w.lives()) == 2, w.stdout()
    assert g.log_text().count("netreload: generation ") >= 2
    assert "error" not in w.stderr().lower(), w.stderr()
    assert w.proc.poll() is None


def test_strangers_without_a_secret_get_no_udp_answer_and_no_pid(sim):
    """Without a secret (netreload-insecure on the guest's address) a sender on
    another machine is a stranger: UDP acts on its reloads but answers nothing
    (a spoofed source must not be a reflector), and its status shows neither
    the master's pid nor the last exception text."""
    v = sim.vm
    target = f"{v.guest_addr}:{NR_PORT}"
    atomic_write(v.src / "app.py", app_text("v1"))
    g = sim.guest(secret=False).wait_serving("v1")

    def status():
        r = sim.host_client("status", "--json", target)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.splitlines()[-1])

    with vm.in_netns(v.host_ns):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.settimeout(0.5)
        u.sendto(b"NETRELOAD/1 status id=s1\n", (v.guest_addr, NR_PORT))
        with pytest.raises(socket.timeout):
            u.recv(2048)
        atomic_write(v.src / "app.py", "import nonexistent_module_xyz\n")
        u.sendto(b"NETRELOAD/1 reload id=r1\n", (v.guest_addr, NR_PORT))
        with pytest.raises(socket.timeout):
            u.recv(2048)
        st = wait_for(lambda: (lambda s: s if s["last"] == "failed" else None)(status()), 30,
                      what="the broken save's reload to fail")
        assert st["pid"] == 0 and "reason" not in st, st
        assert "nonexistent_module_xyz" in g.log_text()  # there was a reason to hide
        atomic_write(v.src / "app.py", app_text("v2"))
        u.sendto(b"NETRELOAD/1 reload id=r2\n", (v.guest_addr, NR_PORT))
        g.wait_serving("v2")
    finally:
        u.close()


@pytest.mark.parametrize("sim", ["attr", "content"], indirect=True)
def test_caching_share_in_the_guest_every_live_is_the_saved_code(sim):
    """The VM's share caches like NFS (attr) or vboxsf (content), its sftp-server on
    the host side of the veth. The watcher in the host namespace lists each save;
    the guest's plugin waits until its mount shows it: every live line is followed
    by the saved version being served, and any other outcome says "stale share".

    Saves are a second apart, as a person saves. Two same-size saves within one
    second look identical to a share that keeps whole-second mtimes (sftp, here)
    and keeps the page cache: the guest may never see the second one, and then
    the only right answer is the stale failure (test_share.py makes that case)."""
    v = sim.vm
    atomic_write(v.src / "app.py", app_text("v00"))
    g = sim.guest().wait_serving("v00")
    w = sim.watcher()

    def outcomes():
        return [ln for ln in w.stdout().splitlines() if " live in " in ln or " failed " in ln]

    lives = 0
    for i in range(1, 11):
        time.sleep(1.05)
        version = f"v{i:02d}"  # the same size every time: a cached size still matches
        atomic_write(v.src / "app.py", app_text(version))
        wait_for(lambda: len(outcomes()) >= i, 30,
                 what=f"outcome {i}; stdout={w.stdout()!r} stderr={w.stderr()!r}"
                      f"\nguest log:\n{g.tail()}")
        line = outcomes()[-1]
        if " live in " in line:
            lives += 1
            assert g.get() == version, f"{line!r}, yet {g.get()!r} served after saving {version}"
        else:
            assert "stale share: app.py" in line, line
    assert lives >= 8, w.stdout()  # a second apart, the share keeps up
    assert "the share shows 1 changed file(s)" in g.log_text()
