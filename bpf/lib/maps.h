/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The maps every shoal program shares. Each object includes this header; the maps are pinned
 * by name (LIBBPF_PIN_BY_NAME) under the loader's pin root, so the XDP, tc and socket objects
 * and a restarted loader all find the same instances. Sizes here are the build defaults; the
 * loader resizes them before load (dp_open options).
 */
#ifndef SHOAL_MAPS_H
#define SHOAL_MAPS_H

#include "shoal_abi.h"

/* Frontend (VIP, node address or external IP, port, protocol) -> service record. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, struct shoal_svc_key_v4);
	__type(value, struct shoal_svc_v4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_svc_v4 SEC(".maps");

/* (service id, generation, slot) -> backend id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct shoal_slot_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_slot_v4 SEC(".maps");

/*
 * Backend id -> address and port; an id nobody uses is all zeros. An array, so that the
 * per-packet lookup is an inlined index rather than a hash walk.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 131072);
	__type(key, __u32);
	__type(value, struct shoal_backend_v4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_be_v4 SEC(".maps");

/* One Maglev table per Maglev service: backend ids. Sized per service (BPF_F_INNER_MAP). */
struct shoal_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16381);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_INNER_MAP);
};

/* Service id -> its Maglev table (replaced whole on every backend change). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct shoal_maglev_inner);
} shoal_maglev_v4 SEC(".maps");

/*
 * Conntrack, both directions of each translated flow (LRU: the oldest flows go first). Per-CPU
 * LRU lists (BPF_F_NO_COMMON_LRU): a new flow takes no global lock.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2000000);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct shoal_ct_key_v4);
	__type(value, struct shoal_ct_v4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_ct_v4 SEC(".maps");

/* Service id -> the frontend replies are translated back to. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct shoal_revnat_v4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_revnat_v4 SEC(".maps");

/* sessionAffinity ClientIP: (client, service id) -> backend and last use. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct shoal_affinity_key_v4);
	__type(value, struct shoal_affinity_v4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_affin_v4 SEC(".maps");

/* Packets and bytes per service id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct shoal_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_svc_stats SEC(".maps");

/* Packets and bytes per backend id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 131072);
	__type(key, __u32);
	__type(value, struct shoal_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_be_stats SEC(".maps");

/* Packets by reason (enum shoal_reason): drops, rejects, passes of unusual packets. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DR_MAX);
	__type(key, __u32);
	__type(value, struct shoal_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_stats SEC(".maps");

/* Socket LB reverse translation for recvmsg and getpeername. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct shoal_sock_key_v4);
	__type(value, struct shoal_sock_v4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_sk_v4 SEC(".maps");

/* Service id -> name, kept for a restarted loader; the programs never read it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct shoal_svc_name);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_svc_names SEC(".maps");

/* ifindex -> ATTACH_* bits: where this node's programs are attached (loader bookkeeping). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_attach SEC(".maps");

/* The loader's record (struct shoal_meta): ABI version and program build; never read here. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shoal_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shoal_meta SEC(".maps");

static __always_inline void count(void *map, __u32 idx, __u32 bytes)
{
	struct shoal_counter *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline void count_reason(enum shoal_reason r, __u32 bytes)
{
	count(&shoal_stats, r, bytes);
}

#endif
