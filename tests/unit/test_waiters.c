/*
 * test_waiters.c - the UDP senders waiting for a generation and the recent
 * UDP ids (plugin/waiters.c): retries are not added twice, a full list gives
 * the oldest up, a generation's end reaches the ids it covers, and both lists
 * survive the hand-over.
 */
#include <arpa/inet.h>
#include <string.h>

#include "../../plugin/waiters.h"
#include "check.h"

static struct sockaddr_storage addr(int port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return ss;
}

static int take_all(uint64_t gen)
{
	int n = 0;

	while (nr_udp_waiter_take(gen))
		n++;
	return n;
}

static void test_udp_waiters(void)
{
	struct sockaddr_storage a = addr(1000), b = addr(1001);
	const struct nr_udp_waiter *w;
	socklen_t len = sizeof(struct sockaddr_in);

	nr_udp_waiter_add(&a, len, "id1", 2, 10);
	nr_udp_waiter_add(&a, len, "id1", 2, 11); /* a retry: already waiting */
	nr_udp_waiter_add(&b, len, "id1", 2, 12); /* the same id from elsewhere */
	nr_udp_waiter_add(&a, len, "id2", 3, 13);
	CHECK(nr_udp_waiter_take(1) == NULL); /* nobody waits for generation 1 */
	w = nr_udp_waiter_take(2);
	CHECK(w && w->want_gen == 2 && !strcmp(w->id, "id1") && w->t0 == 10);
	w = nr_udp_waiter_take(2);
	CHECK(w && w->t0 == 12 && !memcmp(&w->addr, &b, len));
	CHECK(nr_udp_waiter_take(2) == NULL);
	CHECK(take_all(5) == 1); /* generation 5 answers who waits for 3 */
	for (int i = 0; i < NR_MAX_UDP_WAITERS + 1; i++) {
		char id[16];
		snprintf(id, sizeof(id), "w%d", i);
		nr_udp_waiter_add(&a, len, id, 9, 100 + (uint64_t)i);
	}
	/* full: the oldest (t0 100) gave way to the last */
	for (int i = 0; i < NR_MAX_UDP_WAITERS; i++) {
		w = nr_udp_waiter_take(9);
		CHECK(w && w->t0 != 100);
	}
	CHECK(nr_udp_waiter_take(9) == NULL);
}

static void test_recent(void)
{
	struct sockaddr_storage a = addr(2000), b = addr(2001);
	socklen_t len = sizeof(struct sockaddr_in);
	struct nr_reply live = {.kind = NR_REPLY_LIVE, .killed = 1};
	struct nr_recent *r;

	nr_recent_add("r1", 4, 100, &a, len);
	nr_recent_add("r2", 5, 120, &b, len);
	CHECK(nr_recent_lookup("") == NULL);
	CHECK(nr_recent_lookup("nope") == NULL);
	r = nr_recent_lookup("r1");
	CHECK(r && r->gen == 4 && r->kind == 0);
	CHECK(nr_recent_from(r, &a, len) && !nr_recent_from(r, &b, len));
	snprintf(live.old, sizeof(live.old), "mules");
	nr_recent_finish(4, &live, 130, 150);
	CHECK(r->kind == NR_REPLY_LIVE && r->ms == 50 && r->stop_ms == 30 && r->killed == 1);
	CHECK(!strcmp(r->old, "mules"));
	CHECK(nr_recent_lookup("r2")->kind == 0); /* generation 5 has not ended */
	live.kind = NR_REPLY_FAILED;
	nr_recent_finish(5, &live, 0, 200);
	CHECK(nr_recent_lookup("r1")->kind == NR_REPLY_LIVE); /* an ended one keeps its end */
	CHECK(nr_recent_lookup("r2")->kind == NR_REPLY_FAILED && nr_recent_lookup("r2")->ms == 80);
}

/* What one master exports, the next imports: the waiters and ids, unchanged. */
static void test_handover(void)
{
	static struct nr_handover h;
	struct sockaddr_storage a = addr(3000);
	socklen_t len = sizeof(struct sockaddr_in);
	const struct nr_udp_waiter *w;

	take_all(UINT64_MAX);
	nr_udp_waiter_add(&a, len, "hw", 7, 300);
	memset(&h, 0, sizeof(h));
	nr_waiters_export(&h);
	CHECK(h.nudp == 1 && h.udp[0].want_gen == 7 && !strcmp(h.udp[0].id, "hw"));
	CHECK(h.nrecent == 2 && !strcmp(h.recent[0].id, "r1") && h.recent[0].kind == NR_REPLY_LIVE);
	take_all(UINT64_MAX);
	nr_waiters_import(&h);
	w = nr_udp_waiter_take(7);
	CHECK(w && w->t0 == 300 && !memcmp(&w->addr, &a, len) && !strcmp(w->id, "hw"));
	CHECK(nr_recent_lookup("r2") && nr_recent_lookup("r2")->gen == 5);
}

int main(void)
{
	test_udp_waiters();
	test_recent();
	test_handover();
	return check_summary();
}
