/*
 * targets.c - a target: HOST:PORT parsed, its addresses looked up and kept
 * for the next ping; sources (a name, a --targets file) expanded into their
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

#include "../common/nr_clock.h"
#include "compat.h"

#define ADDR_MAX 46 /* INET6_ADDRSTRLEN - 1 */

/* ---- one target -------------------------------------------------------- */

static int valid_port(const char *s)
{
	char *end;
	long p = strtol(s, &end, 10);

	return end != s && !*end && p >= 1 && p <= 65535;
}

/* HOST:PORT, [V6]:PORT, HOST (port 9001) or PORT (on 127.0.0.1). */
int nr_target_parse(const char *spec, struct nr_target *t, char *err, size_t errlen)
{
	const char *colon = strrchr(spec, ':');
	const char *host = spec, *port = NR_DEFAULT_PORT;
	size_t hlen = strlen(spec);

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || (close[1] && close[1] != ':')) {
			snprintf(err, errlen, "bad target '%s': write IPv6 as [ADDR]:PORT", spec);
			return -1;
		}
		host = spec + 1;
		hlen = (size_t)(close - host);
		if (close[1] == ':')
			port = close + 2;
	} else if (colon && strchr(spec, ':') == colon) {
		hlen = (size_t)(colon - spec);
		port = colon + 1;
	} else if (!colon && valid_port(spec)) {
		host = "127.0.0.1";
		hlen = strlen(host);
		port = spec;
	}
	if (hlen == 0 || hlen >= sizeof(t->host) || !valid_port(port)) {
		snprintf(err, errlen, "bad target '%s': expected HOST:PORT (e.g. 127.0.0.1:9001)", spec);
		return -1;
	}
	memcpy(t->host, host, hlen);
	t->host[hlen] = '\0';
	snprintf(t->port, sizeof(t->port), "%s", port);
	snprintf(t->label, sizeof(t->label), strchr(t->host, ':') ? "[%s]:%s" : "%s:%s", t->host,
		 t->port);
	return 0;
}

int nr_target_lookup(const struct nr_target *t, int udp, struct addrinfo **list, char *err,
		     size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV};
	int rc = getaddrinfo(t->host, t->port, &hints, list);

	if (rc) {
		*list = NULL;
		snprintf(err, errlen, "cannot resolve '%s': %s", t->host, gai_strerror(rc));
		return -1;
	}
	return 0;
}

int nr_addrs_lookup(struct nr_addrs *a, const struct nr_target *t, char *err, size_t errlen)
{
	nr_addrs_forget(a);
	if (nr_target_lookup(t, 0, &a->list, err, errlen))
		return -1;
	a->fresh = 1;
	return 0;
}

void nr_addrs_forget(struct nr_addrs *a)
{
	if (a->list)
		freeaddrinfo(a->list);
	a->list = NULL;
	a->sid[0] = '\0';
}

void nr_addrs_format(const struct nr_addrs *a, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (const struct addrinfo *ai = a->list; ai && n < len; ai = ai->ai_next) {
		char host[NI_MAXHOST];
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), NULL, 0,
				NI_NUMERICHOST))
			continue;
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", host);
	}
}

/* ---- sources and their replicas ---------------------------------------- */

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
	l->at = nr_now_ms();
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
