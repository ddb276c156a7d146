/*
 * abi.h - refuse to run inside a uWSGI build other than the one the plugin
 * was compiled for.
 *
 * uWSGI checks nothing when it loads a plugin, and `struct uwsgi_server`
 * changes layout between releases (2.0.25 removed a mutex, master adds
 * fields) and with build options (#ifdef UWSGI_SSL, ...): a plugin built for
 * one binary reads garbage in another and crashes on the first ping. Every
 * uWSGI binary carries the uwsgi.h and the CFLAGS it was built with
 * (`--dot-h`, `--cflags`); the build records both (tools/uwsgi-abi.py writes
 * nr_abi.h) and the plugin compares them with the running binary's before it
 * touches any field of `uwsgi`. Nothing here includes uwsgi.h.
 */
#ifndef NR_ABI_H
#define NR_ABI_H

#include <stddef.h>

#define NR_ABI_MSG_MAX 1024

/* One uWSGI build, as far as the ABI goes. */
struct nr_abi {
	char dot_h_md5[33]; /* md5 of `uwsgi --dot-h` (Debian's uwsgi-abi-* id) */
	char defs_md5[33];  /* md5 of the sorted -D/-U flags of `uwsgi --cflags` */
	char version[64];   /* UWSGI_VERSION from those flags, or "unknown" */
};

/* The md5 of `--dot-h` output is what Debian pins: the header plus a newline. */
void nr_abi_from(struct nr_abi *abi, const char *dot_h_md5, const char *cflags);

/* dot_h is the header text itself (as uwsgi_get_dot_h() returns it). */
void nr_abi_from_header(struct nr_abi *abi, const char *dot_h, const char *cflags);

/* The -D/-U flags that shape uWSGI's structs, sorted, space-separated (the
 * plugin dir and build-only flags left out); 0, or -1 if out is too small. */
int nr_abi_defines(const char *cflags, char *out, size_t len);

/* 0 if built and running are the same build; else -1 and a one-line message
 * in msg naming both and the command that fixes it. */
int nr_abi_compare(const struct nr_abi *built, const char *built_uwsgi, const struct nr_abi *running,
		   const char *running_uwsgi, char *msg, size_t len);

/* The running uWSGI's own header and flags, found by symbol in the process;
 * 0, or -1 and a message when this uWSGI cannot tell (the caller stops). */
int nr_abi_running(struct nr_abi *abi, char *msg, size_t len);

#endif
