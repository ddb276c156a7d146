/*
 * test_proto.c - unit tests for the wire protocol: the golden vectors of
 * PROTOCOL.md, round trips, and hostile input. Ends with "N passed, N failed".
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "../../common/nr_proto.h"


static int parse(const char *line, struct nr_request *req)
{
	char err[128];

	return nr_request_parse(line, strlen(line), req, err, sizeof(err));
}

static void test_request_vectors(void)
{
	struct nr_request r;

	CHECK(parse("NETRELOAD/1 reload id=a1 mode=workers wait=0\n", &r) == NR_OK);
	CHECK(r.verb == NR_VERB_RELOAD && !strcmp(r.id, "a1") && r.mode == NR_MODE_WORKERS &&
	      r.wait == 0);
	CHECK(parse("NETRELOAD/1 reload\r\n", &r) == NR_OK);
	CHECK(r.verb == NR_VERB_RELOAD && r.id[0] == 0 && r.mode == NR_MODE_DEFAULT && r.wait == 1);
	CHECK(parse("NETRELOAD/1 status id=x", &r) == NR_OK);
	CHECK(r.verb == NR_VERB_STATUS && !strcmp(r.id, "x"));
	CHECK(parse("NETRELOAD/1 reload future=1 id=b\n", &r) == NR_OK && !strcmp(r.id, "b"));
	CHECK(parse("NETRELOAD/1   reload   mode=brutal-workers  \n", &r) == NR_OK &&
	      r.mode == NR_MODE_BRUTAL_WORKERS);
	CHECK(parse("NETRELOAD/2 reload\n", &r) == NR_OK && r.version == 2);
	CHECK(parse("NETRELOAD/1 reload\n", &r) == NR_OK && r.version == 1);
	CHECK(parse("NETRELOAD/3 reload\n", &r) == NR_EVERSION);
	CHECK(parse("NETRELOAD/0 reload\n", &r) == NR_EVERSION);
	CHECK(parse("NETRELOAD/2 hello id=0123456789abcdef ts=1 nonce=0123456789abcdef mac=00\n", &r) ==
		      NR_OK &&
	      r.verb == NR_VERB_HELLO && !strcmp(r.id, "0123456789abcdef"));
	CHECK(parse("NETRELOAD/1 hello\n", &r) == NR_EPARSE); /* hello came with protocol 2 */
	CHECK(parse("NETRELOAD/01 reload\n", &r) == NR_OK);
	CHECK(parse("NETRELOAD/99999 reload\n", &r) == NR_EVERSION);
	CHECK(parse("NETRELOAD/1 reload mode=fast\n", &r) == NR_EPARSE);
	CHECK(parse("NETRELOAD/1 reload id=a id=b\n", &r) == NR_EPARSE);
	CHECK(parse("NETRELOAD/1 reload wait=2\n", &r) == NR_EPARSE);
	CHECK(parse("NETRELOAD/1 explode\n", &r) == NR_EPARSE);
	CHECK(parse("NETRELOAD/1\n", &r) == NR_EPARSE);
	CHECK(parse("NETRELOAD/\n", &r) == NR_EPARSE);
	CHECK(parse("NETRELOAD/1x reload\n", &r) == NR_EPARSE);
	CHECK(parse("NETRELOAD/1 reload id\n", &r) == NR_EPARSE);
	CHECK(parse("NETRELOAD/1 reload =x\n", &r) == NR_EPARSE);
	CHECK(parse("NETRELOAD/1 reload id=has/slash\n", &r) == NR_EPARSE);
	CHECK(parse("NETRELOAD/1 reload id=012345678901234567890123456789012\n", &r) == NR_EPARSE);
	CHECK(parse("NETRELOAD/1 reload id=01234567890123456789012345678901\n", &r) == NR_OK);
	CHECK(parse(".\n", &r) == NR_ELEGACY);
	CHECK(parse("GET / HTTP/1.0", &r) == NR_ELEGACY);
	CHECK(parse("", &r) == NR_ELEGACY || parse("", &r) == NR_EPARSE);
}

static void test_hostile(void)
{
	struct nr_request r;
	char big[2048], err[128];

	memset(big, 'a', sizeof(big));
	memcpy(big, "NETRELOAD/1 reload id=", 22);
	CHECK(nr_request_parse(big, sizeof(big), &r, err, sizeof(err)) == NR_EPARSE);
	CHECK(strstr(err, "longer") != NULL);
	CHECK(nr_request_parse("NETRELOAD/1 reload\0id=x\n", 24, &r, err, sizeof(err)) == NR_EPARSE);
	CHECK(nr_request_parse("NETRELOAD/1 reload \xff\n", 21, &r, err, sizeof(err)) == NR_EPARSE);
	CHECK(parse("NETRELOAD/1 reload a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8 i=9 j=10 k=11 l=12 m=13 "
		    "n=14 o=15 p=16 q=17\n",
		    &r) == NR_EPARSE);
	/* no error buffer at all must be fine too */
	CHECK(nr_request_parse("NETRELOAD/1 x\n", 14, &r, NULL, 0) == NR_EPARSE);
	CHECK(nr_sniff("NETRE", 5) == NR_OK);
	CHECK(nr_sniff("NETRX", 5) == NR_ELEGACY);
	CHECK(nr_sniff("", 0) == NR_OK);
}

static void test_request_format(void)
{
	struct nr_request r = {.verb = NR_VERB_RELOAD, .mode = NR_MODE_CHAIN, .wait = 1}, back;
	char buf[NR_LINE_MAX], tiny[8];
	int n;

	strcpy(r.id, "abc-1");
	n = nr_request_format(&r, buf, sizeof(buf));
	CHECK(n > 0 && !strcmp(buf, "NETRELOAD/1 reload id=abc-1 mode=chain wait=1\n"));
	CHECK(parse(buf, &back) == NR_OK && back.mode == NR_MODE_CHAIN && !strcmp(back.id, "abc-1"));
	r.verb = NR_VERB_STATUS;
	r.id[0] = 0;
	CHECK(nr_request_format(&r, buf, sizeof(buf)) > 0 && !strcmp(buf, "NETRELOAD/1 status\n"));
	CHECK(nr_request_format(&r, tiny, sizeof(tiny)) == NR_ESPACE);
	r.version = 2;
	CHECK(nr_request_format(&r, buf, sizeof(buf)) > 0 && !strcmp(buf, "NETRELOAD/2 status\n"));
	r.verb = NR_VERB_HELLO;
	strcpy(r.id, "0123456789abcdef");
	CHECK(nr_request_format(&r, buf, sizeof(buf)) > 0 &&
	      !strcmp(buf, "NETRELOAD/2 hello id=0123456789abcdef\n"));
	r.version = 1; /* a hello cannot be written as protocol 1, nor anything as 3 */
	CHECK(nr_request_format(&r, buf, sizeof(buf)) == NR_EPARSE);
	r.version = 3;
	CHECK(nr_request_format(&r, buf, sizeof(buf)) == NR_EPARSE);
}

static void test_hello_reply(void)
{
	struct nr_reply rep;
	char buf[NR_LINE_MAX], err[128];
	const char *hello = "NETRELOAD/2 hello id=0123456789abcdef sid=00112233445566778899aabbccddeeff\n";

	CHECK(nr_reply_parse(hello, strlen(hello), &rep, err, sizeof(err)) == NR_OK);
	CHECK(rep.kind == NR_REPLY_HELLO && rep.version == 2 &&
	      !strcmp(rep.sid, "00112233445566778899aabbccddeeff"));
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0 && !strcmp(buf, hello));
	CHECK(nr_reply_parse("NETRELOAD/2 hello sid=0011\n", 27, &rep, err, sizeof(err)) ==
	      NR_EPARSE);
	CHECK(nr_reply_parse("NETRELOAD/2 hello sid=00112233445566778899AABBCCDDEEFF\n", 56, &rep,
			     err, sizeof(err)) == NR_EPARSE);
	/* a reply is written as protocol 1 unless told otherwise: what 0.1 clients read */
	memset(&rep, 0, sizeof(rep));
	rep.kind = NR_REPLY_ACCEPTED;
	rep.gen = 1;
	rep.mode = NR_MODE_GRACEFUL;
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0 &&
	      !strcmp(buf, "NETRELOAD/1 accepted gen=1 mode=graceful\n"));
	rep.version = 2;
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0 &&
	      !strcmp(buf, "NETRELOAD/2 accepted gen=1 mode=graceful\n"));
	CHECK(nr_reply_parse("NETRELOAD/3 live gen=1\n", 23, &rep, err, sizeof(err)) == NR_EVERSION);
}

static void test_replies(void)
{
	struct nr_reply rep, back;
	char buf[NR_LINE_MAX], err[128];
	const char *live = "NETRELOAD/1 live id=a1 gen=7 ms=48 stop_ms=20\n";
	const char *failed = "NETRELOAD/1 failed gen=3 ms=90 stop_ms=0 reason=app failed to load: x y\n";

	CHECK(nr_reply_parse(live, strlen(live), &rep, err, sizeof(err)) == NR_OK);
	CHECK(rep.kind == NR_REPLY_LIVE && rep.gen == 7 && rep.ms == 48 && rep.stop_ms == 20 &&
	      !strcmp(rep.id, "a1"));
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0 && !strcmp(buf, live));
	CHECK(nr_reply_parse(failed, strlen(failed), &rep, err, sizeof(err)) == NR_OK);
	CHECK(rep.kind == NR_REPLY_FAILED && !strcmp(rep.reason, "app failed to load: x y"));
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0 && !strcmp(buf, failed));

	memset(&rep, 0, sizeof(rep));
	rep.kind = NR_REPLY_STATUS;
	rep.gen = 12;
	strcpy(rep.state, "idle");
	rep.mode = NR_MODE_WORKERS;
	rep.workers_live = 2;
	rep.workers_total = 4;
	rep.apps = 1;
	strcpy(rep.last, "failed");
	rep.pid = 4242;
	strcpy(rep.reason, "boom");
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0);
	CHECK(!strcmp(buf, "NETRELOAD/1 status gen=12 state=idle mode=workers workers=2/4 apps=1 "
			   "last=failed last_ms=0 pid=4242 reason=boom\n"));
	CHECK(nr_reply_parse(buf, strlen(buf), &back, err, sizeof(err)) == NR_OK);
	CHECK(back.workers_live == 2 && back.workers_total == 4 && back.pid == 4242 &&
	      back.mode == NR_MODE_WORKERS && !strcmp(back.last, "failed"));

	const char *steps = "NETRELOAD/1 live gen=4 ms=120 stop_ms=25 spawn_ms=27 load_ms=95\n";
	CHECK(nr_reply_parse(steps, strlen(steps), &rep, err, sizeof(err)) == NR_OK &&
	      rep.spawn_ms == 27 && rep.load_ms == 95);
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0 && !strcmp(buf, steps));
	const char *killed = "NETRELOAD/1 live gen=2 ms=700 stop_ms=500 killed=1\n";
	CHECK(nr_reply_parse(killed, strlen(killed), &rep, err, sizeof(err)) == NR_OK && rep.killed == 1);
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0 && !strcmp(buf, killed));
	/* old=: what a reload that only replaced workers left running the old code */
	const char *old = "NETRELOAD/1 live gen=3 ms=40 stop_ms=20 killed=1 old=mules,spooler\n";
	CHECK(nr_reply_parse(old, strlen(old), &rep, err, sizeof(err)) == NR_OK &&
	      !strcmp(rep.old, "mules,spooler") && rep.killed == 1);
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0 && !strcmp(buf, old));
	static const char *bad_old[] = {"old=", "old=mules,", "old=,mules", "old=mules,,spooler",
					"old=Mules", "old=mules;x",
					"old=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	for (size_t i = 0; i < sizeof(bad_old) / sizeof(bad_old[0]); i++) {
		snprintf(buf, sizeof(buf), "NETRELOAD/1 live gen=3 %s\n", bad_old[i]);
		CHECK(nr_reply_parse(buf, strlen(buf), &rep, err, sizeof(err)) == NR_EPARSE);
	}
	memset(&rep, 0, sizeof(rep));
	rep.kind = NR_REPLY_LIVE;
	snprintf(rep.old, sizeof(rep.old), "mules spooler");
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) == NR_EPARSE);

	CHECK(nr_reply_parse("NETRELOAD/1 live gen=99999999999999999999\n", 42, &rep, err,
			     sizeof(err)) == NR_EPARSE);
	CHECK(nr_reply_parse("NETRELOAD/1 live ms=4294967296\n", 31, &rep, err, sizeof(err)) ==
	      NR_EPARSE);
	CHECK(nr_reply_parse("NETRELOAD/1 status workers=2\n", 29, &rep, err, sizeof(err)) ==
	      NR_EPARSE);
	CHECK(nr_reply_parse("HTTP/1.1 400 Bad Request\r\n", 26, &rep, err, sizeof(err)) ==
	      NR_EPARSE);
}

static void test_reason(void)
{
	struct nr_reply rep = {.kind = NR_REPLY_FAILED, .gen = 1};
	char buf[NR_LINE_MAX], long_reason[1000];

	nr_reason_set(rep.reason, "line one\nline\ttwo\x01 ");
	CHECK(!strcmp(rep.reason, "line one line two?"));
	memset(long_reason, 'r', sizeof(long_reason) - 1);
	long_reason[sizeof(long_reason) - 1] = 0;
	nr_reason_set(rep.reason, long_reason);
	CHECK(strlen(rep.reason) == NR_REASON_MAX);
	strcpy(rep.id, "01234567890123456789012345678901");
	/* an overlong reason is cut to fit the line, never an error */
	CHECK(nr_reply_format(&rep, buf, sizeof(buf)) > 0 && strlen(buf) < NR_LINE_MAX);
}

static void test_modes(void)
{
	enum nr_mode m;

	for (int i = NR_MODE_GRACEFUL; i < NR_MODE_COUNT; i++)
		CHECK(nr_mode_parse(nr_mode_name((enum nr_mode)i), &m) == NR_OK && m == (enum nr_mode)i);
	CHECK(nr_mode_parse("default", &m) == NR_EPARSE);
	CHECK(!strcmp(nr_mode_name((enum nr_mode)77), "?"));
}

/* Bounds below 10 once let any single digit through (max - d wrapped). */
static void test_parse_u64(void)
{
	uint64_t v;

	CHECK(nr_parse_u64("1", 1, &v) == 0 && v == 1);
	CHECK(nr_parse_u64("2", 1, &v) == -1);
	CHECK(nr_parse_u64("9", 5, &v) == -1);
	CHECK(nr_parse_u64("65535", 65535, &v) == 0 && v == 65535);
	CHECK(nr_parse_u64("65536", 65535, &v) == -1);
	CHECK(nr_parse_u64("18446744073709551615", UINT64_MAX, &v) == 0 && v == UINT64_MAX);
	CHECK(nr_parse_u64("18446744073709551616", UINT64_MAX, &v) == -1);
	CHECK(nr_parse_u64("", 10, &v) == -1);
	CHECK(nr_parse_u64("1a", 100, &v) == -1);
	CHECK(nr_parse_u64("-1", 100, &v) == -1);
}

int main(void)
{
	test_parse_u64();
	test_request_vectors();
	test_hostile();
	test_request_format();
	test_replies();
	test_hello_reply();
	test_reason();
	test_modes();
	return check_summary();
}
