/*
 * websocket.c - RFC 6455 handshake key and frames (see websocket.h). SHA-1 and
 * base64 come from OpenSSL's libcrypto, which the client links already.
 */
#include "websocket.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN 24 /* base64 of 16 bytes */

int nr_ws_accept(const char *key, char *out, size_t len)
{
	unsigned char raw[32], digest[SHA_DIGEST_LENGTH];
	char buf[WS_KEY_LEN + sizeof(WS_GUID)];

	if (strlen(key) != WS_KEY_LEN || len < NR_WS_ACCEPT_LEN + 1)
		return -1;
	/* 16 bytes encode to 22 characters and "==" */
	if (EVP_DecodeBlock(raw, (const unsigned char *)key, WS_KEY_LEN) != 18 || key[22] != '=' ||
	    key[23] != '=')
		return -1;
	memcpy(buf, key, WS_KEY_LEN);
	memcpy(buf + WS_KEY_LEN, WS_GUID, sizeof(WS_GUID));
	SHA1((const unsigned char *)buf, strlen(buf), digest);
	EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
	return 0;
}

/* Opcodes RFC 6455 defines; the others are reserved. */
static int known_opcode(int op)
{
	return op == NR_WS_CONT || op == NR_WS_TEXT || op == NR_WS_BINARY || op == NR_WS_CLOSE ||
	       op == NR_WS_PING || op == NR_WS_PONG;
}

/* The payload length and where the mask starts; 0 if more bytes are needed. */
static size_t length(const unsigned char *buf, size_t len, uint64_t *plen)
{
	unsigned small = buf[1] & 0x7f;

	if (small < 126) {
		*plen = small;
		return 2;
	}
	if (small == 126) {
		if (len < 4)
			return 0;
		*plen = (uint64_t)buf[2] << 8 | buf[3];
		return 4;
	}
	if (len < 10)
		return 0;
	*plen = 0;
	for (int i = 0; i < 8; i++)
		*plen = *plen << 8 | buf[2 + i];
	return 10;
}

long nr_ws_decode(unsigned char *buf, size_t len, struct nr_ws_frame *f, uint16_t *code)
{
	uint64_t plen;
	size_t head;
	unsigned char *mask;

	if (len < 2)
		return 0;
	f->fin = buf[0] >> 7;
	f->opcode = buf[0] & 0x0f;
	*code = NR_WS_PROTOCOL_ERROR;
	if ((buf[0] & 0x70) || !(buf[1] & 0x80) || !known_opcode(f->opcode))
		return -1; /* reserved bits, unmasked from a client, reserved opcode */
	if ((f->opcode & 0x8) && (!f->fin || (buf[1] & 0x7f) > 125))
		return -1; /* control frames are whole and short */
	if (!(head = length(buf, len, &plen)))
		return 0;
	if (plen > NR_WS_PAYLOAD_MAX) {
		*code = NR_WS_TOO_BIG;
		return -1;
	}
	if (len < head + 4 + plen)
		return 0;
	mask = buf + head;
	f->payload = mask + 4;
	f->len = (size_t)plen;
	for (size_t i = 0; i < f->len; i++)
		f->payload[i] ^= mask[i & 3];
	return (long)(head + 4 + f->len);
}

long nr_ws_encode(unsigned char *out, size_t len, int opcode, const void *payload, size_t plen)
{
	size_t head = plen < 126 ? 2 : plen <= 0xffff ? 4 : 10;

	if (plen > len || head > len - plen)
		return -1;
	out[0] = (unsigned char)(0x80 | (opcode & 0x0f));
	if (head == 2) {
		out[1] = (unsigned char)plen;
	} else if (head == 4) {
		out[1] = 126;
		out[2] = (unsigned char)(plen >> 8);
		out[3] = (unsigned char)plen;
	} else {
		out[1] = 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (unsigned char)((uint64_t)plen >> (56 - 8 * i));
	}
	memcpy(out + head, payload, plen);
	return (long)(head + plen);
}
