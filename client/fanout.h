/*
 * fanout.h - the ping and status commands' targets: every replica of every
 * argument and of --targets, pinged at once; a source whose replicas agree
 * is reported as one line, the others one line per replica.
 */
#ifndef NR_FANOUT_H
#define NR_FANOUT_H

#include "ping.h"
#include "targets.h"

#define NR_MAX_SOURCES 65 /* 64 arguments and one --targets file */

struct nr_fanout {
	int n, nsrc;
	struct nr_target t[NR_MAX_REPLICAS];
	int src[NR_MAX_REPLICAS]; /* t[i] is a replica of sources[src[i]] */
	struct nr_source sources[NR_MAX_SOURCES];
	int count[NR_MAX_SOURCES]; /* replicas of each source */
};

/* The targets of args (HOST:PORT...) and of file (--targets, or NULL): a name
 * is expanded now, one that does not resolve is kept (its ping says why).
 * 0, or -1 with err (a bad spec, an unreadable file, too many targets). */
int nr_fanout_build(struct nr_fanout *f, int argc, char **argv, const char *file, char *err,
		    size_t errlen);
/* When source s stands for several targets and all their pings agree, the one
 * line that says so, into buf (e.g. "web:9001 (3 replicas): live in 71 ms,
 * slowest 127.0.0.3") and 1; 0 when they must be shown one by one. */
int nr_fanout_summary(const struct nr_fanout *f, int s, const struct nr_ping *pings, char *buf,
		      size_t len);

/* The targets of the command line (args, and file: --targets or NULL) into f;
 * 0, or NR_EXIT_USAGE after a usage error of cmd ("ping", "status"). */
int nr_fanout_args(struct nr_fanout *f, int argc, char **argv, const char *file, const char *cmd);
/* After the pings of f's targets ran (pings[i] is t[i]'s): each source in
 * order, as its one summary line (unless each, or quiet: not even that) or
 * each of its pings through show. Returns the worst result. */
int nr_fanout_report(const struct nr_fanout *f, const struct nr_ping *pings, int each, int quiet,
		     void (*show)(const struct nr_ping *p, void *ctx), void *ctx);

#endif
