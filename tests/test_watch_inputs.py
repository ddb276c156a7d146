"""What `netreload watch` takes as a change: --stdin paths relative to DIR,
--ext in any case and validated, --no-default-ignore, --include over the
default ignores, and a change of mode (chmod) that reloads nothing.

The real client against a private uWSGI, with the fixtures of test_watch.py.
"""
import os
import subprocess

import pytest

from conftest import CLIENT, run_client
from test_watch import assert_quiet, gen, one_reload, send, servers, watch  # noqa: F401


# ---- --stdin -------------------------------------------------------------------

def test_stdin_relative_paths_are_relative_to_dir(server, code, tmp_path, watch):
    """watchman-wait prints paths relative to its root: run from elsewhere, they
    were taken from the current directory, and every one was dropped as outside."""
    w = watch("--stdin", "--to", server.target, code.name, stdin=True, cwd=tmp_path)
    assert f"paths read from stdin, absolute or relative to {code}" in w.stderr(), w.stderr()
    g0 = gen(server)
    send(w, "views.py")
    one_reload(w, server, g0)
    assert " views.py \u2192 " in w.stdout(), w.stdout()
    send(w, "./pkg/models.py", code / "views.py")  # relative and absolute together
    w.wait_lives(2)
    assert gen(server) == g0 + 2


def test_stdin_relative_to_dir_in_help():
    r = run_client("watch", "--help")
    assert r.returncode == 0 and "relative to DIR (not to the current directory)" in r.stdout


# ---- --ext ---------------------------------------------------------------------

def test_ext_is_case_insensitive(server, code, watch):
    w = watch("--ext", "PY,.Html", "--to", server.target)
    g0 = gen(server)
    (code / "notes.txt").write_text("1")
    assert_quiet(w, server, g0)
    (code / "views.py").write_text("x = 2\n")
    one_reload(w, server, g0)
    (code / "INDEX.HTML").write_text("1")
    w.wait_lives(2)


def explain(code, path, *args):
    return subprocess.run([str(CLIENT), "watch", *args, "--explain", path], cwd=code,
                          capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize("ext, says", [
    ("", "an empty extension"),
    ("py,,html", "an empty extension"),
    ("py,", "an empty extension"),
    ("*.py", "bad extension '*.py'"),
    ("py/html", "bad extension 'py/html'"),
    (",".join(f"e{i}" for i in range(65)), "more than 64 extensions"),
])
def test_ext_is_validated(code, ext, says):
    r = explain(code, "views.py", "--ext", ext)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("netreload watch: --ext ") and says in r.stderr, r.stderr


# ---- default ignores -----------------------------------------------------------

def test_no_default_ignore(server, code, watch):
    w = watch("--no-default-ignore", "--to", server.target)
    g0 = gen(server)
    (code / "server.log").write_text("1")
    one_reload(w, server, g0)
    r = explain(code, "node_modules/x.js", "--no-default-ignore")
    assert r.returncode == 0, r.stdout


def test_include_readmits_a_default_ignored_pattern(server, code, watch):
    """--include could not override a default ignore: a vendored library under
    node_modules, or a log the app reads, never reloaded."""
    (code / "node_modules" / "mylib").mkdir(parents=True)
    (code / "node_modules" / "other").mkdir()
    w = watch("--include", "node_modules/mylib/*.js", "--include", "*.log", "--include", "*.py",
              "--to", server.target)
    g0 = gen(server)
    (code / "node_modules" / "other" / "x.js").write_text("1")  # not where the include leads
    (code / ".#views.py").write_text("1")  # emacs lock: '*.py' does not name '.#*'
    (code / "pkg" / "x.pyc").write_bytes(b"1")
    assert_quiet(w, server, g0)
    (code / "node_modules" / "mylib" / "a.js").write_text("1")
    one_reload(w, server, g0)
    (code / "app.log").write_text("1")
    w.wait_lives(2)


def test_include_over_default_explained(code):
    r = explain(code, "node_modules/mylib/a.js", "--include", "node_modules/mylib/*.js")
    assert r.returncode == 0 and "--include 'node_modules/mylib/*.js'" in r.stdout, r.stdout
    r = explain(code, "logs/app.log", "--include", "*.log")
    assert r.returncode == 0 and "over the default rule" in r.stdout, r.stdout
    r = explain(code, ".#views.py", "--include", "*.py")
    assert r.returncode == 1 and "default rule '.#*'" in r.stdout, r.stdout


# ---- chmod ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", [[], ["--poll", "50"]], ids=["inotify", "poll"])
def test_chmod_does_not_reload_touch_does(server, code, watch, backend):
    w = watch(*backend, "--to", server.target)
    g0 = gen(server)
    os.chmod(code / "views.py", 0o755)
    os.chmod(code / "pkg" / "models.py", 0o600)
    assert_quiet(w, server, g0)
    os.utime(code / "views.py")  # touch: a reload on purpose
    one_reload(w, server, g0)
    os.chmod(code / "views.py", 0o644)
    (code / "pkg" / "models.py").write_text("y = 2\n")  # chmod then write: one reload
    w.wait_lives(2)
    assert_quiet(w, server, g0, lives=2)
