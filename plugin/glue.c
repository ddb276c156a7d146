/*
 * glue.c - the only file that knows uWSGI's internals: it reads `uwsgi.*` and
 * the worker table (into snapshots for reload.c), reads and sets uWSGI's
 * settings for startup (netreload.c), calls uWSGI's reload functions, signals
 * workers, keeps fds across a re-exec and puts ours in the master's event
 * queue, runs --idle and writes the log. Everything else asks it; netreload.c
 * keeps only the option table, the plugin struct and the hooks.
 */
#include <uwsgi.h>

#include "glue.h"
#include "python.h"

#include <dirent.h>
#include <poll.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

extern struct uwsgi_server uwsgi;

void nr_log(const char *fmt, ...)
{
	char line[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	uwsgi_log("%s", line);
}

/* Complaints about bad input: the count since the last line, and the last one. */
static struct {
	uint64_t count, logged_ms;
	char last[160];
} bad;

void nr_complain(const char *fmt, ...)
{
	va_list ap;

	bad.count++;
	va_start(ap, fmt);
	vsnprintf(bad.last, sizeof(bad.last), fmt, ap);
	va_end(ap);
	nr_complain_flush(nr_now_ms());
}

/* Log what was counted once a second has passed, also after the last bad packet.
 * now may be the pass's clock, older than a flush nr_complain did in the pass. */
void nr_complain_flush(uint64_t now)
{
	if (!bad.count || (bad.logged_ms && nr_ms_since(now, bad.logged_ms) < 1000))
		return;
	uwsgi_log("netreload: dropped %llu bad request(s) in the last second (last: %s)\n",
		  (unsigned long long)bad.count, bad.last);
	bad.count = 0;
	bad.logged_ms = now;
}

int nr_complaints_pending(void)
{
	return bad.count > 0;
}

void nr_glue_keep_fd(int fd)
{
	uwsgi_add_safe_fd(fd);
}

/* Read fresh on every call: netreload-fast lowers max_fd during startup. */
const struct nr_glue_settings *nr_glue_settings(void)
{
	static struct nr_glue_settings s;

	s.master = uwsgi.master_process;
	s.is_a_reload = uwsgi.is_a_reload;
	s.numproc = uwsgi.numproc;
	s.max_fd_set = uwsgi.requested_max_fd != 0;
	s.max_fd = (unsigned long long)uwsgi.max_fd;
	return &s;
}

/* The value of a uWSGI option the user set (config file, command line, env), or NULL. */
static const char *option_set(const char *key)
{
	for (int i = 0; i < uwsgi.exported_opts_cnt; i++)
		if (!strcmp(uwsgi.exported_opts[i]->key, key))
			return uwsgi.exported_opts[i]->value ? uwsgi.exported_opts[i]->value : "";
	return NULL;
}

/* An option uWSGI fills with a default counts only if the user set it. */
int nr_glue_user_mercy(const char **key)
{
	static const char *keys[] = {"worker-reload-mercy", "reload-mercy"};
	const int secs[] = {uwsgi.worker_reload_mercy, uwsgi.reload_mercy};

	for (int i = 0; i < 2; i++) {
		if (!option_set(keys[i]) || secs[i] <= 0)
			continue;
		*key = keys[i];
		return secs[i];
	}
	return 0;
}

/* uWSGI 2.1 has need-app on by default; 2.0 off. */
int nr_glue_need_app_off(void)
{
	if (!uwsgi.need_app)
		return 0;
	uwsgi.need_app = 0;
	return 1;
}

/* Through the python plugin's own option handler, as if the user had set it;
 * the option exists only while that plugin is loaded. */
int nr_glue_shared_import(const char *module)
{
	if (!uwsgi_opt_get("shared-import"))
		return -1;
	uwsgi_manage_opt("shared-import", (char *)module);
	return 0;
}

/* skip-atexit-teardown, as if the user had set it. */
void nr_glue_skip_atexit_teardown(void)
{
	uwsgi.skip_atexit_teardown = 1;
}

/* call-pre-app and call-post-app, as if the user had set them: uWSGI looks
 * the names up with dlsym. */
void nr_glue_call_around_apps(const char *before, const char *after)
{
	uwsgi_string_new_list(&uwsgi.call_pre_app, (char *)before);
	uwsgi_string_new_list(&uwsgi.call_post_app, (char *)after);
}

/* logs.c keys a worker's failure reason by it; 0 in the master. */
int nr_glue_worker_id(void)
{
	return uwsgi.mywid;
}

/* Apps this process holds now (uwsgi_apps_cnt: its own worker's count). */
int nr_glue_apps_held(void)
{
	return uwsgi_apps_cnt;
}

/* The master's queue exists only once its loop runs, hence from master_cycle. */
void nr_glue_watch_fd(int fd)
{
	event_queue_add_fd_read(uwsgi.master_queue, fd);
}

/* uWSGI's own flag, set from the moment a reload starts until the exec. */
int nr_glue_reloading(void)
{
	return uwsgi_instance_is_reloading;
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

static int shown_slot(int k);
static int held_by_leaver(int i);
static void swap_spares(void);
static int spares_n(void);

static void snapshot_slot(struct nr_slot *s, int i)
{
	struct uwsgi_worker *w = &uwsgi.workers[i];

	*s = (struct nr_slot){.wid = i, .pid = w->pid, .accepting = w->accepting, .apps_cnt = w->apps_cnt,
			      .cheaped = w->cheaped, .cursed = w->cursed_at != 0,
			      .manage_next_request = w->manage_next_request};
	if (i > 0 && w->pid > 0)
		s->busy = uwsgi_worker_is_busy(i);
}

const struct nr_snapshot *nr_glue_snapshot(void)
{
	static struct nr_snapshot s;
	struct uwsgi_spooler *us;

	if (!s.slot)
		s.slot = uwsgi_calloc(sizeof(*s.slot) * (uwsgi.numproc + 1));
	s.numproc = spares_n() ? spares_n() : uwsgi.numproc;
	for (int i = 0; i <= s.numproc; i++) {
		int id = i && spares_n() ? shown_slot(i) : i;
		if (i && spares_n() && held_by_leaver(id))
			s.slot[i] = (struct nr_slot){.wid = id}; /* as between reap and respawn */
		else
			snapshot_slot(&s.slot[i], id);
	}
	s.reloading = uwsgi_instance_is_reloading;
	s.dying = uwsgi_instance_is_dying;
	s.mules = s.spooler = 0;
	for (int i = 0; i < uwsgi.mules_cnt; i++)
		s.mules |= uwsgi.mules[i].pid > 0;
	for (us = uwsgi.spoolers; us; us = us->next)
		s.spooler |= us->pid > 0;
	s.apps_expected = apps_expected();
	return &s;
}

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
	if (spares_n())
		swap_spares();
	else
		uwsgi_reload_workers();
}

static void start_brutal_workers(void)
{
	uwsgi_brutally_reload_workers();
}

/* uWSGI's chain waits for each slot to accept, which a parked one never does:
 * with spares, the warm spares take over at once instead. */
static void start_chain(void)
{
	if (spares_n())
		swap_spares();
	else
		uwsgi_chain_reload();
}

/* How to start each reload mode (reload.c knows what each does). */
static const struct {
	enum nr_mode mode;
	void (*start)(void);
} starts[] = {
	{NR_MODE_GRACEFUL, start_graceful},
	{NR_MODE_CHAIN, start_chain},
	{NR_MODE_WORKERS, start_workers},
	{NR_MODE_BRUTAL_WORKERS, start_brutal_workers},
	{NR_MODE_BRUTAL, start_brutal},
};

static void start_reload(enum nr_mode mode)
{
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++)
		if (starts[i].mode == mode) {
			starts[i].start();
			return;
		}
	start_graceful();
}

static void signal_worker(pid_t pid, int sig)
{
	kill(pid, sig);
}

/* Our own respawns are not a crash loop: skip uWSGI's fork-bomb pause while
 * a reload that keeps the master runs, and restore it after. */
static struct {
	int saved, paused, restore; /* restore: once the spares' slots are respawned */
} fb;

static int spares_leaving(void);

static void forkbomb_pause(int pause)
{
	if (pause) {
		if (!fb.paused)
			fb.saved = uwsgi.forkbomb_delay;
		uwsgi.forkbomb_delay = 0;
		fb.paused = 1;
		fb.restore = 0;
	} else if (fb.paused && spares_leaving()) {
		fb.restore = 1; /* with spares, live comes before the old workers are reaped */
	} else if (fb.paused) {
		uwsgi.forkbomb_delay = fb.saved;
		fb.paused = fb.restore = 0;
	}
}

static void spares_own_pages(void);
static void spares_stop_untold(void);

/* Spares told to copy their pages this long after a swap ended: right after
 * "live" the new workers serve their first requests (Django compiles its
 * templates then), and the copying would compete with them for the CPUs. */
#define NR_SPARE_OWN_AFTER_MS 500

static struct {
	int swapped;	  /* a swap ran; its old workers not yet all reaped */
	uint64_t settled; /* when they were */
} swap;

unsigned nr_glue_spares_settling(uint64_t now)
{
	if (uwsgi_instance_is_dying) {
		spares_stop_untold();
		return 0;
	}
	if (spares_leaving())
		return NR_FAST_TICK_MS;
	if (fb.restore)
		forkbomb_pause(0);
	if (swap.swapped) {
		swap.swapped = 0;
		swap.settled = now;
	}
	if (swap.settled && nr_ms_since(now, swap.settled) < NR_SPARE_OWN_AFTER_MS)
		return NR_SPARE_OWN_AFTER_MS / 4;
	spares_own_pages();
	return 0;
}

/* Worker i ran its SIGHUP handler (which clears manage_next_request) and holds
 * no request: it never accepts again, it is on its way out. */
static int takes_no_requests(int i)
{
	return !uwsgi.workers[i].manage_next_request && !uwsgi_worker_is_busy(i);
}

/* netreload-fast, during a reload that re-execs the master: uWSGI execs only
 * once every worker is reaped, but an idle old worker whose SIGHUP handler
 * ran (manage_next_request cleared) takes no request any more, and with
 * netreload-fast it ends with _exit() right after uwsgi.atexit: forget it, so
 * the new master starts while it exits (the new master reaps it, which uWSGI
 * logs as "subprocess N exited"). A worker in a request is waited for. A
 * forgotten worker also gets the lowest CPU priority: python's exit hook
 * alone takes it 2-9 ms of CPU (copying the pages it writes to, in a worker
 * forked from a master that holds the app), and the new master should not
 * wait for that. */
void nr_glue_forget_leaving_workers(void)
{
	if (!uwsgi_instance_is_reloading || uwsgi_instance_is_dying)
		return;
	for (int i = 1; i <= uwsgi.numproc; i++) {
		struct uwsgi_worker *w = &uwsgi.workers[i];
		if (w->pid > 0 && w->cursed_at && takes_no_requests(i)) {
			(void)setpriority(PRIO_PROCESS, w->pid, 19);
			w->pid = 0;
		}
	}
}

/* cfg->mode, timeout and the rest of the options are the caller's to fill. */
void nr_glue_reload_setup(struct nr_reload_config *cfg, struct nr_reload_ops *ops)
{
	cfg->lazy = uwsgi.lazy;
	cfg->lazy_apps = uwsgi.lazy_apps;
	ops->start = start_reload;
	ops->signal = signal_worker;
	ops->forkbomb = forkbomb_pause;
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

void nr_glue_idle_take_over(void)
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

int nr_glue_idle_check(uint64_t now, int busy)
{
	if (!idle.secs)
		return 0;
	if (idle.stopping && idle_stopping(now))
		return 1;
	if (uwsgi.status.is_cheap || busy || uwsgi_instance_is_reloading ||
	    uwsgi_instance_is_dying) {
		idle.since = 0;
		return 0;
	}
	for (int i = 1; i <= uwsgi.numproc; i++)
		if (!uwsgi.workers[i].cheaped && uwsgi.workers[i].pid > 0 && uwsgi_worker_is_busy(i))
			idle.since = 0;
	if (!idle.since || idle.requests != uwsgi.workers[0].requests) {
		idle.since = now;
		idle.requests = uwsgi.workers[0].requests;
		return 0;
	}
	if (nr_ms_since(now, idle.since) > (uint64_t)idle.secs * 1000)
		idle_stop_workers(now);
	return idle.stopping;
}

extern struct uwsgi_plugin netreload_plugin;

/* netreload-fast: an old worker that leaves to be replaced (told so by a
 * reload or max-requests) runs the language plugins' exit hooks (python's
 * calls uwsgi.atexit) and then ends with _exit(), skipping the exit handlers
 * that libraries and the app registered while the app loaded (OpenSSL's
 * cleanup, for one) and the libraries' destructors. Every page they write is
 * a copy-on-write fault in a forked worker: this halves the time an idle old
 * worker takes to go. The master respawns on either exit code. */
static void spare_linger(void);

void nr_glue_worker_leaves(void)
{
	int j, after = 0;

	if (uwsgi.mywid <= 0 || uwsgi.muleid || uwsgi.i_am_a_spooler ||
	    uwsgi.workers[uwsgi.mywid].manage_next_request)
		return;
	for (j = 0; j < uwsgi.gp_cnt; j++) {
		if (after && uwsgi.gp[j]->atexit)
			uwsgi.gp[j]->atexit();
		after |= uwsgi.gp[j] == &netreload_plugin;
	}
	for (j = 0; j < 256; j++)
		if (uwsgi.p[j]->atexit)
			uwsgi.p[j]->atexit();
	fflush(NULL);
	spare_linger();
	_exit(UWSGI_RELOAD_CODE);
}

/* Right after the master_cleanup hook uWSGI closes every fd from 3 to
 * max_fd (the RLIMIT_NOFILE soft limit: 20000 here, 1048576 in many containers) one
 * close() at a time before it execs: about 1 us each on a VM, so a second per
 * reload in such a container. Nothing is open above the highest open fd, and
 * nothing uses max_fd again before the exec, so end the loop there. */
static long highest_open_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	long top = -1;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && atol(de->d_name) > top)
			top = atol(de->d_name);
	closedir(d);
	return top;
}

/* max_fd as uWSGI had it, while nr_glue_shorten_inherited_check() lowered it. */
static uint64_t full_max_fd;

void nr_glue_shorten_close_loop(void)
{
	long top = highest_open_fd();

	if (top >= 0 && (uint64_t)top + 1 < (uint64_t)uwsgi.max_fd)
		uwsgi.max_fd = top + 1;
}

/* A re-exec'd master looks at every fd up to max_fd twice right after the
 * plugins' init (uwsgi_setup_inherited_sockets: getsockname() on each, then
 * close() on each it does not know): 4096 fds cost ~8 ms per reload on a VM.
 * Nothing is open above the highest open fd, so both loops may end there;
 * max_fd is back to its value at post_init, before anything sizes by it. */
void nr_glue_shorten_inherited_check(void)
{
	long top = highest_open_fd();

	if (!uwsgi.is_a_reload || top < 0 || (uint64_t)top + 1 >= (uint64_t)uwsgi.max_fd)
		return;
	full_max_fd = uwsgi.max_fd;
	uwsgi.max_fd = top + 1;
}

void nr_glue_restore_max_fd(void)
{
	if (!full_max_fd)
		return;
	uwsgi_log("netreload: looked for inherited sockets in fds 3-%llu, the highest open, "
		  "not up to max_fd %llu\n",
		  (unsigned long long)uwsgi.max_fd - 1, (unsigned long long)full_max_fd);
	uwsgi.max_fd = full_max_fd;
	full_max_fd = 0;
}

/* Lower the RLIMIT_NOFILE soft limit, and uWSGI's max_fd with it, to cap: the
 * tables uWSGI sized by max_fd so far are larger than needed, and no fd can
 * reach them. -1 if setrlimit() refuses. */
int nr_glue_lower_max_fd(unsigned long cap)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur <= cap)
		return -1;
	rl.rlim_cur = cap;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	uwsgi.max_fd = cap;
	return 0;
}

/* Spare workers (netreload-fast in workers or chain mode, lazy-apps). A workers
 * reload spends most of its time before the app even starts to import: the
 * old worker exits, the master reaps it and forks, and the new worker runs
 * the language plugin's post-fork setup. netreload forks each worker's
 * successor ahead of time instead: the worker table gets twice the slots, and
 * a worker that starts in a slot marked parked stops right before it would
 * load the app (the call-pre-app hook) and waits on its slot's pipe. A reload
 * curses the serving worker of each pair and wakes the parked one, which
 * imports the saved code at once; the master respawns the cursed slot, and
 * that worker parks in its turn. reload.c sees one slot per pair (the one
 * serving, or the one still leaving), so "live" keeps its meaning. */
#define NR_SPARE_WAKE 'w' /* load the app and serve */
#define NR_SPARE_OWN 'o'  /* the reload is over: take your copy-on-write faults now */

static struct {
	int n;		/* the workers the user asked for; 0: no spares */
	int *parked;	/* per slot [1..2n]: a worker starting there parks */
	pid_t *leaving; /* per slot: the serving worker a reload cursed there */
	pid_t *told;	/* per slot: the parked worker last sent NR_SPARE_OWN */
	int (*wake)[2]; /* per slot: the pipe that wakes its parked worker */
	volatile pid_t *linger; /* shared, per slot: the old worker a swap asked to linger */
	int modules_fd; /* memfd: the source files the app imported (python.c) */
} sp = {.modules_fd = -1};

const char *nr_glue_spares_setup(void)
{
	int n = uwsgi.numproc;

	if (!uwsgi.lazy_apps && !uwsgi.lazy)
		return "lazy-apps is off (workers fork from the master's app)";
	if (uwsgi.cheaper_count)
		return "cheaper spawns workers on its own";
	if (uwsgi.touch_chain_reload)
		return "touch-chain-reload waits for every slot to accept, and a parked one never does";
	if (n < 1 || n > 512)
		return "processes is out of range";
	sp.parked = uwsgi_calloc(sizeof(int) * (2 * n + 1));
	sp.leaving = uwsgi_calloc(sizeof(pid_t) * (2 * n + 1));
	sp.told = uwsgi_calloc(sizeof(pid_t) * (2 * n + 1));
	sp.wake = uwsgi_calloc(sizeof(*sp.wake) * (2 * n + 1));
	sp.linger = mmap(NULL, sizeof(pid_t) * (2 * n + 1), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sp.linger == MAP_FAILED) {
		uwsgi_error("netreload: mmap()");
		exit(1);
	}
	for (int i = 1; i <= 2 * n; i++) {
		if (pipe2(sp.wake[i], O_CLOEXEC) || fcntl(sp.wake[i][0], F_SETFL, O_NONBLOCK)) {
			uwsgi_error("netreload: pipe2()");
			exit(1);
		}
		/* a re-exec'd master closes the fds it does not know right after init */
		uwsgi_add_safe_fd(sp.wake[i][0]);
		uwsgi_add_safe_fd(sp.wake[i][1]);
		sp.parked[i] = i > n;
	}
	sp.modules_fd = memfd_create("netreload-modules", MFD_CLOEXEC);
	sp.n = n;
	uwsgi.numproc = 2 * n;
	return NULL;
}

/* Python: the worker serving in the first pair writes down the source files
 * the app imported; the spares read their bytecode ahead from that list. A
 * spare that read some drops what is left once its apps loaded. */
void nr_glue_spare_loaded(void)
{
	int wid = uwsgi.mywid;
	long read, used = nr_py_preload_end(&read);

	if (used > 0)
		nr_log("netreload: worker %d imported %ld modules from bytecode read ahead "
		       "(%ld read)\n", wid, used, read);
	if (sp.n && sp.modules_fd >= 0 && (wid == 1 || wid == 1 + sp.n) && uwsgi_apps_cnt > 0)
		nr_py_modules_write(sp.modules_fd);
}

#define NR_PRELOAD_SLICE 200 /* modules read per step: ~10 ms, between looks at the pipe */

/* A parked spare whose pages are its own: read the bytecode of the modules
 * the app imported last time, a slice at a time. 1: woken meanwhile. */
static int spare_preload(int wid, int *done)
{
	long left = sp.modules_fd >= 0 ? nr_py_preload_begin(sp.modules_fd) : -1;
	char b[16];

	if (left < 0)
		*done = 1; /* no Python: nothing to read, ever */
	if (left <= 0)
		return 0; /* or no list yet: look again at the next poll timeout */
	*done = 1;
	while (left > 0) {
		ssize_t got = read(sp.wake[wid][0], b, sizeof(b));
		if (got > 0 && memchr(b, NR_SPARE_WAKE, got))
			return 1;
		left = nr_py_preload_step(NR_PRELOAD_SLICE);
	}
	return 0;
}

static int spares_n(void)
{
	return sp.n;
}

static void park_end(int sig)
{
	(void)sig;
	_exit(0); /* parked: no request, no app, nothing to tear down */
}

/* A forked worker shares its memory with the master until it writes to it:
 * the first write to each page copies it (a copy-on-write fault). Python
 * writes all over the objects it touches (reference counts), so a woken
 * spare would spend most of its import in these faults. Take them while
 * parked instead: write each resident page of every private writable mapping
 * once (mincore() skips the pages never touched, such as unused stack). */
__attribute__((no_sanitize_address)) /* it touches every page, redzones too */
static void spare_own_pages(void)
{
	long page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) != 3 || perms[1] != 'w' ||
		    perms[3] != 'p' || strstr(line, "[v") || hi - lo > (1UL << 30))
			continue;
		size_t pages = (hi - lo) / page;
		unsigned char *vec = malloc(pages);
		if (vec && !mincore((void *)lo, hi - lo, vec))
			for (size_t p = 0; p < pages; p++)
				if (vec[p] & 1) {
					volatile unsigned char *b = (unsigned char *)(lo + p * page);
					*b = *b;
				}
		free(vec);
	}
	fclose(f);
}

/* In a worker about to load the apps: wait here if the slot is parked, until
 * a reload wakes it. Any stop signal ends it. A spare starts while the reload
 * that made it still runs: it copies its pages only once the master says the
 * reload is over (NR_SPARE_OWN), not in the way of the spares now importing. */
void nr_glue_spare_park(void)
{
	static const int sigs[] = {SIGHUP, SIGINT, SIGTERM, SIGQUIT};
	struct sigaction sa = {.sa_handler = park_end}, old[4];
	int wid = uwsgi.mywid, owned = 0, preloaded = 0;
	pid_t master = getppid();

	if (!sp.n || wid <= 0 || wid > 2 * sp.n || !sp.parked[wid])
		return;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &sa, &old[i]);
	for (;;) {
		struct pollfd pfd = {.fd = sp.wake[wid][0], .events = POLLIN};
		char b[16];
		ssize_t got;
		int n;
		/* the master is gone, or told this worker to stop (cursed_at, in
		 * the shared worker table) in the moment after the fork when its
		 * own handler ran instead of ours and the signal was spent */
		if (getppid() != master || uwsgi.workers[wid].cursed_at)
			_exit(0);
		n = poll(&pfd, 1, 1000); /* and look again once a second */
		got = read(sp.wake[wid][0], b, sizeof(b));
		if (got > 0 && memchr(b, NR_SPARE_WAKE, got))
			break;
		if (got > 0 && !owned) {
			spare_own_pages();
			owned = 1;
		}
		if (owned && !preloaded && spare_preload(wid, &preloaded))
			break;
		if (n < 0 && errno != EINTR)
			break;
		if (got <= 0 && n > 0 && (pfd.revents & (POLLNVAL | POLLERR | POLLHUP)))
			break; /* no pipe to wait on: load the app rather than spin */
	}
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &old[i], NULL);
	nr_py_preload_use();
}

static void linger_end(int sig)
{
	(void)sig;
	_exit(UWSGI_RELOAD_CODE);
}

/* Right after a swap the woken spares import the saved code and serve their
 * first requests. An old worker that exited then would take a CPU from them
 * for a millisecond or two (the kernel tears down its memory), and the master
 * would spend as long again forking the next spare into its slot, with that
 * spare's post-fork setup after it. So an old worker a swap replaced, once it
 * ran its exit hooks, waits here: until its successor accepts and then
 * NR_LINGER_AFTER_MS more, NR_LINGER_MAX_MS at most (the successor may fail
 * to load). It takes no request (manage_next_request is clear), and leaves at
 * once on any stop signal, or when the next swap clears its mark. */
#define NR_LINGER_AFTER_MS 100
#define NR_LINGER_MAX_MS 1000

static void spare_linger(void)
{
	static const int sigs[] = {SIGHUP, SIGINT, SIGTERM, SIGQUIT};
	struct sigaction sa = {.sa_handler = linger_end};
	int wid = uwsgi.mywid, next;
	pid_t me = getpid(), master = getppid();
	uint64_t start = nr_now_ms(), served = 0;

	if (!sp.n || wid <= 0 || wid > 2 * sp.n || sp.linger[wid] != me)
		return;
	next = wid > sp.n ? wid - sp.n : wid + sp.n;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 4; i++)
		sigaction(sigs[i], &sa, NULL);
	while (sp.linger[wid] == me && getppid() == master) {
		uint64_t now = nr_now_ms();
		if (!served && uwsgi.workers[next].pid > 0 && uwsgi.workers[next].accepting)
			served = now;
		if (served ? nr_ms_since(now, served) >= NR_LINGER_AFTER_MS
			   : nr_ms_since(now, start) >= NR_LINGER_MAX_MS)
			return;
		usleep(served ? 10000 : 2000);
	}
}

/* uWSGI's SIGINT handler can run in the master between reaping a worker and
 * respawning it: the new worker is never told to stop, and as a parked spare
 * it would wait forever while the master waits for it. */
static void spares_stop_untold(void)
{
	for (int i = 1; i <= 2 * sp.n; i++)
		if (sp.parked[i] && uwsgi.workers[i].pid > 0 && !uwsgi.workers[i].cursed_at)
			uwsgi_curse(i, SIGINT);
}

/* No reload runs: every parked worker not told yet may take its faults now. */
static void spares_own_pages(void)
{
	char b = NR_SPARE_OWN;

	for (int i = 1; i <= 2 * sp.n; i++) {
		pid_t pid = uwsgi.workers[i].pid;
		if (!sp.parked[i] || pid <= 0 || sp.told[i] == pid)
			continue;
		if (write(sp.wake[i][1], &b, 1) == 1)
			sp.told[i] = pid;
	}
}

/* Slot i still holds the serving worker a swap cursed there. */
static int is_leaving(int i)
{
	return sp.leaving[i] && uwsgi.workers[i].pid == sp.leaving[i];
}

/* Cursed workers of the last swap not yet reaped (and their slots respawned). */
static int spares_leaving(void)
{
	for (int i = 1; i <= 2 * sp.n; i++)
		if (is_leaving(i))
			return 1;
	return 0;
}

/* A workers reload with spares: curse the serving worker of each pair, then
 * wake the parked one (the old workers' handlers run first on a busy machine).
 * The master respawns a cursed slot once it reaps it: that worker parks. */
static void swap_spares(void)
{
	char b = NR_SPARE_WAKE;

	swap.swapped = 1;
	for (int i = 1; i <= 2 * sp.n; i++)
		sp.linger[i] = 0; /* an old worker of the last swap still lingering: go now */
	uwsgi_block_signal(SIGHUP);
	for (int k = 1; k <= sp.n; k++) {
		int live = sp.parked[k] ? k + sp.n : k;
		pid_t pid = uwsgi.workers[live].pid;
		sp.leaving[live] = pid;
		if (pid <= 0)
			continue;
		sp.linger[live] = pid;
		/* an idle one only exits (its address space to tear down): let
		 * the spares have the CPUs first */
		if (!uwsgi_worker_is_busy(live))
			(void)setpriority(PRIO_PROCESS, pid, 19);
		uwsgi_curse(live, SIGHUP);
	}
	uwsgi_unblock_signal(SIGHUP);
	for (int k = 1; k <= sp.n; k++) {
		int live = sp.parked[k] ? k + sp.n : k, spare = live == k ? k + sp.n : k;
		char stale[16];
		while (read(sp.wake[live][0], stale, sizeof(stale)) > 0)
			; /* a byte nobody read must not reach its next worker */
		sp.parked[live] = 1;
		sp.parked[spare] = 0;
		if (write(sp.wake[spare][1], &b, 1) != 1)
			uwsgi_error("netreload: write()");
	}
}

/* Slot i holds an old worker a swap replaced, which takes no more requests
 * and may still wait to exit (spare_linger): a save that comes meanwhile
 * finds it where a parked spare would be. Its successor is not forked yet. */
static int held_by_leaver(int i)
{
	return is_leaving(i) && takes_no_requests(i);
}

/* The slot reload.c sees for pair k: the cursed worker while it may still
 * take a request, else the serving one. One that takes no more requests
 * (uWSGI's own mercy kills it if exiting hangs) no longer counts against the
 * new code going live. */
static int shown_slot(int k)
{
	int ids[2] = {k, k + sp.n};

	for (int j = 0; j < 2; j++) {
		int i = ids[j];
		if (!is_leaving(i))
			sp.leaving[i] = 0;
		else if (!takes_no_requests(i))
			return i;
	}
	return sp.parked[k] ? k + sp.n : k;
}
