"""The Debian package, installed for real: `make deb` into a private build dir,
`dpkg -i`, a uWSGI that finds the plugin by itself (a bare `--plugin netreload`,
no --plugins-dir), a reload through /usr/bin/netreload, then `dpkg -r` and
`dpkg --purge` and nothing left behind.

Root only, on Debian, with Debian's uWSGI under test (the package pins
uwsgi-core's ABI); skipped if a netreload package is installed already. The
package is purged at teardown even when the test fails.
"""
import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (APP_TEMPLATE, CLIENT, ROOT, UWSGI, accepts_tcp, atomic_write, free_port, http_get,
                      kill_tree, wait_for)

PACKAGE = "netreload"
INSTALLED_CLIENT = "/usr/bin/netreload"


def project_version():
    """NR_VERSION from client/main.c, where the Makefile takes it from too."""
    m = re.search(r'^#define NR_VERSION "(.*)"$', (ROOT / "client" / "main.c").read_text(), re.M)
    return m.group(1)


def uwsgi_out(*args):
    return subprocess.run([UWSGI, *args], capture_output=True, check=True, timeout=30).stdout


def plugin_dir():
    m = re.search(rb'-DUWSGI_PLUGIN_DIR="\\"([^"\\]+)\\""', uwsgi_out("--cflags"))
    return m.group(1).decode() if m else None


def dpkg_status(package):
    """dpkg's status line for package ('install ok installed', ...), '' if unknown."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True,
                       text=True, timeout=30)
    return r.stdout.strip() if r.returncode == 0 else ""


def dpkg(*args):
    """Run dpkg, waiting up to 2 min for a lock another apt or dpkg holds."""
    deadline = time.monotonic() + 120
    while True:
        r = subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
        if r.returncode == 0 or "lock" not in r.stderr or time.monotonic() > deadline:
            return r
        time.sleep(1)


def purge():
    status = dpkg_status(PACKAGE)
    if status and not status.endswith("not-installed"):
        r = dpkg("--purge", PACKAGE)
        assert r.returncode == 0, r.stdout + r.stderr


def test_one_version():
    """netreload --version, the man page and NEWS.md's first release agree with
    NR_VERSION, the version make deb gives the package."""
    v = project_version()
    out = subprocess.run([str(CLIENT), "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    assert out.startswith(f"netreload {v} "), out
    man = (ROOT / "client" / "netreload.1").read_text()
    assert f'"netreload {v}"' in re.search(r"^\.TH .*$", man, re.M).group(0)
    news = re.search(r"^## (\S+)", (ROOT / "NEWS.md").read_text(), re.M).group(1)
    assert news == v


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """make deb into a private BUILD; the path of the .deb."""
    if os.geteuid() != 0:
        pytest.skip("installs a Debian package: needs root")
    if not shutil.which("dpkg") or not shutil.which("dpkg-query"):
        pytest.skip("not a Debian system: no dpkg")
    abi = "uwsgi-abi-" + hashlib.md5(uwsgi_out("--dot-h")).hexdigest()
    provides = subprocess.run(["dpkg-query", "-W", "-f=${Provides}", "uwsgi-core"],
                              capture_output=True, text=True, timeout=30).stdout
    if abi not in provides:
        pytest.skip(f"the uWSGI under test ({UWSGI}) is not Debian's uwsgi-core: the package "
                    f"would depend on {abi}, which no installed package provides")
    status = dpkg_status(PACKAGE)
    if status and not status.endswith(("not-installed", "config-files")):
        pytest.skip(f"a {PACKAGE} package is installed already ({status}); this test would "
                    f"replace and remove it (dpkg -r {PACKAGE} first)")
    build = tmp_path_factory.mktemp("deb") / "build"
    r = subprocess.run(["make", "-C", str(ROOT), f"BUILD={build}", f"UWSGI={UWSGI}", "deb"],
                       capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    path = build / f"{PACKAGE}_{project_version()}_{arch}.deb"
    assert path.exists(), r.stdout[-2000:]
    return path


@pytest.fixture
def installed(deb):
    """The package installed with dpkg -i; purged at teardown whatever happened."""
    try:
        r = dpkg("-i", str(deb))
        assert r.returncode == 0, r.stdout + r.stderr
        yield deb
    finally:
        purge()


def test_deb_install_reload_remove(installed, tmp_path):
    pdir = plugin_dir()
    plugin = f"{pdir}/netreload_plugin.so"
    files = subprocess.run(["dpkg", "-L", PACKAGE], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    for f in (plugin, INSTALLED_CLIENT, "/usr/share/man/man1/netreload.1.gz",
              "/usr/lib/systemd/user/netreload-watch.service"):
        assert f in files, files
    depends = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", PACKAGE], capture_output=True,
                             text=True, check=True).stdout
    assert "uwsgi-abi-" + hashlib.md5(uwsgi_out("--dot-h")).hexdigest() in depends
    out = subprocess.run([INSTALLED_CLIENT, "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    assert out.startswith(f"netreload {project_version()} "), out

    app = tmp_path / "app.py"
    app.write_text(APP_TEMPLATE.format(version="v1"))
    port, http_port = free_port(), free_port()
    # no plugins dir of any kind: uWSGI must find both plugins in its own
    env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGI_")}
    log = tmp_path / "uwsgi.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [UWSGI, "--plugin", "python3", "--plugin", "netreload", "--netreload-port", str(port),
             "--master", "--processes", "2", "--http-socket", f"127.0.0.1:{http_port}",
             "--wsgi-file", str(app), "--chdir", str(tmp_path), "--max-fd", "1024"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        wait_for(lambda: http_get(http_port) == "v1", 15, what=f"uWSGI to serve (log: {log})")
        wait_for(lambda: accepts_tcp(port), 15, what="netreload to listen")
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert plugin in maps, f"uWSGI did not load {plugin}"
        atomic_write(app, APP_TEMPLATE.format(version="v2"))
        r = subprocess.run([INSTALLED_CLIENT, "ping", f"127.0.0.1:{port}"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr + log.read_text(errors="replace")
        assert "live in" in r.stdout, r.stdout
        assert http_get(http_port) == "v2"
    finally:
        kill_tree(proc.pid)
        proc.wait(timeout=10)

    r = dpkg("-r", PACKAGE)
    assert r.returncode == 0, r.stdout + r.stderr
    for f in (plugin, INSTALLED_CLIENT, "/usr/share/man/man1/netreload.1.gz",
              "/usr/lib/systemd/user/netreload-watch.service"):
        assert not os.path.exists(f), f
    purge()
    assert dpkg_status(PACKAGE) in ("", "unknown ok not-installed"), dpkg_status(PACKAGE)
