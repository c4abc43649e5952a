/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An informer: a local cache of one kind of object, fed by list-then-watch over shoal's HTTP
 * API (common/httpc.h). It lists (paginated), then watches from the list's resourceVersion;
 * a broken watch resumes from the last revision seen; 410 Gone lists again and reports the
 * difference (objects gone meanwhile come as DELETED). Nothing polls. One thread per informer.
 *
 * Handlers run on the informer's thread, one at a time, in revision order; they must not
 * block for long (hand work to a queue). The cache is updated before the handler is called,
 * and informer_get()/informer_list() may be called from any thread.
 */
#ifndef SHOAL_INFORMER_H
#define SHOAL_INFORMER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct informer;

enum informer_event { INF_ADDED, INF_MODIFIED, INF_DELETED };

struct informer_opts {
	const char *server;	    /* as httpc_new(): "unix:/PATH", "http://H:P", "https://H:P" */
	const char *token;	    /* bearer token, NULL: none */
	const char *ca_file;	    /* TLS: CA bundle, NULL: system */
	bool insecure;		    /* TLS: skip verification */
	const char *path;	    /* the list path, e.g. "/api/v1/pods" or ".../namespaces/x/pods" */
	const char *label_selector; /* NULL: everything */
	const char *field_selector; /* NULL: everything; e.g. "spec.nodeName=n1" */
	long page_limit;	    /* list page size (0: 500) */
	/* obj: the object as it is now (the last state for DELETED); old: the cached state
	 * before this event (NULL for ADDED). Borrowed: take a reference to keep them. */
	void (*on_event)(void *arg, enum informer_event type, json_t *obj, json_t *old);
	/* After the first complete list, and after each relist (NULL: none). */
	void (*on_synced)(void *arg);
	/* A list or watch failed (err: a negative errno); the informer retries with back-off.
	 * NULL: none. (The federation probes a member at once when its watch breaks.) */
	void (*on_error)(void *arg, int err);
	void *arg;
};

/* Starts the informer's thread. NULL and errno (EINVAL, ENOMEM) on failure. */
struct informer *informer_start(const struct informer_opts *o);
/* Stops the thread (an open watch is cancelled at once) and frees the cache.
 * No handler runs after it returns. Accepts NULL. */
void informer_stop(struct informer *inf);

/* True once the first list is complete and its on_synced has returned. */
bool informer_synced(struct informer *inf);
/* Waits at most timeout_ms for informer_synced(). 0 or -ETIMEDOUT. */
int informer_wait_synced(struct informer *inf, int timeout_ms);
/* The newest resourceVersion the cache reflects. */
int64_t informer_revision(struct informer *inf);

/* The cached object ns/name (ns "" for cluster-scoped kinds) with a new reference, or NULL. */
json_t *informer_get(struct informer *inf, const char *ns, const char *name);
/* Every cached object, each with a new reference; free with informer_list_free(). Returns 0
 * or -ENOMEM. */
int informer_list(struct informer *inf, json_t ***objs, size_t *n);
void informer_list_free(json_t **objs, size_t n);

/* Counters for /metrics: lists done, watches (re)started, 410s seen, events handled. */
struct informer_stats {
	uint64_t lists, watches, gone, events;
};
void informer_stats(struct informer *inf, struct informer_stats *out);

#endif
