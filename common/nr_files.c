/*
 * nr_files.c - encoder and decoder of the file lines that follow a reload
 * request, and the SHA-256 helpers both sides hash contents with.
 *
 * The decoder works on a bounded copy of the line, takes only printable
 * ASCII, checks every number for overflow and every decoded path against
 * nr_rel_path_ok(); see PROTOCOL.md, "Changed files".
 */
#include "nr_files.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NSEC_DIGITS 9
#define READ_CHUNK (64 * 1024)

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return NR_EPARSE;
}

void nr_sha256_hex(const void *data, size_t len, char out[NR_HASH_HEX + 1])
{
	unsigned char md[NR_HASH_LEN];
	unsigned int mdlen = sizeof(md);

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	nr_hex_encode(md, sizeof(md), out);
}

/* read() that retries on EINTR. */
static ssize_t read_some(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

/* Feed fd to ctx until EOF; -1 with errno on a read error or past max bytes. */
static int hash_loop(EVP_MD_CTX *ctx, int fd, uint64_t max, uint64_t *nread)
{
	unsigned char buf[READ_CHUNK];

	for (;;) {
		uint64_t room = max - *nread;
		/* with no room left, one more byte says whether the file goes on */
		size_t want = room == 0 ? 1 : room < sizeof(buf) ? (size_t)room : sizeof(buf);
		ssize_t n = read_some(fd, buf, want);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (room == 0) {
			errno = EFBIG;
			return -1;
		}
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n)) {
			errno = ENOMEM;
			return -1;
		}
		*nread += (uint64_t)n;
	}
}

int nr_hash_fd(int fd, uint64_t max, unsigned char out[NR_HASH_LEN], uint64_t *nread)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int mdlen = NR_HASH_LEN;
	int rc = -1, saved;

	*nread = 0;
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		errno = ENOMEM;
		goto fail;
	}
	if (hash_loop(ctx, fd, max, nread))
		goto fail;
	if (!EVP_DigestFinal_ex(ctx, out, &mdlen)) {
		errno = ENOMEM;
		goto fail;
	}
	rc = 0;
fail:
	saved = errno;
	EVP_MD_CTX_free(ctx);
	errno = saved;
	return rc;
}

int nr_rel_path_ok(const char *rel)
{
	size_t n = strlen(rel);
	const char *p = rel;

	if (n == 0 || n > NR_FILE_PATH_MAX || rel[0] == '/')
		return 0;
	for (;;) {
		size_t c = strcspn(p, "/");
		if (c == 0 || (c == 1 && p[0] == '.') || (c == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		if (!p[c])
			return 1;
		p += c + 1;
	}
}

/* A path byte goes on the wire as is only if it is printable, not a space, not '%'. */
static int plain_byte(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '%';
}

static int encode_path(const char *path, char *buf, size_t len, size_t *off)
{
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		int rc = plain_byte(*p) ? nr_append(buf, len, off, "%c", *p)
					: nr_append(buf, len, off, "%%%02X", *p);
		if (rc)
			return rc;
	}
	return NR_OK;
}

static int format_fields(const struct nr_file *f, char *buf, size_t len, size_t *off)
{
	char hash[NR_HASH_HEX + 1] = "-";

	if (f->gone)
		return nr_append(buf, len, off, "F - - - ");
	if (f->mtime_sec < 0 || f->mtime_nsec > 999999999u)
		return NR_EPARSE;
	if (f->has_hash)
		nr_hex_encode(f->hash, NR_HASH_LEN, hash);
	return nr_append(buf, len, off, "F %" PRIu64 " %" PRId64 ".%0*" PRIu32 " %s ", f->size,
			 f->mtime_sec, NSEC_DIGITS, f->mtime_nsec, hash);
}

int nr_file_format(const struct nr_file *f, char *buf, size_t len)
{
	char line[NR_LINE_MAX + 1]; /* the longest line, and snprintf's NUL after it */
	size_t off = 0;
	int rc;

	if (!memchr(f->path, '\0', sizeof(f->path)) || !nr_rel_path_ok(f->path))
		return NR_EPARSE;
	rc = format_fields(f, line, sizeof(line), &off);
	if (!rc)
		rc = encode_path(f->path, line, sizeof(line), &off);
	if (!rc)
		rc = nr_append(line, sizeof(line), &off, "\n");
	if (rc)
		return rc;
	if (off > len)
		return NR_ESPACE;
	memcpy(buf, line, off);
	if (off < len)
		buf[off] = '\0';
	return (int)off;
}

/* ---- decoding ---------------------------------------------------------- */

static int parse_mtime(const char *s, struct nr_file *f)
{
	const char *dot = strchr(s, '.');
	char sec[24];
	uint64_t v, ns;

	if (!dot || (size_t)(dot - s) >= sizeof(sec) || strlen(dot + 1) != NSEC_DIGITS)
		return -1;
	memcpy(sec, s, (size_t)(dot - s));
	sec[dot - s] = '\0';
	if (nr_parse_u64(sec, INT64_MAX, &v) || nr_parse_u64(dot + 1, 999999999u, &ns))
		return -1;
	f->mtime_sec = (int64_t)v;
	f->mtime_nsec = (uint32_t)ns;
	return 0;
}

static int parse_hash(const char *s, struct nr_file *f)
{
	if (!strcmp(s, "-"))
		return 0;
	if (strlen(s) != NR_HASH_HEX || strspn(s, "0123456789abcdef") != NR_HASH_HEX)
		return -1; /* lowercase only, as the encoder writes it */
	for (int i = 0; i < NR_HASH_LEN; i++)
		f->hash[i] = (unsigned char)(nr_hex_digit(s[2 * i]) << 4 | nr_hex_digit(s[2 * i + 1]));
	f->has_hash = 1;
	return 0;
}

/* %XX-decode s into f->path; then the result must be a valid relative path. */
static int decode_path(const char *s, struct nr_file *f, char *err, size_t errlen)
{
	size_t j = 0;

	for (size_t i = 0; s[i]; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			int hi = nr_hex_digit(s[i + 1]), lo = hi < 0 ? -1 : nr_hex_digit(s[i + 2]);
			if (hi < 0 || lo < 0)
				return fail(err, errlen, "bad %%-escape in path at byte %zu", i);
			c = hi << 4 | lo;
			i += 2;
		}
		if (c == 0)
			return fail(err, errlen, "path contains NUL");
		if (j == NR_FILE_PATH_MAX)
			return fail(err, errlen, "path longer than %d bytes", NR_FILE_PATH_MAX);
		f->path[j++] = (char)c;
	}
	f->path[j] = '\0';
	if (!nr_rel_path_ok(f->path))
		return fail(err, errlen, "path '%.60s' is not relative to the root (empty, leading /, "
					 "empty, . or .. component)",
			    s);
	return NR_OK;
}

/* size, mtime and hash: all '-' (deleted), or a size and an mtime (the hash may be '-'). */
static int parse_state(char **w, struct nr_file *f, char *err, size_t errlen)
{
	int dash_size = !strcmp(w[0], "-"), dash_mtime = !strcmp(w[1], "-");

	if (dash_size || dash_mtime) {
		if (!dash_size || !dash_mtime || strcmp(w[2], "-"))
			return fail(err, errlen, "a deleted file has '-' for size, mtime and hash");
		f->gone = 1;
		return NR_OK;
	}
	if (nr_parse_u64(w[0], UINT64_MAX, &f->size))
		return fail(err, errlen, "bad size '%.30s'", w[0]);
	if (parse_mtime(w[1], f))
		return fail(err, errlen, "bad mtime '%.40s' (expected SEC.NNNNNNNNN)", w[1]);
	if (parse_hash(w[2], f))
		return fail(err, errlen, "bad hash '%.70s' (expected 64 lowercase hex or -)", w[2]);
	return NR_OK;
}

/* Cut buf at single spaces into exactly n words. */
static int split_words(char *buf, char **w, int n)
{
	for (int i = 0; i < n; i++) {
		w[i] = buf;
		buf += strcspn(buf, " ");
		if (buf == w[i])
			return -1; /* empty word: two spaces, or one at either end */
		if (i < n - 1) {
			if (*buf != ' ')
				return -1;
			*buf++ = '\0';
		}
	}
	return *buf ? -1 : 0;
}

int nr_file_parse(const char *line, size_t len, struct nr_file *f, char *err, size_t errlen)
{
	char buf[NR_LINE_MAX + 1], *w[5];

	memset(f, 0, sizeof(*f));
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len + 1 > NR_LINE_MAX)
		return fail(err, errlen, "file line longer than %d bytes", NR_LINE_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c >= 0x7f)
			return fail(err, errlen, "byte 0x%02x at offset %zu", c, i);
	}
	memcpy(buf, line, len);
	buf[len] = '\0';
	if (split_words(buf, w, 5) || strcmp(w[0], "F"))
		return fail(err, errlen, "not a file line: expected 'F SIZE MTIME HASH PATH'");
	if (parse_state(w + 1, f, err, errlen) || decode_path(w[4], f, err, errlen)) {
		memset(f, 0, sizeof(*f));
		return NR_EPARSE;
	}
	return NR_OK;
}
