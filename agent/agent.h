/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shoal-agent as a library: one struct agent per node. It registers the Node, renews its
 * Lease, list-watches the pods bound to the node and hands them to the pod runtime
 * (runtime.h), writes their status back, samples usage, evicts batch pods under memory
 * pressure, drives the data plane sync (dpsync.h) and serves the agent's HTTP endpoint.
 *
 * The design choice: everything lives in the context struct, nothing in globals, so that one
 * process can hold many agents (a hollow-agent benchmark runs thousands of them against one
 * shoald, with a runtime of its own through struct agent_rt_ops and without a data plane).
 * shoal_agent.c is a thin main around agent_config_parse() and agent_start().
 */
#ifndef SHOAL_AGENT_H
#define SHOAL_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dpsync.h"
#include "runtime.h"

struct agent;
struct strbuf;

/*
 * The pod runtime as the agent calls it. NULL in the config: the real one (runtime.h). A
 * benchmark gives its own, which must honour the same contracts (status_changed from its
 * own threads, kill completion through done).
 */
struct agent_rt_ops {
	struct rt *(*open)(const struct rt_config *cfg);
	void (*close)(struct rt *rt);
	int (*pod_sync)(struct rt *rt, const json_t *pod);
	int (*pod_kill)(struct rt *rt, const char *uid, long grace_s,
			void (*done)(void *arg, const char *uid), void *arg);
	int (*pods)(struct rt *rt, char ***uids, size_t *n);
	json_t *(*pod_status)(struct rt *rt, const char *uid);
	char *(*log_path)(struct rt *rt, const char *ns, const char *pod, const char *container,
			  bool previous);
	int (*node_usage)(struct rt *rt, struct rt_usage *out);
	int (*pod_usage)(struct rt *rt, const char *uid, struct rt_usage *out);
};

/* The runtime of runtime.h. */
extern const struct agent_rt_ops agent_rt_default;

struct agent_taint {
	char *key, *value, *effect;
};

struct agent_config {
	/* The API */
	char *server;	  /* "unix:/PATH", "http://H:P", "https://H:P" */
	char *token_file; /* a file holding this node's bearer token (NULL: none) */
	char *token;	  /* its content (read by agent_config_finish) */
	char *ca_file;
	bool insecure;

	/* The node */
	char *node;		    /* the Node's name (default: the host name) */
	char *netns;		    /* a network namespace to enter first (main only) */
	char *uplink;		    /* default "eth0" */
	char *node_ip;		    /* default: the uplink's first IPv4 address */
	char *pod_cidr;		    /* e.g. "10.100.1.0/24" (required unless the Node has one) */
	char *zone;		    /* topology.kubernetes.io/zone (NULL: none) */
	json_t *labels;		    /* object of strings, merged over the Node's */
	struct agent_taint *taints; /* put on the Node when missing (others stay) */
	size_t ntaints;
	int64_t cap_cpu_milli, cap_memory,
		cap_pods;	/* 0: from the machine (cgroup_root's limits) */
	int64_t machine_memory; /* MemTotal (filled by agent_config_finish) */
	char *cgroup_root;	/* the node's cgroup (cgroup v2 directory) */
	char *state_dir;	/* default /var/lib/shoal/agent */
	enum dpsync_mode proxy;
	bool no_dataplane; /* do not start dpsync (hollow agents, runtime-only tests) */
	char *listen;	   /* the agent's HTTP endpoint: "unix:PATH" or "HOST:PORT" (NULL: none) */
	char *advertise;   /* the endpoint written to the Node (default: derived from listen) */
	char *batch_class; /* the priorityClassName of batch pods (default "batch") */
	char *shim_path;   /* the container supervisor (NULL: shoal-shim beside the binary) */
	char *xdp_mode;	   /* "native" or "generic" (NULL: dpsync's choice) */
	char *bpf_root;	   /* BPF pins (NULL: /sys/fs/bpf/shoal) */

	/* Timing (seconds) */
	int lease_duration_s;	/* default 40 */
	int lease_renew_s;	/* default 10 */
	int status_interval_s;	/* node heartbeat, usage sampling and eviction; default 10 */
	int usage_min_write_s;	/* a pod's usage is rewritten at least this often; 60 */
	double eviction_memory; /* evict when the machine's memory use passes this fraction of
				  * its memory, or the pods' use this fraction of the node's
				  * allocatable memory; default 0.95, 0: never */
	int eviction_grace_s;	/* the most grace an evicted pod gets; default 10 */
	int workers;		/* pod sync workers, default 2 */

	const struct agent_rt_ops *rt; /* NULL: agent_rt_default */
	char *log_level;	       /* main only */
};

/* Defaults into a zeroed config. */
void agent_config_init(struct agent_config *c);
void agent_config_free(struct agent_config *c);
/*
 * Parses the command line into c (after agent_config_init()): --config FILE (a JSON object
 * whose keys are the long options without dashes; the command line wins over it) and the
 * options listed by agent_config_usage(). Returns 0, 1 for --help (usage printed to stdout),
 * or -EINVAL with a message naming the option or key at fault in err.
 */
int agent_config_parse(struct agent_config *c, int argc, char **argv, char *err, size_t errlen);
/* Applies one JSON config object (the --config file's content) to c. */
int agent_config_apply_json(struct agent_config *c, const json_t *obj, char *err, size_t errlen);
/* Fills what defaults to the machine (node name, node IP from the uplink, capacity) and reads
 * the token file; call after entering the node's network namespace. */
int agent_config_finish(struct agent_config *c, char *err, size_t errlen);
void agent_config_usage(FILE *f);

/* Parsers shared with the config file, exposed for tests. */
int agent_parse_labels(const char *s, json_t **out, char *err, size_t errlen);
int agent_parse_taints(const char *s, struct agent_taint **out, size_t *n, char *err,
		       size_t errlen);
int agent_parse_capacity(const char *s, struct agent_config *c, char *err, size_t errlen);

/*
 * Starts an agent: registers the Node (waiting for the API as long as it takes, unless stop
 * is asked), opens the runtime (re-adopting what runs), starts the pod informer and workers,
 * the heartbeat thread, dpsync and the HTTP endpoint. The config must outlive the agent.
 * NULL and errno on failure (the cause is logged).
 */
struct agent *agent_start(const struct agent_config *cfg);
/* Stops threads and informers; pods and the data plane stay as they are. Accepts NULL. */
void agent_stop(struct agent *a);
/* 0, or the reason (a negative errno) the agent gave up: the API refuses it for good (the
 * Node has another pod CIDR, the token belongs to another node). The caller should stop it. */
int agent_failed(struct agent *a);
/* Node registered, pods listed, data plane synced (when there is one). */
bool agent_ready(struct agent *a);
/* Prometheus text of the agent's counters, its informers and dpsync. */
int agent_metrics(struct agent *a, struct strbuf *out);

#endif
