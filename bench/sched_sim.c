// SPDX-License-Identifier: Apache-2.0
/*
 * The scheduler simulator: the very same scheduler code (libshoal's scheduler/) over
 * in-memory clusters, binding in memory. It runs kube-scheduler's scheduler_perf workloads
 * (basic, node affinity, required pod anti-affinity, required pod affinity, preferred
 * affinity, topology spread, plus gangs of 8 and mixed priorities with preemption) on
 * clusters of three zones, and a trace-driven prediction run, and prints one JSON object of
 * figures (DESIGN.md "Benchmarks") on stdout.
 *
 * Throughput is pods placed per second of scheduling (the pods are created, parsed and
 * queued first, as scheduler_perf creates them before it measures); per-pod latency is one
 * scheduling cycle. Every placement is then checked by sched_verify(), which shares no code
 * with the scheduler's counters: violations must be 0.
 *
 * Usage: sched_sim [--nodes N[,N...]] [--quick] [--parallelism P] [--only WORKLOAD]
 *                  [--plot-data FILE] [--machine TEXT]
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hashmap.h"
#include "sched.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct sim {
	struct sched *s;
	int64_t now;
	json_t *nodes, *pods;
	struct hashmap *bykey;
	char (*evict)[128];
	int nevict, evcap;
	int parallelism;
	const char *profile_cfg;
	bool pred;
};

static int64_t sim_now(void *ctx)
{
	return ((struct sim *)ctx)->now;
}

static int sim_bind(void *ctx, const char *ns, const char *name, const char *uid,
		    const char *node)
{
	struct sim *sm = ctx;
	char key[256];
	(void)uid;
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	json_t *p = hashmap_get(sm->bykey, key);
	if (p)
		json_object_set_new(json_object_get(p, "spec"), "nodeName", json_string(node));
	return 0;
}

static int sim_evict(void *ctx, const char *ns, const char *name, const char *uid,
		     const char *preemptor)
{
	struct sim *sm = ctx;
	(void)uid;
	(void)preemptor;
	if (sm->nevict >= sm->evcap) {
		sm->evcap = sm->evcap ? sm->evcap * 2 : 64;
		sm->evict = realloc(sm->evict, (size_t)sm->evcap * sizeof(*sm->evict));
		if (!sm->evict)
			abort();
	}
	snprintf(sm->evict[sm->nevict++], sizeof(sm->evict[0]), "%s/%s", ns, name);
	return 0;
}

static struct sim *sim_new(int parallelism, bool pred, const char *extra_cfg)
{
	struct sim *sm = calloc(1, sizeof(*sm));
	char cfgtxt[1024], err[256];
	snprintf(cfgtxt, sizeof(cfgtxt),
		 "{\"parallelism\": %d, \"seed\": 42, \"prediction\": {\"enabled\": %s, "
		 "\"bucketMinutes\": 60, \"minSamples\": 12, \"halfLifeHours\": 72%s}}",
		 parallelism, pred ? "true" : "false", extra_cfg ? extra_cfg : "");
	json_t *cj = json_loads(cfgtxt, 0, NULL);
	struct sched_config *cfg = sched_config_parse(cj, err, sizeof(err));
	json_decref(cj);
	if (!cfg) {
		fprintf(stderr, "config: %s\n", err);
		exit(1);
	}
	struct sched_ops ops = { .ctx = sm, .bind = sim_bind, .evict = sim_evict, .now_ms = sim_now };
	sm->now = 1000;
	sm->s = sched_new(cfg, &ops);
	sched_config_free(cfg);
	sm->nodes = json_array();
	sm->pods = json_array();
	sm->bykey = hashmap_new(1 << 16);
	sm->parallelism = parallelism;
	sm->pred = pred;
	return sm;
}

static void sim_free(struct sim *sm)
{
	sched_free(sm->s);
	json_decref(sm->nodes);
	json_decref(sm->pods);
	hashmap_free(sm->bykey);
	free(sm->evict);
	free(sm);
}

static void add_nodes(struct sim *sm, int n, const char *cpu, const char *mem)
{
	for (int i = 0; i < n; i++) {
		char name[32], zone[16];
		snprintf(name, sizeof(name), "node-%05d", i);
		snprintf(zone, sizeof(zone), "zone-%d", i % 3);
		json_t *nd = json_pack(
			"{s:s,s:{s:s,s:{s:s,s:s}},s:{s:{s:s,s:s,s:s}}}", "kind", "Node", "metadata",
			"name", name, "labels", "kubernetes.io/hostname", name,
			"topology.kubernetes.io/zone", zone, "status", "allocatable", "cpu", cpu,
			"memory", mem, "pods", "110");
		char err[256];
		if (sched_node_upsert(sm->s, nd, err, sizeof(err))) {
			fprintf(stderr, "node: %s\n", err);
			exit(1);
		}
		json_array_append_new(sm->nodes, nd);
	}
}

/* Adds a pod; spec_extra is merged into spec, labels into metadata.labels. */
static int add_pod(struct sim *sm, const char *ns, const char *name, const char *cpu,
		   const char *mem, json_t *labels, json_t *spec_extra)
{
	json_t *spec = json_pack("{s:[{s:s,s:s,s:{s:{s:s,s:s}}}]}", "containers", "name", "c",
				 "image", "pause", "resources", "requests", "cpu", cpu, "memory",
				 mem);
	if (spec_extra) {
		json_object_update(spec, spec_extra);
		json_decref(spec_extra);
	}
	json_t *p = json_pack("{s:s,s:{s:s,s:s,s:s,s:o},s:o}", "kind", "Pod", "metadata", "name",
			      name, "namespace", ns, "uid", name, "labels",
			      labels ? labels : json_object(), "spec", spec);
	char err[512], key[256];
	int rc = sched_pod_upsert(sm->s, p, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "pod %s: %s\n", name, err);
		exit(1);
	}
	json_array_append_new(sm->pods, p);
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	hashmap_put(sm->bykey, key, p, NULL);
	return 0;
}

static void process_evictions(struct sim *sm)
{
	for (int i = 0; i < sm->nevict; i++) {
		json_t *p = hashmap_get(sm->bykey, sm->evict[i]);
		char *slash = strchr(sm->evict[i], '/');
		*slash = 0;
		sched_pod_delete(sm->s, sm->evict[i], slash + 1);
		*slash = '/';
		if (p)
			json_object_set_new(p, "status", json_pack("{s:s}", "phase", "Failed"));
	}
	sm->nevict = 0;
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct result {
	double pods_per_s, p50_ms, p99_ms;
	int placed, pending, violations;
	double util, frag;
	char verr[256];
};

/* Schedules until the queue is dry (the virtual clock jumps over back-off and time-outs). */
static void run_measured(struct sim *sm, int expect, struct result *r)
{
	double *lat = malloc(sizeof(double) * (size_t)(expect * 4 + 64));
	int nlat = 0, cap = expect * 4 + 64;
	struct sched_stats st0, st1;
	sched_stats(sm->s, &st0);
	double t0 = now_s();
	for (int rounds = 0; rounds < 1000; rounds++) {
		for (;;) {
			double a = now_s();
			int rc = sched_schedule_one(sm->s);
			double b = now_s();
			if (rc <= 0)
				break;
			if (nlat < cap)
				lat[nlat++] = (b - a) * 1000;
			if (sm->nevict)
				process_evictions(sm);
		}
		int64_t w = sched_next_wakeup_ms(sm->s);
		if (w < 0)
			break;
		if (w > sm->now)
			sm->now = w;
	}
	double el = now_s() - t0;
	sched_stats(sm->s, &st1);
	r->placed = (int)(st1.scheduled - st0.scheduled);
	r->pods_per_s = el > 0 ? r->placed / el : 0;
	qsort(lat, (size_t)nlat, sizeof(double), dcmp);
	r->p50_ms = nlat ? lat[nlat / 2] : 0;
	r->p99_ms = nlat ? lat[(int)(nlat * 0.99)] : 0;
	r->pending = st1.active + st1.backoff + st1.unsched + st1.waiting;
	free(lat);
}

/* Utilisation (cpu requested / allocatable) and fragmentation: how many pods of the median
 * size still fit, as a share of what would fit if the free capacity were one pool. */
static void quality(struct sim *sm, struct result *r, int64_t med_cpu, int64_t med_mem)
{
	int64_t ac = 0, rc = 0, fit = 0, pool_c = 0, pool_m = 0, pool_p = 0;
	for (size_t i = 0; i < json_array_size(sm->nodes); i++) {
		const char *name = json_string_value(json_object_get(
			json_object_get(json_array_get(sm->nodes, i), "metadata"), "name"));
		struct sched_node_info ni;
		if (sched_node_info(sm->s, name, &ni))
			continue;
		ac += ni.alloc_cpu;
		rc += ni.req_cpu + ni.batch_req_cpu;
		int64_t fc = ni.alloc_cpu - ni.req_cpu, fm = ni.alloc_mem - ni.req_mem;
		int64_t a = fc / med_cpu, b = fm / med_mem;
		int64_t np = 110 - ni.pods;
		int64_t k = a < b ? a : b;
		fit += k < np ? k : np;
		pool_c += fc;
		pool_m += fm;
		pool_p += np;
	}
	r->util = ac ? (double)rc / (double)ac : 0;
	int64_t ideal = pool_c / med_cpu < pool_m / med_mem ? pool_c / med_cpu : pool_m / med_mem;
	if (pool_p < ideal)
		ideal = pool_p;
	r->frag = ideal > 0 ? 1.0 - (double)fit / (double)ideal : 0;
	r->violations = sched_verify(sm->nodes, sm->pods, r->verr, sizeof(r->verr));
}

/* ---- workloads ---- */

enum wl {
	WL_BASIC,
	WL_NODEAFF,
	WL_ANTI,
	WL_AFF,
	WL_PREF,
	WL_SPREAD,
	WL_GANG,
	WL_PREEMPT,
	WL_N
};
static const char *wl_name[WL_N] = { "basic",		   "node_affinity",
				     "required_anti_affinity", "required_affinity",
				     "preferred_affinity",	   "topology_spread",
				     "gang8",			   "preemption" };
/* kube-scheduler's published scheduler_perf thresholds at 5,000 nodes (pods/s) */
static const double kube_ref[WL_N] = { 680, 220, 60, 35, 90, 460, 0, 0 };
static const char *kube_ref_txt[WL_N] = {
	"kube-scheduler scheduler_perf SchedulingBasic 5000 nodes: 680-810 pods/s",
	"kube-scheduler scheduler_perf SchedulingNodeAffinity 5000 nodes: 220 pods/s",
	"kube-scheduler scheduler_perf SchedulingPodAntiAffinity 5000 nodes: 60 pods/s",
	"kube-scheduler scheduler_perf SchedulingPodAffinity 5000 nodes: 35 pods/s",
	"kube-scheduler scheduler_perf SchedulingPreferredPodAffinity 5000 nodes: 90 pods/s",
	"kube-scheduler scheduler_perf TopologySpreading 5000 nodes: 460 pods/s",
	NULL,
	NULL
};
static const double our_target[WL_N] = { 2000, 1500, 600, 350, 0, 1500, 0, 0 };

static json_t *wl_labels(enum wl w, int i)
{
	switch (w) {
	case WL_ANTI:
		return json_pack("{s:s,s:s}", "name", "test", "color", "green");
	case WL_AFF:
		return json_pack("{s:s}", "foo", "bar");
	case WL_PREF:
		return json_pack("{s:s}", "foo", "pref");
	case WL_SPREAD:
		return json_pack("{s:s}", "app", "spread");
	case WL_GANG: {
		char g[32];
		snprintf(g, sizeof(g), "gang-%d", i / 8);
		return json_pack("{s:s}", "scheduling.x-k8s.io/pod-group", g);
	}
	default:
		return json_object();
	}
}

static json_t *wl_spec(enum wl w, int i, bool init)
{
	(void)i;
	switch (w) {
	case WL_NODEAFF:
		return json_loads("{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
				  "{\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"topology.kubernetes.io/zone\","
				  "\"operator\":\"In\",\"values\":[\"zone-0\",\"zone-1\"]}]}]}}}}",
				  0, NULL);
	case WL_ANTI:
		return json_loads("{\"affinity\":{\"podAntiAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
				  "[{\"labelSelector\":{\"matchExpressions\":[{\"key\":\"color\",\"operator\":\"In\","
				  "\"values\":[\"green\"]}]},\"topologyKey\":\"kubernetes.io/hostname\"}]}}}",
				  0, NULL);
	case WL_AFF:
		return json_loads("{\"affinity\":{\"podAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
				  "[{\"labelSelector\":{\"matchLabels\":{\"foo\":\"bar\"}},"
				  "\"topologyKey\":\"topology.kubernetes.io/zone\"}]}}}",
				  0, NULL);
	case WL_PREF:
		return json_loads("{\"affinity\":{\"podAffinity\":{\"preferredDuringSchedulingIgnoredDuringExecution\":"
				  "[{\"weight\":1,\"podAffinityTerm\":{\"labelSelector\":{\"matchLabels\":{\"foo\":\"pref\"}},"
				  "\"topologyKey\":\"kubernetes.io/hostname\"}}]}}}",
				  0, NULL);
	case WL_SPREAD:
		return json_loads("{\"topologySpreadConstraints\":[{\"maxSkew\":1,\"topologyKey\":"
				  "\"topology.kubernetes.io/zone\",\"whenUnsatisfiable\":\"DoNotSchedule\","
				  "\"labelSelector\":{\"matchLabels\":{\"app\":\"spread\"}}}]}",
				  0, NULL);
	case WL_PREEMPT:
		return json_pack("{s:i}", "priority", init ? 1 : 1000);
	default:
		return NULL;
	}
}

struct wl_size {
	int init, measure;
};

static FILE *plot_dat; /* rows: workload nodes pods_per_s kube_reference */

static void fig(json_t *figs, const char *name, double v, const char *unit, double target,
		const char *better, const char *ref)
{
	json_t *f = json_pack("{s:s,s:f,s:s}", "name", name, "value", round(v * 100) / 100, "unit",
			      unit);
	if (target > 0)
		json_object_set_new(f, "target", json_real(target));
	if (better)
		json_object_set_new(f, "better", json_string(better));
	if (ref)
		json_object_set_new(f, "reference", json_string(ref));
	json_array_append_new(figs, f);
	fprintf(stderr, "  %-48s %10.2f %s\n", name, v, unit);
}

static void run_workload(enum wl w, int nodes, int par, bool quick, json_t *figs)
{
	struct sim *sm = sim_new(par, false, NULL);
	struct wl_size sz;
	const char *cpu = "100m", *mem = "500Mi";
	if (w == WL_PREEMPT) {
		/* every node full of low-priority pods; high-priority pods must preempt */
		sz.init = nodes * 4;
		sz.measure = quick ? 100 : (nodes >= 5000 ? 1000 : 500);
		add_nodes(sm, nodes, "4", "32Gi");
		cpu = "1";
		mem = "1Gi";
	} else {
		sz.init = quick ? nodes / 5 : 1000;
		sz.measure = quick ? (nodes >= 5000 ? 1000 : 500) : (nodes >= 5000 ? 4000 : 2000);
		if (w == WL_ANTI && sz.init + sz.measure > nodes) {
			/* one pod per host: leave hosts for every pod */
			sz.init = nodes / 5;
			sz.measure = nodes * 3 / 5;
		}
		add_nodes(sm, nodes, "32", "256Gi");
	}
	if (w == WL_GANG) {
		int groups = (sz.init + sz.measure) / 8 + 1;
		for (int g = 0; g < groups; g++) {
			char n[32];
			snprintf(n, sizeof(n), "gang-%d", g);
			json_t *pg = json_pack("{s:{s:s,s:s},s:{s:i,s:i}}", "metadata", "name", n,
					       "namespace", "sim", "spec", "minMember", 8,
					       "scheduleTimeoutSeconds", 60);
			sched_podgroup_upsert(sm->s, pg, NULL, 0);
			json_decref(pg);
		}
	}
	char name[64];
	for (int i = 0; i < sz.init; i++) {
		snprintf(name, sizeof(name), "init-%d", i);
		add_pod(sm, "sim", name, cpu, mem, wl_labels(w, i), wl_spec(w, i, true));
	}
	struct result ri = { 0 };
	run_measured(sm, sz.init, &ri);
	double t0 = now_s();
	for (int i = 0; i < sz.measure; i++) {
		snprintf(name, sizeof(name), "m-%d", i);
		int gi = w == WL_GANG ? sz.init + i : i;
		add_pod(sm, "sim", name, w == WL_PREEMPT ? "2" : cpu, mem, wl_labels(w, gi),
			wl_spec(w, i, false));
	}
	double parse_us = (now_s() - t0) * 1e6 / (sz.measure ? sz.measure : 1);
	struct result r = { 0 };
	run_measured(sm, sz.measure, &r);
	quality(sm, &r, 100, 500LL * 1024 * 1024 * 1000);
	char fn[128];
	const char *k = nodes >= 1000 ? "k" : "";
	int nn = nodes >= 1000 ? nodes / 1000 : nodes;
	snprintf(fn, sizeof(fn), "%s_%d%s_pods_per_s", wl_name[w], nn, k);
	fig(figs, fn, r.pods_per_s, "pods/s", nodes >= 5000 ? our_target[w] : 0, "higher",
	    nodes >= 5000 ? kube_ref_txt[w] : NULL);
	if (nodes >= 5000 && kube_ref[w] > 0) {
		snprintf(fn, sizeof(fn), "%s_%d%s_vs_kube_ratio", wl_name[w], nn, k);
		fig(figs, fn, r.pods_per_s / kube_ref[w], "x", 0, "higher", kube_ref_txt[w]);
	}
	if (plot_dat)
		fprintf(plot_dat, "%s %d %.1f %.1f\n", wl_name[w], nodes, r.pods_per_s,
			nodes >= 5000 ? kube_ref[w] : 0.0);
	snprintf(fn, sizeof(fn), "%s_%d%s_latency_p50", wl_name[w], nn, k);
	fig(figs, fn, r.p50_ms, "ms", 0, "lower", NULL);
	snprintf(fn, sizeof(fn), "%s_%d%s_latency_p99", wl_name[w], nn, k);
	fig(figs, fn, r.p99_ms, "ms", 0, "lower", NULL);
	snprintf(fn, sizeof(fn), "%s_%d%s_violations", wl_name[w], nn, k);
	fig(figs, fn, r.violations, "count", 0, "lower", NULL);
	if (r.violations)
		fprintf(stderr, "  VIOLATION: %s\n", r.verr);
	snprintf(fn, sizeof(fn), "%s_%d%s_placed", wl_name[w], nn, k);
	fig(figs, fn, r.placed, "pods", 0, "higher", NULL);
	snprintf(fn, sizeof(fn), "%s_%d%s_pending", wl_name[w], nn, k);
	fig(figs, fn, r.pending, "pods", 0, "lower", NULL);
	if (w == WL_BASIC || w == WL_PREEMPT) {
		snprintf(fn, sizeof(fn), "%s_%d%s_utilisation", wl_name[w], nn, k);
		fig(figs, fn, r.util * 100, "%", 0, "higher", NULL);
		snprintf(fn, sizeof(fn), "%s_%d%s_fragmentation", wl_name[w], nn, k);
		fig(figs, fn, r.frag * 100, "% of median pods lost", 0, "lower", NULL);
		snprintf(fn, sizeof(fn), "%s_%d%s_parse_us_per_pod", wl_name[w], nn, k);
		fig(figs, fn, parse_us, "us", 0, "lower", NULL);
	}
	sim_free(sm);
}

/* ---- the prediction trace run ----
 * Online workloads with diurnal usage (peaks at different hours) and occasional bursts;
 * their requests are sized for the peak with the usual head-room, so their real usage is
 * well under requests most of the day. Batch jobs use what they request. The truth is a
 * deterministic function of (workload, time) plus seeded noise: the scheduler learns from
 * 7 days of samples, places everything, and the next 2 days are replayed against the
 * placement. Compared: request-based placement (prediction off) against LoadAware with batch
 * overcommit. */

struct tw {
	double req_cpu;	 /* cores */
	double base, amp; /* usage = base + amp * diurnal, in cores */
	double phase;	 /* hour of peak */
	double burst;	 /* probability of a burst per 10 min */
	int replicas;
};

static double rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return (double)(*x >> 11) / 9007199254740992.0;
}

static double usage(const struct tw *w, int wi, int rep, int64_t t_min, uint64_t seed)
{
	double h = fmod((double)t_min / 60.0, 24.0);
	double d = 0.5 + 0.5 * cos((h - w->phase) / 24.0 * 2 * M_PI);
	uint64_t x = seed ^ ((uint64_t)wi * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)rep << 32) ^
		     ((uint64_t)(t_min / 10) * 0xbf58476d1ce4e5b9ull);
	x = x ? x : 1;
	rnd(&x);
	double noise = 1 + 0.08 * (rnd(&x) - 0.5);
	double u = (w->base + w->amp * d * d) * noise;
	if (rnd(&x) < w->burst)
		u *= 1.6;
	return u;
}

static void run_prediction(int nodes, int par, bool quick, json_t *figs)
{
	int nw = quick ? 20 : 60;
	int train_days = quick ? 3 : 7, eval_days = 2;
	struct tw *ws = calloc((size_t)nw, sizeof(*ws));
	uint64_t x = 7;
	for (int i = 0; i < nw; i++) {
		struct tw *w = &ws[i];
		w->req_cpu = 2 + (int)(rnd(&x) * 3); /* 2..4 cores */
		w->base = w->req_cpu * (0.15 + 0.1 * rnd(&x));
		w->amp = w->req_cpu * (0.25 + 0.15 * rnd(&x));
		w->phase = rnd(&x) * 24;
		w->burst = i % 5 == 0 ? 0.02 : 0.002;
	}
	/* online replicas fill ~55% of the cluster's cpu by requests */
	double cores = 32.0 * nodes, online = 0;
	int per = (int)(cores * 0.55 / nw);
	for (int i = 0; i < nw; i++) {
		ws[i].replicas = (int)(per / ws[i].req_cpu);
		online += ws[i].replicas * ws[i].req_cpu;
	}
	int nbatch = (int)(cores * 1.0); /* 1-core jobs: more than fit */
	double res[2][5]; /* [mode][placed batch, util, contention, violations, max use] */
	for (int mode = 0; mode < 2; mode++) {
		struct sim *sm = sim_new(par, mode == 1, ", \"thresholdPercent\": 95, \"margin\": 0.1");
		add_nodes(sm, nodes, "32", "256Gi");
		char name[64], owner[64];
		for (int i = 0; i < nw; i++)
			for (int r = 0; r < ws[i].replicas; r++) {
				snprintf(name, sizeof(name), "w%d-%d", i, r);
				snprintf(owner, sizeof(owner), "w%d", i);
				char cpu[16];
				snprintf(cpu, sizeof(cpu), "%d", (int)ws[i].req_cpu);
				json_t *lab = json_pack("{s:s}", "app", owner);
				add_pod(sm, "prod", name, cpu, "2Gi", lab, NULL);
			}
		/* owner references, so that replicas share one profile */
		for (size_t i = 0; i < json_array_size(sm->pods); i++) {
			json_t *p = json_array_get(sm->pods, i);
			const char *app = json_string_value(json_object_get(
				json_object_get(json_object_get(p, "metadata"), "labels"), "app"));
			json_object_set_new(json_object_get(p, "metadata"), "ownerReferences",
					    json_pack("[{s:s,s:s,s:b}]", "kind", "ReplicaSet", "name",
						      app, "controller", 1));
			sched_pod_upsert(sm->s, p, NULL, 0);
		}
		/* training: samples every 10 minutes (wall clock starts at midnight) */
		if (mode == 1) {
			for (int64_t t = 0; t < (int64_t)train_days * 1440; t += 10)
				for (int i = 0; i < nw; i++)
					for (int r = 0; r < ws[i].replicas && r < 3; r++) {
						snprintf(name, sizeof(name), "w%d-%d", i, r);
						double u = usage(&ws[i], i, r, t, 1);
						sched_usage_sample(sm->s, "prod", name,
								   (int64_t)(u * 1000),
								   1LL << 30, t * 60000);
					}
			sched_predict_refresh(sm->s, (int64_t)train_days * 86400000LL);
		}
		struct result r0;
		run_measured(sm, 1000, &r0);
		for (int b = 0; b < nbatch; b++) {
			snprintf(name, sizeof(name), "job-%d", b);
			add_pod(sm, "batch", name, "1", "1Gi", json_object(),
				json_pack("{s:s}", "priorityClassName", "batch"));
		}
		struct result rb;
		run_measured(sm, nbatch, &rb);
		/* evaluation: replay truth against the placement */
		int nn = nodes;
		double *use = calloc((size_t)nn, sizeof(double));
		int64_t contention = 0, steps = 0;
		double util = 0, maxu = 0;
		int placed_batch = 0;
		struct hashmap *nidx = hashmap_new((size_t)nn * 2);
		for (int i = 0; i < nn; i++) {
			const char *n = json_string_value(json_object_get(
				json_object_get(json_array_get(sm->nodes, (size_t)i), "metadata"),
				"name"));
			hashmap_put(nidx, n, (void *)(intptr_t)(i + 1), NULL);
		}
		int np = (int)json_array_size(sm->pods);
		int *pn = calloc((size_t)np, sizeof(int));
		for (int i = 0; i < np; i++) {
			json_t *p = json_array_get(sm->pods, (size_t)i);
			const char *nd = json_string_value(
				json_object_get(json_object_get(p, "spec"), "nodeName"));
			pn[i] = nd ? (int)(intptr_t)hashmap_get(nidx, nd) - 1 : -1;
			const char *ns = json_string_value(
				json_object_get(json_object_get(p, "metadata"), "namespace"));
			if (pn[i] >= 0 && !strcmp(ns, "batch"))
				placed_batch++;
		}
		int64_t t_start = (int64_t)train_days * 1440;
		for (int64_t t = t_start; t < t_start + eval_days * 1440; t += 10) {
			memset(use, 0, sizeof(double) * (size_t)nn);
			int idx = 0;
			for (int i = 0; i < nw; i++)
				for (int r = 0; r < ws[i].replicas; r++, idx++)
					if (pn[idx] >= 0)
						use[pn[idx]] += usage(&ws[i], i, r, t, 2);
			for (; idx < np; idx++)
				if (pn[idx] >= 0)
					use[pn[idx]] += 0.95;
			for (int i = 0; i < nn; i++) {
				if (use[i] > 32.0)
					contention++;
				if (use[i] > maxu)
					maxu = use[i];
				util += (use[i] > 32 ? 32 : use[i]) / 32.0;
				steps++;
			}
		}
		res[mode][0] = placed_batch;
		res[mode][1] = util / (double)steps;
		res[mode][2] = (double)contention;
		res[mode][3] = rb.violations;
		res[mode][4] = maxu / 32.0;
		free(use);
		free(pn);
		hashmap_free(nidx);
		sim_free(sm);
	}
	double work0 = online + res[0][0], work1 = online + res[1][0];
	fig(figs, "prediction_work_placed_request_based", work0, "cores requested", 0, "higher",
	    NULL);
	fig(figs, "prediction_work_placed_loadaware", work1, "cores requested", 0, "higher", NULL);
	fig(figs, "prediction_work_gained", (work1 / work0 - 1) * 100, "%", 20, "higher",
	    "request-based placement of the same pods on the same nodes");
	fig(figs, "prediction_utilisation_request_based", res[0][1] * 100, "%", 0, "higher", NULL);
	fig(figs, "prediction_utilisation_loadaware", res[1][1] * 100, "%", 0, "higher", NULL);
	fig(figs, "prediction_busiest_node_request_based", res[0][4] * 100, "% of cpu", 0, "lower",
	    NULL);
	fig(figs, "prediction_busiest_node_loadaware", res[1][4] * 100, "% of cpu", 0, "lower",
	    NULL);
	fig(figs, "prediction_contention_events_request_based", res[0][2], "node-10min", 0,
	    "lower", NULL);
	fig(figs, "prediction_contention_events_loadaware", res[1][2], "node-10min",
	    res[0][2], "lower", "at most the request-based run's");
	free(ws);
}

int main(int argc, char **argv)
{
	bool quick = false;
	int par = 0;
	char nodes_arg[128] = "500,5000";
	const char *only = NULL, *machine = "";
	static struct option lo[] = { { "quick", no_argument, 0, 'q' },
				      { "nodes", required_argument, 0, 'n' },
				      { "parallelism", required_argument, 0, 'p' },
				      { "only", required_argument, 0, 'o' },
				      { "plot-data", required_argument, 0, 'd' },
				      { "machine", required_argument, 0, 'm' },
				      { 0, 0, 0, 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "qn:p:o:d:m:", lo, NULL)) != -1) {
		switch (c) {
		case 'q':
			quick = true;
			break;
		case 'n':
			snprintf(nodes_arg, sizeof(nodes_arg), "%s", optarg);
			break;
		case 'p':
			par = atoi(optarg);
			break;
		case 'o':
			only = optarg;
			break;
		case 'd':
			plot_dat = fopen(optarg, "w");
			if (!plot_dat) {
				perror(optarg);
				return 1;
			}
			break;
		case 'm':
			machine = optarg;
			break;
		default:
			fprintf(stderr,
				"usage: %s [--quick] [--nodes N,N] [--parallelism P] [--only NAME] "
				"[--plot-data FILE] [--machine TEXT]\n",
				argv[0]);
			return 2;
		}
	}
	json_t *figs = json_array();
	char *save = NULL;
	for (char *tok = strtok_r(nodes_arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int n = atoi(tok);
		fprintf(stderr, "%d nodes\n", n);
		for (int w = 0; w < WL_N; w++) {
			if (only && strcmp(only, wl_name[w]))
				continue;
			run_workload((enum wl)w, n, par, quick, figs);
		}
	}
	if (!only || !strcmp(only, "prediction")) {
		fprintf(stderr, "prediction trace\n");
		run_prediction(quick ? 100 : 500, par, quick, figs);
	}
	if (plot_dat)
		fclose(plot_dat);
	json_t *out = json_pack("{s:s,s:b,s:s,s:o}", "bench", "sched", "quick", quick, "machine",
				machine, "figures", figs);
	char *txt = json_dumps(out, JSON_INDENT(1));
	puts(txt);
	free(txt);
	json_decref(out);
	return 0;
}
