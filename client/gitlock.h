/*
 * gitlock.h - a batch of changes waits while git holds .git/index.lock in a
 * watched tree: a checkout or a rebase writes many files, and one reload
 * after it is what is wanted. The wait is bounded; a lock that outlives the
 * bound (left by a git that crashed) is not waited for again.
 */
#ifndef NR_GITLOCK_H
#define NR_GITLOCK_H

#include <stdint.h>

#include "backend.h"

#define NR_GIT_LOCK_MAX_MS 10000 /* longest wait for .git/index.lock to go */
#define NR_GIT_LOCK_RECHECK_MS 50

struct nr_gitlock {
	uint64_t since; /* waiting for .git/index.lock since; 0: not waiting */
	uint64_t check; /* the next look at it; 0: none planned */
	int stale;	/* it outlived NR_GIT_LOCK_MAX_MS: stop waiting for it */
};

/* A batch is due at now: 1 if it must wait for git (look again at g->check),
 * 0 if it can go. w: the nw watched roots. Warns once when the wait ends
 * because the lock is stale. */
int nr_gitlock_wait(struct nr_gitlock *g, const struct nr_watch *w, int nw, uint64_t now);

#endif
