/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pod runtime of shoal-agent: makes pods real on this node and reports what they are.
 *
 * A pod is a network namespace (/run/shoal/netns/<node>-<uid8>) with a veth into the node
 * (pod side eth0 with an address from the node's pod CIDR as /32, default route via
 * 169.254.1.1 onlink with a permanent neighbour entry for the node side; node side a /32
 * route to the pod), a cgroup under the node's cgroup enforcing CPU and memory limits, and
 * its containers as processes (command, args, env, workingDir, optional rootfs in a mount
 * namespace) with stdout and stderr in log files. Each container is supervised by a small
 * shim process so that containers outlive an agent restart and their exit codes are known
 * even when they exit while the agent is down; pod state lives in the state directory so a
 * restarted agent re-adopts what runs.
 *
 * The runtime owns restarts (restartPolicy; as kubelet, the first restart at once, then a
 * back-off of 10 s doubling to 300 s), probes
 * (liveness, readiness, startup: exec, tcpSocket, httpGet) and graceful termination
 * (SIGTERM, grace period, SIGKILL). Whenever a pod's observed status changes it calls
 * status_changed; the agent then writes that status to the API.
 *
 * What the caller must know:
 * - The node's network namespace is the one of the thread that calls rt_open (the runtime's
 *   thread is created from it); pods' namespaces are NL_NETNS_DIR/<node>-<uid first 8>, node
 *   sides of their veths "sh" + 8 hex digits. rt_open sets net.ipv4.ip_forward=1 there.
 * - Each container's supervisor (shoal-shim, see rt_config.shim_path) is a child of the agent
 *   process, in a session of its own; the runtime collects the shims it started with
 *   waitpid(pid). So the agent must not ignore SIGCHLD nor reap children it did not start
 *   (no waitpid(-1)). Shims outlive the agent and are re-adopted by the next rt_open.
 * - Pod fields read: metadata.uid, name, namespace, labels/annotations (fieldRef),
 *   ownerReferences (controller: kept addresses), spec.containers, initContainers (run one
 *   after the other to success before the containers start), restartPolicy,
 *   terminationGracePeriodSeconds, hostname, nodeName (must be this node or empty). Unknown
 *   container fields, hostNetwork, volumeMounts, envFrom, secret/configMap env sources, grpc
 *   probes and postStart hooks are refused with a status reason naming the field. Of
 *   securityContext, runAsUser, runAsGroup and runAsNonRoot are applied (the rest is not
 *   enforced). No images: a container needs `command`; an `image` starting with "/" is a
 *   directory used as its root filesystem (annotation shoal.io/rootfs: the same for every
 *   container of the pod); any other image name runs on the node's root filesystem.
 * - State: <state_dir>/ipam.json, <state_dir>/pods/<uid>/pod.json, per container instance
 *   pods/<uid>/c/<container>/<restartCount>/ (the shim's pid.json and exit.json) and the log
 *   pods/<uid>/logs/<container>/<restartCount>.log (rotated to .log.1 past log_max_bytes);
 *   the current and the previous instance are kept.
 */
#ifndef SHOAL_AGENT_RUNTIME_H
#define SHOAL_AGENT_RUNTIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct rt;

struct rt_config {
	const char *node;	 /* node name */
	const char *state_dir;	 /* pod state, logs: <state_dir>/pods/<uid>/... */
	const char *cgroup_root; /* the node's cgroup directory (cgroup v2 path); pods go below */
	const char *pod_cidr;	 /* e.g. "10.100.1.0/24" */
	/* Called (from a runtime thread, never under the runtime's locks) when the observed
	 * status of pod uid changed; status is a Pod "status" object (phase, podIP, podIPs,
	 * hostIP, startTime, conditions incl. Ready/ContainersReady/Initialized/PodScheduled,
	 * containerStatuses with state, lastState, ready, started, restartCount, exit codes and
	 * reasons). Borrowed. */
	void (*status_changed)(void *arg, const char *uid, const char *ns, const char *name,
			       json_t *status);
	void *arg;
	const char *host_ip; /* the node's address, reported as status.hostIP */
	/* The container supervisor binary; NULL: shoal-shim beside the running executable. */
	const char *shim_path;
	/* Restart back-off: base doubling up to max (0: 10 s and 300 s), after an immediate
	 * first restart. A container that ran for twice max before it exited starts over. */
	unsigned backoff_base_ms, backoff_max_ms;
	/* A container log file is rotated (to FILE.1) past this size (0: 10 MiB). */
	uint64_t log_max_bytes;
};

/* Opens the runtime and re-adopts the pods recorded in state_dir that still run. NULL and
 * errno on failure (the cause is logged). */
struct rt *rt_open(const struct rt_config *cfg);
/* Stops probes and supervision threads; pods keep running (restart-safe). Accepts NULL. */
void rt_close(struct rt *rt);

/* Makes the node match pod (a Pod object bound to this node): creates it if new, otherwise
 * nothing (a pod's containers are immutable; changed fields are ignored as Kubernetes does).
 * Errors of the pod itself (an impossible command, a bad rootfs) become its status with a
 * reason, not a return value; a negative errno means the node could not act (-EINVAL: the pod
 * has no metadata.uid/name, or is bound to another node; else its record could not be
 * written). Returns once the pod is recorded and its containers were started (or failed to);
 * the pod is copied, the caller keeps its reference. May be called from status_changed. */
int rt_pod_sync(struct rt *rt, const json_t *pod);

/* Terminates pod uid gracefully (preStop hooks, SIGTERM, then SIGKILL after grace_s; grace_s
 * < 0: the pod's terminationGracePeriodSeconds), then removes its processes, cgroup, network
 * namespace and veth, its state directory and logs, and releases its address (unless kept
 * for its owner, see rt_ipam_*). Asynchronous: done(arg, uid) is called from the runtime's
 * thread once everything is gone (done may be NULL). Unknown uid: done is called at once,
 * from the caller's thread. A termination survives rt_close/rt_open (done is then not
 * called: call rt_pod_kill again). */
int rt_pod_kill(struct rt *rt, const char *uid, long grace_s,
		void (*done)(void *arg, const char *uid), void *arg);

/* The uids of the pods this runtime holds (malloc'd array of malloc'd strings). */
int rt_pods(struct rt *rt, char ***uids, size_t *n);
/* The current status object of pod uid (new reference), or NULL. */
json_t *rt_pod_status(struct rt *rt, const char *uid);

/* Log file of a container ("" or NULL container: the first) of pod ns/pod, of its current
 * instance or (previous) of the one before (`logs --previous`). Returns the path (malloc'd)
 * or NULL with errno (ENOENT: no such pod, container or instance). */
char *rt_log_path(struct rt *rt, const char *ns, const char *pod, const char *container,
		  bool previous);

/* Usage: node and per-pod CPU (cores, averaged since the last call; the first call: since
 * boot or since the pod started) and memory (bytes: the working set, without inactive file
 * pages), read from the pod's cgroup and from /proc/stat and /proc/meminfo. -ENOENT: no such
 * pod. */
struct rt_usage {
	double cpu_cores;
	uint64_t memory_bytes;
};
int rt_node_usage(struct rt *rt, struct rt_usage *out);
int rt_pod_usage(struct rt *rt, const char *uid, struct rt_usage *out);

/* IPAM (used by rt_pod_sync): a pod with a controller ownerReference and the annotation
 * shoal.io/keep-address: "true" (put it in the owner's pod template) keeps its address for
 * its owner when it goes; the owner's next pod on this node with the same name gets it back
 * (failing that, any pod of that owner). rt_ipam_release_owner() returns an owner's kept
 * addresses to the pool when the owner is deleted (an address still in use is freed when its
 * pod goes). */
int rt_ipam_release_owner(struct rt *rt, const char *owner_uid);

#endif
