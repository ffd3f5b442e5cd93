/* test_daemon.c: the common config keys, privilege drop and clocks every daemon relies on. */
#include <sys/wait.h>

#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

static struct cfg_doc *
load(const char *text, struct cfg_errs *errs)
{
	return cfg_load_string("t.yaml", text, strlen(text), errs);
}

static void
test_defaults_when_keys_are_absent(void **state)
{
	struct common_conf	c;
	struct cfg_errs		errs = { NULL, 0 };
	struct cfg_doc		*doc = load("log_level: info\n", &errs);

	assert_non_null(doc);
	common_conf_defaults(&c, "hamon");
	assert_int_equal(common_conf_parse(&errs, doc->root, &c), 0);
	assert_string_equal(c.control, "/run/jabber-ha/hamon.sock");
	assert_true(c.has_http);
	assert_string_equal(c.http.text, "127.0.0.1:9292");
	assert_null(c.user);
	cfg_free(doc);
	cfg_errs_free(&errs);
}

static void
test_every_key_parses_and_http_can_be_off(void **state)
{
	struct common_conf	c;
	struct cfg_errs		errs = { NULL, 0 };
	struct cfg_doc		*doc = load("control: /tmp/x.sock\nhttp: off\n"
	    "log_level: debug\nuser: nobody\ngroup: nogroup\n", &errs);

	assert_non_null(doc);
	common_conf_defaults(&c, "proxyd");
	assert_int_equal(common_conf_parse(&errs, doc->root, &c), 0);
	assert_string_equal(c.control, "/tmp/x.sock");
	assert_false(c.has_http);
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);
	assert_string_equal(c.user, "nobody");
	assert_string_equal(c.group, "nogroup");
	cfg_free(doc);
	cfg_errs_free(&errs);
}

static void
test_bad_values_are_all_reported_with_positions(void **state)
{
	struct common_conf	c;
	struct cfg_errs		errs = { NULL, 0 };
	struct cfg_doc		*doc = load("control: relative.sock\n"
	    "http: 127.0.0.1:70000\nlog_level: loud\n", &errs);

	assert_non_null(doc);
	common_conf_defaults(&c, "spoolsync");
	assert_int_equal(common_conf_parse(&errs, doc->root, &c), -1);
	assert_int_equal(errs.n, 3);
	assert_non_null(strstr(errs.msg[0], "t.yaml:1:10: control: must be an absolute path"));
	assert_non_null(strstr(errs.msg[1], "t.yaml:2:7: http:"));
	assert_non_null(strstr(errs.msg[1], "70000 is out of range (1-65535)"));
	assert_non_null(strstr(errs.msg[2], "t.yaml:3:12: log_level:"));
	cfg_free(doc);
	cfg_errs_free(&errs);
}

static void
test_unknown_key_is_refused_with_suggestion(void **state)
{
	static const char *const own[] = { "backends", NULL };
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load("contrl: /x\nbackend: []\n", &errs);

	assert_non_null(doc);
	assert_int_equal(cfg_check_keys(&errs, doc->root, common_conf_keys_with(own)), -1);
	assert_int_equal(errs.n, 2);
	assert_non_null(strstr(errs.msg[0], "'control'"));
	assert_non_null(strstr(errs.msg[1], "'backends'"));
	cfg_free(doc);
	cfg_errs_free(&errs);
}

static void
test_conf_load_refuses_a_non_map_root(void **state)
{
	char		 path[] = "/tmp/test_daemon.XXXXXX";
	struct cfg_errs	 errs = { NULL, 0 };
	int		 fd = mkstemp(path);

	assert_int_equal(write(fd, "- a\n- b\n", 8), 8);
	close(fd);
	assert_null(common_conf_load(path, &errs));
	assert_int_equal(errs.n, 1);
	assert_non_null(strstr(errs.msg[0], "must be a map"));
	cfg_errs_free(&errs);
	unlink(path);
}

static void
test_privilege_drop_sticks(void **state)
{
	char	err[256];
	pid_t	pid;
	int	status;

	if (geteuid() != 0) {
		assert_int_equal(daemon_drop_privs("nobody", NULL, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "without root"));
		return;
	}
	pid = fork();
	if (pid == 0) {
		if (daemon_drop_privs("nobody", "nogroup", err, sizeof(err)) == -1)
			_exit(10);
		if (getuid() != getpwnam("nobody")->pw_uid || geteuid() == 0)
			_exit(11);
		_exit(setuid(0) == 0 ? 12 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(daemon_drop_privs("no-such-user-xyz", NULL, err, sizeof(err)), -1);
	assert_string_equal(err, "user: no such user 'no-such-user-xyz'");
}

static void
test_clocks_advance(void **state)
{
	uint64_t	a = now_mono_ns(), b;

	usleep(2000);
	b = now_mono_ns();
	assert_true(b - a >= 2000000);
	assert_true(now_real_ms() > 1700000000000ull);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_when_keys_are_absent),
		cmocka_unit_test(test_every_key_parses_and_http_can_be_off),
		cmocka_unit_test(test_bad_values_are_all_reported_with_positions),
		cmocka_unit_test(test_unknown_key_is_refused_with_suggestion),
		cmocka_unit_test(test_conf_load_refuses_a_non_map_root),
		cmocka_unit_test(test_privilege_drop_sticks),
		cmocka_unit_test(test_clocks_advance),
	};
	log_init("test_daemon", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
