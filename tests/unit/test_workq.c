// SPDX-License-Identifier: Apache-2.0
/* The controllers' work queue: dedup, one worker per key, delays, per-key back-off, the
 * overall token bucket, shutdown. */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "workq.h"
#include "shoal_test.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void test_ctrl_queue_dedups_keys(void **state)
{
	(void)state;
	struct workq *q = workq_new(NULL);
	assert_non_null(q);
	workq_add(q, "ns/a");
	workq_add(q, "ns/b");
	workq_add(q, "ns/a");
	struct workq_stats s;
	workq_stats(q, &s);
	assert_int_equal(s.depth, 2);
	char *k = workq_get(q);
	assert_string_equal(k, "ns/a"); /* first in, first out */
	workq_done(q, k);
	free(k);
	k = workq_get(q);
	assert_string_equal(k, "ns/b");
	workq_done(q, k);
	free(k);
	workq_stats(q, &s);
	assert_int_equal(s.depth, 0);
	workq_free(q);
}

/* A key added while a worker has it is not handed to another worker, but comes back once
 * the first is done. */
static void test_ctrl_queue_one_worker_per_key(void **state)
{
	(void)state;
	struct workq *q = workq_new(NULL);
	workq_add(q, "k");
	char *k = workq_get(q);
	workq_add(q, "k");
	workq_add(q, "other");
	char *o = workq_get(q);
	assert_string_equal(o, "other"); /* not "k" again */
	workq_done(q, o);
	free(o);
	struct workq_stats s;
	workq_stats(q, &s);
	assert_int_equal(s.depth, 0);
	assert_int_equal(s.processing, 1);
	workq_done(q, k);
	free(k);
	workq_stats(q, &s);
	assert_int_equal(s.depth, 1);
	k = workq_get(q);
	assert_string_equal(k, "k");
	workq_done(q, k);
	free(k);
	workq_free(q);
}

static void test_ctrl_queue_delayed_keys_come_when_due(void **state)
{
	(void)state;
	struct workq *q = workq_new(NULL);
	int64_t t0 = now_ms();
	workq_add_after(q, "late", 120);
	workq_add_after(q, "soon", 40);
	workq_add_after(q, "late", 500); /* the earlier time is kept */
	char *k = workq_get(q);
	int64_t t1 = now_ms();
	assert_string_equal(k, "soon");
	assert_true(t1 - t0 >= 40);
	workq_done(q, k);
	free(k);
	k = workq_get(q);
	int64_t t2 = now_ms();
	assert_string_equal(k, "late");
	assert_true(t2 - t0 >= 120 && t2 - t0 < 450);
	workq_done(q, k);
	free(k);
	workq_free(q);
}

static void test_ctrl_queue_backoff_doubles_and_resets(void **state)
{
	(void)state;
	struct workq *q = workq_new(NULL);
	assert_int_equal(workq_add_rate_limited(q, "f"), 5);
	assert_int_equal(workq_add_rate_limited(q, "f"), 10);
	assert_int_equal(workq_add_rate_limited(q, "f"), 20);
	assert_int_equal(workq_add_rate_limited(q, "g"), 5); /* per key */
	assert_int_equal(workq_failures(q, "f"), 3);
	workq_forget(q, "f");
	assert_int_equal(workq_failures(q, "f"), 0);
	assert_int_equal(workq_add_rate_limited(q, "f"), 5);
	/* capped */
	struct workq_opts o = { .max_delay_ms = 40 };
	struct workq *c = workq_new(&o);
	int64_t d = 0;
	for (int i = 0; i < 30; i++)
		d = workq_add_rate_limited(c, "x");
	assert_int_equal(d, 40);
	workq_free(c);
	workq_free(q);
}

/* Past the burst, retries of different keys are spaced by the bucket's rate. */
static void test_ctrl_queue_token_bucket_limits_retries(void **state)
{
	(void)state;
	struct workq_opts o = { .qps = 10, .burst = 2 };
	struct workq *q = workq_new(&o);
	assert_int_equal(workq_add_rate_limited(q, "a"), 5);
	assert_int_equal(workq_add_rate_limited(q, "b"), 5);
	int64_t d3 = workq_add_rate_limited(q, "c");
	int64_t d4 = workq_add_rate_limited(q, "d");
	assert_true(d3 >= 90 && d3 <= 100);
	assert_true(d4 >= 190 && d4 <= 200);
	workq_free(q);
}

static void *getter(void *arg)
{
	return workq_get(arg);
}

static void test_ctrl_queue_shutdown_wakes_workers(void **state)
{
	(void)state;
	struct workq *q = workq_new(NULL);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, getter, q), 0);
	usleep(20000);
	workq_shutdown(q);
	for (int i = 0; i < 2; i++) {
		void *r;
		pthread_join(t[i], &r);
		assert_null(r);
	}
	workq_add(q, "after");
	assert_null(workq_get(q));
	workq_free(q);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_ctrl_queue_dedups_keys),
		cmocka_unit_test(test_ctrl_queue_one_worker_per_key),
		cmocka_unit_test(test_ctrl_queue_delayed_keys_come_when_due),
		cmocka_unit_test(test_ctrl_queue_backoff_doubles_and_resets),
		cmocka_unit_test(test_ctrl_queue_token_bucket_limits_retries),
		cmocka_unit_test(test_ctrl_queue_shutdown_wakes_workers))
