/*
 * cmd.h - the commands main.c dispatches to, and what they share from their
 * command lines (cmd.c).
 */
#ifndef NR_CMD_H
#define NR_CMD_H

#include <stdint.h>

/* `netreload ping`: reload now, wait until live (cmd_ping.c). */
int nr_cmd_ping(int argc, char **argv);
/* `netreload status`: what each server is doing (cmd_status.c). */
int nr_cmd_status(int argc, char **argv);
/* `netreload watch`: watch source files and ping on every change (cmd_watch.c). */
int nr_cmd_watch(int argc, char **argv);

/* Seconds (fractions allowed) to milliseconds; -1 if not a positive number. */
int nr_parse_seconds(const char *s, uint32_t *ms);
/* Load --secret-file, or $NETRELOAD_SECRET_FILE when path is NULL, and sign with it.
 * Returns 0 (also when there is no secret) or NR_EXIT_USAGE after printing why. */
int nr_use_secret(const char *path);

#endif
