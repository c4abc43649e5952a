// SPDX-License-Identifier: Apache-2.0
/*
 * The agent's keyed work queue (see agent_queue.h). A FIFO of keys, a "dirty" set of keys
 * that wait in it (or will, once their processing ends), a "processing" set, and a short
 * list of delayed keys scanned on every get: a node holds at most a few hundred pods, so a
 * list beats a timer heap in clarity at no cost.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent_queue.h"
#include "hashmap.h"

struct delayed {
	char *key;
	long long due_ms;
};

struct agent_queue {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	char **fifo; /* ring */
	size_t head, len, cap;
	struct hashmap *dirty, *processing;
	struct delayed *delayed;
	size_t ndelayed, delayed_cap;
	bool shutdown;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct agent_queue *agent_queue_new(void)
{
	struct agent_queue *q = calloc(1, sizeof(*q));
	pthread_condattr_t ca;

	if (!q)
		return NULL;
	q->dirty = hashmap_new(64);
	q->processing = hashmap_new(16);
	if (!q->dirty || !q->processing)
		goto err;
	if (pthread_condattr_init(&ca))
		goto err;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&q->cond, &ca)) {
		pthread_condattr_destroy(&ca);
		goto err;
	}
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&q->mu, NULL);
	return q;
err:
	hashmap_free(q->dirty);
	hashmap_free(q->processing);
	free(q);
	errno = ENOMEM;
	return NULL;
}

void agent_queue_free(struct agent_queue *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->len; i++)
		free(q->fifo[(q->head + i) % q->cap]);
	free(q->fifo);
	for (size_t i = 0; i < q->ndelayed; i++)
		free(q->delayed[i].key);
	free(q->delayed);
	hashmap_free(q->dirty);
	hashmap_free(q->processing);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

static int fifo_push(struct agent_queue *q, const char *key)
{
	if (q->len == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 16;
		char **n = malloc(ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (size_t i = 0; i < q->len; i++)
			n[i] = q->fifo[(q->head + i) % q->cap];
		free(q->fifo);
		q->fifo = n;
		q->cap = ncap;
		q->head = 0;
	}
	char *k = strdup(key);
	if (!k)
		return -ENOMEM;
	q->fifo[(q->head + q->len) % q->cap] = k;
	q->len++;
	return 0;
}

/* The marker stored in the sets: only presence matters. */
static char present;

static int add_locked(struct agent_queue *q, const char *key)
{
	int err;
	if (q->shutdown || hashmap_get(q->dirty, key))
		return 0;
	err = hashmap_put(q->dirty, key, &present, NULL);
	if (err)
		return err;
	if (hashmap_get(q->processing, key))
		return 0; /* queued again by agent_queue_done() */
	err = fifo_push(q, key);
	if (err) {
		hashmap_del(q->dirty, key);
		return err;
	}
	pthread_cond_signal(&q->cond);
	return 0;
}

int agent_queue_add(struct agent_queue *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	int err = add_locked(q, key);
	pthread_mutex_unlock(&q->mu);
	return err;
}

int agent_queue_add_after(struct agent_queue *q, const char *key, long delay_ms)
{
	if (delay_ms <= 0)
		return agent_queue_add(q, key);
	long long due = now_ms() + delay_ms;
	int err = 0;

	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < q->ndelayed; i++) {
		if (strcmp(q->delayed[i].key, key) == 0) {
			if (due < q->delayed[i].due_ms)
				q->delayed[i].due_ms = due;
			goto out;
		}
	}
	if (q->ndelayed == q->delayed_cap) {
		size_t ncap = q->delayed_cap ? q->delayed_cap * 2 : 8;
		struct delayed *n = realloc(q->delayed, ncap * sizeof(*n));
		if (!n) {
			err = -ENOMEM;
			goto out;
		}
		q->delayed = n;
		q->delayed_cap = ncap;
	}
	q->delayed[q->ndelayed].key = strdup(key);
	if (!q->delayed[q->ndelayed].key) {
		err = -ENOMEM;
		goto out;
	}
	q->delayed[q->ndelayed++].due_ms = due;
	pthread_cond_signal(&q->cond); /* a waiter may need to wake sooner */
out:
	pthread_mutex_unlock(&q->mu);
	return err;
}

/* Moves due delayed keys into the queue; returns the earliest remaining due time or -1. */
static long long promote_due(struct agent_queue *q)
{
	long long now = now_ms(), next = -1;
	for (size_t i = 0; i < q->ndelayed;) {
		if (q->delayed[i].due_ms <= now) {
			/* On ENOMEM it stays delayed and is tried on the next get. */
			if (add_locked(q, q->delayed[i].key) == 0) {
				free(q->delayed[i].key);
				q->delayed[i] = q->delayed[--q->ndelayed];
				continue;
			}
		}
		if (next < 0 || q->delayed[i].due_ms < next)
			next = q->delayed[i].due_ms;
		i++;
	}
	return next;
}

char *agent_queue_get(struct agent_queue *q)
{
	char *key = NULL;

	pthread_mutex_lock(&q->mu);
	while (!q->shutdown) {
		long long next = promote_due(q);
		if (q->len) {
			key = q->fifo[q->head];
			q->head = (q->head + 1) % q->cap;
			q->len--;
			hashmap_del(q->dirty, key);
			if (hashmap_put(q->processing, key, &present, NULL)) {
				/* Out of memory: give it back and retry shortly. */
				if (fifo_push(q, key) == 0)
					hashmap_put(q->dirty, key, &present, NULL);
				free(key);
				key = NULL;
				next = now_ms() + 100;
			} else {
				break;
			}
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

void agent_queue_done(struct agent_queue *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	hashmap_del(q->processing, key);
	if (hashmap_get(q->dirty, key) && !q->shutdown) {
		/* Added while processing: queue it now. On ENOMEM drop the dirty mark so that a
		 * later add queues it. */
		if (fifo_push(q, key))
			hashmap_del(q->dirty, key);
		else
			pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->mu);
}

void agent_queue_shutdown(struct agent_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->shutdown = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->mu);
}

size_t agent_queue_len(struct agent_queue *q)
{
	pthread_mutex_lock(&q->mu);
	size_t n = q->len + q->ndelayed;
	pthread_mutex_unlock(&q->mu);
	return n;
}
