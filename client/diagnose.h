/*
 * diagnose.h - why a ping failed, in words that name the fix: a secret the
 * server rejects (or none where one is needed), a port that is not
 * netreload's (a web server, uWSGI's own socket), UDP that is not forwarded.
 *
 * It never touches a socket: ping.c hands it what it saw (and what its
 * probe of the other transport saw, ping.c "Probes"). Each function writes
 * the message into err and returns the NR_EXIT_* the ping ends with.
 */
#ifndef NR_DIAGNOSE_H
#define NR_DIAGNOSE_H

#include <stddef.h>

#include "ping.h"

/* The server answered with error reply rep. secret_from: where the secret the
 * request was signed with came from, NULL if it was not signed; note is added
 * to the message (why it came over TCP, say). */
int nr_diag_refused(const struct nr_ping *p, const struct nr_reply *rep, const char *secret_from,
		    const char *note, char *err, size_t errlen);
/* The peer sent buf (len bytes), which is not netreload: name what it is. */
int nr_diag_stranger(const struct nr_ping *p, const char *buf, size_t len, char *err,
		     size_t errlen);
/* TCP said nothing (p->silent_closed: the peer hung up; else it stayed silent
 * for p->silent_ms); the UDP probe found the port closed (udp_closed) or not. */
int nr_diag_tcp_silent(const struct nr_ping *p, int udp_closed, char *err, size_t errlen);
/* UDP got no answer within p->silent_ms (p->silent_refused: the port said
 * "closed"); the TCP probe answered with our credentials accepted (tcp_ok), or
 * not at all (a connection it accepted, p->state past CONNECTING, left silent).
 * secret_from as above. */
int nr_diag_udp_silent(const struct nr_ping *p, int tcp_ok, const char *secret_from, char *err,
		       size_t errlen);

#endif
