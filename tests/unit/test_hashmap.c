// SPDX-License-Identifier: Apache-2.0
/* The hash map against a plain array as reference, through random puts and deletes. */
#include <stdio.h>
#include <string.h>

#include "hashmap.h"
#include "shoal_test.h"

static void test_hashmap_put_get_del(void **state)
{
	(void)state;
	struct hashmap *m = hashmap_new(0);
	int a = 1, b = 2;
	void *old = &a;

	assert_non_null(m);
	assert_int_equal(hashmap_put(m, "x", &a, &old), 0);
	assert_null(old);
	assert_ptr_equal(hashmap_get(m, "x"), &a);
	assert_int_equal(hashmap_put(m, "x", &b, &old), 0);
	assert_ptr_equal(old, &a);
	assert_ptr_equal(hashmap_get(m, "x"), &b);
	assert_int_equal(hashmap_count(m), 1);
	assert_ptr_equal(hashmap_del(m, "x"), &b);
	assert_null(hashmap_get(m, "x"));
	assert_null(hashmap_del(m, "x"));
	assert_int_equal(hashmap_count(m), 0);
	hashmap_free(m);
}

static void test_hashmap_matches_reference_under_churn(void **state)
{
	(void)state;
	enum { N = 5000 };
	static int present[N];
	struct hashmap *m = hashmap_new(4);
	unsigned seed = 7;
	char key[32];

	memset(present, 0, sizeof(present));
	for (int step = 0; step < 200000; step++) {
		int i = rand_r(&seed) % N;
		snprintf(key, sizeof(key), "/registry/pods/ns/%d", i);
		if (rand_r(&seed) % 3) {
			assert_int_equal(hashmap_put(m, key, &present[i], NULL), 0);
			present[i] = 1;
		} else {
			void *v = hashmap_del(m, key);
			assert_true((v != NULL) == (present[i] == 1));
			present[i] = 0;
		}
	}
	size_t count = 0;
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "/registry/pods/ns/%d", i);
		assert_true((hashmap_get(m, key) != NULL) == (present[i] == 1));
		count += present[i];
	}
	assert_int_equal(hashmap_count(m), count);
	size_t it = 0, seen = 0;
	while (hashmap_next(m, &it, NULL, NULL))
		seen++;
	assert_int_equal(seen, count);
	hashmap_free(m);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_hashmap_put_get_del),
		cmocka_unit_test(test_hashmap_matches_reference_under_churn))
