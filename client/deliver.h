/*
 * deliver.h - send each batch of changes to every target, in parallel,
 * from the watch command's poll() loop; report and retry.
 *
 * Per target at most one ping is in flight; changes that arrive meanwhile
 * make exactly one more ping once it ends. An unreachable target is retried
 * with backoff until it answers, so no change is lost.
 */
#ifndef NR_DELIVER_H
#define NR_DELIVER_H

#include <poll.h>

#include "debounce.h"
#include "hook.h"
#include "ping.h"
#include "targets.h"

#define NR_MAX_TARGETS 64		       /* replicas pinged, over all --to and --targets */
#define NR_MAX_GROUPS (NR_MAX_TARGETS + 1)     /* every --to and one --targets file */
#define NR_DELIVER_FDS (NR_MAX_TARGETS + NR_MAX_GROUPS) /* pings and lookups in flight */

struct nr_deliver_opts {
	struct nr_request req; /* verb, mode, wait; the id is made per ping */
	uint32_t timeout_ms;
	int json, quiet, color, breakdown, verbose;
	struct nr_hooks *hooks; /* --on-live / --on-fail, owned by the caller */
	const char *root;    /* list the changed files under it; NULL: --no-files */
	/* Told of each finished ping after it is reported (not of one to retry);
	 * more: changes wait for this target, so this is not its last word. */
	void (*on_result)(void *ctx, int target, const struct nr_ping *p, int more);
	void *ctx;
	const char *targets_file; /* --targets FILE, or NULL */
};

/* Where a reload's time went, adding up to total: the wait for quiet (or
 * --max-delay), in a queue behind the previous ping, for a server that was
 * down, and the reload itself. */
struct nr_parts {
	uint64_t total, debounce, queued, down, reload;
};

struct nr_dtarget {
	struct nr_ping ping;
	struct nr_addrs addrs;	  /* looked up at start, again after a connection failure */
	int busy;		  /* ping in flight */
	int pending;		  /* a batch waits for this target */
	struct nr_batch next, cur; /* waiting, in flight */
	int down;		  /* unreachable; said so already */
	int cur_after_down;	  /* cur waited for the target to come back, not in a queue */
	uint64_t t_begin;	  /* cur's ping started (its files described from then) */
	uint32_t backoff_ms;
	uint64_t retry_at;
	int last; /* NR_EXIT_* of the last finished ping, -1 before any */
	int group;	  /* the --to (or --targets) this replica belongs to */
	int gone;	  /* the slot is free: the replica left its group */
	int newcomer;	  /* added by the lookup being handled */
	/* a live reply kept for the group's one summary line and --on-live */
	int saved, s_shown; /* s_shown: its own line is out already */
	struct nr_parts s_parts;
	int s_cut;
	unsigned s_count;
	char s_path[sizeof(((struct nr_batch *)0)->path)];
};

/* One --to NAME:PORT or --targets FILE: its replicas, looked up again before a
 * reload when the answer is stale. For a name known to be several replicas a
 * batch waits (briefly) for that lookup; for one host it goes at once (as
 * before replicas), and replicas the lookup then finds get it too. */
struct nr_dgroup {
	struct nr_lookup look;
	int holding;	     /* held waits for the lookup */
	int late;	     /* held went out already; newcomers get it too */
	uint64_t hold_until; /* then it goes to the replicas known */
	struct nr_batch held;
	int slow_said;	     /* said once that lookups are slow */
	int bad;	     /* a replica failed since the last summary */
};

struct nr_deliver {
	struct nr_deliver_opts o;
	struct nr_target targets[NR_MAX_TARGETS];
	struct nr_dtarget t[NR_MAX_TARGETS];
	int n;	     /* slots in use or gone */
	int advised; /* said once how to fix a share that shows old files */
	int full_said;
	struct nr_dgroup g[NR_MAX_GROUPS];
	int ng;
};

/* Groups beyond n are left alone: d may be static storage that is never touched.
 * Each target is a group; o->targets_file one more. */
void nr_deliver_init(struct nr_deliver *d, const struct nr_target *targets, int n,
		     const struct nr_deliver_opts *o);
/* Look up every target's name once, before the first change, into its replicas;
 * prints why and returns NR_EXIT_UNREACHABLE if one does not resolve
 * (NR_EXIT_USAGE if --targets cannot be read). */
int nr_deliver_resolve(struct nr_deliver *d);
/* Changes are coming: look up again the groups whose answer is stale, so the
 * answer is there when the batch fires. */
void nr_deliver_prefetch(struct nr_deliver *d, uint64_t now);
/* A batch fired: queue it for every target and start what can start. */
void nr_deliver_batch(struct nr_deliver *d, const struct nr_batch *b, uint64_t now);
/* Fill pfd with the sockets to poll; idx[i] is the target of pfd[i] (or, when
 * negative, -1 - the group whose lookup pfd[i] is). */
int nr_deliver_pollfds(const struct nr_deliver *d, struct pollfd *pfd, int *idx, int max);
/* Advance target i after poll() (revents 0 when only time passed). */
void nr_deliver_step(struct nr_deliver *d, int i, short revents, uint64_t now);
/* Retries and time-outs: start or finish whatever is due now. */
void nr_deliver_tick(struct nr_deliver *d, uint64_t now);
/* Earliest time something needs doing (monotonic ms), 0 if nothing. */
uint64_t nr_deliver_next(const struct nr_deliver *d);
/* 1 while a ping is in flight or a change waits for a reachable target. */
int nr_deliver_busy(const struct nr_deliver *d);
/* At the end: cancel the pings in flight, drop the addresses. */
void nr_deliver_cancel(struct nr_deliver *d);
/* The worst last outcome over the targets, as an exit code. */
/* Nothing left to send or to wait for: no ping in flight, no change queued
 * (also none for a target that is down), no batch held for a lookup. */
int nr_deliver_settled(const struct nr_deliver *d);
int nr_deliver_status(const struct nr_deliver *d);

#endif
