"""Apps that are not Python: a PHP instance has no app object to count, its
scripts load per request, so "live" is every worker new (issue 11). Real
uWSGI with Debian's php plugin (uwsgi-plugin-php), 127.0.0.1 only.
"""
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD, PRELOAD, UWSGI, atomic_write, free_port, http_get, kill_tree, run_client, \
    uwsgi_env, wait_for

PHP_PLUGIN = Path("/usr/lib/uwsgi/plugins/php_plugin.so")


@pytest.fixture
def php(tmp_path):
    if not PHP_PLUGIN.exists():
        pytest.skip("no uwsgi-plugin-php (Debian package) installed")
    if Path(UWSGI).resolve() != Path("/usr/bin/uwsgi").resolve():
        pytest.skip("Debian's php plugin runs only in Debian's uWSGI (make test-compat)")
    if PRELOAD:
        pytest.skip("PHP dlopen()s opcache with RTLD_DEEPBIND, which the ASan runtime "
                    "preloaded into uWSGI cannot run (make check-asan)")
    atomic_write(tmp_path / "index.php", '<?php echo "v1";')
    port, http = free_port(), free_port()
    log = open(tmp_path / "uwsgi.log", "wb")
    proc = subprocess.Popen([UWSGI, "--plugin", "php", "--plugins-dir", str(BUILD),
                             "--plugin", "netreload", "--netreload-port", str(port), "--master",
                             "--processes", "2", "--http-socket", f"127.0.0.1:{http}",
                             "--http-socket-modifier1", "14", "--php-docroot", str(tmp_path),
                             "--php-index", "index.php"],
                            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, env=uwsgi_env())
    try:
        wait_for(lambda: http_get(http) == "v1", 20, what="PHP to serve")
        yield tmp_path, port, http
    finally:
        kill_tree(proc.pid)
        log.close()


def test_php_reload_goes_live(php):
    """It used to answer "failed: workers run without an application" while both
    workers served the new script."""
    d, port, http = php
    for v in ("v2", "v3"):
        atomic_write(d / "index.php", f'<?php echo "{v}";')
        r = run_client("ping", f"127.0.0.1:{port}", timeout=30)
        assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
        assert http_get(http) == v
