// SPDX-License-Identifier: Apache-2.0
/*
 * IPv4 addresses and neighbour (ARP) entries on links. Input is validated here, where it
 * enters, so that "no prefix" or "prefix 33" is reported as such rather than as a kernel
 * EINVAL; everything else (a duplicate address, a missing link) is the kernel's answer.
 */
#include "nl_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>

static int nl_addr_req(struct nl_conn *nl, uint16_t type, uint16_t flags, const char *ifname,
		       const char *cidr)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[96];
	struct in_addr a;
	uint8_t prefix;
	const char *verb = type == RTM_NEWADDR ? "add" : "delete";
	int err = nl_parse_cidr(nl, "address", cidr, &a, &prefix, true);
	if (err)
		return err;
	int idx = nl_ifindex(nl, ifname);
	if (idx < 0) {
		char tmp[NL_ERR_MAX];
		snprintf(tmp, sizeof(tmp), "%s address %.40s: %.400s", verb, cidr, nl->err);
		snprintf(nl->err, sizeof(nl->err), "%s", tmp);
		return idx;
	}
	struct nlmsghdr *nlh = nl_req(nl, buf, type, flags);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = prefix;
	ifa->ifa_index = (uint32_t)idx;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	mnl_attr_put(nlh, IFA_LOCAL, 4, &a);
	mnl_attr_put(nlh, IFA_ADDRESS, 4, &a);
	if (type == RTM_NEWADDR && prefix < 31) {
		uint32_t mask = prefix ? htonl(~0u << (32 - prefix)) : 0;
		struct in_addr brd = { .s_addr = a.s_addr | ~mask };
		mnl_attr_put(nlh, IFA_BROADCAST, 4, &brd);
	}
	snprintf(what, sizeof(what), "%s address %s on %s", verb, cidr, ifname);
	return nl_talk(nl, nlh, NULL, NULL, what);
}

int nl_addr_add(struct nl_conn *nl, const char *ifname, const char *cidr)
{
	return nl_addr_req(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifname, cidr);
}

int nl_addr_del(struct nl_conn *nl, const char *ifname, const char *cidr)
{
	return nl_addr_req(nl, RTM_DELADDR, 0, ifname, cidr);
}

/* state: NUD_PERMANENT, NUD_REACHABLE, or NUD_NONE for an entry the kernel resolves and
 * keeps resolved itself (managed, ext_flags NTF_EXT_MANAGED). */
static int nl_neigh_req(struct nl_conn *nl, uint16_t type, uint16_t flags, const char *dev,
			const char *ip, const uint8_t *mac, uint16_t state, uint32_t ext_flags)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[96];
	struct in_addr a;
	uint8_t prefix;
	const char *verb = type == RTM_NEWNEIGH ? "add" : "delete";
	int err = nl_parse_cidr(nl, "neighbour", ip, &a, &prefix, false);
	if (err)
		return err;
	if (prefix != 32) {
		nl_set_err(nl, "neighbour %s: a single address, not a prefix", ip);
		return -EINVAL;
	}
	int idx = nl_ifindex(nl, dev);
	if (idx < 0)
		return idx;
	struct nlmsghdr *nlh = nl_req(nl, buf, type, flags);
	struct ndmsg *nd = mnl_nlmsg_put_extra_header(nlh, sizeof(*nd));
	nd->ndm_family = AF_INET;
	nd->ndm_ifindex = idx;
	nd->ndm_state = state;
	mnl_attr_put(nlh, NDA_DST, 4, &a);
	if (mac)
		mnl_attr_put(nlh, NDA_LLADDR, 6, mac);
	if (ext_flags)
		mnl_attr_put_u32(nlh, NDA_FLAGS_EXT, ext_flags);
	snprintf(what, sizeof(what), "%s neighbour %s on %s", verb, ip, dev);
	return nl_talk(nl, nlh, NULL, NULL, what);
}

int nl_neigh_add(struct nl_conn *nl, const char *dev, const char *ip, const uint8_t mac[6],
		 bool permanent)
{
	if (!mac) {
		nl_set_err(nl, "add neighbour %s: a link-layer address is required", ip ? ip : "");
		return -EINVAL;
	}
	return nl_neigh_req(nl, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, dev, ip, mac,
			    permanent ? NUD_PERMANENT : NUD_REACHABLE, 0);
}

int nl_neigh_managed(struct nl_conn *nl, const char *dev, const char *ip)
{
	return nl_neigh_req(nl, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, dev, ip, NULL,
			    NUD_NONE, NTF_EXT_MANAGED);
}

int nl_neigh_del(struct nl_conn *nl, const char *dev, const char *ip)
{
	return nl_neigh_req(nl, RTM_DELNEIGH, 0, dev, ip, NULL, 0, 0);
}
