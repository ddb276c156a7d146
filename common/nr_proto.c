/*
 * nr_proto.c - encoder and decoder for the netreload wire protocol.
 *
 * Every decoder works on a bounded copy of the line, rejects bytes outside
 * printable ASCII, and checks every number for overflow; see PROTOCOL.md.
 */
#include "nr_proto.h"
#include "nr_files.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *mode_names[NR_MODE_COUNT] = {
	[NR_MODE_DEFAULT] = "default",
	[NR_MODE_GRACEFUL] = "graceful",
	[NR_MODE_CHAIN] = "chain",
	[NR_MODE_WORKERS] = "workers",
	[NR_MODE_BRUTAL_WORKERS] = "brutal-workers",
	[NR_MODE_BRUTAL] = "brutal",
};

static const char *kind_names[] = {
	[NR_REPLY_ACCEPTED] = "accepted", [NR_REPLY_LIVE] = "live",
	[NR_REPLY_FAILED] = "failed",	  [NR_REPLY_STATUS] = "status",
	[NR_REPLY_ERROR] = "error",	  [NR_REPLY_HELLO] = "hello",
};

/* Request verbs, and the protocol version that brought each. */
static const struct {
	const char *word;
	int since;
} verbs[] = {
	[NR_VERB_RELOAD] = {"reload", 1},
	[NR_VERB_STATUS] = {"status", 1},
	[NR_VERB_HELLO] = {"hello", 2},
};
#define NR_VERBS (int)(sizeof(verbs) / sizeof(verbs[0]))

/* A split line: the version, the verb and up to NR_MAX_FIELDS key=value pairs. */
#define NR_MAX_FIELDS 16
struct fields {
	int version;
	char buf[NR_LINE_MAX + 1];
	const char *word;
	const char *key[NR_MAX_FIELDS];
	const char *val[NR_MAX_FIELDS];
	int n;
};

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

const char *nr_mode_name(enum nr_mode mode)
{
	if ((int)mode < 0 || mode >= NR_MODE_COUNT)
		return "?";
	return mode_names[mode];
}

int nr_mode_parse(const char *name, enum nr_mode *mode)
{
	for (int i = NR_MODE_GRACEFUL; i < NR_MODE_COUNT; i++) {
		if (!strcmp(name, mode_names[i])) {
			*mode = (enum nr_mode)i;
			return NR_OK;
		}
	}
	return NR_EPARSE;
}

int nr_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > NR_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

int nr_sniff(const char *buf, size_t len)
{
	size_t n = len < NR_MAGIC_LEN ? len : NR_MAGIC_LEN;

	return memcmp(buf, NR_MAGIC, n) ? NR_ELEGACY : NR_OK;
}

void nr_reason_set(char *dst, const char *src)
{
	size_t j = 0;

	for (size_t i = 0; src[i] && j < NR_REASON_MAX; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : (c == '\t' || c == '\n' ? ' ' : '?');
	}
	while (j > 0 && dst[j - 1] == ' ')
		j--;
	dst[j] = '\0';
}

/* Strip the line ending, check the bytes and the magic, split into fields. */
static int split(const char *line, size_t len, struct fields *f, char *err, size_t errlen)
{
	char *p, *end;
	unsigned long ver = 0;

	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (nr_sniff(line, len) != NR_OK)
		return fail(err, errlen, NR_ELEGACY, "not a netreload request");
	if (len + 1 > NR_LINE_MAX)
		return fail(err, errlen, NR_EPARSE, "line longer than %d bytes", NR_LINE_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c >= 0x7f)
			return fail(err, errlen, NR_EPARSE, "byte 0x%02x at offset %zu", c, i);
	}
	memcpy(f->buf, line, len);
	f->buf[len] = '\0';
	end = f->buf + len;
	p = f->buf + NR_MAGIC_LEN;
	if (p >= end || *p < '0' || *p > '9')
		return fail(err, errlen, NR_EPARSE, "missing protocol version after " NR_MAGIC);
	for (int digits = 0; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
		if (digits == 4)
			return fail(err, errlen, NR_EVERSION, "protocol version too long");
		ver = ver * 10 + (unsigned long)(*p - '0');
	}
	if (p < end && *p != ' ')
		return fail(err, errlen, NR_EPARSE, "bad protocol version");
	if (ver < NR_PROTOCOL_MIN || ver > NR_PROTOCOL_VERSION)
		return fail(err, errlen, NR_EVERSION,
			    "protocol version %lu not supported (this side speaks %d to %d)", ver,
			    NR_PROTOCOL_MIN, NR_PROTOCOL_VERSION);
	f->version = (int)ver;
	return 0;
}

/* Split what follows the version: a word, then key=value pairs; reason= takes the rest. */
static int split_fields(struct fields *f, char *err, size_t errlen)
{
	char *p = f->buf + NR_MAGIC_LEN;

	while (*p >= '0' && *p <= '9')
		p++;
	while (*p == ' ')
		p++;
	if (!*p)
		return fail(err, errlen, NR_EPARSE, "missing verb");
	f->word = p;
	f->n = 0;
	while ((p = strchr(p, ' '))) {
		char *eq;
		*p++ = '\0';
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		if (f->n == NR_MAX_FIELDS)
			return fail(err, errlen, NR_EPARSE, "more than %d fields", NR_MAX_FIELDS);
		eq = strchr(p, '=');
		if (!eq || eq == p)
			return fail(err, errlen, NR_EPARSE, "field '%.20s' is not key=value", p);
		*eq = '\0';
		f->key[f->n] = p;
		f->val[f->n++] = eq + 1;
		if (!strcmp(p, "reason"))
			return 0;
		p = eq + 1;
	}
	return 0;
}

static int split_line(const char *line, size_t len, struct fields *f, char *err, size_t errlen)
{
	int rc = split(line, len, f, err, errlen);

	return rc ? rc : split_fields(f, err, errlen);
}

void nr_hex_encode(const void *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = in;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int nr_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int nr_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		uint64_t d = (uint64_t)(*s - '0');
		if (*s < '0' || *s > '9')
			return -1;
		/* v * 10 + d <= max, without overflow, also when max < 10 */
		if (v > max / 10 || (v == max / 10 && d > max % 10))
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;

	if (nr_parse_u64(s, UINT32_MAX, &v))
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int copy_word(char *dst, size_t size, const char *src)
{
	if (strlen(src) >= size)
		return -1;
	strcpy(dst, src);
	return 0;
}

/* Exactly want lowercase hex digits. */
static int lower_hex(const char *s, size_t want)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == want;
}

/* A lowercase hex SHA-256 (the file list's sum=). */
static int hash_hex_valid(const char *s)
{
	return lower_hex(s, NR_HASH_HEX);
}

int nr_sid_valid(const char *s)
{
	return lower_hex(s, NR_SID_HEX);
}

static int req_id(struct nr_request *req, const char *v)
{
	return nr_id_valid(v) ? copy_word(req->id, sizeof(req->id), v) : -1;
}

static int req_mode(struct nr_request *req, const char *v)
{
	return nr_mode_parse(v, &req->mode) == NR_OK ? 0 : -1;
}

static int req_wait(struct nr_request *req, const char *v)
{
	if (strcmp(v, "0") && strcmp(v, "1"))
		return -1;
	req->wait = v[0] == '1';
	return 0;
}

/* -2: a number, but more than NR_FILES_MAX. */
static int req_files(struct nr_request *req, const char *v)
{
	if (parse_u32(v, &req->files))
		return -1;
	return req->files > NR_FILES_MAX ? -2 : 0;
}

static int req_more(struct nr_request *req, const char *v)
{
	return parse_u32(v, &req->more);
}

static int req_sum(struct nr_request *req, const char *v)
{
	return hash_hex_valid(v) ? copy_word(req->sum, sizeof(req->sum), v) : -1;
}

/* Known request keys; each may appear once. Unknown keys are ignored (PROTOCOL.md). */
static const struct {
	const char *key;
	int (*parse)(struct nr_request *req, const char *v);
} request_keys[] = {
	{"id", req_id},	      {"mode", req_mode}, {"wait", req_wait},
	{"files", req_files}, {"more", req_more}, {"sum", req_sum},
};
#define NR_REQUEST_KEYS (int)(sizeof(request_keys) / sizeof(request_keys[0]))

/* Field i of f, if its key is known and not seen before; fills err otherwise. */
static int request_field(struct nr_request *req, const struct fields *f, int i, unsigned *seen,
			 char *err, size_t errlen)
{
	for (int k = 0; k < NR_REQUEST_KEYS; k++) {
		int rc;
		if (strcmp(f->key[i], request_keys[k].key))
			continue;
		if (*seen & (1u << k))
			return fail(err, errlen, NR_EPARSE, "duplicate field %s", f->key[i]);
		*seen |= 1u << k;
		rc = request_keys[k].parse(req, f->val[i]);
		if (rc == -2)
			return fail(err, errlen, NR_EPARSE, "too many files: %.20s (at most %d)",
				    f->val[i], NR_FILES_MAX);
		if (rc)
			return fail(err, errlen, NR_EPARSE, "bad value for %s: '%.40s'", f->key[i],
				    f->val[i]);
	}
	return NR_OK;
}

/* The verb a word names, if the line's version has it. */
static int request_verb(const char *word, int version, enum nr_verb *verb)
{
	for (int i = NR_VERB_RELOAD; i < NR_VERBS; i++) {
		if (!strcmp(word, verbs[i].word) && version >= verbs[i].since) {
			*verb = (enum nr_verb)i;
			return 0;
		}
	}
	return -1;
}

int nr_request_parse(const char *line, size_t len, struct nr_request *req, char *err,
		     size_t errlen)
{
	struct fields f;
	unsigned seen = 0;
	int rc = split_line(line, len, &f, err, errlen);

	if (rc)
		return rc;
	memset(req, 0, sizeof(*req));
	req->version = f.version;
	req->wait = 1;
	if (request_verb(f.word, f.version, &req->verb))
		return fail(err, errlen, NR_EPARSE,
			    "unknown verb '%.20s' in protocol %d (expected reload, status%s)", f.word,
			    f.version, f.version >= 2 ? " or hello" : "");
	for (int i = 0; i < f.n; i++)
		if ((rc = request_field(req, &f, i, &seen, err, errlen)))
			return rc;
	if (req->files && !req->sum[0])
		return fail(err, errlen, NR_EPARSE, "files=%u without sum=", req->files);
	return NR_OK;
}

int nr_append(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= len)
		return NR_ESPACE;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *off)
		return NR_ESPACE;
	*off += (size_t)n;
	return NR_OK;
}

/* files, more and sum: each only when non-zero or present (PROTOCOL.md, "Changed files"). */
static int format_files(const struct nr_request *req, char *buf, size_t len, size_t *off)
{
	int rc = NR_OK;

	if (req->files > NR_FILES_MAX || ((req->files || req->sum[0]) && !hash_hex_valid(req->sum)))
		return NR_EPARSE;
	if (req->files)
		rc = nr_append(buf, len, off, " files=%u", req->files);
	if (!rc && req->more)
		rc = nr_append(buf, len, off, " more=%u", req->more);
	if (!rc && req->sum[0])
		rc = nr_append(buf, len, off, " sum=%s", req->sum);
	return rc;
}

int nr_request_format(const struct nr_request *req, char *buf, size_t len)
{
	size_t off = 0;
	int version, rc;

	if (len > NR_LINE_MAX)
		len = NR_LINE_MAX;
	version = req->version ? req->version : NR_PROTOCOL_MIN;
	if (req->verb < NR_VERB_RELOAD || req->verb >= NR_VERBS || version < verbs[req->verb].since ||
	    version > NR_PROTOCOL_VERSION)
		return NR_EPARSE;
	rc = nr_append(buf, len, &off, NR_MAGIC "%d %s", version, verbs[req->verb].word);
	if (!rc && req->id[0])
		rc = nr_append(buf, len, &off, " id=%s", req->id);
	if (!rc && req->verb == NR_VERB_RELOAD && req->mode != NR_MODE_DEFAULT)
		rc = nr_append(buf, len, &off, " mode=%s", nr_mode_name(req->mode));
	if (!rc && req->verb == NR_VERB_RELOAD)
		rc = nr_append(buf, len, &off, " wait=%d", req->wait ? 1 : 0);
	if (!rc && req->verb == NR_VERB_RELOAD)
		rc = format_files(req, buf, len, &off);
	if (!rc)
		rc = nr_append(buf, len, &off, "\n");
	return rc ? rc : (int)off;
}

static int reply_kind(const char *word, enum nr_kind *kind)
{
	for (int i = NR_REPLY_ACCEPTED; i < NR_REPLY_COUNT; i++) {
		if (!strcmp(word, kind_names[i])) {
			*kind = (enum nr_kind)i;
			return 0;
		}
	}
	return -1;
}

static int workers_field(struct nr_reply *rep, const char *v)
{
	char tmp[32];
	char *slash;

	if (copy_word(tmp, sizeof(tmp), v) || !(slash = strchr(tmp, '/')))
		return -1;
	*slash = '\0';
	return parse_u32(tmp, &rep->workers_live) || parse_u32(slash + 1, &rep->workers_total);
}

/* An old= list: names of lowercase letters, separated by single commas. */
static int old_list_valid(const char *s)
{
	int name = 0;

	for (; *s; s++) {
		if (*s >= 'a' && *s <= 'z')
			name++;
		else if (*s == ',' && name)
			name = 0;
		else
			return 0;
	}
	return name > 0;
}

static int reply_field(struct nr_reply *rep, const char *k, const char *v)
{
	if (!strcmp(k, "id"))
		return nr_id_valid(v) ? copy_word(rep->id, sizeof(rep->id), v) : -1;
	if (!strcmp(k, "gen"))
		return nr_parse_u64(v, UINT64_MAX, &rep->gen);
	if (!strcmp(k, "ms"))
		return parse_u32(v, &rep->ms);
	if (!strcmp(k, "stop_ms"))
		return parse_u32(v, &rep->stop_ms);
	if (!strcmp(k, "killed"))
		return parse_u32(v, &rep->killed);
	if (!strcmp(k, "stale"))
		return parse_u32(v, &rep->stale);
	if (!strcmp(k, "old"))
		return old_list_valid(v) ? copy_word(rep->old, sizeof(rep->old), v) : -1;
	if (!strcmp(k, "spawn_ms"))
		return parse_u32(v, &rep->spawn_ms);
	if (!strcmp(k, "load_ms"))
		return parse_u32(v, &rep->load_ms);
	if (!strcmp(k, "mode"))
		return nr_mode_parse(v, &rep->mode);
	if (!strcmp(k, "state"))
		return copy_word(rep->state, sizeof(rep->state), v);
	if (!strcmp(k, "workers"))
		return workers_field(rep, v);
	if (!strcmp(k, "apps"))
		return parse_u32(v, &rep->apps);
	if (!strcmp(k, "last"))
		return copy_word(rep->last, sizeof(rep->last), v);
	if (!strcmp(k, "last_ms"))
		return parse_u32(v, &rep->last_ms);
	if (!strcmp(k, "pid"))
		return parse_u32(v, &rep->pid);
	if (!strcmp(k, "code"))
		return copy_word(rep->code, sizeof(rep->code), v);
	if (!strcmp(k, "sid"))
		return nr_sid_valid(v) ? copy_word(rep->sid, sizeof(rep->sid), v) : -1;
	if (!strcmp(k, "reason")) {
		nr_reason_set(rep->reason, v);
		return 0;
	}
	return 0; /* unknown keys are ignored */
}

int nr_reply_parse(const char *line, size_t len, struct nr_reply *rep, char *err, size_t errlen)
{
	struct fields f;
	int rc = split_line(line, len, &f, err, errlen);

	if (rc == NR_ELEGACY)
		return fail(err, errlen, NR_EPARSE, "not a netreload reply");
	if (rc)
		return rc;
	memset(rep, 0, sizeof(*rep));
	rep->version = f.version;
	if (reply_kind(f.word, &rep->kind))
		return fail(err, errlen, NR_EPARSE, "unknown reply '%.20s'", f.word);
	for (int i = 0; i < f.n; i++) {
		if (reply_field(rep, f.key[i], f.val[i]))
			return fail(err, errlen, NR_EPARSE, "bad value for %s: '%.40s'", f.key[i], f.val[i]);
	}
	return NR_OK;
}

static int format_status(const struct nr_reply *rep, char *buf, size_t len, size_t *off)
{
	return nr_append(buf, len, off,
		      " gen=%llu state=%s mode=%s workers=%u/%u apps=%u last=%s last_ms=%u pid=%u",
		      (unsigned long long)rep->gen, rep->state[0] ? rep->state : "idle",
		      nr_mode_name(rep->mode), rep->workers_live, rep->workers_total, rep->apps,
		      rep->last[0] ? rep->last : "none", rep->last_ms, rep->pid);
}

static int format_body(const struct nr_reply *rep, char *buf, size_t len, size_t *off)
{
	switch (rep->kind) {
	case NR_REPLY_ACCEPTED:
		return nr_append(buf, len, off, " gen=%llu mode=%s", (unsigned long long)rep->gen,
			      nr_mode_name(rep->mode));
	case NR_REPLY_LIVE:
	case NR_REPLY_FAILED:
		if (nr_append(buf, len, off, " gen=%llu ms=%u stop_ms=%u", (unsigned long long)rep->gen,
			   rep->ms, rep->stop_ms))
			return NR_ESPACE;
		if (rep->spawn_ms && nr_append(buf, len, off, " spawn_ms=%u", rep->spawn_ms))
			return NR_ESPACE;
		if (rep->load_ms && nr_append(buf, len, off, " load_ms=%u", rep->load_ms))
			return NR_ESPACE;
		if (rep->killed && nr_append(buf, len, off, " killed=%u", rep->killed))
			return NR_ESPACE;
		if (rep->old[0] && !old_list_valid(rep->old))
			return NR_EPARSE;
		if (rep->old[0] && nr_append(buf, len, off, " old=%s", rep->old))
			return NR_ESPACE;
		return rep->stale ? nr_append(buf, len, off, " stale=%u", rep->stale) : NR_OK;
	case NR_REPLY_STATUS:
		return format_status(rep, buf, len, off);
	case NR_REPLY_ERROR:
		return nr_append(buf, len, off, " code=%s", rep->code[0] ? rep->code : "error");
	case NR_REPLY_HELLO:
		return rep->sid[0] ? nr_append(buf, len, off, " sid=%s", rep->sid) : NR_OK;
	case NR_REPLY_COUNT:
		break;
	}
	return NR_EPARSE;
}

int nr_reply_format(const struct nr_reply *rep, char *buf, size_t len)
{
	size_t off = 0;
	char reason[NR_REASON_MAX + 1];
	int rc;

	if (rep->kind < NR_REPLY_ACCEPTED || rep->kind >= NR_REPLY_COUNT)
		return NR_EPARSE;
	if (len > NR_LINE_MAX)
		len = NR_LINE_MAX;
	rc = nr_append(buf, len, &off, NR_MAGIC "%d %s",
		       rep->version ? rep->version : NR_PROTOCOL_MIN, kind_names[rep->kind]);
	if (!rc && rep->id[0])
		rc = nr_append(buf, len, &off, " id=%s", rep->id);
	if (!rc)
		rc = format_body(rep, buf, len, &off);
	if (!rc && rep->reason[0]) {
		nr_reason_set(reason, rep->reason);
		/* a reason is the last field; cut it to fit the line rather than fail */
		size_t room = len > off + 10 ? len - off - 10 : 0;
		if (strlen(reason) > room)
			reason[room] = '\0';
		rc = nr_append(buf, len, &off, " reason=%s", reason);
	}
	if (!rc)
		rc = nr_append(buf, len, &off, "\n");
	return rc ? rc : (int)off;
}
