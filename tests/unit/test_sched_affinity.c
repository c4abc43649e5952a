// SPDX-License-Identifier: Apache-2.0
/*
 * InterPodAffinity and its symmetry: P's required terms are hard; placed pods' required
 * anti-affinity against P is hard; placed pods' required affinity toward P only scores; the
 * first pod of a group that requires itself is admitted; preferred terms score both ways.
 */
#include "shoal_test.h"
#include "sched_fixtures.h"

#define ANTI_HOST(app)                                                                             \
	"'affinity':{'podAntiAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':[{"     \
	"'labelSelector':{'matchLabels':{'app':'" app "'}},'topologyKey':'kubernetes.io/hostname'}]}}"
#define AFF_ZONE(app)                                                                              \
	"'affinity':{'podAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':[{"         \
	"'labelSelector':{'matchLabels':{'app':'" app "'}},'topologyKey':'zone'}]}}"

static void zones(struct harness *h, int n, const char *cpu)
{
	for (int i = 0; i < n; i++) {
		char name[16], l[96];
		snprintf(name, sizeof(name), "n%d", i);
		snprintf(l, sizeof(l), "{'zone':'z%d','kubernetes.io/hostname':'n%d'}", i % 3, i);
		h_node(h, node_json(name, cpu, "64Gi", l, NULL));
	}
}

static const char *zone_of(struct harness *h, const char *pod)
{
	static char z[8];
	const char *n = h_where(h, "default", pod);
	if (!*n)
		return "";
	snprintf(z, sizeof(z), "z%d", atoi(n + 1) % 3);
	return z;
}

static void test_sched_anti_affinity_one_per_host(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	zones(h, 3, "8");
	for (int i = 0; i < 4; i++) {
		char n[16];
		snprintf(n, sizeof(n), "web-%d", i);
		h_pod(h, pod_json("default", n, "100m", "10Mi", "{'app':'web'}", ANTI_HOST("web")));
	}
	h_run(h, 1);
	int placed = 0;
	for (int i = 0; i < 4; i++) {
		char n[16];
		snprintf(n, sizeof(n), "web-%d", i);
		placed += *h_where(h, "default", n) != 0;
	}
	assert_int_equal(placed, 3);
	/* the placed pods' own terms are checked first, as kube-scheduler does */
	assert_string_equal(sched_pod_message(h->s, "default", "web-3"),
			    "0/3 nodes are available: 3 node(s) didn't satisfy existing pods "
			    "anti-affinity rules.");
	char err[256];
	assert_int_equal(sched_verify(h->nodes, h->pods, err, sizeof(err)), 0);
	h_free(h);
}

static void test_sched_existing_anti_affinity_blocks_newcomer(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	zones(h, 3, "8");
	/* a db pod on n0 (zone z0) refuses any app=batch pod in its zone */
	h_pod(h, pod_json("default", "db", "100m", "10Mi", "{'app':'db'}",
			  "'nodeName':'n0','affinity':{'podAntiAffinity':{"
			  "'requiredDuringSchedulingIgnoredDuringExecution':[{'labelSelector':{"
			  "'matchLabels':{'app':'batch'}},'topologyKey':'zone'}]}}"));
	for (int i = 0; i < 6; i++) {
		char n[16];
		snprintf(n, sizeof(n), "batch-%d", i);
		h_pod(h, pod_json("default", n, "100m", "10Mi", "{'app':'batch'}", ""));
		h_run(h, 1);
		assert_string_not_equal(zone_of(h, n), "z0");
		assert_string_not_equal(zone_of(h, n), "");
	}
	/* with only z0 nodes left, the newcomer is refused, and says why */
	struct harness *h2 = h_new(NULL);
	h_node(h2, node_json("a", "8", "8Gi", "{'zone':'z0'}", NULL));
	h_pod(h2, pod_json("default", "db", "100m", "10Mi", "{'app':'db'}",
			   "'nodeName':'a','affinity':{'podAntiAffinity':{"
			   "'requiredDuringSchedulingIgnoredDuringExecution':[{'labelSelector':{"
			   "'matchLabels':{'app':'batch'}},'topologyKey':'zone'}]}}"));
	h_pod(h2, pod_json("default", "b", "100m", "10Mi", "{'app':'batch'}", ""));
	h_run(h2, 1);
	assert_string_equal(sched_pod_message(h2->s, "default", "b"),
			    "0/1 nodes are available: 1 node(s) didn't satisfy existing pods "
			    "anti-affinity rules.");
	/* the db pod leaves: the newcomer is placed */
	h_delete(h2, "default", "db");
	h_run(h2, 1);
	assert_string_equal(h_where(h2, "default", "b"), "a");
	h_free(h2);
	h_free(h);
}

static void test_sched_affinity_waits_for_target_that_arrives_later(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	zones(h, 6, "8");
	/* B requires a cache pod in its zone; none exists yet */
	h_pod(h, pod_json("default", "b", "100m", "10Mi", "{'app':'web'}", AFF_ZONE("cache")));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "b"), "");
	assert_string_equal(sched_pod_message(h->s, "default", "b"),
			    "0/6 nodes are available: 6 node(s) didn't match pod affinity rules.");
	/* A arrives after B and is not blocked by B wanting it */
	h_pod(h, pod_json("default", "a", "100m", "10Mi", "{'app':'cache'}", ""));
	h_run(h, 1);
	assert_string_not_equal(zone_of(h, "a"), "");
	/* A's arrival re-activates B, which joins A's zone */
	assert_string_equal(zone_of(h, "b"), zone_of(h, "a"));
	char err[256];
	assert_int_equal(sched_verify(h->nodes, h->pods, err, sizeof(err)), 0);
	h_free(h);
}

static void test_sched_affinity_first_pod_of_group(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	zones(h, 9, "8");
	/* every member requires a member in its zone: the first goes anywhere, the rest follow */
	for (int i = 0; i < 8; i++) {
		char n[16];
		snprintf(n, sizeof(n), "g-%d", i);
		h_pod(h, pod_json("default", n, "100m", "10Mi", "{'app':'grp'}", AFF_ZONE("grp")));
	}
	h_run(h, 1);
	const char *z = zone_of(h, "g-0");
	char first[8];
	snprintf(first, sizeof(first), "%s", z);
	assert_string_not_equal(first, "");
	for (int i = 1; i < 8; i++) {
		char n[16];
		snprintf(n, sizeof(n), "g-%d", i);
		assert_string_equal(zone_of(h, n), first);
	}
	/* a pod that requires the group but is not of it gets no exception before the group */
	struct harness *h2 = h_new(NULL);
	zones(h2, 3, "8");
	h_pod(h2, pod_json("default", "x", "100m", "10Mi", "{'app':'other'}", AFF_ZONE("grp")));
	h_run(h2, 1);
	assert_string_equal(h_where(h2, "default", "x"), "");
	h_free(h2);
	h_free(h);
}

static void test_sched_existing_required_affinity_only_scores(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "1", "8Gi", "{'zone':'z0'}", NULL));
	h_node(h, node_json("b", "8", "8Gi", "{'zone':'z1'}", NULL));
	h_node(h, node_json("c", "8", "8Gi", "{'zone':'z2'}", NULL));
	/* e on c requires app=cache in its zone: a cache pod prefers c's zone... */
	h_pod(h, pod_json("default", "e", "100m", "10Mi", "{'app':'e'}",
			  "'nodeName':'c'," AFF_ZONE("cache")));
	h_pod(h, pod_json("default", "cache-1", "100m", "10Mi", "{'app':'cache'}", ""));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "cache-1"), "c");
	/* ...but is not confined there: when c is full, it goes elsewhere */
	h_pod(h, pod_json("default", "fill", "7", "10Mi", NULL, "'nodeName':'c'"));
	h_pod(h, pod_json("default", "cache-2", "1", "10Mi", "{'app':'cache'}", ""));
	h_run(h, 1);
	assert_string_equal(h_where(h, "default", "cache-2"), "b");
	h_free(h);
}

static void test_sched_preferred_terms_score_both_ways(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	zones(h, 6, "8");
	/* P's own preferred affinity: towards the cache's zone */
	h_pod(h, pod_json("default", "cache", "100m", "10Mi", "{'app':'cache'}", "'nodeName':'n4'"));
	h_pod(h, pod_json("default", "p", "100m", "10Mi", NULL,
			  "'affinity':{'podAffinity':{'preferredDuringSchedulingIgnoredDuringExecution':"
			  "[{'weight':100,'podAffinityTerm':{'labelSelector':{'matchLabels':{"
			  "'app':'cache'}},'topologyKey':'zone'}}]}}"));
	h_run(h, 1);
	assert_string_equal(zone_of(h, "p"), "z1");
	/* a placed pod's preferred affinity draws a matching newcomer into its zone */
	h_pod(h, pod_json("default", "lover", "100m", "10Mi", NULL,
			  "'nodeName':'n2','affinity':{'podAffinity':{"
			  "'preferredDuringSchedulingIgnoredDuringExecution':[{'weight':100,"
			  "'podAffinityTerm':{'labelSelector':{'matchLabels':{'app':'api'}},"
			  "'topologyKey':'zone'}}]}}"));
	h_pod(h, pod_json("default", "api", "100m", "10Mi", "{'app':'api'}", ""));
	h_run(h, 1);
	assert_string_equal(zone_of(h, "api"), "z2");
	/* a placed pod's preferred anti-affinity pushes a matching newcomer out of its zone */
	struct harness *h2 = h_new(NULL);
	h_node(h2, node_json("a", "8", "8Gi", "{'zone':'z0'}", NULL));
	h_node(h2, node_json("b", "8", "8Gi", "{'zone':'z1'}", NULL));
	/* without the term, LeastAllocated would pick a (b is busier) */
	h_pod(h2, pod_json("default", "busy", "2", "2Gi", NULL, "'nodeName':'b'"));
	h_pod(h2, pod_json("default", "hater", "100m", "10Mi", NULL,
			   "'nodeName':'a','affinity':{'podAntiAffinity':{"
			   "'preferredDuringSchedulingIgnoredDuringExecution':[{'weight':100,"
			   "'podAffinityTerm':{'labelSelector':{'matchLabels':{'app':'noisy'}},"
			   "'topologyKey':'zone'}}]}}"));
	h_pod(h2, pod_json("default", "noisy", "100m", "10Mi", "{'app':'noisy'}", ""));
	h_run(h2, 1);
	assert_string_equal(h_where(h2, "default", "noisy"), "b");
	h_free(h2);
	h_free(h);
}

static void test_sched_affinity_namespaces(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "8", "8Gi", "{'kubernetes.io/hostname':'a'}", NULL));
	/* a pod in team-a refuses app=web on its host, in its own namespace only */
	h_pod(h, pod_json("team-a", "guard", "100m", "10Mi", NULL, "'nodeName':'a'," ANTI_HOST("web")));
	h_pod(h, pod_json("team-b", "web", "100m", "10Mi", "{'app':'web'}", ""));
	h_run(h, 1);
	assert_string_equal(h_where(h, "team-b", "web"), "a");
	/* with namespaceSelector {} the term covers every namespace */
	h_pod(h, pod_json("team-a", "guard2", "100m", "10Mi", NULL,
			  "'nodeName':'a','affinity':{'podAntiAffinity':{"
			  "'requiredDuringSchedulingIgnoredDuringExecution':[{'labelSelector':{"
			  "'matchLabels':{'app':'web2'}},'namespaceSelector':{},"
			  "'topologyKey':'kubernetes.io/hostname'}]}}"));
	h_pod(h, pod_json("team-b", "web2", "100m", "10Mi", "{'app':'web2'}", ""));
	h_run(h, 1);
	assert_string_equal(h_where(h, "team-b", "web2"), "");
	h_free(h);
}

#define ANTI_PROD_WEB                                                                              \
	"'affinity':{'podAntiAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':[{"     \
	"'labelSelector':{'matchLabels':{'app':'web'}},'namespaceSelector':{'matchLabels':{"      \
	"'env':'prod'}},'topologyKey':'kubernetes.io/hostname'}]}}"

static void test_sched_affinity_namespace_selector_follows_labels(void **state)
{
	(void)state;
	struct harness *h = h_new(NULL);
	h_node(h, node_json("a", "8", "8Gi", "{'kubernetes.io/hostname':'a'}", NULL));
	h_node(h, node_json("b", "8", "8Gi", "{'kubernetes.io/hostname':'b'}", NULL));
	json_t *ns = J("{'metadata':{'name':'prod','labels':{'env':'prod'}}}");
	assert_int_equal(sched_namespace_upsert(h->s, ns, NULL, 0), 0);
	json_decref(ns);
	h_pod(h, pod_json("ops", "guard", "100m", "10Mi", NULL, "'nodeName':'a'," ANTI_PROD_WEB));
	h_pod(h, pod_json("dev", "web", "100m", "10Mi", "{'app':'web'}", "'nodeSelector':{'kubernetes.io/hostname':'a'}"));
	h_pod(h, pod_json("prod", "web", "100m", "10Mi", "{'app':'web'}", "'nodeSelector':{'kubernetes.io/hostname':'a'}"));
	h_run(h, 1);
	assert_string_equal(h_where(h, "dev", "web"), "a");
	assert_string_equal(h_where(h, "prod", "web"), "");
	/* stage's web pod on b counts once stage is labelled prod */
	h_pod(h, pod_json("stage", "web", "100m", "10Mi", "{'app':'web'}", "'nodeName':'b'"));
	ns = J("{'metadata':{'name':'stage','labels':{'env':'prod'}}}");
	assert_int_equal(sched_namespace_upsert(h->s, ns, NULL, 0), 0);
	json_decref(ns);
	h_pod(h, pod_json("ops", "guard2", "100m", "10Mi", NULL,
			  "'nodeSelector':{'kubernetes.io/hostname':'b'}," ANTI_PROD_WEB));
	h_run(h, 1);
	assert_string_equal(h_where(h, "ops", "guard2"), "");
	h_free(h);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_sched_anti_affinity_one_per_host),
		cmocka_unit_test(test_sched_existing_anti_affinity_blocks_newcomer),
		cmocka_unit_test(test_sched_affinity_waits_for_target_that_arrives_later),
		cmocka_unit_test(test_sched_affinity_first_pod_of_group),
		cmocka_unit_test(test_sched_existing_required_affinity_only_scores),
		cmocka_unit_test(test_sched_preferred_terms_score_both_ways),
		cmocka_unit_test(test_sched_affinity_namespaces),
		cmocka_unit_test(test_sched_affinity_namespace_selector_follows_labels))
