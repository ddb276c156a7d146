/*
 * cmd.c - what the commands share from their command lines: --timeout
 * seconds and --secret-file (see cmd.h).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"
#include "ping.h"
#include "report.h"

int nr_use_secret(const char *path)
{
	static struct nr_secret secret;
	static char from[PATH_MAX + 64];
	char err[512];
	int loose, env = !path || !*path;

	if (env)
		path = getenv("NETRELOAD_SECRET_FILE");
	if (!path || !*path)
		return 0;
	if (nr_secret_load(path, &secret, &loose, err, sizeof(err))) {
		/* a variable set long ago in a shell profile is easy to forget */
		nr_error("%s%s", err, env ? " (named by NETRELOAD_SECRET_FILE in the environment: "
					    "fix or unset it, or give --secret-file)"
					  : "");
		return NR_EXIT_USAGE;
	}
	if (loose)
		nr_warning("secret file %s is readable by group or others; run: chmod 600 %s", path,
			   path);
	snprintf(from, sizeof(from), "%s%s", path, env ? ", named by NETRELOAD_SECRET_FILE" : "");
	nr_ping_set_secret(&secret, from);
	return 0;
}

int nr_parse_seconds(const char *s, uint32_t *ms)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || v <= 0 || v > 86400)
		return -1;
	*ms = (uint32_t)(v * 1000);
	return 0;
}
