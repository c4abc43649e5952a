// SPDX-License-Identifier: Apache-2.0
/* shoalctl without a server: argument parsing, AGE as kubectl writes it, tables rendered from
 * fixture objects, the client-side apply merge, and reading manifests from files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "shoal_test.h"

/* 2026-11-23T13:00:00Z: the fixtures' creation times are relative to it. */
#define NOW ((time_t)1795438800)

static void test_ctl_age_like_kubectl(void **state)
{
	(void)state;
	static const struct {
		long long s;
		const char *want;
	} cases[] = {
		{ -5, "<invalid>" },   { -1, "0s" },	     { 0, "0s" },	    { 59, "59s" },
		{ 119, "119s" },       { 120, "2m" },	     { 150, "2m30s" },	    { 599, "9m59s" },
		{ 600, "10m" },	       { 10799, "179m" },    { 10800, "3h" },	    { 11000, "3h3m" },
		{ 28799, "7h59m" },    { 28800, "8h" },	     { 172799, "47h" },	    { 172800, "2d" },
		{ 190800, "2d5h" },    { 691199, "7d23h" },  { 691200, "8d" },	    { 63071999, "729d" },
		{ 63072000, "2y" },    { 63331200, "2y3d" }, { 252288000, "8y" },
	};
	char buf[32];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ctl_age(cases[i].s, buf, sizeof(buf));
		if (strcmp(buf, cases[i].want) != 0)
			fail_msg("age of %llds: want %s, got %s", cases[i].s, cases[i].want, buf);
	}
}

static void test_ctl_since_reads_rfc3339(void **state)
{
	(void)state;
	assert_int_equal(ctl_since("2026-11-23T12:59:55Z", NOW), 5);
	assert_int_equal(ctl_since("2026-11-23T12:59:55.123456Z", NOW), 5);
	assert_int_equal(ctl_since("2026-11-23T10:00:00+01:00", NOW), 4 * 3600);
	assert_int_equal(ctl_since("2026-11-23T08:00:00-05:00", NOW), 0);
	assert_int_equal(ctl_since("yesterday", NOW), -1);
	assert_int_equal(ctl_since("2026-11-23T12:59:55", NOW), -1);
	assert_int_equal(ctl_since(NULL, NOW), -1);
}

static void test_ctl_json_path_walks_maps_and_lists(void **state)
{
	(void)state;
	json_t *o = json_loads("{\"spec\": {\"ports\": [{\"port\": 80}, {\"port\": 443}]},"
			       " \"metadata\": {\"labels\": {\"app\": \"web\"}}}",
			       0, NULL);
	assert_int_equal(json_integer_value(ctl_json_path(o, "spec.ports[1].port")), 443);
	assert_string_equal(json_string_value(ctl_json_path(o, "metadata.labels.app")), "web");
	assert_null(ctl_json_path(o, "spec.ports[2].port"));
	assert_null(ctl_json_path(o, "spec.missing.deeper"));
	json_decref(o);
}

/* ---- a kind like the registry's Deployment ---- */

static void col_ready(const json_t *obj, char *buf, size_t len)
{
	snprintf(buf, len, "%lld/%lld",
		 (long long)json_integer_value(ctl_json_path(obj, "status.readyReplicas")),
		 (long long)json_integer_value(ctl_json_path(obj, "spec.replicas")));
}

static void col_age_wrong(const json_t *obj, char *buf, size_t len)
{
	(void)obj;
	snprintf(buf, len, "clock-dependent"); /* ctl computes AGE itself, from c->now */
}

static void col_images(const json_t *obj, char *buf, size_t len)
{
	const json_t *cs = ctl_json_path(obj, "spec.template.spec.containers"), *c;
	size_t i, off = 0;
	buf[0] = '\0';
	json_array_foreach(cs, i, c)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "",
					json_string_value(json_object_get(c, "image")));
}

static const struct api_column deploy_cols[] = {
	{ .header = "NAME", .path = "metadata.name" },
	{ .header = "READY", .format = col_ready },
	{ .header = "UP-TO-DATE", .path = "status.updatedReplicas" },
	{ .header = "AVAILABLE", .path = "status.availableReplicas" },
	{ .header = "AGE", .format = col_age_wrong },
	{ .header = "IMAGES", .format = col_images, .wide = true },
	{ .header = "SELECTOR", .path = "spec.selector.matchLabels", .wide = true },
	{ NULL },
};

static const struct api_kind deploy_kind = {
	.kind = "Deployment",
	.resource = "deployments",
	.singular = "deployment",
	.group = "apps",
	.version = "v1",
	.namespaced = true,
	.scale_path = "spec.replicas",
	.columns = deploy_cols,
};

static const struct api_kind node_kind = {
	.kind = "Node", .resource = "nodes", .singular = "node", .group = "", .version = "v1",
};

static json_t *fixture_items(void)
{
	json_error_t je;
	json_t *list = json_load_file("tests/fixtures/ctl_deployments.json", 0, &je);
	if (!list)
		fail_msg("fixture: %s:%d: %s", je.source, je.line, je.text);
	json_t *items = json_incref(json_object_get(list, "items"));
	json_decref(list);
	return items;
}

static char *render(const struct api_kind *k, const json_t *items, enum ctl_output out,
		    unsigned flags)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(ctl_print_objects(f, k, items, out, flags, NOW), 0);
	fclose(f);
	return buf;
}

static void test_ctl_table_from_fixture(void **state)
{
	(void)state;
	json_t *items = fixture_items();
	char *s = render(&deploy_kind, items, CTL_OUT_TABLE, 0);
	assert_string_equal(s, "NAME                 READY   UP-TO-DATE   AVAILABLE   AGE\n"
			       "web                  2/3     3            2           5s\n"
			       "a-much-longer-name   10/10   10           10          2d4h\n"
			       "db                   0/0     <none>       <none>      4h\n");
	free(s);
	s = render(&deploy_kind, items, CTL_OUT_TABLE, CTL_PRINT_NS);
	assert_string_equal(s,
			    "NAMESPACE   NAME                 READY   UP-TO-DATE   AVAILABLE   AGE\n"
			    "default     web                  2/3     3            2           5s\n"
			    "prod        a-much-longer-name   10/10   10           10          2d4h\n"
			    "default     db                   0/0     <none>       <none>      4h\n");
	free(s);
	json_decref(items);
}

static void test_ctl_table_kind_prefix_for_several_kinds(void **state)
{
	(void)state;
	json_t *items = fixture_items();
	json_array_remove(items, 2);
	json_array_remove(items, 1);
	char *s = render(&deploy_kind, items, CTL_OUT_TABLE, CTL_PRINT_KIND_PREFIX);
	assert_string_equal(s, "NAME                  READY   UP-TO-DATE   AVAILABLE   AGE\n"
			       "deployment.apps/web   2/3     3            2           5s\n");
	free(s);
	json_decref(items);
}

static void test_ctl_wide_table_adds_wide_columns(void **state)
{
	(void)state;
	json_t *items = fixture_items();
	char *s = render(&deploy_kind, items, CTL_OUT_WIDE, 0);
	assert_string_equal(s, "NAME                 READY   UP-TO-DATE   AVAILABLE   AGE    "
			       "IMAGES                  SELECTOR\n"
			       "web                  2/3     3            2           5s     "
			       "debian:bookworm         app=web\n"
			       "a-much-longer-name   10/10   10           10          2d4h   "
			       "shoal/api:1.2,busybox   <none>\n"
			       "db                   0/0     <none>       <none>      4h     "
			       "<none>                  <none>\n");
	free(s);
	json_decref(items);
}

static void test_ctl_table_without_registry_columns(void **state)
{
	(void)state;
	json_t *items = json_loads("[{\"metadata\": {\"name\": \"n1\", \"creationTimestamp\":"
				   " \"2026-11-19T13:00:00Z\"}}]",
				   0, NULL);
	char *s = render(&node_kind, items, CTL_OUT_TABLE, 0);
	assert_string_equal(s, "NAME   AGE\n"
			       "n1     4d\n");
	free(s);
	json_decref(items);
}

static void test_ctl_table_columns_as_the_registry_lists_them(void **state)
{
	(void)state;
	static const struct api_column ev_cols[] = {
		{ .header = "TYPE", .path = "type" },
		{ .header = "REASON", .path = "reason" },
		{ .header = "MESSAGE", .path = "message" },
		{ NULL },
	};
	static const struct api_kind ev_kind = { .kind = "Event", .resource = "events",
						 .singular = "event", .group = "", .version = "v1",
						 .namespaced = true, .columns = ev_cols };
	json_t *items = json_loads("[{\"metadata\": {\"name\": \"e1\", \"namespace\": \"a\"},"
				   " \"type\": \"Normal\", \"reason\": \"Scaled\","
				   " \"message\": \"up to 3\"}]",
				   0, NULL);
	char *s = render(&ev_kind, items, CTL_OUT_TABLE, CTL_PRINT_NS);
	assert_string_equal(s, "NAMESPACE   TYPE     REASON   MESSAGE\n"
			       "a           Normal   Scaled   up to 3\n");
	free(s);
	json_decref(items);
}

static void test_ctl_output_name_and_refs(void **state)
{
	(void)state;
	json_t *items = fixture_items();
	char *s = render(&deploy_kind, items, CTL_OUT_NAME, 0), buf[128];
	assert_string_equal(s, "deployment.apps/web\n"
			       "deployment.apps/a-much-longer-name\n"
			       "deployment.apps/db\n");
	free(s);
	assert_string_equal(ctl_ref(&node_kind, "n1", buf, sizeof(buf)), "node/n1");
	assert_string_equal(ctl_resource_name(&deploy_kind, buf, sizeof(buf)), "deployments.apps");
	json_decref(items);
}

static void test_ctl_output_yaml_documents(void **state)
{
	(void)state;
	json_t *items = json_loads("[{\"a\": 1}, {\"b\": \"on\"}]", 0, NULL);
	char *s = render(&node_kind, items, CTL_OUT_YAML, 0);
	assert_string_equal(s, "a: 1\n---\nb: \"on\"\n");
	free(s);
	json_decref(items);
}

/* ---- arguments ---- */

static int parse(struct ctl_opts *o, char *err, const char *const *args)
{
	static char *argv[32];
	int argc = 0;
	argv[argc++] = "shoalctl";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	return ctl_parse_args(argc, argv, o, err, 256);
}

static void test_ctl_args_flags_anywhere(void **state)
{
	(void)state;
	struct ctl_opts o;
	char err[256] = "";
	unsetenv("SHOAL_SERVER");
	unsetenv("SHOAL_TOKEN");
	unsetenv("SHOAL_NAMESPACE");
	assert_int_equal(parse(&o, err, (const char *[]){ "get", "pods", "-n", "kube-system",
							  "web", "-o", "wide", "-l", "app=web",
							  NULL }),
			 0);
	assert_string_equal(o.verb, "get");
	assert_int_equal(o.nargs, 2);
	assert_string_equal(o.args[0], "pods");
	assert_string_equal(o.args[1], "web");
	assert_string_equal(o.ns, "kube-system");
	assert_true(o.ns_given);
	assert_int_equal(o.output, CTL_OUT_WIDE);
	assert_string_equal(o.selector, "app=web");
	assert_string_equal(o.server, CTL_DEFAULT_SERVER);
	assert_null(o.token);

	assert_int_equal(parse(&o, err, (const char *[]){ "--server", "unix:/tmp/s", "--token=abc",
							  "apply", "-f", "a.yaml", "-f", "-",
							  NULL }),
			 0);
	assert_string_equal(o.server, "unix:/tmp/s");
	assert_string_equal(o.token, "abc");
	assert_int_equal(o.nfiles, 2);
	assert_string_equal(o.files[1], "-");
	assert_string_equal(o.ns, "default");
	assert_false(o.ns_given);

	assert_int_equal(parse(&o, err, (const char *[]){ "scale", "deploy/web", "--replicas", "5",
							  NULL }),
			 0);
	assert_int_equal(o.replicas, 5);
	assert_int_equal(parse(&o, err, (const char *[]){ "delete", "po", "x", "--grace-period=0",
							  NULL }),
			 0);
	assert_int_equal(o.grace, 0);
	assert_int_equal(parse(&o, err, (const char *[]){ "get", "po", "-A", "-w",
							  "--request-timeout", "2m", NULL }),
			 0);
	assert_true(o.all_ns);
	assert_true(o.watch);
	assert_int_equal(o.timeout_s, 120);
}

static void test_ctl_args_environment_defaults(void **state)
{
	(void)state;
	struct ctl_opts o;
	char err[256];
	setenv("SHOAL_SERVER", "http://127.0.0.1:6443", 1);
	setenv("SHOAL_TOKEN", "t0k", 1);
	assert_int_equal(parse(&o, err, (const char *[]){ "get", "nodes", NULL }), 0);
	assert_string_equal(o.server, "http://127.0.0.1:6443");
	assert_string_equal(o.token, "t0k");
	assert_int_equal(parse(&o, err, (const char *[]){ "--server", "unix:/x", "get", "no",
							  NULL }),
			 0);
	assert_string_equal(o.server, "unix:/x");
	unsetenv("SHOAL_SERVER");
	unsetenv("SHOAL_TOKEN");
}

static void test_ctl_args_errors_name_the_problem(void **state)
{
	(void)state;
	static const struct {
		const char *args[6];
		const char *want;
	} cases[] = {
		{ { "get", "po", "-o", "table", NULL }, "unknown output format \"table\"" },
		{ { "frobnicate", NULL }, "unknown command \"frobnicate\"" },
		{ { "get", "po", "--replicas", "3", NULL }, "get does not take --replicas" },
		{ { "scale", "deploy", "x", "--replicas", "-1", NULL },
		  "--replicas needs a non-negative integer" },
		{ { "apply", "-w", NULL }, "apply does not take -w/--watch" },
		{ { "get", "po", "--bogus", NULL }, "unknown option --bogus" },
		{ { "get", "po", "-n", NULL }, "option -n needs a value" },
		{ { "get", "po", "-w", "-o", "name", NULL }, "-w does not work with -o name" },
		{ { "delete", "po", "x", "--grace-period", "soon", NULL },
		  "--grace-period needs an integer" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_opts o;
		char err[256] = "";
		if (parse(&o, err, cases[i].args) == 0)
			fail_msg("case %zu parsed, wanted error %s", i, cases[i].want);
		if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("case %zu: want \"%s\", got \"%s\"", i, cases[i].want, err);
	}
}

/* ---- apply merge ---- */

static json_t *J(const char *s)
{
	json_error_t je;
	json_t *v = json_loads(s, 0, &je);
	if (!v)
		fail_msg("bad JSON in test: %s", je.text);
	return v;
}

static void expect_merge(const char *live, const char *last, const char *given, const char *want)
{
	json_t *l = J(live), *la = last ? J(last) : NULL, *g = J(given), *w = J(want);
	json_t *got = ctl_apply_merge(l, la, g);
	if (!ctl_json_same(got, w)) {
		char *s = json_dumps(got, JSON_COMPACT);
		print_error("want %s\ngot  %s\n", want, s);
		free(s);
		fail();
	}
	json_decref(l);
	json_decref(la);
	json_decref(g);
	json_decref(w);
	json_decref(got);
}

static void test_ctl_apply_keeps_fields_the_server_set(void **state)
{
	(void)state;
	/* clusterIP, a port's nodePort and status come from the server: an apply that does not
	 * mention them keeps them. */
	expect_merge("{\"spec\": {\"type\": \"NodePort\", \"clusterIP\": \"10.96.0.10\","
		     " \"ports\": [{\"port\": 80, \"targetPort\": 8080, \"nodePort\": 30080,"
		     " \"protocol\": \"TCP\"}]}, \"status\": {\"x\": 1}}",
		     NULL,
		     "{\"spec\": {\"type\": \"NodePort\", \"ports\": [{\"port\": 80,"
		     " \"targetPort\": 8081}]}}",
		     "{\"spec\": {\"type\": \"NodePort\", \"clusterIP\": \"10.96.0.10\","
		     " \"ports\": [{\"port\": 80, \"targetPort\": 8081, \"nodePort\": 30080,"
		     " \"protocol\": \"TCP\"}]}, \"status\": {\"x\": 1}}");
}

static void test_ctl_apply_drops_what_the_last_apply_set(void **state)
{
	(void)state;
	expect_merge("{\"metadata\": {\"labels\": {\"app\": \"web\", \"tier\": \"front\","
		     " \"added-by-hand\": \"x\"}}, \"spec\": {\"paused\": true, \"replicas\": 3}}",
		     "{\"metadata\": {\"labels\": {\"app\": \"web\", \"tier\": \"front\"}},"
		     " \"spec\": {\"paused\": true, \"replicas\": 3}}",
		     "{\"metadata\": {\"labels\": {\"app\": \"web\"}}, \"spec\": {\"replicas\": 3}}",
		     "{\"metadata\": {\"labels\": {\"app\": \"web\", \"added-by-hand\": \"x\"}},"
		     " \"spec\": {\"replicas\": 3}}");
}

static void test_ctl_apply_merges_containers_by_name(void **state)
{
	(void)state;
	expect_merge("{\"containers\": [{\"name\": \"a\", \"image\": \"x:1\", \"imagePullPolicy\":"
		     " \"IfNotPresent\"}, {\"name\": \"b\", \"image\": \"y\"},"
		     " {\"name\": \"injected\", \"image\": \"z\"}]}",
		     "{\"containers\": [{\"name\": \"a\", \"image\": \"x:1\"}, {\"name\": \"b\","
		     " \"image\": \"y\"}]}",
		     "{\"containers\": [{\"name\": \"a\", \"image\": \"x:2\"}]}",
		     "{\"containers\": [{\"name\": \"a\", \"image\": \"x:2\", \"imagePullPolicy\":"
		     " \"IfNotPresent\"}, {\"name\": \"injected\", \"image\": \"z\"}]}");
	/* Lists without a key are replaced. */
	expect_merge("{\"args\": [\"a\", \"b\"]}", NULL, "{\"args\": [\"c\"]}", "{\"args\": [\"c\"]}");
}

static void test_ctl_apply_unchanged_when_nothing_differs(void **state)
{
	(void)state;
	json_t *live = J("{\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\", \"metadata\":"
			 " {\"name\": \"web\", \"uid\": \"u1\", \"resourceVersion\": \"7\"},"
			 " \"spec\": {\"replicas\": 3, \"x\": 1.0}, \"status\": {\"replicas\": 3}}");
	json_t *given = J("{\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\", \"metadata\":"
			  " {\"name\": \"web\"}, \"spec\": {\"replicas\": 3, \"x\": 1}}");
	json_t *m = ctl_apply_merge(live, given, given);
	assert_true(ctl_json_same(m, live));
	json_decref(m);
	json_object_set_new(json_object_get(given, "spec"), "replicas", json_integer(4));
	m = ctl_apply_merge(live, given, given);
	assert_false(ctl_json_same(m, live));
	json_decref(m);
	json_decref(live);
	json_decref(given);
}

/* ---- manifests ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_ctl_reads_manifest_directories(void **state)
{
	(void)state;
	char dir[] = "/tmp/shoal-ctl-test-XXXXXX", p[256], err[512];
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/b.yaml", dir);
	write_file(p, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n"
		      "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod,"
		      " metadata: {name: p1}}\n- {apiVersion: v1, kind: Pod, metadata: {name: p2}}\n");
	snprintf(p, sizeof(p), "%s/a.json", dir);
	write_file(p, "{\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\", \"metadata\": {\"name\": \"d\"}}");
	snprintf(p, sizeof(p), "%s/notes.txt", dir);
	write_file(p, "not a manifest");
	const char *files[] = { dir };
	json_t *objs = ctl_read_manifests(files, 1, err, sizeof(err));
	if (!objs)
		fail_msg("read: %s", err);
	assert_int_equal(json_array_size(objs), 4);
	assert_string_equal(json_string_value(ctl_json_path(json_array_get(objs, 0), "kind")),
			    "Deployment");
	assert_string_equal(json_string_value(ctl_json_path(json_array_get(objs, 3),
							    "metadata.name")),
			    "p2");
	json_decref(objs);

	snprintf(p, sizeof(p), "%s/c.yaml", dir);
	write_file(p, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n bad: indent\n");
	files[0] = p;
	assert_null(ctl_read_manifests(files, 1, err, sizeof(err)));
	char want[300];
	snprintf(want, sizeof(want), "%s: line 5, column 2:", p);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("want \"%s...\", got \"%s\"", want, err);

	write_file(p, "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {a: b}\n");
	assert_null(ctl_read_manifests(files, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "document 1 (Pod): metadata.name is required"));

	const char *cmd_fmt = "rm -rf '%s'";
	char cmd[300];
	snprintf(cmd, sizeof(cmd), cmd_fmt, dir);
	assert_int_equal(system(cmd), 0);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_ctl_age_like_kubectl),
		cmocka_unit_test(test_ctl_since_reads_rfc3339),
		cmocka_unit_test(test_ctl_json_path_walks_maps_and_lists),
		cmocka_unit_test(test_ctl_table_from_fixture),
		cmocka_unit_test(test_ctl_table_kind_prefix_for_several_kinds),
		cmocka_unit_test(test_ctl_wide_table_adds_wide_columns),
		cmocka_unit_test(test_ctl_table_without_registry_columns),
		cmocka_unit_test(test_ctl_table_columns_as_the_registry_lists_them),
		cmocka_unit_test(test_ctl_output_name_and_refs),
		cmocka_unit_test(test_ctl_output_yaml_documents),
		cmocka_unit_test(test_ctl_args_flags_anywhere),
		cmocka_unit_test(test_ctl_args_environment_defaults),
		cmocka_unit_test(test_ctl_args_errors_name_the_problem),
		cmocka_unit_test(test_ctl_apply_keeps_fields_the_server_set),
		cmocka_unit_test(test_ctl_apply_drops_what_the_last_apply_set),
		cmocka_unit_test(test_ctl_apply_merges_containers_by_name),
		cmocka_unit_test(test_ctl_apply_unchanged_when_nothing_differs),
		cmocka_unit_test(test_ctl_reads_manifest_directories))
