/*
 * test_logs.c - the load-window relay (plugin/logs.c) without uWSGI: fd 2 is
 * a temp file (or a pipe) standing in for the log. What is printed while
 * "apps load" must reach it whole and in order, also from a child forked
 * meanwhile, one started in the background that outlives the window, and a
 * loader that exits, crashes or is killed; the reason comes out of the slot;
 * a log whose reader is stalled does not hold the loader up.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* posix_spawn with environ */
#endif
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../plugin/logs.h"
#include "check.h"

#define TRACEBACK                                                                             \
	"Traceback (most recent call last):\n"                                                \
	"  File \"/srv/app/app.py\", line 5, in <module>\n"                                    \
	"    import nonexistent\n"                                                            \
	"ModuleNotFoundError: No module named 'nonexistent'\n"                                 \
	"unable to load app 0 (mountpoint='') (callable not found or import error)\n"

extern char **environ;

static char logpath[] = "/tmp/nr-logs-XXXXXX";
static int saved_stderr;
static volatile int *volatile bad_address = (int *)16;

/* A fresh, empty "log" as fd 2. CHECK reports on stderr: real_stderr() first. */
static void new_log(void)
{
	int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);

	dup2(fd, 2);
	close(fd);
}

static void real_stderr(void)
{
	dup2(saved_stderr, 2);
}

static char *read_log(void)
{
	static char buf[1 << 16];
	int fd = open(logpath, O_RDONLY);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* Wait (up to 3 s) until the log is exactly want; the relay may still write. */
static int log_becomes(const char *want)
{
	for (int i = 0; i < 300; i++) {
		if (!strcmp(read_log(), want))
			return 1;
		usleep(10000);
	}
	return 0;
}

static void say(const char *s)
{
	(void)!write(2, s, strlen(s));
}

static void test_parse(void)
{
	char r[512];

	CHECK(nr_logs_parse_reason(TRACEBACK, r, sizeof(r)) == 1);
	CHECK(!strcmp(r, "app failed to load: ModuleNotFoundError: No module named 'nonexistent' "
			 "(/srv/app/app.py:5)"));
	CHECK(nr_logs_parse_reason("  File \"a.py\", line 1\n    def f(:\n         ^\n"
				   "SyntaxError: invalid syntax\n",
				   r, sizeof(r)) == 1);
	CHECK(!strcmp(r, "app failed to load: SyntaxError: invalid syntax (a.py:1)"));
	CHECK(nr_logs_parse_reason("*** no app loaded. going in full dynamic mode ***\n", r,
				   sizeof(r)) == 0);
	CHECK(nr_logs_parse_reason("", r, sizeof(r)) == 0);
}

/* Ruby, as uWSGI's rack plugin prints a config.ru that fails (uWSGI 2.0.21, Ruby 3.1). */
static void test_reason_ruby(void)
{
	char r[512];

	CHECK(nr_logs_parse_reason(
		      "Rack::BodyProxy successfully patched for ruby 1.9.x\n"
		      "<internal:/usr/lib/ruby/vendor_ruby/rubygems/core_ext/kernel_require.rb>:85:in "
		      "`require': cannot load such file -- nonexistent_gem_xyz (LoadError)\n"
		      "\tfrom <internal:/usr/lib/ruby/vendor_ruby/rubygems/core_ext/kernel_require.rb>:85:"
		      "in `require'\n"
		      "\tfrom config.ru:1:in `block in <main>'\n"
		      "\tfrom /usr/share/rubygems-integration/all/gems/rack-2.2.22/lib/rack/builder.rb:116:"
		      "in `eval'\n",
		      r, sizeof(r)) == 1);
	CHECK(!strcmp(r, "app failed to load: LoadError: cannot load such file -- nonexistent_gem_xyz "
			 "(config.ru:1)"));
	/* the message runs over lines, and carries its own place */
	CHECK(nr_logs_parse_reason(
		      "/usr/share/rubygems-integration/all/gems/rack-2.2.22/lib/rack/builder.rb:116:in "
		      "`eval': config.ru:2: syntax error, unexpected local variable or method, "
		      "expecting ']'\n"
		      "run lambda { |env| [200, {\"Conte...\n"
		      "^~~\n"
		      " (SyntaxError)\n"
		      "\tfrom /usr/share/rubygems-integration/all/gems/rack-2.2.22/lib/rack/builder.rb:116:"
		      "in `new_from_string'\n",
		      r, sizeof(r)) == 1);
	CHECK(!strcmp(r, "app failed to load: SyntaxError: config.ru:2: syntax error, unexpected "
			 "local variable or method, expecting ']'"));
	/* Ruby 3.4 quotes 'f', and a namespaced class; the last exception wins */
	CHECK(nr_logs_parse_reason("x.rb:1:in 'a': first (RuntimeError)\n"
				   "/srv/config.ru:7:in 'block in <main>': undefined method 'nope' "
				   "for nil (NoMethodError)\n"
				   "/srv/config.ru:9:in 'b': bad (Foo::BarError)\n",
				   r, sizeof(r)) == 1);
	CHECK(!strcmp(r, "app failed to load: Foo::BarError: bad (/srv/config.ru:9)"));
	/* found by fuzzing: an empty message, its class right after "': " */
	CHECK(nr_logs_parse_reason("x.rb81:in `x.rb::1,:in x.`a': (E)\nrb\t", r, sizeof(r)) == 1);
	CHECK(!strcmp(r, "app failed to load: E: "));
	/* no class at the end: not an exception */
	CHECK(nr_logs_parse_reason("config.ru:1:in `x': text\n\tfrom y.rb:1:in `z'\n", r,
				   sizeof(r)) == 0);
}

/* Perl, as uWSGI's psgi plugin prints an app.psgi that fails (uWSGI 2.0.21, Perl 5.36). */
static void test_reason_perl(void)
{
	char r[512];

	CHECK(nr_logs_parse_reason(
		      "Plack::Util is not installed, using \"do\" instead of \"load_psgi\"\n"
		      "syntax error at /tmp/p/app.psgi line 3, near \"my \"\n"
		      "Global symbol \"$app\" requires explicit package name (did you forget to declare "
		      "\"my $app\"?) at /tmp/p/app.psgi line 3.\n"
		      "unable to find PSGI function entry point.\n"
		      "*** no app loaded. going in full dynamic mode ***\n",
		      r, sizeof(r)) == 1);
	CHECK(!strcmp(r, "app failed to load: syntax error at /tmp/p/app.psgi line 3, near \"my \""));
	/* die; a line the app printed before uWSGI's note is not the cause */
	CHECK(nr_logs_parse_reason("warned at /tmp/p/lib.pm line 1.\n"
				   "Plack::Util is not installed, using \"do\" instead of \"load_psgi\"\n"
				   "no database at /tmp/p/app.psgi line 2.\n"
				   "unable to find PSGI function entry point.\n",
				   r, sizeof(r)) == 1);
	CHECK(!strcmp(r, "app failed to load: no database at /tmp/p/app.psgi line 2"));
	/* Plack's load_psgi */
	CHECK(nr_logs_parse_reason("Error while loading /srv/app.psgi: Can't locate Foo.pm in @INC "
				   "(you may need to install the Foo module) at /srv/app.psgi line 1.\n"
				   "unable to find PSGI function entry point.\n",
				   r, sizeof(r)) == 1);
	CHECK(!strcmp(r, "app failed to load: Error while loading /srv/app.psgi: Can't locate Foo.pm "
			 "in @INC (you may need to install the Foo module) at /srv/app.psgi line 1"));
	/* no message: still better than nothing */
	CHECK(nr_logs_parse_reason("unable to find PSGI function entry point.\n", r, sizeof(r)) == 1);
	CHECK(!strcmp(r, "app failed to load: unable to find PSGI function entry point"));
}

/* The bytes arrive unchanged and in order, and are all out when nr_logs_end
 * returns; fd 2 is the same file afterwards. */
static void test_window(void)
{
	struct stat before, after;
	char r[512];
	int all_out;

	new_log();
	fstat(2, &before);
	say("before\n");
	nr_logs_begin(1);
	say("during 1\n");
	say(TRACEBACK);
	say("no newline at the end");
	nr_logs_end(0);
	all_out = !strcmp(read_log(), "before\nduring 1\n" TRACEBACK "no newline at the end");
	say("\nafter\n");
	fstat(2, &after);
	real_stderr();
	CHECK(all_out);
	CHECK(before.st_ino == after.st_ino && before.st_dev == after.st_dev);
	CHECK(!strcmp(read_log(), "before\nduring 1\n" TRACEBACK "no newline at the end\nafter\n"));
	CHECK(nr_logs_reason(1, getpid(), r, sizeof(r)) == 1);
	CHECK(strstr(r, "ModuleNotFoundError: No module named 'nonexistent'") != NULL);
	CHECK(nr_logs_reason(1, 0, r, sizeof(r)) == 1);
	CHECK(nr_logs_reason(1, getpid() + 1, r, sizeof(r)) == 0); /* another process's slot */
	CHECK(nr_logs_reason(2, 0, r, sizeof(r)) == 0);		   /* nothing loaded there */
	CHECK(nr_logs_reason(7, 0, r, sizeof(r)) == 0);		   /* no such slot */
}

/* The relay process reading the pipe that is fd 2 now: the process holding
 * the pipe (not us) whose parent is the starter; both are "netreload-log".
 * 0 if none shows up within 3 s. */
static int is_log_process(pid_t pid)
{
	char path[64], comm[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	return !strcmp(comm, "netreload-log\n");
}

static pid_t parent_of(pid_t pid)
{
	char path[64];
	int ppid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	if (fscanf(f, "%*d (%*[^)]) %*c %d", &ppid) != 1)
		ppid = 0;
	fclose(f);
	return ppid;
}

static int holds_pipe(pid_t pid, const char *want)
{
	char dir[64], path[320], link[64];
	struct dirent *de;
	int found = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	if (!(d = opendir(dir)))
		return 0;
	while (!found && (de = readdir(d))) {
		ssize_t n;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			found = !strcmp(link, want);
		}
	}
	closedir(d);
	return found;
}

static pid_t find_relay(void)
{
	struct stat st;
	char want[64];

	if (fstat(2, &st))
		return 0;
	snprintf(want, sizeof(want), "pipe:[%lu]", (unsigned long)st.st_ino);
	for (int i = 0; i < 300; i++) {
		DIR *d = opendir("/proc");
		struct dirent *de;
		pid_t found = 0;
		while (d && !found && (de = readdir(d))) {
			pid_t pid = (pid_t)atoi(de->d_name);
			if (pid > 0 && pid != getpid() && is_log_process(pid) &&
			    is_log_process(parent_of(pid)) && holds_pipe(pid, want))
				found = pid;
		}
		if (d)
			closedir(d);
		if (found)
			return found;
		usleep(10000);
	}
	return 0;
}

/* A load that succeeded does not wait for the relay: with the relay stopped,
 * nr_logs_end(1) returns at once (one that waited would sit out the 2 s
 * acknowledgement timeout), and once the relay goes on, every line still
 * gets out, in order, and the tail is published (a reason is looked up only
 * for a load that failed, which waits). */
static void test_loaded_no_wait(void)
{
	char r[512];
	int published = 0, ended_fast;
	struct timespec t0, t1;
	pid_t relay_pid;

	new_log();
	nr_logs_begin(2);
	relay_pid = find_relay();
	CHECK(relay_pid > 0);
	if (relay_pid > 0)
		kill(relay_pid, SIGSTOP);
	say("importing\n");
	say(TRACEBACK); /* a warning-like text, published all the same */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	nr_logs_end(1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ended_fast = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1000;
	if (relay_pid > 0)
		kill(relay_pid, SIGCONT);
	CHECK(ended_fast);
	CHECK(log_becomes("importing\n" TRACEBACK));
	for (int i = 0; i < 300 && !published; i++) {
		published = nr_logs_reason(2, getpid(), r, sizeof(r)) == 1;
		if (!published)
			usleep(10000);
	}
	real_stderr();
	CHECK(published);
}

/* A long load keeps only the tail, which still holds the exception; text
 * with NUL bytes and most of the mark passes through as it is. */
static void test_tail(void)
{
	char line[100], r[512];
	static const char odd[] = "odd \0netreload:load\n";

	new_log();
	nr_logs_begin(2);
	for (int i = 0; i < 2000; i++) {
		snprintf(line, sizeof(line), "noise line %d\n", i);
		say(line);
	}
	(void)!write(2, odd, sizeof(odd) - 1);
	say(TRACEBACK);
	nr_logs_end(0);
	real_stderr();
	CHECK(strlen(read_log()) > NR_LOGS_TAIL);
	CHECK(nr_logs_reason(2, getpid(), r, sizeof(r)) == 1);
}

/* A child forked while loading writes through the relay too, in order. */
static void test_fork(void)
{
	pid_t pid;
	int st;

	new_log();
	nr_logs_begin(1);
	say("parent 1\n");
	pid = fork();
	if (pid == 0) {
		say("child\n");
		_exit(0);
	}
	waitpid(pid, &st, 0);
	say("parent 2\n");
	nr_logs_end(0);
	real_stderr();
	CHECK(!strcmp(read_log(), "parent 1\nchild\nparent 2\n"));
}

/* A process started in the background while loading keeps its output after. */
static void test_background(void)
{
	char *argv[] = {"sh", "-c", "sleep 0.2; echo late >&2", NULL};
	pid_t pid;
	int st;

	new_log();
	nr_logs_begin(1);
	say("loading\n");
	posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ); /* no fork handlers */
	nr_logs_end(0);
	say("loaded\n");
	real_stderr();
	CHECK(log_becomes("loading\nloaded\nlate\n"));
	waitpid(pid, &st, 0);
}

/* A loader that ends while loading: exit(), a crash, a signal, SIGKILL. */
static void end_while_loading(int how, int *status)
{
	pid_t pid;

	new_log();
	pid = fork();
	if (pid == 0) {
		nr_logs_begin(1);
		say("last words\n");
		if (how == 0)
			exit(3);
		if (how == 1)
			*bad_address = 1; /* not NULL: UBSan would catch that and _exit() */
		kill(getpid(), how == 2 ? SIGTERM : SIGKILL);
		_exit(9); /* not reached */
	}
	waitpid(pid, status, 0);
	real_stderr();
	CHECK(log_becomes("last words\n") || (how == 1 && strstr(read_log(), "last words\n")));
}

static void test_endings(void)
{
	int st;

	end_while_loading(0, &st);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3);
	end_while_loading(1, &st);
	CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 0)); /* SIGSEGV, or ASan's report and exit */
	end_while_loading(2, &st);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	end_while_loading(3, &st);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/* The log is a pipe nobody reads for now, and full: loading ends at once
 * anyway (without netreload the loader itself would block on it); the lines
 * and the reason are there, and the lines arrive once the reader is back. */
static void test_stalled_reader(void)
{
	int p[2], filler, ended_fast, got_reason, found = 0;
	char path[64], r[512], buf[65536];
	struct timespec t0, t1;

	if (pipe(p))
		return;
	dup2(p[1], 2);
	close(p[1]);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", 2);
	filler = open(path, O_WRONLY | O_NONBLOCK); /* its own O_NONBLOCK */
	while (write(filler, "filler filler filler\n", 21) > 0)
		;
	while (write(filler, "\n", 1) > 0)
		;
	close(filler);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	nr_logs_begin(1);
	say(TRACEBACK);
	nr_logs_end(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	real_stderr(); /* the relay holds the pipe's last write end now */
	ended_fast = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 500;
	got_reason = nr_logs_reason(1, getpid(), r, sizeof(r));
	for (ssize_t n; !found && (n = read(p[0], buf, sizeof(buf) - 1)) > 0;) {
		buf[n] = '\0';
		found = strstr(buf, "ModuleNotFoundError") != NULL;
	}
	close(p[0]);
	CHECK(ended_fast);
	CHECK(got_reason);
	CHECK(found);
}

/* With fd 2 closed there is nothing to relay, and nothing breaks. */
static void test_closed_stderr(void)
{
	int still_closed;

	close(2);
	nr_logs_begin(1);
	nr_logs_end(0);
	still_closed = fcntl(2, F_GETFD) < 0;
	real_stderr();
	CHECK(still_closed);
}

int main(void)
{
	int fd = mkstemp(logpath);

	saved_stderr = dup(2);
	close(fd);
	CHECK(nr_logs_init(3) == 0);
	test_parse();
	test_reason_ruby();
	test_reason_perl();
	test_window();
	test_loaded_no_wait();
	test_tail();
	test_fork();
	test_background();
	test_endings();
	test_stalled_reader();
	test_closed_stderr();
	unlink(logpath);
	return check_summary();
}
