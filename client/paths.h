/*
 * paths.h - where a path stands relative to a watched root, for the --stdin
 * backend and for `ping --changed` alike.
 */
#ifndef NR_PATHS_H
#define NR_PATHS_H

#include <stddef.h>

/* The part of abs below root, or NULL if abs is not strictly below it. */
const char *nr_path_under(const char *abs, const char *root);

/* abs with its directory resolved (symlinks, ".."), the last name kept as
 * spelled, into out: 0, or -1 (out untouched) if abs is relative or its
 * directory is gone. */
int nr_path_resolve_dir(const char *abs, char *out, size_t len);

#endif
