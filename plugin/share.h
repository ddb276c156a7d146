/*
 * share.h - see the save before reloading: wait until this machine's view of
 * the shared folder shows the files the client listed (size, mtime, content),
 * and make sure no stale compiled .pyc of them can be loaded.
 *
 * NFS and vboxsf cache attributes (and sometimes content) in the guest for
 * seconds, so a reload right after a save can import old code. The check
 * runs in a thread of its own, so a slow or hung share never blocks the
 * uWSGI master; the master polls nr_share_fd() and takes the result with
 * nr_share_result(). Nothing here knows uWSGI: share.c is unit-tested alone.
 */
#ifndef NR_SHARE_H
#define NR_SHARE_H

#include <stdint.h>

#include "../common/nr_files.h"

#define NR_SHARE_FILES NR_FILES_MAX /* files one check waits for; more count as "more" */

enum nr_share_verdict {
	NR_SHARE_SEEN = 0, /* every file shows what the client saved */
	NR_SHARE_STALE,	   /* some still showed old contents at the timeout */
	NR_SHARE_NOROOT,   /* none of the files is there: the root is wrong; reload anyway */
};

/* What one check is about: the files, and how many more changed unlisted. */
struct nr_share_job {
	int n;
	uint32_t more;
	struct nr_file files[NR_SHARE_FILES];
};

struct nr_share_result {
	enum nr_share_verdict verdict;
	int stale;	  /* files still old */
	int pyc_removed;  /* compiled files dropped so they cannot be reused */
	uint64_t us;	  /* how long the check took */
	char reason[NR_REASON_MAX + 1]; /* for a reply: which file, which share, what to do */
};

/* Add a request's files to a job, merging by path (the newest wins); files
 * beyond NR_SHARE_FILES count in job->more. */
void nr_share_job_add(struct nr_share_job *job, const struct nr_file *files, int n,
		      uint32_t more);

/* The check itself, synchronously: poll the files under root until they all
 * match or timeout_ms passes, then drop stale .pyc files. For the thread and
 * for unit tests. */
void nr_share_check(const char *root, const struct nr_share_job *job, uint32_t timeout_ms,
		    struct nr_share_result *res);

/* The checker thread. nr_share_start: -1 with errno if it cannot start. */
int nr_share_start(void);
int nr_share_fd(void); /* readable when a result waits */
/* Start checking job under root; 0, or -1 if a check is still running. */
int nr_share_submit(const char *root, const struct nr_share_job *job, uint32_t timeout_ms);
/* 1 and res filled if a check finished since the last call, else 0. */
int nr_share_result(struct nr_share_result *res);
/* In a forked child: drop the fds (the thread does not exist there). */
void nr_share_forget(void);

#endif
