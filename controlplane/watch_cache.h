/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The watch cache: every stored object of every kind, as serialized JSON with its
 * resourceVersion, and a ring of recent events, fed by one store watch on "/registry/".
 * Gets, lists and every watcher are served from it, so thousands of watchers cost one store
 * read. Objects are immutable and reference-counted; an update replaces the object, so a
 * reader holding a reference never sees it change.
 *
 * Watchers read at their own pace from the shared ring; a watcher that has nothing to read
 * is parked (the HTTP layer suspends its connection or hands it to a watch writer) and woken
 * only when an event concerns it (by kind, and by node for a field selector
 * spec.nodeName=X: pods are indexed by node) or its bookmark or deadline is due. A watcher that falls behind the ring's oldest event ends; its
 * client resumes and gets 410 Gone if the history it needs is gone.
 */
#ifndef SHOAL_WATCH_CACHE_H
#define SHOAL_WATCH_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "api_kinds.h"
#include "labels.h"
#include "store.h"

struct watch_cache;
struct wc_watcher;
struct strbuf;

/* One object as served: immutable once published. */
struct wc_obj {
	int refcnt;
	const struct api_kind *kind;
	char *key;	/* store key */
	const char *ns; /* "" when cluster-scoped; points into names */
	const char *name;
	char *names;	/* "ns\0name" or "name" */
	char *json; /* the object with metadata.resourceVersion, NUL-terminated */
	size_t len;
	int64_t rev;  /* mod revision (the deletion's revision for a deleted object) */
	json_t *sel;  /* the selectable fields: metadata.{name,namespace,labels}, per-kind fields */
	const char *node; /* pods: spec.nodeName ("" when unset; points into sel); else NULL */
};

void wc_obj_ref(struct wc_obj *o);
void wc_obj_unref(struct wc_obj *o);

/* Builds a served object from a stored value at revision rev (parses it once). Used by the
 * cache and by paginated lists read from the store. NULL and errno on failure. */
struct wc_obj *wc_obj_from_stored(const struct api_kind *k, const char *key, const char *value,
				  size_t len, int64_t rev);

/* A stored value with metadata.resourceVersion set to rev (malloc'd), or NULL when the value
 * has no metadata object. */
char *wc_splice_rv(const char *value, size_t len, int64_t rev, size_t *out_len);

/* The dotted paths a field selector may name for kind k, besides metadata.name and
 * metadata.namespace (NULL-terminated, or NULL). */
const char *const *wc_field_paths(const struct api_kind *k);

/* Returns the object's labels (may be NULL). */
const json_t *wc_obj_labels(const struct wc_obj *o);

/* True when o is in namespace ns (NULL: any) and matches both selectors (NULL: any). */
bool wc_obj_matches(const struct wc_obj *o, const char *ns, const struct selector *lsel,
		    const struct field_selector *fsel);

struct wc_opts {
	size_t ring_events;	    /* events kept for watchers resuming (0: 100,000) */
	int bookmark_interval_ms;   /* 0: 60,000 */
};

/* Loads every object under /registry/ and follows the store from there. */
struct watch_cache *wc_open(struct store *st, const struct wc_opts *opts);
/* Ends every watcher (their streams close) and frees the cache. Accepts NULL. */
void wc_close(struct watch_cache *wc);

/* The newest revision the cache has applied. */
int64_t wc_revision(struct watch_cache *wc);

/* Waits (at most timeout_ms) until the cache has applied revision rev. Returns 0 or
 * -ETIMEDOUT. */
int wc_wait_revision(struct watch_cache *wc, int64_t rev, int timeout_ms);

/* The current object at key, with a reference the caller drops; NULL when absent. */
struct wc_obj *wc_get(struct watch_cache *wc, const char *key);

/* The current objects of kind k in namespace ns (NULL: all), matching the selectors, sorted by
 * key, each referenced; *rev is the revision of the snapshot. The caller frees with
 * wc_list_free. Returns 0 or -ENOMEM. */
int wc_list(struct watch_cache *wc, const struct api_kind *k, const char *ns,
	    const struct selector *lsel, const struct field_selector *fsel, struct wc_obj ***out,
	    size_t *n, int64_t *rev);
void wc_list_free(struct wc_obj **objs, size_t n);

/* Count of current objects of kind k (for metrics). */
size_t wc_count(struct watch_cache *wc, const struct api_kind *k);

struct wc_watch_req {
	const struct api_kind *kind;
	const char *ns;			   /* NULL: every namespace */
	const char *name;		   /* NULL: every object (metadata.name=X watches one) */
	struct selector *lsel;		   /* taken over by the watcher; NULL: everything */
	struct field_selector *fsel;	   /* taken over by the watcher; NULL: everything */
	int64_t from_rev;		   /* events after this revision; < 0: current state first */
	bool bookmarks;
	int timeout_s;			   /* end the stream after this long (0: never) */
	/* Called, without the cache's locks, when a parked watcher has something to read. */
	void (*wake)(void *arg);
	void *arg;
};

/* Starts a watcher. Returns NULL and errno: ECOMPACTED when from_rev is older than the
 * history kept (HTTP 410), ENOMEM. The selectors are freed on failure too. */
struct wc_watcher *wc_watch_start(struct watch_cache *wc, const struct wc_watch_req *req);

/*
 * Appends the watcher's pending event lines ({"type":...,"object":...}\n) to out, up to about
 * max bytes. Returns the number of bytes appended; 0 when nothing is pending, in which case
 * park(arg) has been called under the cache's lock (so a wake cannot be lost between the
 * check and the park); -1 when the stream is over (closed cache, deadline, the watcher fell
 * behind the ring, or out of memory).
 */
ssize_t wc_watch_read(struct wc_watcher *w, struct strbuf *out, size_t max,
		      void (*park)(void *arg), void *park_arg);

/* When the oldest event the last wc_watch_read() returned reached the cache (its commit), in
 * CLOCK_MONOTONIC nanoseconds; 0 when that read returned no event (only the initial state, a
 * bookmark, or nothing). For the watch delivery latency in /metrics. */
int64_t wc_watch_read_commit_ns(const struct wc_watcher *w);

/* An event for in-process consumers: the object itself, not its text. */
enum wc_event_type { WC_ADDED, WC_MODIFIED, WC_DELETED };
struct wc_event_ref {
	enum wc_event_type type;
	struct wc_obj *obj; /* referenced: the caller drops it with wc_obj_unref */
};

/*
 * What wc_watch_read() does, for a consumer in shoald's own process: fills evs with up to max
 * pending events (the initial state first, as ADDED), each holding a reference to its object
 * (the last state for DELETED). Returns the count; 0 when nothing is pending, in which case
 * park(arg) has been called under the cache's lock; -1 when the watch is over (closed cache,
 * or the watcher fell behind the ring: list again and watch from the list's revision).
 * Bookmarks are not produced.
 */
ssize_t wc_watch_next(struct wc_watcher *w, struct wc_event_ref *evs, size_t max,
		      void (*park)(void *arg), void *park_arg);

/* Stops and frees a watcher; wake is not called after it returns. Accepts NULL. */
void wc_watch_stop(struct wc_watcher *w);

size_t wc_watchers(struct watch_cache *wc);

/* Wakes every parked watcher so that each sees the end of its stream (at shutdown). */
void wc_shutdown_watchers(struct watch_cache *wc);

#endif
