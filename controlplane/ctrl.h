/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller framework inside shoald, shaped like client-go's: shared informers fed by
 * the watch cache, one rate-limited work queue per controller, worker threads, and a
 * level-triggered, idempotent reconcile of one object key at a time that writes through the
 * API in-process (api_local.h), never to the store directly.
 *
 * - An informer (one per kind, shared by every controller that asks for it) lists the watch
 *   cache, then follows it from the list's revision; a watch that falls behind the event
 *   history lists again, and what vanished meanwhile comes as a deletion. It keeps, per
 *   object, a small immutable record (struct ctrl_obj): the served object, its uid, its
 *   owner references, its parsed selector and, for pods, what controllers ask of a pod
 *   (phase, readiness, node, address, ports, ...). Records are indexed by uid, by
 *   controlling owner's uid, by any owner's uid, and (kinds that ask) by namespace and
 *   label, so that "the pods of this ReplicaSet" or "the pods this selector picks" cost
 *   what they return, not the number of pods in the cluster.
 * - One thread applies every informer's events, then calls the handlers controllers
 *   registered; a handler only maps the event to keys and queues them.
 * - A work queue holds each key once, hands a key to one worker at a time (a key queued while
 *   it is being reconciled is reconciled again afterwards), delays keys (ctrl_queue_after),
 *   and rate-limits failures: per key 5 ms doubling up to 1000 s, reset on success, and an
 *   overall token bucket (10/s, burst 100) over the retries.
 * - Expectations, as client-go's: a controller that creates or deletes children records
 *   what it expects to see, and does not act on the key again until its informer has seen
 *   it (or 5 minutes passed), so that it never counts children twice.
 */
#ifndef SHOAL_CTRL_H
#define SHOAL_CTRL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "labels.h"
#include "watch_cache.h"

struct api_server;
struct ctrl_manager;
struct ctrl;
struct ctrl_informer;
struct strbuf;
struct fed_config;

/* What shoald's controllers are tuned by (shoald's flags; zero: the default). */
struct ctrl_config {
	int64_t node_monitor_grace_ms; /* a node not heard of for this long is lost (40 s) */
	int64_t node_startup_grace_ms; /* a new node's first heartbeat may take this long (60 s) */
	long default_toleration_s;     /* tolerationSeconds of pods that give none (300) */
	double eviction_qps;	       /* pods evicted per second at most (10) */
	int64_t job_backoff_base_ms; /* a failed Job pod's replacement waits this, doubling (10 s) */
	const struct fed_config *fed; /* `shoald --federation`: run the federation controller */
};

/* ---- records ------------------------------------------------------------------------------ */

enum ctrl_pod_phase { POD_PENDING, POD_RUNNING, POD_SUCCEEDED, POD_FAILED, POD_UNKNOWN };

/* A container port, for named targetPorts. */
struct ctrl_port {
	char *name;
	int port;
	char protocol[8];
};

/* What controllers ask of a pod, taken from it once per event. */
struct ctrl_pod {
	enum ctrl_pod_phase phase;
	bool ready;	    /* condition Ready=True */
	time_t ready_since; /* its lastTransitionTime (0: unknown) */
	bool scheduled;	    /* spec.nodeName set */
	char *node;	    /* spec.nodeName or NULL */
	char *ip;	    /* status.podIP or NULL */
	char *hostname, *subdomain;
	int restarts;		 /* sum of the containers' restartCount */
	struct ctrl_port *ports; /* containers' ports */
	size_t nports;
	/* tolerationSeconds of the pod for node.kubernetes.io/unreachable:NoExecute and
	 * not-ready:NoExecute: -1 forever, else seconds (absent: the configured default). */
	long tolerate_unreachable_s, tolerate_not_ready_s;
	bool tolerates_unreachable, tolerates_not_ready; /* a toleration is present */
	/* The node the pod is for: spec.nodeName, else the one its required node affinity pins
	 * it to (matchFields metadata.name In [NODE], as DaemonSet pods are). */
	char *target_node;
};

/* What controllers ask of a node. */
struct ctrl_node {
	json_t *taints; /* spec.taints (an array, may be empty) */
	bool unschedulable;
	const char *ready; /* the Ready condition's status ("True", ...), NULL when absent */
	char *ready_buf;
};

/* An owner reference. */
struct ctrl_ref {
	char *api_version, *kind, *name, *uid;
	bool controller, block_owner_deletion;
};

/* One cached object: immutable, reference-counted (an update replaces it). */
struct ctrl_obj {
	int refcnt;
	struct wc_obj *o; /* the served object: key, ns, name, json, rev */
	const char *uid;  /* "" when absent */
	const char *key;  /* "ns/name" or "name": the work-queue key */
	char *keybuf;
	time_t created; /* metadata.creationTimestamp */
	bool deleting;	/* metadata.deletionTimestamp set */
	int64_t generation;
	struct ctrl_ref *refs; /* metadata.ownerReferences */
	size_t nrefs;
	const struct ctrl_ref *controller; /* the one with controller=true, or NULL */
	char **finalizers;
	size_t nfinalizers;
	/* The object's selector (Service: spec.selector; workloads: spec.selector), parsed;
	 * NULL when the kind has none or it is absent (a Service without one selects
	 * nothing). */
	struct selector *sel;
	struct ctrl_pod *pod;	/* pods only */
	struct ctrl_node *node; /* nodes only */
};

void ctrl_obj_ref(struct ctrl_obj *c);
void ctrl_obj_unref(struct ctrl_obj *c);
/* The object's labels (may be NULL). */
const json_t *ctrl_obj_labels(const struct ctrl_obj *c);
/* The object parsed (a new reference), NULL on failure. */
json_t *ctrl_obj_json(const struct ctrl_obj *c);
/* A label's value or NULL. */
const char *ctrl_obj_label(const struct ctrl_obj *c, const char *key);

/* An array of referenced records, freed with ctrl_objs_free. */
struct ctrl_objs {
	struct ctrl_obj **v;
	size_t n, cap;
};
void ctrl_objs_free(struct ctrl_objs *l);

/* ---- informers ------------------------------------------------------------------------- */

enum ctrl_event { CTRL_ADDED, CTRL_MODIFIED, CTRL_DELETED };

enum {
	CTRL_INDEX_LABELS = 1u << 0,	/* by namespace and label: ctrl_select() */
	CTRL_INDEX_SELECTORS = 1u << 1, /* by what their selector needs: ctrl_selecting() */
	CTRL_INDEX_NODE = 1u << 2,	/* pods by spec.nodeName: ctrl_on_node() */
	CTRL_INDEX_NAMESPACE = 1u << 3, /* by namespace: ctrl_list(inf, ns) costs what it returns */
};

/* The shared informer of a kind ("Pod", "apps/v1" "Deployment", ...), created on first use
 * (during a controller's init only); flags add indexes. NULL and errno. */
struct ctrl_informer *ctrl_informer(struct ctrl *c, const char *api_version, const char *kind,
				    unsigned flags);

/* Handlers run on the informer thread after the caches are updated: now is the new record
 * (the last one for DELETED), old the one it replaces (NULL for ADDED). They must not block. */
typedef void (*ctrl_handler_fn)(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
				const struct ctrl_obj *old);
int ctrl_on(struct ctrl *c, struct ctrl_informer *inf, ctrl_handler_fn fn);

/* The record of key ("ns/name" or "name"), referenced, or NULL. */
struct ctrl_obj *ctrl_get(struct ctrl_informer *inf, const char *key);
/* The record with that uid, referenced, or NULL. */
struct ctrl_obj *ctrl_get_uid(struct ctrl_informer *inf, const char *uid);
/* The record in owners (objects of kind) that controls o in o's namespace, referenced, or
 * NULL (o NULL, no controller, another kind, or an owner in another namespace). */
struct ctrl_obj *ctrl_controller_of(struct ctrl_informer *owners, const char *kind,
				    const struct ctrl_obj *o);
/* The handler for a controller's own kind: queues the object, and forgets its expectations
 * when it is deleted. */
void ctrl_on_owner(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		   const struct ctrl_obj *old);
/* Records whose controlling owner has uid owner_uid (appended to out). */
int ctrl_owned(struct ctrl_informer *inf, const char *owner_uid, struct ctrl_objs *out);
/* Records with any owner reference to owner_uid. */
int ctrl_dependents(struct ctrl_informer *inf, const char *owner_uid, struct ctrl_objs *out);
/* Records of namespace ns that sel matches (CTRL_INDEX_LABELS). A NULL sel matches nothing. */
int ctrl_select(struct ctrl_informer *inf, const char *ns, const struct selector *sel,
		struct ctrl_objs *out);
/* Records of namespace ns whose own selector matches labels (CTRL_INDEX_SELECTORS). */
int ctrl_selecting(struct ctrl_informer *inf, const char *ns, const json_t *labels,
		   struct ctrl_objs *out);
/* Pods bound to node (CTRL_INDEX_NODE). */
int ctrl_on_node(struct ctrl_informer *inf, const char *node, struct ctrl_objs *out);
/* Every record (of namespace ns, NULL: all). */
int ctrl_list(struct ctrl_informer *inf, const char *ns, struct ctrl_objs *out);
size_t ctrl_count(struct ctrl_informer *inf);

/* ---- controllers ------------------------------------------------------------------------- */

struct ctrl_def {
	const char *name; /* "replicaset": metrics label, log prefix */
	int workers;
	/* Creates informers, registers handlers, allocates c's private state. 0 or -errno. */
	int (*init)(struct ctrl *c);
	/* Reconciles key. 0: done (its failure count is reset); negative: failed (retried
	 * with back-off). */
	int (*reconcile)(struct ctrl *c, const char *key);
	/* Frees the private state (after the workers stopped). May be NULL. */
	void (*fini)(struct ctrl *c);
};

struct ctrl_manager *ctrl_manager_start(struct api_server *srv, const struct ctrl_config *cfg,
					const struct ctrl_def *const *defs);
/* Stops the informer thread and every worker (a reconcile in progress finishes), frees all.
 * Accepts NULL. */
void ctrl_manager_stop(struct ctrl_manager *m);
/* Appends the controllers' figures (Prometheus text) to out. */
int ctrl_manager_render(struct ctrl_manager *m, struct strbuf *out);

/* The controllers shoald runs (ctrl_*.c), NULL-terminated. */
extern const struct ctrl_def *const ctrl_builtin[];
extern const struct ctrl_def ctrl_replicaset, ctrl_endpointslice, ctrl_deployment, ctrl_gc,
	ctrl_job, ctrl_nodelifecycle, ctrl_daemonset, ctrl_namespace;

void *ctrl_priv(struct ctrl *c);
void ctrl_set_priv(struct ctrl *c, void *priv);
struct api_server *ctrl_server(struct ctrl *c);
const struct ctrl_config *ctrl_config(struct ctrl *c);
const char *ctrl_name(struct ctrl *c);

/* Queues key now / after ms (the earlier of two delays wins). */
void ctrl_queue(struct ctrl *c, const char *key);
void ctrl_queue_after(struct ctrl *c, const char *key, int64_t ms);
/* Queues key after its rate limiter's delay (what a failed reconcile gets). */
void ctrl_queue_rate_limited(struct ctrl *c, const char *key);

/* ---- expectations ---------------------------------------------------------------------- */

void ctrl_expect_creations(struct ctrl *c, const char *key, int n);
void ctrl_creation_observed(struct ctrl *c, const char *key);
/* Expects the deletion of the child child_key ("ns/name"). */
void ctrl_expect_deletion(struct ctrl *c, const char *key, const char *child_key);
void ctrl_deletion_observed(struct ctrl *c, const char *key, const char *child_key);
/* True when nothing is expected for key any more (or the expectation is 5 minutes old). */
bool ctrl_expectations_met(struct ctrl *c, const char *key);
void ctrl_expectations_forget(struct ctrl *c, const char *key);

/* ---- ownership ------------------------------------------------------------------------ */

/*
 * Claims children of informer children for owner, as Kubernetes' ClaimPods does: children
 * controlled by owner that owner's selector still matches are kept; those it no longer
 * matches are released (their owner reference removed); children without a controller that
 * it matches are adopted (owner added as their controller), unless owner or the child is
 * being deleted. Kept and adopted children are appended to out. Returns 0, or the first
 * error of a write (the claim is then partial; reconcile again).
 */
int ctrl_claim(struct ctrl *c, struct ctrl_informer *children, const struct ctrl_obj *owner,
	       const char *owner_api_version, const char *owner_kind, struct ctrl_objs *out);
/* The owner references of o as JSON, without the one to uid drop_uid (may be NULL). */
json_t *ctrl_refs_json(const struct ctrl_obj *o, const char *drop_uid);

/* ---- read your writes ------------------------------------------------------------------- */

/* Records that this controller wrote the object of key at revision rev. */
void ctrl_wrote(struct ctrl *c, const char *key, int64_t rev);
/* True while the cached object of key (at revision rev) is older than the controller's own
 * last write of it: a reconcile should wait for the write's event, which queues key again. */
bool ctrl_cache_behind(struct ctrl *c, const char *key, int64_t rev);
/* Forgets the last write recorded for key (the cache has seen it, or the object is gone). */
void ctrl_forget_written(struct ctrl *c, const char *key);

/* ---- helpers ---------------------------------------------------------------------------- */

/* Runs fn(arg, i) for i in [0, n) on up to 16 threads at once and returns when all are done:
 * writes that each wait for a commit then share group commits instead of queueing for one
 * fsync each. */
void ctrl_parallel(size_t n, void (*fn)(void *arg, size_t i), void *arg);

/* Milliseconds since value (a count the controller follows for key, such as a Job's failures)
 * last changed; a value seen for the first time or changed starts at 0. */
int64_t ctrl_since_change_ms(struct ctrl *c, const char *key, long value);

/* Splits "ns/name" into ns and name buffers ("" ns for "name"). */
void ctrl_split_key(const char *key, char *ns, size_t nslen, char *name, size_t namelen);
/* RFC 3339 to time_t (0 when absent or bad). */
time_t ctrl_parse_time(const char *s);
/* Now, RFC 3339 UTC. */
void ctrl_now(char out[32]);
/* The API path of kind k's object name (NULL: the collection) in ns ("" or NULL for
 * cluster-scoped kinds), with a sub-resource (NULL: none). Returns 0 or -ENAMETOOLONG. */
int ctrl_path(const struct api_kind *k, const char *ns, const char *name, const char *sub,
	      char *buf, size_t len);
/*
 * A request through the API, in-process, as controller c. Returns 0 on a 2xx answer (*out,
 * when out is not NULL, gets the object answered); else -ENOENT (404), -ECONFLICT (409
 * Conflict), -EEXIST (409 AlreadyExists), -EACCES (403), -EINVAL (400, 422), -EIO (the
 * rest), with the Status message in msg (may be NULL) and, unless it is a 404 or a 409, in
 * the log.
 */
int ctrl_write(struct ctrl *c, const char *method, const char *path, const json_t *body,
	       json_t **out, char *msg, size_t msglen);

/* Records an Event about o for users' `shoalctl describe`: type "Normal" or "Warning", a
 * CamelCase reason, a formatted message. Never blocks; deduplicated and rate-limited by
 * shoald's event recorder (event_recorder.h). */
void ctrl_event(struct ctrl *c, const struct ctrl_obj *o, const char *type, const char *reason,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The events of a workload controller creating or deleting one of owner's pods: err 0
 * SuccessfulCreate / SuccessfulDelete naming the pod (made: the pod answered to the POST);
 * else FailedCreate / FailedDelete with msg (a deletion of a pod already gone records
 * nothing). */
void ctrl_event_created(struct ctrl *c, const struct ctrl_obj *owner, int err,
			const json_t *made, const char *msg);
void ctrl_event_deleted(struct ctrl *c, const struct ctrl_obj *owner, int err,
			const char *pod_name, const char *msg);

/* An owner reference to obj of kind k, with controller and blockOwnerDeletion true. */
json_t *ctrl_owner_ref(const char *api_version, const char *kind, const char *name,
		       const char *uid);

#endif
