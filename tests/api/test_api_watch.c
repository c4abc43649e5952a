// SPDX-License-Identifier: Apache-2.0
/*
 * Watch fan-out against a real shoald (temporary store, unix socket) with a small event ring:
 * lists and watches of one node's pods (served from the node index), watchers that are not
 * woken by events of other kinds or nodes and still outlive the ring, and a shutdown with
 * many streams open (every stream ends properly, shoald exits with 0); and the delivery latency
 * that /metrics reports.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shoal_test.h"
#include "shoald_fixture.h"

#define RING 40 /* --watch-cache-events: the tests write several times as much */

static struct shoald srv;

static int setup(void **state)
{
	(void)state;
	const char *args[] = { "--disable-scheduler",
			       "--disable-controllers",
			       "--log-level",
			       "warn",
			       "--watch-cache-events",
			       "40",
			       NULL };
	return shoald_start(&srv, args);
}

static int teardown(void **state)
{
	(void)state;
	int st = shoald_stop(&srv);
	shoald_destroy(&srv);
	return st == 0 ? 0 : -1;
}

/* Creates pod NAME in default, bound to node (NULL: unscheduled); returns its revision. */
static long long make_pod(const char *name, const char *node)
{
	char body[512];
	long code;
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"%s\"},\"spec\":{%s%s%s\"containers\":[{\"name\":\"c\","
		 "\"image\":\"web\"}]}}",
		 name, node ? "\"nodeName\":\"" : "", node ? node : "", node ? "\"," : "");
	json_t *o = http_json(&srv, "POST", "/api/v1/namespaces/default/pods", body, &code);
	if (code != 201)
		fail_msg("create pod %s on %s: HTTP %ld", name, node ? node : "(none)", code);
	long long rv = obj_rv(o);
	json_decref(o);
	return rv;
}

static long long current_rv(void)
{
	long code;
	json_t *o =
		http_json(&srv, "GET", "/api/v1/namespaces/default/services?limit=1", NULL, &code);
	assert_int_equal(code, 200);
	long long rv = atoll(json_string_value(
		json_object_get(json_object_get(o, "metadata"), "resourceVersion")));
	json_decref(o);
	return rv;
}

/* The names of a list's items or a watch's objects, in order, comma-separated. */
static void names_of(const json_t *arr, bool events, char *out, size_t len)
{
	size_t n = 0, i;
	json_t *v;
	out[0] = '\0';
	json_array_foreach (arr, i, v) {
		const json_t *o = events ? json_object_get(v, "object") : v;
		if (events &&
		    strcmp(json_string_value(json_object_get(v, "type")), "BOOKMARK") == 0)
			continue;
		n += snprintf(
			out + n, len - n, "%s%s%s%s", n ? "," : "",
			events ? json_string_value(json_object_get(v, "type")) : "",
			events ? ":" : "",
			json_string_value(json_object_get(json_object_get(o, "metadata"), "name")));
		if (n >= len)
			break;
	}
}

static void test_watch_pods_by_node_lists_and_watches(void **state)
{
	(void)state;
	char names[1024];
	long code;

	make_pod("bn-a1", "bn-node-a");
	make_pod("bn-b1", "bn-node-b");
	make_pod("bn-a2", "bn-node-a");
	make_pod("bn-u1", NULL);
	/* A list by node, whole and paged (the first page from the cache, the next from the
	 * store at the same revision). */
	json_t *o = http_json(&srv, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dbn-node-a",
			      NULL, &code);
	assert_int_equal(code, 200);
	names_of(json_object_get(o, "items"), false, names, sizeof(names));
	assert_string_equal(names, "bn-a1,bn-a2");
	json_decref(o);
	o = http_json(&srv, "GET",
		      "/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dbn-node-a"
		      "&limit=1",
		      NULL, &code);
	assert_int_equal(code, 200);
	names_of(json_object_get(o, "items"), false, names, sizeof(names));
	assert_string_equal(names, "bn-a1");
	const char *cont =
		json_string_value(json_object_get(json_object_get(o, "metadata"), "continue"));
	assert_non_null(cont);
	char path[512];
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%%3Dbn-node-a"
		 "&limit=1&continue=%s",
		 cont);
	json_decref(o);
	o = http_json(&srv, "GET", path, NULL, &code);
	assert_int_equal(code, 200);
	names_of(json_object_get(o, "items"), false, names, sizeof(names));
	assert_string_equal(names, "bn-a2");
	json_decref(o);
	/* A node with no pods lists empty; unscheduled pods are spec.nodeName="". */
	o = http_json(&srv, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dbn-node-z&limit=5",
		      NULL, &code);
	assert_int_equal(code, 200);
	assert_int_equal(json_array_size(json_object_get(o, "items")), 0);
	json_decref(o);
	o = http_json(&srv, "GET",
		      "/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3D,"
		      "metadata.name%3Dbn-u1",
		      NULL, &code);
	names_of(json_object_get(o, "items"), false, names, sizeof(names));
	assert_string_equal(names, "bn-u1");
	json_decref(o);

	/* A watch by node: the current state first, then only that node's changes; an
	 * unscheduled pod bound to it arrives as ADDED, and leaves the unscheduled watch as
	 * DELETED. */
	long long rv = current_rv();
	make_pod("bn-b2", "bn-node-b");
	make_pod("bn-a3", "bn-node-a");
	o = http_json(&srv, "POST", "/api/v1/namespaces/default/pods/bn-u1/binding",
		      "{\"target\":{\"kind\":\"Node\",\"name\":\"bn-node-a\"}}", &code);
	assert_int_equal(code, 201);
	json_decref(o);
	o = http_json(&srv, "DELETE", "/api/v1/namespaces/default/pods/bn-a1?gracePeriodSeconds=0",
		      NULL, &code);
	assert_int_equal(code, 200);
	json_decref(o);
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/default/pods?watch=1&fieldSelector=spec.nodeName%%3Dbn-node-a"
		 "&resourceVersion=%lld&timeoutSeconds=1",
		 rv);
	json_t *evs = http_watch(&srv, path, 3000, &code);
	assert_int_equal(code, 200);
	names_of(evs, true, names, sizeof(names));
	assert_string_equal(names, "ADDED:bn-a3,ADDED:bn-u1,DELETED:bn-a1");
	json_decref(evs);
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/default/pods?watch=1&fieldSelector=spec.nodeName%%3D"
		 "&resourceVersion=%lld&timeoutSeconds=1",
		 rv);
	evs = http_watch(&srv, path, 3000, &code);
	names_of(evs, true, names, sizeof(names));
	assert_string_equal(names, "DELETED:bn-u1");
	json_decref(evs);
	evs = http_watch(&srv,
			 "/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3Dbn-node-b"
			 "&timeoutSeconds=1",
			 3000, &code);
	names_of(evs, true, names, sizeof(names));
	assert_string_equal(names, "ADDED:bn-b1,ADDED:bn-b2");
	json_decref(evs);
}

struct watch_arg {
	const char *path;
	json_t *evs;
	long code;
};

static void *watch_thread(void *p)
{
	struct watch_arg *a = p;
	a->evs = http_watch(&srv, a->path, 12000, &a->code);
	return NULL;
}

/* Watchers that nothing concerns while the ring turns over several times are not woken,
 * and then neither miss their event nor end as if they had fallen behind. */
static void test_watch_of_quiet_kind_outlives_the_ring(void **state)
{
	(void)state;
	char svc_path[256], pod_path[256], names[512];
	long long rv = current_rv();
	snprintf(svc_path, sizeof(svc_path),
		 "/api/v1/namespaces/default/services?watch=1&resourceVersion=%lld"
		 "&timeoutSeconds=8",
		 rv);
	snprintf(pod_path, sizeof(pod_path),
		 "/api/v1/pods?watch=1&fieldSelector=spec.nodeName%%3Dqr-quiet"
		 "&resourceVersion=%lld&timeoutSeconds=8",
		 rv);
	struct watch_arg svc = { .path = svc_path }, pod = { .path = pod_path };
	pthread_t t1, t2;
	assert_int_equal(pthread_create(&t1, NULL, watch_thread, &svc), 0);
	assert_int_equal(pthread_create(&t2, NULL, watch_thread, &pod), 0);
	usleep(500 * 1000); /* both parked */
	for (int i = 0; i < 3 * RING; i++) {
		char name[32];
		snprintf(name, sizeof(name), "qr-busy-%d", i);
		make_pod(name, "qr-busy");
	}
	long code;
	json_t *o = http_json(&srv, "POST", "/api/v1/namespaces/default/services",
			      "{\"metadata\":{\"name\":\"qr-svc\"},\"spec\":{\"ports\":[{\"port\":"
			      "80}]}}",
			      &code);
	assert_int_equal(code, 201);
	json_decref(o);
	make_pod("qr-mine", "qr-quiet");
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(svc.code, 200);
	names_of(svc.evs, true, names, sizeof(names));
	assert_string_equal(names, "ADDED:qr-svc");
	names_of(pod.evs, true, names, sizeof(names));
	assert_string_equal(names, "ADDED:qr-mine");
	json_decref(svc.evs);
	json_decref(pod.evs);

	/* A watcher that was woken and did fall behind the ring is told so on resuming. */
	char path[256];
	snprintf(path, sizeof(path), "/api/v1/pods?watch=1&resourceVersion=%lld", rv);
	struct http_resp r;
	assert_int_equal(http_do(&srv, "GET", path, NULL, NULL, 0, NULL, &r), 0);
	assert_int_equal(r.code, 410);
	http_resp_free(&r);
}

/* shoal_watch_delivery_duration_seconds_count in /metrics. */
static long long deliveries_counted(void)
{
	static const char key[] = "\nshoal_watch_delivery_duration_seconds_count ";
	struct http_resp r;
	long long n = -1;
	assert_int_equal(http_do(&srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r), 0);
	assert_int_equal(r.code, 200);
	const char *p = r.body ? strstr(r.body, key) : NULL;
	if (p)
		n = atoll(p + sizeof(key) - 1);
	http_resp_free(&r);
	return n;
}

/* An event written to a watcher by the watch writers is counted in the delivery histogram;
 * the initial state (here: none) and bookmarks are not. */
static void test_watch_delivery_is_measured(void **state)
{
	(void)state;
	char path[256];
	long code;
	long long rv = current_rv(), before = deliveries_counted();
	assert_true(before >= 0);
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/default/services?watch=1&resourceVersion=%lld"
		 "&fieldSelector=metadata.name%%3Ddm-svc&timeoutSeconds=3",
		 rv);
	struct watch_arg w = { .path = path };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, watch_thread, &w), 0);
	usleep(500 * 1000); /* parked, and handed to a writer */
	json_t *o = http_json(&srv, "POST", "/api/v1/namespaces/default/services",
			      "{\"metadata\":{\"name\":\"dm-svc\"},\"spec\":{\"ports\":[{\"port\":"
			      "80}]}}",
			      &code);
	assert_int_equal(code, 201);
	json_decref(o);
	pthread_join(t, NULL);
	assert_int_equal(w.code, 200);
	char names[128];
	names_of(w.evs, true, names, sizeof(names));
	assert_string_equal(names, "ADDED:dm-svc");
	json_decref(w.evs);
	long long after = deliveries_counted();
	if (after < before + 1)
		fail_msg("deliveries counted in /metrics: %lld before the event, %lld after; "
			 "expected one more at least",
			 before, after);
}

/* Opens a watch on a raw socket; returns the fd or -1. */
static int open_watch(const struct shoald *s, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char req[512];
	if (strlen(s->sock) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, s->sock, strlen(s->sock) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: shoal\r\n\r\n", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || write(fd, req, n) != n) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads until EOF (at most ms); returns the bytes read, with the last 16 in tail. */
static long read_to_eof(int fd, int ms, char *tail)
{
	char buf[4096];
	long total = 0;
	size_t tl = 0;
	tail[0] = '\0';
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, ms) <= 0)
			return -ETIMEDOUT;
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k < 0)
			return -errno;
		if (k == 0)
			return total;
		total += k;
		for (ssize_t i = 0; i < k; i++) {
			if (tl == 15)
				memmove(tail, tail + 1, --tl);
			tail[tl++] = buf[i];
		}
		tail[tl] = '\0';
	}
}

/* SIGTERM with hundreds of watch streams open, idle or busy: every stream ends with the last
 * chunk and shoald exits with 0 (libmicrohttpd aborts when a daemon stops with a suspended
 * connection). */
static void test_watch_shutdown_with_streams_open_exits_cleanly(void **state)
{
	(void)state;
	enum { N = 300 };
	struct shoald s2 = { 0 };
	const char *args[] = { "--disable-scheduler", "--log-level", "warn", NULL };
	int fds[N], i;
	char tail[16];

	assert_int_equal(shoald_start(&s2, args), 0);
	for (i = 0; i < N; i++) {
		const char *path = i % 3 == 0 ? "/api/v1/pods?watch=1&allowWatchBookmarks=true"
				   : i % 3 == 1
					   ? "/api/v1/namespaces/default/services?watch=1"
					   : "/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3Dx";
		fds[i] = open_watch(&s2, path);
		assert_true(fds[i] >= 0);
	}
	/* Writes land while the streams are being set up and parked. */
	for (i = 0; i < 20; i++) {
		char body[256];
		struct http_resp r;
		int n = snprintf(body, sizeof(body),
				 "{\"metadata\":{\"name\":\"sd-%d\"},\"spec\":{\"containers\":[{"
				 "\"name\":\"c\",\"image\":\"web\"}]}}",
				 i);
		assert_int_equal(http_do(&s2, "POST", "/api/v1/namespaces/default/pods", NULL, body,
					 (size_t)n, NULL, &r),
				 0);
		assert_int_equal(r.code, 201);
		http_resp_free(&r);
	}
	usleep(300 * 1000);
	int st = shoald_stop(&s2);
	for (i = 0; i < N; i++) {
		long got = read_to_eof(fds[i], 5000, tail);
		if (got < 0)
			fail_msg("watch %d: no end of stream after shutdown: %s", i,
				 strerror((int)-got));
		if (!strstr(tail, "0\r\n\r\n"))
			fail_msg("watch %d: the stream did not end with the last chunk (got %ld "
				 "bytes, ending \"%s\")",
				 i, got, tail);
		close(fds[i]);
	}
	if (st != 0) {
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "tail -n 20 %s/shoald.log | sed 's/^/# /'", s2.dir);
		if (system(cmd) != 0)
			print_message("# (no log)\n");
	}
	shoald_destroy(&s2);
	assert_int_equal(st, 0);
}

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_watch_pods_by_node_lists_and_watches),
		      cmocka_unit_test(test_watch_of_quiet_kind_outlives_the_ring),
		      cmocka_unit_test(test_watch_delivery_is_measured),
		      cmocka_unit_test(test_watch_shutdown_with_streams_open_exits_cleanly))
