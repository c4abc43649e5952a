// SPDX-License-Identifier: Apache-2.0
/*
 * shoald as a daemon: authentication and authorization from a token file, 410
 * Gone once history is compacted, durability of acknowledged writes across kill
 * -9, and a clean exit on SIGTERM. Each test starts its own shoald with the
 * flags it needs.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shoal_test.h"
#include "shoald_fixture.h"

/* The daemon and scratch directory of the running test, removed by teardown() also when the
 * test fails half-way (cmocka leaves a failing test at its assertion). */
static struct shoald d;
static char scratch[64];

static int teardown(void **state)
{
	(void)state;
	shoald_destroy(&d);
	if (scratch[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
		if (system(cmd) != 0)
			fprintf(stderr, "# could not remove %s\n", scratch);
		scratch[0] = '\0';
	}
	return 0;
}

static char *make_scratch(const char *tmpl)
{
	snprintf(scratch, sizeof(scratch), "%s", tmpl);
	return mkdtemp(scratch);
}

static long req(struct shoald *s, const char *method, const char *path, const char *body,
		const char *token)
{
	struct http_resp r;
	long code = -1;
	if (http_do(s, method, path, NULL, body, body ? strlen(body) : 0, token, &r) == 0)
		code = r.code;
	http_resp_free(&r);
	return code;
}

static void test_api_auth_tokens_and_groups(void **state)
{
	(void)state;
	struct shoald *const s_ = &d;
	char tokens[512], flag[600];
	char *dir = make_scratch("/tmp/shoal-auth.XXXXXX");
	assert_non_null(dir);
	snprintf(tokens, sizeof(tokens), "%s/tokens.csv", dir);
	FILE *f = fopen(tokens, "w");
	assert_non_null(f);
	fprintf(f, "# token,user,group\n"
		   "admin-token,admin,system:masters\n"
		   "node1-token,system:node:node-1,system:nodes\n"
		   "reader-token,viewer,readonly\n"
		   "k8s-style,alice,1001,\"readonly,devs\"\n");
	fclose(f);
	snprintf(flag, sizeof(flag), "%s", tokens);
	const char *args[] = { "--disable-scheduler", "--token-file", flag,
			       "--log-level",	      "warn",	      NULL };
	assert_int_equal(shoald_start(s_, args), 0);

	const char *node1 = "{\"metadata\":{\"name\":\"node-1\"},\"spec\":{}}";
	const char *node2 = "{\"metadata\":{\"name\":\"node-2\"},\"spec\":{}}";
	const char *pod = "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{"
			  "\"name\":\"c\","
			  "\"image\":\"x\"}]}}";
	assert_int_equal(req(s_, "GET", "/api/v1/pods", NULL, NULL), 401);
	assert_int_equal(req(s_, "GET", "/api/v1/pods", NULL, "wrong"), 401);
	assert_int_equal(req(s_, "GET", "/healthz", NULL, NULL), 200);
	assert_int_equal(req(s_, "GET", "/api/v1/pods", NULL, "reader-token"), 200);
	assert_int_equal(req(s_, "GET", "/api/v1/pods", NULL, "k8s-style"), 200);
	assert_int_equal(req(s_, "POST", "/api/v1/namespaces/default/pods", pod, "reader-token"),
			 403);
	assert_int_equal(req(s_, "POST", "/api/v1/nodes", node2, "node1-token"), 403);
	assert_int_equal(req(s_, "POST", "/api/v1/nodes", node1, "node1-token"), 201);
	assert_int_equal(req(s_, "POST", "/api/v1/nodes", node2, "admin-token"), 201);
	assert_int_equal(req(s_, "PATCH", "/api/v1/nodes/node-2", "{}", "node1-token"), 403);
	assert_int_equal(req(s_, "POST", "/api/v1/namespaces/default/pods", pod, "node1-token"),
			 403);
	assert_int_equal(req(s_, "POST", "/api/v1/namespaces/default/pods", pod, "admin-token"),
			 201);
	/* Unbound pod: a node may not touch its status; bound to it: it may. */
	assert_int_equal(req(s_, "PUT", "/api/v1/namespaces/default/pods/p/status",
			     "{\"status\":{\"phase\":\"Running\"}}", "node1-token"),
			 403);
	assert_int_equal(req(s_, "POST", "/api/v1/namespaces/default/pods/p/binding",
			     "{\"target\":{\"kind\":\"Node\",\"name\":\"node-1\"}}", "admin-token"),
			 201);
	assert_int_equal(req(s_, "PUT", "/api/v1/namespaces/default/pods/p/status",
			     "{\"status\":{\"phase\":\"Running\"}}", "node1-token"),
			 200);
	assert_int_equal(
		req(s_, "DELETE", "/api/v1/namespaces/default/pods/p", NULL, "reader-token"), 403);
	assert_int_equal(shoald_stop(s_), 0);
	shoald_destroy(s_);
}

static void test_api_watch_gone_after_compaction(void **state)
{
	(void)state;
	struct shoald *const s_ = &d;
	const char *args[] = { "--disable-scheduler",
			       "--history-revisions",
			       "5",
			       "--history-seconds",
			       "0",
			       "--compact-interval-ms",
			       "50",
			       "--watch-cache-events",
			       "16",
			       "--bookmark-interval-ms",
			       "50",
			       "--log-level",
			       "warn",
			       NULL };
	assert_int_equal(shoald_start(s_, args), 0);
	for (int i = 0; i < 60; i++) {
		char body[256];
		snprintf(body, sizeof(body),
			 "{\"metadata\":{\"name\":\"c-%d\"},\"spec\":{\"containers\":[{"
			 "\"name\":\"c\","
			 "\"image\":\"x\"}]}}",
			 i);
		assert_int_equal(req(s_, "POST", "/api/v1/namespaces/default/pods", body, NULL),
				 201);
	}
	usleep(400 * 1000); /* compaction and the cache's trim run every 50 ms */
	long code;
	json_t *evs = http_watch(s_, "/api/v1/namespaces/default/pods?watch=1&resourceVersion=2",
				 3000, &code);
	assert_int_equal(code, 410);
	json_decref(evs);
	json_t *st =
		http_json(s_, "GET", "/api/v1/namespaces/default/pods?watch=1&resourceVersion=2",
			  NULL, &code);
	assert_int_equal(code, 410);
	assert_string_equal(json_string_value(json_object_get(st, "reason")), "Expired");
	json_decref(st);
	/* A fresh watch (no resourceVersion) still works: current state first. */
	evs = http_watch(s_, "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1", 3000,
			 &code);
	assert_int_equal(code, 200);
	assert_int_equal(json_array_size(evs), 60);
	json_decref(evs);
	assert_int_equal(shoald_stop(s_), 0);
	shoald_destroy(s_);
}

struct crash_writer {
	struct shoald *s;
	int id;
	atomic_int *stop;
	int acked;
};

static void *crash_writer_main(void *p)
{
	struct crash_writer *w = p;
	for (int i = 0; !atomic_load(w->stop) && i < 100000; i++) {
		char body[512];
		snprintf(body, sizeof(body),
			 "{\"metadata\":{\"name\":\"w%d-%d\",\"annotations\":{\"payload\":"
			 "\"%0200d\"}},"
			 "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}",
			 w->id, i, i);
		if (req(w->s, "POST", "/api/v1/namespaces/default/pods", body, NULL) != 201)
			break;
		w->acked = i + 1; /* acknowledged: must survive */
	}
	return NULL;
}

static void test_api_acknowledged_writes_survive_kill9(void **state)
{
	(void)state;
	enum { WRITERS = 8 };
	struct shoald *const s_ = &d;
	struct crash_writer w[WRITERS];
	pthread_t th[WRITERS];
	atomic_int stop = 0;
	const char *args[] = { "--disable-scheduler", "--log-level", "error", NULL };

	assert_int_equal(shoald_start(s_, args), 0);
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct crash_writer){ .s = s_, .id = i, .stop = &stop };
		assert_int_equal(pthread_create(&th[i], NULL, crash_writer_main, &w[i]), 0);
	}
	usleep(700 * 1000);
	shoald_kill9(s_); /* mid-stream: writers see errors and stop */
	atomic_store(&stop, 1);
	int total = 0;
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(th[i], NULL);
		total += w[i].acked;
	}
	assert_true(total > 0);
	assert_int_equal(shoald_restart(s_), 0);
	for (int i = 0; i < WRITERS; i++) {
		for (int j = 0; j < w[i].acked; j++) {
			char path[256];
			long code;
			snprintf(path, sizeof(path), "/api/v1/namespaces/default/pods/w%d-%d", i,
				 j);
			json_t *o = http_json(s_, "GET", path, NULL, &code);
			if (code != 200)
				fail_msg("acknowledged write w%d-%d lost after kill -9 (HTTP %ld)",
					 i, j, code);
			const char *payload = json_string_value(json_object_get(
				json_object_get(json_object_get(o, "metadata"), "annotations"),
				"payload"));
			char want[256];
			snprintf(want, sizeof(want), "%0200d", j);
			assert_non_null(payload);
			assert_string_equal(payload, want);
			json_decref(o);
		}
	}
	/* Every pod that is there is whole (the list parses and each has its
   * payload). */
	long code;
	json_t *list = http_json(s_, "GET", "/api/v1/namespaces/default/pods", NULL, &code);
	assert_int_equal(code, 200);
	size_t i;
	json_t *it;
	json_array_foreach (json_object_get(list, "items"), i, it) {
		assert_non_null(json_object_get(
			json_object_get(json_object_get(it, "metadata"), "annotations"),
			"payload"));
	}
	assert_true(json_array_size(json_object_get(list, "items")) >= (size_t)total);
	print_message("# %d acknowledged writes before kill -9, all present; %zu stored\n", total,
		      json_array_size(json_object_get(list, "items")));
	json_decref(list);
	assert_int_equal(shoald_stop(s_), 0);
	shoald_destroy(s_);
}

static void test_api_sigterm_drains_and_exits_cleanly(void **state)
{
	(void)state;
	struct shoald *const s_ = &d;
	const char *args[] = { "--disable-scheduler", "--log-level", "warn", NULL };
	assert_int_equal(shoald_start(s_, args), 0);
	assert_int_equal(req(s_, "POST", "/api/v1/namespaces/default/pods",
			     "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":"
			     "\"c\",\"image\":\"x\"}]}}",
			     NULL),
			 201);
	assert_int_equal(shoald_stop(s_), 0);
	assert_int_equal(shoald_restart(s_), 0);
	assert_int_equal(req(s_, "GET", "/api/v1/namespaces/default/pods/p", NULL, NULL), 200);
	assert_int_equal(shoald_stop(s_), 0);
	shoald_destroy(s_);
}

static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return sz * n;
}

/* TCP on loopback with TLS: a self-signed certificate made for the test. */
static void test_api_tls_on_tcp(void **state)
{
	(void)state;
	char cmd[1024], cert[300], key[300], listen[64], url[128];
	char *dir = make_scratch("/tmp/shoal-tls.XXXXXX");
	struct shoald *const s_ = &d;
	int started = -1;

	assert_non_null(dir);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
		 "-keyout %s -out %s >/dev/null 2>&1",
		 key, cert);
	assert_int_equal(system(cmd), 0);
	for (int attempt = 0; attempt < 5 && started; attempt++) {
		int port = 20000 + (getpid() * 7 + attempt * 131) % 9000;
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
		snprintf(url, sizeof(url), "https://127.0.0.1:%d/api/v1/namespaces/default", port);
		const char *args[] = {
			"--disable-scheduler", "--listen", listen,	  "--tls-cert", cert,
			"--tls-key",	       key,	   "--log-level", "warn",	NULL
		};
		started = shoald_start(s_, args);
		if (started)
			shoald_destroy(s_);
	}
	assert_int_equal(started, 0);
	CURL *c = curl_easy_init();
	long code = 0;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, cert);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	assert_int_equal(rc, CURLE_OK);
	assert_int_equal(code, 200);
	/* Plain HTTP on the TLS port is not served. */
	c = curl_easy_init();
	url[4] = ':';
	memmove(url + 4, url + 5, strlen(url + 5) + 1);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	code = 0;
	curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	assert_int_not_equal(code, 200);
	assert_int_equal(shoald_stop(s_), 0);
	shoald_destroy(s_);
}

SHOAL_TEST_MAIN(cmocka_unit_test_teardown(test_api_auth_tokens_and_groups, teardown),
		cmocka_unit_test_teardown(test_api_tls_on_tcp, teardown),
		cmocka_unit_test_teardown(test_api_watch_gone_after_compaction, teardown),
		cmocka_unit_test_teardown(test_api_acknowledged_writes_survive_kill9, teardown),
		cmocka_unit_test_teardown(test_api_sigterm_drains_and_exits_cleanly, teardown))
