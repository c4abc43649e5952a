// SPDX-License-Identifier: Apache-2.0
/*
 * Events the controllers record, as `shoalctl describe` shows them: a ReplicaSet names each pod
 * it creates and deletes, a Deployment each scaling of its ReplicaSets, a Job its completion;
 * an equal event again raises the count of the one Event instead of adding another; Events
 * older than --event-ttl are deleted; the recorder's figures are in /metrics.
 */
#define CTRL_EXTRA_ARGS "--event-ttl", "20s",
#include "ctrl_helpers.h"

/* Events about the object with that uid and reason (a new reference to an array). */
static json_t *events_of(const char *uid, const char *reason)
{
	json_t *all = items(
		fmt("/api/v1/namespaces/default/events?fieldSelector=involvedObject.uid%%3D%s", uid));
	json_t *out = json_array();
	size_t i;
	json_t *ev;
	json_array_foreach (all, i, ev) {
		const char *r = jstr(ev, "reason");
		if (r && strcmp(r, reason) == 0)
			json_array_append(out, ev);
	}
	json_decref(all);
	return out;
}

static size_t count_events(const char *uid, const char *reason)
{
	json_t *l = events_of(uid, reason);
	size_t n = json_array_size(l);
	json_decref(l);
	return n;
}

/* Whether one of the events has exactly this message; its count goes to *count. */
static bool has_message(const json_t *evs, const char *msg, long long *count)
{
	size_t i;
	json_t *ev;
	json_array_foreach (evs, i, ev) {
		const char *m = jstr(ev, "message");
		if (m && strcmp(m, msg) == 0) {
			if (count)
				*count = jint(ev, "count");
			return true;
		}
	}
	return false;
}

static void test_api_ctrl_events_rs_names_each_pod(void **state)
{
	(void)state;
	json_t *rs = req("POST", "/apis/apps/v1/namespaces/default/replicasets",
			 "{\"metadata\":{\"name\":\"evrs\"},\"spec\":{\"replicas\":3,\"selector\":{"
			 "\"matchLabels\":{\"app\":\"evrs\"}},\"template\":{\"metadata\":{\"labels\":"
			 "{\"app\":\"evrs\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":"
			 "\"web\"}]}}}}",
			 201);
	const char *uid = jstr(rs, "metadata.uid");
	WAIT_FOR(10000, count_events(uid, "SuccessfulCreate") == 3,
		 "want 3 SuccessfulCreate events, have %zu", count_events(uid, "SuccessfulCreate"));
	json_t *evs = events_of(uid, "SuccessfulCreate");
	json_t *l = pods("app%3Devrs");
	size_t i;
	json_t *p;
	json_array_foreach (l, i, p) {
		const char *name = jstr(p, "metadata.name");
		if (!has_message(evs, fmt("Created pod: %s", name), NULL))
			fail_msg("no \"Created pod: %s\" event", name);
	}
	json_t *ev = json_array_get(evs, 0);
	assert_string_equal(jstr(ev, "type"), "Normal");
	assert_string_equal(jstr(ev, "involvedObject.kind"), "ReplicaSet");
	assert_string_equal(jstr(ev, "involvedObject.name"), "evrs");
	assert_string_equal(jstr(ev, "involvedObject.namespace"), "default");
	assert_string_equal(jstr(ev, "source.component"), "shoald");
	assert_non_null(jstr(ev, "firstTimestamp"));
	assert_int_equal(jint(ev, "count"), 1);
	json_decref(evs);
	json_decref(l);

	req0("PATCH", "/apis/apps/v1/namespaces/default/replicasets/evrs",
	     "{\"spec\":{\"replicas\":1}}", 200);
	WAIT_FOR(10000, count_events(uid, "SuccessfulDelete") == 2,
		 "want 2 SuccessfulDelete events, have %zu", count_events(uid, "SuccessfulDelete"));
	evs = events_of(uid, "SuccessfulDelete");
	assert_true(strncmp(jstr(json_array_get(evs, 0), "message"), "Deleted pod: evrs-", 18) == 0);
	json_decref(evs);
	json_decref(rs);
}

static long long rs_replicas_of(const char *dep)
{
	json_t *l = items(fmt("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%%3D%s",
			      dep));
	long long n = json_array_size(l) == 1 ? jint(json_array_get(l, 0), "spec.replicas") : -1;
	json_decref(l);
	return n;
}

/* Scaling 1 -> 2 -> 1 -> 2: "Scaled up ... from 1 to 2" is one Event with count 2. */
static void test_api_ctrl_events_equal_ones_raise_the_count(void **state)
{
	(void)state;
	json_t *d = req("POST", "/apis/apps/v1/namespaces/default/deployments",
			"{\"metadata\":{\"name\":\"evdep\"},\"spec\":{\"replicas\":1,\"selector\":{"
			"\"matchLabels\":{\"app\":\"evdep\"}},\"template\":{\"metadata\":{\"labels\":"
			"{\"app\":\"evdep\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":"
			"\"web\"}]}}}}",
			201);
	const char *uid = jstr(d, "metadata.uid");
	WAIT_FOR(10000, rs_replicas_of("evdep") == 1, "the ReplicaSet of evdep");
	json_t *l = items("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Devdep");
	char rs[256];
	snprintf(rs, sizeof(rs), "%s", jstr(json_array_get(l, 0), "metadata.name"));
	json_decref(l);
	const char *up = fmt("Scaled up replica set %s from 1 to 2", rs);
	char want[512];
	snprintf(want, sizeof(want), "%s", up);

	for (int round = 0; round < 2; round++) {
		req0("PATCH", "/apis/apps/v1/namespaces/default/deployments/evdep",
		     "{\"spec\":{\"replicas\":2}}", 200);
		WAIT_FOR(10000, rs_replicas_of("evdep") == 2, "scaled to 2 (round %d)", round);
		if (round == 0) {
			req0("PATCH", "/apis/apps/v1/namespaces/default/deployments/evdep",
			     "{\"spec\":{\"replicas\":1}}", 200);
			WAIT_FOR(10000, rs_replicas_of("evdep") == 1, "scaled back to 1");
		}
	}
	long long count = 0;
	bool found = false;
	long long until = mono_ms() + 10000;
	do {
		json_t *evs = events_of(uid, "ScalingReplicaSet");
		found = has_message(evs, want, &count) && count == 2;
		size_t same = 0, i;
		json_t *ev;
		json_array_foreach (evs, i, ev)
			same += strcmp(jstr(ev, "message"), want) == 0;
		assert_true(same <= 1); /* never two Events for one message */
		json_decref(evs);
		if (!found)
			usleep(50000);
	} while (!found && mono_ms() < until);
	if (!found)
		fail_msg("want one \"%s\" event with count 2, count is %lld", want, count);
	json_t *evs = events_of(uid, "ScalingReplicaSet");
	assert_true(has_message(evs, fmt("Scaled up replica set %s from 0 to 1", rs), NULL));
	assert_true(has_message(evs, fmt("Scaled down replica set %s from 2 to 1", rs), NULL));
	json_decref(evs);
	json_decref(d);
}

static void test_api_ctrl_events_job_completed(void **state)
{
	(void)state;
	json_t *j = req("POST", "/apis/batch/v1/namespaces/default/jobs",
			"{\"metadata\":{\"name\":\"evjob\"},\"spec\":{\"completions\":1,\"template\":{"
			"\"metadata\":{\"labels\":{\"job\":\"evjob\"}},\"spec\":{\"restartPolicy\":"
			"\"Never\",\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}}}",
			201);
	const char *uid = jstr(j, "metadata.uid");
	WAIT_FOR(10000, active_pods("job%3Devjob") == 1, "the Job's pod");
	json_t *l = pods("job%3Devjob");
	const char *pod = jstr(json_array_get(l, 0), "metadata.name");
	req0("PATCH", fmt("/api/v1/namespaces/default/pods/%s/status", pod),
	     "{\"status\":{\"phase\":\"Succeeded\"}}", 200);
	json_decref(l);
	WAIT_FOR(10000, count_events(uid, "Completed") == 1, "a Completed event about the Job");
	assert_int_equal(count_events(uid, "SuccessfulCreate"), 1);
	json_decref(j);
}

/* An Event whose last occurrence is older than the TTL goes, whoever wrote it; a fresh one
 * stays. */
static void test_api_ctrl_events_expire_after_ttl(void **state)
{
	(void)state;
	req0("POST", "/api/v1/namespaces/default/events",
	     "{\"metadata\":{\"name\":\"old.1\"},\"involvedObject\":{\"kind\":\"Pod\",\"name\":"
	     "\"x\",\"namespace\":\"default\"},\"reason\":\"Old\",\"message\":\"long ago\","
	     "\"type\":\"Normal\",\"count\":1,\"firstTimestamp\":\"2020-01-01T00:00:00Z\","
	     "\"lastTimestamp\":\"2020-01-01T00:00:00Z\"}",
	     201);
	char now[32];
	time_t t = time(NULL);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	req0("POST", "/api/v1/namespaces/default/events",
	     fmt("{\"metadata\":{\"name\":\"new.1\"},\"involvedObject\":{\"kind\":\"Pod\","
		 "\"name\":\"x\",\"namespace\":\"default\"},\"reason\":\"New\",\"message\":\"now\","
		 "\"type\":\"Normal\",\"count\":1,\"firstTimestamp\":\"%s\",\"lastTimestamp\":\"%s\"}",
		 now, now),
	     201);
	long code = 0;
	long long until = mono_ms() + 10000;
	do {
		json_t *o = http_json(&srv, "GET", "/api/v1/namespaces/default/events/old.1", NULL,
				      &code);
		json_decref(o);
		if (code == 200)
			usleep(100000);
	} while (code == 200 && mono_ms() < until);
	if (code != 404)
		fail_msg("the expired event is still there (%ld)", code);
	req0("GET", "/api/v1/namespaces/default/events/new.1", NULL, 200);
}

static void test_api_ctrl_events_figures_in_metrics(void **state)
{
	(void)state;
	struct http_resp r;
	assert_int_equal(http_do(&srv, "GET", "/metrics", NULL, NULL, 0, NULL, &r), 0);
	assert_non_null(r.body);
	assert_non_null(strstr(r.body, "shoal_events_written_total{op=\"create\"} "));
	assert_non_null(strstr(r.body, "shoal_events_written_total{op=\"update\"} "));
	assert_non_null(strstr(r.body, "shoal_events_dropped_total{reason=\"rate_limited\"} "));
	assert_non_null(strstr(r.body, "shoal_events_expired_total "));
	assert_null(strstr(r.body, "shoal_events_expired_total 0\n"));
	http_resp_free(&r);
}

SHOAL_TEST_MAIN_SETUP(ctrl_setup, ctrl_teardown,
		      cmocka_unit_test(test_api_ctrl_events_rs_names_each_pod),
		      cmocka_unit_test(test_api_ctrl_events_equal_ones_raise_the_count),
		      cmocka_unit_test(test_api_ctrl_events_job_completed),
		      cmocka_unit_test(test_api_ctrl_events_expire_after_ttl),
		      cmocka_unit_test(test_api_ctrl_events_figures_in_metrics))
