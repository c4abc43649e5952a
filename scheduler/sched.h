/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler: a snapshot of nodes, pods and pod groups kept incrementally from
 * Kubernetes-shaped JSON objects, a priority queue, and the framework that places one pod at a
 * time (pre-filter, parallel filter, score, reserve, bind, post-filter preemption).
 *
 * The embedder owns the objects and the clock: it feeds add/update/delete events (from a
 * watch in shoald, from memory in the simulator), calls sched_schedule_one() while it
 * returns 1, and sleeps until sched_next_wakeup_ms() or the next event. Binding, eviction
 * and status writes go out through struct sched_ops, so shoald binds with compare-and-swap
 * through its API and the simulator binds in memory; the scheduling code is the same.
 *
 * Objects are parsed into compact structs once, when they enter the snapshot: nothing on the
 * scheduling path reads JSON. Not thread-safe: one thread calls into a struct sched (the
 * filter's worker threads are internal).
 */
/* The build puts scheduler/ on the include path, so this file is also what <sched.h> finds
 * (pthread.h includes it): pass the C library's <sched.h> through first. */
#include_next <sched.h>

#ifndef SHOAL_SCHED_H
#define SHOAL_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* jansson's json_t (the same typedef as <jansson.h>; this header stays light because the C
 * library's headers include it) */
typedef struct json_t json_t;

struct sched;

/* What the scheduler asks of its embedder. Every callback may be NULL. Callbacks run inside
 * sched_schedule_one() and must not call into the scheduler (queue the work instead: a
 * victim is deleted with sched_pod_delete() after the call returns). */
struct sched_ops {
	void *ctx;
	/* Binds ns/name (uid) to node, e.g. POST .../pods/NAME/binding with compare-and-swap.
	 * 0: bound (the snapshot keeps the pod on the node; a later update saying the same is a
	 * no-op); a negative errno: the reservation is forgotten and the pod retried with
	 * back-off. NULL binds in memory. */
	int (*bind)(void *ctx, const char *ns, const char *name, const char *uid,
		    const char *node);
	/* Gracefully deletes a preemption victim. The pod stays in the snapshot until the
	 * embedder deletes it (sched_pod_delete). */
	int (*evict)(void *ctx, const char *ns, const char *name, const char *uid,
		     const char *preemptor);
	/* Records PodScheduled=False with reason "Unschedulable" and message, and (when
	 * nominated is not NULL) status.nominatedNodeName. */
	void (*unschedulable)(void *ctx, const char *ns, const char *name, const char *message,
			      const char *nominated);
	/* Milliseconds on a monotonic clock; NULL uses CLOCK_MONOTONIC. The simulator and the
	 * tests drive a virtual clock. */
	int64_t (*now_ms)(void *ctx);
};

/*
 * Configuration (JSON, all fields optional):
 * {"parallelism": 2, "percentageOfNodesToScore": 0, "seed": 1,
 *  "podInitialBackoffSeconds": 1, "podMaxBackoffSeconds": 10,
 *  "profiles": [{"name": "spread", "schedulerName": "default-scheduler",
 *                "scoring": "LeastAllocated",
 *                "weights": {"NodeResourcesFit": 1, "BalancedAllocation": 1, ...},
 *                "disabled": ["LoadAware"]},
 *               {"name": "binpack", "schedulerName": "binpack", "scoring": "MostAllocated"}],
 *  "prediction": {"enabled": false, "halfLifeHours": 24, "bucketMinutes": 60,
 *                 "cpuPercentile": 95, "memoryPercentile": 98, "margin": 0.1,
 *                 "thresholdPercent": 90, "minSamples": 30,
 *                 "batchPriorityClass": "batch"}}
 * percentageOfNodesToScore 0 is adaptive (50% minus 1% per 125 nodes, at least 5%, at least
 * 100 nodes), as kube-scheduler. A pod picks its profile by spec.schedulerName (empty means
 * "default-scheduler"; a profile also answers to its own name); pods naming no profile are
 * left to another scheduler.
 */
struct sched_config;

/* Parses a configuration; NULL json gives the defaults. Returns NULL with a message naming
 * the field in err. */
struct sched_config *sched_config_parse(const json_t *json, char *err, size_t errlen);
struct sched_config *sched_config_load(const char *path, char *err, size_t errlen);
void sched_config_free(struct sched_config *cfg);

/* Creates a scheduler; cfg is copied (NULL: defaults), ops may be NULL. */
struct sched *sched_new(const struct sched_config *cfg, const struct sched_ops *ops);
void sched_free(struct sched *s);

/*
 * Watch events. Node, Pod, PodGroup and Namespace objects as the API serves them. A pod with
 * spec.nodeName is placed on that node (its requests and terms counted); one without enters
 * the queue if a profile answers to its schedulerName; a pod in phase Succeeded or Failed
 * counts nowhere. Upsert is add-or-update. Returns 0 or -EINVAL with a message naming the
 * field (err may be NULL).
 */
int sched_node_upsert(struct sched *s, const json_t *node, char *err, size_t errlen);
int sched_node_delete(struct sched *s, const char *name);
int sched_pod_upsert(struct sched *s, const json_t *pod, char *err, size_t errlen);
int sched_pod_delete(struct sched *s, const char *ns, const char *name);
/* PodGroup: {"metadata": {"name", "namespace"}, "spec": {"minMember": 8,
 * "scheduleTimeoutSeconds": 60}}; pods join with the label scheduling.x-k8s.io/pod-group. */
int sched_podgroup_upsert(struct sched *s, const json_t *pg, char *err, size_t errlen);
int sched_podgroup_delete(struct sched *s, const char *ns, const char *name);
/* Namespace labels, for namespaceSelector in pod affinity terms. */
int sched_namespace_upsert(struct sched *s, const json_t *ns, char *err, size_t errlen);

/*
 * Takes the next pod from the queue and runs one scheduling cycle for it. Returns 1 when a pod
 * was processed (bound, reserved in its gang, nominated or found unschedulable), 0 when no pod
 * is ready (the queue is empty or every pod waits for back-off or an event), or a negative
 * errno.
 */
int sched_schedule_one(struct sched *s);

/* Runs sched_schedule_one() until it returns 0 or max pods were processed; returns the number
 * processed. */
int sched_run(struct sched *s, int max);

/* The earliest time (sched_ops.now_ms clock) at which a back-off ends or a gang times out,
 * or -1 when nothing waits for time. */
int64_t sched_next_wakeup_ms(struct sched *s);

/* Resource usage samples (agents report every 10 s): cpu in millicores, memory in bytes, at
 * ts_ms (wall clock, for the time of day). The sample feeds the usage profile of the pod's
 * workload (its controller owner, else the pod). sched_pod_upsert() also takes one from a
 * Pod's status.usage: {"cpu": "250m", "memory": "300Mi", "timestamp": "2026-11-23T13:40:00Z"},
 * once per timestamp. */
int sched_usage_sample(struct sched *s, const char *ns, const char *pod, int64_t cpu_milli,
		       int64_t mem_bytes, int64_t ts_ms);
/* Recomputes every pod's prediction and every node's predicted peak from the profiles (call
 * after a batch of samples, e.g. every minute); now_wall_ms picks the time-of-day. */
void sched_predict_refresh(struct sched *s, int64_t now_wall_ms);

/* Facts about one node, for status publication and tests. Resources in milli-units (cpu
 * millicores * 1000 is not used: cpu is in millicores, memory in milli-bytes, as
 * common/quantity.h). */
struct sched_node_info {
	int64_t alloc_cpu, alloc_mem;	  /* allocatable */
	int64_t req_cpu, req_mem;	  /* requested by placed pods (batch pods excluded) */
	int64_t batch_req_cpu, batch_req_mem;	/* requested by placed batch pods */
	int64_t peak_cpu, peak_mem;	  /* predicted peak usage (requests on cold start) */
	int64_t batch_alloc_cpu, batch_alloc_mem; /* predicted idle capacity for batch pods */
	int pods;
};
int sched_node_info(struct sched *s, const char *node, struct sched_node_info *out);

/* Where a pod is: the node it is bound (or reserved) to, NULL if none. */
const char *sched_pod_node(struct sched *s, const char *ns, const char *name);
/* The last unschedulable message of a pending pod, NULL if none. */
const char *sched_pod_message(struct sched *s, const char *ns, const char *name);

/* Counters since sched_new. */
struct sched_stats {
	uint64_t attempts, scheduled, unschedulable, bind_errors, preemptions, victims,
		gang_timeouts, nodes_filtered;
	int active, backoff, unsched, waiting; /* queue lengths now */
};
void sched_stats(struct sched *s, struct sched_stats *out);

/*
 * An independent check of a placement, for tests and the simulator: nodes and pods are JSON
 * arrays (pods with spec.nodeName where placed), evaluated directly with common/labels.h, not
 * with the scheduler's counters. Counts violations of capacity, nodeSelector and required
 * node affinity, NoSchedule/NoExecute taints, required pod affinity and anti-affinity, and
 * DoNotSchedule topology spread; writes the first one into err. Returns the count.
 */
int sched_verify(const json_t *nodes, const json_t *pods, char *err, size_t errlen);
/* True when the pending pod (index pi in pods) could be placed on some node of the given
 * placement without violating anything sched_verify checks. */
bool sched_verify_fits_somewhere(const json_t *nodes, const json_t *pods, size_t pi);

#endif
