// SPDX-License-Identifier: Apache-2.0
/*
 * Durable store transactions per second with 1, 16 and 64 concurrent writers, each writing
 * small values (200 bytes) with store_txn and waiting for its acknowledgement, as shoald's
 * request threads do. Group commit is what makes the 64-writer figure large: it also prints
 * how many transactions shared each commit (fsync).
 *
 * Usage: store_bench [URI] [SECONDS]   (default: lmdb:<a new directory under /tmp>, 3 s)
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

struct writer {
	struct store *st;
	int id;
	long txns, errors;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char key[64], value[200];
	memset(value, 'v', sizeof(value));
	for (long i = 0; !atomic_load(&stop); i++) {
		snprintf(key, sizeof(key), "/bench/w%d/k%ld", w->id, i % 100);
		struct store_op op = { STORE_PUT, key, value, sizeof(value), STORE_ANY };
		if (store_txn(w->st, &op, 1, NULL, NULL) == 0)
			w->txns++;
		else
			w->errors++;
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
	double secs = argc > 2 ? atof(argv[2]) : 3;
	int rc = 0;

	if (argc > 1) {
		uri = strdup(argv[1]);
	} else {
		if (!mkdtemp(tmpl)) {
			perror("mkdtemp");
			return 1;
		}
		dir = tmpl;
		if (asprintf(&uri, "lmdb:%s", dir) < 0)
			return 1;
	}
	struct store_opts opts = { .compact_interval_ms = 1000, .history_revisions = 10000,
				   .history_seconds = 1 };
	struct store *st = store_open(uri, &opts);
	if (!st) {
		fprintf(stderr, "store_open %s: %s\n", uri, strerror(errno));
		return 1;
	}
	printf("%-8s %12s %10s %12s %14s\n", "writers", "txn/s", "commits", "txn/commit",
	       "commit_avg_us");
	for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++) {
		int n = threads[t];
		struct writer *w = calloc((size_t)n, sizeof(*w));
		pthread_t *thr = calloc((size_t)n, sizeof(*thr));
		struct store_stats s0, s1;
		if (!w || !thr)
			return 1;
		store_get_stats(st, &s0);
		atomic_store(&stop, 0);
		double t0 = now_s();
		for (int i = 0; i < n; i++) {
			w[i] = (struct writer){ st, i, 0, 0 };
			pthread_create(&thr[i], NULL, writer_main, &w[i]);
		}
		usleep((useconds_t)(secs * 1e6));
		atomic_store(&stop, 1);
		long txns = 0, errors = 0;
		for (int i = 0; i < n; i++) {
			pthread_join(thr[i], NULL);
			txns += w[i].txns;
			errors += w[i].errors;
		}
		double el = now_s() - t0;
		store_get_stats(st, &s1);
		uint64_t commits = s1.commits - s0.commits;
		double fs = s1.fsync_sum_us - s0.fsync_sum_us;
		printf("%-8d %12.0f %10llu %12.1f %14.0f\n", n, (double)txns / el,
		       (unsigned long long)commits, commits ? (double)txns / (double)commits : 0,
		       commits ? fs / (double)commits : 0);
		if (errors) {
			fprintf(stderr, "%ld failed transactions\n", errors);
			rc = 1;
		}
		free(w);
		free(thr);
	}
	store_close(st);
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(uri);
	return rc;
}
