/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the dpsync*.c files share: the translation of a Service and its EndpointSlices into
 * per-port records that both data planes take (dpsync_xlate.c), and the node-side network
 * work: routes to other nodes' pod CIDRs and the tc program on pod interfaces
 * (dpsync_net.c).
 */
#ifndef SHOAL_DPSYNC_INT_H
#define SHOAL_DPSYNC_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp.h"
#include "nft.h"

/* The label that ties an EndpointSlice to its Service. */
#define DPSYNC_SVC_LABEL "kubernetes.io/service-name"
/* The label of an EndpointSlice that another cluster's federation published (its value names
 * the source cluster): its endpoints are that cluster's node ports or external addresses. */
#define DPSYNC_REMOTE_LABEL "federation.shoal.io/source-cluster"
/* The route protocol number marking routes dpsync made (RTPROT_* leaves 0-255 free above
 * the well-known ones; 0x5e is unassigned). Routes of any other protocol are never touched. */
#define DPSYNC_RTPROT 0x5e

/* One endpoint of one Service port. */
struct xl_endpoint {
	uint32_t addr; /* network order */
	uint16_t port; /* host order */
	bool ready, serving, terminating;
	bool local;  /* on this node */
	bool remote; /* in another cluster (a slice with DPSYNC_REMOTE_LABEL) */
	char node[64];
	char zone[32];
	char hint[DP_ZONE_LEN]; /* hints.forZones[0].name, "" for none */
};

/* One Service port, as the data planes program it. A port with endpoints of other clusters
 * and frontends for traffic from outside (node port, external IPs) becomes two records: the
 * first keeps the ClusterIP with every endpoint, the second ("<name>/external") takes the
 * node port and external IPs with this cluster's endpoints only (see dpsync_xlate.c). */
struct xl_port {
	char dp_name[SHOAL_SVC_NAME_LEN]; /* "ns/name:port/proto" */
	char nft_name[NFT_SVC_NAME_MAX];  /* "ns/name/proto/port" */
	uint8_t proto;			  /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP */
	uint16_t port, node_port;	  /* host order; node_port 0: none */
	uint32_t cluster_ip;		  /* network order; 0: none (headless) */
	uint32_t *ext;			  /* externalIPs, then loadBalancer ingress IPs */
	size_t n_ext;
	uint32_t affinity_timeout; /* sessionAffinity ClientIP: seconds; 0: none */
	bool etp_local, itp_local;
	struct nft_cidr *source_ranges; /* loadBalancerSourceRanges */
	size_t n_source_ranges;
	struct xl_endpoint *eps; /* sorted by address and port */
	size_t n_eps;
};

/* A Service with all its ports; hash summarises everything the data planes see. */
struct xl_service {
	struct xl_port *ports;
	size_t n_ports;
	uint64_t hash;
};

struct xl_node {
	const char *name;
	uint32_t node_ip; /* network order; 0: none (no NodePort frontend) */
	bool sctp;	  /* keep SCTP ports (nftables); the BPF programs do TCP and UDP */
};

/*
 * Translates a Service (NULL: deleted, no ports) and the EndpointSlices that name it. Ports of
 * unsupported protocols, IPv6 addresses and slices of other address types are left out
 * (logged at debug). Returns 0 or -ENOMEM; bad input is skipped, never fatal.
 */
int xl_service(const json_t *svc, json_t *const *slices, size_t n_slices,
	       const struct xl_node *node, struct xl_service *out);
void xl_service_free(struct xl_service *s);

/* The BPF data plane's record of a port: *be is malloc'd. Returns -ENOENT when the port has
 * no frontend on this node (a headless Service without NodePort). */
int xl_to_dp(const struct xl_port *p, uint32_t node_ip, struct dp_service *svc,
	     struct dp_backend **be, size_t *n_be);
/* The nftables record: arrays are malloc'd (nft_service_free_arrays). The engine applies the
 * terminating fallback and externalTrafficPolicy=Local from the endpoints' conditions. */
int xl_to_nft(const struct xl_port *p, struct nft_service *out);

/* Node objects: spec.podCIDR and the first IPv4 InternalIP of status.addresses. */
struct xl_node_net {
	bool has_cidr, has_ip;
	struct nft_cidr pod_cidr;
	uint32_t internal_ip; /* network order */
};
void xl_node_net(const json_t *node, struct xl_node_net *out);

/* ---- dpsync_net.c --------------------------------------------------------------------- */

struct nl_conn;
struct nl_monitor;

/* A route dpsync keeps: another node's pod CIDR through that node's address. */
struct net_route {
	struct nft_cidr dst;
	uint32_t via; /* network order */
	char node[64];
};

struct dpsync_net {
	struct nl_conn *nl;
	struct nl_monitor *mon; /* links and routes changing: pod interfaces come and go */
	char uplink[16];
	int uplink_ifindex;
	struct nft_cidr pod_cidr;
	struct dp *dp; /* BPF mode: lb_tc_pod goes on every pod interface; NULL otherwise */
	int *pod_ifs;  /* interfaces lb_tc_pod was attached to */
	size_t n_pod_ifs;
	struct net_route *routes; /* what the last route sync left in place */
	size_t n_routes;
	uint64_t route_writes, route_errors, attach_errors;
};

/* Opens rtnetlink and the monitor in the calling thread's namespace. */
int net_open(struct dpsync_net *n, const char *uplink, const struct nft_cidr *pod_cidr,
	     struct dp *dp);
void net_close(struct dpsync_net *n);
/* BPF mode: lb_tc_pod on every interface that a /32 route of the pod CIDR goes out of, off
 * the ones that no longer have one. */
int net_pod_ifs_sync(struct dpsync_net *n);
/* Makes the routes of protocol DPSYNC_RTPROT exactly `want`; a destination someone else
 * routes already is left alone (logged). */
int net_routes_sync(struct dpsync_net *n, const struct net_route *want, size_t n_want);

#endif
