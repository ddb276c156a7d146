"""A stale shared folder for netreload's tests: sshfs over a local sftp-server.

Users run uWSGI in a VM and edit on the host over NFS or vboxsf. Such shares
cache file attributes (and sometimes contents) in the guest, so right after a
host save the guest can still see the old size, mtime or bytes. bindfs
(tests/vm.py) is always fresh; this module builds shares that are not:

    BACKING ("host")  <-- sftp-server <-- socat 127.0.0.1:PORT <-- sshfs --> MNT ("guest")

    socat TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr,fork EXEC:/usr/lib/openssh/sftp-server
    sshfs -f -o directport=PORT,OPTIONS 127.0.0.1:BACKING MNT

No sshd and no keys: `directport` makes sshfs speak sftp straight to the port.
The host edits BACKING (Share.host()); the guest, uWSGI, reads through MNT
(Share.guest()). Both live in the test's temp dir; at teardown MNT is unmounted
(fusermount -u, retried, then umount -l) and sshfs, socat and socat's
sftp-server children are stopped by pid.

Kinds, and their OPTIONS (KINDS):

  attr          NFS-like, the kernel's FUSE attribute cache only:
                dir_cache=no,attr_timeout=3,entry_timeout=3
  content       sshfs's own attribute cache under the kernel's, and the page
                cache kept across opens: dir_cache=yes,dcache_timeout=2,
                attr_timeout=1.5,entry_timeout=1.5,kernel_cache
  content-slow  the same, stale for more than 10 s (for "the share never catches
                up within the timeout"): dcache_timeout=11,attr_timeout=11,
                entry_timeout=11

The sshfs 3.7.3 / libfuse 3.14 options that set the staleness:
  attr_timeout=T, entry_timeout=T  the kernel's attribute and name cache (s, float;
                                   libfuse's default 1.0).
  dir_cache=yes|no                 sshfs's own cache of attributes, names and
                                   symlinks (default yes; old spelling cache=).
  dcache_timeout=N                 its lifetime (whole s, default 20; old spelling
                                   cache_timeout=), or per part dcache_stat_timeout,
                                   dcache_dir_timeout, dcache_link_timeout. Kept as
                                   time(NULL) + N and valid through that second:
                                   an entry lives N to N+1 s.
  kernel_cache                     keep the page cache across open()s; without it
                                   (libfuse's default) every open drops it.

What a guest that filled its caches (a read, then a stat) just before a host
edit sees, as measured by bench/share.py on Linux 6.18 (any edit: in place
same size, in place growing, or temp file + rename over):

  method                         attr     content   content-slow
  stat()                         3 s      3 s       22 s   kernel refills from sshfs
  statx(AT_STATX_FORCE_SYNC)     0        2.4-2.8 s 11-12 s
  open + fstat                   3 s      1.5 s     11 s
  open + read                    0 (*)    1.5 s     11 s   (content: the old bytes)

  (*) a grown file: the first read returns the new bytes cut at the old size.

- A forced statx refreshes the kernel's cache for every process: a plain stat
  or a read in another process right after it sees the new file.
- A read through FUSE marks the cached atime stale, and stat() asks for atime:
  a plain stat right after a read goes to sshfs (fresh on attr).
- An open() makes sshfs fetch the file's attributes anew (into its own cache):
  on the content kinds a forced statx after any open in the guest is fresh.
  Without an open nothing gets past sshfs's cache; only time clears it.
- The caches stack: the kernel may refill from an sshfs entry about to expire,
  so the worst case is dcache_timeout + 1 + attr_timeout (STALE_MAX).
- OpenSSH's sftp-server speaks sftp v3: the guest sees the host's mtime cut to
  whole seconds (nanoseconds 0), the size exact. A same-size edit within the
  same second is invisible to any stat in the guest.
- Inode numbers are libfuse's, per path, not the host's: a rename over the file
  on the host keeps the guest's inode number.

Standard library only (bench/share.py uses it too), except share(), which
skips the calling pytest test when the machine cannot mount a share.
"""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from fusetools import fuse_missing, mounts_at, unmount  # noqa: F401 (bench uses mounts_at)
from proctools import descendants, free_port, pid_alive

SFTP_SERVER_PATHS = ("/usr/lib/openssh/sftp-server", "/usr/lib/sftp-server",
                     "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server")

# kind -> sshfs -o options (besides directport); see the module docstring
KINDS = {
    "attr": "dir_cache=no,attr_timeout=3,entry_timeout=3",
    "content": "dir_cache=yes,dcache_timeout=2,attr_timeout=1.5,entry_timeout=1.5,kernel_cache",
    "content-slow": "dir_cache=yes,dcache_timeout=11,attr_timeout=11,entry_timeout=11,"
                    "kernel_cache",
}
# kind -> the longest a host edit can stay invisible in the guest to any way of
# looking (s): attr_timeout, or (dcache_timeout + 1) + attr_timeout where the two
# caches stack; plus 0.5 s of margin
STALE_MAX = {"attr": 3.5, "content": 5.0, "content-slow": 23.5}
# kind -> how long at least a plain stat() keeps showing the old size and mtime
# after the guest filled its caches (s): the kernel's attr_timeout, less 0.5 s
STALE_MIN = {"attr": 2.5, "content": 1.0, "content-slow": 10.5}


class Unavailable(Exception):
    """The machine cannot mount a share; str(e) names the missing piece."""


def sftp_server():
    for p in SFTP_SERVER_PATHS:
        if os.access(p, os.X_OK):
            return p
    return None


def missing():
    """None if this machine can mount a share, or the exact missing piece."""
    if os.geteuid() != 0:
        return f"needs root for FUSE mounts (running as uid {os.geteuid()})"
    for tool, pkg in (("sshfs", "sshfs"), ("socat", "socat")):
        if not shutil.which(tool):
            return f"no `{tool}` on PATH (Debian package {pkg})"
    if not sftp_server():
        return "no sftp-server in /usr/lib/openssh (Debian package openssh-sftp-server)"
    return fuse_missing()


# statx ------------------------------------------------------------------------
AT_FDCWD = -100
AT_STATX_SYNC_AS_STAT = 0x0000
AT_STATX_FORCE_SYNC = 0x2000
AT_STATX_DONT_SYNC = 0x4000
STATX_BASIC_STATS = 0x07FF


class _StatxTimestamp(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_uint32),
                ("__reserved", ctypes.c_int32)]


class _Statx(ctypes.Structure):
    _fields_ = [("stx_mask", ctypes.c_uint32), ("stx_blksize", ctypes.c_uint32),
                ("stx_attributes", ctypes.c_uint64), ("stx_nlink", ctypes.c_uint32),
                ("stx_uid", ctypes.c_uint32), ("stx_gid", ctypes.c_uint32),
                ("stx_mode", ctypes.c_uint16), ("__spare0", ctypes.c_uint16),
                ("stx_ino", ctypes.c_uint64), ("stx_size", ctypes.c_uint64),
                ("stx_blocks", ctypes.c_uint64), ("stx_attributes_mask", ctypes.c_uint64),
                ("stx_atime", _StatxTimestamp), ("stx_btime", _StatxTimestamp),
                ("stx_ctime", _StatxTimestamp), ("stx_mtime", _StatxTimestamp),
                ("__rest", ctypes.c_uint8 * 144)]  # the kernel's struct statx is 256 bytes


_libc = None


class Stat:
    """The fields of a stat that matter here (size, mtime in ns, inode)."""
    __slots__ = ("st_size", "st_mtime_ns", "st_ino")

    def __init__(self, size, mtime_ns, ino):
        self.st_size, self.st_mtime_ns, self.st_ino = size, mtime_ns, ino

    def __repr__(self):
        return f"Stat(size={self.st_size}, mtime_ns={self.st_mtime_ns}, ino={self.st_ino})"


def statx(path, flags=AT_STATX_FORCE_SYNC):
    """statx(2) through libc (os.stat takes no sync flag). The default,
    AT_STATX_FORCE_SYNC, makes FUSE ask the filesystem instead of using the
    kernel's attribute cache."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint,
                                ctypes.POINTER(_Statx)]
    buf = _Statx()
    if _libc.statx(AT_FDCWD, os.fsencode(path), flags, STATX_BASIC_STATS, ctypes.byref(buf)):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(path))
    m = buf.stx_mtime
    return Stat(buf.stx_size, m.tv_sec * 1_000_000_000 + m.tv_nsec, buf.stx_ino)


# the share ----------------------------------------------------------------------
class Share:
    """BACKING shared as MNT through sshfs over a local sftp-server.

    up() mounts it, or undoes what it did and raises Unavailable. down() unmounts
    it, stops sshfs, socat and the sftp-servers by pid, and returns a list of
    what could not be undone (empty: nothing left behind).
    """

    def __init__(self, base_dir, kind="attr", options=None, netns=None, backing=None,
                 mnt=None):
        if kind not in KINDS and options is None:
            raise ValueError(f"unknown share kind {kind!r} (one of {', '.join(KINDS)})")
        self.kind = kind
        self.options = options if options is not None else KINDS[kind]
        self.stale_max = STALE_MAX.get(kind)
        self.base = Path(base_dir)
        self.backing = Path(backing or self.base / "host")  # the host's tree: edit here
        self.mnt = Path(mnt or self.base / "guest")          # the guest's view: read here
        # (server_ns, client_ns, server_addr): sftp-server in one network namespace,
        # sshfs talking to it from another (tests/vm.py); None: both on 127.0.0.1
        self.netns = netns
        self.addr = netns[2] if netns else "127.0.0.1"
        self.log = self.base / f"share-{kind}.log"
        self.port = None
        self.socat = None
        self.sshfs = None
        self.mounted = False
        self._logf = None

    def command(self):
        """The sshfs argv (for reports and error messages)."""
        return ["sshfs", "-f", "-o", f"directport={self.port},{self.options}",
                f"{self.addr}:{self.backing}", str(self.mnt)]

    def _client_netns(self):
        """preexec_fn for sshfs: only its network namespace moves (to the client's),
        so its mount still lands in the root mount namespace, which all see."""
        if not self.netns:
            return None
        path = f"/run/netns/{self.netns[1]}"

        def enter():
            fd = os.open(path, os.O_RDONLY)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                os._exit(126)
            os.close(fd)
        return enter

    def _listens(self):
        if not self.netns:
            return _listens(self.port)
        r = subprocess.run(["ip", "netns", "exec", self.netns[0], "ss", "-Htln",
                            f"sport = :{self.port}"], capture_output=True, text=True, timeout=10)
        return bool(r.stdout.strip())

    def up(self):
        reason = missing()
        if reason:
            raise Unavailable(reason)
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def _up(self):
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mnt.mkdir(parents=True, exist_ok=True)
        self._logf = open(self.log, "ab")
        self.port = free_port()
        try:
            pre = ["ip", "netns", "exec", self.netns[0]] if self.netns else []
            self.socat = subprocess.Popen(
                pre + ["socat", f"TCP-LISTEN:{self.port},bind={self.addr},reuseaddr,fork",
                       f"EXEC:{sftp_server()}"],
                stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT)
        except OSError as e:
            raise Unavailable(f"cannot run socat: {e}") from None
        deadline = time.monotonic() + 10
        while not self._listens():
            if self.socat.poll() is not None:
                raise Unavailable(f"socat exited with {self.socat.returncode}: {self._log()}")
            if time.monotonic() > deadline:
                raise Unavailable(f"socat did not listen on {self.addr}:{self.port} within 10 s")
            time.sleep(0.02)
        # -f: in the foreground, so the mount's daemon is our child (its pid known)
        try:
            self.sshfs = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                          stdout=self._logf, stderr=subprocess.STDOUT,
                                          preexec_fn=self._client_netns())
        except OSError as e:
            raise Unavailable(f"cannot run sshfs: {e}") from None
        deadline = time.monotonic() + 10
        while not any(" fuse" in m for m in mounts_at(self.mnt)):
            if self.sshfs.poll() is not None:
                raise Unavailable(f"`{' '.join(self.command())}` exited with "
                                  f"{self.sshfs.returncode}: {self._log()}")
            if time.monotonic() > deadline:
                raise Unavailable(f"sshfs did not mount within 10 s: {self._log()}")
            time.sleep(0.02)
        self.mounted = True
        name = f".share-probe-{os.getpid()}"
        (self.backing / name).write_text("probe\n")
        try:
            seen = (self.mnt / name).read_text()
        except OSError as e:
            seen = repr(e)
        (self.backing / name).unlink()
        if seen != "probe\n":
            raise Unavailable(f"the sshfs mount does not show the backing dir ({seen!r})")

    def _log(self):
        try:
            return self.log.read_text(errors="replace").strip()[-2000:]
        except OSError:
            return ""

    # use ------------------------------------------------------------------------
    def host(self, rel=""):
        """A path in the backing dir (where the host edits)."""
        return self.backing / rel

    def guest(self, rel=""):
        """The same path seen through the mount (where the guest reads)."""
        return self.mnt / rel

    # tear-down --------------------------------------------------------------------
    def down(self):
        problems = []
        if self.sshfs is not None or self.mounted:
            problems += self._unmount()
        if self.socat is not None:
            problems += _stop_tree(self.socat, "socat")
            self.socat = None
        if self._logf is not None:
            self._logf.close()
            self._logf = None
        return problems

    def _unmount(self):
        problems = unmount(self.mnt)
        self.mounted = bool(mounts_at(self.mnt))
        if self.sshfs is not None:
            try:
                self.sshfs.wait(timeout=20)  # sshfs -f exits once unmounted (slow under load)
            except subprocess.TimeoutExpired:
                problems += _stop_tree(self.sshfs, "sshfs")
                problems.append("sshfs did not exit after the unmount; killed")
            self.sshfs = None
        return problems


def _listens(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _stop_tree(proc, what, timeout=5.0):
    """SIGTERM proc and its descendants (socat's per-connection children and their
    sftp-servers), all collected by pid first, then SIGKILL what is left."""
    pids = [proc.pid] + descendants(proc.pid)
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.poll()
        if not any(pid_alive(p) for p in pids):
            break
        time.sleep(0.02)
    left = [p for p in pids if pid_alive(p)]
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return [f"{what} (pid {proc.pid}) did not exit after SIGKILL"]
    return [f"{what} process {p} ignored SIGTERM; killed" for p in left]


@contextmanager
def mounted(base_dir, kind="attr", options=None):
    """A mounted Share over base_dir/host on base_dir/guest (stdlib: raises
    Unavailable). Unmounted and its processes stopped on exit; RuntimeError if
    something was left behind."""
    s = Share(base_dir, kind, options).up()
    try:
        yield s
    finally:
        problems = s.down()
        if problems:
            raise RuntimeError("share teardown: " + "; ".join(problems))


@contextmanager
def share(tmp_path, kind="attr", options=None):
    """For pytest: like mounted(), in tmp_path, but skips the test, naming the
    missing piece, when the machine cannot mount a share, and fails it if the
    teardown leaves a mount or a process behind."""
    import pytest
    reason = missing()
    if reason:
        pytest.skip(f"sshfs share: {reason}")
    s = Share(tmp_path, kind, options)
    try:
        s.up()
    except Unavailable as e:
        pytest.skip(f"sshfs share: {e}")
    try:
        yield s
    finally:
        problems = s.down()
        if problems:
            pytest.fail("share teardown: " + "; ".join(problems))
