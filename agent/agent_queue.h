/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's work queue of keys (pod uids), with client-go's workqueue semantics: a key is
 * queued at most once however often it is added; a key being processed is never handed to a
 * second worker, and one added meanwhile is queued again when the first is done. Keys may be
 * added after a delay (retries with back-off). Thread-safe.
 */
#ifndef SHOAL_AGENT_QUEUE_H
#define SHOAL_AGENT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct agent_queue;

struct agent_queue *agent_queue_new(void);
/* Frees the queue and its keys. Accepts NULL. */
void agent_queue_free(struct agent_queue *q);
/* Queues key (copied). Returns 0 or -ENOMEM. */
int agent_queue_add(struct agent_queue *q, const char *key);
/* Queues key after delay_ms (the earliest of several delays wins). */
int agent_queue_add_after(struct agent_queue *q, const char *key, long delay_ms);
/*
 * Waits for a key and marks it processing; returns it (malloc'd, the caller frees it after
 * agent_queue_done()), or NULL once the queue is shut down.
 */
char *agent_queue_get(struct agent_queue *q);
/* Ends processing of key. */
void agent_queue_done(struct agent_queue *q, const char *key);
/* Wakes every agent_queue_get() and makes it return NULL from now on. */
void agent_queue_shutdown(struct agent_queue *q);
/* Keys queued or waiting for their delay. */
size_t agent_queue_len(struct agent_queue *q);

#endif
