/*
 * reload.c - netreload's reload state machine.
 *
 * A request either rides on the reload in flight (when no new code can have
 * been imported yet) or asks for one follow-up generation; any number of
 * requests coalesce into at most that one follow-up, so the last request's
 * code always ends up live. While a reload is in flight a short timerfd wakes
 * the master every NR_FAST_TICK_MS, so dead workers are reaped and the next
 * step is taken at once instead of on uWSGI's 1 s tick (uWSGI #2271).
 * "Live" means every worker slot holds a new process that accepts requests
 * with its app loaded.
 */
#include "netreload.h"

#include "logs.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

extern struct uwsgi_server uwsgi;

/* Before a re-exec uWSGI stops every --attach-daemon by signalling it, then
 * sleeping a whole second before it looks again (uwsgi_detach_daemons), so a
 * daemon that exits at once still costs the reload 1 s. Stop them the same way
 * (same signal, same mercy) but look every NR_FAST_TICK_MS; uWSGI then finds
 * them gone. One that outlives the mercy is left to uWSGI, which kills it. */
static void stop_daemons(void)
{
	uint64_t deadline = nr_now_ms() + (uint64_t)(uwsgi.reload_mercy ? uwsgi.reload_mercy : 3) * 1000;
	struct uwsgi_daemon *ud;
	int left = 0;

	for (ud = uwsgi.daemons; ud; ud = ud->next) {
		if (ud->pid <= 0 || ud->pidfile)
			continue; /* smart daemons outlive the master; uWSGI only notifies them */
		kill(-ud->pid, ud->reload_signal > 0 ? ud->reload_signal : ud->stop_signal);
		left++;
	}
	while (left > 0 && nr_now_ms() < deadline) {
		usleep(NR_FAST_TICK_MS * 1000);
		left = 0;
		for (ud = uwsgi.daemons; ud; ud = ud->next) {
			int st;
			if (ud->pid <= 0 || ud->pidfile)
				continue;
			if (waitpid(ud->pid, &st, WNOHANG) == ud->pid || (kill(ud->pid, 0) && errno == ESRCH))
				continue;
			left++;
		}
	}
}

static void start_graceful(void)
{
	stop_daemons();
	uwsgi_block_signal(SIGHUP);
	grace_them_all(0);
	uwsgi_unblock_signal(SIGHUP);
}

static void start_brutal(void)
{
	stop_daemons();
	uwsgi_block_signal(SIGTERM);
	uwsgi_block_signal(SIGQUIT);
	reap_them_all(0);
	uwsgi_unblock_signal(SIGQUIT);
	uwsgi_unblock_signal(SIGTERM);
}

static void start_workers(void)
{
	uwsgi_reload_workers();
}

static void start_brutal_workers(void)
{
	uwsgi_brutally_reload_workers();
}

static void start_chain(void)
{
	uwsgi_chain_reload();
}

/* The reload modes: how to start each, whether it needs lazy-apps to load new
 * code, and whether it re-execs the master (then the next master finishes it). */
static const struct nr_mode_def {
	enum nr_mode mode;
	void (*start)(void);
	int needs_lazy;
	int reexec;
	int rank; /* a request for a higher rank cannot ride on a lower-rank reload */
	int sig;  /* what uWSGI sends each worker; we repeat it if it was lost */
} nr_modes[] = {
	{NR_MODE_GRACEFUL, start_graceful, 0, 1, 2, SIGHUP},
	{NR_MODE_CHAIN, start_chain, 1, 0, 1, SIGHUP},
	{NR_MODE_WORKERS, start_workers, 1, 0, 1, SIGHUP},
	{NR_MODE_BRUTAL_WORKERS, start_brutal_workers, 1, 0, 1, SIGINT},
	{NR_MODE_BRUTAL, start_brutal, 0, 1, 2, SIGTERM},
};

static const struct nr_mode_def *mode_def(enum nr_mode mode)
{
	for (size_t i = 0; i < sizeof(nr_modes) / sizeof(nr_modes[0]); i++)
		if (nr_modes[i].mode == mode)
			return &nr_modes[i];
	return &nr_modes[0];
}

/* Whether a reload in this mode can serve new code in this instance: the modes
 * that only replace workers fork them from the master, which holds the old
 * code unless apps load in each worker (lazy-apps). */
int nr_mode_loads_new_code(enum nr_mode mode)
{
	if (mode == NR_MODE_DEFAULT)
		mode = unr.mode;
	return !mode_def(mode)->needs_lazy || uwsgi.lazy_apps || uwsgi.lazy;
}

/* In lazy mode a graceful reload only restarts the workers, like "workers". */
int nr_mode_reexecs(enum nr_mode mode)
{
	return mode_def(mode)->reexec && !uwsgi.lazy;
}

static uint32_t since(uint64_t t, uint64_t t0)
{
	return t > t0 ? (uint32_t)(t - t0) : 0;
}

struct nr_recent *nr_recent_lookup(const char *id)
{
	for (int i = 0; i < NR_RECENT_IDS; i++)
		if (id[0] && !strcmp(unr.recent[i].id, id))
			return &unr.recent[i];
	return NULL;
}

void nr_recent_add(const char *id, uint64_t gen, uint64_t t0, const struct sockaddr_storage *from,
		   socklen_t alen)
{
	struct nr_recent *r = &unr.recent[unr.recent_next++ % NR_RECENT_IDS];

	*r = (struct nr_recent){.gen = gen, .t0 = t0};
	snprintf(r->id, sizeof(r->id), "%s", id);
	if (alen <= sizeof(r->addr)) {
		memcpy(&r->addr, from, alen);
		r->alen = alen;
	}
}

/* Whether ss sent the request r remembers. */
int nr_recent_from(const struct nr_recent *r, const struct sockaddr_storage *ss, socklen_t alen)
{
	return r->alen == alen && !memcmp(&r->addr, ss, alen);
}

/* Remember how a generation ended, so a UDP retry whose answer was lost gets it again. */
static void recent_finish(uint64_t gen, const struct nr_reply *rep, uint64_t now)
{
	for (int i = 0; i < NR_RECENT_IDS; i++) {
		struct nr_recent *r = &unr.recent[i];
		if (!r->id[0] || r->kind || r->gen > gen)
			continue;
		r->kind = rep->kind;
		r->ms = since(now, r->t0);
		r->stop_ms = since(unr.t_stop, r->t0);
		r->killed = rep->killed;
		snprintf(r->old, sizeof(r->old), "%s", rep->old);
	}
}

/* Could code saved before now still be imported by the reload in flight? Only
 * if nothing of the new generation has started importing yet. */
static int rides_on_current(enum nr_mode mode)
{
	if (!unr.active || unr.execd || mode_def(mode)->rank > mode_def(unr.cur_mode)->rank)
		return 0;
	if (nr_mode_reexecs(unr.cur_mode))
		return 1; /* the next master imports after exec, and we are still the old one */
	for (int i = 1; i <= uwsgi.numproc; i++)
		if (uwsgi.workers[i].pid > 0 && uwsgi.workers[i].pid != unr.old_pids[i])
			return 0;
	return 1;
}

static uint64_t request(enum nr_mode mode, uint64_t now, int may_ride)
{
	if (mode == NR_MODE_DEFAULT)
		mode = unr.mode;
	if (may_ride && rides_on_current(mode))
		return unr.gen;
	if (!unr.pending) {
		unr.pending = 1;
		unr.pending_mode = mode;
		unr.pending_first = now;
		unr.pending_first_us = nr_now_us();
	} else if (mode_def(mode)->rank >= mode_def(unr.pending_mode)->rank) {
		unr.pending_mode = mode;
	}
	return unr.gen + 1;
}

uint64_t nr_request_reload(enum nr_mode mode, uint64_t now)
{
	return request(mode, now, 1);
}

/* ---- waiting for the share -------------------------------------------- */

/* The files the next generation waits to see (share.c checks them in its
 * thread), and what the checks found. A stale share fails the generation. */
static struct {
	int started;			/* share.c's thread runs and wakes us */
	int checking;			/* a check of `inflight` runs */
	struct nr_share_job want;	/* asked for, not being checked yet */
	struct nr_share_job inflight;
	int stale;			/* files a finished check found old */
	char reason[NR_REASON_MAX + 1];
} sc;

static const char *share_root(void)
{
	static char cwd[PATH_MAX];

	if (unr.root)
		return unr.root;
	if (!cwd[0] && !getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), ".");
	return cwd;
}

/* A request that lists files never rides on the reload in flight: that one
 * could import before the share shows them. */
uint64_t nr_request_reload_files(enum nr_mode mode, uint64_t now, const struct nr_file *files,
				 int n, uint32_t more)
{
	if (!unr.share_timeout_ms || (!n && !more))
		return nr_request_reload(mode, now);
	nr_share_job_add(&sc.want, files, n, more);
	return request(mode, now, 0);
}

static void share_collect(void)
{
	struct nr_share_result res;

	if (!sc.checking || !nr_share_result(&res))
		return;
	sc.checking = 0;
	if (res.verdict == NR_SHARE_SEEN) {
		uwsgi_log("netreload: the share shows %d changed file(s)%s after %.3f ms%s\n",
			  sc.inflight.n, sc.inflight.more ? " and the tree was checked" : "",
			  (double)res.us / 1000.0,
			  res.pyc_removed ? ", removed their compiled .pyc" : "");
		return;
	}
	if (res.verdict == NR_SHARE_NOROOT) {
		/* the paths do not map here: nothing to wait for, reload as without a list */
		uwsgi_log("netreload: WARNING: %s\n", res.reason);
		return;
	}
	uwsgi_log("netreload: %s\n", res.reason);
	if (!sc.stale)
		nr_reason_set(sc.reason, res.reason);
	sc.stale += res.stale ? res.stale : 1;
}

static int share_start(void)
{
	if (sc.started)
		return 0;
	if (nr_share_start()) {
		uwsgi_error("netreload: cannot start the share check thread");
		return -1;
	}
	nr_listen_add_wakeup(nr_share_fd());
	sc.started = 1;
	uwsgi_log("netreload: before each reload, waiting until %s shows the saved files "
		  "(netreload-root; up to %d ms, netreload-share-timeout)\n",
		  share_root(), unr.share_timeout_ms);
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
	if (nr_share_submit(share_root(), &sc.inflight, (uint32_t)unr.share_timeout_ms) == 0) {
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

static void ensure_slots(void)
{
	if (!unr.old_pids) {
		unr.old_pids = uwsgi_calloc(sizeof(pid_t) * (uwsgi.numproc + 1));
		unr.cursed_ms = uwsgi_calloc(sizeof(uint64_t) * (uwsgi.numproc + 1));
		unr.resent_ms = uwsgi_calloc(sizeof(uint64_t) * (uwsgi.numproc + 1));
		unr.loading_pids = uwsgi_calloc(sizeof(pid_t) * (uwsgi.numproc + 1));
	}
}

static void finish(enum nr_kind kind, const char *reason, uint32_t stale, uint64_t now);

static void start_reload(uint64_t now)
{
	const struct nr_mode_def *def = mode_def(unr.pending_mode);

	ensure_slots();
	for (int i = 1; i <= uwsgi.numproc; i++) {
		unr.old_pids[i] = uwsgi.workers[i].pid;
		unr.cursed_ms[i] = unr.resent_ms[i] = 0;
		unr.loading_pids[i] = 0;
	}
	unr.gen++;
	unr.active = 1;
	unr.execd = 0;
	unr.killed = 0;
	unr.cur_mode = def->mode;
	unr.t_first = unr.pending_first;
	unr.t_start = now;
	unr.t_stop = unr.t_spawn = unr.t_load = 0;
	unr.pending = 0;
	if (sc.stale) {
		/* the share never showed the saved code: a reload would serve the old */
		unr.saved_forkbomb_delay = uwsgi.forkbomb_delay;
		finish(NR_REPLY_FAILED, sc.reason, (uint32_t)sc.stale, now);
		sc.stale = 0;
		sc.reason[0] = '\0';
		return;
	}
	uwsgi_log("netreload: generation %llu: %s reload, %.3f ms after the request\n",
		  (unsigned long long)unr.gen, nr_mode_name(def->mode),
		  (double)(nr_now_us() - unr.pending_first_us) / 1000.0);
	if (!nr_mode_reexecs(def->mode)) {
		/* our own respawns are not a crash loop: skip uWSGI's fork-bomb pause */
		unr.saved_forkbomb_delay = uwsgi.forkbomb_delay;
		uwsgi.forkbomb_delay = 0;
	}
	def->start();
}

/* Where the time went, from this waiter's request on (0: before it, or unknown). */
static void set_steps(struct nr_reply *rep, uint64_t t0, uint64_t now)
{
	rep->ms = since(now, t0);
	rep->stop_ms = since(unr.t_stop, t0);
	rep->spawn_ms = since(unr.t_spawn, t0);
	rep->load_ms = since(unr.t_load, t0);
}

void nr_answer_waiters(uint64_t gen, const struct nr_reply *tmpl)
{
	uint64_t now = nr_now_ms();
	struct nr_reply rep = *tmpl;

	for (int i = 0; i < NR_MAX_CONNS; i++) {
		struct nr_conn *c = unr.conns[i];
		if (!c || c->state != NR_CONN_WAITING || c->want_gen > gen)
			continue;
		snprintf(rep.id, sizeof(rep.id), "%s", c->id);
		set_steps(&rep, c->t0, now);
		nr_send_reply(c, &rep);
		nr_conn_close(c);
	}
	for (int i = 0; i < NR_MAX_UDP_WAITERS; i++) {
		struct nr_udp_waiter *w = &unr.udpw[i];
		if (!w->used || w->want_gen > gen)
			continue;
		snprintf(rep.id, sizeof(rep.id), "%s", w->id);
		set_steps(&rep, w->t0, now);
		nr_udp_reply(&w->addr, w->alen, &rep);
		w->used = 0;
	}
}

/* Mules and spoolers outlive a reload that does not re-exec the master: they
 * keep the code they started with, and "live" says so (PROTOCOL.md, old=). */
static void old_processes(char *list, size_t len)
{
	int mules = 0, spooler = 0;
	struct uwsgi_spooler *us;

	list[0] = '\0';
	if (unr.execd || (mode_def(unr.cur_mode)->reexec &&
			  !(uwsgi.lazy && unr.cur_mode == NR_MODE_GRACEFUL)))
		return; /* brutal kills the mules even under lazy (reap_them_all) */
	for (int i = 0; i < uwsgi.mules_cnt; i++)
		mules |= uwsgi.mules[i].pid > 0;
	for (us = uwsgi.spoolers; us; us = us->next)
		spooler |= us->pid > 0;
	snprintf(list, len, "%s%s%s", mules ? "mules" : "", mules && spooler ? "," : "",
		 spooler ? "spooler" : "");
}

static void finish(enum nr_kind kind, const char *reason, uint32_t stale, uint64_t now)
{
	struct nr_reply rep = {.kind = kind, .gen = unr.gen, .killed = (uint32_t)unr.killed,
			       .stale = stale};

	unr.active = 0;
	unr.last = kind;
	unr.last_ms = (uint32_t)(now - unr.t_first);
	nr_reason_set(unr.last_reason, reason ? reason : "");
	nr_reason_set(rep.reason, unr.last_reason);
	if (!nr_mode_reexecs(unr.cur_mode) && !unr.execd)
		uwsgi.forkbomb_delay = unr.saved_forkbomb_delay;
	if (kind == NR_REPLY_LIVE) {
		old_processes(rep.old, sizeof(rep.old));
		uwsgi_log("netreload: generation %llu live in %u ms (old workers gone after %u ms)\n",
			  (unsigned long long)unr.gen, unr.last_ms,
			  unr.t_stop ? (unsigned)(unr.t_stop - unr.t_first) : 0);
	} else {
		uwsgi_log("netreload: generation %llu FAILED after %u ms: %s\n",
			  (unsigned long long)unr.gen, unr.last_ms, unr.last_reason);
	}
	if (rep.old[0])
		uwsgi_log("netreload: still running the old code: %s (a %s reload restarts only "
			  "the workers)\n",
			  rep.old, nr_mode_name(unr.cur_mode));
	nr_answer_waiters(unr.gen, &rep);
	recent_finish(unr.gen, &rep, now);
}

/* uWSGI starts workers with SIGHUP ignored and installs their handler ~0.1 s
 * later; a SIGHUP sent in between is discarded and uWSGI never repeats it, so
 * the reload waits for reload-mercy (60 s). We repeat the signal to idle old
 * workers every NR_RESEND_MS and kill those that outstay netreload-grace: a
 * reload always ends in bounded time. */
#define NR_RESEND_MS 100

/* Whether worker i provably never ran its handler for sig, so a repeat cannot
 * re-enter it. uWSGI's SIGHUP handler (gracefully_kill) first clears
 * manage_next_request in the shared worker table; a worker that got it during
 * a request leaves after the request through exit() and the app's atexit
 * teardown, where a second SIGHUP would run the handler again (log, exit()
 * inside exit()) and cut the teardown short. The other signals' handler
 * (end_me) calls exit() inside itself, with the signal blocked: a repeat waits
 * harmlessly, and nothing shows whether the first one came. */
static int signal_lost(int i, int sig)
{
	return sig != SIGHUP || uwsgi.workers[i].manage_next_request;
}

static void nudge_worker(int i, uint64_t now)
{
	pid_t pid = uwsgi.workers[i].pid;

	if (!unr.cursed_ms[i])
		unr.cursed_ms[i] = now;
	if (now - unr.cursed_ms[i] >= (uint64_t)unr.grace_ms) {
		uwsgi_log("netreload: worker %d (pid %d) did not stop within %d ms, killing it\n", i,
			  (int)pid, unr.grace_ms);
		kill(pid, SIGKILL);
		unr.cursed_ms[i] = UINT64_MAX;
		unr.killed++;
	} else if (now - unr.resent_ms[i] >= NR_RESEND_MS && !uwsgi_worker_is_busy(i)) {
		if (unr.resent_ms[i] && signal_lost(i, mode_def(unr.cur_mode)->sig))
			kill(pid, mode_def(unr.cur_mode)->sig);
		unr.resent_ms[i] = now;
	}
}

static int old_workers_alive(uint64_t now)
{
	int alive = 0;

	for (int i = 1; i <= uwsgi.numproc; i++) {
		pid_t pid = uwsgi.workers[i].pid;
		if (pid <= 0 || pid != unr.old_pids[i])
			continue;
		alive++;
		if (!uwsgi.workers[i].cursed_at && !nr_mode_reexecs(unr.cur_mode))
			continue; /* chain: not asked to stop yet */
		if (unr.cursed_ms[i] != UINT64_MAX)
			nudge_worker(i, now);
	}
	return alive;
}

/* Signal workers only once they can hear it (see above), or when we tired of waiting. */
static int workers_ready_for_signal(uint64_t now)
{
	if (now - unr.pending_first >= (uint64_t)unr.grace_ms)
		return 1;
	for (int i = 1; i <= uwsgi.numproc; i++)
		if (uwsgi.workers[i].pid > 0 && !uwsgi.workers[i].cheaped && !uwsgi.workers[i].accepting)
			return 0;
	return 1;
}

struct worker_count {
	int total, started, ready, with_app;
};

static struct worker_count count_workers(void)
{
	struct worker_count wc = {0, 0, 0, 0};

	for (int i = 1; i <= uwsgi.numproc; i++) {
		struct uwsgi_worker *w = &uwsgi.workers[i];
		if (w->cheaped)
			continue;
		wc.total++;
		if (w->pid <= 0 || w->pid == unr.old_pids[i])
			continue;
		wc.started++;
		if (!w->accepting)
			continue;
		wc.ready++;
		wc.with_app += w->apps_cnt > 0;
	}
	return wc;
}

/* Whether new workers must hold an app to serve: not for request plugins that
 * load their code per request (PHP, CGI), which have no init_apps hook. */
static int apps_expected(void)
{
	static int known, expected;

	if (known)
		return expected;
	for (int i = 0; i < 256; i++) {
		struct uwsgi_plugin *p = uwsgi.p[i];
		if (p && p->init_apps && p->name && strcmp(p->name, "unconfigured"))
			expected = 1;
	}
	known = 1;
	return expected;
}

/* Why the new workers run without an app: the exception printed where the
 * apps loaded, in a new worker (lazy-apps) or else in this master. */
static void failure_reason(char *reason, size_t len)
{
	for (int i = 1; i <= uwsgi.numproc; i++) {
		struct uwsgi_worker *w = &uwsgi.workers[i];
		if (w->cheaped || w->pid <= 0 || w->pid == unr.old_pids[i] || w->apps_cnt > 0)
			continue;
		if (nr_logs_reason(i, w->pid, reason, len))
			return;
	}
	if (nr_logs_reason(0, 0, reason, len))
		return;
	snprintf(reason, len, "app failed to load: workers run without an application "
			      "(no exception in the log; see the uWSGI log)");
}

/* The new worker that slot i loads the app in: remember it until it accepts.
 * Its pid, once it is gone without having accepted; else 0. */
static pid_t loader_gone(int i)
{
	struct uwsgi_worker *w = &uwsgi.workers[i];
	pid_t seen = unr.loading_pids[i];

	if (seen && w->pid == seen) {
		if (w->accepting)
			unr.loading_pids[i] = 0; /* loaded: what it does next is not the reload's */
		return 0;
	}
	if (seen)
		return seen;
	if (w->pid > 0 && w->pid != unr.old_pids[i] && !w->cheaped && !w->accepting)
		unr.loading_pids[i] = w->pid;
	return 0;
}

/* A new worker that exits before it accepts (a Rack app that raises, need-app)
 * is respawned by uWSGI to fail the same way until netreload-timeout: fail at
 * once, quoting why. Its relay may publish what it printed a moment after
 * uWSGI reaped it, so the reason is waited for up to NR_DEATH_REASON_MS. */
#define NR_DEATH_REASON_MS 300

static int new_worker_died(uint64_t now, char *reason, size_t len)
{
	static uint64_t since;

	for (int i = 1; i <= uwsgi.numproc; i++) {
		pid_t pid = loader_gone(i);
		if (!pid)
			continue;
		if (!since)
			since = now;
		/* its output, or that of the worker uWSGI put in its place meanwhile */
		if (nr_logs_reason(i, pid, reason, len) ||
		    nr_logs_reason(i, uwsgi.workers[i].pid, reason, len)) {
			since = 0;
			return 1;
		}
		if (now - since < NR_DEATH_REASON_MS)
			return 0;
		snprintf(reason, len, "app failed to load: a new worker (pid %d) exited before it "
				      "accepted requests (no exception in the log; see the uWSGI log)",
			 (int)pid);
		since = 0;
		return 1;
	}
	since = 0;
	return 0;
}

static void check_progress(uint64_t now)
{
	struct worker_count wc;
	char reason[NR_REASON_MAX + 1];

	if (old_workers_alive(now) == 0 && !unr.t_stop)
		unr.t_stop = now;
	if (nr_mode_reexecs(unr.cur_mode) && !unr.execd)
		goto timeout; /* uWSGI re-execs once the old workers are gone */
	if (unr.execd && !unr.t_load)
		unr.t_load = now; /* the first pass of the new master loop */
	wc = count_workers();
	if (!unr.t_spawn && wc.started)
		unr.t_spawn = now;
	if (new_worker_died(now, reason, sizeof(reason))) {
		finish(NR_REPLY_FAILED, reason, 0, now);
		return;
	}
	if (wc.total == 0 && unr.t_stop) {
		/* cheap/idle: no worker runs at all, so none runs old code; the
		 * next request spawns one with the new code, loaded by this master
		 * (or by the worker itself with lazy-apps) */
		if (uwsgi.lazy_apps || uwsgi.lazy || !apps_expected() || uwsgi.workers[0].apps_cnt > 0) {
			finish(NR_REPLY_LIVE, NULL, 0, now);
			return;
		}
		failure_reason(reason, sizeof(reason));
		finish(NR_REPLY_FAILED, reason, 0, now);
		return;
	}
	if (wc.total > 0 && wc.ready == wc.total) {
		if (wc.with_app == wc.total || !apps_expected()) {
			finish(NR_REPLY_LIVE, NULL, 0, now);
			return;
		}
		failure_reason(reason, sizeof(reason));
		finish(NR_REPLY_FAILED, reason, 0, now);
		return;
	}
timeout:
	if (now - unr.t_start > (uint64_t)unr.timeout * 1000) {
		wc = count_workers();
		snprintf(reason, sizeof(reason),
			 "timeout after %d s: %d of %d workers running new code (netreload-timeout)",
			 unr.timeout, wc.ready, wc.total);
		finish(NR_REPLY_FAILED, reason, 0, now);
	}
}

/* --idle N: after N seconds without a request uWSGI stops the workers
 * (uwsgi_master_check_idle), but it SIGINTs each one and sleeps a whole second
 * before it looks at it again: N workers block the master N seconds, in which
 * no ping is read and a SIGINT to the master waits. netreload takes the check
 * over (uwsgi.idle is set to 0, so uWSGI's never runs) with the same rule and
 * the same steps, but without sleeping: the workers are reaped by the master
 * loop as they exit (our tick keeps it turning), killed after 3 s as uWSGI
 * does, and only then do the sockets wait for the request that wakes them.
 * die-on-idle is left to uWSGI (the instance ends; nothing to reload). */
#define NR_IDLE_KILL_MS 3000

static struct {
	int secs;	     /* the user's --idle; 0: not ours */
	int stopping;	     /* workers told to stop; sockets not yet watched */
	uint64_t since;	     /* last request seen (or the stop began) */
	uint64_t requests;   /* uwsgi.workers[0].requests then */
} idle;

void nr_idle_take_over(void)
{
	if (!uwsgi.idle || uwsgi.die_on_idle)
		return;
	idle.secs = uwsgi.idle;
	uwsgi.idle = 0;
	idle.since = 0;
	idle.stopping = 0;
	uwsgi_log("netreload: idle = %d is checked by netreload (no 1 s pause per worker)\n",
		  idle.secs);
}

static void idle_stop_workers(uint64_t now)
{
	uwsgi_log("workers have been inactive for more than %d seconds\n", idle.secs);
	uwsgi.status.is_cheap = 1;
	for (int i = 1; i <= uwsgi.numproc; i++) {
		struct uwsgi_worker *w = &uwsgi.workers[i];
		w->cheaped = 1;
		w->rss_size = w->vsz_size = 0;
		if (w->pid <= 0)
			continue;
		w->manage_next_request = 0; /* its death is expected, not a crash */
		kill(w->pid, SIGINT);
	}
	idle.stopping = 1;
	idle.since = now;
}

/* 1 while workers told to stop are still there. */
static int idle_stopping(uint64_t now)
{
	int left = 0;

	for (int i = 1; i <= uwsgi.numproc; i++) {
		pid_t pid = uwsgi.workers[i].pid;
		if (pid <= 0)
			continue;
		left++;
		if (nr_ms_since(now, idle.since) >= NR_IDLE_KILL_MS)
			kill(pid, SIGKILL);
	}
	if (left)
		return 1;
	uwsgi_add_sockets_to_queue(uwsgi.master_queue, -1);
	uwsgi_log("cheap mode enabled: waiting for socket connection...\n");
	idle.stopping = 0;
	return 0;
}

static void idle_check(uint64_t now)
{
	if (!idle.secs)
		return;
	if (idle.stopping && idle_stopping(now))
		return;
	if (uwsgi.status.is_cheap || unr.active || unr.pending || uwsgi_instance_is_reloading ||
	    uwsgi_instance_is_dying) {
		idle.since = 0;
		return;
	}
	for (int i = 1; i <= uwsgi.numproc; i++)
		if (!uwsgi.workers[i].cheaped && uwsgi.workers[i].pid > 0 && uwsgi_worker_is_busy(i))
			idle.since = 0;
	if (!idle.since || idle.requests != uwsgi.workers[0].requests) {
		idle.since = now;
		idle.requests = uwsgi.workers[0].requests;
		return;
	}
	if (nr_ms_since(now, idle.since) > (uint64_t)idle.secs * 1000)
		idle_stop_workers(now);
}

void nr_reload_tick(uint64_t now)
{
	if (unr.active)
		check_progress(now);
	idle_check(now);
	if (share_settled() && !unr.active && unr.pending && !uwsgi_instance_is_reloading &&
	    !uwsgi_instance_is_dying && !idle.stopping && workers_ready_for_signal(now))
		start_reload(now);
	if (unr.active || uwsgi_instance_is_reloading || idle.stopping)
		nr_set_tick(NR_FAST_TICK_MS);
	else if (unr.pending)
		nr_set_tick(NR_FAST_TICK_MS * 5);
	else if (nr_conn_count() || unr.bad_count)
		nr_set_tick(NR_SLOW_TICK_MS);
	else
		nr_set_tick(0);
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

	if (!unr.active)
		return;
	nr_logs_end(); /* if it exits while loading apps: what it printed so far */
	memcpy(reason, prefix, sizeof(prefix));
	if (!(unr.execd && !unr.t_load && nr_logs_reason(0, getpid(), why, room)))
		snprintf(why, room, "see the uWSGI log");
	finish(NR_REPLY_FAILED, reason, 0, nr_now_ms());
}

void nr_status_reply(struct nr_reply *rep)
{
	int live = 0, total = 0, apps = 0;

	for (int i = 1; i <= uwsgi.numproc; i++) {
		struct uwsgi_worker *w = &uwsgi.workers[i];
		if (w->cheaped)
			continue;
		total++;
		live += w->pid > 0 && w->accepting;
		if (w->pid > 0 && w->apps_cnt > apps)
			apps = w->apps_cnt;
	}
	memset(rep, 0, sizeof(*rep));
	rep->kind = NR_REPLY_STATUS;
	rep->gen = unr.gen;
	snprintf(rep->state, sizeof(rep->state), "%s", unr.active ? "reloading" : "idle");
	rep->mode = unr.mode;
	rep->workers_live = (uint32_t)live;
	rep->workers_total = (uint32_t)total;
	rep->apps = (uint32_t)apps;
	snprintf(rep->last, sizeof(rep->last), "%s",
		 unr.last == NR_REPLY_LIVE ? "live" : unr.last == NR_REPLY_FAILED ? "failed" : "none");
	rep->last_ms = unr.last_ms;
	rep->pid = (uint32_t)getpid();
	if (unr.last == NR_REPLY_FAILED)
		nr_reason_set(rep->reason, unr.last_reason);
}

/* The reload in flight and the UDP ids taken, for the next master. */
void nr_reload_export(struct nr_handover *h)
{
	h->gen = unr.gen;
	h->active = unr.active;
	h->mode = unr.cur_mode;
	h->first = unr.t_first;
	h->start = unr.t_start;
	h->stop = unr.t_stop ? unr.t_stop : nr_now_ms();
	h->pending = unr.pending;
	h->pmode = unr.pending ? unr.pending_mode : unr.mode;
	h->pfirst = unr.pending_first;
	h->last = unr.last;
	h->last_ms = unr.last_ms;
	h->killed = unr.active ? (uint32_t)unr.killed : 0;
	for (int i = 0; i < NR_RECENT_IDS && h->nrecent < NR_HO_RECENT; i++) {
		struct nr_recent *r = &unr.recent[i];
		struct nr_ho_recent *hr;
		if (!r->id[0])
			continue;
		hr = &h->recent[h->nrecent++];
		*hr = (struct nr_ho_recent){.gen = r->gen, .t0 = r->t0, .kind = (int)r->kind,
					    .ms = r->ms, .stop_ms = r->stop_ms, .alen = r->alen};
		memcpy(&hr->addr, &r->addr, r->alen);
		snprintf(hr->id, sizeof(hr->id), "%s", r->id);
	}
}

void nr_reload_import(const struct nr_handover *h)
{
	unr.gen = h->gen;
	unr.active = h->active;
	unr.cur_mode = h->mode == NR_MODE_DEFAULT ? unr.mode : h->mode;
	unr.t_first = h->first;
	unr.t_start = h->start;
	unr.t_stop = h->stop;
	unr.pending = h->pending;
	unr.pending_mode = h->pmode == NR_MODE_DEFAULT ? unr.mode : h->pmode;
	unr.pending_first = h->pfirst;
	unr.last = h->last;
	unr.last_ms = h->last_ms;
	unr.killed = h->active && h->killed <= INT_MAX ? (int)h->killed : 0;
	share_import(h);
	for (int i = 0; i < h->nrecent; i++) {
		struct nr_recent *r = &unr.recent[unr.recent_next++ % NR_RECENT_IDS];
		*r = (struct nr_recent){.gen = h->recent[i].gen, .t0 = h->recent[i].t0,
					.kind = (enum nr_kind)h->recent[i].kind,
					.ms = h->recent[i].ms, .stop_ms = h->recent[i].stop_ms,
					.alen = h->recent[i].alen};
		memcpy(&r->addr, &h->recent[i].addr, h->recent[i].alen);
		snprintf(r->id, sizeof(r->id), "%s", h->recent[i].id);
	}
	ensure_slots();
	unr.execd = unr.active; /* every worker of this master is new */
	if (unr.execd)
		unr.t_spawn = nr_now_ms(); /* this master's start: exec and uWSGI's early setup */
}
