/*
 * debounce.h - turn a burst of changed paths into one reload.
 *
 * A batch fires once no change came for quiet_ms, or max_ms after its first
 * change even if changes keep coming, so a never-ending stream still reloads.
 * A batch is a burst (a formatter, a code generator, a checkout) once a second
 * path joins it, or when it starts within burst_ms of the last change: then it
 * waits for burst_ms of quiet instead, so the whole burst is one reload, or
 * two when its first change was pinged before the second one came.
 */
#ifndef NR_DEBOUNCE_H
#define NR_DEBOUNCE_H

#include <stdint.h>

#include "files.h"

#define NR_DEBOUNCE_SLOTS 4096 /* distinct paths counted exactly per batch */

/* What one reload is about: shown in the output line, listed in the request. */
struct nr_batch {
	char path[1024];	 /* the path that changed last */
	unsigned count;		 /* distinct paths */
	int burst;		 /* it waited for the burst's quiet gap */
	uint64_t t_first;	 /* first change, monotonic ms */
	uint64_t t_fire;	 /* when the quiet window closed (the first, once merged) */
	int cut;		 /* max_ms ran out while changes kept coming */
	struct nr_fileset files; /* the distinct paths, relative to the first root */
};

struct nr_debounce {
	uint32_t quiet_ms, burst_ms, max_ms;
	uint64_t last;	  /* last change; 0 when nothing is pending */
	uint64_t prev;	  /* last change of any batch, taken or not; 0: none yet */
	struct nr_batch b;
	uint64_t seen[NR_DEBOUNCE_SLOTS]; /* path hashes of this batch */
	unsigned nseen;			  /* slots in use */
};

void nr_debounce_init(struct nr_debounce *d, uint32_t quiet_ms, uint32_t burst_ms, uint32_t max_ms);
/* path changed. With list 0 it is only counted in the batch's files.more: it is
 * not a file under the first root (another root, a directory that went, a rescan). */
void nr_debounce_add(struct nr_debounce *d, const char *path, int list, uint64_t now);
/* When the pending batch is due (monotonic ms), or 0 if none is pending. */
uint64_t nr_debounce_due(const struct nr_debounce *d);
/* Hand out the pending batch and start an empty one. */
void nr_debounce_take(struct nr_debounce *d, struct nr_batch *out, uint64_t now);
/* Merge a batch into another that has not been delivered yet, their files too;
 * into keeps its first change, fire time and cut, so the report's parts add up. */
void nr_batch_merge(struct nr_batch *into, const struct nr_batch *b);

#endif
