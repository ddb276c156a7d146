/*
 * report.h - how the client speaks: the exit codes and their one table of
 * event names, errors and warnings, usage errors (usage.c), JSON events, and
 * text that others wrote made safe for JSON and terminals (text.c).
 * Nothing here calls up: it is what every other file calls.
 */
#ifndef NR_REPORT_H
#define NR_REPORT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct nr_ping;
struct nr_reply;

/* Exit codes, documented in netreload(1). */
enum {
	NR_EXIT_OK = 0,		 /* live (or accepted, with --no-wait) */
	NR_EXIT_FAILED = 1,	 /* the server says the reload failed */
	NR_EXIT_USAGE = 2,	 /* bad command line */
	NR_EXIT_UNREACHABLE = 3, /* no connection: refused, no route, bad host */
	NR_EXIT_TIMEOUT = 4,	 /* no final answer within --timeout */
	NR_EXIT_PROTOCOL = 5,	 /* the peer is not a netreload server, or hung up */
	NR_EXIT_AUTH = 6,	 /* the server refused our signature: secret or clock */
	NR_EXIT_WATCH = 7,	 /* watch cannot watch: its backend failed */
	NR_EXIT_UNTRUSTED = 8, /* an answer not to believe: unsigned, forged, or another request's */
};

/* "netreload: error: ..." on stderr. */
void nr_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "netreload: warning: ..." on stderr. */
void nr_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error (usage.c): "netreload CMD: WHAT" and "try 'netreload CMD --help'"
 * on stderr (cmd NULL: the bare command). Returns NR_EXIT_USAGE. */
int nr_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct option;
/* The same for what getopt_long (with opterr = 0 and an optstring that starts
 * with ':') returned as '?' or ':' (c): names the option, unknown or missing its value. */
int nr_getopt_error(const char *cmd, int c, char **argv, const struct option *opts);
/* The event name of an exit code ("live", "auth", "untrusted", ...): the one table. */
const char *nr_exit_name(int result);
/* The event of a finished ping: its exit name, or "accepted" (reload with
 * --no-wait), or "status". */
const char *nr_event_name(const struct nr_ping *p);
/* One JSON object on one line describing a finished ping. */
void nr_json_result(FILE *out, const struct nr_ping *p);

/* text.c: every string the client did not write itself is printed through these. */
/* s as a JSON string: quotes, backslashes and control and format characters
 * escaped, bytes that are not UTF-8 as U+FFFD. */
void nr_json_string(FILE *out, const char *s);
/* ,"key":"value" (key is ours and needs no escaping). */
void nr_json_member(FILE *out, const char *key, const char *value);
/* ,"key":"path", and when path is not valid UTF-8 (the JSON string then has
 * U+FFFD for its stray bytes) also ,"key_bytes":"HEX", the raw bytes in hex. */
void nr_json_path(FILE *out, const char *key, const char *path);
/* The one way a JSON event starts, in every command: {"event":..,"time":.. and
 * ,"target":.. unless target is NULL. Members follow; nr_json_end closes the
 * line and flushes it. The schema is in netreload(1), JSON OUTPUT. */
void nr_json_begin(FILE *out, const char *event, const char *target);
void nr_json_end(FILE *out);
/* Now as ISO 8601 local time with milliseconds and offset:
 * 2026-12-01T06:30:00.123+00:00. */
#define NR_ISO_TIME_SIZE 40
void nr_iso_time(char *buf, size_t len);
/* s for a terminal, in buf: backslashes, control and format characters and bytes
 * that are not UTF-8 escaped (\\, \n, \x1b, \u202e); cut with "..." if buf is
 * short (NR_TTY_SIZE(strlen(s)) never is). Returns buf. */
const char *nr_tty(const char *s, char *buf, size_t size);
#define NR_TTY_SIZE(n) (4 * (n) + 1)
/* Where a reload's time went, from the server's step times and the client's total:
 * "stop 23, start 46, import 36, ready 29, network 1 ms". */
void nr_format_steps(const struct nr_reply *f, unsigned client_ms, char *buf, size_t len);
/* The same steps as JSON members: ,"server_ms":..,"stop_ms":.. (live/failed replies only). */
void nr_json_steps(FILE *out, const struct nr_reply *f);
/* An old= list in words: "mules,spooler" -> "the mules and the spooler". */
void nr_old_words(const char *old, char *buf, size_t len);
/* After a failed reply with stale=N: the share the server reads lags behind this
 * host; say on stderr which mount options and server option fix that. */
void nr_stale_advice(const char *label, uint32_t stale);

#endif
