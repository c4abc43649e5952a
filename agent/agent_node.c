// SPDX-License-Identifier: Apache-2.0
/*
 * The Node and its Lease: registration (create, or update what the agent owns on an existing
 * Node without touching the rest), the Lease in kube-node-lease renewed every
 * --lease-renew-interval, and the Node's conditions and usage written every
 * --status-interval. The node thread runs them all.
 *
 * The design choice: registration is a merge, never a replacement, so a restarted agent
 * neither drops labels, annotations and taints others put on the Node (a cordon, a
 * scheduler's annotation) nor changes anything its pods depend on: the pod CIDR is
 * immutable once set, and an agent configured with another one refuses to start.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "agent_int.h"
#include "log.h"
#include "quantity.h"

#define AGENT_VERSION "shoal-agent/0.1"
#define LEASE_NS      "kube-node-lease"

static json_t *qty(int64_t milli)
{
	char buf[64];
	return json_string(quantity_format(milli, buf, sizeof(buf)));
}

static json_t *resource_list(const struct agent *a)
{
	return json_pack("{s:o, s:o, s:o}", "cpu", qty(a->alloc_cpu_milli), "memory",
			 qty(a->alloc_memory * 1000), "pods", qty(a->alloc_pods * 1000));
}

/* One condition, keeping lastTransitionTime from old when the status did not change. */
static json_t *condition(const json_t *old, const char *type, const char *status,
			 const char *reason, const char *message, const char *now)
{
	const char *since = now;
	size_t i;
	json_t *c;
	json_array_foreach (old, i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		const char *s = json_string_value(json_object_get(c, "status"));
		const char *lt = json_string_value(json_object_get(c, "lastTransitionTime"));
		if (t && s && lt && strcmp(t, type) == 0 && strcmp(s, status) == 0)
			since = lt;
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type, "status", status, "reason",
			 reason, "message", message, "lastHeartbeatTime", now, "lastTransitionTime",
			 since);
}

/* The Node's conditions now; takes a->mu. */
static json_t *conditions_now(struct agent *a)
{
	char now[40];
	bool dp_ready = !a->dp || dpsync_ready(a->dp);
	json_t *cs = json_array();

	agent_now(now, sizeof(now), false);
	pthread_mutex_lock(&a->mu);
	bool mp = a->memory_pressure;
	json_t *old = json_incref(a->conditions);
	pthread_mutex_unlock(&a->mu);
	if (!cs)
		goto out;
	json_array_append_new(cs,
			      condition(old, "Ready", "True", "AgentReady",
					dp_ready ? "shoal-agent is posting ready status"
						 : "shoal-agent is posting ready status; the data "
						   "plane is syncing",
					now));
	json_array_append_new(cs,
			      condition(old, "MemoryPressure", mp ? "True" : "False",
					mp ? "AgentHasMemoryPressure" : "AgentHasSufficientMemory",
					mp ? "memory use is above the eviction threshold"
					   : "memory use is below the eviction threshold",
					now));
	json_array_append_new(cs, condition(old, "DiskPressure", "False", "AgentHasNoDiskPressure",
					    "shoal-agent has no disk pressure", now));
	json_array_append_new(cs, condition(old, "PIDPressure", "False", "AgentHasSufficientPID",
					    "shoal-agent has sufficient PID available", now));
	json_array_append_new(cs, condition(old, "NetworkUnavailable", dp_ready ? "False" : "True",
					    dp_ready ? "DataPlaneReady" : "DataPlaneSyncing",
					    dp_ready ? "the node's data plane is in sync"
						     : "the node's data plane is syncing",
					    now));
out:
	json_decref(old);
	return cs;
}

static json_t *node_info(void)
{
	struct utsname u;
	char os[256] = "Linux";
	FILE *f = fopen("/etc/os-release", "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "PRETTY_NAME=", 12) == 0) {
				char *v = line + 12;
				v[strcspn(v, "\n")] = '\0';
				if (*v == '"') {
					v++;
					v[strcspn(v, "\"")] = '\0';
				}
				snprintf(os, sizeof(os), "%.255s", v);
			}
		}
		fclose(f);
	}
	if (uname(&u))
		memset(&u, 0, sizeof(u));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kernelVersion", u.release, "osImage",
			 os, "operatingSystem", "linux", "architecture",
			 strcmp(u.machine, "x86_64") == 0    ? "amd64"
			 : strcmp(u.machine, "aarch64") == 0 ? "arm64"
							     : u.machine,
			 "kubeletVersion", AGENT_VERSION, "containerRuntimeVersion", "shoal://0.1");
}

/* The labels the agent owns: the configured ones, hostname, zone, os and arch. */
static json_t *own_labels(const struct agent *a)
{
	json_t *l = a->cfg->labels ? json_deep_copy(a->cfg->labels) : json_object();
	if (!l)
		return NULL;
	json_object_set_new(l, "kubernetes.io/hostname", json_string(a->cfg->node));
	json_object_set_new(l, "kubernetes.io/os", json_string("linux"));
	json_t *ni = node_info();
	json_object_set(l, "kubernetes.io/arch", json_object_get(ni, "architecture"));
	json_decref(ni);
	if (a->cfg->zone)
		json_object_set_new(l, "topology.kubernetes.io/zone", json_string(a->cfg->zone));
	return l;
}

static json_t *node_status(struct agent *a)
{
	json_t *st =
		json_pack("{s:o, s:o, s:[{s:s, s:s}, {s:s, s:s}], s:o, s:o}", "capacity",
			  resource_list(a), "allocatable", resource_list(a), "addresses", "type",
			  "InternalIP", "address", a->cfg->node_ip, "type", "Hostname", "address",
			  a->cfg->node, "conditions", conditions_now(a), "nodeInfo", node_info());
	return st;
}

/* Applies what the agent owns to an existing Node (in place). -EINVAL when its pod CIDR
 * contradicts the configuration. */
static int merge_node(struct agent *a, json_t *node)
{
	json_t *meta = json_object_get(node, "metadata");
	json_t *spec = json_object_get(node, "spec");
	if (!json_is_object(meta))
		return -EINVAL;
	if (!json_is_object(spec)) {
		spec = json_object();
		json_object_set_new(node, "spec", spec);
	}
	json_t *labels = json_object_get(meta, "labels");
	if (!json_is_object(labels)) {
		labels = json_object();
		json_object_set_new(meta, "labels", labels);
	}
	json_t *own = own_labels(a);
	if (!own || json_object_update(labels, own)) {
		json_decref(own);
		return -ENOMEM;
	}
	json_decref(own);
	if (a->endpoint[0]) {
		json_t *ann = json_object_get(meta, "annotations");
		if (!json_is_object(ann)) {
			ann = json_object();
			json_object_set_new(meta, "annotations", ann);
		}
		json_object_set_new(ann, "shoal.io/agent-endpoint", json_string(a->endpoint));
	}
	const char *cidr = json_string_value(json_object_get(spec, "podCIDR"));
	if (cidr && *cidr && strcmp(cidr, a->cfg->pod_cidr) != 0) {
		log_error("node %s: the Node's podCIDR is %s, not %s as configured; a pod CIDR "
			  "cannot change (delete the Node to re-register it)",
			  a->cfg->node, cidr, a->cfg->pod_cidr);
		return -EINVAL;
	}
	json_object_set_new(spec, "podCIDR", json_string(a->cfg->pod_cidr));
	json_object_set_new(spec, "podCIDRs", json_pack("[s]", a->cfg->pod_cidr));
	/* Taints: ours are added when missing (by key and effect); others stay. */
	json_t *taints = json_object_get(spec, "taints");
	if (a->cfg->ntaints && !json_is_array(taints)) {
		taints = json_array();
		json_object_set_new(spec, "taints", taints);
	}
	for (size_t i = 0; i < a->cfg->ntaints; i++) {
		const struct agent_taint *t = &a->cfg->taints[i];
		bool have = false;
		size_t j;
		json_t *x;
		json_array_foreach (taints, j, x) {
			const char *k = json_string_value(json_object_get(x, "key"));
			const char *e = json_string_value(json_object_get(x, "effect"));
			have |= k && e && !strcmp(k, t->key) && !strcmp(e, t->effect);
		}
		if (!have)
			json_array_append_new(taints,
					      json_pack("{s:s, s:s, s:s}", "key", t->key, "value",
							t->value, "effect", t->effect));
	}
	return 0;
}

static json_t *new_node(struct agent *a)
{
	json_t *node = json_pack("{s:s, s:s, s:{s:s}, s:{}}", "apiVersion", "v1", "kind", "Node",
				 "metadata", "name", a->cfg->node, "spec");
	if (!node)
		return NULL;
	json_t *spec = json_object_get(node, "spec");
	if (a->cfg->ntaints) {
		json_t *taints = json_array();
		for (size_t i = 0; i < a->cfg->ntaints; i++)
			json_array_append_new(taints, json_pack("{s:s, s:s, s:s}", "key",
								a->cfg->taints[i].key, "value",
								a->cfg->taints[i].value, "effect",
								a->cfg->taints[i].effect));
		json_object_set_new(spec, "taints", taints);
	}
	if (merge_node(a, node)) {
		json_decref(node);
		return NULL;
	}
	json_object_set_new(node, "status", node_status(a));
	return node;
}

/* Sends obj as METHOD path; returns the response in *resp (to be freed). */
static int send_json(struct httpc *c, const char *method, const char *path, const json_t *obj,
		     const char *ctype, struct httpc_resp *resp)
{
	char *body = json_dumps(obj, JSON_COMPACT);
	if (!body)
		return -ENOMEM;
	int err = httpc_request(c, method, path, body, strlen(body), ctype, resp);
	free(body);
	return err;
}

/* Remembers what the Node holds that the agent needs: labels for admission, conditions for
 * their transition times. */
static void remember_node(struct agent *a, const json_t *node)
{
	json_t *labels = json_object_get(json_object_get(node, "metadata"), "labels");
	json_t *conds = json_object_get(json_object_get(node, "status"), "conditions");
	pthread_mutex_lock(&a->mu);
	if (labels) {
		json_decref(a->node_labels);
		a->node_labels = json_deep_copy(labels);
	}
	if (json_is_array(conds)) {
		json_decref(a->conditions);
		a->conditions = json_incref(conds);
	}
	pthread_mutex_unlock(&a->mu);
}

int agent_node_register(struct agent *a, struct httpc *c)
{
	char path[512], msg[512];
	struct httpc_resp r;
	int err;

	snprintf(path, sizeof(path), "/api/v1/nodes/%s", a->cfg->node);
	for (int attempt = 0; attempt < 5; attempt++) {
		err = httpc_request(c, "GET", path, NULL, 0, NULL, &r);
		if (err) {
			log_warn("node %s: register: %s", a->cfg->node, httpc_error(c));
			return err;
		}
		if (r.code == 404) {
			httpc_resp_free(&r);
			json_t *node = new_node(a);
			if (!node)
				return -EINVAL;
			remember_node(a, node);
			err = send_json(c, "POST", "/api/v1/nodes", node, NULL, &r);
			json_decref(node);
			if (err) {
				log_warn("node %s: register: %s", a->cfg->node, httpc_error(c));
				return err;
			}
			if (r.code == 409) { /* created meanwhile: update it */
				httpc_resp_free(&r);
				continue;
			}
			if (r.code != 201 && r.code != 200) {
				log_error("node %s: create the Node: %s", a->cfg->node,
					  agent_resp_msg(&r, msg, sizeof(msg)));
				httpc_resp_free(&r);
				return r.code == 403 || r.code == 422 ? -EPERM : -EIO;
			}
			httpc_resp_free(&r);
			log_info("node %s: registered (created the Node)", a->cfg->node);
			return 0;
		}
		if (r.code != 200) {
			log_warn("node %s: get the Node: %s", a->cfg->node,
				 agent_resp_msg(&r, msg, sizeof(msg)));
			httpc_resp_free(&r);
			return -EIO;
		}
		json_t *node = agent_resp_json(&r);
		httpc_resp_free(&r);
		if (!node)
			return -EIO;
		err = merge_node(a, node);
		if (err) {
			json_decref(node);
			return err;
		}
		err = send_json(c, "PUT", path, node, NULL, &r);
		json_decref(node);
		if (err) {
			log_warn("node %s: update the Node: %s", a->cfg->node, httpc_error(c));
			return err;
		}
		if (r.code == 409) {
			httpc_resp_free(&r);
			continue;
		}
		if (r.code != 200) {
			log_error("node %s: update the Node: %s", a->cfg->node,
				  agent_resp_msg(&r, msg, sizeof(msg)));
			httpc_resp_free(&r);
			return r.code == 403 || r.code == 422 ? -EPERM : -EIO;
		}
		node = agent_resp_json(&r);
		httpc_resp_free(&r);
		remember_node(a, node);
		json_decref(node);
		/* The status: capacity, addresses, conditions. */
		snprintf(path, sizeof(path), "/api/v1/nodes/%s/status", a->cfg->node);
		json_t *patch = json_pack("{s:o}", "status", node_status(a));
		err = patch ? send_json(c, "PATCH", path, patch, "application/merge-patch+json", &r)
			    : -ENOMEM;
		json_decref(patch);
		if (err)
			return err;
		if (r.code != 200) {
			log_error("node %s: write the Node's status: %s", a->cfg->node,
				  agent_resp_msg(&r, msg, sizeof(msg)));
			httpc_resp_free(&r);
			return -EIO;
		}
		json_t *cur = agent_resp_json(&r);
		httpc_resp_free(&r);
		remember_node(a, cur);
		json_decref(cur);
		log_info("node %s: registered (updated the Node)", a->cfg->node);
		return 0;
	}
	log_warn("node %s: register: the Node kept changing under the agent", a->cfg->node);
	return -EAGAIN;
}

/* ---- the Lease ---------------------------------------------------------------------------- */

static int create_lease_ns(struct agent *a, struct httpc *c)
{
	struct httpc_resp r;
	char msg[512];
	json_t *ns = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
			       "metadata", "name", LEASE_NS);
	int err = ns ? send_json(c, "POST", "/api/v1/namespaces", ns, NULL, &r) : -ENOMEM;
	json_decref(ns);
	if (err)
		return err;
	if (r.code != 201 && r.code != 200 && r.code != 409) {
		log_warn("node %s: create namespace %s: %s", a->cfg->node, LEASE_NS,
			 agent_resp_msg(&r, msg, sizeof(msg)));
		err = -EIO;
	}
	httpc_resp_free(&r);
	return err;
}

int agent_lease_renew(struct agent *a, struct httpc *c)
{
	char path[512], now[48], msg[512];
	struct httpc_resp r;
	int err = 0;

	agent_now(now, sizeof(now), true);
	snprintf(path, sizeof(path),
		 "/apis/coordination.k8s.io/v1/namespaces/" LEASE_NS "/leases/%s", a->cfg->node);
	for (int attempt = 0; attempt < 3; attempt++) {
		json_t *lease = a->lease;
		if (!lease) {
			err = httpc_request(c, "GET", path, NULL, 0, NULL, &r);
			if (err)
				goto fail_conn;
			if (r.code == 200) {
				lease = agent_resp_json(&r);
			} else if (r.code != 404) {
				log_warn("node %s: get the Lease: %s", a->cfg->node,
					 agent_resp_msg(&r, msg, sizeof(msg)));
				httpc_resp_free(&r);
				return -EIO;
			}
			httpc_resp_free(&r);
		}
		if (!lease) {
			/* Create it. */
			lease = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:i, s:s, s:s}}",
					  "apiVersion", "coordination.k8s.io/v1", "kind", "Lease",
					  "metadata", "name", a->cfg->node, "namespace", LEASE_NS,
					  "spec", "holderIdentity", a->cfg->node,
					  "leaseDurationSeconds", a->cfg->lease_duration_s,
					  "acquireTime", now, "renewTime", now);
			if (!lease)
				return -ENOMEM;
			err = send_json(c, "POST",
					"/apis/coordination.k8s.io/v1/namespaces/" LEASE_NS
					"/leases",
					lease, NULL, &r);
			json_decref(lease);
			if (err)
				goto fail_conn;
			if (r.code == 404) { /* the namespace is missing */
				httpc_resp_free(&r);
				err = create_lease_ns(a, c);
				if (err)
					return err;
				continue;
			}
		} else {
			json_t *spec = json_object_get(lease, "spec");
			if (!json_is_object(spec)) {
				spec = json_object();
				json_object_set_new(lease, "spec", spec);
			}
			const char *holder =
				json_string_value(json_object_get(spec, "holderIdentity"));
			if (!holder || strcmp(holder, a->cfg->node) != 0) {
				json_object_set_new(spec, "holderIdentity",
						    json_string(a->cfg->node));
				json_object_set_new(spec, "acquireTime", json_string(now));
			}
			json_object_set_new(spec, "leaseDurationSeconds",
					    json_integer(a->cfg->lease_duration_s));
			json_object_set_new(spec, "renewTime", json_string(now));
			err = send_json(c, "PUT", path, lease, NULL, &r);
			if (lease != a->lease)
				json_decref(lease);
			if (err)
				goto fail_conn;
		}
		json_decref(a->lease);
		a->lease = NULL;
		if (r.code == 409) { /* someone else wrote it: read it again */
			httpc_resp_free(&r);
			continue;
		}
		if (r.code != 200 && r.code != 201) {
			log_warn("node %s: renew the Lease: %s", a->cfg->node,
				 agent_resp_msg(&r, msg, sizeof(msg)));
			httpc_resp_free(&r);
			return -EIO;
		}
		a->lease = agent_resp_json(&r);
		httpc_resp_free(&r);
		return 0;
	}
	return -EAGAIN;
fail_conn:
	json_decref(a->lease);
	a->lease = NULL;
	log_warn("node %s: renew the Lease: %s", a->cfg->node, httpc_error(c));
	return err;
}

/* ---- heartbeat ---------------------------------------------------------------------------- */

int agent_node_heartbeat(struct agent *a, struct httpc *c)
{
	char path[512], msg[512], now[40];
	struct httpc_resp r;
	json_t *conds = conditions_now(a);
	json_t *st = json_pack("{s:o}", "conditions", conds);
	int err;

	if (!st)
		return -ENOMEM;
	pthread_mutex_lock(&a->mu);
	if (a->have_node_usage) {
		agent_now(now, sizeof(now), false);
		json_t *u = agent_usage_json(&a->node_usage);
		if (u) {
			json_object_set_new(u, "timestamp", json_string(now));
			json_object_set_new(st, "usage", u);
		}
	}
	pthread_mutex_unlock(&a->mu);
	json_t *patch = json_pack("{s:o}", "status", st);
	snprintf(path, sizeof(path), "/api/v1/nodes/%s/status", a->cfg->node);
	err = patch ? send_json(c, "PATCH", path, patch, "application/merge-patch+json", &r)
		    : -ENOMEM;
	json_decref(patch);
	if (err) {
		if (err != -ENOMEM)
			log_warn("node %s: heartbeat: %s", a->cfg->node, httpc_error(c));
		return err;
	}
	if (r.code == 404) {
		httpc_resp_free(&r);
		log_warn("node %s: the Node is gone; registering again", a->cfg->node);
		return -ENOENT;
	}
	if (r.code != 200) {
		log_warn("node %s: heartbeat: %s", a->cfg->node,
			 agent_resp_msg(&r, msg, sizeof(msg)));
		httpc_resp_free(&r);
		return -EIO;
	}
	json_t *node = agent_resp_json(&r);
	httpc_resp_free(&r);
	remember_node(a, node);
	json_decref(node);
	return 0;
}

/* ---- the node thread ------------------------------------------------------------------------ */

/* Retries fn with back-off (1 s doubling to 10 s) until it succeeds or the agent stops. An
 * answer that retrying cannot change (-EINVAL: the Node contradicts the configuration,
 * -EPERM: the API refuses this agent's writes) makes the agent give up: agent_failed(). */
static int until_done(struct agent *a, int (*fn)(struct agent *, struct httpc *), struct httpc *c)
{
	long delay = 1000;
	int err;
	while ((err = fn(a, c)) != 0) {
		if (err == -EINVAL || err == -EPERM) {
			log_error("node %s: giving up: %s", a->cfg->node, strerror(-err));
			pthread_mutex_lock(&a->mu);
			a->fatal = err;
			pthread_cond_broadcast(&a->cond);
			pthread_mutex_unlock(&a->mu);
			return err;
		}
		if (agent_sleep(a, delay))
			return -ECANCELED;
		delay = delay * 2 > 10000 ? 10000 : delay * 2;
	}
	return 0;
}

static int start_pods(struct agent *a, struct httpc *c)
{
	(void)c;
	return agent_pods_start(a);
}

void *agent_node_thread(void *arg)
{
	struct agent *a = arg;
	struct httpc *c = a->node_http;
	int64_t next_lease = 0, next_status = 0;

	if (until_done(a, agent_node_register, c))
		return NULL;
	/* The Lease before the pods: a node that runs pods is one that is heard of. */
	if (agent_lease_renew(a, c) == 0) {
		a->n.lease_renewals++;
		next_lease = agent_mono_s() + a->cfg->lease_renew_s;
	} else {
		a->n.lease_errors++;
	}
	pthread_mutex_lock(&a->mu);
	a->registered = true;
	pthread_mutex_unlock(&a->mu);
	if (until_done(a, start_pods, c))
		return NULL;

	for (;;) {
		int64_t now = agent_mono_s();
		if (now >= next_lease) {
			if (agent_lease_renew(a, c) == 0) {
				a->n.lease_renewals++;
				next_lease = now + a->cfg->lease_renew_s;
			} else {
				a->n.lease_errors++;
				next_lease = now + 1; /* retry soon: the lease must not lapse */
			}
		}
		if (now >= next_status) {
			agent_usage_tick(a);
			int err = agent_node_heartbeat(a, c);
			if (err == -ENOENT)
				err = agent_node_register(a, c);
			if (err == 0) {
				a->n.heartbeats++;
				next_status = now + a->cfg->status_interval_s;
			} else {
				a->n.heartbeat_errors++;
				next_status = now + 2;
			}
		}
		int64_t next = next_lease < next_status ? next_lease : next_status;
		int64_t wait = next - agent_mono_s();
		if (agent_sleep(a, wait > 0 ? wait * 1000 : 10))
			break;
	}
	return NULL;
}
