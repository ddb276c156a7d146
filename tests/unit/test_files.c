/*
 * test_files.c - unit tests for the changed-file lists of PROTOCOL.md,
 * "Changed files": the golden vectors, file lines both ways, percent
 * encoding, rejects, the request fields files/more/sum and the reply field
 * stale, and the SHA-256 helpers. Ends with "N passed, N failed".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "../../common/nr_auth.h"
#include "../../common/nr_files.h"
#include "../../common/nr_proto.h"

/* SHA-256 of "x = 2\n" */
#define H_X2 "4205c4809ab1b080fd32b6bf9640e5feaa6d1b69bf9fa684954ab710157ec141"
#define LINE1 "F 6 1700000000.123456789 " H_X2 " views.py\n"
#define LINE2 "F - - - pkg/old.py\n"
/* SHA-256 of LINE1 LINE2 */
#define SUM12 "e9ffcc0c22709ab57690886e9058fffbcbe5dd2ee666bcae838eec672dfed49d"
#define REQ12 "NETRELOAD/1 reload id=a1 wait=1 files=2 more=3 sum=" SUM12
#define MAC12 "3c2d011658a489948c2a0a0c376fa47daeb94f0c1552eadf3896958fef80b650"
#define ENCODED "F 0 1700000000.000000000 - dir%20with%20space/caf%C3%A9%25.py\n"

static int fparse(const char *line, struct nr_file *f)
{
	char err[160];

	return nr_file_parse(line, strlen(line), f, err, sizeof(err));
}

/* Parse, format again, and get the same bytes back. */
static int round_trip(const char *line)
{
	struct nr_file f;
	char buf[NR_LINE_MAX];
	int n;

	if (fparse(line, &f) != NR_OK)
		return 0;
	n = nr_file_format(&f, buf, sizeof(buf));
	return n == (int)strlen(line) && !memcmp(buf, line, (size_t)n);
}

static void test_sha256(void)
{
	char hex[NR_HASH_HEX + 1];

	/* FIPS 180-2 examples */
	nr_sha256_hex("", 0, hex);
	CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	nr_sha256_hex("abc", 3, hex);
	CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	nr_sha256_hex("x = 2\n", 6, hex);
	CHECK(!strcmp(hex, H_X2));
	nr_sha256_hex(LINE1 LINE2, strlen(LINE1 LINE2), hex);
	CHECK(!strcmp(hex, SUM12));
}

static FILE *temp_with(const void *data, size_t len)
{
	FILE *fp = tmpfile();

	if (fp && (fwrite(data, 1, len, fp) != len || fflush(fp) || fseek(fp, 0, SEEK_SET))) {
		fclose(fp);
		return NULL;
	}
	return fp;
}

static const char *to_hex(const unsigned char *md, char *hex)
{
	for (int i = 0; i < NR_HASH_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return hex;
}

static void test_hash_fd(void)
{
	static char big[300 * 1024]; /* several read chunks */
	unsigned char md[NR_HASH_LEN];
	char hex[NR_HASH_HEX + 1], want[NR_HASH_HEX + 1];
	uint64_t n = 99;
	FILE *fp;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + i / 1000);
	fp = temp_with(big, sizeof(big));
	CHECK(fp != NULL);
	if (!fp)
		return;
	CHECK(nr_hash_fd(fileno(fp), NR_HASH_MAX, md, &n) == 0 && n == sizeof(big));
	nr_sha256_hex(big, sizeof(big), want);
	CHECK(!strcmp(to_hex(md, hex), want));
	/* exactly max bytes is fine, one more is EFBIG */
	CHECK(lseek(fileno(fp), 0, SEEK_SET) == 0);
	CHECK(nr_hash_fd(fileno(fp), sizeof(big), md, &n) == 0 && n == sizeof(big));
	CHECK(lseek(fileno(fp), 0, SEEK_SET) == 0);
	errno = 0;
	CHECK(nr_hash_fd(fileno(fp), sizeof(big) - 1, md, &n) == -1 && errno == EFBIG);
	CHECK(n <= sizeof(big) - 1);
	/* from the current offset */
	CHECK(lseek(fileno(fp), 1000, SEEK_SET) == 1000);
	CHECK(nr_hash_fd(fileno(fp), NR_HASH_MAX, md, &n) == 0 && n == sizeof(big) - 1000);
	nr_sha256_hex(big + 1000, sizeof(big) - 1000, want);
	CHECK(!strcmp(to_hex(md, hex), want));
	fclose(fp);
	/* a bad fd is -1 with errno from read() */
	errno = 0;
	CHECK(nr_hash_fd(-1, NR_HASH_MAX, md, &n) == -1 && errno == EBADF);
}

static void test_golden_lines(void)
{
	struct nr_file f;

	CHECK(fparse(LINE1, &f) == NR_OK);
	CHECK(!f.gone && f.size == 6 && f.mtime_sec == 1700000000 && f.mtime_nsec == 123456789 &&
	      f.has_hash && f.hash[0] == 0x42 && f.hash[31] == 0x41 && !strcmp(f.path, "views.py"));
	CHECK(round_trip(LINE1));
	CHECK(fparse(LINE2, &f) == NR_OK && f.gone && !strcmp(f.path, "pkg/old.py") && !f.has_hash &&
	      f.size == 0);
	CHECK(round_trip(LINE2));
	CHECK(fparse(ENCODED, &f) == NR_OK && !f.has_hash && f.size == 0);
	CHECK(!strcmp(f.path, "dir with space/caf\xc3\xa9%.py"));
	CHECK(round_trip(ENCODED));
	/* CR before LF, or no LF at all (end of stream) */
	CHECK(fparse("F - - - a\r\n", &f) == NR_OK && !strcmp(f.path, "a"));
	CHECK(fparse("F - - - a", &f) == NR_OK && !strcmp(f.path, "a"));
	/* the decoder takes lowercase escapes and needless ones; the encoder writes neither */
	CHECK(fparse("F - - - caf%c3%a9%2Fx", &f) == NR_OK && !strcmp(f.path, "caf\xc3\xa9/x"));
	CHECK(fparse("F - - - %41", &f) == NR_OK && !strcmp(f.path, "A"));
	/* numbers at their limits */
	CHECK(round_trip("F 18446744073709551615 9223372036854775807.999999999 - a\n"));
	CHECK(round_trip("F 0 0.000000000 - a\n"));
}

static void test_encoding(void)
{
	struct nr_file f = {.size = 1, .mtime_sec = 2, .mtime_nsec = 3};
	char buf[NR_LINE_MAX];

	strcpy(f.path, "a b/%/\x01\x7f\xff~!");
	CHECK(nr_file_format(&f, buf, sizeof(buf)) > 0);
	CHECK(!strcmp(buf, "F 1 2.000000003 - a%20b/%25/%01%7F%FF~!\n"));
	CHECK(round_trip(buf));
	f.has_hash = 1;
	memset(f.hash, 0xab, sizeof(f.hash));
	strcpy(f.path, "x");
	CHECK(nr_file_format(&f, buf, sizeof(buf)) > 0);
	CHECK(!strcmp(buf, "F 1 2.000000003 abababababababababababababababababababababababababababab"
			   "abababab x\n"));
	/* gone: only the path counts */
	f.gone = 1;
	CHECK(nr_file_format(&f, buf, sizeof(buf)) > 0 && !strcmp(buf, "F - - - x\n"));
}

static void test_format_errors(void)
{
	struct nr_file f = {.size = 1, .mtime_sec = 2};
	char buf[NR_LINE_MAX], tiny[12];

	CHECK(nr_file_format(&f, buf, sizeof(buf)) == NR_EPARSE); /* empty path */
	strcpy(f.path, "../x");
	CHECK(nr_file_format(&f, buf, sizeof(buf)) == NR_EPARSE);
	strcpy(f.path, "x");
	f.mtime_nsec = 1000000000;
	CHECK(nr_file_format(&f, buf, sizeof(buf)) == NR_EPARSE);
	f.mtime_nsec = 0;
	f.mtime_sec = -1;
	CHECK(nr_file_format(&f, buf, sizeof(buf)) == NR_EPARSE);
	f.mtime_sec = 2;
	CHECK(nr_file_format(&f, tiny, sizeof(tiny)) == NR_ESPACE);
	/* 400 spaces are a valid path but 1200 bytes encoded: too long for a line */
	memset(f.path, ' ', NR_FILE_PATH_MAX);
	f.path[NR_FILE_PATH_MAX] = '\0';
	CHECK(nr_rel_path_ok(f.path));
	CHECK(nr_file_format(&f, buf, sizeof(buf)) == NR_ESPACE);
	/* the longest plain path fits with a realistic size and mtime; a bigger buffer
	 * never makes a line longer than NR_LINE_MAX */
	static char huge[NR_LINE_MAX * 4];
	memset(f.path, 'p', NR_FILE_PATH_MAX);
	f.size = 123456;
	f.mtime_sec = 1700000000;
	f.has_hash = 1;
	CHECK(nr_file_format(&f, huge, sizeof(huge)) > 0 && strlen(huge) < NR_LINE_MAX);
	f.size = UINT64_MAX;
	f.mtime_sec = INT64_MAX;
	CHECK(nr_file_format(&f, huge, sizeof(huge)) == NR_ESPACE);
}

/* A line of exactly NR_LINE_MAX bytes with its LF decodes, and encodes again into
 * NR_LINE_MAX bytes (with no room for a NUL, none is written); so does one without
 * its LF (fuzzing found the encoder one byte short). */
static void test_longest_line(void)
{
	char line[NR_LINE_MAX + 1], buf[NR_LINE_MAX + 1];
	struct nr_file f;
	size_t off = (size_t)snprintf(line, sizeof(line), "F - - - ab");

	while (off < NR_LINE_MAX - 1) /* "%25" is '%', so the path stays short */
		off += (size_t)snprintf(line + off, sizeof(line) - off, "%%25");
	CHECK(off == NR_LINE_MAX - 1);
	line[off++] = '\n';
	line[off] = '\0';
	CHECK(nr_file_parse(line, NR_LINE_MAX, &f, NULL, 0) == NR_OK);
	CHECK(nr_file_format(&f, buf, sizeof(buf)) == NR_LINE_MAX && !strcmp(buf, line));
	memset(buf, 'x', sizeof(buf));
	CHECK(nr_file_format(&f, buf, NR_LINE_MAX) == NR_LINE_MAX);
	CHECK(!memcmp(buf, line, NR_LINE_MAX) && buf[NR_LINE_MAX] == 'x');
	CHECK(nr_file_format(&f, buf, NR_LINE_MAX - 1) == NR_ESPACE);
	CHECK(nr_file_parse(line, NR_LINE_MAX - 1, &f, NULL, 0) == NR_OK);
	CHECK(nr_file_format(&f, buf, sizeof(buf)) == NR_LINE_MAX && !strcmp(buf, line));
}

static void test_rel_path(void)
{
	char p[NR_FILE_PATH_MAX + 2];

	CHECK(nr_rel_path_ok("a"));
	CHECK(nr_rel_path_ok("a/b.py"));
	CHECK(nr_rel_path_ok(".hidden/..x/x../..."));
	CHECK(!nr_rel_path_ok(""));
	CHECK(!nr_rel_path_ok("/a"));
	CHECK(!nr_rel_path_ok("a/"));
	CHECK(!nr_rel_path_ok("a//b"));
	CHECK(!nr_rel_path_ok("."));
	CHECK(!nr_rel_path_ok(".."));
	CHECK(!nr_rel_path_ok("./a"));
	CHECK(!nr_rel_path_ok("a/./b"));
	CHECK(!nr_rel_path_ok("a/../b"));
	CHECK(!nr_rel_path_ok("a/.."));
	memset(p, 'a', sizeof(p));
	p[NR_FILE_PATH_MAX] = '\0';
	CHECK(nr_rel_path_ok(p));
	p[NR_FILE_PATH_MAX] = 'a';
	p[NR_FILE_PATH_MAX + 1] = '\0';
	CHECK(!nr_rel_path_ok(p));
}

static void test_rejects(void)
{
	static const char *bad[] = {
		"",
		"F",
		"F - - -",
		"F - - - ",
		"G - - - a",
		"F  - - - a",
		"F - - - a ",
		"F - - - a b",
		"F - - - ../x",
		"F - - - a/../x",
		"F - - - a//b",
		"F - - - /abs",
		"F - - - a/",
		"F - - - .",
		"F - - - a/./b",
		"F - - - %2E%2E/x", /* ".." however it is spelled */
		"F - - - %2Fabs",
		"F - - - a%00b",
		"F - - - a%0",
		"F - - - a%",
		"F - - - a%zz",
		"F - 1.000000000 - a", /* mixed '-' */
		"F 1 - - a",
		"F - - " H_X2 " a",
		"F - 1.000000000 " H_X2 " a",
		"F 1 1.5 - a", /* mtime needs exactly 9 digits after the dot */
		"F 1 1.0000000000 - a",
		"F 1 1 - a",
		"F 1 .000000000 - a",
		"F 1 x.000000000 - a",
		"F 1 -1.000000000 - a",
		"F 1 1.-00000000 - a",
		"F 1 9223372036854775808.000000000 - a",
		"F 18446744073709551616 1.000000000 - a",
		"F -1 1.000000000 - a",
		"F +1 1.000000000 - a",
		"F 1 1.000000000 4205C4809AB1B080FD32B6BF9640E5FEAA6D1B69BF9FA684954AB710157EC141 a",
		"F 1 1.000000000 4205c4809ab1b080fd32b6bf9640e5feaa6d1b69bf9fa684954ab710157ec14 a",
		"F 1 1.000000000 4205c4809ab1b080fd32b6bf9640e5feaa6d1b69bf9fa684954ab710157ec1411 a",
		"F 1 1.000000000 g205c4809ab1b080fd32b6bf9640e5feaa6d1b69bf9fa684954ab710157ec141 a",
		"F - - - a\tb",
		"F - - - a\x7f",
		"NETRELOAD/1 reload",
	};
	struct nr_file f;
	char err[160], line[NR_LINE_MAX + 8];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = fparse(bad[i], &f);
		CHECK(rc == NR_EPARSE);
		if (rc != NR_EPARSE)
			fprintf(stderr, "  accepted: '%s'\n", bad[i]);
	}
	/* a NUL byte in the raw line */
	CHECK(nr_file_parse("F - - - a\0b\n", 12, &f, err, sizeof(err)) == NR_EPARSE);
	/* a rejected line leaves nothing behind */
	CHECK(fparse("F 5 1.000000000 - ../x", &f) == NR_EPARSE && f.size == 0 && !f.path[0]);
	/* a decoded path of 401 bytes */
	memcpy(line, "F - - - ", 8);
	memset(line + 8, 'a', NR_FILE_PATH_MAX + 1);
	line[8 + NR_FILE_PATH_MAX + 1] = '\0';
	CHECK(fparse(line, &f) == NR_EPARSE);
	line[8 + NR_FILE_PATH_MAX] = '\0';
	CHECK(fparse(line, &f) == NR_OK && strlen(f.path) == NR_FILE_PATH_MAX);
	/* a line of 513 bytes with its LF */
	memset(line, 'a', sizeof(line));
	memcpy(line, "F - - - ", 8);
	line[NR_LINE_MAX] = '\n';
	CHECK(nr_file_parse(line, NR_LINE_MAX + 1, &f, err, sizeof(err)) == NR_EPARSE);
	CHECK(strstr(err, "longer") != NULL);
	/* no error buffer at all must be fine too */
	CHECK(nr_file_parse("x", 1, &f, NULL, 0) == NR_EPARSE);
}

static int rparse(const char *line, struct nr_request *r, char *err, size_t errlen)
{
	return nr_request_parse(line, strlen(line), r, err, errlen);
}

static void test_request_fields(void)
{
	struct nr_request r;
	char buf[NR_LINE_MAX], err[128];
	const char *golden = REQ12 "\n";

	CHECK(rparse(golden, &r, err, sizeof(err)) == NR_OK);
	CHECK(r.files == 2 && r.more == 3 && !strcmp(r.sum, SUM12) && !strcmp(r.id, "a1"));
	CHECK(nr_request_format(&r, buf, sizeof(buf)) > 0 && !strcmp(buf, golden));
	/* more alone, with files=0 or without files */
	CHECK(rparse("NETRELOAD/1 reload files=0 more=4294967295\n", &r, err, sizeof(err)) == NR_OK);
	CHECK(r.files == 0 && r.more == UINT32_MAX && !r.sum[0]);
	CHECK(nr_request_format(&r, buf, sizeof(buf)) > 0 &&
	      !strcmp(buf, "NETRELOAD/1 reload wait=1 more=4294967295\n"));
	CHECK(rparse("NETRELOAD/1 reload more=4294967296\n", &r, err, sizeof(err)) == NR_EPARSE);
	/* files without sum, too many, bad sums */
	CHECK(rparse("NETRELOAD/1 reload files=1\n", &r, err, sizeof(err)) == NR_EPARSE);
	CHECK(strstr(err, "sum") != NULL);
	CHECK(rparse("NETRELOAD/1 reload files=65 sum=" SUM12 "\n", &r, err, sizeof(err)) ==
	      NR_EPARSE);
	CHECK(strstr(err, "too many files") != NULL);
	CHECK(rparse("NETRELOAD/1 reload files=64 sum=" SUM12 "\n", &r, err, sizeof(err)) == NR_OK);
	CHECK(rparse("NETRELOAD/1 reload files=99999999999 sum=" SUM12 "\n", &r, err, sizeof(err)) ==
	      NR_EPARSE);
	CHECK(rparse("NETRELOAD/1 reload files=-1 sum=" SUM12 "\n", &r, err, sizeof(err)) == NR_EPARSE);
	CHECK(rparse("NETRELOAD/1 reload files=1 sum=E9FFCC0C22709AB57690886E9058FFFBCBE5DD2EE666BCAE"
		     "838EEC672DFED49D\n",
		     &r, err, sizeof(err)) == NR_EPARSE);
	CHECK(rparse("NETRELOAD/1 reload files=1 sum=abc\n", &r, err, sizeof(err)) == NR_EPARSE);
	CHECK(rparse("NETRELOAD/1 reload files=1 files=1 sum=" SUM12 "\n", &r, err, sizeof(err)) ==
	      NR_EPARSE);
	/* the formatter refuses what the parser would */
	memset(&r, 0, sizeof(r));
	r.verb = NR_VERB_RELOAD;
	r.files = 1;
	CHECK(nr_request_format(&r, buf, sizeof(buf)) == NR_EPARSE);
	strcpy(r.sum, SUM12);
	r.files = NR_FILES_MAX + 1;
	CHECK(nr_request_format(&r, buf, sizeof(buf)) == NR_EPARSE);
	r.files = 0;
	CHECK(nr_request_format(&r, buf, sizeof(buf)) > 0 &&
	      !strcmp(buf, "NETRELOAD/1 reload wait=0 sum=" SUM12 "\n"));
}

static void test_signed_vector(void)
{
	struct nr_secret s = {.len = 6};
	struct nr_nonce_cache *cache = calloc(1, sizeof(*cache));
	struct nr_request req;
	char buf[NR_LINE_MAX], err[128];
	int64_t skew;
	int n;

	memcpy(s.key, "s3cret", 6);
	strcpy(buf, REQ12);
	n = nr_auth_sign(&s, buf, strlen(buf), sizeof(buf), 1700000000, "0123456789abcdef", NULL);
	CHECK(n > 0 && !strcmp(buf, REQ12 " ts=1700000000 nonce=0123456789abcdef mac=" MAC12 "\n"));
	CHECK(rparse(buf, &req, err, sizeof(err)) == NR_OK);
	CHECK(cache &&
	      nr_auth_verify(&s, &req, buf, (size_t)n, 1700000000, 60, cache, &skew) == NR_AUTH_OK);
	/* another list is another sum, so the old MAC no longer fits */
	buf[strlen("NETRELOAD/1 reload id=a1 wait=1 files=2 more=3 sum=")] = 'f';
	CHECK(cache &&
	      nr_auth_verify(&s, &req, buf, (size_t)n, 1700000000, 60, cache, &skew) == NR_AUTH_BAD);
	/* the same list as protocol 2 signs it, for an instance (PROTOCOL.md's vector) */
	strcpy(buf, "NETRELOAD/2 reload id=0123456789abcdef wait=1 files=2 more=3 sum=" SUM12);
	n = nr_auth_sign(&s, buf, strlen(buf), sizeof(buf), 1700000000, "0123456789abcdef",
			 "00112233445566778899aabbccddeeff");
	CHECK(n > 0 && strstr(buf, " sid=00112233445566778899aabbccddeeff ts=1700000000 nonce="
				   "0123456789abcdef mac=9e44c3531e662c164961a47a60015cfb0729eda1de30"
				   "aaf61b413b417fe04fbb\n"));
	free(cache);
}

static void test_stale_reply(void)
{
	const char *failed = "NETRELOAD/1 failed gen=3 ms=10004 stop_ms=0 killed=1 stale=2 "
			     "reason=the share did not catch up\n";
	struct nr_reply rep;
	char buf[NR_LINE_MAX], err[128];

	CHECK(nr_reply_parse(failed, strlen(failed), &rep, err, sizeof(err)) == NR_OK);
	CHECK(rep.kind == NR_REPLY_FAILED && rep.stale == 2 && rep.killed == 1 &&
	      !strcmp(rep.reason, "the share did not catch up"));
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0 && !strcmp(buf, failed));
	rep.stale = 0;
	rep.killed = 0;
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0 &&
	      !strcmp(buf, "NETRELOAD/1 failed gen=3 ms=10004 stop_ms=0 "
			   "reason=the share did not catch up\n"));
	CHECK(nr_reply_parse("NETRELOAD/1 failed stale=x\n", 27, &rep, err, sizeof(err)) ==
	      NR_EPARSE);
}

int main(void)
{
	test_sha256();
	test_hash_fd();
	test_golden_lines();
	test_encoding();
	test_format_errors();
	test_longest_line();
	test_rel_path();
	test_rejects();
	test_request_fields();
	test_signed_vector();
	test_stale_reply();
	return check_summary();
}
