// SPDX-License-Identifier: Apache-2.0
/* The federation's replica split: Webster by static weights, from a previous split (weights
 * by available capacity), per-cluster min and max, Duplicated, and the capacity estimate. */
#include "shoal_test.h"

#include <errno.h>
#include <string.h>

#include "fed.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void expect(const struct fed_share *s, size_t n, const int *want)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].out != want[i])
			fail_msg("cluster %zu: got %d replicas, want %d", i, s[i].out, want[i]);
}

static void set_prev(struct fed_share *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		s[i].prev = s[i].out;
}

static void test_fed_apportion_weights_1_2_2(void **state)
{
	(void)state;
	struct fed_share s[] = { { .weight = 1, .max = -1 },
				 { .weight = 2, .max = -1 },
				 { .weight = 2, .max = -1 } };
	assert_int_equal(fed_apportion(10, s, N(s)), 0);
	expect(s, N(s), (int[]){ 2, 4, 4 });
}

static void test_fed_apportion_scale_up_moves_one_replica(void **state)
{
	(void)state;
	struct fed_share s[] = { { .weight = 1, .max = -1 },
				 { .weight = 2, .max = -1 },
				 { .weight = 2, .max = -1 } };
	for (int total = 0; total < 200; total++) {
		assert_int_equal(fed_apportion(total, s, N(s)), 0);
		int before[3] = { s[0].out, s[1].out, s[2].out };
		set_prev(s, N(s));
		assert_int_equal(fed_apportion(total + 1, s, N(s)), 0);
		int moved = 0;
		for (size_t i = 0; i < N(s); i++) {
			assert_true(s[i].out >= before[i]);
			moved += s[i].out - before[i];
		}
		assert_int_equal(moved, 1);
	}
}

static void test_fed_apportion_ties_keep_previous(void **state)
{
	(void)state;
	/* 3 over equal weights: one cluster gets 2; it stays the one that had 2 */
	struct fed_share s[] = { { .weight = 1, .max = -1, .prev = 1 },
				 { .weight = 1, .max = -1, .prev = 1 },
				 { .weight = 1, .max = -1, .prev = 2 } };
	assert_int_equal(fed_apportion(4, s, N(s)), 0);
	expect(s, N(s), (int[]){ 1, 1, 2 });
}

static void test_fed_apportion_weight_change_moves_few(void **state)
{
	(void)state;
	/* 1:2:2 -> 1:2:3 with 10: 2/4/4 -> 2/3/5 moves one replica */
	struct fed_share s[] = { { .weight = 1, .max = -1, .prev = 2 },
				 { .weight = 2, .max = -1, .prev = 4 },
				 { .weight = 3, .max = -1, .prev = 4 } };
	assert_int_equal(fed_apportion(10, s, N(s)), 0);
	expect(s, N(s), (int[]){ 2, 3, 5 });
}

static void test_fed_apportion_min_and_max(void **state)
{
	(void)state;
	struct fed_share s[] = { { .weight = 1, .min = 3, .max = -1 },
				 { .weight = 2, .max = 2 },
				 { .weight = 2, .max = -1 } };
	assert_int_equal(fed_apportion(10, s, N(s)), 0);
	expect(s, N(s), (int[]){ 3, 2, 5 });
	/* every cluster at its max: the rest is reported */
	struct fed_share t[] = { { .weight = 1, .max = 1 }, { .weight = 1, .max = 2 } };
	assert_int_equal(fed_apportion(5, t, N(t)), 2);
	expect(t, N(t), (int[]){ 1, 2 });
	/* a weight of 0 takes only its min */
	struct fed_share u[] = { { .weight = 0, .min = 1, .max = -1 }, { .weight = 1, .max = -1 } };
	assert_int_equal(fed_apportion(5, u, N(u)), 0);
	expect(u, N(u), (int[]){ 1, 4 });
}

static void test_fed_apportion_minimums_above_total(void **state)
{
	(void)state;
	struct fed_share s[] = { { .weight = 1, .min = 4, .max = -1 },
				 { .weight = 1, .min = 2, .max = -1 } };
	assert_int_equal(fed_apportion(3, s, N(s)), 0);
	expect(s, N(s), (int[]){ 2, 1 });
}

static void test_fed_apportion_rejects_bad_shares(void **state)
{
	(void)state;
	struct fed_share s[] = { { .weight = -1, .max = -1 } };
	assert_int_equal(fed_apportion(1, s, 1), -EINVAL);
	struct fed_share t[] = { { .weight = 1, .min = 3, .max = 2 } };
	assert_int_equal(fed_apportion(1, t, 1), -EINVAL);
	assert_int_equal(fed_apportion(-1, NULL, 0), -EINVAL);
	assert_int_equal(fed_apportion(3, NULL, 0), 3);
}

static void test_fed_apportion_from_keeps_a_complete_split(void **state)
{
	(void)state;
	/* the weights moved (capacity was used), the split did not need to */
	struct fed_share s[] = { { .weight = 40, .max = -1, .prev = 2 },
				 { .weight = 10, .max = -1, .prev = 3 },
				 { .weight = 7, .max = -1, .prev = 5 } };
	assert_int_equal(fed_apportion_from(10, s, N(s)), 0);
	expect(s, N(s), (int[]){ 2, 3, 5 });
	/* one more goes where the claim is highest; one fewer leaves where it is lowest */
	set_prev(s, N(s));
	assert_int_equal(fed_apportion_from(11, s, N(s)), 0);
	expect(s, N(s), (int[]){ 3, 3, 5 });
	set_prev(s, N(s));
	assert_int_equal(fed_apportion_from(9, s, N(s)), 0);
	expect(s, N(s), (int[]){ 3, 3, 3 });
}

static void test_fed_apportion_from_respects_max(void **state)
{
	(void)state;
	struct fed_share s[] = { { .weight = 1, .max = 2, .prev = 6 },
				 { .weight = 1, .max = -1, .prev = 4 } };
	assert_int_equal(fed_apportion_from(10, s, N(s)), 0);
	expect(s, N(s), (int[]){ 2, 8 });
}

static void test_fed_duplicate_clamps(void **state)
{
	(void)state;
	struct fed_share s[] = { { .weight = 1, .max = -1 },
				 { .weight = 1, .max = 2 },
				 { .weight = 1, .min = 7, .max = -1 } };
	assert_int_equal(fed_duplicate(5, s, N(s)), 0);
	expect(s, N(s), (int[]){ 5, 2, 7 });
}

static void test_fed_estimate_takes_the_scarcer_resource(void **state)
{
	(void)state;
	assert_int_equal(fed_estimate(4000, 8LL << 30, 110, 500, 1LL << 30), 8);
	assert_int_equal(fed_estimate(4000, 2LL << 30, 110, 500, 1LL << 30), 2);
	assert_int_equal(fed_estimate(4000, 8LL << 30, 3, 500, 1LL << 30), 3);
	assert_int_equal(fed_estimate(-5, 8LL << 30, 110, 500, 0), 0);
	assert_int_equal(fed_estimate(4000, 8LL << 30, 50, 0, 0), 50);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_fed_apportion_weights_1_2_2),
		cmocka_unit_test(test_fed_apportion_scale_up_moves_one_replica),
		cmocka_unit_test(test_fed_apportion_ties_keep_previous),
		cmocka_unit_test(test_fed_apportion_weight_change_moves_few),
		cmocka_unit_test(test_fed_apportion_min_and_max),
		cmocka_unit_test(test_fed_apportion_minimums_above_total),
		cmocka_unit_test(test_fed_apportion_rejects_bad_shares),
		cmocka_unit_test(test_fed_apportion_from_keeps_a_complete_split),
		cmocka_unit_test(test_fed_apportion_from_respects_max),
		cmocka_unit_test(test_fed_duplicate_clamps),
		cmocka_unit_test(test_fed_estimate_takes_the_scarcer_resource))
