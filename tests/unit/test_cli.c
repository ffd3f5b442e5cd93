/* test_cli.c: the flags every daemon binary shares, and check-config's verdicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

static void
test_flags_anywhere_and_words_kept_in_order(void **state)
{
	char		*argv[] = { "hamon", "--json", "drain", "-c", "/x.yaml", "a",
	    "-s", "/s.sock", NULL };
	struct cli	 cli;
	char		 err[128];

	assert_int_equal(cli_parse(&cli, "hamon", 8, argv, err, sizeof(err)), 0);
	assert_true(cli.json);
	assert_string_equal(cli.conf_path, "/x.yaml");
	assert_string_equal(cli.sock_path, "/s.sock");
	assert_int_equal(cli.argc, 2);
	assert_string_equal(cli.argv[0], "drain");
	assert_string_equal(cli.argv[1], "a");
	free(cli.argv);
}

static void
test_default_config_path_and_bad_flags(void **state)
{
	char		*argv1[] = { "spoolsync", "status", NULL };
	char		*argv2[] = { "spoolsync", "-x", NULL };
	char		*argv3[] = { "spoolsync", "status", "-c", NULL };
	struct cli	 cli;
	char		 err[128];

	assert_int_equal(cli_parse(&cli, "spoolsync", 2, argv1, err, sizeof(err)), 0);
	assert_string_equal(cli.conf_path, "/etc/jabber-ha/spoolsync.yaml");
	free(cli.argv);
	assert_int_equal(cli_parse(&cli, "spoolsync", 2, argv2, err, sizeof(err)), -1);
	assert_string_equal(err, "unknown option '-x'");
	free(cli.argv);
	assert_int_equal(cli_parse(&cli, "spoolsync", 3, argv3, err, sizeof(err)), -1);
	assert_string_equal(err, "-c needs an argument");
	free(cli.argv);
}

static void
test_control_path_from_config_or_default(void **state)
{
	char		 path[] = "/tmp/test_cli.XXXXXX", out[256];
	char		*argv[] = { "hamon", "status", "-c", path, NULL };
	char		*argv2[] = { "hamon", "status", "-c", "/nonexistent.yaml", NULL };
	struct cli	 cli;
	int		 fd = mkstemp(path);

	assert_int_equal(write(fd, "control: /tmp/h.sock\nbogus: 1\n", 30), 30);
	close(fd);
	assert_int_equal(cli_parse(&cli, "hamon", 4, argv, out, sizeof(out)), 0);
	cli_control_path(&cli, out, sizeof(out));
	assert_string_equal(out, "/tmp/h.sock");
	free(cli.argv);
	assert_int_equal(cli_parse(&cli, "hamon", 4, argv2, out, sizeof(out)), 0);
	cli_control_path(&cli, out, sizeof(out));
	assert_string_equal(out, "/run/jabber-ha/hamon.sock");
	free(cli.argv);
	unlink(path);
}

static int
parse_ok(const char *path, struct cfg_errs *errs)
{
	return 0;
}

static int
parse_bad(const char *path, struct cfg_errs *errs)
{
	cfg_err(errs, NULL, NULL, "%s:1:1: x: broken", path);
	return -1;
}

static void
test_check_config_exit_codes(void **state)
{
	char		*argv[] = { "proxyd", "check-config", "-c", "/dev/null", NULL };
	struct cli	 cli;
	char		 err[64];

	assert_int_equal(cli_parse(&cli, "proxyd", 4, argv, err, sizeof(err)), 0);
	assert_int_equal(cli_check_config(&cli, parse_ok), 0);
	assert_int_equal(cli_check_config(&cli, parse_bad), 1);
	free(cli.argv);
}

static void
test_unreachable_daemon_exits_3(void **state)
{
	char		*argv[] = { "hamon", "status", "-s", "/nonexistent/x.sock", NULL };
	struct cli	 cli;
	char		 err[64];

	assert_int_equal(cli_parse(&cli, "hamon", 4, argv, err, sizeof(err)), 0);
	assert_int_equal(cli_request(&cli, "status", NULL, NULL), 3);
	free(cli.argv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags_anywhere_and_words_kept_in_order),
		cmocka_unit_test(test_default_config_path_and_bad_flags),
		cmocka_unit_test(test_control_path_from_config_or_default),
		cmocka_unit_test(test_check_config_exit_codes),
		cmocka_unit_test(test_unreachable_daemon_exits_3),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
