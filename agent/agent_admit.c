// SPDX-License-Identifier: Apache-2.0
/*
 * Admission on the node, as the kubelet's GeneralPredicates do it: a pod bound here runs
 * only if the node's labels satisfy its nodeSelector and required node affinity, and its
 * requests fit beside the pods already admitted (allocatable CPU, memory and pod count).
 * A pod that does not fit fails with the kubelet's reasons: NodeAffinity, OutOfcpu,
 * OutOfmemory, OutOfpods.
 *
 * The design choice: pods of the batch priority class are counted against the pod count
 * only. The scheduler admits them against predicted idle capacity (overcommit), not against
 * requests, and the agent evicts them first when memory runs short; refusing them here on
 * requests would undo the overcommit the scheduler chose.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent_int.h"
#include "hashmap.h"
#include "labels.h"
#include "quantity.h"

static int64_t req_of(const json_t *res, const char *name, bool memory)
{
	const char *q = json_string_value(json_object_get(json_object_get(res, "requests"), name));
	int64_t m;
	if (!q) {
		const json_t *v = json_object_get(json_object_get(res, "requests"), name);
		if (json_is_integer(v))
			return memory ? json_integer_value(v) : json_integer_value(v) * 1000;
		return 0;
	}
	if (quantity_parse_milli(q, &m) || m < 0)
		return 0;
	return memory ? quantity_milli_to_units(m) : m;
}

void agent_pod_requests(const json_t *pod, int64_t *cpu_milli, int64_t *memory)
{
	const json_t *spec = json_object_get(pod, "spec");
	int64_t cpu = 0, mem = 0, icpu = 0, imem = 0;
	size_t i;
	json_t *c;

	json_array_foreach (json_object_get(spec, "containers"), i, c) {
		cpu += req_of(json_object_get(c, "resources"), "cpu", false);
		mem += req_of(json_object_get(c, "resources"), "memory", true);
	}
	json_array_foreach (json_object_get(spec, "initContainers"), i, c) {
		int64_t x = req_of(json_object_get(c, "resources"), "cpu", false);
		int64_t y = req_of(json_object_get(c, "resources"), "memory", true);
		icpu = x > icpu ? x : icpu;
		imem = y > imem ? y : imem;
	}
	cpu = icpu > cpu ? icpu : cpu;
	mem = imem > mem ? imem : mem;
	/* overhead is a resource list like requests */
	json_t *ov =
		json_pack("{s:O}", "requests", json_object_get(spec, "overhead") ?: json_null());
	cpu += req_of(ov, "cpu", false);
	mem += req_of(ov, "memory", true);
	json_decref(ov);
	*cpu_milli = cpu;
	*memory = mem;
}

bool agent_pod_is_batch(const struct agent *a, const json_t *pod)
{
	const char *pc = json_string_value(
		json_object_get(json_object_get(pod, "spec"), "priorityClassName"));
	return pc && a->cfg->batch_class && !strcmp(pc, a->cfg->batch_class);
}

/* The node's labels: as registered, else as configured. */
static const json_t *node_labels(const struct agent *a)
{
	return a->node_labels ? a->node_labels : a->cfg->labels;
}

static bool term_matches(const struct agent *a, const json_t *term, char *err, size_t errlen)
{
	const json_t *me = json_object_get(term, "matchExpressions");
	size_t i;
	json_t *f;

	if (json_array_size(me)) {
		json_t *wrap = json_pack("{s:O}", "matchExpressions", me);
		struct selector *sel = NULL;
		bool ok = wrap && selector_from_json(wrap, true, &sel, err, errlen) == 0 &&
			  selector_matches(sel, node_labels(a));
		selector_free(sel);
		json_decref(wrap);
		if (!ok)
			return false;
	}
	json_array_foreach (json_object_get(term, "matchFields"), i, f) {
		const char *key = json_string_value(json_object_get(f, "key"));
		const char *op = json_string_value(json_object_get(f, "operator"));
		bool in = false;
		size_t j;
		json_t *v;
		if (!key || strcmp(key, "metadata.name") || !op)
			return false;
		json_array_foreach (json_object_get(f, "values"), j, v)
			in |= json_is_string(v) && !strcmp(json_string_value(v), a->cfg->node);
		if ((!strcmp(op, "In") && !in) || (!strcmp(op, "NotIn") && in))
			return false;
	}
	return true;
}

static bool affinity_matches(const struct agent *a, const json_t *spec, char *msg, size_t mlen)
{
	const json_t *ns = json_object_get(spec, "nodeSelector");
	const json_t *labels = node_labels(a);
	const char *k;
	json_t *v;

	json_object_foreach ((json_t *)ns, k, v) {
		const char *have = json_string_value(json_object_get(labels, k));
		if (!have || !json_is_string(v) || strcmp(have, json_string_value(v))) {
			snprintf(msg, mlen,
				 "Pod's node affinity/selector does not match the node's labels: "
				 "nodeSelector %s=%s",
				 k, json_is_string(v) ? json_string_value(v) : "?");
			return false;
		}
	}
	const json_t *terms = json_object_get(
		json_object_get(json_object_get(json_object_get(spec, "affinity"), "nodeAffinity"),
				"requiredDuringSchedulingIgnoredDuringExecution"),
		"nodeSelectorTerms");
	if (!json_array_size(terms))
		return true;
	size_t i;
	json_t *t;
	char err[256] = "";
	json_array_foreach (terms, i, t)
		if (term_matches(a, t, err, sizeof(err)))
			return true;
	snprintf(msg, mlen,
		 "Pod's node affinity/selector does not match the node's labels: no "
		 "nodeSelectorTerm matches%s%s",
		 err[0] ? ": " : "", err);
	return false;
}

static bool pod_active(const struct agent_pod *p)
{
	const char *ph = json_string_value(json_object_get(p->rt_status, "phase"));
	if (!p->admitted || p->verdict)
		return false;
	if (ph && (!strcmp(ph, "Succeeded") || !strcmp(ph, "Failed")))
		return false;
	return p->in_runtime || (p->pod && !p->deleted);
}

int agent_admit(struct agent *a, const json_t *pod, char *reason, size_t rlen, char *msg,
		size_t mlen)
{
	const json_t *spec = json_object_get(pod, "spec");
	const char *uid =
		json_string_value(json_object_get(json_object_get(pod, "metadata"), "uid"));
	int64_t cpu, mem, used_cpu = 0, used_mem = 0, count = 0;
	size_t it = 0;
	const char *k;
	void *v;

	if (!affinity_matches(a, spec, msg, mlen)) {
		snprintf(reason, rlen, "NodeAffinity");
		return -EPERM;
	}
	while (hashmap_next(a->pods, &it, &k, &v)) {
		const struct agent_pod *p = v;
		if ((uid && !strcmp(k, uid)) || !pod_active(p))
			continue;
		count++;
		if (p->pod && agent_pod_is_batch(a, p->pod))
			continue;
		int64_t c = 0, m = 0;
		if (p->pod)
			agent_pod_requests(p->pod, &c, &m);
		used_cpu += c;
		used_mem += m;
	}
	if (count + 1 > a->alloc_pods) {
		snprintf(reason, rlen, "OutOfpods");
		snprintf(msg, mlen,
			 "Node didn't have enough resource: pods, requested: 1, used: %" PRId64
			 ", capacity: %" PRId64,
			 count, a->alloc_pods);
		return -EPERM;
	}
	if (agent_pod_is_batch(a, pod))
		return 0;
	agent_pod_requests(pod, &cpu, &mem);
	if (cpu && used_cpu + cpu > a->alloc_cpu_milli) {
		snprintf(reason, rlen, "OutOfcpu");
		snprintf(msg, mlen,
			 "Node didn't have enough resource: cpu, requested: %" PRId64
			 ", used: %" PRId64 ", capacity: %" PRId64,
			 cpu, used_cpu, a->alloc_cpu_milli);
		return -EPERM;
	}
	if (mem && used_mem + mem > a->alloc_memory) {
		snprintf(reason, rlen, "OutOfmemory");
		snprintf(msg, mlen,
			 "Node didn't have enough resource: memory, requested: %" PRId64
			 ", used: %" PRId64 ", capacity: %" PRId64,
			 mem, used_mem, a->alloc_memory);
		return -EPERM;
	}
	return 0;
}
