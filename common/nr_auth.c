/*
 * nr_auth.c - HMAC-SHA256 request authentication with OpenSSL's libcrypto.
 *
 * Nonces and ids come from the kernel (getentropy()), not RAND_bytes(): the
 * first RAND_bytes() reads openssl.cnf and seeds OpenSSL's generator, which
 * took ~3 ms of every `netreload ping` that has no secret (no HMAC at all).
 */
#include "nr_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
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

static const char *nr_file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "directory";
	if (S_ISFIFO(m))
		return "FIFO";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "device";
	if (S_ISSOCK(m))
		return "socket";
	return "special file";
}

int nr_secret_load(const char *path, struct nr_secret *s, int *loose, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	/* non-blocking: opening a FIFO would otherwise wait for a writer forever */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	*loose = 0;
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(err, errlen, "cannot read secret file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "secret file %s is a %s, not a regular file (put the secret in "
				      "a plain file, e.g. head -c 32 /dev/urandom | base64 > FILE)",
			 path, nr_file_kind(st.st_mode));
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

/* n random bytes as 2n hex chars and a NUL. 0, or -1 if no randomness. */
static int random_hex(char *out, size_t n)
{
	unsigned char raw[NR_SID_HEX / 2];

	if (n > sizeof(raw) || getentropy(raw, n) != 0)
		return -1;
	nr_hex_encode(raw, n, out);
	return 0;
}

int nr_nonce_new(char *nonce)
{
	return random_hex(nonce, NR_NONCE_HEX / 2);
}

int nr_sid_new(char *sid)
{
	return random_hex(sid, NR_SID_HEX / 2);
}

/* " mac=HEX\n" after buf[0..len); returns the new length or NR_ESPACE. */
static int append_mac(char *buf, size_t len, size_t bufsize, const unsigned char *mac)
{
	char mac_hex[2 * NR_MAC_LEN + 1];
	size_t off = len;

	nr_hex_encode(mac, NR_MAC_LEN, mac_hex);
	if (nr_append(buf, bufsize, &off, " mac=%s\n", mac_hex))
		return NR_ESPACE;
	return (int)off;
}

int nr_auth_sign(const struct nr_secret *s, char *buf, size_t len, size_t bufsize, int64_t now,
		 const char *nonce, const char *sid)
{
	unsigned char mac[NR_MAC_LEN];
	size_t off = len;

	if (bufsize > NR_LINE_MAX)
		bufsize = NR_LINE_MAX;
	if ((sid && nr_append(buf, bufsize, &off, " sid=%s", sid)) ||
	    nr_append(buf, bufsize, &off, " ts=%" PRId64 " nonce=%s", now, nonce))
		return NR_ESPACE;
	nr_hmac(s, buf, off, mac);
	return append_mac(buf, off, bufsize, mac);
}

/* A reply's MAC: over "reply " and its bytes, so that no signed request can
 * pass for a signed reply, nor the other way round. */
static int reply_mac(const struct nr_secret *s, const char *body, size_t len, unsigned char *out)
{
	static const char prefix[] = "reply ";
	char in[sizeof(prefix) - 1 + NR_LINE_MAX];

	if (len > NR_LINE_MAX)
		return -1;
	memcpy(in, prefix, sizeof(prefix) - 1);
	memcpy(in + sizeof(prefix) - 1, body, len);
	nr_hmac(s, in, sizeof(prefix) - 1 + len, out);
	return 0;
}

int nr_reply_sign(const struct nr_secret *s, char *buf, size_t len, size_t bufsize)
{
	unsigned char mac[NR_MAC_LEN];

	if (bufsize > NR_LINE_MAX)
		bufsize = NR_LINE_MAX;
	if (reply_mac(s, buf, len, mac))
		return NR_ESPACE;
	return append_mac(buf, len, bufsize, mac);
}

/* The last " key=VALUE" of line[0..*len): VALUE copied into out, and *len cut
 * before it. -1 if the line does not end with that key, or the value is empty
 * or too long. */
static int last_field(const char *line, size_t *len, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key), i = *len, vlen;

	while (i > 0 && line[i - 1] != ' ')
		i--;
	if (i == 0 || *len - i <= klen || memcmp(line + i, key, klen) || line[i + klen] != '=')
		return -1;
	vlen = *len - i - klen - 1;
	if (vlen == 0 || vlen >= outlen)
		return -1;
	memcpy(out, line + i + klen + 1, vlen);
	out[vlen] = '\0';
	*len = i - 1;
	return 0;
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

/* The last " mac=" of line[0..len) and the 64 hex digits that must end the line:
 * NR_AUTH_OK with *signed_len the bytes before it, NR_AUTH_MISSING, or NR_AUTH_BAD. */
static int find_mac(const char *line, size_t len, unsigned char *got, size_t *signed_len)
{
	const char *m = NULL;

	for (size_t i = 0; i + 5 <= len; i++)
		if (!memcmp(line + i, " mac=", 5))
			m = line + i;
	if (!m)
		return NR_AUTH_MISSING;
	if ((size_t)(line + len - (m + 5)) != 2 * NR_MAC_LEN || from_hex(m + 5, 2 * NR_MAC_LEN, got))
		return NR_AUTH_BAD;
	*signed_len = (size_t)(m - line);
	return NR_AUTH_OK;
}

static size_t without_line_end(const char *line, size_t len)
{
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	return len;
}

static int check_mac(const struct nr_secret *s, const char *line, size_t len, size_t *signed_len)
{
	unsigned char want[NR_MAC_LEN], got[NR_MAC_LEN];
	int rc = find_mac(line, len, got, signed_len);

	if (rc)
		return rc;
	nr_hmac(s, line, *signed_len, want);
	return CRYPTO_memcmp(want, got, NR_MAC_LEN) ? NR_AUTH_BAD : NR_AUTH_OK;
}

int nr_reply_verify(const struct nr_secret *s, const char *line, size_t len, size_t *body)
{
	unsigned char want[NR_MAC_LEN], got[NR_MAC_LEN];
	int rc;

	len = without_line_end(line, len);
	*body = len;
	rc = find_mac(line, len, got, body);
	if (rc)
		return rc;
	if (reply_mac(s, line, *body, want) || CRYPTO_memcmp(want, got, NR_MAC_LEN)) {
		*body = len;
		return NR_AUTH_BAD;
	}
	return NR_AUTH_OK;
}

/* What a signed request's signed bytes end with: " [sid=SID ]ts=TS nonce=NONCE". */
struct auth_tail {
	int64_t ts;
	char nonce[NR_NONCE_HEX + 1];
	char sid[NR_SID_HEX + 1]; /* "" when it names none */
};

static int read_tail(const char *line, size_t len, struct auth_tail *t)
{
	char ts_text[24];
	char *end;
	long long ts;

	if (last_field(line, &len, "nonce", t->nonce, sizeof(t->nonce)) || !nonce_valid(t->nonce) ||
	    last_field(line, &len, "ts", ts_text, sizeof(ts_text)))
		return -1;
	if (last_field(line, &len, "sid", t->sid, sizeof(t->sid)) == 0 && !nr_sid_valid(t->sid))
		return -1;
	errno = 0;
	ts = strtoll(ts_text, &end, 10);
	if (errno || *end)
		return -1;
	t->ts = (int64_t)ts;
	return 0;
}

/* Protocol 2 binds a request to its replies (its id is its nonce, which they
 * echo) and to one start of one instance (it names the sid a hello gave). */
static int check_binding(const struct nr_request *req, const struct auth_tail *t,
			 const struct nr_nonce_cache *cache)
{
	if (req->version < 2)
		return NR_AUTH_OK;
	if (strcmp(req->id, t->nonce))
		return NR_AUTH_UNBOUND;
	if (req->verb != NR_VERB_HELLO && (!cache->sid[0] || strcmp(t->sid, cache->sid)))
		return NR_AUTH_INSTANCE;
	return NR_AUTH_OK;
}

int nr_auth_verify(const struct nr_secret *s, const struct nr_request *req, const char *line,
		   size_t len, int64_t now, int window, struct nr_nonce_cache *cache, int64_t *skew)
{
	struct auth_tail t = {0};
	size_t signed_len = 0;
	int rc = check_mac(s, line, without_line_end(line, len), &signed_len);

	if (rc)
		return rc;
	if (read_tail(line, signed_len, &t))
		return NR_AUTH_BAD;
	*skew = clock_diff(t.ts, now);
	if (llabs(*skew) > window)
		return NR_AUTH_SKEW;
	rc = check_binding(req, &t, cache);
	return rc ? rc : nonce_check(cache, t.nonce, t.ts, now, window);
}

int nr_nonce_save(const struct nr_nonce_cache *c, int64_t now, int window, char *buf, size_t len)
{
	size_t off = 0;

	if (len == 0)
		return -1; /* no room even for the empty list */
	buf[0] = '\0';
	if (c->sid[0] && nr_append(buf, len, &off, "sid=%s", c->sid)) {
		buf[0] = '\0';
		return -1;
	}
	for (int i = 0; i < NR_NONCE_CACHE; i++) {
		if (!c->nonce[i][0] || !in_window(c->ts[i], now, window))
			continue;
		if (nr_append(buf, len, &off, "%s%s:%" PRId64, off ? " " : "", c->nonce[i], c->ts[i])) {
			buf[off] = '\0';
			return -1;
		}
	}
	return 0;
}

/* "sid=SID " at the start of text: into c->sid; returns where the nonces start,
 * or NULL if the sid is malformed. */
static const char *load_sid(struct nr_nonce_cache *c, const char *text)
{
	char sid[NR_SID_HEX + 2];
	int used = 0;

	if (strncmp(text, "sid=", 4))
		return text;
	if (sscanf(text, "sid=%33[0-9a-f]%n", sid, &used) != 1 || !nr_sid_valid(sid) ||
	    (text[used] && text[used] != ' '))
		return NULL;
	memcpy(c->sid, sid, sizeof(c->sid));
	text += used;
	while (*text == ' ')
		text++;
	return text;
}

void nr_nonce_load(struct nr_nonce_cache *c, const char *text)
{
	int i = 0;

	if (text)
		text = load_sid(c, text);
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
