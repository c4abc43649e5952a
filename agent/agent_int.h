/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the agent's files share: the context struct and the functions one file offers the
 * others. Not a public interface (agent.h is).
 *
 * Locking: a->mu guards the pod table and the node's mutable state; it is never held while
 * calling the runtime, the API or dpsync. Each thread that talks to the API has its own HTTP
 * client (httpc is not thread-safe).
 */
#ifndef SHOAL_AGENT_INT_H
#define SHOAL_AGENT_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "httpc.h"
#include "informer.h"
#include "workq.h"

struct hashmap;
struct agent_http;

/* One pod the agent knows of: from the API, from the runtime, or both. */
struct agent_pod {
	char *uid, *ns, *name;
	json_t *pod;	    /* the API's object (the newest seen: watch or our writes), or NULL */
	bool deleted;	    /* gone from the API (pod keeps its last state) */
	json_t *rt_status;  /* the runtime's latest status report, or NULL */
	json_t *verdict;    /* the agent's own overlay (phase Failed with a reason: rejected,
			       * evicted), written over the runtime's reports, or NULL */
	json_t *usage;	    /* {cpu, memory, timestamp} to write, or NULL */
	json_t *usage_sent; /* the usage last written */
	int64_t usage_sent_at; /* when (monotonic seconds) */
	bool admitted;	       /* passed admission (or re-adopted from the runtime) */
	bool in_runtime;       /* handed to the runtime and not killed since */
	bool killing;	       /* rt_pod_kill() asked, done not called yet */
	bool confirmed;	       /* the deletion was confirmed to the API */
	int failures;	       /* consecutive failed attempts, for back-off */
	json_t *reasons;       /* container name -> the last state an Event was posted for */
};

struct agent_counters {
	atomic_ullong syncs, sync_errors, kills, status_writes, status_conflicts, status_errors,
		usage_writes, evictions, rejections, events, lease_renewals, lease_errors,
		heartbeats, heartbeat_errors, deletions_confirmed, http_requests;
};

struct agent {
	const struct agent_config *cfg;
	const struct agent_rt_ops *rt_ops;
	struct rt *rt;
	struct dpsync *dp;
	struct informer *pods_inf;
	struct workq *queue;
	struct agent_http *http;

	pthread_mutex_t mu;
	pthread_cond_t cond; /* stop and kill completions wake waiters */
	bool stopping;
	struct hashmap *pods; /* uid -> struct agent_pod */
	bool pods_synced;     /* the pod informer's first list is in */
	bool registered;
	int fatal;	    /* the agent gave up (agent_failed()) */
	json_t *conditions; /* the Node's conditions as last written */
	bool memory_pressure;
	struct rt_usage node_usage;
	bool have_node_usage;
	int64_t alloc_cpu_milli, alloc_memory, alloc_pods; /* the Node's allocatable */
	json_t *node_labels; /* the Node's labels as registered (for admission) */
	char endpoint[512];  /* advertised HTTP endpoint */

	pthread_t node_thread;
	bool node_thread_started;
	pthread_t *workers;
	int nworkers;

	struct httpc *node_http; /* the node thread's client */
	json_t *lease;		 /* the Lease as last written (node thread only) */
	struct agent_counters n;
};

/* ---- agent.c ---- */
/* RFC 3339 time now ("2024-01-02T15:04:05Z"; micro: with microseconds, for Leases). */
void agent_now(char *buf, size_t len, bool micro);
int64_t agent_mono_s(void);
/* A client for the API with this agent's token and TLS settings. */
struct httpc *agent_api_client(const struct agent *a);
/* Sleeps up to ms; returns true when the agent is stopping. */
bool agent_sleep(struct agent *a, long ms);
/* A JSON body of an API response, or NULL. */
json_t *agent_resp_json(const struct httpc_resp *r);
/* The message of a Status body, or the body itself, for logs. */
const char *agent_resp_msg(const struct httpc_resp *r, char *buf, size_t len);

/* ---- agent_node.c ---- */
/* Creates or updates the Node (labels, taints, podCIDR, capacity, addresses, conditions,
 * endpoint). 0, or a negative errno (the cause logged). */
int agent_node_register(struct agent *a, struct httpc *c);
/* Creates or renews kube-node-lease/<node>. */
int agent_lease_renew(struct agent *a, struct httpc *c);
/* Writes the Node's conditions (heartbeat) and usage. */
int agent_node_heartbeat(struct agent *a, struct httpc *c);
/* The node thread: register, start the pod informer, then lease / heartbeat / usage /
 * eviction on their intervals until stop. */
void *agent_node_thread(void *arg);

/* ---- agent_pods.c ---- */
int agent_pods_start(struct agent *a); /* the pod informer */
void *agent_worker(void *arg);	       /* a pod sync worker */
/* The runtime's status_changed callback. */
void agent_pod_status_changed(void *arg, const char *uid, const char *ns, const char *name,
			      json_t *status);
/* Looks up or adds the entry of uid (a->mu held). NULL on ENOMEM. */
struct agent_pod *agent_pod_get(struct agent *a, const char *uid, const char *ns, const char *name,
				bool create);
/* Forgets uid (a->mu held). */
void agent_pod_remove(struct agent *a, const char *uid);
/* Gives a pod the final status Failed with reason and message and queues it: the worker
 * writes the status, posts an Event and kills the pod if it runs (a->mu held). */
void agent_pod_fail(struct agent *a, struct agent_pod *p, const char *reason, const char *msg);
/* The grace period to kill a pod with: deletionGracePeriodSeconds, else the spec's, else 30. */
long agent_pod_grace(const json_t *pod);

/* ---- agent_admit.c ---- */
/* Whether pod may run on this node beside the admitted ones (a->mu held). 0, or -EPERM with
 * a Kubernetes reason ("OutOfcpu", "OutOfmemory", "OutOfpods", "NodeAffinity") and a
 * message. */
int agent_admit(struct agent *a, const json_t *pod, char *reason, size_t rlen, char *msg,
		size_t mlen);
/* Requests of a pod: containers summed, the largest init container if larger, overhead. */
void agent_pod_requests(const json_t *pod, int64_t *cpu_milli, int64_t *memory);
bool agent_pod_is_batch(const struct agent *a, const json_t *pod);

/* ---- agent_usage.c ---- */
/* Samples node and pod usage, queues usage writes, evicts under memory pressure. */
void agent_usage_tick(struct agent *a);
/* "250m" style quantities of a usage sample. */
json_t *agent_usage_json(const struct rt_usage *u);

/* ---- agent_events.c ---- */
/* Posts an Event about a pod (type "Normal" or "Warning"). Errors are logged only. */
void agent_event(struct agent *a, struct httpc *c, const char *ns, const char *name,
		 const char *uid, const char *type, const char *reason, const char *message);

/* ---- agent_http.c ---- */
int agent_http_start(struct agent *a);
void agent_http_stop(struct agent *a);

#endif
