// SPDX-License-Identifier: Apache-2.0
/*
 * FederatedService against real daemons: the Service in every selected member (managed by
 * the federation, its node port allocated by the member), each member's reachable addresses
 * (its nodes' InternalIPs and the node port) published to the others as EndpointSlices of
 * their own Service, and everything removed when the FederatedService is deleted or a
 * cluster is no longer selected; a member that goes Offline (grace period 3 s) is withdrawn
 * from the others and published again when it is back. Deleting a Cluster removes the
 * federation's objects from its member and its slices from the others; a member that cannot
 * be reached holds the delete for the grace period only. A member is published only while
 * its Service has ready endpoints of its own (the member's EndpointSlice controller makes
 * them from the pods the test's agent thread makes Ready).
 */
#include "fed_helpers.h"

#define FS_PATH "/apis/federation.shoal.io/v1/namespaces/default/federatedservices"
#define SLICES	"/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"

static int setup(void **state)
{
	(void)state;
	static const char *const cpu[NMEM] = { "4", "4", "4" };
	return fed_start_all(cpu);
}

static int teardown(void **state)
{
	(void)state;
	return fed_stop_all();
}

static long long node_port(int i)
{
	long code;
	json_t *s = call(i, "GET", "/api/v1/namespaces/default/services/web", NULL, &code);
	long long p =
		code == 200
			? json_integer_value(json_object_get(
				  json_array_get(
					  json_object_get(json_object_get(s, "spec"), "ports"), 0),
				  "nodePort"))
			: -1;
	json_decref(s);
	return p;
}

/* The slice member i holds for cluster src: "ADDRESS:PORT", or "" when there is none. */
static const char *slice_of(int i, const char *src)
{
	long code;
	json_t *s = call(i, "GET", fmt(SLICES "/web-fed-%s", src), NULL, &code);
	const char *out = "";
	if (code == 200)
		out = fmt(
			"%s:%lld",
			json_string_value(json_array_get(
				json_object_get(json_array_get(json_object_get(s, "endpoints"), 0),
						"addresses"),
				0))
				?: "?",
			(long long)json_integer_value(json_object_get(
				json_array_get(json_object_get(s, "ports"), 0), "port")));
	json_decref(s);
	return out;
}

static size_t status_addresses(size_t i)
{
	json_t *fs = req(-1, "GET", FS_PATH "/web", NULL, 200);
	json_t *c = json_array_get(json_object_get(json_object_get(fs, "status"), "clusters"), i);
	size_t n = json_array_size(json_object_get(c, "addresses"));
	json_decref(fs);
	return n;
}

/* The ready endpoints of member i's Service web in its own slices (the federation's left
 * out). */
static size_t own_ready(int i)
{
	long code;
	json_t *l = call(i, "GET", SLICES "?labelSelector=kubernetes.io%2Fservice-name%3Dweb", NULL,
			 &code);
	size_t n = 0, k, j;
	json_t *sl, *ep;
	json_array_foreach (json_object_get(l, "items"), k, sl)
		if (!json_object_get(json_object_get(json_object_get(sl, "metadata"), "labels"),
				     "federation.shoal.io/source-cluster"))
			json_array_foreach (json_object_get(sl, "endpoints"), j, ep)
				n += !json_is_false(json_object_get(
					json_object_get(ep, "conditions"), "ready"));
	json_decref(l);
	return n;
}

/* The uids of member i's own slices of Service web (sorted by the API: by name). */
static const char *own_slice_uids(int i)
{
	long code;
	json_t *l = call(i, "GET", SLICES "?labelSelector=kubernetes.io%2Fservice-name%3Dweb", NULL,
			 &code);
	char *out = (char *)fmt("%s", "");
	size_t k;
	json_t *sl;
	json_array_foreach (json_object_get(l, "items"), k, sl)
		if (!json_object_get(json_object_get(json_object_get(sl, "metadata"), "labels"),
				     "federation.shoal.io/source-cluster"))
			snprintf(out + strlen(out), 8192 - strlen(out), "%s ",
				 jstr(sl, "metadata.uid") ?: "?");
	json_decref(l);
	return out;
}

static void test_fed_service_published_to_every_member(void **state)
{
	(void)state;
	req0(-1, "POST", FS_PATH,
	     "{\"apiVersion\":\"federation.shoal.io/"
	     "v1\",\"kind\":\"FederatedService\",\"metadata\":"
	     "{\"name\":\"web\"},\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}"
	     "},"
	     "\"spec\":{\"type\":\"NodePort\",\"selector\":{\"app\":\"web\"},\"ports\":[{\"name\":"
	     "\"http\",\"port\":80,\"targetPort\":8080}]}},\"placement\":{\"clusters\":[\"a\","
	     "\"b\","
	     "\"c\"]}}}",
	     201);
	/* one ready pod of app=web in each member: each has endpoints of its own to offer */
	req0(-1, "POST", FD_PATH, fd_json("web", 3, NULL, "", ""), 201);
	WAIT_FOR(15000, node_port(0) > 0 && node_port(1) > 0 && node_port(2) > 0,
		 "every member serves the Service: node ports %lld/%lld/%lld", node_port(0),
		 node_port(1), node_port(2));
	json_t *s = req(1, "GET", "/api/v1/namespaces/default/services/web", NULL, 200);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_object_get(s, "metadata"), "labels"),
				    "federation.shoal.io/managed-by")),
			    "fedtest");
	json_decref(s);
	/* a reaches b and c at their nodes' addresses and node ports, and so on */
	for (int i = 0; i < NMEM; i++)
		for (int j = 0; j < NMEM; j++) {
			if (i == j)
				continue;
			const char *want = fmt("10.99.%d.1:%lld", j + 1, node_port(j));
			WAIT_FOR(15000, !strcmp(slice_of(i, mem_name[j]), want),
				 "%s's slice for %s: want %s, have \"%s\"", mem_name[i],
				 mem_name[j], want, slice_of(i, mem_name[j]));
		}
	json_t *sl = req(0, "GET", SLICES "/web-fed-b", NULL, 200);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_object_get(sl, "metadata"), "labels"),
				    "kubernetes.io/service-name")),
			    "web");
	json_decref(sl);
	/* the federation's status lists each cluster's addresses (written after the members) */
	WAIT_FOR(15000, status_addresses(2) == 1, "status.clusters[2]: %zu addresses",
		 status_addresses(2));
	json_t *fs = req(-1, "GET", FS_PATH "/web", NULL, 200);
	json_t *cl = json_object_get(json_object_get(fs, "status"), "clusters");
	assert_int_equal(json_array_size(cl), 3);
	assert_string_equal(jstr(json_array_get(cl, 2), "cluster"), "c");
	json_decref(fs);

	/* the member's own slices (which carry the Service's labels) are never the federation's
	 * to delete: they keep their uids through every reconcile below */
	char a_own[512];
	snprintf(a_own, sizeof(a_own), "%s", own_slice_uids(0));
	assert_string_not_equal(a_own, "");

	/* c stops: once Offline its slices in a and b are withdrawn; back, they return */
	const char *c_at = fmt("10.99.3.1:%lld", node_port(2));
	char c_want[64];
	snprintf(c_want, sizeof(c_want), "%s", c_at);
	atomic_store(&mem_up[2], false);
	assert_int_equal(shoald_stop(&mem[2]), 0);
	WAIT_FOR(20000, cluster_cond("c", "Offline", "True"), "c is not Offline");
	WAIT_FOR(15000, !strcmp(slice_of(0, "c"), "") && !strcmp(slice_of(1, "c"), ""),
		 "c is Offline and still published: a has \"%s\", b \"%s\"", slice_of(0, "c"),
		 slice_of(1, "c"));
	/* the others stay */
	if (!strcmp(slice_of(0, "b"), ""))
		fail_msg("a lost b's slice; b has %zu ready endpoints, %lld replicas", own_ready(1),
			 member_replicas(1, "web"));
	assert_int_equal(shoald_restart(&mem[2]), 0);
	atomic_store(&mem_up[2], true);
	WAIT_FOR(20000, !strcmp(slice_of(0, "c"), c_want) && !strcmp(slice_of(1, "c"), c_want),
		 "c is back and not published again: a has \"%s\", b \"%s\" (want %s)",
		 slice_of(0, "c"), slice_of(1, "c"), c_want);
	assert_string_equal(own_slice_uids(0), a_own);

	/* c leaves the placement: its Service goes, and so do the slices for it */
	req0(-1, "PATCH", FS_PATH "/web", "{\"spec\":{\"placement\":{\"clusters\":[\"a\",\"b\"]}}}",
	     200);
	WAIT_FOR(15000,
		 node_port(2) == -1 && !strcmp(slice_of(0, "c"), "") &&
			 !strcmp(slice_of(1, "c"), "") && !strcmp(slice_of(2, "a"), ""),
		 "c still serves or is still published");
	assert_true(strcmp(slice_of(0, "b"), "") != 0);

	req0(-1, "DELETE", FS_PATH "/web", NULL, 200);
	WAIT_FOR(15000,
		 node_port(0) == -1 && node_port(1) == -1 && !strcmp(slice_of(0, "b"), "") &&
			 !strcmp(slice_of(1, "a"), ""),
		 "after the delete the members still hold the Service or its slices");
	req0(-1, "DELETE", FD_PATH "/web", NULL, 200);
	WAIT_FOR(15000,
		 member_replicas(0, "web") == -1 && member_replicas(1, "web") == -1 &&
			 member_replicas(2, "web") == -1,
		 "the members still hold Deployment web");
}

static const char *fs_for(const char *app)
{
	return fmt("{\"apiVersion\":\"federation.shoal.io/v1\",\"kind\":\"FederatedService\","
		   "\"metadata\":{\"name\":\"web\"},\"spec\":{\"template\":{\"spec\":{\"type\":"
		   "\"NodePort\",\"selector\":{\"app\":\"%s\"},\"ports\":[{\"name\":\"http\","
		   "\"port\":80,\"targetPort\":8080}]}},\"placement\":{\"clusters\":[\"a\",\"b\","
		   "\"c\"]}}}",
		   app);
}

static void test_fed_service_publishes_only_members_with_ready_endpoints(void **state)
{
	(void)state;
	/* c gets no replica: its Service has no endpoints, and nobody is sent to it */
	req0(-1, "POST", FS_PATH, fs_for("pub"), 201);
	req0(-1, "POST", FD_PATH, fd_json("pub", 2, weights3(1, 1, 0), "", ""), 201);
	WAIT_FOR(15000,
		 strcmp(slice_of(0, "b"), "") && strcmp(slice_of(1, "a"), "") &&
			 strcmp(slice_of(2, "a"), "") && strcmp(slice_of(2, "b"), ""),
		 "a and b are not published: c has a \"%s\" b \"%s\"", slice_of(2, "a"),
		 slice_of(2, "b"));
	assert_true(member_replicas(2, "pub") <= 0);
	assert_int_equal(own_ready(2), 0);
	assert_string_equal(slice_of(0, "c"), "");
	assert_string_equal(slice_of(1, "c"), "");

	/* c gets a ready pod: published to a and b */
	req0(-1, "PATCH", FD_PATH "/pub",
	     fmt("{\"spec\":{\"replicas\":3,\"placement\":{\"replicaScheduling\":{"
		 "\"weights\":%s}}}}",
		 weights3(1, 1, 1)),
	     200);
	const char *c_at = fmt("10.99.3.1:%lld", node_port(2));
	char c_want[64];
	snprintf(c_want, sizeof(c_want), "%s", c_at);
	WAIT_FOR(15000, !strcmp(slice_of(0, "c"), c_want) && !strcmp(slice_of(1, "c"), c_want),
		 "c has %zu ready endpoints and is not published: a has \"%s\", b \"%s\"",
		 own_ready(2), slice_of(0, "c"), slice_of(1, "c"));
	/* the federation's slices in c do not count as c's own endpoints */
	assert_string_not_equal(slice_of(2, "a"), "");

	/* c's pod goes: c is withdrawn, a and b stay */
	req0(-1, "PATCH", FD_PATH "/pub",
	     fmt("{\"spec\":{\"replicas\":2,\"placement\":{\"replicaScheduling\":{"
		 "\"weights\":%s}}}}",
		 weights3(1, 1, 0)),
	     200);
	WAIT_FOR(15000, !strcmp(slice_of(0, "c"), "") && !strcmp(slice_of(1, "c"), ""),
		 "c has %zu ready endpoints and is still published: a has \"%s\", b \"%s\"",
		 own_ready(2), slice_of(0, "c"), slice_of(1, "c"));
	assert_string_not_equal(slice_of(0, "b"), "");
	assert_string_not_equal(slice_of(1, "a"), "");

	req0(-1, "DELETE", FD_PATH "/pub", NULL, 200);
	req0(-1, "DELETE", FS_PATH "/web", NULL, 200);
	WAIT_FOR(15000,
		 node_port(0) == -1 && node_port(1) == -1 && node_port(2) == -1 &&
			 member_replicas(0, "pub") == -1 && member_replicas(1, "pub") == -1,
		 "the members still hold Service web or Deployment pub");
}

static void test_fed_cluster_delete_cleans_its_member(void **state)
{
	(void)state;
	req0(-1, "POST", FS_PATH, fs_for("del"), 201);
	req0(-1, "POST", FD_PATH, fd_json("del", 3, NULL, "", ""), 201);
	WAIT_FOR(15000,
		 member_replicas(2, "del") > 0 && node_port(2) > 0 &&
			 strcmp(slice_of(0, "c"), "") && strcmp(slice_of(2, "a"), ""),
		 "c does not serve: replicas %lld, node port %lld, a's slice of c \"%s\"",
		 member_replicas(2, "del"), node_port(2), slice_of(0, "c"));
	json_t *cl = req(-1, "GET", CL_PATH "/c", NULL, 200);
	const json_t *fins = json_object_get(json_object_get(cl, "metadata"), "finalizers");
	assert_int_equal(json_array_size(fins), 1);
	assert_string_equal(json_string_value(json_array_get(fins, 0)),
			    "federation.shoal.io/member-cleanup");
	json_decref(cl);

	/* c is deleted: the Cluster goes once its member holds nothing of the federation */
	req0(-1, "DELETE", CL_PATH "/c", NULL, 200);
	WAIT_FOR(15000, !cluster_exists("c"), "Cluster c is still there");
	assert_int_equal(member_replicas(2, "del"), -1);
	assert_int_equal(node_port(2), -1);
	assert_string_equal(slice_of(2, "a"), "");
	WAIT_FOR(15000, !strcmp(slice_of(0, "c"), "") && !strcmp(slice_of(1, "c"), ""),
		 "the others still hold c's slices: a \"%s\", b \"%s\"", slice_of(0, "c"),
		 slice_of(1, "c"));
	/* its replicas went to the others */
	WAIT_FOR(15000, member_replicas(0, "del") + member_replicas(1, "del") == 3,
		 "a and b hold %lld of 3", member_replicas(0, "del") + member_replicas(1, "del"));

	/* b cannot be reached: its delete waits for the grace period (3 s), then goes anyway */
	atomic_store(&mem_up[1], false);
	assert_int_equal(shoald_stop(&mem[1]), 0);
	long long t0 = mono_ms();
	req0(-1, "DELETE", CL_PATH "/b", NULL, 200);
	assert_true(cluster_exists("b"));
	WAIT_FOR(20000, !cluster_exists("b"), "Cluster b is still there");
	long long took = mono_ms() - t0;
	print_message("# the delete of an unreachable member took %lld ms (grace period 3000 ms)\n",
		      took);
	assert_true(took >= 2000);
	WAIT_FOR(15000, !strcmp(slice_of(0, "b"), ""), "a still holds b's slice \"%s\"",
		 slice_of(0, "b"));
	req0(-1, "DELETE", FD_PATH "/del", NULL, 200);
	req0(-1, "DELETE", FS_PATH "/web", NULL, 200);
}

SHOAL_TEST_MAIN_SETUP(
	setup, teardown, cmocka_unit_test(test_fed_service_published_to_every_member),
	cmocka_unit_test(test_fed_service_publishes_only_members_with_ready_endpoints),
	cmocka_unit_test(test_fed_cluster_delete_cleans_its_member))
