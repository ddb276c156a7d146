/*
 * test_debounce.c - the debouncer fed made-up times (monotonic ms): one save
 * waits for the debounce, a burst for its quiet gap, everything for at most
 * the max delay, and a batch right after another continues its burst.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "../../client/debounce.h"

static struct nr_debounce d; /* 4096 slots: too big for the stack of a test */

static void test_single_save(void)
{
	struct nr_batch b;

	nr_debounce_init(&d, 20, 250, 10000);
	CHECK(nr_debounce_due(&d) == 0);
	nr_debounce_add(&d, "views.py", 1, 1000);
	CHECK(nr_debounce_due(&d) == 1020);
	nr_debounce_add(&d, "views.py", 1, 1005); /* the same file again (a rename, then chmod) */
	CHECK(nr_debounce_due(&d) == 1025);
	nr_debounce_take(&d, &b, 1025);
	CHECK(b.count == 1 && !b.burst && b.t_first == 1000 && b.t_fire == 1025);
	CHECK(nr_debounce_due(&d) == 0);
}

static void test_two_files_are_a_burst(void)
{
	struct nr_batch b;

	nr_debounce_init(&d, 20, 250, 10000);
	nr_debounce_add(&d, "a.py", 1, 1000);
	nr_debounce_add(&d, "b.py", 1, 1010);
	CHECK(nr_debounce_due(&d) == 1260);
	nr_debounce_take(&d, &b, 1260);
	CHECK(b.count == 2 && b.burst && !strcmp(b.path, "b.py"));
}

/* A formatter: one file every 30 ms. The first goes out alone after 20 ms;
 * the rest, one batch, once 250 ms pass without a file. */
static void test_formatter(void)
{
	struct nr_batch b;
	uint64_t t = 1000;
	int fired = 0;

	nr_debounce_init(&d, 20, 250, 10000);
	for (int i = 0; i < 200; i++, t += 30) {
		char name[32];
		uint64_t due = nr_debounce_due(&d);
		if (due && due <= t) {
			nr_debounce_take(&d, &b, due);
			fired++;
		}
		snprintf(name, sizeof(name), "m%d.py", i);
		nr_debounce_add(&d, name, 1, t);
	}
	CHECK(fired == 1);
	CHECK(nr_debounce_due(&d) == t - 30 + 250);
	nr_debounce_take(&d, &b, t - 30 + 250);
	CHECK(b.burst && b.count == 199 && !strcmp(b.path, "m199.py"));
	/* a save well after the burst is a single save again */
	nr_debounce_add(&d, "views.py", 1, t + 1000);
	CHECK(nr_debounce_due(&d) == t + 1020);
}

static void test_max_delay(void)
{
	nr_debounce_init(&d, 20, 250, 1000);
	for (uint64_t t = 1000; t < 1900; t += 100) {
		char name[32];
		snprintf(name, sizeof(name), "f%llu.py", (unsigned long long)t);
		nr_debounce_add(&d, name, 1, t);
	}
	CHECK(nr_debounce_due(&d) == 2000); /* the cap, not 1800 + 250 */
	nr_debounce_init(&d, 50, 10, 1000); /* burst-quiet never below the debounce */
	nr_debounce_add(&d, "a.py", 1, 1000);
	nr_debounce_add(&d, "b.py", 1, 1001);
	CHECK(nr_debounce_due(&d) == 1051);
}

static void test_merge(void)
{
	struct nr_batch a = {0}, b = {0};

	a.count = 1;
	b.count = 2;
	b.burst = 1;
	nr_batch_merge(&a, &b);
	CHECK(a.count == 3 && a.burst);
}

int main(void)
{
	test_single_save();
	test_two_files_are_a_burst();
	test_formatter();
	test_max_delay();
	test_merge();
	return check_summary();
}
