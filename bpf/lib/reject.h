/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rejecting a connection to a Service without a serving endpoint, as kube-proxy does: a TCP
 * packet is answered by an RST from the frontend, a UDP datagram by ICMP port unreachable.
 * The program first saves what the reply needs, resizes the packet (tc and XDP each have
 * their own helpers for that), then rewrites it in place here and sends it back out the
 * interface it came in on.
 */
#ifndef SHOAL_REJECT_H
#define SHOAL_REJECT_H

#include "parse.h"
#include "csum.h"

#define REJECT_TCP_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct tcphdr))
#define REJECT_ICMP_LEN (sizeof(struct ethhdr) + 2 * sizeof(struct iphdr) + 16)
#define ICMP_PORT_UNREACH 3

struct reject_info {
	__u8 src_mac[ETH_ALEN], dst_mac[ETH_ALEN];
	__be32 saddr, daddr;
	__be16 sport, dport;
	__be32 seq, ack_seq;
	__u32 seg_len; /* TCP: payload plus SYN and FIN */
	__u8 tcp_flags;
	__u8 proto;
	__u8 orig[28]; /* UDP: the original IP header and 8 bytes of UDP, for the ICMP error */
};

static __always_inline int reject_save(const struct pkt_v4 *p, void *data_end,
				       struct reject_info *r)
{
	__builtin_memcpy(r->src_mac, p->eth->h_source, ETH_ALEN);
	__builtin_memcpy(r->dst_mac, p->eth->h_dest, ETH_ALEN);
	r->saddr = p->saddr;
	r->daddr = p->daddr;
	r->sport = p->sport;
	r->dport = p->dport;
	r->proto = p->proto;
	r->tcp_flags = p->tcp_flags;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = p->l4;

		if ((void *)(tcp + 1) > data_end)
			return -1;
		r->seq = tcp->seq;
		r->ack_seq = tcp->ack_seq;
		r->seg_len = p->tot_len - sizeof(struct iphdr) - tcp->doff * 4;
		if (p->tcp_flags & TCP_SYN)
			r->seg_len++;
		if (p->tcp_flags & TCP_FIN)
			r->seg_len++;
	} else {
		if ((void *)p->ip + sizeof(r->orig) > data_end)
			return -1;
		__builtin_memcpy(r->orig, p->ip, sizeof(r->orig));
	}
	return 0;
}

static __always_inline void reject_ip(struct iphdr *ip, const struct reject_info *r, __u8 proto,
				      __u16 tot_len)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(tot_len);
	ip->id = 0;
	ip->frag_off = bpf_htons(0x4000); /* DF */
	ip->ttl = 64;
	ip->protocol = proto;
	ip->saddr = r->daddr;
	ip->daddr = r->saddr;
	ip->check = ip_csum_full(ip);
}

/* Writes the RST into a packet of exactly REJECT_TCP_LEN bytes. */
static __always_inline int reject_build_tcp(void *data, void *data_end, const struct reject_info *r)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);
	__u16 *w = (__u16 *)tcp;
	__u64 s = 0;

	if ((void *)(tcp + 1) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, r->src_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, r->dst_mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	reject_ip(ip, r, IPPROTO_TCP, sizeof(*ip) + sizeof(*tcp));
	__builtin_memset(tcp, 0, sizeof(*tcp));
	tcp->source = r->dport;
	tcp->dest = r->sport;
	tcp->doff = 5;
	if (r->tcp_flags & TCP_ACK) {
		tcp->seq = r->ack_seq; /* RFC 793: <SEQ=SEG.ACK><CTL=RST> */
		tcp->rst = 1;
	} else {
		tcp->ack_seq = bpf_htonl(bpf_ntohl(r->seq) + r->seg_len);
		tcp->rst = 1;
		tcp->ack = 1;
	}
	s = (r->daddr & 0xffff) + (r->daddr >> 16) + (r->saddr & 0xffff) + (r->saddr >> 16) +
	    bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(*tcp));
#pragma unroll
	for (int i = 0; i < 10; i++)
		s += w[i];
	tcp->check = ~csum_fold(s);
	return 0;
}

/* Writes the ICMP port unreachable into a packet of exactly REJECT_ICMP_LEN bytes. */
static __always_inline int reject_build_icmp(void *data, void *data_end,
					     const struct reject_info *r)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u8 *icmp = (void *)(ip + 1);
	__u16 *w = (__u16 *)icmp;
	__u64 s = 0;

	if ((void *)(icmp + 8 + sizeof(r->orig)) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, r->src_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, r->dst_mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	reject_ip(ip, r, IPPROTO_ICMP, sizeof(*ip) + 8 + sizeof(r->orig));
	icmp[0] = ICMP_DEST_UNREACH;
	icmp[1] = ICMP_PORT_UNREACH;
	icmp[2] = icmp[3] = 0;
	icmp[4] = icmp[5] = icmp[6] = icmp[7] = 0;
	__builtin_memcpy(icmp + 8, r->orig, sizeof(r->orig));
#pragma unroll
	for (int i = 0; i < 18; i++)
		s += w[i];
	w[1] = ~csum_fold(s);
	return 0;
}

#endif
