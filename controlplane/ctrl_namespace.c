// SPDX-License-Identifier: Apache-2.0
/*
 * The namespace controller: empties a namespace being deleted, as Kubernetes' does, then
 * lets it go.
 *
 * A DELETE of a Namespace only marks it (deletionTimestamp, status.phase Terminating); the
 * API then refuses new content in it. While spec.finalizers holds "kubernetes", this
 * controller deletes every namespaced object of every kind in it: pods gracefully (their
 * node still stops them, then confirms), everything else with background propagation, so
 * that the garbage collector takes dependents and owners behave as on any deletion. An
 * object whose controlling owner in the namespace is not yet being deleted is left to that
 * owner's deletion (a ReplicaSet's pods go with it, not behind its back). Progress is in
 * status.conditions: NamespaceDeletionDiscoveryFailure, NamespaceDeletionContentFailure,
 * NamespaceContentRemaining (what remains, counted by resource) and
 * NamespaceFinalizersRemaining (the finalizers of what remains). Once nothing remains, the
 * controller removes its finalizer through PUT namespaces/NAME/finalize, and when no
 * finalizer is left, DELETEs the namespace again, which removes it.
 *
 * The design choice to know: the informers (one per namespaced kind, indexed by namespace,
 * shared with the garbage collector) only say what to delete and what to count; each pass
 * deletes at most NS_BATCH objects, in parallel so their writes share group commits, and is
 * queued again, so a namespace of thousands of objects never holds a worker for long. The
 * last word before the finalizer goes is the API's: every kind is listed (limit=1) through
 * it, so an informer that lags never lets a namespace go with content left in it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_kinds.h"
#include "ctrl.h"
#include "log.h"
#include "strbuf.h"

#define NS_BATCH     500  /* objects deleted per pass at most */
#define NS_SETTLE_MS 200  /* content events within this long make one pass */
#define NS_WAIT_MS   5000 /* a pass again while waiting for graceful deletions */
#define NS_MAX_KINDS 32
#define NS_MAX_FINS  32 /* distinct finalizers counted in the condition */

struct ns_ctrl {
	struct ctrl_informer *ns;
	const struct api_kind *ns_kind;
	struct ctrl_informer *inf[NS_MAX_KINDS];
	const struct api_kind *kind[NS_MAX_KINDS];
	size_t n;
};

/* ---- events -------------------------------------------------------------------------------- */

static void on_ns(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		  const struct ctrl_obj *old)
{
	(void)old;
	if (ev == CTRL_DELETED) {
		ctrl_forget_written(c, now->key);
		return;
	}
	if (now->deleting)
		ctrl_queue(c, now->key);
}

/* Content that goes or starts going in a terminating namespace brings it back. */
static void on_content(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		       const struct ctrl_obj *old)
{
	struct ns_ctrl *p = ctrl_priv(c);

	if (ev == CTRL_ADDED || (ev == CTRL_MODIFIED && (!now->deleting || old->deleting) &&
				 now->nfinalizers == old->nfinalizers))
		return;
	struct ctrl_obj *ns = ctrl_get(p->ns, now->o->ns);
	if (ns && ns->deleting)
		ctrl_queue_after(c, ns->key, NS_SETTLE_MS);
	ctrl_obj_unref(ns);
}

static int ns_init(struct ctrl *c)
{
	struct ns_ctrl *p = calloc(1, sizeof(*p));
	char av[64];

	if (!p)
		return -ENOMEM;
	ctrl_set_priv(c, p);
	p->ns_kind = api_kind_by_kind("v1", "Namespace");
	p->ns = ctrl_informer(c, "v1", "Namespace", 0);
	if (!p->ns_kind || !p->ns)
		return -EINVAL;
	if (ctrl_on(c, p->ns, on_ns))
		return -E2BIG;
	for (const struct api_kind *k = api_kinds; k->kind; k++) {
		if (!k->namespaced)
			continue;
		if (p->n == NS_MAX_KINDS) {
			log_error("namespace controller: more than %d namespaced kinds",
				  NS_MAX_KINDS);
			return -E2BIG;
		}
		api_kind_api_version(k, av, sizeof(av));
		p->inf[p->n] = ctrl_informer(c, av, k->kind, CTRL_INDEX_NAMESPACE);
		if (!p->inf[p->n])
			return -errno;
		p->kind[p->n] = k;
		if (ctrl_on(c, p->inf[p->n], on_content))
			return -E2BIG;
		p->n++;
	}
	return 0;
}

static void ns_fini(struct ctrl *c)
{
	free(ctrl_priv(c));
}

/* ---- one pass over the content ---------------------------------------------------------------- */

/* What a pass found of one object: to delete now, or remaining with its finalizers. */
struct victim {
	size_t k;
	struct ctrl_obj *o;
	bool remains;
	json_t *fins; /* the finalizers the DELETE answer names (NULL: the record's) */
	int err;
	char msg[256];
};

struct pass {
	struct ctrl *c;
	struct ns_ctrl *p;
	struct victim *v;
	size_t n, cap;
	size_t remaining[NS_MAX_KINDS];
	char *fin[NS_MAX_FINS]; /* copies: the records they come from may go meanwhile */
	size_t fin_n[NS_MAX_FINS];
	size_t nfin;
	bool defer;	 /* leave objects to their owners' deletion */
	bool more;	 /* objects left for the next pass */
	size_t deferred; /* left to their owner's deletion */
	size_t failed;
	char failure[512]; /* the first failures, for the condition */
};

static void pass_free(struct pass *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		ctrl_obj_unref(ps->v[i].o);
		json_decref(ps->v[i].fins);
	}
	free(ps->v);
	for (size_t i = 0; i < ps->nfin; i++)
		free(ps->fin[i]);
}

static void count_fin(struct pass *ps, const char *f)
{
	for (size_t i = 0; i < ps->nfin; i++)
		if (strcmp(ps->fin[i], f) == 0) {
			ps->fin_n[i]++;
			return;
		}
	if (ps->nfin < NS_MAX_FINS && (ps->fin[ps->nfin] = strdup(f)))
		ps->fin_n[ps->nfin++] = 1;
}

/* An object remaining: counted by kind, its finalizers by name. */
static void count_remaining(struct pass *ps, size_t k, const struct ctrl_obj *o)
{
	ps->remaining[k]++;
	for (size_t i = 0; i < o->nfinalizers; i++)
		count_fin(ps, o->finalizers[i]);
}

/* True when o's controlling owner is in the namespace and not being deleted yet: its
 * deletion takes o along (background propagation), so o is not deleted behind its back. */
static bool owner_takes(struct ns_ctrl *p, const struct ctrl_obj *o)
{
	const struct ctrl_ref *r = o->controller;
	const struct api_kind *k = r ? api_kind_by_kind(r->api_version, r->kind) : NULL;
	bool takes = false;

	for (size_t i = 0; k && k->namespaced && i < p->n; i++) {
		if (p->kind[i] != k)
			continue;
		struct ctrl_obj *owner = ctrl_get_uid(p->inf[i], r->uid);
		takes = owner && !owner->deleting && strcmp(owner->o->ns, o->o->ns) == 0;
		ctrl_obj_unref(owner);
	}
	return takes;
}

static int push_victim(struct pass *ps, size_t k, struct ctrl_obj *o)
{
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 64;
		struct victim *v = realloc(ps->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ps->v = v;
		ps->cap = cap;
	}
	ctrl_obj_ref(o);
	ps->v[ps->n++] = (struct victim){ .k = k, .o = o };
	return 0;
}

/* Sorts the namespace's content into what this pass deletes and what remains. */
static int collect(struct pass *ps, const char *ns)
{
	struct ns_ctrl *p = ps->p;
	int err = 0;

	for (size_t k = 0; k < p->n && !err; k++) {
		struct ctrl_objs l = { 0 };
		err = ctrl_list(p->inf[k], ns, &l);
		for (size_t i = 0; !err && i < l.n; i++) {
			struct ctrl_obj *o = l.v[i];
			if (o->deleting) {
				count_remaining(ps, k, o);
			} else if (ps->defer && owner_takes(p, o)) {
				ps->deferred++;
				count_remaining(ps, k, o);
			} else if (ps->n >= NS_BATCH) {
				ps->more = true;
				count_remaining(ps, k, o);
			} else {
				err = push_victim(ps, k, o);
			}
		}
		ctrl_objs_free(&l);
	}
	return err;
}

static void delete_one(void *arg, size_t i)
{
	struct pass *ps = arg;
	struct victim *v = &ps->v[i];
	const struct api_kind *k = ps->p->kind[v->k];
	char path[1024];
	json_t *out = NULL;
	json_t *opts = json_pack("{s:s, s:{s:s}}", "propagationPolicy", "Background",
				 "preconditions", "uid", v->o->uid);
	int err =
		opts ? ctrl_path(k, v->o->o->ns, v->o->o->name, NULL, path, sizeof(path)) : -ENOMEM;

	if (!err)
		err = ctrl_write(ps->c, "DELETE", path, opts, &out, v->msg, sizeof(v->msg));
	json_decref(opts);
	if (err == -ENOENT) {
		err = 0; /* gone already */
	} else if (err == -ECONFLICT) {
		err = 0; /* another object by that name now: the next pass sees it */
		v->remains = true;
	} else if (!err) {
		/* Marked only (a pod its node stops, finalizers): it remains for now. */
		const json_t *meta = json_object_get(out, "metadata");
		if (json_object_get(meta, "deletionTimestamp")) {
			v->remains = true;
			v->fins = json_incref(json_object_get(meta, "finalizers"));
		}
	} else {
		v->remains = true;
		if (!v->msg[0])
			snprintf(v->msg, sizeof(v->msg), "%s", shoal_strerror(err));
	}
	v->err = err;
	json_decref(out);
}

/* Counts what the deletes left and the failures they met. */
static void tally(struct pass *ps)
{
	size_t off = 0;

	for (size_t i = 0; i < ps->n; i++) {
		struct victim *v = &ps->v[i];
		if (v->err) {
			ps->failed++;
			if (off < sizeof(ps->failure) - 1) {
				int w = snprintf(ps->failure + off, sizeof(ps->failure) - off,
						 "%s%s \"%s\": %s", off ? "; " : "",
						 ps->p->kind[v->k]->resource, v->o->o->name,
						 v->msg);
				off += w > 0 ? (size_t)w : 0;
			}
		}
		if (!v->remains)
			continue;
		if (!v->fins) {
			count_remaining(ps, v->k, v->o);
			continue;
		}
		ps->remaining[v->k]++;
		size_t j;
		json_t *f;
		json_array_foreach (v->fins, j, f)
			if (json_is_string(f))
				count_fin(ps, json_string_value(f));
	}
}

static size_t total_remaining(const struct pass *ps)
{
	size_t n = 0;
	for (size_t k = 0; k < ps->p->n; k++)
		n += ps->remaining[k];
	return n;
}

/* ---- status.conditions ---------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "pods. has 3 resource instances, services. has 1 resource instances", as Kubernetes
 * writes it (resource.group, sorted). */
/* Appends parts (n of them, malloc'd) sorted and joined by ", " to b and frees them; err, when
 * set, is kept (and nothing appended). */
static int join_sorted(char **parts, size_t n, int err, struct strbuf *b)
{
	qsort(parts, n, sizeof(parts[0]), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (!err)
			err = strbuf_printf(b, "%s%s", i ? ", " : "", parts[i]);
		free(parts[i]);
	}
	return err;
}

static int remaining_message(const struct pass *ps, struct strbuf *b)
{
	char *parts[NS_MAX_KINDS];
	size_t n = 0;
	int err = 0;

	for (size_t k = 0; k < ps->p->n; k++) {
		if (!ps->remaining[k])
			continue;
		if (asprintf(&parts[n], "%s.%s has %zu resource instances",
			     ps->p->kind[k]->resource, ps->p->kind[k]->group,
			     ps->remaining[k]) < 0) {
			err = -ENOMEM;
			break;
		}
		n++;
	}
	return join_sorted(parts, n, err, b);
}

static int finalizers_message(const struct pass *ps, struct strbuf *b)
{
	char *parts[NS_MAX_FINS];
	size_t n = 0;
	int err = 0;

	for (size_t i = 0; i < ps->nfin; i++) {
		if (asprintf(&parts[n], "%s in %zu resource instances", ps->fin[i], ps->fin_n[i]) <
		    0) {
			err = -ENOMEM;
			break;
		}
		n++;
	}
	return join_sorted(parts, n, err, b);
}

/* Appends one condition to conds, keeping lastTransitionTime from old when its status did
 * not change. */
static int add_condition(json_t *conds, const json_t *old, const char *type, bool on,
			 const char *reason, const char *msg)
{
	const char *status = on ? "True" : "False";
	char now[32];
	const char *since = NULL;
	size_t i;
	json_t *c;

	json_array_foreach ((json_t *)old, i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		const char *s = json_string_value(json_object_get(c, "status"));
		if (t && s && strcmp(t, type) == 0 && strcmp(s, status) == 0)
			since = json_string_value(json_object_get(c, "lastTransitionTime"));
	}
	ctrl_now(now);
	c = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", type, "status", status,
		      "lastTransitionTime", since ? since : now, "reason", reason, "message", msg);
	return c && json_array_append_new(conds, c) == 0 ? 0 : -ENOMEM;
}

/* The conditions a pass leads to (a new array), NULL when out of memory. */
static json_t *conditions(const struct pass *ps, const json_t *old)
{
	struct strbuf rem = { 0 }, fins = { 0 }, fail = { 0 };
	json_t *conds = json_array();
	size_t left = total_remaining(ps);
	int err = conds ? 0 : -ENOMEM;

	if (!err && left)
		err = strbuf_printf(&rem, "Some resources are remaining: ")
			      ?: remaining_message(ps, &rem);
	if (!err && ps->nfin)
		err = strbuf_printf(&fins, "Some content in the namespace has finalizers "
					   "remaining: ")
			      ?: finalizers_message(ps, &fins);
	if (!err && ps->failed)
		err = strbuf_printf(&fail, "Failed to delete all resource types, %zu remaining: %s",
				    ps->failed, ps->failure);
	if (!err)
		err = add_condition(conds, old, "NamespaceDeletionDiscoveryFailure", false,
				    "ResourcesDiscovered", "All resources successfully discovered");
	if (!err)
		err = add_condition(conds, old, "NamespaceDeletionContentFailure", ps->failed,
				    ps->failed ? "ContentDeletionFailed" : "ContentDeleted",
				    ps->failed ? fail.s
					       : "All content successfully deleted, may be waiting "
						 "on finalization");
	if (!err)
		err = add_condition(conds, old, "NamespaceContentRemaining", left,
				    left ? "SomeResourcesRemain" : "ContentRemoved",
				    left ? rem.s : "All content successfully removed");
	if (!err)
		err = add_condition(conds, old, "NamespaceFinalizersRemaining", ps->nfin,
				    ps->nfin ? "SomeFinalizersRemain" : "ContentHasNoFinalizers",
				    ps->nfin ? fins.s
					     : "All content-preserving finalizers finished");
	free(rem.s);
	free(fins.s);
	free(fail.s);
	if (err) {
		json_decref(conds);
		return NULL;
	}
	return conds;
}

/* True when old holds the same conditions (lastTransitionTime aside). */
static bool same_conditions(const json_t *a, const json_t *old)
{
	static const char *const fields[] = { "type", "status", "reason", "message", NULL };
	size_t i;
	json_t *c;

	if (json_array_size(a) != json_array_size(old))
		return false;
	json_array_foreach ((json_t *)a, i, c) {
		const json_t *o = json_array_get(old, i);
		for (const char *const *f = fields; *f; f++) {
			const char *x = json_string_value(json_object_get(c, *f));
			const char *y = json_string_value(json_object_get(o, *f));
			if (!x || !y || strcmp(x, y) != 0)
				return false;
		}
	}
	return true;
}

static int write_conditions(struct ctrl *c, const struct ctrl_obj *o, json_t *conds)
{
	struct ns_ctrl *p = ctrl_priv(c);
	char path[512];
	json_t *out = NULL;
	json_t *patch = json_pack("{s:{s:o}}", "status", "conditions", conds);
	int err = patch ? ctrl_path(p->ns_kind, NULL, o->o->name, "status", path, sizeof(path))
			: -ENOMEM;

	if (!err)
		err = ctrl_write(c, "PATCH", path, patch, &out, NULL, 0);
	json_decref(patch);
	if (!err) {
		const char *rv = json_string_value(
			json_object_get(json_object_get(out, "metadata"), "resourceVersion"));
		if (rv)
			ctrl_wrote(c, o->key, strtoll(rv, NULL, 10));
	}
	json_decref(out);
	return err == -ENOENT ? 0 : err;
}

/* ---- the namespace itself -------------------------------------------------------------------- */

/* True when the API lists nothing of any namespaced kind in ns. */
static int api_empty(struct ctrl *c, const char *ns, bool *empty)
{
	struct ns_ctrl *p = ctrl_priv(c);
	char path[1024];

	*empty = true;
	for (size_t k = 0; k < p->n && *empty; k++) {
		json_t *l = NULL;
		int err = ctrl_path(p->kind[k], ns, NULL, NULL, path, sizeof(path) - 16);
		if (err)
			return err;
		strcat(path, "?limit=1");
		err = ctrl_write(c, "GET", path, NULL, &l, NULL, 0);
		if (err)
			return err;
		*empty = json_array_size(json_object_get(l, "items")) == 0;
		json_decref(l);
	}
	return 0;
}

/* PUT namespaces/NAME/finalize with spec.finalizers less "kubernetes" (fins: the others). */
static int finalize(struct ctrl *c, const struct ctrl_obj *o, json_t *fins)
{
	struct ns_ctrl *p = ctrl_priv(c);
	char path[512];
	json_t *body =
		json_pack("{s:s, s:s, s:{s:s}, s:{s:O}}", "apiVersion", "v1", "kind", "Namespace",
			  "metadata", "name", o->o->name, "spec", "finalizers", fins);
	int err = body ? ctrl_path(p->ns_kind, NULL, o->o->name, "finalize", path, sizeof(path))
		       : -ENOMEM;
	if (!err)
		err = ctrl_write(c, "PUT", path, body, NULL, NULL, 0);
	json_decref(body);
	if (!err)
		log_info("namespace %s: content removed, finalized", o->key);
	return err == -ENOENT ? 0 : err;
}

/* The DELETE that removes a namespace whose finalizers are all gone. */
static int delete_ns(struct ctrl *c, const struct ctrl_obj *o)
{
	struct ns_ctrl *p = ctrl_priv(c);
	char path[512];
	json_t *opts = json_pack("{s:{s:s}}", "preconditions", "uid", o->uid);
	int err =
		opts ? ctrl_path(p->ns_kind, NULL, o->o->name, NULL, path, sizeof(path)) : -ENOMEM;
	if (!err)
		err = ctrl_write(c, "DELETE", path, opts, NULL, NULL, 0);
	json_decref(opts);
	if (!err)
		log_info("namespace %s: deleted", o->key);
	/* gone already; or finalizers came back (409): its next event brings it here */
	return err == -ENOENT || err == -ECONFLICT ? 0 : err;
}

static int ns_reconcile(struct ctrl *c, const char *key)
{
	struct ns_ctrl *p = ctrl_priv(c);
	struct pass ps = { .c = c, .p = p };
	json_t *obj = NULL, *others = NULL, *conds = NULL;
	bool ours = false;
	int err = 0;

	struct ctrl_obj *o = ctrl_get(p->ns, key);
	if (!o || !o->deleting)
		goto out;
	if (ctrl_cache_behind(c, key, o->o->rev))
		goto out; /* our last write's event brings it back */
	obj = ctrl_obj_json(o);
	others = json_array();
	if (!obj || !others) {
		err = -ENOMEM;
		goto out;
	}
	size_t i;
	json_t *f;
	json_array_foreach (json_object_get(json_object_get(obj, "spec"), "finalizers"), i, f) {
		if (json_is_string(f) && strcmp(json_string_value(f), API_NS_FINALIZER) == 0)
			ours = true;
		else if (json_array_append(others, f))
			err = -ENOMEM;
	}
	if (err)
		goto out;
	if (!ours) {
		/* Someone else's finalizers hold it, or nothing does and it goes now. */
		if (json_array_size(others) == 0)
			err = delete_ns(c, o);
		goto out;
	}

	ps.defer = true;
	err = collect(&ps, o->o->name);
	if (!err && !ps.n && ps.deferred) {
		/* Only owned objects left, whose owners stay (owners of each other): all go. */
		pass_free(&ps);
		ps = (struct pass){ .c = c, .p = p };
		err = collect(&ps, o->o->name);
	}
	if (err)
		goto out;
	if (ps.n)
		ctrl_parallel(ps.n, delete_one, &ps);
	tally(&ps);
	const json_t *old = json_object_get(json_object_get(obj, "status"), "conditions");
	conds = conditions(&ps, old);
	if (!conds) {
		err = -ENOMEM;
		goto out;
	}
	if (!same_conditions(conds, old)) {
		err = write_conditions(c, o, json_incref(conds));
		if (err)
			goto out;
	}
	if (ps.failed) {
		err = -EIO; /* again, with back-off; the condition says why */
		goto out;
	}
	if (total_remaining(&ps)) {
		/* More to delete now, or waiting: for owners to take their dependents, for
		 * nodes to stop pods, for finalizers; their events bring it back sooner. */
		if (ps.more || ps.n)
			ctrl_queue_after(c, key, ps.more ? 0 : NS_SETTLE_MS);
		else
			ctrl_queue_after(c, key, NS_WAIT_MS);
		goto out;
	}
	bool empty;
	err = api_empty(c, o->o->name, &empty);
	if (err)
		goto out;
	if (!empty) {
		ctrl_queue_after(c, key, NS_SETTLE_MS); /* the informers have yet to see it */
		goto out;
	}
	err = finalize(c, o, others);
	if (!err && json_array_size(others) == 0)
		err = delete_ns(c, o);
out:
	pass_free(&ps);
	json_decref(conds);
	json_decref(others);
	json_decref(obj);
	ctrl_obj_unref(o);
	return err;
}

const struct ctrl_def ctrl_namespace = {
	.name = "namespace",
	.workers = 2,
	.init = ns_init,
	.reconcile = ns_reconcile,
	.fini = ns_fini,
};
