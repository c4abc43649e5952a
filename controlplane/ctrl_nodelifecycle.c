// SPDX-License-Identifier: Apache-2.0
/*
 * The node lifecycle controller: notices nodes whose agent went silent and moves their pods
 * away, as Kubernetes' node lifecycle controller and taint manager do.
 *
 * - A node's heartbeat is its Lease in kube-node-lease (spec.renewTime) or its Ready
 *   condition's lastHeartbeatTime, whichever moves. A node not heard of for
 *   node-monitor-grace-period (40 s; a new node: node-startup-grace-period, 60 s) is lost:
 *   its conditions become Unknown (reason NodeStatusUnknown), it gets the taints
 *   node.kubernetes.io/unreachable NoSchedule and NoExecute, and its pods Ready=False (so
 *   Services stop sending them traffic). A node whose agent reports Ready=False gets the
 *   node.kubernetes.io/not-ready taints. The taints go when the node is Ready again.
 * - A pod on a NoExecute-tainted node is evicted (deleted) when its toleration of that taint
 *   runs out: its tolerationSeconds, forever without them, and the default (300 s, as the
 *   DefaultTolerationSeconds admission plugin gives) when it has no such toleration.
 *   Evictions go at a bounded rate (a token bucket, --pod-eviction-rate).
 * - The pods of a node that was deleted are deleted at once (as Kubernetes' pod GC does).
 *
 * The design choice to know: silence is measured on shoald's own monotonic clock, from
 * when this controller last saw the heartbeat change, never by comparing the node's clock
 * with ours; after shoald starts, every node gets a full grace period.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_kinds.h"
#include "ctrl.h"
#include "log.h"

#define LEASE_NS	  "kube-node-lease"
#define TAINT_UNREACHABLE "node.kubernetes.io/unreachable"
#define TAINT_NOT_READY	  "node.kubernetes.io/not-ready"

struct nl_ctrl {
	struct ctrl_informer *nodes, *leases, *pods;
	const struct api_kind *node_kind, *pod_kind;
	pthread_mutex_t mu; /* the eviction bucket */
	double tokens;
	int64_t bucket_ms;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void on_node(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		    const struct ctrl_obj *old)
{
	(void)ev;
	(void)old;
	ctrl_queue(c, now->key);
}

static void on_lease(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		     const struct ctrl_obj *old)
{
	(void)ev;
	(void)old;
	if (strcmp(now->o->ns, LEASE_NS) == 0)
		ctrl_queue(c, now->o->name);
}

static int nl_init(struct ctrl *c)
{
	struct nl_ctrl *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	ctrl_set_priv(c, p);
	pthread_mutex_init(&p->mu, NULL);
	p->bucket_ms = mono_ms();
	p->nodes = ctrl_informer(c, "v1", "Node", 0);
	p->leases = ctrl_informer(c, "coordination.k8s.io/v1", "Lease", 0);
	p->pods = ctrl_informer(c, "v1", "Pod", CTRL_INDEX_NODE);
	p->node_kind = api_kind_by_kind("v1", "Node");
	p->pod_kind = api_kind_by_kind("v1", "Pod");
	if (!p->nodes || !p->leases || !p->pods || !p->node_kind || !p->pod_kind)
		return -EINVAL;
	if (ctrl_on(c, p->nodes, on_node) || ctrl_on(c, p->leases, on_lease))
		return -E2BIG;
	return 0;
}

static void nl_fini(struct ctrl *c)
{
	struct nl_ctrl *p = ctrl_priv(c);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* Takes an eviction token; returns 0, or the ms to wait for one. */
static int64_t take_token(struct ctrl *c)
{
	struct nl_ctrl *p = ctrl_priv(c);
	double qps = ctrl_config(c)->eviction_qps > 0 ? ctrl_config(c)->eviction_qps : 10;
	double burst = qps < 1 ? 1 : qps;
	int64_t now = mono_ms(), wait = 0;

	pthread_mutex_lock(&p->mu);
	p->tokens += (double)(now - p->bucket_ms) * qps / 1000.0;
	if (p->tokens > burst)
		p->tokens = burst;
	p->bucket_ms = now;
	if (p->tokens >= 1)
		p->tokens -= 1;
	else
		wait = (int64_t)((1 - p->tokens) * 1000.0 / qps) + 1;
	pthread_mutex_unlock(&p->mu);
	return wait;
}

static uint64_t fnv(const char *s, uint64_t h)
{
	for (; s && *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static const json_t *cond_of(const json_t *node, const char *type)
{
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(json_object_get(node, "status"), "conditions"), i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

/* The taints the node should carry from us: key (or NULL: none). */
static int set_taints(struct ctrl *c, const struct ctrl_obj *rec, const json_t *node,
		      const char *want, char added[32])
{
	struct nl_ctrl *p = ctrl_priv(c);
	const json_t *taints = json_object_get(json_object_get(node, "spec"), "taints");
	json_t *out = json_array();
	bool changed = false, have_ns = false, have_ne = false;
	size_t i;
	json_t *t;

	added[0] = '\0';
	if (!out)
		return -ENOMEM;
	json_array_foreach (taints, i, t) {
		const char *key = json_string_value(json_object_get(t, "key"));
		const char *eff = json_string_value(json_object_get(t, "effect"));
		bool ours =
			key && (!strcmp(key, TAINT_UNREACHABLE) || !strcmp(key, TAINT_NOT_READY));
		if (ours && (!want || strcmp(key, want) != 0)) {
			changed = true; /* the other condition's, or none wanted */
			continue;
		}
		if (ours && eff && !strcmp(eff, "NoSchedule"))
			have_ns = true;
		if (ours && eff && !strcmp(eff, "NoExecute")) {
			have_ne = true;
			const char *ta = json_string_value(json_object_get(t, "timeAdded"));
			snprintf(added, 32, "%s", ta ? ta : "");
		}
		json_array_append(out, t);
	}
	if (want && (!have_ns || !have_ne)) {
		char now[32];
		ctrl_now(now);
		if (!have_ns)
			json_array_append_new(out,
					      json_pack("{s:s, s:s, s:s}", "key", want, "effect",
							"NoSchedule", "timeAdded", now));
		if (!have_ne) {
			json_array_append_new(out,
					      json_pack("{s:s, s:s, s:s}", "key", want, "effect",
							"NoExecute", "timeAdded", now));
			snprintf(added, 32, "%s", now);
		}
		changed = true;
	}
	if (!changed) {
		json_decref(out);
		return 0;
	}
	char path[1024], rv[32];
	snprintf(rv, sizeof(rv), "%lld", (long long)rec->o->rev);
	json_t *patch = json_pack("{s:{s:s}, s:{s:o}}", "metadata", "resourceVersion", rv, "spec",
				  "taints", out);
	int err = patch ? ctrl_path(p->node_kind, NULL, rec->o->name, NULL, path, sizeof(path))
			: -ENOMEM;
	if (!err)
		err = ctrl_write(c, "PATCH", path, patch, NULL, NULL, 0);
	json_decref(patch);
	if (!err)
		log_info("node %s: %s", rec->o->name,
			 want ? (strcmp(want, TAINT_UNREACHABLE) == 0 ? "unreachable: tainted"
								      : "not ready: tainted")
			      : "ready: taints removed");
	return err == -ENOENT ? 0 : err;
}

/* Marks every condition of the node Unknown (its agent says nothing any more). */
static int mark_unknown(struct ctrl *c, const struct ctrl_obj *rec, const json_t *node,
			int64_t silent_ms)
{
	struct nl_ctrl *p = ctrl_priv(c);
	json_t *conds =
		json_deep_copy(json_object_get(json_object_get(node, "status"), "conditions"));
	char now[32], path[1024];
	bool changed = false;
	size_t i;
	json_t *cnd;

	if (!json_is_array(conds)) {
		json_decref(conds);
		conds = json_array();
	}
	if (!conds)
		return -ENOMEM;
	ctrl_now(now);
	if (!cond_of(node, "Ready"))
		json_array_append_new(conds, json_pack("{s:s}", "type", "Ready"));
	json_array_foreach (conds, i, cnd) {
		const char *st = json_string_value(json_object_get(cnd, "status"));
		if (st && strcmp(st, "Unknown") == 0)
			continue;
		json_object_set_new(cnd, "status", json_string("Unknown"));
		json_object_set_new(cnd, "reason", json_string("NodeStatusUnknown"));
		json_object_set_new(cnd, "message",
				    json_string("The node agent stopped posting node status."));
		json_object_set_new(cnd, "lastTransitionTime", json_string(now));
		changed = true;
	}
	if (!changed) {
		json_decref(conds);
		return 0;
	}
	json_t *patch = json_pack("{s:{s:o}}", "status", "conditions", conds);
	int err = patch ? ctrl_path(p->node_kind, NULL, rec->o->name, "status", path, sizeof(path))
			: -ENOMEM;
	if (!err)
		err = ctrl_write(c, "PATCH", path, patch, NULL, NULL, 0);
	json_decref(patch);
	if (!err) {
		log_warn("node %s: no heartbeat for %lld ms: status Unknown", rec->o->name,
			 (long long)silent_ms);
		ctrl_event(c, rec, "Normal", "NodeNotReady", "Node %s status is now: NodeNotReady",
			   rec->o->name);
	}
	return err == -ENOENT ? 0 : err;
}

/* Ready=False on a pod of a lost node. */
static int pod_not_ready(struct ctrl *c, const struct ctrl_obj *pod)
{
	struct nl_ctrl *p = ctrl_priv(c);
	json_t *obj = ctrl_obj_json(pod);
	char now[32], path[1024];
	size_t i;
	json_t *cnd;
	int err;

	if (!obj)
		return -ENOMEM;
	json_t *conds = json_object_get(json_object_get(obj, "status"), "conditions");
	ctrl_now(now);
	json_array_foreach (conds, i, cnd) {
		const char *t = json_string_value(json_object_get(cnd, "type"));
		if (t && strcmp(t, "Ready") == 0) {
			json_object_set_new(cnd, "status", json_string("False"));
			json_object_set_new(cnd, "reason", json_string("NodeLost"));
			json_object_set_new(cnd, "lastTransitionTime", json_string(now));
		}
	}
	char rv[32];
	snprintf(rv, sizeof(rv), "%lld", (long long)pod->o->rev);
	json_t *patch = json_pack("{s:{s:s}, s:{s:O}}", "metadata", "resourceVersion", rv, "status",
				  "conditions", conds ? conds : json_array());
	err = patch ? ctrl_path(p->pod_kind, pod->o->ns, pod->o->name, "status", path, sizeof(path))
		    : -ENOMEM;
	if (!err)
		err = ctrl_write(c, "PATCH", path, patch, NULL, NULL, 0);
	json_decref(patch);
	json_decref(obj);
	return err == -ENOENT ? 0 : err;
}

static int delete_pod(struct ctrl *c, const struct ctrl_obj *pod, bool force, const char *why)
{
	struct nl_ctrl *p = ctrl_priv(c);
	char path[1200];
	json_t *opts = json_pack("{s:{s:s}}", "preconditions", "uid", pod->uid);
	if (opts && force)
		json_object_set_new(opts, "gracePeriodSeconds", json_integer(0));
	int err = opts ? ctrl_path(p->pod_kind, pod->o->ns, pod->o->name, NULL, path, sizeof(path))
		       : -ENOMEM;
	if (!err)
		err = ctrl_write(c, "DELETE", path, opts, NULL, NULL, 0);
	json_decref(opts);
	if (!err) {
		log_info("%s pod %s: %s", force ? "deleted" : "evicted", pod->key, why);
		ctrl_event(c, pod, "Normal", "TaintManagerEviction", "Marking for deletion Pod %s: %s",
			   pod->key, why);
	}
	return err == -ENOENT || err == -ECONFLICT ? 0 : err;
}

/* Evicts the pods whose toleration of the NoExecute taint key (added at added) ran out;
 * *next_ms gets when to look again. */
static int evict(struct ctrl *c, const char *node, const char *key, time_t added, int64_t *next_ms)
{
	struct nl_ctrl *p = ctrl_priv(c);
	struct ctrl_objs pods = { 0 };
	time_t now = time(NULL);
	int first = ctrl_on_node(p->pods, node, &pods);
	bool unreachable = strcmp(key, TAINT_UNREACHABLE) == 0;

	for (size_t i = 0; i < pods.n && !first; i++) {
		const struct ctrl_obj *pod = pods.v[i];
		const struct ctrl_pod *pp = pod->pod;
		if (pod->deleting || pp->phase == POD_SUCCEEDED || pp->phase == POD_FAILED)
			continue;
		long tol = unreachable ? pp->tolerate_unreachable_s : pp->tolerate_not_ready_s;
		if (tol < 0)
			continue; /* tolerated forever */
		if (now < added + tol) {
			int64_t ms = (int64_t)(added + tol - now) * 1000 + 100;
			if (*next_ms < 0 || ms < *next_ms)
				*next_ms = ms;
			continue;
		}
		int64_t wait = take_token(c);
		if (wait) {
			if (*next_ms < 0 || wait < *next_ms)
				*next_ms = wait;
			break;
		}
		char why[300];
		snprintf(why, sizeof(why), "node %s is %s (tolerated for %ld s)", node,
			 unreachable ? "unreachable" : "not ready", tol);
		first = delete_pod(c, pod, false, why);
	}
	ctrl_objs_free(&pods);
	return first;
}

/* The node is gone: its pods can never be confirmed stopped; delete them outright. */
static int orphaned_pods(struct ctrl *c, const char *node)
{
	struct nl_ctrl *p = ctrl_priv(c);
	struct ctrl_objs pods = { 0 };
	int first = ctrl_on_node(p->pods, node, &pods);

	for (size_t i = 0; i < pods.n && !first; i++) {
		int64_t wait = take_token(c);
		if (wait) {
			ctrl_queue_after(c, node, wait);
			break;
		}
		char why[300];
		snprintf(why, sizeof(why), "its node %s was deleted", node);
		first = delete_pod(c, pods.v[i], true, why);
	}
	ctrl_objs_free(&pods);
	return first;
}

static int nl_reconcile(struct ctrl *c, const char *key)
{
	struct nl_ctrl *p = ctrl_priv(c);
	const struct ctrl_config *cfg = ctrl_config(c);
	int64_t grace = cfg->node_monitor_grace_ms > 0 ? cfg->node_monitor_grace_ms : 40000;
	int64_t startup = cfg->node_startup_grace_ms > 0 ? cfg->node_startup_grace_ms : 60000;
	char lkey[600], hbkey[600], added[32];
	int64_t next = -1;
	int err;

	struct ctrl_obj *rec = ctrl_get(p->nodes, key);
	if (!rec) {
		ctrl_expectations_forget(c, key);
		return orphaned_pods(c, key);
	}
	json_t *node = ctrl_obj_json(rec);
	if (!node) {
		ctrl_obj_unref(rec);
		return -ENOMEM;
	}
	/* the heartbeat: whatever the agent last wrote */
	snprintf(lkey, sizeof(lkey), "%s/%s", LEASE_NS, key);
	struct ctrl_obj *lease = ctrl_get(p->leases, lkey);
	json_t *lj = lease ? ctrl_obj_json(lease) : NULL;
	const char *renew =
		json_string_value(json_object_get(json_object_get(lj, "spec"), "renewTime"));
	const json_t *ready = cond_of(node, "Ready");
	const char *hb = json_string_value(json_object_get(ready, "lastHeartbeatTime"));
	const char *rstatus = json_string_value(json_object_get(ready, "status"));
	bool ever = renew || hb;
	uint64_t h = fnv(hb, fnv(renew, 1469598103934665603ULL));
	snprintf(hbkey, sizeof(hbkey), "hb|%s", key);
	int64_t silent = ctrl_since_change_ms(c, hbkey, (long)h);
	int64_t allowed = ever ? grace : startup;
	bool lost = silent >= allowed;

	/* Unknown (ours, or the agent's) is treated as unreachable until it reports Ready. */
	const char *want = NULL;
	err = 0;
	if (lost) {
		err = mark_unknown(c, rec, node, silent);
		want = TAINT_UNREACHABLE;
	} else {
		if (rstatus && strcmp(rstatus, "False") == 0)
			want = TAINT_NOT_READY;
		else if (rstatus && strcmp(rstatus, "Unknown") == 0)
			want = TAINT_UNREACHABLE;
		next = allowed - silent + 50;
	}
	int e = err ? err : set_taints(c, rec, node, want, added);
	err = err ? err : e;
	if (!err && lost) {
		/* its pods stop receiving traffic */
		struct ctrl_objs pods = { 0 };
		err = ctrl_on_node(p->pods, key, &pods);
		for (size_t i = 0; i < pods.n && !err; i++)
			if (pods.v[i]->pod->ready && !pods.v[i]->deleting)
				err = pod_not_ready(c, pods.v[i]);
		ctrl_objs_free(&pods);
	}
	if (!err && want && added[0])
		err = evict(c, key, want, ctrl_parse_time(added), &next);
	if (next > 0)
		ctrl_queue_after(c, key, next);
	json_decref(lj);
	ctrl_obj_unref(lease);
	json_decref(node);
	ctrl_obj_unref(rec);
	return err;
}

const struct ctrl_def ctrl_nodelifecycle = {
	.name = "nodelifecycle",
	.workers = 1,
	.init = nl_init,
	.reconcile = nl_reconcile,
	.fini = nl_fini,
};
