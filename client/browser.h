/*
 * browser.h - `netreload watch --browser [ADDR:]PORT`: a small HTTP server in
 * the watch command's poll() loop that pages follow.
 *
 * GET /netreload.js serves the script (browser-js.h); GET /events is a stream
 * of server-sent events: "hello" on connect, "live" once every target has
 * the new code, "failed" with the server's reason, "css" with a saved
 * stylesheet's path. GET /livereload is the LiveReload protocol 7 over a
 * WebSocket (websocket.h), for livereload.js and the browser extensions:
 * "hello", then "reload" commands with path, liveCSS and liveImg.
 *
 * Everything is non-blocking and bounded: at most NR_BROWSER_CONNS
 * connections, a request header of NR_BROWSER_HEADER_MAX bytes,
 * NR_BROWSER_REQUEST_MS to send it, NR_BROWSER_OUT_MAX bytes queued per
 * connection (a page that reads nothing more is dropped and reconnects),
 * WebSocket frames of NR_WS_PAYLOAD_MAX bytes from a page.
 * It never prints: errors go to err, counts to the struct.
 */
#ifndef NR_BROWSER_H
#define NR_BROWSER_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#define NR_BROWSER_CONNS 32
#define NR_BROWSER_HEADER_MAX 8192
#define NR_BROWSER_OUT_MAX 16384
#define NR_BROWSER_REQUEST_MS 5000 /* the whole request header, from accept() */
#define NR_BROWSER_LINGER_MS 2000  /* reading what a client still sends after an error */
#define NR_BROWSER_ACCEPTS 64	   /* accept() calls per loop pass */
#define NR_BROWSER_REASON_MAX 2048 /* of a "failed" event's reason, kept for "hello" */
#define NR_BROWSER_BEAT_MS 30000   /* a comment on idle event streams: finds pages gone */

enum nr_bconn_state {
	NR_BC_FREE,
	NR_BC_REQUEST, /* reading the request header */
	NR_BC_EVENTS,  /* an event stream: writes queued events, discards input */
	NR_BC_WS,      /* a LiveReload WebSocket: frames both ways */
	NR_BC_CLOSING, /* writing a response, then reading until EOF, then closed */
};

struct nr_bconn {
	int fd;
	enum nr_bconn_state state;
	uint64_t deadline; /* REQUEST: 408 after it; CLOSING: closed after it */
	int shut;	   /* CLOSING: the response is out and our side shut down */
	int ws_hello;	   /* WS: the page said hello; it gets reload commands */
	size_t in_len;
	char in[NR_BROWSER_HEADER_MAX];
	size_t out_len, out_off;
	char out[NR_BROWSER_OUT_MAX];
};

struct nr_browser {
	int fd; /* the listener, -1 when off */
	char label[300];
	uint64_t seq;			    /* "live" events sent so far */
	char failed[NR_BROWSER_REASON_MAX]; /* the last outcome's reason if it failed, else "" */
	unsigned served, refused, dropped;  /* responses, connections refused when full, slow pages */
	uint64_t next_beat;		    /* when the event streams get their next comment */
	int npfd;			    /* what the last nr_browser_pollfds() filled: */
	int pconn[1 + NR_BROWSER_CONNS];    /* pfd[i] is conn pconn[i], or -1 for the listener */
	struct nr_bconn c[NR_BROWSER_CONNS];
};

/* Listen on spec ("PORT" on 127.0.0.1, or "ADDR:PORT", "[V6]:PORT"). 0, or -1
 * with err filled. b may be static storage never touched before. */
int nr_browser_open(struct nr_browser *b, const char *spec, char *err, size_t errlen);
/* Fill pfd (room for 1 + NR_BROWSER_CONNS) with the listener and connections. */
int nr_browser_pollfds(struct nr_browser *b, struct pollfd *pfd, int max);
/* After poll(): serve what the n entries filled by nr_browser_pollfds() say. */
void nr_browser_step(struct nr_browser *b, const struct pollfd *pfd, int n, uint64_t now);
/* Time-outs: 408 for slow requests, closing what lingered too long; and the
 * event streams' heartbeat, so a page whose machine went away is noticed. */
void nr_browser_tick(struct nr_browser *b, uint64_t now);
/* Earliest deadline (monotonic ms), 0 if none. */
uint64_t nr_browser_next(const struct nr_browser *b);
/* Every page: reload now (the new code is live everywhere); path is what
 * changed last, for LiveReload's reload command. */
void nr_browser_live(struct nr_browser *b, const char *path, unsigned ms);
/* Every page: show reason (as the server said it) over the page. */
void nr_browser_failed(struct nr_browser *b, const char *reason);
/* Every page: restyle the stylesheets named like path (relative to the tree;
 * "" for all of them). */
void nr_browser_css(struct nr_browser *b, const char *path);
/* Pages currently following the event stream. */
int nr_browser_pages(const struct nr_browser *b);
void nr_browser_close(struct nr_browser *b);

#endif
