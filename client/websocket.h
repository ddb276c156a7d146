/*
 * websocket.h - the few pieces of RFC 6455 that --browser's /livereload needs:
 * the handshake's accept key, decoding one frame from a page, encoding one
 * frame to it. No state, no I/O; browser.c owns the connections.
 */
#ifndef NR_WEBSOCKET_H
#define NR_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#define NR_WS_PAYLOAD_MAX 4096 /* of a frame from a page; LiveReload's are a few hundred bytes */
#define NR_WS_HEADER_MAX 14    /* 2 + 8 (length) + 4 (mask) */
#define NR_WS_ACCEPT_LEN 28    /* base64 of a SHA-1 */

enum {
	NR_WS_CONT = 0x0,
	NR_WS_TEXT = 0x1,
	NR_WS_BINARY = 0x2,
	NR_WS_CLOSE = 0x8,
	NR_WS_PING = 0x9,
	NR_WS_PONG = 0xa,
};

/* Close codes we send. */
enum {
	NR_WS_NORMAL = 1000,
	NR_WS_PROTOCOL_ERROR = 1002,
	NR_WS_UNSUPPORTED = 1003,
	NR_WS_TOO_BIG = 1009,
};

struct nr_ws_frame {
	int fin, opcode;
	unsigned char *payload; /* inside the decoded buffer, unmasked */
	size_t len;
};

/* Sec-WebSocket-Accept for the client's Sec-WebSocket-Key: base64(SHA-1(key +
 * the RFC's GUID)) into out (NR_WS_ACCEPT_LEN + 1 bytes). 0, or -1 if the key
 * is not 16 bytes in base64 or out is short. */
int nr_ws_accept(const char *key, char *out, size_t len);

/* One frame from a client at buf (len bytes), its payload unmasked in place.
 * Returns the bytes it took (> 0), 0 if the frame is not complete yet, or -1
 * with *code the close code to send: unmasked, reserved bits or opcodes, a
 * bad control frame (1002), a payload over NR_WS_PAYLOAD_MAX (1009). */
long nr_ws_decode(unsigned char *buf, size_t len, struct nr_ws_frame *f, uint16_t *code);

/* A final, unmasked frame into out; its length, or -1 if it does not fit. */
long nr_ws_encode(unsigned char *out, size_t len, int opcode, const void *payload, size_t plen);

#endif
