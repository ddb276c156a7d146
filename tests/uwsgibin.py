"""The uWSGI that the tests and benchmarks run, and how it gets Python.

NETRELOAD_UWSGI names the binary (default: `uwsgi` on PATH; `make test
UWSGI=/path/to/uwsgi` sets it). Debian's uWSGI loads python3_plugin.so from its
plugin directory; a self-built one has it next to the binary (or in
NETRELOAD_UWSGI_PLUGINS); pip's has Python built in and needs no plugin.
"""
import functools
import os
import shutil
import subprocess
from pathlib import Path

UWSGI = os.path.abspath(shutil.which(os.environ.get("NETRELOAD_UWSGI") or "uwsgi") or "uwsgi")


@functools.lru_cache(maxsize=None)
def builtin_python():
    """True when this uWSGI has the python plugin compiled in (pip's build)."""
    r = subprocess.run([UWSGI, "--plugins-list"], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    return any(line.strip() == "0: python" for line in (r.stdout + r.stderr).splitlines())


@functools.lru_cache(maxsize=None)
def python_plugin_dir():
    """Where python3_plugin.so is, when uWSGI would not find it by itself."""
    d = os.environ.get("NETRELOAD_UWSGI_PLUGINS")
    if d:
        return str(Path(d).resolve())
    here = Path(UWSGI).resolve().parent
    if (here / "python3_plugin.so").exists():
        return str(here)
    return None


def python_args():
    """The argv that loads Python into this uWSGI."""
    return [] if builtin_python() else ["--plugin", "python3"]


def uwsgi_cmd(build, *more):
    """uWSGI with Python, then netreload's build dir to look in for the plugin
    (Python first, so a python3_plugin.so is taken from uWSGI's own directory)."""
    return [UWSGI, *python_args(), "--plugins-dir", str(build), *more]


def env_vars():
    """What every uWSGI process (also ini files and Emperor vassals) needs in
    its environment to find Python: UWSGI_PLUGINS_DIR is uWSGI's env form of
    --plugins-dir."""
    d = None if builtin_python() else python_plugin_dir()
    return {"UWSGI_PLUGINS_DIR": d} if d else {}


def version():
    return subprocess.run([UWSGI, "--version"], capture_output=True, text=True,
                          timeout=30).stdout.strip()
