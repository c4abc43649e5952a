// SPDX-License-Identifier: Apache-2.0
/*
 * PodTopologySpread: for each constraint, the pods matching its labelSelector (in P's
 * namespace) are counted per domain of its topologyKey; placing P on a node must keep
 * (count in the node's domain + P if it matches) - (the smallest count over eligible domains)
 * at or below maxSkew when whenUnsatisfiable is DoNotSchedule; ScheduleAnyway constraints
 * score (fewer matching pods in the domain is better, weighted by log(domains + 2) as
 * kube-scheduler does). With minDomains, fewer eligible domains than that makes the minimum
 * 0. Eligible domains are those of nodes that pass P's nodeSelector and required node
 * affinity (nodeAffinityPolicy Honor): without either, the per-domain counters are read
 * directly; with them, the counts are summed once per pod from the per-node counters.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

void plugin_spread_release(struct cycle *c)
{
	for (int i = 0; i < MAX_SPR; i++) {
		free(c->spr_cnt[i]);
		c->spr_cnt[i] = NULL;
	}
}

int plugin_spread_prefilter(struct cycle *c)
{
	struct sched *s = c->s;
	const struct spod *p = c->p;
	bool restrict_nodes = p->nodesel.n || p->nnreq;
	plugin_spread_release(c);
	for (uint32_t i = 0; i < p->nspr; i++) {
		const struct term *t = p->spr[i].t;
		const struct topo *tp = &s->topo[t->topo];
		int32_t mn = INT32_MAX, nd = 0;
		if (!restrict_nodes) {
			for (uint32_t d = 0; d < tp->ndom; d++) {
				if (tp->dom_nodes[d] <= 0)
					continue;
				nd++;
				int32_t v = term_dom(t->m_dom, t->dcap, (int32_t)d);
				if (v < mn)
					mn = v;
			}
		} else {
			int32_t *cnt = calloc(tp->ndom + 1, sizeof(*cnt));
			uint8_t *elig = calloc(tp->ndom + 1, 1);
			if (!cnt || !elig) {
				free(cnt);
				free(elig);
				return -ENOMEM;
			}
			for (uint32_t j = 0; j < s->nlive; j++) {
				const struct snode *n = s->live[j];
				int d = n->dom[t->topo];
				if (d < 0 || plugin_nodeaffinity_filter(c, n))
					continue;
				elig[d] = 1;
				if ((uint32_t)n->slot < t->ncap)
					cnt[d] += t->m_node[n->slot];
			}
			for (uint32_t d = 0; d < tp->ndom; d++) {
				if (!elig[d])
					continue;
				nd++;
				if (cnt[d] < mn)
					mn = cnt[d];
			}
			free(elig);
			c->spr_cnt[i] = cnt;
		}
		if (!nd || (p->spr[i].min_domains > 0 && nd < p->spr[i].min_domains))
			mn = 0;
		c->spr_min[i] = mn;
		c->spr_ndom[i] = nd;
		c->spr_w[i] = log((double)nd + 2.0);
	}
	return 0;
}

static int32_t count_at(const struct cycle *c, uint32_t i, int d)
{
	const struct term *t = c->p->spr[i].t;
	if (c->spr_cnt[i])
		return c->spr_cnt[i][d];
	return term_dom(t->m_dom, t->dcap, d);
}

uint32_t plugin_spread_filter(const struct cycle *c, const struct snode *n)
{
	const struct spod *p = c->p;
	for (uint32_t i = 0; i < p->nspr; i++) {
		const struct sprc *sc = &p->spr[i];
		if (!sc->hard)
			continue;
		int d = n->dom[sc->t->topo];
		if (d < 0)
			return RS_CODE(RS_SPREAD_LABEL, 0);
		int32_t skew = count_at(c, i, d) + (sc->self ? 1 : 0) - c->spr_min[i];
		if (skew > sc->max_skew)
			return RS_CODE(RS_SPREAD, 0);
	}
	return 0;
}

int64_t plugin_spread_score(const struct cycle *c, const struct snode *n)
{
	const struct spod *p = c->p;
	double sc = 0;
	for (uint32_t i = 0; i < p->nspr; i++) {
		const struct sprc *k = &p->spr[i];
		if (k->hard)
			continue;
		int d = n->dom[k->t->topo];
		int32_t cnt = d < 0 ? c->p->spr[i].t->m_total + 1 : count_at(c, i, d);
		sc += (double)cnt * c->spr_w[i];
	}
	return (int64_t)(sc * 1000);
}
