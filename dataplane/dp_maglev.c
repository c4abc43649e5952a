// SPDX-License-Identifier: Apache-2.0
/*
 * Maglev lookup table generation (Eisenbud et al., "Maglev: A Fast and Reliable Software
 * Network Load Balancer", NSDI 2016, section 3.4). Each backend has a permutation of the
 * table's slots derived from its own key alone (offset and skip from two hashes), and the
 * backends take turns claiming their next free preferred slot. Because a backend's
 * preferences do not depend on the others, removing one of N moves about 1/N of the slots.
 * Weights: a backend of weight w takes w turns per round.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

int dp_maglev_build(const uint64_t *keys, const uint16_t *weights, size_t n, uint32_t *table,
		    uint32_t m)
{
	uint32_t *offset = NULL, *skip = NULL, *next = NULL;
	uint32_t filled = 0;
	int err = 0;

	if (!table || m < 2 || n == 0 || n >= m)
		return -EINVAL;
	for (uint32_t d = 2; (uint64_t)d * d <= m; d++)
		if (m % d == 0)
			return -EINVAL;
	offset = calloc(n, sizeof(*offset));
	skip = calloc(n, sizeof(*skip));
	next = calloc(n, sizeof(*next));
	if (!offset || !skip || !next) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		offset[i] = splitmix64(keys[i] ^ 0x6d61676cULL) % m;
		skip[i] = splitmix64(keys[i] ^ 0x736b6970ULL) % (m - 1) + 1;
	}
	memset(table, 0xff, sizeof(*table) * m);
	while (filled < m) {
		for (size_t i = 0; i < n && filled < m; i++) {
			uint32_t turns = weights && weights[i] ? weights[i] : 1;

			for (uint32_t t = 0; t < turns && filled < m; t++) {
				uint32_t c;

				/* next[i] < m always finds a free slot: the permutation covers all. */
				do {
					c = (uint32_t)((offset[i] + (uint64_t)next[i] * skip[i]) % m);
					next[i]++;
				} while (table[c] != UINT32_MAX);
				table[c] = (uint32_t)i;
				filled++;
			}
		}
	}
out:
	free(offset);
	free(skip);
	free(next);
	return err;
}
