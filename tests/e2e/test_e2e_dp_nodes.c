// SPDX-License-Identifier: Apache-2.0
/*
 * End-to-end test of north-south traffic to a backend on another node: two node namespaces
 * on a fabric bridge, each with its own shoal data plane (XDP in generic mode on the uplink,
 * tc on the uplink and the pod veth), a client on the fabric, and a backend pod behind node 2.
 * A NodePort on node 1 reaches the backend with SNAT (the backend sees node 1, the reply comes
 * back through node 1), and with direct server return (the backend sees the client, node 2's
 * shoal answers from the NodePort address itself).
 *
 *   client 10.0.0.2 --+-- fabric bridge --+-- node1 10.0.0.11 (NodePort 30080 SNAT, 30081 DSR)
 *                                         +-- node2 10.0.0.12 --veth-- pod 10.1.2.2:8080
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shoal_test.h"
#include "dp.h"
#include "nslab.h"

static char P[10], ns_f[16], ns_c[16], ns_n1[16], ns_n2[16], ns_b[16];
static pid_t echo;

static uint32_t ip4(const char *s)
{
	struct in_addr a = { 0 };

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

static struct dp *node_open(int n)
{
	char name[24];
	struct dp_opts o = { .node = name, .max_services = 16, .max_backends = 16,
			     .max_flows = 4096, .max_maglev_services = 4 };

	snprintf(name, sizeof(name), "%s-n%d", P, n);
	o.node_addr = ip4(n == 1 ? "10.0.0.11" : "10.0.0.12");
	return dp_open(&o);
}

/* Both nodes program the same Services, as every agent does; the backend is local on node 2. */
static int node_start(int n)
{
	struct dp_backend b = { .addr = ip4("10.1.2.2"), .port = 8080, .ready = 1,
				.flags = n == 2 ? BE_F_LOCAL : 0 };
	struct dp_service_spec sp[2];
	char ifn[32];
	struct dp *dp = node_open(n);
	int err;

	if (!dp)
		return -errno;
	memset(sp, 0, sizeof(sp));
	for (int i = 0; i < 2; i++) {
		sp[i].svc.name = i ? "default/dsr:30081/tcp" : "default/snat:30080/tcp";
		sp[i].svc.proto = IPPROTO_TCP;
		sp[i].svc.flags = SVC_F_NODEPORT | SVC_F_MAGLEV | (i ? SVC_F_DSR : 0);
		sp[i].svc.n_frontends = 1;
		sp[i].svc.frontends[0].addr = ip4("10.0.0.11");
		sp[i].svc.frontends[0].port = (uint16_t)(30080 + i);
		sp[i].backends = &b;
		sp[i].n_backends = 1;
	}
	snprintf(ifn, sizeof(ifn), "%s%du", P, n);
	/* Generic XDP: native XDP_TX on a veth needs an XDP program on its peer too. */
	err = dp_attach_xdp(dp, (int)if_nametoindex(ifn), DP_XDP_GENERIC);
	if (!err)
		err = dp_attach_tc(dp, (int)if_nametoindex(ifn), true);
	if (!err && n == 2) {
		snprintf(ifn, sizeof(ifn), "%s2v", P);
		err = dp_attach_tc(dp, (int)if_nametoindex(ifn), false);
	}
	if (!err)
		err = dp_sync(dp, sp, 2);
	dp_close(dp);
	return err;
}

static int node_stop(int n)
{
	struct dp *dp = node_open(n);
	int err;

	if (!dp)
		return -errno;
	err = dp_uninstall(dp);
	dp_close(dp);
	return err;
}

static int in_node(int n, int (*fn)(int))
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		int err = nslab_enter_ns(n == 1 ? ns_n1 : ns_n2);

		if (!err)
			err = fn(n);
		if (err)
			fprintf(stderr, "node %d: %s\n", n, strerror(-err));
		_exit(err ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int setup(void **state)
{
	(void)state;
	snprintf(P, sizeof(P), "m%03x%02x", (unsigned)getpid() & 0xfff, (unsigned)(time(NULL) & 0xff));
	snprintf(ns_f, sizeof(ns_f), "%sf", P);
	snprintf(ns_c, sizeof(ns_c), "%sc", P);
	snprintf(ns_n1, sizeof(ns_n1), "%s1", P);
	snprintf(ns_n2, sizeof(ns_n2), "%s2", P);
	snprintf(ns_b, sizeof(ns_b), "%sb", P);
	if (nslab_sh(
		    "set -e; for n in %1$s %2$s %3$s %4$s %5$s; do ip netns add $n;"
		    " ip -n $n link set lo up; done;"
		    "ip -n %1$s link add br0 type bridge; ip -n %1$s link set br0 up;"
		    "ip link add %6$sfc netns %1$s type veth peer name eth0 netns %2$s;"
		    "ip link add %6$sf1 netns %1$s type veth peer name %6$s1u netns %3$s;"
		    "ip link add %6$sf2 netns %1$s type veth peer name %6$s2u netns %4$s;"
		    "for i in %6$sfc %6$sf1 %6$sf2; do ip -n %1$s link set $i master br0 up; done;"
		    "ip -n %2$s addr add 10.0.0.2/24 dev eth0; ip -n %2$s link set eth0 up;"
		    "ip -n %3$s addr add 10.0.0.11/24 dev %6$s1u; ip -n %3$s link set %6$s1u up;"
		    "ip -n %4$s addr add 10.0.0.12/24 dev %6$s2u; ip -n %4$s link set %6$s2u up;"
		    "ip -n %3$s route add 10.1.2.0/24 via 10.0.0.12;"
		    "ip link add %6$s2v netns %4$s type veth peer name eth0 netns %5$s;"
		    "ip -n %4$s addr add 10.1.2.1/24 dev %6$s2v; ip -n %4$s link set %6$s2v up;"
		    "ip -n %5$s addr add 10.1.2.2/24 dev eth0; ip -n %5$s link set eth0 up;"
		    "ip -n %5$s route add default via 10.1.2.1;"
		    "for n in %2$s %3$s %4$s; do ip netns exec $n sysctl -qw net.ipv4.ip_forward=1"
		    " net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0; done;"
		    "ip netns exec %4$s sysctl -qw net.ipv4.conf.%6$s2u.rp_filter=0"
		    " net.ipv4.conf.%6$s2v.rp_filter=0;"
		    "ip netns exec %3$s ping -c1 -W2 -q 10.0.0.12 >/dev/null;"
		    "ip netns exec %3$s ping -c1 -W2 -q 10.0.0.2 >/dev/null;"
		    "ip netns exec %4$s ping -c1 -W2 -q 10.0.0.2 >/dev/null",
		    ns_f, ns_c, ns_n1, ns_n2, ns_b, P))
		return -1;
	echo = nslab_echo_server(ns_b, 8080, "%peer", 300);
	usleep(200 * 1000);
	if (in_node(1, node_start) || in_node(2, node_start))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	in_node(1, node_stop);
	in_node(2, node_stop);
	nslab_stop(echo);
	nslab_sh("for n in %s %s %s %s %s; do ip netns del $n 2>/dev/null; done", ns_f, ns_c,
		 ns_n1, ns_n2, ns_b);
	return 0;
}

/* Asks through the NodePort n times; each answer must name the expected source address. */
static void ask(uint16_t port, const char *want_peer, int n)
{
	char buf[256], want[64];

	snprintf(want, sizeof(want), "%s:hi", want_peer);
	assert_int_equal(nslab_enter_ns(ns_c), 0);
	for (int i = 0; i < n; i++) {
		int err = nslab_tcp_ask(ip4("10.0.0.11"), port, "hi", buf, sizeof(buf), NULL);

		if (err)
			fail_msg("NodePort %u attempt %d: expected an answer, got %s", port, i,
				 strerror(-err));
		if (strcmp(buf, want))
			fail_msg("NodePort %u: expected the backend to see '%s', got '%s'", port, want,
				 buf);
	}
	assert_int_equal(nslab_leave_ns(), 0);
}

static void test_e2e_dp_nodeport_to_remote_backend_with_snat(void **state)
{
	(void)state;
	ask(30080, "10.0.0.11", 5);
}

static void test_e2e_dp_nodeport_to_remote_backend_with_dsr(void **state)
{
	(void)state;
	ask(30081, "10.0.0.2", 5);
}

SHOAL_TEST_MAIN_SETUP(setup, teardown,
		      cmocka_unit_test(test_e2e_dp_nodeport_to_remote_backend_with_snat),
		      cmocka_unit_test(test_e2e_dp_nodeport_to_remote_backend_with_dsr))
