// SPDX-License-Identifier: Apache-2.0
/*
 * YAML <-> JSON for manifests and `-o yaml`. Parsing walks libyaml's event stream and builds
 * the jansson tree with an explicit stack (no recursion on input depth); typing of plain
 * scalars follows sigs.k8s.io/yaml (see yaml_json.h). Aliases are expanded by deep copy under
 * a budget of copied nodes, so a "billion laughs" document fails cleanly instead of eating
 * memory; everything else is bounded by the input's size.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "yaml_json.h"

#define YJ_MAX_DEPTH 512
#define YJ_MAX_ALIAS_NODES (1u << 17) /* nodes copied by expanding aliases, per stream */

/* ---- scalar typing ---------------------------------------------------------------------- */

static bool str_in(const char *s, size_t len, const char *const *list)
{
	for (; *list; list++)
		if (strlen(*list) == len && memcmp(*list, s, len) == 0)
			return true;
	return false;
}

static const char *const yj_true[] = { "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE",
				       "on", "On", "ON", NULL };
static const char *const yj_false[] = { "n", "N", "no", "No", "NO", "false", "False", "FALSE",
					"off", "Off", "OFF", NULL };
static const char *const yj_null[] = { "~", "null", "Null", "NULL", NULL };
static const char *const yj_nonfinite[] = { ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
					    "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN",
					    NULL };

/* Go's strconv.ParseInt(s, 0, 64): optional sign, then 0x/0o/0b prefixes or a leading 0
 * for octal. */
static bool parse_go_int(const char *s, long long *out)
{
	bool neg = false;
	int base = 10;
	unsigned long long v = 0, limit;

	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!*s)
		return false;
	if (s[0] == '0' && s[1]) {
		switch (s[1]) {
		case 'x':
		case 'X':
			base = 16, s += 2;
			break;
		case 'o':
		case 'O':
			base = 8, s += 2;
			break;
		case 'b':
		case 'B':
			base = 2, s += 2;
			break;
		default:
			base = 8, s += 1;
		}
		if (!*s)
			return false;
	}
	limit = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
	for (; *s; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return false;
		if (d >= base)
			return false;
		if (v > (limit - (unsigned long long)d) / (unsigned long long)base)
			return false;
		v = v * (unsigned long long)base + (unsigned long long)d;
	}
	*out = neg ? (long long)(0 - v) : (long long)v;
	return true;
}

/* ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ (go-yaml's yamlStyleFloat) */
static bool yaml_style_float(const char *s)
{
	size_t n;
	if (*s == '+' || *s == '-')
		s++;
	if (*s == '.') {
		s++;
		for (n = 0; *s >= '0' && *s <= '9'; s++)
			n++;
		if (!n)
			return false;
	} else {
		for (n = 0; *s >= '0' && *s <= '9'; s++)
			n++;
		if (!n)
			return false;
		if (*s == '.')
			for (s++; *s >= '0' && *s <= '9'; s++)
				;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		for (n = 0; *s >= '0' && *s <= '9'; s++)
			n++;
		if (!n)
			return false;
	}
	return *s == '\0';
}

json_t *yj_plain_scalar(const char *s, size_t len)
{
	char buf[128];
	size_t n = 0;
	long long iv;

	if (len == 0 || str_in(s, len, yj_null))
		return json_null();
	if (str_in(s, len, yj_true))
		return json_true();
	if (str_in(s, len, yj_false))
		return json_false();
	if (str_in(s, len, yj_nonfinite))
		return NULL;
	if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '-' || s[0] == '+' || s[0] == '.') ||
	    len >= sizeof(buf))
		return json_stringn(s, len);
	for (size_t i = 0; i < len; i++)
		if (s[i] != '_')
			buf[n++] = s[i];
	buf[n] = '\0';
	if (parse_go_int(buf, &iv))
		return json_integer(iv);
	if (yaml_style_float(buf)) {
		double d = strtod(buf, NULL);
		if (!isfinite(d))
			return NULL;
		if (d == floor(d) && fabs(d) <= 9007199254740992.0) /* 2^53: exact */
			return json_integer((json_int_t)d);
		return json_real(d);
	}
	return json_stringn(s, len);
}

/* ---- parsing ---------------------------------------------------------------------------- */

struct yj_frame {
	json_t *node;	     /* array or object being filled */
	char *key;	     /* object: the key waiting for its value */
	bool key_is_merge;   /* that key was a plain "<<" */
	yaml_mark_t key_mark;
	json_t *merged;	     /* object: keys that came from "<<" and may be overridden */
	char *anchor;	     /* anchor to register when the collection ends */
	yaml_mark_t mark;
};

struct yj_parse {
	struct yj_frame stack[YJ_MAX_DEPTH];
	int depth;
	json_t *root;	 /* the current document's root, once complete */
	json_t *anchors; /* name -> node, per document */
	size_t nodes; /* copied by aliases */
	char *err;
	size_t errlen;
};

static int yj_fail(struct yj_parse *p, yaml_mark_t m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int yj_fail(struct yj_parse *p, yaml_mark_t m, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(p->err, p->errlen, "line %zu, column %zu: ", m.line + 1, m.column + 1);
	if (n < 0 || (size_t)n >= p->errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Nodes in v, counting no further than limit. */
static size_t yj_count(const json_t *v, size_t limit)
{
	size_t n = 1, i;
	const char *k;
	json_t *c;
	if (json_is_array(v)) {
		json_array_foreach(v, i, c) {
			n += yj_count(c, limit - n);
			if (n >= limit)
				break;
		}
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, c) {
			n += yj_count(c, limit - n);
			if (n >= limit)
				break;
		}
	}
	return n;
}

/* The string a scalar mapping key stands for. */
static char *yj_key_string(const json_t *v)
{
	char buf[64];
	switch (json_typeof(v)) {
	case JSON_STRING:
		return strdup(json_string_value(v));
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return strdup(buf);
	case JSON_REAL:
		snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
		return strdup(buf);
	case JSON_TRUE:
		return strdup("true");
	case JSON_FALSE:
		return strdup("false");
	case JSON_NULL:
		return strdup("null");
	default:
		return NULL;
	}
}

/* Hands a finished node (reference stolen) to the collection on top of the stack, or makes
 * it the document's root. merge_key: the node is a plain "<<" scalar in key position. */
static int yj_add(struct yj_parse *p, json_t *v, yaml_mark_t m, bool merge_key)
{
	struct yj_frame *f;
	int rc = 0;

	if (p->depth == 0) {
		p->root = v;
		return 0;
	}
	f = &p->stack[p->depth - 1];
	if (json_is_array(f->node)) {
		if (json_array_append_new(f->node, v))
			return yj_fail(p, m, "out of memory");
		return 0;
	}
	if (!f->key) {
		f->key = yj_key_string(v);
		f->key_is_merge = merge_key;
		f->key_mark = m;
		json_decref(v);
		if (!f->key)
			return yj_fail(p, m, "a mapping key must be a scalar");
		return 0;
	}
	if (f->key_is_merge) {
		/* "<<: *base" or "<<: [*a, *b]": keys not set yet are taken from the maps. */
		json_t *src = v, *one;
		size_t i, n = json_is_array(v) ? json_array_size(v) : 1;
		for (i = 0; i < n && rc == 0; i++) {
			const char *k;
			json_t *c;
			one = json_is_array(src) ? json_array_get(src, i) : src;
			if (!json_is_object(one)) {
				rc = yj_fail(p, m, "a merge key (<<) needs a mapping or a list of mappings");
				break;
			}
			json_object_foreach(one, k, c) {
				if (json_object_get(f->node, k))
					continue;
				json_object_set(f->node, k, c);
				json_object_set_new(f->merged, k, json_true());
			}
		}
		json_decref(v);
	} else if (json_object_get(f->node, f->key) && !json_object_get(f->merged, f->key)) {
		rc = yj_fail(p, f->key_mark, "mapping key \"%s\" already defined", f->key);
		json_decref(v);
	} else {
		json_object_del(f->merged, f->key);
		if (json_object_set_new(f->node, f->key, v))
			rc = yj_fail(p, m, "out of memory");
	}
	free(f->key);
	f->key = NULL;
	f->key_is_merge = false;
	return rc;
}

static bool tag_is(const yaml_char_t *tag, const char *name)
{
	return tag && strcmp((const char *)tag, name) == 0;
}

static int yj_scalar(struct yj_parse *p, const yaml_event_t *ev)
{
	const char *val = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const yaml_char_t *tag = ev->data.scalar.tag;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	bool in_key = p->depth > 0 && json_is_object(p->stack[p->depth - 1].node) &&
		      !p->stack[p->depth - 1].key;
	json_t *v;

	if (tag && (tag_is(tag, YAML_STR_TAG) || tag_is(tag, "!")))
		plain = false;
	else if (tag_is(tag, YAML_INT_TAG) || tag_is(tag, YAML_FLOAT_TAG) ||
		 tag_is(tag, YAML_BOOL_TAG) || tag_is(tag, YAML_NULL_TAG))
		plain = true;
	if (plain) {
		v = yj_plain_scalar(val, len);
		if (!v)
			return yj_fail(p, ev->start_mark, "%.*s has no JSON representation",
				       (int)(len > 40 ? 40 : len), val);
		if ((tag_is(tag, YAML_INT_TAG) && !json_is_integer(v)) ||
		    (tag_is(tag, YAML_FLOAT_TAG) && !json_is_number(v)) ||
		    (tag_is(tag, YAML_BOOL_TAG) && !json_is_boolean(v)) ||
		    (tag_is(tag, YAML_NULL_TAG) && !json_is_null(v))) {
			json_decref(v);
			return yj_fail(p, ev->start_mark, "cannot decode %.*s as %s",
				       (int)(len > 40 ? 40 : len), val, (const char *)tag);
		}
	} else {
		v = json_stringn(val, len);
	}
	if (!v)
		return yj_fail(p, ev->start_mark, "invalid UTF-8 in scalar");
	if (ev->data.scalar.anchor)
		json_object_set(p->anchors, (const char *)ev->data.scalar.anchor, v);
	return yj_add(p, v, ev->start_mark,
		      in_key && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag &&
			      len == 2 && memcmp(val, "<<", 2) == 0);
}

static int yj_push(struct yj_parse *p, const yaml_event_t *ev, json_t *node,
		   const yaml_char_t *anchor)
{
	struct yj_frame *f;
	if (!node)
		return yj_fail(p, ev->start_mark, "out of memory");
	if (p->depth >= YJ_MAX_DEPTH) {
		json_decref(node);
		return yj_fail(p, ev->start_mark, "nested deeper than %d levels", YJ_MAX_DEPTH);
	}
	f = &p->stack[p->depth++];
	memset(f, 0, sizeof(*f));
	f->node = node;
	f->mark = ev->start_mark;
	if (json_is_object(node))
		f->merged = json_object();
	if (anchor)
		f->anchor = strdup((const char *)anchor);
	return 0;
}

static int yj_pop(struct yj_parse *p, const yaml_event_t *ev)
{
	struct yj_frame *f = &p->stack[--p->depth];
	json_t *node = f->node;
	if (f->key) {
		/* libyaml always gives a value; keep the check for safety. */
		json_object_set_new(node, f->key, json_null());
		free(f->key);
	}
	if (f->anchor)
		json_object_set(p->anchors, f->anchor, node);
	free(f->anchor);
	json_decref(f->merged);
	return yj_add(p, node, ev->start_mark, false);
}

static int yj_alias(struct yj_parse *p, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	json_t *target = json_object_get(p->anchors, name), *copy;

	if (!target)
		return yj_fail(p, ev->start_mark, "unknown anchor \"%s\" referenced", name);
	p->nodes += yj_count(target, YJ_MAX_ALIAS_NODES + 1);
	if (p->nodes > YJ_MAX_ALIAS_NODES)
		return yj_fail(p, ev->start_mark,
			       "document too large: aliases expand to over %u nodes",
			       YJ_MAX_ALIAS_NODES);
	copy = json_deep_copy(target);
	if (!copy)
		return yj_fail(p, ev->start_mark, "out of memory");
	return yj_add(p, copy, ev->start_mark, false);
}

static void yj_reset_doc(struct yj_parse *p)
{
	while (p->depth > 0) {
		struct yj_frame *f = &p->stack[--p->depth];
		json_decref(f->node);
		json_decref(f->merged);
		free(f->key);
		free(f->anchor);
	}
	json_decref(p->root);
	p->root = NULL;
	json_object_clear(p->anchors);
}

static json_t *yj_parse_yaml(const char *buf, size_t len, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct yj_parse *p;
	json_t *docs = json_array();
	bool done = false;
	int rc = 0;

	p = calloc(1, sizeof(*p));
	if (!p || !docs || !yaml_parser_initialize(&parser)) {
		free(p);
		json_decref(docs);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->anchors = json_object();
	p->err = err;
	p->errlen = errlen;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

	while (!done && rc == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			yaml_mark_t m = parser.problem_mark;
			if (parser.context)
				rc = yj_fail(p, m, "%s %s", parser.problem ? parser.problem : "error",
					     parser.context);
			else
				rc = yj_fail(p, m, "%s", parser.problem ? parser.problem : "error");
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			yj_reset_doc(p);
			break;
		case YAML_DOCUMENT_END_EVENT:
			/* Empty documents and a bare null are skipped, as kubectl does. */
			if (p->root && !json_is_null(p->root))
				json_array_append(docs, p->root);
			yj_reset_doc(p);
			break;
		case YAML_SCALAR_EVENT:
			rc = yj_scalar(p, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			rc = yj_push(p, &ev, json_array(), ev.data.sequence_start.anchor);
			break;
		case YAML_MAPPING_START_EVENT:
			rc = yj_push(p, &ev, json_object(), ev.data.mapping_start.anchor);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			rc = yj_pop(p, &ev);
			break;
		case YAML_ALIAS_EVENT:
			rc = yj_alias(p, &ev);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yj_reset_doc(p);
	json_decref(p->anchors);
	free(p);
	yaml_parser_delete(&parser);
	if (rc) {
		json_decref(docs);
		return NULL;
	}
	return docs;
}

/* A stream of JSON texts ("{...}{...}" or one per line), as kubectl accepts. NULL when the
 * input is not such a stream; err then holds jansson's message. */
static json_t *yj_parse_json(const char *buf, size_t len, char *err, size_t errlen)
{
	json_t *docs = json_array();
	size_t off = 0;

	while (docs) {
		json_error_t je;
		json_t *v;
		while (off < len && strchr(" \t\r\n", buf[off]))
			off++;
		if (off >= len)
			break;
		v = json_loadb(buf + off, len - off, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY,
			       &je);
		if (!v) {
			/* jansson counts lines from the start of this text. */
			size_t line = 1;
			for (size_t i = 0; i < off; i++)
				line += buf[i] == '\n';
			snprintf(err, errlen, "line %d, column %d: %s", je.line + (int)line - 1,
				 je.column, je.text);
			json_decref(docs);
			return NULL;
		}
		off += je.position;
		if (json_is_array(v) || json_is_object(v))
			json_array_append(docs, v);
		json_decref(v);
	}
	return docs;
}

json_t *yj_parse(const char *buf, size_t len, char *err, size_t errlen)
{
	size_t i = 0;
	json_t *docs;

	while (i < len && strchr(" \t\r\n", buf[i]))
		i++;
	if (i < len && (buf[i] == '{' || buf[i] == '[')) {
		char jerr[256];
		docs = yj_parse_json(buf, len, jerr, sizeof(jerr));
		if (docs)
			return docs;
		/* Not JSON: maybe YAML flow style. If that fails too, the JSON message is the
		 * clearer one. */
		docs = yj_parse_yaml(buf, len, err, errlen);
		if (!docs)
			snprintf(err, errlen, "%s", jerr);
		return docs;
	}
	return yj_parse_yaml(buf, len, err, errlen);
}

/* ---- emitting --------------------------------------------------------------------------- */

struct yj_out {
	char *buf;
	size_t len, cap;
};

static int yj_write(void *data, unsigned char *buffer, size_t size)
{
	struct yj_out *o = data;
	if (o->len + size + 1 > o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 1024;
		char *nb;
		while (cap < o->len + size + 1)
			cap *= 2;
		nb = realloc(o->buf, cap);
		if (!nb)
			return 0;
		o->buf = nb;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, buffer, size);
	o->len += size;
	o->buf[o->len] = '\0';
	return 1;
}

static int yj_emit_scalar(yaml_emitter_t *em, const char *s, size_t len,
			  yaml_scalar_style_t style)
{
	yaml_event_t ev;
	if (!yaml_scalar_event_initialize(&ev, NULL, (yaml_char_t *)YAML_STR_TAG,
					  (yaml_char_t *)s, (int)len, 1, 1, style))
		return -ENOMEM;
	return yaml_emitter_emit(em, &ev) ? 0 : -EIO;
}

/* YYYY-M[M]-D[D]...: a timestamp to YAML 1.1 readers (go-yaml, PyYAML), so it is quoted on
 * output as kubectl quotes it, although it reads back as a string here. */
static bool yj_looks_like_timestamp(const char *s, size_t len)
{
	size_t i = 0, n;
	for (n = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		n++;
	if (n != 4 || i >= len || s[i++] != '-')
		return false;
	for (n = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		n++;
	if (n < 1 || n > 2 || i >= len || s[i++] != '-')
		return false;
	for (n = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		n++;
	return n >= 1 && n <= 2;
}

static int yj_emit_string(yaml_emitter_t *em, const char *s, size_t len)
{
	json_t *as_plain = yj_plain_scalar(s, len);
	yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;

	if (!as_plain || !json_is_string(as_plain) || yj_looks_like_timestamp(s, len))
		style = YAML_DOUBLE_QUOTED_SCALAR_STYLE; /* "true", "0755", "" ... */
	else if (memchr(s, '\n', len))
		style = YAML_LITERAL_SCALAR_STYLE;
	json_decref(as_plain);
	return yj_emit_scalar(em, s, len, style);
}

static int yj_emit_node(yaml_emitter_t *em, const json_t *v, int depth)
{
	yaml_event_t ev;
	char buf[64];
	const char *k;
	json_t *c;
	size_t i;
	int rc = 0;

	if (depth > YJ_MAX_DEPTH)
		return -ELOOP;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
							 json_object_size(v) ?
								 YAML_BLOCK_MAPPING_STYLE :
								 YAML_FLOW_MAPPING_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return -EIO;
		json_object_foreach((json_t *)v, k, c) {
			rc = yj_emit_string(em, k, strlen(k));
			if (!rc)
				rc = yj_emit_node(em, c, depth + 1);
			if (rc)
				return rc;
		}
		if (!yaml_mapping_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev))
			return -EIO;
		return 0;
	case JSON_ARRAY:
		if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
							  json_array_size(v) ?
								  YAML_BLOCK_SEQUENCE_STYLE :
								  YAML_FLOW_SEQUENCE_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return -EIO;
		json_array_foreach(v, i, c) {
			rc = yj_emit_node(em, c, depth + 1);
			if (rc)
				return rc;
		}
		if (!yaml_sequence_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev))
			return -EIO;
		return 0;
	case JSON_STRING:
		return yj_emit_string(em, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return yj_emit_scalar(em, buf, strlen(buf), YAML_PLAIN_SCALAR_STYLE);
	case JSON_REAL: {
		char *s = json_dumps(v, JSON_ENCODE_ANY);
		if (!s)
			return -ENOMEM;
		rc = yj_emit_scalar(em, s, strlen(s), YAML_PLAIN_SCALAR_STYLE);
		free(s);
		return rc;
	}
	case JSON_TRUE:
		return yj_emit_scalar(em, "true", 4, YAML_PLAIN_SCALAR_STYLE);
	case JSON_FALSE:
		return yj_emit_scalar(em, "false", 5, YAML_PLAIN_SCALAR_STYLE);
	case JSON_NULL:
		return yj_emit_scalar(em, "null", 4, YAML_PLAIN_SCALAR_STYLE);
	}
	return -EINVAL;
}

char *yj_emit(const json_t *v)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	struct yj_out out = { 0 };
	int rc = -EIO;

	if (!v) {
		errno = EINVAL;
		return NULL;
	}
	if (!yaml_emitter_initialize(&em)) {
		errno = ENOMEM;
		return NULL;
	}
	yaml_emitter_set_output(&em, yj_write, &out);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_indent(&em, 2);
	yaml_emitter_set_width(&em, -1);
	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) ||
	    !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
	    !yaml_emitter_emit(&em, &ev))
		goto out;
	rc = yj_emit_node(&em, v, 0);
	if (rc)
		goto out;
	rc = -EIO;
	if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(&em, &ev))
		goto out;
	if (!yaml_emitter_flush(&em))
		goto out;
	rc = 0;
out:
	yaml_emitter_delete(&em);
	if (rc) {
		free(out.buf);
		errno = -rc;
		return NULL;
	}
	return out.buf ? out.buf : strdup("");
}
