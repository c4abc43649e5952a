// SPDX-License-Identifier: Apache-2.0
/* Label selectors (string and LabelSelector forms), field selectors, label syntax. */
#include "shoal_test.h"

#include <errno.h>
#include <string.h>

#include "labels.h"

static json_t *L(const char *json)
{
	json_error_t e;
	json_t *j = json_loads(json, JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("bad fixture %s: %s", json, e.text);
	return j;
}

/* Parses sel and checks it against labels (JSON text, or NULL for none). */
static bool match(const char *sel, const char *labels)
{
	char err[256] = "";
	struct selector *s = selector_parse(sel, err, sizeof(err));
	if (!s)
		fail_msg("selector \"%s\" did not parse: %s", sel, err);
	json_t *l = labels ? L(labels) : NULL;
	bool m = selector_matches(s, l);
	json_decref(l);
	selector_free(s);
	return m;
}

static void test_labels_selector_equality(void **state)
{
	(void)state;
	const char *web = "{\"app\":\"web\",\"tier\":\"front\"}";
	assert_true(match("app=web", web));
	assert_true(match("app==web", web));
	assert_true(match("app = web , tier=front", web));
	assert_false(match("app=db", web));
	assert_false(match("app=web,tier=back", web));
	assert_true(match("app!=db", web));
	assert_false(match("app!=web", web));
	/* != matches objects without the key */
	assert_true(match("env!=prod", web));
	assert_true(match("env!=prod", NULL));
	/* "x=" selects the empty value, and only objects that have the key */
	assert_false(match("env=", web));
	assert_true(match("env=", "{\"env\":\"\"}"));
}

static void test_labels_selector_sets_and_existence(void **state)
{
	(void)state;
	const char *l = "{\"env\":\"a\",\"gpu\":\"true\"}";
	assert_true(match("env in (a,b)", l));
	assert_true(match("env in(a, b)", l));
	assert_false(match("env in (b,c)", l));
	assert_false(match("missing in (a)", l));
	assert_true(match("env notin (x,y)", l));
	assert_false(match("env notin (a)", l));
	assert_true(match("missing notin (a)", l));
	assert_true(match("gpu", l));
	assert_false(match("spot", l));
	assert_true(match("!spot", l));
	assert_false(match("!gpu", l));
	assert_true(match("app=web,tier!=db,env in (a,b),track notin (x),gpu,!spot",
			  "{\"app\":\"web\",\"tier\":\"fe\",\"env\":\"a\",\"gpu\":\"1\"}"));
	/* "in ()" is the set {""} */
	assert_true(match("env in ()", "{\"env\":\"\"}"));
	assert_false(match("env in ()", l));
}

static void test_labels_selector_gt_lt(void **state)
{
	(void)state;
	assert_true(match("cores>4", "{\"cores\":\"8\"}"));
	assert_false(match("cores>8", "{\"cores\":\"8\"}"));
	assert_true(match("cores<16", "{\"cores\":\"8\"}"));
	assert_false(match("cores<16", "{\"cores\":\"many\"}"));
	assert_false(match("cores<16", "{}"));
}

static void test_labels_selector_empty_matches_everything(void **state)
{
	(void)state;
	char err[128];
	struct selector *s = selector_parse("", err, sizeof(err));
	assert_non_null(s);
	assert_true(selector_empty(s));
	assert_true(selector_matches(s, NULL));
	selector_free(s);
	s = selector_parse(NULL, err, sizeof(err));
	assert_non_null(s);
	assert_true(selector_empty(s));
	selector_free(s);
	s = selector_parse("   ", err, sizeof(err));
	assert_non_null(s);
	assert_true(selector_empty(s));
	selector_free(s);
	/* a NULL selector matches nothing */
	assert_false(selector_matches(NULL, NULL));
	assert_false(selector_empty(NULL));
	selector_free(NULL);
}

static void test_labels_selector_rejects_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"app=web,",	    ",app",	  "app in a",	 "app in (a",	"app in (a b)",
		"app==a==b",  "!app=x",	  "app=a=b",	 "app web",	"=web",
		"app=-bad-",	    "-key=x",	  "a/b/c=x",	 "Ex.com/a=b",	"cores>x",
		"app notin",	    "(app)",	  "app=a b",	 "!",		"app in (a,b",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		struct selector *s = selector_parse(bad[i], err, sizeof(err));
		if (s) {
			selector_free(s);
			fail_msg("selector \"%s\" parsed but should not", bad[i]);
		}
		if (!err[0])
			fail_msg("selector \"%s\": no error message", bad[i]);
	}
	char err[256];
	struct selector *s = selector_parse("app in (a", err, sizeof(err));
	assert_null(s);
	assert_non_null(strstr(err, "app"));
}

static void test_labels_selector_from_json(void **state)
{
	(void)state;
	char err[256] = "";
	struct selector *s = NULL;
	json_t *j = L("{\"matchLabels\":{\"app\":\"web\"},\"matchExpressions\":["
		      "{\"key\":\"env\",\"operator\":\"In\",\"values\":[\"a\",\"b\"]},"
		      "{\"key\":\"spot\",\"operator\":\"DoesNotExist\"},"
		      "{\"key\":\"gpu\",\"operator\":\"Exists\",\"values\":[]},"
		      "{\"key\":\"track\",\"operator\":\"NotIn\",\"values\":[\"x\"]}]}");
	assert_int_equal(selector_from_json(j, false, &s, err, sizeof(err)), 0);
	assert_non_null(s);
	assert_int_equal(s->n, 5);
	json_t *l1 = L("{\"app\":\"web\",\"env\":\"b\",\"gpu\":\"\"}");
	json_t *l2 = L("{\"app\":\"web\",\"env\":\"b\",\"gpu\":\"\",\"spot\":\"1\"}");
	assert_true(selector_matches(s, l1));
	assert_false(selector_matches(s, l2));
	selector_free(s);
	json_decref(j);
	json_decref(l1);
	json_decref(l2);

	/* {} matches everything; null matches nothing */
	j = L("{}");
	assert_int_equal(selector_from_json(j, false, &s, err, sizeof(err)), 0);
	assert_non_null(s);
	assert_true(selector_empty(s));
	assert_true(selector_matches(s, NULL));
	selector_free(s);
	json_decref(j);
	j = json_null();
	s = (struct selector *)1;
	assert_int_equal(selector_from_json(j, false, &s, err, sizeof(err)), 0);
	assert_null(s);
	assert_false(selector_matches(s, NULL));
	assert_int_equal(selector_from_json(NULL, false, &s, err, sizeof(err)), 0);
	assert_null(s);
}

static void test_labels_selector_from_json_rejects_bad(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		bool gtlt;
		const char *field; /* must appear in the message */
	} bad[] = {
		{ "{\"matchLabels\":{\"app\":1}}", false, "matchLabels.app" },
		{ "{\"matchLabels\":{\"app\":\"-x\"}}", false, "matchLabels" },
		{ "{\"matchLabels\":[]}", false, "matchLabels" },
		{ "{\"matchExpressions\":{}}", false, "matchExpressions" },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}", false,
		  "matchExpressions[0].values" },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[]}]}",
		  false, "matchExpressions[0].values" },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\",\"values\":[\"x\"]}]}",
		  false, "matchExpressions[0].values" },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Equals\",\"values\":[\"x\"]}]}",
		  false, "matchExpressions[0].operator" },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Gt\",\"values\":[\"1\"]}]}",
		  false, "matchExpressions[0].operator" },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Gt\",\"values\":[\"x\"]}]}",
		  true, "matchExpressions[0].values" },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Lt\",\"values\":[\"1\",\"2\"]}]}",
		  true, "matchExpressions[0].values" },
		{ "{\"matchExpressions\":[{\"operator\":\"Exists\"}]}", false,
		  "matchExpressions[0].key" },
		{ "{\"matchExpressions\":[{\"key\":\"a b\",\"operator\":\"Exists\"}]}", false,
		  "matchExpressions[0].key" },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[1]}]}",
		  false, "matchExpressions[0].values[0]" },
		{ "\"app=web\"", false, "object" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		struct selector *s = NULL;
		json_t *j = L(bad[i].json);
		int ret = selector_from_json(j, bad[i].gtlt, &s, err, sizeof(err));
		json_decref(j);
		if (ret != -EINVAL || s) {
			selector_free(s);
			fail_msg("%s: expected -EINVAL, got %d", bad[i].json, ret);
		}
		if (!strstr(err, bad[i].field))
			fail_msg("%s: message \"%s\" does not name %s", bad[i].json, err,
				 bad[i].field);
	}
}

static void test_labels_node_selector_gt_lt_from_json(void **state)
{
	(void)state;
	char err[256];
	struct selector *s = NULL;
	json_t *j = L("{\"matchExpressions\":[{\"key\":\"cores\",\"operator\":\"Gt\","
		      "\"values\":[\"4\"]},{\"key\":\"mem\",\"operator\":\"Lt\",\"values\":[\"64\"]}],"
		      "\"matchFields\":[]}");
	assert_int_equal(selector_from_json(j, true, &s, err, sizeof(err)), 0);
	json_t *l = L("{\"cores\":\"8\",\"mem\":\"32\"}");
	assert_true(selector_matches(s, l));
	json_decref(l);
	l = L("{\"cores\":\"4\",\"mem\":\"32\"}");
	assert_false(selector_matches(s, l));
	json_decref(l);
	selector_free(s);
	json_decref(j);
}

static void test_labels_key_and_value_syntax(void **state)
{
	(void)state;
	static const char *const good_keys[] = { "app", "a", "app.kubernetes.io/name",
						 "example.com/My_Key-1", "x.y", "A9",
						 "kubernetes.io/hostname" };
	for (size_t i = 0; i < sizeof(good_keys) / sizeof(good_keys[0]); i++)
		if (label_key_invalid(good_keys[i]))
			fail_msg("key %s rejected: %s", good_keys[i], label_key_invalid(good_keys[i]));
	char long63[64], long64[65];
	memset(long63, 'a', 63);
	long63[63] = 0;
	memset(long64, 'a', 64);
	long64[64] = 0;
	assert_null(label_key_invalid(long63));
	assert_non_null(label_key_invalid(long64));
	static const char *const bad_keys[] = { "", "-app", "app-", "a b", "/app", "app/",
						"a/b/c", "Example.com/app", "ex_ample.com/app",
						"example..com/a", "a$" };
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
		if (!label_key_invalid(bad_keys[i]))
			fail_msg("key \"%s\" accepted", bad_keys[i]);
	assert_null(label_value_invalid(""));
	assert_null(label_value_invalid("v1.2_3-x"));
	assert_null(label_value_invalid(long63));
	assert_non_null(label_value_invalid(long64));
	assert_non_null(label_value_invalid("-x"));
	assert_non_null(label_value_invalid("x."));
	assert_non_null(label_value_invalid("a/b"));
	assert_non_null(label_value_invalid(NULL));
}

static void test_labels_field_selector(void **state)
{
	(void)state;
	static const char *const allowed[] = { "metadata.name", "metadata.namespace",
					       "spec.nodeName", "status.phase", NULL };
	json_t *pod = L("{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"default\"},"
			"\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"Running\"}}");
	json_t *pending = L("{\"metadata\":{\"name\":\"web-2\",\"namespace\":\"default\"},"
			    "\"spec\":{},\"status\":{\"phase\":\"Pending\"}}");
	char err[256];
	struct field_selector *fs =
		field_selector_parse("spec.nodeName=n1,status.phase==Running", allowed, err,
				     sizeof(err));
	assert_non_null(fs);
	assert_true(field_selector_matches(fs, pod));
	assert_false(field_selector_matches(fs, pending));
	field_selector_free(fs);
	/* unscheduled pods: a missing field compares as "" */
	fs = field_selector_parse("spec.nodeName=", allowed, err, sizeof(err));
	assert_non_null(fs);
	assert_false(field_selector_matches(fs, pod));
	assert_true(field_selector_matches(fs, pending));
	field_selector_free(fs);
	fs = field_selector_parse("spec.nodeName!=", allowed, err, sizeof(err));
	assert_true(field_selector_matches(fs, pod));
	assert_false(field_selector_matches(fs, pending));
	field_selector_free(fs);
	fs = field_selector_parse("metadata.name!=web-1", NULL, err, sizeof(err));
	assert_false(field_selector_matches(fs, pod));
	assert_true(field_selector_matches(fs, pending));
	field_selector_free(fs);
	/* empty selects everything */
	fs = field_selector_parse("", allowed, err, sizeof(err));
	assert_true(field_selector_matches(fs, pod));
	field_selector_free(fs);
	/* escaped comma in a value */
	json_t *odd = L("{\"metadata\":{\"name\":\"a,b\"}}");
	fs = field_selector_parse("metadata.name=a\\,b", allowed, err, sizeof(err));
	assert_non_null(fs);
	assert_true(field_selector_matches(fs, odd));
	field_selector_free(fs);
	json_decref(odd);
	/* empty terms are skipped */
	fs = field_selector_parse("metadata.name=web-1,,spec.nodeName=n1,", allowed, err,
				  sizeof(err));
	assert_non_null(fs);
	assert_true(field_selector_matches(fs, pod));
	field_selector_free(fs);
	/* paths outside the allowed list, and terms without an operator */
	assert_null(field_selector_parse("spec.hostNetwork=true", allowed, err, sizeof(err)));
	assert_non_null(strstr(err, "spec.hostNetwork"));
	assert_null(field_selector_parse("metadata.name", allowed, err, sizeof(err)));
	assert_null(field_selector_parse("=x", allowed, err, sizeof(err)));
	json_decref(pod);
	json_decref(pending);
}

/* The value an equality term asks, for indexes: "!=" terms and other paths do not count. */
static void test_labels_field_selector_equal_value(void **state)
{
	(void)state;
	char err[256];
	struct field_selector *fs = field_selector_parse(
		"status.phase!=Failed,spec.nodeName==n\\,7", NULL, err, sizeof(err));
	assert_non_null(fs);
	assert_string_equal(field_selector_equal_value(fs, "spec.nodeName"), "n,7");
	assert_null(field_selector_equal_value(fs, "status.phase"));
	assert_null(field_selector_equal_value(fs, "metadata.name"));
	field_selector_free(fs);
	fs = field_selector_parse("spec.nodeName=", NULL, err, sizeof(err));
	assert_non_null(fs);
	assert_string_equal(field_selector_equal_value(fs, "spec.nodeName"), "");
	field_selector_free(fs);
	fs = field_selector_parse("spec.nodeName!=n1", NULL, err, sizeof(err));
	assert_null(field_selector_equal_value(fs, "spec.nodeName"));
	field_selector_free(fs);
	assert_null(field_selector_equal_value(NULL, "spec.nodeName"));
}

/* Random strings over the selector alphabet: parsing never crashes, and a parsed selector
 * prints no error and matches without crashing. */
static void test_labels_selector_parser_survives_random_input(void **state)
{
	(void)state;
	static const char alphabet[] = "ab=!(),<> \tinotx9-._/\\";
	unsigned seed = 12345;
	json_t *labels = L("{\"a\":\"b\",\"in\":\"9\",\"x\":\"\"}");
	size_t parsed = 0;
	for (int iter = 0; iter < 20000; iter++) {
		char s[24];
		size_t n = (size_t)(rand_r(&seed) % (sizeof(s) - 1));
		for (size_t i = 0; i < n; i++)
			s[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		s[n] = 0;
		char err[128];
		struct selector *sel = selector_parse(s, err, sizeof(err));
		if (sel) {
			parsed++;
			selector_matches(sel, labels);
			selector_free(sel);
		}
		struct field_selector *fs = field_selector_parse(s, NULL, err, sizeof(err));
		if (fs) {
			field_selector_matches(fs, labels);
			field_selector_free(fs);
		}
	}
	json_decref(labels);
	assert_true(parsed > 0);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_labels_selector_parser_survives_random_input),
		cmocka_unit_test(test_labels_selector_equality),
		cmocka_unit_test(test_labels_selector_sets_and_existence),
		cmocka_unit_test(test_labels_selector_gt_lt),
		cmocka_unit_test(test_labels_selector_empty_matches_everything),
		cmocka_unit_test(test_labels_selector_rejects_malformed),
		cmocka_unit_test(test_labels_selector_from_json),
		cmocka_unit_test(test_labels_selector_from_json_rejects_bad),
		cmocka_unit_test(test_labels_node_selector_gt_lt_from_json),
		cmocka_unit_test(test_labels_key_and_value_syntax),
		cmocka_unit_test(test_labels_field_selector),
		cmocka_unit_test(test_labels_field_selector_equal_value))
