/* test_apply.c: changes land whole or not at all, with exact metadata, and only beneath the root. */
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

#include "spoolsync.h"

struct fx {
	char	dir[64];
	char	root[96], outside[96];
	int	rootfd, outfd;
	int	mounted;
};

static int
setup(void **state)
{
	struct fx	*f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_apply.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "%s/root", f->dir);
	snprintf(f->outside, sizeof(f->outside), "%s/outside", f->dir);
	mkdir(f->root, 0755);
	mkdir(f->outside, 0755);
	f->rootfd = open(f->root, O_RDONLY | O_DIRECTORY);
	f->outfd = open(f->outside, O_RDONLY | O_DIRECTORY);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;

	apply_fail_at(APPLY_STEP_NONE, 0);
	close(f->rootfd);
	close(f->outfd);
	if (f->mounted)
		umount2(f->root, MNT_DETACH);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

/* The bytes of DIRFD/REL, NUL-terminated (caller frees); NULL if missing. */
static char *
slurp(int dirfd, const char *rel, size_t *len)
{
	struct stat	 st;
	char		*p;
	int		 fd;

	if ((fd = openat(dirfd, rel, O_RDONLY | O_NOFOLLOW)) == -1)
		return NULL;
	assert_int_equal(fstat(fd, &st), 0);
	p = malloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
	p[st.st_size] = '\0';
	if (len)
		*len = (size_t)st.st_size;
	close(fd);
	return p;
}

static void
expect_content(int dirfd, const char *rel, const char *want)
{
	char	*got = slurp(dirfd, rel, NULL);

	if (got == NULL)
		fail_msg("%s: missing", rel);
	assert_string_equal(got, want);
	free(got);
}

/* No temp file is left anywhere beneath DIRFD. */
static int
count_temps(int dirfd)
{
	DIR		*d = fdopendir(dup(dirfd));
	struct dirent	*de;
	int		 n = 0, sub;

	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (exclude_is_temp(de->d_name))
			n++;
		if (de->d_type == DT_DIR) {
			sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY);
			n += count_temps(sub);
			close(sub);
		}
	}
	closedir(d);
	return n;
}

static void
put(int dirfd, const char *rel, const char *s)
{
	int	fd = openat(dirfd, rel, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
}

#define MTIME	1234567890123456789LL

static void
test_whole_file_lands_with_exact_owner_mode_and_mtime(void **state)
{
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_OWNER | APPLY_MODE | APPLY_MTIME, 02750,
	    1234, 5678, MTIME };
	struct stat		 st;
	char			 err[256];

	assert_int_equal(apply_file(f->rootfd, "host/accounts/alice.dat",
	    "return {}", 9, &m, err, sizeof(err)), 0);
	expect_content(f->rootfd, "host/accounts/alice.dat", "return {}");
	assert_int_equal(fstatat(f->rootfd, "host/accounts/alice.dat", &st, 0), 0);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 5678);
	assert_int_equal(st.st_mode & 07777, 02750);
	assert_int_equal(st.st_mtim.tv_sec, MTIME / 1000000000);
	assert_int_equal(st.st_mtim.tv_nsec, MTIME % 1000000000);
	/* parents made on the way are like the root until their own mode
	 * arrives (test_a_directory_made_for_a_file_...) */
	assert_int_equal(fstatat(f->rootfd, "host", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	/* replacing keeps nothing of the old file, and leaves no temp file */
	m.mode = 0600;
	assert_int_equal(apply_file(f->rootfd, "host/accounts/alice.dat",
	    "return { x }", 12, &m, err, sizeof(err)), 0);
	expect_content(f->rootfd, "host/accounts/alice.dat", "return { x }");
	assert_int_equal(count_temps(f->rootfd), 0);
}

/* The temp file has the wanted owner already (no chown): the mode is still
 * set whenever it differs, set-id bits included, and left when it is the
 * temp file's own. */
static void
test_a_file_owned_as_wanted_still_gets_exactly_the_wanted_mode(void **state)
{
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_OWNER | APPLY_MODE | APPLY_MTIME, 04644,
	    (uint32_t)geteuid(), (uint32_t)getegid(), MTIME };
	static const unsigned	 modes[] = { 04644, 0600, 02711, 0644 };
	struct stat		 st;
	char			 err[256];

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		m.mode = modes[i];
		assert_int_equal(apply_file(f->rootfd, "h/f.dat", "x", 1, &m, err,
		    sizeof(err)), 0);
		assert_int_equal(fstatat(f->rootfd, "h/f.dat", &st, 0), 0);
		assert_int_equal(st.st_mode & 07777, modes[i]);
		assert_int_equal(st.st_uid, geteuid());
		assert_int_equal(st.st_gid, getegid());
		assert_int_equal(st.st_mtim.tv_sec, MTIME / 1000000000);
	}
	assert_int_equal(count_temps(f->rootfd), 0);
}

static void
test_failure_at_any_step_keeps_the_old_file(void **state)
{
	static const enum apply_step steps[] = { APPLY_STEP_OWNER, APPLY_STEP_MODE,
	    APPLY_STEP_MTIME, APPLY_STEP_FSYNC, APPLY_STEP_RENAME };
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_OWNER | APPLY_MODE | APPLY_MTIME, 0644,
	    0, 0, MTIME };
	struct stat		 st;
	char			 err[256];

	put(f->rootfd, "f.dat", "old");
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		apply_fail_at(steps[i], EIO);
		err[0] = '\0';
		assert_int_equal(apply_file(f->rootfd, "f.dat", "new!", 4, &m, err,
		    sizeof(err)), -1);
		assert_non_null(strstr(err, "f.dat"));
		assert_non_null(strstr(err, strerror(EIO)));
		expect_content(f->rootfd, "f.dat", "old");
		assert_int_equal(fstatat(f->rootfd, "f.dat", &st, 0), 0);
		assert_true(st.st_mtim.tv_sec != MTIME / 1000000000);
		assert_int_equal(count_temps(f->rootfd), 0);
	}
	assert_int_equal(apply_file(f->rootfd, "f.dat", "new!", 4, &m, err,
	    sizeof(err)), 0);
	expect_content(f->rootfd, "f.dat", "new!");
}

static void
test_a_real_rename_failure_leaves_no_temp_file(void **state)
{
	struct fx	*f = *state;
	char		 err[256];

	assert_int_equal(mkdirat(f->rootfd, "d", 0755), 0);
	put(f->rootfd, "d/keep", "k");
	assert_int_equal(apply_file(f->rootfd, "d", "file over dir", 13, NULL, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "renaming into place"));
	expect_content(f->rootfd, "d/keep", "k");
	assert_int_equal(count_temps(f->rootfd), 0);
}

static void
test_disk_full_keeps_the_old_file_and_no_temp_file(void **state)
{
	struct fx		*f = *state;
	struct apply_tmp	 t;
	char			*big, *back, err[256];
	size_t			 len;

	if (geteuid() != 0)
		fail_msg("this test mounts a 64 KiB tmpfs and must run as root");
	close(f->rootfd);
	if (mount("tmpfs", f->root, "tmpfs", 0, "size=64k,mode=0755") == -1)
		fail_msg("mount -t tmpfs -o size=64k %s: %s", f->root, strerror(errno));
	f->mounted = 1;
	f->rootfd = open(f->root, O_RDONLY | O_DIRECTORY);
	big = malloc(50000);
	memset(big, 'o', 30000);
	assert_int_equal(apply_file(f->rootfd, "spool.list", big, 30000, NULL, err,
	    sizeof(err)), 0);
	memset(big, 'n', 50000);
	err[0] = '\0';
	assert_int_equal(apply_file(f->rootfd, "spool.list", big, 50000, NULL, err,
	    sizeof(err)), -1);
	assert_int_equal(errno, ENOSPC);
	assert_non_null(strstr(err, strerror(ENOSPC)));
	assert_non_null(strstr(err, "full"));
	back = slurp(f->rootfd, "spool.list", &len);
	assert_int_equal(len, 30000);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(back[i], 'o');
	free(back);
	assert_int_equal(count_temps(f->rootfd), 0);
	/* the streaming way: the write fails, abort leaves nothing behind */
	assert_int_equal(apply_tmp_open(f->rootfd, "spool.list", 0, &t, err,
	    sizeof(err)), 0);
	assert_int_equal(apply_tmp_write(&t, big, 50000, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "full"));
	apply_tmp_abort(&t);
	assert_int_equal(count_temps(f->rootfd), 0);
	free(big);
}

static void
test_rename_moves_a_directory_tree(void **state)
{
	struct fx	*f = *state;
	struct stat	 st;
	char		 err[256];

	assert_int_equal(mkdirat(f->rootfd, "a", 0755), 0);
	assert_int_equal(mkdirat(f->rootfd, "a/b", 0755), 0);
	put(f->rootfd, "a/b/f", "deep");
	assert_int_equal(apply_rename(f->rootfd, "a", "x/y/a2", err, sizeof(err)), 0);
	expect_content(f->rootfd, "x/y/a2/b/f", "deep");
	assert_int_equal(fstatat(f->rootfd, "a", &st, 0), -1);
	/* a file renamed over another replaces it */
	put(f->rootfd, "one", "1");
	put(f->rootfd, "two", "2");
	assert_int_equal(apply_rename(f->rootfd, "one", "two", err, sizeof(err)), 0);
	expect_content(f->rootfd, "two", "1");
	assert_int_equal(apply_rename(f->rootfd, "missing", "z", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "missing"));
}

static void
test_delete_removes_files_dirs_and_trees_only_inside(void **state)
{
	struct fx	*f = *state;
	struct stat	 st;
	char		 err[256];

	put(f->rootfd, "f", "x");
	assert_int_equal(apply_delete(f->rootfd, "f", 0, err, sizeof(err)), 0);
	assert_int_equal(fstatat(f->rootfd, "f", &st, 0), -1);
	assert_int_equal(apply_delete(f->rootfd, "f", 0, err, sizeof(err)), 0);
	assert_int_equal(apply_delete(f->rootfd, "no/such/dir/f", 0, err,
	    sizeof(err)), 0);
	assert_int_equal(mkdirat(f->rootfd, "empty", 0755), 0);
	assert_int_equal(apply_delete(f->rootfd, "empty", 0, err, sizeof(err)), 0);
	assert_int_equal(mkdirat(f->rootfd, "t", 0755), 0);
	assert_int_equal(mkdirat(f->rootfd, "t/u", 0755), 0);
	put(f->rootfd, "t/u/v", "v");
	put(f->outfd, "precious", "keep");
	assert_int_equal(symlinkat(f->outside, f->rootfd, "t/u/out"), 0);
	assert_int_equal(apply_delete(f->rootfd, "t", 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "rmdir"));
	assert_int_equal(apply_delete(f->rootfd, "t", 1, err, sizeof(err)), 0);
	assert_int_equal(fstatat(f->rootfd, "t", &st, 0), -1);
	expect_content(f->outfd, "precious", "keep");
	/* through a symlink: refused, and the outside untouched */
	assert_int_equal(symlinkat(f->outside, f->rootfd, "link"), 0);
	assert_int_equal(apply_delete(f->rootfd, "link/precious", 1, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "symbolic link"));
	expect_content(f->outfd, "precious", "keep");
	/* the link itself can go */
	assert_int_equal(apply_delete(f->rootfd, "link", 1, err, sizeof(err)), 0);
	assert_int_equal(fstatat(f->rootfd, "link", &st, AT_SYMLINK_NOFOLLOW), -1);
	expect_content(f->outfd, "precious", "keep");
}

static void
test_mkdir_sets_mode_and_owner_and_refuses_a_file(void **state)
{
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_OWNER | APPLY_MODE, 0750, 7, 8, 0 };
	struct stat		 st;
	char			 err[256];

	assert_int_equal(apply_mkdir(f->rootfd, "m/n", &m, err, sizeof(err)), 0);
	assert_int_equal(fstatat(f->rootfd, "m/n", &st, 0), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(st.st_uid, 7);
	assert_int_equal(st.st_gid, 8);
	m.mode = 0711;
	assert_int_equal(apply_mkdir(f->rootfd, "m/n", &m, err, sizeof(err)), 0);
	assert_int_equal(fstatat(f->rootfd, "m/n", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0711);
	put(f->rootfd, "file", "x");
	assert_int_equal(apply_mkdir(f->rootfd, "file", &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a directory"));
}

static mode_t
mode_of(int dirfd, const char *rel)
{
	struct stat	st;

	assert_int_equal(fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW), 0);
	return st.st_mode & 07777;
}

/*
 * A file that comes before its directory's MKDIR: the directory made for
 * it takes its parent's owner and mode (not 0700, whatever the umask),
 * and the MKDIR that follows still sets the exact mode and owner.
 */
static void
test_a_directory_made_for_a_file_is_like_its_parent_until_its_mkdir(void **state)
{
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_OWNER | APPLY_MODE, 0710, 7, 8, 0 };
	struct stat		 st;
	char			 err[256];
	mode_t			 old = umask(077);

	assert_int_equal(fchown(f->rootfd, 41, 42), 0);
	assert_int_equal(fchmod(f->rootfd, 0751), 0);
	assert_int_equal(apply_file(f->rootfd, "host/accounts/alice.dat", "a", 1,
	    NULL, err, sizeof(err)), 0);
	umask(old);
	assert_int_equal(mode_of(f->rootfd, "host"), 0751);
	assert_int_equal(mode_of(f->rootfd, "host/accounts"), 0751);
	assert_int_equal(fstatat(f->rootfd, "host/accounts", &st, 0), 0);
	assert_int_equal(st.st_uid, 41);
	assert_int_equal(st.st_gid, 42);
	expect_content(f->rootfd, "host/accounts/alice.dat", "a");

	assert_int_equal(apply_mkdir(f->rootfd, "host", &m, err, sizeof(err)), 0);
	m.mode = 0750;
	m.uid = 9;
	assert_int_equal(apply_mkdir(f->rootfd, "host/accounts", &m, err,
	    sizeof(err)), 0);
	assert_int_equal(mode_of(f->rootfd, "host"), 0710);
	assert_int_equal(mode_of(f->rootfd, "host/accounts"), 0750);
	assert_int_equal(fstatat(f->rootfd, "host/accounts", &st, 0), 0);
	assert_int_equal(st.st_uid, 9);
	assert_int_equal(st.st_gid, 8);
	assert_int_equal(count_temps(f->rootfd), 0);
}

/*
 * Every way a receiver makes a missing directory (the committer's parent,
 * a temp file, a symlink, a rename, a MKDIR's parents) copies the nearest
 * existing one, set-gid and sticky bits included: never wider, and a
 * private parent keeps its children private.
 */
static void
test_every_made_directory_copies_the_nearest_existing_one(void **state)
{
	struct fx		*f = *state;
	struct apply_tmp	 t;
	const char		*leaf;
	char			 err[256];
	int			 fd;

	assert_int_equal(fchmod(f->rootfd, 02770), 0);
	fd = apply_parent_open(f->rootfd, "c/d/f", err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mode_of(f->rootfd, "c"), 02770);
	assert_int_equal(mode_of(f->rootfd, "c/d"), 02770);

	assert_int_equal(mkdirat(f->rootfd, "private", 0700), 0);
	assert_int_equal(fchmodat(f->rootfd, "private", 0700, 0), 0);
	assert_int_equal(apply_tmp_open(f->rootfd, "private/x/y/f", 1, &t, err,
	    sizeof(err)), 0);
	apply_tmp_abort(&t);
	assert_int_equal(mode_of(f->rootfd, "private/x"), 0700);
	assert_int_equal(mode_of(f->rootfd, "private/x/y"), 0700);

	assert_int_equal(mkdirat(f->rootfd, "shared", 0700), 0);
	assert_int_equal(fchmodat(f->rootfd, "shared", 01777, 0), 0);
	assert_int_equal(apply_symlink(f->rootfd, "shared/l/link", "target", NULL,
	    err, sizeof(err)), 0);
	assert_int_equal(mode_of(f->rootfd, "shared/l"), 01777);
	put(f->rootfd, "moved", "m");
	assert_int_equal(apply_rename(f->rootfd, "moved", "shared/r/s/moved", err,
	    sizeof(err)), 0);
	assert_int_equal(mode_of(f->rootfd, "shared/r/s"), 01777);
	assert_int_equal(apply_mkdir(f->rootfd, "shared/m/n", NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(mode_of(f->rootfd, "shared/m"), 01777);
	assert_int_equal(mode_of(f->rootfd, "shared/m/n"), 0755);

	/* Without create, nothing is made. */
	assert_int_equal(apply_tmp_open(f->rootfd, "none/f", 0, &t, err,
	    sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	fd = path_open_parent(f->rootfd, "none/f", 0, 0, &leaf, err, sizeof(err));
	assert_int_equal(fd, -1);
}

/* A file where a directory must be made, or a symlink: refused, not followed. */
static void
test_making_a_directory_never_follows_or_replaces_what_is_there(void **state)
{
	struct fx	*f = *state;
	char		 err[256];

	put(f->rootfd, "plain", "p");
	assert_int_equal(apply_file(f->rootfd, "plain/sub/f", "x", 1, NULL, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "not a directory"));
	assert_int_equal(symlinkat(f->outside, f->rootfd, "out"), 0);
	assert_int_equal(apply_file(f->rootfd, "out/new/f", "x", 1, NULL, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(faccessat(f->outfd, "new", F_OK, 0), -1);
	expect_content(f->rootfd, "plain", "p");
}

static void
test_metadata_change_never_goes_through_a_symlink(void **state)
{
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_OWNER | APPLY_MODE | APPLY_MTIME, 0604,
	    11, 12, MTIME };
	struct stat		 st, before;
	char			 err[256], target[160];

	put(f->rootfd, "f", "x");
	assert_int_equal(apply_set_meta(f->rootfd, "f", &m, err, sizeof(err)), 0);
	assert_int_equal(fstatat(f->rootfd, "f", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0604);
	assert_int_equal(st.st_uid, 11);
	assert_int_equal(st.st_mtim.tv_nsec, MTIME % 1000000000);
	put(f->outfd, "victim", "v");
	assert_int_equal(fstatat(f->outfd, "victim", &before, 0), 0);
	snprintf(target, sizeof(target), "%s/victim", f->outside);
	assert_int_equal(symlinkat(target, f->rootfd, "l"), 0);
	assert_int_equal(apply_set_meta(f->rootfd, "l", &m, err, sizeof(err)), 0);
	assert_int_equal(fstatat(f->outfd, "victim", &st, 0), 0);
	assert_int_equal(st.st_mode, before.st_mode);
	assert_int_equal(st.st_uid, before.st_uid);
	assert_int_equal(st.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	assert_int_equal(fstatat(f->rootfd, "l", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_uid, 11);
	assert_int_equal(st.st_mtim.tv_nsec, MTIME % 1000000000);
}

static void
test_symlink_is_created_as_a_link_and_replaces_atomically(void **state)
{
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_MTIME, 0, 0, 0, MTIME };
	struct stat		 st;
	char			 err[256], buf[64];
	ssize_t			 n;

	put(f->rootfd, "acc", "a file first");
	assert_int_equal(apply_symlink(f->rootfd, "acc", "../../etc/passwd", &m,
	    err, sizeof(err)), 0);
	n = readlinkat(f->rootfd, "acc", buf, sizeof(buf));
	assert_int_equal(n, 16);
	assert_memory_equal(buf, "../../etc/passwd", 16);
	assert_int_equal(fstatat(f->rootfd, "acc", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(st.st_mtim.tv_nsec, MTIME % 1000000000);
	assert_int_equal(count_temps(f->rootfd), 0);
	assert_int_equal(apply_symlink(f->rootfd, "x", "", NULL, err, sizeof(err)),
	    -1);
}

static void
test_a_delta_patches_into_place_and_an_append_copies_then_adds(void **state)
{
	struct fx		*f = *state;
	struct apply_tmp	 t;
	struct delta_job	*j;
	struct rs_signature	*sig;
	struct buf		 sb, db;
	enum delta_status	 st;
	char			 err[256], *old, *new;
	int			 bfd, nfd;
	size_t			 n = 300000;

	old = malloc(n + 1);
	new = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		old[i] = (char)('a' + (i * 7 + i / 13) % 26);
	old[n] = '\0';
	memcpy(new, old, n + 1);
	memcpy(new + 150000, "CHANGED", 7);
	put(f->rootfd, "big.dat", old);
	put(f->outfd, "new.dat", new);
	buf_init(&sb);
	buf_init(&db);
	/* the receiver's signature, the sender's delta, the receiver's patch */
	bfd = apply_open_basis(f->rootfd, "big.dat", err, sizeof(err));
	assert_true(bfd >= 0);
	j = delta_sig_begin(bfd, (off_t)n, 0, err, sizeof(err));
	while (delta_job_step(j, NULL, 0, 0, &sb, 0, err, sizeof(err)) == DELTA_MORE)
		;
	delta_job_free(j);
	j = delta_loadsig_begin(0);
	assert_int_equal(delta_job_step(j, sb.data, sb.len, 1, NULL, 0, err,
	    sizeof(err)), DELTA_DONE);
	sig = delta_loadsig_take(j);
	delta_job_free(j);
	nfd = openat(f->outfd, "new.dat", O_RDONLY);
	j = delta_delta_begin(sig, nfd);
	while (delta_job_step(j, NULL, 0, 0, &db, 0, err, sizeof(err)) == DELTA_MORE)
		;
	delta_job_free(j);
	delta_sig_free(sig);
	close(nfd);
	assert_int_equal(apply_tmp_open(f->rootfd, "big.dat", 0, &t, err,
	    sizeof(err)), 0);
	j = delta_patch_begin(bfd, t.fd, n);
	st = delta_job_step(j, db.data, db.len, 1, NULL, 65536, err, sizeof(err));
	while (st == DELTA_MORE)	/* 64 KiB of output a step */
		st = delta_job_step(j, NULL, 0, 1, NULL, 65536, err, sizeof(err));
	assert_int_equal(st, DELTA_DONE);
	delta_job_free(j);
	assert_int_equal(apply_tmp_commit(&t, NULL, err, sizeof(err)), 0);
	close(bfd);
	expect_content(f->rootfd, "big.dat", new);

	/* an append: the old bytes copied, then only the tail sent */
	put(f->rootfd, "bob.list", "item({1});\n");
	bfd = apply_open_basis(f->rootfd, "bob.list", err, sizeof(err));
	assert_int_equal(apply_tmp_open(f->rootfd, "bob.list", 0, &t, err,
	    sizeof(err)), 0);
	assert_int_equal(apply_tmp_copy(&t, bfd, 11, err, sizeof(err)), 0);
	assert_int_equal(apply_tmp_write(&t, "item({2});\n", 11, err, sizeof(err)),
	    0);
	assert_int_equal(apply_tmp_commit(&t, NULL, err, sizeof(err)), 0);
	expect_content(f->rootfd, "bob.list", "item({1});\nitem({2});\n");
	/* a claimed old length longer than the file is an error */
	assert_int_equal(apply_tmp_open(f->rootfd, "bob.list", 0, &t, err,
	    sizeof(err)), 0);
	assert_int_equal(apply_tmp_copy(&t, bfd, 1000, err, sizeof(err)), -1);
	apply_tmp_abort(&t);
	close(bfd);
	assert_int_equal(count_temps(f->rootfd), 0);
	buf_free(&sb);
	buf_free(&db);
	free(old);
	free(new);
}

static void
test_hostile_paths_change_nothing_outside(void **state)
{
	struct fx	*f = *state;
	struct stat	 st;
	char		 err[256];

	put(f->outfd, "victim", "v");
	assert_int_equal(symlinkat(f->outside, f->rootfd, "link"), 0);
	assert_int_equal(apply_file(f->rootfd, "../outside/victim", "x", 1, NULL,
	    err, sizeof(err)), -1);
	assert_int_equal(apply_file(f->rootfd, "link/victim", "x", 1, NULL, err,
	    sizeof(err)), -1);
	assert_int_equal(apply_file(f->rootfd, "link/new", "x", 1, NULL, err,
	    sizeof(err)), -1);
	assert_int_equal(apply_mkdir(f->rootfd, "link/d", NULL, err, sizeof(err)),
	    -1);
	assert_int_equal(apply_symlink(f->rootfd, "link/s", "x", NULL, err,
	    sizeof(err)), -1);
	put(f->rootfd, "mine", "m");
	assert_int_equal(apply_rename(f->rootfd, "mine", "link/mine", err,
	    sizeof(err)), -1);
	assert_int_equal(apply_rename(f->rootfd, "mine", "/tmp/mine", err,
	    sizeof(err)), -1);
	assert_int_equal(apply_open_basis(f->rootfd, "link/victim", err,
	    sizeof(err)), -1);
	expect_content(f->outfd, "victim", "v");
	assert_int_equal(fstatat(f->outfd, "new", &st, 0), -1);
	assert_int_equal(fstatat(f->outfd, "d", &st, 0), -1);
	assert_int_equal(fstatat(f->outfd, "s", &st, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(fstatat(f->outfd, "mine", &st, 0), -1);
	assert_int_equal(count_temps(f->outfd), 0);
}

/* Many temp files in one directory opened once: each lands, the shared
 * directory stays the caller's, bad paths and symlinked parents refused. */
static void
test_temp_files_share_one_directory_and_it_stays_open(void **state)
{
	struct fx		*f = *state;
	struct apply_tmp	 t[3];
	struct apply_meta	 m = { .set = APPLY_MODE, .mode = 0640 };
	struct stat		 st;
	char			 err[256], name[32];
	int			 dfd;

	dfd = apply_parent_open(f->rootfd, "a/b/x", err, sizeof(err));
	assert_true(dfd >= 0);		/* a and a/b made on the way */
	assert_int_equal(fstatat(f->rootfd, "a/b", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISDIR(st.st_mode));
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "a/b/f%d", i);
		assert_int_equal(apply_tmp_open_in(dfd, name, &t[i], err,
		    sizeof(err)), 0);
		assert_int_equal(apply_tmp_write(&t[i], "abc", 3, err, sizeof(err)),
		    0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(apply_tmp_seal(&t[i], &m, err, sizeof(err)), 0);
		assert_int_equal(apply_tmp_rename(&t[i], err, sizeof(err)), 0);
	}
	assert_int_equal(apply_tmp_commit(&t[2], &m, err, sizeof(err)), 0);
	assert_true(fcntl(dfd, F_GETFD) != -1);		/* still the caller's */
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "a/b/f%d", i);
		expect_content(f->rootfd, name, "abc");
		assert_int_equal(fstatat(f->rootfd, name, &st, 0), 0);
		assert_int_equal(st.st_mode & 07777, 0640);
	}
	/* An aborted one leaves nothing, and the directory open. */
	assert_int_equal(apply_tmp_open_in(dfd, "a/b/gone", &t[0], err,
	    sizeof(err)), 0);
	apply_tmp_abort(&t[0]);
	assert_true(fcntl(dfd, F_GETFD) != -1);
	assert_int_equal(apply_tmp_open_in(dfd, "a/../../x", &t[0], err,
	    sizeof(err)), -1);
	close(dfd);
	assert_int_equal(count_temps(f->rootfd), 0);
	assert_int_equal(fstatat(f->rootfd, "a/b/gone", &st, 0), -1);
	/* The walk that opens the shared directory follows no symlink. */
	assert_int_equal(symlinkat(f->outside, f->rootfd, "link"), 0);
	assert_int_equal(apply_parent_open(f->rootfd, "link/x", err, sizeof(err)),
	    -1);
}


/* The entries of DIRFD, "." and ".." aside. */
static int
count_entries(int dirfd)
{
	DIR		*d = fdopendir(dup(dirfd));
	struct dirent	*de;
	int		 n = 0;

	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/*
 * A nameless temp file (the receiver's initial sync): nothing at all is in
 * the directory while it is written and sealed, and the target appears
 * whole, with its exact attributes, when it is placed.
 */
static void
test_a_nameless_temp_file_shows_nothing_until_it_lands_whole(void **state)
{
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_OWNER | APPLY_MODE | APPLY_MTIME, 0640,
	    1234, 5678, MTIME };
	struct apply_tmp	 t;
	struct stat		 st;
	char			 err[256];
	int			 dfd;

	dfd = apply_parent_open(f->rootfd, "h/offline/bob.list", err, sizeof(err));
	assert_true(dfd >= 0);
	assert_int_equal(apply_tmp_open_anon(dfd, "h/offline/bob.list", &m, &t, err,
	    sizeof(err)), 0);
	assert_int_equal(t.anon, 1);
	assert_int_equal(apply_tmp_write(&t, "item({", 6, err, sizeof(err)), 0);
	assert_int_equal(count_entries(dfd), 0);
	assert_int_equal(apply_tmp_write(&t, "});", 3, err, sizeof(err)), 0);
	assert_int_equal(apply_tmp_seal(&t, &m, err, sizeof(err)), 0);
	assert_int_equal(count_entries(dfd), 0);	/* sealed: still nothing */
	assert_int_equal(fstatat(dfd, "bob.list", &st, 0), -1);
	assert_int_equal(apply_tmp_rename(&t, err, sizeof(err)), 0);
	expect_content(f->rootfd, "h/offline/bob.list", "item({});");
	assert_int_equal(count_entries(dfd), 1);
	assert_int_equal(fstatat(dfd, "bob.list", &st, 0), 0);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 5678);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(st.st_mtim.tv_sec, MTIME / 1000000000);
	assert_int_equal(st.st_mtim.tv_nsec, MTIME % 1000000000);
	/* what the echo check records is what lies there */
	assert_true(t.placed_ok);
	assert_int_equal(t.placed.st_ino, st.st_ino);
	assert_int_equal(t.placed.st_ctim.tv_nsec, st.st_ctim.tv_nsec);
	assert_true(fcntl(dfd, F_GETFD) != -1);		/* still the caller's */
	close(dfd);
}

/* A target that exists is replaced atomically (never missing, never torn),
 * with the mode wanted whatever the umask, and no temp file left. */
static void
test_a_nameless_temp_file_replaces_an_existing_file_atomically(void **state)
{
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_MODE | APPLY_MTIME, 0644, 0, 0, MTIME };
	static const unsigned	 modes[] = { 0644, 02750, 0600, 0777 };
	struct apply_tmp	 t;
	struct stat		 old, st;
	char			 err[256];
	mode_t			 um = umask(077);
	int			 dfd;

	put(f->rootfd, "f.dat", "old");
	dfd = apply_parent_open(f->rootfd, "f.dat", err, sizeof(err));
	assert_true(dfd >= 0);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		m.mode = modes[i];
		assert_int_equal(fstatat(dfd, "f.dat", &old, 0), 0);
		assert_int_equal(apply_tmp_open_anon(dfd, "f.dat", &m, &t, err,
		    sizeof(err)), 0);
		assert_int_equal(apply_tmp_write(&t, "new", 3, err, sizeof(err)), 0);
		assert_int_equal(apply_tmp_seal(&t, &m, err, sizeof(err)), 0);
		expect_content(f->rootfd, "f.dat", i == 0 ? "old" : "new");
		assert_int_equal(apply_tmp_rename(&t, err, sizeof(err)), 0);
		expect_content(f->rootfd, "f.dat", "new");
		assert_int_equal(fstatat(dfd, "f.dat", &st, 0), 0);
		assert_true(st.st_ino != old.st_ino);
		assert_int_equal(st.st_mode & 07777, modes[i]);
		assert_int_equal(count_entries(dfd), 1);
	}
	/* the single-file way (fsync) places it the same */
	assert_int_equal(apply_tmp_open_anon(dfd, "g.dat", &m, &t, err,
	    sizeof(err)), 0);
	assert_int_equal(apply_tmp_write(&t, "g", 1, err, sizeof(err)), 0);
	assert_int_equal(apply_tmp_commit(&t, &m, err, sizeof(err)), 0);
	expect_content(f->rootfd, "g.dat", "g");
	assert_int_equal(count_entries(dfd), 2);
	umask(um);
	close(dfd);
}

/* Placing fails (injected, or a directory in the way): the target is as it
 * was, and nothing is left behind. */
static void
test_a_nameless_temp_file_that_cannot_land_leaves_nothing(void **state)
{
	static const char *const targets[] = { "new", "old" };
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_MODE, 0644, 0, 0, 0 };
	struct apply_tmp	 t;
	struct stat		 st;
	char			 err[256];
	int			 dfd;

	dfd = apply_parent_open(f->rootfd, "a/x", err, sizeof(err));
	assert_true(dfd >= 0);
	put(dfd, "old", "old");
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(apply_tmp_open_anon(dfd, i ? "a/old" : "a/new", &m,
		    &t, err, sizeof(err)), 0);
		assert_int_equal(apply_tmp_write(&t, "partial", 7, err, sizeof(err)),
		    0);
		assert_int_equal(apply_tmp_seal(&t, &m, err, sizeof(err)), 0);
		apply_fail_at(APPLY_STEP_RENAME, EIO);
		assert_int_equal(apply_tmp_rename(&t, err, sizeof(err)), -1);
		assert_int_equal(errno, EIO);
		assert_non_null(strstr(err, targets[i]));
	}
	assert_int_equal(fstatat(dfd, "new", &st, 0), -1);
	expect_content(dfd, "old", "old");
	assert_int_equal(count_entries(dfd), 1);
	/* a directory where the file goes: EISDIR, for the caller to clear */
	assert_int_equal(mkdirat(dfd, "d", 0755), 0);
	put(dfd, "d/keep", "k");
	assert_int_equal(apply_tmp_open_anon(dfd, "a/d", &m, &t, err, sizeof(err)),
	    0);
	assert_int_equal(apply_tmp_write(&t, "file", 4, err, sizeof(err)), 0);
	assert_int_equal(apply_tmp_seal(&t, &m, err, sizeof(err)), 0);
	assert_int_equal(apply_tmp_rename(&t, err, sizeof(err)), -1);
	assert_int_equal(errno, EISDIR);
	expect_content(dfd, "d/keep", "k");
	assert_int_equal(count_entries(dfd), 2);
	assert_int_equal(count_temps(f->rootfd), 0);
	/* aborted before it was placed: nothing either */
	assert_int_equal(apply_tmp_open_anon(dfd, "a/gone", &m, &t, err,
	    sizeof(err)), 0);
	apply_tmp_abort(&t);
	assert_int_equal(count_entries(dfd), 2);
	/* a directory deleted meanwhile: ENOENT, as the committer expects */
	assert_int_equal(mkdirat(f->rootfd, "b", 0755), 0);
	close(dfd);
	dfd = openat(f->rootfd, "b", O_RDONLY | O_DIRECTORY);
	assert_int_equal(unlinkat(f->rootfd, "b", AT_REMOVEDIR), 0);
	assert_int_equal(apply_tmp_open_anon(dfd, "b/x", &m, &t, err, sizeof(err)),
	    -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(apply_tmp_open_anon(dfd, "b/../../x", &m, &t, err,
	    sizeof(err)), -1);
	close(dfd);
}

/* A file system (or kernel) that refuses O_TMPFILE: a named temp file
 * instead, which lands the same way. */
static void
test_a_refused_tmpfile_falls_back_to_a_named_temp_file(void **state)
{
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_MODE | APPLY_MTIME, 0604, 0, 0, MTIME };
	static const int	 refusals[] = { EOPNOTSUPP, EISDIR, EINVAL };
	struct apply_tmp	 t;
	struct stat		 st;
	char			 err[256], name[32];
	int			 dfd;

	dfd = apply_parent_open(f->rootfd, "x", err, sizeof(err));
	assert_true(dfd >= 0);
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		snprintf(name, sizeof(name), "f%zu", i);
		apply_fail_at(APPLY_STEP_TMPFILE, refusals[i]);
		assert_int_equal(apply_tmp_open_anon(dfd, name, &m, &t, err,
		    sizeof(err)), 0);
		assert_int_equal(t.anon, 0);
		assert_true(exclude_is_temp(t.name));
		assert_int_equal(count_temps(f->rootfd), 1);
		assert_int_equal(apply_tmp_write(&t, "abc", 3, err, sizeof(err)), 0);
		assert_int_equal(apply_tmp_seal(&t, &m, err, sizeof(err)), 0);
		assert_int_equal(fstatat(dfd, name, &st, 0), -1);
		assert_int_equal(apply_tmp_rename(&t, err, sizeof(err)), 0);
		expect_content(dfd, name, "abc");
		assert_int_equal(fstatat(dfd, name, &st, 0), 0);
		assert_int_equal(st.st_mode & 07777, 0604);
		assert_int_equal(count_temps(f->rootfd), 0);
	}
	/* any other failure is an error, not a fallback */
	apply_fail_at(APPLY_STEP_TMPFILE, EMFILE);
	assert_int_equal(apply_tmp_open_anon(dfd, "g", &m, &t, err, sizeof(err)),
	    -1);
	assert_int_equal(errno, EMFILE);
	assert_non_null(strstr(err, "temp file"));
	assert_int_equal(count_temps(f->rootfd), 0);
	close(dfd);
}

/*
 * What a watcher of the directory sees (watch.c's filter relies on it):
 * the writes and attribute changes under "#<inode>", never the target's
 * name, and the target once, created, when it is whole.
 */
static void
test_a_watcher_sees_the_target_only_when_it_is_whole(void **state)
{
	struct fx		*f = *state;
	struct apply_meta	 m = { APPLY_MODE | APPLY_MTIME, 0644, 0, 0, MTIME };
	struct apply_tmp	 t;
	char			 err[256], buf[4096], tmpname[32];
	ssize_t			 n;
	int			 in, dfd, created = 0;
	struct stat		 st;

	dfd = apply_parent_open(f->rootfd, "w/f.dat", err, sizeof(err));
	assert_true(dfd >= 0);
	in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	assert_true(in >= 0);
	snprintf(buf, sizeof(buf), "%s/w", f->root);
	assert_true(inotify_add_watch(in, buf, IN_MODIFY | IN_CLOSE_WRITE |
	    IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO) >= 0);
	assert_int_equal(apply_tmp_open_anon(dfd, "w/f.dat", &m, &t, err,
	    sizeof(err)), 0);
	assert_int_equal(fstat(t.fd, &st), 0);
	snprintf(tmpname, sizeof(tmpname), "#%llu", (unsigned long long)st.st_ino);
	assert_int_equal(apply_tmp_write(&t, "abc", 3, err, sizeof(err)), 0);
	assert_int_equal(apply_tmp_seal(&t, &m, err, sizeof(err)), 0);
	assert_int_equal(apply_tmp_rename(&t, err, sizeof(err)), 0);
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n; ) {
			struct inotify_event	*ie = (struct inotify_event *)p;

			assert_true(ie->len > 0);
			if (strcmp(ie->name, "f.dat") == 0) {
				assert_int_equal(ie->mask, IN_CREATE);
				created++;
			} else
				assert_string_equal(ie->name, tmpname);
			p += sizeof(*ie) + ie->len;
		}
	}
	assert_int_equal(created, 1);
	close(in);
	close(dfd);
}

int
main(void)
{
#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_whole_file_lands_with_exact_owner_mode_and_mtime),
		T(test_a_file_owned_as_wanted_still_gets_exactly_the_wanted_mode),
		T(test_failure_at_any_step_keeps_the_old_file),
		T(test_a_real_rename_failure_leaves_no_temp_file),
		T(test_disk_full_keeps_the_old_file_and_no_temp_file),
		T(test_rename_moves_a_directory_tree),
		T(test_delete_removes_files_dirs_and_trees_only_inside),
		T(test_mkdir_sets_mode_and_owner_and_refuses_a_file),
		T(test_a_directory_made_for_a_file_is_like_its_parent_until_its_mkdir),
		T(test_every_made_directory_copies_the_nearest_existing_one),
		T(test_making_a_directory_never_follows_or_replaces_what_is_there),
		T(test_metadata_change_never_goes_through_a_symlink),
		T(test_symlink_is_created_as_a_link_and_replaces_atomically),
		T(test_a_delta_patches_into_place_and_an_append_copies_then_adds),
		T(test_hostile_paths_change_nothing_outside),
		T(test_temp_files_share_one_directory_and_it_stays_open),
		T(test_a_nameless_temp_file_shows_nothing_until_it_lands_whole),
		T(test_a_nameless_temp_file_replaces_an_existing_file_atomically),
		T(test_a_nameless_temp_file_that_cannot_land_leaves_nothing),
		T(test_a_refused_tmpfile_falls_back_to_a_named_temp_file),
		T(test_a_watcher_sees_the_target_only_when_it_is_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
