// SPDX-License-Identifier: Apache-2.0
/*
 * The EndpointSlice controller in a real shoald: a Service's slices follow its pods'
 * addresses and readiness (ready, serving, terminating), carry node, zone and pod reference,
 * resolve named targetPorts per pod, split at 100 endpoints with minimal churn, serve headless
 * Services, keep the legacy Endpoints object, and go with their Service.
 */
#include "ctrl_helpers.h"

static void svc(const char *name, const char *app, const char *target, bool headless)
{
	req0("POST", "/api/v1/namespaces/default/services",
	     fmt("{\"metadata\":{\"name\":\"%s\",\"labels\":{\"team\":\"t\"}},\"spec\":{%s"
		 "\"selector\":{\"app\":\"%s\"},\"ports\":[{\"name\":\"web\",\"port\":80,"
		 "\"targetPort\":%s}]}}",
		 name, headless ? "\"clusterIP\":\"None\"," : "", app, target),
	     201);
}

static void pod(const char *name, const char *app, const char *port_name, int port)
{
	req0("POST", "/api/v1/namespaces/default/pods",
	     fmt("{\"metadata\":{\"name\":\"%s\",\"labels\":{\"app\":\"%s\"}},\"spec\":{"
		 "\"containers\":[{\"name\":\"c\",\"image\":\"nginx\",\"ports\":[{\"name\":\"%s\","
		 "\"containerPort\":%d}]}]}}",
		 name, app, port_name, port),
	     201);
}

static json_t *slices(const char *service)
{
	return items(fmt("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?"
			 "labelSelector=kubernetes.io%%2Fservice-name%%3D%s",
			 service));
}

/* Endpoints of all slices of service; with want_ready, only the ready ones. */
static size_t count_endpoints(const char *service, bool want_ready)
{
	json_t *l = slices(service);
	size_t i, j, n = 0;
	json_t *s, *e;
	json_array_foreach (l, i, s)
		json_array_foreach (json_object_get(s, "endpoints"), j, e)
			n += !want_ready || json_is_true(json_object_get(
						    json_object_get(e, "conditions"), "ready"));
	json_decref(l);
	return n;
}

static size_t count_slices(const char *service)
{
	json_t *l = slices(service);
	size_t n = json_array_size(l);
	json_decref(l);
	return n;
}

/* The endpoint of pod name in service's slices (a new reference), or NULL. */
static json_t *endpoint_of(const char *service, const char *name)
{
	json_t *l = slices(service), *found = NULL;
	size_t i, j;
	json_t *s, *e;
	json_array_foreach (l, i, s)
		json_array_foreach (json_object_get(s, "endpoints"), j, e) {
			if (!found && strcmp(jstr(e, "targetRef.name") ?: "", name) == 0)
				found = json_incref(e);
		}
	json_decref(l);
	return found;
}

static bool cond(const json_t *e, const char *which)
{
	return json_is_true(json_object_get(json_object_get(e, "conditions"), which));
}

static void test_api_ctrl_eps_follows_readiness(void **state)
{
	(void)state;
	add_node("node-z1", "zone-a");
	svc("web", "web", "8080", false);
	/* a Service with no endpoints has one empty slice */
	WAIT_FOR(5000, count_slices("web") == 1, "a placeholder slice");
	for (int i = 0; i < 3; i++)
		pod(fmt("web-%d", i), "web", "http", 8080);
	bind_pod("web-0", "node-z1");
	bind_pod("web-1", "node-z1");
	pod_status("web-0", "10.100.1.10", true);
	pod_status("web-1", "10.100.1.11", false);
	/* web-2 has no address yet: no endpoint */
	WAIT_FOR(5000, count_endpoints("web", false) == 2, "2 endpoints, have %zu",
		 count_endpoints("web", false));
	json_t *l = slices("web");
	assert_int_equal(json_array_size(l), 1);
	json_t *s = json_array_get(l, 0);
	char slice_name[128];
	snprintf(slice_name, sizeof(slice_name), "%s", jstr(s, "metadata.name"));
	assert_true(strncmp(slice_name, "web-", 4) == 0);
	assert_string_equal(jstr(s, "addressType"), "IPv4");
	json_t *labels = json_object_get(json_object_get(s, "metadata"), "labels");
	assert_string_equal(json_string_value(json_object_get(
				    labels, "endpointslice.kubernetes.io/managed-by")),
			    "endpointslice-controller.shoal.io");
	assert_string_equal(
		json_string_value(json_object_get(labels, "kubernetes.io/service-name")), "web");
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_object_get(s, "metadata"), "labels"), "team")),
		"t");
	json_t *ref = json_array_get(
		json_object_get(json_object_get(s, "metadata"), "ownerReferences"), 0);
	assert_string_equal(jstr(ref, "kind"), "Service");
	assert_string_equal(jstr(ref, "name"), "web");
	json_t *port = json_array_get(json_object_get(s, "ports"), 0);
	assert_int_equal(jint(port, "port"), 8080);
	assert_string_equal(jstr(port, "name"), "web");
	assert_string_equal(jstr(port, "protocol"), "TCP");
	json_decref(l);

	json_t *e0 = endpoint_of("web", "web-0"), *e1 = endpoint_of("web", "web-1");
	assert_non_null(e0);
	assert_non_null(e1);
	assert_true(cond(e0, "ready") && cond(e0, "serving") && !cond(e0, "terminating"));
	assert_true(!cond(e1, "ready") && !cond(e1, "serving"));
	assert_string_equal(json_string_value(json_array_get(json_object_get(e0, "addresses"), 0)),
			    "10.100.1.10");
	assert_string_equal(jstr(e0, "nodeName"), "node-z1");
	assert_string_equal(jstr(e0, "zone"), "zone-a");
	assert_string_equal(jstr(e0, "targetRef.kind"), "Pod");
	assert_non_null(jstr(e0, "targetRef.uid"));
	json_decref(e0);
	json_decref(e1);

	/* Legacy Endpoints: ready and not-ready addresses. */
	json_t *ep = NULL;
	WAIT_FOR(5000,
		 (json_decref(ep),
		  ep = req("GET", "/api/v1/namespaces/default/endpoints/web", NULL, 200),
		  json_array_size(json_object_get(json_array_get(json_object_get(ep, "subsets"), 0),
						  "notReadyAddresses")) == 1),
		 "Endpoints web");
	json_t *ss = json_array_get(json_object_get(ep, "subsets"), 0);
	assert_int_equal(json_array_size(json_object_get(ss, "addresses")), 1);
	assert_string_equal(jstr(json_array_get(json_object_get(ss, "addresses"), 0), "ip"),
			    "10.100.1.10");
	assert_int_equal(jint(json_array_get(json_object_get(ss, "ports"), 0), "port"), 8080);
	json_decref(ep);

	/* Readiness flips: the same slice is updated. */
	pod_status("web-1", "10.100.1.11", true);
	WAIT_FOR(5000, count_endpoints("web", true) == 2, "2 ready endpoints");
	l = slices("web");
	assert_int_equal(json_array_size(l), 1);
	assert_string_equal(jstr(json_array_get(l, 0), "metadata.name"), slice_name);
	json_decref(l);

	/* A pod being deleted is terminating: not ready, still serving. */
	req0("DELETE", "/api/v1/namespaces/default/pods/web-0", NULL, 200);
	WAIT_FOR(5000,
		 (e0 = endpoint_of("web", "web-0")) && cond(e0, "terminating")
			 ? true
			 : (json_decref(e0), false),
		 "web-0 terminating");
	assert_false(cond(e0, "ready"));
	assert_true(cond(e0, "serving"));
	json_decref(e0);
	/* its node confirms: it is gone */
	req0("DELETE", "/api/v1/namespaces/default/pods/web-0?gracePeriodSeconds=0", NULL, 200);
	WAIT_FOR(5000, count_endpoints("web", false) == 1, "web-0 gone from the slice");
}

static long long slice_rv(const char *service, const char *slice)
{
	json_t *l = slices(service);
	size_t i;
	json_t *s;
	long long rv = -1;
	json_array_foreach (l, i, s)
		if (strcmp(jstr(s, "metadata.name"), slice) == 0)
			rv = obj_rv(s);
	json_decref(l);
	return rv;
}

/* 150 endpoints make two slices, 100 and 50; one pod's change rewrites only its slice; more
 * endpoints never overfill a slice. */
static void test_api_ctrl_eps_splits_at_100(void **state)
{
	(void)state;
	for (int i = 0; i < 150; i++) {
		pod(fmt("big-%03d", i), "big", "http", 80);
		pod_status(fmt("big-%03d", i), fmt("10.101.%d.%d", i / 200, i % 200 + 1), true);
	}
	svc("big", "big", "80", false);
	WAIT_FOR(10000, count_endpoints("big", true) == 150, "150 endpoints, have %zu",
		 count_endpoints("big", true));
	json_t *l = slices("big");
	assert_int_equal(json_array_size(l), 2);
	size_t a = json_array_size(json_object_get(json_array_get(l, 0), "endpoints"));
	size_t b = json_array_size(json_object_get(json_array_get(l, 1), "endpoints"));
	if (!((a == 100 && b == 50) || (a == 50 && b == 100)))
		fail_msg("slices of %zu and %zu endpoints, want 100 and 50", a, b);
	char names[2][128];
	long long rvs[2];
	int holder = -1; /* the slice holding big-000 */
	for (int k = 0; k < 2; k++) {
		json_t *sl = json_array_get(l, k);
		snprintf(names[k], sizeof(names[k]), "%s", jstr(sl, "metadata.name"));
		rvs[k] = obj_rv(sl);
		size_t i;
		json_t *e;
		json_array_foreach (json_object_get(sl, "endpoints"), i, e)
			if (strcmp(jstr(e, "targetRef.name"), "big-000") == 0)
				holder = k;
	}
	json_decref(l);
	assert_true(holder >= 0);

	/* minimal churn: one pod not ready is one slice written */
	pod_status("big-000", "10.101.0.1", false);
	WAIT_FOR(5000, count_endpoints("big", true) == 149, "149 ready endpoints");
	assert_true(slice_rv("big", names[holder]) > rvs[holder]);
	assert_int_equal(slice_rv("big", names[1 - holder]), rvs[1 - holder]);

	for (int i = 150; i < 260; i++) {
		pod(fmt("big-%03d", i), "big", "http", 80);
		pod_status(fmt("big-%03d", i), fmt("10.101.%d.%d", i / 200, i % 200 + 1), true);
	}
	WAIT_FOR(10000, count_endpoints("big", true) == 259, "259 ready endpoints, have %zu",
		 count_endpoints("big", true));
	l = slices("big");
	size_t i, total = 0;
	json_t *sl;
	assert_true(json_array_size(l) >= 3);
	json_array_foreach (l, i, sl) {
		size_t n = json_array_size(json_object_get(sl, "endpoints"));
		assert_true(n <= 100);
		total += n;
	}
	assert_int_equal(total, 260);
	json_decref(l);
}

/* A named targetPort resolves per pod: pods naming it differently get their own slice. */
static void test_api_ctrl_eps_named_target_port(void **state)
{
	(void)state;
	svc("named", "named", "\"http\"", false);
	pod("named-a", "named", "http", 8080);
	pod("named-b", "named", "http", 9090);
	pod("named-c", "named", "metrics", 9100); /* no port named http: no endpoint */
	pod_status("named-a", "10.102.0.1", true);
	pod_status("named-b", "10.102.0.2", true);
	pod_status("named-c", "10.102.0.3", true);
	WAIT_FOR(5000, count_slices("named") == 3, "3 slices, have %zu", count_slices("named"));
	json_t *l = slices("named");
	int seen8080 = 0, seen9090 = 0, empty_ports = 0;
	size_t i;
	json_t *s;
	json_array_foreach (l, i, s) {
		json_t *ports = json_object_get(s, "ports");
		if (!json_array_size(ports)) {
			empty_ports++;
			assert_string_equal(jstr(json_array_get(json_object_get(s, "endpoints"), 0),
						 "targetRef.name"),
					    "named-c");
			continue;
		}
		long long port = jint(json_array_get(ports, 0), "port");
		const char *who =
			jstr(json_array_get(json_object_get(s, "endpoints"), 0), "targetRef.name");
		if (port == 8080) {
			seen8080++;
			assert_string_equal(who, "named-a");
		} else if (port == 9090) {
			seen9090++;
			assert_string_equal(who, "named-b");
		}
	}
	json_decref(l);
	assert_int_equal(seen8080, 1);
	assert_int_equal(seen9090, 1);
	assert_int_equal(empty_ports, 1);
}

static void test_api_ctrl_eps_headless_and_hostname(void **state)
{
	(void)state;
	svc("db", "db", "5432", true);
	req0("POST", "/api/v1/namespaces/default/pods",
	     "{\"metadata\":{\"name\":\"db-0\",\"labels\":{\"app\":\"db\"}},\"spec\":{\"hostname\":"
	     "\"db-0\",\"subdomain\":\"db\",\"containers\":[{\"name\":\"c\",\"image\":\"pg\"}]}}",
	     201);
	pod_status("db-0", "10.103.0.1", true);
	WAIT_FOR(5000, count_endpoints("db", true) == 1, "db endpoint");
	json_t *l = slices("db");
	json_t *labels =
		json_object_get(json_object_get(json_array_get(l, 0), "metadata"), "labels");
	assert_non_null(json_object_get(labels, "service.kubernetes.io/headless"));
	json_decref(l);
	json_t *e = endpoint_of("db", "db-0");
	assert_string_equal(jstr(e, "hostname"), "db-0");
	json_decref(e);
}

static void test_api_ctrl_eps_go_with_their_service(void **state)
{
	(void)state;
	svc("brief", "brief", "80", false);
	pod("brief-0", "brief", "http", 80);
	pod_status("brief-0", "10.104.0.1", true);
	WAIT_FOR(5000, count_endpoints("brief", true) == 1, "brief endpoint");
	req0("GET", "/api/v1/namespaces/default/endpoints/brief", NULL, 200);
	req0("DELETE", "/api/v1/namespaces/default/services/brief", NULL, 200);
	WAIT_FOR(5000, count_slices("brief") == 0, "slices gone");
	long code = 0;
	WAIT_FOR(5000,
		 (json_decref(http_json(&srv, "GET", "/api/v1/namespaces/default/endpoints/brief",
					NULL, &code)),
		  code == 404),
		 "Endpoints gone");
}

SHOAL_TEST_MAIN_SETUP(ctrl_setup, ctrl_teardown,
		      cmocka_unit_test(test_api_ctrl_eps_follows_readiness),
		      cmocka_unit_test(test_api_ctrl_eps_splits_at_100),
		      cmocka_unit_test(test_api_ctrl_eps_named_target_port),
		      cmocka_unit_test(test_api_ctrl_eps_headless_and_hostname),
		      cmocka_unit_test(test_api_ctrl_eps_go_with_their_service))
