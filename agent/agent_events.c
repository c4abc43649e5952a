// SPDX-License-Identifier: Apache-2.0
/*
 * Events about pods (core/v1 Event, as the kubelet posts them): what a user should see in
 * `shoalctl describe pod` when a pod is refused, evicted, fails to start or starts. Posting
 * is best effort: a lost Event is logged, never retried, and never blocks the pod's sync.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent_int.h"
#include "log.h"

void agent_event(struct agent *a, struct httpc *c, const char *ns, const char *name,
		 const char *uid, const char *type, const char *reason, const char *message)
{
	char path[512], ename[320], now[40], msg[512];
	struct timespec ts;
	struct httpc_resp r;

	if (!ns || !*ns || !name || !*name)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* Kubernetes' naming: the object's name, a dot, a unique suffix. */
	snprintf(ename, sizeof(ename), "%.230s.%" PRIx64, name,
		 (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec);
	agent_now(now, sizeof(now), false);
	json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s}, s:s, s:s, "
			       "s:s, s:{s:s, s:s}, s:s, s:s, s:i, s:s, s:s}",
			       "apiVersion", "v1", "kind", "Event", "metadata", "name", ename,
			       "namespace", ns, "involvedObject", "apiVersion", "v1", "kind", "Pod",
			       "namespace", ns, "name", name, "uid", uid ? uid : "", "reason",
			       reason, "message", message, "type", type, "source", "component",
			       "shoal-agent", "host", a->cfg->node, "firstTimestamp", now,
			       "lastTimestamp", now, "count", 1, "reportingComponent",
			       "shoal-agent", "reportingInstance", a->cfg->node);
	char *body = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	json_decref(ev);
	if (!body) {
		log_warn("pod %s/%s: event %s lost: out of memory", ns, name, reason);
		return;
	}
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ns);
	int err = httpc_request(c, "POST", path, body, strlen(body), NULL, &r);
	free(body);
	if (err) {
		log_warn("pod %s/%s: event %s: %s", ns, name, reason, httpc_error(c));
		return;
	}
	if (r.code != 201 && r.code != 200)
		log_warn("pod %s/%s: event %s: %s", ns, name, reason,
			 agent_resp_msg(&r, msg, sizeof(msg)));
	else
		a->n.events++;
	httpc_resp_free(&r);
}
