"""Loss-tolerant delivery over UDP: a relay between client and server drops or
duplicates datagrams; a lost datagram must never lose a reload and a
duplicated one must never cause two."""
import re
import select
import socket
import threading

import pytest

from conftest import free_port, run_client, wait_for

GEN_LINE = re.compile(r"netreload: generation \d+: [\w-]+ reload")


class Relay:
    """UDP relay on 127.0.0.1: client <-> relay <-> server, with a policy per datagram.

    policy(direction, n, data) returns how many copies to forward (0 drops it);
    direction is "up" (client to server) or "down", n counts datagrams that way.
    """

    def __init__(self, server_port, policy):
        self.port = free_port()
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", self.port))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(("127.0.0.1", server_port))
        self.policy = policy
        self.client = None
        self.seen = {"up": [], "down": []}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            r, _, _ = select.select([self.front, self.back], [], [], 0.05)
            for s in r:
                try:
                    data, addr = s.recvfrom(2048)
                except OSError:
                    continue
                up = s is self.front
                if up:
                    self.client = addr
                way = "up" if up else "down"
                self.seen[way].append(data)
                for _ in range(self.policy(way, len(self.seen[way]), data)):
                    if up:
                        self.back.send(data)
                    elif self.client:
                        self.front.sendto(data, self.client)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=2)
        self.front.close()
        self.back.close()


@pytest.fixture
def relay_to():
    relays = []

    def make(server, policy):
        r = Relay(server.port, policy)
        relays.append(r)
        return r

    yield make
    for r in relays:
        r.close()


def reloads(server):
    return len(GEN_LINE.findall(server.log_text()))


def test_lost_request_accepted_and_live_are_retried(server, relay_to):
    def lossy(way, n, data):
        if way == "up" and n == 1:
            return 0  # the request itself
        if way == "down" and (b" accepted " in data or b" live " in data) and n <= 2:
            return 0  # the first accepted and the first live
        return 1

    relay = relay_to(server, lossy)
    server.set_version("v2")
    r = run_client("ping", "--udp", "--timeout", "15", f"127.0.0.1:{relay.port}")
    assert r.returncode == 0, r.stderr
    assert "live in" in r.stdout
    assert server.get() == "v2"
    assert reloads(server) == 1
    assert len(relay.seen["up"]) >= 3  # it had to resend


def test_duplicated_datagrams_reload_once(server, relay_to):
    relay = relay_to(server, lambda way, n, data: 3 if way == "up" else 1)
    server.set_version("v2")
    r = run_client("ping", "--udp", "--timeout", "15", f"127.0.0.1:{relay.port}")
    assert r.returncode == 0, r.stderr
    assert server.get() == "v2"
    assert reloads(server) == 1


def test_retry_after_graceful_reexec_is_still_a_retry(server):
    """The id table crosses the re-exec: a retry arriving after it must not reload again."""
    line = b"NETRELOAD/1 reload id=cross1 mode=graceful wait=1\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(10)
        u.sendto(line, ("127.0.0.1", server.port))
        assert b"accepted id=cross1" in u.recv(600)
        assert b"live id=cross1" in u.recv(600)
        u.sendto(line, ("127.0.0.1", server.port))
        assert b"live id=cross1" in u.recv(600)  # the outcome, answered again
    wait_for(lambda: "generation 1 live" in server.log_text(), what="first reload")
    assert reloads(server) == 1
