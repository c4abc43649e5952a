/* SPDX-License-Identifier: Apache-2.0 */
/* Internal interface of the nl_*.c files: the connection and its request/ACK exchange. */
#ifndef SHOAL_NL_INT_H
#define SHOAL_NL_INT_H

#include <libmnl/libmnl.h>
#include <netinet/in.h>

#include "nl.h"

#define NL_ERR_MAX 512

struct nl_conn {
	struct mnl_socket *sock;
	uint32_t portid, seq;
	char err[NL_ERR_MAX];
};

/* Starts a request in buf (MNL_SOCKET_BUFFER_SIZE bytes) with NLM_F_REQUEST|NLM_F_ACK|flags. */
struct nlmsghdr *nl_req(struct nl_conn *nl, char *buf, uint16_t type, uint16_t flags);
/* Sends the request and waits for its ACK; replies (for GET) go to cb. On error the message
 * names `what` and adds the kernel's extended ACK. */
int nl_talk(struct nl_conn *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data, const char *what);
void nl_set_err(struct nl_conn *nl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Interface index, or -ENODEV with a message naming the link. */
int nl_ifindex(struct nl_conn *nl, const char *name);
/* "A.B.C.D/P" (prefix required when need_prefix) -> address and prefix. */
int nl_parse_cidr(struct nl_conn *nl, const char *what, const char *s, struct in_addr *a,
		  uint8_t *prefix, bool need_prefix);

#endif
