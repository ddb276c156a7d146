/*
 * logtap.c - keep the last bytes written to stderr, to say why an app failed.
 *
 * When an app fails to import, Python prints the traceback on stderr (in the
 * master, or in each worker with lazy-apps) and uWSGI serves 500s. To put the
 * exception in the "failed" reply, the master's fd 2 becomes a pipe; a thread
 * copies everything to the real stderr unchanged and keeps the last
 * NR_TAP_SIZE bytes. Forked children inherit the pipe as their stderr. Before
 * a re-exec the real stderr is put back, so the next master starts clean.
 */
#include "netreload.h"

#include <ctype.h>
#include <pthread.h>
#include <sys/ioctl.h>

extern struct uwsgi_server uwsgi;

#define NR_TAP_SIZE 16384

static struct {
	int running;
	int orig_fd, pipe_r;
	pthread_t thread;
	pthread_mutex_t lock;
	char ring[NR_TAP_SIZE];
	uint64_t total; /* bytes seen so far; ring holds the last NR_TAP_SIZE */
	uint64_t mark;	/* total when the current reload started */
} tap = {.orig_fd = -1, .pipe_r = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void keep(const char *buf, size_t n)
{
	pthread_mutex_lock(&tap.lock);
	for (size_t i = 0; i < n; i++)
		tap.ring[(tap.total + i) % NR_TAP_SIZE] = buf[i];
	tap.total += n;
	pthread_mutex_unlock(&tap.lock);
}

static void *tap_loop(void *arg)
{
	char buf[4096];

	(void)arg;
	for (;;) {
		ssize_t n = read(tap.pipe_r, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(tap.orig_fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break; /* stderr is gone: keep reading so writers never block */
			off += w;
		}
		keep(buf, (size_t)n);
	}
}

void nr_logtap_start(void)
{
	int p[2];
	sigset_t all, old;

	if (pipe2(p, O_CLOEXEC))
		return;
	tap.orig_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
	if (tap.orig_fd < 0 || dup2(p[1], 2) < 0) {
		close(p[0]);
		close(p[1]);
		return;
	}
	close(p[1]);
	tap.pipe_r = p[0];
	uwsgi_add_safe_fd(tap.pipe_r);
	uwsgi_add_safe_fd(tap.orig_fd);
	/* the thread must never take the master's signals */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	tap.running = pthread_create(&tap.thread, NULL, tap_loop, NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!tap.running) {
		dup2(tap.orig_fd, 2);
		close(tap.pipe_r);
	}
}

/* Before exec: give fd 2 back and let the thread copy out what is still queued. */
void nr_logtap_stop(void)
{
	int queued = 1;

	if (!tap.running)
		return;
	fflush(stderr);
	dup2(tap.orig_fd, 2);
	for (int i = 0; i < 50 && queued > 0; i++) {
		if (ioctl(tap.pipe_r, FIONREAD, &queued))
			break;
		if (queued > 0)
			usleep(1000);
	}
	tap.running = 0;
}

void nr_logtap_mark(void)
{
	pthread_mutex_lock(&tap.lock);
	tap.mark = tap.total;
	pthread_mutex_unlock(&tap.lock);
}

/* Copy the bytes logged since the mark (at most the ring) into out. */
static size_t since_mark(char *out, size_t len)
{
	uint64_t from;
	size_t n;

	pthread_mutex_lock(&tap.lock);
	from = tap.mark;
	if (tap.total - from > NR_TAP_SIZE)
		from = tap.total - NR_TAP_SIZE;
	n = (size_t)(tap.total - from);
	if (n > len - 1)
		n = len - 1, from = tap.total - n;
	for (size_t i = 0; i < n; i++)
		out[i] = tap.ring[(from + i) % NR_TAP_SIZE];
	pthread_mutex_unlock(&tap.lock);
	out[n] = '\0';
	return n;
}

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

/* The last exception line in buf, or NULL. */
static const char *last_exception(const char *buf, const char **eol_out)
{
	const char *found = NULL;

	for (const char *p = buf; *p;) {
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
static void location(const char *buf, const char *end, char *out, size_t len)
{
	const char *last = NULL;
	char file[256];
	int line;

	for (const char *p = strstr(buf, "File \""); p && p < end; p = strstr(p + 1, "File \""))
		last = p;
	out[0] = '\0';
	if (last && sscanf(last, "File \"%255[^\"]\", line %d", file, &line) == 2)
		snprintf(out, len, " (%s:%d)", file, line);
}

void nr_logtap_reason(char *dst, size_t len)
{
	static char buf[NR_TAP_SIZE + 1];
	const char *exc, *eol = NULL;
	char where[300];

	since_mark(buf, sizeof(buf));
	exc = last_exception(buf, &eol);
	if (!exc) {
		snprintf(dst, len, "app failed to load: workers run without an application "
				   "(no exception in the log; see the uWSGI log)");
		return;
	}
	location(buf, exc, where, sizeof(where));
	snprintf(dst, len, "app failed to load: %.*s%s", (int)(eol - exc), exc, where);
}
