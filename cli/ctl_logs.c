// SPDX-License-Identifier: Apache-2.0
/*
 * `shoalctl logs POD [-c CONTAINER] [-f] [--previous]`: a container's log, read from the
 * agent of the pod's node. The pod names its node (spec.nodeName), the Node names its
 * agent's endpoint (annotation shoal.io/agent-endpoint: unix:PATH or http://HOST:PORT), and
 * the agent streams the file; shoalctl's own bearer token goes along, and the agent asks the
 * API whether that token may read the pod.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define AGENT_ENDPOINT_ANNOTATION "shoal.io/agent-endpoint"

struct httpc *ctl_agent_client(struct ctl *c, const char *node)
{
	char path[512];
	json_t *obj = NULL;
	long code;
	struct httpc *h;

	snprintf(path, sizeof(path), "/api/v1/nodes/%s", node);
	if (ctl_call(c, "GET", path, NULL, NULL, &code, &obj))
		return NULL;
	if (code != 200) {
		ctl_print_server_error(code, obj);
		json_decref(obj);
		return NULL;
	}
	const char *ep = json_string_value(json_object_get(
		ctl_json_path(obj, "metadata.annotations"), AGENT_ENDPOINT_ANNOTATION));
	if (!ep || !*ep) {
		fprintf(stderr,
			"error: node %s has no agent endpoint (annotation %s): is its shoal-agent "
			"running with --listen?\n",
			node, AGENT_ENDPOINT_ANNOTATION);
		json_decref(obj);
		return NULL;
	}
	h = httpc_new(ep, c->o->token);
	if (!h) {
		fprintf(stderr, "error: node %s: bad agent endpoint \"%s\"\n", node, ep);
		json_decref(obj);
		return NULL;
	}
	json_decref(obj);
	if (c->o->ca_file || c->o->insecure)
		httpc_set_tls(h, c->o->ca_file, c->o->insecure);
	return h;
}

static int print_line(const char *line, size_t len, void *arg)
{
	FILE *out = arg;
	if (fwrite(line, 1, len, out) != len || fputc('\n', out) == EOF || fflush(out))
		return 1; /* the reader went away (a closed pipe) */
	return 0;
}

/* An agent's answer that is not 200: its text, on stderr. */
static void print_agent_error(const char *node, const struct httpc_resp *r)
{
	size_t n = r->len;
	while (n && (r->body[n - 1] == '\n' || r->body[n - 1] == '\r'))
		n--;
	fprintf(stderr, "error: the agent of node %s answered %ld: %.*s\n", node, r->code, (int)n,
		r->body ? r->body : "");
}

int ctl_logs(struct ctl *c)
{
	char path[1024], *q;
	json_t *pod = NULL;
	long code;
	struct httpc_resp r;
	int rc = 1, err;

	if (c->o->nargs != 1) {
		fprintf(stderr, "error: logs needs exactly one pod name (shoalctl logs POD [-c "
				"CONTAINER] [-f] [--previous])\n");
		return 2;
	}
	const char *name = c->o->args[0];
	if (!strncmp(name, "pod/", 4) || !strncmp(name, "pods/", 5))
		name = strchr(name, '/') + 1;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", c->o->ns, name);
	if (ctl_call(c, "GET", path, NULL, NULL, &code, &pod))
		return 1;
	if (code != 200) {
		ctl_print_server_error(code, pod);
		json_decref(pod);
		return 1;
	}
	const char *node = json_string_value(ctl_json_path(pod, "spec.nodeName"));
	if (!node || !*node) {
		fprintf(stderr, "error: pod %s is not scheduled to a node yet: it has no log\n",
			name);
		json_decref(pod);
		return 1;
	}
	struct httpc *h = ctl_agent_client(c, node);
	if (!h) {
		json_decref(pod);
		return 1;
	}
	int n = snprintf(path, sizeof(path), "/pods/%s/%s/log?follow=%d&previous=%d", c->o->ns,
			 name, c->o->follow, c->o->previous);
	if (c->o->container) {
		q = httpc_escape(c->o->container);
		if (!q)
			goto out;
		snprintf(path + n, sizeof(path) - (size_t)n, "&container=%s", q);
		free(q);
	}
	if (c->o->follow) {
		err = httpc_stream(h, path, 0, print_line, c->out, &r);
		if (err == -ECANCELED) {
			rc = 0; /* the reader is gone */
		} else if (err) {
			fprintf(stderr, "error: the agent of node %s at %s: %s\n", node,
				httpc_server(h), httpc_error(h));
		} else if (r.code != 200) {
			print_agent_error(node, &r);
		} else {
			rc = 0;
		}
	} else {
		if (c->o->timeout_s >= 0)
			httpc_set_timeout(h, c->o->timeout_s * 1000);
		err = httpc_request(h, "GET", path, NULL, 0, NULL, &r);
		if (err) {
			fprintf(stderr, "error: the agent of node %s at %s: %s\n", node,
				httpc_server(h), httpc_error(h));
		} else if (r.code != 200) {
			print_agent_error(node, &r);
		} else {
			rc = r.len && fwrite(r.body, 1, r.len, c->out) != r.len ? 1 : 0;
		}
	}
	if (!err)
		httpc_resp_free(&r);
out:
	httpc_free(h);
	json_decref(pod);
	return rc;
}
