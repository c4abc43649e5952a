/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The eBPF service data plane, user side: loads the XDP, tc and socket programs (or reuses
 * the maps a previous run pinned under /sys/fs/bpf/shoal/<node>/), attaches them, and
 * programs Services into their maps. The agent owns one struct dp per node.
 *
 * Lifecycle: dp_open() -> dp_attach_*() -> dp_service_upsert()/dp_service_delete()/dp_sync()
 * -> dp_close(). dp_close() leaves programs attached and maps pinned, so packets keep flowing
 * while the agent restarts; dp_uninstall() detaches everything and removes the pins.
 *
 * Restarts: programs are pinned beside the maps (prog_<name>) and shoal_meta records the ABI
 * version and a hash of the program build and its configuration. dp_open() then
 *   - adopts what is there when it matches: no program is loaded, the index of services and
 *     backends is rebuilt from the maps, dp_attach_*() find their program attached already
 *     and change nothing, and an unchanged service is not rewritten (its fingerprint is in
 *     shoal_svc_names);
 *   - loads new programs over the same maps when only the build or configuration differs;
 *     dp_attach_*() then swap them in place (XDP and tc replace, cgroup links are updated);
 *   - replaces the directory when the maps are incompatible (another ABI version, other map
 *     sizes): the old directory is moved aside, fresh maps and programs are made, the old
 *     attachments are carried over (swapped in place by the next dp_attach_*(), or removed by
 *     dp_uninstall()), and the old pins go. Services must then be programmed again.
 *
 * Memory at the defaults (10,000 services, 100,000 backends, 1,000,000 flows), as the kernel
 * charges it (dp_mem_bytes; bench/dp measured 320 MiB in all on 2 CPUs):
 *   shoal_ct_v4: 2 entries a flow, LRU, preallocated (~128 B each)      ~245 MiB
 *   shoal_affin_v4, shoal_sk_v4: LRU, preallocated, max_flows / 4 each  ~ 42 MiB
 *   shoal_svc_v4, shoal_slot_v4, names (hash, allocated on use)         ~ 25 MiB full
 *   shoal_be_v4 (array indexed by backend id, 8 B an id, preallocated)  ~  1 MiB
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

#define DP_PIN_ROOT	  "/sys/fs/bpf/shoal"
#define DP_MAGLEV_DEFAULT 16381

struct dp;

struct dp_opts {
	const char *node; /* pin directory name under pin_root (required; '.' is pinned as '_') */
	const char *pin_root;	/* default DP_PIN_ROOT */
	uint32_t node_addr;	/* network order: SNAT source for north-south to other nodes */
	const char *zone;	/* this node's zone, for topology hints (NULL: none) */
	uint32_t max_services;	/* default 10,000 */
	uint32_t max_frontends; /* default 4 per service */
	uint32_t max_backends;	/* default 100,000 */
	uint32_t max_flows;	/* default 1,000,000 */
	uint32_t max_maglev_services;	       /* default 1,024 */
	uint32_t maglev_size;		       /* prime, default 16,381 */
	uint16_t snat_port_min, snat_port_max; /* default 61000-65535 */
	/* Source a pod's flow to itself through a service is SNATed to (hairpin), network
	 * order; default 169.254.42.1. Pods must route it to the node (a default route does). */
	uint32_t hairpin_addr;
	/* Load the tc programs that call no kfunc even where the kernel offers the one the
	 * faster ones use (bpf_cast_to_kern_ctx, Linux 6.2+): for tests of the portable path. */
	bool no_kfuncs;
};

#define DP_HAIRPIN_DEFAULT "169.254.42.1"

/* Service flags: the SVC_F_* of shoal_abi.h. */
struct dp_frontend {
	uint32_t addr; /* network order */
	uint16_t port; /* host order */
};

#define DP_MAX_FRONTENDS 16
#define DP_ZONE_LEN	 32

struct dp_service {
	const char *name;	   /* "namespace/name:port/proto", the identity */
	uint8_t proto;		   /* IPPROTO_TCP or IPPROTO_UDP */
	uint8_t flags;		   /* SVC_F_* */
	uint16_t affinity_timeout; /* seconds (SVC_F_AFFINITY), default 10800 */
	size_t n_frontends;
	struct dp_frontend frontends[DP_MAX_FRONTENDS];
};

struct dp_backend {
	uint32_t addr;		     /* network order */
	uint16_t port;		     /* host order */
	uint8_t flags;		     /* BE_F_LOCAL, BE_F_TERMINATING */
	uint8_t ready;		     /* 0: not serving (skipped) */
	uint16_t weight;	     /* Maglev weight, default 1 (0 is taken as 1) */
	char zone_hint[DP_ZONE_LEN]; /* EndpointSlice hints.forZones[0], "" for none */
};

/* A Service with its backends, as dp_sync() takes it. */
struct dp_service_spec {
	struct dp_service svc;
	const struct dp_backend *backends;
	size_t n_backends;
};

struct dp *dp_open(const struct dp_opts *opts);
/* The pin directory of a node (pin_root NULL: DP_PIN_ROOT). 0 or -ENAMETOOLONG. */
int dp_pin_dir(const char *pin_root, const char *node, char *buf, size_t len);
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
	uint64_t packets, bytes;	 /* translated */
	uint64_t reason_packets[DR_MAX]; /* by enum shoal_reason */
	uint32_t services, backends;
	uint64_t map_writes; /* map entries this handle wrote or deleted since dp_open */
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
/* True when dp_open() adopted the pinned programs (loaded nothing). */
bool dp_adopted(struct dp *dp);

/* What the maps hold for one service, for people and metrics (dp_service_info). */
enum dp_slot_state { DP_SLOT_READY, DP_SLOT_TERMINATING, DP_SLOT_IDLE };

struct dp_backend_info {
	uint32_t addr; /* network order */
	uint16_t port; /* host order */
	uint8_t flags; /* BE_F_* */
	uint8_t state; /* enum dp_slot_state: which slots of the live generation it is in */
	uint64_t packets, bytes; /* counted when chosen and for every packet of its flows */
};

struct dp_service_info {
	char name[SHOAL_SVC_NAME_LEN];
	uint32_t id;
	uint8_t proto, flags, gen;
	uint16_t affinity_timeout;
	size_t n_frontends;
	struct dp_frontend frontends[DP_MAX_FRONTENDS];
	uint16_t n_ready, n_local, n_term, n_term_local, n_idle;
	uint32_t maglev_size;
	uint64_t packets, bytes;
	size_t n_backends;
	struct dp_backend_info *backends; /* malloc'd, in slot order */
};

/* The names of every service in the maps (malloc'd array of malloc'd strings, sorted). */
int dp_service_names(struct dp *dp, char ***names, size_t *n);
void dp_names_free(char **names, size_t n);
/* One service as the maps hold it; free with dp_service_info_free. -ENOENT when absent. */
int dp_service_info(struct dp *dp, const char *name, struct dp_service_info *out);
void dp_service_info_free(struct dp_service_info *info);

/*
 * Maglev permutation table (Eisenbud et al., NSDI 2016) over n backends with weights: fills
 * table[0..m) with indexes into ids[]. m must be prime and > n. Returns 0 or -EINVAL.
 */
int dp_maglev_build(const uint64_t *keys, const uint16_t *weights, size_t n, uint32_t *table,
		    uint32_t m);

#endif
