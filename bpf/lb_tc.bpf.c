// SPDX-License-Identifier: GPL-2.0
/*
 * tc (clsact ingress) service load balancing, for traffic the socket hooks do not see:
 * attached to the host side of every pod veth (lb_tc_pod: east-west, internalTrafficPolicy)
 * and to the node's uplink (lb_tc_uplink: north-south, externalTrafficPolicy, Maglev, SNAT to
 * other nodes; it also serves where XDP is not attached). DNAT of new flows, conntrack,
 * reverse NAT of replies. The L4 checksum goes through bpf_l4_csum_replace because an skb's
 * L4 checksum may be CHECKSUM_PARTIAL (a pod's own packet) and only the kernel knows; where
 * the kernel lets a program read the skb itself (the bpf_cast_to_kern_ctx kfunc, Linux 6.2),
 * the _kc variants of the programs look at skb->ip_summed and update a complete checksum
 * (CHECKSUM_NONE or CHECKSUM_UNNECESSARY) in place, as XDP does, saving two helper calls.
 * The loader loads one pair or the other, from what the kernel's BTF offers.
 */
#include "lib/common.h"
#include <bpf/bpf_core_read.h>
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/ct.h"
#include "lib/maglev.h"
#include "lib/lb.h"
#include "lib/icmp.h"
#include "lib/reject.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * Linux 6.2+. Weak: where the kernel lacks it, libbpf resolves it to 0 and the object still
 * loads, as long as the programs that call it (the _kc ones) are not loaded (the loader
 * turns their autoload off); a kernel without it would refuse them.
 */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;

/* skb->ip_summed (include/linux/skbuff.h). */
#define CHECKSUM_NONE 0
#define CHECKSUM_UNNECESSARY 1


/*
 * Verifier workaround: the verifier only accepts skb->data and skb->data_end as loads at a
 * constant offset from the context register, but clang hoists `ctx + offset` into a register
 * when the field is read twice ("dereference of modified ctx ptr"). One asm load each.
 */
static __always_inline void *skb_data(struct __sk_buff *skb)
{
	void *p;

	asm volatile("%0 = *(u32 *)(%1 + %2)"
		     : "=r"(p)
		     : "r"(skb), "i"(offsetof(struct __sk_buff, data)));
	return p;
}

static __always_inline void *skb_data_end(struct __sk_buff *skb)
{
	void *p;

	asm volatile("%0 = *(u32 *)(%1 + %2)"
		     : "=r"(p)
		     : "r"(skb), "i"(offsetof(struct __sk_buff, data_end)));
	return p;
}

/*
 * Rewrites the packet per the plan. Addresses and ports are written in place and the IPv4
 * checksum is updated here (no skb state depends on it); the L4 checksum goes through the
 * kernel, which alone knows whether it is complete or partial: one call for what the
 * pseudo-header covers (the addresses), one for the ports. Packet pointers in p are stale
 * afterwards.
 */
/* Whether the skb's L4 checksum is complete in the packet and nothing else covers it. */
static __always_inline bool tc_csum_in_packet(struct __sk_buff *skb)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	__u8 summed = BPF_CORE_READ_BITFIELD(kskb, ip_summed);

	return summed == CHECKSUM_NONE || summed == CHECKSUM_UNNECESSARY;
}

static __always_inline int tc_rewrite(struct __sk_buff *skb, const struct pkt_v4 *p,
				      const struct nat_plan *pl, bool kctx)
{
	__u64 l4flags = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 addr_diff, port_diff;

	nat_write(p, pl, &addr_diff, &port_diff);
	if (kctx && tc_csum_in_packet(skb)) {
		/* The pseudo-header (addresses) and the ports alike: one difference. */
		if (addr_diff || port_diff)
			l4_csum_add(p->l4_check, p->proto, csum_add32(addr_diff, port_diff));
		return 0;
	}
	if (addr_diff) {
		if (bpf_l4_csum_replace(skb, p->l4_csum_off, 0, addr_diff,
					l4flags | BPF_F_PSEUDO_HDR))
			return -1;
	}
	if (port_diff && bpf_l4_csum_replace(skb, p->l4_csum_off, 0, port_diff, l4flags))
		return -1;
	return 0;
}

/* Rewrites the IPv4 header's length fields after the DSR option went in or out. */
static __always_inline int tc_fix_ip(struct __sk_buff *skb, __u8 ihl, int delta)
{
	struct iphdr ip;
	__u16 *w = (__u16 *)&ip;
	__u64 s = 0;

	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), &ip, sizeof(ip)))
		return -1;
	ip.ihl = ihl;
	ip.tot_len = bpf_htons(bpf_ntohs(ip.tot_len) + delta);
	ip.check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		s += w[i];
	if (ihl == 7) {
		struct dsr_opt o;
		__u16 *ow = (__u16 *)&o;

		if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + sizeof(ip), &o, sizeof(o)))
			return -1;
#pragma unroll
		for (int i = 0; i < 4; i++)
			s += ow[i];
	}
	ip.check = ~csum_fold(s);
	return bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &ip, sizeof(ip), 0) ? -1 : 0;
}

/* Direct server return, sending end: the frontend rides along in an IPv4 option. */
static __always_inline int tc_dsr_insert(struct __sk_buff *skb, __be32 fe_addr, __be16 fe_port)
{
	struct dsr_opt o = { .type = DSR_OPT_TYPE, .len = DSR_OPT_LEN, .port = fe_port,
			     .addr = fe_addr };

	/* BPF_ADJ_ROOM_NET opens room right after the base 20-byte IPv4 header. */
	if (bpf_skb_adjust_room(skb, sizeof(o), BPF_ADJ_ROOM_NET, 0) ||
	    bpf_skb_store_bytes(skb, sizeof(struct ethhdr) + sizeof(struct iphdr), &o, sizeof(o), 0))
		return -1;
	return tc_fix_ip(skb, 7, sizeof(o));
}

static __always_inline int tc_dsr_strip(struct __sk_buff *skb)
{
	if (bpf_skb_adjust_room(skb, -(int)sizeof(struct dsr_opt), BPF_ADJ_ROOM_NET, 0))
		return -1;
	return tc_fix_ip(skb, 5, -(int)sizeof(struct dsr_opt));
}

static __always_inline int tc_reject(struct __sk_buff *skb, const struct pkt_v4 *p)
{
	struct reject_info r = {};
	void *data, *data_end;
	int err;

	if (reject_save(p, skb_data_end(skb), &r))
		return -1;
	if (r.proto == IPPROTO_TCP) {
		if (r.tcp_flags & TCP_RST)
			return -1;
		if (bpf_skb_change_tail(skb, REJECT_TCP_LEN, 0))
			return -1;
		data = skb_data(skb);
		data_end = skb_data_end(skb);
		err = reject_build_tcp(data, data_end, &r);
	} else {
		/* Keep the IP and UDP headers, then open room for the new IP + ICMP headers. */
		if (bpf_skb_change_tail(skb, sizeof(struct ethhdr) + sizeof(r.orig), 0) ||
		    bpf_skb_adjust_room(skb, sizeof(struct iphdr) + 8, BPF_ADJ_ROOM_MAC, 0))
			return -1;
		data = skb_data(skb);
		data_end = skb_data_end(skb);
		err = reject_build_icmp(data, data_end, &r);
	}
	return err;
}

/* What must be linear: a reject's headers, an ICMP error's quote up to its TCP checksum. */
#define TC_LINEAR_LEN (sizeof(struct ethhdr) + 2 * sizeof(struct iphdr) + 8 + 18)

static __always_inline int tc_lb(struct __sk_buff *skb, bool external, bool kctx)
{
	struct nat_plan pl = {};
	struct pkt_v4 p = {};
	void *data, *data_end;
	__u32 want = TC_LINEAR_LEN;
	int cls, v;

	/* Headers must be in the linear part for direct access. */
	if (skb->len < want)
		want = skb->len;
	if (skb_data_end(skb) - skb_data(skb) < want && bpf_skb_pull_data(skb, want))
		return TC_ACT_OK;
	data = skb_data(skb);
	data_end = skb_data_end(skb);

	cls = parse_v4(data, data_end, skb->len, &p);
	switch (cls) {
	case PARSE_OK:
		break;
	case PARSE_NOT_IPV4:
		return TC_ACT_OK;
	case PARSE_OTHER_L4:
		/* An ICMP error about a translated flow, rewritten for its receiver. */
		if (lb_icmp_error(&p, data_end, &pl) != LB_XLATE)
			return TC_ACT_OK;
		count_reason(DR_OK, p.tot_len);
		if (pl.reply && pl.ifindex)
			return bpf_redirect_neigh(pl.ifindex, NULL, 0, 0);
		return TC_ACT_OK;
	case PARSE_FRAGMENT:
		count_reason(DR_FRAGMENT, skb->len);
		return TC_ACT_OK;
	case PARSE_IP_OPTIONS:
		count_reason(DR_IP_OPTIONS, skb->len);
		return TC_ACT_OK;
	default:
		count_reason(DR_MALFORMED, skb->len);
		return TC_ACT_SHOT;
	}

	if (p.dsr) {
		__be32 fe_addr = p.dsr->addr;
		__be16 fe_port = p.dsr->port;

		lb_dsr_learn(&p, fe_addr, fe_port, skb->ifindex);
		if (tc_dsr_strip(skb)) {
			count_reason(DR_MALFORMED, p.tot_len);
			return TC_ACT_SHOT;
		}
		count_reason(DR_OK, p.tot_len);
		return TC_ACT_OK;
	}

	v = lb_v4(&p, external, false, skb->ifindex, &pl);
	switch (v) {
	case LB_XLATE:
		if (tc_rewrite(skb, &p, &pl, kctx)) {
			count_reason(DR_CSUM, p.tot_len);
			return TC_ACT_SHOT;
		}
		count_reason(DR_OK, p.tot_len);
		if (pl.dsr && !pl.reply && tc_dsr_insert(skb, p.daddr, p.dport)) {
			count_reason(DR_CSUM, p.tot_len);
			return TC_ACT_SHOT;
		}
		/*
		 * A reply goes straight back out the interface its flow came in on: its source
		 * is now the frontend, which may be this node's own address (NodePort), and the
		 * stack would drop such a packet as a martian if it were routed.
		 */
		if (pl.reply && pl.ifindex)
			return bpf_redirect_neigh(pl.ifindex, NULL, 0, 0);
		/* Hairpin: straight back into the pod it came from. */
		if (pl.hairpin)
			return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
		return TC_ACT_OK;
	case LB_REJECT:
		count_reason(DR_NO_BACKEND, p.tot_len);
		if (tc_reject(skb, &p)) {
			count_reason(DR_REJECT_FAILED, p.tot_len);
			return TC_ACT_SHOT;
		}
		return bpf_redirect(skb->ifindex, 0);
	case LB_DROP:
		count_reason(pl.reason, p.tot_len);
		return TC_ACT_SHOT;
	default:
		return TC_ACT_OK;
	}
}

SEC("tc")
int lb_tc_pod(struct __sk_buff *skb)
{
	return tc_lb(skb, false, false);
}

SEC("tc")
int lb_tc_uplink(struct __sk_buff *skb)
{
	return tc_lb(skb, true, false);
}

/* The same with the checksum read from the skb (bpf_cast_to_kern_ctx): see the top. */
SEC("tc")
int lb_tc_pod_kc(struct __sk_buff *skb)
{
	return tc_lb(skb, false, true);
}

SEC("tc")
int lb_tc_uplink_kc(struct __sk_buff *skb)
{
	return tc_lb(skb, true, true);
}
