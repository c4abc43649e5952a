// SPDX-License-Identifier: Apache-2.0
/*
 * `shoalctl dp --node NODE` (or `shoalctl dp NODE`): what the node's data plane holds, in
 * words (services, frontends, backends with their state, counters), as the node's agent
 * describes it at GET /dp.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

int ctl_dp(struct ctl *c)
{
	const char *node = c->o->node;
	struct httpc_resp r;
	int rc = 1;

	if (!node && c->o->nargs == 1)
		node = c->o->args[0];
	if (!node || (c->o->node && c->o->nargs) || c->o->nargs > 1) {
		fprintf(stderr, "error: dp needs one node: shoalctl dp --node NODE\n");
		return 2;
	}
	struct httpc *h = ctl_agent_client(c, node);
	if (!h)
		return 1;
	if (c->o->timeout_s >= 0)
		httpc_set_timeout(h, c->o->timeout_s * 1000);
	if (httpc_request(h, "GET", "/dp", NULL, 0, NULL, &r)) {
		fprintf(stderr, "error: the agent of node %s at %s: %s\n", node, httpc_server(h),
			httpc_error(h));
		httpc_free(h);
		return 1;
	}
	if (r.code == 200) {
		rc = r.len && fwrite(r.body, 1, r.len, c->out) != r.len ? 1 : 0;
	} else {
		size_t n = r.len;
		while (n && r.body[n - 1] == '\n')
			n--;
		fprintf(stderr, "error: the agent of node %s answered %ld: %.*s\n", node, r.code,
			(int)n, r.body ? r.body : "");
	}
	httpc_resp_free(&r);
	httpc_free(h);
	return rc;
}
