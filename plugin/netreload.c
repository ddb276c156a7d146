/*
 * netreload.c - the netreload uWSGI plugin: options, hooks, plugin struct.
 *
 * The plugin runs in the master only. It listens for reload pings on a TCP
 * and a UDP socket (listen.c), reloads the instance (reload.c) and tells the
 * sender when the new code is live. All of its fds sit behind one epoll fd
 * that the master's own event queue watches; master_cycle drains it.
 */
#include "netreload.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

extern struct uwsgi_server uwsgi;

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
	{"netreload-insecure", no_argument, 0,
	 "allow netreload to listen on a non-loopback address without authentication",
	 uwsgi_opt_true, &unr.insecure, UWSGI_OPT_MASTER},
	UWSGI_END_OF_OPTIONS};

uint64_t nr_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t nr_now_ms(void)
{
	return nr_now_us() / 1000;
}

/* Bad input is logged at most once a second, with a count, never per packet. */
void nr_complain(const char *fmt, ...)
{
	va_list ap;

	unr.bad_count++;
	va_start(ap, fmt);
	vsnprintf(unr.bad_last, sizeof(unr.bad_last), fmt, ap);
	va_end(ap);
	nr_complain_flush(nr_now_ms());
}

/* Log what was counted once a second has passed, also after the last bad packet. */
void nr_complain_flush(uint64_t now)
{
	if (!unr.bad_count || (unr.bad_logged_ms && now - unr.bad_logged_ms < 1000))
		return;
	uwsgi_log("netreload: dropped %llu bad request(s) in the last second (last: %s)\n",
		  (unsigned long long)unr.bad_count, unr.bad_last);
	unr.bad_count = 0;
	unr.bad_logged_ms = now;
}

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
		uwsgi_log("netreload: bad value '%s' for %s: expected a whole number from %d to %d\n",
			  val, name, min, max);
		exit(1);
	}
	return (int)v;
}

static void nr_check_options(void)
{
	unr.timeout = int_option("netreload-timeout", opt_timeout, 30, 1, 86400);
	unr.grace_ms = int_option("netreload-grace", opt_grace, 3000, 0, 3600000);
	unr.auth_window = int_option("netreload-auth-window", opt_window, NR_AUTH_WINDOW, 1, 86400);
	unr.share_timeout_ms =
		int_option("netreload-share-timeout", opt_share_timeout, 10, 0, 3600) * 1000;
	if (unr.root && unr.root[0] != '/') {
		uwsgi_log("netreload: bad value '%s' for netreload-root: give an absolute path\n",
			  unr.root);
		exit(1);
	}
	unr.mode = NR_MODE_GRACEFUL;
	if (unr.mode_opt && nr_mode_parse(unr.mode_opt, &unr.mode) != NR_OK) {
		uwsgi_log("netreload: bad value '%s' for netreload-mode: use graceful, chain, "
			  "workers, brutal-workers or brutal\n",
			  unr.mode_opt);
		exit(1);
	}
	if (!uwsgi.master_process) {
		uwsgi_log("netreload: needs the uWSGI master: add --master\n");
		exit(1);
	}
	if (nr_mode_needs_lazy(unr.mode) && !uwsgi.lazy_apps && !uwsgi.lazy)
		uwsgi_log("netreload: WARNING: netreload-mode = %s without lazy-apps: workers are "
			  "forked from a master that holds the old code, so new code will NOT load; "
			  "add lazy-apps = true or use netreload-mode = graceful\n",
			  nr_mode_name(unr.mode));
}

/* A missing, empty or unreadable secret stops startup: never run half-configured. */
static void nr_load_secret(void)
{
	char err[512];
	int loose;

	if (!unr.secret_file)
		return;
	unr.secret = uwsgi_calloc(sizeof(*unr.secret));
	unr.nonces = uwsgi_calloc(sizeof(*unr.nonces));
	if (nr_secret_load(unr.secret_file, unr.secret, &loose, err, sizeof(err))) {
		uwsgi_log("netreload: netreload-secret-file: %s\n", err);
		exit(1);
	}
	if (uwsgi.is_a_reload)
		nr_nonce_load(unr.nonces, getenv(NR_ENV_NONCES));
	unsetenv(NR_ENV_NONCES);
	if (loose)
		uwsgi_log("netreload: WARNING: secret file %s is readable by group or others; "
			  "run: chmod 600 %s\n",
			  unr.secret_file, unr.secret_file);
}

/* Check a signed request. 0: go on; 1: a UDP retry of a request already taken;
 * -1: refused, rep holds the error reply. */
int nr_authorize(const char *line, size_t len, struct nr_reply *rep)
{
	int64_t skew = 0;
	int rc;

	memset(rep, 0, sizeof(*rep));
	if (!unr.secret)
		return 0;
	rc = nr_auth_verify(unr.secret, line, len, (int64_t)time(NULL), unr.auth_window, unr.nonces,
			    &skew);
	if (rc == NR_AUTH_OK)
		return 0;
	if (rc == NR_AUTH_REPLAY)
		return 1;
	rep->kind = NR_REPLY_ERROR;
	if (rc == NR_AUTH_SKEW) {
		snprintf(rep->code, sizeof(rep->code), "clock-skew");
		snprintf(rep->reason, sizeof(rep->reason),
			 "clock skew: the request's clock is %lld s %s the server's (limit %d s, "
			 "netreload-auth-window); sync both clocks (chrony, systemd-timesyncd)",
			 (long long)llabs(skew), skew > 0 ? "ahead of" : "behind", unr.auth_window);
	} else if (rc == NR_AUTH_FULL) {
		snprintf(rep->code, sizeof(rep->code), "busy");
		snprintf(rep->reason, sizeof(rep->reason), "too many signed requests; try again");
	} else {
		snprintf(rep->code, sizeof(rep->code), "auth");
		snprintf(rep->reason, sizeof(rep->reason),
			 "authentication failed: this server needs requests signed with its "
			 "netreload-secret-file (netreload --secret-file FILE)");
	}
	return -1;
}

/* Children of the master (workers, gateways, mules, daemons) must not hold our fds:
 * a client connection held by a worker would never see its end. */
static void nr_atfork_child(void)
{
	if (unr.enabled) {
		nr_listen_close_all();
		nr_share_forget();
	}
}

static int nr_make_queue(void)
{
	unr.ep_fd = epoll_create1(EPOLL_CLOEXEC);
	unr.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (unr.ep_fd < 0 || unr.timer_fd < 0) {
		uwsgi_error("netreload: epoll_create1()/timerfd_create()");
		return -1;
	}
	/* after a re-exec uWSGI closes every fd it does not know once plugins are up */
	uwsgi_add_safe_fd(unr.ep_fd);
	uwsgi_add_safe_fd(unr.timer_fd);
	return 0;
}

/* The state a previous master handed over, or NULL on a first start. */
static struct nr_handover *nr_take_handover(void)
{
	static struct nr_handover h;
	char *text = getenv(NR_ENV_STATE);
	char err[128];

	if (!text || !uwsgi.is_a_reload)
		return NULL;
	if (nr_handover_parse(text, &h, err, sizeof(err)) != NR_OK) {
		uwsgi_log("netreload: cannot read the state the previous master handed over (%s); "
			  "starting afresh\n",
			  err);
		nr_handover_free(&h);
		return NULL;
	}
	return &h;
}

static int nr_init(void)
{
	struct nr_handover *h;
	int rc;

	unr.tcp_fd = unr.udp_fd = unr.ep_fd = unr.timer_fd = -1;
	if (!unr.port) {
		uwsgi_log("netreload: plugin loaded but idle (set netreload-port to enable it)\n");
		return 0;
	}
	nr_check_options();
	nr_load_secret();
	if (nr_make_queue())
		exit(1);
	h = nr_take_handover();
	unsetenv(NR_ENV_STATE);
	rc = h ? nr_listen_import(h) : nr_listen_open();
	if (rc)
		exit(1);
	if (h) {
		nr_reload_import(h);
		nr_handover_free(h);
	}
	unr.enabled = 1;
	nr_listen_register();
	nr_logtap_start();
	pthread_atfork(NULL, NULL, nr_atfork_child);
	return 0;
}

static void nr_master_cycle(void)
{
	uint64_t now;

	if (!unr.enabled)
		return;
	if (!unr.queued) {
		event_queue_add_fd_read(uwsgi.master_queue, unr.ep_fd);
		unr.queued = 1;
	}
	nr_listen_drain();
	now = nr_now_ms();
	nr_listen_expire(now);
	nr_complain_flush(now);
	nr_reload_tick(now);
}

/* Before a re-exec: hand sockets, waiting clients and the reload in flight to
 * the next master through the environment. */
static void nr_master_cleanup(void)
{
	static struct nr_handover h;
	static char buf[NR_HANDOVER_MAX + 1];
	int exported;

	if (!unr.enabled || !uwsgi_instance_is_reloading)
		return;
	nr_listen_drain();
	memset(&h, 0, sizeof(h));
	nr_listen_export(&h);
	nr_reload_export(&h);
	nr_share_export(&h);
	exported = h.nconns;
	if (nr_handover_format(&h, buf, sizeof(buf)) == NR_OK) {
		nr_listen_export_done(&h, exported);
		setenv(NR_ENV_STATE, buf, 1);
	}
	if (unr.secret) {
		/* the next master must refuse replays of requests this one already took */
		char *nonces = uwsgi_malloc(NR_NONCE_CACHE * 40);
		nr_nonce_save(unr.nonces, (int64_t)time(NULL), unr.auth_window, nonces,
			      NR_NONCE_CACHE * 40);
		setenv(NR_ENV_NONCES, nonces, 1);
		free(nonces);
	}
	nr_logtap_stop();
}

struct uwsgi_plugin netreload_plugin = {
	.name = "netreload",
	.options = nr_options,
	.init = nr_init,
	.master_cycle = nr_master_cycle,
	.master_cleanup = nr_master_cleanup,
};
