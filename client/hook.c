/*
 * hook.c - run --on-live and --on-fail one at a time (see hook.h).
 */
#include "hook.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HOOK_GRACE_MS 2000 /* after SIGTERM, before SIGKILL */

void nr_hooks_init(struct nr_hooks *h, const char *on_live, const char *on_fail,
		   int out_to_stderr)
{
	memset(h, 0, sizeof(*h));
	h->on_live = on_live;
	h->on_fail = on_fail;
	h->out_to_stderr = out_to_stderr;
}

static void set_num(const char *name, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	setenv(name, buf, 1);
}

/* In the child: its own group (so stopping it stops what it started), no
 * stdin (ours may be --stdin's pipe), stdout off the JSON stream, then sh. */
static void exec_hook(const struct nr_hooks *h, const struct nr_hook_job *j)
{
	int null;

	setpgid(0, 0);
	if ((null = open("/dev/null", O_RDONLY)) >= 0) {
		dup2(null, STDIN_FILENO);
		close(null);
	}
	if (h->out_to_stderr)
		dup2(STDERR_FILENO, STDOUT_FILENO);
	setenv("NETRELOAD_EVENT", j->event, 1);
	setenv("NETRELOAD_TARGET", j->target, 1);
	setenv("NETRELOAD_PATH", j->path, 1);
	setenv("NETRELOAD_REASON", j->reason, 1);
	set_num("NETRELOAD_CHANGES", j->changes);
	set_num("NETRELOAD_EXIT", (uint64_t)j->exit);
	set_num("NETRELOAD_MS", j->ms);
	set_num("NETRELOAD_GEN", j->gen);
	execl("/bin/sh", "sh", "-c", j->cmd, (char *)NULL);
	_exit(127);
}

static void start(struct nr_hooks *h, const struct nr_hook_job *j)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	h->running = j->exit ? "--on-fail" : "--on-live";
	if ((pid = fork()) < 0) {
		fprintf(stderr, "netreload: warning: cannot run %s: fork: %s\n", h->running,
			strerror(errno));
		return;
	}
	if (pid == 0)
		exec_hook(h, j);
	setpgid(pid, pid); /* also here: the group must exist before we may signal it */
	h->pid = pid;
}

void nr_hooks_result(struct nr_hooks *h, const struct nr_hook_env *e)
{
	struct nr_hook_job j = {.cmd = e->exit ? h->on_fail : h->on_live};

	if (!j.cmd)
		return;
	snprintf(j.event, sizeof(j.event), "%s", e->event);
	snprintf(j.target, sizeof(j.target), "%s", e->target);
	snprintf(j.path, sizeof(j.path), "%s", e->path ? e->path : "");
	snprintf(j.reason, sizeof(j.reason), "%s", e->reason ? e->reason : "");
	j.changes = e->changes;
	j.exit = e->exit;
	j.ms = e->ms;
	j.gen = e->gen;
	if (h->pid) {
		h->job = j; /* replaces an older waiting result */
		h->pending = 1;
		return;
	}
	start(h, &j);
}

/* Say when a hook failed: its own stderr may say why, but not that it was the hook. */
static void ended(const struct nr_hooks *h, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status))
		fprintf(stderr, "netreload: warning: %s command exited %d\n", h->running,
			WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		fprintf(stderr, "netreload: warning: %s command killed by signal %d\n", h->running,
			WTERMSIG(status));
}

void nr_hooks_reap(struct nr_hooks *h)
{
	int status;

	if (!h->pid || waitpid(h->pid, &status, WNOHANG) != h->pid)
		return;
	h->pid = 0;
	ended(h, status);
	if (h->pending) {
		h->pending = 0;
		start(h, &h->job);
	}
}

int nr_hooks_busy(const struct nr_hooks *h)
{
	return h->pid != 0 || h->pending;
}

/* Wait up to ms for the hook to end; 1 if it did. */
static int wait_ms(pid_t pid, int ms)
{
	struct timespec tick = {0, 10 * 1000000};

	for (int waited = 0; waited <= ms; waited += 10) {
		pid_t r = waitpid(pid, NULL, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return 1;
		nanosleep(&tick, NULL);
	}
	return 0;
}

void nr_hooks_stop(struct nr_hooks *h)
{
	h->pending = 0;
	if (!h->pid)
		return;
	kill(-h->pid, SIGTERM);
	if (!wait_ms(h->pid, HOOK_GRACE_MS)) {
		fprintf(stderr, "netreload: warning: %s command still running %d s after SIGTERM; "
				"killed it\n",
			h->running, HOOK_GRACE_MS / 1000);
		kill(-h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
	}
	h->pid = 0;
}
