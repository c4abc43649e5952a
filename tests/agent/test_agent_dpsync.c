// SPDX-License-Identifier: Apache-2.0
/*
 * End-to-end test of the agent's data plane sync: a real shoald (Services, EndpointSlices
 * and Nodes written through its API), dpsync running in this process inside a node
 * namespace wired as the lab wires one, and traffic through the result.
 *
 *   client 10.99.0.100 --+-- fabric bridge --+-- node eth0 10.99.0.1 (XDP, tc), default
 *                                              |   route via the fabric
 *                                              |   node cgroup (socket hooks)
 *                                              +-- pod k: veth, 10.100.1.(k+1)/32, echo :8080
 *
 * Pods are wired as the runtime wires them: a /32 address, a default route via 169.254.1.1
 * onlink with a permanent neighbour entry, a /32 route to the pod on the node. The BPF cases
 * run first, then the same Service through the nftables proxy. Every name carries a per-run
 * prefix; namespaces, pins, nftables table and cgroups go at the end, also on failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "dp.h"
#include "dpsync.h"
#include "dpsync_int.h"
#include "nl.h"
#include "nslab.h"
#include "shoal_test.h"
#include "shoald_fixture.h"
#include "strbuf.h"

#define NODE_IP	  "10.99.0.1"
#define CLIENT_IP "10.99.0.100"
#define NP_TCP	  30080
#define NP_UDP	  30081
#define NP_ETP	  30082
#define NPODS	  3

static char P[8], ns_f[16], ns_n[16], ns_c[16], ns_p[NPODS][16], node[24], cg_lab[400],
	cg_node[420], pin_dir[300];
static struct shoald sd;
static bool sd_up;
static pid_t echo[NPODS];
static struct dpsync *ds;
static bool in_setup, setup_failed;
static uint32_t vip; /* the ClusterIP shoald gave default/web */

static uint32_t ip4(const char *s)
{
	struct in_addr a = { 0 };

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

static int64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- the data plane, started inside the node namespace --------------------------------- */

static struct dpsync *start_dpsync(enum dpsync_mode mode)
{
	struct dpsync_config c = { .server = NULL,
				   .node = node,
				   .zone = "zone-a",
				   .mode = mode,
				   .uplink = "eth0",
				   .node_ip = NODE_IP,
				   .pod_cidr = "10.100.1.0/24",
				   .cgroup_root = cg_node };
	char server[400];
	struct dpsync *d;

	snprintf(server, sizeof(server), "unix:%s", sd.sock);
	c.server = server;
	if (nslab_enter_ns(ns_n))
		return NULL;
	d = dpsync_start(&c);
	if (nslab_leave_ns())
		fail_msg("leave namespace %s", ns_n);
	return d;
}

static bool wait_ready(struct dpsync *d, int ms)
{
	int64_t end = ms_now() + ms;

	while (!dpsync_ready(d) && ms_now() < end)
		sleep_ms(5);
	return dpsync_ready(d);
}

/* The frontend record in the pinned map (what the programs read), or -ENOENT. */
static int svc_rec(uint32_t addr, uint16_t port, uint8_t proto, struct shoal_svc_v4 *out)
{
	struct shoal_svc_key_v4 k = { .addr = addr, .port = htons(port), .proto = proto };
	char path[400];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s", pin_dir, SHOAL_MAP_SVC);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -ENOENT;
	if (bpf_map_lookup_elem(fd, &k, out))
		err = -errno;
	close(fd);
	return err;
}

/* Waits until the frontend has n_ready serving backends (-1: until it is gone). Returns the
 * time it took in ms, or -1. */
static int wait_frontend(uint32_t addr, uint16_t port, uint8_t proto, int n_ready, int n_term,
			 int ms)
{
	int64_t start = ms_now(), end = start + ms;
	struct shoal_svc_v4 r;

	do {
		int err = svc_rec(addr, port, proto, &r);

		if (n_ready < 0 ? err == -ENOENT
				: !err && r.n_ready == n_ready && r.n_term == n_term)
			return (int)(ms_now() - start);
		usleep(500);
	} while (ms_now() < end);
	return -1;
}

/* Every entry of a pinned map, as bytes (to compare before and after a restart). */
static size_t map_dump(const char *name, uint8_t *buf, size_t cap)
{
	uint8_t key[128], next[128], val[256];
	struct bpf_map_info info = {};
	__u32 il = sizeof(info);
	char path[400];
	size_t used = 0;
	void *prev = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &il))
		return 0;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, info.key_size);
		prev = key;
		if (bpf_map_lookup_elem(fd, key, val))
			continue;
		if (used + info.key_size + info.value_size > cap)
			break;
		memcpy(buf + used, key, info.key_size);
		memcpy(buf + used + info.key_size, val, info.value_size);
		used += info.key_size + info.value_size;
	}
	close(fd);
	return used;
}

static long long metric(struct dpsync *d, const char *name)
{
	struct strbuf b = { 0 };
	long long v = -1;
	char *p;

	assert_int_equal(dpsync_metrics(d, &b), 0);
	p = b.s ? strstr(b.s, name) : NULL;
	while (p && p != b.s && p[-1] != '\n')
		p = strstr(p + 1, name);
	if (p && sscanf(p + strlen(name), " %lld", &v) != 1)
		v = -1;
	strbuf_free(&b);
	return v;
}

/* ---- API objects ----------------------------------------------------------------------- */

static json_t *api(const char *method, const char *path, json_t *body, long want)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	long code = 0;
	json_t *r = http_json(&sd, method, path, s, &code);

	free(s);
	json_decref(body);
	if (code != want) {
		char *t = r ? json_dumps(r, JSON_COMPACT) : NULL;

		/* In the group setup a failed assertion would skip the lab's removal. */
		if (in_setup) {
			fprintf(stderr, "%s %s: expected %ld, got %ld: %s\n", method, path, want,
				code, t ? t : "");
			free(t);
			setup_failed = true;
			return r;
		}
		fail_msg("%s %s: expected %ld, got %ld: %s", method, path, want, code, t ? t : "");
	}
	return r;
}

static void create_service(const char *name, const char *etp, int np_tcp, int np_udp)
{
	json_t *ports = json_pack("[{s:s,s:s,s:i,s:i,s:i}]", "name", "http", "protocol", "TCP",
				  "port", 80, "targetPort", 8080, "nodePort", np_tcp);
	json_t *svc, *r;

	if (np_udp)
		json_array_append_new(ports, json_pack("{s:s,s:s,s:i,s:i,s:i}", "name", "echo",
						       "protocol", "UDP", "port", 80, "targetPort",
						       8080, "nodePort", np_udp));
	svc = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:o,s:s}}", "apiVersion", "v1", "kind",
			"Service", "metadata", "name", name, "namespace", "default", "spec", "type",
			"NodePort", "ports", ports, "externalTrafficPolicy", etp);
	r = api("POST", "/api/v1/namespaces/default/services", svc, 201);
	if (!strcmp(name, "web")) {
		const char *ip =
			json_string_value(json_object_get(json_object_get(r, "spec"), "clusterIP"));

		if (ip)
			vip = ip4(ip);
		else
			setup_failed = true;
	}
	json_decref(r);
}

/* An endpoint of the slice: pod k (or an address on another node), with conditions. */
static json_t *endpoint(const char *addr, const char *on, bool ready, bool serving, bool term)
{
	return json_pack("{s:[s],s:{s:b,s:b,s:b},s:s,s:s}", "addresses", addr, "conditions",
			 "ready", ready, "serving", serving, "terminating", term, "nodeName", on,
			 "zone", "zone-a");
}

static const char *pod_addr(int k)
{
	static char buf[NPODS][16];

	snprintf(buf[k], sizeof(buf[k]), "10.100.1.%d", k + 2);
	return buf[k];
}

static json_t *slice_ports(bool udp)
{
	json_t *p = json_pack("[{s:s,s:s,s:i}]", "name", "http", "protocol", "TCP", "port", 8080);

	if (udp)
		json_array_append_new(p, json_pack("{s:s,s:s,s:i}", "name", "echo", "protocol",
						   "UDP", "port", 8080));
	return p;
}

static void create_slice(const char *name, const char *svc, json_t *endpoints)
{
	json_t *o =
		json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:s,s:o,s:o}", "apiVersion",
			  "discovery.k8s.io/v1", "kind", "EndpointSlice", "metadata", "name", name,
			  "namespace", "default", "labels", DPSYNC_SVC_LABEL, svc, "addressType",
			  "IPv4", "ports", slice_ports(true), "endpoints", endpoints);

	json_decref(
		api("POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", o, 201));
}

static void patch_slice(const char *name, json_t *endpoints)
{
	char path[200];

	snprintf(path, sizeof(path),
		 "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/%s", name);
	json_decref(api("PATCH", path, json_pack("{s:o}", "endpoints", endpoints), 200));
}

static json_t *all_pods_ready(void)
{
	json_t *a = json_array();

	for (int k = 0; k < NPODS; k++)
		json_array_append_new(a, endpoint(pod_addr(k), node, true, true, false));
	return a;
}

/* ---- traffic --------------------------------------------------------------------------- */

/*
 * Asks addr:port n times from a child process in namespace ns (inside the node cgroup when
 * in_cg), each on a fresh connection (or UDP socket); counts answers by backend tag b1..b3;
 * seen[NPODS] counts failures. The child does only system calls: the parent has threads.
 */
static void ask_from(const char *ns, bool in_cg, uint32_t addr, uint16_t port, bool udp, int n,
		     int seen[NPODS + 1])
{
	int pfd[2], st;
	pid_t pid;

	memset(seen, 0, sizeof(int) * (NPODS + 1));
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int counts[NPODS + 1] = { 0 };
		char buf[256], path[500], me[16];

		close(pfd[0]);
		if (in_cg) {
			int fd;

			snprintf(path, sizeof(path), "%s/cgroup.procs", cg_node);
			snprintf(me, sizeof(me), "%d", getpid());
			fd = open(path, O_WRONLY);
			if (fd < 0 || write(fd, me, strlen(me)) < 0)
				_exit(2);
			close(fd);
		}
		if (nslab_enter_ns(ns))
			_exit(3);
		for (int i = 0; i < n; i++) {
			int err = udp ? nslab_udp_ask(addr, port, "hi", buf, sizeof(buf))
				      : nslab_tcp_ask(addr, port, "hi", buf, sizeof(buf), NULL);

			if (!err && buf[0] == 'b' && buf[1] >= '1' && buf[1] <= '0' + NPODS &&
			    !strcmp(buf + 2, ":hi"))
				counts[buf[1] - '1']++;
			else
				counts[NPODS]++;
		}
		if (write(pfd[1], counts, sizeof(counts)) != (ssize_t)sizeof(counts))
			_exit(4);
		_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], seen, sizeof(int) * (NPODS + 1)) != (ssize_t)(sizeof(int) * (NPODS + 1)))
		seen[NPODS] = n;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("client in %s: exited with %d", ns, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void expect_all(const char *what, const int seen[NPODS + 1], int n)
{
	printf("# %s: b1=%d b2=%d b3=%d failed=%d\n", what, seen[0], seen[1], seen[2], seen[NPODS]);
	if (seen[NPODS])
		fail_msg("%s: %d of %d attempts got no answer, expected none", what, seen[NPODS],
			 n);
	for (int k = 0; k < NPODS; k++)
		if (!seen[k])
			fail_msg("%s: backend b%d never answered in %d attempts", what, k + 1, n);
}

/* ---- lab -------------------------------------------------------------------------------- */

static void lab_remove(void)
{
	if (ds) {
		dpsync_stop(ds);
		ds = NULL;
	}
	if (!access(pin_dir, F_OK) && !nslab_enter_ns(ns_n)) {
		struct dp_opts o = { .node = node, .node_addr = ip4(NODE_IP) };
		struct dp *dp = dp_open(&o);

		if (dp)
			dp_uninstall(dp);
		dp_close(dp);
		nslab_leave_ns();
	}
	nslab_sh("ip netns exec %s nft delete table inet shoal 2>/dev/null", ns_n);
	for (int k = 0; k < NPODS; k++)
		nslab_stop(echo[k]);
	for (int k = 0; k < NPODS; k++)
		nslab_sh("ip netns del %s 2>/dev/null", ns_p[k]);
	nslab_sh("for n in %s %s %s; do ip netns del $n 2>/dev/null; done", ns_c, ns_n, ns_f);
	rmdir(cg_node);
	rmdir(cg_lab);
	if (sd_up)
		shoald_destroy(&sd);
	sd_up = false;
}

static int setup(void **state)
{
	static const char *nocontrollers[] = { "--disable-scheduler", "--disable-controllers",
					       NULL };
	bool has_noctrl;

	(void)state;
	snprintf(P, sizeof(P), "y%03x%02x", (unsigned)getpid() & 0xfff,
		 (unsigned)(time(NULL) & 0xff));
	snprintf(ns_f, sizeof(ns_f), "%sf", P);
	snprintf(ns_n, sizeof(ns_n), "%sn", P);
	snprintf(ns_c, sizeof(ns_c), "%sc", P);
	for (int k = 0; k < NPODS; k++)
		snprintf(ns_p[k], sizeof(ns_p[k]), "%sp%d", P, k + 1);
	snprintf(node, sizeof(node), "t%s-n1", P);
	snprintf(pin_dir, sizeof(pin_dir), "%s/%s", DP_PIN_ROOT, node);
	if (!*nslab_cgroup2_root()) {
		fprintf(stderr, "no cgroup2 mount\n");
		return -1;
	}
	snprintf(cg_lab, sizeof(cg_lab), "%s/shoal-%s", nslab_cgroup2_root(), P);
	snprintf(cg_node, sizeof(cg_node), "%s/n1", cg_lab);
	if (mkdir(cg_lab, 0755) || mkdir(cg_node, 0755)) {
		fprintf(stderr, "mkdir %s: %s\n", cg_node, strerror(errno));
		goto fail;
	}
	if (nslab_sh("set -e; for n in %1$s %2$s %3$s; do ip netns add $n; ip -n $n link set lo up;"
		     " done;"
		     "ip -n %1$s link add br0 type bridge; ip -n %1$s link set br0 up;"
		     "ip link add %4$sfn netns %1$s type veth peer name eth0 netns %2$s;"
		     "ip link add %4$sfc netns %1$s type veth peer name eth0 netns %3$s;"
		     "for i in %4$sfn %4$sfc; do ip -n %1$s link set $i master br0 up; done;"
		     "ip -n %2$s addr add " NODE_IP "/24 dev eth0; ip -n %2$s link set eth0 up;"
		     "ip -n %2$s route add default via 10.99.0.254;"
		     "ip -n %3$s addr add " CLIENT_IP "/24 dev eth0; ip -n %3$s link set eth0 up;"
		     "ip netns exec %2$s sysctl -qw net.ipv4.ip_forward=1"
		     " net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0"
		     " net.ipv4.conf.eth0.rp_filter=0",
		     ns_f, ns_n, ns_c, P)) {
		fprintf(stderr, "lab: fabric, node and client\n");
		goto fail;
	}
	for (int k = 0; k < NPODS; k++) {
		char tag[4];

		if (nslab_sh("set -e; ip netns add %1$s; ip -n %1$s link set lo up;"
			     "ip link add %3$sv%4$d netns %2$s address ee:ee:ee:ee:ee:ee type veth"
			     " peer name eth0 netns %1$s;"
			     "ip -n %1$s addr add %5$s/32 dev eth0; ip -n %1$s link set eth0 up;"
			     "ip -n %1$s route add default via 169.254.1.1 dev eth0 onlink;"
			     "ip -n %1$s neigh add 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0"
			     " nud permanent;"
			     "ip -n %2$s link set %3$sv%4$d up;"
			     "ip -n %2$s route add %5$s/32 dev %3$sv%4$d",
			     ns_p[k], ns_n, P, k + 1, pod_addr(k))) {
			fprintf(stderr, "lab: pod %d\n", k + 1);
			goto fail;
		}
		snprintf(tag, sizeof(tag), "b%d", k + 1);
		echo[k] = nslab_echo_server(ns_p[k], 8080, tag, 120);
	}
	has_noctrl = !nslab_sh("%s --help 2>&1 | grep -q -- --disable-controllers",
			       access("build/san-bin/shoald", X_OK) ? "build/bin/shoald"
								    : "build/san-bin/shoald");
	if (!has_noctrl)
		nocontrollers[1] = NULL;
	if (shoald_start(&sd, nocontrollers)) {
		fprintf(stderr, "shoald did not start\n");
		goto fail;
	}
	sd_up = true;
	/* Every case starts from default/web with three ready pods, served in BPF mode. */
	in_setup = true;
	create_service("web", "Cluster", NP_TCP, NP_UDP);
	create_slice("web-1", "web", all_pods_ready());
	in_setup = false;
	ds = setup_failed ? NULL : start_dpsync(DPSYNC_BPF);
	if (!ds || !wait_ready(ds, 10000)) {
		fprintf(stderr, "dpsync did not start or sync\n");
		goto fail;
	}
	return 0;
fail:
	lab_remove();
	return -1;
}

static int teardown(void **state)
{
	(void)state;
	lab_remove();
	return 0;
}

/* ---- BPF mode --------------------------------------------------------------------------- */

static void test_agent_dpsync_bpf_programs_the_service(void **state)
{
	struct strbuf b = { 0 };
	int t;

	(void)state;
	assert_true(wait_ready(ds, 10000));
	t = wait_frontend(vip, 80, IPPROTO_TCP, NPODS, 0, 5000);
	if (t < 0)
		fail_msg("ClusterIP frontend: expected %d ready backends in the map", NPODS);
	assert_true(wait_frontend(ip4(NODE_IP), NP_TCP, IPPROTO_TCP, NPODS, 0, 1000) >= 0);
	assert_true(wait_frontend(vip, 80, IPPROTO_UDP, NPODS, 0, 1000) >= 0);
	assert_int_equal(dpsync_describe(ds, &b), 0);
	for (char *l = b.s, *e; l && *l; l = e ? e + 1 : NULL) {
		e = strchr(l, '\n');
		printf("# %.*s\n", e ? (int)(e - l) : (int)strlen(l), l);
	}
	assert_non_null(strstr(b.s, "default/web:80/tcp"));
	assert_non_null(strstr(b.s, "10.100.1.2:8080"));
	strbuf_free(&b);
}

static void test_agent_dpsync_bpf_vip_from_node_cgroup(void **state)
{
	int seen[NPODS + 1];

	(void)state;
	ask_from(ns_n, true, vip, 80, false, 30, seen);
	expect_all("TCP to the VIP from the node cgroup", seen, 30);
	ask_from(ns_n, true, vip, 80, true, 30, seen);
	expect_all("UDP to the VIP from the node cgroup", seen, 30);
}

static void test_agent_dpsync_bpf_nodeport_from_outside(void **state)
{
	int seen[NPODS + 1];

	(void)state;
	ask_from(ns_c, false, ip4(NODE_IP), NP_TCP, false, 30, seen);
	expect_all("TCP to the NodePort from the fabric", seen, 30);
	ask_from(ns_c, false, ip4(NODE_IP), NP_UDP, true, 30, seen);
	expect_all("UDP to the NodePort from the fabric", seen, 30);
}

static void test_agent_dpsync_bpf_hairpin(void **state)
{
	int seen[NPODS + 1];

	(void)state;
	/* A pod in the node cgroup (socket hooks) reaching its own Service. */
	ask_from(ns_p[0], true, vip, 80, false, 30, seen);
	expect_all("pod b1 to its Service through the socket hooks", seen, 30);
	/* A pod the socket hooks do not see: tc on its interface, hairpin to itself too. */
	ask_from(ns_p[0], false, vip, 80, false, 30, seen);
	expect_all("pod b1 to its Service through tc", seen, 30);
	ask_from(ns_p[0], false, vip, 80, true, 30, seen);
	expect_all("pod b1 to its Service through tc, UDP", seen, 30);
}

static void test_agent_dpsync_bpf_endpoint_removed(void **state)
{
	json_t *eps = json_array();
	int seen[NPODS + 1], t[5];

	(void)state;
	for (int k = 0; k < NPODS - 1; k++)
		json_array_append_new(eps, endpoint(pod_addr(k), node, true, true, false));
	patch_slice("web-1", eps);
	t[0] = wait_frontend(vip, 80, IPPROTO_TCP, NPODS - 1, 0, 5000);
	if (t[0] < 0)
		fail_msg("expected %d backends after the endpoint was removed", NPODS - 1);
	ask_from(ns_n, true, vip, 80, false, 20, seen);
	printf("# after removing b3: b1=%d b2=%d b3=%d failed=%d\n", seen[0], seen[1], seen[2],
	       seen[3]);
	if (seen[2] || seen[3])
		fail_msg("removed backend b3 got %d new connections (%d failed), expected none",
			 seen[2], seen[3]);
	/* A few more changes, each timed from the API's answer to the map update. */
	for (int i = 1; i < 5; i++) {
		patch_slice("web-1",
			    i % 2 ? all_pods_ready()
				  : json_pack("[o,o]",
					      endpoint(pod_addr(0), node, true, true, false),
					      endpoint(pod_addr(1), node, true, true, false)));
		t[i] = wait_frontend(vip, 80, IPPROTO_TCP, i % 2 ? NPODS : NPODS - 1, 0, 5000);
		assert_true(t[i] >= 0);
	}
	printf("# API write to map update: %d %d %d %d %d ms\n", t[0], t[1], t[2], t[3], t[4]);
	patch_slice("web-1", all_pods_ready());
	assert_true(wait_frontend(vip, 80, IPPROTO_TCP, NPODS, 0, 5000) >= 0);
}

static void test_agent_dpsync_bpf_terminating_fallback(void **state)
{
	int seen[NPODS + 1];

	(void)state;
	/* Nothing ready: b1 and b2 serve while terminating, b3 does not serve. */
	patch_slice("web-1", json_pack("[o,o,o]", endpoint(pod_addr(0), node, false, true, true),
				       endpoint(pod_addr(1), node, false, true, true),
				       endpoint(pod_addr(2), node, false, false, true)));
	if (wait_frontend(vip, 80, IPPROTO_TCP, 0, 2, 5000) < 0)
		fail_msg("expected 0 ready and 2 terminating backends in the map");
	ask_from(ns_n, true, vip, 80, false, 30, seen);
	printf("# terminating fallback: b1=%d b2=%d b3=%d failed=%d\n", seen[0], seen[1], seen[2],
	       seen[3]);
	if (!seen[0] || !seen[1] || seen[2] || seen[3])
		fail_msg("expected b1 and b2 (serving, terminating) only");
	/* One ready again: it alone gets new flows. */
	patch_slice("web-1", json_pack("[o,o,o]", endpoint(pod_addr(0), node, false, true, true),
				       endpoint(pod_addr(1), node, false, true, true),
				       endpoint(pod_addr(2), node, true, true, false)));
	assert_true(wait_frontend(vip, 80, IPPROTO_TCP, 1, 2, 5000) >= 0);
	ask_from(ns_n, true, vip, 80, false, 10, seen);
	if (seen[0] || seen[1] || seen[2] != 10)
		fail_msg("expected only the ready b3, got b1=%d b2=%d b3=%d", seen[0], seen[1],
			 seen[2]);
	patch_slice("web-1", all_pods_ready());
	assert_true(wait_frontend(vip, 80, IPPROTO_TCP, NPODS, 0, 5000) >= 0);
}

static void test_agent_dpsync_bpf_external_traffic_policy_local(void **state)
{
	int seen[NPODS + 1];

	(void)state;
	/* b1 here, and an endpoint on another node that does not exist: never chosen. */
	create_service("local", "Local", NP_ETP, 0);
	create_slice("local-1", "local",
		     json_pack("[o,o]", endpoint(pod_addr(0), node, true, true, false),
			       endpoint("10.100.2.9", "elsewhere", true, true, false)));
	if (wait_frontend(ip4(NODE_IP), NP_ETP, IPPROTO_TCP, 2, 0, 5000) < 0)
		fail_msg("expected the ETP=Local NodePort with 2 ready backends");
	ask_from(ns_c, false, ip4(NODE_IP), NP_ETP, false, 20, seen);
	if (seen[0] != 20)
		fail_msg("ETP=Local: expected all 20 on the local b1, got b1=%d failed=%d", seen[0],
			 seen[3]);
}

static int tag_of(const char *buf)
{
	return buf[0] == 'b' && buf[1] >= '1' && buf[1] <= '0' + NPODS ? buf[1] - '1' : -1;
}

static void test_agent_dpsync_bpf_restart_changes_nothing(void **state)
{
	static uint8_t before[3][1 << 16], after[3][1 << 16];
	static const char *maps[3] = { SHOAL_MAP_SVC, SHOAL_MAP_SLOT, SHOAL_MAP_BACKEND };
	LIBBPF_OPTS(bpf_xdp_query_opts, q1);
	LIBBPF_OPTS(bpf_xdp_query_opts, q2);
	size_t nb[3], na[3];
	char buf[256];
	int fd = -1, t, ifx;
	long long writes;

	(void)state;
	/* A long-lived flow through the NodePort. */
	assert_int_equal(nslab_enter_ns(ns_c), 0);
	assert_int_equal(nslab_tcp_ask(ip4(NODE_IP), NP_TCP, "one", buf, sizeof(buf), &fd), 0);
	assert_int_equal(nslab_leave_ns(), 0);
	t = tag_of(buf);
	assert_true(t >= 0);
	for (int i = 0; i < 3; i++)
		nb[i] = map_dump(maps[i], before[i], sizeof(before[i]));
	assert_int_equal(nslab_enter_ns(ns_n), 0);
	ifx = (int)if_nametoindex("eth0");
	assert_int_equal(bpf_xdp_query(ifx, 0, &q1), 0);
	assert_int_equal(nslab_leave_ns(), 0);

	dpsync_stop(ds);
	ds = start_dpsync(DPSYNC_BPF);
	assert_non_null(ds);
	assert_true(wait_ready(ds, 10000));
	writes = metric(ds, "shoal_dp_map_writes_total");
	printf("# map entries written by the restarted agent: %lld\n", writes);
	assert_int_equal(writes, 0);
	for (int i = 0; i < 3; i++) {
		na[i] = map_dump(maps[i], after[i], sizeof(after[i]));
		if (na[i] != nb[i] || memcmp(before[i], after[i], na[i]))
			fail_msg("map %s changed across the restart", maps[i]);
	}
	assert_int_equal(nslab_enter_ns(ns_n), 0);
	assert_int_equal(bpf_xdp_query(ifx, 0, &q2), 0);
	assert_int_equal(nslab_leave_ns(), 0);
	assert_int_equal(q1.skb_prog_id + q1.drv_prog_id, q2.skb_prog_id + q2.drv_prog_id);
	/* The flow carries on, on its backend. */
	assert_int_equal(nslab_tcp_again(fd, "two", buf, sizeof(buf)), 0);
	assert_int_equal(tag_of(buf), t);
	close(fd);
}

static void test_agent_dpsync_bpf_deleted_while_down(void **state)
{
	struct shoal_svc_v4 r;
	int np = NP_ETP + 1;

	(void)state;
	create_service("brief", "Cluster", np, 0);
	create_slice("brief-1", "brief", all_pods_ready());
	if (wait_frontend(ip4(NODE_IP), (uint16_t)np, IPPROTO_TCP, NPODS, 0, 5000) < 0)
		fail_msg("Service default/brief was not programmed");
	dpsync_stop(ds);
	ds = NULL;
	json_decref(api("DELETE", "/api/v1/namespaces/default/services/brief", NULL, 200));
	assert_int_equal(svc_rec(ip4(NODE_IP), (uint16_t)np, IPPROTO_TCP, &r), 0);
	/* The full sync at start removes what the API no longer has. */
	ds = start_dpsync(DPSYNC_BPF);
	assert_non_null(ds);
	assert_true(wait_ready(ds, 10000));
	assert_int_equal(svc_rec(ip4(NODE_IP), (uint16_t)np, IPPROTO_TCP, &r), -ENOENT);
	assert_true(wait_frontend(vip, 80, IPPROTO_TCP, NPODS, 0, 100) >= 0);
}

static void test_agent_dpsync_bpf_service_deleted(void **state)
{
	(void)state;
	json_decref(api("DELETE", "/api/v1/namespaces/default/services/local", NULL, 200));
	if (wait_frontend(ip4(NODE_IP), NP_ETP, IPPROTO_TCP, -1, 0, 5000) < 0)
		fail_msg("the deleted Service's NodePort frontend is still in the map");
	{
		struct strbuf b = { 0 };

		assert_int_equal(dpsync_describe(ds, &b), 0);
		if (strstr(b.s, "default/local:"))
			fail_msg("the deleted Service is still described: %s", b.s);
		strbuf_free(&b);
	}
	/* The other Service is untouched. */
	assert_true(wait_frontend(vip, 80, IPPROTO_TCP, NPODS, 0, 100) >= 0);
}

static bool route_is(const char *dst, bool present)
{
	int st = nslab_sh("ip -n %s route show %s proto 0x5e | grep -q via", ns_n, dst);

	return present ? st == 0 : st != 0;
}

static bool wait_route(const char *dst, bool present, int ms)
{
	int64_t end = ms_now() + ms;

	while (!route_is(dst, present))
		if (ms_now() > end)
			return false;
		else
			sleep_ms(20);
	return true;
}

static void create_node(const char *name, const char *cidr, const char *ip)
{
	char path[128];

	json_decref(api("POST", "/api/v1/nodes",
			json_pack("{s:s,s:s,s:{s:s},s:{s:s}}", "apiVersion", "v1", "kind", "Node",
				  "metadata", "name", name, "spec", "podCIDR", cidr),
			201));
	snprintf(path, sizeof(path), "/api/v1/nodes/%s/status", name);
	json_decref(api("PATCH", path,
			json_pack("{s:{s:[{s:s,s:s}]}}", "status", "addresses", "type",
				  "InternalIP", "address", ip),
			200));
}

static void test_agent_dpsync_routes_follow_nodes(void **state)
{
	char n2[32], n3[32], path[128];

	(void)state;
	snprintf(n2, sizeof(n2), "t%s-n2", P);
	snprintf(n3, sizeof(n3), "t%s-n3", P);
	/* Someone else's route to what n3 will claim: never touched. */
	assert_int_equal(nslab_sh("ip -n %s route add 10.100.3.0/24 via 10.99.0.3", ns_n), 0);
	create_node(n2, "10.100.2.0/24", "10.99.0.2");
	create_node(n3, "10.100.3.0/24", "10.99.0.33");
	if (!wait_route("10.100.2.0/24", true, 5000))
		fail_msg("no route to node 2's pod CIDR");
	assert_int_equal(nslab_sh("ip -n %s route show 10.100.2.0/24 | grep -q 'via 10.99.0.2 dev "
				  "eth0'",
				  ns_n),
			 0);
	assert_int_equal(
		nslab_sh("ip -n %s route show 10.100.3.0/24 | grep -q 'via 10.99.0.3 '", ns_n), 0);
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", n2);
	json_decref(api("DELETE", path, NULL, 200));
	if (!wait_route("10.100.2.0/24", false, 5000))
		fail_msg("the route to deleted node 2's pod CIDR is still there");
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", n3);
	json_decref(api("DELETE", path, NULL, 200));
	sleep_ms(200);
	assert_int_equal(
		nslab_sh("ip -n %s route show 10.100.3.0/24 | grep -q 'via 10.99.0.3 '", ns_n), 0);
}

/* ---- nftables mode ---------------------------------------------------------------------- */

static void test_agent_dpsync_nftables_vip_and_nodeport(void **state)
{
	int seen[NPODS + 1], tries = 0;

	(void)state;
	dpsync_stop(ds);
	ds = start_dpsync(DPSYNC_NFTABLES);
	assert_non_null(ds);
	assert_true(wait_ready(ds, 10000));
	/* The BPF data plane of the other mode is gone. */
	if (!access(pin_dir, F_OK))
		fail_msg("%s still there in nftables mode", pin_dir);
	assert_int_not_equal(nslab_sh("ip -n %s -d link show eth0 | grep -q prog/xdp", ns_n), 0);
	do {
		ask_from(ns_n, true, vip, 80, false, 1, seen);
		if (!seen[NPODS])
			break;
		sleep_ms(20);
	} while (++tries < 100);
	ask_from(ns_n, true, vip, 80, false, 30, seen);
	if (seen[NPODS])
		nslab_sh("ip netns exec %s nft list table inet shoal | sed 's/^/# /'", ns_n);
	expect_all("nftables: TCP to the VIP from the node", seen, 30);
	ask_from(ns_c, false, ip4(NODE_IP), NP_TCP, false, 30, seen);
	expect_all("nftables: TCP to the NodePort from the fabric", seen, 30);
	ask_from(ns_c, false, ip4(NODE_IP), NP_UDP, true, 30, seen);
	expect_all("nftables: UDP to the NodePort from the fabric", seen, 30);
	ask_from(ns_p[1], false, vip, 80, false, 30, seen);
	expect_all("nftables: pod b2 to its Service", seen, 30);
}

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_agent_dpsync_bpf_programs_the_service),
		      cmocka_unit_test(test_agent_dpsync_bpf_vip_from_node_cgroup),
		      cmocka_unit_test(test_agent_dpsync_bpf_nodeport_from_outside),
		      cmocka_unit_test(test_agent_dpsync_bpf_hairpin),
		      cmocka_unit_test(test_agent_dpsync_bpf_endpoint_removed),
		      cmocka_unit_test(test_agent_dpsync_bpf_terminating_fallback),
		      cmocka_unit_test(test_agent_dpsync_bpf_external_traffic_policy_local),
		      cmocka_unit_test(test_agent_dpsync_bpf_restart_changes_nothing),
		      cmocka_unit_test(test_agent_dpsync_bpf_deleted_while_down),
		      cmocka_unit_test(test_agent_dpsync_bpf_service_deleted),
		      cmocka_unit_test(test_agent_dpsync_routes_follow_nodes),
		      cmocka_unit_test(test_agent_dpsync_nftables_vip_and_nodeport))
