// SPDX-License-Identifier: Apache-2.0
/*
 * The schema walk: checks an incoming object's JSON types against its kind's schema, and
 * prunes the fields the schema does not know, reporting each one's path (the server turns
 * them into a Warning header, or a 400 under fieldValidation=Strict).
 *
 * The design choice: a JSON null in an object is removed, not reported, because Kubernetes
 * reads a null field as an unset one; after the walk, validation and defaulting only ever
 * see absent fields or fields of the right type. Quantities given as JSON numbers become
 * strings (cpu: 0.5 is stored as "500m"), so every consumer reads quantities one way.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api_validate.h"
#include "quantity.h"

const struct api_schema api_s_any = { API_T_ANY, NULL, NULL };
const struct api_schema api_s_string = { API_T_STRING, NULL, NULL };
const struct api_schema api_s_int = { API_T_INT, NULL, NULL };
const struct api_schema api_s_number = { API_T_NUMBER, NULL, NULL };
const struct api_schema api_s_bool = { API_T_BOOL, NULL, NULL };
const struct api_schema api_s_int_or_string = { API_T_INT_OR_STRING, NULL, NULL };
const struct api_schema api_s_quantity = { API_T_QUANTITY, NULL, NULL };
const struct api_schema api_s_strings = { API_T_ARRAY, NULL, &api_s_string };
const struct api_schema api_s_ints = { API_T_ARRAY, NULL, &api_s_int };
const struct api_schema api_s_string_map = { API_T_MAP, NULL, &api_s_string };
const struct api_schema api_s_quantity_map = { API_T_MAP, NULL, &api_s_quantity };

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "?";
}

static const char *expected_name(enum api_type t)
{
	switch (t) {
	case API_T_ANY:
		return "any value";
	case API_T_STRING:
		return "a string";
	case API_T_INT:
		return "an integer";
	case API_T_NUMBER:
		return "a number";
	case API_T_BOOL:
		return "a boolean";
	case API_T_OBJECT:
	case API_T_MAP:
		return "an object";
	case API_T_ARRAY:
		return "an array";
	case API_T_INT_OR_STRING:
		return "an integer or a string";
	case API_T_QUANTITY:
		return "a quantity (a string such as \"500m\", \"1.5\" or \"128Mi\", or a number)";
	}
	return "?";
}

static void type_error(struct api_errors *errs, const char *path, enum api_type want,
		       const json_t *v)
{
	api_err_add(errs, path, "Invalid value: must be %s, not %s", expected_name(want),
		    json_type_name(v));
}

static const struct api_schema *field_schema(const struct api_schema *s, const char *name)
{
	for (const struct api_field *f = s->fields; f && f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f->schema;
	return NULL;
}

/* A quantity given as a JSON number becomes its canonical string; a string must parse. */
static void check_quantity(json_t *parent, const char *key, size_t idx, json_t *v, const char *path,
			   struct api_errors *errs)
{
	char text[64];
	const char *s;
	if (json_is_string(v)) {
		s = json_string_value(v);
	} else if (json_is_integer(v)) {
		snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		s = text;
	} else if (json_is_real(v)) {
		snprintf(text, sizeof(text), "%.15g", json_real_value(v));
		s = text;
	} else {
		type_error(errs, path, API_T_QUANTITY, v);
		return;
	}
	int64_t milli;
	int ret = quantity_parse_milli(s, &milli);
	if (ret == -ERANGE) {
		api_err_add(errs, path, "Invalid value: \"%s\": quantity is too large", s);
		return;
	}
	if (ret < 0) {
		api_err_add(errs, path,
			    "Invalid value: \"%s\": must be a quantity: a number with an optional "
			    "suffix (n u m k M G T P E, Ki Mi Gi Ti Pi Ei, or e<exponent>), e.g. "
			    "\"500m\", \"1.5\", \"128Mi\"",
			    s);
		return;
	}
	if (!json_is_string(v)) {
		char canon[64];
		quantity_format(milli, canon, sizeof(canon));
		json_t *str = json_string(canon);
		if (!str)
			return;
		if (key)
			json_object_set_new(parent, key, str);
		else
			json_array_set_new(parent, idx, str);
	}
}

/* Walks v (held in parent under key, or at idx when key is NULL) against s. */
static void walk(const struct api_schema *s, json_t *parent, const char *key, size_t idx, json_t *v,
		 const char *path, json_t *unknown, struct api_errors *errs)
{
	char p[API_PATH_LEN];
	switch (s->type) {
	case API_T_ANY:
		return;
	case API_T_STRING:
		if (!json_is_string(v))
			type_error(errs, path, s->type, v);
		return;
	case API_T_INT:
		if (!json_is_integer(v))
			type_error(errs, path, s->type, v);
		return;
	case API_T_NUMBER:
		if (!json_is_number(v))
			type_error(errs, path, s->type, v);
		return;
	case API_T_BOOL:
		if (!json_is_boolean(v))
			type_error(errs, path, s->type, v);
		return;
	case API_T_INT_OR_STRING:
		if (!json_is_integer(v) && !json_is_string(v))
			type_error(errs, path, s->type, v);
		return;
	case API_T_QUANTITY:
		check_quantity(parent, key, idx, v, path, errs);
		return;
	case API_T_ARRAY: {
		if (!json_is_array(v)) {
			type_error(errs, path, s->type, v);
			return;
		}
		size_t i;
		json_t *item;
		json_array_foreach (v, i, item) {
			api_path_i(p, path, NULL, i);
			if (json_is_null(item)) {
				api_err_add(errs, p, "Invalid value: must be %s, not null",
					    expected_name(s->items->type));
				continue;
			}
			walk(s->items, v, NULL, i, item, p, unknown, errs);
		}
		return;
	}
	case API_T_MAP: {
		if (!json_is_object(v)) {
			type_error(errs, path, s->type, v);
			return;
		}
		const char *k;
		json_t *item;
		void *tmp;
		json_object_foreach_safe (v, tmp, k, item) {
			api_path_k(p, path, NULL, k);
			walk(s->items, v, k, 0, item, p, unknown, errs);
		}
		return;
	}
	case API_T_OBJECT: {
		if (!json_is_object(v)) {
			type_error(errs, path, s->type, v);
			return;
		}
		const char *k;
		json_t *item;
		void *tmp;
		json_object_foreach_safe (v, tmp, k, item) {
			api_path(p, path, k);
			const struct api_schema *fs = field_schema(s, k);
			if (!fs) {
				if (unknown)
					json_array_append_new(unknown, json_string(p));
				json_object_del(v, k);
				continue;
			}
			if (json_is_null(item)) {
				json_object_del(v, k);
				continue;
			}
			walk(fs, v, k, 0, item, p, unknown, errs);
		}
		return;
	}
	}
}

void api_schema_check(const struct api_kind *k, json_t *obj, json_t *unknown,
		      struct api_errors *errs)
{
	if (!k || !k->schema)
		return;
	if (!json_is_object(obj)) {
		api_err_add(errs, "<body>", "Invalid value: must be a JSON object, not %s",
			    obj ? json_type_name(obj) : "nothing");
		return;
	}
	walk(k->schema, NULL, NULL, 0, obj, "", unknown, errs);
}
