/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test packets: build Ethernet/IPv4/TCP|UDP frames with correct checksums, and check the
 * checksums of a frame a program wrote, with RFC 1071 sums computed here, independently of
 * the BPF code under test.
 */
#ifndef SHOAL_TEST_PKT_H
#define SHOAL_TEST_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_MAX 1600

struct pkt_spec {
	uint8_t proto; /* IPPROTO_TCP / IPPROTO_UDP */
	const char *saddr, *daddr;
	uint16_t sport, dport; /* host order */
	uint8_t tcp_flags; /* TCP */
	uint32_t seq, ack; /* TCP */
	size_t payload; /* bytes of payload (pattern) */
	bool udp_no_csum; /* UDP checksum 0 */
};

/* Writes the frame into buf (PKT_MAX bytes); returns its length. */
size_t pkt_build(uint8_t *buf, const struct pkt_spec *s);
/* RFC 1071 sum over data, folded and complemented, starting from a 32-bit partial sum. */
uint16_t pkt_csum(const void *data, size_t len, uint32_t partial);
/* 0 when the IPv4 header and L4 checksums of the frame are right; else a message. */
const char *pkt_check_csums(const uint8_t *buf, size_t len);
/* Readers of a frame's fields (host order for ports). */
uint32_t pkt_saddr(const uint8_t *buf);
uint32_t pkt_daddr(const uint8_t *buf);
uint16_t pkt_sport(const uint8_t *buf);
uint16_t pkt_dport(const uint8_t *buf);
uint32_t pkt_ip(const char *dotted); /* network order */

#endif
