"""netreload on shared folders that cache: every "live" must serve the new code.

The app runs from an sshfs mount ("guest") of a directory the test edits
directly ("host"), as in a VM whose code sits on NFS or vboxsf (tests/share.py
says what each kind of share caches). After each save the client sends the
changed file with its size, mtime and hash; the plugin waits until the guest
sees exactly that, drops stale .pyc files, and only then reloads. Each save
must end with the new code served after "live", or with an honest "stale"
failure that reloaded nothing.
"""
import json
import os
import subprocess

import pytest

from conftest import CLIENT, PRELOAD, Uwsgi, atomic_write, kill_tree, wait_for
from share import share

APP = '''\
import version

def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [version.VERSION.encode()]
'''
SAVES = 10
# NR_TEST_NOFILES=--no-files runs these tests the way 0.1 reloaded, to see them fail
NOFILES = os.environ.get("NR_TEST_NOFILES", "").split()


def edit(path, i, style):
    """Save version i of version.py the way the style says an editor does."""
    if style == "same-size":  # in place, same length: the cached size still matches
        text = f'VERSION = "v{i:03d}"\n'
        with open(path, "r+") as f:
            f.write(text)
            f.truncate()
    elif style == "growing":  # in place, one byte longer each time
        with open(path, "w") as f:
            f.write(f'VERSION = "v{i:03d}{"+" * i}"\n')
    else:  # temp file + rename
        atomic_write(path, f'VERSION = "v{i:03d}"\n')
    return f"v{i:03d}"


def start_server(tmp_path, sh, mode, lazy, extra=()):
    (sh.host() / "app.py").write_text(APP)
    (sh.host() / "version.py").write_text('VERSION = "v000"\n')
    srv_dir = tmp_path / "srv"
    srv_dir.mkdir()
    s = Uwsgi(srv_dir, mode=mode, lazy=lazy, extra=extra)
    s.args[s.args.index("--wsgi-file") + 1] = str(sh.guest() / "app.py")
    s.args[s.args.index("--chdir") + 1] = str(sh.guest())
    return s.start()


def ping_changed(s, sh, rel, timeout=60):
    return subprocess.run([str(CLIENT), "ping", *NOFILES, "--root", str(sh.host()), "--changed",
                           str(sh.host() / rel), s.target], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("kind", ["attr", "content"])
@pytest.mark.parametrize("mode,lazy", [("graceful", False), ("workers", True)])
@pytest.mark.parametrize("style", ["same-size", "growing", "rename"])
def test_every_live_serves_the_saved_code(tmp_path, kind, mode, lazy, style):
    if PRELOAD and kind == "content" and (style, mode) != ("same-size", "graceful"):
        pytest.skip("ASan run: the content share runs the C paths of the attr share, "
                    "only slower; one variant of it is enough here")
    with share(tmp_path, kind) as sh:
        s = start_server(tmp_path, sh, mode, lazy)
        try:
            assert s.get().startswith("v000")
            stale_lives, honest = 0, 0
            for i in range(1, SAVES + 1):
                want = edit(sh.host() / "version.py", i, style)
                p = ping_changed(s, sh, "version.py")
                if p.returncode == 0:
                    stale_lives += not (s.get() or "").startswith(want)
                else:
                    assert p.returncode == 1 and "stale" in p.stdout + p.stderr, p.stderr
                    honest += 1
            assert stale_lives == 0, f"{stale_lives} of {SAVES} 'live' replies served old code"
            # the share is the only reason to be honest rather than live; the NFS-like
            # kind always catches up at once, with the forced attribute refresh
            if kind == "attr":
                assert honest == 0
        finally:
            s.stop()


def test_watch_sends_the_save_and_it_is_live(tmp_path):
    """The watcher (not ping) on the NFS-like share, editor-style saves."""
    with share(tmp_path, "attr") as sh:
        s = start_server(tmp_path, sh, "graceful", False)
        err = tmp_path / "watch.err"
        with open(err, "w") as ef:
            w = subprocess.Popen([str(CLIENT), "watch", "--json", "--to", s.target,
                                  str(sh.host())], stdout=subprocess.PIPE, stderr=ef, text=True)
        try:
            wait_for(lambda: "watching" in err.read_text(), 10, what="the watcher to start")
            lives = 0
            for i in range(1, 6):
                want = edit(sh.host() / "version.py", i, "same-size")
                while True:  # bounded by the watcher's own timeouts and the test's
                    ev = json.loads(w.stdout.readline())
                    if ev.get("event") in ("live", "failed"):
                        break
                assert ev["event"] == "live", ev
                assert (s.get() or "").startswith(want)
                lives += 1
            assert lives == 5
        finally:
            kill_tree(w.pid)
            w.wait(timeout=5)
            s.stop()


def test_a_share_that_never_catches_up_is_reported_not_live(tmp_path):
    """A share that keeps serving old bytes past netreload-share-timeout: nothing
    reloads, the reply says stale, and the client says what to do. To make that
    certain, the edit keeps the size and the mtime (as `rsync -t` or a same-second
    save can): then nothing tells the guest's page cache (kernel_cache) to let go,
    not even the plugin's own open() that refreshes sshfs's attribute cache."""
    with share(tmp_path, "content-slow") as sh:
        s = start_server(tmp_path, sh, "graceful", False,
                         extra=["--netreload-share-timeout", "2"])
        try:
            assert s.get().startswith("v000")
            workers = sorted(s.worker_pids())
            path = sh.host() / "version.py"
            before = path.stat()
            assert (sh.guest() / "version.py").read_bytes() == path.read_bytes()  # cached
            edit(path, 1, "same-size")
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            p = ping_changed(s, sh, "version.py")
            assert p.returncode == 1, p.stdout + p.stderr
            out = p.stdout + p.stderr
            assert "stale share: version.py still" in out and "fuse.sshfs" in out, out
            assert "actimeo=0" in out  # the advice
            assert sorted(s.worker_pids()) == workers  # nothing was reloaded
            assert s.get().startswith("v000")
            assert "nothing reloaded" in s.log_text()
        finally:
            s.stop()


def test_wrong_root_is_named_at_once(tmp_path):
    """The client watches the project, the app runs from a subdirectory: the
    paths do not map; after a second the server reloads anyway, and its log
    says which option fixes it."""
    with share(tmp_path, "attr") as sh:
        s = start_server(tmp_path, sh, "graceful", False)
        try:
            (sh.host() / "sub").mkdir()
            (sh.host() / "sub" / "x.py").write_text("x = 1\n")
            # as if the client watched the parent of what the server calls its root
            p = subprocess.run([str(CLIENT), "ping", "--root", str(sh.host().parent),
                                "--changed", str(sh.host() / "sub" / "x.py"), s.target],
                               capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, p.stdout + p.stderr  # reloads, as without a list
            assert "set netreload-root" in s.log_text()
        finally:
            s.stop()
