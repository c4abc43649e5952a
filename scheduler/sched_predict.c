// SPDX-License-Identifier: Apache-2.0
/*
 * Resource prediction: one usage profile per workload (its controller owner, else the pod),
 * fed by the samples agents report. A profile holds, for cpu and memory, one histogram per
 * time-of-day bucket plus one for the whole day, on exponentially growing bins (8% apart, so
 * a percentile is read within 8%); older samples weigh less (exponential decay with a
 * configurable half-life, done by giving newer samples exponentially larger weights, as
 * the Kubernetes VPA recommender does). A pod's prediction per bucket is the configured
 * percentile (p95 cpu, p98 memory) plus a safety margin, from its bucket when that has enough
 * samples, else from the whole day, else its requests (cold start).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

#define NBINS 200
#define RATIO 1.08

struct hist {
	float w[NBINS];
	double tot;
	double n; /* samples, undecayed */
};

struct wprof {
	char *key;
	int refs;
	int64_t ref_ts; /* weights are 2^((ts - ref_ts) / half-life) */
	int nb;
	struct hist *cpu, *mem; /* nb + 1: the last is the whole day */
};

static const double CPU_BASE = 1.0;		     /* millicores */
static const double MEM_BASE = 1048576.0 * 1000.0; /* 1 MiB in milli-bytes */

static int bin_of(double v, double base)
{
	if (v <= base)
		return 0;
	int i = (int)(log(v / base) / log(RATIO)) + 1;
	return i >= NBINS ? NBINS - 1 : i;
}

static double bin_top(int i, double base)
{
	return base * pow(RATIO, i);
}

struct wprof *predict_profile_get(struct sched *s, const char *key)
{
	struct wprof *wp = strmap_get(&s->wprofs, key);
	if (wp) {
		wp->refs++;
		return wp;
	}
	wp = calloc(1, sizeof(*wp));
	if (!wp)
		return NULL;
	wp->nb = s->cfg.pred.nbuckets;
	wp->key = strdup(key);
	wp->cpu = calloc(wp->nb + 1, sizeof(*wp->cpu));
	wp->mem = calloc(wp->nb + 1, sizeof(*wp->mem));
	wp->ref_ts = -1;
	wp->refs = 1;
	if (!wp->key || !wp->cpu || !wp->mem || strmap_put(&s->wprofs, key, wp)) {
		free(wp->key);
		free(wp->cpu);
		free(wp->mem);
		free(wp);
		return NULL;
	}
	return wp;
}

/* Profiles outlive their pods (a workload's next pod uses what was learnt); they are freed
 * with the scheduler. */
void predict_profile_put(struct sched *s, struct wprof *wp)
{
	(void)s;
	if (wp)
		wp->refs--;
}

static int bucket_of(const struct sched *s, int64_t ts_ms)
{
	int64_t day = 86400000LL, per = (int64_t)s->cfg.pred.bucket_min * 60000LL;
	int64_t t = ts_ms % day;
	if (t < 0)
		t += day;
	int b = (int)(t / per);
	return b >= s->cfg.pred.nbuckets ? s->cfg.pred.nbuckets - 1 : b;
}

static void hist_add(struct hist *h, int bin, double w)
{
	h->w[bin] += (float)w;
	h->tot += w;
	h->n += 1;
}

static void prof_rescale(struct wprof *wp, double f)
{
	for (int b = 0; b <= wp->nb; b++) {
		struct hist *hs[2] = { &wp->cpu[b], &wp->mem[b] };
		for (int k = 0; k < 2; k++) {
			for (int i = 0; i < NBINS; i++)
				hs[k]->w[i] = (float)(hs[k]->w[i] * f);
			hs[k]->tot *= f;
		}
	}
}

int sched_usage_sample(struct sched *s, const char *ns, const char *pod, int64_t cpu_milli,
		       int64_t mem_bytes, int64_t ts_ms)
{
	char key[512];
	snprintf(key, sizeof(key), "%s/%s", ns && *ns ? ns : "default", pod);
	struct spod *p = strmap_get(&s->pods, key);
	if (!p)
		return -ENOENT;
	if (!p->wp || cpu_milli < 0 || mem_bytes < 0)
		return p->wp ? -EINVAL : 0;
	struct wprof *wp = p->wp;
	double hl = s->cfg.pred.half_life_h * 3600000.0;
	if (wp->ref_ts < 0)
		wp->ref_ts = ts_ms;
	double e = (double)(ts_ms - wp->ref_ts) / hl;
	if (e > 40) {
		/* keep the weights in range: move the reference forward */
		prof_rescale(wp, pow(2, -e));
		wp->ref_ts = ts_ms;
		e = 0;
	}
	double w = pow(2, e);
	int b = bucket_of(s, ts_ms);
	int bc = bin_of((double)cpu_milli, CPU_BASE);
	int bm = bin_of((double)mem_bytes * 1000.0, MEM_BASE);
	hist_add(&wp->cpu[b], bc, w);
	hist_add(&wp->cpu[wp->nb], bc, w);
	hist_add(&wp->mem[b], bm, w);
	hist_add(&wp->mem[wp->nb], bm, w);
	return 0;
}

static bool pct_of(const struct hist *h, double pct, double min_n, double base, double *out)
{
	if (h->n < min_n || h->tot <= 0)
		return false;
	double want = h->tot * pct / 100.0, acc = 0;
	for (int i = 0; i < NBINS; i++) {
		acc += h->w[i];
		if (acc >= want) {
			*out = bin_top(i, base);
			return true;
		}
	}
	*out = bin_top(NBINS - 1, base);
	return true;
}

void predict_pod(struct sched *s, struct spod *p)
{
	const struct sched_predict_cfg *pc = &s->cfg.pred;
	int nb = pc->nbuckets;
	if (!p->pcpu)
		p->pcpu = calloc(nb, sizeof(int64_t));
	if (!p->pmem)
		p->pmem = calloc(nb, sizeof(int64_t));
	if (!p->pcpu || !p->pmem) {
		free(p->pcpu);
		free(p->pmem);
		p->pcpu = p->pmem = NULL;
		return;
	}
	struct wprof *wp = p->wp;
	int64_t rc = p->req[RES_CPU] ? p->req[RES_CPU] : p->nz_cpu;
	int64_t rm = p->req[RES_MEM] ? p->req[RES_MEM] : p->nz_mem;
	for (int b = 0; b < nb; b++) {
		double v;
		if (wp && (pct_of(&wp->cpu[b], pc->cpu_pct, pc->min_samples, CPU_BASE, &v) ||
			   pct_of(&wp->cpu[nb], pc->cpu_pct, pc->min_samples, CPU_BASE, &v)))
			p->pcpu[b] = (int64_t)(v * (1 + pc->margin));
		else
			p->pcpu[b] = rc;
		if (wp && (pct_of(&wp->mem[b], pc->mem_pct, pc->min_samples, MEM_BASE, &v) ||
			   pct_of(&wp->mem[nb], pc->mem_pct, pc->min_samples, MEM_BASE, &v)))
			p->pmem[b] = (int64_t)(v * (1 + pc->margin));
		else
			p->pmem[b] = rm;
	}
}

void predict_node_peak(struct sched *s, struct snode *n)
{
	int64_t pc = 0, pm = 0;
	if (n->pk_cpu)
		for (int b = 0; b < s->cfg.pred.nbuckets; b++) {
			if (n->pk_cpu[b] > pc)
				pc = n->pk_cpu[b];
			if (n->pk_mem[b] > pm)
				pm = n->pk_mem[b];
		}
	n->peak_cpu = pc;
	n->peak_mem = pm;
}

void predict_node_add(struct sched *s, struct snode *n, const struct spod *p, int sign)
{
	if (!n->pk_cpu || !p->pcpu)
		return;
	for (int b = 0; b < s->cfg.pred.nbuckets; b++) {
		n->pk_cpu[b] += sign * p->pcpu[b];
		n->pk_mem[b] += sign * p->pmem[b];
	}
	predict_node_peak(s, n);
}

int64_t predict_batch_alloc(const struct sched *s, const struct snode *n, int r)
{
	int64_t peak = r == RES_CPU ? n->peak_cpu : n->peak_mem;
	int64_t v = (int64_t)((double)n->alloc[r] * s->cfg.pred.threshold) - peak;
	return v > 0 ? v : 0;
}

void sched_predict_refresh(struct sched *s, int64_t now_wall_ms)
{
	if (!s->cfg.pred.enabled)
		return;
	s->pred_now = now_wall_ms;
	s->cur_bucket = bucket_of(s, now_wall_ms);
	int nb = s->cfg.pred.nbuckets;
	for (uint32_t i = 0; i < s->nlive; i++) {
		struct snode *n = s->live[i];
		if (n->pk_cpu) {
			memset(n->pk_cpu, 0, nb * sizeof(int64_t));
			memset(n->pk_mem, 0, nb * sizeof(int64_t));
		}
	}
	struct spod *p;
	for (size_t it = 0; strmap_next(&s->pods, &it, &p);) {
		predict_pod(s, p);
		if (p->node >= 0 && !p->batch) {
			struct snode *n = s->slots[p->node];
			if (n->pk_cpu && p->pcpu)
				for (int b = 0; b < nb; b++) {
					n->pk_cpu[b] += p->pcpu[b];
					n->pk_mem[b] += p->pmem[b];
				}
		}
	}
	for (uint32_t i = 0; i < s->nlive; i++)
		predict_node_peak(s, s->live[i]);
}

void predict_free(struct sched *s)
{
	struct strmap *m = &s->wprofs;
	struct wprof *wp;
	for (size_t it = 0; strmap_next(m, &it, &wp);) {
		free(wp->key);
		free(wp->cpu);
		free(wp->mem);
		free(wp);
	}
	strmap_free(m);
}
