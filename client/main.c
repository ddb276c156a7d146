/*
 * main.c - the netreload command: argv to a command (cmd_ping.c,
 * cmd_status.c, cmd_watch.c), the general help and the version.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "report.h"
#include "targets.h"
#include "../common/nr_proto.h"

#define NR_VERSION "0.2.0"

static const char usage_main[] =
	"usage: netreload COMMAND [OPTIONS] ...\n"
	"\n"
	"Reload uWSGI instances that run the netreload plugin, and tell when the new\n"
	"code is live.\n"
	"\n"
	"commands:\n"
	"  ping HOST:PORT...    reload now and wait until the new code is live\n"
	"  status HOST:PORT...  show what each server is doing\n"
	"  watch [DIR...]       watch source files and ping on every change\n"
	"\n"
	"  netreload COMMAND --help   options of one command\n"
	"  netreload --version\n"
	"\n"
	"A target is HOST:PORT, [IPV6]:PORT, HOST (port " NR_DEFAULT_PORT ") or PORT (127.0.0.1).\n"
	"See netreload(1) for exit codes and examples.\n";


int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd)
		return nr_usage_error(NULL, "no command given (ping, status or watch)");
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage_main, stdout);
		return NR_EXIT_OK;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("netreload %s (protocol %d)\n", NR_VERSION, NR_PROTOCOL_VERSION);
		return NR_EXIT_OK;
	}
	if (!strcmp(cmd, "ping"))
		return nr_cmd_ping(argc - 1, argv + 1);
	if (!strcmp(cmd, "status"))
		return nr_cmd_status(argc - 1, argv + 1);
	if (!strcmp(cmd, "watch"))
		return nr_cmd_watch(argc - 1, argv + 1);
	return nr_usage_error(NULL, "unknown command '%s' (ping, status or watch)", cmd);
}

