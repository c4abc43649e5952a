/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to fed/: the controller's state shared by fed_ctrl.c, fed_cluster.c, fed_sync.c
 * and fed_service.c. One work queue carries every kind of key: "c:NAME" (a Cluster: probe
 * it), "d:NS/NAME" (a FederatedDeployment: place and sync it) and "s:NS/NAME" (a
 * FederatedService: serve and publish it).
 */
#ifndef SHOAL_FED_INT_H
#define SHOAL_FED_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fed.h"

struct api_kind;
struct ctrl;
struct ctrl_informer;
struct httpc;
struct informer;

/* A member cluster as the federation talks to it: built from its Cluster's spec, replaced
 * when the spec changes. Reference-counted: a reconcile holds it while it talks to it. */
struct fed_member {
	int refcnt;
	struct fed *f;
	char *name;
	char *config; /* endpoint, token, CA, insecure: what it was built from */
	char *endpoint, *token, *ca_file;
	bool insecure;
	pthread_mutex_t mu; /* pool */
	struct httpc **pool;
	size_t npool, cap;
	/* The member's Deployments that carry managed-by=<id>. */
	struct informer *inf;
	/* The member's EndpointSlices written by its EndpointSlice controller: a change queues
	 * the FederatedService of the same namespace and name, whose publishing follows whether
	 * the member has ready endpoints of its own. */
	struct informer *slices;
	/* Probe state (the cluster's key is reconciled by one worker at a time). */
	/* Monotonic time the member was last known to answer: the last good probe, or the
	 * moment its watch broke (creation at first). Offline counts from it. */
	_Atomic int64_t last_ok_ms;
	_Atomic bool ready; /* read by the member's informer thread */
	bool offline;
};

struct fed {
	const struct fed_config *cfg;
	struct fed_config defaults; /* cfg when shoald gave none */
	struct ctrl *c;
	struct ctrl_informer *clusters, *fds, *fss;
	const struct api_kind *cluster_kind, *fd_kind;
	pthread_mutex_t mu; /* members */
	struct fed_member **members;
	size_t nmembers, cap;
	char managed_sel[320]; /* "federation.shoal.io/managed-by=<id>" */
};

int64_t fed_mono_ms(void);

/* Members (fed_cluster.c). */
struct fed_member *fed_member_get(struct fed *f, const char *name); /* referenced or NULL */
void fed_member_put(struct fed_member *m);
void fed_members_free(struct fed *f);
/*
 * One request to the member: 0 when it answered 2xx (*out gets the body as JSON when out is
 * not NULL); -ENOENT (404), -ECONFLICT (409 Conflict), -EEXIST (409 AlreadyExists), -EACCES
 * (401, 403), -EINVAL (400, 422), -EAGAIN (429), -EIO (5xx and the rest), or the transport's
 * error (-ETIMEDOUT, -ECONNREFUSED, ...). msg gets a message for people.
 */
int fed_member_do(struct fed_member *m, const char *method, const char *path, const json_t *body,
		  json_t **out, char *msg, size_t msglen);

/* Reconciles (the controller's two halves). */
int fed_cluster_reconcile(struct fed *f, const char *name);
int fed_sync_reconcile(struct fed *f, const char *key);
int fed_service_reconcile(struct fed *f, const char *key); /* fed_service.c */

/* The Cluster's conditions, as the controller reads them. */
bool fed_cluster_ready(const json_t *cluster);
/* The condition type of obj's status as it should now be: status, reason and message as
 * given; lastTransitionTime kept from the stored condition when its status did not change,
 * else now. A new reference, NULL when out of memory. */
json_t *fed_condition(const json_t *obj, const char *type, bool status, const char *reason,
		      const char *msg, const char *now);
bool fed_cluster_offline(const json_t *cluster);
/* PATCHes st as the status of the object (kind k, ns NULL when cluster-scoped, name); an
 * object deleted meanwhile is no error. What the API answered goes to msg. */
int fed_status_write(struct fed *f, const struct api_kind *k, const char *ns, const char *name,
		     const json_t *st, char *msg, size_t msglen);

/* Queues a FederatedDeployment's key ("NS/NAME"), every one of them, a cluster's. */
void fed_queue_fd(struct fed *f, const char *key);
void fed_queue_all_fds(struct fed *f);
void fed_queue_cluster_after(struct fed *f, const char *name, int64_t ms);

#endif
