"""tests/share.py: the stale shares really are stale, the way NFS and vboxsf are.

Each test edits a file in the backing dir ("host") and looks at it through the
sshfs mount ("guest") right after the guest filled its caches: a read, then a
stat. (In that order: a read through FUSE marks the cached atime stale, and a
plain stat() asks for atime, so a stat right after a read goes to sshfs.)

They need root, /dev/fuse, sshfs, socat and openssh-sftp-server, and skip
naming the missing piece otherwise. Every wait is bounded by the kind's
STALE_MAX; the content-slow test takes about 11 s, the others at most ~5 s.
"""
import os
import time

import pytest

import share
from proctools import pid_alive

V1 = b"VERSION = 'v1'\n" + b"#" * 84 + b"\n"          # 100 bytes
V2 = b"VERSION = 'v2'\n" + b"#" * 84 + b"\n"          # same size, other bytes
V2_GROWN = V2 + b"x" * 39 + b"\n"                      # 140 bytes
HOST_MTIME_NS = 1_700_000_000_123_456_789              # with nanoseconds, long ago


def cached_file(s, name="app.py"):
    """BACKING/name with V1 and an old mtime, its caches in the guest freshly filled:
    (host path, guest path, time.monotonic() just before the fill)."""
    host, guest = s.host(name), s.guest(name)
    host.write_bytes(V1)
    os.utime(host, ns=(HOST_MTIME_NS, HOST_MTIME_NS))
    with open(guest, "rb") as f:
        assert f.read() == V1
    filled = time.monotonic()  # the attribute caches are filled after this
    st = os.stat(guest)
    assert st.st_size == len(V1)
    return host, guest, filled


def edit_in_place(path, data):
    with open(path, "r+b") as f:  # same inode, no truncation first
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def wait_until(cond, timeout):
    """Poll cond every 10 ms; the seconds it took to become true, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.01)
    return None


def test_attr_plain_stat_is_stale_and_forced_statx_is_not(tmp_path):
    with share.share(tmp_path, "attr") as s:
        host, guest, _ = cached_file(s)
        edit_in_place(host, V2_GROWN)
        new = os.stat(host)
        # the kernel's attribute cache: the old size, and the old mtime
        st = os.stat(guest)
        assert (st.st_size, st.st_mtime_ns) == (len(V1), HOST_MTIME_NS // 10**9 * 10**9)
        # statx(AT_STATX_FORCE_SYNC) asks sshfs, which asks the server
        fresh = share.statx(guest)
        assert fresh.st_size == len(V2_GROWN)
        assert fresh.st_mtime_ns == new.st_mtime_ns // 10**9 * 10**9
        # ... and refreshes the cache for everyone: another process sees it too
        assert os.stat(guest).st_size == len(V2_GROWN)
        assert read(guest) == V2_GROWN


def test_attr_plain_stat_catches_up_after_attr_timeout(tmp_path):
    with share.share(tmp_path, "attr") as s:
        host, guest, filled = cached_file(s)
        edit_in_place(host, V2)
        took = wait_until(lambda: os.stat(guest).st_mtime != HOST_MTIME_NS // 10**9,
                          share.STALE_MAX["attr"])
        assert took is not None, f"plain stat still old after {share.STALE_MAX['attr']} s"
        age = time.monotonic() - filled  # how old the cache was then
        assert age >= share.STALE_MIN["attr"], f"plain stat was fresh {age:.2f} s after the fill"


def test_attr_first_read_of_a_grown_file_stops_at_the_old_size(tmp_path):
    """The third mechanism of the issue: new bytes, cut at the cached size."""
    with share.share(tmp_path, "attr") as s:
        host, guest, _ = cached_file(s)
        edit_in_place(host, V2_GROWN)
        assert read(guest) == V2_GROWN[:len(V1)]
        # that read marked atime stale: the next open's fstat refreshes the size
        assert read(guest) == V2_GROWN


def test_guest_mtime_has_whole_seconds_and_inode_survives_rename_over(tmp_path):
    with share.share(tmp_path, "attr") as s:
        host, guest, _ = cached_file(s)
        g = share.statx(guest)
        assert os.stat(host).st_mtime_ns == HOST_MTIME_NS
        # sftp v3 carries seconds: the guest's mtime is the host's, truncated
        assert g.st_mtime_ns == HOST_MTIME_NS // 10**9 * 10**9
        assert g.st_size == len(V1)
        host_ino = os.stat(host).st_ino
        tmp = host.with_name(".app.py.tmp")
        tmp.write_bytes(V2_GROWN)
        os.replace(tmp, host)
        assert os.stat(host).st_ino != host_ino
        after = share.statx(guest)
        assert after.st_size == len(V2_GROWN)
        # libfuse numbers inodes per path: a rename-over keeps the guest's number
        assert after.st_ino == g.st_ino


def test_same_size_edit_in_the_same_second_is_invisible_to_stat(tmp_path):
    """(size, mtime) from the guest cannot tell two versions of one second apart."""
    with share.share(tmp_path, "attr") as s:
        host, guest = s.host("app.py"), s.guest("app.py")
        second = HOST_MTIME_NS // 10**9 * 10**9
        host.write_bytes(V1)
        os.utime(host, ns=(second + 100, second + 100))
        before = share.statx(guest)
        edit_in_place(host, V2)
        os.utime(host, ns=(second + 900_000_000, second + 900_000_000))
        after = share.statx(guest)  # forced: what the server says now
        assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        assert read(guest) == V2


def test_content_stays_old_then_turns_new_within_the_bound(tmp_path):
    with share.share(tmp_path, "content") as s:
        host, guest, _ = cached_file(s)
        edit_in_place(host, V2)
        t0 = time.monotonic()
        # nothing in the guest gets past sshfs's own cache: not even a forced statx
        assert share.statx(guest).st_mtime_ns == HOST_MTIME_NS // 10**9 * 10**9
        assert os.stat(guest).st_mtime_ns == HOST_MTIME_NS // 10**9 * 10**9
        assert read(guest) == V1, "the guest read the new bytes at once"
        took = wait_until(lambda: read(guest) == V2, share.STALE_MAX["content"])
        assert took is not None, f"still old after {share.STALE_MAX['content']} s"
        old_mtime = HOST_MTIME_NS // 10**9 * 10**9
        took = wait_until(lambda: share.statx(guest).st_mtime_ns != old_mtime,
                          share.STALE_MAX["content"] - (time.monotonic() - t0))
        assert took is not None, f"statx still old after {share.STALE_MAX['content']} s"
        assert time.monotonic() - t0 >= 1.0


def test_content_slow_is_still_old_after_ten_seconds(tmp_path):
    with share.share(tmp_path, "content-slow") as s:
        host, guest, _ = cached_file(s)
        edit_in_place(host, V2)
        t0 = time.monotonic()
        old_mtime = HOST_MTIME_NS // 10**9 * 10**9
        while True:
            # no open() in the guest here: an open makes sshfs fetch fresh attributes
            assert share.statx(guest).st_mtime_ns == old_mtime, \
                f"forced statx saw the edit after {time.monotonic() - t0:.2f} s"
            assert os.stat(guest).st_mtime_ns == old_mtime
            if time.monotonic() - t0 >= 10.0:
                break
            time.sleep(0.5)
        # the kernel still has the old attributes, hence the old pages
        assert read(guest) == V1
        # but that open refreshed sshfs's own cache: a forced statx now gets the
        # edit, and with it the kernel drops the old pages
        assert share.statx(guest).st_mtime_ns == os.stat(host).st_mtime_ns // 10**9 * 10**9
        assert read(guest) == V2


def test_teardown_leaves_no_mount_and_no_process(tmp_path):
    s = share.Share(tmp_path, "attr")
    try:
        s.up()
    except share.Unavailable as e:
        pytest.skip(f"sshfs share: {e}")
    pids = [s.sshfs.pid, s.socat.pid] + share.descendants(s.socat.pid)
    assert len(pids) >= 3, "no sftp-server under socat"
    assert s.down() == []
    assert share.mounts_at(s.mnt) == []
    assert [p for p in pids if pid_alive(p)] == []


def test_skips_with_the_missing_piece(tmp_path, monkeypatch):
    monkeypatch.setattr(share.shutil, "which", lambda tool: None if tool == "sshfs" else "/x")
    monkeypatch.setattr(share.os, "geteuid", lambda: 0)
    with pytest.raises(pytest.skip.Exception, match="no `sshfs` on PATH .Debian package sshfs"):
        with share.share(tmp_path, "attr"):
            pass
    monkeypatch.setattr(share.os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        with share.share(tmp_path, "attr"):
            pass
