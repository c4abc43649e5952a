// SPDX-License-Identifier: Apache-2.0
/*
 * The scheduler inside shoald: one thread that feeds the scheduler (scheduler/) from the watch
 * cache and writes its decisions back through the store with the API's own semantics. The
 * design choice to know: binding is asynchronous. The scheduler assumes a pod on its node as
 * soon as the bind is submitted (so the next pod is placed against it at once), the binds of
 * many pods share one group commit, and a bind that loses its compare-and-swap is reported back
 * to this thread, which makes the scheduler forget the assumption and retry the pod.
 *
 * Nothing polls: the thread sleeps until a watched kind has events, a bind fails, or the
 * scheduler's next back-off or gang time-out is due.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "event_recorder.h"
#include "hashmap.h"
#include "log.h"
#include "scheduler.h"
#include "sched_runner.h"
#include "strbuf.h"

enum { W_NAMESPACES, W_NODES, W_PODGROUPS, W_PODS, W_COUNT };

struct failed_bind {
	char ns[256], name[256];
	struct failed_bind *next;
};

struct sched_runner {
	struct api_server *srv;
	struct sched *s;
	struct wc_watcher *w[W_COUNT];
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool pending; /* a wake-up came (events or a failed bind) */
	bool stop;
	struct failed_bind *failed;
	int writes_in_flight; /* under mu */
	struct strbuf buf; /* event lines read from the watchers */
	int64_t last_refresh_ms;
	/* What /metrics publishes, refreshed by the thread at most once a second (under mu):
	 * node name -> struct sched_node_info, and the scheduler's counters. */
	struct hashmap *published;
	struct sched_stats stats;
	int64_t last_publish_ms;
	bool dirty;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void wake(void *arg)
{
	struct sched_runner *r = arg;
	pthread_mutex_lock(&r->mu);
	r->pending = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

static void park(void *arg)
{
	(void)arg; /* the watcher is marked parked; wake() will come */
}

/* ---- writes ------------------------------------------------------------------------------ */

static void pod_key(const char *ns, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "/registry/pods/%s/%s", ns, name);
}

/* Reads the current pod; NULL when it is gone or not the one meant (uid). */
static json_t *read_pod(struct sched_runner *r, const char *ns, const char *name,
			const char *uid, int64_t *rev)
{
	char key[600];
	struct wc_obj *o;
	json_t *pod;
	json_error_t e;

	pod_key(ns, name, key, sizeof(key));
	o = wc_get(r->srv->wc, key);
	if (!o)
		return NULL;
	pod = json_loadb(o->json, o->len, 0, &e);
	*rev = o->rev;
	wc_obj_unref(o);
	const char *have = json_string_value(json_object_get(json_object_get(pod, "metadata"), "uid"));
	if (pod && uid && *uid && (!have || strcmp(have, uid) != 0)) {
		json_decref(pod);
		return NULL;
	}
	return pod;
}

struct bind_ctx {
	struct sched_runner *r;
	char ns[256], name[256], uid[64], node[256];
};

/* An Event about pod ns/name (uid may be NULL). */
static void pod_event(struct sched_runner *r, const char *ns, const char *name, const char *uid,
		      const char *type, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
static void pod_event(struct sched_runner *r, const char *ns, const char *name, const char *uid,
		      const char *type, const char *reason, const char *fmt, ...)
{
	struct event_ref ref = { .api_version = "v1", .kind = "Pod", .ns = ns, .name = name,
				 .uid = uid };
	char msg[1024];
	va_list ap;

	if (!r->srv->events)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	event_record(r->srv->events, &ref, type, reason, "%s", msg);
}

static void bind_done(void *arg, int err, int64_t rev, struct store_result *res, size_t n)
{
	struct bind_ctx *b = arg;
	struct sched_runner *r = b->r;

	(void)rev;
	(void)res;
	(void)n;
	pthread_mutex_lock(&r->mu);
	r->writes_in_flight--;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	if (!err)
		pod_event(r, b->ns, b->name, b->uid, "Normal", "Scheduled",
			  "Successfully assigned %s/%s to %s", b->ns, b->name, b->node);
	if (err) {
		struct failed_bind *f = calloc(1, sizeof(*f));
		log_info("bind %s/%s lost its race (%s); rescheduling", b->ns, b->name,
			 shoal_strerror(err));
		if (f) {
			snprintf(f->ns, sizeof(f->ns), "%s", b->ns);
			snprintf(f->name, sizeof(f->name), "%s", b->name);
			pthread_mutex_lock(&r->mu);
			f->next = r->failed;
			r->failed = f;
			r->pending = true;
			pthread_cond_signal(&r->cond);
			pthread_mutex_unlock(&r->mu);
		}
	}
	free(b);
}

/* Status writes (unschedulable, preemption) are fire-and-forget: a lost race is retried by
 * the next scheduling cycle of that pod. */
static void status_done(void *arg, int err, int64_t rev, struct store_result *res, size_t n)
{
	struct sched_runner *r = arg;
	(void)rev;
	(void)res;
	(void)n;
	if (err && err != -ECONFLICT && err != -ENOENT)
		log_warn("scheduler: status write: %s", shoal_strerror(err));
	pthread_mutex_lock(&r->mu);
	r->writes_in_flight--;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

/* Submits one write without waiting, counted in flight until its callback (done, or
 * status_done when NULL) has run. */
static int submit(struct sched_runner *r, const struct store_op *op, store_done_fn done,
		  void *arg)
{
	int err;

	if (!done) {
		done = status_done;
		arg = r;
	}
	pthread_mutex_lock(&r->mu);
	r->writes_in_flight++;
	pthread_mutex_unlock(&r->mu);
	err = store_txn_async(r->srv->st, op, 1, done, arg);
	if (err) {
		pthread_mutex_lock(&r->mu);
		r->writes_in_flight--;
		pthread_mutex_unlock(&r->mu);
	}
	return err;
}

/* Writes pod (with its resourceVersion removed) conditional on rev, without waiting: done
 * (or status_done) is called from the commit thread. Counts the write in flight. */
static int put_pod(struct sched_runner *r, const char *ns, const char *name, json_t *pod,
		   int64_t rev, store_done_fn done, void *arg)
{
	char key[600];
	size_t len;
	char *value;
	int err;

	json_object_del(json_object_get(pod, "metadata"), "resourceVersion");
	value = api_obj_dump(pod, &len);
	if (!value)
		return -ENOMEM;
	pod_key(ns, name, key, sizeof(key));
	struct store_op op = { .type = STORE_PUT, .key = key, .value = value, .value_len = len,
			       .expect_mod_rev = rev };
	err = submit(r, &op, done, arg);
	free(value);
	return err;
}

static int op_bind(void *ctx, const char *ns, const char *name, const char *uid, const char *node)
{
	struct sched_runner *r = ctx;
	int64_t rev;
	json_t *pod = read_pod(r, ns, name, uid, &rev);
	const char *bound, *del;
	struct bind_ctx *b;
	int err;

	if (!pod)
		return -ENOENT;
	bound = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
	del = json_string_value(json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp"));
	if ((bound && *bound) || del) {
		json_decref(pod);
		return -ECONFLICT;
	}
	b = calloc(1, sizeof(*b));
	err = b ? api_pod_set_bound(pod, node) : -ENOMEM;
	if (!err) {
		b->r = r;
		snprintf(b->ns, sizeof(b->ns), "%s", ns);
		snprintf(b->name, sizeof(b->name), "%s", name);
		snprintf(b->uid, sizeof(b->uid), "%s", uid ? uid : "");
		snprintf(b->node, sizeof(b->node), "%s", node);
		err = put_pod(r, ns, name, pod, rev, bind_done, b);
	}
	if (err)
		free(b);
	json_decref(pod);
	return err;
}

static int op_evict(void *ctx, const char *ns, const char *name, const char *uid,
		    const char *preemptor)
{
	struct sched_runner *r = ctx;
	int64_t rev;
	json_t *pod = read_pod(r, ns, name, uid, &rev);
	int err;

	if (!pod)
		return -ENOENT;
	json_t *meta = json_object_get(pod, "metadata");
	if (json_object_get(meta, "deletionTimestamp")) {
		json_decref(pod);
		return 0;
	}
	json_t *g = json_object_get(json_object_get(pod, "spec"), "terminationGracePeriodSeconds");
	long long grace = json_is_integer(g) ? json_integer_value(g) : 30;
	const char *node = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
	if (!node || !*node) {
		char key[600];
		pod_key(ns, name, key, sizeof(key));
		struct store_op op = { .type = STORE_DELETE, .key = key, .expect_mod_rev = rev };
		err = submit(r, &op, NULL, NULL);
	} else {
		char msg[600];
		snprintf(msg, sizeof(msg), "preempted by %s",
			 preemptor ? preemptor : "a higher priority pod");
		err = api_mark_deleting(meta, grace);
		if (!err)
			err = api_pod_set_condition(pod, "DisruptionTarget", "True",
						    "PreemptionByScheduler", msg);
		err = err < 0 ? err : put_pod(r, ns, name, pod, rev, NULL, NULL);
		if (!err)
			pod_event(r, ns, name, uid, "Normal", "Preempted", "Preempted by %s on node %s",
				  preemptor ? preemptor : "a higher priority pod", node);
	}
	if (err)
		log_warn("preempt %s/%s: %s", ns, name, shoal_strerror(err));
	json_decref(pod);
	return err;
}

static void op_unschedulable(void *ctx, const char *ns, const char *name, const char *message,
			     const char *nominated)
{
	struct sched_runner *r = ctx;
	int64_t rev;
	json_t *pod = read_pod(r, ns, name, NULL, &rev);
	int changed;

	if (!pod)
		return;
	changed = api_pod_set_condition(pod, "PodScheduled", "False", "Unschedulable", message);
	json_t *st = json_object_get(pod, "status");
	const char *had = json_string_value(json_object_get(st, "nominatedNodeName"));
	if (nominated && (!had || strcmp(had, nominated) != 0)) {
		json_object_set_new(st, "nominatedNodeName", json_string(nominated));
		changed = 1;
	}
	/* Unchanged conditions are not written again: no write storm from retries. */
	if (changed > 0) {
		int err = put_pod(r, ns, name, pod, rev, NULL, NULL);
		if (err && err != -ECONFLICT)
			log_warn("record %s/%s unschedulable: %s", ns, name, shoal_strerror(err));
		const char *uid = json_string_value(
			json_object_get(json_object_get(pod, "metadata"), "uid"));
		pod_event(r, ns, name, uid, "Warning", "FailedScheduling", "%s", message);
	}
	json_decref(pod);
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void apply_line(struct sched_runner *r, int which, const char *line, size_t len)
{
	json_error_t e;
	json_t *ev = json_loadb(line, len, 0, &e);
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *obj = json_object_get(ev, "object");
	const json_t *md = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	char err[256] = "";
	int rc = 0;

	if (!type || !name || strcmp(type, "BOOKMARK") == 0) {
		json_decref(ev);
		return;
	}
	bool del = strcmp(type, "DELETED") == 0;
	switch (which) {
	case W_NAMESPACES:
		if (!del)
			rc = sched_namespace_upsert(r->s, obj, err, sizeof(err));
		break;
	case W_NODES:
		rc = del ? sched_node_delete(r->s, name) : sched_node_upsert(r->s, obj, err, sizeof(err));
		break;
	case W_PODGROUPS:
		rc = del ? sched_podgroup_delete(r->s, ns, name)
			 : sched_podgroup_upsert(r->s, obj, err, sizeof(err));
		break;
	default:
		rc = del ? sched_pod_delete(r->s, ns, name)
			 : sched_pod_upsert(r->s, obj, err, sizeof(err));
		break;
	}
	if (rc && rc != -ENOENT)
		log_warn("scheduler: %s %s%s%s: %s", type, ns ? ns : "", ns ? "/" : "", name,
			 *err ? err : shoal_strerror(rc));
	if (which == W_NODES) {
		pthread_mutex_lock(&r->mu);
		if (del) {
			free(hashmap_del(r->published, name));
		} else if (!hashmap_get(r->published, name)) {
			struct sched_node_info *ni = calloc(1, sizeof(*ni));
			if (ni && hashmap_put(r->published, name, ni, NULL))
				free(ni);
		}
		pthread_mutex_unlock(&r->mu);
	}
	r->dirty = true;
	json_decref(ev);
}

static void drain_watchers(struct sched_runner *r)
{
	for (int i = 0; i < W_COUNT; i++) {
		for (;;) {
			r->buf.len = 0;
			ssize_t n = wc_watch_read(r->w[i], &r->buf, 1 << 20, park, r);
			if (n <= 0)
				break;
			char *p = r->buf.s, *end = r->buf.s + n;
			while (p < end) {
				char *nl = memchr(p, '\n', end - p);
				size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
				apply_line(r, i, p, len);
				p += len + 1;
			}
		}
	}
}

static void retry_failed(struct sched_runner *r)
{
	struct failed_bind *f;

	pthread_mutex_lock(&r->mu);
	f = r->failed;
	r->failed = NULL;
	pthread_mutex_unlock(&r->mu);
	while (f) {
		struct failed_bind *next = f->next;
		int64_t rev;
		json_t *pod = read_pod(r, f->ns, f->name, NULL, &rev);
		/* Forget the assumption; the pod as stored (bound elsewhere, or not) comes back. */
		if (sched_pod_delete(r->s, f->ns, f->name) && pod)
			log_debug("scheduler: %s/%s was not in the snapshot", f->ns, f->name);
		if (pod) {
			char err[256];
			if (sched_pod_upsert(r->s, pod, err, sizeof(err)))
				log_warn("scheduler: re-add %s/%s: %s", f->ns, f->name, err);
			json_decref(pod);
		}
		free(f);
		f = next;
	}
}

/* Copies each node's requests, predicted peak and batch-allocatable for /metrics. */
static void publish(struct sched_runner *r)
{
	int64_t now = mono_ms();
	size_t it = 0;
	const char *name;
	void *v;

	if (!r->dirty || now - r->last_publish_ms < 1000)
		return;
	pthread_mutex_lock(&r->mu);
	while (hashmap_next(r->published, &it, &name, &v))
		if (sched_node_info(r->s, name, v))
			memset(v, 0, sizeof(struct sched_node_info));
	sched_stats(r->s, &r->stats);
	pthread_mutex_unlock(&r->mu);
	r->last_publish_ms = now;
	r->dirty = false;
}

static void *runner_main(void *arg)
{
	struct sched_runner *r = arg;

	for (;;) {
		pthread_mutex_lock(&r->mu);
		bool stop = r->stop;
		r->pending = false;
		pthread_mutex_unlock(&r->mu);
		if (stop)
			break;
		retry_failed(r);
		drain_watchers(r);
		int64_t now = mono_ms();
		if (now - r->last_refresh_ms >= 60000) {
			sched_predict_refresh(r->s, (int64_t)time(NULL) * 1000);
			r->last_refresh_ms = now;
		}
		/* Place what is ready; new events between pods are taken in batches. */
		int placed = sched_run(r->s, 256);
		if (placed < 0)
			log_warn("scheduler: %s", shoal_strerror(placed));
		r->dirty |= placed > 0;
		publish(r);
		if (placed == 256)
			continue;

		int64_t due = sched_next_wakeup_ms(r->s);
		int64_t refresh_due = r->last_refresh_ms + 60000;
		if (due < 0 || due > refresh_due)
			due = refresh_due;
		if (r->dirty && due > r->last_publish_ms + 1000)
			due = r->last_publish_ms + 1000;
		pthread_mutex_lock(&r->mu);
		while (!r->pending && !r->stop) {
			int64_t wait = due - mono_ms();
			if (wait <= 0)
				break;
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) == ETIMEDOUT)
				break;
		}
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

static void free_published(struct hashmap *h)
{
	size_t it = 0;
	void *v;
	while (h && hashmap_next(h, &it, NULL, &v))
		free(v);
	hashmap_free(h);
}

int sched_runner_render(struct sched_runner *r, struct strbuf *out)
{
	size_t it = 0;
	const char *name;
	void *v;

	pthread_mutex_lock(&r->mu);
	struct sched_stats st = r->stats;
	strbuf_printf(out,
		      "# HELP shoal_scheduler_pods_total Scheduling outcomes.\n"
		      "# TYPE shoal_scheduler_pods_total counter\n"
		      "shoal_scheduler_pods_total{result=\"scheduled\"} %llu\n"
		      "shoal_scheduler_pods_total{result=\"unschedulable\"} %llu\n"
		      "shoal_scheduler_pods_total{result=\"bind_error\"} %llu\n"
		      "shoal_scheduler_preemption_victims_total %llu\n"
		      "# HELP shoal_scheduler_pending_pods Pods waiting, by queue.\n"
		      "# TYPE shoal_scheduler_pending_pods gauge\n"
		      "shoal_scheduler_pending_pods{queue=\"active\"} %d\n"
		      "shoal_scheduler_pending_pods{queue=\"backoff\"} %d\n"
		      "shoal_scheduler_pending_pods{queue=\"unschedulable\"} %d\n"
		      "shoal_scheduler_pending_pods{queue=\"gang\"} %d\n",
		      (unsigned long long)st.scheduled, (unsigned long long)st.unschedulable,
		      (unsigned long long)st.bind_errors, (unsigned long long)st.victims, st.active,
		      st.backoff, st.unsched, st.waiting);
	strbuf_printf(out, "# HELP shoal_scheduler_node_resource Per node: allocatable, requested, "
			   "predicted peak and the capacity batch pods may use (cpu in millicores, "
			   "memory in bytes).\n"
			   "# TYPE shoal_scheduler_node_resource gauge\n");
	while (hashmap_next(r->published, &it, &name, &v)) {
		const struct sched_node_info *ni = v;
		const struct {
			const char *what;
			int64_t cpu, mem;
		} rows[] = {
			{ "allocatable", ni->alloc_cpu, ni->alloc_mem },
			{ "requested", ni->req_cpu, ni->req_mem },
			{ "predicted_peak", ni->peak_cpu, ni->peak_mem },
			{ "batch_allocatable", ni->batch_alloc_cpu, ni->batch_alloc_mem },
		};
		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
			strbuf_printf(out,
				      "shoal_scheduler_node_resource{node=\"%s\",kind=\"%s\","
				      "resource=\"cpu\"} %lld\n"
				      "shoal_scheduler_node_resource{node=\"%s\",kind=\"%s\","
				      "resource=\"memory\"} %lld\n",
				      name, rows[i].what, (long long)rows[i].cpu, name, rows[i].what,
				      (long long)(rows[i].mem / 1000));
	}
	pthread_mutex_unlock(&r->mu);
	return out->err;
}

struct sched_runner *sched_runner_start(struct api_server *srv, const char *config_path)
{
	static const char *const kinds[W_COUNT] = { "Namespace", "Node", "PodGroup", "Pod" };
	struct sched_runner *r = calloc(1, sizeof(*r));
	struct sched_config *cfg = NULL;
	char err[512];

	if (!r)
		return NULL;
	r->srv = srv;
	r->published = hashmap_new(64);
	if (!r->published) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cond, NULL);
	if (config_path) {
		cfg = sched_config_load(config_path, err, sizeof(err));
		if (!cfg) {
			log_error("scheduler configuration %s: %s", config_path, err);
			goto fail;
		}
	}
	struct sched_ops ops = { .ctx = r, .bind = op_bind, .evict = op_evict,
				 .unschedulable = op_unschedulable };
	r->s = sched_new(cfg, &ops);
	sched_config_free(cfg);
	if (!r->s)
		goto fail;
	for (int i = 0; i < W_COUNT; i++) {
		struct wc_watch_req req = { .kind = api_kind_by_kind(
						    strcmp(kinds[i], "PodGroup") == 0
							    ? "scheduling.shoal.io/v1alpha1"
							    : "v1",
						    kinds[i]),
					    .from_rev = -1, .wake = wake, .arg = r };
		if (!req.kind) {
			log_error("scheduler: kind %s is not registered", kinds[i]);
			goto fail;
		}
		r->w[i] = wc_watch_start(srv->wc, &req);
		if (!r->w[i]) {
			log_error("scheduler: watch %s: %s", kinds[i], shoal_strerror(errno));
			goto fail;
		}
	}
	r->last_refresh_ms = mono_ms();
	if (pthread_create(&r->thread, NULL, runner_main, r)) {
		log_error("scheduler: cannot start its thread");
		goto fail;
	}
	log_info("scheduler started");
	return r;
fail:
	for (int i = 0; i < W_COUNT; i++)
		wc_watch_stop(r->w[i]);
	sched_free(r->s);
	free_published(r->published);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cond);
	free(r);
	errno = EINVAL;
	return NULL;
}

void sched_runner_stop(struct sched_runner *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	/* Callbacks still to come would find r gone: wait for the commits in flight. */
	pthread_mutex_lock(&r->mu);
	while (r->writes_in_flight > 0)
		pthread_cond_wait(&r->cond, &r->mu);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < W_COUNT; i++)
		wc_watch_stop(r->w[i]);
	while (r->failed) {
		struct failed_bind *f = r->failed;
		r->failed = f->next;
		free(f);
	}
	sched_free(r->s);
	free_published(r->published);
	strbuf_free(&r->buf);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cond);
	free(r);
}
