/*
 * netreload.h - the plugin's options and sockets (runs in the uWSGI master).
 *
 * netreload.c: options, hooks and the plugin struct.
 * server.c:    sockets and connections; keeping them across re-exec.
 * request.c:   parse, authorize and dispatch requests; format replies (request.h).
 * waiters.c:   UDP senders waiting, recent UDP ids (waiters.h).
 * reload.c:    the reload state machine: modes, liveness, coalescing (reload.h).
 * glue.c:      everything that reads or calls uWSGI (glue.h).
 * logs.c:      why an app failed to load, from the output of its loading (logs.h).
 */
#ifndef NR_PLUGIN_H
#define NR_PLUGIN_H

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "../common/nr_auth.h"
#include "../common/nr_proto.h"
#include "../common/nr_files.h"
#include "handover.h"
#include "reload.h"
#include "share.h"
#include "util.h"
#include "waiters.h"

#define NR_MAX_CONNS NR_HO_CONNS	   /* open TCP connections; the oldest idle one gives way */
#define NR_READ_TIMEOUT_MS 5000	 /* a connection must send its request within this */
#define NR_MAX_FD_HINT 16384 /* above this, netreload-fast lowers max-fd or startup hints */
#define NR_FAST_MAX_FD 4096  /* what netreload-fast lowers it to */
/* why a reload in a mode that only replaces workers is refused without lazy-apps */
#define NR_MODE_NEEDS_LAZY                                                                   \
	"this mode cannot load new code here: without lazy-apps new workers fork from a "  \
	"master that holds the old code; use mode graceful, or add lazy-apps = true"
#define NR_GRACE_MS 3000 /* netreload-grace: old workers get this long to finish */
#define NR_SLOW_TICK_MS 250	 /* ... while connections are open but nothing reloads */
#define NR_ENV_STATE "NETRELOAD_STATE"
#define NR_ENV_NONCES "NETRELOAD_NONCES"
#define NR_ENV_ABI "NETRELOAD_ABI_CHECKED"

enum nr_conn_state { NR_CONN_READING = 1, NR_CONN_WAITING };

/* A TCP connection: reading its request, or waiting for its generation. */
struct nr_conn {
	int fd;
	int slot;	   /* index in unr.conns */
	uint32_t serial;   /* with slot, the connection's epoll key (never 0) */
	enum nr_conn_state state;
	int eof;	   /* peer shut down its side; we still answer */
	uint64_t opened;   /* ms */
	uint64_t t0;	   /* request received, ms */
	uint64_t want_gen; /* answer once this generation is live or failed */
	char id[NR_ID_MAX + 1];
	char peer[64];
	int loopback; /* the peer is on this machine */
	size_t len;
	char buf[NR_LINE_MAX];
	/* a request that lists changed files: its line, then the file lines */
	struct nr_request req; /* valid once files != NULL */
	char *files;	       /* the file lines read so far (NR_LINE_MAX each at most) */
	size_t flen;
};

struct uwsgi_netreload {
	/* options */
	char *port;
	char *bind;
	char *mode_opt;
	enum nr_mode mode; /* from mode_opt */
	int timeout;
	int grace_ms;
	int insecure;
	int fast; /* netreload-fast: the fast recipe, applied at startup */
	char *secret_file;
	int auth_window;
	char *root;	      /* netreload-root: the watched directory as this machine sees it */
	int share_timeout_ms; /* netreload-share-timeout; 0: do not wait for the share */
	struct nr_secret *secret; /* NULL: no authentication, plain pings allowed */
	struct nr_nonce_cache *nonces;

	/* sockets */
	int enabled;
	int tcp_fd, udp_fd, ep_fd, timer_fd;
	int queued; /* ep_fd is in uwsgi.master_queue */
	uint64_t tick_ms;
	struct nr_conn *conns[NR_MAX_CONNS];
	uint32_t conn_serial; /* last serial given to a connection */
};

extern struct uwsgi_netreload unr;

/* server.c */
int nr_listen_open(int may_wait);
int nr_listen_import(const struct nr_handover *h);
void nr_listen_register(void);
void nr_listen_drain(uint64_t now);
void nr_listen_expire(uint64_t now);
void nr_listen_close_all(void);
void nr_listen_close_conns(void);
void nr_listen_export(struct nr_handover *h);
void nr_listen_export_done(const struct nr_handover *h, int exported);
void nr_conn_send(struct nr_conn *c, const char *line, int n);
/* UDP replies are rate-limited here, whoever asks (a spoofed flood gets little) */
void nr_udp_send(const struct sockaddr_storage *addr, socklen_t alen, const char *line, int n);
void nr_conn_close(struct nr_conn *c);
int nr_conn_count(void);
void nr_set_tick(uint64_t ms);
void nr_listen_add_wakeup(int fd);
int nr_is_loopback(const struct sockaddr *sa);
void nr_peer_name(const struct sockaddr_storage *ss, char *out, size_t len);
struct nr_conn *nr_server_conn(int slot); /* NULL: no connection in that slot */

/* What the sockets bring, handed up (request.c's). input: more bytes came (in
 * buf, or in files once the request line asked for file lines); 1 keeps the
 * connection open. end: the peer stopped before a whole request. busy: no room
 * for this connection. */
struct nr_server_handlers {
	int (*input)(struct nr_conn *c, uint64_t now);
	void (*end)(struct nr_conn *c, uint64_t now);
	void (*busy)(struct nr_conn *c);
	void (*datagram)(const char *buf, size_t n, struct sockaddr_storage *ss, socklen_t alen,
			 uint64_t now);
};
void nr_server_handle(const struct nr_server_handlers *h);


#endif
