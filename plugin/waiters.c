/*
 * waiters.c - who waits for which generation over UDP, and the UDP request
 * ids taken lately (with how their generation ended), so a retry is answered
 * instead of reloading twice. The one owner of both; handed over a re-exec
 * with the rest (handover.h). TCP clients wait on their connection (server.c).
 */
#include "waiters.h"

#include "util.h"

#include <stdio.h>
#include <string.h>

static struct nr_udp_waiter udpw[NR_MAX_UDP_WAITERS];
static struct nr_recent recent[NR_RECENT_IDS];
static int recent_next;

void nr_udp_waiter_add(const struct sockaddr_storage *ss, socklen_t alen, const char *id,
		       uint64_t gen, uint64_t t0)
{
	int slot = -1;

	for (int i = 0; i < NR_MAX_UDP_WAITERS; i++) {
		struct nr_udp_waiter *w = &udpw[i];
		if (w->used && id[0] && !strcmp(w->id, id) && w->alen == alen &&
		    !memcmp(&w->addr, ss, alen))
			return; /* a retry of a sender already waiting */
	}
	for (int i = 0; i < NR_MAX_UDP_WAITERS; i++) {
		if (!udpw[i].used) {
			slot = i;
			break;
		}
		if (slot < 0 || udpw[i].t0 < udpw[slot].t0)
			slot = i; /* full: the oldest waiter gives way */
	}
	udpw[slot] = (struct nr_udp_waiter){.used = 1, .alen = alen, .t0 = t0, .want_gen = gen};
	memcpy(&udpw[slot].addr, ss, alen);
	snprintf(udpw[slot].id, sizeof(udpw[slot].id), "%s", id);
}

/* The next sender that waits for generation gen or an earlier one, taken off
 * the list (valid until the next call), or NULL. */
const struct nr_udp_waiter *nr_udp_waiter_take(uint64_t gen)
{
	for (int i = 0; i < NR_MAX_UDP_WAITERS; i++) {
		if (!udpw[i].used || udpw[i].want_gen > gen)
			continue;
		udpw[i].used = 0;
		return &udpw[i];
	}
	return NULL;
}

struct nr_recent *nr_recent_lookup(const char *id)
{
	for (int i = 0; i < NR_RECENT_IDS; i++)
		if (id[0] && !strcmp(recent[i].id, id))
			return &recent[i];
	return NULL;
}

void nr_recent_add(const char *id, uint64_t gen, uint64_t t0, const struct sockaddr_storage *from,
		   socklen_t alen)
{
	struct nr_recent *r = &recent[recent_next++ % NR_RECENT_IDS];

	*r = (struct nr_recent){.gen = gen, .t0 = t0};
	snprintf(r->id, sizeof(r->id), "%s", id);
	if (alen <= sizeof(r->addr)) {
		memcpy(&r->addr, from, alen);
		r->alen = alen;
	}
}

/* Whether ss sent the request r remembers. */
int nr_recent_from(const struct nr_recent *r, const struct sockaddr_storage *ss, socklen_t alen)
{
	return r->alen == alen && !memcmp(&r->addr, ss, alen);
}

/* Remember how a generation ended, so a UDP retry whose answer was lost gets it again. */
void nr_recent_finish(uint64_t gen, const struct nr_reply *rep, uint64_t stop, uint64_t now)
{
	for (int i = 0; i < NR_RECENT_IDS; i++) {
		struct nr_recent *r = &recent[i];
		if (!r->id[0] || r->kind || r->gen > gen)
			continue;
		r->kind = rep->kind;
		r->ms = nr_ms32(now, r->t0);
		r->stop_ms = nr_ms32(stop, r->t0);
		r->killed = rep->killed;
		snprintf(r->old, sizeof(r->old), "%s", rep->old);
	}
}

static void udp_waiter_adopt(const struct nr_ho_udp *hu)
{
	for (int i = 0; i < NR_MAX_UDP_WAITERS; i++) {
		struct nr_udp_waiter *w = &udpw[i];
		if (w->used)
			continue;
		*w = (struct nr_udp_waiter){.used = 1, .alen = hu->alen, .t0 = hu->t0,
					    .want_gen = hu->want_gen};
		memcpy(&w->addr, &hu->addr, hu->alen);
		snprintf(w->id, sizeof(w->id), "%s", hu->id);
		return;
	}
}

/* The UDP senders waiting and the ids taken, for the next master. */
void nr_waiters_export(struct nr_handover *h)
{
	for (int i = 0; i < NR_MAX_UDP_WAITERS && h->nudp < NR_HO_UDP; i++) {
		struct nr_udp_waiter *w = &udpw[i];
		struct nr_ho_udp *hu;
		if (!w->used)
			continue;
		hu = &h->udp[h->nudp++];
		*hu = (struct nr_ho_udp){.want_gen = w->want_gen, .t0 = w->t0, .alen = w->alen};
		memcpy(&hu->addr, &w->addr, w->alen);
		snprintf(hu->id, sizeof(hu->id), "%s", w->id);
	}
	for (int i = 0; i < NR_RECENT_IDS && h->nrecent < NR_HO_RECENT; i++) {
		struct nr_recent *r = &recent[i];
		struct nr_ho_recent *hr;
		if (!r->id[0])
			continue;
		hr = &h->recent[h->nrecent++];
		*hr = (struct nr_ho_recent){.gen = r->gen, .t0 = r->t0, .kind = (int)r->kind,
					    .ms = r->ms, .stop_ms = r->stop_ms, .alen = r->alen};
		memcpy(&hr->addr, &r->addr, r->alen);
		memcpy(hr->id, r->id, sizeof(hr->id)); /* the same size, and terminated */
	}
}

void nr_waiters_import(const struct nr_handover *h)
{
	for (int i = 0; i < h->nudp; i++)
		udp_waiter_adopt(&h->udp[i]);
	for (int i = 0; i < h->nrecent; i++) {
		struct nr_recent *r = &recent[recent_next++ % NR_RECENT_IDS];
		*r = (struct nr_recent){.gen = h->recent[i].gen, .t0 = h->recent[i].t0,
					.kind = (enum nr_kind)h->recent[i].kind,
					.ms = h->recent[i].ms, .stop_ms = h->recent[i].stop_ms,
					.alen = h->recent[i].alen};
		memcpy(&r->addr, &h->recent[i].addr, h->recent[i].alen);
		snprintf(r->id, sizeof(r->id), "%s", h->recent[i].id);
	}
}
