// SPDX-License-Identifier: Apache-2.0
/*
 * Gang: the pods of a PodGroup (label scheduling.x-k8s.io/pod-group) are placed all together
 * or not at all. Members are scheduled one by one (the queue keeps them adjacent: they share
 * the group's arrival time); each placed member is reserved in the snapshot and waits,
 * holding its capacity, until minMember members are placed or bound, and then all waiting
 * members are bound at once. If a member finds no node, or the group does not assemble
 * within scheduleTimeoutSeconds of its first reservation, every waiting reservation is
 * released and the members go back to the queue together.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

int plugin_gang_prefilter(struct cycle *c, char *msg, size_t len)
{
	const struct gang *g = c->p->gang;
	if (!g->exists) {
		snprintf(msg, len, "pod group %s not found", g->key);
		return -EAGAIN;
	}
	if (g->total < g->min_member) {
		snprintf(msg, len, "pod group %s has %d of its %d members", g->key, g->total,
			 g->min_member);
		return -EAGAIN;
	}
	return 0;
}

static void wait_del(struct gang *g, struct spod *p)
{
	for (uint32_t i = 0; i < g->nwait; i++)
		if (g->wait[i] == p) {
			g->wait[i] = g->wait[--g->nwait];
			g->waiting--;
			return;
		}
}

bool plugin_gang_permit(struct sched *s, struct spod *p)
{
	struct gang *g = p->gang;
	if (ARRAY_GROW(g->wait, g->nwait, g->wcap)) {
		pod_detach(s, p);
		queue_backoff(s, p);
		return false;
	}
	g->wait[g->nwait++] = p;
	g->waiting++;
	p->state = PS_WAITING;
	if (g->bound + g->waiting < g->min_member) {
		if (g->deadline < 0 || g->deadline == 0)
			g->deadline = sched_now(s) + g->timeout_ms;
		return false;
	}
	/* complete: bind every waiting member */
	g->deadline = -1;
	while (g->nwait) {
		struct spod *m = g->wait[--g->nwait];
		g->waiting--;
		if (sched_bind_pod(s, m) == 0)
			g->bound++;
	}
	return true;
}

void plugin_gang_reject(struct sched *s, struct gang *g, const char *msg, uint32_t mask)
{
	g->deadline = -1;
	while (g->nwait) {
		struct spod *m = g->wait[--g->nwait];
		g->waiting--;
		pod_detach(s, m);
		m->state = PS_INFLIGHT;
		sched_mark_unschedulable(s, m, msg, mask | FAIL_BIT(PL_GANG));
	}
}

void gang_pod_left(struct sched *s, struct spod *p)
{
	(void)s;
	struct gang *g = p->gang;
	if (p->state == PS_WAITING)
		wait_del(g, p);
	else if (p->state == PS_BOUND)
		g->bound--;
}

void plugin_gang_timeouts(struct sched *s, int64_t now)
{
	struct gang *g;
	for (size_t it = 0; strmap_next(&s->gangs, &it, &g);) {
		if (g->nwait && g->deadline > 0 && g->deadline <= now) {
			char msg[600];
			snprintf(msg, sizeof(msg),
				 "pod group %s timed out with %d of its %d members placed", g->key,
				 g->bound + g->waiting, g->min_member);
			s->st.gang_timeouts++;
			plugin_gang_reject(s, g, msg, FAIL_BIT(PL_GANG) | FAIL_BIT(PL_FIT));
		}
	}
}

int64_t plugin_gang_next_deadline(struct sched *s)
{
	struct gang *g;
	int64_t best = -1;
	for (size_t it = 0; strmap_next(&s->gangs, &it, &g);) {
		if (g->nwait && g->deadline > 0 && (best < 0 || g->deadline < best))
			best = g->deadline;
	}
	return best;
}
