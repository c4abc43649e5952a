// SPDX-License-Identifier: Apache-2.0
/*
 * String-keyed hash map: open addressing, linear probing, backward-shift deletion. The table
 * doubles at 70% load; each slot keeps the key's hash so probes compare strings rarely.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"

struct slot {
	char *key; /* NULL: empty */
	void *value;
	uint64_t hash;
};

struct hashmap {
	struct slot *slots;
	size_t cap; /* a power of two */
	size_t count;
};

uint64_t hashmap_hash(const char *s)
{
	/* FNV-1a, then a final mix so low bits are well spread. */
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

struct hashmap *hashmap_new(size_t hint)
{
	struct hashmap *m = calloc(1, sizeof(*m));
	size_t cap = 16;

	if (!m)
		return NULL;
	while (cap < hint + hint / 2)
		cap <<= 1;
	m->slots = calloc(cap, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		errno = ENOMEM;
		return NULL;
	}
	m->cap = cap;
	return m;
}

void hashmap_free(struct hashmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	free(m);
}

static size_t find(const struct hashmap *m, const char *key, uint64_t h, int *found)
{
	size_t mask = m->cap - 1, i = h & mask;

	for (;;) {
		const struct slot *s = &m->slots[i];
		if (!s->key) {
			*found = 0;
			return i;
		}
		if (s->hash == h && strcmp(s->key, key) == 0) {
			*found = 1;
			return i;
		}
		i = (i + 1) & mask;
	}
}

static int grow(struct hashmap *m)
{
	size_t ncap = m->cap * 2;
	struct slot *ns = calloc(ncap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		struct slot *s = &m->slots[i];
		if (!s->key)
			continue;
		size_t j = s->hash & (ncap - 1);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = *s;
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	return 0;
}

void *hashmap_get(const struct hashmap *m, const char *key)
{
	int found;
	size_t i = find(m, key, hashmap_hash(key), &found);
	return found ? m->slots[i].value : NULL;
}

int hashmap_put(struct hashmap *m, const char *key, void *value, void **old)
{
	uint64_t h = hashmap_hash(key);
	int found, err;
	size_t i;

	if ((m->count + 1) * 10 > m->cap * 7) {
		err = grow(m);
		if (err)
			return err;
	}
	i = find(m, key, h, &found);
	if (found) {
		if (old)
			*old = m->slots[i].value;
		m->slots[i].value = value;
		return 0;
	}
	char *k = strdup(key);
	if (!k)
		return -ENOMEM;
	m->slots[i] = (struct slot){ .key = k, .value = value, .hash = h };
	m->count++;
	if (old)
		*old = NULL;
	return 0;
}

void *hashmap_del(struct hashmap *m, const char *key)
{
	size_t mask = m->cap - 1, i, j;
	int found;
	void *v;

	i = find(m, key, hashmap_hash(key), &found);
	if (!found)
		return NULL;
	v = m->slots[i].value;
	free(m->slots[i].key);
	m->slots[i].key = NULL;
	m->count--;
	/* Backward shift: move later members of the probe run into the hole when their home
	 * slot is not between the hole and their current slot. */
	j = i;
	for (;;) {
		j = (j + 1) & mask;
		struct slot *s = &m->slots[j];
		if (!s->key)
			break;
		size_t home = s->hash & mask;
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			m->slots[i] = *s;
			s->key = NULL;
			i = j;
		}
	}
	return v;
}

size_t hashmap_count(const struct hashmap *m)
{
	return m->count;
}

int hashmap_next(const struct hashmap *m, size_t *it, const char **key, void **value)
{
	while (*it < m->cap) {
		const struct slot *s = &m->slots[(*it)++];
		if (s->key) {
			if (key)
				*key = s->key;
			if (value)
				*value = s->value;
			return 1;
		}
	}
	return 0;
}
