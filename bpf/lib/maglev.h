/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Maglev lookup: the flow's 5-tuple hash indexes the service's table (built by the loader,
 * dataplane/dp_maglev.c), whose entries are backend ids. The same tuple maps to the same
 * backend on every node, and a backend change moves only about 1/N of the flows.
 */
#ifndef SHOAL_MAGLEV_H
#define SHOAL_MAGLEV_H

#include "shoal_abi.h"
#include "parse.h"

static __always_inline __u32 mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 flow_hash_v4(const struct pkt_v4 *p)
{
	__u32 h = 0x5ead1u;

	h = mix32(h ^ p->saddr);
	h = mix32(h ^ p->daddr);
	h = mix32(h ^ (((__u32)p->sport << 16) | p->dport));
	h = mix32(h ^ p->proto);
	return h;
}

/* Backend id for the flow, or 0 when the service has no table. */
static __always_inline __u32 maglev_pick(const struct shoal_svc_v4 *svc, const struct pkt_v4 *p)
{
	__u32 id = svc->id, idx, *be;
	void *table;

	if (!svc->maglev_size)
		return 0;
	table = bpf_map_lookup_elem(&shoal_maglev_v4, &id);
	if (!table)
		return 0;
	idx = flow_hash_v4(p) % svc->maglev_size;
	be = bpf_map_lookup_elem(table, &idx);
	return be ? *be : 0;
}

#endif
