/*
 * test_abi.c - the ABI fingerprint of a uWSGI build (plugin/abi.c): which
 * flags count, the md5 Debian pins, and the message that names both builds.
 */
#include <string.h>

#include "../../plugin/abi.h"
#include "check.h"

#define DEBIAN_CFLAGS                                                                              \
	"-O2 -I. -Wall -D_FILE_OFFSET_BITS=64 -g -ffile-prefix-map=/build/uwsgi-Q8eEU7/x=. "       \
	"-DUWSGI_SSL -DUWSGI_ZLIB -DUWSGI_VERSION=\"\\\"2.0.21-debian\\\"\" "                      \
	"-DUWSGI_PLUGIN_DIR=\"\\\"/usr/lib/uwsgi/plugins\\\"\""

static void test_defines(void)
{
	char out[256], tiny[8];

	CHECK(nr_abi_defines(DEBIAN_CFLAGS, out, sizeof(out)) == 0);
	/* sorted, only -D/-U, no plugin dir, no optimisation or prefix-map flags */
	CHECK(!strcmp(out, "-DUWSGI_SSL -DUWSGI_VERSION=\"\\\"2.0.21-debian\\\"\" -DUWSGI_ZLIB "
			   "-D_FILE_OFFSET_BITS=64"));
	CHECK(nr_abi_defines("-O2 -UFOO -DBAR", out, sizeof(out)) == 0 && !strcmp(out, "-DBAR -UFOO"));
	CHECK(nr_abi_defines("-O2 -g", out, sizeof(out)) == 0 && out[0] == '\0');
	CHECK(nr_abi_defines(DEBIAN_CFLAGS, tiny, sizeof(tiny)) == -1);
}

/* Rebuilding uWSGI elsewhere (another prefix map, -O level, plugin dir) keeps
 * its ABI; a build option or another header does not. */
static void test_compare(void)
{
	struct nr_abi a, b;
	char msg[NR_ABI_MSG_MAX] = "";

	nr_abi_from_header(&a, "x", DEBIAN_CFLAGS);
	/* md5("x\n"): `uwsgi --dot-h` prints the header and a newline */
	CHECK(!strcmp(a.dot_h_md5, "401b30e3b8b5d629635a5c613cdb7919"));
	CHECK(!strcmp(a.version, "2.0.21-debian"));
	nr_abi_from(&b, "401b30e3b8b5d629635a5c613cdb7919",
		    "-O0 -DUWSGI_ZLIB -D_FILE_OFFSET_BITS=64 -DUWSGI_SSL "
		    "-DUWSGI_VERSION=\"\\\"2.0.21-debian\\\"\" -DUWSGI_PLUGIN_DIR=\"\\\".\\\"\"");
	CHECK(nr_abi_compare(&a, "/usr/bin/uwsgi", &b, "/opt/uwsgi", msg, sizeof(msg)) == 0);
	CHECK(msg[0] == '\0');

	nr_abi_from(&b, a.dot_h_md5, "-DUWSGI_ZLIB -D_FILE_OFFSET_BITS=64 "
				     "-DUWSGI_VERSION=\"\\\"2.0.21-debian\\\"\"");
	CHECK(nr_abi_compare(&a, "/usr/bin/uwsgi", &b, "/opt/uwsgi", msg, sizeof(msg)) == -1);

	nr_abi_from_header(&b, "y", "-DUWSGI_VERSION=\"\\\"2.0.30\\\"\"");
	CHECK(!strcmp(b.version, "2.0.30"));
	CHECK(nr_abi_compare(&a, "/usr/bin/uwsgi", &b, "/venv/bin/uwsgi", msg, sizeof(msg)) == -1);
	CHECK(strstr(msg, "built for uWSGI 2.0.21-debian (/usr/bin/uwsgi, abi 401b30e3-") != NULL);
	CHECK(strstr(msg, "runs in uWSGI 2.0.30 (/venv/bin/uwsgi, abi ") != NULL);
	CHECK(strstr(msg, "`make UWSGI=/venv/bin/uwsgi`") != NULL);
	CHECK(strchr(msg, '\n') == NULL);

	nr_abi_from(&b, "", "-O2");
	CHECK(!strcmp(b.version, "unknown"));
}

int main(void)
{
	test_defines();
	test_compare();
	return check_summary();
}
