// SPDX-License-Identifier: Apache-2.0
/*
 * The agent's data plane sync (see dpsync.h): three informers (Services, EndpointSlices,
 * Nodes) feed one sync thread that keeps this node's BPF maps, or its nftables service
 * proxy, and its routes to other nodes' pod CIDRs equal to the API.
 *
 * The design choice: handlers run on the informers' threads and only record *which*
 * Service changed (and keep an index Service -> its slices, so that a change costs the
 * slices of one Service, never a list of all); the sync thread reads the current objects,
 * translates, and compares with what it applied last. Being level-triggered, a burst of
 * events for one Service is one apply, a relist is harmless, and a failed apply is simply
 * tried again a second later.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "dpsync.h"
#include "dpsync_int.h"
#include "hashmap.h"
#include "informer.h"
#include "log.h"
#include "nl.h"
#include "strbuf.h"

#define RETRY_MS	  1000
#define RETRY_MAX_MS	  60000
#define NODES_INTERVAL_MS 200
#define SYNCED_ALL	  7u

/* Event -> applied latency buckets, seconds. */
static const double lat_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1 };
#define N_LAT (sizeof(lat_bounds) / sizeof(lat_bounds[0]))

/* The EndpointSlices of one Service, by slice name. */
struct slice_set {
	size_t n, cap;
	char **names;
	json_t **objs;
};

/* What was applied for one Service (for the next comparison and for describe). */
struct applied {
	struct xl_service xl;
};

/* A Service whose apply failed: tried again after a back-off that doubles up to a minute. */
struct retry {
	int64_t due; /* ns */
	unsigned attempts;
	bool pending; /* not yet noted again */
};

/* A node's part in routes and pod CIDRs. */
struct node_net {
	struct xl_node_net net;
};

struct dpsync {
	struct dpsync_config cfg;
	char *strs[11]; /* the cfg strings, copied */
	uint32_t node_ip;
	struct nft_cidr pod_cidr;
	struct xl_node xn;

	struct informer *svc_inf, *eps_inf, *node_inf;

	/* Handler side (informer threads) */
	pthread_mutex_t mu;
	struct hashmap *dirty;	/* "ns/name" -> first-noted time (ns, as a pointer) */
	int64_t first_dirty_ns; /* when dirty last went from empty to not */
	struct hashmap *slices; /* "ns/svc" -> struct slice_set */
	struct hashmap *nodes;	/* name -> struct node_net */
	bool nodes_changed, resync;
	unsigned synced; /* bits: 1 services, 2 slices, 4 nodes */
	int efd;

	/* Sync side: the data plane handles and what was applied (describe, metrics) */
	pthread_mutex_t amu;
	struct dp *dp;
	struct nft_engine *nft;
	struct nft_cidr *nft_cidrs; /* the pod CIDRs nft was opened with */
	size_t n_nft_cidrs;
	struct dpsync_net net;
	bool net_open;
	struct hashmap *applied;  /* "ns/name" -> struct applied */
	struct hashmap *retry;	  /* "ns/name" -> struct retry */
	int64_t nodes_applied_ns; /* the last route and pod CIDR sync */
	char xdp_mode[16];

	pthread_t thread;
	bool thread_started;
	atomic_bool stop, ready;

	/* Counters (amu) */
	uint64_t full_syncs, incr_syncs, svc_applies, svc_unchanged, upserts, deletes, errors;
	uint64_t lat_count, lat_bucket[N_LAT + 1];
	double lat_sum, lat_max;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void wake(struct dpsync *d)
{
	uint64_t one = 1;

	if (write(d->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("dpsync: wake the sync thread: %s", strerror(errno));
}

static const char *jstr(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int obj_key(const json_t *obj, const char *name, char *buf, size_t len)
{
	const json_t *meta = json_object_get(obj, "metadata");
	const char *ns = jstr(meta, "namespace");

	if (!name)
		name = jstr(meta, "name");
	if (!ns || !name || (size_t)snprintf(buf, len, "%s/%s", ns, name) >= len)
		return -EINVAL;
	return 0;
}

/* Notes a Service to reconcile (mu held). */
static void mark(struct dpsync *d, const char *key, int64_t t)
{
	if (hashmap_get(d->dirty, key))
		return;
	if (!hashmap_count(d->dirty))
		d->first_dirty_ns = t;
	if (hashmap_put(d->dirty, key, (void *)(intptr_t)t, NULL))
		log_error("dpsync: out of memory noting service %s", key);
}

/* ---- informer handlers ---------------------------------------------------------------- */

static void svc_event(void *arg, enum informer_event type, json_t *obj, json_t *old)
{
	struct dpsync *d = arg;
	char key[256];

	(void)type;
	(void)old;
	if (obj_key(obj, NULL, key, sizeof(key)))
		return;
	pthread_mutex_lock(&d->mu);
	mark(d, key, now_ns());
	pthread_mutex_unlock(&d->mu);
	wake(d);
}

static const char *slice_service(const json_t *slice)
{
	return slice ? jstr(json_object_get(json_object_get(slice, "metadata"), "labels"),
			    DPSYNC_SVC_LABEL)
		     : NULL;
}

static void set_remove(struct dpsync *d, const char *key, const char *slice)
{
	struct slice_set *s = hashmap_get(d->slices, key);

	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->names[i], slice))
			continue;
		free(s->names[i]);
		json_decref(s->objs[i]);
		s->names[i] = s->names[s->n - 1];
		s->objs[i] = s->objs[s->n - 1];
		s->n--;
		break;
	}
	if (!s->n) {
		hashmap_del(d->slices, key);
		free(s->names);
		free(s->objs);
		free(s);
	}
}

static int set_put(struct dpsync *d, const char *key, const char *slice, json_t *obj)
{
	struct slice_set *s = hashmap_get(d->slices, key);

	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || hashmap_put(d->slices, key, s, NULL)) {
			free(s);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < s->n; i++) {
		if (!strcmp(s->names[i], slice)) {
			json_decref(s->objs[i]);
			s->objs[i] = json_incref(obj);
			return 0;
		}
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 4;
		char **nn = realloc(s->names, cap * sizeof(*nn));

		if (!nn)
			return -ENOMEM;
		s->names = nn;
		json_t **no = realloc(s->objs, cap * sizeof(*no));

		if (!no)
			return -ENOMEM;
		s->objs = no;
		s->cap = cap;
	}
	s->names[s->n] = strdup(slice);
	if (!s->names[s->n])
		return -ENOMEM;
	s->objs[s->n++] = json_incref(obj);
	return 0;
}

static void eps_event(void *arg, enum informer_event type, json_t *obj, json_t *old)
{
	struct dpsync *d = arg;
	const char *name = jstr(json_object_get(obj, "metadata"), "name");
	const char *now = type == INF_DELETED ? NULL : slice_service(obj);
	const char *was = type == INF_DELETED ? slice_service(obj) : slice_service(old);
	char key[256];
	int64_t t = now_ns();

	if (!name)
		return;
	pthread_mutex_lock(&d->mu);
	if (was && (!now || strcmp(was, now)) && !obj_key(obj, was, key, sizeof(key))) {
		set_remove(d, key, name);
		mark(d, key, t);
	}
	if (now && !obj_key(obj, now, key, sizeof(key))) {
		if (set_put(d, key, name, obj))
			log_error("dpsync: out of memory indexing EndpointSlice %s", name);
		mark(d, key, t);
	}
	pthread_mutex_unlock(&d->mu);
	wake(d);
}

static void node_event(void *arg, enum informer_event type, json_t *obj, json_t *old)
{
	struct dpsync *d = arg;
	const char *name = jstr(json_object_get(obj, "metadata"), "name");
	struct node_net *nn, *prev;
	bool changed = false;

	(void)old;
	if (!name)
		return;
	pthread_mutex_lock(&d->mu);
	prev = hashmap_get(d->nodes, name);
	if (type == INF_DELETED) {
		if (prev) {
			hashmap_del(d->nodes, name);
			free(prev);
			changed = true;
		}
	} else {
		nn = calloc(1, sizeof(*nn));
		if (nn) {
			xl_node_net(obj, &nn->net);
			/* Status heartbeats change nothing here: only CIDR and address count. */
			if (prev && !memcmp(&prev->net, &nn->net, sizeof(nn->net))) {
				free(nn);
			} else if (hashmap_put(d->nodes, name, nn, NULL)) {
				free(nn);
				log_error("dpsync: out of memory noting node %s", name);
			} else {
				free(prev);
				changed = true;
			}
		}
	}
	if (changed)
		d->nodes_changed = true;
	pthread_mutex_unlock(&d->mu);
	if (changed)
		wake(d);
}

static void synced(struct dpsync *d, unsigned bit)
{
	pthread_mutex_lock(&d->mu);
	d->synced |= bit;
	d->resync = true; /* also after a relist: level-triggered, unchanged costs nothing */
	pthread_mutex_unlock(&d->mu);
	wake(d);
}

static void svc_synced(void *arg)
{
	synced(arg, 1);
}

static void eps_synced(void *arg)
{
	synced(arg, 2);
}

static void node_synced(void *arg)
{
	synced(arg, 4);
}

/* ---- applying ------------------------------------------------------------------------- */

/* The slices of a Service, each with a new reference (mu taken here). */
static int slices_of(struct dpsync *d, const char *key, json_t ***out, size_t *n)
{
	struct slice_set *s;
	int err = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&d->mu);
	s = hashmap_get(d->slices, key);
	if (s && s->n) {
		*out = calloc(s->n, sizeof(**out));
		if (!*out) {
			err = -ENOMEM;
		} else {
			for (size_t i = 0; i < s->n; i++)
				(*out)[i] = json_incref(s->objs[i]);
			*n = s->n;
		}
	}
	pthread_mutex_unlock(&d->mu);
	return err;
}

static void refs_free(json_t **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(v[i]);
	free(v);
}

static int translate(struct dpsync *d, const char *key, const json_t *svc, struct xl_service *xl)
{
	json_t **sl;
	size_t n;
	int err = slices_of(d, key, &sl, &n);

	if (!err)
		err = xl_service(svc, sl, n, &d->xn, xl);
	refs_free(sl, n);
	return err;
}

static bool port_named(const struct xl_service *xl, const char *name, bool nft)
{
	for (size_t i = 0; xl && i < xl->n_ports; i++)
		if (!strcmp(nft ? xl->ports[i].nft_name : xl->ports[i].dp_name, name))
			return true;
	return false;
}

/* Programs one Service's ports and removes the ones it no longer has (amu held). */
static int apply_service(struct dpsync *d, const char *key, const struct xl_service *xl,
			 const struct xl_service *prev)
{
	int err = 0, e;

	if (!d->dp && !d->nft)
		return -ENOTCONN; /* nftables could not be opened: tried again */

	for (size_t i = 0; i < xl->n_ports; i++) {
		const struct xl_port *p = &xl->ports[i];

		if (d->dp) {
			struct dp_service svc;
			struct dp_backend *be;
			size_t n;

			e = xl_to_dp(p, d->node_ip, &svc, &be, &n);
			if (e == -ENOENT) {
				e = dp_service_delete(d->dp, p->dp_name);
				d->deletes += !e;
				e = e == -ENOENT ? 0 : e;
			} else if (!e) {
				e = dp_service_upsert(d->dp, &svc, be, n);
				d->upserts++;
				/* No room for another Maglev table (or too many backends for
				 * one): north-south traffic then picks at random. */
				if ((e == -E2BIG || e == -ENOSPC) && (svc.flags & SVC_F_MAGLEV)) {
					log_warn("dpsync: service %s: no Maglev table (%s); its "
						 "external traffic picks backends at random",
						 p->dp_name, strerror(-e));
					svc.flags &= (uint8_t)~SVC_F_MAGLEV;
					e = dp_service_upsert(d->dp, &svc, be, n);
				}
			}
			free(be);
		} else {
			struct nft_service ns;

			e = xl_to_nft(p, &ns);
			if (e == -ENOENT) {
				e = nft_service_delete(d->nft, p->nft_name);
				d->deletes += !e;
				e = e == -ENOENT ? 0 : e;
			} else if (!e) {
				e = nft_service_upsert(d->nft, &ns);
				d->upserts++;
				if (e)
					log_warn("dpsync: service %s: %s", p->nft_name,
						 nft_last_error(d->nft));
			}
			nft_service_free_arrays(&ns);
		}
		if (e) {
			log_warn("dpsync: service %s port %u: apply: %s", key, p->port,
				 strerror(-e));
			if (!err)
				err = e;
		}
	}
	for (size_t i = 0; prev && i < prev->n_ports; i++) {
		const struct xl_port *p = &prev->ports[i];

		if (port_named(xl, d->dp ? p->dp_name : p->nft_name, !d->dp))
			continue;
		e = d->dp ? dp_service_delete(d->dp, p->dp_name)
			  : nft_service_delete(d->nft, p->nft_name);
		if (!e)
			d->deletes++;
		else if (e != -ENOENT && !err)
			err = e;
	}
	return err;
}

/* amu held */
static void retry_later(struct dpsync *d, const char *key)
{
	struct retry *r = hashmap_get(d->retry, key);
	int64_t ms;

	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r || hashmap_put(d->retry, key, r, NULL)) {
			free(r);
			log_error("dpsync: out of memory noting a retry of %s", key);
			return;
		}
	}
	ms = (int64_t)RETRY_MS << (r->attempts < 6 ? r->attempts : 6);
	r->attempts++;
	r->due = now_ns() + (ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS) * 1000000LL;
	r->pending = true;
}

static void retry_clear(struct dpsync *d, const char *key)
{
	free(hashmap_del(d->retry, key));
}

static void applied_free(struct applied *a)
{
	if (!a)
		return;
	xl_service_free(&a->xl);
	free(a);
}

static void note_latency(struct dpsync *d, int64_t since)
{
	double s = since > 0 ? (double)(now_ns() - since) / 1e9 : 0;
	size_t b = 0;

	if (since <= 0)
		return;
	while (b < N_LAT && s > lat_bounds[b])
		b++;
	d->lat_bucket[b]++;
	d->lat_count++;
	d->lat_sum += s;
	if (s > d->lat_max)
		d->lat_max = s;
}

/* One Service, as it is now in the cache (amu held). */
static void sync_one(struct dpsync *d, const char *key, int64_t since)
{
	char ns[128], *name;
	struct applied *prev = hashmap_get(d->applied, key), *a;
	json_t *svc;
	int err;

	snprintf(ns, sizeof(ns), "%s", key);
	name = strchr(ns, '/');
	if (!name)
		return;
	*name++ = '\0';
	a = calloc(1, sizeof(*a));
	if (!a) {
		d->errors++;
		return;
	}
	svc = informer_get(d->svc_inf, ns, name);
	err = translate(d, key, svc, &a->xl);
	json_decref(svc);
	if (err) {
		d->errors++;
		applied_free(a);
		return;
	}
	if (prev && prev->xl.hash == a->xl.hash) {
		retry_clear(d, key);
		d->svc_unchanged++;
		applied_free(a);
		note_latency(d, since);
		return;
	}
	if (!prev && !a->xl.n_ports) {
		applied_free(a);
		return;
	}
	d->svc_applies++;
	err = apply_service(d, key, &a->xl, prev ? &prev->xl : NULL);
	if (err) {
		d->errors++;
		applied_free(a);
		/* Level-triggered: the whole Service is applied again after a back-off. */
		retry_later(d, key);
		return;
	}
	retry_clear(d, key);
	hashmap_del(d->applied, key);
	applied_free(prev);
	if (a->xl.n_ports) {
		if (hashmap_put(d->applied, key, a, NULL)) {
			applied_free(a);
			d->errors++;
		}
	} else {
		applied_free(a);
	}
	note_latency(d, since);
}

static int cidr_cmp(const void *a, const void *b)
{
	const struct nft_cidr *x = a, *y = b;

	if (x->addr.s_addr != y->addr.s_addr)
		return ntohl(x->addr.s_addr) < ntohl(y->addr.s_addr) ? -1 : 1;
	return (int)x->prefix - (int)y->prefix;
}

static void cidr_mask(struct nft_cidr *c)
{
	c->addr.s_addr &= c->prefix ? htonl(~0u << (32 - c->prefix)) : 0;
}

/* Pod CIDRs of every node (this one's included) and the routes to the others' (mu taken). */
static int nodes_snapshot(struct dpsync *d, struct nft_cidr **cidrs, size_t *n_cidrs,
			  struct net_route **routes, size_t *n_routes)
{
	size_t it = 0, nc = 0, nr = 0, cap;
	const char *name;
	void *v;

	pthread_mutex_lock(&d->mu);
	cap = hashmap_count(d->nodes) + 1;
	*cidrs = calloc(cap, sizeof(**cidrs));
	*routes = calloc(cap, sizeof(**routes));
	if (!*cidrs || !*routes) {
		pthread_mutex_unlock(&d->mu);
		free(*cidrs);
		free(*routes);
		return -ENOMEM;
	}
	(*cidrs)[nc++] = d->pod_cidr;
	while (hashmap_next(d->nodes, &it, &name, &v)) {
		const struct node_net *n = v;
		struct nft_cidr c = n->net.pod_cidr;

		if (!n->net.has_cidr)
			continue;
		cidr_mask(&c);
		(*cidrs)[nc++] = c;
		if (!strcmp(name, d->cfg.node) || !n->net.has_ip)
			continue;
		(*routes)[nr].dst = c;
		(*routes)[nr].via = n->net.internal_ip;
		snprintf((*routes)[nr].node, sizeof((*routes)[nr].node), "%s", name);
		nr++;
	}
	d->nodes_changed = false;
	pthread_mutex_unlock(&d->mu);
	qsort(*cidrs, nc, sizeof(**cidrs), cidr_cmp);
	if (nc) {
		size_t w = 1;

		for (size_t i = 1; i < nc; i++)
			if (cidr_cmp(&(*cidrs)[i], &(*cidrs)[w - 1]))
				(*cidrs)[w++] = (*cidrs)[i];
		nc = w;
	}
	*n_cidrs = nc;
	*n_routes = nr;
	return 0;
}

/*
 * nftables: the proxy (nftables mode) or the node rules only (BPF mode), for these pod
 * CIDRs. A different set of CIDRs is another configuration: the engine is opened again and
 * replaces the table at its next sync. Returns 1 when it was (re)opened.
 */
static int nft_ensure(struct dpsync *d, struct nft_cidr *cidrs, size_t n)
{
	struct nft_config c = { .pod_cidrs = cidrs,
				.n_pod_cidrs = n,
				.proxy = d->cfg.mode == DPSYNC_NFTABLES,
				.nodeports = d->cfg.mode == DPSYNC_NFTABLES };
	struct nft_cidr *copy;

	if (d->nft && n == d->n_nft_cidrs && !memcmp(cidrs, d->nft_cidrs, n * sizeof(*cidrs)))
		return 0;
	copy = calloc(n + 1, sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	memcpy(copy, cidrs, n * sizeof(*cidrs));
	nft_close(d->nft);
	d->nft = nft_open(&c);
	if (!d->nft) {
		int err = -errno;

		free(copy);
		free(d->nft_cidrs);
		d->nft_cidrs = NULL;
		d->n_nft_cidrs = 0;
		log_warn("dpsync: open nftables: %s", strerror(-err));
		return err;
	}
	free(d->nft_cidrs);
	d->nft_cidrs = copy;
	d->n_nft_cidrs = n;
	return 1;
}

/* nftables again after it was reopened for other pod CIDRs: what is applied, as it is. */
static int nft_reapply(struct dpsync *d)
{
	struct nft_service *ns = NULL;
	size_t it = 0, n = 0, cap = 0;
	const char *k;
	void *v;
	int err = 0;

	if (!d->nft)
		return -ENOTCONN;
	while (!d->dp && !err && hashmap_next(d->applied, &it, &k, &v)) {
		const struct applied *a = v;

		for (size_t j = 0; !err && j < a->xl.n_ports; j++) {
			if (n == cap) {
				size_t nc = cap ? 2 * cap : 64;
				struct nft_service *t = realloc(ns, nc * sizeof(*t));

				if (!t) {
					err = -ENOMEM;
					break;
				}
				ns = t;
				cap = nc;
			}
			err = xl_to_nft(&a->xl.ports[j], &ns[n]);
			if (!err)
				n++;
			else if (err == -ENOENT)
				err = 0;
		}
	}
	if (!err) {
		err = nft_sync(d->nft, ns, n);
		if (err)
			log_warn("dpsync: nftables after a pod CIDR change: %s",
				 nft_last_error(d->nft));
	}
	for (size_t i = 0; i < n; i++)
		nft_service_free_arrays(&ns[i]);
	free(ns);
	return err;
}

/*
 * Routes and the pod CIDRs nftables knows, from the nodes as they are now. With reapply,
 * a reopened nftables engine gets what is applied again (else the caller syncs it).
 */
static int nodes_apply(struct dpsync *d, bool reapply)
{
	struct nft_cidr *cidrs;
	struct net_route *routes;
	size_t nc, nr;
	int err = nodes_snapshot(d, &cidrs, &nc, &routes, &nr), e;

	if (err)
		return err;
	d->nodes_applied_ns = now_ns();
	err = net_routes_sync(&d->net, routes, nr);
	e = nft_ensure(d, cidrs, nc);
	if (e > 0 && reapply)
		e = nft_reapply(d);
	if (e < 0 && !err)
		err = e;
	free(cidrs);
	free(routes);
	return err;
}

/* Everything, from the caches: what the API no longer has goes (amu held). */
static int sync_full(struct dpsync *d)
{
	struct dp_service_spec *specs = NULL;
	struct nft_service *nspecs = NULL;
	struct hashmap *applied = NULL, *old_dirty;
	struct applied **as = NULL;
	size_t n_svc = 0, n_specs = 0, n_as = 0, it = 0;
	json_t **svcs = NULL;
	const char *k;
	void *v;
	int err, e;

	/* Whatever was noted so far is covered by this sync. */
	pthread_mutex_lock(&d->mu);
	old_dirty = d->dirty;
	d->dirty = hashmap_new(64);
	d->resync = false;
	pthread_mutex_unlock(&d->mu);
	if (!d->dirty) {
		d->dirty = old_dirty;
		return -ENOMEM;
	}
	err = nodes_apply(d, false);
	if (err)
		d->errors++;
	e = informer_list(d->svc_inf, &svcs, &n_svc);
	applied = hashmap_new(n_svc + 16);
	as = calloc(n_svc + 1, sizeof(*as));
	if (e || !applied || !as) {
		err = e ? e : -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_svc; i++) {
		char key[256];
		struct applied *a;

		if (obj_key(svcs[i], NULL, key, sizeof(key)))
			continue;
		a = calloc(1, sizeof(*a));
		if (!a || translate(d, key, svcs[i], &a->xl)) {
			free(a);
			err = -ENOMEM;
			goto out;
		}
		if (!a->xl.n_ports || hashmap_put(applied, key, a, NULL)) {
			applied_free(a);
			continue;
		}
		as[n_as++] = a;
		n_specs += a->xl.n_ports;
	}
	specs = calloc(n_specs + 1, sizeof(*specs));
	nspecs = calloc(n_specs + 1, sizeof(*nspecs));
	if (!specs || !nspecs) {
		err = -ENOMEM;
		goto out;
	}
	n_specs = 0;
	for (size_t i = 0; i < n_as; i++) {
		for (size_t j = 0; j < as[i]->xl.n_ports; j++) {
			const struct xl_port *p = &as[i]->xl.ports[j];
			struct dp_backend *be;
			size_t n;

			if (d->dp) {
				e = xl_to_dp(p, d->node_ip, &specs[n_specs].svc, &be, &n);
				if (e == -ENOENT)
					continue;
				if (e) {
					err = e;
					goto out;
				}
				specs[n_specs].backends = be;
				specs[n_specs++].n_backends = n;
			} else {
				e = xl_to_nft(p, &nspecs[n_specs]);
				if (e == -ENOENT)
					continue;
				if (e) {
					err = e;
					goto out;
				}
				n_specs++;
			}
		}
	}
	if (d->dp) {
		e = dp_sync(d->dp, specs, n_specs);
		if (e)
			log_warn("dpsync: full sync of the BPF maps: %s", strerror(-e));
		/* BPF mode: nftables holds the node rules only. */
		if (d->nft && nft_sync(d->nft, NULL, 0)) {
			log_warn("dpsync: node nftables rules: %s", nft_last_error(d->nft));
			d->errors++;
		}
	} else if (d->nft) {
		e = nft_sync(d->nft, nspecs, n_specs);
		if (e)
			log_warn("dpsync: full sync of the nftables proxy: %s",
				 nft_last_error(d->nft));
	} else {
		err = -ENOTCONN;
		goto out;
	}
	if (e) {
		/* Applied in part: what failed is tried again Service by Service. */
		err = e;
		it = 0;
		while (hashmap_next(applied, &it, &k, &v))
			retry_later(d, k);
	} else if (hashmap_count(d->retry)) {
		/* All applied: earlier failures start their back-off afresh. */
		struct hashmap *fresh = hashmap_new(16);

		if (fresh) {
			it = 0;
			while (hashmap_next(d->retry, &it, &k, &v))
				free(v);
			hashmap_free(d->retry);
			d->retry = fresh;
		}
	}
	/* The new record of what is applied replaces the old one. */
	it = 0;
	while (hashmap_next(d->applied, &it, &k, &v))
		applied_free(v);
	hashmap_free(d->applied);
	d->applied = applied;
	applied = NULL;
	d->full_syncs++;
	/* Latency counts changes; the first sync after start has only the initial lists. */
	it = 0;
	while (atomic_load(&d->ready) && hashmap_next(old_dirty, &it, &k, &v))
		note_latency(d, (int64_t)(intptr_t)v);
	hashmap_free(old_dirty);
	old_dirty = NULL;
out:
	if (applied) {
		it = 0;
		while (hashmap_next(applied, &it, &k, &v))
			applied_free(v);
		hashmap_free(applied);
	}
	for (size_t i = 0; specs && i < n_specs; i++)
		free((void *)specs[i].backends);
	for (size_t i = 0; nspecs && i < n_specs; i++)
		nft_service_free_arrays(&nspecs[i]);
	free(specs);
	free(nspecs);
	free(as);
	informer_list_free(svcs, n_svc);
	if (old_dirty) {
		/* Nothing applied: the whole sync again in a moment. */
		pthread_mutex_lock(&d->mu);
		d->resync = true;
		pthread_mutex_unlock(&d->mu);
		hashmap_free(old_dirty);
	}
	return err;
}

/* ---- the sync thread ------------------------------------------------------------------ */

static void *sync_main(void *arg)
{
	struct dpsync *d = arg;
	int timeout = -1;

	while (!atomic_load(&d->stop)) {
		struct pollfd pf[2] = { { .fd = d->efd, .events = POLLIN },
					{ .fd = d->net.mon ? nl_monitor_fd(d->net.mon) : -1,
					  .events = POLLIN } };
		struct hashmap *batch = NULL;
		bool full, nodes, links = false;
		unsigned all;
		int64_t t, due;
		uint64_t cnt;

		if (poll(pf, 2, timeout) < 0 && errno != EINTR) {
			log_error("dpsync: poll: %s", strerror(errno));
			break;
		}
		if ((pf[0].revents & POLLIN) && read(d->efd, &cnt, sizeof(cnt)) < 0 &&
		    errno != EAGAIN)
			log_warn("dpsync: read eventfd: %s", strerror(errno));
		if (atomic_load(&d->stop))
			break;
		if (pf[1].revents & POLLIN) {
			int e = nl_monitor_drain(d->net.mon);

			links = e != 0; /* changes, or some were lost (-ENOBUFS): list again */
		}
		timeout = -1;
		t = now_ns();

		pthread_mutex_lock(&d->amu);
		if (links && net_pod_ifs_sync(&d->net))
			d->errors++;
		/* Retries that are due go back with the rest. */
		if (hashmap_count(d->retry)) {
			size_t it = 0;
			const char *k;
			void *v;
			int64_t next = INT64_MAX;
			char **due_keys = calloc(hashmap_count(d->retry), sizeof(*due_keys));
			size_t n_due = 0;

			while (due_keys && hashmap_next(d->retry, &it, &k, &v)) {
				struct retry *r = v;

				if (!r->pending)
					continue;
				if (r->due <= t) {
					r->pending = false;
					due_keys[n_due++] = strdup(k);
				} else if (r->due < next) {
					next = r->due;
				}
			}
			pthread_mutex_lock(&d->mu);
			for (size_t i = 0; i < n_due; i++) {
				if (due_keys[i])
					mark(d, due_keys[i], t);
				free(due_keys[i]);
			}
			pthread_mutex_unlock(&d->mu);
			free(due_keys);
			if (next != INT64_MAX)
				timeout = (int)((next - t) / 1000000 + 1);
		}

		pthread_mutex_lock(&d->mu);
		all = d->synced;
		full = d->resync || !atomic_load(&d->ready);
		nodes = d->nodes_changed;
		due = d->first_dirty_ns + DPSYNC_COALESCE_MS * 1000000LL;
		if (all == SYNCED_ALL && !full && hashmap_count(d->dirty)) {
			if (t < due) {
				/* Let the burst settle; at most DPSYNC_COALESCE_MS after its start. */
				int ms = (int)((due - t + 999999) / 1000000);

				timeout = timeout < 0 || ms < timeout ? ms : timeout;
			} else {
				struct hashmap *fresh = hashmap_new(64);

				if (fresh) {
					batch = d->dirty;
					d->dirty = fresh;
				}
			}
		}
		pthread_mutex_unlock(&d->mu);

		if (all != SYNCED_ALL) {
			pthread_mutex_unlock(&d->amu);
			continue;
		}
		if (full) {
			if (sync_full(d)) {
				d->errors++;
				timeout = timeout < 0 || timeout > RETRY_MS ? RETRY_MS : timeout;
			}
			if (!atomic_load(&d->ready)) {
				atomic_store(&d->ready, true);
				log_info("dpsync: node %s: data plane in sync with the API (%zu "
					 "services)",
					 d->cfg.node, hashmap_count(d->applied));
			}
			pthread_mutex_unlock(&d->amu);
			continue;
		}
		if (nodes) {
			/* At most every NODES_INTERVAL_MS: nodes joining in numbers cost little. */
			int64_t next = d->nodes_applied_ns + NODES_INTERVAL_MS * 1000000LL;

			if (t >= next) {
				if (nodes_apply(d, true))
					d->errors++;
			} else {
				int ms = (int)((next - t) / 1000000 + 1);

				timeout = timeout < 0 || ms < timeout ? ms : timeout;
			}
		}
		if (batch) {
			size_t it = 0;
			const char *k;
			void *v;

			while (hashmap_next(batch, &it, &k, &v))
				sync_one(d, k, (int64_t)(intptr_t)v);
			d->incr_syncs++;
			hashmap_free(batch);
		}
		pthread_mutex_unlock(&d->amu);
	}
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static int copy_cfg(struct dpsync *d, const struct dpsync_config *c)
{
	const char **fields[] = { &d->cfg.server,   &d->cfg.token,    &d->cfg.ca_file,
				  &d->cfg.node,	    &d->cfg.zone,     &d->cfg.uplink,
				  &d->cfg.node_ip,  &d->cfg.pod_cidr, &d->cfg.cgroup_root,
				  &d->cfg.xdp_mode, &d->cfg.pin_root };

	d->cfg = *c;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (!*fields[i])
			continue;
		d->strs[i] = strdup(*fields[i]);
		if (!d->strs[i])
			return -ENOMEM;
		*fields[i] = d->strs[i];
	}
	return 0;
}

static int check_cfg(const struct dpsync_config *c)
{
	const char *what = NULL;

	if (!c)
		return -EINVAL;
	if (!c->server || !*c->server)
		what = "server";
	else if (!c->node || !*c->node)
		what = "node";
	else if (!c->uplink || !*c->uplink)
		what = "uplink";
	else if (!c->node_ip || !*c->node_ip)
		what = "node_ip";
	else if (!c->pod_cidr || !*c->pod_cidr)
		what = "pod_cidr";
	else if (c->mode == DPSYNC_BPF && (!c->cgroup_root || !*c->cgroup_root))
		what = "cgroup_root";
	if (what) {
		log_error("dpsync: %s: required", what);
		return -EINVAL;
	}
	if (c->mode != DPSYNC_BPF && c->mode != DPSYNC_NFTABLES) {
		log_error("dpsync: mode %d: must be bpf or nftables", (int)c->mode);
		return -EINVAL;
	}
	if (c->xdp_mode && strcmp(c->xdp_mode, "native") && strcmp(c->xdp_mode, "generic") &&
	    strcmp(c->xdp_mode, "auto")) {
		log_error("dpsync: xdp mode \"%s\": must be native, generic or auto", c->xdp_mode);
		return -EINVAL;
	}
	return 0;
}

/* BPF mode: open or adopt the node's data plane and attach it. */
static int bpf_start(struct dpsync *d)
{
	struct dp_opts o = { .node = d->cfg.node,
			     .pin_root = d->cfg.pin_root,
			     .node_addr = d->node_ip,
			     .zone = d->cfg.zone };
	enum dp_xdp_mode mode = DP_XDP_AUTO;
	struct nl_link_info li;
	int err;

	d->dp = dp_open(&o);
	if (!d->dp) {
		err = -errno;
		log_error("dpsync: open the BPF data plane of node %s: %s", d->cfg.node,
			  strerror(-err));
		return err;
	}
	err = net_open(&d->net, d->cfg.uplink, &d->pod_cidr, d->dp);
	if (err)
		return err;
	d->net_open = true;
	if (d->cfg.xdp_mode && !strcmp(d->cfg.xdp_mode, "native"))
		mode = DP_XDP_NATIVE;
	else if (d->cfg.xdp_mode && !strcmp(d->cfg.xdp_mode, "generic"))
		mode = DP_XDP_GENERIC;
	else if (!nl_link_get(d->net.nl, d->cfg.uplink, &li) && !strcmp(li.kind, "veth"))
		mode = DP_XDP_GENERIC;
	snprintf(d->xdp_mode, sizeof(d->xdp_mode), "%s",
		 mode == DP_XDP_GENERIC	 ? "generic"
		 : mode == DP_XDP_NATIVE ? "native"
					 : "auto");
	err = dp_attach_xdp(d->dp, d->net.uplink_ifindex, mode);
	if (!err)
		err = dp_attach_tc(d->dp, d->net.uplink_ifindex, true);
	if (!err)
		err = dp_attach_cgroup(d->dp, d->cfg.cgroup_root);
	if (err) {
		log_error("dpsync: attach the data plane on %s and %s: %s", d->cfg.uplink,
			  d->cfg.cgroup_root, strerror(-err));
		return err;
	}
	err = net_pod_ifs_sync(&d->net);
	if (err)
		log_warn("dpsync: pod interfaces: %s (tried again at the next change)",
			 strerror(-err));
	return 0;
}

/* nftables mode: a BPF data plane left by an earlier run in the other mode goes. */
static int nft_mode_start(struct dpsync *d)
{
	char dir[512];
	int err;

	if (!dp_pin_dir(d->cfg.pin_root, d->cfg.node, dir, sizeof(dir)) && !access(dir, F_OK)) {
		struct dp_opts o = { .node = d->cfg.node,
				     .pin_root = d->cfg.pin_root,
				     .node_addr = d->node_ip };
		struct dp *dp = dp_open(&o);

		if (!dp || dp_uninstall(dp))
			log_warn("dpsync: remove the BPF data plane in %s: %s", dir,
				 strerror(errno));
		else
			log_info("dpsync: removed the BPF data plane in %s (nftables mode)", dir);
		dp_close(dp);
	}
	err = net_open(&d->net, d->cfg.uplink, &d->pod_cidr, NULL);
	if (!err)
		d->net_open = true;
	return err;
}

static struct informer *inf_start(struct dpsync *d, const char *path, const char *labels,
				  void (*ev)(void *, enum informer_event, json_t *, json_t *),
				  void (*sy)(void *))
{
	struct informer_opts o = { .server = d->cfg.server,
				   .token = d->cfg.token,
				   .ca_file = d->cfg.ca_file,
				   .insecure = d->cfg.insecure,
				   .path = path,
				   .label_selector = labels,
				   .on_event = ev,
				   .on_synced = sy,
				   .arg = d };
	struct informer *inf = informer_start(&o);

	if (!inf)
		log_error("dpsync: watch %s: %s", path, strerror(errno));
	return inf;
}

struct dpsync *dpsync_start(const struct dpsync_config *cfg)
{
	struct dpsync *d;
	int err = check_cfg(cfg);

	if (err) {
		errno = -err;
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		errno = ENOMEM;
		return NULL;
	}
	d->efd = -1;
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->amu, NULL);
	err = copy_cfg(d, cfg);
	if (err)
		goto fail;
	if (inet_pton(AF_INET, cfg->node_ip, &d->node_ip) != 1) {
		log_error("dpsync: node_ip \"%s\": not an IPv4 address", cfg->node_ip);
		err = -EINVAL;
		goto fail;
	}
	if (nft_cidr_parse(cfg->pod_cidr, &d->pod_cidr)) {
		log_error("dpsync: pod_cidr \"%s\": not an IPv4 CIDR", cfg->pod_cidr);
		err = -EINVAL;
		goto fail;
	}
	cidr_mask(&d->pod_cidr);
	d->xn.name = d->cfg.node;
	d->xn.node_ip = d->node_ip;
	d->xn.sctp = cfg->mode == DPSYNC_NFTABLES;
	d->dirty = hashmap_new(64);
	d->slices = hashmap_new(1024);
	d->nodes = hashmap_new(64);
	d->applied = hashmap_new(1024);
	d->retry = hashmap_new(16);
	d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!d->dirty || !d->slices || !d->nodes || !d->applied || !d->retry || d->efd < 0) {
		err = d->efd < 0 ? -errno : -ENOMEM;
		goto fail;
	}
	err = cfg->mode == DPSYNC_BPF ? bpf_start(d) : nft_mode_start(d);
	if (err)
		goto fail;
	d->node_inf = inf_start(d, "/api/v1/nodes", NULL, node_event, node_synced);
	d->eps_inf = inf_start(d, "/apis/discovery.k8s.io/v1/endpointslices", DPSYNC_SVC_LABEL,
			       eps_event, eps_synced);
	d->svc_inf = inf_start(d, "/api/v1/services", NULL, svc_event, svc_synced);
	if (!d->node_inf || !d->eps_inf || !d->svc_inf) {
		err = -EIO;
		goto fail;
	}
	err = -pthread_create(&d->thread, NULL, sync_main, d);
	if (err)
		goto fail;
	d->thread_started = true;
	log_info("dpsync: node %s: %s data plane on %s started", d->cfg.node,
		 cfg->mode == DPSYNC_BPF ? "BPF" : "nftables", d->cfg.uplink);
	return d;
fail:
	dpsync_stop(d);
	errno = err < 0 ? -err : EIO;
	return NULL;
}

void dpsync_stop(struct dpsync *d)
{
	size_t it = 0;
	const char *k;
	void *v;

	if (!d)
		return;
	/* No handler runs after these return. */
	informer_stop(d->svc_inf);
	informer_stop(d->eps_inf);
	informer_stop(d->node_inf);
	if (d->thread_started) {
		atomic_store(&d->stop, true);
		wake(d);
		pthread_join(d->thread, NULL);
	}
	/* The data plane stays as it is: programs attached, maps pinned, rules in place. */
	dp_close(d->dp);
	nft_close(d->nft);
	if (d->net_open)
		net_close(&d->net);
	if (d->slices) {
		while (hashmap_next(d->slices, &it, &k, &v)) {
			struct slice_set *s = v;

			for (size_t i = 0; i < s->n; i++) {
				free(s->names[i]);
				json_decref(s->objs[i]);
			}
			free(s->names);
			free(s->objs);
			free(s);
		}
	}
	it = 0;
	while (d->nodes && hashmap_next(d->nodes, &it, &k, &v))
		free(v);
	it = 0;
	while (d->applied && hashmap_next(d->applied, &it, &k, &v))
		applied_free(v);
	it = 0;
	while (d->retry && hashmap_next(d->retry, &it, &k, &v))
		free(v);
	hashmap_free(d->dirty);
	hashmap_free(d->slices);
	hashmap_free(d->nodes);
	hashmap_free(d->applied);
	hashmap_free(d->retry);
	free(d->nft_cidrs);
	if (d->efd >= 0)
		close(d->efd);
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->amu);
	for (size_t i = 0; i < sizeof(d->strs) / sizeof(d->strs[0]); i++)
		free(d->strs[i]);
	free(d);
}

bool dpsync_ready(struct dpsync *d)
{
	return d && atomic_load(&d->ready);
}

/* ---- describe and metrics ------------------------------------------------------------- */

static const char *ip_str(uint32_t a, char *buf)
{
	struct in_addr x = { .s_addr = a };

	return inet_ntop(AF_INET, &x, buf, INET_ADDRSTRLEN) ? buf : "?";
}

static const char *proto_name(uint8_t p)
{
	return p == IPPROTO_UDP ? "UDP" : p == IPPROTO_SCTP ? "SCTP" : "TCP";
}

static void flags_str(uint8_t f, char *buf, size_t len)
{
	static const struct {
		uint8_t bit;
		const char *name;
	} names[] = { { SVC_F_NODEPORT, "nodeport" },
		      { SVC_F_EXTERNAL, "external" },
		      { SVC_F_AFFINITY, "affinity" },
		      { SVC_F_ETP_LOCAL, "etp-local" },
		      { SVC_F_ITP_LOCAL, "itp-local" },
		      { SVC_F_MAGLEV, "maglev" },
		      { SVC_F_DSR, "dsr" } };
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((f & names[i].bit) && o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? "," : "",
					      names[i].name);
	if (!o)
		snprintf(buf, len, "-");
}

/* The endpoint record behind a programmed backend (node, zone), when there is one. */
static const struct xl_endpoint *find_ep(const struct xl_port *p, uint32_t addr, uint16_t port)
{
	for (size_t i = 0; p && i < p->n_eps; i++)
		if (p->eps[i].addr == addr && p->eps[i].port == port)
			return &p->eps[i];
	return NULL;
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void describe_nft_port(struct strbuf *out, const struct xl_port *p)
{
	char a[INET_ADDRSTRLEN];
	struct nft_service ns;
	size_t n_ready = 0;

	if (xl_to_nft(p, &ns))
		return;
	for (size_t i = 0; i < ns.n_endpoints; i++)
		n_ready += ns.endpoints[i].ready;
	strbuf_printf(out, "%s  %s  %zu endpoints, %zu serving\n  frontends:", p->nft_name,
		      proto_name(p->proto), ns.n_endpoints, n_ready);
	if (p->cluster_ip)
		strbuf_printf(out, " %s:%u", ip_str(p->cluster_ip, a), p->port);
	for (size_t i = 0; i < p->n_ext; i++)
		strbuf_printf(out, " %s:%u", ip_str(p->ext[i], a), p->port);
	if (p->node_port)
		strbuf_printf(out, " <node>:%u", p->node_port);
	strbuf_printf(out, "\n  backends:\n");
	for (size_t i = 0; i < ns.n_endpoints; i++) {
		const struct xl_endpoint *e = &p->eps[i];

		strbuf_printf(out, "    %s:%-5u  node %s  zone %s  %s\n", ip_str(e->addr, a),
			      e->port, e->node[0] ? e->node : "-", e->zone[0] ? e->zone : "-",
			      ns.endpoints[i].ready ? (e->terminating ? "terminating" : "ready")
						    : "not serving");
	}
	nft_service_free_arrays(&ns);
}

/* nftables mode: what was applied, Service by Service (amu held). */
static void describe_nft(struct dpsync *d, struct strbuf *out)
{
	size_t it = 0, n_keys = 0;
	const char **keys = calloc(hashmap_count(d->applied) + 1, sizeof(*keys));
	const char *k;
	void *v;

	if (!keys) {
		out->err = -ENOMEM;
		return;
	}
	while (hashmap_next(d->applied, &it, &k, &v))
		keys[n_keys++] = k;
	qsort(keys, n_keys, sizeof(*keys), key_cmp);
	for (size_t i = 0; i < n_keys; i++) {
		const struct applied *ap = hashmap_get(d->applied, keys[i]);

		for (size_t j = 0; j < ap->xl.n_ports; j++) {
			strbuf_printf(out, "\n");
			describe_nft_port(out, &ap->xl.ports[j]);
		}
	}
	free(keys);
}

/* BPF mode: what the maps hold, with node and zone from what was applied (amu held). */
static void describe_bpf(struct dpsync *d, struct strbuf *out)
{
	struct hashmap *ports = hashmap_new(hashmap_count(d->applied) * 2 + 16);
	char **names = NULL, a[INET_ADDRSTRLEN], fl[96];
	size_t it = 0, n = 0;
	const char *k;
	void *v;
	int err;

	if (!ports) {
		out->err = -ENOMEM;
		return;
	}
	while (hashmap_next(d->applied, &it, &k, &v)) {
		struct applied *ap = v;

		for (size_t j = 0; j < ap->xl.n_ports; j++)
			if (hashmap_put(ports, ap->xl.ports[j].dp_name, &ap->xl.ports[j], NULL))
				out->err = -ENOMEM;
	}
	err = dp_service_names(d->dp, &names, &n);
	if (err)
		out->err = err;
	for (size_t i = 0; !err && i < n; i++) {
		const struct xl_port *p = hashmap_get(ports, names[i]);
		struct dp_service_info si;

		if (dp_service_info(d->dp, names[i], &si))
			continue;
		flags_str(si.flags, fl, sizeof(fl));
		strbuf_printf(out, "\n%s  %s  id %u  flags %s  packets %llu  bytes %llu%s\n",
			      si.name, proto_name(si.proto), si.id, fl,
			      (unsigned long long)si.packets, (unsigned long long)si.bytes,
			      p ? "" : "  (not in the API: removed at the next sync)");
		strbuf_printf(out, "  frontends:");
		for (size_t f = 0; f < si.n_frontends; f++)
			strbuf_printf(out, " %s:%u", ip_str(si.frontends[f].addr, a),
				      si.frontends[f].port);
		strbuf_printf(out,
			      "\n  backends: %u ready (%u local), %u terminating, %u not serving\n",
			      si.n_ready, si.n_local, si.n_term, si.n_idle);
		for (size_t b = 0; b < si.n_backends; b++) {
			const struct dp_backend_info *bi = &si.backends[b];
			const struct xl_endpoint *e = find_ep(p, bi->addr, bi->port);

			strbuf_printf(out, "    %s:%-5u  node %s  zone %s  %s%s  packets %llu\n",
				      ip_str(bi->addr, a), bi->port,
				      e && e->node[0] ? e->node : "-",
				      e && e->zone[0] ? e->zone : "-",
				      bi->state == DP_SLOT_READY	 ? "ready"
				      : bi->state == DP_SLOT_TERMINATING ? "terminating"
									 : "not serving",
				      bi->flags & BE_F_LOCAL ? " local" : "",
				      (unsigned long long)bi->packets);
		}
		dp_service_info_free(&si);
	}
	dp_names_free(names, n);
	hashmap_free(ports);
}

int dpsync_describe(struct dpsync *d, struct strbuf *out)
{
	struct dp_stats st = { 0 };
	char a[INET_ADDRSTRLEN];

	if (!d || !out)
		return -EINVAL;
	pthread_mutex_lock(&d->amu);
	if (d->dp && dp_stats(d->dp, &st))
		memset(&st, 0, sizeof(st));
	strbuf_printf(out, "node %s  mode %s  uplink %s", d->cfg.node, d->dp ? "bpf" : "nftables",
		      d->cfg.uplink);
	if (d->dp)
		strbuf_printf(out, " (xdp %s)", d->xdp_mode);
	strbuf_printf(out, "  %s\n", atomic_load(&d->ready) ? "in sync" : "not yet in sync");
	if (d->dp)
		strbuf_printf(out,
			      "services %u  backends %u  pod interfaces %zu  packets %llu  "
			      "bytes %llu\n",
			      st.services, st.backends, d->net.n_pod_ifs,
			      (unsigned long long)st.packets, (unsigned long long)st.bytes);
	else
		strbuf_printf(out, "services %zu\n", d->nft ? nft_service_count(d->nft) : 0);
	if (d->dp)
		describe_bpf(d, out);
	else
		describe_nft(d, out);
	if (d->net.n_routes) {
		strbuf_printf(out, "\nroutes:\n");
		for (size_t i = 0; i < d->net.n_routes; i++) {
			const struct net_route *r = &d->net.routes[i];
			char via[INET_ADDRSTRLEN];

			strbuf_printf(out, "  %s/%u via %s dev %s  (node %s)\n",
				      ip_str(r->dst.addr.s_addr, a), r->dst.prefix,
				      ip_str(r->via, via), d->cfg.uplink, r->node);
		}
	}
	pthread_mutex_unlock(&d->amu);
	return out->err;
}

int dpsync_metrics(struct dpsync *d, struct strbuf *out)
{
	static const char *const reasons[DR_MAX] = {
		[DR_OK] = "translated",
		[DR_NO_BACKEND] = "no_backend",
		[DR_MALFORMED] = "malformed",
		[DR_FRAGMENT] = "fragment",
		[DR_IP_OPTIONS] = "ip_options",
		[DR_UNSUPPORTED] = "unsupported",
		[DR_BACKEND_GONE] = "backend_gone",
		[DR_CSUM] = "checksum",
		[DR_FIB] = "fib",
		[DR_NO_SNAT_PORT] = "no_snat_port",
		[DR_REJECT_FAILED] = "reject_failed",
		[DR_STRAY_RST] = "stray_rst",
	};
	struct informer *infs[3] = { d ? d->svc_inf : NULL, d ? d->eps_inf : NULL,
				     d ? d->node_inf : NULL };
	static const char *const kinds[3] = { "services", "endpointslices", "nodes" };
	struct dp_stats st = { 0 };
	uint64_t cum = 0;

	if (!d || !out)
		return -EINVAL;
	pthread_mutex_lock(&d->amu);
	strbuf_printf(out,
		      "# HELP shoal_dpsync_ready Whether the data plane is in sync with "
		      "the API.\n# TYPE shoal_dpsync_ready gauge\nshoal_dpsync_ready %d\n",
		      atomic_load(&d->ready) ? 1 : 0);
	strbuf_printf(out,
		      "# HELP shoal_dpsync_services Services programmed.\n"
		      "# TYPE shoal_dpsync_services gauge\nshoal_dpsync_services %zu\n",
		      hashmap_count(d->applied));
	strbuf_printf(out,
		      "# HELP shoal_dpsync_syncs_total Sync rounds.\n"
		      "# TYPE shoal_dpsync_syncs_total counter\n"
		      "shoal_dpsync_syncs_total{kind=\"full\"} %llu\n"
		      "shoal_dpsync_syncs_total{kind=\"incremental\"} %llu\n",
		      (unsigned long long)d->full_syncs, (unsigned long long)d->incr_syncs);
	strbuf_printf(out,
		      "# HELP shoal_dpsync_service_changes_total Services looked at, by outcome.\n"
		      "# TYPE shoal_dpsync_service_changes_total counter\n"
		      "shoal_dpsync_service_changes_total{outcome=\"applied\"} %llu\n"
		      "shoal_dpsync_service_changes_total{outcome=\"unchanged\"} %llu\n",
		      (unsigned long long)d->svc_applies, (unsigned long long)d->svc_unchanged);
	strbuf_printf(out,
		      "# HELP shoal_dpsync_port_updates_total Service ports written or "
		      "removed.\n# TYPE shoal_dpsync_port_updates_total counter\n"
		      "shoal_dpsync_port_updates_total{op=\"upsert\"} %llu\n"
		      "shoal_dpsync_port_updates_total{op=\"delete\"} %llu\n",
		      (unsigned long long)d->upserts, (unsigned long long)d->deletes);
	strbuf_printf(out,
		      "# HELP shoal_dpsync_errors_total Failed applies (retried).\n"
		      "# TYPE shoal_dpsync_errors_total counter\nshoal_dpsync_errors_total "
		      "%llu\n",
		      (unsigned long long)(d->errors + d->net.route_errors + d->net.attach_errors));
	strbuf_printf(out, "# HELP shoal_dpsync_apply_seconds From a watch event to its "
			   "change in the data plane.\n# TYPE shoal_dpsync_apply_seconds "
			   "histogram\n");
	for (size_t b = 0; b <= N_LAT; b++) {
		cum += d->lat_bucket[b];
		if (b < N_LAT)
			strbuf_printf(out, "shoal_dpsync_apply_seconds_bucket{le=\"%g\"} %llu\n",
				      lat_bounds[b], (unsigned long long)cum);
		else
			strbuf_printf(out, "shoal_dpsync_apply_seconds_bucket{le=\"+Inf\"} %llu\n",
				      (unsigned long long)cum);
	}
	strbuf_printf(out,
		      "shoal_dpsync_apply_seconds_sum %.6f\nshoal_dpsync_apply_seconds_count "
		      "%llu\n# HELP shoal_dpsync_apply_seconds_max The slowest so far.\n"
		      "# TYPE shoal_dpsync_apply_seconds_max gauge\n"
		      "shoal_dpsync_apply_seconds_max %.6f\n",
		      d->lat_sum, (unsigned long long)d->lat_count, d->lat_max);
	strbuf_printf(out,
		      "# HELP shoal_dpsync_routes Routes to other nodes' pod CIDRs.\n"
		      "# TYPE shoal_dpsync_routes gauge\nshoal_dpsync_routes %zu\n"
		      "# HELP shoal_dpsync_route_writes_total Routes added, replaced or "
		      "removed.\n# TYPE shoal_dpsync_route_writes_total counter\n"
		      "shoal_dpsync_route_writes_total %llu\n",
		      d->net.n_routes, (unsigned long long)d->net.route_writes);
	for (int f = 0; f < 2; f++) {
		strbuf_printf(out,
			      "# HELP shoal_dpsync_informer_%s_total %s\n"
			      "# TYPE shoal_dpsync_informer_%s_total counter\n",
			      f ? "lists" : "events",
			      f ? "Lists done (the first, and after 410 Gone)."
				: "Watch events handled.",
			      f ? "lists" : "events");
		for (int i = 0; i < 3; i++) {
			struct informer_stats is = { 0 };

			if (infs[i])
				informer_stats(infs[i], &is);
			strbuf_printf(out, "shoal_dpsync_informer_%s_total{kind=\"%s\"} %llu\n",
				      f ? "lists" : "events", kinds[i],
				      (unsigned long long)(f ? is.lists : is.events));
		}
	}
	if (d->dp && !dp_stats(d->dp, &st)) {
		strbuf_printf(out,
			      "# HELP shoal_dp_backends Backends in the BPF maps.\n"
			      "# TYPE shoal_dp_backends gauge\nshoal_dp_backends %u\n"
			      "# HELP shoal_dp_pod_interfaces Pod interfaces with the tc program.\n"
			      "# TYPE shoal_dp_pod_interfaces gauge\nshoal_dp_pod_interfaces %zu\n"
			      "# HELP shoal_dp_map_writes_total Map entries written or deleted "
			      "since the agent started.\n# TYPE shoal_dp_map_writes_total counter\n"
			      "shoal_dp_map_writes_total %llu\n"
			      "# HELP shoal_dp_packets_total Packets by outcome.\n"
			      "# TYPE shoal_dp_packets_total counter\n",
			      st.backends, d->net.n_pod_ifs, (unsigned long long)st.map_writes);
		for (int r = 0; r < DR_MAX; r++)
			strbuf_printf(out, "shoal_dp_packets_total{reason=\"%s\"} %llu\n",
				      reasons[r] ? reasons[r] : "other",
				      (unsigned long long)st.reason_packets[r]);
		strbuf_printf(out,
			      "# HELP shoal_dp_bytes_total Bytes translated.\n"
			      "# TYPE shoal_dp_bytes_total counter\nshoal_dp_bytes_total "
			      "%llu\n",
			      (unsigned long long)st.bytes);
	}
	pthread_mutex_unlock(&d->amu);
	return out->err;
}
