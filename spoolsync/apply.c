/*
 * apply.c: changes to the replica, crash-safe and confined to the root.  A
 * file is built in a temp file beside its target (named, or nameless where
 * the file system allows) and put in place only when complete and durable,
 * so a reader never sees a torn file.
 */
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spoolsync.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2	452	/* the same number on every architecture */
#endif

#define APPLY_TMP_TRIES		100
#define APPLY_NEW_DIR_MODE	0700	/* made private, then like its parent */
#define APPLY_COPY_BUF		(256 * 1024)
#define APPLY_MAX_DEPTH		(PATH_REL_MAX / 2 + 1)

static enum apply_step	apply_fail_step;
static int		apply_fail_errno;

/* How a nameless temp file gets its name here: AT_EMPTY_PATH needs a
 * privilege (or a kernel >= 6.10); /proc/self/fd works for anybody. */
#define APPLY_LINK_UNTRIED	0
#define APPLY_LINK_EMPTY_PATH	1
#define APPLY_LINK_PROC		2
static atomic_int	apply_link_way;

void
apply_fail_at(enum apply_step step, int errnum)
{
	apply_fail_step = step;
	apply_fail_errno = errnum;
}

/* A fault a test asked for at STEP: errno is set as the real call would. */
static int
apply_injected(enum apply_step step)
{
	if (apply_fail_step != step || step == APPLY_STEP_NONE)
		return 0;
	apply_fail_step = APPLY_STEP_NONE;
	errno = apply_fail_errno;
	return 1;
}

static int
apply_err(char *err, size_t errlen, const char *path, const char *doing, int e)
{
	if (e == ENOSPC || e == EDQUOT)
		snprintf(err, errlen, "%s: %s: %s (the replica's file system is "
		    "full; free space and it converges)", path, doing, strerror(e));
	else
		snprintf(err, errlen, "%s: %s: %s", path, doing, strerror(e));
	errno = e;
	return -1;
}

static void
apply_tmp_name(char *out, size_t len)
{
	static const char	 set[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	static unsigned		 counter;
	unsigned char		 r[8];
	char			 s[sizeof(r) + 1];
	struct timespec		 ts;

	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)((unsigned long)ts.tv_nsec >> i ^
			    (unsigned long)getpid() >> i ^ counter++ * 131u);
	}
	for (size_t i = 0; i < sizeof(r); i++)
		s[i] = set[r[i] % (sizeof(set) - 1)];
	s[sizeof(r)] = '\0';
	snprintf(out, len, "%s%s", SPOOLSYNC_TMP_PREFIX, s);
}

/*
 * Owner first: chown clears set-id bits, so the mode comes after it.  HAVE
 * (the file's stat, or NULL) spares a chown or chmod that would change
 * nothing: each is a journal handle.  A wanted set-id bit is always set
 * (a chown before it may have cleared it).
 */
static int
apply_fd_meta(int fd, const struct apply_meta *m, const struct stat *have,
    const char *path, char *err, size_t errlen)
{
	struct timespec	ts[2];
	int		same_owner, same_mode;

	if (m == NULL)
		return 0;
	same_owner = have != NULL && have->st_uid == m->uid &&
	    have->st_gid == m->gid;
	same_mode = have != NULL && (m->mode & 06000) == 0 &&
	    (have->st_mode & 07777) == (m->mode & 07777);
	if ((m->set & APPLY_OWNER) && (apply_injected(APPLY_STEP_OWNER) ||
	    (!same_owner && fchown(fd, m->uid, m->gid) == -1)))
		return apply_err(err, errlen, path, "setting the owner", errno);
	if ((m->set & APPLY_MODE) && (apply_injected(APPLY_STEP_MODE) ||
	    (!same_mode && fchmod(fd, m->mode & 07777) == -1)))
		return apply_err(err, errlen, path, "setting the mode", errno);
	if (m->set & APPLY_MTIME) {
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1].tv_sec = (time_t)(m->mtime_ns / 1000000000LL);
		ts[1].tv_nsec = (long)(m->mtime_ns % 1000000000LL);
		if (ts[1].tv_nsec < 0) {
			ts[1].tv_sec--;
			ts[1].tv_nsec += 1000000000L;
		}
		if (apply_injected(APPLY_STEP_MTIME) || futimens(fd, ts) == -1)
			return apply_err(err, errlen, path, "setting the mtime", errno);
	}
	return 0;
}

/* The temp file's attributes, sparing what it has already. */
static int
apply_tmp_meta(struct apply_tmp *t, const struct apply_meta *m, char *err,
    size_t errlen)
{
	struct stat	st;

	if (m == NULL)
		return 0;
	return apply_fd_meta(t->fd, m, fstat(t->fd, &st) == 0 ? &st : NULL,
	    t->path, err, errlen);
}

static void
apply_tmp_close(struct apply_tmp *t)
{
	if (t->fd != -1)
		close(t->fd);
	if (t->dirfd != -1 && !t->dirfd_borrowed)
		close(t->dirfd);
	free(t->path);
	t->fd = t->dirfd = -1;
	t->path = NULL;
	t->leaf = NULL;
	t->anon = 0;
}

void
apply_tmp_abort(struct apply_tmp *t)
{
	if (t->dirfd != -1 && t->name[0] != '\0')
		unlinkat(t->dirfd, t->name, 0);
	t->name[0] = '\0';
	apply_tmp_close(t);
}

/* The temp file itself, in T->dirfd (open already). */
static int
apply_tmp_create(struct apply_tmp *t, const char *path, const char *leaf,
    char *err, size_t errlen)
{
	int	tries;

	t->path = xstrdup(path);
	t->leaf = t->path + (leaf - path);
	for (tries = 0; tries < APPLY_TMP_TRIES; tries++) {
		apply_tmp_name(t->name, sizeof(t->name));
		t->fd = openat(t->dirfd, t->name, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (t->fd != -1)
			return 0;
		if (errno != EEXIST)
			break;
	}
	apply_err(err, errlen, path, "creating a temp file", errno);
	t->name[0] = '\0';
	apply_tmp_close(t);
	return -1;
}

/*
 * A directory made because a file came before its MKDIR takes the owner and
 * the permission bits of the directory it is made in (PFD): the Jabber
 * server can use it at once (0700 would lock a server running as another
 * user out of it until the MKDIR came), and it is never wider than what
 * already holds it.  The frame of the file carries no attributes of its
 * directory, so the parent is the best witness; the MKDIR sets the exact
 * ones.  Bits that would go to a group or owner other than the parent's
 * are dropped, and an unprivileged owner keeps rwx (it writes in there).
 * On any failure the directory stays 0700: private, never too wide.
 */
static void
apply_dir_like_parent(int pfd, int fd)
{
	struct stat	ps, st;
	mode_t		mode;
	uid_t		me = geteuid();

	if (fstat(pfd, &ps) == -1 || fstat(fd, &st) == -1)
		return;
	if ((st.st_uid != ps.st_uid || st.st_gid != ps.st_gid) &&
	    fchown(fd, ps.st_uid, ps.st_gid) == 0 && fstat(fd, &st) == -1)
		return;
	mode = ps.st_mode & 03777;	/* set-uid means nothing here */
	if (st.st_gid != ps.st_gid)
		mode &= ~(mode_t)02070;	/* not for a group the parent never named */
	if (st.st_uid != ps.st_uid)
		mode &= ~(mode_t)0700;
	if (me != 0 && st.st_uid == me)
		mode |= 0700;
	(void)fchmod(fd, mode);
}

/* One component beneath FD, made (and made durable) if it is missing. */
static int
apply_dir_step(int fd, const char *name)
{
	int	nfd, tries;

	for (tries = 0; tries < 2; tries++) {
		nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (nfd != -1 || errno != ENOENT)
			return nfd;
		if (mkdirat(fd, name, APPLY_NEW_DIR_MODE) == -1) {
			if (errno != EEXIST)
				return -1;
			continue;	/* made meanwhile: use it as it is */
		}
		nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (nfd == -1)
			return -1;
		apply_dir_like_parent(fd, nfd);
		(void)fsync(fd);
		return nfd;
	}
	return -1;
}

/*
 * PATH's parent beneath ROOTFD; missing directories are made on the way,
 * one component at a time, never through a symlink (path.c has refused
 * PATH already if it is invalid or crosses one that exists).
 */
static int
apply_parent_make(int rootfd, const char *path, const char **leaf, char *err,
    size_t errlen)
{
	char		 name[PATH_NAME_MAX + 1];
	const char	*p = path, *slash;
	size_t		 n;
	int		 fd, nfd, e;

	fd = path_open_parent(rootfd, path, 0, 0, leaf, err, errlen);
	if (fd != -1 || errno != ENOENT)
		return fd;
	if ((fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return apply_err(err, errlen, path, "opening the root", errno);
	while ((slash = strchr(p, '/')) != NULL) {
		n = (size_t)(slash - p);
		if (n > PATH_NAME_MAX)
			n = PATH_NAME_MAX;	/* path_valid refused it already */
		memcpy(name, p, n);
		name[n] = '\0';
		nfd = apply_dir_step(fd, name);
		e = errno;
		close(fd);
		if (nfd == -1)
			return apply_err(err, errlen, path, "making its directory", e);
		fd = nfd;
		p = slash + 1;
	}
	*leaf = p;
	return fd;
}

int
apply_tmp_open(int rootfd, const char *path, int create_dirs, struct apply_tmp *t,
    char *err, size_t errlen)
{
	const char	*leaf;

	memset(t, 0, sizeof(*t));
	t->fd = t->dirfd = -1;
	t->dirfd = create_dirs ? apply_parent_make(rootfd, path, &leaf, err,
	    errlen) : path_open_parent(rootfd, path, 0, 0, &leaf, err, errlen);
	if (t->dirfd == -1)
		return -1;
	return apply_tmp_create(t, path, leaf, err, errlen);
}

int
apply_tmp_open_in(int dirfd, const char *path, struct apply_tmp *t, char *err,
    size_t errlen)
{
	const char	*slash;

	memset(t, 0, sizeof(*t));
	t->fd = t->dirfd = -1;
	if (path_valid(path, err, errlen) == -1) {
		errno = EINVAL;
		return -1;
	}
	t->dirfd = dirfd;
	t->dirfd_borrowed = 1;
	slash = strrchr(path, '/');
	return apply_tmp_create(t, path, slash == NULL ? path : slash + 1, err,
	    errlen);
}

/* What a nameless temp file is made with: the wanted permission bits (no
 * one can open it by a name before it is placed), set-id bits after the
 * chown that would clear them. */
static mode_t
apply_anon_mode(const struct apply_meta *m)
{
	if (m == NULL || !(m->set & APPLY_MODE) || (m->mode & 07000) != 0)
		return 0600;
	return (mode_t)(m->mode & 0777);
}

int
apply_tmp_open_anon(int dirfd, const char *path, const struct apply_meta *m,
    struct apply_tmp *t, char *err, size_t errlen)
{
	struct stat	 st;
	const char	*slash;
	int		 e;

	memset(t, 0, sizeof(*t));
	t->fd = t->dirfd = -1;
	if (path_valid(path, err, errlen) == -1) {
		errno = EINVAL;
		return -1;
	}
	if (!apply_injected(APPLY_STEP_TMPFILE))
		t->fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC,
		    apply_anon_mode(m));
	if (t->fd == -1) {
		e = errno;
		/* Refused by this file system (or kernel): a named one. */
		if (e == EOPNOTSUPP || e == EISDIR || e == EINVAL || e == ENOSYS)
			return apply_tmp_open_in(dirfd, path, t, err, errlen);
		/* A directory removed meanwhile says EPERM here: ENOENT, as
		 * O_CREAT says, has the caller walk afresh. */
		if (fstat(dirfd, &st) == 0 && st.st_nlink == 0)
			e = ENOENT;
		return apply_err(err, errlen, path, "creating a temp file", e);
	}
	t->dirfd = dirfd;
	t->dirfd_borrowed = 1;
	t->anon = 1;
	t->path = xstrdup(path);
	slash = strrchr(t->path, '/');
	t->leaf = slash == NULL ? t->path : slash + 1;
	return 0;
}

int
apply_parent_open(int rootfd, const char *path, char *err, size_t errlen)
{
	const char	*leaf;

	return apply_parent_make(rootfd, path, &leaf, err, errlen);
}

int
apply_tmp_write(struct apply_tmp *t, const void *data, size_t len, char *err,
    size_t errlen)
{
	const char	*p = data;
	ssize_t		 n;

	while (len > 0) {
		if ((n = write(t->fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return apply_err(err, errlen, t->path, "writing", errno);
		}
		p += n;
		len -= (size_t)n;
		t->written += (uint64_t)n;
	}
	return 0;
}

/* The portable way, for when copy_file_range cannot cross these two fds. */
static int
apply_copy_rw(struct apply_tmp *t, int srcfd, off_t off, uint64_t left, char *err,
    size_t errlen)
{
	char	*b = xmalloc(APPLY_COPY_BUF);
	ssize_t	 n;
	int	 rv = -1;

	while (left > 0) {
		n = pread(srcfd, b, left < APPLY_COPY_BUF ? left : APPLY_COPY_BUF, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			apply_err(err, errlen, t->path, "reading the old file", errno);
			goto fail;
		}
		if (n == 0) {
			snprintf(err, errlen, "%s: the old file is shorter than "
			    "expected", t->path);
			goto fail;
		}
		if (apply_tmp_write(t, b, (size_t)n, err, errlen) == -1)
			goto fail;
		off += n;
		left -= (uint64_t)n;
	}
	rv = 0;
fail:
	free(b);
	return rv;
}

int
apply_tmp_copy(struct apply_tmp *t, int srcfd, uint64_t len, char *err,
    size_t errlen)
{
	off_t	off = 0;
	ssize_t	n;

	while (len > 0) {
		n = copy_file_range(srcfd, &off, t->fd, NULL,
		    len < (1u << 30) ? (size_t)len : (1u << 30), 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EXDEV || errno == ENOSYS ||
		    errno == EINVAL || errno == EOPNOTSUPP))
			return apply_copy_rw(t, srcfd, off, len, err, errlen);
		if (n == -1)
			return apply_err(err, errlen, t->path, "copying the old file",
			    errno);
		if (n == 0) {
			snprintf(err, errlen, "%s: the old file is shorter than "
			    "expected", t->path);
			return -1;
		}
		len -= (uint64_t)n;
		t->written += (uint64_t)n;
	}
	return 0;
}

/* What now lies at the target: the record of this apply (its echo). */
static void
apply_tmp_placed(struct apply_tmp *t)
{
	if (t->anon && t->fd != -1)
		t->placed_ok = fstat(t->fd, &t->placed) == 0;
	else
		t->placed_ok = fstatat(t->dirfd, t->leaf, &t->placed,
		    AT_SYMLINK_NOFOLLOW) == 0;
}

/* Without an explicit mode, a replaced file keeps the mode it had. */
static void
apply_keep_mode(struct apply_tmp *t, const struct apply_meta *m)
{
	struct stat	st;

	if (m != NULL && (m->set & APPLY_MODE))
		return;
	if (fstatat(t->dirfd, t->leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode))
		(void)fchmod(t->fd, st.st_mode & 07777);
}

/* The nameless temp file linked as NAME in its directory. */
static int
apply_anon_link(struct apply_tmp *t, const char *name)
{
	char	proc[48];
	int	way = atomic_load(&apply_link_way);

	if (way != APPLY_LINK_PROC) {
		if (linkat(t->fd, "", t->dirfd, name, AT_EMPTY_PATH) == 0) {
			if (way == APPLY_LINK_UNTRIED)
				atomic_store(&apply_link_way, APPLY_LINK_EMPTY_PATH);
			return 0;
		}
		if (way == APPLY_LINK_EMPTY_PATH || (errno != ENOENT &&
		    errno != EPERM && errno != EINVAL))
			return -1;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", t->fd);
	if (linkat(AT_FDCWD, proc, t->dirfd, name, AT_SYMLINK_FOLLOW) == -1)
		return -1;
	if (way == APPLY_LINK_UNTRIED)
		atomic_store(&apply_link_way, APPLY_LINK_PROC);
	return 0;
}

/*
 * The nameless temp file gets the target's name: one directory entry
 * added where nothing is in the way (the initial sync), else it is linked
 * under a temp name and renamed over what is there, atomically, as a named
 * temp file would be.
 */
static int
apply_anon_place(struct apply_tmp *t)
{
	int	tries;

	if (apply_anon_link(t, t->leaf) == 0)
		return 0;
	if (errno != EEXIST)
		return -1;
	for (tries = 0; tries < APPLY_TMP_TRIES; tries++) {
		apply_tmp_name(t->name, sizeof(t->name));
		if (apply_anon_link(t, t->name) == 0)
			break;
		if (errno != EEXIST || tries + 1 == APPLY_TMP_TRIES) {
			t->name[0] = '\0';
			return -1;
		}
	}
	if (renameat(t->dirfd, t->name, t->dirfd, t->leaf) == -1)
		return -1;
	t->name[0] = '\0';
	return 0;
}

/* The temp file under the target's name; on failure errno says why. */
static int
apply_tmp_place(struct apply_tmp *t)
{
	if (apply_injected(APPLY_STEP_RENAME))
		return -1;
	if (t->anon)
		return apply_anon_place(t);
	if (renameat(t->dirfd, t->name, t->dirfd, t->leaf) == -1)
		return -1;
	t->name[0] = '\0';
	return 0;
}

/* A named temp file is closed before it is placed (a late write error
 * shows there); a nameless one must stay open until it has its name. */
static int
apply_tmp_close_named(struct apply_tmp *t, char *err, size_t errlen)
{
	int	fd = t->fd;

	if (t->anon)
		return 0;
	t->fd = -1;
	if (close(fd) == -1)
		return apply_err(err, errlen, t->path, "closing", errno);
	return 0;
}

int
apply_tmp_commit(struct apply_tmp *t, const struct apply_meta *m, char *err,
    size_t errlen)
{
	int	e;

	apply_keep_mode(t, m);
	if (apply_tmp_meta(t, m, err, errlen) == -1)
		goto fail;
	if (apply_injected(APPLY_STEP_FSYNC) || fsync(t->fd) == -1) {
		apply_err(err, errlen, t->path, "fsync", errno);
		goto fail;
	}
	if (apply_tmp_close_named(t, err, errlen) == -1)
		goto fail;
	if (apply_tmp_place(t) == -1) {
		apply_err(err, errlen, t->path, "renaming into place", errno);
		goto fail;
	}
	apply_tmp_placed(t);
	if (fsync(t->dirfd) == -1) {
		apply_err(err, errlen, t->path, "fsync of its directory", errno);
		apply_tmp_close(t);
		return -1;
	}
	apply_tmp_close(t);
	return 0;
fail:
	e = errno;
	apply_tmp_abort(t);
	errno = e;
	return -1;
}

/*
 * A group commit in two halves (spoolsync's receiver): seal every file (no
 * fsync), make them all durable at once (syncfs), place each, syncfs again.
 * A file is still never visible before its bytes are durable.
 */
int
apply_tmp_seal(struct apply_tmp *t, const struct apply_meta *m, char *err,
    size_t errlen)
{
	int	e;

	apply_keep_mode(t, m);
	if (apply_tmp_meta(t, m, err, errlen) == -1 ||
	    apply_tmp_close_named(t, err, errlen) == -1) {
		e = errno;
		apply_tmp_abort(t);
		errno = e;
		return -1;
	}
	return 0;
}

int
apply_tmp_rename(struct apply_tmp *t, char *err, size_t errlen)
{
	int	e;

	if (apply_tmp_place(t) == -1) {
		e = errno;	/* EISDIR: a directory in the way (the caller's) */
		apply_err(err, errlen, t->path, "renaming into place", e);
		apply_tmp_abort(t);
		errno = e;
		return -1;
	}
	apply_tmp_placed(t);
	apply_tmp_close(t);
	return 0;
}

int
apply_file(int rootfd, const char *path, const void *data, size_t len,
    const struct apply_meta *m, char *err, size_t errlen)
{
	struct apply_tmp	t;

	if (apply_tmp_open(rootfd, path, 1, &t, err, errlen) == -1)
		return -1;
	if (apply_tmp_write(&t, data, len, err, errlen) == -1) {
		apply_tmp_abort(&t);
		return -1;
	}
	return apply_tmp_commit(&t, m, err, errlen);
}

int
apply_open_basis(int rootfd, const char *path, char *err, size_t errlen)
{
	struct stat	st;
	int		fd;

	if ((fd = path_open(rootfd, path, O_RDONLY | O_NONBLOCK, 0, err,
	    errlen)) == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

int
apply_mkdir(int rootfd, const char *path, const struct apply_meta *m, char *err,
    size_t errlen)
{
	struct apply_meta	 dm = { APPLY_MODE, 0755, 0, 0, 0 };
	const char		*leaf;
	int			 dfd, fd = -1, rv = -1;

	if (m != NULL)
		dm = *m;
	if (!(dm.set & APPLY_MODE)) {
		dm.set |= APPLY_MODE;
		dm.mode = 0755;
	}
	if ((dfd = apply_parent_make(rootfd, path, &leaf, err, errlen)) == -1)
		return -1;
	if (mkdirat(dfd, leaf, APPLY_NEW_DIR_MODE) == -1 && errno != EEXIST) {
		apply_err(err, errlen, path, "mkdir", errno);
		goto fail;
	}
	fd = openat(dfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		apply_err(err, errlen, path, errno == ENOTDIR || errno == ELOOP ?
		    "exists and is not a directory" : "opening", errno);
		goto fail;
	}
	if (apply_fd_meta(fd, &dm, NULL, path, err, errlen) == -1)
		goto fail;
	if (fsync(fd) == -1 || fsync(dfd) == -1) {
		apply_err(err, errlen, path, "fsync", errno);
		goto fail;
	}
	rv = 0;
fail:
	if (fd != -1)
		close(fd);
	close(dfd);
	return rv;
}

static int
apply_link_meta(int dfd, const char *name, const struct apply_meta *m,
    const char *path, char *err, size_t errlen)
{
	struct timespec	ts[2];

	if (m == NULL)
		return 0;
	if ((m->set & APPLY_OWNER) &&
	    fchownat(dfd, name, m->uid, m->gid, AT_SYMLINK_NOFOLLOW) == -1)
		return apply_err(err, errlen, path, "setting the owner", errno);
	if (m->set & APPLY_MTIME) {
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1].tv_sec = (time_t)(m->mtime_ns / 1000000000LL);
		ts[1].tv_nsec = (long)(m->mtime_ns % 1000000000LL);
		if (ts[1].tv_nsec < 0) {
			ts[1].tv_sec--;
			ts[1].tv_nsec += 1000000000L;
		}
		if (utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW) == -1)
			return apply_err(err, errlen, path, "setting the mtime",
			    errno);
	}
	return 0;
}

int
apply_symlink(int rootfd, const char *path, const char *target,
    const struct apply_meta *m, char *err, size_t errlen)
{
	char		 name[32];
	const char	*leaf;
	size_t		 tlen = strnlen(target, PATH_MAX);
	int		 dfd, tries, rv = -1;

	if (tlen == 0 || tlen >= PATH_MAX) {
		snprintf(err, errlen, "%s: symlink target empty or too long", path);
		errno = EINVAL;
		return -1;
	}
	if ((dfd = apply_parent_make(rootfd, path, &leaf, err, errlen)) == -1)
		return -1;
	for (tries = 0; tries < APPLY_TMP_TRIES; tries++) {
		apply_tmp_name(name, sizeof(name));
		if (symlinkat(target, dfd, name) == 0)
			break;
		if (errno != EEXIST || tries + 1 == APPLY_TMP_TRIES) {
			apply_err(err, errlen, path, "creating the symlink", errno);
			close(dfd);
			return -1;
		}
	}
	if (apply_link_meta(dfd, name, m, path, err, errlen) == -1)
		goto fail;
	if (renameat(dfd, name, dfd, leaf) == -1) {
		apply_err(err, errlen, path, "renaming into place", errno);
		goto fail;
	}
	if (fsync(dfd) == -1)
		apply_err(err, errlen, path, "fsync of its directory", errno);
	else
		rv = 0;
	close(dfd);
	return rv;
fail:
	unlinkat(dfd, name, 0);
	close(dfd);
	return -1;
}

static int	apply_rm_tree(int fd, const char *path, int depth, char *err,
		    size_t errlen);

/* Removes NAME in DFD whatever it is; a directory and all it holds. */
static int
apply_rm_entry(int dfd, const char *name, const char *path, int depth, char *err,
    size_t errlen)
{
	int	sub;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR)
		return apply_err(err, errlen, path, "unlink", errno);
	sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub == -1)
		return apply_err(err, errlen, path, "opening", errno);
	if (apply_rm_tree(sub, path, depth + 1, err, errlen) == -1)
		return -1;
	if (unlinkat(dfd, name, AT_REMOVEDIR) == -1 && errno != ENOENT)
		return apply_err(err, errlen, path, "rmdir", errno);
	return 0;
}

/* Takes FD.  Names are read first: deleting while reading may skip some. */
static int
apply_rm_tree(int fd, const char *path, int depth, char *err, size_t errlen)
{
	DIR		 *d;
	struct dirent	 *de;
	char		**names = NULL;
	size_t		  n = 0, cap = 0, i;
	int		  rv = 0;

	if (depth > APPLY_MAX_DEPTH) {
		close(fd);
		snprintf(err, errlen, "%s: too deep to delete", path);
		return -1;
	}
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return apply_err(err, errlen, path, "reading", errno);
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			names = xreallocarray(names, cap, sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	for (i = 0; i < n; i++) {
		if (rv == 0)
			rv = apply_rm_entry(dirfd(d), names[i], path, depth, err,
			    errlen);
		free(names[i]);
	}
	free(names);
	closedir(d);
	return rv;
}

int
apply_delete(int rootfd, const char *path, int recursive, char *err,
    size_t errlen)
{
	const char	*leaf;
	int		 dfd, rv = -1, sub;

	if ((dfd = path_open_parent(rootfd, path, 0, 0, &leaf, err, errlen)) == -1)
		return errno == ENOENT ? 0 : -1;
	if (unlinkat(dfd, leaf, 0) == -1) {
		if (errno == ENOENT)
			goto done;
		if (errno != EISDIR) {
			apply_err(err, errlen, path, "unlink", errno);
			goto fail;
		}
		if (recursive) {
			sub = openat(dfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			    O_CLOEXEC);
			if (sub == -1) {
				apply_err(err, errlen, path, "opening", errno);
				goto fail;
			}
			if (apply_rm_tree(sub, path, 0, err, errlen) == -1)
				goto fail;
		}
		if (unlinkat(dfd, leaf, AT_REMOVEDIR) == -1 && errno != ENOENT) {
			apply_err(err, errlen, path, "rmdir", errno);
			goto fail;
		}
	}
done:
	if (fsync(dfd) == -1) {
		apply_err(err, errlen, path, "fsync of its directory", errno);
		goto fail;
	}
	rv = 0;
fail:
	close(dfd);
	return rv;
}

int
apply_rename(int rootfd, const char *from, const char *to, char *err,
    size_t errlen)
{
	const char	*sleaf, *dleaf;
	struct stat	 a, b;
	int		 sfd, dfd = -1, rv = -1;

	if ((sfd = path_open_parent(rootfd, from, 0, 0, &sleaf, err, errlen)) == -1)
		return -1;
	if ((dfd = apply_parent_make(rootfd, to, &dleaf, err, errlen)) == -1)
		goto fail;
	if (renameat(sfd, sleaf, dfd, dleaf) == -1) {
		snprintf(err, errlen, "rename %s to %s: %s", from, to,
		    strerror(errno));
		goto fail;
	}
	if (fsync(dfd) == -1 || (fstat(sfd, &a) == 0 && fstat(dfd, &b) == 0 &&
	    (a.st_ino != b.st_ino || a.st_dev != b.st_dev) && fsync(sfd) == -1)) {
		apply_err(err, errlen, to, "fsync of its directory", errno);
		goto fail;
	}
	rv = 0;
fail:
	if (dfd != -1)
		close(dfd);
	close(sfd);
	return rv;
}

/* chmod of LEAF itself, never through a symlink put there meanwhile. */
static int
apply_chmod_at(int dfd, const char *leaf, mode_t mode)
{
	int	fd, rv;

	if (syscall(SYS_fchmodat2, dfd, leaf, mode, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (errno != ENOSYS && errno != EINVAL)
		return -1;
	fd = openat(dfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return -1;
	rv = fchmod(fd, mode);
	close(fd);
	return rv;
}

/* Makes a metadata change durable: the inode itself, or for a link its directory. */
static int
apply_sync_inode(int dfd, const char *leaf, const struct stat *st)
{
	int	fd, rv;

	if (S_ISLNK(st->st_mode))
		return fsync(dfd);
	fd = openat(dfd, leaf, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return fsync(dfd);	/* unreadable to us: the journal at least */
	rv = fsync(fd);
	close(fd);
	return rv;
}

int
apply_set_meta(int rootfd, const char *path, const struct apply_meta *m,
    char *err, size_t errlen)
{
	struct stat	 st;
	const char	*leaf;
	int		 dfd, rv = -1;

	if ((dfd = path_open_parent(rootfd, path, 0, 0, &leaf, err, errlen)) == -1)
		return -1;
	if (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		apply_err(err, errlen, path, "stat", errno);
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
		snprintf(err, errlen, "%s: not a file, directory or symlink", path);
		goto fail;
	}
	if ((m->set & APPLY_OWNER) &&
	    fchownat(dfd, leaf, m->uid, m->gid, AT_SYMLINK_NOFOLLOW) == -1) {
		apply_err(err, errlen, path, "setting the owner", errno);
		goto fail;
	}
	if ((m->set & APPLY_MODE) && !S_ISLNK(st.st_mode) &&
	    apply_chmod_at(dfd, leaf, m->mode & 07777) == -1) {
		apply_err(err, errlen, path, "setting the mode", errno);
		goto fail;
	}
	if (m->set & APPLY_MTIME) {
		struct apply_meta	tm = { APPLY_MTIME, 0, 0, 0, m->mtime_ns };

		if (apply_link_meta(dfd, leaf, &tm, path, err, errlen) == -1)
			goto fail;
	}
	if (apply_sync_inode(dfd, leaf, &st) == -1) {
		apply_err(err, errlen, path, "fsync", errno);
		goto fail;
	}
	rv = 0;
fail:
	close(dfd);
	return rv;
}
