/*
 * util.h - what every plugin file may use without knowing uWSGI: the
 * monotonic clock (common/nr_clock.h) and the log (glue.c writes it through
 * uwsgi_log; a unit test links its own).
 */
#ifndef NR_UTIL_H
#define NR_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "../common/nr_clock.h"

/* Milliseconds from then to now; 0 if then is the later one (never 2^64 - 1). */
static inline uint64_t nr_ms_since(uint64_t now, uint64_t then)
{
	return now > then ? now - then : 0;
}

/* Milliseconds from t0 to t as a reply carries them; 0 if t0 is the later one. */
static inline uint32_t nr_ms32(uint64_t t, uint64_t t0)
{
	return t > t0 ? (uint32_t)(t - t0) : 0;
}

/* A line in uWSGI's log (uwsgi_log). */
void nr_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same with errno's text, as uwsgi_error writes it. */
#define nr_log_errno(what) nr_log("%s: %s [%s line %d]\n", what, strerror(errno), __FILE__, __LINE__)

/* Bad input is logged at most once a second, with a count, never per packet. */
void nr_complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void nr_complain_flush(uint64_t now);
int nr_complaints_pending(void);

#endif
