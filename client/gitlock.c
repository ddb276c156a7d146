/*
 * gitlock.c - waiting for git's .git/index.lock to go before a reload
 * (see gitlock.h).
 */
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "gitlock.h"
#include "report.h"

static int git_locked(const struct nr_watch *w, int nw)
{
	char path[PATH_MAX];

	for (int i = 0; i < nw; i++)
		if (!nr_path_join(path, sizeof(path), w[i].root, ".git/index.lock") &&
		    access(path, F_OK) == 0)
			return 1;
	return 0;
}

int nr_gitlock_wait(struct nr_gitlock *g, const struct nr_watch *w, int nw, uint64_t now)
{
	if (!git_locked(w, nw)) {
		g->stale = 0;
	} else if (!g->stale) {
		if (!g->since)
			g->since = now;
		if (now - g->since < NR_GIT_LOCK_MAX_MS) {
			g->check = now + NR_GIT_LOCK_RECHECK_MS;
			return 1;
		}
		nr_warning(".git/index.lock is still there after %d s; reloading anyway, and not "
			   "waiting for it again (remove it if no git command is running)",
			   NR_GIT_LOCK_MAX_MS / 1000);
		g->stale = 1;
	}
	g->since = g->check = 0;
	return 0;
}
