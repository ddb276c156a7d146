/*
 * browser.c - the --browser HTTP server (see browser.h): accept, read one
 * request header, answer it or turn the connection into an event stream or
 * a LiveReload WebSocket, and broadcast events to every page. One request
 * per connection.
 */
#include "browser.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "browser-js.h"
#include "compat.h"
#include "websocket.h"

#define METHOD_MAX 16
#define TARGET_MAX 1024
#define LR_PROTOCOL "http://livereload.com/protocols/official-7"

/* ---- connections --------------------------------------------------------- */

static void conn_close(struct nr_bconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = NR_BC_FREE;
	c->in_len = c->out_len = c->out_off = 0;
	c->shut = 0;
	c->ws_hello = 0;
}

/* Queue bytes; a page too slow to take them is dropped (it reconnects). */
static int conn_queue(struct nr_browser *b, struct nr_bconn *c, const char *data, size_t len)
{
	if (c->out_off) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (len > sizeof(c->out) - c->out_len) {
		b->dropped++;
		conn_close(c);
		return -1;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return 0;
}

/* Send what is queued without blocking; -1 if the peer is gone. */
static int conn_flush(struct nr_bconn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, NR_MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		if (n <= 0)
			return -1;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

/* s as the inside of a JSON string (control characters escaped); bytes that are
 * not UTF-8 pass, EventSource decodes them as U+FFFD. */
static void json_escape(char *out, size_t len, const char *s)
{
	size_t o = 0;

	for (; *s && o + 7 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			o += (size_t)snprintf(out + o, len - o, "\\u%04x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
}

/* ---- responses ------------------------------------------------------------ */

static const struct {
	int code;
	const char *text;
} statuses[] = {
	{101, "Switching Protocols"},
	{200, "OK"},
	{400, "Bad Request"},
	{404, "Not Found"},
	{405, "Method Not Allowed"},
	{408, "Request Timeout"},
	{426, "Upgrade Required"},
	{431, "Request Header Fields Too Large"},
	{503, "Service Unavailable"},
};

static const char *status_text(int code)
{
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (statuses[i].code == code)
			return statuses[i].text;
	return "Error";
}

/* A whole response, then a lingering close: the client reads it before our
 * close could reset the connection over bytes it sent and we never read. */
static void respond(struct nr_browser *b, struct nr_bconn *c, int code, const char *headers,
		    const char *type, const char *body, uint64_t now)
{
	char head[512];
	size_t blen = strlen(body);
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
			 "Connection: close\r\n%s\r\n",
			 code, status_text(code), type, blen, headers);

	if (n < 0 || (size_t)n >= sizeof(head)) {
		conn_close(c);
		return;
	}
	c->state = NR_BC_CLOSING;
	c->deadline = now + NR_BROWSER_LINGER_MS;
	c->in_len = 0;
	b->served++;
	if (conn_queue(b, c, head, (size_t)n) == 0)
		conn_queue(b, c, body, blen);
}

static void error_response(struct nr_browser *b, struct nr_bconn *c, int code, const char *why,
			   uint64_t now)
{
	char body[256];

	snprintf(body, sizeof(body), "netreload: %d %s: %s\n", code, status_text(code), why);
	respond(b, c, code,
		code == 405   ? "Allow: GET\r\n"
		: code == 426 ? "Sec-WebSocket-Version: 13\r\n"
			      : "",
		"text/plain; charset=utf-8", body, now);
}

/* ---- the LiveReload WebSocket --------------------------------------------- */

/* One frame to the page; the connection is closed if it cannot take it. */
static void ws_send(struct nr_browser *b, struct nr_bconn *c, int op, const void *data, size_t len)
{
	unsigned char frame[NR_WS_HEADER_MAX + TARGET_MAX * 6 + 128];
	long n = nr_ws_encode(frame, sizeof(frame), op, data, len);

	if (n < 0 || conn_queue(b, c, (const char *)frame, (size_t)n))
		return;
	if (conn_flush(c))
		conn_close(c);
}

/* A close frame with code, then the lingering close of any response. */
static void ws_close(struct nr_browser *b, struct nr_bconn *c, uint16_t code, uint64_t now)
{
	unsigned char be[2] = {(unsigned char)(code >> 8), (unsigned char)code};

	c->state = NR_BC_CLOSING;
	c->deadline = now + NR_BROWSER_LINGER_MS;
	c->in_len = 0;
	ws_send(b, c, NR_WS_CLOSE, be, sizeof(be));
}

/* The "command" of a LiveReload message into out ("" if there is none). Its
 * messages are flat JSON objects; nothing else of them matters here. */
static void lr_command(const char *msg, char *out, size_t len)
{
	const char *p = strstr(msg, "\"command\"");
	size_t n = 0;

	out[0] = '\0';
	if (!p)
		return;
	p += strlen("\"command\"");
	p += strspn(p, " \t\r\n");
	if (*p++ != ':')
		return;
	p += strspn(p, " \t\r\n");
	if (*p++ != '"')
		return;
	while (*p && *p != '"' && n + 1 < len)
		out[n++] = *p++;
	out[*p == '"' ? n : 0] = '\0';
}

/* hello gets ours (protocol 7 only); info and the rest need no answer. */
static void lr_message(struct nr_browser *b, struct nr_bconn *c, const struct nr_ws_frame *f,
		       uint64_t now)
{
	static const char hello[] = "{\"command\":\"hello\",\"protocols\":[\"" LR_PROTOCOL "\"],"
				    "\"serverName\":\"netreload\"}";
	char msg[NR_WS_PAYLOAD_MAX + 1], cmd[32];

	memcpy(msg, f->payload, f->len);
	msg[f->len] = '\0';
	lr_command(msg, cmd, sizeof(cmd));
	if (strcmp(cmd, "hello"))
		return;
	if (!strstr(msg, LR_PROTOCOL)) {
		ws_close(b, c, NR_WS_UNSUPPORTED, now); /* protocol 6 and older: not spoken here */
		return;
	}
	c->ws_hello = 1;
	ws_send(b, c, NR_WS_TEXT, hello, sizeof(hello) - 1);
}

static void ws_frame(struct nr_browser *b, struct nr_bconn *c, const struct nr_ws_frame *f,
		     uint64_t now)
{
	if (f->opcode == NR_WS_TEXT && f->fin)
		lr_message(b, c, f, now);
	else if (f->opcode == NR_WS_PING)
		ws_send(b, c, NR_WS_PONG, f->payload, f->len);
	else if (f->opcode == NR_WS_CLOSE)
		ws_close(b, c, NR_WS_NORMAL, now);
	else if (f->opcode != NR_WS_PONG)
		ws_close(b, c, NR_WS_UNSUPPORTED, now); /* binary, or a fragmented message */
}

/* Every complete frame in c->in, in order; what is left waits for more. */
static void ws_frames(struct nr_browser *b, struct nr_bconn *c, uint64_t now)
{
	size_t off = 0;

	while (c->state == NR_BC_WS) {
		struct nr_ws_frame f;
		uint16_t code;
		long n = nr_ws_decode((unsigned char *)c->in + off, c->in_len - off, &f, &code);
		if (n == 0)
			break;
		if (n < 0) {
			ws_close(b, c, code, now);
			return;
		}
		off += (size_t)n;
		ws_frame(b, c, &f, now);
	}
	if (c->state != NR_BC_WS)
		return;
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

/* Append what the connection has for us to c->in: 1 if something came; 0 if
 * nothing did yet, or the peer closed or failed (then c is closed). */
static int conn_recv(struct nr_bconn *c)
{
	ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n <= 0) {
		conn_close(c);
		return 0;
	}
	c->in_len += (size_t)n;
	return 1;
}

static void ws_read(struct nr_browser *b, struct nr_bconn *c, uint64_t now)
{
	if (conn_recv(c))
		ws_frames(b, c, now);
}

/* A LiveReload "reload" command to every page that said hello. */
static void ws_reload(struct nr_browser *b, const char *path)
{
	char esc[TARGET_MAX * 6], json[sizeof(esc) + 64];

	json_escape(esc, sizeof(esc), path);
	snprintf(json, sizeof(json),
		 "{\"command\":\"reload\",\"path\":\"%s\",\"liveCSS\":true,\"liveImg\":true}", esc);
	for (int i = 0; i < NR_BROWSER_CONNS; i++)
		if (b->c[i].state == NR_BC_WS && b->c[i].ws_hello)
			ws_send(b, &b->c[i], NR_WS_TEXT, json, strlen(json));
}

/* ---- events -------------------------------------------------------------- */

/* One server-sent event; data is one line of JSON. */
static int event_text(char *buf, size_t len, const char *name, const char *json)
{
	int n = snprintf(buf, len, "event: %s\ndata: %s\n\n", name, json);

	return n < 0 || (size_t)n >= len ? -1 : n;
}

static void broadcast(struct nr_browser *b, const char *name, const char *json)
{
	char ev[NR_BROWSER_REASON_MAX * 6 + 128];
	int n = event_text(ev, sizeof(ev), name, json);

	if (n < 0)
		return;
	for (int i = 0; i < NR_BROWSER_CONNS; i++) {
		struct nr_bconn *c = &b->c[i];
		if (c->state != NR_BC_EVENTS || conn_queue(b, c, ev, (size_t)n))
			continue;
		if (conn_flush(c))
			conn_close(c);
	}
}

/* The stream's head, then "hello" with where the watcher stands, so a page
 * loaded during a reload reloads again, and one loaded broken shows why. */
static void start_events(struct nr_browser *b, struct nr_bconn *c)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				   "Cache-Control: no-cache\r\nAccess-Control-Allow-Origin: *\r\n"
				   "X-Accel-Buffering: no\r\n\r\nretry: 1000\n\n";
	char json[NR_BROWSER_REASON_MAX * 6 + 64], reason[NR_BROWSER_REASON_MAX * 6];
	char ev[sizeof(json) + 64];
	int n;

	json_escape(reason, sizeof(reason), b->failed);
	snprintf(json, sizeof(json), "{\"seq\":%llu%s%s%s}", (unsigned long long)b->seq,
		 b->failed[0] ? ",\"failed\":\"" : "", reason, b->failed[0] ? "\"" : "");
	c->state = NR_BC_EVENTS;
	c->in_len = 0;
	b->served++;
	if ((n = event_text(ev, sizeof(ev), "hello", json)) < 0 ||
	    conn_queue(b, c, head, sizeof(head) - 1) || conn_queue(b, c, ev, (size_t)n))
		return;
	if (conn_flush(c))
		conn_close(c);
}

void nr_browser_live(struct nr_browser *b, const char *path, unsigned ms)
{
	char json[64];

	b->seq++;
	b->failed[0] = '\0';
	snprintf(json, sizeof(json), "{\"seq\":%llu,\"ms\":%u}", (unsigned long long)b->seq, ms);
	broadcast(b, "live", json);
	ws_reload(b, path);
}

void nr_browser_failed(struct nr_browser *b, const char *reason)
{
	char esc[NR_BROWSER_REASON_MAX * 6], json[sizeof(esc) + 32];

	snprintf(b->failed, sizeof(b->failed), "%s", *reason ? reason : "(no reason given)");
	json_escape(esc, sizeof(esc), b->failed);
	snprintf(json, sizeof(json), "{\"reason\":\"%s\"}", esc);
	broadcast(b, "failed", json);
}

void nr_browser_css(struct nr_browser *b, const char *path)
{
	char esc[TARGET_MAX * 6], json[sizeof(esc) + 32];

	json_escape(esc, sizeof(esc), path);
	snprintf(json, sizeof(json), "{\"path\":\"%s\"}", esc);
	broadcast(b, "css", json);
	ws_reload(b, *path ? path : "*.css"); /* matches no link: livereload.js restyles all */
}

/* ---- requests ------------------------------------------------------------ */

/* "GET /path?query HTTP/1.1": 0 with method and path (query cut), or -1. */
static int parse_request_line(const char *line, size_t len, char *method, char *path)
{
	size_t m = 0, t = 0, i = 0;

	while (i < len && line[i] >= 'A' && line[i] <= 'Z' && m < METHOD_MAX - 1)
		method[m++] = line[i++];
	method[m] = '\0';
	if (!m || i >= len || line[i++] != ' ' || i >= len || line[i] != '/')
		return -1;
	while (i < len && line[i] > ' ' && line[i] < 0x7f && t < TARGET_MAX - 1)
		path[t++] = line[i++];
	path[t] = '\0';
	path[strcspn(path, "?#")] = '\0';
	if (i >= len || line[i++] != ' ')
		return -1;
	if (len - i != 8 || (memcmp(line + i, "HTTP/1.1", 8) && memcmp(line + i, "HTTP/1.0", 8)))
		return -1;
	return 0;
}

/* The value of header name among the hlen bytes of in, into out; -1 if it is
 * not there or too long. */
static int header_value(const char *in, size_t hlen, const char *name, char *out, size_t len)
{
	const char *end = in + hlen, *p = memchr(in, '\n', hlen), *eol;
	size_t nlen = strlen(name), l;

	for (; p && ++p < end && (eol = memchr(p, '\n', (size_t)(end - p))); p = eol) {
		const char *v = p + nlen + 1;
		if ((size_t)(eol - p) <= nlen || strncasecmp(p, name, nlen) || p[nlen] != ':')
			continue;
		v += strspn(v, " \t");
		for (l = (size_t)(eol - v); l && strchr("\r \t", v[l - 1]); l--)
			;
		if (l >= len)
			return -1;
		memcpy(out, v, l);
		out[l] = '\0';
		return 0;
	}
	return -1;
}

/* GET /livereload with a WebSocket handshake: 101, then frames. Bytes the page
 * sent after its header are its first frames. */
static void start_ws(struct nr_browser *b, struct nr_bconn *c, size_t hlen, uint64_t now)
{
	char up[64], key[64], ver[16], accept[NR_WS_ACCEPT_LEN + 1], head[256];
	int n;

	if (header_value(c->in, hlen, "Upgrade", up, sizeof(up)) || !strcasestr(up, "websocket") ||
	    header_value(c->in, hlen, "Sec-WebSocket-Key", key, sizeof(key)) ||
	    nr_ws_accept(key, accept, sizeof(accept))) {
		error_response(b, c, 400, "/livereload is a WebSocket: send Upgrade: websocket "
					  "and a Sec-WebSocket-Key",
			       now);
		return;
	}
	if (header_value(c->in, hlen, "Sec-WebSocket-Version", ver, sizeof(ver)) || strcmp(ver, "13")) {
		error_response(b, c, 426, "WebSocket version 13 only", now);
		return;
	}
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		     accept);
	memmove(c->in, c->in + hlen, c->in_len - hlen);
	c->in_len -= hlen;
	c->state = NR_BC_WS;
	b->served++;
	if (n < 0 || (size_t)n >= sizeof(head) || conn_queue(b, c, head, (size_t)n))
		return;
	if (conn_flush(c)) {
		conn_close(c);
		return;
	}
	ws_frames(b, c, now);
}

/* A complete header is in c->in (hlen bytes): answer it. */
static void handle_request(struct nr_browser *b, struct nr_bconn *c, size_t hlen, uint64_t now)
{
	char method[METHOD_MAX], path[TARGET_MAX];
	const char *eol = memchr(c->in, '\n', hlen);
	size_t llen = (size_t)(eol - c->in);

	if (llen && c->in[llen - 1] == '\r')
		llen--;
	if (memchr(c->in, '\0', hlen) || parse_request_line(c->in, llen, method, path)) {
		error_response(b, c, 400, "expected GET /netreload.js or GET /events over HTTP/1.x", now);
	} else if (strcmp(method, "GET")) {
		error_response(b, c, 405, "only GET is served here", now);
	} else if (!strcmp(path, "/netreload.js")) {
		respond(b, c, 200, "", "text/javascript; charset=utf-8", nr_browser_js, now);
	} else if (!strcmp(path, "/events")) {
		start_events(b, c);
	} else if (!strcmp(path, "/livereload")) {
		start_ws(b, c, hlen, now);
	} else {
		error_response(b, c, 404, "this is netreload; add <script src=\"/netreload.js\"> to the "
					  "page from this address",
			       now);
	}
}

/* Where the header ends (past its blank line), or 0 if it has not yet. */
static size_t header_end(const char *in, size_t len)
{
	const char *crlf = memmem(in, len, "\r\n\r\n", 4), *lf = memmem(in, len, "\n\n", 2);

	if (crlf && (!lf || crlf < lf))
		return (size_t)(crlf - in) + 4;
	return lf ? (size_t)(lf - in) + 2 : 0;
}

static void read_request(struct nr_browser *b, struct nr_bconn *c, uint64_t now)
{
	size_t end;

	if (!conn_recv(c))
		return;
	if ((end = header_end(c->in, c->in_len)))
		handle_request(b, c, end, now);
	else if (c->in_len == sizeof(c->in))
		error_response(b, c, 431, "the request header is over 8 KB", now);
}

/* Input nobody needs (a stream's page, or the rest of a refused request):
 * read and drop it, and close once the peer has. */
static void discard_input(struct nr_bconn *c)
{
	char buf[4096];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		conn_close(c);
}

/* ---- the listener -------------------------------------------------------- */

/* No slot left: say so at once and close, without reading. */
static void refuse(struct nr_browser *b, int fd)
{
	static const char body[] = "netreload: too many browser connections (at most 32)\n";
	char msg[256];
	int n = snprintf(msg, sizeof(msg),
			 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
			 sizeof(body) - 1, body);

	if (n > 0 && (size_t)n < sizeof(msg) && send(fd, msg, (size_t)n, NR_MSG_NOSIGNAL) < 0) {
		/* best effort: the client learns by the close */
	}
	close(fd);
	b->refused++;
}

static void accept_all(struct nr_browser *b, uint64_t now)
{
	for (int k = 0; k < NR_BROWSER_ACCEPTS; k++) {
		int fd = accept(b->fd, NULL, NULL), i;
		if (fd < 0)
			return;
		if (nr_accepted_nonblock(fd)) {
			close(fd);
			continue;
		}
		for (i = 0; i < NR_BROWSER_CONNS && b->c[i].state != NR_BC_FREE; i++)
			;
		if (i == NR_BROWSER_CONNS) {
			refuse(b, fd);
			continue;
		}
		b->c[i].fd = fd;
		b->c[i].state = NR_BC_REQUEST;
		b->c[i].deadline = now + NR_BROWSER_REQUEST_MS;
	}
}

static int listen_on(const struct addrinfo *ai, char *err, size_t errlen, const char *label)
{
	int one = 1, fd = nr_socket_nonblock(ai->ai_family, SOCK_STREAM);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64)) {
		snprintf(err, errlen, "cannot listen on %s for --browser: %s", label, strerror(errno));
		if (fd >= 0)
			nr_close_failed(fd);
		return -1;
	}
	return fd;
}

/* "PORT", "ADDR:PORT" or "[V6]:PORT" into host (default 127.0.0.1) and port
 * (1-65535); -1 if it is none of them. */
static int parse_spec(const char *spec, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(spec, ':'), *p = colon ? colon + 1 : spec;
	size_t n = colon ? (size_t)(colon - spec) : 0;
	char *end;
	unsigned long v = strtoul(p, &end, 10);

	if (!*p || *end || *p == '-' || *p == '+' || v < 1 || v > 65535 || strlen(p) > 5)
		return -1;
	if (!colon) {
		spec = "127.0.0.1";
		n = strlen(spec);
	} else if (spec[0] == '[' && n >= 2 && spec[n - 1] == ']') {
		spec++;
		n -= 2;
	} else if (memchr(spec, ':', n)) {
		return -1; /* an IPv6 address needs its brackets */
	}
	if (!n || n >= hlen || strlen(p) >= plen)
		return -1;
	memcpy(host, spec, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", p);
	return 0;
}

int nr_browser_open(struct nr_browser *b, const char *spec, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *list = NULL;
	char host[256], port[8];
	int rc;

	memset(b, 0, sizeof(*b));
	b->fd = -1;
	for (int i = 0; i < NR_BROWSER_CONNS; i++)
		b->c[i].fd = -1;
	if (parse_spec(spec, host, sizeof(host), port, sizeof(port))) {
		snprintf(err, errlen, "bad --browser '%.200s': expected PORT or ADDR:PORT (e.g. 35729)",
			 spec);
		return -1;
	}
	snprintf(b->label, sizeof(b->label), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
	if ((rc = getaddrinfo(host, port, &hints, &list))) {
		snprintf(err, errlen, "bad --browser address '%.200s': %s", host, gai_strerror(rc));
		return -1;
	}
	b->fd = listen_on(list, err, errlen, b->label);
	freeaddrinfo(list);
	return b->fd < 0 ? -1 : 0;
}

/* ---- the loop's side ----------------------------------------------------- */

int nr_browser_pollfds(struct nr_browser *b, struct pollfd *pfd, int max)
{
	int n = 0;

	if (b->fd < 0 || max < 1)
		return b->npfd = 0;
	pfd[n] = (struct pollfd){.fd = b->fd, .events = POLLIN};
	b->pconn[n++] = -1;
	for (int i = 0; i < NR_BROWSER_CONNS && n < max; i++) {
		struct nr_bconn *c = &b->c[i];
		short ev = POLLIN;
		if (c->state == NR_BC_FREE)
			continue;
		if (c->out_off < c->out_len)
			ev = c->state == NR_BC_CLOSING ? POLLOUT : POLLIN | POLLOUT;
		pfd[n] = (struct pollfd){.fd = c->fd, .events = ev};
		b->pconn[n++] = i;
	}
	return b->npfd = n;
}

/* A response is out: stop sending, and read until the client closes. */
static void closing_step(struct nr_bconn *c, short revents)
{
	if (c->out_off < c->out_len) {
		if ((revents & (POLLOUT | POLLERR | POLLHUP)) && conn_flush(c))
			conn_close(c);
		if (c->state == NR_BC_FREE || c->out_off < c->out_len)
			return;
	}
	if (!c->shut) {
		shutdown(c->fd, SHUT_WR);
		c->shut = 1;
	}
	if (revents & (POLLIN | POLLERR | POLLHUP))
		discard_input(c);
}

static void conn_step(struct nr_browser *b, struct nr_bconn *c, short revents, uint64_t now)
{
	if (c->state == NR_BC_REQUEST && (revents & (POLLIN | POLLERR | POLLHUP)))
		read_request(b, c, now);
	else if (c->state == NR_BC_EVENTS || c->state == NR_BC_WS) {
		if ((revents & POLLOUT) && conn_flush(c))
			conn_close(c);
		else if ((revents & (POLLIN | POLLERR | POLLHUP)) && c->state == NR_BC_WS)
			ws_read(b, c, now);
		else if (revents & (POLLIN | POLLERR | POLLHUP))
			discard_input(c);
	}
	if (c->state == NR_BC_CLOSING)
		closing_step(c, revents | POLLOUT);
}

/* Connections first: the slots of those that closed are free for new ones. */
void nr_browser_step(struct nr_browser *b, const struct pollfd *pfd, int n, uint64_t now)
{
	int listener = 0;

	for (int j = 0; j < n && j < b->npfd; j++) {
		if (!pfd[j].revents)
			continue;
		if (b->pconn[j] < 0)
			listener = 1;
		else if (b->c[b->pconn[j]].fd == pfd[j].fd)
			conn_step(b, &b->c[b->pconn[j]], pfd[j].revents, now);
	}
	if (listener)
		accept_all(b, now);
}

/* A comment line every NR_BROWSER_BEAT_MS while streams are open; none when
 * there are none, so an idle watcher with no page open never wakes. */
static void heartbeat(struct nr_browser *b, uint64_t now)
{
	int streams = 0;

	for (int i = 0; i < NR_BROWSER_CONNS; i++)
		streams += b->c[i].state == NR_BC_EVENTS;
	if (!streams) {
		b->next_beat = 0;
		return;
	}
	if (!b->next_beat)
		b->next_beat = now + NR_BROWSER_BEAT_MS;
	if (now < b->next_beat)
		return;
	b->next_beat = now + NR_BROWSER_BEAT_MS;
	for (int i = 0; i < NR_BROWSER_CONNS; i++) {
		struct nr_bconn *c = &b->c[i];
		if (c->state == NR_BC_EVENTS && conn_queue(b, c, ":\n\n", 3) == 0 && conn_flush(c))
			conn_close(c);
	}
}

void nr_browser_tick(struct nr_browser *b, uint64_t now)
{
	heartbeat(b, now);
	for (int i = 0; i < NR_BROWSER_CONNS; i++) {
		struct nr_bconn *c = &b->c[i];
		if (c->state == NR_BC_REQUEST && now >= c->deadline) {
			error_response(b, c, 408, "no complete request header within 5 s", now);
			if (c->state == NR_BC_CLOSING)
				closing_step(c, POLLOUT);
		} else if (c->state == NR_BC_CLOSING && now >= c->deadline) {
			conn_close(c);
		}
	}
}

uint64_t nr_browser_next(const struct nr_browser *b)
{
	uint64_t next = b->fd >= 0 ? b->next_beat : 0;

	for (int i = 0; i < NR_BROWSER_CONNS && b->fd >= 0; i++) {
		const struct nr_bconn *c = &b->c[i];
		if ((c->state == NR_BC_REQUEST || c->state == NR_BC_CLOSING) &&
		    (!next || c->deadline < next))
			next = c->deadline;
	}
	return next;
}

int nr_browser_pages(const struct nr_browser *b)
{
	int n = 0;

	for (int i = 0; i < NR_BROWSER_CONNS && b->fd >= 0; i++)
		n += b->c[i].state == NR_BC_EVENTS || (b->c[i].state == NR_BC_WS && b->c[i].ws_hello);
	return n;
}

void nr_browser_close(struct nr_browser *b)
{
	if (b->fd < 0)
		return;
	for (int i = 0; i < NR_BROWSER_CONNS; i++)
		conn_close(&b->c[i]);
	close(b->fd);
	b->fd = -1;
}
