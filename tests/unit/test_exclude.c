/* test_exclude.c: exclude patterns hide what they name and its subtree, nothing more. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spoolsync.h"

static struct exclude *
make(const char *const *pats)
{
	struct exclude	*ex = exclude_new();
	char		 err[256];

	for (; *pats != NULL; pats++)
		assert_int_equal(exclude_add(ex, *pats, err, sizeof(err)), 0);
	return ex;
}

static void
test_own_temp_files_are_always_excluded(void **state)
{
	(void)state;
	assert_true(exclude_is_temp(".spoolsync.ab12cd34"));
	assert_int_equal(exclude_match(NULL, ".spoolsync.ab12cd34"), 1);
	assert_int_equal(exclude_match(NULL, "host/accounts/.spoolsync.x"), 1);
	assert_int_equal(exclude_match(NULL, "host/accounts/alice.dat"), 0);
	assert_int_equal(exclude_match(NULL, "host/spoolsync.dat"), 0);
}

static void
test_basename_patterns_match_in_any_directory(void **state)
{
	static const char *const pats[] = { "*~", "*.lock", NULL };
	struct exclude	*ex = make(pats);

	(void)state;
	assert_int_equal(exclude_count(ex), 2);
	assert_int_equal(exclude_match(ex, "example%2etest/accounts/alice.dat~"), 1);
	assert_int_equal(exclude_match(ex, "alice.dat~"), 1);
	assert_int_equal(exclude_match(ex, ".hidden~"), 1);
	assert_int_equal(exclude_match(ex, "a/b/c.lock"), 1);
	assert_int_equal(exclude_match(ex, "example%2etest/accounts/alice.dat"), 0);
	assert_int_equal(exclude_match(ex, "a.lock.d/x"), 0);
	/* a directory named like a pattern takes its subtree with it */
	assert_int_equal(exclude_match(ex, "old~/x/y.dat"), 1);
	exclude_free(ex);
}

static void
test_path_patterns_are_anchored_at_the_root(void **state)
{
	static const char *const pats[] = { "tmp/*", "/cache", NULL };
	struct exclude	*ex = make(pats);

	(void)state;
	assert_int_equal(exclude_match(ex, "tmp/x"), 1);
	assert_int_equal(exclude_match(ex, "tmp/x/y/z"), 1);
	assert_int_equal(exclude_match(ex, "tmp"), 0);
	assert_int_equal(exclude_match(ex, "a/tmp/x"), 0);
	assert_int_equal(exclude_match(ex, "tmpx/y"), 0);
	assert_int_equal(exclude_match(ex, "cache"), 1);
	assert_int_equal(exclude_match(ex, "cache/a/b"), 1);
	assert_int_equal(exclude_match(ex, "host/cache"), 0);
	exclude_free(ex);
}

static void
test_trailing_slash_means_the_same_name(void **state)
{
	static const char *const pats[] = { "scratch/", NULL };
	struct exclude	*ex = make(pats);

	(void)state;
	assert_int_equal(exclude_match(ex, "scratch"), 1);
	assert_int_equal(exclude_match(ex, "host/scratch/f"), 1);
	assert_int_equal(exclude_match(ex, "host/scratchy"), 0);
	exclude_free(ex);
}

static void
test_empty_or_oversized_patterns_are_refused(void **state)
{
	struct exclude	*ex = exclude_new();
	char		 err[256], *big;

	(void)state;
	assert_int_equal(exclude_add(ex, "", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));
	assert_int_equal(exclude_add(ex, "//", err, sizeof(err)), -1);
	big = malloc(EXCLUDE_PATTERN_MAX + 2);
	memset(big, '*', EXCLUDE_PATTERN_MAX + 1);
	big[EXCLUDE_PATTERN_MAX + 1] = '\0';
	assert_int_equal(exclude_add(ex, big, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than"));
	assert_int_equal(exclude_count(ex), 0);
	free(big);
	exclude_free(ex);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_temp_files_are_always_excluded),
		cmocka_unit_test(test_basename_patterns_match_in_any_directory),
		cmocka_unit_test(test_path_patterns_are_anchored_at_the_root),
		cmocka_unit_test(test_trailing_slash_means_the_same_name),
		cmocka_unit_test(test_empty_or_oversized_patterns_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
