// SPDX-License-Identifier: Apache-2.0
/*
 * Field helpers shared by every kind's validation and defaulting: path building, typed
 * reads that tolerate missing fields, and the checks Kubernetes repeats across kinds
 * (enums, ranges, names, label maps and selectors, resource lists, ports, IP addresses and
 * CIDRs, timestamps, conditions, int-or-percent values, immutable fields).
 *
 * The design choice: every check reads the object defensively (a missing or mistyped field
 * is skipped, never dereferenced), because the schema walk reports type errors first and
 * validation still runs to report every semantic error of the same request in one answer.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_validate.h"
#include "json_merge.h"
#include "labels.h"
#include "quantity.h"

/* A path cut at API_PATH_LEN ends in "..." so that the cut shows. */
static const char *cut(char *buf, int written)
{
	if (written >= API_PATH_LEN)
		memcpy(buf + API_PATH_LEN - 4, "...", 4);
	return buf;
}

const char *api_path(char *buf, const char *base, const char *child)
{
	if (!base || !*base)
		return cut(buf, snprintf(buf, API_PATH_LEN, "%s", child));
	return cut(buf, snprintf(buf, API_PATH_LEN, "%s.%s", base, child));
}

const char *api_path_i(char *buf, const char *base, const char *child, size_t i)
{
	if (child)
		return cut(buf, snprintf(buf, API_PATH_LEN, "%s%s%s[%zu]", base ? base : "",
					 base && *base ? "." : "", child, i));
	return cut(buf, snprintf(buf, API_PATH_LEN, "%s[%zu]", base ? base : "", i));
}

const char *api_path_k(char *buf, const char *base, const char *child, const char *key)
{
	if (child)
		return cut(buf, snprintf(buf, API_PATH_LEN, "%s%s%s[%s]", base ? base : "",
					 base && *base ? "." : "", child, key));
	return cut(buf, snprintf(buf, API_PATH_LEN, "%s[%s]", base ? base : "", key));
}

const json_t *api_get(const json_t *obj, const char *key)
{
	if (!json_is_object(obj))
		return NULL;
	const json_t *v = json_object_get(obj, key);
	return json_is_null(v) ? NULL : v;
}

const char *api_str(const json_t *obj, const char *key)
{
	return json_string_value(api_get(obj, key));
}

const char *api_nonempty(const json_t *obj, const char *key)
{
	const char *s = api_str(obj, key);
	return s && *s ? s : NULL;
}

bool api_int(const json_t *obj, const char *key, int64_t *out)
{
	const json_t *v = api_get(obj, key);
	if (!json_is_integer(v))
		return false;
	*out = json_integer_value(v);
	return true;
}

bool api_bool(const json_t *obj, const char *key)
{
	return json_is_true(api_get(obj, key));
}

const json_t *api_get_path(const json_t *obj, const char *dotted)
{
	const json_t *cur = obj;
	const char *p = dotted;
	while (cur && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (!json_is_object(cur))
			return NULL;
		cur = json_object_getn(cur, p, n);
		p += n;
		if (*p == '.')
			p++;
	}
	return json_is_null(cur) ? NULL : cur;
}

json_t *api_obj_child(json_t *obj, const char *key)
{
	if (!json_is_object(obj))
		return NULL;
	json_t *c = json_object_get(obj, key);
	if (json_is_object(c))
		return c;
	if (c && !json_is_null(c))
		return NULL;
	c = json_object();
	if (!c || json_object_set_new(obj, key, c) < 0)
		return NULL;
	return c;
}

static bool absent(json_t *obj, const char *key)
{
	if (!json_is_object(obj))
		return false;
	json_t *v = json_object_get(obj, key);
	return !v || json_is_null(v);
}

void api_default_str(json_t *obj, const char *key, const char *value)
{
	if (absent(obj, key))
		json_object_set_new(obj, key, json_string(value));
}

void api_default_int(json_t *obj, const char *key, int64_t value)
{
	if (absent(obj, key))
		json_object_set_new(obj, key, json_integer(value));
}

void api_default_bool(json_t *obj, const char *key, bool value)
{
	if (absent(obj, key))
		json_object_set_new(obj, key, json_boolean(value));
}

bool api_check_required(struct api_errors *errs, const char *path, const json_t *obj,
			const char *key)
{
	char p[API_PATH_LEN];
	const json_t *v = api_get(obj, key);
	bool empty = !v || (json_is_string(v) && json_string_length(v) == 0) ||
		     (json_is_array(v) && json_array_size(v) == 0) ||
		     (json_is_object(v) && json_object_size(v) == 0);
	if (empty)
		api_err_add(errs, api_path(p, path, key), "Required value");
	return !empty;
}

void api_err_unsupported(struct api_errors *errs, const char *field, const char *value,
			 const char *const *allowed)
{
	char list[384];
	size_t off = 0;
	list[0] = 0;
	for (const char *const *a = allowed; *a && off < sizeof(list); a++) {
		int w = snprintf(list + off, sizeof(list) - off, "%s\"%s\"",
				 a == allowed ? "" : ", ", *a);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	api_err_add(errs, field, "Unsupported value: \"%s\": supported values: %s", value, list);
}

bool api_check_enum(struct api_errors *errs, const char *path, const json_t *obj, const char *key,
		    const char *const *allowed)
{
	const char *v = api_str(obj, key);
	if (!v)
		return true;
	for (const char *const *a = allowed; *a; a++)
		if (strcmp(v, *a) == 0)
			return true;
	char p[API_PATH_LEN];
	api_err_unsupported(errs, api_path(p, path, key), v, allowed);
	return false;
}

bool api_check_range(struct api_errors *errs, const char *path, const json_t *obj, const char *key,
		     int64_t min, int64_t max)
{
	int64_t v;
	if (!api_int(obj, key, &v))
		return true;
	if (v >= min && v <= max)
		return true;
	char p[API_PATH_LEN];
	if (max == INT64_MAX)
		api_err_add(errs, api_path(p, path, key),
			    "Invalid value: %" PRId64 ": must be greater than or equal to %" PRId64,
			    v, min);
	else
		api_err_add(errs, api_path(p, path, key),
			    "Invalid value: %" PRId64 ": must be between %" PRId64 " and %" PRId64
			    ", inclusive",
			    v, min, max);
	return false;
}

bool api_check_nonneg(struct api_errors *errs, const char *path, const json_t *obj, const char *key)
{
	return api_check_range(errs, path, obj, key, 0, INT64_MAX);
}

bool api_check_dns_label(struct api_errors *errs, const char *path, const json_t *obj,
			 const char *key)
{
	const char *v = api_str(obj, key), *why;
	if (!v || !*v || !(why = api_name_invalid(API_NAME_LABEL, v)))
		return true;
	char p[API_PATH_LEN];
	api_err_add(errs, api_path(p, path, key), "Invalid value: \"%s\": %s", v, why);
	return false;
}

bool api_check_dns_subdomain(struct api_errors *errs, const char *path, const json_t *obj,
			     const char *key)
{
	const char *v = api_str(obj, key), *why;
	if (!v || !*v || !(why = api_name_invalid(API_NAME_SUBDOMAIN, v)))
		return true;
	char p[API_PATH_LEN];
	api_err_add(errs, api_path(p, path, key), "Invalid value: \"%s\": %s", v, why);
	return false;
}

void api_check_labels(struct api_errors *errs, const char *path, const json_t *map)
{
	if (!json_is_object(map))
		return;
	const char *k, *why;
	json_t *v;
	json_object_foreach ((json_t *)map, k, v) {
		if ((why = label_key_invalid(k)))
			api_err_add(errs, path, "Invalid value: \"%s\": %s", k, why);
		const char *s = json_string_value(v);
		if (s && (why = label_value_invalid(s))) {
			char p[API_PATH_LEN];
			api_err_add(errs, api_path_k(p, path, NULL, k), "Invalid value: \"%s\": %s",
				    s, why);
		}
	}
}

bool api_check_label_selector(struct api_errors *errs, const char *path, const json_t *ls,
			      bool required, struct selector **out)
{
	if (out)
		*out = NULL;
	if (!ls || json_is_null(ls)) {
		if (required)
			api_err_add(errs, path, "Required value");
		return !required;
	}
	char err[400];
	struct selector *sel = NULL;
	if (selector_from_json(ls, false, &sel, err, sizeof(err)) < 0) {
		api_err_add(errs, path, "Invalid value: %s", err);
		return false;
	}
	if (required && selector_empty(sel)) {
		api_err_add(errs, path, "Invalid value: {}: empty selector is invalid here");
		selector_free(sel);
		return false;
	}
	if (out)
		*out = sel;
	else
		selector_free(sel);
	return true;
}

const char *api_resource_name_invalid(const char *name)
{
	static const char *const standard[] = { "cpu",	   "memory", "ephemeral-storage",
						"storage", "pods",   NULL };
	for (const char *const *s = standard; *s; s++)
		if (strcmp(name, *s) == 0)
			return NULL;
	if (strncmp(name, "hugepages-", 10) == 0) {
		int64_t m;
		if (quantity_parse_milli(name + 10, &m) < 0 || m <= 0)
			return "must be hugepages-<page size>, e.g. hugepages-2Mi";
		return NULL;
	}
	const char *why = label_key_invalid(name);
	if (why)
		return why;
	if (!strchr(name, '/'))
		return "must be a standard resource name (cpu, memory, ephemeral-storage, "
		       "hugepages-<size>) or fully qualified (e.g. example.com/gpu)";
	return NULL;
}

void api_check_resource_list(struct api_errors *errs, const char *path, const json_t *map)
{
	if (!json_is_object(map))
		return;
	const char *k, *why;
	json_t *v;
	char p[API_PATH_LEN];
	json_object_foreach ((json_t *)map, k, v) {
		api_path_k(p, path, NULL, k);
		if ((why = api_resource_name_invalid(k)))
			api_err_add(errs, p, "Invalid value: \"%s\": %s", k, why);
		int64_t m;
		if (json_is_string(v) && quantity_parse_milli(json_string_value(v), &m) == 0 &&
		    m < 0)
			api_err_add(errs, p,
				    "Invalid value: \"%s\": must be greater than or equal "
				    "to 0",
				    json_string_value(v));
	}
}

const char *api_iana_svc_name_invalid(const char *s)
{
	size_t n = strlen(s);
	bool letter = false;
	if (n == 0 || n > 15)
		return "must be no more than 15 characters";
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= 'a' && c <= 'z')
			letter = true;
		else if (!(c >= '0' && c <= '9') && c != '-')
			return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens "
			       "(-)";
		if (c == '-' && i + 1 < n && s[i + 1] == '-')
			return "must not contain consecutive hyphens";
	}
	if (s[0] == '-' || s[n - 1] == '-')
		return "must not begin or end with a hyphen";
	if (!letter)
		return "must contain at least one letter (a-z)";
	return NULL;
}

bool api_check_port_or_name(struct api_errors *errs, const char *path, const json_t *obj,
			    const char *key, bool required)
{
	char p[API_PATH_LEN];
	const json_t *v = api_get(obj, key);
	api_path(p, path, key);
	if (!v) {
		if (required)
			api_err_add(errs, p, "Required value");
		return !required;
	}
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n < 1 || n > 65535) {
			api_err_add(errs, p,
				    "Invalid value: %" JSON_INTEGER_FORMAT
				    ": must be between 1 and 65535, inclusive",
				    n);
			return false;
		}
		return true;
	}
	const char *s = json_string_value(v), *why;
	if (s && (why = api_iana_svc_name_invalid(s))) {
		api_err_add(errs, p, "Invalid value: \"%s\": %s", s, why);
		return false;
	}
	return true;
}

const char *api_ipv4_invalid(const char *s)
{
	struct in_addr a;
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return "must be a valid IPv4 address (e.g. 10.9.8.7)";
	return NULL;
}

const char *api_ip_invalid(const char *s)
{
	struct in6_addr a6;
	if (!api_ipv4_invalid(s) || (s && inet_pton(AF_INET6, s, &a6) == 1))
		return NULL;
	return "must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)";
}

const char *api_cidr_invalid(const char *s)
{
	static const char *const msg = "must be a valid CIDR value (e.g. 10.9.8.0/24 or "
				       "2001:db8::/64)";
	if (!s)
		return msg;
	const char *slash = strchr(s, '/');
	if (!slash || slash == s || slash - s >= 64 || !slash[1])
		return msg;
	char addr[64];
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = 0;
	int max;
	if (!api_ipv4_invalid(addr))
		max = 32;
	else if (!api_ip_invalid(addr))
		max = 128;
	else
		return msg;
	char *end;
	long bits = strtol(slash + 1, &end, 10);
	if (*end || bits < 0 || bits > max || !isdigit((unsigned char)slash[1]))
		return msg;
	return NULL;
}

int64_t api_parse_time(const char *s)
{
	if (!s)
		return -1;
	struct tm tm = { 0 };
	const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		return -1;
	if (*rest == '.') {
		rest++;
		if (!isdigit((unsigned char)*rest))
			return -1;
		while (isdigit((unsigned char)*rest))
			rest++;
	}
	int64_t off = 0;
	if (*rest == 'Z' || *rest == 'z') {
		rest++;
	} else if (*rest == '+' || *rest == '-') {
		int hh, mm;
		if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2 || strlen(rest) != 6)
			return -1;
		off = (hh * 3600 + mm * 60) * (*rest == '+' ? 1 : -1);
		rest += 6;
	} else {
		return -1;
	}
	if (*rest)
		return -1;
	return (int64_t)timegm(&tm) - off;
}

bool api_check_time(struct api_errors *errs, const char *path, const json_t *obj, const char *key)
{
	const char *s = api_str(obj, key);
	if (!s || !*s || api_parse_time(s) >= 0)
		return true;
	char p[API_PATH_LEN];
	api_err_add(errs, api_path(p, path, key),
		    "Invalid value: \"%s\": must be an RFC 3339 time (e.g. 2024-01-02T15:04:05Z)",
		    s);
	return false;
}

void api_check_conditions(struct api_errors *errs, const char *path, const json_t *arr)
{
	static const char *const statuses[] = { "True", "False", "Unknown", NULL };
	if (!json_is_array(arr))
		return;
	char p[API_PATH_LEN], q[API_PATH_LEN];
	size_t i;
	json_t *c;
	json_array_foreach (arr, i, c) {
		api_path_i(p, path, NULL, i);
		api_check_required(errs, p, c, "type");
		if (api_check_required(errs, p, c, "status"))
			api_check_enum(errs, p, c, "status", statuses);
		api_check_nonneg(errs, p, c, "observedGeneration");
		static const char *const times[] = { "lastTransitionTime", "lastUpdateTime",
						     "lastHeartbeatTime", "lastProbeTime" };
		for (size_t t = 0; t < 4; t++)
			api_check_time(errs, p, c, times[t]);
		const char *type = api_str(c, "type");
		for (size_t j = 0; type && j < i; j++)
			if (api_str(json_array_get(arr, j), "type") &&
			    strcmp(api_str(json_array_get(arr, j), "type"), type) == 0) {
				api_err_add(errs, api_path(q, p, "type"), "Duplicate value: \"%s\"",
					    type);
				break;
			}
	}
}

void api_check_object_ref(struct api_errors *errs, const char *path, const json_t *ref,
			  bool required)
{
	if (!ref) {
		if (required)
			api_err_add(errs, path, "Required value");
		return;
	}
	api_check_required(errs, path, ref, "kind");
	api_check_required(errs, path, ref, "name");
	api_check_dns_label(errs, path, ref, "namespace");
}

bool api_check_int_or_percent(struct api_errors *errs, const char *path, const json_t *obj,
			      const char *key, bool *pct, int64_t *v)
{
	char p[API_PATH_LEN];
	const json_t *j = api_get(obj, key);
	*pct = false;
	*v = 0;
	if (!j)
		return false;
	api_path(p, path, key);
	if (json_is_integer(j)) {
		*v = json_integer_value(j);
		if (*v < 0) {
			api_err_add(errs, p,
				    "Invalid value: %" PRId64
				    ": must be greater than or equal to 0",
				    *v);
			return false;
		}
		return true;
	}
	const char *s = json_string_value(j);
	if (!s)
		return false;
	size_t n = strlen(s);
	bool ok = n >= 2 && n <= 12 && s[n - 1] == '%';
	for (size_t i = 0; ok && i + 1 < n; i++)
		ok = isdigit((unsigned char)s[i]);
	if (!ok) {
		api_err_add(
			errs, p,
			"Invalid value: \"%s\": a valid percent string must be a numeric string "
			"followed by an ending '%%' (e.g. '1%%', or '93%%')",
			s);
		return false;
	}
	*pct = true;
	*v = strtoll(s, NULL, 10);
	return true;
}

bool api_check_immutable(struct api_errors *errs, const char *field, const json_t *now,
			 const json_t *before)
{
	if (json_is_null(now))
		now = NULL;
	if (json_is_null(before))
		before = NULL;
	if (!now && !before)
		return true;
	if (now && before && json_merge_equal(now, before))
		return true;
	api_err_add(errs, field, "Invalid value: field is immutable");
	return false;
}
