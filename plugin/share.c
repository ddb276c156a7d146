/*
 * share.c - wait until the shared folder shows what the client saved.
 *
 * For every listed file: statx with AT_STATX_FORCE_SYNC (NFS and FUSE then
 * ask the server instead of the attribute cache), compare size and mtime,
 * then read the content and compare its SHA-256. Poll until all match or
 * the timeout passes. Then remove the __pycache__ entries of the changed
 * .py files: Python trusts a .pyc whose recorded mtime and size match the
 * source's, which a cached attribute or a same-second edit of the same size
 * fakes. When the client could not list everything (more > 0), every .pyc
 * under the root is checked against its source's fresh attributes instead.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* statx, pipe2 */
#endif
#include "share.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NR_POLL_FIRST_MS 10   /* between looks, for the first NR_POLL_FAST_MS */
#define NR_POLL_FAST_MS 200
#define NR_POLL_MS 50	      /* between looks afterwards */
#define NR_NOROOT_MS 1000     /* nothing listed is there at all: the root is wrong, stop */
#define NR_MTIME_GRACE_MS 1000 /* content right, mtime still differs: trust the content */
#define NR_TREE_MAX 50000     /* entries a whole-tree .pyc check visits at most */

enum file_state { F_MATCH, F_OLD, F_MISSING, F_NODIR };

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void nr_share_job_add(struct nr_share_job *job, const struct nr_file *files, int n, uint32_t more)
{
	job->more += more;
	for (int i = 0; i < n; i++) {
		int j = 0;
		while (j < job->n && strcmp(job->files[j].path, files[i].path))
			j++;
		if (j < job->n)
			job->files[j] = files[i];
		else if (job->n < NR_SHARE_FILES)
			job->files[job->n++] = files[i];
		else
			job->more++;
	}
}

/* statx that asks the server, not the cache; 0 or -1 with errno. */
static int fresh_stat(const char *path, struct statx *sx)
{
	return statx(AT_FDCWD, path, AT_STATX_FORCE_SYNC, STATX_SIZE | STATX_MTIME, sx);
}

static int parent_exists(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct statx sx;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	return fresh_stat(dir, &sx) == 0;
}

/* Does the content read through the share now hash to what the client saw? */
static int content_matches(const char *path, const struct nr_file *f)
{
	unsigned char hash[NR_HASH_LEN];
	uint64_t nread;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return 0;
	rc = nr_hash_fd(fd, NR_HASH_MAX, hash, &nread);
	close(fd);
	return rc == 0 && nread == f->size && !memcmp(hash, f->hash, NR_HASH_LEN);
}

/* Where one file stands. *mtime_off is set when only its mtime still differs. */
static enum file_state file_state(const char *path, const struct nr_file *f, int *mtime_off)
{
	struct statx sx;

	*mtime_off = 0;
	if (fresh_stat(path, &sx)) {
		if (errno != ENOENT && errno != ENOTDIR)
			return F_OLD;
		if (f->gone)
			return F_MATCH;
		return parent_exists(path) ? F_MISSING : F_NODIR;
	}
	if (f->gone || sx.stx_size != f->size)
		return F_OLD;
	if (f->has_hash && !content_matches(path, f))
		return F_OLD;
	/* sftp and some vboxsf versions keep whole seconds only: compare those */
	*mtime_off = sx.stx_mtime.tv_sec != f->mtime_sec;
	if (*mtime_off && !f->has_hash)
		return F_OLD;
	return F_MATCH;
}

/* ---- the mount a path lives on, for the reason text -------------------- */

/* "fuse.sshfs at /mnt/share", from the longest mount point that holds path. */
static void mount_of(const char *path, char *out, size_t len)
{
	FILE *fp = fopen("/proc/self/mountinfo", "re");
	char line[4096], best_type[64] = "?", best_at[PATH_MAX] = "/";
	size_t best = 0;

	while (fp && fgets(line, sizeof(line), fp)) {
		char at[PATH_MAX], type[64];
		const char *dash = strstr(line, " - ");
		size_t n;
		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", at) != 1 ||
		    sscanf(dash + 3, "%63s", type) != 1)
			continue;
		n = strlen(at);
		if (n >= best && !strncmp(path, at, n) && (path[n] == '/' || !path[n] || n == 1)) {
			best = n;
			snprintf(best_type, sizeof(best_type), "%s", type);
			snprintf(best_at, sizeof(best_at), "%s", at);
		}
	}
	if (fp)
		fclose(fp);
	snprintf(out, len, "%s at %s", best_type, best_at);
}

/* ---- compiled files ---------------------------------------------------- */

/* Remove dir/__pycache__/STEM.*.pyc for a changed dir/STEM.py; returns how many. */
static int drop_pyc_of(const char *path)
{
	char cache[PATH_MAX], stem[NAME_MAX + 1], victim[PATH_MAX + NAME_MAX + 2];
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	size_t blen = strlen(base), slen;
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (blen < 4 || strcmp(base + blen - 3, ".py"))
		return 0;
	slen = blen - 3;
	snprintf(stem, sizeof(stem), "%.*s.", (int)slen, base);
	snprintf(cache, sizeof(cache), "%.*s__pycache__", (int)(base - path), path);
	if (!(d = opendir(cache)))
		return 0;
	while ((de = readdir(d))) {
		size_t dlen = strlen(de->d_name);
		if (strncmp(de->d_name, stem, slen + 1) || dlen < 4 ||
		    strcmp(de->d_name + dlen - 4, ".pyc"))
			continue;
		snprintf(victim, sizeof(victim), "%s/%s", cache, de->d_name);
		n += unlink(victim) == 0;
	}
	closedir(d);
	return n;
}

/* Does a .pyc's header (PEP 552: magic, flags, mtime, size) still describe
 * its source as the share shows it now? Hash-based .pycs check themselves. */
static int pyc_current(const char *pyc, const char *src)
{
	unsigned char h[16];
	struct statx sx;
	uint32_t flags, mtime, size;
	int fd = open(pyc, O_RDONLY | O_CLOEXEC);
	ssize_t got = fd < 0 ? -1 : read(fd, h, sizeof(h));

	if (fd >= 0)
		close(fd);
	if (got != (ssize_t)sizeof(h) || fresh_stat(src, &sx))
		return 1; /* not ours to judge */
	flags = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
	mtime = (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 24;
	size = (uint32_t)h[12] | (uint32_t)h[13] << 8 | (uint32_t)h[14] << 16 | (uint32_t)h[15] << 24;
	return flags != 0 || (mtime == (uint32_t)sx.stx_mtime.tv_sec && size == (uint32_t)sx.stx_size);
}

/* In dir/__pycache__: drop every STEM.*.pyc whose dir/STEM.py changed since. */
static int check_pycache(const char *dir, int *budget)
{
	char cache[PATH_MAX], pyc[PATH_MAX + NAME_MAX + 2], src[PATH_MAX + NAME_MAX + 2];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(cache, sizeof(cache), "%s/__pycache__", dir);
	if (!(d = opendir(cache)))
		return 0;
	while ((de = readdir(d)) && --*budget > 0) {
		const char *dot = strchr(de->d_name, '.');
		size_t dlen = strlen(de->d_name);
		if (!dot || dlen < 5 || strcmp(de->d_name + dlen - 4, ".pyc"))
			continue;
		snprintf(pyc, sizeof(pyc), "%s/%s", cache, de->d_name);
		snprintf(src, sizeof(src), "%s/%.*s.py", dir, (int)(dot - de->d_name), de->d_name);
		if (!pyc_current(pyc, src))
			n += unlink(pyc) == 0;
	}
	closedir(d);
	return n;
}

/* The whole tree below dir, hidden directories left out, bounded by *budget. */
static int check_tree(const char *dir, int depth, int *budget)
{
	char sub[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int n = check_pycache(dir, budget);

	if (depth > 32 || !(d = opendir(dir)))
		return n;
	while ((de = readdir(d)) && --*budget > 0) {
		if (de->d_name[0] == '.' || de->d_type != DT_DIR || !strcmp(de->d_name, "__pycache__"))
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name) < sizeof(sub))
			n += check_tree(sub, depth + 1, budget);
	}
	closedir(d);
	return n;
}

/* ---- the check --------------------------------------------------------- */

struct look {
	int present; /* files the client saw (not deleted) */
	int old, missing, nodir, mtime_off;
	const struct nr_file *first_old; /* for the reason */
};

static void look_once(const char *root, const struct nr_share_job *job, struct look *lk)
{
	char path[PATH_MAX];

	memset(lk, 0, sizeof(*lk));
	for (int i = 0; i < job->n; i++) {
		const struct nr_file *f = &job->files[i];
		int off;
		enum file_state st;
		snprintf(path, sizeof(path), "%s/%s", root, f->path);
		st = file_state(path, f, &off);
		lk->present += !f->gone;
		lk->mtime_off += off;
		if (st == F_MATCH)
			continue;
		lk->old++;
		lk->missing += st == F_MISSING || st == F_NODIR;
		lk->nodir += st == F_NODIR;
		if (!lk->first_old)
			lk->first_old = f;
	}
}

static void set_reason(struct nr_share_result *res, const char *root, const struct look *lk,
		       uint32_t timeout_ms)
{
	char path[PATH_MAX], mnt[PATH_MAX + 80], msg[3 * PATH_MAX];
	const char *rel = lk->first_old->path, *more = lk->old > 1 ? " (and others)" : "";

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	mount_of(path, mnt, sizeof(mnt));
	if (res->verdict == NR_SHARE_NOROOT)
		snprintf(msg, sizeof(msg),
			 "%s not found under %s (%s): set netreload-root to where this machine "
			 "mounts the directory the client watches; reloading without waiting",
			 rel, root, mnt);
	else if (lk->first_old->gone)
		snprintf(msg, sizeof(msg),
			 "stale share: %s%s still exists here %u ms after it was deleted (%s); "
			 "nothing reloaded",
			 rel, more, timeout_ms, mnt);
	else
		snprintf(msg, sizeof(msg),
			 "stale share: %s%s still %s here after %u ms (%s); nothing reloaded", rel,
			 more, lk->missing ? "missing or old" : "old", timeout_ms, mnt);
	nr_reason_set(res->reason, msg); /* cut to what a reply carries */
}

void nr_share_check(const char *root, const struct nr_share_job *job, uint32_t timeout_ms,
		    struct nr_share_result *res)
{
	uint64_t t0 = mono_us(), now, content_since = 0;
	struct look lk;
	int budget = NR_TREE_MAX;

	memset(res, 0, sizeof(*res));
	for (;;) {
		look_once(root, job, &lk);
		now = mono_us();
		if (!lk.old && lk.mtime_off && !content_since)
			content_since = now;
		if (!lk.old && (!lk.mtime_off || now - content_since >= NR_MTIME_GRACE_MS * 1000ull))
			break;
		/* every file the client saw is missing here (deleted ones may match) */
		if (lk.present && lk.missing == lk.present && lk.old == lk.missing &&
		    now - t0 >= NR_NOROOT_MS * 1000ull) {
			res->verdict = NR_SHARE_NOROOT;
			break;
		}
		if (now - t0 >= (uint64_t)timeout_ms * 1000) {
			res->verdict = NR_SHARE_STALE;
			break;
		}
		usleep((now - t0 < NR_POLL_FAST_MS * 1000ull ? NR_POLL_FIRST_MS : NR_POLL_MS) * 1000);
	}
	res->stale = lk.old;
	if (res->verdict != NR_SHARE_SEEN) {
		set_reason(res, root, &lk, timeout_ms);
	} else {
		char path[PATH_MAX];
		for (int i = 0; i < job->n; i++) {
			snprintf(path, sizeof(path), "%s/%s", root, job->files[i].path);
			res->pyc_removed += drop_pyc_of(path);
		}
		if (job->more)
			res->pyc_removed += check_tree(root, 0, &budget);
	}
	res->us = mono_us() - t0;
}

/* ---- the thread -------------------------------------------------------- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int started, busy, has_job, has_result;
	int pipe[2];
	char root[PATH_MAX];
	uint32_t timeout_ms;
	struct nr_share_job job;
	struct nr_share_result result;
} sh = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, .pipe = {-1, -1}};

static void *share_loop(void *arg)
{
	static struct nr_share_job job;
	static struct nr_share_result res;
	char root[PATH_MAX];
	uint32_t timeout_ms;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&sh.lock);
		while (!sh.has_job)
			pthread_cond_wait(&sh.wake, &sh.lock);
		job = sh.job;
		memcpy(root, sh.root, sizeof(root));
		timeout_ms = sh.timeout_ms;
		sh.has_job = 0;
		pthread_mutex_unlock(&sh.lock);

		nr_share_check(root, &job, timeout_ms, &res);

		pthread_mutex_lock(&sh.lock);
		sh.result = res;
		sh.has_result = 1;
		pthread_mutex_unlock(&sh.lock);
		if (write(sh.pipe[1], "r", 1) < 0) {
			/* a full pipe already wakes the master */
		}
	}
	return NULL;
}

int nr_share_start(void)
{
	sigset_t all, old;
	pthread_t t;
	int rc;

	if (sh.started)
		return 0;
	if (pipe2(sh.pipe, O_NONBLOCK | O_CLOEXEC))
		return -1;
	/* signals belong to the master's own thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, NULL, share_loop, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		errno = rc;
		return -1;
	}
	pthread_detach(t);
	sh.started = 1;
	return 0;
}

int nr_share_fd(void)
{
	return sh.pipe[0];
}

int nr_share_submit(const char *root, const struct nr_share_job *job, uint32_t timeout_ms)
{
	pthread_mutex_lock(&sh.lock);
	if (sh.busy) {
		pthread_mutex_unlock(&sh.lock);
		return -1;
	}
	sh.job = *job;
	snprintf(sh.root, sizeof(sh.root), "%s", root);
	sh.timeout_ms = timeout_ms;
	sh.has_job = sh.busy = 1;
	pthread_cond_signal(&sh.wake);
	pthread_mutex_unlock(&sh.lock);
	return 0;
}

int nr_share_result(struct nr_share_result *res)
{
	char sink[64];
	int got;

	while (read(sh.pipe[0], sink, sizeof(sink)) > 0)
		;
	pthread_mutex_lock(&sh.lock);
	got = sh.has_result;
	if (got) {
		*res = sh.result;
		sh.has_result = sh.busy = 0;
	}
	pthread_mutex_unlock(&sh.lock);
	return got;
}

void nr_share_forget(void)
{
	if (sh.pipe[0] >= 0)
		close(sh.pipe[0]);
	if (sh.pipe[1] >= 0)
		close(sh.pipe[1]);
	sh.pipe[0] = sh.pipe[1] = -1;
}
