// SPDX-License-Identifier: Apache-2.0
/*
 * The garbage collector in a real shoald: deleting an owner deletes its dependents in the
 * background (a Deployment takes its ReplicaSets and their pods), in the foreground (the owner
 * waits, marked, until its blocking dependents are gone) or orphans them (their references
 * to it are removed); an object keeps its live owners and loses its gone ones; an object
 * whose only owner never existed is deleted.
 */
#include "ctrl_helpers.h"

static const char *rs_body(const char *name, int replicas)
{
	return fmt(
		"{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"replicas\":%d,\"selector\":{"
		"\"matchLabels\":{\"app\":\"%s\"}},\"template\":{\"metadata\":{\"labels\":{"
		"\"app\":\"%s\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}}}",
		name, replicas, name, name);
}

static long code_of(const char *path)
{
	long code;
	json_decref(http_json(&srv, "GET", path, NULL, &code));
	return code;
}

static size_t count(const char *path)
{
	json_t *l = items(path);
	size_t n = json_array_size(l);
	json_decref(l);
	return n;
}

static void test_api_ctrl_gc_background_deployment(void **state)
{
	(void)state;
	req0("POST", "/apis/apps/v1/namespaces/default/deployments",
	     "{\"metadata\":{\"name\":\"bg\"},\"spec\":{\"replicas\":2,\"selector\":{"
	     "\"matchLabels\":"
	     "{\"app\":\"bg\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"bg\"}},\"spec\":{"
	     "\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}}}",
	     201);
	WAIT_FOR(5000, active_pods("app%3Dbg") == 2, "2 pods");
	req0("DELETE", "/apis/apps/v1/namespaces/default/deployments/bg", NULL, 200);
	WAIT_FOR(5000,
		 count("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dbg") == 0,
		 "the replica set goes with its deployment");
	WAIT_FOR(5000, count("/api/v1/namespaces/default/pods?labelSelector=app%3Dbg") == 0,
		 "the pods go with their replica set");
}

static void test_api_ctrl_gc_orphan(void **state)
{
	(void)state;
	req0("POST", "/apis/apps/v1/namespaces/default/replicasets", rs_body("orph", 2), 201);
	WAIT_FOR(5000, active_pods("app%3Dorph") == 2, "2 pods");
	req0("DELETE", "/apis/apps/v1/namespaces/default/replicasets/orph",
	     "{\"propagationPolicy\":\"Orphan\"}", 200);
	WAIT_FOR(5000, code_of("/apis/apps/v1/namespaces/default/replicasets/orph") == 404,
		 "the replica set is deleted once its pods are orphaned");
	json_t *l = pods("app%3Dorph");
	assert_int_equal(json_array_size(l), 2);
	size_t i;
	json_t *p;
	json_array_foreach (l, i, p) {
		assert_false(terminating(p));
		assert_int_equal(json_array_size(json_object_get(json_object_get(p, "metadata"),
								 "ownerReferences")),
				 0);
	}
	json_decref(l);
}

static void test_api_ctrl_gc_foreground(void **state)
{
	(void)state;
	req0("POST", "/apis/apps/v1/namespaces/default/replicasets", rs_body("fg", 3), 201);
	WAIT_FOR(5000, active_pods("app%3Dfg") == 3, "3 pods");
	/* one pod runs on a node: it stays (terminating) until its node confirms */
	json_t *l = pods("app%3Dfg");
	char bound[128];
	snprintf(bound, sizeof(bound), "%s", jstr(json_array_get(l, 0), "metadata.name"));
	json_decref(l);
	bind_pod(bound, "node-1");
	req0("DELETE",
	     "/apis/apps/v1/namespaces/default/replicasets/fg?propagationPolicy=Foreground", NULL,
	     200);
	/* the owner waits, marked, while a blocking dependent remains */
	WAIT_FOR(5000, count("/api/v1/namespaces/default/pods?labelSelector=app%3Dfg") == 1,
		 "the unbound pods are deleted");
	usleep(200000);
	json_t *rs = req("GET", "/apis/apps/v1/namespaces/default/replicasets/fg", NULL, 200);
	assert_non_null(jstr(rs, "metadata.deletionTimestamp"));
	assert_string_equal(
		json_string_value(json_array_get(
			json_object_get(json_object_get(rs, "metadata"), "finalizers"), 0)),
		"foregroundDeletion");
	json_decref(rs);
	/* the node confirms its pod gone: then the owner goes */
	req0("DELETE", fmt("/api/v1/namespaces/default/pods/%s?gracePeriodSeconds=0", bound), NULL,
	     200);
	WAIT_FOR(5000, code_of("/apis/apps/v1/namespaces/default/replicasets/fg") == 404,
		 "the replica set is deleted after its pods");
}

static void test_api_ctrl_gc_keeps_live_owners(void **state)
{
	(void)state;
	json_t *a = req(
		"POST", "/api/v1/namespaces/default/services",
		"{\"metadata\":{\"name\":\"owner-a\"},\"spec\":{\"ports\":[{\"port\":80}]}}", 201);
	json_t *b = req(
		"POST", "/api/v1/namespaces/default/services",
		"{\"metadata\":{\"name\":\"owner-b\"},\"spec\":{\"ports\":[{\"port\":80}]}}", 201);
	req0("POST", "/api/v1/namespaces/default/pods",
	     fmt("{\"metadata\":{\"name\":\"two-owners\",\"ownerReferences\":[{\"apiVersion\":"
		 "\"v1\",\"kind\":\"Service\",\"name\":\"owner-a\",\"uid\":\"%s\"},{\"apiVersion\":"
		 "\"v1\",\"kind\":\"Service\",\"name\":\"owner-b\",\"uid\":\"%s\"}]},\"spec\":{"
		 "\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}",
		 jstr(a, "metadata.uid"), jstr(b, "metadata.uid")),
	     201);
	req0("DELETE", "/api/v1/namespaces/default/services/owner-a", NULL, 200);
	json_t *p = NULL;
	WAIT_FOR(5000,
		 (json_decref(p),
		  p = req("GET", "/api/v1/namespaces/default/pods/two-owners", NULL, 200),
		  json_array_size(
			  json_object_get(json_object_get(p, "metadata"), "ownerReferences")) == 1),
		 "the gone owner's reference is removed");
	assert_string_equal(
		jstr(json_array_get(
			     json_object_get(json_object_get(p, "metadata"), "ownerReferences"), 0),
		     "name"),
		"owner-b");
	assert_false(terminating(p));
	json_decref(p);
	req0("DELETE", "/api/v1/namespaces/default/services/owner-b", NULL, 200);
	WAIT_FOR(5000, code_of("/api/v1/namespaces/default/pods/two-owners") == 404,
		 "the last owner gone, the pod goes");
	json_decref(a);
	json_decref(b);
}

static void test_api_ctrl_gc_owner_never_existed(void **state)
{
	(void)state;
	req0("POST", "/api/v1/namespaces/default/pods",
	     "{\"metadata\":{\"name\":\"dangling\",\"ownerReferences\":[{\"apiVersion\":\"apps/"
	     "v1\","
	     "\"kind\":\"ReplicaSet\",\"name\":\"nobody\",\"uid\":"
	     "\"99999999-8888-7777-6666-555555555555\"}]},\"spec\":{\"containers\":[{\"name\":"
	     "\"c\",\"image\":\"x\"}]}}",
	     201);
	WAIT_FOR(5000, code_of("/api/v1/namespaces/default/pods/dangling") == 404,
		 "a pod whose owner does not exist is collected");
}

SHOAL_TEST_MAIN_SETUP(ctrl_setup, ctrl_teardown,
		      cmocka_unit_test(test_api_ctrl_gc_background_deployment),
		      cmocka_unit_test(test_api_ctrl_gc_orphan),
		      cmocka_unit_test(test_api_ctrl_gc_foreground),
		      cmocka_unit_test(test_api_ctrl_gc_keeps_live_owners),
		      cmocka_unit_test(test_api_ctrl_gc_owner_never_existed))
