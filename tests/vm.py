"""A simulated VM for netreload: a "host" and a "guest" network namespace joined
by a veth pair, and the host's source dir shared with the guest through a FUSE
mount (bindfs).

This is the situation netreload exists for. Code is edited on the host, and
uWSGI runs in a VM whose shared folder (NFS, vboxsf, 9p) does not deliver
inotify events for host edits. Here the host edits SRC directly. The guest
runs uWSGI on MNT, a `bindfs SRC MNT` mount. The kernel sends inotify events
for MNT only for changes made through MNT, so uWSGI's `fs-reload` in the
guest never sees a host save, like in a real VM. A read through MNT still
returns the new bytes: bindfs sets `attr_timeout=0`.

    host netns nrh-PID-N          guest netns nrg-PID-N
    10.231.0.1/30  <--- veth --->  10.231.0.2/30   (only inside these two)

The two namespaces have no route anywhere else. The 10.231.x.y addresses
exist only inside them; in the root namespace they would go out of the
default route. So http_get() refuses a 10.231 address unless it is given the
namespace to connect from.

With share_kind set, the share is instead one of tests/share.py's caching sshfs
mounts: its sftp-server listens on the host's veth address in the host
namespace, and sshfs reaches it from the guest namespace (only its network
namespace moves, so the mount is in the root mount namespace like bindfs's).

The namespaces are named `ip netns` namespaces (/run/netns/NAME). The FUSE
mount lives in the root mount namespace. `ip netns exec` gives each process
a private copy of it, a slave of the root one.

Standard library only: bench/vm.py uses this module too. The test fixtures
are in tests/test_vm.py.
"""
import ctypes
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from fusetools import fuse_missing, mounts_at, run, unmount
from uwsgibin import UWSGI, uwsgi_cmd
from proctools import kill_tree, workers_settled  # noqa: F401 (bench/vm.py uses vm.workers_settled)

CLONE_NEWNET = 0x40000000
HOST_ADDR = "10.231.0.1"
GUEST_ADDR = "10.231.0.2"
PREFIX_LEN = 30
PRIVATE_NET = "10.231."  # only ever inside our own namespaces
_seq = itertools.count()


class Unavailable(Exception):
    """The machine cannot run the simulation; str(e) names the missing piece."""


def missing():
    """None if this machine can run the simulation, or the exact missing piece."""
    if os.geteuid() != 0:
        return (f"needs root for network namespaces, veth and FUSE mounts "
                f"(running as uid {os.geteuid()})")
    for tool, pkg in (("ip", "iproute2"), ("bindfs", "bindfs"), (UWSGI, "uwsgi-core")):
        if not shutil.which(tool):
            return f"no `{tool}` on PATH (Debian package {pkg})"
    if not os.path.exists("/proc/self/ns/net"):
        return "no network namespaces in this kernel (/proc/self/ns/net missing)"
    return fuse_missing()


def _must(args, what, timeout=10.0):
    try:
        r = run(args, timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable(f"{what} failed: `{' '.join(map(str, args))}`: {e}") from None
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip() or f"exit {r.returncode}"
        raise Unavailable(f"{what} failed: `{' '.join(map(str, args))}`: {msg}")
    return r


def netns_list():
    """Names of the named network namespaces (`ip netns list`)."""
    r = run(["ip", "netns", "list"])
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def mounts_mentioning(needle):
    """/proc/mounts lines that mention needle (a namespace name, a temp dir)."""
    with open("/proc/mounts") as f:
        return [line.strip() for line in f if needle in line]


# entering a network namespace ------------------------------------------------
_libc = None


def _setns(fd):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def in_netns(name):
    """Run the body with this thread in network namespace `name` (/run/netns/NAME).

    Only the calling thread moves, and only its network namespace. Sockets
    created in the body stay in `name` after it ends. The thread always moves
    back, also on an exception.
    """
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            want = os.fstat(fd).st_ino
            _setns(fd)
        finally:
            os.close(fd)
        try:
            now = os.stat("/proc/thread-self/ns/net").st_ino
            if now != want:
                raise RuntimeError(f"setns into {name} did not take (inode {now} != {want})")
            yield
        finally:
            _setns(orig)
    finally:
        os.close(orig)


def connect(addr, port, netns=None, timeout=2.0):
    """A TCP connection to addr:port made from network namespace netns (None: ours).

    A 10.231 address is refused without netns: it exists only inside the
    simulation, and from the root namespace it would leave the machine.
    """
    if netns is None and addr.startswith(PRIVATE_NET):
        raise ValueError(f"{addr} exists only inside the simulated VM; pass netns=")
    if netns is None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    else:
        with in_netns(netns):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect((addr, port))
    except BaseException:
        s.close()
        raise
    return s


def http_get(addr, port, netns=None, timeout=2.0, path="/"):
    """Body of GET path from addr:port (str), 'HTTP nnn' for a non-200 answer,
    or None if nothing answers. Raw HTTP/1.0, from network namespace netns."""
    try:
        s = connect(addr, port, netns, timeout)
    except OSError:
        return None
    try:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n".encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except OSError:
        return None
    finally:
        s.close()
    head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
    parts = head.split(None, 2)
    if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        return None
    if parts[1] != b"200":
        return "HTTP " + parts[1].decode(errors="replace")
    return body.decode(errors="replace")


def accepts_tcp(addr, port, netns=None, timeout=0.5):
    try:
        connect(addr, port, netns, timeout).close()
        return True
    except OSError:
        return False


def ns_exec(ns, args):
    """argv that runs args inside network namespace ns (`ip netns exec` execs: same pid)."""
    return ["ip", "netns", "exec", ns, *map(str, args)]


# processes ------------------------------------------------------------------








def stop_tree(proc, timeout=10.0, settle=5.0):
    """Stop a uWSGI master started with Popen (proctools.kill_tree), then reap it."""
    if proc is None:
        return
    kill_tree(proc.pid, timeout, settle)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def stop_proc(proc, timeout=5.0):
    """SIGINT a single process (the watcher's clean exit), SIGKILL it after timeout."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


# uWSGI command line -----------------------------------------------------------
def uwsgi_args(build, app, http_addr, http_port, nr_port=None, nr_bind=None,
               secret_file=None, insecure=False, processes=2, chdir=None, extra=()):
    """The uWSGI argv used by the VM tests and bench/vm.py (python3 before
    --plugins-dir so that uWSGI finds it in its own plugin directory). uWSGI runs in
    chdir, by default the app's dir."""
    app = Path(app)
    a = uwsgi_cmd(build)
    if nr_port:
        a += ["--plugin", "netreload", "--netreload-port", str(nr_port)]
        if nr_bind:
            a += ["--netreload-bind", nr_bind]
        if secret_file:
            a += ["--netreload-secret-file", str(secret_file)]
        if insecure:
            a += ["--netreload-insecure"]
    a += ["--master", "--processes", str(processes),
          "--http-socket", f"{http_addr}:{http_port}",
          "--wsgi-file", str(app), "--max-fd", "1024", "--chdir", str(chdir or app.parent),
          "--disable-logging"]
    return a + [str(x) for x in extra]


def write_secret(path):
    """A fresh random secret, mode 0600 (the plugin warns when others can read it)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(24).hex() + "\n")
    return path


# the VM -----------------------------------------------------------------------
class VM:
    """Two network namespaces joined by a veth pair, plus `bindfs SRC MNT`.

    up() builds it all, or undoes what it did and raises Unavailable. down()
    undoes it and returns a list of what could not be undone (empty: nothing
    left behind). Stop the processes running in it before down().
    """

    def __init__(self, base_dir, host_addr=HOST_ADDR, guest_addr=GUEST_ADDR, share_kind=None):
        n = next(_seq)
        tag = f"{os.getpid()}-{n}"
        self.host_ns = f"nrh-{tag}"
        self.guest_ns = f"nrg-{tag}"
        # interface names are per namespace: these never clash with anything
        self.host_if, self.guest_if = "nrvm-host", "nrvm-guest"
        self.host_addr, self.guest_addr = host_addr, guest_addr
        self.base = Path(base_dir)
        self.src = self.base / "src"   # the host's tree
        self.mnt = self.base / "mnt"   # the guest's view of it (FUSE)
        self.bindfs_log = self.base / "bindfs.log"
        self.bindfs = None
        self._bindfs_logf = None
        self.created_ns = []
        self.mounted = False
        # None: bindfs (caches nothing); else a caching sshfs share of tests/share.py
        # whose sftp-server runs in the host namespace and whose sshfs reaches it
        # from the guest namespace over the veth
        self.share_kind = share_kind
        self.sshare = None

    # set-up -----------------------------------------------------------------
    def up(self):
        try:
            self._network()
            self._share()
        except BaseException:
            self.down()
            raise
        return self

    def _network(self):
        for ns in (self.host_ns, self.guest_ns):
            _must(["ip", "netns", "add", ns], "creating network namespace")
            self.created_ns.append(ns)
        # both ends are created inside the namespaces: nothing in the root namespace
        _must(["ip", "link", "add", self.host_if, "netns", self.host_ns, "type", "veth",
               "peer", "name", self.guest_if, "netns", self.guest_ns], "creating the veth pair")
        for ns, ifname, addr in ((self.host_ns, self.host_if, self.host_addr),
                                 (self.guest_ns, self.guest_if, self.guest_addr)):
            _must(["ip", "-n", ns, "addr", "add", f"{addr}/{PREFIX_LEN}", "dev", ifname],
                  "addressing the veth")
            _must(["ip", "-n", ns, "link", "set", "lo", "up"], "bringing up lo")
            _must(["ip", "-n", ns, "link", "set", ifname, "up"], "bringing up the veth")
        # `ip netns exec` (a private mount namespace, /sys remounted) must work too
        _must(["ip", "netns", "exec", self.host_ns, "true"], "running a command in a namespace")
        # reachability: a closed port on the guest answers with a RST at once
        deadline = time.monotonic() + 5
        while True:
            try:
                connect(self.guest_addr, 9, self.host_ns, timeout=1.0).close()
                break
            except ConnectionRefusedError:
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise Unavailable(f"host namespace cannot reach {self.guest_addr} "
                                      f"over the veth: {e}") from None
                time.sleep(0.05)

    def _share(self):
        if self.share_kind:
            self._caching_share()
            return
        self.src.mkdir(parents=True, exist_ok=True)
        self.mnt.mkdir(parents=True, exist_ok=True)
        self._bindfs_logf = open(self.bindfs_log, "ab")
        # -f: stay in the foreground, so that the mount's daemon is our child (its pid known)
        try:
            self.bindfs = subprocess.Popen(["bindfs", "-f", str(self.src), str(self.mnt)],
                                           stdin=subprocess.DEVNULL, stdout=self._bindfs_logf,
                                           stderr=subprocess.STDOUT)
        except OSError as e:
            raise Unavailable(f"cannot run bindfs: {e}") from None
        deadline = time.monotonic() + 10
        while not any(" fuse" in m for m in mounts_at(self.mnt)):
            if self.bindfs.poll() is not None:
                raise Unavailable(f"bindfs exited with {self.bindfs.returncode}: "
                                  f"{self.bindfs_log.read_text(errors='replace').strip()}")
            if time.monotonic() > deadline:
                raise Unavailable("bindfs did not mount within 10 s")
            time.sleep(0.02)
        self.mounted = True
        probe = self.src / ".vm-probe"
        probe.write_text("probe\n")
        try:
            seen = (self.mnt / ".vm-probe").read_text()
        except OSError as e:
            seen = repr(e)
        probe.unlink()
        if seen != "probe\n":
            raise Unavailable(f"the bindfs mount does not show the host's files ({seen!r})")

    def _caching_share(self):
        import share  # tests/share.py; stdlib only, like this module
        reason = share.missing()
        if reason:
            raise Unavailable(f"sshfs share: {reason}")
        self.sshare = share.Share(self.base, self.share_kind,
                                  netns=(self.host_ns, self.guest_ns, self.host_addr),
                                  backing=self.src, mnt=self.mnt)
        try:
            self.sshare.up()
        except share.Unavailable as e:
            raise Unavailable(f"sshfs share: {e}") from None
        self.mounted = True

    # use ----------------------------------------------------------------------
    def host(self, args):
        return ns_exec(self.host_ns, args)

    def guest(self, args):
        return ns_exec(self.guest_ns, args)

    def get(self, port, timeout=2.0, path="/"):
        """GET from the host namespace to the guest's address."""
        return http_get(self.guest_addr, port, self.host_ns, timeout, path)

    def guest_listens(self, port):
        return accepts_tcp(self.guest_addr, port, self.host_ns)

    # tear-down ----------------------------------------------------------------
    def down(self):
        problems = []
        if self.sshare is not None:
            problems += self.sshare.down()
            self.mounted = bool(mounts_at(self.mnt))
            self.sshare = None
        elif self.bindfs is not None or self.mounted:
            problems += self._unmount()
        for ns in list(self.created_ns):
            for _ in range(20):
                r = run(["ip", "netns", "del", ns])
                if ns not in netns_list():
                    break
                time.sleep(0.1)
            if ns in netns_list():
                problems.append(f"network namespace {ns} left behind: {r.stderr.strip()}")
            else:
                self.created_ns.remove(ns)
        for needle in (self.host_ns, self.guest_ns):
            left = mounts_mentioning(f"/run/netns/{needle}")
            if left:
                problems.append(f"namespace mount left behind: {left}")
        if self._bindfs_logf is not None:
            self._bindfs_logf.close()
            self._bindfs_logf = None
        return problems

    def _unmount(self):
        problems = unmount(self.mnt)
        self.mounted = bool(mounts_at(self.mnt))
        if self.bindfs is not None:
            try:
                self.bindfs.wait(timeout=20)  # bindfs -f exits once unmounted (slow under load)
            except subprocess.TimeoutExpired:
                self.bindfs.terminate()
                try:
                    self.bindfs.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.bindfs.kill()
                    self.bindfs.wait(timeout=5)
                problems.append("bindfs did not exit after the unmount; killed")
            self.bindfs = None
        return problems
