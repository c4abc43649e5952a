/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A controller's work queue, with client-go's workqueue semantics: a key is held once however
 * often it is added; a key being processed is handed to no other worker, and a key added
 * while it is processed is handed out again when it is done; keys may be added after a
 * delay; a failing key is re-added after its rate limiter's delay: per key 5 ms doubling up
 * to 1000 s (reset by ctrlq_forget), and never faster than an overall token bucket allows.
 */
#ifndef SHOAL_CTRL_QUEUE_H
#define SHOAL_CTRL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ctrlq;

struct ctrlq_opts {
	int64_t base_delay_ms; /* 0: 5 */
	int64_t max_delay_ms;  /* 0: 1,000,000 */
	double qps;	       /* token bucket rate (0: 10) */
	int burst;	       /* and size (0: 100) */
};

struct ctrlq *ctrlq_new(const struct ctrlq_opts *opts);
/* Frees the queue (after ctrlq_shutdown and once no thread uses it). Accepts NULL. */
void ctrlq_free(struct ctrlq *q);

void ctrlq_add(struct ctrlq *q, const char *key);
/* Adds key after ms (<= 0: now). A key waiting keeps its earlier time. */
void ctrlq_add_after(struct ctrlq *q, const char *key, int64_t ms);
/* Adds key after its rate limiter's delay; returns that delay in ms. */
int64_t ctrlq_add_rate_limited(struct ctrlq *q, const char *key);
/* Resets key's failure count. */
void ctrlq_forget(struct ctrlq *q, const char *key);
/* How many times key failed since its last forget. */
int ctrlq_failures(struct ctrlq *q, const char *key);

/* Blocks until a key is ready and hands it out (the caller frees it and calls ctrlq_done).
 * Returns NULL once the queue is shut down. */
char *ctrlq_get(struct ctrlq *q);
void ctrlq_done(struct ctrlq *q, const char *key);

/* Wakes every ctrlq_get, which return NULL from now on. */
void ctrlq_shutdown(struct ctrlq *q);

struct ctrlq_stats {
	size_t depth;	   /* keys ready */
	size_t waiting;	   /* keys delayed */
	size_t processing; /* keys handed out */
	uint64_t adds;	   /* keys queued (not counting those already queued) */
	uint64_t retries;  /* rate-limited adds */
};
void ctrlq_stats(struct ctrlq *q, struct ctrlq_stats *out);

#endif
