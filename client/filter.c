/*
 * filter.c - decide whether a changed path reloads (see filter.h).
 *
 * Order of the rules, first decisive one wins:
 *   1. a parent directory is ignored (by 2, 4 or 5): nothing inside reloads
 *   2. --exclude GLOB
 *   3. the default rules (VCS dirs, caches, virtualenvs, editor noise),
 *      unless --no-default-ignore, or an --include that matches the path
 *      (or leads into the directory) and names what the rule ignores:
 *      "*.log" brings back logs, "node_modules/lib/a.js" that directory,
 *      but "*.py" never brings back emacs's ".#x.py"
 *   4. --include GLOB: reloads, even if .gitignore'd or of another --ext
 *   6. --ext / --include given and neither matched: no reload
 */
#include "filter.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_EXTS 64
#define GI_BUCKETS 256

struct gi_rule {
	char *pat;
	int neg, dir_only, anchored, line;
};

/* The rules of one .gitignore (or .git/info/exclude), cached per directory. */
struct gi_file {
	char *dir; /* "" for the root */
	char *src; /* how messages name the file, e.g. "a/.gitignore" */
	struct gi_rule *rules;
	int n;
	struct gi_file *next;
};

struct nr_filter {
	char *root;
	struct nr_filter_opts o;
	char *ext_buf;
	const char *exts[MAX_EXTS];
	int nexts;
	struct gi_file *gi[GI_BUCKETS];
	struct gi_file *info_exclude;
	int reaching; /* --include globs with a '/': they may reach into a default-ignored dir */
};

/* Default rules: what editors, VCSs and Python leave in a tree but never is code. */
static int is_vim_probe(const char *base);
static int is_sed_temp(const char *base);

static const struct default_rule {
	const char *glob;
	int dir_only;
	int (*fn)(const char *base); /* instead of glob when set */
} defaults[] = {
	{".git", 0, NULL},	    {".hg", 0, NULL},	       {".svn", 0, NULL},
	{".bzr", 0, NULL},	    {"__pycache__", 1, NULL},  {"node_modules", 1, NULL},
	{"venv", 1, NULL},	    {".venv", 1, NULL},	       {".tox", 1, NULL},
	{".nox", 1, NULL},	    {".mypy_cache", 1, NULL},  {".pytest_cache", 1, NULL},
	{".ruff_cache", 1, NULL},   {".idea", 1, NULL},	       {"*.pyc", 0, NULL},
	{"*.pyo", 0, NULL},	    {"*.swp", 0, NULL},	       {"*.swx", 0, NULL},
	{"*.swo", 0, NULL},	    {"*~", 0, NULL},	       {".#*", 0, NULL},
	{"#*#", 0, NULL},	    {"4913", 0, is_vim_probe}, {"*___jb_tmp___", 0, NULL},
	{"*___jb_old___", 0, NULL}, {"*.tmp", 0, NULL},	       {"*.tmp[0-9]*", 0, NULL},
	{"*.temp", 0, NULL},	    {".goutputstream-*", 0, NULL}, {"*.crswap", 0, NULL},
	{"*.kate-swp", 0, NULL},    {".~lock.*#", 0, NULL},    {".DS_Store", 0, NULL},
	{"*.log", 0, NULL},	    {"*.sqlite3", 0, NULL},    {"*.sqlite3-journal", 0, NULL},
	{"sedXXXXXX", 0, is_sed_temp},
};

/* ---- glob matching ------------------------------------------------------ */

/* A [...] class at p (just after '['): where it ends, or NULL if unterminated. */
static const char *match_class(const char *p, char c, int *hit)
{
	const char *start;
	int neg = (*p == '!' || *p == '^');

	*hit = 0;
	p += neg;
	start = p;
	while (*p && (*p != ']' || p == start)) {
		char lo = *p, hi;
		if (lo == '\\' && p[1])
			lo = *++p;
		if (p[1] == '-' && p[2] && p[2] != ']') {
			hi = p[2];
			p += 3;
		} else {
			hi = lo;
			p++;
		}
		if (c >= lo && c <= hi)
			*hit = 1;
	}
	if (*p != ']')
		return NULL;
	*hit = c != '/' && (neg ? !*hit : *hit);
	return p + 1;
}

/*
 * Besides match and no match, the matchers return when trying further is
 * pointless, as git's wildmatch does (after rsync's): without these a glob
 * like "*a*a*a*a*a*a*a*a*a*a*b" takes seconds per path, since every '*'
 * would retry every split of the path among them.
 */
enum {
	GLOB_NOMATCH = 0,
	GLOB_MATCH = 1,
	GLOB_ABORT_ALL = -1,	     /* the path ran out: starting any '*' later cannot help */
	GLOB_ABORT_TO_GLOBSTAR = -2, /* a '*' met a '/': only a "**" can take more */
};

static int match_at(const char *g, const char *gstart, const char *s);

/* "**" as a whole component: any number of directories, including none. */
static int match_globstar(const char *g, const char *gstart, const char *s)
{
	if (!g[2])
		return GLOB_MATCH;
	g += 3;
	for (;;) {
		int r = match_at(g, gstart, s);
		if (r != GLOB_NOMATCH && r != GLOB_ABORT_TO_GLOBSTAR)
			return r;
		s = strchr(s, '/');
		if (!s)
			return GLOB_ABORT_ALL;
		s++;
	}
}

/* '*' stops at '/', as with fnmatch(FNM_PATHNAME). */
static int match_star(const char *g, const char *gstart, const char *s)
{
	while (*g == '*')
		g++;
	for (;; s++) {
		int r = match_at(g, gstart, s);
		if (r != GLOB_NOMATCH)
			return r;
		if (!*s)
			return GLOB_ABORT_ALL;
		if (*s == '/')
			return GLOB_ABORT_TO_GLOBSTAR;
	}
}

static int match_at(const char *g, const char *gstart, const char *s)
{
	while (*g) {
		int hit;
		const char *end;
		if (*g == '*' && g[1] == '*' && (g == gstart || g[-1] == '/') && (g[2] == '/' || !g[2]))
			return match_globstar(g, gstart, s);
		if (*g == '*')
			return match_star(g, gstart, s);
		if (!*s)
			return GLOB_ABORT_ALL;
		if (*g == '?' && *s != '/') {
			g++, s++;
			continue;
		}
		if (*g == '[' && (end = match_class(g + 1, *s, &hit))) {
			if (!hit)
				return GLOB_NOMATCH;
			g = end, s++;
			continue;
		}
		if (*g == '\\' && g[1])
			g++;
		if (*g != *s)
			return GLOB_NOMATCH;
		g++, s++;
	}
	return *s ? GLOB_NOMATCH : GLOB_MATCH;
}

int nr_glob_match(const char *glob, const char *path)
{
	return match_at(glob, glob, path) == GLOB_MATCH;
}

/* ---- small helpers ---------------------------------------------------- */

static const char *base_of(const char *rel)
{
	const char *slash = strrchr(rel, '/');

	return slash ? slash + 1 : rel;
}

/* vim probes whether it may write a directory with files 4913, 5036, ... */
static int is_vim_probe(const char *base)
{
	char *end;
	long n = strtol(base, &end, 10);

	return *base >= '0' && *base <= '9' && !*end && n >= 4913 && n < 4913 + 123 * 100 &&
	       (n - 4913) % 123 == 0;
}

/* GNU sed -i writes "sed" and 6 random letters or digits (mkostemp), then
 * renames it over the file: the file is the change, not the temp file. */
static int is_sed_temp(const char *base)
{
	if (strncmp(base, "sed", 3) || strlen(base) != 9)
		return 0;
	for (int i = 3; i < 9; i++)
		if (!((base[i] >= 'a' && base[i] <= 'z') || (base[i] >= 'A' && base[i] <= 'Z') ||
		      (base[i] >= '0' && base[i] <= '9')))
			return 0;
	return 1;
}

/* A user glob without '/' also matches the basename, like .gitignore does. */
static int user_glob_match(const char *glob, const char *rel)
{
	return nr_glob_match(glob, rel) || (!strchr(glob, '/') && nr_glob_match(glob, base_of(rel)));
}

static int has_file(const struct nr_filter *f, const char *rel, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s/%s%s%s", f->root, rel, *rel ? "/" : "", name) >=
	    (int)sizeof(path))
		return 0;
	return stat(path, &st) == 0;
}

/* ---- .gitignore ------------------------------------------------------- */

static unsigned hash_str(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % GI_BUCKETS;
}

static void gi_free(struct gi_file *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->n; i++)
		free(g->rules[i].pat);
	free(g->rules);
	free(g->dir);
	free(g->src);
	free(g);
}

/* Strip the line down to its pattern; 0 if it holds none (blank, comment). */
static int gi_parse_line(char *s, struct gi_rule *r)
{
	size_t len = strcspn(s, "\r\n");

	while (len && s[len - 1] == ' ' && !(len > 1 && s[len - 2] == '\\'))
		len--;
	s[len] = '\0';
	if (!len || s[0] == '#')
		return 0;
	r->neg = s[0] == '!';
	s += r->neg || (s[0] == '\\' && (s[1] == '!' || s[1] == '#'));
	len = strlen(s);
	r->dir_only = len && s[len - 1] == '/';
	if (r->dir_only)
		s[--len] = '\0';
	r->anchored = strchr(s, '/') != NULL;
	s += s[0] == '/';
	if (!*s)
		return 0;
	r->pat = strdup(s);
	return r->pat != NULL;
}

static int gi_add_rule(struct gi_file *g, const struct gi_rule *r)
{
	struct gi_rule *n = realloc(g->rules, (size_t)(g->n + 1) * sizeof(*n));

	if (!n)
		return -1;
	g->rules = n;
	g->rules[g->n++] = *r;
	return 0;
}

/* The rules of text, the len bytes of an ignore file, cut into lines as fgets()
 * into a 4096-byte buffer would: a longer line counts as several. Stops at the
 * first rule it has no memory for. */
static void gi_parse(struct gi_file *g, const char *text, size_t len)
{
	char line[4096];
	int lineno = 0;
	size_t off = 0;

	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) + 1 : len - off;
		struct gi_rule r = {.line = ++lineno};
		if (n > sizeof(line) - 1)
			n = sizeof(line) - 1;
		memcpy(line, text + off, n);
		line[n] = '\0';
		off += n;
		if (gi_parse_line(line, &r) && gi_add_rule(g, &r)) {
			free(r.pat);
			return;
		}
	}
}

/* An ignore file of directory dir without rules yet; NULL when out of memory. */
static struct gi_file *gi_new(const char *dir, const char *name)
{
	struct gi_file *g = calloc(1, sizeof(*g));

	if (!g || !(g->dir = strdup(dir)) || asprintf(&g->src, "%s%s%s", dir, *dir ? "/" : "", name) < 0)
		goto fail;
	return g;
fail:
	if (g)
		g->src = NULL;
	gi_free(g);
	return NULL;
}

/* All of fp in a malloc'd buffer (what could be read of it); NULL when out of memory. */
static char *read_all(FILE *fp, size_t *len)
{
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap);

	while (buf && (got = fread(buf + n, 1, cap - n, fp)) > 0) {
		n += got;
		if (n == cap) {
			char *more = realloc(buf, 2 * cap);
			if (!more)
				break;
			buf = more;
			cap *= 2;
		}
	}
	*len = n;
	return buf;
}

/* Read one ignore file; a missing file gives an empty rule list. */
static struct gi_file *gi_load(const struct nr_filter *f, const char *dir, const char *name)
{
	struct gi_file *g = gi_new(dir, name);
	char path[PATH_MAX], *text;
	size_t len;
	FILE *fp;

	if (!g)
		return NULL;
	snprintf(path, sizeof(path), "%s/%s", f->root, g->src);
	if (!(fp = fopen(path, "r")))
		return g;
	if ((text = read_all(fp, &len)))
		gi_parse(g, text, len);
	free(text);
	fclose(fp);
	return g;
}

static void gi_put(struct nr_filter *f, struct gi_file *g)
{
	unsigned h = hash_str(g->dir);

	g->next = f->gi[h];
	f->gi[h] = g;
}

static struct gi_file *gi_get(struct nr_filter *f, const char *dir)
{
	struct gi_file *g;

	for (g = f->gi[hash_str(dir)]; g; g = g->next)
		if (!strcmp(g->dir, dir))
			return g;
	if ((g = gi_load(f, dir, ".gitignore")))
		gi_put(f, g);
	return g;
}

int nr_filter_set_ignore(struct nr_filter *f, const char *rel, const char *text, size_t len)
{
	const char *base = base_of(rel);
	char dir[PATH_MAX];
	struct gi_file *g;

	if (!strcmp(rel, ".git/info/exclude")) {
		if (!(g = gi_new(".git/info", "exclude")))
			return -1;
		gi_parse(g, text, len);
		gi_free(f->info_exclude);
		f->info_exclude = g;
		return 0;
	}
	if (strcmp(base, ".gitignore") || base - rel >= (ptrdiff_t)sizeof(dir))
		return -1;
	snprintf(dir, sizeof(dir), "%.*s", base == rel ? 0 : (int)(base - rel - 1), rel);
	if (!(g = gi_new(dir, ".gitignore")))
		return -1;
	gi_parse(g, text, len);
	nr_filter_forget(f, rel);
	gi_put(f, g);
	return 0;
}

/* The last rule of g matching sub (relative to g's directory), or NULL. */
static const struct gi_rule *gi_match(const struct gi_file *g, const char *sub, int is_dir)
{
	for (int i = g->n - 1; i >= 0; i--) {
		const struct gi_rule *r = &g->rules[i];
		if (r->dir_only && !is_dir)
			continue;
		if (nr_glob_match(r->pat, r->anchored ? sub : base_of(sub)))
			return r;
	}
	return NULL;
}

static void gi_why(const struct gi_file *g, const struct gi_rule *r, char *why, size_t len)
{
	snprintf(why, len, "'%s%s%s%s' in %s:%d", r->neg ? "!" : "", r->anchored && !strchr(r->pat, '/') ? "/" : "",
		 r->pat, r->dir_only ? "/" : "", g->src, r->line);
}

/* -1 ignored, 1 re-included by a '!' rule, 0 no rule matched. */
static int gi_decide(struct nr_filter *f, const char *rel, int is_dir, char *why, size_t len)
{
	char dir[PATH_MAX];
	const struct gi_rule *r = NULL;
	const struct gi_file *g = NULL;

	snprintf(dir, sizeof(dir), "%s", rel);
	for (;;) {
		char *cut = strrchr(dir, '/');
		*(cut ? cut : dir) = '\0';
		g = gi_get(f, dir);
		if (g && (r = gi_match(g, dir[0] ? rel + strlen(dir) + 1 : rel, is_dir)))
			break;
		if (!dir[0])
			break;
	}
	if (!r && (g = f->info_exclude))
		r = gi_match(g, rel, is_dir);
	if (!r)
		return 0;
	gi_why(g, r, why, len);
	return r->neg ? 1 : -1;
}

/* ---- the rules -------------------------------------------------------- */

/* Not in the table: found by looking inside the directory, so any --include
 * that leads into it names it (virtualenvs have any name). */
static const struct default_rule venv_rule = {"virtualenv (has pyvenv.cfg)", 1, NULL};

/* The default rule that ignores rel, or NULL. */
static const struct default_rule *default_rule_of(const struct nr_filter *f, const char *rel,
						  int is_dir)
{
	const char *base = base_of(rel);

	if (f->o.no_defaults)
		return NULL;
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		const struct default_rule *d = &defaults[i];
		if (d->dir_only && !is_dir)
			continue;
		if (d->fn ? d->fn(base) : nr_glob_match(d->glob, base))
			return d;
	}
	if (is_dir && has_file(f, rel, "pyvenv.cfg"))
		return &venv_rule;
	return NULL;
}

static void default_why(const struct default_rule *d, char *why, size_t len)
{
	snprintf(why, len, "default rule '%s%s'", d->glob, d->dir_only && d != &venv_rule ? "/" : "");
}

/* 1 if a component of an --include glob is itself what rule d ignores: the
 * glob "*.log" names "*.log", "node_modules/lib/a.js" names "node_modules",
 * but "*.py" does not name emacs's ".#*", so it never brings back ".#x.py". */
static int glob_names(const char *glob, const struct default_rule *d)
{
	char g[PATH_MAX], *save = NULL;

	if (d == &venv_rule)
		return 1;
	if (snprintf(g, sizeof(g), "%s", glob) >= (int)sizeof(g))
		return 0;
	for (char *c = strtok_r(g, "/", &save); c; c = strtok_r(NULL, "/", &save))
		if (d->fn ? d->fn(c) : nr_glob_match(d->glob, c))
			return 1;
	return 0;
}

static int exclude_match(const struct nr_filter *f, const char *rel, char *why, size_t len)
{
	for (int i = 0; i < f->o.nexcludes; i++) {
		if (user_glob_match(f->o.excludes[i], rel)) {
			snprintf(why, len, "--exclude '%s'", f->o.excludes[i]);
			return 1;
		}
	}
	return 0;
}

static int include_match(const struct nr_filter *f, const char *rel, char *why, size_t len)
{
	for (int i = 0; i < f->o.nincludes; i++) {
		if (user_glob_match(f->o.includes[i], rel)) {
			snprintf(why, len, "--include '%s'", f->o.includes[i]);
			return 1;
		}
	}
	return 0;
}

static int ext_match(const struct nr_filter *f, const char *rel)
{
	const char *base = base_of(rel), *dot = strrchr(base, '.');

	for (int i = 0; dot && dot != base && i < f->nexts; i++)
		if (!strcasecmp(dot + 1, f->exts[i]))
			return 1;
	return 0;
}

/* 1 if glob (one with a '/') could match a path strictly below directory dir:
 * each of dir's components matches the glob's component there, or a "**"
 * comes first. */
static int glob_reaches_below(const char *glob, const char *dir)
{
	char g[PATH_MAX], d[PATH_MAX];
	char *gs = NULL, *ds = NULL, *gc, *dc;

	if (snprintf(g, sizeof(g), "%s", glob) >= (int)sizeof(g) ||
	    snprintf(d, sizeof(d), "%s", dir) >= (int)sizeof(d))
		return 0;
	gc = strtok_r(g, "/", &gs);
	for (dc = strtok_r(d, "/", &ds); dc; dc = strtok_r(NULL, "/", &ds)) {
		if (!gc)
			return 0;
		if (!strcmp(gc, "**"))
			return 1;
		if (!nr_glob_match(gc, dc))
			return 0;
		gc = strtok_r(NULL, "/", &gs);
	}
	return gc != NULL;
}

/* The --include that re-admits rel, which default rule d ignores: it names
 * what d ignores and matches rel or, for a directory, may match below it. */
static const char *include_over(const struct nr_filter *f, const char *rel, int is_dir,
				const struct default_rule *d)
{
	for (int i = 0; i < f->o.nincludes; i++) {
		const char *g = f->o.includes[i];
		if ((user_glob_match(g, rel) || (is_dir && strchr(g, '/') && glob_reaches_below(g, rel))) &&
		    glob_names(g, d))
			return g;
	}
	return NULL;
}

/* Directory rel is ignored by a default rule that no --include overrides, or
 * (when some --include may lead into one) lies inside a default-ignored
 * directory where no --include leads: a re-admitted node_modules is walked
 * only where an --include goes. */
static int default_dir(const struct nr_filter *f, const char *rel, char *why, size_t len)
{
	const struct default_rule *d = default_rule_of(f, rel, 1);
	char buf[PATH_MAX];

	if (d) {
		default_why(d, why, len);
		return !include_over(f, rel, 1, d);
	}
	if (!f->reaching || snprintf(buf, sizeof(buf), "%s", rel) >= (int)sizeof(buf))
		return 0;
	for (char *slash = strchr(buf, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if ((d = default_rule_of(f, buf, 1))) {
			for (int i = 0; i < f->o.nincludes; i++)
				if (strchr(f->o.includes[i], '/') &&
				    (nr_glob_match(f->o.includes[i], rel) ||
				     glob_reaches_below(f->o.includes[i], rel)))
					return 0;
			default_why(d, why, len);
			snprintf(why + strlen(why), len - strlen(why), " (no --include leads in)");
			return 1;
		}
		*slash = '/';
	}
	return 0;
}

/* A directory on the way to a path: ignored means nothing below reloads. */
static int dir_ignored(struct nr_filter *f, const char *rel, char *why, size_t len)
{
	return exclude_match(f, rel, why, len) || default_dir(f, rel, why, len) ||
	       (f->o.gitignore && gi_decide(f, rel, 1, why, len) < 0);
}

int nr_filter_prune(struct nr_filter *f, const char *rel)
{
	char why[PATH_MAX];

	return dir_ignored(f, rel, why, sizeof(why));
}

/* The path itself, its parents being fine: rules 2 to 6 of the header. */
static int decide_entry(struct nr_filter *f, const char *rel, int is_dir, char *why, size_t len)
{
	int gi = 0;

	const struct default_rule *d;
	const char *inc;

	if (exclude_match(f, rel, why, len))
		return 0;
	if ((d = default_rule_of(f, rel, is_dir))) {
		if (!(inc = include_over(f, rel, is_dir, d))) {
			default_why(d, why, len);
			return 0;
		}
		snprintf(why, len, "--include '%s', over the default rule", inc);
		return 1;
	}
	if (include_match(f, rel, why, len))
		return 1;
	if (f->o.gitignore && (gi = gi_decide(f, rel, is_dir, why, len)) < 0)
		return 0;
	if (is_dir) {
		if (!gi)
			snprintf(why, len, "no rule ignores it");
		return 1;
	}
	if (f->nexts && ext_match(f, rel)) {
		snprintf(why, len, "--ext %s", f->o.exts);
		return 1;
	}
	if (f->nexts || f->o.nincludes) {
		snprintf(why, len, "not selected by %s", f->nexts ? "--ext" : "any --include");
		return 0;
	}
	if (!gi)
		snprintf(why, len, "no rule ignores it");
	return 1;
}

int nr_filter_check(struct nr_filter *f, const char *rel, int is_dir, char *why, size_t whylen)
{
	char buf[PATH_MAX], tmp[PATH_MAX];
	char *slash;

	if (!why) {
		why = tmp;
		whylen = sizeof(tmp);
	}
	why[0] = '\0';
	snprintf(buf, sizeof(buf), "%s", rel);
	for (slash = strchr(buf, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (dir_ignored(f, buf, tmp, sizeof(tmp))) {
			snprintf(why, whylen, "%s on parent '%s/'", tmp, buf);
			return 0;
		}
		*slash = '/';
	}
	return decide_entry(f, rel, is_dir, why, whylen);
}

void nr_filter_forget(struct nr_filter *f, const char *rel)
{
	char dir[PATH_MAX];
	char *slash;
	struct gi_file **pp;

	snprintf(dir, sizeof(dir), "%s", rel);
	slash = strrchr(dir, '/');
	*(slash ? slash : dir) = '\0';
	for (pp = &f->gi[hash_str(dir)]; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->dir, dir)) {
			struct gi_file *g = *pp;
			*pp = g->next;
			gi_free(g);
			return;
		}
	}
}

/* ---- life cycle ------------------------------------------------------- */

int nr_filter_check_exts(const char *exts, char *err, size_t errlen)
{
	const char *p = exts;
	int n = 0;

	for (;;) {
		size_t len = strcspn(p, ",");
		size_t skip = *p == '.';
		if (len == skip) {
			snprintf(err, errlen, "--ext '%.200s': an empty extension (give names like py,html)",
				 exts);
			return -1;
		}
		if (strcspn(p + skip, "/*?[\\") < len - skip) {
			snprintf(err, errlen, "--ext '%.200s': bad extension '%.*s' (give names like py,html)",
				 exts, (int)(len > 100 ? 100 : len), p);
			return -1;
		}
		if (++n > MAX_EXTS) {
			snprintf(err, errlen, "--ext '%.200s...': more than %d extensions", exts, MAX_EXTS);
			return -1;
		}
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

static int split_exts(struct nr_filter *f)
{
	char *save = NULL;

	if (!f->o.exts)
		return 0;
	if (!(f->ext_buf = strdup(f->o.exts)))
		return -1;
	for (char *t = strtok_r(f->ext_buf, ",", &save); t && f->nexts < MAX_EXTS;
	     t = strtok_r(NULL, ",", &save))
		f->exts[f->nexts++] = t + (*t == '.');
	return 0;
}

struct nr_filter *nr_filter_new(const char *root, const struct nr_filter_opts *o)
{
	struct nr_filter *f = calloc(1, sizeof(*f));

	if (!f || !(f->root = strdup(root)))
		goto fail;
	f->o = *o;
	for (int i = 0; i < o->nincludes; i++)
		f->reaching += strchr(o->includes[i], '/') != NULL;
	if (split_exts(f))
		goto fail;
	if (o->gitignore && !(f->info_exclude = gi_load(f, ".git/info", "exclude")))
		goto fail;
	return f;
fail:
	nr_filter_free(f);
	return NULL;
}

void nr_filter_free(struct nr_filter *f)
{
	if (!f)
		return;
	for (int i = 0; i < GI_BUCKETS; i++) {
		while (f->gi[i]) {
			struct gi_file *g = f->gi[i];
			f->gi[i] = g->next;
			gi_free(g);
		}
	}
	gi_free(f->info_exclude);
	free(f->ext_buf);
	free(f->root);
	free(f);
}
