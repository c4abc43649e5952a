// SPDX-License-Identifier: Apache-2.0
/*
 * Usage and eviction, every --status-interval: the node's and each running pod's CPU and
 * memory from the runtime (cgroups), written as status.usage of the Node (with the
 * heartbeat) and of each Pod (the scheduler's resource prediction reads them), and
 * eviction when memory runs short: the machine's use passes --eviction-memory-threshold of its
 * memory, or the pods' use that fraction of the node's allocatable memory.
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
	if (!sent ||
	    quantity_parse_milli(json_string_value(json_object_get(sent, "cpu")) ?: "", &mcpu) ||
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

/* Evicts pods in eviction order until excess bytes are freed (a->mu not held). */
static void evict(struct agent *a, struct sample *s, size_t n, uint64_t excess, const char *why)
{
	uint64_t freed = 0;
	char pod[64];

	qsort(s, n, sizeof(*s), by_eviction_order);
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < n && freed < excess; i++) {
		if (!s[i].ok)
			continue;
		struct agent_pod *p = agent_pod_get(a, s[i].uid, NULL, NULL, false);
		if (!p || !p->pod || p->verdict || p->killing || !p->in_runtime ||
		    json_object_get(json_object_get(p->pod, "metadata"), "deletionTimestamp"))
			continue;
		char msg[600];
		quantity_format((int64_t)s[i].u.memory_bytes * 1000, pod, sizeof(pod));
		snprintf(msg, sizeof(msg),
			 "The node was low on resource: memory. %s; this pod used %s%s.", why, pod,
			 s[i].batch ? " and is of the batch class" : "");
		log_warn("pod %s/%s: evicting: %s", p->ns, p->name, msg);
		agent_pod_fail(a, p, "Evicted", msg);
		a->n.evictions++;
		freed += s[i].u.memory_bytes;
	}
	pthread_mutex_unlock(&a->mu);
}

/*
 * The memory signals, as the kubelet's: the machine's use against its memory
 * (memory.available), and the pods' use against the node's allocatable memory
 * (allocatableMemory.available). Returns the larger excess over its threshold (0: none) and
 * says which in why.
 */
static uint64_t memory_excess(const struct agent *a, const struct rt_usage *nu, bool have_nu,
			      uint64_t pods_used, char *why, size_t len)
{
	double f = a->cfg->eviction_memory;
	uint64_t excess = 0;
	char u[64], c[64], t[64];

	if (f <= 0)
		return 0;
	uint64_t pods_thr = (uint64_t)(f * (double)a->alloc_memory);
	if (pods_used > pods_thr) {
		excess = pods_used - pods_thr;
		snprintf(why, len, "The node's pods used %s of its %s allocatable (threshold %s)",
			 quantity_format((int64_t)pods_used * 1000, u, sizeof(u)),
			 quantity_format(a->alloc_memory * 1000, c, sizeof(c)),
			 quantity_format((int64_t)pods_thr * 1000, t, sizeof(t)));
	}
	uint64_t mach_thr = (uint64_t)(f * (double)a->cfg->machine_memory);
	if (have_nu && a->cfg->machine_memory > 0 && nu->memory_bytes > mach_thr &&
	    nu->memory_bytes - mach_thr > excess) {
		excess = nu->memory_bytes - mach_thr;
		snprintf(why, len, "The machine used %s of %s (threshold %s)",
			 quantity_format((int64_t)nu->memory_bytes * 1000, u, sizeof(u)),
			 quantity_format(a->cfg->machine_memory * 1000, c, sizeof(c)),
			 quantity_format((int64_t)mach_thr * 1000, t, sizeof(t)));
	}
	return excess;
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
		s[n].priority = json_integer_value(
			json_object_get(json_object_get(p->pod, "spec"), "priority"));
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
				workq_add(a->queue, s[i].uid);
			}
		}
		pthread_mutex_unlock(&a->mu);
	}

	/* Memory pressure. */
	uint64_t pods_used = 0;
	for (size_t i = 0; i < n; i++)
		pods_used += s[i].ok ? s[i].u.memory_bytes : 0;
	char why[300] = "";
	pthread_mutex_lock(&a->mu);
	nu = a->node_usage;
	bool have = a->have_node_usage;
	pthread_mutex_unlock(&a->mu);
	uint64_t excess = memory_excess(a, &nu, have, pods_used, why, sizeof(why));
	pthread_mutex_lock(&a->mu);
	bool was = a->memory_pressure;
	a->memory_pressure = excess > 0;
	pthread_mutex_unlock(&a->mu);
	if ((excess > 0) != was)
		log_warn("node %s: memory pressure %s%s%s", a->cfg->node,
			 excess ? "begins: " : "ends", excess ? why : "", "");
	if (excess)
		evict(a, s, n, excess, why);
	for (size_t i = 0; i < n; i++)
		free(s[i].uid);
	free(s);
}
