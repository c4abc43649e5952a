// SPDX-License-Identifier: Apache-2.0
/*
 * An independent check of a placement, for the tests and the simulator. It reads the JSON
 * objects directly and matches with common/labels.h, sharing nothing with the scheduler's
 * interned labels, compiled selectors or per-domain counters, so that a bug there shows up
 * here as a violation.
 *
 * Required pod affinity is judged on the final placement: a pod's term is met by another
 * matching pod in its domain, or by the pod itself when no other placed pod matches the term
 * anywhere (the first pod of its group). Topology spread is judged per placed pod: the count
 * in its domain minus the smallest eligible domain's count may not exceed maxSkew (which
 * holds at the end when pods were only added).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "labels.h"
#include "quantity.h"
#include "sched.h"

#include <jansson.h>

#define VMAXRES 12

struct vres {
	char name[64];
	int64_t v;
};
struct vresv {
	struct vres r[VMAXRES];
	int n;
	int64_t pods;
};

struct vterm {
	struct selector *sel; /* NULL: matches nothing */
	json_t *nss;	      /* namespaces array or NULL */
	bool all_ns;
	const char *ns_own;
	const char *topo;
};

struct vspr {
	struct selector *sel;
	const char *topo;
	int64_t max_skew, min_domains;
};

struct vpod {
	const json_t *obj;
	const char *ns;
	const json_t *labels;
	int node; /* -1 pending */
	bool done;
	struct vresv req;
	struct vterm *aff, *anti;
	int naff, nanti;
	struct vspr *spr;
	int nspr;
};

struct vnode {
	const json_t *obj;
	const char *name;
	const json_t *labels;
	json_t *fields; /* {"metadata.name": name} */
	struct vresv alloc, used;
	int *pods;
	int npods, cap;
};

struct vctx {
	struct vnode *n;
	size_t nn;
	struct vpod *p;
	size_t np;
	struct hashmap *byname;
};

static void res_add(struct vresv *rv, const char *name, int64_t v, bool max)
{
	if (!strcmp(name, "pods")) {
		rv->pods += v / 1000;
		return;
	}
	for (int i = 0; i < rv->n; i++)
		if (!strcmp(rv->r[i].name, name)) {
			if (max)
				rv->r[i].v = v > rv->r[i].v ? v : rv->r[i].v;
			else
				rv->r[i].v += v;
			return;
		}
	if (rv->n < VMAXRES) {
		snprintf(rv->r[rv->n].name, sizeof(rv->r[0].name), "%s", name);
		rv->r[rv->n++].v = v;
	}
}

static int64_t res_get(const struct vresv *rv, const char *name)
{
	for (int i = 0; i < rv->n; i++)
		if (!strcmp(rv->r[i].name, name))
			return rv->r[i].v;
	return 0;
}

static int64_t qty(const json_t *v)
{
	int64_t m = 0;
	if (json_is_string(v))
		quantity_parse_milli(json_string_value(v), &m);
	else if (json_is_integer(v))
		m = json_integer_value(v) * 1000;
	return m;
}

static void pod_requests(const json_t *spec, struct vresv *out)
{
	memset(out, 0, sizeof(*out));
	struct vresv init = { 0 };
	const char *k;
	json_t *v;
	for (size_t i = 0; i < json_array_size(json_object_get(spec, "containers")); i++) {
		const json_t *res = json_object_get(
			json_array_get(json_object_get(spec, "containers"), i), "resources");
		const json_t *req = json_object_get(res, "requests");
		json_object_foreach((json_t *)req, k, v) res_add(out, k, qty(v), false);
		json_object_foreach(json_object_get(res, "limits"), k, v)
		{
			if (!json_object_get(req, k))
				res_add(out, k, qty(v), false);
		}
	}
	for (size_t i = 0; i < json_array_size(json_object_get(spec, "initContainers")); i++) {
		const json_t *res = json_object_get(
			json_array_get(json_object_get(spec, "initContainers"), i), "resources");
		const json_t *req = json_object_get(res, "requests");
		json_object_foreach((json_t *)req, k, v) res_add(&init, k, qty(v), true);
	}
	for (int i = 0; i < init.n; i++)
		if (init.r[i].v > res_get(out, init.r[i].name))
			res_add(out, init.r[i].name, init.r[i].v - res_get(out, init.r[i].name),
				false);
	json_object_foreach(json_object_get(spec, "overhead"), k, v) res_add(out, k, qty(v), false);
}

static int terms_of(const json_t *arr, const char *own, struct vterm **out)
{
	int n = (int)json_array_size(arr);
	if (!n)
		return 0;
	*out = calloc((size_t)n, sizeof(**out));
	if (!*out)
		return 0;
	for (int i = 0; i < n; i++) {
		const json_t *t = json_array_get(arr, (size_t)i);
		struct vterm *vt = &(*out)[i];
		const json_t *ls = json_object_get(t, "labelSelector");
		selector_from_json(ls ? ls : json_null(), false, &vt->sel, NULL, 0);
		vt->nss = json_object_get(t, "namespaces");
		const json_t *nsel = json_object_get(t, "namespaceSelector");
		vt->all_ns = json_is_object(nsel) && json_object_size(nsel) == 0;
		vt->ns_own = own;
		vt->topo = json_string_value(json_object_get(t, "topologyKey"));
	}
	return n;
}

static bool term_ns_ok(const struct vterm *t, const char *ns)
{
	if (t->all_ns)
		return true;
	if (json_array_size(t->nss)) {
		for (size_t i = 0; i < json_array_size(t->nss); i++)
			if (!strcmp(json_string_value(json_array_get(t->nss, i)) ?: "", ns))
				return true;
		return false;
	}
	return !strcmp(t->ns_own, ns);
}

static bool term_matches(const struct vterm *t, const struct vpod *q)
{
	return term_ns_ok(t, q->ns) && selector_matches(t->sel, q->labels);
}

static const char *label(const struct vnode *n, const char *key)
{
	return key ? json_string_value(json_object_get(n->labels, key)) : NULL;
}

static bool same_domain(const struct vnode *a, const struct vnode *b, const char *key)
{
	const char *x = label(a, key), *y = label(b, key);
	return x && y && !strcmp(x, y);
}

static void ctx_free(struct vctx *c)
{
	for (size_t i = 0; i < c->np; i++) {
		struct vpod *p = &c->p[i];
		for (int j = 0; j < p->naff; j++)
			selector_free(p->aff[j].sel);
		for (int j = 0; j < p->nanti; j++)
			selector_free(p->anti[j].sel);
		for (int j = 0; j < p->nspr; j++)
			selector_free(p->spr[j].sel);
		free(p->aff);
		free(p->anti);
		free(p->spr);
	}
	for (size_t i = 0; i < c->nn; i++) {
		json_decref(c->n[i].fields);
		free(c->n[i].pods);
	}
	free(c->n);
	free(c->p);
	hashmap_free(c->byname);
}

static int ctx_build(struct vctx *c, const json_t *nodes, const json_t *pods)
{
	memset(c, 0, sizeof(*c));
	c->nn = json_array_size(nodes);
	c->np = json_array_size(pods);
	c->n = calloc(c->nn + 1, sizeof(*c->n));
	c->p = calloc(c->np + 1, sizeof(*c->p));
	c->byname = hashmap_new(c->nn * 2 + 16);
	if (!c->n || !c->p || !c->byname)
		return -ENOMEM;
	for (size_t i = 0; i < c->nn; i++) {
		struct vnode *n = &c->n[i];
		n->obj = json_array_get(nodes, i);
		n->name = json_string_value(
			json_object_get(json_object_get(n->obj, "metadata"), "name"));
		n->labels = json_object_get(json_object_get(n->obj, "metadata"), "labels");
		n->fields = json_pack("{s:s}", "metadata.name", n->name ? n->name : "");
		const json_t *st = json_object_get(n->obj, "status");
		const json_t *al = json_object_get(st, "allocatable");
		if (!al)
			al = json_object_get(st, "capacity");
		const char *k;
		json_t *v;
		n->alloc.pods = 0;
		json_object_foreach((json_t *)al, k, v) res_add(&n->alloc, k, qty(v), false);
		if (!json_object_get(al, "pods"))
			n->alloc.pods = 110;
		if (n->name && hashmap_put(c->byname, n->name, n, NULL))
			return -ENOMEM;
	}
	for (size_t i = 0; i < c->np; i++) {
		struct vpod *p = &c->p[i];
		p->obj = json_array_get(pods, i);
		const json_t *md = json_object_get(p->obj, "metadata");
		const json_t *spec = json_object_get(p->obj, "spec");
		p->ns = json_string_value(json_object_get(md, "namespace"));
		if (!p->ns || !*p->ns)
			p->ns = "default";
		p->labels = json_object_get(md, "labels");
		const char *ph = json_string_value(
			json_object_get(json_object_get(p->obj, "status"), "phase"));
		p->done = ph && (!strcmp(ph, "Succeeded") || !strcmp(ph, "Failed"));
		const char *nn = json_string_value(json_object_get(spec, "nodeName"));
		struct vnode *n = (nn && *nn) ? hashmap_get(c->byname, nn) : NULL;
		p->node = (n && !p->done) ? (int)(n - c->n) : -1;
		pod_requests(spec, &p->req);
		const json_t *aff = json_object_get(spec, "affinity");
		p->naff = terms_of(json_object_get(json_object_get(aff, "podAffinity"),
						   "requiredDuringSchedulingIgnoredDuringExecution"),
				   p->ns, &p->aff);
		p->nanti = terms_of(json_object_get(json_object_get(aff, "podAntiAffinity"),
						    "requiredDuringSchedulingIgnoredDuringExecution"),
				    p->ns, &p->anti);
		const json_t *tsc = json_object_get(spec, "topologySpreadConstraints");
		size_t ns = json_array_size(tsc);
		if (ns)
			p->spr = calloc(ns, sizeof(*p->spr));
		for (size_t j = 0; p->spr && j < ns; j++) {
			const json_t *t = json_array_get(tsc, j);
			const char *wu = json_string_value(json_object_get(t, "whenUnsatisfiable"));
			if (!wu || strcmp(wu, "DoNotSchedule"))
				continue;
			struct vspr *vs = &p->spr[p->nspr++];
			const json_t *ls = json_object_get(t, "labelSelector");
			selector_from_json(ls ? ls : json_null(), false, &vs->sel, NULL, 0);
			vs->topo = json_string_value(json_object_get(t, "topologyKey"));
			vs->max_skew = json_integer_value(json_object_get(t, "maxSkew"));
			vs->min_domains = json_integer_value(json_object_get(t, "minDomains"));
		}
		if (p->node >= 0) {
			struct vnode *pn = &c->n[p->node];
			if (pn->npods >= pn->cap) {
				pn->cap = pn->cap ? pn->cap * 2 : 8;
				int *np = realloc(pn->pods, (size_t)pn->cap * sizeof(int));
				if (!np)
					return -ENOMEM;
				pn->pods = np;
			}
			pn->pods[pn->npods++] = (int)i;
			for (int r = 0; r < p->req.n; r++)
				res_add(&pn->used, p->req.r[r].name, p->req.r[r].v, false);
			pn->used.pods++;
		}
	}
	return 0;
}

/* --- the checks, for pod p placed on node n (p may be pending: a what-if) --- */

static bool tolerates(const json_t *tols, const json_t *taint)
{
	const char *tk = json_string_value(json_object_get(taint, "key")) ?: "";
	const char *tv = json_string_value(json_object_get(taint, "value")) ?: "";
	const char *te = json_string_value(json_object_get(taint, "effect")) ?: "";
	for (size_t i = 0; i < json_array_size(tols); i++) {
		const json_t *t = json_array_get(tols, i);
		const char *k = json_string_value(json_object_get(t, "key")) ?: "";
		const char *op = json_string_value(json_object_get(t, "operator")) ?: "Equal";
		const char *v = json_string_value(json_object_get(t, "value")) ?: "";
		const char *e = json_string_value(json_object_get(t, "effect")) ?: "";
		if (*e && strcmp(e, te))
			continue;
		if (!*k && !strcmp(op, "Exists"))
			return true;
		if (strcmp(k, tk))
			continue;
		if (!strcmp(op, "Exists") || !strcmp(v, tv))
			return true;
	}
	return false;
}

static bool node_term_ok(const json_t *term, const struct vnode *n)
{
	const json_t *me = json_object_get(term, "matchExpressions");
	const json_t *mf = json_object_get(term, "matchFields");
	if (!json_array_size(me) && !json_array_size(mf))
		return false;
	bool ok = true;
	if (json_array_size(me)) {
		json_t *w = json_pack("{s:O}", "matchExpressions", me);
		struct selector *sel = NULL;
		selector_from_json(w, true, &sel, NULL, 0);
		ok = selector_matches(sel, n->labels);
		selector_free(sel);
		json_decref(w);
	}
	if (ok && json_array_size(mf)) {
		json_t *w = json_pack("{s:O}", "matchExpressions", mf);
		struct selector *sel = NULL;
		selector_from_json(w, false, &sel, NULL, 0);
		ok = selector_matches(sel, n->fields);
		selector_free(sel);
		json_decref(w);
	}
	return ok;
}

static const char *node_selection(const struct vpod *p, const struct vnode *n)
{
	const json_t *spec = json_object_get(p->obj, "spec");
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(spec, "nodeSelector"), k, v)
	{
		const char *have = label(n, k);
		if (!have || strcmp(have, json_string_value(v) ?: ""))
			return "nodeSelector";
	}
	const json_t *req = json_object_get(
		json_object_get(json_object_get(spec, "affinity"), "nodeAffinity"),
		"requiredDuringSchedulingIgnoredDuringExecution");
	if (req) {
		const json_t *terms = json_object_get(req, "nodeSelectorTerms");
		bool any = false;
		for (size_t i = 0; i < json_array_size(terms) && !any; i++)
			any = node_term_ok(json_array_get(terms, i), n);
		if (!any)
			return "required node affinity";
	}
	return NULL;
}

/* Returns why p on node ni violates something, or NULL. what_if: p is pending and is
 * tried on ni. */
static const char *check(struct vctx *c, const struct vpod *p, int ni, bool what_if,
			 char *why, size_t len)
{
	struct vnode *n = &c->n[ni];
	const json_t *spec = json_object_get(p->obj, "spec");
	/* capacity: what the node's pods use (plus p, in a what-if) within allocatable */
	for (int pass = 0; pass < 2; pass++) {
		const struct vresv *rv = pass ? &p->req : &n->used;
		if (pass && !what_if)
			break;
		for (int r = 0; r < rv->n; r++) {
			const char *name = rv->r[r].name;
			int64_t add = what_if ? res_get(&p->req, name) : 0;
			int64_t used = res_get(&n->used, name) + add;
			if (used > 0 && used > res_get(&n->alloc, name)) {
				snprintf(why, len, "node %s over capacity in %s", n->name, name);
				return why;
			}
		}
	}
	if (n->used.pods + (what_if ? 1 : 0) > n->alloc.pods) {
		snprintf(why, len, "node %s holds too many pods", n->name);
		return why;
	}
	const char *ns = node_selection(p, n);
	if (ns) {
		snprintf(why, len, "%s not met on %s", ns, n->name);
		return why;
	}
	const json_t *nspec = json_object_get(n->obj, "spec");
	const json_t *taints = json_object_get(nspec, "taints");
	for (size_t i = 0; i < json_array_size(taints); i++) {
		const json_t *t = json_array_get(taints, i);
		const char *e = json_string_value(json_object_get(t, "effect")) ?: "";
		if (strcmp(e, "PreferNoSchedule") &&
		    !tolerates(json_object_get(spec, "tolerations"), t)) {
			snprintf(why, len, "untolerated taint on %s", n->name);
			return why;
		}
	}
	if (what_if && json_is_true(json_object_get(nspec, "unschedulable"))) {
		json_t *t = json_pack("{s:s,s:s}", "key", "node.kubernetes.io/unschedulable",
				      "effect", "NoSchedule");
		bool ok = tolerates(json_object_get(spec, "tolerations"), t);
		json_decref(t);
		if (!ok) {
			snprintf(why, len, "node %s is unschedulable", n->name);
			return why;
		}
	}
	/* anti-affinity, both ways, against every other placed pod in the domain */
	for (size_t qi = 0; qi < c->np; qi++) {
		const struct vpod *q = &c->p[qi];
		if (q == p || q->node < 0)
			continue;
		const struct vnode *qn = &c->n[q->node];
		for (int t = 0; t < p->nanti; t++)
			if (same_domain(n, qn, p->anti[t].topo) && term_matches(&p->anti[t], q)) {
				snprintf(why, len, "anti-affinity of %s violated by a pod on %s",
					 p->ns, qn->name);
				return why;
			}
		for (int t = 0; t < q->nanti; t++)
			if (same_domain(n, qn, q->anti[t].topo) && term_matches(&q->anti[t], p)) {
				snprintf(why, len, "anti-affinity of a pod on %s violated on %s",
					 qn->name, n->name);
				return why;
			}
	}
	/* P's required affinity */
	if (p->naff) {
		bool self = true;
		for (int t = 0; t < p->naff; t++)
			self = self && term_matches(&p->aff[t], p);
		for (int t = 0; t < p->naff; t++) {
			bool here = false, anywhere = false;
			if (!label(n, p->aff[t].topo)) {
				snprintf(why, len, "node %s lacks %s for pod affinity", n->name,
					 p->aff[t].topo);
				return why;
			}
			for (size_t qi = 0; qi < c->np && !here; qi++) {
				const struct vpod *q = &c->p[qi];
				if (q == p || q->node < 0)
					continue;
				bool all = true;
				for (int u = 0; u < p->naff && all; u++)
					all = term_matches(&p->aff[u], q);
				if (!all)
					continue;
				anywhere = true;
				if (same_domain(n, &c->n[q->node], p->aff[t].topo))
					here = true;
			}
			if (!here && !(self && !anywhere)) {
				snprintf(why, len, "pod affinity not met on %s", n->name);
				return why;
			}
		}
	}
	/* hard topology spread */
	for (int t = 0; t < p->nspr; t++) {
		const struct vspr *sp = &p->spr[t];
		const char *mine = label(n, sp->topo);
		if (!mine) {
			snprintf(why, len, "node %s lacks %s for topology spread", n->name,
				 sp->topo);
			return why;
		}
		/* eligible domains: of nodes passing P's node selection */
		struct hashmap *dom = hashmap_new(64);
		size_t ndom = 0;
		for (size_t k = 0; k < c->nn; k++) {
			const char *v = label(&c->n[k], sp->topo);
			if (!v || node_selection(p, &c->n[k]))
				continue;
			if (!hashmap_get(dom, v)) {
				hashmap_put(dom, v, (void *)1, NULL);
				ndom++;
			}
		}
		int64_t *cnt = calloc(ndom + 1, sizeof(*cnt));
		const char **names = calloc(ndom + 1, sizeof(*names));
		size_t it = 0, di = 0;
		const char *k;
		void *v;
		while (hashmap_next(dom, &it, &k, &v))
			names[di++] = k;
		int64_t mine_cnt = 0;
		for (size_t qi = 0; qi < c->np; qi++) {
			const struct vpod *q = &c->p[qi];
			bool counted = q->node >= 0 && (q != p || !what_if);
			if (!counted || strcmp(q->ns, p->ns) || !selector_matches(sp->sel, q->labels))
				continue;
			const struct vnode *qn = &c->n[q->node];
			const char *qv = label(qn, sp->topo);
			if (!qv || node_selection(p, qn))
				continue;
			for (size_t d = 0; d < ndom; d++)
				if (!strcmp(names[d], qv))
					cnt[d]++;
			if (!strcmp(qv, mine))
				mine_cnt++;
		}
		int64_t mn = INT64_MAX;
		for (size_t d = 0; d < ndom; d++)
			if (cnt[d] < mn)
				mn = cnt[d];
		if (!ndom || (sp->min_domains > 0 && (int64_t)ndom < sp->min_domains))
			mn = 0;
		if (what_if && selector_matches(sp->sel, p->labels))
			mine_cnt++;
		free(cnt);
		free(names);
		hashmap_free(dom);
		if (mine_cnt - mn > sp->max_skew) {
			snprintf(why, len, "topology spread on %s skewed %lld over %lld", sp->topo,
				 (long long)(mine_cnt - mn), (long long)sp->max_skew);
			return why;
		}
	}
	return NULL;
}

int sched_verify(const json_t *nodes, const json_t *pods, char *err, size_t errlen)
{
	struct vctx c;
	int bad = 0;
	char why[512];
	if (err && errlen)
		err[0] = 0;
	if (ctx_build(&c, nodes, pods)) {
		ctx_free(&c);
		if (err)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < c.np; i++) {
		const struct vpod *p = &c.p[i];
		if (p->node < 0)
			continue;
		const char *w = check(&c, p, p->node, false, why, sizeof(why));
		if (w) {
			if (!bad && err)
				snprintf(err, errlen, "%s/%s: %s", p->ns,
					 json_string_value(json_object_get(
						 json_object_get(p->obj, "metadata"), "name")),
					 w);
			bad++;
		}
	}
	ctx_free(&c);
	return bad;
}

bool sched_verify_fits_somewhere(const json_t *nodes, const json_t *pods, size_t pi)
{
	struct vctx c;
	char why[512];
	bool ok = false;
	if (ctx_build(&c, nodes, pods) || pi >= c.np) {
		ctx_free(&c);
		return false;
	}
	for (size_t ni = 0; ni < c.nn && !ok; ni++)
		ok = check(&c, &c.p[pi], (int)ni, true, why, sizeof(why)) == NULL;
	ctx_free(&c);
	return ok;
}
