// SPDX-License-Identifier: Apache-2.0
/*
 * Resource quantities with Kubernetes' grammar (resource.ParseQuantity):
 *
 *   quantity ::= [+-] number suffix
 *   number   ::= digits | digits "." digits | digits "." | "." digits
 *   suffix   ::= "" | binary (Ki Mi Gi Ti Pi Ei) | decimal (n u m k M G T P E)
 *              | ("e" | "E") [+-] digits
 *
 * The design choice: the number is kept as its decimal digit string until the very end, so
 * the result is exact whatever the input's length ("0.000000000001" rounds up to 1m, a
 * 40-digit fraction times "Ei" is still exact); only the final value has to fit in int64
 * milli-units, and a value that does not is -ERANGE (Kubernetes caps it silently; shoal
 * tells the user). Where the documented grammar and Kubernetes' scanner disagree, shoal
 * follows the grammar: a number needs at least one digit, so "Mi", "-" and "." are refused
 * (the scanner lets a bare suffix through as zero).
 */
#include "quantity.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct suffix_def {
	const char *s;
	int base; /* 2 or 10 */
	int exp;  /* power of base */
};

static const struct suffix_def suffixes[] = {
	{ "", 10, 0 },	 { "n", 10, -9 }, { "u", 10, -6 }, { "m", 10, -3 },
	{ "k", 10, 3 },	 { "M", 10, 6 },  { "G", 10, 9 },  { "T", 10, 12 },
	{ "P", 10, 15 }, { "E", 10, 18 }, { "Ki", 2, 10 }, { "Mi", 2, 20 },
	{ "Gi", 2, 30 }, { "Ti", 2, 40 }, { "Pi", 2, 50 }, { "Ei", 2, 60 },
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Interprets a suffix: a table entry or a decimal exponent ("e3", "E-2", "e+4"). An
 * exponent that does not fit in int64 is not a suffix (as strconv.ParseInt fails); one that
 * fits is saturated to +-1e6, far beyond any representable value either way. */
static int parse_suffix(const char *s, int *base, int64_t *exp)
{
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcmp(s, suffixes[i].s) == 0) {
			*base = suffixes[i].base;
			*exp = suffixes[i].exp;
			return 0;
		}
	}
	if (s[0] != 'e' && s[0] != 'E')
		return -EINVAL;
	const char *p = s + 1;
	bool neg = false;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (!*p)
		return -EINVAL;
	uint64_t v = 0;
	for (; *p; p++) {
		if (!is_digit(*p))
			return -EINVAL;
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0))
		return -EINVAL;
	if (v > 1000000)
		v = 1000000;
	*base = 10;
	*exp = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* Multiplies the decimal digit string d[0..*n) (most significant first) by m in place;
 * d has room for *n + 20 digits. */
static void digits_mul(char *d, size_t *n, unsigned m)
{
	unsigned carry = 0;
	for (size_t i = *n; i-- > 0;) {
		unsigned v = (unsigned)(d[i] - '0') * m + carry;
		d[i] = (char)('0' + v % 10);
		carry = v / 10;
	}
	while (carry) {
		memmove(d + 1, d, *n);
		d[0] = (char)('0' + carry % 10);
		carry /= 10;
		(*n)++;
	}
}

/* The first n digits of d as an unsigned value; n <= 19 always fits. */
static uint64_t digits_value(const char *d, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (uint64_t)(d[i] - '0');
	return v;
}

int quantity_parse_milli(const char *s, int64_t *milli)
{
	if (!s || !*s)
		return -EINVAL;
	const char *p = s;
	bool neg = false;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	const char *int_start = p;
	while (is_digit(*p))
		p++;
	size_t int_len = (size_t)(p - int_start);
	const char *frac_start = p;
	size_t frac_len = 0;
	if (*p == '.') {
		frac_start = ++p;
		while (is_digit(*p))
			p++;
		frac_len = (size_t)(p - frac_start);
	}
	if (int_len + frac_len == 0)
		return -EINVAL;

	int base;
	int64_t exp;
	if (parse_suffix(p, &base, &exp) < 0)
		return -EINVAL;

	/* The significant digits, leading zeros stripped, with room to grow by 2^60. */
	size_t cap = int_len + frac_len + 24;
	char *d = malloc(cap);
	if (!d)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < int_len; i++)
		if (n || int_start[i] != '0')
			d[n++] = int_start[i];
	for (size_t i = 0; i < frac_len; i++)
		if (n || frac_start[i] != '0')
			d[n++] = frac_start[i];
	if (n == 0) {
		free(d);
		*milli = 0;
		return 0;
	}
	/* value * 1000 = digits * 10^p10 */
	int64_t p10 = 3 - (int64_t)frac_len;
	if (base == 10)
		p10 += exp;
	else
		for (int64_t b = 0; b < exp; b += 10)
			digits_mul(d, &n, 1024);
	while (n > 1 && d[n - 1] == '0') {
		n--;
		p10++;
	}

	int ret = 0;
	uint64_t mag;
	if (p10 >= 0) {
		/* d has no leading zero: it is at least 10^(n-1), the value 10^(n-1+p10). */
		if ((int64_t)n + p10 > 19) {
			ret = -ERANGE;
			goto out;
		}
		mag = digits_value(d, n);
		for (int64_t i = 0; i < p10; i++)
			mag *= 10;
	} else {
		/* A fraction of a milli-unit is left over (the last digit is not zero): round
		 * the magnitude up, as Kubernetes rounds away from zero. */
		int64_t k = -p10;
		size_t whole = (int64_t)n > k ? n - (size_t)k : 0;
		if (whole > 19) {
			ret = -ERANGE;
			goto out;
		}
		mag = digits_value(d, whole) + 1;
	}
	if (mag > (uint64_t)INT64_MAX) {
		ret = -ERANGE;
		goto out;
	}
	*milli = neg ? -(int64_t)mag : (int64_t)mag;
out:
	free(d);
	return ret;
}

int64_t quantity_milli_to_units(int64_t milli)
{
	/* Magnitude rounded up: 1m is 1 unit, -1m is -1. */
	if (milli >= 0)
		return milli / 1000 + (milli % 1000 ? 1 : 0);
	return milli / 1000 - (milli % 1000 ? 1 : 0);
}

char *quantity_format(int64_t milli, char *buf, size_t len)
{
	if (!buf || len == 0)
		return buf;
	if (milli % 1000 != 0) {
		snprintf(buf, len, "%" PRId64 "m", milli);
		return buf;
	}
	int64_t units = milli / 1000;
	if (units == 0) {
		snprintf(buf, len, "0");
		return buf;
	}
	static const char *const bin[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
	static const char *const dec[] = { "", "k", "M", "G", "T", "P", "E" };
	int64_t b = units, d = units;
	int bi = 0, di = 0;
	while (bi < 6 && b % 1024 == 0) {
		b /= 1024;
		bi++;
	}
	while (di < 6 && d % 1000 == 0) {
		d /= 1000;
		di++;
	}
	/* Both exact (2048000 = 2000Ki = 2048k): the shorter number wins, binary on a tie. */
	char bs[32], ds[32];
	int bl = snprintf(bs, sizeof(bs), "%" PRId64, b);
	int dl = snprintf(ds, sizeof(ds), "%" PRId64, d);
	if (bi > 0 && (di == 0 || bl <= dl))
		snprintf(buf, len, "%s%s", bs, bin[bi]);
	else
		snprintf(buf, len, "%s%s", ds, dec[di]);
	return buf;
}
