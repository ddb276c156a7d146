/*
 * test_filter.c - unit tests for the watch filter: glob matching ("**",
 * classes, FNM_PATHNAME), the default ignores, --ext/--include/--exclude and
 * nested .gitignore files in a temp tree. Ends with "N passed, N failed".
 *
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "../../client/filter.h"


static void test_glob(void)
{
	CHECK(nr_glob_match("*.py", "views.py"));
	CHECK(!nr_glob_match("*.py", "app/views.py"));
	CHECK(nr_glob_match("app/*.py", "app/views.py"));
	CHECK(!nr_glob_match("app/*.py", "app/sub/views.py"));
	CHECK(nr_glob_match("**/views.py", "views.py"));
	CHECK(nr_glob_match("**/views.py", "a/b/views.py"));
	CHECK(nr_glob_match("a/**/b", "a/b"));
	CHECK(nr_glob_match("a/**/b", "a/x/y/b"));
	CHECK(!nr_glob_match("a/**/b", "a/x/y/c"));
	CHECK(nr_glob_match("a/**", "a/x/y"));
	CHECK(!nr_glob_match("a/**", "a"));
	CHECK(nr_glob_match("?.py", "x.py"));
	CHECK(!nr_glob_match("?", "/"));
	CHECK(nr_glob_match("[abc].py", "b.py"));
	CHECK(!nr_glob_match("[!abc].py", "b.py"));
	CHECK(nr_glob_match("[a-c]x", "bx"));
	CHECK(nr_glob_match("\\*x", "*x"));
	CHECK(!nr_glob_match("\\*x", "ax"));
	CHECK(nr_glob_match("*.tmp[0-9]*", ".app.py.tmp1234"));
	CHECK(!nr_glob_match("*.tmp[0-9]*", "page.tmpl"));
	CHECK(nr_glob_match("#*#", "#x.py#"));
	CHECK(nr_glob_match("[", "["));
}

/* Many '*' or "**" against a long path once took minutes per path (every split of
 * the path among them was tried); alarm() makes a relapse fail rather than hang. */
static void test_glob_backtracking(void)
{
	char stars[64] = "", globstars[64] = "", name[64], deep[128] = "";

	for (int i = 0; i < 12; i++) {
		strcat(stars, "*a");
		strcat(globstars, "**/");
	}
	strcat(stars, "*b");
	strcat(globstars, "b");
	memset(name, 'a', 60);
	name[60] = '\0';
	for (int i = 0; i < 40; i++)
		strcat(deep, "a/");
	strcat(deep, "c");
	alarm(10);
	CHECK(!nr_glob_match(stars, name));
	CHECK(!nr_glob_match(globstars, deep));
	name[59] = 'b';
	deep[80] = 'b';
	CHECK(nr_glob_match(stars, name));
	CHECK(nr_glob_match(globstars, deep));
	CHECK(!nr_glob_match("*a*/x", "aaaa/aaaa/x"));
	CHECK(nr_glob_match("**/*a*/x", "aaaa/aaaa/x"));
	alarm(0);
}

static int check(struct nr_filter *f, const char *rel, int is_dir, const char *want_why)
{
	char why[512];
	int r = nr_filter_check(f, rel, is_dir, why, sizeof(why));

	if (want_why && !strstr(why, want_why)) {
		fprintf(stderr, "  %s: why is \"%s\", expected \"%s\"\n", rel, why, want_why);
		return -1;
	}
	return r;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp) {
		fputs(text, fp);
		fclose(fp);
	}
}

static void test_defaults(const char *root)
{
	struct nr_filter_opts o = {.gitignore = 1};
	struct nr_filter *f = nr_filter_new(root, &o);

	CHECK(check(f, "views.py", 0, "no rule ignores it") == 1);
	CHECK(check(f, "views/x.pyc", 0, "default rule '*.pyc'") == 0);
	CHECK(check(f, "__pycache__/x.cpython-311.pyc", 0, "'__pycache__/'") == 0);
	CHECK(check(f, ".git/index", 0, "'.git'") == 0);
	CHECK(check(f, "node_modules/a/b.js", 0, NULL) == 0);
	CHECK(check(f, ".views.py.swp", 0, NULL) == 0);
	CHECK(check(f, ".views.py.swx", 0, NULL) == 0);
	CHECK(check(f, "views.py~", 0, NULL) == 0);
	CHECK(check(f, "4913", 0, NULL) == 0);
	CHECK(check(f, "5036", 0, NULL) == 0);
	CHECK(check(f, "4914", 0, NULL) == 1);
	CHECK(check(f, "pkg/sedAb12Cd", 0, "default rule 'sedXXXXXX'") == 0); /* sed -i */
	CHECK(check(f, "sediment.py", 0, NULL) == 1);
	CHECK(check(f, "sedAb12C", 0, NULL) == 1);
	CHECK(check(f, "sedAb12C.d", 0, NULL) == 1);
	CHECK(check(f, ".#views.py", 0, NULL) == 0);
	CHECK(check(f, "#views.py#", 0, NULL) == 0);
	CHECK(check(f, "views.py___jb_tmp___", 0, NULL) == 0);
	CHECK(check(f, "views.py___jb_old___", 0, NULL) == 0);
	CHECK(check(f, "env/lib/x.py", 0, "pyvenv.cfg") == 0);
	CHECK(check(f, "venv/lib/x.py", 0, NULL) == 0);
	CHECK(check(f, "envy/x.py", 0, NULL) == 1);
	CHECK(check(f, ".tox", 1, NULL) == 0);
	CHECK(nr_filter_prune(f, "node_modules"));
	CHECK(nr_filter_prune(f, "env"));
	CHECK(!nr_filter_prune(f, "app"));
	nr_filter_free(f);
}

static void test_gitignore(const char *root)
{
	struct nr_filter_opts o = {.gitignore = 1};
	struct nr_filter *f = nr_filter_new(root, &o);

	CHECK(check(f, "build/x.py", 0, "'build/' in .gitignore:2") == 0);
	CHECK(check(f, "build", 0, NULL) == 1); /* a file named build: dir-only rule */
	CHECK(check(f, "secret.cfg", 0, "'*.cfg' in .gitignore:3") == 0);
	CHECK(check(f, "keep.cfg", 0, "'!keep.cfg' in .gitignore:4") == 1);
	CHECK(check(f, "top.txt", 0, "'/top.txt'") == 0);
	CHECK(check(f, "sub/top.txt", 0, NULL) == 1);
	CHECK(check(f, "sub/local.py", 0, "'local.py' in sub/.gitignore:1") == 0);
	CHECK(check(f, "local.py", 0, NULL) == 1);
	CHECK(check(f, "sub/x.cfg", 0, "'!*.cfg' in sub/.gitignore:2") == 1);
	CHECK(check(f, "deep/a/b/gen.py", 0, "'deep/**/gen.py'") == 0);
	CHECK(check(f, "deep/gen.py", 0, NULL) == 0);
	CHECK(check(f, "# not a comment", 0, "# not*") == 0); /* escaped #: a pattern */
	nr_filter_free(f);

	o.gitignore = 0;
	f = nr_filter_new(root, &o);
	CHECK(check(f, "build/x.py", 0, NULL) == 1);
	nr_filter_free(f);
}

static void test_forget(const char *root)
{
	struct nr_filter_opts o = {.gitignore = 1};
	struct nr_filter *f = nr_filter_new(root, &o);
	char path[512];

	CHECK(check(f, "sub/later.py", 0, NULL) == 1);
	snprintf(path, sizeof(path), "%s/sub/.gitignore", root);
	write_file(path, "local.py\n!*.cfg\nlater.py\n");
	CHECK(check(f, "sub/later.py", 0, NULL) == 1); /* cached */
	nr_filter_forget(f, "sub/.gitignore");
	CHECK(check(f, "sub/later.py", 0, "sub/.gitignore:3") == 0);
	nr_filter_free(f);
}

static void test_options(const char *root)
{
	struct nr_filter_opts o = {.gitignore = 1, .exts = "py,.html"};
	struct nr_filter *f = nr_filter_new(root, &o);

	CHECK(check(f, "views.py", 0, "--ext") == 1);
	CHECK(check(f, "t/index.html", 0, NULL) == 1);
	CHECK(check(f, "README.md", 0, "not selected by --ext") == 0);
	CHECK(check(f, "Makefile", 0, NULL) == 0);
	CHECK(check(f, "sub", 1, NULL) == 1);
	nr_filter_free(f);

	o = (struct nr_filter_opts){.gitignore = 1};
	o.includes[o.nincludes++] = "templates/*";
	o.includes[o.nincludes++] = "*.cfg";
	o.excludes[o.nexcludes++] = "migrations";
	o.excludes[o.nexcludes++] = "t/*.html";
	f = nr_filter_new(root, &o);
	CHECK(check(f, "templates/a.txt", 0, "--include 'templates/*'") == 1);
	CHECK(check(f, "templates/sub/a.txt", 0, NULL) == 0);
	CHECK(check(f, "secret.cfg", 0, "--include '*.cfg'") == 1); /* beats .gitignore */
	CHECK(check(f, "views.py", 0, "not selected by any --include") == 0);
	CHECK(check(f, "app/migrations/0001.cfg", 0, "--exclude 'migrations'") == 0);
	CHECK(check(f, "t/x.html", 0, "--exclude 't/*.html'") == 0);
	CHECK(check(f, "templates/x.swp", 0, "default rule") == 0);
	nr_filter_free(f);
}

/* --ext in any case and validated; --no-default-ignore; an --include that
 * names a default-ignored pattern, or leads into a default-ignored directory,
 * re-admits it, and only there. */
static void test_defaults_overridden(const char *root)
{
	struct nr_filter_opts o = {.gitignore = 1, .exts = "PY,.Html"};
	struct nr_filter *f = nr_filter_new(root, &o);
	char err[300];

	CHECK(check(f, "views.py", 0, "--ext") == 1);
	CHECK(check(f, "INDEX.HTML", 0, NULL) == 1);
	CHECK(check(f, "x.pyc", 0, "default rule") == 0);
	nr_filter_free(f);
	CHECK(nr_filter_check_exts("py,.html", err, sizeof(err)) == 0);
	CHECK(nr_filter_check_exts("", err, sizeof(err)) == -1 && strstr(err, "empty"));
	CHECK(nr_filter_check_exts("py,", err, sizeof(err)) == -1);
	CHECK(nr_filter_check_exts(".", err, sizeof(err)) == -1);
	CHECK(nr_filter_check_exts("*.py", err, sizeof(err)) == -1 && strstr(err, "'*.py'"));

	o = (struct nr_filter_opts){.gitignore = 1, .no_defaults = 1};
	f = nr_filter_new(root, &o);
	CHECK(check(f, "node_modules/a/b.js", 0, "no rule ignores it") == 1);
	CHECK(check(f, "x.log", 0, NULL) == 1);
	CHECK(check(f, "build/x.py", 0, "'build/' in .gitignore:2") == 0);
	CHECK(!nr_filter_prune(f, "node_modules"));
	nr_filter_free(f);

	o = (struct nr_filter_opts){.gitignore = 1};
	o.includes[o.nincludes++] = "node_modules/mylib/*.js";
	o.includes[o.nincludes++] = "*.log";
	o.includes[o.nincludes++] = "*.py";
	f = nr_filter_new(root, &o);
	CHECK(check(f, "node_modules/mylib/a.js", 0, "--include 'node_modules/mylib/*.js'") == 1);
	CHECK(check(f, "node_modules/other/a.js", 0, "no --include leads in") == 0);
	CHECK(check(f, "node_modules/mylib/sub/a.js", 0, NULL) == 0);
	CHECK(!nr_filter_prune(f, "node_modules"));
	CHECK(!nr_filter_prune(f, "node_modules/mylib"));
	CHECK(nr_filter_prune(f, "node_modules/other"));
	CHECK(nr_filter_prune(f, "node_modules/mylib/sub"));
	CHECK(check(f, "logs/app.log", 0, "over the default rule") == 1);
	CHECK(check(f, ".#views.py", 0, "default rule '.#*'") == 0);
	CHECK(check(f, "views.py~", 0, "default rule") == 0);
	CHECK(check(f, "x.pyc", 0, "default rule '*.pyc'") == 0);
	CHECK(check(f, "env/x.py", 0, "pyvenv.cfg") == 0);
	nr_filter_free(f);
}

/* Text given to nr_filter_set_ignore is parsed as the file would be, lines of 4096
 * bytes and more included, and stands in for the file until forgotten. */
static void test_set_ignore(const char *root)
{
	struct nr_filter_opts o = {.gitignore = 1};
	struct nr_filter *f = nr_filter_new(root, &o);
	char text[6000], why[512];

	memset(text, 'x', 5000);
	strcpy(text + 5000, "\r\n*.md\n");
	CHECK(nr_filter_set_ignore(f, ".gitignore", text, strlen(text)) == 0);
	CHECK(check(f, "README.md", 0, "'*.md' in .gitignore:3") == 0);
	CHECK(check(f, "build/x.py", 0, NULL) == 1); /* replaces the file on disk */
	CHECK(nr_filter_set_ignore(f, "sub/.gitignore", "*.py\0\n!b.py", 11) == 0);
	CHECK(check(f, "sub/a.py", 0, "'*.py' in sub/.gitignore:1") == 0);
	CHECK(check(f, "sub/b.py", 0, "'!b.py' in sub/.gitignore:2") == 1);
	CHECK(nr_filter_set_ignore(f, ".git/info/exclude", "/local\n", 7) == 0);
	CHECK(check(f, "local", 0, "'/local' in .git/info/exclude:1") == 0);
	CHECK(nr_filter_set_ignore(f, "sub/ignore", "*", 1) == -1);
	CHECK(nr_filter_set_ignore(f, "x.gitignore", "*", 1) == -1);
	nr_filter_forget(f, "sub/.gitignore");
	CHECK(check(f, "sub/a.py", 0, NULL) == 1); /* read from disk again */
	CHECK(nr_filter_check(f, "sub/local.py", 0, why, sizeof(why)) == 0);
	nr_filter_free(f);
}

int main(void)
{
	char root[] = "/tmp/nr-test-filter-XXXXXX", path[512], cmd[600];

	test_glob();
	test_glob_backtracking();
	if (!mkdtemp(root))
		return 2;
	snprintf(path, sizeof(path), "%s/env", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/env/pyvenv.cfg", root);
	write_file(path, "home = /usr\n");
	snprintf(path, sizeof(path), "%s/.gitignore", root);
	write_file(path, "# comment\nbuild/\n*.cfg\n!keep.cfg\n/top.txt\ndeep/**/gen.py\n\\# not*\n");
	snprintf(path, sizeof(path), "%s/sub", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/sub/.gitignore", root);
	write_file(path, "local.py\n!*.cfg\n");
	test_defaults(root);
	test_gitignore(root);
	test_forget(root);
	test_options(root);
	test_defaults_overridden(root);
	test_set_ignore(root);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", root);
	return check_summary();
}
