"""uWSGI's logging, daemonizing and forking options with the plugin: each must
behave as it does without it, and a failed reload must still say why.

The plugin reads why an app failed to load only while apps load (plugin/logs.c);
the rest of the time fd 2 is uWSGI's. Each test runs a real uWSGI master with
the real plugin in its own directory, with free ports; daemonized masters are
found through --pidfile and every process is stopped by pid.
"""
import functools
import inspect
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import (APP_TEMPLATE, UWSGI, Uwsgi, atomic_write, descendants, kill_tree, pid_alive,
                      uwsgi_env, wait_for)

BROKEN_APP = "import nonexistent_module_xyz\n" + APP_TEMPLATE.format(version="bad")
BROKEN_NEEDLES = ["ModuleNotFoundError", "No module named 'nonexistent_module_xyz'", "app.py:1"]

# An app that prints lines on stderr while it loads, one print() each.
CHATTY_LINES = 200
CHATTY_APP = '''\
import sys
for i in range(%d):
    print("app-line-%%d" %% i, file=sys.stderr)
''' % CHATTY_LINES + APP_TEMPLATE


def chatty(version):
    return CHATTY_APP.format(version=version)


def assert_live(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "live in" in r.stdout, r.stdout


def assert_failed_with_reason(r):
    assert r.returncode == 1, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    for n in BROKEN_NEEDLES:
        assert n in r.stderr, r.stderr


def break_then_fix(s, log_text):
    """A save that does not import is failed with the exception quoted, its
    traceback reaches the log the user configured, and the next save is live."""
    atomic_write(s.app, BROKEN_APP)
    assert_failed_with_reason(s.ping(timeout=60))
    wait_for(lambda: "No module named 'nonexistent_module_xyz'" in log_text(), 5,
             what="the traceback in the log")
    s.set_version("v2")
    assert_live(s.ping(timeout=60))
    assert s.get() == "v2"


class Daemon(Uwsgi):
    """A Uwsgi started with --daemonize/--daemonize2 FILE: the launcher exits and
    the master's pid comes from --pidfile; FILE is the log."""

    def __init__(self, tmp_path, option, **kw):
        extra = tuple(kw.pop("extra", ()))
        super().__init__(tmp_path, **kw)
        self.pidfile = self.dir / "master.pid"
        self.log = self.dir / "daemon.log"  # the launcher's own output goes there too
        self.args += [option, str(self.log), "--pidfile", str(self.pidfile), *extra]

    def start(self, wait=True):
        super().start(wait=False)
        assert self.proc.wait(timeout=15) == 0, self.log_text()
        wait_for(lambda: self.pidfile.exists() and self.pidfile.read_text().strip(), 10,
                 what="the pidfile")
        if wait:
            self.wait_serving()
        return self

    @property
    def pid(self):
        return int(self.pidfile.read_text())

    def stop(self):
        if self.proc and self.pidfile.exists():
            pid = self.pid
            kill_tree(pid)
            wait_for(lambda: not pid_alive(pid), 10, what=f"master {pid} to exit")
        if self.proc:
            self.logf.close()


class OnPty(Uwsgi):
    """A Uwsgi whose stdout and stderr are a terminal, copied to the log."""

    def start(self, wait=True):
        master, slave = pty.openpty()
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=slave,
                                     stderr=slave, cwd=self.dir, env=uwsgi_env(**self.env))
        os.close(slave)
        threading.Thread(target=self._copy, args=(master,), daemon=True).start()
        if wait:
            self.wait_serving()
        return self

    def _copy(self, fd):
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            try:
                self.logf.write(data)
                self.logf.flush()
            except ValueError:  # stopped: the log is closed
                break
        os.close(fd)


class OnSlowPipe(Uwsgi):
    """A Uwsgi whose stdout and stderr are a pipe that the test reads like a log
    collector that falls behind (journald or `docker logs` under load): when
    asked, it fills the pipe and stops reading for PAUSE s."""

    PAUSE = 2.5

    def start(self, wait=True):
        r, w = os.pipe()
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=w, stderr=w,
                                     cwd=self.dir, env=uwsgi_env(**self.env))
        # our own open file description of the pipe, so O_NONBLOCK stays ours
        self.filler = f"/proc/{self.proc.pid}/fd/1"
        os.close(w)
        self.stall = threading.Event()
        self.stalled = threading.Event()
        self.done = threading.Event()
        threading.Thread(target=self._copy, args=(r,), daemon=True).start()
        if wait:
            self.wait_serving()
        return self

    def fill(self):
        """Fill the pipe up with a line nobody minds, then stop reading for a while."""
        self.stall.set()
        self.stalled.wait(5)
        fd = os.open(self.filler, os.O_WRONLY | os.O_NONBLOCK)
        fill_pipe(fd)
        os.close(fd)

    def _copy(self, fd):
        while True:
            if self.stall.is_set() and not self.stalled.is_set():
                self.stalled.set()
                time.sleep(self.PAUSE)
            if not select.select([fd], [], [], 0.02)[0]:
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            self.logf.write(data)
            self.logf.flush()
        os.close(fd)
        self.done.set()




def fill_pipe(fd):
    """Write to a non-blocking pipe until not even one byte fits: from then on
    every write to it waits for its reader."""
    for chunk in (b"filler " * 500 + b"\n", b"\n"):
        try:
            while True:
                os.write(fd, chunk)
        except BlockingIOError:
            pass


def kill_pid(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# 1. log files: --logto, --daemonize, --daemonize2 -----------------------------

def test_logto_keeps_fd2_a_seekable_file(servers):
    """uWSGI checks the log's size once a second with lseek(2): a pipe in fd 2
    would log 'Illegal seek' every second and disable --log-maxsize."""
    s = servers(extra=("--logto", "PLACEHOLDER"), start=False)
    logfile = s.dir / "logto.log"
    s.args[s.args.index("PLACEHOLDER")] = str(logfile)
    s.start()
    text = lambda: logfile.read_text(errors="replace")  # noqa: E731
    time.sleep(1.3)  # at least one size check by the master
    break_then_fix(s, text)
    for pid in [s.pid, *descendants(s.pid)]:
        assert os.readlink(f"/proc/{pid}/fd/2") == str(logfile), pid
    assert "Illegal seek" not in text()


@pytest.mark.parametrize("option", ["--daemonize", "--daemonize2"])
def test_daemonize(servers, option):
    """--daemonize2 forks after the plugin is up: the child that becomes the
    master must keep the plugin's sockets."""
    s = servers(Daemon, option=option)
    assert s.proc.returncode == 0 and pid_alive(s.pid)
    time.sleep(1.3)  # a log size check by the master (see test_logto...)
    s.set_version("v1b")
    assert_live(s.ping(timeout=60))
    assert s.get() == "v1b"
    break_then_fix(s, s.log_text)
    assert "Illegal seek" not in s.log_text()


# 2. the log master: --log-master, --logger, --log-encoder, --threaded-logger --

@functools.lru_cache(maxsize=None)
def file_logger_args():
    """What loads uWSGI's `file` logger (Debian: the logfile plugin; pip: built
    in), or None when this uWSGI has none."""
    for extra in ([], ["--plugin", "logfile"]):
        r = subprocess.run([UWSGI, *extra, "--logger-list"], capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL, env=uwsgi_env())
        out = r.stdout + r.stderr
        listed = out.split("uWSGI loaded loggers ***")[-1].split("--- end of loggers list")[0]
        if "UNABLE to load" not in out and "file" in listed.split():
            return extra
    return None


@pytest.mark.parametrize("mode,lazy,threaded,logger", [
    ("graceful", False, False, None),
    ("graceful", False, True, "file"),
    ("workers", True, False, "file"),
    ("workers", True, True, None),
], ids=["graceful", "graceful-threaded-file", "lazy-file", "lazy-threaded"])
def test_log_master_encoder_sees_each_line(servers, mode, lazy, threaded, logger):
    """With --log-master (and --logger, --threaded-logger) every write is one
    message to the loggers and encoders: each line the app prints while it
    loads gets its own prefix, in the master (graceful) or each worker (lazy)."""
    extra = ["--log-master", "--log-encoder", "prefix NRPFX|"]
    if threaded:
        extra.append("--threaded-logger")
    if logger:
        if file_logger_args() is None:
            pytest.skip(f"{UWSGI} has no `file` logger (uwsgi --logger-list)")
        extra += [*file_logger_args(), "--logger", "file:PLACEHOLDER"]
    s = servers(mode=mode, lazy=lazy, extra=extra, app=chatty("v1"), start=False)
    # one CPU, batch scheduling: nothing preempts the app while it prints, so a
    # reader of its stderr sees many lines at once (as it may on a busy machine)
    s.args[:0] = ["taskset", "-c", str(min(os.sched_getaffinity(0))), "chrt", "--batch", "0"]
    logfile = s.log
    if logger:
        logfile = s.dir / "logger.log"
        s.args[s.args.index("file:PLACEHOLDER")] = f"file:{logfile}"
    s.start()
    text = lambda: logfile.read_text(errors="replace")  # noqa: E731
    # atomically: a lazy worker may still be reading app.py when start() returns
    atomic_write(s.app, chatty("v2"))
    assert_live(s.ping(timeout=60))
    loads = 2 if not lazy else 4  # at start and after the reload, in each process loading it
    want = {f"NRPFX|app-line-{i}": loads for i in range(CHATTY_LINES)}

    def prefixed():
        got = {}
        for line in text().splitlines():
            if line in want:
                got[line] = got.get(line, 0) + 1
        return got == want
    wait_for(prefixed, 5, what=f"{loads} of each app line, prefixed, in {logfile}")
    assert not [line for line in text().splitlines()
                if "app-line" in line and not line.startswith("NRPFX|")]
    break_then_fix(s, text)


# 3. rotation and reopening -------------------------------------------------------

def test_log_maxsize_rotates(servers):
    s = servers(extra=("--logto", "PLACEHOLDER", "--log-maxsize", "1000"), start=False,
             app=chatty("v1"))
    logfile = s.dir / "rot.log"
    s.args[s.args.index("PLACEHOLDER")] = str(logfile)
    s.start()
    rotated = lambda: [p for p in s.dir.iterdir() if p.name.startswith("rot.log.")]  # noqa: E731
    wait_for(rotated, 5, what="a rotated log file")
    assert "Illegal seek" not in "".join(p.read_text(errors="replace") for p in rotated())
    break_then_fix(s, lambda: logfile.read_text(errors="replace"))


def test_touch_logreopen(servers):
    """After the log is moved away and reopened, the next graceful reload and
    its reason go to the new file (never back to the old one)."""
    s = servers(extra=("--logto", "PLACEHOLDER", "--touch-logreopen", "TRIGGER"), start=False)
    logfile, trigger = s.dir / "app.log", s.dir / "reopen.trigger"
    trigger.write_text("")
    s.args[s.args.index("PLACEHOLDER")] = str(logfile)
    s.args[s.args.index("TRIGGER")] = str(trigger)
    s.start()
    old = s.dir / "app.log.old"
    os.rename(logfile, old)
    future = time.time() + 10
    os.utime(trigger, (future, future))
    wait_for(logfile.exists, 5, what="the log reopened")
    old_size = old.stat().st_size
    text = lambda: logfile.read_text(errors="replace")  # noqa: E731
    break_then_fix(s, text)
    # the log master writes a moment after the reply
    wait_for(lambda: "netreload: generation 1 FAILED" in text()
             and "netreload: generation 2 live" in text(), 5, what="the reloads in the new log")
    grown = old.read_text(errors="replace")[old_size:]
    assert "netreload" not in grown and "Traceback" not in grown, grown


# 4. nothing lost at exit -----------------------------------------------------------

def test_shutdown_lines_reach_a_slow_log_reader(servers):
    """uWSGI writes its last lines, then exits: with the log reader behind, they
    must still arrive (a blocking stderr makes uWSGI wait, as without netreload)."""
    s = servers(OnSlowPipe)
    s.fill()
    os.kill(s.pid, signal.SIGINT)
    s.proc.wait(timeout=20)
    assert s.done.wait(10)
    text = s.log_text()
    assert "goodbye to uWSGI" in text, text[-500:]


# The app fills the real log pipe (its stdout) while the reader is stalled, then
# prints and ends, all while it loads.
ENDING_APP = "import os\n" + inspect.getsource(fill_pipe) + '''
import sys, time
open("stall", "w").close()
while not os.path.exists("stalled"):
    time.sleep(0.01)
fd = os.open("/proc/self/fd/1", os.O_WRONLY | os.O_NONBLOCK)
fill_pipe(fd)
os.close(fd)
for i in range(3):
    print("loading-marker-%d" % i, file=sys.stderr)
END
'''


class Stalling(OnSlowPipe):
    """OnSlowPipe where the app asks for the stall (see ENDING_APP)."""

    def start(self, wait=False):
        super().start(wait=False)
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def _watch(self):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (self.dir / "stall").exists():
            time.sleep(0.01)
        self.stall.set()
        self.stalled.wait(5)
        (self.dir / "stalled").write_text("")


@pytest.mark.parametrize("end", ["sys.exit(3)", "import ctypes; ctypes.string_at(0)"],
                         ids=["sys.exit", "segfault"])
def test_lines_printed_while_loading_survive_the_end(servers, end):
    """The master exits or crashes while it imports the app, with the log reader
    behind: what the app printed still arrives, before uWSGI's last words."""
    s = servers(Stalling, app=ENDING_APP.replace("END\n", end + "\n"))
    s.proc.wait(timeout=20)
    assert s.done.wait(10)
    text = s.log_text()
    for i in range(3):
        assert f"loading-marker-{i}\n" in text, text[-2000:]
    if "ctypes" in end:
        assert text.index("loading-marker-2") < text.index("Segmentation Fault"), text[-2000:]


# 5. processes that inherit stderr ---------------------------------------------

def test_stderr_stays_a_terminal(servers):
    """A worker's stderr is the terminal uWSGI was started on, not a pipe of ours."""
    app = "import os\n" + APP_TEMPLATE.replace("VERSION.encode()",
                                                "str(os.isatty(2)).encode()")
    s = servers(OnPty, app=app.format(version="v1"))
    assert s.get() == "True"


DAEMON = '''\
import os, sys, time
if os.fork():
    sys.exit(0)
os.setsid()
with open(sys.argv[1], "w") as f:
    f.write(str(os.getpid()))
n = 0
while True:
    n += 1
    print("tick %d %d" % (os.getpid(), n), file=sys.stderr, flush=True)
    time.sleep(0.05)
'''


def test_smart_attach_daemon_output_survives_reload(servers, tmp_path):
    """A --smart-attach-daemon outlives graceful reloads; its stderr must stay
    the log, not a pipe that dies with the first master."""
    (tmp_path / "daemon.py").write_text(DAEMON)
    pidfile = tmp_path / "daemon.pid"
    s = servers(extra=("--smart-attach-daemon",
                    f"{pidfile} {sys.executable} {tmp_path / 'daemon.py'} {pidfile}"))
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text(), 10, what="the daemon")
        dpid = int(pidfile.read_text())
        ticks = lambda: len(re.findall(rf"^tick {dpid} \d+$", s.log_text(), re.M))  # noqa: E731
        wait_for(lambda: ticks() >= 3, 5, what="the daemon's output")
        s.set_version("v2")
        assert_live(s.ping(timeout=60))
        after = ticks()
        time.sleep(0.5)
        assert pid_alive(dpid), "the daemon died"
        assert ticks() >= after + 5, s.log_text()[-1500:]
    finally:
        if pidfile.exists() and pidfile.read_text():
            kill_pid(int(pidfile.read_text()))


TICKER = """\
import os, sys, time
n = 0
while True:
    n += 1
    print("bg %d %d" % (os.getpid(), n), file=sys.stderr, flush=True)
    time.sleep(0.05)
"""

BG_APP = '''\
import os, subprocess
if not os.path.exists("bg.pid"):  # the first load only
    p = subprocess.Popen([{python!r}, "-c", {ticker!r}])
    open("bg.pid", "w").write(str(p.pid))
''' + APP_TEMPLATE


def test_background_process_started_at_import_keeps_its_output(servers):
    """A process the app starts while it loads keeps stderr after loading
    ends, and after the master that started it re-execs."""
    s = servers(app=BG_APP.format(python=sys.executable, ticker=TICKER, version="v1"))
    bgfile = s.dir / "bg.pid"
    wait_for(lambda: bgfile.exists() and bgfile.read_text(), 5, what="bg.pid")
    bg = int(bgfile.read_text())
    try:
        ticks = lambda: len(re.findall(rf"^bg {bg} \d+$", s.log_text(), re.M))  # noqa: E731
        wait_for(lambda: ticks() >= 3, 5, what="the background process's output")
        atomic_write(s.app, BG_APP.format(python=sys.executable, ticker=TICKER, version="v2"))
        assert_live(s.ping(timeout=60))
        after = ticks()
        wait_for(lambda: ticks() >= after + 5, 5, what="its output after the reload")
        assert pid_alive(bg)
    finally:
        kill_pid(bg)


def test_master_fifo_refork(servers):
    """The master FIFO `f` forks a copy of the master that re-execs beside the
    old one: the copy must live on, and take the port over once the old one is gone."""
    s = servers(extra=("--master-fifo", "PLACEHOLDER"), start=False)
    fifo = s.dir / "master.fifo"
    s.args[s.args.index("PLACEHOLDER")] = str(fifo)
    s.start()
    old = s.pid
    with open(fifo, "w") as f:
        f.write("f")
    m = wait_for(lambda: re.search(r"new master copy spawned with pid (\d+)", s.log_text()), 10,
                 what="the master copy")
    copy = int(m.group(1))
    try:
        wait_for(lambda: f"(RE)spawned uWSGI master process (pid: {copy})" in s.log_text()
                 or not pid_alive(copy), 15, what="the copy to start")
        assert pid_alive(copy), s.log_text()[-2000:]
        s.set_version("v2")
        assert_live(s.ping(timeout=60))  # the old master still has the port
        os.kill(old, signal.SIGINT)
        wait_for(lambda: not pid_alive(old), 15, what="the old master to exit")
        s.proc.wait(timeout=5)
        wait_for(s.accepts_tcp, 5, what="the copy to listen")
        s.set_version("v3")
        assert_live(s.ping(timeout=60))
        assert s.get() == "v3"
        assert pid_alive(copy)
    finally:
        kill_tree(copy)


def test_os_system_in_app_does_not_inherit_the_port(servers):
    """A background command the app starts (glibc's system() uses posix_spawn,
    which runs no fork handlers) must not hold netreload's listening socket."""
    app = ("import os\nos.system('sleep 30 </dev/null >/dev/null 2>&1 & echo $! > bg.pid')\n"
           + APP_TEMPLATE)
    s = servers(app=app.format(version="v1"))
    bgfile = s.dir / "bg.pid"
    wait_for(lambda: bgfile.exists() and bgfile.read_text().strip(), 5, what="bg.pid")
    bg = int(bgfile.read_text())
    try:
        s.stop()
        assert pid_alive(bg)
        with socket.socket() as t:
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind(("127.0.0.1", s.port))  # EADDRINUSE if the background sleep holds it
            t.listen()
    finally:
        kill_pid(bg)
