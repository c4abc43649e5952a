// SPDX-License-Identifier: Apache-2.0
/*
 * TaintToleration: a NoSchedule or NoExecute taint the pod does not tolerate keeps it off the
 * node (the message names the first such taint, "{key: value}"); PreferNoSchedule taints it
 * does not tolerate score against the node (fewer is better).
 */
#include "sched_int.h"

static bool tolerated(const struct spod *p, const struct taint *t)
{
	for (uint32_t i = 0; i < p->ntol; i++) {
		const struct toler *o = &p->tol[i];
		if (o->effect && o->effect != t->effect)
			continue;
		if (o->key == 0 && o->exists)
			return true;
		if (o->key != t->key)
			continue;
		if (o->exists || o->val == t->val)
			return true;
	}
	return false;
}

uint32_t plugin_taint_filter(const struct cycle *c, const struct snode *n)
{
	for (uint32_t i = 0; i < n->ntaints; i++) {
		const struct taint *t = &n->taints[i];
		if (t->effect == EFF_PREFER)
			continue;
		if (!tolerated(c->p, t))
			return RS_CODE(RS_TAINT, t->disp);
	}
	return 0;
}

int64_t plugin_taint_score(const struct cycle *c, const struct snode *n)
{
	int64_t bad = 0;
	for (uint32_t i = 0; i < n->ntaints; i++)
		if (n->taints[i].effect == EFF_PREFER && !tolerated(c->p, &n->taints[i]))
			bad++;
	return bad;
}
