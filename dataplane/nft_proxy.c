// SPDX-License-Identifier: Apache-2.0
/*
 * The nftables service proxy engine: the services last applied (a hash by name), what they
 * share in the table (endpoint blocks, endpoint maps in use, endpoint addresses in the
 * hairpin set, each counted), and the diff that turns a new desired state into one atomic
 * batch.
 *
 * The design choice: the engine is level-triggered over rendered objects. For every service
 * whose spec changed it renders old and new (nft_rules.c) and sends only the difference, in
 * phases that keep every reference valid inside the batch and the kernel's work small: delete
 * elements, flush chains to be rewritten, delete chains and sets, create sets and chains,
 * write rules, and only then add elements (a rule bound to a map is checked against every
 * element the map already holds; an element added later, against every rule bound to it).
 * At start it adopts what the kernel holds (nft_dump): when the read-back renders exactly to
 * the table's objects the engine continues from it; otherwise the next change replaces the
 * whole table in one batch (delete table + rebuild), so a damaged table is repaired without a
 * moment of missing rules.
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
	struct nft_blocks blk;
};

/* Endpoint address -> count (of services' renderings that use it), open addressing with
 * linear probing; address 0 marks an empty slot (an endpoint never has it). */
struct nft_addrmap {
	uint32_t *keys;
	int32_t *vals;
	size_t cap, n;
};

struct nft_engine {
	struct nft_rcfg cfg;
	char table[64];
	char sig[256];
	struct nft_batch b;
	struct nft_entry **buckets;
	size_t n_buckets, count;
	uint32_t epoch;
	uint64_t blocks_used[(NFT_BLOCKS + 63) / 64];
	uint32_t shard_users[NFT_SHARDS]; /* blocks in each endpoint map */
	uint32_t affinity_users;	  /* services using the affinity set */
	struct nft_addrmap hairpin;	  /* endpoint address -> services using it */
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

/* The endpoints one frontend uses are the same (canonical order on both sides). */
static bool nft_used_equal(const struct nft_service *a, const struct nft_service *b, bool local)
{
	/* the same list (the usual case of a resync) needs no sorting */
	if (a->n_endpoints == b->n_endpoints &&
	    (!a->n_endpoints ||
	     !memcmp(a->endpoints, b->endpoints, a->n_endpoints * sizeof(*a->endpoints))))
		return true;
	size_t *oa, *ob;
	int na = nft_used_endpoints(a, local, &oa), nb = nft_used_endpoints(b, local, &ob);
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

bool nft_service_equal(const struct nft_service *a, const struct nft_service *b)
{
	if (strcmp(a->name, b->name) || a->protocol != b->protocol ||
	    a->cluster_ip.s_addr != b->cluster_ip.s_addr || a->port != b->port ||
	    a->node_port != b->node_port || nft_service_affinity(a) != nft_service_affinity(b) ||
	    a->n_external_ips != b->n_external_ips || a->n_source_ranges != b->n_source_ranges ||
	    nft_service_ext_local(a) != nft_service_ext_local(b))
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
	return nft_used_equal(a, b, false) &&
	       (!nft_service_ext_local(a) || nft_used_equal(a, b, true));
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

/* ---- endpoint address counts ---- */

static size_t nft_addr_slot(const struct nft_addrmap *m, uint32_t a)
{
	uint64_t h = (uint64_t)a * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 20) & (m->cap - 1);
}

static int nft_addrmap_grow(struct nft_addrmap *m)
{
	if ((m->n + 1) * 2 <= m->cap)
		return 0;
	struct nft_addrmap g = { .cap = m->cap ? m->cap * 2 : 256 };
	g.keys = calloc(g.cap, sizeof(*g.keys));
	g.vals = calloc(g.cap, sizeof(*g.vals));
	if (!g.keys || !g.vals) {
		free(g.keys);
		free(g.vals);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t k = nft_addr_slot(&g, m->keys[i]);
		while (g.keys[k])
			k = (k + 1) & (g.cap - 1);
		g.keys[k] = m->keys[i];
		g.vals[k] = m->vals[i];
	}
	g.n = m->n;
	free(m->keys);
	free(m->vals);
	*m = g;
	return 0;
}

static int32_t nft_addrmap_get(const struct nft_addrmap *m, uint32_t a)
{
	if (!m->cap)
		return 0;
	for (size_t k = nft_addr_slot(m, a); m->keys[k]; k = (k + 1) & (m->cap - 1))
		if (m->keys[k] == a)
			return m->vals[k];
	return 0;
}

/* Adds d to a's count; an entry whose count reaches 0 is removed (backward shift). */
static int nft_addrmap_add(struct nft_addrmap *m, uint32_t a, int32_t d)
{
	int err = nft_addrmap_grow(m);
	if (err)
		return err;
	size_t k = nft_addr_slot(m, a);
	while (m->keys[k] && m->keys[k] != a)
		k = (k + 1) & (m->cap - 1);
	if (!m->keys[k]) {
		if (!d)
			return 0;
		m->keys[k] = a;
		m->vals[k] = 0;
		m->n++;
	}
	m->vals[k] += d;
	if (m->vals[k])
		return 0;
	/* remove: shift later entries of the run back into the hole */
	size_t hole = k;
	for (size_t j = (k + 1) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
		size_t home = nft_addr_slot(m, m->keys[j]);
		bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
		if (movable) {
			m->keys[hole] = m->keys[j];
			m->vals[hole] = m->vals[j];
			hole = j;
		}
	}
	m->keys[hole] = 0;
	m->vals[hole] = 0;
	m->n--;
	return 0;
}

static void nft_addrmap_clear(struct nft_addrmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/* ---- endpoint blocks ---- */

static bool nft_block_valid(uint32_t b)
{
	return b < NFT_BLOCKS;
}

static bool nft_block_taken(const struct nft_engine *e, uint32_t b)
{
	return e->blocks_used[b / 64] & (1ull << (b % 64));
}

static void nft_block_set(struct nft_engine *e, uint32_t b, bool used)
{
	if (!nft_block_valid(b))
		return;
	if (used)
		e->blocks_used[b / 64] |= 1ull << (b % 64);
	else
		e->blocks_used[b / 64] &= ~(1ull << (b % 64));
}

/* The lowest free block, or NFT_NO_BLOCK. */
static uint32_t nft_block_alloc(struct nft_engine *e)
{
	for (uint32_t w = 0; w < (NFT_BLOCKS + 63) / 64; w++) {
		if (e->blocks_used[w] == ~0ull)
			continue;
		uint32_t b = w * 64 + (uint32_t)__builtin_ctzll(~e->blocks_used[w]);
		if (b >= NFT_BLOCKS)
			break;
		nft_block_set(e, b, true);
		return b;
	}
	return NFT_NO_BLOCK;
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
static int nft_store(struct nft_engine *e, const struct nft_service *s, struct nft_blocks blk)
{
	struct nft_service copy;
	int err = nft_service_copy(&copy, s);
	if (err)
		return err;
	struct nft_entry *it = nft_find(e, s->name);
	if (it) {
		nft_service_free_arrays(&it->svc);
		it->svc = copy;
		it->blk = blk;
		return 0;
	}
	if ((err = nft_grow(e)) || !(it = calloc(1, sizeof(*it)))) {
		nft_service_free_arrays(&copy);
		return err ? err : -ENOMEM;
	}
	it->svc = copy;
	it->blk = blk;
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

/* Forgets every service and what they shared. */
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
	memset(e->blocks_used, 0, sizeof(e->blocks_used));
	memset(e->shard_users, 0, sizeof(e->shard_users));
	e->affinity_users = 0;
	nft_addrmap_clear(&e->hairpin);
}

/* ---- the plan: one batch for a set of changes ---- */

struct nft_change {
	const struct nft_service *old; /* NULL: new service */
	const struct nft_service *new; /* NULL: deleted */
	struct nft_blocks ob, nb;      /* the blocks it had and will have */
	struct nft_render ro, rn;
};

/* Pointers into the renderings, sorted into the batch's phases. */
struct nft_vec {
	const void **v;
	const void **aux; /* the change (chains: the service and its blocks) */
	size_t n, cap;
};

enum {
	P_DEL_ELEM,
	P_DEL_RANGE,	   /* intervals deleted, start and end */
	P_DEL_RANGE_START, /* an interval whose endpoint changes: its start */
	P_FLUSH,	   /* chains rewritten */
	P_DEL_CHAIN,
	P_NEW_CHAIN,
	P_ADD_RANGE,
	P_ADD_RANGE_START,
	P_ADD_ELEM,
	P__COUNT
};

struct nft_plan {
	struct nft_vec p[P__COUNT];
	struct nft_addrmap hairpin_delta;
	int32_t shard_delta[NFT_SHARDS];
	int32_t affinity_delta;
};

static int nft_vec_add(struct nft_vec *v, const void *o, const void *aux)
{
	if (v->n == v->cap) {
		size_t nc = v->cap ? v->cap * 2 : 64;
		const void **nv = realloc(v->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		v->v = nv;
		const void **na = realloc(v->aux, nc * sizeof(*na));
		if (!na)
			return -ENOMEM;
		v->aux = na;
		v->cap = nc;
	}
	v->v[v->n] = o;
	v->aux[v->n++] = aux;
	return 0;
}

static void nft_plan_free(struct nft_plan *p)
{
	for (int i = 0; i < P__COUNT; i++) {
		free(p->p[i].v);
		free(p->p[i].aux);
	}
	nft_addrmap_clear(&p->hairpin_delta);
}

static bool nft_elem_same(const struct nft_r_elem *a, const struct nft_r_elem *b)
{
	return a->map == b->map && !memcmp(a->key, b->key, a->keylen) &&
	       !strcmp(a->chain, b->chain) && !strcmp(a->comment, b->comment);
}

/* The ranges of one block in a rendering (they are contiguous, in interval order). */
static size_t nft_block_ranges(const struct nft_render *r, uint32_t block, size_t *first)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_ranges; i++) {
		if (r->ranges[i].block != block)
			continue;
		if (!n)
			*first = i;
		n++;
	}
	return n;
}

static int nft_plan_ranges(struct nft_plan *p, const struct nft_render *ro,
			   const struct nft_render *rn)
{
	int err = 0;
	/* old blocks: unchanged intervals stay; a block whose endpoint count changed (or that
	 * is gone) is emptied and refilled, since its boundaries moved */
	for (size_t i = 0; i < ro->n_ranges && !err; i++) {
		const struct nft_r_range *g = &ro->ranges[i];
		size_t f0 = 0, f1 = 0;
		size_t n0 = nft_block_ranges(ro, g->block, &f0);
		size_t n1 = nft_block_ranges(rn, g->block, &f1);
		if (n0 != n1) {
			err = nft_vec_add(&p->p[P_DEL_RANGE], g, NULL);
			continue;
		}
		const struct nft_r_range *h = &rn->ranges[f1 + (i - f0)];
		if (g->addr.s_addr != h->addr.s_addr || g->port != h->port) {
			err = nft_vec_add(&p->p[P_DEL_RANGE_START], g, NULL);
			if (!err)
				err = nft_vec_add(&p->p[P_ADD_RANGE_START], h, NULL);
		}
	}
	for (size_t i = 0; i < rn->n_ranges && !err; i++) {
		const struct nft_r_range *h = &rn->ranges[i];
		size_t f0 = 0, f1 = 0;
		if (nft_block_ranges(ro, h->block, &f0) != nft_block_ranges(rn, h->block, &f1))
			err = nft_vec_add(&p->p[P_ADD_RANGE], h, NULL);
	}
	return err;
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
			err = nft_vec_add(&p->p[P_DEL_ELEM], &ro->elems[i], c);
	}
	for (size_t j = 0; j < rn->n_elems && !err; j++) {
		bool keep = false;
		for (size_t i = 0; i < ro->n_elems && !keep; i++)
			keep = nft_elem_same(&ro->elems[i], &rn->elems[j]);
		if (!keep)
			err = nft_vec_add(&p->p[P_ADD_ELEM], &rn->elems[j], c);
	}
	for (size_t i = 0; i < ro->n_chains && !err; i++) {
		bool found = false;
		for (size_t j = 0; j < rn->n_chains && !found; j++)
			found = !strcmp(ro->chains[i].name, rn->chains[j].name);
		if (!found)
			err = nft_vec_add(&p->p[P_DEL_CHAIN], &ro->chains[i], c);
	}
	for (size_t j = 0; j < rn->n_chains && !err; j++) {
		const struct nft_r_chain *nc = &rn->chains[j], *oc = NULL;
		for (size_t i = 0; i < ro->n_chains && !oc; i++)
			if (!strcmp(ro->chains[i].name, nc->name))
				oc = &ro->chains[i];
		if (!oc)
			err = nft_vec_add(&p->p[P_NEW_CHAIN], nc, c);
		else if (oc->sig != nc->sig)
			err = nft_vec_add(&p->p[P_FLUSH], nc, c);
	}
	p->affinity_delta += (int32_t)rn->affinity - (int32_t)ro->affinity;
	if (!err)
		err = nft_plan_ranges(p, ro, rn);
	for (size_t i = 0; i < ro->n_addrs && !err; i++)
		err = nft_addrmap_add(&p->hairpin_delta, ro->addrs[i].s_addr, -1);
	for (size_t i = 0; i < rn->n_addrs && !err; i++)
		err = nft_addrmap_add(&p->hairpin_delta, rn->addrs[i].s_addr, 1);
	if (nft_block_valid(c->ob.cluster) && c->old)
		p->shard_delta[nft_block_shard(c->ob.cluster)]--;
	if (nft_block_valid(c->ob.local) && c->old)
		p->shard_delta[nft_block_shard(c->ob.local)]--;
	if (nft_block_valid(c->nb.cluster) && c->new)
		p->shard_delta[nft_block_shard(c->nb.cluster)]++;
	if (nft_block_valid(c->nb.local) && c->new)
		p->shard_delta[nft_block_shard(c->nb.local)]++;
	return err;
}

static int nft_emit_elem_phase(struct nft_engine *e, const struct nft_vec *v, uint16_t type)
{
	if (!v->n)
		return 0;
	const struct nft_r_elem **w = malloc(v->n * sizeof(*w));
	if (!w)
		return -ENOMEM;
	int err = 0;
	for (int m = 0; m < NFT_MAP__COUNT && !err; m++) {
		size_t k = 0;
		for (size_t i = 0; i < v->n; i++) {
			const struct nft_r_elem *el = v->v[i];
			if (el->map == m)
				w[k++] = el;
		}
		if (k)
			err = nft_emit_elems(&e->cfg, &e->b, type, m, w, k);
	}
	free(w);
	return err;
}

static int nft_emit_range_phase(struct nft_engine *e, const struct nft_vec *v, uint16_t type,
				bool starts_only)
{
	if (!v->n)
		return 0;
	const struct nft_r_range **w = malloc(v->n * sizeof(*w));
	if (!w)
		return -ENOMEM;
	int err = 0;
	/* grouped by endpoint map: one message carries many intervals of one map */
	size_t *count = calloc(NFT_SHARDS + 1, sizeof(*count));
	if (!count) {
		free(w);
		return -ENOMEM;
	}
	for (size_t i = 0; i < v->n; i++)
		count[nft_block_shard(((const struct nft_r_range *)v->v[i])->block) + 1]++;
	for (uint32_t s = 1; s <= NFT_SHARDS; s++)
		count[s] += count[s - 1];
	for (size_t i = 0; i < v->n; i++) {
		const struct nft_r_range *g = v->v[i];
		w[count[nft_block_shard(g->block)]++] = g;
	}
	for (uint32_t s = 0, from = 0; s < NFT_SHARDS && !err; s++) {
		size_t to = count[s];
		if (to > from)
			err = nft_emit_ranges(&e->cfg, &e->b, type, s, w + from, to - from,
					      starts_only);
		from = (uint32_t)to;
	}
	free(count);
	free(w);
	return err;
}

/* Endpoint addresses whose count goes from 0 (add) or to 0 (delete). */
static int nft_emit_hairpin_phase(struct nft_engine *e, const struct nft_plan *p, bool rebuild,
				  uint16_t type)
{
	const struct nft_addrmap *d = &p->hairpin_delta;
	struct in_addr *v = malloc((d->n ? d->n : 1) * sizeof(*v));
	size_t n = 0;
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < d->cap; i++) {
		if (!d->keys[i])
			continue;
		int32_t base = rebuild ? 0 : nft_addrmap_get(&e->hairpin, d->keys[i]);
		int32_t now = base + d->vals[i];
		if ((type == NFT_MSG_NEWSETELEM && base == 0 && now > 0) ||
		    (type == NFT_MSG_DELSETELEM && base > 0 && now == 0))
			v[n++].s_addr = d->keys[i];
	}
	int err = n ? nft_emit_hairpin(&e->cfg, &e->b, type, v, n) : 0;
	free(v);
	return err;
}

/* Endpoint maps whose number of blocks goes from 0 (create) or to 0 (delete). */
static int nft_emit_shard_phase(struct nft_engine *e, const struct nft_plan *p, bool rebuild,
				uint16_t type)
{
	int err = 0;
	for (uint32_t s = 0; s < NFT_SHARDS && !err; s++) {
		int64_t base = rebuild ? 0 : e->shard_users[s];
		int64_t now = base + p->shard_delta[s];
		if ((type == NFT_MSG_NEWSET && base == 0 && now > 0) ||
		    (type == NFT_MSG_DELSET && base > 0 && now == 0))
			err = nft_emit_shard(&e->cfg, &e->b, type, s);
	}
	return err;
}

static int nft_emit_plan(struct nft_engine *e, const struct nft_plan *p, bool rebuild)
{
	struct nft_batch *b = &e->b;
	int err;

	if ((err = nft_emit_elem_phase(e, &p->p[P_DEL_ELEM], NFT_MSG_DELSETELEM)) ||
	    (err = nft_emit_range_phase(e, &p->p[P_DEL_RANGE], NFT_MSG_DELSETELEM, false)) ||
	    (err = nft_emit_range_phase(e, &p->p[P_DEL_RANGE_START], NFT_MSG_DELSETELEM, true)) ||
	    (err = nft_emit_hairpin_phase(e, p, rebuild, NFT_MSG_DELSETELEM)))
		return err;
	/* chains rewritten or deleted are emptied first: that unbinds the sets and chains
	 * their rules name */
	for (int ph = P_FLUSH; ph <= P_DEL_CHAIN; ph++) {
		for (size_t i = 0; i < p->p[ph].n; i++) {
			const struct nft_r_chain *c = p->p[ph].v[i];
			if ((err = nft_emit_chain(&e->cfg, b, NFT_MSG_DELRULE, c->name)))
				return err;
		}
	}
	for (size_t i = 0; i < p->p[P_DEL_CHAIN].n; i++) {
		const struct nft_r_chain *c = p->p[P_DEL_CHAIN].v[i];
		if ((err = nft_emit_chain(&e->cfg, b, NFT_MSG_DELCHAIN, c->name)))
			return err;
	}
	int64_t aff_base = rebuild ? 0 : e->affinity_users;
	int64_t aff_now = aff_base + p->affinity_delta;
	if (aff_base > 0 && aff_now == 0 &&
	    (err = nft_emit_affinity_set(&e->cfg, b, NFT_MSG_DELSET)))
		return err;
	if ((err = nft_emit_shard_phase(e, p, rebuild, NFT_MSG_DELSET)) ||
	    (err = nft_emit_shard_phase(e, p, rebuild, NFT_MSG_NEWSET)))
		return err;
	if (aff_base == 0 && aff_now > 0 &&
	    (err = nft_emit_affinity_set(&e->cfg, b, NFT_MSG_NEWSET)))
		return err;
	for (size_t i = 0; i < p->p[P_NEW_CHAIN].n; i++) {
		const struct nft_r_chain *c = p->p[P_NEW_CHAIN].v[i];
		if ((err = nft_emit_chain(&e->cfg, b, NFT_MSG_NEWCHAIN, c->name)))
			return err;
	}
	static const int rule_phases[] = { P_FLUSH, P_NEW_CHAIN };
	for (size_t k = 0; k < 2; k++) {
		const struct nft_vec *v = &p->p[rule_phases[k]];
		for (size_t i = 0; i < v->n; i++) {
			const struct nft_change *c = v->aux[i];
			if ((err = nft_emit_chain_rules(&e->cfg, b, c->new, &c->nb, v->v[i])))
				return err;
		}
	}
	if ((err = nft_emit_hairpin_phase(e, p, rebuild, NFT_MSG_NEWSETELEM)) ||
	    (err = nft_emit_range_phase(e, &p->p[P_ADD_RANGE], NFT_MSG_NEWSETELEM, false)) ||
	    (err = nft_emit_range_phase(e, &p->p[P_ADD_RANGE_START], NFT_MSG_NEWSETELEM, true)))
		return err;
	return nft_emit_elem_phase(e, &p->p[P_ADD_ELEM], NFT_MSG_NEWSETELEM);
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
 * The blocks a change's new spec needs: its old ones where it keeps them, new ones taken
 * from the free blocks (marked used now; nft_commit gives them back if the batch fails).
 */
static int nft_blocks_choose(struct nft_engine *e, struct nft_change *c)
{
	bool need_cluster, need_local;
	c->nb = (struct nft_blocks){ NFT_NO_BLOCK, NFT_NO_BLOCK };
	if (!c->new)
		return 0;
	nft_blocks_needed(&e->cfg, c->new, &need_cluster, &need_local);
	if (need_cluster)
		c->nb.cluster = nft_block_valid(c->ob.cluster) ? c->ob.cluster : nft_block_alloc(e);
	if (need_local)
		c->nb.local = nft_block_valid(c->ob.local) ? c->ob.local : nft_block_alloc(e);
	if ((need_cluster && !nft_block_valid(c->nb.cluster)) ||
	    (need_local && !nft_block_valid(c->nb.local))) {
		nft_set_err(e, "service %s: no free endpoint block (at most %u)", c->new->name,
			    NFT_BLOCKS);
		return -ENOSPC;
	}
	return 0;
}

/* Gives back the blocks nft_blocks_choose took for changes that did not keep them. */
static void nft_blocks_release(struct nft_engine *e, const struct nft_change *c, bool applied)
{
	const uint32_t ob[2] = { c->ob.cluster, c->ob.local };
	const uint32_t nb[2] = { c->nb.cluster, c->nb.local };
	for (int i = 0; i < 2; i++) {
		if (applied && nb[i] != ob[i])
			nft_block_set(e, ob[i], false); /* the old one is no longer used */
		else if (!applied && nb[i] != ob[i])
			nft_block_set(e, nb[i], false); /* the new one was never used */
	}
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
	size_t chosen = 0;

	memset(&plan, 0, sizeof(plan));
	nft_batch_reset(&e->b);
	if (rebuild) {
		if (e->table_present && (err = nft_delete_table_msg(e)))
			goto out;
		if ((err = nft_emit_skeleton(&e->cfg, &e->b, e->sig)))
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		chosen = i + 1;
		if ((err = nft_blocks_choose(e, &changes[i])))
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct nft_change *c = &changes[i];
		if (c->old && !rebuild &&
		    (err = nft_render_service(&e->cfg, c->old, &c->ob, &c->ro)))
			goto out;
		if (c->new && (err = nft_render_service(&e->cfg, c->new, &c->nb, &c->rn)))
			goto out;
		if ((err = nft_plan_change(&plan, c)))
			goto out;
	}
	if (rebuild) {
		/* the old table's counts are gone with it */
		for (size_t i = 0; i < n; i++) {
			struct nft_change *c = &changes[i];
			if (c->old && nft_block_valid(c->ob.cluster))
				plan.shard_delta[nft_block_shard(c->ob.cluster)]++;
			if (c->old && nft_block_valid(c->ob.local))
				plan.shard_delta[nft_block_shard(c->ob.local)]++;
		}
	}
	nft_batch_hint(&e->b, n * 2048); /* about what a service with ten endpoints takes */
	if ((err = nft_emit_plan(e, &plan, rebuild)))
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

	/* applied: record the new state */
	if (rebuild) {
		e->rebuild = false;
		e->table_present = true;
		memset(e->shard_users, 0, sizeof(e->shard_users));
		e->affinity_users = 0;
		nft_addrmap_clear(&e->hairpin);
	}
	e->affinity_users = (uint32_t)((int64_t)e->affinity_users + plan.affinity_delta);
	for (uint32_t s = 0; s < NFT_SHARDS; s++)
		e->shard_users[s] = (uint32_t)((int64_t)e->shard_users[s] + plan.shard_delta[s]);
	for (size_t i = 0; i < plan.hairpin_delta.cap && !err; i++)
		if (plan.hairpin_delta.keys[i])
			err = nft_addrmap_add(&e->hairpin, plan.hairpin_delta.keys[i],
					      plan.hairpin_delta.vals[i]);
	for (size_t i = 0; i < n; i++) {
		struct nft_change *c = &changes[i];
		nft_blocks_release(e, c, true);
		int serr = 0;
		if (c->new)
			serr = nft_store(e, c->new, c->nb);
		else
			nft_forget(e, c->old->name);
		if (serr && !err)
			err = serr;
	}
	chosen = 0;
	if (err) {
		/* The kernel holds the change but we could not record it: rebuild next time. */
		e->rebuild = true;
		nft_set_err(e, "recording the applied state: %s", strerror(-err));
	}
out:
	for (size_t i = 0; i < chosen; i++)
		nft_blocks_release(e, &changes[i], false);
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
			nft_set_err(e, "pod CIDR %zu: prefix %u > 32", i,
				    e->cfg.pod_cidrs[i].prefix);
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

static struct nft_change nft_change_of(const struct nft_entry *it, const struct nft_service *new)
{
	return (struct nft_change){ .old = it ? &it->svc : NULL,
				    .new = new,
				    .ob = it ? it->blk
					     : (struct nft_blocks){ NFT_NO_BLOCK, NFT_NO_BLOCK } };
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
			ch[nch++] = nft_change_of(it, &svcs[i]);
	}
	for (size_t i = 0; i < e->n_buckets; i++)
		for (struct nft_entry *it = e->buckets[i]; it; it = it->next)
			if (it->mark != epoch)
				ch[nch++] = nft_change_of(it, NULL);
	if (nch == 0 && !e->rebuild) {
		e->last = (struct nft_batch_stats){ 0 };
		goto out;
	}
	err = nft_commit(e, ch, nch);
out:
	free(ch);
	return err;
}

/* With e->rebuild: one batch that replaces the table with every service, `svc` changed
 * (NULL: `name` deleted). */
static int nft_rebuild_with(struct nft_engine *e, const char *name, const struct nft_service *svc)
{
	size_t n = 0;
	bool found = false;
	struct nft_change *ch = calloc(e->count + 1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	for (size_t i = 0; i < e->n_buckets; i++) {
		for (struct nft_entry *x = e->buckets[i]; x; x = x->next) {
			bool it = !strcmp(x->svc.name, name);
			found |= it;
			ch[n++] = nft_change_of(x, it ? svc : &x->svc);
		}
	}
	if (!found && svc)
		ch[n++] = nft_change_of(NULL, svc);
	int err = nft_commit(e, ch, n);
	free(ch);
	return err;
}

int nft_service_upsert(struct nft_engine *e, const struct nft_service *svc)
{
	e->err[0] = '\0';
	int err = nft_service_validate(svc, e->err, sizeof(e->err));
	if (err)
		return err;
	if (e->rebuild)
		return nft_rebuild_with(e, svc->name, svc);
	struct nft_entry *it = nft_find(e, svc->name);
	if (it && nft_service_equal(&it->svc, svc)) {
		e->last = (struct nft_batch_stats){ 0 };
		return 0;
	}
	struct nft_change c = nft_change_of(it, svc);
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
	if (e->rebuild)
		return nft_rebuild_with(e, name, NULL);
	struct nft_change c = nft_change_of(it, NULL);
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

static bool nft_is_shard(const char *name, uint32_t *shard)
{
	char *end;
	size_t pl = strlen(NFT_SHARD_PREFIX);
	if (strncmp(name, NFT_SHARD_PREFIX, pl) || !name[pl])
		return false;
	unsigned long s = strtoul(name + pl, &end, 10);
	if (*end || s >= NFT_SHARDS)
		return false;
	*shard = (uint32_t)s;
	return true;
}

/*
 * Checks that the decoded services render to exactly the table's objects: the same chains
 * (by name) and number of rules, the same named sets, as many shared map elements and
 * endpoint intervals, and the same hairpin addresses. Fills the counts the engine keeps.
 */
static bool nft_adopt_verify(struct nft_engine *e, const struct nft_state *st,
			     uint32_t shard_users[NFT_SHARDS], uint32_t *affinity_users,
			     struct nft_addrmap *hairpin)
{
	size_t chains = 0, sets = 0, elems = 0, rules = 0, ranges = 0, hp = 0;
	size_t want_chains = NFT_SKELETON_CHAINS, want_sets = NFT_SKELETON_SETS, want_elems = 0;
	size_t want_rules = nft_skeleton_rules(&e->cfg), want_ranges = 0;
	bool ok = false;
	const char **names = malloc((st->n_objects + 1) * sizeof(*names));
	const char **snames = malloc((st->n_objects + 1) * sizeof(*snames));
	size_t n_names = 0, n_snames = 0;
	if (!names || !snames)
		goto out;

	for (size_t i = 0; i < st->n_objects; i++) {
		const struct nft_object *o = &st->objects[i];
		uint32_t shard;
		switch (o->kind) {
		case NFT_OBJ_CHAIN:
			chains++;
			names[n_names++] = o->name;
			break;
		case NFT_OBJ_SET:
			sets++;
			snames[n_snames++] = o->name;
			/* the shared maps' and the endpoint maps' elements (the affinity set
			 * fills with traffic) */
			for (int m = 0; m < NFT_MAP__COUNT; m++)
				elems += !strcmp(o->name, nft_map_names[m]) ? o->n_elems : 0;
			ranges += nft_is_shard(o->name, &shard) ? o->n_elems : 0;
			hp += !strcmp(o->name, NFT_HAIRPIN_SET) ? o->n_elems : 0;
			break;
		case NFT_OBJ_ELEM:
			break;
		case NFT_OBJ_RULE:
			rules++;
			break;
		}
	}
	qsort(names, n_names, sizeof(*names), nft_str_cmp);
	qsort(snames, n_snames, sizeof(*snames), nft_str_cmp);
	for (size_t i = 0; i < st->n_services; i++) {
		struct nft_render r;
		const struct nft_blocks *blk = &st->service_blocks[i];
		if (nft_render_service(&e->cfg, &st->services[i], blk, &r))
			goto out;
		want_chains += r.n_chains;
		want_elems += r.n_elems;
		want_ranges += 2 * r.n_ranges;
		*affinity_users += r.affinity;
		bool found = true;
		for (size_t j = 0; j < r.n_chains && found; j++) {
			const char *key = r.chains[j].name;
			want_rules += r.chains[j].n_rules;
			found = bsearch(&key, names, n_names, sizeof(*names), nft_str_cmp);
		}
		for (size_t j = 0; j < r.n_addrs && found; j++)
			found = !nft_addrmap_add(hairpin, r.addrs[j].s_addr, 1);
		bool need_cluster, need_local;
		nft_blocks_needed(&e->cfg, &st->services[i], &need_cluster, &need_local);
		if (need_cluster)
			shard_users[nft_block_shard(blk->cluster)]++;
		if (need_local)
			shard_users[nft_block_shard(blk->local)]++;
		nft_render_free(&r);
		if (!found)
			goto out;
	}
	for (uint32_t s = 0; s < NFT_SHARDS; s++) {
		char name[NFT_OBJ_NAME_MAX];
		const char *key = name;
		nft_name_shard(name, s);
		if (shard_users[s] &&
		    !bsearch(&key, snames, n_snames, sizeof(*snames), nft_str_cmp))
			goto out;
		want_sets += shard_users[s] > 0;
	}
	want_sets += *affinity_users > 0;
	/* every address in the hairpin set is one the services use, and each only once */
	bool hp_ok = hp == hairpin->n && st->n_hairpin == hp;
	for (size_t i = 0; i < st->n_hairpin && hp_ok; i++)
		hp_ok = nft_addrmap_get(hairpin, st->hairpin[i].s_addr) > 0;
	ok = hp_ok && chains == want_chains && sets == want_sets && elems == want_elems &&
	     rules == want_rules && ranges == want_ranges;
out:
	free(names);
	free(snames);
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
	uint32_t shard_users[NFT_SHARDS] = { 0 }, affinity_users = 0;
	struct nft_addrmap hairpin = { 0 };
	if (st->present && st->comment && !strcmp(st->comment, e->sig) &&
	    nft_adopt_verify(e, st, shard_users, &affinity_users, &hairpin)) {
		for (size_t i = 0; i < st->n_services && !err; i++) {
			const struct nft_blocks *blk = &st->service_blocks[i];
			bool taken =
				(nft_block_valid(blk->cluster) &&
				 nft_block_taken(e, blk->cluster)) ||
				(nft_block_valid(blk->local) && nft_block_taken(e, blk->local));
			if (taken) {
				/* two services read from one block: not a table we wrote */
				err = -EEXIST;
				break;
			}
			nft_block_set(e, blk->cluster, true);
			nft_block_set(e, blk->local, true);
			err = nft_store(e, &st->services[i], *blk);
		}
		if (!err) {
			e->rebuild = false;
			memcpy(e->shard_users, shard_users, sizeof(shard_users));
			e->affinity_users = affinity_users;
			e->hairpin = hairpin;
			hairpin = (struct nft_addrmap){ 0 };
		} else {
			nft_forget_all(e);
			if (err == -EEXIST)
				err = 0;
		}
	}
	if (e->rebuild && st->present)
		log_info("nft: table inet %s does not match this configuration or is damaged; "
			 "it is replaced at the next change",
			 e->cfg.table);
	nft_addrmap_clear(&hairpin);
	nft_state_free(st);
	return err;
}
