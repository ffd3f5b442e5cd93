/*
 * watch.c: the spool's changes as events on the libevent loop.  The inotify
 * side runs on one watcher thread; events cross to the loop in order.
 */
#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <inotifytools/inotify.h>
#include <inotifytools/inotifytools.h>

#include "spoolsync.h"
#include "dirmap.h"

/*
 * How this uses libinotifytools (3.22.6), and why not more of it:
 * - It owns the inotify fd and reads and buffers the events (static
 *   buffers: only the watcher thread ever calls it).
 * - Its fd is private, but it is the one inotify fd that appears in
 *   /proc/self/fd when it initialises.  Knowing it, the watcher polls it
 *   together with a control eventfd, so stop and pause act at once instead
 *   of after next_event's whole-second timeout.
 * - Its wd -> filename bookkeeping is not trusted: it keeps a watch's name
 *   after IN_IGNORED, so a directory deleted and made again maps to the old
 *   wd (upstream #1, #221), and replace_filename deletes from the tree it
 *   walks (#59, #130).  So watches are added and removed on its fd with
 *   inotify_add_watch(2)/inotify_rm_watch(2), and the wd -> path map
 *   (dirmap.c) is the only truth.
 */

#define WATCH_MASK	(IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_CREATE | \
			 IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | \
			 IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)
/* A rename queues MOVED_FROM and MOVED_TO in one syscall: a MOVED_TO not
 * there after this long means the file left the tree. */
#define WATCH_PAIR_GRACE_NS	(10 * 1000000ULL)
#define WATCH_FAILED_MAX	1024	/* remembered ENOENT watch failures */
#define WATCH_MSG_MAX		512

#ifndef SPOOLSYNC_TMP_PREFIX
#define SPOOLSYNC_TMP_PREFIX	".spoolsync."
#endif

/* One event on its way to the loop; the strings follow it. */
struct wnode {
	struct wnode		*next;
	struct watch_event	 ev;
	char			 data[];
};

struct watch {
	/* Set by watch_start, read-only afterwards. */
	struct event_base	*base;
	char			*root;		/* realpath(3): no trailing '/' */
	int			(*excluded)(const char *, int, void *);
	void			*excluded_arg;
	size_t			 queue_max;
	void			(*cb)(const struct watch_event *, void *);
	void			*arg;
	pthread_t		 thread;
	int			 thread_ok;
	int			 wake_fd;	/* watcher -> loop */
	int			 ctl_fd;	/* loop -> watcher: stop, pause */
	struct event		*ev_wake;

	/* Shared: under mu. */
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct wnode		*head, *tail;
	size_t			 qn;
	int			 notified;	/* wake_fd written since the last take */
	int			 ovf;		/* a WATCH_OVERFLOW is owed */
	char			 ovf_msg[WATCH_MSG_MAX];
	int			 setup;		/* 1 ready, -1 failed */
	char			 setup_err[WATCH_MSG_MAX];
	int			 stop;
	int			 pause_req, paused;
	struct watch_stats	 st;

	/* The loop's. */
	uint64_t		 delivered;
	int			 dispatching;
	int			 stopped;	/* watch_stop ran inside a callback */

	/* The watcher thread's. */
	int			 ifd;		/* libinotifytools' inotify fd */
	struct dirmap		 dirs;
	uint64_t		 gen;
	struct {
		int		 on;
		uint32_t	 cookie;
		char		*rel;
		int		 is_dir;
		int		 skip;		/* excluded or a temp file */
		int		 temp;
		uint64_t	 since_ns;
	}			 from;		/* a MOVED_FROM awaiting its MOVED_TO */
	char			*failed[WATCH_FAILED_MAX];
	size_t			 nfailed;
	uint64_t		 read_err_ns;
};

static atomic_int watch_active;

static void	 watch_tree(struct watch *, const char *, int, unsigned);

static uint64_t
watch_now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

const char *
watch_type_name(enum watch_type t)
{
	switch (t) {
	case WATCH_CHANGED:	return "changed";
	case WATCH_ATTRIB:	return "attrib";
	case WATCH_DELETED:	return "deleted";
	case WATCH_MOVED:	return "moved";
	case WATCH_MKDIR:	return "mkdir";
	case WATCH_OVERFLOW:	return "overflow";
	case WATCH_ERROR:	return "error";
	}
	return "?";
}

/* Relative paths. */

static char *
rel_join(const char *dir, const char *name)
{
	char	*s;

	if (dir[0] == '\0')
		return xstrdup(name);
	xasprintf(&s, "%s/%s", dir, name);
	return s;
}

static const char *
rel_base(const char *rel)
{
	const char	*p = strrchr(rel, '/');

	return p == NULL ? rel : p + 1;
}

/*
 * spoolsync's own temp files: named ones (SPOOLSYNC_TMP_PREFIX), and the
 * nameless ones a receiver writes (O_TMPFILE, apply.c), whose writes and
 * attribute changes the kernel reports under "#<inode number>".  Those are
 * never in the directory: a real file of such a name is left to the
 * anti-entropy scan, which does not skip it (exclude_is_temp).
 */
static int
rel_is_temp(const char *rel)
{
	const char	*b = rel_base(rel);
	size_t		 i;

	if (b[0] == '#') {
		for (i = 1; b[i] >= '0' && b[i] <= '9'; i++)
			;
		if (i > 1 && i <= 21 && b[i] == '\0')
			return 1;
	}
	return strncmp(b, SPOOLSYNC_TMP_PREFIX,
	    sizeof(SPOOLSYNC_TMP_PREFIX) - 1) == 0;
}

static char *
watch_abs(const struct watch *w, const char *rel)
{
	char	*s;

	if (rel[0] == '\0')
		return xstrdup(w->root);
	xasprintf(&s, "%s/%s", w->root, rel);
	return s;
}

/* The watcher's side of the hand-over to the loop. */

/* eventfd: add one; a full counter (EAGAIN) is rung already. */
static void
fd_ring(int fd)
{
	uint64_t	one = 1;
	ssize_t		r;

	r = write(fd, &one, sizeof(one));
	(void)r;
}

static void
fd_drain(int fd)
{
	uint64_t	v;
	ssize_t		r;

	r = read(fd, &v, sizeof(v));
	(void)r;
}

static void
watch_wake(struct watch *w, int wake)
{
	if (wake)
		fd_ring(w->wake_fd);
}

static void
watch_push(struct watch *w, enum watch_type type, const char *rel,
    const char *from, int is_dir, unsigned flags, const char *msg)
{
	struct wnode	*n, *t;
	size_t		 rl = strlen(rel) + 1, fl = from ? strlen(from) + 1 : 0;
	size_t		 ml = msg ? strlen(msg) + 1 : 0;
	int		 wake;

	pthread_mutex_lock(&w->mu);
	t = w->tail;
	/* A file written in many small writes: one event while the loop is busy. */
	if (t != NULL && t->ev.type == type && t->ev.is_dir == is_dir &&
	    (type == WATCH_CHANGED || type == WATCH_ATTRIB) &&
	    strcmp(t->ev.relpath, rel) == 0) {
		pthread_mutex_unlock(&w->mu);
		return;
	}
	if (w->qn >= w->queue_max) {
		w->st.dropped++;
		if (!w->ovf) {
			w->st.overflows++;
			w->ovf = 1;
			snprintf(w->ovf_msg, sizeof(w->ovf_msg), "%zu events "
			    "waited for the event loop (the limit)", w->qn);
		}
		pthread_mutex_unlock(&w->mu);
		return;
	}
	pthread_mutex_unlock(&w->mu);

	n = xmalloc(sizeof(*n) + rl + fl + ml);
	n->next = NULL;
	n->ev.type = type;
	n->ev.is_dir = is_dir;
	n->ev.flags = flags;
	n->ev.mono_ns = watch_now_ns();
	memcpy(n->data, rel, rl);
	n->ev.relpath = n->data;
	n->ev.from = from ? memcpy(n->data + rl, from, fl) : NULL;
	n->ev.msg = msg ? memcpy(n->data + rl + fl, msg, ml) : NULL;

	pthread_mutex_lock(&w->mu);
	w->st.dirs = w->dirs.n;		/* as of this event */
	if (w->tail != NULL)
		w->tail->next = n;
	else
		w->head = n;
	w->tail = n;
	w->qn++;
	wake = !w->notified;
	w->notified = 1;
	pthread_mutex_unlock(&w->mu);
	watch_wake(w, wake);
}

static void PRINTFLIKE(2, 3)
watch_error(struct watch *w, const char *fmt, ...)
{
	char	msg[WATCH_MSG_MAX];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	watch_push(w, WATCH_ERROR, "", NULL, 0, 0, msg);
}

/* Owed after whatever is queued now; many overflows before the loop looks
 * make one event, with the first reason. */
static void PRINTFLIKE(2, 3)
watch_overflow(struct watch *w, const char *fmt, ...)
{
	va_list	ap;
	int	wake;

	pthread_mutex_lock(&w->mu);
	if (!w->ovf) {
		w->st.overflows++;
		w->ovf = 1;
		va_start(ap, fmt);
		vsnprintf(w->ovf_msg, sizeof(w->ovf_msg), fmt, ap);
		va_end(ap);
	}
	wake = !w->notified;
	w->notified = 1;
	pthread_mutex_unlock(&w->mu);
	watch_wake(w, wake);
}

static long
watch_sysctl(const char *name)
{
	char	path[128];
	FILE	*f;
	long	v = -1;

	snprintf(path, sizeof(path), "/proc/sys/fs/inotify/%s", name);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* What to leave alone: 1 excluded, 2 spoolsync's own temp file. */
static int
watch_skip(const struct watch *w, const char *rel, int is_dir)
{
	if (rel_is_temp(rel))
		return 2;
	if (w->excluded != NULL && w->excluded(rel, is_dir, w->excluded_arg))
		return 1;
	return 0;
}

/* Watching directories. */

static void
watch_failed_add(struct watch *w, const char *rel)
{
	if (w->nfailed == WATCH_FAILED_MAX) {
		free(w->failed[0]);
		memmove(w->failed, w->failed + 1,
		    (WATCH_FAILED_MAX - 1) * sizeof(*w->failed));
		w->nfailed--;
	}
	w->failed[w->nfailed++] = xstrdup(rel);
}

static void
watch_failed_clear(struct watch *w)
{
	for (size_t i = 0; i < w->nfailed; i++)
		free(w->failed[i]);
	w->nfailed = 0;
}

static void
watch_add_failed(struct watch *w, const char *rel, int e)
{
	switch (e) {
	case ENOENT:
		/* Gone already, or renamed before we got to it: a MOVED for
		 * it (or its parent) retries it under the new name. */
		watch_failed_add(w, rel);
		break;
	case ENOTDIR:
	case ELOOP:
		break;		/* replaced by a file: its own events follow */
	case ENOSPC:
		pthread_mutex_lock(&w->mu);
		w->st.limit_failures++;
		pthread_mutex_unlock(&w->mu);
		watch_overflow(w, "inotify watch limit reached "
		    "(fs.inotify.max_user_watches = %ld): \"%s\" is not watched; "
		    "raise the limit", watch_sysctl("max_user_watches"), rel);
		break;
	default:
		watch_error(w, "cannot watch \"%s\": %s", rel, strerror(e));
		break;
	}
}

/* 0 when REL is watched (and in the map), -1 and *ERRP otherwise. */
static int
watch_add(struct watch *w, const char *rel, int *errp)
{
	char		*abs;
	int		 wd;
	struct wdir	*d;

	if (strlen(rel) > PATH_REL_MAX) {
		*errp = ENAMETOOLONG;
		return -1;
	}
	abs = watch_abs(w, rel);
	wd = inotify_add_watch(w->ifd, abs, WATCH_MASK);
	*errp = errno;
	free(abs);
	if (wd == -1)
		return -1;
	d = dirmap_put(&w->dirs, wd, rel);
	d->gen = w->gen;
	return 0;
}

/* Stops watching REL and everything beneath it. */
static void
watch_unwatch(struct watch *w, const char *rel)
{
	struct wdir	**v;
	size_t		  n;

	n = dirmap_match(&w->dirs, rel, &v);
	for (size_t i = 0; i < n; i++) {
		/* EINVAL when the kernel dropped it already: fine. */
		(void)inotify_rm_watch(w->ifd, v[i]->wd);
		dirmap_del(&w->dirs, v[i]);
	}
	free(v);
}

static int
watch_stopping(struct watch *w)
{
	int	stop;

	pthread_mutex_lock(&w->mu);
	stop = w->stop;
	pthread_mutex_unlock(&w->mu);
	return stop;
}

struct dent {
	char	*name;
	int	 is_dir;
};

/* The entries of directory REL, read at once so no fd stays open while we
 * recurse.  NULL when it cannot be read (gone: not an error). */
static struct dent *
watch_list(struct watch *w, const char *rel, size_t *np)
{
	char		*abs = watch_abs(w, rel);
	struct dent	*v = NULL;
	struct dirent	*de;
	struct stat	 st;
	DIR		*dir;
	int		 fd;
	size_t		 n = 0;

	fd = open(abs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
			watch_error(w, "cannot read \"%s\": %s", abs,
			    strerror(errno));
		if (fd != -1)
			close(fd);
		free(abs);
		return NULL;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n].name = xstrdup(de->d_name);
		if (de->d_type != DT_UNKNOWN)
			v[n].is_dir = de->d_type == DT_DIR;
		else
			v[n].is_dir = fstatat(fd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
		n++;
	}
	closedir(dir);
	free(abs);
	*np = n;
	return v;
}

/* Watches (SCAN: and reports) what directory REL holds. */
static void
watch_readdir(struct watch *w, const char *rel, int scan)
{
	struct dent	*v;
	size_t		 n = 0;
	char		*child;

	if ((v = watch_list(w, rel, &n)) == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		if (!v[i].is_dir && !scan)
			goto next;
		child = rel_join(rel, v[i].name);
		if (strlen(child) > PATH_REL_MAX)
			watch_error(w, "\"%s...\": path longer than %d bytes",
			    rel, PATH_REL_MAX);
		else if (watch_skip(w, child, v[i].is_dir))
			;
		else if (v[i].is_dir)
			watch_tree(w, child, scan, WATCH_F_SCAN);
		else
			watch_push(w, WATCH_CHANGED, child, NULL, 0,
			    WATCH_F_SCAN, NULL);
		free(child);
next:
		free(v[i].name);
	}
	free(v);
}

/*
 * Watches directory REL and every directory beneath it, each before it is
 * read, so nothing made meanwhile goes unseen.  With SCAN, the directory and
 * all it holds are reported: inotify has no events for what was created
 * before the watch existed (upstream #142, #224).  Duplicates are harmless.
 */
static void
watch_tree(struct watch *w, const char *rel, int scan, unsigned flags)
{
	int	e;

	if (watch_stopping(w))
		return;		/* a big tree must not hold up watch_stop() */
	if (watch_add(w, rel, &e) == -1) {
		watch_add_failed(w, rel, e);
		return;
	}
	if (scan)
		watch_push(w, WATCH_MKDIR, rel, NULL, 1, flags, NULL);
	watch_readdir(w, rel, scan);
}

/*
 * After IN_Q_OVERFLOW nothing in the map can be trusted: directories made,
 * moved or removed meanwhile went unseen.  Walk it all again (re-adding a
 * watch returns its wd) and drop what the walk did not meet.
 */
static void
watch_rewalk(struct watch *w)
{
	struct wdir	**v;
	size_t		  n;

	w->gen++;
	watch_failed_clear(w);
	watch_tree(w, "", 0, 0);
	n = dirmap_match(&w->dirs, "", &v);
	for (size_t i = 0; i < n; i++) {
		if (v[i]->gen == w->gen)
			continue;
		(void)inotify_rm_watch(w->ifd, v[i]->wd);
		dirmap_del(&w->dirs, v[i]);
	}
	free(v);
}

/* Directories under FROM whose watch failed (ENOENT) may now be under TO. */
static void
watch_retry_failed(struct watch *w, const char *from, const char *to)
{
	size_t	 i = 0, flen = strlen(from);
	char	*rel, *old;

	while (i < w->nfailed) {
		if (!dirmap_under(w->failed[i], from)) {
			i++;
			continue;
		}
		old = w->failed[i];
		memmove(w->failed + i, w->failed + i + 1,
		    (w->nfailed - i - 1) * sizeof(*w->failed));
		w->nfailed--;
		xasprintf(&rel, "%s%s", to, old + flen);
		if (dirmap_by_rel(&w->dirs, rel) == NULL &&
		    !watch_skip(w, rel, 1))
			watch_tree(w, rel, 1, WATCH_F_SCAN);
		free(rel);
		free(old);
	}
}

/* What the events mean. */

static void
watch_created(struct watch *w, const char *rel, int is_dir, unsigned flags)
{
	if (watch_skip(w, rel, is_dir))
		return;
	if (!is_dir)
		watch_push(w, WATCH_CHANGED, rel, NULL, 0, flags, NULL);
	else if (dirmap_by_rel(&w->dirs, rel) != NULL)
		watch_push(w, WATCH_MKDIR, rel, NULL, 1, flags, NULL);
	else
		watch_tree(w, rel, 1, flags);
}

/* REL is gone; MOVED_OUT: with its subtree, still alive elsewhere. */
static void
watch_deleted(struct watch *w, const char *rel, int is_dir, int moved_out)
{
	struct wdir	*d;

	if (is_dir && moved_out)
		watch_unwatch(w, rel);
	else if (is_dir && (d = dirmap_by_rel(&w->dirs, rel)) != NULL) {
		/* rmdir: it was empty, its subdirectories went before it. */
		(void)inotify_rm_watch(w->ifd, d->wd);
		dirmap_del(&w->dirs, d);
	}
	watch_push(w, WATCH_DELETED, rel, NULL, is_dir, 0, NULL);
}

static void
watch_moved_dir(struct watch *w, const char *from, const char *to)
{
	int	known = dirmap_by_rel(&w->dirs, from) != NULL;

	/* A directory renamed over an empty one replaced it. */
	watch_unwatch(w, to);
	dirmap_rename(&w->dirs, from, to);
	watch_push(w, WATCH_MOVED, to, from, 1, 0, NULL);
	if (known)
		watch_retry_failed(w, from, to);
	else
		watch_tree(w, to, 1, WATCH_F_SCAN);	/* never watched: now */
}

static void
watch_from_hold(struct watch *w, char *rel, int is_dir, uint32_t cookie)
{
	w->from.on = 1;
	w->from.cookie = cookie;
	w->from.rel = rel;
	w->from.is_dir = is_dir;
	w->from.skip = watch_skip(w, rel, is_dir) != 0;
	w->from.temp = rel_is_temp(rel);
	w->from.since_ns = watch_now_ns();
}

/* The MOVED_FROM never found its MOVED_TO: it left the tree. */
static void
watch_from_flush(struct watch *w)
{
	if (!w->from.on)
		return;
	w->from.on = 0;
	if (!w->from.skip)
		watch_deleted(w, w->from.rel, w->from.is_dir, 1);
	free(w->from.rel);
	w->from.rel = NULL;
}

/* TO is the MOVED_TO of the held MOVED_FROM. */
static void
watch_moved(struct watch *w, const char *to, int is_dir)
{
	char	*from = w->from.rel;
	int	 from_skip = w->from.skip, from_temp = w->from.temp, to_skip;

	w->from.on = 0;
	w->from.rel = NULL;
	to_skip = watch_skip(w, to, is_dir) != 0;
	if (from_skip && !to_skip)	/* e.g. Prosody's x.dat~ -> x.dat */
		watch_created(w, to, is_dir, from_temp ? WATCH_F_FROM_TEMP : 0);
	else if (!from_skip && to_skip)
		watch_deleted(w, from, is_dir, 1);
	else if (!from_skip && is_dir)
		watch_moved_dir(w, from, to);
	else if (!from_skip)
		watch_push(w, WATCH_MOVED, to, from, 0, 0, NULL);
	free(from);
}

/* An event about a watched directory itself: only the root's matter, the
 * parent reports the others. */
static void
watch_self(struct watch *w, const struct wdir *d, uint32_t mask)
{
	if (d->rel[0] != '\0')
		return;
	if (mask & IN_ATTRIB)
		watch_push(w, WATCH_ATTRIB, "", NULL, 1, 0, NULL);
	else if (mask & IN_DELETE_SELF)
		watch_error(w, "the root %s was deleted", w->root);
	else if (mask & IN_MOVE_SELF)
		watch_error(w, "the root %s was moved away", w->root);
	else if (mask & IN_UNMOUNT)
		watch_error(w, "the file system of %s was unmounted", w->root);
}

static void
watch_ignored(struct watch *w, int wd)
{
	struct wdir	*d;

	if ((d = dirmap_by_wd(&w->dirs, wd)) == NULL)
		return;
	if (d->rel[0] == '\0')
		watch_error(w, "the root %s is no longer watched", w->root);
	dirmap_del(&w->dirs, d);
}

static void
watch_named(struct watch *w, const struct wdir *d, const struct inotify_event *ie)
{
	int	 is_dir = (ie->mask & IN_ISDIR) != 0;
	char	*rel = rel_join(d->rel, ie->name);

	if (strlen(rel) > PATH_REL_MAX) {
		watch_error(w, "\"%s/...\": path longer than %d bytes", d->rel,
		    PATH_REL_MAX);
		free(rel);
		return;
	}
	if (ie->mask & IN_MOVED_FROM) {
		watch_from_hold(w, rel, is_dir, ie->cookie);
		return;
	}
	if (ie->mask & IN_MOVED_TO) {
		if (w->from.on)
			watch_moved(w, rel, is_dir);
		else
			watch_created(w, rel, is_dir, 0);
	} else if (ie->mask & IN_CREATE)
		watch_created(w, rel, is_dir, 0);
	else if (watch_skip(w, rel, is_dir))
		;
	else if (ie->mask & IN_DELETE)
		watch_deleted(w, rel, is_dir, 0);
	else if ((ie->mask & (IN_MODIFY | IN_CLOSE_WRITE)) && !is_dir)
		watch_push(w, WATCH_CHANGED, rel, NULL, 0, 0, NULL);
	else if (ie->mask & IN_ATTRIB)
		watch_push(w, WATCH_ATTRIB, rel, NULL, is_dir, 0, NULL);
	free(rel);
}

static void
watch_handle(struct watch *w, const struct inotify_event *ie)
{
	struct wdir	*d;

	/* Anything but its MOVED_TO ends a held MOVED_FROM, first: events from
	 * inside a directory that just left must find it unwatched. */
	if (w->from.on && !((ie->mask & IN_MOVED_TO) &&
	    ie->cookie == w->from.cookie))
		watch_from_flush(w);
	if (ie->mask & IN_Q_OVERFLOW) {
		watch_rewalk(w);
		watch_overflow(w, "the kernel's inotify queue overflowed "
		    "(fs.inotify.max_queued_events = %ld)",
		    watch_sysctl("max_queued_events"));
	} else if (ie->mask & IN_IGNORED)
		watch_ignored(w, ie->wd);
	else if ((d = dirmap_by_wd(&w->dirs, ie->wd)) == NULL)
		;	/* a watch we dropped already */
	else if (ie->len == 0 || ie->name[0] == '\0')
		watch_self(w, d, ie->mask);
	else
		watch_named(w, d, ie);

	pthread_mutex_lock(&w->mu);
	w->st.events++;
	w->st.dirs = w->dirs.n;
	pthread_mutex_unlock(&w->mu);
}

/* The watcher thread. */

/* The process's inotify fds; *N of them. */
static int *
watch_inotify_fds(size_t *np)
{
	char		 link[64];
	struct dirent	*de;
	DIR		*dir;
	int		*v = NULL;
	size_t		 n = 0;
	ssize_t		 len;

	*np = 0;
	if ((dir = opendir("/proc/self/fd")) == NULL)
		return NULL;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		len = readlinkat(dirfd(dir), de->d_name, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (strcmp(link, "anon_inode:inotify") != 0)
			continue;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n++] = atoi(de->d_name);
	}
	closedir(dir);
	*np = n;
	return v;
}

/* inotifytools_initialize() and the one inotify fd it opened. */
static int
watch_init_inotify(struct watch *w, char *err, size_t errlen)
{
	int	*before, *after, fd = -1, found = 0, known;
	size_t	 nb, na;

	before = watch_inotify_fds(&nb);
	if (!inotifytools_initialize()) {
		snprintf(err, errlen, "inotify_init: %s",
		    strerror(inotifytools_error()));
		free(before);
		return -1;
	}
	after = watch_inotify_fds(&na);
	for (size_t i = 0; i < na; i++) {
		known = 0;
		for (size_t j = 0; j < nb; j++)
			known |= after[i] == before[j];
		if (!known) {
			fd = after[i];
			found++;
		}
	}
	free(before);
	free(after);
	if (found != 1) {
		snprintf(err, errlen, "cannot find libinotifytools' inotify fd "
		    "in /proc/self/fd (%d candidates): is /proc mounted?", found);
		inotifytools_cleanup();
		return -1;
	}
	if (fd >= FD_SETSIZE) {		/* it select(2)s on it */
		snprintf(err, errlen, "libinotifytools' inotify fd %d is above "
		    "FD_SETSIZE: start the watch before opening many files", fd);
		inotifytools_cleanup();
		return -1;
	}
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	w->ifd = fd;
	/* Its read buffer is static and survives inotifytools_cleanup(): a
	 * previous instance's unread events would come out first, with wds
	 * that mean other directories now.  No watch exists yet, so this ends. */
	while (inotifytools_next_events(0, 1) != NULL)
		;
	return 0;
}

static int
watch_setup(struct watch *w, char *err, size_t errlen)
{
	int	e;

	if (watch_init_inotify(w, err, errlen) == -1)
		return -1;
	dirmap_init(&w->dirs);
	w->gen = 1;
	if (watch_add(w, "", &e) == -1) {
		snprintf(err, errlen, "cannot watch %s: %s", w->root,
		    e == ENOSPC ? "inotify watch limit reached "
		    "(fs.inotify.max_user_watches)" : strerror(e));
		dirmap_free(&w->dirs);
		inotifytools_cleanup();
		return -1;
	}
	watch_readdir(w, "", 0);
	pthread_mutex_lock(&w->mu);
	w->st.dirs = w->dirs.n;
	pthread_mutex_unlock(&w->mu);
	return 0;
}

/* Stop and pause requests; -1 when stopping. */
static int
watch_control(struct watch *w)
{
	int	stop;

	pthread_mutex_lock(&w->mu);
	if (w->pause_req && !w->stop) {
		w->paused = 1;
		pthread_cond_broadcast(&w->cv);
		while (w->pause_req && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		w->paused = 0;
	}
	stop = w->stop;
	pthread_mutex_unlock(&w->mu);
	return stop ? -1 : 0;
}

static void
watch_read_failed(struct watch *w, int e)
{
	uint64_t	now = watch_now_ns();

	/* At most one report a second; the poll below paces the retries. */
	if (now - w->read_err_ns >= 1000000000ULL || w->read_err_ns == 0) {
		w->read_err_ns = now;
		watch_error(w, "reading inotify events: %s", strerror(e));
	}
}

/* The next event: buffered, ready, or within TIMEOUT_MS (-1: until one comes
 * or the control fd rings).  NULL on timeout or a control request. */
static struct inotify_event *
watch_next(struct watch *w, int timeout_ms)
{
	struct inotify_event	*ie;
	struct pollfd		 pfd[2];
	int			 e;

	/* Timeout 0 polls; inotifytools_next_event(0) would block. */
	if ((ie = inotifytools_next_events(0, 1)) != NULL)
		return ie;
	if ((e = inotifytools_error()) != 0 && e != EINTR) {
		watch_read_failed(w, e);
		timeout_ms = 1000;
	}
	pfd[0].fd = w->ifd;
	pfd[0].events = POLLIN;
	pfd[1].fd = w->ctl_fd;
	pfd[1].events = POLLIN;
	if (poll(pfd, 2, timeout_ms) <= 0)
		return NULL;
	if (pfd[1].revents & POLLIN)
		fd_drain(w->ctl_fd);
	if (pfd[0].revents & POLLIN)
		return inotifytools_next_events(0, 1);
	return NULL;
}

static void
watch_run(struct watch *w)
{
	struct inotify_event	*ie;
	uint64_t		 waited;
	int			 timeout;

	while (watch_control(w) == 0) {
		timeout = -1;
		if (w->from.on) {
			waited = watch_now_ns() - w->from.since_ns;
			if (waited >= WATCH_PAIR_GRACE_NS) {
				watch_from_flush(w);
				continue;
			}
			timeout = (int)((WATCH_PAIR_GRACE_NS - waited) /
			    1000000) + 1;
		}
		if ((ie = watch_next(w, timeout)) != NULL)
			watch_handle(w, ie);
	}
}

static void *
watch_main(void *arg)
{
	struct watch	*w = arg;
	char		 err[WATCH_MSG_MAX];
	int		 rc;

	rc = watch_setup(w, err, sizeof(err));
	pthread_mutex_lock(&w->mu);
	w->setup = rc == 0 ? 1 : -1;
	if (rc == -1)
		snprintf(w->setup_err, sizeof(w->setup_err), "%s", err);
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	if (rc == -1)
		return NULL;

	watch_run(w);

	free(w->from.rel);
	w->from.rel = NULL;
	watch_failed_clear(w);
	dirmap_free(&w->dirs);
	inotifytools_cleanup();
	return NULL;
}

/* The loop's side. */

static void
watch_free(struct watch *w)
{
	struct wnode	*n;

	while ((n = w->head) != NULL) {
		w->head = n->next;
		free(n);
	}
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->root);
	free(w);
}

static void
watch_deliver(struct watch *w, struct wnode *list, int ovf, const char *msg)
{
	struct watch_event	 ev;
	struct wnode		*n;

	w->dispatching = 1;
	while ((n = list) != NULL) {
		list = n->next;
		if (!w->stopped) {
			w->delivered++;
			w->cb(&n->ev, w->arg);
		}
		free(n);
	}
	if (ovf && !w->stopped) {
		memset(&ev, 0, sizeof(ev));
		ev.type = WATCH_OVERFLOW;
		ev.relpath = "";
		ev.msg = msg;
		ev.mono_ns = watch_now_ns();
		w->delivered++;
		w->cb(&ev, w->arg);
	}
	w->dispatching = 0;
}

static void
watch_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct watch	*w = arg;
	struct wnode	*list;
	char		 msg[WATCH_MSG_MAX];
	int		 ovf;

	fd_drain(fd);
	pthread_mutex_lock(&w->mu);
	list = w->head;
	w->head = w->tail = NULL;
	w->qn = 0;
	w->notified = 0;
	ovf = w->ovf;
	w->ovf = 0;
	memcpy(msg, w->ovf_msg, sizeof(msg));
	pthread_mutex_unlock(&w->mu);

	watch_deliver(w, list, ovf, msg);
	if (w->stopped)
		watch_free(w);
}

static int
watch_spawn(struct watch *w, char *err, size_t errlen)
{
	sigset_t	all, old;
	int		rc;

	/* Signals belong to the loop's thread (evsignal), never this one. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->thread, NULL, watch_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(rc));
		return -1;
	}
	w->thread_ok = 1;
	pthread_mutex_lock(&w->mu);
	while (w->setup == 0)
		pthread_cond_wait(&w->cv, &w->mu);
	rc = w->setup;
	if (rc == -1)
		snprintf(err, errlen, "%s", w->setup_err);
	pthread_mutex_unlock(&w->mu);
	return rc == 1 ? 0 : -1;
}

static void
watch_close(struct watch *w)
{
	if (w->thread_ok)
		pthread_join(w->thread, NULL);
	if (w->ev_wake != NULL)
		event_free(w->ev_wake);
	if (w->wake_fd != -1)
		close(w->wake_fd);
	if (w->ctl_fd != -1)
		close(w->ctl_fd);
	w->ev_wake = NULL;
	w->wake_fd = w->ctl_fd = -1;
	atomic_store(&watch_active, 0);
}

struct watch *
watch_start(struct event_base *base, const char *root,
    const struct watch_opts *opts,
    void (*cb)(const struct watch_event *, void *), void *arg,
    char *err, size_t errlen)
{
	struct watch	*w;
	struct stat	 st;

	if (atomic_exchange(&watch_active, 1)) {
		snprintf(err, errlen, "a watch is running already "
		    "(libinotifytools allows one per process)");
		return NULL;
	}
	w = xcalloc(1, sizeof(*w));
	w->wake_fd = w->ctl_fd = w->ifd = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->base = base;
	w->cb = cb;
	w->arg = arg;
	w->queue_max = WATCH_QUEUE_MAX_DEFAULT;
	if (opts != NULL) {
		w->excluded = opts->excluded;
		w->excluded_arg = opts->excluded_arg;
		if (opts->queue_max != 0)
			w->queue_max = opts->queue_max;
	}
	if ((w->root = realpath(root, NULL)) == NULL) {
		snprintf(err, errlen, "%s: %s", root, strerror(errno));
		goto fail;
	}
	if (stat(w->root, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", root);
		goto fail;
	}
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd == -1 || w->ctl_fd == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	w->ev_wake = event_new(base, w->wake_fd, EV_READ | EV_PERSIST,
	    watch_wake_cb, w);
	if (w->ev_wake == NULL || event_add(w->ev_wake, NULL) == -1) {
		snprintf(err, errlen, "cannot add the watch event to the loop");
		goto fail;
	}
	if (watch_spawn(w, err, errlen) == -1)
		goto fail;
	return w;
fail:
	watch_close(w);
	watch_free(w);
	return NULL;
}

void
watch_stop(struct watch *w)
{
	if (w == NULL || w->stopped)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	fd_ring(w->ctl_fd);
	watch_close(w);
	if (w->dispatching) {
		w->stopped = 1;		/* watch_wake_cb frees it */
		return;
	}
	watch_free(w);
}

void
watch_get_stats(struct watch *w, struct watch_stats *st)
{
	pthread_mutex_lock(&w->mu);
	*st = w->st;
	pthread_mutex_unlock(&w->mu);
	st->delivered = w->delivered;
}

void
watch_test_pause(struct watch *w, int paused)
{
	pthread_mutex_lock(&w->mu);
	w->pause_req = paused;
	pthread_cond_broadcast(&w->cv);
	if (paused) {
		fd_ring(w->ctl_fd);
		while (!w->paused)
			pthread_cond_wait(&w->cv, &w->mu);
	}
	pthread_mutex_unlock(&w->mu);
}
