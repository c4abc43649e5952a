// SPDX-License-Identifier: Apache-2.0
/*
 * Usage and eviction, every --status-interval: the node's and each running pod's CPU and
 * memory from the runtime (cgroups), written as status.usage of the Node (with the
 * heartbeat) and of each Pod (the scheduler's resource prediction reads them), and
 * eviction when the node's memory use passes --eviction-memory-threshold of its capacity.
 *
 * Two choices keep it cheap and predictable. A pod's usage is written only when it moved by
 * a tenth (or 5 millicores / 1 MiB, whichever is more) or --usage-min-write-interval
 * passed, as a merge patch of status.usage alone. Eviction picks pods of the batch priority
 * class first, lowest priority first, then the largest user; it evicts just enough pods to
 * bring the projected use under the threshold, and the pods stay in the API as Failed with
 * reason Evicted (their controllers replace them).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_int.h"
#include "hashmap.h"
#include "log.h"
#include "quantity.h"

json_t *agent_usage_json(const struct rt_usage *u)
{
	char cpu[64], mem[64];
	int64_t mcpu = (int64_t)llround(u->cpu_cores * 1000.0);
	snprintf(cpu, sizeof(cpu), "%" PRId64 "m", mcpu < 0 ? 0 : mcpu);
	quantity_format((int64_t)u->memory_bytes * 1000, mem, sizeof(mem));
	return json_pack("{s:s, s:s}", "cpu", cpu, "memory", mem);
}

struct sample {
	char *uid;
	struct rt_usage u;
	bool ok;
	bool batch;
	int64_t priority;
};

static bool moved(const json_t *sent, const struct rt_usage *u)
{
	int64_t mcpu, mem;
	if (!sent || quantity_parse_milli(json_string_value(json_object_get(sent, "cpu")) ?: "",
					  &mcpu) ||
	    quantity_parse_milli(json_string_value(json_object_get(sent, "memory")) ?: "", &mem))
		return true;
	mem /= 1000;
	double dc = fabs(u->cpu_cores * 1000.0 - (double)mcpu);
	double dm = fabs((double)u->memory_bytes - (double)mem);
	return dc > fmax(5.0, 0.1 * (double)mcpu) || dm > fmax(1048576.0, 0.1 * (double)mem);
}

static int by_eviction_order(const void *x, const void *y)
{
	const struct sample *a = x, *b = y;
	if (a->batch != b->batch)
		return a->batch ? -1 : 1;
	if (a->priority != b->priority)
		return a->priority < b->priority ? -1 : 1;
	if (a->u.memory_bytes != b->u.memory_bytes)
		return a->u.memory_bytes > b->u.memory_bytes ? -1 : 1;
	return strcmp(a->uid, b->uid);
}

static void evict(struct agent *a, struct sample *s, size_t n, const struct rt_usage *nu,
		  uint64_t threshold)
{
	uint64_t projected = nu->memory_bytes;
	char used[64], lim[64], cap[64], pod[64];

	qsort(s, n, sizeof(*s), by_eviction_order);
	quantity_format((int64_t)nu->memory_bytes * 1000, used, sizeof(used));
	quantity_format((int64_t)threshold * 1000, lim, sizeof(lim));
	quantity_format(a->alloc_memory * 1000, cap, sizeof(cap));
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < n && projected > threshold; i++) {
		if (!s[i].ok)
			continue;
		struct agent_pod *p = agent_pod_get(a, s[i].uid, NULL, NULL, false);
		if (!p || !p->pod || p->verdict || p->killing || !p->in_runtime ||
		    json_object_get(json_object_get(p->pod, "metadata"), "deletionTimestamp"))
			continue;
		char msg[512];
		quantity_format((int64_t)s[i].u.memory_bytes * 1000, pod, sizeof(pod));
		snprintf(msg, sizeof(msg),
			 "The node was low on resource: memory. The node's pods used %s of %s "
			 "(threshold %s); this pod used %s%s.",
			 used, cap, lim, pod, s[i].batch ? " and is of the batch class" : "");
		log_warn("pod %s/%s: evicting: %s", p->ns, p->name, msg);
		agent_pod_fail(a, p, "Evicted", msg);
		a->n.evictions++;
		projected = projected > s[i].u.memory_bytes ? projected - s[i].u.memory_bytes : 0;
	}
	pthread_mutex_unlock(&a->mu);
}

void agent_usage_tick(struct agent *a)
{
	struct rt_usage nu;
	struct sample *s = NULL;
	size_t n = 0, it = 0;
	const char *k;
	void *v;
	char now[40];
	int err;

	err = a->rt_ops->node_usage(a->rt, &nu);
	if (err)
		log_warn("node %s: usage: %s", a->cfg->node, strerror(-err));

	pthread_mutex_lock(&a->mu);
	if (!err) {
		a->node_usage = nu;
		a->have_node_usage = true;
	}
	s = calloc(hashmap_count(a->pods) + 1, sizeof(*s));
	while (s && hashmap_next(a->pods, &it, &k, &v)) {
		struct agent_pod *p = v;
		if (!p->in_runtime || !p->pod || p->deleted)
			continue;
		s[n].uid = strdup(k);
		if (!s[n].uid)
			continue;
		s[n].batch = agent_pod_is_batch(a, p->pod);
		s[n].priority =
			json_integer_value(json_object_get(json_object_get(p->pod, "spec"), "priority"));
		n++;
	}
	pthread_mutex_unlock(&a->mu);
	if (!s) {
		log_warn("node %s: usage: out of memory", a->cfg->node);
		return;
	}

	agent_now(now, sizeof(now), false);
	int64_t mono = agent_mono_s();
	for (size_t i = 0; i < n; i++) {
		err = a->rt_ops->pod_usage(a->rt, s[i].uid, &s[i].u);
		if (err) {
			if (err != -ENOENT)
				log_debug("pod %s: usage: %s", s[i].uid, strerror(-err));
			continue;
		}
		s[i].ok = true;
		pthread_mutex_lock(&a->mu);
		struct agent_pod *p = agent_pod_get(a, s[i].uid, NULL, NULL, false);
		if (p && p->pod && !p->deleted &&
		    (moved(p->usage_sent, &s[i].u) ||
		     mono - p->usage_sent_at >= a->cfg->usage_min_write_s)) {
			json_t *u = agent_usage_json(&s[i].u);
			if (u) {
				json_object_set_new(u, "timestamp", json_string(now));
				json_decref(p->usage);
				p->usage = u;
				if (agent_queue_add(a->queue, s[i].uid))
					log_warn("pod %s: usage not queued: out of memory", s[i].uid);
			}
		}
		pthread_mutex_unlock(&a->mu);
	}

	/* Memory pressure. */
	{
		uint64_t threshold = (uint64_t)(a->cfg->eviction_memory * (double)a->alloc_memory);
		pthread_mutex_lock(&a->mu);
		nu = a->node_usage;
		bool pressure = a->cfg->eviction_memory > 0 && a->have_node_usage &&
				nu.memory_bytes > threshold;
		bool was = a->memory_pressure;
		a->memory_pressure = pressure;
		pthread_mutex_unlock(&a->mu);
		if (pressure != was)
			log_warn("node %s: memory pressure %s (%" PRIu64 " of %" PRId64 " bytes)",
				 a->cfg->node, pressure ? "begins" : "ends", nu.memory_bytes,
				 a->alloc_memory);
		if (pressure)
			evict(a, s, n, &nu, threshold);
	}
	for (size_t i = 0; i < n; i++)
		free(s[i].uid);
	free(s);
}
