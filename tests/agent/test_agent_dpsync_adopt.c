// SPDX-License-Identifier: Apache-2.0
/*
 * What a restarted agent finds in the pin directory, and what dp_open() makes of it: the same
 * build is adopted (nothing loaded, nothing attached again, nothing written), another build
 * is loaded over the same maps and swapped in place, incompatible maps (other sizes, an older
 * ABI version) are replaced while the old programs keep running until the new ones are
 * attached. Runs in a network namespace of its own (a veth pair stands for the uplink) with
 * a cgroup of the run's own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "dp.h"
#include "nslab.h"
#include "shoal_test.h"

static char node[32], cg[400], dir[300];
static int ifx;

static uint32_t ip4(const char *s)
{
	struct in_addr a = { 0 };

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

static struct dp *open_dp(const char *node_addr, uint32_t max_services)
{
	struct dp_opts o = { .node = node,
			     .node_addr = ip4(node_addr),
			     .max_services = max_services,
			     .max_backends = 64,
			     .max_flows = 4096,
			     .max_maglev_services = 4 };

	return dp_open(&o);
}

static int attach_all(struct dp *dp)
{
	int err = dp_attach_xdp(dp, ifx, DP_XDP_GENERIC);

	if (!err)
		err = dp_attach_tc(dp, ifx, true);
	if (!err)
		err = dp_attach_cgroup(dp, cg);
	return err;
}

static uint32_t xdp_id(void)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	assert_int_equal(bpf_xdp_query(ifx, 0, &q), 0);
	return q.skb_prog_id;
}

static uint32_t tc_id(void)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifx, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = 0x5ea1, .priority = 1);

	return bpf_tc_query(&hook, &q) ? 0 : q.prog_id;
}

/* Programs on the cgroup's connect4 hook: how many, and the first one's id. */
static uint32_t cg_connect_ids(uint32_t *first)
{
	__u32 ids[8], cnt = 8;
	int fd = open(cg, O_RDONLY | O_DIRECTORY);

	assert_true(fd >= 0);
	assert_int_equal(bpf_prog_query(fd, BPF_CGROUP_INET4_CONNECT, 0, NULL, ids, &cnt), 0);
	close(fd);
	*first = cnt ? ids[0] : 0;
	return cnt;
}

static uint32_t prog_id(struct dp *dp, const char *name)
{
	struct bpf_prog_info info = {};
	__u32 il = sizeof(info);

	assert_int_equal(bpf_obj_get_info_by_fd(dp_prog_fd(dp, name), &info, &il), 0);
	return info.id;
}

static int svc_gen(struct dp *dp)
{
	struct shoal_svc_key_v4 k = { .addr = ip4("10.96.0.10"),
				      .port = htons(80),
				      .proto = IPPROTO_TCP };
	struct shoal_svc_v4 v;

	if (bpf_map_lookup_elem(dp_map_fd(dp, SHOAL_MAP_SVC), &k, &v))
		return -errno;
	return v.gen;
}

static int setup(void **state)
{
	(void)state;
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return -1;
	}
	/* A node name with dots, as many are: pinned with '_' for '.' (bpffs forbids dots). */
	snprintf(node, sizeof(node), "adopt-%d.example", getpid());
	snprintf(dir, sizeof(dir), "%s/adopt-%d_example", DP_PIN_ROOT, getpid());
	if (!*nslab_cgroup2_root())
		return -1;
	snprintf(cg, sizeof(cg), "%s/shoal-%s", nslab_cgroup2_root(), node);
	if (mkdir(cg, 0755))
		return -1;
	if (nslab_sh("ip link add up0 type veth peer name up1 && ip link set up0 up && "
		     "ip link set up1 up")) {
		rmdir(cg);
		return -1;
	}
	ifx = (int)if_nametoindex("up0");
	return ifx > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	struct dp *dp;

	(void)state;
	if (!access(dir, F_OK)) {
		dp = open_dp("10.99.0.1", 32);
		if (dp)
			dp_uninstall(dp);
		dp_close(dp);
	}
	rmdir(cg);
	return 0;
}

static void test_agent_dpsync_adopt_same_build(void **state)
{
	struct dp_service s = { .name = "default/web:80/tcp",
				.proto = IPPROTO_TCP,
				.n_frontends = 1 };
	struct dp_backend b = { .addr = ip4("10.1.1.2"), .port = 8080, .ready = 1 };
	uint32_t x, t, c, n;
	struct dp_stats st;
	struct dp *dp;
	int gen;

	(void)state;
	s.frontends[0].addr = ip4("10.96.0.10");
	s.frontends[0].port = 80;
	dp = open_dp("10.99.0.1", 32);
	assert_non_null(dp);
	assert_false(dp_adopted(dp));
	assert_int_equal(attach_all(dp), 0);
	assert_int_equal(dp_service_upsert(dp, &s, &b, 1), 0);
	gen = svc_gen(dp);
	x = xdp_id();
	t = tc_id();
	n = cg_connect_ids(&c);
	assert_int_equal(x, prog_id(dp, "lb_xdp"));
	assert_int_equal(t, prog_id(dp, "lb_tc_uplink"));
	assert_int_equal(n, 1);
	dp_close(dp);

	/* A restart: the same programs, attached already; the same service, unchanged. */
	dp = open_dp("10.99.0.1", 32);
	assert_non_null(dp);
	assert_true(dp_adopted(dp));
	assert_int_equal(prog_id(dp, "lb_xdp"), x);
	assert_int_equal(attach_all(dp), 0);
	assert_int_equal(dp_service_upsert(dp, &s, &b, 1), 0);
	assert_int_equal(dp_stats(dp, &st), 0);
	assert_int_equal(st.services, 1);
	assert_int_equal(st.map_writes, 0);
	assert_int_equal(svc_gen(dp), gen);
	assert_int_equal(xdp_id(), x);
	assert_int_equal(tc_id(), t);
	assert_int_equal(cg_connect_ids(&n), 1);
	assert_int_equal(n, c);
	dp_close(dp);
}

static void test_agent_dpsync_adopt_new_build_over_the_same_maps(void **state)
{
	uint32_t x = xdp_id(), c, n;
	struct dp *dp;
	int gen;

	(void)state;
	/* Another configuration of the programs (a new node address): loaded, maps kept. */
	dp = open_dp("10.99.0.2", 32);
	assert_non_null(dp);
	assert_false(dp_adopted(dp));
	gen = svc_gen(dp);
	assert_true(gen >= 0);
	/* Until attached, the old programs run; then they are swapped in place. */
	assert_int_equal(xdp_id(), x);
	assert_int_equal(attach_all(dp), 0);
	assert_int_equal(xdp_id(), prog_id(dp, "lb_xdp"));
	assert_int_not_equal(xdp_id(), x);
	assert_int_equal(tc_id(), prog_id(dp, "lb_tc_uplink"));
	assert_int_equal(cg_connect_ids(&c), 1);
	assert_int_equal(c, prog_id(dp, "lb_connect4"));
	assert_int_equal(svc_gen(dp), gen);
	dp_close(dp);
	/* And that build is adopted next time. */
	dp = open_dp("10.99.0.2", 32);
	assert_true(dp_adopted(dp));
	assert_int_equal(cg_connect_ids(&n), 1);
	dp_close(dp);
}

static void test_agent_dpsync_adopt_replaces_incompatible_maps(void **state)
{
	uint32_t x = xdp_id(), c, n;
	struct dp_stats st;
	struct dp *dp;
	char old[400];

	(void)state;
	/* Other map sizes: the directory is replaced, the old programs run until attach. */
	dp = open_dp("10.99.0.2", 64);
	assert_non_null(dp);
	assert_false(dp_adopted(dp));
	assert_int_equal(dp_stats(dp, &st), 0);
	assert_int_equal(st.services, 0);
	assert_int_equal(svc_gen(dp), -ENOENT);
	assert_int_equal(xdp_id(), x);
	snprintf(old, sizeof(old), "%s-OLD-%d", dir, getpid());
	if (!access(old, F_OK))
		fail_msg("%s is still there", old);
	assert_int_equal(attach_all(dp), 0);
	assert_int_equal(xdp_id(), prog_id(dp, "lb_xdp"));
	assert_int_equal(tc_id(), prog_id(dp, "lb_tc_uplink"));
	/* The cgroup link was carried over and swapped, not doubled. */
	assert_int_equal(cg_connect_ids(&c), 1);
	assert_int_equal(c, prog_id(dp, "lb_connect4"));
	/* Uninstall finds everything, old and new. */
	assert_int_equal(dp_uninstall(dp), 0);
	dp_close(dp);
	/* A pin's last reference goes after an RCU grace period (bpffs frees inodes that
	 * way), so a link unpinned by the uninstall may stay attached for a moment. */
	for (int i = 0; i < 200 && cg_connect_ids(&n) != 0; i++)
		usleep(10000);
	assert_int_equal(xdp_id(), 0);
	assert_int_equal(tc_id(), 0);
	assert_int_equal(cg_connect_ids(&n), 0);
	if (!access(dir, F_OK))
		fail_msg("%s is still there after uninstall", dir);
}

/* Pins path of one map of the run's node. */
static void pin_of(char *buf, size_t len, const char *name)
{
	assert_true((size_t)snprintf(buf, len, "%s/%s", dir, name) < len);
}

/* Rewrites the pinned shoal_meta as a loader of another ABI version would have left it. */
static void meta_set_abi(uint32_t abi)
{
	struct shoal_meta m;
	char path[400];
	uint32_t zero = 0;
	int fd;

	pin_of(path, sizeof(path), SHOAL_MAP_META);
	fd = bpf_obj_get(path);
	assert_true(fd >= 0);
	assert_int_equal(bpf_map_lookup_elem(fd, &zero, &m), 0);
	m.abi_version = abi;
	assert_int_equal(bpf_map_update_elem(fd, &zero, &m, BPF_ANY), 0);
	close(fd);
}

/* Pinned data plane with one service, attached everywhere: what an older agent leaves. */
static void old_plane(void)
{
	struct dp_service s = { .name = "default/web:80/tcp",
				.proto = IPPROTO_TCP,
				.n_frontends = 1 };
	struct dp_backend b = { .addr = ip4("10.1.1.2"), .port = 8080, .ready = 1 };
	struct dp *dp;

	s.frontends[0].addr = ip4("10.96.0.10");
	s.frontends[0].port = 80;
	dp = open_dp("10.99.0.1", 32);
	assert_non_null(dp);
	assert_int_equal(attach_all(dp), 0);
	assert_int_equal(dp_service_upsert(dp, &s, &b, 1), 0);
	dp_close(dp);
}

/* A newer loader over an older ABI's pins: replaced whole, swapped in on attach. */
static void expect_replaced(uint32_t old_xdp)
{
	struct dp_stats st;
	uint32_t c, n;
	struct dp *dp;
	char old[400];

	dp = open_dp("10.99.0.1", 32);
	assert_non_null(dp);
	assert_false(dp_adopted(dp));
	assert_int_equal(dp_stats(dp, &st), 0);
	assert_int_equal(st.services, 0);
	assert_int_equal(svc_gen(dp), -ENOENT);
	/* The old programs carry traffic until the new ones are attached. */
	assert_int_equal(xdp_id(), old_xdp);
	snprintf(old, sizeof(old), "%s-OLD-%d", dir, getpid());
	if (!access(old, F_OK))
		fail_msg("%s is still there", old);
	assert_int_equal(attach_all(dp), 0);
	assert_int_equal(xdp_id(), prog_id(dp, "lb_xdp"));
	assert_int_equal(tc_id(), prog_id(dp, "lb_tc_uplink"));
	assert_int_equal(cg_connect_ids(&c), 1);
	assert_int_equal(c, prog_id(dp, "lb_connect4"));
	dp_close(dp);
	/* And the new maps are adopted from then on. */
	dp = open_dp("10.99.0.1", 32);
	assert_non_null(dp);
	assert_true(dp_adopted(dp));
	assert_int_equal(cg_connect_ids(&n), 1);
	dp_close(dp);
}

static void test_agent_dpsync_adopt_replaces_an_older_abi(void **state)
{
	LIBBPF_OPTS(bpf_map_create_opts, co, .map_flags = BPF_F_NO_PREALLOC);
	struct bpf_map_info info = {};
	__u32 il = sizeof(info);
	char path[400];
	int fd;

	(void)state;
	/* Maps of the same shapes, but the record says ABI 1: the version alone decides. */
	old_plane();
	meta_set_abi(SHOAL_ABI_VERSION - 1);
	expect_replaced(xdp_id());

	/* ABI 1 as it was: the backend map a hash, not an array. */
	old_plane();
	pin_of(path, sizeof(path), SHOAL_MAP_BACKEND);
	fd = bpf_obj_get(path);
	assert_true(fd >= 0);
	assert_int_equal(bpf_obj_get_info_by_fd(fd, &info, &il), 0);
	close(fd);
	assert_int_equal(info.type, BPF_MAP_TYPE_ARRAY);
	assert_int_equal(unlink(path), 0);
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, SHOAL_MAP_BACKEND, info.key_size, info.value_size,
			    info.max_entries, &co);
	assert_true(fd >= 0);
	assert_int_equal(bpf_obj_pin(fd, path), 0);
	close(fd);
	meta_set_abi(SHOAL_ABI_VERSION - 1);
	expect_replaced(xdp_id());
}

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_agent_dpsync_adopt_same_build),
		      cmocka_unit_test(test_agent_dpsync_adopt_new_build_over_the_same_maps),
		      cmocka_unit_test(test_agent_dpsync_adopt_replaces_incompatible_maps),
		      cmocka_unit_test(test_agent_dpsync_adopt_replaces_an_older_abi))
