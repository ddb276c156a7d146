"""The first reload: ping, new code served, reply says live."""


def test_ping_reloads_and_reports_live(server):
    assert server.get() == "v1"
    server.set_version("v2")
    r = server.ping()
    assert r.returncode == 0, r.stderr
    assert "live in" in r.stdout
    assert server.get() == "v2"
    assert server.count("netreload: generation 1 live") == 1
