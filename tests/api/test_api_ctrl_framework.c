// SPDX-License-Identifier: Apache-2.0
/*
 * The controller framework (controlplane/ctrl.h) on a real API server in this process, with a
 * probe controller of the test's own: informers follow the watch cache and index what they
 * hold (by owner, by label, by selector), handlers queue keys, workers reconcile them once at
 * a time and retry failures with back-off, expectations hold a key until its children are
 * seen, and an informer that falls behind the event history lists again and catches up
 * (deletions it missed included).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_local.h"
#include "api_server.h"
#include "ctrl.h"
#include "shoal_test.h"
#include "store.h"
#include "strbuf.h"

static struct {
	char dir[128];
	struct store *st;
	struct api_server *srv;
	struct ctrl_manager *m;
	struct ctrl *c;
	struct ctrl_informer *pods, *rs;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	char seen[64][128]; /* keys reconciled, in order */
	int nseen;
	int fail_left; /* reconciles of default/flaky that fail */
	int64_t flaky_ms[8];
	int nflaky;
	bool gate_closed; /* pod events wait while it is closed */
	bool stalled;	  /* the informer thread waits at the gate */
	int pod_events;
} T;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void on_pod(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		   const struct ctrl_obj *old)
{
	(void)ev;
	(void)old;
	pthread_mutex_lock(&T.mu);
	while (T.gate_closed) {
		T.stalled = true;
		pthread_cond_broadcast(&T.cond);
		pthread_cond_wait(&T.cond, &T.mu);
	}
	T.stalled = false;
	T.pod_events++;
	pthread_mutex_unlock(&T.mu);
	if (now->controller) {
		struct ctrl_obj *owner = ctrl_get_uid(T.rs, now->controller->uid);
		if (owner) {
			if (ev == CTRL_ADDED)
				ctrl_creation_observed(c, owner->key);
			ctrl_queue(c, owner->key);
		}
		ctrl_obj_unref(owner);
	}
}

static void on_rs(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		  const struct ctrl_obj *old)
{
	(void)ev;
	(void)old;
	ctrl_queue(c, now->key);
}

static int probe_init(struct ctrl *c)
{
	T.c = c;
	T.pods = ctrl_informer(c, "v1", "Pod", CTRL_INDEX_LABELS);
	T.rs = ctrl_informer(c, "apps/v1", "ReplicaSet", CTRL_INDEX_SELECTORS);
	if (!T.pods || !T.rs)
		return -errno;
	if (ctrl_on(c, T.pods, on_pod) || ctrl_on(c, T.rs, on_rs))
		return -E2BIG;
	return 0;
}

static int probe_reconcile(struct ctrl *c, const char *key)
{
	(void)c;
	int rc = 0;
	pthread_mutex_lock(&T.mu);
	if (T.nseen < 64)
		snprintf(T.seen[T.nseen++], sizeof(T.seen[0]), "%s", key);
	if (strcmp(key, "default/flaky") == 0) {
		if (T.nflaky < 8)
			T.flaky_ms[T.nflaky++] = now_ms();
		if (T.fail_left > 0) {
			T.fail_left--;
			rc = -EIO;
		}
	}
	pthread_cond_broadcast(&T.cond);
	pthread_mutex_unlock(&T.mu);
	return rc;
}

static const struct ctrl_def probe = {
	.name = "probe", .workers = 2, .init = probe_init, .reconcile = probe_reconcile
};

static int setup(void **state)
{
	char uri[256], listen[300];
	(void)state;
	pthread_mutex_init(&T.mu, NULL);
	pthread_cond_init(&T.cond, NULL);
	snprintf(T.dir, sizeof(T.dir), "/tmp/shoal-ctrl-fw.XXXXXX");
	if (!mkdtemp(T.dir))
		return -1;
	snprintf(uri, sizeof(uri), "lmdb:%s/store", T.dir);
	T.st = store_open(uri, NULL);
	if (!T.st)
		return -1;
	snprintf(listen, sizeof(listen), "unix:%s/api.sock", T.dir);
	/* A short event history, so that a stalled informer can fall behind it. */
	struct api_server_opts o = { .listen = { listen },
				     .no_scheduler = 1,
				     .no_controllers = 1,
				     .watch_ring_events = 32 };
	T.srv = api_server_start(T.st, &o);
	if (!T.srv)
		return -1;
	static const struct ctrl_def *const defs[] = { &probe, NULL };
	T.m = ctrl_manager_start(T.srv, NULL, defs);
	return T.m ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	(void)state;
	ctrl_manager_stop(T.m);
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

static bool seen(const char *key)
{
	for (int i = 0; i < T.nseen; i++)
		if (strcmp(T.seen[i], key) == 0)
			return true;
	return false;
}

/* Waits (at most ms) until key was reconciled. */
static bool wait_seen(const char *key, int ms)
{
	struct timespec until;
	bool ok;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&T.mu);
	while (!(ok = seen(key)) && pthread_cond_timedwait(&T.cond, &T.mu, &until) == 0)
		;
	ok = seen(key);
	pthread_mutex_unlock(&T.mu);
	return ok;
}

static void clear_seen(void)
{
	pthread_mutex_lock(&T.mu);
	T.nseen = 0;
	pthread_mutex_unlock(&T.mu);
}

/* Waits until the pod informer holds n pods of namespace default with label app=value. */
static size_t wait_pods(const char *app, size_t n, int ms)
{
	char err[128];
	char sel_s[64];
	snprintf(sel_s, sizeof(sel_s), "app=%s", app);
	struct selector *sel = selector_parse(sel_s, err, sizeof(err));
	size_t got = 0;
	for (int waited = 0; waited <= ms; waited += 10) {
		struct ctrl_objs l = { 0 };
		assert_int_equal(ctrl_select(T.pods, "default", sel, &l), 0);
		got = l.n;
		ctrl_objs_free(&l);
		if (got == n)
			break;
		usleep(10000);
	}
	selector_free(sel);
	return got;
}

static const char *RS = "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"replicas\":2,\"selector\":{"
			"\"matchLabels\":{\"app\":\"%s\"}},\"template\":{\"metadata\":{\"labels\":{"
			"\"app\":\"%s\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":"
			"\"busybox\"}]}}}}";

static void create_pod(const char *name, const char *app, const char *owner_uid, const char *owner)
{
	char body[1024], refs[400] = "";
	long code;
	if (owner_uid)
		snprintf(
			refs, sizeof(refs),
			",\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\","
			"\"name\":\"%s\",\"uid\":\"%s\",\"controller\":true}]",
			owner, owner_uid);
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"%s\",\"labels\":{\"app\":\"%s\",\"tier\":\"t\"}%s},"
		 "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\",\"ports\":[{"
		 "\"name\":\"http\",\"containerPort\":8080}]}]}}",
		 name, app, refs);
	json_t *p = local("POST", "/api/v1/namespaces/default/pods", body, &code);
	assert_int_equal(code, 201);
	json_decref(p);
}

static void test_api_ctrl_framework_indexes_and_handlers(void **state)
{
	char body[1024], err[128];
	long code;
	(void)state;
	snprintf(body, sizeof(body), RS, "web", "web", "web");
	json_t *rs = local("POST", "/apis/apps/v1/namespaces/default/replicasets", body, &code);
	assert_int_equal(code, 201);
	char uid[64];
	snprintf(uid, sizeof(uid), "%s",
		 json_string_value(json_object_get(json_object_get(rs, "metadata"), "uid")));
	json_decref(rs);
	assert_true(wait_seen("default/web", 2000));

	create_pod("web-1", "web", uid, "web");
	create_pod("web-2", "web", uid, "web");
	create_pod("stray", "web", NULL, NULL);
	create_pod("db-1", "db", NULL, NULL);
	assert_int_equal(wait_pods("web", 3, 2000), 3);
	assert_int_equal(wait_pods("db", 1, 2000), 1);

	/* by owner */
	struct ctrl_objs l = { 0 };
	assert_int_equal(ctrl_owned(T.pods, uid, &l), 0);
	assert_int_equal(l.n, 2);
	for (size_t i = 0; i < l.n; i++) {
		assert_string_equal(l.v[i]->controller->uid, uid);
		assert_string_equal(l.v[i]->controller->kind, "ReplicaSet");
		/* the pod summary */
		assert_non_null(l.v[i]->pod);
		assert_int_equal(l.v[i]->pod->phase, POD_PENDING);
		assert_false(l.v[i]->pod->ready);
		assert_int_equal(l.v[i]->pod->nports, 1);
		assert_string_equal(l.v[i]->pod->ports[0].name, "http");
		assert_int_equal(l.v[i]->pod->ports[0].port, 8080);
		assert_int_equal(l.v[i]->pod->tolerate_unreachable_s, 300);
	}
	ctrl_objs_free(&l);

	/* by label selector: equality, set and existence */
	const char *sels[] = { "app=web", "app in (web,db)", "tier", "app=web,tier=x" };
	size_t want[] = { 3, 4, 4, 0 };
	for (int i = 0; i < 4; i++) {
		struct selector *s = selector_parse(sels[i], err, sizeof(err));
		assert_int_equal(ctrl_select(T.pods, "default", s, &l), 0);
		if (l.n != want[i])
			fail_msg("selector %s picked %zu pods, want %zu", sels[i], l.n, want[i]);
		ctrl_objs_free(&l);
		selector_free(s);
	}
	assert_int_equal(ctrl_select(T.pods, "default", NULL, &l), 0);
	assert_int_equal(l.n, 0);

	/* which selectors pick these labels */
	json_t *labels = json_pack("{s:s, s:s}", "app", "web", "tier", "t");
	assert_int_equal(ctrl_selecting(T.rs, "default", labels, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0]->key, "default/web");
	ctrl_objs_free(&l);
	json_object_set_new(labels, "app", json_string("db"));
	assert_int_equal(ctrl_selecting(T.rs, "default", labels, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(ctrl_selecting(T.rs, "other", labels, &l), 0);
	assert_int_equal(l.n, 0);
	json_decref(labels);

	/* A pod's status change reaches its record (and its owner's queue). */
	clear_seen();
	json_t *p =
		local("PATCH", "/api/v1/namespaces/default/pods/web-1/status",
		      "{\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.2.3\",\"conditions\":"
		      "[{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":"
		      "\"2024-01-02T03:04:05Z\"}]}}",
		      &code);
	assert_int_equal(code, 200);
	json_decref(p);
	assert_true(wait_seen("default/web", 2000));
	struct ctrl_obj *o = ctrl_get(T.pods, "default/web-1");
	assert_non_null(o);
	assert_true(o->pod->ready);
	assert_int_equal(o->pod->phase, POD_RUNNING);
	assert_string_equal(o->pod->ip, "10.1.2.3");
	assert_int_equal(o->pod->ready_since, 1704164645);
	ctrl_obj_unref(o);

	/* deletion leaves every index */
	p = local("DELETE", "/api/v1/namespaces/default/pods/web-2", NULL, &code);
	assert_int_equal(code, 200);
	json_decref(p);
	assert_int_equal(wait_pods("web", 2, 2000), 2);
	assert_int_equal(ctrl_owned(T.pods, uid, &l), 0);
	assert_int_equal(l.n, 1);
	ctrl_objs_free(&l);
	assert_null(ctrl_get(T.pods, "default/web-2"));
}

static void test_api_ctrl_framework_retries_with_backoff(void **state)
{
	char body[1024];
	long code;
	(void)state;
	pthread_mutex_lock(&T.mu);
	T.fail_left = 3;
	T.nflaky = 0;
	pthread_mutex_unlock(&T.mu);
	snprintf(body, sizeof(body), RS, "flaky", "flaky", "flaky");
	json_t *rs = local("POST", "/apis/apps/v1/namespaces/default/replicasets", body, &code);
	assert_int_equal(code, 201);
	json_decref(rs);
	for (int i = 0; i < 100; i++) {
		pthread_mutex_lock(&T.mu);
		int n = T.nflaky;
		pthread_mutex_unlock(&T.mu);
		if (n >= 4)
			break;
		usleep(10000);
	}
	pthread_mutex_lock(&T.mu);
	assert_true(T.nflaky >= 4);
	/* 5, 10, 20 ms apart at least */
	assert_true(T.flaky_ms[1] - T.flaky_ms[0] >= 5);
	assert_true(T.flaky_ms[2] - T.flaky_ms[1] >= 10);
	assert_true(T.flaky_ms[3] - T.flaky_ms[2] >= 20);
	pthread_mutex_unlock(&T.mu);

	struct strbuf m = { 0 };
	assert_int_equal(ctrl_manager_render(T.m, &m), 0);
	assert_non_null(strstr(m.s, "shoal_controller_reconciles_total{controller=\"probe\","
				    "result=\"error\"} 3\n"));
	assert_non_null(strstr(m.s, "shoal_controller_queue_depth{controller=\"probe\"}"));
	assert_non_null(strstr(m.s, "shoal_controller_informer_objects{resource=\"pods\"}"));
	strbuf_free(&m);
}

static void test_api_ctrl_framework_expectations(void **state)
{
	(void)state;
	assert_true(ctrl_expectations_met(T.c, "default/x"));
	ctrl_expect_creations(T.c, "default/x", 2);
	ctrl_expect_deletion(T.c, "default/x", "default/p1");
	assert_false(ctrl_expectations_met(T.c, "default/x"));
	ctrl_creation_observed(T.c, "default/x");
	ctrl_creation_observed(T.c, "default/x");
	assert_false(ctrl_expectations_met(T.c, "default/x"));
	ctrl_deletion_observed(T.c, "default/x", "default/other");
	assert_false(ctrl_expectations_met(T.c, "default/x"));
	ctrl_deletion_observed(T.c, "default/x", "default/p1");
	assert_true(ctrl_expectations_met(T.c, "default/x"));
	ctrl_expect_creations(T.c, "default/x", 1);
	ctrl_expectations_forget(T.c, "default/x");
	assert_true(ctrl_expectations_met(T.c, "default/x"));
}

/* The informer thread stalls while more events than the history holds go by; its watch ends,
 * it lists again, and its cache is what the watch cache holds: added pods in, deleted out. */
static void test_api_ctrl_framework_relists_after_falling_behind(void **state)
{
	char name[32];
	long code;
	(void)state;
	create_pod("gone-soon", "relist", NULL, NULL);
	assert_int_equal(wait_pods("relist", 1, 2000), 1);
	pthread_mutex_lock(&T.mu);
	T.gate_closed = true;
	pthread_mutex_unlock(&T.mu);
	/* The first event stalls the informer thread in the handler. */
	create_pod("stall", "other", NULL, NULL);
	pthread_mutex_lock(&T.mu);
	while (!T.stalled)
		pthread_cond_wait(&T.cond, &T.mu);
	pthread_mutex_unlock(&T.mu);
	json_t *d = local("DELETE", "/api/v1/namespaces/default/pods/gone-soon", NULL, &code);
	assert_int_equal(code, 200);
	json_decref(d);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "burst-%d", i);
		create_pod(name, "relist", NULL, NULL);
	}
	pthread_mutex_lock(&T.mu);
	T.gate_closed = false;
	pthread_cond_broadcast(&T.cond);
	pthread_mutex_unlock(&T.mu);
	assert_int_equal(wait_pods("relist", 40, 5000), 40);
	assert_null(ctrl_get(T.pods, "default/gone-soon"));
	struct strbuf m = { 0 };
	assert_int_equal(ctrl_manager_render(T.m, &m), 0);
	/* the first list and at least one more */
	assert_null(strstr(m.s, "shoal_controller_informer_lists_total{resource=\"pods\"} 1\n"));
	strbuf_free(&m);
}

SHOAL_TEST_MAIN_SETUP(setup, teardown,
		      cmocka_unit_test(test_api_ctrl_framework_indexes_and_handlers),
		      cmocka_unit_test(test_api_ctrl_framework_retries_with_backoff),
		      cmocka_unit_test(test_api_ctrl_framework_expectations),
		      cmocka_unit_test(test_api_ctrl_framework_relists_after_falling_behind))
