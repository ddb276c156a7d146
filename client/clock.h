/*
 * clock.h - the client's one clock: monotonic, in micro- and milliseconds.
 * Every interval (timeouts, debounce, backoff, lookups) is measured with it.
 */
#ifndef NR_CLOCK_H
#define NR_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t nr_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static inline uint64_t nr_mono_ms(void)
{
	return nr_mono_us() / 1000;
}

#endif
