/*
 * cmd_ping.c - `netreload ping HOST:PORT...`: reload now, wait until the new
 * code is live, and say how it went (one line per server, or per source whose
 * replicas agree).
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd.h"
#include "fanout.h"
#include "report.h"

enum { OPT_ROOT = 256, OPT_NO_FILES, OPT_TARGETS };

static const char usage_ping[] =
	"usage: netreload ping [OPTIONS] HOST:PORT...\n"
	"\n"
	"Ask each server to reload and wait until its new code is live.\n"
	"\n"
	"  -m, --mode MODE     graceful, chain, workers, brutal-workers or brutal\n"
	"                      (default: the server's netreload-mode)\n"
	"  -n, --no-wait       return once the server accepted the reload\n"
	"  -t, --timeout SEC   give up after SEC seconds (default 60)\n"
	"  -u, --udp           use UDP: resend until answered (lossy links); files\n"
	"                      changed are then only counted, not listed\n"
	"  -c, --changed PATH  PATH changed: list it (size, mtime, SHA-256), so a server\n"
	"                      on a lagging shared folder waits until it sees it;\n"
	"                      repeat for each file (a directory: the server checks all)\n"
	"      --root DIR      the server's tree as seen from here: --changed paths\n"
	"                      must be in it and are sent relative to it (default .)\n"
	"      --no-files      list no files, even with --changed (older servers, or\n"
	"                      setups that do not want the wait)\n"
	"      --targets FILE  also every HOST:PORT line of FILE (# comments)\n"
	"  -q, --quiet         print nothing on success\n"
	"  -b, --breakdown     also print where the time went: old workers stopping,\n"
	"                      new processes starting, app import, workers ready, network\n"
	"  -j, --json          print one JSON object per server\n"
	"  -s, --secret-file F sign requests with the secret in F (default:\n"
	"                      $NETRELOAD_SECRET_FILE); needed when the server sets\n"
	"                      netreload-secret-file\n"
	"  -h, --help          this help\n"
	"\n"
	"exit: 0 live, 1 reload failed (e.g. import error, or stale=N: the server's\n"
	"      shared folder still showed N listed files old; then it says how to mount\n"
	"      it fresh), 2 usage, 3 unreachable, 4 timeout, 5 protocol error,\n"
	"      6 authentication refused (secret, clock), 8 an answer not to believe\n"
	"      (unsigned with --secret-file, forged, or for another request); with\n"
	"      several servers, the worst.\n"
	"\n"
	"A name that resolves to several addresses (a scaled service) means every one\n"
	"of them: all are pinged at once, and it is live when all are.\n";


struct ping_opts {
	struct nr_request req;
	const char *secret;
	const char *root;     /* --root: what --changed paths are relative to */
	const char *targets;  /* --targets FILE */
	const char **changed; /* --changed PATHs, nchanged of them (up to argc) */
	int nchanged, no_files;
	int udp, breakdown, json, quiet;
	uint32_t timeout;
};

/* One option into o; -1 after --help, NR_EXIT_USAGE after a bad one. */
static int ping_option(struct ping_opts *o, int c, char **argv, const struct option *opts)
{
	switch (c) {
	case 'c': o->changed[o->nchanged++] = optarg; return 0;
	case OPT_ROOT: o->root = optarg; return 0;
	case OPT_NO_FILES: o->no_files = 1; return 0;
	case OPT_TARGETS: o->targets = optarg; return 0;
	case 'b': o->breakdown = 1; return 0;
	case 'u': o->udp = 1; return 0;
	case 's': o->secret = optarg; return 0;
	case 'n': o->req.wait = 0; return 0;
	case 'q': o->quiet = 1; return 0;
	case 'j': o->json = 1; return 0;
	case 'm':
		if (nr_mode_parse(optarg, &o->req.mode))
			return nr_usage_error("ping", "unknown mode '%s' (graceful, chain, workers, "
					      "brutal-workers, brutal)", optarg);
		return 0;
	case 't':
		if (nr_parse_seconds(optarg, &o->timeout))
			return nr_usage_error("ping", "bad --timeout '%s': give seconds", optarg);
		return 0;
	case 'h':
		fputs(usage_ping, stdout);
		return -1;
	}
	return nr_getopt_error("ping", c, argv, opts);
}

static int ping_options(struct ping_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{"mode", required_argument, 0, 'm'}, {"no-wait", no_argument, 0, 'n'},
		{"timeout", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
		{"json", no_argument, 0, 'j'},	      {"help", no_argument, 0, 'h'},
		{"secret-file", required_argument, 0, 's'}, {"udp", no_argument, 0, 'u'},
		{"breakdown", no_argument, 0, 'b'},	    {"changed", required_argument, 0, 'c'},
		{"root", required_argument, 0, OPT_ROOT},   {"no-files", no_argument, 0, OPT_NO_FILES},
		{"targets", required_argument, 0, OPT_TARGETS}, {0, 0, 0, 0}};
	int c, rc;

	*o = (struct ping_opts){.req = {.verb = NR_VERB_RELOAD, .wait = 1}, .root = ".",
				.timeout = 60000};
	if (!(o->changed = calloc((size_t)argc + 1, sizeof(*o->changed)))) {
		nr_error("out of memory");
		return NR_EXIT_USAGE;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:nt:uqbjs:c:h", opts, NULL)) != -1)
		if ((rc = ping_option(o, c, argv, opts)))
			return rc;
	if (o->no_files)
		o->nchanged = 0; /* the old behaviour, even where a script passes --changed */
	return 0;
}

/* --changed PATH...: paths under --root, described now; a directory (the root
 * too) counts as an unlisted change, so the server checks the whole tree. */
static int changed_files(const struct ping_opts *o, struct nr_filelist *files)
{
	static struct nr_fileset set;
	char root[PATH_MAX], rel[PATH_MAX], full[2 * PATH_MAX], err[PATH_MAX + 256];
	struct stat st;

	if (!realpath(o->root, root) || stat(root, &st) || !S_ISDIR(st.st_mode)) {
		return nr_usage_error("ping", "--root '%s' is not a directory (give the directory "
				      "the changed paths are under; default .)",
				      o->root);
	}
	for (int i = 0; i < o->nchanged; i++) {
		if (nr_rel_to_root(root, o->changed[i], rel, sizeof(rel), err, sizeof(err))) {
			return nr_usage_error("ping", "--changed %s", err);
		}
		snprintf(full, sizeof(full), "%s/%s", strcmp(root, "/") ? root : "", rel);
		if (!*rel || (stat(full, &st) == 0 && S_ISDIR(st.st_mode)))
			nr_fileset_more(&set, 1);
		else
			nr_fileset_add(&set, rel);
	}
	nr_filelist_build(files, root, &set);
	return 0;
}


static void print_result(const struct nr_ping *p, int json, int quiet, int breakdown)
{
	char steps[160], why[NR_TTY_SIZE(sizeof(p->err) + sizeof(p->final.reason))];
	char words[4 * NR_OLD_MAX];

	unsigned total = (unsigned)(p->t_done - p->t_start);
	const struct nr_reply *f = &p->final;

	if (json) {
		nr_json_result(stdout, p);
		return;
	}
	if (p->result == NR_EXIT_OK && quiet)
		return;
	if (p->result == NR_EXIT_OK && !p->req.wait)
		printf("%s: reload accepted (generation %llu, %s)\n", p->target.label,
		       (unsigned long long)p->accepted.gen, nr_mode_name(p->accepted.mode));
	else if (p->result == NR_EXIT_OK)
		printf("%s: live in %u ms (generation %llu; server %u ms, old workers gone after %u ms)\n",
		       p->target.label, total, (unsigned long long)f->gen, f->ms, f->stop_ms);
	if (p->result == NR_EXIT_OK && p->req.wait && breakdown) {
		nr_format_steps(f, total, steps, sizeof(steps));
		printf("%s: %s\n", p->target.label, steps);
	}
	if (p->result == NR_EXIT_OK && f->killed)
		printf("%s: note: %u old worker(s) did not stop in time and were killed "
		       "(netreload-grace)\n",
		       p->target.label, f->killed);
	if (p->result == NR_EXIT_OK && f->old[0]) {
		nr_old_words(f->old, words, sizeof(words));
		printf("%s: note: %s still run the old code (this reload restarted only the "
		       "workers)\n",
		       p->target.label, words);
	}
	if (p->result == NR_EXIT_OK)
		return;
	if (p->result == NR_EXIT_FAILED)
		nr_error("%s: reload failed after %u ms: %s", p->target.label, total,
			 nr_tty(f->reason, why, sizeof(why)));
	else
		nr_error("%s", nr_tty(p->err, why, sizeof(why)));
	if (p->result == NR_EXIT_FAILED && f->stale)
		nr_stale_advice(p->target.label, f->stale);
}


static void show_ping(const struct nr_ping *p, void *ctx)
{
	const struct ping_opts *o = ctx;

	print_result(p, o->json, o->quiet, o->breakdown);
}

int nr_cmd_ping(int argc, char **argv)
{
	struct ping_opts o;
	static struct nr_ping pings[NR_MAX_REPLICAS]; /* each holds a whole request: not on the stack */
	static struct nr_filelist files;
	static struct nr_fanout f;
	int rc;

	if ((rc = ping_options(&o, argc, argv)) ||
	    (rc = nr_fanout_args(&f, argc - optind, argv + optind, o.targets, "ping")) ||
	    (rc = nr_use_secret(o.secret)) || (o.nchanged && (rc = changed_files(&o, &files))))
		goto out;
	for (int i = 0; i < f.n; i++) {
		nr_request_id(o.req.id, sizeof(o.req.id));
		if (o.udp)
			nr_ping_start_udp(&pings[i], &f.t[i], &o.req, o.nchanged ? &files : NULL,
					  o.timeout);
		else
			nr_ping_start(&pings[i], &f.t[i], &o.req, o.nchanged ? &files : NULL,
				      o.timeout);
	}
	nr_ping_run(pings, f.n);
	rc = nr_fanout_report(&f, pings, o.json || o.breakdown, o.quiet, show_ping, &o);
out:
	free(o.changed);
	return rc < 0 ? NR_EXIT_OK : rc;
}
