// SPDX-License-Identifier: Apache-2.0
/*
 * Lab figures for bench/e2e, against a running lab (scripts/lab: shoald and real agents in
 * network namespaces):
 *
 *   e2e_lab --unix PATH --nodes N1,N2,... [--pin-root DIR] [--pods P] [--pod-rate R]
 *           [--writes W] [--write-rate R] [--namespace NS] [--skip-pods] [--skip-maps]
 *
 * Pod start latency: P pods (one container, a sleeping process, no probes) are created at
 * --pod-rate per second and left to the scheduler; a pod watch started before the first
 * create notes when each pod is first seen Running with its Ready condition True. Latency is
 * from the POST being sent to that event's arrival: what Kubernetes' pod startup SLO measures
 * (creation to running, observed through a watch; p99 <= 5 s there, no image pulls here).
 *
 * Propagation to the nodes' BPF maps: a selectorless Service with one EndpointSlice; each
 * write sets the slice to two, three, one, two... ready endpoints, and each node's pinned service
 * map (PIN_ROOT/<node>/shoal_svc_v4, key ClusterIP:80/TCP) is read every 200 us until its
 * n_ready equals the new count. Delay per (write, node) from the write's HTTP
 * acknowledgement; per write, the slowest node. Writes are sequential: the next is sent once
 * the previous one is in every node (or after 5 s), and no sooner than 1/rate after it.
 *
 * Results go to stdout as key=value lines; times in ms.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "log.h"
#include "shoal_abi.h"

#define MAX_NODES	64
#define READY_TIMEOUT_S 120 /* for every pod to be Running and Ready */
#define APPLY_TIMEOUT_S 5   /* for a write to reach every node's map */

struct cfg {
	const char *unix_path, *pin_root, *ns;
	char *nodes[MAX_NODES];
	int nnodes, pods, writes;
	double pod_rate, write_rate;
	bool skip_pods, skip_maps;
};
static struct cfg cfg;

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(const int64_t *v, size_t n, double p)
{
	if (!n)
		return -1;
	return (double)v[(size_t)(p * (double)(n - 1) + 0.5)] / 1e6;
}

/* One request; the answer's body in *out (caller frees), its status in *code. */
static int request(const char *method, const char *path, const char *ctype, const char *body,
		   struct bench_buf *out, long *code)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char url[512], ct[96];
	if (!h)
		return -ENOMEM;
	snprintf(url, sizeof(url), "http://shoal%s", path);
	snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json");
	hdrs = curl_slist_append(hdrs, ct);
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, cfg.unix_path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, bench_buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(h);
	*code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, code);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	if (rc != CURLE_OK) {
		log_error("%s %s: %s", method, path, curl_easy_strerror(rc));
		return -EIO;
	}
	return 0;
}

/* A request that must succeed (2xx, or 409 when allow_exists). */
static int must(const char *method, const char *path, const char *ctype, const char *body,
		bool allow_exists, json_t **answer)
{
	struct bench_buf b = { 0 };
	long code;
	int err = request(method, path, ctype, body, &b, &code);
	if (!err && !(code >= 200 && code < 300) && !(allow_exists && code == 409)) {
		log_error("%s %s: HTTP %ld: %.400s", method, path, code, b.p ? b.p : "");
		err = -EIO;
	}
	if (!err && answer) {
		*answer = b.p ? json_loadb(b.p, b.len, 0, NULL) : NULL;
		if (!*answer) {
			log_error("%s %s: the answer is not JSON", method, path);
			err = -EINVAL;
		}
	}
	free(b.p);
	return err;
}

/* ---- pod start latency ------------------------------------------------------------------ */

static int64_t *pod_sent, *pod_ready, *pod_running;
static atomic_int pods_ready;
static atomic_bool watch_stop;
static struct bench_buf wline;

static void on_pod_event(const char *l, size_t n, int64_t t)
{
	json_t *ev = json_loadb(l, n, 0, NULL);
	if (!ev)
		return;
	json_t *obj = json_object_get(ev, "object");
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *name =
		json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
	int idx;
	if (!type || !name || strcmp(type, "BOOKMARK") == 0 ||
	    sscanf(name, "start-%d", &idx) != 1 || idx < 0 || idx >= cfg.pods)
		goto out;
	json_t *st = json_object_get(obj, "status");
	const char *phase = json_string_value(json_object_get(st, "phase"));
	if (!phase || strcmp(phase, "Running") != 0)
		goto out;
	if (!pod_running[idx])
		pod_running[idx] = t;
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(st, "conditions"), i, c) {
		const char *ct = json_string_value(json_object_get(c, "type"));
		const char *cs = json_string_value(json_object_get(c, "status"));
		if (ct && cs && strcmp(ct, "Ready") == 0 && strcmp(cs, "True") == 0 &&
		    !pod_ready[idx]) {
			pod_ready[idx] = t;
			atomic_fetch_add(&pods_ready, 1);
		}
	}
out:
	json_decref(ev);
}

static size_t watch_write(char *p, size_t size, size_t nmemb, void *arg)
{
	size_t n = size * nmemb, len = n;
	int64_t t = bench_now_ns();
	(void)arg;
	if (atomic_load(&watch_stop))
		return 0;
	while (len) {
		const char *nl = memchr(p, '\n', len);
		size_t k = nl ? (size_t)(nl - p) : len;
		if (bench_buf_write(p, 1, k, &wline) != k)
			return 0;
		if (!nl)
			break;
		on_pod_event(wline.p, wline.len, t);
		wline.len = 0;
		p += k + 1;
		len -= k + 1;
	}
	return n;
}

static int watch_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)arg, (void)a, (void)b, (void)c, (void)d;
	return atomic_load(&watch_stop) ? 1 : 0;
}

static char watch_rv[32];
static atomic_int watch_code;

static void *watch_main(void *arg)
{
	char url[512];
	CURL *h = curl_easy_init();
	(void)arg;
	if (!h)
		return NULL;
	snprintf(url, sizeof(url),
		 "http://shoal/api/v1/namespaces/%s/pods?watch=1&resourceVersion=%s"
		 "&allowWatchBookmarks=true",
		 cfg.ns, watch_rv);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, cfg.unix_path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, watch_progress);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(h);
	long code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	atomic_store(&watch_code, (int)code);
	if (!atomic_load(&watch_stop))
		log_error("pod watch ended: %s, HTTP %ld", curl_easy_strerror(rc), code);
	curl_easy_cleanup(h);
	return NULL;
}

static int pod_start(void)
{
	char path[256], body[1024];
	json_t *list = NULL;
	pthread_t wt;
	int ret = -EIO;

	pod_sent = calloc((size_t)cfg.pods, sizeof(int64_t));
	pod_ready = calloc((size_t)cfg.pods, sizeof(int64_t));
	pod_running = calloc((size_t)cfg.pods, sizeof(int64_t));
	if (!pod_sent || !pod_ready || !pod_running)
		return -ENOMEM;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?limit=1", cfg.ns);
	if (must("GET", path, NULL, NULL, false, &list))
		return -EIO;
	snprintf(watch_rv, sizeof(watch_rv), "%s",
		 json_string_value(
			 json_object_get(json_object_get(list, "metadata"), "resourceVersion"))
			 ?: "0");
	json_decref(list);
	if (pthread_create(&wt, NULL, watch_main, NULL))
		return -EAGAIN;
	usleep(200 * 1000); /* the watch is open before the first create */
	if (atomic_load(&watch_code) && atomic_load(&watch_code) != 200) {
		log_error("pod watch refused: HTTP %d", atomic_load(&watch_code));
		goto out;
	}

	int64_t t0 = bench_now_ns();
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods", cfg.ns);
	for (int i = 0; i < cfg.pods; i++) {
		int64_t due = t0 + (int64_t)((double)i * 1e9 / cfg.pod_rate);
		int64_t now = bench_now_ns();
		if (due > now)
			usleep((useconds_t)((due - now) / 1000));
		snprintf(body, sizeof(body),
			 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":"
			 "\"start-%d\",\"labels\":{\"bench\":\"e2e-start\"}},\"spec\":{"
			 "\"terminationGracePeriodSeconds\":1,\"containers\":[{\"name\":\"c\","
			 "\"image\":\"local\",\"command\":[\"/bin/sleep\",\"3600\"],"
			 "\"resources\":{\"requests\":{\"cpu\":\"10m\",\"memory\":\"8Mi\"}}}]}}",
			 i);
		pod_sent[i] = bench_now_ns();
		if (must("POST", path, NULL, body, false, NULL))
			goto out;
	}
	log_info("%d pods created in %.1f s; waiting for them to be Running and Ready", cfg.pods,
		 (double)(bench_now_ns() - t0) / 1e9);
	while (atomic_load(&pods_ready) < cfg.pods &&
	       bench_now_ns() - t0 < (int64_t)READY_TIMEOUT_S * 1000000000)
		usleep(20 * 1000);

	int64_t *lat = calloc((size_t)cfg.pods, sizeof(int64_t));
	int64_t *run = calloc((size_t)cfg.pods, sizeof(int64_t));
	size_t n = 0, nr = 0;
	if (!lat || !run) {
		free(lat);
		free(run);
		ret = -ENOMEM;
		goto out;
	}
	atomic_store(&watch_stop, true);
	pthread_join(wt, NULL);
	for (int i = 0; i < cfg.pods; i++) {
		if (pod_ready[i])
			lat[n++] = pod_ready[i] - pod_sent[i];
		if (pod_running[i])
			run[nr++] = pod_running[i] - pod_sent[i];
	}
	qsort(lat, n, sizeof(int64_t), cmp_i64);
	qsort(run, nr, sizeof(int64_t), cmp_i64);
	printf("pods=%d\npod_rate=%.1f\npods_ready=%zu\nstart_p50_ms=%.1f\nstart_p99_ms=%.1f\n"
	       "start_max_ms=%.1f\nrunning_p50_ms=%.1f\nrunning_p99_ms=%.1f\n",
	       cfg.pods, cfg.pod_rate, n, pct_ms(lat, n, 0.5), pct_ms(lat, n, 0.99),
	       n ? (double)lat[n - 1] / 1e6 : -1, pct_ms(run, nr, 0.5), pct_ms(run, nr, 0.99));
	fflush(stdout);
	free(lat);
	free(run);
	if (n < (size_t)cfg.pods)
		log_error("only %zu of %d pods were Running and Ready after %d s", n, cfg.pods,
			  READY_TIMEOUT_S);
	return n == (size_t)cfg.pods ? 0 : -ETIMEDOUT;
out:
	atomic_store(&watch_stop, true);
	pthread_join(wt, NULL);
	return ret;
}

/* ---- propagation to the nodes' maps -------------------------------------------------- */

static int slice_body(char *b, size_t cap, int count, int seq)
{
	int n = snprintf(b, cap,
			 "{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\","
			 "\"metadata\":{\"name\":\"bench-prop-a\",\"labels\":{"
			 "\"kubernetes.io/service-name\":\"bench-prop\","
			 "\"endpointslice.kubernetes.io/managed-by\":\"bench.shoal.io\"},"
			 "\"annotations\":{\"bench.shoal.io/seq\":\"%d\"}},"
			 "\"addressType\":\"IPv4\",\"ports\":[{\"name\":\"http\",\"port\":8080,"
			 "\"protocol\":\"TCP\"}],\"endpoints\":[",
			 seq);
	for (int i = 0; i < count; i++)
		n += snprintf(b + n, cap - (size_t)n,
			      "%s{\"addresses\":[\"10.100.1.%d\"],\"conditions\":{\"ready\":true}}",
			      i ? "," : "", 240 + i);
	n += snprintf(b + n, cap - (size_t)n, "]}");
	return (size_t)n < cap ? 0 : -E2BIG;
}

/* n_ready of the service in node i's map, or -1 when the entry is not there. */
static int map_ready(int fd, const struct shoal_svc_key_v4 *key)
{
	struct shoal_svc_v4 v;
	if (bpf_map_lookup_elem(fd, key, &v))
		return -1;
	return v.n_ready;
}

static int map_propagation(void)
{
	char path[256], body[2048];
	json_t *svc = NULL;
	int fds[MAX_NODES], ret = -EIO;
	struct shoal_svc_key_v4 key = { .port = htons(80), .proto = IPPROTO_TCP };
	int64_t *per_write = NULL, *all = NULL;

	for (int i = 0; i < cfg.nnodes; i++)
		fds[i] = -1;
	for (int i = 0; i < cfg.nnodes; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", cfg.pin_root, cfg.nodes[i], SHOAL_MAP_SVC);
		fds[i] = bpf_obj_get(path);
		if (fds[i] < 0) {
			log_error("open pinned map %s: %s", path, strerror(errno));
			goto out;
		}
	}
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services", cfg.ns);
	if (must("POST", path, NULL,
		 "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"bench-"
		 "prop\"},"
		 "\"spec\":{\"ports\":[{\"name\":\"http\",\"port\":80,\"targetPort\":8080}]}}",
		 false, &svc))
		goto out;
	const char *ip =
		json_string_value(json_object_get(json_object_get(svc, "spec"), "clusterIP"));
	if (!ip || inet_pton(AF_INET, ip, &key.addr) != 1) {
		log_error("the Service got no IPv4 ClusterIP");
		goto out;
	}
	snprintf(path, sizeof(path), "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices",
		 cfg.ns);
	if (slice_body(body, sizeof(body), 1, 0) || must("POST", path, NULL, body, false, NULL))
		goto out;
	/* every node has the service with one endpoint before the first measured write */
	int64_t t0 = bench_now_ns();
	for (;;) {
		int ok = 0;
		for (int i = 0; i < cfg.nnodes; i++)
			ok += map_ready(fds[i], &key) == 1;
		if (ok == cfg.nnodes)
			break;
		if (bench_now_ns() - t0 > 30 * 1000000000LL) {
			log_error("service %s:80 did not reach every node's map within 30 s "
				  "(%d of %d have it with one endpoint)",
				  ip, ok, cfg.nnodes);
			goto out;
		}
		usleep(10 * 1000);
	}
	log_info("service %s:80 is in every node's map after %.2f s", ip,
		 (double)(bench_now_ns() - t0) / 1e9);

	per_write = calloc((size_t)cfg.writes, sizeof(int64_t));
	all = calloc((size_t)cfg.writes * (size_t)cfg.nnodes, sizeof(int64_t));
	if (!per_write || !all) {
		ret = -ENOMEM;
		goto out;
	}
	size_t nw = 0, nall = 0;
	long missing = 0;
	snprintf(path, sizeof(path),
		 "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices/bench-prop-a", cfg.ns);
	int64_t next = bench_now_ns();
	for (int w = 0; w < cfg.writes; w++) {
		/* 2, 3, 1, 2, ...: differs from the last two, so a write that never landed
		 * cannot make the next one look done */
		int want = (w + 1) % 3 + 1;
		int64_t now = bench_now_ns();
		if (next > now)
			usleep((useconds_t)((next - now) / 1000));
		next = bench_now_ns() + (int64_t)(1e9 / cfg.write_rate);
		if (slice_body(body, sizeof(body), want, w + 1) ||
		    must("PUT", path, NULL, body, false, NULL))
			goto out;
		int64_t ack = bench_now_ns(), seen[MAX_NODES] = { 0 };
		int left = cfg.nnodes;
		while (left && bench_now_ns() - ack < (int64_t)APPLY_TIMEOUT_S * 1000000000) {
			for (int i = 0; i < cfg.nnodes; i++)
				if (!seen[i] && map_ready(fds[i], &key) == want) {
					seen[i] = bench_now_ns();
					left--;
				}
			if (left)
				usleep(200);
		}
		int64_t worst = 0;
		for (int i = 0; i < cfg.nnodes; i++) {
			if (!seen[i]) {
				missing++;
				continue;
			}
			all[nall++] = seen[i] - ack;
			worst = seen[i] - ack > worst ? seen[i] - ack : worst;
		}
		if (!left)
			per_write[nw++] = worst;
	}
	qsort(per_write, nw, sizeof(int64_t), cmp_i64);
	qsort(all, nall, sizeof(int64_t), cmp_i64);
	printf("map_writes=%d\nmap_nodes=%d\nmap_complete=%zu\nmap_missing=%ld\n"
	       "map_all_p50_ms=%.3f\nmap_all_p99_ms=%.3f\nmap_all_max_ms=%.3f\n"
	       "map_delivery_p50_ms=%.3f\nmap_delivery_p99_ms=%.3f\n",
	       cfg.writes, cfg.nnodes, nw, missing, pct_ms(per_write, nw, 0.5),
	       pct_ms(per_write, nw, 0.99), nw ? (double)per_write[nw - 1] / 1e6 : -1,
	       pct_ms(all, nall, 0.5), pct_ms(all, nall, 0.99));
	fflush(stdout);
	ret = missing ? -ETIMEDOUT : 0;
	if (missing)
		log_error("%ld (write, node) pairs did not reach the node's map within %d s",
			  missing, APPLY_TIMEOUT_S);
out:
	for (int i = 0; i < cfg.nnodes; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	json_decref(svc);
	free(per_write);
	free(all);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: e2e_lab --unix PATH --nodes N1,N2,... [--pin-root DIR] [--pods P] "
		   "[--pod-rate R]\n"
		   "               [--writes W] [--write-rate R] [--namespace NS] [--skip-pods] "
		   "[--skip-maps]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "unix", required_argument, NULL, 'u' },
		{ "nodes", required_argument, NULL, 'n' },
		{ "pin-root", required_argument, NULL, 'P' },
		{ "pods", required_argument, NULL, 'p' },
		{ "pod-rate", required_argument, NULL, 'r' },
		{ "writes", required_argument, NULL, 'w' },
		{ "write-rate", required_argument, NULL, 'R' },
		{ "namespace", required_argument, NULL, 'N' },
		{ "skip-pods", no_argument, NULL, 'a' },
		{ "skip-maps", no_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *nodes = NULL, body[256], *save = NULL;
	int o, ret = 0;

	cfg = (struct cfg){ .pin_root = "/sys/fs/bpf/shoal",
			    .ns = "bench-e2e",
			    .pods = 100,
			    .pod_rate = 20,
			    .writes = 50,
			    .write_rate = 5 };
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'u':
			cfg.unix_path = optarg;
			break;
		case 'n':
			nodes = optarg;
			break;
		case 'P':
			cfg.pin_root = optarg;
			break;
		case 'p':
			cfg.pods = atoi(optarg);
			break;
		case 'r':
			cfg.pod_rate = atof(optarg);
			break;
		case 'w':
			cfg.writes = atoi(optarg);
			break;
		case 'R':
			cfg.write_rate = atof(optarg);
			break;
		case 'N':
			cfg.ns = optarg;
			break;
		case 'a':
			cfg.skip_pods = true;
			break;
		case 'b':
			cfg.skip_maps = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	for (char *t = nodes ? strtok_r(nodes, ",", &save) : NULL; t && cfg.nnodes < MAX_NODES;
	     t = strtok_r(NULL, ",", &save))
		cfg.nodes[cfg.nnodes++] = t;
	if (!cfg.unix_path || !cfg.nnodes || cfg.pods < 1 || cfg.pods > 10000 ||
	    cfg.pod_rate <= 0 || cfg.writes < 1 || cfg.writes > 100000 || cfg.write_rate <= 0) {
		usage(stderr);
		return 2;
	}
	log_init("e2e_lab", LOG_LVL_INFO);
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		log_error("curl_global_init failed");
		return 1;
	}
	snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"%s\"}}", cfg.ns);
	if (must("POST", "/api/v1/namespaces", NULL, body, true, NULL)) {
		ret = 1;
		goto out;
	}
	if (!cfg.skip_pods && pod_start())
		ret = 1;
	if (!cfg.skip_maps && map_propagation())
		ret = 1;
out:
	free(pod_sent);
	free(pod_ready);
	free(pod_running);
	free(wline.p);
	curl_global_cleanup();
	return ret;
}
