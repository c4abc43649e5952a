// SPDX-License-Identifier: Apache-2.0
/* The growable buffer: appends, formatted text longer than any initial size, hand-over. */
#include <string.h>

#include "shoal_test.h"
#include "strbuf.h"

static void test_strbuf_grows_past_its_first_size(void **state)
{
	(void)state;
	struct strbuf b = { 0 };
	char big[10000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';

	assert_int_equal(strbuf_add(&b, "a", 1), 0);
	assert_int_equal(strbuf_printf(&b, "[%s]%d", big, 42), 0);
	assert_int_equal(b.len, 1 + 1 + sizeof(big) - 1 + 1 + 2);
	assert_int_equal(b.s[b.len], '\0');
	assert_memory_equal(b.s + b.len - 3, "]42", 3);
	size_t len;
	char *s = strbuf_take(&b, &len);
	assert_null(b.s);
	assert_int_equal(b.len, 0);
	assert_int_equal(strlen(s), len);
	free(s);
	strbuf_free(&b);
}

static void test_strbuf_printf_fits_exactly(void **state)
{
	(void)state;
	struct strbuf b = { 0 };
	assert_int_equal(strbuf_reserve(&b, 10), 0);
	size_t room = b.cap - 1;
	char fill[8192];
	memset(fill, 'y', room);
	fill[room] = '\0';
	assert_int_equal(strbuf_printf(&b, "%s", fill), 0);
	assert_int_equal(b.len, room);
	assert_int_equal(strbuf_printf(&b, "%d", 7), 0);
	assert_int_equal(b.s[b.len - 1], '7');
	strbuf_free(&b);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_strbuf_grows_past_its_first_size),
		cmocka_unit_test(test_strbuf_printf_fits_exactly))
