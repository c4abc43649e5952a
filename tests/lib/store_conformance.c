// SPDX-License-Identifier: Apache-2.0
/*
 * The store conformance suite (see store_conformance.h): every test opens a fresh store from
 * the backend's URI factory and speaks only store.h, so etcd runs the very same tests.
 * Automatic compaction is off in every store opened here, so history stays until a test
 * compacts it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shoal_test.h"
#include "store.h"
#include "store_conformance.h"

static const struct store_conformance_backend *sc_backend;

void store_conformance_use(const struct store_conformance_backend *backend)
{
	sc_backend = backend;
}

/* A test's store and the URI to reopen it or remove it. */
struct sc {
	char *uri;
	struct store *st;
};

static const struct store_opts sc_opts = { .compact_interval_ms = -1 };

static void sc_open(struct sc *s)
{
	assert_non_null(sc_backend);
	s->uri = sc_backend->new_uri();
	assert_non_null(s->uri);
	s->st = store_open(s->uri, &sc_opts);
	assert_non_null(s->st);
}

static void sc_reopen(struct sc *s)
{
	store_close(s->st);
	s->st = store_open(s->uri, &sc_opts);
	assert_non_null(s->st);
}

static void sc_close(struct sc *s)
{
	store_close(s->st);
	s->st = NULL;
	sc_backend->remove_uri(s->uri);
	free(s->uri);
	s->uri = NULL;
}

static int64_t put_expect(struct store *st, const char *key, const char *value, int64_t expect,
			  int *err)
{
	struct store_op op = { .type = STORE_PUT, .key = key, .value = value,
			       .value_len = strlen(value), .expect_mod_rev = expect };
	int64_t rev = -1;
	*err = store_txn(st, &op, 1, &rev, NULL);
	return rev;
}

static int64_t put(struct store *st, const char *key, const char *value)
{
	int err;
	int64_t rev = put_expect(st, key, value, STORE_ANY, &err);
	assert_int_equal(err, 0);
	return rev;
}

static int64_t del(struct store *st, const char *key)
{
	struct store_op op = { .type = STORE_DELETE, .key = key, .expect_mod_rev = STORE_ANY };
	int64_t rev = -1;
	assert_int_equal(store_txn(st, &op, 1, &rev, NULL), 0);
	return rev;
}

static void assert_value(struct store *st, const char *key, int64_t at_rev, const char *want)
{
	struct store_kv kv;
	int err = store_get(st, key, at_rev, &kv);
	if (!want) {
		assert_int_equal(err, -ENOENT);
		return;
	}
	assert_int_equal(err, 0);
	assert_string_equal(kv.key, key);
	assert_int_equal(kv.value_len, strlen(want));
	assert_string_equal(kv.value, want);
	store_kv_clear(&kv);
}

void test_store_put_get_delete(void **state)
{
	struct sc s;
	(void)state;
	sc_open(&s);
	put(s.st, "/registry/pods/default/a", "hello");
	assert_value(s.st, "/registry/pods/default/a", 0, "hello");
	put(s.st, "/registry/pods/default/a", "world");
	assert_value(s.st, "/registry/pods/default/a", 0, "world");
	del(s.st, "/registry/pods/default/a");
	assert_value(s.st, "/registry/pods/default/a", 0, NULL);
	/* A key may hold an empty value, and binary bytes. */
	struct store_op op = { .type = STORE_PUT, .key = "/bin", .value = "a\0b", .value_len = 3,
			       .expect_mod_rev = STORE_ANY };
	assert_int_equal(store_txn(s.st, &op, 1, NULL, NULL), 0);
	struct store_kv kv;
	assert_int_equal(store_get(s.st, "/bin", 0, &kv), 0);
	assert_int_equal(kv.value_len, 3);
	assert_memory_equal(kv.value, "a\0b", 4);
	store_kv_clear(&kv);
	put(s.st, "/empty", "");
	assert_value(s.st, "/empty", 0, "");
	sc_close(&s);
}

void test_store_get_missing_is_enoent(void **state)
{
	struct sc s;
	struct store_kv kv;
	(void)state;
	sc_open(&s);
	assert_int_equal(store_get(s.st, "/nothing", 0, &kv), -ENOENT);
	assert_null(kv.key);
	put(s.st, "/a", "1");
	assert_int_equal(store_get(s.st, "/a/", 0, &kv), -ENOENT);
	assert_int_equal(store_get(s.st, "/", 0, &kv), -ENOENT);
	sc_close(&s);
}

void test_store_revisions_and_versions(void **state)
{
	struct sc s;
	struct store_kv kv;
	(void)state;
	sc_open(&s);
	int64_t r0 = store_revision(s.st);
	assert_true(r0 >= 1);
	int64_t r1 = put(s.st, "/k", "1");
	assert_int_equal(r1, r0 + 1);
	assert_int_equal(store_revision(s.st), r1);
	int64_t r2 = put(s.st, "/other", "x");
	assert_int_equal(r2, r1 + 1);
	int64_t r3 = put(s.st, "/k", "2");
	assert_int_equal(r3, r2 + 1);
	assert_int_equal(store_get(s.st, "/k", 0, &kv), 0);
	assert_int_equal(kv.create_rev, r1);
	assert_int_equal(kv.mod_rev, r3);
	assert_int_equal(kv.version, 2);
	store_kv_clear(&kv);
	/* A delete ends the key's life: a new put starts again at version 1. */
	int64_t r4 = del(s.st, "/k");
	assert_int_equal(r4, r3 + 1);
	int64_t r5 = put(s.st, "/k", "3");
	assert_int_equal(store_get(s.st, "/k", 0, &kv), 0);
	assert_int_equal(kv.create_rev, r5);
	assert_int_equal(kv.mod_rev, r5);
	assert_int_equal(kv.version, 1);
	store_kv_clear(&kv);
	/* A multi-op transaction is one revision. */
	struct store_op ops[3] = {
		{ STORE_PUT, "/m/1", "a", 1, STORE_ANY },
		{ STORE_PUT, "/m/2", "b", 1, STORE_ANY },
		{ STORE_DELETE, "/k", NULL, 0, STORE_ANY },
	};
	int64_t r6 = 0;
	assert_int_equal(store_txn(s.st, ops, 3, &r6, NULL), 0);
	assert_int_equal(r6, r5 + 1);
	assert_int_equal(store_get(s.st, "/m/1", 0, &kv), 0);
	assert_int_equal(kv.mod_rev, r6);
	store_kv_clear(&kv);
	assert_int_equal(store_get(s.st, "/m/2", 0, &kv), 0);
	assert_int_equal(kv.mod_rev, r6);
	store_kv_clear(&kv);
	assert_int_equal(store_revision(s.st), r6);
	sc_close(&s);
}

void test_store_cas_succeeds_on_current_mod_rev(void **state)
{
	struct sc s;
	int err;
	(void)state;
	sc_open(&s);
	int64_t r1 = put_expect(s.st, "/cas", "1", 0, &err);
	assert_int_equal(err, 0);
	int64_t r2 = put_expect(s.st, "/cas", "2", r1, &err);
	assert_int_equal(err, 0);
	assert_true(r2 > r1);
	assert_value(s.st, "/cas", 0, "2");
	struct store_op d = { .type = STORE_DELETE, .key = "/cas", .expect_mod_rev = r2 };
	assert_int_equal(store_txn(s.st, &d, 1, NULL, NULL), 0);
	assert_value(s.st, "/cas", 0, NULL);
	sc_close(&s);
}

void test_store_cas_create_of_existing_is_eexist(void **state)
{
	struct sc s;
	int err;
	(void)state;
	sc_open(&s);
	put(s.st, "/cas", "1");
	int64_t rev = store_revision(s.st);
	put_expect(s.st, "/cas", "2", 0, &err);
	assert_int_equal(err, -EEXIST);
	assert_value(s.st, "/cas", 0, "1");
	assert_int_equal(store_revision(s.st), rev);
	sc_close(&s);
}

void test_store_cas_stale_mod_rev_is_econflict(void **state)
{
	struct sc s;
	int err;
	(void)state;
	sc_open(&s);
	int64_t r1 = put(s.st, "/cas", "1");
	put(s.st, "/cas", "2");
	put_expect(s.st, "/cas", "3", r1, &err);
	assert_int_equal(err, -ECONFLICT);
	assert_value(s.st, "/cas", 0, "2");
	struct store_op d = { .type = STORE_DELETE, .key = "/cas", .expect_mod_rev = r1 };
	assert_int_equal(store_txn(s.st, &d, 1, NULL, NULL), -ECONFLICT);
	assert_value(s.st, "/cas", 0, "2");
	sc_close(&s);
}

void test_store_cas_on_missing_key_is_enoent(void **state)
{
	struct sc s;
	int err;
	(void)state;
	sc_open(&s);
	int64_t r1 = put(s.st, "/other", "1");
	put_expect(s.st, "/cas", "1", r1, &err);
	assert_int_equal(err, -ENOENT);
	struct store_op d = { .type = STORE_DELETE, .key = "/cas", .expect_mod_rev = STORE_ANY };
	assert_int_equal(store_txn(s.st, &d, 1, NULL, NULL), -ENOENT);
	d.expect_mod_rev = r1;
	assert_int_equal(store_txn(s.st, &d, 1, NULL, NULL), -ENOENT);
	/* A deleted key is missing too. */
	del(s.st, "/other");
	put_expect(s.st, "/other", "2", r1, &err);
	assert_int_equal(err, -ENOENT);
	assert_value(s.st, "/cas", 0, NULL);
	assert_value(s.st, "/other", 0, NULL);
	sc_close(&s);
}

void test_store_txn_failing_condition_writes_nothing(void **state)
{
	struct sc s;
	struct store_result res[3];
	(void)state;
	sc_open(&s);
	int64_t r1 = put(s.st, "/a", "old-a");
	put(s.st, "/b", "old-b");
	int64_t before = store_revision(s.st);
	struct store_op ops[3] = {
		{ STORE_PUT, "/a", "new-a", 5, r1 },	     /* holds */
		{ STORE_PUT, "/c", "new-c", 5, 0 },	     /* holds */
		{ STORE_DELETE, "/b", NULL, 0, r1 },	     /* stale: fails */
	};
	int64_t rev = -7;
	assert_int_equal(store_txn(s.st, ops, 3, &rev, res), -ECONFLICT);
	assert_int_equal(rev, -7);
	assert_int_equal(res[0].err, 0);
	assert_int_equal(res[1].err, 0);
	assert_int_equal(res[2].err, -ECONFLICT);
	store_results_clear(res, 3);
	assert_int_equal(store_revision(s.st), before);
	assert_value(s.st, "/a", 0, "old-a");
	assert_value(s.st, "/b", 0, "old-b");
	assert_value(s.st, "/c", 0, NULL);
	/* The first failing op's error is the one returned. */
	struct store_op ops2[2] = {
		{ STORE_PUT, "/c", "x", 1, r1 },	/* missing: -ENOENT */
		{ STORE_PUT, "/a", "x", 1, 0 },		/* exists: -EEXIST */
	};
	assert_int_equal(store_txn(s.st, ops2, 2, NULL, NULL), -ENOENT);
	assert_int_equal(store_revision(s.st), before);
	sc_close(&s);
}

void test_store_txn_returns_prev_values(void **state)
{
	struct sc s;
	struct store_result res[3];
	(void)state;
	sc_open(&s);
	int64_t r1 = put(s.st, "/a", "old-a");
	int64_t r2 = put(s.st, "/b", "old-b");
	struct store_op ops[3] = {
		{ STORE_PUT, "/a", "new-a", 5, STORE_ANY },
		{ STORE_DELETE, "/b", NULL, 0, STORE_ANY },
		{ STORE_PUT, "/c", "new-c", 5, STORE_ANY },
	};
	int64_t rev;
	assert_int_equal(store_txn(s.st, ops, 3, &rev, res), 0);
	assert_int_equal(res[0].err, 0);
	assert_string_equal(res[0].prev.value, "old-a");
	assert_int_equal(res[0].prev.mod_rev, r1);
	assert_string_equal(res[1].prev.key, "/b");
	assert_string_equal(res[1].prev.value, "old-b");
	assert_int_equal(res[1].prev.mod_rev, r2);
	assert_null(res[2].prev.key);
	assert_int_equal(res[2].prev.mod_rev, 0);
	store_results_clear(res, 3);
	assert_null(res[0].prev.key);
	sc_close(&s);
}

void test_store_txn_rejects_duplicate_keys(void **state)
{
	struct sc s;
	(void)state;
	sc_open(&s);
	int64_t before = store_revision(s.st);
	struct store_op ops[2] = {
		{ STORE_PUT, "/a", "1", 1, STORE_ANY },
		{ STORE_PUT, "/a", "2", 1, STORE_ANY },
	};
	assert_int_equal(store_txn(s.st, ops, 2, NULL, NULL), -EINVAL);
	assert_int_equal(store_txn(s.st, ops, 0, NULL, NULL), -EINVAL);
	assert_int_equal(store_revision(s.st), before);
	assert_value(s.st, "/a", 0, NULL);
	sc_close(&s);
}

static void put_many(struct store *st, const char *fmt, int n)
{
	char key[128];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), fmt, i);
		put(st, key, key);
	}
}

void test_store_range_prefix(void **state)
{
	struct sc s;
	struct store_range_resp resp;
	(void)state;
	sc_open(&s);
	put_many(s.st, "/registry/pods/default/p%02d", 10);
	put_many(s.st, "/registry/pods/kube-system/q%02d", 3);
	put_many(s.st, "/registry/services/default/s%02d", 4);
	put(s.st, "/registry/pods", "not under the prefix with the slash");
	del(s.st, "/registry/pods/default/p05");

	struct store_range_req req = { .prefix = "/registry/pods/" };
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 12);
	assert_int_equal(resp.count, 12);
	assert_int_equal(resp.more, 0);
	assert_int_equal(resp.rev, store_revision(s.st));
	for (size_t i = 1; i < resp.n; i++)
		assert_true(strcmp(resp.kvs[i - 1].key, resp.kvs[i].key) < 0);
	assert_string_equal(resp.kvs[0].key, "/registry/pods/default/p00");
	assert_string_equal(resp.kvs[0].value, "/registry/pods/default/p00");
	assert_string_equal(resp.kvs[5].key, "/registry/pods/default/p06");
	assert_string_equal(resp.kvs[11].key, "/registry/pods/kube-system/q02");
	store_range_resp_free(&resp);

	req.prefix = "/registry/none/";
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 0);
	assert_int_equal(resp.count, 0);
	store_range_resp_free(&resp);

	req.prefix = "";
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 17);
	store_range_resp_free(&resp);
	sc_close(&s);
}

void test_store_range_limit_start_key_count(void **state)
{
	struct sc s;
	struct store_range_resp resp;
	(void)state;
	sc_open(&s);
	put_many(s.st, "/r/k%02d", 25);
	put(s.st, "/s/after", "x");

	/* Pages of 10 through start_key, as list's continue does, all at one revision. */
	struct store_range_req req = { .prefix = "/r/", .limit = 10 };
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	int64_t rev = resp.rev;
	assert_int_equal(resp.n, 10);
	assert_int_equal(resp.count, 25);
	assert_int_equal(resp.more, 1);
	assert_string_equal(resp.kvs[9].key, "/r/k09");
	store_range_resp_free(&resp);

	/* A write between pages is not seen by a range at the first page's revision. */
	put(s.st, "/r/k10a", "new");
	del(s.st, "/r/k15");

	req.start_key = "/r/k10";
	req.at_rev = rev;
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.rev, rev);
	assert_int_equal(resp.n, 10);
	assert_int_equal(resp.count, 15);
	assert_int_equal(resp.more, 1);
	assert_string_equal(resp.kvs[0].key, "/r/k10");
	assert_string_equal(resp.kvs[5].key, "/r/k15");
	store_range_resp_free(&resp);

	req.start_key = "/r/k20";
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 5);
	assert_int_equal(resp.count, 5);
	assert_int_equal(resp.more, 0);
	assert_string_equal(resp.kvs[4].key, "/r/k24");
	store_range_resp_free(&resp);

	/* A start_key past the prefix returns nothing; one before it starts at the prefix. */
	req.start_key = "/s/";
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 0);
	store_range_resp_free(&resp);
	req.start_key = "/a";
	req.limit = 0;
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 25);
	store_range_resp_free(&resp);

	/* At the current revision the new key is there and the deleted one is gone. */
	req.at_rev = 0;
	req.start_key = NULL;
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 25);
	assert_string_equal(resp.kvs[11].key, "/r/k10a");
	for (size_t i = 0; i < resp.n; i++)
		assert_string_not_equal(resp.kvs[i].key, "/r/k15");
	store_range_resp_free(&resp);
	sc_close(&s);
}

void test_store_range_count_only(void **state)
{
	struct sc s;
	struct store_range_resp resp;
	(void)state;
	sc_open(&s);
	put_many(s.st, "/c/k%03d", 120);
	struct store_range_req req = { .prefix = "/c/", .count_only = 1 };
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.count, 120);
	assert_int_equal(resp.n, 0);
	assert_null(resp.kvs);
	store_range_resp_free(&resp);
	sc_close(&s);
}

void test_store_range_key_order_and_long_histories(void **state)
{
	struct sc s;
	struct store_range_resp resp;
	int64_t revs[20];
	(void)state;
	sc_open(&s);
	/* Keys sort as strcmp orders them (bytes unsigned): a key before the keys it is a
	 * prefix of. */
	put(s.st, "/o/ab", "ab");
	put(s.st, "/o/a/b", "a/b");
	put(s.st, "/o/a", "a");
	put(s.st, "/o/a\x7f", "a7f");
	put(s.st, "/o/a\xc3\xa9", "ae");
	/* And one key with a long history between them. */
	for (int i = 0; i < 20; i++) {
		char v[16];
		snprintf(v, sizeof(v), "h%d", i);
		revs[i] = put(s.st, "/o/a/h", v);
	}
	static const char *order[] = { "/o/a", "/o/a/b", "/o/a/h", "/o/ab", "/o/a\x7f",
				       "/o/a\xc3\xa9" };
	struct store_range_req req = { .prefix = "/o/" };
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 6);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(resp.kvs[i].key, order[i]);
	assert_string_equal(resp.kvs[2].value, "h19");
	store_range_resp_free(&resp);
	for (int i = 0; i < 20; i++) {
		char v[16];
		snprintf(v, sizeof(v), "h%d", i);
		req.at_rev = revs[i];
		assert_int_equal(store_range(s.st, &req, &resp), 0);
		assert_int_equal(resp.n, 6);
		assert_string_equal(resp.kvs[2].key, "/o/a/h");
		assert_string_equal(resp.kvs[2].value, v);
		assert_int_equal(resp.kvs[2].version, i + 1);
		assert_string_equal(resp.kvs[3].key, "/o/ab");
		store_range_resp_free(&resp);
	}
	/* Before the key's first version it is absent, and its neighbours are not. */
	req.at_rev = revs[0] - 1;
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 5);
	assert_string_equal(resp.kvs[2].key, "/o/ab");
	store_range_resp_free(&resp);
	del(s.st, "/o/a/h");
	req.at_rev = 0;
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 5);
	store_range_resp_free(&resp);
	sc_close(&s);
}

void test_store_get_at_old_revision(void **state)
{
	struct sc s;
	struct store_kv kv;
	(void)state;
	sc_open(&s);
	int64_t r0 = store_revision(s.st);
	int64_t r1 = put(s.st, "/k", "v1");
	int64_t r2 = put(s.st, "/k", "v2");
	put(s.st, "/x", "unrelated");
	int64_t r4 = del(s.st, "/k");
	int64_t r5 = put(s.st, "/k", "v3");
	assert_value(s.st, "/k", r0, NULL);
	assert_value(s.st, "/k", r1, "v1");
	assert_value(s.st, "/k", r2, "v2");
	assert_value(s.st, "/k", r2 + 1, "v2");
	assert_value(s.st, "/k", r4, NULL);
	assert_value(s.st, "/k", r5, "v3");
	assert_int_equal(store_get(s.st, "/k", r2, &kv), 0);
	assert_int_equal(kv.mod_rev, r2);
	assert_int_equal(kv.create_rev, r1);
	assert_int_equal(kv.version, 2);
	store_kv_clear(&kv);
	/* A revision the store has not reached is an error, not the current value. */
	assert_true(store_get(s.st, "/k", r5 + 100, &kv) < 0);
	sc_close(&s);
}

void test_store_range_at_old_revision(void **state)
{
	struct sc s;
	struct store_range_resp resp;
	(void)state;
	sc_open(&s);
	put(s.st, "/p/a", "a1");
	put(s.st, "/p/b", "b1");
	int64_t snap = put(s.st, "/p/c", "c1");
	put(s.st, "/p/a", "a2");
	del(s.st, "/p/b");
	put(s.st, "/p/d", "d1");
	struct store_range_req req = { .prefix = "/p/", .at_rev = snap };
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 3);
	assert_string_equal(resp.kvs[0].value, "a1");
	assert_string_equal(resp.kvs[1].value, "b1");
	assert_string_equal(resp.kvs[2].value, "c1");
	assert_int_equal(resp.rev, snap);
	store_range_resp_free(&resp);
	req.at_rev = 0;
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 3);
	assert_string_equal(resp.kvs[0].value, "a2");
	assert_string_equal(resp.kvs[1].value, "c1");
	assert_string_equal(resp.kvs[2].value, "d1");
	store_range_resp_free(&resp);
	sc_close(&s);
}

/* ---- watch ---- */

struct rec_event {
	enum store_event_type type;
	char key[96];
	char value[96];
	char prev_value[96];
	int64_t mod_rev, create_rev, version, prev_mod_rev;
};

struct recorder {
	pthread_mutex_t mu;
	struct rec_event *evs;
	size_t n, cap;
	int64_t last_rev;
	int out_of_order;
	int cancelled;
	int called_after_cancel;
	int calls;
};

static void recorder_init(struct recorder *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
}

static void recorder_free(struct recorder *r)
{
	free(r->evs);
	pthread_mutex_destroy(&r->mu);
}

static void recorder_fn(void *arg, const struct store_event *evs, size_t n)
{
	struct recorder *r = arg;
	pthread_mutex_lock(&r->mu);
	if (r->cancelled)
		r->called_after_cancel = 1;
	r->calls++;
	for (size_t i = 0; i < n; i++) {
		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 256;
			r->evs = realloc(r->evs, r->cap * sizeof(*r->evs));
			assert_non_null(r->evs);
		}
		struct rec_event *e = &r->evs[r->n++];
		memset(e, 0, sizeof(*e));
		e->type = evs[i].type;
		snprintf(e->key, sizeof(e->key), "%s", evs[i].kv.key);
		if (evs[i].kv.value)
			snprintf(e->value, sizeof(e->value), "%s", evs[i].kv.value);
		if (evs[i].prev.value)
			snprintf(e->prev_value, sizeof(e->prev_value), "%s", evs[i].prev.value);
		e->mod_rev = evs[i].kv.mod_rev;
		e->create_rev = evs[i].kv.create_rev;
		e->version = evs[i].kv.version;
		e->prev_mod_rev = evs[i].prev.mod_rev;
		if (e->mod_rev < r->last_rev)
			r->out_of_order = 1;
		r->last_rev = e->mod_rev;
	}
	pthread_mutex_unlock(&r->mu);
}

/* Waits (bounded) until the recorder has seen revision rev. */
static int recorder_wait(struct recorder *r, int64_t rev)
{
	for (int i = 0; i < 2000; i++) {
		pthread_mutex_lock(&r->mu);
		int64_t last = r->last_rev;
		pthread_mutex_unlock(&r->mu);
		if (last >= rev)
			return 1;
		usleep(5000);
	}
	return 0;
}

void test_store_watch_replays_history(void **state)
{
	struct sc s;
	struct recorder r;
	(void)state;
	sc_open(&s);
	recorder_init(&r);
	int64_t r1 = put(s.st, "/w/a", "a1");
	put(s.st, "/x/skip", "x");
	int64_t r3 = put(s.st, "/w/a", "a2");
	int64_t r4 = del(s.st, "/w/a");
	struct store_watch *w = store_watch(s.st, "/w/", r1, recorder_fn, &r);
	assert_non_null(w);
	/* The replay is complete when store_watch returns. */
	assert_int_equal(r.n, 3);
	assert_int_equal(r.evs[0].type, STORE_EVENT_PUT);
	assert_string_equal(r.evs[0].key, "/w/a");
	assert_string_equal(r.evs[0].value, "a1");
	assert_int_equal(r.evs[0].mod_rev, r1);
	assert_int_equal(r.evs[0].create_rev, r1);
	assert_int_equal(r.evs[0].version, 1);
	assert_int_equal(r.evs[0].prev_mod_rev, 0);
	assert_int_equal(r.evs[1].mod_rev, r3);
	assert_string_equal(r.evs[1].value, "a2");
	assert_string_equal(r.evs[1].prev_value, "a1");
	assert_int_equal(r.evs[1].version, 2);
	assert_int_equal(r.evs[2].type, STORE_EVENT_DELETE);
	assert_int_equal(r.evs[2].mod_rev, r4);
	assert_string_equal(r.evs[2].prev_value, "a2");
	assert_int_equal(r.evs[2].prev_mod_rev, r3);
	/* Then live, with the same shape. */
	int64_t r5 = put(s.st, "/w/b", "b1");
	int64_t r6 = del(s.st, "/w/b");
	assert_true(recorder_wait(&r, r6));
	assert_int_equal(r.n, 5);
	assert_int_equal(r.evs[3].mod_rev, r5);
	assert_string_equal(r.evs[3].value, "b1");
	assert_int_equal(r.evs[4].type, STORE_EVENT_DELETE);
	assert_string_equal(r.evs[4].prev_value, "b1");
	store_watch_cancel(w);
	/* From 0: only what comes next. */
	recorder_free(&r);
	recorder_init(&r);
	w = store_watch(s.st, "/w/", 0, recorder_fn, &r);
	assert_non_null(w);
	assert_int_equal(r.n, 0);
	int64_t r7 = put(s.st, "/w/c", "c1");
	assert_true(recorder_wait(&r, r7));
	assert_int_equal(r.n, 1);
	assert_int_equal(r.evs[0].mod_rev, r7);
	store_watch_cancel(w);
	recorder_free(&r);
	sc_close(&s);
}

struct writer_arg {
	struct store *st;
	int id, n;
	int64_t *revs; /* the revision of each write under /w/ */
};

static void *writer_main(void *arg)
{
	struct writer_arg *a = arg;
	char key[64];
	for (int i = 0; i < a->n; i++) {
		/* Every fourth write goes elsewhere: the watch must not see it. */
		int inside = i % 4 != 3;
		snprintf(key, sizeof(key), "%s/t%d/k%d", inside ? "/w" : "/elsewhere", a->id, i % 7);
		struct store_op op = { STORE_PUT, key, key, strlen(key), STORE_ANY };
		int64_t rev = 0;
		if (store_txn(a->st, &op, 1, &rev, NULL) != 0)
			return (void *)1;
		a->revs[i] = inside ? rev : 0;
	}
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

void test_store_watch_replay_then_live_no_gap_no_dup(void **state)
{
	enum { WRITERS = 4, PER_WRITER = 150, BEFORE = 100 };
	struct sc s;
	struct recorder r[3];
	struct store_watch *w[3];
	struct writer_arg wa[WRITERS];
	pthread_t thr[WRITERS];
	(void)state;
	sc_open(&s);
	for (int i = 0; i < 3; i++)
		recorder_init(&r[i]);
	int64_t pre[BEFORE];
	for (int i = 0; i < BEFORE; i++) {
		char key[32];
		snprintf(key, sizeof(key), "/w/pre/k%d", i % 10);
		pre[i] = put(s.st, key, key);
	}
	for (int i = 0; i < WRITERS; i++) {
		wa[i] = (struct writer_arg){ s.st, i, PER_WRITER, calloc(PER_WRITER, 8) };
		assert_non_null(wa[i].revs);
		assert_int_equal(pthread_create(&thr[i], NULL, writer_main, &wa[i]), 0);
	}
	/* Three watches start while the writers commit: from old history, from the middle, and
	 * from "now". */
	int64_t from[3] = { pre[0], pre[BEFORE / 2], 0 };
	usleep(20000);
	for (int i = 0; i < 3; i++) {
		if (i == 2)
			from[2] = store_revision(s.st) + 1;
		w[i] = store_watch(s.st, "/w/", i == 2 ? 0 : from[i], recorder_fn, &r[i]);
		assert_non_null(w[i]);
		usleep(10000);
	}
	for (int i = 0; i < WRITERS; i++) {
		void *ret;
		pthread_join(thr[i], &ret);
		assert_null(ret);
	}
	int64_t last = store_revision(s.st);
	/* Every revision under /w/, in order. */
	int64_t *want = malloc((BEFORE + WRITERS * PER_WRITER) * 8);
	assert_non_null(want);
	size_t nw = 0;
	for (int i = 0; i < BEFORE; i++)
		want[nw++] = pre[i];
	for (int i = 0; i < WRITERS; i++)
		for (int j = 0; j < PER_WRITER; j++)
			if (wa[i].revs[j])
				want[nw++] = wa[i].revs[j];
	qsort(want, nw, 8, cmp_i64);
	int64_t last_inside = want[nw - 1];
	for (int i = 0; i < 3; i++) {
		assert_true(recorder_wait(&r[i], last_inside));
		usleep(20000); /* nothing more may come */
		store_watch_cancel(w[i]);
		assert_int_equal(r[i].out_of_order, 0);
		size_t k = 0;
		while (k < nw && want[k] < from[i])
			k++;
		/* The watch from "now" may have registered a little after from[2]. */
		if (i == 2) {
			while (k < nw && want[k] < r[i].evs[0].mod_rev)
				k++;
			assert_true(r[i].n > 0);
		}
		assert_int_equal(r[i].n, nw - k);
		for (size_t e = 0; e < r[i].n; e++, k++) {
			assert_int_equal(r[i].evs[e].mod_rev, want[k]);
			assert_string_equal(r[i].evs[e].key, r[i].evs[e].value);
			assert_memory_equal(r[i].evs[e].key, "/w/", 3);
		}
		assert_true(r[i].last_rev <= last);
	}
	free(want);
	for (int i = 0; i < WRITERS; i++)
		free(wa[i].revs);
	for (int i = 0; i < 3; i++)
		recorder_free(&r[i]);
	sc_close(&s);
}

void test_store_watch_compacted_revision_is_ecompacted(void **state)
{
	struct sc s;
	struct recorder r;
	(void)state;
	sc_open(&s);
	recorder_init(&r);
	int64_t r1 = put(s.st, "/w/a", "1");
	int64_t r2 = put(s.st, "/w/a", "2");
	int64_t r3 = put(s.st, "/w/a", "3");
	assert_int_equal(store_compact(s.st, r2), 0);
	assert_int_equal(store_compacted_revision(s.st), r2);
	errno = 0;
	assert_null(store_watch(s.st, "/w/", r1, recorder_fn, &r));
	assert_int_equal(errno, ECOMPACTED);
	errno = 0;
	assert_null(store_watch(s.st, "/w/", r2, recorder_fn, &r));
	assert_int_equal(errno, ECOMPACTED);
	assert_int_equal(r.n, 0);
	/* Just after the compacted revision is still whole. */
	struct store_watch *w = store_watch(s.st, "/w/", r2 + 1, recorder_fn, &r);
	assert_non_null(w);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.evs[0].mod_rev, r3);
	assert_string_equal(r.evs[0].prev_value, "2");
	store_watch_cancel(w);
	recorder_free(&r);
	sc_close(&s);
}

struct cancel_arg {
	struct store *st;
	struct store_watch *w;
	struct recorder *r;
};

static void *cancel_main(void *arg)
{
	struct cancel_arg *a = arg;
	usleep(30000);
	store_watch_cancel(a->w);
	pthread_mutex_lock(&a->r->mu);
	a->r->cancelled = 1;
	pthread_mutex_unlock(&a->r->mu);
	return NULL;
}

static void self_cancel_fn(void *arg, const struct store_event *evs, size_t n)
{
	struct cancel_arg *a = arg;
	recorder_fn(a->r, evs, n);
	store_watch_cancel(a->w);
	pthread_mutex_lock(&a->r->mu);
	a->r->cancelled = 1;
	pthread_mutex_unlock(&a->r->mu);
}

void test_store_watch_cancel_stops_callbacks(void **state)
{
	struct sc s;
	struct recorder r, r2;
	struct cancel_arg ca, ca2;
	pthread_t thr;
	(void)state;
	sc_open(&s);
	recorder_init(&r);
	recorder_init(&r2);
	/* Cancelled from another thread while writes stream in. */
	ca = (struct cancel_arg){ s.st, NULL, &r };
	ca.w = store_watch(s.st, "/c/", 0, recorder_fn, &r);
	assert_non_null(ca.w);
	/* Cancelled from inside its own callback. */
	ca2 = (struct cancel_arg){ s.st, NULL, &r2 };
	ca2.w = store_watch(s.st, "/c/", 0, self_cancel_fn, &ca2);
	assert_non_null(ca2.w);
	assert_int_equal(pthread_create(&thr, NULL, cancel_main, &ca), 0);
	for (int i = 0; i < 60; i++) {
		struct store_op op = { STORE_PUT, "/c/k", "v", 1, STORE_ANY };
		assert_int_equal(store_txn_async(s.st, &op, 1, NULL, NULL), 0);
		usleep(1000);
	}
	pthread_join(thr, NULL);
	put(s.st, "/c/k", "last");
	assert_int_equal(r.called_after_cancel, 0);
	assert_int_equal(r2.called_after_cancel, 0);
	/* One call (which may carry the events of several transactions), then no more. */
	assert_int_equal(r2.calls, 1);
	assert_true(r2.n >= 1);
	assert_true(r.n > 0);
	recorder_free(&r);
	recorder_free(&r2);
	sc_close(&s);
}

struct order_check {
	struct recorder r;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, seen_in_watch;
	int64_t rev;
};

static void order_done(void *arg, int err, int64_t rev, struct store_result *res, size_t n)
{
	struct order_check *oc = arg;
	assert_int_equal(err, 0);
	assert_int_equal(n, 1);
	assert_string_equal(res[0].prev.value, "before");
	pthread_mutex_lock(&oc->r.mu);
	oc->seen_in_watch = oc->r.last_rev == rev;
	pthread_mutex_unlock(&oc->r.mu);
	pthread_mutex_lock(&oc->mu);
	oc->done = 1;
	oc->rev = rev;
	pthread_cond_signal(&oc->cv);
	pthread_mutex_unlock(&oc->mu);
}

void test_store_watchers_see_txn_before_done(void **state)
{
	struct sc s;
	struct order_check oc = { 0 };
	(void)state;
	sc_open(&s);
	recorder_init(&oc.r);
	pthread_mutex_init(&oc.mu, NULL);
	pthread_cond_init(&oc.cv, NULL);
	put(s.st, "/o/k", "before");
	struct store_watch *w = store_watch(s.st, "/o/", 0, recorder_fn, &oc.r);
	assert_non_null(w);
	char value[64];
	snprintf(value, sizeof(value), "after");
	struct store_op op = { STORE_PUT, "/o/k", value, strlen(value), STORE_ANY };
	assert_int_equal(store_txn_async(s.st, &op, 1, order_done, &oc), 0);
	/* ops are copied: the caller's buffer may change at once. */
	memset(value, 'X', sizeof(value) - 1);
	pthread_mutex_lock(&oc.mu);
	while (!oc.done)
		pthread_cond_wait(&oc.cv, &oc.mu);
	pthread_mutex_unlock(&oc.mu);
	assert_int_equal(oc.seen_in_watch, 1);
	assert_value(s.st, "/o/k", 0, "after");
	assert_int_equal(store_revision(s.st), oc.rev);
	store_watch_cancel(w);
	recorder_free(&oc.r);
	pthread_mutex_destroy(&oc.mu);
	pthread_cond_destroy(&oc.cv);
	sc_close(&s);
}

/* ---- compaction ---- */

void test_store_compact_keeps_latest_values(void **state)
{
	struct sc s;
	struct store_range_resp resp;
	(void)state;
	sc_open(&s);
	for (int i = 0; i < 5; i++) {
		char v[16];
		snprintf(v, sizeof(v), "a%d", i);
		put(s.st, "/k/a", v);
	}
	int64_t rb = put(s.st, "/k/b", "b0");
	put(s.st, "/k/c", "c0");
	int64_t c = del(s.st, "/k/c");
	int64_t after = put(s.st, "/k/a", "a5");
	assert_int_equal(store_compact(s.st, c), 0);
	assert_int_equal(store_compacted_revision(s.st), c);
	/* At the compaction revision and later, everything is as it was. */
	assert_value(s.st, "/k/a", c, "a4");
	assert_value(s.st, "/k/a", 0, "a5");
	assert_value(s.st, "/k/b", c, "b0");
	assert_value(s.st, "/k/c", c, NULL);
	struct store_kv kv;
	assert_int_equal(store_get(s.st, "/k/b", 0, &kv), 0);
	assert_int_equal(kv.mod_rev, rb);
	store_kv_clear(&kv);
	struct store_range_req req = { .prefix = "/k/", .at_rev = c };
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 2);
	assert_string_equal(resp.kvs[0].value, "a4");
	assert_string_equal(resp.kvs[1].value, "b0");
	store_range_resp_free(&resp);
	/* Compacting again at or below is refused; further is fine. */
	assert_int_equal(store_compact(s.st, c), -ECOMPACTED);
	assert_int_equal(store_compact(s.st, after), 0);
	assert_value(s.st, "/k/a", 0, "a5");
	assert_value(s.st, "/k/b", 0, "b0");
	sc_close(&s);
}

void test_store_compact_does_not_resurrect_deleted_keys(void **state)
{
	struct sc s;
	(void)state;
	sc_open(&s);
	put(s.st, "/d/k", "v1");
	int64_t c1 = put(s.st, "/d/other", "x");
	assert_int_equal(store_compact(s.st, c1), 0);
	/* The key's only version now predates the compaction; delete it and compact past the
	 * delete: the old version must go with the tombstone. */
	del(s.st, "/d/k");
	int64_t c2 = put(s.st, "/d/other", "y");
	assert_int_equal(store_compact(s.st, c2), 0);
	assert_value(s.st, "/d/k", 0, NULL);
	assert_value(s.st, "/d/k", c2, NULL);
	struct store_range_resp resp;
	struct store_range_req req = { .prefix = "/d/" };
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	assert_int_equal(resp.n, 1);
	assert_string_equal(resp.kvs[0].key, "/d/other");
	store_range_resp_free(&resp);
	sc_close(&s);
}

void test_store_compact_old_reads_are_ecompacted(void **state)
{
	struct sc s;
	struct store_kv kv;
	struct store_range_resp resp;
	(void)state;
	sc_open(&s);
	int64_t r1 = put(s.st, "/k", "1");
	int64_t r2 = put(s.st, "/k", "2");
	put(s.st, "/k", "3");
	assert_int_equal(store_compact(s.st, r2), 0);
	assert_int_equal(store_get(s.st, "/k", r1, &kv), -ECOMPACTED);
	struct store_range_req req = { .prefix = "/", .at_rev = r1 };
	assert_int_equal(store_range(s.st, &req, &resp), -ECOMPACTED);
	assert_value(s.st, "/k", r2, "2");
	sc_close(&s);
}

/* ---- concurrency, durability ---- */

struct cas_arg {
	struct store *st;
	int n;
	int conflicts;
};

static void *cas_main(void *arg)
{
	struct cas_arg *a = arg;
	for (int i = 0; i < a->n; i++) {
		for (int tries = 0;; tries++) {
			struct store_kv kv;
			if (tries > 10000 || store_get(a->st, "/counter", 0, &kv) != 0)
				return (void *)1;
			char v[32];
			snprintf(v, sizeof(v), "%ld", strtol(kv.value, NULL, 10) + 1);
			struct store_op op = { STORE_PUT, "/counter", v, strlen(v), kv.mod_rev };
			store_kv_clear(&kv);
			int err = store_txn(a->st, &op, 1, NULL, NULL);
			if (err == 0)
				break;
			if (err != -ECONFLICT)
				return (void *)2;
			a->conflicts++;
		}
	}
	return NULL;
}

void test_store_concurrent_cas_loses_no_update(void **state)
{
	enum { THREADS = 16, PER_THREAD = 40 };
	struct sc s;
	struct cas_arg ca[THREADS];
	pthread_t thr[THREADS];
	int conflicts = 0;
	(void)state;
	sc_open(&s);
	put(s.st, "/counter", "0");
	for (int i = 0; i < THREADS; i++) {
		ca[i] = (struct cas_arg){ s.st, PER_THREAD, 0 };
		assert_int_equal(pthread_create(&thr[i], NULL, cas_main, &ca[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		void *ret;
		pthread_join(thr[i], &ret);
		assert_null(ret);
		conflicts += ca[i].conflicts;
	}
	char want[32];
	snprintf(want, sizeof(want), "%d", THREADS * PER_THREAD);
	assert_value(s.st, "/counter", 0, want);
	struct store_kv kv;
	assert_int_equal(store_get(s.st, "/counter", 0, &kv), 0);
	assert_int_equal(kv.version, THREADS * PER_THREAD + 1);
	store_kv_clear(&kv);
	print_message("# %d CAS conflicts retried\n", conflicts);
	sc_close(&s);
}

void test_store_reopen_keeps_everything(void **state)
{
	struct sc s;
	struct recorder r;
	(void)state;
	sc_open(&s);
	recorder_init(&r);
	int64_t r1 = put(s.st, "/a", "1");
	int64_t r2 = put(s.st, "/a", "2");
	put(s.st, "/b", "b");
	int64_t r4 = del(s.st, "/b");
	int64_t rc = put(s.st, "/c", "c");
	assert_int_equal(store_compact(s.st, r2), 0);
	sc_reopen(&s);
	assert_int_equal(store_revision(s.st), rc);
	assert_int_equal(store_compacted_revision(s.st), r2);
	assert_value(s.st, "/a", 0, "2");
	assert_value(s.st, "/a", r2, "2");
	assert_value(s.st, "/b", 0, NULL);
	assert_value(s.st, "/b", r4 - 1, "b");
	assert_value(s.st, "/c", 0, "c");
	struct store_kv kv;
	assert_int_equal(store_get(s.st, "/a", r1, &kv), -ECOMPACTED);
	struct store_watch *w = store_watch(s.st, "/", r2 + 1, recorder_fn, &r);
	assert_non_null(w);
	assert_int_equal(r.n, 3);
	store_watch_cancel(w);
	/* Revisions continue where they stopped. */
	assert_int_equal(put(s.st, "/d", "d"), rc + 1);
	recorder_free(&r);
	sc_close(&s);
}

/* The crash test's child: writers that report each acknowledged txn over a pipe. */
struct crash_rec {
	int32_t writer, seq;
	int64_t rev;
};

struct crash_writer {
	struct store *st;
	int fd, id;
};

static void crash_value(char *buf, size_t len, int writer, int seq)
{
	/* A few hundred bytes, different for every transaction, so a torn write would show. */
	int l = snprintf(buf, len, "writer %d seq %d ", writer, seq);
	for (size_t j = (size_t)l; j < 300 && j + 1 < len; j++)
		buf[j] = "0123456789abcdef"[(size_t)(writer * 31 + seq * 7) % 16 ^ (j % 16)];
	buf[300 < len ? 300 : len - 1] = 0;
}

static void *crash_writer_main(void *arg)
{
	struct crash_writer *cw = arg;
	for (int seq = 0; seq < 200000; seq++) {
		char ka[64], kb[64], v[512];
		snprintf(ka, sizeof(ka), "/crash/a/%d-%d", cw->id, seq);
		snprintf(kb, sizeof(kb), "/crash/b/%d-%d", cw->id, seq);
		crash_value(v, sizeof(v), cw->id, seq);
		struct store_op ops[2] = {
			{ STORE_PUT, ka, v, strlen(v), 0 },
			{ STORE_PUT, kb, v, strlen(v), 0 },
		};
		struct crash_rec rec = { cw->id, seq, 0 };
		if (store_txn(cw->st, ops, 2, &rec.rev, NULL) != 0)
			_exit(3);
		if (write(cw->fd, &rec, sizeof(rec)) != sizeof(rec))
			_exit(4);
	}
	return NULL;
}

static void crash_child(const char *uri, int fd)
{
	enum { WRITERS = 4 };
	struct crash_writer cw[WRITERS];
	pthread_t thr[WRITERS];
	struct store *st = store_open(uri, &sc_opts);
	if (!st)
		_exit(2);
	for (int i = 0; i < WRITERS; i++) {
		cw[i] = (struct crash_writer){ st, fd, i };
		if (pthread_create(&thr[i], NULL, crash_writer_main, &cw[i]))
			_exit(5);
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(thr[i], NULL);
	_exit(0);
}

void test_store_crash_keeps_acknowledged_writes(void **state)
{
	struct sc s;
	int fds[2];
	(void)state;
	sc_open(&s);
	int64_t r0 = store_revision(s.st);
	store_close(s.st); /* the child owns the store until it dies */
	s.st = NULL;
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		crash_child(s.uri, fds[1]);
	}
	close(fds[1]);

	size_t cap = 1024, n = 0;
	struct crash_rec *recs = malloc(cap * sizeof(*recs));
	assert_non_null(recs);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int killed = 0;
	for (;;) {
		if (!killed) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if (n >= 400 || t.tv_sec - t0.tv_sec > 20) {
				/* Mid-stream: the writers are still committing. */
				assert_int_equal(kill(pid, SIGKILL), 0);
				killed = 1;
			}
		}
		struct crash_rec rec;
		ssize_t got = read(fds[0], &rec, sizeof(rec));
		if (got == 0)
			break;
		assert_int_equal(got, sizeof(rec));
		if (n == cap) {
			cap *= 2;
			recs = realloc(recs, cap * sizeof(*recs));
			assert_non_null(recs);
		}
		recs[n++] = rec;
	}
	close(fds[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_true(n >= 100);

	s.st = store_open(s.uri, &sc_opts);
	assert_non_null(s.st);
	int64_t maxrev = 0;
	for (size_t i = 0; i < n; i++) {
		char ka[64], kb[64], v[512];
		struct store_kv kv;
		snprintf(ka, sizeof(ka), "/crash/a/%d-%d", recs[i].writer, recs[i].seq);
		snprintf(kb, sizeof(kb), "/crash/b/%d-%d", recs[i].writer, recs[i].seq);
		crash_value(v, sizeof(v), recs[i].writer, recs[i].seq);
		assert_int_equal(store_get(s.st, ka, 0, &kv), 0);
		assert_string_equal(kv.value, v);
		assert_int_equal(kv.mod_rev, recs[i].rev);
		store_kv_clear(&kv);
		assert_int_equal(store_get(s.st, kb, 0, &kv), 0);
		assert_string_equal(kv.value, v);
		assert_int_equal(kv.mod_rev, recs[i].rev);
		store_kv_clear(&kv);
		if (recs[i].rev > maxrev)
			maxrev = recs[i].rev;
	}
	assert_true(store_revision(s.st) >= maxrev);
	/* No partial transaction: every /crash/a/ key has its /crash/b/ twin at the same
	 * revision, acknowledged or not, and every revision is one whole transaction. */
	struct store_range_resp ra, rb;
	struct store_range_req qa = { .prefix = "/crash/a/" }, qb = { .prefix = "/crash/b/" };
	assert_int_equal(store_range(s.st, &qa, &ra), 0);
	qb.at_rev = ra.rev;
	assert_int_equal(store_range(s.st, &qb, &rb), 0);
	assert_int_equal(ra.n, rb.n);
	assert_true(ra.n >= n);
	for (size_t i = 0; i < ra.n; i++) {
		assert_string_equal(ra.kvs[i].key + 9, rb.kvs[i].key + 9);
		assert_int_equal(ra.kvs[i].mod_rev, rb.kvs[i].mod_rev);
		assert_string_equal(ra.kvs[i].value, rb.kvs[i].value);
	}
	assert_int_equal((int64_t)ra.n, store_revision(s.st) - r0);
	print_message("# %zu acknowledged of %zu committed transactions before the kill\n", n,
		      ra.n);
	store_range_resp_free(&ra);
	store_range_resp_free(&rb);
	free(recs);
	sc_close(&s);
}

/* Many queued transactions at once, as a busy server submits them; waits for them all. */
struct bulk {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int pending, failed;
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
	if (--b->pending == 0)
		pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

enum { HIST_KEYS = 50, HIST_REVS = 20000, HIST_KEEP = 5 };

/* The value of key k after history step i (NULL: absent), for the compaction crash test. */
static void hist_step(char state[HIST_KEYS][16], int i, struct store_op *op, char *key, size_t klen)
{
	int k = i % HIST_KEYS;
	snprintf(key, klen, "/h/k%02d", k);
	if (i % 7 == 6 && state[k][0]) {
		*op = (struct store_op){ STORE_DELETE, key, NULL, 0, STORE_ANY };
		state[k][0] = 0;
	} else {
		snprintf(state[k], 16, "v%d", i);
		*op = (struct store_op){ STORE_PUT, key, state[k], strlen(state[k]), STORE_ANY };
	}
}

static void assert_hist_state(struct store *st, int64_t rev, char state[HIST_KEYS][16])
{
	for (int k = 0; k < HIST_KEYS; k++) {
		char key[32];
		snprintf(key, sizeof(key), "/h/k%02d", k);
		assert_value(st, key, rev, state[k][0] ? state[k] : NULL);
	}
}

void test_store_crash_during_compaction_keeps_state(void **state)
{
	struct sc s;
	struct bulk b = { .pending = HIST_REVS };
	static char cur[HIST_KEYS][16], kept[HIST_KEEP + 1][HIST_KEYS][16];
	(void)state;
	sc_open(&s);
	memset(cur, 0, sizeof(cur));
	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	int64_t r0 = store_revision(s.st);
	for (int i = 0; i < HIST_REVS; i++) {
		struct store_op op;
		char key[32];
		hist_step(cur, i, &op, key, sizeof(key));
		assert_int_equal(store_txn_async(s.st, &op, 1, bulk_done, &b), 0);
		if (i >= HIST_REVS - HIST_KEEP - 1)
			memcpy(kept[i - (HIST_REVS - HIST_KEEP - 1)], cur, sizeof(cur));
	}
	pthread_mutex_lock(&b.mu);
	while (b.pending)
		pthread_cond_wait(&b.cv, &b.mu);
	pthread_mutex_unlock(&b.mu);
	assert_int_equal(b.failed, 0);
	int64_t last = store_revision(s.st);
	assert_int_equal(last, r0 + HIST_REVS);
	int64_t c = last - HIST_KEEP;
	store_close(s.st);
	s.st = NULL;

	int killed = 0;
	for (int round = 0; round < 3; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct store *st = store_open(s.uri, &sc_opts);
			if (!st)
				_exit(2);
			int err = store_compact(st, c);
			_exit(err == 0 || err == -ECOMPACTED ? 0 : 3);
		}
		usleep((useconds_t)(round * 40000));
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
		killed += WIFSIGNALED(status);
	}
	s.st = store_open(s.uri, &sc_opts);
	assert_non_null(s.st);
	assert_int_equal(store_revision(s.st), last);
	int64_t compacted = store_compacted_revision(s.st);
	assert_true(compacted == c || compacted < r0 + 1);
	print_message("# compaction killed %d times of 3; compacted revision after: %lld of %lld\n",
		      killed, (long long)compacted, (long long)c);
	/* Whether the compaction finished or not, every revision it keeps reads as before. */
	for (int64_t rev = c; rev <= last; rev++)
		assert_hist_state(s.st, rev, kept[rev - c]);
	int err = store_compact(s.st, c);
	assert_true(err == 0 || err == -ECOMPACTED);
	for (int64_t rev = c; rev <= last; rev++)
		assert_hist_state(s.st, rev, kept[rev - c]);
	struct store_range_resp resp;
	struct store_range_req req = { .prefix = "/h/" };
	assert_int_equal(store_range(s.st, &req, &resp), 0);
	size_t live = 0;
	for (int k = 0; k < HIST_KEYS; k++)
		live += cur[k][0] != 0;
	assert_int_equal(resp.n, live);
	store_range_resp_free(&resp);
	pthread_mutex_destroy(&b.mu);
	pthread_cond_destroy(&b.cv);
	sc_close(&s);
}

void test_store_watch_txn_events_in_op_order(void **state)
{
	struct sc s;
	struct recorder live, hist;
	(void)state;
	sc_open(&s);
	recorder_init(&live);
	recorder_init(&hist);
	put(s.st, "/t/b", "b0");
	struct store_watch *w = store_watch(s.st, "/t/", 0, recorder_fn, &live);
	assert_non_null(w);
	struct store_op ops[3] = {
		{ STORE_PUT, "/t/c", "c1", 2, STORE_ANY },
		{ STORE_DELETE, "/t/b", NULL, 0, STORE_ANY },
		{ STORE_PUT, "/t/a", "a1", 2, 0 },
	};
	int64_t rev;
	assert_int_equal(store_txn(s.st, ops, 3, &rev, NULL), 0);
	assert_true(recorder_wait(&live, rev));
	struct store_watch *w2 = store_watch(s.st, "/t/", rev, recorder_fn, &hist);
	assert_non_null(w2);
	struct recorder *rs[2] = { &live, &hist };
	for (int i = 0; i < 2; i++) {
		struct recorder *r = rs[i];
		assert_int_equal(r->n, 3);
		assert_string_equal(r->evs[0].key, "/t/c");
		assert_int_equal(r->evs[0].type, STORE_EVENT_PUT);
		assert_string_equal(r->evs[1].key, "/t/b");
		assert_int_equal(r->evs[1].type, STORE_EVENT_DELETE);
		assert_string_equal(r->evs[1].prev_value, "b0");
		assert_string_equal(r->evs[2].key, "/t/a");
		for (int e = 0; e < 3; e++)
			assert_int_equal(r->evs[e].mod_rev, rev);
	}
	store_watch_cancel(w);
	store_watch_cancel(w2);
	recorder_free(&live);
	recorder_free(&hist);
	sc_close(&s);
}

void test_store_stats_count_commits_and_txns(void **state)
{
	struct sc s;
	struct store_stats stats;
	(void)state;
	sc_open(&s);
	for (int i = 0; i < 10; i++)
		put(s.st, "/s", "v");
	store_get_stats(s.st, &stats);
	assert_int_equal(stats.revision, store_revision(s.st));
	assert_int_equal(stats.txns, 10);
	assert_true(stats.commits >= 1 && stats.commits <= 10);
	assert_int_equal(stats.fsync_count, stats.commits);
	assert_true(stats.fsync_sum_us > 0);
	assert_true(stats.fsync_buckets[STORE_FSYNC_NBUCKETS - 1] <= stats.fsync_count);
	for (int i = 1; i < STORE_FSYNC_NBUCKETS; i++)
		assert_true(stats.fsync_buckets[i] >= stats.fsync_buckets[i - 1]);
	assert_true(stats.size_bytes > 0);
	sc_close(&s);
}
