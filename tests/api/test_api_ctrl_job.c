// SPDX-License-Identifier: Apache-2.0
/*
 * The Job controller in a real shoald (failed pods are replaced after 200 ms here, doubling):
 * completions with parallelism, a work queue without completions, backoffLimit, the active
 * deadline, suspend and resume, ttlSecondsAfterFinished, and pods counted once even when
 * they are deleted as soon as they finish or the pod cache lags the Job cache.
 */
#define CTRL_EXTRA_ARGS "--job-backoff-base", "200ms",
#include <errno.h>
#include <pthread.h>

#include "api_local.h"
#include "api_server.h"
#include "ctrl.h"
#include "ctrl_helpers.h"
#include "store.h"

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

/*
 * Every success counts once, also when the pod cache lags the Job cache. This case runs the
 * Job controller on an API server of its own, in this process, beside two probe controllers
 * that hold the informer thread at the right moments: while the controller records a
 * finished pod (status.uncountedTerminatedPods), removes its finalizer and counts it, the
 * thread waits, so that all three writes are pending; then it applies the Job's events
 * first (the Job informer is drained before the Pod informer, as in shoald, where the Pod
 * informer is made first) and waits again once the Job shows the pod counted. The controller
 * then reconciles a Job that has counted the pod beside a cached pod that still carries the
 * finalizer: it must not count it again.
 */
static struct {
	struct api_server *srv;
	pthread_mutex_t mu;
	int stage; /* 0 idle, 1 armed, 2 held until counted, 3 held once counted */
} R = { .mu = PTHREAD_MUTEX_INITIALIZER };

static json_t *raced_get(const char *path, long *code)
{
	return api_local_json(R.srv, "GET", path, NULL, code);
}

/* status.succeeded and the number of uncounted successes of the Job "raced". */
static void raced_counts(const json_t *job, long long *ok, size_t *unc)
{
	const json_t *st = json_object_get(job, "status");
	*ok = json_integer_value(json_object_get(st, "succeeded"));
	*unc = json_array_size(
		json_object_get(json_object_get(st, "uncountedTerminatedPods"), "succeeded"));
}

static int probe_pods_init(struct ctrl *c)
{
	/* made before the Job controller's Job informer, as the ReplicaSet controller's is */
	return ctrl_informer(c, "v1", "Pod", CTRL_INDEX_LABELS) ? 0 : -errno;
}

static int probe_reconcile(struct ctrl *c, const char *key)
{
	(void)c;
	(void)key;
	return 0;
}

/* The Job "raced" as the API serves it: its counts and resourceVersion. */
static void raced_live(long long *ok, size_t *unc, long long *rv)
{
	long code = 0;
	json_t *live = raced_get("/apis/batch/v1/namespaces/default/jobs/raced", &code);
	raced_counts(live, ok, unc);
	const char *v = jstr(live, "metadata.resourceVersion");
	*rv = v ? strtoll(v, NULL, 10) : 0;
	json_decref(live);
}

/* Runs after the Job controller's handler of the same event (it was registered later). */
static void probe_on_job(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
			 const struct ctrl_obj *old)
{
	(void)c;
	(void)old;
	if (ev == CTRL_DELETED || strcmp(now->key, "default/raced") != 0)
		return;
	json_t *job = ctrl_obj_json(now);
	long long ok, rv, last = -1;
	size_t unc;
	raced_counts(job, &ok, &unc);
	json_decref(job);
	pthread_mutex_lock(&R.mu);
	int stage = R.stage;
	pthread_mutex_unlock(&R.mu);
	if (stage == 1 && unc > 0) {
		/* recorded: hold every informer until the pod is counted (its finalizer removed)
		 * and the controller has written all it had to (the Job stays the same 200 ms) */
		for (int i = 0, same = 0; i < 500 && same < 20; i++) {
			long long before = last;
			raced_live(&ok, &unc, &last);
			same = ok > 0 && unc == 0 && last == before ? same + 1 : 0;
			usleep(10000);
		}
		stage = 2;
	} else if (stage == 2 && ok > 0 && unc == 0) {
		/* the last of those writes: the Job cache shows the pod counted, while the Pod
		 * informer (drained after this one) has not applied its release: hold it so */
		raced_live(&ok, &unc, &rv);
		if (rv != now->o->rev)
			return;
		usleep(400000);
		stage = 3;
	} else {
		return;
	}
	pthread_mutex_lock(&R.mu);
	R.stage = stage;
	pthread_mutex_unlock(&R.mu);
}

static int probe_jobs_init(struct ctrl *c)
{
	struct ctrl_informer *jobs = ctrl_informer(c, "batch/v1", "Job", CTRL_INDEX_SELECTORS);
	if (!jobs)
		return -errno;
	return ctrl_on(c, jobs, probe_on_job) ? -E2BIG : 0;
}

static const struct ctrl_def probe_pods = {
	.name = "probe-pods", .workers = 1, .init = probe_pods_init, .reconcile = probe_reconcile
};
static const struct ctrl_def probe_jobs = {
	.name = "probe-jobs", .workers = 1, .init = probe_jobs_init, .reconcile = probe_reconcile
};

static long long raced_succeeded(void)
{
	long long ok, rv;
	size_t unc;
	raced_live(&ok, &unc, &rv);
	return ok;
}

/* The names of the Job's pods that have not finished. */
static size_t raced_running(char out[][128], size_t max)
{
	long code = 0;
	json_t *l = raced_get("/api/v1/namespaces/default/pods?labelSelector=job%3Draced", &code);
	size_t i, n = 0;
	json_t *p;
	json_array_foreach (json_object_get(l, "items"), i, p) {
		const char *phase = jstr(p, "status.phase");
		if (terminating(p) ||
		    (phase && strcmp(phase, "Pending") != 0 && strcmp(phase, "Running") != 0))
			continue;
		if (n < max)
			snprintf(out[n], 128, "%s", jstr(p, "metadata.name"));
		n++;
	}
	json_decref(l);
	return n;
}

static void raced_finish(const char *pod)
{
	long code = 0;
	json_t *b = json_pack("{s:{s:s}}", "status", "phase", "Succeeded");
	json_decref(api_local_json(
		R.srv, "PATCH", fmt("/api/v1/namespaces/default/pods/%s/status", pod), b, &code));
	json_decref(b);
	assert_int_equal(code, 200);
}

static void test_api_ctrl_job_counts_each_success_once(void **state)
{
	char dir[] = "/tmp/shoal-job-once.XXXXXX", uri[128], listen[128], names[4][128];
	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(uri, sizeof(uri), "lmdb:%s/store", dir);
	snprintf(listen, sizeof(listen), "unix:%s/api.sock", dir);
	struct store *st = store_open(uri, NULL);
	assert_non_null(st);
	struct api_server_opts o = { .listen = { listen }, .no_scheduler = 1, .no_controllers = 1 };
	R.srv = api_server_start(st, &o);
	assert_non_null(R.srv);
	static const struct ctrl_def *const defs[] = { &probe_pods, &ctrl_job, &probe_jobs, NULL };
	struct ctrl_manager *m = ctrl_manager_start(R.srv, NULL, defs);
	assert_non_null(m);

	long code = 0;
	json_t *b = json_loads(
		"{\"metadata\":{\"name\":\"raced\"},\"spec\":{\"completions\":2,\"parallelism\":1,"
		"\"template\":{\"metadata\":{\"labels\":{\"job\":\"raced\"}},\"spec\":{"
		"\"restartPolicy\":\"Never\",\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}"
		"]}}}}",
		0, NULL);
	assert_non_null(b);
	json_decref(
		api_local_json(R.srv, "POST", "/apis/batch/v1/namespaces/default/jobs", b, &code));
	json_decref(b);
	assert_int_equal(code, 201);
	WAIT_FOR(5000, raced_running(names, 4) == 1, "the Job's first pod");
	pthread_mutex_lock(&R.mu);
	R.stage = 1;
	pthread_mutex_unlock(&R.mu);
	raced_finish(names[0]);
	int stage = 0;
	WAIT_FOR(10000,
		 (pthread_mutex_lock(&R.mu), stage = R.stage, pthread_mutex_unlock(&R.mu),
		  stage == 3),
		 "the informer thread held twice (stage %d)", stage);
	/* the controller reconciled the Job against the stale pod meanwhile: one success */
	usleep(300000);
	assert_int_equal(raced_succeeded(), 1);
	WAIT_FOR(5000, raced_running(names, 4) == 1, "the Job's second pod");
	raced_finish(names[0]);
	WAIT_FOR(5000, raced_succeeded() == 2, "2 succeeded");
	usleep(300000);
	assert_int_equal(raced_succeeded(), 2);

	ctrl_manager_stop(m);
	api_server_stop(R.srv, 1000);
	store_close(st);
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

SHOAL_TEST_MAIN_SETUP(ctrl_setup, ctrl_teardown,
		      cmocka_unit_test(test_api_ctrl_job_completions_and_parallelism),
		      cmocka_unit_test(test_api_ctrl_job_work_queue),
		      cmocka_unit_test(test_api_ctrl_job_backoff_limit),
		      cmocka_unit_test(test_api_ctrl_job_active_deadline),
		      cmocka_unit_test(test_api_ctrl_job_suspend_resume),
		      cmocka_unit_test(test_api_ctrl_job_ttl_after_finished),
		      cmocka_unit_test(test_api_ctrl_job_counts_each_success_once))
