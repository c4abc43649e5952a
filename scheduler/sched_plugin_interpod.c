// SPDX-License-Identifier: Apache-2.0
/*
 * InterPodAffinity, symmetric as DESIGN.md says. For the pod P being placed:
 *  - P's required affinity terms are hard: the node's domain must hold a pod matching all of
 *    them, unless no placed pod matches them anywhere and P matches them itself (the first
 *    pod of a group that wants to be together);
 *  - P's required anti-affinity terms are hard: no matching pod in the node's domain;
 *  - placed pods' required anti-affinity terms that match P are hard too (fully symmetric);
 *  - placed pods' required affinity terms that match P only score (weight 1, as
 *    kube-scheduler's hardPodAffinityWeight): nobody is blocked for not being wanted;
 *  - preferred terms score both ways: P's by the matching pods in the domain, placed pods'
 *    by their weight when they match P.
 * The pre-filter collects the placed pods' terms that match P (struct term holds their
 * per-domain holder counts), so each node costs one counter read per term.
 */
#include <errno.h>
#include <stdlib.h>

#include "sched_int.h"

int plugin_interpod_prefilter(struct cycle *c)
{
	struct sched *s = c->s;
	const struct spod *p = c->p;
	c->nsym = 0;
	for (uint32_t i = 0; i < s->nterms; i++) {
		struct term *t = s->terms[i];
		if (!t->n_anti && !t->n_aff && !t->n_pref)
			continue;
		if (!term_cond_match(s, t, p))
			continue;
		if (ARRAY_GROW(c->sym, c->nsym, c->symcap))
			return -ENOMEM;
		c->sym[c->nsym++] = t;
	}
	c->first_pod = false;
	if (p->naff) {
		bool none = true, self = true;
		for (uint32_t i = 0; i < p->naff; i++) {
			if (p->aff[i].t->m_total > 0)
				none = false;
			if (!term_cond_match(s, p->aff[i].t, p))
				self = false;
		}
		c->first_pod = none && self;
	}
	return 0;
}

uint32_t plugin_interpod_filter(const struct cycle *c, const struct snode *n)
{
	const struct spod *p = c->p;
	for (uint32_t i = 0; i < c->nsym; i++) {
		const struct term *t = c->sym[i];
		if (t->n_anti && term_dom(t->h_anti, t->dcap, n->dom[t->topo]) > 0)
			return RS_CODE(RS_ANTI_EXISTING, 0);
	}
	for (uint32_t i = 0; i < p->nanti; i++) {
		const struct term *t = p->anti[i].t;
		if (term_dom(t->m_dom, t->dcap, n->dom[t->topo]) > 0)
			return RS_CODE(RS_ANTI, 0);
	}
	bool missing = false;
	for (uint32_t i = 0; i < p->naff; i++) {
		const struct term *t = p->aff[i].t;
		int d = n->dom[t->topo];
		if (d < 0)
			return RS_CODE(RS_AFF, 0);
		if (term_dom(t->m_dom, t->dcap, d) <= 0)
			missing = true;
	}
	if (missing && !c->first_pod)
		return RS_CODE(RS_AFF, 0);
	return 0;
}

int64_t plugin_interpod_score(const struct cycle *c, const struct snode *n)
{
	const struct spod *p = c->p;
	int64_t sc = 0;
	for (uint32_t i = 0; i < c->nsym; i++) {
		const struct term *t = c->sym[i];
		int d = n->dom[t->topo];
		if (d < 0)
			continue;
		if (t->n_aff)
			sc += term_dom(t->h_aff, t->dcap, d);
		if (t->n_pref)
			sc += term_dom(t->h_pref, t->dcap, d);
	}
	for (uint32_t i = 0; i < p->npaff; i++) {
		const struct term *t = p->paff[i].t;
		sc += (int64_t)p->paff[i].w * term_dom(t->m_dom, t->dcap, n->dom[t->topo]);
	}
	for (uint32_t i = 0; i < p->npanti; i++) {
		const struct term *t = p->panti[i].t;
		sc += (int64_t)p->panti[i].w * term_dom(t->m_dom, t->dcap, n->dom[t->topo]);
	}
	return sc;
}
