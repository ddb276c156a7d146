/*
 * cmd_status.c - `netreload status HOST:PORT...`: what each server is doing
 * (state, generation, workers, the last reload).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "fanout.h"
#include "report.h"

enum { OPT_TARGETS = 256 };

static const char usage_status[] =
	"usage: netreload status [OPTIONS] HOST:PORT...\n"
	"\n"
	"  -t, --timeout SEC   give up after SEC seconds (default 5)\n"
	"  -j, --json          print one JSON object per server\n"
	"  -s, --secret-file F sign requests with the secret in F\n"
	"      --targets FILE  also every HOST:PORT line of FILE (# comments)\n"
	"  -h, --help          this help\n"
	"\n"
	"A name that resolves to several addresses means every one of them.\n";

/* Worse outcomes have higher codes, except that usage (2) never comes from a ping. */

static void print_status(const struct nr_ping *p, int json)
{
	const struct nr_reply *s = &p->final;
	char state[NR_TTY_SIZE(sizeof(s->state))], last[NR_TTY_SIZE(sizeof(s->last))];
	char why[NR_TTY_SIZE(sizeof(p->err) + sizeof(s->reason))];

	if (json) {
		nr_json_result(stdout, p);
		return;
	}
	if (p->result != NR_EXIT_OK) {
		nr_error("%s", nr_tty(p->err, why, sizeof(why)));
		return;
	}
	printf("%s: %s, generation %llu, mode %s, workers %u/%u, apps %u, uWSGI master pid %u\n",
	       p->target.label, nr_tty(s->state, state, sizeof(state)), (unsigned long long)s->gen,
	       nr_mode_name(s->mode), s->workers_live, s->workers_total, s->apps, s->pid);
	if (strcmp(s->last, "none"))
		printf("%s: last reload %s after %u ms%s%s\n", p->target.label,
		       nr_tty(s->last, last, sizeof(last)), s->last_ms, s->reason[0] ? ": " : "",
		       nr_tty(s->reason, why, sizeof(why)));
}

static void show_status(const struct nr_ping *p, void *ctx)
{
	print_status(p, *(const int *)ctx);
}

int nr_cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {{"timeout", required_argument, 0, 't'},
					     {"json", no_argument, 0, 'j'},
					     {"help", no_argument, 0, 'h'},
					     {"secret-file", required_argument, 0, 's'},
					     {"targets", required_argument, 0, OPT_TARGETS},
					     {0, 0, 0, 0}};
	struct nr_request req = {.verb = NR_VERB_STATUS};
	const char *secret = NULL, *file = NULL;
	static struct nr_fanout f;
	static struct nr_ping pings[NR_MAX_REPLICAS]; /* each holds a whole request: not on the stack */
	uint32_t timeout = 5000;
	int c, json = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":t:js:h", opts, NULL)) != -1) {
		if (c == 's' || c == OPT_TARGETS) {
			*(c == 's' ? &secret : &file) = optarg;
			continue;
		}
		if (c == 't' && !nr_parse_seconds(optarg, &timeout))
			continue;
		if (c == 't')
			return nr_usage_error("status", "bad --timeout '%s': give seconds", optarg);
		if (c == 'j') {
			json = 1;
			continue;
		}
		if (c == 'h') {
			fputs(usage_status, stdout);
			return NR_EXIT_OK;
		}
		return nr_getopt_error("status", c, argv, opts);
	}
	if ((c = nr_fanout_args(&f, argc - optind, argv + optind, file, "status")) ||
	    (c = nr_use_secret(secret)))
		return c;
	for (int i = 0; i < f.n; i++) {
		nr_request_id(req.id, sizeof(req.id)); /* the answer must echo it */
		nr_ping_start(&pings[i], &f.t[i], &req, NULL, timeout);
	}
	nr_ping_run(pings, f.n);
	return nr_fanout_report(&f, pings, json, 0, show_status, &json);
}
