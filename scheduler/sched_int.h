/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler's private structures, shared by its files and by nothing else.
 *
 * The one design choice: every string that the scheduler compares (label keys and values,
 * namespaces, node names, taint keys) is interned once into a small integer when its object
 * enters the snapshot, and every selector is compiled against those integers. Pod affinity
 * and spread terms are deduplicated into struct term, which counts, per topology domain,
 * both the pods that match it and the placed pods that hold it, so a filter or score looks
 * at one counter per term per node instead of at pods.
 */
#ifndef SHOAL_SCHED_INT_H
#define SHOAL_SCHED_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdint.h>

#include "hashmap.h"
#include "labels.h"
#include "sched.h"

typedef uint32_t sid_t; /* interned string; 0 is none */

/* ---- string map (common/hashmap.h, created on first use) and interning ---- */
struct strmap {
	struct hashmap *h;
};
static inline void *strmap_get(const struct strmap *m, const char *k)
{
	return m->h ? hashmap_get(m->h, k) : NULL;
}
static inline int strmap_put(struct strmap *m, const char *k, void *v)
{
	if (!m->h && !(m->h = hashmap_new(16)))
		return -ENOMEM;
	return hashmap_put(m->h, k, v, NULL);
}
static inline void *strmap_del(struct strmap *m, const char *k)
{
	return m->h ? hashmap_del(m->h, k) : NULL;
}
static inline void strmap_free(struct strmap *m)
{
	hashmap_free(m->h);
	m->h = NULL;
}
static inline size_t strmap_count(const struct strmap *m)
{
	return m->h ? hashmap_count(m->h) : 0;
}
/* for (size_t it = 0; strmap_next(m, &it, &v);): the map must not change meanwhile */
static inline bool strmap_next(const struct strmap *m, size_t *it, void *vp)
{
	return m->h && hashmap_next(m->h, it, NULL, (void **)vp);
}

struct intern {
	struct strmap map;
	char **strs;
	int64_t *num;	/* integer value, for Gt/Lt */
	uint8_t *numok; /* 0 unknown, 1 integer, 2 not an integer */
	uint32_t n, cap;
};
sid_t intern_id(struct intern *in, const char *s); /* 0 on allocation failure */
sid_t intern_find(const struct intern *in, const char *s);
const char *intern_str(const struct intern *in, sid_t id);
bool intern_num(struct intern *in, sid_t id, int64_t *out);
void intern_free(struct intern *in);

struct lbl {
	sid_t k, v;
};
struct lblset {
	struct lbl *kv; /* sorted by k */
	uint32_t n;
};
static inline sid_t lbl_get(const struct lblset *ls, sid_t k)
{
	uint32_t lo = 0, hi = ls->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (ls->kv[mid].k < k)
			lo = mid + 1;
		else if (ls->kv[mid].k > k)
			hi = mid;
		else
			return ls->kv[mid].v;
	}
	return 0;
}
/* From a JSON object of strings (NULL: empty). extra_k/extra_v (when extra_k != 0) adds one
 * pseudo label (a node's metadata.name for matchFields). */
int lblset_from_json(struct intern *in, const json_t *obj, sid_t extra_k, sid_t extra_v,
		     struct lblset *out);
void lblset_free(struct lblset *ls);

enum creq_op { CR_IN, CR_NOTIN, CR_EXISTS, CR_NOTEXISTS, CR_GT, CR_LT };
struct creq {
	sid_t key;
	uint8_t op;
	uint32_t nvals;
	sid_t *vals; /* sorted */
	int64_t num; /* Gt, Lt */
};
struct csel {
	struct creq *reqs;
	uint32_t n;
	bool none; /* a null selector: matches nothing */
};
/* Compiles a common/labels.h selector (NULL compiles to "none"). */
int csel_compile(struct intern *in, const struct selector *sel, struct csel *out);
/* Parses a LabelSelector JSON object and compiles it; errors name `field`. */
int csel_from_json(struct intern *in, const json_t *j, bool allow_gt_lt, struct csel *out,
		   const char *field, char *err, size_t errlen);
bool csel_match(struct intern *in, const struct csel *cs, const struct lblset *ls);
void csel_free(struct csel *cs);
/* Appends a canonical form of cs to buf at *off (for deduplicating terms). */
void csel_sig(const struct csel *cs, char *buf, size_t len, size_t *off);

/* ---- resources ---- */
#define SCHED_NRES 8
enum { RES_CPU, RES_MEM, RES_EPH, RES_EXT0 };
#define RES_PODS_BIT (1u << SCHED_NRES) /* "Too many pods" in a fit failure mask */

/* ---- topology ---- */
#define SCHED_MAX_TOPO 16
struct topo {
	sid_t key;
	struct strmap doms; /* label value -> domain index + 1 */
	uint32_t ndom, cap;
	int32_t *dom_nodes; /* live nodes per domain */
};

/* ---- terms: (conditions on a pod, topology key), deduplicated ---- */
struct nsf {
	bool all;
	sid_t *ns;
	uint32_t n;
	bool has_sel;
	struct csel sel; /* namespaceSelector over namespace labels */
};
struct cond {
	struct nsf nsf;
	struct csel sel;
};
struct term {
	char *sig;
	int refs;
	uint32_t idx; /* in sched.terms */
	struct cond *conds;
	uint32_t nconds;
	int topo;
	uint32_t dcap, ncap;
	int32_t *m_dom, *m_node; /* placed pods matching, per domain and per node slot */
	int32_t m_total;
	int32_t *h_anti, *h_aff, *h_pref; /* placed holders per domain (pref: weight sum) */
	int32_t n_anti, n_aff, n_pref;	  /* placed holders */
};

/* ---- pods ---- */
struct toler {
	sid_t key, val;
	uint8_t exists, effect; /* effect 0: all */
};
enum { EFF_NOSCHED = 1, EFF_PREFER, EFF_NOEXEC };
struct nsterm {
	struct csel exprs;  /* matchExpressions over node labels */
	struct csel fields; /* matchFields (metadata.name), over the pseudo label */
};
struct npref {
	int32_t w;
	struct nsterm t;
};
struct pterm {
	struct term *t;
	int32_t w; /* preferred: weight (negative for anti-affinity) */
};
struct sprc {
	struct term *t;
	int32_t max_skew, min_domains;
	bool hard, self;
};

enum pod_state {
	PS_NONE,     /* not ours, or done */
	PS_ACTIVE,   /* in the active queue */
	PS_BACKOFF,  /* waiting for back-off */
	PS_UNSCHED,  /* waiting for an event */
	PS_WAITING,  /* reserved, waiting for its gang */
	PS_BOUND,    /* placed */
	PS_INFLIGHT, /* being scheduled */
};

struct gang;
struct wprof;
struct sns;

struct spod {
	char *key; /* "ns/name" */
	char *name, *uid;
	sid_t ns;
	struct sns *nsp;
	struct lblset labels;
	int32_t priority;
	bool batch, preempt_never, terminating, done;
	int profile; /* -1: another scheduler's */
	int64_t req[SCHED_NRES];
	int64_t nz_cpu, nz_mem; /* requests with kube's non-zero defaults, for scoring */
	uint32_t resmask;
	struct lblset nodesel;
	struct nsterm *nreq;
	uint32_t nnreq;
	struct npref *npref;
	uint32_t nnpref;
	struct toler *tol;
	uint32_t ntol;
	struct pterm *aff, *anti, *paff, *panti;
	uint32_t naff, nanti, npaff, npanti;
	struct sprc *spr;
	uint32_t nspr;
	struct gang *gang;
	struct wprof *wp;
	int64_t *pcpu, *pmem; /* predicted usage per time-of-day bucket */
	int64_t usage_ts;     /* the last status.usage sample taken */
	/* placement */
	int node; /* slot, or -1 */
	sid_t node_name;
	int32_t node_pos;
	uint8_t state;
	/* queue */
	int32_t qpos;
	int64_t qts, backoff_until;
	uint32_t attempts, fail_mask;
	int nominated; /* slot, or -1 */
	int64_t seq;
	char *msg;
};

/* ---- nodes ---- */
struct taint {
	sid_t key, val, disp; /* disp: "{key: value}" */
	uint8_t effect;
};
struct snode {
	char *name;
	sid_t name_sid;
	int slot, live_pos;
	struct lblset labels;
	bool unschedulable;
	struct taint *taints;
	uint32_t ntaints;
	int64_t alloc[SCHED_NRES];
	int32_t maxpods, npods;
	int64_t req[SCHED_NRES], breq[SCHED_NRES];
	int64_t nz_cpu, nz_mem;
	int32_t dom[SCHED_MAX_TOPO];
	struct spod **pods;
	uint32_t npl, plcap;
	/* nominated preemptors */
	struct spod **noms; /* pods nominated here, whose room is held for them */
	uint32_t nnom, nomcap;
	/* prediction: sums per time-of-day bucket of placed online pods */
	int64_t *pk_cpu, *pk_mem;
	int64_t peak_cpu, peak_mem;
};

/* ---- gangs and namespaces ---- */
struct gang {
	char *key;
	sid_t ns;
	bool exists;
	int32_t min_member;
	int64_t timeout_ms;
	int32_t total, bound, waiting;
	int64_t deadline, qts;
	struct spod **wait;
	uint32_t nwait, wcap;
};
struct sns {
	sid_t id;
	struct lblset labels;
	int64_t used[SCHED_NRES];
	struct spod **heap;
	uint32_t n, cap;
	int32_t apos; /* in sched.actns, or -1 */
};

/* ---- configuration ---- */
enum plugin_id {
	PL_UNSCHEDULABLE,
	PL_NODEAFFINITY,
	PL_TAINT,
	PL_FIT,
	PL_LOADAWARE,
	PL_INTERPOD,
	PL_SPREAD,
	PL_BALANCED,
	PL_GANG,
	PL_PREEMPT,
	PL_COUNT
};
extern const char *const sched_plugin_names[PL_COUNT];

struct sched_profile {
	char name[64];
	char sched_name[64];
	bool most_allocated;
	bool enabled[PL_COUNT];
	int32_t weight[PL_COUNT];
};
#define SCHED_MAX_PROFILES 8
struct sched_predict_cfg {
	bool enabled;
	double half_life_h, margin, threshold, cpu_pct, mem_pct;
	int bucket_min, nbuckets;
	double min_samples;
	char batch_class[64];
};
struct sched_config {
	int parallelism;
	int pct_nodes;
	uint64_t seed;
	int64_t backoff_init_ms, backoff_max_ms;
	int nprofiles;
	struct sched_profile prof[SCHED_MAX_PROFILES];
	struct sched_predict_cfg pred;
};
void sched_config_defaults(struct sched_config *cfg);

/* ---- failure reasons: code = reason << 24 | argument ---- */
enum reason {
	RS_OK,
	RS_UNSCHEDULABLE,
	RS_NODEAFF,
	RS_TAINT,      /* arg: taint display sid */
	RS_FIT,	       /* arg: resource mask (RES_PODS_BIT for pods) */
	RS_BATCHFIT,   /* arg: resource mask */
	RS_LOADAWARE,
	RS_ANTI_EXISTING,
	RS_ANTI,
	RS_AFF,
	RS_SPREAD,
	RS_SPREAD_LABEL,
	RS_COUNT
};
#define RS_CODE(r, a) (((uint32_t)(r) << 24) | (uint32_t)(a))
#define RS_REASON(c) ((c) >> 24)
#define RS_ARG(c) ((c)&0xffffffu)
/* The plugin that a reason belongs to (for re-queueing on events). */
uint32_t sched_reason_plugin_bit(uint32_t reason);
#define FAIL_BIT(pl) (1u << (pl))

/* ---- the scheduling cycle ---- */
#define MAX_SPR 8
struct cycle {
	struct sched *s;
	struct spod *p;
	const struct sched_profile *prof;
	/* interpod: placed pods' terms that match p */
	struct term **sym;
	uint32_t nsym, symcap;
	bool first_pod; /* p's required affinity may be satisfied by p itself */
	/* spread */
	int32_t spr_min[MAX_SPR];
	int32_t spr_ndom[MAX_SPR];
	int32_t *spr_cnt[MAX_SPR]; /* per domain, over nodes matching p's node affinity */
	double spr_w[MAX_SPR];
	/* fit: nominated pods' requests apply to p */
	bool use_nominated;
};

/* ---- the scheduler ---- */
struct pool;
struct sched {
	struct sched_config cfg;
	struct sched_ops ops;
	struct intern in;
	sid_t k_name, k_hostname, k_podgroup;
	sid_t resname[SCHED_NRES];
	uint32_t nres;
	/* nodes */
	struct strmap nodes; /* name -> snode */
	struct snode **slots;
	uint32_t nslots, slotcap;
	int *freeslots;
	uint32_t nfree;
	struct snode **live;
	uint32_t nlive;
	uint32_t next_start;
	int64_t cap_total[SCHED_NRES];
	/* topology */
	struct topo topo[SCHED_MAX_TOPO];
	int ntopo;
	/* pods */
	struct strmap pods; /* key -> spod */
	struct spod **orphans; /* bound to a node that is absent */
	uint32_t norphans, orphcap;
	int64_t seq;
	/* terms */
	struct strmap termmap;
	struct term **terms;
	uint32_t nterms, termcap;
	/* namespaces and gangs */
	struct strmap nss;
	struct strmap gangs;
	/* queue */
	struct sns **actns;
	uint32_t nactns, actcap;
	struct spod **backoff; /* min-heap on backoff_until */
	uint32_t nbackoff, bcap;
	struct spod **unsched;
	uint32_t nunsched, ucap;
	uint32_t unsched_by_plugin[PL_COUNT + 2];
	/* prediction */
	struct strmap wprofs;
	int64_t pred_now;
	int cur_bucket;
	/* cycle scratch */
	uint32_t *fail;	     /* per slot */
	int32_t *feasible;   /* slots */
	uint32_t nfeasible;
	int64_t *score_tmp;
	struct pool *pool;
	double scan_ratio; /* nodes examined per feasible node found, smoothed */
	uint64_t rng;
	struct sched_stats st;
	char msgbuf[4096];
};

/* snapshot (sched_snapshot.c) */
int64_t sched_now(struct sched *s);
struct sns *sched_ns_get(struct sched *s, sid_t ns);
int sched_topo_index(struct sched *s, sid_t key); /* registers; -1 when full */
void pod_attach(struct sched *s, struct spod *p, struct snode *n);
void pod_detach(struct sched *s, struct spod *p);
bool term_cond_match(struct sched *s, const struct term *t, const struct spod *p);
static inline int32_t term_dom(const int32_t *a, uint32_t cap, int32_t d)
{
	return (d >= 0 && (uint32_t)d < cap) ? a[d] : 0;
}
void sched_pod_forget_nomination(struct sched *s, struct spod *p);

/* queue (sched_queue.c) */
void queue_add(struct sched *s, struct spod *p);  /* to active */
void queue_remove(struct sched *s, struct spod *p); /* from wherever it is */
struct spod *queue_pop(struct sched *s);
void queue_unschedulable(struct sched *s, struct spod *p, uint32_t fail_mask);
void queue_backoff(struct sched *s, struct spod *p);
void queue_flush_backoff(struct sched *s, int64_t now);
/* An event that may help pods rejected by any plugin in mask. gang: only that gang's pods
 * (NULL: all). */
void queue_move_on_event(struct sched *s, uint32_t mask, struct gang *gang);
int64_t queue_next_backoff(struct sched *s);
void queue_free(struct sched *s);

/* framework (sched_framework.c) */
uint32_t sched_filter_node(const struct cycle *c, const struct snode *n);
int sched_prefilter(struct cycle *c);
void cycle_release(struct cycle *c);
int sched_bind_pod(struct sched *s, struct spod *p);
void sched_mark_unschedulable(struct sched *s, struct spod *p, const char *msg, uint32_t mask);

/* plugins */
uint32_t plugin_unschedulable_filter(const struct cycle *c, const struct snode *n);
uint32_t plugin_nodeaffinity_filter(const struct cycle *c, const struct snode *n);
int64_t plugin_nodeaffinity_score(const struct cycle *c, const struct snode *n);
bool nsterm_match(struct sched *s, const struct nsterm *t, const struct snode *n);
uint32_t plugin_taint_filter(const struct cycle *c, const struct snode *n);
int64_t plugin_taint_score(const struct cycle *c, const struct snode *n);
uint32_t plugin_fit_filter(const struct cycle *c, const struct snode *n);
int64_t plugin_alloc_score(const struct cycle *c, const struct snode *n);
int64_t plugin_balanced_score(const struct cycle *c, const struct snode *n);
int plugin_interpod_prefilter(struct cycle *c);
uint32_t plugin_interpod_filter(const struct cycle *c, const struct snode *n);
int64_t plugin_interpod_score(const struct cycle *c, const struct snode *n);
int plugin_spread_prefilter(struct cycle *c);
uint32_t plugin_spread_filter(const struct cycle *c, const struct snode *n);
int64_t plugin_spread_score(const struct cycle *c, const struct snode *n);
void plugin_spread_release(struct cycle *c);
uint32_t plugin_loadaware_filter(const struct cycle *c, const struct snode *n);
int64_t plugin_loadaware_score(const struct cycle *c, const struct snode *n);
/* gang: 0 to go on, or -EAGAIN with a message in msg */
int plugin_gang_prefilter(struct cycle *c, char *msg, size_t len);
/* after reserve: true when p's gang is complete (bind every waiting member) */
bool plugin_gang_permit(struct sched *s, struct spod *p);
void plugin_gang_reject(struct sched *s, struct gang *g, const char *msg, uint32_t mask);
void plugin_gang_timeouts(struct sched *s, int64_t now);
int64_t plugin_gang_next_deadline(struct sched *s);
void gang_pod_left(struct sched *s, struct spod *p);
/* post-filter: returns 1 when p was nominated (victims evicted), 0 when nothing helps */
int plugin_preempt(struct sched *s, struct cycle *c);

/* prediction (sched_predict.c) */
struct wprof *predict_profile_get(struct sched *s, const char *key);
void predict_profile_put(struct sched *s, struct wprof *wp);
void predict_pod(struct sched *s, struct spod *p); /* fills p->pcpu/pmem */
void predict_node_add(struct sched *s, struct snode *n, const struct spod *p, int sign);
void predict_node_peak(struct sched *s, struct snode *n);
void predict_free(struct sched *s);
int64_t predict_batch_alloc(const struct sched *s, const struct snode *n, int r);

/* helpers */
static inline uint64_t sched_rand(struct sched *s)
{
	uint64_t x = s->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	s->rng = x;
	return x;
}
#define ARRAY_GROW(arr, n, cap)                                                                    \
	({                                                                                         \
		int r_ = 0;                                                                        \
		if ((n) >= (cap)) {                                                                \
			uint32_t nc_ = (cap) ? (cap)*2 : 8;                                        \
			void *na_ = realloc((arr), (size_t)nc_ * sizeof(*(arr)));                  \
			if (!na_)                                                                  \
				r_ = -ENOMEM;                                                      \
			else {                                                                     \
				(arr) = na_;                                                       \
				(cap) = nc_;                                                       \
			}                                                                          \
		}                                                                                  \
		r_;                                                                                \
	})

#endif
