/*
 * loop.c - the watch command's one poll() loop (see loop.h): signals, the
 * backends' changes through the filter, batches out to the targets when due,
 * the saves that only restyle or reload the pages, and the pages' wait for
 * every target's final answer.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "loop.h"
#include "report.h"

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t got_stop, got_child;

/* ---- changes ----------------------------------------------------------- */

enum { FOR_SERVERS, FOR_STYLES, FOR_PAGES };

/* Whether one of the globs matches rel (one without '/' matches the base
 * name, as in .gitignore). */
static int glob_any(const char *const *globs, int n, const char *rel)
{
	const char *base = strrchr(rel, '/');

	for (int i = 0; i < n; i++)
		if (nr_glob_match(globs[i], strchr(globs[i], '/') ? rel : base ? base + 1 : rel))
			return 1;
	return 0;
}

/* With --browser, who a change is for: the servers, or only the pages
 * (--browser-only reloads them, --browser-static restyles them). */
static int change_for(const struct nr_loop *c, const char *rel, int is_dir)
{
	if (!c->o->browser || !*rel || is_dir)
		return FOR_SERVERS;
	if (glob_any(c->o->onlys, c->o->nonlys, rel))
		return FOR_PAGES;
	if (glob_any(c->o->statics, c->o->nstatics, rel))
		return FOR_STYLES;
	return FOR_SERVERS;
}

static void on_change(void *ctx, struct nr_watch *w, const char *rel, int is_dir)
{
	struct nr_loop *c = ctx;
	const char *base = strrchr(rel, '/');
	char why[PATH_MAX], shown[NR_TTY_SIZE(PATH_MAX)], shown_why[NR_TTY_SIZE(PATH_MAX)];
	int yes, to;

	if (rel[0] == '/') {
		/* --stdin: the other watcher may watch more than we were asked to */
		if (c->o->verbose)
			fprintf(stderr, "netreload: %s: ignored (outside %s)\n",
				nr_tty(rel, shown, sizeof(shown)), nr_tty(w->root, shown_why, sizeof(shown_why)));
		return;
	}
	if (!strcmp(base ? base + 1 : rel, ".gitignore"))
		nr_filter_forget(w->filter, rel);
	yes = *rel ? nr_filter_check(w->filter, rel, is_dir, why, sizeof(why)) : 1;
	if (c->o->verbose)
		fprintf(stderr, "netreload: %s%s: %s (%s)\n", *rel ? nr_tty(rel, shown, sizeof(shown)) : ".",
			is_dir ? "/" : "", yes ? "changed" : "ignored",
			*rel ? nr_tty(why, shown_why, sizeof(shown_why)) : "rescan");
	if (yes && (to = change_for(c, rel, is_dir)) != FOR_SERVERS) {
		nr_debounce_add(&c->sdeb, rel, 0, nr_now_ms());
		c->sdeb_page |= to == FOR_PAGES;
		return;
	}
	/* only files of the first root are listed; a directory that went, or a
	 * rescan (""), cannot say which files changed */
	if (yes)
		nr_debounce_add(&c->deb, *rel ? rel : ".", *rel && !is_dir && w == &c->w[0],
				nr_now_ms());
}

/* inotify ran out while the tree grew: poll from now on, reload to be safe. */
static int runtime_fallback(struct nr_loop *c, struct nr_watch *w)
{
	int rc = nr_backend_fallback(w, c->o->poll_ms);

	if (rc == 0)
		on_change(c, w, "", 1);
	return rc;
}

/* With -v, say when directories come or go, and what their table costs:
 * over a long run it must follow the tree, not the history of the tree. */
static void log_dirs(const struct nr_loop *c, const struct nr_watch *w, int ndirs, size_t bytes)
{
	char root[NR_TTY_SIZE(sizeof(w->root))];

	if (!c->o->verbose || (w->ndirs == ndirs && w->table_bytes == bytes))
		return;
	fprintf(stderr, "netreload: now %d dir%s watched under %s", w->ndirs,
		w->ndirs == 1 ? "" : "s", nr_tty(w->root, root, sizeof(root)));
	if (w->table_bytes)
		fprintf(stderr, " (%s table: %zu bytes)", w->be->name, w->table_bytes);
	fputc('\n', stderr);
}

static int read_backend(struct nr_loop *c, int i)
{
	struct nr_watch *w = &c->w[i];
	int ndirs = w->ndirs;
	size_t bytes = w->table_bytes;
	int rc = w->be->read(w, on_change, c);

	log_dirs(c, w, ndirs, bytes);

	/* the period is the rest between scans: a scan of a big tree takes a while */
	c->next_scan[i] = nr_now_ms() + (uint64_t)w->period_ms;
	if (rc == NR_WATCH_EOF)
		c->eof = 1;
	else if (rc == NR_WATCH_LIMIT)
		return runtime_fallback(c, w);
	else if (rc)
		return nr_backend_failed(w, "watching");
	return 0;
}

/* ---- --browser: pages reload once every target is live ------------------ */

/* A batch goes to every target (every replica): the pages wait for each one's
 * final answer. */
static void follow_batch(struct nr_loop *c, const struct nr_batch *b)
{
	if (!c->o->browser)
		return;
	if (!c->following)
		c->follow_since = b->t_first;
	c->following = 1;
	c->follow_failed = 0; /* what failed before this batch is not the last word */
	snprintf(c->follow_path, sizeof(c->follow_path), "%s", b->path);
}

/* deliver.c's result callback: show a failure at once; reload once nothing is
 * left to send or wait for (a target that is down still counts). */
static void follow_result(void *ctx, int i, const struct nr_ping *p, int more)
{
	struct nr_loop *c = ctx;
	char why[NR_BROWSER_REASON_MAX];

	(void)i;
	if (!c->following)
		return;
	if (p->result != NR_EXIT_OK) {
		c->follow_failed = 1;
		snprintf(why, sizeof(why), "%s: %s", p->target.label,
			 p->result == NR_EXIT_FAILED ? p->final.reason : p->err);
		nr_browser_failed(&c->br, why);
	}
	if (more || !nr_deliver_settled(&c->del))
		return;
	c->following = 0;
	if (!c->follow_failed)
		nr_browser_live(&c->br, c->follow_path, (unsigned)(nr_now_ms() - c->follow_since));
}

int nr_loop_open_browser(struct nr_loop *c)
{
	char err[400];

	if (nr_browser_open(&c->br, c->o->browser, err, sizeof(err))) {
		nr_error("%s", err);
		return NR_EXIT_USAGE;
	}
	c->o->d.on_result = follow_result;
	c->o->d.ctx = c;
	return 0;
}

/* A batch is due: wait (bounded) for git to finish a checkout, then send it. */
static void fire_if_due(struct nr_loop *c, uint64_t now)
{
	uint64_t due = nr_debounce_due(&c->deb);
	struct nr_batch b;

	if (due)
		nr_deliver_prefetch(&c->del, now); /* names looked up while the burst settles */
	if (!due || now < due || now < c->lock.check || nr_gitlock_wait(&c->lock, c->w, c->nw, now))
		return;
	nr_debounce_take(&c->deb, &b, now);
	follow_batch(c, &b);
	nr_deliver_batch(&c->del, &b, now);
}

/* Saves for the pages alone: stylesheets restyle them (several at once: all
 * of them, ""), a --browser-only file reloads them, unless a server reload
 * is under way: its live reloads them anyway, and a page loaded before
 * would meet the server in the middle of it. */
static void fire_static(struct nr_loop *c, uint64_t now)
{
	uint64_t due = nr_debounce_due(&c->sdeb);
	char shown[NR_TTY_SIZE(sizeof(((struct nr_batch *)0)->path))];
	struct nr_batch b;
	int pages, reload = c->sdeb_page;

	if (!due || now < due)
		return;
	nr_debounce_take(&c->sdeb, &b, now);
	c->sdeb_page = 0;
	if (reload && c->following)
		return;
	if (reload)
		nr_browser_live(&c->br, b.path, (unsigned)(now - b.t_first));
	else
		nr_browser_css(&c->br, b.count > 1 ? "" : b.path);
	pages = nr_browser_pages(&c->br);
	if (c->o->d.json) {
		nr_json_begin(stdout, reload ? "reloaded" : "restyled", NULL);
		nr_json_path(stdout, "path", b.path);
		printf(",\"changes\":%u,\"pages\":%d", b.count, pages);
		nr_json_end(stdout);
	} else if (!c->o->d.quiet) {
		printf("%s", nr_tty(b.path, shown, sizeof(shown)));
		if (b.count > 1)
			printf(" (+%u)", b.count - 1);
		printf(" \u2192 %d page%s %s\n", pages, pages == 1 ? "" : "s",
		       reload ? "reloaded" : "restyled");
	}
}

/* ---- the loop ---------------------------------------------------------- */

static void on_signal(int sig)
{
	int saved = errno;
	char b = (char)sig;

	if (sig == SIGCHLD)
		got_child = 1;
	else
		got_stop = 1;
	if (write(sig_pipe[1], &b, 1) < 0) {
		/* full pipe: a wake-up is pending anyway */
	}
	errno = saved;
}

int nr_loop_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	if (nr_pipe_nonblock(sig_pipe))
		return -1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	return 0;
}

/* On the way out: give the pipe back, so whatever runs at exit (a sanitizer's
 * leak check, say) has the fds it needs even when we ran out of them. */
void nr_loop_signals_off(void)
{
	struct sigaction sa = {.sa_handler = SIG_DFL};

	if (sig_pipe[0] < 0)
		return;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	close(sig_pipe[0]);
	close(sig_pipe[1]);
	sig_pipe[0] = sig_pipe[1] = -1;
}

static void drain_signals(struct nr_loop *c)
{
	char buf[64];

	while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
		;
	if (got_child) {
		got_child = 0;
		nr_hooks_reap(&c->hooks); /* the only children we start */
	}
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

static int poll_timeout(const struct nr_loop *c, uint64_t now)
{
	uint64_t due = nr_debounce_due(&c->deb), at;

	if (due && c->lock.check > due)
		due = c->lock.check; /* waiting for git: look again later, not at once */
	at = earliest(due, nr_deliver_next(&c->del));
	at = earliest(at, nr_debounce_due(&c->sdeb));
	at = earliest(at, nr_browser_next(&c->br));
	for (int i = 0; i < c->nw && !c->eof; i++)
		if (c->w[i].fd < 0)
			at = earliest(at, c->next_scan[i]);
	if (!at)
		return -1;
	return at <= now ? 0 : at - now > 60000 ? 60000 : (int)(at - now);
}

/* One round: wait for anything, then let every party advance. */
static int loop_once(struct nr_loop *c)
{
	struct pollfd pfd[1 + NR_MAX_ROOTS + NR_DELIVER_FDS + 1 + NR_BROWSER_CONNS];
	int widx[NR_MAX_ROOTS], tidx[NR_DELIVER_FDS], nw = 0, nt, nb, rc;
	uint64_t now = nr_now_ms();

	pfd[0] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
	for (int i = 0; i < c->nw && !c->eof; i++)
		if (c->w[i].fd >= 0) {
			pfd[1 + nw] = (struct pollfd){.fd = c->w[i].fd, .events = POLLIN};
			widx[nw++] = i;
		}
	nt = nr_deliver_pollfds(&c->del, pfd + 1 + nw, tidx, NR_DELIVER_FDS);
	nb = nr_browser_pollfds(&c->br, pfd + 1 + nw + nt, 1 + NR_BROWSER_CONNS);
	if (poll(pfd, (nfds_t)(1 + nw + nt + nb), poll_timeout(c, now)) < 0 && errno != EINTR) {
		nr_error("poll: %s", strerror(errno));
		return NR_EXIT_WATCH;
	}
	drain_signals(c);
	now = nr_now_ms();
	for (int j = 0; j < nw; j++)
		if (pfd[1 + j].revents && (rc = read_backend(c, widx[j])))
			return rc;
	for (int i = 0; i < c->nw && !c->eof; i++)
		if (c->w[i].fd < 0 && now >= c->next_scan[i] && (rc = read_backend(c, i)))
			return rc;
	for (int j = 0; j < nt; j++)
		nr_deliver_step(&c->del, tidx[j], pfd[1 + nw + j].revents, now);
	nr_browser_step(&c->br, pfd + 1 + nw + nt, nb, now);
	return 0;
}

int nr_loop_run(struct nr_loop *c)
{
	int rc;

	for (;;) {
		uint64_t now = nr_now_ms();
		nr_deliver_tick(&c->del, now);
		fire_if_due(c, now);
		fire_static(c, now);
		nr_deliver_tick(&c->del, now);
		nr_browser_tick(&c->br, now);
		if (got_stop)
			return NR_EXIT_OK;
		/* --stdin ended: finish the reloads, and the hooks they started */
		if (c->eof && !nr_debounce_due(&c->deb) && !nr_deliver_busy(&c->del) &&
		    !nr_hooks_busy(&c->hooks))
			return nr_deliver_status(&c->del);
		if ((rc = loop_once(c)))
			return rc;
	}
}

