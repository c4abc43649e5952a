// SPDX-License-Identifier: Apache-2.0
/*
 * ClusterIP and NodePort allocation (see api_alloc.h): a bitmap per range, guarded by one
 * mutex, loaded from the store's allocation keys at start.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_alloc.h"
#include "log.h"
#include "store.h"

#define IP_PREFIX "/registry/ranges/serviceips/"
#define PORT_PREFIX "/registry/ranges/servicenodeports/"

struct bitmap {
	uint64_t *bits;
	size_t n;    /* values */
	size_t used;
};

struct api_alloc {
	pthread_mutex_t mu;
	uint32_t net, first, last; /* usable ClusterIPs first..last */
	int port_min, port_max;
	struct bitmap ips, ports;
	char cidr[32];
	unsigned seed;
};

static int bm_init(struct bitmap *b, size_t n)
{
	b->n = n;
	b->used = 0;
	b->bits = calloc((n + 63) / 64, sizeof(uint64_t));
	return b->bits ? 0 : -ENOMEM;
}

static bool bm_test(const struct bitmap *b, size_t i)
{
	return b->bits[i / 64] & (1ULL << (i % 64));
}

static void bm_set(struct bitmap *b, size_t i)
{
	if (!bm_test(b, i)) {
		b->bits[i / 64] |= 1ULL << (i % 64);
		b->used++;
	}
}

static void bm_clear(struct bitmap *b, size_t i)
{
	if (bm_test(b, i)) {
		b->bits[i / 64] &= ~(1ULL << (i % 64));
		b->used--;
	}
}

/* A free index from a random start, or -1. */
static long bm_pick(struct bitmap *b, unsigned *seed)
{
	if (b->used >= b->n)
		return -1;
	size_t start = (size_t)rand_r(seed) % b->n;
	for (size_t k = 0; k < b->n; k++) {
		size_t i = (start + k) % b->n;
		if (!bm_test(b, i)) {
			bm_set(b, i);
			return (long)i;
		}
	}
	return -1;
}

int alloc_parse_ipv4(const char *s, uint32_t *ip)
{
	struct in_addr a;
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*ip = ntohl(a.s_addr);
	return 0;
}

void alloc_ip_key(uint32_t ip, char *buf, size_t len)
{
	snprintf(buf, len, IP_PREFIX "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255,
		 ip & 255);
}

void alloc_port_key(int port, char *buf, size_t len)
{
	snprintf(buf, len, PORT_PREFIX "%d", port);
}

static int load_prefix(struct api_alloc *a, struct store *st, const char *prefix, bool ips)
{
	struct store_range_req req = { .prefix = prefix };
	struct store_range_resp resp = { 0 };
	int err = store_range(st, &req, &resp);

	if (err)
		return err;
	for (size_t i = 0; i < resp.n; i++) {
		const char *v = resp.kvs[i].key + strlen(prefix);
		if (ips) {
			uint32_t ip;
			if (alloc_parse_ipv4(v, &ip) == 0 && ip >= a->first && ip <= a->last)
				bm_set(&a->ips, ip - a->first);
		} else {
			int port = atoi(v);
			if (port >= a->port_min && port <= a->port_max)
				bm_set(&a->ports, port - a->port_min);
		}
	}
	store_range_resp_free(&resp);
	return 0;
}

struct api_alloc *alloc_open(struct store *st, const char *cidr, int port_min, int port_max)
{
	struct api_alloc *a = calloc(1, sizeof(*a));
	char buf[32], *slash;
	uint32_t net;
	long bits;
	int err = -EINVAL;

	if (!a)
		return NULL;
	pthread_mutex_init(&a->mu, NULL);
	a->seed = 0x5eed;
	snprintf(buf, sizeof(buf), "%s", cidr);
	slash = strchr(buf, '/');
	if (!slash)
		goto bad;
	*slash = '\0';
	bits = strtol(slash + 1, NULL, 10);
	if (alloc_parse_ipv4(buf, &net) || bits < 8 || bits > 30)
		goto bad;
	uint32_t mask = bits == 0 ? 0 : 0xffffffffU << (32 - bits);
	a->net = net & mask;
	a->first = a->net + 1;
	a->last = (a->net | ~mask) - 1;
	snprintf(a->cidr, sizeof(a->cidr), "%s", cidr);
	if (port_min < 1 || port_max > 65535 || port_min > port_max)
		goto bad;
	a->port_min = port_min;
	a->port_max = port_max;
	err = bm_init(&a->ips, a->last - a->first + 1);
	if (!err)
		err = bm_init(&a->ports, port_max - port_min + 1);
	if (!err)
		err = load_prefix(a, st, IP_PREFIX, true);
	if (!err)
		err = load_prefix(a, st, PORT_PREFIX, false);
	if (err)
		goto fail;
	return a;
bad:
	log_error("service range: want a CIDR of /8 to /30 and a port range within 1-65535, got "
		  "%s and %d-%d",
		  cidr, port_min, port_max);
fail:
	alloc_free(a);
	errno = -err;
	return NULL;
}

void alloc_free(struct api_alloc *a)
{
	if (!a)
		return;
	free(a->ips.bits);
	free(a->ports.bits);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

int alloc_ip_pick(struct api_alloc *a, uint32_t *ip)
{
	long i;
	pthread_mutex_lock(&a->mu);
	i = bm_pick(&a->ips, &a->seed);
	pthread_mutex_unlock(&a->mu);
	if (i < 0)
		return -ENOSPC;
	*ip = a->first + (uint32_t)i;
	return 0;
}

int alloc_ip_claim(struct api_alloc *a, uint32_t ip)
{
	int err = 0;
	if (ip < a->first || ip > a->last)
		return -ERANGE;
	pthread_mutex_lock(&a->mu);
	if (bm_test(&a->ips, ip - a->first))
		err = -EEXIST;
	else
		bm_set(&a->ips, ip - a->first);
	pthread_mutex_unlock(&a->mu);
	return err;
}

void alloc_ip_release(struct api_alloc *a, uint32_t ip)
{
	if (ip < a->first || ip > a->last)
		return;
	pthread_mutex_lock(&a->mu);
	bm_clear(&a->ips, ip - a->first);
	pthread_mutex_unlock(&a->mu);
}

int alloc_port_pick(struct api_alloc *a, int *port)
{
	long i;
	pthread_mutex_lock(&a->mu);
	i = bm_pick(&a->ports, &a->seed);
	pthread_mutex_unlock(&a->mu);
	if (i < 0)
		return -ENOSPC;
	*port = a->port_min + (int)i;
	return 0;
}

int alloc_port_claim(struct api_alloc *a, int port)
{
	int err = 0;
	if (port < a->port_min || port > a->port_max)
		return -ERANGE;
	pthread_mutex_lock(&a->mu);
	if (bm_test(&a->ports, port - a->port_min))
		err = -EEXIST;
	else
		bm_set(&a->ports, port - a->port_min);
	pthread_mutex_unlock(&a->mu);
	return err;
}

void alloc_port_release(struct api_alloc *a, int port)
{
	if (port < a->port_min || port > a->port_max)
		return;
	pthread_mutex_lock(&a->mu);
	bm_clear(&a->ports, port - a->port_min);
	pthread_mutex_unlock(&a->mu);
}

const char *alloc_cidr(const struct api_alloc *a)
{
	return a->cidr;
}

void alloc_port_range(const struct api_alloc *a, int *min, int *max)
{
	*min = a->port_min;
	*max = a->port_max;
}
