// SPDX-License-Identifier: Apache-2.0
/*
 * Namespace deletion in a real shoald: a new namespace holds the "kubernetes" finalizer and
 * is Active; DELETE marks it Terminating; the namespace controller deletes everything in it
 * (a Deployment with its ReplicaSet and pods, a pod on a node only once its node confirms,
 * Services and their Endpoints, Leases, Events, PodGroups), reports what remains in
 * status.conditions, removes its finalizer through /finalize and the namespace goes. New
 * content is refused while it terminates; an object's own finalizer holds it; the cluster's
 * own namespaces cannot be deleted; /finalize checks its body.
 */
#include "ctrl_helpers.h"

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

static void create_ns(const char *name)
{
	json_t *ns = req("POST", "/api/v1/namespaces",
			 fmt("{\"metadata\":{\"name\":\"%s\"}}", name), 201);
	json_t *fins = json_object_get(json_object_get(ns, "spec"), "finalizers");
	assert_int_equal(json_array_size(fins), 1);
	assert_string_equal(json_string_value(json_array_get(fins, 0)), "kubernetes");
	assert_string_equal(jstr(ns, "status.phase"), "Active");
	json_decref(ns);
}

/* The condition of type on namespace ns: "status|reason|message" ("" when absent). */
static const char *condition(const char *ns, const char *type)
{
	long code;
	json_t *o = http_json(&srv, "GET", fmt("/api/v1/namespaces/%s", ns), NULL, &code);
	const char *out = "";
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(json_object_get(o, "status"), "conditions"), i, c)
		if (strcmp(jstr(c, "type") ?: "", type) == 0)
			out = fmt("%s|%s|%s", jstr(c, "status"), jstr(c, "reason"),
				  jstr(c, "message"));
	json_decref(o);
	return out;
}

static void test_api_ctrl_namespace_delete_removes_content(void **state)
{
	(void)state;
	const char *ns = "ns-content";
	create_ns(ns);
	req0("POST", fmt("/apis/apps/v1/namespaces/%s/deployments", ns),
	     "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"replicas\":3,\"selector\":{"
	     "\"matchLabels\":{\"app\":\"web\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":"
	     "\"web\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}}}",
	     201);
	req0("POST", fmt("/api/v1/namespaces/%s/services", ns),
	     "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"selector\":{\"app\":\"web\"},"
	     "\"ports\":[{\"port\":80}],\"type\":\"NodePort\"}}",
	     201);
	req0("POST", fmt("/api/v1/namespaces/%s/services", ns),
	     "{\"metadata\":{\"name\":\"db\"},\"spec\":{\"ports\":[{\"port\":5432}]}}", 201);
	req0("POST", fmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns),
	     "{\"metadata\":{\"name\":\"lock\"},\"spec\":{\"holderIdentity\":\"a\","
	     "\"leaseDurationSeconds\":15}}",
	     201);
	req0("POST", fmt("/api/v1/namespaces/%s/events", ns),
	     fmt("{\"metadata\":{\"name\":\"ev1\"},\"involvedObject\":{\"kind\":\"Pod\",\"name\":"
		 "\"x\",\"namespace\":\"%s\"},\"reason\":\"Started\",\"message\":\"started\","
		 "\"type\":\"Normal\"}",
		 ns),
	     201);
	req0("POST", fmt("/apis/scheduling.shoal.io/v1alpha1/namespaces/%s/podgroups", ns),
	     "{\"metadata\":{\"name\":\"gang\"},\"spec\":{\"minMember\":2}}", 201);
	const char *pods_path = fmt("/api/v1/namespaces/%s/pods", ns);
	char pods_p[128];
	snprintf(pods_p, sizeof(pods_p), "%s", pods_path);
	WAIT_FOR(5000, count(pods_p) == 3, "the deployment's 3 pods");
	WAIT_FOR(5000, code_of(fmt("/api/v1/namespaces/%s/endpoints/web", ns)) == 200,
		 "the service's endpoints");
	/* one pod runs on a node: its node must stop it before it goes */
	json_t *l = items(pods_p);
	char bound[128];
	snprintf(bound, sizeof(bound), "%s", jstr(json_array_get(l, 0), "metadata.name"));
	json_decref(l);
	req0("POST", fmt("/api/v1/namespaces/%s/pods/%s/binding", ns, bound),
	     fmt("{\"metadata\":{\"name\":\"%s\"},\"target\":{\"kind\":\"Node\",\"name\":"
		 "\"node-1\"}}",
		 bound),
	     201);

	json_t *d = req("DELETE", fmt("/api/v1/namespaces/%s", ns), NULL, 200);
	assert_non_null(jstr(d, "metadata.deletionTimestamp"));
	assert_string_equal(jstr(d, "status.phase"), "Terminating");
	json_decref(d);

	/* everything but the bound pod goes; that one is terminating, with its grace period */
	WAIT_FOR(10000, count(pods_p) == 1, "only the pod on a node is left");
	json_t *pod = req("GET", fmt("/api/v1/namespaces/%s/pods/%s", ns, bound), NULL, 200);
	assert_true(terminating(pod));
	assert_int_equal(jint(pod, "metadata.deletionGracePeriodSeconds"), 30);
	json_decref(pod);
	static const char *const gone[] = {
		"/apis/apps/v1/namespaces/%s/deployments",
		"/apis/apps/v1/namespaces/%s/replicasets",
		"/api/v1/namespaces/%s/services",
		"/api/v1/namespaces/%s/endpoints",
		"/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices",
		"/apis/coordination.k8s.io/v1/namespaces/%s/leases",
		"/api/v1/namespaces/%s/events",
		"/apis/scheduling.shoal.io/v1alpha1/namespaces/%s/podgroups",
		NULL
	};
	for (const char *const *g = gone; *g; g++)
		WAIT_FOR(10000, count(fmt(*g, ns)) == 0, "%s is emptied", fmt(*g, ns));
	WAIT_FOR(5000,
		 strcmp(condition(ns, "NamespaceContentRemaining"),
			"True|SomeResourcesRemain|Some resources are remaining: pods. has 1 "
			"resource instances") == 0,
		 "the condition counts the pod left: %s",
		 condition(ns, "NamespaceContentRemaining"));
	assert_string_equal(condition(ns, "NamespaceDeletionContentFailure"),
			    "False|ContentDeleted|All content successfully deleted, may be waiting "
			    "on finalization");
	assert_string_equal(condition(ns, "NamespaceDeletionDiscoveryFailure"),
			    "False|ResourcesDiscovered|All resources successfully discovered");
	json_t *n = req("GET", fmt("/api/v1/namespaces/%s", ns), NULL, 200);
	assert_string_equal(jstr(n, "status.phase"), "Terminating");
	json_decref(n);

	/* the node confirms: then the namespace goes */
	req0("DELETE", fmt("/api/v1/namespaces/%s/pods/%s?gracePeriodSeconds=0", ns, bound), NULL,
	     200);
	WAIT_FOR(10000, code_of(fmt("/api/v1/namespaces/%s", ns)) == 404,
		 "the namespace is removed once empty");
}

static void test_api_ctrl_namespace_refuses_new_content(void **state)
{
	(void)state;
	const char *ns = "ns-closing";
	create_ns(ns);
	req0("POST", fmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns),
	     "{\"metadata\":{\"name\":\"held\",\"finalizers\":[\"example.com/hold\"]},\"spec\":{"
	     "\"holderIdentity\":\"a\"}}",
	     201);
	req0("DELETE", fmt("/api/v1/namespaces/%s", ns), NULL, 200);
	json_t *e =
		req("POST", fmt("/api/v1/namespaces/%s/services", ns),
		    "{\"metadata\":{\"name\":\"late\"},\"spec\":{\"ports\":[{\"port\":80}]}}", 403);
	assert_string_equal(jstr(e, "reason"), "Forbidden");
	assert_string_equal(jstr(e, "message"),
			    "services \"late\" is forbidden: unable to create new content in "
			    "namespace ns-closing because it is being terminated");
	json_decref(e);
	req0("PATCH", fmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases/held", ns),
	     "{\"metadata\":{\"finalizers\":null}}", 200);
	WAIT_FOR(10000, code_of(fmt("/api/v1/namespaces/%s", ns)) == 404, "the namespace goes");
	/* and a namespace of that name may be made again, empty and Active */
	create_ns(ns);
	req0("POST", fmt("/api/v1/namespaces/%s/services", ns),
	     "{\"metadata\":{\"name\":\"late\"},\"spec\":{\"ports\":[{\"port\":80}]}}", 201);
}

static void test_api_ctrl_namespace_foreign_finalizer_holds_it(void **state)
{
	(void)state;
	const char *ns = "ns-held";
	create_ns(ns);
	req0("POST", fmt("/api/v1/namespaces/%s/services", ns),
	     "{\"metadata\":{\"name\":\"kept\",\"finalizers\":[\"example.com/hold\"]},\"spec\":{"
	     "\"ports\":[{\"port\":80}]}}",
	     201);
	req0("POST", fmt("/api/v1/namespaces/%s/services", ns),
	     "{\"metadata\":{\"name\":\"free\"},\"spec\":{\"ports\":[{\"port\":80}]}}", 201);
	req0("DELETE", fmt("/api/v1/namespaces/%s", ns), NULL, 200);
	WAIT_FOR(10000,
		 strcmp(condition(ns, "NamespaceFinalizersRemaining"),
			"True|SomeFinalizersRemain|Some content in the namespace has finalizers "
			"remaining: example.com/hold in 1 resource instances") == 0,
		 "the finalizer is named: %s", condition(ns, "NamespaceFinalizersRemaining"));
	assert_string_equal(condition(ns, "NamespaceContentRemaining"),
			    "True|SomeResourcesRemain|Some resources are remaining: services. has "
			    "1 resource instances");
	assert_int_equal(code_of(fmt("/api/v1/namespaces/%s/services/free", ns)), 404);
	json_t *svc = req("GET", fmt("/api/v1/namespaces/%s/services/kept", ns), NULL, 200);
	assert_true(terminating(svc));
	json_decref(svc);
	usleep(300000);
	json_t *n = req("GET", fmt("/api/v1/namespaces/%s", ns), NULL, 200);
	assert_string_equal(jstr(n, "status.phase"), "Terminating");
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(json_object_get(n, "spec"), "finalizers"), 0)),
			    "kubernetes");
	json_decref(n);
	/* a second DELETE answers as Kubernetes does */
	json_t *e = req("DELETE", fmt("/api/v1/namespaces/%s", ns), NULL, 409);
	assert_string_equal(jstr(e, "reason"), "Conflict");
	assert_non_null(strstr(jstr(e, "message"), "The system is ensuring all content is removed "
						   "from this namespace"));
	json_decref(e);
	/* the finalizer goes: so does the service, then the namespace */
	req0("PATCH", fmt("/api/v1/namespaces/%s/services/kept", ns),
	     "{\"metadata\":{\"finalizers\":[]}}", 200);
	WAIT_FOR(10000, code_of(fmt("/api/v1/namespaces/%s", ns)) == 404, "the namespace goes");
}

/* The namespace's own metadata.finalizers going does not let it skip its content. */
static void test_api_ctrl_namespace_metadata_finalizer(void **state)
{
	(void)state;
	const char *ns = "ns-meta";
	create_ns(ns);
	req0("PATCH", fmt("/api/v1/namespaces/%s", ns),
	     "{\"metadata\":{\"finalizers\":[\"example.com/meta\"]}}", 200);
	req0("POST", fmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns),
	     "{\"metadata\":{\"name\":\"held\",\"finalizers\":[\"example.com/hold\"]},\"spec\":{"
	     "\"holderIdentity\":\"a\"}}",
	     201);
	req0("DELETE", fmt("/api/v1/namespaces/%s", ns), NULL, 200);
	WAIT_FOR(10000, strncmp(condition(ns, "NamespaceContentRemaining"), "True|", 5) == 0,
		 "the lease remains: %s", condition(ns, "NamespaceContentRemaining"));
	json_t *n = req("PATCH", fmt("/api/v1/namespaces/%s", ns),
			"{\"metadata\":{\"finalizers\":null}}", 200);
	assert_string_equal(jstr(n, "status.phase"), "Terminating");
	json_decref(n);
	usleep(300000);
	assert_int_equal(code_of(fmt("/api/v1/namespaces/%s", ns)), 200);
	assert_int_equal(code_of(fmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases/held", ns)),
			 200);
	req0("PATCH", fmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases/held", ns),
	     "{\"metadata\":{\"finalizers\":null}}", 200);
	WAIT_FOR(10000, code_of(fmt("/api/v1/namespaces/%s", ns)) == 404, "the namespace goes");
}

/* Objects that control each other are deleted all the same. */
static void test_api_ctrl_namespace_owner_cycle(void **state)
{
	(void)state;
	const char *ns = "ns-cycle";
	create_ns(ns);
	json_t *a =
		req("POST", fmt("/api/v1/namespaces/%s/services", ns),
		    "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"ports\":[{\"port\":80}]}}", 201);
	json_t *b = req("POST", fmt("/api/v1/namespaces/%s/services", ns),
			fmt("{\"metadata\":{\"name\":\"b\",\"ownerReferences\":[{\"apiVersion\":"
			    "\"v1\",\"kind\":\"Service\",\"name\":\"a\",\"uid\":\"%s\","
			    "\"controller\":true}]},\"spec\":{\"ports\":[{\"port\":80}]}}",
			    jstr(a, "metadata.uid")),
			201);
	req0("PATCH", fmt("/api/v1/namespaces/%s/services/a", ns),
	     fmt("{\"metadata\":{\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":"
		 "\"Service\",\"name\":\"b\",\"uid\":\"%s\",\"controller\":true}]}}",
		 jstr(b, "metadata.uid")),
	     200);
	json_decref(a);
	json_decref(b);
	req0("DELETE", fmt("/api/v1/namespaces/%s", ns), NULL, 200);
	WAIT_FOR(10000, code_of(fmt("/api/v1/namespaces/%s", ns)) == 404, "the namespace goes");
}

static void test_api_ctrl_namespace_protected(void **state)
{
	(void)state;
	static const char *const names[] = { "default", "kube-system", "kube-public",
					     "kube-node-lease", NULL };
	for (const char *const *n = names; *n; n++) {
		json_t *e = req("DELETE", fmt("/api/v1/namespaces/%s", *n), NULL, 403);
		assert_string_equal(jstr(e, "reason"), "Forbidden");
		assert_string_equal(jstr(e, "message"),
				    fmt("namespaces \"%s\" is forbidden: this namespace may not be "
					"deleted",
					*n));
		json_decref(e);
	}
	/* shoald makes them at start */
	for (const char *const *n = names; *n; n++) {
		json_t *ns = req("GET", fmt("/api/v1/namespaces/%s", *n), NULL, 200);
		assert_string_equal(jstr(ns, "status.phase"), "Active");
		assert_null(jstr(ns, "metadata.deletionTimestamp"));
		json_decref(ns);
	}
}

/* An answer's code and message must be want and hold part. */
static void expect_error(const char *method, const char *path, const char *body, long want,
			 const char *part)
{
	json_t *e = req(method, path, body, want);
	const char *msg = jstr(e, "message");
	if (!msg || !strstr(msg, part))
		fail_msg("%s %s: message \"%s\" does not say \"%s\"", method, path, msg ? msg : "",
			 part);
	json_decref(e);
}

static void test_api_ctrl_namespace_finalize(void **state)
{
	(void)state;
	const char *ns = "ns-fin";
	const char *path = "/api/v1/namespaces/ns-fin/finalize";
	create_ns(ns);
	expect_error("PUT", path, "{\"spec\":", 400, "malformed JSON");
	expect_error("PUT", path, "[]", 400, "must be a JSON object");
	expect_error("PUT", path,
		     "{\"metadata\":{\"name\":\"other\"},\"spec\":{\"finalizers\":[]}}", 400,
		     "metadata.name: the name of the object (other) does not match the name on "
		     "the URL (ns-fin)");
	expect_error("PUT", path, "{\"spec\":{\"finalizers\":\"kubernetes\"}}", 422,
		     "spec.finalizers");
	expect_error("PUT", path, "{\"spec\":{\"finalizers\":[\"Not Valid!\"]}}", 422,
		     "spec.finalizers[0]");
	expect_error("PUT", path, "{\"spec\":{\"finalizers\":[\"plain\"]}}", 422,
		     "spec.finalizers[0]: Invalid value: \"plain\"");
	expect_error("PUT", path, "{\"kind\":\"Pod\",\"spec\":{\"finalizers\":[]}}", 400,
		     "kind: the kind in the data (Pod) does not match");
	expect_error("PUT", path,
		     "{\"metadata\":{\"resourceVersion\":\"1\"},\"spec\":{\"finalizers\":[]}}", 409,
		     "the object has been modified");
	expect_error("POST", path, "{\"spec\":{\"finalizers\":[]}}", 405, "use PUT");
	expect_error("PUT", "/api/v1/namespaces/nowhere/finalize", "{\"spec\":{\"finalizers\":[]}}",
		     404, "namespaces \"nowhere\" not found");
	expect_error("PUT", "/api/v1/nodes/n1/finalize", "{}", 404, "finalize");

	/* an update keeps spec.finalizers; /finalize changes them and nothing else */
	json_t *u = req("PUT", fmt("/api/v1/namespaces/%s", ns),
			fmt("{\"metadata\":{\"name\":\"%s\",\"labels\":{\"a\":\"1\"}},\"spec\":{"
			    "\"finalizers\":[]}}",
			    ns),
			200);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(json_object_get(u, "spec"), "finalizers"), 0)),
			    "kubernetes");
	json_decref(u);
	json_t *f = req("PUT", path,
			fmt("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":"
			    "\"%s\",\"labels\":{\"a\":\"2\"}},\"spec\":{\"finalizers\":["
			    "\"example.com/x\"]},\"status\":{\"phase\":\"Terminating\"}}",
			    ns),
			200);
	json_t *fins = json_object_get(json_object_get(f, "spec"), "finalizers");
	assert_int_equal(json_array_size(fins), 1);
	assert_string_equal(json_string_value(json_array_get(fins, 0)), "example.com/x");
	assert_string_equal(jstr(f, "metadata.labels.a"), "1");
	assert_string_equal(jstr(f, "status.phase"), "Active");
	json_decref(f);

	/* held by a finalizer that is not the controller's: it waits for it */
	req0("DELETE", fmt("/api/v1/namespaces/%s", ns), NULL, 200);
	usleep(500000);
	assert_int_equal(code_of(fmt("/api/v1/namespaces/%s", ns)), 200);
	req0("PUT", path, "{\"spec\":{\"finalizers\":[]}}", 200);
	WAIT_FOR(10000, code_of(fmt("/api/v1/namespaces/%s", ns)) == 404,
		 "the namespace goes with its last finalizer");
}

/* More objects than one pass deletes: several passes, each bounded, empty it. */
static void test_api_ctrl_namespace_many_objects(void **state)
{
	(void)state;
	const char *ns = "ns-many";
	const int n = 700;
	create_ns(ns);
	req0("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases",
	     "{\"metadata\":{\"name\":\"l0\"},\"spec\":{\"holderIdentity\":\"a\"}}", 201);
	for (int i = 0; i < n; i++)
		req0("POST", fmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns),
		     fmt("{\"metadata\":{\"name\":\"l%d\"},\"spec\":{\"holderIdentity\":\"a\"}}",
			 i),
		     201);
	assert_int_equal(count(fmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns)), n);
	req0("DELETE", fmt("/api/v1/namespaces/%s", ns), NULL, 200);
	WAIT_FOR(30000, code_of(fmt("/api/v1/namespaces/%s", ns)) == 404,
		 "the namespace of %d leases is removed", n);
	assert_int_equal(count(fmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns)), 0);
	/* another namespace's object of the same name is untouched */
	assert_int_equal(code_of("/apis/coordination.k8s.io/v1/namespaces/default/leases/l0"), 200);
}

SHOAL_TEST_MAIN_SETUP(ctrl_setup, ctrl_teardown,
		      cmocka_unit_test(test_api_ctrl_namespace_delete_removes_content),
		      cmocka_unit_test(test_api_ctrl_namespace_refuses_new_content),
		      cmocka_unit_test(test_api_ctrl_namespace_foreign_finalizer_holds_it),
		      cmocka_unit_test(test_api_ctrl_namespace_metadata_finalizer),
		      cmocka_unit_test(test_api_ctrl_namespace_owner_cycle),
		      cmocka_unit_test(test_api_ctrl_namespace_protected),
		      cmocka_unit_test(test_api_ctrl_namespace_finalize),
		      cmocka_unit_test(test_api_ctrl_namespace_many_objects))
