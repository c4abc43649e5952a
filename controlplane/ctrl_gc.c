// SPDX-License-Identifier: Apache-2.0
/*
 * The garbage collector: deletes what its owners no longer hold, by metadata.ownerReferences,
 * as Kubernetes' does.
 *
 * - Background (the default): once every owner of an object is gone, the object is deleted
 *   (its own finalizers choose how its dependents go). An object with a live owner keeps
 *   only its live owners' references.
 * - Foreground: an owner deleted with propagationPolicy Foreground carries the
 *   foregroundDeletion finalizer; the collector deletes its dependents (foreground too, when
 *   they have dependents of their own) and removes the finalizer once no dependent with
 *   blockOwnerDeletion remains, which lets the API delete the owner.
 * - Orphan: an owner deleted with propagationPolicy Orphan carries the orphan finalizer; the
 *   collector removes the owner's reference from every dependent, then the finalizer.
 *
 * The design choice to know: the informers only point at what to look at. Before deleting an
 * object because its owner seems gone, the owner is read from the API (a get in-process), and
 * the deletion is conditional on the object's uid, so a cache that has not yet seen a new
 * owner never costs a dependent its life.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_kinds.h"
#include "ctrl.h"
#include "log.h"

#define FIN_ORPHAN     "orphan"
#define FIN_FOREGROUND "foregroundDeletion"
#define MAX_KINDS      32

struct gc_ctrl {
	struct ctrl_informer *inf[MAX_KINDS];
	const struct api_kind *kind[MAX_KINDS];
	size_t n;
};

static int kind_index(struct gc_ctrl *p, const struct api_kind *k)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->kind[i] == k)
			return (int)i;
	return -1;
}

static int index_of_ref(struct gc_ctrl *p, const struct ctrl_ref *r)
{
	const struct api_kind *k = api_kind_by_kind(r->api_version, r->kind);
	return k ? kind_index(p, k) : -1;
}

/* Work-queue keys: "resource|ns/name". */
static void queue_obj(struct ctrl *c, const struct api_kind *k, const struct ctrl_obj *o)
{
	char key[800];
	snprintf(key, sizeof(key), "%s|%s", k->resource, o->key);
	ctrl_queue(c, key);
}

static bool has_fin(const struct ctrl_obj *o, const char *f)
{
	for (size_t i = 0; i < o->nfinalizers; i++)
		if (strcmp(o->finalizers[i], f) == 0)
			return true;
	return false;
}

static bool same_refs(const struct ctrl_obj *a, const struct ctrl_obj *b)
{
	if (a->nrefs != b->nrefs)
		return false;
	for (size_t i = 0; i < a->nrefs; i++)
		if (strcmp(a->refs[i].uid, b->refs[i].uid) != 0 ||
		    a->refs[i].block_owner_deletion != b->refs[i].block_owner_deletion)
			return false;
	return true;
}

/* The owners of o that may be waiting for it: their keys are queued. */
static void queue_owners(struct ctrl *c, const struct ctrl_obj *o)
{
	struct gc_ctrl *p = ctrl_priv(c);
	for (size_t i = 0; i < o->nrefs; i++) {
		int k = index_of_ref(p, &o->refs[i]);
		if (k < 0)
			continue;
		struct ctrl_obj *owner = ctrl_get_uid(p->inf[k], o->refs[i].uid);
		if (owner && owner->deleting)
			queue_obj(c, p->kind[k], owner);
		ctrl_obj_unref(owner);
	}
}

static void queue_dependents(struct ctrl *c, const char *uid)
{
	struct gc_ctrl *p = ctrl_priv(c);
	for (size_t k = 0; k < p->n; k++) {
		struct ctrl_objs l = { 0 };
		if (ctrl_dependents(p->inf[k], uid, &l) == 0)
			for (size_t i = 0; i < l.n; i++)
				queue_obj(c, p->kind[k], l.v[i]);
		ctrl_objs_free(&l);
	}
}

static void on_any(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		   const struct ctrl_obj *old)
{
	const struct api_kind *k = now->o->kind;

	if (ev == CTRL_DELETED) {
		/* its dependents may be orphans now; its owners may be waiting for it */
		if (*now->uid)
			queue_dependents(c, now->uid);
		queue_owners(c, now);
		return;
	}
	bool deleting_changed = ev == CTRL_ADDED || now->deleting != old->deleting ||
				now->nfinalizers != old->nfinalizers;
	if (now->deleting && (has_fin(now, FIN_ORPHAN) || has_fin(now, FIN_FOREGROUND)) &&
	    deleting_changed)
		queue_obj(c, k, now);
	if (now->nrefs && (ev == CTRL_ADDED || !same_refs(now, old)))
		queue_obj(c, k, now);
	if (ev == CTRL_MODIFIED && now->deleting && !old->deleting)
		queue_owners(c, now);
}

static int gc_init(struct ctrl *c)
{
	struct gc_ctrl *p = calloc(1, sizeof(*p));
	char av[64];

	if (!p)
		return -ENOMEM;
	ctrl_set_priv(c, p);
	for (const struct api_kind *k = api_kinds; k->kind && p->n < MAX_KINDS; k++) {
		/* Events are many and own nothing; nothing in shoald makes them dependents. */
		if (strcmp(k->kind, "Event") == 0)
			continue;
		api_kind_api_version(k, av, sizeof(av));
		p->inf[p->n] = ctrl_informer(c, av, k->kind, 0);
		if (!p->inf[p->n])
			return -errno;
		p->kind[p->n] = k;
		if (ctrl_on(c, p->inf[p->n], on_any))
			return -E2BIG;
		p->n++;
	}
	return 0;
}

static void gc_fini(struct ctrl *c)
{
	free(ctrl_priv(c));
}

/* ---- writes ---------------------------------------------------------------------------- */

static int obj_path(struct gc_ctrl *p, int k, const struct ctrl_obj *o, char *buf, size_t len)
{
	return ctrl_path(p->kind[k], o->o->ns, o->o->name, NULL, buf, len);
}

static int delete_obj(struct ctrl *c, int k, const struct ctrl_obj *o, const char *policy)
{
	struct gc_ctrl *p = ctrl_priv(c);
	char path[1024];
	json_t *opts = json_pack("{s:{s:s}, s:s}", "preconditions", "uid", o->uid,
				 "propagationPolicy", policy);
	int err = opts ? obj_path(p, k, o, path, sizeof(path)) : -ENOMEM;
	if (!err)
		err = ctrl_write(c, "DELETE", path, opts, NULL, NULL, 0);
	json_decref(opts);
	if (!err)
		log_info("garbage collector: deleted %s %s (%s)", p->kind[k]->resource, o->key,
			 policy);
	/* gone already, or another object by now: nothing to do */
	return err == -ENOENT || err == -ECONFLICT ? 0 : err;
}

/* Writes o's ownerReferences (refs, taken) conditional on its resourceVersion. */
static int write_refs(struct ctrl *c, int k, const struct ctrl_obj *o, json_t *refs)
{
	struct gc_ctrl *p = ctrl_priv(c);
	char path[1024], rv[32];
	if (!refs)
		return -ENOMEM;
	snprintf(rv, sizeof(rv), "%lld", (long long)o->o->rev);
	json_t *patch = json_pack("{s:{s:o, s:s}}", "metadata", "ownerReferences", refs,
				  "resourceVersion", rv);
	int err = patch ? obj_path(p, k, o, path, sizeof(path)) : -ENOMEM;
	if (!err)
		err = ctrl_write(c, "PATCH", path, patch, NULL, NULL, 0);
	json_decref(patch);
	return err == -ENOENT ? 0 : err;
}

static int remove_finalizer(struct ctrl *c, int k, const struct ctrl_obj *o, const char *fin)
{
	struct gc_ctrl *p = ctrl_priv(c);
	char path[1024], rv[32];
	json_t *fins = json_array();
	for (size_t i = 0; fins && i < o->nfinalizers; i++)
		if (strcmp(o->finalizers[i], fin) != 0)
			json_array_append_new(fins, json_string(o->finalizers[i]));
	snprintf(rv, sizeof(rv), "%lld", (long long)o->o->rev);
	json_t *patch = fins ? json_pack("{s:{s:o, s:s}}", "metadata", "finalizers", fins,
					 "resourceVersion", rv)
			     : NULL;
	int err = patch ? obj_path(p, k, o, path, sizeof(path)) : -ENOMEM;
	if (!err)
		err = ctrl_write(c, "PATCH", path, patch, NULL, NULL, 0);
	json_decref(patch);
	if (!err)
		log_info("garbage collector: %s %s: %s done", p->kind[k]->resource, o->key, fin);
	return err == -ENOENT ? 0 : err;
}

/* ---- the owner's side ------------------------------------------------------------------- */

struct dependent {
	int k;
	struct ctrl_obj *o;
};

static int all_dependents(struct gc_ctrl *p, const char *uid, struct dependent **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	for (size_t k = 0; k < p->n; k++) {
		struct ctrl_objs l = { 0 };
		int err = ctrl_dependents(p->inf[k], uid, &l);
		if (!err && l.n) {
			struct dependent *d = realloc(*out, (*n + l.n) * sizeof(**out));
			if (!d) {
				err = -ENOMEM;
			} else {
				*out = d;
				for (size_t i = 0; i < l.n; i++) {
					ctrl_obj_ref(l.v[i]);
					d[(*n)++] = (struct dependent){ (int)k, l.v[i] };
				}
			}
		}
		ctrl_objs_free(&l);
		if (err)
			return err;
	}
	return 0;
}

static void dependents_free(struct dependent *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ctrl_obj_unref(d[i].o);
	free(d);
}

static const struct ctrl_ref *ref_to(const struct ctrl_obj *o, const char *uid)
{
	for (size_t i = 0; i < o->nrefs; i++)
		if (strcmp(o->refs[i].uid, uid) == 0)
			return &o->refs[i];
	return NULL;
}

static bool has_dependents(struct gc_ctrl *p, const char *uid)
{
	for (size_t k = 0; k < p->n; k++) {
		struct ctrl_objs l = { 0 };
		bool any = ctrl_dependents(p->inf[k], uid, &l) == 0 && l.n;
		ctrl_objs_free(&l);
		if (any)
			return true;
	}
	return false;
}

/* An owner being deleted with the orphan or foregroundDeletion finalizer. */
static int process_owner(struct ctrl *c, int k, const struct ctrl_obj *o)
{
	struct gc_ctrl *p = ctrl_priv(c);
	struct dependent *deps;
	size_t n;
	int err = all_dependents(p, o->uid, &deps, &n), first = 0;

	if (err)
		return err;
	if (has_fin(o, FIN_ORPHAN)) {
		for (size_t i = 0; i < n; i++) {
			int e = write_refs(c, deps[i].k, deps[i].o,
					   ctrl_refs_json(deps[i].o, o->uid));
			if (e && !first)
				first = e;
		}
		if (!first)
			first = remove_finalizer(c, k, o, FIN_ORPHAN);
	} else {
		size_t blocking = 0;
		for (size_t i = 0; i < n; i++) {
			const struct ctrl_ref *r = ref_to(deps[i].o, o->uid);
			if (r && r->block_owner_deletion)
				blocking++;
			if (deps[i].o->deleting)
				continue;
			int e = delete_obj(c, deps[i].k, deps[i].o,
					   has_dependents(p, deps[i].o->uid) ? "Foreground"
									     : "Background");
			if (e && !first)
				first = e;
		}
		/* The last blocking dependent's deletion brings the owner back here. */
		if (!blocking && !first)
			first = remove_finalizer(c, k, o, FIN_FOREGROUND);
	}
	dependents_free(deps, n);
	return first;
}

/* ---- the dependent's side ---------------------------------------------------------------- */

enum owner_state { OWNER_SOLID, OWNER_WAITING, OWNER_DANGLING };

/* What has become of the owner a reference names: the cache first, the API to be sure. */
static int owner_state(struct ctrl *c, const struct ctrl_obj *o, const struct ctrl_ref *r,
		       enum owner_state *st)
{
	struct gc_ctrl *p = ctrl_priv(c);
	int k = index_of_ref(p, r);
	char path[1024];
	json_t *live = NULL;

	if (k < 0) {
		*st = OWNER_SOLID; /* a kind this server does not serve: leave it be */
		return 0;
	}
	struct ctrl_obj *owner = ctrl_get_uid(p->inf[k], r->uid);
	if (owner) {
		bool waiting = owner->deleting && has_fin(owner, FIN_FOREGROUND);
		*st = waiting ? OWNER_WAITING : OWNER_SOLID;
		ctrl_obj_unref(owner);
		return 0;
	}
	int err = ctrl_path(p->kind[k], p->kind[k]->namespaced ? o->o->ns : NULL, r->name, NULL,
			    path, sizeof(path));
	if (!err)
		err = ctrl_write(c, "GET", path, NULL, &live, NULL, 0);
	if (err == -ENOENT) {
		*st = OWNER_DANGLING;
		return 0;
	}
	if (err)
		return err;
	const json_t *meta = json_object_get(live, "metadata");
	const char *uid = json_string_value(json_object_get(meta, "uid"));
	if (!uid || strcmp(uid, r->uid) != 0) {
		*st = OWNER_DANGLING; /* the name is someone else's now */
	} else {
		bool fg = false;
		size_t i;
		json_t *f;
		json_array_foreach (json_object_get(meta, "finalizers"), i, f)
			fg |= json_is_string(f) &&
			      strcmp(json_string_value(f), FIN_FOREGROUND) == 0;
		*st = json_object_get(meta, "deletionTimestamp") && fg ? OWNER_WAITING
								       : OWNER_SOLID;
	}
	json_decref(live);
	return 0;
}

static int process_dependent(struct ctrl *c, int k, const struct ctrl_obj *o)
{
	struct gc_ctrl *p = ctrl_priv(c);
	size_t solid = 0, waiting = 0, dangling = 0;
	enum owner_state st[64];
	size_t n = o->nrefs < 64 ? o->nrefs : 64;

	for (size_t i = 0; i < n; i++) {
		int err = owner_state(c, o, &o->refs[i], &st[i]);
		if (err)
			return err;
		solid += st[i] == OWNER_SOLID;
		waiting += st[i] == OWNER_WAITING;
		dangling += st[i] == OWNER_DANGLING;
	}
	if (solid) {
		if (!dangling && !waiting)
			return 0;
		/* Keep the live owners; drop the gone ones, stop blocking those deleting. */
		json_t *refs = ctrl_refs_json(o, NULL);
		if (!refs)
			return -ENOMEM;
		for (size_t i = n; i-- > 0;) {
			if (st[i] == OWNER_DANGLING)
				json_array_remove(refs, i);
			else if (st[i] == OWNER_WAITING)
				json_object_set_new(json_array_get(refs, i), "blockOwnerDeletion",
						    json_false());
		}
		return write_refs(c, k, o, refs);
	}
	if (o->deleting)
		return 0;
	const char *policy = has_fin(o, FIN_ORPHAN)		    ? "Orphan"
			     : has_fin(o, FIN_FOREGROUND)	    ? "Foreground"
			     : waiting && has_dependents(p, o->uid) ? "Foreground"
								    : "Background";
	return delete_obj(c, k, o, policy);
}

static int gc_reconcile(struct ctrl *c, const char *key)
{
	struct gc_ctrl *p = ctrl_priv(c);
	const char *bar = strchr(key, '|');
	int k = -1, err = 0;

	if (!bar)
		return 0;
	for (size_t i = 0; i < p->n && k < 0; i++)
		if (strlen(p->kind[i]->resource) == (size_t)(bar - key) &&
		    strncmp(p->kind[i]->resource, key, bar - key) == 0)
			k = (int)i;
	if (k < 0)
		return 0;
	struct ctrl_obj *o = ctrl_get(p->inf[k], bar + 1);
	if (!o)
		return 0;
	if (o->deleting && (has_fin(o, FIN_ORPHAN) || has_fin(o, FIN_FOREGROUND)))
		err = process_owner(c, k, o);
	else if (o->nrefs)
		err = process_dependent(c, k, o);
	ctrl_obj_unref(o);
	return err;
}

const struct ctrl_def ctrl_gc = {
	.name = "garbagecollector",
	.workers = 8, /* each mostly waits for a commit: more share one */
	.init = gc_init,
	.reconcile = gc_reconcile,
	.fini = gc_fini,
};
