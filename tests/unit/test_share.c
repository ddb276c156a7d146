/*
 * test_share.c - the share check (plugin/share.c) on a local directory:
 * what matches, what stays stale until the timeout, which .pyc files go,
 * the early answer for a wrong root, and the thread hand-off.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../plugin/share.h"
#include "check.h"

static char root[] = "/tmp/nr-share-XXXXXX";

static void put(const char *rel, const char *text)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		perror(path);
	close(fd);
}

static int exists(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	return access(path, F_OK) == 0;
}

/* What the client would send for rel as it is now. */
static struct nr_file describe(const char *rel)
{
	struct nr_file f;
	struct stat st;
	char path[512];
	uint64_t n;
	int fd;

	memset(&f, 0, sizeof(f));
	snprintf(f.path, sizeof(f.path), "%s", rel);
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (stat(path, &st)) {
		f.gone = 1;
		return f;
	}
	f.size = (uint64_t)st.st_size;
	f.mtime_sec = st.st_mtim.tv_sec;
	f.mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	fd = open(path, O_RDONLY);
	f.has_hash = nr_hash_fd(fd, NR_HASH_MAX, f.hash, &n) == 0;
	close(fd);
	return f;
}

static void test_job_add(void)
{
	struct nr_share_job job = {0};
	struct nr_file f[NR_SHARE_FILES + 3];

	memset(f, 0, sizeof(f));
	for (int i = 0; i < NR_SHARE_FILES + 3; i++)
		snprintf(f[i].path, sizeof(f[i].path), "f%d.py", i);
	nr_share_job_add(&job, f, 2, 0);
	f[0].size = 7;
	nr_share_job_add(&job, f, 1, 1); /* the same path again: the newer wins */
	CHECK(job.n == 2 && job.files[0].size == 7 && job.more == 1);
	nr_share_job_add(&job, f, NR_SHARE_FILES + 3, 0);
	CHECK(job.n == NR_SHARE_FILES && job.more == 1 + 3);
}

static void test_seen_and_pyc(void)
{
	struct nr_share_job job = {0};
	struct nr_share_result res;

	put("views.py", "x = 2\n");
	put("__pycache__/views.cpython-311.pyc", "old bytecode");
	put("__pycache__/views.cpython-311.opt-1.pyc", "old bytecode");
	put("__pycache__/viewsx.cpython-311.pyc", "another module");
	job.files[job.n++] = describe("views.py");
	job.files[job.n++] = describe("deleted.py");
	nr_share_check(root, &job, 2000, &res);
	CHECK(res.verdict == NR_SHARE_SEEN && res.stale == 0);
	CHECK(res.us < 200000); /* a local disk answers at once */
	CHECK(res.pyc_removed == 2);
	CHECK(!exists("__pycache__/views.cpython-311.pyc"));
	CHECK(!exists("__pycache__/views.cpython-311.opt-1.pyc"));
	CHECK(exists("__pycache__/viewsx.cpython-311.pyc"));
}

static void test_stale(void)
{
	struct nr_share_job job = {0};
	struct nr_share_result res;

	put("models.py", "y = 1\n");
	job.files[job.n] = describe("models.py");
	job.files[job.n++].hash[0] ^= 1; /* the client saw other bytes than we ever will */
	nr_share_check(root, &job, 150, &res);
	CHECK(res.verdict == NR_SHARE_STALE && res.stale == 1);
	CHECK(res.us >= 150000);
	CHECK(strstr(res.reason, "stale share: models.py still old here after 150 ms") != NULL);
	CHECK(strstr(res.reason, " at /") != NULL); /* names the mount */
	/* a deleted file that is still there */
	memset(&job, 0, sizeof(job));
	job.files[0] = describe("models.py");
	job.files[0].gone = 1;
	job.n = 1;
	nr_share_check(root, &job, 50, &res);
	CHECK(res.verdict == NR_SHARE_STALE && strstr(res.reason, "still exists") != NULL);
}

/* Nothing listed exists, not even its directory: the root is wrong; say so
 * after a second instead of the whole timeout. */
static void test_wrong_root(void)
{
	struct nr_share_job job = {0};
	struct nr_share_result res;

	put("app.py", "z = 1\n");
	job.files[0] = describe("app.py");
	snprintf(job.files[0].path, sizeof(job.files[0].path), "src/app/app.py");
	job.files[1] = describe("src/app/.app.py.swp"); /* deleted: an editor's temp file */
	job.n = 2;
	nr_share_check(root, &job, 5000, &res);
	CHECK(res.verdict == NR_SHARE_NOROOT);
	CHECK(res.us < 3000000);
	CHECK(strstr(res.reason, "set netreload-root") != NULL);
}

/* With changes the client could not list, every .pyc is held against its source. */
static void test_whole_tree(void)
{
	struct nr_share_job job = {.more = 3};
	struct nr_share_result res;
	unsigned char hdr[16] = {0};
	struct stat st;
	char path[512];
	int fd;

	mkdir(strcat(strcpy(path, root), "/pkg"), 0755);
	mkdir(strcat(strcpy(path, root), "/pkg/__pycache__"), 0755);
	put("pkg/a.py", "a = 1\n");
	put("pkg/b.py", "b = 1\n");
	snprintf(path, sizeof(path), "%s/pkg/a.py", root);
	stat(path, &st);
	hdr[8] = (unsigned char)st.st_mtime;
	hdr[9] = (unsigned char)(st.st_mtime >> 8);
	hdr[10] = (unsigned char)(st.st_mtime >> 16);
	hdr[11] = (unsigned char)(st.st_mtime >> 24);
	hdr[12] = (unsigned char)st.st_size;
	snprintf(path, sizeof(path), "%s/pkg/__pycache__/a.cpython-311.pyc", root);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(write(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr));
	close(fd);
	hdr[12]++; /* b's header records another size: stale */
	snprintf(path, sizeof(path), "%s/pkg/__pycache__/b.cpython-311.pyc", root);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(write(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr));
	close(fd);
	nr_share_check(root, &job, 1000, &res);
	CHECK(res.verdict == NR_SHARE_SEEN);
	CHECK(exists("pkg/__pycache__/a.cpython-311.pyc"));
	CHECK(!exists("pkg/__pycache__/b.cpython-311.pyc"));
}

static void test_thread(void)
{
	struct nr_share_job job = {0};
	struct nr_share_result res;
	struct pollfd pfd;

	put("t.py", "t = 1\n");
	job.files[job.n++] = describe("t.py");
	CHECK(nr_share_start() == 0);
	CHECK(nr_share_result(&res) == 0);
	CHECK(nr_share_submit(root, &job, 1000) == 0);
	CHECK(nr_share_submit(root, &job, 1000) == -1); /* one at a time */
	pfd = (struct pollfd){.fd = nr_share_fd(), .events = POLLIN};
	CHECK(poll(&pfd, 1, 5000) == 1);
	CHECK(nr_share_result(&res) == 1 && res.verdict == NR_SHARE_SEEN);
	CHECK(nr_share_result(&res) == 0);
	CHECK(nr_share_submit(root, &job, 1000) == 0);
}

int main(void)
{
	char path[512];

	if (!mkdtemp(root))
		return 1;
	snprintf(path, sizeof(path), "%s/__pycache__", root);
	mkdir(path, 0755);
	test_job_add();
	test_seen_and_pyc();
	test_stale();
	test_wrong_root();
	test_whole_tree();
	test_thread();
	snprintf(path, sizeof(path), "rm -rf '%s'", root);
	if (system(path) != 0)
		fprintf(stderr, "could not remove %s\n", root);
	return check_summary();
}
