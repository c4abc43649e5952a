// SPDX-License-Identifier: Apache-2.0
/* JSON merge patch (RFC 7386, its appendix A examples), merge diffs and JSON equality. */
#include "shoal_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_merge.h"

static json_t *J(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (!j)
		fail_msg("bad fixture %s: %s", s, e.text);
	return j;
}

static void expect_patch(const char *target, const char *patch, const char *want)
{
	json_t *t = target ? J(target) : NULL, *p = J(patch), *w = J(want);
	json_t *t_before = t ? json_deep_copy(t) : NULL;
	json_t *got = json_merge_patch(t, p);
	assert_non_null(got);
	if (!json_merge_equal(got, w)) {
		char *gs = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS);
		fail_msg("patch %s on %s: got %s, want %s", patch, target ? target : "(none)", gs,
			 want);
	}
	/* the target is never changed */
	if (t)
		assert_true(json_equal(t, t_before));
	json_decref(got);
	json_decref(t);
	json_decref(t_before);
	json_decref(p);
	json_decref(w);
}

static void test_merge_patch_rfc7386_examples(void **state)
{
	(void)state;
	expect_patch("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	expect_patch("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
	expect_patch("{\"a\":\"b\"}", "{\"a\":null}", "{}");
	expect_patch("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
	expect_patch("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	expect_patch("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
	expect_patch("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
		     "{\"a\":{\"b\":\"d\"}}");
	expect_patch("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
	expect_patch("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
	expect_patch("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
	expect_patch("{\"a\":\"foo\"}", "null", "null");
	expect_patch("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"");
	expect_patch("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
	expect_patch("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
	expect_patch("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
	expect_patch(NULL, "{\"a\":{\"b\":null,\"c\":1}}", "{\"a\":{\"c\":1}}");
}

static void test_merge_patch_kubernetes_shapes(void **state)
{
	(void)state;
	/* scale a deployment, drop a label, keep everything else */
	expect_patch("{\"metadata\":{\"name\":\"web\",\"labels\":{\"app\":\"web\",\"x\":\"1\"}},"
		     "\"spec\":{\"replicas\":3,\"template\":{\"spec\":{\"containers\":[{\"name\":"
		     "\"c\",\"image\":\"a\"}]}}}}",
		     "{\"metadata\":{\"labels\":{\"x\":null}},\"spec\":{\"replicas\":5}}",
		     "{\"metadata\":{\"name\":\"web\",\"labels\":{\"app\":\"web\"}},"
		     "\"spec\":{\"replicas\":5,\"template\":{\"spec\":{\"containers\":[{\"name\":"
		     "\"c\",\"image\":\"a\"}]}}}}");
}

static void test_merge_patch_result_is_independent(void **state)
{
	(void)state;
	json_t *t = J("{\"spec\":{\"a\":{\"b\":1}},\"keep\":{\"x\":[1,2]}}");
	json_t *p = J("{\"spec\":{\"c\":2}}");
	json_t *r = json_merge_patch(t, p);
	assert_non_null(r);
	/* changing the result must not reach into the target */
	json_object_set_new(json_object_get(json_object_get(r, "spec"), "a"), "b",
			    json_integer(9));
	json_array_append_new(json_object_get(json_object_get(r, "keep"), "x"), json_integer(3));
	json_t *want = J("{\"spec\":{\"a\":{\"b\":1}},\"keep\":{\"x\":[1,2]}}");
	assert_true(json_equal(t, want));
	json_decref(want);
	json_decref(r);
	json_decref(t);
	json_decref(p);
	assert_null(json_merge_patch(NULL, NULL));
}

static void test_merge_patch_equal_ignores_key_order(void **state)
{
	(void)state;
	json_t *a = J("{\"a\":1,\"b\":{\"x\":[1,{\"p\":true,\"q\":null}],\"y\":\"s\"}}");
	json_t *b = J("{\"b\":{\"y\":\"s\",\"x\":[1,{\"q\":null,\"p\":true}]},\"a\":1.0}");
	json_t *c = J("{\"b\":{\"y\":\"s\",\"x\":[{\"q\":null,\"p\":true},1]},\"a\":1}");
	json_t *d = J("{\"a\":1,\"b\":{\"x\":[1,{\"p\":true,\"q\":null}],\"y\":\"t\"}}");
	json_t *e = J("{\"a\":1,\"b\":{\"x\":[1,{\"p\":true,\"q\":null}],\"y\":\"s\",\"z\":0}}");
	assert_true(json_merge_equal(a, b));
	assert_false(json_merge_equal(a, c)); /* array order matters */
	assert_false(json_merge_equal(a, d));
	assert_false(json_merge_equal(a, e));
	assert_false(json_merge_equal(e, a));
	assert_true(json_merge_equal(NULL, NULL));
	assert_false(json_merge_equal(a, NULL));
	json_t *s1 = J("\"a\\u0000b\""), *s2 = J("\"a\\u0000c\"");
	assert_false(json_merge_equal(s1, s2));
	assert_false(json_merge_equal(json_true(), json_false()));
	json_t *one = J("1"), *str1 = J("\"1\"");
	assert_false(json_merge_equal(one, str1));
	json_decref(one);
	json_decref(str1);
	json_decref(s1);
	json_decref(s2);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(d);
	json_decref(e);
}

static void test_merge_patch_diff_round_trips(void **state)
{
	(void)state;
	static const char *const pairs[][2] = {
		{ "{\"a\":1,\"b\":{\"c\":2,\"d\":3}}", "{\"a\":1,\"b\":{\"c\":4},\"e\":[1]}" },
		{ "{\"spec\":{\"replicas\":3}}", "{\"spec\":{\"replicas\":3}}" },
		{ "{}", "{\"x\":{\"y\":{\"z\":1}}}" },
		{ "{\"x\":{\"y\":1}}", "{}" },
		{ "[1]", "{\"a\":1}" },
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		json_t *from = J(pairs[i][0]), *to = J(pairs[i][1]);
		json_t *d = json_merge_diff(from, to);
		assert_non_null(d);
		json_t *r = json_merge_patch(from, d);
		if (!json_merge_equal(r, to))
			fail_msg("diff of %s -> %s does not round-trip", pairs[i][0], pairs[i][1]);
		json_decref(r);
		json_decref(d);
		json_decref(from);
		json_decref(to);
	}
	json_t *a = J("{\"spec\":{\"replicas\":3},\"m\":1}");
	json_t *d = json_merge_diff(a, a);
	assert_int_equal(json_object_size(d), 0);
	json_decref(d);
	json_decref(a);
}

/* A pod status with a null inside its conditions (which a merge patch replaces whole) is,
 * once the nulls are dropped, equal to what the API stored: a diff against it is empty. */
static void test_merge_patch_drop_nulls_matches_stored_form(void **state)
{
	(void)state;
	json_t *want = J("{\"phase\":\"Running\",\"reason\":null,\"conditions\":[{\"type\":"
			 "\"Ready\",\"status\":\"True\",\"lastProbeTime\":null}],\"x\":[null,"
			 "{\"a\":{\"b\":null,\"c\":1}}]}");
	json_t *stored = J("{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\","
			   "\"status\":\"True\"}],\"x\":[null,{\"a\":{\"c\":1}}]}");
	json_t *d = json_merge_diff(stored, want);
	assert_non_null(d);
	assert_int_not_equal(json_object_size(d), 0); /* the null in the array counts as a change */
	json_decref(d);
	json_merge_drop_nulls(want);
	if (!json_merge_equal(want, stored)) {
		char *t = json_dumps(want, JSON_COMPACT), buf[512];
		snprintf(buf, sizeof(buf), "%s", t ? t : "?");
		free(t);
		fail_msg("after dropping nulls: %s", buf);
	}
	d = json_merge_diff(stored, want);
	assert_non_null(d);
	assert_int_equal(json_object_size(d), 0);
	json_decref(d);
	json_merge_drop_nulls(NULL);
	json_t *n = json_null();
	json_merge_drop_nulls(n); /* a bare null is a value, not a member: kept */
	assert_true(json_is_null(n));
	json_decref(want);
	json_decref(stored);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_merge_patch_rfc7386_examples),
		cmocka_unit_test(test_merge_patch_kubernetes_shapes),
		cmocka_unit_test(test_merge_patch_result_is_independent),
		cmocka_unit_test(test_merge_patch_equal_ignores_key_order),
		cmocka_unit_test(test_merge_patch_diff_round_trips),
		cmocka_unit_test(test_merge_patch_drop_nulls_matches_stored_form))
