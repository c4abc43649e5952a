/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Label selectors with Kubernetes' semantics, parsed from the query-string form
 * ("app=web,tier!=db,env in (a,b),track notin (x),gpu,!spot") or from a LabelSelector JSON
 * object ({"matchLabels": {...}, "matchExpressions": [{"key","operator","values"}]}), and
 * matched against an object's labels (a JSON object of strings). Also field selectors
 * ("metadata.name=x,spec.nodeName!=") over dotted JSON paths.
 *
 * An empty selector matches everything; a NULL selector (from a null LabelSelector) matches
 * nothing, as Kubernetes' LabelSelectorAsSelector does.
 */
#ifndef SHOAL_LABELS_H
#define SHOAL_LABELS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum sel_op {
	SEL_EQ,	       /* key=v, key==v, matchLabels */
	SEL_NEQ,       /* key!=v (also matches objects without the key) */
	SEL_IN,	       /* key in (a,b) */
	SEL_NOTIN,     /* key notin (a,b) (also matches objects without the key) */
	SEL_EXISTS,    /* key */
	SEL_NOTEXISTS, /* !key */
	SEL_GT,	       /* node affinity only: integer value greater than */
	SEL_LT,	       /* node affinity only: integer value less than */
};

struct sel_req {
	char *key;
	enum sel_op op;
	char **values;
	size_t nvalues;
};

struct selector {
	struct sel_req *reqs;
	size_t n;
};

/* Parses the string form. On error returns NULL and, when err is not NULL, writes a message
 * naming the offending part into err (errlen bytes). An empty or NULL string gives an empty
 * selector. */
struct selector *selector_parse(const char *s, char *err, size_t errlen);

/* Builds a selector from a LabelSelector object into *out. Returns 0, or -EINVAL with a
 * message naming the field in err. A JSON null (or NULL) gives *out = NULL, which matches
 * nothing; {} gives an empty selector, which matches everything. allow_gt_lt admits the Gt
 * and Lt operators (node selector terms). */
int selector_from_json(const json_t *label_selector, bool allow_gt_lt, struct selector **out,
		       char *err, size_t errlen);

/* True when labels (a JSON object, or NULL for no labels) satisfy every requirement; false
 * for a NULL selector. */
bool selector_matches(const struct selector *sel, const json_t *labels);

/* True when the selector has no requirement. */
bool selector_empty(const struct selector *sel);

void selector_free(struct selector *sel);

/* Field selectors: "path=value", "path==value", "path!=value", comma-separated. Paths are
 * dotted JSON paths into the object ("metadata.name", "spec.nodeName", "status.phase"); a
 * missing field compares as "". */
struct field_selector;
struct field_selector *field_selector_parse(const char *s, const char *const *allowed_paths,
					    char *err, size_t errlen);
bool field_selector_matches(const struct field_selector *fs, const json_t *obj);
void field_selector_free(struct field_selector *fs);
/* The value an equality requirement ("path=value" or "path==value") of fs asks at path, or
 * NULL when it has none: an index can then serve only the objects with that value (the
 * whole selector still applies). */
const char *field_selector_equal_value(const struct field_selector *fs, const char *path);

/* Label key and value syntax (Kubernetes' qualified name and label value rules). Return
 * NULL when valid, or a static message saying what is wrong. */
const char *label_key_invalid(const char *key);
const char *label_value_invalid(const char *value);

#endif
