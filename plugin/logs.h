/*
 * logs.h - why an app failed to load, without owning fd 2.
 *
 * A process that loads apps (the master, or each worker with lazy-apps) says
 * so around uwsgi_init_all_apps(): nr_logs_begin() points its fd 2 at a pipe
 * read by a small relay process (forked by a starter process the master made
 * at init) that writes every line on to the real fd 2 at once and keeps the
 * last NR_LOGS_TAIL bytes; nr_logs_end() points fd 2
 * back and waits until the relay has put the tail into the loader's slot of
 * a MAP_SHARED area the master created before forking, where the master
 * reads a worker's reason. Outside that window fd 2 is never touched:
 * --logto, --daemonize, --log-master, loggers, encoders, rotation and
 * reopening see exactly the fd uWSGI set up. The relay outlives the loader
 * (exit, crash, SIGKILL) until every writer is gone, so nothing printed
 * while apps load is lost. No thread.
 *
 * Nothing here knows uWSGI: logs.c is unit-tested alone (tests/unit/test_logs.c).
 */
#ifndef NR_LOGS_H
#define NR_LOGS_H

#include <stddef.h>
#include <sys/types.h>

#define NR_LOGS_TAIL 8192 /* bytes of a load's output kept for its reason */

/* Master, before any child is forked: slots 0 (the master) to nslots - 1,
 * and the starter of relays. 0, or -1 with errno (then no reasons, and
 * logging is untouched). */
int nr_logs_init(int nslots);

/* The fd that reaches the starter (every process that loads apps needs it),
 * or -1. */
int nr_logs_fd(void);

/* Around loading apps in this process; slot is its worker id (0: master).
 * Both are no-ops when the relay cannot be set up. nr_logs_end() waits for the
 * relay to publish the tail, unless loaded says the apps are in (the wait
 * was on every new worker's way to serving; logs.c says what it costs). */
void nr_logs_begin(int slot);
void nr_logs_end(int loaded);

/* Put "app failed to load: Type: message (file:line)" into dst if the last
 * load in slot (by pid, or by anyone when pid is 0) printed an exception;
 * 1 if it did, else 0. */
int nr_logs_reason(int slot, pid_t pid, char *dst, size_t len);

/* The same from any text (the part that is unit-tested on its own). */
int nr_logs_parse_reason(const char *text, char *dst, size_t len);

#endif
