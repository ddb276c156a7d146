"""`watch --on-live` and `--on-fail` (issue 13, item 6): one hook at a time, the
newest waiting result runs next (older waiting ones are dropped), the same
environment for both, hook output never on the --json stream, and hooks stopped
when the watcher ends.

Ordering is checked with the timestamps the hook scripts write, never by timing
the test. Real client, real uWSGI.
"""
import json
import os
import signal

from conftest import APP_TEMPLATE, pid_alive, wait_for
from test_watch import Watcher

HOOK_VARS = {"NETRELOAD_EVENT", "NETRELOAD_TARGET", "NETRELOAD_EXIT", "NETRELOAD_MS",
             "NETRELOAD_GEN", "NETRELOAD_PATH", "NETRELOAD_CHANGES", "NETRELOAD_REASON"}


def watcher(tmp_path, cwd, *args, n=0):
    return Watcher(tmp_path, n, list(args), cwd).started()


def complete_dumps(d):
    """The dumps written whole: a hook still writing one has only its .tPID."""
    return [f for f in d.iterdir() if not f.name.startswith(".")]


def env_dumps(d):
    """The NETRELOAD_* environment each hook run got from the watcher (not the
    ones the test run itself has, e.g. NETRELOAD_BUILD), one dump file per run."""
    out = []
    for f in sorted(complete_dumps(d), key=lambda p: int(p.name)):
        lines = f.read_text().splitlines()
        out.append(dict(l.split("=", 1) for l in lines if l.startswith("NETRELOAD_")
                        and l.split("=", 1)[0] not in os.environ))
    return out


def test_hook_output_never_on_the_json_stream(server, code, tmp_path):
    w = watcher(tmp_path, code, "--json", "--to", server.target, "--on-live",
                'echo "hook says hi"; echo "{not json"; printf "no newline"')
    try:
        for n in (1, 2):
            (code / "views.py").write_text(f"x = {n}\n")
            wait_for(lambda: w.stdout().count('"live"') >= n, 30, what=f"{n} live events")
            wait_for(lambda: w.stderr().count("hook says hi") >= n, 10, what="the hook's output")
    finally:
        w.stop()
    lines = w.out.read_bytes().decode("utf-8").splitlines()
    assert [json.loads(l)["event"] for l in lines] == ["live", "live"], lines
    assert "{not json" in w.stderr()


def test_on_fail_and_on_live_get_the_same_environment(servers, tmp_path):
    srv = servers()  # netreload-root is its own dir, which the watcher watches
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    # written whole, then renamed: a dump counted below is complete
    hook = f'n=$(ls {dumps} | wc -l); env > {dumps}/.t$$ && mv {dumps}/.t$$ {dumps}/$n'
    w = watcher(tmp_path, srv.dir, "--to", srv.target, "--on-live", hook, "--on-fail", hook)
    try:
        srv.app.write_text("import no_such_module_xyz\n" + APP_TEMPLATE.format(version="bad"))
        wait_for(lambda: " failed after " in w.stdout(), 30, what="a failed line")
        wait_for(lambda: len(complete_dumps(dumps)) >= 1, 10, what="the --on-fail hook")
        srv.set_version("v2")
        wait_for(lambda: " live in " in w.stdout(), 30, what="a live line")
        wait_for(lambda: len(complete_dumps(dumps)) >= 2, 10, what="the --on-live hook")
    finally:
        w.stop()
    fail, live = env_dumps(dumps)[:2]
    assert set(fail) == set(live) == HOOK_VARS, (fail, live)
    assert fail["NETRELOAD_EVENT"] == "failed" and fail["NETRELOAD_EXIT"] == "1"
    assert "no_such_module_xyz" in fail["NETRELOAD_REASON"]
    assert fail["NETRELOAD_TARGET"] == live["NETRELOAD_TARGET"] == srv.target
    assert fail["NETRELOAD_PATH"] == live["NETRELOAD_PATH"] == "app.py"
    assert live["NETRELOAD_EVENT"] == "live" and live["NETRELOAD_EXIT"] == "0"
    assert live["NETRELOAD_REASON"] == "" and int(live["NETRELOAD_GEN"]) == 2


def test_hooks_run_one_at_a_time_and_the_newest_waits(server, code, tmp_path):
    """The first hook blocks on a gate; two more reloads go live meanwhile. Then
    the hooks ran one after the other, and the waiting one was the newest."""
    log, gate = tmp_path / "hook.log", tmp_path / "gate"
    hook = (f'echo "start $NETRELOAD_GEN $(date +%s.%N)" >> {log}; '
            f'n=0; while [ ! -e {gate} ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done; '
            f'echo "end $NETRELOAD_GEN $(date +%s.%N)" >> {log}')
    w = watcher(tmp_path, code, "--to", server.target, "--on-live", hook)
    try:
        for n in (1, 2, 3):
            (code / "views.py").write_text(f"x = {n}\n")
            w.wait_lives(n, timeout=30)
            wait_for(lambda: log.exists() and "start 1" in log.read_text(), 10,
                     what="the first hook")
        gate.touch()
        wait_for(lambda: log.read_text().count("end ") >= 2, 20, what=f"two hooks: {log}")
    finally:
        w.stop()
    runs = [l.split() for l in log.read_text().splitlines()]
    assert [(what, gen) for what, gen, _ in runs] == [
        ("start", "1"), ("end", "1"), ("start", "3"), ("end", "3")], runs
    times = [float(t) for _, _, t in runs]
    assert times == sorted(times), runs  # the second started after the first ended


def test_hooks_are_stopped_when_the_watcher_exits(server, code, tmp_path):
    pids = tmp_path / "pids"
    w = watcher(tmp_path, code, "--to", server.target, "--on-live",
                f'sleep 300 & echo "$$ $!" > {pids}; wait')
    hook = []
    try:
        (code / "views.py").write_text("x = 5\n")
        w.wait_lives(1)
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 10,
                 what="the hook's pids")
        hook = [int(p) for p in pids.read_text().split()]
        assert all(pid_alive(p) for p in hook)
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(timeout=10) == 0
        # the shell was our child: reaped before we exited; its sleep got SIGTERM too
        wait_for(lambda: not any(pid_alive(p) for p in hook), 5, what="the hook to be gone")
    finally:
        w.stop()
        for p in hook:
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)


def test_stdin_end_waits_for_the_hooks(server, code, tmp_path):
    """When --stdin ends, the watcher finishes the reloads and the hooks they
    started before it exits (the hook is slow on purpose)."""
    done = tmp_path / "done"
    w = Watcher(tmp_path, 0, ["--stdin", "--to", server.target, "--on-live",
                              f'sleep 0.5; echo "$NETRELOAD_EVENT" > {done}'], code, stdin=True)
    w.started()
    (code / "views.py").write_text("x = 6\n")
    w.proc.stdin.write(b"views.py\n")
    w.proc.stdin.close()
    assert w.proc.wait(timeout=30) == 0, w.stderr()
    assert done.exists() and done.read_text() == "live\n", w.stderr()
    w.stop()
