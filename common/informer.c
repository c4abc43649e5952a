// SPDX-License-Identifier: Apache-2.0
/*
 * The informer (see informer.h): one thread that lists, then watches, and keeps a cache of
 * the objects as json_t values keyed "namespace/name".
 *
 * The choices a reader needs: a relist (first start, 410 Gone, an ERROR event) builds the new
 * cache aside and reports the difference against the old one, so a consumer sees each
 * disappeared object as DELETED and never a gap; a watch that breaks for any other reason
 * resumes from the last revision seen (bookmarks keep that revision fresh on quiet kinds), after
 * a back-off of 100 ms doubling to 5 s that a stop interrupts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hashmap.h"
#include "httpc.h"
#include "informer.h"
#include "log.h"
#include "strbuf.h"

#define INF_BACKOFF_MIN_MS 100
#define INF_BACKOFF_MAX_MS 5000
#define INF_WATCH_TIMEOUT_S 300

struct informer {
	struct informer_opts o;
	char *server, *token, *ca_file, *path, *lsel, *fsel; /* copies of the options' strings */
	struct httpc *c;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct hashmap *cache; /* "ns/name" -> json_t * (under mu) */
	int64_t rev;	       /* under mu */
	bool synced;	       /* under mu */
	atomic_bool stop;
	struct informer_stats stats; /* under mu */
	/* watch state (informer thread only) */
	bool relist;
	bool got_event;
};

static void obj_key(const json_t *obj, char *buf, size_t len)
{
	const json_t *m = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(m, "namespace"));
	const char *name = json_string_value(json_object_get(m, "name"));

	snprintf(buf, len, "%s/%s", ns ? ns : "", name ? name : "");
}

static int64_t obj_rv(const json_t *obj)
{
	const char *rv = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	return rv ? strtoll(rv, NULL, 10) : 0;
}

/* Sleeps ms unless the informer is stopping. Returns true when it is. */
static bool sleep_or_stop(struct informer *inf, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&inf->mu);
	while (!atomic_load(&inf->stop))
		if (pthread_cond_timedwait(&inf->cond, &inf->mu, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&inf->mu);
	return atomic_load(&inf->stop);
}

static void emit(struct informer *inf, enum informer_event type, json_t *obj, json_t *old)
{
	pthread_mutex_lock(&inf->mu);
	inf->stats.events++;
	pthread_mutex_unlock(&inf->mu);
	if (inf->o.on_event)
		inf->o.on_event(inf->o.arg, type, obj, old);
}

/* The separator before the next query parameter. */
static char sep(const struct strbuf *b)
{
	return b->s && strchr(b->s, '?') ? '&' : '?';
}

/* Appends "?" or "&" and name=escaped value. */
static int add_query(struct strbuf *b, const char *name, const char *value)
{
	char *esc;

	if (!value || !*value)
		return 0;
	esc = httpc_escape(value);
	if (!esc)
		return -ENOMEM;
	strbuf_printf(b, "%c%s=%s", sep(b), name, esc);
	free(esc);
	return b->err;
}

static int base_query(struct informer *inf, struct strbuf *b)
{
	int err;

	strbuf_printf(b, "%s", inf->path);
	err = add_query(b, "labelSelector", inf->lsel);
	return err ? err : add_query(b, "fieldSelector", inf->fsel);
}

/* A response's Status message, for logs. */
static const char *status_message(const struct httpc_resp *r, char *buf, size_t len)
{
	json_t *j = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *m = json_string_value(json_object_get(j, "message"));

	snprintf(buf, len, "%s", m ? m : "(no message)");
	json_decref(j);
	return buf;
}

static void free_cache(struct hashmap *m)
{
	const char *k;
	void *v;

	if (!m)
		return;
	for (size_t it = 0; hashmap_next(m, &it, &k, &v);)
		json_decref(v);
	hashmap_free(m);
}

/* Lists every page into a new cache, then swaps it in and reports the difference. */
static int do_list(struct informer *inf)
{
	struct hashmap *fresh = hashmap_new(1024), *old;
	char *cont = NULL;
	int64_t list_rev = 0;
	int err = 0;

	if (!fresh)
		return -ENOMEM;
	do {
		struct strbuf b = { 0 };
		struct httpc_resp r;
		json_t *page, *items;
		char msg[256];

		err = base_query(inf, &b);
		if (!err)
			strbuf_printf(&b, "%climit=%ld", sep(&b),
				      inf->o.page_limit > 0 ? inf->o.page_limit : 500);
		if (!err && cont)
			err = add_query(&b, "continue", cont);
		if (!err)
			err = b.err;
		if (err) {
			strbuf_free(&b);
			break;
		}
		err = httpc_request(inf->c, "GET", b.s, NULL, 0, NULL, &r);
		strbuf_free(&b);
		if (err) {
			if (err != -ECANCELED)
				log_warn("informer %s: list: %s", inf->path, httpc_error(inf->c));
			break;
		}
		if (r.code != 200) {
			log_warn("informer %s: list: HTTP %ld: %s", inf->path, r.code,
				 status_message(&r, msg, sizeof(msg)));
			httpc_resp_free(&r);
			err = r.code == 410 ? -ECOMM : -EPROTO; /* 410: the continue token expired */
			break;
		}
		page = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
		httpc_resp_free(&r);
		items = json_object_get(page, "items");
		if (!json_is_array(items)) {
			log_warn("informer %s: list: the answer has no items", inf->path);
			json_decref(page);
			err = -EPROTO;
			break;
		}
		json_t *meta = json_object_get(page, "metadata");
		if (!list_rev)
			list_rev = strtoll(json_string_value(json_object_get(meta, "resourceVersion"))
						   ?: "0",
					   NULL, 10);
		free(cont);
		cont = NULL;
		const char *c = json_string_value(json_object_get(meta, "continue"));
		if (c && *c && !(cont = strdup(c)))
			err = -ENOMEM;
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) {
			char key[600];
			void *prev = NULL;
			obj_key(it, key, sizeof(key));
			if (hashmap_put(fresh, key, json_incref(it), &prev)) {
				json_decref(it);
				err = -ENOMEM;
				break;
			}
			json_decref(prev);
		}
		json_decref(page);
	} while (!err && cont);
	free(cont);
	if (err) {
		free_cache(fresh);
		return err;
	}

	/* Swap, then report what changed against the old cache. */
	pthread_mutex_lock(&inf->mu);
	old = inf->cache;
	inf->cache = fresh;
	inf->rev = list_rev;
	inf->stats.lists++;
	pthread_mutex_unlock(&inf->mu);

	const char *k;
	void *v;
	for (size_t it = 0; hashmap_next(fresh, &it, &k, &v);) {
		json_t *prev = old ? hashmap_get(old, k) : NULL;
		if (!prev)
			emit(inf, INF_ADDED, v, NULL);
		else if (obj_rv(prev) != obj_rv(v))
			emit(inf, INF_MODIFIED, v, prev);
	}
	if (old) {
		for (size_t it = 0; hashmap_next(old, &it, &k, &v);)
			if (!hashmap_get(fresh, k))
				emit(inf, INF_DELETED, v, v);
		free_cache(old);
	}
	if (inf->o.on_synced)
		inf->o.on_synced(inf->o.arg);
	pthread_mutex_lock(&inf->mu);
	inf->synced = true;
	pthread_cond_broadcast(&inf->cond);
	pthread_mutex_unlock(&inf->mu);
	return 0;
}

/* One watch event line. Returns non-zero to end the stream. */
static int on_line(const char *line, size_t len, void *arg)
{
	struct informer *inf = arg;
	json_error_t e;
	json_t *ev = json_loadb(line, len, 0, &e);
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *obj = json_object_get(ev, "object");
	char key[600];
	int ret = 0;

	if (atomic_load(&inf->stop)) {
		json_decref(ev);
		return 1;
	}
	if (!type || !json_is_object(obj)) {
		log_warn("informer %s: a watch line that is not an event: %s", inf->path,
			 ev ? "no type or object" : e.text);
		json_decref(ev);
		return 1; /* resume from the last revision */
	}
	inf->got_event = true;
	if (strcmp(type, "ERROR") == 0) {
		json_t *code = json_object_get(obj, "code");
		const char *m = json_string_value(json_object_get(obj, "message"));
		log_info("informer %s: watch ended: %s", inf->path, m ? m : "(no message)");
		if (json_integer_value(code) == 410) {
			pthread_mutex_lock(&inf->mu);
			inf->stats.gone++;
			pthread_mutex_unlock(&inf->mu);
			inf->relist = true;
		}
		json_decref(ev);
		return 1;
	}
	int64_t rv = obj_rv(obj);
	if (strcmp(type, "BOOKMARK") == 0) {
		pthread_mutex_lock(&inf->mu);
		if (rv > inf->rev)
			inf->rev = rv;
		pthread_mutex_unlock(&inf->mu);
		json_decref(ev);
		return 0;
	}
	obj_key(obj, key, sizeof(key));
	json_t *old = NULL;
	enum informer_event t;
	pthread_mutex_lock(&inf->mu);
	if (strcmp(type, "DELETED") == 0) {
		t = INF_DELETED;
		old = hashmap_del(inf->cache, key);
	} else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0) {
		void *prev = NULL;
		if (hashmap_put(inf->cache, key, json_incref(obj), &prev)) {
			json_decref(obj);
			ret = -ENOMEM;
		}
		old = prev;
		t = old ? INF_MODIFIED : INF_ADDED;
	} else {
		pthread_mutex_unlock(&inf->mu);
		log_warn("informer %s: unknown watch event type %s", inf->path, type);
		json_decref(ev);
		return 0;
	}
	if (!ret && rv > inf->rev)
		inf->rev = rv;
	pthread_mutex_unlock(&inf->mu);
	if (ret) {
		log_error("informer %s: out of memory; listing again", inf->path);
		inf->relist = true;
		json_decref(ev);
		return 1;
	}
	/* A DELETED of an object never seen is still reported, with itself as the old state. */
	if (t == INF_DELETED)
		emit(inf, t, obj, old ? old : obj);
	else
		emit(inf, t, obj, old);
	json_decref(old);
	json_decref(ev);
	return 0;
}

static int do_watch(struct informer *inf)
{
	struct strbuf b = { 0 };
	struct httpc_resp r;
	int64_t rev;
	int err;

	pthread_mutex_lock(&inf->mu);
	rev = inf->rev;
	inf->stats.watches++;
	pthread_mutex_unlock(&inf->mu);
	err = base_query(inf, &b);
	if (!err) {
		strbuf_printf(&b, "%cwatch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%lld",
			      sep(&b), INF_WATCH_TIMEOUT_S, (long long)rev);
		err = b.err;
	}
	if (err) {
		strbuf_free(&b);
		return err;
	}
	inf->got_event = false;
	err = httpc_stream(inf->c, b.s, (INF_WATCH_TIMEOUT_S + 30) * 1000L, on_line, inf, &r);
	strbuf_free(&b);
	if (err == -ECANCELED) {
		httpc_resp_free(&r);
		return atomic_load(&inf->stop) ? -ECANCELED : (inf->relist ? -ECOMM : -EAGAIN);
	}
	if (err) {
		log_info("informer %s: watch: %s", inf->path, httpc_error(inf->c));
		return err;
	}
	if (r.code == 410) {
		httpc_resp_free(&r);
		pthread_mutex_lock(&inf->mu);
		inf->stats.gone++;
		pthread_mutex_unlock(&inf->mu);
		inf->relist = true;
		return -ECOMM;
	}
	if (r.code < 200 || r.code > 299) {
		char msg[256];
		log_warn("informer %s: watch: HTTP %ld: %s", inf->path, r.code,
			 status_message(&r, msg, sizeof(msg)));
		httpc_resp_free(&r);
		return -EPROTO;
	}
	httpc_resp_free(&r);
	return 0; /* the server ended the stream (its timeout): resume */
}

static void *informer_main(void *arg)
{
	struct informer *inf = arg;
	int backoff = INF_BACKOFF_MIN_MS;

	inf->relist = true;
	while (!atomic_load(&inf->stop)) {
		int err;
		if (inf->relist) {
			err = do_list(inf);
			if (!err) {
				inf->relist = false;
				backoff = INF_BACKOFF_MIN_MS;
				continue;
			}
		} else {
			err = do_watch(inf);
			if (err == -ECOMM)
				continue; /* 410 Gone: list again at once */
			if (inf->got_event)
				backoff = INF_BACKOFF_MIN_MS;
			if (!err)
				continue; /* the server ended the stream: resume */
		}
		if (inf->o.on_error && !atomic_load(&inf->stop))
			inf->o.on_error(inf->o.arg, err);
		if (atomic_load(&inf->stop) || sleep_or_stop(inf, backoff))
			break;
		backoff = backoff * 2 > INF_BACKOFF_MAX_MS ? INF_BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

static int dup_opt(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

struct informer *informer_start(const struct informer_opts *o)
{
	struct informer *inf;
	int err;

	if (!o || !o->server || !o->path || o->path[0] != '/') {
		errno = EINVAL;
		return NULL;
	}
	inf = calloc(1, sizeof(*inf));
	if (!inf) {
		errno = ENOMEM;
		return NULL;
	}
	inf->o = *o;
	pthread_mutex_init(&inf->mu, NULL);
	pthread_cond_init(&inf->cond, NULL);
	err = dup_opt(&inf->server, o->server);
	err = err ?: dup_opt(&inf->token, o->token);
	err = err ?: dup_opt(&inf->ca_file, o->ca_file);
	err = err ?: dup_opt(&inf->path, o->path);
	err = err ?: dup_opt(&inf->lsel, o->label_selector);
	err = err ?: dup_opt(&inf->fsel, o->field_selector);
	if (!err && !(inf->cache = hashmap_new(64)))
		err = -ENOMEM;
	if (!err && !(inf->c = httpc_new(inf->server, inf->token)))
		err = -errno;
	if (!err) {
		httpc_set_tls(inf->c, inf->ca_file, o->insecure);
		httpc_set_timeout(inf->c, 60000);
		err = -pthread_create(&inf->thread, NULL, informer_main, inf);
		inf->started = !err;
	}
	if (err) {
		informer_stop(inf);
		errno = -err;
		return NULL;
	}
	return inf;
}

void informer_stop(struct informer *inf)
{
	if (!inf)
		return;
	pthread_mutex_lock(&inf->mu);
	atomic_store(&inf->stop, true);
	pthread_cond_broadcast(&inf->cond);
	pthread_mutex_unlock(&inf->mu);
	if (inf->c)
		httpc_abort(inf->c);
	if (inf->started) {
		int err = pthread_join(inf->thread, NULL);
		if (err)
			log_error("informer %s: join: %s", inf->path, strerror(err));
	}
	httpc_free(inf->c);
	free_cache(inf->cache);
	free(inf->server);
	free(inf->token);
	free(inf->ca_file);
	free(inf->path);
	free(inf->lsel);
	free(inf->fsel);
	pthread_cond_destroy(&inf->cond);
	pthread_mutex_destroy(&inf->mu);
	free(inf);
}

bool informer_synced(struct informer *inf)
{
	pthread_mutex_lock(&inf->mu);
	bool s = inf->synced;
	pthread_mutex_unlock(&inf->mu);
	return s;
}

int informer_wait_synced(struct informer *inf, int timeout_ms)
{
	struct timespec ts;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&inf->mu);
	while (!inf->synced && !err)
		err = pthread_cond_timedwait(&inf->cond, &inf->mu, &ts);
	bool s = inf->synced;
	pthread_mutex_unlock(&inf->mu);
	return s ? 0 : -ETIMEDOUT;
}

int64_t informer_revision(struct informer *inf)
{
	pthread_mutex_lock(&inf->mu);
	int64_t rev = inf->rev;
	pthread_mutex_unlock(&inf->mu);
	return rev;
}

json_t *informer_get(struct informer *inf, const char *ns, const char *name)
{
	char key[600];
	json_t *o;

	snprintf(key, sizeof(key), "%s/%s", ns ? ns : "", name);
	pthread_mutex_lock(&inf->mu);
	o = json_incref(hashmap_get(inf->cache, key));
	pthread_mutex_unlock(&inf->mu);
	return o;
}

int informer_list(struct informer *inf, json_t ***objs, size_t *n)
{
	const char *k;
	void *v;
	size_t i = 0;

	pthread_mutex_lock(&inf->mu);
	size_t count = hashmap_count(inf->cache);
	json_t **out = calloc(count ? count : 1, sizeof(*out));
	if (!out) {
		pthread_mutex_unlock(&inf->mu);
		return -ENOMEM;
	}
	for (size_t it = 0; hashmap_next(inf->cache, &it, &k, &v);)
		out[i++] = json_incref(v);
	pthread_mutex_unlock(&inf->mu);
	*objs = out;
	*n = i;
	return 0;
}

void informer_list_free(json_t **objs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(objs[i]);
	free(objs);
}

void informer_stats(struct informer *inf, struct informer_stats *out)
{
	pthread_mutex_lock(&inf->mu);
	*out = inf->stats;
	pthread_mutex_unlock(&inf->mu);
}
