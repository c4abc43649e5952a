// SPDX-License-Identifier: Apache-2.0
/*
 * The watch cache (see watch_cache.h). One store watch on "/registry/" feeds, from the
 * store's commit thread, a map per kind of current objects and a ring of events shared by
 * every watcher. The design choice to know: objects are kept as their final serialized bytes
 * (resourceVersion spliced in once, when the event arrives), so a get is a reference, a list
 * is a concatenation and a watch event is a copy: no JSON is encoded per reader.
 *
 * Pods are also indexed by spec.nodeName, and watchers by kind and (for pods whose field
 * selector names one node) by node: a list, a watch or a wake-up for one node's pods touches
 * only that node's pods and watchers, whatever the cluster's size.
 *
 * Locking: one rwlock guards the maps and the ring (the commit thread writes; HTTP threads
 * read); watchers_mu guards the watcher lists. The notifier thread scans each new event once,
 * under both, and wakes only the parked watchers the event concerns. A watcher is parked
 * under the read lock, so an event appended after its last read is scanned after it parked;
 * a parked watcher woken at event seq S may skip to S (nothing before S concerned it).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hashmap.h"
#include "log.h"
#include "strbuf.h"
#include "watch_cache.h"

#define WC_EV_ADDED 0
#define WC_EV_MODIFIED 1
#define WC_EV_DELETED 2

struct wc_event {
	int64_t rev;
	int64_t at_ns; /* CLOCK_MONOTONIC when the commit reached the cache */
	int type;
	struct wc_obj *obj;  /* the object after the event (the last state for DELETED) */
	struct wc_obj *prev; /* the object before (NULL for ADDED) */
};

/* A list of watchers (a kind's, or a node's for pods). */
struct wc_wlist {
	struct wc_watcher *head;
};

struct wc_kind {
	const struct api_kind *kind;
	struct hashmap *objs;	   /* key -> struct wc_obj * */
	struct hashmap *by_node;   /* pods: spec.nodeName -> hashmap key -> obj (not referenced) */
	struct wc_wlist watchers;  /* watchers of this kind not pinned to one node */
	struct hashmap *wnode;	   /* pods: node -> struct wc_wlist * of watchers pinned to it */
};

struct wc_watcher {
	struct watch_cache *wc;
	const struct api_kind *kind;
	char *ns;
	char *name;
	char *node; /* pods: the spec.nodeName its field selector asks for, or NULL */
	struct selector *lsel;
	struct field_selector *fsel;
	bool bookmarks;
	struct timespec deadline; /* zero: none */
	void (*wake)(void *);
	void *arg;
	/* Read position and state: touched only by the reader (one HTTP thread at a time). */
	uint64_t next_seq;
	struct wc_obj **initial; /* current state to send first */
	size_t ninitial, initial_pos;
	int64_t sent_rev;	     /* newest revision the client knows of */
	int64_t bookmark_rev;	     /* revision of the last bookmark sent */
	struct timespec last_bookmark;
	int64_t read_at_ns; /* at_ns of the oldest event the last read returned; 0: none */
	atomic_int parked;
	atomic_uint_fast64_t skip_to; /* set by the notifier when it wakes the parked watcher */
	atomic_int bookmark_due;      /* set by the notifier: a bookmark is due */
	bool ended;
	/* The notifier's, under watchers_mu. */
	struct timespec next_bookmark;
	struct wc_watcher *next, *prevw; /* in wc->watchers */
	struct wc_watcher *lnext, *lprev; /* in list */
	struct wc_wlist *list;		  /* its kind's list or its node's */
};

struct watch_cache {
	struct store *st;
	struct store_watch *sw;
	pthread_rwlock_t lock;
	struct wc_kind *kinds;
	size_t nkinds;
	struct hashmap *by_resource; /* resource -> struct wc_kind * */
	int64_t rev;
	/* Ring of events: seq is a running count; slot = seq % cap. */
	struct wc_event *ring;
	size_t cap;
	uint64_t head;	     /* next seq to write */
	uint64_t tail;	     /* oldest seq held */
	int64_t ring_min_rev; /* every event with rev >= this is in the ring */
	pthread_mutex_t watchers_mu;
	struct wc_watcher *watchers;
	size_t nwatchers;
	/* Under watchers_mu: events before seq notified were dispatched; woken collects the
	 * watchers one pass wakes. */
	uint64_t notified;
	struct wc_watcher **woken;
	size_t woken_cap, nwoken_pending;
	pthread_mutex_t rev_mu;
	pthread_cond_t rev_cond;
	int bookmark_ms;
	pthread_t ticker;
	bool ticker_started;
	atomic_bool closing;
	bool notify; /* under rev_mu: events arrived, parked watchers to wake */
};

/* ---- objects ---------------------------------------------------------------------------- */

void wc_obj_ref(struct wc_obj *o)
{
	if (o)
		__atomic_add_fetch(&o->refcnt, 1, __ATOMIC_RELAXED);
}

void wc_obj_unref(struct wc_obj *o)
{
	if (!o || __atomic_sub_fetch(&o->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	free(o->key);
	free(o->names);
	free(o->json);
	json_decref(o->sel);
	free(o);
}

/* The fields a field selector may name, per kind, besides metadata.name/namespace. */
static const char *const pod_fields[] = { "spec.nodeName", "spec.schedulerName", "status.phase",
					  "spec.restartPolicy", NULL };
static const char *const event_fields[] = { "involvedObject.kind", "involvedObject.name",
					    "involvedObject.namespace", "involvedObject.uid",
					    "reason", "type", NULL };
static const char *const node_fields[] = { "spec.unschedulable", NULL };

static const char *const *extra_fields(const struct api_kind *k)
{
	if (!k->kind)
		return NULL;
	if (strcmp(k->kind, "Pod") == 0)
		return pod_fields;
	if (strcmp(k->kind, "Event") == 0)
		return event_fields;
	if (strcmp(k->kind, "Node") == 0)
		return node_fields;
	return NULL;
}

/* Sets a dotted path in dst to the value at the same path in src, when present. */
static int copy_path(json_t *dst, const json_t *src, const char *path)
{
	char buf[128], *save = NULL, *tok, *next;
	const json_t *s = src;
	json_t *d = dst;

	snprintf(buf, sizeof(buf), "%s", path);
	tok = strtok_r(buf, ".", &save);
	while (tok) {
		next = strtok_r(NULL, ".", &save);
		s = json_object_get(s, tok);
		if (!s)
			return 0;
		if (!next)
			return json_object_set(d, tok, (json_t *)s);
		json_t *child = json_object_get(d, tok);
		if (!child) {
			child = json_object();
			if (!child || json_object_set_new(d, tok, child))
				return -ENOMEM;
		}
		d = child;
		tok = next;
	}
	return 0;
}

static json_t *selectable(const struct api_kind *k, const json_t *obj)
{
	static const char *const meta_fields[] = { "metadata.name", "metadata.namespace",
						   "metadata.labels", NULL };
	const char *const *extra = extra_fields(k);
	json_t *sel = json_object();

	if (!sel)
		return NULL;
	for (const char *const *p = meta_fields; *p; p++)
		if (copy_path(sel, obj, *p))
			goto err;
	for (const char *const *p = extra; p && *p; p++)
		if (copy_path(sel, obj, *p))
			goto err;
	return sel;
err:
	json_decref(sel);
	return NULL;
}

const char *const *wc_field_paths(const struct api_kind *k)
{
	return extra_fields(k);
}

/*
 * Stored objects carry no resourceVersion (it is the store's mod revision, known only after
 * the commit); it is spliced in here, as the first member of metadata. shoald writes every
 * object with apiVersion, kind and metadata first, so the first '"metadata":{' in the text is
 * the top-level one (a string value cannot hold an unescaped quote).
 */
char *wc_splice_rv(const char *value, size_t len, int64_t rev, size_t *out_len)
{
	static const char needle[] = "\"metadata\":{";
	const char *at = memmem(value, len, needle, sizeof(needle) - 1);
	char rv[48];
	int rvlen;
	char *out;

	if (!at)
		return NULL;
	at += sizeof(needle) - 1;
	rvlen = snprintf(rv, sizeof(rv), "\"resourceVersion\":\"%lld\"%s", (long long)rev,
			 *at == '}' ? "" : ",");
	out = malloc(len + rvlen + 1);
	if (!out)
		return NULL;
	size_t head = at - value;
	memcpy(out, value, head);
	memcpy(out + head, rv, rvlen);
	memcpy(out + head + rvlen, at, len - head);
	out[len + rvlen] = '\0';
	*out_len = len + rvlen;
	return out;
}

struct wc_obj *wc_obj_from_stored(const struct api_kind *k, const char *key, const char *value,
				  size_t len, int64_t rev)
{
	struct wc_obj *o = calloc(1, sizeof(*o));
	json_error_t jerr;
	json_t *obj = NULL;
	const char *p;

	if (!o)
		return NULL;
	o->refcnt = 1;
	o->kind = k;
	o->rev = rev;
	o->key = strdup(key);
	if (!o->key)
		goto err;
	/* key: /registry/<resource>/[<ns>/]<name>; ns and name are kept in one buffer of their
	 * own so that key stays whole. */
	p = strchr(o->key + strlen("/registry/"), '/');
	if (!p)
		goto bad;
	p++;
	o->names = strdup(p);
	if (!o->names)
		goto err;
	if (k->namespaced) {
		char *slash = strchr(o->names, '/');
		if (!slash)
			goto bad;
		*slash = '\0';
		o->ns = o->names;
		o->name = slash + 1;
	} else {
		o->ns = "";
		o->name = o->names;
	}
	obj = json_loadb(value, len, 0, &jerr);
	if (!obj) {
		log_warn("watch cache: stored value of %s is not JSON: %s", key, jerr.text);
		goto bad;
	}
	o->sel = selectable(k, obj);
	json_decref(obj);
	if (!o->sel)
		goto err;
	if (k->kind && strcmp(k->kind, "Pod") == 0) {
		const char *node =
			json_string_value(json_object_get(json_object_get(o->sel, "spec"), "nodeName"));
		o->node = node ? node : "";
	}
	o->json = wc_splice_rv(value, len, rev, &o->len);
	if (!o->json) {
		log_warn("watch cache: stored value of %s has no metadata", key);
		goto bad;
	}
	return o;
bad:
	free(o->key);
	free(o->names);
	json_decref(o->sel);
	free(o);
	errno = EINVAL;
	return NULL;
err:
	free(o->key);
	free(o->names);
	json_decref(o->sel);
	free(o);
	errno = ENOMEM;
	return NULL;
}

const json_t *wc_obj_labels(const struct wc_obj *o)
{
	return json_object_get(json_object_get(o->sel, "metadata"), "labels");
}

bool wc_obj_matches(const struct wc_obj *o, const char *ns, const struct selector *lsel,
		    const struct field_selector *fsel)
{
	if (ns && *ns && strcmp(o->ns, ns) != 0)
		return false;
	if (lsel && !selector_matches(lsel, wc_obj_labels(o)))
		return false;
	if (fsel && !field_selector_matches(fsel, o->sel))
		return false;
	return true;
}

/* ---- applying store events -------------------------------------------------------------- */

static struct wc_kind *kind_of_key(struct watch_cache *wc, const char *key)
{
	char res[96];
	const char *p = key + strlen("/registry/"), *slash;

	if (strncmp(key, "/registry/", 10) != 0)
		return NULL;
	slash = strchr(p, '/');
	if (!slash || (size_t)(slash - p) >= sizeof(res))
		return NULL;
	memcpy(res, p, slash - p);
	res[slash - p] = '\0';
	return hashmap_get(wc->by_resource, res);
}

/* The node index of pods: spec.nodeName -> the pods bound there (the objs map holds the
 * references). Called under the write lock. */
static int node_index_put(struct wc_kind *wk, struct wc_obj *o)
{
	struct hashmap *m;

	if (!wk->by_node || !o->node)
		return 0;
	m = hashmap_get(wk->by_node, o->node);
	if (!m) {
		m = hashmap_new(16);
		if (!m)
			return -ENOMEM;
		if (hashmap_put(wk->by_node, o->node, m, NULL)) {
			hashmap_free(m);
			return -ENOMEM;
		}
	}
	return hashmap_put(m, o->key, o, NULL);
}

static void node_index_del(struct wc_kind *wk, const struct wc_obj *o)
{
	struct hashmap *m;

	if (!wk->by_node || !o->node)
		return;
	m = hashmap_get(wk->by_node, o->node);
	if (!m)
		return;
	hashmap_del(m, o->key);
	if (hashmap_count(m) == 0) {
		hashmap_del(wk->by_node, o->node);
		hashmap_free(m);
	}
}

/* The map to scan for kind wk and field selector fsel: one node's pods when fsel asks for
 * spec.nodeName=X, else every object of the kind; NULL when the node has none. */
static struct hashmap *objs_for(struct wc_kind *wk, const struct field_selector *fsel)
{
	const char *node;

	if (!wk->by_node)
		return wk->objs;
	node = field_selector_equal_value(fsel, "spec.nodeName");
	return node ? hashmap_get(wk->by_node, node) : wk->objs;
}

static void ring_push(struct watch_cache *wc, struct wc_event ev)
{
	if (wc->head - wc->tail == wc->cap) {
		struct wc_event *old = &wc->ring[wc->tail % wc->cap];
		wc->ring_min_rev = old->rev + 1;
		wc_obj_unref(old->obj);
		wc_obj_unref(old->prev);
		wc->tail++;
	}
	wc->ring[wc->head % wc->cap] = ev;
	wc->head++;
}

/* Applies one store event under the write lock. */
static void apply_event(struct watch_cache *wc, const struct store_event *e, int64_t at_ns)
{
	struct wc_kind *wk = kind_of_key(wc, e->kv.key);
	struct wc_obj *obj, *old = NULL;
	struct wc_event ev = { .rev = e->kv.mod_rev, .at_ns = at_ns };

	if (!wk)
		return;
	if (e->type == STORE_EVENT_PUT) {
		obj = wc_obj_from_stored(wk->kind, e->kv.key, e->kv.value, e->kv.value_len,
					 e->kv.mod_rev);
		if (!obj) {
			log_error("watch cache: cannot apply %s at revision %lld: %s", e->kv.key,
				  (long long)e->kv.mod_rev, strerror(errno));
			return;
		}
		if (hashmap_put(wk->objs, obj->key, obj, (void **)&old)) {
			log_error("watch cache: out of memory applying %s", e->kv.key);
			wc_obj_unref(obj);
			return;
		}
		if (old)
			node_index_del(wk, old);
		if (node_index_put(wk, obj))
			log_error("watch cache: out of memory indexing %s by node; lists by node "
				  "will miss it",
				  e->kv.key);
		ev.type = old ? WC_EV_MODIFIED : WC_EV_ADDED;
		ev.obj = obj;
		wc_obj_ref(obj);
		ev.prev = old; /* the map's reference moves to the event */
	} else {
		old = hashmap_del(wk->objs, e->kv.key);
		if (!old)
			return;
		node_index_del(wk, old);
		/* The deleted object is served with the deletion's revision. */
		struct wc_obj *gone = NULL;
		if (e->prev.value)
			gone = wc_obj_from_stored(wk->kind, e->kv.key, e->prev.value,
						  e->prev.value_len, e->kv.mod_rev);
		if (!gone) {
			gone = old;
			wc_obj_ref(gone);
		}
		ev.type = WC_EV_DELETED;
		ev.obj = gone;
		ev.prev = old;
	}
	ring_push(wc, ev);
}

static void on_store_events(void *arg, const struct store_event *evs, size_t n)
{
	struct watch_cache *wc = arg;
	int64_t rev = 0;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_rwlock_wrlock(&wc->lock);
	for (size_t i = 0; i < n; i++) {
		apply_event(wc, &evs[i], (int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
		if (evs[i].kv.mod_rev > rev)
			rev = evs[i].kv.mod_rev;
	}
	if (rev > wc->rev)
		wc->rev = rev;
	pthread_rwlock_unlock(&wc->lock);

	/* Waking thousands of parked watchers is the notifier's job, not the commit thread's:
	 * the writers of this commit are answered right after this returns. */
	pthread_mutex_lock(&wc->rev_mu);
	wc->notify = true;
	pthread_cond_broadcast(&wc->rev_cond);
	pthread_mutex_unlock(&wc->rev_mu);
}

/* ---- the notifier: wake-ups, bookmarks, deadlines, compaction ------------------------ */

static void trim_compacted(struct watch_cache *wc)
{
	/* History the store compacted away cannot be promised to a resuming watcher. */
	int64_t compacted = store_compacted_revision(wc->st);
	pthread_rwlock_wrlock(&wc->lock);
	while (wc->tail < wc->head && wc->ring[wc->tail % wc->cap].rev <= compacted) {
		struct wc_event *old = &wc->ring[wc->tail % wc->cap];
		wc_obj_unref(old->obj);
		wc_obj_unref(old->prev);
		wc->tail++;
	}
	if (compacted + 1 > wc->ring_min_rev)
		wc->ring_min_rev = compacted + 1;
	pthread_rwlock_unlock(&wc->lock);
}

static bool watcher_sees(const struct wc_watcher *w, const struct wc_obj *o);

static struct wc_kind *wkind(struct watch_cache *wc, const struct api_kind *k)
{
	return hashmap_get(wc->by_resource, k->resource);
}

static bool ts_due(const struct timespec *t, const struct timespec *now)
{
	return now->tv_sec > t->tv_sec || (now->tv_sec == t->tv_sec && now->tv_nsec >= t->tv_nsec);
}

static void ts_add_ms(struct timespec *t, long ms)
{
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

/* Marks a parked watcher to be woken, reading from seq on. Under watchers_mu. */
static void mark_woken(struct watch_cache *wc, struct wc_watcher *w, uint64_t seq)
{
	if (!atomic_exchange(&w->parked, 0))
		return;
	atomic_store(&w->skip_to, seq);
	if (wc->nwoken_pending == wc->woken_cap) {
		size_t cap = wc->woken_cap ? wc->woken_cap * 2 : 1024;
		struct wc_watcher **p = realloc(wc->woken, cap * sizeof(*p));
		if (!p) {
			/* Woken now rather than lost; the caller holds no lock a wake needs. */
			w->wake(w->arg);
			return;
		}
		wc->woken = p;
		wc->woken_cap = cap;
	}
	wc->woken[wc->nwoken_pending++] = w;
}

static void scan_list(struct watch_cache *wc, struct wc_wlist *l, const struct wc_event *e,
		      uint64_t seq)
{
	for (struct wc_watcher *w = l ? l->head : NULL; w; w = w->lnext)
		if (atomic_load(&w->parked) && (watcher_sees(w, e->obj) || watcher_sees(w, e->prev)))
			mark_woken(wc, w, seq);
}

/*
 * One pass of the notifier: every event appended since the last pass is matched against the
 * watchers of its kind (and, for a pod, of its node and its former node), and the parked ones
 * it concerns are woken; with tick, also every parked watcher whose bookmark or deadline is
 * due, and with all (at shutdown) every parked watcher.
 */
static void dispatch(struct watch_cache *wc, bool tick, bool all)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_rwlock_rdlock(&wc->lock);
	pthread_mutex_lock(&wc->watchers_mu);
	wc->nwoken_pending = 0;
	if (wc->notified < wc->tail) {
		/* The ring overtook the notifier: whoever waited is woken and reads (or learns it
		 * fell behind). */
		log_warn("watch cache: the event ring overtook its notifier; waking every watcher");
		wc->notified = wc->tail;
		all = true;
	}
	for (uint64_t seq = wc->notified; seq < wc->head; seq++) {
		const struct wc_event *e = &wc->ring[seq % wc->cap];
		struct wc_kind *wk = wkind(wc, e->obj->kind);
		if (!wk)
			continue;
		scan_list(wc, &wk->watchers, e, seq);
		if (!wk->wnode)
			continue;
		scan_list(wc, hashmap_get(wk->wnode, e->obj->node), e, seq);
		if (e->prev && strcmp(e->prev->node, e->obj->node) != 0)
			scan_list(wc, hashmap_get(wk->wnode, e->prev->node), e, seq);
	}
	wc->notified = wc->head;
	if (tick || all) {
		for (struct wc_watcher *w = wc->watchers; w; w = w->next) {
			bool due = all;
			if (w->deadline.tv_sec && ts_due(&w->deadline, &now))
				due = true;
			if (w->bookmarks && ts_due(&w->next_bookmark, &now)) {
				atomic_store(&w->bookmark_due, 1);
				w->next_bookmark = now;
				ts_add_ms(&w->next_bookmark, wc->bookmark_ms);
				due = true;
			}
			if (due && atomic_load(&w->parked))
				mark_woken(wc, w, wc->notified);
		}
	}
	pthread_rwlock_unlock(&wc->lock);
	/* Woken under watchers_mu only: a watcher cannot be stopped (and freed) meanwhile. */
	for (size_t i = 0; i < wc->nwoken_pending; i++)
		wc->woken[i]->wake(wc->woken[i]->arg);
	pthread_mutex_unlock(&wc->watchers_mu);
}

static void *notifier_main(void *arg)
{
	struct watch_cache *wc = arg;
	struct timespec next_tick, next_trim, now;
	/* Deadlines are kept to the second and bookmarks to their interval. */
	long tick_ms = wc->bookmark_ms < 1000 ? wc->bookmark_ms : 1000;

	clock_gettime(CLOCK_REALTIME, &next_tick);
	next_trim = next_tick;
	ts_add_ms(&next_tick, tick_ms);
	while (!atomic_load(&wc->closing)) {
		bool tick = false;
		pthread_mutex_lock(&wc->rev_mu);
		while (!wc->notify && !atomic_load(&wc->closing) &&
		       pthread_cond_timedwait(&wc->rev_cond, &wc->rev_mu, &next_tick) != ETIMEDOUT)
			;
		wc->notify = false;
		pthread_mutex_unlock(&wc->rev_mu);
		clock_gettime(CLOCK_REALTIME, &now);
		if (ts_due(&next_trim, &now)) {
			trim_compacted(wc);
			next_trim = now;
			ts_add_ms(&next_trim, 1000);
		}
		if (ts_due(&next_tick, &now)) {
			tick = true;
			next_tick = now;
			ts_add_ms(&next_tick, tick_ms);
		}
		dispatch(wc, tick, false);
	}
	return NULL;
}

/* ---- open / close ----------------------------------------------------------------------- */

static int load(struct watch_cache *wc)
{
	struct store_range_req req = { .prefix = "/registry/" };
	struct store_range_resp resp = { 0 };
	int err = store_range(wc->st, &req, &resp);

	if (err) {
		log_error("watch cache: list /registry/: %s", shoal_strerror(err));
		return err;
	}
	for (size_t i = 0; i < resp.n; i++) {
		struct store_kv *kv = &resp.kvs[i];
		struct wc_kind *wk = kind_of_key(wc, kv->key);
		if (!wk)
			continue;
		struct wc_obj *o =
			wc_obj_from_stored(wk->kind, kv->key, kv->value, kv->value_len, kv->mod_rev);
		if (!o) {
			log_error("watch cache: skipping unreadable %s", kv->key);
			continue;
		}
		if (hashmap_put(wk->objs, o->key, o, NULL)) {
			wc_obj_unref(o);
			store_range_resp_free(&resp);
			return -ENOMEM;
		}
		if (node_index_put(wk, o)) {
			store_range_resp_free(&resp);
			return -ENOMEM;
		}
	}
	wc->rev = resp.rev;
	wc->ring_min_rev = resp.rev + 1;
	store_range_resp_free(&resp);
	return 0;
}

struct watch_cache *wc_open(struct store *st, const struct wc_opts *opts)
{
	struct watch_cache *wc = calloc(1, sizeof(*wc));
	int err = -ENOMEM;

	if (!wc)
		return NULL;
	wc->st = st;
	wc->cap = opts && opts->ring_events ? opts->ring_events : 100000;
	wc->bookmark_ms =
		opts && opts->bookmark_interval_ms > 0 ? opts->bookmark_interval_ms : 60000;
	/* The commit thread must not starve behind thousands of watch readers: glibc's default
	 * rwlock lets new readers in while a writer waits. */
	pthread_rwlockattr_t la;
	pthread_rwlockattr_init(&la);
	pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&wc->lock, &la);
	pthread_rwlockattr_destroy(&la);
	pthread_mutex_init(&wc->watchers_mu, NULL);
	pthread_mutex_init(&wc->rev_mu, NULL);
	pthread_cond_init(&wc->rev_cond, NULL);
	wc->ring = calloc(wc->cap, sizeof(*wc->ring));
	for (const struct api_kind *k = api_kinds; k->kind; k++)
		wc->nkinds++;
	wc->kinds = calloc(wc->nkinds, sizeof(*wc->kinds));
	wc->by_resource = hashmap_new(wc->nkinds);
	if (!wc->ring || !wc->kinds || !wc->by_resource)
		goto err;
	for (size_t i = 0; i < wc->nkinds; i++) {
		wc->kinds[i].kind = &api_kinds[i];
		wc->kinds[i].objs = hashmap_new(64);
		if (!wc->kinds[i].objs ||
		    hashmap_put(wc->by_resource, api_kinds[i].resource, &wc->kinds[i], NULL))
			goto err;
		if (strcmp(api_kinds[i].kind, "Pod") == 0) {
			wc->kinds[i].by_node = hashmap_new(64);
			wc->kinds[i].wnode = hashmap_new(64);
			if (!wc->kinds[i].by_node || !wc->kinds[i].wnode)
				goto err;
		}
	}
	err = load(wc);
	if (err)
		goto err;
	wc->notified = wc->head;
	wc->sw = store_watch(st, "/registry/", wc->rev + 1, on_store_events, wc);
	if (!wc->sw) {
		err = -errno;
		log_error("watch cache: watch /registry/ from %lld: %s", (long long)wc->rev + 1,
			  shoal_strerror(err));
		goto err;
	}
	err = -pthread_create(&wc->ticker, NULL, notifier_main, wc);
	if (err)
		goto err;
	wc->ticker_started = true;
	return wc;
err:
	wc_close(wc);
	errno = -err;
	return NULL;
}

void wc_shutdown_watchers(struct watch_cache *wc)
{
	/* Under the write lock: a reader checks closing under the read lock before it parks, so
	 * every watcher either sees it or is parked by now and woken here. */
	pthread_rwlock_wrlock(&wc->lock);
	atomic_store(&wc->closing, true);
	pthread_rwlock_unlock(&wc->lock);
	dispatch(wc, false, true);
}

void wc_close(struct watch_cache *wc)
{
	if (!wc)
		return;
	atomic_store(&wc->closing, true);
	store_watch_cancel(wc->sw);
	pthread_mutex_lock(&wc->rev_mu);
	pthread_cond_broadcast(&wc->rev_cond);
	pthread_mutex_unlock(&wc->rev_mu);
	if (wc->ticker_started)
		pthread_join(wc->ticker, NULL);
	if (wc->ring && wc->kinds && wc->by_resource)
		wc_shutdown_watchers(wc);
	for (size_t i = 0; wc->kinds && i < wc->nkinds; i++) {
		struct hashmap *m = wc->kinds[i].objs;
		size_t it = 0;
		void *v;
		for (it = 0; wc->kinds[i].by_node && hashmap_next(wc->kinds[i].by_node, &it, NULL, &v);)
			hashmap_free(v);
		hashmap_free(wc->kinds[i].by_node);
		/* Watchers still registered belong to their owners; only the lists go. */
		for (it = 0; wc->kinds[i].wnode && hashmap_next(wc->kinds[i].wnode, &it, NULL, &v);)
			free(v);
		hashmap_free(wc->kinds[i].wnode);
		if (!m)
			continue;
		for (it = 0; hashmap_next(m, &it, NULL, &v);)
			wc_obj_unref(v);
		hashmap_free(m);
	}
	for (uint64_t s = wc->tail; wc->ring && s < wc->head; s++) {
		wc_obj_unref(wc->ring[s % wc->cap].obj);
		wc_obj_unref(wc->ring[s % wc->cap].prev);
	}
	free(wc->ring);
	free(wc->woken);
	free(wc->kinds);
	hashmap_free(wc->by_resource);
	pthread_rwlock_destroy(&wc->lock);
	pthread_mutex_destroy(&wc->watchers_mu);
	pthread_mutex_destroy(&wc->rev_mu);
	pthread_cond_destroy(&wc->rev_cond);
	free(wc);
}

int64_t wc_revision(struct watch_cache *wc)
{
	int64_t r;
	pthread_rwlock_rdlock(&wc->lock);
	r = wc->rev;
	pthread_rwlock_unlock(&wc->lock);
	return r;
}

int wc_wait_revision(struct watch_cache *wc, int64_t rev, int timeout_ms)
{
	struct timespec until;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&wc->rev_mu);
	while (wc_revision(wc) < rev && err == 0)
		err = pthread_cond_timedwait(&wc->rev_cond, &wc->rev_mu, &until);
	pthread_mutex_unlock(&wc->rev_mu);
	return wc_revision(wc) >= rev ? 0 : -ETIMEDOUT;
}

/* ---- reads ------------------------------------------------------------------------------ */

struct wc_obj *wc_get(struct watch_cache *wc, const char *key)
{
	struct wc_kind *wk = kind_of_key(wc, key);
	struct wc_obj *o = NULL;

	if (!wk)
		return NULL;
	pthread_rwlock_rdlock(&wc->lock);
	o = hashmap_get(wk->objs, key);
	wc_obj_ref(o);
	pthread_rwlock_unlock(&wc->lock);
	return o;
}

static int cmp_obj_key(const void *a, const void *b)
{
	const struct wc_obj *x = *(struct wc_obj *const *)a, *y = *(struct wc_obj *const *)b;
	return strcmp(x->key, y->key);
}

int wc_list(struct watch_cache *wc, const struct api_kind *k, const char *ns,
	    const struct selector *lsel, const struct field_selector *fsel, struct wc_obj ***out,
	    size_t *n, int64_t *rev)
{
	struct wc_kind *wk = wkind(wc, k);
	struct wc_obj **objs;
	size_t cnt = 0, it = 0;
	void *v;

	*out = NULL;
	*n = 0;
	if (!wk)
		return -ENOENT;
	pthread_rwlock_rdlock(&wc->lock);
	struct hashmap *m = objs_for(wk, fsel);
	objs = malloc(((m ? hashmap_count(m) : 0) + 1) * sizeof(*objs));
	if (!objs) {
		pthread_rwlock_unlock(&wc->lock);
		return -ENOMEM;
	}
	while (m && hashmap_next(m, &it, NULL, &v)) {
		struct wc_obj *o = v;
		if (!wc_obj_matches(o, ns, lsel, fsel))
			continue;
		wc_obj_ref(o);
		objs[cnt++] = o;
	}
	*rev = wc->rev;
	pthread_rwlock_unlock(&wc->lock);
	qsort(objs, cnt, sizeof(*objs), cmp_obj_key);
	*out = objs;
	*n = cnt;
	return 0;
}

void wc_list_free(struct wc_obj **objs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		wc_obj_unref(objs[i]);
	free(objs);
}

size_t wc_count(struct watch_cache *wc, const struct api_kind *k)
{
	struct wc_kind *wk = wkind(wc, k);
	size_t n;

	if (!wk)
		return 0;
	pthread_rwlock_rdlock(&wc->lock);
	n = hashmap_count(wk->objs);
	pthread_rwlock_unlock(&wc->lock);
	return n;
}

size_t wc_watchers(struct watch_cache *wc)
{
	size_t n;
	pthread_mutex_lock(&wc->watchers_mu);
	n = wc->nwatchers;
	pthread_mutex_unlock(&wc->watchers_mu);
	return n;
}

/* ---- watchers --------------------------------------------------------------------------- */

/* First seq whose event has rev > from (binary search; revisions grow along the ring). */
static uint64_t seq_after(struct watch_cache *wc, int64_t from)
{
	uint64_t lo = wc->tail, hi = wc->head;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (wc->ring[mid % wc->cap].rev <= from)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void wc_watch_stop(struct wc_watcher *w)
{
	struct watch_cache *wc;

	if (!w)
		return;
	wc = w->wc;
	pthread_mutex_lock(&wc->watchers_mu);
	if (w->prevw)
		w->prevw->next = w->next;
	else if (wc->watchers == w)
		wc->watchers = w->next;
	if (w->next)
		w->next->prevw = w->prevw;
	if (w->lprev)
		w->lprev->lnext = w->lnext;
	else if (w->list && w->list->head == w)
		w->list->head = w->lnext;
	if (w->lnext)
		w->lnext->lprev = w->lprev;
	if (w->node && w->list && !w->list->head) {
		struct wc_kind *wk = wkind(wc, w->kind);
		if (wk && wk->wnode && hashmap_del(wk->wnode, w->node) == w->list)
			free(w->list);
	}
	wc->nwatchers--;
	pthread_mutex_unlock(&wc->watchers_mu);
	for (size_t i = w->initial_pos; i < w->ninitial; i++)
		wc_obj_unref(w->initial[i]);
	free(w->initial);
	selector_free(w->lsel);
	field_selector_free(w->fsel);
	free(w->ns);
	free(w->name);
	free(w->node);
	free(w);
}

struct wc_watcher *wc_watch_start(struct watch_cache *wc, const struct wc_watch_req *req)
{
	struct wc_watcher *w = calloc(1, sizeof(*w));
	int err = 0;

	if (!w) {
		selector_free(req->lsel);
		field_selector_free(req->fsel);
		errno = ENOMEM;
		return NULL;
	}
	w->wc = wc;
	w->kind = req->kind;
	w->lsel = req->lsel;
	w->fsel = req->fsel;
	w->bookmarks = req->bookmarks;
	w->wake = req->wake;
	w->arg = req->arg;
	w->ns = req->ns && *req->ns ? strdup(req->ns) : NULL;
	w->name = req->name ? strdup(req->name) : NULL;
	struct wc_kind *wk = wkind(wc, req->kind);
	const char *node = wk && wk->wnode ? field_selector_equal_value(w->fsel, "spec.nodeName")
					   : NULL;
	w->node = node ? strdup(node) : NULL;
	if ((req->ns && *req->ns && !w->ns) || (req->name && !w->name) || (node && !w->node)) {
		err = ENOMEM;
		goto err;
	}
	if (!wk) {
		err = ENOENT;
		goto err;
	}
	clock_gettime(CLOCK_MONOTONIC, &w->last_bookmark);
	w->next_bookmark = w->last_bookmark;
	ts_add_ms(&w->next_bookmark, wc->bookmark_ms);
	if (req->timeout_s > 0) {
		clock_gettime(CLOCK_MONOTONIC, &w->deadline);
		w->deadline.tv_sec += req->timeout_s;
	}

	if (req->from_rev < 0) {
		/* The current state first, then every event after its revision. The list and the
		 * ring position are taken under one read lock so nothing falls between them. */
		size_t it = 0;
		void *v;
		pthread_rwlock_rdlock(&wc->lock);
		struct hashmap *m = objs_for(wk, w->fsel);
		w->initial = malloc(((m ? hashmap_count(m) : 0) + 1) * sizeof(*w->initial));
		if (!w->initial) {
			pthread_rwlock_unlock(&wc->lock);
			err = ENOMEM;
			goto err;
		}
		while (m && hashmap_next(m, &it, NULL, &v)) {
			struct wc_obj *o = v;
			if (!wc_obj_matches(o, w->ns, w->lsel, w->fsel) ||
			    (w->name && strcmp(o->name, w->name) != 0))
				continue;
			wc_obj_ref(o);
			w->initial[w->ninitial++] = o;
		}
		w->next_seq = wc->head;
		w->sent_rev = wc->rev;
		pthread_rwlock_unlock(&wc->lock);
		qsort(w->initial, w->ninitial, sizeof(*w->initial), cmp_obj_key);
	} else {
		pthread_rwlock_rdlock(&wc->lock);
		if (req->from_rev + 1 < wc->ring_min_rev) {
			pthread_rwlock_unlock(&wc->lock);
			err = ECOMPACTED;
			goto err;
		}
		w->next_seq = seq_after(wc, req->from_rev);
		w->sent_rev = req->from_rev < wc->rev ? req->from_rev : wc->rev;
		pthread_rwlock_unlock(&wc->lock);
	}
	w->bookmark_rev = w->sent_rev;

	pthread_mutex_lock(&wc->watchers_mu);
	if (w->node) {
		w->list = hashmap_get(wk->wnode, w->node);
		if (!w->list) {
			w->list = calloc(1, sizeof(*w->list));
			if (!w->list || hashmap_put(wk->wnode, w->node, w->list, NULL)) {
				pthread_mutex_unlock(&wc->watchers_mu);
				free(w->list);
				err = ENOMEM;
				goto err;
			}
		}
	} else {
		w->list = &wk->watchers;
	}
	w->lnext = w->list->head;
	if (w->lnext)
		w->lnext->lprev = w;
	w->list->head = w;
	w->next = wc->watchers;
	if (wc->watchers)
		wc->watchers->prevw = w;
	wc->watchers = w;
	wc->nwatchers++;
	pthread_mutex_unlock(&wc->watchers_mu);
	return w;
err:
	for (size_t i = 0; i < w->ninitial; i++)
		wc_obj_unref(w->initial[i]);
	selector_free(w->lsel);
	field_selector_free(w->fsel);
	free(w->ns);
	free(w->name);
	free(w->node);
	free(w->initial);
	free(w);
	errno = err;
	return NULL;
}

/* One event line: a copy of the object's text between a fixed head and tail. */
static int emit(struct strbuf *out, const char *type, const struct wc_obj *o)
{
	static const char h0[] = "{\"type\":\"", h1[] = "\",\"object\":";
	size_t tl = strlen(type);

	if (strbuf_reserve(out, sizeof(h0) + tl + sizeof(h1) + o->len + 2) ||
	    strbuf_add(out, h0, sizeof(h0) - 1) || strbuf_add(out, type, tl) ||
	    strbuf_add(out, h1, sizeof(h1) - 1) || strbuf_add(out, o->json, o->len) ||
	    strbuf_add(out, "}\n", 2))
		return -ENOMEM;
	return 0;
}

/* The initial state is sent: its array goes (a watch of every pod would hold it). */
static void initial_done(struct wc_watcher *w)
{
	if (w->initial && w->initial_pos == w->ninitial) {
		free(w->initial);
		w->initial = NULL;
		w->ninitial = w->initial_pos = 0;
	}
}

static bool watcher_sees(const struct wc_watcher *w, const struct wc_obj *o)
{
	if (!o || o->kind != w->kind)
		return false;
	if (w->name && strcmp(o->name, w->name) != 0)
		return false;
	return wc_obj_matches(o, w->ns, w->lsel, w->fsel);
}

/* Under the read lock: moves a woken watcher past the events its notifier found did not
 * concern it. Returns false when it fell behind the ring (or the cache is closing). */
static bool catch_up(struct watch_cache *wc, struct wc_watcher *w)
{
	uint64_t skip = atomic_load(&w->skip_to);

	if (atomic_load(&wc->closing))
		return false;
	if (skip > w->next_seq && skip >= wc->tail) {
		if (skip < wc->head && wc->ring[skip % wc->cap].rev - 1 > w->sent_rev)
			w->sent_rev = wc->ring[skip % wc->cap].rev - 1;
		w->next_seq = skip;
	}
	if (w->next_seq < wc->tail) {
		/* Fell behind the ring: the client must resume (and relist if it is gone). */
		log_warn("watcher of %s fell behind the event history; closing its stream",
			 w->kind->resource);
		w->ended = true;
		return false;
	}
	return true;
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000L + (now.tv_nsec - t->tv_nsec) / 1000000L;
}

ssize_t wc_watch_read(struct wc_watcher *w, struct strbuf *out, size_t max,
		      void (*park)(void *arg), void *park_arg)
{
	struct watch_cache *wc = w->wc;
	size_t start = out->len;
	char av[64]; /* "group/version", e.g. "discovery.k8s.io/v1" */

	w->read_at_ns = 0;
	if (w->ended || atomic_load(&wc->closing))
		return -1;
	if (w->deadline.tv_sec && ms_since(&w->deadline) >= 0) {
		w->ended = true;
		return -1;
	}
	/* The initial state, as ADDED events. */
	while (w->initial_pos < w->ninitial && out->len - start < max) {
		struct wc_obj *o = w->initial[w->initial_pos++];
		int err = emit(out, "ADDED", o);
		wc_obj_unref(o);
		if (err)
			return -1;
	}
	if (w->initial_pos < w->ninitial)
		return (ssize_t)(out->len - start);
	initial_done(w);

	pthread_rwlock_rdlock(&wc->lock);
	if (!catch_up(wc, w)) {
		pthread_rwlock_unlock(&wc->lock);
		w->ended = true;
		return out->len > start ? (ssize_t)(out->len - start) : -1;
	}
	while (w->next_seq < wc->head && out->len - start < max) {
		const struct wc_event *e = &wc->ring[w->next_seq % wc->cap];
		const char *type = NULL;
		bool now = watcher_sees(w, e->obj), before = watcher_sees(w, e->prev);

		w->next_seq++;
		switch (e->type) {
		case WC_EV_ADDED:
			type = now ? "ADDED" : NULL;
			break;
		case WC_EV_MODIFIED:
			type = now ? (before ? "MODIFIED" : "ADDED") : (before ? "DELETED" : NULL);
			break;
		default:
			type = before ? "DELETED" : NULL;
			break;
		}
		if (type && emit(out, type, e->obj)) {
			pthread_rwlock_unlock(&wc->lock);
			return -1;
		}
		if (type && !w->read_at_ns)
			w->read_at_ns = e->at_ns;
		if (e->rev > w->sent_rev)
			w->sent_rev = e->rev;
	}
	if (w->next_seq == wc->head && wc->rev > w->sent_rev)
		w->sent_rev = wc->rev;
	bool bm_due = atomic_exchange(&w->bookmark_due, 0);
	if (out->len == start && w->bookmarks && w->sent_rev > w->bookmark_rev &&
	    (bm_due || ms_since(&w->last_bookmark) >= wc->bookmark_ms)) {
		char bm[256];
		int n = snprintf(bm, sizeof(bm),
				 "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"%s\",\"apiVersion\":"
				 "\"%s\",\"metadata\":{\"resourceVersion\":\"%lld\"}}}\n",
				 w->kind->kind, api_kind_api_version(w->kind, av, sizeof(av)),
				 (long long)w->sent_rev);
		if (strbuf_add(out, bm, n)) {
			pthread_rwlock_unlock(&wc->lock);
			return -1;
		}
		w->bookmark_rev = w->sent_rev;
		clock_gettime(CLOCK_MONOTONIC, &w->last_bookmark);
	}
	if (out->len == start) {
		/* Parked only once park() has run: a wake always comes after it. */
		park(park_arg);
		atomic_store(&w->parked, 1);
	}
	pthread_rwlock_unlock(&wc->lock);
	return (ssize_t)(out->len - start);
}

ssize_t wc_watch_next(struct wc_watcher *w, struct wc_event_ref *evs, size_t max,
		      void (*park)(void *arg), void *park_arg)
{
	struct watch_cache *wc = w->wc;
	size_t n = 0;

	if (w->ended || atomic_load(&wc->closing))
		return -1;
	/* The initial state, as ADDED events (the watcher's references move to the caller). */
	while (w->initial_pos < w->ninitial && n < max) {
		evs[n].type = WC_ADDED;
		evs[n].obj = w->initial[w->initial_pos++];
		n++;
	}
	if (n)
		return (ssize_t)n;
	initial_done(w);

	pthread_rwlock_rdlock(&wc->lock);
	if (!catch_up(wc, w)) {
		pthread_rwlock_unlock(&wc->lock);
		w->ended = true;
		return -1;
	}
	while (w->next_seq < wc->head && n < max) {
		const struct wc_event *e = &wc->ring[w->next_seq % wc->cap];
		bool now = watcher_sees(w, e->obj), before = watcher_sees(w, e->prev);
		int type = -1;

		w->next_seq++;
		switch (e->type) {
		case WC_EV_ADDED:
			type = now ? WC_ADDED : -1;
			break;
		case WC_EV_MODIFIED:
			type = now ? (before ? WC_MODIFIED : WC_ADDED) : (before ? WC_DELETED : -1);
			break;
		default:
			type = before ? WC_DELETED : -1;
			break;
		}
		if (type >= 0) {
			evs[n].type = type;
			evs[n].obj = e->obj;
			wc_obj_ref(e->obj);
			n++;
		}
		if (e->rev > w->sent_rev)
			w->sent_rev = e->rev;
	}
	if (n == 0) {
		/* Parked only once park() has run: a wake always comes after it. */
		park(park_arg);
		atomic_store(&w->parked, 1);
	}
	pthread_rwlock_unlock(&wc->lock);
	return (ssize_t)n;
}

int64_t wc_watch_read_commit_ns(const struct wc_watcher *w)
{
	return w->read_at_ns;
}
