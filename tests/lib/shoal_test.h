/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every cmocka test file includes: cmocka itself, and SHOAL_TEST_MAIN, which runs a
 * table of tests with the name filter that tests/run passes in SHOAL_TEST_FILTER.
 */
#ifndef SHOAL_TEST_H
#define SHOAL_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#define SHOAL_TEST_MAIN_SETUP(setup, teardown, ...)                                                \
	int main(void)                                                                             \
	{                                                                                          \
		const struct CMUnitTest shoal_tests_[] = { __VA_ARGS__ };                          \
		const char *filter_ = getenv("SHOAL_TEST_FILTER");                                 \
		if (filter_ && *filter_)                                                           \
			cmocka_set_test_filter(filter_);                                           \
		return cmocka_run_group_tests(shoal_tests_, setup, teardown);                      \
	}

#define SHOAL_TEST_MAIN(...) SHOAL_TEST_MAIN_SETUP(NULL, NULL, __VA_ARGS__)

#endif
