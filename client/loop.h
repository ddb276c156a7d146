/*
 * loop.h - the watch command's one poll() loop.
 *
 * It waits on a self-pipe for signals, on each backend's fd (or its period),
 * on the sockets of the pings and lookups in flight, and on the --browser
 * connections. Changed paths go through the filter into the debouncer, whose
 * batches wait for git (gitlock.h) and then go to deliver.c, which sends them
 * to every target. cmd_watch.c parses the options, opens the roots and their
 * backends, and hands the rest to nr_loop_run().
 */
#ifndef NR_LOOP_H
#define NR_LOOP_H

#include <stdint.h>

#include "backend.h"
#include "browser.h"
#include "debounce.h"
#include "deliver.h"
#include "filter.h"
#include "gitlock.h"
#include "hook.h"

#define NR_MAX_ROOTS 16

/* The watch command's options: parsed by cmd_watch.c, obeyed by the loop. */
struct nr_watch_opts {
	struct nr_target targets[NR_MAX_TARGETS];
	int ntargets;
	struct nr_filter_opts f;
	uint32_t debounce_ms, burst_ms, max_delay_ms; /* NR_UNSET until given or defaulted */
	int poll_ms, use_stdin, verbose, no_files;
	struct nr_deliver_opts d;
	const char *explain, *secret;
	const char *on_live, *on_fail;
	const char *browser; /* --browser [ADDR:]PORT, or NULL */
	const char *statics[NR_FILTER_MAX_GLOBS]; /* --browser-static: restyle the pages */
	int nstatics;
	const char *onlys[NR_FILTER_MAX_GLOBS]; /* --browser-only: reload them, not uWSGI */
	int nonlys;
	const char *dirs[NR_MAX_ROOTS];
	int ndirs;
};

/* The loop's state: the roots, the changes waiting, the targets, the pages. */
struct nr_loop {
	struct nr_watch_opts *o;
	struct nr_watch w[NR_MAX_ROOTS];
	uint64_t next_scan[NR_MAX_ROOTS]; /* for backends without an fd */
	int nw;
	struct nr_debounce deb;
	struct nr_deliver del;
	struct nr_hooks hooks;
	int eof;	      /* --stdin reached its end */
	struct nr_gitlock lock; /* a due batch waits for git */
	/* --browser: the pages, the static saves that only restyle them, and the
	 * targets whose final answer the pages still wait for */
	struct nr_browser br;
	struct nr_debounce sdeb;
	int sdeb_page;	       /* sdeb holds a --browser-only file: reload the pages */
	int following;	       /* pages wait for the targets' answers to a batch */
	int follow_failed;     /* a final answer since the last batch was not live */
	uint64_t follow_since; /* first change of what the pages wait for */
	char follow_path[sizeof(((struct nr_batch *)0)->path)]; /* and the last one */
};

/* SIGINT, SIGTERM and SIGHUP end the loop, SIGCHLD reaps the hooks: both
 * through a self-pipe the loop polls. -1 (errno set) if the pipe cannot be made. */
int nr_loop_signals(void);
/* On the way out: the default handlers back, the pipe closed. */
void nr_loop_signals_off(void);
/* --browser: listen before the first change, and follow every final answer
 * (sets o->d's result callback). 0, or NR_EXIT_USAGE after saying why. */
int nr_loop_open_browser(struct nr_loop *c);
/* Run until a signal (NR_EXIT_OK), the end of --stdin once the last reloads
 * and their hooks are done (the worst of those reloads), or a backend that
 * cannot go on (NR_EXIT_WATCH). */
int nr_loop_run(struct nr_loop *c);

#endif
