/* test_group_commit.c: the two halves of a group commit (apply_tmp_seal,
 * apply_tmp_rename): nothing is visible before the rename, the metadata is
 * in place, and a failed rename leaves the old file and no temp file. */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "spoolsync.h"

struct fx {
	char	dir[64];
	int	rootfd;
};

static int
setup(void **state)
{
	struct fx	*f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_group_commit.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->rootfd = open(f->dir, O_RDONLY | O_DIRECTORY);
	assert_true(f->rootfd != -1);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;
	char		 cmd[128];

	close(f->rootfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int
temps(int rootfd, const char *sub)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0, fd = openat(rootfd, sub, O_RDONLY | O_DIRECTORY);

	assert_true(fd != -1);
	d = fdopendir(fd);
	while ((de = readdir(d)) != NULL)
		n += exclude_is_temp(de->d_name);
	closedir(d);
	return n;
}

static void
expect_file(int rootfd, const char *path, const char *want)
{
	char	b[256];
	int	fd = openat(rootfd, path, O_RDONLY);
	ssize_t	n;

	assert_true(fd != -1);
	n = read(fd, b, sizeof(b) - 1);
	close(fd);
	assert_true(n >= 0);
	b[n] = '\0';
	assert_string_equal(b, want);
}

static void
test_sealed_files_appear_only_at_their_rename_with_their_metadata(void **state)
{
	struct fx		*f = *state;
	struct apply_tmp	 t[3];
	struct apply_meta	 m = { APPLY_MODE | APPLY_MTIME, 0640, 0, 0,
				    1700000000123456789LL };
	struct stat		 st;
	char			 err[256], path[32];

	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "d/f%d", i);
		assert_int_equal(apply_tmp_open(f->rootfd, path, 1, &t[i], err,
		    sizeof(err)), 0);
		assert_int_equal(apply_tmp_write(&t[i], "data", 4, err, sizeof(err)),
		    0);
		assert_int_equal(apply_tmp_seal(&t[i], &m, err, sizeof(err)), 0);
		assert_int_equal(fstatat(f->rootfd, path, &st, 0), -1);
	}
	assert_int_equal(temps(f->rootfd, "d"), 3);
	assert_int_equal(syncfs(f->rootfd), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(apply_tmp_rename(&t[i], err, sizeof(err)), 0);
	assert_int_equal(temps(f->rootfd, "d"), 0);
	assert_int_equal(fstatat(f->rootfd, "d/f1", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_true(st.st_mtim.tv_nsec == 123456789);
	expect_file(f->rootfd, "d/f2", "data");
}

static void
test_a_failed_rename_keeps_the_old_file_and_no_temp(void **state)
{
	struct fx		*f = *state;
	struct apply_tmp	 t;
	struct apply_meta	 m = { APPLY_MODE, 0600, 0, 0, 0 };
	char			 err[256];

	assert_int_equal(apply_file(f->rootfd, "x", "old", 3, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(apply_tmp_open(f->rootfd, "x", 0, &t, err, sizeof(err)), 0);
	assert_int_equal(apply_tmp_write(&t, "new!", 4, err, sizeof(err)), 0);
	assert_int_equal(apply_tmp_seal(&t, &m, err, sizeof(err)), 0);
	apply_fail_at(APPLY_STEP_RENAME, EIO);
	assert_int_equal(apply_tmp_rename(&t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "renaming"));
	expect_file(f->rootfd, "x", "old");
	assert_int_equal(temps(f->rootfd, "."), 0);
}

int
main(void)
{
#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_sealed_files_appear_only_at_their_rename_with_their_metadata),
		T(test_a_failed_rename_keeps_the_old_file_and_no_temp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
