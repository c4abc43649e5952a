// SPDX-License-Identifier: Apache-2.0
/*
 * The Job controller in a real shoald (failed pods are replaced after 200 ms here, doubling):
 * completions with parallelism, a work queue without completions, backoffLimit, the active
 * deadline, suspend and resume, ttlSecondsAfterFinished, and pods counted once even when
 * they are deleted as soon as they finish.
 */
#define CTRL_EXTRA_ARGS "--job-backoff-base", "200ms",
#include "ctrl_helpers.h"

static void job(const char *name, const char *spec, const char *restart)
{
	req0("POST", "/apis/batch/v1/namespaces/default/jobs",
	     fmt("{\"metadata\":{\"name\":\"%s\"},\"spec\":{%s\"template\":{\"metadata\":{"
		 "\"labels\":{\"job\":\"%s\"}},\"spec\":{\"restartPolicy\":\"%s\",\"containers\":[{"
		 "\"name\":\"c\",\"image\":\"busybox\",\"command\":[\"true\"]}]}}}}",
		 name, spec, name, restart),
	     201);
}

static long long job_status(const char *name, const char *field)
{
	json_t *j = req("GET", fmt("/apis/batch/v1/namespaces/default/jobs/%s", name), NULL, 200);
	long long v = jint(j, fmt("status.%s", field));
	json_decref(j);
	return v;
}

/* "True/Reason" of a condition, "" when absent. */
static const char *job_cond(const char *name, const char *type, char *buf, size_t len)
{
	json_t *j = req("GET", fmt("/apis/batch/v1/namespaces/default/jobs/%s", name), NULL, 200);
	size_t i;
	json_t *c;
	buf[0] = '\0';
	json_array_foreach (json_object_get(json_object_get(j, "status"), "conditions"), i, c) {
		if (strcmp(jstr(c, "type"), type) == 0)
			snprintf(buf, len, "%s/%s", jstr(c, "status"), jstr(c, "reason"));
	}
	json_decref(j);
	return buf;
}

/* Names of running (not finished, not deleted) pods of the job. */
static size_t running(const char *name, char out[][128], size_t max)
{
	json_t *l = pods(fmt("job%%3D%s", name));
	size_t i, n = 0;
	json_t *p;
	json_array_foreach (l, i, p) {
		const char *phase = jstr(p, "status.phase");
		if (terminating(p) ||
		    (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"))))
			continue;
		if (n < max)
			snprintf(out[n], 128, "%s", jstr(p, "metadata.name"));
		n++;
	}
	json_decref(l);
	return n;
}

static size_t npods(const char *sel)
{
	json_t *l = pods(sel);
	size_t n = json_array_size(l);
	json_decref(l);
	return n;
}

static void finish(const char *pod, bool ok)
{
	req0("PATCH", fmt("/api/v1/namespaces/default/pods/%s/status", pod),
	     fmt("{\"status\":{\"phase\":\"%s\"}}", ok ? "Succeeded" : "Failed"), 200);
}

static void test_api_ctrl_job_completions_and_parallelism(void **state)
{
	char names[8][128], buf[128];
	(void)state;
	job("three", "\"completions\":3,\"parallelism\":2,", "Never");
	WAIT_FOR(5000, running("three", names, 8) == 2, "2 pods running");
	/* the pods carry the tracking finalizer and the job-name label */
	json_t *p = req("GET", fmt("/api/v1/namespaces/default/pods/%s", names[0]), NULL, 200);
	assert_string_equal(
		json_string_value(json_array_get(
			json_object_get(json_object_get(p, "metadata"), "finalizers"), 0)),
		"batch.kubernetes.io/job-tracking");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_object_get(p, "metadata"), "labels"),
				    "batch.kubernetes.io/job-name")),
			    "three");
	json_decref(p);
	WAIT_FOR(3000, job_status("three", "active") == 2, "status.active 2");
	json_t *jj = req("GET", "/apis/batch/v1/namespaces/default/jobs/three", NULL, 200);
	assert_non_null(jstr(jj, "status.startTime"));
	json_decref(jj);
	finish(names[0], true);
	/* counted once even when deleted at once (the finalizer holds it until counted) */
	req0("DELETE", fmt("/api/v1/namespaces/default/pods/%s", names[0]), NULL, 200);
	WAIT_FOR(5000, job_status("three", "succeeded") == 1, "1 succeeded");
	WAIT_FOR(5000, running("three", names, 8) == 2, "a second pair");
	finish(names[0], true);
	finish(names[1], true);
	WAIT_FOR(5000,
		 strcmp(job_cond("three", "Complete", buf, sizeof(buf)),
			"True/CompletionsReached") == 0,
		 "Complete: %s", buf);
	assert_int_equal(job_status("three", "succeeded"), 3);
	assert_int_equal(job_status("three", "active"), 0);
	json_t *j = req("GET", "/apis/batch/v1/namespaces/default/jobs/three", NULL, 200);
	assert_non_null(jstr(j, "status.completionTime"));
	json_decref(j);
	/* no more pods, and the finished ones lost their finalizer */
	usleep(200000);
	json_t *l = pods("job%3Dthree");
	assert_int_equal(json_array_size(l), 2);
	size_t i;
	json_array_foreach (l, i, p)
		assert_int_equal(json_array_size(json_object_get(json_object_get(p, "metadata"),
								 "finalizers")),
				 0);
	json_decref(l);
}

static void test_api_ctrl_job_work_queue(void **state)
{
	char names[8][128], buf[128];
	(void)state;
	job("queue", "\"parallelism\":2,", "OnFailure");
	WAIT_FOR(5000, running("queue", names, 8) == 2, "2 workers");
	finish(names[0], true);
	WAIT_FOR(5000, job_status("queue", "succeeded") == 1, "1 succeeded");
	usleep(200000);
	/* one succeeded: no new worker; done when the other ends */
	assert_int_equal(running("queue", names, 8), 1);
	finish(names[0], true);
	WAIT_FOR(5000,
		 strcmp(job_cond("queue", "Complete", buf, sizeof(buf)),
			"True/CompletionsReached") == 0,
		 "Complete: %s", buf);
}

static void test_api_ctrl_job_backoff_limit(void **state)
{
	char names[8][128], buf[128];
	(void)state;
	job("flaky", "\"backoffLimit\":1,", "Never");
	WAIT_FOR(5000, running("flaky", names, 8) == 1, "1 pod");
	long long t0 = mono_ms();
	finish(names[0], false);
	WAIT_FOR(5000, job_status("flaky", "failed") == 1, "1 failed");
	WAIT_FOR(5000, running("flaky", names, 8) == 1, "a replacement");
	assert_true(mono_ms() - t0 >= 150); /* after the back-off */
	finish(names[0], false);
	WAIT_FOR(5000,
		 strcmp(job_cond("flaky", "Failed", buf, sizeof(buf)),
			"True/BackoffLimitExceeded") == 0,
		 "Failed: %s", buf);
	assert_int_equal(job_status("flaky", "failed"), 2);
	usleep(500000);
	assert_int_equal(running("flaky", names, 8), 0);
}

static void test_api_ctrl_job_active_deadline(void **state)
{
	char names[8][128], buf[128];
	(void)state;
	job("late", "\"activeDeadlineSeconds\":1,\"parallelism\":2,\"completions\":4,", "Never");
	WAIT_FOR(5000, running("late", names, 8) == 2, "2 pods");
	WAIT_FOR(5000,
		 strcmp(job_cond("late", "Failed", buf, sizeof(buf)), "True/DeadlineExceeded") == 0,
		 "Failed: %s", buf);
	WAIT_FOR(5000, running("late", names, 8) == 0, "its pods stopped");
}

static void test_api_ctrl_job_suspend_resume(void **state)
{
	char names[8][128], buf[128];
	(void)state;
	job("nap", "\"suspend\":true,\"parallelism\":2,\"completions\":2,", "Never");
	WAIT_FOR(5000,
		 strcmp(job_cond("nap", "Suspended", buf, sizeof(buf)), "True/JobSuspended") == 0,
		 "Suspended: %s", buf);
	assert_int_equal(running("nap", names, 8), 0);
	req0("PATCH", "/apis/batch/v1/namespaces/default/jobs/nap",
	     "{\"spec\":{\"suspend\":false}}", 200);
	WAIT_FOR(5000, running("nap", names, 8) == 2, "2 pods once resumed");
	WAIT_FOR(5000,
		 strcmp(job_cond("nap", "Suspended", buf, sizeof(buf)), "False/JobResumed") == 0,
		 "Suspended: %s", buf);
}

static void test_api_ctrl_job_ttl_after_finished(void **state)
{
	char names[8][128];
	(void)state;
	job("brief", "\"ttlSecondsAfterFinished\":1,", "Never");
	WAIT_FOR(5000, running("brief", names, 8) == 1, "1 pod");
	finish(names[0], true);
	long code = 0;
	WAIT_FOR(6000,
		 (json_decref(http_json(&srv, "GET", "/apis/batch/v1/namespaces/default/jobs/brief",
					NULL, &code)),
		  code == 404),
		 "the job is deleted a second after it finished");
	WAIT_FOR(5000, npods("job%3Dbrief") == 0, "and its pods");
}

SHOAL_TEST_MAIN_SETUP(ctrl_setup, ctrl_teardown,
		      cmocka_unit_test(test_api_ctrl_job_completions_and_parallelism),
		      cmocka_unit_test(test_api_ctrl_job_work_queue),
		      cmocka_unit_test(test_api_ctrl_job_backoff_limit),
		      cmocka_unit_test(test_api_ctrl_job_active_deadline),
		      cmocka_unit_test(test_api_ctrl_job_suspend_resume),
		      cmocka_unit_test(test_api_ctrl_job_ttl_after_finished))
