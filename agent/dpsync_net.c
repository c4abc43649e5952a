// SPDX-License-Identifier: Apache-2.0
/*
 * The node's side of the network that the data plane sync keeps: a route to every other
 * node's pod CIDR through that node's address, and (BPF mode) the tc program on every pod
 * interface, which reverse-translates what pods answer to translated flows and serves pods
 * whose sockets the cgroup hooks do not see.
 *
 * The design choice: both are level-triggered from what the kernel lists. Our routes carry
 * a protocol number of their own (DPSYNC_RTPROT), so a sync lists them, adds and removes
 * the difference, and never touches a route someone else made. Pod interfaces are found by
 * the /32 routes of this node's pod CIDR that go out of them (how the runtime wires a pod),
 * re-listed whenever the kernel says links or routes changed.
 *
 * Each route's gateway (the other node) also gets a managed neighbour entry on the uplink,
 * which the kernel keeps resolved: XDP forwards NodePort traffic for another node's backend
 * itself, after a FIB lookup that cannot resolve a neighbour; without the entry, the first
 * packets to a node this node never talked to would go to the stack with this node's own
 * address as their source, and be dropped there as martians.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpsync_int.h"
#include "log.h"
#include "nl.h"

int net_open(struct dpsync_net *n, const char *uplink, const struct nft_cidr *pod_cidr,
	     struct dp *dp)
{
	int err;

	memset(n, 0, sizeof(*n));
	if (!uplink || strlen(uplink) >= sizeof(n->uplink))
		return -EINVAL;
	snprintf(n->uplink, sizeof(n->uplink), "%s", uplink);
	n->uplink_ifindex = (int)if_nametoindex(uplink);
	if (!n->uplink_ifindex) {
		log_warn("dpsync: uplink %s: no such interface in this namespace", uplink);
		return -ENODEV;
	}
	if (pod_cidr)
		n->pod_cidr = *pod_cidr;
	n->dp = dp;
	n->nl = nl_open();
	if (!n->nl) {
		err = -errno;
		log_warn("dpsync: open rtnetlink: %s", strerror(-err));
		return err;
	}
	if (dp) {
		n->mon = nl_monitor_open();
		if (!n->mon) {
			err = -errno;
			log_warn("dpsync: listen to link and route changes: %s", strerror(-err));
			net_close(n);
			return err;
		}
	}
	return 0;
}

void net_close(struct dpsync_net *n)
{
	nl_monitor_close(n->mon);
	nl_close(n->nl);
	free(n->pod_ifs);
	free(n->routes);
	memset(n, 0, sizeof(*n));
}

static bool in_cidr(const struct nft_cidr *c, struct in_addr a)
{
	uint32_t mask = c->prefix ? htonl(~0u << (32 - c->prefix)) : 0;

	return (a.s_addr & mask) == (c->addr.s_addr & mask);
}

static bool has_if(const int *v, size_t n, int ifindex)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == ifindex)
			return true;
	return false;
}

int net_pod_ifs_sync(struct dpsync_net *n)
{
	struct nl_route_entry *rt = NULL;
	size_t n_rt = 0, n_want = 0, n_kept = 0;
	int *want = NULL, err, first = 0;

	if (!n->dp)
		return 0;
	err = nl_route_list(n->nl, 0, &rt, &n_rt);
	if (err) {
		log_warn("dpsync: %s", nl_last_error(n->nl));
		return err;
	}
	want = calloc(n_rt + 1, sizeof(*want));
	if (!want) {
		free(rt);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_rt; i++) {
		const struct nl_route_entry *r = &rt[i];

		if (r->dst_len == 32 && r->type == RTN_UNICAST && r->oif > 0 &&
		    r->oif != n->uplink_ifindex && n->pod_cidr.prefix &&
		    in_cidr(&n->pod_cidr, r->dst) && !has_if(want, n_want, r->oif))
			want[n_want++] = r->oif;
	}
	free(rt);
	/* Attach where missing (a no-op where this program is attached already). */
	for (size_t i = 0; i < n_want; i++) {
		if (has_if(n->pod_ifs, n->n_pod_ifs, want[i]))
			continue;
		err = dp_attach_tc(n->dp, want[i], false);
		if (err && err != -ENODEV) {
			n->attach_errors++;
			if (!first)
				first = err;
			/* Not recorded: tried again at the next change. */
			want[i] = 0;
		}
	}
	/* Detach from interfaces that are no longer a pod's (gone ones: nothing to do). */
	for (size_t i = 0; i < n->n_pod_ifs; i++) {
		if (has_if(want, n_want, n->pod_ifs[i]))
			continue;
		err = dp_detach_tc(n->dp, n->pod_ifs[i]);
		if (err && err != -ENODEV)
			log_warn("dpsync: detach tc from ifindex %d: %s", n->pod_ifs[i],
				 strerror(-err));
	}
	for (size_t i = 0; i < n_want; i++)
		if (want[i])
			want[n_kept++] = want[i];
	free(n->pod_ifs);
	n->pod_ifs = want;
	n->n_pod_ifs = n_kept;
	return first;
}

static bool had_route(const struct dpsync_net *n, const struct net_route *w)
{
	for (size_t i = 0; i < n->n_routes; i++)
		if (n->routes[i].via == w->via && n->routes[i].dst.prefix == w->dst.prefix &&
		    n->routes[i].dst.addr.s_addr == w->dst.addr.s_addr)
			return true;
	return false;
}

static void cidr_str(const struct nft_cidr *c, char *buf, size_t len)
{
	char a[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &c->addr, a, sizeof(a));
	snprintf(buf, len, "%s/%u", a, c->prefix);
}

int net_routes_sync(struct dpsync_net *n, const struct net_route *want, size_t n_want)
{
	struct nl_route_entry *rt = NULL;
	struct net_route *kept = NULL;
	size_t n_rt = 0, n_kept = 0;
	int err, first = 0;

	err = nl_route_list(n->nl, 0, &rt, &n_rt);
	if (err) {
		log_warn("dpsync: %s", nl_last_error(n->nl));
		return err;
	}
	kept = calloc(n_want + 1, sizeof(*kept));
	if (!kept) {
		free(rt);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_want; i++) {
		const struct net_route *w = &want[i];
		const struct nl_route_entry *ours = NULL, *other = NULL;
		char dst[24], via[INET_ADDRSTRLEN];
		struct in_addr gw = { .s_addr = w->via };

		for (size_t k = 0; k < n_rt; k++) {
			if (rt[k].dst_len != w->dst.prefix ||
			    rt[k].dst.s_addr != w->dst.addr.s_addr)
				continue;
			if (rt[k].protocol == DPSYNC_RTPROT)
				ours = &rt[k];
			else
				other = &rt[k];
		}
		cidr_str(&w->dst, dst, sizeof(dst));
		inet_ntop(AF_INET, &gw, via, sizeof(via));
		if (other && !ours) {
			log_warn("dpsync: route to %s (node %s) is there already and was not made "
				 "by shoal: left alone",
				 dst, w->node);
			continue;
		}
		if (!ours || ours->gw.s_addr != w->via || ours->oif != n->uplink_ifindex) {
			struct nl_route r = {
				.dst = dst, .via = via, .dev = n->uplink, .protocol = DPSYNC_RTPROT
			};

			n->route_writes++;
			err = nl_route_replace(n->nl, &r);
			if (err) {
				n->route_errors++;
				log_warn("dpsync: node %s: %s", w->node, nl_last_error(n->nl));
				if (!first)
					first = err;
				continue;
			}
			log_info("dpsync: route %s via %s dev %s (node %s)", dst, via, n->uplink,
				 w->node);
		}
		/* the gateway's neighbour entry, once per route this process makes or adopts */
		if (!had_route(n, w)) {
			n->route_writes++;
			err = nl_neigh_managed(n->nl, n->uplink, via);
			if (err) {
				n->route_errors++;
				log_warn("dpsync: node %s: %s", w->node, nl_last_error(n->nl));
				if (!first)
					first = err;
			}
		}
		kept[n_kept++] = *w;
	}
	/* Ours that no node wants any more. */
	for (size_t k = 0; k < n_rt; k++) {
		bool wanted = false;
		char dst[24];
		struct nft_cidr c = { .addr = rt[k].dst, .prefix = rt[k].dst_len };

		if (rt[k].protocol != DPSYNC_RTPROT)
			continue;
		for (size_t i = 0; i < n_want && !wanted; i++)
			wanted = want[i].dst.prefix == rt[k].dst_len &&
				 want[i].dst.addr.s_addr == rt[k].dst.s_addr;
		if (wanted)
			continue;
		cidr_str(&c, dst, sizeof(dst));
		struct nl_route r = { .dst = dst, .protocol = DPSYNC_RTPROT };

		n->route_writes++;
		err = nl_route_del(n->nl, &r);
		if (err && err != -ESRCH) {
			n->route_errors++;
			log_warn("dpsync: %s", nl_last_error(n->nl));
			if (!first)
				first = err;
			continue;
		}
		log_info("dpsync: route %s removed (its node is gone)", dst);
		if (rt[k].gw.s_addr) {
			char via[INET_ADDRSTRLEN];

			inet_ntop(AF_INET, &rt[k].gw, via, sizeof(via));
			err = nl_neigh_del(n->nl, n->uplink, via);
			if (err && err != -ENOENT && err != -ESRCH)
				log_warn("dpsync: %s", nl_last_error(n->nl));
		}
	}
	free(rt);
	free(n->routes);
	n->routes = kept;
	n->n_routes = n_kept;
	return first;
}
