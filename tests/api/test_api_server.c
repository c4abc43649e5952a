// SPDX-License-Identifier: Apache-2.0
/*
 * shoald's API against a real daemon on a temporary store and unix socket: CRUD
 * for every kind, optimistic concurrency, watches (resume, selectors,
 * bookmarks, 410), pagination, allocation, graceful deletion, binding, scale,
 * auth, bad input, and a crash during writes.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api_kinds.h"
#include "shoal_test.h"
#include "shoald_fixture.h"

static struct shoald srv;

static int setup(void **state)
{
	(void)state;
	/* The API alone: no scheduler or controllers writing beside the tests. */
	const char *args[] = { "--disable-scheduler",
			       "--disable-controllers",
			       "--log-level",
			       "warn",
			       "--bookmark-interval-ms",
			       "100",
			       NULL };
	return shoald_start(&srv, args);
}

static int teardown(void **state)
{
	(void)state;
	int st = shoald_stop(&srv);
	if (st != 0) {
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "tail -n 40 %s/shoald.log | sed 's/^/# /'", srv.dir);
		if (system(cmd) != 0)
			print_message("# shoald exited with %d\n", st);
	}
	shoald_destroy(&srv);
	return st == 0 ? 0 : -1;
}

/* Fails the test with what came back when the code differs. */
#define expect_code(got, want, body)                                                               \
	do {                                                                                       \
		if ((got) != (want)) {                                                             \
			char *s_ = (body) ? json_dumps((body), JSON_COMPACT) : NULL;               \
			fail_msg("expected HTTP %d, got %ld: %s", (want), (long)(got),             \
				 s_ ? s_ : "(no JSON)");                                           \
		}                                                                                  \
	} while (0)

static const char *collection(const char *kind, const char *ns, char *buf, size_t len)
{
	const struct api_kind *k = api_kind_lookup(kind);
	assert_non_null(k);
	int n = *k->group ? snprintf(buf, len, "/apis/%s/%s", k->group, k->version)
			  : snprintf(buf, len, "/api/%s", k->version);
	if (k->namespaced && ns)
		n += snprintf(buf + n, len - n, "/namespaces/%s", ns);
	snprintf(buf + n, len - n, "/%s", k->resource);
	return buf;
}

static json_t *create(const char *kind, const char *ns, const char *body, long *code)
{
	char path[256];
	return http_json(&srv, "POST", collection(kind, ns, path, sizeof(path)), body, code);
}

/* ---- every kind: create, get, list, update, patch, delete
 * ---------------------------- */

static const struct {
	const char *kind, *name, *body;
} fixtures[] = {
	{ "Namespace", "crud-ns", "{\"metadata\":{\"name\":\"crud-ns\"}}" },
	{ "Node", "crud-node",
	  "{\"metadata\":{\"name\":\"crud-node\"},\"spec\":{\"podCIDR\":\"10.100.9."
	  "0/24\"}}" },
	{ "Pod", "crud-pod",
	  "{\"metadata\":{\"name\":\"crud-pod\"},\"spec\":{\"containers\":[{"
	  "\"name\":\"c\","
	  "\"image\":\"web\",\"command\":[\"sleep\",\"3600\"]}]}}" },
	{ "Service", "crud-svc",
	  "{\"metadata\":{\"name\":\"crud-svc\"},\"spec\":{\"selector\":{\"app\":"
	  "\"a\"},"
	  "\"ports\":[{\"port\":80}]}}" },
	{ "Endpoints", "crud-svc",
	  "{\"metadata\":{\"name\":\"crud-svc\"},\"subsets\":[{\"addresses\":[{"
	  "\"ip\":\"10.100.1."
	  "5\"}],\"ports\":[{\"port\":80}]}]}" },
	{ "EndpointSlice", "crud-svc-x",
	  "{\"metadata\":{\"name\":\"crud-svc-x\",\"labels\":{\"kubernetes.io/"
	  "service-name\":"
	  "\"crud-svc\"}},\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":["
	  "\"10.100.1.5\"],"
	  "\"conditions\":{\"ready\":true}}],\"ports\":[{\"port\":80,\"protocol\":"
	  "\"TCP\"}]}" },
	{ "Lease", "crud-lease",
	  "{\"metadata\":{\"name\":\"crud-lease\"},\"spec\":{\"holderIdentity\":"
	  "\"n1\","
	  "\"leaseDurationSeconds\":40}}" },
	{ "Event", "crud-event",
	  "{\"metadata\":{\"name\":\"crud-event\"},\"involvedObject\":{\"kind\":"
	  "\"Pod\",\"name\":"
	  "\"crud-pod\",\"namespace\":\"default\"},\"reason\":\"Started\","
	  "\"message\":\"started\","
	  "\"type\":\"Normal\"}" },
	{ "Deployment", "crud-deploy",
	  "{\"metadata\":{\"name\":\"crud-deploy\"},\"spec\":{\"replicas\":2,"
	  "\"selector\":{"
	  "\"matchLabels\":{\"app\":\"d\"}},\"template\":{\"metadata\":{\"labels\":{"
	  "\"app\":\"d\"}},"
	  "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"web\",\"command\":["
	  "\"sleep\","
	  "\"1\"]}]}}}}" },
	{ "ReplicaSet", "crud-rs",
	  "{\"metadata\":{\"name\":\"crud-rs\"},\"spec\":{\"replicas\":1,"
	  "\"selector\":{"
	  "\"matchLabels\":{\"app\":\"r\"}},\"template\":{\"metadata\":{\"labels\":{"
	  "\"app\":\"r\"}},"
	  "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"web\",\"command\":["
	  "\"sleep\","
	  "\"1\"]}]}}}}" },
	{ "DaemonSet", "crud-ds",
	  "{\"metadata\":{\"name\":\"crud-ds\"},\"spec\":{\"selector\":{"
	  "\"matchLabels\":{\"app\":"
	  "\"ds\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"ds\"}},"
	  "\"spec\":{"
	  "\"containers\":[{\"name\":\"c\",\"image\":\"web\",\"command\":[\"sleep\","
	  "\"1\"]}]}}}}" },
	{ "Job", "crud-job",
	  "{\"metadata\":{\"name\":\"crud-job\"},\"spec\":{\"template\":{"
	  "\"metadata\":{\"labels\":{"
	  "\"job\":\"j\"}},\"spec\":{\"restartPolicy\":\"Never\",\"containers\":[{"
	  "\"name\":\"c\","
	  "\"image\":\"web\",\"command\":[\"true\"]}]}}}}" },
	{ "PodGroup", "crud-gang",
	  "{\"metadata\":{\"name\":\"crud-gang\"},\"spec\":{\"minMember\":2}}" },
};

static void test_api_crud_every_kind(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		char coll[256], path[384];
		long code;
		json_t *o = create(fixtures[i].kind, "default", fixtures[i].body, &code);
		if (code != 201)
			print_message("# kind %s\n", fixtures[i].kind);
		expect_code(code, 201, o);
		assert_string_equal(json_string_value(json_object_get(o, "kind")),
				    fixtures[i].kind);
		assert_true(obj_rv(o) > 0);
		assert_non_null(json_object_get(json_object_get(o, "metadata"), "uid"));
		json_decref(o);

		collection(fixtures[i].kind, "default", coll, sizeof(coll));
		snprintf(path, sizeof(path), "%s/%s", coll, fixtures[i].name);
		o = http_json(&srv, "GET", path, NULL, &code);
		expect_code(code, 200, o);
		long long rv = obj_rv(o);
		json_decref(o);

		o = http_json(&srv, "GET", coll, NULL, &code);
		expect_code(code, 200, o);
		bool found = false;
		size_t j;
		json_t *it;
		json_array_foreach (json_object_get(o, "items"), j, it) {
			const char *n = json_string_value(
				json_object_get(json_object_get(it, "metadata"), "name"));
			found |= n && strcmp(n, fixtures[i].name) == 0;
		}
		assert_true(found);
		json_decref(o);

		o = http_json(&srv, "PATCH", path,
			      "{\"metadata\":{\"labels\":{\"patched\":\"yes\"}}}", &code);
		expect_code(code, 200, o);
		assert_true(obj_rv(o) > rv);
		assert_string_equal(
			json_string_value(json_object_get(
				json_object_get(json_object_get(o, "metadata"), "labels"),
				"patched")),
			"yes");
		/* A PUT of what was read, with its resourceVersion. */
		json_object_set_new(json_object_get(json_object_get(o, "metadata"), "labels"),
				    "put", json_string("yes"));
		char *body = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		o = http_json(&srv, "PUT", path, body, &code);
		free(body);
		expect_code(code, 200, o);
		json_decref(o);

		o = http_json(&srv, "DELETE", path, NULL, &code);
		expect_code(code, 200, o);
		json_decref(o);
		if (strcmp(fixtures[i].kind, "Namespace") == 0)
			continue; /* a namespace terminates; its controller removes it */
		o = http_json(&srv, "GET", path, NULL, &code);
		expect_code(code, 404, o);
		assert_string_equal(json_string_value(json_object_get(o, "kind")), "Status");
		json_decref(o);
	}
}

#define POD(name, labels)                                                                          \
	"{\"metadata\":{\"name\":\"" name "\",\"labels\":{" labels                                 \
	"}},\"spec\":{\"containers\":[{"                                                           \
	"\"name\":\"c\",\"image\":\"web\",\"command\":[\"sleep\",\"3600\"]}]}}"

static void test_api_stale_resource_version_conflicts(void **state)
{
	(void)state;
	long code;
	json_t *o = create("Pod", "default", POD("stale", "\"a\":\"1\""), &code);
	expect_code(code, 201, o);
	char *first = json_dumps(o, JSON_COMPACT);
	json_object_set_new(json_object_get(o, "metadata"), "labels", json_pack("{s:s}", "a", "2"));
	char *second = json_dumps(o, JSON_COMPACT);
	json_decref(o);

	o = http_json(&srv, "PUT", "/api/v1/namespaces/default/pods/stale", second, &code);
	expect_code(code, 200, o);
	json_decref(o);
	/* The first version's resourceVersion is stale now. */
	o = http_json(&srv, "PUT", "/api/v1/namespaces/default/pods/stale", first, &code);
	expect_code(code, 409, o);
	assert_string_equal(json_string_value(json_object_get(o, "reason")), "Conflict");
	json_decref(o);
	free(first);
	free(second);
}

struct rmw_arg {
	int iterations;
	int conflicts;
};

/* Read-modify-write of one counter annotation, retrying on 409 as a client
 * must. */
static void *rmw_worker(void *p)
{
	struct rmw_arg *a = p;
	for (int i = 0; i < a->iterations; i++) {
		for (int attempt = 0; attempt < 1000; attempt++) {
			long code;
			json_t *o =
				http_json(&srv, "GET", "/api/v1/namespaces/default/pods/counter",
					  NULL, &code);
			if (code != 200) {
				json_decref(o);
				return (void *)1;
			}
			json_t *ann =
				json_object_get(json_object_get(o, "metadata"), "annotations");
			int n = atoi(json_string_value(json_object_get(ann, "n")));
			char nb[16];
			snprintf(nb, sizeof(nb), "%d", n + 1);
			json_object_set_new(ann, "n", json_string(nb));
			char *body = json_dumps(o, JSON_COMPACT);
			json_decref(o);
			o = http_json(&srv, "PUT", "/api/v1/namespaces/default/pods/counter", body,
				      &code);
			free(body);
			json_decref(o);
			if (code == 200)
				break;
			if (code != 409)
				return (void *)1;
			a->conflicts++;
		}
	}
	return NULL;
}

static void test_api_concurrent_writers_lose_no_update(void **state)
{
	(void)state;
	enum { WRITERS = 100, EACH = 3 };
	pthread_t th[WRITERS];
	struct rmw_arg args[WRITERS];
	long code;
	json_t *o = create("Pod", "default",
			   "{\"metadata\":{\"name\":\"counter\",\"annotations\":{\"n\":\"0\"}},"
			   "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"web\","
			   "\"command\":[\"sleep\",\"1\"]}]}}",
			   &code);
	expect_code(code, 201, o);
	json_decref(o);
	for (int i = 0; i < WRITERS; i++) {
		args[i] = (struct rmw_arg){ .iterations = EACH };
		assert_int_equal(pthread_create(&th[i], NULL, rmw_worker, &args[i]), 0);
	}
	int failed = 0, conflicts = 0;
	for (int i = 0; i < WRITERS; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		failed += ret != NULL;
		conflicts += args[i].conflicts;
	}
	assert_int_equal(failed, 0);
	o = http_json(&srv, "GET", "/api/v1/namespaces/default/pods/counter", NULL, &code);
	expect_code(code, 200, o);
	assert_int_equal(
		atoi(json_string_value(json_object_get(
			json_object_get(json_object_get(o, "metadata"), "annotations"), "n"))),
		WRITERS * EACH);
	print_message("# %d updates, %d conflicts retried\n", WRITERS * EACH, conflicts);
	json_decref(o);
}

struct writer_arg {
	const char *prefix;
	int n;
	int delay_ms;
};

static void *delayed_writer(void *p)
{
	struct writer_arg *a = p;
	usleep(a->delay_ms * 1000);
	for (int i = 0; i < a->n; i++) {
		char body[512];
		long code;
		snprintf(body, sizeof(body),
			 "{\"metadata\":{\"name\":\"%s-%d\",\"labels\":{\"w\":\"%s\"}},"
			 "\"spec\":{"
			 "\"containers\":[{\"name\":\"c\",\"image\":\"web\",\"command\":["
			 "\"sleep\","
			 "\"1\"]}]}}",
			 a->prefix, i, a->prefix);
		json_decref(create("Pod", "default", body, &code));
	}
	return NULL;
}

static void test_api_watch_resumes_without_gap_or_repeat(void **state)
{
	(void)state;
	long code;
	json_t *o = create("Pod", "default", POD("resume-0", "\"w\":\"resume\""), &code);
	expect_code(code, 201, o);
	long long rv0 = obj_rv(o);
	json_decref(o);
	for (int i = 1; i <= 20; i++) {
		char body[512];
		snprintf(body, sizeof(body), POD("resume-%d", "\"w\":\"resume\""), i);
		json_decref(create("Pod", "default", body, &code));
		assert_int_equal(code, 201);
	}
	/* From rv0: exactly the 20 later creations, in order, each once. */
	char path[256];
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/default/"
		 "pods?watch=1&resourceVersion=%lld&labelSelector=w%%3Dresume"
		 "&timeoutSeconds=1",
		 rv0);
	json_t *evs = http_watch(&srv, path, 5000, &code);
	assert_int_equal(code, 200);
	assert_int_equal(json_array_size(evs), 20);
	long long last = rv0;
	for (size_t i = 0; i < json_array_size(evs); i++) {
		json_t *ev = json_array_get(evs, i);
		char want[32];
		snprintf(want, sizeof(want), "resume-%zu", i + 1);
		assert_string_equal(json_string_value(json_object_get(ev, "type")), "ADDED");
		json_t *obj = json_object_get(ev, "object");
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(obj, "metadata"), "name")),
				    want);
		assert_true(obj_rv(obj) > last);
		last = obj_rv(obj);
	}
	/* Resuming from the tenth event gives the other ten. */
	long long mid = obj_rv(json_object_get(json_array_get(evs, 9), "object"));
	json_decref(evs);
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/default/"
		 "pods?watch=1&resourceVersion=%lld&labelSelector=w%%3Dresume"
		 "&timeoutSeconds=1",
		 mid);
	evs = http_watch(&srv, path, 5000, &code);
	assert_int_equal(json_array_size(evs), 10);
	json_decref(evs);
}

static void test_api_watch_sees_live_writes_and_selectors_filter(void **state)
{
	(void)state;
	long code;
	pthread_t th;
	struct writer_arg a = { .prefix = "live", .n = 5, .delay_ms = 300 };
	struct writer_arg b = { .prefix = "other", .n = 5, .delay_ms = 300 };
	pthread_t th2;

	assert_int_equal(pthread_create(&th, NULL, delayed_writer, &a), 0);
	assert_int_equal(pthread_create(&th2, NULL, delayed_writer, &b), 0);
	json_t *evs = http_watch(&srv,
				 "/api/v1/namespaces/default/pods?watch=1&labelSelector=w%3Dlive"
				 "&resourceVersion=0&timeoutSeconds=2",
				 6000, &code);
	pthread_join(th, NULL);
	pthread_join(th2, NULL);
	assert_int_equal(code, 200);
	size_t live = 0;
	for (size_t i = 0; i < json_array_size(evs); i++) {
		json_t *obj = json_object_get(json_array_get(evs, i), "object");
		const char *w = json_string_value(json_object_get(
			json_object_get(json_object_get(obj, "metadata"), "labels"), "w"));
		assert_non_null(w);
		assert_string_equal(w, "live");
		live++;
	}
	assert_int_equal(live, 5);
	json_decref(evs);

	/* An object that stops matching is DELETED for the watcher that selected it.
   */
	json_t *o = http_json(&srv, "GET", "/api/v1/namespaces/default/pods?limit=1", NULL, &code);
	long long rv = atoll(json_string_value(
		json_object_get(json_object_get(o, "metadata"), "resourceVersion")));
	json_decref(o);
	o = http_json(&srv, "PATCH", "/api/v1/namespaces/default/pods/live-0",
		      "{\"metadata\":{\"labels\":{\"w\":\"gone\"}}}", &code);
	expect_code(code, 200, o);
	json_decref(o);
	char path[256];
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/default/"
		 "pods?watch=1&labelSelector=w%%3Dlive&resourceVersion=%lld"
		 "&timeoutSeconds=1",
		 rv);
	evs = http_watch(&srv, path, 4000, &code);
	assert_int_equal(json_array_size(evs), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "type")),
			    "DELETED");
	json_decref(evs);
}

static void test_api_watch_bookmarks_arrive(void **state)
{
	(void)state;
	long code;
	struct writer_arg a = { .prefix = "bm", .n = 1, .delay_ms = 200 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, delayed_writer, &a), 0);
	json_t *o = http_json(&srv, "GET", "/api/v1/namespaces/default/pods?limit=1", NULL, &code);
	long long rv = atoll(json_string_value(
		json_object_get(json_object_get(o, "metadata"), "resourceVersion")));
	json_decref(o);
	char path[256];
	/* Watch only a label nothing has: the write is invisible, a bookmark still
   * comes. */
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/default/pods?watch=1&labelSelector=none%%3Dnone&"
		 "allowWatchBookmarks=true&resourceVersion=%lld&timeoutSeconds=2",
		 rv);
	json_t *evs = http_watch(&srv, path, 5000, &code);
	pthread_join(th, NULL);
	size_t bookmarks = 0;
	for (size_t i = 0; i < json_array_size(evs); i++) {
		json_t *ev = json_array_get(evs, i);
		if (strcmp(json_string_value(json_object_get(ev, "type")), "BOOKMARK") == 0) {
			bookmarks++;
			assert_true(obj_rv(json_object_get(ev, "object")) > rv);
		}
	}
	assert_true(bookmarks >= 1);
	json_decref(evs);
}

static void test_api_pagination_is_one_snapshot(void **state)
{
	(void)state;
	long code;
	for (int i = 0; i < 25; i++) {
		char body[512];
		snprintf(body, sizeof(body), POD("page-%02d", "\"p\":\"1\""), i);
		json_decref(create("Pod", "default", body, &code));
		assert_int_equal(code, 201);
	}
	json_t *p1 = http_json(&srv, "GET",
			       "/api/v1/namespaces/default/pods?labelSelector=p%3D1&limit=10", NULL,
			       &code);
	expect_code(code, 200, p1);
	assert_int_equal(json_array_size(json_object_get(p1, "items")), 10);
	const char *rv1 = json_string_value(
		json_object_get(json_object_get(p1, "metadata"), "resourceVersion"));
	/* A write between pages is not in the list. */
	json_decref(create("Pod", "default", POD("page-00a", "\"p\":\"1\""), &code));
	assert_int_equal(code, 201);
	size_t total = 10;
	const char *cont =
		json_string_value(json_object_get(json_object_get(p1, "metadata"), "continue"));
	assert_non_null(cont);
	char path[1024];
	json_t *page = NULL;
	while (cont) {
		snprintf(path, sizeof(path),
			 "/api/v1/namespaces/default/"
			 "pods?labelSelector=p%%3D1&limit=10&continue=%s",
			 cont);
		json_decref(page);
		page = http_json(&srv, "GET", path, NULL, &code);
		expect_code(code, 200, page);
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(page, "metadata"), "resourceVersion")),
				    rv1);
		size_t j;
		json_t *it;
		json_array_foreach (json_object_get(page, "items"), j, it) {
			assert_string_not_equal(json_string_value(json_object_get(
							json_object_get(it, "metadata"), "name")),
						"page-00a");
		}
		total += json_array_size(json_object_get(page, "items"));
		cont = json_string_value(
			json_object_get(json_object_get(page, "metadata"), "continue"));
	}
	assert_int_equal(total, 25);
	json_decref(page);
	json_decref(p1);
	/* A forged token is refused. */
	json_t *o = http_json(&srv, "GET", "/api/v1/namespaces/default/pods?limit=1&continue=xyz!",
			      NULL, &code);
	expect_code(code, 400, o);
	json_decref(o);
}

static void test_api_service_gets_unique_cluster_ip_and_node_port(void **state)
{
	(void)state;
	long code;
	json_t *a = create("Service", "default",
			   "{\"metadata\":{\"name\":\"svc-a\"},\"spec\":{\"type\":\"NodePort\","
			   "\"selector\":{\"app\":\"a\"},\"ports\":[{\"port\":80}]}}",
			   &code);
	expect_code(code, 201, a);
	json_t *b = create("Service", "default",
			   "{\"metadata\":{\"name\":\"svc-b\"},\"spec\":{"
			   "\"selector\":{\"app\":\"b\"},"
			   "\"ports\":[{\"port\":80}]}}",
			   &code);
	expect_code(code, 201, b);
	const char *ipa =
		json_string_value(json_object_get(json_object_get(a, "spec"), "clusterIP"));
	const char *ipb =
		json_string_value(json_object_get(json_object_get(b, "spec"), "clusterIP"));
	assert_non_null(ipa);
	assert_non_null(ipb);
	assert_string_not_equal(ipa, ipb);
	assert_true(strncmp(ipa, "10.96.", 6) == 0);
	json_int_t np = json_integer_value(json_object_get(
		json_array_get(json_object_get(json_object_get(a, "spec"), "ports"), 0),
		"nodePort"));
	assert_true(np >= 30000 && np <= 32767);

	/* Asking for a taken address or port is a clear 422. */
	char body[512];
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"svc-c\"},\"spec\":{\"clusterIP\":\"%s\","
		 "\"selector\":{"
		 "\"app\":\"c\"},\"ports\":[{\"port\":80}]}}",
		 ipa);
	json_t *c = create("Service", "default", body, &code);
	expect_code(code, 422, c);
	assert_non_null(
		strstr(json_string_value(json_object_get(c, "message")), "already allocated"));
	json_decref(c);
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"svc-d\"},\"spec\":{\"type\":\"NodePort\","
		 "\"selector\":{"
		 "\"app\":\"d\"},\"ports\":[{\"port\":80,\"nodePort\":%lld}]}}",
		 (long long)np);
	c = create("Service", "default", body, &code);
	expect_code(code, 422, c);
	json_decref(c);

	/* Deleting releases the address: it can be asked for again. */
	char ip[32];
	snprintf(ip, sizeof(ip), "%s", ipa);
	json_decref(http_json(&srv, "DELETE", "/api/v1/namespaces/default/services/svc-a", NULL,
			      &code));
	assert_int_equal(code, 200);
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"svc-e\"},\"spec\":{\"clusterIP\":\"%s\","
		 "\"selector\":{"
		 "\"app\":\"e\"},\"ports\":[{\"port\":80}]}}",
		 ip);
	c = create("Service", "default", body, &code);
	expect_code(code, 201, c);
	json_decref(c);
	json_decref(a);
	json_decref(b);
}

static void test_api_bound_pod_deletes_gracefully(void **state)
{
	(void)state;
	long code;
	json_decref(create("Pod", "default", POD("grace", "\"g\":\"1\""), &code));
	assert_int_equal(code, 201);
	json_t *o = http_json(&srv, "POST", "/api/v1/namespaces/default/pods/grace/binding",
			      "{\"apiVersion\":\"v1\",\"kind\":\"Binding\",\"metadata\":{\"name\":"
			      "\"grace\"},\"target\":{\"kind\":\"Node\",\"name\":\"node-1\"}}",
			      &code);
	expect_code(code, 201, o);
	json_decref(o);
	/* A second binding is refused. */
	o = http_json(&srv, "POST", "/api/v1/namespaces/default/pods/grace/binding",
		      "{\"target\":{\"kind\":\"Node\",\"name\":\"node-2\"}}", &code);
	expect_code(code, 409, o);
	json_decref(o);
	o = http_json(&srv, "GET", "/api/v1/namespaces/default/pods/grace", NULL, &code);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(o, "spec"), "nodeName")),
		"node-1");
	json_decref(o);

	o = http_json(&srv, "DELETE", "/api/v1/namespaces/default/pods/grace", NULL, &code);
	expect_code(code, 200, o);
	json_decref(o);
	o = http_json(&srv, "GET", "/api/v1/namespaces/default/pods/grace", NULL, &code);
	expect_code(code, 200, o);
	assert_non_null(json_object_get(json_object_get(o, "metadata"), "deletionTimestamp"));
	json_decref(o);
	/* The node confirms with a zero grace period: gone. */
	o = http_json(&srv, "DELETE", "/api/v1/namespaces/default/pods/grace?gracePeriodSeconds=0",
		      NULL, &code);
	expect_code(code, 200, o);
	json_decref(o);
	o = http_json(&srv, "GET", "/api/v1/namespaces/default/pods/grace", NULL, &code);
	expect_code(code, 404, o);
	json_decref(o);
}

static void test_api_scale_subresource(void **state)
{
	(void)state;
	long code;
	json_t *o = create("Deployment", "default",
			   "{\"metadata\":{\"name\":\"scaled\"},\"spec\":{"
			   "\"replicas\":1,\"selector\":{"
			   "\"matchLabels\":{\"app\":\"s\"}},\"template\":{"
			   "\"metadata\":{\"labels\":{"
			   "\"app\":\"s\"}},\"spec\":{\"containers\":[{\"name\":"
			   "\"c\",\"image\":\"web\","
			   "\"command\":[\"sleep\",\"1\"]}]}}}}",
			   &code);
	expect_code(code, 201, o);
	json_decref(o);
	o = http_json(&srv, "PUT", "/apis/apps/v1/namespaces/default/deployments/scaled/scale",
		      "{\"spec\":{\"replicas\":5}}", &code);
	expect_code(code, 200, o);
	json_decref(o);
	o = http_json(&srv, "GET", "/apis/apps/v1/namespaces/default/deployments/scaled/scale",
		      NULL, &code);
	expect_code(code, 200, o);
	assert_string_equal(json_string_value(json_object_get(o, "kind")), "Scale");
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(o, "spec"), "replicas")), 5);
	json_decref(o);
	o = http_json(&srv, "GET", "/apis/apps/v1/namespaces/default/deployments/scaled", NULL,
		      &code);
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(o, "metadata"), "generation")),
		2);
	json_decref(o);
}

static void test_api_status_write_keeps_spec(void **state)
{
	(void)state;
	long code;
	json_decref(create("Pod", "default", POD("st", "\"s\":\"1\""), &code));
	json_t *o = http_json(&srv, "PATCH", "/api/v1/namespaces/default/pods/st/status",
			      "{\"status\":{\"phase\":\"Running\",\"podIP\":\"10.100.1.9\"},"
			      "\"spec\":{\"nodeName\":\"sneaky\"}}",
			      &code);
	expect_code(code, 200, o);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(o, "status"), "phase")),
		"Running");
	assert_null(json_object_get(json_object_get(o, "spec"), "nodeName"));
	json_decref(o);
	/* And a write of the main resource keeps the status. */
	o = http_json(&srv, "PATCH", "/api/v1/namespaces/default/pods/st",
		      "{\"status\":{\"phase\":\"Failed\"},\"metadata\":{\"labels\":{"
		      "\"x\":\"y\"}}}",
		      &code);
	expect_code(code, 200, o);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(o, "status"), "phase")),
		"Running");
	json_decref(o);
}

static const char *rv_of(const json_t *o)
{
	return json_string_value(
		json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
}

/* A patch, an update or a status write that changes nothing is not written (Kubernetes'
 * behaviour): the resourceVersion stays, watchers see no event; a real change still is. */
static void test_api_noop_write_keeps_resource_version(void **state)
{
	(void)state;
	long code;
	char rv[32], path[256];
	json_t *o = create("Pod", "default", POD("same", "\"s\":\"1\""), &code);
	expect_code(code, 201, o);
	snprintf(rv, sizeof(rv), "%s", rv_of(o));
	json_decref(o);

	o = http_json(&srv, "PATCH", "/api/v1/namespaces/default/pods/same",
		      "{\"metadata\":{\"labels\":{\"s\":\"1\"}}}", &code);
	expect_code(code, 200, o);
	assert_string_equal(rv_of(o), rv);
	json_decref(o);
	/* an update sending back what it read (with its resourceVersion) */
	o = http_json(&srv, "GET", "/api/v1/namespaces/default/pods/same", NULL, &code);
	char *body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	o = http_json(&srv, "PUT", "/api/v1/namespaces/default/pods/same", body, &code);
	free(body);
	expect_code(code, 200, o);
	assert_string_equal(rv_of(o), rv);
	json_decref(o);
	o = http_json(&srv, "PATCH", "/api/v1/namespaces/default/pods/same/status", "{}", &code);
	expect_code(code, 200, o);
	assert_string_equal(rv_of(o), rv);
	json_decref(o);

	/* nothing was written: a watch from rv sees only the real change below */
	o = http_json(&srv, "PATCH", "/api/v1/namespaces/default/pods/same",
		      "{\"metadata\":{\"labels\":{\"s\":\"2\"}}}", &code);
	expect_code(code, 200, o);
	assert_string_not_equal(rv_of(o), rv);
	json_decref(o);
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/default/pods?watch=1&fieldSelector=metadata.name%%3Dsame"
		 "&resourceVersion=%s&timeoutSeconds=1",
		 rv);
	json_t *evs = http_watch(&srv, path, 4000, &code);
	assert_int_equal(code, 200);
	assert_int_equal(json_array_size(evs), 1);
	json_decref(evs);
}

static void test_api_unknown_fields_warn_or_fail_strict(void **state)
{
	(void)state;
	struct http_resp r;
	const char *body =
		"{\"metadata\":{\"name\":\"unk\"},\"spec\":{\"bogus\":1,\"containers\":[{"
		"\"name\":\"c\",\"image\":\"web\",\"command\":[\"sleep\",\"1\"]}]}}";
	assert_int_equal(http_do(&srv, "POST", "/api/v1/namespaces/default/pods", NULL, body,
				 strlen(body), NULL, &r),
			 0);
	assert_int_equal(r.code, 201);
	assert_non_null(strstr(r.warning, "spec.bogus"));
	assert_null(strstr(r.body, "bogus"));
	http_resp_free(&r);
	body = "{\"metadata\":{\"name\":\"unk2\"},\"spec\":{\"bogus\":1,"
	       "\"containers\":[{"
	       "\"name\":\"c\",\"image\":\"web\",\"command\":[\"sleep\",\"1\"]}]}}";
	assert_int_equal(http_do(&srv, "POST",
				 "/api/v1/namespaces/default/pods?fieldValidation=Strict", NULL,
				 body, strlen(body), NULL, &r),
			 0);
	assert_int_equal(r.code, 400);
	assert_non_null(strstr(r.body, "spec.bogus"));
	http_resp_free(&r);
}

/* ---- bad input: a 4xx naming the problem, nothing stored, the daemon serving
 * on ------- */

static void test_api_bad_input_table(void **state)
{
	(void)state;
	static char big[4 << 20];
	static char deep[3000];
	memset(big, ' ', sizeof(big) - 1);
	memcpy(big, "{\"a\":\"", 6);
	big[sizeof(big) - 3] = '"';
	big[sizeof(big) - 2] = '}';
	size_t d = 0;
	for (int i = 0; i < 1000; i++)
		deep[d++] = '[';
	for (int i = 0; i < 1000; i++)
		deep[d++] = ']';
	deep[d] = '\0';

	const struct {
		const char *what, *method, *path, *body;
		long code;
		const char *needle;
	} cases[] = {
		{ "malformed JSON", "POST", "/api/v1/namespaces/default/pods",
		  "{\"metadata\":", 400, "malformed JSON" },
		{ "not an object", "POST", "/api/v1/namespaces/default/pods", "[1,2]", 400,
		  "object" },
		{ "wrong type", "POST", "/api/v1/namespaces/default/pods",
		  "{\"metadata\":{\"name\":\"bad1\"},\"spec\":{\"containers\":\"x\"}}", 422,
		  "spec.containers" },
		{ "missing containers", "POST", "/api/v1/namespaces/default/pods",
		  "{\"metadata\":{\"name\":\"bad2\"},\"spec\":{}}", 422, "spec.containers" },
		{ "1,000-deep nesting", "POST", "/api/v1/namespaces/default/pods", deep, 400,
		  "deeper" },
		{ "4 MiB body", "POST", "/api/v1/namespaces/default/pods", big, 413, "limit" },
		{ "invalid name", "POST", "/api/v1/namespaces/default/pods",
		  "{\"metadata\":{\"name\":\"Bad_Name\"},\"spec\":{\"containers\":[{"
		  "\"name\":\"c\","
		  "\"image\":\"x\"}]}}",
		  422, "metadata.name" },
		{ "name too long", "POST", "/api/v1/namespaces/default/services",
		  "{\"metadata\":{\"name\":"
		  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaa\"},\"spec\":{\"ports\":[{\"port\":80}]}}",
		  422, "metadata.name" },
		{ "label value too long", "POST", "/api/v1/namespaces/default/pods",
		  "{\"metadata\":{\"name\":\"lbl\",\"labels\":{\"a\":"
		  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}},\"spec\":{\"containers\":[{"
		  "\"name\":"
		  "\"c\",\"image\":\"x\"}]}}",
		  422, "metadata.labels" },
		{ "negative replicas", "POST", "/apis/apps/v1/namespaces/default/deployments",
		  "{\"metadata\":{\"name\":\"neg\"},\"spec\":{\"replicas\":-1,"
		  "\"selector\":{"
		  "\"matchLabels\":{\"a\":\"b\"}},\"template\":{\"metadata\":{\"labels\":{"
		  "\"a\":\"b\"}},"
		  "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}}}",
		  422, "spec.replicas" },
		{ "bad quantity", "POST", "/api/v1/namespaces/default/pods",
		  "{\"metadata\":{\"name\":\"q\"},\"spec\":{\"containers\":[{\"name\":"
		  "\"c\",\"image\":"
		  "\"x\",\"resources\":{\"requests\":{\"cpu\":\"1.5.5\"}}}]}}",
		  422, "cpu" },
		{ "unknown kind", "POST", "/api/v1/namespaces/default/widgets", "{}", 404,
		  "not find" },
		{ "kind mismatch", "POST", "/api/v1/namespaces/default/pods",
		  "{\"kind\":\"Service\",\"metadata\":{\"name\":\"km\"}}", 400, "kind" },
		{ "namespace mismatch", "POST", "/api/v1/namespaces/default/pods",
		  "{\"metadata\":{\"name\":\"nm\",\"namespace\":\"other\"},\"spec\":{"
		  "\"containers\":[{"
		  "\"name\":\"c\",\"image\":\"x\"}]}}",
		  400, "namespace" },
		{ "missing namespace", "POST", "/api/v1/namespaces/nowhere/pods",
		  "{\"metadata\":{\"name\":\"mn\"},\"spec\":{\"containers\":[{\"name\":"
		  "\"c\","
		  "\"image\":\"x\"}]}}",
		  404, "nowhere" },
		{ "bad label selector", "GET", "/api/v1/pods?labelSelector=a%20in%20(", NULL, 400,
		  "labelSelector" },
		{ "bad field selector", "GET", "/api/v1/pods?fieldSelector=spec.bogus%3Dx", NULL,
		  400, "fieldSelector" },
		{ "bad resourceVersion", "GET", "/api/v1/pods?watch=1&resourceVersion=abc", NULL,
		  400, "resourceVersion" },
		{ "bad patch type", "PATCH", "/api/v1/namespaces/default/pods/none", "{}", 415,
		  "merge-patch" },
	};
	long code;
	json_t *before = http_json(&srv, "GET", "/api/v1/pods", NULL, &code);
	const char *rv_before = json_string_value(
		json_object_get(json_object_get(before, "metadata"), "resourceVersion"));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_resp r;
		const char *ctype = strcmp(cases[i].method, "PATCH") == 0
					    ? "application/json-patch+json"
					    : NULL;
		int err = http_do(&srv, cases[i].method, cases[i].path, ctype, cases[i].body,
				  cases[i].body ? strlen(cases[i].body) : 0, NULL, &r);
		if (err || r.code != cases[i].code || !r.body || !strstr(r.body, cases[i].needle) ||
		    !strstr(r.body, "\"kind\":\"Status\""))
			fail_msg("%s: expected %ld with \"%s\" in a Status, got %ld: %.300s",
				 cases[i].what, cases[i].code, cases[i].needle, r.code,
				 r.body ? r.body : "(nothing)");
		http_resp_free(&r);
	}
	/* Still serving, nothing written. */
	json_t *after = http_json(&srv, "GET", "/api/v1/pods", NULL, &code);
	assert_int_equal(code, 200);
	assert_string_equal(json_string_value(json_object_get(json_object_get(after, "metadata"),
							      "resourceVersion")),
			    rv_before);
	json_decref(before);
	json_decref(after);
}

static void test_api_health_version_metrics(void **state)
{
	(void)state;
	struct http_resp r;
	assert_int_equal(http_do(&srv, "GET", "/healthz", NULL, NULL, 0, NULL, &r), 0);
	assert_int_equal(r.code, 200);
	http_resp_free(&r);
	assert_int_equal(http_do(&srv, "GET", "/version", NULL, NULL, 0, NULL, &r), 0);
	assert_non_null(strstr(r.body, "gitVersion"));
	http_resp_free(&r);
	assert_int_equal(http_do(&srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r), 0);
	assert_int_equal(r.code, 200);
	assert_non_null(strstr(r.body, "shoal_apiserver_requests_total{verb="
				       "\"create\",resource=\"pods\",code=\"201\"}"));
	assert_non_null(strstr(r.body, "shoal_store_fsync_duration_seconds_bucket"));
	assert_non_null(strstr(r.body, "shoal_store_revision"));
	assert_non_null(strstr(r.body, "shoal_apiserver_watchers"));
	http_resp_free(&r);
	assert_int_equal(http_do(&srv, "GET", "/apis/apps/v1", NULL, NULL, 0, NULL, &r), 0);
	assert_non_null(strstr(r.body, "\"deployments\""));
	http_resp_free(&r);
}

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_api_crud_every_kind),
		      cmocka_unit_test(test_api_stale_resource_version_conflicts),
		      cmocka_unit_test(test_api_concurrent_writers_lose_no_update),
		      cmocka_unit_test(test_api_watch_resumes_without_gap_or_repeat),
		      cmocka_unit_test(test_api_watch_sees_live_writes_and_selectors_filter),
		      cmocka_unit_test(test_api_watch_bookmarks_arrive),
		      cmocka_unit_test(test_api_pagination_is_one_snapshot),
		      cmocka_unit_test(test_api_service_gets_unique_cluster_ip_and_node_port),
		      cmocka_unit_test(test_api_bound_pod_deletes_gracefully),
		      cmocka_unit_test(test_api_scale_subresource),
		      cmocka_unit_test(test_api_status_write_keeps_spec),
		      cmocka_unit_test(test_api_noop_write_keeps_resource_version),
		      cmocka_unit_test(test_api_unknown_fields_warn_or_fail_strict),
		      cmocka_unit_test(test_api_bad_input_table),
		      cmocka_unit_test(test_api_health_version_metrics))
