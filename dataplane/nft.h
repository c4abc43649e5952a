/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The nftables engine: node rules and an nftables service proxy, programmed through libnftnl
 * and libmnl into one table, `inet shoal`, and nothing else.
 *
 * Design choice a reader must know: every change is one netlink batch (atomic, ACKed per
 * message), and an endpoint change is only element updates in named maps and sets. The
 * kernel re-validates the whole table at every commit that adds a rule, a chain jump or a
 * verdict-map element (nf_tables' table validation walks every chain reachable from the base
 * chains), and it finds a named set by comparing its name with every set of the table. So the
 * layout has one chain per service, no chain per endpoint, and a fixed number of shared maps:
 * what changes with endpoints lives in data maps, whose updates the kernel applies without a
 * walk. Adding or removing a service still costs one validation walk.
 *
 *   map service-ips        ip daddr . meta l4proto . th dport : goto svc-NAME | ext-NAME
 *   map service-nodeports  meta l4proto . th dport : goto ext-NAME   (only for local daddr)
 *   chain ext-NAME         NodePorts and external IPs: mark for masquerade, goto svc-NAME; with
 *                          externalTrafficPolicy=Local: pods and the node itself go to svc-NAME,
 *                          others to the node's own endpoints, unmasqueraded, or are dropped
 *   chain svc-NAME         ip saddr != POD-CIDR meta mark set meta mark | 0x4000
 *                          dnat ip to numgen random mod 65536 offset B*65536 map @endpoints-S
 *                          reject                      (reached when it has no endpoint)
 *   map endpoints-S        numgen value : endpoint address . port, one interval per endpoint;
 *                          a service owns a block of 65,536 values split evenly between its
 *                          endpoints, so adding or removing one rewrites intervals, not rules.
 *                          Block B lives in map S = B % 256: the kernel checks an element
 *                          against every rule bound to its map and rebuilds an interval map's
 *                          lookup array at each commit, so no map may serve every service
 *   set hairpin            endpoint . endpoint: a pod reaching itself through a Service is
 *                          masqueraded in nat-postrouting
 *   set affinity           ip saddr . endpoint address . port, with timeouts (ClientIP session
 *                          affinity): such a service's chain has, before its block's rule, a
 *                          rule per endpoint for known clients and one for new ones, so an
 *                          endpoint change rewrites that chain
 *   set no-endpoint-*      rejected in the filter hooks when the proxy does not own the address
 *   map firewall-ips       goto fw-NAME (loadBalancerSourceRanges) for external IPs
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
/* No endpoint block (see struct nft_blocks). */
#define NFT_NO_BLOCK 0xffffffffu

struct nft_cidr {
	struct in_addr addr;
	uint8_t prefix; /* 0..32 */
};

/*
 * An endpoint and its conditions, as an EndpointSlice gives them. Ready endpoints receive
 * traffic; when a frontend has none, its serving and terminating ones do (so connections still
 * find a backend while a rollout replaces every pod).
 */
struct nft_endpoint {
	struct in_addr addr;
	uint16_t port;	  /* host order */
	bool ready;	  /* receives traffic */
	bool serving;	  /* would receive traffic if it were not terminating */
	bool terminating; /* being deleted */
	bool local;	  /* runs on this node (for externalTrafficPolicy=Local) */
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
	/* externalTrafficPolicy=Local: traffic to the NodePort and external IPs from outside
	 * the node goes only to local endpoints, keeps its source address, and is dropped when
	 * the node has none. Pods and the node itself still reach every endpoint. */
	bool external_local;
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

/* Where a service's endpoints are: the blocks its rules choose from (NFT_NO_BLOCK: none),
 * one for all its endpoints and one for the node's own (externalTrafficPolicy=Local). */
struct nft_blocks {
	uint32_t cluster, local;
};

/* What nft_dump reads back. */
enum nft_obj_kind { NFT_OBJ_CHAIN, NFT_OBJ_RULE, NFT_OBJ_SET, NFT_OBJ_ELEM };

struct nft_object {
	enum nft_obj_kind kind;
	/* chain, set or (for rules and elements) the containing chain or set */
	char *name;
	bool anonymous;
	uint64_t handle; /* kernel handle (0 for elements) */
	/* rules: libnftnl's rendering; elements: key => verdict or data # the service(s) */
	char *text;
	size_t n_elems; /* sets: the elements it holds */
};

struct nft_state {
	bool present;	/* the table exists */
	uint32_t genid; /* ruleset generation the dump is consistent with */
	char *comment;	/* the table's comment (the engine's configuration signature) */
	struct nft_service *services; /* decoded back from the kernel's objects */
	size_t n_services;
	/* The engine's bookkeeping, read back with each service: its endpoint blocks. */
	struct nft_blocks *service_blocks;
	struct in_addr *hairpin; /* the endpoint addresses in the hairpin set */
	size_t n_hairpin;
	/* every chain, rule, named set and element of the table (nft_dump; the adoption's read
	 * lists no elements, only their number per set) */
	struct nft_object *objects;
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
/* Compares two services as the kernel sees them: the endpoints each frontend uses (in any
 * order), not the conditions that chose them. */
bool nft_service_equal(const struct nft_service *a, const struct nft_service *b);
int nft_cidr_parse(const char *s, struct nft_cidr *out);

#endif
