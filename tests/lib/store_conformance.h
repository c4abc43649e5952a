/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store conformance suite: what every backend of controlplane/store.h must do, written
 * against store.h alone. A backend's test file names how to make a fresh, empty store URI and
 * how to remove it, then runs STORE_CONFORMANCE_TESTS:
 *
 *	static const struct store_conformance_backend lmdb = { lmdb_new_uri, lmdb_remove_uri };
 *	int main(void) { store_conformance_use(&lmdb); ... cmocka_unit_tests ... }
 */
#ifndef SHOAL_STORE_CONFORMANCE_H
#define SHOAL_STORE_CONFORMANCE_H

struct store_conformance_backend {
	/* A URI naming a fresh, empty store (malloc'd; the suite frees it). */
	char *(*new_uri)(void);
	/* Removes what the store at uri left behind. */
	void (*remove_uri)(const char *uri);
};

void store_conformance_use(const struct store_conformance_backend *backend);

void test_store_put_get_delete(void **state);
void test_store_get_missing_is_enoent(void **state);
void test_store_revisions_and_versions(void **state);
void test_store_cas_succeeds_on_current_mod_rev(void **state);
void test_store_cas_create_of_existing_is_eexist(void **state);
void test_store_cas_stale_mod_rev_is_econflict(void **state);
void test_store_cas_on_missing_key_is_enoent(void **state);
void test_store_txn_failing_condition_writes_nothing(void **state);
void test_store_txn_returns_prev_values(void **state);
void test_store_txn_rejects_duplicate_keys(void **state);
void test_store_range_prefix(void **state);
void test_store_range_limit_start_key_count(void **state);
void test_store_range_count_only(void **state);
void test_store_range_key_order_and_long_histories(void **state);
void test_store_get_at_old_revision(void **state);
void test_store_range_at_old_revision(void **state);
void test_store_watch_replays_history(void **state);
void test_store_watch_replay_then_live_no_gap_no_dup(void **state);
void test_store_watch_compacted_revision_is_ecompacted(void **state);
void test_store_watch_cancel_stops_callbacks(void **state);
void test_store_watchers_see_txn_before_done(void **state);
void test_store_compact_keeps_latest_values(void **state);
void test_store_compact_does_not_resurrect_deleted_keys(void **state);
void test_store_compact_old_reads_are_ecompacted(void **state);
void test_store_concurrent_cas_loses_no_update(void **state);
void test_store_reopen_keeps_everything(void **state);
void test_store_crash_keeps_acknowledged_writes(void **state);
void test_store_crash_during_compaction_keeps_state(void **state);
void test_store_watch_txn_events_in_op_order(void **state);
void test_store_stats_count_commits_and_txns(void **state);

#define STORE_CONFORMANCE_TESTS                                                                    \
	cmocka_unit_test(test_store_put_get_delete),                                               \
		cmocka_unit_test(test_store_get_missing_is_enoent),                                \
		cmocka_unit_test(test_store_revisions_and_versions),                               \
		cmocka_unit_test(test_store_cas_succeeds_on_current_mod_rev),                      \
		cmocka_unit_test(test_store_cas_create_of_existing_is_eexist),                     \
		cmocka_unit_test(test_store_cas_stale_mod_rev_is_econflict),                       \
		cmocka_unit_test(test_store_cas_on_missing_key_is_enoent),                         \
		cmocka_unit_test(test_store_txn_failing_condition_writes_nothing),                 \
		cmocka_unit_test(test_store_txn_returns_prev_values),                              \
		cmocka_unit_test(test_store_txn_rejects_duplicate_keys),                           \
		cmocka_unit_test(test_store_range_prefix),                                         \
		cmocka_unit_test(test_store_range_limit_start_key_count),                          \
		cmocka_unit_test(test_store_range_count_only),                                     \
		cmocka_unit_test(test_store_range_key_order_and_long_histories),                   \
		cmocka_unit_test(test_store_get_at_old_revision),                                  \
		cmocka_unit_test(test_store_range_at_old_revision),                                \
		cmocka_unit_test(test_store_watch_replays_history),                                \
		cmocka_unit_test(test_store_watch_replay_then_live_no_gap_no_dup),                 \
		cmocka_unit_test(test_store_watch_compacted_revision_is_ecompacted),               \
		cmocka_unit_test(test_store_watch_cancel_stops_callbacks),                         \
		cmocka_unit_test(test_store_watchers_see_txn_before_done),                         \
		cmocka_unit_test(test_store_compact_keeps_latest_values),                          \
		cmocka_unit_test(test_store_compact_does_not_resurrect_deleted_keys),              \
		cmocka_unit_test(test_store_compact_old_reads_are_ecompacted),                     \
		cmocka_unit_test(test_store_concurrent_cas_loses_no_update),                       \
		cmocka_unit_test(test_store_reopen_keeps_everything),                              \
		cmocka_unit_test(test_store_crash_keeps_acknowledged_writes),                      \
		cmocka_unit_test(test_store_crash_during_compaction_keeps_state),                  \
		cmocka_unit_test(test_store_watch_txn_events_in_op_order),                         \
		cmocka_unit_test(test_store_stats_count_commits_and_txns)

#endif
