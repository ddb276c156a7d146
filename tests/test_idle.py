"""--idle: uWSGI stops idle workers by SIGINTing each one and sleeping a whole
second before it looks again, so for N seconds (N workers) the master reads
no ping and a SIGINT to it waits. netreload takes that check over (same rule,
same steps, no sleep): reloads then go live whether the workers are up, going
idle or idle, and the first request after idle serves the new code."""
import pytest

from conftest import wait_for

UWSGI_OWN_IDLE = "workers have been inactive for more than 1 seconds ("  # with its timestamps


def went_idle(server, times):
    return server.log_text().count("cheap mode enabled: waiting for socket connection") >= times


@pytest.mark.parametrize("mode,lazy", [("graceful", False), ("workers", True)])
def test_reloads_go_live_around_idle(servers, mode, lazy):
    server = servers(mode=mode, lazy=lazy, extra=["--idle", "1"])
    assert server.get() == "v1"
    for n, phase in enumerate(["idle", "busy"], start=2):
        if phase == "idle":
            wait_for(lambda: went_idle(server, 1), 15, what="the workers to go idle")
        server.set_version(f"v{n}")
        r = server.ping()
        assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr + server.log_text()
        # the first request after idle spawns workers that load the saved code
        assert server.get(timeout=10) == f"v{n}", server.log_text()
    # idle again after the requests: netreload stopped the workers, uWSGI did not
    wait_for(lambda: went_idle(server, 2), 15, what="the workers to go idle again")
    text = server.log_text()
    assert UWSGI_OWN_IDLE not in text, text
    assert "uWSGI worker 1 cheaped." in text and "DAMN" not in text, text
    server.set_version("v9")
    r = server.ping()
    assert r.returncode == 0 and "live in" in r.stdout, r.stdout + r.stderr
    assert server.get(timeout=10) == "v9"


def test_die_on_idle_is_left_to_uwsgi(servers):
    server = servers(extra=["--idle", "1", "--die-on-idle"])
    assert "checked by netreload" not in server.log_text()
    wait_for(lambda: server.proc.poll() is not None, 20, what="uWSGI to end on idle")
