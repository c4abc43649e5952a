// SPDX-License-Identifier: Apache-2.0
/*
 * NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods that tolerate the
 * node.kubernetes.io/unschedulable:NoSchedule taint, as kube-scheduler's plugin does. (Pods
 * with spec.nodeName never reach the queue, so NodeName needs no filter of its own; a
 * DaemonSet's matchFields on metadata.name is NodeAffinity's.)
 */
#include "sched_int.h"

uint32_t plugin_unschedulable_filter(const struct cycle *c, const struct snode *n)
{
	if (!n->unschedulable)
		return 0;
	sid_t k = intern_find(&c->s->in, "node.kubernetes.io/unschedulable");
	for (uint32_t i = 0; i < c->p->ntol; i++) {
		const struct toler *t = &c->p->tol[i];
		if ((t->key == 0 || t->key == k) && t->exists &&
		    (t->effect == 0 || t->effect == EFF_NOSCHED))
			return 0;
	}
	return RS_CODE(RS_UNSCHEDULABLE, 0);
}
