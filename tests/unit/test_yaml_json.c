// SPDX-License-Identifier: Apache-2.0
/* YAML <-> JSON: scalar typing as Kubernetes' decoder does it, documents, collections,
 * anchors, errors with their line and column, and YAML output that reads back the same. */
#include <stdio.h>
#include <string.h>

#include "shoal_test.h"
#include "yaml_json.h"

/* Parses src and compares the array of documents with the JSON text want. */
static void expect_docs(const char *src, const char *want)
{
	char err[256] = "";
	json_error_t je;
	json_t *got = yj_parse(src, strlen(src), err, sizeof(err));
	json_t *exp = json_loads(want, 0, &je);

	assert_non_null(exp);
	if (!got)
		fail_msg("parse of <<%s>> failed: %s", src, err);
	if (!json_equal(got, exp)) {
		char *g = json_dumps(got, JSON_COMPACT);
		print_error("source <<%s>>\n  want %s\n  got  %s\n", src, want, g);
		free(g);
		fail();
	}
	json_decref(got);
	json_decref(exp);
}

/* Parsing src fails with a message starting with want. */
static void expect_error(const char *src, const char *want)
{
	char err[256] = "";
	json_t *got = yj_parse(src, strlen(src), err, sizeof(err));
	if (got) {
		char *g = json_dumps(got, JSON_COMPACT);
		print_error("source <<%s>> parsed to %s, wanted error %s\n", src, g, want);
		free(g);
		json_decref(got);
		fail();
	}
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("source <<%s>>: want error starting \"%s\", got \"%s\"", src, want, err);
}

static void test_yaml_plain_scalars_typed_as_kubernetes(void **state)
{
	(void)state;
	static const struct {
		const char *yaml, *json;
	} cases[] = {
		{ "1", "1" },
		{ "-2", "-2" },
		{ "+3", "3" },
		{ "0", "0" },
		{ "0755", "493" }, /* go-yaml: leading 0 is octal */
		{ "0o755", "493" },
		{ "0x1F", "31" },
		{ "0b101", "5" },
		{ "1_000", "1000" },
		{ "08", "8" }, /* not octal: read as the float 8 */
		{ "1e3", "1000" },
		{ "1.0", "1" },
		{ "1.5", "1.5" },
		{ ".5", "0.5" },
		{ "-1.25e-2", "-0.0125" },
		{ "9223372036854775807", "9223372036854775807" },
		{ "true", "true" },
		{ "True", "true" },
		{ "yes", "true" },
		{ "on", "true" },
		{ "y", "true" },
		{ "false", "false" },
		{ "off", "false" },
		{ "No", "false" },
		{ "null", "null" },
		{ "~", "null" },
		{ "1.2.3", "\"1.2.3\"" },
		{ "10.0.0.1", "\"10.0.0.1\"" },
		{ "2001-12-14", "\"2001-12-14\"" },
		{ "2001-12-14T21:59:43.10Z", "\"2001-12-14T21:59:43.10Z\"" },
		{ "500m", "\"500m\"" },
		{ "128Mi", "\"128Mi\"" },
		{ "-x", "\"-x\"" },
		{ "0x", "\"0x\"" },
		{ "nginx:1.25", "\"nginx:1.25\"" },
		{ "truely", "\"truely\"" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char src[128], want[160];
		snprintf(src, sizeof(src), "v: %s\n", cases[i].yaml);
		snprintf(want, sizeof(want), "[{\"v\": %s}]", cases[i].json);
		expect_docs(src, want);
	}
}

static void test_yaml_empty_value_is_null(void **state)
{
	(void)state;
	expect_docs("a:\nb: 1\n", "[{\"a\": null, \"b\": 1}]");
}

static void test_yaml_quoted_and_tagged_stay_strings(void **state)
{
	(void)state;
	expect_docs("a: \"0755\"\nb: '1e3'\nc: !!str true\nd: \"\"\ne: 'yes'\nf: \"null\"\n",
		    "[{\"a\":\"0755\",\"b\":\"1e3\",\"c\":\"true\",\"d\":\"\",\"e\":\"yes\","
		    "\"f\":\"null\"}]");
	expect_docs("a: !!int \"42\"\nb: !!float 2\n", "[{\"a\": 42, \"b\": 2}]");
}

static void test_yaml_nonfinite_floats_are_errors(void **state)
{
	(void)state;
	expect_error("a: 1\nb: .inf\n", "line 2, column 4: .inf has no JSON representation");
	expect_error("a: .NaN\n", "line 1, column 4:");
	expect_error("a: 1e999\n", "line 1, column 4:");
}

static void test_yaml_block_scalars(void **state)
{
	(void)state;
	expect_docs("cmd: |\n  echo a\n  echo b\nfolded: >\n  one\n  two\nkeep: |+\n  x\n\n",
		    "[{\"cmd\": \"echo a\\necho b\\n\", \"folded\": \"one two\\n\","
		    " \"keep\": \"x\\n\\n\"}]");
}

static void test_yaml_block_and_flow_collections(void **state)
{
	(void)state;
	expect_docs("spec:\n"
		    "  replicas: 3\n"
		    "  selector: {matchLabels: {app: web}}\n"
		    "  containers:\n"
		    "  - name: web   # trailing comment\n"
		    "    args: [\"-p\", 80, on]\n"
		    "    env: []\n"
		    "  - name: side\n"
		    "    resources: {}\n",
		    "[{\"spec\": {\"replicas\": 3, \"selector\": {\"matchLabels\": {\"app\": \"web\"}},"
		    " \"containers\": [{\"name\": \"web\", \"args\": [\"-p\", 80, true], \"env\": []},"
		    " {\"name\": \"side\", \"resources\": {}}]}}]");
	/* "y" is YAML 1.1's true, and so it is to Kubernetes. */
	expect_docs("- 1\n- - a\n  - b\n- {x: y, z: w}\n",
		    "[[1, [\"a\", \"b\"], {\"x\": true, \"z\": \"w\"}]]");
}

static void test_yaml_keys_become_strings(void **state)
{
	(void)state;
	expect_docs("1: a\ntrue: b\n0x10: c\n\"quoted\": d\nnull: e\n",
		    "[{\"1\": \"a\", \"true\": \"b\", \"16\": \"c\", \"quoted\": \"d\", \"null\": \"e\"}]");
}

static void test_yaml_multiple_documents(void **state)
{
	(void)state;
	expect_docs("# leading comment\n"
		    "kind: A\n"
		    "---\n"
		    "---\n"
		    "# only a comment\n"
		    "---\n"
		    "kind: B\n"
		    "...\n"
		    "---\n"
		    "kind: C\n",
		    "[{\"kind\": \"A\"}, {\"kind\": \"B\"}, {\"kind\": \"C\"}]");
	expect_docs("", "[]");
	expect_docs("# nothing\n", "[]");
	expect_docs("---\nnull\n---\na: 1\n", "[{\"a\": 1}]");
}

static void test_yaml_anchors_aliases_and_merge(void **state)
{
	(void)state;
	expect_docs("base: &b\n  app: web\n  tier: front\n"
		    "copy: *b\n"
		    "merged:\n  <<: *b\n  tier: back\n"
		    "list: &l [1, 2]\n"
		    "again: *l\n"
		    "name: &n shoal\n"
		    "who: *n\n",
		    "[{\"base\": {\"app\": \"web\", \"tier\": \"front\"},"
		    " \"copy\": {\"app\": \"web\", \"tier\": \"front\"},"
		    " \"merged\": {\"app\": \"web\", \"tier\": \"back\"},"
		    " \"list\": [1, 2], \"again\": [1, 2], \"name\": \"shoal\", \"who\": \"shoal\"}]");
	expect_docs("a: &a {p: 1}\nb: &b {q: 2}\nc:\n  <<: [*a, *b]\n  r: 3\n",
		    "[{\"a\": {\"p\": 1}, \"b\": {\"q\": 2}, \"c\": {\"p\": 1, \"q\": 2, \"r\": 3}}]");
}

static void test_yaml_anchors_do_not_cross_documents(void **state)
{
	(void)state;
	expect_error("a: &x 1\n---\nb: *x\n", "line 3, column 4: unknown anchor \"x\"");
}

static void test_yaml_alias_bomb_is_refused(void **state)
{
	(void)state;
	char src[2048];
	int n = snprintf(src, sizeof(src), "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 10; i++)
		n += snprintf(src + n, sizeof(src) - (size_t)n,
			      "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n",
			      i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
			      i - 1);
	expect_error(src, "line ");
	char err[256];
	json_t *v = yj_parse(src, strlen(src), err, sizeof(err));
	assert_null(v);
	assert_non_null(strstr(err, "too large"));
}

static void test_yaml_syntax_errors_name_line_and_column(void **state)
{
	(void)state;
	expect_error("a: [1, 2\nb: 3\n", "line 2, column 2:");
	expect_error("metadata:\n  name: web\n labels: x\n", "line 3, column 2:");
	expect_error("a: b: c\n", "line 1, column 5:");
	expect_error("key: \"unterminated\n", "line 2, column 1:");
	expect_error("a:\n\t- b\n", "line 2, column 1:");
}

static void test_yaml_duplicate_key_is_an_error(void **state)
{
	(void)state;
	expect_error("metadata:\n  name: a\n  name: b\n",
		     "line 3, column 3: mapping key \"name\" already defined");
}

static void test_yaml_nesting_limit(void **state)
{
	(void)state;
	char *src = malloc(8192);
	size_t n = 0;
	for (int i = 0; i < 3000; i++)
		src[n++] = '[';
	for (int i = 0; i < 3000; i++)
		src[n++] = ']';
	src[n] = '\0';
	char err[256];
	json_t *v = yj_parse(src, n, err, sizeof(err));
	assert_null(v);
	/* JSON first; jansson stops at its own depth limit (2048). */
	if (!strstr(err, "line 1, column 2049"))
		fail_msg("want jansson's depth error, got %s", err);
	/* The YAML path has its own limit. */
	src[0] = ' ';
	memcpy(src, "a: ", 3);
	v = yj_parse(src, n, err, sizeof(err));
	assert_null(v);
	if (!strstr(err, "nested deeper"))
		fail_msg("want a nesting error, got %s", err);
	free(src);
}

static void test_json_stream_of_objects(void **state)
{
	(void)state;
	expect_docs("{\"kind\": \"A\"}\n{\"kind\": \"B\", \"n\": 1.5}",
		    "[{\"kind\": \"A\"}, {\"kind\": \"B\", \"n\": 1.5}]");
	expect_docs("  [1, \"x\"]", "[[1, \"x\"]]");
	/* A flow mapping that is not JSON is read as YAML. */
	expect_docs("{kind: A, m: 0x10}\n---\nkind: B\n", "[{\"kind\": \"A\", \"m\": 16}, {\"kind\": \"B\"}]");
}

static void test_json_error_names_line_and_column(void **state)
{
	(void)state;
	expect_error("{\"a\": 1}\n{\"b\": 2,\n \"c\": }\n", "line 3, column 7:");
}

/* Emitting then parsing gives back the same JSON. */
static void roundtrip(const char *json)
{
	json_error_t je;
	char err[256];
	json_t *v = json_loads(json, 0, &je), *back;
	char *y;

	assert_non_null(v);
	y = yj_emit(v);
	assert_non_null(y);
	back = yj_parse(y, strlen(y), err, sizeof(err));
	if (!back)
		fail_msg("emitted <<%s>> does not parse: %s", y, err);
	if (!json_equal(json_array_get(back, 0), v))
		fail_msg("emitted <<%s>> reads back differently", y);
	free(y);
	json_decref(back);
	json_decref(v);
}

static void test_yaml_emit_roundtrips(void **state)
{
	(void)state;
	roundtrip("{\"a\": \"true\", \"b\": \"0755\", \"c\": \"1e3\", \"d\": \"\", \"e\": \"null\","
		  " \"f\": \"~\", \"g\": \"yes\", \"h\": \"x: y\", \"i\": \"#c\", \"j\": \"- a\","
		  " \"k\": \"line1\\nline2\\n\", \"l\": \" lead\", \"m\": \"trail \", \"n\": \"*a\","
		  " \"o\": \"{x}\", \"p\": \"héllo\", \"q\": \"tab\\there\", \"r\": \"1.5\","
		  " \"s\": \"2001-12-14\", \"t\": \"2001-12-14T21:59:43Z\"}");
	roundtrip("{\"n\": [1, -2, 1.5, true, false, null, [], {}, [[1]], {\"x\": {\"y\": [\"z\"]}}]}");
	roundtrip("{\"1\": 1, \"true\": 2, \"\": 3, \"with space\": 4, \"0x10\": 5}");
}

static void test_yaml_emit_reads_like_kubectl(void **state)
{
	(void)state;
	json_error_t je;
	json_t *v = json_loads("{\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\","
			       " \"metadata\": {\"name\": \"web\", \"labels\": {\"app\": \"web\"},"
			       " \"annotations\": {}, \"creationTimestamp\": \"2026-11-23T13:00:00Z\"},"
			       " \"spec\": {\"replicas\": 3, \"template\": {\"spec\": {\"containers\":"
			       " [{\"name\": \"web\", \"command\": [\"/bin/sh\", \"-c\"],"
			       " \"ports\": [{\"containerPort\": 8080}]}]}}, \"paused\": false,"
			       " \"version\": \"1.10\"}}",
			       0, &je);
	char *y = yj_emit(v);
	assert_string_equal(y, "apiVersion: apps/v1\n"
			       "kind: Deployment\n"
			       "metadata:\n"
			       "  name: web\n"
			       "  labels:\n"
			       "    app: web\n"
			       "  annotations: {}\n"
			       "  creationTimestamp: \"2026-11-23T13:00:00Z\"\n"
			       "spec:\n"
			       "  replicas: 3\n"
			       "  template:\n"
			       "    spec:\n"
			       "      containers:\n"
			       "      - name: web\n"
			       "        command:\n"
			       "        - /bin/sh\n"
			       "        - -c\n"
			       "        ports:\n"
			       "        - containerPort: 8080\n"
			       "  paused: false\n"
			       "  version: \"1.10\"\n");
	free(y);
	json_decref(v);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_yaml_plain_scalars_typed_as_kubernetes),
		cmocka_unit_test(test_yaml_empty_value_is_null),
		cmocka_unit_test(test_yaml_quoted_and_tagged_stay_strings),
		cmocka_unit_test(test_yaml_nonfinite_floats_are_errors),
		cmocka_unit_test(test_yaml_block_scalars),
		cmocka_unit_test(test_yaml_block_and_flow_collections),
		cmocka_unit_test(test_yaml_keys_become_strings),
		cmocka_unit_test(test_yaml_multiple_documents),
		cmocka_unit_test(test_yaml_anchors_aliases_and_merge),
		cmocka_unit_test(test_yaml_anchors_do_not_cross_documents),
		cmocka_unit_test(test_yaml_alias_bomb_is_refused),
		cmocka_unit_test(test_yaml_syntax_errors_name_line_and_column),
		cmocka_unit_test(test_yaml_duplicate_key_is_an_error),
		cmocka_unit_test(test_yaml_nesting_limit),
		cmocka_unit_test(test_json_stream_of_objects),
		cmocka_unit_test(test_json_error_names_line_and_column),
		cmocka_unit_test(test_yaml_emit_roundtrips),
		cmocka_unit_test(test_yaml_emit_reads_like_kubectl))
