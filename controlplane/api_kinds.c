// SPDX-License-Identifier: Apache-2.0
/*
 * The kind registry's table and its lookups, and the field-error list every validation
 * writes into. The table is the only place that knows which kinds exist: each entry points
 * at the kind's schema, defaulting, validation and columns, which live beside each other in
 * api_validate_<group>.c.
 *
 * Groups and versions: core v1 (Namespace, Node, Pod, Service, Endpoints, Event), apps/v1
 * (Deployment, ReplicaSet, DaemonSet), batch/v1 (Job), discovery.k8s.io/v1 (EndpointSlice),
 * coordination.k8s.io/v1 (Lease) and scheduling.shoal.io/v1alpha1 (PodGroup, shoal's own
 * gang-scheduling kind), and federation.shoal.io/v1 (Cluster, FederatedDeployment, FederatedService: served by
 * every shoald, acted on by `shoald --federation`).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api_validate.h"

void api_err_add(struct api_errors *errs, const char *field, const char *fmt, ...)
{
	if (!errs)
		return;
	if (errs->n >= API_ERRORS_MAX) {
		errs->dropped++;
		return;
	}
	struct api_field_error *e = &errs->e[errs->n++];
	snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

void api_errors_format(const struct api_errors *errs, char *buf, size_t len)
{
	if (!buf || len == 0)
		return;
	buf[0] = 0;
	if (!errs)
		return;
	size_t off = 0;
	for (size_t i = 0; i < errs->n && off < len; i++) {
		const struct api_field_error *e = &errs->e[i];
		int w = snprintf(buf + off, len - off, "%s%s%s%s", i ? "; " : "", e->field,
				 e->field[0] ? ": " : "", e->message);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (errs->dropped && off < len)
		snprintf(buf + off, len - off, "; and %zu more error%s", errs->dropped,
			 errs->dropped == 1 ? "" : "s");
}

const struct api_kind api_kinds[] = {
	{
		.kind = "Namespace",
		.resource = "namespaces",
		.singular = "namespace",
		.group = "",
		.version = "v1",
		.short_names = { "ns" },
		.namespaced = false,
		.has_status = true,
		.name_rule = API_NAME_LABEL,
		.schema = &api_schema_namespace,
		.defaults = api_defaults_namespace,
		.validate = api_validate_namespace,
		.columns = api_columns_namespace,
	},
	{
		.kind = "Node",
		.resource = "nodes",
		.singular = "node",
		.group = "",
		.version = "v1",
		.short_names = { "no" },
		.namespaced = false,
		.has_status = true,
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_node,
		.defaults = NULL,
		.validate = api_validate_node,
		.columns = api_columns_node,
	},
	{
		.kind = "Pod",
		.resource = "pods",
		.singular = "pod",
		.group = "",
		.version = "v1",
		.short_names = { "po" },
		.namespaced = true,
		.has_status = true,
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_pod,
		.defaults = api_defaults_pod,
		.validate = api_validate_pod,
		.columns = api_columns_pod,
	},
	{
		.kind = "Service",
		.resource = "services",
		.singular = "service",
		.group = "",
		.version = "v1",
		.short_names = { "svc" },
		.namespaced = true,
		.has_status = true,
		.name_rule = API_NAME_LABEL1035,
		.schema = &api_schema_service,
		.defaults = api_defaults_service,
		.validate = api_validate_service,
		.columns = api_columns_service,
	},
	{
		.kind = "Endpoints",
		.resource = "endpoints",
		.singular = "endpoints",
		.group = "",
		.version = "v1",
		.short_names = { "ep" },
		.namespaced = true,
		.has_status = false,
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_endpoints,
		.defaults = api_defaults_endpoints,
		.validate = api_validate_endpoints,
		.columns = api_columns_endpoints,
	},
	{
		.kind = "Event",
		.resource = "events",
		.singular = "event",
		.group = "",
		.version = "v1",
		.short_names = { "ev" },
		.namespaced = true,
		.has_status = false,
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_event,
		.defaults = NULL,
		.validate = api_validate_event,
		.columns = api_columns_event,
	},
	{
		.kind = "Deployment",
		.resource = "deployments",
		.singular = "deployment",
		.group = "apps",
		.version = "v1",
		.short_names = { "deploy" },
		.namespaced = true,
		.has_status = true,
		.scale_path = "spec.replicas",
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_deployment,
		.defaults = api_defaults_deployment,
		.validate = api_validate_deployment,
		.columns = api_columns_deployment,
	},
	{
		.kind = "ReplicaSet",
		.resource = "replicasets",
		.singular = "replicaset",
		.group = "apps",
		.version = "v1",
		.short_names = { "rs" },
		.namespaced = true,
		.has_status = true,
		.scale_path = "spec.replicas",
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_replicaset,
		.defaults = api_defaults_replicaset,
		.validate = api_validate_replicaset,
		.columns = api_columns_replicaset,
	},
	{
		.kind = "DaemonSet",
		.resource = "daemonsets",
		.singular = "daemonset",
		.group = "apps",
		.version = "v1",
		.short_names = { "ds" },
		.namespaced = true,
		.has_status = true,
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_daemonset,
		.defaults = api_defaults_daemonset,
		.validate = api_validate_daemonset,
		.columns = api_columns_daemonset,
	},
	{
		.kind = "Job",
		.resource = "jobs",
		.singular = "job",
		.group = "batch",
		.version = "v1",
		.namespaced = true,
		.has_status = true,
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_job,
		.defaults = api_defaults_job,
		.validate = api_validate_job,
		.columns = api_columns_job,
	},
	{
		.kind = "EndpointSlice",
		.resource = "endpointslices",
		.singular = "endpointslice",
		.group = "discovery.k8s.io",
		.version = "v1",
		.namespaced = true,
		.has_status = false,
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_endpointslice,
		.defaults = api_defaults_endpointslice,
		.validate = api_validate_endpointslice,
		.columns = api_columns_endpointslice,
	},
	{
		.kind = "Lease",
		.resource = "leases",
		.singular = "lease",
		.group = "coordination.k8s.io",
		.version = "v1",
		.namespaced = true,
		.has_status = false,
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_lease,
		.defaults = NULL,
		.validate = api_validate_lease,
		.columns = api_columns_lease,
	},
	{
		.kind = "PodGroup",
		.resource = "podgroups",
		.singular = "podgroup",
		.group = "scheduling.shoal.io",
		.version = "v1alpha1",
		.short_names = { "pg" },
		.namespaced = true,
		.has_status = true,
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_podgroup,
		.defaults = api_defaults_podgroup,
		.validate = api_validate_podgroup,
		.columns = api_columns_podgroup,
	},
	{
		.kind = "Cluster",
		.resource = "clusters",
		.singular = "cluster",
		.group = "federation.shoal.io",
		.version = "v1",
		.namespaced = false,
		.has_status = true,
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_fedcluster,
		.defaults = api_defaults_fedcluster,
		.validate = api_validate_fedcluster,
		.columns = api_columns_fedcluster,
	},
	{
		.kind = "FederatedDeployment",
		.resource = "federateddeployments",
		.singular = "federateddeployment",
		.group = "federation.shoal.io",
		.version = "v1",
		.short_names = { "fdeploy" },
		.namespaced = true,
		.has_status = true,
		.scale_path = "spec.replicas",
		.name_rule = API_NAME_SUBDOMAIN,
		.schema = &api_schema_feddeployment,
		.defaults = api_defaults_feddeployment,
		.validate = api_validate_feddeployment,
		.columns = api_columns_feddeployment,
	},
	{
		.kind = "FederatedService",
		.resource = "federatedservices",
		.singular = "federatedservice",
		.group = "federation.shoal.io",
		.version = "v1",
		.short_names = { "fsvc" },
		.namespaced = true,
		.has_status = true,
		.name_rule = API_NAME_LABEL1035,
		.schema = &api_schema_fedservice,
		.defaults = NULL,
		.validate = api_validate_fedservice,
		.columns = api_columns_fedservice,
	},
	{ .kind = NULL },
};

const struct api_kind *api_kind_by_resource(const char *group, const char *version,
					    const char *resource)
{
	if (!version || !resource)
		return NULL;
	if (!group)
		group = "";
	for (const struct api_kind *k = api_kinds; k->kind; k++)
		if (strcmp(k->group, group) == 0 && strcmp(k->version, version) == 0 &&
		    strcmp(k->resource, resource) == 0)
			return k;
	return NULL;
}

static bool name_matches(const struct api_kind *k, const char *name, size_t n)
{
	if ((strlen(k->resource) == n && strncasecmp(k->resource, name, n) == 0) ||
	    (strlen(k->singular) == n && strncasecmp(k->singular, name, n) == 0) ||
	    (strlen(k->kind) == n && strncasecmp(k->kind, name, n) == 0))
		return true;
	for (size_t i = 0; i < 4 && k->short_names[i]; i++)
		if (strlen(k->short_names[i]) == n && strncasecmp(k->short_names[i], name, n) == 0)
			return true;
	return false;
}

const struct api_kind *api_kind_lookup(const char *name)
{
	if (!name || !*name)
		return NULL;
	size_t n = strlen(name);
	for (const struct api_kind *k = api_kinds; k->kind; k++)
		if (name_matches(k, name, n))
			return k;
	/* "resource.group" (deployments.apps, endpointslices.discovery.k8s.io) */
	const char *dot = strchr(name, '.');
	if (!dot)
		return NULL;
	for (const struct api_kind *k = api_kinds; k->kind; k++) {
		const char *group = *k->group ? k->group : "core";
		if (strcasecmp(dot + 1, group) == 0 && name_matches(k, name, (size_t)(dot - name)))
			return k;
	}
	return NULL;
}

const struct api_kind *api_kind_by_kind(const char *api_version, const char *kind)
{
	if (!api_version || !kind)
		return NULL;
	const char *slash = strchr(api_version, '/');
	const char *version = slash ? slash + 1 : api_version;
	size_t glen = slash ? (size_t)(slash - api_version) : 0;
	for (const struct api_kind *k = api_kinds; k->kind; k++)
		if (strcmp(k->kind, kind) == 0 && strcmp(k->version, version) == 0 &&
		    strlen(k->group) == glen && strncmp(k->group, api_version, glen) == 0)
			return k;
	return NULL;
}

const char *api_kind_api_version(const struct api_kind *k, char *buf, size_t len)
{
	if (!buf || len == 0)
		return buf;
	if (!k) {
		buf[0] = 0;
		return buf;
	}
	if (*k->group)
		snprintf(buf, len, "%s/%s", k->group, k->version);
	else
		snprintf(buf, len, "%s", k->version);
	return buf;
}
