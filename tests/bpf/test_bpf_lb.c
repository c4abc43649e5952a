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
#include <sys/stat.h>
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

static int teardown(void **state)
{
	int err;

	(void)state;
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
static __attribute__((unused)) uint32_t flow_backend(int prog, const char *client, uint16_t sport, const char *dst,
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

static void check_dnat(int prog, uint32_t want_ret, const char *which)
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
		assert_int_equal(ret, want_ret);
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
	check_dnat(fd_tc_pod, TC_ACT_OK, "tc");
}

static void test_bpf_xdp_dnat_and_reverse_nat(void **state)
{
	(void)state;
	check_dnat(fd_xdp, XDP_PASS, "xdp");
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

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_bpf_tc_dnat_and_reverse_nat),
		      cmocka_unit_test(test_bpf_xdp_dnat_and_reverse_nat),
		      cmocka_unit_test(test_bpf_non_service_passes_unchanged))
