// SPDX-License-Identifier: Apache-2.0
/*
 * The store's front: store_open picks a backend by the URI's scheme ("lmdb:DIR"; an etcd
 * backend adds one line to the table below), and every other call goes through that
 * backend's operation table. Also the helpers every backend shares (freeing kvs and results,
 * the synchronous store_txn built on store_txn_async, the fsync histogram).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "store_backend.h"

const double STORE_FSYNC_BUCKETS_US[STORE_FSYNC_NBUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

static const struct store_backend_ops *const store_backends[] = {
	&store_lmdb_ops,
};

void store_kv_clear(struct store_kv *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

void store_results_clear(struct store_result *res, size_t n)
{
	if (!res)
		return;
	for (size_t i = 0; i < n; i++)
		store_kv_clear(&res[i].prev);
}

void store_range_resp_free(struct store_range_resp *resp)
{
	if (!resp)
		return;
	for (size_t i = 0; i < resp->n; i++)
		store_kv_clear(&resp->kvs[i]);
	free(resp->kvs);
	memset(resp, 0, sizeof(*resp));
}

void store_stats_observe_fsync(struct store_stats *stats, double us)
{
	stats->fsync_count++;
	stats->fsync_sum_us += us;
	for (int i = 0; i < STORE_FSYNC_NBUCKETS; i++)
		if (us <= STORE_FSYNC_BUCKETS_US[i])
			stats->fsync_buckets[i]++;
}

struct store *store_open(const char *uri, const struct store_opts *opts)
{
	struct store_opts o = { 0 };
	const char *colon;

	if (!uri || !(colon = strchr(uri, ':'))) {
		log_warn("store: open %s: expected SCHEME:ARG, such as lmdb:/var/lib/shoal",
			 uri ? uri : "(null)");
		errno = EINVAL;
		return NULL;
	}
	if (opts)
		o = *opts;
	if (o.history_revisions <= 0)
		o.history_revisions = STORE_DEFAULT_HISTORY_REVISIONS;
	if (o.history_seconds <= 0)
		o.history_seconds = STORE_DEFAULT_HISTORY_SECONDS;
	if (o.compact_interval_ms == 0)
		o.compact_interval_ms = STORE_DEFAULT_COMPACT_INTERVAL_MS;
	if (o.max_size == 0)
		o.max_size = STORE_DEFAULT_MAX_SIZE;

	size_t slen = (size_t)(colon - uri);
	for (size_t i = 0; i < sizeof(store_backends) / sizeof(store_backends[0]); i++) {
		const struct store_backend_ops *ops = store_backends[i];
		if (strlen(ops->scheme) == slen && strncmp(ops->scheme, uri, slen) == 0) {
			struct store *st = ops->open(colon + 1, &o);
			if (st)
				st->ops = ops;
			return st;
		}
	}
	log_warn("store: open %s: unknown scheme '%.*s' (known: lmdb)", uri, (int)slen, uri);
	errno = EINVAL;
	return NULL;
}

void store_close(struct store *st)
{
	if (st)
		st->ops->close(st);
}

int64_t store_revision(struct store *st)
{
	return st->ops->revision(st);
}

int64_t store_compacted_revision(struct store *st)
{
	return st->ops->compacted_revision(st);
}

int store_get(struct store *st, const char *key, int64_t at_rev, struct store_kv *out)
{
	memset(out, 0, sizeof(*out));
	if (!key || !*key || at_rev < 0)
		return -EINVAL;
	return st->ops->get(st, key, at_rev, out);
}

int store_range(struct store *st, const struct store_range_req *req, struct store_range_resp *out)
{
	memset(out, 0, sizeof(*out));
	if (!req || req->at_rev < 0)
		return -EINVAL;
	return st->ops->range(st, req, out);
}

int store_txn_async(struct store *st, const struct store_op *ops, size_t n, store_done_fn done,
		    void *arg)
{
	return st->ops->txn_async(st, ops, n, done, arg);
}

/* store_txn: store_txn_async, then wait for its done callback. */
struct store_txn_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int finished;
	int err;
	int64_t rev;
	struct store_result *results;
};

static void store_txn_wait_done(void *arg, int err, int64_t rev, struct store_result *res,
				size_t n)
{
	struct store_txn_wait *w = arg;

	if (w->results) {
		/* Take the prev values over: res is freed by the backend after this call. */
		for (size_t i = 0; i < n; i++) {
			w->results[i] = res[i];
			memset(&res[i].prev, 0, sizeof(res[i].prev));
		}
	}
	pthread_mutex_lock(&w->mu);
	w->err = err;
	w->rev = rev;
	w->finished = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

int store_txn(struct store *st, const struct store_op *ops, size_t n, int64_t *rev,
	      struct store_result *results)
{
	struct store_txn_wait w = { .results = results };
	int err;

	if (results)
		memset(results, 0, n * sizeof(*results));
	if (st->ops->in_callback && st->ops->in_callback(st)) {
		log_warn("store: txn from a store callback would wait on itself; "
			 "use store_txn_async");
		return -EDEADLK;
	}
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	err = st->ops->txn_async(st, ops, n, store_txn_wait_done, &w);
	if (err == 0) {
		pthread_mutex_lock(&w.mu);
		while (!w.finished)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
		err = w.err;
		if (rev && err == 0)
			*rev = w.rev;
	}
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return err;
}

struct store_watch *store_watch(struct store *st, const char *prefix, int64_t from_rev,
				store_watch_fn fn, void *arg)
{
	if (!fn || from_rev < 0) {
		errno = EINVAL;
		return NULL;
	}
	struct store_watch *w = st->ops->watch(st, prefix ? prefix : "", from_rev, fn, arg);
	if (w)
		w->ops = st->ops;
	return w;
}

void store_watch_cancel(struct store_watch *w)
{
	if (w)
		w->ops->watch_cancel(w);
}

int store_compact(struct store *st, int64_t rev)
{
	if (rev <= 0)
		return -EINVAL;
	return st->ops->compact(st, rev);
}

void store_get_stats(struct store *st, struct store_stats *out)
{
	memset(out, 0, sizeof(*out));
	st->ops->get_stats(st, out);
}
