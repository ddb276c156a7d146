"""`netreload watch`: editor saves reload once, noise never, filters, debounce,
delivery to several / unreachable targets, --stdin, --poll, inotify fallback.

Every test runs the real client against a private uWSGI. The watcher runs as
a subprocess writing to files; it is stopped with SIGINT (and killed by pid
if that fails) at teardown. "No reload" is asserted after a bounded wait.
"""
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CLIENT, APP_TEMPLATE, atomic_write, run_client, wait_for

QUIET = 0.6  # how long "nothing happens" is watched for; debounce is 20 ms


class Watcher:
    def __init__(self, tmp_path, n, args, cwd, stdin=False, env=None, wrap=()):
        self.out = Path(tmp_path) / f"watch{n}.out"
        self.err = Path(tmp_path) / f"watch{n}.err"
        self._out = open(self.out, "wb")
        self._err = open(self.err, "wb")
        self.proc = subprocess.Popen(
            [*wrap, str(CLIENT), "watch", *map(str, args)], cwd=cwd, stdout=self._out,
            stderr=self._err, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            env={**os.environ, **(env or {})})

    def stdout(self):
        return self.out.read_text(encoding="utf-8", errors="replace")

    def stderr(self):
        return self.err.read_text(encoding="utf-8", errors="replace")

    def started(self, timeout=10):
        wait_for(lambda: "netreload: watching" in self.stderr() or self.proc.poll() is not None,
                 timeout, what="the watcher's startup line")
        assert self.proc.poll() is None, self.stderr()
        return self

    def lives(self):
        return self.stdout().count(" live in ")

    def wait_lives(self, n, timeout=20):
        wait_for(lambda: self.lives() >= n, timeout,
                 what=f"{n} live line(s); stdout={self.stdout()!r} stderr={self.stderr()!r}")

    def stop(self, timeout=5):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
        for f in (self._out, self._err):
            f.close()
        return self.proc.returncode


@pytest.fixture
def servers(servers, code):
    """conftest's factory, with netreload-root at the watched tree, as on a VM that
    mounts it: the watcher lists the files it saw change, relative to that tree, and
    the server waits until it sees them there (root=None: the server's own dir)."""
    def make(start=True, root=code, **kw):
        if root:
            kw["extra"] = [*kw.get("extra", ()), "--netreload-root", str(root)]
        return servers(start=start, **kw)
    return make


@pytest.fixture
def watch(tmp_path, code):
    """Factory: watch(*args, cwd=code) starts `netreload watch ARGS`; all are stopped at teardown."""
    started = []

    def make(*args, cwd=None, stdin=False, env=None, wait=True, wrap=()):
        w = Watcher(tmp_path, len(started), args, cwd or code, stdin=stdin, env=env, wrap=wrap)
        started.append(w)
        return w.started() if wait else w

    yield make
    for w in started:
        w.stop()


def gen(server):
    """The server's generation; asks again while a graceful reload re-execs the master."""
    def ask():
        r = run_client("status", "--json", server.target, timeout=10)
        return json.loads(r.stdout) if r.returncode == 0 else None
    return wait_for(ask, 15, what="a status answer")["gen"]


def assert_quiet(w, server, g0, lives=0):
    """Nothing more happens: no new live line, no new generation."""
    time.sleep(QUIET)
    assert w.lives() == lives, w.stdout()
    assert gen(server) == g0 + lives


def one_reload(w, server, g0):
    w.wait_lives(1)
    assert_quiet(w, server, g0, lives=1)


# ---- editor saves -------------------------------------------------------------

def save_plain(p, text):
    p.write_text(text)


def save_atomic(p, text):
    atomic_write(p, text)


def save_tmp_rename(p, text):
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, p)


def save_vim(p, text):
    """vim: swap file, 4913 probe, rename to backup~, write, drop backup, touch swap."""
    swp = p.with_name(f".{p.name}.swp")
    swp.write_bytes(b"b0VIM 9.0\0" * 50)
    probe = p.with_name("4913")
    probe.write_text("")
    os.chmod(probe, 0o644)
    probe.unlink()
    backup = p.with_name(p.name + "~")
    os.rename(p, backup)
    p.write_text(text)
    backup.unlink()
    swp.write_bytes(b"b0VIM 9.0\1" * 50)
    p.with_name(f".{p.name}.swx").write_text("")
    p.with_name(f".{p.name}.swx").unlink()


def save_emacs(p, text):
    """emacs: lock symlink .#x, autosave #x#, backup x~ by rename, write, clean up."""
    lock = p.with_name(f".#{p.name}")
    os.symlink("user@host.4242:1700000000", lock)
    autosave = p.with_name(f"#{p.name}#")
    autosave.write_text(text)
    os.rename(p, p.with_name(p.name + "~"))
    p.write_text(text)
    autosave.unlink()
    lock.unlink()


def save_jetbrains(p, text):
    """JetBrains "safe write": x___jb_tmp___, x -> x___jb_old___, tmp -> x, drop old."""
    tmp = p.with_name(p.name + "___jb_tmp___")
    old = p.with_name(p.name + "___jb_old___")
    tmp.write_text(text)
    os.rename(p, old)
    os.rename(tmp, p)
    old.unlink()


@pytest.mark.parametrize("save", [save_plain, save_atomic, save_tmp_rename, save_vim,
                                  save_emacs, save_jetbrains],
                         ids=["plain", "atomic", "tmp-rename", "vim", "emacs", "jetbrains"])
def test_editor_save_reloads_once(server, code, watch, save):
    w = watch("--to", server.target)
    g0 = gen(server)
    save(code / "views.py", "x = 2\n")
    one_reload(w, server, g0)
    assert "views.py" in w.stdout()


def test_atomic_save_is_named_after_its_target(server, code, watch):
    """Tools that write a temp file with an ordinary name, then rename it over the
    real file: the line must name the real file (it named the temp file)."""
    w = watch("--to", server.target)
    g0 = gen(server)
    tmp = code / "newviews"
    tmp.write_text("x = 7\n")
    os.replace(tmp, code / "views.py")
    one_reload(w, server, g0)
    line = w.stdout().splitlines()[0]
    assert " views.py (+1) \u2192 " in line and "newviews" not in line, line


@pytest.mark.parametrize("extra,lines", [((), 1), (("--breakdown",), 2)])
def test_one_save_prints_exactly_its_lines(server, code, watch, extra, lines):
    """A live reload is one line (two with --breakdown), and never an error line."""
    w = watch("--to", server.target, *extra)
    (code / "views.py").write_text("x = 3\n")
    w.wait_lives(1)
    time.sleep(0.3)
    out = w.stdout().splitlines()
    assert len(out) == lines and "error" not in w.stdout(), out
    if lines == 2:
        assert out[1].split()[0] == "stop" and "network" in out[1], out


def test_startup_line_and_output_format(server, code, watch):
    w = watch("--to", server.target)
    assert f"netreload: watching 2 dirs under {code} (inotify) \u2192 {server.target}" in w.stderr()
    (code / "pkg" / "models.py").write_text("y = 2\n")
    w.wait_lives(1)
    line = w.stdout().splitlines()[0]
    assert f"pkg/models.py \u2192 {server.target} live in " in line
    assert "(debounce " in line and ", reload " in line
    assert "\033[" not in line  # not a terminal: no colour


def test_delete_and_rename_reload(server, code, watch):
    w = watch("--to", server.target)
    g0 = gen(server)
    (code / "pkg" / "models.py").unlink()
    one_reload(w, server, g0)
    os.rename(code / "views.py", code / "views2.py")
    w.wait_lives(2)
    assert_quiet(w, server, g0, lives=2)


def test_new_directory_is_watched(server, code, watch):
    w = watch("--to", server.target)
    g0 = gen(server)
    (code / "newpkg").mkdir()
    assert_quiet(w, server, g0)  # an empty directory is not code
    (code / "newpkg" / "mod.py").write_text("z = 1\n")
    one_reload(w, server, g0)
    (code / "newpkg" / "sub").mkdir()
    time.sleep(0.1)
    (code / "newpkg" / "sub" / "deep.py").write_text("z = 2\n")
    w.wait_lives(2)
    assert "newpkg/sub/deep.py" in w.stdout()


def dirs_line(w):
    """(dirs, table bytes) from the last `-v` line saying how many dirs are watched."""
    lines = [ln.split() for ln in w.stderr().splitlines() if ln.startswith("netreload: now ")]
    if not lines or "table:" not in lines[-1]:
        return None
    return int(lines[-1][2]), int(lines[-1][lines[-1].index("table:") + 1])


def test_directory_churn_does_not_grow_the_watch_table(server, code, watch):
    """The kernel numbers watches 1, 2, 3... without reusing numbers, and the table
    was indexed by that number: every directory ever created cost memory for good."""
    w = watch("-v", "--to", server.target)
    sizes = []
    for rnd in range(3):
        for i in range(100):
            (code / f"churn{i}").mkdir()
        wait_for(lambda: (dirs_line(w) or (0,))[0] == 102, 10, what=f"102 dirs: {dirs_line(w)}")
        for i in range(100):
            (code / f"churn{i}").rmdir()
        wait_for(lambda: (dirs_line(w) or (0,))[0] == 2, 10, what=f"2 dirs: {dirs_line(w)}")
        sizes.append(dirs_line(w)[1])
    assert sizes[0] > 0 and sizes == [sizes[0]] * 3, sizes
    n = w.lives()
    (code / "pkg" / "models.py").write_text("y = 40\n")  # the survivors are still watched
    wait_for(lambda: "pkg/models.py" in w.stdout(), 20, what="a reload for pkg/models.py")
    w.wait_lives(n + 1)


def test_touching_a_directory_keeps_it_watched(server, code, watch):
    """touch/chmod/rsync -a on a directory (IN_ATTRIB) used to drop its watches."""
    w = watch("--to", server.target)
    g0 = gen(server)
    os.utime(code / "pkg")
    os.chmod(code / "pkg", 0o755)
    assert_quiet(w, server, g0)  # attributes of a directory are not code
    (code / "pkg" / "models.py").write_text("y = 9\n")
    one_reload(w, server, g0)
    assert "pkg/models.py" in w.stdout()


def test_moved_in_directory_reloads_and_is_watched(server, code, tmp_path, watch):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.py").write_text("a = 1\n")
    w = watch("--to", server.target)
    g0 = gen(server)
    os.rename(outside, code / "moved")
    one_reload(w, server, g0)
    (code / "moved" / "a.py").write_text("a = 2\n")
    w.wait_lives(2)


def test_noise_never_reloads(server, code, watch):
    for d in ("__pycache__", ".git", "node_modules/lib", "venv/lib", ".tox", ".mypy_cache",
              ".pytest_cache", "myenv"):
        (code / d).mkdir(parents=True)
    (code / "myenv" / "pyvenv.cfg").write_text("home = /usr\n")
    w = watch("--to", server.target)
    g0 = gen(server)
    (code / "views.pyc").write_bytes(b"\0")
    (code / "pkg" / "models.pyo").write_bytes(b"\0")
    (code / ".views.py.swp").write_bytes(b"\0")
    (code / ".views.py.swx").write_bytes(b"\0")
    (code / "views.py~").write_text("old")
    (code / "4913").write_text("")
    (code / "4913").unlink()
    (code / "__pycache__" / "views.cpython-311.pyc").write_bytes(b"\0")
    (code / ".git" / "index").write_bytes(b"\0")
    (code / ".git" / "objects").mkdir()
    (code / "node_modules" / "lib" / "x.js").write_text("1")
    (code / "venv" / "lib" / "site.py").write_text("1")
    (code / "myenv" / "lib.py").write_text("1")
    (code / "server.log").write_text("log line\n")
    (code / ".#views.py").symlink_to("user@host.1:2")
    (code / "#views.py#").write_text("autosave")
    (code / "views.py___jb_old___").write_text("1")
    assert_quiet(w, server, g0)
    (code / ".views.py.swp").unlink()
    (code / "views.pyc").unlink()
    assert_quiet(w, server, g0)


# ---- filters ------------------------------------------------------------------

def test_gitignore_nested_with_negation(server, code, watch):
    (code / ".gitignore").write_text("build/\n*.cfg\n!keep.cfg\n/top.txt\n")
    (code / "build").mkdir()
    (code / "pkg" / ".gitignore").write_text("local.py\n!*.cfg\n")
    w = watch("--to", server.target)
    g0 = gen(server)
    (code / "build" / "out.py").write_text("1")
    (code / "secret.cfg").write_text("1")
    (code / "top.txt").write_text("1")
    (code / "pkg" / "local.py").write_text("1")
    assert_quiet(w, server, g0)
    (code / "keep.cfg").write_text("1")
    one_reload(w, server, g0)
    (code / "pkg" / "x.cfg").write_text("1")  # re-included by pkg/.gitignore
    w.wait_lives(2)
    (code / "pkg" / "top.txt").write_text("1")  # /top.txt is anchored to the root
    w.wait_lives(3)


def test_unignoring_a_directory_starts_watching_it(server, code, watch):
    """A directory un-ignored by a .gitignore edit used to stay unwatched until restart."""
    (code / "build").mkdir()
    (code / ".gitignore").write_text("build/\n")
    w = watch("--to", server.target)
    g0 = gen(server)
    (code / "build" / "x.py").write_text("b = 1\n")
    assert_quiet(w, server, g0)
    atomic_write(code / ".gitignore", "dist/\n")
    w.wait_lives(1)  # a .gitignore edit is itself a change
    (code / "build" / "x.py").write_text("b = 2\n")
    w.wait_lives(2)
    assert "build/x.py" in w.stdout()


def test_no_gitignore(server, code, watch):
    (code / ".gitignore").write_text("*.cfg\n")
    w = watch("--no-gitignore", "--to", server.target)
    g0 = gen(server)
    (code / "secret.cfg").write_text("1")
    one_reload(w, server, g0)


def test_ext(server, code, watch):
    w = watch("--ext", "py,html", "--to", server.target)
    g0 = gen(server)
    (code / "README.md").write_text("1")
    (code / "data.json").write_text("1")
    assert_quiet(w, server, g0)
    (code / "page.html").write_text("1")
    one_reload(w, server, g0)


def test_include_exclude(server, code, watch):
    (code / "templates").mkdir()
    (code / "migrations").mkdir()
    w = watch("--include", "templates/*", "--include", "*.py", "--exclude", "migrations",
              "--exclude", "pkg/*.py", "--to", server.target)
    g0 = gen(server)
    (code / "notes.txt").write_text("1")
    (code / "migrations" / "0001.py").write_text("1")
    (code / "pkg" / "models.py").write_text("y = 3\n")
    assert_quiet(w, server, g0)
    (code / "templates" / "a.txt").write_text("1")
    one_reload(w, server, g0)
    (code / "views.py").write_text("x = 3\n")
    w.wait_lives(2)


def explain(code, path, *args):
    return subprocess.run([str(CLIENT), "watch", *args, "--explain", path], cwd=code,
                          capture_output=True, text=True, timeout=10)


def test_explain(code):
    (code / ".gitignore").write_text("build/\n")
    (code / "views").mkdir()
    r = explain(code, "views/x.pyc")
    assert r.returncode == 1 and r.stdout == "views/x.pyc: ignored by default rule '*.pyc'\n"
    r = explain(code, "views.py")
    assert r.returncode == 0 and "views.py: would trigger a reload" in r.stdout
    r = explain(code, "build/x.py")
    assert r.returncode == 1 and "'build/' in .gitignore:1" in r.stdout, r.stdout
    r = explain(code, "node_modules/a/b.js")
    assert r.returncode == 1 and "default rule 'node_modules/'" in r.stdout
    r = explain(code, "README.md", "--ext", "py")
    assert r.returncode == 1 and "not selected by --ext" in r.stdout
    r = explain(code, "pkg/models.py", "--exclude", "pkg/*")
    assert r.returncode == 1 and "--exclude 'pkg/*'" in r.stdout
    r = explain(code, "/etc/passwd")
    assert r.returncode == 2 and "netreload watch: --explain '/etc/passwd': not inside" in r.stderr, r.stderr


# ---- debounce -----------------------------------------------------------------

def test_burst_of_500_files_is_at_most_two_reloads(server, code, watch):
    """One reload; on a loaded machine a stall of the writer longer than
    --burst-quiet may cut the burst once, and the second reload carries the rest."""
    w = watch("--to", server.target)
    g0 = gen(server)
    for i in range(500):
        (code / "pkg" / f"m{i}.py").write_text(f"v = {i}\n")
    w.wait_lives(1)
    time.sleep(QUIET)
    lives = w.lives()
    assert 1 <= lives <= 2, w.stdout()
    assert gen(server) == g0 + lives
    # each live line names one file and counts the others: every file is in one
    assert sum(1 + int(n) for n in re.findall(r"\(\+(\d+)\)", w.stdout())) == 500, w.stdout()


def test_waits_for_git_index_lock(server, code, watch):
    (code / ".git").mkdir()
    w = watch("--to", server.target)
    g0 = gen(server)
    lock = code / ".git" / "index.lock"
    lock.write_text("")
    (code / "views.py").write_text("x = 5\n")
    (code / "pkg" / "models.py").write_text("y = 5\n")
    assert_quiet(w, server, g0)
    lock.unlink()
    one_reload(w, server, g0)


def test_stale_git_index_lock_is_reported_and_no_longer_waited_for(server, code, watch):
    """A lock left by a crashed git used to add a silent 10 s to every reload."""
    (code / ".git").mkdir()
    (code / ".git" / "index.lock").write_text("")
    w = watch("--to", server.target)
    g0 = gen(server)
    (code / "views.py").write_text("x = 6\n")
    w.wait_lives(1, timeout=20)  # after the 10 s bound
    assert "index.lock is still there after 10 s" in w.stderr()
    t0 = time.monotonic()
    (code / "views.py").write_text("x = 7\n")
    w.wait_lives(2, timeout=5)
    assert time.monotonic() - t0 < 5
    assert gen(server) == g0 + 2
    assert w.stderr().count("index.lock is still there") == 1


def test_removed_root_is_an_error(server, tmp_path, watch):
    root = tmp_path / "doomed"
    root.mkdir()
    w = watch("--to", server.target, str(root))
    shutil.rmtree(root)
    assert w.proc.wait(timeout=10) == 7
    assert "was removed, moved or unmounted" in w.stderr()


def test_change_during_reload_gives_exactly_one_more(servers, code, watch):
    slow = APP_TEMPLATE.format(version="slow").replace("VERSION =", "import time\ntime.sleep(0.8)\nVERSION =")
    server = servers(app=slow)
    w = watch("--to", server.target)
    g0 = gen(server)
    (code / "views.py").write_text("x = 10\n")
    time.sleep(0.2)  # the first ping is in flight: the app takes 0.8 s to import
    assert w.lives() == 0
    for i in range(5):
        (code / "pkg" / "models.py").write_text(f"y = {i}\n")
        time.sleep(0.05)
    w.wait_lives(2, timeout=30)
    time.sleep(1.5)
    assert w.lives() == 2, w.stdout()
    assert gen(server) == g0 + 2


# ---- backends -----------------------------------------------------------------

def test_stdin(server, code, watch):
    w = watch("--stdin", "--to", server.target, stdin=True)
    assert "paths read from stdin" in w.stderr()
    g0 = gen(server)
    w.proc.stdin.write(f"{code}/.views.py.swp\n{code}/__pycache__/x.pyc\n".encode())
    w.proc.stdin.flush()
    assert_quiet(w, server, g0)
    w.proc.stdin.write(f"{code}/views.py\npkg/models.py\n".encode())
    w.proc.stdin.flush()
    one_reload(w, server, g0)
    assert "pkg/models.py (+1)" in w.stdout()  # named after the path that changed last
    w.proc.stdin.write(b"pkg/models.py\n")
    w.proc.stdin.close()  # end of input: last reload, then exit 0
    assert w.proc.wait(timeout=20) == 0
    assert w.lives() == 2


def send(w, *lines):
    w.proc.stdin.write("".join(f"{line}\n" for line in lines).encode())
    w.proc.stdin.flush()


def test_stdin_ignores_paths_outside_the_root(server, code, tmp_path, watch):
    """Paths outside DIR were filtered as if relative to it, and reloaded."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.py").write_text("1")
    w = watch("--stdin", "-v", "--to", server.target, code, stdin=True)
    g0 = gen(server)
    send(w, other / "x.py", "../other/x.py", f"{code}/../other/x.py")
    assert_quiet(w, server, g0)
    wait_for(lambda: w.stderr().count(f"ignored (outside {code})") == 3, 5,
             what=f"three -v notes: {w.stderr()!r}")
    send(w, f"{code}/views.py")
    one_reload(w, server, g0)


def test_stdin_root_given_through_a_symlink(server, code, tmp_path, watch):
    """With DIR a symlink, paths spelled through it were matched as if relative
    (so --exclude and .gitignore missed them), and named by their whole path."""
    link = tmp_path / "link"
    link.symlink_to(code)
    w = watch("--stdin", "--exclude", "pkg/*", "--to", server.target, link, stdin=True,
              cwd=tmp_path)
    g0 = gen(server)
    send(w, link / "pkg" / "models.py", code / "pkg" / "models.py")
    assert_quiet(w, server, g0)
    send(w, link / "views.py")
    one_reload(w, server, g0)
    assert " views.py \u2192 " in w.stdout(), w.stdout()
    send(w, code / "views.py", link / "gone" / "new.py")  # real path; a directory now gone
    w.wait_lives(2)
    assert " gone/new.py (+1) \u2192 " in w.stdout(), w.stdout()
    assert gen(server) == g0 + 2


def test_poll_backend(server, code, watch):
    w = watch("--poll", "50", "--to", server.target)
    assert "(poll every 50 ms)" in w.stderr()
    g0 = gen(server)
    (code / ".views.py.swp").write_text("1")
    assert_quiet(w, server, g0)
    (code / "views.py").write_text("x = 7\n")
    one_reload(w, server, g0)
    (code / "newdir").mkdir()
    (code / "newdir" / "n.py").write_text("1")
    w.wait_lives(2)
    (code / "views.py").unlink()
    w.wait_lives(3)


def test_inotify_fallback_to_polling(server, code, watch):
    (code / "pkg" / "sub").mkdir()
    w = watch("--to", server.target, env={"NETRELOAD_INOTIFY_MAX_WATCHES": "2"})
    err = w.stderr()
    assert "netreload: warning: out of inotify watches" in err
    assert "fs.inotify.max_user_watches" in err
    assert "sysctl fs.inotify.max_user_watches=524288" in err
    assert "(poll every 500 ms)" in err
    g0 = gen(server)
    (code / "pkg" / "sub" / "deep.py").write_text("1")
    one_reload(w, server, g0)


# A user namespace of its own with no inotify instances allowed: inotify_init1()
# fails with EMFILE there, as when the user's fs.inotify.max_user_instances is
# used up, while the real limit, shared with everything else, stays untouched.
NO_INOTIFY_INSTANCES = ("unshare", "--user", "--map-root-user", "sh", "-c",
                        'echo 0 > /proc/sys/user/max_inotify_instances && exec "$0" "$@"')


def no_inotify_instances_possible():
    r = subprocess.run([*NO_INOTIFY_INSTANCES, "true"], capture_output=True, timeout=10)
    return r.returncode == 0


def test_out_of_inotify_instances_names_that_limit(server, code, watch):
    """EMFILE from inotify_init1 used to be blamed on max_user_watches, the limit of
    inotify_add_watch; raising that does not help."""
    if not no_inotify_instances_possible():
        pytest.skip("needs unprivileged user namespaces (unshare --user)")
    w = watch("--to", server.target, wrap=NO_INOTIFY_INSTANCES)
    err = w.stderr()
    assert "netreload: warning: out of inotify instances" in err, err
    limit = Path("/proc/sys/fs/inotify/max_user_instances").read_text().strip()
    assert f"(fs.inotify.max_user_instances = {limit})" in err, err
    assert "sudo sysctl fs.inotify.max_user_instances=1024" in err, err
    assert "max_user_watches" not in err, err
    assert "(poll every 500 ms)" in err, err
    g0 = gen(server)
    (code / "views.py").write_text("x = 14\n")
    one_reload(w, server, g0)


def test_out_of_file_descriptors_is_not_an_inotify_limit(code):
    """EMFILE from inotify_init1 is also this process's own fd limit: no sysctl helps
    there, and polling would fail to open directories."""
    def five_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (5, 5))  # 0-2, the signal pipe, no more
    r = subprocess.run([str(CLIENT), "watch", "--to", "127.0.0.1:1", str(code)],
                       capture_output=True, text=True, timeout=10, preexec_fn=five_fds)
    assert r.returncode == 7, r.stderr
    assert "Too many open files (raise the open-file limit: ulimit -n)" in r.stderr, r.stderr
    assert "sysctl" not in r.stderr, r.stderr


def test_inotify_fallback_while_running(server, code, watch):
    w = watch("--to", server.target, env={"NETRELOAD_INOTIFY_MAX_WATCHES": "3"})
    assert "warning" not in w.stderr()
    g0 = gen(server)
    (code / "new1").mkdir()
    (code / "new2").mkdir()
    wait_for(lambda: "out of inotify watches" in w.stderr(), 5, what="the fallback warning")
    w.wait_lives(1)
    (code / "new2" / "x.py").write_text("1")
    w.wait_lives(2)
    assert gen(server) >= g0 + 2


# ---- delivery -----------------------------------------------------------------

def test_unreachable_then_back(servers, code, watch):
    server = servers(start=False)
    w = watch("--to", server.target)
    (code / "views.py").write_text("x = 8\n")
    wait_for(lambda: "cannot connect" in w.stderr(), 10, what="the unreachable warning")
    assert w.stderr().count("cannot connect") == 1
    assert w.proc.poll() is None  # keeps watching
    time.sleep(1.2)  # a few retries happen meanwhile, silently
    assert w.stderr().count("cannot connect") == 1
    server.start()
    w.wait_lives(1, timeout=30)
    assert gen(server) == 1
    assert "answers again" in w.stderr()


def test_target_name_is_looked_up_once(server, code, watch):
    """A --to name was looked up at every ping, inside the loop: a slow resolver
    stalled the watcher. Now once at start, and the addresses are reused."""
    w = watch("-v", "--to", f"localhost:{server.port}")
    assert w.stderr().count("netreload: resolved localhost to ") == 1, w.stderr()
    g0 = gen(server)
    for i in range(3):
        (code / "views.py").write_text(f"x = {20 + i}\n")
        w.wait_lives(i + 1)
    assert gen(server) == g0 + 3
    assert w.stderr().count("netreload: resolved localhost to ") == 1, w.stderr()


def test_target_name_is_looked_up_again_after_a_connection_failure(servers, code, watch):
    """A VM may come back under another address: after a failed connection the next
    try looks the name up again."""
    server = servers(start=False)
    w = watch("-v", "--to", f"localhost:{server.port}")
    (code / "views.py").write_text("x = 30\n")
    wait_for(lambda: "cannot connect" in w.stderr(), 10, what="the unreachable warning")
    wait_for(lambda: w.stderr().count("resolved localhost to ") >= 2, 10,
             what=f"a second lookup: {w.stderr()!r}")
    server.start()
    w.wait_lives(1, timeout=30)


def test_target_name_that_does_not_resolve_is_an_error_at_start(code):
    """Exit 3 at once, as `netreload ping` does, instead of a watcher that never reloads."""
    r = run_client("watch", "--to", "no-such-host.invalid:9001", str(code), timeout=30)
    assert r.returncode == 3, r.stderr
    assert "netreload: error: cannot resolve 'no-such-host.invalid'" in r.stderr
    assert "or give an IP address" in r.stderr


def test_busy_server_is_called_busy_not_unreachable(servers, code, watch):
    """A server with every connection slot (128) taken by clients waiting for their
    reload answers "busy"; the watcher retried, fine, but warned "unreachable"."""
    slow = APP_TEMPLATE.format(version="slow").replace("VERSION =", "import time\ntime.sleep(3)\nVERSION =")
    server = servers(app=slow, lazy=True, mode="workers")
    w = watch("--to", server.target)
    waiting = []
    try:
        for i in range(128):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            waiting.append(s)
            s.sendall(f"NETRELOAD/1 reload id=w{i} wait=1\n".encode())
        for s in waiting:  # all accepted: all 128 now wait for "live"
            assert s.recv(600).startswith(b"NETRELOAD/1 accepted"), "not accepted"
        (code / "views.py").write_text("x = 50\n")
        wait_for(lambda: "warning" in w.stderr(), 10, what="a warning")
    finally:
        for s in waiting:
            s.close()
    err = w.stderr()
    assert f"netreload: warning: {server.target} is busy (server busy: too many clients waiting)" in err, err
    assert "until it takes the reload" in err and "until it answers" not in err, err
    w.wait_lives(1, timeout=30)  # retried once there was room


def test_two_targets(servers, code, watch):
    a, b = servers(), servers()
    w = watch("--to", a.target, "--to", b.target)
    ga, gb = gen(a), gen(b)
    (code / "views.py").write_text("x = 9\n")
    w.wait_lives(2)
    out = w.stdout()
    assert a.target in out and b.target in out
    time.sleep(QUIET)
    assert w.lives() == 2 and gen(a) == ga + 1 and gen(b) == gb + 1


def test_failure_shows_reason_and_keeps_watching(servers, watch):
    server = servers(root=None)  # its own directory, the default netreload-root
    w = watch("--to", server.target, cwd=server.dir)  # watches the app itself; *.log ignored
    server.app.write_text("import no_such_module_xyz\n" + APP_TEMPLATE.format(version="bad"))
    wait_for(lambda: " failed after " in w.stdout(), 30, what=f"a failed line: {w.stdout()!r}")
    assert "no_such_module_xyz" in w.stdout()
    assert w.proc.poll() is None
    server.set_version("v3")
    w.wait_lives(1, timeout=30)
    wait_for(lambda: server.get() == "v3", 10, what="the new code")


def test_on_live(server, code, tmp_path, watch):
    marker = tmp_path / "marker"
    w = watch("--to", server.target, "--on-live",
              f'echo "$NETRELOAD_TARGET $NETRELOAD_GEN" > {marker}')
    (code / "views.py").write_text("x = 11\n")
    w.wait_lives(1)
    wait_for(lambda: marker.exists() and marker.read_text().strip(), 10, what="the marker")
    assert marker.read_text().split() == [server.target, "1"]


def test_json(server, code, watch):
    w = watch("--json", "--to", server.target)
    (code / "views.py").write_text("x = 12\n")
    wait_for(lambda: w.stdout().count("\n") >= 1, 20, what="a JSON line")
    events = [json.loads(line) for line in w.stdout().splitlines()]
    assert events[0]["event"] == "live"
    assert events[0]["target"] == server.target
    assert events[0]["path"] == "views.py" and events[0]["gen"] == 1


def test_no_wait(server, code, watch):
    w = watch("--no-wait", "--to", server.target)
    (code / "views.py").write_text("x = 13\n")
    wait_for(lambda: "accepted (generation 1)" in w.stdout(), 20, what="an accepted line")


# ---- command line -------------------------------------------------------------

def test_help_and_usage_errors(code):
    r = run_client("watch", "--help")
    assert r.returncode == 0 and "--to HOST:PORT" in r.stdout and "--stdin" in r.stdout
    r = run_client("watch", str(code))
    assert r.returncode == 2 and "no target: add --to HOST:PORT" in r.stderr
    r = run_client("watch", "--to", "127.0.0.1:1", str(code / "nope"))
    assert r.returncode == 2 and "cannot watch" in r.stderr
    r = run_client("watch", "--to", "127.0.0.1:1", "--debounce", "x", str(code))
    assert r.returncode == 2 and "--debounce" in r.stderr
    assert "watch [DIR...]" in run_client("--help").stdout


def test_sigterm_exits_zero(server, code, watch):
    w = watch("--to", server.target)
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(timeout=5) == 0
