// SPDX-License-Identifier: Apache-2.0
/*
 * The node-side plugins one by one: NodeUnschedulable, NodeAffinity (every operator, node
 * selector, matchFields, preferred terms), TaintToleration, NodeResourcesFit (pods, extended
 * resources), the allocation scores, PodTopologySpread.
 */
#include "shoal_test.h"
#include "sched_fixtures.h"

static void test_sched_unschedulable_node_skipped_unless_tolerated(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("cordoned", "4", "4Gi", NULL, "{'unschedulable': true}"));
	h_pod(h, pod_json("default", "a", "1", "1Gi", NULL, ""));
	h_pod(h, pod_json("default", "b", "1", "1Gi", NULL,
			  "'tolerations':[{'key':'node.kubernetes.io/unschedulable',"
			  "'operator':'Exists','effect':'NoSchedule'}]"));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "a"), "");
	assert_string_equal(sched_pod_message(h->s, "default", "a"),
			    "0/1 nodes are available: 1 node(s) were unschedulable.");
	assert_string_equal(h_where(h, "default", "b"), "cordoned");
	h_free(h);
}

static void test_sched_nodeaffinity_operators(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "4", "4Gi", "{'zone':'z1','gen':'3','ssd':'yes'}", NULL));
	h_node(h, node_json("b", "4", "4Gi", "{'zone':'z2','gen':'5'}", NULL));
	h_node(h, node_json("c", "4", "4Gi", "{'zone':'z3','gen':'9','gpu':'t4'}", NULL));
	struct {
		const char *name, *exprs, *want;
	} cases[] = {
		{ "in", "{'key':'zone','operator':'In','values':['z2']}", "b" },
		{ "notin", "{'key':'zone','operator':'NotIn','values':['z1','z3']}", "b" },
		{ "exists", "{'key':'gpu','operator':'Exists'}", "c" },
		{ "doesnotexist",
		  "{'key':'gpu','operator':'DoesNotExist'},{'key':'ssd','operator':'DoesNotExist'}",
		  "b" },
		{ "gt", "{'key':'gen','operator':'Gt','values':['6']}", "c" },
		{ "lt", "{'key':'gen','operator':'Lt','values':['4']}", "a" },
		{ "none", "{'key':'zone','operator':'In','values':['z9']}", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char spec[512];
		snprintf(spec, sizeof(spec),
			 "'affinity':{'nodeAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
			 "{'nodeSelectorTerms':[{'matchExpressions':[%s]}]}}}",
			 cases[i].exprs);
		assert_int_equal(h_pod(h, pod_json("default", cases[i].name, "10m", "1Mi", NULL,
						   spec)),
				 0);
	}
	h_run(h, 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(h_where(h, "default", cases[i].name), cases[i].want);
	assert_string_equal(sched_pod_message(h->s, "default", "none"),
			    "0/3 nodes are available: 3 node(s) didn't match Pod's node "
			    "affinity/selector.");
	h_free(h);
}

static void test_sched_nodeselector_terms_and_fields(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "4", "4Gi", "{'zone':'z1'}", NULL));
	h_node(h, node_json("b", "4", "4Gi", "{'zone':'z2'}", NULL));
	h_node(h, node_json("c", "4", "4Gi", "{'zone':'z2'}", NULL));
	h_pod(h, pod_json("default", "sel", "10m", "1Mi", NULL, "'nodeSelector':{'zone':'z1'}"));
	/* terms are ORed: the first cannot match, the second names node c */
	h_pod(h, pod_json("default", "fields", "10m", "1Mi", NULL,
			  "'affinity':{'nodeAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
			  "{'nodeSelectorTerms':[{'matchExpressions':[{'key':'zone','operator':'In',"
			  "'values':['nowhere']}]},{'matchFields':[{'key':'metadata.name',"
			  "'operator':'In','values':['c']}]}]}}}"));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "sel"), "a");
	assert_string_equal(h_where(h, "default", "fields"), "c");
	h_free(h);
}

static void test_sched_nodeaffinity_preferred_scores(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "4", "4Gi", "{'disk':'hdd'}", NULL));
	h_node(h, node_json("b", "4", "4Gi", "{'disk':'ssd'}", NULL));
	h_node(h, node_json("c", "4", "4Gi", "{'disk':'nvme'}", NULL));
	for (int i = 0; i < 5; i++) {
		char n[16];
		snprintf(n, sizeof(n), "p%d", i);
		h_pod(h, pod_json("default", n, "10m", "1Mi", NULL,
				  "'affinity':{'nodeAffinity':{'preferredDuringSchedulingIgnoredDuringExecution':"
				  "[{'weight':80,'preference':{'matchExpressions':[{'key':'disk',"
				  "'operator':'In','values':['nvme']}]}},{'weight':20,'preference':{"
				  "'matchExpressions':[{'key':'disk','operator':'In','values':['ssd']}]}}]}}"));
		h_run(h, 1);
		assert_string_equal(h_where(h, "default", n), "c");
	}
	h_free(h);
}

static void test_sched_taints_and_tolerations(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("gpu", "4", "4Gi", NULL,
			    "{'taints':[{'key':'gpu','value':'true','effect':'NoSchedule'}]}"));
	h_node(h, node_json("evict", "4", "4Gi", NULL,
			    "{'taints':[{'key':'maint','effect':'NoExecute'}]}"));
	h_pod(h, pod_json("default", "plain", "10m", "1Mi", NULL, ""));
	h_pod(h, pod_json("default", "equal", "10m", "1Mi", NULL,
			  "'tolerations':[{'key':'gpu','operator':'Equal','value':'true',"
			  "'effect':'NoSchedule'}]"));
	h_pod(h, pod_json("default", "wrongval", "10m", "1Mi", NULL,
			  "'tolerations':[{'key':'gpu','value':'false'},{'key':'maint',"
			  "'operator':'Exists','effect':'NoSchedule'}]"));
	h_pod(h, pod_json("default", "exists", "10m", "1Mi", NULL,
			  "'tolerations':[{'key':'maint','operator':'Exists'}]"));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "plain"), "");
	assert_string_equal(h_where(h, "default", "equal"), "gpu");
	assert_string_equal(h_where(h, "default", "wrongval"), "");
	assert_string_equal(h_where(h, "default", "exists"), "evict");
	assert_string_equal(sched_pod_message(h->s, "default", "plain"),
			    "0/2 nodes are available: 1 node(s) had untolerated taint {gpu: true}, "
			    "1 node(s) had untolerated taint {maint: }.");
	h_free(h);
}

static void test_sched_prefer_no_schedule_scores_against(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("soft", "4", "4Gi", NULL,
			    "{'taints':[{'key':'spot','effect':'PreferNoSchedule'}]}"));
	h_node(h, node_json("clean", "4", "4Gi", NULL, NULL));
	for (int i = 0; i < 4; i++) {
		char n[16];
		snprintf(n, sizeof(n), "p%d", i);
		h_pod(h, pod_json("default", n, "10m", "1Mi", NULL, ""));
		h_run(h, 1);
		assert_string_equal(h_where(h, "default", n), "clean");
	}
	h_free(h);
}

static void test_sched_fit_pods_and_extended_resources(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, J("{'metadata':{'name':'tiny'},'status':{'allocatable':{'cpu':'8','memory':'8Gi',"
		    "'pods':'1'}}}"));
	h_node(h, J("{'metadata':{'name':'gpu'},'status':{'allocatable':{'cpu':'8','memory':'8Gi',"
		    "'pods':'10','example.com/gpu':'2'}}}"));
	h_pod(h, J("{'metadata':{'name':'g1'},'spec':{'containers':[{'resources':{'limits':"
		   "{'example.com/gpu':'2'}}}]}}"));
	h_pod(h, J("{'metadata':{'name':'g2'},'spec':{'containers':[{'resources':{'requests':"
		   "{'example.com/gpu':'1'}}}]}}"));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "g1"), "gpu");
	assert_string_equal(h_where(h, "default", "g2"), "");
	assert_string_equal(sched_pod_message(h->s, "default", "g2"),
			    "0/2 nodes are available: 2 Insufficient example.com/gpu.");
	/* tiny takes one pod: it lacks the gpu and room for a pod, and says both */
	h_pod(h, pod_json("default", "a", "1", "1Gi", NULL, "'nodeName':'tiny'"));
	h_pod(h, J("{'metadata':{'name':'g3'},'spec':{'containers':[{'resources':{'requests':"
		   "{'example.com/gpu':'1'}}}]}}"));
	h_run(h, 1);
	assert_string_equal(sched_pod_message(h->s, "default", "g3"),
			    "0/2 nodes are available: 2 Insufficient example.com/gpu, 1 Too many pods.");
	h_pod(h, pod_json("default", "b", "1", "1Gi", NULL, ""));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "b"), "gpu");
	h_free(h);
}

static void test_sched_least_and_balanced_allocation(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("cpu-heavy", "8", "32Gi", NULL, NULL));
	h_node(h, node_json("balanced", "8", "32Gi", NULL, NULL));
	h_pod(h, J("{'metadata':{'name':'x'},'spec':{'nodeName':'cpu-heavy','containers':[{"
		   "'resources':{'requests':{'cpu':'6','memory':'1Gi'}}}]}}"));
	h_pod(h, J("{'metadata':{'name':'y'},'spec':{'nodeName':'balanced','containers':[{"
		   "'resources':{'requests':{'cpu':'2','memory':'8Gi'}}}]}}"));
	/* least allocated and balanced both prefer the node with room in both */
	h_pod(h, pod_json("default", "p", "1", "4Gi", NULL, ""));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "p"), "balanced");
	h_free(h);
}

static const char *zone_spread = "'topologySpreadConstraints':[{'maxSkew':1,"
				 "'topologyKey':'zone','whenUnsatisfiable':'DoNotSchedule',"
				 "'labelSelector':{'matchLabels':{'app':'web'}}}]";

static void test_sched_spread_keeps_skew(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	for (int i = 0; i < 6; i++) {
		char n[16], l[64];
		snprintf(n, sizeof(n), "n%d", i);
		snprintf(l, sizeof(l), "{'zone':'z%d'}", i % 3);
		h_node(h, node_json(n, "100", "100Gi", l, NULL));
	}
	for (int i = 0; i < 9; i++) {
		char n[16];
		snprintf(n, sizeof(n), "web-%d", i);
		h_pod(h, pod_json("default", n, "100m", "10Mi", "{'app':'web'}", zone_spread));
		h_run(h, 1);
	}
	int per_zone[3] = { 0 };
	for (int i = 0; i < 9; i++) {
		char n[16];
		snprintf(n, sizeof(n), "web-%d", i);
		const char *w = h_where(h, "default", n);
		assert_true(strlen(w) > 0);
		per_zone[(w[1] - '0') % 3]++;
	}
	assert_int_equal(per_zone[0], 3);
	assert_int_equal(per_zone[1], 3);
	assert_int_equal(per_zone[2], 3);
	char err[256];
	assert_int_equal(sched_verify(h->nodes, h->pods, err, sizeof(err)), 0);
	h_free(h);
}

static void test_sched_spread_refuses_skew_and_needs_label(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "100", "100Gi", "{'zone':'z1'}", NULL));
	h_node(h, node_json("b", "1", "100Gi", "{'zone':'z2'}", NULL));
	h_node(h, node_json("nolabel", "100", "100Gi", NULL, NULL));
	/* z2 is full: after one pod in z1, the next would make the skew 2 */
	h_pod(h, pod_json("default", "fill", "1", "1Mi", NULL, "'nodeName':'b'"));
	h_pod(h, pod_json("default", "w1", "100m", "1Mi", "{'app':'web'}", zone_spread));
	h_run(h, 1);
	h_pod(h, pod_json("default", "w2", "100m", "1Mi", "{'app':'web'}", zone_spread));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "w1"), "a");
	assert_string_equal(h_where(h, "default", "w2"), "");
	assert_string_equal(sched_pod_message(h->s, "default", "w2"),
			    "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod "
			    "topology spread constraints, 1 node(s) didn't match pod topology spread "
			    "constraints (missing required label).");
	h_free(h);
}

static void test_sched_spread_min_domains(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "100", "100Gi", "{'zone':'z1'}", NULL));
	h_node(h, node_json("b", "100", "100Gi", "{'zone':'z2'}", NULL));
	const char *spec = "'topologySpreadConstraints':[{'maxSkew':1,'minDomains':3,"
			   "'topologyKey':'zone','whenUnsatisfiable':'DoNotSchedule',"
			   "'labelSelector':{'matchLabels':{'app':'db'}}}]";
	/* with fewer than 3 zones the minimum counts as 0: at most one pod per zone */
	for (int i = 0; i < 3; i++) {
		char n[16];
		snprintf(n, sizeof(n), "db-%d", i);
		h_pod(h, pod_json("default", n, "100m", "1Mi", "{'app':'db'}", spec));
		h_run(h, 1);
	}
	int placed = 0;
	for (int i = 0; i < 3; i++) {
		char n[16];
		snprintf(n, sizeof(n), "db-%d", i);
		placed += strlen(h_where(h, "default", n)) > 0;
	}
	assert_int_equal(placed, 2);
	/* a third zone arrives: the last pod goes there */
	h_node(h, node_json("c", "100", "100Gi", "{'zone':'z3'}", NULL));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "db-2"), "c");
	h_free(h);
}

static void test_sched_spread_schedule_anyway_prefers_emptier_domain(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "100", "100Gi", "{'zone':'z1'}", NULL));
	h_node(h, node_json("b", "100", "100Gi", "{'zone':'z2'}", NULL));
	for (int i = 0; i < 3; i++) {
		char n[16];
		snprintf(n, sizeof(n), "old-%d", i);
		h_pod(h, J("{'metadata':{'name':'%s','labels':{'app':'api'}},'spec':{'nodeName':'a'}}",
			   n));
	}
	h_pod(h, pod_json("default", "new", "100m", "1Mi", "{'app':'api'}",
			  "'topologySpreadConstraints':[{'maxSkew':1,'topologyKey':'zone',"
			  "'whenUnsatisfiable':'ScheduleAnyway','labelSelector':{'matchLabels':"
			  "{'app':'api'}}}]"));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "new"), "b");
	h_free(h);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_sched_unschedulable_node_skipped_unless_tolerated),
		cmocka_unit_test(test_sched_nodeaffinity_operators),
		cmocka_unit_test(test_sched_nodeselector_terms_and_fields),
		cmocka_unit_test(test_sched_nodeaffinity_preferred_scores),
		cmocka_unit_test(test_sched_taints_and_tolerations),
		cmocka_unit_test(test_sched_prefer_no_schedule_scores_against),
		cmocka_unit_test(test_sched_fit_pods_and_extended_resources),
		cmocka_unit_test(test_sched_least_and_balanced_allocation),
		cmocka_unit_test(test_sched_spread_keeps_skew),
		cmocka_unit_test(test_sched_spread_refuses_skew_and_needs_label),
		cmocka_unit_test(test_sched_spread_min_domains),
		cmocka_unit_test(test_sched_spread_schedule_anyway_prefers_emptier_domain))
