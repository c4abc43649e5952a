// SPDX-License-Identifier: Apache-2.0
/*
 * Data plane benchmark (run by bench/dp): per-packet cost of the tc and XDP programs
 * (bpf_prog_test_run_opts, JIT on) for established and new flows as the number of Services
 * grows; time to program Services from empty and to change one backend; map memory; and, in
 * a namespace lab built here, first-packet latency of new TCP connections through the node
 * with the BPF programs against the same Services as kube-proxy-style iptables rules loaded
 * with iptables-restore inside the lab's node namespace (never the root namespace).
 *
 * Writes a JSON document (DESIGN.md "Benchmarks") to the path given, and plot data beside it.
 *
 * Method for the per-packet figures: one test run repeats the program over a ring of services
 * (see micro_setup()) and the kernel reports its mean duration per repetition; a figure is the
 * median of such rounds, taken for the four sizes side by side (micro_all()). The test-run
 * loop's own cost is in every figure; an empty program run the same way measures it (the
 * *_floor_ns_per_pkt figures).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_link.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "dp.h"
#include "log.h"

#define MAX_FIG 128

struct fig {
	char name[64];
	double value;
	const char *unit;
	double target; /* 0: none */
	const char *better;
	char ref[160];
};

static struct fig figs[MAX_FIG];
static int nfig;
static bool quick;
static bool micro_only; /* MICRO=1: the per-packet figures only */
static char tag[16];

static void fig(const char *name, double v, const char *unit, double target, const char *better,
		const char *ref)
{
	if (nfig >= MAX_FIG)
		return;
	snprintf(figs[nfig].name, sizeof(figs[nfig].name), "%s", name);
	figs[nfig].value = v;
	figs[nfig].unit = unit;
	figs[nfig].target = target;
	figs[nfig].better = better;
	snprintf(figs[nfig].ref, sizeof(figs[nfig].ref), "%s", ref ? ref : "");
	nfig++;
	fprintf(stderr, "  %-40s %12.2f %s\n", name, v, unit);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint32_t svc_vip(uint32_t i)
{
	return htonl(0x0a600000u + 0x100 + i); /* 10.96.0.0/16 + i, skipping .0.x */
}

/* ---- packets ----------------------------------------------------------------------- */

static uint16_t csum(const void *d, size_t n, uint32_t s)
{
	const uint8_t *p = d;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static size_t tcp_syn(uint8_t *b, uint32_t saddr, uint16_t sport, uint32_t daddr, uint16_t dport)
{
	uint8_t *ip = b + 14, *t = ip + 20;
	uint32_t ps;
	uint16_t c;

	memset(b, 0, 54);
	memcpy(b, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00", 14);
	ip[0] = 0x45;
	ip[3] = 40;
	ip[8] = 64;
	ip[9] = IPPROTO_TCP;
	memcpy(ip + 12, &saddr, 4);
	memcpy(ip + 16, &daddr, 4);
	c = htons(csum(ip, 20, 0));
	memcpy(ip + 10, &c, 2);
	t[0] = (uint8_t)(sport >> 8);
	t[1] = (uint8_t)sport;
	t[2] = (uint8_t)(dport >> 8);
	t[3] = (uint8_t)dport;
	t[12] = 0x50;
	t[13] = 0x02;
	t[14] = t[15] = 0xff;
	ps = (uint32_t)(ip[12] << 8 | ip[13]) + (uint32_t)(ip[14] << 8 | ip[15]) +
	     (uint32_t)(ip[16] << 8 | ip[17]) + (uint32_t)(ip[18] << 8 | ip[19]) + IPPROTO_TCP + 20;
	c = htons(csum(t, 20, ps));
	memcpy(t + 16, &c, 2);
	return 54;
}

static uint8_t last_out[128];
static uint32_t last_ret;

static int run_once(int prog, const uint8_t *pkt, size_t len, uint32_t repeat, uint32_t *dur)
{
	uint8_t *out = last_out;
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = (uint32_t)len,
		    .data_out = out, .data_size_out = sizeof(last_out), .repeat = repeat);
	int err = bpf_prog_test_run_opts(prog, &o);

	*dur = o.duration;
	last_ret = o.retval;
	return err;
}

/* ---- Services ------------------------------------------------------------------------ */

struct world {
	struct dp_service_spec *specs;
	struct dp_backend *be; /* per service: be + off[i] */
	size_t n;
};

static void world_free(struct world *w)
{
	free(w->specs);
	free(w->be);
}

/* n ClusterIP services over nbe backends (10.128.0.0/9), each backend in one service. */
static int world_build(struct world *w, size_t n, size_t nbe, uint32_t be_base, uint8_t flags)
{
	size_t per = (nbe + n - 1) / n, k = 0;
	static char names[70000][40];

	w->n = n;
	w->specs = calloc(n, sizeof(*w->specs));
	w->be = calloc(n * per + 1, sizeof(*w->be));
	if (!w->specs || !w->be || n > 70000)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct dp_service_spec *s = &w->specs[i];
		size_t cnt = 0;

		snprintf(names[i], sizeof(names[i]), "bench/svc-%zu:80/tcp", i);
		s->svc.name = names[i];
		s->svc.proto = IPPROTO_TCP;
		s->svc.flags = flags;
		s->svc.n_frontends = 1;
		s->svc.frontends[0].addr = svc_vip((uint32_t)i);
		s->svc.frontends[0].port = 80;
		s->backends = &w->be[i * per];
		/* Service i takes backends [i*nbe/n, (i+1)*nbe/n): nbe in all, at least one each. */
		size_t lo = i * nbe / n, hi = (i + 1) * nbe / n;

		if (hi == lo)
			hi = lo + 1;
		for (k = lo; k < hi && cnt < per; k++) {
			struct dp_backend *b = &w->be[i * per + cnt];

			b->addr = be_base ? htonl(ntohl(be_base) + (uint32_t)(k % 10)) :
					    htonl(0x0a800000u + (uint32_t)(k % nbe) + 1);
			b->port = 8080;
			b->flags = BE_F_LOCAL;
			b->ready = 1;
			cnt++;
		}
		s->n_backends = cnt;
	}
	return 0;
}

/* ---- per-packet cost ------------------------------------------------------------------ */

static int cmp_d(const void *a, const void *b);
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int enter_ns(const char *name);

#define RING 1024
/*
 * Repetitions of a run of established packets: 64 turns of the ring. Long runs spread what a
 * test run costs once (its set-up, and for XDP the dispatcher's re-pointing, see xdp_hold())
 * over many packets.
 */
#define LAPS (RING * 64)

static uint32_t ring_vip(uint32_t i)
{
	return htonl(0x0a610000u + 0x100 + i % RING); /* 10.97.1.0 - 10.97.5.255 */
}

static int ring_add(struct dp *dp)
{
	char name[48];

	for (uint32_t i = 0; i < RING; i++) {
		struct dp_service s = { .name = name, .proto = IPPROTO_TCP, .n_frontends = 1 };
		struct dp_backend b = { .addr = ring_vip(i + 1), .port = 80, .flags = BE_F_LOCAL,
					.ready = 1 };
		int err;

		snprintf(name, sizeof(name), "bench/ring-%u:80/tcp", i);
		s.frontends[0].addr = ring_vip(i);
		s.frontends[0].port = 80;
		err = dp_service_upsert(dp, &s, &b, 1);
		if (err)
			return err;
	}
	return 0;
}

/* A ring of two services: one client's flow around it is one hot flow (two entries). */
static uint32_t hot_vip(uint32_t i)
{
	return htonl(0x0a61c800u + 1 + i % 2); /* 10.97.200.1 - 10.97.200.2 */
}

static int hot_add(struct dp *dp)
{
	char name[48];

	for (uint32_t i = 0; i < 2; i++) {
		struct dp_service s = { .name = name, .proto = IPPROTO_TCP, .n_frontends = 1 };
		struct dp_backend b = { .addr = hot_vip(i + 1), .port = 80, .flags = BE_F_LOCAL,
					.ready = 1 };
		int err;

		snprintf(name, sizeof(name), "bench/hot-%u:80/tcp", i);
		s.frontends[0].addr = hot_vip(i);
		s.frontends[0].port = 80;
		err = dp_service_upsert(dp, &s, &b, 1);
		if (err)
			return err;
	}
	return 0;
}

/*
 * After a whole number of turns the packet is back where it started, translated every time:
 * the destination (off 30) of a forward packet, the source (off 26) of a reply. want_ret
 * < 0: any verdict (a reply's depends on the route to the client).
 */
static int ring_check(const char *prog, const char *what, int want_ret, int off, uint32_t want)
{
	if ((want_ret >= 0 && last_ret != (uint32_t)want_ret) || memcmp(last_out + off, &want, 4)) {
		fprintf(stderr, "%s: %s packet not translated (ret %u, addr %u.%u.%u.%u)\n", prog,
			what, last_ret, last_out[off], last_out[off + 1], last_out[off + 2],
			last_out[off + 3]);
		return -1;
	}
	return 0;
}

/*
 * The harness floor: a program of the same type that only returns the verdict, run as the
 * measured ones are (same packet, same repeat count, medians of rounds). What the test-run
 * loop, the context set-up and the XDP dispatcher cost per packet; a figure minus this is
 * what shoal's program itself costs.
 */
static void floor_figs(void)
{
	static const struct {
		const char *name;
		enum bpf_prog_type type;
		int ret;
	} kinds[2] = {
		{ "tc_floor_ns_per_pkt", BPF_PROG_TYPE_SCHED_CLS, 0 },
		{ "xdp_floor_ns_per_pkt", BPF_PROG_TYPE_XDP, XDP_PASS },
	};
	int rounds = quick ? 10 : 60;
	double res[60];

	for (int k = 0; k < 2; k++) {
		struct bpf_insn insns[2] = {
			{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0,
			  .imm = kinds[k].ret },
			{ .code = BPF_JMP | BPF_EXIT },
		};
		int fd = bpf_prog_load(kinds[k].type, "shoal_floor", "GPL", insns, 2, NULL);
		uint8_t pkt[64];
		uint32_t d;

		if (fd < 0) {
			fprintf(stderr, "floor: load empty %s program: %s\n", kinds[k].name,
				strerror(-fd));
			exit(1);
		}
		tcp_syn(pkt, htonl(0xac1f0001), 40000, ring_vip(0), 80);
		for (int r = 0; r < rounds; r++) {
			if (run_once(fd, pkt, 54, LAPS, &d)) {
				fprintf(stderr, "floor: test run of %s: %s\n", kinds[k].name,
					strerror(errno));
				exit(1);
			}
			res[r] = d;
		}
		close(fd);
		qsort(res, (size_t)rounds, sizeof(double), cmp_d);
		fig(kinds[k].name, res[rounds / 2], "ns", 0, "lower",
		    "an empty program of the same type run the same way: the harness floor "
		    "included in every per-packet figure");
	}
}

/*
 * One round of the ring (see micro_setup()) from a new client: RING new flows (out[0]), the
 * same flows established (out[1]), one hot flow (out[2]) and the replies (out[3]). Clients
 * are 172.16.0.0/16 + client: every caller on one instance takes its own.
 */
static int ring_round(int fd, const char *pn, int ok, uint32_t client_idx, double out[4])
{
	uint32_t client = htonl(0xac100000u + client_idx), d;
	/* In order: new, est (the same packet again), reply, hot; where out[] takes each. */
	const struct {
		const char *what;
		uint32_t saddr, daddr;
		uint16_t sport, dport;
		uint32_t repeat;
		int slot, want_ret, off;
		uint32_t want;
	} step[4] = {
		{ "new", client, ring_vip(0), 40000, 80, RING, 0, ok, 30, ring_vip(0) },
		{ "est", client, ring_vip(0), 40000, 80, LAPS, 1, ok, 30, ring_vip(0) },
		{ "reply", ring_vip(0), client, 80, 40000, LAPS, 3, -1, 26, ring_vip(0) },
		{ "hot", client, hot_vip(0), 40001, 80, LAPS, 2, ok, 30, hot_vip(0) },
	};
	uint8_t pkt[64];

	for (int i = 0; i < 4; i++) {
		tcp_syn(pkt, step[i].saddr, step[i].sport, step[i].daddr, step[i].dport);
		if (run_once(fd, pkt, 54, step[i].repeat, &d))
			return -1;
		out[step[i].slot] = d;
		if (ring_check(pn, step[i].what, step[i].want_ret, step[i].off, step[i].want))
			return -1;
	}
	return 0;
}

/*
 * What the XDP test run adds. With repeat > 1 it points the kernel's XDP dispatcher at the
 * program before the timed loop and back after it (text patching and an RCU grace period,
 * during which the CPU runs other work), unless the dispatcher already holds the program
 * because it is attached somewhere in native mode. The timed loop then starts cold: a ring of
 * 1,024 flows touches some thousand pages of conntrack buckets and entries, and warming the
 * caches and TLB again costs every run a fixed few hundred microseconds, which the per-packet
 * figures spread over their repetitions (a run of 1,024 new flows most). An attached program
 * is pointed to once, at attach time. The "held" figures run the same rounds with each size's
 * lb_xdp also attached to a veth of its own in a namespace made here (never the host's), so
 * that the test run leaves the dispatcher alone: the program's own cost, as a NIC's driver
 * would run it.
 */
static char ns_h[32];

static void xdp_release(void)
{
	if (!ns_h[0])
		return;
	if (sh("ip netns del %s", ns_h))
		fprintf(stderr, "xdp hold: could not delete namespace %s\n", ns_h);
	ns_h[0] = 0;
}

/* Attaches prog (native mode) to veth number idx of the hold namespace, made on first use. */
static int xdp_hold(int prog, int idx)
{
	int self, err = 0;
	char dev[32];

	if (!ns_h[0]) {
		snprintf(ns_h, sizeof(ns_h), "%sx", tag);
		if (sh("ip netns add %s", ns_h)) {
			fprintf(stderr, "xdp hold: could not make namespace %s\n", ns_h);
			ns_h[0] = 0;
			return -1;
		}
	}
	snprintf(dev, sizeof(dev), "%sxa%d", tag, idx);
	if (sh("set -e; ip -n %1$s link add %2$s type veth peer name %2$sp;"
	       "ip -n %1$s link set %2$s up; ip -n %1$s link set %2$sp up",
	       ns_h, dev)) {
		fprintf(stderr, "xdp hold: could not make veth %s in %s\n", dev, ns_h);
		return -1;
	}
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0) {
		fprintf(stderr, "xdp hold: open own network namespace: %s\n", strerror(errno));
		return -1;
	}
	err = enter_ns(ns_h);
	if (err) {
		fprintf(stderr, "xdp hold: enter %s: %s\n", ns_h, strerror(-err));
		close(self);
		return -1;
	}
	err = bpf_xdp_attach((int)if_nametoindex(dev), prog, XDP_FLAGS_DRV_MODE, NULL);
	if (err)
		fprintf(stderr, "xdp hold: attach lb_xdp to %s in %s: %s\n", dev, ns_h,
			strerror(-err));
	if (setns(self, CLONE_NEWNET)) {
		fprintf(stderr, "xdp hold: back to own network namespace: %s\n", strerror(errno));
		exit(1); /* the figures would be taken in the wrong namespace */
	}
	close(self);
	return err ? -1 : 0;
}

/*
 * The per-packet figures are taken for every size side by side: the four sizes are
 * programmed into four instances of the data plane (each its own pin root and maps), and
 * every pass runs one round on each in turn, so that a slow stretch of a shared machine
 * weighs on every size alike. A figure is the median over passes; a ratio between sizes is
 * the median of the per-pass ratios.
 */
#define NSIZE 4
#define KINDS 4
enum { M_TC, M_XDP, M_XDP_HELD, M_N }; /* how a round is run */

struct size_run {
	size_t n_svc, n_be;
	const char *label;
	struct dp *dp;
	int fd[2]; /* lb_tc_pod, lb_xdp */
	double *res[M_N][KINDS]; /* per pass: new, est, est_hot, reply */
};

static struct size_run runs[NSIZE];

static void runs_close(void)
{
	for (int i = 0; i < NSIZE; i++) {
		if (runs[i].dp) {
			dp_uninstall(runs[i].dp);
			dp_close(runs[i].dp);
			runs[i].dp = NULL;
		}
		for (int m = 0; m < M_N; m++)
			for (int k = 0; k < KINDS; k++) {
				free(runs[i].res[m][k]);
				runs[i].res[m][k] = NULL;
			}
	}
}

/*
 * Programs one size: n services over nbe backends, plus the ring. At 10,000 services it also
 * takes the programming figures (time from empty, one backend change, map memory).
 */
static void micro_setup(struct size_run *r, int passes)
{
	struct dp_opts o = { 0 };
	char node[48];
	struct world w = { 0 };
	const char *progs[2] = { "lb_tc_pod", "lb_xdp" };
	double t0;

	snprintf(node, sizeof(node), "bench-%s-%zu", tag, r->n_svc);
	o.node = node;
	o.max_services = 70000;
	o.max_frontends = 70000;
	o.max_backends = 101100;
	o.max_flows = quick ? 200000 : 1000000;
	o.max_maglev_services = 16;
	r->dp = dp_open(&o);
	if (!r->dp || world_build(&w, r->n_svc, r->n_be, 0, 0)) {
		fprintf(stderr, "micro %zu: setup failed: %s\n", r->n_svc, strerror(errno));
		exit(1);
	}
	for (int m = 0; m < M_N; m++)
		for (int k = 0; k < KINDS; k++) {
			r->res[m][k] = calloc((size_t)passes, sizeof(double));
			if (!r->res[m][k])
				exit(1);
		}
	t0 = now_ms();
	int serr = dp_sync(r->dp, w.specs, w.n);

	if (serr) {
		fprintf(stderr, "micro %zu: sync failed: %s\n", r->n_svc, strerror(-serr));
		exit(1);
	}
	double prog_ms = now_ms() - t0;

	fprintf(stderr, "%zu services, %zu backends programmed in %.1f ms\n", r->n_svc, r->n_be,
		prog_ms);
	if (r->n_svc == 10000 && !micro_only) {
		uint64_t mem = 0;

		/* From empty twice more (delete all, program all): the best of three counts. */
		for (int rep = 0; rep < 2; rep++) {
			if (dp_sync(r->dp, NULL, 0))
				exit(1);
			t0 = now_ms();
			if (dp_sync(r->dp, w.specs, w.n))
				exit(1);
			if (now_ms() - t0 < prog_ms)
				prog_ms = now_ms() - t0;
		}
		fig("program_10k_svc_100k_be_ms", prog_ms, "ms", 1000, "lower",
		    "from empty, dp_sync of 10,000 services with 100,000 backends; best of 3");
		/* One backend change at that size, averaged over 50 changes. */
		t0 = now_ms();
		for (int c = 0; c < 50; c++) {
			struct dp_service_spec *s = &w.specs[(size_t)c * 97 % w.n];
			struct dp_backend *b = (struct dp_backend *)&s->backends[0];

			b->addr = htonl(0x0b000000u + (uint32_t)c);
			if (dp_service_upsert(r->dp, &s->svc, s->backends, s->n_backends))
				exit(1);
		}
		fig("backend_change_ms_10k_svc", (now_ms() - t0) / 50, "ms", 5, "lower",
		    "one backend replaced in one service, 10,000 services programmed");
		if (!dp_mem_bytes(r->dp, &mem))
			fig("map_mem_mib_10k_svc_100k_be", (double)mem / 1048576.0, "MiB", 0,
			    "lower", "kernel memlock of all maps, 1,000,000-flow conntrack included");
	}
	world_free(&w); /* its service names are reused by the next size's world */

	/*
	 * A test run repeats on the same buffer, and a translated packet is no longer a service
	 * packet; so the packet is sent around a ring of RING extra services, each of whose one
	 * backend is the next one's frontend. Every iteration is then a full service
	 * translation: each round starts from a new client address, so its RING iterations are
	 * RING new flows, and the same round run again (64 times around) is RING established
	 * flows taken in turn (est); the backends' replies run the ring backwards (reply). A
	 * ring of two services gives one flow translated again and again (est_hot).
	 */
	if (ring_add(r->dp) || hot_add(r->dp)) {
		fprintf(stderr, "micro %zu: ring services failed\n", r->n_svc);
		exit(1);
	}
	for (int p = 0; p < 2; p++)
		r->fd[p] = dp_prog_fd(r->dp, progs[p]);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp_d);
	return v[n / 2];
}

/* The figures of one run mode at every size, and its 64k/1 ratio (median of per-pass). */
static void micro_figs(int m, int passes)
{
	static const char *const mode[M_N] = { "tc", "xdp", "xdp_held" };
	static const char *const kind[KINDS] = { "new", "est", "est_hot", "reply" };
	static const char *const ref[M_N][KINDS] = {
		{ "tc test run, JIT; every packet a new flow (ring of services); median of passes",
		  "tc test run, JIT; 1,024 established flows in turn; median of passes",
		  "tc test run, JIT; one established flow again and again; median of passes",
		  "tc test run, JIT; replies of 1,024 established flows in turn (reverse NAT); "
		  "median of passes" },
		{ "XDP test run alone: the dispatcher re-pointed every run (artefact, see "
		  "xdp_repoint); new flows",
		  "XDP test run alone: the dispatcher re-pointed every run (artefact, see "
		  "xdp_repoint); established",
		  "XDP test run alone: dispatcher re-pointed every run; one hot flow",
		  "XDP test run alone: dispatcher re-pointed every run; replies" },
		{ "XDP test run, lb_xdp held by the dispatcher (attached, as in production); every "
		  "packet a new flow; median of passes",
		  "XDP test run, lb_xdp held by the dispatcher (attached, as in production); 1,024 "
		  "established flows in turn; median of passes",
		  "XDP test run, lb_xdp held by the dispatcher; one established flow again and "
		  "again; median of passes",
		  "XDP test run, lb_xdp held by the dispatcher; replies of 1,024 established flows "
		  "(reverse NAT, then FIB lookup and redirect); median of passes" },
	};
	static const double target[KINDS] = { 250, 100, 100, 100 };
	double *ratio = calloc((size_t)passes, sizeof(double));
	char name[80];

	if (!ratio)
		exit(1);
	for (int q = 0; q < passes; q++)
		ratio[q] = runs[NSIZE - 1].res[m][1][q] / runs[0].res[m][1][q];
	for (int i = 0; i < NSIZE; i++) {
		for (int k = 0; k < KINDS; k++) {
			snprintf(name, sizeof(name), "%s_%s_ns_per_pkt_%s", mode[m], kind[k],
				 runs[i].label);
			fig(name, median(runs[i].res[m][k], passes), "ns", target[k], "lower",
			    ref[m][k]);
		}
	}
	snprintf(name, sizeof(name), "%s_est_ratio_64k_to_1_svc", mode[m]);
	fig(name, median(ratio, passes), "ratio", m == M_XDP ? 0 : 1.2, "lower",
	    "established-flow cost at 64,000 services over 1 service: median over passes of "
	    "the ratio within a pass");
	free(ratio);
}

/*
 * New flows once the conntrack table is full, as on a node that has seen more flows than the
 * table holds: every new flow's two entries first evict the least recently used ones. The
 * 1-service instance's table (both directions of max_flows flows) is filled with new flows
 * of the ring, a fifth over its size (the LRU lists are per CPU), and then the same
 * new-flow runs are measured, tc and attached XDP in turn.
 */
static int full_ct(struct size_run *r, int passes)
{
	long entries = 2L * (quick ? 200000 : 1000000), fill = entries * 6 / 5 / (2 * RING);
	double *v[2];
	uint8_t pkt[64];
	uint32_t d;
	int err = 0;

	v[0] = calloc((size_t)passes, sizeof(double));
	v[1] = calloc((size_t)passes, sizeof(double));
	if (!v[0] || !v[1]) {
		free(v[0]);
		free(v[1]);
		return -ENOMEM;
	}
	for (long i = 0; i < fill && !err; i++) {
		tcp_syn(pkt, htonl(0xac200000u + (uint32_t)i), 40000, ring_vip(0), 80);
		err = run_once(r->fd[0], pkt, 54, RING, &d);
	}
	for (int q = 0; q < passes && !err; q++) {
		for (int p = 0; p < 2 && !err; p++) {
			tcp_syn(pkt, htonl(0xac300000u + (uint32_t)(q * 2 + p)), 40000, ring_vip(0), 80);
			err = run_once(r->fd[p], pkt, 54, RING, &d);
			v[p][q] = d;
			if (!err)
				err = ring_check(p ? "xdp" : "tc", "new (full table)", p ? XDP_PASS : 0,
						 30, ring_vip(0));
		}
	}
	if (!err) {
		fig("tc_new_full_ct_ns_per_pkt_1_svc", median(v[0], passes), "ns", 0, "lower",
		    "as tc_new, the conntrack table full: each new flow evicts the oldest entries");
		fig("xdp_held_new_full_ct_ns_per_pkt_1_svc", median(v[1], passes), "ns", 0, "lower",
		    "as xdp_held_new, the conntrack table full: each new flow evicts the oldest "
		    "entries");
	} else {
		fprintf(stderr, "full conntrack table: test run failed: %s\n", strerror(errno));
	}
	free(v[0]);
	free(v[1]);
	return err ? -1 : 0;
}

/*
 * All per-packet figures. First the XDP test run alone (nothing attached), then with each
 * size's lb_xdp held by an attachment: tc and held XDP rounds, every size in each pass.
 */
static void micro_all(const size_t *n_svc, const char *const *labels)
{
	int passes = quick ? 10 : 60;
	double out[KINDS];
	char name[80];
	uint32_t d;

	for (int i = 0; i < NSIZE; i++) {
		runs[i].n_svc = n_svc[i];
		runs[i].n_be = n_svc[i] * 10 < 100000 ? n_svc[i] * 10 : 100000;
		runs[i].label = labels[i];
		micro_setup(&runs[i], passes);
	}
	for (int q = 0; q < passes; q++)
		for (int i = 0; i < NSIZE; i++) {
			if (ring_round(runs[i].fd[1], "xdp", XDP_PASS, 1000 + (uint32_t)q, out))
				exit(1);
			for (int k = 0; k < KINDS; k++)
				runs[i].res[M_XDP][k][q] = out[k];
		}
	for (int i = 0; i < NSIZE; i++)
		if (xdp_hold(runs[i].fd[1], i))
			exit(1);
	for (int q = 0; q < passes; q++)
		for (int i = 0; i < NSIZE; i++) {
			if (ring_round(runs[i].fd[0], "tc", 0, 2000 + (uint32_t)q, out))
				exit(1);
			for (int k = 0; k < KINDS; k++)
				runs[i].res[M_TC][k][q] = out[k];
			if (ring_round(runs[i].fd[1], "xdp", XDP_PASS, 3000 + (uint32_t)q, out))
				exit(1);
			for (int k = 0; k < KINDS; k++)
				runs[i].res[M_XDP_HELD][k][q] = out[k];
		}
	if (full_ct(&runs[0], passes))
		exit(1);
	for (int i = 0; i < NSIZE; i++) {
		/* Baseline: a packet for no service (parse and two lookups), repeated. */
		uint8_t pkt[64];

		tcp_syn(pkt, htonl(0xac1f0001), 40000, htonl(0x0a620001), 80);
		for (int p = 0; p < 2; p++) {
			if (run_once(runs[i].fd[p], pkt, 54, LAPS, &d))
				exit(1);
			snprintf(name, sizeof(name), "%s_pass_ns_per_pkt_%s", p ? "xdp_held" : "tc",
				 runs[i].label);
			fig(name, d, "ns", 0, "lower",
			    "a packet for no service: the harness and lookup floor");
		}
	}
	xdp_release();
	for (int m = 0; m < M_N; m++)
		micro_figs(m, passes);
	for (int i = 0; i < NSIZE; i++) {
		double unheld = median(runs[i].res[M_XDP][1], passes);
		double held = median(runs[i].res[M_XDP_HELD][1], passes);

		snprintf(name, sizeof(name), "xdp_repoint_us_per_run_%s", runs[i].label);
		fig(name, (unheld - held) * LAPS / 1000.0, "us", 0, "lower",
		    "what a test run's dispatcher re-pointing adds to a run of 65,536 established "
		    "packets (xdp est minus xdp_held est)");
	}
	runs_close();
}

/* ---- the lab: first-packet latency, BPF against iptables ---------------------------- */

static char ns_c[32], ns_n[32], ns_b[32];
static pid_t server;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

static int enter_ns(const char *name)
{
	char path[128];
	int fd, err = 0;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET))
		err = -errno;
	close(fd);
	return err;
}

static void lab_down(void)
{
	if (!ns_c[0])
		return;
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
		server = 0;
	}
	sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null",
	   ns_c, ns_n, ns_b);
}

static int lab_up(void)
{
	snprintf(ns_c, sizeof(ns_c), "%sc", tag);
	snprintf(ns_n, sizeof(ns_n), "%sn", tag);
	snprintf(ns_b, sizeof(ns_b), "%sb", tag);
	if (sh("set -e; ip netns add %1$s; ip netns add %2$s; ip netns add %3$s;"
	       "ip link add %4$sc0 netns %1$s type veth peer name %4$su netns %2$s;"
	       "ip link add %4$sv1 netns %2$s type veth peer name eth0 netns %3$s;"
	       "ip -n %1$s addr add 10.0.1.2/24 dev %4$sc0; ip -n %1$s link set %4$sc0 up;"
	       "ip -n %1$s link set lo up; ip -n %1$s route add default via 10.0.1.1;"
	       "ip -n %2$s addr add 10.0.1.1/24 dev %4$su; ip -n %2$s link set %4$su up;"
	       "ip -n %2$s addr add 10.1.1.1/24 dev %4$sv1; ip -n %2$s link set %4$sv1 up;"
	       "ip -n %2$s link set lo up;"
	       "for i in 2 3 4 5 6 7 8 9 10 11; do ip -n %3$s addr add 10.1.1.$i/24 dev eth0; done;"
	       "ip -n %3$s link set eth0 up; ip -n %3$s link set lo up;"
	       "ip -n %3$s route add default via 10.1.1.1;"
	       "ip netns exec %2$s sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
	       "net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.%4$su.rp_filter=0 "
	       "net.ipv4.conf.%4$sv1.rp_filter=0",
	       ns_c, ns_n, ns_b, tag))
		return -1;
	server = fork();
	if (server == 0) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(8080) };
		int one = 1, l;

		signal(SIGTERM, SIG_DFL); /* not the parent's cleanup handler */
		signal(SIGINT, SIG_DFL);
		alarm(1800);
		if (enter_ns(ns_b))
			_exit(2);
		l = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(l, (void *)&a, sizeof(a)) || listen(l, 1024))
			_exit(2);
		for (;;) {
			int c = accept(l, NULL, NULL);

			if (c >= 0)
				close(c);
		}
	}
	usleep(100000);
	return server > 0 ? 0 : -1;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Connect latency (SYN to SYN-ACK through the node) to random services: p50 and p99 in us. */
static int measure(size_t n_svc, double *p50, double *p99)
{
	int samples = quick ? 300 : 2000, warm = 50;
	double *lat = calloc((size_t)samples, sizeof(*lat));
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), got = 0;

	if (!lat || self < 0 || enter_ns(ns_c))
		return -1;
	srand(42);
	for (int i = 0; i < samples + warm; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(80),
					 .sin_addr.s_addr = svc_vip((uint32_t)rand() % n_svc) };
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct timeval tv = { .tv_sec = 2 };
		double t0;

		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		t0 = now_ms();
		if (connect(fd, (void *)&a, sizeof(a)) == 0 && i >= warm)
			lat[got++] = (now_ms() - t0) * 1000.0;
		/* RST on close: no TIME_WAIT piling up over thousands of samples. */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
	}
	setns(self, CLONE_NEWNET);
	close(self);
	if (got < samples * 9 / 10) {
		fprintf(stderr, "only %d of %d connections succeeded\n", got, samples);
		free(lat);
		return -1;
	}
	qsort(lat, (size_t)got, sizeof(*lat), cmp_d);
	*p50 = lat[got / 2];
	*p99 = lat[got * 99 / 100];
	free(lat);
	return 0;
}

static int lat_bpf(size_t n_svc, double *p50, double *p99, double *prog_ms)
{
	struct dp_opts o = { 0 };
	struct world w = { 0 };
	char node[48], ifn[32];
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), err;
	struct dp *dp;
	double t0;

	snprintf(node, sizeof(node), "bench-%s-lab", tag);
	o.node = node;
	o.node_addr = inet_addr("10.0.1.1");
	o.max_services = 20000;
	o.max_backends = 1000;
	o.max_flows = 100000;
	o.max_maglev_services = 4;
	if (self < 0 || enter_ns(ns_n))
		return -1;
	dp = dp_open(&o);
	err = !dp || world_build(&w, n_svc, 2 * n_svc, inet_addr("10.1.1.2"), 0);
	snprintf(ifn, sizeof(ifn), "%su", tag);
	if (!err)
		err = dp_attach_xdp(dp, (int)if_nametoindex(ifn), DP_XDP_AUTO);
	snprintf(ifn, sizeof(ifn), "%sv1", tag);
	if (!err)
		err = dp_attach_tc(dp, (int)if_nametoindex(ifn), false);
	t0 = now_ms();
	if (!err)
		err = dp_sync(dp, w.specs, w.n);
	*prog_ms = now_ms() - t0;
	setns(self, CLONE_NEWNET);
	if (!err)
		err = measure(n_svc, p50, p99);
	if (enter_ns(ns_n) == 0 && dp) {
		dp_uninstall(dp);
		dp_close(dp);
	}
	setns(self, CLONE_NEWNET);
	close(self);
	world_free(&w);
	return err ? -1 : 0;
}

/* kube-proxy's iptables layout: KUBE-SERVICES -> KUBE-SVC-* (statistic) -> KUBE-SEP-* DNAT. */
static int lat_iptables(size_t n_svc, double *p50, double *p99, double *load_ms)
{
	char path[64], addr[32];
	FILE *f;
	double t0;
	int err;

	snprintf(path, sizeof(path), "/tmp/%s-rules", tag);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n");
	for (size_t i = 0; i < n_svc; i++) {
		fprintf(f, ":KUBE-SVC-%06zu - [0:0]\n", i);
		for (int e = 0; e < 2; e++)
			fprintf(f, ":KUBE-SEP-%06zu-%d - [0:0]\n", i, e);
	}
	fprintf(f, "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
	fprintf(f, "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
	for (size_t i = 0; i < n_svc; i++) {
		struct in_addr a = { .s_addr = svc_vip((uint32_t)i) };

		inet_ntop(AF_INET, &a, addr, sizeof(addr));
		fprintf(f, "-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"bench/svc-%zu\" "
			   "-m tcp --dport 80 -j KUBE-SVC-%06zu\n", addr, i, i);
		fprintf(f, "-A KUBE-SVC-%06zu -m statistic --mode random --probability 0.5 -j "
			   "KUBE-SEP-%06zu-0\n-A KUBE-SVC-%06zu -j KUBE-SEP-%06zu-1\n", i, i, i, i);
		for (int e = 0; e < 2; e++)
			fprintf(f, "-A KUBE-SEP-%06zu-%d -p tcp -m tcp -j DNAT --to-destination "
				   "10.1.1.%zu:8080\n", i, e, 2 + (2 * i + (size_t)e) % 10);
	}
	fprintf(f, "COMMIT\n");
	fclose(f);
	t0 = now_ms();
	err = sh("ip netns exec %s iptables-restore < %s", ns_n, path);
	*load_ms = now_ms() - t0;
	unlink(path);
	if (err)
		return -1;
	err = measure(n_svc, p50, p99);
	sh("ip netns exec %s iptables -t nat -F; ip netns exec %s iptables -t nat -X", ns_n, ns_n);
	return err;
}

static void at_exit(void)
{
	runs_close();
	xdp_release();
	lab_down();
}

static void on_signal(int sig)
{
	(void)sig;
	exit(1);
}

int main(int argc, char **argv)
{
	const char *out = argc > 1 ? argv[1] : "bench/results/dp.json";
	char dat[512];
	size_t micro_n[] = { 1, 100, 10000, 64000 };
	const char *micro_l[] = { "1_svc", "100_svc", "10k_svc", "64k_svc" };
	size_t lab_full[] = { 100, 5000, 10000 }, lab_quick[] = { 100, 1000 };
	size_t *lab_n = quick ? lab_quick : lab_full;
	double lab_res[3][4] = { { 0 } };
	FILE *f;

	quick = getenv("QUICK") && *getenv("QUICK") && strcmp(getenv("QUICK"), "0");
	micro_only = getenv("MICRO") && *getenv("MICRO") && strcmp(getenv("MICRO"), "0");
	lab_n = quick ? lab_quick : lab_full;
	size_t n_lab = quick ? 2 : 3;

	log_init("dp_bench", LOG_LVL_WARN);
	libbpf_set_print(NULL);
	snprintf(tag, sizeof(tag), "q%03x", (unsigned)getpid() & 0xfff);
	atexit(at_exit);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	floor_figs();
	micro_all(micro_n, micro_l);

	if (micro_only)
		n_lab = 0;
	else if (lab_up()) {
		fprintf(stderr, "lab setup failed\n");
		lab_down();
		return 1;
	}
	for (size_t i = 0; i < n_lab; i++) {
		char name[80], ref[160];
		double prog_ms = 0, load_ms = 0;

		if (lat_bpf(lab_n[i], &lab_res[i][0], &lab_res[i][1], &prog_ms) ||
		    lat_iptables(lab_n[i], &lab_res[i][2], &lab_res[i][3], &load_ms)) {
			fprintf(stderr, "latency at %zu services failed\n", lab_n[i]);
			lab_down();
			return 1;
		}
		snprintf(ref, sizeof(ref), "kube-proxy iptables: p50 %.1f us", lab_res[i][2]);
		snprintf(name, sizeof(name), "first_pkt_p50_us_%zu_svc_bpf", lab_n[i]);
		fig(name, lab_res[i][0], "us", 0, "lower", ref);
		snprintf(ref, sizeof(ref), "kube-proxy iptables: p99 %.1f us", lab_res[i][3]);
		snprintf(name, sizeof(name), "first_pkt_p99_us_%zu_svc_bpf", lab_n[i]);
		fig(name, lab_res[i][1], "us", 0, "lower", ref);
		snprintf(name, sizeof(name), "first_pkt_p50_us_%zu_svc_iptables", lab_n[i]);
		fig(name, lab_res[i][2], "us", 0, "lower", "iptables-restore, nat table, same lab");
		snprintf(name, sizeof(name), "first_pkt_p99_us_%zu_svc_iptables", lab_n[i]);
		fig(name, lab_res[i][3], "us", 0, "lower", "iptables-restore, nat table, same lab");
		snprintf(name, sizeof(name), "first_pkt_p50_iptables_over_bpf_%zu_svc", lab_n[i]);
		fig(name, lab_res[i][0] > 0 ? lab_res[i][2] / lab_res[i][0] : 0, "ratio", 0, "higher",
		    "iptables p50 / BPF p50");
		snprintf(name, sizeof(name), "iptables_restore_ms_%zu_svc", lab_n[i]);
		fig(name, load_ms, "ms", 0, "lower", "kube-proxy-style rules, 2 endpoints a service");
		snprintf(name, sizeof(name), "bpf_program_ms_%zu_svc", lab_n[i]);
		fig(name, prog_ms, "ms", 0, "lower", "dp_sync, 2 endpoints a service");
	}
	lab_down();

	f = fopen(out, "w");
	if (!f)
		return 1;
	struct utsname u;

	uname(&u);
	fprintf(f, "{\"bench\": \"dp\", \"quick\": %s, \"machine\": \"%ld cores, Linux %s\",\n \"figures\": [\n",
		quick ? "true" : "false", sysconf(_SC_NPROCESSORS_ONLN), u.release);
	for (int i = 0; i < nfig; i++) {
		fprintf(f, "  {\"name\": \"%s\", \"value\": %.3f, \"unit\": \"%s\"", figs[i].name,
			figs[i].value, figs[i].unit);
		if (figs[i].target > 0)
			fprintf(f, ", \"target\": %g", figs[i].target);
		fprintf(f, ", \"better\": \"%s\", \"reference\": \"%s\"}%s\n", figs[i].better,
			figs[i].ref, i + 1 < nfig ? "," : "");
	}
	fprintf(f, " ]}\n");
	fclose(f);

	/*
	 * Plot data: services, tc est, tc new, xdp est, xdp new (held: the program as attached),
	 * tc floor, xdp floor / services,
	 * bpf p50, ipt p50.
	 */
	snprintf(dat, sizeof(dat), "%s", out);
	strcpy(strrchr(dat, '.'), "-cost.dat");
	f = fopen(dat, "w");
	for (int i = 0; f && i < 4; i++) {
		double v[6] = { 0 };
		const char *k[6] = { "tc_est_ns_per_pkt_", "tc_new_ns_per_pkt_", "xdp_held_est_ns_per_pkt_",
				     "xdp_held_new_ns_per_pkt_", "tc_floor_ns_per_pkt", "xdp_floor_ns_per_pkt" };

		for (int j = 0; j < 6; j++) {
			char name[80];

			snprintf(name, sizeof(name), "%s%s", k[j], j < 4 ? micro_l[i] : "");
			for (int x = 0; x < nfig; x++)
				if (!strcmp(figs[x].name, name))
					v[j] = figs[x].value;
		}
		fprintf(f, "%zu %.2f %.2f %.2f %.2f %.2f %.2f\n", micro_n[i], v[0], v[1], v[2], v[3],
			v[4], v[5]);
	}
	if (f)
		fclose(f);
	strcpy(strrchr(dat, '-'), "-lat.dat");
	f = fopen(dat, "w");
	for (size_t i = 0; f && i < n_lab; i++)
		fprintf(f, "%zu %.2f %.2f %.2f %.2f\n", lab_n[i], lab_res[i][0], lab_res[i][1],
			lab_res[i][2], lab_res[i][3]);
	if (f)
		fclose(f);
	return 0;
}
