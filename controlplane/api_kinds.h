/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kind registry: one table entry per API kind, holding everything the generic API code
 * needs to serve it: its path (group, version, resource), scope, sub-resources, schema
 * (known fields and their JSON types), defaulting, validation and printer columns. Adding a
 * kind is adding an entry; the server, the watch cache and shoalctl have no per-kind code.
 *
 * Validation errors are collected with their field path ("spec.template.spec.containers[0].
 * image: Required value") and become one 422 Status naming them all.
 */
#ifndef SHOAL_API_KINDS_H
#define SHOAL_API_KINDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Field errors of one request, in the order found. */
#define API_ERRORS_MAX 32
struct api_field_error {
	char field[256];
	char message[512];
};
struct api_errors {
	struct api_field_error e[API_ERRORS_MAX];
	size_t n;
	size_t dropped; /* errors past API_ERRORS_MAX, counted only */
};

/* Appends "field: message". */
void api_err_add(struct api_errors *errs, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes all errors as one message: "field: message; field: message" into buf. */
void api_errors_format(const struct api_errors *errs, char *buf, size_t len);

/* How metadata.name must look. */
enum api_name_rule {
	API_NAME_SUBDOMAIN, /* DNS-1123 subdomain, 253 characters (most kinds) */
	API_NAME_LABEL,	    /* DNS-1123 label, 63 characters (Namespace) */
	API_NAME_LABEL1035, /* DNS-1035 label, 63 characters, starts with a letter (Service) */
};

/* A printer column: the header and a dotted JSON path, or a computed column. */
struct api_column {
	const char *header;
	const char *path;	/* e.g. "spec.nodeName"; NULL when format is set */
	bool wide;		/* shown only with -o wide */
	/* Writes the cell for obj into buf (computed columns: READY, AGE, ...). */
	void (*format)(const json_t *obj, char *buf, size_t len);
};

/* Schema node: a field's JSON type and, for objects, its known fields; for arrays, the type
 * of their items; for maps (labels, nodeSelector, resources' limits), the type of values. */
enum api_type {
	API_T_ANY,	/* not checked (free-form) */
	API_T_STRING,
	API_T_INT,
	API_T_NUMBER,
	API_T_BOOL,
	API_T_OBJECT,	/* known fields in fields[] */
	API_T_ARRAY,	/* items in *items */
	API_T_MAP,	/* string keys, values of *items */
	API_T_INT_OR_STRING, /* targetPort, maxSurge */
	API_T_QUANTITY, /* a string or a number holding a quantity */
};
struct api_field;
struct api_schema {
	enum api_type type;
	const struct api_field *fields; /* API_T_OBJECT: terminated by a NULL name */
	const struct api_schema *items; /* API_T_ARRAY, API_T_MAP */
};
struct api_field {
	const char *name;
	const struct api_schema *schema;
};

struct api_kind {
	const char *kind;	  /* "Deployment" */
	const char *resource;	  /* "deployments" */
	const char *singular;	  /* "deployment" */
	const char *group;	  /* "" for the core group, "apps", ... */
	const char *version;	  /* "v1" */
	const char *short_names[4]; /* "deploy", NULL-terminated */
	bool namespaced;
	bool has_status; /* a /status sub-resource: PUT on the object keeps status, PUT on
			  * /status keeps everything but status */
	const char *scale_path;	/* "spec.replicas" when the kind has /scale, else NULL */
	enum api_name_rule name_rule;
	const struct api_schema *schema; /* the whole object, metadata included */
	/* Fills defaults in a new or replaced object (before validation). May be NULL. */
	void (*defaults)(json_t *obj);
	/* Checks semantics (the schema already checked types). old is the stored object on
	 * update, NULL on create. May be NULL. */
	void (*validate)(const json_t *obj, const json_t *old, struct api_errors *errs);
	const struct api_column *columns; /* terminated by a NULL header */
};

/* The finalizer a new Namespace gets: its content is being removed (spec.finalizers). */
#define API_NS_FINALIZER "kubernetes"

/* All kinds, terminated by an entry with kind == NULL. */
extern const struct api_kind api_kinds[];

/* The kind served at /api/v1/... (group "") or /apis/GROUP/VERSION/...; NULL if none. */
const struct api_kind *api_kind_by_resource(const char *group, const char *version,
					    const char *resource);

/* The kind a user names on the command line: resource ("pods"), singular ("pod"), short
 * name ("po"), kind ("Pod"), or "resource.group" ("deployments.apps"); case-insensitive. */
const struct api_kind *api_kind_lookup(const char *name);

/* The kind of an object's apiVersion and kind fields; NULL if none. */
const struct api_kind *api_kind_by_kind(const char *api_version, const char *kind);

/* "apps/v1" or "v1" into buf. */
const char *api_kind_api_version(const struct api_kind *k, char *buf, size_t len);

/*
 * Checks obj against k's schema: wrong JSON types become errors; fields the schema does not
 * know are removed from obj and their paths appended to unknown (a JSON array, may be NULL).
 */
void api_schema_check(const struct api_kind *k, json_t *obj, json_t *unknown,
		      struct api_errors *errs);

/* Validates metadata as Kubernetes does: name (or generateName) by k->name_rule, namespace,
 * label keys and values, annotation size (256 KiB in all), ownerReferences and finalizers. */
void api_validate_meta(const struct api_kind *k, const json_t *obj, struct api_errors *errs);

/* Name syntax checks; return NULL when valid or a static message. */
const char *api_name_invalid(enum api_name_rule rule, const char *name);

#endif
