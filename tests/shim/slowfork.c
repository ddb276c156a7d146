/*
 * slowfork.so - a test shim: every child forked by the preloaded process
 * pauses for SLOWFORK_MS milliseconds before any other fork handler runs.
 *
 * A forked child holds copies of all its parent's fds until the plugin's
 * pthread_atfork handler closes them, normally for microseconds. Child
 * handlers run in the order they were registered, and this constructor runs
 * before uWSGI loads the plugin, so with the shim preloaded that window lasts
 * SLOWFORK_MS: long enough for a test to close connections inside it.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static long pause_ms;

static void child(void)
{
	struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts))
		;
}

__attribute__((constructor)) static void slowfork_init(void)
{
	const char *ms = getenv("SLOWFORK_MS");

	pause_ms = ms ? strtol(ms, NULL, 10) : 0;
	if (pause_ms > 0)
		pthread_atfork(NULL, NULL, child);
}
