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

#include "report.h"

#define CONNECT_TIMEOUT_MS 3000 /* a VM that is off may swallow SYNs for minutes */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 10000
#define LOOKUP_WAIT_MS 500 /* longest a batch waits for a name's lookup */

#define C_DIM "\033[2m"
#define C_GREEN "\033[32m"
#define C_RED "\033[31m"
#define C_OFF "\033[0m"

/* Only the groups in use are cleared: each holds a whole batch, and pages
 * never touched cost no memory. Slots are made by nr_deliver_resolve. */
void nr_deliver_init(struct nr_deliver *d, const struct nr_target *targets, int n,
		     const struct nr_deliver_opts *o)
{
	d->o = *o;
	d->n = 0;
	d->advised = d->full_said = 0;
	d->ng = n + (o->targets_file ? 1 : 0);
	for (int i = 0; i < d->ng; i++) {
		memset(&d->g[i], 0, sizeof(d->g[i]));
		d->g[i].look.fds[0] = d->g[i].look.fds[1] = -1;
		if (i < n) {
			d->g[i].look.src.spec = targets[i];
			memcpy(d->g[i].look.src.label, targets[i].label, sizeof(targets[i].label));
		} else {
			nr_source_file(&d->g[i].look.src, o->targets_file);
		}
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
	if (strcmp(addrs, to->host)) /* a replica's address leads to itself */
		fprintf(stderr, "netreload: resolved %s to %s\n", to->host, addrs);
}

/* ---- replicas ---------------------------------------------------------- */

static int in_group(const struct nr_deliver *d, int i, int gi)
{
	return !d->t[i].gone && d->t[i].group == gi;
}

/* The replicas of group gi now in use. */
static int group_size(const struct nr_deliver *d, int gi)
{
	int n = 0;

	for (int i = 0; i < d->n; i++)
		n += in_group(d, i, gi);
	return n;
}

static int same_target(const struct nr_target *a, const struct nr_target *b)
{
	return !strcmp(a->host, b->host) && !strcmp(a->port, b->port);
}

/* A replica left (scaled down, or out of the file): forget it without a word
 * of error; a ping in flight to it is dropped. */
static void drop(struct nr_deliver *d, int i, int announce)
{
	struct nr_dtarget *t = &d->t[i];

	if (t->busy)
		nr_ping_cancel(&t->ping);
	nr_addrs_forget(&t->addrs);
	t->busy = t->pending = t->down = t->saved = 0;
	t->gone = 1;
	if (announce)
		fprintf(stderr, "netreload: %s: replica %s is gone; no longer reloaded\n",
			d->g[t->group].look.src.label, d->targets[i].label);
}

/* A new replica of group gi: a free slot, or a new one at the end. */
static void add_slot(struct nr_deliver *d, int gi, const struct nr_target *to, int announce)
{
	int i = 0;

	while (i < d->n && !(d->t[i].gone && !d->t[i].busy))
		i++;
	if (i == NR_MAX_TARGETS) {
		if (!d->full_said)
			fprintf(stderr, "netreload: warning: more than %d replicas; %s and any others "
					"are not reloaded\n",
				NR_MAX_TARGETS, to->label);
		d->full_said = 1;
		return;
	}
	if (i == d->n)
		d->n++;
	d->targets[i] = *to;
	memset(&d->t[i], 0, sizeof(d->t[i]));
	d->t[i].ping.fd = -1;
	d->t[i].last = -1;
	d->t[i].group = gi;
	d->t[i].newcomer = 1;
	if (announce)
		fprintf(stderr, "netreload: %s: new replica %s\n", d->g[gi].look.src.label,
			to->label);
}

/* "web:9001 is 3 replicas: 127.0.0.1, 127.0.0.2, 127.0.0.3" */
static void say_replicas(const struct nr_lookup *l)
{
	fprintf(stderr, "netreload: %s is %d replicas:", l->src.label, l->cur.n);
	for (int i = 0; i < l->cur.n; i++)
		fprintf(stderr, "%s %s", i ? "," : "",
			l->cur.named ? l->cur.t[i].host : l->cur.t[i].label);
	fputc('\n', stderr);
}

/* Make group gi's slots follow its lookup's answer. Replicas that come and go
 * are named; a name back to one host is said once. */
static void sync_group(struct nr_deliver *d, int gi, int announce)
{
	const struct nr_replicas *r = &d->g[gi].look.cur;
	int was = group_size(d, gi);

	int from_one = r->named && was == 1 && !d->g[gi].look.src.file[0];

	announce = announce && !d->o.quiet;
	if (announce && !r->named && was > 1)
		fprintf(stderr, "netreload: %s: one host now (was %d replicas)\n",
			d->g[gi].look.src.label, was);
	if (announce && from_one)
		say_replicas(&d->g[gi].look);
	if ((!r->named && was > 1) || from_one)
		announce = 0; /* the name itself gave way to its addresses, or back */

	for (int i = 0; i < d->n; i++) {
		int keep = 0;
		if (!in_group(d, i, gi))
			continue;
		for (int k = 0; k < r->n && !keep; k++)
			keep = same_target(&r->t[k], &d->targets[i]);
		if (!keep)
			drop(d, i, announce);
	}
	for (int k = 0; k < r->n; k++) {
		int have = 0;
		for (int i = 0; i < d->n && !have; i++)
			have = in_group(d, i, gi) && same_target(&r->t[k], &d->targets[i]);
		if (!have)
			add_slot(d, gi, &r->t[k], announce);
	}
}

/* Start-up: a name that does not resolve, or a file that cannot be read, ends the watch. */
int nr_deliver_resolve(struct nr_deliver *d)
{
	for (int gi = 0; gi < d->ng; gi++) {
		struct nr_dgroup *g = &d->g[gi];
		struct nr_source src = g->look.src;
		char err[300];
		if (nr_lookup_init(&g->look, &src, err, sizeof(err))) {
			if (src.file[0]) {
				nr_error("%s", err);
				return NR_EXIT_USAGE;
			}
			nr_error("%s (check the name in --to %s, or give an IP address)", err,
				 src.label);
			return NR_EXIT_UNREACHABLE;
		}
		sync_group(d, gi, 0);
		for (int i = 0; i < d->n; i++)
			d->t[i].newcomer = 0;
		if (!d->o.quiet && g->look.cur.n > 1)
			say_replicas(&g->look);
	}
	for (int i = 0; i < d->n; i++) {
		char err[300];
		/* a --targets line that does not resolve is retried like a server that is down */
		if (nr_addrs_lookup(&d->t[i].addrs, &d->targets[i], err, sizeof(err)) == 0)
			log_lookup(d, &d->t[i], &d->targets[i]);
		else if (!d->g[d->t[i].group].look.src.file[0]) {
			nr_error("%s (check the name in --to %s, or give an IP address)", err,
				 d->targets[i].label);
			return NR_EXIT_UNREACHABLE;
		}
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

/* Queue b for every replica of group gi (only the newcomers if asked) and
 * start what can start. */
static void give(struct nr_deliver *d, int gi, const struct nr_batch *b, uint64_t now,
		 int newcomers)
{
	for (int i = 0; i < d->n; i++) {
		struct nr_dtarget *t = &d->t[i];
		if (!in_group(d, i, gi) || (newcomers && !t->newcomer))
			continue;
		nr_batch_merge(&t->next, b);
		t->pending = 1;
		if (t->down && t->retry_at > now + BACKOFF_MIN_MS)
			t->retry_at = now + BACKOFF_MIN_MS; /* a fresh change: try again soon */
		if (!t->busy && (!t->down || now >= t->retry_at))
			start(d, i, now);
	}
}

static void start_lookup(struct nr_deliver *d, int gi, uint64_t now)
{
	struct nr_dgroup *g = &d->g[gi];

	if (!nr_lookup_due(&g->look, now) || nr_lookup_start(&g->look) == 0)
		return;
	if (!g->look.failing)
		fprintf(stderr, "netreload: warning: %s; reloading the %d replica(s) of %s known\n",
			g->look.err, group_size(d, gi), g->look.src.label);
	g->look.failing = 1;
	g->look.at = now; /* try again after the TTL */
}

void nr_deliver_prefetch(struct nr_deliver *d, uint64_t now)
{
	for (int gi = 0; gi < d->ng; gi++)
		start_lookup(d, gi, now);
}

void nr_deliver_batch(struct nr_deliver *d, const struct nr_batch *b, uint64_t now)
{
	for (int gi = 0; gi < d->ng; gi++) {
		struct nr_dgroup *g = &d->g[gi];
		start_lookup(d, gi, now);
		if (g->look.running && !g->look.cur.named) {
			/* one host: no waiting; a lookup that finds more hands this on */
			give(d, gi, b, now, 0);
			if (g->late)
				nr_batch_merge(&g->held, b);
			else
				g->held = *b;
			g->late = 1;
		} else if (!g->look.running) {
			give(d, gi, b, now, 0);
		} else if (g->holding) {
			nr_batch_merge(&g->held, b);
		} else {
			g->held = *b;
			g->holding = 1;
			g->hold_until = now + LOOKUP_WAIT_MS;
		}
	}
}

/* The held batch goes to the replicas known now. */
static void release(struct nr_deliver *d, int gi, uint64_t now)
{
	struct nr_dgroup *g = &d->g[gi];

	if (!g->holding)
		return;
	g->holding = 0;
	give(d, gi, &g->held, now, 0);
}

/* A lookup ended: follow its answer, or keep the last one and say so once. */
static void looked_up(struct nr_deliver *d, int gi, uint64_t now)
{
	struct nr_dgroup *g = &d->g[gi];
	int was_failing = g->look.failing;
	int rc = nr_lookup_finish(&g->look, now);

	if (rc < 0)
		return;
	if (rc == 0 && !was_failing) {
		char why[NR_TTY_SIZE(sizeof(g->look.err))];
		fprintf(stderr, "netreload: warning: %s; keeping the last answer (%d replica(s)) "
				"until it works again\n",
			nr_tty(g->look.err, why, sizeof(why)), group_size(d, gi));
	}
	g->look.failing = rc == 0;
	if (rc == 1 && was_failing && !d->o.quiet)
		fprintf(stderr, "netreload: %s resolves again\n", g->look.src.label);
	if (rc == 1)
		sync_group(d, gi, 1);
	if (g->late)
		give(d, gi, &g->held, now, 1);
	g->late = 0;
	release(d, gi, now);
	for (int i = 0; i < d->n; i++)
		if (in_group(d, i, gi))
			d->t[i].newcomer = 0;
}

int nr_deliver_pollfds(const struct nr_deliver *d, struct pollfd *pfd, int *idx, int max)
{
	int m = 0;

	for (int i = 0; i < d->n && m < max; i++) {
		if (d->t[i].busy && nr_ping_pollfd(&d->t[i].ping, &pfd[m]))
			idx[m++] = i;
	}
	/* lookups last: an answer may free and reuse slots, so the slots' events
	 * of this pass are handled first */
	for (int gi = 0; gi < d->ng && m < max; gi++) {
		int fd = nr_lookup_fd(&d->g[gi].look);
		if (fd < 0)
			continue;
		pfd[m] = (struct pollfd){.fd = fd, .events = POLLIN};
		idx[m++] = -1 - gi;
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
static struct nr_parts parts_of(const struct nr_dtarget *t)
{
	const struct nr_ping *p = &t->ping;
	uint64_t waited = after(t->t_begin, t->cur.t_fire);
	struct nr_parts r = {
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
	struct nr_parts pt = parts_of(t);

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
static void line_head(const struct nr_deliver *d, const char *path, unsigned count,
		      const char *label)
{
	char hms[16], shown[NR_TTY_SIZE(sizeof(((struct nr_batch *)0)->path))];

	clock_str(hms, sizeof(hms));
	printf("%s%s%s %s", d->o.color ? C_DIM : "", hms, d->o.color ? C_OFF : "",
	       nr_tty(path, shown, sizeof(shown)));
	if (count > 1)
		printf(" (+%u)", count - 1);
	printf(" \u2192 %s ", label);
}

/* "(debounce 20, down 7511, reload 56)": every part named, adding up to the total;
 * "max-delay 300" when changes kept coming and --max-delay cut the wait short. */
static void print_parts(int cut, const struct nr_parts *pt)
{
	printf("(%s %llu", cut ? "max-delay" : "debounce", (unsigned long long)pt->debounce);
	if (pt->queued)
		printf(", queued %llu", (unsigned long long)pt->queued);
	if (pt->down)
		printf(", down %llu", (unsigned long long)pt->down);
	printf(", reload %llu)", (unsigned long long)pt->reload);
}

static void print_result(const struct nr_deliver *d, const struct nr_dtarget *t)
{
	const struct nr_ping *p = &t->ping;
	struct nr_parts pt = parts_of(t);
	unsigned total = (unsigned)pt.total;
	const char *on = d->o.color ? (p->result ? C_RED : C_GREEN) : "", *off = d->o.color ? C_OFF : "";
	char why[NR_TTY_SIZE(sizeof(p->err) + sizeof(p->final.reason))];

	line_head(d, t->cur.path, t->cur.count, t->ping.target.label);
	if (p->result == NR_EXIT_OK && !p->req.wait) {
		printf("%saccepted%s (generation %llu) after %u ms\n", on, off,
		       (unsigned long long)p->accepted.gen, total);
	} else if (p->result == NR_EXIT_OK) {
		printf("%slive%s in %u ms ", on, off, total);
		print_parts(t->cur.cut, &pt);
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

/* "live in ..." of a saved reply, on the line head of its batch. */
static void print_live(const struct nr_deliver *d, const struct nr_dtarget *t,
		       const char *label, const char *suffix)
{
	line_head(d, t->s_path, t->s_count, label);
	printf("%slive%s in %llu ms ", d->o.color ? C_GREEN : "", d->o.color ? C_OFF : "",
	       (unsigned long long)t->s_parts.total);
	print_parts(t->s_cut, &t->s_parts);
	printf("%s\n", suffix);
}

/* Keep a live reply of a replica for its group's summary line. */
static void save(struct nr_dtarget *t, int shown)
{
	t->saved = 1;
	t->s_shown = shown;
	t->s_parts = parts_of(t);
	t->s_cut = t->cur.cut;
	t->s_count = t->cur.count;
	memcpy(t->s_path, t->cur.path, sizeof(t->s_path));
}

static void tell_hooks(const struct nr_deliver *d, const struct nr_dtarget *t, const char *event,
		       const char *label);

/* "web:9001 (3 replicas) live in ..., slowest 127.0.0.3" */
static void print_summary(const struct nr_deliver *d, int gi, const struct nr_dtarget *slow, int all)
{
	const struct nr_target *to = &d->targets[slow - d->t];
	char label[300], suffix[80];

	snprintf(label, sizeof(label), "%s (%d replicas)", d->g[gi].look.src.label, all);
	snprintf(suffix, sizeof(suffix), ", slowest %.60s",
		 d->g[gi].look.src.file[0] ? to->label : to->host);
	print_live(d, slow, label, suffix);
}

/* Once no replica of group gi has a ping in flight or a change to send: when
 * every replica went live, one line and one --on-live for them all; else the
 * live ones each on their line (the others said what went wrong as it
 * happened), and --on-live for each. */
static void group_check(struct nr_deliver *d, int gi)
{
	struct nr_dgroup *g = &d->g[gi];
	const struct nr_dtarget *slow = NULL;
	int all = 0, saved = 0, shown = 0, agree;

	if (g->holding)
		return;
	for (int i = 0; i < d->n; i++) {
		const struct nr_dtarget *t = &d->t[i];
		if (!in_group(d, i, gi))
			continue;
		if (t->busy || (t->pending && !t->down))
			return;
		all++;
		saved += t->saved;
		shown += t->saved && t->s_shown;
		if (t->saved && (!slow || t->s_parts.total > slow->s_parts.total))
			slow = t;
	}
	if (!saved) {
		g->bad = 0;
		return;
	}
	agree = !g->bad && saved == all;
	if (agree && !shown && !d->o.quiet)
		print_summary(d, gi, slow, all);
	for (int i = 0; i < d->n; i++) {
		struct nr_dtarget *t = &d->t[i];
		if (!in_group(d, i, gi) || !t->saved)
			continue;
		if ((!agree || shown) && !t->s_shown && !d->o.quiet)
			print_live(d, t, d->targets[i].label, "");
		if (!agree)
			tell_hooks(d, t, "live", d->targets[i].label);
		t->saved = 0;
	}
	fflush(stdout);
	if (agree)
		tell_hooks(d, slow, "live", g->look.src.label);
	g->bad = 0;
}

/* A live reply from one of several replicas: kept until the group is done. */
static int one_of_many(const struct nr_deliver *d, const struct nr_dtarget *t)
{
	const struct nr_ping *p = &t->ping;

	return p->result == NR_EXIT_OK && p->req.wait && group_size(d, t->group) > 1;
}

/* Its line waits for the group's one line (text output without details). */
static int deferred(const struct nr_deliver *d, const struct nr_dtarget *t)
{
	return !d->o.json && !d->o.breakdown && !t->ping.final.killed;
}

/* recovered: the last result for this target was a failure, or it was down;
 * -q prints that line too, so the last line on screen is never a stale failure. */
static void report(struct nr_deliver *d, const struct nr_dtarget *t, int recovered)
{
	const struct nr_ping *p = &t->ping;

	if (d->o.json)
		json_result(t, nr_event_name(p));
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
static void tell_hooks(const struct nr_deliver *d, const struct nr_dtarget *t, const char *event,
		       const char *label)
{
	const struct nr_ping *p = &t->ping;
	struct nr_hook_env e = {
		.event = event,
		.target = label,
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
	tell_hooks(d, t, busy(p) ? "busy" : "unreachable", p->target.label);
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

static void finished(struct nr_deliver *d, int i, uint64_t now)
{
	struct nr_dtarget *t = &d->t[i];
	int recovered = t->last > NR_EXIT_OK;

	t->busy = 0;
	t->last = t->ping.result;
	if (t->ping.result != NR_EXIT_OK)
		d->g[t->group].bad = 1;
	if (t->ping.result == NR_EXIT_UNREACHABLE)
		nr_addrs_forget(&t->addrs); /* a VM may be back under another address */
	if (retryable(&t->ping)) {
		went_down(d, t, now);
		return;
	}
	if (t->down)
		came_back(d, t);
	if (one_of_many(d, t))
		save(t, !deferred(d, t));
	if (!one_of_many(d, t) || !deferred(d, t))
		report(d, t, recovered);
	if (!one_of_many(d, t))
		tell_hooks(d, t, nr_event_name(&t->ping), t->ping.target.label);
	if (d->o.on_result)
		d->o.on_result(d->o.ctx, i, &t->ping, t->pending);
	if (t->pending)
		start(d, i, now);
}

static void done(struct nr_deliver *d, int i, uint64_t now)
{
	finished(d, i, now);
	group_check(d, d->t[i].group);
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
	struct nr_dtarget *t;

	if (i < 0) {
		looked_up(d, -1 - i, now);
		return;
	}
	t = &d->t[i];
	if (!t->busy)
		return;
	nr_ping_step(&t->ping, revents);
	connect_timeout(t, now);
	if (t->ping.state == NR_PING_DONE)
		done(d, i, now);
}

void nr_deliver_tick(struct nr_deliver *d, uint64_t now)
{
	for (int gi = 0; gi < d->ng; gi++) {
		struct nr_dgroup *g = &d->g[gi];
		if (!g->holding || now < g->hold_until)
			continue;
		if (!g->slow_said)
			fprintf(stderr, "netreload: warning: looking up %s takes more than %d ms; "
					"reloading the replicas known meanwhile\n",
				g->look.src.label, LOOKUP_WAIT_MS);
		g->slow_said = 1;
		release(d, gi, now);
	}
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
	for (int gi = 0; gi < d->ng; gi++)
		if (d->g[gi].holding && (!next || d->g[gi].hold_until < next))
			next = d->g[gi].hold_until;
	return next;
}

/* A ping in flight, a change queued (for a target that is down too, if
 * asked), or a batch held for a lookup. A slot that is gone has none. */
static int unfinished(const struct nr_deliver *d, int down_too)
{
	for (int i = 0; i < d->n; i++)
		if (d->t[i].busy || (d->t[i].pending && (down_too || !d->t[i].down)))
			return 1;
	for (int gi = 0; gi < d->ng; gi++)
		if (d->g[gi].holding)
			return 1;
	return 0;
}

int nr_deliver_busy(const struct nr_deliver *d)
{
	return unfinished(d, 0);
}

int nr_deliver_settled(const struct nr_deliver *d)
{
	return !unfinished(d, 1);
}

void nr_deliver_cancel(struct nr_deliver *d)
{
	for (int i = 0; i < d->n; i++) {
		if (d->t[i].busy)
			nr_ping_cancel(&d->t[i].ping);
		d->t[i].busy = 0;
		nr_addrs_forget(&d->t[i].addrs);
	}
	for (int gi = 0; gi < d->ng; gi++)
		nr_lookup_free(&d->g[gi].look);
}

int nr_deliver_status(const struct nr_deliver *d)
{
	int worst = NR_EXIT_OK;

	for (int i = 0; i < d->n; i++)
		if (!d->t[i].gone && d->t[i].last > worst)
			worst = d->t[i].last;
	return worst;
}
