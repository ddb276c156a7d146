/*
 * util.c - small helpers for the netreload commands: request ids and JSON output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

void nr_request_id(char *id, size_t len)
{
	static unsigned counter;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(id, len, "%x-%lx-%u", (unsigned)getpid(), (unsigned long)(ts.tv_nsec & 0xfffff),
		 ++counter);
}

int nr_use_secret(const char *path)
{
	static struct nr_secret secret;
	char err[512];
	int loose;

	if (!path || !*path)
		path = getenv("NETRELOAD_SECRET_FILE");
	if (!path || !*path)
		return 0;
	if (nr_secret_load(path, &secret, &loose, err, sizeof(err))) {
		nr_error("%s", err);
		return NR_EXIT_USAGE;
	}
	if (loose)
		fprintf(stderr, "netreload: warning: secret file %s is readable by group or others; "
				"run: chmod 600 %s\n",
			path, path);
	nr_ping_set_secret(&secret);
	return 0;
}

void nr_json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
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

static const char *event_name(const struct nr_ping *p)
{
	static const char *names[] = {"live",	 "failed",   "usage", "unreachable",
				      "timeout", "protocol", "auth"};

	if (p->result == 0 && p->final.kind == NR_REPLY_STATUS)
		return "status";
	if (p->result == 0 && !p->req.wait && p->req.verb == NR_VERB_RELOAD)
		return "accepted";
	return p->result >= 0 && p->result <= 6 ? names[p->result] : "error";
}

void nr_json_result(FILE *out, const struct nr_ping *p)
{
	const struct nr_reply *f = &p->final;

	fprintf(out, "{\"target\":");
	nr_json_string(out, p->target.label);
	fprintf(out, ",\"event\":\"%s\",\"exit\":%d,\"ms\":%llu", event_name(p), p->result,
		(unsigned long long)(p->t_done - p->t_start));
	if (p->got_accepted)
		fprintf(out, ",\"gen\":%llu,\"mode\":\"%s\",\"accepted_ms\":%.3f",
			(unsigned long long)p->accepted.gen, nr_mode_name(p->accepted.mode),
			(double)(p->t_accepted_us - p->t_start_us) / 1000.0);
	nr_json_steps(out, f);
	if (f->kind == NR_REPLY_STATUS) {
		fprintf(out, ",\"gen\":%llu,\"state\":\"%s\",\"mode\":\"%s\",\"workers_live\":%u,"
			     "\"workers_total\":%u,\"apps\":%u,\"last\":\"%s\",\"last_ms\":%u,\"pid\":%u",
			(unsigned long long)f->gen, f->state, nr_mode_name(f->mode), f->workers_live,
			f->workers_total, f->apps, f->last, f->last_ms, f->pid);
	}
	if (f->reason[0]) {
		fprintf(out, ",\"reason\":");
		nr_json_string(out, f->reason);
	}
	if (p->result != 0 && p->result != 1) {
		fprintf(out, ",\"error\":");
		nr_json_string(out, p->err);
	}
	fprintf(out, "}\n");
	fflush(out);
}
