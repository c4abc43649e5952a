/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store: a revisioned key-value interface with etcd v3's semantics, so that etcd can back
 * shoald unchanged. The embedded backend is LMDB (store_lmdb.c); store.c dispatches on the URI.
 *
 * - One global revision, bumped once by every committed transaction; every key carries the
 *   revision that created it (create_rev), the one that last wrote it (mod_rev) and the number
 *   of writes since its creation (version).
 * - A transaction is a list of puts and deletes, each optionally guarded by the key's mod_rev;
 *   it commits whole or not at all, and all its writes share one revision.
 * - Every committed transaction is durable before it is acknowledged. Concurrent transactions
 *   are grouped into one backend commit and one fsync (group commit).
 * - Reads see a revision: the current one, or an older one that compaction has kept
 *   (range at a revision is what makes list pagination a consistent snapshot).
 * - Watches deliver every event under a prefix from a revision, in revision order, without gap
 *   or repetition, first from history and then live; asking for a compacted revision is
 *   -ECOMPACTED.
 *
 * Keys are NUL-free strings, by convention "/registry/{resource}/{namespace}/{name}"; values
 * are opaque bytes (shoald stores JSON).
 */
#ifndef SHOAL_STORE_H
#define SHOAL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct store;
struct store_watch;

struct store_kv {
	char *key;
	char *value; /* value_len bytes, followed by a NUL that is not counted */
	size_t value_len;
	int64_t create_rev;
	int64_t mod_rev;
	int64_t version;
};

/* Frees what a store_kv owns and zeroes it; accepts a zeroed or NULL kv. */
void store_kv_clear(struct store_kv *kv);

struct store_opts {
	/* Keep at least this many revisions of history (0: 100,000). */
	int64_t history_revisions;
	/* And keep history at least this many seconds old (0: 300). Compaction removes history
	 * older than both bounds; it runs in the background every compact_interval_ms. */
	int64_t history_seconds;
	int64_t compact_interval_ms; /* 0: 10,000; negative: never compact automatically */
	size_t max_size;	     /* upper bound of the store's size in bytes (0: 64 GiB) */
};

/*
 * Opens the store named by uri: "lmdb:DIR" (created if absent). opts may be NULL.
 * Returns NULL and sets errno on failure (EINVAL for an unknown scheme).
 */
struct store *store_open(const char *uri, const struct store_opts *opts);

/* Waits for the transactions already submitted, stops the store's threads and closes it.
 * Accepts NULL. */
void store_close(struct store *st);

int64_t store_revision(struct store *st);
int64_t store_compacted_revision(struct store *st);

/*
 * Reads one key at revision at_rev (0: the current revision).
 * Returns 0 and fills out, -ENOENT when the key does not exist at that revision,
 * -ECOMPACTED when at_rev is older than the history kept, or another negative errno.
 */
int store_get(struct store *st, const char *key, int64_t at_rev, struct store_kv *out);

struct store_range_req {
	const char *prefix;    /* every key that starts with it */
	const char *start_key; /* NULL, or the first key to return (inclusive, within prefix) */
	size_t limit;	       /* at most this many keys; 0: no limit */
	int64_t at_rev;	       /* 0: the current revision */
	int count_only;	       /* fill count only, no kvs */
};

struct store_range_resp {
	struct store_kv *kvs; /* n entries, in key order */
	size_t n;
	size_t count; /* keys matching prefix and start_key at rev, whatever the limit */
	int more;     /* 1 when limit stopped the range before the end */
	int64_t rev;  /* the revision the range was read at */
};

/* Ranges over a prefix at a revision. Returns 0, -ECOMPACTED, or another negative errno. */
int store_range(struct store *st, const struct store_range_req *req, struct store_range_resp *out);
void store_range_resp_free(struct store_range_resp *resp);

enum store_op_type { STORE_PUT, STORE_DELETE };

/* expect_mod_rev: STORE_ANY (no condition), 0 (the key must not exist), or the key's mod_rev. */
#define STORE_ANY (-1)

struct store_op {
	enum store_op_type type;
	const char *key;
	const char *value; /* STORE_PUT only */
	size_t value_len;
	int64_t expect_mod_rev;
};

struct store_result {
	/* 0; -EEXIST (expected absent, key exists); -ENOENT (expected present or deleting an
	 * absent key); -ECONFLICT (mod_rev differs). */
	int err;
	/* The key as it was before this transaction (zeroed when it did not exist). */
	struct store_kv prev;
};

/* Frees the prev values of n results. */
void store_results_clear(struct store_result *res, size_t n);

/*
 * Commits ops[0..n) atomically and durably. Returns 0 on commit (*rev, when rev is not NULL,
 * is the new revision); when a condition fails, nothing is written and the first failing
 * op's error is returned (-EEXIST, -ENOENT or -ECONFLICT); other negative errno on a
 * failure of the store itself (nothing written either). results may be NULL, or an array of
 * n that is filled in every case (the caller frees it with store_results_clear).
 */
int store_txn(struct store *st, const struct store_op *ops, size_t n, int64_t *rev,
	      struct store_result *results);

/*
 * The same, without waiting: ops are copied, and done is called once, from the store's
 * commit thread, after the transaction is durable (or has failed). results (n of them) is
 * valid only during the call. Watchers see the transaction's events before done is called,
 * so a cache fed by a watch already holds a write when its writer is acknowledged.
 * done must not block; it may submit further transactions. Returns 0 when queued.
 */
typedef void (*store_done_fn)(void *arg, int err, int64_t rev, struct store_result *results,
			      size_t n);
int store_txn_async(struct store *st, const struct store_op *ops, size_t n, store_done_fn done,
		    void *arg);

enum store_event_type { STORE_EVENT_PUT, STORE_EVENT_DELETE };

struct store_event {
	enum store_event_type type;
	/* PUT: the new key. DELETE: key, mod_rev = the deleting revision, no value. */
	struct store_kv kv;
	/* The key before this event (always filled for a DELETE, and for a PUT that updated). */
	struct store_kv prev;
};

/*
 * Called with the events of one or more transactions, in revision order, all under the
 * watch's prefix. From the commit thread for live events (it must not block), and from the
 * thread that called store_watch for the history replay, which completes before store_watch
 * returns. The events are valid only during the call.
 */
typedef void (*store_watch_fn)(void *arg, const struct store_event *evs, size_t n);

/*
 * Watches prefix from revision from_rev (events with rev >= from_rev; 0: from the next
 * revision). Returns NULL and errno ECOMPACTED when from_rev is older than the history kept.
 */
struct store_watch *store_watch(struct store *st, const char *prefix, int64_t from_rev,
				store_watch_fn fn, void *arg);

/* Stops a watch; after it returns, fn is not called again. Accepts NULL. */
void store_watch_cancel(struct store_watch *w);

/* Removes history older than rev (keeps every key's value at rev and later). */
int store_compact(struct store *st, int64_t rev);

/* Counts for /metrics. fsync_buckets are cumulative counts of commits whose fsync took at
 * most STORE_FSYNC_BUCKETS_US[i] microseconds. */
#define STORE_FSYNC_NBUCKETS 12
extern const double STORE_FSYNC_BUCKETS_US[STORE_FSYNC_NBUCKETS];
struct store_stats {
	int64_t revision;
	int64_t compacted;
	uint64_t commits; /* backend commits (each one fsync) */
	uint64_t txns;	  /* transactions committed (several per commit under load) */
	uint64_t fsync_count;
	double fsync_sum_us;
	uint64_t fsync_buckets[STORE_FSYNC_NBUCKETS];
	uint64_t size_bytes;
};
void store_get_stats(struct store *st, struct store_stats *out);

#endif
