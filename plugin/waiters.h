/*
 * waiters.h - the UDP senders waiting for a generation, and the UDP request
 * ids taken lately (waiters.c owns both).
 */
#ifndef NR_WAITERS_H
#define NR_WAITERS_H

#include <stdint.h>
#include <sys/socket.h>

#include "../common/nr_proto.h"
#include "handover.h"

#define NR_MAX_UDP_WAITERS NR_HO_UDP /* UDP senders waiting for "live" */
#define NR_RECENT_IDS NR_HO_RECENT   /* request ids remembered to drop UDP duplicates */

/* A UDP sender waiting for its generation. */
struct nr_udp_waiter {
	int used;
	struct sockaddr_storage addr;
	socklen_t alen;
	uint64_t t0, want_gen;
	char id[NR_ID_MAX + 1];
};

/* A UDP request id we took, and how its generation ended (kind 0: not yet). */
struct nr_recent {
	char id[NR_ID_MAX + 1];
	uint64_t gen, t0;
	enum nr_kind kind;
	uint32_t ms, stop_ms;
	uint32_t killed;	  /* as its answer said (not kept across a later re-exec) */
	char old[NR_OLD_MAX + 1];
	struct sockaddr_storage addr; /* who sent it: retries are answered there only */
	socklen_t alen;
};

/* sender ss waits for generation gen (asked at t0); a retry of one waiting is not added */
void nr_udp_waiter_add(const struct sockaddr_storage *ss, socklen_t alen, const char *id,
		       uint64_t gen, uint64_t t0);
const struct nr_udp_waiter *nr_udp_waiter_take(uint64_t gen);

struct nr_recent *nr_recent_lookup(const char *id);
void nr_recent_add(const char *id, uint64_t gen, uint64_t t0, const struct sockaddr_storage *from,
		   socklen_t alen);
/* Whether ss sent the request r remembers. */
int nr_recent_from(const struct nr_recent *r, const struct sockaddr_storage *ss, socklen_t alen);
/* Generation gen (and those before) ended as rep says; stop: when the old workers were gone. */
void nr_recent_finish(uint64_t gen, const struct nr_reply *rep, uint64_t stop, uint64_t now);

void nr_waiters_export(struct nr_handover *h);
void nr_waiters_import(const struct nr_handover *h);

#endif
