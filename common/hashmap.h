/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A string-keyed hash map of pointers: open addressing with linear probing and backward-shift
 * deletion (no tombstones), so lookups stay short under churn. Keys are copied. Not
 * thread-safe: callers hold their own lock.
 */
#ifndef SHOAL_HASHMAP_H
#define SHOAL_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

struct hashmap;

struct hashmap *hashmap_new(size_t capacity_hint);
/* Frees the map and its key copies (not the values). Accepts NULL. */
void hashmap_free(struct hashmap *m);
void *hashmap_get(const struct hashmap *m, const char *key);
/* Sets key to value; *old (when not NULL) receives the replaced value or NULL.
 * Returns 0 or -ENOMEM. */
int hashmap_put(struct hashmap *m, const char *key, void *value, void **old);
/* Removes key; returns its value, or NULL when absent. */
void *hashmap_del(struct hashmap *m, const char *key);
size_t hashmap_count(const struct hashmap *m);

/* Iteration: for (size_t it = 0; hashmap_next(m, &it, &k, &v);) ... Unordered; the map must
 * not change during it. */
int hashmap_next(const struct hashmap *m, size_t *it, const char **key, void **value);

uint64_t hashmap_hash(const char *s);

#endif
