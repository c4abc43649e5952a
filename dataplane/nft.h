/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The nftables engine: node rules and an nftables service proxy, programmed through libnftnl
 * and libmnl into one table, `inet shoal`, and nothing else.
 *
 * Design choice a reader must know: every change is one netlink batch (atomic, ACKed per
 * message). The engine keeps the services it last applied, renders old and new into named
 * kernel objects (map elements, chains, maps) and sends only the difference: one changed
 * endpoint rewrites that service's chain and endpoint map and adds/removes that endpoint's
 * chain, never the whole table. The layout follows kube-proxy's nftables mode:
 *
 *   map service-ips       ip daddr . meta l4proto . th dport : goto svc-NAME | ext-NAME
 *   map service-nodeports meta l4proto . th dport : goto ext-NAME   (only for local daddr)
 *   chain ext-NAME        mark for masquerade, goto svc-NAME        (NodePorts, external IPs)
 *   chain svc-NAME        [ip saddr . ID . A . P @affinity goto ep-...] numgen random mod N
 *                         vmap @eID.SEQ          (the service's map: index : goto ep-NAME__A/P)
 *   chain ep-NAME__A/P    [hairpin mark] [update @affinity {...} timeout T] dnat to A:P
 *   map no-endpoint-*     goto reject-chain for Services without ready endpoints
 *   map firewall-ips      goto fw-NAME (loadBalancerSourceRanges) for external IPs
 *   set affinity          ip saddr . service id . endpoint, dynamic, per-element timeouts
 *
 * Deleting the table (nft_remove) restores the node: the engine holds nothing elsewhere.
 */
#ifndef SHOAL_NFT_H
#define SHOAL_NFT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NFT_TABLE_NAME "shoal"
/* A service's name ("namespace/name/protocol/port") is at most this long, NUL included. */
#define NFT_SVC_NAME_MAX      96
#define NFT_DEFAULT_MASQ_MARK 0x4000u
/* A service's endpoint map: "eID.SEQ". */
#define NFT_VMAP_NAME_MAX 32

struct nft_cidr {
	struct in_addr addr;
	uint8_t prefix; /* 0..32 */
};

struct nft_endpoint {
	struct in_addr addr;
	uint16_t port; /* host order */
	bool ready;    /* only ready endpoints receive traffic */
};

/*
 * One Service port, as the proxy takes it. Arrays are borrowed for the call; the engine
 * copies what it keeps.
 */
struct nft_service {
	char name[NFT_SVC_NAME_MAX]; /* unique key, e.g. "default/web/tcp/80" */
	uint8_t protocol;	     /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
	struct in_addr cluster_ip;   /* INADDR_ANY: none (headless) */
	uint16_t port;		     /* the Service port, host order */
	uint16_t node_port;	     /* 0: none */
	struct in_addr *external_ips;
	size_t n_external_ips;
	struct nft_endpoint *endpoints;
	size_t n_endpoints;
	uint32_t affinity_timeout;	/* ClientIP session affinity in seconds; 0: none */
	struct nft_cidr *source_ranges; /* loadBalancerSourceRanges, applied to external IPs */
	size_t n_source_ranges;
};

struct nft_config {
	const char *table; /* NULL: NFT_TABLE_NAME */
	/* Pod CIDRs of the cluster: traffic from them to outside them is masqueraded, and
	 * ClusterIP traffic from outside them is masqueraded. */
	const struct nft_cidr *pod_cidrs;
	size_t n_pod_cidrs;
	bool proxy;	    /* program ClusterIPs and external IPs (--proxy=nftables) */
	bool nodeports;	    /* NodePort DNAT (the proxy, or when XDP is not attached) */
	uint32_t masq_mark; /* 0: NFT_DEFAULT_MASQ_MARK */
};

struct nft_engine;

/*
 * Opens the engine in the current network namespace: creates the table if it is absent,
 * or adopts what it holds (read back through nft_dump) so that the next nft_sync sends only
 * the difference. Returns NULL and sets errno on failure.
 */
struct nft_engine *nft_open(const struct nft_config *cfg);
/* Frees the engine; the rules stay in the kernel (an agent restart keeps traffic flowing). */
void nft_close(struct nft_engine *e);

/* Makes the table hold exactly these services (one batch; nothing sent when in sync). */
int nft_sync(struct nft_engine *e, const struct nft_service *svcs, size_t n);
/* Adds or changes one service: only that service's objects are touched. */
int nft_service_upsert(struct nft_engine *e, const struct nft_service *svc);
/* Removes one service; -ENOENT when the engine does not hold it. */
int nft_service_delete(struct nft_engine *e, const char *name);
/* Deletes the table: the node is as it was before nft_open. */
int nft_remove(struct nft_engine *e);

/* The last error, naming the kernel object it concerned ("" when none). */
const char *nft_last_error(const struct nft_engine *e);
/* Counters of the last applied batch (for tests and benchmarks). */
struct nft_batch_stats {
	uint32_t messages; /* netlink messages in the batch, begin/end excluded */
	uint32_t acks;	   /* ACKs received for them */
	size_t bytes;	   /* size of the batch */
};
void nft_last_batch(const struct nft_engine *e, struct nft_batch_stats *out);
size_t nft_service_count(const struct nft_engine *e);

/* What nft_dump reads back. */
enum nft_obj_kind { NFT_OBJ_CHAIN, NFT_OBJ_RULE, NFT_OBJ_SET, NFT_OBJ_ELEM };

struct nft_object {
	enum nft_obj_kind kind;
	/* chain, set or (for rules and elements) the containing chain or set; an anonymous set
	 * and its elements are named for the chain whose rule holds them */
	char *name;
	bool anonymous;
	uint64_t handle; /* kernel handle (0 for elements) */
	char *text;	 /* rules: libnftnl's rendering; elements: key => verdict # comment */
};

struct nft_state {
	bool present;	/* the table exists */
	uint32_t genid; /* ruleset generation the dump is consistent with */
	char *comment;	/* the table's comment (the engine's configuration signature) */
	struct nft_service *services; /* decoded back from the kernel's objects */
	size_t n_services;
	/* The engine's bookkeeping, read back with each service: its number and the name of
	 * its endpoint map ("" when it has none). */
	uint32_t *service_ids;
	char (*service_vmaps)[NFT_VMAP_NAME_MAX];
	struct nft_object *objects; /* every chain, rule, named set and element of the table */
	size_t n_objects;
};

/* Reads table `table` (NULL: NFT_TABLE_NAME) of the current netns back from the kernel. */
int nft_dump(const char *table, struct nft_state **out);
void nft_state_free(struct nft_state *st);
/* The ruleset generation of the current network namespace. */
int nft_genid(uint32_t *genid);

/* Helpers for callers building services. */
void nft_service_free_arrays(struct nft_service *s);
/* Deep copy (arrays duplicated); dst must be released with nft_service_free_arrays. */
int nft_service_copy(struct nft_service *dst, const struct nft_service *src);
/* Compares two services as the kernel sees them (ready endpoints only, in any order). */
bool nft_service_equal(const struct nft_service *a, const struct nft_service *b);
int nft_cidr_parse(const char *s, struct nft_cidr *out);

#endif
