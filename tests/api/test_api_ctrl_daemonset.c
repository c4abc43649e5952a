// SPDX-License-Identifier: Apache-2.0
/*
 * The DaemonSet controller in a real shoald (the test binds pods to the node they are pinned
 * to, as the scheduler would, and makes them ready): one pod per matching node, pinned by node
 * affinity on metadata.name with the daemon tolerations; nodeSelector and taints decide the
 * nodes; nodes added, relabeled and deleted are followed; a rolling update keeps at most
 * maxUnavailable nodes without an available pod; status counts.
 */
#include <pthread.h>

#include "ctrl_helpers.h"

static void node(const char *name, const char *role, const char *taint)
{
	req0("POST", "/api/v1/nodes",
	     fmt("{\"metadata\":{\"name\":\"%s\",\"labels\":{\"role\":\"%s\"}},\"spec\":{%s},"
		 "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}",
		 name, role,
		 taint ? fmt("\"taints\":[{\"key\":\"%s\",\"value\":\"x\",\"effect\":"
			     "\"NoSchedule\"}]",
			     taint)
		       : ""),
	     201);
}

static void daemonset(const char *name, const char *image, const char *extra_spec)
{
	req0("POST", "/apis/apps/v1/namespaces/default/daemonsets",
	     fmt("{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"selector\":{\"matchLabels\":{\"ds\":"
		 "\"%s\"}},\"template\":{\"metadata\":{\"labels\":{\"ds\":\"%s\"}},\"spec\":{%s"
		 "\"containers\":[{\"name\":\"c\",\"image\":\"%s\"}]}}}}",
		 name, name, name, extra_spec, image),
	     201);
}

/* The node each live pod of ds is pinned to, "name,name" sorted by the caller's order. */
static const char *pinned(const char *ds, char *buf, size_t len)
{
	json_t *l = pods(fmt("ds%%3D%s", ds));
	size_t i, o = 0;
	json_t *p;
	char names[16][64];
	size_t n = 0;
	json_array_foreach (l, i, p) {
		if (terminating(p) || n == 16)
			continue;
		json_t *terms = json_object_get(
			json_object_get(json_object_get(json_object_get(json_object_get(p, "spec"),
									"affinity"),
							"nodeAffinity"),
					"requiredDuringSchedulingIgnoredDuringExecution"),
			"nodeSelectorTerms");
		json_t *f =
			json_array_get(json_object_get(json_array_get(terms, 0), "matchFields"), 0);
		snprintf(names[n++], 64, "%s",
			 json_string_value(json_array_get(json_object_get(f, "values"), 0)) ?: "?");
	}
	json_decref(l);
	/* sort */
	for (size_t a = 0; a < n; a++)
		for (size_t b = a + 1; b < n; b++)
			if (strcmp(names[a], names[b]) > 0) {
				char t[64];
				memcpy(t, names[a], 64);
				memcpy(names[a], names[b], 64);
				memcpy(names[b], t, 64);
			}
	buf[0] = '\0';
	for (i = 0; i < n; i++)
		o += snprintf(buf + o, o < len ? len - o : 0, "%s%s", i ? "," : "", names[i]);
	return buf;
}

static long long ds_status(const char *name, const char *field)
{
	json_t *d =
		req("GET", fmt("/apis/apps/v1/namespaces/default/daemonsets/%s", name), NULL, 200);
	long long v = jint(d, fmt("status.%s", field));
	json_decref(d);
	return v;
}

/* The status describes the current spec, and every node runs an available current pod. */
static bool ds_rolled_out(const char *name, long n)
{
	json_t *d =
		req("GET", fmt("/apis/apps/v1/namespaces/default/daemonsets/%s", name), NULL, 200);
	bool ok = jint(d, "status.observedGeneration") >= jint(d, "metadata.generation") &&
		  jint(d, "status.updatedNumberScheduled") == n &&
		  jint(d, "status.numberAvailable") == n;
	json_decref(d);
	return ok;
}

static void test_api_ctrl_ds_one_pod_per_matching_node(void **state)
{
	char buf[512];
	(void)state;
	node("dn1", "web", NULL);
	node("dn2", "web", NULL);
	node("dn3", "db", "dedicated");
	daemonset("agent", "agent:v1", "\"nodeSelector\":{\"role\":\"web\"},");
	WAIT_FOR(5000, strcmp(pinned("agent", buf, sizeof(buf)), "dn1,dn2") == 0,
		 "pods on dn1 and dn2, have %s", buf);
	/* pinned and tolerant */
	json_t *l = pods("ds%3Dagent");
	json_t *p = json_array_get(l, 0);
	assert_null(jstr(p, "spec.nodeName"));
	json_t *tols = json_object_get(json_object_get(p, "spec"), "tolerations");
	bool unreach = false;
	size_t i;
	json_t *t;
	json_array_foreach (tols, i, t)
		unreach |= strcmp(jstr(t, "key") ?: "", "node.kubernetes.io/unreachable") == 0 &&
			   !json_object_get(t, "tolerationSeconds");
	assert_true(unreach);
	assert_non_null(json_object_get(json_object_get(json_object_get(p, "metadata"), "labels"),
					"controller-revision-hash"));
	json_decref(l);
	WAIT_FOR(3000,
		 ds_status("agent", "desiredNumberScheduled") == 2 &&
			 ds_status("agent", "currentNumberScheduled") == 2,
		 "desired and current 2");
	assert_int_equal(ds_status("agent", "numberMisscheduled"), 0);

	/* without a nodeSelector but tolerating the taint: every node */
	daemonset("all", "all:v1",
		  "\"tolerations\":[{\"key\":\"dedicated\",\"operator\":\"Exists\"}],");
	WAIT_FOR(5000, strcmp(pinned("all", buf, sizeof(buf)), "dn1,dn2,dn3") == 0,
		 "pods on every node, have %s", buf);
	/* a DaemonSet that does not tolerate it stays off dn3 */
	daemonset("picky", "picky:v1", "");
	WAIT_FOR(5000, strcmp(pinned("picky", buf, sizeof(buf)), "dn1,dn2") == 0,
		 "picky on dn1 and dn2, have %s", buf);

	/* nodes come, change and go */
	node("dn4", "web", NULL);
	WAIT_FOR(5000, strcmp(pinned("agent", buf, sizeof(buf)), "dn1,dn2,dn4") == 0,
		 "a pod on the new node, have %s", buf);
	req0("PATCH", "/api/v1/nodes/dn2", "{\"metadata\":{\"labels\":{\"role\":\"db\"}}}", 200);
	WAIT_FOR(5000, strcmp(pinned("agent", buf, sizeof(buf)), "dn1,dn4") == 0,
		 "the pod leaves the relabeled node, have %s", buf);
	req0("DELETE", "/api/v1/nodes/dn4", NULL, 200);
	WAIT_FOR(5000, strcmp(pinned("agent", buf, sizeof(buf)), "dn1") == 0,
		 "the pod of the deleted node goes, have %s", buf);
}

/* ---- rolling update ------------------------------------------------------------------------ */

struct agent {
	pthread_t th;
	volatile bool stop, counting;
	long min_avail;
};

/* Binds each pod to its pinned node and makes it ready; confirms deletions. */
static void *agent_main(void *arg)
{
	struct agent *a = arg;
	int ip = 1;
	while (!a->stop) {
		long code;
		json_t *lr = http_json(&srv, "GET",
				       "/api/v1/namespaces/default/pods?labelSelector=ds%3Droll",
				       NULL, &code);
		json_t *l = json_object_get(lr, "items");
		size_t i;
		json_t *p;
		long avail = 0;
		json_array_foreach (l, i, p) {
			const char *name = jstr(p, "metadata.name");
			if (terminating(p)) {
				json_decref(http_json(&srv, "DELETE",
						      fmt("/api/v1/namespaces/default/pods/%s?"
							  "gracePeriodSeconds=0",
							  name),
						      NULL, &code));
				continue;
			}
			if (!jstr(p, "spec.nodeName")) {
				json_t *terms = json_object_get(
					json_object_get(
						json_object_get(
							json_object_get(json_object_get(p, "spec"),
									"affinity"),
							"nodeAffinity"),
						"requiredDuringSchedulingIgnoredDuringExecution"),
					"nodeSelectorTerms");
				json_t *f = json_array_get(
					json_object_get(json_array_get(terms, 0), "matchFields"),
					0);
				const char *n = json_string_value(
					json_array_get(json_object_get(f, "values"), 0));
				json_decref(http_json(
					&srv, "POST",
					fmt("/api/v1/namespaces/default/pods/%s/binding", name),
					fmt("{\"target\":{\"kind\":\"Node\",\"name\":\"%s\"}}",
					    n ?: "x"),
					&code));
				continue;
			}
			if (!jstr(p, "status.podIP")) {
				char now[32];
				time_t t = time(NULL);
				struct tm tm;
				gmtime_r(&t, &tm);
				strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
				json_decref(http_json(
					&srv, "PATCH",
					fmt("/api/v1/namespaces/default/pods/%s/status", name),
					fmt("{\"status\":{\"phase\":\"Running\",\"podIP\":\"10.130."
					    "0.%d\","
					    "\"conditions\":[{\"type\":\"Ready\",\"status\":"
					    "\"True\","
					    "\"lastTransitionTime\":\"%s\"}]}}",
					    ip++ % 250 + 1, now),
					&code));
				continue;
			}
			avail++;
		}
		json_decref(lr);
		if (a->counting && avail < a->min_avail)
			a->min_avail = avail;
		usleep(30000);
	}
	return NULL;
}

static void test_api_ctrl_ds_rolling_update(void **state)
{
	char buf[512];
	struct agent a = { .min_avail = 1 << 30 };
	(void)state;
	for (int i = 0; i < 4; i++)
		node(fmt("rn%d", i), "roll", NULL);
	daemonset("roll", "roll:v1", "\"nodeSelector\":{\"role\":\"roll\"},");
	req0("PATCH", "/apis/apps/v1/namespaces/default/daemonsets/roll",
	     "{\"spec\":{\"updateStrategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{"
	     "\"maxUnavailable\":1}}}}",
	     200);
	assert_int_equal(pthread_create(&a.th, NULL, agent_main, &a), 0);
	WAIT_FOR(8000, ds_status("roll", "numberAvailable") == 4, "4 available");
	a.counting = true;
	req0("PATCH", "/apis/apps/v1/namespaces/default/daemonsets/roll",
	     "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":"
	     "\"roll:v2\"}]}}}}",
	     200);
	WAIT_FOR(15000, ds_rolled_out("roll", 4), "rolled out: updated %lld, available %lld",
		 ds_status("roll", "updatedNumberScheduled"), ds_status("roll", "numberAvailable"));
	a.counting = false;
	a.stop = true;
	pthread_join(a.th, NULL);
	if (a.min_avail < 3)
		fail_msg("%ld nodes had an available pod at one point, want at least 4 - 1",
			 a.min_avail);
	json_t *l = pods("ds%3Droll");
	size_t i;
	json_t *p;
	json_array_foreach (l, i, p) {
		json_t *c = json_array_get(
			json_object_get(json_object_get(p, "spec"), "containers"), 0);
		if (!terminating(p)) /* an old one the stopped agent did not confirm gone */
			if (strcmp(jstr(c, "image"), "roll:v2"))
				fail_msg("pod %s on %s (%s) phase %s created %s",
					 jstr(p, "metadata.name"), jstr(p, "spec.nodeName"),
					 jstr(c, "image"), jstr(p, "status.phase"),
					 jstr(p, "metadata.creationTimestamp"));
	}
	json_decref(l);
	assert_string_equal(pinned("roll", buf, sizeof(buf)), "rn0,rn1,rn2,rn3");
}

SHOAL_TEST_MAIN_SETUP(ctrl_setup, ctrl_teardown,
		      cmocka_unit_test(test_api_ctrl_ds_one_pod_per_matching_node),
		      cmocka_unit_test(test_api_ctrl_ds_rolling_update))
