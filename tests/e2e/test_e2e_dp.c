// SPDX-License-Identifier: Apache-2.0
/*
 * End-to-end test of the service data plane in a namespace lab: a client namespace, a node
 * namespace with the XDP, tc and socket programs attached, and three backend namespaces
 * running TCP and UDP echo servers that name themselves. The loader runs in short-lived child
 * processes, as a restarting agent would: programs and maps must outlive each of them.
 *
 *   client (10.0.1.2) --veth-- node uplink (10.0.1.1, XDP + tc) --veth (tc)-- backend k
 *                                                                  (10.1.k.2:8080)
 * Service default/web: VIP 10.96.0.10:80 and NodePort 10.0.1.1:30080, TCP and UDP.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "shoal_test.h"
#include "dp.h"
#include "nslab.h"

#define VIP "10.96.0.10"
#define NODE_IP "10.0.1.1"
#define NB 3

static char P[10], ns_client[32], ns_node[32], ns_be[NB][32], cgroup[512];
static pid_t echo[NB];
static int ready[NB] = { 1, 1, 1 };
static bool uninstalled;

static uint32_t ip4(const char *s)
{
	struct in_addr a = { 0 };

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

static void specs_build(struct dp_service_spec *sp, struct dp_backend *b)
{
	for (int k = 0; k < NB; k++) {
		memset(&b[k], 0, sizeof(b[k]));
		b[k].addr = htonl(0x0a010002 | (uint32_t)(k + 1) << 8);
		b[k].port = 8080;
		b[k].flags = BE_F_LOCAL;
		b[k].ready = (uint8_t)ready[k];
	}
	for (int i = 0; i < 2; i++) {
		memset(&sp[i], 0, sizeof(sp[i]));
		sp[i].svc.name = i ? "default/web:80/udp" : "default/web:80/tcp";
		sp[i].svc.proto = i ? IPPROTO_UDP : IPPROTO_TCP;
		sp[i].svc.flags = SVC_F_NODEPORT | SVC_F_MAGLEV;
		sp[i].svc.n_frontends = 2;
		sp[i].svc.frontends[0].addr = ip4(VIP);
		sp[i].svc.frontends[0].port = 80;
		sp[i].svc.frontends[1].addr = ip4(NODE_IP);
		sp[i].svc.frontends[1].port = 30080;
		sp[i].backends = b;
		sp[i].n_backends = NB;
	}
}

static struct dp *loader_open(void)
{
	struct dp_opts o = { .node = P, .node_addr = ip4(NODE_IP), .max_services = 64,
			     .max_backends = 256, .max_flows = 16384, .max_maglev_services = 8 };

	return dp_open(&o);
}

/* Opens, attaches everywhere, syncs the Service, closes: what an agent start does. */
static int loader_start(void)
{
	struct dp_service_spec sp[2];
	struct dp_backend b[NB];
	char ifn[32];
	struct dp *dp = loader_open();
	int err;

	if (!dp)
		return -errno;
	snprintf(ifn, sizeof(ifn), "%snu", P);
	err = dp_attach_xdp(dp, (int)if_nametoindex(ifn), DP_XDP_AUTO);
	if (!err)
		err = dp_attach_tc(dp, (int)if_nametoindex(ifn), true);
	for (int k = 0; k < NB && !err; k++) {
		snprintf(ifn, sizeof(ifn), "%sv%d", P, k + 1);
		err = dp_attach_tc(dp, (int)if_nametoindex(ifn), false);
	}
	if (!err)
		err = dp_attach_cgroup(dp, cgroup);
	specs_build(sp, b);
	if (!err)
		err = dp_sync(dp, sp, 2);
	dp_close(dp);
	return err;
}

static int loader_sync(void)
{
	struct dp_service_spec sp[2];
	struct dp_backend b[NB];
	struct dp *dp = loader_open();
	int err;

	if (!dp)
		return -errno;
	specs_build(sp, b);
	err = dp_sync(dp, sp, 2);
	dp_close(dp);
	return err;
}

static int loader_uninstall(void)
{
	struct dp *dp = loader_open();
	int err;

	if (!dp)
		return -errno;
	err = dp_uninstall(dp);
	dp_close(dp);
	return err;
}

/* Runs a loader step in a child process inside the node namespace. */
static int in_loader(int (*fn)(void))
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		int err = nslab_enter_ns(ns_node);

		if (!err)
			err = fn();
		if (err)
			fprintf(stderr, "loader step: %s\n", strerror(-err));
		_exit(err ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int setup(void **state)
{
	(void)state;
	snprintf(P, sizeof(P), "e%03x%02x", (unsigned)getpid() & 0xfff, (unsigned)(time(NULL) & 0xff));
	snprintf(ns_client, sizeof(ns_client), "%sc", P);
	snprintf(ns_node, sizeof(ns_node), "%sn", P);
	if (!*nslab_cgroup2_root()) {
		fprintf(stderr, "no cgroup2 mount\n");
		return -1;
	}
	snprintf(cgroup, sizeof(cgroup), "%s/shoal-%s", nslab_cgroup2_root(), P);
	if (mkdir(cgroup, 0755)) {
		fprintf(stderr, "mkdir %s: %s\n", cgroup, strerror(errno));
		return -1;
	}
	if (nslab_sh("set -e; ip netns add %1$s; ip netns add %2$s;"
		     "ip link add %3$sc0 netns %1$s type veth peer name %3$snu netns %2$s;"
		     "ip -n %1$s addr add 10.0.1.2/24 dev %3$sc0; ip -n %1$s link set %3$sc0 up;"
		     "ip -n %1$s link set lo up; ip -n %1$s route add default via 10.0.1.1;"
		     "ip -n %2$s addr add 10.0.1.1/24 dev %3$snu; ip -n %2$s link set %3$snu up;"
		     "ip -n %2$s link set lo up;"
		     "ip netns exec %2$s sysctl -qw net.ipv4.ip_forward=1 "
		     "net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 "
		     "net.ipv4.conf.%3$snu.rp_filter=0",
		     ns_client, ns_node, P))
		return -1;
	for (int k = 0; k < NB; k++) {
		snprintf(ns_be[k], sizeof(ns_be[k]), "%sb%d", P, k + 1);
		if (nslab_sh("set -e; ip netns add %1$s;"
			     "ip link add %3$sv%4$d netns %2$s type veth peer name eth0 netns %1$s;"
			     "ip -n %1$s addr add 10.1.%4$d.2/24 dev eth0; ip -n %1$s link set eth0 up;"
			     "ip -n %1$s link set lo up; ip -n %1$s route add default via 10.1.%4$d.1;"
			     "ip -n %2$s addr add 10.1.%4$d.1/24 dev %3$sv%4$d;"
			     "ip -n %2$s link set %3$sv%4$d up;"
			     "ip netns exec %2$s sysctl -qw net.ipv4.conf.%3$sv%4$d.rp_filter=0",
			     ns_be[k], ns_node, P, k + 1))
			return -1;
		char tag[8];

		snprintf(tag, sizeof(tag), "b%d", k + 1);
		echo[k] = nslab_echo_server(ns_be[k], 8080, tag, 300);
	}
	usleep(200 * 1000);
	if (in_loader(loader_start)) {
		fprintf(stderr, "loader start failed\n");
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (!uninstalled)
		in_loader(loader_uninstall);
	for (int k = 0; k < NB; k++)
		nslab_stop(echo[k]);
	nslab_sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", ns_client, ns_node);
	for (int k = 0; k < NB; k++)
		nslab_sh("ip netns del %s 2>/dev/null", ns_be[k]);
	rmdir(cgroup);
	return 0;
}

static int tag_index(const char *answer)
{
	if (answer[0] == 'b' && answer[1] >= '1' && answer[1] <= '0' + NB && answer[2] == ':')
		return answer[1] - '1';
	return -1;
}

/* Asks the frontend n times (fresh connections) and counts answers per backend. */
static void ask_many(const char *addr, uint16_t port, bool udp, int n, int *seen)
{
	char buf[256];

	assert_int_equal(nslab_enter_ns(ns_client), 0);
	for (int i = 0; i < n; i++) {
		int err = udp ? nslab_udp_ask(ip4(addr), port, "hello", buf, sizeof(buf)) :
				nslab_tcp_ask(ip4(addr), port, "hello", buf, sizeof(buf), NULL);
		int t;

		if (err)
			fail_msg("%s %s:%u attempt %d: expected an answer, got %s", udp ? "udp" : "tcp",
				 addr, port, i, strerror(-err));
		t = tag_index(buf);
		if (t < 0 || strcmp(buf + 3, "hello"))
			fail_msg("expected 'bN:hello', got '%s'", buf);
		seen[t]++;
	}
	assert_int_equal(nslab_leave_ns(), 0);
}

static void test_e2e_dp_every_backend_answers_via_vip(void **state)
{
	int tcp[NB] = { 0 }, udp[NB] = { 0 };

	(void)state;
	ask_many(VIP, 80, false, 30, tcp);
	ask_many(VIP, 80, true, 30, udp);
	printf("# via VIP: tcp b1=%d b2=%d b3=%d, udp b1=%d b2=%d b3=%d\n", tcp[0], tcp[1], tcp[2],
	       udp[0], udp[1], udp[2]);
	for (int k = 0; k < NB; k++) {
		if (!tcp[k] || !udp[k])
			fail_msg("backend b%d: expected answers over TCP and UDP, got %d and %d",
				 k + 1, tcp[k], udp[k]);
	}
}

static void test_e2e_dp_nodeport_from_outside(void **state)
{
	int tcp[NB] = { 0 }, udp[NB] = { 0 };

	(void)state;
	ask_many(NODE_IP, 30080, false, 30, tcp);
	ask_many(NODE_IP, 30080, true, 30, udp);
	printf("# via NodePort: tcp b1=%d b2=%d b3=%d, udp b1=%d b2=%d b3=%d\n", tcp[0], tcp[1],
	       tcp[2], udp[0], udp[1], udp[2]);
	for (int k = 0; k < NB; k++)
		if (!tcp[k] || !udp[k])
			fail_msg("backend b%d: no answer through the NodePort", k + 1);
}

static void test_e2e_dp_removed_backend_keeps_established(void **state)
{
	char buf[256];
	int fd = -1, t, seen[NB] = { 0 };

	(void)state;
	assert_int_equal(nslab_enter_ns(ns_client), 0);
	assert_int_equal(nslab_tcp_ask(ip4(VIP), 80, "first", buf, sizeof(buf), &fd), 0);
	assert_int_equal(nslab_leave_ns(), 0);
	t = tag_index(buf);
	assert_true(t >= 0);
	ready[t] = 0;
	assert_int_equal(in_loader(loader_sync), 0);
	ask_many(VIP, 80, false, 20, seen);
	if (seen[t])
		fail_msg("removed backend b%d got %d of 20 new connections, expected none", t + 1,
			 seen[t]);
	assert_int_equal(nslab_tcp_again(fd, "again", buf, sizeof(buf)), 0);
	assert_int_equal(tag_index(buf), t);
	close(fd);
	ready[t] = 1;
	assert_int_equal(in_loader(loader_sync), 0);
}

/* In a child inside the run's cgroup (socket hooks) and the node namespace. */
static int cgroup_client(void)
{
	char path[600], pid[32], buf[256];
	struct sockaddr_in peer, to = { .sin_family = AF_INET, .sin_port = htons(80),
					.sin_addr.s_addr = ip4(VIP) };
	socklen_t pl = sizeof(peer);
	int fd, cg;
	ssize_t r;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	cg = open(path, O_WRONLY);
	snprintf(pid, sizeof(pid), "%d", getpid());
	if (cg < 0 || write(cg, pid, strlen(pid)) < 0)
		return 10;
	close(cg);
	if (nslab_enter_ns(ns_node))
		return 11;
	if (nslab_tcp_ask(ip4(VIP), 80, "sock", buf, sizeof(buf), &fd))
		return 12;
	if (tag_index(buf) < 0)
		return 13;
	if (getpeername(fd, (void *)&peer, &pl) || peer.sin_addr.s_addr != ip4(VIP) ||
	    peer.sin_port != htons(80))
		return 14;
	close(fd);
	/* Unconnected UDP: the answer appears to come from the VIP. */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct timeval tv = { .tv_sec = 2 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sendto(fd, "dgram", 5, 0, (void *)&to, sizeof(to)) != 5)
		return 15;
	pl = sizeof(peer);
	r = recvfrom(fd, buf, sizeof(buf) - 1, 0, (void *)&peer, &pl);
	if (r <= 0)
		return 16;
	if (peer.sin_addr.s_addr != ip4(VIP) || peer.sin_port != htons(80))
		return 17;
	close(fd);
	return 0;
}

static void test_e2e_dp_cgroup_keeps_vip_as_peer(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	pid = fork();
	if (pid == 0)
		_exit(cgroup_client());
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("socket-LB client: step %d failed (12 connect, 14 getpeername, 17 "
			 "recvfrom address)",
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void test_e2e_dp_loader_restart_keeps_connection(void **state)
{
	char buf[256];
	int fd = -1, t;

	(void)state;
	assert_int_equal(nslab_enter_ns(ns_client), 0);
	assert_int_equal(nslab_tcp_ask(ip4(VIP), 80, "before", buf, sizeof(buf), &fd), 0);
	t = tag_index(buf);
	assert_int_equal(nslab_leave_ns(), 0);
	/* A new loader process: reuses the pins, re-attaches in place, syncs. */
	assert_int_equal(in_loader(loader_start), 0);
	assert_int_equal(nslab_tcp_again(fd, "after", buf, sizeof(buf)), 0);
	assert_int_equal(tag_index(buf), t);
	assert_string_equal(buf + 3, "after");
	close(fd);
	{
		int seen[NB] = { 0 };

		ask_many(VIP, 80, false, 5, seen);
	}
}

static void test_e2e_dp_uninstall_removes_everything(void **state)
{
	char path[600], buf[256];
	struct stat st;
	uint32_t cnt = 0;
	int cg;

	(void)state;
	assert_int_equal(in_loader(loader_uninstall), 0);
	uninstalled = true;
	snprintf(path, sizeof(path), "%s/%s", DP_PIN_ROOT, P);
	if (!stat(path, &st))
		fail_msg("pin directory %s still there after uninstall", path);
	if (!nslab_sh("ip -n %s -d link show %snu | grep -q prog/xdp", ns_node, P))
		fail_msg("XDP program still attached to %snu", P);
	if (!nslab_sh("tc -n %s filter show dev %snu ingress | grep -q bpf", ns_node, P))
		fail_msg("tc filter still on %snu", P);
	cg = open(cgroup, O_RDONLY | O_DIRECTORY);
	assert_true(cg >= 0);
	assert_int_equal(bpf_prog_query(cg, BPF_CGROUP_INET4_CONNECT, 0, NULL, NULL, &cnt), 0);
	close(cg);
	assert_int_equal(cnt, 0);
	/* And the VIP no longer answers. */
	assert_int_equal(nslab_enter_ns(ns_client), 0);
	assert_int_not_equal(nslab_tcp_ask(ip4(VIP), 80, "gone", buf, sizeof(buf), NULL), 0);
	assert_int_equal(nslab_leave_ns(), 0);
}

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_e2e_dp_every_backend_answers_via_vip),
		      cmocka_unit_test(test_e2e_dp_nodeport_from_outside),
		      cmocka_unit_test(test_e2e_dp_removed_backend_keeps_established),
		      cmocka_unit_test(test_e2e_dp_cgroup_keeps_vip_as_peer),
		      cmocka_unit_test(test_e2e_dp_loader_restart_keeps_connection),
		      cmocka_unit_test(test_e2e_dp_uninstall_removes_everything))
