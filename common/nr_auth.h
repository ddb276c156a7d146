/*
 * nr_auth.h - authenticated requests and replies: HMAC-SHA256 over the line.
 *
 * A signed request ends with " [sid=SID ]ts=UNIX nonce=HEX mac=HEX"; the MAC
 * covers every byte before " mac=" (see PROTOCOL.md, "Authentication"). The
 * server checks the MAC in constant time, then the clock window, then what
 * binds the request (its id is its nonce; it names this instance's sid), then
 * the nonce cache. A signed reply ends with " mac=HEX" over "reply " and the
 * bytes before it, and echoes its request's id, so a client can tell it from a
 * forgery or from the answer to another request. Like the rest of common/,
 * nothing here prints or exits.
 */
#ifndef NR_AUTH_H
#define NR_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "nr_proto.h"

#define NR_SECRET_MAX 1024
#define NR_MAC_LEN 32	    /* bytes of HMAC-SHA256 */
#define NR_NONCE_HEX 16	    /* hex chars in a nonce (64 random bits) */
#define NR_AUTH_WINDOW 60   /* seconds a timestamp may differ from the server's clock */
#define NR_NONCE_CACHE 1024 /* nonces remembered; more in one window are refused */
#define NR_REPLY_TAIL (5 + 2 * NR_MAC_LEN) /* " mac=HEX" a signed reply ends with */

enum nr_auth_err {
	NR_AUTH_OK = 0,
	NR_AUTH_MISSING = -10, /* no ts/nonce/mac fields */
	NR_AUTH_BAD = -11,     /* malformed fields, or the MAC does not match */
	NR_AUTH_SKEW = -12,    /* valid MAC, timestamp outside the window */
	NR_AUTH_REPLAY = -13,  /* valid MAC, nonce already used */
	NR_AUTH_FULL = -14,    /* nonce cache full of live entries */
	NR_AUTH_INSTANCE = -15, /* valid MAC, signed for another instance or an earlier start */
	NR_AUTH_UNBOUND = -16,	/* valid MAC, a protocol 2 request whose id is not its nonce */
};

struct nr_secret {
	unsigned char key[NR_SECRET_MAX];
	size_t len;
};

/* What a server remembers of signed requests: its instance id, new at every cold
 * start and kept across re-execs, and the nonces it took within the window. */
struct nr_nonce_cache {
	char sid[NR_SID_HEX + 1];
	char nonce[NR_NONCE_CACHE][NR_NONCE_HEX + 1];
	int64_t ts[NR_NONCE_CACHE];
};

/* Read a secret file: its bytes without trailing whitespace. 0, or -1 with err set
 * ("cannot read", "is empty", "longer than"); *loose is 1 if group/others can read it. */
int nr_secret_load(const char *path, struct nr_secret *s, int *loose, char *err, size_t errlen);

/* HMAC-SHA256 of data; out must hold NR_MAC_LEN bytes. */
void nr_hmac(const struct nr_secret *s, const void *data, size_t len, unsigned char *out);

/* Append " sid=.. ts=.. nonce=.. mac=..\n" to an unsigned request line of len bytes
 * (its LF removed) in buf of size bufsize; sid NULL leaves out sid= (a hello, which
 * asks for it). Returns the new length or NR_ESPACE. */
int nr_auth_sign(const struct nr_secret *s, char *buf, size_t len, size_t bufsize, int64_t now,
		 const char *nonce, const char *sid);

/* Check a request line; req is its decoding (nr_request_parse). A protocol 2
 * request must have its nonce as id, and, unless it is a hello, name cache->sid.
 * Only an accepted request's nonce is remembered. On NR_AUTH_SKEW, *skew is
 * request time minus server time (at most INT64_MAX either way, so llabs() of
 * it is defined). */
int nr_auth_verify(const struct nr_secret *s, const struct nr_request *req, const char *line,
		   size_t len, int64_t now, int window, struct nr_nonce_cache *cache, int64_t *skew);

/* Sign a reply: buf holds its len bytes without the LF; appends " mac=..\n".
 * Returns the new length, or NR_ESPACE if that passes bufsize or NR_LINE_MAX. */
int nr_reply_sign(const struct nr_secret *s, char *buf, size_t len, size_t bufsize);

/* Check a reply's MAC: NR_AUTH_OK with *body the length of what it signs (the
 * reply without " mac=.." and its line end), or NR_AUTH_MISSING (unsigned) or
 * NR_AUTH_BAD with *body the length of the line without its end. */
int nr_reply_verify(const struct nr_secret *s, const char *line, size_t len, size_t *body);

/* "sid=SID NONCE:TS NONCE:TS ...": the instance id and the nonces still inside
 * the window, to survive a re-exec; returns 0, or -1 if buf is too small (the
 * entries that do not fit are then dropped; a buf of 0 bytes is left alone). */
int nr_nonce_save(const struct nr_nonce_cache *c, int64_t now, int window, char *buf, size_t len);
void nr_nonce_load(struct nr_nonce_cache *c, const char *text);

/* Fill nonce with NR_NONCE_HEX random hex chars (and a NUL). 0, or -1 if no randomness. */
int nr_nonce_new(char *nonce);
/* The same for an instance id: NR_SID_HEX chars. */
int nr_sid_new(char *sid);

#endif
