"""examples/django runs as shipped and each kind of Django edit goes live with the
reload examples/django/README.md says it needs.

Every test copies the example project into its temp dir, rewrites only the ports
and the plugin dir in its uwsgi.ini, and runs the real uWSGI with the real plugin
(from that ini: the fast recipe, `netreload-mode = workers`, Django imported in
the master). No timing is asserted here; bench/django.py measures.
"""
import json
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import (BUILD, CLIENT, ROOT, UWSGI, atomic_write, children_of, free_port, http_get,
                      kill_tree, run_client, uwsgi_env, wait_for)

EXAMPLE = ROOT / "examples" / "django"
PYTHON = "/usr/bin/python3"  # Debian's, with python3-django (the one uWSGI's plugin embeds)

pytestmark = pytest.mark.skipif(
    subprocess.run([PYTHON, "-c", "import django"], capture_output=True).returncode != 0,
    reason="Django is not installed for /usr/bin/python3 (apt-get install python3-django)")


class Site:
    """A copy of examples/django served by uWSGI from its own uwsgi.ini."""

    def __init__(self, tmp_path, extra=()):
        self.dir = tmp_path / "site"
        shutil.copytree(EXAMPLE, self.dir, ignore=shutil.ignore_patterns("__pycache__"))
        self.port, self.http_port = free_port(), free_port()
        self.target = f"127.0.0.1:{self.port}"
        ini = self.dir / "uwsgi.ini"
        text = ini.read_text()
        for old, new in (("plugins-dir = %d../../build", f"plugins-dir = {BUILD}"),
                         ("netreload-port = 9001", f"netreload-port = {self.port}"),
                         ("http-socket = 127.0.0.1:8000",
                          f"http-socket = 127.0.0.1:{self.http_port}")):
            assert old in text, f"{old!r} is no longer in examples/django/uwsgi.ini"
            text = text.replace(old, new)
        ini.write_text(text)
        self.log = tmp_path / "uwsgi.log"
        logf = open(self.log, "wb")
        self.proc = subprocess.Popen([UWSGI, "--ini", str(ini), *extra], cwd=tmp_path,
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, env=uwsgi_env())
        logf.close()

    def wait_serving(self):
        wait_for(lambda: self.get() is not None and self.get().startswith("<!doctype"), 30,
                 what=f"the Django example to serve (log: {self.log})")
        wait_for(self.all_workers_up, 15, what="netreload to answer with every worker up")

    def all_workers_up(self):
        r = run_client("status", "--json", self.target, timeout=10)
        if r.returncode != 0:
            return False
        st = json.loads(r.stdout.strip().splitlines()[-1])
        return st["workers_live"] == st["workers_total"] and st["apps"] >= 1

    def get(self):
        return http_get(self.http_port, "/", timeout=5)

    def field(self, name, body=None):
        """The text of `<p>name: ...</p>` (or the <h1>) on the page served now."""
        body = self.get() if body is None else body
        assert body is not None and body.startswith("<!doctype"), body[:2000] if body else body
        if name == "h1":
            return re.search(r"<h1>(.*)</h1>", body).group(1)
        return re.search(rf"<p>{name}: (.*)</p>", body).group(1)

    def worker_pids_serving(self, want=2, tries=200):
        """Pids of the workers seen serving, GETting until `want` were seen (bounded)."""
        seen = set()
        for _ in range(tries):
            m = re.search(r"served by worker (\d+)", self.get() or "")
            if m:
                seen.add(int(m.group(1)))
            if len(seen) >= want:
                break
        return seen

    def edit(self, rel, old, new):
        path = self.dir / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        atomic_write(path, text.replace(old, new))

    def ping(self, *args):
        return run_client("ping", "--json", *args, self.target, timeout=60)

    def log_text(self):
        return self.log.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture
def site_factory(tmp_path):
    sites = []

    def make(extra=()):
        d = tmp_path / f"s{len(sites)}"
        d.mkdir()
        s = Site(d, extra)
        sites.append(s)
        s.wait_serving()
        return s

    yield make
    for s in sites:
        s.stop()


@pytest.fixture
def site(site_factory):
    return site_factory()


def live(r):
    """The JSON object of a `netreload ping --json` that went live."""
    assert r.returncode == 0, f"exit {r.returncode}: {r.stdout} {r.stderr}"
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["event"] == "live", info
    return info


def failed(r):
    """The JSON object of a `netreload ping --json` whose reload failed."""
    assert r.returncode == 1, f"exit {r.returncode}: {r.stdout} {r.stderr}"
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["event"] == "failed", info
    return info


def status(site):
    r = run_client("status", "--json", site.target)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_example_serves_settings_module_and_template(site):
    body = site.get()
    assert site.field("h1", body) == "Hello from settings.py"
    assert site.field("motto", body) == "netreload makes saves go live"
    assert site.field("view", body) == "view v1"
    assert site.field("template", body) == "template v1"
    st = status(site)
    assert st["mode"] == "workers" and st["workers_live"] == 2 and st["apps"] == 1, st


def test_view_edit_goes_live_with_a_workers_reload(site):
    master = site.proc.pid
    before = site.worker_pids_serving()
    site.edit("hello/views.py", 'VIEW_VERSION = "view v1"', 'VIEW_VERSION = "view v2"')
    assert live(site.ping())["mode"] == "workers"
    assert site.field("view") == "view v2"
    # a workers reload: new workers, same master (no re-exec)
    assert "workers reload" in site.log_text()
    assert site.proc.pid == master and site.proc.poll() is None
    after = site.worker_pids_serving()
    assert after and not (after & before), (before, after)


def test_module_edit_goes_live_with_a_workers_reload(site):
    site.edit("hello/greeting.py", "netreload makes saves go live", "edited motto")
    live(site.ping())
    assert site.field("motto") == "edited motto"


def test_settings_edit_goes_live_with_a_workers_reload(site):
    """settings.py is read when a worker sets Django up (lazy-apps), not in the
    master, even though Django itself is imported in the master."""
    site.edit("mysite/settings.py", 'GREETING = "Hello from settings.py"',
              'GREETING = "Hello from edited settings"')
    live(site.ping())
    assert site.field("h1") == "Hello from edited settings"
    assert "graceful reload" not in site.log_text()


def test_template_edit_needs_no_reload_with_debug_true(site):
    """Django 3.2 caches templates only when DEBUG is False: with DEBUG = True
    every render reads the file again."""
    workers = set(children_of(site.proc.pid))
    assert site.worker_pids_serving(want=2)  # rendered at least once before the edit
    site.edit("hello/templates/hello/index.html", "template v1", "template v2")
    pages = [site.get() for _ in range(20)]
    assert {site.field("template", p) for p in pages} == {"template v2"}
    # served by the same workers: nothing was reloaded
    assert {int(re.search(r"served by worker (\d+)", p).group(1)) for p in pages} <= workers
    assert status(site)["gen"] == 0


def test_template_edit_needs_a_workers_reload_with_debug_false(site):
    """With DEBUG = False Django 3.2 uses the cached loader: each worker keeps the
    template it rendered first until it is replaced."""
    site.edit("mysite/settings.py", "DEBUG = True", "DEBUG = False")
    live(site.ping())
    cached = site.worker_pids_serving(want=2)  # these workers have rendered (cached) it
    assert cached
    site.edit("hello/templates/hello/index.html", "template v1", "template v2")
    time.sleep(0.3)
    for _ in range(20):
        page = site.get()
        if int(re.search(r"served by worker (\d+)", page).group(1)) in cached:
            assert site.field("template", page) == "template v1"
    live(site.ping())
    assert {site.field("template") for _ in range(10)} == {"template v2"}


def test_syntax_error_in_a_view_fails_the_reload_then_the_fix_goes_live(site):
    """wsgi.py imports the URLconf (and the views) at app load, so a broken view
    fails the reload, with the exception quoted, instead of the next request."""
    views = site.dir / "hello" / "views.py"
    good = views.read_text()
    atomic_write(views, good + "\ndef broken(:\n    pass\n")
    reason = failed(site.ping())["reason"]
    assert "SyntaxError" in reason and "views.py" in reason, reason
    atomic_write(views, good.replace('"view v1"', '"view fixed"'))
    live(site.ping())
    assert site.field("view") == "view fixed"


def test_import_error_in_settings_fails_the_reload(site):
    settings = site.dir / "mysite" / "settings.py"
    good = settings.read_text()
    atomic_write(settings, "import no_such_module_here\n" + good)
    reason = failed(site.ping())["reason"]
    assert "No module named 'no_such_module_here'" in reason and "settings.py" in reason, reason
    atomic_write(settings, good.replace("Hello from settings.py", "settings back"))
    live(site.ping())
    assert site.field("h1") == "settings back"


def test_module_imported_in_the_master_needs_a_graceful_reload(site_factory):
    """A project module listed in shared-import lives in the master: a workers
    reload forks it unchanged; a graceful reload re-execs the master."""
    site = site_factory(extra=["--shared-import", "hello.greeting"])
    site.edit("hello/greeting.py", "netreload makes saves go live", "edited motto")
    live(site.ping())
    assert site.field("motto") == "netreload makes saves go live"  # still the old one
    live(site.ping("-m", "graceful"))
    assert site.field("motto") == "edited motto"


def test_watch_reloads_on_save(site):
    watcher = subprocess.Popen([str(CLIENT), "watch", "--json", "--to", site.target,
                                str(site.dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    events = []
    reader = threading.Thread(target=lambda: events.extend(
        json.loads(line) for line in watcher.stdout if line.startswith("{")), daemon=True)
    reader.start()
    try:
        time.sleep(0.5)  # let it set up its watches
        site.edit("hello/views.py", 'VIEW_VERSION = "view v1"', 'VIEW_VERSION = "view watched"')
        wait_for(lambda: [e for e in list(events) if e.get("event") == "live"], 30,
                 what=f"the watcher to report a live reload (events: {events})")
        assert site.field("view") == "view watched"
    finally:
        watcher.send_signal(signal.SIGINT)
        try:
            watcher.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watcher.kill()
            watcher.wait()
        reader.join(timeout=5)
        err = watcher.stderr.read()
        watcher.stderr.close()
    assert watcher.returncode == 0, err
    (ev,) = [e for e in events if e.get("event") == "live"]
    assert "views.py" in json.dumps(ev), ev


def test_shared_imports_helper_matches_the_ini(tmp_path):
    """uwsgi.ini's Django shared-import list is what shared_imports.py prints, and
    none of those modules makes the master read settings.py."""
    d = tmp_path / "site"
    shutil.copytree(EXAMPLE, d, ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([PYTHON, "shared_imports.py"], cwd=d, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    printed = re.findall(r"^shared-import = (\S+)", r.stdout, re.M)
    assert printed and "not shared" not in r.stdout, r.stdout
    ini = (EXAMPLE / "uwsgi.ini").read_text()
    in_ini = [m for m in re.findall(r"^shared-import = (\S+)", ini, re.M)
              if m not in ("random", "threading")]
    assert in_ini == printed
    # the master imports them with no settings: nothing of the project may load
    code = ("import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]; "
            "from django.conf import settings; "
            "assert not settings.configured and 'mysite.settings' not in sys.modules")
    r = subprocess.run([PYTHON, "-c", code, *printed], cwd=d, capture_output=True, text=True,
                       timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    assert r.returncode == 0, r.stderr
