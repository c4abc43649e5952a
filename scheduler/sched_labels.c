// SPDX-License-Identifier: Apache-2.0
/*
 * Interned strings, label sets and compiled selectors: the scheduler's fast form of
 * common/labels.h. Selectors are parsed and validated by common/labels.h once, when an
 * object enters the snapshot, then compiled to interned integers so that matching a pod or a
 * node is a few binary searches over integers, never a string comparison.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

sid_t intern_find(const struct intern *in, const char *s)
{
	void *v = strmap_get(&in->map, s);
	return (sid_t)(uintptr_t)v;
}

sid_t intern_id(struct intern *in, const char *s)
{
	sid_t id = intern_find(in, s);
	if (id)
		return id;
	if (in->n == 0)
		in->n = 1; /* id 0 is none */
	if (in->n >= in->cap) {
		uint32_t nc = in->cap ? in->cap * 2 : 256;
		char **ns = realloc(in->strs, nc * sizeof(*ns));
		if (!ns)
			return 0;
		in->strs = ns;
		int64_t *nn = realloc(in->num, nc * sizeof(*nn));
		if (!nn)
			return 0;
		in->num = nn;
		uint8_t *no = realloc(in->numok, nc);
		if (!no)
			return 0;
		in->numok = no;
		in->cap = nc;
	}
	id = in->n;
	char *dup = strdup(s);
	if (!dup)
		return 0;
	if (strmap_put(&in->map, s, (void *)(uintptr_t)id)) {
		free(dup);
		return 0;
	}
	in->strs[id] = dup;
	/* parse the integer value now, so that matching never writes (filters run in
	 * parallel) */
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	in->num[id] = v;
	in->numok[id] = (*s && !*end && !errno) ? 1 : 2;
	in->n++;
	return id;
}

const char *intern_str(const struct intern *in, sid_t id)
{
	return (id && id < in->n) ? in->strs[id] : "";
}

bool intern_num(struct intern *in, sid_t id, int64_t *out)
{
	if (!id || id >= in->n)
		return false;
	*out = in->num[id];
	return in->numok[id] == 1;
}

void intern_free(struct intern *in)
{
	for (uint32_t i = 1; i < in->n; i++)
		free(in->strs[i]);
	strmap_free(&in->map);
	free(in->strs);
	free(in->num);
	free(in->numok);
	memset(in, 0, sizeof(*in));
}

static int lbl_cmp(const void *a, const void *b)
{
	const struct lbl *x = a, *y = b;
	return x->k < y->k ? -1 : x->k > y->k;
}

int lblset_from_json(struct intern *in, const json_t *obj, sid_t extra_k, sid_t extra_v,
		     struct lblset *out)
{
	memset(out, 0, sizeof(*out));
	size_t n = (obj && json_is_object(obj) ? json_object_size(obj) : 0) + (extra_k ? 1 : 0);
	if (!n)
		return 0;
	out->kv = calloc(n, sizeof(*out->kv));
	if (!out->kv)
		return -ENOMEM;
	const char *k;
	json_t *v;
	if (obj && json_is_object(obj)) {
		json_object_foreach((json_t *)obj, k, v) {
			if (!json_is_string(v))
				return -EINVAL;
			sid_t ks = intern_id(in, k), vs = intern_id(in, json_string_value(v));
			if (!ks || !vs)
				return -ENOMEM;
			out->kv[out->n++] = (struct lbl){ ks, vs };
		}
	}
	if (extra_k)
		out->kv[out->n++] = (struct lbl){ extra_k, extra_v };
	qsort(out->kv, out->n, sizeof(*out->kv), lbl_cmp);
	return 0;
}

void lblset_free(struct lblset *ls)
{
	free(ls->kv);
	ls->kv = NULL;
	ls->n = 0;
}

static int sid_cmp(const void *a, const void *b)
{
	sid_t x = *(const sid_t *)a, y = *(const sid_t *)b;
	return x < y ? -1 : x > y;
}

static int creq_cmp(const void *a, const void *b)
{
	const struct creq *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->op < y->op ? -1 : x->op > y->op;
}

int csel_compile(struct intern *in, const struct selector *sel, struct csel *out)
{
	memset(out, 0, sizeof(*out));
	if (!sel) {
		out->none = true;
		return 0;
	}
	if (!sel->n)
		return 0;
	out->reqs = calloc(sel->n, sizeof(*out->reqs));
	if (!out->reqs)
		return -ENOMEM;
	for (size_t i = 0; i < sel->n; i++) {
		const struct sel_req *r = &sel->reqs[i];
		struct creq *c = &out->reqs[out->n++];
		c->key = intern_id(in, r->key);
		if (!c->key)
			return -ENOMEM;
		switch (r->op) {
		case SEL_EQ:
		case SEL_IN:
			c->op = CR_IN;
			break;
		case SEL_NEQ:
		case SEL_NOTIN:
			c->op = CR_NOTIN;
			break;
		case SEL_EXISTS:
			c->op = CR_EXISTS;
			break;
		case SEL_NOTEXISTS:
			c->op = CR_NOTEXISTS;
			break;
		case SEL_GT:
		case SEL_LT: {
			c->op = r->op == SEL_GT ? CR_GT : CR_LT;
			char *end;
			if (r->nvalues != 1)
				return -EINVAL;
			errno = 0;
			c->num = strtoll(r->values[0], &end, 10);
			if (!*r->values[0] || *end || errno)
				return -EINVAL;
			break;
		}
		default:
			return -EINVAL;
		}
		if (c->op == CR_IN || c->op == CR_NOTIN) {
			c->vals = calloc(r->nvalues ? r->nvalues : 1, sizeof(*c->vals));
			if (!c->vals)
				return -ENOMEM;
			for (size_t j = 0; j < r->nvalues; j++) {
				c->vals[c->nvals] = intern_id(in, r->values[j]);
				if (!c->vals[c->nvals])
					return -ENOMEM;
				c->nvals++;
			}
			qsort(c->vals, c->nvals, sizeof(*c->vals), sid_cmp);
		}
	}
	qsort(out->reqs, out->n, sizeof(*out->reqs), creq_cmp);
	return 0;
}

int csel_from_json(struct intern *in, const json_t *j, bool allow_gt_lt, struct csel *out,
		   const char *field, char *err, size_t errlen)
{
	struct selector *sel = NULL;
	char e[256] = "";
	memset(out, 0, sizeof(*out));
	int rc = selector_from_json(j, allow_gt_lt, &sel, e, sizeof(e));
	if (rc) {
		if (err)
			snprintf(err, errlen, "%s: %s", field, e[0] ? e : "invalid selector");
		return rc < 0 ? rc : -EINVAL;
	}
	rc = csel_compile(in, sel, out);
	selector_free(sel);
	if (rc) {
		if (err)
			snprintf(err, errlen, "%s: %s", field,
				 rc == -ENOMEM ? "out of memory" : "invalid selector");
		csel_free(out);
	}
	return rc;
}

static bool sid_in(const sid_t *v, uint32_t n, sid_t x)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (v[mid] < x)
			lo = mid + 1;
		else if (v[mid] > x)
			hi = mid;
		else
			return true;
	}
	return false;
}

bool csel_match(struct intern *in, const struct csel *cs, const struct lblset *ls)
{
	if (cs->none)
		return false;
	for (uint32_t i = 0; i < cs->n; i++) {
		const struct creq *r = &cs->reqs[i];
		sid_t v = lbl_get(ls, r->key);
		int64_t num;
		switch (r->op) {
		case CR_IN:
			if (!v || !sid_in(r->vals, r->nvals, v))
				return false;
			break;
		case CR_NOTIN:
			if (v && sid_in(r->vals, r->nvals, v))
				return false;
			break;
		case CR_EXISTS:
			if (!v)
				return false;
			break;
		case CR_NOTEXISTS:
			if (v)
				return false;
			break;
		case CR_GT:
			if (!v || !intern_num(in, v, &num) || !(num > r->num))
				return false;
			break;
		case CR_LT:
			if (!v || !intern_num(in, v, &num) || !(num < r->num))
				return false;
			break;
		}
	}
	return true;
}

void csel_free(struct csel *cs)
{
	for (uint32_t i = 0; i < cs->n; i++)
		free(cs->reqs[i].vals);
	free(cs->reqs);
	memset(cs, 0, sizeof(*cs));
}

static void sig_put(char *buf, size_t len, size_t *off, const char *fmt, unsigned long long a,
		    unsigned long long b)
{
	if (*off >= len)
		return;
	int w = snprintf(buf + *off, len - *off, fmt, a, b);
	if (w > 0)
		*off += (size_t)w;
}

void csel_sig(const struct csel *cs, char *buf, size_t len, size_t *off)
{
	if (cs->none) {
		sig_put(buf, len, off, "N%llu%llu", 0, 0);
		return;
	}
	for (uint32_t i = 0; i < cs->n; i++) {
		const struct creq *r = &cs->reqs[i];
		sig_put(buf, len, off, "(%llu.%llu", r->key, r->op);
		for (uint32_t j = 0; j < r->nvals; j++)
			sig_put(buf, len, off, ",%llu%.0llu", r->vals[j], 0);
		if (r->op == CR_GT || r->op == CR_LT)
			sig_put(buf, len, off, "#%lld%.0llu", (unsigned long long)r->num, 0);
		sig_put(buf, len, off, ")%.0llu%.0llu", 0, 0);
	}
}
