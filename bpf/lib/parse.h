/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packet parsing for the XDP and tc programs: Ethernet, IPv4, TCP/UDP, with a cursor and a
 * bounds check before every access. The outcome is a classification, not a verdict: the
 * program decides what a malformed or unusual packet means at its attach point.
 */
#ifndef SHOAL_PARSE_H
#define SHOAL_PARSE_H

#include "shoal_abi.h"

#define ETH_P_IP 0x0800
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define ETH_ALEN 6
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

/* Returned by the shared lb steps when the program should carry on: distinct from verdicts. */
#define DP_CONTINUE (-1)

enum parse_class {
	PARSE_OK = 0, /* IPv4 TCP or UDP with full headers: tuple filled */
	PARSE_NOT_IPV4, /* ARP, IPv6, VLAN-tagged, ...: not ours */
	PARSE_OTHER_L4, /* IPv4 but neither TCP nor UDP (ICMP, ...) */
	PARSE_FRAGMENT, /* IPv4 fragment: no ports to translate */
	PARSE_IP_OPTIONS, /* IPv4 header with options */
	PARSE_MALFORMED, /* truncated or inconsistent IPv4/L4 header */
};

struct pkt_v4 {
	struct ethhdr *eth;
	struct iphdr *ip;
	void *l4;
	__be16 *sport_p; /* where the ports are, for rewriting */
	__be16 *dport_p;
	__u16 *l4_check; /* the L4 checksum field */
	struct dsr_opt *dsr; /* shoal's DSR option, when the header carries it */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags; /* TCP: the flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) */
	__u16 l4_csum_off; /* offset of the L4 checksum from the start of the packet */
	__u16 l3_off;
	__u16 l4_off;
	__u16 tot_len; /* IPv4 total length */
};

/*
 * The DSR option: the frontend a packet was sent to, carried to the backend's node. Option
 * type 158 is RFC 4727's experimental option 30 with the copied flag (fragments keep it).
 */
#define DSR_OPT_TYPE 0x9e
#define DSR_OPT_LEN 8
struct dsr_opt {
	__u8 type;
	__u8 len;
	__be16 port;
	__be32 addr;
};

/* ICMP errors: they quote the packet they are about (RFC 792). */
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/*
 * data..data_end is what may be read directly (tc: the linear part); pkt_len is the whole
 * packet (tc: skb->len), which the IPv4 total length must fit in.
 */
static __always_inline enum parse_class parse_v4(void *data, void *data_end, __u32 pkt_len,
						 struct pkt_v4 *p)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > data_end)
		return PARSE_NOT_IPV4;
	p->eth = eth;
	/* VLAN tags are left to the stack (and the VLAN device, if any, sees the inner frame). */
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_NOT_IPV4;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return PARSE_MALFORMED;
	p->ip = ip;
	p->l3_off = sizeof(*eth);
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->proto = ip->protocol;
	p->tot_len = bpf_ntohs(ip->tot_len);
	if (p->tot_len < ip->ihl * 4 || p->tot_len > pkt_len - sizeof(*eth))
		return PARSE_MALFORMED;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return PARSE_FRAGMENT;
	if (ip->ihl == 5) {
		p->l4 = ip + 1;
	} else {
		struct dsr_opt *o = (void *)(ip + 1);

		/* Options other than shoal's own DSR option are left to the stack. */
		if (ip->ihl != 7 || (void *)(o + 1) > data_end || o->type != DSR_OPT_TYPE ||
		    o->len != DSR_OPT_LEN)
			return PARSE_IP_OPTIONS;
		p->dsr = o;
		p->l4 = o + 1;
	}
	p->l4_off = p->l3_off + ip->ihl * 4;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = p->l4;

		if ((void *)(tcp + 1) > data_end || p->tot_len < ip->ihl * 4 + sizeof(*tcp) ||
		    tcp->doff < 5)
			return PARSE_MALFORMED;
		p->sport_p = &tcp->source;
		p->dport_p = &tcp->dest;
		p->tcp_flags = ((__u8 *)tcp)[13];
		p->l4_csum_off = p->l4_off + offsetof(struct tcphdr, check);
		p->l4_check = (__u16 *)&tcp->check;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = p->l4;

		if ((void *)(udp + 1) > data_end || p->tot_len < ip->ihl * 4 + sizeof(*udp) ||
		    bpf_ntohs(udp->len) < sizeof(*udp) ||
		    bpf_ntohs(udp->len) > p->tot_len - ip->ihl * 4)
			return PARSE_MALFORMED;
		p->sport_p = &udp->source;
		p->dport_p = &udp->dest;
		p->tcp_flags = 0;
		p->l4_csum_off = p->l4_off + offsetof(struct udphdr, check);
		p->l4_check = (__u16 *)&udp->check;
	} else {
		return PARSE_OTHER_L4;
	}
	p->sport = *p->sport_p;
	p->dport = *p->dport_p;
	return PARSE_OK;
}

#endif
