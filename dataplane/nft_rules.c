// SPDX-License-Identifier: Apache-2.0
/*
 * What the `inet shoal` table holds, and how each piece is written: the skeleton (base chains,
 * shared chains, the shared maps and sets), the endpoint maps, and, per service, a rendering
 * into named objects (shared map elements, chains with a content signature, endpoint
 * intervals, endpoint addresses for the hairpin set).
 *
 * The design choice: a service is rendered into objects whose names or keys derive from the
 * service (svc-NAME, ext-NAME, fw-NAME, its frontends' keys, its endpoint block's intervals)
 * and whose content is summarised by a signature, so that comparing two renderings says
 * exactly which elements to delete or add and which chains to create, rewrite or delete. A
 * service chain names its endpoint block, not its endpoints: a changed endpoint is a changed
 * interval of an endpoint map and leaves every rule as it is. Shared map elements carry the
 * service's name as their comment, which is how nft_dump attributes them back.
 */
#include "nft_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libnftnl/udata.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const nft_map_names[NFT_MAP__COUNT] = {
	[NFT_MAP_SERVICE_IPS] = "service-ips",
	[NFT_MAP_SERVICE_NODEPORTS] = "service-nodeports",
	[NFT_MAP_NOEP_SERVICES] = "no-endpoint-services",
	[NFT_MAP_NOEP_NODEPORTS] = "no-endpoint-nodeports",
	[NFT_MAP_FIREWALL_IPS] = "firewall-ips",
};

/* nft(8)'s datatype numbers, for readable listings: integer 4, ipv4_addr 7, inet_proto 12,
 * inet_service 13; a concatenation packs them 6 bits apart. */
#define NFT_TYPE_INTEGER 4u
#define NFT_TYPE_IPV4	 7u
#define NFT_TYPE_PROTO	 12u
#define NFT_TYPE_SERVICE 13u
#define NFT_TYPE_BITS	 6u
#define NFT_TYPE_ENDPOINT ((NFT_TYPE_IPV4 << NFT_TYPE_BITS) | NFT_TYPE_SERVICE)

/*
 * nft(8)'s description of a set's `typeof` in its user data, so that `nft list` prints an
 * endpoint map as `typeof numgen random mod 65536 : ip daddr . th dport` with numbers for
 * keys: nft's expression types (numgen 23, payload 7, concatenation 13), the attributes of
 * each, and its protocol and field numbers (ip 12 with daddr 12, th 11 with dport 2). nft
 * keeps these stable, as every version reads the sets older ones wrote.
 */
#define NFT_UD_EXPR_PAYLOAD  7u
#define NFT_UD_EXPR_CONCAT   13u
#define NFT_UD_EXPR_NUMGEN   23u
#define NFT_UD_PROTO_TH	     11u
#define NFT_UD_PROTO_IP	     12u
#define NFT_UD_IP_DADDR	     12u
#define NFT_UD_TH_DPORT	     2u
#define NFT_UD_BYTEORDER_HOST 1u

uint32_t nft_map_keylen(enum nft_map m)
{
	return (m == NFT_MAP_SERVICE_NODEPORTS || m == NFT_MAP_NOEP_NODEPORTS) ? 8 : 12;
}

bool nft_map_is_vmap(enum nft_map m)
{
	return m == NFT_MAP_SERVICE_IPS || m == NFT_MAP_SERVICE_NODEPORTS ||
	       m == NFT_MAP_FIREWALL_IPS;
}

void nft_name_svc(char *buf, const char *svc)
{
	snprintf(buf, NFT_OBJ_NAME_MAX, "svc-%s", svc);
}
void nft_name_ext(char *buf, const char *svc)
{
	snprintf(buf, NFT_OBJ_NAME_MAX, "ext-%s", svc);
}
void nft_name_fw(char *buf, const char *svc)
{
	snprintf(buf, NFT_OBJ_NAME_MAX, "fw-%s", svc);
}
void nft_name_shard(char *buf, uint32_t shard)
{
	snprintf(buf, NFT_OBJ_NAME_MAX, NFT_SHARD_PREFIX "%u", shard);
}

void nft_key_ip(uint8_t key[12], struct in_addr ip, uint8_t proto, uint16_t port)
{
	uint16_t p = htons(port);
	memset(key, 0, 12);
	memcpy(key, &ip.s_addr, 4);
	key[4] = proto;
	memcpy(key + 8, &p, 2);
}

void nft_key_port(uint8_t key[8], uint8_t proto, uint16_t port)
{
	uint16_t p = htons(port);
	memset(key, 0, 8);
	key[0] = proto;
	memcpy(key + 4, &p, 2);
}

static uint64_t nft_fnv(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
#define NFT_FNV0 0xcbf29ce484222325ull

int nft_service_validate(const struct nft_service *s, char *err, size_t errlen)
{
	size_t nl = strnlen(s->name, sizeof(s->name));
	if (nl == 0 || nl >= sizeof(s->name)) {
		snprintf(err, errlen, "service name: must be 1..%d characters",
			 NFT_SVC_NAME_MAX - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < nl; i++) {
		unsigned char c = (unsigned char)s->name[i];
		if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\') {
			snprintf(err, errlen, "service %s: name: character %zu is not allowed",
				 s->name, i);
			return -EINVAL;
		}
	}
	if (s->protocol != IPPROTO_TCP && s->protocol != IPPROTO_UDP &&
	    s->protocol != IPPROTO_SCTP) {
		snprintf(err, errlen, "service %s: protocol: %u is not tcp, udp or sctp", s->name,
			 s->protocol);
		return -EINVAL;
	}
	if (s->port == 0) {
		snprintf(err, errlen, "service %s: port: must be 1..65535", s->name);
		return -EINVAL;
	}
	if ((s->n_external_ips && !s->external_ips) || (s->n_endpoints && !s->endpoints) ||
	    (s->n_source_ranges && !s->source_ranges)) {
		snprintf(err, errlen, "service %s: an array with a count has no elements", s->name);
		return -EINVAL;
	}
	if (s->n_endpoints > NFT_BLOCK_SLOTS) {
		snprintf(err, errlen, "service %s: endpoints: %zu is more than %u", s->name,
			 s->n_endpoints, NFT_BLOCK_SLOTS);
		return -EINVAL;
	}
	for (size_t i = 0; i < s->n_endpoints; i++) {
		if (s->endpoints[i].port == 0 || s->endpoints[i].addr.s_addr == 0) {
			snprintf(err, errlen,
				 "service %s: endpoints[%zu]: address and port required", s->name,
				 i);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (s->endpoints[j].addr.s_addr == s->endpoints[i].addr.s_addr &&
			    s->endpoints[j].port == s->endpoints[i].port) {
				snprintf(err, errlen,
					 "service %s: endpoints[%zu]: duplicate of [%zu]", s->name,
					 i, j);
				return -EINVAL;
			}
		}
	}
	for (size_t i = 0; i < s->n_source_ranges; i++) {
		if (s->source_ranges[i].prefix > 32) {
			snprintf(err, errlen, "service %s: sourceRanges[%zu]: prefix %u > 32",
				 s->name, i, s->source_ranges[i].prefix);
			return -EINVAL;
		}
	}
	return 0;
}

static int nft_ep_cmp(const void *a, const void *b, void *arg)
{
	const struct nft_endpoint *v = arg;
	const struct nft_endpoint *x = &v[*(const size_t *)a], *y = &v[*(const size_t *)b];
	uint32_t xa = ntohl(x->addr.s_addr), ya = ntohl(y->addr.s_addr);
	if (xa != ya)
		return xa < ya ? -1 : 1;
	return x->port < y->port ? -1 : x->port > y->port;
}

int nft_used_endpoints(const struct nft_service *s, bool local, size_t **out)
{
	size_t n = 0;
	bool fallback = false;
	*out = NULL;
	for (size_t i = 0; i < s->n_endpoints; i++)
		n += s->endpoints[i].ready && (!local || s->endpoints[i].local);
	if (!n) {
		/* none ready: the serving ones that are terminating (kube-proxy's fallback) */
		fallback = true;
		for (size_t i = 0; i < s->n_endpoints; i++) {
			const struct nft_endpoint *ep = &s->endpoints[i];
			n += ep->serving && ep->terminating && (!local || ep->local);
		}
	}
	if (!n)
		return 0;
	size_t *v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < s->n_endpoints; i++) {
		const struct nft_endpoint *ep = &s->endpoints[i];
		bool use = fallback ? ep->serving && ep->terminating : ep->ready;
		if (use && (!local || ep->local))
			v[n++] = i;
	}
	qsort_r(v, n, sizeof(*v), nft_ep_cmp, s->endpoints);
	*out = v;
	return (int)n;
}

void nft_block_interval(uint32_t block, uint32_t k, uint32_t n, uint32_t *lo, uint32_t *hi)
{
	uint64_t base = (uint64_t)block * NFT_BLOCK_SLOTS;
	*lo = (uint32_t)(base + (uint64_t)k * NFT_BLOCK_SLOTS / n);
	*hi = (uint32_t)(base + (uint64_t)(k + 1) * NFT_BLOCK_SLOTS / n - 1);
}

uint32_t nft_service_affinity(const struct nft_service *s)
{
	bool ready = false, fallback = false;
	for (size_t i = 0; i < s->n_endpoints; i++) {
		ready |= s->endpoints[i].ready;
		fallback |= s->endpoints[i].serving && s->endpoints[i].terminating;
	}
	return ready || fallback ? s->affinity_timeout : 0;
}

bool nft_service_ext_local(const struct nft_service *s)
{
	return s->external_local && (s->node_port || s->n_external_ips);
}

/* The chains a service gets: ext-NAME for frontends reached from outside, svc-NAME for its
 * cluster IP and behind ext-NAME. */
static void nft_frontends(const struct nft_rcfg *cfg, const struct nft_service *s, bool *to_svc,
			  bool *to_ext)
{
	*to_ext = (cfg->proxy && s->n_external_ips) || (cfg->nodeports && s->node_port);
	*to_svc = (cfg->proxy && s->cluster_ip.s_addr) || *to_ext;
}

void nft_blocks_needed(const struct nft_rcfg *cfg, const struct nft_service *s, bool *cluster,
		       bool *local)
{
	bool to_svc, to_ext;
	nft_frontends(cfg, s, &to_svc, &to_ext);
	*cluster = to_svc;
	*local = to_ext && nft_service_ext_local(s);
}

/* ---- rendering ---- */

#define NFT_GROW(arr, n, cap)                                                                      \
	({                                                                                         \
		bool ok_ = true;                                                                   \
		if ((n) == (cap)) {                                                                \
			size_t nc_ = (cap) ? (cap)*2 : 8;                                          \
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

static int nft_r_add_elem(struct nft_render *r, enum nft_map map, const uint8_t *key,
			  const char *chain, const char *svc, const char *what)
{
	if (!NFT_GROW(r->elems, r->n_elems, r->cap_elems))
		return -ENOMEM;
	struct nft_r_elem *e = &r->elems[r->n_elems++];
	memset(e, 0, sizeof(*e));
	e->map = (uint8_t)map;
	e->keylen = (uint8_t)nft_map_keylen(map);
	memcpy(e->key, key, e->keylen);
	snprintf(e->chain, sizeof(e->chain), "%s", chain);
	snprintf(e->comment, sizeof(e->comment), "%s %s", svc, what);
	return 0;
}

static struct nft_r_chain *nft_r_add_chain(struct nft_render *r, uint8_t kind, const char *name)
{
	if (!NFT_GROW(r->chains, r->n_chains, r->cap_chains))
		return NULL;
	struct nft_r_chain *c = &r->chains[r->n_chains++];
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	snprintf(c->name, sizeof(c->name), "%s", name);
	return c;
}

void nft_render_free(struct nft_render *r)
{
	if (!r)
		return;
	free(r->elems);
	free(r->chains);
	free(r->ranges);
	free(r->addrs);
	memset(r, 0, sizeof(*r));
}

/* The block's intervals, one per endpoint in canonical order. */
static int nft_r_add_ranges(struct nft_render *r, const struct nft_service *s, uint32_t block,
			    const size_t *order, int n)
{
	for (int k = 0; k < n; k++) {
		if (!NFT_GROW(r->ranges, r->n_ranges, r->cap_ranges))
			return -ENOMEM;
		struct nft_r_range *g = &r->ranges[r->n_ranges++];
		const struct nft_endpoint *ep = &s->endpoints[order[k]];
		g->block = block;
		nft_block_interval(block, (uint32_t)k, (uint32_t)n, &g->lo, &g->hi);
		g->addr = ep->addr;
		g->port = ep->port;
	}
	return 0;
}

/* Endpoint addresses, for the hairpin set. */
static int nft_r_add_endpoints(struct nft_render *r, const struct nft_service *s,
			       const size_t *order, int n)
{
	for (int k = 0; k < n; k++) {
		const struct nft_endpoint *ep = &s->endpoints[order[k]];
		bool seen = false;
		for (size_t i = 0; i < r->n_addrs && !seen; i++)
			seen = r->addrs[i].s_addr == ep->addr.s_addr;
		if (seen)
			continue;
		if (!NFT_GROW(r->addrs, r->n_addrs, r->cap_addrs))
			return -ENOMEM;
		r->addrs[r->n_addrs++] = ep->addr;
	}
	return 0;
}

/* Signature of an endpoint selection: the block it reads, or the endpoints its rules name. */
static uint64_t nft_sig_select(uint64_t h, const struct nft_service *s, uint32_t block,
			       const size_t *order, int n)
{
	uint32_t aff = nft_service_affinity(s);
	h = nft_fnv(h, &s->protocol, 1);
	h = nft_fnv(h, &aff, sizeof(aff));
	h = nft_fnv(h, &block, sizeof(block));
	if (!aff)
		return h;
	for (int k = 0; k < n; k++) {
		const struct nft_endpoint *ep = &s->endpoints[order[k]];
		h = nft_fnv(h, &ep->addr, sizeof(ep->addr));
		h = nft_fnv(h, &ep->port, sizeof(ep->port));
	}
	return nft_fnv(h, &n, sizeof(n));
}

/* Rules of an endpoint selection: the block's, and with affinity two per endpoint before. */
static uint32_t nft_select_rules(const struct nft_service *s, int n)
{
	return nft_service_affinity(s) ? 2 * (uint32_t)n + 1 : 1;
}

int nft_render_service(const struct nft_rcfg *cfg, const struct nft_service *s,
		       const struct nft_blocks *blk, struct nft_render *out)
{
	char svc[NFT_OBJ_NAME_MAX], ext[NFT_OBJ_NAME_MAX], fw[NFT_OBJ_NAME_MAX];
	uint8_t key[12];
	size_t *order = NULL, *lorder = NULL;
	int n = 0, nl = 0, err = 0;
	bool to_svc, to_ext, need_cluster, need_local;

	memset(out, 0, sizeof(*out));
	nft_frontends(cfg, s, &to_svc, &to_ext);
	nft_blocks_needed(cfg, s, &need_cluster, &need_local);
	if (need_cluster && blk->cluster >= NFT_BLOCKS)
		return -EINVAL;
	out->affinity = to_svc && nft_service_affinity(s);
	if (need_local && blk->local >= NFT_BLOCKS)
		return -EINVAL;
	bool ext_local = to_ext && nft_service_ext_local(s);
	if ((n = nft_used_endpoints(s, false, &order)) < 0 ||
	    (ext_local && (nl = nft_used_endpoints(s, true, &lorder)) < 0)) {
		err = -ENOMEM;
		goto fail;
	}
	/* everything at once (a full sync renders every service) */
	out->cap_elems = 2 + 2 * s->n_external_ips;
	out->cap_chains = 3;
	out->cap_ranges = out->cap_addrs = (size_t)n + (size_t)nl;
	out->elems = malloc(out->cap_elems * sizeof(*out->elems));
	out->chains = malloc(out->cap_chains * sizeof(*out->chains));
	if (out->cap_ranges) {
		out->ranges = malloc(out->cap_ranges * sizeof(*out->ranges));
		out->addrs = malloc(out->cap_addrs * sizeof(*out->addrs));
	}
	if (!out->elems || !out->chains || (out->cap_ranges && (!out->ranges || !out->addrs))) {
		err = -ENOMEM;
		goto fail;
	}
	nft_name_svc(svc, s->name);
	nft_name_ext(ext, s->name);
	nft_name_fw(fw, s->name);

	/* frontends: the proxy's maps, or when it does not own them and nothing serves them,
	 * the no-endpoint sets */
	if (s->cluster_ip.s_addr) {
		nft_key_ip(key, s->cluster_ip, s->protocol, s->port);
		if (cfg->proxy)
			err = nft_r_add_elem(out, NFT_MAP_SERVICE_IPS, key, svc, s->name,
					     "cluster-ip");
		else if (!n)
			err = nft_r_add_elem(out, NFT_MAP_NOEP_SERVICES, key, "", s->name,
					     "cluster-ip");
		if (err)
			goto fail;
	}
	for (size_t i = 0; i < s->n_external_ips; i++) {
		nft_key_ip(key, s->external_ips[i], s->protocol, s->port);
		if (cfg->proxy)
			err = nft_r_add_elem(out, NFT_MAP_SERVICE_IPS, key, ext, s->name,
					     "external-ip");
		else if (!n)
			err = nft_r_add_elem(out, NFT_MAP_NOEP_SERVICES, key, "", s->name,
					     "external-ip");
		if (!err && s->n_source_ranges)
			err = nft_r_add_elem(out, NFT_MAP_FIREWALL_IPS, key, fw, s->name,
					     "external-ip");
		if (err)
			goto fail;
	}
	if (s->node_port) {
		nft_key_port(key, s->protocol, s->node_port);
		if (cfg->nodeports)
			err = nft_r_add_elem(out, NFT_MAP_SERVICE_NODEPORTS, key, ext, s->name,
					     "node-port");
		else if (!n)
			err = nft_r_add_elem(out, NFT_MAP_NOEP_NODEPORTS, key, "", s->name,
					     "node-port");
		if (err)
			goto fail;
	}

	err = -ENOMEM;
	struct nft_r_chain *c;
	if (s->n_source_ranges && s->n_external_ips) {
		if (!(c = nft_r_add_chain(out, NFT_CH_FW, fw)))
			goto fail;
		c->sig = nft_fnv(NFT_FNV0, "fw", 2);
		for (size_t i = 0; i < s->n_source_ranges; i++)
			c->sig = nft_fnv(c->sig, &s->source_ranges[i], sizeof(s->source_ranges[i]));
		c->n_rules = (uint32_t)s->n_source_ranges + 1;
	}
	if (to_svc) {
		if (!(c = nft_r_add_chain(out, NFT_CH_SVC, svc)))
			goto fail;
		c->sig = nft_sig_select(nft_fnv(NFT_FNV0, "svc", 3), s, blk->cluster, order, n);
		c->n_rules = (cfg->n_pod_cidrs ? 1 : 0) + nft_select_rules(s, n) + 1;
		if (need_cluster && nft_r_add_ranges(out, s, blk->cluster, order, n))
			goto fail;
		if (nft_r_add_endpoints(out, s, order, n))
			goto fail;
	}
	if (to_ext) {
		if (!(c = nft_r_add_chain(out, NFT_CH_EXT, ext)))
			goto fail;
		if (ext_local) {
			c->sig = nft_sig_select(nft_fnv(NFT_FNV0, "ext-local", 9), s, blk->local,
						lorder, nl);
			c->n_rules = (uint32_t)cfg->n_pod_cidrs + 3 + nft_select_rules(s, nl);
			if (need_local && nft_r_add_ranges(out, s, blk->local, lorder, nl))
				goto fail;
			if (nft_r_add_endpoints(out, s, lorder, nl))
				goto fail;
		} else {
			c->sig = nft_fnv(NFT_FNV0, "ext", 3);
			c->n_rules = 2;
		}
	}
	free(order);
	free(lorder);
	return 0;
fail:
	free(order);
	free(lorder);
	nft_render_free(out);
	return err;
}

/* ---- emission ---- */

static struct nftnl_rule *nft_rule_new(const struct nft_rcfg *cfg, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	if (!r)
		return NULL;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, cfg->table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	return r;
}

static int nft_rule_send(struct nft_batch *b, struct nftnl_rule *r)
{
	if (!r)
		return -ENOMEM;
	int err = nft_put_rule(b, NFT_MSG_NEWRULE, NLM_F_APPEND | NLM_F_CREATE, r);
	nftnl_rule_free(r);
	return err;
}

static void nft_x_nfproto_ipv4(struct nftnl_rule *r)
{
	uint8_t v4 = NFPROTO_IPV4;
	nft_x_meta(r, NFT_META_NFPROTO, NFT_REG_1);
	nft_x_cmp(r, NFT_REG_1, NFT_CMP_EQ, &v4, 1);
}

static void nft_x_l4proto(struct nftnl_rule *r, uint8_t proto)
{
	nft_x_meta(r, NFT_META_L4PROTO, NFT_REG_1);
	nft_x_cmp(r, NFT_REG_1, NFT_CMP_EQ, &proto, 1);
}

/* ip daddr . meta l4proto . th dport into NFT_REG32_00..02 */
static void nft_x_frontend_ip(struct nftnl_rule *r)
{
	nft_x_nfproto_ipv4(r);
	nft_x_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG32_00);
	nft_x_meta(r, NFT_META_L4PROTO, NFT_REG32_01);
	nft_x_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_02);
}

/* fib daddr type local ip daddr != 127.0.0.0/8, then meta l4proto . th dport into
 * NFT_REG32_00..01 */
static void nft_x_frontend_local_port(struct nftnl_rule *r)
{
	uint32_t local = RTN_LOCAL;
	struct nft_cidr lo = { .addr.s_addr = htonl(0x7f000000), .prefix = 8 };
	nft_x_nfproto_ipv4(r);
	nft_x_fib_daddr_type(r, NFT_REG_1);
	nft_x_cmp(r, NFT_REG_1, NFT_CMP_EQ, &local, 4);
	nft_x_match_cidr(r, 16, &lo, true);
	nft_x_meta(r, NFT_META_L4PROTO, NFT_REG32_00);
	nft_x_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_01);
}

/* ip daddr . meta l4proto . th dport vmap @map, or with `port_only` the NodePort form */
static int nft_rule_vmap(const struct nft_rcfg *cfg, struct nft_batch *b, const char *chain,
			 const char *map, bool port_only)
{
	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (!r)
		return -ENOMEM;
	if (port_only)
		nft_x_frontend_local_port(r);
	else
		nft_x_frontend_ip(r);
	nft_x_lookup(r, NFT_REG32_00, NFT_REG_VERDICT, map, 0);
	return nft_rule_send(b, r);
}

/* ip daddr . meta l4proto . th dport @set reject (or the NodePort form) */
static int nft_rule_set_reject(const struct nft_rcfg *cfg, struct nft_batch *b, const char *chain,
			       const char *set, bool port_only)
{
	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (!r)
		return -ENOMEM;
	if (port_only)
		nft_x_frontend_local_port(r);
	else
		nft_x_frontend_ip(r);
	nft_x_lookup(r, NFT_REG32_00, NFT_NO_DREG, set, 0);
	nft_x_reject(r);
	return nft_rule_send(b, r);
}

/* ct state new jump chain */
static int nft_rule_ct_new_jump(const struct nft_rcfg *cfg, struct nft_batch *b, const char *chain,
				const char *to)
{
	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (!r)
		return -ENOMEM;
	uint32_t bit = 1u << 3 /* IP_CT_NEW */, zero = 0, mask = bit;
	nft_x_ct_state(r, NFT_REG_1);
	nft_x_bitwise(r, NFT_REG_1, NFT_REG_1, 4, &mask, &zero);
	nft_x_cmp(r, NFT_REG_1, NFT_CMP_NEQ, &zero, 4);
	nft_x_verdict(r, NFT_JUMP, to);
	return nft_rule_send(b, r);
}

static int nft_rule_verdict(const struct nft_rcfg *cfg, struct nft_batch *b, const char *chain,
			    int verdict, const char *to)
{
	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (!r)
		return -ENOMEM;
	nft_x_verdict(r, verdict, to);
	return nft_rule_send(b, r);
}

/* meta nfproto ipv4 ip saddr|daddr CIDR verdict [to] */
static int nft_rule_cidr_verdict(const struct nft_rcfg *cfg, struct nft_batch *b, const char *chain,
				 uint32_t off, const struct nft_cidr *c, int verdict,
				 const char *to)
{
	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (!r)
		return -ENOMEM;
	nft_x_nfproto_ipv4(r); /* also lets nft(8) print `ip saddr ...` */
	nft_x_match_cidr(r, off, c, false);
	nft_x_verdict(r, verdict, to);
	return nft_rule_send(b, r);
}

static void nft_x_mark_masq(const struct nft_rcfg *cfg, struct nftnl_rule *r);

/* fib saddr type local verdict to, or with no verdict (0) the masquerade mark */
static int nft_rule_from_node(const struct nft_rcfg *cfg, struct nft_batch *b, const char *chain,
			      int verdict, const char *to)
{
	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (!r)
		return -ENOMEM;
	uint32_t local = RTN_LOCAL;
	nft_x_fib_saddr_type(r, NFT_REG_1);
	nft_x_cmp(r, NFT_REG_1, NFT_CMP_EQ, &local, 4);
	if (verdict)
		nft_x_verdict(r, verdict, to);
	else
		nft_x_mark_masq(cfg, r);
	return nft_rule_send(b, r);
}

int nft_emit_chain(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type, const char *name)
{
	int err;
	if (type == NFT_MSG_DELRULE) {
		/* flush: a rule deletion naming only the chain */
		struct nftnl_rule *r = nft_rule_new(cfg, name);
		if (!r)
			return -ENOMEM;
		err = nft_put_rule(b, NFT_MSG_DELRULE, 0, r);
		nftnl_rule_free(r);
		return err;
	}
	struct nftnl_chain *c = nftnl_chain_alloc();
	if (!c)
		return -ENOMEM;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, cfg->table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	err = nft_put_chain(b, type, type == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0, c);
	nftnl_chain_free(c);
	return err;
}

static int nft_emit_base_chain(const struct nft_rcfg *cfg, struct nft_batch *b, const char *name,
			       const char *type, uint32_t hook, int32_t prio)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	if (!c)
		return -ENOMEM;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, cfg->table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	int err = nft_put_chain(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, c);
	nftnl_chain_free(c);
	return err;
}

static struct nftnl_set *nft_set_new(const struct nft_rcfg *cfg, const char *name)
{
	struct nftnl_set *s = nftnl_set_alloc();
	if (!s)
		return NULL;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, cfg->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	return s;
}

static int nft_set_send(struct nft_batch *b, uint16_t type, struct nftnl_set *s)
{
	if (!s)
		return -ENOMEM;
	int err = nft_put_set(b, type, type == NFT_MSG_NEWSET ? NLM_F_CREATE : 0, s);
	nftnl_set_free(s);
	return err;
}

static int nft_emit_map(const struct nft_rcfg *cfg, struct nft_batch *b, enum nft_map m)
{
	struct nftnl_set *s = nft_set_new(cfg, nft_map_names[m]);
	if (!s)
		return -ENOMEM;
	bool ip = nft_map_keylen(m) == 12;
	uint32_t ktype =
		ip ? (((NFT_TYPE_IPV4 << NFT_TYPE_BITS) | NFT_TYPE_PROTO) << NFT_TYPE_BITS) |
				NFT_TYPE_SERVICE
		   : (NFT_TYPE_PROTO << NFT_TYPE_BITS) | NFT_TYPE_SERVICE;
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, ktype);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, nft_map_keylen(m));
	if (nft_map_is_vmap(m)) {
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP);
		nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
	} else {
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, 0);
	}
	nftnl_set_set_u32(s, NFTNL_SET_ID, nft_batch_set_id(b));
	return nft_set_send(b, NFT_MSG_NEWSET, s);
}

/* set hairpin { type ipv4_addr . ipv4_addr }: each endpoint address twice */
static int nft_emit_hairpin_set(const struct nft_rcfg *cfg, struct nft_batch *b)
{
	struct nftnl_set *s = nft_set_new(cfg, NFT_HAIRPIN_SET);
	if (!s)
		return -ENOMEM;
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, 0);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, (NFT_TYPE_IPV4 << NFT_TYPE_BITS) | NFT_TYPE_IPV4);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 8);
	nftnl_set_set_u32(s, NFTNL_SET_ID, nft_batch_set_id(b));
	return nft_set_send(b, NFT_MSG_NEWSET, s);
}

/* One expression of a typeof: its type and attributes (u32 each, numbered from 0). */
static bool nft_ud_typeof_expr(struct nftnl_udata_buf *ud, uint32_t etype, const uint32_t *attrs,
			       int n)
{
	if (!nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_TYPEOF_EXPR, etype))
		return false;
	struct nftnl_udata *data = nftnl_udata_nest_start(ud, NFTNL_UDATA_SET_TYPEOF_DATA);
	for (int i = 0; data && i < n; i++)
		if (!nftnl_udata_put_u32(ud, (uint8_t)i, attrs[i]))
			return false;
	if (data)
		nftnl_udata_nest_end(ud, data);
	return data;
}

/* typeof numgen random mod 65536 : ip daddr . th dport */
static bool nft_ud_endpoint_map(struct nftnl_udata_buf *ud)
{
	static const uint32_t numgen[] = { NFT_NG_RANDOM, NFT_BLOCK_SLOTS, 0 };
	static const uint32_t daddr[] = { NFT_UD_PROTO_IP, NFT_UD_IP_DADDR };
	static const uint32_t dport[] = { NFT_UD_PROTO_TH, NFT_UD_TH_DPORT };
	if (!nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, NFT_UD_BYTEORDER_HOST) ||
	    !nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_DATABYTEORDER, 0))
		return false;
	struct nftnl_udata *key = nftnl_udata_nest_start(ud, NFTNL_UDATA_SET_KEY_TYPEOF);
	if (!key || !nft_ud_typeof_expr(ud, NFT_UD_EXPR_NUMGEN, numgen, 3))
		return false;
	nftnl_udata_nest_end(ud, key);
	struct nftnl_udata *data = nftnl_udata_nest_start(ud, NFTNL_UDATA_SET_DATA_TYPEOF);
	if (!data || !nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_TYPEOF_EXPR, NFT_UD_EXPR_CONCAT))
		return false;
	struct nftnl_udata *parts = nftnl_udata_nest_start(ud, NFTNL_UDATA_SET_TYPEOF_DATA);
	for (uint8_t i = 0; parts && i < 2; i++) {
		struct nftnl_udata *part = nftnl_udata_nest_start(ud, i);
		if (!part || !nft_ud_typeof_expr(ud, NFT_UD_EXPR_PAYLOAD, i ? dport : daddr, 2))
			return false;
		nftnl_udata_nest_end(ud, part);
	}
	if (!parts)
		return false;
	nftnl_udata_nest_end(ud, parts);
	nftnl_udata_nest_end(ud, data);
	return true;
}

/*
 * map endpoints-S { typeof numgen random mod 65536 : ip daddr . th dport; flags
 * interval }: the intervals of the blocks B with B % 256 == S. The user data carries nft(8)'s
 * description of the key, so that `nft list` prints the keys as numbers.
 */
int nft_emit_shard(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type, uint32_t shard)
{
	char name[NFT_OBJ_NAME_MAX];
	nft_name_shard(name, shard);
	struct nftnl_set *s = nft_set_new(cfg, name);
	if (!s || type == NFT_MSG_DELSET)
		return nft_set_send(b, type, s);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP | NFT_SET_INTERVAL);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, NFT_TYPE_INTEGER);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 4);
	nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_TYPE_ENDPOINT);
	nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, 8);
	nftnl_set_set_u32(s, NFTNL_SET_ID, nft_batch_set_id(b));
	struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(256);
	bool ok = ud && nft_ud_endpoint_map(ud);
	if (ok)
		nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud),
				   nftnl_udata_buf_len(ud));
	nftnl_udata_buf_free(ud);
	if (!ok) {
		nftnl_set_free(s);
		return -ENOMEM;
	}
	return nft_set_send(b, type, s);
}

/* set affinity { type ipv4_addr . ipv4_addr . inet_service; flags dynamic,timeout }: client
 * . endpoint, for the services with session affinity; the rules that add a client give its
 * timeout. One set for all, made with the first such service: a set costs the kernel a hash
 * table sized for its capacity. */
int nft_emit_affinity_set(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type)
{
	struct nftnl_set *s = nft_set_new(cfg, NFT_AFFINITY_SET);
	if (!s || type == NFT_MSG_DELSET)
		return nft_set_send(b, type, s);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT | NFT_SET_EVAL);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE,
			  (((NFT_TYPE_IPV4 << NFT_TYPE_BITS) | NFT_TYPE_IPV4) << NFT_TYPE_BITS) |
				  NFT_TYPE_SERVICE);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 12);
	nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, NFT_AFFINITY_CLIENTS);
	nftnl_set_set_u32(s, NFTNL_SET_ID, nft_batch_set_id(b));
	return nft_set_send(b, type, s);
}

void nft_cfg_signature(const struct nft_rcfg *cfg, char *buf, size_t len)
{
	size_t o = (size_t)snprintf(buf, len,
				    "shoal/3 mark=0x%x proxy=%d nodeports=%d pods=", cfg->masq_mark,
				    cfg->proxy, cfg->nodeports);
	for (size_t i = 0; i < cfg->n_pod_cidrs && o < len; i++) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &cfg->pod_cidrs[i].addr, a, sizeof(a));
		o += (size_t)snprintf(buf + o, len - o, "%s%s/%u", i ? "," : "", a,
				      cfg->pod_cidrs[i].prefix);
	}
}

size_t nft_skeleton_rules(const struct nft_rcfg *cfg)
{
	size_t np = cfg->n_pod_cidrs;
	/* services 2, the three checks 3, mark 1, masquerading 3, mark-from-outside,
	 * pod-egress, nat chains 3 + one per pod CIDR, filter chains 6 */
	return 2 + 3 + 1 + 3 + (np ? np + 1 : 0) + (np + 1) + 3 + np + 6;
}

int nft_emit_skeleton(const struct nft_rcfg *cfg, struct nft_batch *b, const char *sig)
{
	int err;
	struct nftnl_table *t = nftnl_table_alloc();
	if (!t)
		return -ENOMEM;
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, cfg->table);
	struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 16);
	if (ud && nftnl_udata_put_strz(ud, NFTNL_UDATA_TABLE_COMMENT, sig))
		nftnl_table_set_data(t, NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(ud),
				     nftnl_udata_buf_len(ud));
	nftnl_udata_buf_free(ud);
	err = nft_put_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE, t);
	nftnl_table_free(t);
	if (err)
		return err;

	for (int m = 0; m < NFT_MAP__COUNT; m++)
		if ((err = nft_emit_map(cfg, b, m)))
			return err;
	if ((err = nft_emit_hairpin_set(cfg, b)))
		return err;

	static const char *const plain[] = {
		"services",	       "service-endpoints-check", "nodeport-endpoints-check",
		"firewall-check",      "mark-for-masquerade",	  "masquerading",
		"mark-from-outside",   "pod-egress",
	};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if ((err = nft_emit_chain(cfg, b, NFT_MSG_NEWCHAIN, plain[i])))
			return err;

	/* services: ClusterIPs and external IPs, then NodePorts on local addresses; frontends
	 * the proxy does not own and nothing serves are rejected in the filter hooks */
	if ((err = nft_rule_vmap(cfg, b, "services", "service-ips", false)) ||
	    (err = nft_rule_vmap(cfg, b, "services", "service-nodeports", true)) ||
	    (err = nft_rule_set_reject(cfg, b, "service-endpoints-check", "no-endpoint-services",
				       false)) ||
	    (err = nft_rule_set_reject(cfg, b, "nodeport-endpoints-check",
				       "no-endpoint-nodeports", true)) ||
	    (err = nft_rule_vmap(cfg, b, "firewall-check", "firewall-ips", false)))
		return err;

	/* mark-for-masquerade: meta mark set meta mark | M */
	uint32_t m = cfg->masq_mark, nm = ~cfg->masq_mark, zero = 0, ones = ~0u;
	struct nftnl_rule *r = nft_rule_new(cfg, "mark-for-masquerade");
	if (r) {
		nft_x_meta(r, NFT_META_MARK, NFT_REG_1);
		nft_x_bitwise(r, NFT_REG_1, NFT_REG_1, 4, &nm, &m);
		nft_x_meta_set(r, NFT_META_MARK, NFT_REG_1);
	}
	if ((err = nft_rule_send(b, r)))
		return err;

	/* masquerading: ct status dnat ip saddr . ip daddr @hairpin masquerade (a pod that
	 * reached itself through a Service: without it the reply would bypass the NAT);
	 * meta mark & M == 0 return; meta mark set meta mark ^ M; masquerade */
	r = nft_rule_new(cfg, "masquerading");
	if (r) {
		uint32_t dnat = IPS_DST_NAT;
		nft_x_ct_status(r, NFT_REG_1);
		nft_x_bitwise(r, NFT_REG_1, NFT_REG_1, 4, &dnat, &zero);
		nft_x_cmp(r, NFT_REG_1, NFT_CMP_NEQ, &zero, 4);
		nft_x_nfproto_ipv4(r);
		nft_x_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 12, 4, NFT_REG32_00);
		nft_x_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG32_01);
		nft_x_lookup(r, NFT_REG32_00, NFT_NO_DREG, NFT_HAIRPIN_SET, 0);
		nft_x_masq(r, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
	}
	if ((err = nft_rule_send(b, r)))
		return err;
	r = nft_rule_new(cfg, "masquerading");
	if (r) {
		nft_x_meta(r, NFT_META_MARK, NFT_REG_1);
		nft_x_bitwise(r, NFT_REG_1, NFT_REG_1, 4, &m, &zero);
		nft_x_cmp(r, NFT_REG_1, NFT_CMP_EQ, &zero, 4);
		nft_x_verdict(r, NFT_RETURN, NULL);
	}
	if ((err = nft_rule_send(b, r)))
		return err;
	r = nft_rule_new(cfg, "masquerading");
	if (r) {
		nft_x_meta(r, NFT_META_MARK, NFT_REG_1);
		nft_x_bitwise(r, NFT_REG_1, NFT_REG_1, 4, &ones, &m);
		nft_x_meta_set(r, NFT_META_MARK, NFT_REG_1);
		nft_x_masq(r, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
	}
	if ((err = nft_rule_send(b, r)))
		return err;

	/* mark-from-outside: ClusterIP traffic not from a pod is masqueraded */
	if (cfg->n_pod_cidrs) {
		for (size_t i = 0; i < cfg->n_pod_cidrs; i++)
			if ((err = nft_rule_cidr_verdict(cfg, b, "mark-from-outside", 12,
							 &cfg->pod_cidrs[i], NFT_RETURN, NULL)))
				return err;
		if ((err = nft_rule_verdict(cfg, b, "mark-from-outside", NFT_JUMP,
					    "mark-for-masquerade")))
			return err;
	}

	/* pod-egress: pod traffic leaving the pod CIDRs is masqueraded */
	for (size_t i = 0; i < cfg->n_pod_cidrs; i++)
		if ((err = nft_rule_cidr_verdict(cfg, b, "pod-egress", 16, &cfg->pod_cidrs[i],
						 NFT_RETURN, NULL)))
			return err;
	r = nft_rule_new(cfg, "pod-egress");
	if (r)
		nft_x_masq(r, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
	if ((err = nft_rule_send(b, r)))
		return err;

	/* base chains (priorities as kube-proxy: dstnat, srcnat, filter - 10) */
	if ((err = nft_emit_base_chain(cfg, b, "nat-prerouting", "nat", NF_INET_PRE_ROUTING,
				       -100)) ||
	    (err = nft_emit_base_chain(cfg, b, "nat-output", "nat", NF_INET_LOCAL_OUT, -100)) ||
	    (err = nft_emit_base_chain(cfg, b, "nat-postrouting", "nat", NF_INET_POST_ROUTING,
				       100)) ||
	    (err = nft_emit_base_chain(cfg, b, "filter-prerouting", "filter", NF_INET_PRE_ROUTING,
				       -110)) ||
	    (err = nft_emit_base_chain(cfg, b, "filter-input", "filter", NF_INET_LOCAL_IN, -110)) ||
	    (err = nft_emit_base_chain(cfg, b, "filter-forward", "filter", NF_INET_FORWARD,
				       -110)) ||
	    (err = nft_emit_base_chain(cfg, b, "filter-output", "filter", NF_INET_LOCAL_OUT, -110)))
		return err;
	if ((err = nft_rule_verdict(cfg, b, "nat-prerouting", NFT_JUMP, "services")) ||
	    (err = nft_rule_verdict(cfg, b, "nat-output", NFT_JUMP, "services")) ||
	    (err = nft_rule_verdict(cfg, b, "nat-postrouting", NFT_JUMP, "masquerading")))
		return err;
	for (size_t i = 0; i < cfg->n_pod_cidrs; i++)
		if ((err = nft_rule_cidr_verdict(cfg, b, "nat-postrouting", 12, &cfg->pod_cidrs[i],
						 NFT_JUMP, "pod-egress")))
			return err;
	if ((err = nft_rule_ct_new_jump(cfg, b, "filter-prerouting", "firewall-check")) ||
	    (err = nft_rule_ct_new_jump(cfg, b, "filter-input", "nodeport-endpoints-check")) ||
	    (err = nft_rule_ct_new_jump(cfg, b, "filter-input", "service-endpoints-check")) ||
	    (err = nft_rule_ct_new_jump(cfg, b, "filter-forward", "service-endpoints-check")) ||
	    (err = nft_rule_ct_new_jump(cfg, b, "filter-output", "service-endpoints-check")) ||
	    (err = nft_rule_ct_new_jump(cfg, b, "filter-output", "firewall-check")))
		return err;
	return 0;
}

/* "{10.96.0.3 . tcp . 80 (ns/a/tcp/80 cluster-ip), ... +N more}" */
static void nft_elems_describe(const struct nft_r_elem *const *v, size_t n, char *buf, size_t len)
{
	size_t o = (size_t)snprintf(buf, len, "{");
	for (size_t i = 0; i < n && i < 2 && o < len; i++) {
		const struct nft_r_elem *e = v[i];
		char a[INET_ADDRSTRLEN] = "";
		uint16_t port;
		uint8_t proto;
		if (e->keylen == 12) {
			inet_ntop(AF_INET, e->key, a, sizeof(a));
			proto = e->key[4];
			memcpy(&port, e->key + 8, 2);
		} else {
			proto = e->key[0];
			memcpy(&port, e->key + 4, 2);
		}
		o += (size_t)snprintf(buf + o, len - o, "%s%s%s%s . %u (%s)", i ? ", " : "", a,
				      a[0] ? " . " : "",
				      proto == IPPROTO_TCP   ? "tcp"
				      : proto == IPPROTO_UDP ? "udp"
							     : "sctp",
				      ntohs(port), e->comment);
	}
	if (o < len)
		snprintf(buf + o, len - o, n > 2 ? ", +%zu more}" : "}", n - 2);
}

static struct nftnl_set_elem *nft_elem_add(struct nftnl_set *s)
{
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();
	if (e)
		nftnl_set_elem_add(s, e);
	return e;
}

int nft_emit_elems(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type, enum nft_map map,
		   const struct nft_r_elem *const *elems, size_t n)
{
	for (size_t off = 0; off < n; off += NFT_ELEMS_PER_MSG) {
		struct nftnl_set *s = nft_set_new(cfg, nft_map_names[map]);
		if (!s)
			return -ENOMEM;
		size_t end = off + NFT_ELEMS_PER_MSG < n ? off + NFT_ELEMS_PER_MSG : n;
		for (size_t i = off; i < end; i++) {
			struct nftnl_set_elem *e = nft_elem_add(s);
			if (!e) {
				nftnl_set_free(s);
				return -ENOMEM;
			}
			nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, elems[i]->key, elems[i]->keylen);
			if (type != NFT_MSG_NEWSETELEM)
				continue;
			if (nft_map_is_vmap(map)) {
				nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, NFT_GOTO);
				nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, elems[i]->chain);
			}
			if (elems[i]->comment[0])
				nft_elem_comment(e, elems[i]->comment);
		}
		char which[256];
		nft_elems_describe(elems + off, end - off, which, sizeof(which));
		int err = nft_put_elems(b, type, type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0, s,
					which);
		nftnl_set_free(s);
		if (err)
			return err;
	}
	return 0;
}

/* Keys are in network order: the rules convert the numgen value before the lookup, and the
 * kernel orders intervals by their bytes. */
int nft_emit_ranges(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type, uint32_t shard,
		    const struct nft_r_range *const *v, size_t n, bool starts_only)
{
	char name[NFT_OBJ_NAME_MAX];
	nft_name_shard(name, shard);
	size_t per_msg = starts_only ? NFT_ELEMS_PER_MSG : NFT_ELEMS_PER_MSG / 2;
	for (size_t off = 0; off < n; off += per_msg) {
		struct nftnl_set *s = nft_set_new(cfg, name);
		if (!s)
			return -ENOMEM;
		size_t end = off + per_msg < n ? off + per_msg : n;
		for (size_t i = off; i < end; i++) {
			uint32_t lo = htonl(v[i]->lo), hi = htonl(v[i]->hi + 1);
			struct nftnl_set_elem *e = nft_elem_add(s);
			if (!e) {
				nftnl_set_free(s);
				return -ENOMEM;
			}
			nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &lo, 4);
			if (type == NFT_MSG_NEWSETELEM) {
				uint8_t data[8] = { 0 };
				uint16_t port = htons(v[i]->port);
				memcpy(data, &v[i]->addr.s_addr, 4);
				memcpy(data + 4, &port, 2);
				nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, data, 8);
			}
			if (starts_only)
				continue;
			if (!(e = nft_elem_add(s))) {
				nftnl_set_free(s);
				return -ENOMEM;
			}
			nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &hi, 4);
			nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
		}
		char which[128], a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &v[off]->addr, a, sizeof(a));
		snprintf(which, sizeof(which), "{%u-%u : %s . %u%s}", v[off]->lo, v[off]->hi, a,
			 v[off]->port, end - off > 1 ? ", ..." : "");
		int err = nft_put_elems(b, type, type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0, s,
					which);
		nftnl_set_free(s);
		if (err)
			return err;
	}
	return 0;
}

int nft_emit_hairpin(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type,
		     const struct in_addr *addrs, size_t n)
{
	for (size_t off = 0; off < n; off += NFT_ELEMS_PER_MSG) {
		struct nftnl_set *s = nft_set_new(cfg, NFT_HAIRPIN_SET);
		if (!s)
			return -ENOMEM;
		size_t end = off + NFT_ELEMS_PER_MSG < n ? off + NFT_ELEMS_PER_MSG : n;
		for (size_t i = off; i < end; i++) {
			uint32_t key[2] = { addrs[i].s_addr, addrs[i].s_addr };
			struct nftnl_set_elem *e = nft_elem_add(s);
			if (!e) {
				nftnl_set_free(s);
				return -ENOMEM;
			}
			nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, 8);
		}
		char which[64], a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &addrs[off], a, sizeof(a));
		snprintf(which, sizeof(which), "{%s . %s%s}", a, a, end - off > 1 ? ", ..." : "");
		int err = nft_put_elems(b, type, type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0, s,
					which);
		nftnl_set_free(s);
		if (err)
			return err;
	}
	return 0;
}

/* meta l4proto P dnat ip to numgen random mod 65536 offset B*65536 map @endpoints-S */
static int nft_rule_block_dnat(const struct nft_rcfg *cfg, struct nft_batch *b, const char *chain,
			       const struct nft_service *s, uint32_t block)
{
	char shard[NFT_OBJ_NAME_MAX];
	nft_name_shard(shard, nft_block_shard(block));
	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (!r)
		return -ENOMEM;
	nft_x_l4proto(r, s->protocol);
	nft_x_numgen(r, NFT_REG_1, NFT_BLOCK_SLOTS, block * NFT_BLOCK_SLOTS);
	nft_x_hton32(r, NFT_REG_1);
	nft_x_lookup(r, NFT_REG_1, NFT_REG_1, shard, 0);
	nft_x_dnat(r, NFT_REG_1, NFT_REG32_01);
	return nft_rule_send(b, r);
}

/* ip saddr . A . P into NFT_REG32_00..02, the affinity set's key */
static void nft_x_affinity_key(struct nftnl_rule *r, const struct nft_endpoint *ep)
{
	uint16_t port = htons(ep->port);
	nft_x_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 12, 4, NFT_REG32_00);
	nft_x_imm_data(r, NFT_REG32_01, &ep->addr.s_addr, 4);
	nft_x_imm_data(r, NFT_REG32_02, &port, 2);
}

/* [numgen random mod M 0] [ip saddr . A . P @affinity] update @affinity { ip saddr . A . P
 * timeout T } meta l4proto P dnat ip to A:P */
static int nft_rule_affinity_dnat(const struct nft_rcfg *cfg, struct nft_batch *b,
				  const char *chain, const struct nft_service *s,
				  const struct nft_endpoint *ep, bool known, uint32_t one_in)
{
	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (!r)
		return -ENOMEM;
	if (one_in > 1) {
		uint32_t zero = 0;
		nft_x_numgen(r, NFT_REG_1, one_in, 0);
		nft_x_cmp(r, NFT_REG_1, NFT_CMP_EQ, &zero, 4);
	}
	nft_x_nfproto_ipv4(r);
	if (known) {
		nft_x_affinity_key(r, ep);
		nft_x_lookup(r, NFT_REG32_00, NFT_NO_DREG, NFT_AFFINITY_SET, 0);
	}
	nft_x_affinity_key(r, ep);
	nft_x_dynset_update(r, NFT_REG32_00, NFT_AFFINITY_SET,
			    (uint64_t)s->affinity_timeout * 1000u);
	uint16_t port = htons(ep->port);
	nft_x_l4proto(r, s->protocol);
	nft_x_imm_data(r, NFT_REG_1, &ep->addr.s_addr, 4);
	nft_x_imm_data(r, NFT_REG_2, &port, 2);
	nft_x_dnat(r, NFT_REG_1, NFT_REG_2);
	return nft_rule_send(b, r);
}

/*
 * The rules that choose an endpoint: the block's map; with session affinity, before it, one
 * rule per endpoint for the clients it already has and one per endpoint for new clients (the
 * k-th of n taken with probability 1/(n-k), so that each is chosen with probability 1/n).
 * The block's rule then serves only clients the affinity set has no room for.
 */
static int nft_rules_select(const struct nft_rcfg *cfg, struct nft_batch *b, const char *chain,
			    const struct nft_service *s, uint32_t block, bool local)
{
	if (nft_service_affinity(s)) {
		size_t *order;
		int n = nft_used_endpoints(s, local, &order), err = 0;
		if (n < 0)
			return n;
		for (int k = 0; k < n && !err; k++)
			err = nft_rule_affinity_dnat(cfg, b, chain, s, &s->endpoints[order[k]],
						     true, 0);
		for (int k = 0; k < n && !err; k++)
			err = nft_rule_affinity_dnat(cfg, b, chain, s, &s->endpoints[order[k]],
						     false, (uint32_t)(n - k));
		free(order);
		if (err)
			return err;
	}
	return nft_rule_block_dnat(cfg, b, chain, s, block);
}

/* meta mark set meta mark | M: masqueraded in nat-postrouting (written inline: a jump to
 * mark-for-masquerade would add a chain to the kernel's validation walk per service) */
static void nft_x_mark_masq(const struct nft_rcfg *cfg, struct nftnl_rule *r)
{
	uint32_t m = cfg->masq_mark, nm = ~cfg->masq_mark;
	nft_x_meta(r, NFT_META_MARK, NFT_REG_1);
	nft_x_bitwise(r, NFT_REG_1, NFT_REG_1, 4, &nm, &m);
	nft_x_meta_set(r, NFT_META_MARK, NFT_REG_1);
}

/*
 * ClusterIP traffic not from a pod is masqueraded: with one pod CIDR, inline
 * `ip saddr != CIDR meta mark set meta mark | M` (a jump would make the kernel's validation
 * of the table visit two more chains per service), with several `jump mark-from-outside`.
 */
static int nft_rule_mark_from_outside(const struct nft_rcfg *cfg, struct nft_batch *b,
				      const char *chain)
{
	if (cfg->n_pod_cidrs != 1)
		return cfg->n_pod_cidrs ? nft_rule_verdict(cfg, b, chain, NFT_JUMP,
							   "mark-from-outside")
					: 0;
	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (!r)
		return -ENOMEM;
	nft_x_nfproto_ipv4(r);
	nft_x_match_cidr(r, 12, &cfg->pod_cidrs[0], true);
	nft_x_mark_masq(cfg, r);
	return nft_rule_send(b, r);
}

int nft_emit_chain_rules(const struct nft_rcfg *cfg, struct nft_batch *b,
			 const struct nft_service *s, const struct nft_blocks *blk,
			 const struct nft_r_chain *c)
{
	int err = 0;
	char svc[NFT_OBJ_NAME_MAX];

	nft_name_svc(svc, s->name);
	switch (c->kind) {
	case NFT_CH_FW:
		for (size_t i = 0; i < s->n_source_ranges && !err; i++)
			err = nft_rule_cidr_verdict(cfg, b, c->name, 12, &s->source_ranges[i],
						    NFT_RETURN, NULL);
		if (!err)
			err = nft_rule_verdict(cfg, b, c->name, NF_DROP, NULL);
		return err;
	case NFT_CH_EXT:
		if (!nft_service_ext_local(s)) {
			struct nftnl_rule *r = nft_rule_new(cfg, c->name);
			if (r)
				nft_x_mark_masq(cfg, r);
			if ((err = nft_rule_send(b, r)))
				return err;
			return nft_rule_verdict(cfg, b, c->name, NFT_GOTO, svc);
		}
		/* externalTrafficPolicy=Local: pods and the node itself use every endpoint (the
		 * node masqueraded), others only this node's, with their source kept */
		for (size_t i = 0; i < cfg->n_pod_cidrs && !err; i++)
			err = nft_rule_cidr_verdict(cfg, b, c->name, 12, &cfg->pod_cidrs[i],
						    NFT_GOTO, svc);
		if (err ||
		    (err = nft_rule_from_node(cfg, b, c->name, 0, NULL)) ||
		    (err = nft_rule_from_node(cfg, b, c->name, NFT_GOTO, svc)) ||
		    (err = nft_rules_select(cfg, b, c->name, s, blk->local, true)))
			return err;
		return nft_rule_verdict(cfg, b, c->name, NF_DROP, NULL);
	case NFT_CH_SVC:
		if ((err = nft_rule_mark_from_outside(cfg, b, c->name)) ||
		    (err = nft_rules_select(cfg, b, c->name, s, blk->cluster, false)))
			return err;
		/* reached when no endpoint was chosen */
		struct nftnl_rule *r = nft_rule_new(cfg, c->name);
		if (r)
			nft_x_reject(r);
		return nft_rule_send(b, r);
	}
	return -EINVAL;
}
