// SPDX-License-Identifier: Apache-2.0
/*
 * The embedded store backend: LMDB in one directory ("lmdb:DIR"), multi-version like etcd.
 *
 * The choice a reader must know: every write goes through one commit thread. It takes every
 * transaction queued since its last round, checks and applies them in order inside a single
 * LMDB write transaction, commits once (one fsync, LMDB's default durable mode), then tells the
 * watchers and then each writer. Concurrent writers thus share fsyncs (group commit), and
 * revisions are handed out by exactly one thread.
 *
 * Three LMDB databases:
 *   kv   key '\0' be64(rev) -> struct kv_hdr (create_rev, mod_rev, version, tombstone) + value;
 *        every version of every key, until compaction. A read at revision R seeks the newest
 *        entry of the key at or below R.
 *   log  be64(rev) -> struct log_hdr (commit time) + the keys written at rev (u16 length +
 *        bytes each); what watches replay and what compaction walks.
 *   meta "rev", "compacted" -> int64.
 * An empty store is at revision 1 (as etcd); the first write is revision 2.
 *
 * Compaction at C removes, for each key, every version older than its newest version at or
 * below C, and that version too when it is a tombstone; then the log up to C. It marks C in
 * meta first (reads below C fail from then on, and a crash resumes it at the next open), then
 * works in chunks of at most COMPACT_CHUNK_REVS revisions or COMPACT_CHUNK_KEYS keys, one
 * LMDB transaction each, letting queued writers commit between two chunks. The background
 * policy compacts to the newest revision that is both history_revisions old and
 * history_seconds old (each log entry records its commit time).
 *
 * Watches: the commit thread publishes a revision and delivers its events under watch_mu. A
 * new watch replays the log without that lock up to the newest committed revision, then takes
 * the lock, replays what was published meanwhile and registers; live events below what the
 * replay delivered are skipped, so there is no gap and no repetition.
 *
 * Failures: every LMDB error becomes a negative errno (MDB_MAP_FULL: -ENOSPC) with a log line
 * naming the operation; a batch that fails is aborted whole and its transactions are retried
 * one LMDB transaction each, so one bad transaction fails alone and nothing is half-written.
 *
 * Limits and choices beyond store.h:
 *   - keys up to 502 bytes (LMDB's key limit less the 9-byte suffix): -ENAMETOOLONG;
 *     at most MAX_TXN_OPS ops per transaction, and a key at most once in one: -EINVAL;
 *   - a read at a revision the store has not reached: -ERANGE;
 *   - store_compact at or below the compacted revision: -ECOMPACTED; above the current: -ERANGE;
 *   - store_txn from a watch or done callback, or store_watch from a watch callback: -EDEADLK
 *     (errno EDEADLK), since the thread would wait on itself; store_txn_async is fine there;
 *   - one store_open per directory at a time (flock on DIR/shoal.lock): EBUSY;
 *   - a data file unlinked under a running store (its directory removed): writes fail with
 *     -ENOENT instead of vanishing into the unlinked file;
 *   - store_close frees the watches still registered: cancel them before, not after.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "store.h"
#include "store_backend.h"

#define MAX_BATCH 1024		  /* transactions per LMDB commit */
#define MAX_BATCH_OPS 16384	  /* and operations, so one commit stays bounded */
#define MAX_TXN_OPS 4096	  /* operations per transaction */
#define COMPACT_CHUNK_REVS 256	  /* at most this many revisions compacted per LMDB txn */
#define COMPACT_CHUNK_KEYS 512	  /* and about this many key versions */
#define REPLAY_BATCH_EVENTS 512	  /* events per watch callback during replay */
#define RANGE_MAX_STEPS 8	  /* versions of one key a range steps through before seeking */
#define LMDB_MAX_READERS 1024
#define KEY_SUFFIX 9 /* '\0' + be64 revision */

#define KV_TOMBSTONE 1u

struct kv_hdr {
	int64_t create_rev;
	int64_t mod_rev;
	int64_t version;
	uint32_t flags;
	uint32_t pad;
};

struct log_hdr {
	int64_t time_ms; /* wall clock of the commit, for the time-based compaction policy */
	uint32_t nkeys;
	uint32_t pad;
};

/* A queued transaction: one allocation holding the struct, ops, results, keys and values. */
struct ltxn {
	struct ltxn *next;
	size_t n;
	struct store_op *ops; /* keys and values copied, each followed by a NUL */
	struct store_result *res;
	store_done_fn done;
	void *arg;
	int err;
	int64_t rev;
};

struct lwatch {
	struct store_watch base;
	struct lstore *st;
	char *prefix;
	size_t plen;
	store_watch_fn fn;
	void *arg;
	int64_t next_rev; /* events below it were delivered by the replay */
	int cancelled;
	struct lwatch *next;
};

struct lstore {
	struct store base;
	MDB_env *env;
	MDB_dbi kv, log, meta;
	char *dir;
	int lock_fd; /* flock'd: one process (and one store_open) per directory */
	struct store_opts opts;
	size_t max_key;

	_Atomic int64_t rev; /* published: committed and delivered to watchers */
	_Atomic int64_t compacted;

	/* The commit queue. */
	pthread_mutex_t q_mu;
	pthread_cond_t q_cv;
	struct ltxn *q_head, **q_tail;
	int stopping, q_closed;
	int batch_busy;		  /* the commit thread holds a batch */
	uint64_t commit_seq;	  /* batches done; compaction waits for one between chunks */
	pthread_cond_t batch_cv; /* signalled when commit_seq moves */
	pthread_t commit_thr;

	/* Watches; held by the commit thread while it publishes a revision and delivers it. */
	pthread_mutex_t watch_mu;
	struct lwatch *watches;
	struct store_event *scratch; /* commit thread: events of one batch for one watch */
	size_t scratch_cap;

	/* Compaction: one at a time; a background thread runs the policy. */
	pthread_mutex_t compact_mu;
	pthread_mutex_t bg_mu;
	pthread_cond_t bg_cv;
	int bg_stop, bg_running;
	pthread_t bg_thr;

	pthread_mutex_t stats_mu;
	struct store_stats stats;
};

/* The store whose watchers this thread is calling right now (commit thread or replay). */
static __thread struct lstore *lmdb_delivering;
static __thread struct lstore *lmdb_committing;

static int lmdb_errno(int rc)
{
	switch (rc) {
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return ENOSPC;
	case MDB_NOTFOUND:
		return ENOENT;
	case MDB_KEYEXIST:
		return EEXIST;
	case MDB_READERS_FULL:
	case MDB_TLS_FULL:
		return EAGAIN;
	case MDB_BAD_VALSIZE:
		return EINVAL;
	case MDB_MAP_RESIZED:
		return ESTALE;
	default:
		return rc > 0 ? rc : EIO;
	}
}

static int lmdb_fail(struct lstore *st, const char *what, int rc)
{
	int err = lmdb_errno(rc);
	log_warn("store lmdb:%s: %s: %s", st->dir, what, mdb_strerror(rc));
	return -err;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void put_be64(uint8_t *p, int64_t v)
{
	uint64_t be = htobe64((uint64_t)v);
	memcpy(p, &be, 8);
}

static int64_t get_be64(const void *p)
{
	uint64_t be;
	memcpy(&be, p, 8);
	return (int64_t)be64toh(be);
}

/* key '\0' be64(rev) into buf (klen + KEY_SUFFIX bytes). */
static void kv_key(uint8_t *buf, const char *key, size_t klen, int64_t rev)
{
	memcpy(buf, key, klen);
	buf[klen] = 0;
	put_be64(buf + klen + 1, rev);
}

/* The user key of a kv db key: its length, or -1 when k is not a well-formed kv key. */
static ssize_t kv_key_len(const MDB_val *k)
{
	if (k->mv_size < KEY_SUFFIX || ((const char *)k->mv_data)[k->mv_size - KEY_SUFFIX] != 0)
		return -1;
	return (ssize_t)(k->mv_size - KEY_SUFFIX);
}

/* One version of a key, pointing into LMDB's memory (valid during the LMDB txn). */
struct kver {
	struct kv_hdr h;
	int64_t rev;
	const char *val;
	size_t vlen;
};

static int kver_decode(const MDB_val *k, const MDB_val *d, struct kver *v)
{
	if (d->mv_size < sizeof(v->h) || k->mv_size < KEY_SUFFIX)
		return -EIO;
	memcpy(&v->h, d->mv_data, sizeof(v->h));
	v->rev = get_be64((const char *)k->mv_data + k->mv_size - 8);
	v->val = (const char *)d->mv_data + sizeof(v->h);
	v->vlen = d->mv_size - sizeof(v->h);
	return 0;
}

/*
 * The newest version of key at or below rev. Returns 1 when found (tombstones included), 0
 * when the key has no version at or below rev, or a negative errno.
 */
static int kv_seek_le(struct lstore *st, MDB_cursor *c, const char *key, size_t klen,
		      int64_t rev, struct kver *v)
{
	uint8_t buf[klen + KEY_SUFFIX];
	MDB_val k = { .mv_size = sizeof(buf), .mv_data = buf }, d;
	int rc;

	kv_key(buf, key, klen, rev + 1);
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(c, &k, &d, MDB_LAST);
	else if (rc == 0)
		rc = mdb_cursor_get(c, &k, &d, MDB_PREV);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return lmdb_fail(st, "seek key", rc);
	if (kv_key_len(&k) != (ssize_t)klen || memcmp(k.mv_data, key, klen) != 0)
		return 0;
	rc = kver_decode(&k, &d, v);
	if (rc) {
		log_warn("store lmdb:%s: corrupt record of key %s", st->dir, key);
		return rc;
	}
	return 1;
}

static int kv_fill(struct store_kv *out, const char *key, size_t klen, const struct kver *v)
{
	out->key = strndup(key, klen);
	out->value = malloc(v->vlen + 1);
	if (!out->key || !out->value) {
		store_kv_clear(out);
		return -ENOMEM;
	}
	memcpy(out->value, v->val, v->vlen);
	out->value[v->vlen] = 0;
	out->value_len = v->vlen;
	out->create_rev = v->h.create_rev;
	out->mod_rev = v->h.mod_rev;
	out->version = v->h.version;
	return 0;
}

static int meta_get(struct lstore *st, MDB_txn *txn, const char *name, int64_t *out)
{
	MDB_val k = { .mv_size = strlen(name), .mv_data = (void *)name }, d;
	int rc = mdb_get(txn, st->meta, &k, &d);
	if (rc == MDB_NOTFOUND) {
		*out = 0;
		return 0;
	}
	if (rc)
		return lmdb_fail(st, "read meta", rc);
	if (d.mv_size != 8)
		return -EIO;
	memcpy(out, d.mv_data, 8);
	return 0;
}

static int meta_put(struct lstore *st, MDB_txn *txn, const char *name, int64_t v)
{
	MDB_val k = { .mv_size = strlen(name), .mv_data = (void *)name };
	MDB_val d = { .mv_size = 8, .mv_data = &v };
	int rc = mdb_put(txn, st->meta, &k, &d, 0);
	return rc ? lmdb_fail(st, "write meta", rc) : 0;
}

/* A read transaction with the snapshot's revision and compaction revision. */
static int read_begin(struct lstore *st, MDB_txn **txn, int64_t *rev, int64_t *compacted)
{
	int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, txn);
	if (rc)
		return lmdb_fail(st, "begin read", rc);
	if ((rc = meta_get(st, *txn, "rev", rev)) ||
	    (rc = meta_get(st, *txn, "compacted", compacted))) {
		mdb_txn_abort(*txn);
		*txn = NULL;
	}
	return rc;
}

/* The revision to read at: 0 is the snapshot's; older than compacted or newer than the
 * snapshot are errors. */
static int read_rev(int64_t at_rev, int64_t snap, int64_t compacted, int64_t *out)
{
	if (at_rev == 0)
		at_rev = snap;
	if (at_rev < compacted)
		return -ECOMPACTED;
	if (at_rev > snap)
		return -ERANGE;
	*out = at_rev;
	return 0;
}

/* ---- reads ---- */

static int lmdb_get(struct store *s, const char *key, int64_t at_rev, struct store_kv *out)
{
	struct lstore *st = (struct lstore *)s;
	size_t klen = strlen(key);
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	int64_t snap, compacted, rev;
	struct kver v;
	int err, rc;

	if (klen > st->max_key)
		return -ENOENT;
	err = read_begin(st, &txn, &snap, &compacted);
	if (err)
		return err;
	err = read_rev(at_rev, snap, compacted, &rev);
	if (err)
		goto out;
	rc = mdb_cursor_open(txn, st->kv, &c);
	if (rc) {
		err = lmdb_fail(st, "open cursor", rc);
		goto out;
	}
	err = kv_seek_le(st, c, key, klen, rev, &v);
	if (err == 1)
		err = (v.h.flags & KV_TOMBSTONE) ? -ENOENT : kv_fill(out, key, klen, &v);
	else if (err == 0)
		err = -ENOENT;
out:
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return err;
}

static int range_push(struct store_range_resp *out, size_t *cap, const char *key, size_t klen,
		      const struct kver *v)
{
	if (out->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct store_kv *kvs = realloc(out->kvs, ncap * sizeof(*kvs));
		if (!kvs)
			return -ENOMEM;
		out->kvs = kvs;
		*cap = ncap;
	}
	memset(&out->kvs[out->n], 0, sizeof(out->kvs[0]));
	int err = kv_fill(&out->kvs[out->n], key, klen, v);
	if (err == 0)
		out->n++;
	return err;
}

static int lmdb_range(struct store *s, const struct store_range_req *req,
		      struct store_range_resp *out)
{
	struct lstore *st = (struct lstore *)s;
	const char *prefix = req->prefix ? req->prefix : "";
	size_t plen = strlen(prefix);
	const char *start = prefix;
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	int64_t snap, compacted, rev;
	size_t cap = 0;
	int err, rc;

	if (req->start_key && strcmp(req->start_key, prefix) > 0)
		start = req->start_key;
	err = read_begin(st, &txn, &snap, &compacted);
	if (err)
		return err;
	err = read_rev(req->at_rev, snap, compacted, &rev);
	if (err)
		goto out;
	out->rev = rev;
	rc = mdb_cursor_open(txn, st->kv, &c);
	if (rc) {
		err = lmdb_fail(st, "open cursor", rc);
		goto out;
	}
	MDB_val k = { .mv_size = strlen(start), .mv_data = (void *)start }, d;
	if (k.mv_size == 0)
		rc = mdb_cursor_get(c, &k, &d, MDB_FIRST);
	else
		rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	while (rc == 0) {
		ssize_t kl = kv_key_len(&k);
		if (kl < 0) {
			err = -EIO;
			log_warn("store lmdb:%s: range: malformed key in kv database", st->dir);
			goto out;
		}
		size_t klen = (size_t)kl;
		if (klen < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		const char *key = k.mv_data; /* stays valid: a read txn's pages do not move */
		struct kver v;
		int found = 0;
		err = 0;
		/* The key's versions are in revision order: step through a few (most keys have
		 * one or two), and seek past long histories. */
		for (int steps = 0;; steps++) {
			struct kver cur;
			if (steps == RANGE_MAX_STEPS) {
				err = kv_seek_le(st, c, key, klen, rev, &v);
				if (err < 0)
					goto out;
				found = err;
				rc = MDB_NOTFOUND; /* not positioned on the next key: seek below */
				break;
			}
			if ((err = kver_decode(&k, &d, &cur)) < 0)
				goto out;
			if (cur.rev > rev) {
				rc = MDB_NOTFOUND;
				break;
			}
			v = cur;
			found = 1;
			rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
			if (rc || kv_key_len(&k) != (ssize_t)klen ||
			    memcmp(k.mv_data, key, klen) != 0)
				break;
		}
		if (found && !(v.h.flags & KV_TOMBSTONE)) {
			out->count++;
			if (!req->count_only) {
				if (req->limit && out->n >= req->limit) {
					out->more = 1;
				} else if ((err = range_push(out, &cap, key, klen, &v)) < 0) {
					goto out;
				}
			}
		}
		err = 0;
		if (rc == 0)
			continue; /* on the next key already */
		if (rc != MDB_NOTFOUND)
			break;
		/* The next key: past every version of this one. */
		uint8_t next[klen + KEY_SUFFIX];
		memcpy(next, key, klen);
		next[klen] = 0;
		memset(next + klen + 1, 0xff, 8);
		k.mv_size = sizeof(next);
		k.mv_data = next;
		rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	}
	if (rc && rc != MDB_NOTFOUND)
		err = lmdb_fail(st, "range", rc);
out:
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (err)
		store_range_resp_free(out);
	return err;
}

/* ---- writes: the commit thread ---- */

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int lmdb_txn_async(struct store *s, const struct store_op *ops, size_t n,
			  store_done_fn done, void *arg)
{
	struct lstore *st = (struct lstore *)s;
	size_t bytes = sizeof(struct ltxn) +
		       n * (sizeof(struct store_op) + sizeof(struct store_result));
	const char **keys = NULL;
	int err = 0;

	if (n == 0 || n > MAX_TXN_OPS || !ops)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		const struct store_op *op = &ops[i];
		if (!op->key || !*op->key || (op->type != STORE_PUT && op->type != STORE_DELETE) ||
		    op->expect_mod_rev < STORE_ANY ||
		    (op->type == STORE_PUT && !op->value && op->value_len))
			return -EINVAL;
		size_t klen = strlen(op->key);
		if (klen > st->max_key)
			return -ENAMETOOLONG;
		bytes += klen + 1;
		if (op->type == STORE_PUT)
			bytes += op->value_len + 1;
	}
	if (n > 1) {
		/* One version per key and revision: a key may appear once per transaction. */
		keys = malloc(n * sizeof(*keys));
		if (!keys)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++)
			keys[i] = ops[i].key;
		qsort(keys, n, sizeof(*keys), key_cmp);
		for (size_t i = 1; i < n && !err; i++)
			if (strcmp(keys[i - 1], keys[i]) == 0)
				err = -EINVAL;
		free(keys);
		if (err)
			return err;
	}

	struct ltxn *t = calloc(1, bytes);
	if (!t)
		return -ENOMEM;
	t->n = n;
	t->ops = (struct store_op *)(t + 1);
	t->res = (struct store_result *)(t->ops + n);
	t->done = done;
	t->arg = arg;
	char *p = (char *)(t->res + n);
	for (size_t i = 0; i < n; i++) {
		size_t klen = strlen(ops[i].key);
		t->ops[i] = ops[i];
		memcpy(p, ops[i].key, klen + 1);
		t->ops[i].key = p;
		p += klen + 1;
		if (ops[i].type == STORE_PUT) {
			if (ops[i].value_len)
				memcpy(p, ops[i].value, ops[i].value_len);
			p[ops[i].value_len] = 0;
			t->ops[i].value = p;
			p += ops[i].value_len + 1;
		} else {
			t->ops[i].value = NULL;
			t->ops[i].value_len = 0;
		}
	}

	pthread_mutex_lock(&st->q_mu);
	if (st->q_closed) {
		pthread_mutex_unlock(&st->q_mu);
		free(t);
		return -ESHUTDOWN;
	}
	*st->q_tail = t;
	st->q_tail = &t->next;
	pthread_cond_signal(&st->q_cv);
	pthread_mutex_unlock(&st->q_mu);
	return 0;
}

/* Checks t's conditions against the write txn (filling prev values) and, when they hold,
 * writes it at revision rev. Returns 0 (t->err tells the conditions' verdict) or a negative
 * errno of LMDB, after which the write txn must be aborted. */
static int apply_txn(struct lstore *st, MDB_txn *txn, MDB_cursor *c, struct ltxn *t, int64_t rev,
		     int64_t time_ms)
{
	size_t logsz = sizeof(struct log_hdr);
	int err;

	t->err = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct store_op *op = &t->ops[i];
		struct store_result *r = &t->res[i];
		size_t klen = strlen(op->key);
		struct kver v;
		int exists;

		store_kv_clear(&r->prev);
		r->err = 0;
		err = kv_seek_le(st, c, op->key, klen, INT64_MAX - 1, &v);
		if (err < 0)
			return err;
		exists = err == 1 && !(v.h.flags & KV_TOMBSTONE);
		if (exists && (err = kv_fill(&r->prev, op->key, klen, &v)) < 0)
			return err;
		if (op->expect_mod_rev == 0 && exists)
			r->err = -EEXIST;
		else if (op->expect_mod_rev > 0 && !exists)
			r->err = -ENOENT;
		else if (op->expect_mod_rev > 0 && v.h.mod_rev != op->expect_mod_rev)
			r->err = -ECONFLICT;
		else if (op->type == STORE_DELETE && !exists)
			r->err = -ENOENT;
		if (r->err && !t->err)
			t->err = r->err;
		logsz += 2 + klen;
	}
	if (t->err)
		return 0;

	for (size_t i = 0; i < t->n; i++) {
		const struct store_op *op = &t->ops[i];
		const struct store_kv *prev = &t->res[i].prev;
		size_t klen = strlen(op->key);
		uint8_t kb[klen + KEY_SUFFIX];
		struct kv_hdr h = { 0 };
		MDB_val k = { .mv_size = sizeof(kb), .mv_data = kb }, d;
		int rc;

		kv_key(kb, op->key, klen, rev);
		h.mod_rev = rev;
		if (op->type == STORE_PUT) {
			h.create_rev = prev->key ? prev->create_rev : rev;
			h.version = prev->key ? prev->version + 1 : 1;
		} else {
			h.create_rev = prev->create_rev;
			h.flags = KV_TOMBSTONE;
		}
		d.mv_size = sizeof(h) + op->value_len;
		rc = mdb_put(txn, st->kv, &k, &d, MDB_RESERVE);
		if (rc)
			return lmdb_fail(st, "write key", rc);
		memcpy(d.mv_data, &h, sizeof(h));
		if (op->value_len)
			memcpy((char *)d.mv_data + sizeof(h), op->value, op->value_len);
	}

	uint8_t lk[8];
	MDB_val k = { .mv_size = 8, .mv_data = lk }, d = { .mv_size = logsz };
	put_be64(lk, rev);
	int rc = mdb_put(txn, st->log, &k, &d, MDB_RESERVE);
	if (rc)
		return lmdb_fail(st, "write revision log", rc);
	struct log_hdr lh = { .time_ms = time_ms, .nkeys = (uint32_t)t->n };
	uint8_t *p = d.mv_data;
	memcpy(p, &lh, sizeof(lh));
	p += sizeof(lh);
	for (size_t i = 0; i < t->n; i++) {
		uint16_t kl = (uint16_t)strlen(t->ops[i].key);
		memcpy(p, &kl, 2);
		memcpy(p + 2, t->ops[i].key, kl);
		p += 2 + kl;
	}
	t->rev = rev;
	return 0;
}

/* The store's data file was unlinked (its directory removed): writing on would lose data. */
static int check_file(struct lstore *st)
{
	mdb_filehandle_t fd;
	struct stat sb;

	if (mdb_env_get_fd(st->env, &fd) == 0 && fstat(fd, &sb) == 0 && sb.st_nlink == 0) {
		log_warn("store lmdb:%s: the data file was removed; refusing writes", st->dir);
		return -ENOENT;
	}
	return 0;
}

/*
 * Applies txns[0..n) in one LMDB transaction and commits it. Returns the number of
 * transactions that committed (rev assigned), or a negative errno: nothing was written.
 */
static int commit_batch(struct lstore *st, struct ltxn **txns, size_t n, int64_t *rev)
{
	int64_t r = *rev, time_ms = now_ms();
	MDB_txn *txn;
	MDB_cursor *c;
	int err, rc, committed = 0;

	err = check_file(st);
	if (err)
		return err;
	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc)
		return lmdb_fail(st, "begin write", rc);
	rc = mdb_cursor_open(txn, st->kv, &c);
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_fail(st, "open cursor", rc);
	}
	for (size_t i = 0; i < n; i++) {
		err = apply_txn(st, txn, c, txns[i], r + 1, time_ms);
		if (err)
			goto abort;
		if (txns[i]->err == 0) {
			r++;
			committed++;
		}
	}
	mdb_cursor_close(c);
	c = NULL;
	if (committed == 0) {
		/* Every condition failed: nothing to write, nothing to sync. */
		mdb_txn_abort(txn);
		return 0;
	}
	if ((err = meta_put(st, txn, "rev", r)))
		goto abort;
	double t0 = mono_us();
	rc = mdb_txn_commit(txn);
	double us = mono_us() - t0;
	if (rc)
		return lmdb_fail(st, "commit", rc);
	pthread_mutex_lock(&st->stats_mu);
	st->stats.commits++;
	st->stats.txns += (uint64_t)committed;
	store_stats_observe_fsync(&st->stats, us);
	pthread_mutex_unlock(&st->stats_mu);
	*rev = r;
	return committed;
abort:
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return err;
}

static int event_matches(const struct lwatch *w, const struct store_event *ev, int64_t rev)
{
	return rev >= w->next_rev && strncmp(ev->kv.key, w->prefix, w->plen) == 0;
}

/* Frees the watches cancelled from inside a callback; called with watch_mu held. */
static void sweep_cancelled(struct lstore *st)
{
	struct lwatch **pp = &st->watches;
	while (*pp) {
		struct lwatch *w = *pp;
		if (w->cancelled) {
			*pp = w->next;
			free(w->prefix);
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

/* Publishes the batch's revisions and delivers its events to every watch, in order. */
static void deliver(struct lstore *st, struct ltxn **txns, size_t n, int64_t rev)
{
	size_t nev = 0;
	for (size_t i = 0; i < n; i++)
		if (txns[i]->err == 0)
			nev += txns[i]->n;

	pthread_mutex_lock(&st->watch_mu);
	atomic_store(&st->rev, rev);
	if (!st->watches || nev == 0)
		goto out;
	if (nev * 2 > st->scratch_cap) {
		free(st->scratch);
		st->scratch_cap = nev * 2;
		st->scratch = malloc(st->scratch_cap * sizeof(*st->scratch));
		if (!st->scratch) {
			st->scratch_cap = 0;
			log_error("store lmdb:%s: out of memory delivering revision %lld",
				  st->dir, (long long)rev);
			goto out;
		}
	}
	/* The first nev entries: every event of the batch; the rest: one watch's selection. */
	struct store_event *all = st->scratch, *sel = st->scratch + nev;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct ltxn *t = txns[i];
		if (t->err)
			continue;
		for (size_t j = 0; j < t->n; j++) {
			struct store_event *ev = &all[k++];
			const struct store_op *op = &t->ops[j];
			const struct store_kv *prev = &t->res[j].prev;
			memset(ev, 0, sizeof(*ev));
			ev->kv.key = (char *)op->key;
			ev->kv.mod_rev = t->rev;
			ev->prev = *prev;
			if (op->type == STORE_PUT) {
				ev->type = STORE_EVENT_PUT;
				ev->kv.value = (char *)op->value;
				ev->kv.value_len = op->value_len;
				ev->kv.create_rev = prev->key ? prev->create_rev : t->rev;
				ev->kv.version = prev->key ? prev->version + 1 : 1;
			} else {
				ev->type = STORE_EVENT_DELETE;
			}
		}
	}
	lmdb_delivering = st;
	for (struct lwatch *w = st->watches; w; w = w->next) {
		size_t m = 0;
		if (w->cancelled)
			continue;
		for (size_t e = 0; e < nev; e++)
			if (event_matches(w, &all[e], all[e].kv.mod_rev))
				sel[m++] = all[e];
		if (m)
			w->fn(w->arg, sel, m);
		if (w->next_rev <= rev)
			w->next_rev = rev + 1;
	}
	lmdb_delivering = NULL;
	sweep_cancelled(st);
out:
	pthread_mutex_unlock(&st->watch_mu);
}

static void finish_txn(struct ltxn *t, int64_t rev)
{
	if (t->done)
		t->done(t->arg, t->err, t->err ? rev : t->rev, t->res, t->n);
	store_results_clear(t->res, t->n);
	free(t);
}

static void *commit_main(void *arg)
{
	struct lstore *st = arg;
	struct ltxn *batch[MAX_BATCH];

	lmdb_committing = st;
	for (;;) {
		size_t n = 0;
		pthread_mutex_lock(&st->q_mu);
		while (!st->q_head && !st->stopping)
			pthread_cond_wait(&st->q_cv, &st->q_mu);
		if (!st->q_head) {
			st->q_closed = 1;
			pthread_mutex_unlock(&st->q_mu);
			break;
		}
		st->batch_busy = 1;
		size_t nops = 0;
		while (st->q_head && n < MAX_BATCH &&
		       (n == 0 || nops + st->q_head->n <= MAX_BATCH_OPS)) {
			nops += st->q_head->n;
			batch[n++] = st->q_head;
			st->q_head = st->q_head->next;
		}
		if (!st->q_head)
			st->q_tail = &st->q_head;
		pthread_mutex_unlock(&st->q_mu);

		int64_t rev = atomic_load(&st->rev);
		int res = commit_batch(st, batch, n, &rev);
		if (res >= 0) {
			deliver(st, batch, n, rev);
		} else if (n > 1) {
			/* One of them may be what failed: retry each alone, so that the others
			 * commit. */
			for (size_t i = 0; i < n; i++) {
				int r1 = commit_batch(st, &batch[i], 1, &rev);
				if (r1 < 0)
					batch[i]->err = r1;
				else
					deliver(st, &batch[i], 1, rev);
			}
		} else {
			batch[0]->err = res;
		}
		for (size_t i = 0; i < n; i++)
			finish_txn(batch[i], rev);
		pthread_mutex_lock(&st->q_mu);
		st->batch_busy = 0;
		st->commit_seq++;
		pthread_cond_broadcast(&st->batch_cv);
		pthread_mutex_unlock(&st->q_mu);
	}
	lmdb_committing = NULL;
	return NULL;
}

static int lmdb_in_callback(struct store *s)
{
	struct lstore *st = (struct lstore *)s;
	return lmdb_committing == st || lmdb_delivering == st;
}

/* ---- watch ---- */

struct replay {
	struct store_event *evs;
	size_t n, cap;
};

static void replay_flush(struct lwatch *w, struct replay *rp)
{
	if (rp->n)
		w->fn(w->arg, rp->evs, rp->n);
	for (size_t i = 0; i < rp->n; i++) {
		store_kv_clear(&rp->evs[i].kv);
		store_kv_clear(&rp->evs[i].prev);
	}
	rp->n = 0;
}

/* Delivers the events of revisions [w->next_rev, upto] from the log, then advances
 * w->next_rev past upto. */
static int replay(struct lstore *st, struct lwatch *w, int64_t upto)
{
	struct replay rp = { 0 };
	MDB_txn *txn = NULL;
	MDB_cursor *lc = NULL, *kc = NULL;
	int64_t snap, compacted;
	uint8_t lk[8];
	int err, rc;

	if (w->next_rev > upto)
		return 0;
	err = read_begin(st, &txn, &snap, &compacted);
	if (err)
		return err;
	if (w->next_rev <= compacted) {
		err = -ECOMPACTED;
		goto out;
	}
	if (upto > snap)
		upto = snap;
	if ((rc = mdb_cursor_open(txn, st->log, &lc)) || (rc = mdb_cursor_open(txn, st->kv, &kc))) {
		err = lmdb_fail(st, "open cursor", rc);
		goto out;
	}
	put_be64(lk, w->next_rev);
	MDB_val k = { .mv_size = 8, .mv_data = lk }, d;
	for (rc = mdb_cursor_get(lc, &k, &d, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(lc, &k, &d, MDB_NEXT)) {
		int64_t rev = get_be64(k.mv_data);
		struct log_hdr lh;
		if (rev > upto)
			break;
		if (d.mv_size < sizeof(lh)) {
			err = -EIO;
			goto out;
		}
		memcpy(&lh, d.mv_data, sizeof(lh));
		const uint8_t *p = (const uint8_t *)d.mv_data + sizeof(lh),
			      *end = (const uint8_t *)d.mv_data + d.mv_size;
		for (uint32_t i = 0; i < lh.nkeys; i++) {
			uint16_t kl;
			if (p + 2 > end) {
				err = -EIO;
				goto out;
			}
			memcpy(&kl, p, 2);
			if (p + 2 + kl > end) {
				err = -EIO;
				goto out;
			}
			const char *key = (const char *)p + 2;
			p += 2 + kl;
			if (kl < w->plen || memcmp(key, w->prefix, w->plen) != 0)
				continue;
			struct kver cur, prev;
			err = kv_seek_le(st, kc, key, kl, rev, &cur);
			if (err < 0)
				goto out;
			if (err == 0 || cur.rev != rev) {
				log_warn("store lmdb:%s: revision %lld lists a key it lacks",
					 st->dir, (long long)rev);
				err = -EIO;
				goto out;
			}
			int has_prev = kv_seek_le(st, kc, key, kl, rev - 1, &prev);
			if (has_prev < 0) {
				err = has_prev;
				goto out;
			}
			if (rp.n == rp.cap) {
				size_t ncap = rp.cap ? rp.cap * 2 : 64;
				struct store_event *ne = realloc(rp.evs, ncap * sizeof(*ne));
				if (!ne) {
					err = -ENOMEM;
					goto out;
				}
				rp.evs = ne;
				rp.cap = ncap;
			}
			struct store_event *ev = &rp.evs[rp.n];
			memset(ev, 0, sizeof(*ev));
			if (has_prev && !(prev.h.flags & KV_TOMBSTONE) &&
			    (err = kv_fill(&ev->prev, key, kl, &prev)) < 0)
				goto out;
			if (cur.h.flags & KV_TOMBSTONE) {
				ev->type = STORE_EVENT_DELETE;
				ev->kv.key = strndup(key, kl);
				ev->kv.mod_rev = rev;
				err = ev->kv.key ? 0 : -ENOMEM;
			} else {
				ev->type = STORE_EVENT_PUT;
				err = kv_fill(&ev->kv, key, kl, &cur);
			}
			rp.n++; /* cleared by replay_flush even when half-filled */
			if (err)
				goto out;
		}
		w->next_rev = rev + 1;
		if (rp.n >= REPLAY_BATCH_EVENTS)
			replay_flush(w, &rp);
	}
	if (rc && rc != MDB_NOTFOUND) {
		err = lmdb_fail(st, "read revision log", rc);
		goto out;
	}
	err = 0;
	replay_flush(w, &rp);
	if (w->next_rev <= upto)
		w->next_rev = upto + 1;
out:
	if (err) {
		for (size_t i = 0; i < rp.n; i++) {
			store_kv_clear(&rp.evs[i].kv);
			store_kv_clear(&rp.evs[i].prev);
		}
	}
	free(rp.evs);
	mdb_cursor_close(kc);
	mdb_cursor_close(lc);
	mdb_txn_abort(txn);
	return err;
}

static struct store_watch *lmdb_watch(struct store *s, const char *prefix, int64_t from_rev,
				      store_watch_fn fn, void *arg)
{
	struct lstore *st = (struct lstore *)s;
	struct lwatch *w;
	int err = 0;

	if (lmdb_delivering == st) {
		/* Registering takes the lock the caller's own delivery holds. */
		log_warn("store lmdb:%s: watch %s from a store callback", st->dir, prefix);
		errno = EDEADLK;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w || !(w->prefix = strdup(prefix))) {
		free(w);
		errno = ENOMEM;
		return NULL;
	}
	w->st = st;
	w->plen = strlen(prefix);
	w->fn = fn;
	w->arg = arg;
	if (from_rev > 0) {
		w->next_rev = from_rev;
		if (from_rev <= atomic_load(&st->compacted)) {
			err = -ECOMPACTED;
			goto fail;
		}
		/* History up to the newest committed revision, without holding up commits; again
		 * while much was published meanwhile, so that the part replayed under the lock
		 * below stays small. */
		for (int round = 0; round < 4; round++) {
			err = replay(st, w, INT64_MAX);
			if (err)
				goto fail;
			if (atomic_load(&st->rev) - w->next_rev < REPLAY_BATCH_EVENTS)
				break;
		}
	}
	pthread_mutex_lock(&st->watch_mu);
	int64_t pub = atomic_load(&st->rev);
	if (from_rev == 0) {
		w->next_rev = pub + 1;
	} else if (w->next_rev <= pub) {
		/* What was published while we replayed: the commit thread waits for this. */
		lmdb_delivering = st;
		err = replay(st, w, pub);
		lmdb_delivering = NULL;
		sweep_cancelled(st);
	}
	if (err == 0) {
		w->next = st->watches;
		st->watches = w;
	}
	pthread_mutex_unlock(&st->watch_mu);
	if (err)
		goto fail;
	return &w->base;
fail:
	if (err != -ECOMPACTED)
		log_warn("store lmdb:%s: watch %s from %lld: %s", st->dir, prefix,
			 (long long)from_rev, shoal_strerror(err));
	free(w->prefix);
	free(w);
	errno = -err;
	return NULL;
}

static void lmdb_watch_cancel(struct store_watch *sw)
{
	struct lwatch *w = (struct lwatch *)sw;
	struct lstore *st = w->st;

	if (lmdb_delivering == st) {
		/* From a callback: the delivering thread frees it before it lets go. */
		w->cancelled = 1;
		return;
	}
	pthread_mutex_lock(&st->watch_mu);
	for (struct lwatch **pp = &st->watches; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	pthread_mutex_unlock(&st->watch_mu);
	free(w->prefix);
	free(w);
}

/* ---- compaction ---- */

/*
 * Compaction of one key written at revision rev (<= c): when rev is the key's newest version
 * at or below c, removes every older version, and this one too if it is a tombstone. (Older
 * versions may predate an earlier compaction, whose log entries are gone, so they are found
 * in the kv db, not through the log.)
 */
static int compact_key(struct lstore *st, MDB_txn *txn, MDB_cursor *kc, const char *key,
		       size_t kl, int64_t rev, int64_t c)
{
	struct kver latest, old;
	uint8_t kb[kl + KEY_SUFFIX];
	MDB_val dk = { .mv_size = sizeof(kb), .mv_data = kb };
	int err, rc;

	err = kv_seek_le(st, kc, key, kl, c, &latest);
	if (err <= 0 || latest.rev != rev)
		return err < 0 ? err : 0;
	for (;;) {
		err = kv_seek_le(st, kc, key, kl, rev - 1, &old);
		if (err <= 0)
			break;
		kv_key(kb, key, kl, old.rev);
		rc = mdb_del(txn, st->kv, &dk, NULL);
		if (rc)
			return lmdb_fail(st, "compact key", rc);
	}
	if (err < 0)
		return err;
	if (latest.h.flags & KV_TOMBSTONE) {
		kv_key(kb, key, kl, rev);
		rc = mdb_del(txn, st->kv, &dk, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return lmdb_fail(st, "compact key", rc);
	}
	return 0;
}

/* Compacts one chunk of the log at or below c. Returns 1 when more remains, 0 when done. */
static int compact_chunk(struct lstore *st, int64_t c)
{
	MDB_txn *txn;
	MDB_cursor *lc = NULL, *kc = NULL;
	MDB_val k, d;
	int err = 0, rc, nrev = 0, nkeys = 0;

	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc)
		return lmdb_fail(st, "begin compaction", rc);
	if ((rc = mdb_cursor_open(txn, st->log, &lc)) || (rc = mdb_cursor_open(txn, st->kv, &kc))) {
		err = lmdb_fail(st, "open cursor", rc);
		goto out;
	}
	for (rc = mdb_cursor_get(lc, &k, &d, MDB_FIRST);
	     rc == 0 && nrev < COMPACT_CHUNK_REVS && nkeys < COMPACT_CHUNK_KEYS;
	     rc = mdb_cursor_get(lc, &k, &d, MDB_FIRST), nrev++) {
		if (k.mv_size != 8) {
			err = -EIO;
			goto out;
		}
		int64_t rev = get_be64(k.mv_data);
		if (rev > c)
			break;
		/* Copy the entry: deleting from the kv db does not move it, but be plain. */
		size_t len = d.mv_size;
		uint8_t *ent = malloc(len ? len : 1);
		if (!ent) {
			err = -ENOMEM;
			goto out;
		}
		memcpy(ent, d.mv_data, len);
		struct log_hdr lh;
		const uint8_t *p = ent + sizeof(lh), *end = ent + len;
		if (len < sizeof(lh)) {
			free(ent);
			err = -EIO;
			goto out;
		}
		memcpy(&lh, ent, sizeof(lh));
		nkeys += (int)lh.nkeys;
		for (uint32_t i = 0; i < lh.nkeys && p + 2 <= end; i++) {
			uint16_t kl;
			memcpy(&kl, p, 2);
			if (p + 2 + kl > end)
				break;
			const char *key = (const char *)p + 2;
			p += 2 + kl;
			err = compact_key(st, txn, kc, key, kl, rev, c);
			if (err) {
				free(ent);
				goto out;
			}
		}
		free(ent);
		uint8_t lk[8];
		put_be64(lk, rev);
		MDB_val dl = { .mv_size = 8, .mv_data = lk };
		rc = mdb_del(txn, st->log, &dl, NULL);
		if (rc) {
			err = lmdb_fail(st, "compact revision log", rc);
			goto out;
		}
	}
	if (rc && rc != MDB_NOTFOUND) {
		err = lmdb_fail(st, "compaction scan", rc);
		goto out;
	}
	int more = rc == 0 && (nrev >= COMPACT_CHUNK_REVS || nkeys >= COMPACT_CHUNK_KEYS);
	mdb_cursor_close(kc);
	mdb_cursor_close(lc);
	kc = lc = NULL;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc)
		return lmdb_fail(st, "commit compaction", rc);
	return more;
out:
	mdb_cursor_close(kc);
	mdb_cursor_close(lc);
	mdb_txn_abort(txn);
	return err;
}

/* Between two chunks: when writers are queued, let the commit thread take one batch first
 * (LMDB's writer lock is not fair, and compaction would otherwise take it again at once). */
static void compact_yield(struct lstore *st)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 100 * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&st->q_mu);
	uint64_t seq = st->commit_seq;
	while ((st->q_head || st->batch_busy) && st->commit_seq == seq && !st->q_closed &&
	       pthread_cond_timedwait(&st->batch_cv, &st->q_mu, &ts) == 0)
		;
	pthread_mutex_unlock(&st->q_mu);
}

/* Removes the history at or below c that compaction to c leaves no reader for. */
static int compact_run(struct lstore *st, int64_t c)
{
	int err;
	while ((err = compact_chunk(st, c)) == 1) {
		compact_yield(st);
		pthread_mutex_lock(&st->bg_mu);
		int stop = st->bg_stop;
		pthread_mutex_unlock(&st->bg_mu);
		if (stop)
			return 0; /* resumed at the next open or compaction */
	}
	return err;
}

static int lmdb_compact(struct store *s, int64_t rev)
{
	struct lstore *st = (struct lstore *)s;
	MDB_txn *txn;
	int err, rc;

	pthread_mutex_lock(&st->compact_mu);
	if (rev <= atomic_load(&st->compacted)) {
		err = -ECOMPACTED;
		goto out;
	}
	if (rev > atomic_load(&st->rev)) {
		err = -ERANGE;
		goto out;
	}
	/* First the mark, so that readers of older revisions fail from now on. */
	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc) {
		err = lmdb_fail(st, "begin compaction", rc);
		goto out;
	}
	err = meta_put(st, txn, "compacted", rev);
	if (err) {
		mdb_txn_abort(txn);
		goto out;
	}
	rc = mdb_txn_commit(txn);
	if (rc) {
		err = lmdb_fail(st, "commit compaction mark", rc);
		goto out;
	}
	atomic_store(&st->compacted, rev);
	err = compact_run(st, rev);
out:
	pthread_mutex_unlock(&st->compact_mu);
	return err;
}

/* The policy's target: the newest revision that is both history_revisions behind the current
 * one and history_seconds old. 0 when there is nothing to compact. */
static int64_t compact_target(struct lstore *st)
{
	int64_t cur = atomic_load(&st->rev), c = cur - st->opts.history_revisions;
	int64_t cutoff = now_ms() - st->opts.history_seconds * 1000, target = 0;
	int64_t compacted = atomic_load(&st->compacted);
	MDB_txn *txn;
	MDB_cursor *lc;
	MDB_val k, d;
	uint8_t lk[8];
	int rc;

	if (c <= compacted)
		return 0;
	if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn))
		return 0;
	if (mdb_cursor_open(txn, st->log, &lc)) {
		mdb_txn_abort(txn);
		return 0;
	}
	put_be64(lk, compacted + 1);
	k.mv_size = 8;
	k.mv_data = lk;
	for (rc = mdb_cursor_get(lc, &k, &d, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(lc, &k, &d, MDB_NEXT)) {
		struct log_hdr lh;
		int64_t rev = get_be64(k.mv_data);
		if (rev > c || d.mv_size < sizeof(lh))
			break;
		memcpy(&lh, d.mv_data, sizeof(lh));
		if (lh.time_ms > cutoff)
			break;
		target = rev;
	}
	mdb_cursor_close(lc);
	mdb_txn_abort(txn);
	return target > compacted ? target : 0;
}

static void *compact_main(void *arg)
{
	struct lstore *st = arg;

	pthread_mutex_lock(&st->bg_mu);
	while (!st->bg_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t ns = ts.tv_nsec + (st->opts.compact_interval_ms % 1000) * 1000000;
		ts.tv_sec += st->opts.compact_interval_ms / 1000 + ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		while (!st->bg_stop && pthread_cond_timedwait(&st->bg_cv, &st->bg_mu, &ts) == 0)
			;
		if (st->bg_stop)
			break;
		pthread_mutex_unlock(&st->bg_mu);
		int64_t c = compact_target(st);
		if (c > 0) {
			int err = lmdb_compact(&st->base, c);
			if (err && err != -ECOMPACTED)
				log_warn("store lmdb:%s: background compaction to %lld: %s",
					 st->dir, (long long)c, shoal_strerror(err));
		}
		pthread_mutex_lock(&st->bg_mu);
	}
	pthread_mutex_unlock(&st->bg_mu);
	return NULL;
}

/* ---- open, close, stats ---- */

static int64_t lmdb_revision(struct store *s)
{
	return atomic_load(&((struct lstore *)s)->rev);
}

static int64_t lmdb_compacted_revision(struct store *s)
{
	return atomic_load(&((struct lstore *)s)->compacted);
}

static void lmdb_get_stats(struct store *s, struct store_stats *out)
{
	struct lstore *st = (struct lstore *)s;
	MDB_envinfo info;
	MDB_stat ms;

	pthread_mutex_lock(&st->stats_mu);
	*out = st->stats;
	pthread_mutex_unlock(&st->stats_mu);
	out->revision = atomic_load(&st->rev);
	out->compacted = atomic_load(&st->compacted);
	if (mdb_env_info(st->env, &info) == 0 && mdb_env_stat(st->env, &ms) == 0)
		out->size_bytes = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
}

/* A data file shorter than its own last page (truncated, or cut by a full disk copied
 * elsewhere) would fault on first access to the missing pages: refuse it. */
static int check_size(struct lstore *st)
{
	mdb_filehandle_t fd;
	MDB_envinfo info;
	MDB_stat ms;
	struct stat sb;
	int rc;

	if ((rc = mdb_env_info(st->env, &info)) || (rc = mdb_env_stat(st->env, &ms)))
		return lmdb_fail(st, "read environment info", rc);
	if ((rc = mdb_env_get_fd(st->env, &fd)))
		return lmdb_fail(st, "get data file", rc);
	if (fstat(fd, &sb))
		return -errno;
	if ((uint64_t)(info.me_last_pgno + 1) * ms.ms_psize > (uint64_t)sb.st_size) {
		log_error("store lmdb:%s: data file is %lld bytes but its last page ends at %llu: "
			  "truncated or corrupt",
			  st->dir, (long long)sb.st_size,
			  (unsigned long long)(info.me_last_pgno + 1) * ms.ms_psize);
		return -EIO;
	}
	return 0;
}

/* The commit thread hands out revisions, so a second writer on the same files (another
 * shoald on the same state directory) would hand out the same ones: refuse it. */
static int lock_dir(struct lstore *st)
{
	char path[4096];
	int err;

	if (snprintf(path, sizeof(path), "%s/shoal.lock", st->dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->lock_fd < 0) {
		err = -errno;
		log_warn("store lmdb:%s: open %s: %s", st->dir, path, strerror(-err));
		return err;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB)) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		log_warn("store lmdb:%s: the store is open elsewhere (lock %s: %s)", st->dir, path,
			 strerror(errno));
		return err;
	}
	return 0;
}

static void lmdb_free(struct lstore *st)
{
	while (st->watches) {
		struct lwatch *w = st->watches;
		st->watches = w->next;
		free(w->prefix);
		free(w);
	}
	if (st->env)
		mdb_env_close(st->env);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	pthread_mutex_destroy(&st->q_mu);
	pthread_cond_destroy(&st->q_cv);
	pthread_cond_destroy(&st->batch_cv);
	pthread_mutex_destroy(&st->watch_mu);
	pthread_mutex_destroy(&st->compact_mu);
	pthread_mutex_destroy(&st->bg_mu);
	pthread_cond_destroy(&st->bg_cv);
	pthread_mutex_destroy(&st->stats_mu);
	free(st->scratch);
	free(st->dir);
	free(st);
}

static int open_dbs(struct lstore *st)
{
	MDB_txn *txn;
	int64_t rev, compacted;
	int err, rc;

	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc)
		return lmdb_fail(st, "begin open", rc);
	if ((rc = mdb_dbi_open(txn, "kv", MDB_CREATE, &st->kv)) ||
	    (rc = mdb_dbi_open(txn, "log", MDB_CREATE, &st->log)) ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &st->meta))) {
		mdb_txn_abort(txn);
		return lmdb_fail(st, "open databases", rc);
	}
	if ((err = meta_get(st, txn, "rev", &rev)) ||
	    (err = meta_get(st, txn, "compacted", &compacted)))
		goto abort;
	if (rev == 0) {
		rev = 1;
		if ((err = meta_put(st, txn, "rev", rev)) ||
		    (err = meta_put(st, txn, "compacted", 0)))
			goto abort;
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		return lmdb_fail(st, "commit open", rc);
	atomic_store(&st->rev, rev);
	atomic_store(&st->compacted, compacted);
	return 0;
abort:
	mdb_txn_abort(txn);
	return err;
}

static struct store *lmdb_open(const char *dir, const struct store_opts *opts)
{
	struct lstore *st = calloc(1, sizeof(*st));
	int err, rc, dead = 0;

	if (!st) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&st->q_mu, NULL);
	pthread_cond_init(&st->q_cv, NULL);
	pthread_cond_init(&st->batch_cv, NULL);
	pthread_mutex_init(&st->watch_mu, NULL);
	pthread_mutex_init(&st->compact_mu, NULL);
	pthread_mutex_init(&st->bg_mu, NULL);
	pthread_cond_init(&st->bg_cv, NULL);
	pthread_mutex_init(&st->stats_mu, NULL);
	st->q_tail = &st->q_head;
	st->lock_fd = -1;
	st->opts = *opts;
	st->dir = strdup(dir);
	if (!st->dir) {
		err = -ENOMEM;
		goto fail;
	}
	err = fs_mkdir_p(dir, 0700);
	if (err) {
		log_warn("store lmdb:%s: create directory: %s", dir, strerror(-err));
		goto fail;
	}
	err = lock_dir(st);
	if (err)
		goto fail;
	rc = mdb_env_create(&st->env);
	if (rc) {
		err = lmdb_fail(st, "create environment", rc);
		goto fail;
	}
	if ((rc = mdb_env_set_maxdbs(st->env, 4)) ||
	    (rc = mdb_env_set_maxreaders(st->env, LMDB_MAX_READERS)) ||
	    (rc = mdb_env_set_mapsize(st->env, opts->max_size))) {
		err = lmdb_fail(st, "configure environment", rc);
		goto fail;
	}
	/* MDB_NOTLS: read transactions are not tied to threads (several per thread are fine). */
	rc = mdb_env_open(st->env, dir, MDB_NOTLS, 0600);
	if (rc) {
		err = lmdb_fail(st, "open environment", rc);
		goto fail;
	}
	mdb_reader_check(st->env, &dead);
	err = check_size(st);
	if (err)
		goto fail;
	st->max_key = (size_t)mdb_env_get_maxkeysize(st->env) - KEY_SUFFIX;
	err = open_dbs(st);
	if (err)
		goto fail;
	if (pthread_create(&st->commit_thr, NULL, commit_main, st)) {
		err = -EAGAIN;
		log_warn("store lmdb:%s: start commit thread: %s", dir, strerror(-err));
		goto fail;
	}
	if (opts->compact_interval_ms > 0) {
		if (pthread_create(&st->bg_thr, NULL, compact_main, st) == 0) {
			st->bg_running = 1;
		} else {
			log_warn("store lmdb:%s: start compaction thread failed; compacting only "
				 "on request", dir);
		}
	}
	/* A compaction cut short by a crash or a close: finish it. */
	int64_t c = atomic_load(&st->compacted);
	if (c > 0) {
		pthread_mutex_lock(&st->compact_mu);
		err = compact_run(st, c);
		pthread_mutex_unlock(&st->compact_mu);
		if (err)
			log_warn("store lmdb:%s: finishing compaction to %lld: %s", dir,
				 (long long)c, shoal_strerror(err));
	}
	return &st->base;
fail:
	lmdb_free(st);
	errno = -err;
	return NULL;
}

static void lmdb_close(struct store *s)
{
	struct lstore *st = (struct lstore *)s;

	pthread_mutex_lock(&st->bg_mu);
	st->bg_stop = 1;
	pthread_cond_signal(&st->bg_cv);
	pthread_mutex_unlock(&st->bg_mu);
	if (st->bg_running)
		pthread_join(st->bg_thr, NULL);

	pthread_mutex_lock(&st->q_mu);
	st->stopping = 1;
	pthread_cond_signal(&st->q_cv);
	pthread_mutex_unlock(&st->q_mu);
	pthread_join(st->commit_thr, NULL);
	lmdb_free(st);
}

const struct store_backend_ops store_lmdb_ops = {
	.scheme = "lmdb",
	.open = lmdb_open,
	.close = lmdb_close,
	.revision = lmdb_revision,
	.compacted_revision = lmdb_compacted_revision,
	.get = lmdb_get,
	.range = lmdb_range,
	.txn_async = lmdb_txn_async,
	.in_callback = lmdb_in_callback,
	.watch = lmdb_watch,
	.watch_cancel = lmdb_watch_cancel,
	.compact = lmdb_compact,
	.get_stats = lmdb_get_stats,
};
