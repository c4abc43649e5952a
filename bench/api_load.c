// SPDX-License-Identifier: Apache-2.0
/*
 * Load generator for bench/api: closed-loop creates against shoald or etcd, and timed lists.
 *
 *   api_load create (--unix PATH | --url URL) --clients N --seconds S --max COUNT --prefix P
 *                   [--etcd]
 *   api_load list (--unix PATH | --url URL) --runs N [--path PATH] [--expect N]
 *
 * Each client is a thread with its own libcurl handle, so its keep-alive connection is reused
 * for every request; a client sends its next create only when the previous one is answered,
 * and shoald answers a create only after its write is fsynced. With --etcd the same pods go
 * to etcd's JSON gateway as Kubernetes writes them: a transaction that puts the key only when
 * its create_revision is 0. Runs end at COUNT requests or S seconds, whichever is first.
 *
 * With --server-pid, also the server's CPU time over the run and per create: on a small
 * machine shared with the clients, the cost per request is steadier than the rate.
 *
 * Results go to stdout as key=value lines for the script to collect; latencies in ms.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "log.h"

struct cfg {
	const char *unix_path, *url, *prefix, *path, *ns;
	int clients, runs, server_pid;
	double seconds;
	long max, expect;
	bool etcd;
};

struct client {
	pthread_t tid;
	const struct cfg *cfg;
	CURL *h;
	struct bench_buf body;
	double *lat; /* seconds, one per completed request */
	long nlat, cap;
	long ok, errors;
};

static atomic_long next_idx;
static atomic_int errors_logged;
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static double deadline;

/* Clients are created first and wait here, so that all start at the same instant. */
static void gate_wait(void)
{
	pthread_mutex_lock(&gate_mu);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
}

static void gate_release(void)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = true;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

static double now_s(void)
{
	return (double)bench_now_ns() / 1e9;
}

static CURL *handle_new(const struct cfg *c, struct bench_buf *body)
{
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	if (c->unix_path)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, bench_buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	return h;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 of s[0..n) into out (room for 4*(n+2)/3+1 bytes); returns the length. */
static size_t b64(const char *s, size_t n, char *out)
{
	char *o = out;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		*o++ = b64chars[(v >> 18) & 63];
		*o++ = b64chars[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? b64chars[v & 63] : '=';
	}
	*o = '\0';
	return (size_t)(o - out);
}

/* The small Pod every create sends. */
static int pod_json(char *out, size_t cap, const char *name)
{
	return snprintf(out, cap,
			"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\"},"
			"\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\","
			"\"command\":[\"sleep\",\"1\"]}]}}",
			name);
}

/* The etcd request for one create: the object as an API server would store it (with the
 * metadata the server adds), put only if the key does not exist yet. */
static int etcd_txn_json(char *out, size_t cap, const char *ns, const char *name, long idx)
{
	char key[256], val[1024], kb[512], vb[1536];
	int kl = snprintf(key, sizeof(key), "/registry/pods/%s/%s", ns, name);
	int vl = snprintf(val, sizeof(val),
			  "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
			  "\"namespace\":\"%s\",\"uid\":\"6f1c2a4e-0000-4000-8000-%012lx\","
			  "\"generation\":1,\"creationTimestamp\":\"2026-01-01T00:00:00Z\"},"
			  "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\","
			  "\"command\":[\"sleep\",\"1\"]}]},\"status\":{\"phase\":\"Pending\"}}",
			  name, ns, (unsigned long)idx);
	b64(key, (size_t)kl, kb);
	b64(val, (size_t)vl, vb);
	return snprintf(out, cap,
			"{\"compare\":[{\"target\":\"CREATE\",\"result\":\"EQUAL\",\"key\":\"%s\","
			"\"create_revision\":\"0\"}],"
			"\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}]}",
			kb, kb, vb);
}

static void note_error(const char *what, long code, const struct bench_buf *b)
{
	if (atomic_fetch_add(&errors_logged, 1) < 5)
		log_warn("%s: HTTP %ld: %.300s", what, code, b->len ? b->p : "(no body)");
}

static void *create_client(void *arg)
{
	struct client *cl = arg;
	const struct cfg *c = cl->cfg;
	char url[512], body[4096], name[128];
	struct curl_slist *hdrs = NULL;

	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (c->etcd)
		snprintf(url, sizeof(url), "%s/v3/kv/txn", c->url);
	else
		snprintf(url, sizeof(url), "%s/api/v1/namespaces/%s/pods",
			 c->unix_path ? "http://shoal" : c->url, c->ns);
	curl_easy_setopt(cl->h, CURLOPT_URL, url);
	curl_easy_setopt(cl->h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(cl->h, CURLOPT_POST, 1L);

	gate_wait();
	for (;;) {
		long idx = atomic_fetch_add(&next_idx, 1);
		if (idx >= c->max || now_s() >= deadline)
			break;
		snprintf(name, sizeof(name), "%s-%ld", c->prefix, idx);
		int n = c->etcd ? etcd_txn_json(body, sizeof(body), c->ns, name, idx)
				: pod_json(body, sizeof(body), name);
		curl_easy_setopt(cl->h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(cl->h, CURLOPT_POSTFIELDSIZE, (long)n);
		cl->body.len = 0;
		double t0 = now_s();
		CURLcode rc = curl_easy_perform(cl->h);
		double t1 = now_s();
		long code = 0;
		curl_easy_getinfo(cl->h, CURLINFO_RESPONSE_CODE, &code);
		bool good = rc == CURLE_OK &&
			    (c->etcd ? code == 200 && cl->body.len &&
					       strstr(cl->body.p, "\"succeeded\":true")
				     : code == 201);
		if (rc != CURLE_OK) {
			if (atomic_fetch_add(&errors_logged, 1) < 5)
				log_warn("create %s: %s", name, curl_easy_strerror(rc));
		} else if (!good) {
			note_error(name, code, &cl->body);
		}
		if (!good) {
			cl->errors++;
			continue;
		}
		cl->ok++;
		if (cl->nlat == cl->cap) {
			long cap = cl->cap ? cl->cap * 2 : 4096;
			double *p = realloc(cl->lat, (size_t)cap * sizeof(*p));
			if (!p) {
				log_error("out of memory");
				break;
			}
			cl->lat = p;
			cl->cap = cap;
		}
		cl->lat[cl->nlat++] = t1 - t0;
	}
	curl_easy_setopt(cl->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, long n, double p)
{
	if (n == 0)
		return 0;
	long i = (long)(p * (double)(n - 1) + 0.5);
	return v[i];
}

static int run_create(const struct cfg *c)
{
	struct client *cls = calloc((size_t)c->clients, sizeof(*cls));
	int ret = 1, started = 0;

	if (!cls)
		return 1;
	for (int i = 0; i < c->clients; i++) {
		cls[i].cfg = c;
		cls[i].h = handle_new(c, &cls[i].body);
		if (!cls[i].h) {
			log_error("curl_easy_init failed");
			goto out;
		}
	}
	for (; started < c->clients; started++) {
		if (pthread_create(&cls[started].tid, NULL, create_client, &cls[started])) {
			log_error("pthread_create failed");
			/* The clients started so far pass the gate with nothing to do. */
			atomic_store(&next_idx, c->max);
			gate_release();
			for (int i = 0; i < started; i++)
				pthread_join(cls[i].tid, NULL);
			goto out;
		}
	}
	double cpu0 = c->server_pid ? bench_cpu_seconds(c->server_pid) : -1, run0 = 0, wait0 = 0;
	if (c->server_pid)
		bench_sched_seconds(c->server_pid, &run0, &wait0);
	double t0 = now_s();
	deadline = t0 + c->seconds;
	gate_release();
	long ok = 0, errs = 0, n = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(cls[i].tid, NULL);
		ok += cls[i].ok;
		errs += cls[i].errors;
		n += cls[i].nlat;
	}
	double el = now_s() - t0;
	double cpu = cpu0 >= 0 ? bench_cpu_seconds(c->server_pid) - cpu0 : -1;
	double *all = malloc((size_t)(n ? n : 1) * sizeof(*all));
	if (!all)
		goto out;
	n = 0;
	for (int i = 0; i < started; i++) {
		memcpy(all + n, cls[i].lat, (size_t)cls[i].nlat * sizeof(*all));
		n += cls[i].nlat;
	}
	qsort(all, (size_t)n, sizeof(*all), cmp_double);
	printf("clients=%d\nok=%ld\nerrors=%ld\nseconds=%.3f\nrate=%.1f\n"
	       "p50_ms=%.3f\np99_ms=%.3f\nmax_ms=%.3f\n",
	       c->clients, ok, errs, el, el > 0 ? (double)ok / el : 0, pct(all, n, 0.50) * 1e3,
	       pct(all, n, 0.99) * 1e3, n ? all[n - 1] * 1e3 : 0);
	double run1, wait1;
	if (cpu >= 0)
		printf("server_cpu_s=%.2f\nserver_cpu_us_per_op=%.1f\n", cpu,
		       ok ? cpu * 1e6 / (double)ok : 0);
	if (c->server_pid && bench_sched_seconds(c->server_pid, &run1, &wait1) == 0)
		printf("server_runqueue_wait_s=%.2f\n", wait1 - wait0);
	free(all);
	ret = ok > 0 && errs == 0 ? 0 : 1;
	if (errs)
		log_warn("%ld of %ld creates failed", errs, ok + errs);
out:
	for (int i = 0; i < c->clients; i++) {
		curl_easy_cleanup(cls[i].h);
		free(cls[i].body.p);
		free(cls[i].lat);
	}
	free(cls);
	return ret;
}

static int run_list(const struct cfg *c)
{
	struct bench_buf body = { 0 };
	char url[512];
	double *t = calloc((size_t)c->runs, sizeof(*t));
	CURL *h = handle_new(c, &body);
	int ret = 1;

	if (!t || !h) {
		log_error("out of memory");
		goto out;
	}
	snprintf(url, sizeof(url), "%s%s", c->unix_path ? "http://shoal" : c->url, c->path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
	for (int i = 0; i < c->runs; i++) {
		body.len = 0;
		double t0 = now_s();
		CURLcode rc = curl_easy_perform(h);
		t[i] = now_s() - t0;
		long code = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		if (rc != CURLE_OK || code != 200) {
			log_error("GET %s: %s, HTTP %ld", c->path, curl_easy_strerror(rc), code);
			goto out;
		}
	}
	/* Check the last answer outside the timing: a whole, parseable list of every pod. */
	json_error_t jerr;
	json_t *doc = json_loadb(body.p, body.len, 0, &jerr);
	size_t items = json_array_size(json_object_get(doc, "items"));
	json_decref(doc);
	if (!doc)
		log_error("list body does not parse: %s at offset %d", jerr.text, jerr.position);
	qsort(t, (size_t)c->runs, sizeof(*t), cmp_double);
	printf("runs=%d\nitems=%zu\nbytes=%zu\nmedian_ms=%.1f\nmin_ms=%.1f\nmax_ms=%.1f\n",
	       c->runs, items, body.len, pct(t, c->runs, 0.5) * 1e3, t[0] * 1e3,
	       t[c->runs - 1] * 1e3);
	if (!doc || (c->expect >= 0 && (long)items != c->expect)) {
		log_error("list returned %zu items, expected %ld", items, c->expect);
		goto out;
	}
	ret = 0;
out:
	curl_easy_cleanup(h);
	free(body.p);
	free(t);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: api_load create (--unix PATH | --url URL) --clients N --seconds S "
		   "--max COUNT --prefix P [--etcd] [--namespace NS] [--server-pid PID]\n"
		   "       api_load list (--unix PATH | --url URL) --runs N [--path PATH] "
		   "[--expect N]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "unix", required_argument, NULL, 'u' },
		{ "url", required_argument, NULL, 'U' },
		{ "clients", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "max", required_argument, NULL, 'm' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "etcd", no_argument, NULL, 'e' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "runs", required_argument, NULL, 'r' },
		{ "path", required_argument, NULL, 'P' },
		{ "expect", required_argument, NULL, 'x' },
		{ "server-pid", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cfg c = { .clients = 1, .seconds = 10, .max = 1000000, .prefix = "p",
			 .path = "/api/v1/pods", .ns = "default", .runs = 5, .expect = -1 };
	int o, ret;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *mode = argv[1];
	optind = 2;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'u':
			c.unix_path = optarg;
			break;
		case 'U':
			c.url = optarg;
			break;
		case 'c':
			c.clients = atoi(optarg);
			break;
		case 's':
			c.seconds = atof(optarg);
			break;
		case 'm':
			c.max = atol(optarg);
			break;
		case 'p':
			c.prefix = optarg;
			break;
		case 'e':
			c.etcd = true;
			break;
		case 'n':
			c.ns = optarg;
			break;
		case 'r':
			c.runs = atoi(optarg);
			break;
		case 'P':
			c.path = optarg;
			break;
		case 'x':
			c.expect = atol(optarg);
			break;
		case 'S':
			c.server_pid = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!c.unix_path == !c.url || c.clients < 1 || c.clients > 4096 || c.seconds <= 0 ||
	    c.max < 1 || c.runs < 1 || (c.etcd && !c.url)) {
		usage(stderr);
		return 2;
	}
	log_init("api_load", LOG_LVL_INFO);
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		log_error("curl_global_init failed");
		return 1;
	}
	if (strcmp(mode, "create") == 0) {
		ret = run_create(&c);
	} else if (strcmp(mode, "list") == 0) {
		ret = run_list(&c);
	} else {
		usage(stderr);
		ret = 2;
	}
	curl_global_cleanup();
	return ret;
}
