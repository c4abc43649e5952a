// SPDX-License-Identifier: Apache-2.0
/*
 * The pod sync loop: an informer on the pods bound to this node (fieldSelector
 * spec.nodeName=NODE) and the runtime's status reports both feed a table of pods keyed by
 * uid and queue the uid; workers reconcile one pod at a time:
 *
 *   gone from the API (or never in it)   -> kill it in the runtime, then forget it
 *   deletionTimestamp set               -> kill it with its grace period, then confirm the
 *                                          deletion (DELETE gracePeriodSeconds=0, uid
 *                                          precondition)
 *   a verdict of the agent (rejected, evicted) -> write it, post an Event, kill if running
 *   otherwise                            -> admit it once (resources, node affinity), then
 *                                          rt_pod_sync() (idempotent)
 *
 * and then write its status: the runtime's report and the agent's verdict merged over what
 * the API holds, sent as a merge patch of only what differs (compared as the API stores it,
 * so an unchanged status writes nothing, whatever events come back), conditional on the
 * resourceVersion last seen (a conflict re-reads the pod and checks its uid), so a status
 * never lands on another pod of the same name.
 *
 * The design choice: every decision is level-triggered from the table, never from the event
 * that queued the uid, so a restarted agent, a relist or a missed event all end in the same
 * state: pods that run and are in the API are re-adopted untouched.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_int.h"
#include "errors.h"
#include "hashmap.h"
#include "json_merge.h"
#include "log.h"

#define MAX_BACKOFF_MS 30000

static const char *str_at(const json_t *obj, const char *a, const char *b)
{
	return json_string_value(json_object_get(json_object_get(obj, a), b));
}

static int64_t obj_rv(const json_t *obj)
{
	const char *rv = str_at(obj, "metadata", "resourceVersion");
	return rv ? strtoll(rv, NULL, 10) : 0;
}

struct agent_pod *agent_pod_get(struct agent *a, const char *uid, const char *ns, const char *name,
				bool create)
{
	struct agent_pod *p = hashmap_get(a->pods, uid);
	if (p || !create)
		goto names;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->uid = strdup(uid);
	if (!p->uid || hashmap_put(a->pods, uid, p, NULL)) {
		free(p->uid);
		free(p);
		return NULL;
	}
names:
	if (p && ns && name && !p->name) {
		p->ns = strdup(ns);
		p->name = strdup(name);
		if (!p->ns || !p->name) {
			free(p->ns);
			free(p->name);
			p->ns = p->name = NULL;
		}
	}
	return p;
}

long agent_pod_grace(const json_t *pod)
{
	const json_t *g =
		json_object_get(json_object_get(pod, "metadata"), "deletionGracePeriodSeconds");
	if (!json_is_integer(g))
		g = json_object_get(json_object_get(pod, "spec"), "terminationGracePeriodSeconds");
	if (json_is_integer(g) && json_integer_value(g) >= 0)
		return (long)json_integer_value(g);
	return 30;
}

void agent_pod_fail(struct agent *a, struct agent_pod *p, const char *reason, const char *msg)
{
	json_t *v =
		json_pack("{s:s, s:s, s:s}", "phase", "Failed", "reason", reason, "message", msg);
	if (!v)
		return;
	json_decref(p->verdict);
	p->verdict = v;
	workq_add(a->queue, p->uid);
}

/* ---- inputs: the informer and the runtime ------------------------------------------------ */

static void on_pod_event(void *arg, enum informer_event type, json_t *obj, json_t *old)
{
	struct agent *a = arg;
	const char *uid = str_at(obj, "metadata", "uid");
	const char *ns = str_at(obj, "metadata", "namespace");
	const char *name = str_at(obj, "metadata", "name");
	(void)old;

	if (!uid || !*uid || !ns || !name) {
		log_warn("node %s: a pod without uid, namespace or name in the watch; ignored",
			 a->cfg->node);
		return;
	}
	log_debug("pod %s/%s: %s rv %" PRId64 "%s", ns, name,
		  type == INF_ADDED	 ? "added"
		  : type == INF_MODIFIED ? "modified"
					 : "deleted",
		  obj_rv(obj),
		  json_object_get(json_object_get(obj, "metadata"), "deletionTimestamp")
			  ? " (being deleted)"
			  : "");
	pthread_mutex_lock(&a->mu);
	struct agent_pod *p = agent_pod_get(a, uid, ns, name, true);
	if (!p) {
		pthread_mutex_unlock(&a->mu);
		log_warn("pod %s/%s: out of memory", ns, name);
		return;
	}
	if (!p->pod || obj_rv(obj) >= obj_rv(p->pod) || type == INF_DELETED) {
		json_decref(p->pod);
		p->pod = json_incref(obj);
	}
	p->deleted = type == INF_DELETED;
	pthread_mutex_unlock(&a->mu);
	workq_add(a->queue, uid);
}

/* After each complete list: what the runtime holds and the API does not is gone. */
static void on_pods_synced(void *arg)
{
	struct agent *a = arg;
	size_t it = 0, n = 0;
	const char *k;
	void *v;
	char **keys;

	pthread_mutex_lock(&a->mu);
	a->pods_synced = true;
	keys = calloc(hashmap_count(a->pods) + 1, sizeof(*keys));
	while (keys && hashmap_next(a->pods, &it, &k, &v)) {
		struct agent_pod *p = v;
		if (!p->pod)
			p->deleted = true;
		keys[n] = strdup(k);
		if (keys[n])
			n++;
	}
	pthread_mutex_unlock(&a->mu);
	if (!keys)
		log_warn("node %s: pods synced, but out of memory to queue them", a->cfg->node);
	for (size_t i = 0; i < n; i++) {
		workq_add(a->queue, keys[i]);
		free(keys[i]);
	}
	free(keys);
	log_info("node %s: pods listed (%zu known)", a->cfg->node, n);
}

void agent_pod_status_changed(void *arg, const char *uid, const char *ns, const char *name,
			      json_t *status)
{
	struct agent *a = arg;
	json_t *copy = json_deep_copy(status);

	if (!copy) {
		log_warn("pod %s/%s: status report lost: out of memory", ns, name);
		return;
	}
	pthread_mutex_lock(&a->mu);
	struct agent_pod *p = agent_pod_get(a, uid, ns, name, true);
	if (p) {
		json_decref(p->rt_status);
		p->rt_status = copy;
		copy = NULL;
	}
	pthread_mutex_unlock(&a->mu);
	json_decref(copy);
	if (p)
		workq_add(a->queue, uid);
	else
		log_warn("pod %s/%s: status report not queued: out of memory", ns, name);
}

int agent_pods_start(struct agent *a)
{
	char sel[512];
	snprintf(sel, sizeof(sel), "spec.nodeName=%s", a->cfg->node);
	struct informer_opts o = {
		.server = a->cfg->server,
		.token = a->cfg->token,
		.ca_file = a->cfg->ca_file,
		.insecure = a->cfg->insecure,
		.path = "/api/v1/pods",
		.field_selector = sel,
		.on_event = on_pod_event,
		.on_synced = on_pods_synced,
		.arg = a,
	};
	struct informer *inf = informer_start(&o);
	if (!inf) {
		log_warn("node %s: start the pod informer: %s", a->cfg->node, strerror(errno));
		return -errno;
	}
	pthread_mutex_lock(&a->mu);
	a->pods_inf = inf;
	pthread_mutex_unlock(&a->mu);
	return 0;
}

/* ---- the worker ----------------------------------------------------------------------------- */

static void on_killed(void *arg, const char *uid)
{
	struct agent *a = arg;
	pthread_mutex_lock(&a->mu);
	struct agent_pod *p = agent_pod_get(a, uid, NULL, NULL, false);
	if (p) {
		p->killing = false;
		p->in_runtime = false;
	}
	pthread_mutex_unlock(&a->mu);
	if (p)
		workq_add(a->queue, uid);
}

/* Asks the runtime to kill p (a->mu held on entry and on return; dropped around the call). */
static int kill_pod(struct agent *a, struct agent_pod *p, long grace, const char *why)
{
	char *uid = strdup(p->uid);
	int err;

	if (!uid)
		return -ENOMEM;
	p->killing = true;
	log_info("pod %s/%s: killing (%s, grace %lds)", p->ns ? p->ns : "?",
		 p->name ? p->name : uid, why, grace);
	pthread_mutex_unlock(&a->mu);
	err = a->rt_ops->pod_kill(a->rt, uid, grace, on_killed, a);
	pthread_mutex_lock(&a->mu);
	p = agent_pod_get(a, uid, NULL, NULL, false);
	if (err && p) {
		p->killing = false;
		log_warn("pod %s/%s: kill: %s", p->ns, p->name, strerror(-err));
	}
	if (!err)
		a->n.kills++;
	free(uid);
	return err;
}

/* Whether a container state deserves an Event, and which: "Warning" for failures, "Normal"
 * for a start. Writes the dedup key into key. */
static const char *state_event(const json_t *cs, char *key, size_t klen, const char **reason,
			       const char **message)
{
	const json_t *st = json_object_get(cs, "state");
	const json_t *w = json_object_get(st, "waiting");
	const json_t *t = json_object_get(st, "terminated");
	const json_t *r = json_object_get(st, "running");
	json_int_t restarts = json_integer_value(json_object_get(cs, "restartCount"));

	*reason = NULL;
	*message = NULL;
	if (w) {
		*reason = json_string_value(json_object_get(w, "reason"));
		*message = json_string_value(json_object_get(w, "message"));
		if (!*reason || !strcmp(*reason, "ContainerCreating") ||
		    !strcmp(*reason, "PodInitializing"))
			return NULL;
		snprintf(key, klen, "w:%s", *reason);
		return "Warning";
	}
	if (t) {
		*reason = json_string_value(json_object_get(t, "reason"));
		*message = json_string_value(json_object_get(t, "message"));
		if (!*reason || !strcmp(*reason, "Completed"))
			return NULL;
		snprintf(key, klen, "t:%s:%" JSON_INTEGER_FORMAT, *reason, restarts);
		return "Warning";
	}
	if (r) {
		*reason = "Started";
		snprintf(key, klen, "r:%" JSON_INTEGER_FORMAT, restarts);
		return "Normal";
	}
	return NULL;
}

struct pending_event {
	char type[16], reason[128], message[1024];
};

/* The termination a probe caused, if the container's last one was (its "liveness probe
 * failed: ..." message from the runtime): which probe ("Liveness", "Startup") and the rest
 * of the message in *why, its finishedAt in *when. NULL otherwise. */
static const char *probe_kill(const json_t *cs, const char **why, const char **when)
{
	static const struct {
		const char *prefix, *name;
	} probes[] = { { "liveness probe failed: ", "Liveness" },
		       { "startup probe failed: ", "Startup" } };
	const json_t *t = json_object_get(json_object_get(cs, "state"), "terminated");
	if (!t)
		t = json_object_get(json_object_get(cs, "lastState"), "terminated");
	const char *m = json_string_value(json_object_get(t, "message"));
	*when = json_string_value(json_object_get(t, "finishedAt"));
	for (size_t i = 0; m && *when && i < sizeof(probes) / sizeof(probes[0]); i++) {
		size_t len = strlen(probes[i].prefix);
		if (strncmp(m, probes[i].prefix, len) == 0) {
			*why = m + len;
			return probes[i].name;
		}
	}
	return NULL;
}

/* Kubernetes' Unhealthy and Killing Events for a container a failed probe restarted, once
 * per termination (its finishedAt, remembered under "k:NAME"); at most n. */
static size_t probe_kill_events(struct agent_pod *p, const char *name, const json_t *cs,
				struct pending_event *ev, size_t n)
{
	const char *why, *when;
	const char *probe = probe_kill(cs, &why, &when);
	char key[300];

	if (!probe || n < 2)
		return 0;
	snprintf(key, sizeof(key), "k:%s", name);
	const char *last = json_string_value(json_object_get(p->reasons, key));
	if (last && !strcmp(last, when))
		return 0;
	json_object_set_new(p->reasons, key, json_string(when));
	snprintf(ev[0].type, sizeof(ev[0].type), "Warning");
	snprintf(ev[0].reason, sizeof(ev[0].reason), "Unhealthy");
	snprintf(ev[0].message, sizeof(ev[0].message), "%s probe failed: %s", probe, why);
	snprintf(ev[1].type, sizeof(ev[1].type), "Normal");
	snprintf(ev[1].reason, sizeof(ev[1].reason), "Killing");
	snprintf(ev[1].message, sizeof(ev[1].message),
		 "Container %s failed %s probe, will be restarted", name,
		 probe[0] == 'L' ? "liveness" : "startup");
	return 2;
}

/* Collects the Events a pod's new state calls for (a->mu held); at most n. */
static size_t collect_events(struct agent_pod *p, struct pending_event *ev, size_t n)
{
	size_t k = 0, i;
	json_t *cs;
	char key[192];

	if (!p->reasons) {
		/* First sight: what the API already shows was reported before (by this agent
		 * before a restart): only changes from here on make Events. */
		if (!(p->reasons = json_object()))
			return 0;
		const json_t *st = json_object_get(p->pod, "status");
		const char *r, *m;
		json_array_foreach (json_object_get(st, "containerStatuses"), i, cs) {
			const char *name = json_string_value(json_object_get(cs, "name"));
			if (name && state_event(cs, key, sizeof(key), &r, &m))
				json_object_set_new(p->reasons, name, json_string(key));
			const char *why, *when;
			if (name && probe_kill(cs, &why, &when)) {
				snprintf(key, sizeof(key), "k:%s", name);
				json_object_set_new(p->reasons, key, json_string(when));
			}
		}
		const char *pr = json_string_value(json_object_get(st, "reason"));
		if (pr) {
			json_object_set_new(p->reasons, "", json_string(pr));
			snprintf(key, sizeof(key), "p:%s", pr);
			json_object_set_new(p->reasons, "-", json_string(key));
		}
	}
	const char *vr = json_string_value(json_object_get(p->verdict, "reason"));
	const char *vlast = json_string_value(json_object_get(p->reasons, ""));
	if (vr && (!vlast || strcmp(vlast, vr))) {
		snprintf(ev[k].type, sizeof(ev[k].type), "Warning");
		snprintf(ev[k].reason, sizeof(ev[k].reason), "%s", vr);
		snprintf(ev[k].message, sizeof(ev[k].message), "%s",
			 json_string_value(json_object_get(p->verdict, "message")));
		json_object_set_new(p->reasons, "", json_string(vr));
		k++;
	}
	json_array_foreach (json_object_get(p->rt_status, "containerStatuses"), i, cs) {
		const char *name = json_string_value(json_object_get(cs, "name"));
		const char *reason, *message;
		if (!name || k >= n)
			break;
		k += probe_kill_events(p, name, cs, ev + k, n - k);
		if (k >= n)
			break;
		const char *type = state_event(cs, key, sizeof(key), &reason, &message);
		const char *last = json_string_value(json_object_get(p->reasons, name));
		if (!type || (last && !strcmp(last, key)))
			continue;
		json_object_set_new(p->reasons, name, json_string(key));
		snprintf(ev[k].type, sizeof(ev[k].type), "%s", type);
		snprintf(ev[k].reason, sizeof(ev[k].reason), "%s", reason);
		if (!strcmp(reason, "Started"))
			snprintf(ev[k].message, sizeof(ev[k].message), "Started container %s",
				 name);
		else
			snprintf(ev[k].message, sizeof(ev[k].message), "container %s: %s", name,
				 message ? message : reason);
		k++;
	}
	/* A pod-level failure reported by the runtime (a bad spec, an impossible command). */
	const char *pr = json_string_value(json_object_get(p->rt_status, "reason"));
	const char *phase = json_string_value(json_object_get(p->rt_status, "phase"));
	if (k < n && pr && phase && !strcmp(phase, "Failed")) {
		snprintf(key, sizeof(key), "p:%s", pr);
		const char *last = json_string_value(json_object_get(p->reasons, "-"));
		if (!last || strcmp(last, key)) {
			json_object_set_new(p->reasons, "-", json_string(key));
			const char *m = json_string_value(json_object_get(p->rt_status, "message"));
			snprintf(ev[k].type, sizeof(ev[k].type), "Warning");
			snprintf(ev[k].reason, sizeof(ev[k].reason), "%s", pr);
			snprintf(ev[k].message, sizeof(ev[k].message), "%s", m ? m : pr);
			k++;
		}
	}
	return k;
}

/* The status to write: the API's, with the runtime's report, the agent's verdict and a
 * usage sample over it; returns the merge patch from the API's status (NULL: nothing to
 * write). a->mu held. */
static json_t *status_patch(struct agent_pod *p)
{
	json_t *cur = json_object_get(p->pod, "status");
	json_t *want = cur ? json_deep_copy(cur) : json_object();
	json_t *tmp, *diff = NULL;

	if (!want)
		return NULL;
	if (p->rt_status) {
		tmp = json_merge_patch(want, p->rt_status);
		json_decref(want);
		want = tmp;
	}
	if (want && p->verdict) {
		tmp = json_merge_patch(want, p->verdict);
		json_decref(want);
		want = tmp;
		/* A verdict pod is not ready, whatever the runtime said last. */
		json_t *conds = json_object_get(want, "conditions");
		size_t i;
		json_t *c;
		json_array_foreach (conds, i, c) {
			const char *t = json_string_value(json_object_get(c, "type"));
			if (t && (!strcmp(t, "Ready") || !strcmp(t, "ContainersReady")))
				json_object_set_new(c, "status", json_string("False"));
		}
	}
	/* Compared in the form the API stores (it drops null members, also inside the arrays a
	 * merge patch replaces whole): a null it never keeps is no change, and must not make a
	 * write whose echo asks for the same write again. (want is a copy of its own here; the
	 * usage sample, shared, holds no null.) */
	json_merge_drop_nulls(want);
	if (want && p->usage)
		json_object_set(want, "usage", p->usage);
	if (want)
		diff = json_merge_diff(cur, want);
	json_decref(want);
	if (diff && json_object_size(diff) == 0) {
		json_decref(diff);
		return NULL;
	}
	return diff;
}

/* Writes p's status. 0 when written or nothing to write; -EAGAIN to retry later. a->mu held
 * on entry and return. */
static int write_status(struct agent *a, struct httpc *c, struct agent_pod **pp, const char *uid)
{
	struct agent_pod *p = *pp;
	char path[1024], msg[512];
	int ret = 0;

	for (int attempt = 0; attempt < 4; attempt++) {
		if (!p || !p->pod || p->deleted || !p->ns || !p->name)
			return 0;
		json_t *st = status_patch(p);
		if (!st) {
			json_decref(p->usage);
			p->usage = NULL;
			return 0;
		}
		json_t *usage = json_incref(p->usage);
		char rv[32];
		snprintf(rv, sizeof(rv), "%" PRId64, obj_rv(p->pod));
		json_t *body = json_pack("{s:{s:s}, s:o}", "metadata", "resourceVersion", rv,
					 "status", st);
		/* (the entry lives while its uid is being processed, but the names are copied
		 * before the lock is dropped all the same) */
		char getpath[1024];
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/status", p->ns,
			 p->name);
		snprintf(getpath, sizeof(getpath), "/api/v1/namespaces/%s/pods/%s", p->ns, p->name);
		char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
		json_decref(body);
		if (!text) {
			json_decref(usage);
			return -EAGAIN;
		}
		pthread_mutex_unlock(&a->mu);
		struct httpc_resp r;
		int err = httpc_request(c, "PATCH", path, text, strlen(text),
					"application/merge-patch+json", &r);
		free(text);
		json_t *got = err ? NULL : agent_resp_json(&r);
		long code = err ? 0 : r.code;
		if (!err && code != 200 && code != 409 && code != 404)
			agent_resp_msg(&r, msg, sizeof(msg));
		if (!err)
			httpc_resp_free(&r);
		/* On a conflict: read the pod again, and go on only if it is still ours. */
		json_t *fresh = NULL;
		if (code == 409) {
			a->n.status_conflicts++;
			if (httpc_request(c, "GET", getpath, NULL, 0, NULL, &r) == 0) {
				if (r.code == 200)
					fresh = agent_resp_json(&r);
				else if (r.code == 404)
					code = 404;
				httpc_resp_free(&r);
			}
		}
		pthread_mutex_lock(&a->mu);
		p = *pp = agent_pod_get(a, uid, NULL, NULL, false);
		if (code == 200 && p) {
			a->n.status_writes++;
			if (usage) {
				a->n.usage_writes++;
				json_decref(p->usage_sent);
				p->usage_sent = json_incref(usage);
				p->usage_sent_at = agent_mono_s();
				if (p->usage == usage) {
					json_decref(p->usage);
					p->usage = NULL;
				}
			}
			if (got && obj_rv(got) >= obj_rv(p->pod) &&
			    !strcmp(str_at(got, "metadata", "uid") ?: "", uid)) {
				json_decref(p->pod);
				p->pod = json_incref(got);
			}
		}
		json_decref(usage);
		json_decref(got);
		if (code == 200)
			return 0;
		if (code == 404) {
			json_decref(fresh);
			return 0; /* gone: the informer will say so */
		}
		if (code == 409) {
			if (fresh && p && !strcmp(str_at(fresh, "metadata", "uid") ?: "", uid)) {
				json_decref(p->pod);
				p->pod = fresh;
				continue;
			}
			json_decref(fresh);
			ret = fresh ? 0 : -EAGAIN; /* another pod now has the name */
			return ret;
		}
		a->n.status_errors++;
		if (err)
			log_warn("pod %s: status write: %s", uid, httpc_error(c));
		else
			log_warn("pod %s: status write: %s", uid, msg);
		/* An invalid status (422) will not get better by retrying the same. */
		return code == 422 || code == 400 ? 0 : -EAGAIN;
	}
	return -EAGAIN;
}

/* Confirms a finished deletion: DELETE with grace 0 and the uid as precondition. */
static int confirm_deletion(struct agent *a, struct httpc *c, const char *ns, const char *name,
			    const char *uid)
{
	char path[1024], body[256], msg[512];
	struct httpc_resp r;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s?gracePeriodSeconds=0", ns,
		 name);
	snprintf(body, sizeof(body),
		 "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"gracePeriodSeconds\":0,"
		 "\"preconditions\":{\"uid\":\"%s\"}}",
		 uid);
	int err = httpc_request(c, "DELETE", path, body, strlen(body), NULL, &r);
	if (err) {
		log_warn("pod %s/%s: confirm deletion: %s", ns, name, httpc_error(c));
		return -EAGAIN;
	}
	long code = r.code;
	if (code != 200 && code != 202 && code != 404 && code != 409)
		log_warn("pod %s/%s: confirm deletion: %s", ns, name,
			 agent_resp_msg(&r, msg, sizeof(msg)));
	httpc_resp_free(&r);
	if (code == 200 || code == 202 || code == 404 || code == 409) {
		a->n.deletions_confirmed++;
		log_info("pod %s/%s: deleted", ns, name);
		return 0;
	}
	return -EAGAIN;
}

static bool phase_done(const json_t *pod)
{
	const char *ph = str_at(pod, "status", "phase");
	return ph && (!strcmp(ph, "Succeeded") || !strcmp(ph, "Failed"));
}

/* Reconciles one pod. Returns 0, or -EAGAIN to be retried with back-off. */
static int reconcile(struct agent *a, struct httpc *c, const char *uid)
{
	struct pending_event ev[8];
	size_t nev;
	int ret = 0;
	char ns[256] = "", name[256] = "";

	pthread_mutex_lock(&a->mu);
	struct agent_pod *p = agent_pod_get(a, uid, NULL, NULL, false);
	if (!p) {
		pthread_mutex_unlock(&a->mu);
		return 0;
	}
	if (!a->pods_synced && !p->pod) {
		/* Runtime-only before the first list: wait for it. */
		pthread_mutex_unlock(&a->mu);
		return 0;
	}
	snprintf(ns, sizeof(ns), "%s", p->ns ? p->ns : "");
	snprintf(name, sizeof(name), "%s", p->name ? p->name : "");

	/* 1. Gone from the API: kill, then forget. */
	if (p->deleted || !p->pod) {
		if (p->killing) {
			/* on_killed queues it again */
		} else if (p->in_runtime) {
			if (kill_pod(a, p, p->pod ? agent_pod_grace(p->pod) : 30,
				     "gone from the API"))
				ret = -EAGAIN;
		} else {
			agent_pod_remove(a, uid);
		}
		pthread_mutex_unlock(&a->mu);
		return ret;
	}

	nev = collect_events(p, ev, 8);
	bool terminating =
		json_object_get(json_object_get(p->pod, "metadata"), "deletionTimestamp") != NULL;

	/* 2. Being deleted: kill with its grace, then confirm. */
	if (terminating) {
		if (p->in_runtime && !p->killing &&
		    kill_pod(a, p, agent_pod_grace(p->pod), "deleted"))
			ret = -EAGAIN;
		p = agent_pod_get(a, uid, NULL, NULL, false);
	} else if (p->verdict) {
		/* 3. The agent's verdict (rejected, evicted): stop it if it runs. */
		if (p->in_runtime && !p->killing) {
			long g = agent_pod_grace(p->pod);
			if (g > a->cfg->eviction_grace_s)
				g = a->cfg->eviction_grace_s;
			if (kill_pod(a, p, g,
				     json_string_value(json_object_get(p->verdict, "reason"))))
				ret = -EAGAIN;
			p = agent_pod_get(a, uid, NULL, NULL, false);
		}
	} else if (!p->in_runtime && !p->killing && !(phase_done(p->pod) && !p->admitted)) {
		/* 4. Admission, once. A pod that finished before (and is not in the runtime) is
		 * never started again. */
		if (!p->admitted) {
			char reason[64], msg[512];
			if (agent_admit(a, p->pod, reason, sizeof(reason), msg, sizeof(msg))) {
				a->n.rejections++;
				log_info("pod %s/%s: rejected: %s: %s", ns, name, reason, msg);
				agent_pod_fail(a, p, reason, msg);
				nev += collect_events(p, ev + nev, 8 - nev);
			} else {
				p->admitted = true;
			}
		}
	}
	if (p && !terminating && !p->verdict && p->admitted && !p->killing) {
		json_t *pod = json_incref(p->pod);
		pthread_mutex_unlock(&a->mu);
		int err = a->rt_ops->pod_sync(a->rt, pod);
		json_decref(pod);
		pthread_mutex_lock(&a->mu);
		p = agent_pod_get(a, uid, NULL, NULL, false);
		if (err) {
			a->n.sync_errors++;
			log_warn("pod %s/%s: the node could not run it: %s", ns, name,
				 strerror(-err));
			if (p && p->failures == 0 && nev < 8) {
				snprintf(ev[nev].type, sizeof(ev[nev].type), "Warning");
				snprintf(ev[nev].reason, sizeof(ev[nev].reason), "FailedSync");
				snprintf(ev[nev].message, sizeof(ev[nev].message),
					 "the node could not run the pod: %s", strerror(-err));
				nev++;
			}
			ret = -EAGAIN;
		} else {
			a->n.syncs++;
			if (p)
				p->in_runtime = true;
		}
	}

	/* Status, then (for a deleted pod that no longer runs) the deletion. */
	if (p && write_status(a, c, &p, uid))
		ret = -EAGAIN;
	bool confirm = false;
	if (p && terminating && !p->in_runtime && !p->killing && !p->confirmed)
		confirm = true;
	pthread_mutex_unlock(&a->mu);

	for (size_t i = 0; i < nev; i++)
		agent_event(a, c, ns, name, uid, ev[i].type, ev[i].reason, ev[i].message);
	if (confirm) {
		if (confirm_deletion(a, c, ns, name, uid) == 0) {
			pthread_mutex_lock(&a->mu);
			p = agent_pod_get(a, uid, NULL, NULL, false);
			if (p)
				p->confirmed = true;
			pthread_mutex_unlock(&a->mu);
		} else {
			ret = -EAGAIN;
		}
	}
	return ret;
}

void *agent_worker(void *arg)
{
	struct agent *a = arg;
	struct httpc *c = agent_api_client(a);
	char *uid;

	if (!c) {
		log_error("node %s: a worker has no HTTP client: %s", a->cfg->node,
			  strerror(errno));
		return NULL;
	}
	while ((uid = workq_get(a->queue))) {
		int ret = reconcile(a, c, uid);
		pthread_mutex_lock(&a->mu);
		struct agent_pod *p = agent_pod_get(a, uid, NULL, NULL, false);
		long delay = 0;
		if (p) {
			p->failures = ret ? p->failures + 1 : 0;
			if (ret) {
				delay = 500L << (p->failures < 6 ? p->failures : 6);
				if (delay > MAX_BACKOFF_MS)
					delay = MAX_BACKOFF_MS;
			}
		}
		pthread_mutex_unlock(&a->mu);
		workq_done(a->queue, uid);
		if (delay)
			workq_add_after(a->queue, uid, delay);
		free(uid);
	}
	httpc_free(c);
	return NULL;
}
