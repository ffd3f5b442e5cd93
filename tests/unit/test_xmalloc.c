/* test_xmalloc.c: allocation never returns NULL and refuses overflowing sizes loudly. */
#include <sys/wait.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

static void
test_zero_sizes_still_give_memory(void **state)
{
	void	*a = xmalloc(0), *b = xcalloc(0, 8), *c = xreallocarray(NULL, 0, 0);

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	free(a);
	free(b);
	free(c);
}

static void
test_strings_are_copied(void **state)
{
	char	*s = xstrdup("jabber"), *t = xstrndup("jabber-ha", 6), *u;

	assert_string_equal(s, "jabber");
	assert_string_equal(t, "jabber");
	assert_int_equal(xasprintf(&u, "%s-%d", s, 2), 8);
	assert_string_equal(u, "jabber-2");
	free(s);
	free(t);
	free(u);
}

/* An overflowing n * size must end the process, never wrap to a small block. */
static void
test_overflowing_array_is_fatal_not_wrapped(void **state)
{
	pid_t	pid;
	int	status;

	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", 1);
		dup2(devnull, 2);
		(void)xreallocarray(NULL, SIZE_MAX / 2, 4);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero_sizes_still_give_memory),
		cmocka_unit_test(test_strings_are_copied),
		cmocka_unit_test(test_overflowing_array_is_fatal_not_wrapped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
