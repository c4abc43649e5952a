// SPDX-License-Identifier: Apache-2.0
/*
 * IPv4 routes: add, replace, delete; through a gateway (a pod CIDR via a node address), on a
 * link, or both with `onlink` (the gateway is reachable on the link although no address of
 * the link covers it). The destination's host bits are passed to the kernel unchanged, so a
 * wrong prefix is reported in the kernel's words.
 */
#include "nl_int.h"

#include <errno.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int nl_route_req(struct nl_conn *nl, uint16_t type, uint16_t flags, const struct nl_route *r)
{
	char buf[MNL_SOCKET_BUFFER_SIZE], what[160];
	struct in_addr dst = { 0 }, gw, src;
	uint8_t plen = 0, gplen, splen;
	int err, idx = 0;
	const char *verb = type == RTM_DELROUTE	     ? "delete"
			   : (flags & NLM_F_REPLACE) ? "replace"
						     : "add";

	if (!r || !r->dst) {
		nl_set_err(nl, "%s route: a destination is required", verb);
		return -EINVAL;
	}
	snprintf(what, sizeof(what), "%s route %s%s%s%s%s%s", verb, r->dst, r->via ? " via " : "",
		 r->via ? r->via : "", r->dev ? " dev " : "", r->dev ? r->dev : "",
		 r->onlink ? " onlink" : "");
	if (strcmp(r->dst, "default") &&
	    (err = nl_parse_cidr(nl, "route destination", r->dst, &dst, &plen, true)))
		return err;
	if (r->via) {
		if ((err = nl_parse_cidr(nl, "gateway", r->via, &gw, &gplen, false)))
			return err;
		if (gplen != 32) {
			nl_set_err(nl, "%s: gateway must be a single address", what);
			return -EINVAL;
		}
	}
	if (r->src) {
		if ((err = nl_parse_cidr(nl, "source", r->src, &src, &splen, false)))
			return err;
	}
	if (r->dev && (idx = nl_ifindex(nl, r->dev)) < 0) {
		char tmp[NL_ERR_MAX];
		snprintf(tmp, sizeof(tmp), "%.100s: %.400s", what, nl->err);
		snprintf(nl->err, sizeof(nl->err), "%s", tmp);
		return idx;
	}
	if (!r->via && !r->dev && type != RTM_DELROUTE) {
		nl_set_err(nl, "%s: needs a gateway or a link", what);
		return -EINVAL;
	}

	struct nlmsghdr *nlh = nl_req(nl, buf, type, flags);
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET;
	rtm->rtm_dst_len = plen;
	rtm->rtm_protocol = r->protocol ? r->protocol : RTPROT_STATIC;
	rtm->rtm_type = RTN_UNICAST;
	rtm->rtm_scope = r->via ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	if (type == RTM_DELROUTE)
		rtm->rtm_scope = RT_SCOPE_NOWHERE;
	rtm->rtm_flags = r->onlink ? RTNH_F_ONLINK : 0;
	uint32_t table = r->table ? r->table : RT_TABLE_MAIN;
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	if (plen)
		mnl_attr_put(nlh, RTA_DST, 4, &dst);
	if (r->via)
		mnl_attr_put(nlh, RTA_GATEWAY, 4, &gw);
	if (idx)
		mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)idx);
	if (r->metric)
		mnl_attr_put_u32(nlh, RTA_PRIORITY, r->metric);
	if (r->src)
		mnl_attr_put(nlh, RTA_PREFSRC, 4, &src);
	return nl_talk(nl, nlh, NULL, NULL, what);
}

int nl_route_add(struct nl_conn *nl, const struct nl_route *r)
{
	return nl_route_req(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, r);
}

int nl_route_replace(struct nl_conn *nl, const struct nl_route *r)
{
	return nl_route_req(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, r);
}

int nl_route_del(struct nl_conn *nl, const struct nl_route *r)
{
	return nl_route_req(nl, RTM_DELROUTE, 0, r);
}

struct route_list {
	uint32_t table;
	struct nl_route_entry *v;
	size_t n, cap;
	int err;
};

static int route_attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	if (mnl_attr_type_valid(a, RTA_MAX) < 0)
		return MNL_CB_OK;
	switch (type) {
	case RTA_DST:
	case RTA_GATEWAY:
		if (mnl_attr_get_payload_len(a) != 4)
			return MNL_CB_OK;
		break;
	case RTA_OIF:
	case RTA_TABLE:
		if (mnl_attr_validate(a, MNL_TYPE_U32) < 0)
			return MNL_CB_OK;
		break;
	default:
		break;
	}
	tb[type] = a;
	return MNL_CB_OK;
}

static int route_list_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *tb[RTA_MAX + 1] = { 0 };
	struct route_list *l = data;
	const struct rtmsg *rtm;
	struct nl_route_entry e = { 0 };

	if (nlh->nlmsg_type != RTM_NEWROUTE || mnl_nlmsg_get_payload_len(nlh) < sizeof(*rtm))
		return MNL_CB_OK;
	rtm = mnl_nlmsg_get_payload(nlh);
	if (rtm->rtm_family != AF_INET)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*rtm), route_attr_cb, tb);
	e.table = tb[RTA_TABLE] ? mnl_attr_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
	if (e.table != l->table)
		return MNL_CB_OK;
	e.dst_len = rtm->rtm_dst_len;
	e.protocol = rtm->rtm_protocol;
	e.scope = rtm->rtm_scope;
	e.type = rtm->rtm_type;
	if (tb[RTA_DST])
		memcpy(&e.dst, mnl_attr_get_payload(tb[RTA_DST]), 4);
	if (tb[RTA_GATEWAY])
		memcpy(&e.gw, mnl_attr_get_payload(tb[RTA_GATEWAY]), 4);
	if (tb[RTA_OIF])
		e.oif = (int)mnl_attr_get_u32(tb[RTA_OIF]);
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct nl_route_entry *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			l->err = -ENOMEM;
			return MNL_CB_OK;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = e;
	return MNL_CB_OK;
}

int nl_route_list(struct nl_conn *nl, uint32_t table, struct nl_route_entry **out, size_t *n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct route_list l = { .table = table ? table : RT_TABLE_MAIN };
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;
	int err;

	*out = NULL;
	*n = 0;
	nlh = nl_req(nl, buf, RTM_GETROUTE, NLM_F_DUMP);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET;
	err = nl_talk(nl, nlh, route_list_cb, &l, "list routes");
	if (!err)
		err = l.err;
	if (err) {
		free(l.v);
		return err;
	}
	*out = l.v;
	*n = l.n;
	return 0;
}
