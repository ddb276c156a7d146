/*
 * glue.h - the plugin's one door into uWSGI's internals (glue.c): the worker
 * table, the reload calls, the fds uWSGI must keep, --idle and the log. When
 * uWSGI changes, this is the file that changes.
 */
#ifndef NR_GLUE_H
#define NR_GLUE_H

#include <stdint.h>

#include "reload.h"
#include "util.h"

/* The worker table now (the same buffer every call; valid until the next). */
const struct nr_snapshot *nr_glue_snapshot(void);
/* What reload.c needs of uWSGI's settings, and the callbacks it acts through. */
void nr_glue_reload_setup(struct nr_reload_config *cfg, struct nr_reload_ops *ops);
/* fd survives uWSGI's closing of unknown fds across a re-exec (uwsgi_add_safe_fd). */
void nr_glue_keep_fd(int fd);
/* uWSGI's own --idle check, taken over at startup (see glue.c). */
void nr_glue_idle_take_over(void);
/* One pass of it; busy: a reload is in flight or wanted. 1 while its workers stop. */
int nr_glue_idle_check(uint64_t now, int busy);

/* netreload-fast, in a worker leaving to be replaced: the language plugins'
 * exit hooks, then _exit() (returns if this process is not such a worker). */
void nr_glue_worker_leaves(void);
/* The fd limit (soft) and uWSGI's max_fd lowered to cap; -1 if refused. */
int nr_glue_lower_max_fd(unsigned long cap);
/* Before a re-exec: uWSGI's fd-closing loop ends at the highest open fd. */
void nr_glue_shorten_close_loop(void);

#endif
