// SPDX-License-Identifier: Apache-2.0
/*
 * The nftables service proxy engine: the services last applied (a hash by name), and the
 * diff that turns a new desired state into one atomic batch.
 *
 * The design choice: the engine is level-triggered over rendered objects. For every service
 * whose spec changed it renders old and new (nft_rules.c) and sends only the difference, in
 * phases that keep every reference valid inside the batch: delete elements, flush chains to
 * be rewritten, delete chains (service chains before endpoint chains) and then sets, create
 * sets and chains, write rules, add elements. At start it adopts what the kernel holds
 * (nft_dump): when the read-back renders exactly to the table's objects the engine continues
 * from it; otherwise the next change replaces the whole table in one batch (delete table +
 * rebuild), so a damaged table is repaired without a moment of missing rules.
 */
#include "nft_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct nft_entry {
	struct nft_service svc;
	struct nft_entry *next;
	uint32_t mark;
	uint32_t id;		      /* in its affinity keys and map name */
	char vmap[NFT_VMAP_NAME_MAX]; /* its endpoint map, "" when none */
};

struct nft_engine {
	struct nft_rcfg cfg;
	char table[64];
	char sig[256];
	struct nft_batch b;
	struct nft_entry **buckets;
	size_t n_buckets, count;
	uint32_t epoch;
	uint32_t next_id;
	bool table_present; /* the kernel has a table of that name */
	bool rebuild;	    /* the next change replaces the whole table */
	char err[NFT_ERR_MAX];
	struct nft_batch_stats last;
};

/* ---- service helpers ---- */

void nft_service_free_arrays(struct nft_service *s)
{
	if (!s)
		return;
	free(s->external_ips);
	free(s->endpoints);
	free(s->source_ranges);
	s->external_ips = NULL;
	s->endpoints = NULL;
	s->source_ranges = NULL;
	s->n_external_ips = s->n_endpoints = s->n_source_ranges = 0;
}

static void *nft_dup(const void *p, size_t n, size_t size, bool *ok)
{
	if (!n)
		return NULL;
	void *d = malloc(n * size);
	if (!d) {
		*ok = false;
		return NULL;
	}
	memcpy(d, p, n * size);
	return d;
}

int nft_service_copy(struct nft_service *dst, const struct nft_service *src)
{
	bool ok = true;
	*dst = *src;
	dst->external_ips =
		nft_dup(src->external_ips, src->n_external_ips, sizeof(struct in_addr), &ok);
	dst->endpoints =
		nft_dup(src->endpoints, src->n_endpoints, sizeof(struct nft_endpoint), &ok);
	dst->source_ranges =
		nft_dup(src->source_ranges, src->n_source_ranges, sizeof(struct nft_cidr), &ok);
	if (!ok) {
		nft_service_free_arrays(dst);
		return -ENOMEM;
	}
	return 0;
}

static bool nft_ip_in(struct in_addr ip, const struct in_addr *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i].s_addr == ip.s_addr)
			return true;
	return false;
}

bool nft_service_equal(const struct nft_service *a, const struct nft_service *b)
{
	if (strcmp(a->name, b->name) || a->protocol != b->protocol ||
	    a->cluster_ip.s_addr != b->cluster_ip.s_addr || a->port != b->port ||
	    a->node_port != b->node_port || a->affinity_timeout != b->affinity_timeout ||
	    a->n_external_ips != b->n_external_ips || a->n_source_ranges != b->n_source_ranges)
		return false;
	for (size_t i = 0; i < a->n_external_ips; i++)
		if (!nft_ip_in(a->external_ips[i], b->external_ips, b->n_external_ips) ||
		    !nft_ip_in(b->external_ips[i], a->external_ips, a->n_external_ips))
			return false;
	for (size_t i = 0; i < a->n_source_ranges; i++) {
		const struct nft_cidr *x = &a->source_ranges[i], *y = &b->source_ranges[i];
		uint32_t m = x->prefix ? htonl(~0u << (32 - x->prefix)) : 0;
		if (x->prefix != y->prefix || (x->addr.s_addr & m) != (y->addr.s_addr & m))
			return false;
	}
	/* ready endpoints as a set: their order does not change the rules */
	size_t *oa, *ob;
	int na = nft_ready_order(a, &oa), nb = nft_ready_order(b, &ob);
	bool eq = na >= 0 && na == nb;
	for (int k = 0; eq && k < na; k++)
		eq = a->endpoints[oa[k]].addr.s_addr == b->endpoints[ob[k]].addr.s_addr &&
		     a->endpoints[oa[k]].port == b->endpoints[ob[k]].port;
	if (na > 0)
		free(oa);
	if (nb > 0)
		free(ob);
	return eq;
}

int nft_cidr_parse(const char *s, struct nft_cidr *out)
{
	char buf[INET_ADDRSTRLEN + 4];
	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	char *slash = strchr(buf, '/');
	unsigned long prefix = 32;
	if (slash) {
		char *end;
		*slash = '\0';
		prefix = strtoul(slash + 1, &end, 10);
		if (end == slash + 1 || *end || prefix > 32)
			return -EINVAL;
	}
	if (inet_pton(AF_INET, buf, &out->addr) != 1)
		return -EINVAL;
	out->prefix = (uint8_t)prefix;
	return 0;
}

/* ---- the hash of applied services ---- */

static uint64_t nft_hash_name(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

static struct nft_entry *nft_find(const struct nft_engine *e, const char *name)
{
	if (!e->n_buckets)
		return NULL;
	struct nft_entry *it = e->buckets[nft_hash_name(name) & (e->n_buckets - 1)];
	for (; it; it = it->next)
		if (!strcmp(it->svc.name, name))
			return it;
	return NULL;
}

static int nft_grow(struct nft_engine *e)
{
	if (e->count < e->n_buckets)
		return 0;
	size_t nb = e->n_buckets ? e->n_buckets * 2 : 256;
	struct nft_entry **b = calloc(nb, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < e->n_buckets; i++) {
		struct nft_entry *it = e->buckets[i], *next;
		for (; it; it = next) {
			next = it->next;
			size_t k = nft_hash_name(it->svc.name) & (nb - 1);
			it->next = b[k];
			b[k] = it;
		}
	}
	free(e->buckets);
	e->buckets = b;
	e->n_buckets = nb;
	return 0;
}

/* Replaces (or inserts) the entry for s->name with a copy of s. */
static int nft_store(struct nft_engine *e, const struct nft_service *s, uint32_t id,
		     const char *vmap)
{
	struct nft_service copy;
	char vm[NFT_VMAP_NAME_MAX];
	snprintf(vm, sizeof(vm), "%s", vmap); /* vmap may be the entry's own */
	vmap = vm;
	int err = nft_service_copy(&copy, s);
	if (err)
		return err;
	if (id >= e->next_id)
		e->next_id = id + 1;
	struct nft_entry *it = nft_find(e, s->name);
	if (it) {
		nft_service_free_arrays(&it->svc);
		it->svc = copy;
		it->id = id;
		snprintf(it->vmap, sizeof(it->vmap), "%s", vmap);
		return 0;
	}
	if ((err = nft_grow(e)) || !(it = calloc(1, sizeof(*it)))) {
		nft_service_free_arrays(&copy);
		return err ? err : -ENOMEM;
	}
	it->svc = copy;
	it->id = id;
	snprintf(it->vmap, sizeof(it->vmap), "%s", vmap);
	size_t k = nft_hash_name(s->name) & (e->n_buckets - 1);
	it->next = e->buckets[k];
	e->buckets[k] = it;
	e->count++;
	return 0;
}

static void nft_forget(struct nft_engine *e, const char *name)
{
	if (!e->n_buckets)
		return;
	struct nft_entry **pp = &e->buckets[nft_hash_name(name) & (e->n_buckets - 1)];
	for (; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->svc.name, name)) {
			struct nft_entry *it = *pp;
			*pp = it->next;
			nft_service_free_arrays(&it->svc);
			free(it);
			e->count--;
			return;
		}
	}
}

static void nft_forget_all(struct nft_engine *e)
{
	for (size_t i = 0; i < e->n_buckets; i++) {
		struct nft_entry *it = e->buckets[i], *next;
		for (; it; it = next) {
			next = it->next;
			nft_service_free_arrays(&it->svc);
			free(it);
		}
		e->buckets[i] = NULL;
	}
	e->count = 0;
}

/* ---- the plan: one batch for a set of changes ---- */

struct nft_change {
	const struct nft_service *old;	  /* NULL: new service */
	const struct nft_service *new;	  /* NULL: deleted */
	uint32_t id;			  /* 0: a new service, given the next free id */
	const char *old_vmap;		  /* the endpoint map it has (NULL or "": none) */
	char new_vmap[NFT_VMAP_NAME_MAX]; /* the one written by this batch */
	bool has_svc_chain;		  /* the new rendering has a service chain */
	struct nft_render ro, rn;
};

struct nft_ref {
	struct nft_change *c;
	const void *obj;
};

enum { P_DEL_ELEM, P_FLUSH, P_DEL_CHAIN, P_NEW_CHAIN, P_ADD_ELEM, P__COUNT };
struct nft_plan {
	struct nft_ref *v[P__COUNT];
	size_t n[P__COUNT], cap[P__COUNT];
};

static int nft_plan_add(struct nft_plan *p, int phase, struct nft_change *c, const void *o)
{
	if (p->n[phase] == p->cap[phase]) {
		size_t nc = p->cap[phase] ? p->cap[phase] * 2 : 64;
		struct nft_ref *nv = realloc(p->v[phase], nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		p->v[phase] = nv;
		p->cap[phase] = nc;
	}
	p->v[phase][p->n[phase]++] = (struct nft_ref){ c, o };
	return 0;
}

static void nft_plan_free(struct nft_plan *p)
{
	for (int i = 0; i < P__COUNT; i++)
		free(p->v[i]);
}

static bool nft_elem_same(const struct nft_r_elem *a, const struct nft_r_elem *b)
{
	return a->map == b->map && !memcmp(a->key, b->key, a->keylen) &&
	       !strcmp(a->chain, b->chain) && !strcmp(a->comment, b->comment);
}

/* Rewritten chains are recorded as P_FLUSH and their rules written with the new chains. */
static int nft_plan_change(struct nft_plan *p, struct nft_change *c)
{
	struct nft_render *ro = &c->ro, *rn = &c->rn;
	int err = 0;

	for (size_t i = 0; i < ro->n_elems && !err; i++) {
		bool keep = false;
		for (size_t j = 0; j < rn->n_elems && !keep; j++)
			keep = nft_elem_same(&ro->elems[i], &rn->elems[j]);
		if (!keep)
			err = nft_plan_add(p, P_DEL_ELEM, c, &ro->elems[i]);
	}
	for (size_t j = 0; j < rn->n_elems && !err; j++) {
		bool keep = false;
		for (size_t i = 0; i < ro->n_elems && !keep; i++)
			keep = nft_elem_same(&ro->elems[i], &rn->elems[j]);
		if (!keep)
			err = nft_plan_add(p, P_ADD_ELEM, c, &rn->elems[j]);
	}
	/* deletions: non-endpoint chains first, they jump to the endpoint chains */
	for (int pass = 0; pass < 2 && !err; pass++) {
		for (size_t i = 0; i < ro->n_chains && !err; i++) {
			const struct nft_r_chain *oc = &ro->chains[i];
			if ((oc->kind == NFT_CH_EP) != (pass == 1))
				continue;
			bool found = false;
			for (size_t j = 0; j < rn->n_chains && !found; j++)
				found = !strcmp(oc->name, rn->chains[j].name);
			if (!found)
				err = nft_plan_add(p, P_DEL_CHAIN, c, oc);
		}
	}
	for (size_t j = 0; j < rn->n_chains && !err; j++) {
		const struct nft_r_chain *nc = &rn->chains[j];
		const struct nft_r_chain *oc = NULL;
		for (size_t i = 0; i < ro->n_chains && !oc; i++)
			if (!strcmp(ro->chains[i].name, nc->name))
				oc = &ro->chains[i];
		if (!oc)
			err = nft_plan_add(p, P_NEW_CHAIN, c, nc);
		else if (oc->sig != nc->sig)
			err = nft_plan_add(p, P_FLUSH, c, nc);
	}
	return err;
}

static int nft_emit_elem_phase(struct nft_engine *e, const struct nft_plan *p, int phase,
			       uint16_t type)
{
	size_t n = p->n[phase];
	if (!n)
		return 0;
	const struct nft_r_elem **v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	int err = 0;
	for (int m = 0; m < NFT_MAP__COUNT && !err; m++) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			const struct nft_r_elem *el = p->v[phase][i].obj;
			if (el->map == m)
				v[k++] = el;
		}
		if (k)
			err = nft_emit_elems(&e->cfg, &e->b, type, m, v, k);
	}
	free(v);
	return err;
}

static int nft_emit_plan(struct nft_engine *e, const struct nft_plan *p)
{
	struct nft_batch *b = &e->b;
	int err;

	if ((err = nft_emit_elem_phase(e, p, P_DEL_ELEM, NFT_MSG_DELSETELEM)))
		return err;
	for (size_t i = 0; i < p->n[P_FLUSH]; i++) {
		const struct nft_r_chain *c = p->v[P_FLUSH][i].obj;
		if ((err = nft_emit_chain(&e->cfg, b, NFT_MSG_DELRULE, c->name)))
			return err;
	}
	/* service chains to delete are emptied first, which unbinds their endpoint maps */
	for (size_t i = 0; i < p->n[P_DEL_CHAIN]; i++) {
		const struct nft_r_chain *c = p->v[P_DEL_CHAIN][i].obj;
		if (c->kind == NFT_CH_SVC &&
		    (err = nft_emit_chain(&e->cfg, b, NFT_MSG_DELRULE, c->name)))
			return err;
	}
	/* a rewritten or deleted service chain no longer uses its endpoint map; the map
	 * goes before the endpoint chains its elements point to */
	for (int ph = P_FLUSH; ph <= P_DEL_CHAIN; ph++) {
		for (size_t i = 0; i < p->n[ph]; i++) {
			const struct nft_ref *r = &p->v[ph][i];
			const struct nft_r_chain *c = r->obj;
			if (c->kind == NFT_CH_SVC && r->c->old_vmap && r->c->old_vmap[0] &&
			    (err = nft_emit_del_set(&e->cfg, b, r->c->old_vmap)))
				return err;
		}
	}
	for (size_t i = 0; i < p->n[P_DEL_CHAIN]; i++) {
		const struct nft_r_chain *c = p->v[P_DEL_CHAIN][i].obj;
		if ((err = nft_emit_chain(&e->cfg, b, NFT_MSG_DELCHAIN, c->name)))
			return err;
	}
	for (size_t i = 0; i < p->n[P_NEW_CHAIN]; i++) {
		const struct nft_r_chain *c = p->v[P_NEW_CHAIN][i].obj;
		if ((err = nft_emit_chain(&e->cfg, b, NFT_MSG_NEWCHAIN, c->name)))
			return err;
	}
	for (int ph = P_FLUSH; ph <= P_NEW_CHAIN; ph += P_NEW_CHAIN - P_FLUSH) {
		for (size_t i = 0; i < p->n[ph]; i++) {
			const struct nft_ref *r = &p->v[ph][i];
			if ((err = nft_emit_chain_rules(&e->cfg, b, r->c->new, r->c->id, r->obj,
							r->c->new_vmap)))
				return err;
		}
	}
	return nft_emit_elem_phase(e, p, P_ADD_ELEM, NFT_MSG_NEWSETELEM);
}

static void nft_set_err(struct nft_engine *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void nft_set_err(struct nft_engine *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->err, sizeof(e->err), fmt, ap);
	va_end(ap);
}

static int nft_delete_table_msg(struct nft_engine *e)
{
	struct nftnl_table *t = nftnl_table_alloc();
	if (!t)
		return -ENOMEM;
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, e->cfg.table);
	int err = nft_put_table(&e->b, NFT_MSG_DELTABLE, 0, t);
	nftnl_table_free(t);
	return err;
}

/*
 * Sends one batch for `changes` and, once the kernel accepted it, records the new state.
 * With e->rebuild the batch first replaces the table (every change is then an addition).
 */
static int nft_commit(struct nft_engine *e, struct nft_change *changes, size_t n)
{
	struct nft_plan plan;
	int err = 0;
	bool rebuild = e->rebuild;

	memset(&plan, 0, sizeof(plan));
	nft_batch_reset(&e->b);
	if (rebuild) {
		if (e->table_present && (err = nft_delete_table_msg(e)))
			goto out;
		if ((err = nft_emit_skeleton(&e->cfg, &e->b, e->sig)))
			goto out;
	}
	uint32_t next_id = e->next_id ? e->next_id : 1;
	for (size_t i = 0; i < n; i++) {
		struct nft_change *c = &changes[i];
		if (!c->id)
			c->id = next_id++;
		if (c->old && !rebuild &&
		    (err = nft_render_service(&e->cfg, c->old, c->id, &c->ro)))
			goto out;
		if (c->new && (err = nft_render_service(&e->cfg, c->new, c->id, &c->rn)))
			goto out;
		for (size_t j = 0; j < c->rn.n_chains; j++)
			c->has_svc_chain |= c->rn.chains[j].kind == NFT_CH_SVC;
		if ((err = nft_plan_change(&plan, c)))
			goto out;
	}
	if ((err = nft_emit_plan(e, &plan)))
		goto out;
	err = nft_batch_send(&e->b);
	e->last = (struct nft_batch_stats){ e->b.n_msgs, e->b.acks, e->b.sent_bytes };
	if (err) {
		nft_set_err(e, "%s", e->b.err);
		log_warn("nft: %s", e->err);
		if (err == -ENOBUFS)
			e->rebuild = true; /* the outcome is unknown: replace the table next time */
		goto out;
	}
	if (rebuild) {
		e->rebuild = false;
		e->table_present = true;
		/* the old state is gone with the old table; entries not re-added are dropped */
		for (size_t i = 0; i < n; i++)
			if (changes[i].old && !changes[i].new)
				nft_forget(e, changes[i].old->name);
	}
	for (size_t i = 0; i < n && !err; i++) {
		struct nft_change *c = &changes[i];
		const char *vmap = !c->has_svc_chain ? ""
				   : c->new_vmap[0]  ? c->new_vmap
				   : c->old_vmap     ? c->old_vmap
						     : "";
		if (c->new)
			err = nft_store(e, c->new, c->id, vmap);
		else if (!rebuild)
			nft_forget(e, changes[i].old->name);
	}
	if (err) {
		/* The kernel holds the change but we could not record it: rebuild next time. */
		e->rebuild = true;
		nft_set_err(e, "recording the applied state: %s", strerror(-err));
	}
out:
	if (err && !e->err[0])
		nft_set_err(e, "%s", e->b.err[0] ? e->b.err : strerror(-err));
	for (size_t i = 0; i < n; i++) {
		nft_render_free(&changes[i].ro);
		nft_render_free(&changes[i].rn);
	}
	nft_plan_free(&plan);
	return err;
}

/* ---- public ---- */

static int nft_adopt(struct nft_engine *e);

struct nft_engine *nft_open(const struct nft_config *cfg)
{
	struct nft_engine *e = calloc(1, sizeof(*e));
	int err;
	if (!e) {
		errno = ENOMEM;
		return NULL;
	}
	snprintf(e->table, sizeof(e->table), "%s", cfg && cfg->table ? cfg->table : NFT_TABLE_NAME);
	e->cfg.table = e->table;
	if (cfg) {
		e->cfg.proxy = cfg->proxy;
		e->cfg.nodeports = cfg->nodeports;
		e->cfg.masq_mark = cfg->masq_mark;
		if (cfg->n_pod_cidrs) {
			e->cfg.pod_cidrs = malloc(cfg->n_pod_cidrs * sizeof(*cfg->pod_cidrs));
			if (!e->cfg.pod_cidrs) {
				err = -ENOMEM;
				goto fail;
			}
			memcpy(e->cfg.pod_cidrs, cfg->pod_cidrs,
			       cfg->n_pod_cidrs * sizeof(*cfg->pod_cidrs));
			e->cfg.n_pod_cidrs = cfg->n_pod_cidrs;
		}
	}
	if (!e->cfg.masq_mark)
		e->cfg.masq_mark = NFT_DEFAULT_MASQ_MARK;
	for (size_t i = 0; i < e->cfg.n_pod_cidrs; i++) {
		if (e->cfg.pod_cidrs[i].prefix > 32) {
			err = -EINVAL;
			goto fail;
		}
	}
	nft_cfg_signature(&e->cfg, e->sig, sizeof(e->sig));
	if ((err = nft_batch_init(&e->b)))
		goto fail;
	if ((err = nft_adopt(e)))
		goto fail;
	if (e->rebuild && !e->table_present) {
		/* A fresh node: the skeleton now, so the node rules apply before any service. */
		if ((err = nft_commit(e, NULL, 0)))
			goto fail;
	}
	return e;
fail:
	if (e->err[0])
		log_warn("nft: open table inet %s: %s", e->table, e->err);
	nft_close(e);
	errno = -err;
	return NULL;
}

void nft_close(struct nft_engine *e)
{
	if (!e)
		return;
	nft_forget_all(e);
	free(e->buckets);
	free(e->cfg.pod_cidrs);
	nft_batch_fini(&e->b);
	free(e);
}

const char *nft_last_error(const struct nft_engine *e)
{
	return e->err;
}

void nft_last_batch(const struct nft_engine *e, struct nft_batch_stats *out)
{
	*out = e->last;
}

size_t nft_service_count(const struct nft_engine *e)
{
	return e->count;
}

static int nft_name_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct nft_service *const *)a)->name,
		      (*(const struct nft_service *const *)b)->name);
}

/* Validates every service and refuses a name listed twice. */
static int nft_validate_all(struct nft_engine *e, const struct nft_service *svcs, size_t n)
{
	int err = 0;
	for (size_t i = 0; i < n; i++)
		if ((err = nft_service_validate(&svcs[i], e->err, sizeof(e->err))))
			return err;
	const struct nft_service **v = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = &svcs[i];
	qsort(v, n, sizeof(*v), nft_name_cmp);
	for (size_t i = 1; i < n && !err; i++) {
		if (!strcmp(v[i]->name, v[i - 1]->name)) {
			nft_set_err(e, "service %s: listed twice", v[i]->name);
			err = -EINVAL;
		}
	}
	free(v);
	return err;
}

int nft_sync(struct nft_engine *e, const struct nft_service *svcs, size_t n)
{
	struct nft_change *ch = NULL;
	size_t nch = 0;
	int err = 0;

	e->err[0] = '\0';
	if ((err = nft_validate_all(e, svcs, n)))
		return err;
	ch = calloc(n + e->count + 1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	uint32_t epoch = ++e->epoch;
	for (size_t i = 0; i < n; i++) {
		struct nft_entry *it = nft_find(e, svcs[i].name);
		if (it)
			it->mark = epoch;
		if (e->rebuild || !it || !nft_service_equal(&it->svc, &svcs[i]))
			ch[nch++] = (struct nft_change){ .old = it ? &it->svc : NULL,
							 .new = &svcs[i],
							 .id = it ? it->id : 0,
							 .old_vmap = it ? it->vmap : NULL };
	}
	for (size_t i = 0; i < e->n_buckets; i++)
		for (struct nft_entry *it = e->buckets[i]; it; it = it->next)
			if (it->mark != epoch)
				ch[nch++] = (struct nft_change){ .old = &it->svc,
								 .id = it->id,
								 .old_vmap = it->vmap };
	if (nch == 0 && !e->rebuild) {
		e->last = (struct nft_batch_stats){ 0 };
		goto out;
	}
	err = nft_commit(e, ch, nch);
out:
	free(ch);
	return err;
}

int nft_service_upsert(struct nft_engine *e, const struct nft_service *svc)
{
	e->err[0] = '\0';
	int err = nft_service_validate(svc, e->err, sizeof(e->err));
	if (err)
		return err;
	struct nft_entry *it = nft_find(e, svc->name);
	if (e->rebuild) {
		/* The table is replaced: every other service is re-added with it. */
		size_t n = 0;
		struct nft_change *ch = calloc(e->count + 1, sizeof(*ch));
		if (!ch)
			return -ENOMEM;
		for (size_t i = 0; i < e->n_buckets; i++)
			for (struct nft_entry *x = e->buckets[i]; x; x = x->next)
				if (x != it)
					ch[n++] = (struct nft_change){ .old = &x->svc,
								       .new = &x->svc,
								       .id = x->id,
								       .old_vmap = x->vmap };
		ch[n++] = (struct nft_change){ .old = it ? &it->svc : NULL,
					       .new = svc,
					       .id = it ? it->id : 0,
					       .old_vmap = it ? it->vmap : NULL };
		err = nft_commit(e, ch, n);
		free(ch);
		return err;
	}
	if (it && nft_service_equal(&it->svc, svc)) {
		e->last = (struct nft_batch_stats){ 0 };
		return 0;
	}
	struct nft_change c = { .old = it ? &it->svc : NULL,
				.new = svc,
				.id = it ? it->id : 0,
				.old_vmap = it ? it->vmap : NULL };
	return nft_commit(e, &c, 1);
}

int nft_service_delete(struct nft_engine *e, const char *name)
{
	e->err[0] = '\0';
	struct nft_entry *it = nft_find(e, name);
	if (!it) {
		nft_set_err(e, "service %s: not found", name);
		return -ENOENT;
	}
	if (e->rebuild) {
		size_t n = 0;
		struct nft_change *ch = calloc(e->count, sizeof(*ch));
		if (!ch)
			return -ENOMEM;
		for (size_t i = 0; i < e->n_buckets; i++)
			for (struct nft_entry *x = e->buckets[i]; x; x = x->next)
				ch[n++] = (struct nft_change){ .old = &x->svc,
							       .new = x == it ? NULL : &x->svc,
							       .id = x->id,
							       .old_vmap = x->vmap };
		int err = nft_commit(e, ch, n);
		free(ch);
		return err;
	}
	struct nft_change c = { .old = &it->svc, .id = it->id, .old_vmap = it->vmap };
	return nft_commit(e, &c, 1);
}

int nft_remove(struct nft_engine *e)
{
	e->err[0] = '\0';
	nft_batch_reset(&e->b);
	int err = nft_delete_table_msg(e);
	if (!err)
		err = nft_batch_send(&e->b);
	if (err == -ENOENT)
		err = 0;
	if (err) {
		nft_set_err(e, "%s", e->b.err);
		return err;
	}
	nft_forget_all(e);
	e->table_present = false;
	e->rebuild = true;
	return 0;
}

/* ---- adoption ---- */

static int nft_str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Checks that the decoded services render to exactly the table's objects: the same number of
 * chains, named sets and elements, every rendered chain present with its number of rules.
 */
static bool nft_adopt_verify(struct nft_engine *e, const struct nft_state *st)
{
	size_t chains = 0, sets = 0, elems = 0, rules = 0;
	size_t want_chains = NFT_SKELETON_CHAINS, want_sets = NFT_SKELETON_SETS, want_elems = 0;
	size_t want_rules = nft_skeleton_rules(&e->cfg);
	bool ok = false;
	const char **names = malloc((st->n_objects + 1) * sizeof(*names));
	size_t n_names = 0;
	if (!names)
		return false;

	for (size_t i = 0; i < st->n_objects; i++) {
		const struct nft_object *o = &st->objects[i];
		switch (o->kind) {
		case NFT_OBJ_CHAIN:
			chains++;
			names[n_names++] = o->name;
			break;
		case NFT_OBJ_SET:
			sets += !o->anonymous;
			break;
		case NFT_OBJ_ELEM:
			/* only the shared maps: the affinity set fills with traffic */
			for (int m = 0; m < NFT_MAP__COUNT && !o->anonymous; m++)
				elems += !strcmp(o->name, nft_map_names[m]);
			break;
		case NFT_OBJ_RULE:
			rules++;
			break;
		}
	}
	qsort(names, n_names, sizeof(*names), nft_str_cmp);
	for (size_t i = 0; i < st->n_services; i++) {
		struct nft_render r;
		if (nft_render_service(&e->cfg, &st->services[i], st->service_ids[i], &r))
			goto out;
		want_chains += r.n_chains;
		want_elems += r.n_elems;
		for (size_t j = 0; j < r.n_chains; j++) {
			const char *key = r.chains[j].name;
			want_sets += r.chains[j].kind == NFT_CH_SVC; /* its endpoint map */
			want_rules += r.chains[j].n_rules;
			if (!bsearch(&key, names, n_names, sizeof(*names), nft_str_cmp)) {
				nft_render_free(&r);
				goto out;
			}
		}
		nft_render_free(&r);
	}
	ok = chains == want_chains && sets == want_sets && elems == want_elems &&
	     rules == want_rules;
out:
	free(names);
	return ok;
}

static int nft_adopt(struct nft_engine *e)
{
	struct nft_state *st = NULL;
	int err = nft_dump_ex(e->cfg.table, false, &st);
	if (err) {
		nft_set_err(e, "reading table inet %s back: %s", e->cfg.table, strerror(-err));
		return err;
	}
	e->table_present = st->present;
	e->rebuild = true;
	/* new endpoint maps are numbered above the ones the table holds */
	for (size_t i = 0; i < st->n_objects; i++) {
		const struct nft_object *o = &st->objects[i];
		uint32_t id, seq;
		if (o->kind == NFT_OBJ_SET && sscanf(o->name, "e%u.%u", &id, &seq) == 2 &&
		    seq > e->b.vmap_seq)
			e->b.vmap_seq = seq;
	}
	if (st->present && st->comment && !strcmp(st->comment, e->sig) && nft_adopt_verify(e, st)) {
		for (size_t i = 0; i < st->n_services && !err; i++)
			err = nft_store(e, &st->services[i], st->service_ids[i],
					st->service_vmaps[i]);
		if (!err)
			e->rebuild = false;
		else
			nft_forget_all(e);
	} else if (st->present) {
		log_info("nft: table inet %s does not match this configuration or is damaged; "
			 "it is replaced at the next change",
			 e->cfg.table);
	}
	nft_state_free(st);
	return err;
}
