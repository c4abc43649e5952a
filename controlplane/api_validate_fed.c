// SPDX-License-Identifier: Apache-2.0
/*
 * The federation group's kinds (federation.shoal.io/v1), served by `shoald --federation`:
 * Cluster (cluster-scoped: a member's API endpoint, its credentials, labels such as region
 * and zone in metadata.labels) and FederatedDeployment (namespaced: a Deployment template,
 * a placement and per-cluster overrides). Schema, defaults, validation and printer columns.
 *
 * The design choice: a FederatedDeployment's template.spec is validated as a member
 * Deployment's spec, by the Deployment kind's own schema and validation on a copy, with the
 * field paths rewritten to "spec.template.spec...", so the federation rejects at once what
 * every member would reject later.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_validate.h"

/* ---- schemas ---- */

static const struct api_schema resource_amounts =
	API_OBJ_INIT({ "cpu", S_QTY }, { "memory", S_QTY }, { "pods", S_QTY });

const struct api_schema api_schema_fedcluster = API_KIND_SCHEMA(
	API_OBJ({ "apiEndpoint", S_STR }, { "tokenFile", S_STR }, { "caFile", S_STR },
		{ "insecureSkipTLSVerify", S_BOOL }, { "referencePod", &resource_amounts }),
	API_OBJ({ "conditions", &api_schema_conditions }, { "nodes", S_INT },
		{ "readyNodes", S_INT }, { "allocatable", &resource_amounts },
		{ "usage", &resource_amounts }, { "available", &resource_amounts },
		{ "estimatedReplicas", S_INT }, { "lastReadyTime", S_STR },
		{ "lastProbeTime", S_STR }));

static const struct api_schema env_var =
	API_OBJ_INIT({ "name", S_STR }, { "value", S_STR }, { "valueFrom", S_ANY });

const struct api_schema api_schema_feddeployment = API_KIND_SCHEMA(
	API_OBJ({ "replicas", S_INT },
		{ "template", API_OBJ({ "metadata", API_OBJ({ "labels", S_STRMAP },
							    { "annotations", S_STRMAP }) },
				      { "spec", S_ANY }) },
		{ "placement",
		  API_OBJ({ "clusters", S_STRS }, { "clusterSelector", &api_schema_label_selector },
			  { "replicaScheduling",
			    API_OBJ({ "type", S_STR }, { "divideBy", S_STR },
				    { "weights", API_ARR(API_OBJ({ "cluster", S_STR },
								 { "weight", S_INT })) }) },
			  { "clusterReplicas",
			    API_ARR(API_OBJ({ "cluster", S_STR }, { "minReplicas", S_INT },
					    { "maxReplicas", S_INT })) }) },
		{ "overrides",
		  API_ARR(API_OBJ({ "cluster", S_STR }, { "replicas", S_INT },
				  { "labels", S_STRMAP }, { "container", S_STR },
				  { "image", S_ANY }, { "env", API_ARR(&env_var) },
				  { "args", S_STRS },
				  { "resources", API_OBJ({ "limits", S_QTYMAP },
							 { "requests", S_QTYMAP }) })) }),
	API_OBJ({ "observedGeneration", S_INT }, { "replicas", S_INT }, { "readyReplicas", S_INT },
		{ "availableReplicas", S_INT }, { "unplacedReplicas", S_INT },
		{ "placement", API_ARR(API_OBJ({ "cluster", S_STR }, { "replicas", S_INT })) },
		{ "clusters",
		  API_ARR(API_OBJ({ "cluster", S_STR }, { "state", S_STR }, { "message", S_STR },
				  { "replicas", S_INT }, { "readyReplicas", S_INT },
				  { "availableReplicas", S_INT }, { "updatedReplicas", S_INT })) },
		{ "conditions", &api_schema_conditions }));

const struct api_schema api_schema_fedservice = API_KIND_SCHEMA(
	API_OBJ({ "template", API_OBJ({ "metadata", API_OBJ({ "labels", S_STRMAP },
							    { "annotations", S_STRMAP }) },
				      { "spec", S_ANY }) },
		{ "placement", API_OBJ({ "clusters", S_STRS },
				       { "clusterSelector", &api_schema_label_selector }) }),
	API_OBJ({ "observedGeneration", S_INT },
		{ "clusters",
		  API_ARR(API_OBJ({ "cluster", S_STR }, { "state", S_STR }, { "message", S_STR },
				  { "clusterIP", S_STR }, { "addresses", S_STRS })) },
		{ "conditions", &api_schema_conditions }));

/* ---- Cluster ---- */

void api_defaults_fedcluster(json_t *obj)
{
	json_t *spec = api_obj_child(obj, "spec");
	json_t *ref = api_obj_child(spec, "referencePod");
	api_default_str(ref, "cpu", "100m");
	api_default_str(ref, "memory", "128Mi");
}

/* "http://HOST:PORT", "https://HOST:PORT" or "unix:/PATH"; NULL when valid. */
static const char *endpoint_invalid(const char *s)
{
	if (strncmp(s, "unix:", 5) == 0)
		return s[5] == '/' ? NULL : "a unix socket must be an absolute path (unix:/PATH)";
	const char *rest = strncmp(s, "http://", 7) == 0    ? s + 7
			   : strncmp(s, "https://", 8) == 0 ? s + 8
							    : NULL;
	if (!rest)
		return "must be http://HOST:PORT, https://HOST:PORT or unix:/PATH";
	const char *colon = strrchr(rest, ':');
	if (!colon || colon == rest)
		return "must name a host and a port (HOST:PORT)";
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if ((*end && strcmp(end, "/") != 0) || port < 1 || port > 65535)
		return "the port must be a number in 1..65535";
	return NULL;
}

void api_validate_fedcluster(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	(void)old; /* every field may change: the controller reconnects */
	const json_t *spec = api_get(obj, "spec");
	if (!spec) {
		api_err_add(errs, "spec", "Required value");
		return;
	}
	const char *ep = api_str(spec, "apiEndpoint");
	const char *why;
	if (!ep || !*ep)
		api_err_add(errs, "spec.apiEndpoint", "Required value");
	else if ((why = endpoint_invalid(ep)))
		api_err_add(errs, "spec.apiEndpoint", "Invalid value: \"%s\": %s", ep, why);
	/* where the file may be is the federation's to check (--cluster-credentials-dir) */
	const char *tf = api_str(spec, "tokenFile");
	if (tf && (!tf[0] || (tf[0] != '/' && strchr(tf, '/')) || !strcmp(tf, "..") ||
		   !strcmp(tf, ".")))
		api_err_add(errs, "spec.tokenFile",
			    "Invalid value: \"%s\": must be an absolute path or the name of a file "
			    "in the federation's credentials directory",
			    tf);
	const char *ca = api_str(spec, "caFile");
	if (ca && ca[0] != '/')
		api_err_add(errs, "spec.caFile", "Invalid value: \"%s\": must be an absolute path",
			    ca);
	const json_t *ref = api_get(spec, "referencePod");
	if (ref)
		api_check_resource_list(errs, "spec.referencePod", ref);
	api_check_conditions(errs, "status.conditions", api_get_path(obj, "status.conditions"));
}

/* ---- FederatedDeployment ---- */

void api_defaults_feddeployment(json_t *obj)
{
	json_t *spec = api_obj_child(obj, "spec");
	api_default_int(spec, "replicas", 1);
	json_t *pl = api_obj_child(spec, "placement");
	json_t *rs = api_obj_child(pl, "replicaScheduling");
	api_default_str(rs, "type", "Divided");
	const char *t = api_str(rs, "type");
	if (t && strcmp(t, "Divided") == 0)
		api_default_str(rs, "divideBy", "Weights");
}

/* Validates template.spec as the spec of a member object of kind (apps/v1 Deployment, v1
 * Service); errors come back under "spec.template.spec". */
static void validate_template_spec(const json_t *tmpl, const char *api_version, const char *kind,
				   struct api_errors *errs)
{
	const json_t *ds = api_get(tmpl, "spec");
	if (!ds) {
		api_err_add(errs, "spec.template.spec", "Required value");
		return;
	}
	const struct api_kind *dk = api_kind_by_kind(api_version, kind);
	json_t *d = json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion", api_version, "kind",
			      kind, "metadata", "name", "x", "namespace", "default", "spec",
			      json_deep_copy(ds));
	if (!dk || !d) {
		api_err_add(errs, "spec.template.spec",
			    "Internal error: cannot check the template");
		json_decref(d);
		return;
	}
	struct api_errors inner = { .n = 0 };
	api_schema_check(dk, d, NULL, &inner);
	if (dk->defaults)
		dk->defaults(d);
	if (dk->validate)
		dk->validate(d, NULL, &inner);
	for (size_t i = 0; i < inner.n; i++) {
		const char *f = inner.e[i].field;
		char path[API_PATH_LEN];
		snprintf(path, sizeof(path), "spec.template.spec%s%s",
			 strncmp(f, "spec", 4) == 0 ? "" : ".",
			 strncmp(f, "spec", 4) == 0 ? f + 4 : f);
		api_err_add(errs, path, "%s", inner.e[i].message);
	}
	json_decref(d);
}

/* A cluster name field: required, a DNS-1123 subdomain. */
static bool check_cluster_name(struct api_errors *errs, const char *path, const json_t *obj)
{
	char p[API_PATH_LEN];
	const char *n = api_str(obj, "cluster");
	if (!n || !*n) {
		api_err_add(errs, api_path(p, path, "cluster"), "Required value");
		return false;
	}
	const char *why = api_name_invalid(API_NAME_SUBDOMAIN, n);
	if (why) {
		api_err_add(errs, api_path(p, path, "cluster"), "Invalid value: \"%s\": %s", n,
			    why);
		return false;
	}
	return true;
}

static void validate_placement(const json_t *pl, struct api_errors *errs)
{
	char p[API_PATH_LEN];
	size_t i;
	json_t *v;
	const json_t *names = api_get(pl, "clusters");
	json_array_foreach ((json_t *)names, i, v) {
		const char *n = json_string_value(v);
		const char *why = n ? api_name_invalid(API_NAME_SUBDOMAIN, n) : "must be a string";
		if (why)
			api_err_add(errs, api_path_i(p, "spec.placement", "clusters", i),
				    "Invalid value: %s", why);
	}
	const json_t *sel = api_get(pl, "clusterSelector");
	if (sel)
		api_check_label_selector(errs, "spec.placement.clusterSelector", sel, false, NULL);
	const json_t *rs = api_get(pl, "replicaScheduling");
	static const char *const types[] = { "Duplicated", "Divided", NULL };
	static const char *const by[] = { "Weights", "AvailableCapacity", NULL };
	api_check_enum(errs, "spec.placement.replicaScheduling", rs, "type", types);
	api_check_enum(errs, "spec.placement.replicaScheduling", rs, "divideBy", by);
	const char *t = api_str(rs, "type");
	if (t && strcmp(t, "Duplicated") == 0 && api_get(rs, "divideBy"))
		api_err_add(errs, "spec.placement.replicaScheduling.divideBy",
			    "Forbidden: only for type Divided");
	json_array_foreach (api_get(rs, "weights"), i, v) {
		char base[API_PATH_LEN];
		api_path_i(base, "spec.placement.replicaScheduling", "weights", i);
		check_cluster_name(errs, base, v);
		int64_t w;
		if (!api_int(v, "weight", &w))
			api_err_add(errs, api_path(p, base, "weight"), "Required value");
		else
			api_check_range(errs, base, v, "weight", 0, 1000000);
	}
	json_array_foreach (api_get(pl, "clusterReplicas"), i, v) {
		char base[API_PATH_LEN];
		api_path_i(base, "spec.placement", "clusterReplicas", i);
		check_cluster_name(errs, base, v);
		int64_t lo = 0, hi = 0;
		bool has_lo = api_check_range(errs, base, v, "minReplicas", 0, INT32_MAX) &&
			      api_int(v, "minReplicas", &lo);
		bool has_hi = api_check_range(errs, base, v, "maxReplicas", 0, INT32_MAX) &&
			      api_int(v, "maxReplicas", &hi);
		if (has_lo && has_hi && hi < lo)
			api_err_add(errs, api_path(p, base, "maxReplicas"),
				    "Invalid value: %" PRId64
				    ": must be greater than or equal to minReplicas (%" PRId64 ")",
				    hi, lo);
	}
}

static void validate_overrides(const json_t *ovs, struct api_errors *errs)
{
	char p[API_PATH_LEN];
	size_t i;
	json_t *v;
	json_array_foreach ((json_t *)ovs, i, v) {
		char base[API_PATH_LEN];
		api_path_i(base, "spec", "overrides", i);
		check_cluster_name(errs, base, v);
		api_check_range(errs, base, v, "replicas", 0, INT32_MAX);
		if (api_get(v, "image"))
			api_err_add(errs, api_path(p, base, "image"),
				    "Forbidden: the image is the same in every cluster; change "
				    "spec.template instead");
		const json_t *labels = api_get(v, "labels");
		if (labels)
			api_check_labels(errs, api_path(p, base, "labels"), labels);
		size_t j;
		json_t *e;
		json_array_foreach (api_get(v, "env"), j, e) {
			if (!api_nonempty(e, "name"))
				api_err_add(errs, api_path_i(p, base, "env", j),
					    "name: Required value");
		}
		const json_t *res = api_get(v, "resources");
		if (api_get(res, "limits"))
			api_check_resource_list(errs, api_path(p, base, "resources.limits"),
						api_get(res, "limits"));
		if (api_get(res, "requests"))
			api_check_resource_list(errs, api_path(p, base, "resources.requests"),
						api_get(res, "requests"));
	}
}

void api_validate_feddeployment(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	(void)old;
	const json_t *spec = api_get(obj, "spec");
	if (!spec) {
		api_err_add(errs, "spec", "Required value");
		return;
	}
	api_check_range(errs, "spec", spec, "replicas", 0, INT32_MAX);
	const json_t *tmpl = api_get(spec, "template");
	if (!tmpl)
		api_err_add(errs, "spec.template", "Required value");
	else
		validate_template_spec(tmpl, "apps/v1", "Deployment", errs);
	const json_t *pl = api_get(spec, "placement");
	if (!api_get(pl, "clusters") && !api_get(pl, "clusterSelector"))
		api_err_add(errs, "spec.placement",
			    "Required value: give clusters, a clusterSelector, or both");
	validate_placement(pl, errs);
	validate_overrides(api_get(spec, "overrides"), errs);
	api_check_conditions(errs, "status.conditions", api_get_path(obj, "status.conditions"));
}

/* ---- FederatedService ---- */

void api_validate_fedservice(const json_t *obj, const json_t *old, struct api_errors *errs)
{
	(void)old;
	const json_t *spec = api_get(obj, "spec");
	if (!spec) {
		api_err_add(errs, "spec", "Required value");
		return;
	}
	const json_t *tmpl = api_get(spec, "template");
	if (!tmpl)
		api_err_add(errs, "spec.template", "Required value");
	else
		validate_template_spec(tmpl, "v1", "Service", errs);
	const json_t *pl = api_get(spec, "placement");
	if (!api_get(pl, "clusters") && !api_get(pl, "clusterSelector"))
		api_err_add(errs, "spec.placement",
			    "Required value: give clusters, a clusterSelector, or both");
	validate_placement(pl, errs);
	api_check_conditions(errs, "status.conditions", api_get_path(obj, "status.conditions"));
}

/* ---- columns ---- */

static const char *cond_status(const json_t *o, const char *type)
{
	size_t i;
	json_t *c;
	json_array_foreach (api_get_path(o, "status.conditions"), i, c) {
		const char *t = api_str(c, "type");
		if (t && strcmp(t, type) == 0)
			return api_str(c, "status");
	}
	return NULL;
}

static void cluster_ready(const json_t *o, char *buf, size_t len)
{
	const char *r = cond_status(o, "Ready"), *off = cond_status(o, "Offline");
	snprintf(buf, len, "%s", off && strcmp(off, "True") == 0 ? "Offline" : r ? r : "Unknown");
}

static void cluster_nodes(const json_t *o, char *buf, size_t len)
{
	int64_t n = 0, r = 0;
	api_int(api_get(o, "status"), "nodes", &n);
	api_int(api_get(o, "status"), "readyNodes", &r);
	snprintf(buf, len, "%" PRId64 "/%" PRId64, r, n);
}

static void cluster_labels(const json_t *o, const char *key, char *buf, size_t len)
{
	const char *v = api_str(api_get_path(o, "metadata.labels"), key);
	snprintf(buf, len, "%s", v ? v : "<none>");
}

static void cluster_region(const json_t *o, char *b, size_t l)
{
	cluster_labels(o, "topology.kubernetes.io/region", b, l);
}

static void cluster_zone(const json_t *o, char *b, size_t l)
{
	cluster_labels(o, "topology.kubernetes.io/zone", b, l);
}

const struct api_column api_columns_fedcluster[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "ENDPOINT", "spec.apiEndpoint", false, NULL },
	{ "READY", NULL, false, cluster_ready },
	{ "NODES", NULL, false, cluster_nodes },
	{ "CPU", "status.available.cpu", true, NULL },
	{ "MEMORY", "status.available.memory", true, NULL },
	{ "ESTIMATE", "status.estimatedReplicas", true, NULL },
	{ "REGION", NULL, true, cluster_region },
	{ "ZONE", NULL, true, cluster_zone },
	{ "AGE", NULL, false, api_col_age },
	{ NULL, NULL, false, NULL },
};

static void fd_ready(const json_t *o, char *buf, size_t len)
{
	int64_t want = 0, ready = 0;
	api_int(api_get(o, "spec"), "replicas", &want);
	api_int(api_get(o, "status"), "readyReplicas", &ready);
	snprintf(buf, len, "%" PRId64 "/%" PRId64, ready, want);
}

/* Per cluster: "a=2/2 b=4/4 c=0/4" (ready/placed). */
static void fd_clusters(const json_t *o, char *buf, size_t len)
{
	size_t i, off = 0;
	json_t *c;
	buf[0] = 0;
	json_array_foreach (api_get_path(o, "status.clusters"), i, c) {
		int64_t r = 0, want = 0;
		api_int(c, "readyReplicas", &r);
		api_int(c, "replicas", &want);
		const char *st = api_str(c, "state");
		int w = snprintf(buf + off, len - off, "%s%s=%" PRId64 "/%" PRId64 "%s%s%s",
				 i ? " " : "", api_str(c, "cluster") ?: "?", r, want,
				 st && strcmp(st, "Synced") ? "(" : "",
				 st && strcmp(st, "Synced") ? st : "",
				 st && strcmp(st, "Synced") ? ")" : "");
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
	if (!off)
		snprintf(buf, len, "<none>");
}

static void fd_mode(const json_t *o, char *buf, size_t len)
{
	const json_t *rs = api_get_path(o, "spec.placement.replicaScheduling");
	const char *t = api_str(rs, "type"), *by = api_str(rs, "divideBy");
	snprintf(buf, len, "%s%s%s", t ? t : "Divided", by ? "/" : "", by ? by : "");
}

/* Per cluster: "a=Synced(2) b=NotOwned" (the addresses it publishes, counted). */
static void fs_clusters(const json_t *o, char *buf, size_t len)
{
	size_t i, off = 0;
	json_t *c;
	buf[0] = 0;
	json_array_foreach (api_get_path(o, "status.clusters"), i, c) {
		int w = snprintf(buf + off, len - off, "%s%s=%s(%zu)", i ? " " : "",
				 api_str(c, "cluster") ?: "?", api_str(c, "state") ?: "?",
				 json_array_size(api_get(c, "addresses")));
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
	if (!off)
		snprintf(buf, len, "<none>");
}

static void fs_type(const json_t *o, char *buf, size_t len)
{
	const char *t = api_str(api_get_path(o, "spec.template.spec"), "type");
	snprintf(buf, len, "%s", t ? t : "ClusterIP");
}

const struct api_column api_columns_fedservice[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "TYPE", NULL, false, fs_type },
	{ "CLUSTERS", NULL, false, fs_clusters },
	{ "AGE", NULL, false, api_col_age },
	{ NULL, NULL, false, NULL },
};

const struct api_column api_columns_feddeployment[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "READY", NULL, false, fd_ready },
	{ "CLUSTERS", NULL, false, fd_clusters },
	{ "SCHEDULING", NULL, true, fd_mode },
	{ "UNPLACED", "status.unplacedReplicas", true, NULL },
	{ "AGE", NULL, false, api_col_age },
	{ NULL, NULL, false, NULL },
};
