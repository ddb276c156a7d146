/*
 * deliver.c - pings for the watch command: start, advance, retry, report
 * (see deliver.h). One output line or JSON object per finished ping.
 */
#include "deliver.h"

#include <errno.h>
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
static void start(struct nr_deliver *d, int i, uint64_t now)
{
	struct nr_dtarget *t = &d->t[i];
	struct nr_request req = d->o.req;
	struct nr_filelist files;

	nr_request_id(req.id, sizeof(req.id));
	t->cur = t->next;
	memset(&t->next, 0, sizeof(t->next));
	t->pending = 0;
	t->busy = 1;
	t->cur_after_down = t->down;
	t->t_begin = now;
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
			start(d, i, now);
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

static uint64_t after(uint64_t t, uint64_t since)
{
	return t > since ? t - since : 0;
}

/* Where a result's time went: the parts add up to the total. */
struct parts {
	uint64_t total, debounce, queued, down, reload;
};

static struct parts parts_of(const struct nr_dtarget *t)
{
	const struct nr_ping *p = &t->ping;
	uint64_t waited = after(t->t_begin, t->cur.t_fire);
	struct parts r = {
		.debounce = after(t->cur.t_fire, t->cur.t_first),
		.reload = after(p->t_done, t->t_begin),
	};

	if (t->cur_after_down)
		r.down = waited;
	else
		r.queued = waited;
	r.total = r.debounce + r.queued + r.down + r.reload;
	return r;
}

/* What a watch event says of its burst: the file that changed last, and how many did. */
static void json_batch(const struct nr_dtarget *t)
{
	nr_json_path(stdout, "path", t->cur.path);
	printf(",\"changes\":%u", t->cur.count);
}

static void json_result(const struct nr_dtarget *t, const char *event)
{
	const struct nr_ping *p = &t->ping;
	struct parts pt = parts_of(t);

	nr_json_begin(stdout, event, p->target.label);
	printf(",\"exit\":%d,\"ms\":%llu", p->result, (unsigned long long)pt.total);
	json_batch(t);
	printf(",\"debounce_ms\":%llu,\"max_delay_cut\":%s,\"queued_ms\":%llu,\"down_ms\":%llu,"
	       "\"reload_ms\":%llu",
	       (unsigned long long)pt.debounce, t->cur.cut ? "true" : "false",
	       (unsigned long long)pt.queued, (unsigned long long)pt.down,
	       (unsigned long long)pt.reload);
	if (p->got_accepted)
		printf(",\"gen\":%llu", (unsigned long long)p->accepted.gen);
	nr_json_steps(stdout, &p->final);
	if (p->final.reason[0])
		nr_json_member(stdout, "reason", p->final.reason);
	if (p->result > NR_EXIT_FAILED)
		nr_json_member(stdout, "error", p->err);
	nr_json_end(stdout);
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

/* "(debounce 20, down 7511, reload 56)": every part named, adding up to the total;
 * "max-delay 300" when changes kept coming and --max-delay cut the wait short. */
static void print_parts(const struct nr_dtarget *t, const struct parts *pt)
{
	printf("(%s %llu", t->cur.cut ? "max-delay" : "debounce", (unsigned long long)pt->debounce);
	if (pt->queued)
		printf(", queued %llu", (unsigned long long)pt->queued);
	if (pt->down)
		printf(", down %llu", (unsigned long long)pt->down);
	printf(", reload %llu)", (unsigned long long)pt->reload);
}

static void print_result(const struct nr_deliver *d, const struct nr_dtarget *t)
{
	const struct nr_ping *p = &t->ping;
	struct parts pt = parts_of(t);
	unsigned total = (unsigned)pt.total;
	const char *on = d->o.color ? (p->result ? C_RED : C_GREEN) : "", *off = d->o.color ? C_OFF : "";
	char why[NR_TTY_SIZE(sizeof(p->err) + sizeof(p->final.reason))];

	line_head(d, t);
	if (p->result == NR_EXIT_OK && !p->req.wait) {
		printf("%saccepted%s (generation %llu) after %u ms\n", on, off,
		       (unsigned long long)p->accepted.gen, total);
	} else if (p->result == NR_EXIT_OK) {
		printf("%slive%s in %u ms ", on, off, total);
		print_parts(t, &pt);
		putchar('\n');
		if (d->o.breakdown) {
			char steps[160];
			nr_format_steps(&p->final, (unsigned)pt.reload, steps, sizeof(steps));
			printf("         %s\n", steps);
		}
		if (p->final.old[0]) {
			char words[4 * NR_OLD_MAX];
			nr_old_words(p->final.old, words, sizeof(words));
			printf("         note: %s still run the old code\n", words);
		}
	} else if (p->result == NR_EXIT_FAILED)
		printf("%sfailed%s after %u ms: %s\n", on, off, total,
		       nr_tty(p->final.reason, why, sizeof(why)));
	else
		printf("%serror%s: %s\n", on, off, nr_tty(p->err, why, sizeof(why)));
}

static const char *event_of(const struct nr_ping *p)
{
	return p->result == NR_EXIT_OK && !p->req.wait ? "accepted" : nr_exit_name(p->result);
}

/* recovered: the last result for this target was a failure, or it was down;
 * -q prints that line too, so the last line on screen is never a stale failure. */
static void report(struct nr_deliver *d, const struct nr_dtarget *t, int recovered)
{
	const struct nr_ping *p = &t->ping;

	if (d->o.json)
		json_result(t, event_of(p));
	else if (!(d->o.quiet && p->result == NR_EXIT_OK && !recovered))
		print_result(d, t);
	fflush(stdout);
	if (!d->o.json && p->result == NR_EXIT_FAILED && p->final.stale && !d->advised) {
		nr_stale_advice(p->target.label, p->final.stale);
		d->advised = 1; /* once: the same share fails the same way every time */
	}
}

/* ---- hooks ------------------------------------------------------------ */

/* Tell the hooks: live runs --on-live, any failure --on-fail (hook.c decides
 * when). --no-wait's "accepted" runs neither: nothing is known yet. */
static void tell_hooks(const struct nr_deliver *d, const struct nr_dtarget *t, const char *event)
{
	const struct nr_ping *p = &t->ping;
	struct nr_hook_env e = {
		.event = event,
		.target = p->target.label,
		.path = t->cur.path,
		.changes = t->cur.count,
		.exit = p->result,
		.ms = parts_of(t).total,
		.gen = p->result == NR_EXIT_OK ? p->final.gen : p->accepted.gen,
		.reason = p->final.reason[0] ? p->final.reason : p->result ? p->err : "",
	};

	if (!d->o.hooks || (p->result == NR_EXIT_OK && !p->req.wait))
		return;
	nr_hooks_result(d->o.hooks, &e);
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
		nr_json_begin(stdout, busy(p) ? "busy" : "unreachable", p->target.label);
		printf(",\"exit\":%d,\"ms\":%llu", p->result,
		       (unsigned long long)after(p->t_done, t->cur.t_first));
		json_batch(t);
		nr_json_member(stdout, "error", p->err);
		nr_json_end(stdout);
	}
	tell_hooks(d, t, busy(p) ? "busy" : "unreachable");
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
	int recovered = t->last > NR_EXIT_OK;

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
	report(d, t, recovered);
	tell_hooks(d, t, event_of(&t->ping));
	if (d->o.on_result)
		d->o.on_result(d->o.ctx, i, &t->ping, t->pending);
	if (t->pending)
		start(d, i, now);
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
			start(d, i, now);
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
