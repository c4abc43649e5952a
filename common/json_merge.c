// SPDX-License-Identifier: Apache-2.0
/*
 * JSON merge patch (RFC 7386) and structural JSON equality.
 *
 * The design choice: json_merge_patch never changes its arguments and returns a new, deep
 * copied value, so a failed request (a patch that then does not validate) leaves the stored
 * object as it was, and the caller may prune or default the result freely without touching
 * a cached object through a shared subtree.
 */
#include "json_merge.h"

#include <errno.h>
#include <string.h>

/* Applies patch to *target in place; *target (owned, may be NULL) may be replaced. */
static int merge_into(json_t **target, const json_t *patch)
{
	if (!json_is_object(patch)) {
		/* a non-object patch replaces the target whole */
		json_t *r = json_deep_copy(patch);
		if (!r)
			return -ENOMEM;
		json_decref(*target);
		*target = r;
		return 0;
	}
	if (!json_is_object(*target)) {
		json_decref(*target);
		*target = json_object();
		if (!*target)
			return -ENOMEM;
	}
	const char *key;
	json_t *pv;
	json_object_foreach ((json_t *)patch, key, pv) {
		if (json_is_null(pv)) {
			json_object_del(*target, key);
			continue;
		}
		json_t *cur = json_incref(json_object_get(*target, key));
		int ret = merge_into(&cur, pv);
		if (ret < 0 || json_object_set_new(*target, key, cur) < 0) {
			json_decref(cur);
			return -ENOMEM;
		}
	}
	return 0;
}

json_t *json_merge_patch(const json_t *target, const json_t *patch)
{
	if (!patch) {
		errno = EINVAL;
		return NULL;
	}
	json_t *out = NULL;
	if (target && json_is_object(patch)) {
		out = json_deep_copy(target);
		if (!out) {
			errno = ENOMEM;
			return NULL;
		}
	}
	if (merge_into(&out, patch) < 0) {
		json_decref(out);
		errno = ENOMEM;
		return NULL;
	}
	return out;
}

json_t *json_merge_diff(const json_t *from, const json_t *to)
{
	if (!to) {
		errno = EINVAL;
		return NULL;
	}
	if (!json_is_object(from) || !json_is_object(to))
		return json_deep_copy(to);
	json_t *patch = json_object();
	if (!patch) {
		errno = ENOMEM;
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach ((json_t *)from, key, v) {
		if (!json_object_get(to, key) && json_object_set_new(patch, key, json_null()) < 0)
			goto nomem;
	}
	json_object_foreach ((json_t *)to, key, v) {
		json_t *fv = json_object_get(from, key);
		if (json_is_null(v))
			continue;
		if (fv && json_merge_equal(fv, v))
			continue;
		json_t *d = fv ? json_merge_diff(fv, v) : json_deep_copy(v);
		if (!d || json_object_set_new(patch, key, d) < 0)
			goto nomem;
	}
	return patch;
nomem:
	json_decref(patch);
	errno = ENOMEM;
	return NULL;
}

bool json_merge_equal(const json_t *a, const json_t *b)
{
	if (a == b)
		return true;
	if (!a || !b)
		return false;
	if (json_is_number(a) && json_is_number(b)) {
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) == json_integer_value(b);
		return json_number_value(a) == json_number_value(b);
	}
	if (json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_OBJECT: {
		if (json_object_size(a) != json_object_size(b))
			return false;
		const char *key;
		json_t *v;
		json_object_foreach ((json_t *)a, key, v) {
			if (!json_merge_equal(v, json_object_get(b, key)))
				return false;
		}
		return true;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(a);
		if (n != json_array_size(b))
			return false;
		for (size_t i = 0; i < n; i++)
			if (!json_merge_equal(json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	}
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) ==
			       0;
	default:
		return true; /* true, false, null: same type is same value */
	}
}

void json_merge_drop_nulls(json_t *v)
{
	const char *key;
	json_t *m;
	void *tmp;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach_safe (v, tmp, key, m) {
			if (json_is_null(m))
				json_object_del(v, key);
			else
				json_merge_drop_nulls(m);
		}
	} else if (json_is_array(v)) {
		json_array_foreach (v, i, m)
			json_merge_drop_nulls(m);
	}
}
