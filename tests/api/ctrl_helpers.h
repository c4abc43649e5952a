/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the controller tests share: a real shoald (the scheduler off: the tests bind pods
 * themselves), short requests, polling with a deadline, and the node agent's part played by
 * hand (bind a pod, report its address and readiness through the status sub-resource).
 */
#ifndef SHOAL_TEST_CTRL_HELPERS_H
#define SHOAL_TEST_CTRL_HELPERS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shoal_test.h"
#include "shoald_fixture.h"

static struct shoald srv;

/* A test file may define CTRL_EXTRA_ARGS ("--flag", "value",) before including this. */
#ifndef CTRL_EXTRA_ARGS
#define CTRL_EXTRA_ARGS
#endif

static __attribute__((unused)) int ctrl_setup(void **state)
{
	(void)state;
	const char *args[] = { "--disable-scheduler", "--log-level", "warn", CTRL_EXTRA_ARGS NULL };
	return shoald_start(&srv, args);
}

static __attribute__((unused)) int ctrl_teardown(void **state)
{
	(void)state;
	int st = shoald_stop(&srv);
	shoald_destroy(&srv);
	return st == 0 ? 0 : -1;
}

static __attribute__((unused)) const char *jstr(const json_t *o, const char *path)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *t = strtok_r(buf, ".", &save); t && o; t = strtok_r(NULL, ".", &save))
		o = json_object_get(o, t);
	return json_string_value(o);
}

static __attribute__((unused)) long long jint(const json_t *o, const char *path)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *t = strtok_r(buf, ".", &save); t && o; t = strtok_r(NULL, ".", &save))
		o = json_object_get(o, t);
	return json_integer_value(o);
}

static __attribute__((unused)) __attribute__((format(printf, 1, 2))) const char *fmt(const char *f,
										     ...)
{
	static __thread char bufs[4][8192]; /* per thread: agents run beside the test */
	static __thread int n;
	char *b = bufs[n++ % 4];
	va_list ap;
	va_start(ap, f);
	vsnprintf(b, sizeof(bufs[0]), f, ap);
	va_end(ap);
	return b;
}

/* A request that must answer want; returns the answer. */
static __attribute__((unused)) json_t *req(const char *method, const char *path, const char *body,
					   long want)
{
	long code;
	json_t *o = http_json(&srv, method, path, body, &code);
	if (code != want) {
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		fail_msg("%s %s: answered %ld, want %ld: %s", method, path, code, want, s ? s : "");
	}
	return o;
}

static __attribute__((unused)) void req0(const char *method, const char *path, const char *body,
					 long want)
{
	json_decref(req(method, path, body, want));
}

static __attribute__((unused)) long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* The items of a list path (a new reference). */
static __attribute__((unused)) json_t *items(const char *path)
{
	json_t *l = req("GET", path, NULL, 200);
	json_t *it = json_incref(json_object_get(l, "items"));
	json_decref(l);
	return it;
}

/* Pods of namespace default matching a label selector (URL-escaped by the caller). */
static __attribute__((unused)) json_t *pods(const char *sel)
{
	return items(fmt("/api/v1/namespaces/default/pods?labelSelector=%s", sel));
}

static __attribute__((unused)) bool terminating(const json_t *o)
{
	return jstr(o, "metadata.deletionTimestamp") != NULL;
}

/* Pods matching sel that are not being deleted. */
static __attribute__((unused)) size_t active_pods(const char *sel)
{
	json_t *l = pods(sel);
	size_t i, n = 0;
	json_t *p;
	json_array_foreach (l, i, p)
		n += !terminating(p);
	json_decref(l);
	return n;
}

/* Polls cond (up to ms) until it holds; fails the test naming what with the last value. */
#define WAIT_FOR(ms, cond, ...)                                                                    \
	do {                                                                                       \
		long long until_ = mono_ms() + (ms);                                               \
		bool ok_;                                                                          \
		while (!(ok_ = (cond)) && mono_ms() < until_)                                      \
			usleep(20000);                                                             \
		if (!ok_)                                                                          \
			fail_msg(__VA_ARGS__);                                                     \
	} while (0)

/* Plays the node agent: the pod runs on node with address ip, Ready or not. */
static __attribute__((unused)) void pod_status(const char *name, const char *ip, bool ready)
{
	char now[32];
	time_t t = time(NULL);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	req0("PATCH", fmt("/api/v1/namespaces/default/pods/%s/status", name),
	     fmt("{\"status\":{\"phase\":\"Running\",\"podIP\":\"%s\",\"podIPs\":[{\"ip\":\"%s\"}],"
		 "\"conditions\":[{\"type\":\"Ready\",\"status\":\"%s\",\"lastTransitionTime\":"
		 "\"%s\"}]}}",
		 ip, ip, ready ? "True" : "False", now),
	     200);
}

static __attribute__((unused)) void bind_pod(const char *name, const char *node)
{
	req0("POST", fmt("/api/v1/namespaces/default/pods/%s/binding", name),
	     fmt("{\"metadata\":{\"name\":\"%s\"},\"target\":{\"kind\":\"Node\",\"name\":\"%s\"}}",
		 name, node),
	     201);
}

static __attribute__((unused)) void add_node(const char *name, const char *zone)
{
	req0("POST", "/api/v1/nodes",
	     fmt("{\"metadata\":{\"name\":\"%s\",\"labels\":{\"topology.kubernetes.io/zone\":"
		 "\"%s\",\"kubernetes.io/hostname\":\"%s\"}},\"spec\":{},\"status\":{\"capacity\":"
		 "{\"cpu\":\"8\",\"memory\":\"16Gi\",\"pods\":\"110\"},\"allocatable\":{\"cpu\":"
		 "\"8\",\"memory\":\"16Gi\",\"pods\":\"110\"},\"conditions\":[{\"type\":\"Ready\","
		 "\"status\":\"True\"}]}}",
		 name, zone, name),
	     201);
}

/* Binds every unbound pod of sel to node and makes it Running and Ready with an address
 * 10.100.<net>.<i>; returns how many it touched. */
static __attribute__((unused)) int run_pods(const char *sel, const char *node, int net, bool ready)
{
	static int next_ip = 1;
	json_t *l = pods(sel);
	size_t i;
	json_t *p;
	int n = 0;
	json_array_foreach (l, i, p) {
		const char *name = jstr(p, "metadata.name");
		if (terminating(p) || jstr(p, "status.podIP"))
			continue;
		if (!jstr(p, "spec.nodeName"))
			bind_pod(name, node);
		pod_status(name, fmt("10.100.%d.%d", net, next_ip++ % 250 + 1), ready);
		n++;
	}
	json_decref(l);
	return n;
}

#endif
