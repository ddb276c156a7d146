/*
 * logs.c - failure reasons from uWSGI's own log path, never by owning fd 2.
 *
 * When an app fails to import, Python prints the traceback on the loading
 * process's fd 2, wherever uWSGI pointed it (a terminal, a pipe to journald,
 * the --logto file, the --log-master socket). Only while that process loads
 * its apps is its fd 2 a pipe to a relay: a small process that writes each
 * line on to the real fd 2 at once, with one write, as the loader would have,
 * and keeps the last NR_LOGS_TAIL bytes. When loading ends, the loader puts
 * its real fd 2 back and sends a mark down the pipe; the relay, once
 * everything before the mark is out (or at once if the log cannot take more:
 * the loader never waits for the log's reader), publishes the tail in the
 * loader's slot of a MAP_SHARED area (created by the master before any fork)
 * and acknowledges. reload.c reads reasons there. A loader whose apps did
 * load goes on without the acknowledgement: the wait put the relay's
 * wake-up, 1-3 ms on a busy machine, on every new worker's way to its first
 * request. The price: what that loader prints next (a request's log line)
 * can reach the log before the relay wrote out the end of the load's output.
 * A reason is looked up for a worker that loaded and then died too, but only
 * after it was reaped, by when the relay has long published.
 *
 * Relays are forked by a starter process that the master forks (twice, so
 * nobody has to reap it) in nr_logs_init, while it is still small: a loader
 * only hands the starter its pipe, so loading waits for no fork. A relay runs
 * until every writer of its pipe is gone: the loader, also when it exits or
 * crashes while loading, and anything it started meanwhile (a background
 * process started at import keeps its output). No thread, and no pipe that
 * fills up while nobody reads it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, pipe2, close_range */
#endif
#include "logs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NR_LOGS_CHUNK 65536  /* relay buffer; a longer line goes out in pieces */
#define NR_LOGS_IDLE_MS 20   /* a line without its newline yet goes out after this */
#define NR_LOGS_ACK_MS 2000  /* the loader waits at most this long for the tail */

/* What one process's last app load printed, for the master to read. */
struct nr_logs_slot {
	pid_t pid; /* whose load; 0 while being written */
	uint32_t len;
	char tail[NR_LOGS_TAIL];
};

static struct nr_logs_slot *slots;
static int nslots;
static int starter_fd = -1; /* to the starter; -1: no relays, fd 2 is left alone */

/* What a loader asks the starter for, with its pipe's read end, its real fd 2
 * and the write end of its acknowledgement pipe. */
struct nr_logs_request {
	int32_t slot, pid;
};

/* The loader's side of the window. */
static struct {
	int active;
	pid_t pid;   /* the loader (a child forked meanwhile is not) */
	int real_fd; /* the real fd 2, kept aside meanwhile */
	int pipe_w;  /* the relay's pipe (fd 2 meanwhile), to send the mark */
	int ack_r;   /* the relay says the tail is published */
} cap = {.real_fd = -1, .pipe_w = -1, .ack_r = -1};

/* "Apps are loaded": NUL bytes around it, so no text printed by an app is it. */
static const char mark[] = {'\0', 'n', 'e', 't', 'r', 'e', 'l', 'o', 'a', 'd',
			    ':',  'l', 'o', 'a', 'd', 'e', 'd', '\0'};

/* ---- the relay process ------------------------------------------------- */

/* Only async-signal-safe calls from here on: it is a child of a process that
 * may have threads. */
static struct {
	int in, out, ack;
	int slot;
	pid_t loader;
	char buf[NR_LOGS_CHUNK];
	size_t have;	/* bytes in buf */
	size_t scanned; /* buf[0..scanned) is checked for the mark and in the tail */
	size_t before;	/* after the mark: its bytes still to write before the ack */
	int marked, acked;
	int eof; /* every writer is gone */
	char tail[NR_LOGS_TAIL];
	uint64_t tail_total;
} r;

static void tail_add(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		r.tail[(r.tail_total + i) % NR_LOGS_TAIL] = p[i];
	r.tail_total += n;
}

static void publish(void)
{
	struct nr_logs_slot *s;
	size_t n = r.tail_total < NR_LOGS_TAIL ? (size_t)r.tail_total : NR_LOGS_TAIL;
	uint64_t from = r.tail_total - n;

	if (!slots || r.slot < 0 || r.slot >= nslots)
		return;
	s = &slots[r.slot];
	__atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
	for (size_t i = 0; i < n; i++)
		s->tail[i] = r.tail[(from + i) % NR_LOGS_TAIL];
	s->len = (uint32_t)n;
	__atomic_store_n(&s->pid, r.loader, __ATOMIC_RELEASE);
}

/* Publish the tail and let the loader go on. */
static void ack(void)
{
	if (!r.marked || r.acked)
		return;
	publish();
	r.acked = 1;
	(void)!write(r.ack, "1", 1);
}

/* Once acknowledged and with all it read written out, what is left for the
 * relay is its exit (about a millisecond): at nice 19, so that it does not
 * take the CPU from the first requests of a loader whose apps loaded. Not
 * before: when the log cannot take more (the log master reads it only once
 * its loop runs) the relay acknowledges at once and still has lines to pass
 * on, and at nice 19 on a busy CPU those took seconds. */
static void lower_when_done(void)
{
	static int lowered;

	if (r.acked && !lowered && r.have == 0) {
		(void)setpriority(PRIO_PROCESS, 0, 19);
		lowered = 1;
	}
}

static void scan(void);

/* Read what the pipe holds, as far as there is room. */
static void read_more(void)
{
	ssize_t n;

	if (r.eof || r.have == sizeof(r.buf))
		return;
	n = read(r.in, r.buf + r.have, sizeof(r.buf) - r.have);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		r.eof = 1;
		return;
	}
	r.have += (size_t)n;
	scan();
}

/* Wait until the log takes more. Meanwhile keep reading: once the loader's
 * mark arrives it is released, for it must not wait for the log's reader
 * (which may be the loader itself: the log master before its loop runs). */
static void wait_writable(void)
{
	for (;;) {
		struct pollfd pfd[2] = {{.fd = r.out, .events = POLLOUT},
					{.fd = r.in, .events = POLLIN}};
		int reading = !r.eof && r.have < sizeof(r.buf);
		if (poll(pfd, reading ? 2 : 1, -1) < 0 && errno != EINTR)
			return;
		if (pfd[0].revents)
			return;
		if (reading && pfd[1].revents) {
			read_more();
			if (r.marked)
				ack();
		}
	}
}

/* Write p out with one write where the fd takes it (unless the log is gone). */
static void write_out(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(r.out, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && errno == EAGAIN) {
			wait_writable();
		} else {
			return; /* the log is gone: the bytes are, too */
		}
	}
}

static int writable_now(void)
{
	struct pollfd pfd = {.fd = r.out, .events = POLLOUT};

	return poll(&pfd, 1, 0) != 0;
}

/* Length of the longest start of the mark at the end of p[0..n). */
static size_t partial_mark(const char *p, size_t n)
{
	for (size_t k = n < sizeof(mark) - 1 ? n : sizeof(mark) - 1; k > 0; k--)
		if (!memcmp(p + n - k, mark, k))
			return k;
	return 0;
}

/* Take the mark out of the new bytes (remembering how much came before it)
 * and add them to the tail; a possible start of the mark at the end waits. */
static void scan(void)
{
	char *m;
	size_t keep;

	while ((m = memmem(r.buf + r.scanned, r.have - r.scanned, mark, sizeof(mark)))) {
		size_t at = (size_t)(m - r.buf);
		tail_add(r.buf + r.scanned, at - r.scanned);
		memmove(m, m + sizeof(mark), r.have - at - sizeof(mark));
		r.have -= sizeof(mark);
		r.scanned = at;
		r.marked = 1;
		r.before = at;
	}
	keep = partial_mark(r.buf + r.scanned, r.have - r.scanned);
	tail_add(r.buf + r.scanned, r.have - r.scanned - keep);
	r.scanned = r.have - keep;
}

/* Write the complete lines of the scanned bytes, each with its own write;
 * with all set, a last line without its newline too. The bytes the loader
 * sent before its mark go out whole (it will not finish that line), then the
 * loader is released. */
static void flush(int all)
{
	size_t done = 0;

	for (;;) {
		int to_mark = r.marked && !r.acked;
		size_t end = to_mark ? r.before : r.scanned, n;
		const char *nl;
		if (to_mark && done == end) {
			ack();
			continue;
		}
		if (done == end)
			break;
		nl = memchr(r.buf + done, '\n', end - done);
		if (nl)
			n = (size_t)(nl - (r.buf + done)) + 1;
		else if (to_mark || all)
			n = end - done;
		else
			break;
		if (!writable_now())
			wait_writable();
		write_out(r.buf + done, n);
		done += n;
	}
	memmove(r.buf, r.buf + done, r.have - done);
	r.have -= done;
	r.scanned -= done;
	r.before = r.before > done ? r.before - done : 0;
}

/* The relay stops when the last writer closes the pipe, not on a signal sent
 * to its process group (Ctrl-C, a service manager) while the loader still
 * writes: then the loader would get EPIPE. SIGKILL still ends it. */
static void relay_signals(void)
{
	static const int ignored[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGUSR1,
				      SIGUSR2, SIGALRM};
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		sigaction(ignored[i], &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Close every fd but keep[0..n), which is sorted. */
static void close_all_but(const int *keep, int n)
{
	unsigned int lo = 0;

	for (int i = 0; i <= n; i++) {
		unsigned int hi = i < n ? (unsigned int)keep[i] : ~0U;
		if (hi > lo && close_range(lo, hi - 1, 0) < 0)
			for (unsigned int fd = lo; fd < hi && fd < 65536; fd++)
				close((int)fd);
		if (i < n)
			lo = (unsigned int)keep[i] + 1;
	}
}

static void relay_fds(void)
{
	int keep[] = {r.in, r.out, r.ack};

	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			if (keep[j] < keep[i]) {
				int t = keep[i];
				keep[i] = keep[j];
				keep[j] = t;
			}
	close_all_but(keep, 3);
}

static void __attribute__((noreturn)) relay(void)
{
	relay_signals();
	relay_fds();
	prctl(PR_SET_NAME, "netreload-log");
	while (!r.eof) {
		struct pollfd pfd = {.fd = r.in, .events = POLLIN};
		lower_when_done();
		if (poll(&pfd, 1, r.scanned ? NR_LOGS_IDLE_MS : -1) == 0) {
			flush(1); /* quiet: out with a line still missing its newline */
			continue;
		}
		read_more();
		flush(r.have == sizeof(r.buf));
	}
	/* the end: a held-back start of the mark was text after all */
	tail_add(r.buf + r.scanned, r.have - r.scanned);
	r.scanned = r.have;
	flush(1);
	if (!r.marked) {
		/* the loader ended while loading: keep what it printed */
		r.marked = 1;
		ack();
	}
	_exit(0);
}

/* ---- the starter process ---------------------------------------------- */

/* One request, with its three fds; 0 at the end (every loader is gone). */
static ssize_t recv_request(int sock, struct nr_logs_request *req, int *fds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(3 * sizeof(int))];
	} u;
	struct iovec iov = {.iov_base = req, .iov_len = sizeof(*req)};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			   .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c;
	ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);

	if (n <= 0)
		return n;
	c = CMSG_FIRSTHDR(&m);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(3 * sizeof(int))) {
		errno = EPROTO; /* only our loaders write here; nothing came with it */
		return -1;
	}
	memcpy(fds, CMSG_DATA(c), 3 * sizeof(int));
	if (n != sizeof(*req)) {
		for (int i = 0; i < 3; i++)
			close(fds[i]);
		errno = EPROTO;
		return -1;
	}
	return n;
}

/* Fork a relay per request; stop when nobody can ask any more. */
static void __attribute__((noreturn)) starter(int sock)
{
	struct sigaction sa;

	relay_signals();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGCHLD, &sa, NULL); /* relays need no reaping */
	close_all_but(&sock, 1);
	prctl(PR_SET_NAME, "netreload-log");
	for (;;) {
		struct nr_logs_request req;
		int fds[3];
		ssize_t n = recv_request(sock, &req, fds);
		if (n == 0)
			_exit(0);
		if (n < 0) {
			if (errno == EINTR || errno == EPROTO)
				continue;
			_exit(1);
		}
		if (fork() == 0) {
			r.in = fds[0];
			r.out = fds[1];
			r.ack = fds[2];
			r.slot = req.slot;
			r.loader = req.pid;
			relay();
		}
		for (int i = 0; i < 3; i++)
			close(fds[i]);
	}
}

/* ---- the loader's side ------------------------------------------------- */

int nr_logs_init(int n)
{
	int sv[2], st;
	pid_t pid;
	void *p;

	if (slots || n < 1)
		return 0;
	p = mmap(NULL, sizeof(struct nr_logs_slot) * (size_t)n, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		munmap(p, sizeof(struct nr_logs_slot) * (size_t)n);
		return -1;
	}
	slots = p; /* the relays write there */
	nslots = n;
	pid = fork();
	if (pid == 0) {
		if (fork() == 0)
			starter(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -1;
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	starter_fd = sv[0];
	return 0;
}

int nr_logs_fd(void)
{
	return starter_fd;
}

/* Hand the starter a relay's three fds; never wait for it. */
static int ask_starter(int slot, const int *fds)
{
	struct nr_logs_request req = {.slot = slot, .pid = (int32_t)getpid()};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(3 * sizeof(int))];
	} u;
	struct iovec iov = {.iov_base = &req, .iov_len = sizeof(req)};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			   .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	memset(u.buf, 0, sizeof(u.buf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(3 * sizeof(int));
	memcpy(CMSG_DATA(c), fds, 3 * sizeof(int));
	return sendmsg(starter_fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof(req) ? 0 : -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void nr_logs_begin(int slot)
{
	int real = -1, pipe_fds[2] = {-1, -1}, ack_fds[2] = {-1, -1}, give[3];

	if (cap.active || starter_fd < 0)
		return;
	fflush(stderr);
	real = fcntl(2, F_DUPFD_CLOEXEC, 3); /* fails if fd 2 is closed: then leave it so */
	if (real < 0 || pipe2(pipe_fds, O_CLOEXEC) || pipe2(ack_fds, O_CLOEXEC))
		goto fail;
	give[0] = pipe_fds[0];
	give[1] = real;
	give[2] = ack_fds[1];
	if (ask_starter(slot, give) || dup2(pipe_fds[1], 2) < 0)
		goto fail; /* a relay started meanwhile sees the end of its pipe */
	close_fd(&pipe_fds[0]);
	close_fd(&ack_fds[1]);
	cap.active = 1;
	cap.pid = getpid();
	cap.real_fd = real;
	cap.pipe_w = pipe_fds[1];
	cap.ack_r = ack_fds[0];
	return;
fail:
	close_fd(&real);
	for (int i = 0; i < 2; i++) {
		close_fd(&pipe_fds[i]);
		close_fd(&ack_fds[i]);
	}
}

void nr_logs_end(int loaded)
{
	struct pollfd pfd = {.events = POLLIN};
	char byte;

	if (!cap.active || getpid() != cap.pid)
		return;
	fflush(stderr);
	cap.active = 0;
	dup2(cap.real_fd, 2);
	close(cap.real_fd);
	(void)!write(cap.pipe_w, mark, sizeof(mark));
	close(cap.pipe_w);
	pfd.fd = cap.ack_r;
	if (!loaded && poll(&pfd, 1, NR_LOGS_ACK_MS) > 0)
		(void)!read(cap.ack_r, &byte, 1);
	close(cap.ack_r);
	cap.real_fd = cap.pipe_w = cap.ack_r = -1;
}

/* ---- reasons ------------------------------------------------------------ */

/* Is this line "SomeError: message" (or a bare exception name) at column 0? */
static int is_exception_line(const char *p, const char *eol)
{
	static const char *suffix[] = {"Error", "Exception", "Exit", "Interrupt"};
	const char *name_end = p;

	while (name_end < eol && (isalnum((unsigned char)*name_end) || *name_end == '_' ||
				  *name_end == '.'))
		name_end++;
	if (name_end == p || (name_end < eol && *name_end != ':'))
		return 0;
	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		size_t n = strlen(suffix[i]);
		if ((size_t)(name_end - p) >= n && !memcmp(name_end - n, suffix[i], n))
			return 1;
	}
	return 0;
}

/* The last exception line in text, or NULL. */
static const char *last_exception(const char *text, const char **eol_out)
{
	const char *found = NULL;

	for (const char *p = text; *p;) {
		const char *eol = strchr(p, '\n');
		if (!eol)
			eol = p + strlen(p);
		if (is_exception_line(p, eol)) {
			found = p;
			*eol_out = eol;
		}
		p = *eol ? eol + 1 : eol;
	}
	return found;
}

/* The innermost "File ..., line N" before end, as " (file:N)". */
static void location(const char *text, const char *end, char *out, size_t len)
{
	const char *last = NULL;
	char file[256];
	int line;

	for (const char *p = strstr(text, "File \""); p && p < end; p = strstr(p + 1, "File \""))
		last = p;
	out[0] = '\0';
	if (last && sscanf(last, "File \"%255[^\"]\", line %d", file, &line) == 2)
		snprintf(out, len, " (%s:%d)", file, line);
}

/* Python: the last "Type: message" line, and the innermost frame before it. */
static int python_reason(const char *text, char *dst, size_t len)
{
	const char *exc, *eol = NULL;
	char where[300];

	exc = last_exception(text, &eol);
	if (!exc)
		return 0;
	location(text, exc, where, sizeof(where));
	snprintf(dst, len, "app failed to load: %.*s%s", (int)(eol - exc), exc, where);
	return 1;
}

static const char *line_end(const char *p)
{
	const char *eol = strchr(p, '\n');

	return eol ? eol : p + strlen(p);
}

/* The start of the line after p's, or the end of the text. */
static const char *next_line(const char *p)
{
	const char *eol = line_end(p);

	return *eol ? eol + 1 : eol;
}

/* Where a Ruby frame "FILE:LINE:in `f'" (Ruby 3.4: 'f') begins its message:
 * after "': ", or NULL if p..eol is no such frame. */
static const char *ruby_frame_message(const char *p, const char *eol)
{
	const char *in = p, *q;

	while ((in = memmem(in, (size_t)(eol - in), ":in ", 4))) {
		if (in + 4 < eol && (in[4] == '`' || in[4] == '\'') &&
		    (q = memmem(in + 5, (size_t)(eol - in - 5), "': ", 3)))
			return q + 3;
		in += 4;
	}
	return NULL;
}

/* " (SomeError)" or " (Mod::SomeError)" ending p..eol: the class, else NULL. */
static const char *ruby_class(const char *p, const char *eol, size_t *n)
{
	const char *open;

	if (eol - p < 3 || eol[-1] != ')')
		return NULL;
	for (open = eol - 2; open > p && (isalnum((unsigned char)*open) || *open == '_' ||
					  *open == ':');
	     open--)
		;
	if (*open != '(' || open == eol - 2 || !isupper((unsigned char)open[1]))
		return NULL;
	*n = (size_t)(eol - 1 - (open + 1));
	return open + 1;
}

/* The first frame of the backtrace that is a file of the app's, not Ruby's
 * own (<internal:...>): "FILE:LINE" of a frame line (without "\tfrom "). */
static int ruby_location(const char *frame, const char *eol, char *out, size_t len)
{
	const char *colon = memchr(frame, ':', (size_t)(eol - frame));
	const char *end = colon;

	if (frame[0] == '<' || !colon)
		return 0;
	while (++end < eol && isdigit((unsigned char)*end))
		;
	if (end == colon + 1 || *end != ':')
		return 0;
	snprintf(out, len, " (%.*s)", (int)(end - frame), frame);
	return 1;
}

/* Ruby (uWSGI's rack plugin prints errors as Ruby does):
 *   FILE:LINE:in `f': message (SomeError)
 *   \tfrom FILE:LINE:in `g'
 * The message may run over several lines (a SyntaxError quotes the source);
 * its class then ends the last of them. */
static int ruby_reason(const char *text, char *dst, size_t len)
{
	const char *head = NULL, *msg = NULL, *cls = NULL, *msg_eol = NULL;
	char where[300] = "";
	size_t cn = 0;

	for (const char *p = text; *p; p = next_line(p)) {
		const char *eol = line_end(p), *m;
		if (*p == '\t' || !(m = ruby_frame_message(p, eol)))
			continue;
		/* its class ends this line or one before the first "\tfrom" */
		for (const char *q = p; *q && *q != '\t'; q = next_line(q)) {
			const char *c = ruby_class(q, line_end(q), &cn);
			if (c) {
				head = p;
				msg = m;
				msg_eol = q != p ? eol : c - 2 > m ? c - 2 : m; /* before " (" */
				cls = c;
				break;
			}
		}
	}
	if (!head)
		return 0;
	/* the first of its frames in the app's files: this line's own, or a "from";
	 * none when the message starts with its own (a SyntaxError's "FILE:LINE: ") */
	if (ruby_location(msg, msg_eol, where, sizeof(where)))
		where[0] = '\0';
	else if (!ruby_location(head, line_end(head), where, sizeof(where)))
		for (const char *q = next_line(head); *q && !where[0]; q = next_line(q))
			if (!strncmp(q, "\tfrom ", 6))
				ruby_location(q + 6, line_end(q), where, sizeof(where));
	snprintf(dst, len, "app failed to load: %.*s: %.*s%s", (int)cn, cls,
		 (int)(msg_eol - msg), msg, where);
	return 1;
}

/* Perl (uWSGI's psgi plugin): the error ($@) of loading app.psgi, then
 * "unable to find PSGI function entry point.". Perl's messages end
 * "at FILE line N." (Plack says "Error while loading FILE: ..." first); of
 * those printed before that line, after uWSGI's note about Plack, the first
 * is the cause (the ones after it follow from it). */
static int perl_reason(const char *text, char *dst, size_t len)
{
	static const char entry[] = "unable to find PSGI function entry point.";
	static const char plack[] = "using \"do\" instead of \"load_psgi\"";
	const char *end = NULL, *from = text, *found = NULL, *p;

	for (p = text; (p = strstr(p, entry)); p++)
		end = p;
	if (!end)
		return 0;
	for (p = text; (p = strstr(p, plack)) && p < end; p++)
		from = line_end(p);
	for (p = from; *p && p < end && !found; p = next_line(p)) {
		const char *eol = line_end(p), *at = memmem(p, (size_t)(eol - p), " at ", 4);
		if (at && memmem(at, (size_t)(eol - at), " line ", 6))
			found = p;
	}
	if (!found) {
		snprintf(dst, len, "app failed to load: %.*s", (int)(sizeof(entry) - 2), entry);
		return 1;
	}
	p = line_end(found);
	if (p > found && p[-1] == '.')
		p--;
	snprintf(dst, len, "app failed to load: %.*s", (int)(p - found), found);
	return 1;
}

int nr_logs_parse_reason(const char *text, char *dst, size_t len)
{
	return python_reason(text, dst, len) || ruby_reason(text, dst, len) ||
	       perl_reason(text, dst, len);
}

int nr_logs_reason(int slot, pid_t pid, char *dst, size_t len)
{
	static char text[NR_LOGS_TAIL + 1];
	struct nr_logs_slot *s;
	pid_t owner;
	size_t n;

	if (!slots || slot < 0 || slot >= nslots)
		return 0;
	s = &slots[slot];
	owner = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
	if (!owner || (pid && owner != pid))
		return 0;
	n = s->len < NR_LOGS_TAIL ? s->len : NR_LOGS_TAIL;
	memcpy(text, s->tail, n);
	text[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (!text[i])
			text[i] = ' '; /* a NUL in the output must not hide what follows */
	if (__atomic_load_n(&s->pid, __ATOMIC_ACQUIRE) != owner)
		return 0; /* a new process of that slot began writing meanwhile */
	return nr_logs_parse_reason(text, dst, len);
}
