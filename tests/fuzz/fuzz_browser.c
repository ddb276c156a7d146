/*
 * fuzz_browser.c - libFuzzer target for the --browser server (client/browser.c,
 * client/websocket.c): the bytes are what one connection sends, as a request
 * header and, after a WebSocket handshake, frames. They go through a socket
 * pair into a connection slot and the server is stepped as the watcher's loop
 * would, with every kind of event broadcast half-way, until it closes the
 * connection or stops making progress. Besides crashes and sanitizer reports
 * it checks that the server never holds more than its bounds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../client/browser.h"

static struct nr_browser b;

/* Read what the server wrote, so it never blocks on a full socket. */
static void drain(int fd)
{
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void step(uint64_t now)
{
	struct pollfd pfd[1 + NR_BROWSER_CONNS];
	int n = nr_browser_pollfds(&b, pfd, 1 + NR_BROWSER_CONNS);

	if (poll(pfd, (nfds_t)n, 0) < 0 && errno != EINTR) /* libFuzzer's SIGALRM */
		abort();
	nr_browser_step(&b, pfd, n, now);
	nr_browser_tick(&b, now);
	for (int i = 0; i < NR_BROWSER_CONNS; i++)
		if (b.c[i].in_len > sizeof(b.c[i].in) || b.c[i].out_len > sizeof(b.c[i].out))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int idle[2] = {-1, -1};
	int sv[2];
	uint64_t now = 1000;

	if (idle[0] < 0 && pipe(idle))
		abort(); /* a "listener" that never has anyone to accept */
	memset(&b, 0, sizeof(b));
	for (int i = 0; i < NR_BROWSER_CONNS; i++)
		b.c[i].fd = -1;
	b.fd = idle[0];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		abort();
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	b.c[0].fd = sv[0];
	b.c[0].state = NR_BC_REQUEST;
	b.c[0].deadline = now + NR_BROWSER_REQUEST_MS;
	if (size && write(sv[1], data, size) < 0)
		abort();
	for (int round = 0; round < 64 && b.c[0].state != NR_BC_FREE; round++) {
		step(now);
		drain(sv[1]);
		if (round == 2) {
			nr_browser_css(&b, "static/a\"b\n.css");
			nr_browser_failed(&b, "Traceback\r\n  \x1b[31mboom\"</div>");
			nr_browser_live(&b, "app.py", 42);
			nr_browser_css(&b, "");
		}
		if (round == 4)
			shutdown(sv[1], SHUT_WR);
		if (round == 8)
			now += NR_BROWSER_REQUEST_MS + NR_BROWSER_LINGER_MS; /* time-outs */
	}
	nr_browser_close(&b); /* closes sv[0], and idle[0] as the listener */
	idle[0] = -1;
	close(idle[1]);
	close(sv[1]);
	return 0;
}
