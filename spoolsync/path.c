/*
 * path.c: every path a peer sends is checked here, and every file spoolsync
 * touches is opened beneath the root without following a symlink anywhere.
 */
#include <sys/stat.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "spoolsync.h"

/* Cleared for good the first time the kernel (or a seccomp filter) refuses it. */
static atomic_int	path_openat2_on = 1;

void
path_use_openat2(int on)
{
	atomic_store(&path_openat2_on, on);
}

void
path_quote(const char *p, size_t len, char *out, size_t outlen)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 o = 0, i;

	if (outlen == 0)
		return;
	for (i = 0; i < len && o + 8 < outlen; i++) {
		unsigned char	c = (unsigned char)p[i];

		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
			out[o++] = (char)c;
			continue;
		}
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	if (i < len && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static int
path_bad(const char *p, size_t len, char *err, size_t errlen, const char *why)
{
	char	q[96];

	path_quote(p, len, q, sizeof(q));
	snprintf(err, errlen, "invalid path \"%s\": %s", q, why);
	return -1;
}

/* One component, P[0..N), not containing '/'. */
static int
path_check_name(const char *path, size_t len, const char *p, size_t n,
    char *err, size_t errlen)
{
	char	why[64];

	if (n == 0)
		return path_bad(path, len, err, errlen, "empty component (\"//\")");
	if (n == 1 && p[0] == '.')
		return path_bad(path, len, err, errlen, "\".\" component");
	if (n == 2 && p[0] == '.' && p[1] == '.')
		return path_bad(path, len, err, errlen, "\"..\" component");
	if (n > PATH_NAME_MAX) {
		snprintf(why, sizeof(why), "a component of %zu bytes (at most %d)",
		    n, PATH_NAME_MAX);
		return path_bad(path, len, err, errlen, why);
	}
	return 0;
}

int
path_validn(const char *path, size_t len, char *err, size_t errlen)
{
	const char	*p, *end, *slash;
	char		 why[64];

	if (path == NULL || len == 0) {
		snprintf(err, errlen, "invalid path: empty");
		return -1;
	}
	if (len > PATH_REL_MAX) {
		snprintf(why, sizeof(why), "%zu bytes long (at most %d)", len,
		    PATH_REL_MAX);
		return path_bad(path, len, err, errlen, why);
	}
	if (memchr(path, '\0', len) != NULL)
		return path_bad(path, len, err, errlen, "contains a NUL byte");
	if (path[0] == '/')
		return path_bad(path, len, err, errlen,
		    "absolute (must be relative to the root)");
	if (path[len - 1] == '/')
		return path_bad(path, len, err, errlen, "trailing slash");
	end = path + len;
	for (p = path; p < end; p = slash + 1) {
		if ((slash = memchr(p, '/', (size_t)(end - p))) == NULL)
			slash = end;
		if (path_check_name(path, len, p, (size_t)(slash - p), err,
		    errlen) == -1)
			return -1;
	}
	return 0;
}

int
path_valid(const char *path, char *err, size_t errlen)
{
	if (path == NULL) {
		snprintf(err, errlen, "invalid path: empty");
		return -1;
	}
	return path_validn(path, strnlen(path, PATH_REL_MAX + 1), err, errlen);
}

static int
path_openat2(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how	how;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC);
	if (flags & (O_CREAT | O_TMPFILE))
		how.mode = mode;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* openat2 is missing (old kernel) or filtered: never try it again. */
static int
path_openat2_unusable(int e)
{
	return e == ENOSYS || e == EPERM || e == E2BIG;
}

/*
 * Why opening PATH beneath ROOTFD failed with E: name the component that is
 * a symlink or not a directory, so that an operator sees what is in the way.
 */
static void
path_explain(int rootfd, const char *path, int e, char *err, size_t errlen)
{
	char		 prefix[PATH_REL_MAX + 1], q[96];
	struct stat	 st;
	size_t		 len = strlen(path), n;
	const char	*slash;

	for (n = 0; n < len; n = (size_t)(slash - path) + 1) {
		slash = memchr(path + n, '/', len - n);
		if (slash == NULL)
			slash = path + len;
		memcpy(prefix, path, (size_t)(slash - path));
		prefix[slash - path] = '\0';
		if (fstatat(rootfd, prefix, &st, AT_SYMLINK_NOFOLLOW) == -1)
			break;
		path_quote(prefix, strlen(prefix), q, sizeof(q));
		if (S_ISLNK(st.st_mode)) {
			snprintf(err, errlen, "%s: is a symbolic link: refusing to "
			    "follow it", q);
			return;
		}
		if (*slash == '/' && !S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "%s: not a directory", q);
			return;
		}
	}
	path_quote(path, len, q, sizeof(q));
	if (e == EXDEV)
		snprintf(err, errlen, "%s: resolves outside the root", q);
	else
		snprintf(err, errlen, "%s: %s", q, strerror(e));
}

static int
path_fail(int rootfd, const char *path, int e, char *err, size_t errlen)
{
	path_explain(rootfd, path, e, err, errlen);
	errno = e;
	return -1;
}

/* Opens one directory component beneath FD, making it first if asked. */
static int
path_step(int fd, const char *name, int create, mode_t dirmode)
{
	int	nfd, tries;

	for (tries = 0; tries < 2; tries++) {
		nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (nfd != -1 || errno != ENOENT || !create)
			return nfd;
		if (mkdirat(fd, name, dirmode) == -1 && errno != EEXIST)
			return -1;
	}
	return nfd;
}

/* Walks DIRPATH (a valid relative path) one component at a time. */
static int
path_walk(int rootfd, const char *dirpath, int create, mode_t dirmode)
{
	char		 name[PATH_NAME_MAX + 1];
	const char	*p = dirpath, *slash;
	int		 fd, nfd, e;
	size_t		 n;

	if ((fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	while (*p != '\0') {
		if ((slash = strchr(p, '/')) == NULL)
			slash = p + strlen(p);
		n = (size_t)(slash - p);
		memcpy(name, p, n);
		name[n] = '\0';
		nfd = path_step(fd, name, create, dirmode);
		e = errno;
		close(fd);
		if (nfd == -1) {
			errno = e;
			return -1;
		}
		fd = nfd;
		p = *slash == '/' ? slash + 1 : slash;
	}
	return fd;
}

static int
path_open_dirpath(int rootfd, const char *dirpath, int create, mode_t dirmode)
{
	int	fd;

	if (dirpath[0] == '\0')
		return openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (atomic_load(&path_openat2_on)) {
		fd = path_openat2(rootfd, dirpath, O_RDONLY | O_DIRECTORY, 0);
		if (fd != -1)
			return fd;
		if (path_openat2_unusable(errno))
			atomic_store(&path_openat2_on, 0);
		else if (errno != ENOENT || !create)
			return -1;
	}
	return path_walk(rootfd, dirpath, create, dirmode);
}

int
path_open_parent(int rootfd, const char *path, int create_dirs, mode_t dirmode,
    const char **leaf, char *err, size_t errlen)
{
	char		 dirpath[PATH_REL_MAX + 1];
	const char	*slash;
	size_t		 n;
	int		 fd;

	if (path_valid(path, err, errlen) == -1) {
		errno = EINVAL;
		return -1;
	}
	slash = strrchr(path, '/');
	n = slash == NULL ? 0 : (size_t)(slash - path);
	memcpy(dirpath, path, n);
	dirpath[n] = '\0';
	*leaf = slash == NULL ? path : slash + 1;
	if ((fd = path_open_dirpath(rootfd, dirpath, create_dirs, dirmode)) == -1)
		return path_fail(rootfd, path, errno, err, errlen);
	return fd;
}

int
path_open(int rootfd, const char *path, int flags, mode_t mode, char *err,
    size_t errlen)
{
	const char	*leaf;
	int		 dfd, fd, e;

	if (path_valid(path, err, errlen) == -1) {
		errno = EINVAL;
		return -1;
	}
	if (atomic_load(&path_openat2_on)) {
		if ((fd = path_openat2(rootfd, path, flags, mode)) != -1)
			return fd;
		if (path_openat2_unusable(errno))
			atomic_store(&path_openat2_on, 0);
		else
			return path_fail(rootfd, path, errno, err, errlen);
	}
	if ((dfd = path_open_parent(rootfd, path, 0, 0, &leaf, err, errlen)) == -1)
		return -1;
	fd = openat(dfd, leaf, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	e = errno;
	close(dfd);
	if (fd == -1)
		return path_fail(rootfd, path, e, err, errlen);
	return fd;
}

int
path_open_dir(int rootfd, const char *path, char *err, size_t errlen)
{
	int	fd;

	if (path != NULL && path[0] != '\0')
		return path_open(rootfd, path, O_RDONLY | O_DIRECTORY, 0, err,
		    errlen);
	if ((fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		snprintf(err, errlen, "root: %s", strerror(errno));
	return fd;
}
