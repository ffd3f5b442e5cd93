/* test_sasl.c: the names proxyd takes from a relayed SASL exchange: PLAIN's
 * authcid, SCRAM's n= (unescaped), and refusals of anything malformed or
 * unfit for a log line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxyd.h"
#include "session_int.h"

static void
expect_name(char *got, const char *want)
{
	if (want == NULL) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

#define M(s)	(const unsigned char *)(s), sizeof(s) - 1

static void
test_plain_gives_the_authcid(void **unused)
{
	expect_name(sasl_plain_authcid(M("\0alice\0secret")), "alice");
	expect_name(sasl_plain_authcid(M("admin\0alice\0secret")), "alice");
	expect_name(sasl_plain_authcid(M("\0\0secret")), NULL);
	expect_name(sasl_plain_authcid(M("alice")), NULL);
	expect_name(sasl_plain_authcid(M("\0alice")), NULL);
	expect_name(sasl_plain_authcid(M("\0al\nice\0pw")), NULL);
}

static void
test_scram_gives_the_unescaped_name(void **unused)
{
	expect_name(sasl_scram_name(M("n,,n=alice,r=abc")), "alice");
	expect_name(sasl_scram_name(M("y,,n=bob,r=abc")), "bob");
	expect_name(sasl_scram_name(M("p=tls-unique,a=admin,n=carol,r=x")), "carol");
	expect_name(sasl_scram_name(M("n,,n=a=2Cb=3Dc,r=x")), "a,b=c");
	expect_name(sasl_scram_name(M("n,,n=dave")), "dave");
	expect_name(sasl_scram_name(M("n,,r=abc")), NULL);
	expect_name(sasl_scram_name(M("n,,n=,r=abc")), NULL);
	expect_name(sasl_scram_name(M("n=alice")), NULL);
	expect_name(sasl_scram_name(M("n,,n=ev\ril,r=x")), NULL);
}

static void
test_an_overlong_name_is_refused(void **unused)
{
	char	msg[2100];

	memcpy(msg, "n,,n=", 5);
	memset(msg + 5, 'x', 2000);
	memcpy(msg + 2005, ",r=x", 4);
	expect_name(sasl_scram_name((unsigned char *)msg, 2009), NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_gives_the_authcid),
		cmocka_unit_test(test_scram_gives_the_unescaped_name),
		cmocka_unit_test(test_an_overlong_name_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
