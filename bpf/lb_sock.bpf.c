// SPDX-License-Identifier: GPL-2.0
/*
 * Socket-level service load balancing (cgroup sock_addr hooks): connect4 and sendmsg4 turn a
 * ClusterIP:port into a backend before a packet exists, so a TCP flow costs nothing per
 * packet and UDP costs one lookup per message; recvmsg4 and getpeername4 turn the backend
 * back into the frontend, so the application sees the address it asked for. A Service
 * without a serving endpoint fails connect() (EPERM) rather than timing out.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/ct.h"
#include "lib/maglev.h"
#include "lib/lb.h"

char LICENSE[] SEC("license") = "GPL";

#define SYS_REJECT 0
#define SYS_PROCEED 1

static __always_inline int sock_xlate(struct bpf_sock_addr *ctx)
{
	struct shoal_svc_key_v4 sk = {
		.addr = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
		.proto = (__u8)ctx->protocol,
	};
	struct shoal_sock_key_v4 rk = {};
	struct shoal_sock_v4 rv = {};
	struct shoal_backend_v4 *be;
	struct shoal_svc_v4 *svc;
	struct pkt_v4 p = {};
	__u64 cookie;
	__u32 id;

	if (sk.proto != IPPROTO_TCP && sk.proto != IPPROTO_UDP)
		return SYS_PROCEED;
	svc = bpf_map_lookup_elem(&shoal_svc_v4, &sk);
	if (!svc)
		return SYS_PROCEED;
	/* A pod's network namespace is its client identity (session affinity). */
	cookie = bpf_get_netns_cookie(ctx);
	p.saddr = (__u32)cookie ^ (__u32)(cookie >> 32);
	p.daddr = sk.addr;
	p.dport = sk.port;
	p.proto = sk.proto;
	count(&shoal_svc_stats, svc->id, 0);
	id = lb_select(svc, &p, false);
	be = lb_backend(id);
	if (!be) {
		count_reason(DR_NO_BACKEND, 0);
		return SYS_REJECT;
	}
	lb_affinity_note(svc, &p, id, dp_now());
	count(&shoal_be_stats, id, 0);

	rk.cookie = bpf_get_socket_cookie(ctx);
	rk.addr = be->addr;
	rk.port = be->port;
	rv.addr = sk.addr;
	rv.port = sk.port;
	bpf_map_update_elem(&shoal_sk_v4, &rk, &rv, BPF_ANY);
	ctx->user_ip4 = be->addr;
	ctx->user_port = be->port;
	return SYS_PROCEED;
}

static __always_inline int sock_revert(struct bpf_sock_addr *ctx)
{
	struct shoal_sock_key_v4 rk = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
	};
	struct shoal_sock_v4 *rv = bpf_map_lookup_elem(&shoal_sk_v4, &rk);

	if (rv) {
		ctx->user_ip4 = rv->addr;
		ctx->user_port = rv->port;
	}
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int lb_connect4(struct bpf_sock_addr *ctx)
{
	return sock_xlate(ctx);
}

SEC("cgroup/sendmsg4")
int lb_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_xlate(ctx);
}

SEC("cgroup/recvmsg4")
int lb_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_revert(ctx);
}

SEC("cgroup/getpeername4")
int lb_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock_revert(ctx);
}
