/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internet checksums. Incremental updates (RFC 1624: HC' = ~(~HC + ~m + m')) for programs
 * that write the packet directly (XDP), and full sums over a small header built in place
 * (reject replies). tc programs use the kernel's bpf_l3/l4_csum_replace instead, because
 * only the kernel knows whether an skb's L4 checksum is complete or still partial.
 */
#ifndef SHOAL_CSUM_H
#define SHOAL_CSUM_H

static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* Replaces a 32-bit field covered by *sum (a checksum in packet memory). */
static __always_inline void csum_replace4(__u16 *sum, __u32 from, __u32 to)
{
	__u64 s = (__u16)~*sum;

	s += (__u16)~(from & 0xffff);
	s += (__u16)~(from >> 16);
	s += to & 0xffff;
	s += to >> 16;
	*sum = ~csum_fold(s);
}

/* Replaces a 16-bit field covered by *sum. */
static __always_inline void csum_replace2(__u16 *sum, __u16 from, __u16 to)
{
	__u64 s = (__u16)~*sum;

	s += (__u16)~from;
	s += to;
	*sum = ~csum_fold(s);
}

/*
 * L4 variants: a UDP checksum of 0 means "none" and stays 0; a computed 0 is sent as 0xffff
 * (RFC 768).
 */
static __always_inline void l4_csum_replace4(__u16 *sum, __u8 proto, __u32 from, __u32 to)
{
	if (proto == IPPROTO_UDP && *sum == 0)
		return;
	csum_replace4(sum, from, to);
	if (proto == IPPROTO_UDP && *sum == 0)
		*sum = 0xffff;
}

static __always_inline void l4_csum_replace2(__u16 *sum, __u8 proto, __u16 from, __u16 to)
{
	if (proto == IPPROTO_UDP && *sum == 0)
		return;
	csum_replace2(sum, from, to);
	if (proto == IPPROTO_UDP && *sum == 0)
		*sum = 0xffff;
}

/* One's complement addition of 32-bit words (the kernel's csum_add): a checksum diff. */
static __always_inline __u32 csum_add32(__u32 a, __u32 b)
{
	a += b;
	return a + (a < b);
}

/* Adds a difference (csum_add32 of ~old and new words) to a checksum in packet memory. */
static __always_inline void csum_add_diff(__u16 *sum, __u32 diff)
{
	*sum = ~csum_fold((__u64)(__u16)~*sum + diff);
}

/*
 * The same for an L4 checksum: a UDP checksum of 0 ("none") stays 0 and a computed 0 is sent
 * as 0xffff (RFC 768), as the kernel's BPF_F_MARK_MANGLED_0 does.
 */
static __always_inline void l4_csum_add(__u16 *sum, __u8 proto, __u32 diff)
{
	if (proto == IPPROTO_UDP && *sum == 0)
		return;
	csum_add_diff(sum, diff);
	if (proto == IPPROTO_UDP && *sum == 0)
		*sum = 0xffff;
}

/* Checksum of a 20-byte IPv4 header, its checksum field zeroed first. */
static __always_inline __u16 ip_csum_full(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u64 s = 0;

	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		s += w[i];
	return ~csum_fold(s);
}

/* The same for a 28-byte header (one 8-byte option: shoal's DSR option). */
static __always_inline __u16 ip_csum_full28(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u64 s = 0;

	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 14; i++)
		s += w[i];
	return ~csum_fold(s);
}

#endif
