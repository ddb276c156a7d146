/*
 * nr_auth.c - HMAC-SHA256 request authentication with OpenSSL's libcrypto.
 */
#include "nr_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nr_proto.h"

static int from_hex(const char *in, size_t hexlen, unsigned char *out)
{
	for (size_t i = 0; i < hexlen / 2; i++) {
		int hi = nr_hex_digit(in[2 * i]), lo = nr_hex_digit(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int nr_secret_load(const char *path, struct nr_secret *s, int *loose, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*loose = 0;
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(err, errlen, "cannot read secret file %s: %s", path, strerror(errno));
		goto fail;
	}
	*loose = (st.st_mode & 077) != 0;
	n = read(fd, s->key, sizeof(s->key));
	if (n < 0) {
		snprintf(err, errlen, "cannot read secret file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (n == (ssize_t)sizeof(s->key)) {
		snprintf(err, errlen, "secret file %s is longer than %d bytes", path, NR_SECRET_MAX - 1);
		goto fail;
	}
	while (n > 0 && (s->key[n - 1] == '\n' || s->key[n - 1] == '\r' || s->key[n - 1] == ' ' ||
			 s->key[n - 1] == '\t'))
		n--;
	if (n == 0) {
		snprintf(err, errlen, "secret file %s is empty (put a long random string in it, e.g. "
				      "head -c 32 /dev/urandom | base64 > %s)",
			 path, path);
		goto fail;
	}
	s->len = (size_t)n;
	close(fd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	OPENSSL_cleanse(s->key, sizeof(s->key));
	s->len = 0;
	return -1;
}

void nr_hmac(const struct nr_secret *s, const void *data, size_t len, unsigned char *out)
{
	unsigned int outlen = NR_MAC_LEN;

	HMAC(EVP_sha256(), s->key, (int)s->len, data, len, out, &outlen);
}

int nr_nonce_new(char *nonce)
{
	unsigned char raw[NR_NONCE_HEX / 2];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	nr_hex_encode(raw, sizeof(raw), nonce);
	return 0;
}

int nr_auth_sign(const struct nr_secret *s, char *buf, size_t len, size_t bufsize, int64_t now,
		 const char *nonce)
{
	unsigned char mac[NR_MAC_LEN];
	char mac_hex[2 * NR_MAC_LEN + 1];
	int n;

	if (bufsize > NR_LINE_MAX)
		bufsize = NR_LINE_MAX;
	n = snprintf(buf + len, bufsize > len ? bufsize - len : 0, " ts=%" PRId64 " nonce=%s", now,
		     nonce);
	if (n < 0 || len + (size_t)n >= bufsize)
		return NR_ESPACE;
	len += (size_t)n;
	nr_hmac(s, buf, len, mac);
	nr_hex_encode(mac, sizeof(mac), mac_hex);
	n = snprintf(buf + len, bufsize - len, " mac=%s\n", mac_hex);
	if (n < 0 || len + (size_t)n >= bufsize)
		return NR_ESPACE;
	return (int)(len + (size_t)n);
}

/* The value of " key=" in line[0..len), copied into out; -1 if absent or too long. */
static int field(const char *line, size_t len, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i + klen + 2 <= len; i++) {
		if (line[i] != ' ' || memcmp(line + i + 1, key, klen) || line[i + 1 + klen] != '=')
			continue;
		const char *v = line + i + 2 + klen;
		size_t vlen = 0;
		while (v + vlen < line + len && v[vlen] != ' ')
			vlen++;
		if (vlen == 0 || vlen >= outlen)
			return -1;
		memcpy(out, v, vlen);
		out[vlen] = '\0';
		return 0;
	}
	return -1;
}

/* ts - now, or -INT64_MAX / INT64_MAX where that would overflow: a signed ts
 * or a handed-over one can be any int64, and llabs() of the result must be defined. */
static int64_t clock_diff(int64_t ts, int64_t now)
{
	if (now >= 0 && ts < now - INT64_MAX)
		return -INT64_MAX;
	if (now < 0 && ts > now + INT64_MAX)
		return INT64_MAX;
	return ts - now;
}

static int in_window(int64_t ts, int64_t now, int window)
{
	return llabs(clock_diff(ts, now)) <= window;
}

/* Remember a nonce; refuse one already seen within the window. */
static int nonce_check(struct nr_nonce_cache *c, const char *nonce, int64_t ts, int64_t now,
		       int window)
{
	int free_slot = -1;

	for (int i = 0; i < NR_NONCE_CACHE; i++) {
		int live = c->nonce[i][0] && in_window(c->ts[i], now, window);
		if (live && !strcmp(c->nonce[i], nonce))
			return NR_AUTH_REPLAY;
		if (!live && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return NR_AUTH_FULL;
	memcpy(c->nonce[free_slot], nonce, NR_NONCE_HEX + 1); /* checked: exactly that long */
	c->ts[free_slot] = ts;
	return NR_AUTH_OK;
}

/* NR_NONCE_HEX hex digits: what nr_nonce_load can read back after a re-exec. */
static int nonce_valid(const char *nonce)
{
	size_t n = strlen(nonce);

	if (n != NR_NONCE_HEX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (nr_hex_digit(nonce[i]) < 0)
			return 0;
	return 1;
}

static int check_mac(const struct nr_secret *s, const char *line, size_t len, size_t *signed_len)
{
	const char *m = NULL;
	unsigned char want[NR_MAC_LEN], got[NR_MAC_LEN];

	for (size_t i = 0; i + 5 <= len; i++)
		if (!memcmp(line + i, " mac=", 5))
			m = line + i;
	if (!m)
		return NR_AUTH_MISSING;
	if ((size_t)(line + len - (m + 5)) != 2 * NR_MAC_LEN || from_hex(m + 5, 2 * NR_MAC_LEN, got))
		return NR_AUTH_BAD;
	*signed_len = (size_t)(m - line);
	nr_hmac(s, line, *signed_len, want);
	return CRYPTO_memcmp(want, got, NR_MAC_LEN) ? NR_AUTH_BAD : NR_AUTH_OK;
}

int nr_auth_verify(const struct nr_secret *s, const char *line, size_t len, int64_t now,
		   int window, struct nr_nonce_cache *cache, int64_t *skew)
{
	char ts_text[24], nonce[NR_NONCE_HEX + 2];
	size_t signed_len = 0;
	char *end;
	long long ts;
	int rc;

	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	rc = check_mac(s, line, len, &signed_len);
	if (rc)
		return rc;
	if (field(line, signed_len, "ts", ts_text, sizeof(ts_text)) ||
	    field(line, signed_len, "nonce", nonce, sizeof(nonce)) || !nonce_valid(nonce))
		return NR_AUTH_BAD;
	errno = 0;
	ts = strtoll(ts_text, &end, 10);
	if (errno || *end)
		return NR_AUTH_BAD;
	*skew = clock_diff((int64_t)ts, now);
	if (llabs(*skew) > window)
		return NR_AUTH_SKEW;
	return nonce_check(cache, nonce, ts, now, window);
}

int nr_nonce_save(const struct nr_nonce_cache *c, int64_t now, int window, char *buf, size_t len)
{
	size_t off = 0;

	if (len == 0)
		return -1; /* no room even for the empty list */
	buf[0] = '\0';
	for (int i = 0; i < NR_NONCE_CACHE; i++) {
		if (!c->nonce[i][0] || !in_window(c->ts[i], now, window))
			continue;
		int n = snprintf(buf + off, len - off, "%s%s:%" PRId64, off ? " " : "", c->nonce[i],
				 c->ts[i]);
		if (n < 0 || (size_t)n >= len - off) {
			buf[off] = '\0';
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

void nr_nonce_load(struct nr_nonce_cache *c, const char *text)
{
	int i = 0;

	while (text && *text && i < NR_NONCE_CACHE) {
		char nonce[NR_NONCE_HEX + 1];
		long long ts;
		int used = 0;
		if (sscanf(text, "%16[0-9a-fA-F]:%lld%n", nonce, &ts, &used) != 2 || !used)
			return;
		snprintf(c->nonce[i], sizeof(c->nonce[i]), "%s", nonce);
		c->ts[i++] = (int64_t)ts;
		text += used;
		while (*text == ' ')
			text++;
	}
}
