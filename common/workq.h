/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A work queue of keys, with client-go's workqueue semantics: a key is held once however
 * often it is added; a key being processed is handed to no other worker, and a key added
 * while it is processed is handed out again when it is done; keys may be added after a
 * delay; a failing key is re-added after its rate limiter's delay: per key 5 ms doubling up
 * to 1000 s (reset by workq_forget), and never faster than an overall token bucket allows.
 * shoald's controllers and the agent's pod workers use it. Thread-safe.
 */
#ifndef SHOAL_WORKQ_H
#define SHOAL_WORKQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct workq;

struct workq_opts {
	int64_t base_delay_ms; /* 0: 5 */
	int64_t max_delay_ms;  /* 0: 1,000,000 */
	double qps;	       /* token bucket rate (0: 10) */
	int burst;	       /* and size (0: 100) */
};

struct workq *workq_new(const struct workq_opts *opts);
/* Frees the queue (after workq_shutdown and once no thread uses it). Accepts NULL. */
void workq_free(struct workq *q);

void workq_add(struct workq *q, const char *key);
/* Adds key after ms (<= 0: now). A key waiting keeps its earlier time. */
void workq_add_after(struct workq *q, const char *key, int64_t ms);
/* Adds key after its rate limiter's delay; returns that delay in ms. */
int64_t workq_add_rate_limited(struct workq *q, const char *key);
/* Resets key's failure count. */
void workq_forget(struct workq *q, const char *key);
/* How many times key failed since its last forget. */
int workq_failures(struct workq *q, const char *key);

/* Blocks until a key is ready and hands it out (the caller frees it and calls workq_done).
 * Returns NULL once the queue is shut down. */
char *workq_get(struct workq *q);
void workq_done(struct workq *q, const char *key);

/* Wakes every workq_get, which return NULL from now on. */
void workq_shutdown(struct workq *q);

struct workq_stats {
	size_t depth;	   /* keys ready */
	size_t waiting;	   /* keys delayed */
	size_t processing; /* keys handed out */
	uint64_t adds;	   /* keys queued (not counting those already queued) */
	uint64_t retries;  /* rate-limited adds */
};
void workq_stats(struct workq *q, struct workq_stats *out);

#endif
