// SPDX-License-Identifier: Apache-2.0
/*
 * The ReplicaSet controller in a real shoald: it creates pods to match spec.replicas (owned
 * by the ReplicaSet, named after it), replaces a deleted pod, scales down deleting the
 * least useful pods first, adopts orphans its selector matches and releases pods whose
 * labels stop matching, and reports replicas, readyReplicas, availableReplicas (after
 * minReadySeconds), fullyLabeledReplicas and observedGeneration.
 */
#include "ctrl_helpers.h"

static const char *rs_body(const char *name, int replicas, int min_ready)
{
	return fmt("{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"replicas\":%d,\"minReadySeconds\":"
		   "%d,\"selector\":{\"matchLabels\":{\"app\":\"%s\"}},\"template\":{\"metadata\":"
		   "{\"labels\":{\"app\":\"%s\",\"tier\":\"web\"}},\"spec\":{\"containers\":[{"
		   "\"name\":\"c\",\"image\":\"nginx:1.25\"}]}}}}",
		   name, replicas, min_ready, name, name);
}

static json_t *get_rs(const char *name)
{
	return req("GET", fmt("/apis/apps/v1/namespaces/default/replicasets/%s", name), NULL, 200);
}

static long long rs_status(const char *name, const char *field)
{
	json_t *rs = get_rs(name);
	long long v = jint(rs, fmt("status.%s", field));
	json_decref(rs);
	return v;
}

static void test_api_ctrl_rs_creates_and_owns_pods(void **state)
{
	(void)state;
	json_t *rs = req("POST", "/apis/apps/v1/namespaces/default/replicasets",
			 rs_body("web", 3, 0), 201);
	const char *uid = jstr(rs, "metadata.uid");
	WAIT_FOR(5000, active_pods("app%3Dweb") == 3, "want 3 pods, have %zu",
		 active_pods("app%3Dweb"));
	json_t *l = pods("app%3Dweb");
	size_t i;
	json_t *p;
	json_array_foreach (l, i, p) {
		json_t *ref = json_array_get(
			json_object_get(json_object_get(p, "metadata"), "ownerReferences"), 0);
		assert_string_equal(jstr(ref, "uid"), uid);
		assert_string_equal(jstr(ref, "kind"), "ReplicaSet");
		assert_true(json_is_true(json_object_get(ref, "controller")));
		assert_true(strncmp(jstr(p, "metadata.name"), "web-", 4) == 0);
		assert_string_equal(jstr(p, "metadata.labels.tier"), "web");
		assert_string_equal(jstr(p, "spec.restartPolicy"), "Always");
	}
	json_decref(l);
	WAIT_FOR(5000, rs_status("web", "replicas") == 3, "status.replicas");
	assert_int_equal(rs_status("web", "fullyLabeledReplicas"), 3);
	assert_int_equal(rs_status("web", "readyReplicas"), 0);
	assert_int_equal(rs_status("web", "observedGeneration"), 1);

	/* The agent's part: they run and get ready. */
	assert_int_equal(run_pods("app%3Dweb", "node-1", 1, true), 3);
	WAIT_FOR(5000, rs_status("web", "availableReplicas") == 3, "availableReplicas: %lld",
		 rs_status("web", "availableReplicas"));
	assert_int_equal(rs_status("web", "readyReplicas"), 3);
	json_decref(rs);
}

static void test_api_ctrl_rs_replaces_deleted_pod(void **state)
{
	(void)state;
	req0("POST", "/apis/apps/v1/namespaces/default/replicasets", rs_body("heal", 2, 0), 201);
	WAIT_FOR(5000, active_pods("app%3Dheal") == 2, "want 2 pods");
	json_t *l = pods("app%3Dheal");
	const char *victim = jstr(json_array_get(l, 0), "metadata.name");
	/* unbound: deleted at once */
	req0("DELETE", fmt("/api/v1/namespaces/default/pods/%s", victim), NULL, 200);
	WAIT_FOR(5000, active_pods("app%3Dheal") == 2, "a replacement pod");
	json_t *l2 = pods("app%3Dheal");
	size_t i;
	json_t *p;
	json_array_foreach (l2, i, p)
		assert_string_not_equal(jstr(p, "metadata.name"), victim);
	json_decref(l2);
	json_decref(l);
	/* and no more than that, a while later */
	usleep(300000);
	assert_int_equal(active_pods("app%3Dheal"), 2);
}

/* Scaling down deletes unscheduled, then not-ready pods before ready ones. */
static void test_api_ctrl_rs_scales_down_least_useful_first(void **state)
{
	(void)state;
	req0("POST", "/apis/apps/v1/namespaces/default/replicasets", rs_body("down", 4, 0), 201);
	WAIT_FOR(5000, active_pods("app%3Ddown") == 4, "want 4 pods");
	json_t *l = pods("app%3Ddown");
	char ready[2][64], bound_not_ready[64];
	snprintf(ready[0], 64, "%s", jstr(json_array_get(l, 0), "metadata.name"));
	snprintf(ready[1], 64, "%s", jstr(json_array_get(l, 1), "metadata.name"));
	snprintf(bound_not_ready, 64, "%s", jstr(json_array_get(l, 2), "metadata.name"));
	json_decref(l);
	bind_pod(ready[0], "node-1");
	bind_pod(ready[1], "node-2");
	bind_pod(bound_not_ready, "node-2");
	pod_status(ready[0], "10.100.9.1", true);
	pod_status(ready[1], "10.100.9.2", true);
	pod_status(bound_not_ready, "10.100.9.3", false);
	WAIT_FOR(5000, rs_status("down", "readyReplicas") == 2, "2 ready");

	/* via the scale sub-resource */
	req0("PUT", "/apis/apps/v1/namespaces/default/replicasets/down/scale",
	     "{\"spec\":{\"replicas\":2}}", 200);
	WAIT_FOR(5000, active_pods("app%3Ddown") == 2, "want 2 active pods, have %zu",
		 active_pods("app%3Ddown"));
	l = pods("app%3Ddown");
	size_t i;
	json_t *p;
	json_array_foreach (l, i, p) {
		if (terminating(p))
			continue; /* the bound one waits for its node (graceful deletion) */
		const char *n = jstr(p, "metadata.name");
		assert_true(strcmp(n, ready[0]) == 0 || strcmp(n, ready[1]) == 0);
	}
	json_decref(l);
	WAIT_FOR(5000, rs_status("down", "replicas") == 2, "status.replicas 2");
	assert_int_equal(rs_status("down", "observedGeneration"), 2);
	/* to zero */
	req0("PATCH", "/apis/apps/v1/namespaces/default/replicasets/down",
	     "{\"spec\":{\"replicas\":0}}", 200);
	WAIT_FOR(5000, active_pods("app%3Ddown") == 0, "want no active pods");
	WAIT_FOR(5000, rs_status("down", "replicas") == 0, "status.replicas 0");
}

static void test_api_ctrl_rs_adopts_orphans_and_releases(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++)
		req0("POST", "/api/v1/namespaces/default/pods",
		     fmt("{\"metadata\":{\"name\":\"orphan-%d\",\"labels\":{\"app\":\"adopt\"}},"
			 "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"nginx\"}]}}",
			 i),
		     201);
	/* someone else's pod is not taken */
	req0("POST", "/api/v1/namespaces/default/pods",
	     "{\"metadata\":{\"name\":\"taken\",\"labels\":{\"app\":\"adopt\"},\"ownerReferences\":"
	     "[{\"apiVersion\":\"v1\",\"kind\":\"ReplicationController\",\"name\":\"x\",\"uid\":"
	     "\"11111111-2222-3333-4444-555555555555\",\"controller\":true}]},\"spec\":{"
	     "\"containers\":[{\"name\":\"c\",\"image\":\"nginx\"}]}}",
	     201);
	json_t *rs = req("POST", "/apis/apps/v1/namespaces/default/replicasets",
			 rs_body("adopt", 3, 0), 201);
	const char *uid = jstr(rs, "metadata.uid");
	WAIT_FOR(5000, rs_status("adopt", "replicas") == 3, "3 replicas");
	/* both orphans adopted, one pod created, the other controller's pod untouched */
	assert_int_equal(active_pods("app%3Dadopt"), 4);
	for (int i = 0; i < 2; i++) {
		json_t *p =
			req("GET", fmt("/api/v1/namespaces/default/pods/orphan-%d", i), NULL, 200);
		json_t *ref = json_array_get(
			json_object_get(json_object_get(p, "metadata"), "ownerReferences"), 0);
		assert_string_equal(jstr(ref, "uid"), uid);
		json_decref(p);
	}
	/* fullyLabeled: the orphans lack the template's tier label */
	assert_int_equal(rs_status("adopt", "fullyLabeledReplicas"), 1);

	/* A pod relabeled out of the selector is released and replaced. */
	req0("PATCH", "/api/v1/namespaces/default/pods/orphan-0",
	     "{\"metadata\":{\"labels\":{\"app\":\"elsewhere\"}}}", 200);
	WAIT_FOR(5000, active_pods("app%3Dadopt") == 4, "a replacement for the released pod");
	json_t *p = req("GET", "/api/v1/namespaces/default/pods/orphan-0", NULL, 200);
	WAIT_FOR(5000,
		 (json_decref(p),
		  p = req("GET", "/api/v1/namespaces/default/pods/orphan-0", NULL, 200),
		  json_array_size(
			  json_object_get(json_object_get(p, "metadata"), "ownerReferences")) == 0),
		 "orphan-0 released");
	json_decref(p);
	json_decref(rs);
}

static void test_api_ctrl_rs_min_ready_seconds(void **state)
{
	(void)state;
	req0("POST", "/apis/apps/v1/namespaces/default/replicasets", rs_body("slow", 2, 2), 201);
	WAIT_FOR(5000, active_pods("app%3Dslow") == 2, "2 pods");
	run_pods("app%3Dslow", "node-1", 3, true);
	WAIT_FOR(5000, rs_status("slow", "readyReplicas") == 2, "2 ready");
	assert_int_equal(rs_status("slow", "availableReplicas"), 0);
	WAIT_FOR(5000, rs_status("slow", "availableReplicas") == 2,
		 "available after minReadySeconds");
}

static void test_api_ctrl_rs_figures_in_metrics(void **state)
{
	(void)state;
	struct http_resp r;
	assert_int_equal(http_do(&srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r), 0);
	assert_non_null(strstr(r.body, "shoal_controller_reconciles_total{controller=\"replicaset\""
				       ",result=\"success\"}"));
	assert_non_null(strstr(r.body, "shoal_controller_queue_depth{controller=\"replicaset\"}"));
	assert_non_null(strstr(r.body, "shoal_controller_reconcile_duration_seconds_count{"
				       "controller=\"endpointslice\"}"));
	http_resp_free(&r);
}

SHOAL_TEST_MAIN_SETUP(ctrl_setup, ctrl_teardown,
		      cmocka_unit_test(test_api_ctrl_rs_creates_and_owns_pods),
		      cmocka_unit_test(test_api_ctrl_rs_replaces_deleted_pod),
		      cmocka_unit_test(test_api_ctrl_rs_scales_down_least_useful_first),
		      cmocka_unit_test(test_api_ctrl_rs_adopts_orphans_and_releases),
		      cmocka_unit_test(test_api_ctrl_rs_min_ready_seconds),
		      cmocka_unit_test(test_api_ctrl_rs_figures_in_metrics))
