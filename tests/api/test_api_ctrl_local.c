// SPDX-License-Identifier: Apache-2.0
/*
 * In-process API requests (controlplane/api_local.h), as shoald's controllers make them: an
 * API server in this process on a temporary store and unix socket; requests through
 * api_local_do get the HTTP path's semantics (defaults, validation, generateName, uid,
 * ClusterIP allocation, merge patch, status sub-resource, preconditions, graceful deletion),
 * block until their write commits, and what they write is what HTTP clients read.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_local.h"
#include "api_server.h"
#include "shoal_test.h"
#include "shoald_fixture.h"
#include "store.h"

static struct {
	char dir[128];
	struct store *st;
	struct api_server *srv;
	struct shoald http; /* only its socket path: the HTTP client of the fixture */
} T;

static int setup(void **state)
{
	char uri[256];
	(void)state;
	snprintf(T.dir, sizeof(T.dir), "/tmp/shoal-ctrl-local.XXXXXX");
	if (!mkdtemp(T.dir))
		return -1;
	snprintf(uri, sizeof(uri), "lmdb:%s/store", T.dir);
	T.st = store_open(uri, NULL);
	if (!T.st)
		return -1;
	snprintf(T.http.sock, sizeof(T.http.sock), "%s/api.sock", T.dir);
	char listen[400];
	snprintf(listen, sizeof(listen), "unix:%s", T.http.sock);
	struct api_server_opts o = { .listen = { listen }, .no_scheduler = 1, .no_controllers = 1 };
	T.srv = api_server_start(T.st, &o);
	return T.srv ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	(void)state;
	api_server_stop(T.srv, 1000);
	store_close(T.st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
	return system(cmd) == 0 ? 0 : -1;
}

static json_t *local(const char *method, const char *path, const char *body, long *code)
{
	json_error_t e;
	json_t *b = body ? json_loads(body, 0, &e) : NULL;
	if (body && !b)
		fail_msg("test body is not JSON: %s", e.text);
	json_t *out = api_local_json(T.srv, method, path, b, code);
	json_decref(b);
	return out;
}

static const char *str(const json_t *o, const char *a, const char *b)
{
	const json_t *x = json_object_get(o, a);
	return json_string_value(b ? json_object_get(x, b) : x);
}

#define POD(name, extra)                                                                           \
	"{\"metadata\":{\"name\":\"" name "\",\"labels\":{\"app\":\"l\"}},\"spec\":{" extra        \
	"\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}"

static void test_api_ctrl_local_create_is_what_http_reads(void **state)
{
	long code;
	(void)state;
	json_t *p = local("POST", "/api/v1/namespaces/default/pods", POD("one", ""), &code);
	assert_int_equal(code, 201);
	assert_non_null(str(p, "metadata", "uid"));
	assert_non_null(str(p, "metadata", "creationTimestamp"));
	assert_true(obj_rv(p) > 0);
	/* defaults, as over HTTP */
	assert_string_equal(str(p, "spec", "restartPolicy"), "Always");
	assert_string_equal(str(p, "status", "phase"), "Pending");

	json_t *h = http_json(&T.http, "GET", "/api/v1/namespaces/default/pods/one", NULL, &code);
	assert_int_equal(code, 200);
	assert_string_equal(str(h, "metadata", "uid"), str(p, "metadata", "uid"));
	assert_int_equal(obj_rv(h), obj_rv(p));
	json_decref(h);

	/* A get right after the write sees it (the cache holds a write before its ack). */
	json_t *g = local("GET", "/api/v1/namespaces/default/pods/one", NULL, &code);
	assert_int_equal(code, 200);
	assert_int_equal(obj_rv(g), obj_rv(p));
	json_decref(g);
	json_decref(p);

	p = local("POST", "/api/v1/namespaces/default/pods", POD("one", ""), &code);
	assert_int_equal(code, 409);
	assert_string_equal(str(p, "reason", NULL), "AlreadyExists");
	json_decref(p);
}

static void test_api_ctrl_local_generate_name_and_list(void **state)
{
	long code;
	(void)state;
	const char *body = "{\"metadata\":{\"generateName\":\"gen-\",\"labels\":{\"app\":\"gen\"}},"
			   "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}";
	char names[3][64];
	for (int i = 0; i < 3; i++) {
		json_t *p = local("POST", "/api/v1/namespaces/default/pods", body, &code);
		assert_int_equal(code, 201);
		const char *n = str(p, "metadata", "name");
		assert_true(strncmp(n, "gen-", 4) == 0 && strlen(n) == 9);
		snprintf(names[i], sizeof(names[i]), "%s", n);
		json_decref(p);
	}
	assert_string_not_equal(names[0], names[1]);
	json_t *l = local("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dgen", NULL,
			  &code);
	assert_int_equal(code, 200);
	assert_int_equal(json_array_size(json_object_get(l, "items")), 3);
	json_decref(l);
	/* limit goes through the paginated path */
	l = local("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dgen&limit=2", NULL,
		  &code);
	assert_int_equal(code, 200);
	assert_int_equal(json_array_size(json_object_get(l, "items")), 2);
	assert_non_null(str(l, "metadata", "continue"));
	json_decref(l);
}

static void test_api_ctrl_local_service_gets_cluster_ip(void **state)
{
	long code;
	(void)state;
	const char *svc = "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"selector\":{\"app\":\"l\"},"
			  "\"ports\":[{\"port\":80}]}}";
	char body[256];
	snprintf(body, sizeof(body), svc, "sa");
	json_t *a = local("POST", "/api/v1/namespaces/default/services", body, &code);
	assert_int_equal(code, 201);
	snprintf(body, sizeof(body), svc, "sb");
	json_t *b = local("POST", "/api/v1/namespaces/default/services", body, &code);
	assert_int_equal(code, 201);
	const char *ipa = str(a, "spec", "clusterIP"), *ipb = str(b, "spec", "clusterIP");
	assert_non_null(ipa);
	assert_non_null(ipb);
	assert_true(strncmp(ipa, "10.96.", 6) == 0);
	assert_string_not_equal(ipa, ipb);
	/* targetPort defaults to port */
	assert_int_equal(
		json_integer_value(json_object_get(
			json_array_get(json_object_get(json_object_get(a, "spec"), "ports"), 0),
			"targetPort")),
		80);
	json_decref(a);
	json_decref(b);
}

static void test_api_ctrl_local_invalid_named_field(void **state)
{
	long code;
	(void)state;
	json_t *s =
		local("POST", "/api/v1/namespaces/default/pods",
		      "{\"metadata\":{\"name\":\"bad\"},\"spec\":{\"containers\":[{\"name\":\"c\","
		      "\"image\":\"x\",\"ports\":[{\"containerPort\":70000}]}]}}",
		      &code);
	assert_int_equal(code, 422);
	assert_non_null(strstr(api_local_message(s), "spec.containers[0].ports[0].containerPort"));
	json_decref(s);
	/* query parameters are read: Strict rejects an unknown field */
	s = local("POST", "/api/v1/namespaces/default/pods?fieldValidation=Strict",
		  "{\"metadata\":{\"name\":\"strict\"},\"spec\":{\"bogus\":1,\"containers\":[{"
		  "\"name\":\"c\",\"image\":\"x\"}]}}",
		  &code);
	assert_int_equal(code, 400);
	assert_non_null(strstr(api_local_message(s), "bogus"));
	json_decref(s);
	s = local("GET", "/api/v1/namespaces/default/nothings", NULL, &code);
	assert_int_equal(code, 404);
	json_decref(s);
	s = local("GET", "/api/v1/pods?watch=1", NULL, &code);
	assert_int_equal(code, 400);
	json_decref(s);
}

static void test_api_ctrl_local_preconditions_patch_and_status(void **state)
{
	long code;
	char body[512];
	(void)state;
	json_t *p = local("POST", "/api/v1/namespaces/default/pods", POD("upd", ""), &code);
	assert_int_equal(code, 201);
	long long rv = obj_rv(p);

	/* a stale resourceVersion is a conflict */
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"upd\",\"resourceVersion\":\"%lld\",\"labels\":{\"v\":"
		 "\"2\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}",
		 rv - 1);
	json_t *s = local("PUT", "/api/v1/namespaces/default/pods/upd", body, &code);
	assert_int_equal(code, 409);
	json_decref(s);

	/* merge patch */
	s = local("PATCH", "/api/v1/namespaces/default/pods/upd",
		  "{\"metadata\":{\"labels\":{\"v\":\"3\"}}}", &code);
	assert_int_equal(code, 200);
	assert_string_equal(str(json_object_get(s, "metadata"), "labels", "v"), "3");
	assert_string_equal(str(json_object_get(s, "metadata"), "labels", "app"), "l");
	json_decref(s);

	/* status: only the /status sub-resource writes it */
	s = local("PATCH", "/api/v1/namespaces/default/pods/upd",
		  "{\"status\":{\"phase\":\"Running\"}}", &code);
	assert_int_equal(code, 200);
	assert_string_equal(str(s, "status", "phase"), "Pending");
	json_decref(s);
	s = local("PATCH", "/api/v1/namespaces/default/pods/upd/status",
		  "{\"metadata\":{\"labels\":{\"v\":\"9\"}},\"status\":{\"phase\":\"Running\","
		  "\"podIP\":\"10.100.0.7\"}}",
		  &code);
	assert_int_equal(code, 200);
	assert_string_equal(str(s, "status", "phase"), "Running");
	assert_string_equal(str(json_object_get(s, "metadata"), "labels", "v"), "3");
	json_decref(s);
	json_decref(p);
}

static void test_api_ctrl_local_graceful_delete(void **state)
{
	long code;
	(void)state;
	json_t *p = local("POST", "/api/v1/namespaces/default/pods",
			  POD("bound", "\"nodeName\":\"n1\","), &code);
	assert_int_equal(code, 201);
	json_decref(p);
	json_t *d = local("DELETE", "/api/v1/namespaces/default/pods/bound", NULL, &code);
	assert_int_equal(code, 200);
	assert_non_null(str(d, "metadata", "deletionTimestamp"));
	json_decref(d);
	d = local("GET", "/api/v1/namespaces/default/pods/bound", NULL, &code);
	assert_int_equal(code, 200);
	json_decref(d);
	d = local("DELETE", "/api/v1/namespaces/default/pods/bound?gracePeriodSeconds=0", NULL,
		  &code);
	assert_int_equal(code, 200);
	json_decref(d);
	d = local("GET", "/api/v1/namespaces/default/pods/bound", NULL, &code);
	assert_int_equal(code, 404);
	json_decref(d);
	/* preconditions in the body */
	p = local("POST", "/api/v1/namespaces/default/pods", POD("pre", ""), &code);
	assert_int_equal(code, 201);
	d = local("DELETE", "/api/v1/namespaces/default/pods/pre",
		  "{\"preconditions\":{\"uid\":\"not-the-uid\"}}", &code);
	assert_int_equal(code, 409);
	json_decref(d);
	char body[200];
	snprintf(body, sizeof(body), "{\"preconditions\":{\"uid\":\"%s\"}}",
		 str(p, "metadata", "uid"));
	d = local("DELETE", "/api/v1/namespaces/default/pods/pre", body, &code);
	assert_int_equal(code, 200);
	json_decref(d);
	json_decref(p);
}

#define WRITERS 6
#define WRITES	25

struct writer_arg {
	long i;
	int last_ok; /* the last write to the shared object that was answered 200 */
	int bad;     /* answers other than 200 (own object) or 200/409 (shared object) */
};

static void *writer(void *arg)
{
	struct writer_arg *w = arg;
	char body[128], path[128];
	long code;

	w->last_ok = -1;
	snprintf(path, sizeof(path), "/api/v1/namespaces/default/pods/own-%ld", w->i);
	for (int j = 0; j < WRITES; j++) {
		snprintf(body, sizeof(body), "{\"metadata\":{\"annotations\":{\"w%ld\":\"%d\"}}}",
			 w->i, j);
		json_t *o = local("PATCH", path, body, &code);
		json_decref(o);
		w->bad += code != 200;
		/* One object patched by every writer: a patch that keeps losing its race gets
		 * 409 after the server's retries, as over HTTP; a controller requeues it. */
		o = local("PATCH", "/api/v1/namespaces/default/pods/race", body, &code);
		json_decref(o);
		if (code == 200)
			w->last_ok = j;
		else if (code != 409)
			w->bad++;
	}
	return NULL;
}

/* Concurrent in-process writes share group commits and never block one another; patches
 * of one object that lose a race are run again, and what lands is each writer's last. */
static void test_api_ctrl_local_concurrent_patches(void **state)
{
	pthread_t th[WRITERS];
	struct writer_arg wa[WRITERS] = { 0 };
	char body[300];
	long code;
	(void)state;
	json_t *p = local("POST", "/api/v1/namespaces/default/pods", POD("race", ""), &code);
	assert_int_equal(code, 201);
	json_decref(p);
	for (long i = 0; i < WRITERS; i++) {
		snprintf(body, sizeof(body),
			 "{\"metadata\":{\"name\":\"own-%ld\"},\"spec\":{\"containers\":[{\"name\":"
			 "\"c\",\"image\":\"busybox\"}]}}",
			 i);
		p = local("POST", "/api/v1/namespaces/default/pods", body, &code);
		assert_int_equal(code, 201);
		json_decref(p);
	}
	for (long i = 0; i < WRITERS; i++) {
		wa[i].i = i;
		assert_int_equal(pthread_create(&th[i], NULL, writer, &wa[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(th[i], NULL);
	p = local("GET", "/api/v1/namespaces/default/pods/race", NULL, &code);
	json_t *ann = json_object_get(json_object_get(p, "metadata"), "annotations");
	for (int i = 0; i < WRITERS; i++) {
		char k[8], v[8];
		assert_int_equal(wa[i].bad, 0);
		snprintf(k, sizeof(k), "w%d", i);
		snprintf(v, sizeof(v), "%d", wa[i].last_ok);
		if (wa[i].last_ok >= 0)
			assert_string_equal(json_string_value(json_object_get(ann, k)), v);
		snprintf(body, sizeof(body), "/api/v1/namespaces/default/pods/own-%d", i);
		json_t *own = local("GET", body, NULL, &code);
		snprintf(v, sizeof(v), "%d", WRITES - 1);
		assert_string_equal(str(json_object_get(own, "metadata"), "annotations", k), v);
		json_decref(own);
	}
	json_decref(p);
}

SHOAL_TEST_MAIN_SETUP(setup, teardown,
		      cmocka_unit_test(test_api_ctrl_local_create_is_what_http_reads),
		      cmocka_unit_test(test_api_ctrl_local_generate_name_and_list),
		      cmocka_unit_test(test_api_ctrl_local_service_gets_cluster_ip),
		      cmocka_unit_test(test_api_ctrl_local_invalid_named_field),
		      cmocka_unit_test(test_api_ctrl_local_preconditions_patch_and_status),
		      cmocka_unit_test(test_api_ctrl_local_graceful_delete),
		      cmocka_unit_test(test_api_ctrl_local_concurrent_patches))
