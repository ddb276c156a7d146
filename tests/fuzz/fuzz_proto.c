/*
 * fuzz_proto.c - libFuzzer target for everything that decodes bytes from the
 * network: request and reply decoding (protocols 1 and 2, hello and its
 * instance id), plain-ping sniffing, and signature checks of requests and
 * replies. Besides crashes and sanitizer reports it checks one property: a
 * request that decodes re-encodes to a line that decodes to the same request
 * (version included).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/nr_auth.h"
#include "../../common/nr_files.h"
#include "../../common/nr_proto.h"

static void round_trip(const struct nr_request *req)
{
	struct nr_request back;
	char line[NR_LINE_MAX], err[128];
	int n = nr_request_format(req, line, sizeof(line));

	if (n < 0)
		abort(); /* every decodable request must be encodable */
	if (nr_request_parse(line, (size_t)n, &back, err, sizeof(err)) != NR_OK)
		abort();
	if (back.version != req->version || back.verb != req->verb || strcmp(back.id, req->id) ||
	    (req->verb == NR_VERB_RELOAD && (back.mode != req->mode || back.wait != req->wait)))
		abort();
}

/* A changed-file line that decodes re-encodes to one that decodes the same. */
static void file_round_trip(const char *buf, size_t size)
{
	static struct nr_file f, back;
	char line[NR_LINE_MAX], err[128];
	int n;

	if (nr_file_parse(buf, size, &f, err, sizeof(err)) != NR_OK)
		return;
	n = nr_file_format(&f, line, sizeof(line));
	if (n < 0 || nr_file_parse(line, (size_t)n, &back, err, sizeof(err)) != NR_OK)
		abort();
	if (memcmp(&f, &back, sizeof(f)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct nr_nonce_cache cache = {.sid = "00112233445566778899aabbccddeeff"};
	static const struct nr_secret secret = {.key = "fuzz", .len = 4};
	const char *buf = (const char *)data;
	struct nr_request req;
	struct nr_reply rep;
	char err[128], out[NR_LINE_MAX];
	size_t body;
	int64_t skew;

	(void)nr_sniff(buf, size);
	if (nr_request_parse(buf, size, &req, err, sizeof(err)) == NR_OK) {
		round_trip(&req);
		(void)nr_auth_verify(&secret, &req, buf, size, 1700000000, 60, &cache, &skew);
	}
	if (nr_reply_parse(buf, size, &rep, err, sizeof(err)) == NR_OK &&
	    nr_reply_format(&rep, out, sizeof(out)) < 0)
		abort();
	/* as the client takes a reply: the MAC first, then what it signs */
	if (nr_reply_verify(&secret, buf, size, &body) == NR_AUTH_OK &&
	    nr_reply_parse(buf, body, &rep, err, sizeof(err)) == NR_OK &&
	    nr_reply_format(&rep, out, sizeof(out)) < 0)
		abort();
	file_round_trip(buf, size);
	return 0;
}
