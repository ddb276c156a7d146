/*
 * watch.c - `netreload watch`: watch source trees and ping on every change.
 *
 * The one poll() loop lives here. It waits on a self-pipe for signals, on
 * each backend's fd (or its period), and on the sockets of the pings in
 * flight; changed paths go through the filter into the debouncer, whose
 * batches deliver.c sends to every target.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "compat.h"
#include "debounce.h"
#include "deliver.h"
#include "filter.h"
#include "watch.h"

#define MAX_ROOTS 16
#define NR_EXIT_WATCH 7		  /* cannot watch: backend failed (6 is NR_EXIT_AUTH) */
#define FALLBACK_POLL_MS 500	  /* polling period after inotify ran out */
#define GIT_LOCK_MAX_MS 10000	  /* longest wait for .git/index.lock to go */
#define GIT_LOCK_RECHECK_MS 50

static const char usage_watch[] =
	"usage: netreload watch [OPTIONS] --to HOST:PORT [DIR...]\n"
	"\n"
	"Watch DIR (default .) and ping every target when a source file changes.\n"
	"\n"
	"      --to HOST:PORT  a server to reload; repeat for several (pinged in parallel)\n"
	"  -e, --ext LIST      only files with these extensions, e.g. py,html,txt\n"
	"  -i, --include GLOB  only (or also, with --ext) paths matching GLOB; repeatable;\n"
	"                      beats .gitignore, except inside an ignored directory\n"
	"  -x, --exclude GLOB  never paths matching GLOB; repeatable\n"
	"      --no-gitignore  do not read .gitignore files\n"
	"      --explain PATH  say whether PATH would reload and which rule decides;\n"
	"                      exit 0 if it would, 1 if not\n"
	"      --debounce MS   wait for MS quiet milliseconds before pinging (default 20)\n"
	"      --max-delay MS  but never more than MS after the first change (default 300)\n"
	"      --poll MS       scan the tree every MS ms instead of using inotify\n"
	"      --stdin         read changed paths from stdin, one per line\n"
	"                      (e.g. fswatch -r DIR | netreload watch --stdin --to ...)\n"
	"  -m, --mode MODE     graceful, chain, workers, brutal-workers or brutal\n"
	"  -n, --no-wait       do not wait until the new code is live\n"
	"      --no-files      do not list the changed files in requests (see below)\n"
	"  -t, --timeout SEC   give up on one reload after SEC seconds (default 60)\n"
	"  -s, --secret-file F sign requests with the secret in F (default:\n"
	"                      $NETRELOAD_SECRET_FILE)\n"
	"      --on-live CMD   run CMD with /bin/sh after each live reload\n"
	"                      (env NETRELOAD_TARGET, NETRELOAD_MS, NETRELOAD_GEN, NETRELOAD_PATH)\n"
	"  -b, --breakdown     after each live line, where the reload's time went\n"
	"  -j, --json          one JSON object per event on stdout\n"
	"  -q, --quiet         print only failures and warnings\n"
	"  -v, --verbose       log every changed path and the rule that kept or ignored it,\n"
	"                      the addresses each --to name resolved to, and the number\n"
	"                      of directories watched when it changes\n"
	"  -h, --help          this help\n"
	"\n"
	"Ignored by default: .git .hg .svn __pycache__ node_modules venv .venv (and any\n"
	"dir with pyvenv.cfg) .tox caches, *.pyc, editor swap/backup/lock files, *.log.\n"
	"Each request lists the changed files of the first DIR (size, mtime, SHA-256);\n"
	"the server waits until it sees them under its netreload-root. If it gives up,\n"
	"the reload fails with stale=N, and netreload says (once) what to change.\n"
	"exit: 0 stopped by SIGINT/SIGTERM (or --stdin ended and the last reloads went\n"
	"      well), 2 usage, 3 a --to name does not resolve, 7 cannot watch; at the\n"
	"      end of --stdin, the worst of the last reloads (1 failed, 3 unreachable,\n"
	"      4 timeout, 5 protocol, 6 auth, 8 untrusted).\n";

enum { OPT_TO = 256, OPT_NO_GITIGNORE, OPT_EXPLAIN, OPT_DEBOUNCE, OPT_MAX_DELAY, OPT_POLL, OPT_STDIN,
       OPT_ON_LIVE, OPT_NO_FILES };

struct watch_opts {
	struct nr_target targets[NR_MAX_TARGETS];
	int ntargets;
	struct nr_filter_opts f;
	uint32_t debounce_ms, max_delay_ms;
	int poll_ms, use_stdin, verbose, no_files;
	struct nr_deliver_opts d;
	const char *explain, *secret;
	const char *dirs[MAX_ROOTS];
	int ndirs;
};

struct watch_ctx {
	struct watch_opts *o;
	struct nr_watch w[MAX_ROOTS];
	uint64_t next_scan[MAX_ROOTS]; /* for backends without an fd */
	int nw;
	struct nr_debounce deb;
	struct nr_deliver del;
	int eof;	      /* --stdin reached its end */
	uint64_t lock_since;  /* waiting for .git/index.lock since */
	uint64_t lock_check;  /* next look at it */
	int lock_stale;	      /* it outlived GIT_LOCK_MAX_MS: stop waiting for it */
};

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t got_stop, got_child;

/* ---- options ---------------------------------------------------------- */

static int usage_error(const char *fmt, const char *arg)
{
	return nr_usage_error("watch", fmt, arg);
}

static int parse_ms(const char *s, uint32_t *ms, uint32_t min)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (end == s || *end || *s == '-' || v < min || v > 3600000)
		return -1;
	*ms = (uint32_t)v;
	return 0;
}

static int add_glob(const char **list, int *n, const char *glob)
{
	if (*n >= NR_FILTER_MAX_GLOBS)
		return usage_error("too many globs (at most 64): '%s'", glob);
	list[(*n)++] = glob;
	return 0;
}

static int add_target(struct watch_opts *o, const char *spec)
{
	char err[300];

	if (o->ntargets >= NR_MAX_TARGETS)
		return usage_error("too many targets (at most 64): '%s'", spec);
	if (nr_target_parse(spec, &o->targets[o->ntargets], err, sizeof(err)))
		return usage_error("%s", err);
	o->ntargets++;
	return 0;
}

/* Options that only set something in o; 1 if c was not one of them. */
static int simple_option(struct watch_opts *o, int c)
{
	uint32_t v;

	switch (c) {
	case 'e': o->f.exts = optarg; return 0;
	case OPT_NO_GITIGNORE: o->f.gitignore = 0; return 0;
	case OPT_EXPLAIN: o->explain = optarg; return 0;
	case OPT_STDIN: o->use_stdin = 1; return 0;
	case OPT_ON_LIVE: o->d.on_live = optarg; return 0;
	case OPT_NO_FILES: o->no_files = 1; return 0;
	case 'n': o->d.req.wait = 0; return 0;
	case 'j': o->d.json = 1; return 0;
	case 'b': o->d.breakdown = 1; return 0;
	case 'q': o->d.quiet = 1; return 0;
	case 'v': o->verbose = o->d.verbose = 1; return 0;
	case 's': o->secret = optarg; return 0;
	case OPT_POLL:
		if (parse_ms(optarg, &v, 10))
			return usage_error("bad --poll '%s': give milliseconds, at least 10", optarg);
		o->poll_ms = (int)v;
		return 0;
	}
	return 1;
}

static int one_option(struct watch_opts *o, int c)
{
	if (simple_option(o, c) == 0)
		return 0;
	switch (c) {
	case OPT_TO: return add_target(o, optarg);
	case 'i': return add_glob(o->f.includes, &o->f.nincludes, optarg);
	case 'x': return add_glob(o->f.excludes, &o->f.nexcludes, optarg);
	case OPT_DEBOUNCE:
		if (parse_ms(optarg, &o->debounce_ms, 0))
			return usage_error("bad --debounce '%s': give milliseconds", optarg);
		return 0;
	case OPT_MAX_DELAY:
		if (parse_ms(optarg, &o->max_delay_ms, 1))
			return usage_error("bad --max-delay '%s': give milliseconds", optarg);
		return 0;
	case 'm':
		if (nr_mode_parse(optarg, &o->d.req.mode))
			return usage_error("unknown mode '%s' (graceful, chain, workers, brutal-workers, brutal)",
					   optarg);
		return 0;
	case 't':
	case 'T': /* -T: what -t was before 0.2 */
		if (nr_parse_seconds(optarg, &o->d.timeout_ms))
			return usage_error("bad --timeout '%s': give seconds", optarg);
		return 0;
	}
	return NR_EXIT_USAGE; /* getopt_long returns no other value */
}

static int parse_options(struct watch_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{"to", required_argument, 0, OPT_TO},	     {"ext", required_argument, 0, 'e'},
		{"include", required_argument, 0, 'i'},	     {"exclude", required_argument, 0, 'x'},
		{"no-gitignore", no_argument, 0, OPT_NO_GITIGNORE},
		{"explain", required_argument, 0, OPT_EXPLAIN},
		{"debounce", required_argument, 0, OPT_DEBOUNCE},
		{"max-delay", required_argument, 0, OPT_MAX_DELAY},
		{"poll", required_argument, 0, OPT_POLL},    {"stdin", no_argument, 0, OPT_STDIN},
		{"mode", required_argument, 0, 'm'},	     {"no-wait", no_argument, 0, 'n'},
		{"timeout", required_argument, 0, 't'},	     {"on-live", required_argument, 0, OPT_ON_LIVE},
		{"json", no_argument, 0, 'j'},		     {"quiet", no_argument, 0, 'q'},
		{"verbose", no_argument, 0, 'v'},	     {"help", no_argument, 0, 'h'},
		{"secret-file", required_argument, 0, 's'}, {"breakdown", no_argument, 0, 'b'},
		{"no-files", no_argument, 0, OPT_NO_FILES},
		{0, 0, 0, 0}};
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":t:e:i:x:m:nT:jbqvs:h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage_watch, stdout);
			return -1;
		}
		if (c == '?' || c == ':')
			return nr_getopt_error("watch", c, argv, opts);
		if ((rc = one_option(o, c)))
			return rc;
	}
	for (int i = optind; i < argc; i++) {
		if (o->ndirs >= MAX_ROOTS)
			return usage_error("too many directories (at most 16): '%s'", argv[i]);
		o->dirs[o->ndirs++] = argv[i];
	}
	if (!o->ndirs)
		o->dirs[o->ndirs++] = ".";
	if (!o->ntargets && !o->explain)
		return usage_error("%s", "no target: add --to HOST:PORT (e.g. --to 127.0.0.1:9001)");
	if (o->use_stdin && o->poll_ms)
		return usage_error("%s", "--stdin and --poll exclude each other: pick one");
	return o->explain ? 0 : nr_use_secret(o->secret);
}

/* ---- roots and backends ------------------------------------------------ */

/* "WHAT ROOT: WHY" on stderr, both escaped (names come from the disk). */
static int watch_failed(const struct nr_watch *w, const char *what)
{
	char root[NR_TTY_SIZE(sizeof(w->root))], err[NR_TTY_SIZE(sizeof(w->err))];

	nr_error("%s %s: %s", what, nr_tty(w->root, root, sizeof(root)),
		 nr_tty(w->err, err, sizeof(err)));
	return NR_EXIT_WATCH;
}

static int open_root(struct nr_watch *w, const char *dir, const struct nr_filter_opts *f)
{
	char real[PATH_MAX], shown[NR_TTY_SIZE(PATH_MAX)];
	struct stat st;

	if (!realpath(dir, real) || stat(real, &st)) {
		return nr_usage_error("watch", "cannot watch '%s': %s (give an existing directory)",
				      nr_tty(dir, shown, sizeof(shown)), strerror(errno));
	}
	if (!S_ISDIR(st.st_mode)) {
		return nr_usage_error("watch", "cannot watch '%s': not a directory (give its directory, "
					       "and --include to pick files)",
				      nr_tty(dir, shown, sizeof(shown)));
	}
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->dir = dir;
	snprintf(w->root, sizeof(w->root), "%s", real);
	if (!(w->filter = nr_filter_new(w->root, f))) {
		nr_error("out of memory");
		return NR_EXIT_WATCH;
	}
	return 0;
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
	fprintf(stderr,
		"netreload: warning: %s under %s (%s = %s); falling back to polling every %d ms. "
		"To use inotify again, raise the limit: sudo sysctl %s=%s\n",
		w->err, w->root, name, now, w->period_ms, name, inotify_limits[w->limit].plenty);
}

/* inotify where there is one, polling otherwise or when inotify runs out. */
static int open_backend(struct watch_ctx *c, struct nr_watch *w)
{
	int rc;

	w->be = c->o->use_stdin ? &nr_watch_stdin
		: c->o->poll_ms || !nr_watch_inotify.open ? &nr_watch_poll
							  : &nr_watch_inotify;
	w->period_ms = c->o->poll_ms;
	if (w->be == &nr_watch_poll && !c->o->poll_ms)
		fprintf(stderr, "netreload: warning: no inotify on this system; polling every %d ms "
				"(or pipe a watcher in: fswatch -r DIR | netreload watch --stdin ...)\n",
			w->period_ms = FALLBACK_POLL_MS);
	rc = w->be->open(w);
	if (rc == NR_WATCH_LIMIT) {
		w->be = &nr_watch_poll;
		w->period_ms = c->o->poll_ms ? c->o->poll_ms : FALLBACK_POLL_MS;
		inotify_limit_warning(w);
		rc = w->be->open(w);
	}
	if (rc) {
		return watch_failed(w, "cannot watch");
	}
	return 0;
}

static void close_roots(struct watch_ctx *c)
{
	for (int i = 0; i < c->nw; i++) {
		if (c->w[i].be)
			c->w[i].be->close(&c->w[i]);
		nr_filter_free(c->w[i].filter);
	}
	c->nw = 0;
}

/* ---- changes ----------------------------------------------------------- */

static void on_change(void *ctx, struct nr_watch *w, const char *rel, int is_dir)
{
	struct watch_ctx *c = ctx;
	const char *base = strrchr(rel, '/');
	char why[PATH_MAX], shown[NR_TTY_SIZE(PATH_MAX)], shown_why[NR_TTY_SIZE(PATH_MAX)];
	int yes;

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
	/* only files of the first root are listed; a directory that went, or a
	 * rescan (""), cannot say which files changed */
	if (yes)
		nr_debounce_add(&c->deb, *rel ? rel : ".", *rel && !is_dir && w == &c->w[0],
				nr_mono_ms());
}

/* inotify ran out while the tree grew: poll from now on, reload to be safe. */
static int runtime_fallback(struct watch_ctx *c, struct nr_watch *w)
{
	w->be->close(w);
	w->be = &nr_watch_poll;
	w->period_ms = c->o->poll_ms ? c->o->poll_ms : FALLBACK_POLL_MS;
	inotify_limit_warning(w);
	if (w->be->open(w)) {
		return watch_failed(w, "cannot watch");
	}
	on_change(c, w, "", 1);
	return 0;
}

/* With -v, say when directories come or go, and what their table costs:
 * over a long run it must follow the tree, not the history of the tree. */
static void log_dirs(const struct watch_ctx *c, const struct nr_watch *w, int ndirs, size_t bytes)
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

static int read_backend(struct watch_ctx *c, int i)
{
	struct nr_watch *w = &c->w[i];
	int ndirs = w->ndirs;
	size_t bytes = w->table_bytes;
	int rc = w->be->read(w, on_change, c);

	log_dirs(c, w, ndirs, bytes);

	/* the period is the rest between scans: a scan of a big tree takes a while */
	c->next_scan[i] = nr_mono_ms() + (uint64_t)w->period_ms;
	if (rc == NR_WATCH_EOF)
		c->eof = 1;
	else if (rc == NR_WATCH_LIMIT)
		return runtime_fallback(c, w);
	else if (rc) {
		return watch_failed(w, "watching");
	}
	return 0;
}

static int git_locked(const struct watch_ctx *c)
{
	char path[PATH_MAX];

	for (int i = 0; i < c->nw; i++)
		if (!nr_path_join(path, sizeof(path), c->w[i].root, ".git/index.lock") &&
		    access(path, F_OK) == 0)
			return 1;
	return 0;
}

/* A batch is due: wait (bounded) for git to finish a checkout, then send it. */
static void fire_if_due(struct watch_ctx *c, uint64_t now)
{
	uint64_t due = nr_debounce_due(&c->deb);
	struct nr_batch b;

	if (!due || now < due || now < c->lock_check)
		return;
	if (!git_locked(c)) {
		c->lock_stale = 0;
	} else if (!c->lock_stale) {
		if (!c->lock_since)
			c->lock_since = now;
		if (now - c->lock_since < GIT_LOCK_MAX_MS) {
			c->lock_check = now + GIT_LOCK_RECHECK_MS;
			return;
		}
		fprintf(stderr, "netreload: warning: .git/index.lock is still there after %d s; "
				"reloading anyway, and not waiting for it again (remove it if no git "
				"command is running)\n",
			GIT_LOCK_MAX_MS / 1000);
		c->lock_stale = 1;
	}
	c->lock_since = c->lock_check = 0;
	nr_debounce_take(&c->deb, &b, now);
	nr_deliver_batch(&c->del, &b, now);
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

static int setup_signals(void)
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
static void teardown_signals(void)
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

static void drain_signals(void)
{
	char buf[64];

	while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
		;
	if (got_child) {
		got_child = 0;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

static int poll_timeout(const struct watch_ctx *c, uint64_t now)
{
	uint64_t due = nr_debounce_due(&c->deb), at;

	if (due && c->lock_check > due)
		due = c->lock_check; /* waiting for git: look again later, not at once */
	at = earliest(due, nr_deliver_next(&c->del));
	for (int i = 0; i < c->nw && !c->eof; i++)
		if (c->w[i].fd < 0)
			at = earliest(at, c->next_scan[i]);
	if (!at)
		return -1;
	return at <= now ? 0 : at - now > 60000 ? 60000 : (int)(at - now);
}

/* One round: wait for anything, then let every party advance. */
static int loop_once(struct watch_ctx *c)
{
	struct pollfd pfd[1 + MAX_ROOTS + NR_MAX_TARGETS];
	int widx[MAX_ROOTS], tidx[NR_MAX_TARGETS], nw = 0, nt, rc;
	uint64_t now = nr_mono_ms();

	pfd[0] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
	for (int i = 0; i < c->nw && !c->eof; i++)
		if (c->w[i].fd >= 0) {
			pfd[1 + nw] = (struct pollfd){.fd = c->w[i].fd, .events = POLLIN};
			widx[nw++] = i;
		}
	nt = nr_deliver_pollfds(&c->del, pfd + 1 + nw, tidx, NR_MAX_TARGETS);
	if (poll(pfd, (nfds_t)(1 + nw + nt), poll_timeout(c, now)) < 0 && errno != EINTR) {
		nr_error("poll: %s", strerror(errno));
		return NR_EXIT_WATCH;
	}
	drain_signals();
	now = nr_mono_ms();
	for (int j = 0; j < nw; j++)
		if (pfd[1 + j].revents && (rc = read_backend(c, widx[j])))
			return rc;
	for (int i = 0; i < c->nw && !c->eof; i++)
		if (c->w[i].fd < 0 && now >= c->next_scan[i] && (rc = read_backend(c, i)))
			return rc;
	for (int j = 0; j < nt; j++)
		nr_deliver_step(&c->del, tidx[j], pfd[1 + nw + j].revents, now);
	return 0;
}

static int run_loop(struct watch_ctx *c)
{
	int rc;

	for (;;) {
		uint64_t now = nr_mono_ms();
		nr_deliver_tick(&c->del, now);
		fire_if_due(c, now);
		nr_deliver_tick(&c->del, now);
		if (got_stop)
			return NR_EXIT_OK;
		if (c->eof && !nr_debounce_due(&c->deb) && !nr_deliver_busy(&c->del))
			return nr_deliver_status(&c->del);
		if ((rc = loop_once(c)))
			return rc;
	}
}

/* ---- start-up ---------------------------------------------------------- */

static void startup_line(const struct watch_ctx *c)
{
	char root[NR_TTY_SIZE(sizeof(c->w[0].root))];
	int dirs = 0;

	for (int i = 0; i < c->nw; i++)
		dirs += c->w[i].ndirs;
	if (c->o->use_stdin)
		fprintf(stderr, "netreload: watching paths read from stdin, relative to ");
	else
		fprintf(stderr, "netreload: watching %d dir%s under ", dirs, dirs == 1 ? "" : "s");
	for (int i = 0; i < c->nw; i++)
		fprintf(stderr, "%s%s", i ? ", " : "", nr_tty(c->w[i].root, root, sizeof(root)));
	if (c->w[0].period_ms)
		fprintf(stderr, " (%s every %d ms) \u2192", c->w[0].be->name, c->w[0].period_ms);
	else
		fprintf(stderr, " (%s) \u2192", c->w[0].be->name);
	for (int i = 0; i < c->o->ntargets; i++)
		fprintf(stderr, "%s %s", i ? "," : "", c->o->targets[i].label);
	fputc('\n', stderr);
}

/* --explain PATH: the filter's verdict for one path, relative to the first root. */
static int explain(struct watch_ctx *c, const char *arg)
{
	char full[PATH_MAX * 2], real[PATH_MAX], why[PATH_MAX];
	char shown[NR_TTY_SIZE(PATH_MAX)], shown_why[NR_TTY_SIZE(PATH_MAX * 2)];
	const char *root = c->w[0].root, *rel = NULL;
	size_t rlen = strlen(root);
	struct stat st;
	int yes;

	snprintf(full, sizeof(full), "%s", arg);
	if (realpath(arg, real))
		snprintf(full, sizeof(full), "%s", real);
	else if (arg[0] != '/' && getcwd(real, sizeof(real)))
		snprintf(full, sizeof(full), "%s/%s", real, arg[0] == '.' && arg[1] == '/' ? arg + 2 : arg);
	if (!strncmp(full, root, rlen) && full[rlen] == '/')
		rel = full + rlen + 1;
	else if (!strcmp(root, "/"))
		rel = full + 1;
	if (!rel || !*rel) {
		return nr_usage_error("watch", "--explain '%s': not inside %s (give a path in the "
				      "watched directory)",
				      nr_tty(arg, shown, sizeof(shown)),
				      nr_tty(root, shown_why, sizeof(shown_why)));
	}
	yes = nr_filter_check(c->w[0].filter, rel, stat(full, &st) == 0 && S_ISDIR(st.st_mode), why,
			      sizeof(why));
	nr_tty(arg, shown, sizeof(shown));
	nr_tty(why, shown_why, sizeof(shown_why));
	if (yes)
		printf("%s: would trigger a reload (%s)\n", shown, shown_why);
	else
		printf("%s: ignored by %s\n", shown, shown_why);
	return yes ? 0 : 1;
}

static void defaults(struct watch_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->f.gitignore = 1;
	o->debounce_ms = 20;
	o->max_delay_ms = 300;
	o->d.req.verb = NR_VERB_RELOAD;
	o->d.req.wait = 1;
	o->d.timeout_ms = 60000;
}

static int start_watching(struct watch_ctx *c)
{
	int rc;

	for (int i = 0; i < c->o->ndirs; i++) {
		if ((rc = open_root(&c->w[i], c->o->dirs[i], &c->o->f)))
			return rc;
		c->nw++;
		if (c->o->use_stdin)
			break; /* one stream of paths: the first DIR is their root */
	}
	if (c->o->explain)
		return 0;
	if (setup_signals()) {
		nr_error("pipe: %s", strerror(errno));
		return NR_EXIT_WATCH;
	}
	for (int i = 0; i < c->nw; i++)
		if ((rc = open_backend(c, &c->w[i])))
			return rc;
	return 0;
}

int nr_cmd_watch(int argc, char **argv)
{
	static struct watch_opts o;
	static struct watch_ctx c; /* zero, and left so: clearing it would touch every
				      target's buffers (nr_deliver_init clears those in use) */
	int rc;

	defaults(&o);
	c.o = &o;
	if ((rc = parse_options(&o, argc, argv)))
		return rc < 0 ? NR_EXIT_OK : rc;
	o.d.color = !o.d.json && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((rc = start_watching(&c)))
		goto out;
	if (o.explain) {
		rc = explain(&c, o.explain);
		goto out;
	}
	nr_debounce_init(&c.deb, o.debounce_ms, o.max_delay_ms);
	o.d.root = o.no_files ? NULL : c.w[0].root;
	nr_deliver_init(&c.del, o.targets, o.ntargets, &o.d);
	if ((rc = nr_deliver_resolve(&c.del)) == 0) {
		if (!o.d.quiet)
			startup_line(&c);
		for (int i = 0; i < c.nw; i++)
			c.next_scan[i] = nr_mono_ms() + (uint64_t)c.w[i].period_ms;
		rc = run_loop(&c);
	}
	nr_deliver_cancel(&c.del);
out:
	close_roots(&c);
	teardown_signals();
	return rc;
}
