// SPDX-License-Identifier: Apache-2.0
/*
 * The informer (common/informer.h) against a real shoald: paginated first list, events with
 * their old state, selectors, resuming after shoald restarts, a relist after 410 Gone that
 * reports what disappeared meanwhile as DELETED, and a prompt stop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "informer.h"
#include "shoal_test.h"
#include "shoald_fixture.h"

static struct shoald srv;
static char server[400];

/* What the handler saw, in order. */
struct seen {
	pthread_mutex_t mu;
	char log[64][80]; /* "ADDED p1", "MODIFIED p1 from 5", "DELETED p1" */
	int n;
	int synced;
	int errors, last_error; /* on_error calls and the last one's code */
	/* when set, the handler blocks until released (to make the watch fall behind) */
	int hold;
	pthread_cond_t cond;
};

static void on_event(void *arg, enum informer_event t, json_t *obj, json_t *old)
{
	struct seen *s = arg;
	const char *name =
		json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
	static const char *const names[] = { "ADDED", "MODIFIED", "DELETED" };

	pthread_mutex_lock(&s->mu);
	while (s->hold)
		pthread_cond_wait(&s->cond, &s->mu);
	if (s->n < 64) {
		if (t == INF_MODIFIED)
			snprintf(s->log[s->n], sizeof(s->log[0]), "%s %s from %s", names[t], name,
				 json_string_value(json_object_get(
					 json_object_get(old, "metadata"), "resourceVersion")));
		else
			snprintf(s->log[s->n], sizeof(s->log[0]), "%s %s", names[t], name);
		s->n++;
	}
	pthread_mutex_unlock(&s->mu);
}

static void on_synced(void *arg)
{
	struct seen *s = arg;
	pthread_mutex_lock(&s->mu);
	s->synced++;
	pthread_mutex_unlock(&s->mu);
}

static void seen_init(struct seen *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
}

/* True when the log holds line (waits up to ms). */
static bool saw(struct seen *s, const char *line, int ms)
{
	for (int waited = 0; waited <= ms; waited += 10) {
		pthread_mutex_lock(&s->mu);
		for (int i = 0; i < s->n; i++) {
			if (strncmp(s->log[i], line, strlen(line)) == 0) {
				pthread_mutex_unlock(&s->mu);
				return true;
			}
		}
		pthread_mutex_unlock(&s->mu);
		usleep(10000);
	}
	return false;
}

static int count_prefix(struct seen *s, const char *prefix)
{
	int c = 0;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n; i++)
		c += strncmp(s->log[i], prefix, strlen(prefix)) == 0;
	pthread_mutex_unlock(&s->mu);
	return c;
}

static json_t *make_cm(const char *ns, const char *name, const char *app)
{
	char body[512], path[256];
	long code;
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"%s\",\"labels\":{\"app\":\"%s\"}},\"spec\":{\"containers\":"
		 "[{\"name\":\"c\",\"image\":\"x\",\"command\":[\"true\"]}]}}",
		 name, app);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods", ns);
	json_t *o = http_json(&srv, "POST", path, body, &code);
	assert_int_equal(code, 201);
	return o;
}

static void del_pod(const char *name)
{
	char path[256];
	long code;
	snprintf(path, sizeof(path), "/api/v1/namespaces/default/pods/%s?gracePeriodSeconds=0",
		 name);
	json_decref(http_json(&srv, "DELETE", path, NULL, &code));
	assert_true(code == 200 || code == 202);
}

static int setup(void **state)
{
	static const char *const extra[] = { "--disable-scheduler", "--watch-cache-events", "16",
					     NULL };
	(void)state;
	if (shoald_start(&srv, extra))
		return -1;
	snprintf(server, sizeof(server), "unix:%s", srv.sock);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	shoald_destroy(&srv);
	return 0;
}

static void test_informer_list_and_events(void **state)
{
	struct seen s;
	(void)state;
	seen_init(&s);
	for (int i = 0; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "a%d", i);
		json_decref(make_cm("default", name, "a"));
	}
	struct informer_opts o = { .server = server, .path = "/api/v1/namespaces/default/pods",
				   .label_selector = "app=a", .page_limit = 2,
				   .on_event = on_event, .on_synced = on_synced, .arg = &s };
	struct informer *inf = informer_start(&o);
	assert_non_null(inf);
	assert_int_equal(informer_wait_synced(inf, 5000), 0);
	assert_int_equal(count_prefix(&s, "ADDED a"), 5);
	assert_int_equal(s.synced, 1);

	json_t **objs;
	size_t n;
	assert_int_equal(informer_list(inf, &objs, &n), 0);
	assert_int_equal(n, 5);
	informer_list_free(objs, n);

	/* Another label is filtered out; an update comes with its old state. */
	json_decref(make_cm("default", "b0", "b"));
	json_t *a0 = informer_get(inf, "default", "a0");
	assert_non_null(a0);
	const char *rv0 = json_string_value(
		json_object_get(json_object_get(a0, "metadata"), "resourceVersion"));
	char want[80];
	snprintf(want, sizeof(want), "MODIFIED a0 from %s", rv0);
	json_object_set_new(json_object_get(a0, "metadata"), "annotations",
			    json_pack("{s:s}", "x", "1"));
	char *body = json_dumps(a0, JSON_COMPACT);
	long code;
	json_decref(http_json(&srv, "PUT", "/api/v1/namespaces/default/pods/a0", body, &code));
	free(body);
	json_decref(a0);
	assert_int_equal(code, 200);
	assert_true(saw(&s, want, 3000));
	del_pod("a1");
	assert_true(saw(&s, "DELETED a1", 3000));
	assert_null(informer_get(inf, "default", "a1"));
	assert_int_equal(count_prefix(&s, "ADDED b"), 0);

	struct informer_stats st;
	informer_stats(inf, &st);
	assert_int_equal(st.lists, 1);
	assert_true(st.events >= 7);

	/* Stopping with an idle watch open is prompt. */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	informer_stop(inf);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 500);
}

static void on_error(void *arg, int err)
{
	struct seen *s = arg;
	pthread_mutex_lock(&s->mu);
	s->errors++;
	s->last_error = err;
	pthread_mutex_unlock(&s->mu);
}

static void test_informer_resumes_after_restart(void **state)
{
	struct seen s;
	(void)state;
	seen_init(&s);
	struct informer_opts o = { .server = server, .path = "/api/v1/pods",
				   .field_selector = "metadata.namespace=default",
				   .on_event = on_event, .on_synced = on_synced, .on_error = on_error,
				   .arg = &s };
	struct informer *inf = informer_start(&o);
	assert_non_null(inf);
	assert_int_equal(informer_wait_synced(inf, 5000), 0);
	int lists = s.synced;
	assert_int_equal(s.errors, 0);

	assert_int_equal(shoald_stop(&srv), 0);
	/* nothing listens: the watch's failures are reported, each a negative errno */
	for (int i = 0; i < 100; i++) {
		pthread_mutex_lock(&s.mu);
		int e = s.errors;
		pthread_mutex_unlock(&s.mu);
		if (e)
			break;
		usleep(50000);
	}
	pthread_mutex_lock(&s.mu);
	assert_true(s.errors >= 1);
	assert_true(s.last_error < 0);
	pthread_mutex_unlock(&s.mu);
	assert_int_equal(shoald_restart(&srv), 0);
	json_decref(make_cm("default", "r0", "r"));
	assert_true(saw(&s, "ADDED r0", 10000));
	/* Resumed from its revision, not listed again. */
	pthread_mutex_lock(&s.mu);
	assert_int_equal(s.synced, lists);
	pthread_mutex_unlock(&s.mu);
	informer_stop(inf);
}

static void test_informer_relists_after_gone(void **state)
{
	struct seen s;
	(void)state;
	seen_init(&s);
	json_decref(make_cm("default", "g0", "g"));
	json_decref(make_cm("default", "g1", "g"));
	struct informer_opts o = { .server = server, .path = "/api/v1/namespaces/default/pods",
				   .label_selector = "app=g", .on_event = on_event,
				   .on_synced = on_synced, .arg = &s };
	struct informer *inf = informer_start(&o);
	assert_non_null(inf);
	assert_int_equal(informer_wait_synced(inf, 5000), 0);

	/* Hold the handler on the next event; meanwhile shoald restarts (its watch history
	 * starts afresh) and more changes are made than it keeps (16 events): resuming from
	 * the held revision gets 410 Gone, and the relist reports g0 as DELETED. */
	pthread_mutex_lock(&s.mu);
	s.hold = 1;
	pthread_mutex_unlock(&s.mu);
	json_decref(make_cm("default", "g2", "g"));
	usleep(100000);
	assert_int_equal(shoald_stop(&srv), 0);
	assert_int_equal(shoald_restart(&srv), 0);
	del_pod("g0");
	for (int i = 0; i < 20; i++) {
		char name[16];
		snprintf(name, sizeof(name), "f%d", i);
		json_decref(make_cm("default", name, "filler"));
	}
	pthread_mutex_lock(&s.mu);
	s.hold = 0;
	pthread_cond_broadcast(&s.cond);
	pthread_mutex_unlock(&s.mu);

	assert_true(saw(&s, "DELETED g0", 10000));
	json_t *g2 = NULL;
	for (int w = 0; w < 500 && !(g2 = informer_get(inf, "default", "g2")); w++)
		usleep(10000);
	assert_non_null(g2);
	json_decref(g2);
	assert_null(informer_get(inf, "default", "g0"));
	struct informer_stats st;
	informer_stats(inf, &st);
	assert_true(st.lists >= 2);
	assert_true(st.gone >= 1);
	informer_stop(inf);
}

static void test_informer_bad_options(void **state)
{
	(void)state;
	struct informer_opts o = { .server = server, .path = "api/v1/pods" };
	errno = 0;
	assert_null(informer_start(&o));
	assert_int_equal(errno, EINVAL);
	o.path = "/api/v1/pods";
	o.server = "gopher://x";
	assert_null(informer_start(&o));
}

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_informer_list_and_events),
		      cmocka_unit_test(test_informer_resumes_after_restart),
		      cmocka_unit_test(test_informer_relists_after_gone),
		      cmocka_unit_test(test_informer_bad_options))
