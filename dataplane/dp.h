/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The eBPF service data plane, user side: loads the XDP, tc and socket programs (or reuses
 * the maps a previous run pinned under /sys/fs/bpf/shoal/<node>/), attaches them, and
 * programs Services into their maps. The agent owns one struct dp per node.
 *
 * Lifecycle: dp_open() -> dp_attach_*() -> dp_service_upsert()/dp_service_delete()/dp_sync()
 * -> dp_close(). dp_close() leaves programs attached and maps pinned, so packets keep flowing
 * while the agent restarts; the next dp_open() picks the state up from the pinned maps.
 * dp_uninstall() detaches everything and removes the pins.
 *
 * Memory at the defaults (10,000 services, 100,000 backends, 1,000,000 flows), as the kernel
 * charges it (dp_mem_bytes; bench/dp measured 313 MiB in all on 2 CPUs):
 *   shoal_ct_v4: 2 entries a flow, LRU, preallocated (~140 B each)      ~270 MiB
 *   shoal_be_v4, shoal_slot_v4, shoal_svc_v4 (hash, allocated on use)   ~ 30 MiB full
 *   per-service and per-backend counters (per-CPU arrays, 16 B a CPU)   ~  4 MiB on 2 CPUs
 *   one Maglev table per north-south service (4 B x 16,381)             64 KiB each
 * Map sizes are fixed when the maps are first created; reopening pinned maps with other
 * sizes fails (dp_uninstall first).
 *
 * Services (struct dp_service): frontends are ClusterIP, node addresses (NodePort: the caller
 * lists one frontend per node address) and external IPs; flags are shoal_abi.h's SVC_F_*.
 * SVC_F_MAGLEV picks north-south backends through a Maglev table (XDP and the uplink tc
 * program), east-west picks at random. SVC_F_DSR sends north-south traffic for another
 * node's backend without SNAT, the frontend carried in an IPv4 option (type 158, RFC 4727's
 * experimental value) that the backend node's shoal strips and turns into reply NAT.
 * A Service without a serving endpoint answers TCP with RST and UDP with ICMP port
 * unreachable (tc and XDP), and fails connect() with EPERM (socket hooks).
 *
  * Errors: functions return 0 or a negative errno; dp_open() returns NULL and sets errno.
 */
#ifndef SHOAL_DP_H
#define SHOAL_DP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal_abi.h"

#define DP_PIN_ROOT "/sys/fs/bpf/shoal"
#define DP_MAGLEV_DEFAULT 16381

struct dp;

struct dp_opts {
	const char *node; /* pin directory name under pin_root (required) */
	const char *pin_root; /* default DP_PIN_ROOT */
	uint32_t node_addr; /* network order: SNAT source for north-south to other nodes */
	const char *zone; /* this node's zone, for topology hints (NULL: none) */
	uint32_t max_services; /* default 10,000 */
	uint32_t max_frontends; /* default 4 per service */
	uint32_t max_backends; /* default 100,000 */
	uint32_t max_flows; /* default 1,000,000 */
	uint32_t max_maglev_services; /* default 1,024 */
	uint32_t maglev_size; /* prime, default 16,381 */
	uint16_t snat_port_min, snat_port_max; /* default 61000-65535 */
};

/* Service flags: the SVC_F_* of shoal_abi.h. */
struct dp_frontend {
	uint32_t addr; /* network order */
	uint16_t port; /* host order */
};

#define DP_MAX_FRONTENDS 8
#define DP_ZONE_LEN 32

struct dp_service {
	const char *name; /* "namespace/name:port/proto", the identity */
	uint8_t proto; /* IPPROTO_TCP or IPPROTO_UDP */
	uint8_t flags; /* SVC_F_* */
	uint16_t affinity_timeout; /* seconds (SVC_F_AFFINITY), default 10800 */
	size_t n_frontends;
	struct dp_frontend frontends[DP_MAX_FRONTENDS];
};

struct dp_backend {
	uint32_t addr; /* network order */
	uint16_t port; /* host order */
	uint8_t flags; /* BE_F_LOCAL, BE_F_TERMINATING */
	uint8_t ready; /* 0: not serving (skipped) */
	uint16_t weight; /* Maglev weight, default 1 (0 is taken as 1) */
	char zone_hint[DP_ZONE_LEN]; /* EndpointSlice hints.forZones[0], "" for none */
};

/* A Service with its backends, as dp_sync() takes it. */
struct dp_service_spec {
	struct dp_service svc;
	const struct dp_backend *backends;
	size_t n_backends;
};

struct dp *dp_open(const struct dp_opts *opts);
/* Frees the handle; programs stay attached and maps stay pinned. Accepts NULL. */
void dp_close(struct dp *dp);
/* Detaches what this node attached and removes its pins (and an empty pin root). */
int dp_uninstall(struct dp *dp);

enum dp_xdp_mode { DP_XDP_AUTO, DP_XDP_NATIVE, DP_XDP_GENERIC };
int dp_attach_xdp(struct dp *dp, int ifindex, enum dp_xdp_mode mode);
int dp_detach_xdp(struct dp *dp, int ifindex);
/* tc ingress: uplink=true for the node's uplink, false for the host side of a pod veth. */
int dp_attach_tc(struct dp *dp, int ifindex, bool uplink);
int dp_detach_tc(struct dp *dp, int ifindex);
/* The four socket hooks on a cgroup (v2 directory path). */
int dp_attach_cgroup(struct dp *dp, const char *cgroup_path);
int dp_detach_cgroup(struct dp *dp, const char *cgroup_path);

/* Adds or replaces a Service; atomic for packets (slots and Maglev first, then the flip). */
int dp_service_upsert(struct dp *dp, const struct dp_service *svc, const struct dp_backend *be,
		      size_t n);
int dp_service_delete(struct dp *dp, const char *name);
/* Makes the maps hold exactly `specs`, touching only what differs. */
int dp_sync(struct dp *dp, const struct dp_service_spec *specs, size_t n);

struct dp_stats {
	uint64_t packets, bytes; /* translated */
	uint64_t reason_packets[DR_MAX]; /* by enum shoal_reason */
	uint32_t services, backends;
};
int dp_stats(struct dp *dp, struct dp_stats *out);
/* Packets and bytes of one service (summed over CPUs). */
int dp_service_stats(struct dp *dp, const char *name, uint64_t *packets, uint64_t *bytes);
/* Kernel memory charged for all shoal maps of this node. */
int dp_mem_bytes(struct dp *dp, uint64_t *bytes);
/* The pinned map fd of a map name (SHOAL_MAP_*) or program fd by name, for tests and tools. */
int dp_map_fd(struct dp *dp, const char *name);
int dp_prog_fd(struct dp *dp, const char *name);
/* The service id a name has in the maps, or -ENOENT. */
int dp_service_id(struct dp *dp, const char *name);

/*
 * Maglev permutation table (Eisenbud et al., NSDI 2016) over n backends with weights: fills
 * table[0..m) with indexes into ids[]. m must be prime and > n. Returns 0 or -EINVAL.
 */
int dp_maglev_build(const uint64_t *keys, const uint16_t *weights, size_t n, uint32_t *table,
		    uint32_t m);

#endif
