/* test_count.c: proxyd's live session counts by name: case rules, growth past
 * many names, and decrements that never wrap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxyd.h"

static void
test_domains_count_case_insensitively_backends_exactly(void **unused)
{
	struct count_map	*d = count_map_new(1), *b = count_map_new(0);

	count_add(d, "Example.COM", 1);
	count_add(d, "example.com", 1);
	assert_int_equal(count_get(d, "EXAMPLE.com"), 2);
	count_add(d, "example.com", -1);
	assert_int_equal(count_get(d, "example.com"), 1);
	count_add(b, "a", 1);
	count_add(b, "A", 1);
	assert_int_equal(count_get(b, "a"), 1);
	assert_int_equal(count_get(b, "A"), 1);
	assert_int_equal(count_get(b, "b"), 0);
	assert_int_equal(count_get(NULL, "a"), 0);
	assert_int_equal(count_get(b, NULL), 0);
	count_add(b, NULL, 1);			/* no name: nothing */
	count_map_free(d);
	count_map_free(b);
}

static void
test_thousands_of_names_keep_their_counts_through_growth(void **unused)
{
	struct count_map	*m = count_map_new(1);
	char			 name[32];
	int			 i;

	assert_int_equal(count_get(m, "empty"), 0);
	for (i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "d%d.example", i);
		count_add(m, name, i % 7 + 1);
	}
	for (i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "D%d.EXAMPLE", i);
		assert_int_equal(count_get(m, name), (size_t)(i % 7 + 1));
	}
	count_map_free(m);
}

static void
test_an_unbalanced_decrement_stops_at_zero(void **unused)
{
	struct count_map	*m = count_map_new(0);

	count_add(m, "a", 2);
	count_add(m, "a", -5);
	assert_int_equal(count_get(m, "a"), 0);
	count_add(m, "a", 1);
	assert_int_equal(count_get(m, "a"), 1);
	count_add(m, "new", -1);
	assert_int_equal(count_get(m, "new"), 0);
	count_map_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_domains_count_case_insensitively_backends_exactly),
		cmocka_unit_test(test_thousands_of_names_keep_their_counts_through_growth),
		cmocka_unit_test(test_an_unbalanced_decrement_stops_at_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
