/*
 * ping.c - one non-blocking netreload request over TCP or UDP (see ping.h).
 *
 * With a secret a ping is two exchanges: a hello that asks the server's
 * instance id, then the request signed for that instance (PROTOCOL.md,
 * "Instances"); every answer must be signed and echo the request's id, or it
 * is not believed. When it fails, diagnose.c says why; the probes of the
 * other transport that tell it more are here ("Probes").
 */
#include "ping.h"
#include "compat.h"
#include "diagnose.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const struct nr_secret *ping_secret;
static const char *ping_secret_from = "";

void nr_ping_set_secret(const struct nr_secret *secret, const char *from)
{
	ping_secret = secret;
	ping_secret_from = from ? from : "";
}

/* Random, so a sender who cannot see our request cannot guess what its answer
 * must echo (a signed request replaces it with its nonce anyway). */
void nr_request_id(char *id, size_t len)
{
	static unsigned counter;
	char random[NR_NONCE_HEX + 1];
	struct timespec ts;

	if (len > NR_NONCE_HEX && nr_nonce_new(random) == 0) {
		snprintf(id, len, "%s", random);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(id, len, "%x-%lx-%u", (unsigned)getpid(), (unsigned long)(ts.tv_nsec & 0xfffff),
		 ++counter);
}

/* req as a signed line in buf, for instance sid (NULL: a hello, which asks it).
 * Its id is a fresh nonce, which replies echo: that ties them to this request
 * (PROTOCOL.md, "Authentication"). Returns the length, or -1. */
static int sign_line(struct nr_request *req, const char *sid, char *buf, size_t size)
{
	char nonce[NR_NONCE_HEX + 1];
	int n;

	if (nr_nonce_new(nonce))
		return -1;
	snprintf(req->id, sizeof(req->id), "%s", nonce);
	req->version = 2;
	n = nr_request_format(req, buf, size);
	if (n < 0)
		return -1;
	return nr_auth_sign(ping_secret, buf, (size_t)n - 1, size, (int64_t)time(NULL), nonce, sid);
}

static void finish(struct nr_ping *p, int result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finish(struct nr_ping *p, int result, const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(p->err, sizeof(p->err), fmt, ap);
		va_end(ap);
	}
	if (p->fd >= 0)
		close(p->fd);
	if (p->udp_fd >= 0)
		close(p->udp_fd);
	p->fd = p->udp_fd = -1;
	if (p->ai_list)
		freeaddrinfo(p->ai_list);
	p->ai_list = p->ai_next = NULL;
	p->result = result;
	p->state = NR_PING_DONE;
	p->t_done = nr_now_ms();
}

/* Start a connect to the next address; errors fall through to the next one. */
static void try_next_address(struct nr_ping *p, int last_errno)
{
	while (p->ai_next) {
		struct addrinfo *ai = p->ai_next;
		p->ai_next = ai->ai_next;
		p->fd = nr_socket_nonblock(ai->ai_family, ai->ai_socktype);
		if (p->fd < 0) {
			last_errno = errno;
			continue;
		}
		if (connect(p->fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
			p->state = p->udp ? NR_PING_SENDING : NR_PING_CONNECTING;
			p->ai_cur = ai;
			return;
		}
		last_errno = errno;
		close(p->fd);
		p->fd = -1;
	}
	finish(p, NR_EXIT_UNREACHABLE,
	       "cannot connect to %s: %s (is uWSGI running there with netreload-port = %s, and "
	       "netreload-bind reachable from here?)",
	       p->target.label, strerror(last_errno), p->target.port);
}

/* What the request line says about files: over TCP the list, over UDP only a count. */
static void count_files(struct nr_request *req, const struct nr_filelist *files, int udp)
{
	if (udp) {
		req->files = 0;
		req->more = files->n > UINT32_MAX - files->more ? UINT32_MAX : files->more + files->n;
		req->sum[0] = '\0';
		return;
	}
	req->files = files->n;
	req->more = files->more;
	memcpy(req->sum, files->sum, sizeof(req->sum));
}

/* Sign the request line at the head of p->out for instance p->sid; the file
 * lines after it move to make room (the signature covers them through the
 * line's sum=). 0, or -1 after finish(). */
static int seal(struct nr_ping *p)
{
	char line[NR_LINE_MAX];
	size_t files = p->out_len - p->head_len;
	int n = sign_line(&p->req, p->sid, line, sizeof(line));

	if (n < 0 || (size_t)n + files > sizeof(p->out)) {
		finish(p, NR_EXIT_USAGE, "cannot sign the request (no randomness, or line too long)");
		return -1;
	}
	memmove(p->out + n, p->out + p->head_len, files);
	memcpy(p->out, line, (size_t)n);
	p->head_len = (size_t)n;
	p->out_len = (size_t)n + files;
	return 0;
}

/* A fresh signed hello in p->hello_out (each UDP resend gets a new nonce: the
 * server takes a nonce once). 0, or -1 after finish(). */
static int make_hello(struct nr_ping *p)
{
	struct nr_request hello = {.verb = NR_VERB_HELLO};
	int n = sign_line(&hello, NULL, p->hello_out, sizeof(p->hello_out));

	if (n < 0) {
		finish(p, NR_EXIT_USAGE, "cannot sign the hello (no randomness)");
		return -1;
	}
	p->hello_len = (size_t)n;
	memcpy(p->hello_ids[p->nhello++ % NR_HELLO_IDS], hello.id, sizeof(hello.id));
	return 0;
}

/* With a secret: sign for the instance the caller's addrs know, or ask it first. */
static int sign_or_ask(struct nr_ping *p)
{
	if (p->addrs && p->addrs->sid[0]) {
		memcpy(p->sid, p->addrs->sid, sizeof(p->sid));
		p->sid_cached = 1;
		return seal(p);
	}
	p->hello = 1;
	return make_hello(p);
}

/* Encode the request line into p->out and append the file lines, then sign it
 * (or ask the instance id first). 0, or -1 after finish(). */
static int prepare(struct nr_ping *p, const struct nr_filelist *files)
{
	int n;

	if (files)
		count_files(&p->req, files, p->udp);
	if (!p->req.id[0] && nr_nonce_new(p->req.id)) {
		finish(p, NR_EXIT_USAGE, "cannot make a request id (no randomness)");
		return -1;
	}
	n = nr_request_format(&p->req, p->out, sizeof(p->out));
	if (n < 0) {
		finish(p, NR_EXIT_USAGE, "cannot encode the request");
		return -1;
	}
	p->out_len = p->head_len = (size_t)n;
	/* room for the longest signed line, whatever the instance id turns out to be */
	if (p->req.files && files->len > sizeof(p->out) - NR_LINE_MAX) {
		finish(p, NR_EXIT_USAGE, "cannot encode the request: file list too long");
		return -1;
	}
	if (p->req.files) {
		memcpy(p->out + p->out_len, files->lines, files->len);
		p->out_len += files->len;
	}
	return ping_secret ? sign_or_ask(p) : 0;
}

/* With cache, reuse its addresses (looking them up into it if it has none);
 * without, look them up for this ping alone. */
static void ping_start(struct nr_ping *p, const struct nr_target *t, const struct nr_request *req,
		       const struct nr_filelist *files, uint32_t timeout_ms, int udp,
		       struct nr_addrs *cache)
{
	memset(p, 0, sizeof(*p));
	p->fd = p->udp_fd = -1;
	p->udp = udp;
	p->resend_ms = 200;
	p->target = *t;
	p->req = *req;
	p->addrs = cache;
	p->t_start_us = nr_now_us();
	p->t_start = p->t_start_us / 1000;
	p->deadline = p->t_start + timeout_ms;
	if (prepare(p, files))
		return;
	if (cache && !cache->list && nr_addrs_lookup(cache, t, p->err, sizeof(p->err))) {
		finish(p, NR_EXIT_UNREACHABLE, NULL);
		return;
	}
	if (!cache && nr_target_lookup(t, udp, &p->ai_list, p->err, sizeof(p->err))) {
		finish(p, NR_EXIT_UNREACHABLE, NULL);
		return;
	}
	p->ai_next = cache ? cache->list : p->ai_list;
	try_next_address(p, ECONNREFUSED);
}

void nr_ping_start(struct nr_ping *p, const struct nr_target *t, const struct nr_request *req,
		   const struct nr_filelist *files, uint32_t timeout_ms)
{
	ping_start(p, t, req, files, timeout_ms, 0, NULL);
}

void nr_ping_start_udp(struct nr_ping *p, const struct nr_target *t, const struct nr_request *req,
		       const struct nr_filelist *files, uint32_t timeout_ms)
{
	ping_start(p, t, req, files, timeout_ms, 1, NULL);
}

void nr_ping_start_cached(struct nr_ping *p, const struct nr_target *t, struct nr_addrs *a,
			  const struct nr_request *req, const struct nr_filelist *files,
			  uint32_t timeout_ms)
{
	ping_start(p, t, req, files, timeout_ms, 0, a);
}

/* When the early look over TCP is due (0: not for this ping, or not now). */
static uint64_t early_at(const struct nr_ping *p)
{
	if (!p->udp || p->probe || p->early_done || p->heard || p->got_accepted ||
	    p->state == NR_PING_DONE)
		return 0;
	return p->t_start + NR_EARLY_PROBE_MS;
}

uint64_t nr_ping_wake(const struct nr_ping *p)
{
	uint64_t at = p->udp && p->resend_at && p->resend_at < p->deadline ? p->resend_at
									: p->deadline;

	return early_at(p) && early_at(p) < at ? early_at(p) : at;
}

int nr_ping_pollfd(const struct nr_ping *p, struct pollfd *pfd)
{
	if (p->state == NR_PING_DONE || p->state == NR_PING_IDLE || p->fd < 0)
		return 0;
	pfd->fd = p->fd;
	pfd->events = p->state == NR_PING_READING ? POLLIN : POLLOUT;
	pfd->revents = 0;
	return 1;
}

void nr_ping_cancel(struct nr_ping *p)
{
	if (p->state != NR_PING_DONE && p->state != NR_PING_IDLE)
		finish(p, NR_EXIT_TIMEOUT, "cancelled");
}

/* Whether rep answers what is in flight: the request, or (kind hello) one of
 * the hellos sent. */
static int ours(const struct nr_ping *p, const struct nr_reply *rep)
{
	if (rep->kind != NR_REPLY_HELLO)
		return !p->hello && !strcmp(rep->id, p->req.id);
	for (int i = 0; i < NR_HELLO_IDS; i++)
		if (p->hello_ids[i][0] && !strcmp(rep->id, p->hello_ids[i]))
			return 1;
	return 0;
}

/* Decode a reply and decide whether to believe it (PROTOCOL.md, "Signed
 * replies"): it must answer what is in flight and, with a secret, be signed
 * with it. An error that names no request needs neither: all it can do is end
 * the ping as failed. 0: believe rep; 1: do not, why says why; -1: not netreload. */
static int trust(const struct nr_ping *p, const char *line, size_t len, struct nr_reply *rep,
		 char *why, size_t whylen)
{
	size_t body = len;
	int mac = ping_secret ? nr_reply_verify(ping_secret, line, len, &body) : NR_AUTH_MISSING;

	if (nr_reply_parse(line, body, rep, why, whylen))
		return -1;
	if (rep->kind == NR_REPLY_ERROR && !rep->id[0])
		return 0;
	if (!ours(p, rep)) {
		snprintf(why, whylen, "an answer to another request (id=%s)",
			 rep->id[0] ? rep->id : "none");
		return 1;
	}
	if (ping_secret && mac == NR_AUTH_MISSING) {
		snprintf(why, whylen, "an unsigned answer (a server without netreload-secret-file, "
				      "or older than 0.2, signs none)");
		return 1;
	}
	if (ping_secret && mac != NR_AUTH_OK) {
		snprintf(why, whylen, "an answer with a bad signature (forged, or another secret)");
		return 1;
	}
	return 0;
}

/* An answer not to believe. Over TCP only the peer we connected to can have
 * sent it: the ping ends. Over UDP anyone can: it is counted and ignored. */
static void distrust(struct nr_ping *p, const char *why)
{
	if (!p->udp) {
		finish(p, NR_EXIT_UNTRUSTED, "%s sent %s; not believed", p->target.label, why);
		return;
	}
	p->untrusted++;
	snprintf(p->untrusted_why, sizeof(p->untrusted_why), "%s", why);
}

/* Send what is in flight again from the start: over TCP on a new connection to
 * the same address, over UDP on the same socket. */
static void restart(struct nr_ping *p)
{
	p->out_off = 0;
	p->in_len = 0;
	if (p->udp) {
		p->state = NR_PING_SENDING;
		p->resend_ms = 200;
		return;
	}
	close(p->fd);
	p->fd = -1;
	p->ai_next = p->ai_cur;
	try_next_address(p, ECONNREFUSED);
}

/* The hello's answer: sign the request for that instance and send it. */
static void hello_answered(struct nr_ping *p, const struct nr_reply *rep)
{
	if (!rep->sid[0]) {
		finish(p, NR_EXIT_PROTOCOL, "%s answered hello without an instance id",
		       p->target.label);
		return;
	}
	memcpy(p->sid, rep->sid, sizeof(p->sid));
	if (p->addrs)
		memcpy(p->addrs->sid, rep->sid, sizeof(p->addrs->sid));
	p->hello = 0;
	if (seal(p) == 0)
		restart(p);
}

/* The server restarted since the watcher learned its instance id: ask again, once. */
static int ask_again(struct nr_ping *p, const struct nr_reply *rep)
{
	if (strcmp(rep->code, "instance") || !p->sid_cached)
		return 0;
	p->sid_cached = 0;
	p->addrs->sid[0] = '\0';
	p->hello = 1;
	if (make_hello(p) == 0)
		restart(p);
	return 1;
}

/* Where the secret came from, for messages about it; NULL: requests are not signed. */
static const char *secret_from(void)
{
	return ping_secret ? ping_secret_from : NULL;
}

/* An error reply; note is added to the message (why it came over TCP, say). */
static void refused(struct nr_ping *p, const struct nr_reply *rep, const char *note)
{
	p->final = *rep;
	finish(p, nr_diag_refused(p, rep, secret_from(), note, p->err, sizeof(p->err)), NULL);
}

/* The early look over TCP told nothing for sure: back to UDP as it was, and
 * send again now. */
static void resume_udp(struct nr_ping *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = p->udp_fd;
	p->udp_fd = -1;
	p->early = 0;
	p->probe = NR_PROBE_NONE;
	p->udp = 1;
	p->hello = p->udp_hello;
	p->deadline = p->udp_deadline;
	p->in_len = p->out_off = 0;
	p->state = NR_PING_READING;
	p->resend_at = nr_now_ms();
}

/* What a peer that is not netreload sent, named (by the last look, not the
 * early one: the time left is UDP's). */
static void stranger(struct nr_ping *p, const char *buf, size_t len)
{
	if (p->early)
		resume_udp(p);
	else
		finish(p, nr_diag_stranger(p, buf, len, p->err, sizeof(p->err)), NULL);
}

/* TCP said nothing; the UDP probe found its port closed (udp_closed) or not. */
static void tcp_silent_end(struct nr_ping *p, int udp_closed)
{
	finish(p, nr_diag_tcp_silent(p, udp_closed, p->err, sizeof(p->err)), NULL);
}

/* UDP got no answer; the TCP probe answered with our credentials accepted (tcp_ok), or not. */
static void udp_silent_end(struct nr_ping *p, int tcp_ok)
{
	if (p->early)
		resume_udp(p);
	else
		finish(p, nr_diag_udp_silent(p, tcp_ok, secret_from(), p->err, sizeof(p->err)),
		       NULL);
}

/* ---- Probes -------------------------------------------------------------
 * A netreload port answers over TCP and UDP. When one stays silent, one
 * exchange over the other, on the same address, tells why: a port that is
 * not netreload (its UDP side is closed), a secret the server rejects (over
 * UDP it answers nothing unverified), or UDP lost on the way. When the probe
 * cannot tell, the first transport's outcome is reported as it was. */

/* The probe's socket, connected to the address the first transport used. */
static int probe_socket(struct nr_ping *p, int type)
{
	const struct addrinfo *ai = p->ai_cur;

	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->in_len = p->out_off = 0;
	p->deadline = nr_now_ms() + NR_PROBE_MS;
	if (!ai || (p->fd = nr_socket_nonblock(ai->ai_family, type)) < 0)
		return -1;
	if (connect(p->fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
		return 0;
	close(p->fd);
	p->fd = -1;
	return -1;
}

/* Nothing came over TCP (closed: the peer hung up): is its UDP port open? */
static void tcp_silent(struct nr_ping *p, int closed)
{
	static const char line[] = NR_MAGIC "1 status id=probe\n";

	p->silent_closed = closed;
	p->silent_ms = (unsigned)(nr_now_ms() - p->t_start);
	p->probe = NR_PROBE_UDP;
	if (probe_socket(p, SOCK_DGRAM)) {
		tcp_silent_end(p, 0);
		return;
	}
	if (send(p->fd, line, sizeof(line) - 1, 0) < 0) {
		tcp_silent_end(p, errno == ECONNREFUSED);
		return;
	}
	p->state = NR_PING_READING;
}

/* Any answer means something listens on UDP; "port closed" means nothing does. */
static void probe_read_udp(struct nr_ping *p)
{
	char buf[NR_LINE_MAX + 1];
	ssize_t n = recv(p->fd, buf, sizeof(buf), 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	tcp_silent_end(p, n < 0 && errno == ECONNREFUSED);
}

/* No answer over UDP: ask over TCP what a UDP server keeps to itself. With a
 * secret a signed hello (does the server take our signature?), without one a
 * status (does the server want one?); neither reloads anything. */
static void udp_silent(struct nr_ping *p)
{
	static const char status[] = NR_MAGIC "1 status id=probe\n";

	p->silent_refused = p->refused;
	p->silent_ms = (unsigned)(nr_now_ms() - p->t_start);
	p->probe = NR_PROBE_TCP;
	p->udp = 0;
	p->hello = 1; /* what is sent is hello_out */
	if (ping_secret && make_hello(p))
		return;
	if (!ping_secret) {
		memcpy(p->hello_out, status, sizeof(status) - 1);
		p->hello_len = sizeof(status) - 1;
	}
	p->state = NR_PING_CONNECTING;
	if (probe_socket(p, SOCK_STREAM))
		udp_silent_end(p, 0);
}

/* UDP silent for NR_EARLY_PROBE_MS: the same look over TCP, once, with the
 * UDP socket kept. A refusal (the secret, say) ends the ping now rather than
 * at --timeout; anything else goes back to UDP (resume_udp) for the rest. */
static void udp_look_early(struct nr_ping *p)
{
	uint64_t deadline = p->deadline;

	p->early = p->early_done = 1;
	p->udp_fd = p->fd;
	p->fd = -1;
	p->udp_hello = p->hello;
	p->udp_deadline = deadline;
	udp_silent(p);
	if (p->state != NR_PING_DONE && p->early && p->deadline > deadline)
		p->deadline = deadline; /* the look takes none of UDP's time past --timeout */
}

/* The TCP probe's answer. */
static void probe_line(struct nr_ping *p, const char *line, size_t len)
{
	struct nr_reply rep;
	char why[160];
	size_t body = len;

	if (ping_secret)
		nr_reply_verify(ping_secret, line, len, &body);
	else if (body && line[body - 1] == '\n')
		body--;
	if (nr_reply_parse(line, body, &rep, why, sizeof(why))) {
		stranger(p, line, len);
		return;
	}
	if (rep.kind == NR_REPLY_ERROR) {
		refused(p, &rep, " (no answer over UDP, which answers nothing it cannot verify; "
				 "asked over TCP)");
		return;
	}
	udp_silent_end(p, 1);
}

/* The deadline passed: probe the other transport, or say what did not come. */
static void deadline_passed(struct nr_ping *p)
{
	if (p->probe == NR_PROBE_UDP)
		tcp_silent_end(p, 0);
	else if (p->probe == NR_PROBE_TCP)
		udp_silent_end(p, 0);
	else if (p->untrusted)
		finish(p, NR_EXIT_UNTRUSTED, "%s: no answer to believe within %.1f s; %u refused, "
					     "the last %s",
		       p->target.label, (double)(p->deadline - p->t_start) / 1000.0, p->untrusted,
		       p->untrusted_why);
	else if (!p->heard && !p->got_accepted && p->udp)
		udp_silent(p);
	else if (!p->heard && !p->got_accepted && p->in_len)
		stranger(p, p->in, p->in_len);
	else if (!p->heard && !p->got_accepted && p->state != NR_PING_CONNECTING)
		tcp_silent(p, 0);
	else
		finish(p, NR_EXIT_TIMEOUT,
		       "%s: no %s within %.1f s (raise --timeout, or check the uWSGI log)",
		       p->target.label, p->got_accepted ? "\"live\" answer" : "answer",
		       (double)(p->deadline - p->t_start) / 1000.0);
}

/* One reply line: a hello's answer, then accepted, then live/failed (or a
 * single status/error). */
static void on_line(struct nr_ping *p, const char *line, size_t len)
{
	struct nr_reply rep;
	char why[160];
	int rc = trust(p, line, len, &rep, why, sizeof(why));

	if (rc < 0 && !p->udp) {
		stranger(p, line, len);
		return;
	}
	if (rc >= 0)
		p->heard = 1;
	if (rc) {
		distrust(p, why);
		return;
	}
	switch (rep.kind) {
	case NR_REPLY_HELLO:
		if (p->hello)
			hello_answered(p, &rep);
		return; /* else a late answer to a hello resent over UDP */
	case NR_REPLY_ACCEPTED:
		p->accepted = rep;
		p->got_accepted = 1;
		p->t_accepted_us = nr_now_us();
		p->t_accepted = p->t_accepted_us / 1000;
		if (!p->req.wait)
			finish(p, NR_EXIT_OK, NULL);
		return;
	case NR_REPLY_ERROR:
		if (!ask_again(p, &rep))
			refused(p, &rep, "");
		return;
	default:
		p->final = rep;
		finish(p, rep.kind == NR_REPLY_FAILED ? NR_EXIT_FAILED : NR_EXIT_OK, NULL);
	}
}

/* One datagram is one reply line; "port closed" is remembered and retried. */
static void do_read_udp(struct nr_ping *p)
{
	char buf[NR_LINE_MAX + 1];
	ssize_t n = recv(p->fd, buf, sizeof(buf), 0);

	if (n < 0 && errno == ECONNREFUSED)
		p->refused = 1;
	if (n <= 0)
		return;
	p->refused = 0;
	on_line(p, buf, (size_t)n);
	if (p->state == NR_PING_READING && p->got_accepted)
		p->resend_ms = 1000; /* accepted: only "live" can still be lost, ask now and then */
}

static void do_read(struct nr_ping *p)
{
	ssize_t n;
	char *lf;

	if (p->probe == NR_PROBE_UDP) {
		probe_read_udp(p);
		return;
	}
	if (p->udp) {
		do_read_udp(p);
		return;
	}
	n = recv(p->fd, p->in + p->in_len, sizeof(p->in) - p->in_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 && p->in_len && !p->heard)
		stranger(p, p->in, p->in_len);
	else if (n <= 0 && p->probe == NR_PROBE_TCP)
		udp_silent_end(p, 0);
	else if (n <= 0 && !p->heard && !p->got_accepted)
		tcp_silent(p, 1);
	else if (n <= 0)
		finish(p, NR_EXIT_PROTOCOL,
		       "%s closed the connection before it answered%s (did uWSGI exit? see its log)",
		       p->target.label, p->got_accepted ? " \"live\"" : "");
	if (n <= 0)
		return;
	p->in_len += (size_t)n;
	while (p->state == NR_PING_READING && (lf = memchr(p->in, '\n', p->in_len))) {
		char line[sizeof(p->in)];
		size_t len = (size_t)(lf - p->in) + 1;
		/* taken out first: a hello's answer starts the request afresh */
		memcpy(line, p->in, len);
		memmove(p->in, p->in + len, p->in_len - len);
		p->in_len -= len;
		if (p->probe)
			probe_line(p, line, len);
		else
			on_line(p, line, len);
	}
	if (p->state == NR_PING_READING && p->in_len == sizeof(p->in) && !p->heard)
		stranger(p, p->in, p->in_len);
	else if (p->state == NR_PING_READING && p->in_len == sizeof(p->in))
		finish(p, NR_EXIT_PROTOCOL, "%s sent a line longer than %d bytes", p->target.label,
		       NR_LINE_MAX);
}

static void do_connected(struct nr_ping *p)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
	if (soerr && p->probe) {
		udp_silent_end(p, 0);
		return;
	}
	if (soerr) {
		close(p->fd);
		p->fd = -1;
		try_next_address(p, soerr);
		return;
	}
	p->state = NR_PING_SENDING;
}

/* The hello while it is in flight, then the request. */
static void do_send(struct nr_ping *p)
{
	const char *out = p->hello ? p->hello_out : p->out;
	size_t len = p->hello ? p->hello_len : p->out_len;
	ssize_t n = send(p->fd, out + p->out_off, len - p->out_off, NR_MSG_NOSIGNAL);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0 && p->early) {
		resume_udp(p);
		return;
	}
	if (n < 0) {
		finish(p, NR_EXIT_UNREACHABLE, "%s: send: %s", p->target.label, strerror(errno));
		return;
	}
	p->out_off += (size_t)n;
	if (p->out_off == len)
		p->state = NR_PING_READING;
	if (p->udp) {
		/* the same request again later: same id and nonce, so the server sees a retry */
		p->out_off = 0;
		p->resend_at = nr_now_ms() + p->resend_ms;
		if (p->resend_ms < 1000)
			p->resend_ms *= 2;
	}
}

void nr_ping_step(struct nr_ping *p, short revents)
{
	if (p->state == NR_PING_DONE || p->state == NR_PING_IDLE)
		return;
	if (revents && p->state == NR_PING_CONNECTING)
		do_connected(p);
	else if (revents && p->state == NR_PING_SENDING)
		do_send(p);
	else if (revents && p->state == NR_PING_READING)
		do_read(p);
	if (p->udp && p->state == NR_PING_READING && nr_now_ms() >= p->resend_at &&
	    (!p->hello || make_hello(p) == 0))
		do_send(p);
	if (early_at(p) && nr_now_ms() >= early_at(p) && nr_now_ms() < p->deadline)
		udp_look_early(p);
	if (p->state != NR_PING_DONE && nr_now_ms() >= p->deadline)
		deadline_passed(p);
}

void nr_ping_run(struct nr_ping *pings, int n)
{
	struct pollfd pfd[64];
	int idx[64];

	for (;;) {
		int m = 0;
		uint64_t now = nr_now_ms(), next = UINT64_MAX;
		for (int i = 0; i < n && m < 64; i++) {
			if (nr_ping_pollfd(&pings[i], &pfd[m])) {
				idx[m++] = i;
				if (nr_ping_wake(&pings[i]) < next)
					next = nr_ping_wake(&pings[i]);
			}
		}
		if (m == 0)
			return;
		int wait = next <= now ? 0 : (int)(next - now);
		int rc = poll(pfd, (nfds_t)m, wait);
		for (int j = 0; j < m; j++)
			nr_ping_step(&pings[idx[j]], rc > 0 ? pfd[j].revents : 0);
	}
}
