/*
 * handover.c - the one serializer and parser of the re-exec hand-over.
 *
 * The text is space-separated key=value tokens, version first:
 *
 *   v=1 tcp=FD udp=FD gen=G active=0|1 mode=M first=T start=T stop=T
 *   pending=0|1 pmode=M pfirst=T last=K last_ms=MS [killed=N]
 *   c=FD,GEN,T0,ID         a client waiting for generation GEN
 *   p=FD,OPENED,HEX        a client still sending; HEX is what it sent
 *   u=GEN,T0,ID,HEX        a UDP sender waiting; HEX is its address
 *   r=ID,GEN,T0,KIND,MS,STOP[,HEX]   a UDP request id taken, how it ended, its sender
 *   f=HEX                  a file to see on the share: its file line (nr_files.h)
 *   fmore=N stale=N sreason=HEX   unlisted changes; a failed check's count and why
 *
 * killed=N (only when N > 0): the old workers the reload in flight killed
 * before the exec, so its "live" counts them; a reader that predates it skips
 * it (and answers killed=0, as it always did).
 *
 * An ID is "~" when empty. netreload 0.1 wrote the same without v=. Numbers are strict decimals; unknown keys are
 * skipped so a later netreload can add some without a new version.
 */
#include "handover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NR_HO_FIELDS 8 /* most comma-separated parts in one value */

static int put_hex(char *buf, size_t len, size_t *off, const void *data, size_t n)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < n; i++)
		if (nr_append(buf, len, off, "%02x", p[i]))
			return NR_ESPACE;
	return NR_OK;
}

static const char *id_out(const char *id)
{
	return id[0] ? id : "~";
}

static int put_fixed(const struct nr_handover *h, char *buf, size_t len, size_t *off)
{
	if (nr_append(buf, len, off, "v=%d", NR_HANDOVER_VERSION) ||
	    (h->tcp_fd >= 0 && nr_append(buf, len, off, " tcp=%d", h->tcp_fd)) ||
	    (h->udp_fd >= 0 && nr_append(buf, len, off, " udp=%d", h->udp_fd)))
		return NR_ESPACE;
	if (nr_append(buf, len, off,
		      " gen=%llu active=%d mode=%s first=%llu start=%llu "
		      "stop=%llu pending=%d pmode=%s pfirst=%llu last=%d last_ms=%u",
		      (unsigned long long)h->gen, h->active, nr_mode_name(h->mode),
		      (unsigned long long)h->first, (unsigned long long)h->start,
		      (unsigned long long)h->stop, h->pending, nr_mode_name(h->pmode),
		      (unsigned long long)h->pfirst, h->last, h->last_ms))
		return NR_ESPACE;
	return h->killed ? nr_append(buf, len, off, " killed=%u", h->killed) : NR_OK;
}

static int put_conn(const struct nr_ho_conn *c, char *buf, size_t len, size_t *off)
{
	if (c->waiting)
		return nr_append(buf, len, off, " c=%d,%llu,%llu,%s", c->fd,
				 (unsigned long long)c->want_gen, (unsigned long long)c->t0,
				 id_out(c->id));
	if (nr_append(buf, len, off, " p=%d,%llu,", c->fd, (unsigned long long)c->opened))
		return NR_ESPACE;
	return put_hex(buf, len, off, c->buf, c->len);
}

static int put_udp(const struct nr_ho_udp *u, char *buf, size_t len, size_t *off)
{
	if (nr_append(buf, len, off, " u=%llu,%llu,%s,", (unsigned long long)u->want_gen,
		      (unsigned long long)u->t0, id_out(u->id)))
		return NR_ESPACE;
	return put_hex(buf, len, off, &u->addr, u->alen);
}

static int put_file(const struct nr_file *f, char *buf, size_t len, size_t *off)
{
	char line[NR_LINE_MAX];
	int n = nr_file_format(f, line, sizeof(line));

	if (n < 1 || nr_append(buf, len, off, " f="))
		return NR_ESPACE;
	return put_hex(buf, len, off, line, (size_t)n - 1); /* without its LF */
}

static int put_share(const struct nr_handover *h, char *buf, size_t len, size_t *off)
{
	if (h->fmore && nr_append(buf, len, off, " fmore=%u", h->fmore))
		return NR_ESPACE;
	if (!h->stale)
		return NR_OK;
	if (nr_append(buf, len, off, " stale=%u sreason=", h->stale))
		return NR_ESPACE;
	return put_hex(buf, len, off, h->stale_reason, strlen(h->stale_reason));
}

static int put_recent(const struct nr_ho_recent *r, char *buf, size_t len, size_t *off)
{
	if (nr_append(buf, len, off, " r=%s,%llu,%llu,%d,%u,%u", id_out(r->id),
		      (unsigned long long)r->gen, (unsigned long long)r->t0, r->kind, r->ms,
		      r->stop_ms))
		return NR_ESPACE;
	if (!r->alen)
		return NR_OK;
	if (nr_append(buf, len, off, ","))
		return NR_ESPACE;
	return put_hex(buf, len, off, &r->addr, r->alen);
}

/* Encode entries until one does not fit; that one and the rest are cut off.
 * Returns how many went in. */
#define PUT_LIST(put, arr, n)                                                                 \
	do {                                                                                  \
		for (int i_ = 0; i_ < (n); i_++) {                                            \
			size_t before_ = off;                                                 \
			if (put(&(arr)[i_], buf, len, &off)) {                                \
				off = before_;                                                \
				buf[off] = '\0';                                              \
				(n) = i_;                                                     \
			}                                                                     \
		}                                                                             \
	} while (0)

int nr_handover_format(struct nr_handover *h, char *buf, size_t len)
{
	size_t off = 0;

	int nwait = 0, nsend;

	while (nwait < h->nconns && h->conns[nwait].waiting)
		nwait++;
	nsend = h->nconns - nwait;
	if (put_fixed(h, buf, len, &off))
		return NR_ESPACE;
	PUT_LIST(put_conn, h->conns, nwait);
	PUT_LIST(put_udp, h->udp, h->nudp);
	PUT_LIST(put_recent, h->recent, h->nrecent);
	if (put_share(h, buf, len, &off))
		return NR_ESPACE;
	PUT_LIST(put_file, h->files, h->nfiles);
	if (nwait + nsend == h->nconns) /* every waiting one went in */
		PUT_LIST(put_conn, h->conns + nwait, nsend);
	else
		nsend = 0;
	h->nconns = nwait + nsend;
	return NR_OK;
}

/* ---- parsing ----------------------------------------------------------- */

static int fail(char *err, size_t errlen, int code, const char *what, const char *tok)
{
	snprintf(err, errlen, "%s: '%.40s'", what, tok);
	return code;
}

/* Split v at commas into at most max parts (the last takes the rest). */
static int split_commas(char *v, char **part, int max)
{
	int n = 0;

	part[n++] = v;
	while (n < max && (v = strchr(v, ','))) {
		*v++ = '\0';
		part[n++] = v;
	}
	return n;
}

static int get_u64(const char *s, uint64_t *out)
{
	return nr_parse_u64(s, UINT64_MAX, out);
}

static int get_int(const char *s, int max, int *out)
{
	uint64_t v;

	if (nr_parse_u64(s, (uint64_t)max, &v))
		return -1;
	*out = (int)v;
	return 0;
}

static int get_u32(const char *s, uint32_t *out)
{
	uint64_t v;

	if (nr_parse_u64(s, UINT32_MAX, &v))
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int get_id(const char *s, char *id)
{
	if (!strcmp(s, "~")) {
		id[0] = '\0';
		return 0;
	}
	if (!nr_id_valid(s))
		return -1;
	snprintf(id, NR_ID_MAX + 1, "%s", s);
	return 0;
}

/* Decode hex in place: returns the byte count, or -1 if odd, bad or over max. */
static long unhex(char *s, size_t max)
{
	size_t n = strlen(s);

	if (n % 2 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + (size_t)k];
			int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (d < 0)
				return -1;
			v = v * 16 + (unsigned)d;
		}
		s[i] = (char)v;
	}
	return (long)(n / 2);
}

static int take_conn(struct nr_handover *h, char *v, int waiting)
{
	char *p[NR_HO_FIELDS];
	struct nr_ho_conn *c = &h->conns[h->nconns];
	long n;

	if (h->nconns == NR_HO_CONNS || split_commas(v, p, 4) != (waiting ? 4 : 3))
		return -1;
	memset(c, 0, sizeof(*c));
	c->waiting = waiting;
	if (get_int(p[0], 1 << 30, &c->fd))
		return -1;
	if (waiting) {
		if (get_u64(p[1], &c->want_gen) || get_u64(p[2], &c->t0) || get_id(p[3], c->id))
			return -1;
	} else {
		if (get_u64(p[1], &c->opened) || (n = unhex(p[2], NR_HO_READ_MAX)) < 0)
			return -1;
		c->buf = p[2];
		c->len = (size_t)n;
	}
	h->nconns++;
	return 0;
}

static int take_udp(struct nr_handover *h, char *v)
{
	char *p[NR_HO_FIELDS];
	struct nr_ho_udp *u = &h->udp[h->nudp];
	long n;

	if (h->nudp == NR_HO_UDP || split_commas(v, p, 4) != 4)
		return -1;
	memset(u, 0, sizeof(*u));
	if (get_u64(p[0], &u->want_gen) || get_u64(p[1], &u->t0) || get_id(p[2], u->id))
		return -1;
	n = unhex(p[3], sizeof(u->addr));
	if (n < (long)sizeof(sa_family_t))
		return -1;
	memcpy(&u->addr, p[3], (size_t)n);
	u->alen = (socklen_t)n;
	h->nudp++;
	return 0;
}

static int take_recent(struct nr_handover *h, char *v)
{
	char *p[NR_HO_FIELDS];
	struct nr_ho_recent *r = &h->recent[h->nrecent];

	int parts = h->nrecent == NR_HO_RECENT ? 0 : split_commas(v, p, 7);
	long n;

	if (parts != 6 && parts != 7)
		return -1;
	memset(r, 0, sizeof(*r));
	if (get_id(p[0], r->id) || !r->id[0] || get_u64(p[1], &r->gen) || get_u64(p[2], &r->t0) ||
	    get_int(p[3], NR_REPLY_FAILED, &r->kind) || get_u32(p[4], &r->ms) ||
	    get_u32(p[5], &r->stop_ms))
		return -1;
	if (parts == 7) {
		n = unhex(p[6], sizeof(r->addr));
		if (n < (long)sizeof(sa_family_t))
			return -1;
		memcpy(&r->addr, p[6], (size_t)n);
		r->alen = (socklen_t)n;
	}
	if (r->kind && r->kind != NR_REPLY_LIVE && r->kind != NR_REPLY_FAILED)
		return -1;
	h->nrecent++;
	return 0;
}

static int take_file(struct nr_handover *h, char *v)
{
	long n = unhex(v, NR_LINE_MAX - 1);
	char err[64];

	if (h->nfiles == NR_FILES_MAX || n < 1 || memchr(v, '\0', (size_t)n) ||
	    nr_file_parse(v, (size_t)n, &h->files[h->nfiles], err, sizeof(err)) != NR_OK)
		return -1;
	h->nfiles++;
	return 0;
}

/* A reason: printable text, hex-coded because it has spaces. */
static int take_reason(struct nr_handover *h, char *v)
{
	long n = unhex(v, NR_REASON_MAX);

	if (n < 0)
		return -1;
	for (long i = 0; i < n; i++)
		if (v[i] < 0x20 || v[i] > 0x7e)
			return -1;
	memcpy(h->stale_reason, v, (size_t)n);
	h->stale_reason[n] = '\0';
	return 0;
}

static int get_mode(const char *s, enum nr_mode *m)
{
	if (!strcmp(s, nr_mode_name(NR_MODE_DEFAULT))) {
		*m = NR_MODE_DEFAULT;
		return 0;
	}
	return nr_mode_parse(s, m) == NR_OK ? 0 : -1;
}

static int get_flag(const char *s, int *out)
{
	return get_int(s, 1, out);
}

/* One key=value token. 0, or -1 if the value is bad. */
static int take(struct nr_handover *h, const char *k, char *v)
{
	if (!strcmp(k, "tcp"))
		return get_int(v, 1 << 30, &h->tcp_fd);
	if (!strcmp(k, "udp"))
		return get_int(v, 1 << 30, &h->udp_fd);
	if (!strcmp(k, "gen"))
		return get_u64(v, &h->gen);
	if (!strcmp(k, "active"))
		return get_flag(v, &h->active);
	if (!strcmp(k, "mode"))
		return get_mode(v, &h->mode);
	if (!strcmp(k, "first"))
		return get_u64(v, &h->first);
	if (!strcmp(k, "start"))
		return get_u64(v, &h->start);
	if (!strcmp(k, "stop"))
		return get_u64(v, &h->stop);
	if (!strcmp(k, "pending"))
		return get_flag(v, &h->pending);
	if (!strcmp(k, "pmode"))
		return get_mode(v, &h->pmode);
	if (!strcmp(k, "pfirst"))
		return get_u64(v, &h->pfirst);
	if (!strcmp(k, "last"))
		return get_int(v, NR_REPLY_FAILED, &h->last);
	if (!strcmp(k, "last_ms"))
		return get_u32(v, &h->last_ms);
	if (!strcmp(k, "killed"))
		return get_u32(v, &h->killed);
	if (!strcmp(k, "c") || !strcmp(k, "p"))
		return take_conn(h, v, k[0] == 'c');
	if (!strcmp(k, "u"))
		return take_udp(h, v);
	if (!strcmp(k, "r"))
		return take_recent(h, v);
	if (!strcmp(k, "f"))
		return take_file(h, v);
	if (!strcmp(k, "fmore"))
		return get_u32(v, &h->fmore);
	if (!strcmp(k, "stale"))
		return get_u32(v, &h->stale);
	if (!strcmp(k, "sreason"))
		return take_reason(h, v);
	return 0;
}

int nr_handover_parse(const char *text, struct nr_handover *h, char *err, size_t errlen)
{
	char *save = NULL, *tok;
	int first = 1;

	memset(h, 0, sizeof(*h));
	h->tcp_fd = h->udp_fd = -1;
	h->mode = h->pmode = NR_MODE_GRACEFUL;
	if (strlen(text) > NR_HANDOVER_MAX)
		return fail(err, errlen, NR_EPARSE, "hand-over longer than its limit", "");
	if (!(h->text = strdup(text)))
		return fail(err, errlen, NR_ESPACE, "out of memory", "");
	for (tok = strtok_r(h->text, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq || eq == tok)
			return fail(err, errlen, NR_EPARSE, "not key=value", tok);
		*eq = '\0';
		/* 0.1 wrote the same tokens without v=: read it as version 1 */
		if (!strcmp(tok, "v") && (!first || strcmp(eq + 1, "1")))
			return fail(err, errlen, NR_EVERSION,
				    "hand-over from another netreload version", eq + 1);
		first = 0;
		if (take(h, tok, eq + 1))
			return fail(err, errlen, NR_EPARSE, "bad value", tok);
	}
	if (first)
		return fail(err, errlen, NR_EPARSE, "empty hand-over", "");
	return NR_OK;
}

void nr_handover_free(struct nr_handover *h)
{
	free(h->text);
	h->text = NULL;
}
