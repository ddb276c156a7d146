/*
 * paths.c - where a path stands relative to a watched root (see paths.h).
 */
#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *nr_path_under(const char *abs, const char *root)
{
	size_t n = strlen(root);

	if (!strcmp(root, "/"))
		return abs[1] ? abs + 1 : NULL;
	return !strncmp(abs, root, n) && abs[n] == '/' && abs[n + 1] ? abs + n + 1 : NULL;
}

int nr_path_resolve_dir(const char *abs, char *out, size_t len)
{
	const char *slash = strrchr(abs, '/');
	char dir[PATH_MAX], real[PATH_MAX];

	if (!slash || slash - abs >= (long)sizeof(dir))
		return -1;
	snprintf(dir, sizeof(dir), "%.*s", slash == abs ? 1 : (int)(slash - abs), abs);
	if (!realpath(dir, real))
		return -1;
	snprintf(out, len, "%s/%s", strcmp(real, "/") ? real : "", slash + 1);
	return 0;
}
