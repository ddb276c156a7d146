/*
 * backend.c - which backend watches a root: --stdin, --poll, or inotify
 * where there is one; polling when inotify runs out, at start or later,
 * with a warning that names the limit and how to raise it. The backends
 * never print; this file says what went wrong with them.
 */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "report.h"

#define FALLBACK_POLL_MS 500 /* polling period after inotify ran out */

int nr_backend_failed(const struct nr_watch *w, const char *what)
{
	char root[NR_TTY_SIZE(sizeof(w->root))], err[NR_TTY_SIZE(sizeof(w->err))];

	nr_error("%s %s: %s", what, nr_tty(w->root, root, sizeof(root)),
		 nr_tty(w->err, err, sizeof(err)));
	return NR_EXIT_WATCH;
}

/* The sysctl behind each inotify limit, and a value that is plenty for it. */
static const struct {
	const char *sysctl, *plenty;
} inotify_limits[] = {
	[NR_LIMIT_WATCHES] = {"fs.inotify.max_user_watches", "524288"},
	[NR_LIMIT_INSTANCES] = {"fs.inotify.max_user_instances", "1024"},
};

/* The sysctl's value now, from /proc/sys, or "?" */
static void sysctl_value(const char *name, char *out, size_t len)
{
	char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/sys/%s", name);
	for (char *p = path; *p; p++)
		if (*p == '.')
			*p = '/';
	snprintf(out, len, "?");
	if (!(fp = fopen(path, "r")))
		return;
	if (!fgets(out, (int)len, fp))
		snprintf(out, len, "?");
	out[strcspn(out, "\n")] = '\0';
	fclose(fp);
}

/* Name the limit that ran out, its value, and the command that raises it. */
static void inotify_limit_warning(const struct nr_watch *w)
{
	const char *name = inotify_limits[w->limit].sysctl;
	char now[32];

	sysctl_value(name, now, sizeof(now));
	nr_warning("%s under %s (%s = %s); falling back to polling every %d ms. "
		   "To use inotify again, raise the limit: sudo sysctl %s=%s",
		   w->err, w->root, name, now, w->period_ms, name, inotify_limits[w->limit].plenty);
}


/* inotify ran out: poll w from now on, every poll_ms (or the fallback period). */
static int to_polling(struct nr_watch *w, int poll_ms)
{
	w->be = &nr_watch_poll;
	w->period_ms = poll_ms ? poll_ms : FALLBACK_POLL_MS;
	inotify_limit_warning(w);
	if (w->be->open(w))
		return nr_backend_failed(w, "cannot watch");
	return 0;
}

int nr_backend_open(struct nr_watch *w, int use_stdin, int poll_ms)
{
	int rc;

	w->be = use_stdin ? &nr_watch_stdin
		: poll_ms || !nr_watch_inotify.open ? &nr_watch_poll
						    : &nr_watch_inotify;
	w->period_ms = poll_ms;
	if (w->be == &nr_watch_poll && !poll_ms)
		nr_warning("no inotify on this system; polling every %d ms (or pipe a watcher in: "
			   "fswatch -r DIR | netreload watch --stdin ...)",
			   w->period_ms = FALLBACK_POLL_MS);
	rc = w->be->open(w);
	if (rc == NR_WATCH_LIMIT)
		return to_polling(w, poll_ms);
	if (rc)
		return nr_backend_failed(w, "cannot watch");
	return 0;
}

int nr_backend_fallback(struct nr_watch *w, int poll_ms)
{
	w->be->close(w);
	return to_polling(w, poll_ms);
}
