// SPDX-License-Identifier: Apache-2.0
/*
 * rtnetlink change notifications: one NETLINK_ROUTE socket subscribed to the link and IPv4
 * route groups. It only counts what changed; the caller keeps its own state level-triggered
 * by listing again (a notification can be lost under pressure: ENOBUFS says so).
 */
#include "nl_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>

struct nl_monitor {
	struct mnl_socket *sock;
};

struct nl_monitor *nl_monitor_open(void)
{
	struct nl_monitor *m = calloc(1, sizeof(*m));
	int err;

	if (!m)
		return NULL;
	m->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!m->sock ||
	    mnl_socket_bind(m->sock, RTMGRP_LINK | RTMGRP_IPV4_ROUTE, MNL_SOCKET_AUTOPID) < 0) {
		err = errno;
		nl_monitor_close(m);
		errno = err;
		return NULL;
	}
	return m;
}

void nl_monitor_close(struct nl_monitor *m)
{
	if (!m)
		return;
	if (m->sock)
		mnl_socket_close(m->sock);
	free(m);
}

int nl_monitor_fd(const struct nl_monitor *m)
{
	return mnl_socket_get_fd(m->sock);
}

int nl_monitor_drain(struct nl_monitor *m)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int count = 0;

	for (;;) {
		ssize_t n = mnl_socket_recvfrom(m->sock, buf, sizeof(buf));
		const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
		int len = (int)n;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return count;
			return -errno;
		}
		for (; mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len)) {
			switch (h->nlmsg_type) {
			case RTM_NEWLINK:
			case RTM_DELLINK:
			case RTM_NEWROUTE:
			case RTM_DELROUTE:
				count++;
				break;
			default:
				break;
			}
		}
	}
}
