/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal interface shared by the nft_*.c files: the netlink batch (nft_batch.c), the rule
 * and object rendering (nft_rules.c) and the read-back (nft_dump.c). Not for other modules.
 */
#ifndef SHOAL_NFT_INT_H
#define SHOAL_NFT_INT_H

#include "nft.h" /* first: <netinet/in.h> before the kernel's <linux/in.h> */

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <stdarg.h>

#define NFT_OBJ_NAME_MAX 160
#define NFT_ERR_MAX	 512

/* The shared maps and sets keyed by a service frontend, indexed by enum nft_map. */
enum nft_map {
	NFT_MAP_SERVICE_IPS,	   /* verdict map: goto svc-NAME or ext-NAME */
	NFT_MAP_SERVICE_NODEPORTS, /* verdict map: goto ext-NAME */
	NFT_MAP_NOEP_SERVICES,	   /* set: rejected */
	NFT_MAP_NOEP_NODEPORTS,	   /* set: rejected */
	NFT_MAP_FIREWALL_IPS,	   /* verdict map: goto fw-NAME */
	NFT_MAP__COUNT
};
extern const char *const nft_map_names[NFT_MAP__COUNT];
/* Key length of each map: 12 (addr . proto . port) or 8 (proto . port). */
uint32_t nft_map_keylen(enum nft_map m);
bool nft_map_is_vmap(enum nft_map m);

/* Endpoint blocks: numgen random mod NFT_BLOCK_SLOTS offset block * NFT_BLOCK_SLOTS picks a
 * value, and the endpoint maps give the endpoint whose interval holds it. The last block is
 * never used, so that every interval's end fits in 32 bits. */
#define NFT_BLOCK_SLOTS 65536u
#define NFT_BLOCKS	65535u
#define NFT_SHARDS	256u
#define NFT_SHARD_PREFIX "endpoints-"
#define NFT_HAIRPIN_SET	 "hairpin"
/* ClientIP session affinity: ip saddr . endpoint address . endpoint port, with timeouts. */
#define NFT_AFFINITY_SET     "affinity"
#define NFT_AFFINITY_CLIENTS (1u << 20)
static inline uint32_t nft_block_shard(uint32_t block)
{
	return block % NFT_SHARDS;
}
void nft_name_shard(char *buf, uint32_t shard);

/* A netlink socket with a grow-as-needed batch buffer. */
struct nft_batch {
	struct mnl_socket *nl;
	uint32_t portid;
	char *buf;
	size_t len, cap, msg_start;
	char *rbuf;	    /* ACK buffers */
	uint32_t seq0, seq; /* seq0: the batch-begin message */
	uint32_t n_msgs;
	/* Per message (index seq - seq0 - 1): offset of its description in `names`. */
	uint32_t *desc;
	size_t desc_cap;
	char *names;
	size_t names_len, names_cap;
	uint32_t next_set_id;
	bool oom;
	/* Results of the last send. */
	uint32_t acks;
	size_t sent_bytes;
	char err[NFT_ERR_MAX];
};

int nft_batch_init(struct nft_batch *b);
void nft_batch_fini(struct nft_batch *b);
/* Starts a new batch (drops anything queued). */
void nft_batch_reset(struct nft_batch *b);
/* Makes room for about `bytes` more at once (a large batch then grows without copies). */
void nft_batch_hint(struct nft_batch *b, size_t bytes);
/* Appends one message header (family inet); the payload is written by a libnftnl builder
 * into the returned header, then nft_batch_done() records its length. `what` describes the
 * object for error reports ("add chain svc-x"). Returns NULL when out of memory. */
struct nlmsghdr *nft_batch_msg(struct nft_batch *b, uint16_t type, uint16_t flags, const char *fmt,
			       ...) __attribute__((format(printf, 4, 5)));
void nft_batch_done(struct nft_batch *b, struct nlmsghdr *nlh);
/* Sends the batch (begin ... end) and reads every ACK. On a kernel error returns it and
 * leaves a message naming the object in b->err. An empty batch sends nothing. */
int nft_batch_send(struct nft_batch *b);
uint32_t nft_batch_set_id(struct nft_batch *b);

/* Convenience emitters over nft_batch_msg. */
int nft_put_table(struct nft_batch *b, uint16_t type, uint16_t flags, struct nftnl_table *t);
int nft_put_chain(struct nft_batch *b, uint16_t type, uint16_t flags, struct nftnl_chain *c);
int nft_put_rule(struct nft_batch *b, uint16_t type, uint16_t flags, struct nftnl_rule *r);
int nft_put_set(struct nft_batch *b, uint16_t type, uint16_t flags, struct nftnl_set *s);
/* All elements of s in one message (callers keep it under NFT_ELEMS_PER_MSG). */
#define NFT_ELEMS_PER_MSG 128
/* `which` (may be NULL) names the elements in error reports. */
int nft_put_elems(struct nft_batch *b, uint16_t type, uint16_t flags, struct nftnl_set *s,
		  const char *which);

/* Expression helpers (nft_expr.c): each appends one expression to r. */
void nft_x_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len, uint32_t dreg);
void nft_x_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg);
void nft_x_meta_set(struct nftnl_rule *r, uint32_t key, uint32_t sreg);
void nft_x_cmp(struct nftnl_rule *r, uint32_t sreg, uint32_t op, const void *data, uint32_t len);
void nft_x_bitwise(struct nftnl_rule *r, uint32_t sreg, uint32_t dreg, uint32_t len,
		   const void *mask, const void * xor);
void nft_x_imm_data(struct nftnl_rule *r, uint32_t dreg, const void *data, uint32_t len);
void nft_x_verdict(struct nftnl_rule *r, int verdict, const char *chain);
/* dreg NFT_NO_DREG: a set membership test rather than a map lookup. */
#define NFT_NO_DREG 0xffffffffu
void nft_x_lookup(struct nftnl_rule *r, uint32_t sreg, uint32_t dreg, const char *set,
		  uint32_t set_id);
void nft_x_numgen(struct nftnl_rule *r, uint32_t dreg, uint32_t modulus, uint32_t offset);
/* 4-byte host to network order in place (a numgen value before an interval lookup). */
void nft_x_hton32(struct nftnl_rule *r, uint32_t reg);
void nft_x_dnat(struct nftnl_rule *r, uint32_t reg_addr, uint32_t reg_port);
void nft_x_masq(struct nftnl_rule *r, uint32_t flags);
void nft_x_reject(struct nftnl_rule *r);
void nft_x_fib_daddr_type(struct nftnl_rule *r, uint32_t dreg);
void nft_x_fib_saddr_type(struct nftnl_rule *r, uint32_t dreg);
void nft_x_ct_state(struct nftnl_rule *r, uint32_t dreg);
void nft_x_ct_status(struct nftnl_rule *r, uint32_t dreg);
void nft_x_dynset_update(struct nftnl_rule *r, uint32_t sreg, const char *set, uint64_t timeout_ms);
/* Sets the rule's comment (NFTNL_UDATA_RULE_COMMENT). */
void nft_rule_comment(struct nftnl_rule *r, const char *comment);
void nft_elem_comment(struct nftnl_set_elem *e, const char *comment);
/* "ip saddr|daddr in cidr" test on the IPv4 header field at `off` (12 or 16). */
void nft_x_match_cidr(struct nftnl_rule *r, uint32_t off, const struct nft_cidr *c, bool neq);

/*
 * Rendering (nft_rules.c): the objects a service needs, named so that two renderings can be
 * compared and only their difference sent.
 */
enum nft_chain_kind { NFT_CH_SVC, NFT_CH_EXT, NFT_CH_FW };

/* An element of a shared map or set (chain "" for a set). */
struct nft_r_elem {
	uint8_t map;
	uint8_t keylen;
	uint8_t key[12];
	char chain[NFT_OBJ_NAME_MAX]; /* goto target */
	char comment[NFT_SVC_NAME_MAX + 16];
};
struct nft_r_chain {
	uint8_t kind;
	uint32_t n_rules;
	uint64_t sig; /* content signature: equal signatures mean equal rules */
	char name[NFT_OBJ_NAME_MAX];
};
/* One endpoint's interval [lo, hi] of a block, in the block's endpoint map. */
struct nft_r_range {
	uint32_t block;
	uint32_t lo, hi;
	struct in_addr addr;
	uint16_t port; /* host order */
};
struct nft_render {
	struct nft_r_elem *elems;
	size_t n_elems, cap_elems;
	struct nft_r_chain *chains;
	size_t n_chains, cap_chains;
	struct nft_r_range *ranges; /* by block, then by interval */
	size_t n_ranges, cap_ranges;
	bool affinity;	       /* its rules use the affinity set */
	struct in_addr *addrs; /* distinct endpoint addresses (the hairpin set's) */
	size_t n_addrs, cap_addrs;
};

struct nft_rcfg {
	const char *table;
	struct nft_cidr *pod_cidrs;
	size_t n_pod_cidrs;
	bool proxy, nodeports;
	uint32_t masq_mark;
};

/* Which endpoint blocks a service's rendering needs: one for all its endpoints (its service
 * chain chooses from it; with session affinity, for clients the affinity set has no room
 * for) and one for the node's own (externalTrafficPolicy=Local on a NodePort or external IP
 * the engine programs). */
void nft_blocks_needed(const struct nft_rcfg *cfg, const struct nft_service *s, bool *cluster,
		       bool *local);
int nft_render_service(const struct nft_rcfg *cfg, const struct nft_service *s,
		       const struct nft_blocks *blk, struct nft_render *out);
void nft_render_free(struct nft_render *r);
/* The skeleton's chains (plain and base), named sets, and number of rules for this
 * configuration. */
#define NFT_SKELETON_CHAINS 15
#define NFT_SKELETON_SETS   (NFT_MAP__COUNT + 1)
size_t nft_skeleton_rules(const struct nft_rcfg *cfg);
/* Emits the skeleton: table (with comment `sig`), base chains, shared chains, maps and sets. */
int nft_emit_skeleton(const struct nft_rcfg *cfg, struct nft_batch *b, const char *sig);
/* Emits one chain's rules (the chain and the sets its rules name must exist or be created
 * earlier in the batch). */
int nft_emit_chain_rules(const struct nft_rcfg *cfg, struct nft_batch *b,
			 const struct nft_service *s, const struct nft_blocks *blk,
			 const struct nft_r_chain *c);
int nft_emit_chain(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type,
		   const char *name);
/* Adds or deletes a named set made on demand: an endpoint map, the affinity set. */
int nft_emit_shard(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type, uint32_t shard);
int nft_emit_affinity_set(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type);
/* Adds (type NFT_MSG_NEWSETELEM) or deletes elements; all of them for one map per call. */
int nft_emit_elems(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type, enum nft_map map,
		   const struct nft_r_elem *const *elems, size_t n);
/* Adds or deletes intervals of one endpoint map: with `starts_only`, only the start elements
 * (a same-sized interval changes its endpoint); otherwise start and end elements. */
int nft_emit_ranges(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type, uint32_t shard,
		    const struct nft_r_range *const *v, size_t n, bool starts_only);
int nft_emit_hairpin(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type,
		     const struct in_addr *addrs, size_t n);
/* The configuration signature kept as the table's comment. */
void nft_cfg_signature(const struct nft_rcfg *cfg, char *buf, size_t len);

/* nft_dump; without `full`, no rule texts, no element objects (only each set's count) and
 * nothing of the affinity set's elements: adoption needs none of them. */
int nft_dump_ex(const char *table, bool full, struct nft_state **out);

/* Object names. */
void nft_name_svc(char *buf, const char *svc);
void nft_name_ext(char *buf, const char *svc);
void nft_name_fw(char *buf, const char *svc);

/* Key encodings. */
void nft_key_ip(uint8_t key[12], struct in_addr ip, uint8_t proto, uint16_t port);
void nft_key_port(uint8_t key[8], uint8_t proto, uint16_t port);

/* The endpoints a frontend uses, as indexes in canonical order (address, then port), so that
 * the same endpoints in any order make the same rules: the ready ones (with `local`, the ready
 * ones on this node), or when there are none, the serving and terminating ones. Returns the
 * count (and *out, malloc'd, NULL when none) or -ENOMEM. */
int nft_used_endpoints(const struct nft_service *s, bool local, size_t **out);
/* The interval [lo, hi] of endpoint k of n in a block. */
void nft_block_interval(uint32_t block, uint32_t k, uint32_t n, uint32_t *lo, uint32_t *hi);
/* The service's session affinity timeout as its rules show it: 0 while it has no endpoint to
 * stick to (the kernel then holds nothing that says it). */
uint32_t nft_service_affinity(const struct nft_service *s);
/* The service's externalTrafficPolicy=Local matters (it has a NodePort or an external IP). */
bool nft_service_ext_local(const struct nft_service *s);

int nft_service_validate(const struct nft_service *s, char *err, size_t errlen);

#endif
