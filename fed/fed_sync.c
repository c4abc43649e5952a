// SPDX-License-Identifier: Apache-2.0
/*
 * A FederatedDeployment's reconcile: choose the clusters (named, or matched by the cluster
 * selector: either suffices), split the replicas (fed_apportion.c), write the member
 * Deployments through each member's API, and aggregate the members' status into
 * status.placement, status.clusters and the conditions Placed, Synced and NotOwned.
 *
 * - A cluster that is Offline (not ready past the grace period) takes no replicas: they are
 *   split over the others. A cluster that is not ready but within the grace period keeps
 *   what it had, and is not written to.
 * - Make before break: replicas are added at once, but a cluster gives replicas back only as
 *   far as the ready replicas elsewhere exceed the total wanted (ready replicas counted from
 *   the members' own Deployment status). So when a lost cluster comes back, it is scaled up
 *   first and the others scale down as its replicas become ready: the ready total never
 *   falls below what was wanted.
 * - A member object is identified by namespace and name (the FederatedDeployment's), marked
 *   with the managed-by label and a hash of what was written; it is changed only when the
 *   hash or the replica count differ, with its resourceVersion (409 Conflict: retried), and
 *   deleted with its uid as precondition. An object of that name without the label belongs
 *   to someone else: it is never touched, and the cluster's state is NotOwned.
 * - Failures (409, 5xx, time-outs, refused connections) fail the reconcile, which the work
 *   queue retries with per-key exponential back-off.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_kinds.h"
#include "ctrl.h"
#include "errors.h"
#include "fed_int.h"
#include "informer.h"
#include "labels.h"
#include "log.h"
#include "quantity.h"

#define NOT_OWNED_RECHECK_MS 30000

struct target {
	char name[254];
	json_t *cluster; /* the Cluster, parsed */
	struct fed_member *m;
	bool selected, ready, offline, synced;
	int prev;	  /* status.placement before */
	int want;	  /* placement now (0: none) */
	int write;	  /* what is written now (want, or more while others come up) */
	json_t *existing; /* the member's Deployment (ours), or NULL */
	int64_t cur, ready_n, avail_n, updated_n, status_n;
	const char *state;
	char msg[512];
};

struct fd_ctx {
	struct fed *f;
	const char *ns, *name;
	json_t *fd;
	const json_t *spec;
	struct target *t;
	size_t n;
	int total, unplaced;
	size_t candidates; /* selected clusters that are not offline */
	int err;	   /* first retryable failure */
	bool not_owned;	   /* some cluster holds an object that is not ours */
	bool rebalancing;  /* some cluster waits for ready replicas elsewhere */
};

static int64_t jint(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* ---- clusters and placement ---------------------------------------------------------- */

static bool named(const json_t *names, const char *name)
{
	size_t i;
	json_t *v;
	json_array_foreach ((json_t *)names, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), name))
			return true;
	return false;
}

static const json_t *entry_for(const json_t *arr, const char *cluster)
{
	size_t i;
	json_t *v;
	json_array_foreach ((json_t *)arr, i, v) {
		const char *c = json_string_value(json_object_get(v, "cluster"));
		if (c && !strcmp(c, cluster))
			return v;
	}
	return NULL;
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(struct ctrl_obj *const *)a)->o->name,
		      (*(struct ctrl_obj *const *)b)->o->name);
}

static int load_targets(struct fd_ctx *x)
{
	struct fed *f = x->f;
	struct ctrl_objs l = { 0 };
	struct selector *sel = NULL;
	const json_t *pl = json_object_get(x->spec, "placement");
	const json_t *ls = json_object_get(pl, "clusterSelector");
	int err = ctrl_list(f->clusters, NULL, &l);
	if (err)
		goto out;
	qsort(l.v, l.n, sizeof(l.v[0]), by_name);
	char serr[256];
	if (ls && selector_from_json(ls, false, &sel, serr, sizeof(serr)) < 0)
		sel = NULL; /* validation refused such a selector: select by name only */
	x->t = calloc(l.n ? l.n : 1, sizeof(*x->t));
	if (!x->t) {
		err = -ENOMEM;
		goto out;
	}
	const json_t *prev = json_object_get(json_object_get(x->fd, "status"), "placement");
	for (size_t i = 0; i < l.n; i++) {
		struct target *t = &x->t[x->n];
		t->cluster = ctrl_obj_json(l.v[i]);
		if (!t->cluster) {
			err = -ENOMEM;
			goto out;
		}
		x->n++;
		snprintf(t->name, sizeof(t->name), "%s", l.v[i]->o->name);
		const json_t *labels = ctrl_obj_labels(l.v[i]);
		t->selected =
			!l.v[i]->deleting && (named(json_object_get(pl, "clusters"), t->name) ||
					      (sel && selector_matches(sel, labels)));
		t->ready = fed_cluster_ready(t->cluster);
		t->offline = fed_cluster_offline(t->cluster);
		t->prev = (int)jint(entry_for(prev, t->name), "replicas");
		t->m = fed_member_get(f, t->name);
		if (t->m && t->m->inf && informer_synced(t->m->inf)) {
			t->synced = true;
			t->existing = informer_get(t->m->inf, x->ns, x->name);
		}
		const char *via = json_string_value(json_object_get(
			json_object_get(json_object_get(t->existing, "metadata"), "annotations"),
			FED_ANN_CLUSTER));
		if (t->existing && via && strcmp(via, t->name)) {
			/* written through another Cluster naming the same member: not this one's */
			json_decref(t->existing);
			t->existing = NULL;
		}
		if (t->existing) {
			const json_t *st = json_object_get(t->existing, "status");
			t->cur = jint(json_object_get(t->existing, "spec"), "replicas");
			t->ready_n = jint(st, "readyReplicas");
			t->avail_n = jint(st, "availableReplicas");
			t->updated_n = jint(st, "updatedReplicas");
			t->status_n = jint(st, "replicas");
		}
	}
out:
	selector_free(sel);
	ctrl_objs_free(&l);
	return err;
}

static int64_t milli(const json_t *o, const char *key)
{
	int64_t v = 0;
	const json_t *q = json_object_get(o, key);
	if (json_is_integer(q))
		return json_integer_value(q) * 1000;
	if (!json_is_string(q) || quantity_parse_milli(json_string_value(q), &v))
		return 0;
	return v;
}

/* How many more of this FederatedDeployment's pods the cluster takes: from its available
 * cpu and memory and the pod's requests (summed over its containers), or the Cluster's own
 * estimate for its reference pod when the template asks for nothing. */
static int64_t estimate(const struct fd_ctx *x, const json_t *cluster)
{
	const json_t *st = json_object_get(cluster, "status");
	const json_t *ps = json_object_get(
		json_object_get(json_object_get(json_object_get(x->spec, "template"), "spec"),
				"template"),
		"spec");
	int64_t cpu = 0, mem = 0;
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(ps, "containers"), i, c) {
		const json_t *req = json_object_get(json_object_get(c, "resources"), "requests");
		cpu += milli(req, "cpu");
		mem += milli(req, "memory");
	}
	if (!cpu && !mem)
		return jint(st, "estimatedReplicas");
	const json_t *av = json_object_get(st, "available");
	return fed_estimate(milli(av, "cpu"), milli(av, "memory") / 1000, milli(av, "pods") / 1000,
			    cpu, mem / 1000);
}

static int place(struct fd_ctx *x)
{
	const json_t *pl = json_object_get(x->spec, "placement");
	const json_t *rs = json_object_get(pl, "replicaScheduling");
	const char *type = json_string_value(json_object_get(rs, "type")) ?: "Divided";
	const char *by = json_string_value(json_object_get(rs, "divideBy")) ?: "Weights";
	const json_t *weights = json_object_get(rs, "weights");
	const json_t *limits = json_object_get(pl, "clusterReplicas");
	const json_t *ovs = json_object_get(x->spec, "overrides");
	struct fed_share s[x->n ? x->n : 1];
	size_t idx[x->n ? x->n : 1], k = 0;

	x->total = (int)jint(x->spec, "replicas");
	for (size_t i = 0; i < x->n; i++) {
		struct target *t = &x->t[i];
		if (!t->selected || t->offline)
			continue;
		const json_t *lim = entry_for(limits, t->name);
		struct fed_share sh = { .weight = 1, .min = 0, .max = -1, .prev = t->prev };
		if (json_object_get(lim, "minReplicas"))
			sh.min = (int)jint(lim, "minReplicas");
		if (json_object_get(lim, "maxReplicas"))
			sh.max = (int)jint(lim, "maxReplicas");
		if (json_array_size(weights))
			sh.weight = (double)jint(entry_for(weights, t->name), "weight");
		if (!strcmp(by, "AvailableCapacity")) {
			int64_t est = estimate(x, t->cluster);
			sh.weight = (double)(est + t->prev);
			if (sh.max < 0 || sh.max > est + t->prev)
				sh.max = (int)(est + t->prev) < sh.min ? sh.min
								       : (int)(est + t->prev);
		}
		if (!t->ready) {
			/* within the grace period: it keeps what it had */
			sh.min = sh.max = t->prev;
			sh.weight = t->prev;
		}
		idx[k] = i;
		s[k++] = sh;
	}
	x->candidates = k;
	int left;
	if (!strcmp(type, "Duplicated"))
		left = fed_duplicate(x->total, s, k);
	else if (!strcmp(by, "AvailableCapacity"))
		left = fed_apportion_from(x->total, s, k);
	else
		left = fed_apportion(x->total, s, k);
	if (left < 0)
		return left;
	x->unplaced = strcmp(type, "Duplicated") ? left : 0;
	for (size_t j = 0; j < k; j++) {
		struct target *t = &x->t[idx[j]];
		t->want = s[j].out;
		const json_t *ov = entry_for(ovs, t->name);
		if (t->ready && json_is_integer(json_object_get(ov, "replicas")))
			t->want = (int)jint(ov, "replicas");
	}
	return 0;
}

/* Make before break: how far each cluster may come down now. */
static void gate_scale_down(struct fd_ctx *x)
{
	int64_t ready = 0, want = 0;
	for (size_t i = 0; i < x->n; i++) {
		struct target *t = &x->t[i];
		want += t->want;
		if (t->ready && t->existing)
			ready += t->ready_n < t->cur ? t->ready_n : t->cur;
	}
	int64_t surplus = ready - want;
	for (size_t i = 0; i < x->n; i++) {
		struct target *t = &x->t[i];
		t->write = t->want;
		if (!t->existing || t->want >= t->cur)
			continue;
		int64_t r = t->ready_n < t->cur ? t->ready_n : t->cur;
		int64_t lost = r - t->want > 0 ? r - t->want : 0;
		if (lost <= surplus) {
			surplus -= lost > 0 ? lost : 0;
			continue;
		}
		int64_t keep = r - (surplus > 0 ? surplus : 0);
		if (keep > t->cur)
			keep = t->cur;
		t->write = (int)keep;
		surplus = surplus > 0 ? 0 : surplus;
		x->rebalancing = true;
	}
}

/* ---- the member object ---------------------------------------------------------------- */

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void merge_map(json_t *dst, const json_t *src)
{
	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)src, k, v)
		json_object_set(dst, k, v);
}

/* env by name: a variable of the same name is replaced, a new one appended. */
static void merge_env(json_t *c, const json_t *env)
{
	json_t *cur = json_object_get(c, "env");
	if (!json_is_array(cur)) {
		cur = json_array();
		json_object_set_new(c, "env", cur);
	}
	size_t i, j;
	json_t *e, *d;
	json_array_foreach ((json_t *)env, i, e) {
		const char *n = json_string_value(json_object_get(e, "name"));
		bool done = false;
		json_array_foreach (cur, j, d) {
			if (n && !strcmp(json_string_value(json_object_get(d, "name")) ?: "", n)) {
				json_array_set(cur, j, e);
				done = true;
				break;
			}
		}
		if (!done)
			json_array_append(cur, e);
	}
}

static void apply_override(json_t *spec, const json_t *ov)
{
	const char *only = json_string_value(json_object_get(ov, "container"));
	json_t *tmpl = json_object_get(spec, "template");
	json_t *labels = json_object_get(ov, "labels");
	if (labels) {
		json_t *meta = json_object_get(tmpl, "metadata");
		json_t *tl = json_object_get(meta, "labels");
		if (json_is_object(tl))
			merge_map(tl, labels);
	}
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(json_object_get(tmpl, "spec"), "containers"), i, c) {
		if (only && strcmp(json_string_value(json_object_get(c, "name")) ?: "", only))
			continue;
		if (json_object_get(ov, "env"))
			merge_env(c, json_object_get(ov, "env"));
		if (json_object_get(ov, "args"))
			json_object_set(c, "args", json_object_get(ov, "args"));
		const json_t *res = json_object_get(ov, "resources");
		if (res) {
			json_t *r = json_object_get(c, "resources");
			if (!json_is_object(r)) {
				r = json_object();
				json_object_set_new(c, "resources", r);
			}
			const char *part[] = { "limits", "requests" };
			for (size_t p = 0; p < 2; p++) {
				const json_t *src = json_object_get(res, part[p]);
				if (!src)
					continue;
				json_t *dst = json_object_get(r, part[p]);
				if (!json_is_object(dst)) {
					dst = json_object();
					json_object_set_new(r, part[p], dst);
				}
				merge_map(dst, src);
			}
		}
	}
}

/* The member Deployment for cluster t (replicas not set), and its hash in hash. */
static json_t *member_object(struct fd_ctx *x, const struct target *t, char hash[17])
{
	const json_t *tmpl = json_object_get(x->spec, "template");
	const json_t *tmeta = json_object_get(tmpl, "metadata");
	const json_t *ov = entry_for(json_object_get(x->spec, "overrides"), t->name);
	char owner[600];
	snprintf(owner, sizeof(owner), "%s/%s", x->ns, x->name);
	json_t *d = json_pack("{s:s, s:s, s:{s:s, s:s, s:{}, s:{}}, s:o}", "apiVersion", "apps/v1",
			      "kind", "Deployment", "metadata", "name", x->name, "namespace", x->ns,
			      "labels", "annotations", "spec",
			      json_deep_copy(json_object_get(tmpl, "spec")));
	if (!d)
		return NULL;
	json_t *meta = json_object_get(d, "metadata");
	json_t *labels = json_object_get(meta, "labels");
	json_t *ann = json_object_get(meta, "annotations");
	json_t *spec = json_object_get(d, "spec");
	if (!json_is_object(spec)) {
		json_decref(d);
		return NULL;
	}
	json_object_del(spec, "replicas");
	merge_map(labels, json_object_get(tmeta, "labels"));
	merge_map(ann, json_object_get(tmeta, "annotations"));
	if (ov) {
		merge_map(labels, json_object_get(ov, "labels"));
		apply_override(spec, ov);
	}
	json_object_set_new(labels, FED_LABEL_MANAGED_BY, json_string(x->f->cfg->id));
	json_object_set_new(ann, FED_ANN_OWNER, json_string(owner));
	json_object_set_new(ann, FED_ANN_CLUSTER, json_string(t->name));
	char *text = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text) {
		json_decref(d);
		return NULL;
	}
	snprintf(hash, 17, "%016" PRIx64, fnv1a(text));
	free(text);
	json_object_set_new(ann, FED_ANN_HASH, json_string(hash));
	return d;
}

static bool ours(const struct fed *f, const json_t *obj)
{
	const json_t *l = json_object_get(json_object_get(obj, "metadata"), "labels");
	const char *v = json_string_value(json_object_get(l, FED_LABEL_MANAGED_BY));
	return v && !strcmp(v, f->cfg->id);
}

static void fail(struct fd_ctx *x, struct target *t, const char *state, int err)
{
	t->state = state;
	if (!x->err)
		x->err = err;
	log_warn("federation: %s/%s on cluster %s: %s", x->ns, x->name, t->name, t->msg);
}

static int ensure_namespace(struct fd_ctx *x, struct target *t)
{
	json_t *ns = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
			       "metadata", "name", x->ns);
	if (!ns)
		return -ENOMEM;
	int err =
		fed_member_do(t->m, "POST", "/api/v1/namespaces", ns, NULL, t->msg, sizeof(t->msg));
	json_decref(ns);
	return err == -EEXIST ? 0 : err;
}

static void create(struct fd_ctx *x, struct target *t, json_t *d, const char *coll,
		   const char *path)
{
	json_object_set_new(json_object_get(d, "spec"), "replicas", json_integer(t->write));
	int err = fed_member_do(t->m, "POST", coll, d, NULL, t->msg, sizeof(t->msg));
	if (err == -ENOENT && strstr(t->msg, "namespaces")) {
		err = ensure_namespace(x, t);
		if (!err)
			err = fed_member_do(t->m, "POST", coll, d, NULL, t->msg, sizeof(t->msg));
	}
	if (!err) {
		/* what was placed is held: the same state the next reconcile finds, so the status
		 * is not written twice for one change */
		t->state = t->write != t->want ? "Rebalancing" : "Synced";
		t->cur = t->write;
		return;
	}
	if (err != -EEXIST) {
		fail(x, t, "Error", err);
		return;
	}
	/* Someone's object of that name: ours (the watch has not shown it yet) or not. */
	json_t *cur = NULL;
	err = fed_member_do(t->m, "GET", path, NULL, &cur, t->msg, sizeof(t->msg));
	if (err) {
		fail(x, t, "Error", err);
	} else if (!ours(x->f, cur)) {
		t->state = "NotOwned";
		snprintf(t->msg, sizeof(t->msg),
			 "a Deployment %s/%s exists in the cluster without the label %s=%s; it is "
			 "left alone",
			 x->ns, x->name, FED_LABEL_MANAGED_BY, x->f->cfg->id);
		x->not_owned = true;
	} else if (strcmp(json_string_value(json_object_get(
				  json_object_get(json_object_get(cur, "metadata"), "annotations"),
				  FED_ANN_CLUSTER))
				  ?: t->name,
			  t->name)) {
		t->state = "Duplicate";
		snprintf(t->msg, sizeof(t->msg),
			 "the member's object was written through another Cluster with the same "
			 "endpoint; it is left to that one");
	} else {
		t->state = "Pending";
		snprintf(t->msg, sizeof(t->msg), "waiting for the member's watch");
	}
	json_decref(cur);
}

static void sync_one(struct fd_ctx *x, struct target *t)
{
	char coll[512], path[800], hash[17];
	json_t *d = NULL;

	snprintf(coll, sizeof(coll), "/apis/apps/v1/namespaces/%s/deployments", x->ns);
	snprintf(path, sizeof(path), "%s/%s", coll, x->name);
	if (!t->existing && t->write == 0) {
		t->state = !t->selected	 ? NULL
			   : t->offline	 ? "Offline"
			   : !t->ready	 ? "NotReady"
					 : "Placed"; /* no replicas there */
		return;
	}
	if (!t->m || !t->ready || !t->synced) {
		t->state = t->offline  ? "Offline"
			   : !t->m     ? "Unusable"
			   : !t->ready ? "NotReady"
				       : "Syncing";
		snprintf(t->msg, sizeof(t->msg), "%s",
			 t->offline  ? "the cluster is offline; its replicas are placed elsewhere"
			 : !t->ready ? "the cluster is not ready; nothing is written to it"
				     : "waiting for the member's watch to list");
		return;
	}
	if (t->existing && t->write == 0) {
		json_t *opts = json_pack("{s:{s:s}}", "preconditions", "uid",
					 json_string_value(json_object_get(
						 json_object_get(t->existing, "metadata"), "uid"))
						 ?: "");
		int err = opts ? fed_member_do(t->m, "DELETE", path, opts, NULL, t->msg,
					       sizeof(t->msg))
			       : -ENOMEM;
		json_decref(opts);
		if (err && err != -ENOENT)
			fail(x, t, "Error", err);
		else
			t->state = "Deleted";
		return;
	}
	d = member_object(x, t, hash);
	if (!d) {
		snprintf(t->msg, sizeof(t->msg), "out of memory");
		fail(x, t, "Error", -ENOMEM);
		return;
	}
	if (!t->existing) {
		create(x, t, d, coll, path);
		goto out;
	}
	const json_t *emeta = json_object_get(t->existing, "metadata");
	const char *ehash = json_string_value(
		json_object_get(json_object_get(emeta, "annotations"), FED_ANN_HASH));
	if (ehash && !strcmp(ehash, hash) && t->cur == t->write) {
		t->state = t->write < t->want || t->write > t->want ? "Rebalancing" : "Synced";
		goto out;
	}
	json_object_set_new(json_object_get(d, "spec"), "replicas", json_integer(t->write));
	json_object_set(json_object_get(d, "metadata"), "resourceVersion",
			json_object_get(emeta, "resourceVersion"));
	int err = fed_member_do(t->m, "PUT", path, d, NULL, t->msg, sizeof(t->msg));
	if (err) {
		fail(x, t, err == -ECONFLICT ? "Conflict" : "Error", err);
		goto out;
	}
	t->state = t->write != t->want ? "Rebalancing" : "Synced";
	t->cur = t->write;
out:
	json_decref(d);
}

/* ---- status ------------------------------------------------------------------------------ */

static int write_status(struct fd_ctx *x)
{
	json_t *placement = json_array(), *clusters = json_array();
	int64_t replicas = 0, ready = 0, avail = 0;
	char now[32], msg[1024] = "";
	int err = 0, placed = 0;
	json_t *st = NULL;

	if (!placement || !clusters) {
		err = -ENOMEM;
		goto out;
	}
	ctrl_now(now);
	for (size_t i = 0; i < x->n; i++) {
		struct target *t = &x->t[i];
		if (t->want > 0)
			json_array_append_new(placement, json_pack("{s:s, s:i}", "cluster", t->name,
								   "replicas", t->want));
		placed += t->want;
		if (!t->state)
			continue;
		json_t *c = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "cluster", t->name, "state",
				      t->state, "replicas", (json_int_t)t->cur, "readyReplicas",
				      (json_int_t)t->ready_n, "availableReplicas",
				      (json_int_t)t->avail_n, "updatedReplicas",
				      (json_int_t)t->updated_n);
		if (c && t->msg[0] && strcmp(t->state, "Synced") && strcmp(t->state, "Placed"))
			json_object_set_new(c, "message", json_string(t->msg));
		json_array_append_new(clusters, c);
		if (t->ready && t->existing) {
			replicas += t->status_n;
			ready += t->ready_n;
			avail += t->avail_n;
		}
		if (t->msg[0] && strcmp(t->state, "Synced") && strcmp(t->state, "Placed") &&
		    strlen(msg) < sizeof(msg) - 2)
			snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "%s%s: %s",
				 msg[0] ? "; " : "", t->name, t->msg);
	}
	char pmsg[256];
	bool no_clusters = x->candidates == 0 && x->total > 0;
	if (no_clusters)
		snprintf(pmsg, sizeof(pmsg), "no ready cluster is selected");
	else if (x->unplaced)
		snprintf(pmsg, sizeof(pmsg), "%d of %d replicas fit in no selected cluster",
			 x->unplaced, x->total);
	else
		snprintf(pmsg, sizeof(pmsg), "%d replicas placed", placed);
	st = json_pack("{s:I, s:I, s:I, s:I, s:i, s:O, s:O, s:[o,o,o]}", "observedGeneration",
		       (json_int_t)jint(json_object_get(x->fd, "metadata"), "generation"),
		       "replicas", (json_int_t)replicas, "readyReplicas", (json_int_t)ready,
		       "availableReplicas", (json_int_t)avail, "unplacedReplicas", x->unplaced,
		       "placement", placement, "clusters", clusters, "conditions",
		       fed_condition(x->fd, "Placed", !no_clusters && !x->unplaced,
			    no_clusters	  ? "NoClusters"
			    : x->unplaced ? "Unplaced"
					  : "Placed",
			    pmsg, now),
		       fed_condition(x->fd, "Synced", !x->err && !x->rebalancing && !x->not_owned,
			    x->err	     ? "SyncFailed"
			    : x->rebalancing ? "Rebalancing"
			    : x->not_owned   ? "NotOwned"
					     : "Synced",
			    msg[0] ? msg : "every member holds what was placed", now),
		       fed_condition(x->fd, "NotOwned", x->not_owned, x->not_owned ? "NotOwned" : "Owned",
			    x->not_owned ? "a member holds a Deployment of this name that the "
					   "federation does not manage"
					 : "every member object is managed by this federation",
			    now));
	if (!st) {
		err = -ENOMEM;
		goto out;
	}
	const json_t *old = json_object_get(x->fd, "status");
	if (!old || !json_equal(old, st))
		err = fed_status_write(x->f, x->f->fd_kind, x->ns, x->name, st, msg, sizeof(msg));
out:
	json_decref(placement);
	json_decref(clusters);
	json_decref(st);
	return err;
}

/* ---- reconcile --------------------------------------------------------------------------- */

/* The FederatedDeployment is gone: delete what the members hold for it. */
static int clean_up(struct fed *f, const char *ns, const char *name)
{
	struct fd_ctx x = { .f = f, .ns = ns, .name = name };
	int err = load_targets(&x);
	for (size_t i = 0; !err && i < x.n; i++) {
		struct target *t = &x.t[i];
		if (!t->existing)
			continue;
		t->write = t->want = 0;
		sync_one(&x, t);
	}
	if (!err)
		err = x.err;
	for (size_t i = 0; i < x.n; i++) {
		json_decref(x.t[i].cluster);
		json_decref(x.t[i].existing);
		fed_member_put(x.t[i].m);
	}
	free(x.t);
	return err;
}

int fed_sync_reconcile(struct fed *f, const char *key)
{
	char ns[256], name[256];
	struct ctrl_obj *co = ctrl_get(f->fds, key);
	struct fd_ctx x = { .f = f, .ns = ns, .name = name };
	int err;

	ctrl_split_key(key, ns, sizeof(ns), name, sizeof(name));
	if (!co || co->deleting) {
		err = clean_up(f, ns, name);
		goto out;
	}
	x.fd = ctrl_obj_json(co);
	if (!x.fd) {
		err = -ENOMEM;
		goto out;
	}
	x.spec = json_object_get(x.fd, "spec");
	err = load_targets(&x);
	if (!err)
		err = place(&x);
	if (err)
		goto out;
	gate_scale_down(&x);
	for (size_t i = 0; i < x.n; i++)
		sync_one(&x, &x.t[i]);
	err = write_status(&x);
	if (!err)
		err = x.err;
	if (!err && x.not_owned) {
		char k[600];
		snprintf(k, sizeof(k), "d:%s", key);
		ctrl_queue_after(f->c, k, NOT_OWNED_RECHECK_MS);
	}
out:
	for (size_t i = 0; i < x.n; i++) {
		json_decref(x.t[i].cluster);
		json_decref(x.t[i].existing);
		fed_member_put(x.t[i].m);
	}
	free(x.t);
	json_decref(x.fd);
	if (co)
		ctrl_obj_unref(co);
	return err;
}
