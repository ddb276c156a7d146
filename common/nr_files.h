/*
 * nr_files.h - the changed files a reload request lists (PROTOCOL.md,
 * "Changed files"), so a server on a lagging share can wait until it sees
 * exactly those contents before it reloads.
 *
 * One file line is "F SIZE MTIME HASH PATH\n": decimal bytes, SEC.NNNNNNNNN,
 * 64 hex of SHA-256, and the path relative to the watched root with every
 * byte outside 0x21-0x7e (and '%') written %XX; a deleted file has '-' for
 * the first three. Like the rest of common/, nothing here prints or exits.
 */
#ifndef NR_FILES_H
#define NR_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "nr_proto.h"

#define NR_FILES_MAX 64		 /* file lines after one request line */
#define NR_FILE_PATH_MAX 400	 /* bytes of a decoded path */
#define NR_HASH_LEN 32		 /* SHA-256 bytes */
#define NR_HASH_HEX 64		 /* its lowercase hex */
#define NR_HASH_MAX (16u << 20)	 /* larger files are not hashed */
/* A whole request: its line and up to NR_FILES_MAX file lines. */
#define NR_REQUEST_MAX (NR_LINE_MAX * (1 + NR_FILES_MAX))

struct nr_file {
	char path[NR_FILE_PATH_MAX + 1]; /* decoded, relative */
	int gone;			 /* deleted: nothing below is set */
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	int has_hash;
	unsigned char hash[NR_HASH_LEN];
};

/* One file line (its LF optional, a CR before it ignored): NR_OK or NR_EPARSE. */
int nr_file_parse(const char *line, size_t len, struct nr_file *f, char *err, size_t errlen);
/* Bytes written including the LF, and a NUL after them when len leaves room (so
 * buf[NR_LINE_MAX] holds any line); NR_ESPACE if it does not fit in len or would
 * exceed NR_LINE_MAX; NR_EPARSE for a bad path, nanoseconds or negative mtime. */
int nr_file_format(const struct nr_file *f, char *buf, size_t len);
/* 1 if rel is a valid relative path: not empty, at most NR_FILE_PATH_MAX bytes,
 * no leading '/', no empty, "." or ".." component. */
int nr_rel_path_ok(const char *rel);
/* SHA-256 of data as lowercase hex and a NUL. */
void nr_sha256_hex(const void *data, size_t len, char out[NR_HASH_HEX + 1]);
/* Hash everything readable from fd (from its current offset) up to EOF; *nread =
 * bytes read. 0, or -1 with errno set. Reads in chunks, never more than max bytes
 * (then -1, errno EFBIG). */
int nr_hash_fd(int fd, uint64_t max, unsigned char out[NR_HASH_LEN], uint64_t *nread);

#endif
