/*
 * fanout.c - the ping and status commands' targets, expanded and reported
 * (see fanout.h).
 */
#include <stdio.h>
#include <string.h>

#include "fanout.h"
#include "report.h"

/* Expand source s into f's targets. */
static int fanout_add(struct nr_fanout *f, int s, char *err, size_t errlen)
{
	static struct nr_replicas r; /* the commands run in one thread */
	char why[300];

	if (nr_source_expand(&f->sources[s], &r, why, sizeof(why))) {
		if (f->sources[s].file[0]) {
			snprintf(err, errlen, "%s", why);
			return -1;
		}
		r.n = 1; /* does not resolve: the ping says so, and fails as unreachable */
		r.t[0] = f->sources[s].spec;
	}
	if (f->n + r.n > NR_MAX_REPLICAS) {
		snprintf(err, errlen, "more than %d targets (after looking up %.200s)", NR_MAX_REPLICAS,
			 f->sources[s].label);
		return -1;
	}
	for (int i = 0; i < r.n; i++) {
		f->t[f->n] = r.t[i];
		f->src[f->n++] = s;
	}
	f->count[s] = r.n;
	return 0;
}

int nr_fanout_build(struct nr_fanout *f, int argc, char **argv, const char *file, char *err,
		    size_t errlen)
{
	f->n = f->nsrc = 0;
	if (argc > NR_MAX_SOURCES - 1) {
		snprintf(err, errlen, "at most %d targets", NR_MAX_SOURCES - 1);
		return -1;
	}
	for (int i = 0; i < argc; i++)
		if (nr_source_spec(&f->sources[f->nsrc++], argv[i], err, errlen))
			return -1;
	if (file)
		nr_source_file(&f->sources[f->nsrc++], file);
	for (int s = 0; s < f->nsrc; s++)
		if (fanout_add(f, s, err, errlen))
			return -1;
	return 0;
}

/* Status replies agree when every replica is in the same state and mode:
 * one line with the generations' range and the workers and apps added up. */
static int status_summary(const struct nr_fanout *f, int s, const struct nr_ping *pings, char *buf,
			  size_t len)
{
	const struct nr_reply *first = NULL;
	uint64_t lo = UINT64_MAX, hi = 0;
	unsigned live = 0, total = 0, apps = 0;
	char state[NR_TTY_SIZE(sizeof(first->state))], gens[48];

	for (int i = 0; i < f->n; i++) {
		const struct nr_reply *r = &pings[i].final;
		if (f->src[i] != s)
			continue;
		if (pings[i].result != NR_EXIT_OK ||
		    (first && (strcmp(r->state, first->state) || r->mode != first->mode)))
			return 0;
		first = first ? first : r;
		lo = r->gen < lo ? r->gen : lo;
		hi = r->gen > hi ? r->gen : hi;
		live += r->workers_live;
		total += r->workers_total;
		apps += r->apps;
	}
	if (lo == hi)
		snprintf(gens, sizeof(gens), "generation %llu", (unsigned long long)lo);
	else
		snprintf(gens, sizeof(gens), "generations %llu-%llu", (unsigned long long)lo,
			 (unsigned long long)hi);
	snprintf(buf, len, "%s (%d replicas): %s, %s, mode %s, workers %u/%u, apps %u",
		 f->sources[s].label, f->count[s], nr_tty(first->state, state, sizeof(state)), gens,
		 nr_mode_name(first->mode), live, total, apps);
	return 1;
}

int nr_fanout_summary(const struct nr_fanout *f, int s, const struct nr_ping *pings, char *buf,
		      size_t len)
{
	const struct nr_ping *slow = NULL;
	int wait = -1;

	if (f->count[s] < 2)
		return 0;
	for (int i = 0; i < f->n; i++)
		if (f->src[i] == s && pings[i].req.verb == NR_VERB_STATUS)
			return status_summary(f, s, pings, buf, len);
	for (int i = 0; i < f->n; i++) {
		const struct nr_ping *p = &pings[i];
		if (f->src[i] != s)
			continue;
		if (p->result != NR_EXIT_OK || p->final.killed || (wait >= 0 && p->req.wait != wait))
			return 0;
		wait = p->req.wait;
		if (!slow || p->t_done - p->t_start > slow->t_done - slow->t_start)
			slow = p;
	}
	if (!wait)
		snprintf(buf, len, "%s (%d replicas): reload accepted by all", f->sources[s].label,
			 f->count[s]);
	else
		snprintf(buf, len, "%s (%d replicas): live in %u ms, slowest %s", f->sources[s].label,
			 f->count[s], (unsigned)(slow->t_done - slow->t_start),
			 f->sources[s].file[0] ? slow->target.label : slow->target.host);
	return 1;
}

int nr_fanout_args(struct nr_fanout *f, int argc, char **argv, const char *file, const char *cmd)
{
	char err[600];

	if (argc == 0 && !file)
		return nr_usage_error(cmd, "no target given (e.g. 127.0.0.1:9001)");
	if (nr_fanout_build(f, argc, argv, file, err, sizeof(err)))
		return nr_usage_error(cmd, "%s", err);
	if (f->n == 0)
		return nr_usage_error(cmd, "no target in --targets %s", file);
	return 0;
}

/* The one line for source s's replicas when they agree: 1 if it was their
 * turn (printed, or quiet), 0 if each must be shown. */
static int print_summary(const struct nr_fanout *f, int s, const struct nr_ping *pings, int quiet)
{
	char line[600];

	if (!nr_fanout_summary(f, s, pings, line, sizeof(line)))
		return 0;
	if (!quiet)
		printf("%s\n", line);
	return 1;
}

int nr_fanout_report(const struct nr_fanout *f, const struct nr_ping *pings, int each, int quiet,
		     void (*show)(const struct nr_ping *p, void *ctx), void *ctx)
{
	int rc = NR_EXIT_OK;

	for (int s = 0; s < f->nsrc; s++)
		if (each || !print_summary(f, s, pings, quiet))
			for (int i = 0; i < f->n; i++)
				if (f->src[i] == s)
					show(&pings[i], ctx);
	/* worse outcomes have higher codes, except usage (2), which no ping has */
	for (int i = 0; i < f->n; i++)
		rc = pings[i].result > rc ? pings[i].result : rc;
	return rc;
}
