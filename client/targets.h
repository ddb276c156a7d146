/*
 * targets.h - a target (HOST:PORT, its addresses and instance id kept
 * between pings), and what a target stands for: every replica behind a
 * name, and the HOST:PORT lines of a --targets file.
 *
 * A source is one --to NAME:PORT (or one ping/status argument) or one
 * --targets FILE. Expanding it gives its replicas: one target per address
 * the names resolve to. The watcher keeps each source in a struct nr_lookup,
 * which looks it up again in a thread when its answer is older than
 * NR_LOOKUP_TTL_MS (or the file changed), so the poll() loop never waits for
 * a resolver.
 */
#ifndef NR_TARGETS_H
#define NR_TARGETS_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include <netdb.h>

#include "../common/nr_auth.h"

#define NR_DEFAULT_PORT "9001"

struct nr_target {
	char host[256];
	char port[8];
	char label[272]; /* host:port as the user should read it */
};

/* What the watcher keeps of a target across pings: its addresses, looked up
 * once (a lookup can block for seconds, and the watcher's poll() loop must
 * not), and its instance id, so a signed ping needs no hello each time. */
struct nr_addrs {
	struct addrinfo *list;	  /* NULL: look up at the next ping */
	int fresh;		  /* the last ping looked them up; the caller clears it */
	char sid[NR_SID_HEX + 1]; /* from the last hello; "": ask again */
};

/* HOST:PORT, [V6]:PORT, HOST (port NR_DEFAULT_PORT) or PORT (on 127.0.0.1);
 * -1 with err saying what is wrong. */
int nr_target_parse(const char *spec, struct nr_target *t, char *err, size_t errlen);
/* getaddrinfo() for t (udp: datagram sockets); -1 with err filled ("cannot
 * resolve ...") on failure. */
int nr_target_lookup(const struct nr_target *t, int udp, struct addrinfo **list, char *err,
		     size_t errlen);
/* Look up t's TCP addresses into a; -1 with err filled if the name does not resolve. */
int nr_addrs_lookup(struct nr_addrs *a, const struct nr_target *t, char *err, size_t errlen);
/* Drop them and the instance id (the target may have moved or restarted): the
 * next ping looks them up and asks again. */
void nr_addrs_forget(struct nr_addrs *a);
/* "::1, 127.0.0.1": the addresses, for a log line. */
void nr_addrs_format(const struct nr_addrs *a, char *buf, size_t len);

#define NR_MAX_REPLICAS 64   /* targets after expansion, over all sources */
#define NR_LOOKUP_TTL_MS 1000 /* an answer this old is asked again before a reload */

struct nr_source {
	struct nr_target spec; /* --to NAME:PORT; unused for a file */
	char file[PATH_MAX];   /* --targets FILE, or "" */
	char label[272];       /* "web:9001" or the file name, for summary lines */
};

/* The replicas of one source. named: spec's name resolved to several hosts,
 * so each target is one address and its label says which name it came from. */
struct nr_replicas {
	int n, named;
	struct nr_target t[NR_MAX_REPLICAS];
};

/* One ping/status argument (or --to) as a source; -1 with err on a bad spec. */
int nr_source_spec(struct nr_source *s, const char *spec, char *err, size_t errlen);
/* --targets FILE as a source (read when expanded). */
void nr_source_file(struct nr_source *s, const char *path);
/* Every replica s stands for now (blocking: getaddrinfo, the file). A name with
 * several IPv4 addresses becomes one target per IPv4 address; without IPv4,
 * one per IPv6 address. A name of one host (one IPv4 address, whatever IPv6
 * addresses it has besides, or a single address) stays the name, whose
 * addresses the ping tries in turn. A file line that does not resolve stays a
 * name (its ping then says why). 0, or -1 with err: the --to name does not
 * resolve, or the file cannot be read or has a bad line. */
int nr_source_expand(const struct nr_source *s, struct nr_replicas *out, char *err, size_t errlen);

/* A source the watcher keeps, with its last answer and the lookup in flight. */
struct nr_lookup {
	struct nr_source src;
	struct nr_replicas cur; /* the last good answer */
	uint64_t at;		/* when it came, monotonic ms */
	struct stat st;		/* the file when it was read */
	int failing;		/* the last lookup failed (said so once) */
	int running;		/* a thread is looking up into next */
	pthread_t thread;
	int fds[2]; /* the thread writes a byte to fds[1] when done */
	struct nr_replicas next;
	int rc;
	char err[300];
};

/* Expand s now (at start-up, where blocking is fine) into l->cur. 0, or -1 with err. */
int nr_lookup_init(struct nr_lookup *l, const struct nr_source *s, char *err, size_t errlen);
/* Whether l's answer is stale (older than the TTL, or the file changed) and
 * no lookup is running. */
int nr_lookup_due(const struct nr_lookup *l, uint64_t now);
/* Look up again in a thread; 0, or -1 if no thread could start (l->cur stays). */
int nr_lookup_start(struct nr_lookup *l);
/* The fd to poll while a lookup runs, or -1. */
int nr_lookup_fd(const struct nr_lookup *l);
/* The lookup is done (its fd was readable): 1 with l->cur replaced by the new
 * answer, 0 if it failed (l->cur kept, l->err says why), -1 if still running. */
int nr_lookup_finish(struct nr_lookup *l, uint64_t now);
/* Close the fds; a lookup still running is left to finish on its own (at exit). */
void nr_lookup_free(struct nr_lookup *l);

#endif
