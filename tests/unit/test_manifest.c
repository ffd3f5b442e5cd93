/* test_manifest.c: manifests see every change (never trusting whole seconds), diff exactly, and decode strictly. */
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

struct fx {
	char	dir[64];
	char	here[96], there[96];
	int	herefd, therefd;
};

static int
setup(void **state)
{
	struct fx	*f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_manifest.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->here, sizeof(f->here), "%s/here", f->dir);
	snprintf(f->there, sizeof(f->there), "%s/there", f->dir);
	mkdir(f->here, 0755);
	mkdir(f->there, 0755);
	f->herefd = open(f->here, O_RDONLY | O_DIRECTORY);
	f->therefd = open(f->there, O_RDONLY | O_DIRECTORY);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;

	close(f->herefd);
	close(f->therefd);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

#define SOME_MTIME	1700000000123456789LL

/* ROOT/REL holds S with MODE, owned by root, at a fixed nanosecond mtime. */
static void
put(int rootfd, const char *rel, const char *s, mode_t mode)
{
	struct timespec	ts[2] = { { 0, UTIME_OMIT },
	    { SOME_MTIME / 1000000000, SOME_MTIME % 1000000000 } };
	int		fd;

	fd = openat(rootfd, rel, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
}

static void
dir(int rootfd, const char *rel, mode_t mode)
{
	assert_int_equal(mkdirat(rootfd, rel, mode), 0);
	assert_int_equal(fchmodat(rootfd, rel, mode, 0), 0);
}

static struct manifest *
build(int rootfd, const struct exclude *ex, const struct manifest *prev, int full)
{
	struct manifest	*mf;
	char		 err[256];

	if (manifest_build(rootfd, ex, prev, full, &mf, err, sizeof(err)) == -1)
		fail_msg("manifest_build: %s", err);
	return mf;
}

static void
sha256s(const char *s, unsigned char out[32])
{
	unsigned int	len;

	EVP_Digest(s, strlen(s), out, &len, EVP_sha256(), NULL);
}

static void
settle(void)
{
	/* past MF_RACY_NS, so that the files are not "racy" any more */
	struct timespec	ts = { 0, MF_RACY_NS + 20 * 1000000 };

	nanosleep(&ts, NULL);
}

static void
test_tree_lists_files_dirs_and_links_with_their_metadata(void **state)
{
	struct fx		*f = *state;
	static const char *const order[] = {
		"a", "a/b", "a.c", "d", "d/f1", "d/sub", "d/sub/f2", "link",
	};
	struct exclude		*ex = exclude_new();
	struct manifest		*mf;
	const struct mf_entry	*e;
	unsigned char		 h[32];
	struct stat		 st;
	char			 err[128];

	dir(f->herefd, "d", 0750);
	put(f->herefd, "d/f1", "hello", 0640);
	dir(f->herefd, "d/sub", 0700);
	put(f->herefd, "d/sub/f2", "x", 04755);
	assert_int_equal(fchownat(f->herefd, "d/sub/f2", 1234, 5678, 0), 0);
	assert_int_equal(fchmodat(f->herefd, "d/sub/f2", 04755, 0), 0);
	assert_int_equal(symlinkat("d/f1", f->herefd, "link"), 0);
	dir(f->herefd, "a", 0755);
	put(f->herefd, "a/b", "", 0644);
	put(f->herefd, "a.c", "", 0644);
	put(f->herefd, "scratch.dat~", "skip me", 0644);
	put(f->herefd, ".spoolsync.tmp123", "skip me too", 0600);
	assert_int_equal(mkfifoat(f->herefd, "fifo", 0600), 0);
	assert_int_equal(exclude_add(ex, "*~", err, sizeof(err)), 0);

	mf = build(f->herefd, ex, NULL, 0);
	assert_int_equal(mf->n, 8);
	for (size_t i = 0; i < mf->n; i++)
		assert_string_equal(mf->e[i].path, order[i]);
	assert_int_equal(mf->skipped, 1);		/* the fifo */
	e = manifest_find(mf, "d/f1");
	assert_non_null(e);
	assert_int_equal(e->type, MF_FILE);
	assert_int_equal(e->size, 5);
	assert_int_equal(e->mode, 0640);
	assert_int_equal(e->mtime_ns, SOME_MTIME);
	sha256s("hello", h);
	assert_memory_equal(e->hash, h, 32);
	e = manifest_find(mf, "d/sub/f2");
	assert_int_equal(e->mode, 04755);
	assert_int_equal(e->uid, 1234);
	assert_int_equal(e->gid, 5678);
	e = manifest_find(mf, "d");
	assert_int_equal(e->type, MF_DIR);
	assert_int_equal(e->mode, 0750);
	assert_int_equal(e->end, 7);		/* d/f1, d/sub, d/sub/f2 follow it */
	e = manifest_find(mf, "link");
	assert_int_equal(e->type, MF_LINK);
	assert_string_equal(e->link, "d/f1");
	assert_int_equal(e->size, 4);
	assert_int_equal(fstatat(f->herefd, "link", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(e->mtime_ns, st.st_mtim.tv_sec * 1000000000LL +
	    st.st_mtim.tv_nsec);
	assert_null(manifest_find(mf, "scratch.dat~"));
	manifest_free(mf);
	exclude_free(ex);
}

static void
test_symlinked_directory_is_recorded_never_followed(void **state)
{
	struct fx	*f = *state;
	struct manifest	*mf;

	put(f->therefd, "secret", "outside the root", 0600);
	assert_int_equal(symlinkat(f->there, f->herefd, "escape"), 0);
	mf = build(f->herefd, NULL, NULL, 0);
	assert_int_equal(mf->n, 1);
	assert_int_equal(mf->e[0].type, MF_LINK);
	assert_string_equal(mf->e[0].link, f->there);
	manifest_free(mf);
}

static void
test_same_second_same_size_rewrite_is_detected(void **state)
{
	struct fx		*f = *state;
	struct manifest		*a, *b;
	const struct mf_entry	*ea, *eb;
	struct mf_diffs		 ds;
	struct stat		 st;
	int			 fd;

	/* no pause at all: write, list, rewrite the same size, list again */
	fd = openat(f->herefd, "alice.dat", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, "AAAA", 4), 4);
	close(fd);
	a = build(f->herefd, NULL, NULL, 0);
	fd = openat(f->herefd, "alice.dat", O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "BBBB", 4), 4);
	close(fd);
	b = build(f->herefd, NULL, a, 0);
	ea = manifest_find(a, "alice.dat");
	eb = manifest_find(b, "alice.dat");
	assert_int_equal(ea->size, eb->size);
	assert_int_equal(ea->mtime_ns / 1000000000, eb->mtime_ns / 1000000000);
	assert_memory_not_equal(ea->hash, eb->hash, 32);
	manifest_diff(b, a, 0, &ds);
	assert_int_equal(ds.n, 1);
	assert_int_equal(ds.d[0].kind, MF_CONTENT_DIFFERS);
	assert_true(ds.d[0].what & MF_D_HASH);
	manifest_diffs_free(&ds);
	manifest_free(a);
	manifest_free(b);

	/* worse: settled (so the cache is trusted), rewritten, old mtime put back */
	put(f->herefd, "bob.dat", "1111", 0600);
	settle();
	a = build(f->herefd, NULL, NULL, 0);
	ea = manifest_find(a, "bob.dat");
	assert_int_equal(ea->flags & MF_F_RACY, 0);
	put(f->herefd, "bob.dat", "2222", 0600);	/* put() restores the mtime */
	assert_int_equal(fstatat(f->herefd, "bob.dat", &st, 0), 0);
	assert_int_equal(st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
	    ea->mtime_ns);
	b = build(f->herefd, NULL, a, 0);
	eb = manifest_find(b, "bob.dat");
	assert_int_equal(ea->size, eb->size);
	assert_int_equal(ea->mtime_ns, eb->mtime_ns);
	assert_memory_not_equal(ea->hash, eb->hash, 32);
	manifest_free(a);
	manifest_free(b);
}

static void
test_unchanged_files_reuse_their_hash_unless_full(void **state)
{
	struct fx	*f = *state;
	struct manifest	*a, *b, *c;

	put(f->herefd, "one", "1", 0644);
	put(f->herefd, "two", "22", 0644);
	settle();
	a = build(f->herefd, NULL, NULL, 0);
	assert_int_equal(a->reused, 0);
	assert_int_equal(a->hashed_bytes, 3);
	b = build(f->herefd, NULL, a, 0);
	assert_int_equal(b->reused, 2);
	assert_int_equal(b->hashed_bytes, 0);
	assert_memory_equal(a->digest, b->digest, 32);
	c = build(f->herefd, NULL, b, 1);
	assert_int_equal(c->reused, 0);
	assert_int_equal(c->hashed_bytes, 3);
	manifest_free(a);
	manifest_free(b);
	manifest_free(c);
}

static void
test_racy_files_are_always_rehashed(void **state)
{
	struct fx	*f = *state;
	struct manifest	*a, *b;

	put(f->herefd, "fresh", "just written", 0644);
	a = build(f->herefd, NULL, NULL, 0);
	assert_true(a->e[0].flags & MF_F_RACY);
	b = build(f->herefd, NULL, a, 0);
	assert_int_equal(b->reused, 0);
	manifest_free(a);
	manifest_free(b);
}

static const struct mf_diff *
find_diff(const struct mf_diffs *ds, const char *path)
{
	for (size_t i = 0; i < ds->n; i++) {
		const struct mf_entry *e = ds->d[i].here ? ds->d[i].here : ds->d[i].there;

		if (strcmp(e->path, path) == 0)
			return &ds->d[i];
	}
	return NULL;
}

static void
expect(const struct mf_diffs *ds, const char *path, enum mf_diff_kind kind,
    unsigned what)
{
	const struct mf_diff	*d = find_diff(ds, path);
	char			 w[64];

	if (d == NULL)
		fail_msg("%s: no difference reported", path);
	if (d->kind != kind || d->what != what)
		fail_msg("%s: %s (%s), expected %s (%#x)", path,
		    manifest_diff_kind_name(d->kind),
		    manifest_diff_what(d->what, w, sizeof(w)),
		    manifest_diff_kind_name(kind), what);
}

static void
both(struct fx *f, const char *rel, const char *s, mode_t mode)
{
	put(f->herefd, rel, s, mode);
	put(f->therefd, rel, s, mode);
}

static void
test_diff_reports_every_category(void **state)
{
	struct fx	*f = *state;
	struct manifest	*h, *t;
	struct mf_diffs	 ds;
	struct timespec	 ts[2] = { { 0, UTIME_OMIT }, { 5, 1 } };

	both(f, "same", "same", 0644);
	put(f->herefd, "only-here", "h", 0644);
	put(f->therefd, "only-there", "t", 0644);
	put(f->herefd, "content", "AAAA", 0644);
	put(f->therefd, "content", "BBBB", 0644);
	put(f->herefd, "size", "A", 0644);
	put(f->therefd, "size", "AA", 0644);
	put(f->herefd, "mode", "m", 0644);
	put(f->therefd, "mode", "m", 0600);
	both(f, "mtime", "t", 0644);
	assert_int_equal(utimensat(f->therefd, "mtime", ts, 0), 0);
	both(f, "owner", "o", 0644);
	assert_int_equal(fchownat(f->therefd, "owner", 42, 0, 0), 0);
	put(f->herefd, "kind", "a file here", 0644);
	dir(f->therefd, "kind", 0755);
	put(f->therefd, "kind/inside", "x", 0644);
	dir(f->therefd, "newdir", 0755);
	put(f->therefd, "newdir/x", "x", 0644);

	h = build(f->herefd, NULL, NULL, 0);
	t = build(f->therefd, NULL, NULL, 0);
	manifest_diff(h, t, 0, &ds);
	expect(&ds, "only-here", MF_MISSING_THERE, 0);
	expect(&ds, "only-there", MF_MISSING_HERE, 0);
	expect(&ds, "content", MF_CONTENT_DIFFERS, MF_D_HASH);
	expect(&ds, "size", MF_CONTENT_DIFFERS, MF_D_SIZE | MF_D_HASH);
	expect(&ds, "mode", MF_METADATA_DIFFERS, MF_D_MODE);
	expect(&ds, "mtime", MF_METADATA_DIFFERS, MF_D_MTIME);
	expect(&ds, "owner", MF_METADATA_DIFFERS, MF_D_UID);
	expect(&ds, "kind", MF_CONTENT_DIFFERS, MF_D_TYPE);
	expect(&ds, "kind/inside", MF_MISSING_HERE, 0);
	expect(&ds, "newdir", MF_MISSING_HERE, 0);
	expect(&ds, "newdir/x", MF_MISSING_HERE, 0);
	assert_null(find_diff(&ds, "same"));
	assert_int_equal(ds.n, 11);
	manifest_diffs_free(&ds);
	/* an unprivileged replica can ask to ignore owners */
	manifest_diff(h, t, MF_CMP_NO_OWNER, &ds);
	assert_null(find_diff(&ds, "owner"));
	assert_int_equal(ds.n, 10);
	manifest_diffs_free(&ds);
	manifest_free(h);
	manifest_free(t);
}

static void
test_an_unchanged_subtree_costs_one_compare(void **state)
{
	struct fx	*f = *state;
	struct manifest	*h, *t;
	struct mf_diffs	 ds;
	char		 name[64];

	dir(f->herefd, "big", 0755);
	dir(f->therefd, "big", 0755);
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "big/user%03d.dat", i);
		both(f, name, name, 0640);
	}
	put(f->herefd, "changed", "1", 0644);
	put(f->therefd, "changed", "2", 0644);
	h = build(f->herefd, NULL, NULL, 0);
	t = build(f->therefd, NULL, NULL, 0);
	manifest_diff(h, t, 0, &ds);
	assert_int_equal(ds.n, 1);
	assert_int_equal(ds.compared, 2);	/* "big" and "changed" */
	assert_int_equal(ds.skipped, 1);
	manifest_diffs_free(&ds);
	/* and a whole equal tree is one compare of the root digests */
	put(f->therefd, "changed", "1", 0644);
	manifest_free(t);
	t = build(f->therefd, NULL, NULL, 0);
	manifest_diff(h, t, 0, &ds);
	assert_int_equal(ds.n, 0);
	assert_int_equal(ds.compared, 0);
	manifest_diffs_free(&ds);
	manifest_free(h);
	manifest_free(t);
}

static struct manifest *
sample(struct fx *f)
{
	dir(f->herefd, "host", 0750);
	dir(f->herefd, "host/accounts", 0750);
	put(f->herefd, "host/accounts/alice.dat", "return {...}", 0640);
	put(f->herefd, "host/accounts/bob.dat", "return {}", 0640);
	dir(f->herefd, "host/offline", 0750);
	put(f->herefd, "host/offline/bob.list", "item({});\n", 0640);
	assert_int_equal(symlinkat("accounts", f->herefd, "host/acc"), 0);
	return build(f->herefd, NULL, NULL, 0);
}

static void
test_encoding_round_trips_exactly(void **state)
{
	struct fx	*f = *state;
	struct manifest	*mf = sample(f), *back;
	struct mf_diffs	 ds;
	struct buf	 b;
	char		 err[256];

	buf_init(&b);
	manifest_encode(mf, &b);
	back = manifest_decode(b.data, b.len, err, sizeof(err));
	if (back == NULL)
		fail_msg("%s", err);
	assert_int_equal(back->n, mf->n);
	for (size_t i = 0; i < mf->n; i++) {
		assert_string_equal(back->e[i].path, mf->e[i].path);
		assert_int_equal(back->e[i].type, mf->e[i].type);
		assert_int_equal(back->e[i].mode, mf->e[i].mode);
		assert_int_equal(back->e[i].size, mf->e[i].size);
		assert_int_equal(back->e[i].mtime_ns, mf->e[i].mtime_ns);
		assert_int_equal(back->e[i].end, mf->e[i].end);
		assert_memory_equal(back->e[i].hash, mf->e[i].hash, 32);
	}
	assert_string_equal(manifest_find(back, "host/acc")->link, "accounts");
	assert_memory_equal(back->digest, mf->digest, 32);
	manifest_diff(mf, back, 0, &ds);
	assert_int_equal(ds.n, 0);
	manifest_diffs_free(&ds);
	manifest_free(back);
	manifest_free(mf);
	buf_free(&b);
}

static void
test_truncated_encodings_are_refused(void **state)
{
	struct fx	*f = *state;
	struct manifest	*mf = sample(f), *back;
	struct buf	 b;
	char		 err[256];

	buf_init(&b);
	manifest_encode(mf, &b);
	for (size_t len = 0; len < b.len; len++) {
		err[0] = '\0';
		back = manifest_decode(b.data, len, err, sizeof(err));
		if (back != NULL)
			fail_msg("a manifest cut at %zu of %zu bytes was accepted",
			    len, b.len);
		assert_true(err[0] != '\0');
	}
	manifest_free(mf);
	buf_free(&b);
}

/* Decodes B with its bytes at OLD replaced by NEW (same length). */
static void
expect_refused(const struct buf *b, const char *old, const char *new, size_t n,
    const char *why)
{
	char		*copy = malloc(b->len), *at, err[320] = "";
	struct manifest	*mf;

	memcpy(copy, b->data, b->len);
	at = memmem(copy, b->len, old, n);
	assert_non_null(at);
	memcpy(at, new, n);
	mf = manifest_decode(copy, b->len, err, sizeof(err));
	if (mf != NULL)
		fail_msg("accepted with \"%.*s\" in it", (int)n, new);
	if (strstr(err, why) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", err, why);
	free(copy);
}

static void
test_hostile_encodings_are_refused(void **state)
{
	struct fx	*f = *state;
	struct manifest	*mf = sample(f);
	struct buf	 b, more;
	char		 err[256];

	buf_init(&b);
	manifest_encode(mf, &b);
	/* "host/accounts/alice.dat" has 23 bytes: keep the length, change the path */
	expect_refused(&b, "host/accounts/alice.dat", "host/../../../etc/passw", 23,
	    "\"..\"");
	expect_refused(&b, "host/accounts/alice.dat", "/etc/shadow/xxxxxxxxxxx", 23,
	    "absolute");
	expect_refused(&b, "host/accounts/alice.dat", "host/accounts//lice.dat", 23,
	    "empty component");
	expect_refused(&b, "host/accounts/alice.dat", "host/accounts/al\0ce.dat", 23,
	    "NUL");
	expect_refused(&b, "host/accounts/alice.dat", "host/accounts/bob.dat\0\0", 23,
	    "NUL");
	expect_refused(&b, "host/accounts/alice.dat", "host/accounts/zzzzz.dat", 23,
	    "out of order");
	expect_refused(&b, "host/accounts/alice.dat", "host/accounts/alice/dat", 23,
	    "not listed");
	expect_refused(&b, "SSMF\x01", "SSMF\x02", 5, "version");
	/* a count that the bytes cannot hold */
	expect_refused(&b, "SSMF\x01\0\0\0\0\0\0", "SSMF\x01\0\0\0\xff\xff\xff", 11,
	    "cannot fit");
	/* one flipped bit in a directory's digest */
	{
		char	*copy = malloc(b.len), *at;

		memcpy(copy, b.data, b.len);
		at = memmem(copy, b.len, "host/offline", 12);
		at[12 + 1 + 1 + 4 + 4 + 4 + 8 + 8] ^= 1;
		assert_null(manifest_decode(copy, b.len, err, sizeof(err)));
		assert_non_null(strstr(err, "digest"));
		free(copy);
	}
	/* a trailing byte */
	buf_init(&more);
	buf_add(&more, b.data, b.len);
	buf_addc(&more, 0);
	assert_null(manifest_decode(more.data, more.len, err, sizeof(err)));
	assert_non_null(strstr(err, "after the last entry"));
	buf_free(&more);
	/* a link target hidden on a regular file */
	{
		char	*copy = malloc(b.len), *at;

		memcpy(copy, b.data, b.len);
		at = memmem(copy, b.len, "host/accounts/alice.dat", 23);
		at[23] = MF_LINK;	/* a "link" with no target */
		assert_null(manifest_decode(copy, b.len, err, sizeof(err)));
		assert_non_null(strstr(err, "link"));
		free(copy);
	}
	manifest_free(mf);
	buf_free(&b);
}

static void
test_stat_rehashes_one_path(void **state)
{
	struct fx	*f = *state;
	struct mf_entry	 e;
	unsigned char	 h[32];
	char		 err[256];

	put(f->herefd, "one", "content", 0600);
	assert_int_equal(manifest_stat(f->herefd, "one", &e, err, sizeof(err)), 0);
	sha256s("content", h);
	assert_memory_equal(e.hash, h, 32);
	assert_string_equal(e.path, "one");
	manifest_entry_clear(&e);
	assert_int_equal(manifest_stat(f->herefd, "gone", &e, err, sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(manifest_stat(f->herefd, "../here/one", &e, err,
	    sizeof(err)), -1);
}

/* A rescan's quick build reads no new file, but still sees a changed one. */
static void
test_quick_build_stats_new_files_and_hashes_changed_ones(void **state)
{
	struct fx		*f = *state;
	struct manifest		*prev, *mf;
	const struct mf_entry	*e;
	unsigned char		 h[32];
	char			 err[128];

	put(f->herefd, "known", "old", 0644);
	put(f->herefd, "edited", "abc", 0644);
	settle();
	prev = build(f->herefd, NULL, NULL, 0);
	put(f->herefd, "edited", "xyz", 0644);	/* same size, same mtime */
	put(f->herefd, "new", "fresh", 0640);
	if (manifest_build_quick(f->herefd, NULL, prev, &mf, err,
	    sizeof(err)) == -1)
		fail_msg("manifest_build_quick: %s", err);
	assert_int_equal(mf->n, 3);
	e = manifest_find(mf, "new");
	assert_non_null(e);
	assert_int_equal(e->type, MF_FILE);
	assert_true(e->flags & MF_F_NOHASH);
	assert_int_equal(e->size, 5);
	assert_int_equal(e->mode, 0640);
	e = manifest_find(mf, "known");
	assert_false(e->flags & MF_F_NOHASH);
	sha256s("old", h);
	assert_memory_equal(e->hash, h, 32);
	e = manifest_find(mf, "edited");	/* its ctime moved: hashed again */
	assert_false(e->flags & MF_F_NOHASH);
	sha256s("xyz", h);
	assert_memory_equal(e->hash, h, 32);
	assert_int_equal(mf->hashed_bytes, 3);
	manifest_free(mf);
	manifest_free(prev);
}

/* A quick listing serves as the next build's cache: its unread files are read. */
static void
test_quick_listing_lends_no_hash_it_never_read(void **state)
{
	struct fx		*f = *state;
	struct manifest		*quick, *mf;
	const struct mf_entry	*e;
	unsigned char		 h[32];
	char			 err[128];

	put(f->herefd, "new", "fresh", 0644);
	settle();
	if (manifest_build_quick(f->herefd, NULL, NULL, &quick, err,
	    sizeof(err)) == -1)
		fail_msg("manifest_build_quick: %s", err);
	assert_true(manifest_find(quick, "new")->flags & MF_F_NOHASH);
	mf = build(f->herefd, NULL, quick, 0);
	e = manifest_find(mf, "new");
	assert_non_null(e);
	assert_false(e->flags & MF_F_NOHASH);
	sha256s("fresh", h);
	assert_memory_equal(e->hash, h, 32);
	assert_int_equal(mf->reused, 0);
	assert_int_equal(mf->hashed_bytes, 5);
	manifest_free(mf);
	manifest_free(quick);
}

/* A file a quick listing did not read never passes for the peer's copy. */
static void
test_diff_counts_an_unread_file_as_different_content(void **state)
{
	struct fx		*f = *state;
	struct manifest		*here, *there;
	struct mf_diffs		 ds;
	char			 err[128];

	put(f->herefd, "same", "bytes", 0644);
	put(f->therefd, "same", "bytes", 0644);
	if (manifest_build_quick(f->herefd, NULL, NULL, &here, err,
	    sizeof(err)) == -1)
		fail_msg("manifest_build_quick: %s", err);
	there = build(f->therefd, NULL, NULL, 0);
	/* The unread file's all-zero hash is no proof either. */
	memset(there->e[0].hash, 0, MF_HASH_LEN);
	manifest_diff(here, there, MF_CMP_NO_OWNER, &ds);
	assert_int_equal(ds.n, 1);
	assert_int_equal(ds.d[0].kind, MF_CONTENT_DIFFERS);
	assert_int_equal(ds.d[0].what, MF_D_HASH);
	manifest_diffs_free(&ds);
	manifest_free(there);
	manifest_free(here);
}

/* What a streamed build handed over, and what the test did to the tree meanwhile. */
struct stream {
	struct manifest	 all;		/* the slices, concatenated */
	size_t		 slices, first_n;
	int		 rootfd;
	const char	*create, *remove_dir;	/* done at the first slice */
	int		 removed_files;
};

static void
stream_slice(struct manifest *part, void *arg)
{
	struct stream	*st = arg;
	char		 p[64];

	assert_true(part->n > 0);
	if (st->slices++ == 0) {
		st->first_n = part->n;
		if (st->create != NULL)
			put(st->rootfd, st->create, "late", 0644);
		for (int i = 0; st->remove_dir != NULL && i < 100; i++) {
			snprintf(p, sizeof(p), "%s/f%03d", st->remove_dir, i);
			if (unlinkat(st->rootfd, p, 0) == 0)
				st->removed_files++;
		}
		if (st->remove_dir != NULL)
			assert_int_equal(unlinkat(st->rootfd, st->remove_dir,
			    AT_REMOVEDIR), 0);
	}
	st->all.e = realloc(st->all.e, (st->all.n + part->n) * sizeof(*part->e));
	memcpy(st->all.e + st->all.n, part->e, part->n * sizeof(*part->e));
	st->all.n += part->n;
	st->all.cap = st->all.n;
	free(part->e);		/* the strings now belong to ALL */
	free(part);
}

/* NDIRS directories d0.. of NFILES files each. */
static void
stream_tree(int rootfd, int ndirs, int nfiles)
{
	char	p[64];

	for (int d = 0; d < ndirs; d++) {
		snprintf(p, sizeof(p), "d%d", d);
		dir(rootfd, p, 0755);
		for (int i = 0; i < nfiles; i++) {
			snprintf(p, sizeof(p), "d%d/f%03d", d, i);
			put(rootfd, p, "x", 0644);
		}
	}
}

static void
assert_same_entries(const struct manifest *a, const struct manifest *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_string_equal(a->e[i].path, b->e[i].path);
		assert_int_equal(a->e[i].type, b->e[i].type);
		assert_int_equal(a->e[i].flags, b->e[i].flags);
		assert_int_equal(a->e[i].mode, b->e[i].mode);
		assert_int_equal(a->e[i].size, b->e[i].size);
		assert_int_equal(a->e[i].mtime_ns, b->e[i].mtime_ns);
		assert_int_equal(a->e[i].ino, b->e[i].ino);
		assert_memory_equal(a->e[i].hash, b->e[i].hash, MF_HASH_LEN);
	}
}

/*
 * A streamed build hands its listing over while it walks: the first slice
 * comes when the walk has seen a part of the tree, a file made then in a
 * directory not walked yet is listed, and the slices, end to end, are the
 * whole listing, which equals a quick build's.
 */
static void
test_streamed_build_hands_slices_over_while_it_walks(void **state)
{
	struct fx	*f = *state;
	struct stream	 st;
	struct manifest	*mf, *quick;
	char		 err[128];

	stream_tree(f->herefd, 10, 100);
	memset(&st, 0, sizeof(st));
	st.rootfd = f->herefd;
	st.create = "d9/late";
	if (manifest_build_quick_stream(f->herefd, NULL, NULL, stream_slice, &st,
	    &mf, err, sizeof(err)) == -1)
		fail_msg("manifest_build_quick_stream: %s", err);
	assert_true(st.first_n < 100);
	assert_true(st.slices > 3);
	assert_non_null(manifest_find(mf, "d9/late"));
	assert_int_equal(mf->n, 10 + 10 * 100 + 1);
	assert_same_entries(&st.all, mf);
	if (manifest_build_quick(f->herefd, NULL, NULL, &quick, err,
	    sizeof(err)) == -1)
		fail_msg("manifest_build_quick: %s", err);
	assert_same_entries(quick, mf);
	for (size_t i = 0; i < mf->n; i++)
		if (mf->e[i].type == MF_DIR)
			assert_int_equal(mf->e[i].end, quick->e[i].end);
	manifest_free(quick);
	manifest_free(mf);
	for (size_t i = 0; i < st.all.n; i++)
		manifest_entry_clear(&st.all.e[i]);
	free(st.all.e);
}

/* A directory removed while the walk goes on is left out, not an error. */
static void
test_streamed_build_leaves_out_a_directory_removed_meanwhile(void **state)
{
	struct fx	*f = *state;
	struct stream	 st;
	struct manifest	*mf;
	char		 err[128];

	stream_tree(f->herefd, 10, 100);
	memset(&st, 0, sizeof(st));
	st.rootfd = f->herefd;
	st.remove_dir = "d7";
	if (manifest_build_quick_stream(f->herefd, NULL, NULL, stream_slice, &st,
	    &mf, err, sizeof(err)) == -1)
		fail_msg("manifest_build_quick_stream: %s", err);
	assert_int_equal(st.removed_files, 100);
	assert_null(manifest_find(mf, "d7"));
	assert_null(manifest_find(mf, "d7/f000"));
	assert_int_equal(mf->n, 9 + 9 * 100);
	assert_same_entries(&st.all, mf);
	manifest_free(mf);
	for (size_t i = 0; i < st.all.n; i++)
		manifest_entry_clear(&st.all.e[i]);
	free(st.all.e);
}

/* Slices come in path order with no sort: '/' lowest, high bytes last. */
static void
test_streamed_slices_come_in_path_order(void **state)
{
	static const char *const names[] = { "a", "a-b", "a.b", "a b", "Z", "~",
	    "\xc3\xa9", "a0", "b" };
	struct fx	*f = *state;
	struct stream	 st;
	struct manifest	*mf;
	char		 err[128], p[64];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		dir(f->herefd, names[i], 0755);
		snprintf(p, sizeof(p), "%s/x", names[i]);
		put(f->herefd, p, "x", 0644);
		snprintf(p, sizeof(p), "%s/x.y", names[i]);
		put(f->herefd, p, "x", 0644);
	}
	memset(&st, 0, sizeof(st));
	if (manifest_build_quick_stream(f->herefd, NULL, NULL, stream_slice, &st,
	    &mf, err, sizeof(err)) == -1)
		fail_msg("manifest_build_quick_stream: %s", err);
	assert_int_equal(st.all.n, 27);
	for (size_t i = 1; i < st.all.n; i++)
		assert_true(manifest_path_cmp(st.all.e[i - 1].path,
		    st.all.e[i].path) < 0);
	assert_same_entries(&st.all, mf);
	manifest_free(mf);
	for (size_t i = 0; i < st.all.n; i++)
		manifest_entry_clear(&st.all.e[i]);
	free(st.all.e);
}

int
main(void)
{
#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_tree_lists_files_dirs_and_links_with_their_metadata),
		T(test_quick_listing_lends_no_hash_it_never_read),
		T(test_diff_counts_an_unread_file_as_different_content),
		T(test_symlinked_directory_is_recorded_never_followed),
		T(test_same_second_same_size_rewrite_is_detected),
		T(test_unchanged_files_reuse_their_hash_unless_full),
		T(test_racy_files_are_always_rehashed),
		T(test_diff_reports_every_category),
		T(test_an_unchanged_subtree_costs_one_compare),
		T(test_encoding_round_trips_exactly),
		T(test_truncated_encodings_are_refused),
		T(test_hostile_encodings_are_refused),
		T(test_stat_rehashes_one_path),
		T(test_quick_build_stats_new_files_and_hashes_changed_ones),
		T(test_streamed_build_hands_slices_over_while_it_walks),
		T(test_streamed_build_leaves_out_a_directory_removed_meanwhile),
		T(test_streamed_slices_come_in_path_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
