/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the dp_*.c files share and nobody else sees: the handle, the in-memory index of
 * services and backends (rebuilt from the pinned maps by dp_open), the map fds.
 */
#ifndef SHOAL_DP_INTERNAL_H
#define SHOAL_DP_INTERNAL_H

#include "dp.h"

/* Every map of a node's pin directory, by index (dp->map_fd[]). */
enum dp_map {
	DP_MAP_SVC,
	DP_MAP_SLOT,
	DP_MAP_BE,
	DP_MAP_MAGLEV,
	DP_MAP_CT,
	DP_MAP_REVNAT,
	DP_MAP_AFFIN,
	DP_MAP_SVC_STATS,
	DP_MAP_BE_STATS,
	DP_MAP_DROPS,
	DP_MAP_SK,
	DP_MAP_NAMES,
	DP_MAP_ATTACH,
	DP_MAP_META,
	DP_MAP_N
};

/* Every program, by index (dp->prog_fd[]); pinned as prog_<name>. */
enum dp_prog {
	DP_PROG_XDP,
	DP_PROG_TC_POD,
	DP_PROG_TC_UPLINK,
	DP_PROG_CONNECT4,
	DP_PROG_SENDMSG4,
	DP_PROG_RECVMSG4,
	DP_PROG_GETPEERNAME4,
	DP_PROG_N
};

struct dp_be {
	struct dp_be *next; /* hash chain */
	uint64_t key;	    /* addr << 16 | port */
	uint32_t id;
	uint32_t refs; /* services whose live slots name it */
	struct shoal_backend_v4 val;
};

struct dp_svc {
	struct dp_svc *next; /* hash chain */
	char name[SHOAL_SVC_NAME_LEN];
	uint32_t id;
	uint64_t fingerprint;
	struct shoal_svc_v4 rec; /* as written to every frontend */
	struct dp_service svc;	 /* frontends, flags (svc.name points at name) */
	uint32_t *be_ids;	 /* live slots, n_ready + n_term of them */
	size_t n_be;
	bool seen; /* dp_sync mark */
};

struct dp_ids {
	uint32_t *free; /* stack of released ids */
	size_t n_free;
	uint32_t next; /* lowest never-used id */
	uint32_t max;  /* ids are 1..max-1 */
};

struct dp {
	char dir[256];	/* pin directory */
	char root[200]; /* pin root */
	struct dp_opts opts;
	int map_fd[DP_MAP_N];	/* owned */
	int prog_fd[DP_PROG_N]; /* owned */
	uint32_t prog_id[DP_PROG_N];
	bool adopted;	     /* the programs were the pinned ones, not loaded by this handle */
	bool kctx;	     /* the tc programs are the _kc variants (bpf_cast_to_kern_ctx) */
	uint64_t map_writes; /* map entries written or deleted through this handle */

	struct dp_svc **svc_tab;
	size_t svc_buckets, n_svc;
	struct dp_be **be_tab;
	size_t be_buckets, n_be;
	struct dp_ids svc_ids, be_ids;
	struct dp_be **be_by_id; /* backend id -> backend */
	int ncpus;
};

/* dp_maps.c */
int dp_state_load(struct dp *dp);
void dp_state_free(struct dp *dp);

#endif
