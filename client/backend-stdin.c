/*
 * backend-stdin.c - the backend for other watchers: read one changed path per
 * line from standard input, as `fswatch -r DIR` or `watchman-wait` print.
 *
 * Relative paths are taken relative to the root as given (DIR), as
 * `watchman-wait DIR` prints them, not to the current directory; absolute
 * ones (fswatch prints those) as they are. Paths that are
 * directories now are skipped: watchers report a directory when something
 * inside changed, and that something is reported on its own line. A path
 * is inside the root when it starts with the root's real path or the root
 * as given (a symlink, say), or when its directory resolves to below the
 * root; any other is passed on absolute, which means outside.
 */
#include "paths.h"
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct in_state {
	char given[PATH_MAX]; /* the root as given, absolute, unresolved */
	char buf[PATH_MAX + 2];
	size_t len;
	int skipping; /* inside a line too long to be a path */
	int old_flags;
};

/* path made absolute: a relative one is joined to base, without its "./". */
static void join(const char *base, const char *path, char *out, size_t len)
{
	if (path[0] == '/')
		snprintf(out, len, "%s", path);
	else
		snprintf(out, len, "%s%s%s", base, strcmp(base, "/") ? "/" : "",
			 path[0] == '.' && path[1] == '/' ? path + 2 : path);
}

/* ".." would step out of wherever the spelling says the path is. */
static int has_dotdot(const char *rel)
{
	return !strncmp(rel, "../", 3) || strstr(rel, "/../") != NULL;
}

/* Where abs is relative to the root, or NULL when it is outside: as spelled
 * (from the root's real path or the root as given), else with its directory
 * resolved, for symlinks elsewhere in the path. */
static const char *relative(const struct nr_watch *w, const struct in_state *s, const char *abs,
			    char *buf, size_t len)
{
	const char *rel;

	if (((rel = nr_path_under(abs, w->root)) || (rel = nr_path_under(abs, s->given))) && !has_dotdot(rel))
		return rel;
	return nr_path_resolve_dir(abs, buf, len) == 0 ? nr_path_under(buf, w->root) : NULL;
}

/* The root as the user spelled it, made absolute from the current directory:
 * "DIR/" and "." too. */
static void given_root(const char *dir, char *out, size_t len)
{
	char cwd[PATH_MAX] = "";
	size_t n;

	if (dir[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), ".");
	join(cwd, strcmp(dir, ".") ? dir : "", out, len);
	for (n = strlen(out); n > 1 && out[n - 1] == '/'; n--)
		out[n - 1] = '\0';
}

static void on_line(struct nr_watch *w, char *line, nr_watch_cb cb, void *ctx)
{
	char abs[PATH_MAX + 2], real[PATH_MAX + 2];
	const char *rel;
	struct stat st;

	line[strcspn(line, "\r")] = '\0';
	if (!*line)
		return;
	join(((struct in_state *)w->priv)->given, line, abs, sizeof(abs));
	if (stat(abs, &st) == 0 && S_ISDIR(st.st_mode))
		return;
	rel = relative(w, w->priv, abs, real, sizeof(real));
	cb(ctx, w, rel ? rel : abs, 0);
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

void nr_watch_stdin_feed(struct nr_watch *w, const char *data, size_t n, nr_watch_cb cb,
			 void *ctx)
{
	struct in_state *s = w->priv;

	if (n == 0) {
		if (s->len && !s->skipping) {
			s->buf[s->len] = '\0';
			on_line(w, s->buf, cb, ctx);
		}
		s->len = 0;
		return;
	}
	while (n > 0) {
		/* split() always leaves room: it empties a buffer that fills up */
		size_t room = sizeof(s->buf) - 1 - s->len, k = n < room ? n : room;
		memcpy(s->buf + s->len, data, k);
		s->len += k;
		data += k;
		n -= k;
		split(w, s, cb, ctx);
	}
}

static int stdin_read(struct nr_watch *w, nr_watch_cb cb, void *ctx)
{
	char chunk[PATH_MAX];
	ssize_t n = read(w->fd, chunk, sizeof(chunk));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return NR_WATCH_OK;
	if (n < 0) {
		snprintf(w->err, sizeof(w->err), "reading stdin: %s", strerror(errno));
		return NR_WATCH_ERR;
	}
	nr_watch_stdin_feed(w, chunk, (size_t)n, cb, ctx);
	return n == 0 ? NR_WATCH_EOF : NR_WATCH_OK;
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
	given_root(w->dir ? w->dir : w->root, s->given, sizeof(s->given));
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
