"""The ABI guard: a plugin built for one uWSGI build and loaded into another
stops uWSGI at startup with one line naming both builds and the fix, instead of
crashing the master on the first ping (plugin/abi.h).

`make test` makes "another build" out of the uWSGI under test by adding a
define to the flags its `--cflags` reports (the plugin then records a build
option this uWSGI lacks); `make test-compat` also loads the plugin built for
Debian's uWSGI into pip's 2.0.30 and master, the real-world crash.
"""
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD, ROOT, UWSGI, free_port, uwsgi_cmd, uwsgi_env

REFUSED = re.compile(r"^netreload: this plugin was built for uWSGI (\S+) \((\S+), abi [0-9a-f-]+\) "
                     r"but runs in uWSGI (\S+) \((\S+), abi [0-9a-f-]+\), whose internals differ: "
                     r"rebuild it for this one with `make UWSGI=(\S+)`")


def start_with_plugin_from(plugin_dir, tmp_path):
    """uWSGI (the one under test) with netreload taken from plugin_dir; its exit."""
    app = tmp_path / "app.py"
    app.write_text("def application(e, sr):\n    sr('200 OK', [])\n    return [b'x']\n")
    args = uwsgi_cmd(plugin_dir) + ["--plugin", "netreload", "--netreload-port", str(free_port()), "--master",
             "--http-socket", f"127.0.0.1:{free_port()}", "--wsgi-file", str(app)]
    return subprocess.run(args, capture_output=True, text=True, timeout=30, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, env=uwsgi_env())


def assert_refused(r, built_version, built_uwsgi, running_version):
    assert r.returncode == 1, f"exit {r.returncode} (a crash is negative)\n{r.stdout}{r.stderr}"
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.startswith("netreload:")]
    assert len(lines) == 1, r.stdout + r.stderr
    m = REFUSED.match(lines[0])
    assert m, lines[0]
    assert m.group(1) == built_version and m.group(2) == str(built_uwsgi), lines[0]
    assert m.group(3) == running_version, lines[0]
    assert m.group(5) == m.group(4) == str(Path(UWSGI).resolve()), lines[0]
    assert "spawned uWSGI worker" not in r.stdout + r.stderr


def uwsgi_version(path):
    return subprocess.run([path, "--version"], capture_output=True, text=True,
                          timeout=30).stdout.strip()


def build_for_another_uwsgi(tmp_path):
    """(the plugin's build dir, the fake uWSGI it was built for): a "uWSGI" that is
    the one under test, but reports one more build option."""
    fake = tmp_path / "uwsgi-other"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = --cflags ]; then\n'
                    f'  echo "$("{UWSGI}" --cflags) -DNETRELOAD_TEST_OTHER_BUILD"\n'
                    f'else exec "{UWSGI}" "$@"; fi\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    other = tmp_path / "build-other"
    r = subprocess.run(["make", "-C", str(ROOT), f"UWSGI={fake}", f"BUILD={other}",
                        "plugin"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f'#define NR_ABI_UWSGI "{fake}"' in (other / "nr_abi.h").read_text()
    return other, fake


def test_plugin_for_another_build_is_refused(tmp_path):
    other, fake = build_for_another_uwsgi(tmp_path)
    v = uwsgi_version(UWSGI)
    assert_refused(start_with_plugin_from(other, tmp_path), v, fake, v)


def test_a_reexec_checks_again_only_when_a_file_changed(servers, tmp_path):
    """A graceful re-exec of the same uWSGI binary with the same plugin file
    skips the ~8 ms of reading uWSGI's uwsgi.h again; a plugin file replaced
    meanwhile (an upgrade) is checked, and one built for another uWSGI is
    refused at the re-exec as at a cold start."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for so in BUILD.glob("*.so"):
        shutil.copy2(so, plugins / so.name)
    server = servers(start=False)
    server.args = [str(plugins) if a == str(BUILD) else a for a in server.args]
    assert str(plugins) in server.args
    server.start()
    skipped = "build check not repeated"
    for n in (2, 3):
        server.set_version(f"v{n}")
        r = server.ping()
        assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr + server.log_text()
    assert server.count(skipped) == 2, server.log_text()
    # the same plugin, as a new file: checked again, and it passes
    fresh = plugins / "netreload_plugin.so.new"
    shutil.copy2(BUILD / "netreload_plugin.so", fresh)
    os.utime(fresh)  # a new mtime, as an upgrade has
    os.replace(fresh, plugins / "netreload_plugin.so")
    server.set_version("v4")
    r = server.ping()
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr + server.log_text()
    assert server.count(skipped) == 2, server.log_text()
    # a plugin built for another uWSGI: the re-exec'd master stops, naming the fix
    other, fake = build_for_another_uwsgi(tmp_path)
    shutil.copy2(other / "netreload_plugin.so", fresh)
    os.replace(fresh, plugins / "netreload_plugin.so")
    server.set_version("v5")
    server.ping()  # its master goes away under it
    rc = server.proc.wait(timeout=30)
    assert rc == 1, f"exit {rc}\n{server.log_text()}"
    refused = [l for l in server.log_text().splitlines() if REFUSED.match(l)]
    assert len(refused) == 1 and f"({fake}," in refused[0], server.log_text()


def test_plugin_built_for_this_uwsgi_loads(tmp_path):
    """The guard lets the matching build through (the rest of the suite relies on
    it; this says so by name)."""
    r = subprocess.run([UWSGI, "--plugins-dir", str(BUILD), "--plugin", "netreload", "--help"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                       env=uwsgi_env())
    assert r.returncode == 0 and "--netreload-port" in r.stdout, r.stdout[-500:] + r.stderr


def test_plugin_for_debian_uwsgi_refused_by_another_release(tmp_path):
    debian = Path("/usr/bin/uwsgi")
    plugin = ROOT / "build" / "netreload_plugin.so"
    abi = ROOT / "build" / "nr_abi.h"
    if Path(UWSGI).resolve() == debian.resolve():
        pytest.skip("runs under make test-compat: the uWSGI under test is Debian's own")
    if not (plugin.exists() and abi.exists() and f'"{debian}"' in abi.read_text()):
        pytest.skip("no plugin built for Debian's uWSGI in build/ (make test builds it)")
    assert_refused(start_with_plugin_from(plugin.parent, tmp_path), uwsgi_version(debian), debian,
                   uwsgi_version(UWSGI))
