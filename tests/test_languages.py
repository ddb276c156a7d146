"""Apps that are not Python (issue 11), with Debian's language plugins for its
uWSGI (uwsgi-plugin-php, uwsgi-plugin-psgi, uwsgi-plugin-rack-ruby3.1 with
ruby-rack); each test skips, saying why, when its plugin is missing. Real uWSGI,
127.0.0.1 only.

- PHP has no app object to count, its scripts load per request: "live" is
  every worker new.
- PSGI and Rack: a broken app fails with the reason quoted from the log, as
  for Python. Rack exits the process that cannot load config.ru: with
  lazy-apps a worker, which uWSGI would respawn to fail again until
  netreload-timeout (it must fail at once); without, the master, which must
  say so before it goes.
"""
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD, PRELOAD, UWSGI, atomic_write, free_port, http_get, kill_tree, run_client, \
    uwsgi_env, wait_for

PLUGINS = Path("/usr/lib/uwsgi/plugins")


def need_plugin(name, package):
    if not (PLUGINS / f"{name}_plugin.so").exists():
        pytest.skip(f"no {package} (Debian package) installed")
    if Path(UWSGI).resolve() != Path("/usr/bin/uwsgi").resolve():
        pytest.skip(f"Debian's {name} plugin runs only in Debian's uWSGI (make test-compat)")


@pytest.fixture
def start(tmp_path):
    """start(plugin_args, *netreload_args): a uWSGI with a language plugin and
    netreload, serving "v1" (the app file is written first); returns its
    netreload and HTTP ports. Stopped by pid at teardown."""
    procs = []

    def run(lang, *netreload_args):
        port, http = free_port(), free_port()
        log = open(tmp_path / "uwsgi.log", "ab")
        proc = subprocess.Popen([UWSGI, *lang, "--plugins-dir", str(BUILD),
                                 "--plugin", "netreload", "--netreload-port", str(port),
                                 *netreload_args, "--master", "--processes", "2",
                                 "--http-socket", f"127.0.0.1:{http}"],
                                cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=uwsgi_env())
        procs.append((proc, log))
        wait_for(lambda: http_get(http) == "v1", 20, what=f"{lang[1]} to serve "
                 f"(log: {tmp_path / 'uwsgi.log'})")
        return port, http

    yield run
    for proc, log in procs:
        kill_tree(proc.pid)
        log.close()


@pytest.fixture
def php(tmp_path, start):
    need_plugin("php", "uwsgi-plugin-php")
    if PRELOAD:
        pytest.skip("PHP dlopen()s opcache with RTLD_DEEPBIND, which the ASan runtime "
                    "preloaded into uWSGI cannot run (make check-asan)")
    atomic_write(tmp_path / "index.php", '<?php echo "v1";')
    port, http = start(["--plugin", "php", "--http-socket-modifier1", "14",
                        "--php-docroot", str(tmp_path), "--php-index", "index.php"])
    return tmp_path, port, http


def test_php_reload_goes_live(php):
    """It used to answer "failed: workers run without an application" while both
    workers served the new script."""
    d, port, http = php
    for v in ("v2", "v3"):
        atomic_write(d / "index.php", f'<?php echo "{v}";')
        r = run_client("ping", f"127.0.0.1:{port}", timeout=30)
        assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
        assert http_get(http) == v


def ping(port, timeout=30):
    return run_client("ping", "--timeout", str(timeout), f"127.0.0.1:{port}", timeout=timeout + 10)


def assert_failed(r, *needles):
    assert r.returncode == 1 and "reload failed" in r.stderr, r.stdout + r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


# PSGI ------------------------------------------------------------------------------------

PSGI_APP = """my $app = sub {{ return [200, ['Content-Type' => 'text/plain'], ["{version}"]]; }};
"""

LAZY = {"graceful": [], "workers": ["--netreload-mode", "workers", "--lazy-apps"]}


@pytest.mark.parametrize("mode", ["graceful", "workers"])
def test_psgi_broken_app_quotes_the_reason(tmp_path, start, mode):
    """It used to answer a generic "workers run without an application" although
    the log said why (loaded in the master, or with lazy-apps in each worker)."""
    need_plugin("psgi", "uwsgi-plugin-psgi")
    app = tmp_path / "app.psgi"
    atomic_write(app, PSGI_APP.format(version="v1"))
    port, http = start(["--plugin", "psgi", "--http-socket-modifier1", "5", "--psgi", str(app)],
                       *LAZY[mode])
    atomic_write(app, 'die "no database";\n' + PSGI_APP.format(version="v2"))
    assert_failed(ping(port), f"app failed to load: no database at {app} line 1")
    atomic_write(app, "my $x = 1\n" + PSGI_APP.format(version="v3"))  # a syntax error
    assert_failed(ping(port), f"syntax error at {app} line 2")
    atomic_write(app, PSGI_APP.format(version="v4"))
    r = ping(port)
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
    assert http_get(http) == "v4"


# Rack ------------------------------------------------------------------------------------

RACK_APP = """run lambda {{ |env| [200, {{"Content-Type" => "text/plain"}}, ["{version}"]] }}
"""


def rack(tmp_path, start, *netreload_args):
    need_plugin("rack_ruby31", "uwsgi-plugin-rack-ruby3.1")
    if subprocess.run(["ruby", "-e", "require 'rack'"], capture_output=True).returncode:
        pytest.skip("no ruby-rack (Debian package) installed")
    ru = tmp_path / "config.ru"
    atomic_write(ru, RACK_APP.format(version="v1"))
    port, http = start(["--plugin", "rack_ruby31", "--http-socket-modifier1", "7",
                        "--rack", str(ru)], *netreload_args)
    return ru, port, http


def test_rack_lazy_broken_config_fails_at_once_with_the_exception(tmp_path, start):
    """With lazy-apps each new worker exit()s on a config.ru that raises, and
    uWSGI respawns it to fail again: the reload used to wait for
    netreload-timeout (33 s by default) and answer "timeout"."""
    ru, port, http = rack(tmp_path, start, *LAZY["workers"], "--netreload-timeout", "20")
    atomic_write(ru, 'require "nonexistent_gem_xyz"\n' + RACK_APP.format(version="v2"))
    r = ping(port)
    assert_failed(r, "app failed to load: LoadError: cannot load such file -- "
                  f"nonexistent_gem_xyz ({ru}:1)")
    assert "timeout" not in r.stderr
    atomic_write(ru, RACK_APP.format(version="v3"))
    r = ping(port)
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
    assert http_get(http) == "v3"


def test_rack_broken_config_says_the_master_exited(tmp_path, start):
    """Without lazy-apps the new master loads config.ru and exit()s when it
    raises: the client used to get a closed connection and a guess."""
    ru, port, http = rack(tmp_path, start)
    atomic_write(ru, "x = [1, 2\n" + RACK_APP.format(version="v2"))
    assert_failed(ping(port), "the uWSGI master exited: app failed to load: SyntaxError: "
                  f"{ru}:2: syntax error")
