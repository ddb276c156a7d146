/*
 * python.h - netreload-fast inside Python (python.c): libpython is looked up,
 * not linked; without the python plugin every call does nothing.
 */
#ifndef NR_PYTHON_H
#define NR_PYTHON_H

/* Python's garbage collector paused while apps load; resumed (and what the
 * load made frozen) after, unless the app set it itself. */
void nr_py_gc_pause(void);
void nr_py_gc_resume(void);

/* A worker that loaded the app: the source files it imported, into fd. */
void nr_py_modules_write(int fd);

/* A parked spare: reads the list from fd (how many files it holds, -1 without
 * Python), then the cached bytecode of up to n of them per step (how many
 * are left); once woken, uses it while the apps load, and drops it after:
 * how many modules came from it, of the *read it held. */
long nr_py_preload_begin(int fd);
long nr_py_preload_step(int n);
void nr_py_preload_use(void);
long nr_py_preload_end(long *read);

#endif
