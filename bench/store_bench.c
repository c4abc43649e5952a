// SPDX-License-Identifier: Apache-2.0
/*
 * The store's figures, on a fresh store (default: lmdb:<a new directory under /tmp>):
 *  1. durable transactions per second with 1, 16 and 64 concurrent writers, each writing
 *     small values (200 bytes) with store_txn and waiting for its acknowledgement as shoald's
 *     request threads do, and how many transactions shared each commit (fsync);
 *  2. write latency (p99, max) of 16 writers, alone and while a large history is compacted:
 *     compaction runs in bounded chunks and must not stall writers for long;
 *  3. one range over 100,000 keys of 1 KiB (a list of every pod).
 *
 * Usage: store_bench [-q] [-j FILE.json] [URI]
 *   -q  quick: shorter runs and 20,000 keys, well under a minute
 *   -j  also write the figures as JSON lines "name value unit" for bench/store to collect
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static atomic_int stop;
static FILE *figures;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void figure(const char *name, double value, const char *unit)
{
	printf("  %-34s %12.1f %s\n", name, value, unit);
	if (figures)
		fprintf(figures, "%s %.3f %s\n", name, value, unit);
}

struct writer {
	struct store *st;
	int id;
	long txns, errors;
	double *lat; /* seconds per txn, when recording */
	size_t nlat, cap;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char key[64], value[200];
	memset(value, 'v', sizeof(value));
	for (long i = 0; !atomic_load(&stop); i++) {
		snprintf(key, sizeof(key), "/bench/w%d/k%ld", w->id, i % 100);
		struct store_op op = { STORE_PUT, key, value, sizeof(value), STORE_ANY };
		double t0 = now_s();
		if (store_txn(w->st, &op, 1, NULL, NULL) == 0)
			w->txns++;
		else
			w->errors++;
		if (w->lat && w->nlat < w->cap)
			w->lat[w->nlat++] = now_s() - t0;
	}
	return NULL;
}

/* Runs n writers for secs (while side() runs, when given); fills latencies when lat_cap. */
static int run_writers(struct store *st, int n, double secs, size_t lat_cap, double *txn_s,
		       double **lat, size_t *nlat, void *(*side)(void *), void *side_arg)
{
	struct writer *w = calloc((size_t)n, sizeof(*w));
	pthread_t *thr = calloc((size_t)n, sizeof(*thr)), side_thr;
	long txns = 0, errors = 0;
	if (!w || !thr)
		return -ENOMEM;
	atomic_store(&stop, 0);
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		w[i] = (struct writer){ .st = st, .id = i, .cap = lat_cap };
		if (lat_cap && !(w[i].lat = malloc(lat_cap * sizeof(double))))
			return -ENOMEM;
		pthread_create(&thr[i], NULL, writer_main, &w[i]);
	}
	if (side) {
		pthread_create(&side_thr, NULL, side, side_arg);
		pthread_join(side_thr, NULL);
	} else {
		usleep((useconds_t)(secs * 1e6));
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < n; i++) {
		pthread_join(thr[i], NULL);
		txns += w[i].txns;
		errors += w[i].errors;
	}
	*txn_s = (double)txns / (now_s() - t0);
	if (lat) {
		size_t total = 0;
		for (int i = 0; i < n; i++)
			total += w[i].nlat;
		*lat = malloc((total ? total : 1) * sizeof(double));
		*nlat = 0;
		for (int i = 0; i < n; i++) {
			memcpy(*lat + *nlat, w[i].lat, w[i].nlat * sizeof(double));
			*nlat += w[i].nlat;
		}
	}
	for (int i = 0; i < n; i++)
		free(w[i].lat);
	free(w);
	free(thr);
	if (errors)
		fprintf(stderr, "%ld failed transactions\n", errors);
	return errors ? -EIO : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	size_t i = (size_t)(p * (double)(n - 1));
	return v[i];
}

struct bulk {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long pending, failed;
};

static void bulk_done(void *arg, int err, int64_t rev, struct store_result *res, size_t n)
{
	struct bulk *b = arg;
	(void)rev;
	(void)res;
	(void)n;
	pthread_mutex_lock(&b->mu);
	if (err)
		b->failed++;
	if (--b->pending < 4096)
		pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

/* Writes n transactions of one key each (key i % nkeys, vlen bytes), many in flight. */
static int bulk_write(struct store *st, long n, long nkeys, size_t vlen)
{
	struct bulk b = { .pending = 0 };
	char key[64], *value = malloc(vlen);
	if (!value)
		return -ENOMEM;
	memset(value, 'x', vlen);
	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	for (long i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "/registry/pods/ns%ld/pod-%08ld", (i % nkeys) % 50,
			 i % nkeys);
		struct store_op op = { STORE_PUT, key, value, vlen, STORE_ANY };
		pthread_mutex_lock(&b.mu);
		while (b.pending >= 8192)
			pthread_cond_wait(&b.cv, &b.mu);
		b.pending++;
		pthread_mutex_unlock(&b.mu);
		if (store_txn_async(st, &op, 1, bulk_done, &b)) {
			pthread_mutex_lock(&b.mu);
			b.pending--;
			b.failed++;
			pthread_mutex_unlock(&b.mu);
		}
	}
	pthread_mutex_lock(&b.mu);
	while (b.pending)
		pthread_cond_wait(&b.cv, &b.mu);
	pthread_mutex_unlock(&b.mu);
	free(value);
	return b.failed ? -EIO : 0;
}

struct compact_arg {
	struct store *st;
	int64_t rev;
	double secs;
	int err;
};

static void *compact_side(void *arg)
{
	struct compact_arg *c = arg;
	double t0 = now_s();
	c->err = store_compact(c->st, c->rev);
	c->secs = now_s() - t0;
	return NULL;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(int argc, char **argv)
{
	static const int threads[] = { 1, 16, 64 };
	char tmpl[] = "/tmp/shoal-store-bench-XXXXXX", *uri = NULL, *dir = NULL;
	int quick = 0, opt, rc = 0;
	const char *json = NULL;

	while ((opt = getopt(argc, argv, "qj:")) != -1) {
		if (opt == 'q') {
			quick = 1;
		} else if (opt == 'j') {
			json = optarg;
		} else {
			fprintf(stderr, "usage: %s [-q] [-j FILE] [URI]\n", argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		uri = strdup(argv[optind]);
	} else {
		if (!mkdtemp(tmpl)) {
			perror("mkdtemp");
			return 1;
		}
		dir = tmpl;
		if (asprintf(&uri, "lmdb:%s", dir) < 0)
			return 1;
	}
	if (json && !(figures = fopen(json, "w"))) {
		perror(json);
		return 1;
	}
	double secs = quick ? 1.5 : 4;
	long hist = quick ? 50000 : 300000, nkeys = quick ? 20000 : 100000;

	struct store_opts opts = { .compact_interval_ms = -1 };
	struct store *st = store_open(uri, &opts);
	if (!st) {
		fprintf(stderr, "store_open %s: %s\n", uri, strerror(errno));
		return 1;
	}

	printf("durable transactions (200-byte values), %.1f s each:\n", secs);
	for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++) {
		struct store_stats s0, s1;
		double txn_s;
		char name[64];
		store_get_stats(st, &s0);
		if (run_writers(st, threads[t], secs, 0, &txn_s, NULL, NULL, NULL, NULL))
			rc = 1;
		store_get_stats(st, &s1);
		uint64_t commits = s1.commits - s0.commits, txns = s1.txns - s0.txns;
		snprintf(name, sizeof(name), "txn_per_s_%d_writers", threads[t]);
		figure(name, txn_s, "txn/s");
		snprintf(name, sizeof(name), "txn_per_commit_%d_writers", threads[t]);
		figure(name, commits ? (double)txns / (double)commits : 0, "txn");
		snprintf(name, sizeof(name), "commit_avg_us_%d_writers", threads[t]);
		figure(name, commits ? (s1.fsync_sum_us - s0.fsync_sum_us) / (double)commits : 0,
		       "us");
	}

	printf("16 writers, alone and during the compaction of %ld revisions:\n", hist);
	double t0 = now_s();
	if (bulk_write(st, hist, nkeys, 200)) {
		fprintf(stderr, "writing history failed\n");
		rc = 1;
	}
	printf("  (history written at %.0f txn/s with many in flight)\n",
	       (double)hist / (now_s() - t0));
	double *lat = NULL, txn_s;
	size_t nlat = 0;
	if (run_writers(st, 16, secs, 1 << 20, &txn_s, &lat, &nlat, NULL, NULL))
		rc = 1;
	figure("write_p99_ms_no_compaction", pct(lat, nlat, 0.99) * 1e3, "ms");
	figure("write_max_ms_no_compaction", pct(lat, nlat, 1.0) * 1e3, "ms");
	free(lat);
	struct compact_arg ca = { .st = st, .rev = store_revision(st) - 1000 };
	if (run_writers(st, 16, 0, 1 << 20, &txn_s, &lat, &nlat, compact_side, &ca) || ca.err) {
		fprintf(stderr, "compaction: %s\n", shoal_strerror(ca.err));
		rc = 1;
	}
	figure("compaction_s", ca.secs, "s");
	figure("write_txn_per_s_during_compaction", txn_s, "txn/s");
	figure("write_p99_ms_during_compaction", pct(lat, nlat, 0.99) * 1e3, "ms");
	figure("write_max_ms_during_compaction", pct(lat, nlat, 1.0) * 1e3, "ms");
	free(lat);

	printf("range over %ld keys of 1 KiB:\n", nkeys);
	if (bulk_write(st, nkeys, nkeys, 1024))
		rc = 1;
	struct store_range_req req = { .prefix = "/registry/pods/" };
	struct store_range_resp resp;
	t0 = now_s();
	int err = store_range(st, &req, &resp);
	double range_s = now_s() - t0;
	if (err || resp.n != (size_t)nkeys) {
		fprintf(stderr, "range: %s, %zu keys\n", shoal_strerror(err), resp.n);
		rc = 1;
	}
	store_range_resp_free(&resp);
	figure(quick ? "range_20k_ms" : "range_100k_ms", range_s * 1e3, "ms");
	req.count_only = 1;
	t0 = now_s();
	err = store_range(st, &req, &resp);
	figure(quick ? "count_20k_ms" : "count_100k_ms", (now_s() - t0) * 1e3, "ms");
	store_range_resp_free(&resp);
	struct store_stats stats;
	store_get_stats(st, &stats);
	figure("store_size_mib", (double)stats.size_bytes / (1 << 20), "MiB");

	store_close(st);
	if (figures)
		fclose(figures);
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(uri);
	return rc;
}
