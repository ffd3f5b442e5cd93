/*
 * test_check_exec.c: the exec check runs real commands: Nagios exit codes,
 * the first line as the message, bounded output, the whole process group
 * killed past the timeout, every child reaped, nothing left behind.
 */
#include <sys/stat.h>

#include <fcntl.h>

#include <signal.h>

#include "probe_server.h"

static char	tmpdir[64];

static void
exec_once(const char *cmd, int timeout_ms, struct outcome *o)
{
	struct event_base	*base = event_base_new();
	struct check_target	 t;

	memset(&t, 0, sizeof(t));
	t.backend = "b1";
	t.exec_command = cmd;
	memset(o, 0, sizeof(*o));
	o->t0 = now_mono_ms();
	(void)check_exec_start(base, &t, timeout_ms, outcome_cb, o);
	assert_int_equal(o->calls, 0);
	run_until(base, o, 1, timeout_ms + 3000);
	event_base_free(base);
	assert_int_equal(o->calls, 1);
	assert_int_equal(o->r.kind, CHECK_EXEC);
}

/* No child of ours is left, not even a zombie. */
static void
assert_no_children(void)
{
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* Running (a zombie left to whoever adopted it does not count). */
static int
pid_alive(pid_t pid)
{
	char	path[64], buf[512], *p;
	FILE	*f;
	size_t	 n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return 1;
	return p[2] != 'Z' && p[2] != 'X';
}

/*
 * Still running 1 s after it was sent SIGKILL: a kill is delivered when the
 * process next runs, so on a loaded machine it may take a moment to die.
 */
static int
pid_survives(pid_t pid)
{
	int	i;

	for (i = 0; i < 100 && pid_alive(pid); i++)
		usleep(10000);
	return pid_alive(pid);
}

/* The pids a command wrote to FILE, one per line. */
static size_t
read_pids(const char *file, pid_t *pids, size_t max)
{
	FILE	*f = fopen(file, "r");
	size_t	 n = 0;
	long	 v;

	assert_non_null(f);
	while (n < max && fscanf(f, "%ld", &v) == 1)
		pids[n++] = (pid_t)v;
	fclose(f);
	return n;
}

static void
test_exit_zero_is_ok_with_the_first_line(void **state)
{
	struct outcome	o;

	exec_once("echo 'DISK OK - free 40%|/=1GB'; echo second line", 1000, &o);
	assert_true(o.r.ok);
	assert_int_equal(o.r.exec_status, 0);
	assert_string_equal(o.r.error, "DISK OK - free 40%|/=1GB");
	assert_no_children();
}

static void
test_nagios_codes_say_warning_critical_unknown(void **state)
{
	static const char *const want[] = { "warning: W", "critical: C", "unknown: U" };
	static const char *const cmd[] = { "echo W; exit 1", "echo C; exit 2",
	    "echo U; exit 3" };
	struct outcome	o;
	int		i;

	for (i = 0; i < 3; i++) {
		exec_once(cmd[i], 1000, &o);
		assert_false(o.r.ok);
		assert_int_equal(o.r.exec_status, i + 1);
		assert_string_equal(o.r.error, want[i]);
	}
	exec_once("exit 42", 1000, &o);
	assert_false(o.r.ok);
	assert_int_equal(o.r.exec_status, 42);
	assert_string_equal(o.r.error, "exit 42");
	assert_no_children();
}

static void
test_stderr_speaks_when_stdout_is_silent(void **state)
{
	struct outcome	o;

	exec_once("/nonexistent/plugin", 1000, &o);
	assert_false(o.r.ok);
	assert_int_equal(o.r.exec_status, 127);
	assert_error_has(&o, "exit 127: ");
	assert_error_has(&o, "not found");
}

static void
test_a_signal_death_is_not_ok(void **state)
{
	struct outcome	o;

	exec_once("kill -SEGV $$", 1000, &o);
	assert_false(o.r.ok);
	assert_int_equal(o.r.exec_status, -1);
	assert_error_has(&o, "killed by signal 11");
	assert_no_children();
}

static void
test_timeout_kills_the_whole_group(void **state)
{
	char		cmd[512], file[128];
	pid_t		pids[4] = { 0 };
	struct outcome	o;
	size_t		n, i;

	snprintf(file, sizeof(file), "%s/pids", tmpdir);
	snprintf(cmd, sizeof(cmd), "echo $$ > %s; sleep 30 & echo $! >> %s; "
	    "echo started; wait", file, file);
	exec_once(cmd, 300, &o);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "timeout after 300 ms: killed (started)");
	assert_in_range(o.at_ms, 295, 700);
	n = read_pids(file, pids, 4);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++)
		assert_false(pid_survives(pids[i]));
	assert_no_children();
}

static void
test_a_plugin_ignoring_sigterm_is_killed(void **state)
{
	struct outcome	o;

	exec_once("trap '' TERM; sleep 30; sleep 30", 200, &o);
	assert_false(o.r.ok);
	assert_error_has(&o, "timeout after 200 ms: killed");
	/* SIGTERM, the grace, then SIGKILL: still bounded. */
	assert_in_range(o.at_ms, 195, 800);
	assert_no_children();
}

static void
test_a_background_straggler_neither_delays_nor_survives(void **state)
{
	char		cmd[512], file[128];
	pid_t		pids[2] = { 0 };
	struct outcome	o;

	snprintf(file, sizeof(file), "%s/straggler", tmpdir);
	snprintf(cmd, sizeof(cmd), "sleep 30 & echo $! > %s; echo fine", file);
	exec_once(cmd, 2000, &o);
	assert_true(o.r.ok);
	assert_string_equal(o.r.error, "fine");
	assert_true(o.at_ms < 1000);
	assert_int_equal(read_pids(file, pids, 2), 1);
	usleep(50000);
	assert_false(pid_survives(pids[0]));
}

static void
test_huge_output_is_bounded(void **state)
{
	struct outcome	o;

	exec_once("head -c 20000000 /dev/zero | tr '\\0' 'y'; echo; exit 1", 5000, &o);
	assert_false(o.r.ok);
	assert_int_equal(o.r.exec_status, 1);
	assert_true(strlen(o.r.error) < sizeof(o.r.error));
	assert_error_has(&o, "warning: yyyy");
}

static void
test_stdin_is_dev_null(void **state)
{
	struct outcome	o;

	exec_once("cat; echo eof", 1000, &o);
	assert_true(o.r.ok);
	assert_string_equal(o.r.error, "eof");
}

static void
test_the_plugin_inherits_no_descriptor_of_the_daemon(void **state)
{
	struct outcome	o;
	int		fd = open("/dev/null", O_RDONLY);	/* no O_CLOEXEC */

	assert_true(fd > 2);
	exec_once("ls /proc/self/fd | tr '\\n' ' '", 1000, &o);
	close(fd);
	assert_true(o.r.ok);
	/* 0 1 2, and the fd ls itself opens to list the directory. */
	assert_string_equal(o.r.error, "0 1 2 3 ");
}

static void
test_control_bytes_in_the_message_are_neutralised(void **state)
{
	struct outcome	o;

	exec_once("printf 'a\\033[31mred\\tb\\r\\n'", 1000, &o);
	assert_true(o.r.ok);
	assert_string_equal(o.r.error, "a?[31mred b ");
}

static void
test_cancel_kills_and_reaps_without_a_callback(void **state)
{
	struct event_base	*base = event_base_new();
	struct check_target	 t;
	struct outcome		 o;
	struct probe		*p;

	memset(&t, 0, sizeof(t));
	t.exec_command = "sleep 30";
	memset(&o, 0, sizeof(o));
	p = check_exec_start(base, &t, 5000, outcome_cb, &o);
	run_for(base, 50);
	probe_cancel(p);
	run_for(base, 200);
	assert_int_equal(o.calls, 0);
	assert_no_children();
	event_base_free(base);
}

/* The loop may end before the killed child is gone: libevent frees the
 * one-shot reaper, nothing of ours leaks (ASan says so). */
static void
test_cancel_then_the_loop_ends_leaks_nothing(void **state)
{
	struct event_base	*base = event_base_new();
	struct check_target	 t;
	struct outcome		 o;
	uint64_t		 t0;

	memset(&t, 0, sizeof(t));
	t.exec_command = "sleep 30";
	memset(&o, 0, sizeof(o));
	probe_cancel(check_exec_start(base, &t, 5000, outcome_cb, &o));
	event_base_free(base);
	assert_int_equal(o.calls, 0);
	/* Killed already: reaping it now does not wait for the sleep. */
	t0 = now_mono_ms();
	while (waitpid(-1, NULL, 0) > 0)
		;
	assert_true(now_mono_ms() - t0 < 2000);
	assert_no_children();
}

static void
test_many_at_once_leave_no_zombie(void **state)
{
	struct event_base	*base = event_base_new();
	struct check_target	 t[30];
	struct outcome		 o[30];
	int			 i;

	memset(o, 0, sizeof(o));
	for (i = 0; i < 30; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].exec_command = i % 3 == 0 ? "sleep 5" : i % 3 == 1 ? "exit 2" :
		    "echo ok";
		o[i].t0 = now_mono_ms();
		(void)check_exec_start(base, &t[i], 300, outcome_cb, &o[i]);
	}
	run_until(base, o, 30, 3000);
	for (i = 0; i < 30; i++) {
		assert_int_equal(o[i].calls, 1);
		assert_int_equal(o[i].r.ok, i % 3 == 2);
		if (i % 3 != 0)
			assert_true(o[i].at_ms < 250);
	}
	assert_no_children();
	event_base_free(base);
}

static void
test_no_command_fails_cleanly(void **state)
{
	struct outcome	o;

	exec_once("", 1000, &o);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "exec: no command configured");
}

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_check_exec.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char	cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_zero_is_ok_with_the_first_line),
		cmocka_unit_test(test_nagios_codes_say_warning_critical_unknown),
		cmocka_unit_test(test_stderr_speaks_when_stdout_is_silent),
		cmocka_unit_test(test_a_signal_death_is_not_ok),
		cmocka_unit_test(test_timeout_kills_the_whole_group),
		cmocka_unit_test(test_a_plugin_ignoring_sigterm_is_killed),
		cmocka_unit_test(test_a_background_straggler_neither_delays_nor_survives),
		cmocka_unit_test(test_huge_output_is_bounded),
		cmocka_unit_test(test_stdin_is_dev_null),
		cmocka_unit_test(test_the_plugin_inherits_no_descriptor_of_the_daemon),
		cmocka_unit_test(test_control_bytes_in_the_message_are_neutralised),
		cmocka_unit_test(test_cancel_kills_and_reaps_without_a_callback),
		cmocka_unit_test(test_cancel_then_the_loop_ends_leaks_nothing),
		cmocka_unit_test(test_many_at_once_leave_no_zombie),
		cmocka_unit_test(test_no_command_fails_cleanly),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
