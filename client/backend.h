/*
 * backend.h - the interface every file-watching backend implements.
 *
 * A backend watches one root and reports changed paths through a callback.
 * loop.c owns the only poll() loop: it polls w->fd for POLLIN, or, when fd
 * is -1, calls read() every period_ms. Backends never print; they describe
 * problems in w->err, which backend.c (the one that picks them) reports.
 */
#ifndef NR_BACKEND_H
#define NR_BACKEND_H

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "filter.h"

enum {
	NR_WATCH_OK = 0,
	NR_WATCH_ERR = -1,   /* see w->err */
	NR_WATCH_LIMIT = -2, /* out of inotify watches/instances: fall back to polling */
	NR_WATCH_EOF = -3,   /* no more changes will come (stdin closed) */
};

/* With NR_WATCH_LIMIT, the kernel limit that ran out (w->limit). */
enum nr_watch_limit {
	NR_LIMIT_WATCHES,   /* ENOSPC from inotify_add_watch */
	NR_LIMIT_INSTANCES, /* EMFILE from inotify_init1 */
};

struct nr_watch;

/* One changed path, relative to the root (or absolute if outside it). */
typedef void (*nr_watch_cb)(void *ctx, struct nr_watch *w, const char *rel, int is_dir);

struct nr_watch_backend {
	const char *name;
	/* Start watching w->root; fills fd, period_ms and ndirs. */
	int (*open)(struct nr_watch *w);
	/* Report what changed since the last call. */
	int (*read)(struct nr_watch *w, nr_watch_cb cb, void *ctx);
	void (*close)(struct nr_watch *w);
};

struct nr_watch {
	const struct nr_watch_backend *be;
	char root[4096];	   /* absolute, no trailing '/' */
	const char *dir;	   /* the DIR argument as given: may be relative, or a symlink */
	struct nr_filter *filter;  /* prunes ignored directories */
	int fd;			   /* poll() for POLLIN, or -1 */
	int period_ms;		   /* with fd -1: call read() this often */
	int ndirs;		   /* directories watched, for the startup line */
	enum nr_watch_limit limit; /* which limit an NR_WATCH_LIMIT hit */
	size_t table_bytes;	   /* memory of the per-directory table, for -v; 0: none */
	char err[512];
	void *priv;
};

/* root + "/" + rel, or just root when rel is empty; -1 if it does not fit. */
static inline int nr_path_join(char *out, size_t len, const char *root, const char *rel)
{
	int n = snprintf(out, len, "%s%s%s", root, *rel ? "/" : "", rel);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The next entry of the open directory rel as a root-relative path in out
 * ("rel/name", or "name" at the root), skipping "." and ".." and names too
 * long for out; NULL at the end. Both directory walkers use it. */
static inline struct dirent *nr_dir_next(DIR *d, const char *rel, char *out, size_t len)
{
	struct dirent *de;

	while ((de = readdir(d))) {
		int n;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n = snprintf(out, len, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		if (n >= 0 && (size_t)n < len)
			return de;
	}
	return NULL;
}

extern const struct nr_watch_backend nr_watch_inotify; /* .open is NULL where unsupported */
extern const struct nr_watch_backend nr_watch_poll;
extern const struct nr_watch_backend nr_watch_stdin;

/* What --stdin's read() does with the bytes it got: report each complete line
 * through cb; n == 0 means the input ended. w is open with nr_watch_stdin. It is
 * also how fuzz_stdin reaches the line reader without a pipe. */
void nr_watch_stdin_feed(struct nr_watch *w, const char *data, size_t n, nr_watch_cb cb,
			 void *ctx);

/* backend.c, the one that prints for them. */
/* Open w with the backend asked for (--stdin, --poll MS) or the best there is:
 * inotify, else polling, with a warning that says why. 0, or NR_EXIT_WATCH
 * after saying why not. */
int nr_backend_open(struct nr_watch *w, int use_stdin, int poll_ms);
/* inotify ran out while the tree grew (read() said NR_WATCH_LIMIT): poll w
 * from now on, with the same warning. 0, or NR_EXIT_WATCH after saying why. */
int nr_backend_fallback(struct nr_watch *w, int poll_ms);
/* "WHAT ROOT: WHY" (w->err) as an error; returns NR_EXIT_WATCH. */
int nr_backend_failed(const struct nr_watch *w, const char *what);

#endif
