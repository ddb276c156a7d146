/*
 * text.c - the two ways the client prints text it did not write itself (file
 * names, what a server says, what a .gitignore holds): as a JSON string, and
 * escaped for a terminal. Every such string goes through one of them, so a
 * name or an answer can neither break a JSON line nor drive the terminal.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "report.h"

/* The UTF-8 sequence at s (n bytes left): its length with its code point in
 * *cp, or 0 if it is not valid UTF-8 (overlong, a surrogate, past U+10FFFF,
 * cut short). */
static size_t utf8_char(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* What changes how a terminal shows what follows, or hides text: C0 and C1
 * controls, DEL, and the Unicode format characters (bidi overrides and
 * isolates, zero-width ones, line and paragraph separators, soft hyphen). */
static int invisible(uint32_t c)
{
	return c < 0x20 || (c >= 0x7f && c < 0xa0) || c == 0xad || c == 0x61c ||
	       (c >= 0x200b && c <= 0x200f) || (c >= 0x2028 && c <= 0x202e) ||
	       (c >= 0x2060 && c <= 0x206f) || c == 0xfeff;
}

void nr_json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	fputc('"', out);
	while (n > 0) {
		uint32_t c;
		size_t len = utf8_char(p, n, &c);
		if (len == 0) {
			fputs("\\ufffd", out); /* JSON text is UTF-8: a stray byte cannot be kept */
			len = 1;
		} else if (c == '"' || c == '\\')
			fprintf(out, "\\%c", (char)c);
		else if (c == '\n')
			fputs("\\n", out);
		else if (c == '\t')
			fputs("\\t", out);
		else if (c == '\r')
			fputs("\\r", out);
		else if (invisible(c))
			fprintf(out, "\\u%04x", (unsigned)c);
		else
			fwrite(p, 1, len, out);
		p += len;
		n -= len;
	}
	fputc('"', out);
}

void nr_json_member(FILE *out, const char *key, const char *value)
{
	fprintf(out, ",\"%s\":", key);
	nr_json_string(out, value);
}

/* 1 if s is valid UTF-8 throughout. */
static int valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	while (n > 0) {
		uint32_t c;
		size_t len = utf8_char(p, n, &c);
		if (len == 0)
			return 0;
		p += len;
		n -= len;
	}
	return 1;
}

void nr_json_path(FILE *out, const char *key, const char *path)
{
	nr_json_member(out, key, path);
	if (valid_utf8(path))
		return;
	fprintf(out, ",\"%s_bytes\":\"", key); /* the name as it is on disk, byte for byte */
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		fprintf(out, "%02x", *p);
	fputc('"', out);
}

void nr_iso_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char day[32], zone[8];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	if (strftime(zone, sizeof(zone), "%z", &tm) != 5)
		snprintf(zone, sizeof(zone), "+0000");
	/* ISO 8601 wants the offset as +hh:mm; strftime gives +hhmm */
	snprintf(buf, len, "%s.%03ld%.3s:%.2s", day, ts.tv_nsec / 1000000, zone, zone + 3);
}

void nr_json_begin(FILE *out, const char *event, const char *target)
{
	char now[NR_ISO_TIME_SIZE];

	nr_iso_time(now, sizeof(now));
	fputs("{\"event\":", out);
	nr_json_string(out, event);
	nr_json_member(out, "time", now);
	if (target)
		nr_json_member(out, "target", target);
}

void nr_json_end(FILE *out)
{
	fputs("}\n", out);
	fflush(out);
}

/* The escape for one character or stray byte (c, or byte if len is 0) at the
 * terminal; "" if it shows as itself. */
static void tty_escape(uint32_t c, size_t len, unsigned char byte, char *esc, size_t size)
{
	if (len == 0)
		snprintf(esc, size, "\\x%02x", byte);
	else if (c == '\\')
		snprintf(esc, size, "\\\\");
	else if (c == '\n')
		snprintf(esc, size, "\\n");
	else if (c == '\t')
		snprintf(esc, size, "\\t");
	else if (c == '\r')
		snprintf(esc, size, "\\r");
	else if (invisible(c) && c < 0x80)
		snprintf(esc, size, "\\x%02x", (unsigned)c);
	else if (invisible(c))
		snprintf(esc, size, "\\u%04x", (unsigned)c);
	else
		esc[0] = '\0';
}

const char *nr_tty(const char *s, char *buf, size_t size)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), off = 0;

	if (size == 0)
		return "";
	while (n > 0) {
		char esc[12];
		uint32_t c = 0;
		size_t len = utf8_char(p, n, &c), take = len ? len : 1;
		const char *out = esc;
		size_t outlen;
		tty_escape(c, len, *p, esc, sizeof(esc));
		if (!esc[0])
			out = (const char *)p;
		outlen = esc[0] ? strlen(esc) : take;
		if (off + outlen + sizeof("...") > size) { /* cut, and say so */
			snprintf(buf + off, size - off, "%s", size - off >= sizeof("...") ? "..." : "");
			return buf;
		}
		memcpy(buf + off, out, outlen);
		off += outlen;
		p += take;
		n -= take;
	}
	buf[off] = '\0';
	return buf;
}
