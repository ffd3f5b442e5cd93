/*
 * local.c: local changes, from the watch to the records.  A watch event is
 * coalesced (queue.c), then the path is looked at: when it differs from its
 * record (size, nanosecond mtime, ctime, inode, mode, owner, content hash)
 * the record's version vector is bumped and the path is queued in every
 * peer's outbox (sync.c).  The echo of our own applies matches its record
 * and stops here.  Moves carry the records (and their versions) along.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "engine.h"

#define SYNC_POP_MAX	512	/* queue entries handled per turn */

static int64_t
ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

int64_t
sp_now_real_ns(void)
{
	struct timespec	t;

	clock_gettime(CLOCK_REALTIME, &t);
	return ts_ns(&t);
}

int
sync_lstat(struct spoolsync *sp, const char *path, struct stat *st)
{
	const char	*leaf;
	char		 err[256];
	int		 dfd, rv, e;

	if (path[0] == '\0')
		return fstat(sp->rootfd, st);
	if ((dfd = path_open_parent(sp->rootfd, path, 0, 0, &leaf, err,
	    sizeof(err))) == -1)
		return -1;
	rv = fstatat(dfd, leaf, st, AT_SYMLINK_NOFOLLOW);
	e = errno;
	close(dfd);
	errno = e;
	return rv;
}

static uint8_t
sync_type(const struct stat *st)
{
	if (S_ISREG(st->st_mode))
		return MF_FILE;
	if (S_ISDIR(st->st_mode))
		return MF_DIR;
	if (S_ISLNK(st->st_mode))
		return MF_LINK;
	return 0;
}

int
sync_same_stat(const struct st_rec *r, const struct stat *st)
{
	return r->ino == (uint64_t)st->st_ino && r->dev == (uint64_t)st->st_dev &&
	    r->size == (uint64_t)st->st_size &&
	    r->mtime_ns == ts_ns(&st->st_mtim) &&
	    r->ctime_ns == ts_ns(&st->st_ctim) &&
	    r->mode == (st->st_mode & 07777) && r->uid == st->st_uid &&
	    r->gid == st->st_gid;
}

static int
sync_same_stat2(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size &&
	    ts_ns(&a->st_mtim) == ts_ns(&b->st_mtim) &&
	    ts_ns(&a->st_ctim) == ts_ns(&b->st_ctim);
}

void
sync_rec_fill(struct st_rec *r, const struct stat *st)
{
	r->type = sync_type(st);
	r->mode = st->st_mode & 07777;
	r->uid = st->st_uid;
	r->gid = st->st_gid;
	r->size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size;
	r->mtime_ns = ts_ns(&st->st_mtim);
	r->ctime_ns = ts_ns(&st->st_ctim);
	r->ino = st->st_ino;
	r->dev = st->st_dev;
}

void
sync_touch(struct st_rec *r)
{
	r->touched_ms = now_mono_ms();
}

/* A new local version: this node's counter goes up. */
void
sync_bump(struct spoolsync *sp, struct st_rec *r)
{
	vv_set(&r->vv, sp->node, state_next_counter(sp->st));
	free(r->acked);
	r->acked = NULL;
	sync_touch(r);
	sp->local_changes++;
}

void
sync_save(struct spoolsync *sp, struct st_rec *r)
{
	if (state_save(sp->st, r) == -1)
		sp_error(sp, NULL, "%s", state_error(sp->st));
}

/*
 * Reads a regular file of at most SYNC_SMALL_MAX bytes: its bytes (into DATA
 * when not NULL), hash and a stat proving they go together.  0 ok, 1 not a
 * regular file, 2 too big, -1 error (errno).
 */
int
sync_read_small(struct spoolsync *sp, const char *path, struct buf *data,
    unsigned char hash[MF_HASH_LEN], struct stat *st)
{
	struct stat	 a, z;
	char		 err[256], *p;
	EVP_MD_CTX	*md;
	unsigned int	 hl;
	ssize_t		 n;
	size_t		 got, cap;
	int		 fd, tries, rv = -1;

	p = NULL;
	md = EVP_MD_CTX_new();
	for (tries = 0; tries < 3; tries++) {
		fd = path_open(sp->rootfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0,
		    err, sizeof(err));
		if (fd == -1)
			goto out;
		if (fstat(fd, &a) == -1) {
			close(fd);
			goto out;
		}
		if (!S_ISREG(a.st_mode) || a.st_size > SYNC_SMALL_MAX) {
			close(fd);
			rv = S_ISREG(a.st_mode) ? 2 : 1;
			goto out;
		}
		/* Sized by the stat (one byte more shows growth), grown if the
		 * file does: a megabyte per small file would fault fresh
		 * pages in for every one of them. */
		cap = (size_t)a.st_size + 1;
		p = xreallocarray(p, cap, 1);
		got = 0;
		while (got < SYNC_SMALL_MAX + 1) {
			if (got == cap) {
				cap = cap * 2 < SYNC_SMALL_MAX + 1 ? cap * 2 :
				    SYNC_SMALL_MAX + 1;
				p = xreallocarray(p, cap, 1);
			}
			n = read(fd, p + got, cap - got);
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (n == -1 || fstat(fd, &z) == -1) {
			close(fd);
			goto out;
		}
		close(fd);
		if (got > SYNC_SMALL_MAX) {
			rv = 2;
			goto out;
		}
		*st = z;
		if (sync_same_stat2(&a, &z) && got == (size_t)z.st_size)
			break;
	}
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, p, got);
	EVP_DigestFinal_ex(md, hash, &hl);
	if (data != NULL) {
		/* The bytes change hands: no copy of each file. */
		if (got + 1 > cap)
			p = xreallocarray(p, got + 1, 1);
		p[got] = '\0';
		buf_free(data);
		data->data = p;
		data->len = got;
		data->cap = got + 1 > cap ? got + 1 : cap;
		p = NULL;
	}
	rv = 0;
out:
	EVP_MD_CTX_free(md);
	free(p);
	return rv;
}

static int
sync_read_link(struct spoolsync *sp, const char *path, char *target, size_t len)
{
	const char	*leaf;
	char		 err[256];
	ssize_t		 n;
	int		 dfd, e;

	if ((dfd = path_open_parent(sp->rootfd, path, 0, 0, &leaf, err,
	    sizeof(err))) == -1)
		return -1;
	n = readlinkat(dfd, leaf, target, len - 1);
	e = errno;
	close(dfd);
	errno = e;
	if (n <= 0 || (size_t)n >= len - 1)
		return -1;
	target[n] = '\0';
	return (int)n;
}

static void
sync_sha256(const void *p, size_t n, unsigned char out[MF_HASH_LEN])
{
	unsigned int	len;

	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

static int
sync_cmp_depth_desc(const void *a, const void *b)
{
	return -manifest_path_cmp((*(struct st_rec *const *)a)->path,
	    (*(struct st_rec *const *)b)->path);
}

/* PATH is gone: it and every live record beneath it become tombstones. */
static void
sync_tombstone_tree(struct spoolsync *sp, struct st_rec *top)
{
	struct st_rec	**v = NULL;
	size_t		  n, i;
	int64_t		  now = sp_now_real_ns();

	n = top->type == MF_DIR ? state_collect(sp->st, top->path, &v) : 0;
	if (n > 1)
		qsort(v, n, sizeof(*v), sync_cmp_depth_desc);
	for (i = 0; i < n; i++) {
		if (v[i] == top || v[i]->deleted)
			continue;
		v[i]->deleted = 1;
		v[i]->deleted_ns = now;
		sync_bump(sp, v[i]);
		sync_save(sp, v[i]);
		sync_enqueue_all(sp, v[i]->path);
	}
	free(v);
	top->deleted = 1;
	top->deleted_ns = now;
	sync_bump(sp, top);
	sync_save(sp, top);
}

static int
sync_check_dir(struct spoolsync *sp, struct st_rec *r, const struct stat *st)
{
	int	same = !r->deleted && r->type == MF_DIR &&
		    r->mode == (st->st_mode & 07777) && r->uid == st->st_uid &&
		    r->gid == st->st_gid;

	sync_rec_fill(r, st);
	if (!same) {
		r->deleted = 0;
		sync_bump(sp, r);
	}
	sync_save(sp, r);
	return !same;
}

static int
sync_check_link(struct spoolsync *sp, struct st_rec *r, const char *path,
    const struct stat *st)
{
	char		target[4096];
	unsigned char	h[MF_HASH_LEN];
	int		n, same;

	if ((n = sync_read_link(sp, path, target, sizeof(target))) == -1)
		return 0;	/* gone meanwhile: its event follows */
	sync_sha256(target, (size_t)n, h);
	same = !r->deleted && r->type == MF_LINK && r->hash_ok &&
	    memcmp(r->hash, h, MF_HASH_LEN) == 0;
	sync_rec_fill(r, st);
	memcpy(r->hash, h, MF_HASH_LEN);
	r->hash_ok = 1;
	if (!same) {
		r->deleted = 0;
		sync_bump(sp, r);
	}
	sync_save(sp, r);
	return !same;
}

static int
sync_check_file(struct spoolsync *sp, struct st_rec *r, const char *path,
    const struct stat *st0)
{
	struct stat	st = *st0;
	unsigned char	h[MF_HASH_LEN];
	int		rv, same;

	rv = sync_read_small(sp, path, NULL, h, &st);
	if (rv == -1 || rv == 1)
		return 0;	/* gone or replaced meanwhile: its event follows */
	if (rv == 0) {
		same = !r->deleted && r->type == MF_FILE && r->hash_ok &&
		    memcmp(r->hash, h, MF_HASH_LEN) == 0 &&
		    r->size == (uint64_t)st.st_size &&
		    r->mtime_ns == ts_ns(&st.st_mtim) &&
		    r->mode == (st.st_mode & 07777) && r->uid == st.st_uid &&
		    r->gid == st.st_gid;
		sync_rec_fill(r, &st);
		memcpy(r->hash, h, MF_HASH_LEN);
		r->hash_ok = 1;
	} else {
		/* Too big to hash here: its stat changed, so it changed. */
		same = 0;
		sync_rec_fill(r, &st);
		r->hash_ok = 0;
	}
	if (!same) {
		r->deleted = 0;
		sync_bump(sp, r);
	}
	sync_save(sp, r);
	return !same;
}

int
sync_local_check(struct spoolsync *sp, const char *path)
{
	struct st_rec	*r = state_get(sp->st, path);
	struct applying	*ap;
	struct stat	 st;
	uint8_t		 type = 0;

	if (path[0] == '\0')
		return 0;	/* the root itself is not replicated */
	if (exclude_match(sp->ex, path))
		return 0;
	if ((ap = pmap_get(sp->applying, path)) != NULL) {
		ap->recheck = 1;	/* ours, landing: looked at once recorded */
		return 0;
	}
	if (sync_lstat(sp, path, &st) == 0)
		type = sync_type(&st);
	else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP) {
		log_debug("%s: %s: left as it is", path, strerror(errno));
		return 0;
	}
	if (type == 0) {
		if (r == NULL || r->deleted)
			return 0;
		sync_tombstone_tree(sp, r);
		return 1;
	}
	if (r != NULL && !r->deleted && r->type == type && type != MF_DIR &&
	    sync_same_stat(r, &st))
		return 0;	/* unchanged, or the echo of our own apply */
	if (r == NULL)
		r = state_lookup_or_new(sp->st, path);
	switch (type) {
	case MF_DIR:
		return sync_check_dir(sp, r, &st);
	case MF_LINK:
		return sync_check_link(sp, r, path, &st);
	default:
		return sync_check_file(sp, r, path, &st);
	}
}

/*
 * A manifest entry hashed moments ago stands for the file while its stat is
 * the same: no second read.  -1 when it cannot be used (look at the path),
 * else 1 when it is a local change.
 */
int
sync_adopt(struct spoolsync *sp, const struct mf_entry *e)
{
	struct st_rec	*r;
	struct stat	 st;
	int		 same;

	if (e->type != MF_FILE ||
	    (e->flags & (MF_F_UNSTABLE | MF_F_RACY | MF_F_NOHASH)) ||
	    exclude_match(sp->ex, e->path) || pmap_get(sp->applying, e->path) ||
	    sync_lstat(sp, e->path, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_ino != e->ino || (uint64_t)st.st_dev != e->dev ||
	    (uint64_t)st.st_size != e->size || ts_ns(&st.st_mtim) != e->mtime_ns ||
	    ts_ns(&st.st_ctim) != e->ctime_ns)
		return -1;
	r = state_lookup_or_new(sp->st, e->path);
	same = !r->deleted && r->type == MF_FILE && r->hash_ok &&
	    memcmp(r->hash, e->hash, MF_HASH_LEN) == 0 && r->size == e->size &&
	    r->mtime_ns == e->mtime_ns && r->mode == (st.st_mode & 07777) &&
	    r->uid == st.st_uid && r->gid == st.st_gid;
	sync_rec_fill(r, &st);
	memcpy(r->hash, e->hash, MF_HASH_LEN);
	r->hash_ok = 1;
	if (!same) {
		r->deleted = 0;
		sync_bump(sp, r);
	}
	sync_save(sp, r);
	return !same;
}

/*
 * A new file seen by a quick rescan: recorded from the walk's stat without
 * its hash (hash_ok 0); the sender hashes what it reads once it ships it,
 * and a file changed since the walk no longer matches the record's stat.
 * -1 when PATH has a live record (look at it instead).
 */
int
sync_adopt_new(struct spoolsync *sp, const struct mf_entry *e)
{
	struct st_rec	*r = state_get(sp->st, e->path);

	if (e->type != MF_FILE || (r != NULL && !r->deleted) ||
	    exclude_match(sp->ex, e->path) || pmap_get(sp->applying, e->path))
		return -1;
	r = state_lookup_or_new(sp->st, e->path);
	r->type = MF_FILE;
	r->mode = e->mode;
	r->uid = e->uid;
	r->gid = e->gid;
	r->size = e->size;
	r->mtime_ns = e->mtime_ns;
	r->ctime_ns = e->ctime_ns;
	r->ino = e->ino;
	r->dev = e->dev;
	r->hash_ok = 0;
	memset(r->hash, 0, sizeof(r->hash));
	r->deleted = 0;
	sync_bump(sp, r);
	/* Saved again once the sender hashes it: one write does for both. */
	state_save_later(sp->st, r);
	return 1;
}

/*
 * R, recorded without its hash (a rescan's new file), gets it now if the
 * file still has the recorded stat: a decision needs to know the content.
 */
void
sync_hash_record(struct spoolsync *sp, struct st_rec *r)
{
	unsigned char	h[MF_HASH_LEN];
	struct stat	st;

	if (r->deleted || r->type != MF_FILE || r->hash_ok ||
	    r->size > SYNC_SMALL_MAX ||
	    sync_read_small(sp, r->path, NULL, h, &st) != 0 ||
	    !sync_same_stat(r, &st))
		return;
	memcpy(r->hash, h, MF_HASH_LEN);
	r->hash_ok = 1;
	sync_save(sp, r);
}

/* Moves. */

static void
sync_enqueue_move_all(struct spoolsync *sp, const char *from, const char *to,
    int is_dir, const struct vv *vv)
{
	for (size_t i = 0; i < sp->npeers; i++)
		sync_enqueue_move(&sp->peers[i], from, to, is_dir, vv);
}

/* TR takes over what R described (a move): same content, a newer version. */
static void
sync_carry(struct spoolsync *sp, struct st_rec *tr, const struct st_rec *r,
    const struct stat *st)
{
	/* Above both: the old version at TO (if any) and the one moved. */
	vv_merge(&tr->vv, &r->vv);
	tr->type = r->type;
	tr->size = r->size;
	tr->mtime_ns = r->mtime_ns;
	tr->hash_ok = r->hash_ok;
	memcpy(tr->hash, r->hash, MF_HASH_LEN);
	sync_rec_fill(tr, st);
	tr->deleted = 0;
	sync_bump(sp, tr);
	sync_save(sp, tr);
}

/* TR, where a move took what R described, is empty again: a tombstone of
 * that version. */
static void
sync_carry_gone(struct spoolsync *sp, struct st_rec *tr, const struct st_rec *r)
{
	vv_merge(&tr->vv, &r->vv);
	tr->type = r->type;
	tr->hash_ok = 0;
	tr->deleted = 1;
	tr->deleted_ns = sp_now_real_ns();
	sync_bump(sp, tr);
	sync_save(sp, tr);
}

static int
sync_moved_same(const struct st_rec *r, const struct stat *st)
{
	if (r->type != sync_type(st))
		return 0;
	if (r->type == MF_DIR)
		return 1;
	return r->ino == (uint64_t)st->st_ino && r->dev == (uint64_t)st->st_dev &&
	    r->size == (uint64_t)st->st_size && r->mtime_ns == ts_ns(&st->st_mtim);
}

void
sync_check_and_enqueue(struct spoolsync *sp, const char *path)
{
	if (sync_local_check(sp, path))
		sync_enqueue_all(sp, path);
}

static void
sync_move_file(struct spoolsync *sp, const char *from, const char *to)
{
	struct st_rec	*fr = state_get(sp->st, from), *tr;
	struct stat	 st;
	struct vv	 moved = { NULL, 0 };

	if (fr == NULL || fr->deleted || sync_lstat(sp, to, &st) == -1 ||
	    !sync_moved_same(fr, &st) || exclude_match(sp->ex, to)) {
		sync_check_and_enqueue(sp, from);
		sync_check_and_enqueue(sp, to);
		return;
	}
	vv_copy(&moved, &fr->vv);
	tr = state_lookup_or_new(sp->st, to);
	sync_carry(sp, tr, fr, &st);
	fr = state_get(sp->st, from);	/* the map may have grown */
	fr->deleted = 1;
	fr->deleted_ns = sp_now_real_ns();
	sync_bump(sp, fr);
	sync_save(sp, fr);
	sync_enqueue_move_all(sp, from, to, 0, &moved);
	sync_enqueue_all(sp, from);
	sync_enqueue_all(sp, to);
	vv_free(&moved);
}

static int
sync_cmp_path(const void *a, const void *b)
{
	return manifest_path_cmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Everything beneath the directory DIR as it is now: its records were left
 * behind by a move whose hint did not apply (a later move, a directory
 * created and moved before we looked), so each path is checked afresh.
 */
static void
sync_check_tree(struct spoolsync *sp, const char *dir, int depth)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		 err[256], *q;
	int		 fd;

	if (depth > 256 ||
	    (fd = path_open_dir(sp->rootfd, dir, err, sizeof(err))) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    exclude_is_temp(de->d_name))
			continue;
		xasprintf(&q, "%s/%s", dir, de->d_name);
		if (!exclude_match(sp->ex, q)) {
			sync_check_and_enqueue(sp, q);
			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISDIR(st.st_mode))
				sync_check_tree(sp, q, depth + 1);
		}
		free(q);
	}
	closedir(d);
}

/* The hint "mv FROM TO" holds only if TO is now the directory FROM was. */
static int
sync_dir_moved_here(struct spoolsync *sp, const char *from, const char *to)
{
	const struct st_rec	*r = state_get(sp->st, from);
	struct stat		 st;

	return r != NULL && !r->deleted && r->type == MF_DIR &&
	    sync_lstat(sp, to, &st) == 0 && S_ISDIR(st.st_mode) &&
	    r->ino == (uint64_t)st.st_ino && r->dev == (uint64_t)st.st_dev;
}

static void
sync_move_dir(struct spoolsync *sp, const char *from, const char *to)
{
	struct st_rec	**v, *tr, *r;
	struct stat	  st;
	size_t		  n, i, flen = strlen(from), live = 0, nto = 0, ngone = 0;
	char		**tos, **froms, **gone, *q;
	int		  hinted = 0;

	n = state_collect(sp->st, from, &v);
	for (i = 0; i < n; i++)
		live += !v[i]->deleted;
	tos = xcalloc(n + 1, sizeof(*tos));
	gone = xcalloc(n + 1, sizeof(*gone));
	froms = xcalloc(n + 1, sizeof(*froms));
	for (i = 0; i < n; i++)
		froms[i] = xstrdup(v[i]->path);
	free(v);
	if (live > 0 && !exclude_match(sp->ex, to) &&
	    sync_dir_moved_here(sp, from, to)) {
		sync_enqueue_move_all(sp, from, to, 1, NULL);
		hinted = 1;
	}
	qsort(froms, n, sizeof(*froms), sync_cmp_path);
	for (i = 0; i < n; i++) {
		r = state_get(sp->st, froms[i]);
		if (r == NULL || r->deleted)
			continue;
		xasprintf(&q, "%s%s", to, froms[i] + flen);
		if (sync_lstat(sp, q, &st) == 0 && sync_moved_same(r, &st) &&
		    !exclude_match(sp->ex, q)) {
			tr = state_lookup_or_new(sp->st, q);
			r = state_get(sp->st, froms[i]);
			sync_carry(sp, tr, r, &st);
			tos[nto++] = q;
		} else if (hinted) {
			/* The hint takes it there on the peer, but it is not
			 * here (moved on, deleted): its delete must follow,
			 * whether or not we know the peer has it (what was in
			 * flight beneath FROM moves there too). */
			tr = state_lookup_or_new(sp->st, q);
			r = state_get(sp->st, froms[i]);
			sync_carry_gone(sp, tr, r);
			gone[ngone++] = q;
		} else
			free(q);
	}
	/* Children first: a directory is empty when its delete arrives. */
	for (i = ngone; i-- > 0;) {
		sync_enqueue_all(sp, gone[i]);
		free(gone[i]);
	}
	free(gone);
	for (i = n; i-- > 0;) {
		r = state_get(sp->st, froms[i]);
		if (r != NULL && !r->deleted) {
			r->deleted = 1;
			r->deleted_ns = sp_now_real_ns();
			sync_bump(sp, r);
			sync_save(sp, r);
			sync_enqueue_all(sp, froms[i]);
		}
		free(froms[i]);
	}
	free(froms);
	for (i = 0; i < nto; i++) {
		sync_enqueue_all(sp, tos[i]);
		free(tos[i]);
	}
	free(tos);
	/* What we had no record of, and the directory itself if new. */
	sync_check_and_enqueue(sp, to);
	if (!exclude_match(sp->ex, to))
		sync_check_tree(sp, to, 0);
}

static int
sync_live_dir(const struct st_rec *r)
{
	return r != NULL && !r->deleted && r->type == MF_DIR;
}

/*
 * A directory goes out before what it holds.  Its entry can pop after its
 * files' (a chmod coalesced into its MKDIR makes it due later), and a file
 * that reaches a peer first has the peer make the directory with guessed
 * attributes, on another thread than the directory's own MKDIR: the guess
 * may land last.  So PATH's ancestors with no live record (nearly always
 * none: one lookup, the parent's) are looked at first, top down.
 */
static void
sync_check_parents(struct spoolsync *sp, const char *path)
{
	char	 dir[PATH_REL_MAX + 1], *s;
	size_t	 len = strlen(path), live = 0;

	if (len > PATH_REL_MAX)
		return;
	memcpy(dir, path, len + 1);
	while ((s = strrchr(dir, '/')) != NULL) {
		*s = '\0';
		if (sync_live_dir(state_get(sp->st, dir))) {
			live = (size_t)(s - dir) + 1;
			break;
		}
	}
	memcpy(dir, path, len + 1);
	for (s = strchr(dir + live, '/'); s != NULL; s = strchr(s + 1, '/')) {
		*s = '\0';
		sync_check_and_enqueue(sp, dir);
		*s = '/';
	}
}

static void
sync_handle_entry(struct spoolsync *sp, struct queue_entry *e)
{
	if (e->kind == QUEUE_MOVE) {
		if (e->is_dir)
			sync_move_dir(sp, e->from, e->path);
		else
			sync_move_file(sp, e->from, e->path);
		return;
	}
	if (e->kind != QUEUE_DELETE)
		sync_check_parents(sp, e->path);
	sync_check_and_enqueue(sp, e->path);
}

static void
sync_qkick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spoolsync	*sp = arg;

	queue_kick(sp->q);
}

void
sync_queue_cb(struct queue *q, void *arg)
{
	struct spoolsync	*sp = arg;
	struct queue_entry	*e;
	struct timeval		 tv = { 0, 0 };
	int			 n = 0;

	state_begin(sp->st);	/* one transaction for the turn's records */
	while ((e = queue_pop(q)) != NULL) {
		sync_handle_entry(sp, e);
		queue_entry_free(e);
		if (++n == SYNC_POP_MAX)
			break;		/* let the links run */
	}
	state_commit(sp->st);
	/*
	 * Entries may have fallen due meanwhile (the commit takes a while):
	 * the queue calls again only once kicked, so a kick is owed whenever
	 * any are left.
	 */
	if (queue_pending(q) > 0) {
		if (sp->ev_qkick == NULL)
			sp->ev_qkick = evtimer_new(sp->base, sync_qkick_cb, sp);
		evtimer_add(sp->ev_qkick, &tv);
	}
}

void
sync_watch_cb(const struct watch_event *ev, void *arg)
{
	struct spoolsync	*sp = arg;

	switch (ev->type) {
	case WATCH_OVERFLOW:
		sp->overflows++;
		log_warnx("watch: %s: comparing the whole tree", ev->msg);
		ae_rescan(sp);
		for (size_t i = 0; i < sp->npeers; i++)
			ae_start(&sp->peers[i], 0, "inotify overflow");
		return;
	case WATCH_ERROR:
		sp_error(sp, NULL, "watch: %s", ev->msg);
		return;
	default:
		queue_add_event(sp->q, ev);
		return;
	}
}
