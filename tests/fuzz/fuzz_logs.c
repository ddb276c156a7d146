/*
 * fuzz_logs.c - libFuzzer target for the failure-reason parsers in
 * plugin/logs.c (Python tracebacks, Ruby exceptions, Perl load errors), which
 * read whatever an app printed while it loaded. Besides crashes and sanitizer
 * reports it checks that a reason always starts as documented and fits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugin/logs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char prefix[] = "app failed to load: ";
	char *text = malloc(size + 1), reason[401], tiny[8];

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (nr_logs_parse_reason(text, reason, sizeof(reason)) &&
	    (strncmp(reason, prefix, sizeof(prefix) - 1) || strlen(reason) >= sizeof(reason)))
		abort();
	nr_logs_parse_reason(text, tiny, sizeof(tiny)); /* a short buffer is cut, never overrun */
	free(text);
	return 0;
}
