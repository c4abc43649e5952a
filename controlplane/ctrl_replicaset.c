// SPDX-License-Identifier: Apache-2.0
/*
 * The ReplicaSet controller: keeps spec.replicas pods of the template running, as
 * Kubernetes' does. It claims pods (keeps those it controls and still selects, releases
 * those it no longer selects, adopts orphans it selects), creates the missing ones in
 * batches of 1, 2, 4, ..., each sent in parallel so that its writes share group commits
 * (and a template the API rejects costs one request, not hundreds), deletes the surplus
 * worst first (unscheduled, then pending, not ready, ready for the shortest time, restarted
 * most, newest), and writes status: replicas,
 * fullyLabeledReplicas, readyReplicas, availableReplicas (ready for minReadySeconds),
 * observedGeneration and a ReplicaFailure condition when pods cannot be created or deleted.
 *
 * The design choice to know: creations and deletions are recorded as expectations before
 * they are sent, and the ReplicaSet's pods are not counted again until the pod informer has
 * seen every one of them, so a reconcile that runs before its own writes are visible never
 * creates twice.
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

#define RS_BURST 500 /* pods created or deleted per reconcile at most */

struct rs_ctrl {
	struct ctrl_informer *rs, *pods;
	const struct api_kind *pod_kind, *rs_kind;
};

static struct ctrl_obj *owner_of(struct rs_ctrl *p, const struct ctrl_obj *o)
{
	return ctrl_controller_of(p->rs, "ReplicaSet", o);
}

static void queue_selecting(struct ctrl *c, struct rs_ctrl *p, const struct ctrl_obj *pod)
{
	struct ctrl_objs l = { 0 };
	if (ctrl_selecting(p->rs, pod->o->ns, ctrl_obj_labels(pod), &l) == 0)
		for (size_t i = 0; i < l.n; i++)
			ctrl_queue(c, l.v[i]->key);
	ctrl_objs_free(&l);
}

static void on_pod(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		   const struct ctrl_obj *old)
{
	struct rs_ctrl *p = ctrl_priv(c);
	struct ctrl_obj *rs = owner_of(p, now);

	if (ev == CTRL_MODIFIED) {
		/* A pod that changed hands: its former owner counts again too. */
		struct ctrl_obj *was = owner_of(p, old);
		if (was && (!rs || was != rs))
			ctrl_queue(c, was->key);
		ctrl_obj_unref(was);
	}
	if (rs) {
		if (ev == CTRL_ADDED)
			ctrl_creation_observed(c, rs->key);
		if (ev == CTRL_DELETED || (now->deleting && (ev == CTRL_ADDED || !old->deleting)))
			ctrl_deletion_observed(c, rs->key, now->key);
		ctrl_queue(c, rs->key);
		ctrl_obj_unref(rs);
	} else if (!now->controller && ev != CTRL_DELETED) {
		queue_selecting(c, p, now); /* an orphan someone may adopt */
	}
}

static int rs_init(struct ctrl *c)
{
	struct rs_ctrl *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	ctrl_set_priv(c, p);
	p->rs = ctrl_informer(c, "apps/v1", "ReplicaSet", CTRL_INDEX_SELECTORS);
	p->pods = ctrl_informer(c, "v1", "Pod", CTRL_INDEX_LABELS);
	p->pod_kind = api_kind_by_kind("v1", "Pod");
	p->rs_kind = api_kind_by_kind("apps/v1", "ReplicaSet");
	if (!p->rs || !p->pods || !p->pod_kind || !p->rs_kind)
		return -EINVAL;
	if (ctrl_on(c, p->rs, ctrl_on_owner) || ctrl_on(c, p->pods, on_pod))
		return -E2BIG;
	return 0;
}

static void rs_fini(struct ctrl *c)
{
	free(ctrl_priv(c));
}

/* ---- pods -------------------------------------------------------------------------------- */

static bool pod_active(const struct ctrl_obj *o)
{
	return !o->deleting && o->pod->phase != POD_SUCCEEDED && o->pod->phase != POD_FAILED;
}

static bool pod_available(const struct ctrl_pod *p, long min_ready, time_t now)
{
	if (!p->ready)
		return false;
	return min_ready <= 0 || !p->ready_since || now >= p->ready_since + min_ready;
}

static int phase_rank(enum ctrl_pod_phase ph)
{
	return ph == POD_PENDING ? 0 : ph == POD_UNKNOWN ? 1 : 2;
}

/* Which pod goes first when scaling down (Kubernetes' ActivePods order). */
static int delete_order(const void *x, const void *y)
{
	const struct ctrl_obj *a = *(struct ctrl_obj *const *)x, *b = *(struct ctrl_obj *const *)y;
	const struct ctrl_pod *pa = a->pod, *pb = b->pod;

	if (pa->scheduled != pb->scheduled)
		return pa->scheduled ? 1 : -1;
	if (phase_rank(pa->phase) != phase_rank(pb->phase))
		return phase_rank(pa->phase) - phase_rank(pb->phase);
	if (pa->ready != pb->ready)
		return pa->ready ? 1 : -1;
	if (pa->ready && pb->ready && pa->ready_since != pb->ready_since)
		return pa->ready_since > pb->ready_since ? -1 : 1;
	if (pa->restarts != pb->restarts)
		return pa->restarts > pb->restarts ? -1 : 1;
	if (a->created != b->created)
		return a->created > b->created ? -1 : 1;
	return strcmp(b->key, a->key);
}

/* The pod a template makes: its labels, annotations and spec, controlled by rs. */
static json_t *pod_from_template(const struct ctrl_obj *rs, const json_t *tmpl)
{
	const json_t *tmeta = json_object_get(tmpl, "metadata");
	char gen[300];
	json_t *refs = json_array(), *meta, *pod;

	snprintf(gen, sizeof(gen), "%s-", rs->o->name);
	if (!refs || json_array_append_new(
			     refs, ctrl_owner_ref("apps/v1", "ReplicaSet", rs->o->name, rs->uid))) {
		json_decref(refs);
		return NULL;
	}
	meta = json_pack("{s:s, s:o}", "generateName", gen, "ownerReferences", refs);
	if (!meta)
		return NULL;
	static const char *const copied[] = { "labels", "annotations", "finalizers", NULL };
	for (const char *const *k = copied; *k; k++) {
		json_t *v = json_object_get(tmeta, *k);
		if (v && json_object_set_new(meta, *k, json_deep_copy(v))) {
			json_decref(meta);
			return NULL;
		}
	}
	pod = json_pack("{s:s, s:s, s:o, s:O}", "apiVersion", "v1", "kind", "Pod", "metadata", meta,
			"spec", json_object_get(tmpl, "spec"));
	return pod;
}

/* A batch of creations or deletions, done in parallel. */
struct batch {
	struct ctrl *c;
	const struct ctrl_obj *rs;
	const char *path;	   /* creations: the pods' collection */
	const json_t *pod;	   /* creations: the pod to create */
	struct ctrl_obj **victims; /* deletions */
	pthread_mutex_t mu;
	int err;
	char msg[512];
};

static void batch_fail(struct batch *b, int e, const char *m)
{
	pthread_mutex_lock(&b->mu);
	if (!b->err) {
		b->err = e;
		snprintf(b->msg, sizeof(b->msg), "%s", m);
	}
	pthread_mutex_unlock(&b->mu);
}

static void create_one(void *arg, size_t i)
{
	struct batch *b = arg;
	char m[512];
	json_t *made = NULL;
	(void)i;
	int e = ctrl_write(b->c, "POST", b->path, b->pod, &made, m, sizeof(m));
	if (e) {
		ctrl_creation_observed(b->c, b->rs->key); /* not coming */
		batch_fail(b, e, m);
	}
	ctrl_event_created(b->c, b->rs, e, made, m);
	json_decref(made);
}

static void delete_one(void *arg, size_t i)
{
	struct batch *b = arg;
	struct rs_ctrl *p = ctrl_priv(b->c);
	const struct ctrl_obj *pod = b->victims[i];
	char path[1024], m[512];
	int e = ctrl_path(p->pod_kind, pod->o->ns, pod->o->name, NULL, path, sizeof(path));
	if (!e)
		e = ctrl_write(b->c, "DELETE", path, NULL, NULL, m, sizeof(m));
	else
		snprintf(m, sizeof(m), "%s", shoal_strerror(e));
	if (e) {
		ctrl_deletion_observed(b->c, b->rs->key, pod->key);
		if (e != -ENOENT)
			batch_fail(b, e, m);
	}
	ctrl_event_deleted(b->c, b->rs, e, pod->o->name, m);
}

/* Creates or deletes pods to reach replicas; msg gets the first failure. */
static int manage(struct ctrl *c, const struct ctrl_obj *rs, const json_t *obj,
		  struct ctrl_objs *active, long replicas, char *msg, size_t msglen,
		  const char **reason)
{
	struct rs_ctrl *p = ctrl_priv(c);
	long diff = (long)active->n - replicas;
	char path[1024];
	struct batch b = { .c = c, .rs = rs, .path = path };
	int err = 0;

	pthread_mutex_init(&b.mu, NULL);
	if (diff < 0) {
		long n = -diff < RS_BURST ? -diff : RS_BURST;
		json_t *pod = pod_from_template(
			rs, json_object_get(json_object_get(obj, "spec"), "template"));
		if (!pod || ctrl_path(p->pod_kind, rs->o->ns, NULL, NULL, path, sizeof(path))) {
			json_decref(pod);
			pthread_mutex_destroy(&b.mu);
			return pod ? -ENAMETOOLONG : -ENOMEM;
		}
		b.pod = pod;
		ctrl_expect_creations(c, rs->key, (int)n);
		/* batches of 1, 2, 4, ...: a template the API refuses costs one request */
		long done = 0;
		for (long batch = 1; done < n && !b.err; batch *= 2) {
			long k = batch < n - done ? batch : n - done;
			ctrl_parallel((size_t)k, create_one, &b);
			done += k;
		}
		for (; done < n; done++) /* the batches not sent are not expected either */
			ctrl_creation_observed(c, rs->key);
		json_decref(pod);
		err = b.err;
		if (err) {
			snprintf(msg, msglen, "%s", b.msg);
			*reason = "FailedCreate";
		}
		if (err == -EACCES)
			log_info("replicaset %s: cannot create pods: %s", rs->key, msg);
	} else if (diff > 0) {
		long n = diff < RS_BURST ? diff : RS_BURST;
		qsort(active->v, active->n, sizeof(active->v[0]), delete_order);
		for (long i = 0; i < n; i++)
			ctrl_expect_deletion(c, rs->key, active->v[i]->key);
		b.victims = active->v;
		ctrl_parallel((size_t)n, delete_one, &b);
		err = b.err;
		if (err) {
			snprintf(msg, msglen, "%s", b.msg);
			*reason = "FailedDelete";
		}
	}
	pthread_mutex_destroy(&b.mu);
	return err;
}

/* ---- status ------------------------------------------------------------------------------ */

/* True when every label of want is on have. */
static bool labels_cover(const json_t *have, const json_t *want)
{
	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)want, k, v) {
		const char *h = json_string_value(json_object_get(have, k));
		if (!h || !json_string_value(v) || strcmp(h, json_string_value(v)) != 0)
			return false;
	}
	return true;
}

/* Sets or clears the ReplicaFailure condition in conds (a new array). */
static json_t *failure_conditions(const json_t *old, const char *reason, const char *msg)
{
	json_t *out = json_array();
	size_t i;
	json_t *cnd;
	const json_t *had = NULL;

	json_array_foreach (old, i, cnd) {
		const char *type = json_string_value(json_object_get(cnd, "type"));
		if (type && strcmp(type, "ReplicaFailure") == 0)
			had = cnd;
		else
			json_array_append(out, cnd);
	}
	if (reason) {
		char now[32];
		const char *since = json_string_value(json_object_get(had, "lastTransitionTime"));
		ctrl_now(now);
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type",
						     "ReplicaFailure", "status", "True", "reason",
						     reason, "message", msg, "lastTransitionTime",
						     had && since ? since : now));
	}
	return out;
}

static int update_status(struct ctrl *c, const struct ctrl_obj *rs, const json_t *obj,
			 const struct ctrl_objs *active, long min_ready, const char *reason,
			 const char *msg, time_t now, int64_t *next_ms)
{
	struct rs_ctrl *p = ctrl_priv(c);
	const json_t *tlabels = json_object_get(
		json_object_get(json_object_get(json_object_get(obj, "spec"), "template"),
				"metadata"),
		"labels");
	const json_t *old = json_object_get(obj, "status");
	long full = 0, ready = 0, avail = 0;
	char path[1024];

	*next_ms = -1;
	for (size_t i = 0; i < active->n; i++) {
		const struct ctrl_obj *o = active->v[i];
		full += labels_cover(ctrl_obj_labels(o), tlabels);
		ready += o->pod->ready;
		if (pod_available(o->pod, min_ready, now)) {
			avail++;
		} else if (o->pod->ready) {
			/* Available once minReadySeconds have passed: look again then. */
			int64_t ms = (int64_t)(o->pod->ready_since + min_ready - now) * 1000 + 50;
			if (*next_ms < 0 || ms < *next_ms)
				*next_ms = ms;
		}
	}
	json_t *conds = failure_conditions(json_object_get(old, "conditions"), reason, msg);
	json_t *st = json_pack("{s:I, s:I, s:I, s:I, s:I}", "replicas", (json_int_t)active->n,
			       "fullyLabeledReplicas", (json_int_t)full, "readyReplicas",
			       (json_int_t)ready, "availableReplicas", (json_int_t)avail,
			       "observedGeneration", (json_int_t)rs->generation);
	if (!st || !conds) {
		json_decref(st);
		json_decref(conds);
		return -ENOMEM;
	}
	if (json_array_size(conds))
		json_object_set_new(st, "conditions", conds);
	else
		json_decref(conds);
	/* Unchanged status is not written again. */
	bool same = true;
	const char *k;
	json_t *v;
	json_object_foreach (st, k, v)
		same &= json_equal(v, json_object_get(old, k));
	same &= json_object_get(st, "conditions") ||
		!json_array_size(json_object_get(old, "conditions"));
	if (same) {
		json_decref(st);
		return 0;
	}
	if (!json_object_get(st, "conditions"))
		json_object_set_new(st, "conditions", json_null());
	json_t *patch = json_pack("{s:o}", "status", st);
	int err =
		patch ? ctrl_path(p->rs_kind, rs->o->ns, rs->o->name, "status", path, sizeof(path))
		      : -ENOMEM;
	if (!err)
		err = ctrl_write(c, "PATCH", path, patch, NULL, NULL, 0);
	json_decref(patch);
	return err == -ENOENT ? 0 : err;
}

/* ---- reconcile ------------------------------------------------------------------------- */

static int rs_reconcile(struct ctrl *c, const char *key)
{
	struct rs_ctrl *p = ctrl_priv(c);
	struct ctrl_obj *rs = ctrl_get(p->rs, key);
	struct ctrl_objs claimed = { 0 }, active = { 0 };
	char msg[512] = "";
	const char *reason = NULL;
	time_t now = time(NULL);
	int64_t next_ms;
	int err, merr = 0, serr;

	if (!rs) {
		ctrl_expectations_forget(c, key);
		return 0;
	}
	json_t *obj = ctrl_obj_json(rs);
	if (!obj) {
		ctrl_obj_unref(rs);
		return -ENOMEM;
	}
	const json_t *spec = json_object_get(obj, "spec");
	json_t *r = json_object_get(spec, "replicas");
	long replicas = r ? (long)json_integer_value(r) : 1;
	long min_ready = (long)json_integer_value(json_object_get(spec, "minReadySeconds"));
	bool synced = ctrl_expectations_met(c, key);

	err = ctrl_claim(c, p->pods, rs, "apps/v1", "ReplicaSet", &claimed);
	active.v = calloc(claimed.n + 1, sizeof(*active.v));
	if (!active.v) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < claimed.n; i++)
		if (pod_active(claimed.v[i])) {
			ctrl_obj_ref(claimed.v[i]);
			active.v[active.n++] = claimed.v[i];
		}
	active.cap = claimed.n + 1;
	if (synced && !err && !rs->deleting)
		merr = manage(c, rs, obj, &active, replicas, msg, sizeof(msg), &reason);
	serr = update_status(c, rs, obj, &active, min_ready, reason, msg, now, &next_ms);
	if (next_ms >= 0)
		ctrl_queue_after(c, key, next_ms);
	/* A namespace being deleted takes no new pods: no point retrying. */
	if (merr == -EACCES)
		merr = 0;
	err = err ? err : merr ? merr : serr;
out:
	ctrl_objs_free(&active);
	ctrl_objs_free(&claimed);
	json_decref(obj);
	ctrl_obj_unref(rs);
	return err;
}

const struct ctrl_def ctrl_replicaset = {
	.name = "replicaset",
	.workers = 2,
	.init = rs_init,
	.reconcile = rs_reconcile,
	.fini = rs_fini,
};
