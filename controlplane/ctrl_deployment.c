// SPDX-License-Identifier: Apache-2.0
/*
 * The Deployment controller: rolls a Deployment's pod template out through ReplicaSets, as
 * Kubernetes' does.
 *
 * - Each template gets a ReplicaSet named DEPLOYMENT-HASH, where HASH (also its
 *   pod-template-hash label, added to its selector and template) is a hash of the template
 *   and status.collisionCount; the ReplicaSet whose template equals the Deployment's is the
 *   new one, every other one it controls is old. ReplicaSets carry the revision
 *   (deployment.kubernetes.io/revision: the newest gets the highest, a template rolled back
 *   to gets a new one) and the replica counts the Deployment wanted of them
 *   (desired-replicas, max-replicas), which proportional scaling reads.
 * - RollingUpdate: the new ReplicaSet grows while the sum of all ReplicaSets' replicas stays
 *   within replicas + maxSurge; old ones shrink (unhealthy pods first) while the available
 *   pods stay at least replicas - maxUnavailable (both int or percent of replicas; surge
 *   rounds up, unavailability down; both 0 means maxUnavailable 1). Recreate: old
 *   ReplicaSets go to 0 and the new one is made only when none of their pods runs any more.
 * - spec.paused: scaling still applies, the template does not roll out until resumed.
 * - Status: replicas, updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas,
 *   observedGeneration, collisionCount, and the conditions Available (MinimumReplicasAvailable)
 *   and Progressing (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated,
 *   NewReplicaSetAvailable, DeploymentPaused, DeploymentResumed, and ProgressDeadlineExceeded
 *   when no progress was made for progressDeadlineSeconds).
 * - Old ReplicaSets scaled to 0 beyond revisionHistoryLimit are deleted, oldest revision first.
 *
 * The design choice to know: every step writes ReplicaSets conditionally on the
 * resourceVersion this reconcile read, and a ReplicaSet's name follows from its template, so
 * a reconcile that runs on a stale cache loses a race (and runs again) instead of scaling or
 * creating twice; the availability counted from an old ReplicaSet's status is capped at its
 * spec.replicas, so a status not yet updated after a scale-down never lets the rollout take
 * more pods away than maxUnavailable allows.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_kinds.h"
#include "ctrl.h"
#include "log.h"

#define HASH_LABEL   "pod-template-hash"
#define ANN_REVISION "deployment.kubernetes.io/revision"
#define ANN_DESIRED  "deployment.kubernetes.io/desired-replicas"
#define ANN_MAX	     "deployment.kubernetes.io/max-replicas"

struct dep_ctrl {
	struct ctrl_informer *deps, *rs, *pods;
	const struct api_kind *rs_kind, *dep_kind;
};

/* One ReplicaSet of the Deployment, as this reconcile sees and changes it. */
struct rsv {
	struct ctrl_obj *rec;
	json_t *obj;
	char name[256];
	long replicas; /* spec */
	long st_replicas, ready, available;
	long revision;
	bool has_desired;
	long desired;
	int64_t rv;
	bool gone; /* deleted by this reconcile */
};

/* What a reconcile of one Deployment works with. */
struct dep {
	struct ctrl *c;
	struct ctrl_obj *rec;
	json_t *obj;
	const json_t *spec, *tmpl;
	long replicas, min_ready, history, deadline;
	bool paused, recreate, has_deadline;
	long surge, unavail; /* resolved */
	struct rsv *rs;
	size_t nrs;
	struct rsv *new_rs; /* NULL: none yet */
	long collision;
	json_t *cond_progress; /* the Progressing condition to set (NULL: keep) */
};

/* ---- handlers ---------------------------------------------------------------------------- */

static struct ctrl_obj *owner_of(struct dep_ctrl *p, const struct ctrl_obj *o)
{
	return ctrl_controller_of(p->deps, "Deployment", o);
}

static void on_dep(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		   const struct ctrl_obj *old)
{
	(void)ev;
	(void)old;
	ctrl_queue(c, now->key);
}

static void on_rs(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		  const struct ctrl_obj *old)
{
	struct dep_ctrl *p = ctrl_priv(c);
	struct ctrl_obj *d = owner_of(p, now);
	if (ev == CTRL_MODIFIED) {
		struct ctrl_obj *was = owner_of(p, old);
		if (was && was != d)
			ctrl_queue(c, was->key);
		ctrl_obj_unref(was);
	}
	if (d) {
		ctrl_queue(c, d->key);
	} else if (!now->controller && ev != CTRL_DELETED) {
		struct ctrl_objs l = { 0 };
		if (ctrl_selecting(p->deps, now->o->ns, ctrl_obj_labels(now), &l) == 0)
			for (size_t i = 0; i < l.n; i++)
				ctrl_queue(c, l.v[i]->key);
		ctrl_objs_free(&l);
	}
	ctrl_obj_unref(d);
}

/* A pod of a Deployment's ReplicaSet is gone or finished: Recreate waits for that. */
static void on_pod(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		   const struct ctrl_obj *old)
{
	struct dep_ctrl *p = ctrl_priv(c);
	bool ended = ev == CTRL_DELETED ||
		     (ev == CTRL_MODIFIED &&
		      (now->pod->phase == POD_SUCCEEDED || now->pod->phase == POD_FAILED) &&
		      old->pod->phase != now->pod->phase);
	if (!ended || !now->controller || strcmp(now->controller->kind, "ReplicaSet") != 0)
		return;
	struct ctrl_obj *rs = ctrl_get_uid(p->rs, now->controller->uid);
	struct ctrl_obj *d = owner_of(p, rs);
	if (d)
		ctrl_queue(c, d->key);
	ctrl_obj_unref(d);
	ctrl_obj_unref(rs);
}

static int dep_init(struct ctrl *c)
{
	struct dep_ctrl *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	ctrl_set_priv(c, p);
	p->deps = ctrl_informer(c, "apps/v1", "Deployment", CTRL_INDEX_SELECTORS);
	p->rs = ctrl_informer(c, "apps/v1", "ReplicaSet", CTRL_INDEX_LABELS);
	p->pods = ctrl_informer(c, "v1", "Pod", 0);
	p->rs_kind = api_kind_by_kind("apps/v1", "ReplicaSet");
	p->dep_kind = api_kind_by_kind("apps/v1", "Deployment");
	if (!p->deps || !p->rs || !p->pods || !p->rs_kind || !p->dep_kind)
		return -EINVAL;
	if (ctrl_on(c, p->deps, on_dep) || ctrl_on(c, p->rs, on_rs) || ctrl_on(c, p->pods, on_pod))
		return -E2BIG;
	return 0;
}

static void dep_fini(struct ctrl *c)
{
	free(ctrl_priv(c));
}

/* ---- small pieces ------------------------------------------------------------------------- */

static long get_long(const json_t *o, const char *k, long dflt)
{
	const json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

static long ann_long(const json_t *obj, const char *k, bool *has)
{
	const char *s = json_string_value(json_object_get(
		json_object_get(json_object_get(obj, "metadata"), "annotations"), k));
	char *end;
	long v = s ? strtol(s, &end, 10) : 0;
	if (has)
		*has = s && *s && !*end;
	return s && *s && !*end ? v : 0;
}

/* An int-or-percent of total, rounded up or down (Kubernetes' GetScaledValueFromIntOrPercent). */
static long scaled(const json_t *v, long total, bool up, long dflt_pct)
{
	if (json_is_integer(v))
		return (long)json_integer_value(v);
	long pct = dflt_pct;
	if (json_is_string(v))
		pct = strtol(json_string_value(v), NULL, 10);
	double x = (double)pct * (double)total / 100.0;
	return up ? (long)ceil(x) : (long)floor(x);
}

/* Kubernetes' rand.SafeEncodeString alphabet. */
static const char alnum[] = "bcdfghjklmnpqrstvwxz2456789";

/* The pod-template-hash of a template: FNV-32a of its canonical JSON (and the collision
 * count), its decimal digits spelled in the alphabet above. */
static void template_hash(const json_t *tmpl, long collision, char out[16])
{
	char *s = json_dumps(tmpl, JSON_COMPACT | JSON_SORT_KEYS);
	uint32_t h = 2166136261u;
	char dec[16];

	for (const char *p = s ? s : ""; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 16777619u;
	}
	if (collision > 0) {
		uint32_t cc = (uint32_t)collision;
		for (int i = 0; i < 4; i++) {
			h ^= (cc >> (8 * i)) & 0xff;
			h *= 16777619u;
		}
	}
	free(s);
	snprintf(dec, sizeof(dec), "%u", h);
	size_t i;
	for (i = 0; dec[i]; i++)
		out[i] = alnum[(unsigned char)dec[i] % (sizeof(alnum) - 1)];
	out[i] = '\0';
}

/* A copy of tmpl without the pod-template-hash label. */
static json_t *without_hash(const json_t *tmpl)
{
	json_t *t = json_deep_copy(tmpl);
	json_t *labels = json_object_get(json_object_get(t, "metadata"), "labels");
	json_object_del(labels, HASH_LABEL);
	return t;
}

static bool equal_ignore_hash(const json_t *a, const json_t *b)
{
	json_t *x = without_hash(a), *y = without_hash(b);
	bool eq = x && y && json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return eq;
}

static const json_t *cond_in(const json_t *conds, const char *type);

static const json_t *cond_get(const json_t *status, const char *type)
{
	return cond_in(json_object_get(status, "conditions"), type);
}

static const json_t *cond_in(const json_t *conds, const char *type)
{
	size_t i;
	json_t *c;
	json_array_foreach (conds, i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

static json_t *condition(const char *type, const char *status, const char *reason, const char *msg,
			 const json_t *old)
{
	char now[32];
	ctrl_now(now);
	const char *ost = json_string_value(json_object_get(old, "status"));
	const char *since = json_string_value(json_object_get(old, "lastTransitionTime"));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type, "status", status,
			 "lastUpdateTime", now, "lastTransitionTime",
			 ost && since && strcmp(ost, status) == 0 ? since : now, "reason", reason,
			 "message", msg);
}

static int64_t obj_rv_of(const json_t *o)
{
	const char *s = json_string_value(
		json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
	return s ? strtoll(s, NULL, 10) : 0;
}

/* ---- writes ------------------------------------------------------------------------------ */

static int rs_path(struct dep *d, const char *name, char *buf, size_t len)
{
	struct dep_ctrl *p = ctrl_priv(d->c);
	return ctrl_path(p->rs_kind, d->rec->o->ns, name, NULL, buf, len);
}

/* Scales r to n, recording the Deployment's wanted counts on it. */
static int scale_rs(struct dep *d, struct rsv *r, long n)
{
	char path[1024], rv[32], desired[32], max[32];
	json_t *out = NULL;
	int err;

	bool ann_ok = r->has_desired && r->desired == d->replicas &&
		      ann_long(r->obj, ANN_MAX, NULL) == d->replicas + d->surge;
	if (r->replicas == n && ann_ok)
		return 0;
	snprintf(rv, sizeof(rv), "%lld", (long long)r->rv);
	snprintf(desired, sizeof(desired), "%ld", d->replicas);
	snprintf(max, sizeof(max), "%ld", d->replicas + d->surge);
	json_t *patch = json_pack("{s:{s:s, s:{s:s, s:s}}, s:{s:I}}", "metadata", "resourceVersion",
				  rv, "annotations", ANN_DESIRED, desired, ANN_MAX, max, "spec",
				  "replicas", (json_int_t)n);
	err = patch ? rs_path(d, r->name, path, sizeof(path)) : -ENOMEM;
	if (!err)
		err = ctrl_write(d->c, "PATCH", path, patch, &out, NULL, 0);
	json_decref(patch);
	if (err)
		return err;
	if (n != r->replicas) {
		log_info("deployment %s: scaled replica set %s from %ld to %ld", d->rec->key,
			 r->name, r->replicas, n);
		ctrl_event(d->c, d->rec, "Normal", "ScalingReplicaSet",
			   "Scaled %s replica set %s from %ld to %ld",
			   n > r->replicas ? "up" : "down", r->name, r->replicas, n);
	}
	r->replicas = n;
	r->has_desired = true;
	r->desired = d->replicas;
	r->rv = obj_rv_of(out);
	json_decref(r->obj);
	r->obj = out;
	return 0;
}

/* Deletes an old ReplicaSet (history cleanup), if it is still the version we read. */
static int delete_rs(struct dep *d, struct rsv *r)
{
	char path[1024], rv[32];
	snprintf(rv, sizeof(rv), "%lld", (long long)r->rv);
	json_t *opts = json_pack("{s:{s:s}}", "preconditions", "resourceVersion", rv);
	int err = opts ? rs_path(d, r->name, path, sizeof(path)) : -ENOMEM;
	if (!err)
		err = ctrl_write(d->c, "DELETE", path, opts, NULL, NULL, 0);
	json_decref(opts);
	if (!err) {
		log_info("deployment %s: deleted old replica set %s (revision %ld)", d->rec->key,
			 r->name, r->revision);
		r->gone = true;
	}
	return err == -ENOENT ? 0 : err;
}

/* The Deployment's annotations a ReplicaSet takes (not those of tools or of this
 * controller). */
static json_t *copied_annotations(const json_t *dobj)
{
	static const char *const skip[] = { "kubectl.kubernetes.io/last-applied-configuration",
					    "shoal.io/last-applied-configuration",
					    ANN_REVISION,
					    "deployment.kubernetes.io/revision-history",
					    ANN_DESIRED,
					    ANN_MAX,
					    "deprecated.deployment.rollback.to",
					    NULL };
	json_t *out = json_object();
	const char *k;
	json_t *v;
	json_object_foreach (json_object_get(json_object_get(dobj, "metadata"), "annotations"), k,
			     v) {
		bool skipped = false;
		for (const char *const *s = skip; *s && !skipped; s++)
			skipped = strcmp(*s, k) == 0;
		if (!skipped)
			json_object_set(out, k, v);
	}
	return out;
}

static struct rsv *rs_add(struct dep *d, json_t *obj)
{
	struct rsv *r = &d->rs[d->nrs++];
	memset(r, 0, sizeof(*r));
	r->obj = obj;
	snprintf(r->name, sizeof(r->name), "%s",
		 json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"))
			 ?: "");
	r->replicas = get_long(json_object_get(obj, "spec"), "replicas", 1);
	const json_t *st = json_object_get(obj, "status");
	r->st_replicas = get_long(st, "replicas", 0);
	r->ready = get_long(st, "readyReplicas", 0);
	r->available = get_long(st, "availableReplicas", 0);
	r->revision = ann_long(obj, ANN_REVISION, NULL);
	r->desired = ann_long(obj, ANN_DESIRED, &r->has_desired);
	r->rv = obj_rv_of(obj);
	return r;
}

static long max_old_revision(struct dep *d)
{
	long m = 0;
	for (size_t i = 0; i < d->nrs; i++)
		if (&d->rs[i] != d->new_rs && d->rs[i].revision > m)
			m = d->rs[i].revision;
	return m;
}

static long total_replicas(struct dep *d)
{
	long n = 0;
	for (size_t i = 0; i < d->nrs; i++)
		if (!d->rs[i].gone)
			n += d->rs[i].replicas;
	return n;
}

/* Replicas the new ReplicaSet may have now (Kubernetes' NewRSNewReplicas). */
static long new_rs_replicas(struct dep *d, long current_new)
{
	if (d->recreate)
		return d->replicas;
	long total = total_replicas(d), max_total = d->replicas + d->surge;
	if (total >= max_total)
		return current_new;
	long up = max_total - total;
	if (up > d->replicas - current_new)
		up = d->replicas - current_new;
	return current_new + (up > 0 ? up : 0);
}

static int set_dep_revision(struct dep *d, long revision)
{
	struct dep_ctrl *p = ctrl_priv(d->c);
	char path[1024], rv[32], rev[32];
	bool has;
	if (ann_long(d->obj, ANN_REVISION, &has) == revision && has)
		return 0;
	snprintf(rv, sizeof(rv), "%lld", (long long)d->rec->o->rev);
	snprintf(rev, sizeof(rev), "%ld", revision);
	json_t *patch = json_pack("{s:{s:s, s:{s:s}}}", "metadata", "resourceVersion", rv,
				  "annotations", ANN_REVISION, rev);
	int err = patch ? ctrl_path(p->dep_kind, d->rec->o->ns, d->rec->o->name, NULL, path,
				    sizeof(path))
			: -ENOMEM;
	if (!err)
		err = ctrl_write(d->c, "PATCH", path, patch, NULL, NULL, 0);
	json_decref(patch);
	return err;
}

static void set_progress(struct dep *d, const char *status, const char *reason, const char *msg)
{
	const json_t *old = cond_get(json_object_get(d->obj, "status"), "Progressing");
	json_decref(d->cond_progress);
	d->cond_progress = condition("Progressing", status, reason, msg, old);
}

/* Finds the new ReplicaSet (and brings its revision and annotations up to date); creates it
 * when create and there is none. */
static int ensure_new_rs(struct dep *d, bool create)
{
	long revision = max_old_revision(d) + 1;
	char path[1024], msg[600];
	int err;

	if (d->new_rs) {
		struct rsv *r = d->new_rs;
		json_t *ann = copied_annotations(d->obj);
		json_t *cur = json_object_get(json_object_get(r->obj, "metadata"), "annotations");
		bool changed = false;
		const char *k;
		json_t *v;
		if (!ann)
			return -ENOMEM;
		json_object_foreach (ann, k, v)
			changed |= !json_equal(v, json_object_get(cur, k));
		if (r->revision < revision) {
			char rev[32];
			snprintf(rev, sizeof(rev), "%ld", revision);
			json_object_set_new(ann, ANN_REVISION, json_string(rev));
			changed = true;
		}
		long mr = get_long(json_object_get(r->obj, "spec"), "minReadySeconds", 0);
		char rvs[32];
		snprintf(rvs, sizeof(rvs), "%lld", (long long)r->rv);
		json_t *patch = json_pack("{s:{s:s, s:o}}", "metadata", "resourceVersion", rvs,
					  "annotations", ann);
		if (patch && mr != d->min_ready) {
			json_object_set_new(
				patch, "spec",
				json_pack("{s:I}", "minReadySeconds", (json_int_t)d->min_ready));
			changed = true;
		}
		if (!patch)
			return -ENOMEM;
		if (changed) {
			json_t *out = NULL;
			err = rs_path(d, r->name, path, sizeof(path));
			if (!err)
				err = ctrl_write(d->c, "PATCH", path, patch, &out, NULL, 0);
			if (err) {
				json_decref(patch);
				return err;
			}
			json_decref(r->obj);
			r->obj = out;
			r->rv = obj_rv_of(out);
			r->revision = ann_long(out, ANN_REVISION, NULL);
		}
		json_decref(patch);
		if (d->has_deadline &&
		    !cond_get(json_object_get(d->obj, "status"), "Progressing")) {
			snprintf(msg, sizeof(msg), "Found new replica set \"%s\"", r->name);
			set_progress(d, "True", "FoundNewReplicaSet", msg);
		}
		return set_dep_revision(d, r->revision);
	}
	if (!create)
		return 0;

	char hash[16], name[320], rev[32], desired[32], max[32];
	template_hash(d->tmpl, d->collision, hash);
	snprintf(name, sizeof(name), "%s-%s", d->rec->o->name, hash);
	snprintf(rev, sizeof(rev), "%ld", revision);
	snprintf(desired, sizeof(desired), "%ld", d->replicas);
	snprintf(max, sizeof(max), "%ld", d->replicas + d->surge);
	json_t *tmpl = json_deep_copy(d->tmpl);
	json_t *sel = json_deep_copy(json_object_get(d->spec, "selector"));
	json_t *ann = copied_annotations(d->obj);
	json_t *refs = json_array();
	if (!tmpl || !sel || !ann || !refs) {
		json_decref(tmpl);
		json_decref(sel);
		json_decref(ann);
		json_decref(refs);
		return -ENOMEM;
	}
	json_t *tmeta = json_object_get(tmpl, "metadata");
	if (!json_is_object(tmeta)) {
		tmeta = json_object();
		json_object_set_new(tmpl, "metadata", tmeta);
	}
	json_t *tl = json_object_get(tmeta, "labels");
	if (!json_is_object(tl)) {
		tl = json_object();
		json_object_set_new(tmeta, "labels", tl);
	}
	json_object_set_new(tl, HASH_LABEL, json_string(hash));
	json_t *ml = json_object_get(sel, "matchLabels");
	if (!json_is_object(ml)) {
		ml = json_object();
		json_object_set_new(sel, "matchLabels", ml);
	}
	json_object_set_new(ml, HASH_LABEL, json_string(hash));
	json_object_set_new(ann, ANN_REVISION, json_string(rev));
	json_object_set_new(ann, ANN_DESIRED, json_string(desired));
	json_object_set_new(ann, ANN_MAX, json_string(max));
	json_array_append_new(
		refs, ctrl_owner_ref("apps/v1", "Deployment", d->rec->o->name, d->rec->uid));
	long n = new_rs_replicas(d, 0);
	json_t *body = json_pack("{s:s, s:s, s:{s:s, s:O, s:o, s:o}, s:{s:I, s:I, s:o, s:o}}",
				 "apiVersion", "apps/v1", "kind", "ReplicaSet", "metadata", "name",
				 name, "labels", tl, "annotations", ann, "ownerReferences", refs,
				 "spec", "replicas", (json_int_t)n, "minReadySeconds",
				 (json_int_t)d->min_ready, "selector", sel, "template", tmpl);
	json_t *out = NULL;
	err = body ? rs_path(d, NULL, path, sizeof(path)) : -ENOMEM;
	if (!err)
		err = ctrl_write(d->c, "POST", path, body, &out, msg, sizeof(msg));
	json_decref(body);
	if (err == -EEXIST) {
		/* Made by us a moment ago (the cache lags), or a template with the same hash. */
		json_t *have = NULL;
		err = rs_path(d, name, path, sizeof(path));
		if (!err)
			err = ctrl_write(d->c, "GET", path, NULL, &have, NULL, 0);
		if (err)
			return err;
		const json_t *hrefs =
			json_object_get(json_object_get(have, "metadata"), "ownerReferences");
		bool mine = false;
		size_t i;
		json_t *hr;
		json_array_foreach (hrefs, i, hr) {
			const char *u = json_string_value(json_object_get(hr, "uid"));
			mine |= u && strcmp(u, d->rec->uid) == 0 &&
				json_is_true(json_object_get(hr, "controller"));
		}
		if (mine &&
		    equal_ignore_hash(json_object_get(json_object_get(have, "spec"), "template"),
				      d->tmpl)) {
			d->new_rs = rs_add(d, have);
			return 0;
		}
		json_decref(have);
		d->collision++;
		log_info("deployment %s: replica set name %s is taken; collision count now %ld",
			 d->rec->key, name, d->collision);
		return -EEXIST;
	}
	if (err) {
		/* The template cannot make a ReplicaSet: say so in the Progressing condition. */
		char why[1024];
		snprintf(why, sizeof(why), "Failed to create new replica set \"%s\": %s", name,
			 msg);
		set_progress(d, "False", "ReplicaSetCreateError", why);
		ctrl_event(d->c, d->rec, "Warning", "FailedCreate", "%s", why);
		return err;
	}
	d->new_rs = rs_add(d, out);
	log_info("deployment %s: created replica set %s (revision %ld) with %ld replicas",
		 d->rec->key, name, revision, n);
	ctrl_event(d->c, d->rec, "Normal", "ScalingReplicaSet", "Scaled up replica set %s from 0 to %ld",
		   name, n);
	if (d->has_deadline) {
		snprintf(msg, sizeof(msg), "Created new replica set \"%s\"", name);
		set_progress(d, "True", "NewReplicaSetCreated", msg);
	}
	return set_dep_revision(d, revision);
}

/* ---- rolling update ---------------------------------------------------------------------- */

static long avail_of(const struct rsv *r)
{
	return r->available < r->replicas ? r->available : r->replicas;
}

static int reconcile_new(struct dep *d, bool *scaled)
{
	struct rsv *r = d->new_rs;
	*scaled = false;
	if (!r || r->replicas == d->replicas)
		return 0;
	long n = r->replicas > d->replicas ? d->replicas : new_rs_replicas(d, r->replicas);
	if (n == r->replicas)
		return 0;
	*scaled = true;
	return scale_rs(d, r, n);
}

static int reconcile_old(struct dep *d, bool *scaled)
{
	long old_pods = 0, all_pods = total_replicas(d), cleaned = 0, down = 0;
	int err = 0;

	*scaled = false;
	for (size_t i = 0; i < d->nrs; i++)
		if (&d->rs[i] != d->new_rs && !d->rs[i].gone)
			old_pods += d->rs[i].replicas;
	if (!old_pods)
		return 0;
	long max_unavail = d->unavail < d->replicas ? d->unavail : d->replicas;
	long min_available = d->replicas - max_unavail;
	long new_unavail = d->new_rs ? d->new_rs->replicas - avail_of(d->new_rs) : 0;
	long max_down = all_pods - min_available - new_unavail;
	if (max_down <= 0)
		return 0;
	/* Pods that are not available go first: taking them costs no availability. */
	for (size_t i = 0; i < d->nrs && !err && cleaned < max_down; i++) {
		struct rsv *r = &d->rs[i];
		if (r == d->new_rs || r->gone || !r->replicas || avail_of(r) == r->replicas)
			continue;
		long n = r->replicas - avail_of(r);
		if (n > max_down - cleaned)
			n = max_down - cleaned;
		err = scale_rs(d, r, r->replicas - n);
		cleaned += n;
	}
	if (err)
		return err;
	long available = 0;
	for (size_t i = 0; i < d->nrs; i++)
		if (!d->rs[i].gone)
			available += avail_of(&d->rs[i]);
	if (available > min_available) {
		long want = available - min_available;
		for (size_t i = 0; i < d->nrs && !err && down < want; i++) {
			struct rsv *r = &d->rs[i];
			if (r == d->new_rs || r->gone || !r->replicas)
				continue;
			long n = r->replicas < want - down ? r->replicas : want - down;
			err = scale_rs(d, r, r->replicas - n);
			down += n;
		}
	}
	*scaled = cleaned + down > 0;
	return err;
}

/* ---- scaling (paused, or replicas changed) ------------------------------------------------ */

static int by_size_newer(const void *x, const void *y)
{
	const struct rsv *a = *(struct rsv *const *)x, *b = *(struct rsv *const *)y;
	if (a->replicas != b->replicas)
		return a->replicas > b->replicas ? -1 : 1;
	return a->rec && b->rec && a->rec->created != b->rec->created
		       ? (a->rec->created > b->rec->created ? -1 : 1)
		       : strcmp(b->name, a->name);
}

static int by_size_older(const void *x, const void *y)
{
	const struct rsv *a = *(struct rsv *const *)x, *b = *(struct rsv *const *)y;
	if (a->replicas != b->replicas)
		return a->replicas > b->replicas ? -1 : 1;
	return a->rec && b->rec && a->rec->created != b->rec->created
		       ? (a->rec->created < b->rec->created ? -1 : 1)
		       : strcmp(a->name, b->name);
}

static bool scaling_event(struct dep *d)
{
	for (size_t i = 0; i < d->nrs; i++) {
		const struct rsv *r = &d->rs[i];
		if (!r->gone && r->replicas > 0 && r->has_desired && r->desired != d->replicas)
			return true;
	}
	return false;
}

/* Kubernetes' scale(): the one active ReplicaSet takes replicas; else proportionally. */
static int scale(struct dep *d)
{
	struct rsv *active[64];
	size_t na = 0;
	int err = 0;

	for (size_t i = 0; i < d->nrs && na < 64; i++)
		if (!d->rs[i].gone && d->rs[i].replicas > 0)
			active[na++] = &d->rs[i];
	if (na <= 1) {
		struct rsv *r = na ? active[0] : d->new_rs;
		if (!r) /* the newest old one */
			for (size_t i = 0; i < d->nrs; i++)
				if (!d->rs[i].gone)
					r = &d->rs[i];
		if (!r || r->replicas == d->replicas)
			return 0;
		return scale_rs(d, r, d->replicas);
	}
	struct rsv *nr = d->new_rs;
	if (nr && nr->replicas == d->replicas && nr->has_desired && nr->desired == d->replicas &&
	    nr->available == d->replicas) {
		for (size_t i = 0; i < na && !err; i++)
			if (active[i] != nr)
				err = scale_rs(d, active[i], 0);
		return err;
	}
	if (d->recreate)
		return 0;
	long all = 0;
	for (size_t i = 0; i < na; i++)
		all += active[i]->replicas;
	long allowed = d->replicas > 0 ? d->replicas + d->surge : 0;
	long to_add = allowed - all, added = 0;
	long size[64];
	qsort(active, na, sizeof(active[0]), to_add > 0 ? by_size_newer : by_size_older);
	long status_replicas = get_long(json_object_get(d->obj, "status"), "replicas", 0);
	for (size_t i = 0; i < na; i++) {
		struct rsv *r = active[i];
		long prop = 0;
		if (to_add && to_add != added) {
			long fraction;
			if (d->replicas == 0) {
				fraction = -r->replicas;
			} else {
				bool has;
				long annotated = ann_long(r->obj, ANN_MAX, &has);
				if (!has || annotated <= 0)
					annotated = status_replicas > 0 ? status_replicas : all;
				double sz = (double)r->replicas * (double)(d->replicas + d->surge) /
					    (double)annotated;
				fraction = lround(sz) - r->replicas;
			}
			long left = to_add - added;
			prop = to_add > 0 ? (fraction < left ? fraction : left)
					  : (fraction > left ? fraction : left);
		}
		size[i] = r->replicas + prop;
		added += prop;
	}
	if (na) {
		size[0] += to_add - added;
		if (size[0] < 0)
			size[0] = 0;
	}
	for (size_t i = 0; i < na && !err; i++)
		err = scale_rs(d, active[i], size[i]);
	return err;
}

/* ---- history ---------------------------------------------------------------------------- */

static int by_revision(const void *x, const void *y)
{
	const struct rsv *a = *(struct rsv *const *)x, *b = *(struct rsv *const *)y;
	return a->revision < b->revision ? -1 : a->revision > b->revision;
}

/* Old ReplicaSets at 0 beyond revisionHistoryLimit go, oldest revision first. */
static int cleanup(struct dep *d)
{
	struct rsv *cl[256];
	size_t n = 0;
	int err = 0;

	if (d->history < 0)
		return 0;
	for (size_t i = 0; i < d->nrs && n < 256; i++) {
		struct rsv *r = &d->rs[i];
		const json_t *st = json_object_get(r->obj, "status");
		if (r == d->new_rs || r->gone || r->rec->deleting || r->replicas ||
		    r->st_replicas || get_long(st, "observedGeneration", 0) < r->rec->generation)
			continue;
		cl[n++] = r;
	}
	if ((long)n <= d->history)
		return 0;
	qsort(cl, n, sizeof(cl[0]), by_revision);
	for (size_t i = 0; i < n - (size_t)d->history && !err; i++)
		err = delete_rs(d, cl[i]);
	return err;
}

/* ---- status ------------------------------------------------------------------------------ */

/* Puts cond into conds in place of its type's condition, unless that has the same status and
 * reason (its times then stay). */
static void set_cond(json_t *conds, json_t *cond)
{
	const char *type = json_string_value(json_object_get(cond, "type"));
	size_t i;
	json_t *c;
	json_array_foreach (conds, i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		if (!t || strcmp(t, type) != 0)
			continue;
		if (json_equal(json_object_get(c, "status"), json_object_get(cond, "status")) &&
		    json_equal(json_object_get(c, "reason"), json_object_get(cond, "reason")) &&
		    json_equal(json_object_get(c, "message"), json_object_get(cond, "message"))) {
			json_decref(cond);
			return;
		}
		json_array_set_new(conds, i, cond);
		return;
	}
	json_array_append_new(conds, cond);
}

static void del_cond(json_t *conds, const char *type)
{
	size_t i;
	json_t *c;
	json_array_foreach (conds, i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t && strcmp(t, type) == 0) {
			json_array_remove(conds, i);
			return;
		}
	}
}

/* Computes and writes the status; rollout: also the progress of the rollout. */
static int update_status(struct dep *d, bool rollout)
{
	struct dep_ctrl *p = ctrl_priv(d->c);
	const json_t *old = json_object_get(d->obj, "status");
	long replicas = 0, ready = 0, available = 0, spec_total = 0;
	const json_t *failure = NULL;
	char path[1024], msg[600];

	for (size_t i = 0; i < d->nrs; i++) {
		const struct rsv *r = &d->rs[i];
		if (r->gone)
			continue;
		replicas += r->st_replicas;
		ready += r->ready;
		available += r->available;
		spec_total += r->replicas;
		const json_t *f = cond_get(json_object_get(r->obj, "status"), "ReplicaFailure");
		if (f && !failure &&
		    strcmp(json_string_value(json_object_get(f, "status")) ?: "", "True") == 0)
			failure = f;
	}
	if (available > replicas)
		available = replicas; /* statuses read at different times */
	if (ready > replicas)
		ready = replicas;
	if (available > ready)
		available = ready;
	long updated = d->new_rs ? d->new_rs->st_replicas : 0;
	if (updated > replicas)
		updated = replicas;
	long unavailable = spec_total - available > 0 ? spec_total - available : 0;
	json_t *conds = json_deep_copy(json_object_get(old, "conditions"));
	if (!json_is_array(conds)) {
		json_decref(conds);
		conds = json_array();
	}
	if (!conds)
		return -ENOMEM;
	long max_unavail = d->recreate ? 0 : d->unavail < d->replicas ? d->unavail : d->replicas;
	const json_t *oa = cond_get(old, "Available");
	if (available >= d->replicas - max_unavail)
		set_cond(conds, condition("Available", "True", "MinimumReplicasAvailable",
					  "Deployment has minimum availability.", oa));
	else
		set_cond(conds, condition("Available", "False", "MinimumReplicasUnavailable",
					  "Deployment does not have minimum availability.", oa));
	if (d->cond_progress) {
		set_cond(conds, json_incref(d->cond_progress));
	}
	const char *nname = d->new_rs ? d->new_rs->name : "";
	int64_t requeue_ms = -1;
	if (rollout && !d->has_deadline) {
		del_cond(conds, "Progressing");
	} else if (rollout) {
		const json_t *cur = cond_in(conds, "Progressing");
		const char *reason = json_string_value(json_object_get(cur, "reason"));
		bool complete = updated == d->replicas && replicas == d->replicas &&
				available == d->replicas;
		bool done_before = replicas == updated && reason &&
				   strcmp(reason, "NewReplicaSetAvailable") == 0;
		long o_upd = get_long(old, "updatedReplicas", 0),
		     o_rep = get_long(old, "replicas", 0);
		bool progressed = updated > o_upd || replicas - updated < o_rep - o_upd ||
				  ready > get_long(old, "readyReplicas", 0) ||
				  available > get_long(old, "availableReplicas", 0);
		time_t since =
			ctrl_parse_time(json_string_value(json_object_get(cur, "lastUpdateTime")));
		time_t now = time(NULL);
		if (done_before) {
			/* complete: nothing to watch */
		} else if (complete) {
			snprintf(msg, sizeof(msg), "ReplicaSet \"%s\" has successfully progressed.",
				 nname);
			set_cond(conds, condition("Progressing", "True", "NewReplicaSetAvailable",
						  msg, cur));
		} else if (progressed || !cur) {
			snprintf(msg, sizeof(msg), "ReplicaSet \"%s\" is progressing.", nname);
			json_t *c = condition("Progressing", "True", "ReplicaSetUpdated", msg, cur);
			/* progress moves lastUpdateTime (the deadline counts from it) */
			del_cond(conds, "Progressing");
			json_array_append_new(conds, c);
			requeue_ms = (int64_t)d->deadline * 1000 + 500;
		} else if (reason && strcmp(reason, "ProgressDeadlineExceeded") != 0 && since &&
			   since + d->deadline < now) {
			snprintf(msg, sizeof(msg), "ReplicaSet \"%s\" has timed out progressing.",
				 nname);
			set_cond(conds, condition("Progressing", "False",
						  "ProgressDeadlineExceeded", msg, cur));
			log_info("deployment %s: %s", d->rec->key, msg);
		} else if (reason && strcmp(reason, "ProgressDeadlineExceeded") != 0 && since) {
			requeue_ms = ((int64_t)(since + d->deadline - now) + 1) * 1000;
		}
	}
	if (failure) {
		json_t *f = json_deep_copy(failure);
		if (f) {
			json_object_del(f, "lastUpdateTime");
			set_cond(conds, f);
		}
	} else {
		del_cond(conds, "ReplicaFailure");
	}
	json_t *st = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "observedGeneration",
			       (json_int_t)d->rec->generation, "replicas", (json_int_t)replicas,
			       "updatedReplicas", (json_int_t)updated, "readyReplicas",
			       (json_int_t)ready, "availableReplicas", (json_int_t)available,
			       "unavailableReplicas", (json_int_t)unavailable);
	if (!st) {
		json_decref(conds);
		return -ENOMEM;
	}
	if (d->collision > 0)
		json_object_set_new(st, "collisionCount", json_integer(d->collision));
	json_object_set_new(st, "conditions", conds);
	if (requeue_ms > 0)
		ctrl_queue_after(d->c, d->rec->key, requeue_ms);
	/* Unchanged status is not written again. */
	bool same = true;
	const char *k;
	json_t *v;
	json_object_foreach (st, k, v)
		same &= json_equal(v, json_object_get(old, k));
	if (same) {
		json_decref(st);
		return 0;
	}
	json_t *patch = json_pack("{s:o}", "status", st);
	int err = patch ? ctrl_path(p->dep_kind, d->rec->o->ns, d->rec->o->name, "status", path,
				    sizeof(path))
			: -ENOMEM;
	if (!err)
		err = ctrl_write(d->c, "PATCH", path, patch, NULL, NULL, 0);
	json_decref(patch);
	return err == -ENOENT ? 0 : err;
}

/* ---- the strategies ------------------------------------------------------------------------ */

static bool complete(struct dep *d)
{
	long replicas = 0, available = 0;
	for (size_t i = 0; i < d->nrs; i++)
		if (!d->rs[i].gone) {
			replicas += d->rs[i].st_replicas;
			available += d->rs[i].available;
		}
	return d->new_rs && d->new_rs->st_replicas == d->replicas && replicas == d->replicas &&
	       available >= d->replicas;
}

static int rollout_rolling(struct dep *d)
{
	bool scaled;
	int err = ensure_new_rs(d, true);
	if (!err)
		err = reconcile_new(d, &scaled);
	if (!err && !scaled)
		err = reconcile_old(d, &scaled);
	if (!err && !scaled && complete(d))
		err = cleanup(d);
	int serr = update_status(d, true);
	return err ? err : serr;
}

/* Whether a pod of an old ReplicaSet still runs (or is still stopping). */
static bool old_pods_running(struct dep *d)
{
	struct dep_ctrl *p = ctrl_priv(d->c);
	bool running = false;
	for (size_t i = 0; i < d->nrs && !running; i++) {
		struct ctrl_objs pods = { 0 };
		if (&d->rs[i] == d->new_rs || d->rs[i].gone)
			continue;
		if (ctrl_owned(p->pods, d->rs[i].rec->uid, &pods)) {
			running = true; /* cannot tell: wait */
			break;
		}
		for (size_t j = 0; j < pods.n && !running; j++)
			running = pods.v[j]->pod->phase != POD_SUCCEEDED &&
				  pods.v[j]->pod->phase != POD_FAILED;
		ctrl_objs_free(&pods);
	}
	return running;
}

static int rollout_recreate(struct dep *d)
{
	bool scaled = false;
	int err = ensure_new_rs(d, false);
	for (size_t i = 0; i < d->nrs && !err; i++) {
		struct rsv *r = &d->rs[i];
		if (r == d->new_rs || r->gone || !r->replicas)
			continue;
		err = scale_rs(d, r, 0);
		scaled = true;
	}
	if (!err && !scaled && !old_pods_running(d)) {
		if (!d->new_rs)
			err = ensure_new_rs(d, true);
		if (!err && d->new_rs && d->new_rs->replicas != d->replicas)
			err = scale_rs(d, d->new_rs, d->replicas);
		if (!err && complete(d))
			err = cleanup(d);
	}
	int serr = update_status(d, true);
	return err ? err : serr;
}

/* Paused, or a change of replicas alone: scale, no rollout. */
static int sync_only(struct dep *d)
{
	int err = ensure_new_rs(d, false);
	if (!err)
		err = scale(d);
	if (!err && d->paused)
		err = cleanup(d);
	int serr = update_status(d, false);
	return err ? err : serr;
}

/* ---- reconcile ------------------------------------------------------------------------- */

static int by_created(const void *x, const void *y)
{
	const struct rsv *a = x, *b = y;
	if (a->rec->created != b->rec->created)
		return a->rec->created < b->rec->created ? -1 : 1;
	return strcmp(a->name, b->name);
}

static int dep_reconcile(struct ctrl *c, const char *key)
{
	struct dep_ctrl *p = ctrl_priv(c);
	struct dep d = { .c = c };
	struct ctrl_objs claimed = { 0 };
	int err;

	d.rec = ctrl_get(p->deps, key);
	if (!d.rec)
		return 0;
	d.obj = ctrl_obj_json(d.rec);
	if (!d.obj) {
		ctrl_obj_unref(d.rec);
		return -ENOMEM;
	}
	d.spec = json_object_get(d.obj, "spec");
	d.tmpl = json_object_get(d.spec, "template");
	d.replicas = get_long(d.spec, "replicas", 1);
	d.min_ready = get_long(d.spec, "minReadySeconds", 0);
	d.history = get_long(d.spec, "revisionHistoryLimit", -1);
	d.deadline = get_long(d.spec, "progressDeadlineSeconds", -1);
	d.has_deadline = d.deadline >= 0 && d.deadline < INT_MAX;
	d.paused = json_is_true(json_object_get(d.spec, "paused"));
	const json_t *strategy = json_object_get(d.spec, "strategy");
	const char *type = json_string_value(json_object_get(strategy, "type"));
	d.recreate = type && strcmp(type, "Recreate") == 0;
	if (!d.recreate) {
		const json_t *ru = json_object_get(strategy, "rollingUpdate");
		d.surge = scaled(json_object_get(ru, "maxSurge"), d.replicas, true, 25);
		d.unavail = scaled(json_object_get(ru, "maxUnavailable"), d.replicas, false, 25);
		if (d.surge == 0 && d.unavail == 0)
			d.unavail = 1;
	}
	d.collision = get_long(json_object_get(d.obj, "status"), "collisionCount", 0);

	err = ctrl_claim(c, p->rs, d.rec, "apps/v1", "Deployment", &claimed);
	d.rs = calloc(claimed.n + 1, sizeof(*d.rs));
	if (!d.rs) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < claimed.n; i++) {
		json_t *o = ctrl_obj_json(claimed.v[i]);
		if (!o) {
			err = -ENOMEM;
			goto out;
		}
		struct rsv *r = rs_add(&d, o);
		r->rec = claimed.v[i];
		ctrl_obj_ref(r->rec);
	}
	if (d.nrs)
		qsort(d.rs, d.nrs, sizeof(*d.rs), by_created);
	for (size_t i = 0; i < d.nrs && !d.new_rs; i++)
		if (equal_ignore_hash(
			    json_object_get(json_object_get(d.rs[i].obj, "spec"), "template"),
			    d.tmpl))
			d.new_rs = &d.rs[i];
	if (err)
		goto out;

	const json_t *pc = cond_get(json_object_get(d.obj, "status"), "Progressing");
	const char *preason = json_string_value(json_object_get(pc, "reason"));
	if (d.rec->deleting) {
		err = update_status(&d, false);
	} else if (d.paused) {
		if (d.has_deadline && (!preason || strcmp(preason, "DeploymentPaused") != 0))
			set_progress(&d, "Unknown", "DeploymentPaused", "Deployment is paused");
		err = sync_only(&d);
	} else {
		if (d.has_deadline && preason && strcmp(preason, "DeploymentPaused") == 0)
			set_progress(&d, "Unknown", "DeploymentResumed", "Deployment is resumed");
		if (scaling_event(&d))
			err = sync_only(&d);
		else if (d.recreate)
			err = rollout_recreate(&d);
		else
			err = rollout_rolling(&d);
	}
	if (err == -EEXIST) {
		/* A ReplicaSet name taken: the new collision count gives another. */
		struct dep_ctrl *pp = ctrl_priv(c);
		char path[1024];
		json_t *patch =
			json_pack("{s:{s:I}}", "status", "collisionCount", (json_int_t)d.collision);
		if (patch && !ctrl_path(pp->dep_kind, d.rec->o->ns, d.rec->o->name, "status", path,
					sizeof(path)))
			err = ctrl_write(c, "PATCH", path, patch, NULL, NULL, 0);
		json_decref(patch);
		if (!err)
			err = -EAGAIN;
	}
out:
	for (size_t i = 0; d.rs && i < d.nrs; i++) {
		json_decref(d.rs[i].obj);
		ctrl_obj_unref(d.rs[i].rec);
	}
	free(d.rs);
	json_decref(d.cond_progress);
	ctrl_objs_free(&claimed);
	json_decref(d.obj);
	ctrl_obj_unref(d.rec);
	return err;
}

const struct ctrl_def ctrl_deployment = {
	.name = "deployment",
	.workers = 2,
	.init = dep_init,
	.reconcile = dep_reconcile,
	.fini = dep_fini,
};
