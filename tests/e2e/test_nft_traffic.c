// SPDX-License-Identifier: Apache-2.0
/*
 * Packets through the nftables proxy in a namespace lab. This process's own network namespace
 * is the node; around it, named namespaces built with the nl_* library:
 *
 *   pod     10.100.10.2/24 --- 10.100.10.1  node  10.99.0.1 --- 10.99.0.2/24  ext (outside,
 *                                                 (default route to ext)         the node's gateway)
 *   backend k (k = 1..3): 10.100.k.2/24 --- 10.100.k.1 on the node, a TCP server on :8080
 *                         answering "bK <peer address>"
 *
 * Checked: a ClusterIP reaches all three backends; a pod reaching itself through its Service
 * (hairpin) works; a NodePort from outside is DNATed and masqueraded; pod egress to outside is
 * masqueraded; a Service without endpoints is rejected; loadBalancerSourceRanges admit and
 * then drop; session affinity keeps a client on one backend; externalTrafficPolicy=Local
 * sends outside clients only to the node's endpoints with their address kept (and drops them
 * when there is none) while pods still reach every endpoint; when no endpoint is ready the
 * serving terminating ones take the traffic. Everything is removed on exit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nft.h"
#include "nl.h"
#include "shoal_test.h"

#define N_BACKENDS 3

static char ns_pod[40], ns_ext[40], ns_be[N_BACKENDS][40];
static pid_t servers[8];
static int n_servers;
static struct nft_engine *eng;
static struct nft_cidr pods[1];

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -EIO;
}

/* In a peer namespace: lo up, the address on eth0, eth0 up, default route via the node. */
struct peer_cfg {
	const char *addr, *gw;
	char err[512];
};

static int peer_setup(void *arg)
{
	struct peer_cfg *p = arg;
	struct nl_conn *nl = nl_open();
	if (!nl)
		return -errno;
	struct nl_route def = { .dst = "default", .via = p->gw };
	int err;
	if ((err = nl_link_set_up(nl, "lo", true)) || (err = nl_addr_add(nl, "eth0", p->addr)) ||
	    (err = nl_link_set_up(nl, "eth0", true)) || (err = nl_route_add(nl, &def)))
		snprintf(p->err, sizeof(p->err), "%s", nl_last_error(nl));
	nl_close(nl);
	return err;
}

/* A namespace `ns` joined to the node by a veth: node side `host_if` with `host_addr`. */
static int make_peer(struct nl_conn *nl, const char *ns, const char *host_if, const char *host_addr,
		     const char *peer_addr, const char *gw)
{
	int err = nl_netns_create(ns);
	if (err)
		return err;
	int fd = nl_netns_open(ns);
	if (fd < 0)
		return fd;
	err = nl_veth_create(nl, host_if, "eth0", fd);
	close(fd);
	if (err || (err = nl_addr_add(nl, host_if, host_addr)) ||
	    (err = nl_link_set_up(nl, host_if, true))) {
		fprintf(stderr, "# %s\n", nl_last_error(nl));
		return err;
	}
	struct peer_cfg pc = { .addr = peer_addr, .gw = gw };
	err = nl_netns_run(ns, peer_setup, &pc);
	if (err)
		fprintf(stderr, "# in %s: %s\n", ns, pc.err);
	return err;
}

/* A forked TCP server inside `ns` on port, answering "tag peer-address\n" to each client. */
static int spawn_server(const char *ns, uint16_t port, const char *tag)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(pfd[0]);
		int nsfd = nl_netns_open(ns);
		if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
			_exit(2);
		int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
			_exit(3);
		alarm(300); /* bounded even if the parent dies without killing us */
		if (write(pfd[1], "k", 1) != 1)
			_exit(4);
		close(pfd[1]);
		for (;;) {
			struct sockaddr_in peer;
			socklen_t pl = sizeof(peer);
			int c = accept(fd, (struct sockaddr *)&peer, &pl);
			if (c < 0)
				continue;
			char a[INET_ADDRSTRLEN], msg[64];
			inet_ntop(AF_INET, &peer.sin_addr, a, sizeof(a));
			int n = snprintf(msg, sizeof(msg), "%s %s\n", tag, a);
			if (write(c, msg, (size_t)n) != n)
				_exit(5);
			close(c);
		}
	}
	close(pfd[1]);
	servers[n_servers++] = pid;
	char k;
	struct pollfd p = { .fd = pfd[0], .events = POLLIN };
	int ok = poll(&p, 1, 5000) == 1 && read(pfd[0], &k, 1) == 1;
	close(pfd[0]);
	return ok ? 0 : -EIO;
}

struct req {
	const char *ip;
	uint16_t port;
	int timeout_ms;
	char reply[64];
	char tag[8], peer[INET_ADDRSTRLEN];
};

/* Connects, reads one line "tag peer"; 0 or -errno (-ETIMEDOUT when nothing answers). */
static int do_req(void *arg)
{
	struct req *r = arg;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(r->port) };
	inet_pton(AF_INET, r->ip, &sa.sin_addr);
	int err = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		err = -errno;
		goto out;
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int pr = poll(&p, 1, r->timeout_ms);
	if (pr == 0) {
		err = -ETIMEDOUT;
		goto out;
	}
	ssize_t n = read(fd, r->reply, sizeof(r->reply) - 1);
	if (n <= 0) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		err = soerr ? -soerr : (n < 0 ? -errno : -EPIPE);
		goto out;
	}
	r->reply[n] = '\0';
	if (sscanf(r->reply, "%7s %15s", r->tag, r->peer) != 2)
		err = -EBADMSG;
out:
	close(fd);
	return err;
}

static int req_from(const char *ns, struct req *r)
{
	if (!r->timeout_ms)
		r->timeout_ms = 2000;
	return nl_netns_run(ns, do_req, r);
}

static void cleanup(void)
{
	for (int i = 0; i < n_servers; i++) {
		kill(servers[i], SIGTERM);
		waitpid(servers[i], NULL, 0);
	}
	n_servers = 0;
	if (eng) {
		if (nft_remove(eng))
			fprintf(stderr, "# remove: %s\n", nft_last_error(eng));
		nft_close(eng);
		eng = NULL;
	}
	const char *all[] = { ns_pod, ns_ext, ns_be[0], ns_be[1], ns_be[2] };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i][0])
			nl_netns_delete(all[i]);
	nl_netns_dir_release();
}

static int group_setup(void **state)
{
	(void)state;
	if (unshare(CLONE_NEWNET) != 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %m (run as root)\n");
		return -1;
	}
	int pid = (int)getpid();
	snprintf(ns_pod, sizeof(ns_pod), "shoal-tnft-%d-pod", pid);
	snprintf(ns_ext, sizeof(ns_ext), "shoal-tnft-%d-ext", pid);
	for (int k = 0; k < N_BACKENDS; k++)
		snprintf(ns_be[k], sizeof(ns_be[k]), "shoal-tnft-%d-b%d", pid, k + 1);

	struct nl_conn *nl = nl_open();
	int err = nl ? nl_link_set_up(nl, "lo", true) : -errno;
	if (!err)
		err = write_file("/proc/sys/net/ipv4/ip_forward", "1");
	if (!err)
		err = make_peer(nl, ns_pod, "tnfpod", "10.100.10.1/24", "10.100.10.2/24",
				"10.100.10.1");
	if (!err)
		err = make_peer(nl, ns_ext, "tnfext", "10.99.0.1/24", "10.99.0.2/24", "10.99.0.1");
	for (int k = 0; k < N_BACKENDS && !err; k++) {
		char hif[16], ha[32], pa[32], gw[32], tag[8];
		snprintf(hif, sizeof(hif), "tnfb%d", k + 1);
		snprintf(ha, sizeof(ha), "10.100.%d.1/24", k + 1);
		snprintf(pa, sizeof(pa), "10.100.%d.2/24", k + 1);
		snprintf(gw, sizeof(gw), "10.100.%d.1", k + 1);
		snprintf(tag, sizeof(tag), "b%d", k + 1);
		err = make_peer(nl, ns_be[k], hif, ha, pa, gw);
		if (!err)
			err = spawn_server(ns_be[k], 8080, tag);
	}
	if (!err)
		err = spawn_server(ns_ext, 9000, "ext");
	/* the node's default route points outside, as on a real node */
	struct nl_route def = { .dst = "default", .via = "10.99.0.2" };
	if (!err && (err = nl_route_add(nl, &def)))
		fprintf(stderr, "# %s\n", nl_last_error(nl));
	nl_close(nl);
	if (!err)
		err = nft_cidr_parse("10.100.0.0/16", &pods[0]);
	if (!err) {
		struct nft_config cfg = {
			.pod_cidrs = pods, .n_pod_cidrs = 1, .proxy = true, .nodeports = true
		};
		eng = nft_open(&cfg);
		if (!eng)
			err = -errno;
	}
	if (err) {
		fprintf(stderr, "# lab setup: %s\n", strerror(-err));
		cleanup();
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	cleanup();
	return 0;
}

static struct nft_endpoint backends[N_BACKENDS];

static void web_service(struct nft_service *s, const char *name, const char *vip)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->protocol = IPPROTO_TCP;
	inet_pton(AF_INET, vip, &s->cluster_ip);
	s->port = 80;
	for (int k = 0; k < N_BACKENDS; k++) {
		char a[32];
		snprintf(a, sizeof(a), "10.100.%d.2", k + 1);
		memset(&backends[k], 0, sizeof(backends[k]));
		inet_pton(AF_INET, a, &backends[k].addr);
		backends[k].port = 8080;
		backends[k].ready = true;
	}
	s->endpoints = backends;
	s->n_endpoints = N_BACKENDS;
}

static void upsert(const struct nft_service *s)
{
	int err = nft_service_upsert(eng, s);
	if (err)
		fail_msg("upsert %s: %s", s->name, nft_last_error(eng));
}

static void test_nft_traffic_clusterip_reaches_all_backends(void **state)
{
	(void)state;
	struct nft_service s;
	web_service(&s, "default/web/tcp/80", "10.96.0.10");
	upsert(&s);
	int seen[N_BACKENDS] = { 0 };
	for (int i = 0; i < 60; i++) {
		struct req r = { .ip = "10.96.0.10", .port = 80 };
		int err = req_from(ns_pod, &r);
		if (err)
			fail_msg("request %d from the pod: %s", i, strerror(-err));
		int k = r.tag[1] - '1';
		assert_true(k >= 0 && k < N_BACKENDS);
		seen[k]++;
		/* pod to pod through a Service: the backend sees the pod's own address */
		assert_string_equal(r.peer, "10.100.10.2");
	}
	for (int k = 0; k < N_BACKENDS; k++)
		if (!seen[k])
			fail_msg("backend b%d got none of 60 connections (%d/%d/%d)", k + 1,
				 seen[0], seen[1], seen[2]);

	/* one endpoint leaves: it gets no more traffic */
	s.endpoints[1].ready = false;
	upsert(&s);
	for (int i = 0; i < 20; i++) {
		struct req r = { .ip = "10.96.0.10", .port = 80 };
		assert_int_equal(req_from(ns_pod, &r), 0);
		assert_string_not_equal(r.tag, "b2");
	}
	assert_int_equal(nft_service_delete(eng, s.name), 0);
}

static void test_nft_traffic_hairpin(void **state)
{
	(void)state;
	struct nft_service s;
	web_service(&s, "default/hairpin/tcp/80", "10.96.0.12");
	upsert(&s);
	int self = 0;
	for (int i = 0; i < 30; i++) {
		struct req r = { .ip = "10.96.0.12", .port = 80 };
		int err = req_from(ns_be[0], &r);
		if (err)
			fail_msg("request %d from b1 to its own Service: %s", i, strerror(-err));
		if (!strcmp(r.tag, "b1")) {
			self++;
			/* masqueraded to the node, or the reply would bypass the NAT */
			assert_string_equal(r.peer, "10.100.1.1");
		}
	}
	assert_true(self > 0);
	assert_int_equal(nft_service_delete(eng, s.name), 0);
}

static void test_nft_traffic_nodeport_from_outside_is_masqueraded(void **state)
{
	(void)state;
	struct nft_service s;
	web_service(&s, "default/np/tcp/80", "10.96.0.13");
	s.node_port = 30080;
	upsert(&s);
	int seen[N_BACKENDS] = { 0 };
	for (int i = 0; i < 30; i++) {
		struct req r = { .ip = "10.99.0.1", .port = 30080 };
		int err = req_from(ns_ext, &r);
		if (err)
			fail_msg("request %d to the NodePort: %s", i, strerror(-err));
		int k = r.tag[1] - '1';
		assert_true(k >= 0 && k < N_BACKENDS);
		seen[k]++;
		char want[16];
		snprintf(want, sizeof(want), "10.100.%d.1", k + 1);
		assert_string_equal(r.peer, want);
	}
	assert_true(seen[0] && seen[1] && seen[2]);
	/* not a NodePort on an address that is not the node's */
	struct req r = { .ip = "203.0.113.5", .port = 30080, .timeout_ms = 300 };
	assert_int_not_equal(req_from(ns_ext, &r), 0);
	assert_int_equal(nft_service_delete(eng, s.name), 0);
}

static void test_nft_traffic_pod_egress_is_masqueraded(void **state)
{
	(void)state;
	struct req r = { .ip = "10.99.0.2", .port = 9000 };
	int err = req_from(ns_pod, &r);
	if (err)
		fail_msg("pod to outside: %s", strerror(-err));
	assert_string_equal(r.tag, "ext");
	assert_string_equal(r.peer, "10.99.0.1");
	/* pod to pod is not masqueraded */
	struct nft_service s;
	web_service(&s, "default/direct/tcp/80", "10.96.0.14");
	upsert(&s);
	struct req d = { .ip = "10.100.2.2", .port = 8080 };
	assert_int_equal(req_from(ns_pod, &d), 0);
	assert_string_equal(d.tag, "b2");
	assert_string_equal(d.peer, "10.100.10.2");
	assert_int_equal(nft_service_delete(eng, s.name), 0);
}

static void test_nft_traffic_no_endpoints_rejected(void **state)
{
	(void)state;
	struct nft_service s;
	web_service(&s, "default/empty/tcp/80", "10.96.0.15");
	s.n_endpoints = 0;
	upsert(&s);
	struct req r = { .ip = "10.96.0.15", .port = 80 };
	assert_int_equal(req_from(ns_pod, &r), -ECONNREFUSED);
	assert_int_equal(nft_service_delete(eng, s.name), 0);
}

static void test_nft_traffic_source_ranges(void **state)
{
	(void)state;
	struct nft_service s;
	struct in_addr ext;
	struct nft_cidr range;
	web_service(&s, "default/lb/tcp/80", "10.96.0.16");
	inet_pton(AF_INET, "203.0.113.100", &ext); /* routed to the node */
	s.external_ips = &ext;
	s.n_external_ips = 1;
	assert_int_equal(nft_cidr_parse("10.99.0.0/30", &range), 0);
	s.source_ranges = &range;
	s.n_source_ranges = 1;
	upsert(&s);
	struct req r = { .ip = "203.0.113.100", .port = 80 };
	int err = req_from(ns_ext, &r);
	if (err)
		fail_msg("allowed source to the external IP: %s", strerror(-err));
	assert_true(r.tag[0] == 'b');
	assert_int_equal(nft_cidr_parse("192.0.2.0/24", &range), 0);
	upsert(&s);
	struct req d = { .ip = "203.0.113.100", .port = 80, .timeout_ms = 500 };
	assert_int_equal(req_from(ns_ext, &d), -ETIMEDOUT);
	assert_int_equal(nft_service_delete(eng, s.name), 0);
}

static void test_nft_traffic_session_affinity(void **state)
{
	(void)state;
	struct nft_service s;
	web_service(&s, "default/sticky/tcp/80", "10.96.0.17");
	s.affinity_timeout = 60;
	upsert(&s);
	char first[8] = "";
	for (int i = 0; i < 15; i++) {
		struct req r = { .ip = "10.96.0.17", .port = 80 };
		assert_int_equal(req_from(ns_pod, &r), 0);
		if (!first[0])
			snprintf(first, sizeof(first), "%s", r.tag);
		assert_string_equal(r.tag, first);
	}
	assert_int_equal(nft_service_delete(eng, s.name), 0);
}

/* n requests from `ns` to ip:port; counts the backends that answered; every peer must be
 * `peer` (NULL: not checked). Fails on any error. */
static void spread(const char *ns, const char *ip, uint16_t port, int n, const char *peer,
		   int seen[N_BACKENDS])
{
	memset(seen, 0, N_BACKENDS * sizeof(*seen));
	for (int i = 0; i < n; i++) {
		struct req r = { .ip = ip, .port = port };
		int err = req_from(ns, &r);
		if (err)
			fail_msg("request %d from %s to %s:%u: %s", i, ns, ip, port,
				 strerror(-err));
		int k = r.tag[1] - '1';
		if (r.tag[0] != 'b' || k < 0 || k >= N_BACKENDS)
			fail_msg("request %d to %s:%u: answer \"%s\"", i, ip, port, r.reply);
		seen[k]++;
		if (peer && strcmp(r.peer, peer))
			fail_msg("request %d to %s:%u: backend b%d saw %s, expected %s", i, ip,
				 port, k + 1, r.peer, peer);
	}
}

static void test_nft_traffic_external_local(void **state)
{
	(void)state;
	struct nft_service s;
	int seen[N_BACKENDS];
	web_service(&s, "default/local/tcp/80", "10.96.0.18");
	s.node_port = 30081;
	s.external_local = true;
	backends[0].local = true; /* b1 runs on this node */
	upsert(&s);

	/* from outside: only b1, and it sees the client's own address */
	spread(ns_ext, "10.99.0.1", 30081, 20, "10.99.0.2", seen);
	assert_int_equal(seen[0], 20);
	/* from a pod: every endpoint, through the NodePort and the ClusterIP */
	spread(ns_pod, "10.99.0.1", 30081, 40, "10.100.10.2", seen);
	if (!seen[0] || !seen[1] || !seen[2])
		fail_msg("pod to NodePort: %d/%d/%d", seen[0], seen[1], seen[2]);
	spread(ns_pod, "10.96.0.18", 80, 40, "10.100.10.2", seen);
	if (!seen[0] || !seen[1] || !seen[2])
		fail_msg("pod to ClusterIP: %d/%d/%d", seen[0], seen[1], seen[2]);

	/* the local endpoint is terminating, b2 (local) still serving: outside clients go to
	 * b2, the ClusterIP to the ready b3 only */
	backends[0].local = false;
	backends[1] = (struct nft_endpoint){ .addr = backends[1].addr, .port = 8080,
					     .serving = true, .terminating = true, .local = true };
	upsert(&s);
	spread(ns_ext, "10.99.0.1", 30081, 15, "10.99.0.2", seen);
	assert_int_equal(seen[1], 15);
	spread(ns_pod, "10.96.0.18", 80, 20, NULL, seen);
	assert_int_equal(seen[1], 0);
	assert_true(seen[0] && seen[2]);

	/* no local endpoint: outside clients are dropped, pods still served */
	backends[1].local = false;
	upsert(&s);
	struct req r = { .ip = "10.99.0.1", .port = 30081, .timeout_ms = 500 };
	assert_int_equal(req_from(ns_ext, &r), -ETIMEDOUT);
	spread(ns_pod, "10.99.0.1", 30081, 10, NULL, seen);
	assert_int_equal(seen[1], 0);
	assert_int_equal(nft_service_delete(eng, s.name), 0);
}

static void test_nft_traffic_terminating_fallback(void **state)
{
	(void)state;
	struct nft_service s;
	int seen[N_BACKENDS];
	web_service(&s, "default/rollout/tcp/80", "10.96.0.19");
	s.node_port = 30082;
	/* none ready: b2 serving and terminating, b1 terminating and no longer serving, b3
	 * starting (not ready, not serving) */
	backends[0].ready = false;
	backends[0].terminating = true;
	backends[1].ready = false;
	backends[1].serving = backends[1].terminating = true;
	backends[2].ready = false;
	upsert(&s);
	spread(ns_pod, "10.96.0.19", 80, 15, NULL, seen);
	assert_int_equal(seen[1], 15);
	spread(ns_ext, "10.99.0.1", 30082, 10, NULL, seen);
	assert_int_equal(seen[1], 10);

	/* b3 ready: only b3, the terminating one no longer gets new connections */
	backends[2].ready = true;
	upsert(&s);
	spread(ns_pod, "10.96.0.19", 80, 15, NULL, seen);
	assert_int_equal(seen[2], 15);

	/* nothing ready or serving: rejected */
	backends[1].serving = false;
	backends[2].ready = false;
	upsert(&s);
	struct req r = { .ip = "10.96.0.19", .port = 80 };
	assert_int_equal(req_from(ns_pod, &r), -ECONNREFUSED);
	assert_int_equal(nft_service_delete(eng, s.name), 0);
}

SHOAL_TEST_MAIN_SETUP(group_setup, group_teardown,
		      cmocka_unit_test(test_nft_traffic_clusterip_reaches_all_backends),
		      cmocka_unit_test(test_nft_traffic_hairpin),
		      cmocka_unit_test(test_nft_traffic_nodeport_from_outside_is_masqueraded),
		      cmocka_unit_test(test_nft_traffic_pod_egress_is_masqueraded),
		      cmocka_unit_test(test_nft_traffic_no_endpoints_rejected),
		      cmocka_unit_test(test_nft_traffic_source_ranges),
		      cmocka_unit_test(test_nft_traffic_session_affinity),
		      cmocka_unit_test(test_nft_traffic_external_local),
		      cmocka_unit_test(test_nft_traffic_terminating_fallback))
