/*
 * nr_proto.h - the netreload wire protocol, shared by plugin and client.
 *
 * One request line and one or more reply lines, plain ASCII, LF-terminated,
 * at most NR_LINE_MAX bytes each; PROTOCOL.md is the specification and this
 * header its only implementation. Nothing here prints, exits or includes
 * uwsgi.h: functions return NR_OK or a negative NR_E* code and describe the
 * problem in a caller-supplied error buffer.
 */
#ifndef NR_PROTO_H
#define NR_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define NR_PROTOCOL_VERSION 2 /* the newest version this side speaks */
#define NR_PROTOCOL_MIN 1     /* the oldest it still reads, and writes where that is enough */
#define NR_MAGIC "NETRELOAD/"
#define NR_MAGIC_LEN 10
#define NR_LINE_MAX 512 /* including the LF */
#define NR_ID_MAX 32
#define NR_REASON_MAX 400
#define NR_SID_HEX 32 /* hex chars in an instance id (128 random bits) */
#define NR_OLD_MAX 48 /* chars in an old= list */

enum nr_err {
	NR_OK = 0,
	NR_ELEGACY = -1,  /* not a versioned request: a plain "ping" (echo . | nc) */
	NR_EPARSE = -2,   /* versioned but malformed */
	NR_EVERSION = -3, /* well-formed prefix, unsupported protocol version */
	NR_ESPACE = -4,   /* output buffer too small */
	NR_EPARTIAL = -5, /* could still become a request: read more */
};

enum nr_mode {
	NR_MODE_DEFAULT = 0, /* the server's netreload-mode */
	NR_MODE_GRACEFUL,
	NR_MODE_CHAIN,
	NR_MODE_WORKERS,
	NR_MODE_BRUTAL_WORKERS,
	NR_MODE_BRUTAL,
	NR_MODE_COUNT
};

enum nr_verb { NR_VERB_RELOAD = 1, NR_VERB_STATUS, NR_VERB_HELLO /* protocol 2 */ };

enum nr_kind {
	NR_REPLY_ACCEPTED = 1,
	NR_REPLY_LIVE,
	NR_REPLY_FAILED,
	NR_REPLY_STATUS,
	NR_REPLY_ERROR,
	NR_REPLY_HELLO, /* protocol 2: the server's instance id */
	NR_REPLY_COUNT
};

struct nr_request {
	int version; /* of the line: NR_PROTOCOL_MIN..NR_PROTOCOL_VERSION; 0 writes NR_PROTOCOL_MIN */
	enum nr_verb verb;
	enum nr_mode mode;
	int wait; /* 1: answer "live"/"failed" as well as "accepted" */
	char id[NR_ID_MAX + 1];
	/* PROTOCOL.md, "Changed files" (nr_files.h): TCP only */
	uint32_t files; /* file lines that follow the request line, at most NR_FILES_MAX */
	uint32_t more;	/* changed files not listed: the server checks the whole tree */
	char sum[65];	/* SHA-256 hex of the file lines as sent; required when files > 0 */
};

/* One reply line. Fields a kind does not use stay zero / empty. */
struct nr_reply {
	int version; /* as for a request */
	enum nr_kind kind;
	char id[NR_ID_MAX + 1];
	uint64_t gen;      /* generation the request maps to, or now serving */
	uint32_t ms;       /* request received -> live/failed, server clock */
	uint32_t stop_ms;  /* request received -> old workers gone */
	uint32_t spawn_ms; /* request received -> new master (re-exec) or first new worker started */
	uint32_t load_ms;  /* re-exec: request received -> new master had the app and its workers */
	uint32_t killed;   /* old workers killed after netreload-grace */
	uint32_t stale;	   /* failed: listed files the share still showed old */
	char old[NR_OLD_MAX + 1]; /* live: what the reload left running the old code, "mules,spooler" */
	enum nr_mode mode; /* accepted, status */
	/* status only */
	char state[16];    /* idle | reloading */
	uint32_t workers_live, workers_total, apps;
	char last[16];     /* none | live | failed */
	uint32_t last_ms;
	uint32_t pid;
	/* hello only: the instance id signed requests must name (PROTOCOL.md, "Instances") */
	char sid[NR_SID_HEX + 1];
	/* error only */
	char code[24];
	/* failed, error, status (last failure): free text to end of line */
	char reason[NR_REASON_MAX + 1];
};

const char *nr_mode_name(enum nr_mode mode);
int nr_mode_parse(const char *name, enum nr_mode *mode);
int nr_id_valid(const char *id);
/* NR_SID_HEX lowercase hex digits: an instance id. */
int nr_sid_valid(const char *sid);

/* Classify the first bytes of a stream: NR_OK if they are (so far) a
 * versioned request, NR_ELEGACY if they can no longer become one. */
int nr_sniff(const char *buf, size_t len);

int nr_request_parse(const char *line, size_t len, struct nr_request *req, char *err,
		     size_t errlen);
int nr_request_format(const struct nr_request *req, char *buf, size_t len);

int nr_reply_parse(const char *line, size_t len, struct nr_reply *rep, char *err,
		   size_t errlen);
int nr_reply_format(const struct nr_reply *rep, char *buf, size_t len);

/* n bytes as 2n lowercase hex digits and a NUL (out holds 2n + 1). */
void nr_hex_encode(const void *in, size_t n, char *out);
/* The value of one hex digit, either case; -1 if c is none. */
int nr_hex_digit(char c);
/* Decimal digits only, at most max: 0, or -1 (empty, other bytes, overflow). */
int nr_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* snprintf at buf + *off, advancing *off; NR_ESPACE (and *off unchanged) if it
 * does not fit in len. Every encoder appends with it. */
int nr_append(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Copy src into a reason field: printable ASCII only, at most NR_REASON_MAX. */
void nr_reason_set(char *dst, const char *src);

#endif
