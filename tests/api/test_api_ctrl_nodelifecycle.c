// SPDX-License-Identifier: Apache-2.0
/*
 * The node lifecycle controller in a real shoald with short timings (a node silent for 1 s is
 * lost, a new one gets 2 s, pods without a toleration stay 2 s): a node whose Lease stops
 * being renewed turns Unknown and is tainted unreachable, its pods turn not ready and are
 * evicted when their toleration runs out (a pod tolerating 60 s stays, one tolerating forever
 * stays), the taints go when the node reports Ready again; a node reporting Ready=False is
 * tainted not-ready; a node that never reports is lost after the startup grace; the pods of a
 * deleted node are deleted.
 */
#define CTRL_EXTRA_ARGS                                                                            \
	"--node-monitor-grace-period", "1s", "--node-startup-grace-period", "2s",                  \
		"--default-toleration-seconds", "2", "--pod-eviction-rate", "50",
#include <pthread.h>
#include <sys/time.h>

#include "ctrl_helpers.h"

/* ---- an agent's heartbeat, in a thread ------------------------------------------------- */

struct beat {
	pthread_t th;
	char node[64];
	volatile bool stop;
};

static void micro_now(char out[40])
{
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 40 - n, ".%06ldZ", (long)tv.tv_usec);
}

static void *beat_main(void *arg)
{
	struct beat *b = arg;
	while (!b->stop) {
		char now[40];
		long code;
		micro_now(now);
		json_decref(http_json(
			&srv, "PATCH",
			fmt("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/%s",
			    b->node),
			fmt("{\"spec\":{\"renewTime\":\"%s\"}}", now), &code));
		usleep(150000);
	}
	return NULL;
}

static void beat_start(struct beat *b, const char *node)
{
	char now[40];
	memset(b, 0, sizeof(*b));
	snprintf(b->node, sizeof(b->node), "%s", node);
	micro_now(now);
	req0("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
	     fmt("{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"holderIdentity\":\"%s\","
		 "\"leaseDurationSeconds\":40,\"renewTime\":\"%s\"}}",
		 node, node, now),
	     201);
	assert_int_equal(pthread_create(&b->th, NULL, beat_main, b), 0);
}

static void beat_stop(struct beat *b)
{
	b->stop = true;
	pthread_join(b->th, NULL);
}

static void beat_resume(struct beat *b)
{
	b->stop = false;
	assert_int_equal(pthread_create(&b->th, NULL, beat_main, b), 0);
}

/* ---- reading nodes --------------------------------------------------------------------- */

static void node_ready_status(const char *node, char *buf, size_t len)
{
	json_t *n = req("GET", fmt("/api/v1/nodes/%s", node), NULL, 200);
	size_t i;
	json_t *c;
	buf[0] = '\0';
	json_array_foreach (json_object_get(json_object_get(n, "status"), "conditions"), i, c) {
		if (strcmp(jstr(c, "type"), "Ready") == 0)
			snprintf(buf, len, "%s", jstr(c, "status"));
	}
	json_decref(n);
}

static bool ready_is(const char *node, const char *want)
{
	char buf[32];
	node_ready_status(node, buf, sizeof(buf));
	return strcmp(buf, want) == 0;
}

/* "key:effect,..." of the node's taints. */
static const char *taints(const char *node, char *buf, size_t len)
{
	json_t *n = req("GET", fmt("/api/v1/nodes/%s", node), NULL, 200);
	size_t i, o = 0;
	json_t *t;
	buf[0] = '\0';
	json_array_foreach (json_object_get(json_object_get(n, "spec"), "taints"), i, t)
		o += snprintf(buf + o, o < len ? len - o : 0, "%s%s:%s", i ? "," : "",
			      jstr(t, "key"), jstr(t, "effect"));
	json_decref(n);
	return buf;
}

static void pod_on(const char *name, const char *node, const char *tolerations)
{
	req0("POST", "/api/v1/namespaces/default/pods",
	     fmt("{\"metadata\":{\"name\":\"%s\",\"labels\":{\"app\":\"nl\"}},\"spec\":{"
		 "\"nodeName\":\"%s\",%s\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}",
		 name, node, tolerations),
	     201);
	pod_status(name, fmt("10.120.0.%d", (int)(strlen(name) * 7 % 250)), true);
}

static bool pod_terminating(const char *name)
{
	json_t *p = req("GET", fmt("/api/v1/namespaces/default/pods/%s", name), NULL, 200);
	bool t = terminating(p);
	json_decref(p);
	return t;
}

static bool pod_ready(const char *name)
{
	json_t *p = req("GET", fmt("/api/v1/namespaces/default/pods/%s", name), NULL, 200);
	size_t i;
	json_t *c;
	bool r = false;
	json_array_foreach (json_object_get(json_object_get(p, "status"), "conditions"), i, c)
		r |= strcmp(jstr(c, "type"), "Ready") == 0 &&
		     strcmp(jstr(c, "status"), "True") == 0;
	json_decref(p);
	return r;
}

static void test_api_ctrl_nodelifecycle_lost_node(void **state)
{
	char buf[256];
	struct beat b;
	(void)state;
	add_node("node-a", "z1");
	beat_start(&b, "node-a");
	pod_on("plain", "node-a", "");
	pod_on("patient", "node-a",
	       "\"tolerations\":[{\"key\":\"node.kubernetes.io/unreachable\",\"operator\":"
	       "\"Exists\",\"effect\":\"NoExecute\",\"tolerationSeconds\":60}],");
	pod_on("forever", "node-a",
	       "\"tolerations\":[{\"operator\":\"Exists\",\"effect\":\"NoExecute\"}],");
	/* heartbeats keep it as it is */
	usleep(1800000);
	assert_true(ready_is("node-a", "True"));
	assert_string_equal(taints("node-a", buf, sizeof(buf)), "");

	/* the agent goes silent */
	beat_stop(&b);
	long long t0 = mono_ms();
	WAIT_FOR(5000, ready_is("node-a", "Unknown"), "node-a Unknown");
	assert_true(mono_ms() - t0 >= 800);
	WAIT_FOR(3000,
		 strstr(taints("node-a", buf, sizeof(buf)),
			"node.kubernetes.io/unreachable:NoExecute") != NULL,
		 "unreachable taint: %s", buf);
	assert_non_null(strstr(buf, "node.kubernetes.io/unreachable:NoSchedule"));
	WAIT_FOR(3000, !pod_ready("plain") && !pod_ready("forever"), "pods not ready");
	/* evicted after the default 2 s; the others stay */
	WAIT_FOR(5000, pod_terminating("plain"), "plain evicted");
	usleep(500000);
	assert_false(pod_terminating("patient"));
	assert_false(pod_terminating("forever"));

	/* the agent is back and reports Ready */
	beat_resume(&b);
	char now[40];
	micro_now(now);
	req0("PATCH", "/api/v1/nodes/node-a/status",
	     fmt("{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
		 "\"reason\":\"AgentReady\",\"lastHeartbeatTime\":\"%s\"}]}}",
		 now),
	     200);
	WAIT_FOR(3000, strcmp(taints("node-a", buf, sizeof(buf)), "") == 0, "taints gone: %s", buf);
	beat_stop(&b);
}

static void test_api_ctrl_nodelifecycle_not_ready_node(void **state)
{
	char buf[256], now[40];
	struct beat b;
	(void)state;
	add_node("node-b", "z1");
	beat_start(&b, "node-b");
	micro_now(now);
	req0("PATCH", "/api/v1/nodes/node-b/status",
	     fmt("{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\","
		 "\"reason\":\"RuntimeDown\",\"lastHeartbeatTime\":\"%s\"}]}}",
		 now),
	     200);
	WAIT_FOR(3000,
		 strstr(taints("node-b", buf, sizeof(buf)),
			"node.kubernetes.io/not-ready:NoExecute") != NULL,
		 "not-ready taint: %s", buf);
	assert_true(ready_is("node-b", "False")); /* the agent's word stands */
	beat_stop(&b);
}

static void test_api_ctrl_nodelifecycle_never_reported(void **state)
{
	(void)state;
	req0("POST", "/api/v1/nodes", "{\"metadata\":{\"name\":\"node-silent\"},\"spec\":{}}", 201);
	long long t0 = mono_ms();
	WAIT_FOR(6000, ready_is("node-silent", "Unknown"), "node-silent Unknown");
	assert_true(mono_ms() - t0 >= 1500); /* the startup grace, not the usual one */
}

static void test_api_ctrl_nodelifecycle_deleted_node(void **state)
{
	struct beat b;
	long code = 0;
	(void)state;
	add_node("node-c", "z1");
	beat_start(&b, "node-c");
	pod_on("on-c", "node-c", "");
	beat_stop(&b);
	req0("DELETE", "/api/v1/nodes/node-c", NULL, 200);
	WAIT_FOR(3000,
		 (json_decref(http_json(&srv, "GET", "/api/v1/namespaces/default/pods/on-c", NULL,
					&code)),
		  code == 404),
		 "the pod of a deleted node is deleted");
}

SHOAL_TEST_MAIN_SETUP(ctrl_setup, ctrl_teardown,
		      cmocka_unit_test(test_api_ctrl_nodelifecycle_lost_node),
		      cmocka_unit_test(test_api_ctrl_nodelifecycle_not_ready_node),
		      cmocka_unit_test(test_api_ctrl_nodelifecycle_never_reported),
		      cmocka_unit_test(test_api_ctrl_nodelifecycle_deleted_node))
