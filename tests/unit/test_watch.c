/* test_watch.c: real inotify on mkdtemp trees, events on a real libevent
 * loop: nothing missed, nothing extra, moves followed, overflow reported. */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"
#include <event2/event.h>

#include "spoolsync.h"

#define WAIT_MS	5000

struct rec {
	enum watch_type	 type;
	int		 is_dir;
	unsigned	 flags;
	char		*rel;
	char		*from;
	char		*msg;
	uint64_t	 seen_ns;	/* watcher */
	uint64_t	 got_ns;	/* loop */
};

struct ctx {
	struct event_base	*base;
	char			 root[256];
	char			 out[256];	/* outside the tree, same fs */
	struct watch		*w;
	struct rec		*v;
	size_t			 n;
	int			 stop_in_cb;
	int			 markers;
};

static uint64_t
mono_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
rec_cb(const struct watch_event *ev, void *arg)
{
	struct ctx	*c = arg;
	struct rec	*r;

	c->v = realloc(c->v, (c->n + 1) * sizeof(*c->v));
	assert_non_null(c->v);
	r = &c->v[c->n++];
	r->type = ev->type;
	r->is_dir = ev->is_dir;
	r->flags = ev->flags;
	r->rel = strdup(ev->relpath);
	r->from = ev->from ? strdup(ev->from) : NULL;
	r->msg = ev->msg ? strdup(ev->msg) : NULL;
	r->seen_ns = ev->mono_ns;
	r->got_ns = mono_ns();
	if (c->stop_in_cb) {
		watch_stop(c->w);
		c->w = NULL;
		c->stop_in_cb = 0;
	}
}

static int
setup(void **state)
{
	struct ctx	*c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->base = event_base_new();
	snprintf(c->root, sizeof(c->root), "/tmp/test_watch.XXXXXX");
	snprintf(c->out, sizeof(c->out), "/tmp/test_watch_out.XXXXXX");
	assert_non_null(mkdtemp(c->root));
	assert_non_null(mkdtemp(c->out));
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct ctx	*c = *state;

	watch_stop(c->w);
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].rel);
		free(c->v[i].from);
		free(c->v[i].msg);
	}
	free(c->v);
	tu_rmtree(c->root);
	tu_rmtree(c->out);
	event_base_free(c->base);
	free(c);
	return 0;
}

/* Test exclude rules: "*~" names and the directory "skip". */
static int
test_excluded(const char *rel, int is_dir, void *arg)
{
	const char	*base = strrchr(rel, '/');

	base = base ? base + 1 : rel;
	return fnmatch("*~", base, 0) == 0 || strcmp(rel, "skip") == 0 ||
	    strncmp(rel, "skip/", 5) == 0;
}

static void
start(struct ctx *c, size_t queue_max)
{
	struct watch_opts	o = { test_excluded, NULL, queue_max };
	char			err[512];

	c->w = watch_start(c->base, c->root, &o, rec_cb, c, err, sizeof(err));
	if (c->w == NULL)
		fail_msg("watch_start: %s", err);
}

static void
p(struct ctx *c, char *buf, const char *rel)
{
	snprintf(buf, PATH_MAX, "%s/%s", c->root, rel);
}

static void
write_file(const char *path, const char *data, int flags)
{
	int	fd = open(path, O_WRONLY | O_CREAT | flags, 0644);

	if (fd == -1)
		fail_msg("open %s: %s", path, strerror(errno));
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

static void
put(struct ctx *c, const char *rel, const char *data)
{
	char	path[PATH_MAX];

	p(c, path, rel);
	write_file(path, data, O_TRUNC);
}

static void
mk(struct ctx *c, const char *rel)
{
	char	path[PATH_MAX];

	p(c, path, rel);
	if (mkdir(path, 0755) == -1)
		fail_msg("mkdir %s: %s", path, strerror(errno));
}

static void
mv(const char *from, const char *to)
{
	if (rename(from, to) == -1)
		fail_msg("rename %s %s: %s", from, to, strerror(errno));
}

static void
mvr(struct ctx *c, const char *from, const char *to)
{
	char	a[PATH_MAX], b[PATH_MAX];

	p(c, a, from);
	p(c, b, to);
	mv(a, b);
}

/* Index of the first event of TYPE on REL at or after START; -1: none. */
static long
find(struct ctx *c, size_t start, enum watch_type type, const char *rel)
{
	for (size_t i = start; i < c->n; i++)
		if (c->v[i].type == type && strcmp(c->v[i].rel, rel) == 0)
			return (long)i;
	return -1;
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Runs the loop until an event of TYPE on REL arrives at or after START. */
static long
wait_for(struct ctx *c, size_t start, enum watch_type type, const char *rel)
{
	struct timeval	 tv = { WAIT_MS / 1000, 0 };
	struct event	*t;
	int		 expired = 0;
	long		 i;

	t = evtimer_new(c->base, timeout_cb, &expired);
	evtimer_add(t, &tv);
	while ((i = find(c, start, type, rel)) == -1 && !expired)
		event_base_loop(c->base, EVLOOP_ONCE);
	event_free(t);
	if (i == -1)
		fail_msg("no %s event for \"%s\" within %d ms (%zu events)",
		    watch_type_name(type), rel, WAIT_MS, c->n - start);
	return i;
}

/*
 * Events arrive in order: once a marker file written now is reported,
 * everything caused before it has been reported too.  Returns the index
 * just past the marker's event.
 */
static size_t
marker(struct ctx *c)
{
	char	rel[64];

	snprintf(rel, sizeof(rel), "zz.mark.%d", c->markers++);
	put(c, rel, "m");
	return (size_t)wait_for(c, 0, WATCH_CHANGED, rel) + 1;
}

/* Events from START on whose paths contain NEEDLE. */
static int
count_about(struct ctx *c, size_t start, const char *needle)
{
	int	n = 0;

	for (size_t i = start; i < c->n; i++)
		if (strstr(c->v[i].rel, needle) != NULL ||
		    (c->v[i].from && strstr(c->v[i].from, needle) != NULL))
			n++;
	return n;
}

static void
dump(struct ctx *c, size_t start)
{
	for (size_t i = start; i < c->n; i++)
		print_message("  %s %s%s%s%s\n", watch_type_name(c->v[i].type),
		    c->v[i].from ? c->v[i].from : "", c->v[i].from ? " -> " : "",
		    c->v[i].rel, c->v[i].is_dir ? " (dir)" : "");
}

static void
test_files_created_modified_chmodded_deleted_are_reported(void **state)
{
	struct ctx	*c = *state;
	char		 path[PATH_MAX];
	long		 i;

	start(c, 0);
	put(c, "a.dat", "one");
	i = wait_for(c, 0, WATCH_CHANGED, "a.dat");
	assert_int_equal(c->v[i].is_dir, 0);
	p(c, path, "a.dat");
	write_file(path, "more", O_APPEND);
	i = wait_for(c, (size_t)i + 1, WATCH_CHANGED, "a.dat");
	assert_int_equal(chmod(path, 0600), 0);
	i = wait_for(c, (size_t)i + 1, WATCH_ATTRIB, "a.dat");
	assert_int_equal(unlink(path), 0);
	i = wait_for(c, (size_t)i + 1, WATCH_DELETED, "a.dat");
	assert_int_equal(c->v[i].is_dir, 0);
	assert_int_equal(chmod(c->root, 0750), 0);	/* the root itself */
	i = wait_for(c, (size_t)i + 1, WATCH_ATTRIB, "");
	assert_int_equal(c->v[i].is_dir, 1);
}

static void
test_mkdir_p_then_write_reports_the_file_via_the_scan(void **state)
{
	struct ctx	*c = *state;
	char		 rel[64];
	long		 i;

	start(c, 0);
	/* Deterministic: nothing is read until all of it exists, so only the
	 * scan after adding the new directory's watch can find the file. */
	watch_test_pause(c->w, 1);
	mk(c, "a");
	mk(c, "a/b");
	mk(c, "a/b/c");
	put(c, "a/b/c/f", "x");
	watch_test_pause(c->w, 0);
	i = wait_for(c, 0, WATCH_CHANGED, "a/b/c/f");
	assert_true(c->v[i].flags & WATCH_F_SCAN);
	assert_true(find(c, 0, WATCH_MKDIR, "a") >= 0);
	assert_true(find(c, 0, WATCH_MKDIR, "a/b") >= 0);
	assert_true(find(c, 0, WATCH_MKDIR, "a/b/c") >= 0);
	put(c, "a/b/c/g", "y");		/* and it is watched now */
	wait_for(c, 0, WATCH_CHANGED, "a/b/c/g");

	/* The same at full speed, racing the watcher. */
	for (int k = 0; k < 50; k++) {
		snprintf(rel, sizeof(rel), "r%d", k);
		mk(c, rel);
		snprintf(rel, sizeof(rel), "r%d/b", k);
		mk(c, rel);
		snprintf(rel, sizeof(rel), "r%d/b/c", k);
		mk(c, rel);
		snprintf(rel, sizeof(rel), "r%d/b/c/f", k);
		put(c, rel, "x");
	}
	for (int k = 0; k < 50; k++) {
		snprintf(rel, sizeof(rel), "r%d/b/c/f", k);
		wait_for(c, 0, WATCH_CHANGED, rel);
	}
}

static void
test_file_rename_is_one_moved_event(void **state)
{
	struct ctx	*c = *state;
	size_t		 s;
	long		 i;

	start(c, 0);
	put(c, "x.dat", "x");
	wait_for(c, 0, WATCH_CHANGED, "x.dat");
	s = c->n;
	mvr(c, "x.dat", "y.dat");
	i = wait_for(c, s, WATCH_MOVED, "y.dat");
	assert_string_equal(c->v[i].from, "x.dat");
	assert_int_equal(c->v[i].is_dir, 0);
	marker(c);
	if (find(c, s, WATCH_DELETED, "x.dat") != -1 ||
	    find(c, s, WATCH_CHANGED, "y.dat") != -1) {
		dump(c, s);
		fail_msg("a rename reported as more than a move");
	}
}

static void
test_renamed_directory_is_watched_under_its_new_name(void **state)
{
	struct ctx	*c = *state;
	size_t		 s;
	long		 i;

	start(c, 0);
	mk(c, "d");
	mk(c, "d/sub");
	put(c, "d/sub/f", "x");
	wait_for(c, 0, WATCH_CHANGED, "d/sub/f");
	s = c->n;
	mvr(c, "d", "e");
	i = wait_for(c, s, WATCH_MOVED, "e");
	assert_string_equal(c->v[i].from, "d");
	assert_int_equal(c->v[i].is_dir, 1);
	put(c, "e/g", "y");
	put(c, "e/sub/h", "z");
	wait_for(c, s, WATCH_CHANGED, "e/g");
	wait_for(c, s, WATCH_CHANGED, "e/sub/h");
	marker(c);
	assert_int_equal(count_about(c, (size_t)i + 1, "d/"), 0);

	/* A directory made in it just before the rename, seen after it. */
	watch_test_pause(c->w, 1);
	mk(c, "e/late");
	mvr(c, "e", "f");
	watch_test_pause(c->w, 0);
	wait_for(c, s, WATCH_MOVED, "f");
	put(c, "f/late/x", "1");
	wait_for(c, s, WATCH_CHANGED, "f/late/x");
}

static void
test_directory_renamed_before_its_watch_existed_is_watched(void **state)
{
	struct ctx	*c = *state;
	size_t		 s;

	start(c, 0);
	watch_test_pause(c->w, 1);
	mk(c, "new");
	mk(c, "new/sub");
	mvr(c, "new", "renamed");
	watch_test_pause(c->w, 0);
	s = (size_t)wait_for(c, 0, WATCH_MKDIR, "renamed/sub");
	put(c, "renamed/sub/f", "x");
	wait_for(c, s, WATCH_CHANGED, "renamed/sub/f");
}

static void
test_directory_moved_out_of_the_tree_is_unwatched(void **state)
{
	struct ctx		*c = *state;
	struct watch_stats	 st;
	char			 from[PATH_MAX], to[PATH_MAX];
	size_t			 s;
	long			 i;
	uint64_t		 dirs;

	start(c, 0);
	mk(c, "m");
	mk(c, "m/n");
	put(c, "m/n/f", "x");
	wait_for(c, 0, WATCH_CHANGED, "m/n/f");
	watch_get_stats(c->w, &st);
	dirs = st.dirs;
	p(c, from, "m");
	snprintf(to, sizeof(to), "%s/m", c->out);
	s = c->n;
	mv(from, to);
	i = wait_for(c, s, WATCH_DELETED, "m");
	assert_int_equal(c->v[i].is_dir, 1);
	snprintf(to, sizeof(to), "%s/m/n/g", c->out);
	write_file(to, "outside", O_TRUNC);
	snprintf(to, sizeof(to), "%s/m/n/f", c->out);
	write_file(to, "outside", O_TRUNC);
	s = marker(c);
	assert_int_equal(count_about(c, (size_t)i + 1, "m/"), 0);
	watch_get_stats(c->w, &st);
	assert_int_equal(st.dirs, dirs - 2);

	/* Written at once, before the watcher knows the directory left. */
	mk(c, "k");
	put(c, "k/f", "x");
	wait_for(c, s, WATCH_CHANGED, "k/f");
	s = marker(c);
	watch_test_pause(c->w, 1);
	p(c, from, "k");
	snprintf(to, sizeof(to), "%s/k", c->out);
	mv(from, to);
	snprintf(to, sizeof(to), "%s/k/f", c->out);
	write_file(to, "outside", O_TRUNC);
	watch_test_pause(c->w, 0);
	wait_for(c, s, WATCH_DELETED, "k");
	marker(c);
	if (find(c, s, WATCH_CHANGED, "k/f") != -1) {
		dump(c, s);
		fail_msg("a write outside the tree was reported");
	}
}

static void
test_directory_moved_in_is_watched_and_scanned(void **state)
{
	struct ctx	*c = *state;
	char		 from[PATH_MAX], to[PATH_MAX];
	size_t		 s;

	start(c, 0);
	snprintf(from, sizeof(from), "%s/in", c->out);
	assert_int_equal(mkdir(from, 0755), 0);
	snprintf(to, sizeof(to), "%s/in/sub", c->out);
	assert_int_equal(mkdir(to, 0755), 0);
	snprintf(to, sizeof(to), "%s/in/f", c->out);
	write_file(to, "f", O_TRUNC);
	snprintf(to, sizeof(to), "%s/in/sub/g", c->out);
	write_file(to, "g", O_TRUNC);
	p(c, to, "in");
	mv(from, to);
	wait_for(c, 0, WATCH_MKDIR, "in");
	wait_for(c, 0, WATCH_CHANGED, "in/f");
	wait_for(c, 0, WATCH_MKDIR, "in/sub");
	s = (size_t)wait_for(c, 0, WATCH_CHANGED, "in/sub/g");
	put(c, "in/sub/h", "h");
	wait_for(c, s, WATCH_CHANGED, "in/sub/h");
}

static void
test_excluded_paths_produce_no_events(void **state)
{
	struct ctx	*c = *state;
	size_t		 s;
	long		 i;

	start(c, 0);
	/* Prosody's rewrite: x.dat~ is written, then renamed over x.dat. */
	put(c, "x.dat~", "new");
	mvr(c, "x.dat~", "x.dat");
	i = wait_for(c, 0, WATCH_CHANGED, "x.dat");
	assert_int_equal(c->v[i].flags & WATCH_F_FROM_TEMP, 0);
	mk(c, "skip");
	mk(c, "skip/deep");
	put(c, "skip/f", "x");
	put(c, "skip/deep/g", "x");
	put(c, "y.dat", "y");
	mvr(c, "y.dat", "y.dat~");	/* renamed to an excluded name: gone */
	s = marker(c);
	mk(c, "cache");
	put(c, "cache/a", "a");
	wait_for(c, s, WATCH_CHANGED, "cache/a");
	mvr(c, "cache", "skip/cache");	/* into an excluded directory */
	i = wait_for(c, s, WATCH_DELETED, "cache");
	assert_int_equal(c->v[i].is_dir, 1);
	put(c, "skip/cache/b", "b");
	s = marker(c);
	if (count_about(c, 0, "~") != 0 || count_about(c, 0, "skip") != 0 ||
	    find(c, 0, WATCH_MOVED, "x.dat") != -1) {
		dump(c, 0);
		fail_msg("events for excluded paths");
	}
	assert_true(find(c, 0, WATCH_DELETED, "y.dat") != -1);
	(void)s;
}

static void
test_own_temp_files_produce_no_events(void **state)
{
	struct ctx	*c = *state;
	size_t		 s;
	long		 i;

	start(c, 0);
	put(c, ".spoolsync.a1b2c3", "tmp");
	mk(c, ".spoolsync.dir");
	put(c, ".spoolsync.dir/f", "tmp");
	s = marker(c);
	if (count_about(c, 0, ".spoolsync.") != 0) {
		dump(c, 0);
		fail_msg("events for spoolsync's temp files");
	}
	/* apply.c's commit: the temp file renamed over the target. */
	mvr(c, ".spoolsync.a1b2c3", "target.dat");
	i = wait_for(c, s, WATCH_CHANGED, "target.dat");
	assert_true(c->v[i].flags & WATCH_F_FROM_TEMP);
	assert_int_equal(count_about(c, s, ".spoolsync."), 0);
}

static void
test_directory_deleted_and_made_again_is_watched(void **state)
{
	struct ctx	*c = *state;
	char		 path[PATH_MAX];
	size_t		 s;

	start(c, 0);
	mk(c, "r");
	put(c, "r/old", "x");
	wait_for(c, 0, WATCH_CHANGED, "r/old");
	p(c, path, "r/old");
	assert_int_equal(unlink(path), 0);
	p(c, path, "r");
	assert_int_equal(rmdir(path), 0);
	s = (size_t)wait_for(c, 0, WATCH_DELETED, "r");
	mk(c, "r");
	put(c, "r/new", "y");
	wait_for(c, s, WATCH_CHANGED, "r/new");

	/* rm -rf of a nested tree, then the same names again. */
	mk(c, "t");
	mk(c, "t/u");
	mk(c, "t/u/v");
	put(c, "t/u/v/f", "1");
	wait_for(c, s, WATCH_CHANGED, "t/u/v/f");
	p(c, path, "t");
	assert_int_equal(tu_rmtree(path), 0);
	s = (size_t)wait_for(c, s, WATCH_DELETED, "t");
	mk(c, "t");
	mk(c, "t/u");
	mk(c, "t/u/v");
	wait_for(c, s, WATCH_MKDIR, "t/u/v");
	put(c, "t/u/v/g", "2");
	wait_for(c, s, WATCH_CHANGED, "t/u/v/g");
}

static void
test_burst_of_2000_files_delivers_every_path(void **state)
{
	struct ctx	*c = *state;
	char		 rel[64];
	char		*seen;
	size_t		 got = 0;
	struct timeval	 tv = { WAIT_MS / 1000, 0 };
	struct event	*t;
	int		 expired = 0, k;
	double		 ms;
	uint64_t	 t0;

	start(c, 0);
	mk(c, "burst");
	wait_for(c, 0, WATCH_MKDIR, "burst");
	seen = calloc(2000, 1);
	t0 = mono_ns();
	for (k = 0; k < 2000; k++) {
		snprintf(rel, sizeof(rel), "burst/u%04d.dat", k);
		put(c, rel, "item({});");
	}
	t = evtimer_new(c->base, timeout_cb, &expired);
	evtimer_add(t, &tv);
	for (size_t i = 0; got < 2000 && !expired; ) {
		event_base_loop(c->base, EVLOOP_ONCE);
		for (; i < c->n; i++) {
			assert_int_not_equal(c->v[i].type, WATCH_OVERFLOW);
			if (sscanf(c->v[i].rel, "burst/u%d.dat", &k) == 1 &&
			    !seen[k]) {
				seen[k] = 1;
				got++;
			}
		}
	}
	ms = (mono_ns() - t0) / 1e6;
	event_free(t);
	free(seen);
	print_message("2,000 files written and all reported in %.1f ms\n", ms);
	assert_int_equal(got, 2000);
}

static long
sysctl_long(const char *name)
{
	char	path[128];
	FILE	*f;
	long	v = -1;

	snprintf(path, sizeof(path), "/proc/sys/fs/inotify/%s", name);
	if ((f = fopen(path, "r")) != NULL) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static void
test_kernel_queue_overflow_is_reported(void **state)
{
	struct ctx	*c = *state;
	char		 a[PATH_MAX], b[PATH_MAX];
	long		 max = sysctl_long("max_queued_events");
	long		 i;
	int		 fa, fb;

	assert_true(max > 0);
	start(c, (size_t)max * 4);
	put(c, "a", "");
	put(c, "b", "");
	wait_for(c, 0, WATCH_CHANGED, "b");
	p(c, a, "a");
	p(c, b, "b");
	fa = open(a, O_WRONLY);
	fb = open(b, O_WRONLY);
	/* Alternating files: the kernel only merges identical neighbours. */
	watch_test_pause(c->w, 1);
	for (long k = 0; k < max + 2000; k++)
		assert_int_equal(write(k % 2 ? fb : fa, "x", 1), 1);
	close(fa);
	close(fb);
	watch_test_pause(c->w, 0);
	i = wait_for(c, 0, WATCH_OVERFLOW, "");
	assert_non_null(strstr(c->v[i].msg, "max_queued_events"));
	put(c, "after", "x");		/* still watching */
	wait_for(c, (size_t)i, WATCH_CHANGED, "after");
}

static void
test_full_event_queue_is_reported_as_overflow(void **state)
{
	struct ctx		*c = *state;
	struct watch_stats	 st;
	char			 rel[64];
	long			 i;
	int			 k;

	start(c, 50);
	for (k = 0; k < 300; k++) {
		snprintf(rel, sizeof(rel), "q%03d", k);
		put(c, rel, "");
	}
	/* The loop does not run meanwhile: the watcher's queue fills. */
	for (k = 0; k < 5000; k++) {
		watch_get_stats(c->w, &st);
		if (st.events >= 600)
			break;
		usleep(1000);
	}
	assert_true(st.events >= 600);
	assert_true(st.dropped > 0);
	i = wait_for(c, 0, WATCH_OVERFLOW, "");
	assert_true(i <= 50);
	assert_non_null(strstr(c->v[i].msg, "limit"));
	put(c, "after", "x");
	wait_for(c, (size_t)i, WATCH_CHANGED, "after");
}

static void
test_stop_joins_promptly(void **state)
{
	struct ctx	*c = *state;
	uint64_t	 t0;
	double		 ms;

	start(c, 0);
	put(c, "f", "x");
	wait_for(c, 0, WATCH_CHANGED, "f");
	usleep(50000);		/* the watcher is idle in poll */
	t0 = mono_ns();
	watch_stop(c->w);
	c->w = NULL;
	ms = (mono_ns() - t0) / 1e6;
	print_message("watch_stop: %.2f ms\n", ms);
	assert_true(ms < 1000);

	start(c, 0);		/* a new one works, and can stop itself */
	c->stop_in_cb = 1;
	put(c, "g", "x");
	wait_for(c, 0, WATCH_CHANGED, "g");
	assert_null(c->w);
}

static void
test_start_refuses_a_bad_root_and_a_second_watch(void **state)
{
	struct ctx	*c = *state;
	struct watch	*w2;
	char		 err[512], path[PATH_MAX];

	w2 = watch_start(c->base, "/nonexistent/spool", NULL, rec_cb, c, err,
	    sizeof(err));
	assert_null(w2);
	assert_non_null(strstr(err, "/nonexistent/spool"));
	put(c, "file", "x");
	p(c, path, "file");
	assert_null(watch_start(c->base, path, NULL, rec_cb, c, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "not a directory"));
	start(c, 0);
	assert_null(watch_start(c->base, c->out, NULL, rec_cb, c, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "one per process"));
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Not a pass/fail figure: the time from a write to its event on the loop. */
static void
test_write_to_event_latency_over_1000_writes(void **state)
{
	struct ctx	*c = *state;
	uint64_t	 lat[1000], hop[1000], t0;
	char		 rel[32];
	size_t		 s;
	long		 i;

	start(c, 0);
	for (int k = 0; k < 1000; k++) {
		snprintf(rel, sizeof(rel), "lat%d.dat", k % 10);
		s = c->n;
		t0 = mono_ns();
		put(c, rel, "item({ body = \"hello\" });\n");
		i = wait_for(c, s, WATCH_CHANGED, rel);
		lat[k] = c->v[i].got_ns - t0;
		hop[k] = c->v[i].got_ns - c->v[i].seen_ns;
		usleep(200);
	}
	qsort(lat, 1000, sizeof(*lat), u64_cmp);
	qsort(hop, 1000, sizeof(*hop), u64_cmp);
	print_message("write -> event on the loop: p50 %.3f ms, p99 %.3f ms, "
	    "max %.3f ms (watcher -> loop hop p50 %.3f ms, p99 %.3f ms)\n",
	    lat[499] / 1e6, lat[989] / 1e6, lat[999] / 1e6, hop[499] / 1e6,
	    hop[989] / 1e6);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_files_created_modified_chmodded_deleted_are_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_p_then_write_reports_the_file_via_the_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_rename_is_one_moved_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renamed_directory_is_watched_under_its_new_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_renamed_before_its_watch_existed_is_watched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_moved_out_of_the_tree_is_unwatched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_moved_in_is_watched_and_scanned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_excluded_paths_produce_no_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_temp_files_produce_no_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_deleted_and_made_again_is_watched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_burst_of_2000_files_delivers_every_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kernel_queue_overflow_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_event_queue_is_reported_as_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_joins_promptly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_refuses_a_bad_root_and_a_second_watch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_to_event_latency_over_1000_writes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
