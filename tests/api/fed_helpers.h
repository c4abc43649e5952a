/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the federation tests share: three member shoalds (each on its own state directory and
 * unix socket, with a token file of its own) and one federation shoald whose Cluster objects
 * point at them; requests to either side; polling with a deadline; and the node agent's part
 * played by hand on the members (pods bound to a node and made Running and Ready, pods being
 * deleted confirmed), in a thread beside the test.
 */
#ifndef SHOAL_TEST_FED_HELPERS_H
#define SHOAL_TEST_FED_HELPERS_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shoal_test.h"
#include "shoald_fixture.h"

#define NMEM 3
static struct shoald mem[NMEM], fedd;
static const char *const mem_name[NMEM] = { "a", "b", "c" };
static char tokdir[128], tokfile[NMEM][256], tokarg[NMEM][300];
static atomic_bool mem_up[NMEM];

#ifndef FED_GRACE
#define FED_GRACE "3s"
#endif

static __attribute__((format(printf, 1, 2))) const char *fmt(const char *f, ...)
{
	static __thread char bufs[8][8192];
	static __thread int n;
	char *b = bufs[n++ % 8];
	va_list ap;
	va_start(ap, f);
	vsnprintf(b, sizeof(bufs[0]), f, ap);
	va_end(ap);
	return b;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static const char *jstr(const json_t *o, const char *path)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *t = strtok_r(buf, ".", &save); t && o; t = strtok_r(NULL, ".", &save))
		o = json_object_get(o, t);
	return json_string_value(o);
}

static long long jint(const json_t *o, const char *path)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *t = strtok_r(buf, ".", &save); t && o; t = strtok_r(NULL, ".", &save))
		o = json_object_get(o, t);
	return json_integer_value(o);
}

/* A request to s (i >= 0: member i with its token; -1: the federation). */
static json_t *call(int i, const char *method, const char *path, const char *body, long *code)
{
	const struct shoald *s = i < 0 ? &fedd : &mem[i];
	char tok[64];
	snprintf(tok, sizeof(tok), "tok-%s", i < 0 ? "" : mem_name[i]);
	struct http_resp r;
	json_t *j = NULL;
	const char *ctype = strcmp(method, "PATCH") == 0 ? "application/merge-patch+json" : NULL;
	*code = 0;
	if (http_do(s, method, path, ctype, body, body ? strlen(body) : 0, i < 0 ? NULL : tok,
		    &r) == 0) {
		*code = r.code;
		if (r.body)
			j = json_loadb(r.body, r.len, 0, NULL);
	}
	http_resp_free(&r);
	return j;
}

static json_t *req(int i, const char *method, const char *path, const char *body, long want)
{
	long code;
	json_t *o = call(i, method, path, body, &code);
	if (code != want) {
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		fail_msg("%s %s on %s: answered %ld, want %ld: %s", method, path,
			 i < 0 ? "the federation" : mem_name[i], code, want, s ? s : "");
	}
	return o;
}

static __attribute__((unused)) void req0(int i, const char *method, const char *path,
					 const char *body, long want)
{
	json_decref(req(i, method, path, body, want));
}

#define WAIT_FOR(ms, cond, ...)                                                                    \
	do {                                                                                       \
		long long until_ = mono_ms() + (ms);                                               \
		bool ok_;                                                                          \
		while (!(ok_ = (cond)) && mono_ms() < until_)                                      \
			usleep(50000);                                                             \
		if (!ok_)                                                                          \
			fail_msg(__VA_ARGS__);                                                     \
	} while (0)

#define FD_PATH	 "/apis/federation.shoal.io/v1/namespaces/default/federateddeployments"
#define CL_PATH	 "/apis/federation.shoal.io/v1/clusters"
#define DEP_PATH "/apis/apps/v1/namespaces/default/deployments"

/* The member Deployment's spec.replicas on member i, -1 when there is none. */
static long long member_replicas(int i, const char *name)
{
	long code;
	json_t *d = call(i, "GET", fmt(DEP_PATH "/%s", name), NULL, &code);
	long long n = code == 200 ? jint(d, "spec.replicas") : -1;
	json_decref(d);
	return n;
}

static __attribute__((unused)) long long member_ready(int i, const char *name)
{
	long code;
	json_t *d = call(i, "GET", fmt(DEP_PATH "/%s", name), NULL, &code);
	long long n = code == 200 ? jint(d, "status.readyReplicas") : 0;
	json_decref(d);
	return n;
}

static __attribute__((unused)) bool replicas_are(const char *name, long long a, long long b,
						 long long c)
{
	return member_replicas(0, name) == a && member_replicas(1, name) == b &&
	       member_replicas(2, name) == c;
}

/* A FederatedDeployment of total replicas over a, b and c with weights (NULL: none),
 * further placement fields (may be "") and spec fields (may be ""). */
static __attribute__((unused)) const char *fd_json(const char *name, int total, const char *weights,
						   const char *more_pl, const char *more_spec)
{
	return fmt(
		"{\"apiVersion\":\"federation.shoal.io/v1\",\"kind\":\"FederatedDeployment\","
		"\"metadata\":{\"name\":\"%s\"},\"spec\":{\"replicas\":%d,\"template\":{"
		"\"metadata\":{\"labels\":{\"app\":\"%s\"}},\"spec\":{\"selector\":{"
		"\"matchLabels\":{\"app\":\"%s\"}},\"template\":{\"metadata\":{\"labels\":{"
		"\"app\":\"%s\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\","
		"\"command\":[\"sleep\",\"3600\"],\"resources\":{\"requests\":{\"cpu\":\"1\"}}}]}}}"
		"},"
		"\"placement\":{\"clusters\":[\"a\",\"b\",\"c\"]%s%s%s%s}%s}}",
		name, total, name, name, name,
		weights ? ",\"replicaScheduling\":{\"weights\":" : "", weights ? weights : "",
		weights ? "}" : "", more_pl, more_spec);
}

static __attribute__((unused)) const char *weights3(int a, int b, int c)
{
	return fmt("[{\"cluster\":\"a\",\"weight\":%d},{\"cluster\":\"b\",\"weight\":%d},"
		   "{\"cluster\":\"c\",\"weight\":%d}]",
		   a, b, c);
}

/* Cluster name has condition type at status with reason, its message holding text (a NULL
 * reason or text: any). */
static __attribute__((unused)) bool cluster_cond_msg(const char *name, const char *type,
						     const char *status, const char *reason,
						     const char *text)
{
	long code;
	json_t *o = call(-1, "GET", fmt(CL_PATH "/%s", name), NULL, &code);
	bool ok = false;
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(json_object_get(o, "status"), "conditions"), i, c)
		if (!strcmp(jstr(c, "type") ?: "", type) &&
		    !strcmp(jstr(c, "status") ?: "", status) &&
		    (!reason || !strcmp(jstr(c, "reason") ?: "", reason)) &&
		    (!text || strstr(jstr(c, "message") ?: "", text)))
			ok = true;
	json_decref(o);
	return ok;
}

static __attribute__((unused)) bool cluster_cond(const char *name, const char *type,
						 const char *status)
{
	return cluster_cond_msg(name, type, status, NULL, NULL);
}

static __attribute__((unused)) bool cluster_exists(const char *name)
{
	long code;
	json_decref(call(-1, "GET", fmt(CL_PATH "/%s", name), NULL, &code));
	return code == 200;
}

/* Plays the agent on member i once: binds pods, makes them Ready, confirms deletions. */
static void agent_pass(int i)
{
	long code;
	char now[32];
	time_t t = time(NULL);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	json_t *l = call(i, "GET", "/api/v1/namespaces/default/pods", NULL, &code);
	size_t k;
	json_t *p;
	json_array_foreach (json_object_get(l, "items"), k, p) {
		const char *name = jstr(p, "metadata.name");
		if (!name)
			continue;
		if (jstr(p, "metadata.deletionTimestamp")) {
			json_decref(
				call(i, "DELETE",
				     fmt("/api/v1/namespaces/default/pods/%s?gracePeriodSeconds=0",
					 name),
				     NULL, &code));
			continue;
		}
		if (jstr(p, "status.podIP"))
			continue;
		if (!jstr(p, "spec.nodeName"))
			json_decref(call(i, "POST",
					 fmt("/api/v1/namespaces/default/pods/%s/binding", name),
					 fmt("{\"metadata\":{\"name\":\"%s\"},\"target\":{\"kind\":"
					     "\"Node\",\"name\":\"n1\"}}",
					     name),
					 &code));
		json_decref(
			call(i, "PATCH", fmt("/api/v1/namespaces/default/pods/%s/status", name),
			     fmt("{\"status\":{\"phase\":\"Running\",\"podIP\":\"10.100.%d.%zu\","
				 "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
				 "\"lastTransitionTime\":\"%s\"}]}}",
				 i, k % 250 + 1, now),
			     &code));
	}
	json_decref(l);
}

static atomic_bool agent_stop;
static pthread_t agent_thread;
static bool agent_started;

static void *agent_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&agent_stop)) {
		for (int i = 0; i < NMEM; i++)
			if (atomic_load(&mem_up[i]))
				agent_pass(i);
		usleep(100000);
	}
	return NULL;
}

static int add_member_node(int i, const char *cpu)
{
	long code;
	json_decref(
		call(i, "POST", "/api/v1/nodes",
		     fmt("{\"metadata\":{\"name\":\"n1\"},\"spec\":{},\"status\":{\"allocatable\":"
			 "{\"cpu\":\"%s\",\"memory\":\"64Gi\",\"pods\":\"500\"},\"conditions\":"
			 "[{\"type\":\"Ready\",\"status\":\"True\"}],\"addresses\":[{\"type\":"
			 "\"InternalIP\",\"address\":\"10.99.%d.1\"}]}}",
			 cpu, i + 1),
		     &code));
	return code == 201 ? 0 : -1;
}

static int write_tokens(void)
{
	snprintf(tokdir, sizeof(tokdir), "/tmp/shoal-fedtest.XXXXXX");
	if (!mkdtemp(tokdir))
		return -1;
	for (int i = 0; i < NMEM; i++) {
		snprintf(tokfile[i], sizeof(tokfile[i]), "%s/%s.tokens", tokdir, mem_name[i]);
		snprintf(tokarg[i], sizeof(tokarg[i]), "%s", tokfile[i]);
		FILE *f = fopen(tokfile[i], "w");
		if (!f)
			return -1;
		fprintf(f, "tok-%s,admin,system:masters\n", mem_name[i]);
		fclose(f);
	}
	return 0;
}

/* (the credentials directory, tokdir, is filled in by fed_start_all) */
static const char *fed_args[] = { "--federation",
				  "--cluster-credentials-dir",
				  NULL,
				  "--federation-id",
				  "fedtest",
				  "--cluster-probe-interval",
				  "500ms",
				  "--cluster-grace-period",
				  FED_GRACE,
				  "--member-timeout",
				  "1s",
				  "--disable-scheduler",
				  "--log-level",
				  "warn",
				  NULL };

/* Members a, b, c (nodes of cpu[i] cores), the federation, its three Clusters, all Ready,
 * and the agent thread. */
static int fed_start_all(const char *const cpu[NMEM])
{
	if (write_tokens())
		return -1;
	for (int i = 0; i < NMEM; i++) {
		const char *args[] = { "--disable-scheduler", "--log-level", "warn",
				       "--token-file",	      tokarg[i],     NULL };
		if (shoald_start(&mem[i], args))
			return -1;
		atomic_store(&mem_up[i], true);
		if (add_member_node(i, cpu[i]))
			return -1;
	}
	fed_args[2] = tokdir;
	if (shoald_start(&fedd, fed_args))
		return -1;
	for (int i = 0; i < NMEM; i++) {
		long code;
		json_decref(
			call(-1, "POST", CL_PATH,
			     fmt("{\"apiVersion\":\"federation.shoal.io/v1\",\"kind\":\"Cluster\","
				 "\"metadata\":{\"name\":\"%s\",\"labels\":{"
				 "\"topology.kubernetes.io/region\":\"r%d\"}},\"spec\":{"
				 "\"apiEndpoint\":\"unix:%s\",\"tokenFile\":\"%s\"}}",
				 mem_name[i], i, mem[i].sock, tokfile[i]),
			     &code));
		if (code != 201)
			return -1;
	}
	for (int i = 0; i < NMEM; i++) {
		long long until = mono_ms() + 20000;
		while (!cluster_cond(mem_name[i], "Ready", "True"))
			if (mono_ms() > until)
				return -1;
			else
				usleep(50000);
	}
	if (pthread_create(&agent_thread, NULL, agent_loop, NULL))
		return -1;
	agent_started = true;
	return 0;
}

static int fed_stop_all(void)
{
	int bad = 0;
	atomic_store(&agent_stop, true);
	if (agent_started)
		pthread_join(agent_thread, NULL);
	bad |= shoald_stop(&fedd) != 0;
	shoald_destroy(&fedd);
	for (int i = 0; i < NMEM; i++) {
		if (mem[i].pid)
			bad |= shoald_stop(&mem[i]) != 0;
		shoald_destroy(&mem[i]);
	}
	for (int i = 0; i < NMEM; i++)
		unlink(tokfile[i]);
	unlink(fmt("%s/bad.tokens", tokdir)); /* a test's, when it failed half-way */
	unlink(fmt("%s/escape.tokens", tokdir));
	rmdir(tokdir);
	return bad ? -1 : 0;
}

#endif
