#!/usr/bin/python3
"""Print `shared-import` lines for uwsgi.ini: the library modules a worker imports
when it loads this project (wsgi module, URLconf, views, one request), which the
master can import once instead.

    cd examples/django && python3 shared_imports.py [WSGI_MODULE [PATH...]]

WSGI_MODULE defaults to mysite.wsgi; each PATH (default /) is requested once, so
what the first request imports (template loaders, the database backend) counts
too. Modules under the current directory (your project) are never listed: a
`workers` reload would not reload them. A module is listed only if importing it
in a fresh interpreter leaves Django's settings unconfigured (it must not read
settings.py in the master). Standard library only; writes nothing.
"""
import json
import os
import subprocess
import sys

PROBE = r"""
import importlib, io, json, os, sys
sys.path.insert(0, os.getcwd())
here = os.path.realpath(os.getcwd()) + os.sep
roots = {}  # library module -> True if it is imported by the project itself or at runtime


class Observer:
    # sees every import first and finds nothing; the innermost frame that runs a module's
    # top level tells who imports it (a function-level import at runtime counts as a root)
    def find_spec(self, name, path=None, target=None):
        if name in sys.modules or name in roots:
            return None
        f = sys._getframe(1)
        while f is not None:
            mod = f.f_globals.get("__name__", "")
            if f.f_code.co_name == "<module>" and not mod.startswith(("importlib", "_frozen")):
                break
            f = f.f_back
        f = f and (f.f_code.co_filename or "")
        roots[name] = not f or f == "<string>" or os.path.realpath(f).startswith(here)
        return None


sys.meta_path.insert(0, Observer())
wsgi, paths = sys.argv[1], sys.argv[2:]
mod = importlib.import_module(wsgi)
for p in paths:
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": p, "SERVER_NAME": "127.0.0.1",
           "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(),
           "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr}
    b"".join(mod.application(env, lambda *a: None))


def library(name):
    f = getattr(sys.modules.get(name), "__file__", None)
    return f is None or not os.path.realpath(f).startswith(here)


print(json.dumps([n for n, root in roots.items() if root and n in sys.modules and library(n)]))
"""

# imports the candidates, keeping those that leave Django's settings unconfigured
PICK = r"""
import importlib, json, os, sys
os.environ.pop("DJANGO_SETTINGS_MODULE", None)
import random, threading  # netreload-fast imports these in the master too
picked, refused = [], []
for m in json.loads(sys.argv[1]):
    try:
        importlib.import_module(m)
    except Exception as e:
        refused.append([m, f"{type(e).__name__}: {e}"])
        continue
    conf = sys.modules.get("django.conf")
    if conf is not None and conf.settings.configured:
        refused.append([m, "configures Django's settings at import"])
        break  # the rest would be tested in a spoilt interpreter
    picked.append(m)
print(json.dumps([picked, refused]))
"""

def run(code, *args):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       env=env, timeout=120)
    if r.returncode != 0:
        sys.exit(r.stderr.strip()[-3000:] or f"probe exited {r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    wsgi = sys.argv[1] if len(sys.argv) > 1 else "mysite.wsgi"
    paths = sys.argv[2:] or ["/"]
    found = run(PROBE, wsgi, *paths)
    # importing a.b.c imports a and a.b too
    found = [n for n in found if n not in ("random", "threading")
             and not any(o.startswith(n + ".") for o in found)]
    picked, refused = run(PICK, json.dumps(found))
    print(f"; {len(picked)} modules that {wsgi} and the request(s) import directly:")
    for n in picked:
        print(f"shared-import = {n}")
    for n, why in refused:
        print(f"; not shared: {n} ({why})")


if __name__ == "__main__":
    main()
