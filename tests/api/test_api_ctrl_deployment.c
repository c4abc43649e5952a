// SPDX-License-Identifier: Apache-2.0
/*
 * The Deployment controller in a real shoald, with the test playing every node agent (pods
 * are bound, get an address and become Ready; pods being deleted are confirmed gone):
 * ReplicaSets named by template hash with revisions, rolling updates that keep within
 * maxSurge and maxUnavailable at every step seen on the watch streams, Recreate, pause and
 * resume, rollback with shoalctl, revision history limit, the progress deadline, status and
 * conditions, proportional scaling, and bad specs rejected naming the field.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "ctrl_helpers.h"

static const char *deploy(const char *name, int replicas, const char *image, const char *strategy,
			  const char *extra)
{
	return fmt(
		"{\"metadata\":{\"name\":\"%s\"},\"spec\":{\"replicas\":%d,%s%s\"selector\":{"
		"\"matchLabels\":{\"app\":\"%s\"}},\"template\":{\"metadata\":{\"labels\":{"
		"\"app\":\"%s\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"%s\"}]}}}}",
		name, replicas, strategy ? strategy : "", extra ? extra : "", name, name, image);
}

static json_t *get_dep(const char *name)
{
	return req("GET", fmt("/apis/apps/v1/namespaces/default/deployments/%s", name), NULL, 200);
}

static long long dep_status(const char *name, const char *field)
{
	json_t *d = get_dep(name);
	long long v = jint(d, fmt("status.%s", field));
	json_decref(d);
	return v;
}

/* The condition's reason (into buf), "" when absent. */
static const char *dep_cond(const char *name, const char *type, char *buf, size_t len)
{
	json_t *d = get_dep(name);
	size_t i;
	json_t *c;
	buf[0] = '\0';
	json_array_foreach (json_object_get(json_object_get(d, "status"), "conditions"), i, c) {
		if (strcmp(jstr(c, "type"), type) == 0)
			snprintf(buf, len, "%s/%s", jstr(c, "status"), jstr(c, "reason"));
	}
	json_decref(d);
	return buf;
}

static json_t *replicasets(const char *app)
{
	return items(
		fmt("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%%3D%s", app));
}

static size_t count_rs(const char *app)
{
	json_t *l = replicasets(app);
	size_t n = json_array_size(l);
	json_decref(l);
	return n;
}

/* The ReplicaSet of app with that image (a new reference) or NULL. */
static json_t *rs_with_image(const char *app, const char *image)
{
	json_t *l = replicasets(app), *found = NULL;
	size_t i;
	json_t *r;
	json_array_foreach (l, i, r) {
		json_t *c = json_array_get(
			json_object_get(json_object_get(json_object_get(json_object_get(r, "spec"),
									"template"),
							"spec"),
					"containers"),
			0);
		if (strcmp(jstr(c, "image"), image) == 0)
			found = json_incref(r);
	}
	json_decref(l);
	return found;
}

/* spec.replicas of the ReplicaSet of app with that image, -1 when there is none. */
static long long rs_replicas(const char *app, const char *image)
{
	json_t *r = rs_with_image(app, image);
	long long n = r ? jint(r, "spec.replicas") : -1;
	json_decref(r);
	return n;
}

static const char *revision_of(const json_t *o)
{
	return json_string_value(
		json_object_get(json_object_get(json_object_get(o, "metadata"), "annotations"),
				"deployment.kubernetes.io/revision"));
}

/* ---- the node agents' part, in a thread -------------------------------------------------- */

struct agent {
	pthread_t th;
	char sel[64];
	volatile bool stop;
	bool ready; /* pods become Ready (else they stay not ready) */
	int net;
	/* what it saw: fewest ready pods and most live pods once the rollout began */
	long min_ready, max_live;
	volatile bool counting;
};

static void *agent_main(void *arg)
{
	struct agent *a = arg;
	int ip = 1;
	while (!a->stop) {
		/* not pods(): a failed assertion may not leave this thread */
		long lc;
		json_t *lr = http_json(
			&srv, "GET",
			fmt("/api/v1/namespaces/default/pods?labelSelector=%s", a->sel), NULL, &lc);
		json_t *l = json_incref(json_object_get(lr, "items"));
		json_decref(lr);
		size_t i;
		json_t *p;
		long ready = 0, live = 0;
		json_array_foreach (l, i, p) {
			const char *name = jstr(p, "metadata.name");
			if (terminating(p)) {
				/* the node stopped it: confirm */
				long code;
				json_decref(http_json(&srv, "DELETE",
						      fmt("/api/v1/namespaces/default/pods/%s?"
							  "gracePeriodSeconds=0",
							  name),
						      NULL, &code));
				continue;
			}
			live++;
			if (!jstr(p, "spec.nodeName")) {
				long code;
				json_decref(http_json(
					&srv, "POST",
					fmt("/api/v1/namespaces/default/pods/%s/binding", name),
					fmt("{\"target\":{\"kind\":\"Node\",\"name\":\"node-%d\"}}",
					    ip % 3),
					&code));
			}
			if (!jstr(p, "status.podIP")) {
				char now[32];
				time_t t = time(NULL);
				long code;
				strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
				json_decref(http_json(
					&srv, "PATCH",
					fmt("/api/v1/namespaces/default/pods/%s/status", name),
					fmt("{\"status\":{\"phase\":\"Running\",\"podIP\":\"10.%d.%"
					    "d.%d\","
					    "\"conditions\":[{\"type\":\"Ready\",\"status\":\"%s\","
					    "\"lastTransitionTime\":\"%s\"}]}}",
					    a->net, ip / 250, ip % 250 + 1,
					    a->ready ? "True" : "False", now),
					&code));
				ip++;
				continue; /* ready from the next round on */
			}
			size_t j;
			json_t *c;
			json_array_foreach (
				json_object_get(json_object_get(p, "status"), "conditions"), j, c)
				if (strcmp(jstr(c, "type"), "Ready") == 0 &&
				    strcmp(jstr(c, "status"), "True") == 0)
					ready++;
		}
		json_decref(l);
		if (a->counting) {
			if (ready < a->min_ready)
				a->min_ready = ready;
			if (live > a->max_live)
				a->max_live = live;
		}
		usleep(30000);
	}
	return NULL;
}

static void agent_start(struct agent *a, const char *app, int net, bool ready)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->sel, sizeof(a->sel), "app%%3D%s", app);
	a->net = net;
	a->ready = ready;
	a->min_ready = 1 << 30;
	assert_int_equal(pthread_create(&a->th, NULL, agent_main, a), 0);
}

static void agent_stop(struct agent *a)
{
	a->stop = true;
	pthread_join(a->th, NULL);
}

/* ---- watching ReplicaSets during a rollout ------------------------------------------------- */

struct rs_watch {
	pthread_t th;
	char base[256]; /* the watch path without resourceVersion */
	long long rv;
	volatile bool stop;
	json_t *events;
};

/* Watches in one-second streams, each resumed from the last revision seen, until stopped. */
static void *watch_main(void *arg)
{
	struct rs_watch *w = arg;
	w->events = json_array();
	while (!w->stop) {
		long code;
		char path[400];
		snprintf(path, sizeof(path),
			 "%s&allowWatchBookmarks=true&timeoutSeconds=1&"
			 "resourceVersion=%lld",
			 w->base, w->rv);
		json_t *evs = http_watch(&srv, path, 1500, &code);
		size_t i;
		json_t *ev;
		json_array_foreach (evs, i, ev) {
			long long rv = obj_rv(json_object_get(ev, "object"));
			if (rv > w->rv)
				w->rv = rv;
			json_array_append(w->events, ev);
		}
		json_decref(evs);
	}
	return NULL;
}

static void watch_start(struct rs_watch *w, const char *path, long long from_rv)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->base, sizeof(w->base), "%s", path);
	w->rv = from_rv;
	assert_int_equal(pthread_create(&w->th, NULL, watch_main, w), 0);
}

static void watch_stop(struct rs_watch *w)
{
	w->stop = true;
	pthread_join(w->th, NULL);
}

/* Replays the ReplicaSet events: at every step, the ReplicaSets' replicas stay within
 * replicas + surge and their available pods (at most their replicas each) at least
 * replicas - unavailable. */
static void check_steps(json_t *events, json_t *start, long replicas, long surge, long unavail)
{
	json_t *spec = json_object(), *avail = json_object();
	size_t i;
	json_t *r, *ev;
	json_array_foreach (start, i, r) {
		json_object_set_new(spec, jstr(r, "metadata.name"),
				    json_integer(jint(r, "spec.replicas")));
		json_object_set_new(avail, jstr(r, "metadata.name"),
				    json_integer(jint(r, "status.availableReplicas")));
	}
	int steps = 0;
	json_array_foreach (events, i, ev) {
		json_t *o = json_object_get(ev, "object");
		const char *type = jstr(ev, "type");
		if (!type || strcmp(type, "BOOKMARK") == 0)
			continue;
		const char *name = jstr(o, "metadata.name");
		bool gone = strcmp(type, "DELETED") == 0;
		json_object_set_new(spec, name, json_integer(gone ? 0 : jint(o, "spec.replicas")));
		json_object_set_new(avail, name,
				    json_integer(gone ? 0 : jint(o, "status.availableReplicas")));
		long total = 0, available = 0;
		const char *k;
		json_t *v;
		json_object_foreach (spec, k, v) {
			long s = (long)json_integer_value(v);
			long a = (long)json_integer_value(json_object_get(avail, k));
			total += s;
			available += a < s ? a : s;
		}
		if (total > replicas + surge)
			fail_msg(
				"step %d: replica sets want %ld pods, more than %ld + maxSurge %ld",
				steps, total, replicas, surge);
		if (available < replicas - unavail)
			fail_msg("step %d: %ld pods available, fewer than %ld - maxUnavailable %ld",
				 steps, available, replicas, unavail);
		steps++;
	}
	assert_true(steps > 4);
	json_decref(spec);
	json_decref(avail);
}

static bool rolled_out(const char *name, long replicas)
{
	json_t *d = get_dep(name);
	bool ok = jint(d, "status.observedGeneration") >= jint(d, "metadata.generation") &&
		  jint(d, "status.updatedReplicas") == replicas &&
		  jint(d, "status.replicas") == replicas &&
		  jint(d, "status.availableReplicas") == replicas;
	json_decref(d);
	return ok;
}

static void set_image(const char *name, const char *image)
{
	req0("PATCH", fmt("/apis/apps/v1/namespaces/default/deployments/%s", name),
	     fmt("{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":"
		 "\"%s\"}]}}}}",
		 image),
	     200);
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_api_ctrl_deploy_creates_revision_one(void **state)
{
	char buf[128];
	struct agent a;
	(void)state;
	agent_start(&a, "web", 1, true);
	json_t *d = req("POST", "/apis/apps/v1/namespaces/default/deployments",
			deploy("web", 3, "nginx:1.24", NULL, NULL), 201);
	WAIT_FOR(8000, rolled_out("web", 3), "deployment web rolled out");
	json_t *l = replicasets("web");
	assert_int_equal(json_array_size(l), 1);
	json_t *rs = json_array_get(l, 0);
	char hash[32];
	const char *h = json_string_value(json_object_get(
		json_object_get(json_object_get(rs, "metadata"), "labels"), "pod-template-hash"));
	assert_non_null(h);
	snprintf(hash, sizeof(hash), "%s", h);
	assert_string_equal(jstr(rs, "metadata.name"), fmt("web-%s", hash));
	assert_string_equal(revision_of(rs), "1");
	assert_string_equal(jstr(json_array_get(json_object_get(json_object_get(rs, "metadata"),
								"ownerReferences"),
						0),
				 "uid"),
			    jstr(d, "metadata.uid"));
	/* the hash is in the selector and the template */
	assert_int_equal(jint(rs, "spec.replicas"), 3);
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_object_get(json_object_get(rs, "spec"), "selector"),
					"matchLabels"),
			"pod-template-hash")),
		hash);
	json_decref(l);
	json_t *p = pods("app%3Dweb");
	assert_int_equal(json_array_size(p), 3);
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_object_get(json_array_get(p, 0), "metadata"),
					"labels"),
			"pod-template-hash")),
		hash);
	json_decref(p);
	assert_string_equal(dep_cond("web", "Available", buf, sizeof(buf)),
			    "True/MinimumReplicasAvailable");
	WAIT_FOR(3000,
		 strcmp(dep_cond("web", "Progressing", buf, sizeof(buf)),
			"True/NewReplicaSetAvailable") == 0,
		 "Progressing: %s", buf);
	json_t *dd = get_dep("web");
	assert_string_equal(revision_of(dd), "1");
	assert_int_equal(jint(dd, "status.unavailableReplicas"), 0);
	json_decref(dd);
	json_decref(d);
	agent_stop(&a);
}

/* 10 replicas, maxSurge 3, maxUnavailable 2: every step of the rollout keeps to them. */
static void test_api_ctrl_deploy_rolling_update_keeps_bounds(void **state)
{
	struct agent a;
	struct rs_watch w;
	(void)state;
	agent_start(&a, "roll", 2, true);
	req0("POST", "/apis/apps/v1/namespaces/default/deployments",
	     deploy("roll", 10, "app:v1",
		    "\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":3,"
		    "\"maxUnavailable\":2}},",
		    NULL),
	     201);
	WAIT_FOR(10000, rolled_out("roll", 10), "roll: first rollout");
	json_t *start = replicasets("roll");
	json_t *l = req("GET", "/apis/apps/v1/namespaces/default/replicasets", NULL, 200);
	long long rv = obj_rv(l);
	json_decref(l);
	watch_start(&w,
		    "/apis/apps/v1/namespaces/default/replicasets?watch=1&labelSelector=app%3Droll",
		    rv);
	a.counting = true;
	set_image("roll", "app:v2");
	WAIT_FOR(15000, rolled_out("roll", 10) && count_rs("roll") == 2, "roll: second rollout");
	usleep(300000);
	a.counting = false;
	json_t *old = rs_with_image("roll", "app:v1"), *neu = rs_with_image("roll", "app:v2");
	assert_non_null(old);
	assert_non_null(neu);
	assert_int_equal(jint(old, "spec.replicas"), 0);
	assert_int_equal(jint(neu, "spec.replicas"), 10);
	assert_string_equal(revision_of(neu), "2");
	assert_string_equal(revision_of(old), "1");
	json_decref(old);
	json_decref(neu);
	/* the pods the agents saw */
	if (a.min_ready < 8)
		fail_msg("only %ld pods were ready at one point, want at least 10 - 2",
			 a.min_ready);
	agent_stop(&a);
	watch_stop(&w);
	check_steps(w.events, start, 10, 3, 2);
	json_decref(w.events);
	json_decref(start);
	json_t *d = get_dep("roll");
	assert_string_equal(revision_of(d), "2");
	json_decref(d);
}

/* Percentages: 25% of 4 surges 1 and lets 1 be unavailable (rounded up and down). */
static void test_api_ctrl_deploy_percentages(void **state)
{
	struct agent a;
	struct rs_watch w;
	(void)state;
	agent_start(&a, "pct", 3, true);
	req0("POST", "/apis/apps/v1/namespaces/default/deployments",
	     deploy("pct", 4, "app:v1",
		    "\"strategy\":{\"rollingUpdate\":{\"maxSurge\":\"25%\",\"maxUnavailable\":"
		    "\"25%\"}},",
		    NULL),
	     201);
	WAIT_FOR(10000, rolled_out("pct", 4), "pct: first rollout");
	json_t *start = replicasets("pct");
	json_t *l = req("GET", "/apis/apps/v1/namespaces/default/replicasets", NULL, 200);
	long long rv = obj_rv(l);
	json_decref(l);
	watch_start(&w,
		    "/apis/apps/v1/namespaces/default/replicasets?watch=1&labelSelector=app%3Dpct",
		    rv);
	set_image("pct", "app:v2");
	WAIT_FOR(15000, rolled_out("pct", 4) && rs_replicas("pct", "app:v1") == 0,
		 "pct: second rollout");
	agent_stop(&a);
	watch_stop(&w);
	check_steps(w.events, start, 4, 1, 1);
	json_decref(w.events);
	json_decref(start);
}

static void test_api_ctrl_deploy_recreate(void **state)
{
	struct agent a;
	(void)state;
	agent_start(&a, "rec", 4, true);
	req0("POST", "/apis/apps/v1/namespaces/default/deployments",
	     deploy("rec", 3, "db:v1", "\"strategy\":{\"type\":\"Recreate\"},", NULL), 201);
	WAIT_FOR(10000, rolled_out("rec", 3), "rec: first rollout");
	json_t *l = req("GET", "/api/v1/namespaces/default/pods", NULL, 200);
	long long rv = obj_rv(l);
	json_decref(l);
	struct rs_watch w;
	watch_start(&w, "/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Drec", rv);
	set_image("rec", "db:v2");
	WAIT_FOR(15000, rolled_out("rec", 3) && count_rs("rec") == 2, "rec: second rollout");
	agent_stop(&a);
	watch_stop(&w);
	/* No new pod appears while an old one exists. */
	json_t *live = json_object();
	size_t i;
	json_t *ev;
	int new_seen = 0;
	json_array_foreach (w.events, i, ev) {
		json_t *o = json_object_get(ev, "object");
		const char *type = jstr(ev, "type");
		if (!type || strcmp(type, "BOOKMARK") == 0)
			continue;
		json_t *c = json_array_get(
			json_object_get(json_object_get(o, "spec"), "containers"), 0);
		bool v2 = strcmp(jstr(c, "image"), "db:v2") == 0;
		if (strcmp(type, "DELETED") == 0) {
			json_object_del(live, jstr(o, "metadata.name"));
			continue;
		}
		if (v2 && strcmp(type, "ADDED") == 0) {
			new_seen++;
			const char *k;
			json_t *v;
			json_object_foreach (live, k, v)
				if (json_is_false(v))
					fail_msg("new pod %s created while old pod %s still exists",
						 jstr(o, "metadata.name"), k);
		}
		json_object_set_new(live, jstr(o, "metadata.name"), json_boolean(v2));
	}
	assert_int_equal(new_seen, 3);
	json_decref(live);
	json_decref(w.events);
}

static void test_api_ctrl_deploy_pause_resume(void **state)
{
	char buf[128];
	struct agent a;
	(void)state;
	agent_start(&a, "pause", 5, true);
	req0("POST", "/apis/apps/v1/namespaces/default/deployments",
	     deploy("pause", 2, "app:v1", NULL, NULL), 201);
	WAIT_FOR(8000, rolled_out("pause", 2), "pause: first rollout");
	req0("PATCH", "/apis/apps/v1/namespaces/default/deployments/pause",
	     "{\"spec\":{\"paused\":true}}", 200);
	WAIT_FOR(3000,
		 strcmp(dep_cond("pause", "Progressing", buf, sizeof(buf)),
			"Unknown/DeploymentPaused") == 0,
		 "Progressing while paused: %s", buf);
	set_image("pause", "app:v2");
	/* scaling still applies while paused */
	req0("PATCH", "/apis/apps/v1/namespaces/default/deployments/pause",
	     "{\"spec\":{\"replicas\":3}}", 200);
	WAIT_FOR(5000, dep_status("pause", "availableReplicas") == 3, "scaled to 3 while paused");
	usleep(300000);
	assert_int_equal(count_rs("pause"), 1);
	req0("PATCH", "/apis/apps/v1/namespaces/default/deployments/pause",
	     "{\"spec\":{\"paused\":false}}", 200);
	WAIT_FOR(10000, rolled_out("pause", 3) && count_rs("pause") == 2, "rollout after resume");
	json_t *neu = rs_with_image("pause", "app:v2");
	assert_int_equal(jint(neu, "spec.replicas"), 3);
	json_decref(neu);
	agent_stop(&a);
}

/* shoalctl rollout: history, undo to a revision, status, pause and resume. */
static int ctl(const char *args, char *out, size_t len)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "build/bin/shoalctl --server unix:%s %s 2>&1", srv.sock, args);
	FILE *f = popen(cmd, "r");
	size_t n = 0;
	if (!f)
		return -1;
	while (n + 1 < len && fgets(out + n, (int)(len - n), f))
		n += strlen(out + n);
	out[n] = '\0';
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_api_ctrl_deploy_rollback_and_history_limit(void **state)
{
	char out[4096];
	struct agent a;
	(void)state;
	agent_start(&a, "hist", 6, true);
	req0("POST", "/apis/apps/v1/namespaces/default/deployments",
	     deploy("hist", 2, "app:v1", NULL, "\"revisionHistoryLimit\":2,"), 201);
	WAIT_FOR(8000, rolled_out("hist", 2), "hist v1");
	set_image("hist", "app:v2");
	WAIT_FOR(8000, rolled_out("hist", 2) && count_rs("hist") == 2, "hist v2");
	assert_int_equal(ctl("rollout status deployment/hist --timeout=10s", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "deployment \"hist\" successfully rolled out"));
	assert_int_equal(ctl("rollout history deployment/hist", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "REVISION"));
	assert_non_null(strstr(out, "\n1 "));
	assert_non_null(strstr(out, "\n2 "));

	/* undo: back to the previous revision, which becomes revision 3 */
	assert_int_equal(ctl("rollout undo deployment/hist", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "deployment.apps/hist rolled back"));
	WAIT_FOR(8000, rolled_out("hist", 2), "hist undone");
	json_t *v1 = rs_with_image("hist", "app:v1");
	WAIT_FOR(5000,
		 (json_decref(v1), v1 = rs_with_image("hist", "app:v1"),
		  v1 && revision_of(v1) && strcmp(revision_of(v1), "3") == 0 &&
			  jint(v1, "spec.replicas") == 2),
		 "the v1 replica set is revision 3 and has the pods");
	json_decref(v1);
	json_t *d = get_dep("hist");
	json_t *c = json_array_get(
		json_object_get(
			json_object_get(json_object_get(json_object_get(d, "spec"), "template"),
					"spec"),
			"containers"),
		0);
	assert_string_equal(jstr(c, "image"), "app:v1");
	/* the template came back without the ReplicaSet's hash label */
	assert_null(json_object_get(
		json_object_get(
			json_object_get(json_object_get(json_object_get(d, "spec"), "template"),
					"metadata"),
			"labels"),
		"pod-template-hash"));
	json_decref(d);

	/* --to-revision; a revision that does not exist is an error */
	assert_int_equal(ctl("rollout undo deployment/hist --to-revision=9", out, sizeof(out)), 1);
	assert_non_null(strstr(out, "revision 9"));
	assert_int_equal(ctl("rollout undo deployment/hist --to-revision=2", out, sizeof(out)), 0);
	WAIT_FOR(8000, rolled_out("hist", 2) && rs_replicas("hist", "app:v2") == 2,
		 "hist back to v2");

	/* history limit 2: with v3 and v4 rolled out, only 3 replica sets remain (new + 2) */
	set_image("hist", "app:v3");
	WAIT_FOR(8000, rolled_out("hist", 2) && rs_replicas("hist", "app:v3") == 2, "hist v3");
	set_image("hist", "app:v4");
	WAIT_FOR(8000, rolled_out("hist", 2) && rs_replicas("hist", "app:v4") == 2, "hist v4");
	WAIT_FOR(5000, count_rs("hist") == 3, "3 replica sets remain, have %zu", count_rs("hist"));
	json_t *gone = rs_with_image("hist", "app:v1");
	assert_null(gone); /* the oldest revision went */

	/* pause and resume through shoalctl */
	assert_int_equal(ctl("rollout pause deployment/hist", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "deployment.apps/hist paused"));
	d = get_dep("hist");
	assert_true(json_is_true(json_object_get(json_object_get(d, "spec"), "paused")));
	json_decref(d);
	assert_int_equal(ctl("rollout resume deployment/hist", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "deployment.apps/hist resumed"));
	agent_stop(&a);
}

static void test_api_ctrl_deploy_progress_deadline(void **state)
{
	char buf[128], out[2048];
	struct agent a;
	(void)state;
	/* pods never become ready */
	agent_start(&a, "stuck", 7, false);
	req0("POST", "/apis/apps/v1/namespaces/default/deployments",
	     deploy("stuck", 2, "app:v1", NULL, "\"progressDeadlineSeconds\":2,"), 201);
	WAIT_FOR(8000,
		 strcmp(dep_cond("stuck", "Progressing", buf, sizeof(buf)),
			"False/ProgressDeadlineExceeded") == 0,
		 "Progressing: %s", buf);
	assert_string_equal(dep_cond("stuck", "Available", buf, sizeof(buf)),
			    "False/MinimumReplicasUnavailable");
	assert_int_equal(dep_status("stuck", "unavailableReplicas"), 2);
	/* rollout status reports it and fails */
	assert_int_equal(ctl("rollout status deployment/stuck --timeout=5s", out, sizeof(out)), 1);
	assert_non_null(strstr(out, "exceeded its progress deadline"));
	agent_stop(&a);
}

static void test_api_ctrl_deploy_rollout_status_times_out(void **state)
{
	char out[2048];
	(void)state;
	/* no agent at all: nothing becomes available */
	req0("POST", "/apis/apps/v1/namespaces/default/deployments",
	     deploy("slowpoke", 1, "app:v1", NULL, NULL), 201);
	long long t0 = mono_ms();
	assert_int_equal(ctl("rollout status deployment/slowpoke --timeout=1s", out, sizeof(out)),
			 1);
	assert_true(mono_ms() - t0 < 5000);
	assert_non_null(strstr(out, "Waiting for deployment \"slowpoke\" rollout to finish"));
	assert_non_null(strstr(out, "timed out"));
}

/* Scaled during a rollout, the ReplicaSets grow in proportion. */
static void test_api_ctrl_deploy_proportional_scaling(void **state)
{
	(void)state;
	struct agent a;
	agent_start(&a, "prop", 8, true);
	req0("POST", "/apis/apps/v1/namespaces/default/deployments",
	     deploy("prop", 10, "app:v1",
		    "\"strategy\":{\"rollingUpdate\":{\"maxSurge\":3,\"maxUnavailable\":0}},",
		    NULL),
	     201);
	WAIT_FOR(10000, rolled_out("prop", 10), "prop: first rollout");
	agent_stop(&a); /* new pods stay unready: the rollout stalls half way */
	set_image("prop", "app:v2");
	WAIT_FOR(5000, rs_replicas("prop", "app:v2") == 3, "the new replica set surged to 3");
	req0("PATCH", "/apis/apps/v1/namespaces/default/deployments/prop",
	     "{\"spec\":{\"replicas\":20}}", 200);
	/* 13 of 13 (10 old, 3 new) become 23 of 23: old 10 -> 18 (or so), new 3 -> 5 */
	WAIT_FOR(5000, rs_replicas("prop", "app:v1") + rs_replicas("prop", "app:v2") == 23,
		 "23 replicas in all, have %lld + %lld", rs_replicas("prop", "app:v1"),
		 rs_replicas("prop", "app:v2"));
	long long o = rs_replicas("prop", "app:v1"), n = rs_replicas("prop", "app:v2");
	if (o < 17 || o > 18 || n < 5 || n > 6)
		fail_msg("old %lld and new %lld replicas: not in proportion to 10 and 3", o, n);
}

static void test_api_ctrl_deploy_bad_specs_rejected(void **state)
{
	(void)state;
	static const struct {
		const char *strategy, *extra, *field;
	} bad[] = {
		{ "\"strategy\":{\"rollingUpdate\":{\"maxSurge\":0,\"maxUnavailable\":0}},", NULL,
		  "spec.strategy.rollingUpdate.maxUnavailable" },
		{ "\"strategy\":{\"rollingUpdate\":{\"maxUnavailable\":\"150%\"}},", NULL,
		  "spec.strategy.rollingUpdate.maxUnavailable" },
		{ "\"strategy\":{\"rollingUpdate\":{\"maxSurge\":\"x\"}},", NULL,
		  "spec.strategy.rollingUpdate.maxSurge" },
		{ "\"strategy\":{\"type\":\"Recreate\",\"rollingUpdate\":{\"maxSurge\":1}},", NULL,
		  "spec.strategy.rollingUpdate" },
		{ "\"strategy\":{\"type\":\"BlueGreen\"},", NULL, "spec.strategy.type" },
		{ NULL, "\"minReadySeconds\":10,\"progressDeadlineSeconds\":5,",
		  "spec.progressDeadlineSeconds" },
		{ NULL, "\"revisionHistoryLimit\":-1,", "spec.revisionHistoryLimit" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *s = req("POST", "/apis/apps/v1/namespaces/default/deployments",
				deploy("bad", 1, "x", bad[i].strategy, bad[i].extra), 422);
		const char *msg = jstr(s, "message");
		if (!strstr(msg, bad[i].field))
			fail_msg("case %zu: message \"%s\" does not name %s", i, msg, bad[i].field);
		json_decref(s);
	}
	/* the selector must match the template */
	json_t *s = req("POST", "/apis/apps/v1/namespaces/default/deployments",
			"{\"metadata\":{\"name\":\"bad\"},\"spec\":{\"selector\":{\"matchLabels\":{"
			"\"app\":\"a\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"b\"}},"
			"\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}}}",
			422);
	assert_non_null(strstr(jstr(s, "message"), "spec.template.metadata.labels"));
	json_decref(s);
}

SHOAL_TEST_MAIN_SETUP(ctrl_setup, ctrl_teardown,
		      cmocka_unit_test(test_api_ctrl_deploy_creates_revision_one),
		      cmocka_unit_test(test_api_ctrl_deploy_rolling_update_keeps_bounds),
		      cmocka_unit_test(test_api_ctrl_deploy_percentages),
		      cmocka_unit_test(test_api_ctrl_deploy_recreate),
		      cmocka_unit_test(test_api_ctrl_deploy_pause_resume),
		      cmocka_unit_test(test_api_ctrl_deploy_rollback_and_history_limit),
		      cmocka_unit_test(test_api_ctrl_deploy_progress_deadline),
		      cmocka_unit_test(test_api_ctrl_deploy_rollout_status_times_out),
		      cmocka_unit_test(test_api_ctrl_deploy_proportional_scaling),
		      cmocka_unit_test(test_api_ctrl_deploy_bad_specs_rejected))
