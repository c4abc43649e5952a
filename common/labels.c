// SPDX-License-Identifier: Apache-2.0
/*
 * Label selectors and field selectors with Kubernetes' semantics (apimachinery's
 * labels.Parse, metav1.LabelSelectorAsSelector and fields.ParseSelector).
 *
 * The string form is read by a small lexer with Kubernetes' token set (identifiers end at
 * whitespace or one of "!=(),<>"), and the parser follows its grammar:
 *
 *   selector    ::= requirement ("," requirement)*
 *   requirement ::= ["!"] KEY [ ("in" | "notin") "(" [VALUE ("," VALUE)*] ")"
 *                             | ("=" | "==" | "!=" | ">" | "<") [VALUE] ]
 *
 * so "x=" selects an empty value and "x in ()" the set {""}, as in Kubernetes. Keys and
 * values are then checked with the label syntax rules. The design choice: a requirement
 * owns copies of its strings, so a selector outlives the text or JSON it came from.
 */
#include "labels.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Label key and value syntax */

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])? */
static bool qualified_name_chars_ok(const char *s, size_t n)
{
	if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* DNS-1123 subdomain: lower-case parts [a-z0-9]([-a-z0-9]*[a-z0-9])? joined by dots, 253
 * characters in all (Kubernetes' IsDNS1123Subdomain does not limit each part). */
static bool dns1123_subdomain_ok(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		size_t l = i - start;
		if (l == 0)
			return false;
		for (size_t j = start; j < i; j++) {
			char c = s[j];
			bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
				  (c == '-' && j != start && j != i - 1);
			if (!ok)
				return false;
		}
		start = i + 1;
	}
	return true;
}

const char *label_key_invalid(const char *key)
{
	if (!key || !*key)
		return "must be a qualified name: name part must be non-empty";
	const char *slash = strchr(key, '/');
	const char *name = key;
	if (slash) {
		if (strchr(slash + 1, '/'))
			return "must be a qualified name: an optional DNS subdomain prefix and a "
			       "name "
			       "separated by one '/'";
		size_t pl = (size_t)(slash - key);
		if (pl == 0)
			return "prefix part must be non-empty";
		if (pl > 253)
			return "prefix part must be no more than 253 characters";
		if (!dns1123_subdomain_ok(key, pl))
			return "prefix part must be a lowercase RFC 1123 subdomain (e.g. "
			       "'example.com')";
		name = slash + 1;
	}
	size_t nl = strlen(name);
	if (nl == 0)
		return "name part must be non-empty";
	if (nl > 63)
		return "name part must be no more than 63 characters";
	if (!qualified_name_chars_ok(name, nl))
		return "name part must consist of alphanumeric characters, '-', '_' or '.', and "
		       "must start and end with an alphanumeric character (e.g. 'MyName', "
		       "'my.name' or '123-abc')";
	return NULL;
}

const char *label_value_invalid(const char *value)
{
	if (!value)
		return "must be a string";
	size_t n = strlen(value);
	if (n == 0)
		return NULL;
	if (n > 63)
		return "must be no more than 63 characters";
	if (!qualified_name_chars_ok(value, n))
		return "a valid label must be an empty string or consist of alphanumeric "
		       "characters, '-', '_' or '.', and must start and end with an alphanumeric "
		       "character (e.g. 'MyValue', 'my_value' or '12345')";
	return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Selector construction */

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void req_clear(struct sel_req *r)
{
	free(r->key);
	for (size_t i = 0; i < r->nvalues; i++)
		free(r->values[i]);
	free(r->values);
	memset(r, 0, sizeof(*r));
}

void selector_free(struct selector *sel)
{
	if (!sel)
		return;
	for (size_t i = 0; i < sel->n; i++)
		req_clear(&sel->reqs[i]);
	free(sel->reqs);
	free(sel);
}

bool selector_empty(const struct selector *sel)
{
	return sel && sel->n == 0;
}

static int req_add_value(struct sel_req *r, const char *v, size_t n)
{
	char **nv = realloc(r->values, (r->nvalues + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	r->values = nv;
	nv[r->nvalues] = strndup(v, n);
	if (!nv[r->nvalues])
		return -ENOMEM;
	r->nvalues++;
	return 0;
}

static int parse_int64(const char *s, int64_t *out)
{
	if (!s || !*s)
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || isspace((unsigned char)s[0]))
		return -EINVAL;
	*out = v;
	return 0;
}

static const char *op_name(enum sel_op op)
{
	switch (op) {
	case SEL_EQ:
		return "=";
	case SEL_NEQ:
		return "!=";
	case SEL_IN:
		return "in";
	case SEL_NOTIN:
		return "notin";
	case SEL_EXISTS:
		return "exists";
	case SEL_NOTEXISTS:
		return "!";
	case SEL_GT:
		return "gt";
	case SEL_LT:
		return "lt";
	}
	return "?";
}

/* Kubernetes' NewRequirement checks: key syntax, value count per operator, value syntax. */
static int req_check(const struct sel_req *r, const char *where, char *err, size_t errlen)
{
	const char *why = label_key_invalid(r->key);
	if (why) {
		seterr(err, errlen, "%skey \"%s\": %s", where, r->key, why);
		return -EINVAL;
	}
	switch (r->op) {
	case SEL_IN:
	case SEL_NOTIN:
		if (r->nvalues == 0) {
			seterr(err, errlen,
			       "%svalues: for 'in', 'notin' operators, values set can't "
			       "be empty",
			       where);
			return -EINVAL;
		}
		break;
	case SEL_EQ:
	case SEL_NEQ:
		if (r->nvalues != 1) {
			seterr(err, errlen,
			       "%svalues: exact-match compatibility requires one single "
			       "value",
			       where);
			return -EINVAL;
		}
		break;
	case SEL_EXISTS:
	case SEL_NOTEXISTS:
		if (r->nvalues != 0) {
			seterr(err, errlen,
			       "%svalues: values set must be empty for exists and does "
			       "not exist",
			       where);
			return -EINVAL;
		}
		break;
	case SEL_GT:
	case SEL_LT: {
		int64_t v;
		if (r->nvalues != 1) {
			seterr(err, errlen,
			       "%svalues: for 'Gt', 'Lt' operators, exactly one value is "
			       "required",
			       where);
			return -EINVAL;
		}
		if (parse_int64(r->values[0], &v) < 0) {
			seterr(err, errlen,
			       "%svalues[0]: for 'Gt', 'Lt' operators, the value must be "
			       "an integer, not \"%s\"",
			       where, r->values[0]);
			return -EINVAL;
		}
		return 0;
	}
	}
	for (size_t i = 0; i < r->nvalues; i++) {
		why = label_value_invalid(r->values[i]);
		if (why) {
			seterr(err, errlen, "%svalues[%zu] \"%s\": %s", where, i, r->values[i],
			       why);
			return -EINVAL;
		}
	}
	return 0;
}

static struct sel_req *sel_push(struct selector *sel)
{
	struct sel_req *nr = realloc(sel->reqs, (sel->n + 1) * sizeof(*nr));
	if (!nr)
		return NULL;
	sel->reqs = nr;
	memset(&nr[sel->n], 0, sizeof(*nr));
	return &nr[sel->n++];
}

/* ---------------------------------------------------------------------------------------- */
/* The string form */

enum tok {
	T_END,
	T_IDENT,
	T_NOT,	 /* ! */
	T_NEQ,	 /* != */
	T_EQ,	 /* = */
	T_DEQ,	 /* == */
	T_GT,	 /* > */
	T_LT,	 /* < */
	T_OPEN,	 /* ( */
	T_CLOSE, /* ) */
	T_COMMA, /* , */
	T_IN,	 /* in (only where a keyword is expected) */
	T_NOTIN, /* notin */
	T_ERROR,
};

struct lexer {
	const char *s;
	size_t pos;
	/* the last token */
	enum tok tok;
	const char *lit;
	size_t litlen;
};

static bool special(char c)
{
	return c == '!' || c == '=' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

/* Reads the next token; keywords "in" and "notin" are recognised only when keywords is
 * true (after a key), as Kubernetes' parser reads them by context. */
static enum tok lex(struct lexer *lx, bool keywords)
{
	const char *s = lx->s;
	while (s[lx->pos] && isspace((unsigned char)s[lx->pos]))
		lx->pos++;
	lx->lit = s + lx->pos;
	lx->litlen = 0;
	char c = s[lx->pos];
	if (!c)
		return lx->tok = T_END;
	if (special(c)) {
		lx->pos++;
		lx->litlen = 1;
		switch (c) {
		case '!':
			if (s[lx->pos] == '=') {
				lx->pos++;
				lx->litlen = 2;
				return lx->tok = T_NEQ;
			}
			return lx->tok = T_NOT;
		case '=':
			if (s[lx->pos] == '=') {
				lx->pos++;
				lx->litlen = 2;
				return lx->tok = T_DEQ;
			}
			return lx->tok = T_EQ;
		case '(':
			return lx->tok = T_OPEN;
		case ')':
			return lx->tok = T_CLOSE;
		case ',':
			return lx->tok = T_COMMA;
		case '>':
			return lx->tok = T_GT;
		case '<':
			return lx->tok = T_LT;
		}
	}
	size_t start = lx->pos;
	while (s[lx->pos] && !isspace((unsigned char)s[lx->pos]) && !special(s[lx->pos]))
		lx->pos++;
	lx->litlen = lx->pos - start;
	if (keywords && lx->litlen == 2 && strncmp(lx->lit, "in", 2) == 0)
		return lx->tok = T_IN;
	if (keywords && lx->litlen == 5 && strncmp(lx->lit, "notin", 5) == 0)
		return lx->tok = T_NOTIN;
	return lx->tok = T_IDENT;
}

static enum tok peek(struct lexer *lx, bool keywords)
{
	struct lexer save = *lx;
	enum tok t = lex(lx, keywords);
	*lx = save;
	return t;
}

static const char *tok_text(const struct lexer *lx, char *buf, size_t len)
{
	if (lx->tok == T_END)
		return "end of string";
	snprintf(buf, len, "'%.*s'", (int)lx->litlen, lx->lit);
	return buf;
}

static int parse_requirement(struct lexer *lx, struct sel_req *r, char *err, size_t errlen)
{
	char tb[80];
	enum tok t = lex(lx, false);
	bool negated = false;
	if (t == T_NOT) {
		negated = true;
		t = lex(lx, false);
	}
	if (t != T_IDENT) {
		seterr(err, errlen, "found %s at offset %zu, expected: identifier",
		       tok_text(lx, tb, sizeof(tb)), (size_t)(lx->lit - lx->s));
		return -EINVAL;
	}
	r->key = strndup(lx->lit, lx->litlen);
	if (!r->key)
		return -ENOMEM;
	enum tok nt = peek(lx, true);
	if (nt == T_END || nt == T_COMMA) {
		r->op = negated ? SEL_NOTEXISTS : SEL_EXISTS;
		return 0;
	}
	if (negated) {
		lex(lx, true);
		seterr(err, errlen, "found %s after '!%s', expected: ',' or end of string",
		       tok_text(lx, tb, sizeof(tb)), r->key);
		return -EINVAL;
	}
	t = lex(lx, true);
	switch (t) {
	case T_EQ:
	case T_DEQ:
		r->op = SEL_EQ;
		break;
	case T_NEQ:
		r->op = SEL_NEQ;
		break;
	case T_GT:
		r->op = SEL_GT;
		break;
	case T_LT:
		r->op = SEL_LT;
		break;
	case T_IN:
		r->op = SEL_IN;
		break;
	case T_NOTIN:
		r->op = SEL_NOTIN;
		break;
	default:
		seterr(err, errlen,
		       "found %s after key '%s', expected: in, notin, =, ==, !=, gt, lt",
		       tok_text(lx, tb, sizeof(tb)), r->key);
		return -EINVAL;
	}
	if (r->op == SEL_IN || r->op == SEL_NOTIN) {
		if (lex(lx, false) != T_OPEN) {
			seterr(err, errlen, "found %s after '%s %s', expected: '('",
			       tok_text(lx, tb, sizeof(tb)), r->key, op_name(r->op));
			return -EINVAL;
		}
		t = peek(lx, false);
		if (t == T_CLOSE) {
			lex(lx, false);
			return req_add_value(r, "", 0);
		}
		/* VALUE? ("," VALUE?)* ")" -- an empty item is the empty value */
		for (;;) {
			t = lex(lx, false);
			if (t == T_IDENT) {
				if (req_add_value(r, lx->lit, lx->litlen) < 0)
					return -ENOMEM;
				t = lex(lx, false);
			} else if (req_add_value(r, "", 0) < 0) {
				return -ENOMEM;
			}
			if (t == T_CLOSE)
				return 0;
			if (t != T_COMMA) {
				seterr(err, errlen,
				       "found %s in the values of '%s', expected: ',' or "
				       "')'",
				       tok_text(lx, tb, sizeof(tb)), r->key);
				return -EINVAL;
			}
		}
	}
	/* exact value: an identifier, or nothing before ',' or the end */
	t = peek(lx, false);
	if (t == T_END || t == T_COMMA)
		return req_add_value(r, "", 0);
	t = lex(lx, false);
	if (t != T_IDENT) {
		seterr(err, errlen, "found %s as the value of '%s', expected: identifier",
		       tok_text(lx, tb, sizeof(tb)), r->key);
		return -EINVAL;
	}
	return req_add_value(r, lx->lit, lx->litlen);
}

struct selector *selector_parse(const char *s, char *err, size_t errlen)
{
	struct selector *sel = calloc(1, sizeof(*sel));
	if (!sel) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (!s)
		return sel;
	struct lexer lx = { .s = s };
	if (peek(&lx, false) == T_END)
		return sel;
	char tb[80];
	for (;;) {
		struct sel_req *r = sel_push(sel);
		if (!r)
			goto nomem;
		int ret = parse_requirement(&lx, r, err, errlen);
		if (ret == -ENOMEM)
			goto nomem;
		if (ret < 0)
			goto fail;
		if (req_check(r, "", err, errlen) < 0)
			goto fail;
		enum tok t = lex(&lx, false);
		if (t == T_END)
			break;
		if (t != T_COMMA) {
			seterr(err, errlen, "found %s after requirement on '%s', expected: ','",
			       tok_text(&lx, tb, sizeof(tb)), r->key);
			goto fail;
		}
	}
	return sel;
nomem:
	seterr(err, errlen, "out of memory");
	selector_free(sel);
	errno = ENOMEM;
	return NULL;
fail:
	selector_free(sel);
	errno = EINVAL;
	return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The LabelSelector object */

static int op_from_json(const char *s, bool allow_gt_lt, enum sel_op *op)
{
	static const struct {
		const char *name;
		enum sel_op op;
	} ops[] = { { "In", SEL_IN },	      { "NotIn", SEL_NOTIN },
		    { "Exists", SEL_EXISTS }, { "DoesNotExist", SEL_NOTEXISTS },
		    { "Gt", SEL_GT },	      { "Lt", SEL_LT } };
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strcmp(s, ops[i].name) == 0) {
			if ((ops[i].op == SEL_GT || ops[i].op == SEL_LT) && !allow_gt_lt)
				return -EINVAL;
			*op = ops[i].op;
			return 0;
		}
	}
	return -EINVAL;
}

int selector_from_json(const json_t *ls, bool allow_gt_lt, struct selector **out, char *err,
		       size_t errlen)
{
	*out = NULL;
	if (!ls || json_is_null(ls))
		return 0;
	if (!json_is_object(ls)) {
		seterr(err, errlen, "must be an object with matchLabels and/or matchExpressions");
		return -EINVAL;
	}
	struct selector *sel = calloc(1, sizeof(*sel));
	if (!sel)
		return -ENOMEM;
	int ret = -EINVAL;
	const json_t *ml = json_object_get(ls, "matchLabels");
	if (ml && !json_is_null(ml)) {
		if (!json_is_object(ml)) {
			seterr(err, errlen, "matchLabels: must be an object of strings");
			goto fail;
		}
		const char *k;
		json_t *v;
		json_object_foreach ((json_t *)ml, k, v) {
			if (!json_is_string(v)) {
				seterr(err, errlen, "matchLabels.%s: must be a string", k);
				goto fail;
			}
			struct sel_req *r = sel_push(sel);
			if (!r || !(r->key = strdup(k)))
				goto nomem;
			r->op = SEL_EQ;
			if (req_add_value(r, json_string_value(v), json_string_length(v)) < 0)
				goto nomem;
			char where[300];
			snprintf(where, sizeof(where), "matchLabels: ");
			if (req_check(r, where, err, errlen) < 0)
				goto fail;
		}
	}
	const json_t *me = json_object_get(ls, "matchExpressions");
	if (me && !json_is_null(me)) {
		if (!json_is_array(me)) {
			seterr(err, errlen, "matchExpressions: must be an array");
			goto fail;
		}
		size_t i;
		json_t *e;
		json_array_foreach (me, i, e) {
			if (!json_is_object(e)) {
				seterr(err, errlen, "matchExpressions[%zu]: must be an object", i);
				goto fail;
			}
			const json_t *key = json_object_get(e, "key");
			const json_t *op = json_object_get(e, "operator");
			const json_t *vals = json_object_get(e, "values");
			if (!json_is_string(key)) {
				seterr(err, errlen,
				       "matchExpressions[%zu].key: Required value (a "
				       "string)",
				       i);
				goto fail;
			}
			if (!json_is_string(op)) {
				seterr(err, errlen,
				       "matchExpressions[%zu].operator: Required value (a "
				       "string)",
				       i);
				goto fail;
			}
			struct sel_req *r = sel_push(sel);
			if (!r || !(r->key = strdup(json_string_value(key))))
				goto nomem;
			if (op_from_json(json_string_value(op), allow_gt_lt, &r->op) < 0) {
				seterr(err, errlen,
				       "matchExpressions[%zu].operator: Unsupported value "
				       "\"%s\": supported values: %s",
				       i, json_string_value(op),
				       allow_gt_lt
					       ? "\"In\", \"NotIn\", \"Exists\", \"DoesNotExist\", "
						 "\"Gt\", \"Lt\""
					       : "\"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"");
				goto fail;
			}
			if (vals && !json_is_null(vals)) {
				if (!json_is_array(vals)) {
					seterr(err, errlen,
					       "matchExpressions[%zu].values: must be an "
					       "array of strings",
					       i);
					goto fail;
				}
				size_t j;
				json_t *v;
				json_array_foreach (vals, j, v) {
					if (!json_is_string(v)) {
						seterr(err, errlen,
						       "matchExpressions[%zu].values[%zu]: "
						       "must be a string",
						       i, j);
						goto fail;
					}
					if (req_add_value(r, json_string_value(v),
							  json_string_length(v)) < 0)
						goto nomem;
				}
			}
			char where[64];
			snprintf(where, sizeof(where), "matchExpressions[%zu].", i);
			if (req_check(r, where, err, errlen) < 0)
				goto fail;
		}
	}
	*out = sel;
	return 0;
nomem:
	ret = -ENOMEM;
	seterr(err, errlen, "out of memory");
fail:
	selector_free(sel);
	return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* Matching */

static bool in_values(const struct sel_req *r, const char *v)
{
	for (size_t i = 0; i < r->nvalues; i++)
		if (strcmp(r->values[i], v) == 0)
			return true;
	return false;
}

static bool req_matches(const struct sel_req *r, const json_t *labels)
{
	const json_t *jv = labels ? json_object_get(labels, r->key) : NULL;
	const char *v = json_is_string(jv) ? json_string_value(jv) : NULL;
	int64_t have, want;
	switch (r->op) {
	case SEL_EQ:
	case SEL_IN:
		return v && in_values(r, v);
	case SEL_NEQ:
	case SEL_NOTIN:
		return !v || !in_values(r, v);
	case SEL_EXISTS:
		return v != NULL;
	case SEL_NOTEXISTS:
		return v == NULL;
	case SEL_GT:
	case SEL_LT:
		if (!v || r->nvalues != 1 || parse_int64(v, &have) < 0 ||
		    parse_int64(r->values[0], &want) < 0)
			return false;
		return r->op == SEL_GT ? have > want : have < want;
	}
	return false;
}

bool selector_matches(const struct selector *sel, const json_t *labels)
{
	if (!sel)
		return false;
	if (labels && !json_is_object(labels))
		labels = NULL;
	for (size_t i = 0; i < sel->n; i++)
		if (!req_matches(&sel->reqs[i], labels))
			return false;
	return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Field selectors */

struct field_req {
	char *path;
	char *value;
	bool neq;
};

struct field_selector {
	struct field_req *reqs;
	size_t n;
};

void field_selector_free(struct field_selector *fs)
{
	if (!fs)
		return;
	for (size_t i = 0; i < fs->n; i++) {
		free(fs->reqs[i].path);
		free(fs->reqs[i].value);
	}
	free(fs->reqs);
	free(fs);
}

/* Splits at unescaped sep; a backslash escapes the next character (fields.ParseSelector's
 * escaping: "\\", "\,", "\="). Returns the unescaped piece and advances *s past sep. */
static char *take_unescaped(const char **s, const char *seps, char *found)
{
	const char *p = *s;
	size_t cap = strlen(p) + 1, n = 0;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	*found = 0;
	while (*p) {
		if (*p == '\\' && p[1]) {
			out[n++] = p[1];
			p += 2;
			continue;
		}
		if (strchr(seps, *p)) {
			*found = *p;
			break;
		}
		out[n++] = *p++;
	}
	out[n] = 0;
	*s = p;
	return out;
}

struct field_selector *field_selector_parse(const char *s, const char *const *allowed_paths,
					    char *err, size_t errlen)
{
	struct field_selector *fs = calloc(1, sizeof(*fs));
	if (!fs) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (!s || !*s)
		return fs;
	const char *p = s;
	for (;;) {
		/* one term up to an unescaped ',' */
		char sep;
		const char *term_start = p;
		/* empty terms ("a=b,,c=d", "a=b,") are skipped, as Kubernetes does */
		if (*p == ',') {
			p++;
			continue;
		}
		if (!*p)
			break;
		char *path = NULL, *value = NULL;
		bool neq = false, have_op = false;
		/* the path ends at the first unescaped '=' or '!=' */
		size_t cap = strlen(p) + 1, n = 0;
		path = malloc(cap);
		if (!path)
			goto nomem;
		while (*p && *p != ',') {
			if (*p == '\\' && p[1]) {
				path[n++] = p[1];
				p += 2;
				continue;
			}
			if (*p == '!' && p[1] == '=') {
				neq = have_op = true;
				p += 2;
				break;
			}
			if (*p == '=') {
				have_op = true;
				p += p[1] == '=' ? 2 : 1;
				break;
			}
			path[n++] = *p++;
		}
		path[n] = 0;
		if (!have_op) {
			seterr(err, errlen,
			       "invalid field selector term \"%.*s\": expected "
			       "path=value, path==value or path!=value",
			       (int)strcspn(term_start, ","), term_start);
			free(path);
			goto fail;
		}
		value = take_unescaped(&p, ",", &sep);
		if (!value) {
			free(path);
			goto nomem;
		}
		/* trim the path as Kubernetes does */
		char *ps = path;
		while (isspace((unsigned char)*ps))
			ps++;
		size_t pl = strlen(ps);
		while (pl && isspace((unsigned char)ps[pl - 1]))
			ps[--pl] = 0;
		memmove(path, ps, pl + 1);
		if (!*path) {
			seterr(err, errlen, "invalid field selector term: empty field path");
			free(path);
			free(value);
			goto fail;
		}
		if (allowed_paths) {
			bool ok = false;
			for (const char *const *a = allowed_paths; *a; a++)
				if (strcmp(*a, path) == 0)
					ok = true;
			if (!ok) {
				seterr(err, errlen, "field label not supported: %s", path);
				free(path);
				free(value);
				goto fail;
			}
		}
		struct field_req *nr = realloc(fs->reqs, (fs->n + 1) * sizeof(*nr));
		if (!nr) {
			free(path);
			free(value);
			goto nomem;
		}
		fs->reqs = nr;
		nr[fs->n++] = (struct field_req){ .path = path, .value = value, .neq = neq };
		if (sep != ',')
			break;
		p++;
	}
	return fs;
nomem:
	seterr(err, errlen, "out of memory");
	field_selector_free(fs);
	errno = ENOMEM;
	return NULL;
fail:
	field_selector_free(fs);
	errno = EINVAL;
	return NULL;
}

/* The value at a dotted path; NULL when missing. */
static const json_t *field_get(const json_t *obj, const char *path)
{
	const json_t *cur = obj;
	const char *p = path;
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
	return cur;
}

/* The text of a scalar ("" when missing or not a scalar); strings are compared directly. */
static void field_text(const json_t *cur, char *buf, size_t len)
{
	buf[0] = 0;
	if (!cur)
		return;
	if (json_is_string(cur))
		snprintf(buf, len, "%s", json_string_value(cur));
	else if (json_is_integer(cur))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(cur));
	else if (json_is_true(cur))
		snprintf(buf, len, "true");
	else if (json_is_false(cur))
		snprintf(buf, len, "false");
	else if (json_is_real(cur))
		snprintf(buf, len, "%g", json_real_value(cur));
}

bool field_selector_matches(const struct field_selector *fs, const json_t *obj)
{
	if (!fs)
		return false;
	char buf[64];
	for (size_t i = 0; i < fs->n; i++) {
		const json_t *v = field_get(obj, fs->reqs[i].path);
		const char *text = buf;
		if (json_is_string(v))
			text = json_string_value(v);
		else
			field_text(v, buf, sizeof(buf));
		bool eq = strcmp(text, fs->reqs[i].value) == 0;
		if (eq == fs->reqs[i].neq)
			return false;
	}
	return true;
}

const char *field_selector_equal_value(const struct field_selector *fs, const char *path)
{
	for (size_t i = 0; fs && i < fs->n; i++)
		if (!fs->reqs[i].neq && strcmp(fs->reqs[i].path, path) == 0)
			return fs->reqs[i].value;
	return NULL;
}
