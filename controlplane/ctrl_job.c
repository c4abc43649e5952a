// SPDX-License-Identifier: Apache-2.0
/*
 * The Job controller: runs pods of a template to completion, as Kubernetes' does.
 *
 * - Up to parallelism pods run at once, until completions pods have succeeded (without
 *   completions: until one has succeeded and none runs any more); then condition Complete
 *   and status.completionTime.
 * - A failed pod is replaced after a back-off (base 10 s, doubling per failure, at most
 *   6 minutes); more than backoffLimit failures (with restartPolicy OnFailure: container
 *   restarts) fail the Job: condition Failed, reason BackoffLimitExceeded. A Job active
 *   longer than activeDeadlineSeconds fails with reason DeadlineExceeded. The pods of a
 *   finished Job stop; spec.suspend stops them too (condition Suspended).
 * - ttlSecondsAfterFinished: that long after it finished, the Job is deleted (in the
 *   foreground, its pods first).
 * - Status: active, ready, succeeded, failed, startTime, completionTime, conditions.
 *
 * The design choice to know: succeeded and failed pods are counted exactly once, even when
 * they are deleted, as Kubernetes' pod tracking does: the Job's pods carry the finalizer
 * batch.kubernetes.io/job-tracking; a pod that finished is first recorded by uid in
 * status.uncountedTerminatedPods, then loses its finalizer, then moves into the counts. The
 * controller remembers the revision at which it removed each pod's finalizer: until the pod
 * cache reaches it, the cached pod (which still shows the finalizer) is counted already and
 * is neither recorded nor released again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_kinds.h"
#include "ctrl.h"
#include "hashmap.h"
#include "log.h"

#define FIN_TRACKING   "batch.kubernetes.io/job-tracking"
#define JOB_BURST      500
#define MAX_BACKOFF_MS (6 * 60 * 1000)

struct job_ctrl {
	struct ctrl_informer *jobs, *pods;
	const struct api_kind *job_kind, *pod_kind;
};

static struct ctrl_obj *owner_of(struct job_ctrl *p, const struct ctrl_obj *o)
{
	return ctrl_controller_of(p->jobs, "Job", o);
}

static bool has_fin(const struct ctrl_obj *o, const char *f);

/* The key under which the revision of a pod's finalizer removal is remembered. */
static void released_key(const struct ctrl_obj *pod, char *buf, size_t len)
{
	snprintf(buf, len, "fin|%s", pod->uid);
}

static void on_pod(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		   const struct ctrl_obj *old)
{
	struct job_ctrl *p = ctrl_priv(c);
	struct ctrl_obj *j = owner_of(p, now);
	if (ev == CTRL_DELETED ||
	    (old && has_fin(old, FIN_TRACKING) && !has_fin(now, FIN_TRACKING))) {
		/* the cache saw the finalizer (or the pod) go: nothing to remember any more */
		char key[300];
		released_key(now, key, sizeof(key));
		ctrl_forget_written(c, key);
	}
	if (!j && ev != CTRL_DELETED && has_fin(now, FIN_TRACKING)) {
		/* a pod whose Job is gone keeps no finalizer of it */
		char key[700];
		snprintf(key, sizeof(key), "pod|%s", now->key);
		ctrl_queue(c, key);
	}
	if (j) {
		if (ev == CTRL_ADDED)
			ctrl_creation_observed(c, j->key);
		if (ev == CTRL_DELETED || (now->deleting && (ev == CTRL_ADDED || !old->deleting)))
			ctrl_deletion_observed(c, j->key, now->key);
		ctrl_queue(c, j->key);
		ctrl_obj_unref(j);
	} else if (!now->controller && ev != CTRL_DELETED) {
		struct ctrl_objs l = { 0 };
		if (ctrl_selecting(p->jobs, now->o->ns, ctrl_obj_labels(now), &l) == 0)
			for (size_t i = 0; i < l.n; i++)
				ctrl_queue(c, l.v[i]->key);
		ctrl_objs_free(&l);
	}
}

static int job_init(struct ctrl *c)
{
	struct job_ctrl *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	ctrl_set_priv(c, p);
	p->jobs = ctrl_informer(c, "batch/v1", "Job", CTRL_INDEX_SELECTORS);
	p->pods = ctrl_informer(c, "v1", "Pod", CTRL_INDEX_LABELS);
	p->job_kind = api_kind_by_kind("batch/v1", "Job");
	p->pod_kind = api_kind_by_kind("v1", "Pod");
	if (!p->jobs || !p->pods || !p->job_kind || !p->pod_kind)
		return -EINVAL;
	if (ctrl_on(c, p->jobs, ctrl_on_owner) || ctrl_on(c, p->pods, on_pod))
		return -E2BIG;
	return 0;
}

static void job_fini(struct ctrl *c)
{
	free(ctrl_priv(c));
}

/* ---- pieces ----------------------------------------------------------------------------- */

static long get_long(const json_t *o, const char *k, long dflt)
{
	const json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

static bool has_fin(const struct ctrl_obj *o, const char *f)
{
	for (size_t i = 0; i < o->nfinalizers; i++)
		if (strcmp(o->finalizers[i], f) == 0)
			return true;
	return false;
}

static const json_t *cond(const json_t *status, const char *type)
{
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(status, "conditions"), i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		const char *s = json_string_value(json_object_get(c, "status"));
		if (t && s && strcmp(t, type) == 0 && strcmp(s, "True") == 0)
			return c;
	}
	return NULL;
}

static bool in_list(const json_t *arr, const char *uid)
{
	size_t i;
	json_t *v;
	json_array_foreach (arr, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), uid) == 0)
			return true;
	return false;
}

/* A finished pod: Succeeded, Failed, or deleted before it succeeded. */
static int pod_outcome(const struct ctrl_obj *o)
{
	if (o->pod->phase == POD_SUCCEEDED)
		return 1;
	if (o->pod->phase == POD_FAILED || o->deleting)
		return -1;
	return 0;
}

struct job {
	struct ctrl *c;
	struct ctrl_obj *rec;
	json_t *obj;
	const json_t *spec, *status;
	long parallelism, completions, backoff_limit, deadline, ttl;
	bool has_completions, suspend, on_failure;
	long succeeded, failed;	   /* counted, plus recorded as uncounted */
	int64_t rv;		   /* the Job's resourceVersion, as last written */
	json_t *unc_ok, *unc_fail; /* status.uncountedTerminatedPods, as it will be */
	struct ctrl_objs pods;
	char msg[600];
};

static int pod_path(struct job *j, const struct ctrl_obj *pod, char *buf, size_t len)
{
	struct job_ctrl *p = ctrl_priv(j->c);
	return ctrl_path(p->pod_kind, j->rec->o->ns, pod ? pod->o->name : NULL, NULL, buf, len);
}

/* Writes part of the status (st, taken), conditional on the Job's resourceVersion as this
 * reconcile last saw it: a reconcile on a stale cache never writes counts from a stale base. */
static int write_status(struct job *j, json_t *st)
{
	struct job_ctrl *p = ctrl_priv(j->c);
	char path[1024], rv[32];
	json_t *out = NULL;
	snprintf(rv, sizeof(rv), "%lld", (long long)j->rv);
	json_t *patch =
		json_pack("{s:{s:s}, s:o}", "metadata", "resourceVersion", rv, "status", st);
	int err = patch ? ctrl_path(p->job_kind, j->rec->o->ns, j->rec->o->name, "status", path,
				    sizeof(path))
			: -ENOMEM;
	if (!err)
		err = ctrl_write(j->c, "PATCH", path, patch, &out, NULL, 0);
	json_decref(patch);
	if (!err) {
		const char *nrv = json_string_value(
			json_object_get(json_object_get(out, "metadata"), "resourceVersion"));
		if (nrv) {
			j->rv = strtoll(nrv, NULL, 10);
			ctrl_wrote(j->c, j->rec->key, j->rv);
		}
	}
	json_decref(out);
	return err;
}

/* True while the cached pod is older than our own removal of its finalizer. */
static bool released(struct job *j, const struct ctrl_obj *pod)
{
	char key[300];
	released_key(pod, key, sizeof(key));
	return ctrl_cache_behind(j->c, key, pod->o->rev);
}

static int remove_tracking(struct job *j, const struct ctrl_obj *pod)
{
	char path[1024], rv[32];
	json_t *fins = json_array(), *out = NULL;
	for (size_t i = 0; fins && i < pod->nfinalizers; i++)
		if (strcmp(pod->finalizers[i], FIN_TRACKING) != 0)
			json_array_append_new(fins, json_string(pod->finalizers[i]));
	snprintf(rv, sizeof(rv), "%lld", (long long)pod->o->rev);
	json_t *patch = fins ? json_pack("{s:{s:o, s:s}}", "metadata", "finalizers", fins,
					 "resourceVersion", rv)
			     : NULL;
	int err = patch ? pod_path(j, pod, path, sizeof(path)) : -ENOMEM;
	if (!err)
		err = ctrl_write(j->c, "PATCH", path, patch, &out, NULL, 0);
	json_decref(patch);
	if (!err) {
		/* remember it until the pod cache has seen it (see the top of this file) */
		const char *nrv = json_string_value(
			json_object_get(json_object_get(out, "metadata"), "resourceVersion"));
		char key[300];
		released_key(pod, key, sizeof(key));
		if (nrv)
			ctrl_wrote(j->c, key, strtoll(nrv, NULL, 10));
		else
			log_warn("job: the pod %s written without a resourceVersion", pod->key);
	}
	json_decref(out);
	return err == -ENOENT ? 0 : err;
}

/* The tracking of finished pods: record, release, count (see the top of this file). */
static int track(struct job *j)
{
	const json_t *unc = json_object_get(j->status, "uncountedTerminatedPods");
	long counted_ok = get_long(j->status, "succeeded", 0);
	long counted_fail = get_long(j->status, "failed", 0);
	bool added = false;
	int err = 0;

	j->unc_ok = json_deep_copy(json_object_get(unc, "succeeded"));
	j->unc_fail = json_deep_copy(json_object_get(unc, "failed"));
	if (!j->unc_ok)
		j->unc_ok = json_array();
	if (!j->unc_fail)
		j->unc_fail = json_array();
	if (!j->unc_ok || !j->unc_fail)
		return -ENOMEM;
	j->succeeded = counted_ok + (long)json_array_size(j->unc_ok);
	j->failed = counted_fail + (long)json_array_size(j->unc_fail);
	/* 1. record the pods that finished and still carry the finalizer */
	for (size_t i = 0; i < j->pods.n; i++) {
		const struct ctrl_obj *o = j->pods.v[i];
		int out = pod_outcome(o);
		if (!out || !has_fin(o, FIN_TRACKING) || in_list(j->unc_ok, o->uid) ||
		    in_list(j->unc_fail, o->uid) || released(j, o))
			continue;
		json_array_append_new(out > 0 ? j->unc_ok : j->unc_fail, json_string(o->uid));
		added = true;
	}
	j->succeeded = counted_ok + (long)json_array_size(j->unc_ok);
	j->failed = counted_fail + (long)json_array_size(j->unc_fail);
	if (added) {
		json_t *st = json_pack("{s:{s:O, s:O}}", "uncountedTerminatedPods", "succeeded",
				       j->unc_ok, "failed", j->unc_fail);
		err = st ? write_status(j, st) : -ENOMEM;
		if (err)
			return err;
	}
	/* 2. release them */
	for (size_t i = 0; i < j->pods.n && !err; i++) {
		const struct ctrl_obj *o = j->pods.v[i];
		if (has_fin(o, FIN_TRACKING) &&
		    (in_list(j->unc_ok, o->uid) || in_list(j->unc_fail, o->uid)) && !released(j, o))
			err = remove_tracking(j, o);
	}
	if (err)
		return err;
	/* 3. every recorded pod is released now: count them */
	if (json_array_size(j->unc_ok) || json_array_size(j->unc_fail)) {
		json_t *st = json_pack("{s:I, s:I, s:{s:[], s:[]}}", "succeeded",
				       (json_int_t)j->succeeded, "failed", (json_int_t)j->failed,
				       "uncountedTerminatedPods", "succeeded", "failed");
		err = st ? write_status(j, st) : -ENOMEM;
		if (!err) {
			json_array_clear(j->unc_ok);
			json_array_clear(j->unc_fail);
		}
	}
	return err;
}

/* ---- pods -------------------------------------------------------------------------------- */

static json_t *pod_from_template(const struct ctrl_obj *job, const json_t *tmpl)
{
	const json_t *tmeta = json_object_get(tmpl, "metadata");
	char gen[300];
	json_t *refs = json_array(), *meta;

	snprintf(gen, sizeof(gen), "%s-", job->o->name);
	if (!refs || json_array_append_new(
			     refs, ctrl_owner_ref("batch/v1", "Job", job->o->name, job->uid))) {
		json_decref(refs);
		return NULL;
	}
	meta = json_pack("{s:s, s:o, s:[s]}", "generateName", gen, "ownerReferences", refs,
			 "finalizers", FIN_TRACKING);
	if (!meta)
		return NULL;
	static const char *const copied[] = { "labels", "annotations", NULL };
	for (const char *const *k = copied; *k; k++) {
		json_t *v = json_object_get(tmeta, *k);
		if (v)
			json_object_set_new(meta, *k, json_deep_copy(v));
	}
	return json_pack("{s:s, s:s, s:o, s:O}", "apiVersion", "v1", "kind", "Pod", "metadata",
			 meta, "spec", json_object_get(tmpl, "spec"));
}

static int create_pods(struct job *j, long n)
{
	char path[1024], m[512];
	json_t *pod = pod_from_template(j->rec, json_object_get(j->spec, "template"));
	int err = 0;
	long done = 0;

	if (!pod)
		return -ENOMEM;
	if (pod_path(j, NULL, path, sizeof(path))) { /* the namespace's pods */
		json_decref(pod);
		return -ENAMETOOLONG;
	}
	ctrl_expect_creations(j->c, j->rec->key, (int)n);
	for (long batch = 1; done < n && !err; batch *= 2) {
		long b = batch < n - done ? batch : n - done;
		for (long i = 0; i < b; i++) {
			json_t *made = NULL;
			int e = ctrl_write(j->c, "POST", path, pod, &made, m, sizeof(m));
			ctrl_event_created(j->c, j->rec, e, made, m);
			json_decref(made);
			if (e) {
				ctrl_creation_observed(j->c, j->rec->key);
				if (!err) {
					err = e;
					snprintf(j->msg, sizeof(j->msg), "%s", m);
				}
			}
		}
		done += b;
	}
	for (; done < n; done++)
		ctrl_creation_observed(j->c, j->rec->key);
	json_decref(pod);
	return err;
}

/* Deletes pods (all of active when n < 0, else the n least advanced). */
static int delete_pods(struct job *j, struct ctrl_obj **active, size_t nactive, long n)
{
	int first = 0;
	if (n < 0 || (size_t)n > nactive)
		n = (long)nactive;
	for (long i = 0; i < n; i++)
		ctrl_expect_deletion(j->c, j->rec->key, active[i]->key);
	for (long i = 0; i < n; i++) {
		char path[1024], m[512] = "";
		int e = pod_path(j, active[i], path, sizeof(path));
		if (!e)
			e = ctrl_write(j->c, "DELETE", path, NULL, NULL, m, sizeof(m));
		if (e)
			ctrl_deletion_observed(j->c, j->rec->key, active[i]->key);
		ctrl_event_deleted(j->c, j->rec, e, active[i]->o->name, m);
		if (e && e != -ENOENT && !first)
			first = e;
	}
	return first;
}

/* Pods not ready first, then the newest. */
static int surplus_order(const void *x, const void *y)
{
	const struct ctrl_obj *a = *(struct ctrl_obj *const *)x, *b = *(struct ctrl_obj *const *)y;
	if (a->pod->ready != b->pod->ready)
		return a->pod->ready ? 1 : -1;
	if (a->created != b->created)
		return a->created > b->created ? -1 : 1;
	return strcmp(b->key, a->key);
}

/* ---- reconcile ------------------------------------------------------------------------- */

static json_t *condition(const char *type, const char *status, const char *reason, const char *msg)
{
	char now[32];
	ctrl_now(now);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type, "status", status,
			 "lastProbeTime", now, "lastTransitionTime", now, "reason", reason,
			 "message", msg);
}

/* conds with cond in place of its type's (kept as it was when status and reason agree). */
static void set_cond(json_t *conds, json_t *c)
{
	const char *type = json_string_value(json_object_get(c, "type"));
	size_t i;
	json_t *o;
	json_array_foreach (conds, i, o) {
		if (strcmp(json_string_value(json_object_get(o, "type")) ?: "", type) != 0)
			continue;
		if (json_equal(json_object_get(o, "status"), json_object_get(c, "status")) &&
		    json_equal(json_object_get(o, "reason"), json_object_get(c, "reason")))
			json_decref(c);
		else
			json_array_set_new(conds, i, c);
		return;
	}
	json_array_append_new(conds, c);
}

/* A pod with the tracking finalizer and no Job: releases it once the API says the Job is
 * gone (the cache may only lag). */
static int release_orphan(struct ctrl *c, const char *podkey)
{
	struct job_ctrl *p = ctrl_priv(c);
	struct ctrl_obj *pod = ctrl_get(p->pods, podkey);
	char path[1024];
	json_t *live = NULL;
	int err = 0;

	if (!pod || !has_fin(pod, FIN_TRACKING)) {
		ctrl_obj_unref(pod);
		return 0;
	}
	const struct ctrl_ref *r = pod->controller;
	if (r && strcmp(r->kind, "Job") == 0) {
		err = ctrl_path(p->job_kind, pod->o->ns, r->name, NULL, path, sizeof(path));
		if (!err)
			err = ctrl_write(c, "GET", path, NULL, &live, NULL, 0);
		const char *uid = json_string_value(
			json_object_get(json_object_get(live, "metadata"), "uid"));
		if (!err && uid && strcmp(uid, r->uid) == 0) {
			json_decref(live);
			ctrl_obj_unref(pod);
			return 0; /* its Job lives: it is that Job's to release */
		}
		json_decref(live);
		if (err && err != -ENOENT) {
			ctrl_obj_unref(pod);
			return err;
		}
	}
	struct job j = { .c = c, .rec = pod };
	err = remove_tracking(&j, pod);
	ctrl_obj_unref(pod);
	return err;
}

static int job_reconcile(struct ctrl *c, const char *key)
{
	struct job_ctrl *p = ctrl_priv(c);
	struct job j = { .c = c };

	if (strncmp(key, "pod|", 4) == 0)
		return release_orphan(c, key + 4);
	struct ctrl_obj **active = NULL;
	size_t nactive = 0;
	long ready = 0, restarts = 0;
	time_t now = time(NULL);
	int err = 0, e;

	j.rec = ctrl_get(p->jobs, key);
	if (!j.rec) {
		ctrl_expectations_forget(c, key);
		return 0;
	}
	/* Counts come from the status: never act on one older than our own last write. */
	if (ctrl_cache_behind(c, key, j.rec->o->rev)) {
		ctrl_obj_unref(j.rec);
		return 0;
	}
	j.obj = ctrl_obj_json(j.rec);
	if (!j.obj) {
		ctrl_obj_unref(j.rec);
		return -ENOMEM;
	}
	j.rv = j.rec->o->rev;
	j.spec = json_object_get(j.obj, "spec");
	j.status = json_object_get(j.obj, "status");
	j.parallelism = get_long(j.spec, "parallelism", 1);
	j.has_completions = json_is_integer(json_object_get(j.spec, "completions"));
	j.completions = get_long(j.spec, "completions", 1);
	j.backoff_limit = get_long(j.spec, "backoffLimit", 6);
	j.deadline = get_long(j.spec, "activeDeadlineSeconds", -1);
	j.ttl = get_long(j.spec, "ttlSecondsAfterFinished", -1);
	j.suspend = json_is_true(json_object_get(j.spec, "suspend"));
	const char *rp = json_string_value(json_object_get(
		json_object_get(json_object_get(j.spec, "template"), "spec"), "restartPolicy"));
	j.on_failure = rp && strcmp(rp, "OnFailure") == 0;
	const json_t *done_cond = cond(j.status, "Complete");
	if (!done_cond)
		done_cond = cond(j.status, "Failed");
	bool finished = done_cond != NULL;

	err = ctrl_claim(c, p->pods, j.rec, "batch/v1", "Job", &j.pods);
	if (!err)
		err = track(&j);
	if (err)
		goto out;
	active = calloc(j.pods.n + 1, sizeof(*active));
	if (!active) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < j.pods.n; i++)
		if (!pod_outcome(j.pods.v[i])) {
			active[nactive++] = j.pods.v[i];
			ready += j.pods.v[i]->pod->ready;
			restarts += j.pods.v[i]->pod->restarts;
		}

	json_t *conds = json_deep_copy(json_object_get(j.status, "conditions"));
	if (!json_is_array(conds)) {
		json_decref(conds);
		conds = json_array();
	}
	const char *start_s = json_string_value(json_object_get(j.status, "startTime"));
	time_t start = ctrl_parse_time(start_s);
	char start_now[32] = "", completion[32] = "";
	if (!start && !j.suspend && !finished) {
		ctrl_now(start_now);
		start = now;
	}
	bool synced = ctrl_expectations_met(c, key);
	const char *fail_reason = NULL;
	char fail_msg[256] = "";
	if (!finished) {
		bool over_limit = j.failed > j.backoff_limit;
		if (j.on_failure && !over_limit)
			over_limit =
				j.backoff_limit == 0 ? restarts > 0 : restarts >= j.backoff_limit;
		if (over_limit) {
			fail_reason = "BackoffLimitExceeded";
			snprintf(fail_msg, sizeof(fail_msg),
				 "Job has reached the specified backoff "
				 "limit");
		} else if (j.deadline >= 0 && start && !j.suspend && now - start >= j.deadline) {
			fail_reason = "DeadlineExceeded";
			snprintf(fail_msg, sizeof(fail_msg),
				 "Job was active longer than specified "
				 "deadline");
		}
	}
	if (j.rec->deleting) {
		/* going: its pods may go too, counted or not */
		for (size_t i = 0; i < j.pods.n && !err; i++)
			if (has_fin(j.pods.v[i], FIN_TRACKING))
				err = remove_tracking(&j, j.pods.v[i]);
		json_decref(conds);
		goto out;
	}
	bool complete = !finished && !fail_reason &&
			(j.has_completions ? j.succeeded >= j.completions
					   : j.succeeded > 0 && nactive == 0);
	if (finished || fail_reason || complete) {
		if (nactive)
			e = delete_pods(&j, active, nactive, -1), err = err ? err : e;
		if (fail_reason && !finished) {
			set_cond(conds, condition("Failed", "True", fail_reason, fail_msg));
			ctrl_event(c, j.rec, "Warning", fail_reason, "%s", fail_msg);
		}
		if (complete) {
			set_cond(conds, condition("Complete", "True", "CompletionsReached",
						  "Reached expected number of succeeded pods"));
			ctrl_now(completion);
			ctrl_event(c, j.rec, "Normal", "Completed", "Job completed");
		}
	} else if (j.suspend) {
		if (nactive)
			e = delete_pods(&j, active, nactive, -1), err = err ? err : e;
		set_cond(conds, condition("Suspended", "True", "JobSuspended", "Job suspended"));
	} else {
		if (cond(j.status, "Suspended"))
			set_cond(conds,
				 condition("Suspended", "False", "JobResumed", "Job resumed"));
		long want = j.has_completions
				    ? (j.completions - j.succeeded < j.parallelism
					       ? j.completions - j.succeeded
					       : j.parallelism)
				    /* a work queue: after a success, what runs runs out */
				    : (j.succeeded > 0 ? (long)nactive : j.parallelism);
		if (want < 0)
			want = 0;
		if (synced && (long)nactive < want) {
			/* A failure holds replacements back: base * 2^(failures-1). */
			int64_t delay = 0;
			if (j.failed > 0) {
				int64_t base = ctrl_config(c)->job_backoff_base_ms > 0
						       ? ctrl_config(c)->job_backoff_base_ms
						       : 10000;
				delay = base;
				for (long i = 1; i < j.failed && delay < MAX_BACKOFF_MS; i++)
					delay *= 2;
				if (delay > MAX_BACKOFF_MS)
					delay = MAX_BACKOFF_MS;
				int64_t since = ctrl_since_change_ms(c, key, j.failed);
				delay = since >= delay ? 0 : delay - since;
			}
			if (delay > 0) {
				ctrl_queue_after(c, key, delay);
			} else {
				long n = want - (long)nactive;
				e = create_pods(&j, n < JOB_BURST ? n : JOB_BURST);
				err = err ? err : e;
			}
		} else if (synced && (long)nactive > want) {
			qsort(active, nactive, sizeof(*active), surplus_order);
			e = delete_pods(&j, active, nactive, (long)nactive - want);
			err = err ? err : e;
		}
	}

	/* status */
	json_t *st = json_pack("{s:I, s:I, s:I, s:I, s:o}", "active", (json_int_t)nactive, "ready",
			       (json_int_t)ready, "succeeded", (json_int_t)j.succeeded, "failed",
			       (json_int_t)j.failed, "conditions", conds);
	if (!st) {
		err = err ? err : -ENOMEM;
		goto out;
	}
	if (*start_now)
		json_object_set_new(st, "startTime", json_string(start_now));
	if (*completion)
		json_object_set_new(st, "completionTime", json_string(completion));
	bool same = true;
	const char *k;
	json_t *v;
	json_object_foreach (st, k, v)
		same &= json_equal(v, json_object_get(j.status, k)) ||
			(strcmp(k, "conditions") == 0 && !json_array_size(v) &&
			 !json_object_get(j.status, k));
	if (!same) {
		e = write_status(&j, st);
		err = err ? err : e;
		if (!e && fail_reason)
			log_info("job %s failed: %s", key, fail_msg);
		if (!e && complete)
			log_info("job %s complete: %ld succeeded", key, j.succeeded);
	} else {
		json_decref(st);
	}
	if (!finished && !fail_reason && !complete && j.deadline >= 0 && start && !j.suspend)
		ctrl_queue_after(c, key, ((int64_t)(start + j.deadline - now)) * 1000 + 100);
	/* ttlSecondsAfterFinished */
	if (j.ttl >= 0 && !j.rec->deleting && (finished || fail_reason || complete)) {
		const char *fin_s = json_string_value(json_object_get(j.status, "completionTime"));
		if (!fin_s && done_cond)
			fin_s = json_string_value(json_object_get(done_cond, "lastTransitionTime"));
		time_t fin = fin_s ? ctrl_parse_time(fin_s) : now;
		if (now >= fin + j.ttl) {
			char path[1024];
			json_t *opts = json_pack("{s:{s:s}, s:s}", "preconditions", "uid",
						 j.rec->uid, "propagationPolicy", "Foreground");
			e = opts ? ctrl_path(p->job_kind, j.rec->o->ns, j.rec->o->name, NULL, path,
					     sizeof(path))
				 : -ENOMEM;
			if (!e)
				e = ctrl_write(c, "DELETE", path, opts, NULL, NULL, 0);
			json_decref(opts);
			if (!e)
				log_info("job %s: deleted %ld s after it finished", key, j.ttl);
			err = err ? err : e == -ENOENT || e == -ECONFLICT ? 0 : e;
		} else {
			ctrl_queue_after(c, key, ((int64_t)(fin + j.ttl - now)) * 1000 + 100);
		}
	}
out:
	free(active);
	json_decref(j.unc_ok);
	json_decref(j.unc_fail);
	ctrl_objs_free(&j.pods);
	json_decref(j.obj);
	ctrl_obj_unref(j.rec);
	return err;
}

const struct ctrl_def ctrl_job = {
	.name = "job",
	.workers = 2,
	.init = job_init,
	.reconcile = job_reconcile,
	.fini = job_fini,
};
