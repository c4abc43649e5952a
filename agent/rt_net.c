// SPDX-License-Identifier: Apache-2.0
/*
 * A pod's network: its namespace (NL_NETNS_DIR/<node>-<uid8>), a veth pair with the node side
 * "sh" + 8 hex digits of a hash of the uid and the pod side eth0, the pod's address as a /32 on
 * eth0, a default route via 169.254.1.1 onlink with a permanent neighbour entry for it that
 * names the node side's MAC (so the pod never ARPs for its gateway), and on the node a /32
 * route to the pod through the node side. Everything goes through rtnetlink (dataplane/nl.h).
 *
 * The design choice: setup is idempotent, step by step (a namespace, link, address or route
 * already there is taken as it is), so a pod half made before a crash is finished by the same
 * call, and a pod whose namespace vanished (a reboot) is made again with the same address.
 * Node-side work runs inside the node's namespace captured at rt_open, whichever thread asks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "nl.h"
#include "rt_int.h"
#include "rt_util.h"

#define POD_GW "169.254.1.1"

struct net_ctx {
	struct rt_pod *p;
	int netns_fd;
	uint8_t mac[6];
	char *err;
	size_t len;
};

static int set_err(struct net_ctx *x, struct nl_conn *nl, const char *what, int err)
{
	snprintf(x->err, x->len, "%s: %s", what,
		 nl && *nl_last_error(nl) ? nl_last_error(nl) : strerror(-err));
	return err;
}

/* In the node's namespace: the veth (peer straight into the pod's namespace), up, route. */
static int node_side(void *arg)
{
	struct net_ctx *x = arg;
	struct rt_pod *p = x->p;
	char dst[32];
	int err;
	struct nl_conn *nl = nl_open();
	if (!nl)
		return set_err(x, NULL, "open rtnetlink", -errno);
	struct nl_link_info li;
	err = nl_link_get(nl, p->veth, &li);
	if (err == -ENODEV) {
		if ((err = nl_veth_create(nl, p->veth, "eth0", x->netns_fd)))
			goto fail;
		err = nl_link_get(nl, p->veth, &li);
	}
	if (err)
		goto fail;
	memcpy(x->mac, li.mac, 6);
	if ((err = nl_link_set_up(nl, p->veth, true)))
		goto fail;
	snprintf(dst, sizeof(dst), "%s/32", p->ip);
	struct nl_route r = { .dst = dst, .dev = p->veth };
	if ((err = nl_route_replace(nl, &r)))
		goto fail;
	nl_close(nl);
	return 0;
fail:
	if (!*x->err)
		set_err(x, nl, "node side", err);
	nl_close(nl);
	return err;
}

/* In the pod's namespace: lo and eth0 up, the address, the gateway's neighbour, the route. */
static int pod_side(void *arg)
{
	struct net_ctx *x = arg;
	struct rt_pod *p = x->p;
	char cidr[32];
	int err;
	struct nl_conn *nl = nl_open();
	if (!nl)
		return set_err(x, NULL, "open rtnetlink in the pod", -errno);
	snprintf(cidr, sizeof(cidr), "%s/32", p->ip);
	struct nl_route def = { .dst = "default", .via = POD_GW, .dev = "eth0", .onlink = true };
	if ((err = nl_link_set_up(nl, "lo", true)) ||
	    ((err = nl_addr_add(nl, "eth0", cidr)) && err != -EEXIST) ||
	    (err = nl_link_set_up(nl, "eth0", true)) ||
	    (err = nl_neigh_add(nl, "eth0", POD_GW, x->mac, true)) ||
	    (err = nl_route_replace(nl, &def))) {
		set_err(x, nl, "pod side", err);
		nl_close(nl);
		return err;
	}
	nl_close(nl);
	return 0;
}

int rt_net_setup(struct rt *rt, struct rt_pod *p, char *err, size_t len)
{
	struct net_ctx x = { .p = p, .err = err, .len = len };
	int e;
	err[0] = '\0';
	if (!*p->ip) {
		snprintf(err, len, "no address");
		return -EINVAL;
	}
	if ((e = nl_netns_create(p->netns)) && e != -EEXIST) {
		snprintf(err, len, "create network namespace %s: %s", p->netns, strerror(-e));
		return e;
	}
	if (p->netns_fd < 0 && (p->netns_fd = nl_netns_open(p->netns)) < 0) {
		e = p->netns_fd;
		p->netns_fd = -1;
		snprintf(err, len, "open network namespace %s: %s", p->netns, strerror(-e));
		return e;
	}
	x.netns_fd = p->netns_fd;
	if ((e = nl_netns_run_fd(rt->node_ns, node_side, &x)) < 0) {
		if (!*err)
			snprintf(err, len, "node side: %s", strerror(-e));
		return e;
	}
	if ((e = nl_netns_run_fd(p->netns_fd, pod_side, &x)) < 0) {
		if (!*err)
			snprintf(err, len, "pod side: %s", strerror(-e));
		return e;
	}
	return 0;
}

static int node_teardown(void *arg)
{
	struct rt_pod *p = arg;
	struct nl_conn *nl = nl_open();
	if (!nl)
		return -errno;
	/* The pair goes with either end, and the /32 route with its link. */
	int err = nl_link_delete(nl, p->veth);
	if (err && err != -ENODEV)
		log_warn("runtime: pod %s/%s: %s", p->spec.ns, p->spec.name, nl_last_error(nl));
	nl_close(nl);
	return err == -ENODEV ? 0 : err;
}

void rt_net_teardown(struct rt *rt, struct rt_pod *p)
{
	if (p->netns_fd >= 0) {
		close(p->netns_fd);
		p->netns_fd = -1;
	}
	if (!*p->netns)
		return;
	int err = nl_netns_run_fd(rt->node_ns, node_teardown, p);
	if (err < 0)
		log_warn("runtime: pod %s/%s: remove veth %s: %s", p->spec.ns, p->spec.name,
			 p->veth, strerror(-err));
	err = nl_netns_delete(p->netns);
	if (err && err != -ENOENT)
		log_warn("runtime: pod %s/%s: remove network namespace %s: %s", p->spec.ns,
			 p->spec.name, p->netns, strerror(-err));
	p->net_ready = false;
}

static int forwarding(void *arg)
{
	(void)arg;
	return rt_write_str("/proc/sys/net/ipv4/ip_forward", "1");
}

int rt_net_forwarding(struct rt *rt)
{
	int err = nl_netns_run_fd(rt->node_ns, forwarding, NULL);
	if (err)
		log_error("runtime: net.ipv4.ip_forward=1 in the node's namespace: %s",
			  strerror(-err));
	return err;
}

struct sock_ctx {
	int type, fd;
};

static int make_socket(void *arg)
{
	struct sock_ctx *s = arg;
	s->fd = socket(AF_INET, s->type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return s->fd < 0 ? -errno : 0;
}

int rt_net_socket(struct rt *rt, struct rt_pod *p, int type)
{
	(void)rt;
	struct sock_ctx s = { .type = type, .fd = -1 };
	if (p->netns_fd < 0)
		return -ENOENT;
	int err = nl_netns_run_fd(p->netns_fd, make_socket, &s);
	if (err < 0) {
		if (s.fd >= 0)
			close(s.fd);
		return err;
	}
	return s.fd;
}
