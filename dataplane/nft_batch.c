// SPDX-License-Identifier: Apache-2.0
/*
 * One nftables netlink batch: a growing buffer of messages between a batch-begin and a
 * batch-end, sent with a single sendmsg, so the kernel applies all of it or none of it.
 *
 * Every message asks for an ACK and carries a sequence number; the description of the object
 * it concerns is kept per sequence number, so a rejected batch is reported as "add chain
 * svc-x: No such file or directory" with the kernel's extended-ACK message when it gives one.
 * nfnetlink processes a batch synchronously inside sendmsg, so once it returns every ACK is
 * already queued on the socket: they are read without blocking.
 */
#include "nft_int.h"
#include "nl.h"

#include <errno.h>
#include <libnftnl/common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"

/* Room reserved for one message before its builder runs (elements are split below it). */
#define NFT_MSG_ROOM (128 * 1024)

static uint32_t nft_seq_base(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)(ts.tv_sec * 1000u + ts.tv_nsec / 1000000u) << 4;
}

int nft_batch_init(struct nft_batch *b)
{
	int one = 1;

	memset(b, 0, sizeof(*b));
	b->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!b->nl)
		return -errno;
	if (mnl_socket_bind(b->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int err = -errno;
		mnl_socket_close(b->nl);
		b->nl = NULL;
		return err;
	}
	b->portid = mnl_socket_get_portid(b->nl);
	/* Best effort: older kernels lack them and still work. */
	if (mnl_socket_setsockopt(b->nl, NETLINK_EXT_ACK, &one, sizeof(one)) < 0)
		log_debug("nft: NETLINK_EXT_ACK: %s", strerror(errno));
	if (mnl_socket_setsockopt(b->nl, NETLINK_CAP_ACK, &one, sizeof(one)) < 0)
		log_debug("nft: NETLINK_CAP_ACK: %s", strerror(errno));
	b->seq = nft_seq_base();
	b->next_set_id = 1;
	nft_batch_reset(b);
	return b->oom ? -ENOMEM : 0;
}

void nft_batch_fini(struct nft_batch *b)
{
	if (!b)
		return;
	if (b->nl)
		mnl_socket_close(b->nl);
	free(b->buf);
	free(b->rbuf);
	free(b->desc);
	free(b->names);
	memset(b, 0, sizeof(*b));
}

static bool nft_batch_reserve(struct nft_batch *b, size_t room)
{
	if (b->len + room <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256 * 1024;
	while (cap < b->len + room)
		cap *= 2;
	char *nb = realloc(b->buf, cap);
	if (!nb) {
		b->oom = true;
		return false;
	}
	b->buf = nb;
	b->cap = cap;
	return true;
}

void nft_batch_hint(struct nft_batch *b, size_t bytes)
{
	if (!nft_batch_reserve(b, bytes + NFT_MSG_ROOM))
		b->oom = false; /* only a hint: growing as needed still works */
}

void nft_batch_reset(struct nft_batch *b)
{
	b->len = 0;
	b->n_msgs = 0;
	b->names_len = 0;
	b->oom = false;
	b->err[0] = '\0';
	if (!nft_batch_reserve(b, NFT_MSG_ROOM))
		return;
	b->seq0 = ++b->seq;
	struct nlmsghdr *nlh = nftnl_batch_begin(b->buf, b->seq0);
	b->len = NLMSG_ALIGN(nlh->nlmsg_len);
}

uint32_t nft_batch_set_id(struct nft_batch *b)
{
	return b->next_set_id++;
}

static bool nft_batch_desc(struct nft_batch *b, const char *fmt, va_list ap)
{
	if (b->n_msgs + 1 > b->desc_cap) {
		size_t cap = b->desc_cap ? b->desc_cap * 2 : 1024;
		uint32_t *nd = realloc(b->desc, cap * sizeof(*nd));
		if (!nd)
			return false;
		b->desc = nd;
		b->desc_cap = cap;
	}
	char tmp[NFT_ERR_MAX];
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	if (b->names_len + (size_t)n + 1 > b->names_cap) {
		size_t cap = b->names_cap ? b->names_cap * 2 : 64 * 1024;
		while (cap < b->names_len + (size_t)n + 1)
			cap *= 2;
		char *nn = realloc(b->names, cap);
		if (!nn)
			return false;
		b->names = nn;
		b->names_cap = cap;
	}
	memcpy(b->names + b->names_len, tmp, (size_t)n + 1);
	b->desc[b->n_msgs] = (uint32_t)b->names_len;
	b->names_len += (size_t)n + 1;
	return true;
}

struct nlmsghdr *nft_batch_msg(struct nft_batch *b, uint16_t type, uint16_t flags, const char *fmt,
			       ...)
{
	if (b->oom || !nft_batch_reserve(b, NFT_MSG_ROOM))
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	bool ok = nft_batch_desc(b, fmt, ap);
	va_end(ap);
	if (!ok) {
		b->oom = true;
		return NULL;
	}
	b->msg_start = b->len;
	b->n_msgs++;
	return nftnl_nlmsg_build_hdr(b->buf + b->len, type, NFPROTO_INET, flags | NLM_F_ACK,
				     b->seq0 + b->n_msgs);
}

void nft_batch_done(struct nft_batch *b, struct nlmsghdr *nlh)
{
	b->len = b->msg_start + NLMSG_ALIGN(nlh->nlmsg_len);
}

static const char *nft_batch_what(const struct nft_batch *b, uint32_t seq)
{
	if (seq <= b->seq0 || seq > b->seq0 + b->n_msgs)
		return "batch";
	return b->names + b->desc[seq - b->seq0 - 1];
}

static void nft_set_bufs(struct nft_batch *b)
{
	int snd = (int)(b->len + 64 * 1024);
	int rcv = (int)(b->n_msgs * 1024u + 256 * 1024);
	if (snd > 4 * 1024 * 1024 || b->len > 200 * 1024) {
		if (setsockopt(mnl_socket_get_fd(b->nl), SOL_SOCKET, SO_SNDBUFFORCE, &snd,
			       sizeof(snd)) < 0)
			log_debug("nft: SO_SNDBUFFORCE %d: %s", snd, strerror(errno));
	}
	if (rcv > 256 * 1024) {
		if (setsockopt(mnl_socket_get_fd(b->nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcv,
			       sizeof(rcv)) < 0)
			log_debug("nft: SO_RCVBUFFORCE %d: %s", rcv, strerror(errno));
	}
}

int nft_batch_send(struct nft_batch *b)
{
	int first_err = 0;

	b->acks = 0;
	b->sent_bytes = 0;
	b->err[0] = '\0';
	if (b->oom) {
		snprintf(b->err, sizeof(b->err), "building the batch: out of memory");
		return -ENOMEM;
	}
	if (b->n_msgs == 0)
		return 0;
	if (!nft_batch_reserve(b, NLMSG_HDRLEN + 64)) {
		snprintf(b->err, sizeof(b->err), "building the batch: out of memory");
		return -ENOMEM;
	}
	struct nlmsghdr *end = nftnl_batch_end(b->buf + b->len, b->seq0 + b->n_msgs + 1);
	size_t total = b->len + NLMSG_ALIGN(end->nlmsg_len);
	nft_set_bufs(b);

	ssize_t sent = mnl_socket_sendto(b->nl, b->buf, total);
	if (sent < 0) {
		int err = -errno;
		snprintf(b->err, sizeof(b->err), "sending a batch of %u messages (%zu bytes): %s",
			 b->n_msgs, total, strerror(errno));
		return err;
	}
	b->sent_bytes = total;

	/* ACKs come one per datagram: read them many at a time */
	enum { NVEC = 128, ABUF = 2048 };
	if (!b->rbuf && !(b->rbuf = malloc((size_t)NVEC * ABUF))) {
		snprintf(b->err, sizeof(b->err), "reading ACKs: out of memory");
		return -ENOMEM;
	}
	struct mmsghdr mm[NVEC];
	struct iovec iov[NVEC];
	for (;;) {
		for (int i = 0; i < NVEC; i++) {
			iov[i] = (struct iovec){ b->rbuf + (size_t)i * ABUF, ABUF };
			mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i],
							       .msg_iovlen = 1 } };
		}
		int got = recvmmsg(mnl_socket_get_fd(b->nl), mm, NVEC, MSG_DONTWAIT, NULL);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			int err = -errno;
			snprintf(b->err, sizeof(b->err), "reading ACKs: %s", strerror(errno));
			return err;
		}
		for (int i = 0; i < got; i++) {
			const struct nlmsghdr *nlh = iov[i].iov_base;
			int len = (int)mm[i].msg_len;
			for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
				if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_pid != b->portid)
					continue;
				if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nlmsgerr))
					continue;
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
				b->acks++;
				if (e->error == 0 || first_err)
					continue;
				first_err = e->error;
				const char *ext = nl_extack_msg(nlh);
				snprintf(b->err, sizeof(b->err), "%s: %s%s%s%s",
					 nft_batch_what(b, nlh->nlmsg_seq), strerror(-e->error),
					 ext ? " (" : "", ext ? ext : "", ext ? ")" : "");
			}
		}
		if (got < NVEC)
			break;
	}
	if (first_err)
		return first_err;
	if (b->acks < b->n_msgs) {
		snprintf(b->err, sizeof(b->err),
			 "batch of %u messages: only %u ACKs came back; the kernel's state is "
			 "unknown",
			 b->n_msgs, b->acks);
		return -ENOBUFS;
	}
	return 0;
}

int nft_put_table(struct nft_batch *b, uint16_t type, uint16_t flags, struct nftnl_table *t)
{
	struct nlmsghdr *nlh = nft_batch_msg(b, type, flags, "%s table %s",
					     type == NFT_MSG_DELTABLE ? "delete" : "add",
					     nftnl_table_get_str(t, NFTNL_TABLE_NAME));
	if (!nlh)
		return -ENOMEM;
	nftnl_table_nlmsg_build_payload(nlh, t);
	nft_batch_done(b, nlh);
	return 0;
}

static const char *nft_verb(uint16_t type)
{
	switch (type) {
	case NFT_MSG_DELCHAIN:
	case NFT_MSG_DELRULE:
	case NFT_MSG_DELSET:
	case NFT_MSG_DELSETELEM:
	case NFT_MSG_DELTABLE:
		return "delete";
	default:
		return "add";
	}
}

int nft_put_chain(struct nft_batch *b, uint16_t type, uint16_t flags, struct nftnl_chain *c)
{
	struct nlmsghdr *nlh = nft_batch_msg(b, type, flags, "%s chain %s", nft_verb(type),
					     nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
	if (!nlh)
		return -ENOMEM;
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nft_batch_done(b, nlh);
	return 0;
}

int nft_put_rule(struct nft_batch *b, uint16_t type, uint16_t flags, struct nftnl_rule *r)
{
	const char *verb = type == NFT_MSG_DELRULE
				   ? (nftnl_rule_is_set(r, NFTNL_RULE_HANDLE) ? "delete rule in"
									      : "flush chain")
				   : "add rule to chain";
	struct nlmsghdr *nlh = nft_batch_msg(b, type, flags, "%s %s", verb,
					     nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
	if (!nlh)
		return -ENOMEM;
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nft_batch_done(b, nlh);
	return 0;
}

int nft_put_set(struct nft_batch *b, uint16_t type, uint16_t flags, struct nftnl_set *s)
{
	struct nlmsghdr *nlh = nft_batch_msg(b, type, flags, "%s set %s", nft_verb(type),
					     nftnl_set_get_str(s, NFTNL_SET_NAME));
	if (!nlh)
		return -ENOMEM;
	nftnl_set_nlmsg_build_payload(nlh, s);
	nft_batch_done(b, nlh);
	return 0;
}

int nft_put_elems(struct nft_batch *b, uint16_t type, uint16_t flags, struct nftnl_set *s,
		  const char *which)
{
	struct nlmsghdr *nlh = nft_batch_msg(b, type, flags, "%s elements of %s%s%s",
					     nft_verb(type), nftnl_set_get_str(s, NFTNL_SET_NAME),
					     which ? " " : "", which ? which : "");
	if (!nlh)
		return -ENOMEM;
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	nft_batch_done(b, nlh);
	return 0;
}
