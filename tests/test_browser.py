"""`netreload watch --browser`: pages follow the reloads, in a real browser.

Headless Chromium (Debian's chromium, chromium-driver, python3-selenium),
driven by Selenium, loads a page from a private uWSGI with the plugin; the
page includes the watcher's /netreload.js. A save must update the page by
itself once the new code is live; a broken save must show the server's
reason in an overlay, and the fix must clear it; a stylesheet save must
restyle the page without reloading it or uWSGI. The HTTP side is also fed
garbage, oversized headers and more connections than it takes, after which
the watcher must still reload. Tests needing the browser skip, saying why,
when it is missing.
"""
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import atomic_write, free_port, kill_tree, pid_alive, run_client, wait_for
from test_watch import Watcher, gen

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

APP = '''\
import os
VERSION = {version!r}
{extra}
HERE = os.path.dirname(os.path.abspath(__file__))

def application(env, start_response):
    if env["PATH_INFO"] == "/style.css":
        with open(os.path.join(HERE, "style.css"), "rb") as f:
            body = f.read()
        start_response("200 OK", [("Content-Type", "text/css"), ("Cache-Control", "no-store")])
        return [body]
    page = ('<!doctype html><html><head><title>t</title>'
            '<link rel="stylesheet" href="/style.css">'
            '<script src="http://127.0.0.1:{bport}/netreload.js"></script>'
            '</head><body><h1 id="v">' + VERSION + '</h1></body></html>')
    start_response("200 OK", [("Content-Type", "text/html")])
    return [page.encode()]
'''

BLUE, RED = "rgb(0, 0, 255)", "rgb(255, 0, 0)"


def css(color):
    return f"h1 {{ color: {color}; }}\n"


# ---- the browser --------------------------------------------------------------

def browser_missing():
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM or not CHROMEDRIVER:
        return "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium.webdriver  # noqa: F401
    except ImportError:
        return "python3-selenium is not installed (apt-get install python3-selenium)"
    return None


@pytest.fixture(scope="module")
def chrome(tmp_path_factory):
    """One headless Chromium for the module, with a fresh profile; killed by pid."""
    why = browser_missing()
    if why:
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage",
              f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}"):
        opts.add_argument(a)
    service = Service(CHROMEDRIVER, log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        pid = service.process.pid if service.process else None
        try:
            driver.quit()
        finally:
            if pid and pid_alive(pid):
                kill_tree(pid)


# ---- the setup: uWSGI serving a page, a watcher with --browser -----------------

class Site:
    """A uWSGI serving the page from dir and a watcher of dir with --browser."""

    def __init__(self, tmp_path, servers, watchers, ntargets=1, extra_watch=()):
        self.bport = free_port()
        self.servers = []
        for i in range(ntargets):
            s = servers(start=False)
            s.app.write_text(APP.format(version="v1", extra="", bport=self.bport))
            (s.dir / "style.css").write_text(css(BLUE))
            s.start()
            self.servers.append(s)
        self.server = self.servers[0]
        self.dir = self.server.dir
        args = [a for s in self.servers for a in ("--to", s.target)]
        self.watch = watchers(*args, "--browser", f"127.0.0.1:{self.bport}", *extra_watch,
                              self.dir)
        wait_for(lambda: "pages follow" in self.watch.stderr() or self.watch.proc.poll() is not None,
                 10, what="the watcher's --browser line")
        assert self.watch.proc.poll() is None, self.watch.stderr()

    def save(self, version, extra="", server=None):
        s = server or self.server
        atomic_write(s.app, APP.format(version=version, extra=extra, bport=self.bport))

    def url(self, server=None):
        return f"http://127.0.0.1:{(server or self.server).http_port}/"


@pytest.fixture
def watchers(tmp_path):
    started = []

    def make(*args):
        w = Watcher(tmp_path, len(started), args, cwd=tmp_path).started()
        started.append(w)
        return w

    yield make
    for w in started:
        w.stop()


@pytest.fixture
def site(tmp_path, servers, watchers):
    return Site(tmp_path, servers, watchers)


def open_page(driver, site, server=None):
    """Load the page and wait until its script follows the watcher (it stores the
    watcher's sequence number once it got the stream's hello); mark the window,
    so a reload shows as the mark gone."""
    driver.get(site.url(server))
    wait_for(lambda: driver.execute_script("return sessionStorage.getItem('netreload-seq')"),
             15, what="the page's script to connect to /events")
    driver.execute_script("window.__mark = 'still here'")


def text(driver):
    try:
        return driver.find_element("id", "v").text
    except Exception:
        return None


def mark(driver):
    return driver.execute_script("return window.__mark || null")


def overlay(driver):
    return driver.execute_script(
        "var o = document.getElementById('netreload-overlay'); return o ? o.textContent : null")


def color(driver):
    return driver.execute_script(
        "return getComputedStyle(document.getElementById('v')).color")


# ---- in the browser -----------------------------------------------------------

def test_save_updates_the_page_by_itself(chrome, site):
    open_page(chrome, site)
    assert text(chrome) == "v1"
    site.save("v2")
    wait_for(lambda: text(chrome) == "v2", 30, what="the page to show v2 by itself")
    assert mark(chrome) is None  # reloaded, not patched
    assert " live in " in site.watch.stdout()
    # and again: the reloaded page follows too
    chrome.execute_script("window.__mark = 'again'")
    site.save("v3")
    wait_for(lambda: text(chrome) == "v3", 30, what="the page to show v3 by itself")


def test_broken_save_shows_the_reason_and_the_fix_clears_it(chrome, site):
    open_page(chrome, site)
    site.save("v2", extra='raise RuntimeError("broken on purpose 42")')
    got = wait_for(lambda: overlay(chrome), 30, what="the failure overlay")
    assert "RuntimeError: broken on purpose 42" in got
    assert mark(chrome) == "still here" and text(chrome) == "v1"  # no reload to a 500
    site.save("v3")
    wait_for(lambda: text(chrome) == "v3", 30, what="the fixed page")
    assert overlay(chrome) is None


def test_css_save_restyles_without_reloading(chrome, site):
    open_page(chrome, site)
    g0 = gen(site.server)
    workers = sorted(site.server.worker_pids())
    assert color(chrome) == BLUE
    atomic_write(site.dir / "style.css", css(RED))
    wait_for(lambda: color(chrome) == RED, 30, what="the page to turn red")
    assert mark(chrome) == "still here"  # the same page: restyled, not reloaded
    assert "style.css" in site.watch.stdout() and "restyled" in site.watch.stdout()
    # uWSGI was not reloaded: the next code save is the first reload
    assert sorted(site.server.worker_pids()) == workers
    site.save("v2")
    wait_for(lambda: text(chrome) == "v2", 30, what="the page to show v2")
    assert gen(site.server) == g0 + 1
    assert site.watch.lives() == 1


def test_page_waits_for_every_target(chrome, tmp_path, servers, watchers):
    """Two --to targets, the second fails: the first one's live must not reload the
    page; the failure shows. (Events keep their order: a css event seen after both
    answers proves no live event came before it.)"""
    # the second server runs from another directory than the one watched: no file lists
    site = Site(tmp_path, servers, watchers, ntargets=2, extra_watch=["--no-files"])
    open_page(chrome, site)
    site.save("v2", extra='raise RuntimeError("second is broken")', server=site.servers[1])
    site.save("v2")  # the watched one: both are pinged
    wait_for(lambda: site.watch.lives() >= 1 and " failed after " in site.watch.stdout(), 30,
             what=f"one live and one failed line: {site.watch.stdout()!r}")
    assert "second is broken" in wait_for(lambda: overlay(chrome), 30, what="the overlay")
    atomic_write(site.dir / "style.css", css(RED))
    wait_for(lambda: color(chrome) == RED, 30, what="the page to turn red")
    assert mark(chrome) == "still here" and text(chrome) == "v1"
    # both fixed: now the page reloads
    site.save("v3", server=site.servers[1])
    site.save("v3")
    wait_for(lambda: text(chrome) == "v3", 30, what="the page to show v3")
    assert overlay(chrome) is None


# ---- hostile HTTP (no browser needed) ----------------------------------------

def exchange(port, data, timeout=10.0):
    """Send data, read the answer until the watcher closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


def status(reply):
    m = re.match(r"HTTP/1\.1 (\d{3}) ", reply)
    return int(m.group(1)) if m else reply[:80]


def headers(reply):
    return reply.split("\r\n\r\n", 1)[0]


def hello(port):
    """The event stream's head and first event ("" if the connection was refused)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        buf = b""
        try:
            s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            while b"event: hello" not in buf or not buf.endswith(b"\n\n"):
                b = s.recv(4096)
                if not b:
                    break
                buf += b
        except (ConnectionResetError, BrokenPipeError):
            return ""
    return buf.decode()


def test_http_answers_and_headers(site):
    p = site.bport
    js = exchange(p, b"GET /netreload.js HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(js) == 200 and "EventSource" in js
    assert "Access-Control-Allow-Origin" not in headers(js)
    ev = hello(p)
    assert ev.startswith("HTTP/1.1 200 OK") and "event: hello" in ev
    assert "Content-Type: text/event-stream" in headers(ev)
    assert "Access-Control-Allow-Origin: *" in headers(ev)
    assert status(exchange(p, b"GET /nothing HTTP/1.1\r\n\r\n")) == 404


def test_hostile_http_gets_errors_and_the_watcher_still_reloads(site):
    p, server = site.bport, site.server
    assert status(exchange(p, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")) == 400
    assert status(exchange(p, b"GET / HTTP/9.9\r\n\r\n")) == 400
    assert status(exchange(p, b"GET /events\r\n\r\n")) == 400
    assert status(exchange(p, b"GET /ev\x00ents HTTP/1.1\r\n\r\n")) == 400
    assert status(exchange(p, b"POST /events HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")) == 405
    big = b"GET /events HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    reply = exchange(p, big)
    assert status(reply) == 431, reply[:200]

    # 40 connections that say nothing: 32 are held (then timed out), 8 refused at once
    held = [socket.create_connection(("127.0.0.1", p), timeout=15) for _ in range(40)]
    try:
        refused = 0
        for s in held[32:]:
            got = s.recv(4096).decode(errors="replace")
            refused += status(got) == 503
        assert refused == 8
        # a reload goes live meanwhile
        server.set_version("v2")
        site.watch.wait_lives(1)
        assert server.get() == "v2"
        # the held ones get 408 once their request time is up
        got = held[0].recv(4096).decode(errors="replace")
        assert status(got) == 408, got[:200]
    finally:
        for s in held:
            s.close()
    # room again: the stream answers, and the watcher still reloads
    wait_for(lambda: "event: hello" in hello(p), 15, what="a stream after the flood")
    server.set_version("v3")
    site.watch.wait_lives(2)
    assert server.get() == "v3"
    assert site.watch.proc.poll() is None


def test_browser_option_errors(tmp_path):
    r = run_client("watch", "--to", "127.0.0.1:9", "--browser", "nope:port", str(tmp_path))
    assert r.returncode == 2 and "--browser" in r.stderr
    r = run_client("watch", "--to", "127.0.0.1:9", "--browser-static", "*.css", str(tmp_path))
    assert r.returncode == 2 and "needs --browser" in r.stderr
    # a port in use: said at once, not at the first page
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_client("watch", "--to", "127.0.0.1:9", "--browser", str(port), str(tmp_path))
    assert r.returncode == 2 and "cannot listen on 127.0.0.1:" in r.stderr, r.stderr
