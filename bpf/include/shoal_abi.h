/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every struct that crosses the kernel boundary: map keys and values shared by the BPF
 * programs (bpf/NAME.bpf.c) and the loader library (dataplane/). Fixed-width fields, network
 * order where marked __be, explicit padding, so that the layout is the same on both sides
 * and `bpftool map dump` prints named fields from BTF.
 *
 * Design choice: a Service is a small record (id, counts, flags) that points at numbered
 * backend slots of one of two generations. An update writes the other generation's slots
 * (and a fresh Maglev table) first, then flips the service record in one map update, so a
 * packet sees either the old backend set or the new one, never a mix.
 *
 * IPv4 maps carry the _v4 suffix; IPv6 gets its own maps and keys (addresses of 16 bytes)
 * beside them, while ids, slots, counters and flags below are family-independent.
 */
#ifndef SHOAL_ABI_H
#define SHOAL_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/*
 * Version of the pinned maps' layout. 2: shoal_be_v4 is an array indexed by backend id (an
 * unused id is all zeros) instead of a hash; a conntrack entry's direction moved from its key
 * to its value. 3: a conntrack reply entry keeps the Ethernet addresses of its flow's first
 * packet (48 bytes, 40 before).
 */
#define SHOAL_ABI_VERSION 3

/* Map names, pinned under /sys/fs/bpf/shoal/<node>/ (15 characters at most). */
#define SHOAL_MAP_SVC "shoal_svc_v4"
#define SHOAL_MAP_SLOT "shoal_slot_v4"
#define SHOAL_MAP_BACKEND "shoal_be_v4"
#define SHOAL_MAP_MAGLEV "shoal_maglev_v4"
#define SHOAL_MAP_CT "shoal_ct_v4"
#define SHOAL_MAP_REVNAT "shoal_revnat_v4"
#define SHOAL_MAP_AFFINITY "shoal_affin_v4"
#define SHOAL_MAP_SVC_STATS "shoal_svc_stats"
#define SHOAL_MAP_BE_STATS "shoal_be_stats"
#define SHOAL_MAP_DROPS "shoal_stats"
#define SHOAL_MAP_SOCK "shoal_sk_v4"
#define SHOAL_MAP_NAMES "shoal_svc_names"
#define SHOAL_MAP_ATTACH "shoal_attach"
#define SHOAL_MAP_META "shoal_meta"

/* Service flags (shoal_svc_v4.flags). */
#define SVC_F_NODEPORT (1u << 0) /* frontend is a node address: NodePort */
#define SVC_F_EXTERNAL (1u << 1) /* frontend is an external / LoadBalancer IP */
#define SVC_F_AFFINITY (1u << 2) /* sessionAffinity: ClientIP */
#define SVC_F_ETP_LOCAL (1u << 3) /* externalTrafficPolicy: Local */
#define SVC_F_ITP_LOCAL (1u << 4) /* internalTrafficPolicy: Local */
#define SVC_F_MAGLEV (1u << 5) /* north-south choice through the Maglev table */
#define SVC_F_DSR (1u << 6) /* north-south to remote backends by direct server return */

/* Backend flags (shoal_backend_v4.flags). */
#define BE_F_LOCAL (1u << 0) /* runs on this node */
#define BE_F_TERMINATING (1u << 1) /* terminating but still serving */

/* Frontend key: where a packet is going. */
struct shoal_svc_key_v4 {
	__be32 addr; /* ClusterIP, node address (NodePort) or external IP */
	__be16 port; /* service port */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

/*
 * Frontend value. The backend slots of generation `gen` are laid out as
 *   [0, n_local)                 ready local backends
 *   [n_local, n_ready)           ready remote backends
 *   [n_ready, n_ready+n_term_local)              terminating local
 *   [n_ready+n_term_local, n_ready+n_term)       terminating remote
 * so "local only" and "terminating only when nothing is ready" are both a prefix choice.
 */
struct shoal_svc_v4 {
	__u32 id; /* service id: index of the stats and revnat entries, slot key */
	__u16 n_ready;
	__u16 n_local;
	__u16 n_term;
	__u16 n_term_local;
	__u8 gen; /* live slot generation: 0 or 1 */
	__u8 flags; /* SVC_F_* */
	__u16 affinity_timeout; /* seconds, with SVC_F_AFFINITY */
	__u32 maglev_size; /* entries of this service's Maglev table (prime), 0 = none */
	__u16 n_idle; /* slots after the serving ones: listed, not serving (loader only) */
	__u16 pad;
};

/* Slot key: (service, generation, index) -> backend id (__u32). */
struct shoal_slot_key {
	__u32 svc_id;
	__u16 slot;
	__u8 gen;
	__u8 pad;
};

/* Backend id -> where it is (index of the shoal_be_v4 array; addr 0: no backend). */
struct shoal_backend_v4 {
	__be32 addr;
	__be16 port;
	__u8 flags; /* BE_F_* */
	__u8 pad;
};

/* Service id -> the frontend that replies are translated back to. */
struct shoal_revnat_v4 {
	__be32 addr;
	__be16 port;
	__u16 pad;
};

/*
 * Conntrack key: a packet's tuple as it arrives at the program. Both directions of a flow
 * share one key space (as in the kernel's conntrack, a tuple is one flow's forward or
 * another's reply, never both), so that any packet of a known flow takes one lookup; the
 * entry says which direction it is.
 */
struct shoal_ct_key_v4 {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

#define CT_DIR_FWD 0 /* client -> frontend: translate to the backend */
#define CT_DIR_REPLY 1 /* backend -> client (or -> SNAT address): translate back */

/* Conntrack entry flags. */
#define CT_F_SNAT (1u << 0) /* the forward packet's source was rewritten too */
#define CT_F_CLOSING (1u << 1) /* a FIN or RST was seen: short timeout */
#define CT_F_SEEN_REPLY (1u << 2) /* the flow has seen a reply */
#define CT_F_DSR (1u << 3) /* sent by direct server return: no reply entry here */

struct shoal_ct_v4 {
	__u64 expires; /* deadline on the data plane's clock (ns, bpf/lib/ct.h); expired: a miss */
	__u32 backend_id; /* forward: the chosen backend */
	__u32 svc_id; /* revnat index */
	/* forward: new destination (backend); reply: original frontend to restore as source */
	__be32 nat_addr;
	__be16 nat_port;
	__u8 flags; /* CT_F_* */
	__u8 dir; /* CT_DIR_*: which direction of the flow this entry's key is */
	/* with CT_F_SNAT: forward: new source; reply: original client to restore as destination */
	__be32 snat_addr;
	__be16 snat_port;
	/*
	 * Reply entries of flows that came in through XDP: the Ethernet addresses their first
	 * packet came from (where the reply goes) and to (the reply's source), so that XDP sends
	 * the reply back without a FIB lookup; all zeros elsewhere (the reply is routed).
	 */
	__u8 l2_dst[6];
	__u32 ifindex; /* reply: interface the forward packet came in on (forwarding) */
	__u8 l2_src[6];
	__u16 pad2;
};

/* Session affinity (ClientIP): (client, service) -> backend. */
struct shoal_affinity_key_v4 {
	__be32 client;
	__u32 svc_id;
};

struct shoal_affinity_v4 {
	__u64 last_used; /* the data plane's clock (ns, bpf/lib/ct.h) */
	__u32 backend_id;
	__u32 pad;
};

/* Per-service and per-backend counters (per-CPU arrays indexed by id). */
struct shoal_counter {
	__u64 packets;
	__u64 bytes;
};

/* Socket LB: (socket cookie, backend) -> the frontend the application asked for. */
struct shoal_sock_key_v4 {
	__u64 cookie;
	__be32 addr; /* backend */
	__be16 port;
	__u16 pad;
};

struct shoal_sock_v4 {
	__be32 addr; /* frontend */
	__be16 port;
	__u16 pad;
};

/* Service id -> the name the loader's caller gave it (not used by the programs). */
#define SHOAL_SVC_NAME_LEN 120
struct shoal_svc_name {
	char name[SHOAL_SVC_NAME_LEN];
	__u32 flags; /* the dp_service flags, for a restarted loader */
	__u32 pad;
	__u64 fingerprint; /* hash of the last applied spec: dp_sync skips what is unchanged */
};

/* ifindex -> what the loader attached there (ATTACH_*), so that uninstall finds it all. */
#define ATTACH_XDP (1u << 0)
#define ATTACH_TC_POD (1u << 1)
#define ATTACH_TC_UPLINK (1u << 2)
#define ATTACH_XDP_GENERIC (1u << 3)

/*
 * The loader's record of what the pin directory holds (shoal_meta, one entry): a restarted
 * loader adopts the pinned programs as they are when their build and configuration match,
 * and replaces the whole directory when the ABI version differs.
 */
struct shoal_meta {
	__u32 abi_version; /* SHOAL_ABI_VERSION of the loader that made the maps */
	__u32 pad;
	__u64 programs; /* hash of the program objects, their configuration and the map sizes */
};

/* Drop and pass reasons: index of the per-CPU shoal_stats array. */
enum shoal_reason {
	DR_OK = 0, /* translated */
	DR_NO_BACKEND, /* service without a serving endpoint: rejected */
	DR_MALFORMED, /* truncated or inconsistent headers: dropped */
	DR_FRAGMENT, /* IPv4 fragment to a service: dropped (ports unknown) */
	DR_IP_OPTIONS, /* passed unchanged (not a service packet we translate) */
	DR_UNSUPPORTED, /* protocol or encapsulation left to the stack */
	DR_BACKEND_GONE, /* slot names a backend that no longer exists */
	DR_CSUM, /* a checksum helper failed */
	DR_FIB, /* no route or neighbour to forward to */
	DR_NO_SNAT_PORT, /* SNAT port space exhausted */
	DR_REJECT_FAILED, /* could not build the reject reply */
	DR_STRAY_RST, /* a TCP RST for no known flow of a service: dropped */
	DR_MAX,
};

/* Static configuration of a program (volatile const rodata), set by the loader. */
#define SHOAL_NODEPORT_MIN 30000
#define SHOAL_NODEPORT_MAX 32767

#endif
