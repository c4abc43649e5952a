// SPDX-License-Identifier: Apache-2.0
/*
 * The DaemonSet controller: one pod of the template on every node that should run it, as
 * Kubernetes' does.
 *
 * - A node should run the pod when its labels match the template's nodeSelector and required
 *   node affinity, and the pod tolerates its NoSchedule and NoExecute taints. Daemon pods
 *   carry Kubernetes' daemon tolerations (not-ready and unreachable NoExecute forever;
 *   disk-, memory- and pid-pressure and unschedulable NoSchedule), so a node's troubles do
 *   not evict them.
 * - Each pod is pinned to its node by required node affinity on metadata.name, and left to the
 *   scheduler to bind, like Kubernetes' daemon pods; pods on nodes that should not run them,
 *   extra pods on a node (all but the oldest) and failed pods are deleted.
 * - RollingUpdate: pods of an older template (label controller-revision-hash) are replaced
 *   node by node, never leaving more than maxUnavailable (int or percent of the nodes,
 *   rounded up; default 1) nodes without an available pod; unavailable old pods go first.
 *   OnDelete: old pods stay until someone deletes them.
 * - Status: desiredNumberScheduled, currentNumberScheduled, numberMisscheduled, numberReady,
 *   numberAvailable, numberUnavailable, updatedNumberScheduled, observedGeneration.
 *
 * The design choice to know: node events that cannot change where daemon pods run (a
 * heartbeat, usage figures) are dropped in the handler, by comparing the node's labels,
 * taints and schedulability, so 5,000 nodes' status updates do not reconcile every
 * DaemonSet all the time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_kinds.h"
#include "ctrl.h"
#include "hashmap.h"
#include "log.h"

#define HASH_LABEL "controller-revision-hash"
#define DS_BURST   500

struct ds_ctrl {
	struct ctrl_informer *ds, *pods, *nodes;
	const struct api_kind *pod_kind, *ds_kind;
};

static struct ctrl_obj *owner_of(struct ds_ctrl *p, const struct ctrl_obj *o)
{
	return ctrl_controller_of(p->ds, "DaemonSet", o);
}

static void queue_all(struct ctrl *c)
{
	struct ds_ctrl *p = ctrl_priv(c);
	struct ctrl_objs l = { 0 };
	if (ctrl_list(p->ds, NULL, &l) == 0)
		for (size_t i = 0; i < l.n; i++)
			ctrl_queue(c, l.v[i]->key);
	ctrl_objs_free(&l);
}

static void on_pod(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		   const struct ctrl_obj *old)
{
	struct ds_ctrl *p = ctrl_priv(c);
	struct ctrl_obj *d = owner_of(p, now);
	if (d) {
		if (ev == CTRL_ADDED)
			ctrl_creation_observed(c, d->key);
		if (ev == CTRL_DELETED || (now->deleting && (ev == CTRL_ADDED || !old->deleting)))
			ctrl_deletion_observed(c, d->key, now->key);
		ctrl_queue(c, d->key);
		ctrl_obj_unref(d);
	} else if (!now->controller && ev != CTRL_DELETED) {
		struct ctrl_objs l = { 0 };
		if (ctrl_selecting(p->ds, now->o->ns, ctrl_obj_labels(now), &l) == 0)
			for (size_t i = 0; i < l.n; i++)
				ctrl_queue(c, l.v[i]->key);
		ctrl_objs_free(&l);
	}
}

static void on_node(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		    const struct ctrl_obj *old)
{
	if (ev == CTRL_MODIFIED && json_equal(ctrl_obj_labels(now), ctrl_obj_labels(old)) &&
	    json_equal(now->node->taints, old->node->taints) &&
	    now->node->unschedulable == old->node->unschedulable)
		return;
	queue_all(c);
}

static int ds_init(struct ctrl *c)
{
	struct ds_ctrl *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	ctrl_set_priv(c, p);
	p->ds = ctrl_informer(c, "apps/v1", "DaemonSet", CTRL_INDEX_SELECTORS);
	p->pods = ctrl_informer(c, "v1", "Pod", CTRL_INDEX_LABELS);
	p->nodes = ctrl_informer(c, "v1", "Node", 0);
	p->pod_kind = api_kind_by_kind("v1", "Pod");
	p->ds_kind = api_kind_by_kind("apps/v1", "DaemonSet");
	if (!p->ds || !p->pods || !p->nodes || !p->pod_kind || !p->ds_kind)
		return -EINVAL;
	if (ctrl_on(c, p->ds, ctrl_on_owner) || ctrl_on(c, p->pods, on_pod) ||
	    ctrl_on(c, p->nodes, on_node))
		return -E2BIG;
	return 0;
}

static void ds_fini(struct ctrl *c)
{
	free(ctrl_priv(c));
}

/* ---- where daemon pods run ----------------------------------------------------------------- */

/* The tolerations every daemon pod gets, besides its template's. */
static json_t *daemon_tolerations(const json_t *tmpl_tols)
{
	static const struct {
		const char *key, *effect;
	} add[] = {
		{ "node.kubernetes.io/not-ready", "NoExecute" },
		{ "node.kubernetes.io/unreachable", "NoExecute" },
		{ "node.kubernetes.io/disk-pressure", "NoSchedule" },
		{ "node.kubernetes.io/memory-pressure", "NoSchedule" },
		{ "node.kubernetes.io/pid-pressure", "NoSchedule" },
		{ "node.kubernetes.io/unschedulable", "NoSchedule" },
	};
	json_t *out = json_is_array(tmpl_tols) ? json_deep_copy(tmpl_tols) : json_array();
	for (size_t i = 0; out && i < sizeof(add) / sizeof(add[0]); i++) {
		bool have = false;
		size_t j;
		json_t *t;
		json_array_foreach (out, j, t)
			have |= strcmp(json_string_value(json_object_get(t, "key")) ?: "",
				       add[i].key) == 0 &&
				strcmp(json_string_value(json_object_get(t, "effect")) ?: "",
				       add[i].effect) == 0;
		if (!have)
			json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "key", add[i].key,
							     "operator", "Exists", "effect",
							     add[i].effect));
	}
	return out;
}

static bool tolerated(const json_t *tols, const json_t *taint)
{
	const char *key = json_string_value(json_object_get(taint, "key")) ?: "";
	const char *value = json_string_value(json_object_get(taint, "value")) ?: "";
	const char *effect = json_string_value(json_object_get(taint, "effect")) ?: "";
	size_t i;
	json_t *t;
	json_array_foreach (tols, i, t) {
		const char *k = json_string_value(json_object_get(t, "key")) ?: "";
		const char *op = json_string_value(json_object_get(t, "operator")) ?: "Equal";
		const char *v = json_string_value(json_object_get(t, "value")) ?: "";
		const char *e = json_string_value(json_object_get(t, "effect")) ?: "";
		bool exists = strcmp(op, "Exists") == 0;
		if (*e && strcmp(e, effect) != 0)
			continue;
		if (*k ? strcmp(k, key) != 0 : !exists)
			continue;
		if (exists || strcmp(v, value) == 0)
			return true;
	}
	return false;
}

/* One nodeSelectorTerm: its expressions on labels, its fields on the node's name. */
static bool term_matches(const json_t *term, const struct ctrl_obj *node)
{
	const json_t *exprs = json_object_get(term, "matchExpressions");
	const json_t *fields = json_object_get(term, "matchFields");
	char err[128];
	size_t i;
	json_t *f;

	if (!json_array_size(exprs) && !json_array_size(fields))
		return false; /* an empty term matches nothing */
	if (json_array_size(exprs)) {
		struct selector *sel = NULL;
		json_t *ls = json_pack("{s:O}", "matchExpressions", exprs);
		bool ok = ls && !selector_from_json(ls, true, &sel, err, sizeof(err)) &&
			  selector_matches(sel, ctrl_obj_labels(node));
		selector_free(sel);
		json_decref(ls);
		if (!ok)
			return false;
	}
	json_array_foreach (fields, i, f) {
		const char *k = json_string_value(json_object_get(f, "key"));
		const char *op = json_string_value(json_object_get(f, "operator"));
		bool in = false;
		size_t j;
		json_t *v;
		if (!k || !op || strcmp(k, "metadata.name") != 0)
			return false;
		json_array_foreach (json_object_get(f, "values"), j, v)
			in |= strcmp(json_string_value(v) ?: "", node->o->name) == 0;
		if (strcmp(op, "In") == 0 ? !in : strcmp(op, "NotIn") == 0 ? in : true)
			return false;
	}
	return true;
}

static bool should_run(const json_t *pod_spec, const json_t *tols, const struct ctrl_obj *node)
{
	const char *k;
	json_t *v;
	json_object_foreach (json_object_get(pod_spec, "nodeSelector"), k, v) {
		const char *have = ctrl_obj_label(node, k);
		if (!have || !json_string_value(v) || strcmp(have, json_string_value(v)) != 0)
			return false;
	}
	const json_t *terms = json_object_get(
		json_object_get(
			json_object_get(json_object_get(pod_spec, "affinity"), "nodeAffinity"),
			"requiredDuringSchedulingIgnoredDuringExecution"),
		"nodeSelectorTerms");
	if (json_array_size(terms)) {
		bool any = false;
		size_t i;
		json_t *t;
		json_array_foreach (terms, i, t)
			any |= term_matches(t, node);
		if (!any)
			return false;
	}
	size_t i;
	json_t *t;
	json_array_foreach (node->node->taints, i, t) {
		const char *eff = json_string_value(json_object_get(t, "effect"));
		if (eff && (strcmp(eff, "NoSchedule") == 0 || strcmp(eff, "NoExecute") == 0) &&
		    !tolerated(tols, t))
			return false;
	}
	return true;
}

/* ---- pods -------------------------------------------------------------------------------- */

struct daemon {
	struct ctrl *c;
	struct ctrl_obj *rec;
	json_t *obj;
	const json_t *spec, *tmpl;
	json_t *tols;
	char hash[16];
	long min_ready;
	char msg[512];
};

static json_t *pod_for(struct daemon *d, const char *node)
{
	json_t *spec = json_deep_copy(json_object_get(d->tmpl, "spec"));
	json_t *meta = json_object();
	json_t *refs = json_array();
	char gen[300];
	if (!spec || !meta || !refs)
		goto err;
	snprintf(gen, sizeof(gen), "%s-", d->rec->o->name);
	json_t *labels =
		json_deep_copy(json_object_get(json_object_get(d->tmpl, "metadata"), "labels"));
	if (!labels)
		labels = json_object();
	json_object_set_new(labels, HASH_LABEL, json_string(d->hash));
	json_object_set_new(meta, "labels", labels);
	json_t *ann = json_object_get(json_object_get(d->tmpl, "metadata"), "annotations");
	if (ann)
		json_object_set_new(meta, "annotations", json_deep_copy(ann));
	json_object_set_new(meta, "generateName", json_string(gen));
	json_array_append_new(refs,
			      ctrl_owner_ref("apps/v1", "DaemonSet", d->rec->o->name, d->rec->uid));
	json_object_set_new(meta, "ownerReferences", refs);
	refs = NULL;
	/* pinned to its node; the scheduler binds it */
	json_t *aff = json_object_get(spec, "affinity");
	if (!json_is_object(aff)) {
		aff = json_object();
		json_object_set_new(spec, "affinity", aff);
	}
	json_object_set_new(aff, "nodeAffinity",
			    json_pack("{s:{s:[{s:[{s:s, s:s, s:[s]}]}]}}",
				      "requiredDuringSchedulingIgnoredDuringExecution",
				      "nodeSelectorTerms", "matchFields", "key", "metadata.name",
				      "operator", "In", "values", node));
	json_object_set(spec, "tolerations", d->tols);
	return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "v1", "kind", "Pod", "metadata",
			 meta, "spec", spec);
err:
	json_decref(spec);
	json_decref(meta);
	json_decref(refs);
	return NULL;
}

static int create_on(struct daemon *d, const char *node)
{
	struct ds_ctrl *p = ctrl_priv(d->c);
	char path[1024], m[512];
	json_t *pod = pod_for(d, node);
	int err = pod ? ctrl_path(p->pod_kind, d->rec->o->ns, NULL, NULL, path, sizeof(path))
		      : -ENOMEM;
	if (!err) {
		ctrl_expect_creations(d->c, d->rec->key, 1);
		json_t *made = NULL;
		err = ctrl_write(d->c, "POST", path, pod, &made, m, sizeof(m));
		if (err) {
			ctrl_creation_observed(d->c, d->rec->key);
			snprintf(d->msg, sizeof(d->msg), "%s", m);
		}
		ctrl_event_created(d->c, d->rec, err, made, m);
		json_decref(made);
	}
	json_decref(pod);
	return err;
}

static int delete_pod(struct daemon *d, const struct ctrl_obj *pod)
{
	struct ds_ctrl *p = ctrl_priv(d->c);
	char path[1024], m[512] = "";
	int err = ctrl_path(p->pod_kind, pod->o->ns, pod->o->name, NULL, path, sizeof(path));
	if (err)
		return err;
	ctrl_expect_deletion(d->c, d->rec->key, pod->key);
	err = ctrl_write(d->c, "DELETE", path, NULL, NULL, m, sizeof(m));
	if (err)
		ctrl_deletion_observed(d->c, d->rec->key, pod->key);
	ctrl_event_deleted(d->c, d->rec, err, pod->o->name, m);
	return err == -ENOENT ? 0 : err;
}

static bool available(const struct ctrl_pod *p, long min_ready, time_t now)
{
	return p->ready && (min_ready <= 0 || !p->ready_since || now >= p->ready_since + min_ready);
}

static bool is_current(const struct daemon *d, const struct ctrl_obj *pod)
{
	const char *h = ctrl_obj_label(pod, HASH_LABEL);
	return h && strcmp(h, d->hash) == 0;
}

/* The pods of one node, in creation order. */
struct on_node {
	struct ctrl_obj *v[8];
	size_t n;
	bool should;
	bool seen; /* the node exists */
};

static int by_created(const void *x, const void *y)
{
	const struct ctrl_obj *a = *(struct ctrl_obj *const *)x, *b = *(struct ctrl_obj *const *)y;
	if (a->created != b->created)
		return a->created < b->created ? -1 : 1;
	return strcmp(a->key, b->key);
}

/* ---- reconcile ------------------------------------------------------------------------- */

static void template_hash(const json_t *tmpl, char out[16])
{
	char *s = json_dumps(tmpl, JSON_COMPACT | JSON_SORT_KEYS);
	uint32_t h = 2166136261u;
	for (const char *q = s ? s : ""; *q; q++) {
		h ^= (unsigned char)*q;
		h *= 16777619u;
	}
	free(s);
	snprintf(out, 16, "%08x", h);
}

static long scaled_up(const json_t *v, long total, long dflt)
{
	if (json_is_integer(v))
		return (long)json_integer_value(v);
	if (!json_is_string(v))
		return dflt;
	long pct = strtol(json_string_value(v), NULL, 10);
	return (pct * total + 99) / 100;
}

static int ds_reconcile(struct ctrl *c, const char *key)
{
	struct ds_ctrl *p = ctrl_priv(c);
	struct daemon d = { .c = c };
	struct ctrl_objs claimed = { 0 }, nodes = { 0 };
	struct hashmap *by_node = NULL;
	struct on_node *slots = NULL;
	time_t now = time(NULL);
	int err = 0, first = 0;

	d.rec = ctrl_get(p->ds, key);
	if (!d.rec) {
		ctrl_expectations_forget(c, key);
		return 0;
	}
	d.obj = ctrl_obj_json(d.rec);
	if (!d.obj) {
		ctrl_obj_unref(d.rec);
		return -ENOMEM;
	}
	d.spec = json_object_get(d.obj, "spec");
	d.tmpl = json_object_get(d.spec, "template");
	d.min_ready = (long)json_integer_value(json_object_get(d.spec, "minReadySeconds"));
	d.tols =
		daemon_tolerations(json_object_get(json_object_get(d.tmpl, "spec"), "tolerations"));
	template_hash(d.tmpl, d.hash);
	const json_t *us = json_object_get(d.spec, "updateStrategy");
	const char *ustype = json_string_value(json_object_get(us, "type"));
	bool on_delete = ustype && strcmp(ustype, "OnDelete") == 0;
	if (!d.tols) {
		err = -ENOMEM;
		goto out;
	}

	err = ctrl_claim(c, p->pods, d.rec, "apps/v1", "DaemonSet", &claimed);
	if (!err)
		err = ctrl_list(p->nodes, NULL, &nodes);
	by_node = hashmap_new(nodes.n + claimed.n + 1);
	slots = calloc(nodes.n + claimed.n + 1, sizeof(*slots));
	if (!err && (!by_node || !slots))
		err = -ENOMEM;
	if (err)
		goto out;
	size_t nslots = 0;
	const json_t *pod_spec = json_object_get(d.tmpl, "spec");
	for (size_t i = 0; i < nodes.n; i++) {
		struct on_node *s = &slots[nslots++];
		s->seen = true;
		s->should = should_run(pod_spec, d.tols, nodes.v[i]);
		if (hashmap_put(by_node, nodes.v[i]->o->name, s, NULL)) {
			err = -ENOMEM;
			goto out;
		}
	}
	/* the pods by their node; failed ones go */
	for (size_t i = 0; i < claimed.n; i++) {
		struct ctrl_obj *pod = claimed.v[i];
		const char *n = pod->pod->target_node;
		if (pod->deleting || pod->pod->phase == POD_SUCCEEDED)
			continue;
		if (pod->pod->phase == POD_FAILED) {
			int e = delete_pod(&d, pod);
			first = first ? first : e;
			continue;
		}
		if (!n)
			n = "";
		struct on_node *s = hashmap_get(by_node, n);
		if (!s) {
			s = &slots[nslots++];
			if (hashmap_put(by_node, n, s, NULL)) {
				err = -ENOMEM;
				goto out;
			}
		}
		if (s->n < 8)
			s->v[s->n++] = pod;
	}
	long desired = 0, current = 0, misscheduled = 0, ready = 0, avail = 0, updated = 0;
	long unavailable_nodes = 0;
	for (size_t i = 0; i < nslots; i++) {
		struct on_node *s = &slots[i];
		if (s->n > 1)
			qsort(s->v, s->n, sizeof(s->v[0]), by_created);
		desired += s->should;
		if (!s->should) {
			misscheduled += s->n > 0;
			continue;
		}
		if (s->n) {
			current++;
			ready += s->v[0]->pod->ready;
			avail += available(s->v[0]->pod, d.min_ready, now);
			updated += is_current(&d, s->v[0]);
		}
		if (!s->n || !available(s->v[0]->pod, d.min_ready, now))
			unavailable_nodes++;
	}

	bool synced = ctrl_expectations_met(c, key);
	if (synced && !d.rec->deleting) {
		long max_unavail = scaled_up(
			json_object_get(json_object_get(us, "rollingUpdate"), "maxUnavailable"),
			desired, 1);
		if (max_unavail < 1)
			max_unavail = 1;
		long budget = max_unavail - unavailable_nodes;
		long created = 0;
		size_t it = 0;
		const char *node;
		void *v;
		while (hashmap_next(by_node, &it, &node, &v)) {
			struct on_node *s = v;
			int e = 0;
			if (!s->should || !s->seen) {
				/* not for this node (or no such node): its pods go */
				for (size_t i = 0; i < s->n && !e; i++)
					e = delete_pod(&d, s->v[i]);
			} else if (!s->n) {
				if (created < DS_BURST) {
					e = create_on(&d, node);
					created++;
				}
			} else {
				for (size_t i = 1; i < s->n && !e; i++) /* all but the oldest */
					e = delete_pod(&d, s->v[i]);
				const struct ctrl_obj *pod = s->v[0];
				if (!e && !on_delete && !is_current(&d, pod)) {
					/* replace: an unavailable old pod costs nothing; an available
					 * one only within maxUnavailable */
					if (!available(pod->pod, d.min_ready, now)) {
						e = delete_pod(&d, pod);
					} else if (budget > 0) {
						e = delete_pod(&d, pod);
						budget--;
					}
				}
			}
			if (e && !first)
				first = e;
		}
	}

	/* status */
	json_t *st = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "desiredNumberScheduled",
			       (json_int_t)desired, "currentNumberScheduled", (json_int_t)current,
			       "numberMisscheduled", (json_int_t)misscheduled, "numberReady",
			       (json_int_t)ready, "numberAvailable", (json_int_t)avail,
			       "numberUnavailable", (json_int_t)(desired - avail),
			       "updatedNumberScheduled", (json_int_t)updated, "observedGeneration",
			       (json_int_t)d.rec->generation);
	if (!st) {
		err = -ENOMEM;
		goto out;
	}
	const json_t *old = json_object_get(d.obj, "status");
	bool same = true;
	const char *k;
	json_t *val;
	json_object_foreach (st, k, val)
		same &= json_equal(val, json_object_get(old, k));
	if (!same) {
		char path[1024];
		json_t *patch = json_pack("{s:o}", "status", st);
		int e = patch ? ctrl_path(p->ds_kind, d.rec->o->ns, d.rec->o->name, "status", path,
					  sizeof(path))
			      : -ENOMEM;
		if (!e)
			e = ctrl_write(c, "PATCH", path, patch, NULL, NULL, 0);
		json_decref(patch);
		if (e && e != -ENOENT && !first)
			first = e;
	} else {
		json_decref(st);
	}
	/* minReadySeconds: look again when a ready pod becomes available */
	if (d.min_ready > 0)
		for (size_t i = 0; i < nslots; i++)
			if (slots[i].n && slots[i].v[0]->pod->ready &&
			    !available(slots[i].v[0]->pod, d.min_ready, now)) {
				ctrl_queue_after(c, key, (int64_t)d.min_ready * 1000 + 100);
				break;
			}
out:
	hashmap_free(by_node);
	free(slots);
	ctrl_objs_free(&claimed);
	ctrl_objs_free(&nodes);
	json_decref(d.tols);
	json_decref(d.obj);
	ctrl_obj_unref(d.rec);
	return err ? err : first;
}

const struct ctrl_def ctrl_daemonset = {
	.name = "daemonset",
	.workers = 1,
	.init = ds_init,
	.reconcile = ds_reconcile,
	.fini = ds_fini,
};
