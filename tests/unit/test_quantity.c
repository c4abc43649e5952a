// SPDX-License-Identifier: Apache-2.0
/* Resource quantities: Kubernetes' grammar, exact milli-unit values, rounding, range. */
#include "shoal_test.h"

#include <errno.h>
#include <string.h>

#include "quantity.h"

struct qcase {
	const char *in;
	int64_t milli;
};

static void check_ok(const struct qcase *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int64_t v = -12345;
		int ret = quantity_parse_milli(c[i].in, &v);
		if (ret != 0 || v != c[i].milli)
			fail_msg("\"%s\": expected %lld milli, got ret %d value %lld", c[i].in,
				 (long long)c[i].milli, ret, (long long)v);
	}
}

static void test_quantity_parses_decimal_and_milli(void **state)
{
	(void)state;
	static const struct qcase c[] = {
		{ "0", 0 },	      { "1", 1000 },	      { "500m", 500 },
		{ "0.1", 100 },	      { "1.5", 1500 },	      { ".5", 500 },
		{ "5.", 5000 },	      { "+2", 2000 },	      { "-2", -2000 },
		{ "1k", 1000000 },    { "1M", 1000000000 },   { "1G", 1000000000000LL },
		{ "2T", 2000000000000000LL },		      { "1P", 1000000000000000000LL },
		{ "1000000u", 1000 }, { "1000000000n", 1000 }, { "007", 7000 },
		{ "0.000", 0 },	      { "-0", 0 },	      { "1.", 1000 },
		{ "0.5k", 500000 },   { "1.G", 1000000000000LL },
	};
	check_ok(c, sizeof(c) / sizeof(c[0]));
}

static void test_quantity_parses_binary_suffixes(void **state)
{
	(void)state;
	static const struct qcase c[] = {
		{ "1Ki", 1024000 },
		{ "100Mi", 100LL * 1048576 * 1000 },
		{ "128Mi", 128LL * 1048576 * 1000 },
		{ "1Gi", 1073741824000LL },
		{ "1.5Gi", 1610612736000LL },
		{ "0.5Ki", 512000 },
		{ "2Ti", 2LL * 1099511627776LL * 1000 },
		{ "1Pi", 1125899906842624LL * 1000 },
		/* fractions of a byte round the milli value up */
		{ "0.0001Ki", 103 },
	};
	check_ok(c, sizeof(c) / sizeof(c[0]));
}

static void test_quantity_parses_exponents(void **state)
{
	(void)state;
	static const struct qcase c[] = {
		{ "1e3", 1000000 },   { "1E3", 1000000 },    { "1e+3", 1000000 },
		{ "1e-3", 1 },	      { "1.5e2", 150000 },   { "12e-1", 1200 },
		{ "1e0", 1000 },      { "0e100", 0 },	     { "1e-1000", 1 },
		{ "9E-3", 9 },	      { "2e-3", 2 },	     { "9P", 9000000000000000000LL },
	};
	check_ok(c, sizeof(c) / sizeof(c[0]));
	/* a bare "E" is the exa suffix, 10^21 milli-units: out of range, not an exponent */
	int64_t v;
	assert_int_equal(quantity_parse_milli("1E", &v), -ERANGE);
}

static void test_quantity_rounds_sub_milli_up(void **state)
{
	(void)state;
	static const struct qcase c[] = {
		{ "1n", 1 },	       { "1u", 1 },	  { "0.0001", 1 },   { "1.0001", 1001 },
		{ "-0.0001", -1 },     { "999999n", 1 },   { "1000001n", 2 },
		{ "0.000000000000000000000000000001", 1 },
		{ "1.0000000000000000000000000000000000000001", 1001 },
	};
	check_ok(c, sizeof(c) / sizeof(c[0]));
}

static void test_quantity_rejects_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",	 "1.5.5", "Mi",	 "1 Gi",  "1iB",  "1KI", "1K",	  "1ki",   " 1",
		"1 ",	 "-",	  "+",	 ".",	  "1e",	  "1e+", "1ee3",  "1e1.5", "1Mi3",
		"1m-3",	 "abc",	  "1.1.M", "1+1.0M", "0.1mi", "0.1am", "1i", "--1",   "1,5",
		"1Gib",	 "e3",	  "1e99999999999999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = 77;
		int ret = quantity_parse_milli(bad[i], &v);
		if (ret != -EINVAL)
			fail_msg("\"%s\": expected -EINVAL, got %d (value %lld)", bad[i], ret,
				 (long long)v);
		assert_int_equal(v, 77);
	}
	int64_t v;
	assert_int_equal(quantity_parse_milli(NULL, &v), -EINVAL);
}

static void test_quantity_huge_values_are_erange(void **state)
{
	(void)state;
	static const char *const huge[] = {
		"9223372036854775808m", "10E", "8Ei", "9300000000000000000", "1e100",
		"99999999999999999999999999Ki", "-10E", "1e9223372036854775807",
	};
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		int64_t v = 77;
		int ret = quantity_parse_milli(huge[i], &v);
		if (ret != -ERANGE)
			fail_msg("\"%s\": expected -ERANGE, got %d", huge[i], ret);
	}
	int64_t v;
	assert_int_equal(quantity_parse_milli("9223372036854775807m", &v), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(quantity_parse_milli("-9223372036854775807m", &v), 0);
	assert_true(v == -INT64_MAX);
	/* 8Pi in bytes is exact: 9007199254740992000 milli */
	assert_int_equal(quantity_parse_milli("8Pi", &v), 0);
	assert_true(v == 9007199254740992000LL);
}

static void test_quantity_units_round_up(void **state)
{
	(void)state;
	assert_int_equal(quantity_milli_to_units(0), 0);
	assert_int_equal(quantity_milli_to_units(1), 1);
	assert_int_equal(quantity_milli_to_units(1000), 1);
	assert_int_equal(quantity_milli_to_units(1001), 2);
	assert_int_equal(quantity_milli_to_units(2500), 3);
	assert_int_equal(quantity_milli_to_units(-1), -1);
	assert_int_equal(quantity_milli_to_units(-1000), -1);
	assert_int_equal(quantity_milli_to_units(-1500), -2);
	int64_t v;
	assert_int_equal(quantity_parse_milli("128Mi", &v), 0);
	assert_int_equal(quantity_milli_to_units(v), 134217728);
}

static void test_quantity_formats_canonically(void **state)
{
	(void)state;
	static const struct {
		int64_t milli;
		const char *out;
	} c[] = {
		{ 0, "0" },
		{ 500, "500m" },
		{ 1500, "1500m" },
		{ 2000, "2" },
		{ -2000, "-2" },
		{ 1000000, "1k" },
		{ 1000000000000LL, "1G" },
		{ 128LL * 1048576 * 1000, "128Mi" },
		{ 1024000, "1Ki" },
		{ 1536LL * 1000, "1536" },
		{ 2048000LL * 1000, "2000Ki" },
		{ 1073741824000LL, "1Gi" },
		{ 1, "1m" },
	};
	char buf[32];
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		assert_string_equal(quantity_format(c[i].milli, buf, sizeof(buf)), c[i].out);
}

static void test_quantity_format_round_trips(void **state)
{
	(void)state;
	static const char *const in[] = { "100Mi", "0.1", "1.5Gi", "3", "250m", "64G", "1e3",
					  "12345678901", "7Ki" };
	char buf[32];
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		int64_t a, b;
		assert_int_equal(quantity_parse_milli(in[i], &a), 0);
		quantity_format(a, buf, sizeof(buf));
		assert_int_equal(quantity_parse_milli(buf, &b), 0);
		if (a != b)
			fail_msg("%s -> %s does not round-trip", in[i], buf);
	}
}

/* Random strings over the quantity alphabet: never a crash; a parsed value formats and parses
 * back to itself. */
static void test_quantity_survives_random_input(void **state)
{
	(void)state;
	static const char alphabet[] = "0123456789.+-eEKMGTPinumk 9";
	unsigned seed = 4242;
	size_t ok = 0;
	for (int iter = 0; iter < 50000; iter++) {
		char s[32];
		size_t n = (size_t)(rand_r(&seed) % 24);
		for (size_t i = 0; i < n; i++)
			s[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		s[n] = 0;
		int64_t v, w;
		int ret = quantity_parse_milli(s, &v);
		assert_true(ret == 0 || ret == -EINVAL || ret == -ERANGE);
		if (ret == 0) {
			char buf[40];
			ok++;
			quantity_format(v, buf, sizeof(buf));
			assert_int_equal(quantity_parse_milli(buf, &w), 0);
			if (v != w)
				fail_msg("%s -> %lld -> %s -> %lld", s, (long long)v, buf, (long long)w);
		}
	}
	assert_true(ok > 100);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_quantity_survives_random_input),
		cmocka_unit_test(test_quantity_parses_decimal_and_milli),
		cmocka_unit_test(test_quantity_parses_binary_suffixes),
		cmocka_unit_test(test_quantity_parses_exponents),
		cmocka_unit_test(test_quantity_rounds_sub_milli_up),
		cmocka_unit_test(test_quantity_rejects_malformed),
		cmocka_unit_test(test_quantity_huge_values_are_erange),
		cmocka_unit_test(test_quantity_units_round_up),
		cmocka_unit_test(test_quantity_formats_canonically),
		cmocka_unit_test(test_quantity_format_round_trips))
