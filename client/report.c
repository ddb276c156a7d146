/*
 * report.c - how the client reports: errors and warnings on stderr, the one
 * table of exit codes and their event names, a finished ping as JSON, where
 * a reload's time went, and the advice for a share that shows old files.
 * Escaping what others wrote is text.c's; usage errors are usage.c's.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ping.h"
#include "report.h"

const char *nr_exit_name(int result)
{
	static const char *names[] = {
		[NR_EXIT_OK] = "live",		[NR_EXIT_FAILED] = "failed",
		[NR_EXIT_USAGE] = "usage",	[NR_EXIT_UNREACHABLE] = "unreachable",
		[NR_EXIT_TIMEOUT] = "timeout",	[NR_EXIT_PROTOCOL] = "protocol",
		[NR_EXIT_AUTH] = "auth",	[NR_EXIT_UNTRUSTED] = "untrusted",
	};

	if (result < 0 || result >= (int)(sizeof(names) / sizeof(names[0])) || !names[result])
		return "error";
	return names[result];
}

static unsigned after(unsigned t, unsigned since)
{
	return t > since ? t - since : 0;
}

/* Steps in order: old workers stop; the new master (re-exec) or first new worker
 * starts; a re-exec'd master imports the app and forks; workers get ready. */
void nr_format_steps(const struct nr_reply *f, unsigned client_ms, char *buf, size_t len)
{
	unsigned before_ready = f->stop_ms;
	int n;

	n = snprintf(buf, len, "stop %u, start %u", f->stop_ms, after(f->spawn_ms, f->stop_ms));
	if (f->spawn_ms > before_ready)
		before_ready = f->spawn_ms;
	if (f->load_ms && n > 0 && (size_t)n < len) {
		n += snprintf(buf + n, len - (size_t)n, ", import %u", after(f->load_ms, before_ready));
		before_ready = f->load_ms > before_ready ? f->load_ms : before_ready;
	}
	if (n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ", ready %u, network %u ms",
			 after(f->ms, before_ready), after(client_ms, f->ms));
}

void nr_json_steps(FILE *out, const struct nr_reply *f)
{
	if (f->kind != NR_REPLY_LIVE && f->kind != NR_REPLY_FAILED)
		return;
	fprintf(out, ",\"server_ms\":%u,\"stop_ms\":%u,\"spawn_ms\":%u,\"load_ms\":%u,\"killed\":%u",
		f->ms, f->stop_ms, f->spawn_ms, f->load_ms, f->killed);
	if (f->stale)
		fprintf(out, ",\"stale\":%u", f->stale);
	if (f->old[0]) {
		/* the parser let through only names of a-z joined by commas */
		fprintf(out, ",\"old\":[\"");
		for (const char *c = f->old; *c; c++) {
			if (*c == ',')
				fputs("\",\"", out);
			else
				fputc(*c, out);
		}
		fprintf(out, "\"]");
	}
}

/* "the mules and the spooler" for old=mules,spooler: who still runs the old code. */
void nr_old_words(const char *old, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	while (*old && off < len) {
		size_t n = strcspn(old, ",");
		int w = snprintf(buf + off, len - off, "%sthe %.*s", off ? " and " : "", (int)n, old);
		if (w < 0)
			return;
		off += (size_t)w;
		old += n + (old[n] == ',');
	}
}

/* Only advice that holds for the mount options as documented (nfs(5), VirtualBox's
 * vboxsf module in Guest Additions 6.1+, python(1)), and the server's own options:
 * a netreload-root that is not the watched tree can look like a share that never
 * shows the files. */
void nr_stale_advice(const char *label, uint32_t stale)
{
	fprintf(stderr,
		"netreload: %s still saw the old version of %u changed file%s when\n"
		"netreload-share-timeout ran out: its shared folder caches what this host writes.\n"
		"To see saves at once, mount the share on the VM with\n"
		"  NFS: actimeo=0 (or noac) and lookupcache=positive\n"
		"  VirtualBox (vboxsf, Guest Additions 6.1+): cache=none (or cache=strict)\n"
		"run uWSGI with PYTHONDONTWRITEBYTECODE=1 (and remove old __pycache__ dirs once),\n"
		"so Python never keeps a .pyc compiled from a stale copy,\n"
		"or let the server wait longer: netreload-share-timeout = SECONDS (default 10).\n"
		"The paths are relative to the directory watched here; the server looks for them\n"
		"under its netreload-root (default: the directory uWSGI runs in), which must be\n"
		"where the VM mounts that directory.\n",
		label, stale, stale == 1 ? "" : "s");
}

const char *nr_event_name(const struct nr_ping *p)
{
	if (p->result == 0 && p->final.kind == NR_REPLY_STATUS)
		return "status";
	if (p->result == 0 && !p->req.wait && p->req.verb == NR_VERB_RELOAD)
		return "accepted";
	return nr_exit_name(p->result);
}

void nr_json_result(FILE *out, const struct nr_ping *p)
{
	const struct nr_reply *f = &p->final;

	nr_json_begin(out, nr_event_name(p), p->target.label);
	fprintf(out, ",\"exit\":%d,\"ms\":%llu", p->result,
		(unsigned long long)(p->t_done - p->t_start));
	if (p->got_accepted) {
		fprintf(out, ",\"gen\":%llu", (unsigned long long)p->accepted.gen);
		nr_json_member(out, "mode", nr_mode_name(p->accepted.mode));
		fprintf(out, ",\"accepted_ms\":%.3f",
			(double)(p->t_accepted_us - p->t_start_us) / 1000.0);
	}
	nr_json_steps(out, f);
	if (f->kind == NR_REPLY_STATUS) {
		fprintf(out, ",\"gen\":%llu", (unsigned long long)f->gen);
		nr_json_member(out, "state", f->state);
		nr_json_member(out, "mode", nr_mode_name(f->mode));
		fprintf(out, ",\"workers_live\":%u,\"workers_total\":%u,\"apps\":%u", f->workers_live,
			f->workers_total, f->apps);
		nr_json_member(out, "last", f->last);
		fprintf(out, ",\"last_ms\":%u,\"pid\":%u", f->last_ms, f->pid);
	}
	if (f->reason[0])
		nr_json_member(out, "reason", f->reason);
	if (p->result != 0 && p->result != 1)
		nr_json_member(out, "error", p->err);
	nr_json_end(out);
}

/* "netreload: KIND: ...": the one shape of a message on stderr. */
static void say(const char *kind, const char *fmt, va_list ap)
{
	fprintf(stderr, "netreload: %s: ", kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void nr_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say("error", fmt, ap);
	va_end(ap);
}

void nr_warning(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say("warning", fmt, ap);
	va_end(ap);
}
