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
#include <unistd.h>

#include "browser.h"
#include "client.h"
#include "compat.h"
#include "debounce.h"
#include "deliver.h"
#include "filter.h"
#include "backend.h"

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
	"      --to HOST:PORT  a server to reload; repeat for several (pinged in parallel);\n"
	"                      a name with several addresses means each of them, looked\n"
	"                      up again before a reload (scaled services)\n"
	"      --targets FILE  also every HOST:PORT line of FILE (# comments), re-read\n"
	"                      when it changes\n"
	"  -e, --ext LIST      only files with these extensions, e.g. py,html,txt (any case)\n"
	"  -i, --include GLOB  only (or also, with --ext) paths matching GLOB; repeatable;\n"
	"                      beats .gitignore, except inside an ignored directory, and\n"
	"                      the default ignores (node_modules/mylib/*.js reaches in)\n"
	"  -x, --exclude GLOB  never paths matching GLOB; repeatable\n"
	"      --no-gitignore  do not read .gitignore files\n"
	"      --no-default-ignore  drop the default ignores listed below\n"
	"      --explain PATH  say whether PATH would reload and which rule decides;\n"
	"                      exit 0 if it would, 1 if not\n"
	"      --debounce MS   wait for MS quiet milliseconds before pinging (default 20)\n"
	"      --burst-quiet MS  in a burst (several files, or changes within MS of the\n"
	"                      last), wait for MS quiet milliseconds instead (default 250)\n"
	"      --max-delay MS  but never more than MS after the first change (default 10000)\n"
	"      --poll MS       scan the tree every MS ms instead of using inotify\n"
	"      --stdin         read changed paths from stdin, one per line, absolute or\n"
	"                      relative to DIR (not to the current directory), e.g.\n"
	"                      fswatch -r -l 0.1 DIR | netreload watch --stdin --to ... DIR\n"
	"  -m, --mode MODE     graceful, chain, workers, brutal-workers or brutal\n"
	"  -n, --no-wait       do not wait until the new code is live\n"
	"      --no-files      do not list the changed files in requests (see below)\n"
	"  -t, --timeout SEC   give up on one reload after SEC seconds (default 60)\n"
	"  -s, --secret-file F sign requests with the secret in F (default:\n"
	"                      $NETRELOAD_SECRET_FILE)\n"
	"      --on-live CMD   run CMD with /bin/sh after each live reload\n"
	"      --on-fail CMD   run CMD with /bin/sh after each failed or unreachable one;\n"
	"                      one hook runs at a time, the newest result waits for it\n"
	"                      (env NETRELOAD_EVENT, _TARGET, _EXIT, _MS, _GEN, _PATH,\n"
	"                      _CHANGES, _REASON; see netreload(1))\n"
	"      --browser [ADDR:]PORT  serve pages that follow the reloads (default\n"
	"                      address 127.0.0.1): add <script src=\"http://ADDR:PORT/\n"
	"                      netreload.js\"></script> to the page; it reloads once\n"
	"                      every target is live and shows why a reload failed\n"
	"      --browser-static GLOB  with --browser, a saved file matching GLOB\n"
	"                      (default *.css; repeatable) restyles the pages in place\n"
	"                      and reloads no server\n"
	"      --browser-only GLOB  with --browser, a saved file matching GLOB (e.g.\n"
	"                      '*.js', 'templates/**'; repeatable) reloads the pages\n"
	"                      and no server\n"
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
	"A change of mode only (chmod) does not reload; touch does.\n"
	"Each request lists the changed files of the first DIR (size, mtime, SHA-256);\n"
	"the server waits until it sees them under its netreload-root. If it gives up,\n"
	"the reload fails with stale=N, and netreload says (once) what to change.\n"
	"exit: 0 stopped by SIGINT/SIGTERM (or --stdin ended and the last reloads went\n"
	"      well), 2 usage, 3 a --to name does not resolve, 7 cannot watch; at the\n"
	"      end of --stdin, the worst of the last reloads (1 failed, 3 unreachable,\n"
	"      4 timeout, 5 protocol, 6 auth, 8 untrusted).\n";

enum { OPT_TO = 256, OPT_NO_GITIGNORE, OPT_EXPLAIN, OPT_DEBOUNCE, OPT_MAX_DELAY, OPT_POLL, OPT_STDIN,
       OPT_ON_LIVE, OPT_ON_FAIL, OPT_NO_FILES, OPT_BURST_QUIET, OPT_NO_DEFAULT_IGNORE,
       OPT_BROWSER, OPT_BROWSER_STATIC, OPT_BROWSER_ONLY, OPT_TARGETS };

/* Timing defaults; NR_UNSET marks one the user did not give. */
#define DEFAULT_DEBOUNCE_MS 20
#define DEFAULT_BURST_QUIET_MS 250
#define DEFAULT_MAX_DELAY_MS 10000
#define NR_UNSET UINT32_MAX

struct watch_opts {
	struct nr_target targets[NR_MAX_TARGETS];
	int ntargets;
	struct nr_filter_opts f;
	uint32_t debounce_ms, burst_ms, max_delay_ms; /* NR_UNSET until given or defaulted */
	int poll_ms, use_stdin, verbose, no_files;
	struct nr_deliver_opts d;
	const char *explain, *secret;
	const char *on_live, *on_fail;
	const char *browser; /* --browser [ADDR:]PORT, or NULL */
	const char *statics[NR_FILTER_MAX_GLOBS]; /* --browser-static: restyle the pages */
	int nstatics;
	const char *onlys[NR_FILTER_MAX_GLOBS]; /* --browser-only: reload them, not uWSGI */
	int nonlys;
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
	struct nr_hooks hooks;
	int eof;	      /* --stdin reached its end */
	uint64_t lock_since;  /* waiting for .git/index.lock since */
	uint64_t lock_check;  /* next look at it */
	int lock_stale;	      /* it outlived GIT_LOCK_MAX_MS: stop waiting for it */
	/* --browser: the pages, the static saves that only restyle them, and the
	 * targets whose final answer the pages still wait for */
	struct nr_browser br;
	struct nr_debounce sdeb;
	int sdeb_page;	       /* sdeb holds a --browser-only file: reload the pages */
	int following;	       /* pages wait for the targets' answers to a batch */
	int follow_failed;     /* a final answer since the last batch was not live */
	uint64_t follow_since; /* first change of what the pages wait for */
	char follow_path[sizeof(((struct nr_batch *)0)->path)]; /* and the last one */
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

static int set_exts(struct watch_opts *o, const char *exts)
{
	char err[400];

	if (nr_filter_check_exts(exts, err, sizeof(err)))
		return usage_error("%s", err);
	o->f.exts = exts;
	return 0;
}

/* Options that only set something in o; 1 if c was not one of them. */
static int simple_option(struct watch_opts *o, int c)
{
	uint32_t v;

	switch (c) {
	case OPT_NO_GITIGNORE: o->f.gitignore = 0; return 0;
	case OPT_NO_DEFAULT_IGNORE: o->f.no_defaults = 1; return 0;
	case OPT_EXPLAIN: o->explain = optarg; return 0;
	case OPT_STDIN: o->use_stdin = 1; return 0;
	case OPT_ON_LIVE: o->on_live = optarg; return 0;
	case OPT_ON_FAIL: o->on_fail = optarg; return 0;
	case OPT_BROWSER: o->browser = optarg; return 0;
	case OPT_NO_FILES: o->no_files = 1; return 0;
	case OPT_TARGETS: o->d.targets_file = optarg; return 0;
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
	case 'e': return set_exts(o, optarg);
	case 'i': return add_glob(o->f.includes, &o->f.nincludes, optarg);
	case 'x': return add_glob(o->f.excludes, &o->f.nexcludes, optarg);
	case OPT_BROWSER_STATIC: return add_glob(o->statics, &o->nstatics, optarg);
	case OPT_BROWSER_ONLY: return add_glob(o->onlys, &o->nonlys, optarg);
	case OPT_DEBOUNCE:
		if (parse_ms(optarg, &o->debounce_ms, 0))
			return usage_error("bad --debounce '%s': give milliseconds", optarg);
		return 0;
	case OPT_MAX_DELAY:
		if (parse_ms(optarg, &o->max_delay_ms, 1))
			return usage_error("bad --max-delay '%s': give milliseconds", optarg);
		return 0;
	case OPT_BURST_QUIET:
		if (parse_ms(optarg, &o->burst_ms, 0))
			return usage_error("bad --burst-quiet '%s': give milliseconds", optarg);
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

/* "--max-delay 100" as given, or "--max-delay (default 10000)". */
static const char *timing_name(char *buf, size_t len, const char *opt, uint32_t ms, int given)
{
	snprintf(buf, len, given ? "%s %u" : "%s (default %u)", opt, (unsigned)ms);
	return buf;
}

static void conflict(char *msg, size_t len, const char *a, const char *how, const char *b)
{
	snprintf(msg, len, "conflicting timing: %s is %s than %s "
			   "(need --debounce <= --burst-quiet <= --max-delay)", a, how, b);
}

/* Fill in the timing options not given, within the ones given, and refuse
 * those that contradict each other: debounce <= burst-quiet <= max-delay. */
static int timing_options(struct watch_opts *o)
{
	int deb_set = o->debounce_ms != NR_UNSET, burst_set = o->burst_ms != NR_UNSET;
	int max_set = o->max_delay_ms != NR_UNSET;
	char a[64], b[64], msg[2 * 64 + 128];

	if (!deb_set)
		o->debounce_ms = DEFAULT_DEBOUNCE_MS;
	if (!max_set)
		o->max_delay_ms = DEFAULT_MAX_DELAY_MS;
	if (!deb_set && o->debounce_ms > o->max_delay_ms)
		o->debounce_ms = o->max_delay_ms;
	if (!burst_set) {
		o->burst_ms = o->debounce_ms > DEFAULT_BURST_QUIET_MS ? o->debounce_ms : DEFAULT_BURST_QUIET_MS;
		if (o->burst_ms > o->max_delay_ms)
			o->burst_ms = o->max_delay_ms;
	}
	if (o->debounce_ms > o->max_delay_ms)
		conflict(msg, sizeof(msg), timing_name(a, sizeof(a), "--debounce", o->debounce_ms, deb_set),
			 "longer", timing_name(b, sizeof(b), "--max-delay", o->max_delay_ms, max_set));
	else if (o->burst_ms < o->debounce_ms)
		conflict(msg, sizeof(msg), timing_name(a, sizeof(a), "--burst-quiet", o->burst_ms, burst_set),
			 "shorter", timing_name(b, sizeof(b), "--debounce", o->debounce_ms, deb_set));
	else if (o->burst_ms > o->max_delay_ms)
		conflict(msg, sizeof(msg), timing_name(a, sizeof(a), "--burst-quiet", o->burst_ms, burst_set),
			 "longer", timing_name(b, sizeof(b), "--max-delay", o->max_delay_ms, max_set));
	else
		return 0;
	return usage_error("%s", msg);
}

static int parse_options(struct watch_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{"to", required_argument, 0, OPT_TO},	     {"ext", required_argument, 0, 'e'},
		{"targets", required_argument, 0, OPT_TARGETS},
		{"include", required_argument, 0, 'i'},	     {"exclude", required_argument, 0, 'x'},
		{"no-gitignore", no_argument, 0, OPT_NO_GITIGNORE},
		{"no-default-ignore", no_argument, 0, OPT_NO_DEFAULT_IGNORE},
		{"explain", required_argument, 0, OPT_EXPLAIN},
		{"debounce", required_argument, 0, OPT_DEBOUNCE},
		{"max-delay", required_argument, 0, OPT_MAX_DELAY},
		{"burst-quiet", required_argument, 0, OPT_BURST_QUIET},
		{"poll", required_argument, 0, OPT_POLL},    {"stdin", no_argument, 0, OPT_STDIN},
		{"mode", required_argument, 0, 'm'},	     {"no-wait", no_argument, 0, 'n'},
		{"timeout", required_argument, 0, 't'},	     {"on-live", required_argument, 0, OPT_ON_LIVE},
		{"on-fail", required_argument, 0, OPT_ON_FAIL},
		{"json", no_argument, 0, 'j'},		     {"quiet", no_argument, 0, 'q'},
		{"verbose", no_argument, 0, 'v'},	     {"help", no_argument, 0, 'h'},
		{"secret-file", required_argument, 0, 's'}, {"breakdown", no_argument, 0, 'b'},
		{"no-files", no_argument, 0, OPT_NO_FILES},
		{"browser", required_argument, 0, OPT_BROWSER},
		{"browser-static", required_argument, 0, OPT_BROWSER_STATIC},
		{"browser-only", required_argument, 0, OPT_BROWSER_ONLY},
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
	if (!o->ntargets && !o->d.targets_file && !o->explain)
		return usage_error("%s", "no target: add --to HOST:PORT (e.g. --to 127.0.0.1:9001)");
	if (o->use_stdin && o->poll_ms)
		return usage_error("%s", "--stdin and --poll exclude each other: pick one");
	if ((rc = timing_options(o)))
		return rc;
	if ((o->nstatics || o->nonlys) && !o->browser)
		return usage_error("%s", "--browser-static and --browser-only need --browser [ADDR:]PORT");
	if (!o->nstatics)
		o->statics[o->nstatics++] = "*.css";
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
static int change_for(const struct watch_ctx *c, const char *rel, int is_dir)
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
	struct watch_ctx *c = ctx;
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
		nr_debounce_add(&c->sdeb, rel, 0, nr_mono_ms());
		c->sdeb_page |= to == FOR_PAGES;
		return;
	}
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

/* ---- --browser: pages reload once every target is live ------------------ */

/* A batch goes to every target (every replica): the pages wait for each one's
 * final answer. */
static void follow_batch(struct watch_ctx *c, const struct nr_batch *b)
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
	struct watch_ctx *c = ctx;
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
		nr_browser_live(&c->br, c->follow_path, (unsigned)(nr_mono_ms() - c->follow_since));
}

/* A batch is due: wait (bounded) for git to finish a checkout, then send it. */
static void fire_if_due(struct watch_ctx *c, uint64_t now)
{
	uint64_t due = nr_debounce_due(&c->deb);
	struct nr_batch b;

	if (due)
		nr_deliver_prefetch(&c->del, now); /* names looked up while the burst settles */
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
	follow_batch(c, &b);
	nr_deliver_batch(&c->del, &b, now);
}

/* Saves for the pages alone: stylesheets restyle them (several at once: all
 * of them, ""), a --browser-only file reloads them, unless a server reload
 * is under way: its live reloads them anyway, and a page loaded before
 * would meet the server in the middle of it. */
static void fire_static(struct watch_ctx *c, uint64_t now)
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

static void drain_signals(struct watch_ctx *c)
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

static int poll_timeout(const struct watch_ctx *c, uint64_t now)
{
	uint64_t due = nr_debounce_due(&c->deb), at;

	if (due && c->lock_check > due)
		due = c->lock_check; /* waiting for git: look again later, not at once */
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
static int loop_once(struct watch_ctx *c)
{
	struct pollfd pfd[1 + MAX_ROOTS + NR_DELIVER_FDS + 1 + NR_BROWSER_CONNS];
	int widx[MAX_ROOTS], tidx[NR_DELIVER_FDS], nw = 0, nt, nb, rc;
	uint64_t now = nr_mono_ms();

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
	now = nr_mono_ms();
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

static int run_loop(struct watch_ctx *c)
{
	int rc;

	for (;;) {
		uint64_t now = nr_mono_ms();
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

/* ---- start-up ---------------------------------------------------------- */

static void startup_line(const struct watch_ctx *c)
{
	char root[NR_TTY_SIZE(sizeof(c->w[0].root))];
	int dirs = 0;

	for (int i = 0; i < c->nw; i++)
		dirs += c->w[i].ndirs;
	if (c->o->use_stdin)
		fprintf(stderr, "netreload: watching paths read from stdin, absolute or relative to ");
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
	if (c->o->d.targets_file)
		fprintf(stderr, "%s %s", c->o->ntargets ? "," : "", c->o->d.targets_file);
	fputc('\n', stderr);
	if (c->o->browser)
		fprintf(stderr, "netreload: pages follow with <script src=\"http://%s/netreload.js\"></script>\n",
			c->br.label);
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
	o->debounce_ms = o->burst_ms = o->max_delay_ms = NR_UNSET;
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

/* --browser: listen before the first change, and hear every final answer. */
static int open_browser(struct watch_ctx *c)
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
	nr_debounce_init(&c.deb, o.debounce_ms, o.burst_ms, o.max_delay_ms);
	o.d.root = o.no_files ? NULL : c.w[0].root;
	nr_hooks_init(&c.hooks, o.on_live, o.on_fail, o.d.json);
	o.d.hooks = &c.hooks;
	nr_debounce_init(&c.sdeb, o.debounce_ms, o.burst_ms, o.max_delay_ms);
	c.br.fd = -1;
	if (o.browser && (rc = open_browser(&c)))
		goto out;
	nr_deliver_init(&c.del, o.targets, o.ntargets, &o.d);
	if ((rc = nr_deliver_resolve(&c.del)) == 0) {
		if (!o.d.quiet)
			startup_line(&c);
		for (int i = 0; i < c.nw; i++)
			c.next_scan[i] = nr_mono_ms() + (uint64_t)c.w[i].period_ms;
		rc = run_loop(&c);
	}
	nr_deliver_cancel(&c.del);
	nr_hooks_stop(&c.hooks);
out:
	nr_browser_close(&c.br);
	close_roots(&c);
	teardown_signals();
	return rc;
}
