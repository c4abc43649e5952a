// SPDX-License-Identifier: Apache-2.0
/*
 * LoadAware: places by predicted usage rather than by requests. A node's predicted peak is,
 * for each time-of-day bucket, the sum of its online pods' predicted percentiles (a bound
 * that holds even when they all peak together), and the pod's own prediction is added per
 * bucket. Filter: the peak in any bucket must stay under threshold x allocatable. Score: the
 * most headroom at the worst bucket wins (the lowest chance of contention). Batch pods are
 * admitted by NodeResourcesFit against batch-allocatable; here they score by the same
 * headroom, counting the batch requests already on the node.
 */
#include "sched_int.h"

uint32_t plugin_loadaware_filter(const struct cycle *c, const struct snode *n)
{
	const struct spod *p = c->p;
	const struct sched *s = c->s;
	if (p->batch || !p->pcpu || !n->pk_cpu)
		return 0;
	double thr = s->cfg.pred.threshold;
	int64_t lc = (int64_t)((double)n->alloc[RES_CPU] * thr);
	int64_t lm = (int64_t)((double)n->alloc[RES_MEM] * thr);
	for (int b = 0; b < s->cfg.pred.nbuckets; b++)
		if (n->pk_cpu[b] + p->pcpu[b] > lc || n->pk_mem[b] + p->pmem[b] > lm)
			return RS_CODE(RS_LOADAWARE, 0);
	return 0;
}

int64_t plugin_loadaware_score(const struct cycle *c, const struct snode *n)
{
	const struct spod *p = c->p;
	const struct sched *s = c->s;
	if (!p->pcpu || !n->pk_cpu || n->alloc[RES_CPU] <= 0 || n->alloc[RES_MEM] <= 0)
		return 0;
	int64_t wc = 0, wm = 0;
	for (int b = 0; b < s->cfg.pred.nbuckets; b++) {
		int64_t vc = n->pk_cpu[b] + p->pcpu[b], vm = n->pk_mem[b] + p->pmem[b];
		if (vc > wc)
			wc = vc;
		if (vm > wm)
			wm = vm;
	}
	if (p->batch) {
		wc += n->breq[RES_CPU];
		wm += n->breq[RES_MEM];
	}
	double f = (double)wc / (double)n->alloc[RES_CPU];
	double fm = (double)wm / (double)n->alloc[RES_MEM];
	if (fm > f)
		f = fm;
	if (f > 1)
		f = 1;
	return (int64_t)((1.0 - f) * 100);
}
