/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rtnetlink through libmnl: links (veth pairs, MTU, up/down, moving to a namespace), IPv4
 * addresses, routes and neighbours, and named network namespaces under /run/shoal/netns.
 *
 * Design choice a reader must know: a connection (struct nl_conn) is a NETLINK_ROUTE socket,
 * and a socket belongs to the network namespace it was opened in, forever. To act inside
 * another namespace, open a connection there (nl_netns_run runs a function inside a named
 * namespace and comes back). Every request asks for an ACK; on failure the call returns the
 * kernel's negative errno and nl_last_error() says what was asked and, when the kernel gave
 * one, its extended-ACK message ("add route 10.100.2.1/24: Invalid argument (kernel: Invalid
 * prefix for given prefix length)").
 */
#ifndef SHOAL_NL_H
#define SHOAL_NL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#define NL_NETNS_DIR "/run/shoal/netns"

struct nl_conn;
struct nlmsghdr;

/* The kernel's extended ACK message in an NLMSG_ERROR (NLMSGERR_ATTR_MSG), or NULL when it
 * gave none. Shared by rtnetlink and the nftables batches. */
const char *nl_extack_msg(const struct nlmsghdr *nlh);

/* Opens a connection in the calling thread's network namespace; NULL and errno on failure. */
struct nl_conn *nl_open(void);
void nl_close(struct nl_conn *nl);
const char *nl_last_error(const struct nl_conn *nl);

struct nl_link_info {
	int ifindex;
	uint32_t mtu;
	bool up;      /* administratively up (IFF_UP) */
	bool running; /* carrier (IFF_RUNNING) */
	uint8_t mac[6];
	char kind[16]; /* "veth", ... ("" when none) */
};

/* A veth pair; the peer is created directly in the namespace of peer_netns_fd (-1: here). */
int nl_veth_create(struct nl_conn *nl, const char *name, const char *peer, int peer_netns_fd);
int nl_link_delete(struct nl_conn *nl, const char *name);
int nl_link_set_netns(struct nl_conn *nl, const char *name, int netns_fd);
int nl_link_set_up(struct nl_conn *nl, const char *name, bool up);
int nl_link_set_mtu(struct nl_conn *nl, const char *name, uint32_t mtu);
/* -ENODEV when there is no such link. */
int nl_link_get(struct nl_conn *nl, const char *name, struct nl_link_info *out);

/* IPv4 address "A.B.C.D/P" on a link. */
int nl_addr_add(struct nl_conn *nl, const char *ifname, const char *cidr);
int nl_addr_del(struct nl_conn *nl, const char *ifname, const char *cidr);

struct nl_route {
	const char *dst;  /* "10.100.2.0/24" or "default" */
	const char *via;  /* gateway, NULL for a directly connected route */
	const char *dev;  /* output link, NULL to let the kernel choose by the gateway */
	bool onlink;	  /* the gateway is on the link even outside its subnets */
	uint32_t table;	  /* 0: main */
	uint32_t metric;  /* 0: none */
	const char *src;  /* preferred source address, NULL for none */
	uint8_t protocol; /* who made it (RTPROT_*, or a number of the caller's); 0: static.
			   * A delete matches only routes of that protocol. */
};
int nl_route_add(struct nl_conn *nl, const struct nl_route *r);
int nl_route_replace(struct nl_conn *nl, const struct nl_route *r);
int nl_route_del(struct nl_conn *nl, const struct nl_route *r);

/* A route as the kernel lists it. */
struct nl_route_entry {
	struct in_addr dst; /* 0.0.0.0/0 for the default route */
	uint8_t dst_len;
	struct in_addr gw; /* 0: none */
	int oif;	   /* 0: none (multipath) */
	uint8_t protocol, scope, type;
	uint32_t table;
};
/* The IPv4 routes of a table (0: main), of every type and protocol; *out is malloc'd. */
int nl_route_list(struct nl_conn *nl, uint32_t table, struct nl_route_entry **out, size_t *n);

/*
 * Change notifications: a socket that hears about links and IPv4 routes of the calling
 * thread's namespace (RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE), for callers that keep something
 * level-triggered in step with them (poll the fd, drain, list what they need again).
 */
struct nl_monitor;
struct nl_monitor *nl_monitor_open(void);
void nl_monitor_close(struct nl_monitor *m);
int nl_monitor_fd(const struct nl_monitor *m);
/* Reads what is pending without blocking: how many link or route changes came (0: none), or
 * -ENOBUFS when the kernel dropped some (the caller lists again). */
int nl_monitor_drain(struct nl_monitor *m);

/* Neighbour entries (ARP), permanent or reachable; add replaces an existing entry. */
int nl_neigh_add(struct nl_conn *nl, const char *dev, const char *ip, const uint8_t mac[6],
		 bool permanent);
/* A managed entry (Linux 5.16+): the kernel resolves it at once and keeps it resolved, so
 * that a FIB lookup from BPF (which cannot resolve) finds the neighbour; replaces an entry. */
int nl_neigh_managed(struct nl_conn *nl, const char *dev, const char *ip);
int nl_neigh_del(struct nl_conn *nl, const char *dev, const char *ip);

/*
 * Named network namespaces: NL_NETNS_DIR/NAME, a bind mount of the namespace (so it lives
 * without a process; `ln -s /run/shoal/netns/NAME /run/netns/NAME` makes `ip netns` see it).
 * Names: 1..64 characters of [A-Za-z0-9._-].
 */
int nl_netns_create(const char *name);
int nl_netns_delete(const char *name);
/* Unmounts and removes NL_NETNS_DIR (and its parent, when empty) once no namespace is left
 * in it: the host is then as it was before the first nl_netns_create. -ENOTEMPTY otherwise. */
int nl_netns_dir_release(void);
/* An O_RDONLY|O_CLOEXEC fd of the namespace (for nl_veth_create / nl_link_set_netns). */
int nl_netns_open(const char *name);
/* Runs fn(arg) with the calling thread inside the namespace, then returns to the original
 * one. Returns fn's result, or a negative errno if entering or leaving failed. */
int nl_netns_run(const char *name, int (*fn)(void *arg), void *arg);
/* Same, for a namespace given by fd. */
int nl_netns_run_fd(int netns_fd, int (*fn)(void *arg), void *arg);

#endif
