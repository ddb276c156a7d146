"""A graceful reload re-reads the config file: the listener follows the
netreload-* options as they are now, and the checks of a first start run
again (issue 11, must-have 3). Real uWSGI masters started from an ini file.
"""
import subprocess

from conftest import (APP_TEMPLATE, BUILD, accepts_tcp, atomic_write, free_port, http_get, kill_tree,
                      run_client, uwsgi_cmd, uwsgi_env, wait_for)


class IniServer:
    def __init__(self, tmp_path, **opts):
        self.dir = tmp_path
        self.app = tmp_path / "app.py"
        self.ini = tmp_path / "uwsgi.ini"
        self.log = tmp_path / "uwsgi.log"
        self.http_port = free_port()
        self.opts = {"master": "true", "processes": "1",
                     "http-socket": f"127.0.0.1:{self.http_port}", "wsgi-file": str(self.app),
                     "plugin": "netreload", **opts}
        atomic_write(self.app, APP_TEMPLATE.format(version="v1"))
        self.write_ini()
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(uwsgi_cmd(BUILD, "--ini", str(self.ini)), cwd=tmp_path,
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=uwsgi_env())

    def write_ini(self):
        atomic_write(self.ini, "[uwsgi]\n" + "".join(f"{k} = {v}\n" for k, v in self.opts.items()
                                                     if v is not None))

    def log_text(self):
        return self.log.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)
        self.logf.close()


def test_a_new_netreload_port_is_listened_on_after_the_reload(tmp_path):
    p1, p2 = free_port(), free_port()
    s = IniServer(tmp_path, **{"netreload-port": str(p1)})
    try:
        wait_for(lambda: accepts_tcp(p1) and http_get(s.http_port) == "v1", 20,
                 what="the server to start")
        s.opts["netreload-port"] = str(p2)
        s.write_ini()
        atomic_write(s.app, APP_TEMPLATE.format(version="v2"))
        r = run_client("ping", f"127.0.0.1:{p1}", timeout=30)  # its connection crosses the exec
        assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr + s.log_text()
        assert http_get(s.http_port) == "v2"
        assert accepts_tcp(p2) and not accepts_tcp(p1), s.log_text()
        assert "netreload-bind/netreload-port changed across the reload" in s.log_text()
        atomic_write(s.app, APP_TEMPLATE.format(version="v3"))
        r = run_client("ping", f"127.0.0.1:{p2}", timeout=30)
        assert r.returncode == 0 and http_get(s.http_port) == "v3", r.stdout + r.stderr
    finally:
        s.stop()


def test_removing_the_secret_from_a_public_listener_stops_the_instance(tmp_path):
    """It used to keep the 0.0.0.0 listener, now without authentication."""
    secret = tmp_path / "secret"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)
    port = free_port()
    s = IniServer(tmp_path, **{"netreload-port": str(port), "netreload-bind": "0.0.0.0",
                               "netreload-secret-file": str(secret)})
    try:
        wait_for(lambda: accepts_tcp(port) and http_get(s.http_port) == "v1", 20,
                 what="the server to start")
        s.opts["netreload-secret-file"] = None
        s.write_ini()
        run_client("ping", "--secret-file", str(secret), f"127.0.0.1:{port}", timeout=30)
        rc = s.proc.wait(timeout=30)
        assert rc != 0
        assert "refusing to listen on non-loopback address 0.0.0.0 without authentication" \
            in s.log_text()
        assert not accepts_tcp(port)
    finally:
        s.stop()
