// SPDX-License-Identifier: Apache-2.0
/*
 * NodeAffinity: spec.nodeSelector (every pair) and the required node selector terms (any
 * term, each term every expression: In, NotIn, Exists, DoesNotExist, Gt, Lt, plus matchFields
 * on metadata.name) filter; the preferred terms score by the sum of the weights they match.
 * The node's name is one more (pseudo) label, so matchFields is matched like a label.
 */
#include "sched_int.h"

bool nsterm_match(struct sched *s, const struct nsterm *t, const struct snode *n)
{
	if (t->exprs.none)
		return false;
	if (t->exprs.n && !csel_match(&s->in, &t->exprs, &n->labels))
		return false;
	if (t->fields.n && !csel_match(&s->in, &t->fields, &n->labels))
		return false;
	return true;
}

uint32_t plugin_nodeaffinity_filter(const struct cycle *c, const struct snode *n)
{
	const struct spod *p = c->p;
	for (uint32_t i = 0; i < p->nodesel.n; i++)
		if (lbl_get(&n->labels, p->nodesel.kv[i].k) != p->nodesel.kv[i].v)
			return RS_CODE(RS_NODEAFF, 0);
	if (!p->nnreq)
		return 0;
	for (uint32_t i = 0; i < p->nnreq; i++)
		if (nsterm_match(c->s, &p->nreq[i], n))
			return 0;
	return RS_CODE(RS_NODEAFF, 0);
}

int64_t plugin_nodeaffinity_score(const struct cycle *c, const struct snode *n)
{
	int64_t sum = 0;
	for (uint32_t i = 0; i < c->p->nnpref; i++)
		if (nsterm_match(c->s, &c->p->npref[i].t, n))
			sum += c->p->npref[i].w;
	return sum;
}
