// SPDX-License-Identifier: Apache-2.0
/*
 * The store conformance suite on the LMDB backend (each test on a fresh lmdb:<tmpdir>), and
 * what only LMDB has: its directory, its size bound, its background compaction.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shoal_test.h"
#include "store.h"
#include "store_conformance.h"

static char *lmdb_new_uri(void)
{
	char tmpl[] = "/tmp/shoal-store-test-XXXXXX";
	char *uri;
	if (!mkdtemp(tmpl))
		return NULL;
	if (asprintf(&uri, "lmdb:%s", tmpl) < 0)
		return NULL;
	return uri;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) && errno != ENOENT)
		print_message("# removing %s: %s\n", dir, strerror(errno));
}

static void lmdb_remove_uri(const char *uri)
{
	rm_tree(uri + strlen("lmdb:"));
}

static const struct store_conformance_backend lmdb_backend = { lmdb_new_uri, lmdb_remove_uri };

static int setup(void **state)
{
	(void)state;
	store_conformance_use(&lmdb_backend);
	return 0;
}

static void test_store_lmdb_unknown_scheme_is_einval(void **state)
{
	(void)state;
	errno = 0;
	assert_null(store_open("nosuch:/tmp/x", NULL));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(store_open("/tmp/no-scheme", NULL));
	assert_int_equal(errno, EINVAL);
}

static void test_store_lmdb_creates_missing_directories(void **state)
{
	(void)state;
	char *uri = lmdb_new_uri(), *deep;
	assert_non_null(uri);
	assert_true(asprintf(&deep, "%s/a/b", uri) > 0);
	struct store *st = store_open(deep, NULL);
	assert_non_null(st);
	struct store_op op = { STORE_PUT, "/k", "v", 1, STORE_ANY };
	assert_int_equal(store_txn(st, &op, 1, NULL, NULL), 0);
	store_close(st);
	lmdb_remove_uri(uri);
	free(deep);
	free(uri);
}

static void test_store_lmdb_unwritable_directory_fails_cleanly(void **state)
{
	(void)state;
	char *uri = lmdb_new_uri();
	assert_non_null(uri);
	const char *dir = uri + 5;
	assert_int_equal(chmod(dir, 0555), 0);
	/* In a child that gives up root (root writes anywhere), so that the mode binds. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgid(65534) || setuid(65534)))
			_exit(10);
		errno = 0;
		struct store *st = store_open(uri, NULL);
		if (st)
			_exit(11);
		_exit(errno == EACCES ? 0 : 12);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* A path through a regular file cannot be a store either. */
	char *file_uri;
	assert_true(asprintf(&file_uri, "%s/file/store", uri) > 0);
	char *file = file_uri + 5;
	*strrchr(file, '/') = 0;
	assert_int_equal(chmod(dir, 0755), 0);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	file[strlen(file)] = '/';
	errno = 0;
	assert_null(store_open(file_uri, NULL));
	assert_int_equal(errno, ENOTDIR);
	free(file_uri);
	lmdb_remove_uri(uri);
	free(uri);
}

static void test_store_lmdb_removed_directory_fails_writes(void **state)
{
	(void)state;
	char *uri = lmdb_new_uri();
	assert_non_null(uri);
	struct store *st = store_open(uri, NULL);
	assert_non_null(st);
	struct store_op op = { STORE_PUT, "/k", "v", 1, STORE_ANY };
	assert_int_equal(store_txn(st, &op, 1, NULL, NULL), 0);
	int64_t rev = store_revision(st);
	lmdb_remove_uri(uri);
	/* Writing on into an unlinked file would lose every write: refuse instead. */
	assert_int_equal(store_txn(st, &op, 1, NULL, NULL), -ENOENT);
	assert_int_equal(store_revision(st), rev);
	store_close(st);
	free(uri);
}

static void test_store_lmdb_full_map_is_enospc_and_writes_nothing(void **state)
{
	(void)state;
	char *uri = lmdb_new_uri();
	assert_non_null(uri);
	struct store_opts opts = { .max_size = 1 << 20, .compact_interval_ms = -1 };
	struct store *st = store_open(uri, &opts);
	assert_non_null(st);
	size_t vlen = 64 << 10;
	char *v = malloc(vlen);
	assert_non_null(v);
	memset(v, 'x', vlen);
	int err = 0, i;
	for (i = 0; i < 64 && err == 0; i++) {
		char key[32];
		snprintf(key, sizeof(key), "/big/%02d", i);
		struct store_op op = { STORE_PUT, key, v, vlen, STORE_ANY };
		err = store_txn(st, &op, 1, NULL, NULL);
	}
	assert_int_equal(err, -ENOSPC);
	int64_t rev = store_revision(st);
	/* The failed write left nothing; what was written before is whole. */
	struct store_range_resp resp;
	struct store_range_req req = { .prefix = "/big/" };
	assert_int_equal(store_range(st, &req, &resp), 0);
	assert_int_equal(resp.n, (size_t)(i - 1));
	for (size_t k = 0; k < resp.n; k++)
		assert_int_equal(resp.kvs[k].value_len, vlen);
	store_range_resp_free(&resp);
	store_close(st);
	st = store_open(uri, &opts);
	assert_non_null(st);
	assert_int_equal(store_revision(st), rev);
	store_close(st);
	free(v);
	lmdb_remove_uri(uri);
	free(uri);
}

static void test_store_lmdb_background_compaction_honours_policy(void **state)
{
	(void)state;
	char *uri = lmdb_new_uri();
	assert_non_null(uri);
	struct store_opts opts = { .history_revisions = 10, .history_seconds = 2,
				   .compact_interval_ms = 50 };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct store *st = store_open(uri, &opts);
	assert_non_null(st);
	struct store_op op = { STORE_PUT, "/k", "v", 1, STORE_ANY };
	for (int i = 0; i < 40; i++)
		assert_int_equal(store_txn(st, &op, 1, NULL, NULL), 0);
	int64_t rev = store_revision(st);
	usleep(200000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Younger than history_seconds: kept whatever the count. */
	if (t1.tv_sec - t0.tv_sec < 2)
		assert_int_equal(store_compacted_revision(st), 0);
	/* Then compacted as the revisions age, but never the last history_revisions. */
	for (int i = 0; i < 200 && store_compacted_revision(st) < rev - 10; i++)
		usleep(50000);
	assert_int_equal(store_compacted_revision(st), rev - 10);
	struct store_kv kv;
	assert_int_equal(store_get(st, "/k", rev - 10, &kv), 0);
	store_kv_clear(&kv);
	assert_int_equal(store_get(st, "/k", rev - 11, &kv), -ECOMPACTED);
	store_close(st);
	lmdb_remove_uri(uri);
	free(uri);
}

static void test_store_lmdb_second_open_is_ebusy(void **state)
{
	(void)state;
	char *uri = lmdb_new_uri();
	assert_non_null(uri);
	struct store *st = store_open(uri, NULL);
	assert_non_null(st);
	errno = 0;
	assert_null(store_open(uri, NULL));
	assert_int_equal(errno, EBUSY);
	store_close(st);
	st = store_open(uri, NULL);
	assert_non_null(st);
	store_close(st);
	lmdb_remove_uri(uri);
	free(uri);
}

/* What a callback on the commit thread may and may not do. */
struct cb_check {
	struct store *st;
	int txn_err, watch_errno, chained_err;
	int64_t chained_rev;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
};

static void chained_done(void *arg, int err, int64_t rev, struct store_result *res, size_t n)
{
	struct cb_check *c = arg;
	(void)res;
	(void)n;
	pthread_mutex_lock(&c->mu);
	c->chained_err = err;
	c->chained_rev = rev;
	c->done = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void nop_watch(void *arg, const struct store_event *evs, size_t n)
{
	(void)arg;
	(void)evs;
	(void)n;
}

static void cb_watch(void *arg, const struct store_event *evs, size_t n)
{
	struct cb_check *c = arg;
	(void)evs;
	(void)n;
	if (c->txn_err != 1)
		return;
	struct store_op op = { STORE_PUT, "/other", "x", 1, STORE_ANY };
	c->txn_err = store_txn(c->st, &op, 1, NULL, NULL);
	errno = 0;
	if (!store_watch(c->st, "/", 0, nop_watch, NULL))
		c->watch_errno = errno;
	/* Submitting without waiting is fine. */
	if (store_txn_async(c->st, &op, 1, chained_done, c))
		c->chained_err = -999;
}

static void test_store_lmdb_callbacks_cannot_wait_on_the_store(void **state)
{
	(void)state;
	char *uri = lmdb_new_uri();
	assert_non_null(uri);
	struct store *st = store_open(uri, NULL);
	assert_non_null(st);
	struct cb_check c = { .st = st, .txn_err = 1 };
	pthread_mutex_init(&c.mu, NULL);
	pthread_cond_init(&c.cv, NULL);
	struct store_watch *w = store_watch(st, "/cb/", 0, cb_watch, &c);
	assert_non_null(w);
	struct store_op op = { STORE_PUT, "/cb/k", "v", 1, STORE_ANY };
	int64_t rev;
	assert_int_equal(store_txn(st, &op, 1, &rev, NULL), 0);
	pthread_mutex_lock(&c.mu);
	while (!c.done)
		pthread_cond_wait(&c.cv, &c.mu);
	pthread_mutex_unlock(&c.mu);
	assert_int_equal(c.txn_err, -EDEADLK);
	assert_int_equal(c.watch_errno, EDEADLK);
	assert_int_equal(c.chained_err, 0);
	assert_int_equal(c.chained_rev, rev + 1);
	store_watch_cancel(w);
	store_close(st);
	pthread_mutex_destroy(&c.mu);
	pthread_cond_destroy(&c.cv);
	lmdb_remove_uri(uri);
	free(uri);
}

static void write_file(const char *dir, const char *name, const char *data, size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void test_store_lmdb_corrupt_or_truncated_file_fails_cleanly(void **state)
{
	(void)state;
	char *uri = lmdb_new_uri();
	assert_non_null(uri);
	const char *dir = uri + 5;
	/* Not an LMDB file at all. */
	char junk[16384];
	memset(junk, 0x5a, sizeof(junk));
	write_file(dir, "data.mdb", junk, sizeof(junk));
	errno = 0;
	assert_null(store_open(uri, NULL));
	assert_true(errno == EIO || errno == EINVAL);
	lmdb_remove_uri(uri);
	free(uri);

	/* A real store cut in half. */
	uri = lmdb_new_uri();
	assert_non_null(uri);
	dir = uri + 5;
	struct store *st = store_open(uri, NULL);
	assert_non_null(st);
	char v[2048];
	memset(v, 'v', sizeof(v));
	for (int i = 0; i < 200; i++) {
		char key[32];
		snprintf(key, sizeof(key), "/t/%03d", i);
		struct store_op op = { STORE_PUT, key, v, sizeof(v), STORE_ANY };
		assert_int_equal(store_txn(st, &op, 1, NULL, NULL), 0);
	}
	store_close(st);
	char path[512];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(truncate(path, sb.st_size / 2), 0);
	errno = 0;
	assert_null(store_open(uri, NULL));
	assert_int_equal(errno, EIO);
	lmdb_remove_uri(uri);
	free(uri);
}

SHOAL_TEST_MAIN_SETUP(setup, NULL, STORE_CONFORMANCE_TESTS,
		      cmocka_unit_test(test_store_lmdb_unknown_scheme_is_einval),
		      cmocka_unit_test(test_store_lmdb_creates_missing_directories),
		      cmocka_unit_test(test_store_lmdb_unwritable_directory_fails_cleanly),
		      cmocka_unit_test(test_store_lmdb_removed_directory_fails_writes),
		      cmocka_unit_test(test_store_lmdb_full_map_is_enospc_and_writes_nothing),
		      cmocka_unit_test(test_store_lmdb_background_compaction_honours_policy),
		      cmocka_unit_test(test_store_lmdb_second_open_is_ebusy),
		      cmocka_unit_test(test_store_lmdb_callbacks_cannot_wait_on_the_store),
		      cmocka_unit_test(test_store_lmdb_corrupt_or_truncated_file_fails_cleanly))
