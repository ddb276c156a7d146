/*
 * server.c - netreload's sockets: TCP and UDP listeners, client connections
 * (accept, read, write, close), epoll keys, and handing them over a re-exec.
 * What the bytes mean is request.c's: it gets them through the handlers it
 * registered (nr_server_handle), and writes its replies back through here.
 *
 * Everything is non-blocking and bounded per master loop pass: at most
 * NR_BATCH events, accepts or datagrams, so a flood delays the master by
 * microseconds and never starves it. Bad input is dropped with a
 * rate-limited log line (nr_complain); garbage still counts as a ping while
 * no secret is configured, which keeps `echo . | nc HOST PORT` working.
 */
#define _GNU_SOURCE /* accept4 */
#include "netreload.h"

#include "glue.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#define NR_BATCH 64
/* Replies the UDP port may send per second, whoever asks: what a flood of
 * spoofed requests can make us emit is bounded. */
#define NR_UDP_REPLY_RATE 200

/* Epoll keys. A connection's key is its serial and slot, never its pointer: an
 * event can name a connection closed since (earlier in the same batch), and
 * then the key finds nothing instead of freed memory. */
enum { NR_KEY_TCP = 1, NR_KEY_UDP, NR_KEY_TIMER, NR_KEY_WAKE };

static uint64_t conn_key(const struct nr_conn *c)
{
	return (uint64_t)c->serial << 16 | (uint64_t)c->slot;
}

static struct nr_conn *conn_by_key(uint64_t key)
{
	uint64_t slot = key & 0xffff;
	struct nr_conn *c = slot < NR_MAX_CONNS ? unr.conns[slot] : NULL;

	return c && c->serial == key >> 16 ? c : NULL;
}

static void ep_add(int fd, uint64_t key)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = key};

	if (epoll_ctl(unr.ep_fd, EPOLL_CTL_ADD, fd, &ev))
		nr_log_errno("netreload: epoll_ctl()");
}

int nr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return 0;
}

void nr_peer_name(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(out, len, ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
}

/* The inode of a socket bound to port in /proc/net/FILE (a TCP one listening). */
static unsigned long port_inode(const char *file, int port, int tcp)
{
	char path[64], line[512];
	unsigned long inode = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/net/%s", file);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (!inode && fgets(line, sizeof(line), f)) {
		unsigned int lport, st;
		unsigned long ino;
		if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*s %*s %*s %*s %*s %lu",
			   &lport, &st, &ino) == 3 &&
		    (int)lport == port && (!tcp || st == 0x0A))
			inode = ino;
	}
	fclose(f);
	return inode;
}

/* "pid 1234 (nc)" for the process holding a socket on port, or "" if we
 * cannot see it (another user's process, without root). */
static void port_holder(int type, int port, char *out, size_t len)
{
	int tcp = type == SOCK_STREAM;
	unsigned long inode = port_inode(tcp ? "tcp" : "udp", port, tcp);
	char want[48];
	DIR *proc;
	struct dirent *p;

	out[0] = '\0';
	if (!inode)
		inode = port_inode(tcp ? "tcp6" : "udp6", port, tcp);
	if (!inode || !(proc = opendir("/proc")))
		return;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	while (!out[0] && (p = readdir(proc))) {
		char dir[288], link[64], comm[32] = "?";
		struct dirent *fd;
		DIR *fds;
		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		snprintf(dir, sizeof(dir), "/proc/%s/fd", p->d_name);
		if (!(fds = opendir(dir)))
			continue;
		while (!out[0] && (fd = readdir(fds))) {
			char fpath[576];
			ssize_t n;
			snprintf(fpath, sizeof(fpath), "%s/%s", dir, fd->d_name);
			n = readlink(fpath, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strcmp(link, want))
				continue;
			snprintf(fpath, sizeof(fpath), "/proc/%s/comm", p->d_name);
			FILE *c = fopen(fpath, "re");
			if (c) {
				if (fgets(comm, sizeof(comm), c))
					comm[strcspn(comm, "\n")] = '\0';
				fclose(c);
			}
			snprintf(out, len, "pid %ld (%.32s)", strtol(p->d_name, NULL, 10), comm);
		}
		closedir(fds);
	}
	closedir(proc);
}

/* Our fds are close-on-exec, except while a re-exec hands them over. */
static void set_cloexec(int fd, int on)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags >= 0)
		fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
}

/* One listening socket; -2 if the port is in use and the caller may wait for it.
 * No SO_REUSEADDR on UDP: it would let any local user bind the same port and
 * take our datagrams (and let us share a port someone else holds). On TCP it
 * only allows a restart while old connections sit in TIME_WAIT: Linux never
 * binds a second socket to a port another one listens on. */
static int open_socket(const struct addrinfo *ai, int type, const char *what, int may_wait)
{
	int one = 1;
	int fd = socket(ai->ai_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	char holder[96], who[128] = "";

	if (fd < 0) {
		nr_log("netreload: cannot create %s socket: %s\n", what, strerror(errno));
		return -1;
	}
	if (type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) ||
	    (type == SOCK_STREAM && listen(fd, 128))) {
		int err = errno;
		if (may_wait && err == EADDRINUSE) {
			close(fd);
			return -2;
		}
		if (err == EACCES && atoi(unr.port) < 1024) {
			nr_log("netreload: cannot listen on %s %s:%s: %s (a port below 1024 needs "
				  "root, and uWSGI has already dropped privileges to uid %d: use "
				  "netreload-port 1024 or above, or master-as-root = true)\n",
				  what, unr.bind, unr.port, strerror(err), (int)getuid());
			close(fd);
			return -1;
		}
		if (err == EADDRINUSE) {
			port_holder(type, atoi(unr.port), holder, sizeof(holder));
			snprintf(who, sizeof(who), ", held by %s", holder[0] ? holder : "another process");
		}
		nr_log("netreload: cannot listen on %s %s:%s: %s%s (netreload-port %s is taken: "
			  "stop what holds it or pick a free port)\n",
			  what, unr.bind, unr.port, strerror(err), who, unr.port);
		close(fd);
		return -1;
	}
	return fd;
}

static int check_port(void)
{
	char *end;
	long p = strtol(unr.port, &end, 10);

	if (end == unr.port || *end || p < 1 || p > 65535) {
		nr_log("netreload: bad value '%s' for netreload-port: expected a port number "
			  "from 1 to 65535\n",
			  unr.port);
		return -1;
	}
	return 0;
}

/* The address the options ask for, after the checks any start runs (port
 * number, address, non-loopback needs a secret). NULL after logging why. */
static struct addrinfo *wanted_address(void)
{
	struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	int rc;

	if (!unr.bind)
		unr.bind = "127.0.0.1";
	if (check_port())
		return NULL;
	rc = getaddrinfo(unr.bind, unr.port, &hints, &ai);
	if (rc) {
		nr_log("netreload: bad value '%s' for netreload-bind: %s (use an IPv4 or IPv6 "
			  "address such as 127.0.0.1, 0.0.0.0 or ::, or a host name)\n",
			  unr.bind, gai_strerror(rc));
		return NULL;
	}
	if (!nr_is_loopback(ai->ai_addr) && !unr.insecure && !unr.secret) {
		nr_log("netreload: refusing to listen on non-loopback address %s without "
			  "authentication: anyone who can reach it could reload this instance; set "
			  "netreload-secret-file (or netreload-insecure = true to accept that)\n",
			  unr.bind);
		freeaddrinfo(ai);
		return NULL;
	}
	return ai;
}

/* 0: listening; 1: the port is in use and may_wait was set; -1: an error, logged. */
static int open_listeners(const struct addrinfo *ai, int may_wait)
{
	unr.tcp_fd = open_socket(ai, SOCK_STREAM, "TCP", may_wait);
	unr.udp_fd = unr.tcp_fd < 0 ? -1 : open_socket(ai, SOCK_DGRAM, "UDP", 0);
	if (unr.tcp_fd == -2) {
		unr.tcp_fd = -1;
		return 1;
	}
	if (unr.udp_fd < 0) {
		if (unr.tcp_fd >= 0)
			close(unr.tcp_fd);
		unr.tcp_fd = -1;
		return -1;
	}
	/* after a re-exec uWSGI closes every fd it was not told about */
	nr_glue_keep_fd(unr.tcp_fd);
	nr_glue_keep_fd(unr.udp_fd);
	nr_log("netreload: listening on %s port %s (TCP and UDP), mode %s\n", unr.bind, unr.port,
		  nr_mode_name(unr.mode));
	return 0;
}

int nr_listen_open(int may_wait)
{
	struct addrinfo *ai = wanted_address();
	int rc;

	if (!ai)
		return -1;
	rc = open_listeners(ai, may_wait);
	freeaddrinfo(ai);
	return rc;
}

/* Whether a listener handed over is bound where the options now ask. */
static int bound_at(int fd, const struct addrinfo *ai)
{
	struct sockaddr_storage ss;
	socklen_t alen = sizeof(ss);

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &alen) || alen != ai->ai_addrlen)
		return 0;
	return !memcmp(&ss, ai->ai_addr, alen);
}

static struct nr_conn *conn_new(int fd, uint64_t now)
{
	struct nr_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->state = NR_CONN_READING;
	c->opened = now;
	if (!++unr.conn_serial)
		unr.conn_serial = 1;
	c->serial = unr.conn_serial;
	for (int i = 0; i < NR_MAX_CONNS; i++) {
		if (!unr.conns[i]) {
			unr.conns[i] = c;
			c->slot = i;
			return c;
		}
	}
	free(c);
	return NULL;
}

/* Keep a connection the previous master handed over: the same fd, still open. */
static struct nr_conn *conn_adopt(const struct nr_ho_conn *hc, uint64_t now)
{
	struct nr_conn *c = conn_new(hc->fd, now);
	struct sockaddr_storage ss;
	socklen_t alen = sizeof(ss);

	if (!c)
		return NULL;

	snprintf(c->peer, sizeof(c->peer), "fd %d (kept across reload)", hc->fd);
	if (getpeername(hc->fd, (struct sockaddr *)&ss, &alen) == 0)
		c->loopback = nr_is_loopback((const struct sockaddr *)&ss);
	snprintf(c->id, sizeof(c->id), "%s", hc->id);
	nr_glue_keep_fd(hc->fd);
	set_cloexec(hc->fd, 1);
	if (hc->waiting) {
		c->state = NR_CONN_WAITING;
		c->want_gen = hc->want_gen;
		c->t0 = hc->t0;
		return c;
	}
	c->opened = hc->opened; /* the read timeout runs on across the exec */
	c->len = hc->len < sizeof(c->buf) ? hc->len : sizeof(c->buf);
	memcpy(c->buf, hc->buf, c->len);
	return c;
}


/* Take the sockets and clients a previous master handed over. */
int nr_listen_import(const struct nr_handover *h)
{
	uint64_t now = nr_now_ms();
	struct addrinfo *ai;
	int rc;

	for (int i = 0; i < h->nconns; i++)
		conn_adopt(&h->conns[i], now);
	/* the options may have changed with the config file: check them as a
	 * first start would, and listen anew where they now point */
	ai = wanted_address();
	if (!ai)
		return -1;
	if (!bound_at(h->tcp_fd, ai) || !bound_at(h->udp_fd, ai)) {
		if (h->tcp_fd >= 0 && h->udp_fd >= 0)
			nr_log("netreload: netreload-bind/netreload-port changed across the reload: "
				  "closing the old listeners\n");
		else
			nr_log("netreload: lost the listening sockets across the reload; "
				  "opening new ones\n");
		if (h->tcp_fd >= 0)
			close(h->tcp_fd);
		if (h->udp_fd >= 0)
			close(h->udp_fd);
		rc = open_listeners(ai, 0);
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	unr.tcp_fd = h->tcp_fd;
	unr.udp_fd = h->udp_fd;
	nr_glue_keep_fd(unr.tcp_fd);
	nr_glue_keep_fd(unr.udp_fd);
	set_cloexec(unr.tcp_fd, 1);
	set_cloexec(unr.udp_fd, 1);
	nr_log("netreload: kept listening on %s port %s across the reload\n", unr.bind, unr.port);
	return 0;
}

void nr_listen_register(void)
{
	ep_add(unr.tcp_fd, NR_KEY_TCP);
	ep_add(unr.udp_fd, NR_KEY_UDP);
	ep_add(unr.timer_fd, NR_KEY_TIMER);
	for (int i = 0; i < NR_MAX_CONNS; i++)
		if (unr.conns[i])
			ep_add(unr.conns[i]->fd, conn_key(unr.conns[i]));
}

/* Closing with unread input makes the kernel send a reset, which can destroy the
 * reply before the peer reads it: discard what already arrived (bounded) first. */
static void drain_input(int fd)
{
	char sink[4096];

	for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
}

/* close() alone leaves the fd in the epoll set while another copy of it is open,
 * and a child just forked holds copies until our atfork handler runs: take it
 * out explicitly (a waiting client at end of file is out already). */
void nr_conn_close(struct nr_conn *c)
{
	unr.conns[c->slot] = NULL;
	if (!c->eof)
		epoll_ctl(unr.ep_fd, EPOLL_CTL_DEL, c->fd, NULL);
	drain_input(c->fd);
	close(c->fd);
	free(c->files);
	free(c);
}

int nr_conn_count(void)
{
	int n = 0;

	for (int i = 0; i < NR_MAX_CONNS; i++)
		n += unr.conns[i] != NULL;
	return n;
}

/* What request.c does with what the sockets bring. */
static struct nr_server_handlers handlers;

void nr_server_handle(const struct nr_server_handlers *h)
{
	handlers = *h;
}

struct nr_conn *nr_server_conn(int slot)
{
	return unr.conns[slot];
}

/* A reply fits in an empty socket buffer; a peer that is gone just loses it. */
void nr_conn_send(struct nr_conn *c, const char *line, int n)
{
	if (n > 0 && send(c->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EPIPE &&
	    errno != ECONNRESET)
		nr_complain("send to %s: %s", c->peer, strerror(errno));
}

/* A token bucket over every UDP reply: NR_UDP_REPLY_RATE a second, bursts of as many. */
static int udp_reply_allowed(void)
{
	static uint64_t last_ms;
	static uint32_t tokens = NR_UDP_REPLY_RATE;
	uint64_t now = nr_now_ms(), add = (now - last_ms) * NR_UDP_REPLY_RATE / 1000;

	if (add) {
		tokens = add + tokens > NR_UDP_REPLY_RATE ? NR_UDP_REPLY_RATE : (uint32_t)(tokens + add);
		last_ms = now;
	}
	if (!tokens) {
		nr_complain("UDP replies over %d/s dropped", NR_UDP_REPLY_RATE);
		return 0;
	}
	tokens--;
	return 1;
}

void nr_udp_send(const struct sockaddr_storage *addr, socklen_t alen, const char *line, int n)
{
	if (!udp_reply_allowed())
		return;
	if (n > 0)
		(void)sendto(unr.udp_fd, line, (size_t)n, MSG_DONTWAIT, (const struct sockaddr *)addr,
			     alen);
}

/* More of the request line, or of its file lines once it asked for them,
 * handed up. A peer that ends inside a file list (or fails) is told why; what
 * it sent of a line before it finished still counts as a line. */
static void conn_read_request(struct nr_conn *c, uint64_t now)
{
	char *dst = c->files ? c->files + c->flen : c->buf + c->len;
	size_t room = c->files ? (size_t)c->req.files * NR_LINE_MAX - c->flen
			       : sizeof(c->buf) - c->len;
	ssize_t n = recv(c->fd, dst, room, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (n == 0 || c->files)
			handlers.end(c, now);
		nr_conn_close(c);
		return;
	}
	if (c->files)
		c->flen += (size_t)n;
	else
		c->len += (size_t)n;
	if (!handlers.input(c, now))
		nr_conn_close(c);
}

/* Read what a connection sent. Waiting connections only watch for the peer leaving. */
static void conn_read(struct nr_conn *c, uint64_t now)
{
	char sink[512];
	ssize_t n;

	if (c->state == NR_CONN_WAITING) {
		n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			/* half-closed or gone: stop watching, still try to answer later */
			epoll_ctl(unr.ep_fd, EPOLL_CTL_DEL, c->fd, NULL);
			c->eof = 1;
		}
		return;
	}
	conn_read_request(c, now);
}

/* Make room for a new connection: the oldest one still reading gives way. */
static int evict_oldest_reader(void)
{
	struct nr_conn *oldest = NULL;

	for (int i = 0; i < NR_MAX_CONNS; i++) {
		struct nr_conn *c = unr.conns[i];
		if (c && c->state == NR_CONN_READING && (!oldest || c->opened < oldest->opened))
			oldest = c;
	}
	if (!oldest)
		return -1;
	nr_complain("%s: too many open connections, closed the oldest idle one", oldest->peer);
	nr_conn_close(oldest);
	return 0;
}

static void accept_one(int fd, struct sockaddr_storage *ss, uint64_t now)
{
	struct nr_conn *c = conn_new(fd, now);

	if (!c && evict_oldest_reader() == 0)
		c = conn_new(fd, now);
	if (!c) {
		struct nr_conn tmp = {.fd = fd};
		handlers.busy(&tmp);
		close(fd);
		return;
	}
	nr_peer_name(ss, c->peer, sizeof(c->peer));
	c->loopback = nr_is_loopback((const struct sockaddr *)ss);
	ep_add(fd, conn_key(c));
}

static void accept_batch(uint64_t now)
{
	for (int i = 0; i < NR_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t slen = sizeof(ss);
		int fd = accept4(unr.tcp_fd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				nr_complain("accept: %s", strerror(errno));
			return;
		}
		accept_one(fd, &ss, now);
	}
}


static void udp_batch(uint64_t now)
{
	for (int i = 0; i < NR_BATCH; i++) {
		char buf[NR_LINE_MAX + 1];
		struct sockaddr_storage ss;
		socklen_t alen = sizeof(ss);
		ssize_t n = recvfrom(unr.udp_fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&ss,
				     &alen);
		if (n < 0)
			return;
		handlers.datagram(buf, (size_t)n, &ss, alen, now);
	}
}

void nr_set_tick(uint64_t ms)
{
	struct itimerspec its = {0};

	if (ms == unr.tick_ms)
		return;
	its.it_interval.tv_sec = its.it_value.tv_sec = (time_t)(ms / 1000);
	its.it_interval.tv_nsec = its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	timerfd_settime(unr.timer_fd, 0, &its, NULL);
	unr.tick_ms = ms;
}

/* Wake the master when fd is readable; whoever owns fd reads it. */
void nr_listen_add_wakeup(int fd)
{
	ep_add(fd, NR_KEY_WAKE);
}

/* now: the pass's one clock reading, which every timestamp taken here gets and
 * every later check in the pass compares against (tests/test_clock.py). */
void nr_listen_drain(uint64_t now)
{
	struct epoll_event ev[NR_BATCH];
	uint64_t ticks;
	int n = epoll_wait(unr.ep_fd, ev, NR_BATCH, 0);

	for (int i = 0; i < n; i++) {
		uint64_t key = ev[i].data.u64;
		struct nr_conn *c;
		if (key == NR_KEY_TCP)
			accept_batch(now);
		else if (key == NR_KEY_UDP)
			udp_batch(now);
		else if (key == NR_KEY_TIMER)
			(void)!read(unr.timer_fd, &ticks, sizeof(ticks));
		else if (key == NR_KEY_WAKE)
			; /* its owner reads it on this pass (reload.c, through nr_reload_next) */
		else if ((c = conn_by_key(key)))
			conn_read(c, now);
	}
}

/* Connections that never finish their request are closed (slowloris, half-open). */
void nr_listen_expire(uint64_t now)
{
	for (int i = 0; i < NR_MAX_CONNS; i++) {
		struct nr_conn *c = unr.conns[i];
		if (c && c->state == NR_CONN_READING && nr_ms_since(now, c->opened) > NR_READ_TIMEOUT_MS) {
			nr_complain("%s: no complete request within %d ms", c->peer, NR_READ_TIMEOUT_MS);
			nr_conn_close(c);
		}
	}
}

/* In a forked child: drop the client connections without touching the
 * shared epoll set (the master still watches its own copies). Only close():
 * a child of a threaded master may call nothing that takes a lock. */
void nr_listen_close_conns(void)
{
	for (int i = 0; i < NR_MAX_CONNS; i++) {
		if (unr.conns[i]) {
			close(unr.conns[i]->fd);
			unr.conns[i] = NULL; /* the child's copy of the memory just stays */
		}
	}
}

/* In a worker or the spooler: drop every fd of ours, the same way. */
void nr_listen_close_all(void)
{
	int fds[] = {unr.tcp_fd, unr.udp_fd, unr.ep_fd, unr.timer_fd};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	unr.tcp_fd = unr.udp_fd = unr.ep_fd = unr.timer_fd = -1;
	nr_listen_close_conns();
	unr.enabled = 0;
}

/* The TCP clients that wait for "live" (waiting) or still send (!waiting). */
static void export_conns(struct nr_handover *h, int waiting)
{
	for (int i = 0; i < NR_MAX_CONNS && h->nconns < NR_HO_CONNS; i++) {
		struct nr_conn *c = unr.conns[i];
		struct nr_ho_conn *hc;
		if (!c || (c->state == NR_CONN_WAITING) != waiting)
			continue;
		if (c->files) {
			/* its signed line was taken here: the next master would call it a replay */
			nr_complain("%s: reload began while it sent its file list; closed", c->peer);
			nr_conn_close(c);
			continue;
		}
		hc = &h->conns[h->nconns++];
		*hc = (struct nr_ho_conn){.fd = c->fd, .waiting = c->state == NR_CONN_WAITING,
					  .want_gen = c->want_gen, .t0 = c->t0, .opened = c->opened,
					  .buf = c->buf, .len = c->len, .slot = i};
		snprintf(hc->id, sizeof(hc->id), "%s", c->id);
		nr_glue_keep_fd(c->fd);
	}
}

/* Before exec: hand listeners, waiting clients, clients still sending and UDP
 * waiters to the next master; nr_listen_export_done lets their fds survive it. */
void nr_listen_export(struct nr_handover *h)
{
	h->tcp_fd = unr.tcp_fd;
	h->udp_fd = unr.udp_fd;
	nr_glue_keep_fd(unr.tcp_fd);
	nr_glue_keep_fd(unr.udp_fd);
	/* clients waiting for "live" first: the hand-over keeps them before anyone
	 * still sending an unverified request (handover.h) */
	export_conns(h, 1);
	export_conns(h, 0);
}

/* After nr_handover_format: close the clients that found no room in the text,
 * and let the fds the text names survive the exec. */
void nr_listen_export_done(const struct nr_handover *h, int exported)
{
	for (int i = h->nconns; i < exported; i++) {
		struct nr_conn *c = unr.conns[h->conns[i].slot];
		nr_complain("%s: no room to keep the connection across the reload", c->peer);
		nr_conn_close(c);
	}
	set_cloexec(h->tcp_fd, 0);
	set_cloexec(h->udp_fd, 0);
	for (int i = 0; i < h->nconns; i++)
		set_cloexec(h->conns[i].fd, 0);
}
