// SPDX-License-Identifier: Apache-2.0
/*
 * `shoalctl rollout status|history|undo|pause|resume deployment/NAME`, as kubectl's:
 *
 * - status follows the Deployment (a get, then a watch of that one object) and prints what
 *   the rollout waits for until it is complete (exit 0), its progress deadline is exceeded
 *   (exit 1) or --timeout passes (exit 1).
 * - history lists the revisions of the Deployment's ReplicaSets (with their
 *   kubernetes.io/change-cause); --revision N prints that revision's pod template.
 * - undo is done here, on the client, as kubectl does it: the pod template of the ReplicaSet
 *   of the previous revision (or --to-revision N) is written back into the Deployment,
 *   without the pod-template-hash label, conditional on the Deployment's resourceVersion;
 *   the controller then rolls it out as a new revision.
 * - pause and resume set spec.paused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

#define ANN_REVISION "deployment.kubernetes.io/revision"
#define HASH_LABEL   "pod-template-hash"

static const char *str_at(const json_t *o, const char *a, const char *b)
{
	o = json_object_get(o, a);
	return json_string_value(b ? json_object_get(o, b) : o);
}

static long long int_at(const json_t *o, const char *a, const char *b)
{
	o = json_object_get(o, a);
	return json_integer_value(b ? json_object_get(o, b) : o);
}

static long revision_of(const json_t *o)
{
	const char *s = json_string_value(json_object_get(
		json_object_get(json_object_get(o, "metadata"), "annotations"), ANN_REVISION));
	return s ? strtol(s, NULL, 10) : 0;
}

/* GETs the Deployment; prints the error and returns NULL when it cannot. */
static json_t *get_deployment(struct ctl *c, const struct api_kind *k, const char *name)
{
	char path[1024];
	json_t *d = NULL;
	long code;

	if (ctl_path(k, c->o->ns, name, NULL, path, sizeof(path)))
		return NULL;
	if (ctl_call(c, "GET", path, NULL, NULL, &code, &d))
		return NULL;
	if (code != 200) {
		ctl_print_server_error(code, d);
		json_decref(d);
		return NULL;
	}
	return d;
}

static int by_revision(const void *a, const void *b)
{
	long x = revision_of(*(json_t *const *)a), y = revision_of(*(json_t *const *)b);
	return x < y ? -1 : x > y;
}

/* The ReplicaSets the Deployment controls, by revision (an array, a new reference). */
static json_t *owned_replicasets(struct ctl *c, const json_t *d)
{
	const struct api_kind *rk = api_kind_by_kind("apps/v1", "ReplicaSet");
	const char *uid = str_at(d, "metadata", "uid");
	char path[2048], sel[1024] = "";
	json_t *list = NULL, *out;
	size_t n = 0, i;
	const char *key;
	json_t *v;
	long code;

	json_object_foreach (
		json_object_get(json_object_get(json_object_get(d, "spec"), "selector"),
				"matchLabels"),
		key, v) {
		n += snprintf(sel + n, n < sizeof(sel) ? sizeof(sel) - n : 0, "%s%s=%s",
			      n ? "," : "", key, json_string_value(v));
	}
	if (!rk || n >= sizeof(sel) || ctl_path(rk, c->o->ns, NULL, NULL, path, sizeof(path)) ||
	    ctl_query(path, sizeof(path), "labelSelector", n ? sel : NULL))
		return NULL;
	if (ctl_call(c, "GET", path, NULL, NULL, &code, &list))
		return NULL;
	if (code != 200) {
		ctl_print_server_error(code, list);
		json_decref(list);
		return NULL;
	}
	size_t cnt = json_array_size(json_object_get(list, "items"));
	json_t **arr = calloc(cnt + 1, sizeof(*arr));
	size_t m = 0;
	out = json_array();
	if (!arr || !out) {
		free(arr);
		json_decref(out);
		json_decref(list);
		return NULL;
	}
	json_array_foreach (json_object_get(list, "items"), i, v) {
		size_t j;
		json_t *ref;
		json_array_foreach (
			json_object_get(json_object_get(v, "metadata"), "ownerReferences"), j,
			ref) {
			if (json_is_true(json_object_get(ref, "controller")) &&
			    strcmp(json_string_value(json_object_get(ref, "uid")) ?: "",
				   uid ?: "") == 0)
				arr[m++] = v;
		}
	}
	qsort(arr, m, sizeof(*arr), by_revision);
	for (i = 0; i < m; i++)
		json_array_append(out, arr[i]);
	free(arr);
	json_decref(list);
	return out;
}

/* ---- status ------------------------------------------------------------------------------ */

/* kubectl's view of a rollout: 1 done, 0 waiting (msg says for what), -1 failed. */
static int rollout_state(const json_t *d, char *msg, size_t len)
{
	const char *name = str_at(d, "metadata", "name");
	const json_t *st = json_object_get(d, "status");
	long long replicas =
		json_is_integer(json_object_get(json_object_get(d, "spec"), "replicas"))
			? int_at(d, "spec", "replicas")
			: 1;
	long long updated = int_at(d, "status", "updatedReplicas");
	long long total = int_at(d, "status", "replicas");
	long long avail = int_at(d, "status", "availableReplicas");
	size_t i;
	json_t *c;

	if (int_at(d, "metadata", "generation") > int_at(d, "status", "observedGeneration")) {
		snprintf(msg, len, "Waiting for deployment spec update to be observed...\n");
		return 0;
	}
	json_array_foreach (json_object_get(st, "conditions"), i, c) {
		const char *type = json_string_value(json_object_get(c, "type"));
		const char *reason = json_string_value(json_object_get(c, "reason"));
		if (type && reason && strcmp(type, "Progressing") == 0 &&
		    strcmp(reason, "ProgressDeadlineExceeded") == 0) {
			snprintf(msg, len, "deployment \"%s\" exceeded its progress deadline",
				 name);
			return -1;
		}
	}
	if (updated < replicas)
		snprintf(msg, len,
			 "Waiting for deployment \"%s\" rollout to finish: %lld out of %lld new "
			 "replicas have been updated...\n",
			 name, updated, replicas);
	else if (total > updated)
		snprintf(msg, len,
			 "Waiting for deployment \"%s\" rollout to finish: %lld old replicas are "
			 "pending termination...\n",
			 name, total - updated);
	else if (avail < updated)
		snprintf(msg, len,
			 "Waiting for deployment \"%s\" rollout to finish: %lld of %lld updated "
			 "replicas are available...\n",
			 name, avail, updated);
	else {
		snprintf(msg, len, "deployment \"%s\" successfully rolled out\n", name);
		return 1;
	}
	return 0;
}

struct status_watch {
	struct ctl *c;
	char last[512];
	char rv[32];
	int state;
	char msg[512];
};

static int show(struct status_watch *w, const json_t *d)
{
	w->state = rollout_state(d, w->msg, sizeof(w->msg));
	if (w->state == 0 && strcmp(w->msg, w->last) != 0) {
		fputs(w->msg, w->c->out);
		fflush(w->c->out);
		snprintf(w->last, sizeof(w->last), "%s", w->msg);
	}
	const char *rv = str_at(d, "metadata", "resourceVersion");
	if (rv)
		snprintf(w->rv, sizeof(w->rv), "%s", rv);
	return w->state != 0;
}

static int on_event(const char *line, size_t len, void *arg)
{
	struct status_watch *w = arg;
	json_t *ev = json_loadb(line, len, 0, NULL);
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *obj = json_object_get(ev, "object");
	int stop = 0;

	if (!type) {
		json_decref(ev);
		return 0;
	}
	if (strcmp(type, "BOOKMARK") == 0) {
		const char *rv = str_at(obj, "metadata", "resourceVersion");
		if (rv)
			snprintf(w->rv, sizeof(w->rv), "%s", rv);
	} else if (strcmp(type, "DELETED") == 0) {
		snprintf(w->msg, sizeof(w->msg), "deployment \"%s\" was deleted",
			 str_at(obj, "metadata", "name"));
		w->state = -1;
		stop = 1;
	} else if (strcmp(type, "ERROR") == 0) {
		w->rv[0] = '\0'; /* too old: start again from a get */
		stop = 1;
	} else {
		stop = show(w, obj);
	}
	json_decref(ev);
	return stop;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int rollout_status(struct ctl *c, const struct api_kind *k, const char *name)
{
	struct status_watch w = { .c = c };
	long long until = c->o->wait_s > 0 ? now_ms() + c->o->wait_s * 1000 : 0;
	char path[2048];

	for (;;) {
		if (!w.rv[0]) {
			json_t *d = get_deployment(c, k, name);
			if (!d)
				return 1;
			show(&w, d);
			json_decref(d);
		}
		if (w.state)
			break;
		long long left = until ? until - now_ms() : 0;
		if (until && left <= 0) {
			fprintf(stderr, "error: timed out waiting for the condition\n");
			return 1;
		}
		char fs[600];
		snprintf(fs, sizeof(fs), "metadata.name=%s", name);
		if (ctl_path(k, c->o->ns, NULL, NULL, path, sizeof(path)) ||
		    ctl_query(path, sizeof(path), "watch", "1") ||
		    ctl_query(path, sizeof(path), "fieldSelector", fs) ||
		    ctl_query(path, sizeof(path), "resourceVersion", w.rv) ||
		    ctl_query(path, sizeof(path), "allowWatchBookmarks", "true"))
			return 1;
		struct httpc_resp resp = { 0 };
		int rc = httpc_stream(c->http, path, until ? left : 0, on_event, &w, &resp);
		if (rc == 0 && resp.code && (resp.code < 200 || resp.code >= 300)) {
			json_t *body = resp.body ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
			if (resp.code == 410) {
				w.rv[0] = '\0';
			} else {
				ctl_print_server_error(resp.code, body);
				json_decref(body);
				httpc_resp_free(&resp);
				return 1;
			}
			json_decref(body);
		}
		httpc_resp_free(&resp);
		if (rc && rc != -ECANCELED && rc != -ETIMEDOUT) {
			fprintf(stderr, "error: watch %s: %s\n", name, httpc_error(c->http));
			return 1;
		}
	}
	if (w.state < 0) {
		fprintf(stderr, "error: %s\n", w.msg);
		return 1;
	}
	fputs(w.msg, c->out);
	return 0;
}

/* ---- history, undo ------------------------------------------------------------------------ */

static int rollout_history(struct ctl *c, const struct api_kind *k, const char *name)
{
	char ref[512];
	json_t *d = get_deployment(c, k, name), *rss;
	size_t i;
	json_t *rs;
	int rc = 0;

	if (!d)
		return 1;
	rss = owned_replicasets(c, d);
	if (!rss) {
		json_decref(d);
		return 1;
	}
	if (c->o->revision > 0) {
		json_t *found = NULL;
		json_array_foreach (rss, i, rs)
			if (revision_of(rs) == c->o->revision)
				found = rs;
		if (!found) {
			fprintf(stderr, "error: unable to find the specified revision %ld\n",
				c->o->revision);
			rc = 1;
		} else {
			fprintf(c->out, "%s with revision #%ld\nPod Template:\n",
				ctl_ref(k, name, ref, sizeof(ref)), c->o->revision);
			json_t *t = json_deep_copy(
				json_object_get(json_object_get(found, "spec"), "template"));
			rc = t ? ctl_print_doc(c->out, t, CTL_OUT_YAML) != 0 : 1;
			json_decref(t);
		}
	} else {
		struct ctl_table t = { 0 };
		const char *head[] = { "REVISION", "CHANGE-CAUSE" };
		fprintf(c->out, "%s\n", ctl_ref(k, name, ref, sizeof(ref)));
		t.ncols = 2;
		ctl_table_row(&t, head);
		json_array_foreach (rss, i, rs) {
			char rev[32];
			const char *cause = json_string_value(json_object_get(
				json_object_get(json_object_get(rs, "metadata"), "annotations"),
				"kubernetes.io/change-cause"));
			if (!revision_of(rs))
				continue;
			snprintf(rev, sizeof(rev), "%ld", revision_of(rs));
			const char *row[] = { rev, cause ? cause : "<none>" };
			ctl_table_row(&t, row);
		}
		ctl_table_print(c->out, &t, 0);
		ctl_table_free(&t);
	}
	json_decref(rss);
	json_decref(d);
	return rc;
}

static int rollout_undo(struct ctl *c, const struct api_kind *k, const char *name)
{
	char path[1024], ref[512];
	json_t *d = get_deployment(c, k, name), *rss = NULL, *target = NULL, *resp = NULL;
	long code, cur;
	size_t i;
	json_t *rs;
	int rc = 1;

	if (!d)
		return 1;
	if (json_is_true(json_object_get(json_object_get(d, "spec"), "paused"))) {
		fprintf(stderr,
			"error: you cannot rollback a paused deployment; resume it first with "
			"'shoalctl rollout resume %s' and try again\n",
			ctl_ref(k, name, ref, sizeof(ref)));
		goto out;
	}
	rss = owned_replicasets(c, d);
	if (!rss)
		goto out;
	cur = revision_of(d);
	if (!cur)
		json_array_foreach (rss, i, rs)
			if (revision_of(rs) > cur)
				cur = revision_of(rs);
	if (c->o->revision > 0) {
		json_array_foreach (rss, i, rs)
			if (revision_of(rs) == c->o->revision)
				target = rs;
		if (!target) {
			fprintf(stderr, "error: unable to find specified revision %ld in history\n",
				c->o->revision);
			goto out;
		}
	} else {
		/* the newest revision before the current one */
		json_array_foreach (rss, i, rs)
			if (revision_of(rs) < cur &&
			    (!target || revision_of(rs) > revision_of(target)))
				target = rs;
		if (!target) {
			fprintf(stderr, "error: no rollout history found for deployment \"%s\"\n",
				name);
			goto out;
		}
	}
	json_t *tmpl = json_deep_copy(json_object_get(json_object_get(target, "spec"), "template"));
	if (!tmpl)
		goto out;
	json_object_del(json_object_get(json_object_get(tmpl, "metadata"), "labels"), HASH_LABEL);
	if (ctl_json_same(tmpl, json_object_get(json_object_get(d, "spec"), "template"))) {
		fprintf(c->out,
			"%s skipped rollback (current template already matches revision %ld)\n",
			ctl_ref(k, name, ref, sizeof(ref)), revision_of(target));
		json_decref(tmpl);
		rc = 0;
		goto out;
	}
	json_object_set_new(json_object_get(d, "spec"), "template", tmpl);
	if (ctl_path(k, c->o->ns, name, NULL, path, sizeof(path)))
		goto out;
	/* conditional on the resourceVersion read: a concurrent edit is not overwritten */
	if (ctl_call(c, "PUT", path, d, NULL, &code, &resp))
		goto out;
	if (code != 200) {
		ctl_print_server_error(code, resp);
		goto out;
	}
	fprintf(c->out, "%s rolled back\n", ctl_ref(k, name, ref, sizeof(ref)));
	rc = 0;
out:
	json_decref(resp);
	json_decref(rss);
	json_decref(d);
	return rc;
}

static int rollout_pause(struct ctl *c, const struct api_kind *k, const char *name, bool pause)
{
	char path[1024], ref[512];
	json_t *d = get_deployment(c, k, name), *patch, *resp = NULL;
	long code;
	int rc = 1;

	if (!d)
		return 1;
	if (json_is_true(json_object_get(json_object_get(d, "spec"), "paused")) == pause) {
		fprintf(c->out, "%s already %s\n", ctl_ref(k, name, ref, sizeof(ref)),
			pause ? "paused" : "resumed");
		json_decref(d);
		return 0;
	}
	patch = json_pack("{s:{s:b}}", "spec", "paused", pause);
	if (patch && !ctl_path(k, c->o->ns, name, NULL, path, sizeof(path)) &&
	    !ctl_call(c, "PATCH", path, patch, "application/merge-patch+json", &code, &resp)) {
		if (code == 200) {
			fprintf(c->out, "%s %s\n", ctl_ref(k, name, ref, sizeof(ref)),
				pause ? "paused" : "resumed");
			rc = 0;
		} else {
			ctl_print_server_error(code, resp);
		}
	}
	json_decref(resp);
	json_decref(patch);
	json_decref(d);
	return rc;
}

int ctl_rollout(struct ctl *c)
{
	static const char *const subs[] = { "status", "history", "undo", "pause", "resume", NULL };
	struct ctl_opts *o = c->o;
	const struct api_kind *k;
	char **names;
	int n, rc;

	if (o->nargs < 1) {
		fprintf(stderr,
			"error: rollout needs a subcommand: status, history, undo, pause or "
			"resume\n");
		return 2;
	}
	const char *sub = o->args[0];
	bool known = false;
	for (const char *const *s = subs; *s; s++)
		known |= strcmp(*s, sub) == 0;
	if (!known) {
		fprintf(stderr,
			"error: unknown rollout subcommand \"%s\" (status, history, undo, "
			"pause, resume)\n",
			sub);
		return 2;
	}
	if ((o->given & CTL_OPT_WAIT) && strcmp(sub, "status") != 0) {
		fprintf(stderr, "error: rollout %s does not take --timeout\n", sub);
		return 2;
	}
	if ((o->given & CTL_OPT_REVISION) && strcmp(sub, "undo") != 0 &&
	    strcmp(sub, "history") != 0) {
		fprintf(stderr, "error: rollout %s does not take --to-revision\n", sub);
		return 2;
	}
	/* the kind and names follow the subcommand */
	o->args++;
	o->nargs--;
	rc = ctl_kind_and_names(c, &k, &names, &n, true);
	if (rc)
		return rc;
	if (strcmp(k->kind, "Deployment") != 0) {
		fprintf(stderr, "error: rollout works on deployments, not %s\n", k->resource);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		int r;
		if (strcmp(sub, "status") == 0)
			r = rollout_status(c, k, names[i]);
		else if (strcmp(sub, "history") == 0)
			r = rollout_history(c, k, names[i]);
		else if (strcmp(sub, "undo") == 0)
			r = rollout_undo(c, k, names[i]);
		else
			r = rollout_pause(c, k, names[i], strcmp(sub, "pause") == 0);
		if (r)
			rc = r;
	}
	return rc;
}
