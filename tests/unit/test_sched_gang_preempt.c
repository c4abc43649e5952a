// SPDX-License-Identifier: Apache-2.0
/*
 * Gangs (all or none, waiting for members, time-out) and preemption (minimal victims, never
 * a higher priority, the nominated node held for the preemptor).
 */
#include "shoal_test.h"
#include "sched_fixtures.h"

static void podgroup(struct harness *h, const char *name, int min, int timeout)
{
	json_t *pg = J("{'metadata':{'name':'%s','namespace':'default'},'spec':{'minMember':%d,"
		       "'scheduleTimeoutSeconds':%d}}",
		       name, min, timeout);
	assert_int_equal(sched_podgroup_upsert(h->s, pg, NULL, 0), 0);
	json_decref(pg);
}

static void member(struct harness *h, const char *group, int i, const char *cpu,
		   const char *extra)
{
	char n[64], l[128];
	snprintf(n, sizeof(n), "%s-%d", group, i);
	snprintf(l, sizeof(l), "{'scheduling.x-k8s.io/pod-group':'%s'}", group);
	h_pod(h, pod_json("default", n, cpu, "10Mi", l, extra ? extra : ""));
}

static int placed(struct harness *h, const char *group, int n)
{
	int c = 0;
	for (int i = 0; i < n; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s-%d", group, i);
		c += *h_where(h, "default", name) != 0;
	}
	return c;
}

static void test_sched_gang_all_or_none(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "4", "8Gi", NULL, NULL));
	h_node(h, node_json("b", "2", "8Gi", NULL, NULL));
	podgroup(h, "train", 4, 60);
	/* 4 members of 2 cpus: only 3 fit */
	for (int i = 0; i < 4; i++)
		member(h, "train", i, "2", NULL);
	h_run(h, 1);
	assert_int_equal(placed(h, "train", 4), 0);
	assert_int_equal(h->binds, 0);
	struct sched_node_info ni;
	sched_node_info(h->s, "a", &ni);
	assert_int_equal(ni.req_cpu, 0); /* reservations released */
	/* room for the fourth: all four are bound together */
	h_node(h, node_json("c", "2", "8Gi", NULL, NULL));
	h_run(h, 1);
	assert_int_equal(placed(h, "train", 4), 4);
	assert_int_equal(h->binds, 4);
	h_free(h);
}

static void test_sched_gang_waits_for_its_members(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "16", "8Gi", NULL, NULL));
	podgroup(h, "g", 3, 60);
	member(h, "g", 0, "1", NULL);
	member(h, "g", 1, "1", NULL);
	h_run(h, 1);
	assert_int_equal(placed(h, "g", 3), 0);
	assert_string_equal(sched_pod_message(h->s, "default", "g-0"),
			    "pod group default/g has 2 of its 3 members");
	member(h, "g", 2, "1", NULL);
	h_run(h, 1);
	assert_int_equal(placed(h, "g", 3), 3);
	h_free(h);
}

static void test_sched_gang_times_out_and_releases(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "16", "8Gi", NULL, NULL));
	podgroup(h, "g", 3, 30);
	member(h, "g", 0, "1", NULL);
	member(h, "g", 1, "1", NULL);
	/* the third member belongs to another scheduler and never comes */
	member(h, "g", 2, "1", "'schedulerName':'elsewhere'");
	h_run(h, 0);
	struct sched_stats st;
	sched_stats(h->s, &st);
	assert_int_equal(st.waiting, 2);
	struct sched_node_info ni;
	sched_node_info(h->s, "a", &ni);
	assert_int_equal(ni.req_cpu, 2000); /* held while the gang assembles */
	int64_t w = sched_next_wakeup_ms(h->s);
	assert_int_equal(w, h->now + 30000);
	h->now = w;
	h_run(h, 0);
	sched_stats(h->s, &st);
	assert_int_equal(st.waiting, 0);
	assert_int_equal(st.gang_timeouts, 1);
	sched_node_info(h->s, "a", &ni);
	assert_int_equal(ni.req_cpu, 0);
	assert_int_equal(h->binds, 0);
	assert_non_null(strstr(sched_pod_message(h->s, "default", "g-0"), "timed out"));
	h_free(h);
}

static void test_sched_preemption_picks_minimal_victims(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("n1", "4", "8Gi", NULL, NULL));
	h_node(h, node_json("n2", "4", "8Gi", NULL, NULL));
	h_pod(h, pod_json("default", "v1", "1", "10Mi", NULL, "'nodeName':'n1','priority':1"));
	h_pod(h, pod_json("default", "v2", "1", "10Mi", NULL, "'nodeName':'n1','priority':2"));
	h_pod(h, pod_json("default", "v3", "2", "10Mi", NULL, "'nodeName':'n1','priority':3"));
	/* n2 holds one pod of higher priority than the preemptor: never a victim */
	h_pod(h, pod_json("default", "vip", "4", "10Mi", NULL, "'nodeName':'n2','priority':100"));
	h_pod(h, pod_json("default", "p", "2", "10Mi", NULL, "'priority':10"));
	h_run(h, 0);
	/* evicting v3 alone or v1+v2 both make room; the lower highest priority wins */
	assert_int_equal(h->evictions, 2);
	assert_string_equal(h->evicted[0], "default/v2");
	assert_string_equal(h->evicted[1], "default/v1");
	assert_string_equal(h->last_nominated, "n1");
	assert_string_equal(h_where(h, "default", "p"), "");
	/* a lower-priority newcomer cannot take the room held for p */
	h_delete(h, "default", "v1");
	h_delete(h, "default", "v2");
	h_pod(h, pod_json("default", "sneaky", "2", "10Mi", NULL, "'priority':5"));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "p"), "n1");
	assert_string_equal(h_where(h, "default", "sneaky"), "");
	h_free(h);
}

static void test_sched_preemption_never_evicts_higher_priority(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("n1", "2", "8Gi", NULL, NULL));
	h_pod(h, pod_json("default", "same", "1", "10Mi", NULL, "'nodeName':'n1','priority':5"));
	h_pod(h, pod_json("default", "higher", "1", "10Mi", NULL, "'nodeName':'n1','priority':9"));
	h_pod(h, pod_json("default", "p", "1", "10Mi", NULL, "'priority':5"));
	h_pod(h, pod_json("default", "never", "1", "10Mi", NULL,
			  "'priority':50,'preemptionPolicy':'Never'"));
	h_run(h, 1);
	assert_int_equal(h->evictions, 0);
	assert_string_equal(h_where(h, "default", "p"), "");
	assert_string_equal(h_where(h, "default", "never"), "");
	h_free(h);
}

static void test_sched_preemption_for_anti_affinity(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("n1", "8", "8Gi", "{'kubernetes.io/hostname':'n1'}", NULL));
	h_pod(h, pod_json("default", "low", "100m", "10Mi", "{'app':'x'}",
			  "'nodeName':'n1','priority':1"));
	h_pod(h, pod_json("default", "p", "100m", "10Mi", NULL,
			  "'priority':10,'affinity':{'podAntiAffinity':{"
			  "'requiredDuringSchedulingIgnoredDuringExecution':[{'labelSelector':{"
			  "'matchLabels':{'app':'x'}},'topologyKey':'kubernetes.io/hostname'}]}}"));
	h_run(h, 0);
	assert_int_equal(h->evictions, 1);
	assert_string_equal(h->evicted[0], "default/low");
	h_delete(h, "default", "low");
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "p"), "n1");
	h_free(h);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_sched_gang_all_or_none),
		cmocka_unit_test(test_sched_gang_waits_for_its_members),
		cmocka_unit_test(test_sched_gang_times_out_and_releases),
		cmocka_unit_test(test_sched_preemption_picks_minimal_victims),
		cmocka_unit_test(test_sched_preemption_never_evicts_higher_priority),
		cmocka_unit_test(test_sched_preemption_for_anti_affinity))
