// SPDX-License-Identifier: Apache-2.0
/*
 * The scheduler's JSON configuration: parallelism, the share of nodes to score, back-off,
 * profiles (each a schedulerName, a scoring strategy, plugin weights, disabled plugins) and
 * the prediction settings. Two profiles exist by default: `spread` (schedulerName
 * "default-scheduler", LeastAllocated) and `binpack` (MostAllocated, no balancing). A profile
 * in the file replaces the default of the same name or is added. Every field is checked
 * where it enters; an error names it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched_int.h"

const char *const sched_plugin_names[PL_COUNT] = {
	[PL_UNSCHEDULABLE] = "NodeUnschedulable",
	[PL_NODEAFFINITY] = "NodeAffinity",
	[PL_TAINT] = "TaintToleration",
	[PL_FIT] = "NodeResourcesFit",
	[PL_LOADAWARE] = "LoadAware",
	[PL_INTERPOD] = "InterPodAffinity",
	[PL_SPREAD] = "PodTopologySpread",
	[PL_BALANCED] = "BalancedAllocation",
	[PL_GANG] = "Gang",
	[PL_PREEMPT] = "Preemption",
};

static void profile_defaults(struct sched_profile *p, const char *name, const char *sn,
			     bool most)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->sched_name, sizeof(p->sched_name), "%s", sn);
	p->most_allocated = most;
	for (int i = 0; i < PL_COUNT; i++)
		p->enabled[i] = true;
	p->weight[PL_FIT] = 1;
	p->weight[PL_BALANCED] = most ? 0 : 1;
	p->weight[PL_NODEAFFINITY] = 2;
	p->weight[PL_TAINT] = 3;
	p->weight[PL_INTERPOD] = 2;
	p->weight[PL_SPREAD] = 2;
	p->weight[PL_LOADAWARE] = 1;
}

void sched_config_defaults(struct sched_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->parallelism = 0;
	cfg->pct_nodes = 0;
	cfg->seed = 1;
	cfg->backoff_init_ms = 1000;
	cfg->backoff_max_ms = 10000;
	cfg->nprofiles = 2;
	profile_defaults(&cfg->prof[0], "spread", "default-scheduler", false);
	profile_defaults(&cfg->prof[1], "binpack", "binpack", true);
	struct sched_predict_cfg *p = &cfg->pred;
	p->enabled = false;
	p->half_life_h = 24;
	p->bucket_min = 60;
	p->nbuckets = 24;
	p->cpu_pct = 95;
	p->mem_pct = 98;
	p->margin = 0.1;
	p->threshold = 0.9;
	p->min_samples = 30;
	snprintf(p->batch_class, sizeof(p->batch_class), "batch");
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		if (err)                                                                           \
			snprintf(err, errlen, __VA_ARGS__);                                        \
		goto fail;                                                                         \
	} while (0)

static int plugin_by_name(const char *n)
{
	for (int i = 0; i < PL_COUNT; i++)
		if (!strcmp(sched_plugin_names[i], n))
			return i;
	if (!strcmp(n, "LeastAllocated") || !strcmp(n, "MostAllocated"))
		return PL_FIT;
	return -1;
}

static bool num(const json_t *v, double lo, double hi, double *out)
{
	if (!json_is_number(v))
		return false;
	double d = json_number_value(v);
	if (d < lo || d > hi)
		return false;
	*out = d;
	return true;
}

struct sched_config *sched_config_parse(const json_t *j, char *err, size_t errlen)
{
	struct sched_config *cfg = calloc(1, sizeof(*cfg));
	double d;
	if (!cfg)
		return NULL;
	sched_config_defaults(cfg);
	if (!j)
		return cfg;
	if (!json_is_object(j))
		FAIL("configuration: must be an object");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v) {
		if (!strcmp(k, "parallelism")) {
			if (!num(v, 0, 64, &d))
				FAIL("parallelism: must be a number in 0-64");
			cfg->parallelism = (int)d;
		} else if (!strcmp(k, "percentageOfNodesToScore")) {
			if (!num(v, 0, 100, &d))
				FAIL("percentageOfNodesToScore: must be a number in 0-100");
			cfg->pct_nodes = (int)d;
		} else if (!strcmp(k, "seed")) {
			if (!json_is_integer(v))
				FAIL("seed: must be an integer");
			cfg->seed = (uint64_t)json_integer_value(v);
		} else if (!strcmp(k, "podInitialBackoffSeconds")) {
			if (!num(v, 0.001, 3600, &d))
				FAIL("podInitialBackoffSeconds: must be a number in 0.001-3600");
			cfg->backoff_init_ms = (int64_t)(d * 1000);
		} else if (!strcmp(k, "podMaxBackoffSeconds")) {
			if (!num(v, 0.001, 86400, &d))
				FAIL("podMaxBackoffSeconds: must be a number in 0.001-86400");
			cfg->backoff_max_ms = (int64_t)(d * 1000);
		} else if (!strcmp(k, "profiles")) {
			if (!json_is_array(v))
				FAIL("profiles: must be an array");
			size_t i;
			json_t *pj;
			json_array_foreach(v, i, pj) {
				const char *name = json_string_value(json_object_get(pj, "name"));
				if (!name || !*name || strlen(name) >= 64)
					FAIL("profiles[%zu].name: Required value (at most 63 characters)",
					     i);
				int idx = -1;
				for (int x = 0; x < cfg->nprofiles; x++)
					if (!strcmp(cfg->prof[x].name, name))
						idx = x;
				if (idx < 0) {
					if (cfg->nprofiles >= SCHED_MAX_PROFILES)
						FAIL("profiles: at most %d", SCHED_MAX_PROFILES);
					idx = cfg->nprofiles++;
					profile_defaults(&cfg->prof[idx], name, name, false);
				}
				struct sched_profile *pr = &cfg->prof[idx];
				const char *pk;
				json_t *pv;
				json_object_foreach(pj, pk, pv) {
					if (!strcmp(pk, "name"))
						continue;
					if (!strcmp(pk, "schedulerName")) {
						const char *sn = json_string_value(pv);
						if (!sn || !*sn || strlen(sn) >= 64)
							FAIL("profiles[%zu].schedulerName: must be a non-empty string",
							     i);
						snprintf(pr->sched_name, sizeof(pr->sched_name), "%s",
							 sn);
					} else if (!strcmp(pk, "scoring")) {
						const char *sc = json_string_value(pv);
						if (sc && !strcmp(sc, "LeastAllocated"))
							pr->most_allocated = false;
						else if (sc && !strcmp(sc, "MostAllocated"))
							pr->most_allocated = true;
						else
							FAIL("profiles[%zu].scoring: must be LeastAllocated or MostAllocated",
							     i);
					} else if (!strcmp(pk, "weights")) {
						const char *wk;
						json_t *wv;
						if (!json_is_object(pv))
							FAIL("profiles[%zu].weights: must be an object", i);
						json_object_foreach(pv, wk, wv) {
							int pl = plugin_by_name(wk);
							if (pl < 0)
								FAIL("profiles[%zu].weights.%s: unknown plugin",
								     i, wk);
							if (!num(wv, 0, 100, &d))
								FAIL("profiles[%zu].weights.%s: must be a number in 0-100",
								     i, wk);
							pr->weight[pl] = (int32_t)d;
						}
					} else if (!strcmp(pk, "disabled")) {
						size_t x;
						json_t *dv;
						if (!json_is_array(pv))
							FAIL("profiles[%zu].disabled: must be an array", i);
						json_array_foreach(pv, x, dv) {
							const char *pn = json_string_value(dv);
							int pl = pn ? plugin_by_name(pn) : -1;
							if (pl < 0)
								FAIL("profiles[%zu].disabled[%zu]: unknown plugin",
								     i, x);
							pr->enabled[pl] = false;
						}
					} else {
						FAIL("profiles[%zu].%s: unknown field", i, pk);
					}
				}
			}
		} else if (!strcmp(k, "prediction")) {
			struct sched_predict_cfg *p = &cfg->pred;
			const char *pk;
			json_t *pv;
			if (!json_is_object(v))
				FAIL("prediction: must be an object");
			json_object_foreach(v, pk, pv) {
				if (!strcmp(pk, "enabled")) {
					if (!json_is_boolean(pv))
						FAIL("prediction.enabled: must be a boolean");
					p->enabled = json_is_true(pv);
				} else if (!strcmp(pk, "halfLifeHours")) {
					if (!num(pv, 0.01, 24 * 365, &p->half_life_h))
						FAIL("prediction.halfLifeHours: must be a number in 0.01-8760");
				} else if (!strcmp(pk, "bucketMinutes")) {
					if (!num(pv, 1, 1440, &d) || 1440 % (int)d)
						FAIL("prediction.bucketMinutes: must divide 1440");
					p->bucket_min = (int)d;
					p->nbuckets = 1440 / (int)d;
				} else if (!strcmp(pk, "cpuPercentile")) {
					if (!num(pv, 1, 100, &p->cpu_pct))
						FAIL("prediction.cpuPercentile: must be a number in 1-100");
				} else if (!strcmp(pk, "memoryPercentile")) {
					if (!num(pv, 1, 100, &p->mem_pct))
						FAIL("prediction.memoryPercentile: must be a number in 1-100");
				} else if (!strcmp(pk, "margin")) {
					if (!num(pv, 0, 10, &p->margin))
						FAIL("prediction.margin: must be a number in 0-10");
				} else if (!strcmp(pk, "thresholdPercent")) {
					if (!num(pv, 1, 100, &d))
						FAIL("prediction.thresholdPercent: must be a number in 1-100");
					p->threshold = d / 100.0;
				} else if (!strcmp(pk, "minSamples")) {
					if (!num(pv, 1, 1e9, &p->min_samples))
						FAIL("prediction.minSamples: must be a number >= 1");
				} else if (!strcmp(pk, "batchPriorityClass")) {
					const char *b = json_string_value(pv);
					if (!b || strlen(b) >= sizeof(p->batch_class))
						FAIL("prediction.batchPriorityClass: must be a string");
					snprintf(p->batch_class, sizeof(p->batch_class), "%s", b);
				} else {
					FAIL("prediction.%s: unknown field", pk);
				}
			}
		} else {
			FAIL("%s: unknown field", k);
		}
	}
	if (cfg->backoff_max_ms < cfg->backoff_init_ms)
		FAIL("podMaxBackoffSeconds: must be at least podInitialBackoffSeconds");
	return cfg;
fail:
	free(cfg);
	errno = EINVAL;
	return NULL;
}

struct sched_config *sched_config_load(const char *path, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	if (!j) {
		if (err)
			snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
		errno = EINVAL;
		return NULL;
	}
	struct sched_config *cfg = sched_config_parse(j, err, errlen);
	json_decref(j);
	return cfg;
}

void sched_config_free(struct sched_config *cfg)
{
	free(cfg);
}
