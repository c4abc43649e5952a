// SPDX-License-Identifier: Apache-2.0
/*
 * The scheduler's snapshot: nodes, pods, pod groups and namespaces, kept incrementally from
 * add/update/delete calls that take the objects as the API serves them.
 *
 * The design choice: each object is parsed into a compact struct once, here, and every pod
 * affinity or spread term is deduplicated into a struct term that counts per topology domain
 * (and per node) the placed pods matching it and the placed pods holding it. Placing or
 * removing a pod updates those counters (pod_attach/pod_detach), so the filters and scores
 * read one integer per term per node and never walk pods.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "quantity.h"
#include "sched_int.h"

#define ERR(...)                                                                                   \
	do {                                                                                       \
		if (err)                                                                           \
			snprintf(err, errlen, __VA_ARGS__);                                        \
	} while (0)

int64_t sched_now(struct sched *s)
{
	if (s->ops.now_ms)
		return s->ops.now_ms(s->ops.ctx);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct sns *sched_ns_get(struct sched *s, sid_t ns)
{
	const char *name = intern_str(&s->in, ns);
	struct sns *n = strmap_get(&s->nss, name);
	if (n)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->id = ns;
	n->apos = -1;
	if (strmap_put(&s->nss, name, n)) {
		free(n);
		return NULL;
	}
	return n;
}

/* ---- topology ---- */

static int topo_domain(struct topo *t, struct sched *s, sid_t val)
{
	if (!val)
		return -1;
	const char *v = intern_str(&s->in, val);
	uintptr_t d = (uintptr_t)strmap_get(&t->doms, v);
	if (d)
		return (int)d - 1;
	if (ARRAY_GROW(t->dom_nodes, t->ndom, t->cap))
		return -1;
	t->dom_nodes[t->ndom] = 0;
	if (strmap_put(&t->doms, v, (void *)(uintptr_t)(t->ndom + 1)))
		return -1;
	return (int)t->ndom++;
}

static void node_set_domains(struct sched *s, struct snode *n, int from)
{
	for (int i = from; i < s->ntopo; i++) {
		struct topo *t = &s->topo[i];
		n->dom[i] = topo_domain(t, s, lbl_get(&n->labels, t->key));
		if (n->dom[i] >= 0)
			t->dom_nodes[n->dom[i]]++;
	}
}

static void node_clear_domains(struct sched *s, struct snode *n)
{
	for (int i = 0; i < s->ntopo; i++) {
		if (n->dom[i] >= 0)
			s->topo[i].dom_nodes[n->dom[i]]--;
		n->dom[i] = -1;
	}
}

int sched_topo_index(struct sched *s, sid_t key)
{
	for (int i = 0; i < s->ntopo; i++)
		if (s->topo[i].key == key)
			return i;
	if (s->ntopo >= SCHED_MAX_TOPO)
		return -1;
	int i = s->ntopo++;
	memset(&s->topo[i], 0, sizeof(s->topo[i]));
	s->topo[i].key = key;
	for (uint32_t j = 0; j < s->nlive; j++)
		node_set_domains(s, s->live[j], i);
	/* no placed pod can be counted yet under a key no term used before */
	return i;
}

/* ---- terms ---- */

static int term_grow(int32_t **a, uint32_t *cap, uint32_t need)
{
	if (need <= *cap)
		return 0;
	uint32_t nc = *cap ? *cap : 8;
	while (nc < need)
		nc *= 2;
	int32_t *na = realloc(*a, nc * sizeof(**a));
	if (!na)
		return -ENOMEM;
	memset(na + *cap, 0, (nc - *cap) * sizeof(**a));
	*a = na;
	*cap = nc;
	return 0;
}

/* The four per-domain arrays share dcap; grow them together. */
static int term_dom_reserve(struct term *t, uint32_t need)
{
	if (need <= t->dcap)
		return 0;
	uint32_t c;
	c = t->dcap;
	if (term_grow(&t->m_dom, &c, need))
		return -ENOMEM;
	c = t->dcap;
	if (term_grow(&t->h_anti, &c, need))
		return -ENOMEM;
	c = t->dcap;
	if (term_grow(&t->h_aff, &c, need))
		return -ENOMEM;
	c = t->dcap;
	if (term_grow(&t->h_pref, &c, need))
		return -ENOMEM;
	t->dcap = c;
	return 0;
}

static bool nsf_match(struct sched *s, const struct nsf *f, sid_t ns)
{
	if (f->all)
		return true;
	for (uint32_t i = 0; i < f->n; i++)
		if (f->ns[i] == ns)
			return true;
	if (f->has_sel) {
		struct sns *n = strmap_get(&s->nss, intern_str(&s->in, ns));
		static const struct lblset empty;
		return csel_match(&s->in, &f->sel, n ? &n->labels : &empty);
	}
	return false;
}

bool term_cond_match(struct sched *s, const struct term *t, const struct spod *p)
{
	for (uint32_t i = 0; i < t->nconds; i++) {
		if (!nsf_match(s, &t->conds[i].nsf, p->ns))
			return false;
		if (!csel_match(&s->in, &t->conds[i].sel, &p->labels))
			return false;
	}
	return true;
}

static void cond_free(struct cond *c)
{
	free(c->nsf.ns);
	csel_free(&c->nsf.sel);
	csel_free(&c->sel);
}

static void term_count_pod(struct term *t, const struct snode *n, int delta)
{
	int d = n->dom[t->topo];
	if (d >= 0 && !term_dom_reserve(t, (uint32_t)d + 1))
		t->m_dom[d] += delta;
	if (!term_grow(&t->m_node, &t->ncap, (uint32_t)n->slot + 1))
		t->m_node[n->slot] += delta;
	t->m_total += delta;
}

/* Takes ownership of conds. Returns the shared term, or NULL. */
static struct term *term_acquire(struct sched *s, struct cond *conds, uint32_t nconds, int topo)
{
	char sig[2048];
	size_t off = 0;
	off += (size_t)snprintf(sig, sizeof(sig), "t%d", topo);
	for (uint32_t i = 0; i < nconds && off < sizeof(sig); i++) {
		const struct nsf *f = &conds[i].nsf;
		off += (size_t)snprintf(sig + off, sizeof(sig) - off, "|%c", f->all ? 'A' : 'n');
		for (uint32_t j = 0; j < f->n && off < sizeof(sig); j++)
			off += (size_t)snprintf(sig + off, sizeof(sig) - off, ",%u", f->ns[j]);
		if (f->has_sel && off < sizeof(sig)) {
			sig[off++] = 'S';
			csel_sig(&f->sel, sig, sizeof(sig), &off);
		}
		if (off < sizeof(sig))
			sig[off++] = ':';
		csel_sig(&conds[i].sel, sig, sizeof(sig), &off);
	}
	if (off >= sizeof(sig) - 1) {
		/* too long to deduplicate safely: make it unique */
		snprintf(sig, sizeof(sig), "u%lld", (long long)++s->seq);
	} else {
		sig[off] = 0;
	}
	struct term *t = strmap_get(&s->termmap, sig);
	if (t) {
		for (uint32_t i = 0; i < nconds; i++)
			cond_free(&conds[i]);
		free(conds);
		t->refs++;
		return t;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		goto err;
	t->sig = strdup(sig);
	t->conds = conds;
	t->nconds = nconds;
	t->topo = topo;
	t->refs = 1;
	if (!t->sig || ARRAY_GROW(s->terms, s->nterms, s->termcap) ||
	    strmap_put(&s->termmap, sig, t)) {
		free(t->sig);
		free(t);
		goto err;
	}
	if (term_dom_reserve(t, s->topo[topo].ndom + 1) ||
	    term_grow(&t->m_node, &t->ncap, s->nslots + 1)) {
		strmap_del(&s->termmap, sig);
		free(t->m_dom);
		free(t->h_anti);
		free(t->h_aff);
		free(t->h_pref);
		free(t->m_node);
		free(t->sig);
		free(t);
		goto err;
	}
	t->idx = s->nterms;
	s->terms[s->nterms++] = t;
	/* count the pods already placed (once per term, when it first appears) */
	for (uint32_t i = 0; i < s->nlive; i++) {
		struct snode *n = s->live[i];
		for (uint32_t j = 0; j < n->npl; j++)
			if (term_cond_match(s, t, n->pods[j]))
				term_count_pod(t, n, 1);
	}
	return t;
err:
	for (uint32_t i = 0; i < nconds; i++)
		cond_free(&conds[i]);
	free(conds);
	return NULL;
}

static void term_release(struct sched *s, struct term *t)
{
	if (!t || --t->refs > 0)
		return;
	strmap_del(&s->termmap, t->sig);
	s->terms[t->idx] = s->terms[--s->nterms];
	s->terms[t->idx]->idx = t->idx;
	for (uint32_t i = 0; i < t->nconds; i++)
		cond_free(&t->conds[i]);
	free(t->conds);
	free(t->m_dom);
	free(t->m_node);
	free(t->h_anti);
	free(t->h_aff);
	free(t->h_pref);
	free(t->sig);
	free(t);
}

/* ---- attach / detach ---- */

static bool pod_overcommits(const struct sched *s, const struct spod *p)
{
	return p->batch && s->cfg.pred.enabled;
}

static void holders(struct spod *p, struct snode *n, int delta)
{
	for (uint32_t i = 0; i < p->nanti; i++) {
		struct term *t = p->anti[i].t;
		int d = n->dom[t->topo];
		if (d >= 0 && !term_dom_reserve(t, (uint32_t)d + 1))
			t->h_anti[d] += delta;
		t->n_anti += delta;
	}
	for (uint32_t i = 0; i < p->naff; i++) {
		struct term *t = p->aff[i].t;
		int d = n->dom[t->topo];
		if (d >= 0 && !term_dom_reserve(t, (uint32_t)d + 1))
			t->h_aff[d] += delta;
		t->n_aff += delta;
	}
	struct pterm *lists[2] = { p->paff, p->panti };
	uint32_t counts[2] = { p->npaff, p->npanti };
	for (int l = 0; l < 2; l++) {
		for (uint32_t i = 0; i < counts[l]; i++) {
			struct term *t = lists[l][i].t;
			int d = n->dom[t->topo];
			if (d >= 0 && !term_dom_reserve(t, (uint32_t)d + 1))
				t->h_pref[d] += delta * lists[l][i].w;
			t->n_pref += delta;
		}
	}
}

void pod_attach(struct sched *s, struct spod *p, struct snode *n)
{
	bool oc = pod_overcommits(s, p);
	for (int r = 0; r < SCHED_NRES; r++) {
		if (oc)
			n->breq[r] += p->req[r];
		else
			n->req[r] += p->req[r];
		if (p->nsp)
			p->nsp->used[r] += p->req[r];
	}
	n->nz_cpu += p->nz_cpu;
	n->nz_mem += p->nz_mem;
	n->npods++;
	if (ARRAY_GROW(n->pods, n->npl, n->plcap) == 0) {
		p->node_pos = (int32_t)n->npl;
		n->pods[n->npl++] = p;
	} else {
		p->node_pos = -1;
		log_error("scheduler: out of memory listing pods of node %s", n->name);
	}
	for (uint32_t i = 0; i < s->nterms; i++)
		if (term_cond_match(s, s->terms[i], p))
			term_count_pod(s->terms[i], n, 1);
	holders(p, n, 1);
	p->node = n->slot;
	p->node_name = n->name_sid;
	if (!oc && s->cfg.pred.enabled)
		predict_node_add(s, n, p, 1);
}

void pod_detach(struct sched *s, struct spod *p)
{
	if (p->node < 0)
		return;
	struct snode *n = s->slots[p->node];
	bool oc = pod_overcommits(s, p);
	for (int r = 0; r < SCHED_NRES; r++) {
		if (oc)
			n->breq[r] -= p->req[r];
		else
			n->req[r] -= p->req[r];
		if (p->nsp)
			p->nsp->used[r] -= p->req[r];
	}
	n->nz_cpu -= p->nz_cpu;
	n->nz_mem -= p->nz_mem;
	n->npods--;
	if (p->node_pos >= 0) {
		n->pods[p->node_pos] = n->pods[--n->npl];
		n->pods[p->node_pos]->node_pos = p->node_pos;
	}
	for (uint32_t i = 0; i < s->nterms; i++)
		if (term_cond_match(s, s->terms[i], p))
			term_count_pod(s->terms[i], n, -1);
	holders(p, n, -1);
	if (!oc && s->cfg.pred.enabled)
		predict_node_add(s, n, p, -1);
	p->node = -1;
	p->node_pos = -1;
}

/* ---- nodes ---- */

static int res_index(struct sched *s, const char *name, bool create)
{
	sid_t id = intern_find(&s->in, name);
	if (id)
		for (uint32_t i = 0; i < s->nres; i++)
			if (s->resname[i] == id)
				return (int)i;
	if (!create || s->nres >= SCHED_NRES)
		return -1;
	id = intern_id(&s->in, name);
	if (!id)
		return -1;
	s->resname[s->nres] = id;
	return (int)s->nres++;
}

static int parse_resources(struct sched *s, const json_t *obj, int64_t *out, const char *field,
			   bool create, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	if (!obj)
		return 0;
	if (!json_is_object(obj)) {
		ERR("%s: must be an object", field);
		return -EINVAL;
	}
	json_object_foreach((json_t *)obj, k, v) {
		int64_t m;
		int rc;
		if (json_is_string(v))
			rc = quantity_parse_milli(json_string_value(v), &m);
		else if (json_is_integer(v)) {
			m = json_integer_value(v) * 1000;
			rc = 0;
		} else if (json_is_real(v)) {
			m = (int64_t)(json_real_value(v) * 1000 + 0.999);
			rc = 0;
		} else
			rc = -EINVAL;
		if (rc || m < 0) {
			ERR("%s.%s: not a valid quantity", field, k);
			return -EINVAL;
		}
		if (strcmp(k, "pods") == 0) {
			out[SCHED_NRES] = m / 1000;
			continue;
		}
		int r = res_index(s, k, create);
		if (r < 0) {
			if (!create)
				continue; /* a node lacking it has none */
			ERR("%s.%s: too many distinct resources (at most %d)", field, k,
			    SCHED_NRES);
			return -EINVAL;
		}
		out[r] = m;
	}
	return 0;
}

static uint8_t parse_effect(const char *e)
{
	if (!e || !*e)
		return 0;
	if (!strcmp(e, "NoSchedule"))
		return EFF_NOSCHED;
	if (!strcmp(e, "PreferNoSchedule"))
		return EFF_PREFER;
	if (!strcmp(e, "NoExecute"))
		return EFF_NOEXEC;
	return 255;
}

static void node_free(struct snode *n)
{
	if (!n)
		return;
	free(n->name);
	lblset_free(&n->labels);
	free(n->taints);
	free(n->pods);
	free(n->noms);
	free(n->pk_cpu);
	free(n->pk_mem);
	free(n);
}

static int parse_node(struct sched *s, const json_t *j, struct snode *n, char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(json_object_get(j, "metadata"),
							     "name"));
	if (!name || !*name) {
		ERR("metadata.name: Required value");
		return -EINVAL;
	}
	n->name = strdup(name);
	n->name_sid = intern_id(&s->in, name);
	if (!n->name || !n->name_sid)
		return -ENOMEM;
	const json_t *labels = json_object_get(json_object_get(j, "metadata"), "labels");
	if (labels && !json_is_object(labels)) {
		ERR("metadata.labels: must be an object");
		return -EINVAL;
	}
	int rc = lblset_from_json(&s->in, labels, s->k_name, n->name_sid, &n->labels);
	if (rc) {
		ERR("metadata.labels: %s", rc == -EINVAL ? "values must be strings" : "no memory");
		return rc;
	}
	const json_t *spec = json_object_get(j, "spec");
	n->unschedulable = json_is_true(json_object_get(spec, "unschedulable"));
	const json_t *taints = json_object_get(spec, "taints");
	if (taints && !json_is_array(taints)) {
		ERR("spec.taints: must be an array");
		return -EINVAL;
	}
	size_t nt = json_array_size(taints);
	if (nt) {
		n->taints = calloc(nt, sizeof(*n->taints));
		if (!n->taints)
			return -ENOMEM;
	}
	for (size_t i = 0; i < nt; i++) {
		const json_t *t = json_array_get(taints, i);
		const char *k = json_string_value(json_object_get(t, "key"));
		const char *v = json_string_value(json_object_get(t, "value"));
		uint8_t eff = parse_effect(json_string_value(json_object_get(t, "effect")));
		if (!k || !*k || eff == 255 || eff == 0) {
			ERR("spec.taints[%zu]: %s", i,
			    (!k || !*k) ? "key: Required value" : "effect: Unsupported value");
			return -EINVAL;
		}
		char disp[512];
		snprintf(disp, sizeof(disp), "{%s: %s}", k, v ? v : "");
		n->taints[n->ntaints++] = (struct taint){ intern_id(&s->in, k),
							  intern_id(&s->in, v ? v : ""),
							  intern_id(&s->in, disp), eff };
	}
	const json_t *st = json_object_get(j, "status");
	const json_t *alloc = json_object_get(st, "allocatable");
	if (!alloc)
		alloc = json_object_get(st, "capacity");
	int64_t res[SCHED_NRES + 1] = { 0 };
	res[SCHED_NRES] = 110;
	rc = parse_resources(s, alloc, res, "status.allocatable", true, err, errlen);
	if (rc)
		return rc;
	memcpy(n->alloc, res, sizeof(n->alloc));
	n->maxpods = (int32_t)res[SCHED_NRES];
	return 0;
}

static void node_reattach_orphans(struct sched *s, struct snode *n)
{
	for (uint32_t i = 0; i < s->norphans;) {
		struct spod *p = s->orphans[i];
		if (p->node_name == n->name_sid) {
			s->orphans[i] = s->orphans[--s->norphans];
			pod_attach(s, p, n);
		} else {
			i++;
		}
	}
}

static void orphan_add(struct sched *s, struct spod *p)
{
	if (ARRAY_GROW(s->orphans, s->norphans, s->orphcap) == 0)
		s->orphans[s->norphans++] = p;
}

static void orphan_remove(struct sched *s, struct spod *p)
{
	for (uint32_t i = 0; i < s->norphans; i++)
		if (s->orphans[i] == p) {
			s->orphans[i] = s->orphans[--s->norphans];
			return;
		}
}

int sched_node_upsert(struct sched *s, const json_t *node, char *err, size_t errlen)
{
	struct snode *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (int i = 0; i < SCHED_MAX_TOPO; i++)
		n->dom[i] = -1;
	int rc = parse_node(s, node, n, err, errlen);
	if (rc) {
		node_free(n);
		return rc;
	}
	struct snode *old = strmap_get(&s->nodes, n->name);
	if (old) {
		/* take the pods off, swap the node's facts, put them back */
		uint32_t npl = old->npl;
		struct spod **pods = malloc((npl ? npl : 1) * sizeof(*pods));
		if (!pods) {
			node_free(n);
			return -ENOMEM;
		}
		if (npl)
			memcpy(pods, old->pods, npl * sizeof(*pods));
		for (uint32_t i = 0; i < npl; i++)
			pod_detach(s, pods[i]);
		for (int r = 0; r < SCHED_NRES; r++)
			s->cap_total[r] += n->alloc[r] - old->alloc[r];
		node_clear_domains(s, old);
		lblset_free(&old->labels);
		old->labels = n->labels;
		n->labels = (struct lblset){ 0 };
		free(old->taints);
		old->taints = n->taints;
		old->ntaints = n->ntaints;
		n->taints = NULL;
		old->unschedulable = n->unschedulable;
		memcpy(old->alloc, n->alloc, sizeof(old->alloc));
		old->maxpods = n->maxpods;
		node_set_domains(s, old, 0);
		for (uint32_t i = 0; i < npl; i++)
			pod_attach(s, pods[i], old);
		free(pods);
		node_free(n);
		if (s->cfg.pred.enabled)
			predict_node_peak(s, old);
		queue_move_on_event(s, ~0u, NULL);
		return 0;
	}
	int slot;
	if (s->nfree) {
		slot = s->freeslots[--s->nfree];
	} else {
		if (ARRAY_GROW(s->slots, s->nslots, s->slotcap)) {
			node_free(n);
			return -ENOMEM;
		}
		slot = (int)s->nslots++;
		uint32_t need = s->nslots;
		uint32_t *nf = realloc(s->fail, need * sizeof(*nf));
		int32_t *nfe = realloc(s->feasible, need * sizeof(*nfe));
		if (nf)
			s->fail = nf;
		if (nfe)
			s->feasible = nfe;
		int64_t *ns = realloc(s->score_tmp, need * sizeof(*ns) * (PL_COUNT + 1));
		if (ns)
			s->score_tmp = ns;
		if (!nf || !nfe || !ns) {
			s->nslots--;
			node_free(n);
			return -ENOMEM;
		}
	}
	n->slot = slot;
	s->slots[slot] = n;
	uint32_t lc = s->nlive + 1;
	struct snode **nl = realloc(s->live, lc * sizeof(*nl));
	if (!nl || strmap_put(&s->nodes, n->name, n)) {
		if (nl)
			s->live = nl;
		s->slots[slot] = NULL;
		if (ARRAY_GROW(s->freeslots, s->nfree, s->nslots) == 0)
			s->freeslots[s->nfree++] = slot;
		node_free(n);
		return -ENOMEM;
	}
	s->live = nl;
	n->live_pos = (int)s->nlive;
	s->live[s->nlive++] = n;
	for (int r = 0; r < SCHED_NRES; r++)
		s->cap_total[r] += n->alloc[r];
	node_set_domains(s, n, 0);
	if (s->cfg.pred.enabled) {
		int nb = s->cfg.pred.nbuckets;
		n->pk_cpu = calloc(nb, sizeof(int64_t));
		n->pk_mem = calloc(nb, sizeof(int64_t));
	}
	if (s->norphans)
		node_reattach_orphans(s, n);
	queue_move_on_event(s, ~0u, NULL);
	return 0;
}

int sched_node_delete(struct sched *s, const char *name)
{
	struct snode *n = strmap_del(&s->nodes, name);
	if (!n)
		return -ENOENT;
	while (n->npl) {
		struct spod *p = n->pods[n->npl - 1];
		if (p->state == PS_WAITING) {
			/* a gang member reserved here: the whole gang goes back to the queue */
			char msg[600];
			snprintf(msg, sizeof(msg), "node %s of a reservation was deleted", n->name);
			plugin_gang_reject(s, p->gang, msg, FAIL_BIT(PL_GANG));
			continue;
		}
		pod_detach(s, p);
		p->node_name = n->name_sid;
		orphan_add(s, p);
	}
	for (int r = 0; r < SCHED_NRES; r++)
		s->cap_total[r] -= n->alloc[r];
	node_clear_domains(s, n);
	s->live[n->live_pos] = s->live[--s->nlive];
	s->live[n->live_pos]->live_pos = n->live_pos;
	s->slots[n->slot] = NULL;
	for (uint32_t i = 0; i < s->nterms; i++) {
		struct term *t = s->terms[i];
		if ((uint32_t)n->slot < t->ncap)
			t->m_node[n->slot] = 0;
	}
	if (ARRAY_GROW(s->freeslots, s->nfree, s->nslots) == 0)
		s->freeslots[s->nfree++] = n->slot;
	int slot = n->slot;
	struct spod *p;
	for (size_t it = 0; strmap_next(&s->pods, &it, &p);) {
		if (p->nominated == slot)
			p->nominated = -1;
	}
	node_free(n);
	return 0;
}

/* ---- pods ---- */

static void pod_free(struct spod *p)
{
	if (!p)
		return;
	free(p->key);
	free(p->name);
	free(p->uid);
	lblset_free(&p->labels);
	lblset_free(&p->nodesel);
	for (uint32_t i = 0; i < p->nnreq; i++) {
		csel_free(&p->nreq[i].exprs);
		csel_free(&p->nreq[i].fields);
	}
	free(p->nreq);
	for (uint32_t i = 0; i < p->nnpref; i++) {
		csel_free(&p->npref[i].t.exprs);
		csel_free(&p->npref[i].t.fields);
	}
	free(p->npref);
	free(p->tol);
	free(p->aff);
	free(p->anti);
	free(p->paff);
	free(p->panti);
	free(p->spr);
	free(p->pcpu);
	free(p->pmem);
	free(p->msg);
	free(p);
}

static void pod_release_terms(struct sched *s, struct spod *p)
{
	struct pterm *lists[4] = { p->aff, p->anti, p->paff, p->panti };
	uint32_t counts[4] = { p->naff, p->nanti, p->npaff, p->npanti };
	for (int l = 0; l < 4; l++)
		for (uint32_t i = 0; i < counts[l]; i++)
			term_release(s, lists[l][i].t);
	for (uint32_t i = 0; i < p->nspr; i++)
		term_release(s, p->spr[i].t);
	p->naff = p->nanti = p->npaff = p->npanti = p->nspr = 0;
	if (p->wp)
		predict_profile_put(s, p->wp);
	p->wp = NULL;
}

static int parse_nsterm(struct sched *s, const json_t *t, struct nsterm *out, const char *field,
			char *err, size_t errlen)
{
	char f[256];
	memset(out, 0, sizeof(*out));
	const json_t *me = json_object_get(t, "matchExpressions");
	const json_t *mf = json_object_get(t, "matchFields");
	if (!json_array_size(me) && !json_array_size(mf)) {
		/* an empty term matches no node */
		out->exprs.none = true;
		return 0;
	}
	json_t *wrap = json_object();
	if (!wrap)
		return -ENOMEM;
	int rc = 0;
	if (me) {
		json_object_set(wrap, "matchExpressions", (json_t *)me);
		snprintf(f, sizeof(f), "%s.matchExpressions", field);
		rc = csel_from_json(&s->in, wrap, true, &out->exprs, f, err, errlen);
	}
	if (!rc && mf) {
		json_object_set(wrap, "matchExpressions", (json_t *)mf);
		snprintf(f, sizeof(f), "%s.matchFields", field);
		rc = csel_from_json(&s->in, wrap, false, &out->fields, f, err, errlen);
		for (uint32_t i = 0; !rc && i < out->fields.n; i++) {
			if (strcmp(intern_str(&s->in, out->fields.reqs[i].key), "metadata.name")) {
				ERR("%s.matchFields[%u].key: only metadata.name is supported",
				    field, i);
				rc = -EINVAL;
			}
			out->fields.reqs[i].key = s->k_name;
		}
	}
	json_decref(wrap);
	return rc;
}

static int parse_nsf(struct sched *s, const json_t *term, sid_t own, struct nsf *f,
		     const char *field, char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	const json_t *nss = json_object_get(term, "namespaces");
	const json_t *nsel = json_object_get(term, "namespaceSelector");
	size_t n = json_array_size(nss);
	if (nsel && !json_is_null(nsel)) {
		if (json_is_object(nsel) && json_object_size(nsel) == 0) {
			f->all = true;
			return 0;
		}
		char fld[512];
		snprintf(fld, sizeof(fld), "%s.namespaceSelector", field);
		int rc = csel_from_json(&s->in, nsel, false, &f->sel, fld, err, errlen);
		if (rc)
			return rc;
		f->has_sel = true;
	}
	if (!n && !f->has_sel)
		n = 0;
	f->ns = calloc(n + 1, sizeof(*f->ns));
	if (!f->ns)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *v = json_string_value(json_array_get(nss, i));
		if (!v) {
			ERR("%s.namespaces[%zu]: must be a string", field, i);
			return -EINVAL;
		}
		f->ns[f->n++] = intern_id(&s->in, v);
	}
	if (!f->n && !f->has_sel)
		f->ns[f->n++] = own;
	return 0;
}

static int parse_cond(struct sched *s, const json_t *term, sid_t own, struct cond *c,
		      const char *field, char *err, size_t errlen)
{
	char fld[512];
	memset(c, 0, sizeof(*c));
	int rc = parse_nsf(s, term, own, &c->nsf, field, err, errlen);
	if (rc)
		return rc;
	snprintf(fld, sizeof(fld), "%s.labelSelector", field);
	const json_t *ls = json_object_get(term, "labelSelector");
	return csel_from_json(&s->in, ls ? ls : json_null(), false, &c->sel, fld, err, errlen);
}

static int topo_of(struct sched *s, const json_t *term, const char *field, char *err,
		   size_t errlen)
{
	const char *tk = json_string_value(json_object_get(term, "topologyKey"));
	if (!tk || !*tk) {
		ERR("%s.topologyKey: Required value", field);
		return -EINVAL;
	}
	int t = sched_topo_index(s, intern_id(&s->in, tk));
	if (t < 0) {
		ERR("%s.topologyKey: too many distinct topology keys (at most %d)", field,
		    SCHED_MAX_TOPO);
		return -EINVAL;
	}
	return t;
}

/* Required or preferred pod (anti-)affinity terms of one list. */
static int parse_pod_terms(struct sched *s, struct spod *p, const json_t *arr, bool preferred,
			   bool anti, bool all_conds, struct pterm **out, uint32_t *nout,
			   const char *field, char *err, size_t errlen)
{
	size_t n = json_array_size(arr);
	if (arr && !json_is_array(arr)) {
		ERR("%s: must be an array", field);
		return -EINVAL;
	}
	if (!n)
		return 0;
	*out = calloc(n, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	char fld[256];
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(arr, i);
		const json_t *term = e;
		int32_t w = 0;
		snprintf(fld, sizeof(fld), "%s[%zu]", field, i);
		if (preferred) {
			term = json_object_get(e, "podAffinityTerm");
			w = (int32_t)json_integer_value(json_object_get(e, "weight"));
			if (w < 1 || w > 100) {
				ERR("%s.weight: must be in the range 1-100", fld);
				return -EINVAL;
			}
			snprintf(fld, sizeof(fld), "%s[%zu].podAffinityTerm", field, i);
			if (anti)
				w = -w;
		}
		int topo = topo_of(s, term, fld, err, errlen);
		if (topo < 0)
			return -EINVAL;
		uint32_t nc = all_conds ? (uint32_t)n : 1;
		struct cond *conds = calloc(nc, sizeof(*conds));
		if (!conds)
			return -ENOMEM;
		int rc = 0;
		for (uint32_t c = 0; c < nc && !rc; c++) {
			const json_t *ct = all_conds ? json_array_get(arr, c) : term;
			char cf[256];
			snprintf(cf, sizeof(cf), "%s[%u]", field, all_conds ? c : (uint32_t)i);
			rc = parse_cond(s, ct, p->ns, &conds[c], all_conds ? cf : fld, err, errlen);
		}
		if (rc) {
			for (uint32_t c = 0; c < nc; c++)
				cond_free(&conds[c]);
			free(conds);
			return rc;
		}
		struct term *t = term_acquire(s, conds, nc, topo);
		if (!t)
			return -ENOMEM;
		(*out)[(*nout)++] = (struct pterm){ t, w };
	}
	return 0;
}

static int parse_requests(struct sched *s, const json_t *containers, int64_t *sum, bool max,
			  const char *field, char *err, size_t errlen)
{
	size_t n = json_array_size(containers);
	for (size_t i = 0; i < n; i++) {
		const json_t *res = json_object_get(json_array_get(containers, i), "resources");
		int64_t req[SCHED_NRES + 1] = { 0 }, lim[SCHED_NRES + 1] = { 0 };
		char f[128];
		snprintf(f, sizeof(f), "%s[%zu].resources.requests", field, i);
		int rc = parse_resources(s, json_object_get(res, "requests"), req, f, true, err,
					 errlen);
		if (rc)
			return rc;
		snprintf(f, sizeof(f), "%s[%zu].resources.limits", field, i);
		rc = parse_resources(s, json_object_get(res, "limits"), lim, f, true, err, errlen);
		if (rc)
			return rc;
		for (int r = 0; r < SCHED_NRES; r++) {
			int64_t v = req[r] ? req[r] : lim[r]; /* a limit alone is the request */
			if (max)
				sum[r] = v > sum[r] ? v : sum[r];
			else
				sum[r] += v;
		}
	}
	return 0;
}

static int parse_pod(struct sched *s, const json_t *j, struct spod *p, sid_t *node_name,
		     bool *done, char *err, size_t errlen)
{
	const json_t *md = json_object_get(j, "metadata");
	const json_t *spec = json_object_get(j, "spec");
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	const char *uid = json_string_value(json_object_get(md, "uid"));
	char key[512];
	int rc;
	if (!name || !*name) {
		ERR("metadata.name: Required value");
		return -EINVAL;
	}
	if (!ns || !*ns)
		ns = "default";
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	p->key = strdup(key);
	p->name = strdup(name);
	p->uid = strdup(uid ? uid : "");
	p->ns = intern_id(&s->in, ns);
	if (!p->key || !p->name || !p->uid || !p->ns)
		return -ENOMEM;
	p->nsp = sched_ns_get(s, p->ns);
	if (!p->nsp)
		return -ENOMEM;
	p->node = -1;
	p->node_pos = -1;
	p->nominated = -1;
	p->qpos = -1;
	const json_t *labels = json_object_get(md, "labels");
	if (labels && !json_is_object(labels)) {
		ERR("metadata.labels: must be an object");
		return -EINVAL;
	}
	rc = lblset_from_json(&s->in, labels, 0, 0, &p->labels);
	if (rc) {
		ERR("metadata.labels: %s", rc == -EINVAL ? "values must be strings" : "no memory");
		return rc;
	}
	p->terminating = json_object_get(md, "deletionTimestamp") &&
			 !json_is_null(json_object_get(md, "deletionTimestamp"));
	const char *phase = json_string_value(json_object_get(json_object_get(j, "status"),
							      "phase"));
	*done = phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
	const char *nn = json_string_value(json_object_get(spec, "nodeName"));
	*node_name = (nn && *nn) ? intern_id(&s->in, nn) : 0;

	/* profile */
	const char *sn = json_string_value(json_object_get(spec, "schedulerName"));
	if (!sn || !*sn)
		sn = "default-scheduler";
	p->profile = -1;
	for (int i = 0; i < s->cfg.nprofiles; i++)
		if (!strcmp(s->cfg.prof[i].sched_name, sn) || !strcmp(s->cfg.prof[i].name, sn)) {
			p->profile = i;
			break;
		}
	const json_t *prio = json_object_get(spec, "priority");
	if (prio && !json_is_integer(prio)) {
		ERR("spec.priority: must be an integer");
		return -EINVAL;
	}
	p->priority = (int32_t)json_integer_value(prio);
	const char *pcn = json_string_value(json_object_get(spec, "priorityClassName"));
	p->batch = pcn && s->cfg.pred.batch_class[0] && !strcmp(pcn, s->cfg.pred.batch_class);
	const char *pp = json_string_value(json_object_get(spec, "preemptionPolicy"));
	p->preempt_never = pp && !strcmp(pp, "Never");

	/* requests: containers summed, init containers' maximum, plus overhead */
	int64_t sum[SCHED_NRES] = { 0 }, init[SCHED_NRES] = { 0 };
	rc = parse_requests(s, json_object_get(spec, "containers"), sum, false, "spec.containers",
			    err, errlen);
	if (!rc)
		rc = parse_requests(s, json_object_get(spec, "initContainers"), init, true,
				    "spec.initContainers", err, errlen);
	if (rc)
		return rc;
	int64_t ov[SCHED_NRES + 1] = { 0 };
	rc = parse_resources(s, json_object_get(spec, "overhead"), ov, "spec.overhead", true, err,
			     errlen);
	if (rc)
		return rc;
	for (int r = 0; r < SCHED_NRES; r++) {
		p->req[r] = (sum[r] > init[r] ? sum[r] : init[r]) + ov[r];
		if (p->req[r])
			p->resmask |= 1u << r;
	}
	/* kube-scheduler's non-zero defaults for scoring: 100m cpu, 200Mi memory */
	p->nz_cpu = p->req[RES_CPU] ? p->req[RES_CPU] : 100;
	p->nz_mem = p->req[RES_MEM] ? p->req[RES_MEM] : 200LL * 1024 * 1024 * 1000;

	/* node selection */
	const json_t *nsel = json_object_get(spec, "nodeSelector");
	if (nsel && !json_is_object(nsel)) {
		ERR("spec.nodeSelector: must be an object");
		return -EINVAL;
	}
	rc = lblset_from_json(&s->in, nsel, 0, 0, &p->nodesel);
	if (rc) {
		ERR("spec.nodeSelector: values must be strings");
		return rc;
	}
	const json_t *aff = json_object_get(spec, "affinity");
	const json_t *na = json_object_get(aff, "nodeAffinity");
	const json_t *nreq = json_object_get(
		json_object_get(na, "requiredDuringSchedulingIgnoredDuringExecution"),
		"nodeSelectorTerms");
	if (json_object_get(na, "requiredDuringSchedulingIgnoredDuringExecution")) {
		size_t n = json_array_size(nreq);
		p->nreq = calloc(n + 1, sizeof(*p->nreq));
		if (!p->nreq)
			return -ENOMEM;
		if (!n) {
			/* no terms: matches no node */
			p->nreq[0].exprs.none = true;
			p->nnreq = 1;
		}
		for (size_t i = 0; i < n; i++) {
			char f[160];
			snprintf(f, sizeof(f),
				 "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[%zu]",
				 i);
			rc = parse_nsterm(s, json_array_get(nreq, i), &p->nreq[p->nnreq++], f, err,
					  errlen);
			if (rc)
				return rc;
		}
	}
	const json_t *npref = json_object_get(na, "preferredDuringSchedulingIgnoredDuringExecution");
	size_t nnp = json_array_size(npref);
	if (nnp) {
		p->npref = calloc(nnp, sizeof(*p->npref));
		if (!p->npref)
			return -ENOMEM;
	}
	for (size_t i = 0; i < nnp; i++) {
		const json_t *e = json_array_get(npref, i);
		char f[160];
		snprintf(f, sizeof(f),
			 "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[%zu]",
			 i);
		int64_t w = json_integer_value(json_object_get(e, "weight"));
		if (w < 1 || w > 100) {
			ERR("%s.weight: must be in the range 1-100", f);
			return -EINVAL;
		}
		struct npref *np = &p->npref[p->nnpref++];
		np->w = (int32_t)w;
		strncat(f, ".preference", sizeof(f) - strlen(f) - 1);
		rc = parse_nsterm(s, json_object_get(e, "preference"), &np->t, f, err, errlen);
		if (rc)
			return rc;
	}

	/* tolerations */
	const json_t *tols = json_object_get(spec, "tolerations");
	size_t nt = json_array_size(tols);
	if (nt) {
		p->tol = calloc(nt, sizeof(*p->tol));
		if (!p->tol)
			return -ENOMEM;
	}
	for (size_t i = 0; i < nt; i++) {
		const json_t *t = json_array_get(tols, i);
		const char *k = json_string_value(json_object_get(t, "key"));
		const char *op = json_string_value(json_object_get(t, "operator"));
		const char *v = json_string_value(json_object_get(t, "value"));
		uint8_t eff = parse_effect(json_string_value(json_object_get(t, "effect")));
		bool exists = op && !strcmp(op, "Exists");
		if (op && !exists && strcmp(op, "Equal")) {
			ERR("spec.tolerations[%zu].operator: Unsupported value: \"%s\"", i, op);
			return -EINVAL;
		}
		if (eff == 255) {
			ERR("spec.tolerations[%zu].effect: Unsupported value", i);
			return -EINVAL;
		}
		if ((!k || !*k) && !exists) {
			ERR("spec.tolerations[%zu].operator: must be Exists when key is empty", i);
			return -EINVAL;
		}
		p->tol[p->ntol++] = (struct toler){ (k && *k) ? intern_id(&s->in, k) : 0,
						    intern_id(&s->in, v ? v : ""), exists, eff };
	}

	/* pod affinity and anti-affinity */
	const json_t *pa = json_object_get(aff, "podAffinity");
	const json_t *paa = json_object_get(aff, "podAntiAffinity");
	rc = parse_pod_terms(s, p, json_object_get(pa, "requiredDuringSchedulingIgnoredDuringExecution"),
			     false, false, true, &p->aff, &p->naff,
			     "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution",
			     err, errlen);
	if (!rc)
		rc = parse_pod_terms(
			s, p, json_object_get(paa, "requiredDuringSchedulingIgnoredDuringExecution"),
			false, true, false, &p->anti, &p->nanti,
			"spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution",
			err, errlen);
	if (!rc)
		rc = parse_pod_terms(
			s, p, json_object_get(pa, "preferredDuringSchedulingIgnoredDuringExecution"),
			true, false, false, &p->paff, &p->npaff,
			"spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution",
			err, errlen);
	if (!rc)
		rc = parse_pod_terms(
			s, p, json_object_get(paa, "preferredDuringSchedulingIgnoredDuringExecution"),
			true, true, false, &p->panti, &p->npanti,
			"spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution",
			err, errlen);
	if (rc)
		return rc;

	/* topology spread */
	const json_t *tsc = json_object_get(spec, "topologySpreadConstraints");
	size_t ns_ = json_array_size(tsc);
	if (ns_ > MAX_SPR) {
		ERR("spec.topologySpreadConstraints: at most %d constraints", MAX_SPR);
		return -EINVAL;
	}
	if (ns_) {
		p->spr = calloc(ns_, sizeof(*p->spr));
		if (!p->spr)
			return -ENOMEM;
	}
	for (size_t i = 0; i < ns_; i++) {
		const json_t *c = json_array_get(tsc, i);
		char f[96];
		snprintf(f, sizeof(f), "spec.topologySpreadConstraints[%zu]", i);
		int64_t skew = json_integer_value(json_object_get(c, "maxSkew"));
		if (skew < 1) {
			ERR("%s.maxSkew: must be greater than zero", f);
			return -EINVAL;
		}
		const char *wu = json_string_value(json_object_get(c, "whenUnsatisfiable"));
		if (!wu || (strcmp(wu, "DoNotSchedule") && strcmp(wu, "ScheduleAnyway"))) {
			ERR("%s.whenUnsatisfiable: Unsupported value", f);
			return -EINVAL;
		}
		int topo = topo_of(s, c, f, err, errlen);
		if (topo < 0)
			return -EINVAL;
		struct cond *cond = calloc(1, sizeof(*cond));
		if (!cond)
			return -ENOMEM;
		cond->nsf.ns = calloc(1, sizeof(sid_t));
		if (!cond->nsf.ns) {
			free(cond);
			return -ENOMEM;
		}
		cond->nsf.ns[0] = p->ns;
		cond->nsf.n = 1;
		char fs[128];
		snprintf(fs, sizeof(fs), "%s.labelSelector", f);
		const json_t *ls = json_object_get(c, "labelSelector");
		rc = csel_from_json(&s->in, ls ? ls : json_null(), false, &cond->sel, fs, err,
				    errlen);
		if (rc) {
			cond_free(cond);
			free(cond);
			return rc;
		}
		bool self = csel_match(&s->in, &cond->sel, &p->labels);
		struct term *t = term_acquire(s, cond, 1, topo);
		if (!t)
			return -ENOMEM;
		int64_t md_ = json_integer_value(json_object_get(c, "minDomains"));
		p->spr[p->nspr++] = (struct sprc){ t, (int32_t)skew, (int32_t)md_,
						   !strcmp(wu, "DoNotSchedule"), self };
	}

	/* workload profile for prediction: the controller owner, else the pod itself */
	if (s->cfg.pred.enabled) {
		char wk[512];
		const json_t *owners = json_object_get(md, "ownerReferences");
		const json_t *own = NULL;
		for (size_t i = 0; i < json_array_size(owners); i++) {
			const json_t *o = json_array_get(owners, i);
			if (!own || json_is_true(json_object_get(o, "controller")))
				own = o;
		}
		if (own)
			snprintf(wk, sizeof(wk), "%s/%s/%s", ns,
				 json_string_value(json_object_get(own, "kind")) ?: "",
				 json_string_value(json_object_get(own, "name")) ?: "");
		else
			snprintf(wk, sizeof(wk), "%s/Pod/%s", ns, name);
		p->wp = predict_profile_get(s, wk);
		predict_pod(s, p);
	}
	return 0;
}

static struct gang *gang_get(struct sched *s, sid_t ns, const char *name)
{
	char key[512];
	snprintf(key, sizeof(key), "%s/%s", intern_str(&s->in, ns), name);
	struct gang *g = strmap_get(&s->gangs, key);
	if (g)
		return g;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->key = strdup(key);
	g->ns = ns;
	g->qts = -1;
	if (!g->key || strmap_put(&s->gangs, key, g)) {
		free(g->key);
		free(g);
		return NULL;
	}
	return g;
}

static void gang_maybe_free(struct sched *s, struct gang *g)
{
	if (g->exists || g->total > 0)
		return;
	strmap_del(&s->gangs, g->key);
	free(g->wait);
	free(g->key);
	free(g);
}

/* Removes a pod from everything: queue, node, gang, nomination; frees it. */
static void pod_remove(struct sched *s, struct spod *p, bool event)
{
	bool was_placed = p->node >= 0;
	queue_remove(s, p);
	sched_pod_forget_nomination(s, p);
	if (p->node >= 0)
		pod_detach(s, p);
	else if (p->node_name && (p->state == PS_BOUND || p->state == PS_NONE))
		orphan_remove(s, p);
	if (p->gang) {
		struct gang *g = p->gang;
		gang_pod_left(s, p);
		g->total--;
		gang_maybe_free(s, g);
	}
	pod_release_terms(s, p);
	strmap_del(&s->pods, p->key);
	pod_free(p);
	if (event && was_placed)
		queue_move_on_event(s,
				    FAIL_BIT(PL_FIT) | FAIL_BIT(PL_INTERPOD) | FAIL_BIT(PL_SPREAD) |
					    FAIL_BIT(PL_PREEMPT) | FAIL_BIT(PL_LOADAWARE) |
					    FAIL_BIT(PL_GANG),
				    NULL);
}

int sched_pod_delete(struct sched *s, const char *ns, const char *name)
{
	char key[512];
	snprintf(key, sizeof(key), "%s/%s", ns && *ns ? ns : "default", name);
	struct spod *p = strmap_get(&s->pods, key);
	if (!p)
		return -ENOENT;
	pod_remove(s, p, true);
	return 0;
}

static bool lblset_eq(const struct lblset *a, const struct lblset *b)
{
	return a->n == b->n && (!a->n || !memcmp(a->kv, b->kv, a->n * sizeof(*a->kv)));
}

static int pod_upsert(struct sched *s, const json_t *pod, struct spod **out, char *err,
		      size_t errlen)
{
	struct spod *p = calloc(1, sizeof(*p));
	sid_t node_name = 0;
	bool done = false;
	if (!p)
		return -ENOMEM;
	int rc = parse_pod(s, pod, p, &node_name, &done, err, errlen);
	if (rc) {
		pod_release_terms(s, p);
		pod_free(p);
		return rc;
	}
	struct spod *old = strmap_get(&s->pods, p->key);
	if (old && strcmp(old->uid, p->uid) && old->uid[0] && p->uid[0]) {
		pod_remove(s, old, true); /* a new pod under the same name */
		old = NULL;
	}
	if (done) {
		if (old)
			pod_remove(s, old, true);
		pod_release_terms(s, p);
		pod_free(p);
		return 0;
	}
	if (old && old->node >= 0 && (node_name == 0 || node_name == old->node_name) &&
	    lblset_eq(&old->labels, &p->labels) && old->priority == p->priority &&
	    !memcmp(old->req, p->req, sizeof(p->req))) {
		/* the binding we made (or a status change): nothing moves */
		old->terminating = p->terminating;
		*out = old;
		pod_release_terms(s, p);
		pod_free(p);
		return 0;
	}
	/* keep what the queue knew */
	int64_t qts = -1;
	uint32_t attempts = 0;
	int64_t backoff_until = 0;
	int assumed = -1;
	if (old) {
		qts = old->qts;
		attempts = old->attempts;
		backoff_until = old->backoff_until;
		if (old->node >= 0 && !node_name)
			assumed = old->node;
		pod_remove(s, old, true);
	}
	if (strmap_put(&s->pods, p->key, p)) {
		pod_release_terms(s, p);
		pod_free(p);
		return -ENOMEM;
	}
	p->seq = ++s->seq;
	*out = p;
	sid_t pg = lbl_get(&p->labels, s->k_podgroup);
	if (pg) {
		p->gang = gang_get(s, p->ns, intern_str(&s->in, pg));
		if (p->gang)
			p->gang->total++;
	}
	if (node_name || assumed >= 0) {
		struct snode *n = NULL;
		if (assumed >= 0)
			n = s->slots[assumed];
		else
			n = strmap_get(&s->nodes, intern_str(&s->in, node_name));
		p->state = PS_BOUND;
		if (p->gang)
			p->gang->bound++;
		if (n) {
			pod_attach(s, p, n);
		} else {
			p->node_name = node_name;
			orphan_add(s, p);
		}
		queue_move_on_event(s, FAIL_BIT(PL_INTERPOD) | FAIL_BIT(PL_SPREAD), NULL);
		return 0;
	}
	if (p->profile < 0 || p->terminating) {
		p->state = PS_NONE;
		return 0;
	}
	if (p->gang) {
		if (p->gang->qts < 0)
			p->gang->qts = sched_now(s);
		p->qts = p->gang->qts;
	} else {
		p->qts = qts >= 0 ? qts : sched_now(s);
	}
	p->attempts = attempts;
	p->backoff_until = backoff_until;
	queue_add(s, p);
	if (p->gang)
		queue_move_on_event(s, FAIL_BIT(PL_GANG), p->gang);
	return 0;
}

/* A Pod's status.usage ({"cpu": "250m", "memory": "300Mi", "timestamp": RFC 3339}), as the
 * agent reports it, becomes a usage sample once per timestamp. */
static void usage_from_status(struct sched *s, struct spod *p, const json_t *pod)
{
	const json_t *u = json_object_get(json_object_get(pod, "status"), "usage");
	const char *ts = json_string_value(json_object_get(u, "timestamp"));
	int64_t cpu = 0, mem = 0;
	struct tm tm;
	if (!u || !ts || !p->wp)
		return;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return;
	int64_t ms = (int64_t)timegm(&tm) * 1000;
	if (ms == p->usage_ts)
		return;
	const char *c = json_string_value(json_object_get(u, "cpu"));
	const char *m = json_string_value(json_object_get(u, "memory"));
	if (!c || !m || quantity_parse_milli(c, &cpu) || quantity_parse_milli(m, &mem))
		return;
	p->usage_ts = ms;
	sched_usage_sample(s, intern_str(&s->in, p->ns), p->name, cpu, mem / 1000, ms);
}

int sched_pod_upsert(struct sched *s, const json_t *pod, char *err, size_t errlen)
{
	struct spod *p = NULL;
	int rc = pod_upsert(s, pod, &p, err, errlen);
	if (!rc && p && s->cfg.pred.enabled)
		usage_from_status(s, p, pod);
	return rc;
}

int sched_podgroup_upsert(struct sched *s, const json_t *pgj, char *err, size_t errlen)
{
	const json_t *md = json_object_get(pgj, "metadata");
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	if (!name || !*name) {
		ERR("metadata.name: Required value");
		return -EINVAL;
	}
	const json_t *spec = json_object_get(pgj, "spec");
	const json_t *mm = json_object_get(spec, "minMember");
	if (!json_is_integer(mm) || json_integer_value(mm) < 1) {
		ERR("spec.minMember: must be an integer >= 1");
		return -EINVAL;
	}
	const json_t *to = json_object_get(spec, "scheduleTimeoutSeconds");
	if (to && (!json_is_integer(to) || json_integer_value(to) < 1)) {
		ERR("spec.scheduleTimeoutSeconds: must be an integer >= 1");
		return -EINVAL;
	}
	struct gang *g = gang_get(s, intern_id(&s->in, ns && *ns ? ns : "default"), name);
	if (!g)
		return -ENOMEM;
	g->exists = true;
	g->min_member = (int32_t)json_integer_value(mm);
	g->timeout_ms = (to ? json_integer_value(to) : 60) * 1000;
	queue_move_on_event(s, FAIL_BIT(PL_GANG), g);
	return 0;
}

int sched_podgroup_delete(struct sched *s, const char *ns, const char *name)
{
	char key[512];
	snprintf(key, sizeof(key), "%s/%s", ns && *ns ? ns : "default", name);
	struct gang *g = strmap_get(&s->gangs, key);
	if (!g || !g->exists)
		return -ENOENT;
	g->exists = false;
	plugin_gang_reject(s, g, "pod group deleted", FAIL_BIT(PL_GANG));
	gang_maybe_free(s, g);
	return 0;
}

int sched_namespace_upsert(struct sched *s, const json_t *nsj, char *err, size_t errlen)
{
	const json_t *md = json_object_get(nsj, "metadata");
	const char *name = json_string_value(json_object_get(md, "name"));
	if (!name || !*name) {
		ERR("metadata.name: Required value");
		return -EINVAL;
	}
	struct sns *n = sched_ns_get(s, intern_id(&s->in, name));
	if (!n)
		return -ENOMEM;
	struct lblset ls;
	int rc = lblset_from_json(&s->in, json_object_get(md, "labels"), 0, 0, &ls);
	if (rc) {
		ERR("metadata.labels: values must be strings");
		return rc;
	}
	lblset_free(&n->labels);
	n->labels = ls;
	/* terms that select namespaces by label count again */
	for (uint32_t i = 0; i < s->nterms; i++) {
		struct term *t = s->terms[i];
		bool by_label = false;
		for (uint32_t c = 0; c < t->nconds; c++)
			by_label = by_label || t->conds[c].nsf.has_sel;
		if (!by_label)
			continue;
		memset(t->m_dom, 0, t->dcap * sizeof(*t->m_dom));
		memset(t->m_node, 0, t->ncap * sizeof(*t->m_node));
		t->m_total = 0;
		for (uint32_t j = 0; j < s->nlive; j++) {
			struct snode *nd = s->live[j];
			for (uint32_t k = 0; k < nd->npl; k++)
				if (term_cond_match(s, t, nd->pods[k]))
					term_count_pod(t, nd, 1);
		}
	}
	queue_move_on_event(s, FAIL_BIT(PL_INTERPOD), NULL);
	return 0;
}

/* ---- lifecycle of the snapshot ---- */

void sched_snapshot_free(struct sched *s);
void sched_snapshot_free(struct sched *s)
{
	struct strmap *pm = &s->pods;
	struct spod *p;
	for (size_t it = 0; strmap_next(pm, &it, &p);) {
		p->node = -1;
		pod_release_terms(s, p);
		pod_free(p);
	}
	strmap_free(pm);
	for (uint32_t i = 0; i < s->nslots; i++)
		node_free(s->slots[i]);
	strmap_free(&s->nodes);
	free(s->slots);
	free(s->live);
	free(s->freeslots);
	free(s->orphans);
	for (int i = 0; i < s->ntopo; i++) {
		strmap_free(&s->topo[i].doms);
		free(s->topo[i].dom_nodes);
	}
	while (s->nterms) {
		struct term *t = s->terms[0];
		t->refs = 1;
		term_release(s, t);
	}
	free(s->terms);
	strmap_free(&s->termmap);
	struct strmap *gm = &s->gangs;
	struct gang *g;
	for (size_t it = 0; strmap_next(gm, &it, &g);) {
		free(g->wait);
		free(g->key);
		free(g);
	}
	strmap_free(gm);
	struct strmap *nm = &s->nss;
	struct sns *n;
	for (size_t it = 0; strmap_next(nm, &it, &n);) {
		lblset_free(&n->labels);
		free(n->heap);
		free(n);
	}
	strmap_free(nm);
}

const char *sched_pod_node(struct sched *s, const char *ns, const char *name)
{
	char key[512];
	snprintf(key, sizeof(key), "%s/%s", ns && *ns ? ns : "default", name);
	struct spod *p = strmap_get(&s->pods, key);
	if (!p || p->node < 0)
		return NULL;
	return s->slots[p->node]->name;
}

const char *sched_pod_message(struct sched *s, const char *ns, const char *name)
{
	char key[512];
	snprintf(key, sizeof(key), "%s/%s", ns && *ns ? ns : "default", name);
	struct spod *p = strmap_get(&s->pods, key);
	return p ? p->msg : NULL;
}

int sched_node_info(struct sched *s, const char *name, struct sched_node_info *out)
{
	struct snode *n = strmap_get(&s->nodes, name);
	if (!n)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->alloc_cpu = n->alloc[RES_CPU];
	out->alloc_mem = n->alloc[RES_MEM];
	out->req_cpu = n->req[RES_CPU];
	out->req_mem = n->req[RES_MEM];
	out->batch_req_cpu = n->breq[RES_CPU];
	out->batch_req_mem = n->breq[RES_MEM];
	out->pods = n->npods;
	if (s->cfg.pred.enabled) {
		out->peak_cpu = n->peak_cpu;
		out->peak_mem = n->peak_mem;
		out->batch_alloc_cpu = predict_batch_alloc(s, n, RES_CPU);
		out->batch_alloc_mem = predict_batch_alloc(s, n, RES_MEM);
	} else {
		out->peak_cpu = n->req[RES_CPU];
		out->peak_mem = n->req[RES_MEM];
	}
	return 0;
}
