/*
 * reload.c - netreload's reload state machine.
 *
 * A request either rides on the reload in flight (when no new code can have
 * been imported yet) or asks for one follow-up generation; any number of
 * requests coalesce into at most that one follow-up, so the last request's
 * code always ends up live. While a reload is in flight a short timerfd wakes
 * the master every NR_FAST_TICK_MS (less often as it ages), so dead workers
 * are reaped and the next step is taken at once instead of on uWSGI's 1 s
 * tick (uWSGI #2271).
 * "Live" means every worker slot holds a new process that accepts requests
 * with its app loaded.
 *
 * Everything here is decided from a snapshot of the worker table (reload.h),
 * and done through the callbacks nr_reload_init was given: no uWSGI in sight.
 */
#include "reload.h"

#include "logs.h"
#include "share.h"
#include "util.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct nr_reload_config cfg;
static struct nr_reload_ops ops;

/* The reload in flight, the one wanted next, and how the last one ended. */
static struct {
	uint64_t gen;		/* newest generation started */
	int active;		/* generation gen is in flight */
	int execd;		/* this master is gen's re-exec */
	enum nr_mode cur_mode;
	uint64_t t_first;	/* first request covered by gen */
	uint64_t t_start, t_stop;
	uint64_t t_spawn; /* new master started (re-exec) or first new worker seen */
	uint64_t t_load;  /* re-exec: first master loop pass, app imported and workers forked */
	int nslots;		/* size of the arrays below: numproc + 1 */
	pid_t *old_pids;	/* per worker slot, pids of the previous generation */
	uint64_t *cursed_ms;	/* per worker slot, when we saw it asked to stop */
	uint64_t *resent_ms;	/* per worker slot, when we last repeated the signal */
	pid_t *loading_pids;	/* per worker slot, its new worker while it loads the app */
	uint64_t died_since;	/* a new worker died; its reason is awaited since */
	int killed;		/* stragglers we had to kill */
	int pending;		/* a follow-up generation is wanted */
	enum nr_mode pending_mode;
	uint64_t pending_first;
	uint64_t pending_first_us; /* the same, finer, to log request -> reload start */

	/* last result */
	int last; /* 0 none, NR_REPLY_LIVE, NR_REPLY_FAILED */
	uint32_t last_ms;
	char last_reason[NR_REASON_MAX + 1];
} rl;

/* The files the next generation waits to see (share.c checks them in its
 * thread), and what the checks found. A stale share fails the generation.
 * See "waiting for the share" below. */
static struct {
	int started;			/* share.c's thread runs and wakes us */
	int checking;			/* a check of `inflight` runs */
	struct nr_share_job want;	/* asked for, not being checked yet */
	struct nr_share_job inflight;
	int stale;			/* files a finished check found old */
	char reason[NR_REASON_MAX + 1];
} sc;

/* The reload modes: whether each needs lazy-apps to load new code, whether it
 * re-execs the master (then the next master finishes it), and the signal uWSGI
 * sends each worker. How to start each is glue.c's. */
static const struct nr_mode_def {
	enum nr_mode mode;
	int needs_lazy;
	int reexec;
	int rank; /* a request for a higher rank cannot ride on a lower-rank reload */
	int sig;  /* what uWSGI sends each worker; we repeat it if it was lost */
} nr_modes[] = {
	{NR_MODE_GRACEFUL, 0, 1, 2, SIGHUP},
	{NR_MODE_CHAIN, 1, 0, 1, SIGHUP},
	{NR_MODE_WORKERS, 1, 0, 1, SIGHUP},
	{NR_MODE_BRUTAL_WORKERS, 1, 0, 1, SIGINT},
	{NR_MODE_BRUTAL, 0, 1, 2, SIGTERM},
};

static const struct nr_mode_def *mode_def(enum nr_mode mode)
{
	for (size_t i = 0; i < sizeof(nr_modes) / sizeof(nr_modes[0]); i++)
		if (nr_modes[i].mode == mode)
			return &nr_modes[i];
	return &nr_modes[0];
}

/* Settings and callbacks; forgets any previous state (a unit test starts afresh). */
void nr_reload_init(const struct nr_reload_config *c, const struct nr_reload_ops *o)
{
	free(rl.old_pids);
	free(rl.cursed_ms);
	free(rl.resent_ms);
	free(rl.loading_pids);
	memset(&rl, 0, sizeof(rl));
	memset(&sc.want, 0, sizeof(sc.want));
	sc.stale = 0;
	sc.reason[0] = '\0';
	cfg = *c;
	ops = *o;
}

/* Whether a reload in this mode can serve new code in this instance: the modes
 * that only replace workers fork them from the master, which holds the old
 * code unless apps load in each worker (lazy-apps). */
int nr_mode_loads_new_code(enum nr_mode mode)
{
	if (mode == NR_MODE_DEFAULT)
		mode = cfg.mode;
	return !mode_def(mode)->needs_lazy || cfg.lazy_apps || cfg.lazy;
}

/* In lazy mode a graceful reload only restarts the workers, like "workers". */
int nr_mode_reexecs(enum nr_mode mode)
{
	return mode_def(mode)->reexec && !cfg.lazy;
}

static void *slot_array(size_t size)
{
	void *p = calloc((size_t)rl.nslots, size);

	if (!p) {
		nr_log("netreload: out of memory\n");
		exit(1);
	}
	return p;
}

/* The per-slot arrays, sized by the worker table on first sight. */
static void ensure_slots(const struct nr_snapshot *s)
{
	if (rl.old_pids)
		return;
	rl.nslots = s->numproc + 1;
	rl.old_pids = slot_array(sizeof(pid_t));
	rl.cursed_ms = slot_array(sizeof(uint64_t));
	rl.resent_ms = slot_array(sizeof(uint64_t));
	rl.loading_pids = slot_array(sizeof(pid_t));
}

/* Slots this state and the snapshot both know (the table never grows). */
static int nslots(const struct nr_snapshot *s)
{
	ensure_slots(s);
	return s->numproc < rl.nslots - 1 ? s->numproc : rl.nslots - 1;
}

/* Could code saved before now still be imported by the reload in flight? Only
 * if nothing of the new generation has started importing yet. */
static int rides_on_current(const struct nr_snapshot *s, enum nr_mode mode)
{
	int n;

	if (!rl.active || rl.execd || mode_def(mode)->rank > mode_def(rl.cur_mode)->rank)
		return 0;
	if (nr_mode_reexecs(rl.cur_mode))
		return 1; /* the next master imports after exec, and we are still the old one */
	n = nslots(s);
	for (int i = 1; i <= n; i++)
		if (s->slot[i].pid > 0 && s->slot[i].pid != rl.old_pids[i])
			return 0;
	return 1;
}

static uint64_t request(const struct nr_snapshot *s, enum nr_mode mode, uint64_t now, int may_ride)
{
	if (mode == NR_MODE_DEFAULT)
		mode = cfg.mode;
	if (may_ride && rides_on_current(s, mode))
		return rl.gen;
	if (!rl.pending) {
		rl.pending = 1;
		rl.pending_mode = mode;
		rl.pending_first = now;
		rl.pending_first_us = nr_now_us();
	} else if (mode_def(mode)->rank >= mode_def(rl.pending_mode)->rank) {
		rl.pending_mode = mode;
	}
	return rl.gen + 1;
}

uint64_t nr_request_reload(const struct nr_snapshot *s, enum nr_mode mode, uint64_t now)
{
	return request(s, mode, now, 1);
}

int nr_reload_busy(void)
{
	return rl.active || rl.pending;
}

const char *nr_reload_last_reason(void)
{
	return rl.last_reason;
}

/* ---- waiting for the share -------------------------------------------- */


static const char *share_root(void)
{
	static char cwd[PATH_MAX];

	if (cfg.root)
		return cfg.root;
	if (!cwd[0] && !getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), ".");
	return cwd;
}

/* A request that lists files never rides on the reload in flight: that one
 * could import before the share shows them. */
uint64_t nr_request_reload_files(const struct nr_snapshot *s, enum nr_mode mode, uint64_t now,
				 const struct nr_file *files, int n, uint32_t more)
{
	if (!cfg.share_timeout_ms || (!n && !more))
		return nr_request_reload(s, mode, now);
	nr_share_job_add(&sc.want, files, n, more);
	return request(s, mode, now, 0);
}

static void share_collect(void)
{
	struct nr_share_result res;

	if (!sc.checking || !nr_share_result(&res))
		return;
	sc.checking = 0;
	if (res.verdict == NR_SHARE_SEEN) {
		nr_log("netreload: the share shows %d changed file(s)%s after %.3f ms%s\n",
			  sc.inflight.n, sc.inflight.more ? " and the tree was checked" : "",
			  (double)res.us / 1000.0,
			  res.pyc_removed ? ", removed their compiled .pyc" : "");
		return;
	}
	if (res.verdict == NR_SHARE_NOROOT) {
		/* the paths do not map here: nothing to wait for, reload as without a list */
		nr_log("netreload: WARNING: %s\n", res.reason);
		return;
	}
	nr_log("netreload: %s\n", res.reason);
	if (!sc.stale)
		nr_reason_set(sc.reason, res.reason);
	sc.stale += res.stale ? res.stale : 1;
}

static int share_start(void)
{
	if (sc.started)
		return 0;
	if (nr_share_start()) {
		nr_log_errno("netreload: cannot start the share check thread");
		return -1;
	}
	ops.wakeup(nr_share_fd());
	sc.started = 1;
	nr_log("netreload: before each reload, waiting until %s shows the saved files "
		  "(netreload-root; up to %d ms, netreload-share-timeout)\n",
		  share_root(), cfg.share_timeout_ms);
	return 0;
}

/* Collect a finished check, start the next; 1 once nothing is left to check. */
static int share_settled(void)
{
	share_collect();
	if (sc.checking || (!sc.want.n && !sc.want.more))
		return !sc.checking;
	if (share_start()) {
		memset(&sc.want, 0, sizeof(sc.want)); /* cannot check: reload as before */
		return 1;
	}
	sc.inflight = sc.want;
	if (nr_share_submit(share_root(), &sc.inflight, (uint32_t)cfg.share_timeout_ms) == 0) {
		memset(&sc.want, 0, sizeof(sc.want));
		sc.checking = 1;
	}
	return 0;
}

/* Files still to be seen, for the next master (a re-exec ends the thread). */
void nr_share_export(struct nr_handover *h)
{
	struct nr_share_job all = sc.want;

	if (sc.checking)
		nr_share_job_add(&all, sc.inflight.files, sc.inflight.n, sc.inflight.more);
	h->nfiles = all.n;
	memcpy(h->files, all.files, sizeof(all.files[0]) * (size_t)all.n);
	h->fmore = all.more;
	h->stale = (uint32_t)sc.stale;
	snprintf(h->stale_reason, sizeof(h->stale_reason), "%s", sc.reason);
}

static void share_import(const struct nr_handover *h)
{
	nr_share_job_add(&sc.want, h->files, h->nfiles, h->fmore);
	sc.stale = (int)h->stale;
	nr_reason_set(sc.reason, h->stale_reason);
}

static void finish(enum nr_kind kind, const char *reason, uint32_t stale, uint64_t now,
		   const struct nr_snapshot *s);

static void start_reload(const struct nr_snapshot *s, uint64_t now)
{
	const struct nr_mode_def *def = mode_def(rl.pending_mode);
	int n = nslots(s);

	for (int i = 1; i <= n; i++) {
		rl.old_pids[i] = s->slot[i].pid;
		rl.cursed_ms[i] = rl.resent_ms[i] = 0;
		rl.loading_pids[i] = 0;
	}
	rl.gen++;
	rl.active = 1;
	rl.execd = 0;
	rl.killed = 0;
	rl.cur_mode = def->mode;
	rl.t_first = rl.pending_first;
	rl.t_start = now;
	rl.t_stop = rl.t_spawn = rl.t_load = 0;
	rl.pending = 0;
	if (sc.stale) {
		/* the share never showed the saved code: a reload would serve the old */
		finish(NR_REPLY_FAILED, sc.reason, (uint32_t)sc.stale, now, s);
		sc.stale = 0;
		sc.reason[0] = '\0';
		return;
	}
	nr_log("netreload: generation %llu: %s reload, %.3f ms after the request\n",
	       (unsigned long long)rl.gen, nr_mode_name(def->mode),
	       (double)(nr_now_us() - rl.pending_first_us) / 1000.0);
	if (!nr_mode_reexecs(def->mode))
		ops.forkbomb(1); /* our own respawns are not a crash loop */
	ops.start(def->mode);
}

/* Mules and spoolers outlive a reload that does not re-exec the master: they
 * keep the code they started with, and "live" says so (PROTOCOL.md, old=). */
static void old_processes(const struct nr_snapshot *s, char *list, size_t len)
{
	list[0] = '\0';
	if (rl.execd || (mode_def(rl.cur_mode)->reexec &&
			 !(cfg.lazy && rl.cur_mode == NR_MODE_GRACEFUL)))
		return; /* brutal kills the mules even under lazy (reap_them_all) */
	snprintf(list, len, "%s%s%s", s->mules ? "mules" : "", s->mules && s->spooler ? "," : "",
		 s->spooler ? "spooler" : "");
}

/* s: the worker table, for the mules and spoolers that keep old code; NULL
 * when the master exits. */
static void finish(enum nr_kind kind, const char *reason, uint32_t stale, uint64_t now,
		   const struct nr_snapshot *s)
{
	struct nr_reply rep = {.kind = kind, .gen = rl.gen, .killed = (uint32_t)rl.killed,
			       .stale = stale};
	struct nr_reload_times t = {rl.t_stop, rl.t_spawn, rl.t_load};

	rl.active = 0;
	rl.last = kind;
	rl.last_ms = (uint32_t)(now - rl.t_first);
	nr_reason_set(rl.last_reason, reason ? reason : "");
	nr_reason_set(rep.reason, rl.last_reason);
	if (!nr_mode_reexecs(rl.cur_mode) && !rl.execd)
		ops.forkbomb(0);
	if (kind == NR_REPLY_LIVE) {
		if (s)
			old_processes(s, rep.old, sizeof(rep.old));
		nr_log("netreload: generation %llu live in %u ms (old workers gone after %u ms)\n",
		       (unsigned long long)rl.gen, rl.last_ms,
		       rl.t_stop ? (unsigned)(rl.t_stop - rl.t_first) : 0);
	} else {
		nr_log("netreload: generation %llu FAILED after %u ms: %s\n",
		       (unsigned long long)rl.gen, rl.last_ms, rl.last_reason);
	}
	if (rep.old[0])
		nr_log("netreload: still running the old code: %s (a %s reload restarts only "
		       "the workers)\n",
		       rep.old, nr_mode_name(rl.cur_mode));
	ops.finished(&rep, &t, now);
}

/* uWSGI starts workers with SIGHUP ignored and installs their handler ~0.1 s
 * later; a SIGHUP sent in between is discarded and uWSGI never repeats it, so
 * the reload waits for reload-mercy (60 s). We repeat the signal to idle old
 * workers every NR_RESEND_MS and kill those that outstay netreload-grace: a
 * reload always ends in bounded time. */
#define NR_RESEND_MS 100

/* Whether worker w provably never ran its handler for sig, so a repeat cannot
 * re-enter it. uWSGI's SIGHUP handler (gracefully_kill) first clears
 * manage_next_request in the shared worker table; a worker that got it during
 * a request leaves after the request through exit() and the app's atexit
 * teardown, where a second SIGHUP would run the handler again (log, exit()
 * inside exit()) and cut the teardown short. The other signals' handler
 * (end_me) calls exit() inside itself, with the signal blocked: a repeat waits
 * harmlessly, and nothing shows whether the first one came. */
static int signal_lost(const struct nr_slot *w, int sig)
{
	return sig != SIGHUP || w->manage_next_request;
}

static void nudge_worker(const struct nr_snapshot *s, int i, uint64_t now)
{
	const struct nr_slot *w = &s->slot[i];

	if (!rl.cursed_ms[i])
		rl.cursed_ms[i] = now;
	if (now - rl.cursed_ms[i] >= (uint64_t)cfg.grace_ms) {
		nr_log("netreload: worker %d (pid %d) did not stop within %d ms, killing it\n", i,
		       (int)w->pid, cfg.grace_ms);
		ops.signal(w->pid, SIGKILL);
		rl.cursed_ms[i] = UINT64_MAX;
		rl.killed++;
	} else if (now - rl.resent_ms[i] >= NR_RESEND_MS && !w->busy) {
		if (rl.resent_ms[i] && signal_lost(w, mode_def(rl.cur_mode)->sig))
			ops.signal(w->pid, mode_def(rl.cur_mode)->sig);
		rl.resent_ms[i] = now;
	}
}

static int old_workers_alive(const struct nr_snapshot *s, uint64_t now)
{
	int alive = 0, n = nslots(s);

	for (int i = 1; i <= n; i++) {
		pid_t pid = s->slot[i].pid;
		if (pid <= 0 || pid != rl.old_pids[i])
			continue;
		alive++;
		if (!s->slot[i].cursed && !nr_mode_reexecs(rl.cur_mode))
			continue; /* chain: not asked to stop yet */
		if (rl.cursed_ms[i] != UINT64_MAX)
			nudge_worker(s, i, now);
	}
	return alive;
}

/* Signal workers only once they can hear it (see above), or when we tired of waiting. */
static int workers_ready_for_signal(const struct nr_snapshot *s, uint64_t now)
{
	if (now - rl.pending_first >= (uint64_t)cfg.grace_ms)
		return 1;
	for (int i = 1; i <= s->numproc; i++)
		if (s->slot[i].pid > 0 && !s->slot[i].cheaped && !s->slot[i].accepting)
			return 0;
	return 1;
}

struct worker_count {
	int total, started, ready, with_app;
};

static struct worker_count count_workers(const struct nr_snapshot *s)
{
	struct worker_count wc = {0, 0, 0, 0};
	int n = nslots(s);

	for (int i = 1; i <= n; i++) {
		const struct nr_slot *w = &s->slot[i];
		if (w->cheaped)
			continue;
		wc.total++;
		if (w->pid <= 0 || w->pid == rl.old_pids[i])
			continue;
		wc.started++;
		if (!w->accepting)
			continue;
		wc.ready++;
		wc.with_app += w->apps_cnt > 0;
	}
	return wc;
}

/* Why the new workers run without an app: the exception printed where the
 * apps loaded, in a new worker (lazy-apps) or else in this master. */
static void failure_reason(const struct nr_snapshot *s, char *reason, size_t len)
{
	int n = nslots(s);

	for (int i = 1; i <= n; i++) {
		const struct nr_slot *w = &s->slot[i];
		if (w->cheaped || w->pid <= 0 || w->pid == rl.old_pids[i] || w->apps_cnt > 0)
			continue;
		if (nr_logs_reason(w->wid ? w->wid : i, w->pid, reason, len))
			return;
	}
	if (nr_logs_reason(0, 0, reason, len))
		return;
	snprintf(reason, len, "app failed to load: workers run without an application "
			      "(no exception in the log; see the uWSGI log)");
}

/* The new worker that slot i loads the app in: remember it until it accepts.
 * Its pid, once it is gone without having accepted; else 0. */
static pid_t loader_gone(const struct nr_snapshot *s, int i)
{
	const struct nr_slot *w = &s->slot[i];
	pid_t seen = rl.loading_pids[i];

	if (seen && w->pid == seen) {
		if (w->accepting)
			rl.loading_pids[i] = 0; /* loaded: what it does next is not the reload's */
		return 0;
	}
	if (seen)
		return seen;
	if (w->pid > 0 && w->pid != rl.old_pids[i] && !w->cheaped && !w->accepting)
		rl.loading_pids[i] = w->pid;
	return 0;
}

/* A new worker that exits before it accepts (a Rack app that raises, need-app)
 * is respawned by uWSGI to fail the same way until netreload-timeout: fail at
 * once, quoting why. Its relay may publish what it printed a moment after
 * uWSGI reaped it, so the reason is waited for up to NR_DEATH_REASON_MS. */
#define NR_DEATH_REASON_MS 300

static int new_worker_died(const struct nr_snapshot *s, uint64_t now, char *reason, size_t len)
{
	int n = nslots(s);

	for (int i = 1; i <= n; i++) {
		pid_t pid = loader_gone(s, i);
		if (!pid)
			continue;
		if (!rl.died_since)
			rl.died_since = now;
		/* its output, or that of the worker uWSGI put in its place meanwhile */
		int wid = s->slot[i].wid ? s->slot[i].wid : i;
		if (nr_logs_reason(wid, pid, reason, len) ||
		    nr_logs_reason(wid, s->slot[i].pid, reason, len)) {
			rl.died_since = 0;
			return 1;
		}
		if (now - rl.died_since < NR_DEATH_REASON_MS)
			return 0;
		snprintf(reason, len, "app failed to load: a new worker (pid %d) exited before it "
				      "accepted requests (no exception in the log; see the uWSGI log)",
			 (int)pid);
		rl.died_since = 0;
		return 1;
	}
	rl.died_since = 0;
	return 0;
}

/* New workers all accept, or none runs at all (cheap, idle): live, or failed
 * when they hold no app. 0: not there yet. */
static int all_new(const struct nr_snapshot *s, const struct worker_count *wc, uint64_t now)
{
	char reason[NR_REASON_MAX + 1];
	int live;

	if (wc->total == 0 && rl.t_stop)
		/* cheap/idle: no worker runs at all, so none runs old code; the
		 * next request spawns one with the new code, loaded by this master
		 * (or by the worker itself with lazy-apps) */
		live = cfg.lazy_apps || cfg.lazy || !s->apps_expected || s->slot[0].apps_cnt > 0;
	else if (wc->total > 0 && wc->ready == wc->total)
		live = wc->with_app == wc->total || !s->apps_expected;
	else
		return 0;
	if (live) {
		finish(NR_REPLY_LIVE, NULL, 0, now, s);
		return 1;
	}
	failure_reason(s, reason, sizeof(reason));
	finish(NR_REPLY_FAILED, reason, 0, now, s);
	return 1;
}

static void check_progress(const struct nr_snapshot *s, uint64_t now)
{
	struct worker_count wc;
	char reason[NR_REASON_MAX + 1];

	if (old_workers_alive(s, now) == 0 && !rl.t_stop)
		rl.t_stop = now;
	if (nr_mode_reexecs(rl.cur_mode) && !rl.execd)
		goto timeout; /* uWSGI re-execs once the old workers are gone */
	if (rl.execd && !rl.t_load)
		rl.t_load = now; /* the first pass of the new master loop */
	wc = count_workers(s);
	if (!rl.t_spawn && wc.started)
		rl.t_spawn = now;
	if (new_worker_died(s, now, reason, sizeof(reason))) {
		finish(NR_REPLY_FAILED, reason, 0, now, s);
		return;
	}
	if (all_new(s, &wc, now))
		return;
timeout:
	if (now - rl.t_start > (uint64_t)cfg.timeout * 1000) {
		wc = count_workers(s);
		snprintf(reason, sizeof(reason),
			 "timeout after %d s: %d of %d workers running new code (netreload-timeout)",
			 cfg.timeout, wc.ready, wc.total);
		finish(NR_REPLY_FAILED, reason, 0, now, s);
	}
}

/* The reload in flight moves on (first thing in a master loop pass). */
void nr_reload_check(const struct nr_snapshot *s, uint64_t now)
{
	if (rl.active)
		check_progress(s, now);
}

/* The master looks every NR_FAST_TICK_MS while a reload is young. One that
 * takes long (a big app imports) is looked at every 64th of its age, at most
 * NR_FAST_TICK_MAX_MS: its end is seen under 2% later, and the master no
 * longer wakes a thousand times a second beside workers that import. On two
 * cores with two workers importing a 5,000-module app those wake-ups took
 * 40-60 ms of master CPU per reload and slowed each import by 10-15%. */
static uint64_t inflight_tick(uint64_t now)
{
	uint64_t t = rl.active ? nr_ms_since(now, rl.t_start) / NR_FAST_TICK_AGE : 0;

	if (t < NR_FAST_TICK_MS)
		return NR_FAST_TICK_MS;
	return t > NR_FAST_TICK_MAX_MS ? NR_FAST_TICK_MAX_MS : t;
}

uint64_t nr_reload_next(const struct nr_snapshot *s, uint64_t now, int idle_stopping)
{
	if (share_settled() && !rl.active && rl.pending && !s->reloading && !s->dying &&
	    !idle_stopping && workers_ready_for_signal(s, now))
		start_reload(s, now);
	if (rl.active || s->reloading || idle_stopping)
		return inflight_tick(now);
	return rl.pending ? NR_PENDING_TICK_MS : 0;
}

/* The master exits: a language plugin exit()s when the app fails to load in
 * it (Rack without lazy-apps), or uWSGI stops. Tell whoever waits for the
 * reload why, instead of leaving them a closed connection. Only a re-exec'd
 * master that never reached its loop was loading apps: what it printed then
 * says why; otherwise the log has the reason. */
void nr_reload_master_exit(void)
{
	static const char prefix[] = "the uWSGI master exited: ";
	char reason[NR_REASON_MAX + 1];
	char *why = reason + sizeof(prefix) - 1;
	size_t room = sizeof(reason) - (sizeof(prefix) - 1);

	if (!rl.active)
		return;
	nr_logs_end(0); /* if it exits while loading apps: what it printed so far */
	memcpy(reason, prefix, sizeof(prefix));
	if (!(rl.execd && !rl.t_load && nr_logs_reason(0, getpid(), why, room)))
		snprintf(why, room, "see the uWSGI log");
	finish(NR_REPLY_FAILED, reason, 0, nr_now_ms(), NULL);
}

void nr_status_reply(const struct nr_snapshot *s, struct nr_reply *rep)
{
	int live = 0, total = 0, apps = 0;

	for (int i = 1; i <= s->numproc; i++) {
		const struct nr_slot *w = &s->slot[i];
		if (w->cheaped)
			continue;
		total++;
		live += w->pid > 0 && w->accepting;
		if (w->pid > 0 && w->apps_cnt > apps)
			apps = w->apps_cnt;
	}
	memset(rep, 0, sizeof(*rep));
	rep->kind = NR_REPLY_STATUS;
	rep->gen = rl.gen;
	snprintf(rep->state, sizeof(rep->state), "%s", rl.active ? "reloading" : "idle");
	rep->mode = cfg.mode;
	rep->workers_live = (uint32_t)live;
	rep->workers_total = (uint32_t)total;
	rep->apps = (uint32_t)apps;
	snprintf(rep->last, sizeof(rep->last), "%s",
		 rl.last == NR_REPLY_LIVE ? "live" : rl.last == NR_REPLY_FAILED ? "failed" : "none");
	rep->last_ms = rl.last_ms;
	rep->pid = (uint32_t)getpid();
	if (rl.last == NR_REPLY_FAILED)
		nr_reason_set(rep->reason, rl.last_reason);
}

/* The reload in flight, for the next master. */
void nr_reload_export(struct nr_handover *h)
{
	h->gen = rl.gen;
	h->active = rl.active;
	h->mode = rl.cur_mode;
	h->first = rl.t_first;
	h->start = rl.t_start;
	h->stop = rl.t_stop ? rl.t_stop : nr_now_ms();
	h->pending = rl.pending;
	h->pmode = rl.pending ? rl.pending_mode : cfg.mode;
	h->pfirst = rl.pending_first;
	h->last = rl.last;
	h->last_ms = rl.last_ms;
	h->killed = rl.active ? (uint32_t)rl.killed : 0;
}

void nr_reload_import(const struct nr_handover *h)
{
	rl.gen = h->gen;
	rl.active = h->active;
	rl.cur_mode = h->mode == NR_MODE_DEFAULT ? cfg.mode : h->mode;
	rl.t_first = h->first;
	rl.t_start = h->start;
	rl.t_stop = h->stop;
	rl.pending = h->pending;
	rl.pending_mode = h->pmode == NR_MODE_DEFAULT ? cfg.mode : h->pmode;
	rl.pending_first = h->pfirst;
	rl.last = h->last;
	rl.last_ms = h->last_ms;
	rl.killed = h->active && h->killed <= INT_MAX ? (int)h->killed : 0;
	share_import(h);
	rl.execd = rl.active; /* every worker of this master is new */
	if (rl.execd)
		rl.t_spawn = nr_now_ms(); /* this master's start: exec and uWSGI's early setup */
}
