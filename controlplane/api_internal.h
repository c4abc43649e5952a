/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the API server's files share: the server, one request's state, and the helpers that
 * answer it. api_server.c owns the HTTP side (libmicrohttpd, routing, auth, limits),
 * api_handlers.c the verbs, api_objects.c object metadata, api_metrics.c /metrics.
 */
#ifndef SHOAL_API_INTERNAL_H
#define SHOAL_API_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "api_alloc.h"
#include "api_kinds.h"
#include "api_server.h"
#include "auth.h"
#include "store.h"
#include "watch_cache.h"

#define API_MAX_BODY (3u << 20) /* 3 MiB, as Kubernetes */
#define API_MAX_DEPTH 100

struct api_metrics;
struct api_local;
struct ctrl_manager;

struct event_recorder;
#define API_WATCH_WRITERS 2 /* watch writer threads: one per core of a small machine */

struct api_server {
	struct store *st;
	struct watch_cache *wc;
	struct api_alloc *alloc;
	struct auth *auth;
	struct MHD_Daemon *daemons[4];
	int ndaemons;
	char *unix_paths[4];
	struct api_metrics *metrics;
	struct sched_runner *sched;
	struct ctrl_manager *ctrl;
	struct event_recorder *events; /* what the controllers and the scheduler record */
	struct api_watch_writer *writers[API_WATCH_WRITERS];
	int nwriters;
	atomic_uint next_writer;
	atomic_int inflight;
	atomic_int suspended; /* connections suspended (writes waiting, idle watches) */
	atomic_bool stopping;
};

enum req_state {
	REQ_NEW,     /* headers seen, body arriving */
	REQ_WAITING, /* suspended on a store transaction */
	REQ_DONE,    /* the transaction finished: respond */
	REQ_RETRY,   /* the transaction lost a race that the verb retries (patch, allocation) */
};

#define RETRY_CONFLICT 0x1 /* unconditional write: run again after a lost race */
#define RETRY_NAME 0x2	   /* generated name taken: run again with another */
#define RETRY_ALLOC 0x4	   /* picked ClusterIP or nodePort taken: pick again */
#define USER_ALLOC 0x8	   /* the client chose the ClusterIP or nodePort */

/* Holds what a write must undo or keep once its transaction finishes. */
struct req_alloc {
	uint32_t ips[2];
	int nips;
	int ports[16];
	int nports;
	uint32_t release_ips[2]; /* released when the write commits (service deleted/changed) */
	int nrelease_ips;
	int release_ports[16];
	int nrelease_ports;
};

struct api_req {
	struct api_server *srv;
	struct MHD_Connection *conn; /* NULL for an in-process request */
	struct api_local *local;     /* an in-process request (api_local.c), else NULL */
	const char *method;
	char *url;
	struct timespec start;
	/* body */
	char *body;
	size_t body_len, body_cap;
	bool body_too_large;
	bool http11; /* HTTP/1.1: a body of unknown length goes out in chunks */
	/* route */
	const struct api_kind *kind;
	char ns[256];
	char name[256];
	char sub[16];
	bool has_name;
	const char *verb; /* for metrics and authorization */
	struct auth_user user;
	/* async write */
	_Atomic int state;
	int attempts;
	int txn_err;
	int64_t txn_rev;
	struct store_kv txn_prev; /* the first op's previous value */
	char *written;		  /* the value written by the first op (PUT) */
	size_t written_len;
	int success_code; /* 200 or 201 */
	bool respond_deleted; /* a delete answers with the previous object */
	struct req_alloc alloc;
	json_t *unknown; /* unknown fields dropped, for the Warning header */
	int code;	 /* the answer's status, for metrics */
	unsigned retry;	 /* RETRY_* and USER_ALLOC, for the write in flight */
};

/* ---- responses (api_server.c) ---- */
int api_respond_json(struct api_req *r, int code, const char *body, size_t len);
/* The same, handing body (malloc'd) over instead of copying it: for large lists. */
int api_respond_json_take(struct api_req *r, int code, char *body, size_t len);
int api_respond_status(struct api_req *r, int code, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
const char *api_query(struct api_req *r, const char *name);
/* A request header (HTTP), or what an in-process request stands in for (Content-Type). */
const char *api_header(struct api_req *r, const char *name);
/* Fills r->kind, ns, name and sub from a path without its query. Returns 0 (with *discovery
 * set for the discovery paths), -ENOENT for an unknown path, -ENAMETOOLONG for a name. */
int api_route(struct api_req *r, const char *url, bool *discovery);
/* Suspends the request while its write commits, and resumes it (HTTP: the connection;
 * in-process: wakes the waiting caller) once its state is REQ_DONE or REQ_RETRY. */
void api_req_suspend(struct api_req *r);
void api_req_resume(struct api_req *r, int state);

/* ---- in-process requests (api_local.c) ---- */
const char *api_local_query(struct api_local *l, const char *name);
const char *api_local_header(struct api_local *l, const char *name);
/* Keeps the answer of an in-process request (body copied, or taken over when take). */
int api_local_respond(struct api_local *l, int code, char *body, size_t len, bool take);
void api_local_resume(struct api_req *r, int state);

/* ---- verbs (api_handlers.c) ---- */
/* Parses the labelSelector and fieldSelector query parameters (NULL when absent); answers 400
 * naming the bad one and returns -1 (the MHD result in *ret). */
struct selector;
struct field_selector;
int api_parse_selectors(struct api_req *r, struct selector **lsel, struct field_selector **fsel,
			int *ret);
int api_handle(struct api_req *r);
/* Called from the store's commit thread with a write's outcome. */
void api_write_done(void *arg, int err, int64_t rev, struct store_result *res, size_t n);
/* The reply for a write whose transaction finished. */
int api_finish_write(struct api_req *r);
int api_serve_watch(struct api_req *r);

/* The watch writer (api_watch.c): one thread writing events to idle plain-HTTP watch streams
 * directly. drain ends every stream it holds (at shutdown); stop drains, then ends the
 * thread. Both accept NULL. */
struct api_watch_writer *api_watch_writer_start(struct api_server *srv);
void api_watch_writer_drain(struct api_watch_writer *ww);
size_t api_watch_writer_streams(struct api_watch_writer *ww);
void api_watch_writer_stop(struct api_watch_writer *ww);
void api_req_release_alloc(struct api_req *r, bool committed);

/* ---- objects (api_objects.c) ---- */
/* Serializes obj for the store: apiVersion, kind, metadata first; no resourceVersion. */
char *api_obj_dump(const json_t *obj, size_t *len);
void api_new_uid(char out[37]);
void api_now(char out[32]);
/* RFC 3339 UTC time, seconds from now. */
void api_time_from_now(long long seconds, char out[32]);
/* Marks an object (its metadata) for graceful deletion grace seconds from now. */
int api_mark_deleting(json_t *meta, long long grace);
/* Appends five random characters of Kubernetes' alphabet to prefix. */
void api_generate_name(const char *prefix, char *out, size_t len);
/* The store key of an object. */
void api_key(const struct api_kind *k, const char *ns, const char *name, char *buf, size_t len);
/* Sets a pod's condition of that type (lastTransitionTime now). Returns 1 when it changed,
 * 0 when it was already so, or a negative errno. */
int api_pod_set_condition(json_t *pod, const char *type, const char *status, const char *reason,
			  const char *message);
/* Binds a pod object to node: spec.nodeName and PodScheduled=True. */
int api_pod_set_bound(json_t *pod, const char *node);
/* Nesting depth of a JSON text, outside strings (for the 100-level limit). */
int api_json_depth(const char *s, size_t len);

/* ---- metrics (api_metrics.c) ---- */
struct api_metrics *api_metrics_new(void);
void api_metrics_free(struct api_metrics *m);
void api_metrics_observe(struct api_metrics *m, const char *verb, const char *resource, int code,
			 double seconds);
/* One watch delivery: ns from the event's commit to its chunk written to the stream. */
void api_metrics_observe_watch_delivery(struct api_metrics *m, int64_t ns);
/* Renders Prometheus text. Returns a malloc'd string. */
char *api_metrics_render(struct api_server *srv, size_t *len);

#endif
