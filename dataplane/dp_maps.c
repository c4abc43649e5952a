// SPDX-License-Identifier: Apache-2.0
/*
 * Programming Services into the maps. A Service owns a service id and, per update, one of two
 * slot generations: dp_service_upsert() writes the new backends, then the idle generation's
 * slots and a new Maglev table, and only then flips every frontend's record to the new
 * generation (one map update each); the old generation's slots and backends no one uses any
 * more are deleted afterwards. A packet therefore sees the old set or the new one, never a
 * mix. Backends are shared by address and port across services and reference-counted.
 *
 * The index kept here (name -> service, addr:port -> backend) is a cache of the maps: dp_open
 * rebuilds it from the pinned maps, so a restarted agent continues where the last one was.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "dp_internal.h"
#include "log.h"

/* ---- small hash tables ------------------------------------------------------------------ */

static uint64_t hash64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static uint64_t be_key(uint32_t addr, uint16_t port_be)
{
	return ((uint64_t)addr << 16) | port_be;
}

static int tab_grow(void ***tab, size_t *buckets, size_t n, size_t next_off,
		    uint64_t (*hash)(const void *))
{
	size_t nb = *buckets ? *buckets * 2 : 1024;
	void **t;

	if (n < *buckets)
		return 0;
	t = calloc(nb, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < *buckets; i++) {
		void *e = (*tab)[i];

		while (e) {
			void *nx = *(void **)((char *)e + next_off);
			size_t b = hash(e) & (nb - 1);

			*(void **)((char *)e + next_off) = t[b];
			t[b] = e;
			e = nx;
		}
	}
	free(*tab);
	*tab = t;
	*buckets = nb;
	return 0;
}

static uint64_t svc_hash(const void *e)
{
	return hash_str(((const struct dp_svc *)e)->name);
}

static uint64_t be_hash(const void *e)
{
	return hash64(((const struct dp_be *)e)->key);
}

static struct dp_svc *svc_find(struct dp *dp, const char *name)
{
	struct dp_svc *s;

	if (!dp->svc_buckets)
		return NULL;
	for (s = dp->svc_tab[hash_str(name) & (dp->svc_buckets - 1)]; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

static int svc_insert(struct dp *dp, struct dp_svc *s)
{
	int err = tab_grow((void ***)&dp->svc_tab, &dp->svc_buckets, dp->n_svc,
			   offsetof(struct dp_svc, next), svc_hash);
	size_t b;

	if (err)
		return err;
	b = svc_hash(s) & (dp->svc_buckets - 1);
	s->next = dp->svc_tab[b];
	dp->svc_tab[b] = s;
	dp->n_svc++;
	return 0;
}

static void svc_remove(struct dp *dp, struct dp_svc *s)
{
	struct dp_svc **pp = &dp->svc_tab[svc_hash(s) & (dp->svc_buckets - 1)];

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			dp->n_svc--;
			return;
		}
	}
}

static struct dp_be *be_find(struct dp *dp, uint64_t key)
{
	struct dp_be *b;

	if (!dp->be_buckets)
		return NULL;
	for (b = dp->be_tab[hash64(key) & (dp->be_buckets - 1)]; b; b = b->next)
		if (b->key == key)
			return b;
	return NULL;
}

static int be_insert(struct dp *dp, struct dp_be *b)
{
	int err = tab_grow((void ***)&dp->be_tab, &dp->be_buckets, dp->n_be,
			   offsetof(struct dp_be, next), be_hash);
	size_t i;

	if (err)
		return err;
	i = be_hash(b) & (dp->be_buckets - 1);
	b->next = dp->be_tab[i];
	dp->be_tab[i] = b;
	dp->n_be++;
	return 0;
}

static void be_remove(struct dp *dp, struct dp_be *b)
{
	struct dp_be **pp = &dp->be_tab[be_hash(b) & (dp->be_buckets - 1)];

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == b) {
			*pp = b->next;
			dp->n_be--;
			return;
		}
	}
}

/* ---- id allocation ------------------------------------------------------------------------ */

static int ids_init(struct dp_ids *ids, uint32_t max)
{
	ids->free = calloc(max, sizeof(*ids->free));
	if (!ids->free)
		return -ENOMEM;
	ids->n_free = 0;
	ids->next = 1;
	ids->max = max;
	return 0;
}

static int ids_get(struct dp_ids *ids, uint32_t *out)
{
	if (ids->n_free) {
		*out = ids->free[--ids->n_free];
		return 0;
	}
	if (ids->next >= ids->max)
		return -ENOSPC;
	*out = ids->next++;
	return 0;
}

static void ids_put(struct dp_ids *ids, uint32_t id)
{
	if (id && ids->n_free < ids->max)
		ids->free[ids->n_free++] = id;
}

/* ---- batched map operations -------------------------------------------------------------- */

/* One entry written or deleted, counted (dp_stats().map_writes); libbpf's result and errno. */
static int map_put(struct dp *dp, int fd, const void *key, const void *val)
{
	dp->map_writes++;
	return bpf_map_update_elem(fd, key, val, BPF_ANY);
}

static int map_del(struct dp *dp, int fd, const void *key)
{
	dp->map_writes++;
	return bpf_map_delete_elem(fd, key);
}

/* Updates n entries, in kernel batches where the map type has them, else one by one. */
static int map_update_many(struct dp *dp, int fd, const void *keys, const void *vals, size_t n,
			   size_t ksz, size_t vsz)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo, .elem_flags = BPF_ANY);
	size_t done = 0;

	dp->map_writes += n;
	while (done < n) {
		__u32 cnt = (__u32)(n - done);
		int err = bpf_map_update_batch(fd, (const char *)keys + done * ksz,
					       (const char *)vals + done * vsz, &cnt, &bo);

		if (err == -EINVAL || err == -EOPNOTSUPP) {
			for (; done < n; done++)
				if (bpf_map_update_elem(fd, (const char *)keys + done * ksz,
							(const char *)vals + done * vsz, BPF_ANY))
					return -errno;
			return 0;
		}
		if (err)
			return err;
		done += cnt;
	}
	return 0;
}

static int map_delete_many(struct dp *dp, int fd, const void *keys, size_t n, size_t ksz)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	__u32 cnt = (__u32)n;
	int err;

	if (!n)
		return 0;
	dp->map_writes += n;
	err = bpf_map_delete_batch(fd, keys, &cnt, &bo);
	if (!err)
		return 0;
	/* A missing key stops a batch: finish one by one, ignoring what is already gone. */
	for (size_t i = 0; i < n; i++)
		if (bpf_map_delete_elem(fd, (const char *)keys + i * ksz) && errno != ENOENT)
			return -errno;
	return 0;
}

/* Backend entries no one names any more: zeroed (shoal_be_v4 is an array; zero is none). */
static int be_clear_many(struct dp *dp, const uint32_t *ids, size_t n)
{
	struct shoal_backend_v4 *zero;
	int err;

	if (!n)
		return 0;
	zero = calloc(n, sizeof(*zero));
	if (!zero)
		return -ENOMEM;
	err = map_update_many(dp, dp->map_fd[DP_MAP_BE], ids, zero, n, sizeof(*ids),
			      sizeof(*zero));
	free(zero);
	return err;
}

/* A reused id starts its counters from zero. */
static int counters_reset(struct dp *dp, int fd, uint32_t id)
{
	struct shoal_counter *z = calloc((size_t)dp->ncpus, sizeof(*z));
	int err = 0;

	if (!z)
		return -ENOMEM;
	if (map_put(dp, fd, &id, z))
		err = -errno;
	free(z);
	return err;
}

/* Deletes a frontend only while it still points at this service (another may have it now). */
static void frontend_delete(struct dp *dp, const struct shoal_svc_key_v4 *k, uint32_t id,
			    const char *name)
{
	struct shoal_svc_v4 cur;

	if (bpf_map_lookup_elem(dp->map_fd[DP_MAP_SVC], k, &cur) || cur.id != id)
		return;
	if (map_del(dp, dp->map_fd[DP_MAP_SVC], k) && errno != ENOENT)
		log_warn("dp: service %s: delete frontend: %s", name, strerror(errno));
}

/* ---- backends ----------------------------------------------------------------------------- */

static void be_unref(struct dp *dp, struct dp_be *b, uint32_t *del_ids, size_t *n_del)
{
	if (--b->refs)
		return;
	del_ids[(*n_del)++] = b->id;
	dp->be_by_id[b->id] = NULL;
	be_remove(dp, b);
	ids_put(&dp->be_ids, b->id);
	free(b);
}

/* ---- services ----------------------------------------------------------------------------- */

struct sel {
	const struct dp_backend *b;
	int cls; /* 0 ready local, 1 ready remote, 2 term local, 3 term remote, 4 not serving */
};

static int sel_cmp(const void *a, const void *b)
{
	const struct sel *x = a, *y = b;

	if (x->cls != y->cls)
		return x->cls - y->cls;
	if (x->b->addr != y->b->addr)
		return x->b->addr < y->b->addr ? -1 : 1;
	return (int)x->b->port - (int)y->b->port;
}

static uint64_t spec_fingerprint(const struct dp_service *svc, const struct dp_backend *be,
				 size_t n)
{
	uint64_t h = hash_str(svc->name);

	h = hash64(h ^ ((uint64_t)svc->proto << 40 | (uint64_t)svc->flags << 32 |
			svc->affinity_timeout));
	for (size_t i = 0; i < svc->n_frontends; i++)
		h = hash64(h ^ be_key(svc->frontends[i].addr, svc->frontends[i].port) ^ i);
	/* Order-independent over backends. */
	uint64_t acc = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t x = hash64(be_key(be[i].addr, be[i].port) ^
				    ((uint64_t)be[i].flags << 48 | (uint64_t)be[i].ready << 56 |
				     (uint64_t)be[i].weight << 32));

		x = hash64(x ^ hash_str(be[i].zone_hint));
		acc += x;
	}
	return hash64(h ^ acc ^ n);
}

static int validate(const struct dp *dp, const struct dp_service *svc, const struct dp_backend *be,
		    size_t n)
{
	if (!svc || !svc->name || !*svc->name || strlen(svc->name) >= SHOAL_SVC_NAME_LEN) {
		log_warn("dp: service name: missing or longer than %d", SHOAL_SVC_NAME_LEN - 1);
		return -EINVAL;
	}
	if (svc->proto != IPPROTO_TCP && svc->proto != IPPROTO_UDP) {
		log_warn("dp: service %s: proto %u: must be TCP or UDP", svc->name, svc->proto);
		return -EINVAL;
	}
	if (svc->n_frontends == 0 || svc->n_frontends > DP_MAX_FRONTENDS) {
		log_warn("dp: service %s: frontends: need 1 to %d", svc->name, DP_MAX_FRONTENDS);
		return -EINVAL;
	}
	for (size_t i = 0; i < svc->n_frontends; i++) {
		if (!svc->frontends[i].addr || !svc->frontends[i].port) {
			log_warn("dp: service %s: frontends[%zu]: address and port required",
				 svc->name, i);
			return -EINVAL;
		}
	}
	if (n && !be) {
		log_warn("dp: service %s: backends: NULL", svc->name);
		return -EINVAL;
	}
	if (n > 60000 || ((svc->flags & SVC_F_MAGLEV) && n >= dp->opts.maglev_size)) {
		log_warn("dp: service %s: %zu backends: too many", svc->name, n);
		return -E2BIG;
	}
	return 0;
}

/* Builds and installs a fresh Maglev table over the ids; the old table goes with the swap. */
static int maglev_install(struct dp *dp, struct dp_svc *s, const uint32_t *ids,
			  const struct dp_backend *const *bes, size_t n)
{
	LIBBPF_OPTS(bpf_map_create_opts, co, .map_flags = BPF_F_INNER_MAP);
	uint32_t m = dp->opts.maglev_size, *table = NULL, *keys = NULL, *vals = NULL;
	uint64_t *hk = NULL;
	uint16_t *w = NULL;
	int fd = -1, err;

	if (n == 0) {
		if (map_del(dp, dp->map_fd[DP_MAP_MAGLEV], &s->id) && errno != ENOENT)
			return -errno;
		return 0;
	}
	table = calloc(m, sizeof(*table));
	keys = calloc(m, sizeof(*keys));
	vals = calloc(m, sizeof(*vals));
	hk = calloc(n, sizeof(*hk));
	w = calloc(n, sizeof(*w));
	if (!table || !keys || !vals || !hk || !w) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		hk[i] = be_key(bes[i]->addr, htons(bes[i]->port));
		w[i] = bes[i]->weight;
	}
	err = dp_maglev_build(hk, w, n, table, m);
	if (err)
		goto out;
	for (uint32_t i = 0; i < m; i++) {
		keys[i] = i;
		vals[i] = ids[table[i]];
	}
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "shoal_maglev", sizeof(__u32), sizeof(__u32), m,
			    &co);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	err = map_update_many(dp, fd, keys, vals, m, sizeof(*keys), sizeof(*vals));
	if (!err && map_put(dp, dp->map_fd[DP_MAP_MAGLEV], &s->id, &fd))
		err = -errno;
out:
	if (fd >= 0)
		close(fd);
	free(table);
	free(keys);
	free(vals);
	free(hk);
	free(w);
	return err;
}

int dp_service_upsert(struct dp *dp, const struct dp_service *svc, const struct dp_backend *be,
		      size_t n)
{
	struct shoal_svc_name nm = {};
	struct shoal_revnat_v4 rn = {};
	struct shoal_svc_v4 rec = {};
	struct dp_svc *s;
	struct sel *sel = NULL;
	struct shoal_slot_key *skeys = NULL;
	uint32_t *ids = NULL, *old_ids = NULL, *del_be = NULL, *wr_ids = NULL, *rst_ids = NULL;
	struct shoal_backend_v4 *wr_vals = NULL;
	size_t n_wr = 0, n_rst = 0;
	const struct dp_backend **mg = NULL;
	struct dp_be **refs = NULL;
	size_t nsel = 0, n_old = 0, n_del = 0, n_mg = 0, n_slots, old_slots;
	bool created = false, hints = false;
	uint64_t fp;
	int err;

	if (!dp)
		return -EINVAL;
	err = validate(dp, svc, be, n);
	if (err)
		return err;
	fp = spec_fingerprint(svc, be, n);
	s = svc_find(dp, svc->name);
	/* What the maps hold already (also after a restart: the fingerprint is pinned). */
	if (s && s->fingerprint == fp)
		return 0;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -ENOMEM;
		strcpy(s->name, svc->name);
		err = ids_get(&dp->svc_ids, &s->id);
		if (!err) {
			err = counters_reset(dp, dp->map_fd[DP_MAP_SVC_STATS], s->id);
			if (err)
				ids_put(&dp->svc_ids, s->id);
		}
		if (err) {
			free(s);
			return err;
		}
		s->rec.gen = 1; /* so that the first write uses generation 0 */
		created = true;
	}

	/* Choose and order the serving endpoints: ready local, ready remote, terminating. */
	sel = calloc(n + 1, sizeof(*sel));
	ids = calloc(n + 1, sizeof(*ids));
	refs = calloc(n + 1, sizeof(*refs));
	mg = calloc(n + 1, sizeof(*mg));
	skeys = calloc(n + s->n_be + 1, sizeof(*skeys));
	del_be = calloc(s->n_be + n + 1, sizeof(*del_be));
	wr_ids = calloc(n + 1, sizeof(*wr_ids));
	rst_ids = calloc(n + 1, sizeof(*rst_ids));
	wr_vals = calloc(n + 1, sizeof(*wr_vals));
	if (!sel || !ids || !refs || !mg || !skeys || !del_be || !wr_ids || !rst_ids || !wr_vals) {
		err = -ENOMEM;
		goto out;
	}
	/* Topology hints apply when every ready endpoint has one and one is for our zone. */
	if (dp->opts.zone && *dp->opts.zone) {
		bool all = true, ours = false;

		for (size_t i = 0; i < n; i++) {
			if (!be[i].ready || (be[i].flags & BE_F_TERMINATING))
				continue;
			if (!be[i].zone_hint[0])
				all = false;
			else if (!strcmp(be[i].zone_hint, dp->opts.zone))
				ours = true;
		}
		hints = all && ours;
	}
	for (size_t i = 0; i < n; i++) {
		bool term = (be[i].flags & BE_F_TERMINATING) != 0;
		bool local = (be[i].flags & BE_F_LOCAL) != 0;

		if (be[i].addr == 0 || be[i].port == 0) {
			log_warn("dp: service %s: backend %zu: address and port required",
				 svc->name, i);
			err = -EINVAL;
			goto out;
		}
		sel[nsel].b = &be[i];
		sel[nsel].cls = (term ? 2 : 0) + (local ? 0 : 1);
		/*
		 * Listed but not serving (not ready, or outside our zone's hints): no new flows,
		 * but its entry stays so that established flows keep it.
		 */
		if ((!be[i].ready && !term) ||
		    (!term && hints && strcmp(be[i].zone_hint, dp->opts.zone)))
			sel[nsel].cls = 4;
		nsel++;
	}
	qsort(sel, nsel, sizeof(*sel), sel_cmp);
	/* Duplicates (same address and port) serve once. */
	{
		size_t w = 0;

		for (size_t i = 0; i < nsel; i++) {
			bool dup = false;

			for (size_t j = 0; j < w && !dup; j++)
				dup = sel[j].b->addr == sel[i].b->addr &&
				      sel[j].b->port == sel[i].b->port;
			if (!dup)
				sel[w++] = sel[i];
		}
		nsel = w;
	}
	if (nsel > 0xffff) {
		err = -E2BIG;
		goto out;
	}

	/* 1. backends: new ones get an id and an entry before anything names them */
	for (size_t i = 0; i < nsel; i++) {
		uint64_t k = be_key(sel[i].b->addr, htons(sel[i].b->port));
		struct dp_be *b = be_find(dp, k);
		struct shoal_backend_v4 v = {
			.addr = sel[i].b->addr,
			.port = htons(sel[i].b->port),
			.flags = sel[i].b->flags & (BE_F_LOCAL | BE_F_TERMINATING),
		};

		if (!b) {
			b = calloc(1, sizeof(*b));
			if (!b) {
				err = -ENOMEM;
				goto undo_refs;
			}
			b->key = k;
			err = ids_get(&dp->be_ids, &b->id);
			if (!err)
				err = be_insert(dp, b);
			if (err) {
				ids_put(&dp->be_ids, b->id);
				free(b);
				goto undo_refs;
			}
			dp->be_by_id[b->id] = b;
			rst_ids[n_rst++] = b->id;
		}
		if (memcmp(&b->val, &v, sizeof(v))) {
			b->val = v;
			wr_ids[n_wr] = b->id;
			wr_vals[n_wr++] = v;
		}
		b->refs++;
		refs[i] = b;
		ids[i] = b->id;
	}
	/* A reused id starts its counters from zero; then the entries, in batches. */
	if (n_rst) {
		void *zero = calloc(n_rst * (size_t)dp->ncpus, sizeof(struct shoal_counter));

		err = zero ? map_update_many(dp, dp->map_fd[DP_MAP_BE_STATS], rst_ids, zero, n_rst,
					     sizeof(*rst_ids),
					     (size_t)dp->ncpus * sizeof(struct shoal_counter))
			   : -ENOMEM;
		free(zero);
		if (err)
			goto undo_refs;
	}
	err = map_update_many(dp, dp->map_fd[DP_MAP_BE], wr_ids, wr_vals, n_wr, sizeof(*wr_ids),
			      sizeof(*wr_vals));
	if (err) {
		for (size_t i = 0; i < n_wr; i++)
			if (dp->be_by_id[wr_ids[i]])
				dp->be_by_id[wr_ids[i]]->val.addr =
					0; /* unknown: rewrite next time */
		goto undo_refs;
	}

	/* 2. the idle generation's slots */
	rec.id = s->id;
	rec.gen = s->rec.gen ^ 1;
	rec.flags = svc->flags;
	rec.affinity_timeout = svc->affinity_timeout ? svc->affinity_timeout : 10800;
	for (size_t i = 0; i < nsel; i++) {
		switch (sel[i].cls) {
		case 0:
			rec.n_local++;
			rec.n_ready++;
			break;
		case 1:
			rec.n_ready++;
			break;
		case 2:
			rec.n_term_local++;
			rec.n_term++;
			break;
		case 3:
			rec.n_term++;
			break;
		default:
			rec.n_idle++;
			break;
		}
		skeys[i] = (struct shoal_slot_key){ .svc_id = s->id,
						    .slot = (__u16)i,
						    .gen = rec.gen };
	}
	n_slots = nsel;
	err = map_update_many(dp, dp->map_fd[DP_MAP_SLOT], skeys, ids, n_slots, sizeof(*skeys),
			      sizeof(*ids));
	if (err)
		goto undo_refs;

	/* 3. the Maglev table over the set north-south traffic may use */
	if (svc->flags & SVC_F_MAGLEV) {
		bool local_only = svc->flags & SVC_F_ETP_LOCAL;
		size_t lo = 0, hi = local_only ? rec.n_local : rec.n_ready;

		if (hi == 0) {
			lo = rec.n_ready;
			hi = rec.n_ready + (local_only ? rec.n_term_local : rec.n_term);
		}
		for (size_t i = lo; i < hi; i++)
			mg[n_mg++] = sel[i].b;
		err = maglev_install(dp, s, ids + lo, mg, n_mg);
		if (err)
			goto undo_refs;
		rec.maglev_size = n_mg ? dp->opts.maglev_size : 0;
	} else if (s->rec.maglev_size) {
		err = maglev_install(dp, s, NULL, NULL, 0);
		if (err)
			goto undo_refs;
	}

	/* 4. the flip: every frontend's record, then revnat and the name */
	rn.addr = svc->frontends[0].addr;
	rn.port = htons(svc->frontends[0].port);
	if (map_put(dp, dp->map_fd[DP_MAP_REVNAT], &s->id, &rn)) {
		err = -errno;
		goto undo_refs;
	}
	for (size_t i = 0; i < svc->n_frontends; i++) {
		struct shoal_svc_key_v4 k = {
			.addr = svc->frontends[i].addr,
			.port = htons(svc->frontends[i].port),
			.proto = svc->proto,
		};

		if (map_put(dp, dp->map_fd[DP_MAP_SVC], &k, &rec)) {
			err = -errno;
			log_warn("dp: service %s: write frontend %zu: %s", svc->name, i,
				 strerror(-err));
			goto undo_refs;
		}
	}
	/* Frontends the service no longer has. */
	for (size_t i = 0; i < s->svc.n_frontends; i++) {
		bool keep = false;
		struct shoal_svc_key_v4 k = {
			.addr = s->svc.frontends[i].addr,
			.port = htons(s->svc.frontends[i].port),
			.proto = s->svc.proto,
		};

		for (size_t j = 0; j < svc->n_frontends && !keep; j++)
			keep = svc->proto == s->svc.proto &&
			       svc->frontends[j].addr == s->svc.frontends[i].addr &&
			       svc->frontends[j].port == s->svc.frontends[i].port;
		if (!keep)
			frontend_delete(dp, &k, s->id, svc->name);
	}
	strcpy(nm.name, svc->name);
	nm.flags = svc->flags;
	nm.fingerprint = fp;
	if (map_put(dp, dp->map_fd[DP_MAP_NAMES], &s->id, &nm))
		log_warn("dp: service %s: record name: %s", svc->name, strerror(errno));

	/* 5. the old generation's slots and the backends nobody names any more */
	old_slots = created ? 0 : (size_t)s->rec.n_ready + s->rec.n_term + s->rec.n_idle;
	for (size_t i = 0; i < old_slots; i++)
		skeys[i] = (struct shoal_slot_key){ .svc_id = s->id,
						    .slot = (__u16)i,
						    .gen = s->rec.gen };
	err = map_delete_many(dp, dp->map_fd[DP_MAP_SLOT], skeys, old_slots, sizeof(*skeys));
	if (err)
		log_warn("dp: service %s: delete old slots: %s", svc->name, strerror(-err));
	old_ids = s->be_ids;
	n_old = s->n_be;
	err = 0;
	s->be_ids = ids;
	ids = NULL;
	s->n_be = nsel;
	s->rec = rec;
	s->fingerprint = fp;
	s->svc = *svc;
	s->svc.name = s->name;
	if (created) {
		err = svc_insert(dp, s);
		created = false;
	}
	goto release_old;

undo_refs:
	/* Nothing flipped: drop the references taken above (new backends go again). */
	old_ids = NULL;
	n_old = 0;
	for (size_t i = 0; i < nsel; i++)
		if (refs[i])
			be_unref(dp, refs[i], del_be, &n_del);
	if (be_clear_many(dp, del_be, n_del))
		log_warn("dp: service %s: delete unused backends", svc->name);
	n_del = 0;
	goto out;

release_old:
	for (size_t i = 0; i < n_old; i++) {
		struct dp_be *b = old_ids[i] < dp->be_ids.max ? dp->be_by_id[old_ids[i]] : NULL;

		if (b)
			be_unref(dp, b, del_be, &n_del);
	}
	if (be_clear_many(dp, del_be, n_del))
		log_warn("dp: service %s: delete old backends", svc->name);
	free(old_ids);
out:
	if (created) {
		ids_put(&dp->svc_ids, s->id);
		free(s);
	}
	free(sel);
	free(ids);
	free(refs);
	free(mg);
	free(skeys);
	free(del_be);
	free(wr_ids);
	free(rst_ids);
	free(wr_vals);
	return err;
}

static void svc_release(struct dp *dp, struct dp_svc *s)
{
	size_t n_del = 0, n_slots = (size_t)s->rec.n_ready + s->rec.n_term + s->rec.n_idle;
	struct shoal_slot_key *sk = calloc(n_slots + 1, sizeof(*sk));
	uint32_t *del = calloc(s->n_be + 1, sizeof(*del));

	/* Frontends first: from here on no new packet finds the service. */
	for (size_t i = 0; i < s->svc.n_frontends; i++) {
		struct shoal_svc_key_v4 k = {
			.addr = s->svc.frontends[i].addr,
			.port = htons(s->svc.frontends[i].port),
			.proto = s->svc.proto,
		};

		frontend_delete(dp, &k, s->id, s->name);
	}
	if (map_del(dp, dp->map_fd[DP_MAP_MAGLEV], &s->id) && errno != ENOENT)
		log_warn("dp: service %s: delete maglev: %s", s->name, strerror(errno));
	if (map_del(dp, dp->map_fd[DP_MAP_REVNAT], &s->id) && errno != ENOENT)
		log_warn("dp: service %s: delete revnat: %s", s->name, strerror(errno));
	if (map_del(dp, dp->map_fd[DP_MAP_NAMES], &s->id) && errno != ENOENT)
		log_warn("dp: service %s: delete name: %s", s->name, strerror(errno));
	if (sk) {
		for (size_t i = 0; i < n_slots; i++)
			sk[i] = (struct shoal_slot_key){ .svc_id = s->id,
							 .slot = (__u16)i,
							 .gen = s->rec.gen };
		if (map_delete_many(dp, dp->map_fd[DP_MAP_SLOT], sk, n_slots, sizeof(*sk)))
			log_warn("dp: service %s: delete slots", s->name);
	}
	for (size_t i = 0; i < s->n_be; i++) {
		struct dp_be *b = s->be_ids[i] < dp->be_ids.max ? dp->be_by_id[s->be_ids[i]] : NULL;

		if (b && del)
			be_unref(dp, b, del, &n_del);
	}
	if (del && be_clear_many(dp, del, n_del))
		log_warn("dp: service %s: delete backends", s->name);
	svc_remove(dp, s);
	ids_put(&dp->svc_ids, s->id);
	free(s->be_ids);
	free(s);
	free(sk);
	free(del);
}

int dp_service_delete(struct dp *dp, const char *name)
{
	struct dp_svc *s;

	if (!dp || !name)
		return -EINVAL;
	s = svc_find(dp, name);
	if (!s)
		return -ENOENT;
	svc_release(dp, s);
	return 0;
}

int dp_sync(struct dp *dp, const struct dp_service_spec *specs, size_t n)
{
	struct dp_svc **gone = NULL;
	size_t n_gone = 0;
	int err = 0, e;

	if (!dp || (n && !specs))
		return -EINVAL;
	for (size_t i = 0; i < dp->svc_buckets; i++)
		for (struct dp_svc *s = dp->svc_tab[i]; s; s = s->next)
			s->seen = false;
	for (size_t i = 0; i < n; i++) {
		const struct dp_service_spec *sp = &specs[i];
		struct dp_svc *s;

		if (!sp->svc.name)
			return -EINVAL;
		s = svc_find(dp, sp->svc.name);
		if (s &&
		    s->fingerprint == spec_fingerprint(&sp->svc, sp->backends, sp->n_backends)) {
			s->seen = true;
			continue;
		}
		e = dp_service_upsert(dp, &sp->svc, sp->backends, sp->n_backends);
		if (e && !err)
			err = e;
		s = svc_find(dp, sp->svc.name);
		if (s)
			s->seen = true;
	}
	gone = calloc(dp->n_svc + 1, sizeof(*gone));
	if (!gone)
		return -ENOMEM;
	for (size_t i = 0; i < dp->svc_buckets; i++)
		for (struct dp_svc *s = dp->svc_tab[i]; s; s = s->next)
			if (!s->seen)
				gone[n_gone++] = s;
	for (size_t i = 0; i < n_gone; i++)
		svc_release(dp, gone[i]);
	free(gone);
	return err;
}

static int percpu_sum(struct dp *dp, int fd, uint32_t key, uint64_t *packets, uint64_t *bytes)
{
	struct shoal_counter *v = calloc((size_t)dp->ncpus, sizeof(*v));

	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &key, v)) {
		free(v);
		return -errno;
	}
	*packets = *bytes = 0;
	for (int c = 0; c < dp->ncpus; c++) {
		*packets += v[c].packets;
		*bytes += v[c].bytes;
	}
	free(v);
	return 0;
}

int dp_stats(struct dp *dp, struct dp_stats *out)
{
	uint64_t p, b;
	int err;

	if (!dp || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	for (uint32_t r = 0; r < DR_MAX; r++) {
		err = percpu_sum(dp, dp->map_fd[DP_MAP_DROPS], r, &p, &b);
		if (err)
			return err;
		out->reason_packets[r] = p;
		if (r == DR_OK) {
			out->packets = p;
			out->bytes = b;
		}
	}
	out->services = (uint32_t)dp->n_svc;
	out->backends = (uint32_t)dp->n_be;
	out->map_writes = dp->map_writes;
	return 0;
}

int dp_service_stats(struct dp *dp, const char *name, uint64_t *packets, uint64_t *bytes)
{
	struct dp_svc *s = dp && name ? svc_find(dp, name) : NULL;

	if (!s)
		return -ENOENT;
	return percpu_sum(dp, dp->map_fd[DP_MAP_SVC_STATS], s->id, packets, bytes);
}

int dp_service_id(struct dp *dp, const char *name)
{
	struct dp_svc *s = dp && name ? svc_find(dp, name) : NULL;

	return s ? (int)s->id : -ENOENT;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int dp_service_names(struct dp *dp, char ***names, size_t *n)
{
	char **v;
	size_t k = 0;

	if (!dp || !names || !n)
		return -EINVAL;
	v = calloc(dp->n_svc + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < dp->svc_buckets; i++) {
		for (struct dp_svc *s = dp->svc_tab[i]; s; s = s->next) {
			v[k] = strdup(s->name);
			if (!v[k]) {
				dp_names_free(v, k);
				return -ENOMEM;
			}
			k++;
		}
	}
	qsort(v, k, sizeof(*v), name_cmp);
	*names = v;
	*n = k;
	return 0;
}

void dp_names_free(char **names, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

int dp_service_info(struct dp *dp, const char *name, struct dp_service_info *out)
{
	struct dp_svc *s = dp && name ? svc_find(dp, name) : NULL;
	int err;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!s)
		return -ENOENT;
	snprintf(out->name, sizeof(out->name), "%s", s->name);
	out->id = s->id;
	out->proto = s->svc.proto;
	out->flags = s->rec.flags;
	out->gen = s->rec.gen;
	out->affinity_timeout = s->rec.affinity_timeout;
	out->n_frontends = s->svc.n_frontends;
	memcpy(out->frontends, s->svc.frontends, sizeof(out->frontends));
	out->n_ready = s->rec.n_ready;
	out->n_local = s->rec.n_local;
	out->n_term = s->rec.n_term;
	out->n_term_local = s->rec.n_term_local;
	out->n_idle = s->rec.n_idle;
	out->maglev_size = s->rec.maglev_size;
	err = percpu_sum(dp, dp->map_fd[DP_MAP_SVC_STATS], s->id, &out->packets, &out->bytes);
	if (err)
		return err;
	out->backends = calloc(s->n_be + 1, sizeof(*out->backends));
	if (!out->backends)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_be; i++) {
		struct dp_be *b = s->be_ids[i] < dp->be_ids.max ? dp->be_by_id[s->be_ids[i]] : NULL;
		struct dp_backend_info *bi = &out->backends[out->n_backends];

		if (!b)
			continue;
		bi->addr = b->val.addr;
		bi->port = ntohs(b->val.port);
		bi->flags = b->val.flags;
		bi->state = i < s->rec.n_ready				 ? DP_SLOT_READY
			    : i < (size_t)s->rec.n_ready + s->rec.n_term ? DP_SLOT_TERMINATING
									 : DP_SLOT_IDLE;
		err = percpu_sum(dp, dp->map_fd[DP_MAP_BE_STATS], b->id, &bi->packets, &bi->bytes);
		if (err) {
			dp_service_info_free(out);
			return err;
		}
		out->n_backends++;
	}
	return 0;
}

void dp_service_info_free(struct dp_service_info *info)
{
	if (!info)
		return;
	free(info->backends);
	info->backends = NULL;
	info->n_backends = 0;
}

/* What the kernel charges a map (memlock in its fdinfo). */
static int map_memlock(int fd, uint64_t *out)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	*out = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %lu", out) == 1)
			break;
	fclose(f);
	return 0;
}

int dp_mem_bytes(struct dp *dp, uint64_t *bytes)
{
	uint64_t m;
	int err;

	if (!dp || !bytes)
		return -EINVAL;
	*bytes = 0;
	for (int i = 0; i < DP_MAP_N; i++) {
		err = map_memlock(dp->map_fd[i], &m);
		if (err)
			return err;
		*bytes += m;
	}
	/* Inner Maglev tables are maps of their own: 4 bytes an entry. */
	for (size_t i = 0; i < dp->svc_buckets; i++)
		for (struct dp_svc *s = dp->svc_tab[i]; s; s = s->next)
			*bytes += (uint64_t)s->rec.maglev_size * sizeof(__u32);
	return 0;
}

/* ---- the index, rebuilt from the pinned maps ------------------------------------------- */

/* The whole backend array (n entries, out[id]), in kernel batches where the kernel has them. */
static int be_read_all(struct dp *dp, struct shoal_backend_v4 *out, uint32_t n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	int fd = dp->map_fd[DP_MAP_BE], err = 0;
	struct shoal_backend_v4 *vals;
	uint32_t *keys, done = 0, batch = 0, cnt;

	keys = calloc(n, sizeof(*keys));
	vals = calloc(n, sizeof(*vals));
	if (!keys || !vals) {
		err = -ENOMEM;
		goto out;
	}
	while (done < n) {
		cnt = n - done;
		err = bpf_map_lookup_batch(fd, done ? &batch : NULL, &batch, keys + done,
					   vals + done, &cnt, &bo);
		done += cnt;
		if (err == -ENOENT) { /* the end of the map */
			err = 0;
			break;
		}
		if (err)
			break;
	}
	if (err == -EINVAL || err == -EOPNOTSUPP) {
		/* No batches here: one by one. */
		err = 0;
		for (uint32_t i = 0; i < n && !err; i++)
			if (bpf_map_lookup_elem(fd, &i, &out[i]))
				err = -errno;
		goto out;
	}
	for (uint32_t i = 0; !err && i < done; i++)
		if (keys[i] < n)
			out[keys[i]] = vals[i];
out:
	free(keys);
	free(vals);
	return err;
}

int dp_state_load(struct dp *dp)
{
	struct shoal_backend_v4 *bes;
	struct shoal_svc_key_v4 fk, *fprev = NULL, fcur;
	struct shoal_svc_name nm;
	struct shoal_svc_v4 rec;
	struct dp_svc **by_id;
	uint32_t id, *prev = NULL, cur;
	int err;

	err = ids_init(&dp->svc_ids, dp->opts.max_services + 1);
	if (!err)
		err = ids_init(&dp->be_ids, dp->opts.max_backends + 1);
	if (err)
		return err;
	dp->be_by_id = calloc(dp->opts.max_backends + 1, sizeof(*dp->be_by_id));
	if (!dp->be_by_id)
		return -ENOMEM;

	/* Backends: every non-zero entry of the array. */
	bes = calloc(dp->opts.max_backends + 1, sizeof(*bes));
	if (!bes)
		return -ENOMEM;
	err = be_read_all(dp, bes, dp->opts.max_backends + 1);
	for (uint32_t i = 1; !err && i <= dp->opts.max_backends; i++) {
		struct dp_be *b;

		if (!bes[i].addr)
			continue;
		b = calloc(1, sizeof(*b));
		if (!b) {
			err = -ENOMEM;
			break;
		}
		b->id = i;
		b->key = be_key(bes[i].addr, bes[i].port);
		b->val = bes[i];
		err = be_insert(dp, b);
		if (err) {
			free(b);
			break;
		}
		dp->be_by_id[i] = b;
		if (i >= dp->be_ids.next)
			dp->be_ids.next = i + 1;
	}
	free(bes);
	if (err)
		return err;
	/* Services by name. */
	while (!bpf_map_get_next_key(dp->map_fd[DP_MAP_NAMES], prev, &id)) {
		struct dp_svc *s;

		cur = id;
		prev = &cur;
		if (bpf_map_lookup_elem(dp->map_fd[DP_MAP_NAMES], &id, &nm) || id == 0 ||
		    id > dp->opts.max_services)
			continue;
		s = calloc(1, sizeof(*s));
		if (!s)
			return -ENOMEM;
		s->id = id;
		memcpy(s->name, nm.name, sizeof(s->name));
		s->name[sizeof(s->name) - 1] = '\0';
		s->fingerprint = nm.fingerprint;
		s->svc.name = s->name;
		s->svc.flags = (uint8_t)nm.flags;
		err = svc_insert(dp, s);
		if (err) {
			free(s);
			return err;
		}
		if (id >= dp->svc_ids.next)
			dp->svc_ids.next = id + 1;
	}
	/* Frontends, and each service's record. */
	by_id = calloc(dp->opts.max_services + 1, sizeof(*by_id));
	if (!by_id)
		return -ENOMEM;
	for (size_t i = 0; i < dp->svc_buckets; i++)
		for (struct dp_svc *c = dp->svc_tab[i]; c; c = c->next)
			by_id[c->id] = c;
	while (!bpf_map_get_next_key(dp->map_fd[DP_MAP_SVC], fprev, &fk)) {
		struct dp_svc *s = NULL;

		fcur = fk;
		fprev = &fcur;
		if (bpf_map_lookup_elem(dp->map_fd[DP_MAP_SVC], &fk, &rec))
			continue;
		if (rec.id <= dp->opts.max_services)
			s = by_id[rec.id];
		if (!s || s->svc.n_frontends >= DP_MAX_FRONTENDS)
			continue;
		s->rec = rec;
		s->svc.proto = fk.proto;
		s->svc.affinity_timeout = rec.affinity_timeout;
		s->svc.frontends[s->svc.n_frontends].addr = fk.addr;
		s->svc.frontends[s->svc.n_frontends].port = ntohs(fk.port);
		s->svc.n_frontends++;
	}
	/* Each service's live slots hold its backend references. */
	for (size_t i = 0; i < dp->svc_buckets; i++) {
		for (struct dp_svc *s = dp->svc_tab[i]; s; s = s->next) {
			size_t n = (size_t)s->rec.n_ready + s->rec.n_term + s->rec.n_idle;

			s->be_ids = calloc(n + 1, sizeof(*s->be_ids));
			if (!s->be_ids) {
				free(by_id);
				return -ENOMEM;
			}
			for (size_t k = 0; k < n; k++) {
				struct shoal_slot_key sk = { .svc_id = s->id,
							     .slot = (__u16)k,
							     .gen = s->rec.gen };
				uint32_t bid;

				if (bpf_map_lookup_elem(dp->map_fd[DP_MAP_SLOT], &sk, &bid) ||
				    bid > dp->opts.max_backends || !dp->be_by_id[bid])
					continue;
				dp->be_by_id[bid]->refs++;
				s->be_ids[s->n_be++] = bid;
			}
		}
	}
	/* Free ids below the high-water marks. */
	for (uint32_t i = 1; i < dp->svc_ids.next; i++)
		if (!by_id[i])
			ids_put(&dp->svc_ids, i);
	free(by_id);
	for (uint32_t i = 1; i < dp->be_ids.next; i++)
		if (!dp->be_by_id[i])
			ids_put(&dp->be_ids, i);
	return 0;
}

void dp_state_free(struct dp *dp)
{
	for (size_t i = 0; i < dp->svc_buckets; i++) {
		struct dp_svc *s = dp->svc_tab[i], *n;

		for (; s; s = n) {
			n = s->next;
			free(s->be_ids);
			free(s);
		}
	}
	for (size_t i = 0; i < dp->be_buckets; i++) {
		struct dp_be *b = dp->be_tab[i], *n;

		for (; b; b = n) {
			n = b->next;
			free(b);
		}
	}
	free(dp->svc_tab);
	free(dp->be_tab);
	free(dp->be_by_id);
	free(dp->svc_ids.free);
	free(dp->be_ids.free);
	dp->svc_tab = NULL;
	dp->be_tab = NULL;
}
