/*
 * files.c - the changed files of a reload (see files.h): collect the paths,
 * describe them when the ping starts, encode the file lines and their sum.
 */
#include "files.h"
#include "compat.h"
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DESCRIBE_TRIES 2 /* a file still changing after this many looks counts in more */

enum { SKIP = 0, LISTED = 1, UNKNOWN = -1, AGAIN = -2 };

static uint32_t add_sat(uint32_t a, uint32_t b)
{
	return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

void nr_fileset_more(struct nr_fileset *s, uint32_t n)
{
	s->more = add_sat(s->more, n);
}

void nr_fileset_add(struct nr_fileset *s, const char *rel)
{
	for (unsigned i = 0; i < s->n; i++)
		if (!strcmp(s->path[i], rel))
			return;
	if (s->n == NR_FILES_MAX || !nr_rel_path_ok(rel)) {
		nr_fileset_more(s, 1);
		return;
	}
	snprintf(s->path[s->n++], sizeof(s->path[0]), "%s", rel);
}

void nr_fileset_merge(struct nr_fileset *into, const struct nr_fileset *b)
{
	for (unsigned i = 0; i < b->n; i++)
		nr_fileset_add(into, b->path[i]);
	nr_fileset_more(into, b->more);
}

/* ---- describing ---------------------------------------------------------- */

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       NR_ST_MTIM(a).tv_sec == NR_ST_MTIM(b).tv_sec && NR_ST_MTIM(a).tv_nsec == NR_ST_MTIM(b).tv_nsec;
}

/* Hash the file st describes; AGAIN if it changed meanwhile. Unreadable: no hash. */
static int hash_file(const char *path, const struct stat *st, struct nr_file *f)
{
	struct stat now;
	uint64_t nread = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), rc, grew, changed;

	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? AGAIN : LISTED;
	rc = nr_hash_fd(fd, NR_HASH_MAX, f->hash, &nread);
	grew = rc && errno == EFBIG;
	changed = fstat(fd, &now) || !same_file(st, &now) || grew ||
		  (rc == 0 && nread != (uint64_t)st->st_size);
	close(fd);
	if (changed)
		return AGAIN; /* written, replaced or deleted between the stat and the read */
	f->has_hash = rc == 0;
	return LISTED;
}

/* One look at path, following symlinks as the server's stat() will. */
static int describe_once(const char *path, struct nr_file *f)
{
	struct stat st;

	f->gone = f->has_hash = 0;
	if (stat(path, &st)) {
		if (errno != ENOENT && errno != ENOTDIR)
			return UNKNOWN;
		f->gone = 1;
		return LISTED;
	}
	if (!S_ISREG(st.st_mode))
		return SKIP; /* a directory is not code; a FIFO or device would block */
	if (NR_ST_MTIM(&st).tv_sec < 0)
		return UNKNOWN; /* dated before 1970: the protocol has no way to say it */
	f->size = (uint64_t)st.st_size;
	f->mtime_sec = (int64_t)NR_ST_MTIM(&st).tv_sec;
	f->mtime_nsec = (uint32_t)NR_ST_MTIM(&st).tv_nsec;
	if (st.st_size > (off_t)NR_HASH_MAX)
		return LISTED;
	return hash_file(path, &st, f);
}

static int describe(const char *root, const char *rel, struct nr_file *f)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", strcmp(root, "/") ? root : "", rel);

	memset(f, 0, sizeof(*f));
	if (n < 0 || (size_t)n >= sizeof(path))
		return UNKNOWN;
	snprintf(f->path, sizeof(f->path), "%s", rel);
	for (int i = 0; i < DESCRIBE_TRIES; i++) {
		int rc = describe_once(path, f);
		if (rc != AGAIN)
			return rc;
	}
	return UNKNOWN;
}

void nr_filelist_build(struct nr_filelist *l, const char *root, const struct nr_fileset *s)
{
	struct nr_file f;

	l->n = 0;
	l->len = 0;
	l->sum[0] = '\0';
	l->more = s->more;
	for (unsigned i = 0; i < s->n; i++) {
		int rc = describe(root, s->path[i], &f), n = 0;
		if (rc == SKIP)
			continue;
		if (rc == LISTED)
			n = nr_file_format(&f, l->lines + l->len, sizeof(l->lines) - l->len);
		if (n <= 0) {
			l->more = add_sat(l->more, 1);
			continue;
		}
		l->len += (size_t)n;
		l->n++;
	}
	if (l->n)
		nr_sha256_hex(l->lines, l->len, l->sum);
}

/* ---- --changed PATH -------------------------------------------------------- */

/* Collapse "//", "." and "dir/.." of an absolute path in place, as spelled. */
static void normalize(char *p)
{
	char *in = p, *out = p;

	while (*in) {
		size_t n;
		while (*in == '/')
			in++;
		n = strcspn(in, "/");
		if (n == 2 && in[0] == '.' && in[1] == '.') {
			while (out > p && *--out != '/')
				;
		} else if (n && !(n == 1 && in[0] == '.')) {
			*out++ = '/';
			memmove(out, in, n);
			out += n;
		}
		in += n;
	}
	if (out == p)
		*out++ = '/';
	*out = '\0';
}

int nr_rel_to_root(const char *root, const char *arg, char *out, size_t len, char *err,
		   size_t errlen)
{
	char cwd[PATH_MAX], abs[2 * PATH_MAX], full[2 * PATH_MAX];
	const char *rel;
	int n;

	if (arg[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
		snprintf(err, errlen, "cannot tell the current directory: %s", strerror(errno));
		return -1;
	}
	n = snprintf(abs, sizeof(abs), "%s/%s", arg[0] == '/' ? "" : cwd, arg);
	if (n < 0 || (size_t)n >= sizeof(abs)) {
		snprintf(err, errlen, "path too long: '%.100s...'", arg);
		return -1;
	}
	normalize(abs);
	/* a symlink that changed is listed under its own name; as spelled if its
	 * directory is gone */
	if (abs[strlen(abs) - 1] == '/' || nr_path_resolve_dir(abs, full, sizeof(full)))
		snprintf(full, sizeof(full), "%s", abs);
	if (!strcmp(full, root)) {
		rel = ""; /* the whole tree */
	} else if (!(rel = nr_path_under(full, root))) {
		snprintf(err, errlen, "'%s' is not a path inside %s (give the files under --root DIR)",
			 arg, root);
		return -1;
	}
	if ((size_t)snprintf(out, len, "%s", rel) >= len) {
		snprintf(err, errlen, "path too long: '%.100s...'", arg);
		return -1;
	}
	return 0;
}
