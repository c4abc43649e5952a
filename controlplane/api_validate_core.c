// SPDX-License-Identifier: Apache-2.0
/*
 * The core group's kinds (v1): schema, defaulting and validation of Namespace, Node, Pod,
 * Service, Endpoints and Event, and of the pod spec and template that the workload kinds
 * (apps, batch) embed. Rules and messages follow Kubernetes' ValidatePod, ValidateService,
 * ValidateNode and friends, with the field path of each error.
 *
 * The design choice: shoal runs processes as well as images, so a container's image is
 * optional, but then its command is required ("containers[0].command: Required value: a
 * container without an image must give a command"). Everything else a Kubernetes manifest
 * says means the same here. One addition: a pod's status.usage ({"cpu": "250m", "memory":
 * "300Mi", "timestamp": RFC 3339}) holds the agent's latest usage sample for the scheduler's
 * resource prediction.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_validate.h"
#include "json_merge.h"
#include "labels.h"
#include "quantity.h"

static const char *const protocols[] = { "TCP", "UDP", "SCTP", NULL };

/* ======================================================================================== */
/* Schemas */

static const struct api_schema key_to_path =
	API_OBJ_INIT({ "key", S_STR }, { "path", S_STR }, { "mode", S_INT });

static const struct api_schema volume = API_OBJ_INIT(
	{ "name", S_STR }, { "hostPath", API_OBJ({ "path", S_STR }, { "type", S_STR }) },
	{ "emptyDir", API_OBJ({ "medium", S_STR }, { "sizeLimit", S_QTY }) },
	{ "configMap", API_OBJ({ "name", S_STR }, { "items", API_ARR(&key_to_path) },
			       { "defaultMode", S_INT }, { "optional", S_BOOL }) },
	{ "secret", API_OBJ({ "secretName", S_STR }, { "items", API_ARR(&key_to_path) },
			    { "defaultMode", S_INT }, { "optional", S_BOOL }) },
	{ "persistentVolumeClaim", API_OBJ({ "claimName", S_STR }, { "readOnly", S_BOOL }) },
	{ "nfs", API_OBJ({ "server", S_STR }, { "path", S_STR }, { "readOnly", S_BOOL }) },
	{ "projected", S_ANY }, { "downwardAPI", S_ANY });

static const struct api_schema exec_action = API_OBJ_INIT({ "command", S_STRS });
static const struct api_schema http_get =
	API_OBJ_INIT({ "path", S_STR }, { "port", S_IOS }, { "host", S_STR }, { "scheme", S_STR },
		     { "httpHeaders", API_ARR(API_OBJ({ "name", S_STR }, { "value", S_STR })) });
static const struct api_schema tcp_socket = API_OBJ_INIT({ "port", S_IOS }, { "host", S_STR });

static const struct api_schema probe = API_OBJ_INIT(
	{ "exec", &exec_action }, { "httpGet", &http_get }, { "tcpSocket", &tcp_socket },
	{ "grpc", API_OBJ({ "port", S_INT }, { "service", S_STR }) },
	{ "initialDelaySeconds", S_INT }, { "timeoutSeconds", S_INT }, { "periodSeconds", S_INT },
	{ "successThreshold", S_INT }, { "failureThreshold", S_INT },
	{ "terminationGracePeriodSeconds", S_INT });

static const struct api_schema lifecycle_handler =
	API_OBJ_INIT({ "exec", &exec_action }, { "httpGet", &http_get },
		     { "tcpSocket", &tcp_socket }, { "sleep", API_OBJ({ "seconds", S_INT }) });

static const struct api_schema key_selector =
	API_OBJ_INIT({ "name", S_STR }, { "key", S_STR }, { "optional", S_BOOL });

static const struct api_schema env_var = API_OBJ_INIT(
	{ "name", S_STR }, { "value", S_STR },
	{ "valueFrom",
	  API_OBJ({ "fieldRef", API_OBJ({ "apiVersion", S_STR }, { "fieldPath", S_STR }) },
		  { "resourceFieldRef", API_OBJ({ "containerName", S_STR }, { "resource", S_STR },
						{ "divisor", S_QTY }) },
		  { "configMapKeyRef", &key_selector }, { "secretKeyRef", &key_selector }) });

static const struct api_schema security_context = API_OBJ_INIT(
	{ "privileged", S_BOOL },
	{ "capabilities", API_OBJ({ "add", S_STRS }, { "drop", S_STRS }) }, { "runAsUser", S_INT },
	{ "runAsGroup", S_INT }, { "runAsNonRoot", S_BOOL }, { "readOnlyRootFilesystem", S_BOOL },
	{ "allowPrivilegeEscalation", S_BOOL }, { "procMount", S_STR }, { "seccompProfile", S_ANY },
	{ "seLinuxOptions", S_ANY }, { "appArmorProfile", S_ANY });

static const struct api_schema container = API_OBJ_INIT(
	{ "name", S_STR }, { "image", S_STR }, { "command", S_STRS }, { "args", S_STRS },
	{ "workingDir", S_STR },
	{ "ports",
	  API_ARR(API_OBJ({ "name", S_STR }, { "hostPort", S_INT }, { "containerPort", S_INT },
			  { "protocol", S_STR }, { "hostIP", S_STR })) },
	{ "envFrom",
	  API_ARR(API_OBJ({ "prefix", S_STR },
			  { "configMapRef", API_OBJ({ "name", S_STR }, { "optional", S_BOOL }) },
			  { "secretRef", API_OBJ({ "name", S_STR }, { "optional", S_BOOL }) })) },
	{ "env", API_ARR(&env_var) },
	{ "resources",
	  API_OBJ({ "limits", S_QTYMAP }, { "requests", S_QTYMAP }, { "claims", S_ANY }) },
	{ "volumeMounts",
	  API_ARR(API_OBJ({ "name", S_STR }, { "readOnly", S_BOOL }, { "mountPath", S_STR },
			  { "subPath", S_STR }, { "mountPropagation", S_STR },
			  { "subPathExpr", S_STR })) },
	{ "livenessProbe", &probe }, { "readinessProbe", &probe }, { "startupProbe", &probe },
	{ "lifecycle",
	  API_OBJ({ "postStart", &lifecycle_handler }, { "preStop", &lifecycle_handler }) },
	{ "terminationMessagePath", S_STR }, { "terminationMessagePolicy", S_STR },
	{ "imagePullPolicy", S_STR }, { "securityContext", &security_context }, { "stdin", S_BOOL },
	{ "stdinOnce", S_BOOL }, { "tty", S_BOOL }, { "restartPolicy", S_STR });

static const struct api_schema node_selector_term = API_OBJ_INIT(
	{ "matchExpressions",
	  API_ARR(API_OBJ({ "key", S_STR }, { "operator", S_STR }, { "values", S_STRS })) },
	{ "matchFields",
	  API_ARR(API_OBJ({ "key", S_STR }, { "operator", S_STR }, { "values", S_STRS })) });

static const struct api_schema pod_affinity_term =
	API_OBJ_INIT({ "labelSelector", &api_schema_label_selector }, { "namespaces", S_STRS },
		     { "topologyKey", S_STR }, { "namespaceSelector", &api_schema_label_selector },
		     { "matchLabelKeys", S_STRS }, { "mismatchLabelKeys", S_STRS });

static const struct api_schema pod_affinity = API_OBJ_INIT(
	{ "requiredDuringSchedulingIgnoredDuringExecution", API_ARR(&pod_affinity_term) },
	{ "preferredDuringSchedulingIgnoredDuringExecution",
	  API_ARR(API_OBJ({ "weight", S_INT }, { "podAffinityTerm", &pod_affinity_term })) });

static const struct api_schema affinity =
	API_OBJ_INIT({ "nodeAffinity",
		       API_OBJ({ "requiredDuringSchedulingIgnoredDuringExecution",
				 API_OBJ({ "nodeSelectorTerms", API_ARR(&node_selector_term) }) },
			       { "preferredDuringSchedulingIgnoredDuringExecution",
				 API_ARR(API_OBJ({ "weight", S_INT },
						 { "preference", &node_selector_term })) }) },
		     { "podAffinity", &pod_affinity }, { "podAntiAffinity", &pod_affinity });

static const struct api_schema toleration =
	API_OBJ_INIT({ "key", S_STR }, { "operator", S_STR }, { "value", S_STR },
		     { "effect", S_STR }, { "tolerationSeconds", S_INT });

static const struct api_schema spread_constraint =
	API_OBJ_INIT({ "maxSkew", S_INT }, { "topologyKey", S_STR }, { "whenUnsatisfiable", S_STR },
		     { "labelSelector", &api_schema_label_selector }, { "minDomains", S_INT },
		     { "nodeAffinityPolicy", S_STR }, { "nodeTaintsPolicy", S_STR },
		     { "matchLabelKeys", S_STRS });

static const struct api_schema pod_spec = API_OBJ_INIT(
	{ "volumes", API_ARR(&volume) }, { "initContainers", API_ARR(&container) },
	{ "containers", API_ARR(&container) }, { "restartPolicy", S_STR },
	{ "terminationGracePeriodSeconds", S_INT }, { "activeDeadlineSeconds", S_INT },
	{ "dnsPolicy", S_STR }, { "nodeSelector", S_STRMAP }, { "serviceAccountName", S_STR },
	{ "serviceAccount", S_STR }, { "automountServiceAccountToken", S_BOOL },
	{ "nodeName", S_STR }, { "hostNetwork", S_BOOL }, { "hostPID", S_BOOL },
	{ "hostIPC", S_BOOL }, { "shareProcessNamespace", S_BOOL },
	{ "securityContext",
	  API_OBJ({ "runAsUser", S_INT }, { "runAsGroup", S_INT }, { "runAsNonRoot", S_BOOL },
		  { "fsGroup", S_INT }, { "supplementalGroups", S_INTS },
		  { "fsGroupChangePolicy", S_STR },
		  { "sysctls", API_ARR(API_OBJ({ "name", S_STR }, { "value", S_STR })) },
		  { "seccompProfile", S_ANY }, { "seLinuxOptions", S_ANY },
		  { "appArmorProfile", S_ANY }) },
	{ "imagePullSecrets", API_ARR(API_OBJ({ "name", S_STR })) }, { "hostname", S_STR },
	{ "subdomain", S_STR }, { "affinity", &affinity }, { "schedulerName", S_STR },
	{ "tolerations", API_ARR(&toleration) },
	{ "hostAliases", API_ARR(API_OBJ({ "ip", S_STR }, { "hostnames", S_STRS })) },
	{ "priorityClassName", S_STR }, { "priority", S_INT },
	{ "dnsConfig",
	  API_OBJ({ "nameservers", S_STRS }, { "searches", S_STRS },
		  { "options", API_ARR(API_OBJ({ "name", S_STR }, { "value", S_STR })) }) },
	{ "readinessGates", API_ARR(API_OBJ({ "conditionType", S_STR })) },
	{ "runtimeClassName", S_STR }, { "enableServiceLinks", S_BOOL },
	{ "preemptionPolicy", S_STR }, { "overhead", S_QTYMAP },
	{ "topologySpreadConstraints", API_ARR(&spread_constraint) },
	{ "setHostnameAsFQDN", S_BOOL }, { "os", API_OBJ({ "name", S_STR }) },
	{ "schedulingGates", API_ARR(API_OBJ({ "name", S_STR })) });

static const struct api_schema container_state = API_OBJ_INIT(
	{ "waiting", API_OBJ({ "reason", S_STR }, { "message", S_STR }) },
	{ "running", API_OBJ({ "startedAt", S_STR }) },
	{ "terminated", API_OBJ({ "exitCode", S_INT }, { "signal", S_INT }, { "reason", S_STR },
				{ "message", S_STR }, { "startedAt", S_STR },
				{ "finishedAt", S_STR }, { "containerID", S_STR }) });

static const struct api_schema container_status = API_OBJ_INIT(
	{ "name", S_STR }, { "state", &container_state }, { "lastState", &container_state },
	{ "ready", S_BOOL }, { "restartCount", S_INT }, { "image", S_STR }, { "imageID", S_STR },
	{ "containerID", S_STR }, { "started", S_BOOL }, { "allocatedResources", S_QTYMAP },
	{ "resources", API_OBJ({ "limits", S_QTYMAP }, { "requests", S_QTYMAP }) });

static const struct api_schema pod_status = API_OBJ_INIT(
	{ "phase", S_STR }, { "conditions", &api_schema_conditions }, { "message", S_STR },
	{ "reason", S_STR }, { "nominatedNodeName", S_STR }, { "hostIP", S_STR },
	{ "hostIPs", API_ARR(API_OBJ({ "ip", S_STR })) }, { "podIP", S_STR },
	{ "podIPs", API_ARR(API_OBJ({ "ip", S_STR })) }, { "startTime", S_STR },
	{ "initContainerStatuses", API_ARR(&container_status) },
	{ "containerStatuses", API_ARR(&container_status) }, { "qosClass", S_STR },
	/* shoal's own: the agent's latest usage sample of the pod, read by the scheduler's
	 * resource prediction */
	{ "usage", API_OBJ({ "cpu", S_QTY }, { "memory", S_QTY }, { "timestamp", S_STR }) });

const struct api_schema api_schema_pod_template =
	API_OBJ_INIT({ "metadata", &api_schema_meta }, { "spec", &pod_spec });

const struct api_schema api_schema_pod = API_KIND_SCHEMA(&pod_spec, &pod_status);

const struct api_schema api_schema_namespace =
	API_KIND_SCHEMA(API_OBJ({ "finalizers", S_STRS }),
			API_OBJ({ "phase", S_STR }, { "conditions", &api_schema_conditions }));

static const struct api_schema taint = API_OBJ_INIT({ "key", S_STR }, { "value", S_STR },
						    { "effect", S_STR }, { "timeAdded", S_STR });

const struct api_schema api_schema_node = API_KIND_SCHEMA(
	API_OBJ({ "podCIDR", S_STR }, { "podCIDRs", S_STRS }, { "providerID", S_STR },
		{ "unschedulable", S_BOOL }, { "taints", API_ARR(&taint) }),
	API_OBJ({ "capacity", S_QTYMAP }, { "allocatable", S_QTYMAP }, { "phase", S_STR },
		{ "conditions", &api_schema_conditions },
		{ "addresses", API_ARR(API_OBJ({ "type", S_STR }, { "address", S_STR })) },
		{ "daemonEndpoints", API_OBJ({ "kubeletEndpoint", API_OBJ({ "Port", S_INT }) }) },
		{ "nodeInfo", API_OBJ({ "machineID", S_STR }, { "systemUUID", S_STR },
				      { "bootID", S_STR }, { "kernelVersion", S_STR },
				      { "osImage", S_STR }, { "containerRuntimeVersion", S_STR },
				      { "kubeletVersion", S_STR }, { "kubeProxyVersion", S_STR },
				      { "operatingSystem", S_STR }, { "architecture", S_STR }) },
		{ "images", API_ARR(API_OBJ({ "names", S_STRS }, { "sizeBytes", S_INT })) },
		{ "volumesInUse", S_STRS }, { "volumesAttached", S_ANY }));

const struct api_schema api_schema_service = API_KIND_SCHEMA(
	API_OBJ({ "ports", API_ARR(API_OBJ({ "name", S_STR }, { "protocol", S_STR },
					   { "appProtocol", S_STR }, { "port", S_INT },
					   { "targetPort", S_IOS }, { "nodePort", S_INT })) },
		{ "selector", S_STRMAP }, { "clusterIP", S_STR }, { "clusterIPs", S_STRS },
		{ "type", S_STR }, { "externalIPs", S_STRS }, { "sessionAffinity", S_STR },
		{ "loadBalancerIP", S_STR }, { "loadBalancerSourceRanges", S_STRS },
		{ "externalName", S_STR }, { "externalTrafficPolicy", S_STR },
		{ "healthCheckNodePort", S_INT }, { "publishNotReadyAddresses", S_BOOL },
		{ "sessionAffinityConfig",
		  API_OBJ({ "clientIP", API_OBJ({ "timeoutSeconds", S_INT }) }) },
		{ "ipFamilies", S_STRS }, { "ipFamilyPolicy", S_STR },
		{ "allocateLoadBalancerNodePorts", S_BOOL }, { "loadBalancerClass", S_STR },
		{ "internalTrafficPolicy", S_STR }, { "trafficDistribution", S_STR }),
	API_OBJ({ "loadBalancer",
		  API_OBJ({ "ingress",
			    API_ARR(API_OBJ(
				    { "ip", S_STR }, { "hostname", S_STR }, { "ipMode", S_STR },
				    { "ports",
				      API_ARR(API_OBJ({ "port", S_INT }, { "protocol", S_STR },
						      { "error", S_STR })) })) }) },
		{ "conditions", &api_schema_conditions }));

static const struct api_schema endpoint_address =
	API_OBJ_INIT({ "ip", S_STR }, { "hostname", S_STR }, { "nodeName", S_STR },
		     { "targetRef", &api_schema_object_ref });

const struct api_schema api_schema_endpoints = API_OBJ_INIT(
	{ "apiVersion", S_STR }, { "kind", S_STR }, { "metadata", &api_schema_meta },
	{ "subsets",
	  API_ARR(API_OBJ({ "addresses", API_ARR(&endpoint_address) },
			  { "notReadyAddresses", API_ARR(&endpoint_address) },
			  { "ports", API_ARR(API_OBJ({ "name", S_STR }, { "port", S_INT },
						     { "protocol", S_STR },
						     { "appProtocol", S_STR })) })) });

const struct api_schema api_schema_event = API_OBJ_INIT(
	{ "apiVersion", S_STR }, { "kind", S_STR }, { "metadata", &api_schema_meta },
	{ "involvedObject", &api_schema_object_ref }, { "reason", S_STR }, { "message", S_STR },
	{ "source", API_OBJ({ "component", S_STR }, { "host", S_STR }) },
	{ "firstTimestamp", S_STR }, { "lastTimestamp", S_STR }, { "count", S_INT },
	{ "type", S_STR }, { "eventTime", S_STR },
	{ "series", API_OBJ({ "count", S_INT }, { "lastObservedTime", S_STR }) },
	{ "action", S_STR }, { "related", &api_schema_object_ref }, { "reportingComponent", S_STR },
	{ "reportingInstance", S_STR });

/* ======================================================================================== */
/* Pod spec: defaults */

static void defaults_probe(json_t *p)
{
	if (!json_is_object(p))
		return;
	api_default_int(p, "timeoutSeconds", 1);
	api_default_int(p, "periodSeconds", 10);
	api_default_int(p, "successThreshold", 1);
	api_default_int(p, "failureThreshold", 3);
	json_t *h = json_object_get(p, "httpGet");
	if (json_is_object(h)) {
		api_default_str(h, "path", "/");
		api_default_str(h, "scheme", "HTTP");
	}
}

/* "Always" for an image without a tag or with ":latest", else "IfNotPresent". */
static const char *pull_policy_for(const char *image)
{
	if (strchr(image, '@'))
		return "IfNotPresent";
	const char *slash = strrchr(image, '/');
	const char *colon = strrchr(slash ? slash : image, ':');
	if (!colon || strcmp(colon, ":latest") == 0)
		return "Always";
	return "IfNotPresent";
}

static void defaults_container(json_t *c)
{
	if (!json_is_object(c))
		return;
	api_default_str(c, "terminationMessagePath", "/dev/termination-log");
	api_default_str(c, "terminationMessagePolicy", "File");
	const char *image = api_nonempty(c, "image");
	if (image)
		api_default_str(c, "imagePullPolicy", pull_policy_for(image));
	size_t i;
	json_t *v;
	json_array_foreach (json_object_get(c, "ports"), i, v)
		if (json_is_object(v))
			api_default_str(v, "protocol", "TCP");
	json_array_foreach (json_object_get(c, "env"), i, v) {
		json_t *fr = json_object_get(json_object_get(v, "valueFrom"), "fieldRef");
		if (json_is_object(fr))
			api_default_str(fr, "apiVersion", "v1");
	}
	defaults_probe(json_object_get(c, "livenessProbe"));
	defaults_probe(json_object_get(c, "readinessProbe"));
	defaults_probe(json_object_get(c, "startupProbe"));
	/* requests default to limits, resource by resource (Kubernetes' SetDefaults_Pod) */
	json_t *res = json_object_get(c, "resources");
	json_t *lim = json_object_get(res, "limits");
	if (json_is_object(lim) && json_object_size(lim) > 0) {
		json_t *req = api_obj_child(res, "requests");
		const char *k;
		json_object_foreach (lim, k, v)
			if (req && !json_object_get(req, k))
				json_object_set(req, k, v);
	}
}

static const char *const volume_sources[] = {
	"hostPath", "emptyDir",	 "configMap",	"secret", "persistentVolumeClaim",
	"nfs",	    "projected", "downwardAPI", NULL
};

void api_defaults_pod_spec(json_t *spec)
{
	if (!json_is_object(spec))
		return;
	api_default_str(spec, "restartPolicy", "Always");
	api_default_str(spec, "dnsPolicy", "ClusterFirst");
	api_default_int(spec, "terminationGracePeriodSeconds", 30);
	api_default_str(spec, "schedulerName", "default-scheduler");
	api_default_bool(spec, "enableServiceLinks", true);
	if (!json_object_get(spec, "securityContext"))
		json_object_set_new(spec, "securityContext", json_object());
	size_t i;
	json_t *v;
	json_array_foreach (json_object_get(spec, "containers"), i, v)
		defaults_container(v);
	json_array_foreach (json_object_get(spec, "initContainers"), i, v)
		defaults_container(v);
	json_array_foreach (json_object_get(spec, "volumes"), i, v) {
		if (!json_is_object(v))
			continue;
		bool has = false;
		for (const char *const *s = volume_sources; *s; s++)
			has |= json_object_get(v, *s) != NULL;
		if (!has)
			json_object_set_new(v, "emptyDir", json_object());
		json_t *cm = json_object_get(v, "configMap");
		if (json_is_object(cm))
			api_default_int(cm, "defaultMode", 0644);
		json_t *sec = json_object_get(v, "secret");
		if (json_is_object(sec))
			api_default_int(sec, "defaultMode", 0644);
		json_t *hp = json_object_get(v, "hostPath");
		if (json_is_object(hp))
			api_default_str(hp, "type", "");
	}
}

void api_defaults_pod(json_t *obj)
{
	api_defaults_pod_spec(json_object_get(obj, "spec"));
	json_t *status = api_obj_child(obj, "status");
	if (status)
		api_default_str(status, "phase", "Pending");
}

/* ======================================================================================== */
/* Pod spec: validation */

static const char *env_name_invalid(const char *s)
{
	if (!*s)
		return "must be non-empty";
	if (s[0] >= '0' && s[0] <= '9')
		return "a valid environment variable name must consist of alphabetic characters, "
		       "digits, '_', '-', or '.', and must not start with a digit";
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.'))
			return "a valid environment variable name must consist of alphabetic "
			       "characters, digits, '_', '-', or '.', and must not start with a "
			       "digit";
	return NULL;
}

/* Exactly one of the handler fields of h; returns how many were given. */
static size_t count_handlers(const json_t *h, const char *const *names)
{
	size_t n = 0;
	for (const char *const *s = names; *s; s++)
		if (api_get(h, *s))
			n++;
	return n;
}

static void validate_handler_fields(const json_t *h, const char *path, struct api_errors *errs)
{
	char p[API_PATH_LEN], q[API_PATH_LEN];
	const json_t *ex = api_get(h, "exec");
	if (ex)
		api_check_required(errs, api_path(p, path, "exec"), ex, "command");
	const json_t *hg = api_get(h, "httpGet");
	if (hg) {
		api_path(p, path, "httpGet");
		api_check_port_or_name(errs, p, hg, "port", true);
		static const char *const schemes[] = { "HTTP", "HTTPS", NULL };
		api_check_enum(errs, p, hg, "scheme", schemes);
		size_t i;
		json_t *hdr;
		json_array_foreach (api_get(hg, "httpHeaders"), i, hdr) {
			api_path_i(q, p, "httpHeaders", i);
			api_check_required(errs, q, hdr, "name");
		}
	}
	const json_t *ts = api_get(h, "tcpSocket");
	if (ts)
		api_check_port_or_name(errs, api_path(p, path, "tcpSocket"), ts, "port", true);
	const json_t *grpc = api_get(h, "grpc");
	if (grpc) {
		api_path(p, path, "grpc");
		if (api_check_required(errs, p, grpc, "port"))
			api_check_range(errs, p, grpc, "port", 1, 65535);
	}
	const json_t *sl = api_get(h, "sleep");
	if (sl) {
		api_path(p, path, "sleep");
		api_check_required(errs, p, sl, "seconds");
		api_check_nonneg(errs, p, sl, "seconds");
	}
}

static void validate_probe(const json_t *pr, const char *path, const char *kind,
			   struct api_errors *errs)
{
	static const char *const handlers[] = { "exec", "httpGet", "tcpSocket", "grpc", NULL };
	if (!pr)
		return;
	size_t n = count_handlers(pr, handlers);
	if (n == 0)
		api_err_add(errs, path,
			    "Required value: must specify a handler type (exec, "
			    "httpGet, tcpSocket or grpc)");
	else if (n > 1)
		api_err_add(errs, path, "Forbidden: may not specify more than 1 handler type");
	validate_handler_fields(pr, path, errs);
	static const char *const nonneg[] = { "initialDelaySeconds", "timeoutSeconds",
					      "periodSeconds",	     "successThreshold",
					      "failureThreshold",    NULL };
	for (const char *const *f = nonneg; *f; f++)
		api_check_nonneg(errs, path, pr, *f);
	int64_t st;
	char p[API_PATH_LEN];
	if (strcmp(kind, "readinessProbe") != 0 && api_int(pr, "successThreshold", &st) && st != 1)
		api_err_add(errs, api_path(p, path, "successThreshold"),
			    "Invalid value: %" PRId64 ": must be 1", st);
	if (api_get(pr, "terminationGracePeriodSeconds")) {
		if (strcmp(kind, "readinessProbe") == 0)
			api_err_add(errs, api_path(p, path, "terminationGracePeriodSeconds"),
				    "Invalid value: must not be set for readinessProbes");
		else
			api_check_range(errs, path, pr, "terminationGracePeriodSeconds", 1,
					INT64_MAX);
	}
}

static void validate_lifecycle(const json_t *lc, const char *path, struct api_errors *errs)
{
	static const char *const handlers[] = { "exec", "httpGet", "tcpSocket", "sleep", NULL };
	static const char *const hooks[] = { "postStart", "preStop", NULL };
	char p[API_PATH_LEN];
	for (const char *const *h = hooks; *h; h++) {
		const json_t *hd = api_get(lc, *h);
		if (!hd)
			continue;
		api_path(p, path, *h);
		size_t n = count_handlers(hd, handlers);
		if (n == 0)
			api_err_add(errs, p, "Required value: must specify a handler type");
		else if (n > 1)
			api_err_add(errs, p, "Forbidden: may not specify more than 1 handler type");
		validate_handler_fields(hd, p, errs);
	}
}

/* Extended resources (a domain-qualified name outside kubernetes.io, e.g. nvidia.com/gpu)
 * are counted in whole units and cannot be overcommitted, as in Kubernetes. */
static bool extended_resource(const char *name)
{
	return strchr(name, '/') && strncmp(name, "kubernetes.io/", 14) != 0 &&
	       !strstr(name, ".kubernetes.io/") && strncmp(name, "requests.", 9) != 0;
}

/* hugepages and extended resources: requests equal limits, and a limit is required. */
static bool not_overcommitable(const char *name)
{
	return strncmp(name, "hugepages-", 10) == 0 || extended_resource(name);
}

static void validate_resources(const json_t *res, const char *path, struct api_errors *errs)
{
	char p[API_PATH_LEN], q[API_PATH_LEN];
	const json_t *lim = api_get(res, "limits"), *req = api_get(res, "requests");
	api_check_resource_list(errs, api_path(p, path, "limits"), lim);
	api_check_resource_list(errs, api_path(p, path, "requests"), req);
	const char *k;
	json_t *rv;
	static const char *const lists[] = { "limits", "requests", NULL };
	for (const char *const *l = lists; *l; l++) {
		json_object_foreach ((json_t *)api_get(res, *l), k, rv) {
			int64_t m;
			if (extended_resource(k) && json_is_string(rv) &&
			    quantity_parse_milli(json_string_value(rv), &m) == 0 && m % 1000 != 0)
				api_err_add(errs, api_path_k(q, path, *l, k),
					    "Invalid value: \"%s\": must be an integer",
					    json_string_value(rv));
		}
	}
	json_object_foreach ((json_t *)req, k, rv) {
		const json_t *lv = api_get(lim, k);
		int64_t r, l;
		if (!json_is_string(rv) || quantity_parse_milli(json_string_value(rv), &r) < 0)
			continue;
		api_path_k(q, path, "requests", k);
		if (lv && json_is_string(lv) &&
		    quantity_parse_milli(json_string_value(lv), &l) == 0) {
			if (r > l)
				api_err_add(
					errs, q,
					"Invalid value: \"%s\": must be less than or equal to %s "
					"limit of %s",
					json_string_value(rv), k, json_string_value(lv));
			else if (not_overcommitable(k) && r != l)
				api_err_add(errs, q,
					    "Invalid value: \"%s\": must be equal to %s limit "
					    "of %s",
					    json_string_value(rv), k, json_string_value(lv));
		} else if (not_overcommitable(k)) {
			api_err_add(errs, api_path_k(q, path, "limits", k),
				    "Required value: Limit must be set for non overcommitable "
				    "resources");
		}
	}
}

struct port_key {
	int64_t port;
	char proto[8];
	char ip[48];
};

/* One container (init or regular); names holds the names seen so far in the pod. */
static void validate_container(const json_t *c, const char *path, bool init, const json_t *volumes,
			       struct api_errors *errs)
{
	char p[API_PATH_LEN], q[API_PATH_LEN];
	const char *why;
	const char *name = api_str(c, "name");
	if (!name || !*name)
		api_err_add(errs, api_path(p, path, "name"), "Required value");
	else if ((why = api_name_invalid(API_NAME_LABEL, name)))
		api_err_add(errs, api_path(p, path, "name"), "Invalid value: \"%s\": %s", name,
			    why);

	const char *image = api_str(c, "image");
	if (image && *image && (image[0] == ' ' || image[strlen(image) - 1] == ' '))
		api_err_add(errs, api_path(p, path, "image"),
			    "Invalid value: \"%s\": must not have leading or trailing whitespace",
			    image);
	if ((!image || !*image) && json_array_size(api_get(c, "command")) == 0)
		api_err_add(errs, api_path(p, path, "command"),
			    "Required value: a container without an image must give a command");

	/* ports */
	size_t i, j;
	json_t *port;
	const json_t *ports = api_get(c, "ports");
	json_array_foreach (ports, i, port) {
		api_path_i(p, path, "ports", i);
		if (api_check_required(errs, p, port, "containerPort"))
			api_check_range(errs, p, port, "containerPort", 1, 65535);
		int64_t hp;
		if (api_int(port, "hostPort", &hp) && hp != 0)
			api_check_range(errs, p, port, "hostPort", 1, 65535);
		api_check_enum(errs, p, port, "protocol", protocols);
		const char *pn = api_nonempty(port, "name");
		if (pn && (why = api_iana_svc_name_invalid(pn)))
			api_err_add(errs, api_path(q, p, "name"), "Invalid value: \"%s\": %s", pn,
				    why);
		for (j = 0; pn && j < i; j++) {
			const char *other = api_str(json_array_get(ports, j), "name");
			if (other && strcmp(other, pn) == 0) {
				api_err_add(errs, api_path(q, p, "name"), "Duplicate value: \"%s\"",
					    pn);
				break;
			}
		}
		const char *hip = api_nonempty(port, "hostIP");
		if (hip && (why = api_ip_invalid(hip)))
			api_err_add(errs, api_path(q, p, "hostIP"), "Invalid value: \"%s\": %s",
				    hip, why);
	}

	/* env */
	json_t *env;
	json_array_foreach (api_get(c, "env"), i, env) {
		api_path_i(p, path, "env", i);
		const char *en = api_str(env, "name");
		if (!en || !*en)
			api_err_add(errs, api_path(q, p, "name"), "Required value");
		else if ((why = env_name_invalid(en)))
			api_err_add(errs, api_path(q, p, "name"), "Invalid value: \"%s\": %s", en,
				    why);
		const json_t *vf = api_get(env, "valueFrom");
		if (vf) {
			static const char *const srcs[] = { "fieldRef", "resourceFieldRef",
							    "configMapKeyRef", "secretKeyRef",
							    NULL };
			size_t n = count_handlers(vf, srcs);
			api_path(q, p, "valueFrom");
			if (api_nonempty(env, "value"))
				api_err_add(errs, q,
					    "Invalid value: may not be specified when "
					    "`value` is not empty");
			if (n == 0)
				api_err_add(errs, q,
					    "Invalid value: must specify one of: "
					    "`fieldRef`, `resourceFieldRef`, "
					    "`configMapKeyRef` or `secretKeyRef`");
			else if (n > 1)
				api_err_add(errs, q,
					    "Invalid value: may not have more than one "
					    "field specified at a time");
			char r[API_PATH_LEN];
			const json_t *fr = api_get(vf, "fieldRef");
			if (fr)
				api_check_required(errs, api_path(r, q, "fieldRef"), fr,
						   "fieldPath");
			const json_t *rf = api_get(vf, "resourceFieldRef");
			if (rf)
				api_check_required(errs, api_path(r, q, "resourceFieldRef"), rf,
						   "resource");
			static const char *const kr[] = { "configMapKeyRef", "secretKeyRef", NULL };
			for (const char *const *s = kr; *s; s++) {
				const json_t *ks = api_get(vf, *s);
				if (ks)
					api_check_required(errs, api_path(r, q, *s), ks, "key");
			}
		}
	}
	json_t *ef;
	json_array_foreach (api_get(c, "envFrom"), i, ef) {
		api_path_i(p, path, "envFrom", i);
		static const char *const srcs[] = { "configMapRef", "secretRef", NULL };
		size_t n = count_handlers(ef, srcs);
		if (n != 1)
			api_err_add(errs, p,
				    "Invalid value: must specify exactly one of: "
				    "`configMapRef` or `secretRef`");
		const char *pre = api_nonempty(ef, "prefix");
		if (pre && (why = env_name_invalid(pre)))
			api_err_add(errs, api_path(q, p, "prefix"), "Invalid value: \"%s\": %s",
				    pre, why);
	}

	validate_resources(api_get(c, "resources"), api_path(p, path, "resources"), errs);

	/* volume mounts refer to the pod's volumes, one mount per path */
	json_t *vm;
	const json_t *mounts = api_get(c, "volumeMounts");
	json_array_foreach (mounts, i, vm) {
		api_path_i(p, path, "volumeMounts", i);
		const char *vn = api_str(vm, "name");
		if (!vn || !*vn) {
			api_err_add(errs, api_path(q, p, "name"), "Required value");
		} else {
			bool found = false;
			json_t *vol;
			json_array_foreach (volumes, j, vol) {
				const char *n2 = api_str(vol, "name");
				if (n2 && strcmp(n2, vn) == 0)
					found = true;
			}
			if (!found)
				api_err_add(errs, api_path(q, p, "name"), "Not found: \"%s\"", vn);
		}
		const char *mp = api_str(vm, "mountPath");
		if (!mp || !*mp) {
			api_err_add(errs, api_path(q, p, "mountPath"), "Required value");
			continue;
		}
		for (j = 0; j < i; j++) {
			const char *o = api_str(json_array_get(mounts, j), "mountPath");
			if (o && strcmp(o, mp) == 0) {
				api_err_add(errs, api_path(q, p, "mountPath"),
					    "Invalid value: \"%s\": must be unique", mp);
				break;
			}
		}
		static const char *const props[] = { "None", "HostToContainer", "Bidirectional",
						     NULL };
		api_check_enum(errs, p, vm, "mountPropagation", props);
		const char *sp = api_str(vm, "subPath");
		if (sp && (sp[0] == '/' || strstr(sp, "..")))
			api_err_add(errs, api_path(q, p, "subPath"),
				    "Invalid value: \"%s\": must be a relative path without '..'",
				    sp);
	}

	/* probes and hooks: init containers have none, except restartable (sidecar) ones */
	bool sidecar = init && api_str(c, "restartPolicy") &&
		       strcmp(api_str(c, "restartPolicy"), "Always") == 0;
	static const char *const probes[] = { "livenessProbe", "readinessProbe", "startupProbe",
					      NULL };
	for (const char *const *pr = probes; *pr; pr++) {
		const json_t *pv = api_get(c, *pr);
		if (!pv)
			continue;
		api_path(p, path, *pr);
		if (init && !sidecar && api_get(c, *pr))
			api_err_add(errs, p,
				    "Forbidden: may not be set for init containers "
				    "without restartPolicy=Always");
		validate_probe(pv, p, *pr, errs);
	}
	const json_t *lc = api_get(c, "lifecycle");
	if (lc) {
		if (init && !sidecar)
			api_err_add(errs, api_path(p, path, "lifecycle"),
				    "Forbidden: may not be set for init containers without "
				    "restartPolicy=Always");
		validate_lifecycle(lc, api_path(p, path, "lifecycle"), errs);
	}
	if (init) {
		static const char *const always[] = { "Always", NULL };
		api_check_enum(errs, path, c, "restartPolicy", always);
	} else if (api_get(c, "restartPolicy")) {
		api_err_add(errs, api_path(p, path, "restartPolicy"),
			    "Forbidden: may not be set for non-init containers");
	}

	static const char *const pulls[] = { "Always", "IfNotPresent", "Never", NULL };
	api_check_enum(errs, path, c, "imagePullPolicy", pulls);
	static const char *const tmp[] = { "File", "FallbackToLogsOnError", NULL };
	api_check_enum(errs, path, c, "terminationMessagePolicy", tmp);
	const json_t *sc = api_get(c, "securityContext");
	if (sc) {
		api_path(p, path, "securityContext");
		api_check_nonneg(errs, p, sc, "runAsUser");
		api_check_nonneg(errs, p, sc, "runAsGroup");
		static const char *const pm[] = { "Default", "Unmasked", NULL };
		api_check_enum(errs, p, sc, "procMount", pm);
		if (api_bool(sc, "privileged") && api_get(sc, "allowPrivilegeEscalation") &&
		    !api_bool(sc, "allowPrivilegeEscalation"))
			api_err_add(
				errs, api_path(q, p, "allowPrivilegeEscalation"),
				"Invalid value: false: cannot set `allowPrivilegeEscalation` to "
				"false and `privileged` to true");
	}
}

static void validate_volumes(const json_t *vols, const char *path, struct api_errors *errs)
{
	char p[API_PATH_LEN], q[API_PATH_LEN];
	size_t i, j;
	json_t *v;
	const char *why;
	json_array_foreach (vols, i, v) {
		api_path_i(p, path, NULL, i);
		const char *name = api_str(v, "name");
		if (!name || !*name) {
			api_err_add(errs, api_path(q, p, "name"), "Required value");
		} else if ((why = api_name_invalid(API_NAME_LABEL, name))) {
			api_err_add(errs, api_path(q, p, "name"), "Invalid value: \"%s\": %s", name,
				    why);
		} else {
			for (j = 0; j < i; j++) {
				const char *o = api_str(json_array_get(vols, j), "name");
				if (o && strcmp(o, name) == 0) {
					api_err_add(errs, api_path(q, p, "name"),
						    "Duplicate value: \"%s\"", name);
					break;
				}
			}
		}
		size_t n = count_handlers(v, volume_sources);
		if (n > 1)
			api_err_add(errs, p, "Forbidden: may not specify more than 1 volume type");
		const json_t *hp = api_get(v, "hostPath");
		if (hp) {
			api_path(q, p, "hostPath");
			const char *hpath = api_str(hp, "path");
			if (!hpath || !*hpath)
				api_err_add(errs, api_path(q, q, "path"), "Required value");
			static const char *const types[] = { "",	   "DirectoryOrCreate",
							     "Directory",  "FileOrCreate",
							     "File",	   "Socket",
							     "CharDevice", "BlockDevice",
							     NULL };
			api_check_enum(errs, q, hp, "type", types);
		}
		const json_t *ed = api_get(v, "emptyDir");
		if (ed) {
			static const char *const media[] = { "", "Memory", "HugePages", NULL };
			api_check_enum(errs, api_path(q, p, "emptyDir"), ed, "medium", media);
		}
		const json_t *cm = api_get(v, "configMap");
		if (cm) {
			api_path(q, p, "configMap");
			api_check_required(errs, q, cm, "name");
			api_check_range(errs, q, cm, "defaultMode", 0, 0777);
		}
		const json_t *sec = api_get(v, "secret");
		if (sec) {
			api_path(q, p, "secret");
			api_check_required(errs, q, sec, "secretName");
			api_check_range(errs, q, sec, "defaultMode", 0, 0777);
		}
		const json_t *pvc = api_get(v, "persistentVolumeClaim");
		if (pvc)
			api_check_required(errs, api_path(q, p, "persistentVolumeClaim"), pvc,
					   "claimName");
		const json_t *nfs = api_get(v, "nfs");
		if (nfs) {
			api_path(q, p, "nfs");
			api_check_required(errs, q, nfs, "server");
			api_check_required(errs, q, nfs, "path");
		}
	}
}

/* A NodeSelectorTerm: matchExpressions with label operators (Gt, Lt too) and matchFields
 * on metadata.name only. */
static void validate_node_selector_term(const json_t *t, const char *path, struct api_errors *errs)
{
	char p[API_PATH_LEN], err[400];
	const json_t *me = api_get(t, "matchExpressions");
	if (me) {
		json_t *wrap = json_pack("{sO}", "matchExpressions", (json_t *)me);
		struct selector *sel = NULL;
		if (wrap && selector_from_json(wrap, true, &sel, err, sizeof(err)) < 0)
			api_err_add(errs, path, "Invalid value: %s", err);
		selector_free(sel);
		json_decref(wrap);
	}
	size_t i;
	json_t *f;
	json_array_foreach (api_get(t, "matchFields"), i, f) {
		api_path_i(p, path, "matchFields", i);
		const char *key = api_str(f, "key"), *op = api_str(f, "operator");
		char q[API_PATH_LEN];
		if (!key || strcmp(key, "metadata.name") != 0)
			api_err_add(errs, api_path(q, p, "key"),
				    "Invalid value: \"%s\": not a valid field selector key: only "
				    "\"metadata.name\" is supported",
				    key ? key : "");
		if (!op || (strcmp(op, "In") != 0 && strcmp(op, "NotIn") != 0)) {
			static const char *const ops[] = { "In", "NotIn", NULL };
			api_err_unsupported(errs, api_path(q, p, "operator"), op ? op : "", ops);
		}
		if (json_array_size(api_get(f, "values")) != 1)
			api_err_add(
				errs, api_path(q, p, "values"),
				"Required value: must be only one value when `operator` is 'In' "
				"or 'NotIn' for node field selector");
	}
}

static void validate_pod_affinity_term(const json_t *t, const char *path, struct api_errors *errs)
{
	char p[API_PATH_LEN];
	const char *why;
	const char *tk = api_str(t, "topologyKey");
	if (!tk || !*tk)
		api_err_add(errs, api_path(p, path, "topologyKey"),
			    "Required value: can not be empty");
	else if ((why = label_key_invalid(tk)))
		api_err_add(errs, api_path(p, path, "topologyKey"), "Invalid value: \"%s\": %s", tk,
			    why);
	api_check_label_selector(errs, api_path(p, path, "labelSelector"),
				 api_get(t, "labelSelector"), false, NULL);
	api_check_label_selector(errs, api_path(p, path, "namespaceSelector"),
				 api_get(t, "namespaceSelector"), false, NULL);
	size_t i;
	json_t *ns;
	json_array_foreach (api_get(t, "namespaces"), i, ns) {
		const char *s = json_string_value(ns);
		if (s && (why = api_name_invalid(API_NAME_LABEL, s)))
			api_err_add(errs, api_path_i(p, path, "namespaces", i),
				    "Invalid value: \"%s\": %s", s, why);
	}
	static const char *const lk[] = { "matchLabelKeys", "mismatchLabelKeys", NULL };
	for (const char *const *k = lk; *k; k++) {
		json_t *v;
		json_array_foreach (api_get(t, *k), i, v) {
			const char *s = json_string_value(v);
			if (s && (why = label_key_invalid(s)))
				api_err_add(errs, api_path_i(p, path, *k, i),
					    "Invalid value: \"%s\": %s", s, why);
		}
	}
}

static void validate_affinity(const json_t *aff, const char *path, struct api_errors *errs)
{
	char p[API_PATH_LEN], q[API_PATH_LEN], r[API_PATH_LEN];
	size_t i;
	json_t *t;
	const json_t *na = api_get(aff, "nodeAffinity");
	if (na) {
		api_path(p, path, "nodeAffinity");
		const json_t *req = api_get(na, "requiredDuringSchedulingIgnoredDuringExecution");
		if (req) {
			api_path(q, p, "requiredDuringSchedulingIgnoredDuringExecution");
			if (json_array_size(api_get(req, "nodeSelectorTerms")) == 0)
				api_err_add(errs, api_path(r, q, "nodeSelectorTerms"),
					    "Required value: must have at least one node selector "
					    "term");
			json_array_foreach (api_get(req, "nodeSelectorTerms"), i, t)
				validate_node_selector_term(
					t, api_path_i(r, q, "nodeSelectorTerms", i), errs);
		}
		json_array_foreach (api_get(na, "preferredDuringSchedulingIgnoredDuringExecution"),
				    i, t) {
			api_path_i(q, p, "preferredDuringSchedulingIgnoredDuringExecution", i);
			api_check_range(errs, q, t, "weight", 1, 100);
			if (!api_get(t, "preference"))
				api_err_add(errs, api_path(r, q, "preference"), "Required value");
			else
				validate_node_selector_term(api_get(t, "preference"),
							    api_path(r, q, "preference"), errs);
			if (!api_get(t, "weight"))
				api_err_add(errs, api_path(r, q, "weight"), "Required value");
		}
	}
	static const char *const kinds[] = { "podAffinity", "podAntiAffinity", NULL };
	for (const char *const *k = kinds; *k; k++) {
		const json_t *pa = api_get(aff, *k);
		if (!pa)
			continue;
		api_path(p, path, *k);
		json_array_foreach (api_get(pa, "requiredDuringSchedulingIgnoredDuringExecution"),
				    i, t)
			validate_pod_affinity_term(
				t,
				api_path_i(q, p, "requiredDuringSchedulingIgnoredDuringExecution",
					   i),
				errs);
		json_array_foreach (api_get(pa, "preferredDuringSchedulingIgnoredDuringExecution"),
				    i, t) {
			api_path_i(q, p, "preferredDuringSchedulingIgnoredDuringExecution", i);
			if (!api_get(t, "weight"))
				api_err_add(errs, api_path(r, q, "weight"), "Required value");
			api_check_range(errs, q, t, "weight", 1, 100);
			const json_t *term = api_get(t, "podAffinityTerm");
			if (!term)
				api_err_add(errs, api_path(r, q, "podAffinityTerm"),
					    "Required value");
			else
				validate_pod_affinity_term(term, api_path(r, q, "podAffinityTerm"),
							   errs);
		}
	}
}

static void validate_tolerations(const json_t *tols, const char *path, struct api_errors *errs)
{
	static const char *const effects[] = { "NoSchedule", "PreferNoSchedule", "NoExecute",
					       NULL };
	char p[API_PATH_LEN], q[API_PATH_LEN];
	size_t i;
	json_t *t;
	const char *why;
	json_array_foreach (tols, i, t) {
		api_path_i(p, path, NULL, i);
		const char *key = api_nonempty(t, "key");
		const char *op = api_nonempty(t, "operator");
		const char *value = api_str(t, "value");
		const char *effect = api_nonempty(t, "effect");
		if (key && (why = label_key_invalid(key)))
			api_err_add(errs, api_path(q, p, "key"), "Invalid value: \"%s\": %s", key,
				    why);
		if (!key && (!op || strcmp(op, "Exists") != 0))
			api_err_add(errs, api_path(q, p, "operator"),
				    "Invalid value: \"%s\": operator must be Exists when `key` is "
				    "empty, which means \"match all values and all keys\"",
				    op ? op : "");
		if (op && strcmp(op, "Exists") != 0 && strcmp(op, "Equal") != 0) {
			static const char *const ops[] = { "Equal", "Exists", NULL };
			api_err_unsupported(errs, api_path(q, p, "operator"), op, ops);
		}
		if (op && strcmp(op, "Exists") == 0 && value && *value)
			api_err_add(errs, api_path(q, p, "value"),
				    "Invalid value: \"%s\": value must be empty when `operator` is "
				    "'Exists'",
				    value);
		else if (value && (why = label_value_invalid(value)))
			api_err_add(errs, api_path(q, p, "value"), "Invalid value: \"%s\": %s",
				    value, why);
		if (effect)
			api_check_enum(errs, p, t, "effect", effects);
		if (api_get(t, "tolerationSeconds") &&
		    (!effect || strcmp(effect, "NoExecute") != 0))
			api_err_add(errs, api_path(q, p, "effect"),
				    "Invalid value: \"%s\": effect must be 'NoExecute' when "
				    "`tolerationSeconds` is set",
				    effect ? effect : "");
	}
}

static void validate_spread(const json_t *arr, const char *path, struct api_errors *errs)
{
	char p[API_PATH_LEN], q[API_PATH_LEN];
	size_t i, j;
	json_t *c;
	const char *why;
	json_array_foreach (arr, i, c) {
		api_path_i(p, path, NULL, i);
		int64_t skew;
		if (!api_int(c, "maxSkew", &skew))
			api_err_add(errs, api_path(q, p, "maxSkew"), "Required value");
		else
			api_check_range(errs, p, c, "maxSkew", 1, INT32_MAX);
		const char *tk = api_nonempty(c, "topologyKey");
		if (!tk)
			api_err_add(errs, api_path(q, p, "topologyKey"),
				    "Required value: can not be empty");
		else if ((why = label_key_invalid(tk)))
			api_err_add(errs, api_path(q, p, "topologyKey"),
				    "Invalid value: \"%s\": %s", tk, why);
		static const char *const wu[] = { "DoNotSchedule", "ScheduleAnyway", NULL };
		const char *w = api_nonempty(c, "whenUnsatisfiable");
		if (!w)
			api_err_unsupported(errs, api_path(q, p, "whenUnsatisfiable"), "", wu);
		else
			api_check_enum(errs, p, c, "whenUnsatisfiable", wu);
		if (api_get(c, "minDomains")) {
			api_check_range(errs, p, c, "minDomains", 1, INT32_MAX);
			if (w && strcmp(w, "DoNotSchedule") != 0)
				api_err_add(errs, api_path(q, p, "minDomains"),
					    "Invalid value: can only use minDomains if "
					    "whenUnsatisfiable=DoNotSchedule");
		}
		static const char *const pol[] = { "Honor", "Ignore", NULL };
		api_check_enum(errs, p, c, "nodeAffinityPolicy", pol);
		api_check_enum(errs, p, c, "nodeTaintsPolicy", pol);
		api_check_label_selector(errs, api_path(q, p, "labelSelector"),
					 api_get(c, "labelSelector"), false, NULL);
		json_t *k;
		json_array_foreach (api_get(c, "matchLabelKeys"), j, k) {
			const char *s = json_string_value(k);
			if (s && (why = label_key_invalid(s)))
				api_err_add(errs, api_path_i(q, p, "matchLabelKeys", j),
					    "Invalid value: \"%s\": %s", s, why);
		}
		for (j = 0; tk && w && j < i; j++) {
			const json_t *o = json_array_get(arr, j);
			const char *otk = api_str(o, "topologyKey"),
				   *ow = api_str(o, "whenUnsatisfiable");
			if (otk && ow && strcmp(otk, tk) == 0 && strcmp(ow, w) == 0) {
				api_err_add(errs, p, "Duplicate value: \"{%s, %s}\"", tk, w);
				break;
			}
		}
	}
}

void api_validate_pod_spec(const json_t *spec, const char *path, struct api_errors *errs)
{
	char p[API_PATH_LEN], q[API_PATH_LEN];
	const char *why;
	if (!json_is_object(spec)) {
		api_err_add(errs, path, "Required value");
		return;
	}
	const json_t *vols = api_get(spec, "volumes");
	validate_volumes(vols, api_path(p, path, "volumes"), errs);

	const json_t *cs = api_get(spec, "containers");
	const json_t *ics = api_get(spec, "initContainers");
	if (json_array_size(cs) == 0)
		api_err_add(errs, api_path(p, path, "containers"), "Required value");
	size_t i, j;
	json_t *c;
	/* container names are unique across init and regular containers */
	const json_t *lists[2] = { ics, cs };
	const char *lnames[2] = { "initContainers", "containers" };
	for (int l = 0; l < 2; l++) {
		json_array_foreach (lists[l], i, c) {
			api_path_i(p, path, lnames[l], i);
			validate_container(c, p, l == 0, vols, errs);
			const char *name = api_str(c, "name");
			if (!name || !*name)
				continue;
			bool dup = false;
			for (int m = 0; m <= l && !dup; m++) {
				size_t upto = m == l ? i : json_array_size(lists[m]);
				for (j = 0; j < upto && !dup; j++) {
					const char *o =
						api_str(json_array_get(lists[m], j), "name");
					dup = o && strcmp(o, name) == 0;
				}
			}
			if (dup)
				api_err_add(errs, api_path(q, p, "name"), "Duplicate value: \"%s\"",
					    name);
		}
	}
	/* host ports: one (hostPort, protocol, hostIP) per pod */
	size_t nkeys = 0;
	struct port_key keys[128];
	json_array_foreach (cs, i, c) {
		json_t *port;
		json_array_foreach (api_get(c, "ports"), j, port) {
			int64_t hp;
			if (!api_int(port, "hostPort", &hp) || hp == 0)
				continue;
			struct port_key k = { .port = hp };
			snprintf(k.proto, sizeof(k.proto), "%s",
				 api_str(port, "protocol") ? api_str(port, "protocol") : "TCP");
			snprintf(k.ip, sizeof(k.ip), "%s",
				 api_str(port, "hostIP") ? api_str(port, "hostIP") : "");
			for (size_t m = 0; m < nkeys; m++)
				if (keys[m].port == k.port && strcmp(keys[m].proto, k.proto) == 0 &&
				    strcmp(keys[m].ip, k.ip) == 0) {
					char r[API_PATH_LEN];
					api_path_i(q, path, "containers", i);
					api_path_i(r, q, "ports", j);
					api_err_add(errs, api_path(q, r, "hostPort"),
						    "Duplicate value: \"%" PRId64 "/%s\"", hp,
						    k.proto);
				}
			if (nkeys < sizeof(keys) / sizeof(keys[0]))
				keys[nkeys++] = k;
		}
	}

	static const char *const restart[] = { "Always", "OnFailure", "Never", NULL };
	api_check_enum(errs, path, spec, "restartPolicy", restart);
	static const char *const dns[] = { "ClusterFirstWithHostNet", "ClusterFirst", "Default",
					   "None", NULL };
	api_check_enum(errs, path, spec, "dnsPolicy", dns);
	const char *dp = api_str(spec, "dnsPolicy");
	const json_t *dc = api_get(spec, "dnsConfig");
	if (dp && strcmp(dp, "None") == 0 && json_array_size(api_get(dc, "nameservers")) == 0)
		api_err_add(errs, api_path(p, path, "dnsConfig"),
			    "Required value: must provide `dnsConfig` with at least one nameserver "
			    "when `dnsPolicy` is None");
	if (dc) {
		api_path(p, path, "dnsConfig");
		const json_t *ns = api_get(dc, "nameservers");
		if (json_array_size(ns) > 3)
			api_err_add(errs, api_path(q, p, "nameservers"),
				    "Invalid value: must not have more than 3 nameservers");
		json_t *v;
		json_array_foreach (ns, i, v) {
			const char *s = json_string_value(v);
			if (s && (why = api_ip_invalid(s)))
				api_err_add(errs, api_path_i(q, p, "nameservers", i),
					    "Invalid value: \"%s\": %s", s, why);
		}
		if (json_array_size(api_get(dc, "searches")) > 32)
			api_err_add(errs, api_path(q, p, "searches"),
				    "Invalid value: must not have more than 32 search paths");
	}
	api_check_labels(errs, api_path(p, path, "nodeSelector"), api_get(spec, "nodeSelector"));
	api_check_dns_subdomain(errs, path, spec, "nodeName");
	api_check_dns_subdomain(errs, path, spec, "serviceAccountName");
	api_check_dns_label(errs, path, spec, "hostname");
	api_check_dns_label(errs, path, spec, "subdomain");
	api_check_dns_subdomain(errs, path, spec, "priorityClassName");
	api_check_dns_subdomain(errs, path, spec, "schedulerName");
	api_check_dns_subdomain(errs, path, spec, "runtimeClassName");
	api_check_range(errs, path, spec, "activeDeadlineSeconds", 1, INT64_MAX);
	api_check_nonneg(errs, path, spec, "terminationGracePeriodSeconds");
	api_check_range(errs, path, spec, "priority", INT32_MIN, INT32_MAX);
	static const char *const preempt[] = { "PreemptLowerPriority", "Never", NULL };
	api_check_enum(errs, path, spec, "preemptionPolicy", preempt);
	const json_t *os = api_get(spec, "os");
	if (os) {
		static const char *const oses[] = { "linux", "windows", NULL };
		api_path(p, path, "os");
		if (api_check_required(errs, p, os, "name"))
			api_check_enum(errs, p, os, "name", oses);
	}
	const json_t *aff = api_get(spec, "affinity");
	if (aff)
		validate_affinity(aff, api_path(p, path, "affinity"), errs);
	validate_tolerations(api_get(spec, "tolerations"), api_path(p, path, "tolerations"), errs);
	validate_spread(api_get(spec, "topologySpreadConstraints"),
			api_path(p, path, "topologySpreadConstraints"), errs);
	api_check_resource_list(errs, api_path(p, path, "overhead"), api_get(spec, "overhead"));
	json_t *v;
	json_array_foreach (api_get(spec, "hostAliases"), i, v) {
		const char *ip = api_str(v, "ip");
		api_path_i(p, path, "hostAliases", i);
		if (!ip || (why = api_ip_invalid(ip)))
			api_err_add(errs, api_path(q, p, "ip"),
				    "Invalid value: \"%s\": must be a "
				    "valid IP address",
				    ip ? ip : "");
	}
	json_array_foreach (api_get(spec, "readinessGates"), i, v) {
		const char *ct = api_str(v, "conditionType");
		if (!ct || (why = label_key_invalid(ct)))
			api_err_add(errs,
				    api_path(q, api_path_i(p, path, "readinessGates", i),
					     "conditionType"),
				    "Invalid value: \"%s\": must be a qualified name",
				    ct ? ct : "");
	}
	json_array_foreach (api_get(spec, "schedulingGates"), i, v) {
		const char *n = api_str(v, "name");
		if (!n || (why = label_key_invalid(n)))
			api_err_add(errs,
				    api_path(q, api_path_i(p, path, "schedulingGates", i), "name"),
				    "Invalid value: \"%s\": must be a qualified name", n ? n : "");
	}
	const json_t *psc = api_get(spec, "securityContext");
	if (psc) {
		api_path(p, path, "securityContext");
		api_check_nonneg(errs, p, psc, "runAsUser");
		api_check_nonneg(errs, p, psc, "runAsGroup");
		api_check_nonneg(errs, p, psc, "fsGroup");
		static const char *const fcp[] = { "OnRootMismatch", "Always", NULL };
		api_check_enum(errs, p, psc, "fsGroupChangePolicy", fcp);
		json_array_foreach (api_get(psc, "sysctls"), i, v)
			api_check_required(errs, api_path_i(q, p, "sysctls", i), v, "name");
	}
	if (api_bool(spec, "hostNetwork")) {
		/* host network: container ports are host ports (Kubernetes' rule) */
		json_array_foreach (cs, i, c) {
			json_t *port;
			json_array_foreach (api_get(c, "ports"), j, port) {
				int64_t hp, cp;
				if (api_int(port, "hostPort", &hp) && hp &&
				    api_int(port, "containerPort", &cp) && hp != cp) {
					char r[API_PATH_LEN];
					api_path_i(q, path, "containers", i);
					api_path_i(r, q, "ports", j);
					api_err_add(errs, api_path(q, r, "hostPort"),
						    "Invalid value: %" PRId64 ": must match "
						    "`containerPort` when `hostNetwork` is true",
						    hp);
				}
			}
		}
	}
}

void api_validate_pod_template(const json_t *tmpl, const char *path, struct api_errors *errs)
{
	char p[API_PATH_LEN];
	if (!json_is_object(tmpl)) {
		api_err_add(errs, path, "Required value");
		return;
	}
	const json_t *meta = api_get(tmpl, "metadata");
	api_check_labels(errs, api_path(p, path, "metadata.labels"), api_get(meta, "labels"));
	api_validate_pod_spec(api_get(tmpl, "spec"), api_path(p, path, "spec"), errs);
}

/* Kubernetes lets a pod's spec change after creation only in these ways: container and init
 * container images, activeDeadlineSeconds (set, or lowered), added tolerations, removed
 * scheduling gates, and nodeName once from empty (binding). */
void api_validate_pod_spec_update(const json_t *spec, const json_t *old_spec, const char *path,
				  struct api_errors *errs)
{
	if (!json_is_object(spec) || !json_is_object(old_spec))
		return;
	json_t *a = json_deep_copy(spec), *b = json_deep_copy(old_spec);
	if (!a || !b)
		goto out;
	static const char *const lists[] = { "containers", "initContainers", NULL };
	for (const char *const *l = lists; *l; l++) {
		json_t *ca = json_object_get(a, *l), *cb = json_object_get(b, *l);
		if (json_array_size(ca) != json_array_size(cb))
			continue;
		for (size_t i = 0; i < json_array_size(ca); i++) {
			json_t *x = json_array_get(ca, i), *y = json_array_get(cb, i);
			if (json_is_object(x) && json_is_object(y)) {
				json_object_del(x, "image");
				json_object_del(y, "image");
			}
		}
	}
	int64_t na, nb;
	bool has_a = api_int(a, "activeDeadlineSeconds", &na);
	bool has_b = api_int(b, "activeDeadlineSeconds", &nb);
	char p[API_PATH_LEN];
	if (has_b && (!has_a || na > nb))
		api_err_add(errs, api_path(p, path, "activeDeadlineSeconds"),
			    "Invalid value: must be set and may only be lowered on a running pod");
	json_object_del(a, "activeDeadlineSeconds");
	json_object_del(b, "activeDeadlineSeconds");
	/* tolerations may only be added */
	json_t *ta = json_object_get(a, "tolerations"), *tb = json_object_get(b, "tolerations");
	size_t i;
	json_t *t;
	bool kept = true;
	json_array_foreach (tb, i, t) {
		bool found = false;
		for (size_t j = 0; j < json_array_size(ta) && !found; j++)
			found = json_merge_equal(t, json_array_get(ta, j));
		kept &= found;
	}
	if (!kept)
		api_err_add(errs, api_path(p, path, "tolerations"),
			    "Forbidden: existing toleration can not be modified except its "
			    "tolerationSeconds");
	json_object_del(a, "tolerations");
	json_object_del(b, "tolerations");
	/* scheduling gates may only be removed */
	json_t *ga = json_object_get(a, "schedulingGates"),
	       *gb = json_object_get(b, "schedulingGates");
	json_array_foreach (ga, i, t) {
		bool found = false;
		for (size_t j = 0; j < json_array_size(gb) && !found; j++)
			found = json_merge_equal(t, json_array_get(gb, j));
		if (!found) {
			api_err_add(errs, api_path(p, path, "schedulingGates"),
				    "Forbidden: only deletion is allowed, but found new scheduling "
				    "gate");
			break;
		}
	}
	json_object_del(a, "schedulingGates");
	json_object_del(b, "schedulingGates");
	const char *nn_a = api_nonempty(a, "nodeName"), *nn_b = api_nonempty(b, "nodeName");
	if (nn_b && (!nn_a || strcmp(nn_a, nn_b) != 0))
		api_err_add(errs, api_path(p, path, "nodeName"),
			    "Invalid value: field is immutable once the pod is bound");
	json_object_del(a, "nodeName");
	json_object_del(b, "nodeName");
	if (!json_merge_equal(a, b))
		api_err_add(errs, path,
			    "Forbidden: pod updates may not change fields other than "
			    "`spec.containers[*].image`, `spec.initContainers[*].image`, "
			    "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
			    "existing tolerations) or `spec.schedulingGates` (only deletions)");
out:
	json_decref(a);
	json_decref(b);
}

static void validate_pod_status(const json_t *st, struct api_errors *errs)
{
	if (!st)
		return;
	static const char *const phases[] = { "Pending", "Running", "Succeeded",
					      "Failed",	 "Unknown", NULL };
	char p[API_PATH_LEN], q[API_PATH_LEN];
	const char *why;
	api_check_enum(errs, "status", st, "phase", phases);
	api_check_conditions(errs, "status.conditions", api_get(st, "conditions"));
	static const char *const ips[] = { "podIP", "hostIP", NULL };
	for (const char *const *f = ips; *f; f++) {
		const char *ip = api_nonempty(st, *f);
		if (ip && (why = api_ip_invalid(ip)))
			api_err_add(errs, api_path(p, "status", *f), "Invalid value: \"%s\": %s",
				    ip, why);
	}
	static const char *const ipl[] = { "podIPs", "hostIPs", NULL };
	for (const char *const *f = ipl; *f; f++) {
		size_t i;
		json_t *v;
		json_array_foreach (api_get(st, *f), i, v) {
			const char *ip = api_str(v, "ip");
			if (!ip || (why = api_ip_invalid(ip)))
				api_err_add(errs, api_path(q, api_path_i(p, "status", *f, i), "ip"),
					    "Invalid value: \"%s\": must be a valid IP address",
					    ip ? ip : "");
		}
	}
	const char *ip0 = api_str(json_array_get(api_get(st, "podIPs"), 0), "ip");
	const char *pip = api_nonempty(st, "podIP");
	if (ip0 && pip && strcmp(ip0, pip) != 0)
		api_err_add(errs, "status.podIPs[0].ip",
			    "Invalid value: \"%s\": must be the same as status.podIP", ip0);
	api_check_time(errs, "status", st, "startTime");
	static const char *const lists[] = { "containerStatuses", "initContainerStatuses", NULL };
	for (const char *const *f = lists; *f; f++) {
		size_t i;
		json_t *cs;
		json_array_foreach (api_get(st, *f), i, cs) {
			api_path_i(p, "status", *f, i);
			api_check_required(errs, p, cs, "name");
			api_check_nonneg(errs, p, cs, "restartCount");
		}
	}
	const json_t *usage = api_get(st, "usage");
	if (usage) {
		static const char *const res[] = { "cpu", "memory", NULL };
		for (const char *const *r = res; *r; r++) {
			int64_t m;
			const char *q = api_str(usage, *r);
			if (q && quantity_parse_milli(q, &m) == 0 && m < 0)
				api_err_add(errs, api_path_k(p, "status", "usage", *r),
					    "Invalid value: \"%s\": must be greater than or equal to 0",
					    q);
		}
		api_check_time(errs, "status.usage", usage, "timestamp");
	}
	static const char *const qos[] = { "Guaranteed", "Burstable", "BestEffort", NULL };
	api_check_enum(errs, "status", st, "qosClass", qos);
}

void api_validate_pod(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	const json_t *spec = api_get(obj, "spec");
	api_validate_pod_spec(spec, "spec", errs);
	validate_pod_status(api_get(obj, "status"), errs);
	if (old)
		api_validate_pod_spec_update(spec, api_get(old, "spec"), "spec", errs);
}

/* ======================================================================================== */
/* Namespace */

void api_defaults_namespace(json_t *obj)
{
	json_t *status = api_obj_child(obj, "status");
	if (status)
		api_default_str(status, "phase", "Active");
}

void api_validate_namespace(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	(void)old;
	char p[API_PATH_LEN];
	size_t i;
	json_t *f;
	const char *why;
	json_array_foreach (api_get_path(obj, "spec.finalizers"), i, f) {
		const char *s = json_string_value(f);
		if (!s)
			continue;
		if ((why = label_key_invalid(s)))
			api_err_add(errs, api_path_i(p, "spec", "finalizers", i),
				    "Invalid value: \"%s\": %s", s, why);
		else if (!strchr(s, '/') && strcmp(s, "kubernetes") != 0)
			api_err_add(
				errs, api_path_i(p, "spec", "finalizers", i),
				"Invalid value: \"%s\": name is neither a standard finalizer name "
				"nor is it fully qualified",
				s);
	}
	static const char *const phases[] = { "Active", "Terminating", NULL };
	api_check_enum(errs, "status", api_get(obj, "status"), "phase", phases);
	api_check_conditions(errs, "status.conditions", api_get_path(obj, "status.conditions"));
}

/* ======================================================================================== */
/* Node */

void api_validate_node(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	static const char *const effects[] = { "NoSchedule", "PreferNoSchedule", "NoExecute",
					       NULL };
	char p[API_PATH_LEN], q[API_PATH_LEN];
	const char *why;
	const json_t *spec = api_get(obj, "spec");
	const char *cidr = api_nonempty(spec, "podCIDR");
	if (cidr && (why = api_cidr_invalid(cidr)))
		api_err_add(errs, "spec.podCIDR", "Invalid value: \"%s\": %s", cidr, why);
	const json_t *cidrs = api_get(spec, "podCIDRs");
	size_t i, j;
	json_t *v;
	if (json_array_size(cidrs) > 2)
		api_err_add(errs, "spec.podCIDRs",
			    "Invalid value: may specify no more than one CIDR "
			    "for each IP family");
	json_array_foreach (cidrs, i, v) {
		const char *s = json_string_value(v);
		if (s && (why = api_cidr_invalid(s)))
			api_err_add(errs, api_path_i(p, "spec", "podCIDRs", i),
				    "Invalid value: \"%s\": %s", s, why);
	}
	const char *first = json_string_value(json_array_get(cidrs, 0));
	if (cidr && first && strcmp(cidr, first) != 0)
		api_err_add(errs, "spec.podCIDRs[0]",
			    "Invalid value: \"%s\": must match spec.podCIDR \"%s\"", first, cidr);
	const json_t *taints = api_get(spec, "taints");
	json_array_foreach (taints, i, v) {
		api_path_i(p, "spec", "taints", i);
		const char *key = api_nonempty(v, "key");
		if (!key)
			api_err_add(errs, api_path(q, p, "key"), "Required value");
		else if ((why = label_key_invalid(key)))
			api_err_add(errs, api_path(q, p, "key"), "Invalid value: \"%s\": %s", key,
				    why);
		const char *val = api_str(v, "value");
		if (val && (why = label_value_invalid(val)))
			api_err_add(errs, api_path(q, p, "value"), "Invalid value: \"%s\": %s", val,
				    why);
		const char *eff = api_nonempty(v, "effect");
		if (!eff)
			api_err_add(errs, api_path(q, p, "effect"), "Required value");
		else
			api_check_enum(errs, p, v, "effect", effects);
		api_check_time(errs, p, v, "timeAdded");
		for (j = 0; key && eff && j < i; j++) {
			const json_t *o = json_array_get(taints, j);
			const char *ok = api_str(o, "key"), *oe = api_str(o, "effect");
			if (ok && oe && strcmp(ok, key) == 0 && strcmp(oe, eff) == 0) {
				api_err_add(errs, p,
					    "Duplicate value: \"%s:%s\": taints must be "
					    "unique by key and effect pair",
					    key, eff);
				break;
			}
		}
	}
	const json_t *st = api_get(obj, "status");
	api_check_resource_list(errs, "status.capacity", api_get(st, "capacity"));
	api_check_resource_list(errs, "status.allocatable", api_get(st, "allocatable"));
	api_check_conditions(errs, "status.conditions", api_get(st, "conditions"));
	static const char *const atypes[] = { "Hostname",    "InternalIP",  "ExternalIP",
					      "InternalDNS", "ExternalDNS", NULL };
	json_array_foreach (api_get(st, "addresses"), i, v) {
		api_path_i(p, "status", "addresses", i);
		if (api_check_required(errs, p, v, "type"))
			api_check_enum(errs, p, v, "type", atypes);
		api_check_required(errs, p, v, "address");
		const char *t = api_str(v, "type"), *a = api_nonempty(v, "address");
		if (t && a && strstr(t, "IP") && (why = api_ip_invalid(a)))
			api_err_add(errs, api_path(q, p, "address"), "Invalid value: \"%s\": %s", a,
				    why);
	}
	if (old) {
		const char *oc = api_nonempty(api_get(old, "spec"), "podCIDR");
		if (oc && (!cidr || strcmp(oc, cidr) != 0))
			api_err_add(
				errs, "spec.podCIDR",
				"Forbidden: node updates may not change podCIDR except from \"\" "
				"to valid");
	}
}

/* ======================================================================================== */
/* Service */

void api_defaults_service(json_t *obj)
{
	json_t *spec = api_obj_child(obj, "spec");
	if (!spec)
		return;
	api_default_str(spec, "type", "ClusterIP");
	const char *type = api_str(spec, "type");
	bool external_name = type && strcmp(type, "ExternalName") == 0;
	api_default_str(spec, "sessionAffinity", "None");
	const char *sa = api_str(spec, "sessionAffinity");
	if (sa && strcmp(sa, "ClientIP") == 0) {
		json_t *cfg = api_obj_child(spec, "sessionAffinityConfig");
		json_t *cip = cfg ? api_obj_child(cfg, "clientIP") : NULL;
		if (cip)
			api_default_int(cip, "timeoutSeconds", 10800);
	}
	if (type && (strcmp(type, "NodePort") == 0 || strcmp(type, "LoadBalancer") == 0))
		api_default_str(spec, "externalTrafficPolicy", "Cluster");
	if (type && strcmp(type, "LoadBalancer") == 0)
		api_default_bool(spec, "allocateLoadBalancerNodePorts", true);
	if (!external_name) {
		api_default_str(spec, "internalTrafficPolicy", "Cluster");
		api_default_str(spec, "ipFamilyPolicy", "SingleStack");
		if (!json_object_get(spec, "ipFamilies"))
			json_object_set_new(spec, "ipFamilies", json_pack("[s]", "IPv4"));
	}
	size_t i;
	json_t *p;
	json_array_foreach (json_object_get(spec, "ports"), i, p) {
		if (!json_is_object(p))
			continue;
		api_default_str(p, "protocol", "TCP");
		/* targetPort defaults to port when absent, 0 or "" (Kubernetes' rule) */
		json_t *port = json_object_get(p, "port");
		json_t *tp = json_object_get(p, "targetPort");
		bool unset = !tp || json_is_null(tp) ||
			     (json_is_integer(tp) && json_integer_value(tp) == 0) ||
			     (json_is_string(tp) && json_string_length(tp) == 0);
		if (unset && json_is_integer(port))
			json_object_set(p, "targetPort", port);
	}
	json_t *status = api_obj_child(obj, "status");
	if (status && !json_object_get(status, "loadBalancer"))
		json_object_set_new(status, "loadBalancer", json_object());
}

static const char *special_ip_invalid(const char *ip)
{
	const char *why = api_ipv4_invalid(ip);
	if (why)
		return why;
	unsigned a, b;
	if (sscanf(ip, "%u.%u", &a, &b) != 2)
		return why;
	if (strcmp(ip, "0.0.0.0") == 0)
		return "may not be unspecified (0.0.0.0)";
	if (a == 127)
		return "may not be in the loopback range (127.0.0.0/8)";
	if (a == 169 && b == 254)
		return "may not be in the link-local range (169.254.0.0/16)";
	if (a >= 224 && a <= 239)
		return "may not be a multicast address";
	return NULL;
}

void api_validate_service(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	static const char *const types[] = { "ClusterIP", "NodePort", "LoadBalancer",
					     "ExternalName", NULL };
	static const char *const policies[] = { "Cluster", "Local", NULL };
	char p[API_PATH_LEN], q[API_PATH_LEN];
	const char *why;
	const json_t *spec = api_get(obj, "spec");
	if (!spec) {
		api_err_add(errs, "spec", "Required value");
		return;
	}
	const char *type = api_str(spec, "type");
	if (!type)
		type = "ClusterIP";
	if (!api_check_enum(errs, "spec", spec, "type", types))
		type = "ClusterIP";
	bool ext_name = strcmp(type, "ExternalName") == 0;
	bool node_ports = strcmp(type, "NodePort") == 0 || strcmp(type, "LoadBalancer") == 0;
	bool lb = strcmp(type, "LoadBalancer") == 0;
	const char *cip = api_nonempty(spec, "clusterIP");
	bool headless = cip && strcmp(cip, "None") == 0;

	if (ext_name) {
		const char *en = api_nonempty(spec, "externalName");
		if (!en) {
			api_err_add(errs, "spec.externalName", "Required value");
		} else {
			char host[256];
			snprintf(host, sizeof(host), "%s", en);
			size_t n = strlen(host);
			if (n > 1 && host[n - 1] == '.')
				host[n - 1] = 0;
			if ((why = api_name_invalid(API_NAME_SUBDOMAIN, host)))
				api_err_add(errs, "spec.externalName", "Invalid value: \"%s\": %s",
					    en, why);
		}
		if (cip)
			api_err_add(errs, "spec.clusterIP",
				    "Forbidden: may not be set for "
				    "ExternalName services");
	} else if (cip && !headless && (why = api_ipv4_invalid(cip))) {
		api_err_add(errs, "spec.clusterIP",
			    "Invalid value: \"%s\": must be empty, 'None', "
			    "or a valid IPv4 address",
			    cip);
	}
	if (headless && node_ports)
		api_err_add(errs, "spec.clusterIP",
			    "Invalid value: \"None\": may not be set to "
			    "'None' for %s services",
			    type);
	const json_t *cips = api_get(spec, "clusterIPs");
	if (json_array_size(cips) > 0) {
		const char *c0 = json_string_value(json_array_get(cips, 0));
		if (cip && c0 && strcmp(c0, cip) != 0)
			api_err_add(errs, "spec.clusterIPs[0]",
				    "Invalid value: \"%s\": must be same as clusterIP", c0);
		if (json_array_size(cips) > 2)
			api_err_add(errs, "spec.clusterIPs",
				    "Invalid value: may only hold up to 2 values");
	}

	const json_t *ports = api_get(spec, "ports");
	size_t n = json_array_size(ports), i, j;
	if (n == 0 && !ext_name && !headless)
		api_err_add(errs, "spec.ports", "Required value");
	json_t *port;
	json_array_foreach (ports, i, port) {
		api_path_i(p, "spec", "ports", i);
		const char *name = api_nonempty(port, "name");
		if (!name && n > 1)
			api_err_add(errs, api_path(q, p, "name"), "Required value");
		else if (name && (why = api_name_invalid(API_NAME_LABEL, name)))
			api_err_add(errs, api_path(q, p, "name"), "Invalid value: \"%s\": %s", name,
				    why);
		if (api_check_required(errs, p, port, "port"))
			api_check_range(errs, p, port, "port", 1, 65535);
		api_check_enum(errs, p, port, "protocol", protocols);
		api_check_port_or_name(errs, p, port, "targetPort", false);
		int64_t np;
		if (api_int(port, "nodePort", &np) && np != 0) {
			if (!node_ports)
				api_err_add(errs, api_path(q, p, "nodePort"),
					    "Forbidden: may not be used when `type` is '%s'", type);
			else
				api_check_range(errs, p, port, "nodePort", 30000, 32767);
		}
		const char *ap = api_nonempty(port, "appProtocol");
		if (ap && (why = label_key_invalid(ap)))
			api_err_add(errs, api_path(q, p, "appProtocol"),
				    "Invalid value: \"%s\": %s", ap, why);
		int64_t pn, on, onp;
		const char *proto = api_str(port, "protocol") ? api_str(port, "protocol") : "TCP";
		for (j = 0; j < i; j++) {
			const json_t *o = json_array_get(ports, j);
			const char *oname = api_nonempty(o, "name");
			const char *oproto =
				api_str(o, "protocol") ? api_str(o, "protocol") : "TCP";
			if (name && oname && strcmp(name, oname) == 0)
				api_err_add(errs, api_path(q, p, "name"), "Duplicate value: \"%s\"",
					    name);
			if (api_int(port, "port", &pn) && api_int(o, "port", &on) && pn == on &&
			    strcmp(proto, oproto) == 0)
				api_err_add(errs, p, "Duplicate value: \"%" PRId64 "/%s\"", pn,
					    proto);
			if (api_int(port, "nodePort", &np) && np && api_int(o, "nodePort", &onp) &&
			    np == onp && strcmp(proto, oproto) == 0)
				api_err_add(errs, api_path(q, p, "nodePort"),
					    "Duplicate value: \"%" PRId64 "/%s\"", np, proto);
		}
	}

	api_check_labels(errs, "spec.selector", api_get(spec, "selector"));

	static const char *const affinities[] = { "None", "ClientIP", NULL };
	api_check_enum(errs, "spec", spec, "sessionAffinity", affinities);
	const char *sa = api_str(spec, "sessionAffinity");
	const json_t *sac = api_get(spec, "sessionAffinityConfig");
	if (sa && strcmp(sa, "ClientIP") == 0) {
		const json_t *c = api_get(sac, "clientIP");
		int64_t t;
		if (!api_int(c, "timeoutSeconds", &t))
			api_err_add(errs, "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
				    "Required value");
		else
			api_check_range(errs, "spec.sessionAffinityConfig.clientIP", c,
					"timeoutSeconds", 1, 86400);
	} else if (sac) {
		api_err_add(errs, "spec.sessionAffinityConfig",
			    "Invalid value: must not be set when `sessionAffinity` is None");
	}

	const char *etp = api_str(spec, "externalTrafficPolicy");
	if (etp) {
		if (!node_ports && *etp)
			api_err_add(errs, "spec.externalTrafficPolicy",
				    "Invalid value: \"%s\": may only be set when `type` is "
				    "'NodePort' or 'LoadBalancer'",
				    etp);
		else
			api_check_enum(errs, "spec", spec, "externalTrafficPolicy", policies);
	}
	api_check_enum(errs, "spec", spec, "internalTrafficPolicy", policies);
	if (api_get(spec, "healthCheckNodePort")) {
		if (!lb || !etp || strcmp(etp, "Local") != 0)
			api_err_add(errs, "spec.healthCheckNodePort",
				    "Invalid value: may only be set when `type` is 'LoadBalancer' "
				    "and `externalTrafficPolicy` is 'Local'");
		else
			api_check_range(errs, "spec", spec, "healthCheckNodePort", 1, 65535);
	}

	json_t *v;
	json_array_foreach (api_get(spec, "externalIPs"), i, v) {
		const char *ip = json_string_value(v);
		if (ip && (why = special_ip_invalid(ip)))
			api_err_add(errs, api_path_i(p, "spec", "externalIPs", i),
				    "Invalid value: \"%s\": %s", ip, why);
	}
	const json_t *lsr = api_get(spec, "loadBalancerSourceRanges");
	if (json_array_size(lsr) > 0 && !lb)
		api_err_add(errs, "spec.loadBalancerSourceRanges",
			    "Forbidden: may only be used when `type` is 'LoadBalancer'");
	json_array_foreach (lsr, i, v) {
		const char *s = json_string_value(v);
		if (s && (why = api_cidr_invalid(s)))
			api_err_add(errs, api_path_i(p, "spec", "loadBalancerSourceRanges", i),
				    "Invalid value: \"%s\": %s", s, why);
	}
	const char *lbip = api_nonempty(spec, "loadBalancerIP");
	if (lbip) {
		if (!lb)
			api_err_add(errs, "spec.loadBalancerIP",
				    "Forbidden: may only be used when `type` is 'LoadBalancer'");
		else if ((why = api_ip_invalid(lbip)))
			api_err_add(errs, "spec.loadBalancerIP", "Invalid value: \"%s\": %s", lbip,
				    why);
	}
	if (api_get(spec, "allocateLoadBalancerNodePorts") && !lb)
		api_err_add(errs, "spec.allocateLoadBalancerNodePorts",
			    "Forbidden: may only be used when `type` is 'LoadBalancer'");
	static const char *const fam_pol[] = { "SingleStack", "PreferDualStack", "RequireDualStack",
					       NULL };
	api_check_enum(errs, "spec", spec, "ipFamilyPolicy", fam_pol);
	static const char *const fams[] = { "IPv4", "IPv6", NULL };
	const json_t *fam = api_get(spec, "ipFamilies");
	if (json_array_size(fam) > 2)
		api_err_add(errs, "spec.ipFamilies", "Invalid value: may only hold up to 2 values");
	json_array_foreach (fam, i, v) {
		const char *f = json_string_value(v);
		if (!f)
			continue;
		if (strcmp(f, "IPv4") != 0 && strcmp(f, "IPv6") != 0)
			api_err_unsupported(errs, api_path_i(p, "spec", "ipFamilies", i), f, fams);
		for (j = 0; j < i; j++)
			if (json_string_value(json_array_get(fam, j)) &&
			    strcmp(json_string_value(json_array_get(fam, j)), f) == 0)
				api_err_add(errs, api_path_i(p, "spec", "ipFamilies", i),
					    "Duplicate value: \"%s\"", f);
	}

	const json_t *ingress = api_get_path(obj, "status.loadBalancer.ingress");
	json_array_foreach (ingress, i, v) {
		const char *ip = api_nonempty(v, "ip");
		if (ip && (why = api_ip_invalid(ip)))
			api_err_add(errs,
				    api_path(q, api_path_i(p, "status.loadBalancer", "ingress", i),
					     "ip"),
				    "Invalid value: \"%s\": %s", ip, why);
	}
	api_check_conditions(errs, "status.conditions", api_get_path(obj, "status.conditions"));

	if (old) {
		const json_t *os = api_get(old, "spec");
		const char *otype = api_str(os, "type");
		const char *ocip = api_nonempty(os, "clusterIP");
		bool was_ext = otype && strcmp(otype, "ExternalName") == 0;
		if (!ext_name && !was_ext && ocip && cip && strcmp(ocip, cip) != 0)
			api_err_add(errs, "spec.clusterIP",
				    "Invalid value: \"%s\": field is "
				    "immutable",
				    cip);
	}
}

/* ======================================================================================== */
/* Endpoints */

void api_defaults_endpoints(json_t *obj)
{
	size_t i, j;
	json_t *ss, *p;
	json_array_foreach (json_object_get(obj, "subsets"), i, ss)
		json_array_foreach (json_object_get(ss, "ports"), j, p)
			if (json_is_object(p))
				api_default_str(p, "protocol", "TCP");
}

static void validate_endpoint_addresses(const json_t *arr, const char *path,
					struct api_errors *errs)
{
	char p[API_PATH_LEN], q[API_PATH_LEN];
	size_t i;
	json_t *a;
	const char *why;
	json_array_foreach (arr, i, a) {
		api_path_i(p, path, NULL, i);
		const char *ip = api_nonempty(a, "ip");
		if (!ip)
			api_err_add(errs, api_path(q, p, "ip"), "Required value");
		else if ((why = api_ipv4_invalid(ip) ? api_ip_invalid(ip) : special_ip_invalid(ip)))
			api_err_add(errs, api_path(q, p, "ip"), "Invalid value: \"%s\": %s", ip,
				    why);
		api_check_dns_label(errs, p, a, "hostname");
		api_check_dns_subdomain(errs, p, a, "nodeName");
		const json_t *tr = api_get(a, "targetRef");
		if (tr)
			api_check_object_ref(errs, api_path(q, p, "targetRef"), tr, false);
	}
}

void api_validate_endpoints(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	(void)old;
	char p[API_PATH_LEN], q[API_PATH_LEN], r[API_PATH_LEN];
	size_t i, j, k;
	json_t *ss, *port;
	const char *why;
	json_array_foreach (api_get(obj, "subsets"), i, ss) {
		api_path_i(p, "", "subsets", i);
		const json_t *addrs = api_get(ss, "addresses"),
			     *nr = api_get(ss, "notReadyAddresses");
		if (json_array_size(addrs) == 0 && json_array_size(nr) == 0)
			api_err_add(errs, p,
				    "Required value: must specify `addresses` or "
				    "`notReadyAddresses`");
		validate_endpoint_addresses(addrs, api_path(q, p, "addresses"), errs);
		validate_endpoint_addresses(nr, api_path(q, p, "notReadyAddresses"), errs);
		const json_t *ports = api_get(ss, "ports");
		size_t n = json_array_size(ports);
		json_array_foreach (ports, j, port) {
			api_path_i(q, p, "ports", j);
			const char *name = api_nonempty(port, "name");
			if (!name && n > 1)
				api_err_add(errs, api_path(r, q, "name"), "Required value");
			else if (name && (why = api_name_invalid(API_NAME_LABEL, name)))
				api_err_add(errs, api_path(r, q, "name"),
					    "Invalid value: \"%s\": %s", name, why);
			for (k = 0; name && k < j; k++) {
				const char *o = api_str(json_array_get(ports, k), "name");
				if (o && strcmp(o, name) == 0)
					api_err_add(errs, api_path(r, q, "name"),
						    "Duplicate value: \"%s\"", name);
			}
			if (api_check_required(errs, q, port, "port"))
				api_check_range(errs, q, port, "port", 1, 65535);
			api_check_enum(errs, q, port, "protocol", protocols);
		}
	}
}

/* ======================================================================================== */
/* Event */

void api_validate_event(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	(void)old;
	const json_t *io = api_get(obj, "involvedObject");
	api_check_object_ref(errs, "involvedObject", io, true);
	const char *ions = api_nonempty(io, "namespace");
	const char *ns = json_string_value(api_get_path(obj, "metadata.namespace"));
	if (ions && ns && strcmp(ions, ns) != 0)
		api_err_add(errs, "involvedObject.namespace",
			    "Invalid value: \"%s\": does not match event.namespace", ions);
	static const char *const types[] = { "Normal", "Warning", NULL };
	api_check_enum(errs, "", obj, "type", types);
	api_check_nonneg(errs, "", obj, "count");
	const char *reason = api_str(obj, "reason");
	if (reason && strlen(reason) > 128)
		api_err_add(errs, "reason", "Too long: may not be longer than 128 characters");
	const char *action = api_str(obj, "action");
	if (action && strlen(action) > 128)
		api_err_add(errs, "action", "Too long: may not be longer than 128 characters");
	const char *msg = api_str(obj, "message");
	if (msg && strlen(msg) > 4096)
		api_err_add(errs, "message", "Too long: may not be longer than 4096 characters");
	static const char *const times[] = { "firstTimestamp", "lastTimestamp", "eventTime", NULL };
	for (const char *const *t = times; *t; t++)
		api_check_time(errs, "", obj, *t);
	const json_t *series = api_get(obj, "series");
	if (series) {
		api_check_nonneg(errs, "series", series, "count");
		api_check_time(errs, "series", series, "lastObservedTime");
	}
	const json_t *rel = api_get(obj, "related");
	if (rel)
		api_check_object_ref(errs, "related", rel, false);
}
