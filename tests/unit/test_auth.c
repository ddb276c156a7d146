/*
 * test_auth.c - HMAC-SHA256 against RFC 4231, and signed-request checks:
 * golden vectors (protocol 1 and 2, hello, signed replies), forgery, skew,
 * replay, binding to the instance and to the replies, malformed fields, the
 * nonce hand-over, secret files. Ends with "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "../../common/nr_auth.h"
#include "../../common/nr_proto.h"


static void hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
}

static int rfc4231(const unsigned char *key, size_t klen, const void *data, size_t dlen,
		   const char *want)
{
	struct nr_secret s;
	unsigned char mac[NR_MAC_LEN];
	char got[2 * NR_MAC_LEN + 1];

	memcpy(s.key, key, klen);
	s.len = klen;
	nr_hmac(&s, data, dlen, mac);
	hex(mac, sizeof(mac), got);
	return !strcmp(got, want);
}

static void test_rfc4231(void)
{
	unsigned char k[131], d[50];

	memset(k, 0x0b, 20);
	CHECK(rfc4231(k, 20, "Hi There", 8,
		      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
	CHECK(rfc4231((const unsigned char *)"Jefe", 4, "what do ya want for nothing?", 28,
		      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
	memset(k, 0xaa, 20);
	memset(d, 0xdd, 50);
	CHECK(rfc4231(k, 20, d, 50,
		      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"));
	for (int i = 0; i < 25; i++)
		k[i] = (unsigned char)(i + 1);
	memset(d, 0xcd, 50);
	CHECK(rfc4231(k, 25, d, 50,
		      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"));
	memset(k, 0xaa, 131);
	CHECK(rfc4231(k, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54,
		      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
	const char *t7 = "This is a test using a larger than block-size key and a larger than "
			 "block-size data. The key needs to be hashed before being used by the "
			 "HMAC algorithm.";
	CHECK(rfc4231(k, 131, t7, strlen(t7),
		      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"));
}

static struct nr_secret secret(const char *text)
{
	struct nr_secret s;

	s.len = strlen(text);
	memcpy(s.key, text, s.len);
	return s;
}

static void test_sign_golden(void)
{
	struct nr_secret s = secret("s3cret");
	char buf[NR_LINE_MAX] = "NETRELOAD/1 reload id=a1 wait=1";
	const char *want = "NETRELOAD/1 reload id=a1 wait=1 ts=1700000000 nonce=0123456789abcdef "
			   "mac=1056c407f26ada37180ffc7206fdd61d7706e078eee9863406efcc3eddd82cba\n";
	int n = nr_auth_sign(&s, buf, strlen(buf), sizeof(buf), 1700000000, "0123456789abcdef", NULL);

	CHECK(n == (int)strlen(want) && !strcmp(buf, want));
	/* a signed line is still a valid request for the plain decoder */
	struct nr_request req;
	char err[128];
	CHECK(nr_request_parse(buf, (size_t)n, &req, err, sizeof(err)) == NR_OK &&
	      !strcmp(req.id, "a1"));
}

/* As the server does: decode the line, then check it (a line that does not
 * decode is checked as a protocol 1 reload, which binds nothing). */
static int verify(const struct nr_secret *s, const char *line, int64_t now,
		  struct nr_nonce_cache *c, int64_t *skew)
{
	struct nr_request req = {.version = 1, .verb = NR_VERB_RELOAD};
	char err[128];

	if (nr_request_parse(line, strlen(line), &req, err, sizeof(err)) != NR_OK)
		req = (struct nr_request){.version = 1, .verb = NR_VERB_RELOAD};
	return nr_auth_verify(s, &req, line, strlen(line), now, NR_AUTH_WINDOW, c, skew);
}

/* Replace what follows the " mac=" that line ends with by the MAC of what precedes it. */
static void sign_body(const struct nr_secret *s, char *line)
{
	unsigned char mac[NR_MAC_LEN];
	size_t body = strlen(line) - 5;

	nr_hmac(s, line, body, mac);
	hex(mac, sizeof(mac), line + body + 5);
}

static void test_verify(void)
{
	static struct nr_nonce_cache cache;
	struct nr_secret s = secret("s3cret"), other = secret("s3creT");
	char line[NR_LINE_MAX] = "NETRELOAD/1 reload id=a1 wait=1", forged[NR_LINE_MAX];
	int64_t skew = 0, now = 1700000000;

	nr_auth_sign(&s, line, strlen(line), sizeof(line), now, "0123456789abcdef", NULL);
	CHECK(verify(&other, line, now, &cache, &skew) == NR_AUTH_BAD);
	CHECK(verify(&s, line, now + 61, &cache, &skew) == NR_AUTH_SKEW && skew == -61);
	CHECK(verify(&s, line, now - 90, &cache, &skew) == NR_AUTH_SKEW && skew == 90);
	CHECK(verify(&s, line, now + 5, &cache, &skew) == NR_AUTH_OK);
	CHECK(verify(&s, line, now + 6, &cache, &skew) == NR_AUTH_REPLAY);
	/* after the window the nonce slot may be reused, but the old ts is then out of window */
	CHECK(verify(&s, line, now + 200, &cache, &skew) == NR_AUTH_SKEW);

	strcpy(forged, line);
	forged[22] = 'b'; /* id=b1: same MAC, changed body */
	CHECK(verify(&s, forged, now, &cache, &skew) == NR_AUTH_BAD);
	strcpy(forged, line);
	forged[strlen(forged) - 2] ^= 1; /* flip one MAC digit */
	CHECK(verify(&s, forged, now, &cache, &skew) == NR_AUTH_BAD);
	CHECK(verify(&s, "NETRELOAD/1 reload id=a1\n", now, &cache, &skew) == NR_AUTH_MISSING);
	CHECK(verify(&s, "NETRELOAD/1 reload mac=zz\n", now, &cache, &skew) == NR_AUTH_BAD);

	/* a validly signed line without ts or nonce is refused */
	char nots[NR_LINE_MAX] = "NETRELOAD/1 reload id=x";
	unsigned char mac[NR_MAC_LEN];
	char mhex[2 * NR_MAC_LEN + 1];
	nr_hmac(&s, nots, strlen(nots), mac);
	hex(mac, sizeof(mac), mhex);
	strcat(nots, " mac=");
	strcat(nots, mhex);
	CHECK(verify(&s, nots, now, &cache, &skew) == NR_AUTH_BAD);
}

static void test_cache_full(void)
{
	static struct nr_nonce_cache cache;
	struct nr_secret s = secret("k");
	int64_t skew, now = 1000;
	int ok = 1;
	char line[NR_LINE_MAX], nonce[NR_NONCE_HEX + 1];

	for (int i = 0; i < NR_NONCE_CACHE; i++) {
		snprintf(nonce, sizeof(nonce), "%016x", i);
		strcpy(line, "NETRELOAD/1 reload");
		nr_auth_sign(&s, line, strlen(line), sizeof(line), now, nonce, NULL);
		ok &= verify(&s, line, now, &cache, &skew) == NR_AUTH_OK;
	}
	CHECK(ok);
	strcpy(line, "NETRELOAD/1 reload");
	nr_auth_sign(&s, line, strlen(line), sizeof(line), now, "ffffffffffffffff", NULL);
	CHECK(verify(&s, line, now, &cache, &skew) == NR_AUTH_FULL);
	/* once the window has passed, old entries make room again */
	strcpy(line, "NETRELOAD/1 reload");
	nr_auth_sign(&s, line, strlen(line), sizeof(line), now + 100, "ffffffffffffffff", NULL);
	CHECK(verify(&s, line, now + 100, &cache, &skew) == NR_AUTH_OK);
}

static void test_nonce_persist(void)
{
	static struct nr_nonce_cache a, b;
	struct nr_secret s = secret("k");
	char line[NR_LINE_MAX] = "NETRELOAD/1 reload", text[NR_NONCE_CACHE * 40];
	int64_t skew;

	nr_auth_sign(&s, line, strlen(line), sizeof(line), 5000, "00000000000000ab", NULL);
	CHECK(verify(&s, line, 5000, &a, &skew) == NR_AUTH_OK);
	CHECK(nr_nonce_save(&a, 5001, NR_AUTH_WINDOW, text, sizeof(text)) == 0);
	CHECK(!strcmp(text, "00000000000000ab:5000"));
	nr_nonce_load(&b, text);
	CHECK(verify(&s, line, 5002, &b, &skew) == NR_AUTH_REPLAY);
	CHECK(nr_nonce_save(&a, 5001, NR_AUTH_WINDOW, text, 4) == -1 && text[0] == 0);
	strcpy(text, "untouched");
	CHECK(nr_nonce_save(&a, 5001, NR_AUTH_WINDOW, text, 0) == -1 && text[0] == 'u');
	nr_nonce_load(&b, "garbage");
}

/* Only a nonce that nr_nonce_load can read back is accepted: any other would be
 * forgotten by a re-exec, and its request could then be replayed (found by fuzz_auth). */
static void test_nonce_hex(void)
{
	static struct nr_nonce_cache a, b;
	struct nr_secret s = secret("k");
	char line[NR_LINE_MAX], text[NR_NONCE_CACHE * 40];
	int64_t skew;

	strcpy(line, "NETRELOAD/1 reload");
	nr_auth_sign(&s, line, strlen(line), sizeof(line), 5000, "0123456789abcdeg", NULL);
	CHECK(verify(&s, line, 5000, &a, &skew) == NR_AUTH_BAD);
	strcpy(line, "NETRELOAD/1 reload");
	nr_auth_sign(&s, line, strlen(line), sizeof(line), 5000, "0123456789abcde:", NULL);
	CHECK(verify(&s, line, 5000, &a, &skew) == NR_AUTH_BAD);
	strcpy(line, "NETRELOAD/1 reload");
	nr_auth_sign(&s, line, strlen(line), sizeof(line), 5000, "0123456789ABCDEF", NULL);
	CHECK(verify(&s, line, 5000, &a, &skew) == NR_AUTH_OK);
	CHECK(nr_nonce_save(&a, 5000, NR_AUTH_WINDOW, text, sizeof(text)) == 0);
	nr_nonce_load(&b, text);
	CHECK(verify(&s, line, 5000, &b, &skew) == NR_AUTH_REPLAY);
}

/* A ts at the ends of int64, signed or handed over, is far outside the window, on the
 * right side, without signed overflow (UBSan in fuzz_auth found both). */
static void test_clock_extremes(void)
{
	static struct nr_nonce_cache a;
	struct nr_secret s = secret("k");
	char line[NR_LINE_MAX], text[NR_NONCE_CACHE * 40];
	int64_t skew = 0, now = 1700000000;

	strcpy(line, "NETRELOAD/1 reload ts=-9223372036854775808 nonce=0123456789abcdef mac=");
	sign_body(&s, line);
	CHECK(verify(&s, line, now, &a, &skew) == NR_AUTH_SKEW && skew == -INT64_MAX);
	strcpy(line, "NETRELOAD/1 reload ts=9223372036854775807 nonce=0123456789abcdef mac=");
	sign_body(&s, line);
	CHECK(verify(&s, line, -now, &a, &skew) == NR_AUTH_SKEW && skew == INT64_MAX);
	nr_nonce_load(&a, "0123456789abcdef:-9223372036854775808 00000000000000ab:1700000000");
	CHECK(nr_nonce_save(&a, now, NR_AUTH_WINDOW, text, sizeof(text)) == 0);
	CHECK(!strcmp(text, "00000000000000ab:1700000000"));
}

static void test_secret_files(void)
{
	char path[] = "/tmp/nr-secret-XXXXXX", err[256];
	struct nr_secret s;
	int loose, fd = mkstemp(path);

	CHECK(fd >= 0);
	CHECK(write(fd, "hunter2\n", 8) == 8);
	close(fd);
	chmod(path, 0600);
	CHECK(nr_secret_load(path, &s, &loose, err, sizeof(err)) == 0 && s.len == 7 && !loose &&
	      !memcmp(s.key, "hunter2", 7));
	chmod(path, 0644);
	CHECK(nr_secret_load(path, &s, &loose, err, sizeof(err)) == 0 && loose);
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(write(fd, " \n", 2) == 2);
	close(fd);
	CHECK(nr_secret_load(path, &s, &loose, err, sizeof(err)) == -1 && strstr(err, "empty"));
	unlink(path);
	CHECK(nr_secret_load(path, &s, &loose, err, sizeof(err)) == -1 &&
	      strstr(err, "cannot read"));
	/* a FIFO would block open() until a writer came: refused at once */
	CHECK(mkfifo(path, 0600) == 0);
	CHECK(nr_secret_load(path, &s, &loose, err, sizeof(err)) == -1 && strstr(err, "is a FIFO"));
	unlink(path);
	CHECK(nr_secret_load("/tmp", &s, &loose, err, sizeof(err)) == -1 &&
	      strstr(err, "is a directory"));
	CHECK(nr_secret_load("/dev/null", &s, &loose, err, sizeof(err)) == -1 &&
	      strstr(err, "is a device"));
}

#define SID "00112233445566778899aabbccddeeff"

/* PROTOCOL.md's vectors for protocol 2 (secret s3cret), computed there with Python. */
static void test_sign_golden_v2(void)
{
	struct nr_secret s = secret("s3cret");
	char buf[NR_LINE_MAX];
	int n;

	strcpy(buf, "NETRELOAD/2 hello id=0123456789abcdef");
	n = nr_auth_sign(&s, buf, strlen(buf), sizeof(buf), 1700000000, "0123456789abcdef", NULL);
	CHECK(n > 0 && !strcmp(buf, "NETRELOAD/2 hello id=0123456789abcdef ts=1700000000 "
				    "nonce=0123456789abcdef mac=78b8ba62f52df49a2af13cb2de108507fde1dd8a"
				    "2b204888b89736c08295cd85\n"));
	strcpy(buf, "NETRELOAD/2 reload id=fedcba9876543210 wait=1");
	n = nr_auth_sign(&s, buf, strlen(buf), sizeof(buf), 1700000000, "fedcba9876543210", SID);
	CHECK(n > 0 && !strcmp(buf, "NETRELOAD/2 reload id=fedcba9876543210 wait=1 sid=" SID
				    " ts=1700000000 nonce=fedcba9876543210 mac=6a66bb02a0cc6090f8ec35d0"
				    "90d5cc5d5fdca2a45bd89624cd3f661bdcc9ee49\n"));
	strcpy(buf, "NETRELOAD/2 hello id=0123456789abcdef sid=" SID);
	n = nr_reply_sign(&s, buf, strlen(buf), sizeof(buf));
	CHECK(n > 0 && !strcmp(buf, "NETRELOAD/2 hello id=0123456789abcdef sid=" SID " mac=10a23856"
				    "3d2b3d0f61717cc4a82355091fefe0453d156a498c72b673fd6d68cc\n"));
	strcpy(buf, "NETRELOAD/2 live id=fedcba9876543210 gen=7 ms=48 stop_ms=20");
	n = nr_reply_sign(&s, buf, strlen(buf), sizeof(buf));
	CHECK(n > 0 && !strcmp(buf, "NETRELOAD/2 live id=fedcba9876543210 gen=7 ms=48 stop_ms=20 "
				    "mac=aed4c55e77a74a40937368bb2034b378d978f3622ed1741ff353c508998e"
				    "ddcb\n"));
	strcpy(buf, "NETRELOAD/2 failed id=fedcba9876543210 gen=8 ms=90 stop_ms=0 reason=app failed "
		    "to load: x y");
	n = nr_reply_sign(&s, buf, strlen(buf), sizeof(buf));
	CHECK(n > 0 && strstr(buf, " reason=app failed to load: x y mac=ecace501924e1128cd42a6630"
				   "bc677f2ec37a385a5b53dd756dcc76417f92e69\n"));
	/* no room for the MAC: an error, never a cut signature */
	CHECK(nr_reply_sign(&s, buf, strlen(buf) - 1, strlen(buf) + 10) == NR_ESPACE);
}

/* A signed protocol 2 request as the client makes it: its nonce is its id. */
static void sign_v2(const struct nr_secret *s, char *line, const char *verb, const char *nonce,
		    const char *sid, int64_t now)
{
	snprintf(line, NR_LINE_MAX, "NETRELOAD/2 %s id=%s", verb, nonce);
	nr_auth_sign(s, line, strlen(line), NR_LINE_MAX, now, nonce, sid);
}

/* Bound to one start of one instance, and to its replies through its id. */
static void test_binding(void)
{
	static struct nr_nonce_cache a, b;
	struct nr_secret s = secret("k");
	char line[NR_LINE_MAX];
	int64_t skew, now = 1700000000;

	strcpy(a.sid, SID);
	strcpy(b.sid, "ffeeddccbbaa99887766554433221100");
	sign_v2(&s, line, "reload", "00000000000000a1", SID, now);
	CHECK(verify(&s, line, now, &b, &skew) == NR_AUTH_INSTANCE); /* another instance */
	CHECK(verify(&s, line, now, &a, &skew) == NR_AUTH_OK);
	CHECK(verify(&s, line, now, &a, &skew) == NR_AUTH_REPLAY);
	/* refused elsewhere, it was not remembered there: b refuses it the same way again */
	CHECK(verify(&s, line, now, &b, &skew) == NR_AUTH_INSTANCE);
	sign_v2(&s, line, "status", "00000000000000a2", NULL, now); /* names none */
	CHECK(verify(&s, line, now, &a, &skew) == NR_AUTH_INSTANCE);
	sign_v2(&s, line, "hello", "00000000000000a3", NULL, now); /* a hello needs none */
	CHECK(verify(&s, line, now, &b, &skew) == NR_AUTH_OK);
	CHECK(verify(&s, line, now, &b, &skew) == NR_AUTH_REPLAY);
	/* the id must be the nonce: replies echo the id */
	strcpy(line, "NETRELOAD/2 reload id=a1");
	nr_auth_sign(&s, line, strlen(line), sizeof(line), now, "00000000000000a4", SID);
	CHECK(verify(&s, line, now, &a, &skew) == NR_AUTH_UNBOUND);
	strcpy(line, "NETRELOAD/2 reload");
	nr_auth_sign(&s, line, strlen(line), sizeof(line), now, "00000000000000a5", SID);
	CHECK(verify(&s, line, now, &a, &skew) == NR_AUTH_UNBOUND);
	/* the tail is read from the end, exactly as signed */
	strcpy(line, "NETRELOAD/2 reload id=00000000000000a6 sid=" SID " ts=1700000000 "
		     "nonce=00000000000000a6 x=1 mac=");
	sign_body(&s, line);
	CHECK(verify(&s, line, now, &a, &skew) == NR_AUTH_BAD);
	strcpy(line, "NETRELOAD/2 reload id=00000000000000a7 sid=0011 ts=1700000000 "
		     "nonce=00000000000000a7 mac=");
	sign_body(&s, line);
	CHECK(verify(&s, line, now, &a, &skew) == NR_AUTH_BAD);
	/* a clock-skewed one is refused before what binds it */
	sign_v2(&s, line, "reload", "00000000000000a8", SID, now - 3600);
	CHECK(verify(&s, line, now, &b, &skew) == NR_AUTH_SKEW);
}

/* A reply verifies only with its secret, over exactly its bytes, and no signed
 * request (the same key, no "reply " in front) passes for one. */
static void test_reply_verify(void)
{
	struct nr_secret s = secret("s3cret"), other = secret("s3creT");
	char line[NR_LINE_MAX], forged[NR_LINE_MAX];
	size_t body;

	strcpy(line, "NETRELOAD/2 accepted id=fedcba9876543210 gen=7 mode=graceful");
	nr_reply_sign(&s, line, strlen(line), sizeof(line));
	CHECK(!strcmp(line, "NETRELOAD/2 accepted id=fedcba9876543210 gen=7 mode=graceful mac=1ab0"
			    "46185c73f080474da41cec1edb0bb982c711c23721a32b549400510421e9\n"));
	CHECK(nr_reply_verify(&s, line, strlen(line), &body) == NR_AUTH_OK &&
	      body == strlen("NETRELOAD/2 accepted id=fedcba9876543210 gen=7 mode=graceful"));
	CHECK(nr_reply_verify(&other, line, strlen(line), &body) == NR_AUTH_BAD);
	strcpy(forged, line);
	forged[24] = '0'; /* another id, same MAC */
	CHECK(nr_reply_verify(&s, forged, strlen(forged), &body) == NR_AUTH_BAD &&
	      body == strlen(forged) - 1);
	strcpy(forged, "NETRELOAD/1 accepted id=fedcba9876543210 gen=7 mode=graceful\n");
	CHECK(nr_reply_verify(&s, forged, strlen(forged), &body) == NR_AUTH_MISSING &&
	      body == strlen(forged) - 1);
	/* a signed status request sent back as a status reply */
	sign_v2(&s, line, "status", "89abcdef01234567", SID, 1700000000);
	CHECK(!strcmp(line, "NETRELOAD/2 status id=89abcdef01234567 sid=" SID " ts=1700000000 "
			    "nonce=89abcdef01234567 mac=ed09465959fc4d9f511422ae8fef49141b5cf8fd3d3c"
			    "91ac474e560ddcf87b5b\n"));
	CHECK(nr_reply_verify(&s, line, strlen(line), &body) == NR_AUTH_BAD);
	CHECK(nr_reply_verify(&s, "NETRELOAD/2 live mac=zz\n", 24, &body) == NR_AUTH_BAD);
}

static void test_sid_persist(void)
{
	static struct nr_nonce_cache a, b, c;
	struct nr_secret s = secret("k");
	char line[NR_LINE_MAX], text[NR_NONCE_CACHE * 40];
	int64_t skew;

	strcpy(a.sid, SID);
	sign_v2(&s, line, "reload", "00000000000000ab", SID, 5000);
	CHECK(verify(&s, line, 5000, &a, &skew) == NR_AUTH_OK);
	CHECK(nr_nonce_save(&a, 5001, NR_AUTH_WINDOW, text, sizeof(text)) == 0);
	CHECK(!strcmp(text, "sid=" SID " 00000000000000ab:5000"));
	nr_nonce_load(&b, text);
	CHECK(!strcmp(b.sid, SID) && verify(&s, line, 5002, &b, &skew) == NR_AUTH_REPLAY);
	/* too small for the sid: nothing, so the next master makes a new one */
	CHECK(nr_nonce_save(&a, 5001, NR_AUTH_WINDOW, text, 20) == -1 && text[0] == 0);
	/* a text from 0.1 (no sid), or with a malformed one */
	nr_nonce_load(&c, "00000000000000ab:5000");
	CHECK(c.sid[0] == 0 && verify(&s, line, 5002, &c, &skew) == NR_AUTH_INSTANCE);
	memset(&c, 0, sizeof(c));
	nr_nonce_load(&c, "sid=0011 00000000000000ab:5000");
	CHECK(c.sid[0] == 0 && c.nonce[0][0] == 0);
	nr_nonce_load(&c, "sid=" SID "0 00000000000000ab:5000");
	CHECK(c.sid[0] == 0 && c.nonce[0][0] == 0);
}

static void test_nonce(void)
{
	char a[NR_NONCE_HEX + 1], b[NR_NONCE_HEX + 1];

	char sa[NR_SID_HEX + 1], sb[NR_SID_HEX + 1];

	CHECK(nr_nonce_new(a) == 0 && nr_nonce_new(b) == 0);
	CHECK(strlen(a) == NR_NONCE_HEX && strcmp(a, b));
	CHECK(nr_sid_new(sa) == 0 && nr_sid_new(sb) == 0);
	CHECK(nr_sid_valid(sa) && nr_sid_valid(sb) && strcmp(sa, sb));
}

int main(void)
{
	test_rfc4231();
	test_sign_golden();
	test_sign_golden_v2();
	test_verify();
	test_binding();
	test_reply_verify();
	test_sid_persist();
	test_cache_full();
	test_nonce_persist();
	test_nonce_hex();
	test_clock_extremes();
	test_secret_files();
	test_nonce();
	return check_summary();
}
