/*
 * nr_auth.h - authenticated requests: HMAC-SHA256 over the request line.
 *
 * A signed request ends with " ts=UNIX nonce=HEX mac=HEX"; the MAC covers
 * every byte before " mac=" (see PROTOCOL.md, "Authentication"). The
 * server checks the MAC in constant time, then the clock window, then the
 * nonce cache. Like the rest of common/, nothing here prints or exits.
 */
#ifndef NR_AUTH_H
#define NR_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define NR_SECRET_MAX 1024
#define NR_MAC_LEN 32	    /* bytes of HMAC-SHA256 */
#define NR_NONCE_HEX 16	    /* hex chars in a nonce (64 random bits) */
#define NR_AUTH_WINDOW 60   /* seconds a timestamp may differ from the server's clock */
#define NR_NONCE_CACHE 1024 /* nonces remembered; more in one window are refused */

enum nr_auth_err {
	NR_AUTH_OK = 0,
	NR_AUTH_MISSING = -10, /* no ts/nonce/mac fields */
	NR_AUTH_BAD = -11,     /* malformed fields, or the MAC does not match */
	NR_AUTH_SKEW = -12,    /* valid MAC, timestamp outside the window */
	NR_AUTH_REPLAY = -13,  /* valid MAC, nonce already used */
	NR_AUTH_FULL = -14,    /* nonce cache full of live entries */
};

struct nr_secret {
	unsigned char key[NR_SECRET_MAX];
	size_t len;
};

struct nr_nonce_cache {
	char nonce[NR_NONCE_CACHE][NR_NONCE_HEX + 1];
	int64_t ts[NR_NONCE_CACHE];
};

/* Read a secret file: its bytes without trailing whitespace. 0, or -1 with err set
 * ("cannot read", "is empty", "longer than"); *loose is 1 if group/others can read it. */
int nr_secret_load(const char *path, struct nr_secret *s, int *loose, char *err, size_t errlen);

/* HMAC-SHA256 of data; out must hold NR_MAC_LEN bytes. */
void nr_hmac(const struct nr_secret *s, const void *data, size_t len, unsigned char *out);

/* Append " ts=.. nonce=.. mac=..\n" to an unsigned request line of len bytes (its LF
 * removed) in buf of size bufsize; returns the new length or NR_ESPACE. */
int nr_auth_sign(const struct nr_secret *s, char *buf, size_t len, size_t bufsize, int64_t now,
		 const char *nonce);

/* Check a request line. On NR_AUTH_SKEW, *skew is request time minus server time
 * (at most INT64_MAX either way, so llabs() of it is defined). */
int nr_auth_verify(const struct nr_secret *s, const char *line, size_t len, int64_t now,
		   int window, struct nr_nonce_cache *cache, int64_t *skew);

/* The nonces still inside the window as "NONCE:TS NONCE:TS ...", to survive a re-exec;
 * returns 0, or -1 if buf is too small (the entries that do not fit are then dropped;
 * a buf of 0 bytes is left alone). */
int nr_nonce_save(const struct nr_nonce_cache *c, int64_t now, int window, char *buf, size_t len);
void nr_nonce_load(struct nr_nonce_cache *c, const char *text);

/* Fill nonce with NR_NONCE_HEX random hex chars (and a NUL). 0, or -1 if no randomness. */
int nr_nonce_new(char *nonce);

#endif
