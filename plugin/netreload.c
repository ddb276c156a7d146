/*
 * netreload.c - the netreload uWSGI plugin: options, hooks, plugin struct.
 *
 * The plugin runs in the master only. It listens for reload pings on a TCP
 * and a UDP socket (server.c, request.c), reloads the instance (reload.c) and tells the
 * sender when the new code is live. All of its fds sit behind one epoll fd
 * that the master's own event queue watches; master_cycle drains it.
 *
 * This file holds only the option table, the hooks and the plugin struct; what
 * the hooks need of uWSGI's internals (uwsgi.*, its helpers) they ask glue.c.
 */
#include <uwsgi.h>

#include "netreload.h"

#include "abi.h"
#include "glue.h"
#include "logs.h"
#include "python.h"
#include "request.h"
#include "nr_abi.h" /* generated for the uWSGI this was built for (tools/uwsgi_abi.py) */

#include <dlfcn.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

struct uwsgi_netreload unr;

static char *opt_timeout, *opt_grace, *opt_window, *opt_share_timeout;

static struct uwsgi_option nr_options[] = {
	{"netreload-port", required_argument, 0,
	 "enable netreload: listen for reload pings on this TCP and UDP port", uwsgi_opt_set_str,
	 &unr.port, UWSGI_OPT_MASTER},
	{"netreload-bind", required_argument, 0,
	 "address netreload listens on (default 127.0.0.1; others need netreload-insecure)",
	 uwsgi_opt_set_str, &unr.bind, UWSGI_OPT_MASTER},
	{"netreload-mode", required_argument, 0,
	 "default reload mode: graceful (default), chain, workers, brutal-workers, brutal",
	 uwsgi_opt_set_str, &unr.mode_opt, UWSGI_OPT_MASTER},
	{"netreload-timeout", required_argument, 0,
	 "seconds to wait for new code to go live before answering failed (default 30)",
	 uwsgi_opt_set_str, &opt_timeout, UWSGI_OPT_MASTER},
	{"netreload-grace", required_argument, 0,
	 "milliseconds old workers get to stop before they are killed (default 3000)",
	 uwsgi_opt_set_str, &opt_grace, UWSGI_OPT_MASTER},
	{"netreload-secret-file", required_argument, 0,
	 "require pings signed with the secret in this file (HMAC-SHA256)", uwsgi_opt_set_str,
	 &unr.secret_file, UWSGI_OPT_MASTER},
	{"netreload-auth-window", required_argument, 0,
	 "seconds a signed ping's clock may differ from ours (default 60)", uwsgi_opt_set_str,
	 &opt_window, UWSGI_OPT_MASTER},
	{"netreload-root", required_argument, 0,
	 "the directory the client watches, as this machine sees it (default: the "
	 "directory uWSGI runs in)",
	 uwsgi_opt_set_str, &unr.root, UWSGI_OPT_MASTER},
	{"netreload-share-timeout", required_argument, 0,
	 "seconds to wait for a shared folder to show the saved files before reloading "
	 "(default 10; 0: do not wait)",
	 uwsgi_opt_set_str, &opt_share_timeout, UWSGI_OPT_MASTER},
	{"netreload-fast", no_argument, 0,
	 "import random and threading once in the master, skip old workers' interpreter "
	 "teardown and end them with _exit() after uwsgi.atexit (python; atexit handlers "
	 "then do not run in workers)",
	 uwsgi_opt_true, &unr.fast, UWSGI_OPT_MASTER},
	{"netreload-insecure", no_argument, 0,
	 "allow netreload to listen on a non-loopback address without authentication",
	 uwsgi_opt_true, &unr.insecure, UWSGI_OPT_MASTER},
	UWSGI_END_OF_OPTIONS};

/* Strict decimal parsing, so "10s" or "abc" stop startup instead of meaning 0. */
static int int_option(const char *name, const char *val, int def, int min, int max)
{
	char *end;
	long v;

	if (!val)
		return def;
	errno = 0;
	v = strtol(val, &end, 10);
	if (errno || end == val || *end || v < min || v > max) {
		nr_log("netreload: bad value '%s' for %s: expected a whole number from %d to %d\n",
		       val, name, min, max);
		exit(1);
	}
	return (int)v;
}

/* Without netreload-grace, the user's own worker-reload-mercy (or reload-mercy)
 * says how long an old worker may finish its requests: theirs wins over ours. */
static void nr_grace_from_uwsgi(void)
{
	const char *key;
	int secs;

	if (opt_grace)
		return;
	secs = nr_glue_user_mercy(&key);
	if (secs <= 0)
		return;
	unr.grace_ms = secs > 3600 ? 3600000 : secs * 1000;
	nr_log("netreload: old workers get %d s to finish their requests (%s; "
	       "netreload-grace overrides it)\n",
	       unr.grace_ms / 1000, key);
}

/* A re-exec'd master used to look at every fd up to max_fd twice (uWSGI's
 * inherited-socket check; glue.c now ends those loops at the highest open
 * fd). A high limit still measured up to ~9 ms slower per graceful reload in
 * one of two runs of make bench-fast (20000 against 4096, cause not found),
 * so netreload-fast lowers the soft limit to NR_FAST_MAX_FD (the app may
 * raise it again; max-fd set by the user wins); without it, startup says so. */
static void nr_limit_max_fd(void)
{
	const struct nr_glue_settings *us = nr_glue_settings();
	unsigned long long was = us->max_fd;

	if (us->is_a_reload || us->max_fd_set || was <= NR_MAX_FD_HINT ||
	    !nr_mode_reexecs(unr.mode))
		return;
	if (unr.fast && nr_glue_lower_max_fd(NR_FAST_MAX_FD) == 0) {
		nr_log("netreload: netreload-fast: max-fd = %d (the soft ulimit -n was %llu, which "
		       "can slow a graceful reload; set max-fd to keep more)\n",
		       NR_FAST_MAX_FD, was);
		return;
	}
	nr_log("netreload: max_fd is %llu: a graceful reload can be a few ms slower with a "
	       "high fd limit; set max-fd = %d unless the app needs more open files\n",
	       was, NR_FAST_MAX_FD);
}

static void nr_check_options(void)
{
	unr.timeout = int_option("netreload-timeout", opt_timeout, 30, 1, 86400);
	unr.grace_ms = int_option("netreload-grace", opt_grace, NR_GRACE_MS, 0, 3600000);
	unr.auth_window = int_option("netreload-auth-window", opt_window, NR_AUTH_WINDOW, 1, 86400);
	unr.share_timeout_ms =
		int_option("netreload-share-timeout", opt_share_timeout, 10, 0, 3600) * 1000;
	if (unr.root && unr.root[0] != '/') {
		nr_log("netreload: bad value '%s' for netreload-root: give an absolute path\n",
		       unr.root);
		exit(1);
	}
	unr.mode = NR_MODE_GRACEFUL;
	if (unr.mode_opt && nr_mode_parse(unr.mode_opt, &unr.mode) != NR_OK) {
		nr_log("netreload: bad value '%s' for netreload-mode: use graceful, chain, "
		       "workers, brutal-workers or brutal\n",
		       unr.mode_opt);
		exit(1);
	}
	if (!nr_glue_settings()->master) {
		nr_log("netreload: needs the uWSGI master: add --master\n");
		exit(1);
	}
	nr_grace_from_uwsgi();
}

/* reload.c gets the options and acts through glue.c; it answers the waiting
 * clients through request.c. */
static void nr_reload_setup(void)
{
	struct nr_reload_config cfg = {.mode = unr.mode, .timeout = unr.timeout,
				       .grace_ms = unr.grace_ms,
				       .share_timeout_ms = unr.share_timeout_ms, .root = unr.root};
	struct nr_reload_ops ops = {.finished = nr_answer_waiters, .wakeup = nr_listen_add_wakeup};

	nr_glue_reload_setup(&cfg, &ops);
	nr_reload_init(&cfg, &ops);
	if (!nr_mode_loads_new_code(unr.mode)) {
		nr_log("netreload: netreload-mode = %s cannot load new code without lazy-apps "
		       "(new workers fork from a master that holds the old code): add lazy-apps = "
		       "true or use netreload-mode = graceful\n",
		       nr_mode_name(unr.mode));
		exit(1);
	}
	nr_limit_max_fd();
}

/* The id signed requests must name: kept across a re-exec (it came with the
 * nonces), new at a cold start, so what was signed for another instance or an
 * earlier start is refused (PROTOCOL.md, "Instances"). */
static void nr_instance_id(void)
{
	if (unr.nonces->sid[0]) {
		nr_log("netreload: instance %s (kept across the reload)\n", unr.nonces->sid);
		return;
	}
	if (nr_sid_new(unr.nonces->sid)) {
		nr_log("netreload: no randomness for the instance id (getentropy() failed)\n");
		exit(1);
	}
	nr_log("netreload: instance %s (new: requests signed for an earlier start are "
	       "refused)\n",
	       unr.nonces->sid);
}

/* A missing, empty or unreadable secret stops startup: never run half-configured. */
static void nr_load_secret(void)
{
	char err[512];
	int loose;

	if (!unr.secret_file)
		return;
	unr.secret = calloc(1, sizeof(*unr.secret));
	unr.nonces = calloc(1, sizeof(*unr.nonces));
	if (!unr.secret || !unr.nonces) {
		nr_log_errno("netreload: calloc()");
		exit(1);
	}
	if (nr_secret_load(unr.secret_file, unr.secret, &loose, err, sizeof(err))) {
		nr_log("netreload: netreload-secret-file: %s\n", err);
		exit(1);
	}
	if (nr_glue_settings()->is_a_reload)
		nr_nonce_load(unr.nonces, getenv(NR_ENV_NONCES));
	unsetenv(NR_ENV_NONCES);
	nr_instance_id();
	if (loose)
		nr_log("netreload: WARNING: secret file %s is readable by group or others; "
		       "run: chmod 600 %s\n",
		       unr.secret_file, unr.secret_file);
}

/* Workers and the spooler run on without exec: they drop every fd of ours
 * (children that exec lose them by close-on-exec). The listener must not be
 * closed in every fork child: --daemonize2 forks after init, and that child
 * becomes the master. */
static void nr_post_fork(void)
{
	if (unr.enabled) {
		nr_listen_close_all();
		nr_share_forget();
	}
}

/* No fork child ever answers a client, and one that keeps a connection open
 * (a mule or gateway, which have no plugin hook, or a process the app forks)
 * would hide its end from the client: drop the connections in every child. */
static void nr_forked(void)
{
	if (unr.enabled)
		nr_listen_close_conns();
}

/* uWSGI calls these by name (call-pre-app, call-post-app) around
 * uwsgi_init_all_apps(), in whichever process loads the apps: the master, or
 * each worker with lazy-apps. The output in between holds the reason an app
 * failed to load (logs.c). */
void nr_apps_loading(void);
void nr_apps_loaded(void);

static void nr_worker_leaves(void);

void nr_apps_loading(void)
{
	nr_logs_begin(nr_glue_worker_id());
	/* a spare parks with its log relay already forked: once woken, only
	 * the import is left */
	nr_glue_spare_park();
	if (unr.fast)
		nr_py_gc_pause();
}

void nr_apps_loaded(void)
{
	static int registered;

	nr_logs_end(nr_glue_apps_held() > 0);
	if (!unr.fast)
		return;
	nr_glue_spare_loaded();
	nr_py_gc_resume();
	if (!registered++)
		atexit(nr_worker_leaves);
}

static void nr_logs_setup(void)
{
	if (nr_logs_init(nr_glue_settings()->numproc + 1)) {
		nr_log_errno("netreload: cannot start the log relay for failure reasons");
		return; /* reloads still work; a failure just cannot say why */
	}
	nr_glue_keep_fd(nr_logs_fd()); /* a re-exec'd master closes fds it does not know */
	nr_glue_call_around_apps("nr_apps_loading", "nr_apps_loaded");
}

static int nr_make_queue(void)
{
	unr.ep_fd = epoll_create1(EPOLL_CLOEXEC);
	unr.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (unr.ep_fd < 0 || unr.timer_fd < 0) {
		nr_log_errno("netreload: epoll_create1()/timerfd_create()");
		return -1;
	}
	/* after a re-exec uWSGI closes every fd it does not know once plugins are up */
	nr_glue_keep_fd(unr.ep_fd);
	nr_glue_keep_fd(unr.timer_fd);
	return 0;
}

/* The state a previous master handed over, or NULL on a first start. */
static struct nr_handover *nr_take_handover(void)
{
	static struct nr_handover h;
	char *text = getenv(NR_ENV_STATE);
	char err[128];

	if (!text || !nr_glue_settings()->is_a_reload)
		return NULL;
	if (nr_handover_parse(text, &h, err, sizeof(err)) != NR_OK) {
		nr_log("netreload: cannot read the state the previous master handed over (%s); "
		       "starting afresh\n",
		       err);
		nr_handover_free(&h);
		return NULL;
	}
	return &h;
}

/* The files the ABI guard checked at this start: the running uWSGI binary
 * and this plugin, each as device, inode, size and mtime, then the build's
 * uwsgi.h digest; "" if one cannot be told. */
static char nr_abi_files[256];
static int nr_abi_repeat; /* the guard found the files of the last start */

static int nr_file_id(const char *path, char *out, size_t len)
{
	struct stat st;

	if (stat(path, &st))
		return -1;
	snprintf(out, len, "%llx:%llx:%llx:%lld.%09ld", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino, (unsigned long long)st.st_size,
		 (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
	return 0;
}

static void nr_abi_files_now(void)
{
	char exe[96], so[96];
	Dl_info di;

	nr_abi_files[0] = '\0';
	if (nr_file_id("/proc/self/exe", exe, sizeof(exe)) || !dladdr((void *)nr_abi_files_now, &di) ||
	    !di.dli_fname || nr_file_id(di.dli_fname, so, sizeof(so)))
		return;
	snprintf(nr_abi_files, sizeof(nr_abi_files), "%s %s %s", exe, so, NR_ABI_DOT_H_MD5);
}

/* Runs when uWSGI dlopen()s the plugin, before uWSGI or the plugin reads any
 * field of `uwsgi`: in another uWSGI build those fields sit elsewhere, and the
 * first ping would crash the master. Stop at once, saying how to fix it.
 * Reading the running uWSGI's uwsgi.h (uwsgi_get_dot_h() inflates it) takes
 * ~8 ms, at every re-exec too: a master that re-execs hands the files it
 * checked to the next one (NR_ENV_ABI), which skips the check when it runs
 * the very same binary and plugin files. An upgrade replaces them. */
__attribute__((constructor)) static void nr_abi_guard(void)
{
	struct nr_abi built, running;
	char msg[NR_ABI_MSG_MAX], exe[512];
	const char *checked = getenv(NR_ENV_ABI);
	ssize_t n;

	nr_abi_files_now();
	nr_abi_repeat = checked && nr_abi_files[0] && !strcmp(checked, nr_abi_files);
	unsetenv(NR_ENV_ABI);
	if (nr_abi_repeat)
		return;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0)
		exe[n] = '\0';
	else
		snprintf(exe, sizeof(exe), "/path/to/uwsgi");
	nr_abi_from(&built, NR_ABI_DOT_H_MD5, NR_ABI_CFLAGS);
	if (nr_abi_running(&running, msg, sizeof(msg)) == 0 &&
	    nr_abi_compare(&built, NR_ABI_UWSGI, &running, exe, msg, sizeof(msg)) == 0)
		return;
	fprintf(stderr, "%s\n", msg);
	_exit(1);
}

/* uWSGI 2.1 turns need-app on by default: a save that does not import would
 * end the instance instead of being reported as failed and fixed by the next
 * save. While netreload reloads this instance, a broken app is its job. */
static void nr_need_app_off(void)
{
	if (!nr_glue_need_app_off())
		return;
	nr_log("netreload: need-app turned off: a save that fails to load is reported "
	       "to the client and the next save reloads again\n");
}

/* netreload-fast: the fast recipe of the README in one switch. uWSGI's python
 * plugin imports random and threading again in every new worker, and an old
 * worker finalizes its interpreter before it exits. Import them once in the
 * master (python's shared-import, through its own option handler, before it
 * loads anything) and skip the teardown. */
static void nr_apply_fast(void)
{
	static const char *const imports[] = {"random", "threading"};
	size_t i;

	if (!unr.fast)
		return;
	for (i = 0; i < sizeof imports / sizeof imports[0]; i++) {
		if (nr_glue_shared_import(imports[i])) {
			nr_log("netreload: netreload-fast changes nothing here: it speeds up the "
			       "python plugin, which is not loaded\n");
			unr.fast = 0; /* so nothing else it does applies either */
			return;
		}
	}
	nr_glue_skip_atexit_teardown();
	nr_log("netreload: netreload-fast: shared-import = random, shared-import = threading, "
	       "skip-atexit-teardown = true; apps load with Python's garbage collector paused\n");
}

/* netreload-fast: an old worker that leaves to be replaced ends with _exit()
 * once the language plugins' exit hooks ran (glue.c). uWSGI calls this first
 * among those hooks; the libc handler registered once the apps loaded covers
 * uWSGI 2.0.21, which registers its hooks before lazy apps load. */
static void nr_worker_leaves(void)
{
	if (unr.fast)
		nr_glue_worker_leaves();
}

/* netreload-fast in workers or chain mode: a spare worker per worker, forked
 * and set up ahead of the save, parked before it loads the app (glue.c). */
static void nr_spares(void)
{
	int n = nr_glue_settings()->numproc;
	const char *why;

	if (!unr.fast || (unr.mode != NR_MODE_WORKERS && unr.mode != NR_MODE_CHAIN))
		return;
	why = nr_glue_spares_setup();
	if (why) {
		nr_log("netreload: netreload-fast: no spare workers: %s\n", why);
		return;
	}
	nr_log("netreload: netreload-fast: %d spare worker(s) wait parked before loading "
	       "the app, each taking over at the next reload (uWSGI shows %d workers)\n",
	       n, 2 * n);
}

static pid_t nr_master_pid; /* the master's pid: fork children inherit our atexit handler */

/* libc's atexit, not uWSGI's plugin hook, which is set up only after the apps
 * loaded: a language plugin that cannot load the app exit()s before that. */
static void nr_at_exit(void)
{
	if (unr.enabled && getpid() == nr_master_pid)
		nr_reload_master_exit();
}

static int nr_init(void)
{
	struct nr_handover *h;
	int rc;

	unr.tcp_fd = unr.udp_fd = unr.ep_fd = unr.timer_fd = -1;
	if (!unr.port) {
		nr_log("netreload: plugin loaded but idle (set netreload-port to enable it)\n");
		return 0;
	}
	if (nr_abi_repeat)
		nr_log("netreload: same uWSGI binary and plugin as before the re-exec: "
		       "build check not repeated\n");
	nr_check_options();
	nr_apply_fast(); /* before nr_reload_setup(), which reads unr.fast */
	nr_reload_setup();
	nr_spares(); /* before nr_logs_setup(), which sizes by the worker table */
	nr_need_app_off();
	nr_glue_idle_take_over();
	nr_load_secret();
	if (nr_make_queue())
		exit(1);
	h = nr_take_handover();
	unsetenv(NR_ENV_STATE);
	/* a reload that handed nothing over: the master FIFO `f` forked this
	 * master from one that still holds the port */
	rc = h ? nr_listen_import(h) : nr_listen_open(nr_glue_settings()->is_a_reload);
	if (rc < 0)
		exit(1);
	if (h) {
		nr_reload_import(h);
		nr_waiters_import(h);
		nr_handover_free(h);
	}
	nr_server_handle(&(struct nr_server_handlers){.input = nr_request_input,
						      .end = nr_request_end,
						      .busy = nr_request_busy,
						      .datagram = nr_request_datagram});
	unr.enabled = 1;
	if (rc == 0)
		nr_listen_register();
	else
		nr_log("netreload: port %s is in use, most likely by the master this one was "
		       "forked from (master FIFO `f`); listening as soon as it is free\n",
		       unr.port);
	nr_logs_setup();
	pthread_atfork(NULL, NULL, nr_forked);
	nr_master_pid = getpid();
	atexit(nr_at_exit);
	nr_glue_shorten_inherited_check(); /* last: every fd of ours is open and kept */
	return 0;
}

/* After uWSGI's check of inherited fds (see nr_glue_shorten_inherited_check). */
static void nr_post_init(void)
{
	nr_glue_restore_max_fd();
}

/* Waiting for the port (see nr_init): try once a second. */
static int nr_port_ready(uint64_t now)
{
	static uint64_t tried;

	if (unr.tcp_fd >= 0)
		return 1;
	if (now - tried < 1000)
		return 0;
	tried = now;
	if (nr_listen_open(1) != 0)
		return 0;
	nr_listen_register();
	return 1;
}

/* The reload moves on from what the worker table shows, around uWSGI's --idle
 * check (glue.c), and the master's wake-ups follow what is going on. */
static void nr_reload_pass(uint64_t now)
{
	int stopping;
	uint64_t tick;

	nr_reload_check(nr_glue_snapshot(), now);
	stopping = nr_glue_idle_check(now, nr_reload_busy());
	tick = nr_reload_next(nr_glue_snapshot(), now, stopping);
	if (!tick)
		tick = nr_glue_spares_settling(now);
	if (!tick && (nr_conn_count() || nr_complaints_pending()))
		tick = NR_SLOW_TICK_MS;
	nr_set_tick(tick);
}

static void nr_master_cycle(void)
{
	uint64_t now;

	if (!unr.enabled)
		return;
	if (!unr.queued) {
		nr_glue_watch_fd(unr.ep_fd);
		unr.queued = 1;
		nr_master_pid = getpid(); /* daemonize2 forked a new master after init */
	}
	now = nr_now_ms(); /* read once: a second reading would be later than this one */
	if (!nr_port_ready(now))
		return;
	nr_listen_drain(now);
	nr_listen_expire(now);
	nr_complain_flush(now);
	nr_reload_pass(now);
	if (unr.fast)
		nr_glue_forget_leaving_workers(); /* right before uWSGI checks them */
}

/* Before a re-exec: hand sockets, waiting clients and the reload in flight to
 * the next master through the environment. */
static void nr_master_cleanup(void)
{
	static struct nr_handover h;
	static char buf[NR_HANDOVER_MAX + 1];
	static char nonces[NR_NONCE_CACHE * 40];
	int exported;

	if (!unr.enabled || !nr_glue_reloading() || unr.tcp_fd < 0)
		return;
	if (nr_abi_files[0])
		setenv(NR_ENV_ABI, nr_abi_files, 1);
	nr_listen_drain(nr_now_ms());
	memset(&h, 0, sizeof(h));
	nr_listen_export(&h);
	nr_reload_export(&h);
	nr_waiters_export(&h);
	nr_share_export(&h);
	exported = h.nconns;
	if (nr_handover_format(&h, buf, sizeof(buf)) == NR_OK) {
		nr_listen_export_done(&h, exported);
		setenv(NR_ENV_STATE, buf, 1);
	}
	if (unr.secret) {
		/* the next master must refuse replays of requests this one already took */
		nr_nonce_save(unr.nonces, (int64_t)time(NULL), unr.auth_window, nonces,
			      sizeof(nonces));
		setenv(NR_ENV_NONCES, nonces, 1);
	}
	nr_glue_shorten_close_loop();
}

struct uwsgi_plugin netreload_plugin = {
	.name = "netreload",
	.options = nr_options,
	.init = nr_init,
	.post_init = nr_post_init,
	.master_cycle = nr_master_cycle,
	.master_cleanup = nr_master_cleanup,
	.post_fork = nr_post_fork,
	.atexit = nr_worker_leaves,
	.spooler_init = nr_post_fork,
};
