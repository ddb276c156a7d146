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

#define NR_MAX_TARGETS 64

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
};

struct nr_deliver {
	struct nr_deliver_opts o;
	struct nr_target targets[NR_MAX_TARGETS];
	struct nr_dtarget t[NR_MAX_TARGETS];
	int n;
	int advised; /* said once how to fix a share that shows old files */
};

/* Targets beyond n are left alone: d may be static storage that is never touched. */
void nr_deliver_init(struct nr_deliver *d, const struct nr_target *targets, int n,
		     const struct nr_deliver_opts *o);
/* Look up every target's name once, before the first change; prints why and
 * returns NR_EXIT_UNREACHABLE if one does not resolve. */
int nr_deliver_resolve(struct nr_deliver *d);
/* A batch fired: queue it for every target and start what can start. */
void nr_deliver_batch(struct nr_deliver *d, const struct nr_batch *b, uint64_t now);
/* Fill pfd with the sockets to poll; idx[i] is the target of pfd[i]. */
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
int nr_deliver_status(const struct nr_deliver *d);

#endif
