/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Service conntrack. Every translated flow has two entries in shoal_ct_v4, in one key space:
 * the forward one, keyed by the packet as the client sends it, remembers the backend (so a
 * flow stays on its backend while the backend set changes, until that backend is gone); the
 * reply one, keyed by the packet as the backend sends it back, says what to restore. Any
 * packet of a known flow thus takes one lookup. Entries carry their own deadline: an expired
 * entry counts as a miss, and the LRU evicts the oldest under pressure.
 */
#ifndef SHOAL_CT_H
#define SHOAL_CT_H

#include "shoal_abi.h"
#include "parse.h"

#define NSEC_PER_SEC 1000000000ULL
#define CT_TIMEOUT_TCP (6 * 3600ULL * NSEC_PER_SEC) /* established TCP */
#define CT_TIMEOUT_TCP_SYN (60ULL * NSEC_PER_SEC) /* TCP without a reply yet */
#define CT_TIMEOUT_TCP_CLOSE (10ULL * NSEC_PER_SEC) /* after FIN or RST */
#define CT_TIMEOUT_UDP (60ULL * NSEC_PER_SEC)

/*
 * The data plane's clock, in nanoseconds: jiffies since boot times the tick. bpf_jiffies64()
 * is inlined by the verifier into one load, where bpf_ktime_get_coarse_ns() is a helper
 * call (~20 ns a packet); both advance once a tick. It trails the coarse monotonic clock by a
 * constant set at boot (a fraction of a second), which is all that changes for the deadlines
 * in entries written by programs that still read that clock. Set by the loader before load:
 * the tick (clock_getres(CLOCK_MONOTONIC_COARSE)) and the kernel's INITIAL_JIFFIES.
 */
volatile const __u64 ns_per_jiffy = 0;
volatile const __u64 initial_jiffies = 0;

static __always_inline __u64 dp_now(void)
{
	return (bpf_jiffies64() - initial_jiffies) * ns_per_jiffy;
}

/* The key of the entry a packet's own tuple finds (forward or reply). */
static __always_inline void ct_key(struct shoal_ct_key_v4 *k, const struct pkt_v4 *p)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = p->saddr;
	k->daddr = p->daddr;
	k->sport = p->sport;
	k->dport = p->dport;
	k->proto = p->proto;
}

static __always_inline __u64 ct_timeout(const struct shoal_ct_v4 *e, __u8 proto)
{
	if (proto != IPPROTO_TCP)
		return CT_TIMEOUT_UDP;
	if (e->flags & CT_F_CLOSING)
		return CT_TIMEOUT_TCP_CLOSE;
	if (!(e->flags & CT_F_SEEN_REPLY))
		return CT_TIMEOUT_TCP_SYN;
	return CT_TIMEOUT_TCP;
}

/*
 * The deadline is written at most once a second per entry (and whenever the flags change,
 * which may shorten it): a write on every packet would dirty the entry's cache line, and
 * bounce it between CPUs, for a deadline that moves by nanoseconds.
 */
#define CT_REFRESH_NS NSEC_PER_SEC

/*
 * Looks up an entry and refreshes it (a reply entry notes that the flow has seen a reply);
 * NULL when absent or expired. *old_flags gets the flags the entry had before this packet.
 */
static __always_inline struct shoal_ct_v4 *ct_lookup(struct shoal_ct_key_v4 *k,
						     const struct pkt_v4 *p, __u8 *old_flags)
{
	struct shoal_ct_v4 *e = bpf_map_lookup_elem(&shoal_ct_v4, k);
	__u64 now, deadline;
	__u8 flags;

	if (!e)
		return NULL;
	now = dp_now();
	if (e->expires < now)
		return NULL;
	flags = e->flags;
	*old_flags = flags;
	if (e->dir == CT_DIR_REPLY)
		flags |= CT_F_SEEN_REPLY;
	if (p->tcp_flags & (TCP_FIN | TCP_RST))
		flags |= CT_F_CLOSING;
	if (flags != e->flags) {
		e->flags = flags;
		e->expires = now + ct_timeout(e, p->proto);
		return e;
	}
	deadline = now + ct_timeout(e, p->proto);
	if (deadline > e->expires + CT_REFRESH_NS)
		e->expires = deadline;
	return e;
}

/* Writes an entry; now: the caller's dp_now() (one clock read per packet). */
static __always_inline int ct_create(struct shoal_ct_key_v4 *k, struct shoal_ct_v4 *e, __u8 proto,
				     __u64 now)
{
	e->expires = now + ct_timeout(e, proto);
	return bpf_map_update_elem(&shoal_ct_v4, k, e, BPF_ANY);
}

#endif
