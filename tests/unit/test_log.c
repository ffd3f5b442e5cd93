/* test_log.c: log lines have the promised shape, levels filter, errno is appended. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <regex.h>

#include "common.h"

/* Run FN with stderr redirected to a temp file; return what it wrote. */
static char *
capture(void (*fn)(void))
{
	char	 path[] = "/tmp/test_log.XXXXXX", *out;
	int	 fd, saved;
	long	 n;
	FILE	*fp;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	fp = fdopen(fd, "r");
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	out = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(out, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	unlink(path);
	return out;
}

static void
emit_info(void)
{
	log_info("hello %d", 42);
}

static void
test_line_has_timestamp_program_pid_level(void **state)
{
	regex_t	 re;
	char	*out;

	unsetenv("JOURNAL_STREAM");
	log_init("testd", LOG_LVL_INFO);
	out = capture(emit_info);
	assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z "
	    "testd\\[[0-9]+\\]: info: hello 42\n$", REG_EXTENDED), 0);
	assert_int_equal(regexec(&re, out, 0, NULL, 0), 0);
	regfree(&re);
	free(out);
}

static void
test_journald_gets_plain_lines_with_priority(void **state)
{
	char	*out;

	setenv("JOURNAL_STREAM", "8:1234", 1);
	log_init("testd", LOG_LVL_INFO);
	out = capture(emit_info);
	assert_string_equal(out, "<6>info: hello 42\n");
	free(out);
	unsetenv("JOURNAL_STREAM");
}

static void
emit_levels(void)
{
	log_debug("d");
	log_info("i");
	log_warnx("w");
	log_errorx("e");
}

static void
test_level_filters_lower_priorities(void **state)
{
	char	*out;

	setenv("JOURNAL_STREAM", "1:1", 1);
	log_init("testd", LOG_LVL_WARN);
	out = capture(emit_levels);
	assert_string_equal(out, "<4>warn: w\n<3>error: e\n");
	free(out);
	log_set_level(LOG_LVL_DEBUG);
	out = capture(emit_levels);
	assert_string_equal(out, "<7>debug: d\n<6>info: i\n<4>warn: w\n<3>error: e\n");
	free(out);
	unsetenv("JOURNAL_STREAM");
}

static void
emit_errno(void)
{
	errno = ENOENT;
	log_warn("open %s", "/x");
}

static void
test_log_warn_appends_errno_and_keeps_it(void **state)
{
	char	*out;

	setenv("JOURNAL_STREAM", "1:1", 1);
	log_init("testd", LOG_LVL_INFO);
	out = capture(emit_errno);
	assert_string_equal(out, "<4>warn: open /x: No such file or directory\n");
	assert_int_equal(errno, ENOENT);
	free(out);
	unsetenv("JOURNAL_STREAM");
}

static void
emit_huge(void)
{
	char	*big = malloc(10000);

	memset(big, 'x', 9999);
	big[9999] = '\0';
	log_info("%s", big);
	free(big);
}

static void
test_overlong_line_is_cut_and_still_ends_in_newline(void **state)
{
	char	*out;

	log_init("testd", LOG_LVL_INFO);
	out = capture(emit_huge);
	assert_true(strlen(out) < 4096);
	assert_int_equal(out[strlen(out) - 1], '\n');
	assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
	free(out);
}

static void
test_level_names_parse(void **state)
{
	assert_int_equal(log_level_parse("debug"), LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("INFO"), LOG_LVL_INFO);
	assert_int_equal(log_level_parse("warning"), LOG_LVL_WARN);
	assert_int_equal(log_level_parse("error"), LOG_LVL_ERROR);
	assert_int_equal(log_level_parse("loud"), -1);
	assert_string_equal(log_level_name(LOG_LVL_WARN), "warn");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_has_timestamp_program_pid_level),
		cmocka_unit_test(test_journald_gets_plain_lines_with_priority),
		cmocka_unit_test(test_level_filters_lower_priorities),
		cmocka_unit_test(test_log_warn_appends_errno_and_keeps_it),
		cmocka_unit_test(test_overlong_line_is_cut_and_still_ends_in_newline),
		cmocka_unit_test(test_level_names_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
