// SPDX-License-Identifier: Apache-2.0
/*
 * Object metadata: its schema, the schemas of the small metav1 types every kind shares
 * (LabelSelector, ObjectReference, conditions), name syntax, and metadata validation as
 * Kubernetes' ValidateObjectMeta does it.
 *
 * The design choice: metadata fields the server owns (uid, resourceVersion, generation,
 * creationTimestamp) are in the schema so that they round-trip, but their values are the
 * server's business; only their shape is checked here. managedFields and selfLink are not
 * in the schema, so they are pruned and reported as unknown.
 */
#include <ctype.h>
#include <string.h>

#include "api_validate.h"
#include "labels.h"

#define ANNOTATIONS_MAX_BYTES (256 * 1024)

const struct api_schema api_schema_object_ref =
	API_OBJ_INIT({ "kind", S_STR }, { "namespace", S_STR }, { "name", S_STR }, { "uid", S_STR },
		     { "apiVersion", S_STR }, { "resourceVersion", S_STR }, { "fieldPath", S_STR });

static const struct api_schema owner_ref =
	API_OBJ_INIT({ "apiVersion", S_STR }, { "kind", S_STR }, { "name", S_STR },
		     { "uid", S_STR }, { "controller", S_BOOL }, { "blockOwnerDeletion", S_BOOL });

const struct api_schema api_schema_meta = API_OBJ_INIT(
	{ "name", S_STR }, { "generateName", S_STR }, { "namespace", S_STR }, { "uid", S_STR },
	{ "resourceVersion", S_STR }, { "generation", S_INT }, { "creationTimestamp", S_STR },
	{ "deletionTimestamp", S_STR }, { "deletionGracePeriodSeconds", S_INT },
	{ "labels", S_STRMAP }, { "annotations", S_STRMAP },
	{ "ownerReferences", API_ARR(&owner_ref) }, { "finalizers", S_STRS });

const struct api_schema api_schema_label_selector = API_OBJ_INIT(
	{ "matchLabels", S_STRMAP },
	{ "matchExpressions",
	  API_ARR(API_OBJ({ "key", S_STR }, { "operator", S_STR }, { "values", S_STRS })) });

const struct api_schema api_schema_conditions = API_ARR_INIT(
	API_OBJ({ "type", S_STR }, { "status", S_STR }, { "observedGeneration", S_INT },
		{ "lastTransitionTime", S_STR }, { "lastUpdateTime", S_STR },
		{ "lastHeartbeatTime", S_STR }, { "lastProbeTime", S_STR }, { "reason", S_STR },
		{ "message", S_STR }));

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static const char *dns_label_invalid(const char *s, size_t n, bool letter_first)
{
	static const char *const msg1123 =
		"a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
		"or '-', and must start and end with an alphanumeric character (e.g. 'my-name', "
		"or '123-abc')";
	static const char *const msg1035 =
		"a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
		"start with an alphabetic character, and end with an alphanumeric character "
		"(e.g. 'my-name', or 'abc-123')";
	if (n > 63)
		return "must be no more than 63 characters";
	if (n == 0)
		return letter_first ? msg1035 : msg1123;
	if (letter_first && !(s[0] >= 'a' && s[0] <= 'z'))
		return msg1035;
	if (!lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
		return letter_first ? msg1035 : msg1123;
	for (size_t i = 0; i < n; i++)
		if (!lower_alnum(s[i]) && s[i] != '-')
			return letter_first ? msg1035 : msg1123;
	return NULL;
}

static const char *dns_subdomain_invalid(const char *s, size_t n)
{
	static const char *const msg =
		"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
		"characters, '-' or '.', and must start and end with an alphanumeric character "
		"(e.g. 'example.com')";
	if (n > 253)
		return "must be no more than 253 characters";
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		if (i == start || !lower_alnum(s[start]) || !lower_alnum(s[i - 1]))
			return msg;
		for (size_t j = start; j < i; j++)
			if (!lower_alnum(s[j]) && s[j] != '-')
				return msg;
		start = i + 1;
	}
	return NULL;
}

const char *api_name_invalid(enum api_name_rule rule, const char *name)
{
	if (!name || !*name)
		return "must be non-empty";
	size_t n = strlen(name);
	switch (rule) {
	case API_NAME_SUBDOMAIN:
		return dns_subdomain_invalid(name, n);
	case API_NAME_LABEL:
		return dns_label_invalid(name, n, false);
	case API_NAME_LABEL1035:
		return dns_label_invalid(name, n, true);
	}
	return "unknown name rule";
}

/* generateName is a prefix: it is valid when it would be valid with its trailing '-' taken
 * off (Kubernetes' maskTrailingDash), and the generated suffix is 5 characters. */
static const char *generate_name_invalid(enum api_name_rule rule, const char *prefix)
{
	char buf[300];
	size_t n = strlen(prefix);
	if (n >= sizeof(buf))
		return "must be no more than 253 characters";
	memcpy(buf, prefix, n + 1);
	if (n > 1 && buf[n - 1] == '-')
		buf[n - 1] = 0;
	return api_name_invalid(rule, buf);
}

static bool standard_finalizer(const char *f)
{
	return strcmp(f, "kubernetes") == 0 || strcmp(f, "orphan") == 0 ||
	       strcmp(f, "foregroundDeletion") == 0;
}

static void validate_owner_refs(const json_t *refs, struct api_errors *errs)
{
	char p[API_PATH_LEN], q[API_PATH_LEN];
	size_t i, controllers = 0;
	json_t *r;
	json_array_foreach (refs, i, r) {
		api_path_i(p, "metadata", "ownerReferences", i);
		static const char *const req[] = { "apiVersion", "kind", "name", "uid" };
		for (size_t j = 0; j < 4; j++)
			if (!api_nonempty(r, req[j]))
				api_err_add(errs, api_path(q, p, req[j]), "Required value");
		const char *kind = api_str(r, "kind");
		if (kind && strcmp(kind, "List") == 0)
			api_err_add(errs, api_path(q, p, "kind"),
				    "Invalid value: \"List\": "
				    "must not be a List");
		if (api_bool(r, "controller"))
			controllers++;
	}
	if (controllers > 1)
		api_err_add(errs, "metadata.ownerReferences",
			    "Invalid value: only one reference can have controller set to true");
}

void api_validate_meta(const struct api_kind *k, const json_t *obj, struct api_errors *errs)
{
	char p[API_PATH_LEN];
	const json_t *meta = api_get(obj, "metadata");
	if (!json_is_object(meta)) {
		api_err_add(errs, "metadata", "Required value");
		return;
	}
	const char *name = api_str(meta, "name");
	const char *gen = api_str(meta, "generateName");
	const char *why;
	if (name && *name) {
		if ((why = api_name_invalid(k->name_rule, name)))
			api_err_add(errs, "metadata.name", "Invalid value: \"%s\": %s", name, why);
	} else if (!gen || !*gen) {
		api_err_add(errs, "metadata.name",
			    "Required value: name or generateName is required");
	}
	if (gen && *gen && (why = generate_name_invalid(k->name_rule, gen)))
		api_err_add(errs, "metadata.generateName", "Invalid value: \"%s\": %s", gen, why);

	const char *ns = api_str(meta, "namespace");
	if (k->namespaced) {
		if (!ns || !*ns)
			api_err_add(errs, "metadata.namespace", "Required value");
		else if ((why = api_name_invalid(API_NAME_LABEL, ns)))
			api_err_add(errs, "metadata.namespace", "Invalid value: \"%s\": %s", ns,
				    why);
	} else if (ns && *ns) {
		api_err_add(errs, "metadata.namespace", "Forbidden: not allowed on this type");
	}

	api_check_nonneg(errs, "metadata", meta, "generation");
	api_check_nonneg(errs, "metadata", meta, "deletionGracePeriodSeconds");
	api_check_time(errs, "metadata", meta, "creationTimestamp");
	api_check_time(errs, "metadata", meta, "deletionTimestamp");
	api_check_labels(errs, "metadata.labels", api_get(meta, "labels"));

	const json_t *ann = api_get(meta, "annotations");
	if (json_is_object(ann)) {
		size_t total = 0;
		const char *key;
		json_t *v;
		json_object_foreach ((json_t *)ann, key, v) {
			char lower[320];
			snprintf(lower, sizeof(lower), "%s", key);
			for (char *c = lower; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			if ((why = label_key_invalid(lower)))
				api_err_add(errs, "metadata.annotations",
					    "Invalid value: \"%s\": %s", key, why);
			total += strlen(key) + json_string_length(v);
		}
		if (total > ANNOTATIONS_MAX_BYTES)
			api_err_add(errs, "metadata.annotations",
				    "Too long: must have at most %d bytes", ANNOTATIONS_MAX_BYTES);
	}

	const json_t *refs = api_get(meta, "ownerReferences");
	if (json_is_array(refs))
		validate_owner_refs(refs, errs);

	const json_t *fins = api_get(meta, "finalizers");
	if (json_is_array(fins)) {
		size_t i;
		json_t *f;
		bool orphan = false, foreground = false;
		json_array_foreach (fins, i, f) {
			const char *s = json_string_value(f);
			if (!s)
				continue;
			api_path_i(p, "metadata", "finalizers", i);
			if ((why = label_key_invalid(s)))
				api_err_add(errs, p, "Invalid value: \"%s\": %s", s, why);
			else if (!strchr(s, '/') && !standard_finalizer(s))
				api_err_add(errs, p,
					    "Invalid value: \"%s\": name is neither a standard "
					    "finalizer name nor is it fully qualified",
					    s);
			orphan |= strcmp(s, "orphan") == 0;
			foreground |= strcmp(s, "foregroundDeletion") == 0;
		}
		if (orphan && foreground)
			api_err_add(errs, "metadata.finalizers",
				    "Invalid value: finalizer orphan and foregroundDeletion cannot "
				    "be both set");
	}
}
