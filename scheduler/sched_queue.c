// SPDX-License-Identifier: Apache-2.0
/*
 * The scheduling queue: active (ready now), back-off (failed recently, ready at a time) and
 * unschedulable (waiting for an event that can help).
 *
 * The design choice: the active queue is one heap per namespace (priority, then arrival),
 * and a pop takes the highest priority head across namespaces, breaking ties by dominant
 * resource fairness: the namespace whose largest share of any cluster resource is smallest
 * goes first. An unschedulable pod remembers which plugins rejected it, and only events that
 * can help those plugins move it back (a node added or changed, a pod deleted, a pod placed
 * for affinity and spread, its pod group changed); nothing polls.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

static bool pod_before(const struct spod *a, const struct spod *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority;
	if (a->qts != b->qts)
		return a->qts < b->qts;
	return a->seq < b->seq;
}

static void heap_swap(struct spod **h, uint32_t i, uint32_t j)
{
	struct spod *t = h[i];
	h[i] = h[j];
	h[j] = t;
	h[i]->qpos = (int32_t)i;
	h[j]->qpos = (int32_t)j;
}

static void heap_up(struct spod **h, uint32_t i, bool (*less)(const struct spod *,
							       const struct spod *))
{
	while (i > 0) {
		uint32_t par = (i - 1) / 2;
		if (!less(h[i], h[par]))
			break;
		heap_swap(h, i, par);
		i = par;
	}
}

static void heap_down(struct spod **h, uint32_t n, uint32_t i,
		      bool (*less)(const struct spod *, const struct spod *))
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && less(h[l], h[m]))
			m = l;
		if (r < n && less(h[r], h[m]))
			m = r;
		if (m == i)
			break;
		heap_swap(h, i, m);
		i = m;
	}
}

static void heap_del(struct spod **h, uint32_t *n, uint32_t i,
		     bool (*less)(const struct spod *, const struct spod *))
{
	(*n)--;
	if (i != *n) {
		h[i] = h[*n];
		h[i]->qpos = (int32_t)i;
		heap_down(h, *n, i, less);
		heap_up(h, i, less);
	}
}

static bool backoff_before(const struct spod *a, const struct spod *b)
{
	if (a->backoff_until != b->backoff_until)
		return a->backoff_until < b->backoff_until;
	return pod_before(a, b);
}

void queue_add(struct sched *s, struct spod *p)
{
	struct sns *ns = p->nsp;
	if (ARRAY_GROW(ns->heap, ns->n, ns->cap))
		return;
	p->qpos = (int32_t)ns->n;
	ns->heap[ns->n++] = p;
	heap_up(ns->heap, ns->n - 1, pod_before);
	p->state = PS_ACTIVE;
	if (ns->apos < 0 && ARRAY_GROW(s->actns, s->nactns, s->actcap) == 0) {
		ns->apos = (int32_t)s->nactns;
		s->actns[s->nactns++] = ns;
	}
}

static void actns_drop(struct sched *s, struct sns *ns)
{
	if (ns->n || ns->apos < 0)
		return;
	s->actns[ns->apos] = s->actns[--s->nactns];
	s->actns[ns->apos]->apos = ns->apos;
	ns->apos = -1;
}

static void unsched_del(struct sched *s, struct spod *p)
{
	uint32_t i = (uint32_t)p->qpos;
	s->unsched[i] = s->unsched[--s->nunsched];
	s->unsched[i]->qpos = (int32_t)i;
	for (int b = 0; b < PL_COUNT; b++)
		if (p->fail_mask & FAIL_BIT(b))
			s->unsched_by_plugin[b]--;
}

void queue_remove(struct sched *s, struct spod *p)
{
	switch (p->state) {
	case PS_ACTIVE:
		heap_del(p->nsp->heap, &p->nsp->n, (uint32_t)p->qpos, pod_before);
		actns_drop(s, p->nsp);
		break;
	case PS_BACKOFF:
		heap_del(s->backoff, &s->nbackoff, (uint32_t)p->qpos, backoff_before);
		break;
	case PS_UNSCHED:
		unsched_del(s, p);
		break;
	default:
		return;
	}
	p->qpos = -1;
	p->state = PS_NONE;
}

static double dominant_share(const struct sched *s, const struct sns *ns)
{
	double d = 0;
	for (int r = 0; r < RES_EXT0; r++) {
		if (s->cap_total[r] <= 0)
			continue;
		double x = (double)ns->used[r] / (double)s->cap_total[r];
		if (x > d)
			d = x;
	}
	return d;
}

struct spod *queue_pop(struct sched *s)
{
	struct sns *best = NULL;
	double best_share = 0;
	for (uint32_t i = 0; i < s->nactns; i++) {
		struct sns *ns = s->actns[i];
		struct spod *h = ns->heap[0];
		if (!best) {
			best = ns;
			best_share = dominant_share(s, ns);
			continue;
		}
		struct spod *bh = best->heap[0];
		if (h->priority != bh->priority) {
			if (h->priority > bh->priority) {
				best = ns;
				best_share = dominant_share(s, ns);
			}
			continue;
		}
		double sh = dominant_share(s, ns);
		if (sh < best_share || (sh == best_share && pod_before(h, bh))) {
			best = ns;
			best_share = sh;
		}
	}
	if (!best)
		return NULL;
	struct spod *p = best->heap[0];
	heap_del(best->heap, &best->n, 0, pod_before);
	actns_drop(s, best);
	p->qpos = -1;
	p->state = PS_INFLIGHT;
	return p;
}

static int64_t backoff_ms(const struct sched *s, uint32_t attempts)
{
	int64_t d = s->cfg.backoff_init_ms;
	for (uint32_t i = 1; i < attempts && d < s->cfg.backoff_max_ms; i++)
		d *= 2;
	return d < s->cfg.backoff_max_ms ? d : s->cfg.backoff_max_ms;
}

static void backoff_push(struct sched *s, struct spod *p)
{
	if (ARRAY_GROW(s->backoff, s->nbackoff, s->bcap)) {
		queue_add(s, p);
		return;
	}
	p->qpos = (int32_t)s->nbackoff;
	s->backoff[s->nbackoff++] = p;
	heap_up(s->backoff, s->nbackoff - 1, backoff_before);
	p->state = PS_BACKOFF;
}

void queue_backoff(struct sched *s, struct spod *p)
{
	p->backoff_until = sched_now(s) + backoff_ms(s, p->attempts);
	backoff_push(s, p);
}

void queue_unschedulable(struct sched *s, struct spod *p, uint32_t fail_mask)
{
	p->backoff_until = sched_now(s) + backoff_ms(s, p->attempts);
	if (ARRAY_GROW(s->unsched, s->nunsched, s->ucap)) {
		backoff_push(s, p);
		return;
	}
	p->fail_mask = fail_mask ? fail_mask : ~0u;
	for (int b = 0; b < PL_COUNT; b++)
		if (p->fail_mask & FAIL_BIT(b))
			s->unsched_by_plugin[b]++;
	p->qpos = (int32_t)s->nunsched;
	s->unsched[s->nunsched++] = p;
	p->state = PS_UNSCHED;
}

void queue_flush_backoff(struct sched *s, int64_t now)
{
	while (s->nbackoff && s->backoff[0]->backoff_until <= now) {
		struct spod *p = s->backoff[0];
		heap_del(s->backoff, &s->nbackoff, 0, backoff_before);
		queue_add(s, p);
	}
}

void queue_move_on_event(struct sched *s, uint32_t mask, struct gang *gang)
{
	bool any = false;
	for (int b = 0; b < PL_COUNT; b++)
		if ((mask & FAIL_BIT(b)) && s->unsched_by_plugin[b])
			any = true;
	if (!any)
		return;
	int64_t now = sched_now(s);
	for (uint32_t i = 0; i < s->nunsched;) {
		struct spod *p = s->unsched[i];
		if (!(p->fail_mask & mask) || (gang && p->gang != gang)) {
			i++;
			continue;
		}
		unsched_del(s, p);
		if (p->backoff_until > now)
			backoff_push(s, p);
		else
			queue_add(s, p);
	}
}

int64_t queue_next_backoff(struct sched *s)
{
	return s->nbackoff ? s->backoff[0]->backoff_until : -1;
}

void queue_free(struct sched *s)
{
	free(s->actns);
	free(s->backoff);
	free(s->unsched);
}
