// SPDX-License-Identifier: Apache-2.0
/*
 * rtnetlink against the kernel: a veth pair between this test's own network namespace and a
 * named namespace it creates, addressed and routed (via a gateway, and onlink with a
 * neighbour entry), carries TCP both ways; everything is removed afterwards; bad requests
 * return clear errors.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nl.h"
#include "shoal_test.h"

static char ns_b[32], va[16], vb[16];

static int group_setup(void **state)
{
	(void)state;
	if (unshare(CLONE_NEWNET) != 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %m (run as root)\n");
		return -1;
	}
	snprintf(ns_b, sizeof(ns_b), "shoal-tnl-%d", (int)getpid());
	snprintf(va, sizeof(va), "tnla%d", (int)getpid() % 100000);
	snprintf(vb, sizeof(vb), "tnlb%d", (int)getpid() % 100000);
	struct nl_conn *nl = nl_open();
	if (!nl)
		return -1;
	int err = nl_link_set_up(nl, "lo", true);
	nl_close(nl);
	return err;
}

/* How many namespaces NL_NETNS_DIR holds (0 when it does not exist). */
static int netns_dir_entries(void)
{
	DIR *d = opendir(NL_NETNS_DIR);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static int group_teardown(void **state)
{
	(void)state;
	/* whatever a failed test left: the namespace (its links go with it) */
	int err = nl_netns_delete(ns_b);
	if (err && err != -ENOENT)
		return -1;
	err = nl_netns_dir_release();
	return err == 0 || err == -ENOTEMPTY ? 0 : -1;
}

#define NL_OK(nl, call)                                                                            \
	do {                                                                                       \
		int err_ = (call);                                                                 \
		if (err_)                                                                          \
			fail_msg("%s: %d %s", #call, err_, nl_last_error(nl));                     \
	} while (0)

/* Connects to ip:port (non-blocking, 2 s) and sends msg; returns the socket or -errno. */
static int tcp_send(const char *ip, uint16_t port, const char *msg)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, ip, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		int err = -errno;
		close(fd);
		return err;
	}
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (poll(&p, 1, 2000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 ||
	    soerr) {
		close(fd);
		return soerr ? -soerr : -ETIMEDOUT;
	}
	if (write(fd, msg, strlen(msg)) != (ssize_t)strlen(msg)) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int tcp_listen(const char *ip, uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	inet_pton(AF_INET, ip, &sa.sin_addr);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Accepts one connection (2 s) and reads what it says. */
static int tcp_recv(int lfd, char *buf, size_t len)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	if (poll(&p, 1, 2000) != 1)
		return -ETIMEDOUT;
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return -errno;
	p = (struct pollfd){ .fd = c, .events = POLLIN };
	ssize_t n = poll(&p, 1, 2000) == 1 ? read(c, buf, len - 1) : -1;
	close(c);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	return 0;
}

struct b_setup {
	uint8_t mac_a[6];
	char err[512];
};

/* 0 once this thread's namespace has a complete ARP entry of ip with mac, within ms. */
static int arp_resolved(const char *ip, const uint8_t mac[6], int ms)
{
	char want[24], line[256], a[64], hw[64], fl[16];
	snprintf(want, sizeof(want), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
		 mac[3], mac[4], mac[5]);
	for (int t = 0; t <= ms; t += 50) {
		FILE *f = fopen("/proc/thread-self/net/arp", "r");
		if (!f)
			return -errno;
		bool ok = false;
		while (!ok && fgets(line, sizeof(line), f))
			ok = sscanf(line, "%63s %*s %15s %63s", a, fl, hw) == 3 && !strcmp(a, ip) &&
			     strtoul(fl, NULL, 16) & 0x2 && !strcmp(hw, want);
		fclose(f);
		if (ok)
			return 0;
		usleep(50 * 1000);
	}
	return -ETIMEDOUT;
}

/* Inside namespace B: address, routes (via a gateway, and onlink with a neighbour). */
static int setup_in_b(void *arg)
{
	struct b_setup *s = arg;
	struct nl_conn *nl = nl_open();
	if (!nl)
		return -errno;
	struct nl_route via = { .dst = "10.201.0.0/24", .via = "10.200.0.1" };
	struct nl_route onlink = {
		.dst = "10.203.0.0/24", .via = "10.99.9.1", .dev = vb, .onlink = true
	};
	struct nl_route no_onlink = { .dst = "10.203.0.0/24", .via = "10.99.9.1", .dev = vb };
	int err = 0;
	if ((err = nl_link_set_up(nl, "lo", true)) ||
	    (err = nl_addr_add(nl, vb, "10.200.0.2/30")) || (err = nl_link_set_up(nl, vb, true)) ||
	    (err = nl_route_add(nl, &via)) || (err = nl_route_replace(nl, &via)))
		goto out;
	/* the gateway is outside vb's subnet: refused without onlink, accepted with it */
	if ((err = nl_route_add(nl, &no_onlink)) == 0) {
		snprintf(s->err, sizeof(s->err), "route without onlink was accepted");
		err = -EPROTO;
		goto out;
	}
	fprintf(stderr, "# without onlink: %s\n", nl_last_error(nl));
	if ((err = nl_route_add(nl, &onlink)) ||
	    (err = nl_neigh_add(nl, vb, "10.99.9.1", s->mac_a, true)))
		goto out;
	if ((err = nl_route_add(nl, &via)) != -EEXIST) {
		snprintf(s->err, sizeof(s->err), "second add of a route: %d, want -EEXIST", err);
		err = -EPROTO;
		goto out;
	}
	/* a managed neighbour: the kernel resolves the gateway by itself, nobody sending */
	if ((err = nl_neigh_managed(nl, vb, "10.200.0.1")))
		goto out;
	err = arp_resolved("10.200.0.1", s->mac_a, 3000);
	if (err) {
		snprintf(s->err, sizeof(s->err), "managed neighbour 10.200.0.1 not resolved in 3 s");
		goto out;
	}
out:
	if (err && !s->err[0])
		snprintf(s->err, sizeof(s->err), "%s", nl_last_error(nl));
	nl_close(nl);
	return err;
}

static int send_from_b(void *arg)
{
	const char *dst = arg;
	return tcp_send(dst, 7777, "hello from b");
}

struct b_probe {
	struct nl_link_info info;
	int err;
};

static int probe_b(void *arg)
{
	struct b_probe *p = arg;
	struct nl_conn *nl = nl_open();
	if (!nl)
		return -errno;
	p->err = nl_link_get(nl, vb, &p->info);
	nl_close(nl);
	return 0;
}

static void test_nl_veth_between_namespaces_carries_traffic(void **state)
{
	(void)state;
	struct nl_conn *nl = nl_open();
	assert_non_null(nl);
	NL_OK(nl, nl_netns_create(ns_b));
	int fd_b = nl_netns_open(ns_b);
	assert_true(fd_b >= 0);

	NL_OK(nl, nl_veth_create(nl, va, vb, fd_b));
	struct nl_link_info li;
	assert_int_equal(nl_link_get(nl, vb, &li), -ENODEV); /* the peer was born in B */
	NL_OK(nl, nl_addr_add(nl, va, "10.200.0.1/30"));
	NL_OK(nl, nl_addr_add(nl, va, "10.99.9.1/32"));
	NL_OK(nl, nl_addr_add(nl, "lo", "10.201.0.1/32"));
	NL_OK(nl, nl_addr_add(nl, "lo", "10.203.0.1/32"));
	NL_OK(nl, nl_link_set_mtu(nl, va, 1400));
	NL_OK(nl, nl_link_set_up(nl, va, true));
	NL_OK(nl, nl_link_get(nl, va, &li));
	assert_int_equal(li.mtu, 1400);
	assert_true(li.up);
	assert_string_equal(li.kind, "veth");

	struct b_setup bs = { 0 };
	memcpy(bs.mac_a, li.mac, 6);
	int err = nl_netns_run(ns_b, setup_in_b, &bs);
	if (err)
		fail_msg("setup in %s: %d %s", ns_b, err, bs.err);

	/* B -> A through the gateway route, then through the onlink route */
	const char *dsts[] = { "10.201.0.1", "10.203.0.1" };
	for (int i = 0; i < 2; i++) {
		int lfd = tcp_listen(dsts[i], 7777);
		assert_true(lfd >= 0);
		int cfd = nl_netns_run(ns_b, send_from_b, (void *)dsts[i]);
		if (cfd < 0)
			fail_msg("connect from %s to %s: %s", ns_b, dsts[i], strerror(-cfd));
		char buf[64];
		assert_int_equal(tcp_recv(lfd, buf, sizeof(buf)), 0);
		assert_string_equal(buf, "hello from b");
		close(cfd);
		close(lfd);
	}

	/* down and up, delete an address and a neighbour */
	NL_OK(nl, nl_link_set_up(nl, va, false));
	NL_OK(nl, nl_link_get(nl, va, &li));
	assert_false(li.up);
	NL_OK(nl, nl_addr_del(nl, "lo", "10.203.0.1/32"));
	assert_int_equal(nl_addr_del(nl, "lo", "10.203.0.1/32"), -EADDRNOTAVAIL);

	/* move our end into B too: it is gone from here */
	NL_OK(nl, nl_link_set_netns(nl, va, fd_b));
	assert_int_equal(nl_link_get(nl, va, &li), -ENODEV);

	/* deleting the namespace (its mount) takes its links with it */
	struct b_probe p = { 0 };
	assert_int_equal(nl_netns_run(ns_b, probe_b, &p), 0);
	assert_int_equal(p.err, 0);
	close(fd_b);
	NL_OK(nl, nl_netns_delete(ns_b));
	struct stat sb;
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", NL_NETNS_DIR, ns_b);
	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(nl_netns_run(ns_b, probe_b, &p), -ENOENT);
	/* The directory goes once it is empty. Namespaces of others (a lab running beside this
	 * test) keep it: then the release says so and leaves it, and theirs, in place. */
	int others = netns_dir_entries();
	int rel = nl_netns_dir_release();
	if (others > 0 && rel == -ENOTEMPTY) {
		assert_int_equal(stat(NL_NETNS_DIR, &sb), 0);
	} else {
		assert_int_equal(rel, 0);
		assert_int_equal(stat(NL_NETNS_DIR, &sb), -1);
	}
	nl_close(nl);
}

static void test_nl_bad_requests_return_clear_errors(void **state)
{
	(void)state;
	struct nl_conn *nl = nl_open();
	assert_non_null(nl);
	char lk[16];
	snprintf(lk, sizeof(lk), "tnlx%d", (int)getpid() % 100000);

	assert_int_equal(nl_addr_add(nl, "nosuchlink0", "10.9.0.1/24"), -ENODEV);
	assert_non_null(strstr(nl_last_error(nl), "nosuchlink0"));
	assert_int_equal(nl_link_delete(nl, "nosuchlink0"), -ENODEV);
	assert_non_null(strstr(nl_last_error(nl), "nosuchlink0"));

	NL_OK(nl, nl_veth_create(nl, lk, "tnly0", -1));
	assert_int_equal(nl_veth_create(nl, lk, "tnly1", -1), -EEXIST);
	assert_int_equal(nl_veth_create(nl, "a-name-much-too-long", "x", -1), -EINVAL);

	NL_OK(nl, nl_addr_add(nl, lk, "10.9.0.1/24"));
	assert_int_equal(nl_addr_add(nl, lk, "10.9.0.1/24"), -EEXIST);
	fprintf(stderr, "# duplicate: %s\n", nl_last_error(nl));
	assert_non_null(strstr(nl_last_error(nl), "10.9.0.1/24"));

	assert_int_equal(nl_addr_add(nl, lk, "10.9.0.2/33"), -EINVAL);
	assert_non_null(strstr(nl_last_error(nl), "prefix"));
	assert_int_equal(nl_addr_add(nl, lk, "10.9.0.2"), -EINVAL);
	assert_non_null(strstr(nl_last_error(nl), "prefix"));
	assert_int_equal(nl_addr_add(nl, lk, "10.9.0.300/24"), -EINVAL);

	NL_OK(nl, nl_link_set_up(nl, lk, true));
	struct nl_route hostbits = { .dst = "10.100.2.1/24", .dev = lk };
	assert_int_equal(nl_route_add(nl, &hostbits), -EINVAL);
	fprintf(stderr, "# host bits: %s\n", nl_last_error(nl));
	assert_non_null(strstr(nl_last_error(nl), "kernel:"));
	struct nl_route unreachable = { .dst = "10.100.3.0/24", .via = "10.55.0.1" };
	assert_true(nl_route_add(nl, &unreachable) < 0);
	fprintf(stderr, "# unreachable gateway: %s\n", nl_last_error(nl));
	struct nl_route missing = { .dst = "10.100.4.0/24", .dev = lk };
	assert_int_equal(nl_route_del(nl, &missing), -ESRCH);
	assert_int_equal(nl_link_set_mtu(nl, lk, 10), -EINVAL);
	fprintf(stderr, "# mtu 10: %s\n", nl_last_error(nl));

	assert_int_equal(nl_netns_create("../etc"), -EINVAL);
	assert_int_equal(nl_netns_delete("shoal-no-such-ns"), -ENOENT);

	NL_OK(nl, nl_link_delete(nl, lk));
	struct nl_link_info li;
	assert_int_equal(nl_link_get(nl, "tnly0", &li), -ENODEV);
	nl_close(nl);
}

SHOAL_TEST_MAIN_SETUP(group_setup, group_teardown,
		      cmocka_unit_test(test_nl_veth_between_namespaces_carries_traffic),
		      cmocka_unit_test(test_nl_bad_requests_return_clear_errors))
