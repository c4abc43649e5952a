/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data plane sync of shoal-agent: watches Services, EndpointSlices and Nodes (informers,
 * common/informer.h) and keeps this node's data plane equal to them, incrementally: one
 * changed endpoint is one small map update (BPF, dataplane/dp.h) or one nftables batch
 * (--proxy=nftables, dataplane/nft.h). Also installs the node's nftables rules and keeps a
 * route to every other node's pod CIDR (rtnetlink, dataplane/nl.h).
 *
 * Restart-safe: a restarted agent opens the pinned maps and attached programs (or the
 * existing nftables table) as they are and applies only differences; traffic never stops.
 *
 * Flow: informer handlers only note which Service changed (an EndpointSlice names its
 * Service by the kubernetes.io/service-name label) and wake the sync thread; the thread
 * waits a moment for a burst to settle (at most DPSYNC_COALESCE_MS after the first event),
 * translates each noted Service and its slices (agent/dpsync_xlate.c), and applies only the
 * Services whose translation differs from what it applied last: one dp_service_upsert or
 * nft_service_upsert per changed port. Nothing is applied before all three informers have
 * listed; the first apply is a full sync that also removes what the API no longer has.
 *
 * What each mode programs: ClusterIP, external IPs and loadBalancer ingress IPs at the
 * Service port, the node address at the nodePort; sessionAffinity ClientIP; ready endpoints
 * of every slice, or serving terminating ones when none is ready. The BPF mode also honours
 * externalTrafficPolicy and internalTrafficPolicy Local and topology hints for this node's
 * zone, attaches XDP and tc on the uplink, the socket hooks on cgroup_root and tc on every pod
 * interface, and keeps the node's nftables rules (pod egress masquerade) beside them. The
 * nftables proxy (nft.h) has no notion of endpoint locality: there both policies act as
 * Cluster.
 */
#ifndef SHOAL_AGENT_DPSYNC_H
#define SHOAL_AGENT_DPSYNC_H

#include <stdbool.h>

struct dpsync;
struct strbuf;

#define DPSYNC_COALESCE_MS 2

enum dpsync_mode { DPSYNC_BPF, DPSYNC_NFTABLES };

struct dpsync_config {
	const char *server, *token, *ca_file; /* the API, as informer_opts */
	bool insecure;
	const char *node; /* this node's name (pin path /sys/fs/bpf/shoal/<node>/) */
	const char *zone; /* this node's zone, for topology-aware endpoints (may be NULL) */
	enum dpsync_mode mode;
	const char *uplink;	 /* the node's uplink interface (XDP, tc, NodePort), e.g. "eth0" */
	const char *node_ip;	 /* the node's address on the uplink */
	const char *pod_cidr;	 /* this node's pod CIDR */
	const char *cgroup_root; /* the node's cgroup: socket-LB programs attach here */
	/* XDP on the uplink: "native", "generic", or NULL: native, except generic on a veth
	 * (XDP_TX and redirects on a veth need an XDP program on its peer as well). */
	const char *xdp_mode;
	const char *pin_root; /* BPF pins (NULL: /sys/fs/bpf/shoal) */
};

/* Opens or adopts the data plane, starts the informers and the sync thread. NULL and errno
 * on failure (the cause is logged). */
struct dpsync *dpsync_start(const struct dpsync_config *cfg);
/* Stops the thread and informers; the data plane stays as it is. Accepts NULL. */
void dpsync_stop(struct dpsync *d);
/* True once the first full sync after start is applied. */
bool dpsync_ready(struct dpsync *d);
/* What the node's data plane holds, in words for `shoalctl dp`: services, frontends,
 * backends (address, port, node, zone, state), counters. Returns out->err. */
int dpsync_describe(struct dpsync *d, struct strbuf *out);
/* Prometheus text: services, backends, syncs, sync latency, errors, counters. */
int dpsync_metrics(struct dpsync *d, struct strbuf *out);

#endif
