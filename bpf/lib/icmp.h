/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ICMP errors about translated flows (fragmentation needed, unreachable, time exceeded,
 * parameter problem). An error quotes the packet it is about as that packet was on the wire,
 * that is translated; its receiver never sent such a packet and would ignore the error (a
 * lost Path MTU discovery, a connection that hangs instead of failing). So the quoted header
 * is put back the way the receiver knows it, the error is addressed to it, and every checksum
 * the rewrite touches is updated incrementally: the outer IPv4 header's, the ICMP message's
 * (it covers the quote), the quoted IPv4 header's and, when quoted, the quoted L4 one's.
 *   About a forward packet (client -> backend), found by the flow's reply entry: the quote
 *   becomes client -> frontend again; under SNAT the error, sent to the node, goes on to the
 *   client; an error from the backend itself appears to come from the frontend.
 *   About a reply (frontend -> client), found by the flow's forward entry: the quote becomes
 *   backend -> client (-> SNAT address), and the error goes to the backend.
 * The packet is written directly: the programs call this with the headers in linear data.
 * An skb's checksum state stays right: every change inside the ICMP message is matched by
 * the change of the ICMP checksum, and the outer addresses by the IPv4 checksum.
 */
#ifndef SHOAL_ICMP_H
#define SHOAL_ICMP_H

#include "csum.h"
#include "lb.h"
#include "parse.h"
#include "shoal_abi.h"

/* The checksums a change inside the quote touches. */
struct icmp_quote {
	__u16 *icmp_check; /* of the whole ICMP message */
	__u16 *ip_check;   /* of the quoted IPv4 header */
	__u16 *l4_check;   /* of the quoted TCP/UDP header, NULL when not quoted */
	__u8 proto;
};

/* A quoted address: in the quoted IPv4 header and the pseudo-header of its L4 checksum. */
static __always_inline void icmp_quote_addr(__be32 *field, __be32 to, const struct icmp_quote *q)
{
	__be32 from = *field;
	__u16 old;

	if (from == to)
		return;
	*field = to;
	csum_replace4(q->icmp_check, from, to);
	old = *q->ip_check;
	csum_replace4(q->ip_check, from, to);
	csum_replace2(q->icmp_check, old, *q->ip_check);
	if (q->l4_check) {
		old = *q->l4_check;
		l4_csum_replace4(q->l4_check, q->proto, from, to);
		csum_replace2(q->icmp_check, old, *q->l4_check);
	}
}

static __always_inline void icmp_quote_port(__be16 *field, __be16 to, const struct icmp_quote *q)
{
	__be16 from = *field;
	__u16 old;

	if (from == to)
		return;
	*field = to;
	csum_replace2(q->icmp_check, from, to);
	if (q->l4_check) {
		old = *q->l4_check;
		l4_csum_replace2(q->l4_check, q->proto, from, to);
		csum_replace2(q->icmp_check, old, *q->l4_check);
	}
}

static __always_inline void icmp_outer_addr(struct iphdr *ip, __be32 *field, __be32 to)
{
	if (*field == to)
		return;
	csum_replace4((__u16 *)&ip->check, *field, to);
	*field = to;
}

/*
 * An ICMP error (p: parsed as PARSE_OTHER_L4) about a translated flow: rewritten for its
 * receiver (LB_XLATE; pl->reply set when it goes to the client, with the interface the flow
 * came in on), else LB_PASS.
 */
static __always_inline int lb_icmp_error(struct pkt_v4 *p, void *data_end, struct nat_plan *pl)
{
	struct shoal_ct_key_v4 k = {};
	struct icmp_quote q = {};
	struct iphdr *ip = p->ip, *qip;
	__u8 *icmp = p->l4;
	struct shoal_ct_v4 *e;
	__be32 qsrc, qdst;
	__be16 *qport;

	if (p->proto != IPPROTO_ICMP || p->dsr || (void *)(icmp + 8) > data_end)
		return LB_PASS;
	if (icmp[0] != ICMP_DEST_UNREACH && icmp[0] != ICMP_TIME_EXCEEDED &&
	    icmp[0] != ICMP_PARAMETERPROB)
		return LB_PASS;
	qip = (void *)(icmp + 8);
	qport = (void *)(qip + 1);
	/* The quote: a 20-byte IPv4 header, then at least the 8 bytes that hold the ports. */
	if ((void *)(qport + 4) > data_end || qip->version != 4 || qip->ihl != 5 ||
	    (qip->frag_off & bpf_htons(IP_OFFSET)) ||
	    (qip->protocol != IPPROTO_TCP && qip->protocol != IPPROTO_UDP))
		return LB_PASS;
	qsrc = qip->saddr;
	qdst = qip->daddr;
	/* The flow's entry for a packet going the other way than the quoted one. */
	k.saddr = qdst;
	k.daddr = qsrc;
	k.sport = qport[1];
	k.dport = qport[0];
	k.proto = qip->protocol;
	e = bpf_map_lookup_elem(&shoal_ct_v4, &k);
	if (!e || e->expires < dp_now())
		return LB_PASS;

	q.icmp_check = (__u16 *)(icmp + 2);
	q.ip_check = (__u16 *)&qip->check;
	q.proto = qip->protocol;
	if (qip->protocol == IPPROTO_UDP)
		q.l4_check = (__u16 *)&qport[3];
	else if ((void *)qport + 18 <= data_end)
		q.l4_check = (__u16 *)((void *)qport + 16);

	if (e->dir == CT_DIR_REPLY) {
		/* About a forward packet: client -> frontend again, for the client. */
		icmp_quote_addr(&qip->daddr, e->nat_addr, &q);
		icmp_quote_port(&qport[1], e->nat_port, &q);
		if (e->flags & CT_F_SNAT) {
			icmp_quote_addr(&qip->saddr, e->snat_addr, &q);
			icmp_quote_port(&qport[0], e->snat_port, &q);
			if (p->daddr == qsrc)
				icmp_outer_addr(ip, &ip->daddr, e->snat_addr);
		}
		if (p->saddr == qdst)
			icmp_outer_addr(ip, &ip->saddr, e->nat_addr);
		pl->reply = 1;
		pl->ifindex = e->ifindex;
	} else {
		/* About a reply: backend -> client (its SNAT address) again, for the backend. */
		icmp_quote_addr(&qip->saddr, e->nat_addr, &q);
		icmp_quote_port(&qport[0], e->nat_port, &q);
		if (e->flags & CT_F_SNAT) {
			icmp_quote_addr(&qip->daddr, e->snat_addr, &q);
			icmp_quote_port(&qport[1], e->snat_port, &q);
			if (p->saddr == qdst)
				icmp_outer_addr(ip, &ip->saddr, e->snat_addr);
		}
		if (p->daddr == qsrc)
			icmp_outer_addr(ip, &ip->daddr, e->nat_addr);
	}
	pl->svc_id = e->svc_id;
	pl->be_id = e->backend_id;
	return LB_XLATE;
}

#endif
