/*
 * watch-stdin.c - the backend for other watchers: read one changed path per
 * line from standard input, as `fswatch -r DIR` or `watchman-wait` print.
 *
 * Relative paths are taken from the current directory. Paths that are
 * directories now are skipped: watchers report a directory when something
 * inside changed, and that something is reported on its own line.
 */
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct in_state {
	char buf[PATH_MAX + 2];
	size_t len;
	int skipping; /* inside a line too long to be a path */
	int old_flags;
};

/* Absolute path: cwd-relative input is joined to the current directory. */
static void absolute(const char *line, char *out, size_t len)
{
	char cwd[PATH_MAX];

	if (line[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		snprintf(out, len, "%s", line);
	else
		snprintf(out, len, "%s/%s", cwd, line[0] == '.' && line[1] == '/' ? line + 2 : line);
}

static void on_line(struct nr_watch *w, char *line, nr_watch_cb cb, void *ctx)
{
	char abs[PATH_MAX + 2];
	size_t rlen = strlen(w->root);
	struct stat st;

	line[strcspn(line, "\r")] = '\0';
	if (!*line)
		return;
	absolute(line, abs, sizeof(abs));
	if (stat(abs, &st) == 0 && S_ISDIR(st.st_mode))
		return;
	if (!strncmp(abs, w->root, rlen) && abs[rlen] == '/')
		cb(ctx, w, abs + rlen + 1, 0);
	else if (!strcmp(w->root, "/"))
		cb(ctx, w, abs + 1, 0);
	else
		cb(ctx, w, abs, 0);
}

/* Split what arrived into lines; an over-long line is dropped whole. */
static void split(struct nr_watch *w, struct in_state *s, nr_watch_cb cb, void *ctx)
{
	char *nl;

	while ((nl = memchr(s->buf, '\n', s->len))) {
		size_t n = (size_t)(nl - s->buf) + 1;
		*nl = '\0';
		if (!s->skipping)
			on_line(w, s->buf, cb, ctx);
		s->skipping = 0;
		memmove(s->buf, s->buf + n, s->len - n);
		s->len -= n;
	}
	if (s->len == sizeof(s->buf) - 1) {
		s->skipping = 1;
		s->len = 0;
	}
}

static int stdin_read(struct nr_watch *w, nr_watch_cb cb, void *ctx)
{
	struct in_state *s = w->priv;
	ssize_t n = read(w->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return NR_WATCH_OK;
	if (n < 0) {
		snprintf(w->err, sizeof(w->err), "reading stdin: %s", strerror(errno));
		return NR_WATCH_ERR;
	}
	if (n == 0) {
		if (s->len && !s->skipping) {
			s->buf[s->len] = '\0';
			on_line(w, s->buf, cb, ctx);
		}
		s->len = 0;
		return NR_WATCH_EOF;
	}
	s->len += (size_t)n;
	split(w, s, cb, ctx);
	return NR_WATCH_OK;
}

/* Put stdin back as we found it: it is shared with the shell. */
static void stdin_close(struct nr_watch *w)
{
	struct in_state *s = w->priv;

	if (s && s->old_flags >= 0)
		fcntl(w->fd, F_SETFL, s->old_flags);
	free(s);
	w->priv = NULL;
	w->fd = -1;
}

static int stdin_open(struct nr_watch *w)
{
	struct in_state *s = calloc(1, sizeof(*s));

	w->fd = STDIN_FILENO;
	w->period_ms = 0;
	w->ndirs = 0;
	w->priv = s;
	if (!s) {
		snprintf(w->err, sizeof(w->err), "out of memory");
		return NR_WATCH_ERR;
	}
	s->old_flags = fcntl(w->fd, F_GETFL);
	if (s->old_flags < 0) {
		snprintf(w->err, sizeof(w->err), "stdin is closed: pipe a watcher into it, e.g. "
						 "fswatch -r DIR | netreload watch --stdin ...");
		stdin_close(w);
		return NR_WATCH_ERR;
	}
	fcntl(w->fd, F_SETFL, s->old_flags | O_NONBLOCK);
	return NR_WATCH_OK;
}

const struct nr_watch_backend nr_watch_stdin = {"stdin", stdin_open, stdin_read, stdin_close};
