/*
 * usage.c - usage errors: one line that says what is wrong, one that says
 * where the help is, exit 2. getopt's own messages are off (opterr = 0):
 * they name the program by argv[0], which is the command ("ping:"), and
 * read like iputils' ping.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

int nr_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "netreload%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\ntry 'netreload%s%s --help'\n", cmd ? " " : "", cmd ? cmd : "");
	return NR_EXIT_USAGE;
}

/* The length of a long option's name as written: "--timeout=5" -> 7. */
static size_t name_len(const char *arg)
{
	return strcspn(arg + 2, "=");
}

/* The option arg ("--name" or "--name=...") names exactly, or NULL. */
static const struct option *long_named(const char *arg, const struct option *opts)
{
	size_t n = name_len(arg);

	for (; opts->name; opts++)
		if (strlen(opts->name) == n && !strncmp(opts->name, arg + 2, n))
			return opts;
	return NULL;
}

/* An unknown long option: ambiguous (a prefix of several) or unknown. */
static int bad_long(const char *cmd, const char *arg, const struct option *opts)
{
	char list[256] = "";
	size_t n = name_len(arg), len = 0;
	int matches = 0;

	for (; opts->name; opts++)
		if (!strncmp(opts->name, arg + 2, n) && len < sizeof(list)) {
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s--%s",
						matches ? ", " : "", opts->name);
			matches++;
		}
	if (matches > 1)
		return nr_usage_error(cmd, "ambiguous option '--%.*s' (%s)", (int)n, arg + 2, list);
	return nr_usage_error(cmd, "unknown option '--%.*s'", (int)n, arg + 2);
}

/* After getopt_long (optstring starting with ':') returned '?' or ':'. optind
 * has moved past a long option, but not past a short one inside a group
 * ("-qZ"), so a short option is named by optopt. */
int nr_getopt_error(const char *cmd, int c, char **argv, const struct option *opts)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	const struct option *o = strncmp(arg, "--", 2) ? NULL : long_named(arg, opts);
	int is_long = !strncmp(arg, "--", 2) && (!optopt || (o && o->val == optopt));

	if (c == ':' && is_long)
		return nr_usage_error(cmd, "option '--%.*s' needs a value", (int)name_len(arg),
				      arg + 2);
	if (c == ':')
		return nr_usage_error(cmd, "option '-%c' needs a value", optopt);
	if (is_long && o)
		return nr_usage_error(cmd, "option '--%s' takes no value", o->name);
	if (is_long)
		return bad_long(cmd, arg, opts);
	if (optopt > 0x20 && optopt < 0x7f)
		return nr_usage_error(cmd, "unknown option '-%c'", optopt);
	return nr_usage_error(cmd, "unknown option (byte 0x%02x)", (unsigned)optopt & 0xff);
}
