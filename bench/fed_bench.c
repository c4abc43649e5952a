// SPDX-License-Identifier: Apache-2.0
/*
 * The federation's load (run by bench/fed): against a federation shoald and three member
 * shoalds already started, it creates the three Clusters, then N FederatedDeployments of 3
 * replicas each over the three members, and measures the time until every one is placed
 * (status.placement complete) and until every member holds its Deployment; then it stops
 * member a (SIGTERM to the pid given) and measures the time until every FederatedDeployment's
 * replicas are on b and c, and held by their Deployments there. Prints key=value lines.
 *
 * The design choice: progress is read by listing (the federation's FederatedDeployments, each
 * member's managed Deployments) every 100 ms, the way an operator would look, not by
 * instrumenting the daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "httpc.h"

#define NMEM 3
static const char *fed_url, *mem_url[NMEM];
static int n_fds = 1000, threads = 8, mem0_pid, fed_pid;
static const char *const names[NMEM] = { "a", "b", "c" };

static json_t *get(struct httpc *h, const char *path)
{
	struct httpc_resp r = { 0 };
	json_t *j = NULL;
	if (httpc_request(h, "GET", path, NULL, 0, NULL, &r) == 0 && r.code == 200 && r.body)
		j = json_loadb(r.body, r.len, 0, NULL);
	httpc_resp_free(&r);
	return j;
}

static int post(struct httpc *h, const char *path, const char *body)
{
	struct httpc_resp r = { 0 };
	int err = httpc_request(h, "POST", path, body, strlen(body), NULL, &r);
	long code = r.code;
	httpc_resp_free(&r);
	if (err)
		return err;
	return code == 201 || code == 409 ? 0 : -EIO;
}

static atomic_int next_fd, create_errors;

static void *creator(void *arg)
{
	(void)arg;
	struct httpc *h = httpc_new(fed_url, NULL);
	if (!h)
		return NULL;
	char body[2048];
	for (int i; (i = atomic_fetch_add(&next_fd, 1)) < n_fds;) {
		snprintf(body, sizeof(body),
			 "{\"apiVersion\":\"federation.shoal.io/"
			 "v1\",\"kind\":\"FederatedDeployment\","
			 "\"metadata\":{\"name\":\"fd-%d\"},\"spec\":{\"replicas\":3,\"template\":{"
			 "\"metadata\":{\"labels\":{\"app\":\"fd-%d\"}},\"spec\":{\"selector\":{"
			 "\"matchLabels\":{\"app\":\"fd-%d\"}},\"template\":{\"metadata\":{"
			 "\"labels\":"
			 "{\"app\":\"fd-%d\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":"
			 "\"busybox\"}]}}}},\"placement\":{\"clusterSelector\":{\"matchLabels\":{"
			 "\"bench\":\"fed\"}}}}}",
			 i, i, i, i);
		if (post(h, "/apis/federation.shoal.io/v1/namespaces/default/federateddeployments",
			 body))
			atomic_fetch_add(&create_errors, 1);
	}
	httpc_free(h);
	return NULL;
}

/* FederatedDeployments whose placement is complete (and, with without, avoids that cluster). */
static int placed(struct httpc *h, const char *without)
{
	json_t *l = get(h, "/apis/federation.shoal.io/v1/namespaces/default/federateddeployments");
	size_t i, j;
	json_t *fd, *p;
	int n = 0;
	json_array_foreach (json_object_get(l, "items"), i, fd) {
		json_t *st = json_object_get(fd, "status");
		json_int_t sum = 0;
		bool bad = false;
		json_array_foreach (json_object_get(st, "placement"), j, p) {
			const char *c = json_string_value(json_object_get(p, "cluster"));
			if (without && c && !strcmp(c, without))
				bad = true;
			sum += json_integer_value(json_object_get(p, "replicas"));
		}
		n += !bad && sum == 3;
	}
	json_decref(l);
	return n;
}

/* The member's managed Deployments, and the replicas they ask for in total. */
static int member_deps(struct httpc *h, long long *replicas)
{
	json_t *l = get(h, "/apis/apps/v1/namespaces/default/deployments?labelSelector="
			   "federation.shoal.io%2Fmanaged-by%3Dshoal");
	size_t i;
	json_t *d;
	int n = 0;
	*replicas = 0;
	json_array_foreach (json_object_get(l, "items"), i, d) {
		n++;
		*replicas +=
			json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas"));
	}
	json_decref(l);
	return l ? n : -1;
}

static bool cluster_ready(struct httpc *h, const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "/apis/federation.shoal.io/v1/clusters/%s", name);
	json_t *o = get(h, path);
	size_t i;
	json_t *c;
	bool ok = false;
	json_array_foreach (json_object_get(json_object_get(o, "status"), "conditions"), i, c)
		if (!strcmp(json_string_value(json_object_get(c, "type")) ?: "", "Ready") &&
		    !strcmp(json_string_value(json_object_get(c, "status")) ?: "", "True"))
			ok = true;
	json_decref(o);
	return ok;
}

static double secs_since(int64_t t0)
{
	return (double)(bench_now_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
	int c, mi = 0;
	double timeout_s = 300;
	while ((c = getopt(argc, argv, "f:m:n:j:p:P:t:")) != -1) {
		switch (c) {
		case 'f':
			fed_url = optarg;
			break;
		case 'm':
			if (mi < NMEM)
				mem_url[mi++] = optarg;
			break;
		case 'n':
			n_fds = atoi(optarg);
			break;
		case 'j':
			threads = atoi(optarg);
			break;
		case 'p':
			mem0_pid = atoi(optarg);
			break;
		case 'P':
			fed_pid = atoi(optarg);
			break;
		case 't':
			timeout_s = atof(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: fed_bench -f FED -m A -m B -m C -p A_PID -P FED_PID "
				"[-n FDS] [-j THREADS] [-t TIMEOUT_S]\n");
			return 2;
		}
	}
	if (!fed_url || mi != NMEM || n_fds < 1 || threads < 1 || !mem0_pid || !fed_pid) {
		fprintf(stderr, "fed_bench: give -f, three -m, -p and -P\n");
		return 2;
	}
	struct httpc *h = httpc_new(fed_url, NULL), *m[NMEM];
	if (!h)
		return 1;
	for (int i = 0; i < NMEM; i++) {
		m[i] = httpc_new(mem_url[i], NULL);
		if (!m[i])
			return 1;
		char body[1024];
		snprintf(body, sizeof(body),
			 "{\"apiVersion\":\"federation.shoal.io/"
			 "v1\",\"kind\":\"Cluster\",\"metadata\":"
			 "{\"name\":\"%s\",\"labels\":{\"bench\":\"fed\"}},\"spec\":{"
			 "\"apiEndpoint\":"
			 "\"%s\"}}",
			 names[i], mem_url[i]);
		if (post(h, "/apis/federation.shoal.io/v1/clusters", body)) {
			fprintf(stderr, "fed_bench: create Cluster %s failed\n", names[i]);
			return 1;
		}
	}
	for (int i = 0; i < NMEM; i++) {
		int64_t t = bench_now_ns();
		while (!cluster_ready(h, names[i])) {
			if (secs_since(t) > 30) {
				fprintf(stderr, "fed_bench: Cluster %s not Ready\n", names[i]);
				return 1;
			}
			usleep(50000);
		}
	}
	double cpu0 = bench_cpu_seconds(fed_pid);

	/* ---- placement of n FederatedDeployments ---- */
	int64_t t0 = bench_now_ns();
	pthread_t th[64];
	int nt = threads > 64 ? 64 : threads;
	for (int i = 0; i < nt; i++)
		if (pthread_create(&th[i], NULL, creator, NULL))
			return 1;
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	double created_s = secs_since(t0);
	double placed_s = -1, members_s = -1;
	while (secs_since(t0) < timeout_s && (placed_s < 0 || members_s < 0)) {
		if (placed_s < 0 && placed(h, NULL) == n_fds)
			placed_s = secs_since(t0);
		if (members_s < 0) {
			bool all = true;
			for (int i = 0; i < NMEM && all; i++) {
				long long r;
				all = member_deps(m[i], &r) == n_fds;
			}
			if (all)
				members_s = secs_since(t0);
		}
		usleep(100000);
	}
	double cpu1 = bench_cpu_seconds(fed_pid);
	printf("fds=%d\ncreate_errors=%d\ncreated_s=%.2f\nplaced_s=%.2f\nmembers_s=%.2f\n", n_fds,
	       atomic_load(&create_errors), created_s, placed_s, members_s);
	printf("fed_cpu_place_s=%.2f\n", cpu1 - cpu0);
	fflush(stdout);
	if (placed_s < 0 || members_s < 0)
		return 1;

	/* ---- failover: member a stops ---- */
	sleep(1);
	int64_t t1 = bench_now_ns();
	if (kill(mem0_pid, SIGTERM)) {
		perror("fed_bench: stop member a");
		return 1;
	}
	double failover_s = -1, offline_s = -1;
	while (secs_since(t1) < timeout_s && failover_s < 0) {
		if (offline_s < 0 && placed(h, "a") > 0)
			offline_s = secs_since(t1);
		if (placed(h, "a") == n_fds) {
			long long rb = 0, rc = 0;
			if (member_deps(m[1], &rb) == n_fds && member_deps(m[2], &rc) == n_fds &&
			    rb + rc == 3LL * n_fds)
				failover_s = secs_since(t1);
		}
		usleep(100000);
	}
	double cpu2 = bench_cpu_seconds(fed_pid);
	printf("failover_first_s=%.2f\nfailover_s=%.2f\nfed_cpu_total_s=%.2f\n", offline_s,
	       failover_s, cpu2 - cpu0);
	httpc_free(h);
	for (int i = 0; i < NMEM; i++)
		httpc_free(m[i]);
	return failover_s < 0;
}
