/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a store backend provides to store.c: one table of operations per URI scheme ("lmdb",
 * later "etcd"). A backend's store and watch structs begin with struct store / struct
 * store_watch, so that store.c can find the table from any handle. Private to the store.
 */
#ifndef SHOAL_STORE_BACKEND_H
#define SHOAL_STORE_BACKEND_H

#include "store.h"

struct store_backend_ops {
	const char *scheme; /* the part of the URI before ':' */
	/* arg is the URI after "scheme:"; opts are already defaulted (never NULL). */
	struct store *(*open)(const char *arg, const struct store_opts *opts);
	void (*close)(struct store *st);
	int64_t (*revision)(struct store *st);
	int64_t (*compacted_revision)(struct store *st);
	int (*get)(struct store *st, const char *key, int64_t at_rev, struct store_kv *out);
	int (*range)(struct store *st, const struct store_range_req *req,
		     struct store_range_resp *out);
	int (*txn_async)(struct store *st, const struct store_op *ops, size_t n, store_done_fn done,
			 void *arg);
	/* 1 when the calling thread is one a synchronous store_txn would deadlock on. */
	int (*in_callback)(struct store *st);
	struct store_watch *(*watch)(struct store *st, const char *prefix, int64_t from_rev,
				     store_watch_fn fn, void *arg);
	void (*watch_cancel)(struct store_watch *w);
	int (*compact)(struct store *st, int64_t rev);
	void (*get_stats)(struct store *st, struct store_stats *out);
};

struct store {
	const struct store_backend_ops *ops;
};

struct store_watch {
	const struct store_backend_ops *ops;
};

extern const struct store_backend_ops store_lmdb_ops;

/* Defaults of struct store_opts, applied by store_open before a backend sees them. */
#define STORE_DEFAULT_HISTORY_REVISIONS 100000
#define STORE_DEFAULT_HISTORY_SECONDS 300
#define STORE_DEFAULT_COMPACT_INTERVAL_MS 10000
#define STORE_DEFAULT_MAX_SIZE (64ULL << 30)

/* Records one commit's fsync time in the histogram of stats. */
void store_stats_observe_fsync(struct store_stats *stats, double us);

#endif
