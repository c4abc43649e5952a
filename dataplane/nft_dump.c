// SPDX-License-Identifier: Apache-2.0
/*
 * Reading the `inet shoal` table back from the kernel through libnftnl: every chain, rule,
 * set and element with its handle, and the services decoded from them.
 *
 * The design choice: the decoder trusts only the kernel. A service's name and frontends come
 * from the comments and keys of the shared map elements, its endpoints from the intervals of
 * the endpoint block its service chain's `numgen ... offset` names (or, with session
 * affinity, from the `dnat` of its per-endpoint rules), externalTrafficPolicy=Local and the
 * node's own endpoints from its ext chain, its source ranges from its firewall chain. A block
 * whose intervals are not the even split the engine writes decodes to no endpoints, so that
 * adoption sees the difference. The dump is taken between two reads of the ruleset
 * generation and retried if a commit happened in between, so what it returns is one
 * consistent generation.
 */
#include "nft_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libnftnl/gen.h>
#include <libnftnl/udata.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define NFT_DUMP_BUF	   (64 * 1024)
#define NFT_DUMP_PER_CHAIN 2000

struct nft_dchain {
	char *name;
	uint64_t handle;
	struct nftnl_rule **rules;
	size_t n_rules, cap_rules;
};

struct nft_dset {
	struct nftnl_set *set; /* with its elements */
};

struct nft_dump_ctx {
	const char *table;
	struct nft_dchain *chains;
	size_t n_chains, cap_chains;
	struct nft_dset *sets;
	size_t n_sets, cap_sets;
	struct nftnl_table *t;
	uint32_t genid;
	int err;
};

static uint32_t nft_dump_seq;

static int nft_talk(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	uint32_t portid = mnl_socket_get_portid(nl), seq = nlh->nlmsg_seq;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	char *buf = malloc(NFT_DUMP_BUF);
	if (!buf)
		return -ENOMEM;
	int ret;
	while ((ret = (int)mnl_socket_recvfrom(nl, buf, NFT_DUMP_BUF)) > 0) {
		ret = mnl_cb_run(buf, (size_t)ret, seq, portid, cb, data);
		if (ret <= 0)
			break;
	}
	int err = ret < 0 ? -errno : 0;
	free(buf);
	return err;
}

static struct nlmsghdr *nft_req(char *buf, uint16_t type, uint16_t flags)
{
	return nftnl_nlmsg_build_hdr(buf, type, NFPROTO_INET, flags, ++nft_dump_seq);
}

static int nft_gen_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_gen *g = nftnl_gen_alloc();
	if (!g)
		return MNL_CB_ERROR;
	if (nftnl_gen_nlmsg_parse(nlh, g) == 0)
		*(uint32_t *)data = nftnl_gen_get_u32(g, NFTNL_GEN_ID);
	nftnl_gen_free(g);
	return MNL_CB_OK;
}

static int nft_genid_on(struct mnl_socket *nl, uint32_t *genid)
{
	char buf[256];
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, NFPROTO_UNSPEC, NLM_F_ACK,
						     ++nft_dump_seq);
	return nft_talk(nl, nlh, nft_gen_cb, genid);
}

int nft_genid(uint32_t *genid)
{
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl)
		return -errno;
	int err = mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ? -errno : 0;
	if (!err)
		err = nft_genid_on(nl, genid);
	mnl_socket_close(nl);
	return err;
}

static int nft_table_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nft_dump_ctx *c = data;
	struct nftnl_table *t = nftnl_table_alloc();
	if (!t)
		return MNL_CB_ERROR;
	if (nftnl_table_nlmsg_parse(nlh, t) < 0) {
		nftnl_table_free(t);
		return MNL_CB_ERROR;
	}
	if (c->t)
		nftnl_table_free(c->t);
	c->t = t;
	return MNL_CB_OK;
}

static int nft_chain_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nft_dump_ctx *c = data;
	struct nftnl_chain *ch = nftnl_chain_alloc();
	if (!ch)
		return MNL_CB_ERROR;
	if (nftnl_chain_nlmsg_parse(nlh, ch) < 0 ||
	    strcmp(nftnl_chain_get_str(ch, NFTNL_CHAIN_TABLE), c->table) ||
	    nftnl_chain_get_u32(ch, NFTNL_CHAIN_FAMILY) != NFPROTO_INET) {
		nftnl_chain_free(ch);
		return MNL_CB_OK;
	}
	if (c->n_chains == c->cap_chains) {
		size_t nc = c->cap_chains ? c->cap_chains * 2 : 64;
		struct nft_dchain *v = realloc(c->chains, nc * sizeof(*v));
		if (!v) {
			nftnl_chain_free(ch);
			return MNL_CB_ERROR;
		}
		c->chains = v;
		c->cap_chains = nc;
	}
	struct nft_dchain *d = &c->chains[c->n_chains];
	memset(d, 0, sizeof(*d));
	d->name = strdup(nftnl_chain_get_str(ch, NFTNL_CHAIN_NAME));
	d->handle = nftnl_chain_get_u64(ch, NFTNL_CHAIN_HANDLE);
	nftnl_chain_free(ch);
	if (!d->name)
		return MNL_CB_ERROR;
	c->n_chains++;
	return MNL_CB_OK;
}

/* chains sorted by name for lookups */
static int nft_dchain_cmp(const void *a, const void *b)
{
	return strcmp(((const struct nft_dchain *)a)->name, ((const struct nft_dchain *)b)->name);
}

static struct nft_dchain *nft_dchain_find(struct nft_dump_ctx *c, const char *name)
{
	struct nft_dchain key = { .name = (char *)name };
	return c->n_chains ? bsearch(&key, c->chains, c->n_chains, sizeof(key), nft_dchain_cmp)
			   : NULL;
}

static int nft_rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nft_dump_ctx *c = data;
	struct nftnl_rule *r = nftnl_rule_alloc();
	if (!r)
		return MNL_CB_ERROR;
	if (nftnl_rule_nlmsg_parse(nlh, r) < 0 ||
	    strcmp(nftnl_rule_get_str(r, NFTNL_RULE_TABLE), c->table)) {
		nftnl_rule_free(r);
		return MNL_CB_OK;
	}
	struct nft_dchain *d = nft_dchain_find(c, nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
	if (!d) {
		/* a chain created after the chain dump: the generation check retries */
		nftnl_rule_free(r);
		return MNL_CB_OK;
	}
	if (d->n_rules == d->cap_rules) {
		size_t nc = d->cap_rules ? d->cap_rules * 2 : 4;
		struct nftnl_rule **v = realloc(d->rules, nc * sizeof(*v));
		if (!v) {
			nftnl_rule_free(r);
			return MNL_CB_ERROR;
		}
		d->rules = v;
		d->cap_rules = nc;
	}
	d->rules[d->n_rules++] = r;
	return MNL_CB_OK;
}

static int nft_set_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nft_dump_ctx *c = data;
	struct nftnl_set *s = nftnl_set_alloc();
	if (!s)
		return MNL_CB_ERROR;
	if (nftnl_set_nlmsg_parse(nlh, s) < 0 ||
	    strcmp(nftnl_set_get_str(s, NFTNL_SET_TABLE), c->table)) {
		nftnl_set_free(s);
		return MNL_CB_OK;
	}
	if (c->n_sets == c->cap_sets) {
		size_t nc = c->cap_sets ? c->cap_sets * 2 : 64;
		struct nft_dset *v = realloc(c->sets, nc * sizeof(*v));
		if (!v) {
			nftnl_set_free(s);
			return MNL_CB_ERROR;
		}
		c->sets = v;
		c->cap_sets = nc;
	}
	c->sets[c->n_sets++] = (struct nft_dset){ .set = s };
	return MNL_CB_OK;
}

static int nft_elem_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nftnl_set_elems_nlmsg_parse(nlh, data) < 0)
		return MNL_CB_ERROR;
	return MNL_CB_OK;
}

static void nft_dump_ctx_free(struct nft_dump_ctx *c)
{
	for (size_t i = 0; i < c->n_chains; i++) {
		for (size_t j = 0; j < c->chains[i].n_rules; j++)
			nftnl_rule_free(c->chains[i].rules[j]);
		free(c->chains[i].rules);
		free(c->chains[i].name);
	}
	free(c->chains);
	for (size_t i = 0; i < c->n_sets; i++)
		nftnl_set_free(c->sets[i].set);
	free(c->sets);
	if (c->t)
		nftnl_table_free(c->t);
	memset(c, 0, sizeof(*c));
}

static int nft_dset_cmp(const void *a, const void *b)
{
	return strcmp(nftnl_set_get_str(((const struct nft_dset *)a)->set, NFTNL_SET_NAME),
		      nftnl_set_get_str(((const struct nft_dset *)b)->set, NFTNL_SET_NAME));
}

static int nft_dset_key_cmp(const void *key, const void *b)
{
	return strcmp(key, nftnl_set_get_str(((const struct nft_dset *)b)->set, NFTNL_SET_NAME));
}

/* Without `full`, the affinity set's elements are not read (clients, not configuration). */
static bool nft_is_affinity_set(const char *name)
{
	return !strcmp(name, NFT_AFFINITY_SET);
}

/* One pass over the table; *present false when it does not exist. */
static int nft_dump_once(struct mnl_socket *nl, const char *table, struct nft_dump_ctx *c,
			 bool *present, bool full)
{
	char buf[1024];
	struct nlmsghdr *nlh;
	int err;

	c->table = table;
	*present = false;
	struct nftnl_table *t = nftnl_table_alloc();
	if (!t)
		return -ENOMEM;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
	nlh = nft_req(buf, NFT_MSG_GETTABLE, NLM_F_ACK);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	err = nft_talk(nl, nlh, nft_table_cb, c);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	*present = true;

	struct nftnl_chain *ch = nftnl_chain_alloc();
	if (!ch)
		return -ENOMEM;
	nftnl_chain_set_str(ch, NFTNL_CHAIN_TABLE, table);
	nlh = nft_req(buf, NFT_MSG_GETCHAIN, NLM_F_DUMP);
	nftnl_chain_nlmsg_build_payload(nlh, ch);
	nftnl_chain_free(ch);
	if ((err = nft_talk(nl, nlh, nft_chain_cb, c)))
		return err;
	if (c->n_chains)
		qsort(c->chains, c->n_chains, sizeof(*c->chains), nft_dchain_cmp);

	/* A dump resumes by skipping everything already sent, so one dump of a large table's
	 * rules costs the kernel quadratic time; past a few thousand rules, dump chain by chain. */
	bool per_chain = c->n_chains > NFT_DUMP_PER_CHAIN;
	for (size_t i = 0; i < (per_chain ? c->n_chains : 1); i++) {
		struct nftnl_rule *r = nftnl_rule_alloc();
		if (!r)
			return -ENOMEM;
		nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
		if (per_chain)
			nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, c->chains[i].name);
		nlh = nft_req(buf, NFT_MSG_GETRULE, NLM_F_DUMP);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		nftnl_rule_free(r);
		if ((err = nft_talk(nl, nlh, nft_rule_cb, c)))
			return err;
	}

	struct nftnl_set *s = nftnl_set_alloc();
	if (!s)
		return -ENOMEM;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nlh = nft_req(buf, NFT_MSG_GETSET, NLM_F_DUMP);
	nftnl_set_nlmsg_build_payload(nlh, s);
	nftnl_set_free(s);
	if ((err = nft_talk(nl, nlh, nft_set_cb, c)))
		return err;

	if (c->n_sets)
		qsort(c->sets, c->n_sets, sizeof(*c->sets), nft_dset_cmp);
	for (size_t i = 0; i < c->n_sets; i++) {
		if (!full && nft_is_affinity_set(nftnl_set_get_str(c->sets[i].set, NFTNL_SET_NAME)))
			continue;
		struct nftnl_set *q = nftnl_set_alloc();
		if (!q)
			return -ENOMEM;
		nftnl_set_set_str(q, NFTNL_SET_TABLE, table);
		nftnl_set_set_str(q, NFTNL_SET_NAME,
				  nftnl_set_get_str(c->sets[i].set, NFTNL_SET_NAME));
		nlh = nft_req(buf, NFT_MSG_GETSETELEM, NLM_F_DUMP);
		nftnl_set_elems_nlmsg_build_payload(nlh, q);
		nftnl_set_free(q);
		if ((err = nft_talk(nl, nlh, nft_elem_cb, c->sets[i].set)))
			return err;
	}
	return 0;
}

/* ---- decoding ---- */

static struct nft_dset *nft_dset_find(struct nft_dump_ctx *c, const char *name)
{
	return c->n_sets ? bsearch(name, c->sets, c->n_sets, sizeof(*c->sets), nft_dset_key_cmp)
			 : NULL;
}

static bool nft_ip_in_list(struct in_addr ip, const struct in_addr *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].s_addr == ip.s_addr)
			return true;
	return false;
}

/* Calls fn for each expression of r with its name. */
#define NFT_FOR_EXPR(r, e, it)                                                                     \
	for (struct nftnl_expr_iter *it = nftnl_expr_iter_create(r); it;                           \
	     nftnl_expr_iter_destroy(it), it = NULL)                                               \
		for (struct nftnl_expr *e = nftnl_expr_iter_next(it); e;                           \
		     e = nftnl_expr_iter_next(it))

static const char *nft_ename(const struct nftnl_expr *e)
{
	return nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
}

/* A `numgen random mod 65536 offset O map @endpoints-S` rule: its block, or NFT_NO_BLOCK. */
static uint32_t nft_rule_block(struct nftnl_rule *r)
{
	uint32_t block = NFT_NO_BLOCK, found = NFT_NO_BLOCK;
	bool ng = false;
	NFT_FOR_EXPR(r, e, it) /* no return inside: the loop frees its iterator */
	{
		if (!strcmp(nft_ename(e), "numgen") &&
		    nftnl_expr_get_u32(e, NFTNL_EXPR_NG_MODULUS) == NFT_BLOCK_SLOTS) {
			uint32_t off = nftnl_expr_get_u32(e, NFTNL_EXPR_NG_OFFSET);
			ng = off % NFT_BLOCK_SLOTS == 0;
			block = off / NFT_BLOCK_SLOTS;
		} else if (ng && !strcmp(nft_ename(e), "lookup")) {
			char want[NFT_OBJ_NAME_MAX];
			nft_name_shard(want, nft_block_shard(block));
			if (!strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET), want) &&
			    block < NFT_BLOCKS) {
				found = block;
				break;
			}
		}
	}
	return found;
}

/* The rule's verdict code (immediate to the verdict register), or 1 when it has none. */
static int nft_rule_verdict_code(struct nftnl_rule *r)
{
	int v = 1;
	NFT_FOR_EXPR(r, e, it)
	{
		if (!strcmp(nft_ename(e), "immediate") &&
		    nftnl_expr_is_set(e, NFTNL_EXPR_IMM_VERDICT))
			v = (int)nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT);
	}
	return v;
}

struct nft_svc_acc {
	struct nft_service s;
	size_t cap_ext, cap_ep, cap_sr;
	struct nft_blocks blk;
};

/* Services being decoded, with an open-addressing index by name. */
struct nft_dec {
	struct nft_svc_acc *v;
	size_t n, cap;
	uint32_t *idx; /* slot -> index + 1; 0 empty */
	size_t n_idx;
};

static uint64_t nft_dec_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

static int nft_dec_reindex(struct nft_dec *d, size_t n_idx)
{
	uint32_t *idx = calloc(n_idx, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (size_t i = 0; i < d->n; i++) {
		size_t k = nft_dec_hash(d->v[i].s.name) & (n_idx - 1);
		while (idx[k])
			k = (k + 1) & (n_idx - 1);
		idx[k] = (uint32_t)i + 1;
	}
	free(d->idx);
	d->idx = idx;
	d->n_idx = n_idx;
	return 0;
}

static struct nft_svc_acc *nft_dec_get(struct nft_dec *d, const char *name)
{
	size_t nl = strlen(name);
	if (nl >= NFT_SVC_NAME_MAX)
		return NULL;
	if ((d->n + 1) * 2 > d->n_idx && nft_dec_reindex(d, d->n_idx ? d->n_idx * 2 : 1024))
		return NULL;
	size_t k = nft_dec_hash(name) & (d->n_idx - 1);
	for (; d->idx[k]; k = (k + 1) & (d->n_idx - 1))
		if (!strcmp(d->v[d->idx[k] - 1].s.name, name))
			return &d->v[d->idx[k] - 1];
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 64;
		struct nft_svc_acc *v = realloc(d->v, nc * sizeof(*v));
		if (!v)
			return NULL;
		d->v = v;
		d->cap = nc;
	}
	struct nft_svc_acc *a = &d->v[d->n];
	memset(a, 0, sizeof(*a));
	memcpy(a->s.name, name, nl + 1);
	a->blk = (struct nft_blocks){ NFT_NO_BLOCK, NFT_NO_BLOCK };
	d->idx[k] = (uint32_t)++d->n;
	return a;
}

#define NFT_PUSH(arr, n, cap)                                                                      \
	({                                                                                         \
		bool ok_ = true;                                                                   \
		if ((n) == (cap)) {                                                                \
			size_t nc_ = (cap) ? (cap)*2 : 4;                                          \
			void *p_ = realloc((arr), nc_ * sizeof(*(arr)));                           \
			if (p_) {                                                                  \
				(arr) = p_;                                                        \
				(cap) = nc_;                                                       \
			} else {                                                                   \
				ok_ = false;                                                       \
			}                                                                          \
		}                                                                                  \
		ok_;                                                                               \
	})

static const char *nft_elem_comment_get(struct nftnl_set_elem *el, char *buf, size_t len)
{
	uint32_t ulen = 0;
	const void *ud = nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_USERDATA)
				 ? nftnl_set_elem_get(el, NFTNL_SET_ELEM_USERDATA, &ulen)
				 : NULL;
	buf[0] = '\0';
	if (!ud)
		return NULL;
	const struct nftnl_udata *a;
	nftnl_udata_for_each_data(ud, ulen, a)
	{
		if (nftnl_udata_type(a) == NFTNL_UDATA_SET_ELEM_COMMENT) {
			size_t l = nftnl_udata_len(a);
			if (l >= len)
				l = len - 1;
			memcpy(buf, nftnl_udata_get(a), l);
			buf[l] = '\0';
			return buf;
		}
	}
	return NULL;
}

static int nft_dec_elem(struct nft_dec *d, enum nft_map m, struct nftnl_set_elem *el)
{
	char cbuf[NFT_SVC_NAME_MAX + 32];
	uint32_t klen = 0;
	const uint8_t *key = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &klen);
	if (!nft_elem_comment_get(el, cbuf, sizeof(cbuf)) || !key || klen != nft_map_keylen(m))
		return 0;
	char *sp = strrchr(cbuf, ' ');
	if (!sp)
		return 0;
	*sp = '\0';
	const char *what = sp + 1;
	if (strlen(cbuf) >= NFT_SVC_NAME_MAX)
		return 0; /* not one of ours */
	struct nft_svc_acc *a = nft_dec_get(d, cbuf);
	if (!a)
		return -ENOMEM;
	if (klen == 12) {
		struct in_addr ip;
		uint16_t port;
		memcpy(&ip.s_addr, key, 4);
		memcpy(&port, key + 8, 2);
		a->s.protocol = key[4];
		a->s.port = ntohs(port);
		if (!strcmp(what, "cluster-ip")) {
			a->s.cluster_ip = ip;
		} else if (!nft_ip_in_list(ip, a->s.external_ips, a->s.n_external_ips)) {
			if (!NFT_PUSH(a->s.external_ips, a->s.n_external_ips, a->cap_ext))
				return -ENOMEM;
			a->s.external_ips[a->s.n_external_ips++] = ip;
		}
	} else {
		uint16_t port;
		memcpy(&port, key + 4, 2);
		a->s.protocol = key[0];
		a->s.node_port = ntohs(port);
	}
	return 0;
}

/* The dnat target (addr, port) of an affinity rule, and its timeout (seconds). */
static bool nft_dec_affinity_rule(struct nftnl_rule *r, struct nft_endpoint *ep, uint32_t *aff)
{
	struct in_addr addr = { 0 };
	uint16_t port = 0;
	bool a = false, p = false, dyn = false, found = false;
	NFT_FOR_EXPR(r, e, it)
	{
		const char *n = nft_ename(e);
		uint32_t len = 0;
		if (!strcmp(n, "immediate") && nftnl_expr_is_set(e, NFTNL_EXPR_IMM_DATA)) {
			const void *dat = nftnl_expr_get(e, NFTNL_EXPR_IMM_DATA, &len);
			uint32_t reg = nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG);
			if (reg == NFT_REG_1 && len == 4) {
				memcpy(&addr.s_addr, dat, 4);
				a = true;
			} else if (reg == NFT_REG_2 && len == 2) {
				memcpy(&port, dat, 2);
				p = true;
			}
		} else if (!strcmp(n, "dynset") &&
			   nftnl_expr_is_set(e, NFTNL_EXPR_DYNSET_TIMEOUT)) {
			*aff = (uint32_t)(nftnl_expr_get_u64(e, NFTNL_EXPR_DYNSET_TIMEOUT) / 1000);
			dyn = true;
		} else if (!strcmp(n, "nat") && a && p && dyn &&
			   nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_TYPE) == NFT_NAT_DNAT) {
			*ep = (struct nft_endpoint){ .addr = addr, .port = ntohs(port) };
			found = true;
			break;
		}
	}
	return found;
}

/* One element of an endpoint map, key in host order. */
struct nft_delem {
	uint32_t key;
	bool end;
	struct in_addr addr;
	uint16_t port;
};

static int nft_delem_cmp(const void *a, const void *b)
{
	const struct nft_delem *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (int)x->end - (int)y->end;
}

/* The endpoint maps' elements, each map's sorted by key. */
struct nft_dshards {
	struct nft_delem *v[NFT_SHARDS];
	size_t n[NFT_SHARDS];
};

static int nft_dshards_load(struct nft_dump_ctx *c, struct nft_dshards *sh)
{
	for (uint32_t s = 0; s < NFT_SHARDS; s++) {
		char name[NFT_OBJ_NAME_MAX];
		nft_name_shard(name, s);
		struct nft_dset *ds = nft_dset_find(c, name);
		if (!ds)
			continue;
		struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(ds->set);
		if (!it)
			return -ENOMEM;
		size_t cap = 0;
		for (struct nftnl_set_elem *el = nftnl_set_elems_iter_next(it); el;
		     el = nftnl_set_elems_iter_next(it)) {
			uint32_t klen = 0, dlen = 0, key;
			const void *k = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &klen);
			if (!k || klen != 4)
				continue;
			if (!NFT_PUSH(sh->v[s], sh->n[s], cap)) {
				nftnl_set_elems_iter_destroy(it);
				return -ENOMEM;
			}
			struct nft_delem *d = &sh->v[s][sh->n[s]++];
			memset(d, 0, sizeof(*d));
			memcpy(&key, k, 4);
			d->key = ntohl(key);
			d->end = nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_FLAGS) &&
				 (nftnl_set_elem_get_u32(el, NFTNL_SET_ELEM_FLAGS) &
				  NFT_SET_ELEM_INTERVAL_END);
			const uint8_t *data = nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_DATA)
						      ? nftnl_set_elem_get(el, NFTNL_SET_ELEM_DATA,
									   &dlen)
						      : NULL;
			if (data && dlen >= 6) {
				uint16_t port;
				memcpy(&d->addr.s_addr, data, 4);
				memcpy(&port, data + 4, 2);
				d->port = ntohs(port);
			}
		}
		nftnl_set_elems_iter_destroy(it);
		if (sh->n[s])
			qsort(sh->v[s], sh->n[s], sizeof(*sh->v[s]), nft_delem_cmp);
	}
	return 0;
}

static void nft_dshards_free(struct nft_dshards *sh)
{
	for (uint32_t s = 0; s < NFT_SHARDS; s++)
		free(sh->v[s]);
}

/*
 * The endpoints of a block, in interval order, when its intervals are exactly the even split
 * of the block between them (start and end elements); otherwise none.
 */
static int nft_dec_block(const struct nft_dshards *sh, uint32_t block, struct nft_endpoint **out,
			 size_t *n_out)
{
	uint32_t s = nft_block_shard(block);
	uint64_t base = (uint64_t)block * NFT_BLOCK_SLOTS, top = base + NFT_BLOCK_SLOTS;
	const struct nft_delem *v = sh->v[s];
	size_t lo = 0, hi = sh->n[s], starts = 0, ends = 0;
	*out = NULL;
	*n_out = 0;
	while (lo < hi) { /* first element with key >= base */
		size_t mid = (lo + hi) / 2;
		if (v[mid].key < base)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t first = lo;
	for (size_t i = first; i < sh->n[s] && v[i].key <= top; i++) {
		if (v[i].end)
			ends += v[i].key > base;
		else
			starts += v[i].key < top;
	}
	if (!starts || starts != ends)
		return 0;
	struct nft_endpoint *eps = calloc(starts, sizeof(*eps));
	if (!eps)
		return -ENOMEM;
	size_t k = 0, e = 0;
	bool ok = true;
	for (size_t i = first; i < sh->n[s] && v[i].key <= top && ok; i++) {
		uint32_t want_lo, want_hi;
		if (v[i].end) {
			if (v[i].key == base)
				continue; /* the previous block's last end */
			nft_block_interval(block, (uint32_t)e, (uint32_t)starts, &want_lo,
					   &want_hi);
			ok = (uint64_t)v[i].key == (uint64_t)want_hi + 1;
			e++;
		} else if (v[i].key < top) {
			nft_block_interval(block, (uint32_t)k, (uint32_t)starts, &want_lo,
					   &want_hi);
			ok = v[i].key == want_lo && v[i].port;
			eps[k++] = (struct nft_endpoint){ .addr = v[i].addr, .port = v[i].port };
		}
	}
	if (!ok) {
		free(eps);
		return 0;
	}
	*out = eps;
	*n_out = starts;
	return 0;
}

/*
 * The endpoints a chain chooses from: its block's (and *block), or its affinity rules' (and
 * *aff). Returns their number, or -ENOMEM.
 */
static int nft_dec_select(const struct nft_dshards *sh, struct nft_dchain *ch, uint32_t *block,
			  uint32_t *aff, struct nft_endpoint **out)
{
	struct nft_endpoint *v = NULL;
	size_t n = 0, cap = 0;
	*out = NULL;
	for (size_t i = 0; i < ch->n_rules; i++) {
		uint32_t b = nft_rule_block(ch->rules[i]);
		if (b != NFT_NO_BLOCK) {
			free(v);
			*block = b;
			if (nft_dec_block(sh, b, out, &n))
				return -ENOMEM;
			return (int)n;
		}
		struct nft_endpoint ep;
		if (!nft_dec_affinity_rule(ch->rules[i], &ep, aff))
			continue;
		bool seen = false;
		for (size_t j = 0; j < n && !seen; j++)
			seen = v[j].addr.s_addr == ep.addr.s_addr && v[j].port == ep.port;
		if (seen)
			continue;
		if (!NFT_PUSH(v, n, cap)) {
			free(v);
			return -ENOMEM;
		}
		v[n++] = ep;
	}
	*out = v;
	return (int)n;
}

/* Adds endpoints to the service: those of the service chain as ready, those of the ext chain
 * as local (and, when the service chain does not use them, serving and terminating: the
 * node's own that are still shutting down). */
static int nft_dec_add_endpoints(struct nft_svc_acc *a, const struct nft_endpoint *v, size_t n,
				 bool local)
{
	for (size_t i = 0; i < n; i++) {
		struct nft_endpoint *ep = NULL;
		for (size_t j = 0; j < a->s.n_endpoints && !ep; j++)
			if (a->s.endpoints[j].addr.s_addr == v[i].addr.s_addr &&
			    a->s.endpoints[j].port == v[i].port)
				ep = &a->s.endpoints[j];
		if (!ep) {
			if (!NFT_PUSH(a->s.endpoints, a->s.n_endpoints, a->cap_ep))
				return -ENOMEM;
			ep = &a->s.endpoints[a->s.n_endpoints++];
			*ep = v[i];
			ep->ready = !local;
			ep->serving = ep->terminating = local;
		}
		ep->local |= local;
	}
	return 0;
}

static int nft_dec_chains(struct nft_dump_ctx *c, const struct nft_dshards *sh,
			  struct nft_svc_acc *a)
{
	char name[NFT_OBJ_NAME_MAX];
	struct nft_endpoint *v;
	int n, err = 0;

	nft_name_svc(name, a->s.name);
	struct nft_dchain *ch = nft_dchain_find(c, name);
	if (ch) {
		if ((n = nft_dec_select(sh, ch, &a->blk.cluster, &a->s.affinity_timeout, &v)) < 0)
			return n;
		err = nft_dec_add_endpoints(a, v, (size_t)n, false);
		free(v);
		if (err)
			return err;
	}
	/* externalTrafficPolicy=Local: the ext chain ends in a drop */
	nft_name_ext(name, a->s.name);
	ch = nft_dchain_find(c, name);
	if (ch && ch->n_rules && nft_rule_verdict_code(ch->rules[ch->n_rules - 1]) == NF_DROP) {
		a->s.external_local = true;
		if ((n = nft_dec_select(sh, ch, &a->blk.local, &a->s.affinity_timeout, &v)) < 0)
			return n;
		err = nft_dec_add_endpoints(a, v, (size_t)n, true);
		free(v);
	}
	return err;
}

static int nft_dec_fw_chain(struct nft_dump_ctx *c, struct nft_svc_acc *a)
{
	char name[NFT_OBJ_NAME_MAX];
	nft_name_fw(name, a->s.name);
	struct nft_dchain *ch = nft_dchain_find(c, name);
	if (!ch)
		return 0;
	for (size_t i = 0; i < ch->n_rules; i++) {
		uint32_t mask = ~0u, net = 0;
		bool cmp = false, ret = false;
		NFT_FOR_EXPR(ch->rules[i], e, it)
		{
			const char *n = nft_ename(e);
			uint32_t len = 0;
			if (!strcmp(n, "bitwise")) {
				const void *m = nftnl_expr_get(e, NFTNL_EXPR_BITWISE_MASK, &len);
				if (m && len == 4)
					memcpy(&mask, m, 4);
			} else if (!strcmp(n, "cmp")) {
				const void *d = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len);
				if (d && len == 4) {
					memcpy(&net, d, 4);
					cmp = true;
				}
			} else if (!strcmp(n, "immediate") &&
				   nftnl_expr_is_set(e, NFTNL_EXPR_IMM_VERDICT)) {
				ret = nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT) ==
				      (uint32_t)NFT_RETURN;
			}
		}
		if (!cmp || !ret)
			continue;
		if (!NFT_PUSH(a->s.source_ranges, a->s.n_source_ranges, a->cap_sr))
			return -ENOMEM;
		struct nft_cidr *cd = &a->s.source_ranges[a->s.n_source_ranges++];
		cd->addr.s_addr = net;
		cd->prefix = (uint8_t)__builtin_popcount(mask);
	}
	return 0;
}

/* ---- objects ---- */

struct nft_objs {
	struct nft_object *v;
	size_t n, cap;
};

static int nft_obj_add(struct nft_objs *o, enum nft_obj_kind k, const char *name, uint64_t handle,
		       const char *text, bool anon)
{
	if (!NFT_PUSH(o->v, o->n, o->cap))
		return -ENOMEM;
	struct nft_object *x = &o->v[o->n];
	x->kind = k;
	x->name = strdup(name);
	x->handle = handle;
	x->text = text ? strdup(text) : NULL;
	x->anonymous = anon;
	if (!x->name || (text && !x->text)) {
		free(x->name);
		free(x->text);
		return -ENOMEM;
	}
	o->n++;
	return 0;
}

/* Who uses what, for the elements' texts: block -> service, address -> services. */
struct nft_owners {
	const char **by_block; /* NFT_BLOCKS entries */
	struct nft_addr_owner {
		uint32_t addr;
		const char *name;
	} *by_addr;
	size_t n_addr;
};

static int nft_addr_owner_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct nft_addr_owner *)a)->addr;
	uint32_t y = ((const struct nft_addr_owner *)b)->addr;
	return x < y ? -1 : x > y;
}

static int nft_owners_init(struct nft_owners *ow, const struct nft_state *st)
{
	size_t n = 0, cap = 0;
	memset(ow, 0, sizeof(*ow));
	ow->by_block = calloc(NFT_BLOCKS, sizeof(*ow->by_block));
	if (!ow->by_block)
		return -ENOMEM;
	for (size_t i = 0; i < st->n_services; i++) {
		const struct nft_service *s = &st->services[i];
		const struct nft_blocks *blk = &st->service_blocks[i];
		if (blk->cluster < NFT_BLOCKS)
			ow->by_block[blk->cluster] = s->name;
		if (blk->local < NFT_BLOCKS)
			ow->by_block[blk->local] = s->name;
		for (size_t j = 0; j < s->n_endpoints; j++) {
			if (!NFT_PUSH(ow->by_addr, n, cap))
				return -ENOMEM;
			ow->by_addr[n++] = (struct nft_addr_owner){ s->endpoints[j].addr.s_addr,
								    s->name };
		}
	}
	if (n)
		qsort(ow->by_addr, n, sizeof(*ow->by_addr), nft_addr_owner_cmp);
	ow->n_addr = n;
	return 0;
}

static void nft_owners_free(struct nft_owners *ow)
{
	free(ow->by_block);
	free(ow->by_addr);
}

static void nft_elem_text(struct nftnl_set_elem *el, const char *set, const struct nft_owners *ow,
			  char *buf, size_t len)
{
	uint32_t klen = 0, dlen = 0, shard;
	const uint8_t *k = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &klen);
	const uint8_t *d = nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_DATA)
				   ? nftnl_set_elem_get(el, NFTNL_SET_ELEM_DATA, &dlen)
				   : NULL;
	char a[INET_ADDRSTRLEN], cm[NFT_SVC_NAME_MAX + 32];
	size_t o = 0;
	buf[0] = '\0';
	if (!k)
		return;
	if (sscanf(set, NFT_SHARD_PREFIX "%u", &shard) == 1 && klen == 4) {
		/* an endpoint interval's start (with its endpoint) or end */
		uint32_t key;
		memcpy(&key, k, 4);
		key = ntohl(key);
		const char *who = ow->by_block[(key - (key % NFT_BLOCK_SLOTS == 0 &&
						       !d ? 1 : 0)) / NFT_BLOCK_SLOTS % NFT_BLOCKS];
		if (d && dlen >= 6) {
			uint16_t port;
			memcpy(&port, d + 4, 2);
			inet_ntop(AF_INET, d, a, sizeof(a));
			o = (size_t)snprintf(buf, len, "%u : %s . %u", key, a, ntohs(port));
		} else {
			o = (size_t)snprintf(buf, len, "%u end", key);
		}
		if (who && o < len)
			snprintf(buf + o, len - o, " # %s", who);
		return;
	}
	if (!strcmp(set, NFT_HAIRPIN_SET) && klen == 8) {
		struct nft_addr_owner key = { 0 };
		memcpy(&key.addr, k, 4);
		inet_ntop(AF_INET, k, a, sizeof(a));
		o = (size_t)snprintf(buf, len, "%s . %s #", a, a);
		const struct nft_addr_owner *f =
			ow->n_addr ? bsearch(&key, ow->by_addr, ow->n_addr, sizeof(key),
					     nft_addr_owner_cmp)
				   : NULL;
		while (f && f > ow->by_addr && f[-1].addr == key.addr)
			f--;
		for (; f && f < ow->by_addr + ow->n_addr && f->addr == key.addr && o < len; f++)
			o += (size_t)snprintf(buf + o, len - o, " %s", f->name);
		return;
	}
	for (uint32_t i = 0; i < klen && o + 3 < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%02x", k[i]);
	if (nftnl_set_elem_is_set(el, NFTNL_SET_ELEM_CHAIN) && o < len)
		o += (size_t)snprintf(buf + o, len - o, " => goto %s",
				      nftnl_set_elem_get_str(el, NFTNL_SET_ELEM_CHAIN));
	if (nft_elem_comment_get(el, cm, sizeof(cm)) && o < len)
		snprintf(buf + o, len - o, " # %s", cm);
}

static int nft_collect(struct nft_dump_ctx *c, struct nft_state *st, bool full)
{
	struct nft_objs o = { 0 };
	struct nft_owners ow;
	char *text = malloc(8192);
	int err = nft_owners_init(&ow, st);
	if (!text || err) {
		free(text);
		nft_owners_free(&ow);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->n_chains && !err; i++) {
		struct nft_dchain *ch = &c->chains[i];
		err = nft_obj_add(&o, NFT_OBJ_CHAIN, ch->name, ch->handle, NULL, false);
		for (size_t j = 0; j < ch->n_rules && !err; j++) {
			if (full)
				nftnl_rule_snprintf(text, 8192, ch->rules[j], NFTNL_OUTPUT_DEFAULT,
						    0);
			err = nft_obj_add(&o, NFT_OBJ_RULE, ch->name,
					  nftnl_rule_get_u64(ch->rules[j], NFTNL_RULE_HANDLE),
					  full ? text : NULL, false);
		}
	}
	for (size_t i = 0; i < c->n_sets && !err; i++) {
		struct nftnl_set *s = c->sets[i].set;
		bool anon = nftnl_set_get_u32(s, NFTNL_SET_FLAGS) & NFT_SET_ANONYMOUS;
		const char *name = nftnl_set_get_str(s, NFTNL_SET_NAME);
		err = nft_obj_add(&o, NFT_OBJ_SET, name, nftnl_set_get_u64(s, NFTNL_SET_HANDLE),
				  NULL, anon);
		size_t set_obj = o.n - 1, n_elems = 0;
		struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
		for (struct nftnl_set_elem *el = it ? nftnl_set_elems_iter_next(it) : NULL;
		     el && !err; el = nftnl_set_elems_iter_next(it)) {
			n_elems++;
			if (!full)
				continue;
			nft_elem_text(el, name, &ow, text, 8192);
			err = nft_obj_add(&o, NFT_OBJ_ELEM, name, 0, text, anon);
		}
		if (!err)
			o.v[set_obj].n_elems = n_elems;
		if (it)
			nftnl_set_elems_iter_destroy(it);
	}
	free(text);
	nft_owners_free(&ow);
	st->objects = o.v;
	st->n_objects = o.n;
	return err;
}

/* The hairpin set's addresses. */
static int nft_dec_hairpin(struct nft_dump_ctx *c, struct nft_state *st)
{
	struct nft_dset *ds = nft_dset_find(c, NFT_HAIRPIN_SET);
	size_t cap = 0;
	if (!ds)
		return 0;
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(ds->set);
	if (!it)
		return -ENOMEM;
	int err = 0;
	for (struct nftnl_set_elem *el = nftnl_set_elems_iter_next(it); el && !err;
	     el = nftnl_set_elems_iter_next(it)) {
		uint32_t klen = 0;
		const uint8_t *k = nftnl_set_elem_get(el, NFTNL_SET_ELEM_KEY, &klen);
		if (!k || klen != 8)
			continue;
		if (!NFT_PUSH(st->hairpin, st->n_hairpin, cap)) {
			err = -ENOMEM;
			break;
		}
		memcpy(&st->hairpin[st->n_hairpin++].s_addr, k, 4);
	}
	nftnl_set_elems_iter_destroy(it);
	return err;
}

static int nft_decode(struct nft_dump_ctx *c, struct nft_state *st)
{
	struct nft_dec d = { 0 };
	struct nft_dshards sh;
	int err = 0;
	memset(&sh, 0, sizeof(sh));
	for (int m = 0; m < NFT_MAP__COUNT && !err; m++) {
		struct nft_dset *ds = nft_dset_find(c, nft_map_names[m]);
		if (!ds)
			continue;
		struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(ds->set);
		for (struct nftnl_set_elem *el = it ? nftnl_set_elems_iter_next(it) : NULL;
		     el && !err; el = nftnl_set_elems_iter_next(it))
			err = nft_dec_elem(&d, m, el);
		if (it)
			nftnl_set_elems_iter_destroy(it);
	}
	if (!err)
		err = nft_dshards_load(c, &sh);
	for (size_t i = 0; i < d.n && !err; i++) {
		err = nft_dec_chains(c, &sh, &d.v[i]);
		if (!err)
			err = nft_dec_fw_chain(c, &d.v[i]);
	}
	if (!err)
		err = nft_dec_hairpin(c, st);
	nft_dshards_free(&sh);
	st->services = calloc(d.n ? d.n : 1, sizeof(*st->services));
	st->service_blocks = calloc(d.n ? d.n : 1, sizeof(*st->service_blocks));
	bool ok = st->services && st->service_blocks;
	if (!ok)
		err = err ? err : -ENOMEM;
	for (size_t i = 0; i < d.n; i++) {
		if (ok) {
			st->services[i] = d.v[i].s;
			st->service_blocks[i] = d.v[i].blk;
		} else {
			nft_service_free_arrays(&d.v[i].s);
		}
	}
	st->n_services = ok ? d.n : 0;
	free(d.v);
	free(d.idx);
	return err;
}

void nft_state_free(struct nft_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_services; i++)
		nft_service_free_arrays(&st->services[i]);
	free(st->services);
	free(st->service_blocks);
	free(st->hairpin);
	for (size_t i = 0; i < st->n_objects; i++) {
		free(st->objects[i].name);
		free(st->objects[i].text);
	}
	free(st->objects);
	free(st->comment);
	free(st);
}

static char *nft_table_comment(struct nftnl_table *t)
{
	uint32_t len = 0;
	if (!nftnl_table_is_set(t, NFTNL_TABLE_USERDATA))
		return NULL;
	const void *ud = nftnl_table_get_data(t, NFTNL_TABLE_USERDATA, &len);
	const struct nftnl_udata *a;
	nftnl_udata_for_each_data(ud, len, a)
	{
		if (nftnl_udata_type(a) == NFTNL_UDATA_TABLE_COMMENT)
			return strndup(nftnl_udata_get(a), nftnl_udata_len(a));
	}
	return NULL;
}

int nft_dump(const char *table, struct nft_state **out)
{
	return nft_dump_ex(table, true, out);
}

int nft_dump_ex(const char *table, bool rule_text, struct nft_state **out)
{
	struct nft_state *st = calloc(1, sizeof(*st));
	struct nft_dump_ctx c = { 0 };
	int err = 0;
	if (!st)
		return -ENOMEM;
	if (!table)
		table = NFT_TABLE_NAME;
	if (!nft_dump_seq)
		nft_dump_seq = (uint32_t)time(NULL);
	struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl) {
		free(st);
		return -errno;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		goto out;
	}
	for (int attempt = 0;; attempt++) {
		uint32_t g0 = 0, g1 = 0;
		bool present;
		if ((err = nft_genid_on(nl, &g0)))
			goto out;
		err = nft_dump_once(nl, table, &c, &present, rule_text);
		if (!err)
			err = nft_genid_on(nl, &g1);
		if (err || g0 != g1) {
			nft_dump_ctx_free(&c);
			if (!err && attempt < 10)
				continue;
			err = err ? err : -EAGAIN;
			goto out;
		}
		st->present = present;
		st->genid = g1;
		break;
	}
	if (st->present) {
		st->comment = nft_table_comment(c.t);
		if ((err = nft_decode(&c, st)) || (err = nft_collect(&c, st, rule_text)))
			goto out;
	}
out:
	nft_dump_ctx_free(&c);
	mnl_socket_close(nl);
	if (err) {
		nft_state_free(st);
		return err;
	}
	*out = st;
	return 0;
}
