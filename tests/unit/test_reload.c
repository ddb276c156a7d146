/*
 * test_reload.c - the reload state machine (plugin/reload.c) fed snapshots of
 * a made-up worker table: coalescing, riding on the reload in flight, when a
 * generation is live or failed, which old workers are signalled again, the
 * timeout, cheap mode and a re-exec'd master. No uWSGI: the callbacks record
 * what the machine asks for, and the log and the failure reasons are fakes.
 */
#include <signal.h>
#include <stdarg.h>
#include <string.h>

#include "../../plugin/logs.h"
#include "../../plugin/reload.h"
#include "../../plugin/util.h"
#include "check.h"

#define NPROC 4

static struct nr_slot slots[NPROC + 1];
static struct nr_snapshot snap;

/* What the machine did through its callbacks. */
static struct {
	int starts;
	enum nr_mode mode;
	int nsignals;
	pid_t sig_pid[16];
	int sig[16];
	int forkbomb; /* 1 paused, 0 restored, -1 never touched */
	int finished;
	struct nr_reply rep;
	struct nr_reload_times t;
	uint64_t end;
} act;

static char logged[1024];

void nr_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(logged, sizeof(logged), fmt, ap);
	va_end(ap);
}

/* The failure reasons the log relay would have kept: one slot, one pid. */
static struct {
	int slot;
	pid_t pid;
	const char *text;
} fake_reason;

int nr_logs_reason(int slot, pid_t pid, char *dst, size_t len)
{
	if (!fake_reason.text || slot != fake_reason.slot || (pid && pid != fake_reason.pid))
		return 0;
	snprintf(dst, len, "%s", fake_reason.text);
	return 1;
}

void nr_logs_end(int loaded)
{
	(void)loaded;
}

static void on_start(enum nr_mode mode)
{
	act.starts++;
	act.mode = mode;
}

static void on_signal(pid_t pid, int sig)
{
	if (act.nsignals < 16) {
		act.sig_pid[act.nsignals] = pid;
		act.sig[act.nsignals] = sig;
	}
	act.nsignals++;
}

static void on_forkbomb(int pause)
{
	act.forkbomb = pause;
}

static void on_wakeup(int fd)
{
	(void)fd;
}

static void on_finished(const struct nr_reply *rep, const struct nr_reload_times *t, uint64_t now)
{
	act.finished++;
	act.rep = *rep;
	act.t = *t;
	act.end = now;
}

/* A fresh machine in this mode over nproc workers, pids 100 + slot, all serving. */
static void setup(enum nr_mode mode, int lazy_apps, int lazy, int nproc)
{
	struct nr_reload_config cfg = {.mode = mode, .lazy = lazy, .lazy_apps = lazy_apps,
				       .timeout = 30, .grace_ms = 3000};
	struct nr_reload_ops ops = {on_start, on_signal, on_forkbomb, on_wakeup, on_finished};

	nr_reload_init(&cfg, &ops);
	memset(&act, 0, sizeof(act));
	act.forkbomb = -1;
	memset(&fake_reason, 0, sizeof(fake_reason));
	memset(slots, 0, sizeof(slots));
	snap = (struct nr_snapshot){.numproc = nproc, .slot = slots, .apps_expected = 1};
	slots[0].apps_cnt = lazy_apps || lazy ? 0 : 1;
	for (int i = 1; i <= nproc; i++)
		slots[i] = (struct nr_slot){.pid = 100 + i, .accepting = 1, .apps_cnt = 1,
					    .manage_next_request = 1};
}

/* One master loop pass, as netreload.c runs it (no --idle). */
static uint64_t pass(uint64_t now)
{
	nr_reload_check(&snap, now);
	return nr_reload_next(&snap, now, 0);
}

/* uWSGI put a new worker in slot i: loading (0), or serving with its app (1). */
static void new_worker(int i, pid_t pid, int serving)
{
	slots[i] = (struct nr_slot){.pid = pid, .accepting = serving, .apps_cnt = serving,
				    .manage_next_request = 1};
}

/* Every slot gets a new worker that serves, one pass at a time; live only at the last. */
static void test_live(void)
{
	uint64_t gen;

	setup(NR_MODE_WORKERS, 1, 0, 2);
	CHECK(pass(1000) == 0 && act.starts == 0); /* nothing asked: nothing done */
	gen = nr_request_reload(&snap, NR_MODE_DEFAULT, 1000);
	CHECK(gen == 1);
	CHECK(nr_reload_busy());
	CHECK(pass(1001) == NR_FAST_TICK_MS);
	CHECK(act.starts == 1 && act.mode == NR_MODE_WORKERS);
	CHECK(act.forkbomb == 1); /* our respawns are not a crash loop */
	slots[1].cursed = slots[2].cursed = 1;
	pass(1002);
	CHECK(!act.finished);
	new_worker(1, 201, 1);
	pass(1003);
	CHECK(!act.finished); /* slot 2 still runs the old code */
	new_worker(2, 202, 0);
	pass(1004);
	CHECK(!act.finished); /* slot 2's new worker does not accept yet */
	pass(1005);
	CHECK(!act.finished);
	slots[2].accepting = slots[2].apps_cnt = 1;
	CHECK(pass(1006) == 0);
	CHECK(act.finished == 1 && act.rep.kind == NR_REPLY_LIVE && act.rep.gen == 1);
	CHECK(act.forkbomb == 0);
	CHECK(act.t.stop == 1004 && act.t.spawn == 1003 && act.end == 1006);
	CHECK(act.rep.killed == 0 && act.rep.old[0] == '\0');
	CHECK(!nr_reload_busy());
	CHECK(strstr(logged, "generation 1 live in 6 ms") != NULL);
}

/* A young reload is looked at every NR_FAST_TICK_MS; an old one every 64th of
 * its age, never less often than NR_FAST_TICK_MAX_MS; none once it ended. */
static void test_tick_ages(void)
{
	setup(NR_MODE_WORKERS, 1, 0, 1);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 1000);
	CHECK(pass(1000) == NR_FAST_TICK_MS); /* starts */
	slots[1].cursed = 1;
	CHECK(pass(1000 + 2 * NR_FAST_TICK_AGE - 1) == NR_FAST_TICK_MS);
	CHECK(pass(1000 + 4 * NR_FAST_TICK_AGE) == 4);
	CHECK(pass(1000 + 10 * NR_FAST_TICK_AGE + 5) == 10);
	CHECK(pass(1000 + 5000) == NR_FAST_TICK_MAX_MS);
	CHECK(!act.finished);
	new_worker(1, 201, 1);
	CHECK(pass(1000 + 5001) == 0);
	CHECK(act.finished == 1 && act.rep.kind == NR_REPLY_LIVE);
}

/* New workers that accept without their app: failed, with the exception they printed. */
static void test_no_app(void)
{
	struct nr_reply st;

	setup(NR_MODE_CHAIN, 1, 0, 1);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 10);
	pass(10);
	CHECK(act.starts == 1 && act.mode == NR_MODE_CHAIN);
	fake_reason.slot = 1;
	fake_reason.pid = 301;
	fake_reason.text = "app failed to load: ImportError: no module named foo (app.py:1)";
	slots[1] = (struct nr_slot){.pid = 301, .accepting = 1, .apps_cnt = 0};
	pass(20);
	CHECK(act.finished == 1 && act.rep.kind == NR_REPLY_FAILED);
	CHECK(!strcmp(act.rep.reason, fake_reason.text));
	CHECK(!strcmp(nr_reload_last_reason(), fake_reason.text));
	nr_status_reply(&snap, &st);
	CHECK(!strcmp(st.last, "failed") && !strcmp(st.reason, fake_reason.text));
	CHECK(st.workers_live == 1 && st.workers_total == 1 && st.apps == 0 && st.gen == 1);
}

/* A new worker that exits before it accepts fails the generation at once with
 * its reason; without one, after NR_DEATH_REASON_MS (300 ms). */
static void test_new_worker_died(void)
{
	setup(NR_MODE_WORKERS, 1, 0, 2);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(0);
	new_worker(1, 201, 0);
	pass(10); /* slot 1 loads its app */
	slots[1].pid = 0;
	fake_reason.slot = 1;
	fake_reason.pid = 201;
	fake_reason.text = "app failed to load: RuntimeError: boom (config.ru:3)";
	pass(20);
	CHECK(act.finished == 1 && act.rep.kind == NR_REPLY_FAILED);
	CHECK(!strcmp(act.rep.reason, fake_reason.text));

	setup(NR_MODE_WORKERS, 1, 0, 2);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(0);
	new_worker(1, 201, 0);
	pass(10);
	new_worker(1, 202, 0); /* uWSGI respawned it already; nothing in the log */
	pass(20);
	CHECK(!act.finished);
	pass(319);
	CHECK(!act.finished);
	pass(320);
	CHECK(act.finished == 1 && act.rep.kind == NR_REPLY_FAILED);
	CHECK(strstr(act.rep.reason, "new worker (pid 201) exited before it accepted") != NULL);

	/* with spares, slot 1 shows uWSGI's worker 3 (the spare that took over):
	 * its reason is kept under worker id 3, not under the slot */
	setup(NR_MODE_WORKERS, 1, 0, 2);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(0);
	new_worker(1, 201, 0);
	slots[1].wid = 3;
	pass(10);
	slots[1].pid = 0;
	fake_reason.slot = 3;
	fake_reason.pid = 201;
	fake_reason.text = "app failed to load: NameError: spare (app.py:2)";
	pass(20);
	CHECK(act.finished == 1 && act.rep.kind == NR_REPLY_FAILED);
	CHECK(!strcmp(act.rep.reason, fake_reason.text));
}

/* Requests while a reload runs coalesce into one follow-up generation, started
 * once the first ends; before any new worker runs they ride on the first. */
static void test_coalesce_and_ride(void)
{
	setup(NR_MODE_WORKERS, 1, 0, 2);
	CHECK(nr_request_reload(&snap, NR_MODE_DEFAULT, 0) == 1);
	CHECK(nr_request_reload(&snap, NR_MODE_DEFAULT, 1) == 1); /* nothing started: same */
	pass(2);
	CHECK(act.starts == 1);
	/* no new worker yet: nothing imported the code, this request rides along */
	CHECK(nr_request_reload(&snap, NR_MODE_WORKERS, 3) == 1);
	/* a graceful request cannot ride on a workers reload */
	CHECK(nr_request_reload(&snap, NR_MODE_GRACEFUL, 4) == 2);
	setup(NR_MODE_WORKERS, 1, 0, 2);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(0);
	new_worker(1, 201, 0); /* it may have imported before the save */
	CHECK(nr_request_reload(&snap, NR_MODE_DEFAULT, 5) == 2);
	CHECK(nr_request_reload(&snap, NR_MODE_DEFAULT, 6) == 2);
	CHECK(nr_request_reload(&snap, NR_MODE_DEFAULT, 7) == 2);
	CHECK(pass(8) == NR_FAST_TICK_MS && act.starts == 1); /* one at a time */
	new_worker(1, 201, 1);
	new_worker(2, 202, 1);
	/* the first ends and the follow-up starts in the same pass */
	CHECK(pass(9) == NR_FAST_TICK_MS);
	CHECK(act.finished == 1 && act.rep.gen == 1);
	CHECK(act.starts == 2); /* the three requests: one follow-up */
	pass(10);
	CHECK(act.starts == 2 && act.finished == 1);
	new_worker(1, 301, 1);
	new_worker(2, 302, 1);
	pass(11);
	CHECK(act.finished == 2 && act.rep.gen == 2 && act.rep.kind == NR_REPLY_LIVE);
	pass(12);
	CHECK(act.starts == 2 && !nr_reload_busy());
	/* without files to wait for, a request that lists none rides as usual */
	CHECK(nr_request_reload_files(&snap, NR_MODE_DEFAULT, 13, NULL, 0, 0) == 3);
}

/* The follow-up takes the highest mode asked for; a request that lists files
 * never rides (the reload in flight may import before the share shows them). */
static void test_follow_up_mode(void)
{
	struct nr_reload_config cfg = {.mode = NR_MODE_WORKERS, .lazy_apps = 1, .timeout = 30,
				       .grace_ms = 3000, .share_timeout_ms = 1000};
	struct nr_reload_ops ops = {on_start, on_signal, on_forkbomb, on_wakeup, on_finished};
	struct nr_file f = {.path = "app.py"};

	setup(NR_MODE_WORKERS, 1, 0, 1);
	nr_request_reload(&snap, NR_MODE_WORKERS, 0);
	nr_request_reload(&snap, NR_MODE_GRACEFUL, 1);
	nr_request_reload(&snap, NR_MODE_CHAIN, 2);
	pass(3);
	CHECK(act.starts == 1 && act.mode == NR_MODE_GRACEFUL);

	setup(NR_MODE_WORKERS, 1, 0, 1);
	nr_reload_init(&cfg, &ops);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(0);
	CHECK(act.starts == 1);
	CHECK(nr_request_reload(&snap, NR_MODE_DEFAULT, 1) == 1);
	CHECK(nr_request_reload_files(&snap, NR_MODE_DEFAULT, 2, &f, 1, 0) == 2);
	nr_reload_init(&cfg, &ops); /* forget the files: no share thread in this test */
}

/* An old worker that provably missed SIGHUP (its handler never cleared
 * manage_next_request) gets it again, every 100 ms while idle; one that got it,
 * or is in a request, does not; past netreload-grace it is killed. */
static void test_resignal(void)
{
	setup(NR_MODE_WORKERS, 1, 0, 3);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(0);
	for (int i = 1; i <= 3; i++)
		slots[i].cursed = 1;
	slots[2].manage_next_request = 0; /* its handler ran: it finishes and leaves */
	slots[3].busy = 1;		  /* in a request */
	pass(1000);
	CHECK(act.nsignals == 0); /* the first look only starts the clock */
	pass(1050);
	CHECK(act.nsignals == 0);
	pass(1100);
	CHECK(act.nsignals == 1 && act.sig_pid[0] == 101 && act.sig[0] == SIGHUP);
	pass(1150);
	CHECK(act.nsignals == 1);
	pass(1200);
	CHECK(act.nsignals == 2 && act.sig_pid[1] == 101);
	slots[1].pid = 0; /* it heard that one */
	act.nsignals = 0;
	pass(4000); /* slots 2 and 3 outstayed the 3000 ms grace */
	CHECK(act.nsignals == 2 && act.sig[0] == SIGKILL && act.sig[1] == SIGKILL);
	CHECK(act.sig_pid[0] == 102 && act.sig_pid[1] == 103);
	pass(4100);
	CHECK(act.nsignals == 2); /* killed once */
	new_worker(1, 201, 1);
	new_worker(2, 202, 1);
	new_worker(3, 203, 1);
	pass(4200);
	CHECK(act.finished == 1 && act.rep.kind == NR_REPLY_LIVE && act.rep.killed == 2);

	/* brutal workers (SIGINT): nothing shows whether it came; repeat it while idle */
	setup(NR_MODE_BRUTAL_WORKERS, 1, 0, 1);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(0);
	slots[1].cursed = 1;
	slots[1].manage_next_request = 0;
	pass(100);
	CHECK(act.nsignals == 0);
	pass(200);
	CHECK(act.nsignals == 1 && act.sig[0] == SIGINT);

	/* chain: a worker not yet asked to stop is left alone */
	setup(NR_MODE_CHAIN, 1, 0, 2);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(0);
	pass(100);
	pass(200);
	pass(5000);
	CHECK(act.nsignals == 0);
}

/* A generation that does not go live within netreload-timeout fails, saying how far it got. */
static void test_timeout(void)
{
	setup(NR_MODE_WORKERS, 1, 0, 2);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(100);
	new_worker(1, 201, 1);
	new_worker(2, 202, 0);
	pass(30100);
	CHECK(!act.finished);
	pass(30101);
	CHECK(act.finished == 1 && act.rep.kind == NR_REPLY_FAILED);
	CHECK(strstr(act.rep.reason, "timeout after 30 s: 1 of 2 workers running new code") != NULL);
	CHECK(act.forkbomb == 0);

	/* graceful: the re-exec never came */
	setup(NR_MODE_GRACEFUL, 0, 0, 1);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(0);
	CHECK(act.starts == 1 && act.mode == NR_MODE_GRACEFUL && act.forkbomb == -1);
	CHECK(nr_request_reload(&snap, NR_MODE_WORKERS, 1) == 1); /* before the exec: rides */
	slots[1].pid = 0;
	pass(30000);
	CHECK(!act.finished && act.nsignals == 0);
	pass(30001);
	CHECK(act.finished == 1 && act.rep.kind == NR_REPLY_FAILED);
	CHECK(strstr(act.rep.reason, "timeout after 30 s") != NULL);
}

/* Cheap or idle (no worker runs): live once the old ones are gone, if the
 * master holds the app (or apps load lazily); a re-exec'd master finishes
 * the generation the old one started. */
static void test_cheap_after_reexec(void)
{
	struct nr_handover h;

	for (int apps = 0; apps <= 1; apps++) {
		setup(NR_MODE_GRACEFUL, 0, 0, 2);
		memset(&h, 0, sizeof(h));
		h.gen = 7;
		h.active = 1;
		h.mode = NR_MODE_GRACEFUL;
		h.first = 10;
		h.start = 20;
		h.stop = 30;
		nr_reload_import(&h);
		CHECK(nr_reload_busy());
		/* the new master's own workers are new: a request cannot ride */
		CHECK(nr_request_reload(&snap, NR_MODE_DEFAULT, 35) == 8);
		for (int i = 1; i <= 2; i++)
			slots[i] = (struct nr_slot){.cheaped = 1};
		slots[0].apps_cnt = apps;
		fake_reason.slot = 0;
		fake_reason.text = "app failed to load: SyntaxError: invalid syntax (app.py:2)";
		pass(40);
		CHECK(act.finished == 1 && act.rep.gen == 7);
		CHECK(act.rep.kind == (apps ? NR_REPLY_LIVE : NR_REPLY_FAILED));
		CHECK(apps || !strcmp(act.rep.reason, fake_reason.text));
		CHECK(act.t.load == 40);
		CHECK(act.forkbomb == -1); /* a re-exec'd master never paused it */
	}
	/* lazy-apps: the first request's worker loads the app itself */
	setup(NR_MODE_CHAIN, 1, 0, 2);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(0);
	for (int i = 1; i <= 2; i++)
		slots[i] = (struct nr_slot){.cheaped = 1};
	pass(5);
	CHECK(act.finished == 1 && act.rep.kind == NR_REPLY_LIVE);
}

/* The next reload waits for a reload uWSGI runs, for dying, for --idle, and
 * for workers that cannot hear a signal yet (up to netreload-grace). */
static void test_start_conditions(void)
{
	setup(NR_MODE_WORKERS, 1, 0, 2);
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	snap.reloading = 1;
	CHECK(pass(1) == NR_FAST_TICK_MS && act.starts == 0);
	snap.reloading = 0;
	snap.dying = 1;
	CHECK(pass(2) == NR_PENDING_TICK_MS && act.starts == 0);
	snap.dying = 0;
	nr_reload_check(&snap, 3);
	CHECK(nr_reload_next(&snap, 3, 1) == NR_FAST_TICK_MS && act.starts == 0);
	slots[2].accepting = 0; /* a worker still starting */
	pass(4);
	CHECK(act.starts == 0);
	pass(2999);
	CHECK(act.starts == 0);
	pass(3000); /* waited netreload-grace: go anyway */
	CHECK(act.starts == 1);
	CHECK(strstr(logged, "generation 1: workers reload") != NULL);
}

/* Mules and spoolers keep the old code through a reload that keeps the master. */
static void test_old_processes(void)
{
	setup(NR_MODE_WORKERS, 1, 0, 1);
	snap.mules = snap.spooler = 1;
	nr_request_reload(&snap, NR_MODE_DEFAULT, 0);
	pass(0);
	new_worker(1, 201, 1);
	pass(1);
	CHECK(act.rep.kind == NR_REPLY_LIVE && !strcmp(act.rep.old, "mules,spooler"));
	CHECK(nr_mode_loads_new_code(NR_MODE_WORKERS) && !nr_mode_reexecs(NR_MODE_WORKERS));
	setup(NR_MODE_WORKERS, 0, 0, 1);
	CHECK(!nr_mode_loads_new_code(NR_MODE_DEFAULT) && nr_mode_loads_new_code(NR_MODE_GRACEFUL));
	setup(NR_MODE_GRACEFUL, 0, 1, 1); /* lazy: graceful only restarts the workers */
	CHECK(!nr_mode_reexecs(NR_MODE_GRACEFUL) && !nr_mode_reexecs(NR_MODE_BRUTAL));
}

int main(void)
{
	test_live();
	test_no_app();
	test_new_worker_died();
	test_coalesce_and_ride();
	test_follow_up_mode();
	test_resignal();
	test_timeout();
	test_cheap_after_reexec();
	test_start_conditions();
	test_old_processes();
	test_tick_ages();
	return check_summary();
}
