// SPDX-License-Identifier: GPL-2.0
/*
 * XDP service load balancing on the node's uplink, for traffic from outside the node:
 * NodePort, external and LoadBalancer IPs (and ClusterIPs routed to this node). A new flow
 * gets a backend by Maglev (the same choice on every node); to a local backend the packet is
 * translated and passed up to be routed into the pod; to a backend on another node it is also
 * SNATed to the node address, so that replies come back here, and sent back out the uplink
 * when the FIB says so (else passed to the stack, which forwards it). Replies of translated
 * flows are reverse-translated here before the stack sees them. The packet is written
 * directly, with checksums updated incrementally (csum.h): on the wire they are complete.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/ct.h"
#include "lib/maglev.h"
#include "lib/lb.h"
#include "lib/icmp.h"
#include "lib/reject.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2

/*
 * Rewrites addresses and ports per the plan. The checksums take one update each: the
 * addresses' difference for the IPv4 header, the addresses' and ports' for the L4 one.
 */
static __always_inline void xdp_rewrite(struct pkt_v4 *p, const struct nat_plan *pl)
{
	__u32 addr_diff, port_diff, diff;

	nat_write(p, pl, &addr_diff, &port_diff);
	diff = csum_add32(addr_diff, port_diff);
	if (diff)
		l4_csum_add(p->l4_check, p->proto, diff);
}

/*
 * Sends a translated packet straight back out. The reply of a flow that came in through XDP
 * goes to the neighbour the flow's first packet came from, out of the interface it came in
 * on (pl->l2: no FIB lookup per packet); anything else goes where the FIB says, when the FIB
 * knows the neighbour (else it is passed to the stack, which forwards it).
 */
static __always_inline int xdp_forward(struct xdp_md *ctx, const struct nat_plan *pl)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib = {};
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 oif;
	int rc;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	if (ip->ttl <= 1)
		return XDP_PASS;
	if (pl->l2) {
		__builtin_memcpy(eth->h_dest, pl->l2_dst, ETH_ALEN);
		__builtin_memcpy(eth->h_source, pl->l2_src, ETH_ALEN);
		oif = pl->ifindex;
	} else {
		fib.family = AF_INET;
		fib.tos = ip->tos;
		fib.l4_protocol = ip->protocol;
		fib.tot_len = bpf_ntohs(ip->tot_len);
		fib.ipv4_src = ip->saddr;
		fib.ipv4_dst = ip->daddr;
		fib.ifindex = ctx->ingress_ifindex;
		rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS)
			return XDP_PASS; /* no route or no neighbour yet: the stack forwards */
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		oif = fib.ifindex;
	}
	csum_replace2((__u16 *)&ip->check, bpf_htons((__u16)ip->ttl << 8),
		      bpf_htons((__u16)(ip->ttl - 1) << 8));
	ip->ttl--;
	if (oif == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(oif, 0);
}

#define L2L3 (sizeof(struct ethhdr) + sizeof(struct iphdr))

/* Direct server return, sending end: opens 8 bytes after the IPv4 header for the option. */
static __always_inline int xdp_dsr_insert(struct xdp_md *ctx, __be32 fe_addr, __be16 fe_port)
{
	void *data, *data_end;
	struct dsr_opt *o;
	struct iphdr *ip;
	__u8 hdr[L2L3];

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct dsr_opt)))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + sizeof(struct dsr_opt) + L2L3 > data_end)
		return -1;
	__builtin_memcpy(hdr, data + sizeof(struct dsr_opt), L2L3);
	__builtin_memcpy(data, hdr, L2L3);
	ip = data + sizeof(struct ethhdr);
	o = data + L2L3;
	o->type = DSR_OPT_TYPE;
	o->len = DSR_OPT_LEN;
	o->port = fe_port;
	o->addr = fe_addr;
	ip->ihl = 7;
	ip->tot_len = bpf_htons(bpf_ntohs(ip->tot_len) + sizeof(struct dsr_opt));
	ip->check = ip_csum_full28(ip);
	return 0;
}

/* Direct server return, receiving end: takes the option out again. */
static __always_inline int xdp_dsr_strip(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip;
	__u8 hdr[L2L3];

	if (data + L2L3 + sizeof(struct dsr_opt) > data_end)
		return -1;
	__builtin_memcpy(hdr, data, L2L3);
	__builtin_memcpy(data + sizeof(struct dsr_opt), hdr, L2L3);
	if (bpf_xdp_adjust_head(ctx, sizeof(struct dsr_opt)))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip = data + sizeof(struct ethhdr);
	if ((void *)(ip + 1) > data_end)
		return -1;
	ip->ihl = 5;
	ip->tot_len = bpf_htons(bpf_ntohs(ip->tot_len) - sizeof(struct dsr_opt));
	ip->check = ip_csum_full(ip);
	return 0;
}

static __always_inline int xdp_reject(struct xdp_md *ctx, const struct pkt_v4 *p)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	int len = data_end - data;
	struct reject_info r = {};

	if (reject_save(p, data_end, &r))
		return -1;
	if (r.proto == IPPROTO_TCP) {
		if (r.tcp_flags & TCP_RST)
			return -1;
		if (bpf_xdp_adjust_tail(ctx, (int)REJECT_TCP_LEN - len))
			return -1;
		return reject_build_tcp((void *)(long)ctx->data, (void *)(long)ctx->data_end, &r);
	}
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(struct ethhdr) + sizeof(r.orig)) - len) ||
	    bpf_xdp_adjust_head(ctx, -(int)(sizeof(struct iphdr) + 8)))
		return -1;
	return reject_build_icmp((void *)(long)ctx->data, (void *)(long)ctx->data_end, &r);
}

SEC("xdp")
int lb_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct nat_plan pl = {};
	struct pkt_v4 p = {};
	int cls, v;

	cls = parse_v4(data, data_end, data_end - data, &p);
	switch (cls) {
	case PARSE_OK:
		break;
	case PARSE_NOT_IPV4:
		return XDP_PASS;
	case PARSE_OTHER_L4:
		/* An ICMP error about a translated flow, rewritten for its receiver. */
		if (lb_icmp_error(&p, data_end, &pl) != LB_XLATE)
			return XDP_PASS;
		count_reason(DR_OK, p.tot_len);
		return pl.reply ? xdp_forward(ctx, &pl) : XDP_PASS;
	case PARSE_FRAGMENT:
		count_reason(DR_FRAGMENT, data_end - data);
		return XDP_PASS;
	case PARSE_IP_OPTIONS:
		count_reason(DR_IP_OPTIONS, data_end - data);
		return XDP_PASS;
	default:
		count_reason(DR_MALFORMED, data_end - data);
		return XDP_DROP;
	}

	if (p.dsr) {
		/* For a backend here, sent by another node's shoal with direct server return. */
		__be32 fe_addr = p.dsr->addr;
		__be16 fe_port = p.dsr->port;

		lb_dsr_learn(&p, fe_addr, fe_port, ctx->ingress_ifindex);
		if (xdp_dsr_strip(ctx)) {
			count_reason(DR_MALFORMED, p.tot_len);
			return XDP_DROP;
		}
		count_reason(DR_OK, p.tot_len);
		return XDP_PASS;
	}

	v = lb_v4(&p, true, true, ctx->ingress_ifindex, &pl);
	switch (v) {
	case LB_XLATE:
		xdp_rewrite(&p, &pl);
		count_reason(DR_OK, p.tot_len);
		if (pl.dsr && !pl.reply) {
			if (xdp_dsr_insert(ctx, p.daddr, p.dport))
				return XDP_DROP;
			return xdp_forward(ctx, &pl);
		}
		/*
		 * To another node, and replies (whose source may now be this node's own
		 * address, which the stack would drop as a martian): forwarded here.
		 */
		if (pl.reply || (!pl.local && pl.snat))
			return xdp_forward(ctx, &pl);
		return XDP_PASS;
	case LB_REJECT:
		count_reason(DR_NO_BACKEND, p.tot_len);
		if (xdp_reject(ctx, &p)) {
			count_reason(DR_REJECT_FAILED, p.tot_len);
			return XDP_DROP;
		}
		return XDP_TX;
	case LB_DROP:
		count_reason(pl.reason, p.tot_len);
		return XDP_DROP;
	default:
		return XDP_PASS;
	}
}
