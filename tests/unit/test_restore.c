/* test_restore.c: after a restart the view state_file kept is read back as
 * the previous view, so that an unsynced backend still holds its domains; a
 * damaged, foreign, stale or odd file is refused whole and never blocks. */
#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hamon.h"

#define T0		1700000000000ull
#define MAX_AGE		600000

static char			 dir[256];
static char			 path[320];
static struct backend_conf	 bconf[3];
static struct hamon_conf	 conf;

static int
setup(void **unused)
{
	const char	*tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/test_restore.XXXXXX",
	    tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/hamon.view.json", dir);
	memset(bconf, 0, sizeof(bconf));
	bconf[0].name = "a";
	bconf[1].name = "b";
	bconf[2].name = "c";
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.node, sizeof(conf.node), "p1");
	conf.backends = bconf;
	conf.nbackends = 3;
	conf.holds_max_age_ms = MAX_AGE;
	return 0;
}

static int
teardown(void **unused)
{
	char		 p[600];
	DIR		*d = opendir(dir);
	struct dirent	*e;

	while (d != NULL && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
	if (d != NULL)
		closedir(d);
	chmod(dir, 0700);
	rmdir(dir);
	return 0;
}

/* The file's mtime: what restore.c takes as the last word of the hamon before. */
static void
set_mtime(uint64_t ms)
{
	struct timespec	ts[2];

	ts[0].tv_sec = ts[1].tv_sec = (time_t)(ms / 1000);
	ts[0].tv_nsec = ts[1].tv_nsec = (long)(ms % 1000) * 1000000;
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void
write_text(const char *text)
{
	FILE	*fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	set_mtime(T0);
}

/* As publish.c writes state_file. */
static void
save(const struct view *v)
{
	struct json	j;
	char		err[256];

	json_init(&j);
	view_json(v, &j);
	buf_addc(&j.b, '\n');
	assert_int_equal(publish_write_file(path, j.b.data, j.b.len, err,
	    sizeof(err)), 0);
	json_free(&j);
	set_mtime(T0);
}

static struct observation
obs(const char *name, int alive, int synced)
{
	struct observation	o;

	memset(&o, 0, sizeof(o));
	o.name = name;
	o.checked = 1;
	o.alive = alive;
	o.has_sync = 1;
	o.synced = synced;
	o.latency_us = -1;
	o.lag_ms = -1;
	o.last_error = "";
	return o;
}

/* a holding, b up, c down (a view as hamon published it). */
static void
published_view(struct view *out)
{
	struct observation	o[3] = { obs("a", 1, 1), obs("b", 1, 1),
				    obs("c", 0, 0) };
	struct view		v1;

	view_compute(o, NULL, 3, NULL, "p1", T0, &v1);
	o[0] = obs("a", 1, 0);
	view_compute(o, NULL, 3, &v1, "p1", T0 + 1, out);
	view_free(&v1);
	assert_true(out->backends[0].holds);
}

static int
load(uint64_t now, struct view *r, size_t *unknown, char *err, size_t errlen)
{
	return restore_view(path, &conf, now, r, unknown, err, errlen);
}

static void
test_the_saved_view_comes_back_as_a_restored_view(void **unused)
{
	struct view	 v, r;
	char		 err[512];
	size_t		 unknown = 99;

	published_view(&v);
	save(&v);
	assert_int_equal(load(T0 + 1000, &r, &unknown, err, sizeof(err)), 0);
	assert_int_equal(unknown, 0);
	assert_true(r.restored);
	assert_int_equal(r.n, 3);
	assert_int_equal(view_find(&r, "a")->state, BACKEND_UNSYNCED);
	assert_true(view_find(&r, "a")->holds);
	assert_int_equal(view_find(&r, "b")->state, BACKEND_UP);
	assert_false(view_find(&r, "b")->holds);
	assert_int_equal(view_find(&r, "c")->state, BACKEND_DOWN);
	view_free(&r);
	view_free(&v);
}

/* The point of it all: a restart does not make a holding backend let go. */
static void
test_after_a_restart_an_unsynced_backend_still_holds(void **unused)
{
	struct observation	 o[3] = { obs("a", 1, 0), obs("b", 1, 0),
				    obs("c", 1, 0) };
	struct view		 v, r, fresh, forgot;
	char			 err[512];
	size_t			 unknown;

	published_view(&v);
	save(&v);
	assert_int_equal(load(T0 + 5000, &r, &unknown, err, sizeof(err)), 0);
	r.generation = 7;
	/* All three unsynced now: a held, b was up (it would have held), c
	 * was down (returning: it catches up and holds nothing). */
	view_compute(o, NULL, 3, &r, "p1", T0 + 6000, &fresh);
	assert_true(fresh.backends[0].holds);
	assert_true(fresh.backends[1].holds);
	assert_false(fresh.backends[2].holds);
	assert_int_equal(fresh.generation, 8);
	assert_false(fresh.restored);
	/* Without the file the new hamon forgets: what this fixes. */
	view_compute(o, NULL, 3, NULL, "p1", T0 + 6000, &forgot);
	assert_false(forgot.backends[0].holds);
	view_free(&forgot);
	view_free(&fresh);
	view_free(&r);
	view_free(&v);
}

/* A restored view is no verdict: an unchecked backend is still down. */
static void
test_a_restored_up_is_never_taken_as_a_verdict(void **unused)
{
	struct observation	 o = obs("b", 1, 1);
	struct view		 v, r, out;
	char			 err[512];
	size_t			 unknown;

	published_view(&v);
	save(&v);
	assert_int_equal(load(T0, &r, &unknown, err, sizeof(err)), 0);
	o.checked = 0;
	view_compute(&o, NULL, 1, &r, "p1", T0 + 10, &out);
	assert_int_equal(out.backends[0].state, BACKEND_DOWN);
	assert_false(out.backends[0].eligible);
	assert_int_equal(out.backends[0].since_ms, T0 + 10);
	view_free(&out);
	view_free(&r);
	view_free(&v);
}

static void
test_a_missing_file_is_nothing_to_restore(void **unused)
{
	struct view	r;
	char		err[512];
	size_t		unknown;

	assert_int_equal(load(T0, &r, &unknown, err, sizeof(err)), 1);
	assert_int_equal(r.n, 0);
	assert_true(r.restored);
	view_free(&r);
}

static void
expect_rejected(const char *text, const char *why)
{
	struct view	r;
	char		err[512] = "";
	size_t		unknown = 5;

	write_text(text);
	if (load(T0 + 1000, &r, &unknown, err, sizeof(err)) != -1)
		fail_msg("accepted: %s", text);
	if (strstr(err, path) == NULL || strstr(err, why) == NULL)
		fail_msg("for %s: error '%s' lacks '%s' or the path", text, err, why);
	assert_int_equal(r.n, 0);
	assert_true(r.restored);
	assert_int_equal(unknown, 0);
	view_free(&r);
}

#define HDR	"{\"generation\":4,\"node\":\"p1\","
#define A_OK	"{\"name\":\"a\",\"state\":\"unsynced\",\"holds\":true}"

static void
test_damaged_or_foreign_files_are_refused_whole(void **unused)
{
	static const struct { const char *text, *why; } bad[] = {
		{ "", "not valid JSON" },
		{ HDR "\"backends\":[" A_OK ",{\"name\":\"b\",\"sta", "not valid JSON" },
		{ "\x01\x02garbage", "not valid JSON" },
		{ "[1,2]", "not a hamon view" },
		{ "{\"node\":\"p1\",\"backends\":[]}", "not a hamon view" },
		{ "{\"generation\":-1,\"node\":\"p1\",\"backends\":[]}",
		    "not a hamon view" },
		{ "{\"generation\":1.5,\"node\":\"p1\",\"backends\":[]}",
		    "not a hamon view" },
		{ "{\"generation\":\"4\",\"node\":\"p1\",\"backends\":[]}",
		    "not a hamon view" },
		{ HDR "\"backends\":{\"a\":\"holds\"}}", "not a hamon view" },
		{ "{\"generation\":4,\"node\":\"p2\",\"backends\":[]}",
		    "node 'p2', this is 'p1'" },
		{ "{\"generation\":4,\"backends\":[]}", "node '?'" },
		{ HDR "\"backends\":[7]}", "backend 1: not an object" },
		{ HDR "\"backends\":[" A_OK ",{\"state\":\"up\"}]}", "backend 2: name" },
		{ HDR "\"backends\":[{\"name\":\"a b\",\"state\":\"up\"}]}",
		    "backend 1: name" },
		{ HDR "\"backends\":[{\"name\":\"a\",\"state\":\"drain\"}]}",
		    "backend 1: state" },
		{ HDR "\"backends\":[{\"name\":\"a\",\"state\":\"up\",\"holds\":1}]}",
		    "holds: not a boolean" },
		{ HDR "\"backends\":[{\"name\":\"a\",\"state\":\"down\","
		    "\"holds\":true}]}", "holds: true while" },
		{ HDR "\"backends\":[" A_OK "," A_OK "]}", "listed twice" },
		{ HDR "\"backends\":[{\"name\":\"x\",\"state\":\"up\"},"
		    "{\"name\":\"x\",\"state\":\"up\"}]}", "listed twice" },
	};
	size_t	i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_rejected(bad[i].text, bad[i].why);
}

/* A view from a hamon without holds (older) is read: it held nothing. */
static void
test_a_view_without_holds_is_read_as_holding_nothing(void **unused)
{
	struct view	r;
	char		err[512];
	size_t		unknown;

	write_text(HDR "\"backends\":[{\"name\":\"a\",\"state\":\"unsynced\"},"
	    "{\"name\":\"b\",\"state\":\"up\",\"address\":\"x\",\"more\":[1]}]}");
	assert_int_equal(load(T0, &r, &unknown, err, sizeof(err)), 0);
	assert_int_equal(r.n, 2);
	assert_false(view_find(&r, "a")->holds);
	assert_int_equal(view_find(&r, "b")->state, BACKEND_UP);
	view_free(&r);
}

/* Stale state never pins a domain; a file from the future is not trusted. */
static void
test_stale_or_future_files_are_ignored(void **unused)
{
	struct view	v, r;
	char		err[512];
	size_t		unknown;

	published_view(&v);
	save(&v);
	assert_int_equal(load(T0 + MAX_AGE, &r, &unknown, err, sizeof(err)), 0);
	assert_int_equal(r.n, 3);
	view_free(&r);
	assert_int_equal(load(T0 + MAX_AGE + 1, &r, &unknown, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "more than holds_max_age (600 s)"));
	assert_int_equal(r.n, 0);
	view_free(&r);
	assert_int_equal(load(T0 - 61000, &r, &unknown, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "future"));
	view_free(&r);
	/* a clock a second behind is fine */
	assert_int_equal(load(T0 - 1000, &r, &unknown, err, sizeof(err)), 0);
	view_free(&r);
	view_free(&v);
}

static void
test_backends_no_longer_configured_are_left_out_and_counted(void **unused)
{
	struct view	r;
	char		err[512];
	size_t		unknown;

	write_text(HDR "\"backends\":[{\"name\":\"gone\",\"state\":\"unsynced\","
	    "\"holds\":true}," A_OK ",{\"name\":\"old\",\"state\":\"up\"}]}\n");
	assert_int_equal(load(T0, &r, &unknown, err, sizeof(err)), 0);
	assert_int_equal(unknown, 2);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.backends[0].name, "a");
	assert_true(r.backends[0].holds);
	view_free(&r);
}

static void
test_a_fifo_or_a_directory_is_refused_without_blocking(void **unused)
{
	struct view	r;
	char		err[512];
	size_t		unknown;

	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(load(T0, &r, &unknown, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	view_free(&r);
	unlink(path);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(load(T0, &r, &unknown, err, sizeof(err)), -1);
	view_free(&r);
	rmdir(path);
}

static void
test_a_huge_file_is_refused(void **unused)
{
	struct view	 r;
	char		 err[512];
	size_t		 unknown;
	FILE		*fp = fopen(path, "w");
	int		 i;

	assert_non_null(fp);
	fputs(HDR "\"backends\":[" A_OK, fp);
	for (i = 0; i < 9 * 1024 * 1024 / 64; i++)
		fputs("                                                               \n",
		    fp);
	fputs("]}", fp);
	fclose(fp);
	set_mtime(T0);
	assert_int_equal(load(T0, &r, &unknown, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "larger than"));
	view_free(&r);
}

#define T(fn)	cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_the_saved_view_comes_back_as_a_restored_view),
		T(test_after_a_restart_an_unsynced_backend_still_holds),
		T(test_a_restored_up_is_never_taken_as_a_verdict),
		T(test_a_missing_file_is_nothing_to_restore),
		T(test_damaged_or_foreign_files_are_refused_whole),
		T(test_a_view_without_holds_is_read_as_holding_nothing),
		T(test_stale_or_future_files_are_ignored),
		T(test_backends_no_longer_configured_are_left_out_and_counted),
		T(test_a_fifo_or_a_directory_is_refused_without_blocking),
		T(test_a_huge_file_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
