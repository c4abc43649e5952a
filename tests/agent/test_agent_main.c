// SPDX-License-Identifier: Apache-2.0
/*
 * shoal-agent against a real shoald and the real pod runtime, in a network namespace and a
 * cgroup of this run's own. The agent runs in this process (so the sanitizers watch it),
 * started in the node's namespace the way shoal-agent's --netns does it; one case runs the
 * shoal-agent binary itself.
 *
 * The cases build on each other, in order: registration and node conditions, the Lease and
 * the heartbeat renewed, a bound pod run and reported (Running, Ready, podIP, its log through
 * the agent's endpoint), its status written once and then left alone (only usage samples
 * follow), an agent restart that leaves the pod alone, a pod that does not fit
 * refused with an Event, a pod with an impossible command reported with an Event, a deleted
 * pod stopped and its deletion confirmed, a deleted namespace's pod stopped the same way
 * before the namespace goes, the binary entering its --netns. Everything made
 * (namespaces, cgroups, pods, directories) is removed at the end, also on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "httpc.h"
#include "nslab.h"
#include "shoal_test.h"
#include "shoald_fixture.h"
#include "strbuf.h"

static struct shoald srv;
static char P[16], node[32], node2[32], ns_node[48], ns_node2[48], cgroup[512], dir[256];
static char server[400], listen_addr[400], shim[4096];
static struct agent_config cfg;
static struct agent *agent;
static bool have_env;

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- the environment ----------------------------------------------------------------- */

static void sweep(void)
{
	/* Processes of pods that outlived the agent: by their namespaces and their cgroup. */
	nslab_sh("for f in /run/shoal/netns/%s-* /run/shoal/netns/%s-*; do [ -e \"$f\" ] || "
		 "continue; i=$(stat -L -c %%i \"$f\"); for p in /proc/[0-9]*; do "
		 "[ \"$(stat -L -c %%i $p/ns/net 2>/dev/null)\" = \"$i\" ] && kill -9 ${p#/proc/}; "
		 "done; umount \"$f\" 2>/dev/null; rm -f \"$f\"; done; true",
		 node, node2);
	if (cgroup[0]) {
		nslab_sh("[ -f '%s/cgroup.kill' ] && echo 1 > '%s/cgroup.kill'; "
			 "for f in $(find '%s' -name cgroup.procs 2>/dev/null); do "
			 "for p in $(cat $f); do kill -9 $p; done; done; true",
			 cgroup, cgroup, cgroup);
		for (int i = 0; i < 50; i++) {
			nslab_sh("find '%s' -depth -type d -exec rmdir {} \\; 2>/dev/null; true",
				 cgroup);
			if (access(cgroup, F_OK))
				break;
			sleep_ms(100);
		}
	}
	/* On a host with the hybrid cgroup layout the runtime mirrors the node's cgroup in the
	 * v1 cpu and memory hierarchies, below this process's own v1 cgroups. */
	nslab_sh("while IFS=: read -r _ c p; do [ -n \"$c\" ] || continue; "
		 "m=$(awk -v c=\"${c%%%%,*}\" '$3 == \"cgroup\" { n = split($4, o, \",\"); "
		 "for (i = 1; i <= n; i++) if (o[i] == c) { print $2; exit } }' /proc/mounts); "
		 "d=\"$m${p%%/}/%s\"; [ -n \"$m\" ] && [ -d \"$d\" ] || continue; "
		 "for q in $(find \"$d\" -name cgroup.procs -exec cat {} +); do kill -9 $q; done; "
		 "sleep 0.2; find \"$d\" -depth -type d -exec rmdir {} \\; ; done < "
		 "/proc/%d/cgroup; true",
		 P, (int)getpid());
	nslab_sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null; true", ns_node,
		 ns_node2);
	if (dir[0])
		nslab_sh("rm -rf '%s'", dir);
}

static int make_node_ns(const char *ns, const char *ip)
{
	return nslab_sh("ip netns add %s && ip -n %s link set lo up && "
			"ip -n %s link add eth0 type veth peer name uplink0 && "
			"ip -n %s addr add %s/24 dev eth0 && ip -n %s link set uplink0 up && "
			"ip -n %s link set eth0 up",
			ns, ns, ns, ns, ip, ns, ns);
}

static int setup(void **state)
{
	(void)state;
	const char *args[] = { "--log-level", "warn", NULL };

	snprintf(P, sizeof(P), "ag%x%04x", (unsigned)getpid() & 0xfff,
		 (unsigned)time(NULL) & 0xffff);
	snprintf(node, sizeof(node), "%s-n1", P);
	snprintf(node2, sizeof(node2), "%s-n2", P);
	snprintf(ns_node, sizeof(ns_node), "%s-n1", P);
	snprintf(ns_node2, sizeof(ns_node2), "%s-n2", P);
	if (getuid() != 0) {
		fprintf(stderr, "# the agent tests need root (namespaces, cgroups)\n");
		return -1;
	}
	if (!*nslab_cgroup2_root()) {
		fprintf(stderr, "# no cgroup2 mount\n");
		return -1;
	}
	snprintf(dir, sizeof(dir), "/tmp/%s-agent.XXXXXX", P);
	if (!mkdtemp(dir))
		return -1;
	snprintf(cgroup, sizeof(cgroup), "%s/%s", nslab_cgroup2_root(), P);
	if (mkdir(cgroup, 0755)) {
		cgroup[0] = '\0';
		goto err;
	}
	if (make_node_ns(ns_node, "10.99.0.1") || make_node_ns(ns_node2, "10.99.0.2"))
		goto err;
	if (shoald_start(&srv, args))
		goto err;
	have_env = true;
	snprintf(server, sizeof(server), "unix:%s", srv.sock);
	/* The container supervisor: the one built beside shoal-agent (tests run from the top). */
	if (!realpath("build/bin/shoal-shim", shim)) {
		fprintf(stderr, "# build/bin/shoal-shim: %s\n", strerror(errno));
		goto err;
	}
	snprintf(listen_addr, sizeof(listen_addr), "unix:%s/agent.sock", dir);
	return 0;
err:
	sweep();
	return -1;
}

static int teardown(void **state)
{
	(void)state;
	agent_stop(agent);
	agent = NULL;
	agent_config_free(&cfg);
	nslab_leave_ns();
	int st = have_env ? shoald_stop(&srv) : 0;
	shoald_destroy(&srv);
	sweep();
	return st == 0 ? 0 : -1;
}

/* ---- helpers -------------------------------------------------------------------------- */

static json_t *get(const char *path, long *code)
{
	return http_json(&srv, "GET", path, NULL, code);
}

/* Polls path every 50 ms for at most ms until want(obj) holds; returns the object or NULL. */
static json_t *wait_obj(const char *path, bool (*want)(const json_t *), int ms)
{
	for (int waited = 0; waited <= ms; waited += 50) {
		long code;
		json_t *o = get(path, &code);
		if (code == 200 && o && want(o))
			return o;
		json_decref(o);
		sleep_ms(50);
	}
	return NULL;
}

static const char *jstr(const json_t *o, const char *a, const char *b, const char *c)
{
	const json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	if (c)
		v = json_object_get(v, c);
	return json_string_value(v);
}

static const char *condition(const json_t *obj, const char *type)
{
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(json_object_get(obj, "status"), "conditions"), i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t && !strcmp(t, type))
			return json_string_value(json_object_get(c, "status"));
	}
	return NULL;
}

static void start_agent(void)
{
	char err[512];
	char *argv[] = { "agent",
			 "--server",
			 server,
			 "--node",
			 node,
			 "--pod-cidr",
			 "10.100.1.0/24",
			 "--zone",
			 "zone-a",
			 "--labels",
			 "rack=r1",
			 "--cgroup-root",
			 cgroup,
			 "--state-dir",
			 dir,
			 "--listen",
			 listen_addr,
			 "--proxy",
			 "none",
			 "--lease-renew-interval",
			 "1",
			 "--status-interval",
			 "1",
			 "--capacity",
			 "cpu=4,memory=4Gi,pods=20",
			 "--shim",
			 shim,
			 NULL };
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;

	agent_config_free(&cfg);
	agent_config_init(&cfg);
	assert_int_equal(agent_config_parse(&cfg, argc, argv, err, sizeof(err)), 0);
	/* The node's namespace, entered before any agent thread exists (as --netns does). */
	assert_int_equal(nslab_enter_ns(ns_node), 0);
	if (agent_config_finish(&cfg, err, sizeof(err)))
		fail_msg("config: %s", err);
	agent = agent_start(&cfg);
	assert_non_null(agent);
	for (int i = 0; i < 400 && !agent_ready(agent); i++)
		sleep_ms(50);
	assert_true(agent_ready(agent));
}

/* Cases may run alone (a name filter): each starts the agent when none runs. */
static void need_agent(void)
{
	if (!agent)
		start_agent();
}

static void post_pod(const char *name, const char *spec_tail)
{
	need_agent();
	char body[2048];
	long code;
	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\"},"
		 "\"spec\":{\"nodeName\":\"%s\",\"terminationGracePeriodSeconds\":2,%s}}",
		 name, node, spec_tail);
	json_t *o = http_json(&srv, "POST", "/api/v1/namespaces/default/pods", body, &code);
	if (code != 201)
		fail_msg("create pod %s: %ld %s", name, code,
			 o ? json_string_value(json_object_get(o, "message")) : "");
	json_decref(o);
}

/* A pod's status as text, for failure messages. */
static void pod_status_text(const char *name, char *buf, size_t len)
{
	char path[256];
	long code;
	snprintf(path, sizeof(path), "/api/v1/namespaces/default/pods/%s", name);
	json_t *cur = get(path, &code);
	char *s = cur ? json_dumps(json_object_get(cur, "status"), JSON_COMPACT) : NULL;
	snprintf(buf, len, "%s", s ? s : "(none)");
	free(s);
	json_decref(cur);
}

/* The Events of a pod, as a JSON array. */
static json_t *pod_events(const char *pod)
{
	char path[512];
	long code;
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%%3D%s", pod);
	json_t *l = get(path, &code);
	json_t *items = json_incref(json_object_get(l, "items"));
	json_decref(l);
	if (!items)
		return json_array();
	/* The field selector may not be supported for events: filter here as well. */
	json_t *out = json_array();
	size_t i;
	json_t *e;
	json_array_foreach (items, i, e) {
		const char *n = jstr(e, "involvedObject", "name", NULL);
		if (n && !strcmp(n, pod))
			json_array_append(out, e);
	}
	json_decref(items);
	return out;
}

static bool has_event(const char *pod, const char *type)
{
	for (int i = 0; i < 100; i++) {
		json_t *ev = pod_events(pod);
		size_t j;
		json_t *e;
		json_array_foreach (ev, j, e) {
			const char *t = jstr(e, "type", NULL, NULL);
			if (t && !strcmp(t, type)) {
				json_decref(ev);
				return true;
			}
		}
		json_decref(ev);
		sleep_ms(100);
	}
	return false;
}

/* ---- cases ---------------------------------------------------------------------------- */

static bool node_ready(const json_t *n)
{
	const char *r = condition(n, "Ready");
	return r && !strcmp(r, "True");
}

static void test_agent_registers_node(void **state)
{
	(void)state;
	char path[256];
	start_agent();
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", node);
	json_t *n = wait_obj(path, node_ready, 5000);
	assert_non_null(n);
	json_t *labels = json_object_get(json_object_get(n, "metadata"), "labels");
	assert_string_equal(json_string_value(json_object_get(labels, "kubernetes.io/hostname")),
			    node);
	assert_string_equal(
		json_string_value(json_object_get(labels, "topology.kubernetes.io/zone")),
		"zone-a");
	assert_string_equal(json_string_value(json_object_get(labels, "rack")), "r1");
	assert_string_equal(jstr(n, "spec", "podCIDR", NULL), "10.100.1.0/24");
	assert_string_equal(jstr(n, "status", "capacity", "cpu"), "4");
	assert_string_equal(jstr(n, "status", "allocatable", "memory"), "4Gi");
	assert_string_equal(jstr(n, "status", "capacity", "pods"), "20");
	const json_t *addr =
		json_array_get(json_object_get(json_object_get(n, "status"), "addresses"), 0);
	assert_string_equal(jstr(addr, "type", NULL, NULL), "InternalIP");
	/* the uplink's address, found inside the node's namespace */
	assert_string_equal(jstr(addr, "address", NULL, NULL), "10.99.0.1");
	assert_string_equal(condition(n, "MemoryPressure"), "False");
	assert_string_equal(condition(n, "NetworkUnavailable"), "False");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_object_get(n, "metadata"), "annotations"),
				    "shoal.io/agent-endpoint")),
			    listen_addr);
	json_decref(n);
}

static void test_agent_renews_lease_and_heartbeat(void **state)
{
	(void)state;
	char lpath[256], npath[256];
	long code;
	snprintf(lpath, sizeof(lpath),
		 "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/%s", node);
	snprintf(npath, sizeof(npath), "/api/v1/nodes/%s", node);
	need_agent();
	json_t *l1 = NULL;
	for (int i = 0; i < 100; i++) {
		json_decref(l1);
		l1 = get(lpath, &code);
		if (code == 200)
			break;
		sleep_ms(50);
	}
	assert_int_equal(code, 200);
	assert_string_equal(jstr(l1, "spec", "holderIdentity", NULL), node);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(l1, "spec"),
							    "leaseDurationSeconds")),
			 40);
	json_t *n1 = get(npath, &code);
	const json_t *c1 =
		json_array_get(json_object_get(json_object_get(n1, "status"), "conditions"), 0);
	/* Both are renewed every second here: wait for the next renewal of each (10 s at most,
	 * for a busy host), then look at what changed. */
	json_t *l2 = NULL, *n2 = NULL;
	const json_t *c2 = NULL;
	for (int i = 0; i < 100; i++) {
		json_decref(l2);
		json_decref(n2);
		l2 = get(lpath, &code);
		n2 = get(npath, &code);
		c2 = json_array_get(json_object_get(json_object_get(n2, "status"), "conditions"),
				    0);
		const char *h1 = jstr(c1, "lastHeartbeatTime", NULL, NULL),
			   *h2 = jstr(c2, "lastHeartbeatTime", NULL, NULL);
		if (obj_rv(l2) > obj_rv(l1) && h1 && h2 && strcmp(h1, h2))
			break;
		sleep_ms(100);
	}
	assert_true(obj_rv(l2) > obj_rv(l1));
	assert_string_not_equal(jstr(l2, "spec", "renewTime", NULL),
				jstr(l1, "spec", "renewTime", NULL));
	/* the heartbeat moves; the transition time does not */
	assert_string_not_equal(jstr(c1, "lastHeartbeatTime", NULL, NULL),
				jstr(c2, "lastHeartbeatTime", NULL, NULL));
	assert_string_equal(jstr(c1, "lastTransitionTime", NULL, NULL),
			    jstr(c2, "lastTransitionTime", NULL, NULL));
	/* the node's usage is reported */
	assert_non_null(jstr(n2, "status", "usage", "memory"));
	json_decref(l1);
	json_decref(l2);
	json_decref(n1);
	json_decref(n2);
}

static bool pod_ready(const json_t *p)
{
	const char *r = condition(p, "Ready");
	const char *ph = jstr(p, "status", "phase", NULL);
	return r && !strcmp(r, "True") && ph && !strcmp(ph, "Running") &&
	       jstr(p, "status", "podIP", NULL);
}

static char pod_ip[64], pod_started[64], pod_uid[64];

static void test_agent_runs_bound_pod(void **state)
{
	(void)state;
	post_pod("sleeper",
		 "\"containers\":[{\"name\":\"main\",\"command\":[\"/bin/sh\",\"-c\","
		 "\"echo hello-from-sleeper; exec sleep 600\"],\"resources\":{\"requests\":"
		 "{\"cpu\":\"100m\",\"memory\":\"16Mi\"}}}]");
	json_t *p = wait_obj("/api/v1/namespaces/default/pods/sleeper", pod_ready, 20000);
	if (!p) {
		char msg[4096];
		pod_status_text("sleeper", msg, sizeof(msg));
		fail_msg("the pod did not become Running and Ready; its status: %s", msg);
	}
	const char *ip = jstr(p, "status", "podIP", NULL);
	assert_int_equal(strncmp(ip, "10.100.1.", 9), 0);
	assert_string_equal(jstr(p, "status", "hostIP", NULL), "10.99.0.1");
	snprintf(pod_ip, sizeof(pod_ip), "%s", ip);
	snprintf(pod_uid, sizeof(pod_uid), "%s", jstr(p, "metadata", "uid", NULL));
	const json_t *cs = json_array_get(
		json_object_get(json_object_get(p, "status"), "containerStatuses"), 0);
	const char *started = jstr(cs, "state", "running", "startedAt");
	assert_non_null(started);
	snprintf(pod_started, sizeof(pod_started), "%s", started);
	json_decref(p);

	/* Its log, through the agent's endpoint, as `shoalctl logs` reads it. */
	struct httpc *c = httpc_new(listen_addr, NULL);
	assert_non_null(c);
	bool found = false;
	for (int i = 0; i < 50 && !found; i++) {
		struct httpc_resp r;
		if (httpc_request(c, "GET", "/pods/default/sleeper/log", NULL, 0, NULL, &r) == 0) {
			found = r.code == 200 && r.body && strstr(r.body, "hello-from-sleeper");
			httpc_resp_free(&r);
		}
		if (!found)
			sleep_ms(100);
	}
	assert_true(found);
	struct httpc_resp r;
	assert_int_equal(httpc_request(c, "GET", "/pods/default/nosuchpod/log", NULL, 0, NULL, &r),
			 0);
	assert_int_equal(r.code, 404);
	httpc_resp_free(&r);
	httpc_free(c);
	assert_true(has_event("sleeper", "Normal"));
}

static bool has_usage(const json_t *p)
{
	return jstr(p, "status", "usage", "memory") != NULL;
}

static void test_agent_reports_pod_usage(void **state)
{
	(void)state;
	need_agent();
	json_t *p = wait_obj("/api/v1/namespaces/default/pods/sleeper", has_usage, 5000);
	assert_non_null(p);
	assert_non_null(jstr(p, "status", "usage", "cpu"));
	assert_non_null(jstr(p, "status", "usage", "timestamp"));
	json_decref(p);
}

/* One of the agent's counters (shoal_agent_NAME_total), from its metrics. */
static unsigned long long agent_counter(const char *name)
{
	struct strbuf b = { 0 };
	char want[160];
	unsigned long long v = 0;
	assert_int_equal(agent_metrics(agent, &b), 0);
	snprintf(want, sizeof(want), "shoal_agent_%s_total{node=\"%s\"} ", name, node);
	const char *at = strstr(b.s, want);
	if (!at || sscanf(at + strlen(want), "%llu", &v) != 1) {
		strbuf_free(&b);
		fail_msg("no %s in the agent's metrics", want);
	}
	strbuf_free(&b);
	return v;
}

/* Once a pod is Ready and nothing changes, the agent writes no status but the periodic usage
 * sample (every --status-interval, 1 s here): a status that the API stores in another form
 * (it drops null members) must not be written again and again. */
static void test_agent_status_writes_settle(void **state)
{
	(void)state;
	post_pod("settler",
		 "\"containers\":[{\"name\":\"main\",\"command\":[\"sleep\",\"600\"],"
		 "\"readinessProbe\":{\"exec\":{\"command\":[\"true\"]},\"periodSeconds\":1},"
		 "\"resources\":{\"requests\":{\"cpu\":\"50m\",\"memory\":\"16Mi\"}}}]");
	json_t *p = wait_obj("/api/v1/namespaces/default/pods/settler", pod_ready, 20000);
	if (!p) {
		char msg[4096];
		pod_status_text("settler", msg, sizeof(msg));
		fail_msg("the pod did not become Running and Ready; its status: %s", msg);
	}
	json_decref(p);
	sleep_ms(1000); /* what follows Ready (the first usage sample) lands */
	unsigned long long w0 = agent_counter("status_writes");
	unsigned long long u0 = agent_counter("usage_writes");
	/* The API side: the pod's resourceVersion, read every 100 ms; each new one is a write. */
	const int window_ms = 3000;
	long long last_rv = -1;
	int versions = 0;
	for (int waited = 0; waited < window_ms; waited += 100) {
		long code;
		p = get("/api/v1/namespaces/default/pods/settler", &code);
		assert_int_equal(code, 200);
		assert_true(pod_ready(p));
		if (obj_rv(p) != last_rv) {
			last_rv = obj_rv(p);
			versions++;
		}
		json_decref(p);
		sleep_ms(100);
	}
	unsigned long long writes = agent_counter("status_writes") - w0;
	unsigned long long usage = agent_counter("usage_writes") - u0;
	/* every write in the window carried a usage sample: none was a status rewrite */
	if (writes != usage)
		fail_msg("%llu status writes in %d ms after Ready, %llu of them usage samples: "
			 "expected only usage samples",
			 writes, window_ms, usage);
	/* the first version seen, then at most one per usage interval (and one to spare) */
	int most = 1 + window_ms / 1000 + 1;
	if (versions > most)
		fail_msg("the pod took %d resourceVersions in %d ms after Ready: expected <= %d",
			 versions, window_ms, most);
}

static void test_agent_restart_keeps_pods(void **state)
{
	(void)state;
	long code;
	agent_stop(agent);
	agent = NULL;
	start_agent();
	/* Give the restarted agent time to reconcile (and, were it wrong, to restart the pod). */
	sleep_ms(3000);
	json_t *p = get("/api/v1/namespaces/default/pods/sleeper", &code);
	assert_int_equal(code, 200);
	assert_true(pod_ready(p));
	assert_string_equal(jstr(p, "metadata", "uid", NULL), pod_uid);
	assert_string_equal(jstr(p, "status", "podIP", NULL), pod_ip);
	const json_t *cs = json_array_get(
		json_object_get(json_object_get(p, "status"), "containerStatuses"), 0);
	assert_int_equal(json_integer_value(json_object_get(cs, "restartCount")), 0);
	assert_string_equal(jstr(cs, "state", "running", "startedAt"), pod_started);
	json_decref(p);
}

static bool is_failed(const json_t *p)
{
	const char *ph = jstr(p, "status", "phase", NULL);
	return ph && !strcmp(ph, "Failed");
}

static void test_agent_rejects_pod_that_does_not_fit(void **state)
{
	(void)state;
	post_pod("toobig", "\"containers\":[{\"name\":\"c\",\"command\":[\"sleep\",\"600\"],"
			   "\"resources\":{\"requests\":{\"cpu\":\"64\"}}}]");
	json_t *p = wait_obj("/api/v1/namespaces/default/pods/toobig", is_failed, 10000);
	assert_non_null(p);
	assert_string_equal(jstr(p, "status", "reason", NULL), "OutOfcpu");
	json_decref(p);
	post_pod("elsewhere", "\"nodeSelector\":{\"rack\":\"r9\"},\"containers\":[{\"name\":\"c\","
			      "\"command\":[\"sleep\",\"600\"]}]");
	p = wait_obj("/api/v1/namespaces/default/pods/elsewhere", is_failed, 10000);
	assert_non_null(p);
	assert_string_equal(jstr(p, "status", "reason", NULL), "NodeAffinity");
	json_decref(p);
	assert_true(has_event("toobig", "Warning"));
	assert_true(has_event("elsewhere", "Warning"));
}

/* A container that cannot start: not Ready, with a reason in its container status. */
static bool start_failed(const json_t *p)
{
	const json_t *cs = json_array_get(
		json_object_get(json_object_get(p, "status"), "containerStatuses"), 0);
	const char *r = condition(p, "Ready");
	return cs && (!r || strcmp(r, "True")) &&
	       (jstr(cs, "state", "waiting", "reason") ||
		jstr(cs, "state", "terminated", "reason") ||
		jstr(cs, "lastState", "terminated", "reason"));
}

static void test_agent_reports_impossible_command(void **state)
{
	(void)state;
	post_pod("broken", "\"containers\":[{\"name\":\"c\",\"command\":"
			   "[\"/nonexistent/shoal-test-binary\"]}]");
	json_t *p = wait_obj("/api/v1/namespaces/default/pods/broken", start_failed, 20000);
	if (!p) {
		char msg[4096];
		pod_status_text("broken", msg, sizeof(msg));
		fail_msg("no failure reported for an impossible command; status: %s", msg);
	}
	json_decref(p);
	assert_true(has_event("broken", "Warning"));
	/* the agent lives on */
	assert_true(agent_ready(agent));
}

/* The message of the pod's first Event with reason (copied to buf), waiting up to 10 s. */
static bool event_reason(const char *pod, const char *reason, char *buf, size_t len)
{
	for (int i = 0; i < 100; i++) {
		json_t *ev = pod_events(pod);
		size_t j;
		json_t *e;
		json_array_foreach (ev, j, e) {
			const char *r = jstr(e, "reason", NULL, NULL);
			if (r && !strcmp(r, reason)) {
				snprintf(buf, len, "%s", jstr(e, "message", NULL, NULL));
				json_decref(ev);
				return true;
			}
		}
		json_decref(ev);
		sleep_ms(100);
	}
	return false;
}

/* A failing liveness probe restarts the container and says so, as the kubelet does:
 * Unhealthy (Warning) with the probe's output, then Killing. */
static void test_agent_liveness_failure_records_events(void **state)
{
	(void)state;
	char msg[1024];
	post_pod("unhealthy",
		 "\"containers\":[{\"name\":\"c\",\"command\":[\"sleep\",\"600\"],"
		 "\"livenessProbe\":{\"exec\":{\"command\":[\"/bin/sh\",\"-c\",\"echo sick; "
		 "exit 1\"]},\"periodSeconds\":1,\"failureThreshold\":1}}]");
	if (!event_reason("unhealthy", "Unhealthy", msg, sizeof(msg))) {
		pod_status_text("unhealthy", msg, sizeof(msg));
		fail_msg("no Unhealthy event; the pod's status: %s", msg);
	}
	if (strncmp(msg, "Liveness probe failed: ", 23) != 0)
		fail_msg("Unhealthy says \"%s\"", msg);
	if (!event_reason("unhealthy", "Killing", msg, sizeof(msg)))
		fail_msg("no Killing event after the liveness probe failed");
	assert_string_equal(msg, "Container c failed liveness probe, will be restarted");
}

static bool gone(const char *name, int ms)
{
	char path[256];
	snprintf(path, sizeof(path), "/api/v1/namespaces/default/pods/%s", name);
	for (int waited = 0; waited <= ms; waited += 100) {
		long code;
		json_t *o = get(path, &code);
		json_decref(o);
		if (code == 404)
			return true;
		sleep_ms(100);
	}
	return false;
}

/* A metric's value from the agent's /metrics text (-1 when absent). */
static long long agent_metric(const char *name)
{
	struct strbuf b = { 0 };
	char want[160];
	long long v = -1;
	assert_int_equal(agent_metrics(agent, &b), 0);
	snprintf(want, sizeof(want), "%s{node=\"%s\"} ", name, node);
	const char *at = strstr(b.s, want);
	if (at)
		v = strtoll(at + strlen(want), NULL, 10);
	strbuf_free(&b);
	return v;
}

static void test_agent_deletes_pod(void **state)
{
	(void)state;
	const char *names[] = { "sleeper", "broken", "toobig", "elsewhere", "settler",
				"unhealthy" };
	const size_t n_names = sizeof(names) / sizeof(names[0]);
	need_agent();
	for (size_t i = 0; i < n_names; i++) {
		char path[256];
		long code;
		snprintf(path, sizeof(path), "/api/v1/namespaces/default/pods/%s", names[i]);
		json_t *o = http_json(&srv, "DELETE", path, NULL, &code);
		json_decref(o);
		assert_true(code == 200 || code == 202);
	}
	/* grace 2 s, then the agent confirms and the pod is gone */
	for (size_t i = 0; i < n_names; i++)
		if (!gone(names[i], 15000))
			fail_msg("pod %s still in the API after its deletion", names[i]);
	/* and the runtime holds nothing any more */
	bool empty = false;
	for (int i = 0; i < 100 && !empty; i++) {
		struct strbuf b = { 0 };
		assert_int_equal(agent_metrics(agent, &b), 0);
		char want[128];
		snprintf(want, sizeof(want), "shoal_agent_pods_running{node=\"%s\"} 0", node);
		empty = strstr(b.s, want) != NULL;
		strbuf_free(&b);
		if (!empty)
			sleep_ms(100);
	}
	assert_true(empty);
	/* the four pods that ran (sleeper, broken, settler, unhealthy) were stopped by the
	 * agent, which then confirmed the deletion (the refused ones had finished: the API
	 * removed them at once). The agent counts a confirmation when the API has answered it,
	 * so the last count may come a moment after the pod is gone from the API. */
	long long confirmed = -1;
	for (int i = 0; i < 100 && confirmed != 4; i++) {
		confirmed = agent_metric("shoal_agent_deletions_confirmed_total");
		if (confirmed != 4)
			sleep_ms(100);
	}
	if (confirmed != 4)
		fail_msg("the agent confirmed %lld deletions, expected 4", confirmed);
}

/* Deleting a namespace stops its pods on their node: the namespace controller deletes them
 * gracefully, the agent stops them and confirms, and then the namespace goes. */
static void test_agent_stops_pods_of_deleted_namespace(void **state)
{
	(void)state;
	char ns[64], path[256], body[1024];
	long code;
	need_agent();
	long long confirmed = agent_metric("shoal_agent_deletions_confirmed_total");
	snprintf(ns, sizeof(ns), "%s-gone", P);
	snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"%s\"}}", ns);
	json_t *o = http_json(&srv, "POST", "/api/v1/namespaces", body, &code);
	json_decref(o);
	assert_int_equal(code, 201);
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"doomed\"},\"spec\":{\"nodeName\":\"%s\","
		 "\"terminationGracePeriodSeconds\":2,\"containers\":[{\"name\":\"main\","
		 "\"command\":[\"sleep\",\"600\"]}]}}",
		 node);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods", ns);
	o = http_json(&srv, "POST", path, body, &code);
	json_decref(o);
	assert_int_equal(code, 201);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/doomed", ns);
	o = wait_obj(path, pod_ready, 20000);
	if (!o)
		fail_msg("the pod in namespace %s did not become Running and Ready", ns);
	json_decref(o);

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s", ns);
	o = http_json(&srv, "DELETE", path, NULL, &code);
	json_decref(o);
	assert_int_equal(code, 200);
	bool removed = false;
	for (int waited = 0; waited <= 20000 && !removed; waited += 100) {
		o = get(path, &code);
		json_decref(o);
		removed = code == 404;
		if (!removed)
			sleep_ms(100);
	}
	if (!removed)
		fail_msg("namespace %s still in the API 20 s after its deletion", ns);
	/* the agent stopped the pod itself and confirmed its deletion */
	bool stopped = false;
	for (int i = 0; i < 50 && !stopped; i++) {
		stopped = agent_metric("shoal_agent_deletions_confirmed_total") == confirmed + 1 &&
			  agent_metric("shoal_agent_pods_running") == 0;
		if (!stopped)
			sleep_ms(100);
	}
	if (!stopped)
		fail_msg("the agent confirmed %lld deletions (want %lld), runs %lld pods (want 0)",
			 agent_metric("shoal_agent_deletions_confirmed_total"), confirmed + 1,
			 agent_metric("shoal_agent_pods_running"));
}

static void test_agent_binary_enters_netns(void **state)
{
	(void)state;
	char netns[128], sock[400], sockarg[420], state_dir[400], cg[600], path[256], logf[400];
	snprintf(netns, sizeof(netns), "/run/netns/%s", ns_node2);
	snprintf(sock, sizeof(sock), "%s/agent2.sock", dir);
	snprintf(sockarg, sizeof(sockarg), "unix:%s", sock);
	snprintf(state_dir, sizeof(state_dir), "%s/n2", dir);
	snprintf(cg, sizeof(cg), "%s/n2", cgroup);
	snprintf(logf, sizeof(logf), "%s/agent2.log", dir);
	assert_int_equal(mkdir(cg, 0755), 0);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl("build/bin/shoal-agent", "shoal-agent", "--server", server, "--node", node2,
		      "--netns", netns, "--pod-cidr", "10.100.2.0/24", "--cgroup-root", cg,
		      "--state-dir", state_dir, "--listen", sockarg, "--proxy", "none", NULL);
		_exit(127);
	}
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", node2);
	json_t *n = wait_obj(path, node_ready, 10000);
	bool ok = n != NULL;
	const char *ip =
		n ? jstr(json_array_get(json_object_get(json_object_get(n, "status"), "addresses"),
					0),
			 "address", NULL, NULL)
		  : NULL;
	char ipbuf[64];
	snprintf(ipbuf, sizeof(ipbuf), "%s", ip ? ip : "");
	json_decref(n);
	/* its endpoint answers; it has no data plane to describe */
	struct httpc *c = httpc_new(sockarg, NULL);
	struct httpc_resp r;
	long hz = 0, dp = 0;
	if (c && httpc_request(c, "GET", "/healthz", NULL, 0, NULL, &r) == 0) {
		hz = r.code;
		httpc_resp_free(&r);
	}
	if (c && httpc_request(c, "GET", "/dp", NULL, 0, NULL, &r) == 0) {
		dp = r.code;
		httpc_resp_free(&r);
	}
	httpc_free(c);
	kill(pid, SIGTERM);
	int st = 0;
	waitpid(pid, &st, 0);
	if (!ok) {
		nslab_sh("sed 's/^/#   /' '%s'", logf);
		fail_msg("the shoal-agent binary did not register node %s", node2);
	}
	assert_string_equal(ipbuf, "10.99.0.2");
	assert_int_equal(hz, 200);
	assert_int_equal(dp, 404);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* the socket is removed on exit */
	assert_int_not_equal(access(sock, F_OK), 0);
}

/* A restarted agent configured with another pod CIDR than its Node has gives up (exit 1)
 * instead of running pods with addresses the cluster routes elsewhere. */
static void test_agent_binary_refuses_other_pod_cidr(void **state)
{
	(void)state;
	char netns[128], state_dir[400], cg[600], logf[400], path[256];
	snprintf(netns, sizeof(netns), "/run/netns/%s", ns_node2);
	snprintf(state_dir, sizeof(state_dir), "%s/n2b", dir);
	snprintf(cg, sizeof(cg), "%s/n2b", cgroup);
	snprintf(logf, sizeof(logf), "%s/agent2b.log", dir);
	assert_int_equal(mkdir(cg, 0755), 0);
	/* the Node as the first run left it */
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", node2);
	long code;
	json_t *n = get(path, &code);
	json_decref(n);
	if (code != 200)
		skip(); /* the binary case did not run first */

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl("build/bin/shoal-agent", "shoal-agent", "--server", server, "--node", node2,
		      "--netns", netns, "--pod-cidr", "10.100.9.0/24", "--cgroup-root", cg,
		      "--state-dir", state_dir, "--proxy", "none", "--shim", shim, NULL);
		_exit(127);
	}
	int st = 0;
	bool exited = false;
	for (int i = 0; i < 200 && !exited; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			exited = true;
		else
			sleep_ms(50);
	}
	if (!exited) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		fail_msg("the agent did not give up within 10 s");
	}
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	assert_int_equal(
		nslab_sh("grep -q \"podCIDR is 10.100.2.0/24, not 10.100.9.0/24\" '%s'", logf), 0);
}

static void test_agent_config_rejects_bad_input(void **state)
{
	(void)state;
	struct agent_config c;
	char err[512];
	struct {
		const char *opt, *val, *want;
	} bad[] = {
		{ "--pod-cidr", "10.100.1.0", "--pod-cidr" },
		{ "--labels", "a=b,=c", "labels" },
		{ "--taints", "k=v:Sometimes", "effect" },
		{ "--capacity", "cpu=-1", "capacity" },
		{ "--proxy", "iptables", "--proxy" },
		{ "--eviction-memory-threshold", "120%", "--eviction-memory-threshold" },
		{ "--node", "Bad Name", "--node" },
		{ "--frobnicate", "1", "unknown option" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { "agent", (char *)bad[i].opt, (char *)bad[i].val, NULL };
		agent_config_init(&c);
		err[0] = '\0';
		assert_int_equal(agent_config_parse(&c, 3, argv, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].want))
			fail_msg("%s %s: the message \"%s\" does not name %s", bad[i].opt,
				 bad[i].val, err, bad[i].want);
		agent_config_free(&c);
	}
	/* a config file, with the command line over it */
	char path[400];
	snprintf(path, sizeof(path), "%s/agent.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"node\": \"fromfile\", \"pod-cidr\": \"10.100.7.0/24\", \"labels\": "
		   "{\"a\": \"b\"}, \"taints\": [{\"key\": \"k\", \"value\": \"v\", \"effect\": "
		   "\"NoSchedule\"}], \"capacity\": {\"pods\": 7}, \"status-interval\": 3}\n");
	fclose(f);
	char *argv[] = { "agent", "--config", path, "--node", "fromflag", NULL };
	agent_config_init(&c);
	assert_int_equal(agent_config_parse(&c, 5, argv, err, sizeof(err)), 0);
	assert_string_equal(c.node, "fromflag");
	assert_string_equal(c.pod_cidr, "10.100.7.0/24");
	assert_string_equal(json_string_value(json_object_get(c.labels, "a")), "b");
	assert_int_equal(c.ntaints, 1);
	assert_string_equal(c.taints[0].effect, "NoSchedule");
	assert_int_equal(c.cap_pods, 7);
	assert_int_equal(c.status_interval_s, 3);
	agent_config_free(&c);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"nodes\": \"x\"}\n");
	fclose(f);
	char *argv2[] = { "agent", "--config", path, NULL };
	agent_config_init(&c);
	assert_int_equal(agent_config_parse(&c, 3, argv2, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown key \"nodes\""));
	agent_config_free(&c);
}

/* Memory pressure: a node whose pods use more than the threshold of its allocatable memory
 * evicts the batch pod (the one that uses the memory) and keeps the other. The node is made
 * small on purpose: 24 MiB, threshold half of it; the batch pod holds 16 MiB (dd's buffer,
 * blocked on a pipe nobody reads). */
static void test_agent_evicts_batch_pods_first(void **state)
{
	(void)state;
	char err[512], n3[48], cg3[600], sd3[400], path[256];
	struct agent_config c3;
	snprintf(n3, sizeof(n3), "%s-n3", P);
	snprintf(cg3, sizeof(cg3), "%s/n3", cgroup);
	snprintf(sd3, sizeof(sd3), "%s/n3", dir);
	assert_int_equal(mkdir(cg3, 0755), 0);
	char *argv[] = { "agent",
			 "--server",
			 server,
			 "--node",
			 n3,
			 "--pod-cidr",
			 "10.100.3.0/24",
			 "--cgroup-root",
			 cg3,
			 "--state-dir",
			 sd3,
			 "--proxy",
			 "none",
			 "--status-interval",
			 "1",
			 "--capacity",
			 "cpu=2,memory=24Mi,pods=10",
			 "--eviction-memory-threshold",
			 "50%",
			 "--eviction-max-grace",
			 "1",
			 "--shim",
			 shim,
			 NULL };
	agent_config_init(&c3);
	assert_int_equal(agent_config_parse(&c3, (int)(sizeof(argv) / sizeof(argv[0])) - 1, argv,
					    err, sizeof(err)),
			 0);
	assert_int_equal(nslab_enter_ns(ns_node2), 0);
	if (agent_config_finish(&c3, err, sizeof(err)))
		fail_msg("config: %s", err);
	struct agent *a3 = agent_start(&c3);
	assert_non_null(a3);
	for (int i = 0; i < 400 && !agent_ready(a3); i++)
		sleep_ms(50);
	assert_true(agent_ready(a3));

	char body[1024];
	long code;
	const char *pods[][3] = {
		{ "calm", "", "exec sleep 600" },
		{ "hog", "\"priorityClassName\":\"batch\",",
		  "dd if=/dev/zero bs=16M count=1 2>/dev/null | sleep 600" },
	};
	for (int i = 0; i < 2; i++) {
		snprintf(body, sizeof(body),
			 "{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"nodeName\":\"%s\",%s"
			 "\"terminationGracePeriodSeconds\":1,\"containers\":[{\"name\":\"c\","
			 "\"command\":[\"/bin/sh\",\"-c\",\"%s\"]}]}}",
			 pods[i][0], n3, pods[i][1], pods[i][2]);
		json_t *o = http_json(&srv, "POST", "/api/v1/namespaces/default/pods", body, &code);
		json_decref(o);
		assert_int_equal(code, 201);
	}
	json_t *hog = wait_obj("/api/v1/namespaces/default/pods/hog", is_failed, 30000);
	char msg[4096] = "";
	if (!hog)
		pod_status_text("hog", msg, sizeof(msg));
	/* the other pod stays: evicting the batch pod was enough */
	sleep_ms(hog ? 3000 : 0);
	json_t *calm = get("/api/v1/namespaces/default/pods/calm", &code);
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", n3);
	json_t *node3 = get(path, &code);
	bool pressure_seen = hog && jstr(hog, "status", "reason", NULL) &&
			     !strcmp(jstr(hog, "status", "reason", NULL), "Evicted");
	bool calm_runs = calm && pod_ready(calm);

	/* clean up before asserting: the pods, then this agent */
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path),
			 "/api/v1/namespaces/default/pods/%s?gracePeriodSeconds=0", pods[i][0]);
		json_t *o = http_json(&srv, "DELETE", path, NULL, &code);
		json_decref(o);
	}
	for (int i = 0; i < 100; i++) {
		struct strbuf b = { 0 };
		char want[160];
		snprintf(want, sizeof(want), "shoal_agent_pods_running{node=\"%s\"} 0", n3);
		bool empty = agent_metrics(a3, &b) == 0 && strstr(b.s, want);
		strbuf_free(&b);
		if (empty)
			break;
		sleep_ms(100);
	}
	agent_stop(a3);
	agent_config_free(&c3);
	nslab_enter_ns(ns_node);

	if (!hog)
		fail_msg("the batch pod was not evicted; its status: %s", msg);
	assert_true(pressure_seen);
	assert_non_null(strstr(jstr(hog, "status", "message", NULL), "low on resource: memory"));
	assert_true(calm_runs);
	assert_non_null(node3);
	json_decref(hog);
	json_decref(calm);
	json_decref(node3);
	assert_true(has_event("hog", "Warning"));
}

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_agent_config_rejects_bad_input),
		      cmocka_unit_test(test_agent_registers_node),
		      cmocka_unit_test(test_agent_renews_lease_and_heartbeat),
		      cmocka_unit_test(test_agent_runs_bound_pod),
		      cmocka_unit_test(test_agent_reports_pod_usage),
		      cmocka_unit_test(test_agent_status_writes_settle),
		      cmocka_unit_test(test_agent_restart_keeps_pods),
		      cmocka_unit_test(test_agent_rejects_pod_that_does_not_fit),
		      cmocka_unit_test(test_agent_reports_impossible_command),
		      cmocka_unit_test(test_agent_liveness_failure_records_events),
		      cmocka_unit_test(test_agent_deletes_pod),
		      cmocka_unit_test(test_agent_stops_pods_of_deleted_namespace),
		      cmocka_unit_test(test_agent_evicts_batch_pods_first),
		      cmocka_unit_test(test_agent_binary_enters_netns),
		      cmocka_unit_test(test_agent_binary_refuses_other_pod_cidr))
