// SPDX-License-Identifier: Apache-2.0
/*
 * The scheduler inside shoald, through the API: pods created over HTTP get bound to a node
 * that fits; an unschedulable pod gets PodScheduled=False with a message counting reasons,
 * and is bound as soon as a node that fits is added (no polling: the node's event wakes it).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shoal_test.h"
#include "shoald_fixture.h"

static struct shoald srv;

static int setup(void **state)
{
	(void)state;
	const char *args[] = { "--log-level", "warn", NULL };
	return shoald_start(&srv, args);
}

static int teardown(void **state)
{
	(void)state;
	int st = shoald_stop(&srv);
	shoald_destroy(&srv);
	return st == 0 ? 0 : -1;
}

static void add_node(const char *name, const char *cpu, const char *zone)
{
	char body[1024];
	long code;
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"%s\",\"labels\":{\"topology.kubernetes.io/zone\":\"%s\","
		 "\"kubernetes.io/hostname\":\"%s\"}},\"spec\":{},\"status\":{\"capacity\":{\"cpu\":"
		 "\"%s\",\"memory\":\"8Gi\",\"pods\":\"110\"},\"allocatable\":{\"cpu\":\"%s\","
		 "\"memory\":\"8Gi\",\"pods\":\"110\"},\"conditions\":[{\"type\":\"Ready\",\"status\":"
		 "\"True\"}]}}",
		 name, zone, name, cpu, cpu);
	json_t *o = http_json(&srv, "POST", "/api/v1/nodes", body, &code);
	assert_int_equal(code, 201);
	json_decref(o);
}

static void add_pod(const char *name, const char *cpu)
{
	char body[1024];
	long code;
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"%s\",\"labels\":{\"app\":\"s\"}},\"spec\":{\"containers\":"
		 "[{\"name\":\"c\",\"image\":\"web\",\"command\":[\"sleep\",\"1\"],\"resources\":{"
		 "\"requests\":{\"cpu\":\"%s\",\"memory\":\"64Mi\"}}}]}}",
		 name, cpu);
	json_t *o = http_json(&srv, "POST", "/api/v1/namespaces/default/pods", body, &code);
	assert_int_equal(code, 201);
	json_decref(o);
}

/* Waits up to ms for the pod to satisfy want(); returns the pod (or NULL). */
static json_t *wait_pod(const char *name, bool (*want)(const json_t *), int ms)
{
	char path[256];
	snprintf(path, sizeof(path), "/api/v1/namespaces/default/pods/%s", name);
	for (int waited = 0; waited <= ms; waited += 20) {
		long code;
		json_t *o = http_json(&srv, "GET", path, NULL, &code);
		if (o && want(o))
			return o;
		json_decref(o);
		usleep(20000);
	}
	return NULL;
}

static bool is_bound(const json_t *p)
{
	const char *n = json_string_value(json_object_get(json_object_get(p, "spec"), "nodeName"));
	return n && *n;
}

static const char *unsched_message(const json_t *p)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(json_object_get(p, "status"), "conditions"), i, c)
	{
		if (strcmp(json_string_value(json_object_get(c, "type")), "PodScheduled") == 0 &&
		    strcmp(json_string_value(json_object_get(c, "status")), "False") == 0)
			return json_string_value(json_object_get(c, "message"));
	}
	return NULL;
}

static bool is_unschedulable(const json_t *p)
{
	return unsched_message(p) != NULL;
}

static void test_api_sched_binds_created_pods(void **state)
{
	(void)state;
	add_node("node-a", "2", "z1");
	add_node("node-b", "2", "z2");
	for (int i = 0; i < 6; i++) {
		char name[32];
		snprintf(name, sizeof(name), "small-%d", i);
		add_pod(name, "500m");
	}
	int on_a = 0;
	for (int i = 0; i < 6; i++) {
		char name[32];
		snprintf(name, sizeof(name), "small-%d", i);
		json_t *p = wait_pod(name, is_bound, 5000);
		if (!p)
			fail_msg("pod %s was not bound within 5 s", name);
		on_a += strcmp(json_string_value(json_object_get(json_object_get(p, "spec"), "nodeName")),
			       "node-a") == 0;
		json_decref(p);
	}
	/* Six pods of 500m on two 2-core nodes: at most four fit on one. */
	assert_true(on_a >= 2 && on_a <= 4);
}

static void test_api_sched_unschedulable_until_a_node_fits(void **state)
{
	(void)state;
	add_pod("big", "6");
	json_t *p = wait_pod("big", is_unschedulable, 5000);
	if (!p)
		fail_msg("pod big got no PodScheduled=False condition within 5 s");
	const char *msg = unsched_message(p);
	if (!strstr(msg, "0/2 nodes are available") || !strstr(msg, "Insufficient cpu"))
		fail_msg("unexpected message: %s", msg);
	json_decref(p);
	add_node("node-big", "8", "z3");
	p = wait_pod("big", is_bound, 5000);
	if (!p)
		fail_msg("pod big was not bound after a node that fits was added");
	assert_string_equal(json_string_value(json_object_get(json_object_get(p, "spec"), "nodeName")),
			    "node-big");
	json_decref(p);
}

static void test_api_sched_publishes_node_figures(void **state)
{
	(void)state;
	struct http_resp r;
	bool found = false;
	/* Published at most once a second. */
	for (int i = 0; i < 40 && !found; i++) {
		assert_int_equal(http_do(&srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r), 0);
		found = r.body &&
			strstr(r.body, "shoal_scheduler_node_resource{node=\"node-a\",kind=\"requested\","
				       "resource=\"cpu\"}") &&
			strstr(r.body, "kind=\"batch_allocatable\"") &&
			strstr(r.body, "shoal_scheduler_pods_total{result=\"scheduled\"} 7");
		http_resp_free(&r);
		if (!found)
			usleep(100000);
	}
	assert_true(found);
}

/* The first Event about pod name with reason (a new reference), waiting up to ms. */
static json_t *wait_event(const char *name, const char *reason, int ms)
{
	char path[512];
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%%3D%s", name);
	for (int waited = 0; waited <= ms; waited += 50) {
		long code;
		json_t *l = http_json(&srv, "GET", path, NULL, &code);
		json_t *ev;
		size_t i;
		json_array_foreach (json_object_get(l, "items"), i, ev) {
			const char *r = json_string_value(json_object_get(ev, "reason"));
			if (r && strcmp(r, reason) == 0) {
				json_incref(ev);
				json_decref(l);
				return ev;
			}
		}
		json_decref(l);
		usleep(50000);
	}
	return NULL;
}

/* kubectl describe pod's view: Scheduled naming the node, FailedScheduling naming why. */
static void test_api_sched_records_events(void **state)
{
	(void)state;
	json_t *ev = wait_event("small-0", "Scheduled", 5000);
	if (!ev)
		fail_msg("no Scheduled event about pod small-0");
	const char *msg = json_string_value(json_object_get(ev, "message"));
	assert_non_null(strstr(msg, "Successfully assigned default/small-0 to node-"));
	assert_string_equal(json_string_value(json_object_get(ev, "type")), "Normal");
	json_t *io = json_object_get(ev, "involvedObject");
	assert_string_equal(json_string_value(json_object_get(io, "kind")), "Pod");
	assert_true(strlen(json_string_value(json_object_get(io, "uid"))) > 0);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(ev, "source"), "component")),
		"shoald");
	json_decref(ev);

	add_pod("huge", "64");
	ev = wait_event("huge", "FailedScheduling", 5000);
	if (!ev)
		fail_msg("no FailedScheduling event about pod huge");
	assert_string_equal(json_string_value(json_object_get(ev, "type")), "Warning");
	msg = json_string_value(json_object_get(ev, "message"));
	assert_non_null(strstr(msg, "cpu"));
	json_decref(ev);
}

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_api_sched_binds_created_pods),
		      cmocka_unit_test(test_api_sched_unschedulable_until_a_node_fits),
		      cmocka_unit_test(test_api_sched_publishes_node_figures),
		      cmocka_unit_test(test_api_sched_records_events))
