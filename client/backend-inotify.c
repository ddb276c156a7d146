/*
 * backend-inotify.c - the Linux backend: one inotify watch per directory,
 * added recursively and kept up to date as directories appear, move and go.
 *
 * A file counts as changed when it is closed after writing, renamed in or
 * out, deleted, or touched; a bare create waits for the close, so a
 * half-written file never triggers. A change of attributes alone (chmod,
 * chown, a new hard link) does not count: see attrib_only(). NETRELOAD_INOTIFY_MAX_WATCHES=N
 * pretends the kernel ran out of watches after N (to test the fallback).
 */
#include "compat.h"
#include "backend.h"

#if NR_HAVE_INOTIFY

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_MASK                                                                            \
	(IN_CLOSE_WRITE | IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
	 IN_DELETE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)
#define MAX_READS 64 /* buffers per read() call, so the loop stays responsive */

/* One watched directory. The kernel hands out wds cyclically (1, 2, 3, ...
 * even after watches go), so a table indexed by wd would grow with every
 * directory ever created; this one is a hash on wd and holds only live ones. */
struct slot {
	int wd;	    /* 0: free (the kernel's wds start at 1) */
	char *path; /* relative to the root ("" is the root) */
};

struct ino {
	struct slot *slots; /* open addressing, linear probing, at most half full */
	int cap;	    /* a power of two */
	int nwatches;
	int max_watches; /* 0: as many as the kernel gives */
	int limit;	 /* ENOSPC/EMFILE seen */
};

static int home(const struct ino *in, int wd)
{
	return (int)(((unsigned)wd * 2654435761u) & (unsigned)(in->cap - 1));
}

/* The slot of wd, or the free slot where it would go. */
static struct slot *probe(const struct ino *in, int wd)
{
	int i = home(in, wd);

	while (in->slots[i].wd && in->slots[i].wd != wd)
		i = (i + 1) & (in->cap - 1);
	return &in->slots[i];
}

static const char *path_of(const struct ino *in, int wd)
{
	return wd > 0 && in->cap ? probe(in, wd)->path : NULL;
}

/* Double the table (or make the first one) and move every watch over. */
static int rehash(struct ino *in)
{
	struct ino bigger = *in;

	bigger.cap = in->cap ? in->cap * 2 : 64;
	if (!(bigger.slots = calloc((size_t)bigger.cap, sizeof(*bigger.slots))))
		return -1;
	for (int i = 0; i < in->cap; i++)
		if (in->slots[i].wd)
			*probe(&bigger, in->slots[i].wd) = in->slots[i];
	free(in->slots);
	*in = bigger;
	return 0;
}

/* Remember wd -> rel; the kernel gives an old wd again for a directory re-added. */
static int put(struct ino *in, int wd, const char *rel)
{
	struct slot *s;
	char *copy;

	if (2 * (in->nwatches + 1) > in->cap && rehash(in))
		return -1;
	if (!(copy = strdup(rel)))
		return -1;
	s = probe(in, wd);
	if (!s->wd)
		in->nwatches++;
	free(s->path);
	*s = (struct slot){wd, copy};
	return 0;
}

/* Free slot i, and shift later slots of the same run back so that probe()
 * still finds them: the table keeps no tombstones that would pile up. */
static void drop(struct ino *in, int i)
{
	int mask = in->cap - 1;

	free(in->slots[i].path);
	in->slots[i] = (struct slot){0, NULL};
	in->nwatches--;
	for (int j = (i + 1) & mask; in->slots[j].wd; j = (j + 1) & mask) {
		int h = home(in, in->slots[j].wd);
		/* move j into the hole at i unless its home lies cyclically in (i, j] */
		if (i <= j ? (h > i && h <= j) : (h > i || h <= j))
			continue;
		in->slots[i] = in->slots[j];
		in->slots[j] = (struct slot){0, NULL};
		i = j;
	}
}

/* Watch one directory; 0 on success or a harmless race, -1 when out of watches. */
static int add_one(struct nr_watch *w, const char *rel)
{
	struct ino *in = w->priv;
	char path[PATH_MAX];
	int wd;

	if (nr_path_join(path, sizeof(path), w->root, rel))
		return 0;
	if (in->max_watches && in->nwatches >= in->max_watches)
		errno = ENOSPC, wd = -1;
	else
		wd = inotify_add_watch(w->fd, path, DIR_MASK);
	if (wd < 0) {
		in->limit = errno == ENOSPC || errno == EMFILE;
		return in->limit ? -1 : 0;
	}
	if (put(in, wd, rel))
		return in->limit = 1, -1;
	return 0;
}

static int entry_is_dir(const char *root, const char *rel, const struct dirent *de)
{
	char path[PATH_MAX];
	struct stat st;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_DIR;
	if (nr_path_join(path, sizeof(path), root, rel))
		return 0;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Watch rel and every directory below it that the filter keeps; with cb,
 * report the files found, which appeared before their watch did. */
static int add_tree(struct nr_watch *w, const char *rel, nr_watch_cb cb, void *ctx)
{
	char path[PATH_MAX], child[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (add_one(w, rel))
		return -1;
	if (nr_path_join(path, sizeof(path), w->root, rel))
		return 0;
	if (!(d = opendir(path)))
		return 0;
	while (rc == 0 && (de = nr_dir_next(d, rel, child, sizeof(child)))) {
		if (entry_is_dir(w->root, child, de)) {
			if (!nr_filter_prune(w->filter, child))
				rc = add_tree(w, child, cb, ctx);
		} else if (cb) {
			cb(ctx, w, child, 0);
		}
	}
	closedir(d);
	return rc;
}

/* Drop the watches of rel and below: it moved away or was deleted. */
static void remove_tree(struct nr_watch *w, const char *rel)
{
	struct ino *in = w->priv;
	size_t len = strlen(rel);

	for (int i = 0; i < in->cap;) {
		struct slot *s = &in->slots[i];
		if (s->wd && !strncmp(s->path, rel, len) && (s->path[len] == '\0' || s->path[len] == '/')) {
			inotify_rm_watch(w->fd, s->wd);
			drop(in, i); /* may move a later slot into i: look at i again */
		} else {
			i++;
		}
	}
}

static void forget_wd(struct nr_watch *w, int wd)
{
	struct ino *in = w->priv;
	struct slot *s = path_of(in, wd) ? probe(in, wd) : NULL;

	if (s)
		drop(in, (int)(s - in->slots));
}

static int is_symlink(const struct nr_watch *w, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	if (nr_path_join(path, sizeof(path), w->root, rel))
		return 0;
	return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

/* An IN_ATTRIB that changed no content: chmod and chown set only the ctime,
 * while touch (and a write) set the mtime to the same instant as the ctime.
 * A file that is gone is left to its own IN_DELETE. */
static int attrib_only(const struct nr_watch *w, const struct inotify_event *ev, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;
	struct timespec m, c;

	if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE))
		return 0;
	if (nr_path_join(path, sizeof(path), w->root, rel) || lstat(path, &st))
		return 1;
	m = NR_ST_MTIM(&st);
	c = NR_ST_CTIM(&st);
	return m.tv_sec != c.tv_sec || m.tv_nsec != c.tv_nsec;
}

/* on_event(): the root's own watch is gone; other failures mean out of watches */
#define ROOT_GONE (-99)

/* A directory came, went or moved: keep the watches in step, report content. */
static int on_dir_event(struct nr_watch *w, const struct inotify_event *ev, const char *rel,
			nr_watch_cb cb, void *ctx)
{
	if (ev->mask & (IN_CREATE | IN_MOVED_TO))
		return nr_filter_prune(w->filter, rel) ? 0 : add_tree(w, rel, cb, ctx);
	if (!(ev->mask & (IN_DELETE | IN_MOVED_FROM)))
		return 0; /* IN_ATTRIB (touch, chmod, tar, rsync -a): the tree is still there */
	remove_tree(w, rel);
	cb(ctx, w, rel, 1);
	return 0;
}

static int on_event(struct nr_watch *w, const struct inotify_event *ev, nr_watch_cb cb, void *ctx)
{
	struct ino *in = w->priv;
	const char *dir;
	char rel[PATH_MAX];

	if (ev->mask & IN_Q_OVERFLOW) {
		cb(ctx, w, "", 1); /* events were lost: reload to be safe */
		return add_tree(w, "", NULL, NULL);
	}
	if (!(dir = path_of(in, ev->wd)))
		return 0;
	if (ev->mask & IN_IGNORED) {
		int root = !*dir; /* the watched directory itself went away */
		forget_wd(w, ev->wd);
		if (!root)
			return 0;
		snprintf(w->err, sizeof(w->err), "the directory was removed, moved or unmounted; "
						 "start netreload watch again once it is back");
		return ROOT_GONE;
	}
	if (!ev->len)
		return 0;
	snprintf(rel, sizeof(rel), "%s%s%s", dir, *dir ? "/" : "", ev->name);
	if (ev->mask & IN_ISDIR)
		return on_dir_event(w, ev, rel, cb, ctx);
	if ((ev->mask & IN_CREATE) && !is_symlink(w, rel))
		return 0;
	if ((ev->mask & IN_ATTRIB) && attrib_only(w, ev, rel))
		return 0;
	cb(ctx, w, rel, 0);
	if (!strcmp(ev->name, ".gitignore")) {
		/* the rules changed: directories they no longer ignore need watches now */
		char here[PATH_MAX];
		snprintf(here, sizeof(here), "%s", dir);
		return add_tree(w, here, NULL, NULL);
	}
	return 0;
}

static int limit_error(struct nr_watch *w)
{
	w->limit = NR_LIMIT_WATCHES;
	snprintf(w->err, sizeof(w->err), "out of inotify watches after %d directories",
		 ((struct ino *)w->priv)->nwatches);
	return NR_WATCH_LIMIT;
}

static int ino_read(struct nr_watch *w, nr_watch_cb cb, void *ctx)
{
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (int i = 0; i < MAX_READS; i++) {
		ssize_t n = read(w->fd, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			snprintf(w->err, sizeof(w->err), "reading inotify events: %s", strerror(errno));
			return NR_WATCH_ERR;
		}
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			int rc = on_event(w, ev, cb, ctx);
			if (rc == ROOT_GONE)
				return NR_WATCH_ERR; /* w->err says why */
			if (rc)
				return limit_error(w); /* add_tree() ran out of watches */
			p += sizeof(*ev) + ev->len;
		}
	}
	w->ndirs = ((struct ino *)w->priv)->nwatches;
	w->table_bytes = (size_t)((struct ino *)w->priv)->cap * sizeof(struct slot);
	return NR_WATCH_OK;
}

static void ino_close(struct nr_watch *w)
{
	struct ino *in = w->priv;

	if (in) {
		for (int i = 0; i < in->cap; i++)
			free(in->slots[i].path);
		free(in->slots);
		free(in);
	}
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	w->priv = NULL;
	w->table_bytes = 0;
}

/* EMFILE is also this process running out of descriptors; a spare one says not. */
static int out_of_fds(void)
{
	int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);

	if (fd >= 0)
		close(fd);
	return fd < 0 && errno == EMFILE;
}

/* inotify_init1() failed with err: out of instances means polling will do. */
static int init_error(struct nr_watch *w, int err)
{
	if (err == EMFILE && !out_of_fds()) {
		w->limit = NR_LIMIT_INSTANCES;
		snprintf(w->err, sizeof(w->err), "out of inotify instances (every running watcher, "
						 "editor or IDE holds some)");
		return NR_WATCH_LIMIT;
	}
	snprintf(w->err, sizeof(w->err), "inotify_init: %s%s", strerror(err),
		 err == EMFILE ? " (raise the open-file limit: ulimit -n)" : "");
	return NR_WATCH_ERR;
}

static int ino_open(struct nr_watch *w)
{
	const char *max = getenv("NETRELOAD_INOTIFY_MAX_WATCHES");
	struct ino *in = calloc(1, sizeof(*in));
	int rc;

	w->priv = in;
	w->fd = -1;
	w->period_ms = 0;
	if (!in || (w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		rc = init_error(w, errno);
		ino_close(w);
		return rc;
	}
	in->max_watches = max ? atoi(max) : 0;
	if (add_tree(w, "", NULL, NULL)) {
		rc = limit_error(w);
		ino_close(w);
		return rc;
	}
	w->ndirs = in->nwatches;
	w->table_bytes = (size_t)in->cap * sizeof(struct slot);
	return NR_WATCH_OK;
}

const struct nr_watch_backend nr_watch_inotify = {"inotify", ino_open, ino_read, ino_close};

#else

const struct nr_watch_backend nr_watch_inotify = {"inotify", NULL, NULL, NULL};

#endif
