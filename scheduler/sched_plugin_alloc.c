// SPDX-License-Identifier: Apache-2.0
/*
 * Allocation scores over cpu and memory, with kube-scheduler's non-zero request defaults
 * (100m, 200Mi) so that pods without requests still spread: LeastAllocated (the `spread`
 * profile: the emptier node wins), MostAllocated (the `binpack` profile: the fuller node
 * wins) and BalancedAllocation (cpu and memory used in the same proportion wins).
 */
#include "sched_int.h"

static int64_t frac100(int64_t used, int64_t alloc)
{
	if (alloc <= 0)
		return 100;
	if (used >= alloc)
		return 100;
	return used * 100 / alloc;
}

int64_t plugin_alloc_score(const struct cycle *c, const struct snode *n)
{
	const struct spod *p = c->p;
	int64_t fc = frac100(n->nz_cpu + p->nz_cpu, n->alloc[RES_CPU]);
	int64_t fm = frac100(n->nz_mem + p->nz_mem, n->alloc[RES_MEM]);
	if (c->prof->most_allocated)
		return (fc + fm) / 2;
	return ((100 - fc) + (100 - fm)) / 2;
}

int64_t plugin_balanced_score(const struct cycle *c, const struct snode *n)
{
	const struct spod *p = c->p;
	double fc = n->alloc[RES_CPU] > 0 ?
			    (double)(n->nz_cpu + p->nz_cpu) / (double)n->alloc[RES_CPU] :
			    1.0;
	double fm = n->alloc[RES_MEM] > 0 ?
			    (double)(n->nz_mem + p->nz_mem) / (double)n->alloc[RES_MEM] :
			    1.0;
	if (fc > 1)
		fc = 1;
	if (fm > 1)
		fm = 1;
	double sd = (fc > fm ? fc - fm : fm - fc) / 2;
	return (int64_t)((1.0 - sd) * 100);
}
