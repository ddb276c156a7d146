"""Every replica behind one name (issue 18).

A network namespace of our own, with `lo` up, holds several uWSGI masters
(replicas) on 127.0.0.1, 127.0.0.2 and 127.0.0.3, each with its own
netreload-bind, and the client. /etc/netns/NS/hosts maps `web` to the
replicas' addresses: `ip netns exec` bind-mounts it over /etc/hosts, so `web`
resolves to all of them for the client only. The hosts file is rewritten in
place (the bind mount holds its inode), which is how a scale change shows.
"""
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import BUILD, CLIENT, Uwsgi, atomic_write, uwsgi_cmd, wait_for
from test_watch import Watcher
from vm import in_netns

NR_PORT = 9001
HTTP_PORT = 8000
ADDRS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip"),
    reason="needs root and `ip` (iproute2) for a network namespace")


class Netns:
    """A named network namespace with lo up and its own hosts file."""

    def __init__(self, name):
        self.name = name
        self.etc = Path("/etc/netns") / name
        # left over by a run of ours that was killed (the name holds our pid)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.etc.mkdir(parents=True, exist_ok=True)
        self.set_hosts([])
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                       check=True)

    def set_hosts(self, addrs, name="web"):
        """Rewrite the hosts file in place: the bind mount holds its inode."""
        text = "127.0.0.1 localhost\n" + "".join(f"{a} {name}\n" for a in addrs)
        with open(self.etc / "hosts", "r+" if (self.etc / "hosts").exists() else "w") as f:
            f.seek(0)
            f.truncate()
            f.write(text)

    def exec(self):
        return ["ip", "netns", "exec", self.name]

    def remove(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)
        shutil.rmtree(self.etc, ignore_errors=True)


class Replica(Uwsgi):
    """A uWSGI master inside the namespace, serving HTTP and netreload on addr."""

    def __init__(self, tmp_path, ns, addr, extra=()):
        super().__init__(tmp_path, processes=1)
        self.ns, self.addr = ns, addr
        self.target = f"{addr}:{NR_PORT}"
        self.args = [*ns.exec(), *uwsgi_cmd(BUILD, "--master", "--processes", "1",
                                            "--http-socket", f"{addr}:{HTTP_PORT}",
                                            "--wsgi-file", str(self.app), "--max-fd", "1024",
                                            "--chdir", str(self.dir),
                                            "--plugin", "netreload",
                                            "--netreload-port", str(NR_PORT),
                                            "--netreload-bind", addr, *extra)]

    def get(self, path="/", timeout=2.0):
        with in_netns(self.ns.name):
            try:
                with urllib.request.urlopen(f"http://{self.addr}:{HTTP_PORT}{path}",
                                            timeout=timeout) as r:
                    return r.read().decode()
            except urllib.error.HTTPError as e:
                return f"HTTP {e.code}"
            except (OSError, urllib.error.URLError):
                return None

    def accepts_tcp(self):
        with in_netns(self.ns.name):
            try:
                with socket.create_connection((self.addr, NR_PORT), timeout=0.5):
                    return True
            except OSError:
                return False


@pytest.fixture
def ns():
    n = Netns(f"nrrep{os.getpid()}")
    yield n
    n.remove()


@pytest.fixture
def replicas(tmp_path, ns, code):
    """Factory: replicas(addrs) starts one replica per address; stopped at teardown.
    Their netreload-root is the watched tree, as for replicas sharing a volume."""
    started = []

    def make(addrs, extra=()):
        out = []
        for a in addrs:
            d = tmp_path / f"rep-{a}"
            d.mkdir()
            r = Replica(d, ns, a, ["--netreload-root", str(code), *extra])
            started.append(r)
            out.append(r.start())
        return out

    yield make
    for r in started:
        r.stop()


def client(ns, *args, timeout=60):
    return subprocess.run([*ns.exec(), str(CLIENT), *args], capture_output=True, text=True,
                          timeout=timeout)


def set_all(reps, version):
    for r in reps:
        r.set_version(version)


def serving(reps):
    return [r.get() for r in reps]


def test_ping_reloads_every_replica(ns, replicas):
    reps = replicas(ADDRS)
    ns.set_hosts(ADDRS)
    set_all(reps, "v2")
    r = client(ns, "ping", f"web:{NR_PORT}")
    assert r.returncode == 0, r.stderr
    assert f"web:{NR_PORT} (3 replicas): live in " in r.stdout, r.stdout
    assert ", slowest 127.0.0." in r.stdout
    assert len(r.stdout.splitlines()) == 1, r.stdout  # they agree: one line
    assert serving(reps) == ["v2"] * 3


def test_ping_one_replica_down(ns, replicas):
    reps = replicas(ADDRS[:2])
    ns.set_hosts(ADDRS)  # the name still lists a third one, which is down
    set_all(reps, "v2")
    r = client(ns, "ping", "--timeout", "20", f"web:{NR_PORT}")
    assert r.returncode == 3, (r.stdout, r.stderr)  # the worst: unreachable
    assert "127.0.0.3:9001" in r.stderr and "cannot connect" in r.stderr, r.stderr
    for a in ADDRS[:2]:
        assert f"{a}:{NR_PORT} (web): live in " in r.stdout, r.stdout
    assert serving(reps) == ["v2"] * 2


def test_ipv4_and_ipv6_are_the_same_replicas(ns, replicas):
    """Three IPv4 and two IPv6 addresses are three replicas, reached over IPv4;
    one IPv4 address with IPv6 ones besides is one server, as before."""
    reps = replicas(ADDRS)
    ns.set_hosts(ADDRS + ["::1", "::2"])
    set_all(reps, "v2")
    r = client(ns, "ping", f"web:{NR_PORT}")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"web:{NR_PORT} (3 replicas): live in " in r.stdout, r.stdout
    assert serving(reps) == ["v2"] * 3
    ns.set_hosts(ADDRS[:1] + ["::1", "::2"])  # the replicas listen on IPv4 only
    set_all(reps, "v3")
    r = client(ns, "ping", f"web:{NR_PORT}")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.startswith(f"web:{NR_PORT}: live in "), r.stdout
    assert serving(reps) == ["v3", "v2", "v2"]


def test_status_every_replica(ns, replicas):
    reps = replicas(ADDRS)
    ns.set_hosts(ADDRS)
    r = client(ns, "status", f"web:{NR_PORT}")
    assert r.returncode == 0, r.stderr
    assert f"web:{NR_PORT} (3 replicas): idle, generation 0, " in r.stdout, r.stdout
    assert "workers 3/3" in r.stdout
    reps[2].stop()
    r = client(ns, "status", f"web:{NR_PORT}")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "127.0.0.3:9001" in r.stderr
    assert r.stdout.count(": idle, generation 0") == 2, r.stdout


def test_targets_file_and_one_secret(ns, replicas, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret-" * 6 + "\n")
    secret.chmod(0o600)
    reps = replicas(ADDRS, extra=["--netreload-secret-file", str(secret)])
    listing = tmp_path / "targets"
    listing.write_text("# the fleet\n" + "".join(f"{a}:{NR_PORT}  # replica\n" for a in ADDRS)
                       + "\n")
    set_all(reps, "v2")
    r = client(ns, "ping", "--secret-file", str(secret), "--targets", str(listing))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert f"{listing} (3 replicas): live in " in r.stdout, r.stdout
    assert serving(reps) == ["v2"] * 3
    # the same through the name, signed: each replica asks its own instance id
    ns.set_hosts(ADDRS)
    set_all(reps, "v3")
    r = client(ns, "ping", "--secret-file", str(secret), f"web:{NR_PORT}")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert serving(reps) == ["v3"] * 3


def test_targets_file_bad_line(ns, tmp_path):
    listing = tmp_path / "targets"
    listing.write_text("# fleet\n127.0.0.1:9001\n127.0.0.2:notaport\n")
    r = client(ns, "status", "--targets", str(listing))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"{listing}:3: bad target '127.0.0.2:notaport'" in r.stderr, r.stderr


@pytest.fixture
def watch_ns(tmp_path, code, ns):
    started = []

    def make(*args):
        w = Watcher(tmp_path, len(started), args, code, wrap=ns.exec())
        started.append(w)
        return w.started()

    yield make
    for w in started:
        w.stop()


def test_watch_reloads_every_replica(ns, replicas, watch_ns, code, tmp_path):
    reps = replicas(ADDRS)
    ns.set_hosts(ADDRS)
    hook = tmp_path / "on-live"
    w = watch_ns("--to", f"web:{NR_PORT}", "--debounce", "50",
                 "--on-live", f'echo "$NETRELOAD_TARGET" >> {hook}')
    assert f"web:{NR_PORT} is 3 replicas: 127.0.0.1, 127.0.0.2, 127.0.0.3" in w.stderr()
    set_all(reps, "v2")
    atomic_write(code / "views.py", "x = 2\n")
    w.wait_lives(1)
    assert f"\u2192 web:{NR_PORT} (3 replicas) live in " in w.stdout(), w.stdout()
    assert serving(reps) == ["v2"] * 3
    # --on-live once the name is live, that is once every replica is
    wait_for(hook.exists, 10, what="the --on-live hook")
    w.stop()
    assert hook.read_text() == f"web:{NR_PORT}\n"


def test_watch_one_down_others_live(ns, replicas, watch_ns, code):
    reps = replicas(ADDRS[:2])
    ns.set_hosts(ADDRS)
    w = watch_ns("--to", f"web:{NR_PORT}", "--debounce", "50")
    set_all(reps, "v2")
    atomic_write(code / "views.py", "x = 2\n")
    w.wait_lives(2)
    wait_for(lambda: "127.0.0.3:9001" in w.stderr(), 10, what="the down replica named")
    out = w.stdout()
    assert f"127.0.0.1:{NR_PORT} (web) live in " in out and f"127.0.0.2:{NR_PORT} (web)" in out
    assert serving(reps) == ["v2"] * 2


def test_watch_follows_scale_up_and_down(ns, replicas, watch_ns, code, tmp_path):
    reps = replicas(ADDRS)
    ns.set_hosts(ADDRS[:2])
    w = watch_ns("--to", f"web:{NR_PORT}", "--debounce", "50")

    def save(n, hosts):
        ns.set_hosts(hosts)
        time.sleep(1.2)  # the client keeps an answer for 1 s (NR_LOOKUP_TTL_MS)
        set_all(reps, f"v{n}")
        atomic_write(code / "views.py", f"x = {n}\n")
        w.wait_lives(n - 1)

    save(2, ADDRS[:2])
    assert "(2 replicas)" in w.stdout(), w.stdout()
    assert serving(reps) == ["v2", "v2", "v1"]
    # scaled up between saves: the third one is reloaded from the next save
    save(3, ADDRS)
    assert "(3 replicas)" in w.stdout(), w.stdout()
    assert serving(reps) == ["v3"] * 3
    # scaled down to one: the others are dropped (still running, not reloaded), quietly
    save(4, ADDRS[:1])
    assert serving(reps) == ["v4", "v3", "v3"]
    assert w.stdout().splitlines()[-1].endswith(")") and " live in " in w.stdout().splitlines()[-1]
    # and up again, from one host: the new ones get this very save
    save(5, ADDRS)
    wait_for(lambda: serving(reps) == ["v5"] * 3, 10, what="every replica on v5")
    assert "error" not in w.stdout() and "cannot connect" not in w.stderr(), (w.stdout(),
                                                                             w.stderr())


def test_watch_keeps_last_answer_when_lookup_fails(ns, replicas, watch_ns, code):
    reps = replicas(ADDRS)
    ns.set_hosts(ADDRS)
    w = watch_ns("--to", f"web:{NR_PORT}", "--debounce", "50")
    ns.set_hosts([])  # the name is gone from the resolver
    for n in (2, 3):
        time.sleep(1.2)  # past the client's 1 s cache: it looks the name up again
        set_all(reps, f"v{n}")
        atomic_write(code / "views.py", f"x = {n}\n")
        w.wait_lives(n - 1)
        assert serving(reps) == [f"v{n}"] * 3
    assert w.stderr().count("cannot resolve 'web'") == 1, w.stderr()
    assert "keeping the last answer (3 replica(s))" in w.stderr(), w.stderr()


def test_watch_slow_lookup_does_not_hold_the_reload(ns, replicas, watch_ns, code):
    """A resolver that does not answer: the reload goes to the replicas known
    after a short wait, instead of waiting for the resolver to give up."""
    reps = replicas(ADDRS)
    ns.set_hosts(ADDRS)
    # ip netns exec bind-mounts this over /etc/resolv.conf for the watcher
    (ns.etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:1\n")
    with in_netns(ns.name):
        dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        dns.bind(("127.0.0.1", 53))  # a name server that never answers
        w = watch_ns("--to", f"web:{NR_PORT}", "--debounce", "50")
        ns.set_hosts([])  # so the next lookup asks the name server
        time.sleep(1.2)  # past the client's 1 s cache
        set_all(reps, "v2")
        atomic_write(code / "views.py", "x = 2\n")
        w.wait_lives(1)
        assert "(3 replicas) live in " in w.stdout(), w.stdout()
        assert serving(reps) == ["v2"] * 3
        assert "looking up web:9001 takes more than 500 ms" in w.stderr(), w.stderr()
    finally:
        dns.close()


def test_watch_targets_file_reread(ns, replicas, watch_ns, code, tmp_path):
    reps = replicas(ADDRS)
    listing = tmp_path / "targets"
    listing.write_text(f"{ADDRS[0]}:{NR_PORT}\n")
    w = watch_ns("--targets", str(listing), "--debounce", "50")
    set_all(reps, "v2")
    atomic_write(code / "views.py", "x = 2\n")
    w.wait_lives(1)
    assert serving(reps) == ["v2", "v1", "v1"]
    atomic_write(listing, "".join(f"{a}:{NR_PORT}\n" for a in ADDRS))
    set_all(reps, "v3")
    atomic_write(code / "views.py", "x = 3\n")
    w.wait_lives(2)
    wait_for(lambda: serving(reps) == ["v3"] * 3, 10, what="every replica on v3")
