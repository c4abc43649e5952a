// SPDX-License-Identifier: Apache-2.0
/*
 * The rtnetlink connection: one NETLINK_ROUTE socket with extended ACKs, and the exchange
 * every request uses: send one message asking for an ACK, read until that ACK, turn an error
 * into a message naming the request and carrying the kernel's own explanation.
 */
#include "nl_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct nl_conn *nl_open(void)
{
	struct nl_conn *nl = calloc(1, sizeof(*nl));
	int one = 1, err;
	if (!nl)
		return NULL;
	nl->sock = mnl_socket_open(NETLINK_ROUTE);
	if (!nl->sock)
		goto fail;
	if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0)
		goto fail;
	/* extended ACKs are best effort: without them errors lack the kernel's message */
	bool ext = mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof(one)) == 0;
	bool cap = mnl_socket_setsockopt(nl->sock, NETLINK_CAP_ACK, &one, sizeof(one)) == 0;
	if (!ext || !cap)
		snprintf(nl->err, sizeof(nl->err), "no extended ACKs from this kernel");
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (uint32_t)time(NULL);
	return nl;
fail:
	err = errno;
	nl_close(nl);
	errno = err;
	return NULL;
}

void nl_close(struct nl_conn *nl)
{
	if (!nl)
		return;
	if (nl->sock)
		mnl_socket_close(nl->sock);
	free(nl);
}

const char *nl_last_error(const struct nl_conn *nl)
{
	return nl->err;
}

void nl_set_err(struct nl_conn *nl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(nl->err, sizeof(nl->err), fmt, ap);
	va_end(ap);
}

struct nlmsghdr *nl_req(struct nl_conn *nl, char *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++nl->seq;
	return nlh;
}

const char *nl_extack_msg(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return NULL;
	size_t off = sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(e->msg);
	size_t plen = mnl_nlmsg_get_payload_len(nlh);
	if (off >= plen)
		return NULL;
	const struct nlattr *attr = (const struct nlattr *)((const char *)e + off);
	int left = (int)(plen - off);
	for (; mnl_attr_ok(attr, left); attr = mnl_attr_next(attr)) {
		left -= (int)MNL_ALIGN(attr->nla_len);
		if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
			return mnl_attr_get_str(attr);
	}
	return NULL;
}

int nl_talk(struct nl_conn *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data, const char *what)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = nlh->nlmsg_seq;

	nl->err[0] = '\0';
	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0) {
		int err = -errno;
		nl_set_err(nl, "%s: sending: %s", what, strerror(errno));
		return err;
	}
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int err = -errno;
			nl_set_err(nl, "%s: reading the reply: %s", what, strerror(errno));
			return err;
		}
		const struct nlmsghdr *r = (const struct nlmsghdr *)buf;
		int len = (int)n;
		for (; mnl_nlmsg_ok(r, len); r = mnl_nlmsg_next(r, &len)) {
			if (r->nlmsg_seq != seq || r->nlmsg_pid != nl->portid)
				continue;
			if (r->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(r);
				if (e->error == 0)
					return 0;
				const char *ext = nl_extack_msg(r);
				nl_set_err(nl, "%s: %s%s%s%s", what, strerror(-e->error),
					   ext ? " (kernel: " : "", ext ? ext : "", ext ? ")" : "");
				return e->error;
			}
			if (r->nlmsg_type == NLMSG_DONE)
				return 0;
			if (cb && cb(r, data) < 0) {
				nl_set_err(nl, "%s: malformed reply", what);
				return -EBADMSG;
			}
		}
	}
}

int nl_ifindex(struct nl_conn *nl, const char *name)
{
	if (!name || !*name || strlen(name) >= IFNAMSIZ) {
		nl_set_err(nl, "link \"%s\": name must be 1..%d characters", name ? name : "",
			   IFNAMSIZ - 1);
		return -EINVAL;
	}
	unsigned idx = if_nametoindex(name);
	if (!idx) {
		nl_set_err(nl, "link %s: no such link in this namespace", name);
		return -ENODEV;
	}
	return (int)idx;
}

int nl_parse_cidr(struct nl_conn *nl, const char *what, const char *s, struct in_addr *a,
		  uint8_t *prefix, bool need_prefix)
{
	char buf[INET_ADDRSTRLEN + 4];
	if (!s || strlen(s) >= sizeof(buf)) {
		nl_set_err(nl, "%s \"%s\": not an IPv4 address", what, s ? s : "");
		return -EINVAL;
	}
	strcpy(buf, s);
	char *slash = strchr(buf, '/');
	unsigned long p = 32;
	if (slash) {
		char *end;
		*slash = '\0';
		p = strtoul(slash + 1, &end, 10);
		if (end == slash + 1 || *end || p > 32) {
			nl_set_err(nl, "%s %s: prefix length must be 0..32", what, s);
			return -EINVAL;
		}
	} else if (need_prefix) {
		nl_set_err(nl, "%s %s: a prefix length (/N) is required", what, s);
		return -EINVAL;
	}
	if (inet_pton(AF_INET, buf, a) != 1) {
		nl_set_err(nl, "%s %s: not an IPv4 address", what, s);
		return -EINVAL;
	}
	*prefix = (uint8_t)p;
	return 0;
}
