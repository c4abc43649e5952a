// SPDX-License-Identifier: Apache-2.0
/*
 * Preemption (post-filter): when P fits nowhere, find the node where evicting the fewest,
 * lowest-priority pods makes it fit. Only pods of strictly lower priority are ever victims.
 * Per candidate node (those that failed for a reason eviction can cure: resources,
 * anti-affinity, spread), all lower-priority pods are taken off the snapshot, P must then
 * pass every filter, and the victims are put back one by one, highest priority first,
 * while P still fits (kube-scheduler's reprieve). Among candidates the winner has the lowest
 * highest-victim priority, then the smallest priority sum, then the fewest victims. Victims
 * are deleted gracefully through the embedder; P is nominated to the node, whose capacity is
 * then held for it against pods of lower or equal priority.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

static bool resolvable(uint32_t code)
{
	switch (RS_REASON(code)) {
	case RS_FIT:
	case RS_ANTI_EXISTING:
	case RS_ANTI:
	case RS_SPREAD:
		return true;
	default:
		return false;
	}
}

static int prio_desc(const void *a, const void *b)
{
	const struct spod *x = *(struct spod *const *)a, *y = *(struct spod *const *)b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool fits(struct cycle *c, const struct snode *n)
{
	cycle_release(c);
	if (sched_prefilter(c))
		return false;
	return sched_filter_node(c, n) == 0;
}

struct cand {
	int slot;
	struct spod **v;
	uint32_t nv;
	int32_t maxprio;
	int64_t sum;
};

static bool cand_better(const struct cand *a, const struct cand *b)
{
	if (a->maxprio != b->maxprio)
		return a->maxprio < b->maxprio;
	if (a->sum != b->sum)
		return a->sum < b->sum;
	return a->nv < b->nv;
}

/* Evaluates node n; on success fills cand (victims allocated). */
static int eval_node(struct sched *s, struct cycle *c, struct snode *n, struct cand *out)
{
	const struct spod *p = c->p;
	uint32_t nv = 0;
	struct spod **v = malloc((n->npl ? n->npl : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n->npl; i++) {
		struct spod *q = n->pods[i];
		if (q->priority < p->priority && !q->terminating && q->state == PS_BOUND)
			v[nv++] = q;
	}
	if (!nv) {
		free(v);
		return 0;
	}
	for (uint32_t i = 0; i < nv; i++)
		pod_detach(s, v[i]);
	int found = 0;
	if (fits(c, n)) {
		qsort(v, nv, sizeof(*v), prio_desc);
		uint32_t keep = 0;
		for (uint32_t i = 0; i < nv; i++) {
			pod_attach(s, v[i], n);
			if (fits(c, n))
				continue; /* reprieved */
			pod_detach(s, v[i]);
			v[keep++] = v[i];
		}
		out->slot = n->slot;
		out->v = v;
		out->nv = keep;
		out->maxprio = INT32_MIN;
		out->sum = 0;
		for (uint32_t i = 0; i < keep; i++) {
			if (v[i]->priority > out->maxprio)
				out->maxprio = v[i]->priority;
			out->sum += v[i]->priority;
		}
		for (uint32_t i = 0; i < keep; i++)
			pod_attach(s, v[i], n);
		found = 1;
	} else {
		for (uint32_t i = 0; i < nv; i++)
			pod_attach(s, v[i], n);
		free(v);
	}
	return found;
}

int plugin_preempt(struct sched *s, struct cycle *c)
{
	struct spod *p = c->p;
	/* already nominated and its victims are still leaving: wait for them */
	if (p->nominated >= 0 && s->slots[p->nominated]) {
		struct snode *n = s->slots[p->nominated];
		for (uint32_t i = 0; i < n->npl; i++)
			if (n->pods[i]->terminating && n->pods[i]->priority < p->priority)
				return 1;
	}
	uint32_t limit = s->nlive / 10;
	if (limit < 100)
		limit = 100;
	uint32_t nl = s->nlive, start = nl ? (uint32_t)(sched_rand(s) % nl) : 0, found = 0;
	struct cand best = { .slot = -1 };
	uint32_t *fail = malloc((s->nslots ? s->nslots : 1) * sizeof(*fail));
	if (!fail)
		return -ENOMEM;
	memcpy(fail, s->fail, s->nslots * sizeof(*fail));
	for (uint32_t j = 0; j < nl && found < limit; j++) {
		struct snode *n = s->live[(start + j) % nl];
		if (!resolvable(fail[n->slot]))
			continue;
		struct cand cd = { .slot = -1 };
		int rc = eval_node(s, c, n, &cd);
		if (rc < 0)
			break;
		if (!rc)
			continue;
		found++;
		if (best.slot < 0 || cand_better(&cd, &best)) {
			free(best.v);
			best = cd;
		} else {
			free(cd.v);
		}
	}
	free(fail);
	/* the filters' state must describe the real snapshot again */
	cycle_release(c);
	if (best.slot < 0)
		return 0;
	struct snode *n = s->slots[best.slot];
	for (uint32_t i = 0; i < best.nv; i++) {
		struct spod *v = best.v[i];
		v->terminating = true;
		s->st.victims++;
		if (s->ops.evict)
			s->ops.evict(s->ops.ctx, intern_str(&s->in, v->ns), v->name, v->uid, p->key);
	}
	free(best.v);
	sched_pod_forget_nomination(s, p);
	p->nominated = n->slot;
	if (ARRAY_GROW(n->noms, n->nnom, n->nomcap) == 0)
		n->noms[n->nnom++] = p;
	s->st.preemptions++;
	return 1;
}
