// SPDX-License-Identifier: Apache-2.0
/*
 * The apps group's kinds (apps/v1): Deployment, ReplicaSet and DaemonSet. Schema, defaults
 * (Kubernetes' apps/v1 ones: replicas 1, RollingUpdate 25%/25%, revisionHistoryLimit 10,
 * progressDeadlineSeconds 600; DaemonSets maxUnavailable 1) and validation (selector
 * required and matching the template's labels and immutable, the template a valid pod
 * template with restartPolicy Always, update strategies, status counters).
 *
 * The design choice: the pod template is validated by the Pod kind's own code, with the
 * path prefix "spec.template.spec", so a workload and a bare pod reject the same mistakes
 * with the same message.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api_validate.h"
#include "labels.h"

/* ---- schemas ---- */

static const struct api_schema rolling_update =
	API_OBJ_INIT({ "maxUnavailable", S_IOS }, { "maxSurge", S_IOS });

static const struct api_schema workload_conditions = API_ARR_INIT(
	API_OBJ({ "type", S_STR }, { "status", S_STR }, { "lastUpdateTime", S_STR },
		{ "lastTransitionTime", S_STR }, { "reason", S_STR }, { "message", S_STR }));

const struct api_schema api_schema_deployment = API_KIND_SCHEMA(
	API_OBJ({ "replicas", S_INT }, { "selector", &api_schema_label_selector },
		{ "template", &api_schema_pod_template },
		{ "strategy", API_OBJ({ "type", S_STR }, { "rollingUpdate", &rolling_update }) },
		{ "minReadySeconds", S_INT }, { "revisionHistoryLimit", S_INT },
		{ "paused", S_BOOL }, { "progressDeadlineSeconds", S_INT }),
	API_OBJ({ "observedGeneration", S_INT }, { "replicas", S_INT },
		{ "updatedReplicas", S_INT }, { "readyReplicas", S_INT },
		{ "availableReplicas", S_INT }, { "unavailableReplicas", S_INT },
		{ "terminatingReplicas", S_INT }, { "conditions", &workload_conditions },
		{ "collisionCount", S_INT }));

const struct api_schema api_schema_replicaset =
	API_KIND_SCHEMA(API_OBJ({ "replicas", S_INT }, { "minReadySeconds", S_INT },
				{ "selector", &api_schema_label_selector },
				{ "template", &api_schema_pod_template }),
			API_OBJ({ "replicas", S_INT }, { "fullyLabeledReplicas", S_INT },
				{ "readyReplicas", S_INT }, { "availableReplicas", S_INT },
				{ "terminatingReplicas", S_INT }, { "observedGeneration", S_INT },
				{ "conditions", &workload_conditions }));

const struct api_schema api_schema_daemonset = API_KIND_SCHEMA(
	API_OBJ({ "selector", &api_schema_label_selector },
		{ "template", &api_schema_pod_template },
		{ "updateStrategy",
		  API_OBJ({ "type", S_STR }, { "rollingUpdate", &rolling_update }) },
		{ "minReadySeconds", S_INT }, { "revisionHistoryLimit", S_INT }),
	API_OBJ({ "currentNumberScheduled", S_INT }, { "numberMisscheduled", S_INT },
		{ "desiredNumberScheduled", S_INT }, { "numberReady", S_INT },
		{ "observedGeneration", S_INT }, { "updatedNumberScheduled", S_INT },
		{ "numberAvailable", S_INT }, { "numberUnavailable", S_INT },
		{ "collisionCount", S_INT }, { "conditions", &workload_conditions }));

/* ---- shared ---- */

static void defaults_template(json_t *spec)
{
	json_t *tmpl = json_object_get(spec, "template");
	api_defaults_pod_spec(json_object_get(tmpl, "spec"));
}

void api_validate_workload_selector(const json_t *spec, const json_t *old_spec,
				    struct api_errors *errs)
{
	struct selector *sel = NULL;
	const json_t *ls = api_get(spec, "selector");
	api_check_label_selector(errs, "spec.selector", ls, true, &sel);
	const json_t *tmpl = api_get(spec, "template");
	if (!tmpl) {
		api_err_add(errs, "spec.template", "Required value");
	} else {
		const json_t *labels = api_get_path(tmpl, "metadata.labels");
		if (sel && !selector_matches(sel, labels))
			api_err_add(errs, "spec.template.metadata.labels",
				    "Invalid value: `selector` does not match template `labels`");
		api_validate_pod_template(tmpl, "spec.template", errs);
	}
	selector_free(sel);
	if (old_spec)
		api_check_immutable(errs, "spec.selector", ls, api_get(old_spec, "selector"));
}

/* The template of a controller that keeps pods running: restartPolicy Always, no
 * activeDeadlineSeconds (ValidatePodTemplateSpecForReplicaSet). */
static void validate_long_running_template(const json_t *spec, struct api_errors *errs)
{
	const json_t *ps = api_get_path(spec, "template.spec");
	const char *rp = api_str(ps, "restartPolicy");
	static const char *const always[] = { "Always", NULL };
	if (rp && strcmp(rp, "Always") != 0)
		api_err_unsupported(errs, "spec.template.spec.restartPolicy", rp, always);
	if (api_get(ps, "activeDeadlineSeconds"))
		api_err_add(errs, "spec.template.spec.activeDeadlineSeconds",
			    "Forbidden: activeDeadlineSeconds in %s is not Supported",
			    "a long-running workload");
}

/* maxUnavailable and maxSurge: int-or-percent, not both 0, maxUnavailable at most 100%. */
static void validate_rolling(const json_t *ru, const char *path, struct api_errors *errs)
{
	char p[API_PATH_LEN];
	bool pu = false, ps = false;
	int64_t u = 0, s = 0;
	bool has_u = api_check_int_or_percent(errs, path, ru, "maxUnavailable", &pu, &u);
	bool has_s = api_check_int_or_percent(errs, path, ru, "maxSurge", &ps, &s);
	if (has_u && pu && u > 100)
		api_err_add(errs, api_path(p, path, "maxUnavailable"),
			    "Invalid value: \"%" PRId64 "%%\": must not be greater than 100%%", u);
	if (has_u && has_s && u == 0 && s == 0)
		api_err_add(errs, api_path(p, path, "maxUnavailable"),
			    "Invalid value: 0: may not be 0 when `maxSurge` is 0");
}

static void check_status_counts(const json_t *st, const char *const *fields,
				struct api_errors *errs)
{
	for (const char *const *f = fields; *f; f++)
		api_check_nonneg(errs, "status", st, *f);
}

/* field <= bound within status, as Kubernetes checks its counters. */
static void check_le(const json_t *st, const char *field, const char *bound,
		     struct api_errors *errs)
{
	int64_t a, b;
	char p[API_PATH_LEN];
	if (api_int(st, field, &a) && api_int(st, bound, &b) && a > b)
		api_err_add(errs, api_path(p, "status", field),
			    "Invalid value: %" PRId64 ": cannot be greater than status.%s", a,
			    bound);
}

/* ---- Deployment ---- */

void api_defaults_deployment(json_t *obj)
{
	json_t *spec = api_obj_child(obj, "spec");
	if (!spec)
		return;
	api_default_int(spec, "replicas", 1);
	json_t *strategy = api_obj_child(spec, "strategy");
	if (strategy) {
		api_default_str(strategy, "type", "RollingUpdate");
		const char *t = api_str(strategy, "type");
		if (t && strcmp(t, "RollingUpdate") == 0) {
			json_t *ru = api_obj_child(strategy, "rollingUpdate");
			if (ru) {
				api_default_str(ru, "maxUnavailable", "25%");
				api_default_str(ru, "maxSurge", "25%");
			}
		}
	}
	api_default_int(spec, "revisionHistoryLimit", 10);
	api_default_int(spec, "progressDeadlineSeconds", 600);
	defaults_template(spec);
}

void api_validate_deployment(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	const json_t *spec = api_get(obj, "spec");
	if (!spec) {
		api_err_add(errs, "spec", "Required value");
		return;
	}
	api_check_range(errs, "spec", spec, "replicas", 0, INT32_MAX);
	api_validate_workload_selector(spec, old ? api_get(old, "spec") : NULL, errs);
	validate_long_running_template(spec, errs);
	const json_t *strategy = api_get(spec, "strategy");
	static const char *const types[] = { "Recreate", "RollingUpdate", NULL };
	api_check_enum(errs, "spec.strategy", strategy, "type", types);
	const char *t = api_str(strategy, "type");
	const json_t *ru = api_get(strategy, "rollingUpdate");
	if (t && strcmp(t, "Recreate") == 0 && ru)
		api_err_add(errs, "spec.strategy.rollingUpdate",
			    "Forbidden: may not be specified when strategy `type` is 'Recreate'");
	else if (ru)
		validate_rolling(ru, "spec.strategy.rollingUpdate", errs);
	api_check_nonneg(errs, "spec", spec, "minReadySeconds");
	api_check_nonneg(errs, "spec", spec, "revisionHistoryLimit");
	int64_t pd, mr = 0;
	if (api_int(spec, "progressDeadlineSeconds", &pd)) {
		api_int(spec, "minReadySeconds", &mr);
		if (api_check_nonneg(errs, "spec", spec, "progressDeadlineSeconds") && pd <= mr)
			api_err_add(errs, "spec.progressDeadlineSeconds",
				    "Invalid value: %" PRId64
				    ": must be greater than minReadySeconds",
				    pd);
	}
	const json_t *st = api_get(obj, "status");
	static const char *const counts[] = {
		"observedGeneration",  "replicas",	    "updatedReplicas",
		"readyReplicas",       "availableReplicas", "unavailableReplicas",
		"terminatingReplicas", "collisionCount",    NULL
	};
	check_status_counts(st, counts, errs);
	check_le(st, "updatedReplicas", "replicas", errs);
	check_le(st, "readyReplicas", "replicas", errs);
	check_le(st, "availableReplicas", "replicas", errs);
	check_le(st, "availableReplicas", "readyReplicas", errs);
	api_check_conditions(errs, "status.conditions", api_get(st, "conditions"));
}

/* ---- ReplicaSet ---- */

void api_defaults_replicaset(json_t *obj)
{
	json_t *spec = api_obj_child(obj, "spec");
	if (!spec)
		return;
	api_default_int(spec, "replicas", 1);
	defaults_template(spec);
}

void api_validate_replicaset(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	const json_t *spec = api_get(obj, "spec");
	if (!spec) {
		api_err_add(errs, "spec", "Required value");
		return;
	}
	api_check_range(errs, "spec", spec, "replicas", 0, INT32_MAX);
	api_check_nonneg(errs, "spec", spec, "minReadySeconds");
	api_validate_workload_selector(spec, old ? api_get(old, "spec") : NULL, errs);
	validate_long_running_template(spec, errs);
	const json_t *st = api_get(obj, "status");
	static const char *const counts[] = { "replicas",
					      "fullyLabeledReplicas",
					      "readyReplicas",
					      "availableReplicas",
					      "terminatingReplicas",
					      "observedGeneration",
					      NULL };
	check_status_counts(st, counts, errs);
	check_le(st, "fullyLabeledReplicas", "replicas", errs);
	check_le(st, "readyReplicas", "replicas", errs);
	check_le(st, "availableReplicas", "replicas", errs);
	check_le(st, "availableReplicas", "readyReplicas", errs);
	api_check_conditions(errs, "status.conditions", api_get(st, "conditions"));
}

/* ---- DaemonSet ---- */

void api_defaults_daemonset(json_t *obj)
{
	json_t *spec = api_obj_child(obj, "spec");
	if (!spec)
		return;
	json_t *us = api_obj_child(spec, "updateStrategy");
	if (us) {
		api_default_str(us, "type", "RollingUpdate");
		const char *t = api_str(us, "type");
		if (t && strcmp(t, "RollingUpdate") == 0) {
			json_t *ru = api_obj_child(us, "rollingUpdate");
			if (ru) {
				api_default_int(ru, "maxUnavailable", 1);
				api_default_int(ru, "maxSurge", 0);
			}
		}
	}
	api_default_int(spec, "revisionHistoryLimit", 10);
	defaults_template(spec);
}

void api_validate_daemonset(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	const json_t *spec = api_get(obj, "spec");
	if (!spec) {
		api_err_add(errs, "spec", "Required value");
		return;
	}
	api_validate_workload_selector(spec, old ? api_get(old, "spec") : NULL, errs);
	validate_long_running_template(spec, errs);
	const json_t *us = api_get(spec, "updateStrategy");
	static const char *const types[] = { "RollingUpdate", "OnDelete", NULL };
	api_check_enum(errs, "spec.updateStrategy", us, "type", types);
	const char *t = api_str(us, "type");
	const json_t *ru = api_get(us, "rollingUpdate");
	if (t && strcmp(t, "OnDelete") == 0 && ru)
		api_err_add(errs, "spec.updateStrategy.rollingUpdate",
			    "Forbidden: may not be specified when strategy `type` is 'OnDelete'");
	else if (ru)
		validate_rolling(ru, "spec.updateStrategy.rollingUpdate", errs);
	api_check_nonneg(errs, "spec", spec, "minReadySeconds");
	api_check_nonneg(errs, "spec", spec, "revisionHistoryLimit");
	const json_t *st = api_get(obj, "status");
	static const char *const counts[] = { "currentNumberScheduled", "numberMisscheduled",
					      "desiredNumberScheduled", "numberReady",
					      "observedGeneration",	"updatedNumberScheduled",
					      "numberAvailable",	"numberUnavailable",
					      "collisionCount",		NULL };
	check_status_counts(st, counts, errs);
	api_check_conditions(errs, "status.conditions", api_get(st, "conditions"));
}
