// SPDX-License-Identifier: Apache-2.0
/*
 * shoalctl: the command-line client of shoald's API. Parses the command line, opens one HTTP
 * client (one connection, reused by every request of the command) and hands over to the
 * verb. Exit status: 0 success, 1 an error (printed), 2 bad usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"

static const struct {
	const char *name;
	int (*run)(struct ctl *c);
} ctl_cmds[] = {
	{ "apply", ctl_apply },	      { "get", ctl_get },     { "watch", ctl_get },
	{ "describe", ctl_describe }, { "delete", ctl_delete }, { "scale", ctl_scale },
	{ "rollout", ctl_rollout },
	{ "logs", ctl_logs },	      { "dp", ctl_dp },
};

int main(int argc, char **argv)
{
	struct ctl_opts o;
	struct ctl c = { .o = &o, .out = stdout };
	char err[512];
	int rc = 2;

	log_init("shoalctl", LOG_LVL_WARN);
	signal(SIGPIPE, SIG_IGN);
	if (ctl_parse_args(argc, argv, &o, err, sizeof(err))) {
		fprintf(stderr, "error: %s\n", err);
		fprintf(stderr, "run 'shoalctl --help' for usage\n");
		return 2;
	}
	if (o.help || !o.verb) {
		ctl_usage(o.help ? stdout : stderr);
		return o.help ? 0 : 2;
	}
	c.http = httpc_new(o.server, o.token);
	if (!c.http) {
		fprintf(stderr, "error: bad --server \"%s\": use http://HOST:PORT, https://HOST:PORT or unix:/PATH\n",
			o.server);
		return 2;
	}
	if (o.timeout_s >= 0 && strcmp(o.verb, "watch") != 0 && !o.watch && !o.follow)
		httpc_set_timeout(c.http, o.timeout_s * 1000);
	if (o.ca_file || o.insecure)
		httpc_set_tls(c.http, o.ca_file, o.insecure);
	c.now = time(NULL);
	for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		if (strcmp(o.verb, ctl_cmds[i].name) == 0)
			rc = ctl_cmds[i].run(&c);
	fflush(stdout);
	ctl_table_free(&c.table);
	httpc_free(c.http);
	return rc;
}
