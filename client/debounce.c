/*
 * debounce.c - coalesce changed paths into batches (see debounce.h).
 */
#include "debounce.h"

#include <stdio.h>
#include <string.h>

void nr_debounce_init(struct nr_debounce *d, uint32_t quiet_ms, uint32_t burst_ms, uint32_t max_ms)
{
	memset(d, 0, sizeof(*d));
	d->quiet_ms = quiet_ms;
	d->burst_ms = burst_ms > quiet_ms ? burst_ms : quiet_ms;
	d->max_ms = max_ms;
}

/* Listed and unlisted paths are told apart: "x.py" under the first root and
 * "x.py" under another are two changes. */
static uint64_t hash_path(const char *s, int list)
{
	uint64_t h = list ? 14695981039346656037ull : 7809847782465536322ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h ? h : 1;
}

/* 1 if path is new to this batch. Past half the table every path counts as new:
 * the count is then only an estimate, and probing a full table would be slow. */
static int first_sighting(struct nr_debounce *d, const char *path, int list)
{
	uint64_t h = hash_path(path, list);

	if (d->nseen >= NR_DEBOUNCE_SLOTS / 2)
		return 1;
	for (unsigned i = 0; i < NR_DEBOUNCE_SLOTS; i++) {
		uint64_t *slot = &d->seen[(h + i) % NR_DEBOUNCE_SLOTS];
		if (*slot == h)
			return 0;
		if (!*slot) {
			*slot = h;
			d->nseen++;
			return 1;
		}
	}
	return 1;
}

/* The batch is named after the path that changed last: an atomic save writes a
 * temp file first and renames it over the real one, which comes last. A second
 * distinct path makes it a burst; one save that gives two events for its file
 * (a rename, then the mode put back) does not. */
void nr_debounce_add(struct nr_debounce *d, const char *path, int list, uint64_t now)
{
	now = now ? now : 1;
	if (!d->last) {
		d->b.t_first = now;
		d->b.count = 0;
		/* the last batch went out moments ago: the burst that made it goes on */
		d->b.burst = d->prev && now - d->prev < d->burst_ms;
	}
	snprintf(d->b.path, sizeof(d->b.path), "%s", path);
	d->last = d->prev = now;
	if (!first_sighting(d, path, list))
		return;
	if (d->b.count)
		d->b.burst = 1;
	d->b.count++;
	if (list)
		nr_fileset_add(&d->b.files, path);
	else
		nr_fileset_more(&d->b.files, 1);
}

/* When the batch's quiet gap ends (a burst waits longer), and when its cap does. */
static uint64_t quiet_at(const struct nr_debounce *d)
{
	return d->last + (d->b.burst ? d->burst_ms : d->quiet_ms);
}

static uint64_t cap_at(const struct nr_debounce *d)
{
	return d->b.t_first + d->max_ms;
}

uint64_t nr_debounce_due(const struct nr_debounce *d)
{
	uint64_t quiet = quiet_at(d), cap = cap_at(d);

	if (!d->last)
		return 0;
	return quiet < cap ? quiet : cap;
}

void nr_debounce_take(struct nr_debounce *d, struct nr_batch *out, uint64_t now)
{
	*out = d->b;
	out->t_fire = now;
	out->cut = cap_at(d) < quiet_at(d);
	d->last = 0;
	memset(&d->b, 0, sizeof(d->b));
	memset(d->seen, 0, sizeof(d->seen));
	d->nseen = 0;
}

/* The newer batch names the reload; counts add up (a path may count twice); the
 * older one's times stay: the reload waited since its quiet window closed. */
void nr_batch_merge(struct nr_batch *into, const struct nr_batch *b)
{
	if (!into->count) {
		*into = *b;
		return;
	}
	into->count += b->count;
	into->burst |= b->burst;
	memcpy(into->path, b->path, sizeof(into->path));
	nr_fileset_merge(&into->files, &b->files);
}
