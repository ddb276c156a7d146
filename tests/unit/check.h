/*
 * check.h - the unit tests' one assertion macro and their closing line.
 *
 * CHECK counts instead of aborting, so one run reports every failure; each
 * test binary ends with check_summary(), which prints "N passed, N failed".
 */
#ifndef NR_CHECK_H
#define NR_CHECK_H

#include <stdio.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                           \
	do {                                                                                  \
		if (cond) {                                                                   \
			check_passed++;                                                       \
		} else {                                                                      \
			check_failed++;                                                       \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
		}                                                                             \
	} while (0)

static inline int check_summary(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}

#endif
