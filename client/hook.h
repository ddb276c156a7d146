/*
 * hook.h - the watch command's --on-live and --on-fail commands.
 *
 * This file owns the hook processes: at most one runs at a time. A result
 * that comes while one runs waits, and only the newest waiting one is kept
 * (an older one is dropped: its news is stale). Hooks run in their own
 * process group, with stdin from /dev/null, and are stopped with SIGTERM
 * (SIGKILL after HOOK_GRACE_MS) when the watcher ends.
 */
#ifndef NR_HOOK_H
#define NR_HOOK_H

#include <stdint.h>
#include <sys/types.h>

/* One result, as the hook sees it in its environment (netreload(1), ENVIRONMENT). */
struct nr_hook_env {
	const char *event;  /* NETRELOAD_EVENT: live, failed, timeout, unreachable, ... */
	const char *target; /* NETRELOAD_TARGET */
	const char *path;   /* NETRELOAD_PATH: the file that changed last */
	unsigned changes;   /* NETRELOAD_CHANGES */
	int exit;	    /* NETRELOAD_EXIT: 0 live, else the exit code of the failure */
	uint64_t ms;	    /* NETRELOAD_MS: first change to result */
	uint64_t gen;	    /* NETRELOAD_GEN: the server's generation, 0 if none */
	const char *reason; /* NETRELOAD_REASON: why it failed; "" when live */
};

/* A copy of a result that waits for the running hook to end. */
struct nr_hook_job {
	const char *cmd;
	char event[32], target[272], path[1024], reason[1024];
	unsigned changes;
	int exit;
	uint64_t ms, gen;
};

struct nr_hooks {
	const char *on_live, *on_fail; /* NULL: none */
	int out_to_stderr;	       /* --json: stdout is for JSON only */
	pid_t pid;		       /* the running hook, 0 if none */
	int pending;		       /* job waits */
	struct nr_hook_job job;	       /* the newest waiting result */
	const char *running;	       /* "--on-live" or "--on-fail", for messages */
};

void nr_hooks_init(struct nr_hooks *h, const char *on_live, const char *on_fail,
		   int out_to_stderr);
/* A result: run its hook (--on-live when e->exit is 0, --on-fail otherwise) now
 * if none runs, else keep it as the one waiting. */
void nr_hooks_result(struct nr_hooks *h, const struct nr_hook_env *e);
/* After SIGCHLD: collect the hook if it ended, then start the waiting one. */
void nr_hooks_reap(struct nr_hooks *h);
/* 1 while a hook runs or one waits. */
int nr_hooks_busy(const struct nr_hooks *h);
/* At the end: drop the waiting one, stop the running one and wait for it. */
void nr_hooks_stop(struct nr_hooks *h);

#endif
