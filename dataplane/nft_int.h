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

/* Names of the shared maps, indexed by enum nft_map. */
enum nft_map {
	NFT_MAP_SERVICE_IPS,
	NFT_MAP_SERVICE_NODEPORTS,
	NFT_MAP_NOEP_SERVICES,
	NFT_MAP_NOEP_NODEPORTS,
	NFT_MAP_FIREWALL_IPS,
	NFT_MAP__COUNT
};
/* The shared dynamic set of ClientIP affinity: ip saddr . service id . ep addr . ep port. */
#define NFT_AFFINITY_SET "affinity"
extern const char *const nft_map_names[NFT_MAP__COUNT];
/* Key length of each map: 12 (addr . proto . port) or 8 (proto . port). */
uint32_t nft_map_keylen(enum nft_map m);

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
	/* Numbers the per-service endpoint maps ("eID.SEQ"), unique for the table. */
	uint32_t vmap_seq;
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
void nft_x_numgen(struct nftnl_rule *r, uint32_t dreg, uint32_t modulus);
void nft_x_dnat(struct nftnl_rule *r, uint32_t reg_addr, uint32_t reg_port);
void nft_x_masq(struct nftnl_rule *r, uint32_t flags);
void nft_x_reject(struct nftnl_rule *r);
void nft_x_fib_daddr_type(struct nftnl_rule *r, uint32_t dreg);
void nft_x_ct_state(struct nftnl_rule *r, uint32_t dreg);
void nft_x_dynset_update(struct nftnl_rule *r, uint32_t sreg, const char *set, uint64_t timeout_ms);
/* Sets the rule's comment (NFTNL_UDATA_RULE_COMMENT). */
void nft_rule_comment(struct nftnl_rule *r, const char *comment);
void nft_elem_comment(struct nftnl_set_elem *e, const char *comment);
/* "ip saddr|daddr in cidr" test on the IPv4 header field at `off` (12 or 16). */
void nft_x_match_cidr(struct nftnl_rule *r, uint32_t off, const struct nft_cidr *c, bool neq);

/*
 * Rendering (nft_rules.c): the named objects a service needs, so that two renderings can be
 * compared and only their difference sent.
 */
enum nft_chain_kind { NFT_CH_SVC, NFT_CH_EXT, NFT_CH_FW, NFT_CH_EP };

struct nft_r_elem {
	uint8_t map;
	uint8_t keylen;
	uint8_t key[12];
	char chain[NFT_OBJ_NAME_MAX]; /* goto target */
	char comment[NFT_SVC_NAME_MAX + 16];
};
struct nft_r_chain {
	uint8_t kind;
	int ep; /* index into the service's endpoints for NFT_CH_EP */
	uint32_t n_rules;
	uint64_t sig; /* content signature: equal signatures mean equal rules */
	char name[NFT_OBJ_NAME_MAX];
};
struct nft_render {
	struct nft_r_elem *elems;
	size_t n_elems, cap_elems;
	struct nft_r_chain *chains;
	size_t n_chains, cap_chains;
};

struct nft_rcfg {
	const char *table;
	struct nft_cidr *pod_cidrs;
	size_t n_pod_cidrs;
	bool proxy, nodeports;
	uint32_t masq_mark;
};

/* `id` is the engine's number for the service (in its affinity keys and map names). */
int nft_render_service(const struct nft_rcfg *cfg, const struct nft_service *s, uint32_t id,
		       struct nft_render *out);
void nft_render_free(struct nft_render *r);
/* The skeleton's chains (plain and base), named sets (the maps and the affinity set), and its
 * number of rules for this configuration. */
#define NFT_SKELETON_CHAINS 16
#define NFT_SKELETON_SETS   (NFT_MAP__COUNT + 1)
size_t nft_skeleton_rules(const struct nft_rcfg *cfg);
/* Emits the skeleton: table (with comment `sig`), base chains, shared chains and maps. */
int nft_emit_skeleton(const struct nft_rcfg *cfg, struct nft_batch *b, const char *sig);
/* Emits one chain's rules (the chain must exist or be created earlier in the batch). */
/* For a service chain, creates its endpoint map too and writes the map's name to vmap. */
int nft_emit_chain_rules(const struct nft_rcfg *cfg, struct nft_batch *b,
			 const struct nft_service *s, uint32_t id, const struct nft_r_chain *c,
			 char vmap[NFT_VMAP_NAME_MAX]);
int nft_emit_del_set(const struct nft_rcfg *cfg, struct nft_batch *b, const char *name);
int nft_emit_chain(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type,
		   const char *name);
/* Adds (type NFT_MSG_NEWSETELEM) or deletes elements; all of them for one map per call. */
int nft_emit_elems(const struct nft_rcfg *cfg, struct nft_batch *b, uint16_t type, enum nft_map map,
		   const struct nft_r_elem *const *elems, size_t n);
/* The configuration signature kept as the table's comment. */
void nft_cfg_signature(const struct nft_rcfg *cfg, char *buf, size_t len);

/* nft_dump; without `full`, no rule texts and no elements of the endpoint maps or the
 * affinity set (adoption needs neither, and reading them costs the kernel a walk of all sets
 * per map). */
int nft_dump_ex(const char *table, bool full, struct nft_state **out);

/* Object names. */
void nft_name_svc(char *buf, const char *svc);
void nft_name_ext(char *buf, const char *svc);
void nft_name_fw(char *buf, const char *svc);
void nft_name_ep(char *buf, const char *svc, const struct nft_endpoint *ep);

/* Key encodings. */
void nft_key_ip(uint8_t key[12], struct in_addr ip, uint8_t proto, uint16_t port);
void nft_key_port(uint8_t key[8], uint8_t proto, uint16_t port);

/* The ready endpoints' indexes in canonical order (address, then port): the order of a
 * service's endpoint map, so the same endpoints in any order make the same rules. Returns
 * the count (and *out, malloc'd, NULL when none) or -ENOMEM. */
int nft_ready_order(const struct nft_service *s, size_t **out);

int nft_service_validate(const struct nft_service *s, char *err, size_t errlen);

#endif
