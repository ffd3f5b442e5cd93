/* test_hamon_conf.c: hamon's whole configuration: every key read, defaults,
 * and each mistake refused as file:line:col: key: what is wrong. */
#include <sys/stat.h>

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

static char	dir[64];
static char	conf_path[128];
static char	pass_path[128];

static int
setup(void **unused)
{
	snprintf(dir, sizeof(dir), "/tmp/test_hamon_conf.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/hamon.yaml", dir);
	snprintf(pass_path, sizeof(pass_path), "%s/probe.pass", dir);
	return 0;
}

static int
teardown(void **unused)
{
	unlink(conf_path);
	unlink(pass_path);
	rmdir(dir);
	return 0;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE	*fp;

	unlink(path);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, mode), 0);
}

/* Load TEXT (with %s replaced by the password file's path). */
static struct hamon_conf *
load(const char *text, struct cfg_errs *errs)
{
	char	*t;

	xasprintf(&t, text, pass_path);
	write_file(conf_path, t, 0644);
	free(t);
	return hamon_conf_load(conf_path, errs);
}

/* The config is refused with an error "FILE:LINE:COL: KEY: ...NEEDLE...". */
static void
expect_error(const char *text, int line, int col, const char *key,
    const char *needle)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct hamon_conf	*c = load(text, &errs);
	char			 prefix[256];
	size_t			 i;

	snprintf(prefix, sizeof(prefix), "%s:%d:%d: %s: ", conf_path, line, col, key);
	if (c != NULL)
		fail_msg("accepted; expected %s...%s", prefix, needle);
	for (i = 0; i < errs.n; i++)
		if (strncmp(errs.msg[i], prefix, strlen(prefix)) == 0 &&
		    strstr(errs.msg[i], needle) != NULL) {
			cfg_errs_free(&errs);
			return;
		}
	for (i = 0; i < errs.n; i++)
		print_message("  got: %s\n", errs.msg[i]);
	cfg_errs_free(&errs);
	fail_msg("no error %s...%s", prefix, needle);
}

static const char full[] =
	"node: p1\n"
	"interval: 250ms\n"
	"timeout: 500ms\n"
	"rise: 3\n"
	"fall: 2\n"
	"control: /tmp/hamon-test.sock\n"
	"http: off\n"
	"state_file: /var/lib/jabber-ha/hamon.view.json\n"
	"holds_max_age: 90s\n"
	"on_change: /etc/jabber-ha/hamon-notify --x\n"
	"on_change_timeout: 3s\n"
	"backends:\n"
	"  - name: a\n"
	"    address: 127.0.0.1:5222\n"
	"    domain: example.com\n"
	"    checks: [xmpp, login, spoolsync, exec]\n"
	"    login: {user: probe, password_file: %s}\n"
	"    spoolsync: http://127.0.0.1:9291/status\n"
	"    max_lag: 2s\n"
	"    exec: /usr/lib/nagios/plugins/check_dummy 0\n"
	"  - name: b\n"
	"    address: localhost:5223\n"
	"    domain: example.com\n";

static void
test_the_full_example_is_read_into_every_field(void **unused)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct hamon_conf	*c;
	struct backend_conf	*a, *b;

	write_file(pass_path, "s3cret pass\nsecond line\n", 0600);
	c = load(full, &errs);
	if (c == NULL)
		fail_msg("refused: %s", errs.n ? errs.msg[0] : "?");
	assert_string_equal(c->node, "p1");
	assert_int_equal(c->interval_ms, 250);
	assert_int_equal(c->timeout_ms, 500);
	assert_int_equal(c->rise, 3);
	assert_int_equal(c->fall, 2);
	assert_false(c->common.has_http);
	assert_string_equal(c->state_file, "/var/lib/jabber-ha/hamon.view.json");
	assert_int_equal(c->holds_max_age_ms, 90000);
	assert_string_equal(c->on_change, "/etc/jabber-ha/hamon-notify --x");
	assert_int_equal(c->on_change_timeout_ms, 3000);
	assert_int_equal(c->nbackends, 2);
	a = &c->backends[0];
	b = &c->backends[1];
	assert_string_equal(a->name, "a");
	assert_string_equal(a->address.text, "127.0.0.1:5222");
	assert_int_equal(a->address.port, 5222);
	assert_string_equal(a->address_numeric, "127.0.0.1:5222");
	assert_string_equal(a->domain, "example.com");
	assert_int_equal(a->checks, CHECK_BIT(CHECK_XMPP) | CHECK_BIT(CHECK_LOGIN) |
	    CHECK_BIT(CHECK_SPOOLSYNC) | CHECK_BIT(CHECK_EXEC));
	assert_string_equal(a->login_user, "probe");
	assert_string_equal(a->login_password, "s3cret pass");
	assert_string_equal(a->spoolsync_url, "http://127.0.0.1:9291/status");
	assert_int_equal(a->max_lag_ms, 2000);
	assert_string_equal(a->exec_command, "/usr/lib/nagios/plugins/check_dummy 0");
	/* A name is published resolved: proxyd never resolves. */
	assert_string_equal(b->address_numeric, "127.0.0.1:5223");
	/* Defaults of a backend: an xmpp check. */
	assert_int_equal(b->checks, CHECK_BIT(CHECK_XMPP));
	assert_null(b->login_password);
	assert_true(backend_conf_equal(a, a));
	assert_false(backend_conf_equal(a, b));
	hamon_conf_free(c);
	cfg_errs_free(&errs);
}

static void
test_defaults_of_a_config_with_no_backends(void **unused)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct hamon_conf	*c = load("log_level: info\n", &errs);

	assert_non_null(c);
	assert_int_equal(c->interval_ms, 1000);
	assert_int_equal(c->timeout_ms, 1000);
	assert_int_equal(c->rise, 2);
	assert_int_equal(c->fall, 2);
	assert_null(c->state_file);
	assert_int_equal(c->holds_max_age_ms, 600000);	/* 10 minutes */
	assert_null(c->on_change);
	assert_int_equal(c->nbackends, 0);
	assert_true(hamon_name_valid(c->node));	/* the short host name */
	hamon_conf_free(c);
}

static void
test_password_file_must_not_be_open_to_others(void **unused)
{
	static const char text[] =
	    "backends:\n"
	    "  - name: a\n"
	    "    address: 127.0.0.1:5222\n"
	    "    domain: example.com\n"
	    "    checks: [login]\n"
	    "    login: {user: probe, password_file: %s}\n";

	write_file(pass_path, "pw\n", 0644);
	expect_error(text, 6, 41, "password_file", "open to other users");
	write_file(pass_path, "pw\n", 0640);
	{
		struct cfg_errs		 errs = { NULL, 0 };
		struct hamon_conf	*c = load(text, &errs);

		assert_non_null(c);
		assert_string_equal(c->backends[0].login_password, "pw");
		hamon_conf_free(c);
	}
	write_file(pass_path, "\nafter an empty line\n", 0600);
	expect_error(text, 6, 41, "password_file", "empty");
	unlink(pass_path);
	expect_error(text, 6, 41, "password_file", "cannot open");
}

static void
test_each_backend_mistake_is_refused_where_it_is(void **unused)
{
	write_file(pass_path, "pw\n", 0600);
	expect_error("backends:\n  - name: a\n    adress: 127.0.0.1:1\n", 3, 5,
	    "adress", "address");
	expect_error("backends:\n  - name: a b\n    address: 127.0.0.1:1\n"
	    "    domain: x\n", 2, 11, "name", "not a backend name");
	expect_error("backends:\n  - name: a\n    address: 127.0.0.1:1\n"
	    "    domain: x\n  - name: a\n    address: 127.0.0.1:2\n"
	    "    domain: x\n", 5, 11, "name", "listed twice");
	expect_error("backends:\n  - name: a\n    address: 127.0.0.1:1\n"
	    "    domain: x\n    checks: [xmpp, tcp]\n", 5, 20, "checks",
	    "one of");
	expect_error("backends:\n  - name: a\n    address: 127.0.0.1:1\n"
	    "    domain: x\n    checks: [xmpp, xmpp]\n", 5, 20, "checks",
	    "twice");
	expect_error("backends:\n  - name: a\n    address: 127.0.0.1:1\n"
	    "    checks: [spoolsync]\n    spoolsync: http://h:1/status\n", 4, 13,
	    "checks", "spoolsync alone");
	expect_error("backends:\n  - name: a\n    address: 127.0.0.1:70000\n"
	    "    domain: x\n", 3, 14, "address", "");
	expect_error("backends:\n  - name: a\n    address: 127.0.0.1:1\n", 2, 5,
	    "domain", "");
	expect_error("backends:\n  - name: a\n    address: 127.0.0.1:1\n"
	    "    domain: x\n    checks: [login]\n", 2, 5, "login", "");
	expect_error("backends:\n  - name: a\n    address: 127.0.0.1:1\n"
	    "    domain: x\n    login: {user: u, password_file: %s}\n", 5, 12,
	    "login", "not in checks");
	expect_error("backends:\n  - name: a\n    address: 127.0.0.1:1\n"
	    "    domain: x\n    checks: [xmpp, spoolsync]\n"
	    "    spoolsync: https://h:1/status\n", 6, 16, "spoolsync",
	    "http://");
	expect_error("backends:\n  - name: a\n    address: 127.0.0.1:1\n"
	    "    domain: x\n    checks: [exec]\n    exec: \"  \"\n", 6, 11,
	    "exec", "empty");
	expect_error("backends:\n  - name: a\n    address: 127.0.0.1:1\n"
	    "    domain: x\n    max_lag: 5\n", 5, 14, "max_lag", "");
	expect_error("backends:\n  - just a string\n", 2, 5, "backends", "");
}

static void
test_top_level_mistakes_are_refused_where_they_are(void **unused)
{
	expect_error("interval: 5ms\n", 1, 11, "interval", "");
	expect_error("timeout: forever\n", 1, 10, "timeout", "");
	expect_error("rise: 0\n", 1, 7, "rise", "");
	expect_error("fall: 1001\n", 1, 7, "fall", "");
	expect_error("node: \"p 1\"\n", 1, 7, "node", "not a node name");
	expect_error("state_file: relative/view.json\n", 1, 13, "state_file",
	    "absolute");
	expect_error("on_change: \"\"\n", 1, 12, "on_change", "empty");
	expect_error("holds_max_age: 2d\n", 1, 16, "holds_max_age", "");
	expect_error("holds_max_age: -1s\n", 1, 16, "holds_max_age", "");
	expect_error("backend:\n  - name: a\n", 1, 1, "backend", "backends");
	expect_error("backends: {a: 1}\n", 1, 11, "backends", "");
}

/* 0: a restarted hamon never takes holds from the file. */
static void
test_holds_max_age_zero_turns_restoring_off(void **unused)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct hamon_conf	*c = load("holds_max_age: 0s\n", &errs);

	assert_non_null(c);
	assert_int_equal(c->holds_max_age_ms, 0);
	hamon_conf_free(c);
}

static void
test_all_errors_are_reported_at_once(void **unused)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct hamon_conf	*c = load("interval: 1ms\nrise: 0\nbogus: 1\n", &errs);

	assert_null(c);
	assert_int_equal(errs.n, 3);
	cfg_errs_free(&errs);
}

static void
test_a_changed_password_makes_a_different_backend(void **unused)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct hamon_conf	*c1, *c2;

	write_file(pass_path, "one\n", 0600);
	c1 = load(full, &errs);
	write_file(pass_path, "two\n", 0600);
	c2 = load(full, &errs);
	assert_non_null(c1);
	assert_non_null(c2);
	assert_false(backend_conf_equal(&c1->backends[0], &c2->backends[0]));
	assert_true(backend_conf_equal(&c1->backends[1], &c2->backends[1]));
	hamon_conf_free(c1);
	hamon_conf_free(c2);
}

static void
test_check_kind_names_round_trip(void **unused)
{
	int	k;

	for (k = 0; k < CHECK_NKINDS; k++)
		assert_int_equal(check_kind_parse(check_kind_name(k)), k);
	assert_int_equal(check_kind_parse("tcp"), -1);
	assert_true(hamon_name_valid("a.b_c-1"));
	assert_false(hamon_name_valid(""));
	assert_false(hamon_name_valid("a/b"));
	assert_false(hamon_name_valid("x\"y"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_full_example_is_read_into_every_field),
		cmocka_unit_test(test_defaults_of_a_config_with_no_backends),
		cmocka_unit_test(test_password_file_must_not_be_open_to_others),
		cmocka_unit_test(test_each_backend_mistake_is_refused_where_it_is),
		cmocka_unit_test(test_top_level_mistakes_are_refused_where_they_are),
		cmocka_unit_test(test_holds_max_age_zero_turns_restoring_off),
		cmocka_unit_test(test_all_errors_are_reported_at_once),
		cmocka_unit_test(test_a_changed_password_makes_a_different_backend),
		cmocka_unit_test(test_check_kind_names_round_trip),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
