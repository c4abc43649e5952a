// SPDX-License-Identifier: Apache-2.0
/*
 * Links: veth pairs (the peer can be created straight inside another namespace, so it never
 * appears in this one), deletion, moving to a namespace, MTU, up/down, and reading a link.
 * Requests name links by IFLA_IFNAME, so the kernel resolves them atomically.
 */
#include "nl_int.h"

#include <errno.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <stdio.h>
#include <string.h>

static int nl_check_name(struct nl_conn *nl, const char *what, const char *name)
{
	if (!name || !*name || strlen(name) >= IFNAMSIZ) {
		nl_set_err(nl, "%s \"%s\": name must be 1..%d characters", what, name ? name : "",
			   IFNAMSIZ - 1);
		return -EINVAL;
	}
	return 0;
}

int nl_veth_create(struct nl_conn *nl, const char *name, const char *peer, int peer_netns_fd)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[96];
	int err;
	if ((err = nl_check_name(nl, "veth", name)) || (err = nl_check_name(nl, "veth peer", peer)))
		return err;
	struct nlmsghdr *nlh = nl_req(nl, buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	struct nlattr *linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	struct nlattr *p = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	struct ifinfomsg *pifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifm));
	pifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
	if (peer_netns_fd >= 0)
		mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)peer_netns_fd);
	mnl_attr_nest_end(nlh, p);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, linkinfo);
	snprintf(what, sizeof(what), "create veth %s (peer %s)", name, peer);
	return nl_talk(nl, nlh, NULL, NULL, what);
}

/* RTM_NEWLINK on an existing link, addressed by name, with one change. */
static struct nlmsghdr *nl_link_msg(struct nl_conn *nl, char *buf, uint16_t type, const char *name)
{
	struct nlmsghdr *nlh = nl_req(nl, buf, type, 0);
	struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	return nlh;
}

int nl_link_delete(struct nl_conn *nl, const char *name)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[64];
	int err = nl_check_name(nl, "link", name);
	if (err)
		return err;
	snprintf(what, sizeof(what), "delete link %s", name);
	return nl_talk(nl, nl_link_msg(nl, buf, RTM_DELLINK, name), NULL, NULL, what);
}

int nl_link_set_netns(struct nl_conn *nl, const char *name, int netns_fd)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[64];
	int err = nl_check_name(nl, "link", name);
	if (err)
		return err;
	if (netns_fd < 0) {
		nl_set_err(nl, "move link %s: no namespace fd", name);
		return -EBADF;
	}
	struct nlmsghdr *nlh = nl_link_msg(nl, buf, RTM_NEWLINK, name);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)netns_fd);
	snprintf(what, sizeof(what), "move link %s to another namespace", name);
	return nl_talk(nl, nlh, NULL, NULL, what);
}

int nl_link_set_up(struct nl_conn *nl, const char *name, bool up)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[64];
	int err = nl_check_name(nl, "link", name);
	if (err)
		return err;
	struct nlmsghdr *nlh = nl_link_msg(nl, buf, RTM_NEWLINK, name);
	struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
	ifm->ifi_change = IFF_UP;
	ifm->ifi_flags = up ? IFF_UP : 0;
	snprintf(what, sizeof(what), "set link %s %s", name, up ? "up" : "down");
	return nl_talk(nl, nlh, NULL, NULL, what);
}

int nl_link_set_mtu(struct nl_conn *nl, const char *name, uint32_t mtu)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[64];
	int err = nl_check_name(nl, "link", name);
	if (err)
		return err;
	struct nlmsghdr *nlh = nl_link_msg(nl, buf, RTM_NEWLINK, name);
	mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	snprintf(what, sizeof(what), "set link %s mtu %u", name, mtu);
	return nl_talk(nl, nlh, NULL, NULL, what);
}

static int nl_linkinfo_cb(const struct nlattr *attr, void *data)
{
	struct nl_link_info *out = data;
	if (mnl_attr_get_type(attr) == IFLA_INFO_KIND &&
	    mnl_attr_validate(attr, MNL_TYPE_STRING) == 0)
		snprintf(out->kind, sizeof(out->kind), "%.*s", (int)mnl_attr_get_payload_len(attr),
			 (const char *)mnl_attr_get_payload(attr));
	return MNL_CB_OK;
}

static int nl_link_attr_cb(const struct nlattr *attr, void *data)
{
	struct nl_link_info *out = data;
	switch (mnl_attr_get_type(attr)) {
	case IFLA_MTU:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0)
			out->mtu = mnl_attr_get_u32(attr);
		break;
	case IFLA_ADDRESS:
		if (mnl_attr_get_payload_len(attr) == 6)
			memcpy(out->mac, mnl_attr_get_payload(attr), 6);
		break;
	case IFLA_LINKINFO:
		if (mnl_attr_validate(attr, MNL_TYPE_NESTED) == 0)
			return mnl_attr_parse_nested(attr, nl_linkinfo_cb, out) < 0 ? MNL_CB_ERROR
										    : MNL_CB_OK;
		break;
	}
	return MNL_CB_OK;
}

static int nl_link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nl_link_info *out = data;
	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
	out->ifindex = ifm->ifi_index;
	out->up = ifm->ifi_flags & IFF_UP;
	out->running = ifm->ifi_flags & IFF_RUNNING;
	return mnl_attr_parse(nlh, sizeof(*ifm), nl_link_attr_cb, out) < 0 ? MNL_CB_ERROR
									   : MNL_CB_OK;
}

int nl_link_get(struct nl_conn *nl, const char *name, struct nl_link_info *out)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[64];
	int err = nl_check_name(nl, "link", name);
	if (err)
		return err;
	memset(out, 0, sizeof(*out));
	snprintf(what, sizeof(what), "get link %s", name);
	err = nl_talk(nl, nl_link_msg(nl, buf, RTM_GETLINK, name), nl_link_cb, out, what);
	if (!err && out->ifindex == 0) {
		nl_set_err(nl, "%s: no reply", what);
		err = -ENODEV;
	}
	return err;
}
