// SPDX-License-Identifier: Apache-2.0
/*
 * The remaining groups' kinds: Job (batch/v1), EndpointSlice (discovery.k8s.io/v1), Lease
 * (coordination.k8s.io/v1) and PodGroup (scheduling.shoal.io/v1alpha1). Schema, defaults
 * and validation as Kubernetes has them for the first three; PodGroup is shoal's gang
 * scheduling unit, shaped like the coscheduling PodGroup of kubernetes-sigs'
 * scheduler-plugins: spec.minMember (required, >= 1) pods are placed all together or not at
 * all, within spec.scheduleTimeoutSeconds (default 60).
 *
 * The design choice for Jobs: as in Kubernetes, a job whose spec.manualSelector is not true
 * gets its selector generated and that label added to its pod template; its template's
 * restartPolicy is not defaulted and must be OnFailure or Never. The generated selector is
 * batch.kubernetes.io/job-name=NAME only (Kubernetes adds controller-uid=UID): defaults run
 * before the server assigns the uid, and a selector built from the name alone is the same
 * on every re-apply of the manifest, so that the immutable selector never changes by
 * itself. shoal also accepts a selector the user gives without manualSelector, as long as
 * it matches the template.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api_validate.h"
#include "labels.h"

/* ======================================================================================== */
/* Job */

const struct api_schema api_schema_job = API_KIND_SCHEMA(
	API_OBJ({ "parallelism", S_INT }, { "completions", S_INT },
		{ "activeDeadlineSeconds", S_INT }, { "podFailurePolicy", S_ANY },
		{ "successPolicy", S_ANY }, { "backoffLimit", S_INT },
		{ "backoffLimitPerIndex", S_INT }, { "maxFailedIndexes", S_INT },
		{ "selector", &api_schema_label_selector }, { "manualSelector", S_BOOL },
		{ "template", &api_schema_pod_template }, { "ttlSecondsAfterFinished", S_INT },
		{ "completionMode", S_STR }, { "suspend", S_BOOL },
		{ "podReplacementPolicy", S_STR }, { "managedBy", S_STR }),
	API_OBJ({ "conditions", &api_schema_conditions }, { "startTime", S_STR },
		{ "completionTime", S_STR }, { "active", S_INT }, { "succeeded", S_INT },
		{ "failed", S_INT }, { "terminating", S_INT }, { "ready", S_INT },
		{ "completedIndexes", S_STR }, { "failedIndexes", S_STR },
		{ "uncountedTerminatedPods", S_ANY }));

#define JOB_NAME_LABEL "batch.kubernetes.io/job-name"

void api_defaults_job(json_t *obj)
{
	json_t *spec = api_obj_child(obj, "spec");
	if (!spec)
		return;
	bool has_c = json_object_get(spec, "completions") != NULL;
	bool has_p = json_object_get(spec, "parallelism") != NULL;
	if (!has_c && !has_p)
		api_default_int(spec, "completions", 1);
	api_default_int(spec, "parallelism", 1);
	if (json_object_get(spec, "backoffLimitPerIndex"))
		api_default_int(spec, "backoffLimit", INT32_MAX);
	else
		api_default_int(spec, "backoffLimit", 6);
	api_default_str(spec, "completionMode", "NonIndexed");
	api_default_bool(spec, "suspend", false);
	api_default_bool(spec, "manualSelector", false);
	api_default_str(spec, "podReplacementPolicy",
			json_object_get(spec, "podFailurePolicy") ? "Failed"
								  : "TerminatingOrFailed");

	json_t *tmpl = api_obj_child(spec, "template");
	json_t *ps = tmpl ? api_obj_child(tmpl, "spec") : NULL;
	if (ps) {
		bool had_rp = json_object_get(ps, "restartPolicy") != NULL;
		api_defaults_pod_spec(ps);
		if (!had_rp)
			json_object_del(ps, "restartPolicy");
	}
	/* the generated selector and the label it selects */
	json_t *meta = json_object_get(obj, "metadata");
	const char *name = api_nonempty(meta, "name");
	json_t *tmeta = tmpl ? api_obj_child(tmpl, "metadata") : NULL;
	json_t *tlabels = tmeta ? api_obj_child(tmeta, "labels") : NULL;
	if (!api_bool(spec, "manualSelector") && !json_object_get(spec, "selector") && name &&
	    tlabels) {
		json_object_set_new(tlabels, JOB_NAME_LABEL, json_string(name));
		json_object_set_new(spec, "selector",
				    json_pack("{s{ss}}", "matchLabels", JOB_NAME_LABEL, name));
	}
	/* a job without labels takes its template's */
	if (json_is_object(meta) && json_object_size(api_get(meta, "labels")) == 0 && tlabels &&
	    json_object_size(tlabels) > 0) {
		json_t *copy = json_deep_copy(tlabels);
		if (copy) {
			json_object_del(copy, JOB_NAME_LABEL);
			if (json_object_size(copy) > 0)
				json_object_set_new(meta, "labels", copy);
			else
				json_decref(copy);
		}
	}
}

void api_validate_job(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	const json_t *spec = api_get(obj, "spec");
	if (!spec) {
		api_err_add(errs, "spec", "Required value");
		return;
	}
	const json_t *old_spec = old ? api_get(old, "spec") : NULL;
	api_check_range(errs, "spec", spec, "parallelism", 0, INT32_MAX);
	api_check_range(errs, "spec", spec, "completions", 0, INT32_MAX);
	api_check_nonneg(errs, "spec", spec, "activeDeadlineSeconds");
	api_check_range(errs, "spec", spec, "backoffLimit", 0, INT32_MAX);
	api_check_nonneg(errs, "spec", spec, "ttlSecondsAfterFinished");
	static const char *const modes[] = { "NonIndexed", "Indexed", NULL };
	api_check_enum(errs, "spec", spec, "completionMode", modes);
	const char *mode = api_str(spec, "completionMode");
	bool indexed = mode && strcmp(mode, "Indexed") == 0;
	int64_t c = 0, p = 0;
	bool has_c = api_int(spec, "completions", &c);
	api_int(spec, "parallelism", &p);
	if (indexed) {
		if (!has_c)
			api_err_add(errs, "spec.completions",
				    "Required value: when completion mode is Indexed");
		else if (c > 100000)
			api_err_add(errs, "spec.completions",
				    "Invalid value: %" PRId64 ": must be "
				    "less than or equal to 100000 when "
				    "completion mode is Indexed",
				    c);
		if (p > 100000)
			api_err_add(errs, "spec.parallelism",
				    "Invalid value: %" PRId64 ": must be "
				    "less than or equal to 100000 when "
				    "completion mode is Indexed",
				    p);
	}
	if (api_get(spec, "backoffLimitPerIndex")) {
		if (!indexed)
			api_err_add(errs, "spec.backoffLimitPerIndex",
				    "Invalid value: requires indexed completion mode");
		api_check_range(errs, "spec", spec, "backoffLimitPerIndex", 0, INT32_MAX);
	}
	int64_t mfi;
	if (api_int(spec, "maxFailedIndexes", &mfi)) {
		if (!api_get(spec, "backoffLimitPerIndex"))
			api_err_add(errs, "spec.maxFailedIndexes",
				    "Required value: when maxFailedIndexes is specified, "
				    "backoffLimitPerIndex must also be specified");
		api_check_nonneg(errs, "spec", spec, "maxFailedIndexes");
		if (has_c && mfi > c)
			api_err_add(errs, "spec.maxFailedIndexes",
				    "Invalid value: %" PRId64 ": must be less than or equal to "
				    "completions",
				    mfi);
	}
	static const char *const repl[] = { "TerminatingOrFailed", "Failed", NULL };
	api_check_enum(errs, "spec", spec, "podReplacementPolicy", repl);

	if (!api_get(spec, "selector") && !api_bool(spec, "manualSelector") &&
	    !api_nonempty(api_get(obj, "metadata"), "name")) {
		/* the generated selector needs the job's name */
		api_err_add(errs, "spec.selector",
			    "Required value: a job named by generateName must give spec.selector "
			    "(with spec.manualSelector: true); only a job with metadata.name gets "
			    "one generated");
		api_validate_pod_template(api_get(spec, "template"), "spec.template", errs);
	} else {
		api_validate_workload_selector(spec, old_spec, errs);
	}
	const json_t *ps = api_get_path(spec, "template.spec");
	static const char *const restart[] = { "OnFailure", "Never", NULL };
	const char *rp = api_str(ps, "restartPolicy");
	if (ps && !rp)
		api_err_add(errs, "spec.template.spec.restartPolicy",
			    "Required value: valid values: \"OnFailure\", \"Never\"");
	else if (rp && strcmp(rp, "OnFailure") != 0 && strcmp(rp, "Never") != 0)
		api_err_unsupported(errs, "spec.template.spec.restartPolicy", rp, restart);

	if (old_spec) {
		if (!api_bool(old_spec, "suspend"))
			api_check_immutable(errs, "spec.template", api_get(spec, "template"),
					    api_get(old_spec, "template"));
		api_check_immutable(errs, "spec.completionMode", api_get(spec, "completionMode"),
				    api_get(old_spec, "completionMode"));
		if (!indexed)
			api_check_immutable(errs, "spec.completions", api_get(spec, "completions"),
					    api_get(old_spec, "completions"));
		api_check_immutable(errs, "spec.backoffLimitPerIndex",
				    api_get(spec, "backoffLimitPerIndex"),
				    api_get(old_spec, "backoffLimitPerIndex"));
	}

	const json_t *st = api_get(obj, "status");
	static const char *const counts[] = { "active",	     "succeeded", "failed",
					      "terminating", "ready",	  NULL };
	for (const char *const *f = counts; *f; f++)
		api_check_nonneg(errs, "status", st, *f);
	api_check_time(errs, "status", st, "startTime");
	api_check_time(errs, "status", st, "completionTime");
	api_check_conditions(errs, "status.conditions", api_get(st, "conditions"));
}

/* ======================================================================================== */
/* EndpointSlice */

#define EPS_MAX_ENDPOINTS 1000
#define EPS_MAX_ADDRESSES 100
#define EPS_MAX_PORTS	  100

const struct api_schema api_schema_endpointslice = API_OBJ_INIT(
	{ "apiVersion", S_STR }, { "kind", S_STR }, { "metadata", &api_schema_meta },
	{ "addressType", S_STR },
	{ "endpoints",
	  API_ARR(API_OBJ({ "addresses", S_STRS },
			  { "conditions", API_OBJ({ "ready", S_BOOL }, { "serving", S_BOOL },
						  { "terminating", S_BOOL }) },
			  { "hostname", S_STR }, { "targetRef", &api_schema_object_ref },
			  { "nodeName", S_STR }, { "zone", S_STR },
			  { "hints", API_OBJ({ "forZones", API_ARR(API_OBJ({ "name", S_STR })) },
					     { "forNodes", API_ARR(API_OBJ({ "name", S_STR })) }) },
			  { "deprecatedTopology", S_STRMAP })) },
	{ "ports", API_ARR(API_OBJ({ "name", S_STR }, { "protocol", S_STR }, { "port", S_INT },
				   { "appProtocol", S_STR })) });

void api_defaults_endpointslice(json_t *obj)
{
	size_t i;
	json_t *p;
	json_array_foreach (json_object_get(obj, "ports"), i, p) {
		if (!json_is_object(p))
			continue;
		api_default_str(p, "protocol", "TCP");
		api_default_str(p, "name", "");
	}
}

void api_validate_endpointslice(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	static const char *const types[] = { "IPv4", "IPv6", "FQDN", NULL };
	static const char *const protocols[] = { "TCP", "UDP", "SCTP", NULL };
	char p[API_PATH_LEN], q[API_PATH_LEN], r[API_PATH_LEN];
	const char *why;
	const char *at = api_nonempty(obj, "addressType");
	if (!at)
		api_err_add(errs, "addressType", "Required value");
	else if (!api_check_enum(errs, "", obj, "addressType", types))
		at = NULL;
	const json_t *eps = api_get(obj, "endpoints");
	if (json_array_size(eps) > EPS_MAX_ENDPOINTS)
		api_err_add(errs, "endpoints", "Too many: %zu: must have at most %d items",
			    json_array_size(eps), EPS_MAX_ENDPOINTS);
	size_t i, j;
	json_t *e, *a;
	json_array_foreach (eps, i, e) {
		if (i >= EPS_MAX_ENDPOINTS)
			break;
		api_path_i(p, "", "endpoints", i);
		const json_t *addrs = api_get(e, "addresses");
		api_path(q, p, "addresses");
		if (json_array_size(addrs) == 0)
			api_err_add(errs, q, "Required value: must contain at least 1 address");
		else if (json_array_size(addrs) > EPS_MAX_ADDRESSES)
			api_err_add(errs, q, "Too many: %zu: must have at most %d items",
				    json_array_size(addrs), EPS_MAX_ADDRESSES);
		json_array_foreach (addrs, j, a) {
			const char *s = json_string_value(a);
			if (!s || !at)
				continue;
			if (strcmp(at, "IPv4") == 0)
				why = api_ipv4_invalid(s);
			else if (strcmp(at, "IPv6") == 0)
				why = strchr(s, ':') ? api_ip_invalid(s)
						     : "must be a valid IPv6 address";
			else
				why = api_name_invalid(API_NAME_SUBDOMAIN, s);
			if (why)
				api_err_add(errs, api_path_i(r, q, NULL, j),
					    "Invalid value: \"%s\": %s", s, why);
		}
		api_check_dns_label(errs, p, e, "hostname");
		api_check_dns_subdomain(errs, p, e, "nodeName");
		const json_t *tr = api_get(e, "targetRef");
		if (tr)
			api_check_object_ref(errs, api_path(q, p, "targetRef"), tr, false);
		const json_t *fz = api_get_path(e, "hints.forZones");
		if (json_array_size(fz) > 8)
			api_err_add(errs, api_path(q, p, "hints.forZones"),
				    "Too many: %zu: must have at most 8 items",
				    json_array_size(fz));
		api_check_labels(errs, api_path(q, p, "deprecatedTopology"),
				 api_get(e, "deprecatedTopology"));
	}
	const json_t *ports = api_get(obj, "ports");
	if (json_array_size(ports) > EPS_MAX_PORTS)
		api_err_add(errs, "ports", "Too many: %zu: must have at most %d items",
			    json_array_size(ports), EPS_MAX_PORTS);
	json_array_foreach (ports, i, e) {
		api_path_i(p, "", "ports", i);
		const char *name = api_nonempty(e, "name");
		if (name && (why = api_name_invalid(API_NAME_LABEL, name)))
			api_err_add(errs, api_path(q, p, "name"), "Invalid value: \"%s\": %s", name,
				    why);
		const char *nm = api_str(e, "name") ? api_str(e, "name") : "";
		for (j = 0; j < i; j++) {
			const char *o = api_str(json_array_get(ports, j), "name");
			if (strcmp(o ? o : "", nm) == 0) {
				api_err_add(errs, api_path(q, p, "name"), "Duplicate value: \"%s\"",
					    nm);
				break;
			}
		}
		api_check_range(errs, p, e, "port", 1, 65535);
		api_check_enum(errs, p, e, "protocol", protocols);
		const char *ap = api_nonempty(e, "appProtocol");
		if (ap && (why = label_key_invalid(ap)))
			api_err_add(errs, api_path(q, p, "appProtocol"),
				    "Invalid value: \"%s\": %s", ap, why);
	}
	if (old)
		api_check_immutable(errs, "addressType", api_get(obj, "addressType"),
				    api_get(old, "addressType"));
}

/* ======================================================================================== */
/* Lease */

/* A Lease has no status: everything is in spec. */
const struct api_schema api_schema_lease = API_OBJ_INIT(
	{ "apiVersion", S_STR }, { "kind", S_STR }, { "metadata", &api_schema_meta },
	{ "spec", API_OBJ({ "holderIdentity", S_STR }, { "leaseDurationSeconds", S_INT },
			  { "acquireTime", S_STR }, { "renewTime", S_STR },
			  { "leaseTransitions", S_INT }, { "strategy", S_STR },
			  { "preferredHolder", S_STR }) });

void api_validate_lease(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	(void)old;
	const json_t *spec = api_get(obj, "spec");
	if (!spec)
		return;
	int64_t d;
	if (api_int(spec, "leaseDurationSeconds", &d) && d <= 0)
		api_err_add(errs, "spec.leaseDurationSeconds",
			    "Invalid value: %" PRId64 ": must be greater than 0", d);
	api_check_nonneg(errs, "spec", spec, "leaseTransitions");
	api_check_time(errs, "spec", spec, "acquireTime");
	api_check_time(errs, "spec", spec, "renewTime");
	static const char *const strategies[] = { "OldestEmulationVersion", NULL };
	api_check_enum(errs, "spec", spec, "strategy", strategies);
	if (api_nonempty(spec, "preferredHolder") && !api_nonempty(spec, "strategy"))
		api_err_add(errs, "spec.strategy",
			    "Forbidden: strategy must be set when preferredHolder is set");
}

/* ======================================================================================== */
/* PodGroup */

#define PODGROUP_DEFAULT_TIMEOUT 60

const struct api_schema api_schema_podgroup = API_KIND_SCHEMA(
	API_OBJ({ "minMember", S_INT }, { "scheduleTimeoutSeconds", S_INT },
		{ "minResources", S_QTYMAP }, { "priorityClassName", S_STR }),
	API_OBJ({ "phase", S_STR }, { "scheduled", S_INT }, { "running", S_INT },
		{ "succeeded", S_INT }, { "failed", S_INT }, { "scheduleStartTime", S_STR },
		{ "occupiedBy", S_STR }, { "observedGeneration", S_INT }, { "message", S_STR },
		{ "conditions", &api_schema_conditions }));

void api_defaults_podgroup(json_t *obj)
{
	json_t *spec = api_obj_child(obj, "spec");
	if (spec)
		api_default_int(spec, "scheduleTimeoutSeconds", PODGROUP_DEFAULT_TIMEOUT);
	json_t *status = api_obj_child(obj, "status");
	if (status)
		api_default_str(status, "phase", "Pending");
}

void api_validate_podgroup(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	(void)old;
	const json_t *spec = api_get(obj, "spec");
	int64_t mm;
	if (!api_int(spec, "minMember", &mm))
		api_err_add(errs, "spec.minMember",
			    "Required value: the number of pods that must "
			    "be scheduled together (>= 1)");
	else
		api_check_range(errs, "spec", spec, "minMember", 1, INT32_MAX);
	api_check_range(errs, "spec", spec, "scheduleTimeoutSeconds", 1, INT32_MAX);
	api_check_resource_list(errs, "spec.minResources", api_get(spec, "minResources"));
	api_check_dns_subdomain(errs, "spec", spec, "priorityClassName");
	const json_t *st = api_get(obj, "status");
	static const char *const phases[] = { "Pending",   "PreScheduling", "Scheduling",
					      "Scheduled", "Running",	    "Finished",
					      "Failed",	   "Unknown",	    NULL };
	api_check_enum(errs, "status", st, "phase", phases);
	static const char *const counts[] = { "scheduled",	    "running",
					      "succeeded",	    "failed",
					      "observedGeneration", NULL };
	for (const char *const *f = counts; *f; f++)
		api_check_nonneg(errs, "status", st, *f);
	api_check_time(errs, "status", st, "scheduleStartTime");
	api_check_conditions(errs, "status.conditions", api_get(st, "conditions"));
}
