"""The watcher's reload line tells the truth (issue 13, item 5): its parts add up to
the total and name the time a server was down, a burst cut short by --max-delay
says so, sed -i's temp file is not a changed file, and -q prints the recovery
after a failure (so the last line on screen is not a stale failure).

Real client, real uWSGI, real sed.
"""
import os
import re
import subprocess

from conftest import APP_TEMPLATE, wait_for
from test_watch import Watcher

LIVE = re.compile(r" live in (\d+) ms \((debounce|max-delay) (\d+)(?:, queued (\d+))?"
                  r"(?:, down (\d+))?, reload (\d+)\)$")


def watching(pid):
    """Whether pid has its inotify instance open (the -q watcher prints no banner)."""
    fds = f"/proc/{pid}/fd"
    return any(os.readlink(f"{fds}/{fd}") == "anon_inode:inotify" for fd in os.listdir(fds))


def live_lines(w):
    return [m for m in map(LIVE.search, w.stdout().splitlines()) if m]


def parts(m):
    """(total, kind, [debounce, queued, down, reload])"""
    nums = [int(m.group(i) or 0) for i in (3, 4, 5, 6)]
    return int(m.group(1)), m.group(2), nums


def test_downtime_is_named_and_the_parts_add_up(servers, code, tmp_path):
    srv = servers(start=False)
    w = Watcher(tmp_path, 0, ["--to", srv.target], code).started()
    try:
        (code / "views.py").write_text("x = 2\n")
        wait_for(lambda: "will keep watching" in w.stderr(), 20, what="the unreachable warning")
        srv.start()
        wait_for(lambda: live_lines(w), 30, what=f"a live line: {w.stdout()!r}")
    finally:
        w.stop()
    [m] = live_lines(w)
    total, kind, (debounce, queued, down, reload) = parts(m)
    assert kind == "debounce" and down > 0 and queued == 0, m.group(0)
    assert debounce + down + reload == total, m.group(0)


def test_a_single_save_is_debounce_and_reload(server, code, tmp_path):
    """The file is big, so describing it (SHA-256) before the ping takes a while:
    that time belongs to the reload, not to nowhere."""
    w = Watcher(tmp_path, 0, ["--to", server.target], code).started()
    try:
        (code / "views.py").write_text("x = 3\n#" + "-" * (8 << 20) + "\n")
        wait_for(lambda: live_lines(w), 30, what=f"a live line: {w.stdout()!r}")
    finally:
        w.stop()
    [m] = live_lines(w)
    total, kind, (debounce, queued, down, reload) = parts(m)
    assert kind == "debounce" and down == 0 and debounce + queued + reload == total, m.group(0)


def test_a_burst_cut_by_max_delay_says_so(server, code, tmp_path):
    """Changes every few ms, never quiet for --debounce: --max-delay fires the batch."""
    w = Watcher(tmp_path, 0, ["--to", server.target, "--debounce", "200", "--max-delay", "400"],
                code).started()
    writer = subprocess.Popen(
        ["sh", "-c", f'i=0; while [ $i -lt 4000 ]; do echo "x = $i" > {code}/gen.py; '
                     f'sleep 0.01; i=$((i+1)); done'])
    try:
        wait_for(lambda: len(live_lines(w)) >= 2, 60, what=f"two live lines: {w.stdout()!r}")
    finally:
        writer.kill()
        writer.wait()
        w.stop()
    kinds = [parts(m)[1] for m in live_lines(w)]
    assert "max-delay" in kinds, w.stdout()
    for m in live_lines(w):
        total, _, nums = parts(m)
        assert sum(nums) == total, m.group(0)


def test_sed_in_place_counts_one_file(server, code, tmp_path):
    w = Watcher(tmp_path, 0, ["--to", server.target], code).started()
    try:
        subprocess.run(["sed", "-i", "s/1/2/", str(code / "views.py")], check=True)
        wait_for(lambda: live_lines(w), 30, what=f"a live line: {w.stdout()!r}")
    finally:
        w.stop()
    line = w.stdout().splitlines()[0]
    assert " views.py \u2192 " in line, line  # not "views.py (+1)": sed's temp file


def test_quiet_prints_the_recovery_after_a_failure(servers, tmp_path):
    srv = servers()  # netreload-root is its own dir, which the watcher watches
    w = Watcher(tmp_path, 0, ["-q", "--to", srv.target], srv.dir)  # -q: no startup line
    wait_for(lambda: watching(w.proc.pid), 10, what="the watcher's inotify fd")
    try:
        srv.app.write_text("import no_such_module_xyz\n" + APP_TEMPLATE.format(version="bad"))
        wait_for(lambda: " failed after " in w.stdout(), 30, what="a failed line")
        srv.set_version("v2")
        wait_for(lambda: srv.get() == "v2", 30, what="the new code")
        wait_for(lambda: live_lines(w), 10, what=f"the recovery line: {w.stdout()!r}")
        srv.set_version("v3")
        wait_for(lambda: srv.get() == "v3", 30, what="the next code")
    finally:
        w.stop()
    out = w.stdout().splitlines()
    assert len(out) == 2 and " failed after " in out[0] and LIVE.search(out[1]), out
