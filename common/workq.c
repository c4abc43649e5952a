// SPDX-License-Identifier: Apache-2.0
/*
 * The work queue (see workq.h). One mutex guards a FIFO of ready keys, the
 * "dirty" set (keys that must be handed out: queued, or added again while processed), the
 * "processing" set, a min-heap of delayed keys and the per-key failure counts. The design
 * choice: a delayed key is only a heap entry until it is due; the workers themselves move due
 * keys to the FIFO when they look for work, sleeping until the earliest due time, so there
 * is no timer thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hashmap.h"
#include "log.h"
#include "workq.h"

struct delayed {
	int64_t due;
	char *key;
};

struct workq {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	char **fifo; /* ring of cap entries, len from head */
	size_t head, len, cap;
	struct hashmap *dirty;	    /* key -> (void *)1 */
	struct hashmap *processing; /* key -> (void *)1 */
	struct delayed *heap;
	size_t nheap, capheap;
	struct hashmap *waiting;  /* key -> int64_t * (its earliest due time) */
	struct hashmap *failures; /* key -> (intptr_t) count */
	int64_t base_ms, max_ms;
	double qps, tokens;
	int burst;
	int64_t bucket_ms; /* when tokens was last refilled */
	bool stop;
	uint64_t adds, retries;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

struct workq *workq_new(const struct workq_opts *o)
{
	struct workq *q = calloc(1, sizeof(*q));
	pthread_condattr_t ca;

	if (!q)
		return NULL;
	q->base_ms = o && o->base_delay_ms > 0 ? o->base_delay_ms : 5;
	q->max_ms = o && o->max_delay_ms > 0 ? o->max_delay_ms : 1000000;
	q->qps = o && o->qps > 0 ? o->qps : 10;
	q->burst = o && o->burst > 0 ? o->burst : 100;
	q->tokens = q->burst;
	q->bucket_ms = now_ms();
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &ca);
	pthread_condattr_destroy(&ca);
	q->cap = 64;
	q->fifo = calloc(q->cap, sizeof(*q->fifo));
	q->dirty = hashmap_new(64);
	q->processing = hashmap_new(16);
	q->waiting = hashmap_new(16);
	q->failures = hashmap_new(16);
	if (!q->fifo || !q->dirty || !q->processing || !q->waiting || !q->failures) {
		workq_free(q);
		errno = ENOMEM;
		return NULL;
	}
	return q;
}

void workq_free(struct workq *q)
{
	size_t it = 0;
	void *v;

	if (!q)
		return;
	for (size_t i = 0; i < q->len; i++)
		free(q->fifo[(q->head + i) % q->cap]);
	free(q->fifo);
	for (size_t i = 0; i < q->nheap; i++)
		free(q->heap[i].key);
	free(q->heap);
	while (q->waiting && hashmap_next(q->waiting, &it, NULL, &v))
		free(v);
	hashmap_free(q->waiting);
	hashmap_free(q->dirty);
	hashmap_free(q->processing);
	hashmap_free(q->failures);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cond);
	free(q);
}

/* ---- under q->mu ---- */

static int fifo_push(struct workq *q, const char *key)
{
	char *k;
	if (q->len == q->cap) {
		size_t cap = q->cap * 2;
		char **f = malloc(cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		for (size_t i = 0; i < q->len; i++)
			f[i] = q->fifo[(q->head + i) % q->cap];
		free(q->fifo);
		q->fifo = f;
		q->cap = cap;
		q->head = 0;
	}
	k = strdup(key);
	if (!k)
		return -ENOMEM;
	q->fifo[(q->head + q->len) % q->cap] = k;
	q->len++;
	return 0;
}

static void add_locked(struct workq *q, const char *key)
{
	if (q->stop || hashmap_get(q->dirty, key))
		return;
	if (hashmap_put(q->dirty, key, (void *)1, NULL)) {
		log_error("work queue: out of memory adding %s", key);
		return;
	}
	q->adds++;
	if (hashmap_get(q->processing, key))
		return; /* handed out again when its worker is done */
	if (fifo_push(q, key)) {
		hashmap_del(q->dirty, key);
		log_error("work queue: out of memory adding %s", key);
		return;
	}
	pthread_cond_signal(&q->cond);
}

static void heap_swap(struct delayed *h, size_t a, size_t b)
{
	struct delayed t = h[a];
	h[a] = h[b];
	h[b] = t;
}

static int heap_push(struct workq *q, int64_t due, const char *key)
{
	if (q->nheap == q->capheap) {
		size_t cap = q->capheap ? q->capheap * 2 : 32;
		struct delayed *h = realloc(q->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		q->heap = h;
		q->capheap = cap;
	}
	char *k = strdup(key);
	if (!k)
		return -ENOMEM;
	size_t i = q->nheap++;
	q->heap[i] = (struct delayed){ due, k };
	while (i > 0 && q->heap[(i - 1) / 2].due > q->heap[i].due) {
		heap_swap(q->heap, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	return 0;
}

static struct delayed heap_pop(struct workq *q)
{
	struct delayed top = q->heap[0];
	size_t i = 0;
	q->heap[0] = q->heap[--q->nheap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < q->nheap && q->heap[l].due < q->heap[m].due)
			m = l;
		if (r < q->nheap && q->heap[r].due < q->heap[m].due)
			m = r;
		if (m == i)
			break;
		heap_swap(q->heap, i, m);
		i = m;
	}
	return top;
}

static void add_after_locked(struct workq *q, const char *key, int64_t ms)
{
	if (q->stop)
		return;
	if (ms <= 0) {
		add_locked(q, key);
		return;
	}
	int64_t due = now_ms() + ms;
	int64_t *have = hashmap_get(q->waiting, key);
	if (have && *have <= due)
		return;
	if (!have) {
		have = malloc(sizeof(*have));
		if (!have || hashmap_put(q->waiting, key, have, NULL)) {
			free(have);
			log_error("work queue: out of memory delaying %s", key);
			return;
		}
	}
	*have = due;
	if (heap_push(q, due, key))
		log_error("work queue: out of memory delaying %s", key);
	pthread_cond_broadcast(&q->cond); /* a sleeping worker may need to wake sooner */
}

/* Moves the delayed keys that are due to the FIFO; returns the next due time (or -1). */
static int64_t promote_due(struct workq *q)
{
	int64_t now = now_ms();
	while (q->nheap && q->heap[0].due <= now) {
		struct delayed d = heap_pop(q);
		int64_t *have = hashmap_get(q->waiting, d.key);
		/* A stale entry: the key was re-delayed to an earlier time and already ran. */
		if (have && *have == d.due) {
			free(hashmap_del(q->waiting, d.key));
			add_locked(q, d.key);
		}
		free(d.key);
	}
	return q->nheap ? q->heap[0].due : -1;
}

/* ---- API ---- */

void workq_add(struct workq *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	add_locked(q, key);
	pthread_mutex_unlock(&q->mu);
}

void workq_add_after(struct workq *q, const char *key, int64_t ms)
{
	pthread_mutex_lock(&q->mu);
	add_after_locked(q, key, ms);
	pthread_mutex_unlock(&q->mu);
}

int64_t workq_add_rate_limited(struct workq *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	intptr_t f = (intptr_t)hashmap_get(q->failures, key);
	int64_t delay = q->base_ms;
	for (intptr_t i = 0; i < f && delay < q->max_ms; i++)
		delay *= 2;
	if (delay > q->max_ms)
		delay = q->max_ms;
	if (hashmap_put(q->failures, key, (void *)(f + 1), NULL))
		log_error("work queue: out of memory counting failures of %s", key);
	/* The token bucket: a reservation may take the count below zero; the wait is the time
	 * until the bucket is back at zero. */
	int64_t now = now_ms();
	q->tokens += (double)(now - q->bucket_ms) * q->qps / 1000.0;
	if (q->tokens > q->burst)
		q->tokens = q->burst;
	q->bucket_ms = now;
	q->tokens -= 1;
	int64_t bucket = q->tokens >= 0 ? 0 : (int64_t)(-q->tokens * 1000.0 / q->qps);
	if (bucket > delay)
		delay = bucket;
	q->retries++;
	add_after_locked(q, key, delay);
	pthread_mutex_unlock(&q->mu);
	return delay;
}

void workq_forget(struct workq *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	hashmap_del(q->failures, key);
	pthread_mutex_unlock(&q->mu);
}

int workq_failures(struct workq *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	int f = (int)(intptr_t)hashmap_get(q->failures, key);
	pthread_mutex_unlock(&q->mu);
	return f;
}

char *workq_get(struct workq *q)
{
	char *key = NULL;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		if (q->stop)
			break;
		int64_t next = promote_due(q);
		if (q->len) {
			key = q->fifo[q->head];
			q->head = (q->head + 1) % q->cap;
			q->len--;
			hashmap_del(q->dirty, key);
			if (hashmap_put(q->processing, key, (void *)1, NULL))
				log_error("work queue: out of memory handing out %s", key);
			break;
		}
		if (next < 0) {
			pthread_cond_wait(&q->cond, &q->mu);
		} else {
			struct timespec ts = { next / 1000, (next % 1000) * 1000000L };
			pthread_cond_timedwait(&q->cond, &q->mu, &ts);
		}
	}
	pthread_mutex_unlock(&q->mu);
	return key;
}

void workq_done(struct workq *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	hashmap_del(q->processing, key);
	if (hashmap_get(q->dirty, key) && !q->stop) {
		if (fifo_push(q, key))
			log_error("work queue: out of memory re-adding %s", key);
		else
			pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->mu);
}

void workq_shutdown(struct workq *q)
{
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->mu);
}

void workq_stats(struct workq *q, struct workq_stats *out)
{
	pthread_mutex_lock(&q->mu);
	out->depth = q->len;
	out->waiting = hashmap_count(q->waiting);
	out->processing = hashmap_count(q->processing);
	out->adds = q->adds;
	out->retries = q->retries;
	pthread_mutex_unlock(&q->mu);
}
