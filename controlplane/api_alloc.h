/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allocation of Service ClusterIPs (from --service-cidr) and NodePorts (from the node port
 * range). Each allocated value is a store key (/registry/ranges/serviceips/IP and
 * /registry/ranges/servicenodeports/PORT) written in the same transaction as its Service, so
 * uniqueness holds in the store even with several shoald replicas; an in-memory bitmap,
 * loaded at start, makes picking a free value O(1) on average. A pick is provisional until
 * its transaction commits: alloc_*_release undoes it when the transaction fails.
 */
#ifndef SHOAL_API_ALLOC_H
#define SHOAL_API_ALLOC_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct api_alloc;

struct api_alloc *alloc_open(struct store *st, const char *service_cidr, int port_min,
			     int port_max);
void alloc_free(struct api_alloc *a);

/* Picks a free ClusterIP (host order). -ENOSPC when the range is exhausted. */
int alloc_ip_pick(struct api_alloc *a, uint32_t *ip);
/* Claims a given ClusterIP: -ERANGE outside the range, -EEXIST when taken. */
int alloc_ip_claim(struct api_alloc *a, uint32_t ip);
void alloc_ip_release(struct api_alloc *a, uint32_t ip);
int alloc_port_pick(struct api_alloc *a, int *port);
int alloc_port_claim(struct api_alloc *a, int port);
void alloc_port_release(struct api_alloc *a, int port);

void alloc_ip_key(uint32_t ip, char *buf, size_t len);
void alloc_port_key(int port, char *buf, size_t len);
/* "10.96.0.0/16" and "30000-32767", for messages. */
const char *alloc_cidr(const struct api_alloc *a);
void alloc_port_range(const struct api_alloc *a, int *min, int *max);

/* Parses dotted IPv4 into host order; -EINVAL if it is not one. */
int alloc_parse_ipv4(const char *s, uint32_t *ip);

#endif
