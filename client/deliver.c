/*
 * deliver.c - pings for the watch command: start, advance, retry, report
 * (see deliver.h). One output line or JSON object per finished ping.
 */
#include "deliver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

#define CONNECT_TIMEOUT_MS 3000 /* a VM that is off may swallow SYNs for minutes */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 10000

#define C_DIM "\033[2m"
#define C_GREEN "\033[32m"
#define C_RED "\033[31m"
#define C_OFF "\033[0m"

/* Only the n targets in use are cleared: each holds a whole request and two
 * batches of paths, and pages never touched cost no memory. */
void nr_deliver_init(struct nr_deliver *d, const struct nr_target *targets, int n,
		     const struct nr_deliver_opts *o)
{
	d->o = *o;
	d->n = n;
	d->advised = 0;
	for (int i = 0; i < n; i++) {
		d->targets[i] = targets[i];
		memset(&d->t[i], 0, sizeof(d->t[i]));
		d->t[i].ping.fd = -1;
		d->t[i].last = -1;
	}
}

/* With -v, say where a name led each time it is looked up. */
static void log_lookup(const struct nr_deliver *d, struct nr_dtarget *t, const struct nr_target *to)
{
	char addrs[256];

	if (!t->addrs.fresh)
		return;
	t->addrs.fresh = 0;
	if (!d->o.verbose)
		return;
	nr_addrs_format(&t->addrs, addrs, sizeof(addrs));
	fprintf(stderr, "netreload: resolved %s to %s\n", to->host, addrs);
}

int nr_deliver_resolve(struct nr_deliver *d)
{
	for (int i = 0; i < d->n; i++) {
		char err[300];
		if (nr_addrs_lookup(&d->t[i].addrs, &d->targets[i], err, sizeof(err))) {
			nr_error("%s (check the name in --to %s, or give an IP address)", err,
				 d->targets[i].label);
			return NR_EXIT_UNREACHABLE;
		}
		log_lookup(d, &d->t[i], &d->targets[i]);
	}
	return 0;
}

/* The changed files are described now, as the ping starts, not when they changed. */
static void start(struct nr_deliver *d, int i)
{
	struct nr_dtarget *t = &d->t[i];
	struct nr_request req = d->o.req;
	struct nr_filelist files;

	nr_request_id(req.id, sizeof(req.id));
	t->cur = t->next;
	memset(&t->next, 0, sizeof(t->next));
	t->pending = 0;
	t->busy = 1;
	if (d->o.root)
		nr_filelist_build(&files, d->o.root, &t->cur.files);
	nr_ping_start_cached(&t->ping, &d->targets[i], &t->addrs, &req, d->o.root ? &files : NULL,
			     d->o.timeout_ms);
	log_lookup(d, t, &d->targets[i]);
}

void nr_deliver_batch(struct nr_deliver *d, const struct nr_batch *b, uint64_t now)
{
	for (int i = 0; i < d->n; i++) {
		struct nr_dtarget *t = &d->t[i];
		nr_batch_merge(&t->next, b);
		t->pending = 1;
		if (t->down && t->retry_at > now + BACKOFF_MIN_MS)
			t->retry_at = now + BACKOFF_MIN_MS; /* a fresh change: try again soon */
		if (!t->busy && (!t->down || now >= t->retry_at))
			start(d, i);
	}
}

int nr_deliver_pollfds(const struct nr_deliver *d, struct pollfd *pfd, int *idx, int max)
{
	int m = 0;

	for (int i = 0; i < d->n && m < max; i++) {
		if (d->t[i].busy && nr_ping_pollfd(&d->t[i].ping, &pfd[m]))
			idx[m++] = i;
	}
	return m;
}

/* ---- output ----------------------------------------------------------- */

static void clock_str(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(buf, len, "%H:%M:%S", &tm);
}

static void json_head(const char *event, const char *target)
{
	char hms[16];

	clock_str(hms, sizeof(hms));
	printf("{\"event\":");
	nr_json_string(stdout, event);
	nr_json_member(stdout, "time", hms);
	nr_json_member(stdout, "target", target);
}

static void json_result(const struct nr_dtarget *t, const char *event)
{
	const struct nr_ping *p = &t->ping;

	json_head(event, p->target.label);
	nr_json_member(stdout, "path", t->cur.path);
	printf(",\"changes\":%u,\"ms\":%llu,\"debounce_ms\":%llu,\"reload_ms\":%llu", t->cur.count,
	       (unsigned long long)(p->t_done - t->cur.t_first),
	       (unsigned long long)(t->cur.t_fire - t->cur.t_first),
	       (unsigned long long)(p->t_done - p->t_start));
	if (p->got_accepted)
		printf(",\"gen\":%llu", (unsigned long long)p->accepted.gen);
	nr_json_steps(stdout, &p->final);
	if (p->final.reason[0])
		nr_json_member(stdout, "reason", p->final.reason);
	if (p->result > NR_EXIT_FAILED)
		nr_json_member(stdout, "error", p->err);
	printf("}\n");
}

/* "12:03:04 views.py (+2) → HOST:PORT " : what changed and where it went. */
static void line_head(const struct nr_deliver *d, const struct nr_dtarget *t)
{
	char hms[16], path[NR_TTY_SIZE(sizeof(t->cur.path))];

	clock_str(hms, sizeof(hms));
	printf("%s%s%s %s", d->o.color ? C_DIM : "", hms, d->o.color ? C_OFF : "",
	       nr_tty(t->cur.path, path, sizeof(path)));
	if (t->cur.count > 1)
		printf(" (+%u)", t->cur.count - 1);
	printf(" \u2192 %s ", t->ping.target.label);
}

static void print_result(const struct nr_deliver *d, const struct nr_dtarget *t)
{
	const struct nr_ping *p = &t->ping;
	unsigned total = (unsigned)(p->t_done - t->cur.t_first);
	unsigned deb = (unsigned)(t->cur.t_fire - t->cur.t_first);
	unsigned rel = (unsigned)(p->t_done - p->t_start);
	const char *on = d->o.color ? (p->result ? C_RED : C_GREEN) : "", *off = d->o.color ? C_OFF : "";
	char why[NR_TTY_SIZE(sizeof(p->err) + sizeof(p->final.reason))];

	line_head(d, t);
	if (p->result == NR_EXIT_OK && !p->req.wait) {
		printf("%saccepted%s (generation %llu) after %u ms\n", on, off,
		       (unsigned long long)p->accepted.gen, total);
	} else if (p->result == NR_EXIT_OK) {
		printf("%slive%s in %u ms (debounce %u, reload %u)\n", on, off, total, deb, rel);
		if (d->o.breakdown) {
			char steps[160];
			nr_format_steps(&p->final, rel, steps, sizeof(steps));
			printf("         %s\n", steps);
		}
	} else if (p->result == NR_EXIT_FAILED)
		printf("%sfailed%s after %u ms: %s\n", on, off, total,
		       nr_tty(p->final.reason, why, sizeof(why)));
	else
		printf("%serror%s: %s\n", on, off, nr_tty(p->err, why, sizeof(why)));
}

static void report(struct nr_deliver *d, const struct nr_dtarget *t)
{
	const struct nr_ping *p = &t->ping;

	if (d->o.json)
		json_result(t, p->result == NR_EXIT_OK && !p->req.wait ? "accepted"
								      : nr_exit_name(p->result));
	else if (!(d->o.quiet && p->result == NR_EXIT_OK))
		print_result(d, t);
	fflush(stdout);
	if (!d->o.json && p->result == NR_EXIT_FAILED && p->final.stale && !d->advised) {
		nr_stale_advice(p->target.label, p->final.stale);
		d->advised = 1; /* once: the same share fails the same way every time */
	}
}

/* ---- --on-live ------------------------------------------------------- */

/* Fork and forget: the loop reaps the child on SIGCHLD. */
static void run_on_live(const struct nr_deliver *d, const struct nr_dtarget *t)
{
	const struct nr_ping *p = &t->ping;
	char ms[24], gen[24];
	pid_t pid;
	int null;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0) {
		fprintf(stderr, "netreload: warning: cannot run --on-live: fork: %s\n", strerror(errno));
		return;
	}
	if (pid > 0)
		return;
	if ((null = open("/dev/null", O_RDONLY)) >= 0) {
		dup2(null, STDIN_FILENO); /* our stdin may be --stdin's pipe */
		close(null);
	}
	snprintf(ms, sizeof(ms), "%llu", (unsigned long long)(p->t_done - t->cur.t_first));
	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)p->final.gen);
	setenv("NETRELOAD_TARGET", p->target.label, 1);
	setenv("NETRELOAD_MS", ms, 1);
	setenv("NETRELOAD_GEN", gen, 1);
	setenv("NETRELOAD_PATH", t->cur.path, 1);
	execl("/bin/sh", "sh", "-c", d->o.on_live, (char *)NULL);
	_exit(127);
}

/* ---- outcomes --------------------------------------------------------- */

/* The server is up but has no room for us now (too many clients waiting). */
static int busy(const struct nr_ping *p)
{
	return p->result == NR_EXIT_PROTOCOL && p->final.kind == NR_REPLY_ERROR &&
	       !strcmp(p->final.code, "busy");
}

/* The server refused for now ("busy") or is not there: try again later. */
static int retryable(const struct nr_ping *p)
{
	return p->result == NR_EXIT_UNREACHABLE || busy(p);
}

/* Say once why the change waits: a busy server is up, so not "unreachable". */
static void warn_down(const struct nr_deliver *d, const struct nr_dtarget *t)
{
	const struct nr_ping *p = &t->ping;
	char why[NR_TTY_SIZE(sizeof(p->err) + sizeof(p->final.reason))];

	if (busy(p))
		fprintf(stderr, "netreload: warning: %s is busy (%s); will keep watching and retry "
				"every 0.5-10 s until it takes the reload\n",
			p->target.label, nr_tty(p->final.reason, why, sizeof(why)));
	else
		fprintf(stderr, "netreload: warning: %s; will keep watching and retry every 0.5-10 s "
				"until it answers\n",
			nr_tty(p->err, why, sizeof(why)));
	if (d->o.json) {
		json_head(busy(p) ? "busy" : "unreachable", p->target.label);
		nr_json_member(stdout, "error", p->err);
		printf("}\n");
		fflush(stdout);
	}
}

/* Keep the change for a later try; say so only the first time. */
static void went_down(struct nr_deliver *d, struct nr_dtarget *t, uint64_t now)
{
	struct nr_batch keep = t->cur;

	if (t->pending)
		nr_batch_merge(&keep, &t->next);
	t->next = keep;
	t->pending = 1;
	t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (t->backoff_ms > BACKOFF_MAX_MS)
		t->backoff_ms = BACKOFF_MAX_MS;
	t->retry_at = now + t->backoff_ms;
	if (t->down)
		return;
	t->down = 1;
	warn_down(d, t);
}

static void came_back(struct nr_deliver *d, struct nr_dtarget *t)
{
	t->down = 0;
	t->backoff_ms = 0;
	if (!d->o.quiet)
		fprintf(stderr, "netreload: %s answers again\n", t->ping.target.label);
}

static void done(struct nr_deliver *d, int i, uint64_t now)
{
	struct nr_dtarget *t = &d->t[i];

	t->busy = 0;
	t->last = t->ping.result;
	if (t->ping.result == NR_EXIT_UNREACHABLE)
		nr_addrs_forget(&t->addrs); /* a VM may be back under another address */
	if (retryable(&t->ping)) {
		went_down(d, t, now);
		return;
	}
	if (t->down)
		came_back(d, t);
	report(d, t);
	if (t->ping.result == NR_EXIT_OK && t->ping.req.wait && d->o.on_live)
		run_on_live(d, t);
	if (d->o.on_result)
		d->o.on_result(d->o.ctx, i, &t->ping, t->pending);
	if (t->pending)
		start(d, i);
}

/* nr_ping's deadline covers the whole reload; connecting gets less. */
static void connect_timeout(struct nr_dtarget *t, uint64_t now)
{
	struct nr_ping *p = &t->ping;

	if (p->state != NR_PING_CONNECTING || now < p->t_start + CONNECT_TIMEOUT_MS)
		return;
	nr_ping_cancel(p);
	p->result = NR_EXIT_UNREACHABLE;
	snprintf(p->err, sizeof(p->err), "cannot connect to %.200s within %d s (is it up?)",
		 p->target.label, CONNECT_TIMEOUT_MS / 1000);
}

void nr_deliver_step(struct nr_deliver *d, int i, short revents, uint64_t now)
{
	struct nr_dtarget *t = &d->t[i];

	if (!t->busy)
		return;
	nr_ping_step(&t->ping, revents);
	connect_timeout(t, now);
	if (t->ping.state == NR_PING_DONE)
		done(d, i, now);
}

void nr_deliver_tick(struct nr_deliver *d, uint64_t now)
{
	for (int i = 0; i < d->n; i++) {
		struct nr_dtarget *t = &d->t[i];
		if (t->busy)
			nr_deliver_step(d, i, 0, now);
		else if (t->pending && now >= t->retry_at)
			start(d, i);
		if (t->busy && t->ping.state == NR_PING_DONE)
			done(d, i, now); /* failed at once, e.g. refused */
	}
}

uint64_t nr_deliver_next(const struct nr_deliver *d)
{
	uint64_t next = 0;

	for (int i = 0; i < d->n; i++) {
		const struct nr_dtarget *t = &d->t[i];
		uint64_t at = 0;
		if (t->busy && t->ping.state == NR_PING_DONE)
			at = 1; /* finished inside nr_ping_start: handle it now */
		else if (t->busy)
			at = t->ping.state == NR_PING_CONNECTING ? t->ping.t_start + CONNECT_TIMEOUT_MS
								 : t->ping.deadline;
		else if (t->pending)
			at = t->retry_at;
		if (at && (!next || at < next))
			next = at;
	}
	return next;
}

int nr_deliver_busy(const struct nr_deliver *d)
{
	for (int i = 0; i < d->n; i++)
		if (d->t[i].busy || (d->t[i].pending && !d->t[i].down))
			return 1;
	return 0;
}

void nr_deliver_cancel(struct nr_deliver *d)
{
	for (int i = 0; i < d->n; i++) {
		if (d->t[i].busy)
			nr_ping_cancel(&d->t[i].ping);
		d->t[i].busy = 0;
		nr_addrs_forget(&d->t[i].addrs);
	}
}

int nr_deliver_status(const struct nr_deliver *d)
{
	int worst = NR_EXIT_OK;

	for (int i = 0; i < d->n; i++)
		if (d->t[i].last > worst)
			worst = d->t[i].last;
	return worst;
}
