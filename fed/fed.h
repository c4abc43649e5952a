/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Federation: `shoald --federation` holds Cluster objects (members: an API endpoint and a
 * token file), FederatedDeployments and FederatedServices, and runs one controller over
 * them (fed_ctrl.c):
 *
 * - fed_cluster.c probes each member's /readyz and reads its nodes (allocatable, usage),
 *   writes the Cluster's status (conditions Ready and Offline, capacity, an estimate of the
 *   replicas of a reference pod it can still take) and keeps, per member, a client pool and
 *   an informer on the member's Deployments that this federation manages.
 * - fed_apportion.c splits replicas over clusters (pure functions, unit-tested).
 * - fed_sync.c computes a FederatedDeployment's placement, creates, updates and deletes the
 *   member Deployments through each member's own API and aggregates their status.
 * - fed_service.c serves a FederatedService's Service in every selected member and
 *   publishes each member's reachable addresses to the others as EndpointSlices.
 *
 * Ownership: every member object the federation writes carries the label
 * federation.shoal.io/managed-by=<federation id>; an object without it is never changed
 * (the FederatedDeployment reports NotOwned). The member informers select by that label,
 * so what a member holds for the federation is always in memory, and a member object whose
 * FederatedDeployment is gone (deleted while the member was offline, or while the
 * federation was down) is deleted when it is seen.
 */
#ifndef SHOAL_FED_H
#define SHOAL_FED_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FED_LABEL_MANAGED_BY "federation.shoal.io/managed-by"
#define FED_ANN_HASH	     "federation.shoal.io/spec-hash"
#define FED_ANN_OWNER	     "federation.shoal.io/federated-deployment"
#define FED_ANN_CLUSTER	     "federation.shoal.io/cluster"

/* `shoald --federation` and its flags. */
struct fed_config {
	const char *id;		   /* this federation's name, the managed-by value ("shoal") */
	int64_t probe_interval_ms; /* --cluster-probe-interval (10 s) */
	int64_t grace_ms;	   /* --cluster-grace-period (60 s) */
	int64_t member_timeout_ms; /* --member-timeout: one request to a member (5 s) */
	/* --cluster-credentials-dir: the only directory a Cluster's spec.tokenFile may name a
	 * file in (after resolving symlinks and ".."); NULL: no token file is read */
	const char *credentials_dir;
};

/* ---- apportionment (fed_apportion.c) ---------------------------------------------------- */

/* One cluster's share of a split. */
struct fed_share {
	double weight; /* >= 0; 0 takes nothing beyond min */
	int min;       /* replicas it gets first (>= 0) */
	int max;       /* at most (-1: no limit); max >= min */
	int prev;      /* what it had: ties go to the cluster that had more */
	int out;       /* the result */
};

/*
 * Splits total replicas over n clusters by Webster / Sainte-Lague: each cluster first gets
 * its min, then replicas go one at a time to the cluster with the highest weight /
 * (replicas + 0.5) that is below its max. A divisor method is house-monotone: one more
 * replica in total moves nothing and adds one somewhere. When the minimums exceed total,
 * total is split in proportion to them instead. Returns the replicas that fit nowhere
 * (>= 0), or -EINVAL for a bad share.
 */
int fed_apportion(int total, struct fed_share *s, size_t n);

/*
 * The same split reached from prev instead of from zero, for weights that move with what
 * is placed (available capacity): prev clamped to [min, max] is kept, replicas are added
 * where weight / (replicas + 0.5) is highest and removed where weight / (replicas - 0.5) is
 * lowest, until total is reached; a split that is already complete is left as it is.
 * Returns the replicas that fit nowhere, or -EINVAL.
 */
int fed_apportion_from(int total, struct fed_share *s, size_t n);

/* Duplicated: every cluster runs total, clamped to its [min, max]. */
int fed_duplicate(int total, struct fed_share *s, size_t n);

/* How many pods asking cpu_m millicores and mem bytes fit into avail_cpu_m and avail_mem;
 * a request of 0 does not limit; both 0: pods_left. */
int64_t fed_estimate(int64_t avail_cpu_m, int64_t avail_mem, int64_t pods_left, int64_t cpu_m,
		     int64_t mem);

/* ---- the controller (fed_ctrl.c) ---------------------------------------------------- */

struct ctrl_def;
extern const struct ctrl_def fed_controller;

#endif
