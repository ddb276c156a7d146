#!/usr/bin/python3
"""Browser benchmark: save -> new text visible in the browser, beside save -> live.

A private uWSGI with the plugin serves a page that includes
`netreload watch --browser`'s /netreload.js; headless Chromium (Selenium)
shows it. Each round saves a new version of the app (temp file + os.replace)
and measures, on this machine's wall clock (the browser runs here too):

    live      t0 = just before the save; the watcher's --json "live" line gives
              first change -> live (ms), so live ~ t0 + ms (the few tenths of a
              ms from save to inotify event count towards the browser's share)
    visible   the reloaded page's first animation frame after its new text
              was parsed (Date.now() in requestAnimationFrame), minus t0
    browser   visible - live: what following the reload in the page adds, split
              by the page's navigation timing into live -> the reload starts
              (netreload's part: the event reaches the page, location.reload()),
              -> the page's first byte from uWSGI, -> the page parsed (its
              stylesheet and script loaded); the raw CSV also has frame_ms

Plus a stylesheet row: save style.css -> the page's computed colour changed
(a requestAnimationFrame loop in the page notices it), no reload at all.

Rows: graceful (default mode), and workers + lazy-apps (the fast recipe).
Needs chromium, chromium-driver and python3-selenium (make bench-browser).
Writes bench/results/browser.csv (raw samples) and browser.md.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib  # bench/ is on sys.path: scripts run from it
from benchlib import fmt, machine, pct

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import uwsgibin  # noqa: E402
from proctools import free_port, kill_tree  # noqa: E402

BUILD = Path(os.environ.get("NETRELOAD_BUILD", ROOT / "build")).resolve()
RESULTS = ROOT / "bench" / "results"

APP = '''\
import os
VERSION = {version!r}
HERE = os.path.dirname(os.path.abspath(__file__))

def application(env, start_response):
    if env["PATH_INFO"] == "/style.css":
        with open(os.path.join(HERE, "style.css"), "rb") as f:
            body = f.read()
        start_response("200 OK", [("Content-Type", "text/css"), ("Cache-Control", "no-store")])
        return [body]
    page = ('<!doctype html><html><head><link rel="stylesheet" href="/style.css">'
            '<script src="http://127.0.0.1:{bport}/netreload.js"></script></head>'
            '<body><h1 id="v">' + VERSION + '</h1><script>'
            'requestAnimationFrame(function () {{ window.__shown = Date.now(); }});'
            'var h = document.getElementById("v"), c0 = getComputedStyle(h).color;'
            '(function loop() {{ if (getComputedStyle(h).color !== c0) '
            '{{ window.__restyled = Date.now(); return; }} requestAnimationFrame(loop); }})();'
            '</script></body></html>')
    start_response("200 OK", [("Content-Type", "text/html")])
    return [page.encode()]
'''
COLORS = ["rgb(0, 0, 255)", "rgb(255, 0, 0)"]


def wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.01)
    raise TimeoutError(what)


def chrome(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    service = Service(shutil.which("chromedriver"), log_output=subprocess.DEVNULL)
    return webdriver.Chrome(service=service, options=opts), service


class Row:
    """uWSGI + watcher + the page open in the browser, for one configuration."""

    def __init__(self, tmp, name, extra):
        self.dir = tmp / name
        self.dir.mkdir()
        self.bport, self.http, self.port = free_port(), free_port(), free_port()
        self.version = 0
        self.write_app()
        (self.dir / "style.css").write_text(f"h1 {{ color: {COLORS[0]}; }}\n")
        self.log = open(self.dir / "uwsgi.log", "wb")
        self.uwsgi = subprocess.Popen(
            uwsgibin.uwsgi_cmd(BUILD, "--master", "--processes", "2", "--http-socket",
                               f"127.0.0.1:{self.http}", "--wsgi-file", str(self.dir / "app.py"),
                               "--chdir", str(self.dir), "--max-fd", "1024", "--plugin",
                               "netreload", "--netreload-port", str(self.port), *extra),
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **uwsgibin.env_vars()})
        self.out = self.dir / "watch.jsonl"
        self._out = open(self.out, "wb")
        self.watch = subprocess.Popen(
            [str(BUILD / "netreload"), "watch", "--json", "--to", f"127.0.0.1:{self.port}",
             "--browser", str(self.bport), str(self.dir)],
            stdout=self._out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def write_app(self):
        tmp = self.dir / f".app.py.tmp{os.getpid()}"  # ignored by the default filter
        tmp.write_text(APP.format(version=f"v{self.version}", bport=self.bport))
        os.replace(tmp, self.dir / "app.py")

    def lives(self):
        return [e for e in map(json.loads, self.out.read_text().splitlines())
                if e.get("event") == "live"]

    def stop(self):
        for p in (self.watch, self.uwsgi):
            if p.poll() is None:
                kill_tree(p.pid)
        self._out.close()
        self.log.close()


def open_page(driver, row):
    driver.get(f"http://127.0.0.1:{row.http}/")
    wait(lambda: driver.execute_script("return sessionStorage.getItem('netreload-seq')"), 15,
         "the page's script to follow the watcher")


def code_round(driver, row):
    row.version += 1
    want, n = f"v{row.version}", len(row.lives())
    t0 = time.time() * 1000
    row.write_app()
    wait(lambda: driver.execute_script(
        "var e = document.getElementById('v'); return e && e.textContent === arguments[0] "
        "&& window.__shown", want), 30, f"the page to show {want}")
    shown = driver.execute_script("return window.__shown")
    nav = driver.execute_script(
        "var n = performance.getEntriesByType('navigation')[0];"
        "return [performance.timeOrigin, n.responseStart, n.domInteractive];")
    wait(lambda: len(row.lives()) > n, 10, "the live line")
    live = row.lives()[-1]["ms"]
    return {"live_ms": live, "visible_ms": shown - t0, "browser_ms": shown - t0 - live,
            "reload_start_ms": nav[0] - t0 - live, "response_ms": nav[1],
            "parsed_ms": nav[2] - nav[1], "frame_ms": shown - nav[0] - nav[2]}


def f5_round(driver, row):
    """The reference: the same page reloaded by hand (no save, no netreload)."""
    driver.execute_script("window.__old = true")
    t0 = time.time() * 1000
    driver.execute_script("setTimeout(function () { location.reload(); }, 0)")
    wait(lambda: driver.execute_script("return !window.__old && window.__shown"), 30,
         "the page to come back")
    shown = driver.execute_script("return window.__shown")
    nav = driver.execute_script(
        "var n = performance.getEntriesByType('navigation')[0];"
        "return [performance.timeOrigin, n.responseStart, n.domInteractive];")
    return {"live_ms": None, "visible_ms": shown - t0, "browser_ms": shown - t0,
            "reload_start_ms": nav[0] - t0, "response_ms": nav[1], "parsed_ms": nav[2] - nav[1],
            "frame_ms": shown - nav[0] - nav[2]}


def css_round(driver, row, i):
    driver.execute_script("window.__restyled = null")
    color = COLORS[(i + 1) % 2]
    t0 = time.time() * 1000
    tmp = row.dir / f".style.css.tmp{os.getpid()}"
    tmp.write_text(f"h1 {{ color: {color}; }}\n")
    os.replace(tmp, row.dir / "style.css")
    done = wait(lambda: driver.execute_script("return window.__restyled"), 30, "the restyle")
    # the loop stops after one change: start it again for the next round
    driver.execute_script(
        "var h = document.getElementById('v'), c0 = getComputedStyle(h).color;"
        "(function loop() { if (getComputedStyle(h).color !== c0) "
        "{ window.__restyled = Date.now(); return; } requestAnimationFrame(loop); })();")
    return {"live_ms": None, "visible_ms": done - t0, "browser_ms": None, "reload_start_ms": None,
            "response_ms": None, "parsed_ms": None, "frame_ms": None}


def summary(samples, key):
    v = [s[key] for s in samples if s[key] is not None]
    if not v:
        return "–", "–"
    return fmt(statistics.median(v)), fmt(pct(v, 90))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--settle", type=float, default=0.5, help="pause between rounds, s")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args()
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        sys.exit("bench/browser.py: needs chromium and chromium-driver (make bench-browser)")
    rows = [("graceful", []), ("workers + lazy-apps", ["--lazy-apps", "--netreload-mode", "workers"])]
    load0 = benchlib.loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="netreload-bench-browser."))
    driver, service = chrome(tmp / "profile")
    results, raw, started = [], [], time.time()
    try:
        for name, extra in rows:
            row = Row(tmp, name.split()[0], extra)
            try:
                wait(lambda: benchlib_get(row.http), 15, "uWSGI to serve")
                open_page(driver, row)
                samples = []
                for i in range(a.rounds):
                    time.sleep(a.settle)
                    samples.append(code_round(driver, row))
                results.append((name, "save .py", samples))
                if name == "graceful":
                    f5 = []
                    for i in range(a.rounds):
                        time.sleep(a.settle)
                        f5.append(f5_round(driver, row))
                    results.append(("reference", "no save: location.reload() by hand", f5))
                css = []
                for i in range(a.rounds):
                    time.sleep(a.settle)
                    css.append(css_round(driver, row, i))
                results.append((name, "save .css", css))
            finally:
                row.stop()
    finally:
        driver.quit()
        if service.process and service.process.poll() is None:
            kill_tree(service.process.pid)
    keys = ("live_ms", "visible_ms", "browser_ms", "reload_start_ms", "response_ms", "parsed_ms",
            "frame_ms")
    for name, what, samples in results:
        for s in samples:
            raw.append([name, what] + ["" if s[k] is None else f"{s[k]:.1f}" for k in keys])
    md = [f"# Browser: save -> new text visible (`bench/browser.py`)\n",
          machine(f"uWSGI {uwsgibin.version()}; Chromium headless "
                  f"({subprocess.run(['chromium', '--version'], capture_output=True, text=True).stdout.strip()})"),
          f"\n{a.rounds} rounds per row, {a.settle} s apart; run took {time.time() - started:.0f} s; "
          f"load average (1/5/15 min) at start {load0}, at end {benchlib.loadavg()}. "
          "Trivial app, 2 workers, one page open. ms, median (p90). \"Visible\": the reloaded "
          "page's first animation frame after its new text was parsed.\n",
          "| mode | save | rounds | save → live | save → visible in the page | browser's share "
          "(visible − live) | of which: live → reload starts (netreload) | reload starts → first byte "
          "| first byte → page parsed |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, what, samples in results:
        cells = [summary(samples, k) for k in keys[:-1]]
        md.append(f"| {name} | {what} | {len(samples)} | " +
                  " | ".join(f"{m} ({p})" if m != "–" else "–" for m, p in cells) + " |")
    md.append("\nThe reference row reloads the same page by hand, with no save: its "
              "\"browser's share\" is what any reload of this page costs in this browser, and its "
              "first column is the time from the call to the navigation's start.")
    md.append("\nA stylesheet save pings no server: there is no `live`, and the page is not "
              "reloaded (the time is to the first frame with the new colour).\n")
    benchlib.write_results(a.out, "browser", ["mode", "save", *keys], raw, "\n".join(md))
    print("\n".join(md))
    shutil.rmtree(tmp, ignore_errors=True)


def benchlib_get(port):
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
