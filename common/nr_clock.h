/*
 * nr_clock.h - the one clock of plugin and client: monotonic, in micro- and
 * milliseconds. Every interval (timeouts, debounce, backoff, a reload's
 * steps) is measured with it.
 */
#ifndef NR_CLOCK_H
#define NR_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t nr_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static inline uint64_t nr_now_ms(void)
{
	return nr_now_us() / 1000;
}

#endif
