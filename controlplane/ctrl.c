// SPDX-License-Identifier: Apache-2.0
/*
 * The controller framework (see ctrl.h): shared informers on the watch cache, their indexes,
 * the thread that applies their events and calls the controllers' handlers, the worker
 * threads, expectations and the controllers' figures for /metrics.
 *
 * The design choice to know: the informers keep no parsed objects. The watch cache already
 * holds every object as immutable text; a record holds a reference to it plus the few fields
 * controllers select and count by (taken from one parse per event), so 100,000 pods cost
 * their records and index entries, not a second copy of every pod. A reconcile that needs a
 * whole object parses that one object.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "api_local.h"
#include "ctrl.h"
#include "event_recorder.h"
#include "hashmap.h"
#include "log.h"
#include "strbuf.h"
#include "workq.h"

#define MAX_HANDLERS	  16
#define EVENT_BATCH	  256
#define EXPECTATION_TTL_S 300

static const double lat_buckets[] = {
	0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
#define NLAT (sizeof(lat_buckets) / sizeof(lat_buckets[0]))

struct handler {
	struct ctrl *c;
	ctrl_handler_fn fn;
};

struct ctrl_informer {
	struct ctrl_manager *m;
	const struct api_kind *kind;
	unsigned flags;
	struct wc_watcher *w;
	bool relist; /* the watch ended: list again */
	pthread_rwlock_t lock;
	struct hashmap *objs;	   /* key -> struct ctrl_obj * (one reference) */
	struct hashmap *by_uid;	   /* uid -> struct ctrl_obj * */
	struct hashmap *by_owner;  /* controller uid -> set */
	struct hashmap *by_ref;	   /* any owner uid -> set */
	struct hashmap *by_label;  /* "ns\1key=value" -> set (CTRL_INDEX_LABELS) */
	struct hashmap *by_ns;	   /* ns -> set (CTRL_INDEX_LABELS, _NAMESPACE) */
	struct hashmap *by_anchor; /* "ns\1key=value" or "ns\1" -> set (CTRL_INDEX_SELECTORS) */
	struct hashmap *by_node;   /* node name -> set of pods (CTRL_INDEX_NODE) */
	struct handler handlers[MAX_HANDLERS];
	int nhandlers;
	uint64_t events, relists;
	struct ctrl_informer *next;
};

struct expectation {
	int adds;
	struct hashmap *dels; /* child key -> (void *)1 */
	time_t since;
};

struct change {
	long value;
	int64_t at_ms;
};

struct ctrl {
	struct ctrl_manager *m;
	const struct ctrl_def *def;
	void *priv;
	struct workq *q;
	pthread_t *threads;
	int nthreads;
	pthread_mutex_t mu; /* expectations, changes and figures */
	struct hashmap *expect;
	struct hashmap *changes; /* key -> struct change */
	struct hashmap *written; /* key -> int64_t * (the revision of our last write) */
	uint64_t ok, failed;
	uint64_t lat[NLAT];
	double lat_sum;
	struct ctrl *next;
};

struct ctrl_manager {
	struct api_server *srv;
	struct ctrl_config cfg;
	struct ctrl_informer *informers;
	struct ctrl *ctrls;
	bool started; /* informers listed: no new informers */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool pending, stop;
};

/* ---- records ------------------------------------------------------------------------------ */

void ctrl_obj_ref(struct ctrl_obj *c)
{
	if (c)
		__atomic_add_fetch(&c->refcnt, 1, __ATOMIC_RELAXED);
}

static void node_free(struct ctrl_node *n)
{
	if (!n)
		return;
	json_decref(n->taints);
	free(n->ready_buf);
	free(n);
}

static void pod_free(struct ctrl_pod *p)
{
	if (!p)
		return;
	free(p->target_node);
	free(p->node);
	free(p->ip);
	free(p->hostname);
	free(p->subdomain);
	for (size_t i = 0; i < p->nports; i++)
		free(p->ports[i].name);
	free(p->ports);
	free(p);
}

void ctrl_obj_unref(struct ctrl_obj *c)
{
	if (!c || __atomic_sub_fetch(&c->refcnt, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	wc_obj_unref(c->o);
	free((char *)c->uid);
	free(c->keybuf);
	for (size_t i = 0; i < c->nrefs; i++) {
		free(c->refs[i].api_version);
		free(c->refs[i].kind);
		free(c->refs[i].name);
		free(c->refs[i].uid);
	}
	free(c->refs);
	for (size_t i = 0; i < c->nfinalizers; i++)
		free(c->finalizers[i]);
	free(c->finalizers);
	selector_free(c->sel);
	pod_free(c->pod);
	node_free(c->node);
	free(c);
}

const json_t *ctrl_obj_labels(const struct ctrl_obj *c)
{
	return wc_obj_labels(c->o);
}

const char *ctrl_obj_label(const struct ctrl_obj *c, const char *key)
{
	return json_string_value(json_object_get(ctrl_obj_labels(c), key));
}

json_t *ctrl_obj_json(const struct ctrl_obj *c)
{
	json_error_t e;
	return json_loadb(c->o->json, c->o->len, 0, &e);
}

void ctrl_objs_free(struct ctrl_objs *l)
{
	for (size_t i = 0; i < l->n; i++)
		ctrl_obj_unref(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int objs_push(struct ctrl_objs *l, struct ctrl_obj *o)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct ctrl_obj **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	ctrl_obj_ref(o);
	l->v[l->n++] = o;
	return 0;
}

time_t ctrl_parse_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end;

	if (!s || !*s)
		return 0;
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return 0;
	time_t t = timegm(&tm);
	if (*end == '.')
		while (*++end >= '0' && *end <= '9')
			;
	if ((*end == '+' || *end == '-') && strlen(end) >= 6) {
		int h = atoi(end + 1), m = atoi(end + 4);
		long off = (h * 3600L + m * 60L) * (*end == '+' ? 1 : -1);
		t -= off;
	}
	return t;
}

void ctrl_now(char out[32])
{
	api_now(out);
}

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

/* A toleration's seconds for a NoExecute taint key (no value): -1 forever, else seconds;
 * *present says whether one matched. */
static long toleration_for(const json_t *tols, const char *key, bool *present)
{
	size_t i;
	json_t *t;
	long best = -2;

	*present = false;
	json_array_foreach (tols, i, t) {
		const char *k = json_string_value(json_object_get(t, "key"));
		const char *op = json_string_value(json_object_get(t, "operator"));
		const char *eff = json_string_value(json_object_get(t, "effect"));
		const char *val = json_string_value(json_object_get(t, "value"));
		bool exists = op && strcmp(op, "Exists") == 0;
		if (k && *k && strcmp(k, key) != 0)
			continue;
		if ((!k || !*k) && !exists)
			continue;
		if (eff && *eff && strcmp(eff, "NoExecute") != 0)
			continue;
		if (!exists && val && *val)
			continue; /* the node taints carry no value */
		json_t *secs = json_object_get(t, "tolerationSeconds");
		long s = json_is_integer(secs) ? (long)json_integer_value(secs) : -1;
		if (s < -1)
			s = 0;
		if (json_is_integer(secs) && s < 0)
			s = 0;
		*present = true;
		/* The most tolerant one wins: forever, else the longest. */
		if (s == -1 || best == -1)
			best = -1;
		else if (s > best)
			best = s;
	}
	return best;
}

static struct ctrl_pod *pod_summary(const json_t *pod, const struct ctrl_config *cfg)
{
	struct ctrl_pod *p = calloc(1, sizeof(*p));
	const json_t *spec = json_object_get(pod, "spec"), *st = json_object_get(pod, "status");
	const char *phase = json_string_value(json_object_get(st, "phase"));
	size_t i, j;
	json_t *c, *port;

	if (!p)
		return NULL;
	p->phase = !phase			     ? POD_PENDING
		   : strcmp(phase, "Running") == 0   ? POD_RUNNING
		   : strcmp(phase, "Succeeded") == 0 ? POD_SUCCEEDED
		   : strcmp(phase, "Failed") == 0    ? POD_FAILED
		   : strcmp(phase, "Unknown") == 0   ? POD_UNKNOWN
						     : POD_PENDING;
	json_array_foreach (json_object_get(st, "conditions"), i, c) {
		const char *type = json_string_value(json_object_get(c, "type"));
		const char *status = json_string_value(json_object_get(c, "status"));
		if (type && strcmp(type, "Ready") == 0) {
			p->ready = status && strcmp(status, "True") == 0;
			p->ready_since = ctrl_parse_time(
				json_string_value(json_object_get(c, "lastTransitionTime")));
		}
	}
	p->node = dup_or_null(json_string_value(json_object_get(spec, "nodeName")));
	p->scheduled = p->node != NULL;
	const char *pinned = NULL;
	const json_t *terms = json_object_get(
		json_object_get(json_object_get(json_object_get(spec, "affinity"), "nodeAffinity"),
				"requiredDuringSchedulingIgnoredDuringExecution"),
		"nodeSelectorTerms");
	if (json_array_size(terms) == 1) {
		const json_t *mf = json_object_get(json_array_get(terms, 0), "matchFields");
		const json_t *f = json_array_get(mf, 0);
		const char *k = json_string_value(json_object_get(f, "key"));
		const char *op = json_string_value(json_object_get(f, "operator"));
		const json_t *vals = json_object_get(f, "values");
		if (json_array_size(mf) == 1 && k && op && !strcmp(k, "metadata.name") &&
		    !strcmp(op, "In") && json_array_size(vals) == 1)
			pinned = json_string_value(json_array_get(vals, 0));
	}
	p->target_node = dup_or_null(p->node ? p->node : pinned);
	p->ip = dup_or_null(json_string_value(json_object_get(st, "podIP")));
	p->hostname = dup_or_null(json_string_value(json_object_get(spec, "hostname")));
	p->subdomain = dup_or_null(json_string_value(json_object_get(spec, "subdomain")));
	json_array_foreach (json_object_get(st, "containerStatuses"), i, c)
		p->restarts += (int)json_integer_value(json_object_get(c, "restartCount"));
	size_t nports = 0;
	json_array_foreach (json_object_get(spec, "containers"), i, c)
		nports += json_array_size(json_object_get(c, "ports"));
	if (nports) {
		p->ports = calloc(nports, sizeof(*p->ports));
		if (!p->ports)
			goto err;
		json_array_foreach (json_object_get(spec, "containers"), i, c) {
			json_array_foreach (json_object_get(c, "ports"), j, port) {
				struct ctrl_port *cp = &p->ports[p->nports++];
				const char *proto =
					json_string_value(json_object_get(port, "protocol"));
				cp->name = dup_or_null(
					json_string_value(json_object_get(port, "name")));
				cp->port = (int)json_integer_value(
					json_object_get(port, "containerPort"));
				snprintf(cp->protocol, sizeof(cp->protocol), "%s",
					 proto ? proto : "TCP");
			}
		}
	}
	const json_t *tols = json_object_get(spec, "tolerations");
	long d = cfg->default_toleration_s > 0 ? cfg->default_toleration_s : 300;
	p->tolerate_unreachable_s =
		toleration_for(tols, "node.kubernetes.io/unreachable", &p->tolerates_unreachable);
	if (!p->tolerates_unreachable)
		p->tolerate_unreachable_s = d;
	p->tolerate_not_ready_s =
		toleration_for(tols, "node.kubernetes.io/not-ready", &p->tolerates_not_ready);
	if (!p->tolerates_not_ready)
		p->tolerate_not_ready_s = d;
	return p;
err:
	pod_free(p);
	return NULL;
}

/* Builds the record of a served object; NULL on out of memory or an unreadable object. */
static struct ctrl_obj *record_new(struct ctrl_informer *inf, struct wc_obj *o)
{
	struct ctrl_obj *c = calloc(1, sizeof(*c));
	json_t *obj = NULL;
	json_error_t e;
	size_t i;
	json_t *r;

	if (!c)
		return NULL;
	c->refcnt = 1;
	c->o = o;
	wc_obj_ref(o);
	if (*o->ns) {
		size_t n = strlen(o->ns) + strlen(o->name) + 2;
		c->keybuf = malloc(n);
		if (c->keybuf)
			snprintf(c->keybuf, n, "%s/%s", o->ns, o->name);
	} else {
		c->keybuf = strdup(o->name);
	}
	if (!c->keybuf)
		goto err;
	c->key = c->keybuf;
	obj = json_loadb(o->json, o->len, 0, &e);
	if (!obj) {
		log_warn("controllers: %s is not JSON: %s", o->key, e.text);
		goto err;
	}
	const json_t *meta = json_object_get(obj, "metadata");
	const char *uid = json_string_value(json_object_get(meta, "uid"));
	c->uid = strdup(uid ? uid : "");
	if (!c->uid)
		goto err;
	c->created = ctrl_parse_time(json_string_value(json_object_get(meta, "creationTimestamp")));
	c->deleting = json_object_get(meta, "deletionTimestamp") != NULL;
	c->generation = json_integer_value(json_object_get(meta, "generation"));
	const json_t *refs = json_object_get(meta, "ownerReferences");
	if (json_array_size(refs)) {
		c->refs = calloc(json_array_size(refs), sizeof(*c->refs));
		if (!c->refs)
			goto err;
		json_array_foreach (refs, i, r) {
			const char *ruid = json_string_value(json_object_get(r, "uid"));
			if (!ruid || !*ruid)
				continue;
			struct ctrl_ref *cr = &c->refs[c->nrefs++];
			cr->api_version =
				strdup(json_string_value(json_object_get(r, "apiVersion")) ?: "");
			cr->kind = strdup(json_string_value(json_object_get(r, "kind")) ?: "");
			cr->name = strdup(json_string_value(json_object_get(r, "name")) ?: "");
			cr->uid = strdup(ruid);
			cr->controller = json_is_true(json_object_get(r, "controller"));
			cr->block_owner_deletion =
				json_is_true(json_object_get(r, "blockOwnerDeletion"));
			if (!cr->api_version || !cr->kind || !cr->name || !cr->uid)
				goto err;
		}
		for (i = 0; i < c->nrefs; i++)
			if (c->refs[i].controller) {
				c->controller = &c->refs[i];
				break;
			}
	}
	const json_t *fins = json_object_get(meta, "finalizers");
	if (json_array_size(fins)) {
		c->finalizers = calloc(json_array_size(fins), sizeof(char *));
		if (!c->finalizers)
			goto err;
		json_array_foreach (fins, i, r) {
			if (json_is_string(r) &&
			    !(c->finalizers[c->nfinalizers++] = strdup(json_string_value(r))))
				goto err;
		}
	}
	const char *kind = inf->kind->kind;
	const json_t *spec = json_object_get(obj, "spec");
	char err[256];
	if (strcmp(kind, "Service") == 0) {
		const json_t *s = json_object_get(spec, "selector");
		if (json_object_size(s)) {
			json_t *ls = json_pack("{s:O}", "matchLabels", s);
			if (!ls || selector_from_json(ls, false, &c->sel, err, sizeof(err)))
				c->sel = NULL;
			json_decref(ls);
		}
	} else if (strcmp(kind, "ReplicaSet") == 0 || strcmp(kind, "Deployment") == 0 ||
		   strcmp(kind, "DaemonSet") == 0 || strcmp(kind, "Job") == 0) {
		const json_t *s = json_object_get(spec, "selector");
		if (s && selector_from_json(s, false, &c->sel, err, sizeof(err)))
			c->sel = NULL;
	} else if (strcmp(kind, "Pod") == 0) {
		c->pod = pod_summary(obj, &inf->m->cfg);
		if (!c->pod)
			goto err;
	} else if (strcmp(kind, "Node") == 0) {
		c->node = calloc(1, sizeof(*c->node));
		if (!c->node)
			goto err;
		const json_t *t = json_object_get(spec, "taints");
		c->node->taints = json_is_array(t) ? json_deep_copy(t) : json_array();
		c->node->unschedulable = json_is_true(json_object_get(spec, "unschedulable"));
		json_array_foreach (json_object_get(json_object_get(obj, "status"), "conditions"),
				    i, r) {
			const char *type = json_string_value(json_object_get(r, "type"));
			const char *st = json_string_value(json_object_get(r, "status"));
			if (type && st && strcmp(type, "Ready") == 0)
				c->node->ready = c->node->ready_buf = strdup(st);
		}
		if (!c->node->taints)
			goto err;
	}
	json_decref(obj);
	return c;
err:
	json_decref(obj);
	ctrl_obj_unref(c);
	return NULL;
}

/* ---- indexes (under the informer's write lock) ------------------------------------------- */

static int set_add(struct hashmap *idx, const char *ikey, struct ctrl_obj *c)
{
	struct hashmap *s = hashmap_get(idx, ikey);
	if (!s) {
		s = hashmap_new(8);
		if (!s)
			return -ENOMEM;
		if (hashmap_put(idx, ikey, s, NULL)) {
			hashmap_free(s);
			return -ENOMEM;
		}
	}
	return hashmap_put(s, c->key, c, NULL);
}

static void set_del(struct hashmap *idx, const char *ikey, const struct ctrl_obj *c)
{
	struct hashmap *s = hashmap_get(idx, ikey);
	if (!s)
		return;
	if (hashmap_get(s, c->key) == c)
		hashmap_del(s, c->key);
	if (!hashmap_count(s)) {
		hashmap_del(idx, ikey);
		hashmap_free(s);
	}
}

static void label_key(char *buf, size_t len, const char *ns, const char *k, const char *v)
{
	snprintf(buf, len, "%s\1%s=%s", ns, k, v);
}

/* The index entry a selector is found under: its first equality, else the namespace. */
static void anchor_of(const struct ctrl_obj *c, char *buf, size_t len)
{
	for (size_t i = 0; i < c->sel->n; i++) {
		const struct sel_req *r = &c->sel->reqs[i];
		if ((r->op == SEL_EQ || (r->op == SEL_IN && r->nvalues == 1)) && r->nvalues) {
			label_key(buf, len, c->o->ns, r->key, r->values[0]);
			return;
		}
	}
	snprintf(buf, len, "%s\1", c->o->ns);
}

/* Calls fn(idx, ikey, c) for each index entry of c. */
static int index_walk(struct ctrl_informer *inf, struct ctrl_obj *c, bool add)
{
	char ik[1024];
	int err = 0;
#define IDX(map, k)                                                                                \
	do {                                                                                       \
		if (add)                                                                           \
			err = err ? err : set_add(map, k, c);                                      \
		else                                                                               \
			set_del(map, k, c);                                                        \
	} while (0)

	if (*c->uid) {
		if (add)
			err = hashmap_put(inf->by_uid, c->uid, c, NULL);
		else if (hashmap_get(inf->by_uid, c->uid) == c)
			hashmap_del(inf->by_uid, c->uid);
	}
	for (size_t i = 0; i < c->nrefs; i++) {
		IDX(inf->by_ref, c->refs[i].uid);
		if (c->refs[i].controller && c->controller == &c->refs[i])
			IDX(inf->by_owner, c->refs[i].uid);
	}
	if (inf->flags & CTRL_INDEX_LABELS) {
		const char *k;
		json_t *v;
		json_object_foreach ((json_t *)ctrl_obj_labels(c), k, v) {
			label_key(ik, sizeof(ik), c->o->ns, k, json_string_value(v) ?: "");
			IDX(inf->by_label, ik);
		}
	}
	if (inf->flags & (CTRL_INDEX_LABELS | CTRL_INDEX_NAMESPACE))
		IDX(inf->by_ns, c->o->ns);
	if ((inf->flags & CTRL_INDEX_NODE) && c->pod && c->pod->node)
		IDX(inf->by_node, c->pod->node);
	if ((inf->flags & CTRL_INDEX_SELECTORS) && c->sel) {
		anchor_of(c, ik, sizeof(ik));
		IDX(inf->by_anchor, ik);
	}
#undef IDX
	return err;
}

/* ---- informers -------------------------------------------------------------------------- */

static void free_sets(struct hashmap *idx)
{
	size_t it = 0;
	void *v;
	while (idx && hashmap_next(idx, &it, NULL, &v))
		hashmap_free(v);
	hashmap_free(idx);
}

static void informer_free(struct ctrl_informer *inf)
{
	size_t it = 0;
	void *v;

	if (!inf)
		return;
	wc_watch_stop(inf->w);
	while (inf->objs && hashmap_next(inf->objs, &it, NULL, &v))
		ctrl_obj_unref(v);
	hashmap_free(inf->objs);
	hashmap_free(inf->by_uid);
	free_sets(inf->by_owner);
	free_sets(inf->by_ref);
	free_sets(inf->by_label);
	free_sets(inf->by_ns);
	free_sets(inf->by_anchor);
	free_sets(inf->by_node);
	pthread_rwlock_destroy(&inf->lock);
	free(inf);
}

struct ctrl_informer *ctrl_informer(struct ctrl *c, const char *api_version, const char *kind,
				    unsigned flags)
{
	struct ctrl_manager *m = c->m;
	const struct api_kind *k = api_kind_by_kind(api_version, kind);
	struct ctrl_informer *inf;

	if (!k || m->started) {
		log_error("controller %s: no informer for %s %s", c->def->name, api_version, kind);
		errno = EINVAL;
		return NULL;
	}
	for (inf = m->informers; inf; inf = inf->next)
		if (inf->kind == k) {
			inf->flags |= flags;
			return inf;
		}
	inf = calloc(1, sizeof(*inf));
	if (!inf)
		return NULL;
	inf->m = m;
	inf->kind = k;
	inf->flags = flags;
	pthread_rwlock_init(&inf->lock, NULL);
	inf->objs = hashmap_new(64);
	inf->by_uid = hashmap_new(64);
	inf->by_owner = hashmap_new(64);
	inf->by_ref = hashmap_new(64);
	inf->by_label = hashmap_new(64);
	inf->by_ns = hashmap_new(16);
	inf->by_anchor = hashmap_new(16);
	inf->by_node = hashmap_new(16);
	if (!inf->objs || !inf->by_uid || !inf->by_owner || !inf->by_ref || !inf->by_label ||
	    !inf->by_ns || !inf->by_anchor || !inf->by_node) {
		informer_free(inf);
		errno = ENOMEM;
		return NULL;
	}
	inf->next = m->informers;
	m->informers = inf;
	return inf;
}

int ctrl_on(struct ctrl *c, struct ctrl_informer *inf, ctrl_handler_fn fn)
{
	if (inf->nhandlers == MAX_HANDLERS)
		return -E2BIG;
	inf->handlers[inf->nhandlers++] = (struct handler){ c, fn };
	return 0;
}

static void call_handlers(struct ctrl_informer *inf, enum ctrl_event ev, const struct ctrl_obj *now,
			  const struct ctrl_obj *old)
{
	for (int i = 0; i < inf->nhandlers; i++)
		inf->handlers[i].fn(inf->handlers[i].c, ev, now, old);
}

/* Applies the current state of one object (o NULL: it is gone; last: its last state, for the
 * handlers). Calls the handlers when notify. */
static void apply(struct ctrl_informer *inf, const char *key, struct wc_obj *o, struct wc_obj *last,
		  bool notify)
{
	struct ctrl_obj *now = NULL, *old;

	if (o) {
		now = record_new(inf, o);
		if (!now) {
			log_error("controllers: cannot take %s into the cache", o->key);
			return;
		}
		key = now->key;
	}
	pthread_rwlock_wrlock(&inf->lock);
	old = hashmap_get(inf->objs, key);
	if (old) {
		hashmap_del(inf->objs, key);
		index_walk(inf, old, false);
	}
	if (now) {
		ctrl_obj_ref(now);
		if (hashmap_put(inf->objs, now->key, now, NULL) || index_walk(inf, now, true)) {
			log_error("controllers: out of memory indexing %s", now->key);
			index_walk(inf, now, false);
			if (hashmap_get(inf->objs, now->key) == now)
				hashmap_del(inf->objs, now->key);
			ctrl_obj_unref(now);
		}
	}
	inf->events++;
	pthread_rwlock_unlock(&inf->lock);

	if (notify) {
		if (now) {
			call_handlers(inf, old ? CTRL_MODIFIED : CTRL_ADDED, now, old);
		} else if (old) {
			struct ctrl_obj *gone = last ? record_new(inf, last) : NULL;
			call_handlers(inf, CTRL_DELETED, gone ? gone : old, old);
			ctrl_obj_unref(gone);
		}
	}
	ctrl_obj_unref(now);
	ctrl_obj_unref(old);
}

static void wake(void *arg)
{
	struct ctrl_manager *m = arg;
	pthread_mutex_lock(&m->mu);
	m->pending = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->mu);
}

static void park(void *arg)
{
	(void)arg; /* wake() comes when events arrive */
}

/* Lists the kind from the watch cache, applies what changed since the cache was last in
 * step (what vanished is a deletion), and watches from the list's revision. */
static int informer_list(struct ctrl_informer *inf, bool notify)
{
	struct wc_obj **objs;
	size_t n;
	int64_t rev;
	struct hashmap *seen;
	int err;

	wc_watch_stop(inf->w);
	inf->w = NULL;
	err = wc_list(inf->m->srv->wc, inf->kind, NULL, NULL, NULL, &objs, &n, &rev);
	if (err)
		return err;
	seen = hashmap_new(n + 1);
	if (!seen) {
		wc_list_free(objs, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct ctrl_obj *have;
		char key[600];
		if (*objs[i]->ns)
			snprintf(key, sizeof(key), "%s/%s", objs[i]->ns, objs[i]->name);
		else
			snprintf(key, sizeof(key), "%s", objs[i]->name);
		if (hashmap_put(seen, key, (void *)1, NULL))
			err = -ENOMEM;
		have = ctrl_get(inf, key);
		if (!have || have->o->rev != objs[i]->rev)
			apply(inf, key, objs[i], NULL, notify);
		ctrl_obj_unref(have);
	}
	/* What the cache holds and the list does not: gone while the watch was behind. */
	struct ctrl_objs all = { 0 };
	if (!err)
		err = ctrl_list(inf, NULL, &all);
	for (size_t i = 0; !err && i < all.n; i++)
		if (!hashmap_get(seen, all.v[i]->key))
			apply(inf, all.v[i]->key, NULL, all.v[i]->o, notify);
	ctrl_objs_free(&all);
	hashmap_free(seen);
	wc_list_free(objs, n);
	if (err)
		return err;
	struct wc_watch_req req = {
		.kind = inf->kind, .from_rev = rev, .wake = wake, .arg = inf->m
	};
	inf->w = wc_watch_start(inf->m->srv->wc, &req);
	if (!inf->w)
		return -errno;
	inf->relists++;
	inf->relist = false;
	return 0;
}

/* Applies what the informer's watch has pending. */
static void informer_drain(struct ctrl_informer *inf)
{
	struct wc_event_ref evs[EVENT_BATCH];

	for (;;) {
		if (inf->relist || !inf->w) {
			int err = informer_list(inf, true);
			if (err) {
				log_warn("controllers: list %s again: %s", inf->kind->resource,
					 shoal_strerror(err));
				inf->relist = true;
				return;
			}
		}
		ssize_t n = wc_watch_next(inf->w, evs, EVENT_BATCH, park, inf->m);
		if (n < 0) {
			inf->relist = true;
			if (atomic_load(&inf->m->srv->stopping))
				return;
			continue;
		}
		if (n == 0)
			return;
		for (ssize_t i = 0; i < n; i++) {
			struct wc_obj *o = evs[i].obj;
			char key[600];
			if (*o->ns)
				snprintf(key, sizeof(key), "%s/%s", o->ns, o->name);
			else
				snprintf(key, sizeof(key), "%s", o->name);
			if (evs[i].type == WC_DELETED)
				apply(inf, key, NULL, o, true);
			else
				apply(inf, key, o, NULL, true);
			wc_obj_unref(o);
		}
	}
}

static void *informer_main(void *arg)
{
	struct ctrl_manager *m = arg;

	for (;;) {
		bool retry = false;
		pthread_mutex_lock(&m->mu);
		bool stop = m->stop;
		m->pending = false;
		pthread_mutex_unlock(&m->mu);
		if (stop)
			break;
		for (struct ctrl_informer *inf = m->informers; inf; inf = inf->next) {
			informer_drain(inf);
			retry |= inf->relist;
		}
		pthread_mutex_lock(&m->mu);
		if (!m->pending && !m->stop) {
			if (retry) {
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_sec += 1;
				pthread_cond_timedwait(&m->cond, &m->mu, &ts);
			} else {
				pthread_cond_wait(&m->cond, &m->mu);
			}
		}
		pthread_mutex_unlock(&m->mu);
	}
	return NULL;
}

/* ---- reads ---------------------------------------------------------------------------- */

struct ctrl_obj *ctrl_get(struct ctrl_informer *inf, const char *key)
{
	struct ctrl_obj *c;
	pthread_rwlock_rdlock(&inf->lock);
	c = hashmap_get(inf->objs, key);
	ctrl_obj_ref(c);
	pthread_rwlock_unlock(&inf->lock);
	return c;
}

struct ctrl_obj *ctrl_get_uid(struct ctrl_informer *inf, const char *uid)
{
	struct ctrl_obj *c;
	pthread_rwlock_rdlock(&inf->lock);
	c = hashmap_get(inf->by_uid, uid);
	ctrl_obj_ref(c);
	pthread_rwlock_unlock(&inf->lock);
	return c;
}

/* Appends the members of set (may be NULL) that pass keep (NULL: all). */
static int append_set(const struct hashmap *set, struct ctrl_objs *out,
		      bool (*keep)(const struct ctrl_obj *, const void *), const void *arg)
{
	size_t it = 0;
	void *v;
	while (set && hashmap_next(set, &it, NULL, &v))
		if ((!keep || keep(v, arg)) && objs_push(out, v))
			return -ENOMEM;
	return 0;
}

int ctrl_owned(struct ctrl_informer *inf, const char *owner_uid, struct ctrl_objs *out)
{
	pthread_rwlock_rdlock(&inf->lock);
	int err = append_set(hashmap_get(inf->by_owner, owner_uid), out, NULL, NULL);
	pthread_rwlock_unlock(&inf->lock);
	return err;
}

int ctrl_dependents(struct ctrl_informer *inf, const char *owner_uid, struct ctrl_objs *out)
{
	pthread_rwlock_rdlock(&inf->lock);
	int err = append_set(hashmap_get(inf->by_ref, owner_uid), out, NULL, NULL);
	pthread_rwlock_unlock(&inf->lock);
	return err;
}

static bool sel_keeps(const struct ctrl_obj *c, const void *sel)
{
	return selector_matches(sel, ctrl_obj_labels(c));
}

int ctrl_select(struct ctrl_informer *inf, const char *ns, const struct selector *sel,
		struct ctrl_objs *out)
{
	const struct hashmap *best = NULL;
	char ik[1024];
	bool have_eq = false;
	int err;

	if (!sel)
		return 0;
	pthread_rwlock_rdlock(&inf->lock);
	/* The smallest equality's entry, else the whole namespace. */
	for (size_t i = 0; i < sel->n; i++) {
		const struct sel_req *r = &sel->reqs[i];
		if (r->op != SEL_EQ || !r->nvalues)
			continue;
		label_key(ik, sizeof(ik), ns, r->key, r->values[0]);
		const struct hashmap *s = hashmap_get(inf->by_label, ik);
		if (!have_eq || !s || (best && hashmap_count(s) < hashmap_count(best)))
			best = s;
		have_eq = true;
		if (!s)
			break; /* nothing has that label */
	}
	if (!have_eq)
		best = hashmap_get(inf->by_ns, ns);
	err = append_set(best, out, sel_keeps, sel);
	pthread_rwlock_unlock(&inf->lock);
	return err;
}

static bool selects(const struct ctrl_obj *c, const void *labels)
{
	return c->sel && selector_matches(c->sel, labels);
}

int ctrl_selecting(struct ctrl_informer *inf, const char *ns, const json_t *labels,
		   struct ctrl_objs *out)
{
	char ik[1024];
	const char *k;
	json_t *v;
	int err;

	pthread_rwlock_rdlock(&inf->lock);
	snprintf(ik, sizeof(ik), "%s\1", ns);
	err = append_set(hashmap_get(inf->by_anchor, ik), out, selects, labels);
	json_object_foreach ((json_t *)labels, k, v) {
		if (err)
			break;
		label_key(ik, sizeof(ik), ns, k, json_string_value(v) ?: "");
		err = append_set(hashmap_get(inf->by_anchor, ik), out, selects, labels);
	}
	pthread_rwlock_unlock(&inf->lock);
	return err;
}

int ctrl_on_node(struct ctrl_informer *inf, const char *node, struct ctrl_objs *out)
{
	pthread_rwlock_rdlock(&inf->lock);
	int err = append_set(hashmap_get(inf->by_node, node), out, NULL, NULL);
	pthread_rwlock_unlock(&inf->lock);
	return err;
}

static bool in_ns(const struct ctrl_obj *c, const void *ns)
{
	return !ns || strcmp(c->o->ns, ns) == 0;
}

int ctrl_list(struct ctrl_informer *inf, const char *ns, struct ctrl_objs *out)
{
	pthread_rwlock_rdlock(&inf->lock);
	int err = ns && (inf->flags & (CTRL_INDEX_LABELS | CTRL_INDEX_NAMESPACE))
			  ? append_set(hashmap_get(inf->by_ns, ns), out, NULL, NULL)
			  : append_set(inf->objs, out, in_ns, ns);
	pthread_rwlock_unlock(&inf->lock);
	return err;
}

size_t ctrl_count(struct ctrl_informer *inf)
{
	pthread_rwlock_rdlock(&inf->lock);
	size_t n = hashmap_count(inf->objs);
	pthread_rwlock_unlock(&inf->lock);
	return n;
}

/* ---- controllers ------------------------------------------------------------------------- */

void *ctrl_priv(struct ctrl *c)
{
	return c->priv;
}

void ctrl_set_priv(struct ctrl *c, void *priv)
{
	c->priv = priv;
}

struct api_server *ctrl_server(struct ctrl *c)
{
	return c->m->srv;
}

const struct ctrl_config *ctrl_config(struct ctrl *c)
{
	return &c->m->cfg;
}

const char *ctrl_name(struct ctrl *c)
{
	return c->def->name;
}

void ctrl_queue(struct ctrl *c, const char *key)
{
	workq_add(c->q, key);
}

void ctrl_queue_after(struct ctrl *c, const char *key, int64_t ms)
{
	workq_add_after(c->q, key, ms);
}

void ctrl_queue_rate_limited(struct ctrl *c, const char *key)
{
	workq_add_rate_limited(c->q, key);
}

static void *worker_main(void *arg)
{
	struct ctrl *c = arg;
	char *key;

	while ((key = workq_get(c->q))) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int err = c->def->reconcile(c, key);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (err) {
			int64_t delay = workq_add_rate_limited(c->q, key);
			log_info("%s: %s: %s; again in %lld ms", c->def->name, key,
				 shoal_strerror(err), (long long)delay);
		} else {
			workq_forget(c->q, key);
		}
		pthread_mutex_lock(&c->mu);
		if (err)
			c->failed++;
		else
			c->ok++;
		for (size_t i = 0; i < NLAT; i++)
			if (secs <= lat_buckets[i])
				c->lat[i]++;
		c->lat_sum += secs;
		pthread_mutex_unlock(&c->mu);
		workq_done(c->q, key);
		free(key);
	}
	return NULL;
}

/* ---- expectations ---------------------------------------------------------------------- */

static struct expectation *expectation(struct ctrl *c, const char *key, bool create)
{
	struct expectation *e = hashmap_get(c->expect, key);
	if (e || !create)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->dels = hashmap_new(8);
	if (!e->dels || hashmap_put(c->expect, key, e, NULL)) {
		hashmap_free(e->dels);
		free(e);
		return NULL;
	}
	return e;
}

static void expectation_free(struct expectation *e)
{
	if (!e)
		return;
	hashmap_free(e->dels);
	free(e);
}

void ctrl_expect_creations(struct ctrl *c, const char *key, int n)
{
	pthread_mutex_lock(&c->mu);
	struct expectation *e = expectation(c, key, true);
	if (e) {
		e->adds += n;
		e->since = time(NULL);
	}
	pthread_mutex_unlock(&c->mu);
}

void ctrl_creation_observed(struct ctrl *c, const char *key)
{
	pthread_mutex_lock(&c->mu);
	struct expectation *e = expectation(c, key, false);
	if (e && e->adds > 0)
		e->adds--;
	pthread_mutex_unlock(&c->mu);
}

void ctrl_expect_deletion(struct ctrl *c, const char *key, const char *child_key)
{
	pthread_mutex_lock(&c->mu);
	struct expectation *e = expectation(c, key, true);
	if (e) {
		if (hashmap_put(e->dels, child_key, (void *)1, NULL))
			log_error("%s: out of memory recording an expectation", c->def->name);
		e->since = time(NULL);
	}
	pthread_mutex_unlock(&c->mu);
}

void ctrl_deletion_observed(struct ctrl *c, const char *key, const char *child_key)
{
	pthread_mutex_lock(&c->mu);
	struct expectation *e = expectation(c, key, false);
	if (e)
		hashmap_del(e->dels, child_key);
	pthread_mutex_unlock(&c->mu);
}

bool ctrl_expectations_met(struct ctrl *c, const char *key)
{
	bool met;
	pthread_mutex_lock(&c->mu);
	struct expectation *e = expectation(c, key, false);
	met = !e || (e->adds <= 0 && hashmap_count(e->dels) == 0) ||
	      time(NULL) - e->since > EXPECTATION_TTL_S;
	pthread_mutex_unlock(&c->mu);
	return met;
}

void ctrl_expectations_forget(struct ctrl *c, const char *key)
{
	pthread_mutex_lock(&c->mu);
	expectation_free(hashmap_del(c->expect, key));
	free(hashmap_del(c->changes, key));
	free(hashmap_del(c->written, key));
	pthread_mutex_unlock(&c->mu);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void ctrl_wrote(struct ctrl *c, const char *key, int64_t rev)
{
	pthread_mutex_lock(&c->mu);
	int64_t *w = hashmap_get(c->written, key);
	if (!w) {
		w = malloc(sizeof(*w));
		if (w && hashmap_put(c->written, key, w, NULL)) {
			free(w);
			w = NULL;
		}
		if (w)
			*w = rev;
	} else if (rev > *w) {
		*w = rev;
	}
	pthread_mutex_unlock(&c->mu);
}

bool ctrl_cache_behind(struct ctrl *c, const char *key, int64_t rev)
{
	bool behind = false;
	pthread_mutex_lock(&c->mu);
	int64_t *w = hashmap_get(c->written, key);
	if (w && *w > rev)
		behind = true;
	else if (w)
		free(hashmap_del(c->written, key)); /* caught up */
	pthread_mutex_unlock(&c->mu);
	return behind;
}

void ctrl_forget_written(struct ctrl *c, const char *key)
{
	pthread_mutex_lock(&c->mu);
	free(hashmap_del(c->written, key));
	pthread_mutex_unlock(&c->mu);
}

int64_t ctrl_since_change_ms(struct ctrl *c, const char *key, long value)
{
	int64_t now = mono_ms(), since = 0;
	pthread_mutex_lock(&c->mu);
	struct change *ch = hashmap_get(c->changes, key);
	if (!ch) {
		ch = calloc(1, sizeof(*ch));
		if (ch && hashmap_put(c->changes, key, ch, NULL)) {
			free(ch);
			ch = NULL;
		}
		if (ch) {
			ch->value = value;
			ch->at_ms = now;
		}
	} else if (ch->value != value) {
		ch->value = value;
		ch->at_ms = now;
	} else {
		since = now - ch->at_ms;
	}
	pthread_mutex_unlock(&c->mu);
	return since;
}

/* ---- ownership ------------------------------------------------------------------------ */

json_t *ctrl_refs_json(const struct ctrl_obj *o, const char *drop_uid)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < o->nrefs; i++) {
		const struct ctrl_ref *r = &o->refs[i];
		if (drop_uid && strcmp(r->uid, drop_uid) == 0)
			continue;
		json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", r->api_version, "kind",
				      r->kind, "name", r->name, "uid", r->uid);
		if (j && r->controller)
			json_object_set_new(j, "controller", json_true());
		if (j && r->block_owner_deletion)
			json_object_set_new(j, "blockOwnerDeletion", json_true());
		if (!j || json_array_append_new(arr, j)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* Writes child's ownerReferences (refs, taken) conditional on its resourceVersion. */
static int patch_refs(struct ctrl *c, struct ctrl_informer *inf, const struct ctrl_obj *child,
		      json_t *refs)
{
	char path[1024], rv[32];
	int err;

	if (!refs)
		return -ENOMEM;
	if (ctrl_path(inf->kind, child->o->ns, child->o->name, NULL, path, sizeof(path))) {
		json_decref(refs);
		return -ENAMETOOLONG;
	}
	snprintf(rv, sizeof(rv), "%lld", (long long)child->o->rev);
	json_t *patch = json_pack("{s:{s:o, s:s}}", "metadata", "ownerReferences", refs,
				  "resourceVersion", rv);
	if (!patch)
		return -ENOMEM;
	err = ctrl_write(c, "PATCH", path, patch, NULL, NULL, 0);
	json_decref(patch);
	return err;
}

int ctrl_claim(struct ctrl *c, struct ctrl_informer *children, const struct ctrl_obj *owner,
	       const char *owner_api_version, const char *owner_kind, struct ctrl_objs *out)
{
	struct ctrl_objs owned = { 0 }, orphans = { 0 };
	int err, first = 0;

	err = ctrl_owned(children, owner->uid, &owned);
	if (!err && owner->sel)
		err = ctrl_select(children, owner->o->ns, owner->sel, &orphans);
	for (size_t i = 0; !err && i < owned.n; i++) {
		struct ctrl_obj *ch = owned.v[i];
		int e = 0;
		if (owner->sel && selector_matches(owner->sel, ctrl_obj_labels(ch))) {
			e = objs_push(out, ch);
		} else if (!owner->deleting) {
			e = patch_refs(c, children, ch, ctrl_refs_json(ch, owner->uid));
			if (!e)
				log_info("%s: %s released %s: its labels no longer match",
					 c->def->name, owner->key, ch->key);
		}
		/* A child gone meanwhile is no error; a lost race is retried by the caller. */
		if (e && e != -ENOENT && !first)
			first = e;
	}
	for (size_t i = 0; !err && !owner->deleting && i < orphans.n; i++) {
		struct ctrl_obj *ch = orphans.v[i];
		int e = 0;
		if (ch->controller || ch->deleting)
			continue; /* someone else's, or ours and counted above */
		json_t *refs = ctrl_refs_json(ch, NULL);
		json_t *ref =
			ctrl_owner_ref(owner_api_version, owner_kind, owner->o->name, owner->uid);
		if (!refs || !ref || json_array_append_new(refs, ref)) {
			json_decref(refs);
			e = -ENOMEM;
		} else {
			e = patch_refs(c, children, ch, refs);
		}
		if (!e) {
			log_info("%s: %s adopted %s", c->def->name, owner->key, ch->key);
			e = objs_push(out, ch);
		}
		if (e && e != -ENOENT && !first)
			first = e;
	}
	ctrl_objs_free(&owned);
	ctrl_objs_free(&orphans);
	return err ? err : first;
}

/* ---- helpers ---------------------------------------------------------------------------- */

#define PARALLEL_MAX 16

struct parallel {
	void (*fn)(void *arg, size_t i);
	void *arg;
	size_t n;
	size_t next; /* atomically taken */
};

static void *parallel_main(void *arg)
{
	struct parallel *p = arg;
	size_t i;
	while ((i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED)) < p->n)
		p->fn(p->arg, i);
	return NULL;
}

void ctrl_parallel(size_t n, void (*fn)(void *arg, size_t i), void *arg)
{
	struct parallel p = { fn, arg, n, 0 };
	pthread_t th[PARALLEL_MAX];
	size_t nth = 0;

	/* the caller works too; threads that cannot be made leave it more to do */
	for (; nth + 1 < PARALLEL_MAX && nth + 1 < n; nth++)
		if (pthread_create(&th[nth], NULL, parallel_main, &p))
			break;
	parallel_main(&p);
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
}

void ctrl_event(struct ctrl *c, const struct ctrl_obj *o, const char *type, const char *reason,
		const char *fmt, ...)
{
	struct api_server *srv = ctrl_server(c);
	char msg[1024], av[64];
	va_list ap;

	if (!o || !srv->events)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_kind_api_version(o->o->kind, av, sizeof(av));
	struct event_ref ref = { .api_version = av, .kind = o->o->kind->kind, .ns = o->o->ns,
				 .name = o->o->name, .uid = o->uid };
	event_record(srv->events, &ref, type, reason, "%s", msg);
}

void ctrl_event_created(struct ctrl *c, const struct ctrl_obj *owner, int err,
			const json_t *made, const char *msg)
{
	if (err) {
		ctrl_event(c, owner, "Warning", "FailedCreate", "Error creating: %s",
			   msg && *msg ? msg : shoal_strerror(err));
		return;
	}
	const char *name =
		json_string_value(json_object_get(json_object_get(made, "metadata"), "name"));
	ctrl_event(c, owner, "Normal", "SuccessfulCreate", "Created pod: %s", name ? name : "");
}

void ctrl_event_deleted(struct ctrl *c, const struct ctrl_obj *owner, int err,
			const char *pod_name, const char *msg)
{
	if (err == -ENOENT)
		return;
	if (err)
		ctrl_event(c, owner, "Warning", "FailedDelete", "Error deleting: %s",
			   msg && *msg ? msg : shoal_strerror(err));
	else
		ctrl_event(c, owner, "Normal", "SuccessfulDelete", "Deleted pod: %s", pod_name);
}

void ctrl_split_key(const char *key, char *ns, size_t nslen, char *name, size_t namelen)
{
	const char *slash = strchr(key, '/');
	if (!slash) {
		snprintf(ns, nslen, "%s", "");
		snprintf(name, namelen, "%s", key);
		return;
	}
	snprintf(ns, nslen, "%.*s", (int)(slash - key), key);
	snprintf(name, namelen, "%s", slash + 1);
}

int ctrl_path(const struct api_kind *k, const char *ns, const char *name, const char *sub,
	      char *buf, size_t len)
{
	char av[64];
	size_t n = 0;

	api_kind_api_version(k, av, sizeof(av));
	n += snprintf(buf + n, len - n, "%s%s", *k->group ? "/apis/" : "/api/", av);
	if (k->namespaced && ns && *ns && n < len)
		n += snprintf(buf + n, len - n, "/namespaces/%s", ns);
	if (n < len)
		n += snprintf(buf + n, len - n, "/%s", k->resource);
	if (name && n < len)
		n += snprintf(buf + n, len - n, "/%s", name);
	if (sub && *sub && n < len)
		n += snprintf(buf + n, len - n, "/%s", sub);
	return n < len ? 0 : -ENAMETOOLONG;
}

int ctrl_write(struct ctrl *c, const char *method, const char *path, const json_t *body,
	       json_t **out, char *msg, size_t msglen)
{
	long code;
	json_t *resp = api_local_json(c->m->srv, method, path, body, &code);
	int err;

	if (out)
		*out = NULL;
	if (msg && msglen)
		msg[0] = '\0';
	if (code >= 200 && code < 300) {
		if (out)
			*out = resp;
		else
			json_decref(resp);
		return 0;
	}
	const char *reason = json_string_value(json_object_get(resp, "reason"));
	if (code == 404)
		err = -ENOENT;
	else if (code == 409)
		err = reason && strcmp(reason, "AlreadyExists") == 0 ? -EEXIST : -ECONFLICT;
	else if (code == 403)
		err = -EACCES;
	else if (code == 400 || code == 422)
		err = -EINVAL;
	else
		err = code ? -EIO : -ENOMEM;
	if (msg && msglen)
		snprintf(msg, msglen, "%s", resp ? api_local_message(resp) : shoal_strerror(err));
	if (code != 404 && code != 409)
		log_warn("%s: %s %s: %ld %s", c->def->name, method, path, code,
			 resp ? api_local_message(resp) : "");
	json_decref(resp);
	return err;
}

json_t *ctrl_owner_ref(const char *api_version, const char *kind, const char *name, const char *uid)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "apiVersion", api_version, "kind", kind,
			 "name", name, "uid", uid, "controller", 1, "blockOwnerDeletion", 1);
}

/* ---- the manager ---------------------------------------------------------------------- */

static void ctrl_free(struct ctrl *c)
{
	size_t it = 0;
	void *v;

	if (!c)
		return;
	if (c->def->fini && c->priv)
		c->def->fini(c);
	workq_free(c->q);
	while (c->expect && hashmap_next(c->expect, &it, NULL, &v))
		expectation_free(v);
	hashmap_free(c->expect);
	it = 0;
	while (c->changes && hashmap_next(c->changes, &it, NULL, &v))
		free(v);
	hashmap_free(c->changes);
	it = 0;
	while (c->written && hashmap_next(c->written, &it, NULL, &v))
		free(v);
	hashmap_free(c->written);
	pthread_mutex_destroy(&c->mu);
	free(c->threads);
	free(c);
}

struct ctrl_manager *ctrl_manager_start(struct api_server *srv, const struct ctrl_config *cfg,
					const struct ctrl_def *const *defs)
{
	struct ctrl_manager *m = calloc(1, sizeof(*m));
	struct ctrl **tail;
	int err = 0;

	if (!m)
		return NULL;
	m->srv = srv;
	if (cfg)
		m->cfg = *cfg;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cond, NULL);
	tail = &m->ctrls;
	for (const struct ctrl_def *const *d = defs; *d; d++) {
		struct ctrl *c = calloc(1, sizeof(*c));
		if (!c) {
			err = -ENOMEM;
			goto err;
		}
		c->m = m;
		c->def = *d;
		pthread_mutex_init(&c->mu, NULL);
		c->q = workq_new(NULL);
		c->expect = hashmap_new(64);
		c->changes = hashmap_new(16);
		c->written = hashmap_new(16);
		*tail = c;
		tail = &c->next;
		if (!c->q || !c->expect || !c->changes || !c->written) {
			err = -ENOMEM;
			goto err;
		}
		err = c->def->init(c);
		if (err) {
			log_error("controller %s: %s", c->def->name, shoal_strerror(err));
			goto err;
		}
	}
	/* Every informer lists before any handler runs, so that handlers find the others
	 * filled; then every object is announced once. */
	m->started = true;
	for (struct ctrl_informer *inf = m->informers; inf; inf = inf->next) {
		err = informer_list(inf, false);
		if (err) {
			log_error("controllers: list %s: %s", inf->kind->resource,
				  shoal_strerror(err));
			goto err;
		}
	}
	for (struct ctrl_informer *inf = m->informers; inf; inf = inf->next) {
		struct ctrl_objs all = { 0 };
		err = ctrl_list(inf, NULL, &all);
		for (size_t i = 0; !err && i < all.n; i++)
			call_handlers(inf, CTRL_ADDED, all.v[i], NULL);
		ctrl_objs_free(&all);
		if (err)
			goto err;
	}
	if (pthread_create(&m->thread, NULL, informer_main, m)) {
		err = -EAGAIN;
		goto err;
	}
	m->thread_started = true;
	for (struct ctrl *c = m->ctrls; c; c = c->next) {
		int n = c->def->workers > 0 ? c->def->workers : 1;
		c->threads = calloc(n, sizeof(*c->threads));
		if (!c->threads) {
			err = -ENOMEM;
			goto err;
		}
		for (; c->nthreads < n; c->nthreads++)
			if (pthread_create(&c->threads[c->nthreads], NULL, worker_main, c)) {
				err = -EAGAIN;
				goto err;
			}
	}
	log_info("controllers started");
	return m;
err:
	ctrl_manager_stop(m);
	errno = -err;
	return NULL;
}

void ctrl_manager_stop(struct ctrl_manager *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->mu);
	if (m->thread_started)
		pthread_join(m->thread, NULL);
	for (struct ctrl *c = m->ctrls; c; c = c->next) {
		if (c->q)
			workq_shutdown(c->q);
		for (int i = 0; i < c->nthreads; i++)
			pthread_join(c->threads[i], NULL);
	}
	while (m->ctrls) {
		struct ctrl *c = m->ctrls;
		m->ctrls = c->next;
		ctrl_free(c);
	}
	while (m->informers) {
		struct ctrl_informer *inf = m->informers;
		m->informers = inf->next;
		informer_free(inf);
	}
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cond);
	free(m);
}

int ctrl_manager_render(struct ctrl_manager *m, struct strbuf *out)
{
	static const struct {
		const char *name, *type, *help;
	} qf[] = {
		{ "shoal_controller_queue_depth", "gauge", "Keys ready for a worker." },
		{ "shoal_controller_queue_delayed", "gauge", "Keys waiting for their delay." },
		{ "shoal_controller_queue_adds_total", "counter", "Keys queued." },
		{ "shoal_controller_queue_retries_total", "counter",
		  "Keys queued again after a failed reconcile." },
	};
	static const struct {
		const char *name, *type, *help;
	} inff[] = {
		{ "shoal_controller_informer_objects", "gauge",
		  "Objects cached by the controllers' informers." },
		{ "shoal_controller_informer_events_total", "counter", "Events applied." },
		{ "shoal_controller_informer_lists_total", "counter",
		  "Lists of the watch cache (the first, and after falling behind)." },
	};
	size_t nc = 0, ni = 0, k = 0;
	for (struct ctrl *c = m->ctrls; c; c = c->next)
		nc++;
	for (struct ctrl_informer *inf = m->informers; inf; inf = inf->next)
		ni++;
	struct workq_stats *qs = calloc(nc + 1, sizeof(*qs));
	uint64_t(*is)[3] = calloc(ni + 1, sizeof(*is));
	if (!qs || !is) {
		free(qs);
		free(is);
		return -ENOMEM;
	}
	for (struct ctrl *c = m->ctrls; c; c = c->next)
		workq_stats(c->q, &qs[k++]);
	k = 0;
	for (struct ctrl_informer *inf = m->informers; inf; inf = inf->next, k++) {
		pthread_rwlock_rdlock(&inf->lock);
		is[k][0] = hashmap_count(inf->objs);
		is[k][1] = inf->events;
		is[k][2] = inf->relists;
		pthread_rwlock_unlock(&inf->lock);
	}
	for (size_t f = 0; f < sizeof(qf) / sizeof(qf[0]); f++) {
		strbuf_printf(out, "# HELP %s %s By controller.\n# TYPE %s %s\n", qf[f].name,
			      qf[f].help, qf[f].name, qf[f].type);
		k = 0;
		for (struct ctrl *c = m->ctrls; c; c = c->next, k++) {
			unsigned long long v = f == 0	? qs[k].depth
					       : f == 1 ? qs[k].waiting
					       : f == 2 ? qs[k].adds
							: qs[k].retries;
			strbuf_printf(out, "%s{controller=\"%s\"} %llu\n", qf[f].name, c->def->name,
				      v);
		}
	}
	strbuf_printf(out, "# HELP shoal_controller_reconciles_total Reconciles by controller "
			   "and result.\n# TYPE shoal_controller_reconciles_total counter\n");
	for (struct ctrl *c = m->ctrls; c; c = c->next) {
		pthread_mutex_lock(&c->mu);
		strbuf_printf(out,
			      "shoal_controller_reconciles_total{controller=\"%s\",result="
			      "\"success\"} %llu\n"
			      "shoal_controller_reconciles_total{controller=\"%s\",result="
			      "\"error\"} %llu\n",
			      c->def->name, (unsigned long long)c->ok, c->def->name,
			      (unsigned long long)c->failed);
		pthread_mutex_unlock(&c->mu);
	}
	strbuf_printf(out, "# HELP shoal_controller_reconcile_duration_seconds Time per "
			   "reconcile, by controller.\n"
			   "# TYPE shoal_controller_reconcile_duration_seconds histogram\n");
	for (struct ctrl *c = m->ctrls; c; c = c->next) {
		pthread_mutex_lock(&c->mu);
		for (size_t i = 0; i < NLAT; i++)
			strbuf_printf(out,
				      "shoal_controller_reconcile_duration_seconds_bucket{"
				      "controller=\"%s\",le=\"%g\"} %llu\n",
				      c->def->name, lat_buckets[i], (unsigned long long)c->lat[i]);
		strbuf_printf(
			out,
			"shoal_controller_reconcile_duration_seconds_bucket{controller="
			"\"%s\",le=\"+Inf\"} %llu\n"
			"shoal_controller_reconcile_duration_seconds_sum{controller=\"%s\"} "
			"%.6f\n"
			"shoal_controller_reconcile_duration_seconds_count{controller=\"%s\"} "
			"%llu\n",
			c->def->name, (unsigned long long)(c->ok + c->failed), c->def->name,
			c->lat_sum, c->def->name, (unsigned long long)(c->ok + c->failed));
		pthread_mutex_unlock(&c->mu);
	}
	for (size_t f = 0; f < sizeof(inff) / sizeof(inff[0]); f++) {
		strbuf_printf(out, "# HELP %s %s By resource.\n# TYPE %s %s\n", inff[f].name,
			      inff[f].help, inff[f].name, inff[f].type);
		k = 0;
		for (struct ctrl_informer *inf = m->informers; inf; inf = inf->next, k++)
			strbuf_printf(out, "%s{resource=\"%s\"} %llu\n", inff[f].name,
				      inf->kind->resource, (unsigned long long)is[k][f]);
	}
	free(qs);
	free(is);
	return out->err;
}

struct ctrl_obj *ctrl_controller_of(struct ctrl_informer *owners, const char *kind,
				    const struct ctrl_obj *o)
{
	if (!o || !o->controller || strcmp(o->controller->kind, kind) != 0)
		return NULL;
	struct ctrl_obj *owner = ctrl_get_uid(owners, o->controller->uid);
	if (owner && strcmp(owner->o->ns, o->o->ns) != 0) {
		ctrl_obj_unref(owner);
		return NULL;
	}
	return owner;
}

void ctrl_on_owner(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		   const struct ctrl_obj *old)
{
	(void)old;
	if (ev == CTRL_DELETED)
		ctrl_expectations_forget(c, now->key);
	ctrl_queue(c, now->key);
}
