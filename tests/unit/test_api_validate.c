// SPDX-License-Identifier: Apache-2.0
/*
 * Per-kind defaulting and validation, run the way the server runs them: schema check, then
 * defaults, then metadata and kind validation. Fixtures are JSON written with single quotes.
 */
#include "shoal_test.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api_kinds.h"

static json_t *J(const char *s)
{
	char *t = strdup(s);
	for (char *c = t; *c; c++)
		if (*c == '\'')
			*c = '"';
	json_error_t e;
	json_t *j = json_loads(t, JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("bad fixture %s: %s (at %d)", t, e.text, e.position);
	free(t);
	return j;
}

static void dump(const struct api_errors *errs)
{
	char buf[16384];
	api_errors_format(errs, buf, sizeof(buf));
	print_message("errors: %s\n", buf);
}

/* Runs schema, defaults, metadata and kind validation on obj (kept, defaulted) against old
 * (may be NULL). Returns the number of errors. */
static size_t run_obj(const char *kind, json_t *obj, const char *old_json, struct api_errors *errs)
{
	const struct api_kind *k = api_kind_lookup(kind);
	assert_non_null(k);
	memset(errs, 0, sizeof(*errs));
	json_t *old = NULL;
	if (old_json) {
		struct api_errors oe = { 0 };
		old = J(old_json);
		api_schema_check(k, old, NULL, &oe);
		if (k->defaults)
			k->defaults(old);
	}
	api_schema_check(k, obj, NULL, errs);
	if (k->defaults)
		k->defaults(obj);
	api_validate_meta(k, obj, errs);
	k->validate(obj, old, errs);
	json_decref(old);
	return errs->n;
}

static size_t run(const char *kind, const char *json, const char *old_json,
		  struct api_errors *errs)
{
	json_t *obj = J(json);
	size_t n = run_obj(kind, obj, old_json, errs);
	json_decref(obj);
	return n;
}

static bool has_error(const struct api_errors *errs, const char *field, const char *text)
{
	for (size_t i = 0; i < errs->n; i++)
		if (strcmp(errs->e[i].field, field) == 0 &&
		    (!text || strstr(errs->e[i].message, text)))
			return true;
	return false;
}

#define ASSERT_ERROR(errs, field, text)                                                            \
	do {                                                                                       \
		if (!has_error((errs), (field), (text))) {                                         \
			dump(errs);                                                                \
			fail_msg("expected an error on %s (%s)", (field), (text) ? (text) : "");   \
		}                                                                                  \
	} while (0)

#define ASSERT_VALID(kind, json)                                                                   \
	do {                                                                                       \
		struct api_errors e_;                                                              \
		if (run((kind), (json), NULL, &e_)) {                                              \
			dump(&e_);                                                                 \
			fail_msg("expected a valid %s", (kind));                                   \
		}                                                                                  \
	} while (0)

/* Expects exactly one error, on field, with text in its message. */
#define ASSERT_ONLY_ERROR(kind, json, field, text)                                                 \
	do {                                                                                       \
		struct api_errors e_;                                                              \
		run((kind), (json), NULL, &e_);                                                    \
		ASSERT_ERROR(&e_, (field), (text));                                                \
		if (e_.n != 1) {                                                                   \
			dump(&e_);                                                                 \
			fail_msg("expected only one error, got %zu", e_.n);                        \
		}                                                                                  \
	} while (0)

static const char *str_at(const json_t *o, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	const json_t *cur = o;
	for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
		char *br = strchr(tok, '[');
		if (br) {
			*br = 0;
			cur = json_object_get(cur, tok);
			cur = json_array_get(cur, (size_t)atoi(br + 1));
		} else {
			cur = json_object_get(cur, tok);
		}
	}
	return json_string_value(cur);
}

static long long int_at(const json_t *o, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	const json_t *cur = o;
	for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
		char *br = strchr(tok, '[');
		if (br) {
			*br = 0;
			cur = json_array_get(json_object_get(cur, tok), (size_t)atoi(br + 1));
		} else {
			cur = json_object_get(cur, tok);
		}
	}
	if (!json_is_integer(cur))
		fail_msg("%s is not an integer", path);
	return json_integer_value(cur);
}

/* A pod around a spec fragment. */
#define POD(spec) "{'apiVersion':'v1','kind':'Pod','metadata':{'name':'p','namespace':'d'},'spec':" spec "}"
#define C1 "{'name':'c','image':'nginx:1.25'"

/* ======================================================================================== */
/* Pod */

static void test_api_pod_minimal_is_valid_and_defaulted(void **state)
{
	(void)state;
	json_t *pod = J(POD("{'containers':[" C1 ",'ports':[{'containerPort':80}],"
			    "'readinessProbe':{'httpGet':{'port':80}},"
			    "'resources':{'limits':{'cpu':'500m','memory':'128Mi'}}},"
			    "{'name':'latest','image':'busybox'}]}"));
	struct api_errors errs;
	if (run_obj("pod", pod, NULL, &errs))
		dump(&errs);
	assert_int_equal(errs.n, 0);
	assert_string_equal(str_at(pod, "spec.restartPolicy"), "Always");
	assert_string_equal(str_at(pod, "spec.dnsPolicy"), "ClusterFirst");
	assert_string_equal(str_at(pod, "spec.schedulerName"), "default-scheduler");
	assert_int_equal(int_at(pod, "spec.terminationGracePeriodSeconds"), 30);
	assert_string_equal(str_at(pod, "spec.containers[0].imagePullPolicy"), "IfNotPresent");
	assert_string_equal(str_at(pod, "spec.containers[1].imagePullPolicy"), "Always");
	assert_string_equal(str_at(pod, "spec.containers[0].ports[0].protocol"), "TCP");
	assert_string_equal(str_at(pod, "spec.containers[0].terminationMessagePolicy"), "File");
	assert_string_equal(str_at(pod, "spec.containers[0].readinessProbe.httpGet.path"), "/");
	assert_string_equal(str_at(pod, "spec.containers[0].readinessProbe.httpGet.scheme"), "HTTP");
	assert_int_equal(int_at(pod, "spec.containers[0].readinessProbe.periodSeconds"), 10);
	assert_int_equal(int_at(pod, "spec.containers[0].readinessProbe.failureThreshold"), 3);
	/* requests default to limits */
	assert_string_equal(str_at(pod, "spec.containers[0].resources.requests.cpu"), "500m");
	assert_string_equal(str_at(pod, "spec.containers[0].resources.requests.memory"), "128Mi");
	assert_string_equal(str_at(pod, "status.phase"), "Pending");
	json_decref(pod);
}

static void test_api_pod_requires_containers(void **state)
{
	(void)state;
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[]}"), "spec.containers", "Required value");
	ASSERT_ONLY_ERROR("pod", POD("{}"), "spec.containers", "Required value");
	struct api_errors errs;
	run("pod", "{'metadata':{'name':'p','namespace':'d'}}", NULL, &errs);
	ASSERT_ERROR(&errs, "spec", "Required value");
}

static void test_api_pod_container_names_unique_dns_labels(void **state)
{
	(void)state;
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[{'name':'Web_1','image':'i'}]}"),
			  "spec.containers[0].name", "RFC 1123 label");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[{'image':'i'}]}"), "spec.containers[0].name",
			  "Required value");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[{'name':'a','image':'i'},{'name':'a','image':'i'}]}"),
			  "spec.containers[1].name", "Duplicate value");
	ASSERT_ONLY_ERROR("pod", POD("{'initContainers':[{'name':'a','image':'i'}],"
				     "'containers':[{'name':'a','image':'i'}]}"),
			  "spec.containers[0].name", "Duplicate value");
}

static void test_api_pod_image_optional_with_command(void **state)
{
	(void)state;
	ASSERT_VALID("pod", POD("{'containers':[{'name':'c','command':['/bin/sleep','60']}]}"));
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[{'name':'c'}]}"), "spec.containers[0].command",
			  "without an image must give a command");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[{'name':'c','image':' nginx'}]}"),
			  "spec.containers[0].image", "whitespace");
}

static void test_api_pod_rejects_negative_port(void **state)
{
	(void)state;
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'ports':[{'containerPort':-1}]}]}"),
			  "spec.containers[0].ports[0].containerPort", "between 1 and 65535");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'ports':[{'containerPort':80},"
				     "{'containerPort':65536}]}]}"),
			  "spec.containers[0].ports[1].containerPort", "between 1 and 65535");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'ports':[{'name':'x'}]}]}"),
			  "spec.containers[0].ports[0].containerPort", "Required value");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'ports':[{'containerPort':80,"
				     "'hostPort':70000}]}]}"),
			  "spec.containers[0].ports[0].hostPort", "between 1 and 65535");
}

static void test_api_pod_port_protocols_and_names(void **state)
{
	(void)state;
	ASSERT_VALID("pod", POD("{'containers':[" C1 ",'ports':[{'containerPort':80,'protocol':'TCP',"
				"'name':'http'},{'containerPort':53,'protocol':'UDP','name':'dns'},"
				"{'containerPort':9,'protocol':'SCTP'}]}]}"));
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'ports':[{'containerPort':80,"
				     "'protocol':'ICMP'}]}]}"),
			  "spec.containers[0].ports[0].protocol", "supported values: \"TCP\", \"UDP\", \"SCTP\"");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'ports':[{'containerPort':80,"
				     "'name':'http'},{'containerPort':81,'name':'http'}]}]}"),
			  "spec.containers[0].ports[1].name", "Duplicate value");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'ports':[{'containerPort':80,"
				     "'name':'a-very-long-port-name'}]}]}"),
			  "spec.containers[0].ports[0].name", "15 characters");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'ports':[{'containerPort':80,'hostPort':80}]},"
				     "{'name':'d','image':'i','ports':[{'containerPort':81,'hostPort':80}]}]}"),
			  "spec.containers[1].ports[0].hostPort", "Duplicate value");
}

static void test_api_pod_requests_must_not_exceed_limits(void **state)
{
	(void)state;
	ASSERT_VALID("pod", POD("{'containers':[" C1 ",'resources':{'requests':{'cpu':'0.5',"
				"'memory':'64Mi'},'limits':{'cpu':'1','memory':'128Mi'}}}]}"));
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'resources':{'requests':{'cpu':'2'},"
				     "'limits':{'cpu':'1500m'}}}]}"),
			  "spec.containers[0].resources.requests[cpu]",
			  "must be less than or equal to cpu limit of 1500m");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'resources':{'requests':{'cpu':'-1'}}}]}"),
			  "spec.containers[0].resources.requests[cpu]", "greater than or equal to 0");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'resources':{'requests':{'gpu':'1'}}}]}"),
			  "spec.containers[0].resources.requests[gpu]", "fully qualified");
	ASSERT_VALID("pod", POD("{'containers':[" C1 ",'resources':{'limits':{'example.com/gpu':2}}}]}"));
	/* extended resources: whole units, requests equal to limits */
	struct api_errors errs;
	run("pod", POD("{'containers':[" C1 ",'resources':{'limits':{'nvidia.com/gpu':'500m'}}}]}"),
	    NULL, &errs);
	ASSERT_ERROR(&errs, "spec.containers[0].resources.limits[nvidia.com/gpu]",
		     "must be an integer");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'resources':{'requests':{'nvidia.com/gpu':"
				     "'1'},'limits':{'nvidia.com/gpu':'2'}}}]}"),
			  "spec.containers[0].resources.requests[nvidia.com/gpu]", "must be equal to");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'resources':{'requests':{'nvidia.com/gpu':"
				     "'1'}}}]}"),
			  "spec.containers[0].resources.limits[nvidia.com/gpu]", "Limit must be set");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'resources':{'limits':{'memory':'1 Gi'}}}]}"),
			  "spec.containers[0].resources.limits[memory]", "must be a quantity");
}

static void test_api_pod_probe_needs_exactly_one_handler(void **state)
{
	(void)state;
	ASSERT_VALID("pod", POD("{'containers':[" C1 ",'livenessProbe':{'exec':{'command':['true']}},"
				"'readinessProbe':{'tcpSocket':{'port':'http'}},"
				"'startupProbe':{'grpc':{'port':9000}}}]}"));
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'livenessProbe':{'periodSeconds':5}}]}"),
			  "spec.containers[0].livenessProbe", "must specify a handler type");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'livenessProbe':{'exec':{'command':['a']},"
				     "'httpGet':{'port':80}}}]}"),
			  "spec.containers[0].livenessProbe", "more than 1 handler type");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'livenessProbe':{'httpGet':{'port':0}}}]}"),
			  "spec.containers[0].livenessProbe.httpGet.port", "between 1 and 65535");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'livenessProbe':{'exec':{}}}]}"),
			  "spec.containers[0].livenessProbe.exec.command", "Required value");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'livenessProbe':{'exec':{'command':['a']},"
				     "'successThreshold':2}}]}"),
			  "spec.containers[0].livenessProbe.successThreshold", "must be 1");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'readinessProbe':{'exec':{'command':['a']},"
				     "'periodSeconds':-3}}]}"),
			  "spec.containers[0].readinessProbe.periodSeconds", "greater than or equal to 0");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'lifecycle':{'preStop':{}}}]}"),
			  "spec.containers[0].lifecycle.preStop", "must specify a handler type");
}

static void test_api_pod_restart_policy_and_grace(void **state)
{
	(void)state;
	ASSERT_VALID("pod", POD("{'restartPolicy':'Never','containers':[" C1 "}]}"));
	ASSERT_ONLY_ERROR("pod", POD("{'restartPolicy':'Sometimes','containers':[" C1 "}]}"),
			  "spec.restartPolicy", "supported values: \"Always\", \"OnFailure\", \"Never\"");
	ASSERT_ONLY_ERROR("pod", POD("{'terminationGracePeriodSeconds':-1,'containers':[" C1 "}]}"),
			  "spec.terminationGracePeriodSeconds", "greater than or equal to 0");
	ASSERT_ONLY_ERROR("pod", POD("{'activeDeadlineSeconds':0,'containers':[" C1 "}]}"),
			  "spec.activeDeadlineSeconds", "greater than or equal to 1");
	ASSERT_VALID("pod", POD("{'priority':1000,'priorityClassName':'high','schedulerName':'shoal',"
				"'nodeSelector':{'disk':'ssd'},'containers':[" C1 "}]}"));
	ASSERT_ONLY_ERROR("pod", POD("{'priorityClassName':'High!','containers':[" C1 "}]}"),
			  "spec.priorityClassName", "subdomain");
	ASSERT_ONLY_ERROR("pod", POD("{'nodeSelector':{'disk':'-ssd'},'containers':[" C1 "}]}"),
			  "spec.nodeSelector[disk]", "valid label");
	ASSERT_ONLY_ERROR("pod", POD("{'dnsPolicy':'None','containers':[" C1 "}]}"),
			  "spec.dnsConfig", "at least one nameserver");
}

static void test_api_pod_affinity_requires_topology_key(void **state)
{
	(void)state;
	ASSERT_VALID("pod", POD("{'containers':[" C1 "}],'affinity':{"
				"'podAntiAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
				"[{'labelSelector':{'matchLabels':{'app':'web'}},'topologyKey':"
				"'kubernetes.io/hostname'}],'preferredDuringSchedulingIgnoredDuringExecution':"
				"[{'weight':50,'podAffinityTerm':{'labelSelector':{'matchExpressions':"
				"[{'key':'app','operator':'In','values':['db']}]},'topologyKey':"
				"'topology.kubernetes.io/zone'}}]},"
				"'podAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
				"[{'labelSelector':{},'topologyKey':'zone','namespaces':['a','b']}]}}}"));
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'affinity':{'podAffinity':{"
				     "'requiredDuringSchedulingIgnoredDuringExecution':[{'labelSelector':"
				     "{'matchLabels':{'app':'web'}}}]}}}"),
			  "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]."
			  "topologyKey",
			  "Required value");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'affinity':{'podAntiAffinity':{"
				     "'preferredDuringSchedulingIgnoredDuringExecution':[{'weight':101,"
				     "'podAffinityTerm':{'topologyKey':'zone'}}]}}}"),
			  "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]."
			  "weight",
			  "between 1 and 100");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'affinity':{'podAntiAffinity':{"
				     "'requiredDuringSchedulingIgnoredDuringExecution':[{'topologyKey':'zone',"
				     "'labelSelector':{'matchExpressions':[{'key':'a','operator':'Gt',"
				     "'values':['1']}]}}]}}}"),
			  "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]."
			  "labelSelector",
			  "Unsupported value \"Gt\"");
}

static void test_api_pod_node_affinity_terms(void **state)
{
	(void)state;
	ASSERT_VALID("pod", POD("{'containers':[" C1 "}],'affinity':{'nodeAffinity':{"
				"'requiredDuringSchedulingIgnoredDuringExecution':{'nodeSelectorTerms':["
				"{'matchExpressions':[{'key':'cores','operator':'Gt','values':['4']},"
				"{'key':'zone','operator':'In','values':['a','b']}]},"
				"{'matchFields':[{'key':'metadata.name','operator':'In','values':['n1']}]}]},"
				"'preferredDuringSchedulingIgnoredDuringExecution':[{'weight':10,"
				"'preference':{'matchExpressions':[{'key':'ssd','operator':'Exists'}]}}]}}}"));
	const char *base = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution";
	char f[256];
	snprintf(f, sizeof(f), "%s.nodeSelectorTerms", base);
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'affinity':{'nodeAffinity':{"
				     "'requiredDuringSchedulingIgnoredDuringExecution':{'nodeSelectorTerms':[]}}}}"),
			  f, "at least one node selector term");
	snprintf(f, sizeof(f), "%s.nodeSelectorTerms[0]", base);
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'affinity':{'nodeAffinity':{"
				     "'requiredDuringSchedulingIgnoredDuringExecution':{'nodeSelectorTerms':["
				     "{'matchExpressions':[{'key':'cores','operator':'Gt','values':['x']}]}]}}}}"),
			  f, "must be an integer");
	snprintf(f, sizeof(f), "%s.nodeSelectorTerms[0].matchFields[0].key", base);
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'affinity':{'nodeAffinity':{"
				     "'requiredDuringSchedulingIgnoredDuringExecution':{'nodeSelectorTerms':["
				     "{'matchFields':[{'key':'spec.x','operator':'In','values':['a']}]}]}}}}"),
			  f, "metadata.name");
}

static void test_api_pod_tolerations(void **state)
{
	(void)state;
	ASSERT_VALID("pod", POD("{'containers':[" C1 "}],'tolerations':["
				"{'key':'gpu','operator':'Equal','value':'true','effect':'NoSchedule'},"
				"{'key':'node.kubernetes.io/unreachable','operator':'Exists',"
				"'effect':'NoExecute','tolerationSeconds':300},{'operator':'Exists'},"
				"{'key':'k','value':'v'}]}"));
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'tolerations':[{'key':'a',"
				     "'operator':'Exists','value':'b'}]}"),
			  "spec.tolerations[0].value", "must be empty when `operator` is 'Exists'");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'tolerations':[{'value':'b'}]}"),
			  "spec.tolerations[0].operator", "must be Exists when `key` is empty");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'tolerations':[{'key':'a',"
				     "'effect':'NoSchedule','tolerationSeconds':5}]}"),
			  "spec.tolerations[0].effect", "must be 'NoExecute'");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'tolerations':[{'key':'a',"
				     "'effect':'Sometimes'}]}"),
			  "spec.tolerations[0].effect", "Unsupported value");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'tolerations':[{'key':'a',"
				     "'operator':'Like'}]}"),
			  "spec.tolerations[0].operator", "Unsupported value");
}

static void test_api_pod_topology_spread(void **state)
{
	(void)state;
	ASSERT_VALID("pod", POD("{'containers':[" C1 "}],'topologySpreadConstraints':[{'maxSkew':1,"
				"'topologyKey':'zone','whenUnsatisfiable':'DoNotSchedule','minDomains':3,"
				"'labelSelector':{'matchLabels':{'app':'web'}}},{'maxSkew':2,"
				"'topologyKey':'zone','whenUnsatisfiable':'ScheduleAnyway'}]}"));
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'topologySpreadConstraints':[{'maxSkew':0,"
				     "'topologyKey':'zone','whenUnsatisfiable':'DoNotSchedule'}]}"),
			  "spec.topologySpreadConstraints[0].maxSkew", "between 1 and");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'topologySpreadConstraints':[{'maxSkew':1,"
				     "'whenUnsatisfiable':'DoNotSchedule'}]}"),
			  "spec.topologySpreadConstraints[0].topologyKey", "Required value");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'topologySpreadConstraints':[{'maxSkew':1,"
				     "'topologyKey':'zone','whenUnsatisfiable':'Maybe'}]}"),
			  "spec.topologySpreadConstraints[0].whenUnsatisfiable", "Unsupported value");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'topologySpreadConstraints':[{'maxSkew':1,"
				     "'topologyKey':'zone','whenUnsatisfiable':'ScheduleAnyway','minDomains':2}]}"),
			  "spec.topologySpreadConstraints[0].minDomains", "DoNotSchedule");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 "}],'topologySpreadConstraints':[{'maxSkew':1,"
				     "'topologyKey':'zone','whenUnsatisfiable':'DoNotSchedule'},{'maxSkew':2,"
				     "'topologyKey':'zone','whenUnsatisfiable':'DoNotSchedule'}]}"),
			  "spec.topologySpreadConstraints[1]", "Duplicate value");
}

static void test_api_pod_volumes_and_mounts(void **state)
{
	(void)state;
	json_t *pod = J(POD("{'volumes':[{'name':'data'},{'name':'cfg','configMap':{'name':'c'}}],"
			    "'containers':[" C1 ",'volumeMounts':[{'name':'data','mountPath':'/data'},"
			    "{'name':'cfg','mountPath':'/etc/cfg','readOnly':true}]}]}"));
	struct api_errors errs;
	if (run_obj("pod", pod, NULL, &errs))
		dump(&errs);
	assert_int_equal(errs.n, 0);
	/* a volume without a source is an emptyDir */
	assert_non_null(json_object_get(json_array_get(json_object_get(json_object_get(pod, "spec"),
								       "volumes"), 0),
					 "emptyDir"));
	json_decref(pod);
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'volumeMounts':[{'name':'nope',"
				     "'mountPath':'/x'}]}]}"),
			  "spec.containers[0].volumeMounts[0].name", "Not found");
	ASSERT_ONLY_ERROR("pod", POD("{'volumes':[{'name':'a'},{'name':'a'}],'containers':[" C1 "}]}"),
			  "spec.volumes[1].name", "Duplicate value");
	ASSERT_ONLY_ERROR("pod", POD("{'volumes':[{'name':'a','emptyDir':{},'hostPath':{'path':'/x'}}],"
				     "'containers':[" C1 "}]}"),
			  "spec.volumes[0]", "more than 1 volume type");
	ASSERT_ONLY_ERROR("pod", POD("{'volumes':[{'name':'a'}],'containers':[" C1 ",'volumeMounts':"
				     "[{'name':'a','mountPath':'/x'},{'name':'a','mountPath':'/x'}]}]}"),
			  "spec.containers[0].volumeMounts[1].mountPath", "must be unique");
}

static void test_api_pod_env(void **state)
{
	(void)state;
	ASSERT_VALID("pod", POD("{'containers':[" C1 ",'env':[{'name':'A','value':'1'},"
				"{'name':'NODE','valueFrom':{'fieldRef':{'fieldPath':'spec.nodeName'}}}]}]}"));
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'env':[{'name':'1A','value':'1'}]}]}"),
			  "spec.containers[0].env[0].name", "must not start with a digit");
	ASSERT_ONLY_ERROR("pod", POD("{'containers':[" C1 ",'env':[{'name':'A','value':'1',"
				     "'valueFrom':{'fieldRef':{'fieldPath':'x'}}}]}]}"),
			  "spec.containers[0].env[0].valueFrom", "`value` is not empty");
}

static void test_api_pod_update_allows_only_image(void **state)
{
	(void)state;
	const char *old = POD("{'containers':[" C1 "}],'tolerations':[{'key':'a','operator':'Exists'}]}");
	struct api_errors errs;
	/* image change, added toleration, binding: allowed */
	run("pod", POD("{'nodeName':'n1','containers':[{'name':'c','image':'nginx:1.26'}],"
		       "'tolerations':[{'key':'a','operator':'Exists'},{'key':'b','operator':'Exists'}]}"),
	    old, &errs);
	if (errs.n)
		dump(&errs);
	assert_int_equal(errs.n, 0);
	run("pod", POD("{'containers':[" C1 ",'ports':[{'containerPort':80}]}],"
		       "'tolerations':[{'key':'a','operator':'Exists'}]}"),
	    old, &errs);
	ASSERT_ERROR(&errs, "spec", "pod updates may not change fields");
	run("pod", POD("{'containers':[" C1 "}]}"), old, &errs);
	ASSERT_ERROR(&errs, "spec.tolerations", "can not be modified");
	const char *bound = POD("{'nodeName':'n1','containers':[" C1 "}]}");
	run("pod", POD("{'nodeName':'n2','containers':[" C1 "}]}"), bound, &errs);
	ASSERT_ERROR(&errs, "spec.nodeName", "immutable");
}

static void test_api_pod_status(void **state)
{
	(void)state;
	ASSERT_VALID("pod", "{'metadata':{'name':'p','namespace':'d'},'spec':{'containers':["
			    "{'name':'c','image':'i'}]},'status':{'phase':'Running','podIP':'10.100.1.5',"
			    "'conditions':[{'type':'Ready','status':'True'}],'containerStatuses':"
			    "[{'name':'c','ready':true,'restartCount':1}]}}");
	/* the agent's usage sample */
	ASSERT_VALID("pod", "{'metadata':{'name':'p','namespace':'d'},'spec':{'containers':["
			    "{'name':'c','image':'i'}]},'status':{'usage':{'cpu':'250m','memory':"
			    "'300Mi','timestamp':'2026-11-23T13:40:00Z'}}}");
	ASSERT_ONLY_ERROR("pod", "{'metadata':{'name':'p','namespace':'d'},'spec':{'containers':"
				 "[{'name':'c','image':'i'}]},'status':{'usage':{'cpu':'-1',"
				 "'timestamp':'2026-11-23T13:40:00Z'}}}",
			  "status.usage[cpu]", "greater than or equal to 0");
	ASSERT_ONLY_ERROR("pod", "{'metadata':{'name':'p','namespace':'d'},'spec':{'containers':"
				 "[{'name':'c','image':'i'}]},'status':{'phase':'Sleeping'}}",
			  "status.phase", "Unsupported value");
	ASSERT_ONLY_ERROR("pod", "{'metadata':{'name':'p','namespace':'d'},'spec':{'containers':"
				 "[{'name':'c','image':'i'}]},'status':{'podIP':'10.100.1.300'}}",
			  "status.podIP", "valid IP address");
	ASSERT_ONLY_ERROR("pod", "{'metadata':{'name':'p','namespace':'d'},'spec':{'containers':"
				 "[{'name':'c','image':'i'}]},'status':{'conditions':[{'type':'Ready',"
				 "'status':'Yes'}]}}",
			  "status.conditions[0].status", "Unsupported value");
}

/* ======================================================================================== */
/* Service */

#define SVC(spec) "{'apiVersion':'v1','kind':'Service','metadata':{'name':'web','namespace':'d'},'spec':" spec "}"

static void test_api_service_defaults(void **state)
{
	(void)state;
	json_t *svc = J(SVC("{'selector':{'app':'web'},'ports':[{'port':80}]}"));
	struct api_errors errs;
	if (run_obj("svc", svc, NULL, &errs))
		dump(&errs);
	assert_int_equal(errs.n, 0);
	assert_string_equal(str_at(svc, "spec.type"), "ClusterIP");
	assert_string_equal(str_at(svc, "spec.sessionAffinity"), "None");
	assert_string_equal(str_at(svc, "spec.ports[0].protocol"), "TCP");
	assert_int_equal(int_at(svc, "spec.ports[0].targetPort"), 80);
	assert_string_equal(str_at(svc, "spec.internalTrafficPolicy"), "Cluster");
	assert_null(json_object_get(json_object_get(svc, "spec"), "externalTrafficPolicy"));
	json_decref(svc);

	svc = J(SVC("{'type':'NodePort','sessionAffinity':'ClientIP','ports':[{'port':80,"
		    "'targetPort':'http','nodePort':30080}]}"));
	if (run_obj("svc", svc, NULL, &errs))
		dump(&errs);
	assert_int_equal(errs.n, 0);
	assert_string_equal(str_at(svc, "spec.externalTrafficPolicy"), "Cluster");
	assert_string_equal(str_at(svc, "spec.ports[0].targetPort"), "http");
	assert_int_equal(int_at(svc, "spec.sessionAffinityConfig.clientIP.timeoutSeconds"), 10800);
	json_decref(svc);
}

static void test_api_service_ports_rules(void **state)
{
	(void)state;
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[]}"), "spec.ports", "Required value");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80,'name':'http'},{'port':443}]}"),
			  "spec.ports[1].name", "Required value");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80,'name':'a'},{'port':81,'name':'a'}]}"),
			  "spec.ports[1].name", "Duplicate value");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':0,'targetPort':80}]}"), "spec.ports[0].port",
			  "between 1 and 65535");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80,'targetPort':70000}]}"),
			  "spec.ports[0].targetPort", "between 1 and 65535");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80,'targetPort':'Bad_Name'}]}"),
			  "spec.ports[0].targetPort", "alpha-numeric");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80,'nodePort':30080}]}"),
			  "spec.ports[0].nodePort", "may not be used when `type` is 'ClusterIP'");
	ASSERT_ONLY_ERROR("svc", SVC("{'type':'NodePort','ports':[{'port':80,'nodePort':8080}]}"),
			  "spec.ports[0].nodePort", "between 30000 and 32767");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80,'protocol':'HTTP'}]}"),
			  "spec.ports[0].protocol", "Unsupported value");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80,'name':'a'},{'port':80,'name':'b'}]}"),
			  "spec.ports[1]", "Duplicate value: \"80/TCP\"");
	json_t *svc = J(SVC("{'ports':[{'port':8080,'targetPort':0}]}"));
	struct api_errors errs;
	assert_int_equal(run_obj("svc", svc, NULL, &errs), 0);
	assert_int_equal(int_at(svc, "spec.ports[0].targetPort"), 8080);
	json_decref(svc);
	ASSERT_VALID("svc", SVC("{'ports':[{'port':53,'name':'dns','protocol':'UDP'},"
				"{'port':53,'name':'dns-tcp'}]}"));
}

static void test_api_service_types_and_headless(void **state)
{
	(void)state;
	ASSERT_VALID("svc", SVC("{'clusterIP':'None','selector':{'app':'db'}}"));
	ASSERT_VALID("svc", SVC("{'clusterIP':'10.96.0.10','ports':[{'port':53}]}"));
	ASSERT_VALID("svc", SVC("{'type':'ExternalName','externalName':'db.example.com'}"));
	ASSERT_VALID("svc", SVC("{'type':'LoadBalancer','ports':[{'port':80}],"
				"'loadBalancerSourceRanges':['10.0.0.0/8'],'externalTrafficPolicy':'Local'}"));
	ASSERT_ONLY_ERROR("svc", SVC("{'type':'Magic','ports':[{'port':80}]}"), "spec.type",
			  "supported values: \"ClusterIP\", \"NodePort\", \"LoadBalancer\", \"ExternalName\"");
	ASSERT_ONLY_ERROR("svc", SVC("{'type':'ExternalName'}"), "spec.externalName", "Required value");
	ASSERT_ONLY_ERROR("svc", SVC("{'clusterIP':'10.96.0.300','ports':[{'port':80}]}"),
			  "spec.clusterIP", "IPv4");
	ASSERT_ONLY_ERROR("svc", SVC("{'type':'NodePort','clusterIP':'None','ports':[{'port':80}]}"),
			  "spec.clusterIP", "may not be set to 'None'");
}

static void test_api_service_session_affinity(void **state)
{
	(void)state;
	ASSERT_VALID("svc", SVC("{'ports':[{'port':80}],'sessionAffinity':'ClientIP',"
				"'sessionAffinityConfig':{'clientIP':{'timeoutSeconds':60}}}"));
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80}],'sessionAffinity':'ClientIP',"
				     "'sessionAffinityConfig':{'clientIP':{'timeoutSeconds':86401}}}"),
			  "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "between 1 and 86400");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80}],'sessionAffinity':'Sticky'}"),
			  "spec.sessionAffinity", "supported values: \"None\", \"ClientIP\"");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80}],'sessionAffinityConfig':{'clientIP':"
				     "{'timeoutSeconds':60}}}"),
			  "spec.sessionAffinityConfig", "sessionAffinity");
}

static void test_api_service_traffic_policies_and_ips(void **state)
{
	(void)state;
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80}],'externalTrafficPolicy':'Local'}"),
			  "spec.externalTrafficPolicy", "'NodePort' or 'LoadBalancer'");
	ASSERT_ONLY_ERROR("svc", SVC("{'type':'NodePort','ports':[{'port':80}],"
				     "'externalTrafficPolicy':'Nearest'}"),
			  "spec.externalTrafficPolicy", "supported values: \"Cluster\", \"Local\"");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80}],'internalTrafficPolicy':'Any'}"),
			  "spec.internalTrafficPolicy", "Unsupported value");
	ASSERT_VALID("svc", SVC("{'ports':[{'port':80}],'externalIPs':['192.0.2.10']}"));
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80}],'externalIPs':['192.0.2.10','fe80::1']}"),
			  "spec.externalIPs[1]", "IPv4");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80}],'externalIPs':['127.0.0.1']}"),
			  "spec.externalIPs[0]", "loopback");
	ASSERT_ONLY_ERROR("svc", SVC("{'type':'LoadBalancer','ports':[{'port':80}],"
				     "'loadBalancerSourceRanges':['10.0.0.0/33']}"),
			  "spec.loadBalancerSourceRanges[0]", "CIDR");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80}],'loadBalancerSourceRanges':['10.0.0.0/8']}"),
			  "spec.loadBalancerSourceRanges", "'LoadBalancer'");
	ASSERT_ONLY_ERROR("svc", SVC("{'ports':[{'port':80}],'selector':{'app':'we b'}}"),
			  "spec.selector[app]", "valid label");
}

static void test_api_service_cluster_ip_immutable(void **state)
{
	(void)state;
	struct api_errors errs;
	const char *old = SVC("{'clusterIP':'10.96.0.5','ports':[{'port':80}]}");
	run("svc", SVC("{'clusterIP':'10.96.0.6','ports':[{'port':80}]}"), old, &errs);
	ASSERT_ERROR(&errs, "spec.clusterIP", "immutable");
	run("svc", SVC("{'clusterIP':'10.96.0.5','ports':[{'port':81}]}"), old, &errs);
	assert_int_equal(errs.n, 0);
}

/* ======================================================================================== */
/* Node, Namespace, Endpoints, EndpointSlice, Lease, Event */

static void test_api_node_spec_and_status(void **state)
{
	(void)state;
	ASSERT_VALID("node", "{'metadata':{'name':'node-1','labels':{'node-role.kubernetes.io/"
			     "control-plane':''}},'spec':{'podCIDR':'10.100.1.0/24','podCIDRs':"
			     "['10.100.1.0/24'],'unschedulable':true,'taints':[{'key':'dedicated',"
			     "'value':'gpu','effect':'NoSchedule'}]},'status':{'capacity':{'cpu':'4',"
			     "'memory':'16Gi','pods':'110'},'allocatable':{'cpu':'3800m','memory':"
			     "'15Gi'},'conditions':[{'type':'Ready','status':'True'}],'addresses':"
			     "[{'type':'InternalIP','address':'10.99.0.2'},{'type':'Hostname',"
			     "'address':'node-1'}],'nodeInfo':{'kubeletVersion':'shoal-0.1'}}}");
	ASSERT_ONLY_ERROR("node", "{'metadata':{'name':'n'},'spec':{'podCIDR':'10.100.1.0'}}",
			  "spec.podCIDR", "CIDR");
	ASSERT_ONLY_ERROR("node", "{'metadata':{'name':'n'},'spec':{'taints':[{'key':'a'}]}}",
			  "spec.taints[0].effect", "Required value");
	ASSERT_ONLY_ERROR("node", "{'metadata':{'name':'n'},'spec':{'taints':[{'key':'a','effect':"
				  "'NoSchedule'},{'key':'a','effect':'NoSchedule','value':'x'}]}}",
			  "spec.taints[1]", "Duplicate value");
	ASSERT_ONLY_ERROR("node", "{'metadata':{'name':'n'},'status':{'capacity':{'cpu':'-1'}}}",
			  "status.capacity[cpu]", "greater than or equal to 0");
	ASSERT_ONLY_ERROR("node", "{'metadata':{'name':'n'},'status':{'addresses':[{'type':"
				  "'InternalIP','address':'not-an-ip'}]}}",
			  "status.addresses[0].address", "valid IP");
	ASSERT_ONLY_ERROR("node", "{'metadata':{'name':'n'},'status':{'addresses':[{'type':'Wifi',"
				  "'address':'x'}]}}",
			  "status.addresses[0].type", "Unsupported value");
	struct api_errors errs;
	run("node", "{'metadata':{'name':'n'},'spec':{'podCIDR':'10.100.2.0/24'}}",
	    "{'metadata':{'name':'n'},'spec':{'podCIDR':'10.100.1.0/24'}}", &errs);
	ASSERT_ERROR(&errs, "spec.podCIDR", "may not change podCIDR");
	run("node", "{'metadata':{'name':'n'},'spec':{'podCIDR':'10.100.2.0/24'}}",
	    "{'metadata':{'name':'n'},'spec':{}}", &errs);
	assert_int_equal(errs.n, 0);
}

static void test_api_namespace(void **state)
{
	(void)state;
	json_t *ns = J("{'metadata':{'name':'team-a'}}");
	struct api_errors errs;
	assert_int_equal(run_obj("ns", ns, NULL, &errs), 0);
	assert_string_equal(str_at(ns, "status.phase"), "Active");
	json_decref(ns);
	ASSERT_ONLY_ERROR("ns", "{'metadata':{'name':'team.a'}}", "metadata.name", "RFC 1123 label");
	ASSERT_ONLY_ERROR("ns", "{'metadata':{'name':'a'},'status':{'phase':'Gone'}}", "status.phase",
			  "Unsupported value");
	ASSERT_ONLY_ERROR("ns", "{'metadata':{'name':'a'},'spec':{'finalizers':['mine']}}",
			  "spec.finalizers[0]", "fully qualified");
}

static void test_api_endpoints(void **state)
{
	(void)state;
	ASSERT_VALID("ep", "{'metadata':{'name':'web','namespace':'d'},'subsets':[{'addresses':"
			   "[{'ip':'10.100.1.5','nodeName':'n1','targetRef':{'kind':'Pod','name':'p1',"
			   "'namespace':'d'}}],'notReadyAddresses':[{'ip':'10.100.2.5'}],'ports':"
			   "[{'name':'http','port':80},{'name':'https','port':443}]}]}");
	ASSERT_ONLY_ERROR("ep", "{'metadata':{'name':'web','namespace':'d'},'subsets':[{'addresses':"
				"[{'ip':'10.100.1.500'}],'ports':[{'port':80}]}]}",
			  "subsets[0].addresses[0].ip", "valid IP");
	ASSERT_ONLY_ERROR("ep", "{'metadata':{'name':'web','namespace':'d'},'subsets':[{'addresses':"
				"[{'ip':'127.0.0.1'}],'ports':[{'port':80}]}]}",
			  "subsets[0].addresses[0].ip", "loopback");
	ASSERT_ONLY_ERROR("ep", "{'metadata':{'name':'web','namespace':'d'},'subsets':[{'addresses':"
				"[{'ip':'10.1.1.1'}],'ports':[{'port':80},{'port':81,'name':'b'}]}]}",
			  "subsets[0].ports[0].name", "Required value");
}

static json_t *slice_with(size_t nendpoints)
{
	json_t *eps = json_array();
	for (size_t i = 0; i < nendpoints; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.100.%zu.%zu", i / 250, i % 250 + 1);
		json_array_append_new(eps, json_pack("{s[s]s{sbsbsb}}", "addresses", ip, "conditions",
						     "ready", 1, "serving", 1, "terminating", 0));
	}
	return json_pack("{s{ssss}sss[{sssi}]so}", "metadata", "name", "web-abc", "namespace", "d",
			 "addressType", "IPv4", "ports", "name", "http", "port", 80, "endpoints", eps);
}

static void test_api_endpointslice(void **state)
{
	(void)state;
	struct api_errors errs;
	json_t *s = slice_with(1000);
	if (run_obj("endpointslices", s, NULL, &errs))
		dump(&errs);
	assert_int_equal(errs.n, 0);
	assert_string_equal(str_at(s, "ports[0].protocol"), "TCP");
	json_decref(s);
	s = slice_with(1001);
	run_obj("endpointslices", s, NULL, &errs);
	ASSERT_ERROR(&errs, "endpoints", "must have at most 1000 items");
	json_decref(s);
	ASSERT_ONLY_ERROR("endpointslice", "{'metadata':{'name':'s','namespace':'d'},"
					   "'endpoints':[]}", "addressType", "Required value");
	ASSERT_ONLY_ERROR("endpointslice", "{'metadata':{'name':'s','namespace':'d'},'addressType':"
					   "'IPv5'}", "addressType", "Unsupported value");
	ASSERT_ONLY_ERROR("endpointslice", "{'metadata':{'name':'s','namespace':'d'},'addressType':"
					   "'IPv4','endpoints':[{'addresses':['fe80::1']}]}",
			  "endpoints[0].addresses[0]", "IPv4");
	ASSERT_ONLY_ERROR("endpointslice", "{'metadata':{'name':'s','namespace':'d'},'addressType':"
					   "'IPv4','endpoints':[{'addresses':[]}]}",
			  "endpoints[0].addresses", "at least 1 address");
	ASSERT_ONLY_ERROR("endpointslice", "{'metadata':{'name':'s','namespace':'d'},'addressType':"
					   "'IPv4','endpoints':[{'addresses':['10.1.1.1'],'conditions':"
					   "{'ready':'yes'}}]}",
			  "endpoints[0].conditions.ready", "boolean");
	ASSERT_ONLY_ERROR("endpointslice", "{'metadata':{'name':'s','namespace':'d'},'addressType':"
					   "'FQDN','ports':[{'port':80},{'port':81}]}",
			  "ports[1].name", "Duplicate value");
	run("endpointslice", "{'metadata':{'name':'s','namespace':'d'},'addressType':'IPv6'}",
	    "{'metadata':{'name':'s','namespace':'d'},'addressType':'IPv4'}", &errs);
	ASSERT_ERROR(&errs, "addressType", "immutable");
}

static void test_api_lease(void **state)
{
	(void)state;
	ASSERT_VALID("lease", "{'metadata':{'name':'node-1','namespace':'kube-node-lease'},'spec':"
			      "{'holderIdentity':'node-1','leaseDurationSeconds':40,'renewTime':"
			      "'2026-01-02T15:04:05.123456Z','leaseTransitions':2}}");
	ASSERT_ONLY_ERROR("lease", "{'metadata':{'name':'l','namespace':'d'},'spec':"
				   "{'leaseDurationSeconds':0}}",
			  "spec.leaseDurationSeconds", "greater than 0");
	ASSERT_ONLY_ERROR("lease", "{'metadata':{'name':'l','namespace':'d'},'spec':"
				   "{'renewTime':'soon'}}",
			  "spec.renewTime", "RFC 3339");
	ASSERT_ONLY_ERROR("lease", "{'metadata':{'name':'l','namespace':'d'},'spec':"
				   "{'leaseTransitions':-1}}",
			  "spec.leaseTransitions", "greater than or equal to 0");
}

static void test_api_event(void **state)
{
	(void)state;
	ASSERT_VALID("ev", "{'metadata':{'name':'p.1','namespace':'d'},'involvedObject':{'kind':"
			   "'Pod','name':'p','namespace':'d'},'reason':'Scheduled','message':"
			   "'assigned d/p to n1','type':'Normal','count':1,'lastTimestamp':"
			   "'2026-01-02T15:04:05Z','source':{'component':'shoal-scheduler'}}");
	ASSERT_ONLY_ERROR("ev", "{'metadata':{'name':'e','namespace':'d'},'involvedObject':{'kind':"
				"'Pod','name':'p'},'type':'Info'}",
			  "type", "supported values: \"Normal\", \"Warning\"");
	ASSERT_ONLY_ERROR("ev", "{'metadata':{'name':'e','namespace':'d'},'involvedObject':{'kind':"
				"'Pod','name':'p','namespace':'other'}}",
			  "involvedObject.namespace", "does not match");
	ASSERT_ONLY_ERROR("ev", "{'metadata':{'name':'e','namespace':'d'},'involvedObject':{'kind':"
				"'Pod'}}",
			  "involvedObject.name", "Required value");
}

/* ======================================================================================== */
/* Deployment, ReplicaSet, DaemonSet */

#define DEPLOY(spec) "{'apiVersion':'apps/v1','kind':'Deployment','metadata':{'name':'web','namespace':'d'},'spec':" spec "}"
#define SEL_TMPL "'selector':{'matchLabels':{'app':'web'}},'template':{'metadata':{'labels':{'app':'web'}},'spec':{'containers':[{'name':'c','image':'nginx'}]}}"

static void test_api_deployment_defaults(void **state)
{
	(void)state;
	json_t *d = J(DEPLOY("{" SEL_TMPL "}"));
	struct api_errors errs;
	if (run_obj("deploy", d, NULL, &errs))
		dump(&errs);
	assert_int_equal(errs.n, 0);
	assert_int_equal(int_at(d, "spec.replicas"), 1);
	assert_string_equal(str_at(d, "spec.strategy.type"), "RollingUpdate");
	assert_string_equal(str_at(d, "spec.strategy.rollingUpdate.maxSurge"), "25%");
	assert_string_equal(str_at(d, "spec.strategy.rollingUpdate.maxUnavailable"), "25%");
	assert_int_equal(int_at(d, "spec.revisionHistoryLimit"), 10);
	assert_int_equal(int_at(d, "spec.progressDeadlineSeconds"), 600);
	assert_string_equal(str_at(d, "spec.template.spec.restartPolicy"), "Always");
	json_decref(d);
}

static void test_api_deployment_rejects_negative_replicas(void **state)
{
	(void)state;
	struct api_errors errs;
	run("deploy", DEPLOY("{'replicas':-1," SEL_TMPL "}"), NULL, &errs);
	assert_int_equal(errs.n, 1);
	char msg[512];
	api_errors_format(&errs, msg, sizeof(msg));
	assert_string_equal(msg, "spec.replicas: Invalid value: -1: must be between 0 and 2147483647, "
				 "inclusive");
	ASSERT_VALID("deploy", DEPLOY("{'replicas':0," SEL_TMPL "}"));
}

static void test_api_deployment_selector_must_match_template(void **state)
{
	(void)state;
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{'selector':{'matchLabels':{'app':'db'}},'template':"
					   "{'metadata':{'labels':{'app':'web'}},'spec':{'containers':"
					   "[{'name':'c','image':'i'}]}}}"),
			  "spec.template.metadata.labels", "does not match");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{'template':{'metadata':{'labels':{'app':'web'}},'spec':"
					   "{'containers':[{'name':'c','image':'i'}]}}}"),
			  "spec.selector", "Required value");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{'selector':{},'template':{'metadata':{'labels':"
					   "{'app':'web'}},'spec':{'containers':[{'name':'c','image':'i'}]}}}"),
			  "spec.selector", "empty selector");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{'selector':{'matchLabels':{'app':'web'}}}"),
			  "spec.template", "Required value");
	ASSERT_VALID("deploy", DEPLOY("{'selector':{'matchExpressions':[{'key':'app','operator':'In',"
				      "'values':['web','api']}]},'template':{'metadata':{'labels':"
				      "{'app':'web','v':'2'}},'spec':{'containers':[{'name':'c','image':'i'}]}}}"));
}

static void test_api_deployment_template_validated_as_pod(void **state)
{
	(void)state;
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{'selector':{'matchLabels':{'app':'web'}},'template':"
					   "{'metadata':{'labels':{'app':'web'}},'spec':{'containers':"
					   "[{'name':'c','image':'i','ports':[{'containerPort':80},"
					   "{'containerPort':0}]}]}}}"),
			  "spec.template.spec.containers[0].ports[1].containerPort", "between 1 and 65535");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{'selector':{'matchLabels':{'app':'web'}},'template':"
					   "{'metadata':{'labels':{'app':'web'}},'spec':{'restartPolicy':"
					   "'Never','containers':[{'name':'c','image':'i'}]}}}"),
			  "spec.template.spec.restartPolicy", "supported values: \"Always\"");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{'selector':{'matchLabels':{'app':'web'}},'template':"
					   "{'metadata':{'labels':{'app':'web'}},'spec':{'containers':[]}}}"),
			  "spec.template.spec.containers", "Required value");
}

static void test_api_deployment_strategy(void **state)
{
	(void)state;
	ASSERT_VALID("deploy", DEPLOY("{" SEL_TMPL ",'strategy':{'type':'Recreate'}}"));
	ASSERT_VALID("deploy", DEPLOY("{" SEL_TMPL ",'strategy':{'rollingUpdate':{'maxSurge':0,"
				      "'maxUnavailable':1}}}"));
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{" SEL_TMPL ",'strategy':{'type':'Recreate',"
					   "'rollingUpdate':{'maxSurge':1}}}"),
			  "spec.strategy.rollingUpdate", "'Recreate'");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{" SEL_TMPL ",'strategy':{'rollingUpdate':{'maxSurge':0,"
					   "'maxUnavailable':'0%'}}}"),
			  "spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when `maxSurge` is 0");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{" SEL_TMPL ",'strategy':{'rollingUpdate':{"
					   "'maxUnavailable':'150%'}}}"),
			  "spec.strategy.rollingUpdate.maxUnavailable", "100%");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{" SEL_TMPL ",'strategy':{'rollingUpdate':{"
					   "'maxSurge':'lots'}}}"),
			  "spec.strategy.rollingUpdate.maxSurge", "percent");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{" SEL_TMPL ",'strategy':{'rollingUpdate':{"
					   "'maxSurge':-1}}}"),
			  "spec.strategy.rollingUpdate.maxSurge", "greater than or equal to 0");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{" SEL_TMPL ",'strategy':{'type':'BlueGreen'}}"),
			  "spec.strategy.type", "supported values: \"Recreate\", \"RollingUpdate\"");
}

static void test_api_deployment_progress_deadline(void **state)
{
	(void)state;
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{" SEL_TMPL ",'minReadySeconds':30,"
					   "'progressDeadlineSeconds':30}"),
			  "spec.progressDeadlineSeconds", "must be greater than minReadySeconds");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{" SEL_TMPL ",'revisionHistoryLimit':-1}"),
			  "spec.revisionHistoryLimit", "greater than or equal to 0");
	ASSERT_ONLY_ERROR("deploy", DEPLOY("{" SEL_TMPL ",'minReadySeconds':-5}"),
			  "spec.minReadySeconds", "greater than or equal to 0");
}

static void test_api_deployment_selector_immutable(void **state)
{
	(void)state;
	struct api_errors errs;
	run("deploy", DEPLOY("{'selector':{'matchLabels':{'app':'web','v':'2'}},'template':{'metadata':"
			     "{'labels':{'app':'web','v':'2'}},'spec':{'containers':[{'name':'c',"
			     "'image':'i'}]}}}"),
	    DEPLOY("{" SEL_TMPL "}"), &errs);
	ASSERT_ERROR(&errs, "spec.selector", "immutable");
	run("deploy", DEPLOY("{'replicas':5," SEL_TMPL "}"), DEPLOY("{" SEL_TMPL "}"), &errs);
	assert_int_equal(errs.n, 0);
}

static void test_api_deployment_status(void **state)
{
	(void)state;
	ASSERT_VALID("deploy", "{'metadata':{'name':'web','namespace':'d'},'spec':{" SEL_TMPL "},"
			       "'status':{'replicas':3,'updatedReplicas':3,'readyReplicas':2,"
			       "'availableReplicas':2,'observedGeneration':4,'conditions':[{'type':"
			       "'Available','status':'True','lastUpdateTime':'2026-01-01T00:00:00Z'}]}}");
	ASSERT_ONLY_ERROR("deploy", "{'metadata':{'name':'web','namespace':'d'},'spec':{" SEL_TMPL
				    "},'status':{'replicas':-1}}",
			  "status.replicas", "greater than or equal to 0");
	ASSERT_ONLY_ERROR("deploy", "{'metadata':{'name':'web','namespace':'d'},'spec':{" SEL_TMPL
				    "},'status':{'replicas':1,'readyReplicas':2,'availableReplicas':1}}",
			  "status.readyReplicas", "cannot be greater than status.replicas");
}

static void test_api_replicaset(void **state)
{
	(void)state;
	json_t *rs = J("{'metadata':{'name':'web-1','namespace':'d'},'spec':{" SEL_TMPL "}}");
	struct api_errors errs;
	assert_int_equal(run_obj("rs", rs, NULL, &errs), 0);
	assert_int_equal(int_at(rs, "spec.replicas"), 1);
	json_decref(rs);
	ASSERT_ONLY_ERROR("rs", "{'metadata':{'name':'r','namespace':'d'},'spec':{'replicas':-2,"
				SEL_TMPL "}}",
			  "spec.replicas", "between 0 and");
	ASSERT_ONLY_ERROR("rs", "{'metadata':{'name':'r','namespace':'d'},'spec':{'selector':"
				"{'matchLabels':{'app':'x'}},'template':{'metadata':{'labels':{'app':"
				"'web'}},'spec':{'containers':[{'name':'c','image':'i'}]}}}}",
			  "spec.template.metadata.labels", "does not match");
}

static void test_api_daemonset(void **state)
{
	(void)state;
	json_t *ds = J("{'metadata':{'name':'agent','namespace':'d'},'spec':{" SEL_TMPL "}}");
	struct api_errors errs;
	assert_int_equal(run_obj("ds", ds, NULL, &errs), 0);
	assert_string_equal(str_at(ds, "spec.updateStrategy.type"), "RollingUpdate");
	assert_int_equal(int_at(ds, "spec.updateStrategy.rollingUpdate.maxUnavailable"), 1);
	assert_int_equal(int_at(ds, "spec.updateStrategy.rollingUpdate.maxSurge"), 0);
	json_decref(ds);
	ASSERT_VALID("ds", "{'metadata':{'name':'a','namespace':'d'},'spec':{" SEL_TMPL
			   ",'updateStrategy':{'type':'OnDelete'}}}");
	ASSERT_ONLY_ERROR("ds", "{'metadata':{'name':'a','namespace':'d'},'spec':{" SEL_TMPL
				",'updateStrategy':{'rollingUpdate':{'maxUnavailable':0,'maxSurge':0}}}}",
			  "spec.updateStrategy.rollingUpdate.maxUnavailable", "may not be 0");
	ASSERT_ONLY_ERROR("ds", "{'metadata':{'name':'a','namespace':'d'},'spec':{" SEL_TMPL
				",'updateStrategy':{'type':'Sometimes'}}}",
			  "spec.updateStrategy.type", "Unsupported value");
}

/* ======================================================================================== */
/* Job, PodGroup */

#define JOB(spec) "{'apiVersion':'batch/v1','kind':'Job','metadata':{'name':'pi','namespace':'d','uid':'u-1'},'spec':" spec "}"
#define JOB_TMPL "'template':{'spec':{'restartPolicy':'Never','containers':[{'name':'pi','command':['echo','3.14']}]}}"

static void test_api_job_defaults_and_selector(void **state)
{
	(void)state;
	json_t *job = J(JOB("{" JOB_TMPL "}"));
	struct api_errors errs;
	if (run_obj("job", job, NULL, &errs))
		dump(&errs);
	assert_int_equal(errs.n, 0);
	assert_int_equal(int_at(job, "spec.completions"), 1);
	assert_int_equal(int_at(job, "spec.parallelism"), 1);
	assert_int_equal(int_at(job, "spec.backoffLimit"), 6);
	assert_string_equal(str_at(job, "spec.completionMode"), "NonIndexed");
	json_t *ml = json_object_get(json_object_get(json_object_get(job, "spec"), "selector"),
				     "matchLabels");
	assert_string_equal(json_string_value(json_object_get(ml, "batch.kubernetes.io/job-name")), "pi");
	assert_int_equal(json_object_size(ml), 1);
	json_t *tl = json_object_get(json_object_get(json_object_get(json_object_get(job, "spec"),
								     "template"), "metadata"), "labels");
	assert_string_equal(json_string_value(json_object_get(tl, "batch.kubernetes.io/job-name")), "pi");
	json_decref(job);

	/* re-applying the same manifest (no selector in it) over the stored job is no change */
	job = J(JOB("{" JOB_TMPL "}"));
	run_obj("job", job, JOB("{" JOB_TMPL "}"), &errs);
	if (errs.n)
		dump(&errs);
	assert_int_equal(errs.n, 0);
	json_decref(job);

	/* parallelism without completions: completions stay unset (a work queue) */
	job = J(JOB("{'parallelism':3," JOB_TMPL "}"));
	assert_int_equal(run_obj("job", job, NULL, &errs), 0);
	assert_null(json_object_get(json_object_get(job, "spec"), "completions"));
	json_decref(job);
}

static void test_api_job_restart_policy(void **state)
{
	(void)state;
	ASSERT_ONLY_ERROR("job", JOB("{'template':{'spec':{'containers':[{'name':'c','image':'i'}]}}}"),
			  "spec.template.spec.restartPolicy", "Required value: valid values: \"OnFailure\", \"Never\"");
	ASSERT_ONLY_ERROR("job", JOB("{'template':{'spec':{'restartPolicy':'Always','containers':"
				     "[{'name':'c','image':'i'}]}}}"),
			  "spec.template.spec.restartPolicy", "supported values: \"OnFailure\", \"Never\"");
	ASSERT_VALID("job", JOB("{'template':{'spec':{'restartPolicy':'OnFailure','containers':"
				"[{'name':'c','image':'i'}]}}}"));
	ASSERT_ONLY_ERROR("job", "{'metadata':{'generateName':'pi-','namespace':'d'},'spec':{"
				 JOB_TMPL "}}",
			  "spec.selector", "generateName");
	ASSERT_VALID("job", "{'metadata':{'generateName':'pi-','namespace':'d'},'spec':{"
			    "'manualSelector':true,'selector':{'matchLabels':{'run':'pi'}},"
			    "'template':{'metadata':{'labels':{'run':'pi'}},'spec':{'restartPolicy':"
			    "'Never','containers':[{'name':'c','image':'i'}]}}}}");
}

static void test_api_job_fields_nonneg(void **state)
{
	(void)state;
	static const char *const fields[] = { "completions", "parallelism", "backoffLimit",
					      "activeDeadlineSeconds", "ttlSecondsAfterFinished" };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		char json[1024], field[64];
		snprintf(json, sizeof(json), JOB("{'%s':-1," JOB_TMPL "}"), fields[i]);
		snprintf(field, sizeof(field), "spec.%s", fields[i]);
		struct api_errors errs;
		run("job", json, NULL, &errs);
		ASSERT_ERROR(&errs, field, "-1");
	}
	ASSERT_ONLY_ERROR("job", JOB("{'completionMode':'Indexed','parallelism':2," JOB_TMPL "}"),
			  "spec.completions", "Indexed");
	ASSERT_VALID("job", JOB("{'completionMode':'Indexed','completions':5,'parallelism':2,"
				"'ttlSecondsAfterFinished':100," JOB_TMPL "}"));
	ASSERT_ONLY_ERROR("job", JOB("{'selector':{'matchLabels':{'a':'b'}}," JOB_TMPL "}"),
			  "spec.template.metadata.labels", "does not match");
	struct api_errors errs;
	run("job", JOB("{'template':{'spec':{'restartPolicy':'Never','containers':[{'name':'pi',"
		       "'command':['echo','2.71']}]}}}"),
	    JOB("{" JOB_TMPL "}"), &errs);
	ASSERT_ERROR(&errs, "spec.template", "immutable");
}

static void test_api_podgroup(void **state)
{
	(void)state;
	json_t *pg = J("{'apiVersion':'scheduling.shoal.io/v1alpha1','kind':'PodGroup','metadata':"
		       "{'name':'train','namespace':'d'},'spec':{'minMember':4,'minResources':"
		       "{'cpu':'8','nvidia.com/gpu':'4'}}}");
	struct api_errors errs;
	if (run_obj("podgroup", pg, NULL, &errs))
		dump(&errs);
	assert_int_equal(errs.n, 0);
	assert_int_equal(int_at(pg, "spec.scheduleTimeoutSeconds"), 60);
	assert_string_equal(str_at(pg, "status.phase"), "Pending");
	json_decref(pg);
	ASSERT_ONLY_ERROR("pg", "{'metadata':{'name':'g','namespace':'d'},'spec':{'minMember':0}}",
			  "spec.minMember", "between 1 and");
	ASSERT_ONLY_ERROR("pg", "{'metadata':{'name':'g','namespace':'d'},'spec':{}}",
			  "spec.minMember", "Required value");
	ASSERT_ONLY_ERROR("pg", "{'metadata':{'name':'g','namespace':'d'},'spec':{'minMember':2,"
				"'scheduleTimeoutSeconds':0}}",
			  "spec.scheduleTimeoutSeconds", "between 1 and");
}

#define FD_TMPL                                                                                    \
	"'template':{'metadata':{'labels':{'app':'w'}},'spec':{'selector':{'matchLabels':{'app':" \
	"'w'}},'template':{'metadata':{'labels':{'app':'w'}},'spec':{'containers':[{'name':'c'," \
	"'image':'x'}]}}}}"

static void test_api_fed_cluster(void **state)
{
	(void)state;
	json_t *c = J("{'apiVersion':'federation.shoal.io/v1','kind':'Cluster','metadata':{'name':"
		      "'a'},'spec':{'apiEndpoint':'https://10.0.0.1:6443','tokenFile':'/etc/t'}}");
	struct api_errors errs;
	if (run_obj("clusters.federation.shoal.io", c, NULL, &errs))
		dump(&errs);
	assert_int_equal(errs.n, 0);
	assert_string_equal(str_at(c, "spec.referencePod.cpu"), "100m");
	json_decref(c);
	ASSERT_VALID("clusters.federation.shoal.io",
		     "{'metadata':{'name':'b'},'spec':{'apiEndpoint':'unix:/run/b/api.sock'}}");
	ASSERT_ONLY_ERROR("clusters.federation.shoal.io", "{'metadata':{'name':'b'},'spec':{}}",
			  "spec.apiEndpoint", "Required value");
	ASSERT_ONLY_ERROR("clusters.federation.shoal.io",
			  "{'metadata':{'name':'b'},'spec':{'apiEndpoint':'http://h:99999'}}",
			  "spec.apiEndpoint", "port");
	ASSERT_ONLY_ERROR("clusters.federation.shoal.io",
			  "{'metadata':{'name':'b'},'spec':{'apiEndpoint':'unix:rel'}}",
			  "spec.apiEndpoint", "absolute");
	/* a bare name is a file of the federation's credentials directory; a relative path is
	 * refused */
	ASSERT_VALID("clusters.federation.shoal.io",
		     "{'metadata':{'name':'b'},'spec':{'apiEndpoint':'http://h:1','tokenFile':'t'}}");
	ASSERT_ONLY_ERROR("clusters.federation.shoal.io",
			  "{'metadata':{'name':'b'},'spec':{'apiEndpoint':'http://h:1','tokenFile':"
			  "'../t'}}",
			  "spec.tokenFile", "absolute path");
	ASSERT_ONLY_ERROR("clusters.federation.shoal.io",
			  "{'metadata':{'name':'b'},'spec':{'apiEndpoint':'http://h:1','tokenFile':"
			  "'..'}}",
			  "spec.tokenFile", "absolute path");
}

static void test_api_fed_deployment(void **state)
{
	(void)state;
	json_t *fd = J("{'apiVersion':'federation.shoal.io/v1','kind':'FederatedDeployment',"
		       "'metadata':{'name':'w','namespace':'d'},'spec':{" FD_TMPL ",'placement':"
		       "{'clusters':['a','b']}}}");
	struct api_errors errs;
	if (run_obj("fdeploy", fd, NULL, &errs))
		dump(&errs);
	assert_int_equal(errs.n, 0);
	assert_int_equal(int_at(fd, "spec.replicas"), 1);
	assert_string_equal(str_at(fd, "spec.placement.replicaScheduling.type"), "Divided");
	assert_string_equal(str_at(fd, "spec.placement.replicaScheduling.divideBy"), "Weights");
	/* the template is left as written (defaults are the members' business) */
	assert_null(json_object_get(json_object_get(json_object_get(json_object_get(fd, "spec"),
								     "template"),
						    "spec"),
				    "replicas"));
	json_decref(fd);
	ASSERT_ONLY_ERROR("fdeploy", "{'metadata':{'name':'w','namespace':'d'},'spec':{" FD_TMPL "}}",
			  "spec.placement", "clusterSelector");
	ASSERT_ONLY_ERROR("fdeploy",
			  "{'metadata':{'name':'w','namespace':'d'},'spec':{'template':{'spec':{"
			  "'selector':{'matchLabels':{'app':'w'}}}},'placement':{'clusters':['a']}}}",
			  "spec.template.spec.template", "Required value");
	ASSERT_ONLY_ERROR("fdeploy",
			  "{'metadata':{'name':'w','namespace':'d'},'spec':{" FD_TMPL ",'placement':{"
			  "'clusters':['a'],'replicaScheduling':{'type':'Spread'}}}}",
			  "spec.placement.replicaScheduling.type", "Unsupported value");
	ASSERT_ONLY_ERROR("fdeploy",
			  "{'metadata':{'name':'w','namespace':'d'},'spec':{" FD_TMPL ",'placement':{"
			  "'clusters':['a'],'replicaScheduling':{'weights':[{'cluster':'a','weight':"
			  "-1}]}}}}",
			  "spec.placement.replicaScheduling.weights[0].weight", "between");
	ASSERT_ONLY_ERROR("fdeploy",
			  "{'metadata':{'name':'w','namespace':'d'},'spec':{" FD_TMPL ",'placement':{"
			  "'clusters':['a'],'clusterReplicas':[{'cluster':'a','minReplicas':3,"
			  "'maxReplicas':2}]}}}",
			  "spec.placement.clusterReplicas[0].maxReplicas", "minReplicas");
	ASSERT_ONLY_ERROR("fdeploy",
			  "{'metadata':{'name':'w','namespace':'d'},'spec':{" FD_TMPL ",'placement':{"
			  "'clusters':['a']},'overrides':[{'cluster':'a','image':'y'}]}}",
			  "spec.overrides[0].image", "Forbidden");
	ASSERT_ONLY_ERROR("fdeploy",
			  "{'metadata':{'name':'w','namespace':'d'},'spec':{" FD_TMPL ",'placement':{"
			  "'clusters':['A_b']}}}",
			  "spec.placement.clusters[0]", "Invalid value");
}

/* ======================================================================================== */
/* Printer columns */

static const struct api_column *column(const struct api_kind *k, const char *header)
{
	for (const struct api_column *c = k->columns; c->header; c++)
		if (strcmp(c->header, header) == 0)
			return c;
	fail_msg("no column %s for %s", header, k->kind);
	return NULL;
}

static void cell(const char *kind, const char *header, const char *json, const char *want)
{
	const struct api_kind *k = api_kind_lookup(kind);
	const struct api_column *c = column(k, header);
	assert_non_null(c->format);
	json_t *obj = J(json);
	char buf[256];
	c->format(obj, buf, sizeof(buf));
	json_decref(obj);
	if (strcmp(buf, want) != 0)
		fail_msg("%s %s: got \"%s\", want \"%s\"", kind, header, buf, want);
}

static void test_api_columns_pod(void **state)
{
	(void)state;
	const struct api_kind *k = api_kind_lookup("po");
	static const char *const headers[] = { "NAME", "READY", "STATUS", "RESTARTS", "AGE" };
	for (size_t i = 0; i < 5; i++) {
		assert_string_equal(k->columns[i].header, headers[i]);
		assert_false(k->columns[i].wide);
	}
	assert_string_equal(column(k, "IP")->path, "status.podIP");
	assert_true(column(k, "NODE")->wide);
	const char *running = "{'spec':{'containers':[{'name':'a'},{'name':'b'}]},'status':{'phase':"
			      "'Running','containerStatuses':[{'name':'a','ready':true,'restartCount':2,"
			      "'state':{'running':{}}},{'name':'b','ready':false,'restartCount':1,"
			      "'state':{'waiting':{'reason':'CrashLoopBackOff'}}}]}}";
	cell("po", "READY", running, "1/2");
	cell("po", "STATUS", running, "CrashLoopBackOff");
	cell("po", "RESTARTS", running, "3");
	cell("po", "STATUS", "{'status':{'phase':'Running'},'metadata':{'deletionTimestamp':"
			     "'2026-01-01T00:00:00Z'}}",
	     "Terminating");
	cell("po", "STATUS", "{'spec':{'initContainers':[{'name':'i'}]},'status':{'phase':'Pending',"
			     "'initContainerStatuses':[{'name':'i','state':{'running':{}}}]}}",
	     "Init:0/1");
	cell("po", "STATUS", "{}", "Pending");
	cell("po", "AGE", "{'metadata':{}}", "<unknown>");
	char json[256], ts[64];
	time_t t = time(NULL) - 3 * 3600 - 5 * 60;
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	snprintf(json, sizeof(json), "{'metadata':{'creationTimestamp':'%s'}}", ts);
	cell("po", "AGE", json, "3h5m");
}

static void test_api_columns_other_kinds(void **state)
{
	(void)state;
	cell("svc", "PORT(S)", "{'spec':{'type':'NodePort','ports':[{'port':80,'nodePort':30080,"
			       "'protocol':'TCP'},{'port':53,'protocol':'UDP'}]}}",
	     "80:30080/TCP,53/UDP");
	cell("svc", "EXTERNAL-IP", "{'spec':{'type':'ClusterIP'}}", "<none>");
	cell("svc", "EXTERNAL-IP", "{'spec':{'type':'LoadBalancer'}}", "<pending>");
	cell("svc", "EXTERNAL-IP", "{'spec':{'type':'LoadBalancer'},'status':{'loadBalancer':"
				   "{'ingress':[{'ip':'192.0.2.1'}]}}}",
	     "192.0.2.1");
	cell("svc", "EXTERNAL-IP", "{'spec':{'type':'ExternalName','externalName':'db.example.com'}}",
	     "db.example.com");
	cell("no", "STATUS", "{'spec':{'unschedulable':true},'status':{'conditions':[{'type':"
			     "'Ready','status':'True'}]}}",
	     "Ready,SchedulingDisabled");
	cell("no", "STATUS", "{'status':{'conditions':[{'type':'Ready','status':'False'}]}}",
	     "NotReady");
	cell("no", "STATUS", "{}", "Unknown");
	cell("no", "ROLES", "{'metadata':{'labels':{'node-role.kubernetes.io/control-plane':''}}}",
	     "control-plane");
	cell("no", "ROLES", "{'metadata':{}}", "<none>");
	cell("deploy", "READY", "{'spec':{'replicas':3},'status':{'readyReplicas':2}}", "2/3");
	cell("deploy", "UP-TO-DATE", "{'spec':{'replicas':3}}", "0");
	cell("deploy", "SELECTOR", "{'spec':{'selector':{'matchLabels':{'app':'web'},"
				   "'matchExpressions':[{'key':'tier','operator':'In','values':['a','b']}]}}}",
	     "app=web,tier in (a,b)");
	cell("ep", "ENDPOINTS", "{'subsets':[{'addresses':[{'ip':'10.0.0.1'},{'ip':'10.0.0.2'},"
				"{'ip':'10.0.0.3'},{'ip':'10.0.0.4'}],'ports':[{'port':80}]}]}",
	     "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...");
	cell("job", "COMPLETIONS", "{'spec':{'completions':5},'status':{'succeeded':2}}", "2/5");
	cell("job", "STATUS", "{'status':{'conditions':[{'type':'Complete','status':'True'}]}}",
	     "Complete");
	cell("ev", "OBJECT", "{'involvedObject':{'kind':'Pod','name':'web-1'}}", "pod/web-1");
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_api_pod_minimal_is_valid_and_defaulted),
		cmocka_unit_test(test_api_pod_requires_containers),
		cmocka_unit_test(test_api_pod_container_names_unique_dns_labels),
		cmocka_unit_test(test_api_pod_image_optional_with_command),
		cmocka_unit_test(test_api_pod_rejects_negative_port),
		cmocka_unit_test(test_api_pod_port_protocols_and_names),
		cmocka_unit_test(test_api_pod_requests_must_not_exceed_limits),
		cmocka_unit_test(test_api_pod_probe_needs_exactly_one_handler),
		cmocka_unit_test(test_api_pod_restart_policy_and_grace),
		cmocka_unit_test(test_api_pod_affinity_requires_topology_key),
		cmocka_unit_test(test_api_pod_node_affinity_terms),
		cmocka_unit_test(test_api_pod_tolerations),
		cmocka_unit_test(test_api_pod_topology_spread),
		cmocka_unit_test(test_api_pod_volumes_and_mounts),
		cmocka_unit_test(test_api_pod_env),
		cmocka_unit_test(test_api_pod_update_allows_only_image),
		cmocka_unit_test(test_api_pod_status),
		cmocka_unit_test(test_api_service_defaults),
		cmocka_unit_test(test_api_service_ports_rules),
		cmocka_unit_test(test_api_service_types_and_headless),
		cmocka_unit_test(test_api_service_session_affinity),
		cmocka_unit_test(test_api_service_traffic_policies_and_ips),
		cmocka_unit_test(test_api_service_cluster_ip_immutable),
		cmocka_unit_test(test_api_node_spec_and_status),
		cmocka_unit_test(test_api_namespace),
		cmocka_unit_test(test_api_endpoints),
		cmocka_unit_test(test_api_endpointslice),
		cmocka_unit_test(test_api_lease),
		cmocka_unit_test(test_api_event),
		cmocka_unit_test(test_api_deployment_defaults),
		cmocka_unit_test(test_api_deployment_rejects_negative_replicas),
		cmocka_unit_test(test_api_deployment_selector_must_match_template),
		cmocka_unit_test(test_api_deployment_template_validated_as_pod),
		cmocka_unit_test(test_api_deployment_strategy),
		cmocka_unit_test(test_api_deployment_progress_deadline),
		cmocka_unit_test(test_api_deployment_selector_immutable),
		cmocka_unit_test(test_api_deployment_status),
		cmocka_unit_test(test_api_replicaset),
		cmocka_unit_test(test_api_daemonset),
		cmocka_unit_test(test_api_job_defaults_and_selector),
		cmocka_unit_test(test_api_job_restart_policy),
		cmocka_unit_test(test_api_job_fields_nonneg),
		cmocka_unit_test(test_api_podgroup),
		cmocka_unit_test(test_api_fed_cluster),
		cmocka_unit_test(test_api_fed_deployment),
		cmocka_unit_test(test_api_columns_pod),
		cmocka_unit_test(test_api_columns_other_kinds))
