/*
 * files.h - the changed files a reload lists (PROTOCOL.md, "Changed files"):
 * the set of paths a batch of changes collects, and what they are at the
 * moment a ping starts (size, mtime, SHA-256), encoded as file lines.
 *
 * Everything is bounded: at most NR_FILES_MAX paths are listed, the others
 * are only counted ("more"), and a request never exceeds NR_REQUEST_MAX.
 */
#ifndef NR_CLIENT_FILES_H
#define NR_CLIENT_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "../common/nr_files.h"

/* Distinct changed paths relative to one root. */
struct nr_fileset {
	unsigned n;    /* paths listed */
	uint32_t more; /* changed paths not listed: no room, not encodable, or unknown */
	char path[NR_FILES_MAX][NR_FILE_PATH_MAX + 1];
};

/* rel changed: list it once if it is a valid relative path and there is room,
 * otherwise count it in more. */
void nr_fileset_add(struct nr_fileset *s, const char *rel);
/* n changes that cannot be listed: another root, a directory that went, a rescan. */
void nr_fileset_more(struct nr_fileset *s, uint32_t n);
/* Add b's paths and count to into. */
void nr_fileset_merge(struct nr_fileset *into, const struct nr_fileset *b);

/* The file lines of one request, ready to send after its request line. */
struct nr_filelist {
	uint32_t n;		   /* lines */
	uint32_t more;		   /* changed files not listed */
	char sum[NR_HASH_HEX + 1]; /* SHA-256 of lines, "" when n is 0 */
	size_t len;		   /* bytes in lines */
	char lines[NR_FILES_MAX * NR_LINE_MAX];
};

/* Describe every path of s under root as it is now: a file that is gone is
 * listed as deleted, a directory (or other non-file) is skipped, and one that
 * cannot be described (unreadable directory, changing while hashed, line too
 * long) is counted in more. */
void nr_filelist_build(struct nr_filelist *l, const char *root, const struct nr_fileset *s);

/* arg (absolute, or relative to the current directory; it need not exist) as a
 * path relative to root, a real path ("" for root itself). 0, or -1 with err
 * filled when it is not inside root. */
int nr_rel_to_root(const char *root, const char *arg, char *out, size_t len, char *err,
		   size_t errlen);

#endif
