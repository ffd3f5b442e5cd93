/* test_delta.c: librsync jobs stepped in chunks rebuild files exactly, and refuse bogus input. */
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
#include <openssl/evp.h>

#include "spoolsync.h"

#define MIB	(1024 * 1024)

static char	tdir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(tdir, sizeof(tdir), "/tmp/test_delta.XXXXXX");
	return mkdtemp(tdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	tu_rmtree(tdir);
	return 0;
}

static void
fill_random(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t	x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)(x >> 24);
	}
}

/* A file in the test directory holding P[0..N), opened read-only. */
static int
file_with(const char *name, const void *p, size_t n)
{
	char	path[128];
	int	fd;

	snprintf(path, sizeof(path), "%s/%s", tdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	return fd;
}

static int
out_file(const char *name)
{
	char	path[128];
	int	fd;

	snprintf(path, sizeof(path), "%s/%s", tdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	return fd;
}

static double
now_s(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Steps a job that reads a file until done; every step honours MAX_OUT. */
static void
drain(struct delta_job *j, size_t max_out, struct buf *out)
{
	enum delta_status	st;
	char			err[256];
	size_t			before;

	for (;;) {
		before = out->len;
		st = delta_job_step(j, NULL, 0, 0, out, max_out, err, sizeof(err));
		if (st == DELTA_ERROR)
			fail_msg("%s", err);
		assert_true(out->len - before <= (max_out ? max_out : DELTA_STEP_OUT));
		if (st == DELTA_DONE)
			return;
		assert_true(delta_job_busy(j));
	}
}

/* Feeds P[0..N) to a job that takes input, CHUNK bytes at a time. */
static enum delta_status
feed(struct delta_job *j, const void *p, size_t n, size_t chunk, size_t max_out,
    char *err, size_t errlen)
{
	enum delta_status	st;
	size_t			off = 0, k;
	long			spins = 0;

	do {
		k = n - off < chunk ? n - off : chunk;
		st = delta_job_step(j, (const char *)p + off, k, off + k == n, NULL,
		    max_out, err, errlen);
		off += k;
		if (off == n && st == DELTA_MORE && !delta_job_busy(j))
			fail_msg("job waits for input after its end");
		assert_true(++spins < 100000000);
	} while (st == DELTA_MORE);
	return st;
}

static size_t
sig_of(int basis_fd, off_t size, size_t block_len, size_t max_out, struct buf *sig)
{
	struct delta_job	*j;
	struct delta_stats	 ds;
	char			 err[256];

	j = delta_sig_begin(basis_fd, size, block_len, err, sizeof(err));
	assert_non_null(j);
	drain(j, max_out, sig);
	delta_job_stats(j, &ds);
	delta_job_free(j);
	return ds.block_len;
}

static struct rs_signature *
load_sig(const struct buf *sig, size_t chunk)
{
	struct delta_job	*j = delta_loadsig_begin(0);
	struct rs_signature	*s;
	char			 err[256];

	if (feed(j, sig->data, sig->len, chunk, 0, err, sizeof(err)) != DELTA_DONE)
		fail_msg("loadsig: %s", err);
	s = delta_loadsig_take(j);
	assert_non_null(s);
	delta_job_free(j);
	return s;
}

static void
sha256(const void *p, size_t n, unsigned char out[32])
{
	unsigned int	len;

	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

struct trip {
	size_t		block_len;	/* in: 0 for librsync's choice */
	size_t		used_block_len;
	uint64_t	sig_len, delta_len, lit_bytes, copy_bytes;
	double		sig_s, delta_s, patch_s;
};

/*
 * OLD -> NEW through signature, delta and patch, each fed CHUNK bytes per
 * step and producing at most MAX_OUT per step; the result must equal NEW.
 */
static void
round_trip(const unsigned char *old, size_t oldlen, const unsigned char *new,
    size_t newlen, size_t chunk, size_t max_out, struct trip *t)
{
	struct buf		 sig, delta;
	struct rs_signature	*s;
	struct delta_job	*j;
	struct delta_stats	 ds;
	unsigned char		 want[32], got[32], sent[32], *back;
	char			 err[256];
	int			 bfd, nfd, ofd;
	double			 t0;

	buf_init(&sig);
	buf_init(&delta);
	bfd = file_with("basis", old, oldlen);
	nfd = file_with("new", new, newlen);
	t0 = now_s();
	t->used_block_len = sig_of(bfd, (off_t)oldlen, t->block_len, max_out, &sig);
	t->sig_s = now_s() - t0;
	t->sig_len = sig.len;
	s = load_sig(&sig, chunk);
	t0 = now_s();
	j = delta_delta_begin(s, nfd);
	drain(j, max_out, &delta);
	t->delta_s = now_s() - t0;
	delta_job_stats(j, &ds);
	assert_int_equal(ds.in_bytes, newlen);
	assert_int_equal(ds.out_bytes, delta.len);
	assert_int_equal(ds.lit_bytes + ds.copy_bytes, newlen);
	assert_int_equal(delta_job_digest(j, sent), 0);
	t->lit_bytes = ds.lit_bytes;
	t->copy_bytes = ds.copy_bytes;
	t->delta_len = delta.len;
	delta_job_free(j);
	delta_sig_free(s);

	ofd = out_file("out");
	t0 = now_s();
	j = delta_patch_begin(bfd, ofd, newlen);
	if (feed(j, delta.data, delta.len, chunk, max_out < 4096 ? 4096 : max_out,
	    err, sizeof(err)) != DELTA_DONE)
		fail_msg("patch: %s", err);
	t->patch_s = now_s() - t0;
	assert_int_equal(delta_job_digest(j, got), 0);
	delta_job_free(j);
	sha256(new, newlen, want);
	assert_memory_equal(got, want, 32);
	assert_memory_equal(sent, want, 32);
	back = malloc(newlen + 1);
	assert_int_equal(pread(ofd, back, newlen + 1, 0), (ssize_t)newlen);
	assert_memory_equal(back, new, newlen);
	free(back);
	close(ofd);
	close(bfd);
	close(nfd);
	buf_free(&sig);
	buf_free(&delta);
}

static const size_t chunks[] = { 1, 3, 100, 4096, 65536, SIZE_MAX };

static void
test_small_files_round_trip_at_every_chunk_size(void **state)
{
	static const size_t	sizes[] = { 0, 1, 400 };
	unsigned char		old[400], new[400];
	struct trip		t = { 0 };

	(void)state;
	fill_random(old, sizeof(old), 1);
	for (size_t a = 0; a < 3; a++)
		for (size_t b = 0; b < 3; b++)
			for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
				fill_random(new, sizeof(new), 2 + c);
				memcpy(new, old, sizes[b] / 2);
				round_trip(old, sizes[a], new, sizes[b], chunks[c],
				    chunks[c] == SIZE_MAX ? 0 : chunks[c], &t);
			}
	/* The reason small files go whole: this delta is bigger than the file. */
	round_trip(old, 400, new, 400, SIZE_MAX, 0, &t);
	print_message("400-byte file, different content: delta %ju bytes\n",
	    (uintmax_t)t.delta_len);
	assert_true(t.delta_len > 400);
}

static void
test_one_mib_random_edits_round_trip_at_every_chunk_size(void **state)
{
	unsigned char	*old = malloc(MIB), *new = malloc(MIB + 100);
	struct trip	 t = { 0 };
	size_t		 newlen;

	(void)state;
	fill_random(old, MIB, 7);
	/* an insertion, a deletion and a few overwrites */
	memcpy(new, old, 1000);
	fill_random(new + 1000, 100, 8);
	memcpy(new + 1100, old + 1000, 500000);
	memcpy(new + 501100, old + 510000, MIB - 510000);
	newlen = 501100 + MIB - 510000;
	new[700000] ^= 0x55;
	new[newlen - 1] ^= 1;
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		round_trip(old, MIB, new, newlen, chunks[c],
		    chunks[c] == SIZE_MAX ? 0 : chunks[c], &t);
		assert_true(t.copy_bytes > newlen * 9 / 10);
	}
	free(old);
	free(new);
}

static void
test_fifty_mib_with_one_byte_changed_sends_a_small_delta(void **state)
{
	size_t		 n = 50 * MIB;
	unsigned char	*old = malloc(n), *new = malloc(n);
	struct trip	 t = { 0 };
	uint64_t	 wire_default;

	(void)state;
	fill_random(old, n, 11);
	memcpy(new, old, n);
	new[n / 2 + 12345] ^= 0xff;
	round_trip(old, n, new, n, 65536, 0, &t);
	print_message("50 MiB, 1 byte changed, librsync's block of %zu: signature "
	    "%ju + delta %ju bytes (%ju literal, %ju matched); signature %.0f MB/s, "
	    "delta %.0f MB/s, patch %.0f MB/s\n", t.used_block_len,
	    (uintmax_t)t.sig_len, (uintmax_t)t.delta_len, (uintmax_t)t.lit_bytes,
	    (uintmax_t)t.copy_bytes, n / 1e6 / t.sig_s, n / 1e6 / t.delta_s,
	    n / 1e6 / t.patch_s);
	assert_true(t.lit_bytes <= 16384);
	assert_true(t.delta_len <= 20000);
	wire_default = t.sig_len + t.delta_len;
	t.block_len = delta_block_len_for_wire((off_t)n);
	round_trip(old, n, new, n, 65536, 0, &t);
	print_message("50 MiB, 1 byte changed, block of %zu: signature %ju + "
	    "delta %ju bytes; signature %.0f MB/s, delta %.0f MB/s\n", t.used_block_len,
	    (uintmax_t)t.sig_len, (uintmax_t)t.delta_len, n / 1e6 / t.sig_s,
	    n / 1e6 / t.delta_s);
	assert_true(t.sig_len + t.delta_len < wire_default);
	t.block_len = 0;
	/* the same through 1-byte input steps and 1-byte output steps */
	round_trip(old, n, new, n, 1, 1, &t);
	assert_true(t.lit_bytes <= 16384);
	free(old);
	free(new);
}

static enum delta_status
patch_bytes(const void *delta, size_t len, int basis_fd, uint64_t max_size,
    char *err, size_t errlen)
{
	struct delta_job	*j;
	enum delta_status	 st;
	int			 ofd = out_file("bogus.out");

	j = delta_patch_begin(basis_fd, ofd, max_size);
	st = feed(j, delta, len, 7, 0, err, errlen);
	delta_job_free(j);
	close(ofd);
	return st;
}

static void
expect_patch_error(const void *delta, size_t len, int basis_fd, uint64_t max,
    const char *why)
{
	char	err[256] = "";

	assert_int_equal(patch_bytes(delta, len, basis_fd, max, err, sizeof(err)),
	    DELTA_ERROR);
	if (strstr(err, why) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, why);
}

static void
test_corrupt_deltas_are_refused_and_the_basis_untouched(void **state)
{
	/* magic, then commands: 0x45 = COPY(pos: 1 byte, len: 1 byte) */
	static const unsigned char badmagic[] = { 0x72, 0x73, 0x02, 0x37, 0 };
	static const unsigned char past_end[] = { 0x72, 0x73, 0x02, 0x36,
	    0x45, 200, 10, 0 };
	static const unsigned char overlong[] = { 0x72, 0x73, 0x02, 0x36,
	    0x45, 0, 255, 0 };
	static const unsigned char badcmd[] = { 0x72, 0x73, 0x02, 0x36, 0xfe, 0 };
	static const unsigned char trailing[] = { 0x72, 0x73, 0x02, 0x36,
	    0x03, 'a', 'b', 'c', 0, 'x', 'y' };
	static const unsigned char truncated[] = { 0x72, 0x73, 0x02, 0x36,
	    0x10, 'a', 'b' };
	/* 8 bytes of basis copied 2^40 times over: a "zip bomb" */
	unsigned char	 bomb[4 + 17 * 64 + 1], *p;
	unsigned char	 basis[10] = "0123456789", check[16];
	int		 bfd = file_with("basis", basis, sizeof(basis));

	(void)state;
	expect_patch_error(badmagic, sizeof(badmagic), bfd, 1000, "magic");
	expect_patch_error(past_end, sizeof(past_end), bfd, 1000, "past the end");
	expect_patch_error(overlong, sizeof(overlong), bfd, 1000, "past the end");
	expect_patch_error(past_end, sizeof(past_end), -1, 1000, "past the end");
	expect_patch_error(badcmd, sizeof(badcmd), bfd, 1000, "patch:");
	expect_patch_error(trailing, sizeof(trailing), bfd, 1000, "garbage");
	expect_patch_error(truncated, sizeof(truncated), bfd, 1000, "patch:");
	p = bomb;
	memcpy(p, "\x72\x73\x02\x36", 4);
	p += 4;
	for (int i = 0; i < 64; i++) {
		*p++ = 0x54;	/* COPY(pos: 8 bytes, len: 8 bytes) */
		memset(p, 0, 16);
		p[15] = 8;
		p += 16;
	}
	*p++ = 0;
	expect_patch_error(bomb, (size_t)(p - bomb), bfd, 100, "exceed 100 bytes");
	assert_int_equal(pread(bfd, check, sizeof(check), 0), 10);
	assert_memory_equal(check, basis, 10);
	close(bfd);
}

static void
expect_loadsig_error(const void *sig, size_t len, size_t max, const char *why)
{
	struct delta_job	*j = delta_loadsig_begin(max);
	char			 err[256] = "";

	for (size_t chunk = 1; chunk <= len; chunk = chunk * 5 + 1) {
		delta_job_free(j);
		j = delta_loadsig_begin(max);
		assert_int_equal(feed(j, sig, len, chunk, 0, err, sizeof(err)),
		    DELTA_ERROR);
		if (strstr(err, why) == NULL)
			fail_msg("error \"%s\" does not say \"%s\"", err, why);
		assert_null(delta_loadsig_take(j));
	}
	delta_job_free(j);
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void
test_corrupt_signatures_are_refused(void **state)
{
	unsigned char	 s[12 + 36 * 3];
	unsigned char	 data[5000];
	struct buf	 good;
	int		 fd;

	(void)state;
	fill_random(s, sizeof(s), 3);
	put32(s, 0x72730147);			/* RS_RK_BLAKE2_SIG_MAGIC */
	put32(s + 4, 2048);
	put32(s + 8, 32);
	put32(s, 0x72730136);			/* MD4: refused */
	expect_loadsig_error(s, sizeof(s), 0, "magic");
	put32(s, 0x72730147);
	put32(s + 8, 8);			/* a short strong sum */
	expect_loadsig_error(s, sizeof(s), 0, "strong sum");
	put32(s + 8, 32);
	put32(s + 4, 0);
	expect_loadsig_error(s, sizeof(s), 0, "block length");
	put32(s + 4, 0x7fffffff);
	expect_loadsig_error(s, sizeof(s), 0, "block length");
	put32(s + 4, 2048);
	expect_loadsig_error(s, sizeof(s) - 5, 0, "loading signature");	/* cut */
	expect_loadsig_error(s, 7, 0, "loading signature");
	expect_loadsig_error(s, sizeof(s), 50, "larger than 50");

	/* A real signature with one byte cut off its end. */
	buf_init(&good);
	fill_random(data, sizeof(data), 4);
	fd = file_with("basis", data, sizeof(data));
	sig_of(fd, sizeof(data), 0, 0, &good);
	expect_loadsig_error(good.data, good.len - 1, 0, "loading signature");
	buf_free(&good);
	close(fd);
}

static void
test_patch_output_is_bounded_per_step(void **state)
{
	size_t			 n = 4 * MIB;
	unsigned char		*old = malloc(n);
	struct buf		 sig, delta;
	struct rs_signature	*s;
	struct delta_job	*j;
	enum delta_status	 st;
	struct stat		 sb;
	char			 err[256];
	int			 bfd, ofd, steps = 0;
	off_t			 last = 0;

	(void)state;
	buf_init(&sig);
	buf_init(&delta);
	fill_random(old, n, 5);
	bfd = file_with("basis", old, n);
	sig_of(bfd, (off_t)n, 0, 0, &sig);
	s = load_sig(&sig, SIZE_MAX);
	j = delta_delta_begin(s, bfd);		/* identical: all copies */
	drain(j, 0, &delta);
	delta_job_free(j);
	ofd = out_file("out");
	j = delta_patch_begin(bfd, ofd, n);
	/* All the delta at once; output must still come 64 KiB per step. */
	st = delta_job_step(j, delta.data, delta.len, 1, NULL, 65536, err,
	    sizeof(err));
	while (st == DELTA_MORE) {
		assert_true(delta_job_busy(j));
		assert_int_equal(fstat(ofd, &sb), 0);
		assert_true(sb.st_size - last <= 65536);
		last = sb.st_size;
		steps++;
		st = delta_job_step(j, NULL, 0, 1, NULL, 65536, err, sizeof(err));
	}
	assert_int_equal(st, DELTA_DONE);
	assert_true(steps >= 63);
	assert_int_equal(fstat(ofd, &sb), 0);
	assert_int_equal(sb.st_size, (off_t)n);
	delta_job_free(j);
	delta_sig_free(s);
	close(ofd);
	close(bfd);
	buf_free(&sig);
	buf_free(&delta);
	free(old);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_small_files_round_trip_at_every_chunk_size, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_one_mib_random_edits_round_trip_at_every_chunk_size, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_fifty_mib_with_one_byte_changed_sends_a_small_delta, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_corrupt_deltas_are_refused_and_the_basis_untouched, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_signatures_are_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_patch_output_is_bounded_per_step,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
