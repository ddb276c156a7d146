/*
 * filter.h - which changed paths should reload: default ignores, --ext,
 * --include/--exclude and the tree's .gitignore files.
 *
 * Paths are relative to the watched root, '/'-separated, without "./".
 * One nr_filter per root; it caches the .gitignore files it has read.
 */
#ifndef NR_FILTER_H
#define NR_FILTER_H

#include <stddef.h>

#define NR_FILTER_MAX_GLOBS 64

struct nr_filter_opts {
	const char *exts;		       /* "py,html" or NULL: every extension */
	const char *includes[NR_FILTER_MAX_GLOBS]; /* allow-list, beats .gitignore */
	int nincludes;
	const char *excludes[NR_FILTER_MAX_GLOBS]; /* never reload, beats everything */
	int nexcludes;
	int gitignore;	/* 1: honour .gitignore files and .git/info/exclude */
	int no_defaults; /* 1: no default rules (VCS dirs, caches, editor noise) */
};

struct nr_filter;

/* 0 if exts is a valid --ext list ("py,html", ".py", at most 64 names), or -1
 * with err saying what is wrong (empty, an empty name, a '/' or a glob). */
int nr_filter_check_exts(const char *exts, char *err, size_t errlen);

/* A filter for the tree at root (an existing directory); NULL when out of memory. */
struct nr_filter *nr_filter_new(const char *root, const struct nr_filter_opts *o);
void nr_filter_free(struct nr_filter *f);

/*
 * 1 if a change of rel should reload, 0 if not. Checks rel's parent
 * directories too. why (may be NULL) gets the rule that decided, e.g.
 * "default rule '*.pyc'" or "'build/' in .gitignore:3".
 */
int nr_filter_check(struct nr_filter *f, const char *rel, int is_dir, char *why, size_t whylen);

/* 1 if a walk should not descend into directory rel; its parents must be fine. */
int nr_filter_prune(struct nr_filter *f, const char *rel);

/* rel's .gitignore changed: read it again next time it matters. */
void nr_filter_forget(struct nr_filter *f, const char *rel);

/* Take text, len bytes, as the ignore file rel (".gitignore", "DIR/.gitignore" or
 * ".git/info/exclude") in place of the file on disk, parsed as a read file is,
 * until nr_filter_forget(rel). For fuzz_filter and tests: 0, or -1 if rel names
 * no ignore file or memory ran out. */
int nr_filter_set_ignore(struct nr_filter *f, const char *rel, const char *text, size_t len);

/* Shell glob with FNM_PATHNAME semantics plus gitignore's "**"; 1 on match. */
int nr_glob_match(const char *glob, const char *path);

#endif
