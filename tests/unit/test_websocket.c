/*
 * test_websocket.c - the RFC 6455 pieces of client/websocket.c: the
 * handshake's accept key (the RFC's own example), client frames (masked,
 * split anywhere, oversized, malformed) and server frames of each length form.
 */
#include <stdint.h>
#include <string.h>

#include "../../client/websocket.h"
#include "check.h"

static void test_accept(void)
{
	char out[NR_WS_ACCEPT_LEN + 1];

	/* RFC 6455, section 1.3 */
	CHECK(nr_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out, sizeof(out)) == 0);
	CHECK(!strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
	CHECK(nr_ws_accept("dGhlIHNhbXBsZSBub25jZQ=", out, sizeof(out)) == -1);	  /* short */
	CHECK(nr_ws_accept("dGhlIHNhbXBsZSBub25jZQ===", out, sizeof(out)) == -1); /* long */
	CHECK(nr_ws_accept("dGhlIHNhbXBsZSBub25jZQxx", out, sizeof(out)) == -1);  /* 18 bytes */
	CHECK(nr_ws_accept("dGhlIHNhbXBsZSBub2!jZQ==", out, sizeof(out)) == -1);  /* not base64 */
	CHECK(nr_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out, NR_WS_ACCEPT_LEN) == -1);
}

/* A masked client frame of payload p into out; its length. */
static size_t client_frame(unsigned char *out, int b0, const char *p, size_t n)
{
	static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	size_t h = 2;

	out[0] = (unsigned char)b0;
	if (n < 126) {
		out[1] = (unsigned char)(0x80 | n);
	} else {
		out[1] = 0x80 | 126;
		out[2] = (unsigned char)(n >> 8);
		out[3] = (unsigned char)n;
		h = 4;
	}
	memcpy(out + h, mask, 4);
	for (size_t i = 0; i < n; i++)
		out[h + 4 + i] = (unsigned char)p[i] ^ mask[i & 3];
	return h + 4 + n;
}

static void test_decode(void)
{
	unsigned char buf[8192];
	struct nr_ws_frame f;
	uint16_t code = 0;
	char big[300];
	size_t n;

	/* RFC 6455, section 5.7: a masked "Hello" */
	unsigned char hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
	CHECK(nr_ws_decode(hello, sizeof(hello), &f, &code) == (long)sizeof(hello));
	CHECK(f.fin && f.opcode == NR_WS_TEXT && f.len == 5 && !memcmp(f.payload, "Hello", 5));

	/* every cut of a frame is "not yet" */
	memset(big, 'a', sizeof(big));
	n = client_frame(buf, 0x81, big, sizeof(big));
	for (size_t cut = 0; cut < n; cut++)
		CHECK(nr_ws_decode(buf, cut, &f, &code) == 0);
	CHECK(nr_ws_decode(buf, n, &f, &code) == (long)n && f.len == sizeof(big) && f.payload[299] == 'a');

	/* unmasked, reserved bits, reserved opcode, long or fragmented control frame */
	unsigned char unmasked[] = {0x81, 0x01, 'x'};
	CHECK(nr_ws_decode(unmasked, sizeof(unmasked), &f, &code) == -1 && code == NR_WS_PROTOCOL_ERROR);
	n = client_frame(buf, 0xc1, "x", 1);
	CHECK(nr_ws_decode(buf, n, &f, &code) == -1 && code == NR_WS_PROTOCOL_ERROR);
	n = client_frame(buf, 0x83, "x", 1);
	CHECK(nr_ws_decode(buf, n, &f, &code) == -1 && code == NR_WS_PROTOCOL_ERROR);
	n = client_frame(buf, 0x09, "x", 1);
	CHECK(nr_ws_decode(buf, n, &f, &code) == -1 && code == NR_WS_PROTOCOL_ERROR);
	n = client_frame(buf, 0x89, big, 126);
	CHECK(nr_ws_decode(buf, n, &f, &code) == -1 && code == NR_WS_PROTOCOL_ERROR);

	/* too big: refused from the length alone, before the payload arrives */
	unsigned char huge[] = {0x81, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0};
	CHECK(nr_ws_decode(huge, sizeof(huge), &f, &code) == -1 && code == NR_WS_TOO_BIG);
	unsigned char over[] = {0x81, 0xfe, (NR_WS_PAYLOAD_MAX + 1) >> 8, (NR_WS_PAYLOAD_MAX + 1) & 0xff};
	CHECK(nr_ws_decode(over, sizeof(over), &f, &code) == -1 && code == NR_WS_TOO_BIG);
	unsigned char max64[] = {0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	CHECK(nr_ws_decode(max64, sizeof(max64), &f, &code) == -1 && code == NR_WS_TOO_BIG);
}

static void test_encode(void)
{
	unsigned char out[70000], small[8];
	static unsigned char payload[66000];

	CHECK(nr_ws_encode(out, sizeof(out), NR_WS_TEXT, "Hello", 5) == 7);
	CHECK(!memcmp(out, "\x81\x05Hello", 7)); /* RFC 6455, section 5.7, unmasked */
	CHECK(nr_ws_encode(out, sizeof(out), NR_WS_TEXT, payload, 300) == 304);
	CHECK(out[1] == 126 && out[2] == 1 && out[3] == 44);
	CHECK(nr_ws_encode(out, sizeof(out), NR_WS_BINARY, payload, 66000) == 66010);
	CHECK(out[0] == 0x82 && out[1] == 127 && out[7] == 0x01 && out[8] == 0x01 && out[9] == 0xd0);
	CHECK(nr_ws_encode(small, sizeof(small), NR_WS_TEXT, "1234567", 7) == -1);
	CHECK(nr_ws_encode(small, sizeof(small), NR_WS_TEXT, "123456", 6) == 8);
	CHECK(nr_ws_encode(small, 1, NR_WS_TEXT, "", 0) == -1);
}

int main(void)
{
	test_accept();
	test_decode();
	test_encode();
	return check_summary();
}
