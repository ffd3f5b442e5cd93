/* test_dirmap.c: the watcher's directory map finds each watch by wd and by
 * path, keeps one entry per each, and moves whole subtrees on a rename. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spoolsync.h"
#include "dirmap.h"

static const char *
rel_of(const struct dirmap *dm, int wd)
{
	const struct wdir	*d = dirmap_by_wd(dm, wd);

	return d == NULL ? NULL : d->rel;
}

static int
wd_of(const struct dirmap *dm, const char *rel)
{
	const struct wdir	*d = dirmap_by_rel(dm, rel);

	return d == NULL ? -1 : d->wd;
}

static void
test_both_lookups_find_every_entry_after_the_table_grows(void **state)
{
	struct dirmap	dm;
	char		rel[32];
	int		wd;

	(void)state;
	dirmap_init(&dm);
	for (wd = 1; wd <= 1000; wd++) {
		snprintf(rel, sizeof(rel), "d%d/sub", wd);
		dirmap_put(&dm, wd, rel);
	}
	assert_int_equal(dm.n, 1000);
	assert_true(dm.nbuckets >= 1000);
	for (wd = 1; wd <= 1000; wd++) {
		snprintf(rel, sizeof(rel), "d%d/sub", wd);
		assert_string_equal(rel_of(&dm, wd), rel);
		assert_int_equal(wd_of(&dm, rel), wd);
	}
	assert_null(rel_of(&dm, 1001));
	assert_int_equal(wd_of(&dm, "d1"), -1);
	dirmap_free(&dm);
	assert_int_equal(dm.n, 0);
}

static void
test_a_wd_or_a_path_mapped_again_leaves_one_entry(void **state)
{
	struct dirmap	dm;

	(void)state;
	dirmap_init(&dm);
	dirmap_put(&dm, 1, "a");
	dirmap_put(&dm, 1, "b");		/* the same watch, renamed */
	assert_int_equal(dm.n, 1);
	assert_string_equal(rel_of(&dm, 1), "b");
	assert_int_equal(wd_of(&dm, "a"), -1);
	dirmap_put(&dm, 2, "b");		/* deleted and made again */
	assert_int_equal(dm.n, 1);
	assert_null(rel_of(&dm, 1));
	assert_int_equal(wd_of(&dm, "b"), 2);
	dirmap_del(&dm, dirmap_by_wd(&dm, 2));
	assert_int_equal(dm.n, 0);
	assert_int_equal(wd_of(&dm, "b"), -1);
	dirmap_free(&dm);
}

static void
test_a_rename_moves_the_subtree_and_not_its_namesakes(void **state)
{
	struct dirmap	  dm;
	struct wdir	**v;
	size_t		  n;

	(void)state;
	dirmap_init(&dm);
	dirmap_put(&dm, 1, "a");
	dirmap_put(&dm, 2, "a/x");
	dirmap_put(&dm, 3, "a/x/y");
	dirmap_put(&dm, 4, "ab");		/* "a" is a prefix, not a parent */
	dirmap_put(&dm, 5, "c");
	n = dirmap_match(&dm, "a", &v);
	assert_int_equal(n, 3);
	free(v);
	dirmap_rename(&dm, "a", "c/a2");
	assert_string_equal(rel_of(&dm, 1), "c/a2");
	assert_string_equal(rel_of(&dm, 2), "c/a2/x");
	assert_string_equal(rel_of(&dm, 3), "c/a2/x/y");
	assert_string_equal(rel_of(&dm, 4), "ab");
	assert_int_equal(wd_of(&dm, "a/x"), -1);
	assert_int_equal(wd_of(&dm, "c/a2/x/y"), 3);
	n = dirmap_match(&dm, "", &v);
	assert_int_equal(n, 5);
	free(v);
	dirmap_free(&dm);
}

static void
test_under_means_the_path_or_beneath_it(void **state)
{
	(void)state;
	assert_true(dirmap_under("a", "a"));
	assert_true(dirmap_under("a/b", "a"));
	assert_true(dirmap_under("a", ""));
	assert_false(dirmap_under("ab", "a"));
	assert_false(dirmap_under("a", "a/b"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_both_lookups_find_every_entry_after_the_table_grows),
		cmocka_unit_test(test_a_wd_or_a_path_mapped_again_leaves_one_entry),
		cmocka_unit_test(
		    test_a_rename_moves_the_subtree_and_not_its_namesakes),
		cmocka_unit_test(test_under_means_the_path_or_beneath_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
