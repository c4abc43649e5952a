// SPDX-License-Identifier: Apache-2.0
/*
 * The scheduling cycle: pop a pod, pre-filter, filter nodes in parallel, score, reserve in
 * the snapshot, permit (gangs), bind through the embedder; on failure, post-filter
 * (preemption) and an unschedulable message that counts the reasons per plugin.
 *
 * The design choice: on large clusters the filter stops once it has found enough feasible
 * nodes (kube-scheduler's adaptive percentage: 50% minus 1% per 125 nodes, at least 5% and
 * 100 nodes), starting where the previous pod stopped so every node gets its turn; worker
 * threads take chunks of nodes from a shared cursor, and the pod's thread works too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "log.h"
#include "sched_int.h"

void sched_snapshot_free(struct sched *s);

/* ---- the worker pool ---- */

#define CHUNK 32
#define PARALLEL_MIN_NODES 2048

struct pool {
	pthread_t *th;
	int n;
	pthread_mutex_t mu;
	pthread_cond_t cv, done;
	uint64_t gen;
	int pending, nextid;
	bool stop;
	/* the job */
	const struct cycle *c;
	struct snode **live;
	uint32_t nlive, start, total, want;
	atomic_uint next;
	atomic_int nfeas;
	atomic_uint processed;
	int32_t *outs[16];
	uint32_t nouts[16];
};

static void pool_work(struct pool *pl, int k)
{
	uint32_t *fail = pl->c->s->fail;
	for (;;) {
		if (atomic_load_explicit(&pl->nfeas, memory_order_relaxed) >= (int)pl->want)
			break;
		uint32_t i = atomic_fetch_add_explicit(&pl->next, CHUNK, memory_order_relaxed);
		if (i >= pl->total)
			break;
		uint32_t end = i + CHUNK < pl->total ? i + CHUNK : pl->total;
		int found = 0;
		for (uint32_t j = i; j < end; j++) {
			uint32_t idx = pl->start + j;
			if (idx >= pl->nlive)
				idx -= pl->nlive;
			struct snode *n = pl->live[idx];
			uint32_t code = sched_filter_node(pl->c, n);
			fail[n->slot] = code;
			if (!code) {
				pl->outs[k][pl->nouts[k]++] = n->slot;
				found++;
			}
		}
		atomic_fetch_add_explicit(&pl->processed, end - i, memory_order_relaxed);
		if (found)
			atomic_fetch_add_explicit(&pl->nfeas, found, memory_order_relaxed);
	}
}

static void *pool_main(void *arg)
{
	struct pool *pl = arg;
	int k;
	uint64_t seen = 0;
	pthread_mutex_lock(&pl->mu);
	k = ++pl->nextid; /* thread index, 1..n; 0 is the caller */
	pthread_mutex_unlock(&pl->mu);
	for (;;) {
		pthread_mutex_lock(&pl->mu);
		while (pl->gen == seen && !pl->stop)
			pthread_cond_wait(&pl->cv, &pl->mu);
		if (pl->stop) {
			pthread_mutex_unlock(&pl->mu);
			return NULL;
		}
		seen = pl->gen;
		pthread_mutex_unlock(&pl->mu);
		pool_work(pl, k);
		pthread_mutex_lock(&pl->mu);
		if (--pl->pending == 0)
			pthread_cond_signal(&pl->done);
		pthread_mutex_unlock(&pl->mu);
	}
}

static struct pool *pool_new(int threads)
{
	struct pool *pl = calloc(1, sizeof(*pl));
	if (!pl)
		return NULL;
	pthread_mutex_init(&pl->mu, NULL);
	pthread_cond_init(&pl->cv, NULL);
	pthread_cond_init(&pl->done, NULL);
	if (threads > 15)
		threads = 15;
	pl->th = calloc(threads ? threads : 1, sizeof(*pl->th));
	if (!pl->th) {
		free(pl);
		return NULL;
	}
	for (int i = 0; i < threads; i++) {
		/* each thread takes its index under the lock before its first wait */
		if (pthread_create(&pl->th[i], NULL, pool_main, pl))
			break;
		pl->n++;
	}
	return pl;
}

static void pool_free(struct pool *pl)
{
	if (!pl)
		return;
	pthread_mutex_lock(&pl->mu);
	pl->stop = true;
	pthread_cond_broadcast(&pl->cv);
	pthread_mutex_unlock(&pl->mu);
	for (int i = 0; i < pl->n; i++)
		pthread_join(pl->th[i], NULL);
	for (int i = 0; i <= pl->n; i++)
		free(pl->outs[i]);
	free(pl->th);
	pthread_mutex_destroy(&pl->mu);
	pthread_cond_destroy(&pl->cv);
	pthread_cond_destroy(&pl->done);
	free(pl);
}

/* ---- lifecycle ---- */

struct sched *sched_new(const struct sched_config *cfg, const struct sched_ops *ops)
{
	struct sched *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (cfg)
		s->cfg = *cfg;
	else
		sched_config_defaults(&s->cfg);
	if (ops)
		s->ops = *ops;
	s->k_name = intern_id(&s->in, "\001metadata.name");
	s->k_hostname = intern_id(&s->in, "kubernetes.io/hostname");
	s->k_podgroup = intern_id(&s->in, "scheduling.x-k8s.io/pod-group");
	s->resname[RES_CPU] = intern_id(&s->in, "cpu");
	s->resname[RES_MEM] = intern_id(&s->in, "memory");
	s->resname[RES_EPH] = intern_id(&s->in, "ephemeral-storage");
	s->nres = RES_EXT0;
	s->rng = s->cfg.seed ? s->cfg.seed : 0x9e3779b97f4a7c15ull;
	s->scan_ratio = 1;
	if (!s->k_name || !s->resname[RES_EPH]) {
		sched_free(s);
		errno = ENOMEM;
		return NULL;
	}
	int par = s->cfg.parallelism;
	if (par <= 0) {
		long np = sysconf(_SC_NPROCESSORS_ONLN);
		par = np > 0 ? (int)np : 1;
	}
	if (par > 1) {
		s->pool = pool_new(par - 1);
		if (!s->pool) {
			sched_free(s);
			errno = ENOMEM;
			return NULL;
		}
	}
	return s;
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	pool_free(s->pool);
	sched_snapshot_free(s);
	queue_free(s);
	predict_free(s);
	free(s->fail);
	free(s->feasible);
	free(s->score_tmp);
	intern_free(&s->in);
	free(s);
}

/* ---- filter ---- */

uint32_t sched_filter_node(const struct cycle *c, const struct snode *n)
{
	const bool *en = c->prof->enabled;
	uint32_t r;
	if (en[PL_UNSCHEDULABLE] && (r = plugin_unschedulable_filter(c, n)))
		return r;
	if (en[PL_NODEAFFINITY] && (r = plugin_nodeaffinity_filter(c, n)))
		return r;
	if (en[PL_TAINT] && (r = plugin_taint_filter(c, n)))
		return r;
	if (en[PL_FIT] && (r = plugin_fit_filter(c, n)))
		return r;
	if (en[PL_LOADAWARE] && c->s->cfg.pred.enabled && (r = plugin_loadaware_filter(c, n)))
		return r;
	if (en[PL_INTERPOD] && (r = plugin_interpod_filter(c, n)))
		return r;
	if (en[PL_SPREAD] && c->p->nspr && (r = plugin_spread_filter(c, n)))
		return r;
	return 0;
}

int sched_prefilter(struct cycle *c)
{
	const bool *en = c->prof->enabled;
	int rc;
	c->use_nominated = true;
	if (en[PL_INTERPOD] && (rc = plugin_interpod_prefilter(c)))
		return rc;
	if (en[PL_SPREAD] && c->p->nspr && (rc = plugin_spread_prefilter(c)))
		return rc;
	return 0;
}

void cycle_release(struct cycle *c)
{
	free(c->sym);
	c->sym = NULL;
	c->nsym = c->symcap = 0;
	plugin_spread_release(c);
}

static uint32_t nodes_to_find(const struct sched *s, uint32_t n)
{
	if (n < 100)
		return n;
	int pct = s->cfg.pct_nodes;
	if (pct <= 0) {
		pct = 50 - (int)(n / 125);
		if (pct < 5)
			pct = 5;
	}
	if (pct >= 100)
		return n;
	uint32_t want = (uint32_t)((uint64_t)n * (uint32_t)pct / 100);
	return want < 100 ? 100 : want;
}

/* Fills s->feasible; returns the count. */
static uint32_t find_feasible(struct sched *s, const struct cycle *c)
{
	uint32_t n = s->nlive;
	if (!n)
		return 0;
	uint32_t want = nodes_to_find(s, n);
	uint32_t start = s->next_start % n;
	struct pool *pl = s->pool;
	uint32_t nf = 0, processed = 0;
	/* threads pay off only when many nodes must be examined: waking them costs about as
	 * much as filtering a few hundred nodes */
	double expect = (double)want * (s->scan_ratio > 1 ? s->scan_ratio : 1);
	if (!pl || n < 4 * CHUNK || expect < PARALLEL_MIN_NODES) {
		for (uint32_t j = 0; j < n && nf < want; j++) {
			uint32_t idx = start + j;
			if (idx >= n)
				idx -= n;
			struct snode *nd = s->live[idx];
			uint32_t code = sched_filter_node(c, nd);
			s->fail[nd->slot] = code;
			if (!code)
				s->feasible[nf++] = nd->slot;
			processed++;
		}
	} else {
		for (int k = 0; k <= pl->n; k++) {
			free(pl->outs[k]);
			pl->outs[k] = malloc(n * sizeof(int32_t));
			pl->nouts[k] = 0;
			if (!pl->outs[k])
				return 0;
		}
		pl->c = c;
		pl->live = s->live;
		pl->nlive = n;
		pl->start = start;
		pl->total = n;
		pl->want = want;
		atomic_store(&pl->next, 0);
		atomic_store(&pl->nfeas, 0);
		atomic_store(&pl->processed, 0);
		pthread_mutex_lock(&pl->mu);
		pl->pending = pl->n;
		pl->gen++;
		pthread_cond_broadcast(&pl->cv);
		pthread_mutex_unlock(&pl->mu);
		pool_work(pl, 0);
		pthread_mutex_lock(&pl->mu);
		while (pl->pending > 0)
			pthread_cond_wait(&pl->done, &pl->mu);
		pthread_mutex_unlock(&pl->mu);
		for (int k = 0; k <= pl->n; k++) {
			memcpy(s->feasible + nf, pl->outs[k], pl->nouts[k] * sizeof(int32_t));
			nf += pl->nouts[k];
		}
		processed = atomic_load(&pl->processed);
	}
	s->next_start = (start + processed) % n;
	double ratio = nf ? (double)processed / nf : (double)n;
	s->scan_ratio = 0.8 * s->scan_ratio + 0.2 * ratio;
	s->st.nodes_filtered += processed;
	return nf;
}

/* ---- score ---- */

enum norm { NORM_NONE, NORM_MAX, NORM_REVERSE, NORM_MINMAX, NORM_REVERSE_MINMAX };

static int select_node(struct sched *s, const struct cycle *c, uint32_t nf)
{
	if (nf == 1)
		return s->feasible[0];
	const struct sched_profile *pr = c->prof;
	const struct spod *p = c->p;
	int64_t *total = s->score_tmp;
	int64_t *raw = s->score_tmp + nf;
	memset(total, 0, nf * sizeof(*total));
	struct {
		int pl;
		int64_t (*fn)(const struct cycle *, const struct snode *);
		enum norm norm;
		bool use;
	} sc[] = {
		{ PL_FIT, plugin_alloc_score, NORM_NONE, true },
		{ PL_BALANCED, plugin_balanced_score, NORM_NONE, true },
		{ PL_NODEAFFINITY, plugin_nodeaffinity_score, NORM_MAX, p->nnpref > 0 },
		{ PL_TAINT, plugin_taint_score, NORM_REVERSE, true },
		{ PL_INTERPOD, plugin_interpod_score, NORM_MINMAX,
		  c->nsym || p->npaff || p->npanti },
		{ PL_SPREAD, plugin_spread_score, NORM_REVERSE_MINMAX, p->nspr > 0 },
		{ PL_LOADAWARE, plugin_loadaware_score, NORM_NONE, s->cfg.pred.enabled },
	};
	for (size_t k = 0; k < sizeof(sc) / sizeof(sc[0]); k++) {
		int w = pr->weight[sc[k].pl];
		if (!sc[k].use || !pr->enabled[sc[k].pl] || w == 0)
			continue;
		int64_t mn = INT64_MAX, mx = INT64_MIN;
		for (uint32_t i = 0; i < nf; i++) {
			int64_t v = sc[k].fn(c, s->slots[s->feasible[i]]);
			raw[i] = v;
			if (v < mn)
				mn = v;
			if (v > mx)
				mx = v;
		}
		for (uint32_t i = 0; i < nf; i++) {
			int64_t v = raw[i];
			switch (sc[k].norm) {
			case NORM_NONE:
				break;
			case NORM_MAX:
				v = mx > 0 ? v * 100 / mx : 0;
				break;
			case NORM_REVERSE:
				v = mx > 0 ? 100 - v * 100 / mx : 100;
				break;
			case NORM_MINMAX:
				v = mx > mn ? (v - mn) * 100 / (mx - mn) : 0;
				break;
			case NORM_REVERSE_MINMAX:
				v = mx > mn ? (mx - v) * 100 / (mx - mn) : 100;
				break;
			}
			total[i] += v * w;
		}
	}
	int best = -1;
	int64_t bv = INT64_MIN;
	uint32_t ties = 0;
	for (uint32_t i = 0; i < nf; i++) {
		if (total[i] > bv) {
			bv = total[i];
			best = s->feasible[i];
			ties = 1;
		} else if (total[i] == bv) {
			/* reservoir sampling: each tied node equally likely */
			ties++;
			if (sched_rand(s) % ties == 0)
				best = s->feasible[i];
		}
	}
	return best;
}

/* ---- the unschedulable message ---- */

static const char *reason_text(uint32_t r)
{
	switch (r) {
	case RS_UNSCHEDULABLE:
		return "node(s) were unschedulable";
	case RS_NODEAFF:
		return "node(s) didn't match Pod's node affinity/selector";
	case RS_LOADAWARE:
		return "node(s) had predicted usage above the load threshold";
	case RS_ANTI_EXISTING:
		return "node(s) didn't satisfy existing pods anti-affinity rules";
	case RS_ANTI:
		return "node(s) didn't match pod anti-affinity rules";
	case RS_AFF:
		return "node(s) didn't match pod affinity rules";
	case RS_SPREAD:
		return "node(s) didn't match pod topology spread constraints";
	case RS_SPREAD_LABEL:
		return "node(s) didn't match pod topology spread constraints (missing required label)";
	default:
		return "node(s) were not feasible";
	}
}

uint32_t sched_reason_plugin_bit(uint32_t r)
{
	switch (r) {
	case RS_UNSCHEDULABLE:
		return FAIL_BIT(PL_UNSCHEDULABLE);
	case RS_NODEAFF:
		return FAIL_BIT(PL_NODEAFFINITY);
	case RS_TAINT:
		return FAIL_BIT(PL_TAINT);
	case RS_FIT:
	case RS_BATCHFIT:
		return FAIL_BIT(PL_FIT);
	case RS_LOADAWARE:
		return FAIL_BIT(PL_LOADAWARE);
	case RS_ANTI_EXISTING:
	case RS_ANTI:
	case RS_AFF:
		return FAIL_BIT(PL_INTERPOD);
	case RS_SPREAD:
	case RS_SPREAD_LABEL:
		return FAIL_BIT(PL_SPREAD);
	default:
		return ~0u;
	}
}

struct hist_ent {
	char text[320];
	uint32_t count;
};

static void hist_add(struct hist_ent *h, int *nh, int max, const char *text)
{
	for (int i = 0; i < *nh; i++)
		if (!strcmp(h[i].text, text)) {
			h[i].count++;
			return;
		}
	if (*nh >= max)
		return;
	snprintf(h[*nh].text, sizeof(h[*nh].text), "%s", text);
	h[*nh].count = 1;
	(*nh)++;
}

static int hist_cmp(const void *a, const void *b)
{
	const struct hist_ent *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->text, y->text);
}

/* Builds "0/N nodes are available: ..." from s->fail; returns the plugins that rejected. */
static uint32_t build_message(struct sched *s, char *buf, size_t len)
{
	enum { MAXH = 64 };
	struct hist_ent *h = calloc(MAXH, sizeof(*h));
	int nh = 0;
	uint32_t mask = 0;
	char t[320];
	for (uint32_t i = 0; h && i < s->nlive; i++) {
		uint32_t code = s->fail[s->live[i]->slot];
		uint32_t r = RS_REASON(code), a = RS_ARG(code);
		if (!code)
			continue;
		mask |= sched_reason_plugin_bit(r);
		if (r == RS_FIT || r == RS_BATCHFIT) {
			for (int k = 0; k < SCHED_NRES; k++)
				if (a & (1u << k)) {
					snprintf(t, sizeof(t), "Insufficient %s%s",
						 r == RS_BATCHFIT ? "batch " : "",
						 intern_str(&s->in, s->resname[k]));
					hist_add(h, &nh, MAXH, t);
				}
			if (a & RES_PODS_BIT)
				hist_add(h, &nh, MAXH, "Too many pods");
		} else if (r == RS_TAINT) {
			snprintf(t, sizeof(t), "node(s) had untolerated taint %s",
				 intern_str(&s->in, a));
			hist_add(h, &nh, MAXH, t);
		} else {
			hist_add(h, &nh, MAXH, reason_text(r));
		}
	}
	size_t off = (size_t)snprintf(buf, len, "0/%u nodes are available", s->nlive);
	if (h && nh) {
		qsort(h, (size_t)nh, sizeof(*h), hist_cmp);
		for (int i = 0; i < nh && off < len; i++)
			off += (size_t)snprintf(buf + off, len - off, "%s %u %s", i ? "," : ":",
						h[i].count, h[i].text);
	}
	if (off < len)
		snprintf(buf + off, len - off, ".");
	free(h);
	return mask;
}

/* ---- the cycle ---- */

void sched_mark_unschedulable(struct sched *s, struct spod *p, const char *msg, uint32_t mask)
{
	free(p->msg);
	p->msg = strdup(msg);
	s->st.unschedulable++;
	if (s->ops.unschedulable)
		s->ops.unschedulable(s->ops.ctx, intern_str(&s->in, p->ns), p->name, msg,
				     p->nominated >= 0 && s->slots[p->nominated] ?
					     s->slots[p->nominated]->name :
					     NULL);
	queue_unschedulable(s, p, mask);
}

int sched_bind_pod(struct sched *s, struct spod *p)
{
	struct snode *n = s->slots[p->node];
	int rc = 0;
	if (s->ops.bind)
		rc = s->ops.bind(s->ops.ctx, intern_str(&s->in, p->ns), p->name, p->uid, n->name);
	if (rc) {
		log_warn("bind %s to %s: %s", p->key, n->name, shoal_strerror(rc));
		s->st.bind_errors++;
		pod_detach(s, p);
		queue_backoff(s, p);
		return rc;
	}
	p->state = PS_BOUND;
	free(p->msg);
	p->msg = NULL;
	s->st.scheduled++;
	return 0;
}

void sched_pod_forget_nomination(struct sched *s, struct spod *p)
{
	if (p->nominated < 0)
		return;
	struct snode *n = s->slots[p->nominated];
	for (uint32_t i = 0; n && i < n->nnom; i++)
		if (n->noms[i] == p) {
			n->noms[i] = n->noms[--n->nnom];
			break;
		}
	p->nominated = -1;
}

int sched_schedule_one(struct sched *s)
{
	int64_t now = sched_now(s);
	queue_flush_backoff(s, now);
	plugin_gang_timeouts(s, now);
	struct spod *p = queue_pop(s);
	if (!p)
		return 0;
	s->st.attempts++;
	p->attempts++;
	struct cycle c = { .s = s, .p = p, .prof = &s->cfg.prof[p->profile] };
	char msg[1024];
	if (p->gang && c.prof->enabled[PL_GANG]) {
		if (plugin_gang_prefilter(&c, msg, sizeof(msg))) {
			sched_mark_unschedulable(s, p, msg, FAIL_BIT(PL_GANG));
			return 1;
		}
	}
	int rc = sched_prefilter(&c);
	if (rc) {
		cycle_release(&c);
		queue_backoff(s, p);
		return rc;
	}
	uint32_t nf = find_feasible(s, &c);
	if (!nf) {
		uint32_t mask = build_message(s, s->msgbuf, sizeof(s->msgbuf));
		if (c.prof->enabled[PL_PREEMPT] && !p->preempt_never && plugin_preempt(s, &c) > 0)
			mask |= FAIL_BIT(PL_PREEMPT);
		cycle_release(&c);
		if (p->gang) {
			char *gm = strdup(s->msgbuf);
			sched_mark_unschedulable(s, p, gm ? gm : s->msgbuf, mask);
			plugin_gang_reject(s, p->gang, gm ? gm : s->msgbuf, mask);
			free(gm);
		} else {
			sched_mark_unschedulable(s, p, s->msgbuf, mask);
		}
		return 1;
	}
	int slot = select_node(s, &c, nf);
	cycle_release(&c);
	sched_pod_forget_nomination(s, p);
	pod_attach(s, p, s->slots[slot]);
	if (p->gang && c.prof->enabled[PL_GANG]) {
		plugin_gang_permit(s, p);
	} else {
		sched_bind_pod(s, p);
	}
	queue_move_on_event(s, FAIL_BIT(PL_INTERPOD) | FAIL_BIT(PL_SPREAD), NULL);
	return 1;
}

int sched_run(struct sched *s, int max)
{
	int n = 0;
	while (max <= 0 || n < max) {
		int rc = sched_schedule_one(s);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		n++;
	}
	return n;
}

int64_t sched_next_wakeup_ms(struct sched *s)
{
	int64_t a = queue_next_backoff(s), b = plugin_gang_next_deadline(s);
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

void sched_stats(struct sched *s, struct sched_stats *out)
{
	*out = s->st;
	int active = 0;
	for (uint32_t i = 0; i < s->nactns; i++)
		active += (int)s->actns[i]->n;
	out->active = active;
	out->backoff = (int)s->nbackoff;
	out->unsched = (int)s->nunsched;
	int waiting = 0;
	struct gang *g;
	for (size_t it = 0; strmap_next(&s->gangs, &it, &g);)
		waiting += g->waiting;
	out->waiting = waiting;
}
