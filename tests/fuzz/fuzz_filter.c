/*
 * fuzz_filter.c - libFuzzer target for the watch filter: .gitignore parsing
 * and matching, --include/--exclude/--ext, and the glob matcher.
 *
 * The input is text in sections. What comes before the first header line is
 * the root's .gitignore; "@@ REL" starts the ignore file REL (e.g.
 * "@@ sub/.gitignore", "@@ .git/info/exclude"); "@@ check" lists paths to
 * decide, one per line, a trailing '/' for a directory; "@@ include",
 * "@@ exclude" list globs and "@@ ext" gives --ext; "@@ no-gitignore" turns
 * .gitignore off. The root is a small real tree, so directories the input
 * gives no ignore file for are read from disk (usually: nothing there).
 * Besides crashes and sanitizer reports it checks that:
 *   - asking twice gives the same verdict and reason (the cache changes nothing);
 *   - nr_glob_match agrees with fnmatch(FNM_PATHNAME) on globs both read the
 *     same way: no "[", no "\", no "**" component.
 */
#include <fnmatch.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../client/filter.h"

#define MAX_SECTIONS 32
#define MAX_LINES 64 /* checks, and globs compared with fnmatch */

struct section {
	const char *name; /* NUL-terminated copy */
	const char *text;
	size_t len;
};

struct input {
	const char *data;
	struct section s[MAX_SECTIONS];
	int n;
	char *copy; /* of data, cut into NUL-terminated names and lines, once each */
	const char *paths[MAX_LINES], *globs[MAX_LINES];
	int npaths, nglobs;
};

static char root[] = "/tmp/nr-fuzz-filter-XXXXXX";

/* Cut the input at its header lines. */
static void sections(struct input *in, size_t size)
{
	const char *data = in->data;
	size_t start = 0;

	in->s[0] = (struct section){".gitignore", data, 0};
	in->n = 1;
	for (size_t i = 0; i + 3 <= size; i++) {
		if ((i > 0 && data[i - 1] != '\n') || memcmp(data + i, "@@ ", 3))
			continue;
		const char *nl = memchr(data + i, '\n', size - i);
		size_t end = nl ? (size_t)(nl - data) : size;
		in->s[in->n - 1].len = i - start;
		if (in->n == MAX_SECTIONS)
			return;
		in->copy[end] = '\0';
		start = nl ? end + 1 : size;
		in->s[in->n++] = (struct section){in->copy + i + 3, data + start, 0};
		i = end;
	}
	in->s[in->n - 1].len = size - start;
}

/* The lines of a section as NUL-terminated strings in in->copy, without "\r\n";
 * call it once per section, since it cuts the copy. */
static int lines(struct input *in, const struct section *s, const char **out, int max)
{
	char *p = in->copy + (s->text - in->data);
	char *end = p + s->len;
	int n = 0;

	while (p < end && n < max) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *e = nl ? nl : end;
		*e = '\0';
		if (e > p && e[-1] == '\r')
			e[-1] = '\0';
		out[n++] = p;
		p = e + 1;
	}
	return n;
}

/* Globs that fnmatch(FNM_PATHNAME) reads as nr_glob_match does. */
static int plain_glob(const char *g)
{
	if (strpbrk(g, "[\\"))
		return 0;
	for (const char *p = g; (p = strstr(p, "**")); p++)
		if ((p == g || p[-1] == '/') && (p[2] == '/' || !p[2]))
			return 0;
	return 1;
}

static void options(struct input *in, struct nr_filter_opts *o)
{
	const char *tmp[MAX_LINES];

	o->gitignore = 1;
	for (int i = 1; i < in->n; i++) {
		const struct section *s = &in->s[i];
		if (!strcmp(s->name, "no-gitignore"))
			o->gitignore = 0;
		else if (!strcmp(s->name, "ext") && lines(in, s, tmp, 1) == 1)
			o->exts = tmp[0];
		else if (!strcmp(s->name, "include"))
			o->nincludes += lines(in, s, o->includes + o->nincludes,
					      NR_FILTER_MAX_GLOBS - o->nincludes);
		else if (!strcmp(s->name, "exclude"))
			o->nexcludes += lines(in, s, o->excludes + o->nexcludes,
					      NR_FILTER_MAX_GLOBS - o->nexcludes);
	}
}

/* One path, as on_change() in loop.c sees it, asked twice. */
static void check(struct nr_filter *f, const char *line, size_t whylen)
{
	char rel[PATH_MAX], *why = malloc(whylen), *again = malloc(whylen);
	size_t n = strlen(line);
	int is_dir = n > 0 && line[n - 1] == '/', yes;
	const char *base;

	if (!why || !again)
		abort();
	snprintf(rel, sizeof(rel), "%.*s", (int)(n - (size_t)is_dir), line);
	base = strrchr(rel, '/');
	if (rel[0] && !strcmp(base ? base + 1 : rel, ".gitignore"))
		nr_filter_forget(f, rel);
	if (rel[0]) {
		yes = nr_filter_check(f, rel, is_dir, why, whylen);
		if (nr_filter_check(f, rel, is_dir, again, whylen) != yes || strcmp(why, again))
			abort();
		if (nr_filter_check(f, rel, is_dir, NULL, 0) != yes)
			abort();
		if (is_dir)
			(void)nr_filter_prune(f, rel);
	}
	free(why);
	free(again);
}

static void compare_globs(const struct input *in)
{
	for (int i = 0; i < in->nglobs; i++) {
		if (!plain_glob(in->globs[i]))
			continue;
		for (int j = 0; j < in->npaths; j++)
			if (nr_glob_match(in->globs[i], in->paths[j]) !=
			    (fnmatch(in->globs[i], in->paths[j], FNM_PATHNAME) == 0))
				abort();
	}
}

/* Paths from the check sections; globs from the ignore files and the options. */
static void collect(struct input *in, const struct nr_filter_opts *o)
{
	for (int i = 0; i < in->n; i++) {
		const struct section *s = &in->s[i];
		if (!strcmp(s->name, "check"))
			in->npaths += lines(in, s, in->paths + in->npaths, MAX_LINES - in->npaths);
		else if (strcmp(s->name, "ext") && strcmp(s->name, "no-gitignore") &&
			 strcmp(s->name, "include") && strcmp(s->name, "exclude"))
			in->nglobs += lines(in, s, in->globs + in->nglobs, MAX_LINES - in->nglobs);
	}
	for (int i = 0; i < o->nincludes && in->nglobs < MAX_LINES; i++)
		in->globs[in->nglobs++] = o->includes[i];
	for (int i = 0; i < o->nexcludes && in->nglobs < MAX_LINES; i++)
		in->globs[in->nglobs++] = o->excludes[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {.data = (const char *)data, .copy = malloc(size + 1)};
	struct nr_filter_opts o = {0};
	struct nr_filter *f;
	size_t whylen = 1 + size % 300;

	if (!in.copy)
		abort();
	memcpy(in.copy, data, size);
	in.copy[size] = '\0';
	sections(&in, size);
	options(&in, &o);
	f = nr_filter_new(root, &o);
	if (!f)
		abort();
	for (int i = 0; i < in.n; i++) {
		const struct section *s = &in.s[i];
		if (strcmp(s->name, "check"))
			nr_filter_set_ignore(f, s->name, s->text, s->len);
	}
	collect(&in, &o);
	for (int i = 0; i < in.npaths; i++)
		check(f, in.paths[i], whylen);
	compare_globs(&in);
	nr_filter_free(f);
	free(in.copy);
	return 0;
}

static void write_file(const char *rel, const char *text)
{
	char path[PATH_MAX];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (!(fp = fopen(path, "w")) || fputs(text, fp) < 0 || fclose(fp))
		abort();
}

static void cleanup(void)
{
	char cmd[PATH_MAX];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd))
		return;
}

/* A small tree: a virtualenv, a .gitignore and an info/exclude on disk. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *dirs[] = {"env", "app", ".git", ".git/info"};
	char path[PATH_MAX];

	(void)argc;
	(void)argv;
	if (!mkdtemp(root))
		abort();
	atexit(cleanup);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", root, dirs[i]);
		if (mkdir(path, 0755))
			abort();
	}
	write_file("env/pyvenv.cfg", "home = /usr\n");
	write_file("app/.gitignore", "*.log\n!keep.log\n/generated/\n");
	write_file(".git/info/exclude", "local-notes.txt\n");
	return 0;
}
