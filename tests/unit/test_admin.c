/* test_admin.c: drain/maint/ready states: set and read back, saved atomically
 * and loaded again as after a restart, and a damaged file refused whole. */
#include <sys/stat.h>

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hamon.h"

static char	dir[64];
static char	path[128];

static int
setup(void **unused)
{
	snprintf(dir, sizeof(dir), "/tmp/test_admin.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/hamon.view.admin.json", dir);
	return 0;
}

static int
teardown(void **unused)
{
	char		 p[512];
	DIR		*d = opendir(dir);
	struct dirent	*e;

	while (d != NULL && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
	if (d != NULL)
		closedir(d);
	chmod(dir, 0700);
	rmdir(dir);
	return 0;
}

static void
write_text(const char *text)
{
	FILE	*fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static size_t
files_in_dir(void)
{
	DIR		*d = opendir(dir);
	struct dirent	*e;
	size_t		 n = 0;

	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void
test_set_get_and_ready_forgets(void **unused)
{
	struct admin	*a = admin_new();

	assert_int_equal(admin_get(a, "a"), ADMIN_READY);
	assert_int_equal(admin_set(a, "a", ADMIN_DRAIN), 1);
	assert_int_equal(admin_set(a, "a", ADMIN_DRAIN), 0);
	assert_int_equal(admin_set(a, "b", ADMIN_MAINT), 1);
	assert_int_equal(admin_get(a, "a"), ADMIN_DRAIN);
	assert_int_equal(admin_get(a, "b"), ADMIN_MAINT);
	assert_int_equal(admin_set(a, "a", ADMIN_MAINT), 1);
	assert_int_equal(admin_get(a, "a"), ADMIN_MAINT);
	assert_int_equal(admin_set(a, "a", ADMIN_READY), 1);
	assert_int_equal(admin_set(a, "a", ADMIN_READY), 0);
	assert_int_equal(admin_get(a, "a"), ADMIN_READY);
	assert_int_equal(admin_count(a), 1);
	admin_free(a);
}

static void
test_saved_states_come_back_after_a_restart(void **unused)
{
	struct admin	*a = admin_new(), *b = admin_new();
	char		 err[512];
	struct stat	 st;

	admin_set(a, "a", ADMIN_DRAIN);
	admin_set(a, "b.x_y-1", ADMIN_MAINT);
	assert_int_equal(admin_save(a, path, err, sizeof(err)), 0);
	/* Only the file itself: the temp file was renamed over it. */
	assert_int_equal(files_in_dir(), 1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(admin_load(b, path, err, sizeof(err)), 0);
	assert_int_equal(admin_get(b, "a"), ADMIN_DRAIN);
	assert_int_equal(admin_get(b, "b.x_y-1"), ADMIN_MAINT);
	assert_int_equal(admin_count(b), 2);
	/* ready removes it from the file too. */
	admin_set(a, "a", ADMIN_READY);
	assert_int_equal(admin_save(a, path, err, sizeof(err)), 0);
	assert_int_equal(admin_load(b, path, err, sizeof(err)), 0);
	assert_int_equal(admin_get(b, "a"), ADMIN_READY);
	assert_int_equal(admin_count(b), 1);
	admin_free(a);
	admin_free(b);
}

static void
test_a_missing_file_is_an_empty_set(void **unused)
{
	struct admin	*a = admin_new();
	char		 err[512];

	admin_set(a, "x", ADMIN_MAINT);
	assert_int_equal(admin_load(a, path, err, sizeof(err)), 0);
	assert_int_equal(admin_count(a), 0);
	admin_free(a);
}

static void
test_a_damaged_file_is_refused_and_changes_nothing(void **unused)
{
	static const char *const bad[] = {
		"",
		"{\"version\":1,\"backends\":{\"a\":\"drain\"",
		"[]",
		"{\"version\":1}",
		"{\"version\":2,\"backends\":{}}",
		"{\"version\":1,\"backends\":{\"a\":\"sideways\"}}",
		"{\"version\":1,\"backends\":{\"a\":\"drain\",\"b\":7}}",
		"{\"version\":1,\"backends\":{\"../x\":\"drain\"}}",
		"{\"version\":1,\"backends\":{\"\":\"maint\"}}",
	};
	struct admin	*a = admin_new();
	char		 err[512];
	size_t		 i;

	admin_set(a, "keep", ADMIN_DRAIN);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_text(bad[i]);
		err[0] = '\0';
		if (admin_load(a, path, err, sizeof(err)) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(err, path));
		assert_int_equal(admin_get(a, "keep"), ADMIN_DRAIN);
		assert_int_equal(admin_get(a, "a"), ADMIN_READY);
		assert_int_equal(admin_count(a), 1);
	}
	admin_free(a);
}

static void
test_saving_into_an_unwritable_place_fails_and_keeps_the_old_file(void **unused)
{
	struct admin	*a = admin_new(), *b = admin_new();
	char		 err[512], bad[256];

	admin_set(a, "a", ADMIN_MAINT);
	assert_int_equal(admin_save(a, path, err, sizeof(err)), 0);
	snprintf(bad, sizeof(bad), "%s/no/such/dir/x.json", dir);
	assert_int_equal(admin_save(a, bad, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no/such/dir"));
	if (geteuid() != 0) {
		/* A read-only directory: no temp file, the old file stays. */
		chmod(dir, 0500);
		admin_set(a, "a", ADMIN_DRAIN);
		assert_int_equal(admin_save(a, path, err, sizeof(err)), -1);
		chmod(dir, 0700);
	}
	assert_int_equal(admin_load(b, path, err, sizeof(err)), 0);
	assert_int_equal(admin_get(b, "a"), ADMIN_MAINT);
	admin_free(a);
	admin_free(b);
}

static void
test_the_file_sits_next_to_state_file(void **unused)
{
	char	*p;

	p = admin_path("/var/lib/jabber-ha/hamon.view.json");
	assert_string_equal(p, "/var/lib/jabber-ha/hamon.view.admin.json");
	free(p);
	p = admin_path("/var/lib/jabber-ha/view");
	assert_string_equal(p, "/var/lib/jabber-ha/view.admin");
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_get_and_ready_forgets),
		cmocka_unit_test_setup_teardown(test_saved_states_come_back_after_a_restart,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_missing_file_is_an_empty_set,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_damaged_file_is_refused_and_changes_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_saving_into_an_unwritable_place_fails_and_keeps_the_old_file,
		    setup, teardown),
		cmocka_unit_test(test_the_file_sits_next_to_state_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
