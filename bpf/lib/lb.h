/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The service load-balancing decision shared by the XDP and tc programs: conntrack (one
 * lookup settles a packet of a known flow, either way: its backend, or the reverse NAT of a
 * reply), then for a packet of no known flow the frontend lookup, backend choice (session
 * affinity, Maglev for north-south, random for east-west, local-only policies, terminating
 * endpoints as a last resort) and SNAT for north-south traffic to another node. It returns a
 * plan; rewriting the packet is the attach point's business, since XDP writes memory and tc
 * must leave part of the checksum work to the kernel.
 *
 * An established flow keeps its backend for as long as that backend is programmed (in any
 * service), even once its own service is gone, as the kernel's conntrack keeps a translated
 * connection after kube-proxy's rules went; a flow whose backend went is chosen anew, or
 * passed untranslated when its frontend went too.
 */
#ifndef SHOAL_LB_H
#define SHOAL_LB_H

#include "shoal_abi.h"
#include "parse.h"
#include "csum.h"
#include "ct.h"
#include "maglev.h"

/* Set by the loader before load. */
volatile const __be32 node_addr = 0; /* SNAT source for north-south to other nodes */
volatile const __u16 snat_port_min = 61000;
volatile const __u16 snat_port_max = 65535;
volatile const __u8 snat_remote = 1; /* north-south to a remote backend: SNAT (else pass) */
/*
 * Hairpin: a pod whose service flow lands on itself. Its packet is SNATed to this address
 * (link-local, never a pod's), so the pod answers a peer other than itself and the answer comes
 * back through the node to be reverse-translated; 0 disables it.
 */
volatile const __be32 hairpin_addr = 0;

enum lb_verdict {
	LB_PASS = 0, /* not a service packet: leave it alone */
	LB_XLATE, /* rewrite per the plan */
	LB_REJECT, /* service without a serving endpoint: reply RST / ICMP unreachable */
	LB_DROP, /* counted drop */
};

struct nat_plan {
	__be32 saddr, daddr; /* addresses and ports after translation */
	__be16 sport, dport;
	__u32 svc_id;
	__u32 be_id;
	__u8 reply; /* a reverse translation */
	__u8 snat;
	__u8 local; /* forward: the backend is on this node */
	__u8 dsr; /* forward: to another node by direct server return (carry the frontend) */
	__u8 hairpin; /* forward: the backend is the client itself (SNATed to hairpin_addr) */
	__u32 ifindex; /* reply: where the flow's first packet came in (send the reply back out) */
	enum shoal_reason reason; /* with LB_DROP */
	__u8 l2; /* reply: l2_dst and l2_src are known (the flow came in through XDP) */
	__u8 l2_dst[6], l2_src[6];
};

/*
 * Writes the plan's addresses and ports into the packet, the IPv4 header's checksum updated,
 * and gives what the L4 checksum must take: *addr_diff for the pseudo-header's addresses and
 * *port_diff for the ports (each 0 when nothing changed). tc and XDP apply those differently.
 */
static __always_inline void nat_write(const struct pkt_v4 *p, const struct nat_plan *pl,
				      __u32 *addr_diff, __u32 *port_diff)
{
	__u32 old_ports = ((__u32)p->dport << 16) | p->sport;
	__u32 new_ports = ((__u32)pl->dport << 16) | pl->sport;
	struct iphdr *ip = p->ip;

	*addr_diff = 0;
	*port_diff = 0;
	if (p->saddr != pl->saddr) {
		*addr_diff = csum_add32(*addr_diff, ~p->saddr);
		*addr_diff = csum_add32(*addr_diff, pl->saddr);
		ip->saddr = pl->saddr;
	}
	if (p->daddr != pl->daddr) {
		*addr_diff = csum_add32(*addr_diff, ~p->daddr);
		*addr_diff = csum_add32(*addr_diff, pl->daddr);
		ip->daddr = pl->daddr;
	}
	if (old_ports != new_ports) {
		*port_diff = csum_add32(~old_ports, new_ports);
		*p->sport_p = pl->sport;
		*p->dport_p = pl->dport;
	}
	if (*addr_diff)
		csum_add_diff((__u16 *)&ip->check, *addr_diff);
}

/* lb_select: the record names a slot that is not there (no backend has this id). */
#define LB_BE_GONE 0xffffffffu

#define AFFINITY_NS(s) ((__u64)(s) * NSEC_PER_SEC)

/* The backend of an id; NULL for none (an unused array entry is all zeros). */
static __always_inline struct shoal_backend_v4 *lb_backend(__u32 id)
{
	struct shoal_backend_v4 *be = bpf_map_lookup_elem(&shoal_be_v4, &id);

	return be && be->addr ? be : NULL;
}

/* Picks a backend for a new flow; 0 when the service has none that may serve it. */
static __always_inline __u32 lb_select(const struct shoal_svc_v4 *svc, const struct pkt_v4 *p,
				       bool external)
{
	bool local_only = (svc->flags & (external ? SVC_F_ETP_LOCAL : SVC_F_ITP_LOCAL)) != 0;
	struct shoal_slot_key sk = {};
	__u32 n, base = 0, *be, id;

	if (svc->flags & SVC_F_AFFINITY) {
		struct shoal_affinity_key_v4 ak = { .client = p->saddr, .svc_id = svc->id };
		struct shoal_affinity_v4 *a = bpf_map_lookup_elem(&shoal_affin_v4, &ak);

		/* Signed: a note written on a clock a little ahead (an older build) is fresh. */
		if (a && (__s64)(dp_now() - a->last_used) <= (__s64)AFFINITY_NS(svc->affinity_timeout) &&
		    lb_backend(a->backend_id))
			return a->backend_id;
	}

	n = local_only ? svc->n_local : svc->n_ready;
	if (n == 0) {
		n = local_only ? svc->n_term_local : svc->n_term;
		base = svc->n_ready;
	}
	if (n == 0)
		return 0;
	/* The loader builds the Maglev table over the same set that the prefix choice selects. */
	if (external && (svc->flags & SVC_F_MAGLEV)) {
		id = maglev_pick(svc, p);
		if (id)
			return id;
	}
	sk.svc_id = svc->id;
	sk.gen = svc->gen;
	sk.slot = base + bpf_get_prandom_u32() % n;
	be = bpf_map_lookup_elem(&shoal_slot_v4, &sk);
	/* A slot the record counts but the map lacks: a drop (retransmitted), not a reject. */
	return be ? *be : LB_BE_GONE;
}

static __always_inline void lb_affinity_note(const struct shoal_svc_v4 *svc,
					     const struct pkt_v4 *p, __u32 be_id, __u64 now)
{
	struct shoal_affinity_key_v4 ak = { .client = p->saddr, .svc_id = svc->id };
	struct shoal_affinity_v4 a = { .last_used = now, .backend_id = be_id };

	if (svc->flags & SVC_F_AFFINITY)
		bpf_map_update_elem(&shoal_affin_v4, &ak, &a, BPF_ANY);
}

/* Finds a free SNAT port for (backend, source address) in a bounded number of tries. */
static __always_inline int lb_snat_port(const struct pkt_v4 *p, const struct shoal_backend_v4 *be,
					__be32 snat_addr, __be16 *port)
{
	struct shoal_ct_key_v4 k = {
		.saddr = be->addr,
		.daddr = snat_addr,
		.sport = be->port,
		.proto = p->proto,
	};
	__u32 span = (__u32)snat_port_max - snat_port_min + 1;

	for (int i = 0; i < 8; i++) {
		__u16 cand = snat_port_min + bpf_get_prandom_u32() % span;

		k.dport = bpf_htons(cand);
		if (!bpf_map_lookup_elem(&shoal_ct_v4, &k)) {
			*port = k.dport;
			return 0;
		}
	}
	return -1;
}

/* The reply path: a packet of a translated flow coming back (e: its reply entry). */
static __always_inline int lb_reply(const struct pkt_v4 *p, const struct shoal_ct_v4 *e,
				    __u8 old_flags, struct nat_plan *pl)
{
	pl->reply = 1;
	pl->ifindex = e->ifindex;
	pl->svc_id = e->svc_id;
	pl->be_id = e->backend_id;
	pl->saddr = e->nat_addr;
	pl->sport = e->nat_port;
	pl->daddr = p->daddr;
	pl->dport = p->dport;
	pl->snat = (e->flags & CT_F_SNAT) != 0;
	if (pl->snat) {
		pl->daddr = e->snat_addr;
		pl->dport = e->snat_port;
	}
	if (e->l2_dst[0] | e->l2_dst[1] | e->l2_dst[2] | e->l2_dst[3] | e->l2_dst[4] |
	    e->l2_dst[5]) {
		pl->l2 = 1;
		__builtin_memcpy(pl->l2_dst, e->l2_dst, ETH_ALEN);
		__builtin_memcpy(pl->l2_src, e->l2_src, ETH_ALEN);
	}
	if (!(old_flags & CT_F_SEEN_REPLY)) {
		/* Promote the forward entry out of its short "no reply yet" timeout. */
		struct shoal_ct_key_v4 fk = {
			.saddr = pl->daddr,
			.daddr = pl->saddr,
			.sport = pl->dport,
			.dport = pl->sport,
			.proto = p->proto,
		};
		struct shoal_ct_v4 *f = bpf_map_lookup_elem(&shoal_ct_v4, &fk);

		if (f && f->dir == CT_DIR_FWD) {
			f->flags |= CT_F_SEEN_REPLY;
			f->expires = dp_now() + ct_timeout(f, p->proto);
		}
	}
	return LB_XLATE;
}

/*
 * The whole decision for one IPv4 TCP/UDP packet. `external` is true where traffic comes
 * from outside the node (the uplink): it selects externalTrafficPolicy, Maglev and SNAT.
 * `keep_l2` (XDP): a new flow's reply entry keeps the frame's Ethernet addresses.
 */
static __always_inline int lb_v4(const struct pkt_v4 *p, bool external, bool keep_l2,
				 __u32 ifindex, struct nat_plan *pl)
{
	struct shoal_svc_key_v4 sk = { .addr = p->daddr, .port = p->dport, .proto = p->proto };
	struct shoal_ct_key_v4 fk, rk;
	struct shoal_ct_v4 fe = {}, re = {}, *e;
	struct shoal_backend_v4 *be;
	struct shoal_svc_v4 *svc;
	__u32 be_id = 0;
	__u8 old_flags = 0;
	__u64 now;

	/*
	 * Conntrack first: a packet of a known flow, either direction, is settled by this one
	 * lookup (and the backend array); only a packet of no known flow looks at frontends.
	 */
	ct_key(&fk, p);
	e = ct_lookup(&fk, p, &old_flags);
	if (e && e->dir == CT_DIR_REPLY)
		return lb_reply(p, e, old_flags, pl);
	if (e) {
		be = lb_backend(e->backend_id);
		if (be && be->addr == e->nat_addr && be->port == e->nat_port) {
			pl->svc_id = e->svc_id;
			pl->be_id = e->backend_id;
			pl->saddr = p->saddr;
			pl->sport = p->sport;
			pl->daddr = e->nat_addr;
			pl->dport = e->nat_port;
			pl->local = (be->flags & BE_F_LOCAL) != 0;
			pl->dsr = (e->flags & CT_F_DSR) != 0;
			if (e->flags & CT_F_SNAT) {
				pl->snat = 1;
				pl->saddr = e->snat_addr;
				pl->sport = e->snat_port;
				pl->hairpin = !external && hairpin_addr && e->snat_addr == hairpin_addr;
			}
			count(&shoal_svc_stats, pl->svc_id, p->tot_len);
			count(&shoal_be_stats, pl->be_id, p->tot_len);
			return LB_XLATE;
		}
		/* Its backend is gone: the flow is chosen anew below, if its service is still there. */
	}

	svc = bpf_map_lookup_elem(&shoal_svc_v4, &sk);
	if (!svc)
		return LB_PASS;
	pl->svc_id = svc->id;
	count(&shoal_svc_stats, svc->id, p->tot_len);

	if (p->proto == IPPROTO_TCP && (p->tcp_flags & TCP_RST)) {
		pl->reason = DR_STRAY_RST; /* nothing to reset: an RST for an unknown flow */
		return LB_DROP;
	}

	be_id = lb_select(svc, p, external);
	be = lb_backend(be_id);
	if (!be) {
		pl->reason = be_id ? DR_BACKEND_GONE : DR_NO_BACKEND;
		return be_id ? LB_DROP : LB_REJECT;
	}

	pl->be_id = be_id;
	pl->saddr = p->saddr;
	pl->sport = p->sport;
	pl->daddr = be->addr;
	pl->dport = be->port;
	pl->local = (be->flags & BE_F_LOCAL) != 0;
	/* One clock read for the flow's entries and affinity. */
	now = dp_now();
	if (external && !pl->local && snat_remote && node_addr &&
	    !(svc->flags & (SVC_F_ETP_LOCAL | SVC_F_DSR))) {
		pl->snat = 1;
		pl->saddr = node_addr;
		if (lb_snat_port(p, be, node_addr, &pl->sport)) {
			pl->reason = DR_NO_SNAT_PORT;
			return LB_DROP;
		}
	}
	/*
	 * Hairpin: without SNAT the pod would get a packet from its own address (a martian it
	 * drops) and answer itself over its loopback, never through the node.
	 */
	if (!external && hairpin_addr && be->addr == p->saddr) {
		pl->snat = 1;
		pl->hairpin = 1;
		pl->saddr = hairpin_addr;
		if (lb_snat_port(p, be, hairpin_addr, &pl->sport)) {
			pl->reason = DR_NO_SNAT_PORT;
			return LB_DROP;
		}
	}

	/*
	 * Direct server return: the backend's node answers the client itself (its shoal learns
	 * the frontend from the IP option the packet carries), so there is no reply entry here.
	 */
	if (external && !pl->local && (svc->flags & SVC_F_DSR)) {
		pl->dsr = 1;
		fe.backend_id = be_id;
		fe.svc_id = svc->id;
		fe.nat_addr = pl->daddr;
		fe.nat_port = pl->dport;
		fe.flags = CT_F_DSR;
		fe.ifindex = ifindex;
		ct_create(&fk, &fe, p->proto, now);
		lb_affinity_note(svc, p, be_id, now);
		count(&shoal_be_stats, be_id, p->tot_len);
		return LB_XLATE;
	}

	/* The reply entry first: a reply can only come after the forward packet leaves. */
	__builtin_memset(&rk, 0, sizeof(rk));
	rk.saddr = pl->daddr;
	rk.daddr = pl->saddr;
	rk.sport = pl->dport;
	rk.dport = pl->sport;
	rk.proto = p->proto;
	re.dir = CT_DIR_REPLY;
	re.backend_id = be_id;
	re.svc_id = svc->id;
	re.nat_addr = p->daddr;
	re.nat_port = p->dport;
	re.ifindex = ifindex;
	if (keep_l2 && !(p->eth->h_dest[0] & 1)) {
		/*
		 * Sent back the way it came: to the neighbour it came from, from the address it
		 * came to (a frame unicast to this node).
		 */
		__builtin_memcpy(re.l2_dst, p->eth->h_source, ETH_ALEN);
		__builtin_memcpy(re.l2_src, p->eth->h_dest, ETH_ALEN);
	}
	if (pl->snat) {
		re.flags = CT_F_SNAT;
		re.snat_addr = p->saddr;
		re.snat_port = p->sport;
	}
	ct_create(&rk, &re, p->proto, now);

	fe.backend_id = be_id;
	fe.svc_id = svc->id;
	fe.nat_addr = pl->daddr;
	fe.nat_port = pl->dport;
	fe.ifindex = ifindex;
	if (pl->snat) {
		fe.flags = CT_F_SNAT;
		fe.snat_addr = pl->saddr;
		fe.snat_port = pl->sport;
	}
	ct_create(&fk, &fe, p->proto, now);
	lb_affinity_note(svc, p, be_id, now);
	count(&shoal_be_stats, be_id, p->tot_len);
	return LB_XLATE;
}

/*
 * The receiving end of direct server return: a packet that carries the frontend in a shoal
 * DSR option reaches a backend on this node; remember how to translate the backend's reply
 * back to the frontend (sent out where the request came in).
 */
static __always_inline void lb_dsr_learn(const struct pkt_v4 *p, __be32 fe_addr, __be16 fe_port,
					 __u32 ifindex)
{
	struct shoal_ct_key_v4 rk = {
		.saddr = p->daddr,
		.daddr = p->saddr,
		.sport = p->dport,
		.dport = p->sport,
		.proto = p->proto,
	};
	struct shoal_ct_v4 re = {
		.dir = CT_DIR_REPLY,
		.nat_addr = fe_addr,
		.nat_port = fe_port,
		.flags = CT_F_SEEN_REPLY,
		.ifindex = ifindex,
	};
	struct shoal_ct_v4 *e = bpf_map_lookup_elem(&shoal_ct_v4, &rk);
	__u64 now = dp_now();

	if (e && e->dir == CT_DIR_REPLY && e->nat_addr == fe_addr && e->nat_port == fe_port) {
		__u64 deadline = now + ct_timeout(e, p->proto);

		if (deadline > e->expires + CT_REFRESH_NS)
			e->expires = deadline;
		return;
	}
	ct_create(&rk, &re, p->proto, now);
}

#endif
