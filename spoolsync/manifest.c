/*
 * manifest.c: what a spool tree holds (path, type, size, mode, owner,
 * nanosecond mtime, SHA-256), per-directory digests so that equal subtrees
 * compare in one step, the differences between two trees, and a wire form.
 *
 * The hash cache and its remaining risk.  A file's hash is reused from the
 * previous manifest only when size, mtime_ns, ctime_ns, inode and device are
 * all unchanged.  Whole seconds are never trusted: a same-second, same-size
 * rewrite changes mtime_ns and ctime_ns, and a rewrite that puts the old
 * mtime back (touch -d, rsync -t) still moves ctime, which no user can set.
 * What remains: a kernel stamps files from a coarse clock (one tick, 1-10
 * ms), so two writes within one tick may leave identical stamps.  Linux 6.13+
 * closes that on ext4, xfs, btrfs and tmpfs (multigrain timestamps: a stat
 * makes the next change take a fine-grained stamp); for the rest, a file
 * whose newest stamp was within MF_RACY_NS of the moment it was hashed is
 * flagged MF_F_RACY and always rehashed next time (git's "racy clean" rule).
 * A file system with whole-second stamps gets a 2 s window instead.  Not
 * covered: a clock stepped backwards, a file system that does not update
 * ctime (some FUSE/network ones), and a writer that changes the bytes
 * through a raw block device.  The `full` flag (--audit) rehashes everything.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "spoolsync.h"

#define MF_MAGIC	"SSMF"
#define MF_VERSION	1
#define MF_HDR_LEN	(4 + 4 + 4 + MF_HASH_LEN)
/* path len, 1-byte path, type, flags, mode, uid, gid, size, mtime, hash, link len */
#define MF_MIN_ENC	(2 + 1 + 1 + 1 + 4 + 4 + 4 + 8 + 8 + MF_HASH_LEN + 2)
#define MF_READ_BUF	(256 * 1024)
#define MF_HASH_TRIES	3
#define MF_SEC_RACY_NS	(2 * 1000000000LL)
/* A streamed build's slices: the first small, so that the loop starts at
 * once; then bigger, fewer hand-overs; and never older than a few ms when
 * the disk is slow. */
#define MF_SLICE_FIRST	64
#define MF_SLICE_MAX	4096
#define MF_SLICE_NS	(3 * 1000000LL)

struct mf_build {
	int			 rootfd;
	const struct exclude	*ex;
	const struct manifest	*prev;
	int			 full;
	int			 quick;		/* MF_F_NOHASH instead of hashing */
	struct manifest		*mf;
	unsigned char		*rbuf;
	char			 path[PATH_REL_MAX + 2];
	char			*err;
	size_t			 errlen;
	/* streamed: entries [posted, mf->n) not yet handed over */
	void			(*slice)(struct manifest *, void *);
	void			*slice_arg;
	size_t			 posted, slice_n;
	int64_t			 posted_ns;
};

static void
mf_sha256(const void *p, size_t n, unsigned char out[MF_HASH_LEN])
{
	unsigned int	len;

	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
		fatalx("manifest: SHA-256 failed");
}

int
manifest_path_cmp(const char *a, const char *b)
{
	const unsigned char	*x = (const unsigned char *)a;
	const unsigned char	*y = (const unsigned char *)b;
	int			 cx, cy;

	for (;; x++, y++) {
		cx = *x == '/' ? 1 : *x == '\0' ? 0 : *x + 1;
		cy = *y == '/' ? 1 : *y == '\0' ? 0 : *y + 1;
		if (cx != cy || cx == 0)
			return cx - cy;
	}
}

static int
mf_entry_cmp(const void *a, const void *b)
{
	return manifest_path_cmp(((const struct mf_entry *)a)->path,
	    ((const struct mf_entry *)b)->path);
}

void
manifest_entry_clear(struct mf_entry *e)
{
	free(e->path);
	free(e->link);
	memset(e, 0, sizeof(*e));
}

void
manifest_free(struct manifest *mf)
{
	if (mf == NULL)
		return;
	for (size_t i = 0; i < mf->n; i++)
		manifest_entry_clear(&mf->e[i]);
	free(mf->e);
	free(mf);
}

static struct mf_entry *
mf_push(struct manifest *mf)
{
	if (mf->n == mf->cap) {
		mf->cap = mf->cap ? mf->cap * 2 : 256;
		mf->e = xreallocarray(mf->e, mf->cap, sizeof(*mf->e));
	}
	memset(&mf->e[mf->n], 0, sizeof(*mf->e));
	return &mf->e[mf->n++];
}

const struct mf_entry *
manifest_find(const struct manifest *mf, const char *path)
{
	size_t	lo = 0, hi, mid;
	int	c;

	if (mf == NULL)
		return NULL;
	hi = mf->n;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = manifest_path_cmp(path, mf->e[mid].path)) == 0)
			return &mf->e[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int64_t
mf_ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static void
mf_from_stat(struct mf_entry *e, const struct stat *st)
{
	e->mode = st->st_mode & 07777;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->mtime_ns = mf_ts_ns(&st->st_mtim);
	e->ctime_ns = mf_ts_ns(&st->st_ctim);
	e->ino = st->st_ino;
	e->dev = st->st_dev;
	e->size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size;
}

static int
mf_same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_ino == b->st_ino &&
	    a->st_dev == b->st_dev &&
	    mf_ts_ns(&a->st_mtim) == mf_ts_ns(&b->st_mtim) &&
	    mf_ts_ns(&a->st_ctim) == mf_ts_ns(&b->st_ctim);
}

/* The cache's safety margin: see the comment at the top of this file. */
static int
mf_is_racy(const struct stat *st)
{
	struct timespec	now;
	int64_t		newest, window = MF_RACY_NS;

	clock_gettime(CLOCK_REALTIME, &now);
	newest = mf_ts_ns(&st->st_mtim);
	if (mf_ts_ns(&st->st_ctim) > newest)
		newest = mf_ts_ns(&st->st_ctim);
	if (st->st_mtim.tv_nsec == 0 && st->st_ctim.tv_nsec == 0)
		window = MF_SEC_RACY_NS;
	return mf_ts_ns(&now) - newest < window;
}

static int
mf_open_file(int dfd, const char *name)
{
	int	fd;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
	if (fd == -1 && errno == EPERM)	/* O_NOATIME needs ownership */
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

/* One pass over an open file: its hash and the byte count, between two fstats. */
static int
mf_hash_fd(int fd, unsigned char *rbuf, unsigned char out[MF_HASH_LEN],
    uint64_t *nread)
{
	EVP_MD_CTX	*md;
	ssize_t		 n;
	unsigned int	 len;
	int		 rv = -1;

	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		fatalx("manifest: SHA-256 failed");
	*nread = 0;
	for (;;) {
		n = read(fd, rbuf, MF_READ_BUF);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		EVP_DigestUpdate(md, rbuf, (size_t)n);
		*nread += (uint64_t)n;
	}
	EVP_DigestFinal_ex(md, out, &len);
	rv = 0;
fail:
	EVP_MD_CTX_free(md);
	return rv;
}

/*
 * Hashes NAME in DFD into E, retrying while it changes under us; a file that
 * never holds still is flagged MF_F_UNSTABLE.  1 when it is gone or no longer
 * a regular file, -1 on error.
 */
static int
mf_hash_file(int dfd, const char *name, const char *path, unsigned char *rbuf,
    struct mf_entry *e, uint64_t *hashed, char *err, size_t errlen)
{
	struct stat	a, z;
	uint64_t	n = 0;
	int		fd, tries, stable = 0;

	memset(&z, 0, sizeof(z));

	for (tries = 0; tries < MF_HASH_TRIES && !stable; tries++) {
		if ((fd = mf_open_file(dfd, name)) == -1) {
			if (errno == ENOENT || errno == ELOOP || errno == ENXIO)
				return 1;
			goto fail;
		}
		if (fstat(fd, &a) == -1 || (S_ISREG(a.st_mode) &&
		    (mf_hash_fd(fd, rbuf, e->hash, &n) == -1 || fstat(fd, &z) == -1))) {
			close(fd);
			goto fail;
		}
		close(fd);
		if (!S_ISREG(a.st_mode))
			return 1;
		*hashed += n;
		stable = mf_same_stat(&a, &z) && n == (uint64_t)z.st_size;
	}
	mf_from_stat(e, &z);
	e->type = MF_FILE;
	e->flags = stable ? 0 : MF_F_UNSTABLE;
	if (mf_is_racy(&z))
		e->flags |= MF_F_RACY;
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	return -1;
}

static int
mf_cache_hit(const struct mf_entry *p, const struct stat *st)
{
	return p != NULL && p->type == MF_FILE &&
	    (p->flags & (MF_F_RACY | MF_F_UNSTABLE | MF_F_NOHASH)) == 0 &&
	    p->size == (uint64_t)st->st_size &&
	    p->mtime_ns == mf_ts_ns(&st->st_mtim) &&
	    p->ctime_ns == mf_ts_ns(&st->st_ctim) &&
	    p->ino == st->st_ino && p->dev == st->st_dev;
}

static int
mf_read_link(int dfd, const char *name, const char *path, struct mf_entry *e,
    char *err, size_t errlen)
{
	char	target[PATH_MAX + 1];
	ssize_t	n;

	if ((n = readlinkat(dfd, name, target, sizeof(target))) == -1) {
		if (errno == ENOENT || errno == EINVAL)
			return 1;
		snprintf(err, errlen, "%s: readlink: %s", path, strerror(errno));
		return -1;
	}
	if ((size_t)n >= sizeof(target) - 1 || n == 0)
		return 1;	/* cannot be carried: counted as skipped */
	target[n] = '\0';
	e->link = xstrdup(target);
	e->size = (uint64_t)n;
	mf_sha256(target, (size_t)n, e->hash);
	return 0;
}

/*
 * Fills E for NAME in DFD, already lstat'ed into ST.  0 done, 1 skip (gone,
 * or a socket, fifo or device), -1 error.
 */
static int
mf_fill(int dfd, const char *name, const char *path, const struct stat *st,
    const struct manifest *prev, int full, int quick, unsigned char *rbuf,
    struct manifest *mf, struct mf_entry *e, char *err, size_t errlen)
{
	const struct mf_entry	*p;

	mf_from_stat(e, st);
	if (S_ISDIR(st->st_mode)) {
		e->type = MF_DIR;
		return 0;
	}
	if (S_ISLNK(st->st_mode)) {
		e->type = MF_LINK;
		return mf_read_link(dfd, name, path, e, err, errlen);
	}
	if (!S_ISREG(st->st_mode))
		return 1;
	p = full ? NULL : manifest_find(prev, path);
	if (mf_cache_hit(p, st)) {
		e->type = MF_FILE;
		memcpy(e->hash, p->hash, MF_HASH_LEN);
		mf->reused++;
		return 0;
	}
	if (quick && p == NULL) {
		e->type = MF_FILE;
		e->flags = MF_F_NOHASH;
		return 0;
	}
	return mf_hash_file(dfd, name, path, rbuf, e, &mf->hashed_bytes, err,
	    errlen);
}

static int	mf_walk(struct mf_build *, int dfd, size_t plen);

static int
mf_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory, read whole so the walk holds one fd per level. */
static char **
mf_read_names(DIR *d, size_t *count, int *error)
{
	struct dirent	*de;
	char		**v = NULL;
	size_t		 n = 0, cap = 0;

	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[n++] = xstrdup(de->d_name);
	}
	*error = errno;
	if (n > 1)
		qsort(v, n, sizeof(*v), mf_cmp_names);
	*count = n;
	return v;
}

static int64_t
mf_mono_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return mf_ts_ns(&ts);
}

/*
 * A streamed build hands the entries made since the last slice over, as a
 * manifest of their own (copies: the build's array moves as it grows), when
 * there are enough of them, when they have waited too long, or at the end.
 */
static void
mf_stream(struct mf_build *b, int last)
{
	struct manifest	*part;
	size_t		 n = b->mf->n - b->posted;
	int64_t		 now;

	if (b->slice == NULL || n == 0)
		return;
	now = mf_mono_ns();
	if (!last && n < b->slice_n && now - b->posted_ns < MF_SLICE_NS)
		return;
	part = xcalloc(1, sizeof(*part));
	part->e = xcalloc(n, sizeof(*part->e));
	part->n = part->cap = n;
	for (size_t i = 0; i < n; i++) {
		part->e[i] = b->mf->e[b->posted + i];
		part->e[i].path = xstrdup(part->e[i].path);
		if (part->e[i].link != NULL)
			part->e[i].link = xstrdup(part->e[i].link);
		part->e[i].end = 0;	/* linked only in the whole */
	}
	b->posted = b->mf->n;
	b->posted_ns = now;
	if (b->slice_n < MF_SLICE_MAX)
		b->slice_n *= 2;
	b->slice(part, b->slice_arg);
}

/* One child NAME of directory DFD; b->path holds its parent's path (PLEN). */
static int
mf_visit(struct mf_build *b, int dfd, size_t plen, const char *name)
{
	struct stat	 st;
	struct mf_entry	*e;
	size_t		 nlen = strlen(name), clen;
	int		 rv, sub;

	clen = plen ? plen + 1 + nlen : nlen;
	if (clen > PATH_REL_MAX) {
		b->mf->skipped++;
		return 0;
	}
	if (plen)
		b->path[plen] = '/';
	memcpy(b->path + (plen ? plen + 1 : 0), name, nlen + 1);
	if (exclude_match(b->ex, b->path))
		goto out;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno == ENOENT)
			goto out;
		snprintf(b->err, b->errlen, "%s: %s", b->path, strerror(errno));
		return -1;
	}
	if (b->mf->n >= MF_MAX_ENTRIES) {
		snprintf(b->err, b->errlen, "more than %d entries", MF_MAX_ENTRIES);
		return -1;
	}
	e = mf_push(b->mf);
	rv = mf_fill(dfd, name, b->path, &st, b->prev, b->full, b->quick, b->rbuf,
	    b->mf, e, b->err, b->errlen);
	if (rv != 0) {
		manifest_entry_clear(e);
		b->mf->n--;
		if (rv == 1 && !S_ISREG(st.st_mode))
			b->mf->skipped++;
		if (rv == -1)
			return -1;
		goto out;
	}
	e->path = xstrdup(b->path);
	if (e->type == MF_DIR) {
		sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub == -1 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)) {
			manifest_entry_clear(e);	/* replaced meanwhile */
			b->mf->n--;
			goto out;
		}
		if (sub == -1) {
			snprintf(b->err, b->errlen, "%s: %s", b->path, strerror(errno));
			return -1;
		}
		mf_stream(b, 0);
		if (mf_walk(b, sub, clen) == -1)
			return -1;
	} else
		mf_stream(b, 0);
out:
	b->path[plen] = '\0';
	return 0;
}

/* Takes DFD (closed on return); b->path holds its path, PLEN bytes. */
static int
mf_walk(struct mf_build *b, int dfd, size_t plen)
{
	DIR	 *d;
	char	**names;
	size_t	  n, i;
	int	  rv = 0, e;

	if ((d = fdopendir(dfd)) == NULL) {
		snprintf(b->err, b->errlen, "%s: %s", plen ? b->path : ".",
		    strerror(errno));
		close(dfd);
		return -1;
	}
	names = mf_read_names(d, &n, &e);
	if (e != 0) {
		snprintf(b->err, b->errlen, "%s: readdir: %s", plen ? b->path : ".",
		    strerror(e));
		rv = -1;
	}
	for (i = 0; i < n; i++) {
		if (rv == 0)
			rv = mf_visit(b, dirfd(d), plen, names[i]);
		free(names[i]);
	}
	free(names);
	closedir(d);
	return rv;
}

static void
mf_put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void
mf_put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void
mf_put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (56 - 8 * i));
}

/* What a directory's digest covers of one child: everything a diff compares. */
static void
mf_digest_child(EVP_MD_CTX *md, const struct mf_entry *e)
{
	unsigned char	 rec[2 + 1 + 4 + 4 + 4 + 8 + 8];
	const char	*name = strrchr(e->path, '/');
	size_t		 nlen;

	name = name ? name + 1 : e->path;
	nlen = strlen(name);
	mf_put16(rec, (uint16_t)nlen);
	rec[2] = e->type;
	mf_put32(rec + 3, e->mode);
	mf_put32(rec + 7, e->uid);
	mf_put32(rec + 11, e->gid);
	mf_put64(rec + 15, e->type == MF_DIR ? 0 : e->size);
	mf_put64(rec + 23, e->type == MF_DIR ? 0 : (uint64_t)e->mtime_ns);
	EVP_DigestUpdate(md, rec, 2);
	EVP_DigestUpdate(md, name, nlen);
	EVP_DigestUpdate(md, rec + 2, sizeof(rec) - 2);
	EVP_DigestUpdate(md, e->hash, MF_HASH_LEN);
}

/* The digest of the direct children in [FROM, TO). */
static void
mf_digest_range(const struct manifest *mf, size_t from, size_t to,
    unsigned char out[MF_HASH_LEN])
{
	EVP_MD_CTX	*md;
	unsigned int	 len;
	size_t		 j;

	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		fatalx("manifest: SHA-256 failed");
	for (j = from; j < to; j = mf->e[j].type == MF_DIR ? mf->e[j].end : j + 1)
		mf_digest_child(md, &mf->e[j]);
	EVP_DigestFinal_ex(md, out, &len);
	EVP_MD_CTX_free(md);
}

static int
mf_is_under(const char *path, const char *dir)
{
	size_t	n = strlen(dir);

	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/*
 * Sets every directory's end (its subtree is [i + 1, end)) and checks that
 * every entry's parent is listed as a directory before it.  -1 + err if not.
 */
static int
mf_link_tree(struct manifest *mf, char *err, size_t errlen)
{
	size_t		*stack, sp = 0, i;
	const char	*slash;
	char		 q[96];
	int		 rv = -1;

	stack = xreallocarray(NULL, mf->n + 1, sizeof(*stack));
	for (i = 0; i < mf->n; i++) {
		while (sp > 0 && !mf_is_under(mf->e[i].path, mf->e[stack[sp - 1]].path))
			mf->e[stack[--sp]].end = i;
		slash = strrchr(mf->e[i].path, '/');
		if ((slash != NULL) != (sp > 0) || (slash != NULL &&
		    strlen(mf->e[stack[sp - 1]].path) != (size_t)(slash - mf->e[i].path))) {
			path_quote(mf->e[i].path, strlen(mf->e[i].path), q, sizeof(q));
			snprintf(err, errlen, "entry %zu \"%s\": its directory is "
			    "not listed before it", i, q);
			goto fail;
		}
		if (mf->e[i].type == MF_DIR)
			stack[sp++] = i;
	}
	while (sp > 0)
		mf->e[stack[--sp]].end = mf->n;
	rv = 0;
fail:
	free(stack);
	return rv;
}

/* Children before parents: walking backwards, every subtree is done first. */
static void
mf_digest_all(struct manifest *mf)
{
	for (size_t i = mf->n; i-- > 0;)
		if (mf->e[i].type == MF_DIR)
			mf_digest_range(mf, i + 1, mf->e[i].end, mf->e[i].hash);
	mf_digest_range(mf, 0, mf->n, mf->digest);
}

static int	mf_build(struct mf_build *, struct manifest **);

static void
mf_build_init(struct mf_build *b, int rootfd, const struct exclude *ex,
    const struct manifest *prev, char *err, size_t errlen)
{
	memset(b, 0, sizeof(*b));
	b->rootfd = rootfd;
	b->ex = ex;
	b->prev = prev;
	b->err = err;
	b->errlen = errlen;
}

int
manifest_build(int rootfd, const struct exclude *ex, const struct manifest *prev,
    int full, struct manifest **out, char *err, size_t errlen)
{
	struct mf_build	 b;

	mf_build_init(&b, rootfd, ex, prev, err, errlen);
	b.full = full;
	return mf_build(&b, out);
}

int
manifest_build_quick(int rootfd, const struct exclude *ex,
    const struct manifest *prev, struct manifest **out, char *err, size_t errlen)
{
	return manifest_build_quick_stream(rootfd, ex, prev, NULL, NULL, out, err,
	    errlen);
}

int
manifest_build_quick_stream(int rootfd, const struct exclude *ex,
    const struct manifest *prev, void (*slice)(struct manifest *, void *),
    void *arg, struct manifest **out, char *err, size_t errlen)
{
	struct mf_build	 b;

	mf_build_init(&b, rootfd, ex, prev, err, errlen);
	b.quick = 1;
	b.slice = slice;
	b.slice_arg = arg;
	b.slice_n = MF_SLICE_FIRST;
	b.posted_ns = mf_mono_ns();
	return mf_build(&b, out);
}

/*
 * The walk takes each directory's names in strcmp order, depth first, which
 * is the path order already ('/' sorts lowest, names hold none): the sort is
 * a check that costs one compare per entry, not a qsort's n log n.
 */
static void
mf_sort(struct manifest *mf)
{
	for (size_t i = 1; i < mf->n; i++)
		if (manifest_path_cmp(mf->e[i - 1].path, mf->e[i].path) >= 0) {
			qsort(mf->e, mf->n, sizeof(*mf->e), mf_entry_cmp);
			return;
		}
}

static int
mf_build(struct mf_build *b, struct manifest **out)
{
	int	dfd;

	*out = NULL;
	if ((dfd = openat(b->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(b->err, b->errlen, "root: %s", strerror(errno));
		return -1;
	}
	b->mf = xcalloc(1, sizeof(*b->mf));
	b->rbuf = xmalloc(MF_READ_BUF);
	if (mf_walk(b, dfd, 0) == -1)
		goto fail;
	mf_stream(b, 1);
	mf_sort(b->mf);
	if (mf_link_tree(b->mf, b->err, b->errlen) == -1)
		goto fail;
	if (!b->quick)
		mf_digest_all(b->mf);	/* a quick one is never compared */
	free(b->rbuf);
	*out = b->mf;
	return 0;
fail:
	free(b->rbuf);
	manifest_free(b->mf);
	return -1;
}

int
manifest_stat(int rootfd, const char *path, struct mf_entry *e, char *err,
    size_t errlen)
{
	struct manifest	 scratch;
	struct stat	 st;
	const char	*leaf;
	unsigned char	*rbuf = NULL;
	int		 dfd, rv = -1, e0;

	memset(e, 0, sizeof(*e));
	memset(&scratch, 0, sizeof(scratch));
	if ((dfd = path_open_parent(rootfd, path, 0, 0, &leaf, err, errlen)) == -1)
		return -1;
	if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		e0 = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e0));
		close(dfd);
		errno = e0;
		return -1;
	}
	rbuf = xmalloc(MF_READ_BUF);
	rv = mf_fill(dfd, leaf, path, &st, NULL, 1, 0, rbuf, &scratch, e, err,
	    errlen);
	if (rv == 1) {
		snprintf(err, errlen, "%s: gone, or not a file, directory or "
		    "symlink", path);
		errno = ENOENT;
		rv = -1;
	}
	if (rv == 0)
		e->path = xstrdup(path);
	else
		manifest_entry_clear(e);
	free(rbuf);
	close(dfd);
	return rv;
}

/* The wire form. */

static void
mf_enc_entry(struct buf *out, const struct mf_entry *e)
{
	unsigned char	hdr[1 + 1 + 4 + 4 + 4 + 8 + 8];
	unsigned char	len[2];
	size_t		plen = strlen(e->path);
	size_t		llen = e->type == MF_LINK && e->link ? strlen(e->link) : 0;

	mf_put16(len, (uint16_t)plen);
	buf_add(out, len, 2);
	buf_add(out, e->path, plen);
	hdr[0] = e->type;
	hdr[1] = e->flags & MF_F_UNSTABLE;
	mf_put32(hdr + 2, e->mode);
	mf_put32(hdr + 6, e->uid);
	mf_put32(hdr + 10, e->gid);
	mf_put64(hdr + 14, e->size);
	mf_put64(hdr + 22, (uint64_t)e->mtime_ns);
	buf_add(out, hdr, sizeof(hdr));
	buf_add(out, e->hash, MF_HASH_LEN);
	mf_put16(len, (uint16_t)llen);
	buf_add(out, len, 2);
	buf_add(out, e->link, llen);
}

void
manifest_encode(const struct manifest *mf, struct buf *out)
{
	unsigned char	hdr[MF_HDR_LEN];

	memcpy(hdr, MF_MAGIC, 4);
	hdr[4] = MF_VERSION;
	hdr[5] = hdr[6] = hdr[7] = 0;
	mf_put32(hdr + 8, (uint32_t)mf->n);
	memcpy(hdr + 12, mf->digest, MF_HASH_LEN);
	buf_add(out, hdr, sizeof(hdr));
	for (size_t i = 0; i < mf->n; i++)
		mf_enc_entry(out, &mf->e[i]);
}

struct mf_rd {
	const unsigned char	*p;
	size_t			 left;
};

static int
mf_take(struct mf_rd *r, void *out, size_t n)
{
	if (r->left < n)
		return -1;
	memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
	return 0;
}

static uint64_t
mf_get(const unsigned char *p, int n)
{
	uint64_t	v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Checks the fields of E that do not depend on the other entries. */
static const char *
mf_check_entry(const struct mf_entry *e, size_t llen)
{
	unsigned char	h[MF_HASH_LEN];

	if (e->type != MF_FILE && e->type != MF_DIR && e->type != MF_LINK)
		return "unknown type";
	if (e->flags & ~MF_F_UNSTABLE)
		return "unknown flags";
	if (e->mode & ~07777u)
		return "mode has bits beyond 07777";
	if (e->type == MF_DIR && e->size != 0)
		return "a directory with a size";
	if (e->type != MF_LINK && llen != 0)
		return "a link target on something not a link";
	if (e->type != MF_LINK)
		return NULL;
	if (llen == 0 || llen >= PATH_MAX || memchr(e->link, '\0', llen) != NULL)
		return "bad link target";
	if (e->size != llen)
		return "link size is not its target's length";
	mf_sha256(e->link, llen, h);
	if (memcmp(h, e->hash, MF_HASH_LEN) != 0)
		return "link hash does not match its target";
	return NULL;
}

static int
mf_dec_entry(struct mf_rd *r, struct mf_entry *e, size_t idx, char *err,
    size_t errlen)
{
	unsigned char	 len[2], hdr[1 + 1 + 4 + 4 + 4 + 8 + 8];
	char		 perr[200];
	const char	*why;
	size_t		 plen, llen;

	if (mf_take(r, len, 2) == -1)
		goto truncated;
	plen = (size_t)mf_get(len, 2);
	if (r->left < plen)
		goto truncated;
	if (path_validn((const char *)r->p, plen, perr, sizeof(perr)) == -1) {
		snprintf(err, errlen, "entry %zu: %s", idx, perr);
		return -1;
	}
	e->path = xstrndup((const char *)r->p, plen);
	r->p += plen;
	r->left -= plen;
	if (mf_take(r, hdr, sizeof(hdr)) == -1 ||
	    mf_take(r, e->hash, MF_HASH_LEN) == -1 || mf_take(r, len, 2) == -1)
		goto truncated;
	e->type = hdr[0];
	e->flags = hdr[1];
	e->mode = (uint32_t)mf_get(hdr + 2, 4);
	e->uid = (uint32_t)mf_get(hdr + 6, 4);
	e->gid = (uint32_t)mf_get(hdr + 10, 4);
	e->size = mf_get(hdr + 14, 8);
	e->mtime_ns = (int64_t)mf_get(hdr + 22, 8);
	llen = (size_t)mf_get(len, 2);
	if (r->left < llen)
		goto truncated;
	if (llen > 0) {
		e->link = xmalloc(llen + 1);
		memcpy(e->link, r->p, llen);
		e->link[llen] = '\0';
		r->p += llen;
		r->left -= llen;
	}
	if ((why = mf_check_entry(e, llen)) != NULL) {
		path_quote(e->path, plen, perr, sizeof(perr));
		snprintf(err, errlen, "entry %zu \"%s\": %s", idx, perr, why);
		return -1;
	}
	return 0;
truncated:
	snprintf(err, errlen, "entry %zu: truncated", idx);
	return -1;
}

/* The digests sent must be the ones the entries give. */
static int
mf_check_digests(struct manifest *mf, const unsigned char *sent,
    char *err, size_t errlen)
{
	unsigned char	(*was)[MF_HASH_LEN];
	size_t		 i;
	int		 rv = -1;

	was = xreallocarray(NULL, mf->n + 1, MF_HASH_LEN);
	for (i = 0; i < mf->n; i++)
		memcpy(was[i], mf->e[i].hash, MF_HASH_LEN);
	mf_digest_all(mf);
	for (i = 0; i < mf->n; i++) {
		if (mf->e[i].type == MF_DIR &&
		    memcmp(was[i], mf->e[i].hash, MF_HASH_LEN) != 0) {
			snprintf(err, errlen, "entry %zu: directory digest does "
			    "not match its entries", i);
			goto fail;
		}
	}
	if (memcmp(sent, mf->digest, MF_HASH_LEN) != 0) {
		snprintf(err, errlen, "tree digest does not match the entries");
		goto fail;
	}
	rv = 0;
fail:
	free(was);
	return rv;
}

struct manifest *
manifest_decode(const void *data, size_t len, char *err, size_t errlen)
{
	struct mf_rd	 r = { data, len };
	struct manifest	*mf = NULL;
	unsigned char	 hdr[MF_HDR_LEN];
	char		 why[320];
	uint64_t	 count;

	if (mf_take(&r, hdr, sizeof(hdr)) == -1) {
		snprintf(err, errlen, "manifest: truncated header");
		return NULL;
	}
	if (memcmp(hdr, MF_MAGIC, 4) != 0 || hdr[4] != MF_VERSION ||
	    hdr[5] || hdr[6] || hdr[7]) {
		snprintf(err, errlen, "manifest: bad magic or version");
		return NULL;
	}
	count = mf_get(hdr + 8, 4);
	if (count > MF_MAX_ENTRIES || count > r.left / MF_MIN_ENC) {
		snprintf(err, errlen, "manifest: %ju entries cannot fit in %zu bytes "
		    "(or exceed %d)", (uintmax_t)count, r.left, MF_MAX_ENTRIES);
		return NULL;
	}
	mf = xcalloc(1, sizeof(*mf));
	mf->cap = count ? (size_t)count : 1;
	mf->e = xcalloc(mf->cap, sizeof(*mf->e));
	for (mf->n = 0; mf->n < count; mf->n++) {
		if (mf_dec_entry(&r, &mf->e[mf->n], mf->n, why, sizeof(why)) == -1) {
			mf->n++;	/* so that manifest_free frees it */
			goto fail;
		}
		if (mf->n > 0 && manifest_path_cmp(mf->e[mf->n - 1].path,
		    mf->e[mf->n].path) >= 0) {
			snprintf(why, sizeof(why), "entry %zu: out of order or "
			    "a duplicate", mf->n);
			mf->n++;
			goto fail;
		}
	}
	if (r.left != 0) {
		snprintf(why, sizeof(why), "%zu bytes after the last entry", r.left);
		goto fail;
	}
	if (mf_link_tree(mf, why, sizeof(why)) == -1 ||
	    mf_check_digests(mf, hdr + 12, why, sizeof(why)) == -1)
		goto fail;
	return mf;
fail:
	snprintf(err, errlen, "manifest: %s", why);
	manifest_free(mf);
	return NULL;
}

/* Differences. */

static void
mf_diff_add(struct mf_diffs *ds, enum mf_diff_kind kind, unsigned what,
    const struct mf_entry *here, const struct mf_entry *there)
{
	if (ds->n == ds->cap) {
		ds->cap = ds->cap ? ds->cap * 2 : 64;
		ds->d = xreallocarray(ds->d, ds->cap, sizeof(*ds->d));
	}
	ds->d[ds->n].kind = kind;
	ds->d[ds->n].what = what;
	ds->d[ds->n].here = here;
	ds->d[ds->n].there = there;
	ds->n++;
}

static unsigned
mf_compare(const struct mf_entry *a, const struct mf_entry *b, unsigned flags)
{
	unsigned	what = 0;

	if (a->type != b->type)
		return MF_D_TYPE;
	if (a->type != MF_DIR && a->size != b->size)
		what |= MF_D_SIZE;
	/* A quick listing's new file: its content is not known to be equal. */
	if (a->type != MF_DIR && (memcmp(a->hash, b->hash, MF_HASH_LEN) != 0 ||
	    ((a->flags | b->flags) & MF_F_NOHASH)))
		what |= MF_D_HASH;
	if (a->mode != b->mode)
		what |= MF_D_MODE;
	if (!(flags & MF_CMP_NO_OWNER) && a->uid != b->uid)
		what |= MF_D_UID;
	if (!(flags & MF_CMP_NO_OWNER) && a->gid != b->gid)
		what |= MF_D_GID;
	if (!(flags & MF_CMP_NO_MTIME) && a->type != MF_DIR &&
	    a->mtime_ns != b->mtime_ns)
		what |= MF_D_MTIME;
	return what;
}

void
manifest_diff(const struct manifest *here, const struct manifest *there,
    unsigned flags, struct mf_diffs *ds)
{
	const struct mf_entry	*a, *b;
	size_t			 i = 0, j = 0;
	unsigned		 what;
	int			 c;

	memset(ds, 0, sizeof(*ds));
	if (memcmp(here->digest, there->digest, MF_HASH_LEN) == 0) {
		ds->skipped = 1;
		return;
	}
	while (i < here->n || j < there->n) {
		a = i < here->n ? &here->e[i] : NULL;
		b = j < there->n ? &there->e[j] : NULL;
		c = a == NULL ? 1 : b == NULL ? -1 : manifest_path_cmp(a->path, b->path);
		if (c < 0) {
			mf_diff_add(ds, MF_MISSING_THERE, 0, a, NULL);
			i++;
			continue;
		}
		if (c > 0) {
			mf_diff_add(ds, MF_MISSING_HERE, 0, NULL, b);
			j++;
			continue;
		}
		ds->compared++;
		if ((what = mf_compare(a, b, flags)) != 0)
			mf_diff_add(ds, what & (MF_D_TYPE | MF_D_SIZE | MF_D_HASH) ?
			    MF_CONTENT_DIFFERS : MF_METADATA_DIFFERS, what, a, b);
		if (a->type == MF_DIR && b->type == MF_DIR &&
		    memcmp(a->hash, b->hash, MF_HASH_LEN) == 0) {
			ds->skipped++;
			i = a->end;
			j = b->end;
			continue;
		}
		i++;
		j++;
	}
}

void
manifest_diffs_free(struct mf_diffs *ds)
{
	free(ds->d);
	memset(ds, 0, sizeof(*ds));
}

const char *
manifest_diff_kind_name(enum mf_diff_kind k)
{
	switch (k) {
	case MF_MISSING_HERE:
		return "missing here";
	case MF_MISSING_THERE:
		return "missing there";
	case MF_CONTENT_DIFFERS:
		return "content differs";
	case MF_METADATA_DIFFERS:
		return "metadata differs";
	}
	return "?";
}

const char *
manifest_diff_what(unsigned what, char *out, size_t len)
{
	static const struct {
		unsigned	 bit;
		const char	*name;
	} names[] = {
		{ MF_D_TYPE, "type" }, { MF_D_SIZE, "size" }, { MF_D_HASH, "hash" },
		{ MF_D_MODE, "mode" }, { MF_D_UID, "uid" }, { MF_D_GID, "gid" },
		{ MF_D_MTIME, "mtime" },
	};
	size_t	o = 0;

	if (len == 0)
		return out;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(what & names[i].bit))
			continue;
		o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%s",
		    o ? "," : "", names[i].name);
		if (o >= len)
			break;
	}
	return out;
}
