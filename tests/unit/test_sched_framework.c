// SPDX-License-Identifier: Apache-2.0
/*
 * The scheduling framework: binding, the unschedulable message, re-queueing on events, queue
 * order (priority, then fairness across namespaces), back-off, bind conflicts, profiles.
 */
#include "shoal_test.h"
#include "sched_fixtures.h"

static void test_sched_binds_pod_to_the_node_that_fits(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("small-1", "1", "4Gi", NULL, NULL));
	h_node(h, node_json("big", "4", "8Gi", NULL, NULL));
	h_node(h, node_json("small-2", "2", "4Gi", NULL, NULL));
	assert_int_equal(h_pod(h, pod_json("default", "web", "3", "1Gi", NULL, "")), 0);
	assert_int_equal(h_run(h, 0), 1);
	assert_string_equal(h_where(h, "default", "web"), "big");
	assert_int_equal(h->binds, 1);
	struct sched_node_info ni;
	assert_int_equal(sched_node_info(h->s, "big", &ni), 0);
	assert_int_equal(ni.req_cpu, 3000);
	assert_int_equal(ni.pods, 1);
	h_free(h);
}

static void test_sched_unschedulable_message_counts_reasons(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	for (int i = 0; i < 3; i++) {
		char n[16];
		snprintf(n, sizeof(n), "n%d", i);
		h_node(h, node_json(n, "1", "4Gi", NULL, NULL));
	}
	const char *taint = "{'taints':[{'key':'dedicated','value':'db','effect':'NoSchedule'}]}";
	h_node(h, node_json("db-1", "8", "16Gi", NULL, taint));
	h_node(h, node_json("db-2", "8", "16Gi", NULL, taint));
	h_pod(h, pod_json("default", "big", "2", "1Gi", NULL, ""));
	assert_int_equal(h_run(h, 0), 1);
	assert_string_equal(h_where(h, "default", "big"), "");
	assert_string_equal(h->last_msg, "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) "
					 "had untolerated taint {dedicated: db}.");
	assert_string_equal(sched_pod_message(h->s, "default", "big"), h->last_msg);
	h_free(h);
}

static void test_sched_unschedulable_pod_placed_when_node_added(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("n1", "1", "1Gi", NULL, NULL));
	h_pod(h, pod_json("default", "p", "2", "1Gi", NULL, ""));
	h_run(h, 0);
	assert_string_equal(h_where(h, "default", "p"), "");
	/* nothing helps: the queue stays quiet, even as time passes */
	h->now += 60000;
	assert_int_equal(h_run(h, 0), 0);
	h_node(h, node_json("n2", "4", "4Gi", NULL, NULL));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "p"), "n2");
	h_free(h);
}

static void test_sched_queue_takes_higher_priority_first(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("n1", "1", "4Gi", NULL, NULL));
	h_pod(h, pod_json("default", "low", "1", "1Gi", NULL, "'priority': 10"));
	h_pod(h, pod_json("default", "high", "1", "1Gi", NULL, "'priority': 1000"));
	h_run(h, 0);
	assert_string_equal(h_where(h, "default", "high"), "n1");
	assert_string_equal(h_where(h, "default", "low"), "");
	h_free(h);
}

static void test_sched_queue_fair_across_namespaces(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("n1", "10", "10Gi", NULL, NULL));
	/* namespace a already holds 6 cpus; one more cpu is left after the next pod */
	h_pod(h, J("{'metadata':{'name':'hog','namespace':'a'},'spec':{'nodeName':'n1',"
		   "'containers':[{'resources':{'requests':{'cpu':'6'}}}]}}"));
	h_pod(h, pod_json("a", "a1", "3", "1Gi", NULL, ""));
	h_pod(h, pod_json("b", "b1", "3", "1Gi", NULL, ""));
	assert_int_equal(sched_schedule_one(h->s), 1);
	/* the first pod popped is b's: a's dominant share is larger */
	assert_string_equal(h_where(h, "b", "b1"), "n1");
	assert_string_equal(h_where(h, "a", "a1"), "");
	h_free(h);
}

static void test_sched_backoff_delays_retry(void **state)
{
	(void)state;
	struct harness *h = h_new("{'podInitialBackoffSeconds': 2, 'podMaxBackoffSeconds': 8}");
	h_node(h, node_json("n1", "1", "1Gi", NULL, NULL));
	h_pod(h, pod_json("default", "p", "2", "1Gi", NULL, ""));
	h_run(h, 0);
	struct sched_stats st;
	sched_stats(h->s, &st);
	assert_int_equal(st.unsched, 1);
	/* a node change moves it to back-off, not straight to active */
	h_node(h, node_json("n1", "1", "2Gi", NULL, NULL));
	sched_stats(h->s, &st);
	assert_int_equal(st.backoff, 1);
	assert_int_equal(h_run(h, 0), 0);
	int64_t w = sched_next_wakeup_ms(h->s);
	assert_true(w > h->now && w <= h->now + 2000);
	h->now = w;
	assert_int_equal(h_run(h, 0), 1);
	sched_stats(h->s, &st);
	assert_int_equal(st.attempts, 2);
	h_free(h);
}

static void test_sched_bind_conflict_forgets_and_retries(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("n1", "1", "1Gi", NULL, NULL));
	h->bind_fail = 1;
	h_pod(h, pod_json("default", "p", "1", "1Gi", NULL, ""));
	h_run(h, 0);
	assert_string_equal(h_where(h, "default", "p"), "");
	struct sched_node_info ni;
	sched_node_info(h->s, "n1", &ni);
	assert_int_equal(ni.req_cpu, 0); /* the reservation was forgotten */
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "p"), "n1");
	assert_int_equal(h->binds, 1);
	h_free(h);
}

static void test_sched_profile_chosen_by_scheduler_name(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("empty", "8", "8Gi", NULL, NULL));
	h_node(h, node_json("busy", "8", "8Gi", NULL, NULL));
	h_pod(h, J("{'metadata':{'name':'x','namespace':'default'},'spec':{'nodeName':'busy',"
		   "'containers':[{'resources':{'requests':{'cpu':'4','memory':'4Gi'}}}]}}"));
	h_pod(h, pod_json("default", "spread", "1", "1Gi", NULL, ""));
	h_pod(h, pod_json("default", "pack", "1", "1Gi", NULL, "'schedulerName':'binpack'"));
	h_pod(h, pod_json("default", "other", "1", "1Gi", NULL, "'schedulerName':'someone-else'"));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "spread"), "empty");
	assert_string_equal(h_where(h, "default", "pack"), "busy");
	assert_string_equal(h_where(h, "default", "other"), "");
	h_free(h);
}

static void test_sched_profile_from_configuration(void **state)
{
	(void)state;
	/* a profile of our own answers to its schedulerName */
	struct harness *h = h_new("{'profiles':[{'name':'packer','schedulerName':'packer',"
				  "'scoring':'MostAllocated','weights':{'BalancedAllocation':0}}]}");
	h_node(h, node_json("empty", "8", "8Gi", NULL, NULL));
	h_node(h, node_json("busy", "8", "8Gi", NULL, NULL));
	h_pod(h, J("{'metadata':{'name':'x','namespace':'default'},'spec':{'nodeName':'busy',"
		   "'containers':[{'resources':{'requests':{'cpu':'4','memory':'4Gi'}}}]}}"));
	h_pod(h, pod_json("default", "p", "1", "1Gi", NULL, "'schedulerName':'packer'"));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "p"), "busy");
	h_free(h);
}

static void test_sched_config_errors_name_the_field(void **state)
{
	(void)state;
	char err[256];
	struct {
		const char *cfg, *want;
	} cases[] = {
		{ "{'parallelism': -1}", "parallelism" },
		{ "{'profiles':[{'name':'x','scoring':'Random'}]}", "profiles[0].scoring" },
		{ "{'profiles':[{'name':'x','weights':{'Nope':1}}]}", "profiles[0].weights.Nope" },
		{ "{'prediction':{'bucketMinutes': 7}}", "prediction.bucketMinutes" },
		{ "{'colour': 1}", "colour" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = J("%s", cases[i].cfg);
		struct sched_config *c = sched_config_parse(j, err, sizeof(err));
		assert_null(c);
		assert_non_null(strstr(err, cases[i].want));
		json_decref(j);
	}
}

static void test_sched_invalid_pod_rejected_with_field(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	char err[512];
	json_t *p = J("{'metadata':{'name':'p'},'spec':{'affinity':{'podAntiAffinity':{"
		      "'requiredDuringSchedulingIgnoredDuringExecution':[{'labelSelector':{}}]}}}}");
	assert_int_equal(sched_pod_upsert(h->s, p, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey"));
	json_decref(p);
	p = J("{'metadata':{'name':'p'},'spec':{'containers':[{'resources':{'requests':"
	      "{'cpu':'lots'}}}]}}");
	assert_int_equal(sched_pod_upsert(h->s, p, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "spec.containers[0].resources.requests.cpu"));
	json_decref(p);
	h_free(h);
}

static void test_sched_pod_update_and_delete_free_capacity(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("n1", "2", "2Gi", NULL, NULL));
	h_pod(h, pod_json("default", "a", "2", "1Gi", NULL, ""));
	h_pod(h, pod_json("default", "b", "2", "1Gi", NULL, ""));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "a"), "n1");
	assert_string_equal(h_where(h, "default", "b"), "");
	/* the watch confirms the binding: nothing changes */
	json_t *a = J("{'metadata':{'name':'a','namespace':'default','uid':'u-a'},'spec':{"
		      "'nodeName':'n1','containers':[{'resources':{'requests':{'cpu':'2',"
		      "'memory':'1Gi'}}}]}}");
	assert_int_equal(sched_pod_upsert(h->s, a, NULL, 0), 0);
	json_decref(a);
	struct sched_node_info ni;
	sched_node_info(h->s, "n1", &ni);
	assert_int_equal(ni.req_cpu, 2000);
	/* a finishes: b takes its place */
	a = J("{'metadata':{'name':'a','namespace':'default','uid':'u-a'},'spec':{'nodeName':'n1'},"
	      "'status':{'phase':'Succeeded'}}");
	assert_int_equal(sched_pod_upsert(h->s, a, NULL, 0), 0);
	json_decref(a);
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "b"), "n1");
	h_free(h);
}

static void test_sched_parallel_filter_agrees_with_sequential(void **state)
{
	(void)state;
	char msgs[2][2048];
	for (int par = 1; par <= 2; par++) {
		struct harness *h = h_new(par == 1 ? "{'parallelism': 1}" : "{'parallelism': 2}");
		/* 600 nodes, only every 50th has an ssd: most nodes must be examined, which is
		 * when the worker threads join in */
		for (int i = 0; i < 600; i++) {
			char n[16];
			snprintf(n, sizeof(n), "n%d", i);
			h_node(h, node_json(n, "2", "4Gi", i % 50 ? "{'disk':'hdd'}" : "{'disk':'ssd'}",
					    NULL));
		}
		for (int i = 0; i < 40; i++) {
			char n[16];
			snprintf(n, sizeof(n), "p%d", i);
			h_pod(h, pod_json("default", n, "1", "1Gi", NULL, "'nodeSelector':{'disk':'ssd'}"));
		}
		h_run(h, 1);
		int placed = 0;
		for (int i = 0; i < 40; i++) {
			char n[16];
			snprintf(n, sizeof(n), "p%d", i);
			const char *w = h_where(h, "default", n);
			if (*w) {
				placed++;
				assert_int_equal(atoi(w + 1) % 50, 0);
			}
		}
		assert_int_equal(placed, 24); /* 12 ssd nodes, 2 pods each */
		snprintf(msgs[par - 1], sizeof(msgs[0]), "%s", h->last_msg);
		char err[256];
		assert_int_equal(sched_verify(h->nodes, h->pods, err, sizeof(err)), 0);
		h_free(h);
	}
	assert_string_equal(msgs[0], "0/600 nodes are available: 588 node(s) didn't match Pod's "
				     "node affinity/selector, 12 Insufficient cpu.");
	assert_string_equal(msgs[0], msgs[1]);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_sched_binds_pod_to_the_node_that_fits),
		cmocka_unit_test(test_sched_unschedulable_message_counts_reasons),
		cmocka_unit_test(test_sched_unschedulable_pod_placed_when_node_added),
		cmocka_unit_test(test_sched_queue_takes_higher_priority_first),
		cmocka_unit_test(test_sched_queue_fair_across_namespaces),
		cmocka_unit_test(test_sched_backoff_delays_retry),
		cmocka_unit_test(test_sched_bind_conflict_forgets_and_retries),
		cmocka_unit_test(test_sched_profile_chosen_by_scheduler_name),
		cmocka_unit_test(test_sched_profile_from_configuration),
		cmocka_unit_test(test_sched_config_errors_name_the_field),
		cmocka_unit_test(test_sched_invalid_pod_rejected_with_field),
		cmocka_unit_test(test_sched_pod_update_and_delete_free_capacity),
		cmocka_unit_test(test_sched_parallel_filter_agrees_with_sequential))
