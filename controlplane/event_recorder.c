// SPDX-License-Identifier: Apache-2.0
/*
 * shoald's event recorder (event_recorder.h): a bounded queue that callers append to under a
 * mutex, and one writer thread that takes it in batches and writes each batch's Events through
 * the API in-process, in parallel so that they share group commits.
 *
 * The choice a reader must know: deduplication lives in the writer thread alone (the table of
 * events written in the last 10 minutes), so it needs no lock and two equal events in one batch
 * become one write with count 2; the rate limit is checked when an event is recorded, so that a
 * hot loop never fills the queue.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "api_local.h"
#include "ctrl.h"
#include "event_recorder.h"
#include "hashmap.h"
#include "log.h"
#include "strbuf.h"

#define QUEUE_MAX 4096	      /* events waiting for the writer; more are dropped */
#define BATCH_MAX 64	      /* events written at once */
#define CORRELATE_S 600	      /* an equal event within this raises the count */
#define BURST 25	      /* events per object at once... */
#define REFILL_S 300.0	      /* ...and one more per this many seconds */
#define MESSAGE_MAX 1024      /* as Kubernetes truncates */
#define DEFAULT_TTL_MS 3600000 /* kube-apiserver's --event-ttl */

struct item {
	struct item *next;
	char *api_version, *kind, *ns, *name, *uid, *type, *reason, *message;
	bool namespaced; /* the object is (else its events live in "default") */
};

/* A value of either table: an event written lately (key: object, type, reason, message), or
 * an object's token bucket (key: its uid, or kind/namespace/name). */
struct ent {
	time_t touched;
	/* correlation */
	char *ev_name;
	long count;
	char first[32];
	/* rate limit */
	double tokens;
};

struct event_recorder {
	struct api_server *srv;
	char component[64], host[64];
	int64_t ttl_ms;
	pthread_t th;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cond, idle;
	struct item *head, *tail;
	size_t queued;
	bool busy, stop, sweep_now;
	struct hashmap *buckets; /* under mu */
	struct hashmap *corr;    /* the writer thread's */
	/* figures */
	atomic_ullong recorded, created, updated, rate_limited, queue_full, failed, expired;
};

/* One write of a batch. */
struct write {
	struct event_recorder *r;
	struct item *it;
	struct ent *e;
	bool create;
	long count;
	char now[32];
	int err;
};

static void ent_free(struct ent *e)
{
	if (!e)
		return;
	free(e->ev_name);
	free(e);
}

/* Drops entries untouched for more than older_than seconds (all, with a negative value). */
static void table_prune(struct hashmap *t, time_t now, long older_than)
{
	const char *key;
	void *v;
	char **gone = NULL;
	size_t n = 0, cap = 0;

	for (size_t it = 0; hashmap_next(t, &it, &key, &v);) {
		struct ent *e = v;
		if (older_than >= 0 && now - e->touched <= older_than)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **g = realloc(gone, ncap * sizeof(*g));
			if (!g)
				break; /* the rest goes next time */
			gone = g;
			cap = ncap;
		}
		if (!(gone[n] = strdup(key)))
			break;
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		ent_free(hashmap_del(t, gone[i]));
		free(gone[i]);
	}
	free(gone);
}

/* The entry of key, added (zeroed) when absent; NULL when out of memory. */
static struct ent *table_get(struct hashmap *t, const char *key, time_t now, bool *added)
{
	struct ent *e = hashmap_get(t, key);
	*added = false;
	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e || hashmap_put(t, key, e, NULL)) {
		free(e);
		return NULL;
	}
	e->touched = now;
	*added = true;
	return e;
}

static void item_free(struct item *it)
{
	if (!it)
		return;
	free(it->api_version);
	free(it->kind);
	free(it->ns);
	free(it->name);
	free(it->uid);
	free(it->type);
	free(it->reason);
	free(it->message);
	free(it);
}

/* ---- recording ---------------------------------------------------------------------------- */

/* Takes a token of the object's bucket (under mu). */
static bool allow(struct event_recorder *r, const struct event_ref *o, time_t now)
{
	char key[600];
	bool added;

	if (o->uid && *o->uid)
		snprintf(key, sizeof(key), "%s", o->uid);
	else
		snprintf(key, sizeof(key), "%s/%s/%s", o->kind, o->ns ? o->ns : "", o->name);
	struct ent *e = table_get(r->buckets, key, now, &added);
	if (!e)
		return false;
	if (added)
		e->tokens = BURST;
	else
		e->tokens += (double)(now - e->touched) / REFILL_S;
	if (e->tokens > BURST)
		e->tokens = BURST;
	e->touched = now;
	if (e->tokens < 1)
		return false;
	e->tokens -= 1;
	return true;
}

void event_record(struct event_recorder *r, const struct event_ref *o, const char *type,
		  const char *reason, const char *fmt, ...)
{
	char msg[MESSAGE_MAX];
	va_list ap;

	if (!r || !o || !o->name || !*o->name || !o->kind)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	atomic_fetch_add(&r->recorded, 1);

	struct item *it = calloc(1, sizeof(*it));
	if (it) {
		it->api_version = strdup(o->api_version ? o->api_version : "v1");
		it->kind = strdup(o->kind);
		/* Events about cluster-scoped objects live in "default", as Kubernetes puts them. */
		it->namespaced = o->ns && *o->ns;
		it->ns = strdup(it->namespaced ? o->ns : "default");
		it->name = strdup(o->name);
		it->uid = strdup(o->uid ? o->uid : "");
		it->type = strdup(type);
		it->reason = strdup(reason);
		it->message = strdup(msg);
	}
	if (!it || !it->api_version || !it->kind || !it->ns || !it->name || !it->uid ||
	    !it->type || !it->reason || !it->message) {
		item_free(it);
		atomic_fetch_add(&r->failed, 1);
		log_warn("event %s about %s %s lost: out of memory", reason, o->kind, o->name);
		return;
	}
	pthread_mutex_lock(&r->mu);
	if (r->stop || r->queued >= QUEUE_MAX) {
		pthread_mutex_unlock(&r->mu);
		atomic_fetch_add(&r->queue_full, 1);
		item_free(it);
		return;
	}
	if (!allow(r, o, time(NULL))) {
		pthread_mutex_unlock(&r->mu);
		atomic_fetch_add(&r->rate_limited, 1);
		item_free(it);
		return;
	}
	if (r->tail)
		r->tail->next = it;
	else
		r->head = it;
	r->tail = it;
	r->queued++;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->mu);
}

/* ---- writing ------------------------------------------------------------------------------ */

static json_t *event_json(const struct write *w)
{
	const struct item *it = w->it;
	json_t *ev = json_pack(
		"{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s}, s:s, s:s, s:s, s:{s:s}, s:s, s:s, "
		"s:I, s:s, s:s}",
		"apiVersion", "v1", "kind", "Event", "metadata", "name", w->e->ev_name, "namespace",
		it->ns, "involvedObject", "apiVersion", it->api_version, "kind", it->kind, "name",
		it->name, "uid", it->uid, "reason", it->reason, "message", it->message, "type",
		it->type, "source", "component", w->r->component, "firstTimestamp", w->e->first,
		"lastTimestamp", w->now, "count", (json_int_t)w->count, "reportingComponent",
		w->r->component, "reportingInstance", w->r->host);
	/* involvedObject.namespace only for namespaced objects (their ns is the event's) */
	if (ev && it->namespaced)
		json_object_set_new(json_object_get(ev, "involvedObject"), "namespace",
				    json_string(it->ns));
	return ev;
}

static int post_event(struct write *w)
{
	char path[512];
	long code = 0;
	json_t *ev = event_json(w);
	if (!ev)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", w->it->ns);
	json_t *resp = api_local_json(w->r->srv, "POST", path, ev, &code);
	json_decref(ev);
	int err = code == 201 || code == 200 ? 0 : code == 409 ? -EEXIST : -EIO;
	if (err && err != -EEXIST)
		log_warn("event %s about %s %s/%s: %ld %s", w->it->reason, w->it->kind, w->it->ns,
			 w->it->name, code, api_local_message(resp));
	json_decref(resp);
	return err;
}

static void write_one(void *arg, size_t i)
{
	struct write *w = &((struct write *)arg)[i];
	char path[600];
	long code = 0;

	if (w->create) {
		w->err = post_event(w);
		return;
	}
	json_t *patch = json_pack("{s:I, s:s}", "count", (json_int_t)w->count, "lastTimestamp",
				  w->now);
	if (!patch) {
		w->err = -ENOMEM;
		return;
	}
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events/%s", w->it->ns, w->e->ev_name);
	json_t *resp = api_local_json(w->r->srv, "PATCH", path, patch, &code);
	json_decref(patch);
	json_decref(resp);
	if (code == 200) {
		w->err = 0;
		return;
	}
	/* Gone (expired or deleted by a user): write it again with the count it has. */
	w->err = post_event(w);
	if (w->err == 0)
		w->create = true;
}

/* A fresh name for an event about name: Kubernetes' "<name>.<hex nanoseconds>". */
static char *event_name(const char *name)
{
	static atomic_ullong seq;
	struct timespec ts;
	char buf[300];

	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned long long ns = (unsigned long long)ts.tv_sec * 1000000000ULL +
				(unsigned long long)ts.tv_nsec + atomic_fetch_add(&seq, 1);
	snprintf(buf, sizeof(buf), "%.230s.%llx", name, ns);
	return strdup(buf);
}

static void write_batch(struct event_recorder *r, struct item *batch, size_t n)
{
	struct write *w = calloc(n, sizeof(*w));
	size_t nw = 0;
	time_t now = time(NULL);
	char now_s[32];

	ctrl_now(now_s);
	if (!w) {
		atomic_fetch_add(&r->failed, n);
		log_warn("%zu events lost: out of memory", n);
		goto out;
	}
	table_prune(r->corr, now, CORRELATE_S);
	for (struct item *it = batch; it; it = it->next) {
		char key[3 * MESSAGE_MAX];
		bool added;
		snprintf(key, sizeof(key), "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s", it->ns, it->uid,
			 it->name, it->type, it->reason, it->message);
		struct ent *e = table_get(r->corr, key, now, &added);
		if (!e || (added && !(e->ev_name = event_name(it->name)))) {
			atomic_fetch_add(&r->failed, 1);
			continue;
		}
		if (added)
			snprintf(e->first, sizeof(e->first), "%s", now_s);
		e->count++;
		e->touched = now;
		/* the same event twice in one batch: one write with the higher count */
		size_t j = 0;
		while (j < nw && w[j].e != e)
			j++;
		if (j == nw) {
			w[nw].r = r;
			w[nw].it = it;
			w[nw].e = e;
			w[nw].create = added;
			snprintf(w[nw].now, sizeof(w[nw].now), "%s", now_s);
			nw++;
		}
		w[j].count = e->count;
	}
	ctrl_parallel(nw, write_one, w);
	for (size_t i = 0; i < nw; i++) {
		if (w[i].err)
			atomic_fetch_add(&r->failed, 1);
		else if (w[i].create)
			atomic_fetch_add(&r->created, 1);
		else
			atomic_fetch_add(&r->updated, 1);
	}
out:
	free(w);
	while (batch) {
		struct item *next = batch->next;
		item_free(batch);
		batch = next;
	}
}

/* ---- expiry ------------------------------------------------------------------------------- */

struct del {
	struct event_recorder *r;
	char *path;
	int err;
};

static void delete_one(void *arg, size_t i)
{
	struct del *d = &((struct del *)arg)[i];
	long code = 0;
	json_t *resp = api_local_json(d->r->srv, "DELETE", d->path, NULL, &code);
	json_decref(resp);
	d->err = code == 200 || code == 202 || code == 404 ? 0 : -EIO;
}

/* The time an event last happened: lastTimestamp, else eventTime, else its creation. */
static time_t event_last(const json_t *ev)
{
	const char *f[] = { "lastTimestamp", "eventTime" };
	for (size_t i = 0; i < 2; i++) {
		time_t t = ctrl_parse_time(json_string_value(json_object_get(ev, f[i])));
		if (t)
			return t;
	}
	return ctrl_parse_time(json_string_value(
		json_object_get(json_object_get(ev, "metadata"), "creationTimestamp")));
}

int event_recorder_sweep(struct event_recorder *r)
{
	char path[1200], cont[1024] = "";
	int removed = 0, err = 0;

	if (!r || r->ttl_ms < 0)
		return 0;
	time_t cutoff = time(NULL) - (time_t)(r->ttl_ms / 1000);
	do {
		long code = 0;
		snprintf(path, sizeof(path), "/api/v1/events?limit=500%s%s", *cont ? "&continue=" : "",
			 cont);
		json_t *list = api_local_json(r->srv, "GET", path, NULL, &code);
		if (code != 200 || !list) {
			log_warn("event expiry: list events: %ld %s", code, api_local_message(list));
			json_decref(list);
			return -EIO;
		}
		const char *c = json_string_value(
			json_object_get(json_object_get(list, "metadata"), "continue"));
		snprintf(cont, sizeof(cont), "%s", c ? c : "");
		json_t *items = json_object_get(list, "items");
		size_t n = json_array_size(items), nd = 0;
		struct del *d = n ? calloc(n, sizeof(*d)) : NULL;
		if (n && !d) {
			json_decref(list);
			return -ENOMEM;
		}
		for (size_t i = 0; i < n; i++) {
			json_t *ev = json_array_get(items, i), *m = json_object_get(ev, "metadata");
			time_t last = event_last(ev);
			if (!last || last > cutoff)
				continue;
			char p[700];
			snprintf(p, sizeof(p), "/api/v1/namespaces/%s/events/%s",
				 json_string_value(json_object_get(m, "namespace")),
				 json_string_value(json_object_get(m, "name")));
			d[nd].r = r;
			if (!(d[nd].path = strdup(p))) {
				err = -ENOMEM;
				break;
			}
			nd++;
		}
		json_decref(list);
		ctrl_parallel(nd, delete_one, d);
		for (size_t i = 0; i < nd; i++) {
			if (d[i].err)
				err = d[i].err;
			else
				removed++;
			free(d[i].path);
		}
		free(d);
	} while (*cont && !err);
	atomic_fetch_add(&r->expired, (unsigned long long)removed);
	if (err)
		log_warn("event expiry: %s", strerror(-err));
	return err ? err : removed;
}

/* ---- the thread --------------------------------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How often expiry runs: a twelfth of the TTL, between 1 s and 5 minutes. */
static int64_t sweep_every_ms(const struct event_recorder *r)
{
	int64_t ms = r->ttl_ms / 12;
	return ms < 1000 ? 1000 : ms > 300000 ? 300000 : ms;
}

static void *writer_main(void *arg)
{
	struct event_recorder *r = arg;
	int64_t next_sweep = mono_ms() + sweep_every_ms(r);

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->head && !r->stop && (r->ttl_ms < 0 || mono_ms() < next_sweep)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&r->cond, &r->mu, &ts);
		}
		if (!r->head && r->stop)
			break;
		struct item *batch = r->head, *last = NULL;
		size_t n = 0;
		for (struct item *it = r->head; it && n < BATCH_MAX; it = it->next, n++)
			last = it;
		if (last) {
			r->head = last->next;
			if (!r->head)
				r->tail = NULL;
			last->next = NULL;
			r->queued -= n;
		} else {
			batch = NULL;
		}
		r->busy = true;
		time_t now = time(NULL);
		table_prune(r->buckets, now, (long)REFILL_S * BURST);
		pthread_mutex_unlock(&r->mu);

		if (batch)
			write_batch(r, batch, n);
		if (r->ttl_ms >= 0 && mono_ms() >= next_sweep) {
			int err = event_recorder_sweep(r);
			if (err < 0)
				log_warn("event expiry failed: %s", strerror(-err));
			next_sweep = mono_ms() + sweep_every_ms(r);
		}

		pthread_mutex_lock(&r->mu);
		r->busy = false;
		pthread_cond_broadcast(&r->idle);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

struct event_recorder *event_recorder_new(struct api_server *srv, const char *component,
					  int64_t ttl_ms)
{
	struct event_recorder *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return NULL;
	r->srv = srv;
	r->ttl_ms = ttl_ms ? ttl_ms : DEFAULT_TTL_MS;
	snprintf(r->component, sizeof(r->component), "%s", component);
	if (gethostname(r->host, sizeof(r->host)))
		snprintf(r->host, sizeof(r->host), "%s", "shoald");
	r->host[sizeof(r->host) - 1] = 0;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cond, NULL);
	pthread_cond_init(&r->idle, NULL);
	r->corr = hashmap_new(256);
	r->buckets = hashmap_new(256);
	if (!r->corr || !r->buckets) {
		event_recorder_free(r);
		errno = ENOMEM;
		return NULL;
	}
	err = pthread_create(&r->th, NULL, writer_main, r);
	if (err) {
		log_error("event recorder: start thread: %s", strerror(err));
		event_recorder_free(r);
		errno = err;
		return NULL;
	}
	r->started = true;
	return r;
}

int event_recorder_flush(struct event_recorder *r, int timeout_ms)
{
	int64_t until = mono_ms() + timeout_ms;
	int err = 0;

	if (!r)
		return 0;
	pthread_mutex_lock(&r->mu);
	while ((r->head || r->busy) && !err) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->idle, &r->mu, &ts);
		if (mono_ms() >= until)
			err = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&r->mu);
	return err;
}

void event_recorder_free(struct event_recorder *r)
{
	if (!r)
		return;
	if (r->started) {
		if (event_recorder_flush(r, 1000))
			log_warn("event recorder: stopping with events still queued");
		pthread_mutex_lock(&r->mu);
		r->stop = true;
		/* what is still queued is dropped, not written after a second */
		struct item *it = r->head;
		r->head = r->tail = NULL;
		r->queued = 0;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->mu);
		while (it) {
			struct item *next = it->next;
			item_free(it);
			it = next;
		}
		int err = pthread_join(r->th, NULL);
		if (err)
			log_warn("event recorder: join: %s", strerror(err));
	}
	if (r->corr)
		table_prune(r->corr, 0, -1);
	if (r->buckets)
		table_prune(r->buckets, 0, -1);
	hashmap_free(r->corr);
	hashmap_free(r->buckets);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cond);
	pthread_cond_destroy(&r->idle);
	free(r);
}

int event_recorder_render(struct event_recorder *r, struct strbuf *out)
{
	if (!r)
		return 0;
	pthread_mutex_lock(&r->mu);
	size_t queued = r->queued;
	pthread_mutex_unlock(&r->mu);
	return strbuf_printf(
		out,
		"# HELP shoal_events_recorded_total Events recorded by shoald's controllers and "
		"scheduler.\n"
		"# TYPE shoal_events_recorded_total counter\n"
		"shoal_events_recorded_total %llu\n"
		"# HELP shoal_events_written_total Event writes: a new Event, or the count of an "
		"equal one raised.\n"
		"# TYPE shoal_events_written_total counter\n"
		"shoal_events_written_total{op=\"create\"} %llu\n"
		"shoal_events_written_total{op=\"update\"} %llu\n"
		"# HELP shoal_events_dropped_total Events not written, by reason.\n"
		"# TYPE shoal_events_dropped_total counter\n"
		"shoal_events_dropped_total{reason=\"rate_limited\"} %llu\n"
		"shoal_events_dropped_total{reason=\"queue_full\"} %llu\n"
		"shoal_events_dropped_total{reason=\"write_failed\"} %llu\n"
		"# HELP shoal_events_expired_total Events deleted after their TTL.\n"
		"# TYPE shoal_events_expired_total counter\n"
		"shoal_events_expired_total %llu\n"
		"# HELP shoal_events_queued Events waiting for the writer.\n"
		"# TYPE shoal_events_queued gauge\n"
		"shoal_events_queued %zu\n",
		(unsigned long long)atomic_load(&r->recorded),
		(unsigned long long)atomic_load(&r->created),
		(unsigned long long)atomic_load(&r->updated),
		(unsigned long long)atomic_load(&r->rate_limited),
		(unsigned long long)atomic_load(&r->queue_full),
		(unsigned long long)atomic_load(&r->failed),
		(unsigned long long)atomic_load(&r->expired), queued);
}
