/*
 * backend-poll.c - the portable backend: walk the tree every period_ms and
 * compare each file's size, mtime and inode with the last walk. Not the
 * ctime: chmod and chown change only that, and they change no code.
 *
 * It builds everywhere and needs no kernel resources, so it is also the
 * fallback when inotify runs out of watches. Costs one lstat() per file per
 * period; prune big directories with the filters.
 */
#include "compat.h"
#include "backend.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_PERIOD_MS 500

struct entry {
	char *path;
	struct timespec mtim;
	off_t size;
	ino_t ino;
};

struct snap {
	struct entry *e;
	size_t n, cap;
	int ndirs;
};

static void snap_free(struct snap *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i].path);
	free(s->e);
	memset(s, 0, sizeof(*s));
}

static int snap_add(struct snap *s, const char *rel, const struct stat *st)
{
	struct entry *e;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		if (!(e = realloc(s->e, cap * sizeof(*e))))
			return -1;
		s->e = e;
		s->cap = cap;
	}
	e = &s->e[s->n];
	if (!(e->path = strdup(rel)))
		return -1;
	e->mtim = NR_ST_MTIM(st);
	e->size = st->st_size;
	e->ino = st->st_ino;
	s->n++;
	return 0;
}

/* Record every file under rel; directories the filter prunes are skipped. */
static int walk(struct nr_watch *w, const char *rel, struct snap *s)
{
	char path[PATH_MAX], child[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int rc = 0;

	if (nr_path_join(path, sizeof(path), w->root, rel))
		return 0;
	if (!(d = opendir(path)))
		return 0;
	s->ndirs++;
	while (rc == 0 && (de = nr_dir_next(d, rel, child, sizeof(child)))) {
		if (nr_path_join(path, sizeof(path), w->root, child) || lstat(path, &st))
			continue;
		if (S_ISDIR(st.st_mode))
			rc = nr_filter_prune(w->filter, child) ? 0 : walk(w, child, s);
		else
			rc = snap_add(s, child, &st);
	}
	closedir(d);
	return rc;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

static int same(const struct entry *a, const struct entry *b)
{
	return a->size == b->size && a->ino == b->ino && a->mtim.tv_sec == b->mtim.tv_sec &&
	       a->mtim.tv_nsec == b->mtim.tv_nsec;
}

/* Merge two sorted snapshots: anything new, gone or different is a change. */
static void diff(struct nr_watch *w, const struct snap *old, const struct snap *cur,
		 nr_watch_cb cb, void *ctx)
{
	size_t i = 0, j = 0;

	while (i < old->n || j < cur->n) {
		int c = i == old->n ? 1 : j == cur->n ? -1 : strcmp(old->e[i].path, cur->e[j].path);
		if (c < 0)
			cb(ctx, w, old->e[i++].path, 0);
		else if (c > 0)
			cb(ctx, w, cur->e[j++].path, 0);
		else if (!same(&old->e[i++], &cur->e[j++]))
			cb(ctx, w, cur->e[j - 1].path, 0);
	}
}

static int scan(struct nr_watch *w, struct snap *s)
{
	if (walk(w, "", s)) {
		snprintf(w->err, sizeof(w->err), "out of memory while scanning %.300s", w->root);
		snap_free(s);
		return NR_WATCH_ERR;
	}
	qsort(s->e, s->n, sizeof(*s->e), by_path);
	w->ndirs = s->ndirs;
	return NR_WATCH_OK;
}

static int poll_read(struct nr_watch *w, nr_watch_cb cb, void *ctx)
{
	struct snap cur = {0}, *old = w->priv;

	if (scan(w, &cur))
		return NR_WATCH_ERR;
	diff(w, old, &cur, cb, ctx);
	snap_free(old);
	*old = cur;
	return NR_WATCH_OK;
}

static void poll_close(struct nr_watch *w)
{
	if (w->priv)
		snap_free(w->priv);
	free(w->priv);
	w->priv = NULL;
}

/* The first walk is the baseline: it reports nothing. */
static int poll_open(struct nr_watch *w)
{
	w->fd = -1;
	if (w->period_ms <= 0)
		w->period_ms = DEFAULT_PERIOD_MS;
	if (!(w->priv = calloc(1, sizeof(struct snap)))) {
		snprintf(w->err, sizeof(w->err), "out of memory");
		return NR_WATCH_ERR;
	}
	return scan(w, w->priv);
}

const struct nr_watch_backend nr_watch_poll = {"poll", poll_open, poll_read, poll_close};
