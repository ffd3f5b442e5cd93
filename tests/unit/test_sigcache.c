/* test_sigcache.c: signatures made ahead stand for a file only while it is exactly as it was, and serve a correct delta. */
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"
#include "spoolsync.h"

#define BIG	(3 * 1024 * 1024 + 123)

struct fx {
	char	dir[64];
	char	path[96];
};

static int
setup(void **state)
{
	struct fx	*f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_sigcache.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/big.list", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;

	tu_rmtree(f->dir);
	free(f);
	return 0;
}

static unsigned char *
pattern(size_t n, unsigned seed)
{
	unsigned char	*p = malloc(n);

	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(seed >> 16);
	}
	return p;
}

static void
write_file(const char *path, const unsigned char *p, size_t n)
{
	int	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* The file is made, then its signature once it has settled. */
static int
made_ahead(const char *path, struct buf *sig, struct sig_key *key)
{
	char	err[256];
	int	fd = open(path, O_RDONLY), rv;

	assert_true(fd >= 0);
	rv = sigcache_compute(fd, 3000000000LL, sig, key, err, sizeof(err));
	if (rv == -1)
		fail_msg("sigcache_compute: %s", err);
	close(fd);
	return rv;
}

static void
stat_of(const char *path, struct stat *st)
{
	assert_int_equal(stat(path, st), 0);
}

static void
test_a_settled_file_is_served_while_its_stat_is_unchanged(void **state)
{
	struct fx		*f = *state;
	unsigned char		*p = pattern(BIG, 1);
	struct sigcache		*sc = sigcache_new(SIGCACHE_MAX_BYTES);
	struct buf		 sig;
	struct sig_key		 key;
	struct stat		 st;
	const struct buf	*got;

	buf_init(&sig);
	write_file(f->path, p, BIG);
	assert_int_equal(made_ahead(f->path, &sig, &key), 0);
	assert_true(sig.len > 12);
	assert_int_equal(sigcache_put(sc, "big.list", &key, sig.data, sig.len), 0);
	stat_of(f->path, &st);
	got = sigcache_get(sc, "big.list", &st);
	assert_non_null(got);
	assert_int_equal(got->len, sig.len);
	assert_memory_equal(got->data, sig.data, sig.len);
	assert_null(sigcache_get(sc, "other", &st));
	buf_free(&sig);
	sigcache_free(sc);
	free(p);
}

/* The test the cache must never fail: a rewrite of the same size in place. */
static void
test_an_in_place_rewrite_is_never_served_the_old_signature(void **state)
{
	struct fx		*f = *state;
	unsigned char		*p = pattern(BIG, 2);
	struct sigcache		*sc = sigcache_new(SIGCACHE_MAX_BYTES);
	struct buf		 sig;
	struct sig_key		 key;
	struct stat		 st;
	int			 fd;

	buf_init(&sig);
	write_file(f->path, p, BIG);
	assert_int_equal(made_ahead(f->path, &sig, &key), 0);
	assert_int_equal(sigcache_put(sc, "big.list", &key, sig.data, sig.len), 0);
	fd = open(f->path, O_WRONLY);
	assert_int_equal(pwrite(fd, "!", 1, BIG / 2), 1);
	close(fd);
	stat_of(f->path, &st);
	assert_int_equal(st.st_size, BIG);
	assert_null(sigcache_get(sc, "big.list", &st));
	assert_int_equal(sigcache_count(sc), 0);	/* dropped for good */
	buf_free(&sig);
	sigcache_free(sc);
	free(p);
}

static void
test_a_file_replaced_by_rename_is_not_served(void **state)
{
	struct fx		*f = *state;
	unsigned char		*p = pattern(BIG, 3);
	struct sigcache		*sc = sigcache_new(SIGCACHE_MAX_BYTES);
	struct buf		 sig;
	struct sig_key		 key;
	struct stat		 st;
	char			 tmp[128];

	buf_init(&sig);
	write_file(f->path, p, BIG);
	assert_int_equal(made_ahead(f->path, &sig, &key), 0);
	assert_int_equal(sigcache_put(sc, "big.list", &key, sig.data, sig.len), 0);
	snprintf(tmp, sizeof(tmp), "%s/new", f->dir);
	write_file(tmp, p, BIG);		/* same bytes, another inode */
	assert_int_equal(rename(tmp, f->path), 0);
	stat_of(f->path, &st);
	assert_null(sigcache_get(sc, "big.list", &st));
	buf_free(&sig);
	sigcache_free(sc);
	free(p);
}

/* Written just now: a write in the same clock tick could keep its stat. */
static void
test_a_file_written_just_now_is_not_cached_without_waiting(void **state)
{
	struct fx	*f = *state;
	unsigned char	*p = pattern(BIG, 4);
	struct buf	 sig;
	struct sig_key	 key;
	struct stat	 st;
	struct timespec	 ts[2];
	char		 err[256];
	int		 fd;

	buf_init(&sig);
	write_file(f->path, p, BIG);
	stat_of(f->path, &st);
	assert_true(sigcache_settled_in_ns(&st, (int64_t)st.st_ctim.tv_sec *
	    1000000000LL + st.st_ctim.tv_nsec) > 0);
	assert_int_equal(sigcache_settled_in_ns(&st, (int64_t)st.st_ctim.tv_sec *
	    1000000000LL + st.st_ctim.tv_nsec + MF_RACY_NS + 1), 0);
	/* Changed "later" than now (a clock ahead): not settled, whatever the
	 * machine's load makes of the 100 ms window. */
	clock_gettime(CLOCK_REALTIME, &ts[1]);
	ts[1].tv_sec += 5;
	ts[0] = ts[1];
	assert_int_equal(utimensat(AT_FDCWD, f->path, ts, 0), 0);
	fd = open(f->path, O_RDONLY);
	assert_int_equal(sigcache_compute(fd, 0, &sig, &key, err, sizeof(err)), 1);
	assert_int_equal(sigcache_compute(fd, 100000000LL, &sig, &key, err,
	    sizeof(err)), 1);
	close(fd);
	buf_free(&sig);
	free(p);
}

/* A signature made ahead gives the same delta and patch as one made now. */
static void
test_the_cached_signature_patches_the_file_exactly(void **state)
{
	struct fx		*f = *state;
	unsigned char		*old = pattern(BIG, 5), *new = malloc(BIG), *back;
	struct buf		 sig, delta;
	struct sig_key		 key;
	struct delta_job	*j;
	struct rs_signature	*s;
	struct delta_stats	 ds;
	enum delta_status	 st;
	char			 err[256], npath[128], opath[128];
	int			 bfd, nfd, ofd;

	buf_init(&sig);
	buf_init(&delta);
	write_file(f->path, old, BIG);
	assert_int_equal(made_ahead(f->path, &sig, &key), 0);
	memcpy(new, old, BIG);
	new[BIG / 3] ^= 0x5a;
	snprintf(npath, sizeof(npath), "%s/new", f->dir);
	write_file(npath, new, BIG);

	j = delta_loadsig_begin(0);
	assert_int_equal(delta_job_step(j, sig.data, sig.len, 1, NULL, 0, err,
	    sizeof(err)), DELTA_DONE);
	s = delta_loadsig_take(j);
	delta_job_free(j);
	nfd = open(npath, O_RDONLY);
	j = delta_delta_begin(s, nfd);
	delta_job_no_digest(j);
	do
		st = delta_job_step(j, NULL, 0, 0, &delta, 0, err, sizeof(err));
	while (st == DELTA_MORE);
	assert_int_equal(st, DELTA_DONE);
	delta_job_stats(j, &ds);
	assert_true(ds.lit_bytes < 64 * 1024);		/* about one block */
	assert_int_equal(delta_job_digest(j, (unsigned char[32]){ 0 }), -1);
	delta_job_free(j);
	delta_sig_free(s);

	bfd = open(f->path, O_RDONLY);
	snprintf(opath, sizeof(opath), "%s/out", f->dir);
	ofd = open(opath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	j = delta_patch_begin(bfd, ofd, BIG);
	st = delta_job_step(j, delta.data, delta.len, 1, NULL, 0, err, sizeof(err));
	while (st == DELTA_MORE)
		st = delta_job_step(j, NULL, 0, 1, NULL, 0, err, sizeof(err));
	assert_int_equal(st, DELTA_DONE);
	delta_job_free(j);
	back = malloc(BIG);
	assert_int_equal(pread(ofd, back, BIG, 0), BIG);
	assert_memory_equal(back, new, BIG);
	close(ofd);
	close(bfd);
	close(nfd);
	free(back);
	free(old);
	free(new);
	buf_free(&sig);
	buf_free(&delta);
}

static void
test_the_cache_stays_under_its_bound(void **state)
{
	struct sigcache	*sc = sigcache_new(1000);
	struct sig_key	 key;
	char		 blob[400], name[16];

	memset(&key, 0, sizeof(key));
	memset(blob, 'x', sizeof(blob));
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		assert_int_equal(sigcache_put(sc, name, &key, blob, sizeof(blob)), 0);
		assert_true(sigcache_count(sc) <= 2);
	}
	assert_int_equal(sigcache_put(sc, "huge", &key, blob, 0), -1);
	sigcache_del(sc, "f9");
	sigcache_del(sc, "never there");
	sigcache_free(sc);
}

int
main(void)
{
#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_a_settled_file_is_served_while_its_stat_is_unchanged),
		T(test_an_in_place_rewrite_is_never_served_the_old_signature),
		T(test_a_file_replaced_by_rename_is_not_served),
		T(test_a_file_written_just_now_is_not_cached_without_waiting),
		T(test_the_cached_signature_patches_the_file_exactly),
		T(test_the_cache_stays_under_its_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
