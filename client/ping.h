/*
 * ping.h - one non-blocking netreload request to one server.
 *
 * A struct nr_ping is a small state machine (connect, send, read replies)
 * driven from a poll() loop, so `ping` and `watch` can talk to several
 * servers at once. It never prints: results and errors land in the struct.
 */
#ifndef NR_PING_H
#define NR_PING_H

#include <netdb.h>
#include <poll.h>
#include <stdint.h>

#include "../common/nr_auth.h"
#include "../common/nr_proto.h"
#include "../common/nr_clock.h"
#include "files.h"
#include "report.h"
#include "targets.h"

enum { NR_PROBE_NONE, NR_PROBE_UDP, NR_PROBE_TCP };
#define NR_PROBE_MS 1000 /* how long a probe may take */
#define NR_EARLY_PROBE_MS 1000 /* UDP silent this long: one early look over TCP */

#define NR_HELLO_IDS 8 /* UDP: the last hellos sent, any of whose answers will do */

enum nr_ping_state { NR_PING_IDLE, NR_PING_CONNECTING, NR_PING_SENDING, NR_PING_READING, NR_PING_DONE };

struct nr_ping {
	struct nr_target target;
	struct nr_request req;
	enum nr_ping_state state;
	int fd;
	int udp;	     /* over UDP: resend the same datagram until answered */
	int refused;	     /* UDP: the port answered "closed" at least once */
	uint64_t resend_at;  /* UDP: when to send again */
	uint32_t resend_ms;  /* UDP: current retry interval */
	int result; /* an NR_EXIT_* once state is NR_PING_DONE */
	/* with a secret: the request names the server's instance id, asked first
	 * with a hello unless addrs knew it (PROTOCOL.md, "Instances") */
	int hello;		  /* the hello is in flight; the request waits in out */
	int sid_cached;		  /* sid came from addrs: an "instance" error asks again, once */
	char sid[NR_SID_HEX + 1];
	struct nr_addrs *addrs;	  /* the caller's (it keeps the sid too), or NULL */
	struct addrinfo *ai_cur;  /* the address connected to: the request follows the hello */
	char hello_out[NR_LINE_MAX];
	size_t hello_len;
	char hello_ids[NR_HELLO_IDS][NR_ID_MAX + 1];
	unsigned nhello;
	size_t head_len;	  /* out: the request line as it stands; file lines follow */
	unsigned untrusted;	  /* UDP: answers not believed (over TCP one ends the ping) */
	char untrusted_why[200];
	uint64_t t_start, t_accepted, t_done, deadline;
	uint64_t t_start_us, t_accepted_us; /* finer, for --json */
	int got_accepted;
	int heard;	  /* a netreload reply came: the peer is netreload */
	/* after silence, one probe of the other transport on the same port says
	 * why (ping.c, "Probes"); what is reported if it cannot tell */
	int probe;	  /* NR_PROBE_* */
	int silent_closed; /* TCP: the peer closed without a word (else: said nothing in time) */
	int silent_refused; /* UDP: the port answered "closed" */
	unsigned silent_ms; /* how long the first transport was given */
	/* UDP: the early look over TCP (ping.c, "Probes") and the UDP side it
	 * returns to when the look cannot tell */
	int early;	       /* the TCP probe in flight is the early one */
	int early_done;	       /* it was made (once a ping) */
	int udp_fd;	       /* the UDP socket meanwhile, or -1 */
	int udp_hello;	       /* what p->hello was */
	uint64_t udp_deadline; /* and p->deadline */
	struct nr_reply accepted, final;
	char err[600];
	struct addrinfo *ai_list; /* looked up by this ping, freed by it; NULL if borrowed */
	struct addrinfo *ai_next; /* next address to try */
	char out[NR_REQUEST_MAX]; /* the request line, then its file lines (TCP) */
	size_t out_len, out_off;
	char in[NR_LINE_MAX * 2];
	size_t in_len;
};


/* Sign every request started from now on with this secret (NULL: don't sign);
 * from says where it came from ("PATH", "PATH, named by NETRELOAD_SECRET_FILE"),
 * for messages about a signature the server rejects. */
void nr_ping_set_secret(const struct nr_secret *secret, const char *from);

/* Send req, and after it the file lines of files unless that is NULL (PROTOCOL.md,
 * "Changed files"); req's files, more and sum are set from files. */
void nr_ping_start(struct nr_ping *p, const struct nr_target *t, const struct nr_request *req,
		   const struct nr_filelist *files, uint32_t timeout_ms);
/* The same over UDP, with retries; a request without id gets one (needed for de-dup).
 * File lines are never sent over UDP: the files only count in more=. */
void nr_ping_start_udp(struct nr_ping *p, const struct nr_target *t, const struct nr_request *req,
		       const struct nr_filelist *files, uint32_t timeout_ms);
/* Over TCP with a's addresses, looked up first if a has none; a owns them. */
void nr_ping_start_cached(struct nr_ping *p, const struct nr_target *t, struct nr_addrs *a,
			  const struct nr_request *req, const struct nr_filelist *files,
			  uint32_t timeout_ms);
/* When the ping next needs nr_ping_step() even without events (deadline or resend). */
uint64_t nr_ping_wake(const struct nr_ping *p);
/* Fill pfd for poll(); returns 0 when the ping needs no fd (done). */
int nr_ping_pollfd(const struct nr_ping *p, struct pollfd *pfd);
/* Advance after poll() said revents (0 if only time passed). */
void nr_ping_step(struct nr_ping *p, short revents);
void nr_ping_cancel(struct nr_ping *p);
/* A fresh request id: random hex, which replies must echo. */
void nr_request_id(char *id, size_t len);
/* Run pings to completion in one poll() loop. */
void nr_ping_run(struct nr_ping *pings, int n);

#endif
