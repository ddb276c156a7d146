/*
 * python.c - what netreload-fast does inside Python: a garbage collector
 * paused while apps load, and spare workers that read the app's bytecode
 * before the save.
 *
 * libpython is looked up with dlsym, not linked: the plugin serves PHP and
 * Rack apps too, and without the python plugin every call here does nothing.
 * The Python side is a few functions (PY_LIB below) run in a namespace of
 * their own, kept for the life of the process.
 *
 * Bytecode read ahead: a 5,000-module import spends a third of its time in
 * the system calls that find, open and read each module's cached bytecode
 * (five stat calls, an open, two reads and two seeks per module) and in
 * unmarshalling it. A worker that loaded the app writes the list of source
 * files it imported into a memfd the master made before any fork. A parked
 * spare reads that list, then the cached bytecode (.pyc) of every file on
 * it, unmarshalled, a slice at a time so that a wake-up is not kept waiting.
 * Once woken, its import takes a module's code from there instead of from
 * disk when the .pyc is still the file it read (device, inode, mtime, size:
 * share.c drops the .pyc of every saved file, and Python replaces a .pyc it
 * rewrites) and the source file's mtime and size still match those the .pyc
 * was compiled from, the very test Python's own loader applies to the .pyc.
 * So a module comes from there exactly when Python would have read the same
 * bytes from disk, and an edited module is compiled afresh as it would be. Only the plain
 * source loader is stood in for (SourceFileLoader; a loader of its own, such
 * as pytest's, is left alone), and only until the apps loaded.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT */
#endif
#include "python.h"

#include <dlfcn.h>
#include <stdio.h>

/* Py_file_input and Py_eval_input, from Python.h (stable since Python 2) */
#define PY_FILE_INPUT 257
#define PY_EVAL_INPUT 258

static const char PY_LIB[] =
	"import gc, marshal, os, sys, _imp\n"
	"try:\n"
	"    import _frozen_importlib_external as _be\n"
	"except ImportError:\n"
	"    import importlib._bootstrap_external as _be\n"
	/* the collector: a first threshold out of reach while apps load; put
	 * back unless the app set its own; what loading made is frozen */
	"_gc = None\n"
	"def gc_pause():\n"
	"    global _gc\n"
	"    t = gc.get_threshold()\n"
	"    if t[0] > 0:\n"
	"        _gc = t\n"
	"        gc.set_threshold(1 << 30, t[1], t[2])\n"
	"def gc_resume():\n"
	"    global _gc\n"
	"    if _gc is None:\n"
	"        return\n"
	"    if hasattr(gc, 'freeze'):\n"
	"        gc.freeze()\n"
	"    if gc.get_threshold()[0] == 1 << 30:\n"
	"        gc.set_threshold(*_gc)\n"
	"    _gc = None\n"
	/* the list of imported source files, for the next spares */
	"def modules_write(fd):\n"
	"    files = [f for f in (getattr(m, '__file__', None) for m in list(sys.modules.values()))\n"
	"             if isinstance(f, str) and f.endswith('.py')]\n"
	"    data = ('\\n'.join(files) + '\\n#end\\n').encode('utf-8', 'surrogateescape')\n"
	"    os.ftruncate(fd, 0)\n"
	"    os.pwrite(fd, data, 0)\n"
	/* the bytecode read ahead: source path -> (its .pyc, the .pyc's
	 * dev/ino/mtime/size, the source mtime and size the .pyc records, code) */
	"_todo, _code, _loader, _read, _hits = [], {}, None, 0, 0\n"
	"def preload_begin(fd):\n"
	"    global _todo\n"
	"    data = os.pread(fd, os.fstat(fd).st_size, 0).decode('utf-8', 'surrogateescape')\n"
	"    _todo = data.split('\\n')[:-2] if data.endswith('\\n#end\\n') else []\n"
	"    return len(_todo)\n"
	"def preload_step(n):\n"
	"    while _todo and n > 0:\n"
	"        n -= 1\n"
	"        path = _todo.pop()\n"
	"        try:\n"
	"            pyc = _be.cache_from_source(path)\n"
	"            with open(pyc, 'rb') as f:\n"
	"                data, st = f.read(), os.fstat(f.fileno())\n"
	"            if data[:4] != _be.MAGIC_NUMBER or data[4:8] != bytes(4):\n"
	"                continue\n" /* a hash-based .pyc: Python's own loader decides */
	"            code = marshal.loads(memoryview(data)[16:])\n"
	"        except Exception:\n"
	"            continue\n"
	"        if type(code) is type(preload_step.__code__):\n"
	"            _code[path] = (pyc, _sig(st), data[8:12], data[12:16], code)\n"
	"    global _read\n"
	"    _read = len(_code)\n"
	"    return len(_todo)\n"
	"def _sig(st):\n"
	"    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size\n"
	/* the .pyc is the one read ahead (netreload drops the .pyc of a saved
	 * file, and Python replaces a .pyc it rewrites), and it matches its
	 * source as Python's loader would check it now: else read from disk */
	"def _get_code(self, fullname):\n"
	"    global _hits\n"
	"    if type(self) is _be.SourceFileLoader:\n"
	"        path = self.get_filename(fullname)\n"
	"        hit = _code.pop(path, None)\n"
	"        try:\n"
	"            if hit is not None and _sig(os.stat(hit[0])) == hit[1]:\n"
	"                st = os.stat(path)\n"
	"                if hit[2] == (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, 'little') and \\\n"
	"                   hit[3] == (st.st_size & 0xFFFFFFFF).to_bytes(4, 'little'):\n"
	"                    _imp._fix_co_filename(hit[4], path)\n"
	"                    _hits += 1\n"
	"                    return hit[4]\n"
	"        except OSError:\n"
	"            pass\n"
	"    return _loader(self, fullname)\n"
	"def preload_use():\n"
	"    global _loader\n"
	"    if _code and _loader is None:\n"
	"        _loader = _be.SourceLoader.get_code\n"
	"        _be.SourceLoader.get_code = _get_code\n"
	"def preload_end():\n"
	"    global _loader, _todo, _hits\n"
	"    if _loader is not None:\n"
	"        _be.SourceLoader.get_code = _loader\n"
	"    used, _loader, _todo, _hits = _hits, None, [], 0\n"
	"    _code.clear()\n"
	"    return used << 32 | _read\n";

static struct {
	int tried, ok;
	int (*initialized)(void);
	int (*gil_ensure)(void);
	void (*gil_release)(int);
	void *(*run)(const char *, int, void *, void *, void *);
	long (*as_long)(void *);
	void (*decref)(void *);
	void (*err_clear)(void);
	void *ns; /* PY_LIB's namespace */
} py;

#define LOOKUP(field, name) (py.field = (typeof(py.field))dlsym(RTLD_DEFAULT, name))

static int py_ready(void)
{
	if (!py.tried) {
		void *(*dict_new)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyDict_New");
		py.tried = 1;
		if (!LOOKUP(initialized, "Py_IsInitialized") || !LOOKUP(gil_ensure, "PyGILState_Ensure") ||
		    !LOOKUP(gil_release, "PyGILState_Release") || !LOOKUP(run, "PyRun_StringFlags") ||
		    !LOOKUP(as_long, "PyLong_AsLong") || !LOOKUP(decref, "Py_DecRef") ||
		    !LOOKUP(err_clear, "PyErr_Clear") || !dict_new || !py.initialized())
			return 0;
		int gil = py.gil_ensure();
		void *r = NULL;
		py.ns = dict_new();
		if (py.ns)
			r = py.run(PY_LIB, PY_FILE_INPUT, py.ns, py.ns, NULL);
		if (r)
			py.decref(r);
		else
			py.err_clear();
		py.gil_release(gil);
		py.ok = r != NULL;
	}
	return py.ok;
}

/* Evaluates an expression of PY_LIB's; its value as a long, -1 on any error. */
static long py_eval(const char *expr)
{
	long v = -1;
	void *r;
	int gil;

	if (!py_ready())
		return -1;
	gil = py.gil_ensure();
	r = py.run(expr, PY_EVAL_INPUT, py.ns, py.ns, NULL);
	if (r) {
		v = py.as_long(r); /* None: -1 and an error, cleared below */
		py.decref(r);
	}
	py.err_clear();
	py.gil_release(gil);
	return v;
}

static long py_call_fd(const char *fn, int fd)
{
	char expr[64];

	snprintf(expr, sizeof(expr), "%s(%d)", fn, fd);
	return py_eval(expr);
}

void nr_py_gc_pause(void)
{
	py_eval("gc_pause()");
}

void nr_py_gc_resume(void)
{
	py_eval("gc_resume()");
}

void nr_py_modules_write(int fd)
{
	py_call_fd("modules_write", fd);
}

long nr_py_preload_begin(int fd)
{
	return py_call_fd("preload_begin", fd);
}

long nr_py_preload_step(int n)
{
	return py_call_fd("preload_step", n);
}

void nr_py_preload_use(void)
{
	py_eval("preload_use()");
}

long nr_py_preload_end(long *read)
{
	long v = py_eval("preload_end()");

	*read = v < 0 ? 0 : v & 0xffffffffL;
	return v < 0 ? 0 : v >> 32;
}
