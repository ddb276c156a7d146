"""killed=N counts the old workers netreload killed after netreload-grace, in
every mode, also when a graceful reload re-execs the master between the kill
and the reply (issue 11: it answered killed=0 while the log said it killed a
worker). Real uWSGI, two workers: one busy with a long request, one idle, so
exactly one is killed; the next reload, with nothing in flight, kills none.
"""
import json
import socket
import threading

import pytest

from conftest import atomic_write, wait_for

SLOW_APP = '''\
import os, time
VERSION = {version!r}

def application(env, start_response):
    if env.get("PATH_INFO") == "/slow":
        open(os.path.join({dir!r}, "slow.started"), "w").close()
        time.sleep(30)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''


def save(srv, version):
    atomic_write(srv.app, SLOW_APP.format(version=version, dir=str(srv.dir)))


def reload_json(srv):
    r = srv.ping("--json", timeout=40)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def start_with_a_long_request(srv):
    """Start srv on v1, have a request in flight that outlasts netreload-grace,
    and save v2."""
    save(srv, "v1")
    srv.start()
    slow = threading.Thread(target=srv.get, args=("/slow",), kwargs={"timeout": 35}, daemon=True)
    slow.start()
    wait_for(lambda: (srv.dir / "slow.started").exists(), 10, what="the long request")
    save(srv, "v2")


@pytest.mark.parametrize("mode,lazy", [("graceful", False), ("workers", True),
                                       ("chain", True)])
def test_killed_counts_the_worker_killed_for_a_long_request(servers, mode, lazy):
    srv = servers(start=False, mode=mode, lazy=lazy, extra=["--netreload-grace", "500"])
    start_with_a_long_request(srv)
    j = reload_json(srv)
    assert j["event"] == "live" and j["killed"] == 1, j
    assert srv.get() == "v2"
    assert srv.count("did not stop within 500 ms, killing it") == 1

    save(srv, "v3")  # nothing in flight now: nobody to kill, and no count left over
    j = reload_json(srv)
    assert j["event"] == "live" and j["killed"] == 0, j
    assert srv.get() == "v3"
    r = srv.ping(timeout=40)
    assert r.returncode == 0 and "killed" not in r.stdout, r.stdout


def test_udp_retry_gets_the_same_killed(servers):
    """A UDP client whose "live" was lost asks again with the same id: the
    answer from memory must be the same one, killed=1 included."""
    srv = servers(start=False, mode="workers", lazy=True, extra=["--netreload-grace", "500"])
    start_with_a_long_request(srv)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        u.settimeout(20)
        u.sendto(b"NETRELOAD/1 reload id=k1\n", ("127.0.0.1", srv.port))
        replies = [u.recvfrom(2048)[0].decode() for _ in range(2)]
        assert replies[0].startswith("NETRELOAD/1 accepted id=k1 "), replies
        assert replies[1].startswith("NETRELOAD/1 live id=k1 ") and " killed=1" in replies[1], \
            replies
        u.sendto(b"NETRELOAD/1 reload id=k1\n", ("127.0.0.1", srv.port))  # "live" was lost
        again = u.recvfrom(2048)[0].decode()
    assert again.startswith("NETRELOAD/1 live id=k1 ") and " killed=1" in again, again
