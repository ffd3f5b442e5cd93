/* test_publish.c: a new view reaches a real watcher on the control socket,
 * lands whole in state_file, and runs on_change hooks with the transition in
 * their environment, one at a time per backend and in order, killed past
 * their timeout. */
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
#include <event2/event.h>

#include "hamon.h"

static char			 dir[64];
static char			 state_path[128], log_path[128], sock_path[128];
static struct event_base	*base;
static struct publish		*pub;

static int
setup(void **unused)
{
	snprintf(dir, sizeof(dir), "/tmp/test_publish.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(state_path, sizeof(state_path), "%s/hamon.view.json", dir);
	snprintf(log_path, sizeof(log_path), "%s/hooks.log", dir);
	snprintf(sock_path, sizeof(sock_path), "%s/hamon.sock", dir);
	base = event_base_new();
	pub = publish_new(base);
	return base == NULL;
}

static int
teardown(void **unused)
{
	char		 p[512];
	DIR		*d = opendir(dir);
	struct dirent	*e;

	publish_free(pub);
	event_base_free(base);
	while (d != NULL && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
	return 0;
}

static void
run_ms(int ms)
{
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
run_until_hooks_done(int max_ms)
{
	uint64_t	end = now_mono_ms() + (uint64_t)max_ms;

	while (publish_hooks_running(pub) + publish_hooks_queued(pub) > 0) {
		if (now_mono_ms() > end)
			fail_msg("hooks still running after %d ms", max_ms);
		run_ms(5);
	}
}

/* A view of backends NAMES[i] in STATES[i]. */
static void
make_view(struct view *v, uint64_t gen, size_t n, const char *const *names,
    const enum backend_state *states)
{
	size_t	i;

	memset(v, 0, sizeof(*v));
	v->generation = gen;
	v->node = xstrdup("p1");
	v->n = n;
	v->backends = xcalloc(n + 1, sizeof(*v->backends));
	for (i = 0; i < n; i++) {
		v->backends[i].name = xstrdup(names[i]);
		v->backends[i].state = states[i];
		v->backends[i].eligible = states[i] == BACKEND_UP;
		v->backends[i].last_error = xstrdup("");
		v->backends[i].latency_us = v->backends[i].lag_ms = -1;
		v->backends[i].since_ms = 1700000000000ull;
	}
}

static char *
slurp(const char *path)
{
	FILE	*fp = fopen(path, "r");
	char	*s = xcalloc(1, 65536);

	if (fp != NULL) {
		fread(s, 1, 65535, fp);
		fclose(fp);
	}
	return s;
}

static size_t
files_in_dir(void)
{
	DIR		*d = opendir(dir);
	struct dirent	*e;
	size_t		 n = 0;

	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void
test_state_file_holds_the_whole_view_after_each_change(void **unused)
{
	static const char *const names[] = { "a", "b" };
	enum backend_state	 s1[] = { BACKEND_UP, BACKEND_UP };
	enum backend_state	 s2[] = { BACKEND_UP, BACKEND_DOWN };
	struct view		 v0, v1, v2;
	struct jval		*root;
	char			*text, err[128];

	memset(&v0, 0, sizeof(v0));
	make_view(&v1, 1, 2, names, s1);
	make_view(&v2, 2, 2, names, s2);
	publish_configure(pub, state_path, NULL, 1000);
	publish_view(pub, NULL, &v0, &v1);
	publish_view(pub, NULL, &v1, &v2);
	text = slurp(state_path);
	root = json_parse(text, strlen(text), err, sizeof(err));
	assert_non_null(root);
	assert_int_equal((int)jval_num(root, "generation", 0), 2);
	assert_string_equal(jval_str(jval_get(root, "backends")->items[1], "state"),
	    "down");
	assert_int_equal(files_in_dir(), 1);	/* no temp file left */
	assert_int_equal(publish_state_errors(pub), 0);
	jval_free(root);
	free(text);
	view_free(&v1);
	view_free(&v2);
}

static void
test_a_state_file_that_cannot_be_written_is_counted_not_fatal(void **unused)
{
	static const char *const names[] = { "a" };
	enum backend_state	 s[] = { BACKEND_UP };
	struct view		 v0, v1;
	char			 bad[256];

	snprintf(bad, sizeof(bad), "%s/missing/dir/view.json", dir);
	memset(&v0, 0, sizeof(v0));
	make_view(&v1, 1, 1, names, s);
	publish_configure(pub, bad, NULL, 1000);
	publish_view(pub, NULL, &v0, &v1);
	publish_view(pub, NULL, &v0, &v1);
	assert_int_equal(publish_state_errors(pub), 2);
	view_free(&v1);
}

static uint64_t
mtime_ms(const char *path)
{
	struct stat	st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

static void
set_old_mtime(const char *path)
{
	struct timespec	ts[2] = { { 1000000000, 0 }, { 1000000000, 0 } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* restore.c trusts state_file by its age: touching renews it, content kept. */
static void
test_touching_state_file_renews_its_age_and_keeps_its_content(void **unused)
{
	static const char *const names[] = { "a" };
	enum backend_state	 s[] = { BACKEND_UP };
	struct view		 v0, v1;
	char			*before, *after, err[256];

	memset(&v0, 0, sizeof(v0));
	make_view(&v1, 1, 1, names, s);
	assert_int_equal(publish_touch_state(pub, err, sizeof(err)), 1);
	publish_configure(pub, state_path, NULL, 1000);
	assert_int_equal(publish_touch_state(pub, err, sizeof(err)), 1); /* none yet */
	publish_view(pub, NULL, &v0, &v1);
	before = slurp(state_path);
	set_old_mtime(state_path);
	assert_int_equal(publish_touch_state(pub, err, sizeof(err)), 0);
	assert_true(mtime_ms(state_path) + 60000 > now_real_ms());
	after = slurp(state_path);
	assert_string_equal(before, after);
	assert_int_equal(publish_state_errors(pub), 0);
	free(before);
	free(after);
	view_free(&v1);
}

/* After a failed write the file on disk is stale: it must be left to age. */
static void
test_a_state_file_whose_write_failed_is_never_touched(void **unused)
{
	static const char *const names[] = { "a" };
	enum backend_state	 s[] = { BACKEND_UP };
	struct view		 v0, v1;
	char			 err[256], sub[256];

	memset(&v0, 0, sizeof(v0));
	make_view(&v1, 1, 1, names, s);
	/* A directory where the file should be: rename fails, even as root. */
	snprintf(sub, sizeof(sub), "%s/view.json", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	set_old_mtime(sub);
	publish_configure(pub, sub, NULL, 1000);
	publish_view(pub, NULL, &v0, &v1);
	assert_int_equal(publish_state_errors(pub), 1);
	assert_int_equal(publish_touch_state(pub, err, sizeof(err)), 1);
	assert_int_equal(mtime_ms(sub), 1000000000000ull);
	rmdir(sub);
	view_free(&v1);
}

/* publish_save_state writes what publish_view would, without hooks. */
static void
test_save_state_writes_the_view_as_publish_would(void **unused)
{
	static const char *const names[] = { "a", "b" };
	enum backend_state	 s[] = { BACKEND_UNSYNCED, BACKEND_UP };
	struct view		 v;
	struct jval		*root;
	char			*text, err[128];

	make_view(&v, 7, 2, names, s);
	publish_configure(pub, state_path, "echo never >> /nonexistent/x", 1000);
	publish_save_state(pub, &v);
	assert_int_equal(publish_hooks_queued(pub) + publish_hooks_running(pub), 0);
	text = slurp(state_path);
	root = json_parse(text, strlen(text), err, sizeof(err));
	assert_non_null(root);
	assert_int_equal((int)jval_num(root, "generation", 0), 7);
	assert_string_equal(jval_str(jval_get(root, "backends")->items[0], "state"),
	    "unsynced");
	jval_free(root);
	free(text);
	view_free(&v);
}

static int	 watched;
static char	 watched_json[4096];

static void
watch_data(const struct jval *data, void *arg)
{
	watched++;
	snprintf(watched_json, sizeof(watched_json), "%.0f %s",
	    jval_num(data, "generation", 0),
	    jval_str(jval_get(data, "backends")->items[0], "state"));
}

static void
watch_state(int connected, const char *err, void *arg)
{
}

static void
control_nop(struct control_conn *c, int argc, char **argv, void *arg)
{
	control_watch(c, NULL);
}

static void
test_watchers_on_the_control_socket_get_each_new_view(void **unused)
{
	static const char *const names[] = { "a" };
	enum backend_state	 s1[] = { BACKEND_UP }, s2[] = { BACKEND_MAINT };
	struct control		*ctl;
	struct control_sub	*sub;
	struct view		 v0, v1, v2;
	char			 err[256];
	int			 i;

	ctl = control_listen(base, sock_path, control_nop, NULL, err, sizeof(err));
	assert_non_null(ctl);
	sub = control_sub_new(base, sock_path, "watch", watch_data, watch_state,
	    NULL);
	for (i = 0; i < 100 && control_watchers(ctl) == 0; i++)
		run_ms(5);
	assert_int_equal(control_watchers(ctl), 1);
	memset(&v0, 0, sizeof(v0));
	make_view(&v1, 7, 1, names, s1);
	make_view(&v2, 8, 1, names, s2);
	publish_view(pub, ctl, &v0, &v1);
	for (i = 0; i < 100 && watched < 1; i++)
		run_ms(5);
	assert_string_equal(watched_json, "7 up");
	publish_view(pub, ctl, &v1, &v2);
	for (i = 0; i < 100 && watched < 2; i++)
		run_ms(5);
	assert_string_equal(watched_json, "8 maint");
	control_sub_free(sub);
	control_close(ctl);
	view_free(&v1);
	view_free(&v2);
}

static void
test_hooks_get_the_transition_in_their_environment(void **unused)
{
	static const char *const n1[] = { "a", "b" }, *const n2[] = { "a" };
	enum backend_state	 s1[] = { BACKEND_UP, BACKEND_UP };
	enum backend_state	 s2[] = { BACKEND_DRAINING };
	struct view		 v0, v1, v2;
	char			*cmd, *text;

	xasprintf(&cmd, "echo \"$HAMON_NODE $HAMON_GENERATION $HAMON_BACKEND "
	    "$HAMON_OLD_STATE $HAMON_NEW_STATE\" >> %s", log_path);
	publish_configure(pub, NULL, cmd, 5000);
	memset(&v0, 0, sizeof(v0));
	make_view(&v1, 1, 2, n1, s1);
	make_view(&v2, 2, 1, n2, s2);
	publish_view(pub, NULL, &v0, &v1);
	run_until_hooks_done(5000);
	publish_view(pub, NULL, &v1, &v2);
	run_until_hooks_done(5000);
	text = slurp(log_path);
	assert_non_null(strstr(text, "p1 1 a none up\n"));
	assert_non_null(strstr(text, "p1 1 b none up\n"));
	assert_non_null(strstr(text, "p1 2 a up draining\n"));
	assert_non_null(strstr(text, "p1 2 b up removed\n"));
	free(text);
	free(cmd);
	view_free(&v1);
	view_free(&v2);
}

static void
test_hooks_of_one_backend_never_overlap_and_keep_their_order(void **unused)
{
	static const char *const names[] = { "a", "b" };
	enum backend_state	 seq[4][2] = {
		{ BACKEND_UP, BACKEND_UP }, { BACKEND_DOWN, BACKEND_DOWN },
		{ BACKEND_UP, BACKEND_UP }, { BACKEND_MAINT, BACKEND_UP },
	};
	struct view		 v[5];
	char			*cmd, *text, want[256];
	uint64_t		 t0;
	int			 i;

	/* Each hook takes 150 ms and logs its start and end. */
	xasprintf(&cmd, "echo \"start $HAMON_BACKEND $HAMON_GENERATION\" >> %s; "
	    "sleep 0.15; echo \"end $HAMON_BACKEND $HAMON_GENERATION\" >> %s",
	    log_path, log_path);
	publish_configure(pub, NULL, cmd, 5000);
	memset(&v[0], 0, sizeof(v[0]));
	t0 = now_mono_ms();
	for (i = 0; i < 4; i++) {
		make_view(&v[i + 1], (uint64_t)i + 1, 2, names, seq[i]);
		publish_view(pub, NULL, &v[i], &v[i + 1]);
	}
	/* Queued, not run all at once: one per backend at a time. */
	assert_int_equal(publish_hooks_running(pub), 2);
	assert_int_equal(publish_hooks_queued(pub), 5);
	run_until_hooks_done(5000);
	/* a ran 4 in a row (>= 600 ms); b's 3 ran beside a's, not after them. */
	assert_true(now_mono_ms() - t0 >= 600);
	text = slurp(log_path);
	{
		char	*p = text;

		for (i = 1; i <= 4; i++) {
			snprintf(want, sizeof(want), "start a %d\n", i);
			p = strstr(p, want);
			assert_non_null(p);
			snprintf(want, sizeof(want), "end a %d\n", i);
			p = strstr(p, want);
			if (p == NULL)
				fail_msg("a's hooks out of order:\n%s", text);
		}
	}
	assert_null(strstr(text, "start b 4"));	/* b did not change in 4 */
	free(text);
	free(cmd);
	for (i = 1; i <= 4; i++)
		view_free(&v[i]);
}

static void
test_a_hook_past_its_timeout_is_killed_with_its_children(void **unused)
{
	static const char *const names[] = { "a" };
	enum backend_state	 s[] = { BACKEND_UP };
	struct view		 v0, v1;
	char			*cmd, *text;
	uint64_t		 t0;

	/* A child in the background would outlive a kill of the shell alone. */
	xasprintf(&cmd, "(sleep 0.4; echo survived >> %s) & sleep 5", log_path);
	publish_configure(pub, NULL, cmd, 100);
	memset(&v0, 0, sizeof(v0));
	make_view(&v1, 1, 1, names, s);
	t0 = now_mono_ms();
	publish_view(pub, NULL, &v0, &v1);
	run_until_hooks_done(3000);
	assert_true(now_mono_ms() - t0 < 1000);
	usleep(600000);
	text = slurp(log_path);
	assert_null(strstr(text, "survived"));
	free(text);
	free(cmd);
	view_free(&v1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_state_file_holds_the_whole_view_after_each_change,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_state_file_that_cannot_be_written_is_counted_not_fatal,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_touching_state_file_renews_its_age_and_keeps_its_content,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_state_file_whose_write_failed_is_never_touched,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_state_writes_the_view_as_publish_would,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_watchers_on_the_control_socket_get_each_new_view,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_hooks_get_the_transition_in_their_environment,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_hooks_of_one_backend_never_overlap_and_keep_their_order,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_hook_past_its_timeout_is_killed_with_its_children,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
