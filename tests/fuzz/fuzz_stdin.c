/*
 * fuzz_stdin.c - libFuzzer target for `netreload watch --stdin`: the lines of
 * paths another watcher (fswatch, watchman-wait) writes into our stdin.
 *
 * The input is what arrives on stdin, fed to nr_watch_stdin_feed as read()
 * would hand it over. The root is the current directory, named as "." or
 * through a symlink, or "/"; paths are stat()ed and resolved for real, so
 * relative lines reach real files and directories. Besides crashes and
 * sanitizer reports it checks two properties:
 *   - how the bytes are cut into reads does not change what is reported;
 *   - a path is reported absolute, or relative without leaving the root.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../client/backend.h"

static char cwd[PATH_MAX], link_dir[PATH_MAX], link_path[PATH_MAX];

/* What the callback saw: how many paths, and a hash of them in order. */
struct seen {
	unsigned n;
	uint32_t h;
};

static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* Relative paths must stay below the root, spelled component by component. */
static void check_rel(const char *rel)
{
	int depth = 0;

	for (const char *p = rel; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && !memcmp(p, "..", 2))
			depth--;
		else if (n && !(n == 1 && *p == '.'))
			depth++;
		if (depth < 0)
			abort();
		p += n + (p[n] == '/');
	}
}

static void on_path(void *ctx, struct nr_watch *w, const char *rel, int is_dir)
{
	struct seen *s = ctx;

	(void)w;
	if (!*rel || is_dir || strpbrk(rel, "\r\n"))
		abort();
	if (rel[0] != '/')
		check_rel(rel);
	s->n++;
	s->h = fnv(s->h, rel, strlen(rel) + 1);
}

/* Feed data in reads of at most chunk bytes (0: all at once), then the end. */
static struct seen run(struct nr_watch *w, const char *data, size_t size, size_t chunk)
{
	struct seen s = {0, 2166136261u};

	if (nr_watch_stdin.open(w))
		abort();
	for (size_t off = 0; off < size;) {
		size_t n = chunk && size - off > chunk ? chunk : size - off;
		nr_watch_stdin_feed(w, data + off, n, on_path, &s);
		off += n;
	}
	nr_watch_stdin_feed(w, data, 0, on_path, &s);
	nr_watch_stdin.close(w);
	return s;
}

/* The root named through a symlink needs one, at a path that stays the same
 * for this directory so that the corpus can keep inputs that spell it. It is
 * left in place: another run from here may be using it. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (fcntl(STDIN_FILENO, F_GETFL) < 0 && open("/dev/null", O_RDONLY) != STDIN_FILENO)
		abort();
	if (!realpath(".", cwd))
		abort();
	snprintf(link_dir, sizeof(link_dir), "/tmp/nr-fuzz-stdin-%08x",
		 fnv(2166136261u, cwd, strlen(cwd)));
	snprintf(link_path, sizeof(link_path), "%s/root", link_dir);
	mkdir(link_dir, 0700);
	if (symlink(cwd, link_path) && errno != EEXIST)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *dirs[] = {".", link_path, "/"};
	uint32_t h = fnv(2166136261u, (const char *)data, size);
	struct nr_watch w = {.fd = -1};
	int which = (int)(h % 3);
	struct seen whole, cut;

	snprintf(w.root, sizeof(w.root), "%s", which == 2 ? "/" : cwd);
	w.dir = dirs[which];
	whole = run(&w, (const char *)data, size, 0);
	cut = run(&w, (const char *)data, size, 1 + (h >> 2) % (2 * PATH_MAX));
	if (whole.n != cut.n || whole.h != cut.h)
		abort();
	return 0;
}
