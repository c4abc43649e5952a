// SPDX-License-Identifier: Apache-2.0
/*
 * NodeResourcesFit: the pod's requests (cpu, memory, ephemeral storage, extended resources)
 * plus what the node's placed pods request must fit its allocatable, and one more pod must
 * fit its pod count. Requests of pods nominated to the node by preemption count against
 * pods of lower or equal priority. With prediction on, a `batch` pod is admitted against the
 * node's batch-allocatable (predicted idle capacity) instead of requests.
 */
#include "sched_int.h"

uint32_t plugin_fit_filter(const struct cycle *c, const struct snode *n)
{
	const struct spod *p = c->p;
	const struct sched *s = c->s;
	uint32_t mask = 0, bmask = 0;
	int64_t held[SCHED_NRES] = { 0 };
	/* room held for pods nominated here of at least p's priority (not p itself) */
	for (uint32_t i = 0; c->use_nominated && i < n->nnom; i++) {
		const struct spod *q = n->noms[i];
		if (q == p || q->priority < p->priority)
			continue;
		for (int r = 0; r < SCHED_NRES; r++)
			held[r] += q->req[r];
	}
	bool overcommit = p->batch && s->cfg.pred.enabled;
	if (n->npods + 1 > n->maxpods)
		mask |= RES_PODS_BIT;
	for (int r = 0; r < SCHED_NRES; r++) {
		if (!(p->resmask & (1u << r)))
			continue;
		if (overcommit && (r == RES_CPU || r == RES_MEM)) {
			if (n->breq[r] + p->req[r] > predict_batch_alloc(s, n, r))
				bmask |= 1u << r;
			continue;
		}
		int64_t have = n->alloc[r] - n->req[r] - held[r];
		if (p->req[r] > have)
			mask |= 1u << r;
	}
	if (mask)
		return RS_CODE(RS_FIT, mask);
	if (bmask)
		return RS_CODE(RS_BATCHFIT, bmask);
	return 0;
}
