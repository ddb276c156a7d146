/*
 * request.c - what a client asks, and what it is told: parse and authorize a
 * request (TCP line and file lines, or a datagram), dispatch it (hello,
 * status, reload), format and sign the replies, and answer whoever waits
 * when a generation ends. server.c brings the bytes and sends the replies.
 */
#include "netreload.h"

#include "glue.h"
#include "request.h"

#include <sys/socket.h>

/* What a refused signed request is told, by nr_auth_verify's answer (the
 * clock skew, which says by how much, aside); anything else is "auth". */
static const struct {
	int rc;
	const char *code, *reason;
} auth_refusals[] = {
	{NR_AUTH_FULL, "busy", "too many signed requests; try again"},
	{NR_AUTH_INSTANCE, "instance",
	 "signed for another netreload instance, or for this one before it restarted: ask "
	 "its instance id again (hello)"},
	{NR_AUTH_UNBOUND, "bad-request", "a signed protocol 2 request must have its nonce as id"},
	{NR_AUTH_BAD, "auth",
	 "authentication failed: bad signature (signed with another secret than this server's "
	 "netreload-secret-file, or altered on the way)"},
	{0, "auth",
	 "authentication failed: this server needs requests signed with its "
	 "netreload-secret-file (netreload --secret-file FILE)"},
};

static int auth_refuse(struct nr_reply *rep, const char *code, const char *reason)
{
	rep->kind = NR_REPLY_ERROR;
	snprintf(rep->code, sizeof(rep->code), "%s", code);
	snprintf(rep->reason, sizeof(rep->reason), "%s", reason);
	return -1;
}

/* Check a signed request; req is its decoding. 0: go on; 1: a UDP retry of a
 * request already taken; -1: refused, rep holds the error reply. */
static int authorize(const struct nr_request *req, const char *line, size_t len, struct nr_reply *rep)
{
	int64_t skew = 0;
	size_t i = 0;
	int rc;

	memset(rep, 0, sizeof(*rep));
	if (!unr.secret)
		return 0;
	rc = nr_auth_verify(unr.secret, req, line, len, (int64_t)time(NULL), unr.auth_window,
			    unr.nonces, &skew);
	if (req->version < 2 && rc != NR_AUTH_MISSING && rc != NR_AUTH_BAD)
		/* signed by a 0.1 client: it names no instance, and cannot read signed replies */
		return auth_refuse(rep, "version",
				   "signed requests need protocol 2 (netreload 0.2 or later), which "
				   "binds them to this instance: upgrade the netreload client");
	if (rc == NR_AUTH_OK)
		return 0;
	if (rc == NR_AUTH_REPLAY)
		return 1;
	if (rc == NR_AUTH_SKEW) {
		auth_refuse(rep, "clock-skew", "");
		snprintf(rep->reason, sizeof(rep->reason),
			 "clock skew: the request's clock is %lld s %s the server's (limit %d s, "
			 "netreload-auth-window); sync both clocks (chrony, systemd-timesyncd)",
			 (long long)llabs(skew), skew > 0 ? "ahead of" : "behind", unr.auth_window);
		return -1;
	}
	while (auth_refusals[i].rc && auth_refusals[i].rc != rc)
		i++;
	return auth_refuse(rep, auth_refusals[i].code, auth_refusals[i].reason);
}

/* A reply as it goes out: signed, as protocol 2, when a secret is set and it
 * answers a verified request, which is what every reply with an id does (errors
 * about a request carry none); otherwise as protocol 1, which 0.1 clients read. */
static int reply_encode(const struct nr_reply *rep, char *buf, size_t len)
{
	struct nr_reply r;
	int n;

	if (!unr.secret || !rep->id[0])
		return nr_reply_format(rep, buf, len);
	r = *rep;
	r.version = 2;
	if (len > NR_LINE_MAX)
		len = NR_LINE_MAX;
	n = nr_reply_format(&r, buf, len - NR_REPLY_TAIL);
	return n < 0 ? n : nr_reply_sign(unr.secret, buf, (size_t)n - 1, len);
}

/* The answer to a hello: the id this start of the instance goes by. */
static void hello_reply(const struct nr_request *req, struct nr_reply *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->kind = NR_REPLY_HELLO;
	snprintf(rep->id, sizeof(rep->id), "%s", req->id);
	if (unr.nonces)
		snprintf(rep->sid, sizeof(rep->sid), "%s", unr.nonces->sid);
}

static void send_reply(struct nr_conn *c, const struct nr_reply *rep)
{
	char line[NR_LINE_MAX];

	nr_conn_send(c, line, reply_encode(rep, line, sizeof(line)));
}

static void udp_reply(const struct sockaddr_storage *addr, socklen_t alen, const struct nr_reply *rep)
{
	char line[NR_LINE_MAX];

	nr_udp_send(addr, alen, line, reply_encode(rep, line, sizeof(line)));
}

/* Whether UDP may answer this source before anything vouched for it: only a
 * loopback one, and only without a secret (with one, only a verified request
 * gets a reply). A spoofed source never makes us a reflector. */
static int udp_may_answer_stranger(const struct sockaddr_storage *ss)
{
	return !unr.secret && nr_is_loopback((const struct sockaddr *)ss);
}

/* The status; a stranger (no secret verified it, not on this machine) learns
 * neither the last exception text nor the master's pid. */
static void status_reply(struct nr_reply *rep, const struct nr_request *req, int local)
{
	nr_status_reply(nr_glue_snapshot(), rep);
	snprintf(rep->id, sizeof(rep->id), "%s", req->id);
	if (!unr.secret && !local) {
		rep->pid = 0;
		rep->reason[0] = '\0';
	}
}

static void error_reply(struct nr_reply *rep, int rc, const char *why)
{
	memset(rep, 0, sizeof(*rep));
	rep->kind = NR_REPLY_ERROR;
	snprintf(rep->code, sizeof(rep->code), "%s", rc == NR_EVERSION ? "version" : "bad-request");
	nr_reason_set(rep->reason, why);
}

static void accepted_reply(struct nr_reply *rep, const char *id, uint64_t gen, enum nr_mode mode)
{
	memset(rep, 0, sizeof(*rep));
	rep->kind = NR_REPLY_ACCEPTED;
	snprintf(rep->id, sizeof(rep->id), "%s", id);
	rep->gen = gen;
	rep->mode = mode == NR_MODE_DEFAULT ? unr.mode : mode;
}

/* Take a reload request: it rides on or asks for a generation, and is told which. */
static int conn_reload(struct nr_conn *c, const struct nr_request *req, const struct nr_file *files,
		       int n, uint64_t now)
{
	struct nr_reply rep;

	c->t0 = now;
	c->want_gen = nr_request_reload_files(nr_glue_snapshot(), req->mode, now, files, n, req->more);
	snprintf(c->id, sizeof(c->id), "%s", req->id);
	accepted_reply(&rep, req->id, c->want_gen, req->mode);
	send_reply(c, &rep);
	c->state = NR_CONN_WAITING;
	return req->wait;
}

static int conn_refuse(struct nr_conn *c, const char *code, const char *why)
{
	struct nr_reply rep;

	nr_complain("%s: %s", c->peer, why);
	error_reply(&rep, NR_EPARSE, why);
	snprintf(rep.code, sizeof(rep.code), "%s", code);
	send_reply(c, &rep);
	return 0;
}

/* The file lines after a request line, once all have come: check them against
 * the request's sum (which its signature covers), then take the request. */
static int conn_files(struct nr_conn *c, uint64_t now)
{
	static struct nr_file files[NR_FILES_MAX];
	char sum[NR_HASH_HEX + 1], err[128];
	size_t off = 0;
	uint32_t n = 0;

	while (n < c->req.files) {
		char *lf = memchr(c->files + off, '\n', c->flen - off);
		if (!lf)
			return c->flen < (size_t)c->req.files * NR_LINE_MAX ? 1
			       : conn_refuse(c, "bad-request", "file line longer than 512 bytes");
		if (nr_file_parse(c->files + off, (size_t)(lf - c->files - off) + 1, &files[n], err,
				  sizeof(err)))
			return conn_refuse(c, "bad-request", err);
		off = (size_t)(lf - c->files) + 1;
		n++;
	}
	nr_sha256_hex(c->files, off, sum);
	if (strcmp(sum, c->req.sum))
		return conn_refuse(c, "bad-request", "the file lines do not match sum=");
	free(c->files);
	c->files = NULL;
	return conn_reload(c, &c->req, files, (int)n, now);
}

/* A whole request line from a TCP client. Returns 1 if the connection stays open. */
static int conn_request(struct nr_conn *c, const char *line, size_t len, uint64_t now)
{
	struct nr_request req;
	struct nr_reply rep;
	char err[128];
	int rc = nr_request_parse(line, len, &req, err, sizeof(err));

	if (rc) {
		nr_complain("%s: %s", c->peer, err);
		error_reply(&rep, rc, err);
		send_reply(c, &rep);
		return 0;
	}
	rc = authorize(&req, line, len, &rep);
	if (rc) {
		if (rc == 1) { /* over TCP a nonce seen before is a replay, never a retry */
			error_reply(&rep, NR_EPARSE, "replayed request: nonce already used");
			snprintf(rep.code, sizeof(rep.code), "auth");
		}
		nr_complain("%s: %s", c->peer, rep.reason);
		send_reply(c, &rep);
		return 0;
	}
	if (req.verb == NR_VERB_HELLO) {
		hello_reply(&req, &rep);
		send_reply(c, &rep);
		return 0;
	}
	if (req.verb == NR_VERB_STATUS) {
		status_reply(&rep, &req, c->loopback);
		send_reply(c, &rep);
		return 0;
	}
	if (!nr_mode_loads_new_code(req.mode))
		return conn_refuse(c, "mode", NR_MODE_NEEDS_LAZY);
	if (req.files == 0)
		return conn_reload(c, &req, NULL, 0, now);
	/* the signature is good: only now is the room for its file lines worth taking */
	c->files = malloc((size_t)req.files * NR_LINE_MAX);
	if (!c->files)
		return conn_refuse(c, "busy", "out of memory for the file list");
	c->req = req;
	c->flen = c->len > len ? c->len - len : 0;
	memcpy(c->files, c->buf + len, c->flen);
	return conn_files(c, now);
}

/* Anything that can no longer become a versioned request is one plain ping. */
static void conn_legacy(struct nr_conn *c, uint64_t now)
{
	struct nr_reply rep;

	if (unr.secret) {
		nr_complain("%s: plain ping refused: a secret is configured", c->peer);
		error_reply(&rep, NR_EPARSE, "this server requires signed requests: use netreload "
					     "ping --secret-file FILE");
		snprintf(rep.code, sizeof(rep.code), "auth");
		send_reply(c, &rep);
		return;
	}
	accepted_reply(&rep, "", nr_request_reload(nr_glue_snapshot(), NR_MODE_DEFAULT, now), NR_MODE_DEFAULT);
	send_reply(c, &rep);
}

/* Decide what the bytes read so far are. Returns 1 if the connection stays open. */
static int conn_parse(struct nr_conn *c, uint64_t now)
{
	char *lf;

	if (nr_sniff(c->buf, c->len) == NR_ELEGACY) {
		conn_legacy(c, now);
		return 0;
	}
	lf = memchr(c->buf, '\n', c->len);
	if (lf)
		return conn_request(c, c->buf, (size_t)(lf - c->buf) + 1, now);
	if (c->len == sizeof(c->buf)) {
		struct nr_reply rep;
		nr_complain("%s: request line longer than %d bytes", c->peer, NR_LINE_MAX);
		error_reply(&rep, NR_EPARSE, "request line longer than 512 bytes");
		send_reply(c, &rep);
		return 0;
	}
	return 1;
}

/* Where the time went, from this waiter's request on (0: before it, or unknown). */
static void set_steps(struct nr_reply *rep, const struct nr_reload_times *t, uint64_t t0,
		      uint64_t now)
{
	rep->ms = nr_ms32(now, t0);
	rep->stop_ms = nr_ms32(t->stop, t0);
	rep->spawn_ms = nr_ms32(t->spawn, t0);
	rep->load_ms = nr_ms32(t->load, t0);
}

/* The clients that wait for generation tmpl->gen (or an earlier one) get its
 * end, timed to this moment; the UDP ids remember it as of end, the pass's clock. */
void nr_answer_waiters(const struct nr_reply *tmpl, const struct nr_reload_times *t, uint64_t end)
{
	uint64_t gen = tmpl->gen, now = nr_now_ms();
	struct nr_reply rep = *tmpl;
	const struct nr_udp_waiter *w;

	for (int i = 0; i < NR_MAX_CONNS; i++) {
		struct nr_conn *c = nr_server_conn(i);
		if (!c || c->state != NR_CONN_WAITING || c->want_gen > gen)
			continue;
		snprintf(rep.id, sizeof(rep.id), "%s", c->id);
		set_steps(&rep, t, c->t0, now);
		send_reply(c, &rep);
		nr_conn_close(c);
	}
	while ((w = nr_udp_waiter_take(gen))) {
		snprintf(rep.id, sizeof(rep.id), "%s", w->id);
		set_steps(&rep, t, w->t0, now);
		udp_reply(&w->addr, w->alen, &rep);
	}
	nr_recent_finish(gen, tmpl, t->stop, end);
}




/* A retry of a request we took: answer how it ended, or that it is still accepted. */
static void udp_retry(struct nr_recent *r, const struct nr_request *req,
		      const struct sockaddr_storage *ss, socklen_t alen)
{
	struct nr_reply rep;

	if (!r->kind) {
		accepted_reply(&rep, req->id, r->gen, req->mode);
		udp_reply(ss, alen, &rep);
		if (req->wait)
			nr_udp_waiter_add(ss, alen, req->id, r->gen, r->t0);
		return;
	}
	memset(&rep, 0, sizeof(rep));
	rep.kind = r->kind;
	snprintf(rep.id, sizeof(rep.id), "%s", req->id);
	rep.gen = r->gen;
	rep.ms = r->ms;
	rep.stop_ms = r->stop_ms;
	rep.killed = r->killed;
	snprintf(rep.old, sizeof(rep.old), "%s", r->old);
	if (r->kind == NR_REPLY_FAILED)
		nr_reason_set(rep.reason, nr_reload_last_reason());
	udp_reply(ss, alen, &rep);
}

/* A versioned UDP request. A repeated id is a retry: answer it, never reload twice. */
static void udp_request(const char *buf, size_t n, struct sockaddr_storage *ss, socklen_t alen,
			uint64_t now)
{
	struct nr_request req;
	struct nr_reply rep;
	struct nr_recent *seen;
	char err[128], peer[64];
	uint64_t gen;
	int quiet = 0;
	int rc = nr_request_parse(buf, n, &req, err, sizeof(err));

	if (rc) {
		nr_peer_name(ss, peer, sizeof(peer));
		nr_complain("%s (udp): %s", peer, err);
		error_reply(&rep, rc, err);
		if (udp_may_answer_stranger(ss))
			udp_reply(ss, alen, &rep);
		return;
	}
	rc = authorize(&req, buf, n, &rep);
	seen = req.verb == NR_VERB_RELOAD ? nr_recent_lookup(req.id) : NULL;
	if (rc < 0 || (rc == 1 && !seen)) {
		/* forged, skewed or replayed: no answer to an address nobody vouched
		 * for (over TCP, which cannot be spoofed, clock-skew is still said) */
		nr_peer_name(ss, peer, sizeof(peer));
		nr_complain("%s (udp): %s", peer, rc < 0 ? rep.reason : "replayed request");
		return;
	}
	/* past here a secret's MAC has verified, or there is no secret */
	if (!unr.secret && !nr_is_loopback((const struct sockaddr *)ss))
		quiet = 1;
	if (req.verb == NR_VERB_HELLO) {
		hello_reply(&req, &rep);
		if (!quiet)
			udp_reply(ss, alen, &rep);
		return;
	}
	if (req.verb == NR_VERB_STATUS) {
		status_reply(&rep, &req, 1);
		if (!quiet)
			udp_reply(ss, alen, &rep);
		return;
	}
	if (!nr_mode_loads_new_code(req.mode)) {
		error_reply(&rep, NR_EPARSE, NR_MODE_NEEDS_LAZY);
		snprintf(rep.code, sizeof(rep.code), "mode");
		snprintf(rep.id, sizeof(rep.id), "%s", req.id);
		if (!quiet)
			udp_reply(ss, alen, &rep);
		return;
	}
	if (seen) {
		/* a retry is answered only where the original came from */
		if (!quiet && nr_recent_from(seen, ss, alen))
			udp_retry(seen, &req, ss, alen);
		return;
	}
	gen = nr_request_reload(nr_glue_snapshot(), req.mode, now);
	if (req.id[0])
		nr_recent_add(req.id, gen, now, ss, alen);
	accepted_reply(&rep, req.id, gen, req.mode);
	if (quiet)
		return;
	udp_reply(ss, alen, &rep);
	if (req.wait)
		nr_udp_waiter_add(ss, alen, req.id, gen, now);
}


/* A datagram: a plain ping (no reply: a spoofed source must not turn us into
 * a reflector), or a versioned request. */
void nr_request_datagram(const char *buf, size_t n, struct sockaddr_storage *ss, socklen_t alen,
			 uint64_t now)
{
	if (n == 0 || nr_sniff(buf, n) == NR_ELEGACY) {
		if (unr.secret)
			nr_complain("plain UDP ping refused: a secret is configured");
		else
			nr_request_reload(nr_glue_snapshot(), NR_MODE_DEFAULT, now);
	} else
		udp_request(buf, n, ss, alen, now);
}

/* More bytes from a connection: its request line, or its file lines. Returns 1
 * if the connection stays open. */
int nr_request_input(struct nr_conn *c, uint64_t now)
{
	return c->files ? conn_files(c, now) : conn_parse(c, now);
}

/* The peer finished sending (or failed) before a whole request came. */
void nr_request_end(struct nr_conn *c, uint64_t now)
{
	if (c->files)
		conn_refuse(c, "bad-request", "connection ended inside the file list");
	else if (c->len > 0 && nr_sniff(c->buf, c->len) == NR_OK)
		conn_request(c, c->buf, c->len, now);
}

/* No room for another connection: say so before it is closed. */
void nr_request_busy(struct nr_conn *c)
{
	struct nr_reply rep;

	error_reply(&rep, NR_EPARSE, "server busy: too many clients waiting");
	snprintf(rep.code, sizeof(rep.code), "busy");
	send_reply(c, &rep);
}
