/*
 * fuzz_handover.c - libFuzzer target for the re-exec hand-over parser
 * (plugin/handover.c), which reads what the previous master left in the
 * environment. Besides crashes and sanitizer reports it checks a property:
 * whatever parses re-encodes to text that parses to the same encoding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugin/handover.h"

static struct nr_handover h, back;
static char out[NR_HANDOVER_MAX + 1], again[NR_HANDOVER_MAX + 1];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[128];

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (nr_handover_parse(text, &h, err, sizeof(err)) == NR_OK) {
		if (nr_handover_format(&h, out, sizeof(out)) != NR_OK)
			abort();
		if (nr_handover_parse(out, &back, err, sizeof(err)) != NR_OK)
			abort();
		if (nr_handover_format(&back, again, sizeof(again)) != NR_OK || strcmp(out, again))
			abort();
		nr_handover_free(&back);
	}
	nr_handover_free(&h);
	free(text);
	return 0;
}
