/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixtures for the scheduler's tests: JSON written with single quotes (J("{'a': 1}")), and a
 * harness holding a scheduler on a virtual clock that records bindings, evictions and
 * messages. Header-only: only the scheduler tests include it.
 */
#ifndef SHOAL_SCHED_FIXTURES_H
#define SHOAL_SCHED_FIXTURES_H

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

/* A JSON value from printf-style text in which ' stands for ". Fails the test on bad JSON. */
static inline json_t *J(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline json_t *J(const char *fmt, ...)
{
	static char buf[16384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (char *c = buf; *c; c++)
		if (*c == '\'')
			*c = '"';
	json_error_t e;
	json_t *j = json_loads(buf, 0, &e);
	if (!j) {
		fprintf(stderr, "bad fixture JSON: %s: %s\n", e.text, buf);
		abort();
	}
	return j;
}

struct harness {
	struct sched *s;
	int64_t now;
	int binds, bind_fail; /* bind_fail: how many binds to refuse with -ECONFLICT */
	int evictions;
	char evicted[64][128];
	char last_msg[2048];
	char last_nominated[128];
	json_t *nodes, *pods; /* everything added, for sched_verify */
};

static inline int64_t h_now(void *ctx)
{
	return ((struct harness *)ctx)->now;
}

static inline int h_bind(void *ctx, const char *ns, const char *name, const char *uid,
			 const char *node)
{
	struct harness *h = ctx;
	(void)uid;
	if (h->bind_fail > 0) {
		h->bind_fail--;
		return -4001; /* -ECONFLICT */
	}
	h->binds++;
	for (size_t i = 0; i < json_array_size(h->pods); i++) {
		json_t *p = json_array_get(h->pods, i);
		json_t *md = json_object_get(p, "metadata");
		const char *pn = json_string_value(json_object_get(md, "name"));
		const char *pns = json_string_value(json_object_get(md, "namespace"));
		if (!strcmp(pn, name) && !strcmp(pns ? pns : "default", ns))
			json_object_set_new(json_object_get(p, "spec"), "nodeName",
					    json_string(node));
	}
	return 0;
}

static inline int h_evict(void *ctx, const char *ns, const char *name, const char *uid,
			  const char *preemptor)
{
	struct harness *h = ctx;
	(void)uid;
	(void)preemptor;
	if (h->evictions < 64)
		snprintf(h->evicted[h->evictions], sizeof(h->evicted[0]), "%s/%s", ns, name);
	h->evictions++;
	return 0;
}

static inline void h_unsched(void *ctx, const char *ns, const char *name, const char *msg,
			     const char *nominated)
{
	struct harness *h = ctx;
	(void)ns;
	(void)name;
	snprintf(h->last_msg, sizeof(h->last_msg), "%s", msg);
	snprintf(h->last_nominated, sizeof(h->last_nominated), "%s", nominated ? nominated : "");
}

/* cfg: JSON configuration text (' for ") or NULL. */
static inline struct harness *h_new(const char *cfg)
{
	struct harness *h = calloc(1, sizeof(*h));
	h->now = 1000000;
	h->nodes = json_array();
	h->pods = json_array();
	struct sched_ops ops = { .ctx = h,
				 .bind = h_bind,
				 .evict = h_evict,
				 .unschedulable = h_unsched,
				 .now_ms = h_now };
	json_t *cj = cfg ? J("%s", cfg) : NULL;
	char err[256];
	struct sched_config *c = sched_config_parse(cj, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "config: %s\n", err);
		abort();
	}
	h->s = sched_new(c, &ops);
	sched_config_free(c);
	json_decref(cj);
	return h;
}

static inline void h_free(struct harness *h)
{
	sched_free(h->s);
	json_decref(h->nodes);
	json_decref(h->pods);
	free(h);
}

/* A node: cpu in cores, memory in GiB, labels as JSON text ("{}" for none), extra spec. */
static inline json_t *node_json(const char *name, const char *cpu, const char *mem,
				const char *labels, const char *spec)
{
	return J("{'kind':'Node','metadata':{'name':'%s','labels':%s},'spec':%s,"
		 "'status':{'allocatable':{'cpu':'%s','memory':'%s','pods':'110'}}}",
		 name, labels ? labels : "{}", spec ? spec : "{}", cpu, mem);
}

static inline int h_node(struct harness *h, json_t *node)
{
	char err[256];
	int rc = sched_node_upsert(h->s, node, err, sizeof(err));
	if (rc)
		fprintf(stderr, "node: %s\n", err);
	json_array_append_new(h->nodes, node);
	return rc;
}

/* A pod: ns/name, requests, labels, extra spec fields (JSON text without braces, or ""). */
static inline json_t *pod_json(const char *ns, const char *name, const char *cpu,
			       const char *mem, const char *labels, const char *spec_extra)
{
	return J("{'kind':'Pod','metadata':{'name':'%s','namespace':'%s','uid':'u-%s','labels':%s},"
		 "'spec':{'containers':[{'name':'c','resources':{'requests':{'cpu':'%s','memory':'%s'}}}]"
		 "%s%s}}",
		 name, ns, name, labels ? labels : "{}", cpu, mem,
		 spec_extra && *spec_extra ? "," : "", spec_extra ? spec_extra : "");
}

static inline int h_pod(struct harness *h, json_t *pod)
{
	char err[512];
	int rc = sched_pod_upsert(h->s, pod, err, sizeof(err));
	if (rc)
		fprintf(stderr, "pod: %s\n", err);
	json_array_append_new(h->pods, pod);
	return rc;
}

/* Deletes a pod from the scheduler and from the recorded list. */
static inline void h_delete(struct harness *h, const char *ns, const char *name)
{
	sched_pod_delete(h->s, ns, name);
	for (size_t i = 0; i < json_array_size(h->pods); i++) {
		json_t *md = json_object_get(json_array_get(h->pods, i), "metadata");
		if (!strcmp(json_string_value(json_object_get(md, "name")), name) &&
		    !strcmp(json_string_value(json_object_get(md, "namespace")), ns)) {
			json_array_remove(h->pods, i);
			return;
		}
	}
}

/* Runs the queue dry; with settle, also lets back-off and gang time-outs pass (the virtual
 * clock jumps to each wake-up). Returns pods processed. */
static inline int h_run(struct harness *h, int settle)
{
	int total = 0;
	for (int round = 0; round < 200; round++) {
		int n = sched_run(h->s, 0);
		total += n;
		if (!settle)
			break;
		int64_t w = sched_next_wakeup_ms(h->s);
		if (w < 0)
			break;
		if (w > h->now)
			h->now = w;
	}
	return total;
}

static inline const char *h_where(struct harness *h, const char *ns, const char *name)
{
	const char *n = sched_pod_node(h->s, ns, name);
	return n ? n : "";
}

#endif
