/*
 * cmd_watch.c - `netreload watch`: its options, and setting up and tearing
 * down what the loop runs on: the roots and their backends, the hooks, the
 * debouncers, the targets and the --browser pages. loop.c runs the rest;
 * --explain (explain.c) stops before it.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "explain.h"
#include "loop.h"
#include "report.h"

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

static int add_target(struct nr_watch_opts *o, const char *spec)
{
	char err[300];

	if (o->ntargets >= NR_MAX_TARGETS)
		return usage_error("too many targets (at most 64): '%s'", spec);
	if (nr_target_parse(spec, &o->targets[o->ntargets], err, sizeof(err)))
		return usage_error("%s", err);
	o->ntargets++;
	return 0;
}

static int set_exts(struct nr_watch_opts *o, const char *exts)
{
	char err[400];

	if (nr_filter_check_exts(exts, err, sizeof(err)))
		return usage_error("%s", err);
	o->f.exts = exts;
	return 0;
}

/* Options that only set something in o; 1 if c was not one of them. */
static int simple_option(struct nr_watch_opts *o, int c)
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

static int one_option(struct nr_watch_opts *o, int c)
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
static int timing_options(struct nr_watch_opts *o)
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

static int parse_options(struct nr_watch_opts *o, int argc, char **argv)
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
		if (o->ndirs >= NR_MAX_ROOTS)
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

/* ---- roots ------------------------------------------------------------ */

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

static void close_roots(struct nr_loop *c)
{
	for (int i = 0; i < c->nw; i++) {
		if (c->w[i].be)
			c->w[i].be->close(&c->w[i]);
		nr_filter_free(c->w[i].filter);
	}
	c->nw = 0;
}

/* ---- start-up ---------------------------------------------------------- */

static void startup_line(const struct nr_loop *c)
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

static void defaults(struct nr_watch_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->f.gitignore = 1;
	o->debounce_ms = o->burst_ms = o->max_delay_ms = NR_UNSET;
	o->d.req.verb = NR_VERB_RELOAD;
	o->d.req.wait = 1;
	o->d.timeout_ms = 60000;
}

static int start_watching(struct nr_loop *c)
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
	if (nr_loop_signals()) {
		nr_error("pipe: %s", strerror(errno));
		return NR_EXIT_WATCH;
	}
	for (int i = 0; i < c->nw; i++)
		if ((rc = nr_backend_open(&c->w[i], c->o->use_stdin, c->o->poll_ms)))
			return rc;
	return 0;
}

int nr_cmd_watch(int argc, char **argv)
{
	static struct nr_watch_opts o;
	static struct nr_loop c; /* zero, and left so: clearing it would touch every
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
		rc = nr_explain(&c.w[0], o.explain);
		goto out;
	}
	nr_debounce_init(&c.deb, o.debounce_ms, o.burst_ms, o.max_delay_ms);
	o.d.root = o.no_files ? NULL : c.w[0].root;
	nr_hooks_init(&c.hooks, o.on_live, o.on_fail, o.d.json);
	o.d.hooks = &c.hooks;
	nr_debounce_init(&c.sdeb, o.debounce_ms, o.burst_ms, o.max_delay_ms);
	c.br.fd = -1;
	if (o.browser && (rc = nr_loop_open_browser(&c)))
		goto out;
	nr_deliver_init(&c.del, o.targets, o.ntargets, &o.d);
	if ((rc = nr_deliver_resolve(&c.del)) == 0) {
		if (!o.d.quiet)
			startup_line(&c);
		for (int i = 0; i < c.nw; i++)
			c.next_scan[i] = nr_now_ms() + (uint64_t)c.w[i].period_ms;
		rc = nr_loop_run(&c);
	}
	nr_deliver_cancel(&c.del);
	nr_hooks_stop(&c.hooks);
out:
	nr_browser_close(&c.br);
	close_roots(&c);
	nr_loop_signals_off();
	return rc;
}

