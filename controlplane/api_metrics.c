// SPDX-License-Identifier: Apache-2.0
/*
 * /metrics in Prometheus' text format: requests by verb, resource and code, request latency
 * histograms by verb, watchers, objects per kind, the store's revision and fsync latency.
 * Counters live in a hash map keyed "verb resource code" under one mutex: a request costs one
 * lock and one lookup. The watch delivery histogram (an event's commit to its bytes handed to a
 * watcher's socket) is observed thousands of times per event, by the watch writers: its
 * counters are atomics, outside the mutex.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "ctrl.h"
#include "event_recorder.h"
#include "hashmap.h"
#include "sched_runner.h"
#include "strbuf.h"

static const double buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				  0.1,	 0.25,	 0.5,	1,    2.5,   5 };
#define NB (sizeof(buckets) / sizeof(buckets[0]))

struct latency {
	uint64_t counts[NB];
	uint64_t count;
	double sum;
};

/* Finer at the low end than the request buckets: a watch event should arrive in a few ms. */
static const double dbuckets[] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
				   0.1,	   0.2,	  0.5,	 1,	2,    5 };
#define NDB (sizeof(dbuckets) / sizeof(dbuckets[0]))

/* Per bucket (not cumulative; summed when rendered). */
struct delivery {
	atomic_uint_fast64_t counts[NDB + 1]; /* the last: above every bucket */
	atomic_uint_fast64_t sum_ns;
};

struct api_metrics {
	struct delivery delivery;
	pthread_mutex_t mu;
	struct hashmap *requests; /* "verb resource code" -> uint64_t * */
	struct hashmap *latency;  /* verb -> struct latency * */
};

struct api_metrics *api_metrics_new(void)
{
	struct api_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	pthread_mutex_init(&m->mu, NULL);
	m->requests = hashmap_new(64);
	m->latency = hashmap_new(16);
	if (!m->requests || !m->latency) {
		api_metrics_free(m);
		return NULL;
	}
	return m;
}

static void free_values(struct hashmap *h)
{
	size_t it = 0;
	void *v;
	while (h && hashmap_next(h, &it, NULL, &v))
		free(v);
	hashmap_free(h);
}

void api_metrics_free(struct api_metrics *m)
{
	if (!m)
		return;
	free_values(m->requests);
	free_values(m->latency);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

void api_metrics_observe(struct api_metrics *m, const char *verb, const char *resource, int code,
			 double seconds)
{
	char key[160];
	snprintf(key, sizeof(key), "%s %s %d", verb, resource, code);
	pthread_mutex_lock(&m->mu);
	uint64_t *c = hashmap_get(m->requests, key);
	if (!c && (c = calloc(1, sizeof(*c))) && hashmap_put(m->requests, key, c, NULL)) {
		free(c);
		c = NULL;
	}
	if (c)
		(*c)++;
	struct latency *l = hashmap_get(m->latency, verb);
	if (!l && (l = calloc(1, sizeof(*l))) && hashmap_put(m->latency, verb, l, NULL)) {
		free(l);
		l = NULL;
	}
	if (l && strcmp(verb, "watch") != 0) {
		for (size_t i = 0; i < NB; i++)
			if (seconds <= buckets[i])
				l->counts[i]++;
		l->count++;
		l->sum += seconds;
	}
	pthread_mutex_unlock(&m->mu);
}

void api_metrics_observe_watch_delivery(struct api_metrics *m, int64_t ns)
{
	double s = (double)ns / 1e9;
	size_t i = 0;

	if (ns < 0)
		return;
	while (i < NDB && s > dbuckets[i])
		i++;
	atomic_fetch_add_explicit(&m->delivery.counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->delivery.sum_ns, (uint_fast64_t)ns, memory_order_relaxed);
}

static void render_delivery(struct api_metrics *m, struct strbuf *t)
{
	uint64_t cum = 0;

	strbuf_printf(t, "# HELP shoal_watch_delivery_duration_seconds From an event's commit to its "
		"chunk handed to a watcher's socket (streams served by the watch writers).\n"
		"# TYPE shoal_watch_delivery_duration_seconds histogram\n");
	for (size_t i = 0; i < NDB; i++) {
		cum += atomic_load_explicit(&m->delivery.counts[i], memory_order_relaxed);
		strbuf_printf(t, "shoal_watch_delivery_duration_seconds_bucket{le=\"%g\"} %llu\n",
		    dbuckets[i], (unsigned long long)cum);
	}
	cum += atomic_load_explicit(&m->delivery.counts[NDB], memory_order_relaxed);
	strbuf_printf(t, "shoal_watch_delivery_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
		"shoal_watch_delivery_duration_seconds_sum %.6f\n"
		"shoal_watch_delivery_duration_seconds_count %llu\n",
	    (unsigned long long)cum,
	    (double)atomic_load_explicit(&m->delivery.sum_ns, memory_order_relaxed) / 1e9,
	    (unsigned long long)cum);
}

char *api_metrics_render(struct api_server *srv, size_t *len)
{
	struct api_metrics *m = srv->metrics;
	struct strbuf t = { 0 };
	struct store_stats ss;
	const char *k;
	void *v;
	size_t it;

	strbuf_printf(&t, "# HELP shoal_apiserver_requests_total Requests by verb, resource and HTTP code.\n"
		"# TYPE shoal_apiserver_requests_total counter\n");
	pthread_mutex_lock(&m->mu);
	it = 0;
	while (hashmap_next(m->requests, &it, &k, &v)) {
		char verb[64], res[64];
		int code;
		if (sscanf(k, "%63s %63s %d", verb, res, &code) == 3)
			strbuf_printf(&t, "shoal_apiserver_requests_total{verb=\"%s\",resource=\"%s\",code=\"%d\"} %llu\n",
			    verb, res, code, (unsigned long long)*(uint64_t *)v);
		else if (sscanf(k, "%63s %d", verb, &code) == 2)
			strbuf_printf(&t, "shoal_apiserver_requests_total{verb=\"%s\",resource=\"\",code=\"%d\"} %llu\n",
			    verb, code, (unsigned long long)*(uint64_t *)v);
	}
	strbuf_printf(&t, "# HELP shoal_apiserver_request_duration_seconds Request latency by verb (watches excluded).\n"
		"# TYPE shoal_apiserver_request_duration_seconds histogram\n");
	it = 0;
	while (hashmap_next(m->latency, &it, &k, &v)) {
		struct latency *l = v;
		if (strcmp(k, "watch") == 0)
			continue;
		for (size_t i = 0; i < NB; i++)
			strbuf_printf(&t, "shoal_apiserver_request_duration_seconds_bucket{verb=\"%s\",le=\"%g\"} %llu\n",
			    k, buckets[i], (unsigned long long)l->counts[i]);
		strbuf_printf(&t, "shoal_apiserver_request_duration_seconds_bucket{verb=\"%s\",le=\"+Inf\"} %llu\n"
			"shoal_apiserver_request_duration_seconds_sum{verb=\"%s\"} %.6f\n"
			"shoal_apiserver_request_duration_seconds_count{verb=\"%s\"} %llu\n",
		    k, (unsigned long long)l->count, k, l->sum, k, (unsigned long long)l->count);
	}
	pthread_mutex_unlock(&m->mu);

	render_delivery(m, &t);
	strbuf_printf(&t, "# HELP shoal_apiserver_watchers Open watch streams.\n"
		"# TYPE shoal_apiserver_watchers gauge\nshoal_apiserver_watchers %zu\n",
	    wc_watchers(srv->wc));
	strbuf_printf(&t, "# HELP shoal_apiserver_objects Stored objects by resource.\n"
		"# TYPE shoal_apiserver_objects gauge\n");
	for (const struct api_kind *kd = api_kinds; kd->kind; kd++)
		strbuf_printf(&t, "shoal_apiserver_objects{resource=\"%s\"} %zu\n", kd->resource,
		    wc_count(srv->wc, kd));

	store_get_stats(srv->st, &ss);
	strbuf_printf(&t, "# HELP shoal_store_revision The store's current revision.\n"
		"# TYPE shoal_store_revision gauge\nshoal_store_revision %lld\n"
		"# HELP shoal_store_compacted_revision History before this revision is compacted.\n"
		"# TYPE shoal_store_compacted_revision gauge\nshoal_store_compacted_revision %lld\n"
		"# HELP shoal_store_commits_total Backend commits (one fsync each).\n"
		"# TYPE shoal_store_commits_total counter\nshoal_store_commits_total %llu\n"
		"# HELP shoal_store_txns_total Transactions committed.\n"
		"# TYPE shoal_store_txns_total counter\nshoal_store_txns_total %llu\n"
		"# HELP shoal_store_size_bytes Size of the store.\n"
		"# TYPE shoal_store_size_bytes gauge\nshoal_store_size_bytes %llu\n",
	    (long long)ss.revision, (long long)ss.compacted, (unsigned long long)ss.commits,
	    (unsigned long long)ss.txns, (unsigned long long)ss.size_bytes);
	strbuf_printf(&t, "# HELP shoal_store_fsync_duration_seconds Latency of the store's fsync.\n"
		"# TYPE shoal_store_fsync_duration_seconds histogram\n");
	for (int i = 0; i < STORE_FSYNC_NBUCKETS; i++)
		strbuf_printf(&t, "shoal_store_fsync_duration_seconds_bucket{le=\"%g\"} %llu\n",
		    STORE_FSYNC_BUCKETS_US[i] / 1e6, (unsigned long long)ss.fsync_buckets[i]);
	strbuf_printf(&t, "shoal_store_fsync_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
		"shoal_store_fsync_duration_seconds_sum %.6f\n"
		"shoal_store_fsync_duration_seconds_count %llu\n",
	    (unsigned long long)ss.fsync_count, ss.fsync_sum_us / 1e6,
	    (unsigned long long)ss.fsync_count);
	if (srv->sched)
		sched_runner_render(srv->sched, &t);
	if (srv->ctrl)
		ctrl_manager_render(srv->ctrl, &t);
	if (srv->events)
		event_recorder_render(srv->events, &t);
	if (t.err) {
		strbuf_free(&t);
		return NULL;
	}
	return strbuf_take(&t, len);
}
