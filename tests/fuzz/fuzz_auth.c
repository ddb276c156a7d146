/*
 * fuzz_auth.c - libFuzzer target for what nr_auth_verify does after the MAC
 * check (the signed tail read from the end, clock window, what binds a
 * protocol 2 request: its id and the instance id, replay cache), for the
 * nonce list and instance id that cross a re-exec (nr_nonce_save /
 * nr_nonce_load), and for signed replies (nr_reply_sign / nr_reply_verify).
 *
 * A fuzzed line never carries a MAC made with the fuzz key, so the target
 * signs it: whatever follows its last " mac=" is replaced by the right MAC.
 * The server clock is the line's ts (or a fixed time) moved by up to two
 * windows, so requests fall both inside and outside the window; the replay
 * cache lives across runs, so replays happen too, and now and then it is
 * handed a full list of nonces so that it refuses requests as full. The same
 * bytes are also read as a saved nonce list, and as a reply. The caches
 * belong to instance FUZZ_SID, which the seeds name. Besides crashes and
 * sanitizer reports it checks these properties:
 *   - a request accepted once is a replay the second time;
 *   - a request refused for its binding (another instance, an id that is not
 *     its nonce) left no nonce behind: it is refused the same way again;
 *   - a nonce accepted before a re-exec is a replay after it (save, load),
 *     and the instance id comes through;
 *   - saving what a load read gives text that loads and saves to itself;
 *   - a reply signed verifies, exactly over its bytes, and a signed request
 *     never verifies as a reply.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/nr_auth.h"

#define BASE_NOW 1700000000
/* A plausible server clock, even moved by two of the widest windows (86400 s). */
#define MIN_CLOCK (2 * 86400)
#define MAX_CLOCK ((int64_t)1 << 40)
#define SAVE_MAX (NR_NONCE_CACHE * 40) /* what the plugin hands over */

#define FUZZ_SID "00112233445566778899aabbccddeeff"

static const struct nr_secret secret = {.key = "fuzz", .len = 4};
static struct nr_nonce_cache seen; /* across runs: replays and a full cache */
static struct nr_nonce_cache fresh, back;

/* FNV-1a of the input: picks the clock, the window and the save buffer size. */
static uint32_t hash(const uint8_t *d, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 16777619u;
	return h;
}

/* The input up to its last " mac=" (or without its line ending if it has
 * none), then " mac=" and the MAC of those bytes under the fuzz key. */
static char *sign(const char *in, size_t n, size_t *len)
{
	static const char hexdigits[] = "0123456789abcdef";
	unsigned char mac[NR_MAC_LEN];
	size_t body = n;
	char *line;

	for (size_t i = 0; i + 5 <= n; i++)
		if (!memcmp(in + i, " mac=", 5))
			body = i;
	while (body == n && n > 0 && (in[n - 1] == '\n' || in[n - 1] == '\r'))
		body = --n;
	line = malloc(body + 5 + 2 * NR_MAC_LEN);
	if (!line)
		abort();
	memcpy(line, in, body);
	nr_hmac(&secret, line, body, mac);
	memcpy(line + body, " mac=", 5);
	for (size_t i = 0; i < NR_MAC_LEN; i++) {
		line[body + 5 + 2 * i] = hexdigits[mac[i] >> 4];
		line[body + 5 + 2 * i + 1] = hexdigits[mac[i] & 15];
	}
	*len = body + 5 + 2 * NR_MAC_LEN;
	return line;
}

/* The line's ts if it has a plausible one, else BASE_NOW. */
static int64_t line_clock(const char *line, size_t len)
{
	char text[32];
	const char *p = memmem(line, len, " ts=", 4);
	size_t n;
	char *end;
	long long ts;

	if (!p)
		return BASE_NOW;
	p += 4;
	n = (size_t)(line + len - p);
	if (n >= sizeof(text))
		n = sizeof(text) - 1;
	memcpy(text, p, n);
	text[n] = '\0';
	errno = 0;
	ts = strtoll(text, &end, 10);
	return errno || end == text || ts < MIN_CLOCK || ts > MAX_CLOCK ? BASE_NOW : (int64_t)ts;
}

/* Hand the persistent cache a full list of nonces live at now, as a busy
 * master would across a re-exec; left alone, the cache never fills up. */
static void fill(int64_t now)
{
	static char text[SAVE_MAX];
	size_t off = 0;

	for (int i = 0; i < NR_NONCE_CACHE; i++) {
		int n = snprintf(text + off, sizeof(text) - off, "%016x:%lld ", i, (long long)now);
		if (n < 0 || (size_t)n >= sizeof(text) - off)
			abort();
		off += (size_t)n;
	}
	nr_nonce_load(&seen, text);
}

/* The line as the server decodes it; one that does not decode is checked as
 * a protocol 2 reload without id, so the binding is exercised all the same. */
static void decode(const char *line, size_t len, struct nr_request *req)
{
	char err[128];

	if (nr_request_parse(line, len, req, err, sizeof(err)) != NR_OK)
		*req = (struct nr_request){.version = 2, .verb = NR_VERB_RELOAD};
}

/* An empty cache of instance FUZZ_SID, as after a cold start. */
static void cold(struct nr_nonce_cache *c)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->sid, FUZZ_SID, sizeof(c->sid));
}

/* A signed line, checked against the cache that persists and against a
 * fresh one that is then handed over as across a re-exec. */
static void verify(const char *line, size_t len, int64_t now, int window)
{
	char *text = malloc(SAVE_MAX);
	struct nr_request req;
	int64_t skew;
	int rc;

	if (!text)
		abort();
	decode(line, len, &req);
	rc = nr_auth_verify(&secret, &req, line, len, now, window, &seen, &skew);
	if (rc == NR_AUTH_OK &&
	    nr_auth_verify(&secret, &req, line, len, now, window, &seen, &skew) != NR_AUTH_REPLAY)
		abort();
	if ((rc == NR_AUTH_INSTANCE || rc == NR_AUTH_UNBOUND) &&
	    nr_auth_verify(&secret, &req, line, len, now, window, &seen, &skew) != rc)
		abort();
	cold(&fresh);
	if (nr_auth_verify(&secret, &req, line, len, now, window, &fresh, &skew) == NR_AUTH_OK) {
		if (nr_nonce_save(&fresh, now, window, text, SAVE_MAX))
			abort();
		memset(&back, 0, sizeof(back));
		nr_nonce_load(&back, text);
		if (strcmp(back.sid, FUZZ_SID) ||
		    nr_auth_verify(&secret, &req, line, len, now, window, &back, &skew) != NR_AUTH_REPLAY)
			abort();
	}
	free(text);
}

/* The input as a reply: checked (anything goes), then signed, which must verify
 * over exactly its bytes; the signed request line must not pass for a reply. */
static void reply(const uint8_t *data, size_t n, const char *request, size_t request_len)
{
	char buf[NR_LINE_MAX];
	size_t body;
	int len;

	(void)nr_reply_verify(&secret, (const char *)data, n, &body);
	if (body > n)
		abort();
	if (nr_reply_verify(&secret, request, request_len, &body) == NR_AUTH_OK)
		abort();
	if (n >= sizeof(buf) || memchr(data, '\n', n) || memchr(data, '\r', n))
		return;
	memcpy(buf, data, n);
	len = nr_reply_sign(&secret, buf, n, sizeof(buf));
	if (len < 0)
		return;
	if (nr_reply_verify(&secret, buf, (size_t)len, &body) != NR_AUTH_OK || body != n ||
	    memcmp(buf, data, n))
		abort();
}

/* size bytes that end where their allocation ends, so that ASan sees a write
 * past them even when size is 0 (it gives malloc(0) a byte). */
static char *end_buffer(size_t size)
{
	char *p = malloc(size + 1);

	if (!p)
		abort();
	return p + 1;
}

/* The input as a saved nonce list: load, save into size bytes, load that
 * into an empty cache and save again; the two saves must agree. */
static void nonce_text(const uint8_t *data, size_t n, int64_t now, int window, size_t size)
{
	char *in = end_buffer(n + 1), *one = end_buffer(size), *two = end_buffer(size);

	memcpy(in, data, n);
	in[n] = '\0';
	memset(&fresh, 0, sizeof(fresh));
	nr_nonce_load(&fresh, in);
	if (fresh.sid[0] && !nr_sid_valid(fresh.sid))
		abort();
	nr_nonce_save(&fresh, now, window, one, size);
	/* 0 bytes cannot even hold the empty list: of those, only no overflow is asked */
	if (size > 0) {
		memset(&back, 0, sizeof(back));
		nr_nonce_load(&back, one);
		if (nr_nonce_save(&back, now, window, two, size) || strcmp(one, two))
			abort();
	}
	free(in - 1);
	free(one - 1);
	free(two - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t h = hash(data, size);
	int window = h & 3 ? NR_AUTH_WINDOW : 1 + (int)((h >> 2) % 86400);
	int64_t delta = (int64_t)((h >> 20) % (4 * (uint32_t)window + 1)) - 2 * window;
	size_t len, room = (h >> 4) & 3 ? SAVE_MAX : (h >> 6) % 64;
	char *line = sign((const char *)data, size, &len);
	int64_t now = ((h >> 8) & 1 ? BASE_NOW : line_clock(line, len)) + delta;

	if (((h >> 12) & 31) == 0)
		fill(now);
	if (!seen.sid[0])
		memcpy(seen.sid, FUZZ_SID, sizeof(seen.sid));
	verify(line, len, now, window);
	nonce_text(data, size, now, window, room);
	reply(data, size, line, len);
	free(line);
	return 0;
}
