#!/usr/bin/python3
"""make demo: a real uWSGI with the netreload plugin, one edit, one live reload.

Starts a demo app under uWSGI (2 workers, graceful reloads), edits it the way
an editor saves (temp file + rename), pings netreload and shows that the new
code is served and how long it took, next to how long the app takes to start
from cold. On a terminal it then keeps running until Ctrl-C so you can edit
the app yourself; elsewhere (CI) it stops after the demonstration.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
CLIENT = BUILD / "netreload"

APP = '''\
# The demo app: edit MESSAGE, save, and netreload makes it live.
MESSAGE = {message!r}

def application(env, start_response):
    if env["PATH_INFO"] == "/page":  # the same, as a page that follows the reloads
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [b"<!doctype html><title>netreload demo</title>"
                b'<script src="http://127.0.0.1:{bport}/netreload.js"></script>'
                b"<h1>" + MESSAGE.encode() + b"</h1>"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [MESSAGE.encode() + b"\\n"]
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            return r.read().decode().strip()
    except OSError:
        return None


def save(path, text):
    tmp = path.with_name(f".{path.name}.swp-demo")
    tmp.write_text(text)
    os.replace(tmp, path)


def start(workdir, http, port, log):
    args = ["uwsgi", "--plugin", "python3"]
    if port:
        args += ["--plugins-dir", str(BUILD), "--plugin", "netreload", "--netreload-port", str(port)]
    args += ["--master", "--processes", "2", "--http-socket", f"127.0.0.1:{http}",
            "--wsgi-file", "app.py", "--max-fd", "1024"]
    return subprocess.Popen(args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_serving(http, proc, log_path, timeout=15):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if get(http) is not None:
            return time.monotonic() - t0
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    sys.exit(f"netreload demo: error: uWSGI did not start; see {log_path}\n"
             + Path(log_path).read_text()[-2000:])


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # SIGTERM would be a brutal reload in uWSGI 2.0
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def sighup_without_netreload(workdir):
    """The old way, on a second uWSGI without the plugin: save, SIGHUP, poll."""
    print("== the old way, for comparison: uWSGI's own SIGHUP reload (no netreload loaded)")
    plain = workdir / "plain"
    plain.mkdir()
    app = plain / "app.py"
    app.write_text(APP.format(message="plain 1", bport=0))
    http = free_port()
    with open(plain / "uwsgi.log", "wb") as log:
        proc = start(plain, http, None, log)
        try:
            wait_serving(http, proc, plain / "uwsgi.log")
            time.sleep(0.5)  # uWSGI drops a SIGHUP that reaches a worker still starting
            save(app, APP.format(message="plain 2", bport=0))
            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGHUP)
            while get(http) != "plain 2" and time.monotonic() - t0 < 70:
                time.sleep(0.002)
            print(f"   SIGHUP: new code served after {(time.monotonic() - t0) * 1000:.0f} ms")
        finally:
            stop(proc)


def follow(workdir, app, http, port, bport, proc, log_path):
    """Until Ctrl-C: a watcher reloads on every save, and a page follows it."""
    # in our process group: a Ctrl-C or a hang-up of the terminal ends it too
    watch = subprocess.Popen([str(CLIENT), "watch", "--to", f"127.0.0.1:{port}", "--browser",
                              str(bport), str(workdir)])
    time.sleep(0.3)
    print(f"\n== running until Ctrl-C, with `netreload watch --browser {bport}`.\n"
          f"   Open http://127.0.0.1:{http}/page in a browser, then edit MESSAGE in {app}:\n"
          f"   the page shows the new text by itself once it is live (a typo shows the error).\n"
          f"   (uWSGI log: {log_path})")
    try:
        while proc.poll() is None and watch.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print()
    finally:
        if watch.poll() is None:
            watch.send_signal(signal.SIGINT)
            try:
                watch.wait(timeout=5)
            except subprocess.TimeoutExpired:
                watch.kill()
                watch.wait()


def main():
    workdir = Path(tempfile.mkdtemp(prefix="netreload-demo-"))
    app = workdir / "app.py"
    http, port, bport = free_port(), free_port(), free_port()
    app.write_text(APP.format(message="Hello from version 1", bport=bport))
    log_path = workdir / "uwsgi.log"
    log = open(log_path, "wb")

    print(f"== starting uWSGI with the netreload plugin in {workdir}")
    proc = start(workdir, http, port, log)
    try:
        cold = wait_serving(http, proc, log_path)
        print(f"   cold start to first response: {cold * 1000:.0f} ms")
        print(f"   http://127.0.0.1:{http}/ says: {get(http)!r}")

        print("== editing app.py (temp file + rename, like an editor) and pinging netreload")
        save(app, APP.format(message="Hello from version 2", bport=bport))
        r = subprocess.run([str(CLIENT), "ping", f"127.0.0.1:{port}"], capture_output=True,
                           text=True, timeout=60)
        print("   $ netreload ping 127.0.0.1:%d\n   %s" % (port, (r.stdout + r.stderr).strip()))
        body = get(http)
        print(f"   http://127.0.0.1:{http}/ now says: {body!r}")
        if r.returncode != 0 or body != "Hello from version 2":
            sys.exit(f"netreload demo: error: the reload did not go live; see {log_path}")

        sighup_without_netreload(workdir)

        if sys.stdin.isatty() and sys.stdout.isatty():
            follow(workdir, app, http, port, bport, proc, log_path)
    finally:
        stop(proc)
        log.close()
    print("== demo finished")


if __name__ == "__main__":
    main()
