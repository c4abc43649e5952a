// SPDX-License-Identifier: Apache-2.0
/* The kind registry, the schema walk (type errors with paths, pruning), metadata and names. */
#include "shoal_test.h"

#include <stdio.h>
#include <string.h>

#include "api_kinds.h"
#include "json_merge.h"

static json_t *J(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("bad fixture %s: %s", s, e.text);
	return j;
}

/* The error list has an error on field whose message contains text. */
static bool has_error(const struct api_errors *errs, const char *field, const char *text)
{
	for (size_t i = 0; i < errs->n; i++)
		if (strcmp(errs->e[i].field, field) == 0 &&
		    (!text || strstr(errs->e[i].message, text)))
			return true;
	return false;
}

static void dump(const struct api_errors *errs)
{
	char buf[8192];
	api_errors_format(errs, buf, sizeof(buf));
	print_message("errors: %s\n", buf);
}

#define ASSERT_ERROR(errs, field, text)                                                            \
	do {                                                                                       \
		if (!has_error((errs), (field), (text))) {                                         \
			dump(errs);                                                                \
			fail_msg("expected an error on %s (%s)", (field), (text) ? (text) : "");   \
		}                                                                                  \
	} while (0)

static void test_api_kinds_table_is_complete(void **state)
{
	(void)state;
	static const char *const want[] = { "Namespace", "Node",	  "Pod",   "Service",
					    "Endpoints", "Event",	  "Deployment",
					    "ReplicaSet", "DaemonSet",	  "Job",   "EndpointSlice",
					    "Lease",	 "PodGroup",	  "Cluster",
					    "FederatedDeployment", "FederatedService" };
	size_t n = 0;
	for (const struct api_kind *k = api_kinds; k->kind; k++) {
		n++;
		assert_non_null(k->resource);
		assert_non_null(k->singular);
		assert_non_null(k->group);
		assert_non_null(k->version);
		assert_non_null(k->schema);
		assert_non_null(k->validate);
		assert_non_null(k->columns);
		assert_string_equal(k->columns[0].header, k->kind[0] == 'E' && !strcmp(k->kind, "Event")
								  ? "LAST SEEN"
								  : "NAME");
		for (const struct api_column *c = k->columns; c->header; c++)
			assert_true((c->path != NULL) != (c->format != NULL));
	}
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (const struct api_kind *k = api_kinds; k->kind; k++)
			found |= strcmp(k->kind, want[i]) == 0;
		if (!found)
			fail_msg("kind %s missing", want[i]);
	}
}

static void test_api_kind_lookups(void **state)
{
	(void)state;
	const struct api_kind *k = api_kind_by_resource("apps", "v1", "deployments");
	assert_non_null(k);
	assert_string_equal(k->kind, "Deployment");
	assert_string_equal(k->scale_path, "spec.replicas");
	assert_null(api_kind_by_resource("apps", "v2", "deployments"));
	assert_null(api_kind_by_resource("", "v1", "deployments"));
	k = api_kind_by_resource("", "v1", "pods");
	assert_non_null(k);
	assert_true(k->namespaced);
	assert_true(k->has_status);
	assert_ptr_equal(api_kind_by_resource(NULL, "v1", "nodes"), api_kind_lookup("no"));
	assert_false(api_kind_lookup("nodes")->namespaced);
	assert_false(api_kind_lookup("ns")->namespaced);
	assert_int_equal(api_kind_lookup("ns")->name_rule, API_NAME_LABEL);
	assert_int_equal(api_kind_lookup("svc")->name_rule, API_NAME_LABEL1035);

	static const char *const names[][2] = {
		{ "po", "Pod" },		{ "pods", "Pod" },
		{ "Pod", "Pod" },		{ "POD", "Pod" },
		{ "svc", "Service" },		{ "deploy", "Deployment" },
		{ "deployments.apps", "Deployment" }, { "rs", "ReplicaSet" },
		{ "ds", "DaemonSet" },		{ "jobs.batch", "Job" },
		{ "ep", "Endpoints" },		{ "endpointslices.discovery.k8s.io", "EndpointSlice" },
		{ "lease", "Lease" },		{ "pg", "PodGroup" },
		{ "podgroups.scheduling.shoal.io", "PodGroup" }, { "ev", "Event" },
		{ "fdeploy", "FederatedDeployment" }, { "clusters.federation.shoal.io", "Cluster" },
		{ "namespace", "Namespace" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		k = api_kind_lookup(names[i][0]);
		if (!k || strcmp(k->kind, names[i][1]) != 0)
			fail_msg("lookup %s: got %s, want %s", names[i][0], k ? k->kind : "NULL",
				 names[i][1]);
	}
	assert_null(api_kind_lookup("deployments.batch"));
	assert_null(api_kind_lookup("nothing"));
	assert_null(api_kind_lookup(""));

	k = api_kind_by_kind("apps/v1", "Deployment");
	assert_non_null(k);
	assert_null(api_kind_by_kind("v1", "Deployment"));
	assert_null(api_kind_by_kind("apps/v1", "deployment"));
	assert_non_null(api_kind_by_kind("v1", "Pod"));
	assert_non_null(api_kind_by_kind("scheduling.shoal.io/v1alpha1", "PodGroup"));
	assert_non_null(api_kind_by_kind("coordination.k8s.io/v1", "Lease"));
	char buf[64];
	assert_string_equal(api_kind_api_version(api_kind_lookup("deploy"), buf, sizeof(buf)),
			    "apps/v1");
	assert_string_equal(api_kind_api_version(api_kind_lookup("po"), buf, sizeof(buf)), "v1");
	assert_string_equal(api_kind_api_version(api_kind_lookup("eps"), buf, sizeof(buf)), "");
}

static void test_api_schema_reports_type_errors_with_paths(void **state)
{
	(void)state;
	const struct api_kind *k = api_kind_lookup("deploy");
	json_t *obj = J("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
			"\"metadata\":{\"name\":\"web\",\"labels\":{\"app\":3}},"
			"\"spec\":{\"replicas\":\"three\",\"template\":{\"spec\":{\"containers\":["
			"{\"name\":\"c\",\"ports\":[{\"containerPort\":80},{\"containerPort\":\"x\"}]"
			",\"resources\":{\"limits\":{\"cpu\":\"abc\",\"memory\":\"128Mi\"}}}]}},"
			"\"strategy\":{\"rollingUpdate\":{\"maxSurge\":1.5}},\"paused\":\"no\"}}");
	struct api_errors errs = { 0 };
	api_schema_check(k, obj, NULL, &errs);
	ASSERT_ERROR(&errs, "spec.replicas", "must be an integer, not a string");
	ASSERT_ERROR(&errs, "spec.template.spec.containers[0].ports[1].containerPort",
		     "must be an integer");
	ASSERT_ERROR(&errs, "spec.template.spec.containers[0].resources.limits[cpu]",
		     "must be a quantity");
	ASSERT_ERROR(&errs, "metadata.labels[app]", "must be a string");
	ASSERT_ERROR(&errs, "spec.strategy.rollingUpdate.maxSurge", "integer or a string");
	ASSERT_ERROR(&errs, "spec.paused", "must be a boolean");
	assert_int_equal(errs.n, 6);
	json_decref(obj);

	/* the body itself */
	obj = J("[1]");
	memset(&errs, 0, sizeof(errs));
	api_schema_check(k, obj, NULL, &errs);
	assert_int_equal(errs.n, 1);
	json_decref(obj);
	/* whole sub-objects of the wrong type */
	obj = J("{\"metadata\":\"x\",\"spec\":{\"template\":[],\"selector\":{\"matchLabels\":[]}}}");
	memset(&errs, 0, sizeof(errs));
	api_schema_check(k, obj, NULL, &errs);
	ASSERT_ERROR(&errs, "metadata", "must be an object, not a string");
	ASSERT_ERROR(&errs, "spec.template", "must be an object, not an array");
	ASSERT_ERROR(&errs, "spec.selector.matchLabels", "must be an object");
	json_decref(obj);
}

static void test_api_schema_prunes_unknown_fields(void **state)
{
	(void)state;
	const struct api_kind *k = api_kind_lookup("pods");
	json_t *obj = J("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"bogus\":1,"
			"\"metadata\":{\"name\":\"p\",\"managedFields\":[{}],\"selfLink\":\"x\"},"
			"\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"imagePullSecret\":"
			"\"typo\",\"ports\":[{\"containerPort\":80,\"hostPortt\":1}]}],"
			"\"nodeName\":null},\"status\":{\"phase\":\"Running\",\"extra\":{}}}");
	json_t *unknown = json_array();
	struct api_errors errs = { 0 };
	api_schema_check(k, obj, unknown, &errs);
	assert_int_equal(errs.n, 0);
	static const char *const want[] = { "bogus",
					    "metadata.managedFields",
					    "metadata.selfLink",
					    "spec.containers[0].imagePullSecret",
					    "spec.containers[0].ports[0].hostPortt",
					    "status.extra" };
	assert_int_equal(json_array_size(unknown), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		bool found = false;
		for (size_t j = 0; j < json_array_size(unknown); j++)
			found |= strcmp(json_string_value(json_array_get(unknown, j)), want[i]) == 0;
		if (!found)
			fail_msg("unknown field %s not reported", want[i]);
	}
	/* pruned from the object; the null field removed without a report */
	assert_null(json_object_get(obj, "bogus"));
	json_t *meta = json_object_get(obj, "metadata");
	assert_null(json_object_get(meta, "managedFields"));
	json_t *spec = json_object_get(obj, "spec");
	assert_null(json_object_get(spec, "nodeName"));
	json_t *c0 = json_array_get(json_object_get(spec, "containers"), 0);
	assert_null(json_object_get(c0, "imagePullSecret"));
	assert_string_equal(json_string_value(json_object_get(c0, "image")), "i");
	json_decref(unknown);
	/* unknown may be NULL: still pruned */
	json_t *o2 = J("{\"metadata\":{\"name\":\"p\"},\"zzz\":true}");
	memset(&errs, 0, sizeof(errs));
	api_schema_check(k, o2, NULL, &errs);
	assert_null(json_object_get(o2, "zzz"));
	json_decref(o2);
	json_decref(obj);
}

static void test_api_schema_canonicalizes_number_quantities(void **state)
{
	(void)state;
	const struct api_kind *k = api_kind_lookup("pods");
	json_t *obj = J("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\","
			"\"image\":\"i\",\"resources\":{\"requests\":{\"cpu\":0.5,\"memory\":1024},"
			"\"limits\":{\"cpu\":\"1\"}}}]}}");
	struct api_errors errs = { 0 };
	api_schema_check(k, obj, NULL, &errs);
	assert_int_equal(errs.n, 0);
	json_t *req = json_object_get(json_object_get(json_array_get(json_object_get(json_object_get(
								       obj, "spec"),
							       "containers"),
						       0),
					"resources"),
		"requests");
	assert_string_equal(json_string_value(json_object_get(req, "cpu")), "500m");
	assert_string_equal(json_string_value(json_object_get(req, "memory")), "1Ki");
	json_decref(obj);

	obj = J("{\"metadata\":{\"name\":\"n\"},\"status\":{\"capacity\":{\"cpu\":\"1.5.5\","
		"\"memory\":\"99999999999999999999Ei\",\"pods\":\"110\"}}}");
	memset(&errs, 0, sizeof(errs));
	api_schema_check(api_kind_lookup("node"), obj, NULL, &errs);
	ASSERT_ERROR(&errs, "status.capacity[cpu]", "must be a quantity");
	ASSERT_ERROR(&errs, "status.capacity[memory]", "too large");
	assert_int_equal(errs.n, 2);
	json_decref(obj);
}

static void test_api_names_follow_dns_rules(void **state)
{
	(void)state;
	char long64[65], long254[255];
	memset(long64, 'a', 64);
	long64[64] = 0;
	memset(long254, 'a', 254);
	long254[254] = 0;
	assert_null(api_name_invalid(API_NAME_SUBDOMAIN, "web"));
	assert_null(api_name_invalid(API_NAME_SUBDOMAIN, "web.example-1.com"));
	assert_null(api_name_invalid(API_NAME_SUBDOMAIN, "1web"));
	assert_null(api_name_invalid(API_NAME_SUBDOMAIN, long64));
	assert_non_null(api_name_invalid(API_NAME_SUBDOMAIN, long254));
	assert_non_null(api_name_invalid(API_NAME_SUBDOMAIN, "Web"));
	assert_non_null(api_name_invalid(API_NAME_SUBDOMAIN, "web_1"));
	assert_non_null(api_name_invalid(API_NAME_SUBDOMAIN, "-web"));
	assert_non_null(api_name_invalid(API_NAME_SUBDOMAIN, "web."));
	assert_non_null(api_name_invalid(API_NAME_SUBDOMAIN, "a..b"));
	assert_non_null(api_name_invalid(API_NAME_SUBDOMAIN, ""));
	assert_non_null(api_name_invalid(API_NAME_SUBDOMAIN, NULL));
	assert_non_null(api_name_invalid(API_NAME_SUBDOMAIN, "a/b"));
	assert_null(api_name_invalid(API_NAME_LABEL, "kube-system"));
	assert_null(api_name_invalid(API_NAME_LABEL, "1abc"));
	assert_non_null(api_name_invalid(API_NAME_LABEL, "a.b"));
	assert_non_null(api_name_invalid(API_NAME_LABEL, long64));
	assert_non_null(api_name_invalid(API_NAME_LABEL, "abc-"));
	assert_null(api_name_invalid(API_NAME_LABEL1035, "web-1"));
	assert_non_null(api_name_invalid(API_NAME_LABEL1035, "1web"));
	assert_non_null(api_name_invalid(API_NAME_LABEL1035, "web.a"));
	long64[63] = 0;
	assert_null(api_name_invalid(API_NAME_LABEL, long64));
}

static void meta_errors(const char *kind, const char *json, struct api_errors *errs)
{
	memset(errs, 0, sizeof(*errs));
	json_t *obj = J(json);
	api_validate_meta(api_kind_lookup(kind), obj, errs);
	json_decref(obj);
}

static void test_api_meta_validation(void **state)
{
	(void)state;
	struct api_errors errs;
	meta_errors("po", "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"default\","
			  "\"labels\":{\"app\":\"web\"},\"annotations\":{\"Example.com/x\":\"y\"},"
			  "\"finalizers\":[\"example.com/f\",\"kubernetes\"],"
			  "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\","
			  "\"name\":\"rs\",\"uid\":\"u1\",\"controller\":true}]}}",
		    &errs);
	if (errs.n)
		dump(&errs);
	assert_int_equal(errs.n, 0);

	meta_errors("po", "{\"metadata\":{\"namespace\":\"default\"}}", &errs);
	ASSERT_ERROR(&errs, "metadata.name", "name or generateName is required");
	meta_errors("po", "{\"metadata\":{\"generateName\":\"web-\",\"namespace\":\"default\"}}",
		    &errs);
	assert_int_equal(errs.n, 0);
	meta_errors("po", "{\"metadata\":{\"generateName\":\"Web-\",\"namespace\":\"d\"}}", &errs);
	ASSERT_ERROR(&errs, "metadata.generateName", "Invalid value");
	meta_errors("po", "{\"metadata\":{\"name\":\"Web_1\",\"namespace\":\"default\"}}", &errs);
	ASSERT_ERROR(&errs, "metadata.name", "RFC 1123 subdomain");
	meta_errors("po", "{\"metadata\":{\"name\":\"web\"}}", &errs);
	ASSERT_ERROR(&errs, "metadata.namespace", "Required value");
	meta_errors("po", "{\"metadata\":{\"name\":\"web\",\"namespace\":\"Bad.NS\"}}", &errs);
	ASSERT_ERROR(&errs, "metadata.namespace", "Invalid value");
	meta_errors("no", "{\"metadata\":{\"name\":\"n1\",\"namespace\":\"default\"}}", &errs);
	ASSERT_ERROR(&errs, "metadata.namespace", "not allowed on this type");
	meta_errors("ns", "{\"metadata\":{\"name\":\"a.b\"}}", &errs);
	ASSERT_ERROR(&errs, "metadata.name", "RFC 1123 label");
	meta_errors("svc", "{\"metadata\":{\"name\":\"1web\",\"namespace\":\"d\"}}", &errs);
	ASSERT_ERROR(&errs, "metadata.name", "DNS-1035");
	meta_errors("po", "{\"metadata\":{\"name\":\"p\",\"namespace\":\"d\",\"labels\":"
			  "{\"-bad\":\"x\",\"ok\":\"-bad-\"}}}",
		    &errs);
	ASSERT_ERROR(&errs, "metadata.labels", "name part");
	ASSERT_ERROR(&errs, "metadata.labels[ok]", "valid label");
	meta_errors("po", "{\"metadata\":{\"name\":\"p\",\"namespace\":\"d\",\"finalizers\":"
			  "[\"custom\",\"orphan\",\"foregroundDeletion\"]}}",
		    &errs);
	ASSERT_ERROR(&errs, "metadata.finalizers[0]", "fully qualified");
	ASSERT_ERROR(&errs, "metadata.finalizers", "cannot be both set");
	meta_errors("po", "{\"metadata\":{\"name\":\"p\",\"namespace\":\"d\",\"ownerReferences\":"
			  "[{\"apiVersion\":\"v1\",\"kind\":\"A\",\"name\":\"a\",\"uid\":\"1\","
			  "\"controller\":true},{\"kind\":\"B\",\"name\":\"b\",\"uid\":\"2\","
			  "\"controller\":true}]}}",
		    &errs);
	ASSERT_ERROR(&errs, "metadata.ownerReferences[1].apiVersion", "Required value");
	ASSERT_ERROR(&errs, "metadata.ownerReferences", "only one reference");
	meta_errors("po", "{\"metadata\":{\"name\":\"p\",\"namespace\":\"d\",\"generation\":-1,"
			  "\"creationTimestamp\":\"yesterday\"}}",
		    &errs);
	ASSERT_ERROR(&errs, "metadata.generation", "greater than or equal to 0");
	ASSERT_ERROR(&errs, "metadata.creationTimestamp", "RFC 3339");
}

static void test_api_meta_annotation_size_limit(void **state)
{
	(void)state;
	size_t big = 256 * 1024 + 1;
	char *v = malloc(big + 1);
	memset(v, 'x', big);
	v[big] = 0;
	json_t *obj = json_pack("{s{sssss{ss}}}", "metadata", "name", "p", "namespace", "d",
				"annotations", "k", v);
	free(v);
	struct api_errors errs = { 0 };
	api_validate_meta(api_kind_lookup("po"), obj, &errs);
	ASSERT_ERROR(&errs, "metadata.annotations", "at most 262144 bytes");
	json_decref(obj);
}

static void test_api_errors_format_and_overflow(void **state)
{
	(void)state;
	struct api_errors errs = { 0 };
	api_err_add(&errs, "spec.replicas", "Invalid value: %d: must be >= 0", -1);
	api_err_add(&errs, "metadata.name", "Required value");
	char buf[256];
	api_errors_format(&errs, buf, sizeof(buf));
	assert_string_equal(buf, "spec.replicas: Invalid value: -1: must be >= 0; metadata.name: "
				 "Required value");
	for (int i = 0; i < 40; i++)
		api_err_add(&errs, "f", "e%d", i);
	assert_int_equal(errs.n, API_ERRORS_MAX);
	assert_int_equal(errs.dropped, 42 - API_ERRORS_MAX);
	char big[8192];
	api_errors_format(&errs, big, sizeof(big));
	assert_non_null(strstr(big, "and 10 more errors"));
	/* a short buffer is cut, never overrun */
	char tiny[8];
	api_errors_format(&errs, tiny, sizeof(tiny));
	assert_int_equal(strlen(tiny), 7);
}

/* ---- robustness: every node of rich objects replaced by every JSON type ---- */

static const char *const rich[][2] = {
	{ "pod",
	  "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":\"d\","
	  "\"labels\":{\"a\":\"b\"},\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"X\","
	  "\"name\":\"x\",\"uid\":\"1\",\"controller\":true}],\"finalizers\":[\"a/b\"]},"
	  "\"spec\":{\"volumes\":[{\"name\":\"v\",\"configMap\":{\"name\":\"c\"}}],"
	  "\"initContainers\":[{\"name\":\"i\",\"image\":\"i\",\"restartPolicy\":\"Always\","
	  "\"readinessProbe\":{\"exec\":{\"command\":[\"a\"]}}}],"
	  "\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"command\":[\"a\"],"
	  "\"ports\":[{\"containerPort\":80,\"hostPort\":80,\"name\":\"http\"}],"
	  "\"env\":[{\"name\":\"A\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"x\"}}}],"
	  "\"envFrom\":[{\"configMapRef\":{\"name\":\"c\"}}],"
	  "\"resources\":{\"limits\":{\"cpu\":\"1\"},\"requests\":{\"cpu\":\"1\"}},"
	  "\"volumeMounts\":[{\"name\":\"v\",\"mountPath\":\"/v\"}],"
	  "\"livenessProbe\":{\"httpGet\":{\"port\":80,\"httpHeaders\":[{\"name\":\"a\"}]}},"
	  "\"lifecycle\":{\"preStop\":{\"sleep\":{\"seconds\":1}}},"
	  "\"securityContext\":{\"runAsUser\":1}}],"
	  "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
	  "{\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\","
	  "\"values\":[\"b\"]}],\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\","
	  "\"values\":[\"n\"]}]}]},\"preferredDuringSchedulingIgnoredDuringExecution\":[{\"weight\":1,"
	  "\"preference\":{\"matchExpressions\":[]}}]},\"podAntiAffinity\":{"
	  "\"requiredDuringSchedulingIgnoredDuringExecution\":[{\"topologyKey\":\"z\",\"labelSelector\":"
	  "{\"matchLabels\":{\"a\":\"b\"}},\"namespaces\":[\"n\"]}],"
	  "\"preferredDuringSchedulingIgnoredDuringExecution\":[{\"weight\":1,\"podAffinityTerm\":"
	  "{\"topologyKey\":\"z\"}}]}},"
	  "\"tolerations\":[{\"key\":\"a\",\"operator\":\"Exists\",\"effect\":\"NoExecute\","
	  "\"tolerationSeconds\":1}],\"topologySpreadConstraints\":[{\"maxSkew\":1,\"topologyKey\":"
	  "\"z\",\"whenUnsatisfiable\":\"DoNotSchedule\",\"labelSelector\":{}}],"
	  "\"dnsConfig\":{\"nameservers\":[\"1.1.1.1\"]},\"hostAliases\":[{\"ip\":\"1.2.3.4\"}],"
	  "\"readinessGates\":[{\"conditionType\":\"a\"}],\"nodeSelector\":{\"a\":\"b\"},"
	  "\"securityContext\":{\"sysctls\":[{\"name\":\"a\"}]},\"os\":{\"name\":\"linux\"}},"
	  "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.1\",\"podIPs\":[{\"ip\":\"10.0.0.1\"}],"
	  "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],\"containerStatuses\":"
	  "[{\"name\":\"c\",\"ready\":true,\"restartCount\":1,\"state\":{\"terminated\":"
	  "{\"exitCode\":1,\"signal\":9}},\"lastState\":{\"terminated\":{\"finishedAt\":"
	  "\"2026-01-01T00:00:00Z\"}}}],\"initContainerStatuses\":[{\"name\":\"i\",\"state\":"
	  "{\"waiting\":{\"reason\":\"X\"}}}]}}" },
	{ "svc",
	  "{\"metadata\":{\"name\":\"s\",\"namespace\":\"d\"},\"spec\":{\"type\":\"LoadBalancer\","
	  "\"ports\":[{\"name\":\"a\",\"port\":80,\"targetPort\":\"http\",\"nodePort\":30001},"
	  "{\"name\":\"b\",\"port\":81}],\"selector\":{\"a\":\"b\"},\"clusterIP\":\"10.96.0.1\","
	  "\"clusterIPs\":[\"10.96.0.1\"],\"externalIPs\":[\"192.0.2.1\"],\"sessionAffinity\":"
	  "\"ClientIP\",\"sessionAffinityConfig\":{\"clientIP\":{\"timeoutSeconds\":5}},"
	  "\"loadBalancerSourceRanges\":[\"10.0.0.0/8\"],\"externalTrafficPolicy\":\"Local\","
	  "\"healthCheckNodePort\":30100,\"ipFamilies\":[\"IPv4\"],\"loadBalancerIP\":\"1.2.3.4\"},"
	  "\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"1.2.3.4\"}]}}}" },
	{ "node",
	  "{\"metadata\":{\"name\":\"n\",\"labels\":{\"node-role.kubernetes.io/x\":\"\"}},"
	  "\"spec\":{\"podCIDR\":\"10.1.0.0/24\",\"podCIDRs\":[\"10.1.0.0/24\"],\"taints\":"
	  "[{\"key\":\"a\",\"effect\":\"NoSchedule\"}],\"unschedulable\":true},\"status\":"
	  "{\"capacity\":{\"cpu\":\"2\"},\"allocatable\":{\"cpu\":\"2\"},\"conditions\":[{\"type\":"
	  "\"Ready\",\"status\":\"True\"}],\"addresses\":[{\"type\":\"InternalIP\",\"address\":"
	  "\"10.0.0.1\"}],\"nodeInfo\":{\"kubeletVersion\":\"v\"}}}" },
	{ "deploy",
	  "{\"metadata\":{\"name\":\"w\",\"namespace\":\"d\",\"creationTimestamp\":"
	  "\"2026-01-01T00:00:00Z\"},\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":"
	  "{\"a\":\"b\"},\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":"
	  "[\"b\"]}]},\"template\":{\"metadata\":{\"labels\":{\"a\":\"b\"}},\"spec\":{\"containers\":"
	  "[{\"name\":\"c\",\"image\":\"i\"}]}},\"strategy\":{\"type\":\"RollingUpdate\","
	  "\"rollingUpdate\":{\"maxSurge\":\"10%\",\"maxUnavailable\":1}},\"minReadySeconds\":1,"
	  "\"progressDeadlineSeconds\":10},\"status\":{\"replicas\":2,\"readyReplicas\":1,"
	  "\"conditions\":[{\"type\":\"Available\",\"status\":\"True\"}]}}" },
	{ "ds",
	  "{\"metadata\":{\"name\":\"w\",\"namespace\":\"d\"},\"spec\":{\"selector\":{\"matchLabels\":"
	  "{\"a\":\"b\"}},\"template\":{\"metadata\":{\"labels\":{\"a\":\"b\"}},\"spec\":"
	  "{\"nodeSelector\":{\"x\":\"y\"},\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}},"
	  "\"updateStrategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxUnavailable\":1}}}}" },
	{ "job",
	  "{\"metadata\":{\"name\":\"j\",\"namespace\":\"d\",\"uid\":\"u\"},\"spec\":{\"completions\":"
	  "3,\"parallelism\":2,\"completionMode\":\"Indexed\",\"backoffLimitPerIndex\":1,"
	  "\"maxFailedIndexes\":1,\"template\":{\"spec\":{\"restartPolicy\":\"Never\",\"containers\":"
	  "[{\"name\":\"c\",\"image\":\"i\"}]}}},\"status\":{\"startTime\":\"2026-01-01T00:00:00Z\","
	  "\"succeeded\":1,\"conditions\":[{\"type\":\"Complete\",\"status\":\"True\"}]}}" },
	{ "endpointslices",
	  "{\"metadata\":{\"name\":\"e\",\"namespace\":\"d\"},\"addressType\":\"IPv4\",\"endpoints\":"
	  "[{\"addresses\":[\"10.0.0.1\"],\"conditions\":{\"ready\":true},\"targetRef\":{\"kind\":"
	  "\"Pod\",\"name\":\"p\"},\"hints\":{\"forZones\":[{\"name\":\"a\"}]}}],\"ports\":"
	  "[{\"name\":\"a\",\"port\":80}]}" },
	{ "ep",
	  "{\"metadata\":{\"name\":\"e\",\"namespace\":\"d\"},\"subsets\":[{\"addresses\":"
	  "[{\"ip\":\"10.0.0.1\",\"targetRef\":{\"kind\":\"Pod\",\"name\":\"p\"}}],\"ports\":"
	  "[{\"name\":\"a\",\"port\":80},{\"name\":\"b\",\"port\":81}]}]}" },
	{ "ev",
	  "{\"metadata\":{\"name\":\"e\",\"namespace\":\"d\"},\"involvedObject\":{\"kind\":\"Pod\","
	  "\"name\":\"p\"},\"type\":\"Normal\",\"series\":{\"count\":1},\"related\":{\"kind\":\"X\",\"name\":\"x\"}}" },
	{ "lease",
	  "{\"metadata\":{\"name\":\"l\",\"namespace\":\"d\"},\"spec\":{\"holderIdentity\":\"h\","
	  "\"leaseDurationSeconds\":1,\"renewTime\":\"2026-01-01T00:00:00.000001Z\"}}" },
	{ "pg",
	  "{\"metadata\":{\"name\":\"g\",\"namespace\":\"d\"},\"spec\":{\"minMember\":2,"
	  "\"minResources\":{\"cpu\":\"1\"}},\"status\":{\"phase\":\"Running\",\"running\":2}}" },
	{ "ns", "{\"metadata\":{\"name\":\"n\"},\"spec\":{\"finalizers\":[\"kubernetes\"]},"
		"\"status\":{\"phase\":\"Active\"}}" },
};

static json_t *replacement(int r)
{
	switch (r) {
	case 0:
		return json_null();
	case 1:
		return json_integer(0);
	case 2:
		return json_integer(-1);
	case 3:
		return json_string("");
	case 4:
		return json_string("x");
	case 5:
		return json_array();
	case 6:
		return json_object();
	case 7:
		return json_true();
	case 8:
		return json_real(1.5);
	case 9:
		return json_pack("[n]");
	default:
		return json_pack("{sn}", "a");
	}
}
#define NREPLACEMENTS 11

/* Runs the whole pipeline on obj (and as an update of itself), and every column. */
static void pipeline(const struct api_kind *k, json_t *obj)
{
	struct api_errors errs = { 0 };
	json_t *unknown = json_array();
	json_t *old = json_deep_copy(obj);
	api_schema_check(k, obj, unknown, &errs);
	if (k->defaults)
		k->defaults(obj);
	api_validate_meta(k, obj, &errs);
	k->validate(obj, NULL, &errs);
	k->validate(obj, old, &errs);
	k->validate(old, obj, &errs);
	char cell[512], msg[4096];
	for (const struct api_column *c = k->columns; c->header; c++) {
		if (c->format) {
			c->format(obj, cell, sizeof(cell));
			c->format(old, cell, sizeof(cell));
			c->format(obj, cell, 4);
		}
	}
	api_errors_format(&errs, msg, sizeof(msg));
	json_decref(unknown);
	json_decref(old);
}

/* Replaces, one at a time, every value reachable from *slot's container. Returns how many
 * variants ran. */
static size_t mutate_all(const struct api_kind *k, json_t *root, json_t *node)
{
	size_t n = 0;
	if (json_is_object(node)) {
		const char *key;
		json_t *v;
		void *tmp;
		json_object_foreach_safe(node, tmp, key, v) {
			json_t *saved = json_incref(v);
			for (int r = 0; r < NREPLACEMENTS; r++) {
				json_object_set_new(node, key, replacement(r));
				json_t *copy = json_deep_copy(root);
				pipeline(k, copy);
				json_decref(copy);
				n++;
			}
			json_object_set_new(node, key, saved);
			n += mutate_all(k, root, saved);
		}
	} else if (json_is_array(node)) {
		for (size_t i = 0; i < json_array_size(node); i++) {
			json_t *saved = json_incref(json_array_get(node, i));
			for (int r = 0; r < NREPLACEMENTS; r++) {
				json_array_set_new(node, i, replacement(r));
				json_t *copy = json_deep_copy(root);
				pipeline(k, copy);
				json_decref(copy);
				n++;
			}
			json_array_set_new(node, i, saved);
			n += mutate_all(k, root, saved);
		}
	}
	return n;
}

static void test_api_pipeline_survives_mutated_objects(void **state)
{
	(void)state;
	size_t total = 0;
	for (size_t i = 0; i < sizeof(rich) / sizeof(rich[0]); i++) {
		const struct api_kind *k = api_kind_lookup(rich[i][0]);
		assert_non_null(k);
		json_t *obj = J(rich[i][1]);
		/* the unmutated fixture is valid */
		json_t *copy = json_deep_copy(obj);
		struct api_errors errs = { 0 };
		api_schema_check(k, copy, NULL, &errs);
		if (k->defaults)
			k->defaults(copy);
		api_validate_meta(k, copy, &errs);
		k->validate(copy, NULL, &errs);
		if (errs.n) {
			dump(&errs);
			fail_msg("rich %s fixture is not valid", rich[i][0]);
		}
		json_decref(copy);
		total += mutate_all(k, obj, obj);
		json_decref(obj);
		/* and whole-object replacements */
		for (int r = 0; r < NREPLACEMENTS; r++) {
			json_t *o = replacement(r);
			pipeline(k, o);
			json_decref(o);
		}
	}
	print_message("ran %zu mutated objects\n", total);
	assert_true(total > 3000);
}

/* Defaults applied to an already defaulted object change nothing (a re-applied manifest,
 * a PUT of what was read). */
static void test_api_defaults_are_idempotent(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rich) / sizeof(rich[0]); i++) {
		const struct api_kind *k = api_kind_lookup(rich[i][0]);
		if (!k->defaults)
			continue;
		json_t *once = J(rich[i][1]);
		struct api_errors errs = { 0 };
		api_schema_check(k, once, NULL, &errs);
		k->defaults(once);
		json_t *twice = json_deep_copy(once);
		k->defaults(twice);
		if (!json_merge_equal(once, twice))
			fail_msg("defaults of %s are not idempotent", k->kind);
		/* and a minimal object too */
		json_t *min = J("{\"metadata\":{\"name\":\"x\",\"namespace\":\"d\"}}");
		k->defaults(min);
		json_t *min2 = json_deep_copy(min);
		k->defaults(min2);
		if (!json_merge_equal(min, min2))
			fail_msg("defaults of a minimal %s are not idempotent", k->kind);
		json_decref(min);
		json_decref(min2);
		json_decref(once);
		json_decref(twice);
	}
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_api_pipeline_survives_mutated_objects),
		cmocka_unit_test(test_api_defaults_are_idempotent),
		cmocka_unit_test(test_api_kinds_table_is_complete),
		cmocka_unit_test(test_api_kind_lookups),
		cmocka_unit_test(test_api_schema_reports_type_errors_with_paths),
		cmocka_unit_test(test_api_schema_prunes_unknown_fields),
		cmocka_unit_test(test_api_schema_canonicalizes_number_quantities),
		cmocka_unit_test(test_api_names_follow_dns_rules),
		cmocka_unit_test(test_api_meta_validation),
		cmocka_unit_test(test_api_meta_annotation_size_limit),
		cmocka_unit_test(test_api_errors_format_and_overflow))
