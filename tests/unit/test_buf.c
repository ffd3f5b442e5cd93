/* test_buf.c: the growable string stays NUL-terminated through every growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"

static void
test_grows_and_stays_terminated(void **state)
{
	struct buf	b;
	char		*p;

	buf_init(&b);
	for (int i = 0; i < 10000; i++)
		buf_addc(&b, (char)('a' + i % 26));
	assert_int_equal(b.len, 10000);
	assert_int_equal(strlen(b.data), 10000);
	assert_int_equal(b.data[9999], 'a' + 9999 % 26);
	p = buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(p);
}

static void
test_printf_appends(void **state)
{
	struct buf	b;

	buf_init(&b);
	buf_adds(&b, "x=");
	buf_printf(&b, "%d %s", 12, "abc");
	buf_add(&b, "\0z", 2);
	assert_int_equal(b.len, 10);
	assert_memory_equal(b.data, "x=12 abc\0z", 10);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	buf_printf(&b, "%s", "");
	assert_string_equal(b.data, "");
	buf_free(&b);
}

static void
test_release_of_empty_is_empty_string(void **state)
{
	struct buf	 b;
	char		*p;

	buf_init(&b);
	p = buf_release(&b);
	assert_string_equal(p, "");
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows_and_stays_terminated),
		cmocka_unit_test(test_printf_appends),
		cmocka_unit_test(test_release_of_empty_is_empty_string),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
