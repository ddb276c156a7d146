/*
 * targets.c - sources (a name, a --targets file) expanded into their
 * replicas, and the watcher's lookups of them in a thread (see targets.h).
 */
#include "targets.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "compat.h"

#define ADDR_MAX 46 /* INET6_ADDRSTRLEN - 1 */

int nr_source_spec(struct nr_source *s, const char *spec, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	if (nr_target_parse(spec, &s->spec, err, errlen))
		return -1;
	memcpy(s->label, s->spec.label, sizeof(s->label)); /* the same size */
	return 0;
}

void nr_source_file(struct nr_source *s, const char *path)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->file, sizeof(s->file), "%s", path);
	snprintf(s->label, sizeof(s->label), "%.200s", path);
}

/* Add t unless out has it already (same host and port); -1 when out is full. */
static int add(struct nr_replicas *out, const struct nr_target *t)
{
	for (int i = 0; i < out->n; i++)
		if (!strcmp(out->t[i].host, t->host) && !strcmp(out->t[i].port, t->port))
			return 0;
	if (out->n >= NR_MAX_REPLICAS)
		return -1;
	out->t[out->n++] = *t;
	return 0;
}

/* The distinct numeric addresses of family fam in list, into addrs (up to max). */
static int addresses(const struct addrinfo *list, int fam, char (*addrs)[ADDR_MAX + 1], int max)
{
	int n = 0;

	for (const struct addrinfo *ai = list; ai && n < max; ai = ai->ai_next) {
		char host[NI_MAXHOST];
		int dup = 0;
		if (ai->ai_family != fam || getnameinfo(ai->ai_addr, ai->ai_addrlen, host,
							sizeof(host), NULL, 0, NI_NUMERICHOST))
			continue;
		for (int i = 0; i < n && !dup; i++)
			dup = !strcmp(addrs[i], host);
		if (!dup)
			snprintf(addrs[n++], ADDR_MAX + 1, "%.46s", host);
	}
	return n;
}

/* One target per address, labelled "ADDR:PORT (NAME)". */
static int add_addresses(struct nr_replicas *out, const struct nr_target *spec,
			 char (*addrs)[ADDR_MAX + 1], int n)
{
	for (int i = 0; i < n; i++) {
		struct nr_target t;
		snprintf(t.host, sizeof(t.host), "%s", addrs[i]);
		snprintf(t.port, sizeof(t.port), "%s", spec->port);
		snprintf(t.label, sizeof(t.label), strchr(addrs[i], ':') ? "[%s]:%s (%.200s)" : "%s:%s (%.200s)",
			 addrs[i], spec->port, spec->host);
		if (add(out, &t))
			return -1;
	}
	out->named = 1;
	return 0;
}

/* spec's replicas into out: the name itself if it is one host, else its
 * addresses. -1 with err if it does not resolve or out is full. */
static int expand_name(const struct nr_target *spec, struct nr_replicas *out, char *err,
		       size_t errlen)
{
	char v4[NR_MAX_REPLICAS][ADDR_MAX + 1], v6[NR_MAX_REPLICAS][ADDR_MAX + 1];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *list;
	int rc = getaddrinfo(spec->host, spec->port, &hints, &list), n4, n6;
	char (*v4p)[ADDR_MAX + 1] = v4, (*v6p)[ADDR_MAX + 1] = v6;

	if (rc) {
		snprintf(err, errlen, "cannot resolve '%s': %s", spec->host, gai_strerror(rc));
		return -1;
	}
	n4 = addresses(list, AF_INET, v4p, NR_MAX_REPLICAS);
	n6 = addresses(list, AF_INET6, v6p, NR_MAX_REPLICAS);
	freeaddrinfo(list);
	/* IPv4 and IPv6 are taken as the same replicas reached two ways: IPv6
	 * counts only without IPv4, and one IPv4 address is one host (a VM with a
	 * few IPv6 addresses besides, localhost) whose addresses are tried in turn */
	if (n4 == 1 || (n4 == 0 && n6 <= 1))
		rc = add(out, spec);
	else
		rc = n4 ? add_addresses(out, spec, v4p, n4) : add_addresses(out, spec, v6p, n6);
	if (rc)
		snprintf(err, errlen, "more than %d replicas", NR_MAX_REPLICAS);
	return rc;
}

/* One line of a --targets file: "" (blank or comment) or HOST:PORT. */
static int file_line(const struct nr_source *s, char *line, int lineno, struct nr_replicas *out,
		     char *err, size_t errlen)
{
	struct nr_target t;
	char why[300];
	char *end;

	line[strcspn(line, "#\r\n")] = '\0';
	line += strspn(line, " \t");
	for (end = line + strlen(line); end > line && (end[-1] == ' ' || end[-1] == '\t'); end--)
		end[-1] = '\0';
	if (!*line)
		return 0;
	if (nr_target_parse(line, &t, why, sizeof(why))) {
		snprintf(err, errlen, "%.200s:%d: %.200s", s->file, lineno, why);
		return -1;
	}
	if (expand_name(&t, out, why, sizeof(why)) == 0)
		return 0;
	if (add(out, &t) == 0) /* does not resolve: its ping will say so */
		return 0;
	snprintf(err, errlen, "%.200s: more than %d replicas", s->file, NR_MAX_REPLICAS);
	return -1;
}

static int expand_file(const struct nr_source *s, struct nr_replicas *out, char *err,
		       size_t errlen)
{
	FILE *fp = fopen(s->file, "r");
	char line[512];
	int lineno = 0, rc = 0;

	if (!fp) {
		snprintf(err, errlen, "cannot read --targets %.200s: %s", s->file, strerror(errno));
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof(line), fp))
		rc = file_line(s, line, ++lineno, out, err, errlen);
	fclose(fp);
	return rc;
}

int nr_source_expand(const struct nr_source *s, struct nr_replicas *out, char *err, size_t errlen)
{
	out->n = out->named = 0;
	if (s->file[0])
		return expand_file(s, out, err, errlen);
	return expand_name(&s->spec, out, err, errlen);
}

/* ---- the watcher's lookups --------------------------------------------- */

int nr_lookup_init(struct nr_lookup *l, const struct nr_source *s, char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	l->src = *s;
	l->fds[0] = l->fds[1] = -1;
	if (s->file[0] && stat(s->file, &l->st)) {
		snprintf(err, errlen, "cannot read --targets %.200s: %s", s->file, strerror(errno));
		return -1;
	}
	if (nr_source_expand(s, &l->cur, err, errlen))
		return -1;
	if (nr_pipe_nonblock(l->fds)) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	l->at = nr_mono_ms();
	return 0;
}

/* The file was replaced or written since it was read. */
static int file_changed(const struct nr_lookup *l)
{
	struct stat st;

	if (!l->src.file[0] || stat(l->src.file, &st))
		return 0;
	return st.st_ino != l->st.st_ino || st.st_size != l->st.st_size ||
	       st.st_mtime != l->st.st_mtime || st.st_ctime != l->st.st_ctime;
}

/* An IP address, not a name: nothing to look up again. */
static int numeric(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int nr_lookup_due(const struct nr_lookup *l, uint64_t now)
{
	if (l->running)
		return 0;
	/* an IP address stays what it is */
	if (!l->src.file[0] && !l->cur.named && l->cur.n == 1 &&
	    numeric(l->src.spec.host))
		return 0;
	return now >= l->at + NR_LOOKUP_TTL_MS || file_changed(l);
}

static void *lookup_thread(void *arg)
{
	struct nr_lookup *l = arg;
	char b = 1;

	l->rc = nr_source_expand(&l->src, &l->next, l->err, sizeof(l->err));
	if (write(l->fds[1], &b, 1) < 0) {
		/* the loop then finds it on its next pass with nr_lookup_finish */
	}
	return NULL;
}

int nr_lookup_start(struct nr_lookup *l)
{
	sigset_t all, old;
	int rc;

	if (l->running)
		return 0;
	if (l->src.file[0])
		stat(l->src.file, &l->st); /* before reading: a write during it counts again */
	/* signals stay with the loop's thread */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&l->thread, NULL, lookup_thread, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		snprintf(l->err, sizeof(l->err), "cannot start a lookup thread: %s", strerror(rc));
		return -1;
	}
	l->running = 1;
	return 0;
}

int nr_lookup_fd(const struct nr_lookup *l)
{
	return l->running ? l->fds[0] : -1;
}

int nr_lookup_finish(struct nr_lookup *l, uint64_t now)
{
	char buf[8];

	if (!l->running || read(l->fds[0], buf, sizeof(buf)) <= 0)
		return -1;
	pthread_join(l->thread, NULL);
	l->running = 0;
	l->at = now; /* a failed lookup is tried again after the TTL too */
	if (l->rc)
		return 0;
	l->cur = l->next;
	l->failing = 0;
	return 1;
}

void nr_lookup_free(struct nr_lookup *l)
{
	if (l->running) {
		/* a resolver may take seconds to give up: do not wait at exit; the
		 * thread still owns l and its pipe, which stay as they are */
		pthread_detach(l->thread);
		l->running = 0;
		return;
	}
	for (int i = 0; i < 2; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
	l->fds[0] = l->fds[1] = -1;
}

/* ---- ping and status ---------------------------------------------------- */

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
