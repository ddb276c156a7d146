/*
 * request.h - requests in, replies out (request.c): the handlers server.c
 * calls with what its sockets bring, and the answer to waiting clients that
 * reload.c asks for when a generation ends.
 */
#ifndef NR_REQUEST_H
#define NR_REQUEST_H

#include "netreload.h"

int nr_request_input(struct nr_conn *c, uint64_t now);
void nr_request_end(struct nr_conn *c, uint64_t now);
void nr_request_busy(struct nr_conn *c);
void nr_request_datagram(const char *buf, size_t n, struct sockaddr_storage *ss, socklen_t alen,
			 uint64_t now);
/* generation rep->gen ended (reload.c's callback): answer who waits for it */
void nr_answer_waiters(const struct nr_reply *rep, const struct nr_reload_times *t, uint64_t end);

#endif
