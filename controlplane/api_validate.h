/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to the object model (api_kinds.c, api_schema.c, api_columns.c,
 * api_meta_validate.c and api_validate_*.c): the schema building blocks, each kind's schema,
 * defaulting, validation and printer columns, and the field helpers their validation shares.
 * Nothing outside the object model includes this file; the API server uses api_kinds.h.
 *
 * Field paths are built the way Kubernetes prints them: "spec.containers[0].ports[1].name",
 * "metadata.labels[app]". A path is at most API_PATH_LEN bytes; deeper paths are cut.
 */
#ifndef SHOAL_API_VALIDATE_H
#define SHOAL_API_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api_kinds.h"
#include "labels.h"

#define API_PATH_LEN 256

/* ---- schema building blocks (api_schema.c) ---- */
extern const struct api_schema api_s_any, api_s_string, api_s_int, api_s_number, api_s_bool,
	api_s_int_or_string, api_s_quantity, api_s_strings, api_s_ints, api_s_string_map,
	api_s_quantity_map;

#define API_ARR(s) (&(const struct api_schema){ API_T_ARRAY, NULL, (s) })
#define API_MAP(s) (&(const struct api_schema){ API_T_MAP, NULL, (s) })
#define API_OBJ(...)                                                                               \
	(&(const struct api_schema){                                                               \
		API_T_OBJECT, (const struct api_field[]){ __VA_ARGS__, { NULL, NULL } }, NULL })
/* The same, as initializers of a named schema. */
#define API_OBJ_INIT(...)                                                                          \
	{                                                                                          \
		API_T_OBJECT, (const struct api_field[]){ __VA_ARGS__, { NULL, NULL } }, NULL      \
	}
#define API_ARR_INIT(s)                                                                            \
	{                                                                                          \
		API_T_ARRAY, NULL, (s)                                                             \
	}
#define S_ANY	 (&api_s_any)
#define S_STR	 (&api_s_string)
#define S_INT	 (&api_s_int)
#define S_NUM	 (&api_s_number)
#define S_BOOL	 (&api_s_bool)
#define S_IOS	 (&api_s_int_or_string)
#define S_QTY	 (&api_s_quantity)
#define S_STRS	 (&api_s_strings)
#define S_INTS	 (&api_s_ints)
#define S_STRMAP (&api_s_string_map)
#define S_QTYMAP (&api_s_quantity_map)

/* Shared object schemas (api_meta_validate.c, api_validate_core.c). */
extern const struct api_schema api_schema_meta;		  /* ObjectMeta */
extern const struct api_schema api_schema_label_selector; /* metav1.LabelSelector */
extern const struct api_schema api_schema_object_ref;	  /* ObjectReference */
extern const struct api_schema api_schema_conditions;	  /* []metav1.Condition-like */
extern const struct api_schema api_schema_pod_template;	  /* PodTemplateSpec */

/* Initializer of a whole object's schema: apiVersion, kind, metadata, spec and status. */
#define API_KIND_SCHEMA(spec, status)                                                              \
	API_OBJ_INIT({ "apiVersion", S_STR }, { "kind", S_STR }, { "metadata", &api_schema_meta }, \
		     { "spec", (spec) }, { "status", (status) })

/* ---- each kind (api_validate_core.c, api_validate_apps.c, api_validate_batch.c) ---- */
#define API_KIND_DECL(name)                                                                        \
	extern const struct api_schema api_schema_##name;                                          \
	extern const struct api_column api_columns_##name[];                                       \
	void api_validate_##name(const json_t *obj, const json_t *old, struct api_errors *errs)
#define API_KIND_DEFAULTS(name) void api_defaults_##name(json_t *obj)

API_KIND_DECL(namespace);
API_KIND_DECL(node);
API_KIND_DECL(pod);
API_KIND_DECL(service);
API_KIND_DECL(endpoints);
API_KIND_DECL(event);
API_KIND_DECL(deployment);
API_KIND_DECL(replicaset);
API_KIND_DECL(daemonset);
API_KIND_DECL(job);
API_KIND_DECL(endpointslice);
API_KIND_DECL(lease);
API_KIND_DECL(podgroup);
API_KIND_DECL(fedcluster);	/* api_validate_fed.c */
API_KIND_DECL(feddeployment);
API_KIND_DECL(fedservice);
/* Node, Event and Lease have no defaults. */
API_KIND_DEFAULTS(namespace);
API_KIND_DEFAULTS(pod);
API_KIND_DEFAULTS(service);
API_KIND_DEFAULTS(endpoints);
API_KIND_DEFAULTS(deployment);
API_KIND_DEFAULTS(replicaset);
API_KIND_DEFAULTS(daemonset);
API_KIND_DEFAULTS(job);
API_KIND_DEFAULTS(endpointslice);
API_KIND_DEFAULTS(podgroup);
API_KIND_DEFAULTS(fedcluster);
API_KIND_DEFAULTS(feddeployment);

/* Pod spec and template, shared by the workload kinds (api_validate_core.c). */
void api_validate_pod_spec(const json_t *spec, const char *path, struct api_errors *errs);
void api_defaults_pod_spec(json_t *spec);
/* Template metadata (labels, annotations) and spec; path is "spec.template". */
void api_validate_pod_template(const json_t *tmpl, const char *path, struct api_errors *errs);
/* Changes Kubernetes allows on a pod's spec after creation; errors on others. */
void api_validate_pod_spec_update(const json_t *spec, const json_t *old_spec, const char *path,
				  struct api_errors *errs);

/* Workloads (api_validate_apps.c): spec.selector is a valid, non-empty selector that
 * matches spec.template.metadata.labels, the template is a valid pod template, and (on
 * update, old_spec not NULL) the selector did not change. */
void api_validate_workload_selector(const json_t *spec, const json_t *old_spec,
				    struct api_errors *errs);

/* ---- field helpers (api_validate_common.c) ---- */

/* "base.child" (or "child" when base is empty) into buf (API_PATH_LEN); returns buf. */
const char *api_path(char *buf, const char *base, const char *child);
/* "base.child[i]" (child may be NULL: "base[i]"). */
const char *api_path_i(char *buf, const char *base, const char *child, size_t i);
/* "base.child[key]" (child may be NULL: "base[key]"). */
const char *api_path_k(char *buf, const char *base, const char *child, const char *key);

/* Typed reads that tolerate a missing or mistyped object: NULL / false when absent. */
const json_t *api_get(const json_t *obj, const char *key);
const char *api_str(const json_t *obj, const char *key);
bool api_int(const json_t *obj, const char *key, int64_t *out);
bool api_bool(const json_t *obj, const char *key);
/* Value at a dotted path ("spec.template.spec"); NULL when absent. */
const json_t *api_get_path(const json_t *obj, const char *dotted);
/* Non-empty string, else NULL. */
const char *api_nonempty(const json_t *obj, const char *key);

/* Setting defaults: each sets key only when it is absent, and creates objects on the way. */
json_t *api_obj_child(json_t *obj, const char *key); /* existing or new {} (NULL if mistyped) */
void api_default_str(json_t *obj, const char *key, const char *value);
void api_default_int(json_t *obj, const char *key, int64_t value);
void api_default_bool(json_t *obj, const char *key, bool value);

/* Checks; each appends an error naming path + key and returns false when wrong. */
bool api_check_required(struct api_errors *errs, const char *path, const json_t *obj,
			const char *key); /* present and not "" / [] / {} */
/* An optional string field whose value must be one of allowed (NULL-terminated). */
bool api_check_enum(struct api_errors *errs, const char *path, const json_t *obj, const char *key,
		    const char *const *allowed);
void api_err_unsupported(struct api_errors *errs, const char *field, const char *value,
			 const char *const *allowed);
/* Optional integer fields in [min, max]. */
bool api_check_range(struct api_errors *errs, const char *path, const json_t *obj, const char *key,
		     int64_t min, int64_t max);
bool api_check_nonneg(struct api_errors *errs, const char *path, const json_t *obj,
		      const char *key);
/* Optional string field that must be a DNS-1123 label / subdomain / label key. */
bool api_check_dns_label(struct api_errors *errs, const char *path, const json_t *obj,
			 const char *key);
bool api_check_dns_subdomain(struct api_errors *errs, const char *path, const json_t *obj,
			     const char *key);
/* A map of label keys to label values (labels, nodeSelector, selector). */
void api_check_labels(struct api_errors *errs, const char *path, const json_t *map);
/* A LabelSelector; required: absent or empty is an error. Returns the parsed selector in
 * *out (may be NULL) when valid. */
bool api_check_label_selector(struct api_errors *errs, const char *path, const json_t *ls,
			      bool required, struct selector **out);
/* A map of resource names to quantities, each >= 0. */
void api_check_resource_list(struct api_errors *errs, const char *path, const json_t *map);
const char *api_resource_name_invalid(const char *name);
/* Ports and addresses. */
const char *api_iana_svc_name_invalid(const char *name);
/* A port given as a number (1..65535) or a name (IANA_SVC_NAME). */
bool api_check_port_or_name(struct api_errors *errs, const char *path, const json_t *obj,
			    const char *key, bool required);
const char *api_ipv4_invalid(const char *s);
const char *api_ip_invalid(const char *s); /* IPv4 or IPv6 */
const char *api_cidr_invalid(const char *s);
/* Optional RFC 3339 timestamp field. */
bool api_check_time(struct api_errors *errs, const char *path, const json_t *obj, const char *key);
/* Conditions: type required, status True/False/Unknown, unique types. */
void api_check_conditions(struct api_errors *errs, const char *path, const json_t *arr);
/* An ObjectReference: kind and name required when the reference is given. */
void api_check_object_ref(struct api_errors *errs, const char *path, const json_t *ref,
			  bool required);
/* int-or-percent ("25%" or 3): on success *pct tells which and *v holds the number. */
bool api_check_int_or_percent(struct api_errors *errs, const char *path, const json_t *obj,
			      const char *key, bool *pct, int64_t *v);
/* Field is unchanged between obj and old (both may lack it); else "field is immutable". */
bool api_check_immutable(struct api_errors *errs, const char *field, const json_t *now,
			 const json_t *before);

/* ---- printer column helpers (api_columns.c) ---- */
void api_col_age(const json_t *obj, char *buf, size_t len);
/* "5s", "3m2s", "4h", "2d3h", "400d" (kubectl's HumanDuration) of seconds. */
void api_human_duration(int64_t secs, char *buf, size_t len);
/* Seconds since the Unix epoch of an RFC 3339 time, or -1. */
int64_t api_parse_time(const char *s);

#endif
