// SPDX-License-Identifier: Apache-2.0
/*
 * A seeded property test over many random clusters and pod mixes. After every pod has been
 * through the queue (back-off and events included), an independent checker (sched_verify,
 * which reads the JSON with common/labels.h and shares no code with the scheduler's
 * counters) must find: no node over capacity, no node selection, taint, required affinity or
 * anti-affinity violated, no DoNotSchedule spread above maxSkew; and no pod left pending
 * that would fit somewhere.
 *
 * Pods come from a few "apps" whose constraints are fixed per app (as a workload's replicas
 * share a template), so that a final placement can be judged without knowing the order.
 */
#include "shoal_test.h"
#include "sched_fixtures.h"

static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static const char *app_spec(int app)
{
	switch (app) {
	case 0: /* plain */
		return "";
	case 1: /* one per host */
		return "'affinity':{'podAntiAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
		       "[{'labelSelector':{'matchLabels':{'app':'a1'}},'topologyKey':"
		       "'kubernetes.io/hostname'}]}}";
	case 2: /* together in a zone */
		return "'affinity':{'podAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
		       "[{'labelSelector':{'matchLabels':{'app':'a2'}},'topologyKey':'zone'}]}}";
	case 3: /* near the plain app */
		return "'affinity':{'podAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
		       "[{'labelSelector':{'matchLabels':{'app':'a0'}},'topologyKey':'zone'}]}}";
	case 4: /* keeps the plain app out of its zone (symmetric) */
		return "'affinity':{'podAntiAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
		       "[{'labelSelector':{'matchLabels':{'app':'a0'}},'topologyKey':'zone'}]}}";
	case 5: /* spread over zones */
		return "'topologySpreadConstraints':[{'maxSkew':1,'topologyKey':'zone',"
		       "'whenUnsatisfiable':'DoNotSchedule','labelSelector':{'matchLabels':"
		       "{'app':'a5'}}}]";
	case 6: /* spread over hosts, at most 2 apart, with preferences */
		return "'topologySpreadConstraints':[{'maxSkew':2,'topologyKey':'kubernetes.io/hostname',"
		       "'whenUnsatisfiable':'DoNotSchedule','labelSelector':{'matchLabels':"
		       "{'app':'a6'}}}],'affinity':{'podAffinity':{"
		       "'preferredDuringSchedulingIgnoredDuringExecution':[{'weight':50,"
		       "'podAffinityTerm':{'labelSelector':{'matchLabels':{'app':'a0'}},"
		       "'topologyKey':'zone'}}]}}";
	case 7: /* node selection and tolerations */
		return "'nodeSelector':{'disk':'ssd'},'tolerations':[{'key':'dedicated',"
		       "'operator':'Exists','effect':'NoSchedule'}]";
	default: /* node affinity with Gt, preferred node affinity */
		return "'affinity':{'nodeAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
		       "{'nodeSelectorTerms':[{'matchExpressions':[{'key':'gen','operator':'Gt',"
		       "'values':['2']}]},{'matchExpressions':[{'key':'zone','operator':'In',"
		       "'values':['z0']}]}]},'preferredDuringSchedulingIgnoredDuringExecution':[{"
		       "'weight':10,'preference':{'matchExpressions':[{'key':'disk','operator':"
		       "'NotIn','values':['hdd']}]}}]}}";
	}
}

static void one_cluster(uint64_t seed, int *pods_total, int *pending_total)
{
	rng = seed * 2654435761u + 1;
	struct harness *h = h_new(rnd(2) ? "{'parallelism': 1}" : "{'parallelism': 2}");
	int nn = 3 + (int)rnd(10);
	for (int i = 0; i < nn; i++) {
		char name[16], labels[256], spec[160];
		snprintf(name, sizeof(name), "n%d", i);
		int zone = (int)rnd(4); /* 3: no zone label */
		char zl[32] = "";
		if (zone < 3)
			snprintf(zl, sizeof(zl), ",'zone':'z%d'", zone);
		snprintf(labels, sizeof(labels),
			 "{'kubernetes.io/hostname':'n%d','disk':'%s','gen':'%u'%s}", i,
			 rnd(2) ? "ssd" : "hdd", rnd(5), zl);
		snprintf(spec, sizeof(spec), "{%s}",
			 rnd(8) == 0 ? "'taints':[{'key':'dedicated','value':'x','effect':'NoSchedule'}]" :
				       "");
		json_t *nj = J("{'metadata':{'name':'%s','labels':%s},'spec':%s,'status':"
			       "{'allocatable':{'cpu':'%u','memory':'%uGi','pods':'%u'}}}",
			       name, labels, spec, 2 + rnd(7), 4 + rnd(12), 4 + rnd(20));
		if (rnd(15) == 0)
			json_object_set_new(json_object_get(nj, "spec"), "unschedulable",
					    json_true());
		assert_int_equal(h_node(h, nj), 0);
	}
	int np = 10 + (int)rnd(40);
	for (int i = 0; i < np; i++) {
		char name[16], labels[64], cpu[16], mem[16];
		int app = (int)rnd(9);
		snprintf(name, sizeof(name), "p%d", i);
		snprintf(labels, sizeof(labels), "{'app':'a%d'}", app);
		snprintf(cpu, sizeof(cpu), "%um", 100 + 100 * rnd(15));
		snprintf(mem, sizeof(mem), "%uMi", 128 + 128 * rnd(12));
		const char *ns = rnd(4) == 0 ? "other" : "default";
		assert_int_equal(h_pod(h, pod_json(ns, name, cpu, mem, labels, app_spec(app))), 0);
		if (rnd(3) == 0)
			h_run(h, rnd(2));
	}
	h_run(h, 1);
	char err[512];
	int v = sched_verify(h->nodes, h->pods, err, sizeof(err));
	if (v)
		fail_msg("seed %llu: %d violation(s): %s", (unsigned long long)seed, v, err);
	for (size_t i = 0; i < json_array_size(h->pods); i++) {
		json_t *p = json_array_get(h->pods, i);
		if (json_object_get(json_object_get(p, "spec"), "nodeName"))
			continue;
		(*pending_total)++;
		if (sched_verify_fits_somewhere(h->nodes, h->pods, i)) {
			const char *n = json_string_value(
				json_object_get(json_object_get(p, "metadata"), "name"));
			fail_msg("seed %llu: pod %s left pending but fits somewhere (%s)",
				 (unsigned long long)seed, n,
				 sched_pod_message(h->s,
						   json_string_value(json_object_get(
							   json_object_get(p, "metadata"), "namespace")),
						   n) ?: "no message");
		}
	}
	*pods_total += (int)json_array_size(h->pods);
	h_free(h);
}

static void test_sched_property_random_clusters(void **state)
{
	(void)state;
	int pods = 0, pending = 0;
	const char *env = getenv("SHOAL_SCHED_SEEDS");
	int seeds = env ? atoi(env) : 150;
	for (int seed = 1; seed <= seeds; seed++)
		one_cluster((uint64_t)seed, &pods, &pending);
	/* the mix must exercise both outcomes */
	assert_true(pods > seeds * 10);
	assert_true(pending > 0);
	assert_true(pending < pods);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_sched_property_random_clusters))
