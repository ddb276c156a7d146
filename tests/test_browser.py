"""`netreload watch --browser`: pages follow the reloads, in a real browser.

Headless Chromium (Debian's chromium, chromium-driver, python3-selenium),
driven by Selenium, loads a page from a private uWSGI with the plugin; the
page includes the watcher's /netreload.js. A save must update the page by
itself once the new code is live; a broken save must show the server's
reason in an overlay, and the fix must clear it; a stylesheet save must
restyle the page without reloading it or uWSGI. LiveReload's own
livereload.js (from Debian's python3-livereload) must do the same over the
/livereload WebSocket, and a raw WebSocket client checks the protocol. The
HTTP and WebSocket sides are also fed garbage, oversized headers and frames
and more connections than they take, after which the watcher must still
reload. Tests needing the browser skip, saying why,
when it is missing.
"""
import base64
import hashlib
import json
import os
import re
import struct
import shutil
import socket
import subprocess
import time

import pytest

from conftest import (atomic_write, free_port, kill_tree, pid_alive, run_client, tcp_exchange,
                      wait_for)
from test_watch import Watcher, gen

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
LIVERELOAD_JS = "/usr/lib/python3/dist-packages/livereload/vendors/livereload.js"

APP = '''\
import os
VERSION = {version!r}
{extra}
HERE = os.path.dirname(os.path.abspath(__file__))

def application(env, start_response):
    if env["PATH_INFO"] == "/livereload.js":
        with open(os.path.join(HERE, "livereload.js"), "rb") as f:
            body = f.read()
        start_response("200 OK", [("Content-Type", "text/javascript")])
        return [body]
    if env["PATH_INFO"] == "/style.css" and os.path.exists(os.path.join(HERE, "css-broken.log")):
        start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
        return [b"down"]
    if env["PATH_INFO"] == "/logo.svg":
        with open(os.path.join(HERE, "logo.svg"), "rb") as f:
            body = f.read()
        start_response("200 OK", [("Content-Type", "image/svg+xml")])
        return [body]
    if env["PATH_INFO"] == "/style.css":
        with open(os.path.join(HERE, "style.css"), "rb") as f:
            body = f.read()
        start_response("200 OK", [("Content-Type", "text/css"), ("Cache-Control", "no-store")])
        return [body]
    try:  # a template read at every request, as Django's are under DEBUG
        with open(os.path.join(HERE, "title.txt")) as f:
            title = f.read().strip()
    except OSError:
        title = "none"
    page = ('<!doctype html><html><head><title>t</title>'
            '<link rel="stylesheet" href="/style.css">'
            '{script}'
            '</head><body><h1 id="v">' + VERSION + '</h1><h2 id="t">' + title + '</h2><img id="img" src="/logo.svg"></body></html>')
    start_response("200 OK", [("Content-Type", "text/html")])
    return [page.encode()]
'''

BLUE, RED = "rgb(0, 0, 255)", "rgb(255, 0, 0)"


def css(color):
    return f"h1 {{ color: {color}; }}\n"


def svg(width):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="10">'
            f'<rect width="{width}" height="10" fill="green"/></svg>\n')


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

    def __init__(self, tmp_path, servers, watchers, ntargets=1, extra_watch=(), livereload=False):
        self.bport = free_port()
        if livereload:  # LiveReload's own script, as the extensions inject it
            self.script = f'<script src="/livereload.js?host=127.0.0.1&port={self.bport}"></script>'
        else:
            self.script = f'<script src="http://127.0.0.1:{self.bport}/netreload.js"></script>'

        self.servers = []
        for i in range(ntargets):
            s = servers(start=False)
            s.app.write_text(APP.format(version="v1", extra="", script=self.script))
            (s.dir / "style.css").write_text(css(BLUE))
            (s.dir / "logo.svg").write_text(svg(20))
            if livereload:
                shutil.copy(LIVERELOAD_JS, s.dir / "livereload.js")
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
        atomic_write(s.app, APP.format(version=version, extra=extra, script=self.script))

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


def text(driver, how="id", what="v"):
    """An element's text, or None while the page is between two loads."""
    try:
        return driver.find_element(how, what).text
    except Exception:
        return None


def mark(driver):
    return driver.execute_script("return window.__mark || null")


def overlay(driver):
    return driver.execute_script(
        "var o = document.getElementById('netreload-overlay'); return o ? o.textContent : null")


def color(driver):
    return driver.execute_script(
        "var e = document.getElementById('v'); return e ? getComputedStyle(e).color : null")


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


def test_every_open_page_follows(chrome, site):
    """Two tabs on the page: one save reloads both."""
    open_page(chrome, site)
    first = chrome.current_window_handle
    chrome.switch_to.new_window("tab")
    try:
        open_page(chrome, site)
        second = chrome.current_window_handle
        site.save("v2")
        for handle in (second, first):
            chrome.switch_to.window(handle)
            wait_for(lambda: text(chrome) == "v2", 30, what="each tab to show v2")
            assert mark(chrome) is None
    finally:
        if chrome.current_window_handle != first:
            chrome.close()
        else:
            chrome.switch_to.window(second)
            chrome.close()
        chrome.switch_to.window(first)


def test_broken_save_shows_the_reason_and_the_fix_clears_it(chrome, site):
    open_page(chrome, site)
    # the reason is shown as text, never as markup
    site.save("v2", extra='raise RuntimeError("broken on purpose 42 <b id=xss>bold</b>")')
    got = wait_for(lambda: overlay(chrome), 30, what="the failure overlay")
    assert "RuntimeError: broken on purpose 42 <b id=xss>bold</b>" in got
    assert re.search(r"\(\S*app\.py:3\)", got), got  # where, as the server said it
    assert chrome.execute_script("return document.getElementById('xss')") is None
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


def test_image_save_swaps_the_image_without_reloading(chrome, tmp_path, servers, watchers):
    site = Site(tmp_path, servers, watchers,
                extra_watch=["--browser-static", "*.css", "--browser-static", "*.svg"])
    open_page(chrome, site)
    width = "var i = document.getElementById('img'); return i && i.complete ? i.naturalWidth : 0"
    wait_for(lambda: chrome.execute_script(width) == 20, 15, what="the image")
    g0 = gen(site.server)
    atomic_write(site.dir / "logo.svg", svg(40))
    wait_for(lambda: chrome.execute_script(width) == 40, 30, what="the new image")
    assert mark(chrome) == "still here"
    assert "logo.svg \u2192 1 page restyled" in site.watch.stdout()
    assert gen(site.server) == g0 and site.watch.lives() == 0


def test_a_stylesheet_that_fails_to_load_keeps_the_old_one(chrome, site):
    """A restyle that meets an error (a server in the middle of a reload) must
    not leave the page unstyled: the old stylesheet stays."""
    open_page(chrome, site)
    (site.dir / "css-broken.log").write_text("")  # *.log: ignored by the watcher
    atomic_write(site.dir / "style.css", css(RED))
    links = "return [...document.querySelectorAll('link[rel~=stylesheet]')].map(l => l.href)"
    wait_for(lambda: "restyled" in site.watch.stdout(), 15, what="the restyle event")
    # the new link was added next to the old one; once it failed, one is left
    wait_for(lambda: len(chrome.execute_script(links)) == 1 and
             chrome.execute_script("return performance.getEntriesByType('resource')"
                                   ".some(e => e.name.includes('netreload='))"),
             15, what="the failed stylesheet to settle")
    left = chrome.execute_script(links)
    assert "netreload=" not in left[0], left
    assert color(chrome) == BLUE and mark(chrome) == "still here"


def test_browser_only_file_reloads_the_page_not_uwsgi(chrome, tmp_path, servers, watchers):
    site = Site(tmp_path, servers, watchers, extra_watch=["--browser-only", "*.txt"])
    open_page(chrome, site)
    g0 = gen(site.server)
    workers = sorted(site.server.worker_pids())
    assert text(chrome, "id", "t") == "none"
    atomic_write(site.dir / "title.txt", "hello 42\n")
    wait_for(lambda: text(chrome, "id", "t") == "hello 42", 30,
             what="the page to show the new template text")
    assert mark(chrome) is None  # reloaded
    assert "title.txt → 1 page reloaded" in site.watch.stdout()
    assert sorted(site.server.worker_pids()) == workers
    # the next code save is the first uWSGI reload
    site.save("v2")
    wait_for(lambda: text(chrome) == "v2", 30, what="the page to show v2")
    assert gen(site.server) == g0 + 1


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
    return tcp_exchange(port, data, timeout, shutdown=False)


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
    assert r.returncode == 2 and "need --browser" in r.stderr
    r = run_client("watch", "--to", "127.0.0.1:9", "--browser-only", "*.js", str(tmp_path))
    assert r.returncode == 2 and "need --browser" in r.stderr
    # a port in use: said at once, not at the first page
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_client("watch", "--to", "127.0.0.1:9", "--browser", str(port), str(tmp_path))
    assert r.returncode == 2 and "cannot listen on 127.0.0.1:" in r.stderr, r.stderr


# ---- LiveReload protocol 7 over the WebSocket ---------------------------------

def test_livereload_js_follows_over_the_websocket(chrome, tmp_path, servers, watchers):
    """LiveReload's own livereload.js, unchanged: a save reloads the page once
    live, a stylesheet save restyles it in place."""
    if not os.path.exists(LIVERELOAD_JS):
        pytest.skip(f"no {LIVERELOAD_JS} (apt-get install python3-livereload)")
    site = Site(tmp_path, servers, watchers, livereload=True)
    chrome.get(site.url())
    wait_for(lambda: chrome.execute_script(
        "return !!(window.LiveReload && window.LiveReload.connector && "
        "window.LiveReload.connector.protocol === 7)"), 15,
        what="livereload.js to speak protocol 7 with the watcher")
    chrome.execute_script("window.__mark = 'still here'")
    atomic_write(site.dir / "style.css", css(RED))
    wait_for(lambda: color(chrome) == RED, 30, what="the page to turn red")
    assert mark(chrome) == "still here"
    site.save("v2")
    wait_for(lambda: text(chrome) == "v2", 30, what="the page to show v2 by itself")
    assert mark(chrome) is None


def ws_open(port, key=None, version="13", path="/livereload"):
    """A WebSocket handshake; returns the socket and the response head."""
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    key = key or base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: {version}\r\nOrigin: http://example.test\r\n\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = s.recv(1)  # one byte at a time: frames may follow the head
        if not b:
            break
        head += b
    return s, head.decode(errors="replace")


def ws_frame(payload, op=1, fin=True, mask=True, length=None):
    """A client frame; length overrides the length field (for lies)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | op
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            raise EOFError(f"closed after {buf!r}")
        buf += b
    return buf


def ws_recv(s):
    """One server frame: (opcode, payload). Server frames are never masked."""
    b0, b1 = recv_exact(s, 2)
    assert not b1 & 0x80, "a server frame was masked"
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack("!H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(s, 8))[0]
    return b0 & 0x0f, recv_exact(s, n)


def ws_json(s):
    op, payload = ws_recv(s)
    assert op == 1, (op, payload)
    return json.loads(payload)


def ws_closed_with(s):
    """The close code the watcher sent, then it hangs up."""
    op, payload = ws_recv(s)
    assert op == 8, (op, payload)
    code = struct.unpack("!H", payload[:2])[0]
    assert s.recv(100) == b""
    return code


LR_HELLO = json.dumps({"command": "hello", "protocols": [
    "http://livereload.com/protocols/official-6", "http://livereload.com/protocols/official-7"]})


def test_livereload_protocol_hello_and_reload(site):
    key = base64.b64encode(os.urandom(16)).decode()
    s, head = ws_open(site.bport, key=key)
    with s:
        assert head.startswith("HTTP/1.1 101 "), head
        want = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert f"Sec-WebSocket-Accept: {want}\r\n" in head
        s.sendall(ws_frame(LR_HELLO.encode()))
        hello = ws_json(s)
        assert hello["command"] == "hello"
        assert "http://livereload.com/protocols/official-7" in hello["protocols"]
        s.sendall(ws_frame(b'{"command":"info","plugins":{},"url":"http://x/"}'))
        s.sendall(ws_frame(b"are you there", op=9))
        assert ws_recv(s) == (10, b"are you there")
        # a stylesheet: reload with liveCSS, and uWSGI untouched
        atomic_write(site.dir / "style.css", css(RED))
        msg = ws_json(s)
        assert msg == {"command": "reload", "path": "style.css", "liveCSS": True, "liveImg": True}
        # code: the reload command comes once the new code is live, not before
        site.save("v2")
        msg = ws_json(s)
        assert msg["command"] == "reload" and msg["path"] == "app.py" and msg["liveCSS"] is True
        assert site.watch.lives() == 1 and ">v2<" in site.server.get()
        s.sendall(ws_frame(struct.pack("!H", 1000), op=8))
        assert ws_closed_with(s) == 1000


def test_livereload_hostile_websocket_input(site):
    p = site.bport
    s, head = ws_open(p, key="short")
    s.close()
    assert status(head) == 400, head
    s, head = ws_open(p, version="8")
    s.close()
    assert status(head) == 426 and "Sec-WebSocket-Version: 13" in head, head
    # no Upgrade at all
    assert status(exchange(p, b"GET /livereload HTTP/1.1\r\nHost: x\r\n\r\n")) == 400
    cases = [
        (ws_frame(b"x", mask=False), 1002),                   # unmasked from a client
        (ws_frame(b"", length=1 << 20)[:14], 1009),           # says 1 MB: refused at once
        (ws_frame(b"a" * 5000), 1009),                        # over the frame limit
        (ws_frame(b"\x00\x01", op=2), 1003),                  # binary
        (ws_frame(b'{"command":', fin=False), 1003),          # fragmented
        (ws_frame(b"x", op=3), 1002),                         # reserved opcode
        (ws_frame(b"p" * 126, op=9), 1002),                   # control frame too long
        (ws_frame(b'{"command":"hello","protocols":["v6"]}'), 1003),  # not protocol 7
    ]
    for frame, code in cases:
        s, head = ws_open(p)
        with s:
            assert head.startswith("HTTP/1.1 101 "), head
            try:
                s.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert ws_closed_with(s) == code, frame[:20]
    # garbage JSON is ignored, the connection stays and still gets reloads
    s, head = ws_open(p)
    with s:
        s.sendall(ws_frame(b"{not json") + ws_frame(b'{"command":"nope"}') + ws_frame(LR_HELLO.encode()))
        assert ws_json(s)["command"] == "hello"
        site.server.set_version("v2")
        assert ws_json(s)["command"] == "reload"
        assert site.server.get() == "v2"
    assert site.watch.proc.poll() is None


# ---- the Django example, as its README says to run it --------------------------

def test_django_example_follows(chrome, tmp_path, watchers):
    """examples/django with the watcher its README shows: a view edit reloads the
    page once live, a broken view shows why, a template edit reloads the page
    and not uWSGI (DEBUG is on)."""
    import test_django
    if subprocess.run([test_django.PYTHON, "-c", "import django"],
                      capture_output=True).returncode != 0:
        pytest.skip("Django is not installed (apt-get install python3-django)")
    d = tmp_path / "django"
    d.mkdir()
    site = test_django.Site(d)
    try:
        bport = free_port()
        tpl = site.dir / "hello" / "templates" / "hello" / "index.html"
        assert "http://localhost:35729/netreload.js" in tpl.read_text()
        site.edit("hello/templates/hello/index.html", "localhost:35729", f"127.0.0.1:{bport}")
        site.wait_serving()
        w = watchers("--to", site.target, "--browser", str(bport), "--browser-only",
                     "**/templates/**", site.dir)
        chrome.get(f"http://127.0.0.1:{site.http_port}/")
        wait_for(lambda: chrome.execute_script("return sessionStorage.getItem('netreload-seq')"),
                 15, what="the page's script to follow the watcher")
        body = lambda: text(chrome, "tag name", "body") or ""  # noqa: E731
        chrome.execute_script("window.__mark = 1")
        site.edit("hello/views.py", '"view v1"', '"view v2"')
        wait_for(lambda: "view: view v2" in body(), 30, what="the page to show the new view")
        assert mark(chrome) is None
        g = gen(site)
        chrome.execute_script("window.__mark = 1")
        site.edit("hello/templates/hello/index.html", "template v1", "template v2")
        wait_for(lambda: "template: template v2" in body(), 30, what="the new template")
        assert mark(chrome) is None and gen(site) == g  # the page reloaded, uWSGI did not
        site.edit("hello/views.py", "VIEW_VERSION = ", "VIEW_VERSION = undefined_name + ")
        got = wait_for(lambda: overlay(chrome), 30, what="the failure overlay")
        assert "NameError" in got and "undefined_name" in got, got
        site.edit("hello/views.py", "VIEW_VERSION = undefined_name + ", "VIEW_VERSION = ")
        wait_for(lambda: overlay(chrome) is None and "view: view v2" in body(), 30,
                 what="the fixed page")
        assert w.proc.poll() is None
    finally:
        site.stop()
