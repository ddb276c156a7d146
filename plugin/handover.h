/*
 * handover.h - what one master hands the next across a graceful re-exec.
 *
 * The listeners, the clients waiting for "live", the clients still sending,
 * the UDP waiters and ids, and the reload in flight travel as one line of
 * text in the environment. handover.c is its only writer and its only
 * reader; it knows nothing of uWSGI, so it is unit-tested and fuzzed alone.
 * server.c, waiters.c and reload.c fill a struct nr_handover before the exec and take
 * their parts back from it after.
 */
#ifndef NR_HANDOVER_H
#define NR_HANDOVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../common/nr_files.h"
#include "../common/nr_proto.h"

#define NR_HANDOVER_VERSION 1
#define NR_HANDOVER_MAX 120000 /* bytes of text: one environment string holds 128 KiB */
#define NR_HO_CONNS 128
#define NR_HO_UDP 64
#define NR_HO_RECENT 64
#define NR_HO_READ_MAX 40960 /* bytes a client still sending may have sent */

/* A TCP client: waiting for generation want_gen, or still sending its request. */
struct nr_ho_conn {
	int fd;
	int waiting;
	uint64_t want_gen, t0; /* waiting */
	uint64_t opened;       /* sending: when it connected, so its read timeout runs on */
	char id[NR_ID_MAX + 1];
	const char *buf; /* sending: the bytes so far */
	size_t len;
	int slot; /* the caller's own index; not in the text */
};

struct nr_ho_udp {
	uint64_t want_gen, t0;
	char id[NR_ID_MAX + 1];
	struct sockaddr_storage addr;
	socklen_t alen;
};

struct nr_ho_recent {
	char id[NR_ID_MAX + 1];
	uint64_t gen, t0;
	int kind; /* 0, NR_REPLY_LIVE or NR_REPLY_FAILED */
	uint32_t ms, stop_ms;
	struct sockaddr_storage addr; /* its sender (alen 0: unknown, from an older text) */
	socklen_t alen;
};

struct nr_handover {
	int tcp_fd, udp_fd;
	/* the reload state machine */
	uint64_t gen, first, start, stop, pfirst;
	int active, pending, last;
	enum nr_mode mode, pmode;
	uint32_t last_ms;
	uint32_t killed; /* old workers of the reload in flight killed after netreload-grace */
	int nconns, nudp, nrecent;
	struct nr_ho_conn conns[NR_HO_CONNS];
	struct nr_ho_udp udp[NR_HO_UDP];
	struct nr_ho_recent recent[NR_HO_RECENT];
	/* files the next generation still waits to see on the share */
	int nfiles;
	struct nr_file files[NR_FILES_MAX];
	uint32_t fmore, stale; /* unlisted changes; files a check already found old */
	char stale_reason[NR_REASON_MAX + 1];
	char *text; /* after nr_handover_parse: owns the bytes the readers point into */
};

/* Encode h into buf. What a hand-over must keep comes first and always fits:
 * the clients waiting for "live" (conns that are waiting, which the caller puts
 * first), UDP waiters, ids, the reload and its files; clients still sending a
 * request (no one vouched for them yet) come last and are the ones cut when the
 * text is full. Each list is cut at its first entry that does not fit,
 * and its count in h lowered to match, so the caller can tell which entries
 * stayed behind. 0, or NR_ESPACE if not even the fixed part fits. */
int nr_handover_format(struct nr_handover *h, char *buf, size_t len);

/* Decode text into h (which the caller then frees with nr_handover_free).
 * NR_OK, or NR_EPARSE / NR_EVERSION with err filled; a bad entry is an error,
 * never half-taken. */
int nr_handover_parse(const char *text, struct nr_handover *h, char *err, size_t errlen);
void nr_handover_free(struct nr_handover *h);

#endif
