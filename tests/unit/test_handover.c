/*
 * test_handover.c - the re-exec hand-over text: golden vectors, round trips,
 * what 0.1 wrote, and entries cut whole when the buffer is too small.
 */
#include <string.h>

#include "../../plugin/handover.h"
#include "check.h"

static const char *golden =
	"v=1 tcp=5 udp=6 gen=3 active=1 mode=graceful first=100 start=101 stop=150 pending=1 "
	"pmode=workers pfirst=140 last=2 last_ms=42 c=9,3,120,a1 u=4,141,~,0200 "
	"r=a1,3,120,0,0,0,0200 p=10,130,4e45";

static void test_golden(void)
{
	struct nr_handover h;
	char err[128], out[1024];

	CHECK(nr_handover_parse(golden, &h, err, sizeof(err)) == NR_OK);
	CHECK(h.tcp_fd == 5 && h.udp_fd == 6 && h.gen == 3 && h.active == 1);
	CHECK(h.mode == NR_MODE_GRACEFUL && h.pmode == NR_MODE_WORKERS && h.pending == 1);
	CHECK(h.first == 100 && h.start == 101 && h.stop == 150 && h.pfirst == 140);
	CHECK(h.last == NR_REPLY_LIVE && h.last_ms == 42);
	CHECK(h.nconns == 2 && h.conns[0].waiting && h.conns[0].fd == 9 &&
	      h.conns[0].want_gen == 3 && !strcmp(h.conns[0].id, "a1"));
	CHECK(!h.conns[1].waiting && h.conns[1].len == 2 && !memcmp(h.conns[1].buf, "NE", 2) &&
	      h.conns[1].opened == 130);
	CHECK(h.nudp == 1 && h.udp[0].alen == 2 && h.udp[0].id[0] == '\0' && h.udp[0].t0 == 141);
	CHECK(h.nrecent == 1 && h.recent[0].gen == 3 && h.recent[0].kind == 0);
	CHECK(h.recent[0].alen == 2 && h.recent[0].addr.ss_family == 2);
	CHECK(nr_handover_format(&h, out, sizeof(out)) == NR_OK);
	CHECK(!strcmp(out, golden));
	nr_handover_free(&h);
	CHECK(h.killed == 0 && !strstr(out, "killed="));
	/* what 0.2.0 wrote: no sender on r= */
	CHECK(nr_handover_parse("v=1 r=a1,3,120,0,0,0", &h, err, sizeof(err)) == NR_OK);
	CHECK(h.nrecent == 1 && h.recent[0].alen == 0);
	nr_handover_free(&h);
}

/* netreload 0.1 wrote the same tokens without v=1: a plugin upgraded between
 * two reloads still keeps its listeners. */
static void test_version(void)
{
	struct nr_handover h;
	char err[128];

	CHECK(nr_handover_parse("tcp=5 udp=6 gen=2 c=9,2,7,~", &h, err, sizeof(err)) == NR_OK);
	CHECK(h.tcp_fd == 5 && h.udp_fd == 6 && h.gen == 2 && h.nconns == 1);
	nr_handover_free(&h);
	CHECK(nr_handover_parse("v=2 tcp=5", &h, err, sizeof(err)) == NR_EVERSION);
	nr_handover_free(&h);
	CHECK(nr_handover_parse("tcp=5 v=1", &h, err, sizeof(err)) == NR_EVERSION);
	nr_handover_free(&h);
	/* found by the fuzzer: a missing udp= was written back as udp=-1, which
	 * does not parse */
	{
		char out[512];
		struct nr_handover back;
		CHECK(nr_handover_parse("v=1 tcp=3", &h, err, sizeof(err)) == NR_OK);
		CHECK(nr_handover_format(&h, out, sizeof(out)) == NR_OK);
		CHECK(!strstr(out, "udp="));
		CHECK(nr_handover_parse(out, &back, err, sizeof(err)) == NR_OK && back.udp_fd == -1);
		nr_handover_free(&back);
		nr_handover_free(&h);
	}
	/* unknown keys are skipped */
	CHECK(nr_handover_parse("v=1 tcp=5 later=x", &h, err, sizeof(err)) == NR_OK);
	nr_handover_free(&h);
}

/* The workers a reload killed before its re-exec: the next master's "live"
 * counts them. Written only when there are some; an older reader skips it. */
static void test_killed(void)
{
	static const char *text =
		"v=1 tcp=5 udp=6 gen=3 active=1 mode=graceful first=100 start=101 stop=150 "
		"pending=0 pmode=graceful pfirst=0 last=0 last_ms=0 killed=2 c=9,3,120,a1";
	struct nr_handover h;
	char err[128], out[1024];

	CHECK(nr_handover_parse(text, &h, err, sizeof(err)) == NR_OK);
	CHECK(h.killed == 2 && h.active == 1 && h.nconns == 1);
	CHECK(nr_handover_format(&h, out, sizeof(out)) == NR_OK && !strcmp(out, text));
	nr_handover_free(&h);
	CHECK(nr_handover_parse("v=1 killed=4294967295", &h, err, sizeof(err)) == NR_OK &&
	      h.killed == 4294967295u);
	nr_handover_free(&h);
	CHECK(nr_handover_parse("v=1 killed=4294967296", &h, err, sizeof(err)) == NR_EPARSE);
	nr_handover_free(&h);
	CHECK(nr_handover_parse("v=1 killed=-1", &h, err, sizeof(err)) == NR_EPARSE);
	nr_handover_free(&h);
	CHECK(nr_handover_parse("v=1 killed=", &h, err, sizeof(err)) == NR_EPARSE);
	nr_handover_free(&h);
}

static void test_rejects(void)
{
	static const char *bad[] = {
		"",
		"v=1 tcp=-1",
		"v=1 tcp=5x",
		"v=1 gen=18446744073709551616",
		"v=1 active=2",
		"v=1 mode=fast",
		"v=1 c=9,3,120",
		"v=1 c=9,3,120,bad id",
		"v=1 c=9,3,120,a,b",
		"v=1 p=10,130,4e4",
		"v=1 p=10,130,zz",
		"v=1 p=10,130,4E45",
		"v=1 u=4,141,~,02",
		"v=1 r=~,3,120,0,0,0",
		"v=1 r=a,3,120,4,0,0",
		"v=1 r=a,3,120,1,0,0",
		"v=1 last=9",
		"v=1 =5",
		"v=1 tcp",
	};
	struct nr_handover h;
	char err[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = nr_handover_parse(bad[i], &h, err, sizeof(err));
		if (rc == NR_OK)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK(rc != NR_OK);
		nr_handover_free(&h);
	}
}

/* Lists are cut at the first entry that does not fit, and the counts say so. */
static void test_cut(void)
{
	struct nr_handover h, back;
	char big[300], out[260], err[128];

	memset(&h, 0, sizeof(h));
	h.tcp_fd = 3;
	h.udp_fd = 4;
	memset(big, 'x', sizeof(big));
	h.nconns = 3;
	h.conns[0] = (struct nr_ho_conn){.fd = 7, .waiting = 1, .want_gen = 1};
	h.conns[1] = (struct nr_ho_conn){.fd = 8, .buf = big, .len = 100};
	h.conns[2] = (struct nr_ho_conn){.fd = 9, .waiting = 1, .want_gen = 1};
	h.nrecent = 1;
	snprintf(h.recent[0].id, sizeof(h.recent[0].id), "r1");
	CHECK(nr_handover_format(&h, out, sizeof(out)) == NR_OK);
	CHECK(h.nconns == 1);
	CHECK(h.nrecent == 1);
	CHECK(strlen(out) < sizeof(out));
	CHECK(nr_handover_parse(out, &back, err, sizeof(err)) == NR_OK);
	CHECK(back.nconns == 1 && back.conns[0].fd == 7 && back.nrecent == 1);
	nr_handover_free(&back);
	CHECK(nr_handover_format(&h, out, 20) == NR_ESPACE);
}

/* The most a hand-over can hold of what it must keep, with every slot of the
 * connection table taken by clients half-way through an unsigned request: the
 * waiting client, UDP waiters, ids and files all go in; only sending clients
 * are cut (an attacker's 127 half-sent lines used to squeeze out the waiter). */
static void test_squeeze(void)
{
	static struct nr_handover h, back;
	static char out[NR_HANDOVER_MAX + 1], line[NR_LINE_MAX];
	char err[128];

	memset(&h, 0, sizeof(h));
	memset(line, 'x', sizeof(line));
	h.tcp_fd = 3;
	h.udp_fd = 4;
	h.nconns = NR_HO_CONNS;
	h.conns[0] = (struct nr_ho_conn){.fd = 5, .waiting = 1, .want_gen = 2, .id = "signed"};
	for (int i = 1; i < NR_HO_CONNS; i++)
		h.conns[i] = (struct nr_ho_conn){.fd = 5 + i, .buf = line, .len = NR_LINE_MAX - 1};
	h.nudp = NR_HO_UDP;
	for (int i = 0; i < NR_HO_UDP; i++) {
		h.udp[i] = (struct nr_ho_udp){.want_gen = 2, .alen = 28, .id = "0123456789abcdef"};
		h.udp[i].addr.ss_family = 10;
	}
	h.nrecent = NR_HO_RECENT;
	for (int i = 0; i < NR_HO_RECENT; i++) {
		h.recent[i] = (struct nr_ho_recent){.gen = 2, .alen = 28};
		snprintf(h.recent[i].id, sizeof(h.recent[i].id), "%032d", i);
		h.recent[i].addr.ss_family = 10;
	}
	h.nfiles = NR_FILES_MAX;
	for (int i = 0; i < NR_FILES_MAX; i++) {
		memset(h.files[i].path, 'p', 400);
		h.files[i].path[400] = '\0';
		h.files[i].has_hash = 1;
	}
	CHECK(nr_handover_format(&h, out, sizeof(out)) == NR_OK);
	CHECK(h.nudp == NR_HO_UDP && h.nrecent == NR_HO_RECENT && h.nfiles == NR_FILES_MAX);
	CHECK(h.nconns >= 1 && h.nconns < NR_HO_CONNS);
	CHECK(nr_handover_parse(out, &back, err, sizeof(err)) == NR_OK);
	CHECK(back.conns[0].waiting && !strcmp(back.conns[0].id, "signed"));
	CHECK(back.nudp == NR_HO_UDP && back.nrecent == NR_HO_RECENT && back.nfiles == NR_FILES_MAX);
	nr_handover_free(&back);
	/* and with every connection waiting, nothing at all is cut */
	h.nconns = NR_HO_CONNS;
	for (int i = 0; i < NR_HO_CONNS; i++)
		h.conns[i] = (struct nr_ho_conn){.fd = 5 + i, .waiting = 1, .want_gen = 2,
						 .id = "0123456789abcdef0123456789abcdef"};
	CHECK(nr_handover_format(&h, out, sizeof(out)) == NR_OK);
	CHECK(h.nconns == NR_HO_CONNS && h.nudp == NR_HO_UDP && h.nrecent == NR_HO_RECENT &&
	      h.nfiles == NR_FILES_MAX);
}

/* Files still to be seen on the share, and a failed check, cross the re-exec. */
static void test_files(void)
{
	struct nr_handover h, back;
	char out[4096], err[128];

	memset(&h, 0, sizeof(h));
	h.tcp_fd = 3;
	h.udp_fd = 4;
	h.nfiles = 2;
	snprintf(h.files[0].path, sizeof(h.files[0].path), "app/views py.py");
	h.files[0].size = 6;
	h.files[0].mtime_sec = 1700000000;
	h.files[0].has_hash = 1;
	h.files[0].hash[0] = 0xab;
	snprintf(h.files[1].path, sizeof(h.files[1].path), "gone.py");
	h.files[1].gone = 1;
	h.fmore = 2;
	h.stale = 1;
	snprintf(h.stale_reason, sizeof(h.stale_reason), "stale share: views.py still old");
	CHECK(nr_handover_format(&h, out, sizeof(out)) == NR_OK);
	CHECK(nr_handover_parse(out, &back, err, sizeof(err)) == NR_OK);
	CHECK(back.nfiles == 2 && !strcmp(back.files[0].path, "app/views py.py"));
	CHECK(back.files[0].size == 6 && back.files[0].hash[0] == 0xab && back.files[1].gone);
	CHECK(back.fmore == 2 && back.stale == 1);
	CHECK(!strcmp(back.stale_reason, "stale share: views.py still old"));
	nr_handover_free(&back);
	CHECK(nr_handover_parse("v=1 sreason=0a", &back, err, sizeof(err)) != NR_OK);
	nr_handover_free(&back);
}

int main(void)
{
	test_files();
	test_golden();
	test_version();
	test_killed();
	test_rejects();
	test_cut();
	test_squeeze();
	return check_summary();
}
