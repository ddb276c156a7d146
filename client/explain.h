/*
 * explain.h - `netreload watch --explain PATH`: whether a save of PATH would
 * reload, and which rule of the filter decides.
 */
#ifndef NR_EXPLAIN_H
#define NR_EXPLAIN_H

#include "backend.h"

/* The verdict for arg on stdout, judged by w's filter (the first root's):
 * 0 if it would reload, 1 if not, NR_EXIT_USAGE if arg is not inside w. */
int nr_explain(const struct nr_watch *w, const char *arg);

#endif
