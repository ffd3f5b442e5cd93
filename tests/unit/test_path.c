/* test_path.c: peer paths are validated, and confined opens never follow a symlink. */
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

#include "spoolsync.h"

struct fixture {
	char	dir[64];	/* holds root/ and outside/ */
	char	root[96];
	char	outside[96];
	int	rootfd;
};

static int
setup(void **state)
{
	struct fixture	*f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_path.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "%s/root", f->dir);
	snprintf(f->outside, sizeof(f->outside), "%s/outside", f->dir);
	if (mkdir(f->root, 0755) == -1 || mkdir(f->outside, 0755) == -1)
		return -1;
	f->rootfd = open(f->root, O_RDONLY | O_DIRECTORY);
	*state = f;
	return f->rootfd == -1 ? -1 : 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	path_use_openat2(1);
	close(f->rootfd);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

static void
at(const struct fixture *f, const char *base, const char *rel, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", base, rel);
	(void)f;
}

static void
test_clean_relative_paths_are_accepted(void **state)
{
	static const char *const ok[] = {
		"a", "a/b", "example%2etest/accounts/alice.dat", "alice.dat~",
		"...", "..a", "a..", ".a", "a/.b/c", "a b/c\td",
	};
	char	err[256], name[PATH_NAME_MAX + 1], *path;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		err[0] = '\0';
		assert_int_equal(path_valid(ok[i], err, sizeof(err)), 0);
	}
	memset(name, 'n', PATH_NAME_MAX);
	name[PATH_NAME_MAX] = '\0';
	assert_int_equal(path_valid(name, err, sizeof(err)), 0);
	/* The longest path that is allowed: components of 1 byte and slashes. */
	path = malloc(PATH_REL_MAX + 1);
	for (size_t i = 0; i < PATH_REL_MAX; i++)
		path[i] = i % 2 ? '/' : 'x';
	path[PATH_REL_MAX] = '\0';
	assert_int_equal(path_valid(path, err, sizeof(err)), 0);
	free(path);
}

static void
test_hostile_paths_are_refused_with_the_reason(void **state)
{
	static const struct {
		const char	*path;
		size_t		 len;
		const char	*why;
	} bad[] = {
		{ "", 0, "empty" },
		{ "/etc/passwd", 11, "absolute" },
		{ "/", 1, "absolute" },
		{ "../x", 4, "\"..\"" },
		{ "..", 2, "\"..\"" },
		{ "a/../b", 6, "\"..\"" },
		{ "a/..", 4, "\"..\"" },
		{ "a/../../etc", 11, "\"..\"" },
		{ ".", 1, "\".\"" },
		{ "./a", 3, "\".\"" },
		{ "a/./b", 5, "\".\"" },
		{ "a//b", 4, "empty component" },
		{ "a/", 2, "trailing slash" },
		{ "a\0b", 3, "NUL" },
		{ "a/b\0/../../x", 12, "NUL" },
	};
	char	err[256], big[PATH_REL_MAX + 2], name[PATH_NAME_MAX + 2];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(path_validn(bad[i].path, bad[i].len, err,
		    sizeof(err)), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("path #%zu: \"%s\" does not say %s", i, err, bad[i].why);
	}
	memset(name, 'n', PATH_NAME_MAX + 1);
	name[PATH_NAME_MAX + 1] = '\0';
	assert_int_equal(path_valid(name, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "component of 256 bytes"));
	memset(big, 'x', sizeof(big) - 1);
	for (size_t i = 100; i < sizeof(big) - 1; i += 100)
		big[i] = '/';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(path_valid(big, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "4096 bytes long"));
}

static void
test_error_text_never_carries_control_bytes(void **state)
{
	char	err[256];

	(void)state;
	assert_int_equal(path_valid("../\n\x1b[31mevil", err, sizeof(err)), -1);
	for (const char *p = err; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
	assert_non_null(strstr(err, "\\x0a"));
}

static void
test_open_parent_makes_missing_directories(void **state)
{
	struct fixture	*f = *state;
	const char	*leaf;
	char		 err[256], p[256];
	struct stat	 st;
	int		 fd;

	for (int mode = 1; mode >= 0; mode--) {
		path_use_openat2(mode);
		fd = path_open_parent(f->rootfd, mode ? "a/b/c/file" : "x/y/file",
		    1, 0750, &leaf, err, sizeof(err));
		assert_true(fd >= 0);
		assert_string_equal(leaf, "file");
		close(fd);
		at(f, f->root, mode ? "a/b/c" : "x/y", p, sizeof(p));
		assert_int_equal(stat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
	}
	fd = path_open_parent(f->rootfd, "top", 0, 0, &leaf, err, sizeof(err));
	assert_true(fd >= 0);
	assert_string_equal(leaf, "top");
	close(fd);
	fd = path_open_parent(f->rootfd, "nope/file", 0, 0, &leaf, err, sizeof(err));
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ENOENT);
}

static void
test_symlink_in_the_middle_is_never_followed(void **state)
{
	struct fixture	*f = *state;
	const char	*leaf;
	char		 err[256], p[256];
	int		 fd;

	at(f, f->root, "link", p, sizeof(p));
	assert_int_equal(symlink(f->outside, p), 0);
	at(f, f->outside, "secret", p, sizeof(p));
	close(open(p, O_CREAT | O_WRONLY, 0600));
	for (int mode = 1; mode >= 0; mode--) {
		path_use_openat2(mode);
		err[0] = '\0';
		fd = path_open(f->rootfd, "link/secret", O_RDONLY, 0, err, sizeof(err));
		assert_int_equal(fd, -1);
		assert_non_null(strstr(err, "\"link\"") ? err : strstr(err, "link"));
		assert_non_null(strstr(err, "symbolic link"));
		fd = path_open(f->rootfd, "link/planted", O_WRONLY | O_CREAT, 0644,
		    err, sizeof(err));
		assert_int_equal(fd, -1);
		fd = path_open_parent(f->rootfd, "link/sub/planted", 1, 0755, &leaf,
		    err, sizeof(err));
		assert_int_equal(fd, -1);
		assert_non_null(strstr(err, "symbolic link"));
	}
	at(f, f->outside, "planted", p, sizeof(p));
	assert_int_equal(access(p, F_OK), -1);
	at(f, f->outside, "sub", p, sizeof(p));
	assert_int_equal(access(p, F_OK), -1);
}

static void
test_symlink_at_the_leaf_is_never_followed(void **state)
{
	struct fixture	*f = *state;
	char		 err[256], p[256], target[256];
	struct stat	 st;
	int		 fd;

	at(f, f->outside, "secret", target, sizeof(target));
	fd = open(target, O_CREAT | O_WRONLY, 0600);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_int_equal(mkdir(strcat(strcpy(p, f->root), "/d"), 0755), 0);
	at(f, f->root, "d/leaf", p, sizeof(p));
	assert_int_equal(symlink(target, p), 0);
	at(f, f->root, "d/dangling", p, sizeof(p));
	at(f, f->outside, "created-through-link", target, sizeof(target));
	assert_int_equal(symlink(target, p), 0);
	for (int mode = 1; mode >= 0; mode--) {
		path_use_openat2(mode);
		fd = path_open(f->rootfd, "d/leaf", O_RDONLY, 0, err, sizeof(err));
		assert_int_equal(fd, -1);
		assert_non_null(strstr(err, "symbolic link"));
		fd = path_open(f->rootfd, "d/leaf", O_WRONLY | O_TRUNC, 0, err,
		    sizeof(err));
		assert_int_equal(fd, -1);
		fd = path_open(f->rootfd, "d/dangling", O_WRONLY | O_CREAT, 0644, err,
		    sizeof(err));
		assert_int_equal(fd, -1);
	}
	at(f, f->outside, "secret", p, sizeof(p));
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 4);
	assert_int_equal(access(target, F_OK), -1);
}

static void
test_a_file_in_the_path_is_not_a_directory(void **state)
{
	struct fixture	*f = *state;
	char		 err[256], p[256];
	int		 fd;

	at(f, f->root, "f", p, sizeof(p));
	close(open(p, O_CREAT | O_WRONLY, 0600));
	for (int mode = 1; mode >= 0; mode--) {
		path_use_openat2(mode);
		fd = path_open(f->rootfd, "f/x", O_RDONLY, 0, err, sizeof(err));
		assert_int_equal(fd, -1);
		assert_non_null(strstr(err, "not a directory"));
	}
}

static void
test_open_refuses_invalid_paths_before_touching_disk(void **state)
{
	struct fixture	*f = *state;
	const char	*leaf;
	char		 err[256];

	assert_int_equal(path_open(f->rootfd, "../outside/x", O_RDONLY, 0, err,
	    sizeof(err)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(path_open_parent(f->rootfd, "/etc/passwd", 1, 0755, &leaf,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "absolute"));
}

static void
test_open_dir_of_empty_path_is_the_root(void **state)
{
	struct fixture	*f = *state;
	struct stat	 a, b;
	char		 err[256];
	int		 fd;

	fd = path_open_dir(f->rootfd, "", err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(fstat(f->rootfd, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_relative_paths_are_accepted),
		cmocka_unit_test(test_hostile_paths_are_refused_with_the_reason),
		cmocka_unit_test(test_error_text_never_carries_control_bytes),
		cmocka_unit_test_setup_teardown(test_open_parent_makes_missing_directories,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_in_the_middle_is_never_followed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_at_the_leaf_is_never_followed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_file_in_the_path_is_not_a_directory,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_open_refuses_invalid_paths_before_touching_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_dir_of_empty_path_is_the_root,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
