// SPDX-License-Identifier: Apache-2.0
/*
 * The merge behind client-side apply: what the object should become, given the live object,
 * the manifest applied last time and the manifest applied now. Lists of objects that carry a
 * key (containers and volumes by name, ports by port) merge item by item, as kubectl's
 * strategic merge does, so that fields the server filled in (a Service port's nodePort, a
 * container's defaults) survive an apply that does not mention them.
 */
#include <stdbool.h>
#include <string.h>

#include "ctl.h"

bool ctl_json_same(const json_t *a, const json_t *b)
{
	size_t i;
	const char *k;
	json_t *v;

	if (json_is_number(a) && json_is_number(b)) {
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) == json_integer_value(b);
		return json_number_value(a) == json_number_value(b);
	}
	if (!a || !b || json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_OBJECT:
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_foreach((json_t *)a, k, v)
			if (!ctl_json_same(v, json_object_get(b, k)))
				return false;
		return true;
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return false;
		json_array_foreach(a, i, v)
			if (!ctl_json_same(v, json_array_get(b, i)))
				return false;
		return true;
	default:
		return json_equal((json_t *)a, (json_t *)b);
	}
}

/* The key lists of objects merge by, when every item of both lists has it. */
static const char *ctl_merge_key(const json_t *a, const json_t *b)
{
	static const char *const keys[] = { "name", "containerPort", "port", "ip", NULL };
	for (const char *const *key = keys; *key; key++) {
		bool ok = json_array_size(a) > 0;
		size_t i;
		json_t *v;
		json_array_foreach(a, i, v)
			ok &= json_is_object(v) && json_object_get(v, *key) != NULL;
		json_array_foreach(b, i, v)
			ok &= json_is_object(v) && json_object_get(v, *key) != NULL;
		if (ok)
			return *key;
	}
	return NULL;
}

static json_t *ctl_find_by(const json_t *list, const char *key, const json_t *val)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
		if (ctl_json_same(json_object_get(v, key), val))
			return v;
	return NULL;
}

json_t *ctl_apply_merge(const json_t *live, const json_t *last, const json_t *given)
{
	const char *k, *key;
	json_t *v, *out;
	size_t i;

	if (json_is_object(given) && json_is_object(live)) {
		out = json_deep_copy(live);
		if (!out)
			return NULL;
		if (json_is_object(last))
			json_object_foreach((json_t *)last, k, v)
				if (!json_object_get(given, k))
					json_object_del(out, k);
		json_object_foreach((json_t *)given, k, v) {
			json_t *m;
			if (json_is_null(v)) { /* an explicit null removes, as in a merge patch */
				json_object_del(out, k);
				continue;
			}
			m = ctl_apply_merge(json_object_get(live, k),
					    json_is_object(last) ? json_object_get(last, k) : NULL, v);
			if (!m || json_object_set_new(out, k, m)) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	}
	if (json_is_array(given) && json_is_array(live) && (key = ctl_merge_key(given, live))) {
		out = json_array();
		if (!out)
			return NULL;
		json_array_foreach(given, i, v) {
			const json_t *id = json_object_get(v, key);
			json_t *m = ctl_apply_merge(ctl_find_by(live, key, id),
						    json_is_array(last) ? ctl_find_by(last, key, id) :
									  NULL,
						    v);
			if (!m || json_array_append_new(out, m)) {
				json_decref(out);
				return NULL;
			}
		}
		/* Items someone else added stay; items the last apply set and the manifest
		 * dropped go. */
		json_array_foreach(live, i, v) {
			const json_t *id = json_object_get(v, key);
			if (ctl_find_by(given, key, id))
				continue;
			if (json_is_array(last) && ctl_find_by(last, key, id))
				continue;
			json_array_append(out, v);
		}
		return out;
	}
	return json_deep_copy(given);
}
