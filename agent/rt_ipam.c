// SPDX-License-Identifier: Apache-2.0
/*
 * Pod addresses from the node's pod CIDR, remembered in <state_dir>/ipam.json.
 *
 * The network address, the first address (the CIDR's gateway by convention) and the broadcast
 * address are never handed out. Allocation is next-fit from the last address given, so an
 * address just released is not reused at once (a peer's stale conntrack or ARP entry would
 * reach the wrong pod). Every change is written to the file before it is used (temporary
 * file, fsync, rename), so a crash never hands one address to two pods.
 *
 * Kept addresses: a pod with a controller ownerReference and the annotation
 * shoal.io/keep-address: "true" (set in its controller's pod template) does not give its
 * address back when it goes: the address stays reserved for that owner, and the owner's next
 * pod on this node with the same name gets it (a StatefulSet-like replacement), or failing
 * that any pod of the same owner (a ReplicaSet's replacement has a new name). The reservation
 * ends when rt_ipam_release_owner() says the owner is gone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rt_int.h"
#include "rt_util.h"

struct ipam_entry {
	uint32_t ip; /* host order */
	char *uid;   /* the pod holding it; NULL: kept for owner */
	char *ns, *name, *owner;
	bool keep;
};

struct rt_ipam {
	pthread_mutex_t mu;
	char path[PATH_MAX];
	char cidr[32];
	uint32_t net, first, last, cursor;
	struct ipam_entry *e;
	size_t n, cap;
};

static void entry_free(struct ipam_entry *e)
{
	free(e->uid);
	free(e->ns);
	free(e->name);
	free(e->owner);
}

static int parse_cidr(const char *cidr, uint32_t *net, int *plen)
{
	char buf[32];
	const char *slash = cidr ? strchr(cidr, '/') : NULL;
	if (!slash || (size_t)(slash - cidr) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%.*s", (int)(slash - cidr), cidr);
	struct in_addr a;
	char *end;
	long p = strtol(slash + 1, &end, 10);
	if (inet_pton(AF_INET, buf, &a) != 1 || *end || end == slash + 1 || p < 1 || p > 30)
		return -EINVAL;
	uint32_t mask = p ? ~0u << (32 - p) : 0;
	*net = ntohl(a.s_addr) & mask;
	*plen = (int)p;
	return 0;
}

static void ip_str(uint32_t ip, char *out, size_t len)
{
	struct in_addr a = { .s_addr = htonl(ip) };
	inet_ntop(AF_INET, &a, out, (socklen_t)len);
}

static int ip_parse(const char *s, uint32_t *ip)
{
	struct in_addr a;
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*ip = ntohl(a.s_addr);
	return 0;
}

static int ipam_save(struct rt_ipam *m)
{
	char ip[16];
	json_t *arr = json_array(), *root = NULL;
	if (!arr)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++) {
		struct ipam_entry *e = &m->e[i];
		ip_str(e->ip, ip, sizeof(ip));
		json_t *o = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:b}", "ip", ip, "uid", e->uid,
				      "namespace", e->ns, "name", e->name, "owner", e->owner,
				      "keep", e->keep);
		if (!o || json_array_append_new(arr, o)) {
			json_decref(arr);
			return -ENOMEM;
		}
	}
	ip_str(m->cursor, ip, sizeof(ip));
	root = json_pack("{s:s, s:s, s:o}", "cidr", m->cidr, "cursor", ip, "addresses", arr);
	if (!root)
		return -ENOMEM;
	char *text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(root);
	if (!text)
		return -ENOMEM;
	int err = rt_write_atomic(m->path, text, strlen(text));
	free(text);
	if (err)
		log_error("runtime: ipam: write %s: %s", m->path, strerror(-err));
	return err;
}

static struct ipam_entry *entry_add(struct rt_ipam *m)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct ipam_entry *ne = realloc(m->e, cap * sizeof(*ne));
		if (!ne)
			return NULL;
		m->e = ne;
		m->cap = cap;
	}
	struct ipam_entry *e = &m->e[m->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

static void entry_del(struct rt_ipam *m, size_t i)
{
	entry_free(&m->e[i]);
	m->e[i] = m->e[--m->n];
}

static int dup_opt(char **dst, const char *s)
{
	*dst = NULL;
	return s && !(*dst = strdup(s)) ? -ENOMEM : 0;
}

struct rt_ipam *rt_ipam_open(const char *state_dir, const char *cidr)
{
	int plen;
	uint32_t net;
	if (parse_cidr(cidr, &net, &plen)) {
		log_error("runtime: pod_cidr \"%s\": must be an IPv4 CIDR with prefix 1..30",
			  cidr ? cidr : "");
		errno = EINVAL;
		return NULL;
	}
	struct rt_ipam *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	pthread_mutex_init(&m->mu, NULL);
	snprintf(m->path, sizeof(m->path), "%s/ipam.json", state_dir);
	snprintf(m->cidr, sizeof(m->cidr), "%s", cidr);
	m->net = net;
	m->first = net + 2;
	m->last = (net | ~(~0u << (32 - plen))) - 1;
	m->cursor = m->first - 1;

	json_error_t jerr;
	json_t *root = json_load_file(m->path, 0, &jerr);
	if (!root) {
		FILE *f = fopen(m->path, "re");
		if (f) {
			/* Present but unreadable: refusing beats handing out addresses in use. */
			fclose(f);
			log_error("runtime: ipam: %s: %s (line %d)", m->path, jerr.text, jerr.line);
			rt_ipam_close(m);
			errno = EINVAL;
			return NULL;
		}
		return m;
	}
	const json_t *arr = json_object_get(root, "addresses"), *o;
	uint32_t cur;
	if (!ip_parse(json_string_value(json_object_get(root, "cursor")), &cur) &&
	    cur >= m->first - 1 && cur <= m->last)
		m->cursor = cur;
	size_t i;
	json_array_foreach (arr, i, o) {
		uint32_t ip;
		if (ip_parse(json_string_value(json_object_get(o, "ip")), &ip)) {
			log_warn("runtime: ipam: %s: addresses[%zu]: no valid ip, dropped", m->path,
				 i);
			continue;
		}
		struct ipam_entry *e = entry_add(m);
		if (!e || dup_opt(&e->uid, json_string_value(json_object_get(o, "uid"))) ||
		    dup_opt(&e->ns, json_string_value(json_object_get(o, "namespace"))) ||
		    dup_opt(&e->name, json_string_value(json_object_get(o, "name"))) ||
		    dup_opt(&e->owner, json_string_value(json_object_get(o, "owner")))) {
			json_decref(root);
			rt_ipam_close(m);
			errno = ENOMEM;
			return NULL;
		}
		e->ip = ip;
		e->keep = json_is_true(json_object_get(o, "keep"));
	}
	json_decref(root);
	return m;
}

void rt_ipam_close(struct rt_ipam *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		entry_free(&m->e[i]);
	free(m->e);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static bool in_use(const struct rt_ipam *m, uint32_t ip)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].ip == ip)
			return true;
	return false;
}

int rt_ipam_alloc(struct rt_ipam *m, const char *uid, const char *ns, const char *name,
		  const char *owner, bool keep, char *out, size_t len)
{
	int err = 0;
	struct ipam_entry *e = NULL;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n && !e; i++)
		if (m->e[i].uid && !strcmp(m->e[i].uid, uid))
			e = &m->e[i];
	if (e) {
		ip_str(e->ip, out, len);
		goto out;
	}
	if (owner) {
		/* A kept address: this name first, then any of the owner's. */
		for (int pass = 0; pass < 2 && !e; pass++) {
			for (size_t i = 0; i < m->n && !e; i++) {
				struct ipam_entry *k = &m->e[i];
				if (!k->uid && k->owner && !strcmp(k->owner, owner) &&
				    (pass || (k->name && !strcmp(k->name, name))))
					e = k;
			}
		}
		if (e) {
			free(e->uid);
			free(e->name);
			free(e->ns);
			e->keep = keep;
			if (dup_opt(&e->uid, uid) || dup_opt(&e->name, name) ||
			    dup_opt(&e->ns, ns)) {
				err = -ENOMEM;
				goto out;
			}
			if ((err = ipam_save(m)) == 0)
				ip_str(e->ip, out, len);
			goto out;
		}
	}
	uint32_t size = m->last - m->first + 1, ip = 0;
	for (uint32_t k = 1; k <= size; k++) {
		uint32_t cand = m->first + (m->cursor - m->first + k) % size;
		if (m->cursor < m->first)
			cand = m->first + (k - 1);
		if (!in_use(m, cand)) {
			ip = cand;
			break;
		}
	}
	if (!ip) {
		err = -ENOSPC;
		goto out;
	}
	if (!(e = entry_add(m))) {
		err = -ENOMEM;
		goto out;
	}
	e->ip = ip;
	e->keep = keep;
	if (dup_opt(&e->uid, uid) || dup_opt(&e->ns, ns) || dup_opt(&e->name, name) ||
	    dup_opt(&e->owner, owner)) {
		entry_del(m, m->n - 1);
		err = -ENOMEM;
		goto out;
	}
	uint32_t old = m->cursor;
	m->cursor = ip;
	if ((err = ipam_save(m))) {
		entry_del(m, m->n - 1);
		m->cursor = old;
		goto out;
	}
	ip_str(ip, out, len);
out:
	pthread_mutex_unlock(&m->mu);
	return err;
}

/* Under mu: gives entry i up (or keeps it for its owner). */
static void release_at(struct rt_ipam *m, size_t i)
{
	struct ipam_entry *e = &m->e[i];
	if (e->keep && e->owner) {
		free(e->uid);
		e->uid = NULL;
		return;
	}
	entry_del(m, i);
}

int rt_ipam_release(struct rt_ipam *m, const char *uid)
{
	int err = 0;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n; i++) {
		if (m->e[i].uid && !strcmp(m->e[i].uid, uid)) {
			release_at(m, i);
			err = ipam_save(m);
			break;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return err;
}

int rt_ipam_owner_release(struct rt_ipam *m, const char *owner)
{
	bool changed = false;
	int err = 0;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n;) {
		struct ipam_entry *e = &m->e[i];
		if (!e->owner || strcmp(e->owner, owner)) {
			i++;
			continue;
		}
		changed = true;
		if (!e->uid) {
			entry_del(m, i);
			continue;
		}
		e->keep = false; /* still in use: freed when its pod goes */
		i++;
	}
	if (changed)
		err = ipam_save(m);
	pthread_mutex_unlock(&m->mu);
	return err;
}

int rt_ipam_gc(struct rt_ipam *m, char *const *live, size_t n)
{
	bool changed = false;
	int err = 0;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n;) {
		struct ipam_entry *e = &m->e[i];
		bool alive = !e->uid;
		for (size_t j = 0; j < n && !alive; j++)
			alive = !strcmp(live[j], e->uid);
		if (alive) {
			i++;
			continue;
		}
		char ip[16];
		ip_str(e->ip, ip, sizeof(ip));
		log_info("runtime: ipam: %s of pod %s that no longer exists is released", ip,
			 e->uid);
		changed = true;
		size_t before = m->n;
		release_at(m, i);
		if (m->n == before)
			i++;
	}
	if (changed)
		err = ipam_save(m);
	pthread_mutex_unlock(&m->mu);
	return err;
}
