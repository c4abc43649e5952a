// SPDX-License-Identifier: Apache-2.0
/*
 * Resource prediction and LoadAware: profiles learnt per workload and time of day, cold start
 * on requests, the load threshold as a filter, time-of-day-aware packing, and batch pods
 * admitted against predicted idle capacity (batch-allocatable).
 */
#include "shoal_test.h"
#include "sched_fixtures.h"

#define PRED_CFG                                                                                   \
	"{'prediction':{'enabled':true,'bucketMinutes':60,'minSamples':10,'margin':0.1,"         \
	"'thresholdPercent':90,'cpuPercentile':95,'memoryPercentile':98}}"

static json_t *owned_pod(const char *name, const char *owner, const char *cpu, const char *extra)
{
	return J("{'metadata':{'name':'%s','namespace':'default','ownerReferences':[{'kind':"
		 "'ReplicaSet','name':'%s','controller':true}]},'spec':{%s%s'containers':[{"
		 "'resources':{'requests':{'cpu':'%s','memory':'1Gi'}}}]}}",
		 name, owner, extra ? extra : "", extra ? "," : "", cpu);
}

/* hours [from, to) use hi cores, the rest lo cores; 3 days of samples every 10 minutes */
static void teach(struct harness *h, const char *pod, int from, int to, double hi, double lo)
{
	for (int64_t m = 0; m < 3 * 1440; m += 10) {
		int hour = (int)((m / 60) % 24);
		double u = (hour >= from && hour < to) ? hi : lo;
		assert_int_equal(sched_usage_sample(h->s, "default", pod, (int64_t)(u * 1000),
						    512LL << 20, m * 60000),
				 0);
	}
}

static void test_sched_predict_cold_start_uses_requests(void **state)
{
	(void)state;
	struct harness *h = h_new(PRED_CFG);
	h_node(h, node_json("n1", "10", "64Gi", NULL, NULL));
	h_pod(h, owned_pod("a", "web", "2", "'nodeName':'n1'"));
	struct sched_node_info ni;
	sched_node_info(h->s, "n1", &ni);
	assert_int_equal(ni.peak_cpu, 2000);
	/* batch-allocatable: 90% of 10 cores minus the predicted peak */
	assert_int_equal(ni.batch_alloc_cpu, 7000);
	h_free(h);
}

static void test_sched_predict_learns_percentile_by_time_of_day(void **state)
{
	(void)state;
	struct harness *h = h_new(PRED_CFG);
	h_node(h, node_json("n1", "10", "64Gi", NULL, NULL));
	h_pod(h, owned_pod("a", "web", "4", "'nodeName':'n1'"));
	teach(h, "a", 8, 20, 3.0, 0.5);
	sched_predict_refresh(h->s, 3 * 86400000LL);
	struct sched_node_info ni;
	sched_node_info(h->s, "n1", &ni);
	/* the daytime p95 (3 cores, within one 8% bin) plus the 10% margin; not the request */
	assert_true(ni.peak_cpu >= 3300 && ni.peak_cpu <= 3300 * 1.09);
	/* a new replica of the same workload inherits the profile */
	h_pod(h, owned_pod("b", "web", "4", "'nodeName':'n1'"));
	sched_node_info(h->s, "n1", &ni);
	assert_true(ni.peak_cpu >= 6600 && ni.peak_cpu <= 6600 * 1.09);
	h_free(h);
}

static void test_sched_loadaware_packs_complementary_peaks(void **state)
{
	(void)state;
	struct harness *h = h_new(PRED_CFG);
	h_node(h, node_json("n1", "10", "64Gi", NULL, NULL));
	h_node(h, node_json("n2", "10", "64Gi", NULL, NULL));
	/* day workload on n1 (6 cores by day), a twin on n2 */
	h_pod(h, owned_pod("day-1", "day", "1", "'nodeName':'n1'"));
	h_pod(h, owned_pod("day-2", "day", "1", "'nodeName':'n2'"));
	teach(h, "day-1", 6, 18, 6.0, 0.5);
	/* training pods for the other two workloads, on n2 */
	h_pod(h, owned_pod("night-0", "night", "1", "'nodeName':'n2'"));
	teach(h, "night-0", 0, 6, 6.0, 0.5);
	teach(h, "night-0", 18, 24, 6.0, 0.5);
	sched_predict_refresh(h->s, 3 * 86400000LL);
	/* n2 is busy by night now; n1 only by day: the night pod fits n1 and only n1 */
	h_pod(h, owned_pod("night-1", "night", "1", NULL));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "night-1"), "n1");
	/* another day pod would push n1 past 90% by day, and n2 too */
	h_pod(h, owned_pod("day-3", "day", "1", NULL));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "day-3"), "");
	assert_string_equal(sched_pod_message(h->s, "default", "day-3"),
			    "0/2 nodes are available: 2 node(s) had predicted usage above the load "
			    "threshold.");
	h_free(h);
}

static void test_sched_batch_overcommits_predicted_idle(void **state)
{
	(void)state;
	struct harness *h = h_new(PRED_CFG);
	h_node(h, node_json("n1", "10", "64Gi", NULL, NULL));
	/* online pods request 8 cores but use 2 */
	h_pod(h, owned_pod("svc-1", "svc", "4", "'nodeName':'n1'"));
	h_pod(h, owned_pod("svc-2", "svc", "4", "'nodeName':'n1'"));
	teach(h, "svc-1", 0, 24, 1.0, 1.0);
	sched_predict_refresh(h->s, 3 * 86400000LL);
	struct sched_node_info ni;
	sched_node_info(h->s, "n1", &ni);
	int64_t idle = ni.batch_alloc_cpu;
	assert_true(idle >= 9000 - 2 * 1100 * 1.09 && idle <= 9000 - 2 * 1100);
	/* by requests only 2 cores are left; batch pods take the predicted idle ~6.6 cores */
	for (int i = 0; i < 8; i++) {
		char n[16];
		snprintf(n, sizeof(n), "job-%d", i);
		h_pod(h, pod_json("default", n, "1", "1Gi", NULL, "'priorityClassName':'batch'"));
	}
	/* an online pod still fits by requests, ignoring the batch pods */
	h_pod(h, owned_pod("svc-3", "other", "2", NULL));
	h_run(h, 1);
	int placed = 0;
	for (int i = 0; i < 8; i++) {
		char n[16];
		snprintf(n, sizeof(n), "job-%d", i);
		placed += *h_where(h, "default", n) != 0;
	}
	assert_int_equal(placed, 6);
	assert_string_equal(h_where(h, "default", "svc-3"), "n1");
	sched_node_info(h->s, "n1", &ni);
	assert_int_equal(ni.batch_req_cpu, 6000);
	assert_int_equal(ni.req_cpu, 10000);
	assert_non_null(strstr(sched_pod_message(h->s, "default", "job-7"), "Insufficient batch cpu"));
	h_free(h);
}

static void status_usage(struct harness *h, const char *cpu, int sec)
{
	json_t *p = J("{'metadata':{'name':'a','namespace':'default','uid':'u-a'},'spec':{"
		      "'nodeName':'n1','containers':[{'resources':{'requests':{'cpu':'4'}}}]},"
		      "'status':{'usage':{'cpu':'%s','memory':'1Gi','timestamp':"
		      "'2026-11-23T10:%02d:%02dZ'}}}",
		      cpu, sec / 60, sec % 60);
	assert_int_equal(sched_pod_upsert(h->s, p, NULL, 0), 0);
	json_decref(p);
}

static void test_sched_predict_samples_from_pod_status_usage(void **state)
{
	(void)state;
	struct harness *h = h_new("{'prediction':{'enabled':true,'minSamples':25}}");
	h_node(h, node_json("n1", "10", "64Gi", NULL, NULL));
	struct sched_node_info ni;
	/* the agent's status updates every 10 s; each is seen twice (a repeated timestamp
	 * counts once): 20 samples, not enough yet, so the request stands */
	for (int i = 0; i < 40; i++)
		status_usage(h, i < 20 ? "2500m" : "2", (i / 2) * 10);
	sched_predict_refresh(h->s, 1795428000000LL);
	sched_node_info(h->s, "n1", &ni);
	assert_int_equal(ni.peak_cpu, 4000);
	for (int i = 20; i < 30; i++)
		status_usage(h, "2500m", i * 10);
	sched_predict_refresh(h->s, 1795428000000LL);
	sched_node_info(h->s, "n1", &ni);
	/* 30 samples: the p95 (2.5 cores) plus the 10% margin */
	assert_true(ni.peak_cpu >= 2750 && ni.peak_cpu <= 2750 * 1.09);
	h_free(h);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_sched_predict_cold_start_uses_requests),
		cmocka_unit_test(test_sched_predict_learns_percentile_by_time_of_day),
		cmocka_unit_test(test_sched_loadaware_packs_complementary_peaks),
		cmocka_unit_test(test_sched_batch_overcommits_predicted_idle),
		cmocka_unit_test(test_sched_predict_samples_from_pod_status_usage))
