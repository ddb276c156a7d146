/*
 * tickclock.so - a test shim: every CLOCK_MONOTONIC reading in the preloaded
 * process is at least 1 ms later than the one before.
 *
 * Code that reads the clock twice in one pass and mixes the readings (a
 * timestamp taken with the second, compared against the first) only breaks
 * when a millisecond boundary falls between the two reads: rarely, and more
 * often on a loaded machine. With the shim it happens on every pass.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <stdint.h>
#include <time.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static uint64_t last_ns;

int clock_gettime(clockid_t id, struct timespec *ts)
{
	uint64_t ns, prev, next;
	int rc;

	if (!real_clock_gettime)
		real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT,
										  "clock_gettime");
	rc = real_clock_gettime(id, ts);
	if (rc || id != CLOCK_MONOTONIC)
		return rc;
	ns = (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
	prev = __atomic_load_n(&last_ns, __ATOMIC_RELAXED);
	do {
		next = ns > prev + 1000000u ? ns : prev + 1000000u;
	} while (!__atomic_compare_exchange_n(&last_ns, &prev, next, 0, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	ts->tv_sec = (time_t)(next / 1000000000u);
	ts->tv_nsec = (long)(next % 1000000000u);
	return 0;
}
