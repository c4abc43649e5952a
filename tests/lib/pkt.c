// SPDX-License-Identifier: Apache-2.0
/* Test packet building and checksum checking (see pkt.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "pkt.h"

uint32_t pkt_ip(const char *dotted)
{
	struct in_addr a = { 0 };

	inet_pton(AF_INET, dotted, &a);
	return a.s_addr;
}

static uint32_t sum16(const void *data, size_t len, uint32_t s)
{
	const uint8_t *p = data;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)(p[len - 1] << 8);
	return s;
}

uint16_t pkt_csum(const void *data, size_t len, uint32_t partial)
{
	uint32_t s = sum16(data, len, partial);

	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static uint32_t pseudo(const uint8_t *ip, uint8_t proto, size_t l4len)
{
	uint32_t s = sum16(ip + 12, 8, 0);

	return s + proto + (uint32_t)l4len;
}

size_t pkt_build(uint8_t *buf, const struct pkt_spec *s)
{
	uint8_t *ip = buf + 14, *l4 = ip + 20;
	size_t l4hdr = s->proto == IPPROTO_TCP ? 20 : 8;
	size_t l4len = l4hdr + s->payload;
	uint32_t a;
	uint16_t c;

	memset(buf, 0, 14 + 20 + l4len);
	memcpy(buf, "\x02\x00\x00\x00\x00\x02", 6); /* dst mac */
	memcpy(buf + 6, "\x02\x00\x00\x00\x00\x01", 6);
	buf[12] = 0x08;
	buf[13] = 0x00;
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + l4len) >> 8);
	ip[3] = (uint8_t)(20 + l4len);
	ip[4] = 0x12;
	ip[5] = 0x34;
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = s->proto;
	a = pkt_ip(s->saddr);
	memcpy(ip + 12, &a, 4);
	a = pkt_ip(s->daddr);
	memcpy(ip + 16, &a, 4);
	c = htons(pkt_csum(ip, 20, 0));
	memcpy(ip + 10, &c, 2);
	l4[0] = (uint8_t)(s->sport >> 8);
	l4[1] = (uint8_t)s->sport;
	l4[2] = (uint8_t)(s->dport >> 8);
	l4[3] = (uint8_t)s->dport;
	for (size_t i = 0; i < s->payload; i++)
		l4[l4hdr + i] = (uint8_t)(i * 7 + 1);
	if (s->proto == IPPROTO_TCP) {
		uint32_t v = htonl(s->seq);

		memcpy(l4 + 4, &v, 4);
		v = htonl(s->ack);
		memcpy(l4 + 8, &v, 4);
		l4[12] = 5 << 4;
		l4[13] = s->tcp_flags;
		l4[14] = 0xff;
		l4[15] = 0xff;
		c = htons(pkt_csum(l4, l4len, pseudo(ip, IPPROTO_TCP, l4len)));
		memcpy(l4 + 16, &c, 2);
	} else {
		l4[4] = (uint8_t)(l4len >> 8);
		l4[5] = (uint8_t)l4len;
		if (!s->udp_no_csum) {
			c = pkt_csum(l4, l4len, pseudo(ip, IPPROTO_UDP, l4len));
			c = htons(c ? c : 0xffff);
			memcpy(l4 + 6, &c, 2);
		}
	}
	return 14 + 20 + l4len;
}

const char *pkt_check_csums(const uint8_t *buf, size_t len)
{
	const uint8_t *ip = buf + 14, *l4;
	size_t ihl, tot, l4len;

	if (len < 34)
		return "frame shorter than Ethernet + IPv4";
	ihl = (size_t)(ip[0] & 0xf) * 4;
	tot = (size_t)(ip[2] << 8 | ip[3]);
	if (tot > len - 14 || ihl < 20)
		return "IPv4 total length beyond the frame";
	if (pkt_csum(ip, ihl, 0) != 0)
		return "IPv4 header checksum wrong";
	l4 = ip + ihl;
	l4len = tot - ihl;
	switch (ip[9]) {
	case IPPROTO_TCP:
		if (pkt_csum(l4, l4len, pseudo(ip, IPPROTO_TCP, l4len)) != 0)
			return "TCP checksum wrong";
		break;
	case IPPROTO_UDP:
		if ((l4[6] | l4[7]) && pkt_csum(l4, l4len, pseudo(ip, IPPROTO_UDP, l4len)) != 0)
			return "UDP checksum wrong";
		break;
	case IPPROTO_ICMP:
		if (pkt_csum(l4, l4len, 0) != 0)
			return "ICMP checksum wrong";
		break;
	}
	return NULL;
}

uint32_t pkt_saddr(const uint8_t *buf)
{
	uint32_t a;

	memcpy(&a, buf + 26, 4);
	return a;
}

uint32_t pkt_daddr(const uint8_t *buf)
{
	uint32_t a;

	memcpy(&a, buf + 30, 4);
	return a;
}

uint16_t pkt_sport(const uint8_t *buf)
{
	return (uint16_t)(buf[34] << 8 | buf[35]);
}

uint16_t pkt_dport(const uint8_t *buf)
{
	return (uint16_t)(buf[36] << 8 | buf[37]);
}
