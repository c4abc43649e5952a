// SPDX-License-Identifier: Apache-2.0
/*
 * What the `inet shoal` table holds, and how each piece is written: the skeleton (base chains,
 * shared chains, the five shared verdict maps) and, per service, a rendering into named
 * objects (map elements, chains with a content signature, affinity sets).
 *
 * The design choice: a service is rendered into objects whose names derive from the service
 * (svc-NAME, ext-NAME, fw-NAME, ep-NAME__ADDR/PORT) and whose content is summarised by a
 * signature, so that comparing two renderings says exactly which elements to delete or add
 * and which chains to create, rewrite or delete. Shared map elements carry the service's
 * name as their comment, which is how nft_dump attributes them back. Everything per service
 * is a chain or a map element; the only per-service set is its endpoint map, named short
 * because the kernel looks sets up by name linearly.
 */
#include "nft_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libnftnl/udata.h>
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

/* nft(8)'s datatype numbers, for readable listings: ipv4_addr 7, inet_proto 12,
 * inet_service 13; a concatenation packs them 6 bits apart. */
#define NFT_TYPE_IPV4	 7u
#define NFT_TYPE_PROTO	 12u
#define NFT_TYPE_SERVICE 13u
#define NFT_TYPE_INTEGER 4u
#define NFT_TYPE_BITS	 6u

uint32_t nft_map_keylen(enum nft_map m)
{
	return (m == NFT_MAP_SERVICE_NODEPORTS || m == NFT_MAP_NOEP_NODEPORTS) ? 8 : 12;
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
void nft_name_ep(char *buf, const char *svc, const struct nft_endpoint *ep)
{
	char a[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &ep->addr, a, sizeof(a));
	snprintf(buf, NFT_OBJ_NAME_MAX, "ep-%s__%s/%u", svc, a, ep->port);
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

int nft_ready_order(const struct nft_service *s, size_t **out)
{
	size_t n = 0;
	*out = NULL;
	for (size_t i = 0; i < s->n_endpoints; i++)
		n += s->endpoints[i].ready;
	if (!n)
		return 0;
	size_t *v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < s->n_endpoints; i++)
		if (s->endpoints[i].ready)
			v[n++] = i;
	qsort_r(v, n, sizeof(*v), nft_ep_cmp, s->endpoints);
	*out = v;
	return (int)n;
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
	if (svc[0])
		snprintf(e->comment, sizeof(e->comment), "%s %s", svc, what);
	return 0;
}

static struct nft_r_chain *nft_r_add_chain(struct nft_render *r, uint8_t kind, int ep)
{
	if (!NFT_GROW(r->chains, r->n_chains, r->cap_chains))
		return NULL;
	struct nft_r_chain *c = &r->chains[r->n_chains++];
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->ep = ep;
	return c;
}

void nft_render_free(struct nft_render *r)
{
	if (!r)
		return;
	free(r->elems);
	free(r->chains);
	memset(r, 0, sizeof(*r));
}

int nft_render_service(const struct nft_rcfg *cfg, const struct nft_service *s, uint32_t id,
		       struct nft_render *out)
{
	char svc[NFT_OBJ_NAME_MAX], ext[NFT_OBJ_NAME_MAX], fw[NFT_OBJ_NAME_MAX];
	uint8_t key[12];
	size_t n_ready = 0;
	int err;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < s->n_endpoints; i++)
		n_ready += s->endpoints[i].ready;
	nft_name_svc(svc, s->name);
	nft_name_ext(ext, s->name);
	nft_name_fw(fw, s->name);

	bool to_svc = false, to_ext = false;
	if (s->cluster_ip.s_addr) {
		nft_key_ip(key, s->cluster_ip, s->protocol, s->port);
		if (n_ready && cfg->proxy) {
			err = nft_r_add_elem(out, NFT_MAP_SERVICE_IPS, key, svc, s->name,
					     "cluster-ip");
			to_svc = true;
		} else if (!n_ready) {
			err = nft_r_add_elem(out, NFT_MAP_NOEP_SERVICES, key, "reject-chain",
					     s->name, "cluster-ip");
		} else {
			err = 0;
		}
		if (err)
			goto fail;
	}
	for (size_t i = 0; i < s->n_external_ips; i++) {
		nft_key_ip(key, s->external_ips[i], s->protocol, s->port);
		err = 0;
		if (n_ready && cfg->proxy) {
			err = nft_r_add_elem(out, NFT_MAP_SERVICE_IPS, key, ext, s->name,
					     "external-ip");
			to_ext = true;
		} else if (!n_ready) {
			err = nft_r_add_elem(out, NFT_MAP_NOEP_SERVICES, key, "reject-chain",
					     s->name, "external-ip");
		}
		if (!err && s->n_source_ranges)
			err = nft_r_add_elem(out, NFT_MAP_FIREWALL_IPS, key, fw, s->name,
					     "external-ip");
		if (err)
			goto fail;
	}
	if (s->node_port) {
		nft_key_port(key, s->protocol, s->node_port);
		err = 0;
		if (n_ready && cfg->nodeports) {
			err = nft_r_add_elem(out, NFT_MAP_SERVICE_NODEPORTS, key, ext, s->name,
					     "node-port");
			to_ext = true;
		} else if (!n_ready) {
			err = nft_r_add_elem(out, NFT_MAP_NOEP_NODEPORTS, key, "reject-chain",
					     s->name, "node-port");
		}
		if (err)
			goto fail;
	}

	err = -ENOMEM;
	if (s->n_source_ranges && s->n_external_ips) {
		struct nft_r_chain *c = nft_r_add_chain(out, NFT_CH_FW, -1);
		if (!c)
			goto fail;
		snprintf(c->name, sizeof(c->name), "%s", fw);
		c->sig = nft_fnv(NFT_FNV0, "fw", 2);
		for (size_t i = 0; i < s->n_source_ranges; i++)
			c->sig = nft_fnv(c->sig, &s->source_ranges[i], sizeof(s->source_ranges[i]));
		c->n_rules = (uint32_t)s->n_source_ranges + 1;
	}
	if (!to_svc && !to_ext)
		return 0;
	if (to_ext) {
		struct nft_r_chain *c = nft_r_add_chain(out, NFT_CH_EXT, -1);
		if (!c)
			goto fail;
		snprintf(c->name, sizeof(c->name), "%s", ext);
		c->sig = nft_fnv(NFT_FNV0, "ext", 3);
		c->n_rules = 2;
	}
	/* Endpoint chains come before the service chain that jumps to them. */
	struct nft_r_chain *sc_tmp = NULL;
	uint64_t ssig = nft_fnv(NFT_FNV0, "svc", 3);
	ssig = nft_fnv(ssig, &s->affinity_timeout, sizeof(s->affinity_timeout));
	if (s->affinity_timeout) /* the id is in the affinity keys only */
		ssig = nft_fnv(ssig, &id, sizeof(id));
	size_t *order;
	int n_order = nft_ready_order(s, &order);
	if (n_order < 0)
		goto fail;
	for (int o = 0; o < n_order; o++) {
		size_t i = order[o];
		const struct nft_endpoint *ep = &s->endpoints[i];
		struct nft_r_chain *c = nft_r_add_chain(out, NFT_CH_EP, (int)i);
		if (!c) {
			free(order);
			goto fail;
		}
		nft_name_ep(c->name, s->name, ep);
		c->sig = nft_fnv(NFT_FNV0, "ep", 2);
		c->sig = nft_fnv(c->sig, &s->protocol, 1);
		c->sig = nft_fnv(c->sig, &s->affinity_timeout, sizeof(s->affinity_timeout));
		if (s->affinity_timeout)
			c->sig = nft_fnv(c->sig, &id, sizeof(id));
		c->n_rules = s->affinity_timeout ? 3 : 2;
		ssig = nft_fnv(ssig, c->name, strlen(c->name) + 1);
	}
	free(order);
	sc_tmp = nft_r_add_chain(out, NFT_CH_SVC, -1);
	if (!sc_tmp)
		goto fail;
	snprintf(sc_tmp->name, sizeof(sc_tmp->name), "%s", svc);
	sc_tmp->sig = ssig;
	sc_tmp->n_rules = 2 + (s->affinity_timeout ? (uint32_t)n_ready : 0);
	return 0;
fail:
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

/* ip daddr . meta l4proto . th dport vmap @map */
static int nft_rule_vmap_ip(const struct nft_rcfg *cfg, struct nft_batch *b, const char *chain,
			    const char *map)
{
	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (!r)
		return -ENOMEM;
	nft_x_nfproto_ipv4(r);
	nft_x_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4, NFT_REG32_00);
	nft_x_meta(r, NFT_META_L4PROTO, NFT_REG32_01);
	nft_x_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_02);
	nft_x_lookup(r, NFT_REG32_00, NFT_REG_VERDICT, map, 0);
	return nft_rule_send(b, r);
}

/* fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @map */
static int nft_rule_vmap_local_port(const struct nft_rcfg *cfg, struct nft_batch *b,
				    const char *chain, const char *map)
{
	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (!r)
		return -ENOMEM;
	uint32_t local = RTN_LOCAL;
	struct nft_cidr lo = { .addr.s_addr = htonl(0x7f000000), .prefix = 8 };
	nft_x_nfproto_ipv4(r);
	nft_x_fib_daddr_type(r, NFT_REG_1);
	nft_x_cmp(r, NFT_REG_1, NFT_CMP_EQ, &local, 4);
	nft_x_match_cidr(r, 16, &lo, true);
	nft_x_meta(r, NFT_META_L4PROTO, NFT_REG32_00);
	nft_x_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_01);
	nft_x_lookup(r, NFT_REG32_00, NFT_REG_VERDICT, map, 0);
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

int nft_emit_chain(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type, const char *name)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	if (!c)
		return -ENOMEM;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, cfg->table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	int err;
	if (type == NFT_MSG_DELRULE) {
		/* flush: a rule deletion naming only the chain */
		struct nftnl_rule *r = nft_rule_new(cfg, name);
		nftnl_chain_free(c);
		if (!r)
			return -ENOMEM;
		err = nft_put_rule(b, NFT_MSG_DELRULE, 0, r);
		nftnl_rule_free(r);
		return err;
	}
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

static int nft_emit_map(const struct nft_rcfg *cfg, struct nft_batch *b, enum nft_map m)
{
	struct nftnl_set *s = nftnl_set_alloc();
	if (!s)
		return -ENOMEM;
	bool ip = nft_map_keylen(m) == 12;
	uint32_t ktype =
		ip ? (((NFT_TYPE_IPV4 << NFT_TYPE_BITS) | NFT_TYPE_PROTO) << NFT_TYPE_BITS) |
				NFT_TYPE_SERVICE
		   : (NFT_TYPE_PROTO << NFT_TYPE_BITS) | NFT_TYPE_SERVICE;

	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, cfg->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, nft_map_names[m]);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, ktype);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, nft_map_keylen(m));
	nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
	nftnl_set_set_u32(s, NFTNL_SET_ID, nft_batch_set_id(b));
	int err = nft_put_set(b, NFT_MSG_NEWSET, NLM_F_CREATE, s);
	nftnl_set_free(s);
	return err;
}

/* ip saddr . service id . endpoint address . endpoint port, with per-element timeouts */
static int nft_emit_affinity_set(const struct nft_rcfg *cfg, struct nft_batch *b)
{
	struct nftnl_set *s = nftnl_set_alloc();
	if (!s)
		return -ENOMEM;
	uint32_t ktype =
		(((((NFT_TYPE_IPV4 << NFT_TYPE_BITS) | NFT_TYPE_INTEGER) << NFT_TYPE_BITS) |
		  NFT_TYPE_IPV4)
		 << NFT_TYPE_BITS) |
		NFT_TYPE_SERVICE;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, cfg->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, NFT_AFFINITY_SET);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT | NFT_SET_EVAL);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, ktype);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, 16);
	nftnl_set_set_u32(s, NFTNL_SET_DESC_SIZE, 1u << 20);
	nftnl_set_set_u32(s, NFTNL_SET_ID, nft_batch_set_id(b));
	int err = nft_put_set(b, NFT_MSG_NEWSET, NLM_F_CREATE, s);
	nftnl_set_free(s);
	return err;
}

void nft_cfg_signature(const struct nft_rcfg *cfg, char *buf, size_t len)
{
	size_t o = (size_t)snprintf(buf, len,
				    "shoal/2 mark=0x%x proxy=%d nodeports=%d pods=", cfg->masq_mark,
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
	/* services 2, the three checks 3, reject 1, mark 1, masquerading 2, mark-from-outside,
	 * pod-egress, nat chains 3 + one per pod CIDR, filter chains 6 */
	return 2 + 3 + 1 + 1 + 2 + (np ? np + 1 : 0) + (np + 1) + 3 + np + 6;
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
	if ((err = nft_emit_affinity_set(cfg, b)))
		return err;

	static const char *const plain[] = {
		"services",
		"service-endpoints-check",
		"nodeport-endpoints-check",
		"firewall-check",
		"reject-chain",
		"mark-for-masquerade",
		"masquerading",
		"mark-from-outside",
		"pod-egress",
	};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if ((err = nft_emit_chain(cfg, b, NFT_MSG_NEWCHAIN, plain[i])))
			return err;

	/* services: ClusterIPs and external IPs, then NodePorts on local addresses */
	if ((err = nft_rule_vmap_ip(cfg, b, "services", "service-ips")) ||
	    (err = nft_rule_vmap_local_port(cfg, b, "services", "service-nodeports")) ||
	    (err = nft_rule_vmap_ip(cfg, b, "service-endpoints-check", "no-endpoint-services")) ||
	    (err = nft_rule_vmap_local_port(cfg, b, "nodeport-endpoints-check",
					    "no-endpoint-nodeports")) ||
	    (err = nft_rule_vmap_ip(cfg, b, "firewall-check", "firewall-ips")))
		return err;

	struct nftnl_rule *r = nft_rule_new(cfg, "reject-chain");
	if (r)
		nft_x_reject(r);
	if ((err = nft_rule_send(b, r)))
		return err;

	/* mark-for-masquerade: meta mark set meta mark | M */
	uint32_t m = cfg->masq_mark, nm = ~cfg->masq_mark, zero = 0, ones = ~0u;
	r = nft_rule_new(cfg, "mark-for-masquerade");
	if (r) {
		nft_x_meta(r, NFT_META_MARK, NFT_REG_1);
		nft_x_bitwise(r, NFT_REG_1, NFT_REG_1, 4, &nm, &m);
		nft_x_meta_set(r, NFT_META_MARK, NFT_REG_1);
	}
	if ((err = nft_rule_send(b, r)))
		return err;

	/* masquerading: meta mark & M == 0 return; meta mark set meta mark ^ M; masquerade */
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

int nft_emit_elems(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type, enum nft_map map,
		   const struct nft_r_elem *const *elems, size_t n)
{
	for (size_t off = 0; off < n; off += NFT_ELEMS_PER_MSG) {
		struct nftnl_set *s = nftnl_set_alloc();
		if (!s)
			return -ENOMEM;
		nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
		nftnl_set_set_str(s, NFTNL_SET_TABLE, cfg->table);
		nftnl_set_set_str(s, NFTNL_SET_NAME, nft_map_names[map]);
		size_t end = off + NFT_ELEMS_PER_MSG < n ? off + NFT_ELEMS_PER_MSG : n;
		for (size_t i = off; i < end; i++) {
			struct nftnl_set_elem *e = nftnl_set_elem_alloc();
			if (!e) {
				nftnl_set_free(s);
				return -ENOMEM;
			}
			nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, elems[i]->key, elems[i]->keylen);
			if (type == NFT_MSG_NEWSETELEM) {
				nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, NFT_GOTO);
				nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, elems[i]->chain);
				if (elems[i]->comment[0])
					nft_elem_comment(e, elems[i]->comment);
			}
			nftnl_set_elem_add(s, e);
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

/*
 * numgen random mod N vmap @eID.SEQ: the service's own map of endpoint chains, a named map
 * written with the rule. Not an anonymous set: binding an anonymous set makes the kernel walk
 * the whole transaction, which is quadratic in a full sync; a new name per rewrite lets the
 * old map be deleted in the same batch; and the name is short because the kernel finds a set
 * by comparing its name with every set's of the table.
 */
static int nft_rule_numgen_vmap(const struct nft_rcfg *cfg, struct nft_batch *b, const char *chain,
				const struct nft_service *s, uint32_t id,
				char setname[NFT_VMAP_NAME_MAX])
{
	uint32_t n = 0, set_id = nft_batch_set_id(b);
	for (size_t i = 0; i < s->n_endpoints; i++)
		n += s->endpoints[i].ready;
	snprintf(setname, NFT_VMAP_NAME_MAX, "e%u.%u", id, ++b->vmap_seq);

	struct nftnl_set *set = nftnl_set_alloc();
	if (!set)
		return -ENOMEM;
	nftnl_set_set_u32(set, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(set, NFTNL_SET_TABLE, cfg->table);
	nftnl_set_set_str(set, NFTNL_SET_NAME, setname);
	nftnl_set_set_u32(set, NFTNL_SET_ID, set_id);
	nftnl_set_set_u32(set, NFTNL_SET_FLAGS, NFT_SET_MAP);
	nftnl_set_set_u32(set, NFTNL_SET_KEY_TYPE, NFT_TYPE_INTEGER);
	nftnl_set_set_u32(set, NFTNL_SET_KEY_LEN, 4);
	nftnl_set_set_u32(set, NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
	nftnl_set_set_u32(set, NFTNL_SET_DESC_SIZE, n);
	/* numgen yields a host-order integer: say so, so that nft(8) prints 0, 1, 2 */
	struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(32);
	if (ud && nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, 1 /* host */))
		nftnl_set_set_data(set, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud),
				   nftnl_udata_buf_len(ud));
	nftnl_udata_buf_free(ud);
	int err = nft_put_set(b, NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL, set);
	if (err) {
		nftnl_set_free(set);
		return err;
	}
	size_t *order;
	int n_order = nft_ready_order(s, &order);
	if (n_order < 0) {
		nftnl_set_free(set);
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < (uint32_t)n_order; k++) {
		char ep[NFT_OBJ_NAME_MAX];
		nft_name_ep(ep, s->name, &s->endpoints[order[k]]);
		struct nftnl_set_elem *e = nftnl_set_elem_alloc();
		if (!e) {
			free(order);
			nftnl_set_free(set);
			return -ENOMEM;
		}
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &k, 4);
		nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, NFT_GOTO);
		nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, ep);
		nftnl_set_elem_add(set, e);
	}
	free(order);
	err = nft_put_elems(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE, set, chain);
	nftnl_set_free(set);
	if (err)
		return err;

	struct nftnl_rule *r = nft_rule_new(cfg, chain);
	if (r) {
		nft_x_numgen(r, NFT_REG_1, n);
		nft_x_lookup(r, NFT_REG_1, NFT_REG_VERDICT, setname, 0);
	}
	return nft_rule_send(b, r);
}

/* ip saddr . ID . ADDR . PORT into NFT_REG32_00..03, the key of the affinity set */
static void nft_x_affinity_key(struct nftnl_rule *r, uint32_t id, const struct nft_endpoint *ep)
{
	uint32_t port = 0;
	uint16_t p = htons(ep->port);
	memcpy(&port, &p, 2);
	nft_x_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 12, 4, NFT_REG32_00);
	nft_x_imm_data(r, NFT_REG32_01, &id, 4);
	nft_x_imm_data(r, NFT_REG32_02, &ep->addr.s_addr, 4);
	nft_x_imm_data(r, NFT_REG32_03, &port, 4);
}

int nft_emit_del_set(const struct nft_rcfg *cfg, struct nft_batch *b, const char *name)
{
	struct nftnl_set *s = nftnl_set_alloc();
	if (!s)
		return -ENOMEM;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, cfg->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	int err = nft_put_set(b, NFT_MSG_DELSET, 0, s);
	nftnl_set_free(s);
	return err;
}

int nft_emit_chain_rules(const struct nft_rcfg *cfg, struct nft_batch *b,
			 const struct nft_service *s, uint32_t id, const struct nft_r_chain *c,
			 char vmap[NFT_VMAP_NAME_MAX])
{
	int err = 0;
	struct nftnl_rule *r;
	char name[NFT_OBJ_NAME_MAX];

	switch (c->kind) {
	case NFT_CH_FW:
		for (size_t i = 0; i < s->n_source_ranges && !err; i++)
			err = nft_rule_cidr_verdict(cfg, b, c->name, 12, &s->source_ranges[i],
						    NFT_RETURN, NULL);
		if (!err)
			err = nft_rule_verdict(cfg, b, c->name, NF_DROP, NULL);
		return err;
	case NFT_CH_EXT:
		nft_name_svc(name, s->name);
		if ((err = nft_rule_verdict(cfg, b, c->name, NFT_JUMP, "mark-for-masquerade")))
			return err;
		return nft_rule_verdict(cfg, b, c->name, NFT_GOTO, name);
	case NFT_CH_SVC:
		if ((err = nft_rule_verdict(cfg, b, c->name, NFT_JUMP, "mark-from-outside")))
			return err;
		if (s->affinity_timeout) {
			size_t *order;
			int n_order = nft_ready_order(s, &order);
			if (n_order < 0)
				return n_order;
			for (int o = 0; o < n_order && !err; o++) {
				const struct nft_endpoint *ep = &s->endpoints[order[o]];
				nft_name_ep(name, s->name, ep);
				r = nft_rule_new(cfg, c->name);
				if (r) {
					nft_x_affinity_key(r, id, ep);
					nft_x_lookup(r, NFT_REG32_00, NFT_NO_DREG, NFT_AFFINITY_SET,
						     0);
					nft_x_verdict(r, NFT_GOTO, name);
				}
				err = nft_rule_send(b, r);
			}
			free(order);
			if (err)
				return err;
		}
		return nft_rule_numgen_vmap(cfg, b, c->name, s, id, vmap);
	case NFT_CH_EP: {
		const struct nft_endpoint *ep = &s->endpoints[c->ep];
		struct nft_cidr self = { .addr = ep->addr, .prefix = 32 };
		/* hairpin: ip saddr EP meta mark set meta mark | M (inline: a jump would make
		 * the kernel walk one more chain per endpoint at every commit) */
		r = nft_rule_new(cfg, c->name);
		if (r) {
			uint32_t m = cfg->masq_mark, nm = ~cfg->masq_mark;
			nft_x_nfproto_ipv4(r);
			nft_x_match_cidr(r, 12, &self, false);
			nft_x_meta(r, NFT_META_MARK, NFT_REG_1);
			nft_x_bitwise(r, NFT_REG_1, NFT_REG_1, 4, &nm, &m);
			nft_x_meta_set(r, NFT_META_MARK, NFT_REG_1);
		}
		if ((err = nft_rule_send(b, r)))
			return err;
		if (s->affinity_timeout) {
			r = nft_rule_new(cfg, c->name);
			if (r) {
				nft_x_affinity_key(r, id, ep);
				nft_x_dynset_update(r, NFT_REG32_00, NFT_AFFINITY_SET,
						    (uint64_t)s->affinity_timeout * 1000u);
			}
			if ((err = nft_rule_send(b, r)))
				return err;
		}
		r = nft_rule_new(cfg, c->name);
		if (r) {
			uint16_t port = htons(ep->port);
			nft_x_meta(r, NFT_META_L4PROTO, NFT_REG_1);
			nft_x_cmp(r, NFT_REG_1, NFT_CMP_EQ, &s->protocol, 1);
			nft_x_imm_data(r, NFT_REG_1, &ep->addr.s_addr, 4);
			nft_x_imm_data(r, NFT_REG_2, &port, 2);
			nft_x_dnat(r, NFT_REG_1, NFT_REG_2);
		}
		return nft_rule_send(b, r);
	}
	}
	return -EINVAL;
}
