/*
 * abi.c - is the running uWSGI the build this plugin was compiled for?
 * (See abi.h.) Pure string work plus one dlsym() lookup; no uwsgi.h.
 */
#include "abi.h"

#include <dlfcn.h>
#include <openssl/evp.h>
#include <openssl/md5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NR_ABI_TOKENS 256

/* The check runs at every start of the master, re-execs included. Through
 * EVP, the first digest initialises OpenSSL: it reads openssl.cnf and loads
 * the default provider, ~10 ms here, for nothing else in the master (uWSGI
 * initialises OpenSSL for its own SSL options, an app for its own use, each
 * with the configuration). The one-shot MD5() needs none of that. It is
 * deprecated in OpenSSL 3, not removed: a build without deprecated APIs uses
 * EVP. */
static int md5(const void *data, size_t len, unsigned char d[EVP_MAX_MD_SIZE])
{
#ifdef OPENSSL_NO_DEPRECATED_3_0
	unsigned int n = 0;

	return EVP_Digest(data, len, d, &n, EVP_md5(), NULL) && n == 16;
#else
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	return MD5(data, len, d) != NULL;
#pragma GCC diagnostic pop
#endif
}

static void md5_hex(const void *data, size_t len, char out[33])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	static const char hex[] = "0123456789abcdef";

	out[0] = '\0';
	if (!md5(data, len, d))
		return;
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[32] = '\0';
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The plugin dir is where uWSGI looks for plugins, not how its structs look. */
static int shapes_structs(const char *tok)
{
	if (strncmp(tok, "-D", 2) && strncmp(tok, "-U", 2))
		return 0;
	return strncmp(tok, "-DUWSGI_PLUGIN_DIR=", 19) != 0;
}

int nr_abi_defines(const char *cflags, char *out, size_t len)
{
	char *copy = strdup(cflags), *tok[NR_ABI_TOKENS], *save = NULL;
	size_t n = 0, off = 0;
	int rc = 0;

	if (!copy || len == 0) {
		free(copy);
		return -1;
	}
	for (char *t = strtok_r(copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
		if (shapes_structs(t) && n < NR_ABI_TOKENS)
			tok[n++] = t;
	qsort(tok, n, sizeof(tok[0]), cmp_str);
	out[0] = '\0';
	for (size_t i = 0; i < n && rc == 0; i++) {
		int w = snprintf(out + off, len - off, "%s%s", i ? " " : "", tok[i]);
		if (w < 0 || (size_t)w >= len - off)
			rc = -1;
		else
			off += (size_t)w;
	}
	free(copy);
	return rc;
}

/* UWSGI_VERSION from the flags: -DUWSGI_VERSION="\"2.0.30\"" gives 2.0.30. */
static void version_of(const char *cflags, char *out, size_t len)
{
	const char *v = strstr(cflags, "-DUWSGI_VERSION=");
	size_t n = 0;

	snprintf(out, len, "unknown");
	if (!v)
		return;
	for (v += 16; *v && *v != ' ' && n + 1 < len; v++)
		if (*v != '"' && *v != '\\')
			out[n++] = *v;
	if (n)
		out[n] = '\0';
}

static void from_defines(struct nr_abi *abi, const char *cflags)
{
	char defs[8192];

	if (nr_abi_defines(cflags, defs, sizeof(defs)))
		snprintf(defs, sizeof(defs), "%s", cflags);
	md5_hex(defs, strlen(defs), abi->defs_md5);
	version_of(cflags, abi->version, sizeof(abi->version));
}

void nr_abi_from(struct nr_abi *abi, const char *dot_h_md5, const char *cflags)
{
	snprintf(abi->dot_h_md5, sizeof(abi->dot_h_md5), "%s", dot_h_md5);
	from_defines(abi, cflags);
}

void nr_abi_from_header(struct nr_abi *abi, const char *dot_h, const char *cflags)
{
	size_t n = strlen(dot_h);
	char *printed = malloc(n + 2);

	abi->dot_h_md5[0] = '\0';
	if (printed) {
		memcpy(printed, dot_h, n);
		printed[n] = '\n';
		md5_hex(printed, n + 1, abi->dot_h_md5);
		free(printed);
	}
	from_defines(abi, cflags);
}

int nr_abi_compare(const struct nr_abi *built, const char *built_uwsgi, const struct nr_abi *running,
		   const char *running_uwsgi, char *msg, size_t len)
{
	if (!strcmp(built->dot_h_md5, running->dot_h_md5) && !strcmp(built->defs_md5, running->defs_md5))
		return 0;
	snprintf(msg, len,
		 "netreload: this plugin was built for uWSGI %s (%s, abi %.8s-%.8s) but runs in "
		 "uWSGI %s (%s, abi %.8s-%.8s), whose internals differ: rebuild it for this one "
		 "with `make UWSGI=%s` or `uwsgi --build-plugin /path/to/netreload`",
		 built->version, built_uwsgi, built->dot_h_md5, built->defs_md5, running->version,
		 running_uwsgi, running->dot_h_md5, running->defs_md5, running_uwsgi);
	return -1;
}

int nr_abi_running(struct nr_abi *abi, char *msg, size_t len)
{
	char *(*get_dot_h)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "uwsgi_get_dot_h");
	char *(*get_cflags)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "uwsgi_get_cflags");
	char *dot_h, *cflags;

	if (!get_dot_h || !get_cflags) {
		snprintf(msg, len, "netreload: this uWSGI does not tell how it was built "
				   "(no uwsgi_get_dot_h/uwsgi_get_cflags): netreload needs uWSGI 2.0.21 or later");
		return -1;
	}
	dot_h = get_dot_h();
	cflags = get_cflags();
	if (!dot_h || !*dot_h || !cflags) {
		snprintf(msg, len, "netreload: this uWSGI cannot print its own uwsgi.h (see `uwsgi "
				   "--dot-h`), so netreload cannot check it was built for it");
		return -1;
	}
	nr_abi_from_header(abi, dot_h, cflags);
	free(dot_h);
	free(cflags);
	return 0;
}
