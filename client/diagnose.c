/*
 * diagnose.c - why a ping failed, from what ping.c saw (see diagnose.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "diagnose.h"

static int say(char *err, size_t errlen, int result, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The message into err; returns result. */
static int say(char *err, size_t errlen, int result, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return result;
}

/* The server refused our signature, or its absence: say which, from what this
 * side sent (the server cannot tell a missing secret from a wrong one as well). */
static int auth_refused(const struct nr_ping *p, const char *secret_from, const char *note,
			char *err, size_t errlen)
{
	if (!secret_from)
		return say(err, errlen, NR_EXIT_AUTH,
			   "%s requires signed requests, and no secret was given: pass --secret-file "
			   "FILE (a copy of the server's netreload-secret-file) or set "
			   "NETRELOAD_SECRET_FILE%s",
			   p->target.label, note);
	else
		return say(err, errlen, NR_EXIT_AUTH,
			   "%s rejected the signature made with the secret in %s: it is not the "
			   "secret in the server's netreload-secret-file (copy that file here again)%s",
			   p->target.label, secret_from, note);
}

int nr_diag_refused(const struct nr_ping *p, const struct nr_reply *rep, const char *secret_from,
		    const char *note, char *err, size_t errlen)
{
	int auth = !strcmp(rep->code, "auth") || !strcmp(rep->code, "clock-skew") ||
		   !strcmp(rep->code, "instance");
	/* a 0.1 plugin reads protocol 1 only, and signed requests need 2 */
	int old = !strcmp(rep->code, "version") && secret_from;

	if (!strcmp(rep->code, "auth") && !strstr(rep->reason, "replayed"))
		return auth_refused(p, secret_from, note, err, errlen);
	return say(err, errlen, auth ? NR_EXIT_AUTH : NR_EXIT_PROTOCOL,
		   "%s refused the request: %s (%s)%s%s", p->target.label, rep->reason, rep->code,
		   old ? "; signed requests need netreload 0.2 or later on the server too: upgrade "
			 "the plugin there"
		       : "",
		   note);
}

/* A web server is most likely the app's own port, an easy typo for netreload-port. */
int nr_diag_stranger(const struct nr_ping *p, const char *buf, size_t len, char *err,
		     size_t errlen)
{
	char first[64];
	size_t n = 0;
	int http = (len >= 5 && !memcmp(buf, "HTTP/", 5)) || (len && buf[0] == '<');

	for (size_t i = 0; i < len && buf[i] != '\r' && buf[i] != '\n' && n + 1 < sizeof(first);
	     i++)
		first[n++] = buf[i] >= 0x20 && buf[i] < 0x7f ? buf[i] : '?';
	first[n] = '\0';
	return say(err, errlen, NR_EXIT_PROTOCOL,
		   http ? "%s answered HTTP (\"%s\"), not netreload: that is a web server, likely "
			  "the app's port; netreload listens on a port of its own (netreload-port)"
			: "%s answered something that is not netreload (\"%s\"): another service "
			  "listens there; netreload listens on a port of its own (netreload-port)",
		   p->target.label, first);
}

int nr_diag_tcp_silent(const struct nr_ping *p, int udp_closed, char *err, size_t errlen)
{
	char what[64];

	if (p->silent_closed)
		snprintf(what, sizeof(what), "closed the connection without a word");
	else
		snprintf(what, sizeof(what), "sent nothing within %.1f s", p->silent_ms / 1000.0);
	if (udp_closed)
		return say(err, errlen, NR_EXIT_PROTOCOL,
			   "%s %s, and its UDP port is closed (a netreload-port answers both): not a "
			   "netreload port (uWSGI's socket or http-socket, say; netreload-port is a port "
			   "of its own), or a TCP-only forward (ssh -L) to a server that is down%s",
			   p->target.label, what,
			   p->silent_closed ? ", or a uWSGI that exited just now (see its log)" : "");
	else if (p->silent_closed)
		return say(err, errlen, NR_EXIT_PROTOCOL,
			   "%s closed the connection before it answered (did uWSGI exit? see its log)",
			   p->target.label);
	else
		return say(err, errlen, NR_EXIT_TIMEOUT,
			   "%s: no answer within %.1f s (raise --timeout, or check the uWSGI log)",
			   p->target.label, p->silent_ms / 1000.0);
}

int nr_diag_udp_silent(const struct nr_ping *p, int tcp_ok, const char *secret_from, char *err,
		       size_t errlen)
{
	const char *lo = secret_from ? "" : "; without a secret the server answers UDP from "
					   "loopback only";

	if (tcp_ok && p->silent_refused)
		return say(err, errlen, NR_EXIT_UNREACHABLE,
			   "%s: UDP port closed, but TCP on the same port answers: UDP is not forwarded "
			   "(forward it too: Vagrant protocol \"udp\"), or drop --udp",
			   p->target.label);
	else if (tcp_ok)
		return say(err, errlen, NR_EXIT_TIMEOUT,
			   "%s: no answer over UDP within %.1f s, but TCP on the same port answers: UDP "
			   "is lost or not forwarded on the way (forward it too), or drop --udp%s",
			   p->target.label, p->silent_ms / 1000.0, lo);
	else if (p->silent_refused && p->state != NR_PING_CONNECTING)
		return say(err, errlen, NR_EXIT_PROTOCOL,
			   "%s: UDP port closed, and TCP on the same port says nothing netreload would: "
			   "not a netreload port (uWSGI's socket or http-socket, say; netreload-port is a "
			   "port of its own)",
			   p->target.label);
	else if (p->silent_refused)
		return say(err, errlen, NR_EXIT_UNREACHABLE,
			   "%s: UDP port closed (is uWSGI running there with netreload-port = %s?)",
			   p->target.label, p->target.port);
	else
		return say(err, errlen, NR_EXIT_TIMEOUT,
			   "%s: no answer within %.1f s (raise --timeout, or check the uWSGI log)",
			   p->target.label, p->silent_ms / 1000.0);
}
