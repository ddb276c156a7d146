/*
 * explain.c - `netreload watch --explain PATH` (see explain.h): the path is
 * made absolute the way a backend would report it, and put to the filter.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "explain.h"
#include "filter.h"
#include "report.h"

/* The path relative to the first root, as the filter sees a change. */
int nr_explain(const struct nr_watch *w, const char *arg)
{
	char full[PATH_MAX * 2], real[PATH_MAX], why[PATH_MAX];
	char shown[NR_TTY_SIZE(PATH_MAX)], shown_why[NR_TTY_SIZE(PATH_MAX * 2)];
	const char *root = w->root, *rel = NULL;
	size_t rlen = strlen(root);
	struct stat st;
	int yes;

	snprintf(full, sizeof(full), "%s", arg);
	if (realpath(arg, real))
		snprintf(full, sizeof(full), "%s", real);
	else if (arg[0] != '/' && getcwd(real, sizeof(real)))
		snprintf(full, sizeof(full), "%s/%s", real, arg[0] == '.' && arg[1] == '/' ? arg + 2 : arg);
	if (!strncmp(full, root, rlen) && full[rlen] == '/')
		rel = full + rlen + 1;
	else if (!strcmp(root, "/"))
		rel = full + 1;
	if (!rel || !*rel) {
		return nr_usage_error("watch", "--explain '%s': not inside %s (give a path in the "
				      "watched directory)",
				      nr_tty(arg, shown, sizeof(shown)),
				      nr_tty(root, shown_why, sizeof(shown_why)));
	}
	yes = nr_filter_check(w->filter, rel, stat(full, &st) == 0 && S_ISDIR(st.st_mode), why,
			      sizeof(why));
	nr_tty(arg, shown, sizeof(shown));
	nr_tty(why, shown_why, sizeof(shown_why));
	if (yes)
		printf("%s: would trigger a reload (%s)\n", shown, shown_why);
	else
		printf("%s: ignored by %s\n", shown, shown_why);
	return yes ? 0 : 1;
}
