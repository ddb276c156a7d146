/*
 * fuzz_auth.c - libFuzzer target for what nr_auth_verify does after the MAC
 * check (clock window, nonce field, replay cache) and for the nonce list
 * that crosses a re-exec (nr_nonce_save / nr_nonce_load).
 *
 * A fuzzed line never carries a MAC made with the fuzz key, so the target
 * signs it: whatever follows its last " mac=" is replaced by the right MAC.
 * The server clock is the line's ts (or a fixed time) moved by up to two
 * windows, so requests fall both inside and outside the window; the replay
 * cache lives across runs, so replays happen too, and now and then it is
 * handed a full list of nonces so that it refuses requests as full. The same
 * bytes are also read as a saved nonce list. Besides crashes and sanitizer
 * reports it checks three properties:
 *   - a request accepted once is a replay the second time;
 *   - a nonce accepted before a re-exec is a replay after it (save, load);
 *   - saving what a load read gives text that loads and saves to itself.
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

/* A signed line, checked against the cache that persists and against a
 * fresh one that is then handed over as across a re-exec. */
static void verify(const char *line, size_t len, int64_t now, int window)
{
	char *text = malloc(SAVE_MAX);
	int64_t skew;
	int rc;

	if (!text)
		abort();
	rc = nr_auth_verify(&secret, line, len, now, window, &seen, &skew);
	if (rc == NR_AUTH_OK &&
	    nr_auth_verify(&secret, line, len, now, window, &seen, &skew) != NR_AUTH_REPLAY)
		abort();
	memset(&fresh, 0, sizeof(fresh));
	if (nr_auth_verify(&secret, line, len, now, window, &fresh, &skew) == NR_AUTH_OK) {
		if (nr_nonce_save(&fresh, now, window, text, SAVE_MAX))
			abort();
		memset(&back, 0, sizeof(back));
		nr_nonce_load(&back, text);
		if (nr_auth_verify(&secret, line, len, now, window, &back, &skew) != NR_AUTH_REPLAY)
			abort();
	}
	free(text);
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
	verify(line, len, now, window);
	nonce_text(data, size, now, window, room);
	free(line);
	return 0;
}
