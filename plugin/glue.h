/*
 * glue.h - the plugin's one door into uWSGI's internals (glue.c): the worker
 * table, the reload calls, uWSGI's settings and the options netreload sets,
 * the fds uWSGI must keep or watch, --idle and the log. When uWSGI changes,
 * this is the file that changes.
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
/* What startup needs to know of uWSGI's settings. */
struct nr_glue_settings {
	int master;		   /* --master is on */
	int is_a_reload;	   /* this master was re-exec'd by a graceful reload */
	int numproc;		   /* the number of workers */
	int max_fd_set;		   /* the user set max-fd */
	unsigned long long max_fd; /* the fd limit uWSGI works with (soft ulimit -n or max-fd) */
};

/* uWSGI's settings now (the same buffer every call; valid until the next). */
const struct nr_glue_settings *nr_glue_settings(void);
/* worker-reload-mercy, else reload-mercy, in seconds if the user set it above 0
 * (*key names it); 0 if neither. */
int nr_glue_user_mercy(const char **key);
/* Turn uWSGI's need-app off; 1 if it was on. */
int nr_glue_need_app_off(void);
/* shared-import = module for the python plugin; -1 if no loaded plugin has that option. */
int nr_glue_shared_import(const char *module);
/* skip-atexit-teardown = true. */
void nr_glue_skip_atexit_teardown(void);
/* uWSGI calls the functions named before and after it loads the apps (call-pre-app,
 * call-post-app). */
void nr_glue_call_around_apps(const char *before, const char *after);
/* The number of the worker this process is (uwsgi.mywid). */
int nr_glue_worker_id(void);
/* How many apps this process holds now (uwsgi_apps_cnt). */
int nr_glue_apps_held(void);
/* The master's event loop wakes when fd is readable (uwsgi.master_queue). */
void nr_glue_watch_fd(int fd);
/* 1 while uWSGI reloads the instance (uwsgi_instance_is_reloading). */
int nr_glue_reloading(void);

/* uWSGI's own --idle check, taken over at startup (see glue.c). */
void nr_glue_idle_take_over(void);
/* One pass of it; busy: a reload is in flight or wanted. 1 while its workers stop. */
int nr_glue_idle_check(uint64_t now, int busy);

/* netreload-fast, in a worker leaving to be replaced: the language plugins'
 * exit hooks, then _exit() (returns if this process is not such a worker). */
void nr_glue_worker_leaves(void);
/* A re-exec need not wait for old workers that take no more requests (glue.c). */
void nr_glue_forget_leaving_workers(void);
/* The fd limit (soft) and uWSGI's max_fd lowered to cap; -1 if refused. */
int nr_glue_lower_max_fd(unsigned long cap);
/* Before a re-exec: uWSGI's fd-closing loop ends at the highest open fd. */
void nr_glue_shorten_close_loop(void);
/* In a re-exec'd master's init: so do its two loops over inherited fds; back
 * to the full max_fd with nr_glue_restore_max_fd() at post_init. */
void nr_glue_shorten_inherited_check(void);
void nr_glue_restore_max_fd(void);

/* Spare workers (netreload-fast, workers or chain mode): doubles the worker
 * table before uWSGI allocates it, half of it parked. NULL when done, else
 * why spares cannot work with this configuration. */
const char *nr_glue_spares_setup(void);
/* In a worker about to load its apps: wait while its slot is parked. */
void nr_glue_spare_park(void);
/* In a worker whose apps loaded: what the spares need for the next reload. */
void nr_glue_spare_loaded(void);
/* After a swap: the master tick (ms) the spares still need, 0 for none; while
 * the old workers are still to be reaped the master must keep turning, so
 * their slots are respawned (and park) at once, and a while later the
 * parked spares are told to copy their pages. */
unsigned nr_glue_spares_settling(uint64_t now);

#endif
