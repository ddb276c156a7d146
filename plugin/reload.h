/*
 * reload.h - the reload in flight (reload.c): a state machine fed snapshots of
 * uWSGI's worker table (glue.c takes them). It knows nothing of uWSGI: what it
 * decides to do to processes and to the waiting clients it asks of the
 * callbacks it was given, so a unit test can drive it (tests/unit/test_reload.c).
 */
#ifndef NR_RELOAD_H
#define NR_RELOAD_H

#include <stdint.h>
#include <sys/types.h>

#include "../common/nr_proto.h"
#include "handover.h"

#define NR_FAST_TICK_MS 1 /* master wake-up period while a reload is in flight ... */
#define NR_FAST_TICK_AGE 64 /* ... or its age over this, once that is longer ... */
#define NR_FAST_TICK_MAX_MS 16 /* ... up to this */
#define NR_PENDING_TICK_MS 10 /* ... while one waits for its workers or the share */

/* One slot of the worker table, as the reload checks need it. */
struct nr_slot {
	int wid;		  /* uWSGI's worker id (0: the slot's index) */
	pid_t pid;
	int accepting;
	int apps_cnt;
	int cheaped;
	int busy;		  /* in a request (uwsgi_worker_is_busy) */
	int cursed;		  /* uWSGI asked it to stop (cursed_at) */
	int manage_next_request; /* cleared by its SIGHUP handler */
};

/* The worker table and the instance's state, at one moment. */
struct nr_snapshot {
	int numproc;
	struct nr_slot *slot; /* [0] the master (apps it loaded), [1..numproc] the workers */
	int reloading, dying;  /* uwsgi_instance_is_reloading / _dying */
	int mules, spooler;    /* some mule / spooler process runs */
	int apps_expected;     /* the loaded plugins serve apps (not PHP, CGI) */
};

/* Settings, from the options (and uWSGI's lazy flags), fixed at startup. */
struct nr_reload_config {
	enum nr_mode mode; /* the default mode */
	int lazy, lazy_apps;
	int timeout;	      /* s */
	int grace_ms;
	int share_timeout_ms; /* 0: do not wait for the share */
	const char *root;     /* NULL: the current directory */
};

/* When the steps of a generation happened (ms; 0: not yet, or unknown). */
struct nr_reload_times {
	uint64_t stop, spawn, load;
};

/* What the state machine has done to the outside world. */
struct nr_reload_ops {
	void (*start)(enum nr_mode mode);  /* start uWSGI's reload in this mode */
	void (*signal)(pid_t pid, int sig);
	void (*forkbomb)(int pause);	     /* 1: skip uWSGI's fork-bomb pause; 0: restore it */
	void (*wakeup)(int fd);	     /* wake the master when fd is readable */
	/* generation rep->gen ended: answer whoever waits for it */
	void (*finished)(const struct nr_reply *rep, const struct nr_reload_times *t, uint64_t now);
};

void nr_reload_init(const struct nr_reload_config *cfg, const struct nr_reload_ops *ops);

/* A request for a reload: the generation that will answer it. */
uint64_t nr_request_reload(const struct nr_snapshot *s, enum nr_mode mode, uint64_t now);
uint64_t nr_request_reload_files(const struct nr_snapshot *s, enum nr_mode mode, uint64_t now,
				 const struct nr_file *files, int n, uint32_t more);
/* A master loop pass: first the reload in flight moves on (it may end) ... */
void nr_reload_check(const struct nr_snapshot *s, uint64_t now);
/* ... then (after the --idle check; idle_stopping: its workers are being
 * stopped) the wanted reload starts if it can. Returns the tick the master
 * should wake at (ms; 0: none needed for a reload). */
uint64_t nr_reload_next(const struct nr_snapshot *s, uint64_t now, int idle_stopping);
/* A reload is in flight or wanted. */
int nr_reload_busy(void);
const char *nr_reload_last_reason(void);
void nr_status_reply(const struct nr_snapshot *s, struct nr_reply *rep);
int nr_mode_loads_new_code(enum nr_mode mode);
int nr_mode_reexecs(enum nr_mode mode);
void nr_reload_export(struct nr_handover *h);
void nr_share_export(struct nr_handover *h);
void nr_reload_import(const struct nr_handover *h);
void nr_reload_master_exit(void);

#endif
