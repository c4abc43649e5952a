// SPDX-License-Identifier: Apache-2.0
/*
 * Packet tests of the service data plane: fixture packets run through the loaded XDP and tc
 * programs with bpf_prog_test_run_opts, maps programmed through the dataplane library.
 * Checksums of every rewritten packet are checked by an independent computation
 * (tests/lib/pkt.c). The test runs in a network namespace of its own and pins its maps under
 * a per-run node name, removed at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "shoal_test.h"
#include "dp.h"
#include "pkt.h"

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define TC_ACT_REDIRECT 7

static struct dp *dp;
static char node[32];
static int fd_xdp, fd_tc_pod, fd_tc_up;

#define VIP "10.96.0.10"
#define NODE_IP "10.99.0.1"
#define CLIENT "10.0.1.2"

static int run(int prog, const uint8_t *in, size_t len, uint8_t *out, uint32_t *out_len,
	       uint32_t *ret)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (uint32_t)len,
		    .data_out = out, .data_size_out = PKT_MAX, .repeat = 1);
	int err = bpf_prog_test_run_opts(prog, &o);

	*out_len = o.data_size_out;
	*ret = o.retval;
	return err;
}

static int setup(void **state)
{
	struct dp_opts o = { 0 };

	(void)state;
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return -1;
	}
	snprintf(node, sizeof(node), "bpftest-%d", getpid());
	o.node = node;
	o.node_addr = pkt_ip(NODE_IP);
	o.zone = "zone-a";
	o.max_services = 256;
	o.max_backends = 1024;
	o.max_flows = 65536;
	o.max_maglev_services = 16;
	dp = dp_open(&o);
	if (!dp) {
		fprintf(stderr, "dp_open: %s\n", strerror(errno));
		return -1;
	}
	fd_xdp = dp_prog_fd(dp, "lb_xdp");
	fd_tc_pod = dp_prog_fd(dp, "lb_tc_pod");
	fd_tc_up = dp_prog_fd(dp, "lb_tc_uplink");
	return fd_xdp < 0 || fd_tc_pod < 0 || fd_tc_up < 0 ? -1 : 0;
}

static struct dp *dp_main, *dp_portable;

static int teardown(void **state)
{
	int err;

	(void)state;
	if (dp_portable) {
		/* A failed test left the portable data plane in place (and maybe in dp). */
		dp = dp_main ? dp_main : dp;
		if (dp_uninstall(dp_portable))
			fprintf(stderr, "uninstall of the portable data plane failed\n");
		dp_close(dp_portable);
		dp_portable = NULL;
	}
	err = dp_uninstall(dp);
	dp_close(dp);
	return err;
}

/* Empties conntrack and affinity between tests: each starts with no flows. */
static void flush_flows(void)
{
	const char *maps[] = { SHOAL_MAP_CT, SHOAL_MAP_AFFINITY };

	for (int m = 0; m < 2; m++) {
		int fd = dp_map_fd(dp, maps[m]);
		uint8_t key[64], next[64];

		while (!bpf_map_get_next_key(fd, NULL, next)) {
			memcpy(key, next, sizeof(key));
			if (bpf_map_delete_elem(fd, key))
				break;
		}
	}
}

static struct dp_backend be(const char *addr, uint16_t port, uint8_t flags)
{
	struct dp_backend b = { .addr = pkt_ip(addr), .port = port, .flags = flags, .ready = 1 };

	return b;
}

static struct dp_service svc1(const char *name, uint8_t proto, const char *vip, uint16_t port,
			      uint8_t flags)
{
	struct dp_service s = { .name = name, .proto = proto, .flags = flags, .n_frontends = 1 };

	s.frontends[0].addr = pkt_ip(vip);
	s.frontends[0].port = port;
	return s;
}

/* Sends one packet of a flow through a program and returns the chosen backend address. */
static uint32_t flow_backend(int prog, const char *client, uint16_t sport, const char *dst,
			     uint16_t dport, uint8_t proto)
{
	struct pkt_spec s = { .proto = proto, .saddr = client, .daddr = dst, .sport = sport,
			      .dport = dport, .tcp_flags = 0x02, .seq = 1000, .payload = 0 };
	uint8_t in[PKT_MAX], out[PKT_MAX];
	uint32_t out_len, ret;
	size_t len = pkt_build(in, &s);

	assert_int_equal(run(prog, in, len, out, &out_len, &ret), 0);
	return pkt_daddr(out);
}

/* ---- DNAT with checksums -------------------------------------------------------------- */

struct dnat_case {
	const char *desc;
	uint8_t proto;
	uint16_t dport; /* frontend port */
	size_t payload;
	bool udp_no_csum;
	const char *backend;
	uint16_t be_port;
};

static const struct dnat_case dnat_cases[] = {
	{ "tcp syn, no payload", IPPROTO_TCP, 80, 0, false, "10.1.1.2", 8080 },
	{ "tcp, odd payload", IPPROTO_TCP, 80, 33, false, "10.1.1.2", 8080 },
	{ "tcp, 1400 bytes", IPPROTO_TCP, 80, 1400, false, "10.1.1.2", 8080 },
	{ "udp", IPPROTO_UDP, 53, 20, false, "10.1.2.3", 5353 },
	{ "udp, odd payload", IPPROTO_UDP, 53, 7, false, "10.1.2.3", 5353 },
	{ "udp without checksum", IPPROTO_UDP, 53, 12, true, "10.1.2.3", 5353 },
};

/*
 * An XDP reply sent back out (XDP_TX) goes to the neighbour its flow's first frame came from
 * (fwd's source), from the address that frame came to (fwd's destination), its TTL one less.
 */
static void check_reply_l2(const uint8_t *fwd, const uint8_t *rin, const uint8_t *rout)
{
	assert_memory_equal(rout, fwd + 6, 6);
	assert_memory_equal(rout + 6, fwd, 6);
	assert_int_equal(rout[14 + 8], rin[14 + 8] - 1);
}

static void check_dnat(int prog, uint32_t want_ret, uint32_t want_reply_ret, const char *which)
{
	struct dp_backend btcp = be("10.1.1.2", 8080, BE_F_LOCAL), budp = be("10.1.2.3", 5353, BE_F_LOCAL);
	struct dp_service st = svc1("default/web:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	struct dp_service su = svc1("default/dns:53/udp", IPPROTO_UDP, VIP, 53, 0);

	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &st, &btcp, 1), 0);
	assert_int_equal(dp_service_upsert(dp, &su, &budp, 1), 0);
	for (size_t i = 0; i < sizeof(dnat_cases) / sizeof(dnat_cases[0]); i++) {
		const struct dnat_case *c = &dnat_cases[i];
		struct pkt_spec s = { .proto = c->proto, .saddr = CLIENT, .daddr = VIP,
				      .sport = (uint16_t)(40000 + i), .dport = c->dport,
				      .tcp_flags = 0x02, .seq = 7, .payload = c->payload,
				      .udp_no_csum = c->udp_no_csum };
		uint8_t in[PKT_MAX], out[PKT_MAX], rin[PKT_MAX], rout[PKT_MAX];
		uint32_t out_len, ret;
		size_t len = pkt_build(in, &s), rlen;
		const char *bad;

		assert_int_equal(run(prog, in, len, out, &out_len, &ret), 0);
		printf("# %s %s: ret %u len %u\n", which, c->desc, ret, out_len);
		assert_int_equal(ret, want_ret);
		assert_int_equal(out_len, len);
		assert_int_equal(pkt_daddr(out), pkt_ip(c->backend));
		assert_int_equal(pkt_dport(out), c->be_port);
		assert_int_equal(pkt_saddr(out), pkt_ip(CLIENT));
		assert_int_equal(pkt_sport(out), 40000 + i);
		bad = pkt_check_csums(out, out_len);
		if (bad)
			fail_msg("%s %s: %s", which, c->desc, bad);
		if (c->udp_no_csum)
			assert_int_equal(out[14 + 20 + 6] | out[14 + 20 + 7], 0);
		/* Payload untouched. */
		assert_memory_equal(out + 54 - (c->proto == IPPROTO_UDP ? 12 : 0),
				    in + 54 - (c->proto == IPPROTO_UDP ? 12 : 0), c->payload);

		/* The backend's reply comes back with the frontend as its source. */
		s.saddr = c->backend;
		s.sport = c->be_port;
		s.daddr = CLIENT;
		s.dport = (uint16_t)(40000 + i);
		s.tcp_flags = 0x12;
		rlen = pkt_build(rin, &s);
		assert_int_equal(run(prog, rin, rlen, rout, &out_len, &ret), 0);
		assert_int_equal(ret, want_reply_ret);
		if (ret == XDP_TX)
			check_reply_l2(in, rin, rout);
		assert_int_equal(pkt_saddr(rout), pkt_ip(VIP));
		assert_int_equal(pkt_sport(rout), c->dport);
		assert_int_equal(pkt_daddr(rout), pkt_ip(CLIENT));
		assert_int_equal(pkt_dport(rout), 40000 + i);
		bad = pkt_check_csums(rout, out_len);
		if (bad)
			fail_msg("%s %s reply: %s", which, c->desc, bad);
	}
	assert_int_equal(dp_service_delete(dp, "default/web:80/tcp"), 0);
	assert_int_equal(dp_service_delete(dp, "default/dns:53/udp"), 0);
}

static void test_bpf_tc_dnat_and_reverse_nat(void **state)
{
	(void)state;
	/* The reply goes back out where the flow came in: redirected. */
	check_dnat(fd_tc_pod, TC_ACT_OK, TC_ACT_REDIRECT, "tc");
}

static void test_bpf_xdp_dnat_and_reverse_nat(void **state)
{
	(void)state;
	/*
	 * The forward packet is passed up (to the local backend); the reply goes straight back
	 * out where the flow came in, to the neighbour it came from (no FIB lookup).
	 */
	check_dnat(fd_xdp, XDP_PASS, XDP_TX, "xdp");
}

/*
 * The tc programs that call no kfunc, which a kernel without bpf_cast_to_kern_ctx (Linux 6.1)
 * gets: the same fixtures through a second data plane opened with no_kfuncs.
 */

static void test_bpf_tc_portable_dnat_and_reverse_nat(void **state)
{
	struct dp_opts o = { .node_addr = pkt_ip(NODE_IP), .zone = "zone-a", .max_services = 256,
			     .max_backends = 1024, .max_flows = 65536, .max_maglev_services = 16,
			     .no_kfuncs = true };
	struct bpf_prog_info info = { 0 };
	uint32_t il = sizeof(info);
	char pnode[64];
	int fd;

	(void)state;
	snprintf(pnode, sizeof(pnode), "bpftest-%d-p", getpid());
	o.node = pnode;
	dp_portable = dp_open(&o);
	assert_non_null(dp_portable);
	fd = dp_prog_fd(dp_portable, "lb_tc_pod");
	assert_true(fd >= 0);
	assert_int_equal(bpf_obj_get_info_by_fd(fd, &info, &il), 0);
	assert_string_equal(info.name, "lb_tc_pod");
	dp_main = dp;
	dp = dp_portable;
	check_dnat(fd, TC_ACT_OK, TC_ACT_REDIRECT, "tc portable");
	dp = dp_main;
	assert_int_equal(dp_uninstall(dp_portable), 0);
	dp_close(dp_portable);
	dp_portable = NULL;
}

/*
 * A reply is sent back by the Ethernet addresses of its flow's first frame only where XDP
 * saw that frame as unicast to this node; a flow that tc made (the uplink without XDP) or
 * whose first frame was broadcast is routed instead (here: no route, passed to the stack),
 * and still translated back.
 */
static void test_bpf_xdp_reply_routed_without_first_frame_l2(void **state)
{
	struct dp_backend b = be("10.1.1.2", 8080, BE_F_LOCAL);
	struct dp_service sv = svc1("default/web:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	static const struct {
		const char *desc;
		bool by_tc, broadcast;
	} cases[] = { { "first packet through tc", true, false },
		      { "first frame broadcast", false, true } };

	(void)state;
	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &sv, &b, 1), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pkt_spec s = { .proto = IPPROTO_TCP, .saddr = CLIENT, .daddr = VIP,
				      .sport = (uint16_t)(41000 + i), .dport = 80,
				      .tcp_flags = 0x02, .payload = 8 };
		uint8_t in[PKT_MAX], out[PKT_MAX], rin[PKT_MAX], rout[PKT_MAX];
		uint32_t out_len, ret;
		size_t len = pkt_build(in, &s), rlen;

		if (cases[i].broadcast)
			memset(in, 0xff, 6);
		assert_int_equal(run(cases[i].by_tc ? fd_tc_up : fd_xdp, in, len, out, &out_len,
				     &ret),
				 0);
		assert_int_equal(pkt_daddr(out), b.addr);
		s.saddr = "10.1.1.2";
		s.sport = 8080;
		s.daddr = CLIENT;
		s.dport = (uint16_t)(41000 + i);
		s.tcp_flags = 0x12;
		rlen = pkt_build(rin, &s);
		assert_int_equal(run(fd_xdp, rin, rlen, rout, &out_len, &ret), 0);
		printf("# %s: reply ret %u\n", cases[i].desc, ret);
		assert_int_equal(ret, XDP_PASS);
		assert_memory_equal(rout, rin, 12); /* Ethernet addresses as they came */
		assert_int_equal(rout[14 + 8], rin[14 + 8]);
		assert_int_equal(pkt_saddr(rout), pkt_ip(VIP));
		assert_int_equal(pkt_sport(rout), 80);
		if (pkt_check_csums(rout, out_len))
			fail_msg("%s: %s", cases[i].desc, pkt_check_csums(rout, out_len));
	}
	assert_int_equal(dp_service_delete(dp, sv.name), 0);
}

static void test_bpf_non_service_passes_unchanged(void **state)
{
	struct pkt_spec s = { .proto = IPPROTO_TCP, .saddr = CLIENT, .daddr = "10.96.0.99",
			      .sport = 1234, .dport = 80, .tcp_flags = 0x02, .payload = 10 };
	uint8_t in[PKT_MAX], out[PKT_MAX];
	uint32_t out_len, ret;
	size_t len = pkt_build(in, &s);

	(void)state;
	assert_int_equal(run(fd_tc_pod, in, len, out, &out_len, &ret), 0);
	assert_int_equal(ret, TC_ACT_OK);
	assert_memory_equal(in, out, len);
	assert_int_equal(run(fd_xdp, in, len, out, &out_len, &ret), 0);
	assert_int_equal(ret, XDP_PASS);
	assert_memory_equal(in, out, len);
}

/*
 * Hairpin: a pod whose flow to its Service lands on itself is SNATed to the hairpin address
 * and sent straight back into the pod; its answer comes back as from the frontend.
 */
static void test_bpf_tc_hairpin_to_self(void **state)
{
	struct dp_backend b = be(CLIENT, 8080, BE_F_LOCAL);
	struct dp_service s = svc1("default/self:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	struct pkt_spec ps = { .proto = IPPROTO_TCP, .saddr = CLIENT, .daddr = VIP, .sport = 41000,
			       .dport = 80, .tcp_flags = 0x02, .seq = 5, .payload = 10 };
	uint8_t in[PKT_MAX], out[PKT_MAX], rin[PKT_MAX], rout[PKT_MAX];
	uint32_t out_len, ret;
	size_t len = pkt_build(in, &ps);
	uint16_t snat_port;
	char hp[16];
	const char *bad;

	(void)state;
	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &s, &b, 1), 0);
	assert_int_equal(run(fd_tc_pod, in, len, out, &out_len, &ret), 0);
	assert_int_equal(ret, TC_ACT_REDIRECT); /* back out of the interface it came in on */
	assert_int_equal(pkt_daddr(out), pkt_ip(CLIENT));
	assert_int_equal(pkt_dport(out), 8080);
	assert_int_equal(pkt_saddr(out), pkt_ip(DP_HAIRPIN_DEFAULT));
	snat_port = pkt_sport(out);
	assert_true(snat_port >= 61000);
	bad = pkt_check_csums(out, out_len);
	if (bad)
		fail_msg("hairpin: %s", bad);
	/* The pod answers the hairpin address; it gets the answer from the VIP. */
	snprintf(hp, sizeof(hp), "%s", DP_HAIRPIN_DEFAULT);
	ps = (struct pkt_spec){ .proto = IPPROTO_TCP, .saddr = CLIENT, .daddr = hp,
				.sport = 8080, .dport = snat_port, .tcp_flags = 0x12, .seq = 9 };
	len = pkt_build(rin, &ps);
	assert_int_equal(run(fd_tc_pod, rin, len, rout, &out_len, &ret), 0);
	assert_int_equal(ret, TC_ACT_REDIRECT);
	assert_int_equal(pkt_saddr(rout), pkt_ip(VIP));
	assert_int_equal(pkt_sport(rout), 80);
	assert_int_equal(pkt_daddr(rout), pkt_ip(CLIENT));
	assert_int_equal(pkt_dport(rout), 41000);
	bad = pkt_check_csums(rout, out_len);
	if (bad)
		fail_msg("hairpin reply: %s", bad);
	/* The flow's next packet takes the same way. */
	ps = (struct pkt_spec){ .proto = IPPROTO_TCP, .saddr = CLIENT, .daddr = VIP,
				.sport = 41000, .dport = 80, .tcp_flags = 0x10, .seq = 6 };
	len = pkt_build(in, &ps);
	assert_int_equal(run(fd_tc_pod, in, len, out, &out_len, &ret), 0);
	assert_int_equal(ret, TC_ACT_REDIRECT);
	assert_int_equal(pkt_saddr(out), pkt_ip(DP_HAIRPIN_DEFAULT));
	assert_int_equal(pkt_sport(out), snat_port);
	/* Another client of the same backend is not hairpin: no SNAT. */
	assert_int_equal(flow_backend(fd_tc_pod, "10.0.1.3", 41001, VIP, 80, IPPROTO_TCP),
			 pkt_ip(CLIENT));
	assert_int_equal(dp_service_delete(dp, s.name), 0);
}

/* ---- conntrack, Maglev, affinity, policies -------------------------------------------- */

static void make_backends(struct dp_backend *b, size_t n, uint8_t flags)
{
	char ip[32];

	for (size_t i = 0; i < n; i++) {
		snprintf(ip, sizeof(ip), "10.1.%zu.%zu", i / 200 + 10, i % 200 + 2);
		b[i] = be(ip, 8080, flags);
	}
}

static void test_bpf_ct_keeps_flow_across_backend_change(void **state)
{
	struct dp_service s = svc1("default/ct:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	struct dp_backend b[8], nb[8];
	uint32_t first[32];
	size_t n_nb = 0;
	int moved = 0;

	(void)state;
	flush_flows();
	make_backends(b, 8, BE_F_LOCAL);
	assert_int_equal(dp_service_upsert(dp, &s, b, 4), 0);
	for (int f = 0; f < 32; f++)
		first[f] = flow_backend(fd_tc_pod, CLIENT, (uint16_t)(20000 + f), VIP, 80,
					IPPROTO_TCP);
	/* Add four backends and drop one that flow 0 does not use: every flow stays. */
	for (int i = 0, dropped = 0; i < 8; i++) {
		if (!dropped && i < 4 && b[i].addr != first[0]) {
			dropped = 1;
			continue;
		}
		nb[n_nb++] = b[i];
	}
	assert_int_equal(n_nb, 7);
	assert_int_equal(dp_service_upsert(dp, &s, nb, n_nb), 0);
	for (int f = 0; f < 32; f++) {
		uint32_t now = flow_backend(fd_tc_pod, CLIENT, (uint16_t)(20000 + f), VIP, 80,
					    IPPROTO_TCP);
		bool first_alive = false;

		for (size_t i = 0; i < n_nb; i++)
			first_alive |= nb[i].addr == first[f];
		if (first_alive)
			assert_int_equal(now, first[f]);
		else
			moved++;
	}
	/* A backend marked not ready keeps its flows; one that is gone loses them. */
	nb[0].ready = 0;
	for (size_t i = 1; i < n_nb; i++)
		if (nb[i].addr == first[0]) {
			struct dp_backend t = nb[0];

			nb[0] = nb[i];
			nb[i] = t;
			nb[0].ready = 0;
			nb[i].ready = 1;
		}
	assert_int_equal(dp_service_upsert(dp, &s, nb, n_nb), 0);
	assert_int_equal(flow_backend(fd_tc_pod, CLIENT, 20000, VIP, 80, IPPROTO_TCP), first[0]);
	for (int f = 100; f < 140; f++)
		assert_int_not_equal(flow_backend(fd_tc_pod, CLIENT, (uint16_t)(20000 + f), VIP,
						  80, IPPROTO_TCP),
				     first[0]);
	assert_int_equal(dp_service_upsert(dp, &s, nb + 1, n_nb - 1), 0);
	assert_int_not_equal(flow_backend(fd_tc_pod, CLIENT, 20000, VIP, 80, IPPROTO_TCP),
			     first[0]);
	printf("# conntrack: flows whose backend was removed and re-chosen: %d of 32\n", moved);
	assert_int_equal(dp_service_delete(dp, s.name), 0);
}

static void test_bpf_maglev_table_stability(void **state)
{
	enum { N = 10, M = 16381 };
	static uint32_t t1[M], t2[M];
	uint64_t keys[N];
	size_t count[N] = { 0 }, moved = 0, kept_pos = 0;

	(void)state;
	for (int i = 0; i < N; i++)
		keys[i] = 0x0a010000ULL + (uint64_t)i * 977;
	assert_int_equal(dp_maglev_build(keys, NULL, N, t1, M), 0);
	for (int i = 0; i < M; i++)
		count[t1[i]]++;
	for (int i = 0; i < N; i++) {
		/* Maglev's balance: every backend within 2% of M/N. */
		assert_true(count[i] > M / N * 98 / 100 && count[i] < M / N * 102 / 100 + 1);
	}
	/* Remove backend 3: positions that held another backend should rarely change. */
	assert_int_equal(dp_maglev_build(keys + 1, NULL, N - 1, t2, M), 0);
	for (int i = 0; i < M; i++) {
		uint32_t before = t1[i], after = t2[i] + 1; /* keys shifted by one */

		if (before == 0)
			continue;
		kept_pos++;
		if (before != after)
			moved++;
	}
	printf("# maglev table: removing 1 of %d moved %zu of %zu other slots (%.2f%%)\n", N,
	       moved, kept_pos, 100.0 * moved / kept_pos);
	assert_true(moved * 100 < kept_pos * 3);
	/* Weights: weight 2 gets about twice the slots. */
	{
		uint16_t w[3] = { 1, 2, 1 };
		size_t c[3] = { 0 };

		assert_int_equal(dp_maglev_build(keys, w, 3, t1, M), 0);
		for (int i = 0; i < M; i++)
			c[t1[i]]++;
		assert_true(c[1] > c[0] * 18 / 10 && c[1] < c[0] * 22 / 10);
	}
	assert_int_equal(dp_maglev_build(keys, NULL, N, t1, 16380), -EINVAL); /* not prime */
}

static void test_bpf_maglev_flows_move_by_one_nth(void **state)
{
	enum { N = 10, FLOWS = 2000 };
	struct dp_service s = svc1("default/np:30080/tcp", IPPROTO_TCP, NODE_IP, 30080,
				   SVC_F_NODEPORT | SVC_F_MAGLEV);
	struct dp_backend b[N];
	static uint32_t first[FLOWS];
	int moved = 0, on_removed = 0;
	char ip[32];

	(void)state;
	flush_flows();
	make_backends(b, N, BE_F_LOCAL);
	assert_int_equal(dp_service_upsert(dp, &s, b, N), 0);
	for (int f = 0; f < FLOWS; f++) {
		snprintf(ip, sizeof(ip), "172.16.%d.%d", f / 250, f % 250 + 1);
		first[f] = flow_backend(fd_xdp, ip, (uint16_t)(1024 + f), NODE_IP, 30080,
					IPPROTO_TCP);
	}
	/* Same tuples, no conntrack: Maglev alone must give the same answer. */
	flush_flows();
	for (int f = 0; f < FLOWS; f += 7) {
		snprintf(ip, sizeof(ip), "172.16.%d.%d", f / 250, f % 250 + 1);
		assert_int_equal(flow_backend(fd_xdp, ip, (uint16_t)(1024 + f), NODE_IP, 30080,
					      IPPROTO_TCP),
				 first[f]);
	}
	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &s, b + 1, N - 1), 0);
	for (int f = 0; f < FLOWS; f++) {
		uint32_t now;

		snprintf(ip, sizeof(ip), "172.16.%d.%d", f / 250, f % 250 + 1);
		now = flow_backend(fd_xdp, ip, (uint16_t)(1024 + f), NODE_IP, 30080, IPPROTO_TCP);
		if (first[f] == b[0].addr)
			on_removed++;
		else if (now != first[f])
			moved++;
	}
	printf("# maglev flows: %d of %d on the removed backend; %d of the other %d moved (%.2f%%)\n",
	       on_removed, FLOWS, moved, FLOWS - on_removed, 100.0 * moved / (FLOWS - on_removed));
	assert_true(on_removed > FLOWS / N / 2 && on_removed < FLOWS / N * 2);
	assert_true(moved * 100 < (FLOWS - on_removed) * 3);
	assert_int_equal(dp_service_delete(dp, s.name), 0);
}

static void test_bpf_session_affinity_client_ip(void **state)
{
	struct dp_service s = svc1("default/aff:80/tcp", IPPROTO_TCP, VIP, 80, SVC_F_AFFINITY);
	struct dp_backend b[5];
	uint32_t got, other = 0;
	bool spread = false;

	(void)state;
	flush_flows();
	make_backends(b, 5, BE_F_LOCAL);
	s.affinity_timeout = 60;
	assert_int_equal(dp_service_upsert(dp, &s, b, 5), 0);
	got = flow_backend(fd_tc_pod, CLIENT, 30000, VIP, 80, IPPROTO_TCP);
	for (int f = 1; f < 40; f++)
		assert_int_equal(flow_backend(fd_tc_pod, CLIENT, (uint16_t)(30000 + f), VIP, 80,
					      IPPROTO_TCP),
				 got);
	/* Another client is free to land elsewhere; without affinity flows spread. */
	s.flags = 0;
	assert_int_equal(dp_service_upsert(dp, &s, b, 5), 0);
	for (int f = 100; f < 140 && !spread; f++) {
		uint32_t x = flow_backend(fd_tc_pod, CLIENT, (uint16_t)(30000 + f), VIP, 80,
					  IPPROTO_TCP);

		if (!other)
			other = x;
		spread = x != other;
	}
	assert_true(spread);
	assert_int_equal(dp_service_delete(dp, s.name), 0);
}

static void check_policy(int prog, uint8_t flags, bool want_local_only)
{
	struct dp_service s = svc1("default/pol:80/tcp", IPPROTO_TCP, NODE_IP, 30081,
				   SVC_F_NODEPORT | flags);
	struct dp_backend b[4];
	bool seen_remote = false;

	flush_flows();
	make_backends(b, 4, 0);
	b[0].flags = b[1].flags = BE_F_LOCAL;
	assert_int_equal(dp_service_upsert(dp, &s, b, 4), 0);
	for (int f = 0; f < 64; f++) {
		uint32_t x = flow_backend(prog, "172.16.9.9", (uint16_t)(5000 + f), NODE_IP, 30081,
					  IPPROTO_TCP);

		if (x == b[2].addr || x == b[3].addr)
			seen_remote = true;
		else
			assert_true(x == b[0].addr || x == b[1].addr);
		if (want_local_only && x != b[0].addr && x != b[1].addr)
			fail_msg("flow %d went to a remote backend under a Local policy", f);
	}
	if (!want_local_only)
		assert_true(seen_remote);
	/* Local only, with no local endpoint: rejected rather than sent away. */
	if (want_local_only) {
		struct pkt_spec ps = { .proto = IPPROTO_TCP, .saddr = "172.16.9.9",
				       .daddr = NODE_IP, .sport = 999, .dport = 30081,
				       .tcp_flags = 0x02 };
		uint8_t in[PKT_MAX], out[PKT_MAX];
		uint32_t ol, ret;
		size_t len = pkt_build(in, &ps);

		assert_int_equal(dp_service_upsert(dp, &s, b + 2, 2), 0);
		assert_int_equal(run(prog, in, len, out, &ol, &ret), 0);
		assert_true(ret == XDP_TX || ret == TC_ACT_REDIRECT);
	}
	assert_int_equal(dp_service_delete(dp, s.name), 0);
}

static void test_bpf_etp_local_keeps_external_traffic_local(void **state)
{
	(void)state;
	/* externalTrafficPolicy=Local: external (XDP, uplink) only local; pods use all. */
	check_policy(fd_xdp, SVC_F_ETP_LOCAL, true);
	check_policy(fd_tc_up, SVC_F_ETP_LOCAL, true);
	check_policy(fd_tc_pod, SVC_F_ETP_LOCAL, false);
	/* The client address is kept (no SNAT) for ETP=Local. */
	{
		struct dp_service s = svc1("default/pol:80/tcp", IPPROTO_TCP, NODE_IP, 30081,
					   SVC_F_NODEPORT | SVC_F_ETP_LOCAL);
		struct dp_backend b = be("10.1.1.2", 8080, BE_F_LOCAL);
		struct pkt_spec ps = { .proto = IPPROTO_TCP, .saddr = "172.16.9.9",
				       .daddr = NODE_IP, .sport = 998, .dport = 30081,
				       .tcp_flags = 0x02 };
		uint8_t in[PKT_MAX], out[PKT_MAX];
		uint32_t ol, ret;
		size_t len = pkt_build(in, &ps);

		assert_int_equal(dp_service_upsert(dp, &s, &b, 1), 0);
		assert_int_equal(run(fd_xdp, in, len, out, &ol, &ret), 0);
		assert_int_equal(pkt_saddr(out), pkt_ip("172.16.9.9"));
		assert_int_equal(dp_service_delete(dp, s.name), 0);
	}
}

static void test_bpf_itp_local_keeps_pod_traffic_local(void **state)
{
	(void)state;
	check_policy(fd_tc_pod, SVC_F_ITP_LOCAL, true);
	check_policy(fd_xdp, SVC_F_ITP_LOCAL, false);
}

static void test_bpf_terminating_used_only_when_none_ready(void **state)
{
	struct dp_service s = svc1("default/term:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	struct dp_backend b[3];

	(void)state;
	flush_flows();
	make_backends(b, 3, BE_F_LOCAL);
	b[1].flags |= BE_F_TERMINATING;
	b[1].ready = 0;
	b[2].flags |= BE_F_TERMINATING;
	b[2].ready = 0;
	assert_int_equal(dp_service_upsert(dp, &s, b, 3), 0);
	for (int f = 0; f < 32; f++)
		assert_int_equal(flow_backend(fd_tc_pod, CLIENT, (uint16_t)(7000 + f), VIP, 80,
					      IPPROTO_TCP),
				 b[0].addr);
	assert_int_equal(dp_service_upsert(dp, &s, b + 1, 2), 0);
	for (int f = 100; f < 132; f++) {
		uint32_t x = flow_backend(fd_tc_pod, CLIENT, (uint16_t)(7000 + f), VIP, 80,
					  IPPROTO_TCP);

		assert_true(x == b[1].addr || x == b[2].addr);
	}
	assert_int_equal(dp_service_delete(dp, s.name), 0);
}

static void test_bpf_zone_hints_prefer_own_zone(void **state)
{
	struct dp_service s = svc1("default/zone:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	struct dp_backend b[4];

	(void)state;
	flush_flows();
	make_backends(b, 4, 0);
	strcpy(b[0].zone_hint, "zone-a");
	strcpy(b[1].zone_hint, "zone-b");
	strcpy(b[2].zone_hint, "zone-a");
	strcpy(b[3].zone_hint, "zone-b");
	assert_int_equal(dp_service_upsert(dp, &s, b, 4), 0);
	for (int f = 0; f < 32; f++) {
		uint32_t x = flow_backend(fd_tc_pod, CLIENT, (uint16_t)(9000 + f), VIP, 80,
					  IPPROTO_TCP);

		assert_true(x == b[0].addr || x == b[2].addr);
	}
	/* One endpoint without a hint: hints are ignored, as Kubernetes does. */
	b[3].zone_hint[0] = '\0';
	assert_int_equal(dp_service_upsert(dp, &s, b, 4), 0);
	{
		bool other_zone = false;

		for (int f = 100; f < 200 && !other_zone; f++) {
			uint32_t x = flow_backend(fd_tc_pod, CLIENT, (uint16_t)(9000 + f), VIP, 80,
						  IPPROTO_TCP);

			other_zone = x == b[1].addr || x == b[3].addr;
		}
		assert_true(other_zone);
	}
	assert_int_equal(dp_service_delete(dp, s.name), 0);
}

/* ---- reject ------------------------------------------------------------------------------ */

static uint64_t reason_count(enum shoal_reason r)
{
	struct dp_stats st;

	assert_int_equal(dp_stats(dp, &st), 0);
	return st.reason_packets[r];
}

static void check_reject(int prog, uint32_t want_ret)
{
	struct dp_service st = svc1("default/empty:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	struct dp_service su = svc1("default/empty:53/udp", IPPROTO_UDP, VIP, 53, 0);
	struct pkt_spec ps = { .proto = IPPROTO_TCP, .saddr = CLIENT, .daddr = VIP, .sport = 4242,
			       .dport = 80, .tcp_flags = 0x02, .seq = 0x01020304, .payload = 0 };
	uint8_t in[PKT_MAX], out[PKT_MAX];
	uint32_t ol, ret;
	size_t len;
	uint64_t before = reason_count(DR_NO_BACKEND);
	const char *bad;

	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &st, NULL, 0), 0);
	assert_int_equal(dp_service_upsert(dp, &su, NULL, 0), 0);

	/* TCP SYN: RST+ACK from the VIP, acknowledging the SYN. */
	len = pkt_build(in, &ps);
	assert_int_equal(run(prog, in, len, out, &ol, &ret), 0);
	assert_int_equal(ret, want_ret);
	assert_int_equal(ol, 54);
	assert_int_equal(pkt_saddr(out), pkt_ip(VIP));
	assert_int_equal(pkt_daddr(out), pkt_ip(CLIENT));
	assert_int_equal(pkt_sport(out), 80);
	assert_int_equal(pkt_dport(out), 4242);
	assert_int_equal(out[14 + 20 + 13], 0x14); /* RST|ACK */
	assert_int_equal(((uint32_t)out[42] << 24 | (uint32_t)out[43] << 16 | (uint32_t)out[44] << 8 | out[45]),
			 0x01020305);
	assert_memory_equal(out, in + 6, 6); /* back to the sender's MAC */
	bad = pkt_check_csums(out, ol);
	if (bad)
		fail_msg("RST: %s", bad);

	/* TCP with ACK and data: RST with seq = the segment's ack. */
	ps.tcp_flags = 0x18;
	ps.ack = 0xa0b0c0d0;
	ps.payload = 100;
	len = pkt_build(in, &ps);
	assert_int_equal(run(prog, in, len, out, &ol, &ret), 0);
	assert_int_equal(ret, want_ret);
	assert_int_equal(out[14 + 20 + 13], 0x04);
	assert_int_equal(((uint32_t)out[38] << 24 | (uint32_t)out[39] << 16 | (uint32_t)out[40] << 8 | out[41]),
			 0xa0b0c0d0);
	bad = pkt_check_csums(out, ol);
	if (bad)
		fail_msg("RST for ACK: %s", bad);

	/* An RST to a service without endpoints is dropped and counted, never answered. */
	ps.tcp_flags = 0x04;
	ps.payload = 0;
	len = pkt_build(in, &ps);
	{
		uint64_t stray = reason_count(DR_STRAY_RST);

		assert_int_equal(run(prog, in, len, out, &ol, &ret), 0);
		assert_true(ret == XDP_DROP || ret == TC_ACT_SHOT);
		assert_int_equal(reason_count(DR_STRAY_RST), stray + 1);
	}

	/* UDP: ICMP port unreachable quoting the datagram's IP header and 8 bytes. */
	ps.proto = IPPROTO_UDP;
	ps.dport = 53;
	ps.payload = 200;
	len = pkt_build(in, &ps);
	assert_int_equal(run(prog, in, len, out, &ol, &ret), 0);
	assert_int_equal(ret, want_ret);
	assert_int_equal(ol, 14 + 20 + 8 + 28);
	assert_int_equal(out[14 + 9], IPPROTO_ICMP);
	assert_int_equal(out[34], 3);
	assert_int_equal(out[35], 3);
	assert_int_equal(pkt_saddr(out), pkt_ip(VIP));
	assert_int_equal(pkt_daddr(out), pkt_ip(CLIENT));
	assert_memory_equal(out + 42, in + 14, 28);
	bad = pkt_check_csums(out, ol);
	if (bad)
		fail_msg("ICMP: %s", bad);
	assert_true(reason_count(DR_NO_BACKEND) >= before + 3);
	assert_int_equal(dp_service_delete(dp, st.name), 0);
	assert_int_equal(dp_service_delete(dp, su.name), 0);
}

static void test_bpf_no_endpoint_rejects_tc(void **state)
{
	(void)state;
	check_reject(fd_tc_pod, TC_ACT_REDIRECT);
}

static void test_bpf_no_endpoint_rejects_xdp(void **state)
{
	(void)state;
	check_reject(fd_xdp, XDP_TX);
}

/* ---- SNAT to another node ------------------------------------------------------------- */

static void test_bpf_xdp_snat_to_remote_backend(void **state)
{
	struct dp_service s = svc1("default/np:30090/udp", IPPROTO_UDP, NODE_IP, 30090,
				   SVC_F_NODEPORT | SVC_F_MAGLEV);
	struct dp_backend b = be("10.100.2.7", 9000, 0);
	struct pkt_spec ps = { .proto = IPPROTO_UDP, .saddr = "172.16.1.1", .daddr = NODE_IP,
			       .sport = 5555, .dport = 30090, .payload = 64 };
	uint8_t in[PKT_MAX], out[PKT_MAX], r[PKT_MAX], rout[PKT_MAX];
	uint32_t ol, ret;
	size_t len;
	uint16_t snat_port;
	const char *bad;

	(void)state;
	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &s, &b, 1), 0);
	len = pkt_build(in, &ps);
	assert_int_equal(run(fd_xdp, in, len, out, &ol, &ret), 0);
	assert_int_equal(ret, XDP_PASS); /* no route in the test namespace: the stack forwards */
	assert_int_equal(pkt_daddr(out), b.addr);
	assert_int_equal(pkt_dport(out), 9000);
	assert_int_equal(pkt_saddr(out), pkt_ip(NODE_IP));
	snat_port = pkt_sport(out);
	assert_true(snat_port >= 61000);
	bad = pkt_check_csums(out, ol);
	if (bad)
		fail_msg("SNAT: %s", bad);
	/* The reply to the node's port goes back to the client, from the NodePort. */
	ps.saddr = "10.100.2.7";
	ps.sport = 9000;
	ps.daddr = NODE_IP;
	ps.dport = snat_port;
	len = pkt_build(r, &ps);
	assert_int_equal(run(fd_xdp, r, len, rout, &ol, &ret), 0);
	assert_int_equal(ret, XDP_TX); /* back to the client's neighbour, no route needed */
	check_reply_l2(in, r, rout);
	assert_int_equal(pkt_saddr(rout), pkt_ip(NODE_IP));
	assert_int_equal(pkt_sport(rout), 30090);
	assert_int_equal(pkt_daddr(rout), pkt_ip("172.16.1.1"));
	assert_int_equal(pkt_dport(rout), 5555);
	bad = pkt_check_csums(rout, ol);
	if (bad)
		fail_msg("SNAT reply: %s", bad);
	assert_int_equal(dp_service_delete(dp, s.name), 0);
}

/*
 * A reply whose destination is also a frontend (the client's port happens to be a NodePort):
 * its flow's reply entry decides, not the frontend, so it is translated back, not load-balanced.
 */
static void test_bpf_reply_to_a_frontend_port_is_a_reply(void **state)
{
	struct dp_service web = svc1("default/web:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	struct dp_service np = svc1("default/np:31000/tcp", IPPROTO_TCP, NODE_IP, 31000,
				    SVC_F_NODEPORT);
	struct dp_backend bw = be("10.1.1.2", 8080, BE_F_LOCAL), bn = be("10.1.1.3", 9090, BE_F_LOCAL);
	struct pkt_spec ps = { .proto = IPPROTO_TCP, .saddr = NODE_IP, .daddr = VIP, .sport = 31000,
			       .dport = 80, .tcp_flags = 0x02, .seq = 5 };
	uint8_t in[PKT_MAX], out[PKT_MAX];
	uint32_t ol, ret;
	size_t len;

	(void)state;
	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &web, &bw, 1), 0);
	assert_int_equal(dp_service_upsert(dp, &np, &bn, 1), 0);
	len = pkt_build(in, &ps);
	assert_int_equal(run(fd_tc_pod, in, len, out, &ol, &ret), 0);
	assert_int_equal(pkt_daddr(out), bw.addr);
	/* The backend answers NODE_IP:31000, which is the NodePort's frontend too. */
	ps.saddr = "10.1.1.2";
	ps.sport = 8080;
	ps.daddr = NODE_IP;
	ps.dport = 31000;
	ps.tcp_flags = 0x12;
	len = pkt_build(in, &ps);
	assert_int_equal(run(fd_tc_pod, in, len, out, &ol, &ret), 0);
	assert_int_equal(pkt_saddr(out), pkt_ip(VIP));
	assert_int_equal(pkt_sport(out), 80);
	assert_int_equal(pkt_daddr(out), pkt_ip(NODE_IP));
	assert_int_equal(pkt_dport(out), 31000);
	assert_null(pkt_check_csums(out, ol));
	assert_int_equal(dp_service_delete(dp, web.name), 0);
	assert_int_equal(dp_service_delete(dp, np.name), 0);
}

/* ---- ICMP errors about translated flows -------------------------------------------------- */

/*
 * An ICMP error (type, code) from `from` to `to`, quoting the first qlen bytes of the IPv4
 * packet in frame q (what a router or host quotes), with every checksum right.
 */
static size_t icmp_error(uint8_t *b, uint8_t type, uint8_t code, const char *from, const char *to,
			 const uint8_t *q, size_t qlen)
{
	uint8_t *ip = b + 14, *icmp = ip + 20;
	uint32_t s = pkt_ip(from), d = pkt_ip(to);
	size_t ilen = 8 + qlen;
	uint16_t c;

	memcpy(b, q, 14); /* addresses of no interest here */
	b[12] = 0x08;
	b[13] = 0x00;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + ilen) >> 8);
	ip[3] = (uint8_t)(20 + ilen);
	ip[8] = 64;
	ip[9] = IPPROTO_ICMP;
	memcpy(ip + 12, &s, 4);
	memcpy(ip + 16, &d, 4);
	c = htons(pkt_csum(ip, 20, 0));
	memcpy(ip + 10, &c, 2);
	memset(icmp, 0, 8);
	icmp[0] = type;
	icmp[1] = code;
	icmp[6] = 0x05; /* next-hop MTU 1400, for fragmentation needed */
	icmp[7] = 0x78;
	memcpy(icmp + 8, q + 14, qlen);
	c = htons(pkt_csum(icmp, ilen, 0));
	memcpy(icmp + 2, &c, 2);
	return 14 + 20 + ilen;
}

/* Checks every checksum of an ICMP error frame of len bytes (quoting TCP, 40 bytes). */
static void icmp_check_csums(const uint8_t *b, size_t len, const char *what)
{
	const uint8_t *ip = b + 14, *icmp = ip + 20, *qip = icmp + 8, *qtcp = qip + 20;
	uint32_t ps = 0;

	if (pkt_csum(ip, 20, 0) != 0)
		fail_msg("%s: outer IPv4 checksum", what);
	if (pkt_csum(icmp, len - 34, 0) != 0)
		fail_msg("%s: ICMP checksum", what);
	if (pkt_csum(qip, 20, 0) != 0)
		fail_msg("%s: quoted IPv4 checksum", what);
	/* The quoted TCP header is the whole original segment (no payload): its sum checks. */
	for (int i = 12; i < 20; i += 2)
		ps += (uint32_t)(qip[i] << 8 | qip[i + 1]);
	ps += IPPROTO_TCP + 20;
	if (pkt_csum(qtcp, 20, ps) != 0)
		fail_msg("%s: quoted TCP checksum", what);
}

static uint32_t be32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint16_t port_at(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void check_icmp_error(int prog, uint32_t want_ret, const char *which)
{
	struct dp_backend b = be("10.1.1.2", 8080, BE_F_LOCAL);
	struct dp_service s = svc1("default/web:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	struct pkt_spec ps = { .proto = IPPROTO_TCP, .saddr = CLIENT, .daddr = VIP, .sport = 41000,
			       .dport = 80, .tcp_flags = 0x02, .seq = 9 };
	uint8_t in[PKT_MAX], out[PKT_MAX], e[PKT_MAX], eout[PKT_MAX];
	uint32_t ol, ret;
	size_t len, elen;

	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &s, &b, 1), 0);
	len = pkt_build(in, &ps);
	assert_int_equal(run(prog, in, len, out, &ol, &ret), 0);
	assert_int_equal(pkt_daddr(out), b.addr);

	/* A router on the way to the backend: fragmentation needed, about client -> backend. */
	elen = icmp_error(e, 3, 4, "10.1.1.254", CLIENT, out, 40);
	assert_int_equal(run(prog, e, elen, eout, &ol, &ret), 0);
	printf("# %s: frag needed from a router: ret %u\n", which, ret);
	assert_int_equal(ret, want_ret);
	assert_int_equal(ol, elen);
	assert_int_equal(be32_at(eout + 26), pkt_ip("10.1.1.254"));
	assert_int_equal(be32_at(eout + 30), pkt_ip(CLIENT));
	assert_int_equal(be32_at(eout + 42 + 12), pkt_ip(CLIENT)); /* quoted source */
	assert_int_equal(be32_at(eout + 42 + 16), pkt_ip(VIP));	   /* quoted destination */
	assert_int_equal(port_at(eout + 62), 41000);
	assert_int_equal(port_at(eout + 64), 80);
	assert_int_equal(eout[34], 3);
	assert_int_equal(eout[35], 4);
	icmp_check_csums(eout, ol, which);

	/* From the backend itself: it appears to come from the frontend. */
	elen = icmp_error(e, 3, 3, "10.1.1.2", CLIENT, out, 40);
	assert_int_equal(run(prog, e, elen, eout, &ol, &ret), 0);
	assert_int_equal(be32_at(eout + 26), pkt_ip(VIP));
	assert_int_equal(be32_at(eout + 42 + 16), pkt_ip(VIP));
	assert_int_equal(port_at(eout + 64), 80);
	icmp_check_csums(eout, ol, which);

	/* About the reply (frontend -> client, as translated back): for the backend again. */
	ps.saddr = "10.1.1.2";
	ps.sport = 8080;
	ps.daddr = CLIENT;
	ps.dport = 41000;
	ps.tcp_flags = 0x12;
	len = pkt_build(in, &ps);
	assert_int_equal(run(prog, in, len, out, &ol, &ret), 0);
	assert_int_equal(pkt_saddr(out), pkt_ip(VIP));
	elen = icmp_error(e, 11, 0, "10.0.1.254", VIP, out, 40);
	assert_int_equal(run(prog, e, elen, eout, &ol, &ret), 0);
	assert_int_equal(be32_at(eout + 30), b.addr);
	assert_int_equal(be32_at(eout + 42 + 12), b.addr);
	assert_int_equal(port_at(eout + 62), 8080);
	assert_int_equal(be32_at(eout + 42 + 16), pkt_ip(CLIENT));
	icmp_check_csums(eout, ol, which);

	/* About no flow of ours: untouched. */
	elen = icmp_error(e, 3, 4, "10.1.1.254", CLIENT, in, 40);
	e[42 + 12 + 3] ^= 1; /* another quoted source */
	assert_int_equal(run(prog, e, elen, eout, &ol, &ret), 0);
	assert_memory_equal(eout, e, elen);
	assert_int_equal(dp_service_delete(dp, s.name), 0);
}

static void test_bpf_tc_icmp_error_about_translated_flow(void **state)
{
	(void)state;
	check_icmp_error(fd_tc_pod, TC_ACT_REDIRECT, "tc");
}

static void test_bpf_xdp_icmp_error_about_translated_flow(void **state)
{
	(void)state;
	/* No route to the client in the test namespace: passed to the stack, translated. */
	check_icmp_error(fd_xdp, XDP_PASS, "xdp");
}

/* Under SNAT (north-south to another node's backend) the error to the node goes on to the
 * client. */
static void test_bpf_xdp_icmp_error_under_snat(void **state)
{
	struct dp_service s = svc1("default/np:30091/tcp", IPPROTO_TCP, NODE_IP, 30091,
				   SVC_F_NODEPORT);
	struct dp_backend b = be("10.100.2.8", 9000, 0);
	struct pkt_spec ps = { .proto = IPPROTO_TCP, .saddr = "172.16.1.1", .daddr = NODE_IP,
			       .sport = 5556, .dport = 30091, .tcp_flags = 0x02, .seq = 3 };
	uint8_t in[PKT_MAX], out[PKT_MAX], e[PKT_MAX], eout[PKT_MAX];
	uint32_t ol, ret;
	size_t len, elen;

	(void)state;
	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &s, &b, 1), 0);
	len = pkt_build(in, &ps);
	assert_int_equal(run(fd_xdp, in, len, out, &ol, &ret), 0);
	assert_int_equal(pkt_saddr(out), pkt_ip(NODE_IP));
	assert_int_equal(pkt_daddr(out), b.addr);
	/* The backend's node answers "port unreachable" to the SNAT address. */
	elen = icmp_error(e, 3, 3, "10.100.2.8", NODE_IP, out, 40);
	assert_int_equal(run(fd_xdp, e, elen, eout, &ol, &ret), 0);
	assert_int_equal(be32_at(eout + 26), pkt_ip(NODE_IP)); /* from the frontend */
	assert_int_equal(be32_at(eout + 30), pkt_ip("172.16.1.1"));
	assert_int_equal(be32_at(eout + 42 + 12), pkt_ip("172.16.1.1"));
	assert_int_equal(port_at(eout + 62), 5556);
	assert_int_equal(be32_at(eout + 42 + 16), pkt_ip(NODE_IP));
	assert_int_equal(port_at(eout + 64), 30091);
	icmp_check_csums(eout, ol, "xdp snat");
	assert_int_equal(dp_service_delete(dp, s.name), 0);
}

/* ---- direct server return ------------------------------------------------------------ */

static void check_dsr(int send_prog, int recv_prog, uint16_t cport, uint32_t send_ret,
		      uint32_t recv_ret, const char *which)
{
	struct pkt_spec ps = { .proto = IPPROTO_TCP, .saddr = "172.16.5.5", .daddr = NODE_IP,
			       .sport = cport, .dport = 30100, .tcp_flags = 0x02, .seq = 9,
			       .payload = 21 };
	uint8_t in[PKT_MAX], out[PKT_MAX], out2[PKT_MAX], r[PKT_MAX], rout[PKT_MAX];
	uint32_t ol, ol2, ret;
	size_t len = pkt_build(in, &ps), rlen;
	uint32_t a;
	const char *bad;

	/* Sending node: DNAT, client address kept, the frontend in an IPv4 option. */
	assert_int_equal(run(send_prog, in, len, out, &ol, &ret), 0);
	assert_int_equal(ret, send_ret);
	assert_int_equal(ol, len + 8);
	assert_int_equal(out[14], 0x47);
	assert_int_equal(out[34], 0x9e);
	assert_int_equal(out[35], 8);
	assert_int_equal(out[36] << 8 | out[37], 30100);
	memcpy(&a, out + 38, 4);
	assert_int_equal(a, pkt_ip(NODE_IP));
	assert_int_equal(pkt_saddr(out), pkt_ip("172.16.5.5"));
	assert_int_equal(pkt_daddr(out), pkt_ip("10.100.3.9"));
	assert_int_equal(out[44] << 8 | out[45], 8080); /* L4 after the option */
	bad = pkt_check_csums(out, ol);
	if (bad)
		fail_msg("%s DSR sent: %s", which, bad);

	/* Backend's node: the option comes out, the packet is the plain DNATed one. */
	assert_int_equal(run(recv_prog, out, ol, out2, &ol2, &ret), 0);
	assert_int_equal(ret, recv_ret);
	assert_int_equal(ol2, len);
	assert_int_equal(out2[14], 0x45);
	assert_int_equal(pkt_daddr(out2), pkt_ip("10.100.3.9"));
	assert_int_equal(pkt_dport(out2), 8080);
	assert_int_equal(pkt_saddr(out2), pkt_ip("172.16.5.5"));
	assert_memory_equal(out2 + 54, in + 54, 21);
	bad = pkt_check_csums(out2, ol2);
	if (bad)
		fail_msg("%s DSR received: %s", which, bad);

	/* And the backend's answer leaves from the frontend. */
	ps.saddr = "10.100.3.9";
	ps.sport = 8080;
	ps.daddr = "172.16.5.5";
	ps.dport = cport;
	ps.tcp_flags = 0x12;
	rlen = pkt_build(r, &ps);
	assert_int_equal(run(fd_tc_pod, r, rlen, rout, &ol, &ret), 0);
	assert_int_equal(ret, TC_ACT_REDIRECT);
	assert_int_equal(pkt_saddr(rout), pkt_ip(NODE_IP));
	assert_int_equal(pkt_sport(rout), 30100);
	bad = pkt_check_csums(rout, ol);
	if (bad)
		fail_msg("%s DSR reply: %s", which, bad);
}

static void test_bpf_dsr_option_round_trip(void **state)
{
	struct dp_service s = svc1("default/dsr:30100/tcp", IPPROTO_TCP, NODE_IP, 30100,
				   SVC_F_NODEPORT | SVC_F_MAGLEV | SVC_F_DSR);
	struct dp_backend b = be("10.100.3.9", 8080, 0);

	(void)state;
	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &s, &b, 1), 0);
	check_dsr(fd_xdp, fd_xdp, 6000, XDP_PASS, XDP_PASS, "xdp");
	check_dsr(fd_tc_up, fd_tc_up, 6001, TC_ACT_OK, TC_ACT_OK, "tc");
	assert_int_equal(dp_service_delete(dp, s.name), 0);
}

/* ---- malformed and unusual packets -------------------------------------------------- */

enum mal_expect { M_PASS, M_DROP };

struct mal_case {
	const char *desc;
	enum mal_expect expect;
	void (*mutate)(uint8_t *buf, size_t *len);
	bool xdp_only; /* the skb test harness refuses the frame itself */
};

static void m_eth_only(uint8_t *b, size_t *len) { (void)b; *len = 14; }
static void m_ip_truncated(uint8_t *b, size_t *len) { (void)b; *len = 14 + 12; }
static void m_ihl_short(uint8_t *b, size_t *len) { (void)len; b[14] = 0x44; }
static void m_version6(uint8_t *b, size_t *len) { (void)len; b[14] = 0x65; }
static void m_totlen_long(uint8_t *b, size_t *len) { (void)len; b[16] = 0x10; }
static void m_tcp_truncated(uint8_t *b, size_t *len) { *len = 14 + 20 + 10; b[16] = 0; b[17] = 30; }
static void m_tcp_doff_small(uint8_t *b, size_t *len) { (void)len; b[14 + 20 + 12] = 0x20; }
static void m_udp_len_bad(uint8_t *b, size_t *len) { (void)len; b[14 + 20 + 4] = 0x7f; }
static void m_frag_first(uint8_t *b, size_t *len) { (void)len; b[14 + 6] = 0x20; b[14 + 7] = 0; }
static void m_frag_later(uint8_t *b, size_t *len) { (void)len; b[14 + 6] = 0x00; b[14 + 7] = 0x10; }
static void m_icmp(uint8_t *b, size_t *len) { (void)len; b[14 + 9] = IPPROTO_ICMP; }
static void m_gre(uint8_t *b, size_t *len) { (void)len; b[14 + 9] = 47; }
static void m_arp(uint8_t *b, size_t *len) { (void)len; b[12] = 0x08; b[13] = 0x06; }
static void m_ipv6_type(uint8_t *b, size_t *len) { (void)len; b[12] = 0x86; b[13] = 0xdd; }

static void m_ip_options(uint8_t *b, size_t *len)
{
	/* 4 bytes of NOP options: shift the L4 header down. */
	memmove(b + 14 + 24, b + 14 + 20, *len - 34);
	memset(b + 14 + 20, 1, 4);
	*len += 4;
	b[14] = 0x46;
	b[17] = (uint8_t)(b[17] + 4);
}

static void m_vlan(uint8_t *b, size_t *len)
{
	memmove(b + 16, b + 12, *len - 12);
	b[12] = 0x81;
	b[13] = 0x00;
	b[14] = 0x00;
	b[15] = 0x05;
	*len += 4;
}

static const struct mal_case mal_cases[] = {
	{ "ethernet header only, IPv4 type", M_DROP, m_eth_only, true },
	{ "IPv4 header truncated", M_DROP, m_ip_truncated, true },
	{ "IPv4 ihl below 5", M_DROP, m_ihl_short, false },
	{ "IP version 6 in an IPv4 frame", M_DROP, m_version6, false },
	{ "IPv4 total length beyond the frame", M_DROP, m_totlen_long, false },
	{ "TCP header truncated", M_DROP, m_tcp_truncated, false },
	{ "TCP data offset below 5", M_DROP, m_tcp_doff_small, false },
	{ "UDP length beyond the datagram", M_DROP, m_udp_len_bad, false },
	{ "first fragment to a VIP", M_PASS, m_frag_first, false },
	{ "later fragment to a VIP", M_PASS, m_frag_later, false },
	{ "IPv4 options to a VIP", M_PASS, m_ip_options, false },
	{ "ICMP to a VIP", M_PASS, m_icmp, false },
	{ "GRE to a VIP", M_PASS, m_gre, false },
	{ "VLAN-tagged frame", M_PASS, m_vlan, false },
	{ "ARP ethertype", M_PASS, m_arp, false },
	{ "IPv6 ethertype", M_PASS, m_ipv6_type, false },
};

static void test_bpf_malformed_packet_table(void **state)
{
	struct dp_service sv = svc1("default/mal:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	struct dp_service su = svc1("default/mal:80/udp", IPPROTO_UDP, VIP, 80, 0);
	struct dp_backend b = be("10.1.1.2", 8080, BE_F_LOCAL);
	const struct { int fd; uint32_t pass, drop; const char *name; } progs[] = {
		{ fd_xdp, XDP_PASS, XDP_DROP, "xdp" },
		{ fd_tc_pod, TC_ACT_OK, TC_ACT_SHOT, "tc" },
	};

	(void)state;
	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &sv, &b, 1), 0);
	assert_int_equal(dp_service_upsert(dp, &su, &b, 1), 0);
	for (size_t i = 0; i < sizeof(mal_cases) / sizeof(mal_cases[0]); i++) {
		for (size_t p = 0; p < (mal_cases[i].xdp_only ? 1 : 2); p++) {
			struct pkt_spec ps = {
				.proto = mal_cases[i].mutate == m_udp_len_bad ? IPPROTO_UDP :
										IPPROTO_TCP,
				.saddr = CLIENT, .daddr = VIP, .sport = 3333, .dport = 80,
				.tcp_flags = 0x02, .payload = 16 };
			uint8_t in[PKT_MAX], out[PKT_MAX];
			uint32_t ol = 0, ret = 0;
			size_t len = pkt_build(in, &ps);

			mal_cases[i].mutate(in, &len);
			if (run(progs[p].fd, in, len, out, &ol, &ret))
				fail_msg("%s, %s: test run failed", progs[p].name, mal_cases[i].desc);
			if (mal_cases[i].expect == M_PASS) {
				if (ret != progs[p].pass || ol != len || memcmp(in, out, len))
					fail_msg("%s, %s: expected pass unchanged, got verdict %u "
						 "len %u",
						 progs[p].name, mal_cases[i].desc, ret, ol);
			} else if (ret != progs[p].drop) {
				fail_msg("%s, %s: expected drop, got verdict %u", progs[p].name,
					 mal_cases[i].desc, ret);
			}
		}
	}
	assert_true(reason_count(DR_MALFORMED) >= 14);
	assert_true(reason_count(DR_FRAGMENT) >= 4);
	assert_true(reason_count(DR_IP_OPTIONS) >= 2);
	assert_int_equal(dp_service_delete(dp, sv.name), 0);
	assert_int_equal(dp_service_delete(dp, su.name), 0);
}

/* ---- library: sync, restart, stats ---------------------------------------------------- */

static int svc_gen(const char *vip, uint16_t port, uint8_t proto)
{
	struct shoal_svc_key_v4 k = { .addr = pkt_ip(vip), .port = htons(port), .proto = proto };
	struct shoal_svc_v4 v;

	if (bpf_map_lookup_elem(dp_map_fd(dp, SHOAL_MAP_SVC), &k, &v))
		return -errno;
	return v.gen;
}

static void test_bpf_sync_applies_only_the_difference(void **state)
{
	struct dp_backend b[3];
	struct dp_service_spec specs[2];
	int g1, g2;

	(void)state;
	flush_flows();
	make_backends(b, 3, BE_F_LOCAL);
	specs[0] = (struct dp_service_spec){ .svc = svc1("ns/a:80/tcp", IPPROTO_TCP, "10.96.1.1",
							 80, 0),
					     .backends = b, .n_backends = 3 };
	specs[1] = (struct dp_service_spec){ .svc = svc1("ns/b:80/tcp", IPPROTO_TCP, "10.96.1.2",
							 80, 0),
					     .backends = b, .n_backends = 2 };
	assert_int_equal(dp_sync(dp, specs, 2), 0);
	g1 = svc_gen("10.96.1.1", 80, IPPROTO_TCP);
	g2 = svc_gen("10.96.1.2", 80, IPPROTO_TCP);
	assert_true(g1 >= 0 && g2 >= 0);
	/* Unchanged: nothing is rewritten (the generation does not flip). */
	assert_int_equal(dp_sync(dp, specs, 2), 0);
	assert_int_equal(svc_gen("10.96.1.1", 80, IPPROTO_TCP), g1);
	assert_int_equal(svc_gen("10.96.1.2", 80, IPPROTO_TCP), g2);
	/* One change: only that service flips. */
	specs[1].n_backends = 3;
	assert_int_equal(dp_sync(dp, specs, 2), 0);
	assert_int_equal(svc_gen("10.96.1.1", 80, IPPROTO_TCP), g1);
	assert_int_equal(svc_gen("10.96.1.2", 80, IPPROTO_TCP), g2 ^ 1);
	/* A restarted loader finds the same state in the pinned maps. */
	{
		struct dp_opts o = { .node = node, .node_addr = pkt_ip(NODE_IP), .zone = "zone-a",
				     .max_services = 256, .max_backends = 1024,
				     .max_flows = 65536, .max_maglev_services = 16 };
		int id = dp_service_id(dp, "ns/a:80/tcp");
		struct dp_stats st;

		dp_close(dp);
		dp = dp_open(&o);
		assert_non_null(dp);
		fd_xdp = dp_prog_fd(dp, "lb_xdp");
		fd_tc_pod = dp_prog_fd(dp, "lb_tc_pod");
		fd_tc_up = dp_prog_fd(dp, "lb_tc_uplink");
		assert_int_equal(dp_service_id(dp, "ns/a:80/tcp"), id);
		assert_int_equal(dp_stats(dp, &st), 0);
		assert_int_equal(st.services, 2);
		assert_int_equal(st.backends, 3);
		assert_int_equal(dp_sync(dp, specs, 2), 0);
		assert_int_equal(svc_gen("10.96.1.1", 80, IPPROTO_TCP), g1);
	}
	/* Dropped from the desired set: deleted; its backends go with it. */
	assert_int_equal(dp_sync(dp, specs, 1), 0);
	assert_int_equal(svc_gen("10.96.1.2", 80, IPPROTO_TCP), -ENOENT);
	assert_int_equal(dp_sync(dp, NULL, 0), 0);
	{
		struct dp_stats st;

		assert_int_equal(dp_stats(dp, &st), 0);
		assert_int_equal(st.services, 0);
		assert_int_equal(st.backends, 0);
		/* The backend array names no backend any more: every entry is zero. */
		for (uint32_t k = 0; k <= 1024; k++) {
			struct shoal_backend_v4 v;

			assert_int_equal(bpf_map_lookup_elem(dp_map_fd(dp, SHOAL_MAP_BACKEND), &k, &v),
					 0);
			if (v.addr || v.port || v.flags)
				fail_msg("backend entry %u still names %08x:%u", k, v.addr,
					 ntohs(v.port));
		}
	}
}

static void test_bpf_sync_rename_keeps_the_frontend(void **state)
{
	struct dp_backend b = be("10.1.7.7", 8080, BE_F_LOCAL);
	struct dp_service_spec sp = { .svc = svc1("ns/old:80/tcp", IPPROTO_TCP, "10.96.2.1", 80, 0),
				      .backends = &b, .n_backends = 1 };

	(void)state;
	flush_flows();
	assert_int_equal(dp_sync(dp, &sp, 1), 0);
	/* The same frontend under a new name: the new service keeps it after the old goes. */
	sp.svc.name = "ns/new:80/tcp";
	assert_int_equal(dp_sync(dp, &sp, 1), 0);
	assert_int_equal(dp_service_id(dp, "ns/old:80/tcp"), -ENOENT);
	assert_true(svc_gen("10.96.2.1", 80, IPPROTO_TCP) >= 0);
	assert_int_equal(flow_backend(fd_tc_pod, CLIENT, 12345, "10.96.2.1", 80, IPPROTO_TCP),
			 b.addr);
	assert_int_equal(dp_sync(dp, NULL, 0), 0);
}

static void test_bpf_counters_per_service(void **state)
{
	struct dp_service s = svc1("default/cnt:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	struct dp_backend b = be("10.1.1.2", 8080, BE_F_LOCAL);
	uint64_t p = 0, by = 0;

	(void)state;
	flush_flows();
	assert_int_equal(dp_service_upsert(dp, &s, &b, 1), 0);
	for (int f = 0; f < 5; f++)
		flow_backend(fd_tc_pod, CLIENT, (uint16_t)(11000 + f), VIP, 80, IPPROTO_TCP);
	assert_int_equal(dp_service_stats(dp, s.name, &p, &by), 0);
	assert_int_equal(p, 5);
	assert_int_equal(by, 5 * 40);
	assert_int_equal(dp_service_delete(dp, s.name), 0);
	assert_int_equal(dp_service_delete(dp, s.name), -ENOENT);
}

static void test_bpf_upsert_rejects_bad_input(void **state)
{
	struct dp_service s = svc1("default/bad:80/tcp", IPPROTO_TCP, VIP, 80, 0);
	struct dp_backend b = be("10.1.1.2", 0, 0);

	(void)state;
	assert_int_equal(dp_service_upsert(dp, &s, &b, 1), -EINVAL); /* port 0 */
	s.proto = IPPROTO_ICMP;
	assert_int_equal(dp_service_upsert(dp, &s, NULL, 0), -EINVAL);
	s.proto = IPPROTO_TCP;
	s.n_frontends = 0;
	assert_int_equal(dp_service_upsert(dp, &s, NULL, 0), -EINVAL);
	assert_int_equal(dp_service_id(dp, s.name), -ENOENT);
}

/* ---- socket LB (cgroup hooks) ---------------------------------------------------------- */

static int sock_child(const char *cg, uint16_t be_port)
{
	struct sockaddr_in vip = { .sin_family = AF_INET, .sin_port = htons(80),
				   .sin_addr.s_addr = pkt_ip("10.96.0.77") };
	struct sockaddr_in empty = { .sin_family = AF_INET, .sin_port = htons(80),
				     .sin_addr.s_addr = pkt_ip("10.96.0.78") };
	struct sockaddr_in peer;
	socklen_t pl = sizeof(peer);
	char path[600], pid[16];
	int fd, cgfd;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	cgfd = open(path, O_WRONLY);
	snprintf(pid, sizeof(pid), "%d", getpid());
	if (cgfd < 0 || write(cgfd, pid, strlen(pid)) < 0)
		return 10;
	close(cgfd);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (void *)&vip, sizeof(vip)))
		return 11;
	if (getpeername(fd, (void *)&peer, &pl) || peer.sin_addr.s_addr != vip.sin_addr.s_addr ||
	    peer.sin_port != htons(80))
		return 12;
	close(fd);
	(void)be_port;
	/* No endpoint: connect fails at once instead of timing out. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (void *)&empty, sizeof(empty)) == 0 || errno != EPERM)
		return 13;
	close(fd);
	return 0;
}

static void test_bpf_sock_connect_translates_and_rejects(void **state)
{
	struct dp_service s = svc1("default/sock:80/tcp", IPPROTO_TCP, "10.96.0.77", 80, 0);
	struct dp_service e = svc1("default/sockempty:80/tcp", IPPROTO_TCP, "10.96.0.78", 80, 0);
	struct dp_backend b = be("127.0.0.1", 18080, BE_F_LOCAL);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(18080),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char cg[512], root[256] = "";
	char line[512], dev[64], mnt[256], type[64];
	FILE *f = fopen("/proc/self/mounts", "r");
	int l, st, one = 1;
	pid_t pid;

	(void)state;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %255s %63s", dev, mnt, type) == 3 && !strcmp(type, "cgroup2"))
			snprintf(root, sizeof(root), "%s", mnt);
	if (f)
		fclose(f);
	if (!*root)
		skip();
	assert_int_equal(system("ip link set lo up"), 0);
	snprintf(cg, sizeof(cg), "%s/shoal-%s", root, node);
	assert_int_equal(mkdir(cg, 0755), 0);
	l = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(l, (void *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 8), 0);
	assert_int_equal(dp_service_upsert(dp, &s, &b, 1), 0);
	assert_int_equal(dp_service_upsert(dp, &e, NULL, 0), 0);
	assert_int_equal(dp_attach_cgroup(dp, cg), 0);
	pid = fork();
	if (pid == 0)
		_exit(sock_child(cg, 18080));
	assert_int_equal(waitpid(pid, &st, 0), pid);
	close(l);
	assert_int_equal(dp_detach_cgroup(dp, cg), 0);
	assert_int_equal(rmdir(cg), 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("socket-LB child failed at step %d (11 connect, 12 getpeername, 13 "
			 "no-endpoint EPERM)",
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	assert_int_equal(dp_service_delete(dp, s.name), 0);
	assert_int_equal(dp_service_delete(dp, e.name), 0);
}

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_bpf_tc_dnat_and_reverse_nat),
		      cmocka_unit_test(test_bpf_tc_portable_dnat_and_reverse_nat),
		      cmocka_unit_test(test_bpf_xdp_dnat_and_reverse_nat),
		      cmocka_unit_test(test_bpf_non_service_passes_unchanged),
		      cmocka_unit_test(test_bpf_tc_hairpin_to_self),
		      cmocka_unit_test(test_bpf_ct_keeps_flow_across_backend_change),
		      cmocka_unit_test(test_bpf_maglev_table_stability),
		      cmocka_unit_test(test_bpf_maglev_flows_move_by_one_nth),
		      cmocka_unit_test(test_bpf_session_affinity_client_ip),
		      cmocka_unit_test(test_bpf_etp_local_keeps_external_traffic_local),
		      cmocka_unit_test(test_bpf_itp_local_keeps_pod_traffic_local),
		      cmocka_unit_test(test_bpf_terminating_used_only_when_none_ready),
		      cmocka_unit_test(test_bpf_zone_hints_prefer_own_zone),
		      cmocka_unit_test(test_bpf_no_endpoint_rejects_tc),
		      cmocka_unit_test(test_bpf_no_endpoint_rejects_xdp),
		      cmocka_unit_test(test_bpf_xdp_snat_to_remote_backend),
		      cmocka_unit_test(test_bpf_xdp_reply_routed_without_first_frame_l2),
		      cmocka_unit_test(test_bpf_reply_to_a_frontend_port_is_a_reply),
		      cmocka_unit_test(test_bpf_tc_icmp_error_about_translated_flow),
		      cmocka_unit_test(test_bpf_xdp_icmp_error_about_translated_flow),
		      cmocka_unit_test(test_bpf_xdp_icmp_error_under_snat),
		      cmocka_unit_test(test_bpf_dsr_option_round_trip),
		      cmocka_unit_test(test_bpf_malformed_packet_table),
		      cmocka_unit_test(test_bpf_sync_applies_only_the_difference),
		      cmocka_unit_test(test_bpf_sync_rename_keeps_the_frontend),
		      cmocka_unit_test(test_bpf_counters_per_service),
		      cmocka_unit_test(test_bpf_upsert_rejects_bad_input),
		      cmocka_unit_test(test_bpf_sock_connect_translates_and_rejects))
