/* test_proxyd_conf.c: proxyd's whole configuration: every key read, the
 * defaults, domain limits inheriting the global ones, and each mistake
 * refused as file:line:col: key: what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sched.h>

#include "proxyd.h"

static char	dir[64];
static char	conf_path[128];
static char	cert_path[128];
static char	key_path[128];

static void
write_file(const char *path, const char *text)
{
	FILE	*fp;

	unlink(path);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static int
setup(void **unused)
{
	snprintf(dir, sizeof(dir), "/tmp/test_proxyd_conf.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/proxyd.yaml", dir);
	snprintf(cert_path, sizeof(cert_path), "%s/c.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/k.pem", dir);
	write_file(cert_path, "cert\n");
	write_file(key_path, "key\n");
	return 0;
}

static int
teardown(void **unused)
{
	unlink(conf_path);
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	return 0;
}

/* Load TEXT: every "CERT" and "KEY" is replaced by the real paths. */
static struct proxyd_conf *
load(const char *text, struct cfg_errs *errs)
{
	struct buf	 b;
	const char	*p;

	buf_init(&b);
	for (p = text; *p != '\0'; ) {
		if (strncmp(p, "CERT", 4) == 0) {
			buf_adds(&b, cert_path);
			p += 4;
		} else if (strncmp(p, "KEY", 3) == 0) {
			buf_adds(&b, key_path);
			p += 3;
		} else
			buf_addc(&b, *p++);
	}
	write_file(conf_path, b.data);
	buf_free(&b);
	return proxyd_conf_load(conf_path, errs);
}

/* Refused with an error "FILE:LINE:COL: KEY: ...NEEDLE...". */
static void
expect_error(const char *text, int line, int col, const char *key,
    const char *needle)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct proxyd_conf	*c = load(text, &errs);
	char			 prefix[256];
	size_t			 i;

	snprintf(prefix, sizeof(prefix), "%s:%d:%d: %s: ", conf_path, line, col, key);
	if (c != NULL) {
		proxyd_conf_free(c);
		fail_msg("accepted; expected %s...%s", prefix, needle);
	}
	for (i = 0; i < errs.n; i++)
		if (strncmp(errs.msg[i], prefix, strlen(prefix)) == 0 &&
		    strstr(errs.msg[i], needle) != NULL) {
			cfg_errs_free(&errs);
			return;
		}
	for (i = 0; i < errs.n; i++)
		print_message("got: %s\n", errs.msg[i]);
	cfg_errs_free(&errs);
	fail_msg("no error %s...%s", prefix, needle);
}

static const char full[] =
    "listen:\n"
    "  - {address: 127.0.0.1:5222, tls: starttls}\n"
    "  - {address: '[::1]:5223', tls: direct}\n"
    "hamon: /run/x/hamon.sock\n"
    "tls: {cert: CERT, key: KEY}\n"
    "require_tls: true\n"
    "limits:\n"
    "  stanza_bytes: 128KiB\n"
    "  stanza_bytes_preauth: 5000\n"
    "  depth: 20\n"
    "  attributes: 30\n"
    "  attribute_bytes: 4KiB\n"
    "  text_bytes: 100KiB\n"
    "  namespaces: 8\n"
    "  buffer_bytes: 1MiB\n"
    "  buffer_bytes_preauth: 64KiB\n"
    "  stanzas_per_second: 20\n"
    "  stanza_timeout: 10s\n"
    "  auth_timeout: 30s\n"
    "move_spread: 2500ms\n"
    "workers: 3\n"
    "domains:\n"
    "  - name: example.com\n"
    "    max_connections: 100\n"
    "    prefer: a\n"
    "    limits: {depth: 10, stanzas_per_second: 5, auth_timeout: 5s}\n"
    "    tls: {cert: CERT, key: KEY}\n"
    "    move_spread: 0s\n"
    "  - {name: Example.ORG}\n"
    "control: /run/x/proxyd.sock\n"
    "http: 127.0.0.1:9293\n";

static void
test_every_key_is_read(void **unused)
{
	struct cfg_errs			 errs = { NULL, 0 };
	struct proxyd_conf		*c = load(full, &errs);
	const struct domain_conf	*d;

	if (c == NULL) {
		cfg_errs_print(&errs, stderr);
		fail();
	}
	assert_int_equal(c->nlisten, 2);
	assert_string_equal(c->listen[0].addr.text, "127.0.0.1:5222");
	assert_int_equal(c->listen[0].tls, LISTEN_TLS_STARTTLS);
	assert_int_equal(c->listen[1].addr.port, 5223);
	assert_int_equal(c->listen[1].tls, LISTEN_TLS_DIRECT);
	assert_string_equal(c->hamon, "/run/x/hamon.sock");
	assert_string_equal(c->tls.cert, cert_path);
	assert_string_equal(c->tls.key, key_path);
	assert_true(c->require_tls);
	assert_int_equal(c->limits.xml.stanza_bytes, 128 * 1024);
	assert_int_equal(c->limits.xml.stanza_bytes_preauth, 5000);
	assert_int_equal(c->limits.xml.depth, 20);
	assert_int_equal(c->limits.xml.attrs, 30);
	assert_int_equal(c->limits.xml.attr_bytes, 4096);
	assert_int_equal(c->limits.xml.text_bytes, 100 * 1024);
	assert_int_equal(c->limits.xml.ns_decls, 8);
	assert_int_equal(c->limits.xml.buffer_bytes, 1024 * 1024);
	assert_int_equal(c->limits.xml.buffer_bytes_preauth, 64 * 1024);
	assert_int_equal(c->limits.stanzas_per_second, 20);
	assert_int_equal(c->limits.stanza_timeout_ms, 10000);
	assert_int_equal(c->limits.auth_timeout_ms, 30000);
	assert_int_equal(c->move_spread_ms, 2500);
	assert_int_equal(c->workers, 3);
	assert_int_equal(c->ndomains, 2);
	d = &c->domains[0];
	assert_string_equal(d->name, "example.com");
	assert_int_equal(d->max_connections, 100);
	assert_string_equal(d->prefer, "a");
	assert_string_equal(d->tls.cert, cert_path);
	assert_string_equal(d->tls.key, key_path);
	assert_int_equal(d->move_spread_ms, 0);
	assert_string_equal(c->common.control, "/run/x/proxyd.sock");
	assert_true(c->common.has_http);
	proxyd_conf_free(c);
}

static void
test_domain_limits_override_only_what_they_name(void **unused)
{
	struct cfg_errs			 errs = { NULL, 0 };
	struct proxyd_conf		*c = load(full, &errs);
	const struct domain_conf	*d, *o;

	assert_non_null(c);
	d = &c->domains[0];
	assert_int_equal(d->limits.xml.depth, 10);
	assert_int_equal(d->limits.stanzas_per_second, 5);
	assert_int_equal(d->limits.auth_timeout_ms, 5000);
	/* The rest comes from the global limits, not the defaults. */
	assert_int_equal(d->limits.xml.stanza_bytes, 128 * 1024);
	assert_int_equal(d->limits.xml.attrs, 30);
	assert_int_equal(d->limits.stanza_timeout_ms, 10000);
	o = &c->domains[1];
	assert_int_equal(o->limits.xml.depth, 20);
	assert_int_equal(o->max_connections, 0);
	assert_null(o->prefer);
	assert_null(o->tls.cert);
	/* A domain that names no move_spread takes the global one. */
	assert_int_equal(o->move_spread_ms, 2500);
	proxyd_conf_free(c);
}

static void
test_domain_lookup_ignores_case(void **unused)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct proxyd_conf	*c = load(full, &errs);

	assert_non_null(c);
	assert_ptr_equal(proxyd_conf_domain(c, "EXAMPLE.com"), &c->domains[0]);
	assert_ptr_equal(proxyd_conf_domain(c, "example.org"), &c->domains[1]);
	assert_null(proxyd_conf_domain(c, "example.net"));
	assert_null(proxyd_conf_domain(c, "example.com."));
	proxyd_conf_free(c);
}

static void
test_defaults(void **unused)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct proxyd_conf	*c;
	struct xml_limits	 dflt;

	c = load("listen: [{address: 127.0.0.1:5222, tls: none}]\n"
	    "domains: [{name: example.com}]\n", &errs);
	assert_non_null(c);
	xmlfilter_limits_default(&dflt);
	assert_memory_equal(&c->limits.xml, &dflt, sizeof(dflt));
	assert_int_equal(c->limits.stanzas_per_second, 50);
	assert_int_equal(c->limits.stanza_timeout_ms, 30000);
	assert_int_equal(c->limits.auth_timeout_ms, 60000);
	assert_string_equal(c->hamon, "/run/jabber-ha/hamon.sock");
	assert_false(c->require_tls);
	assert_null(c->tls.cert);
	assert_int_equal(c->move_spread_ms, 5000);
	assert_int_equal(c->domains[0].move_spread_ms, 5000);
	/* workers 0 (the default): one per CPU it may run on, at most 16. */
	{
		cpu_set_t	set, one;
		int		i;

		assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
		assert_int_equal(c->workers, CPU_COUNT(&set) > 16 ? 16 :
		    CPU_COUNT(&set));
		proxyd_conf_free(c);
		/* bound to one CPU, as by taskset or CPUAffinity=: one worker */
		CPU_ZERO(&one);
		for (i = 0; i < CPU_SETSIZE && !CPU_ISSET(i, &set); i++)
			;
		CPU_SET(i, &one);
		assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
		c = load("listen: [{address: 127.0.0.1:5222, tls: none}]\n"
		    "domains: [{name: example.com}]\n", &errs);
		assert_int_equal(sched_setaffinity(0, sizeof(set), &set), 0);
		assert_non_null(c);
		assert_int_equal(c->workers, 1);
	}
	proxyd_conf_free(c);
	/* tls defaults to starttls, which then needs a certificate. */
	expect_error("listen: [{address: 127.0.0.1:5222}]\n"
	    "domains: [{name: example.com}]\n", 1, 9, "listen", "uses TLS");
}

static void
test_listen_mistakes(void **unused)
{
	expect_error("listen: [{address: 127.0.0.1:5222, tls: maybe}]\n"
	    "domains: [{name: a.b}]\n", 1, 41, "tls", "must be one of");
	expect_error("listen: [{address: 127.0.0.1:99999, tls: none}]\n"
	    "domains: [{name: a.b}]\n", 1, 20, "address", "");
	expect_error("listen: {address: 127.0.0.1:5222}\n", 1, 9, "listen", "");
	expect_error("listen:\n  - {address: 127.0.0.1:5222, tls: none}\n"
	    "  - {address: 127.0.0.1:5222, tls: none}\n"
	    "domains: [{name: a.b}]\n", 3, 15, "address", "listed twice");
	expect_error("listen: [{address: 127.0.0.1:5222, tls: none, tsl: 1}]\n"
	    "domains: [{name: a.b}]\n", 1, 47, "tsl", "tls");
}

static void
test_tls_mistakes(void **unused)
{
	expect_error("listen: [{address: 127.0.0.1:5222, tls: direct}]\n"
	    "tls: {cert: /nonexistent/c.pem, key: KEY}\n"
	    "domains: [{name: a.b}]\n", 2, 13, "cert", "cannot read");
	expect_error("listen: [{address: 127.0.0.1:5222, tls: direct}]\n"
	    "tls: {cert: CERT}\n"
	    "domains: [{name: a.b}]\n", 2, 6, "key", "");
	expect_error("listen: [{address: 127.0.0.1:5222, tls: none}]\n"
	    "require_tls: true\n"
	    "domains: [{name: a.b}]\n", 2, 14, "require_tls", "tls: none");
	expect_error("listen: [{address: 127.0.0.1:5222, tls: none}]\n"
	    "require_tls: perhaps\n"
	    "domains: [{name: a.b}]\n", 2, 14, "require_tls", "");
	expect_error("listen: [{address: 127.0.0.1:5222, tls: none}]\n"
	    "domains: [{name: a.b, tls: {cert: CERT}}]\n", 2, 28, "key", "missing");
}

static void
test_limit_mistakes(void **unused)
{
	const char	*head = "listen: [{address: 127.0.0.1:5222, tls: none}]\n"
	    "domains: [{name: a.b}]\n";
	char		 t[512];

	snprintf(t, sizeof(t), "%slimits: {depth: 1000}\n", head);
	expect_error(t, 3, 17, "depth", "");
	snprintf(t, sizeof(t), "%slimits: {stanza_timeout: 10}\n", head);
	expect_error(t, 3, 26, "stanza_timeout", "");
	snprintf(t, sizeof(t), "%slimits: {stanza_bytes: lots}\n", head);
	expect_error(t, 3, 24, "stanza_bytes", "");
	snprintf(t, sizeof(t), "%slimits: {stanzas_per_second: -1}\n", head);
	expect_error(t, 3, 30, "stanzas_per_second", "");
	snprintf(t, sizeof(t), "%slimits: {depht: 3}\n", head);
	expect_error(t, 3, 10, "depht", "depth");
	/* In range for the getter, not for the filter: the filter's rule. */
	snprintf(t, sizeof(t), "%slimits: {attribute_bytes: 100}\n", head);
	expect_error(t, 3, 9, "limits", "attribute_bytes");
	expect_error("listen: [{address: 127.0.0.1:5222, tls: none}]\n"
	    "domains:\n  - name: a.b\n    limits: {auth_timeout: 1y}\n",
	    4, 28, "auth_timeout", "");
}

static void
test_domain_mistakes(void **unused)
{
	const char	*head = "listen: [{address: 127.0.0.1:5222, tls: none}]\n";
	char		 t[512];

	snprintf(t, sizeof(t), "%sdomains: [{name: a.b}, {name: A.B}]\n", head);
	expect_error(t, 2, 31, "name", "listed twice");
	snprintf(t, sizeof(t), "%sdomains: [{name: 'a b'}]\n", head);
	expect_error(t, 2, 18, "name", "not a domain");
	snprintf(t, sizeof(t), "%sdomains: [{max_connections: 3}]\n", head);
	expect_error(t, 2, 11, "name", "");
	snprintf(t, sizeof(t), "%sdomains: [{name: a.b, max_connections: -3}]\n", head);
	expect_error(t, 2, 40, "max_connections", "");
	snprintf(t, sizeof(t), "%sdomains: [a.b]\n", head);
	expect_error(t, 2, 11, "domains", "");
	snprintf(t, sizeof(t), "%sdomains: [{name: a.b, preferred: x}]\n", head);
	expect_error(t, 2, 23, "preferred", "prefer");
}

static void
test_workers_mistakes(void **unused)
{
	const char	*head = "listen: [{address: 127.0.0.1:5222, tls: none}]\n";
	char		 t[512];

	snprintf(t, sizeof(t), "%sworkers: -1\n", head);
	expect_error(t, 2, 10, "workers", "");
	snprintf(t, sizeof(t), "%sworkers: 65\n", head);
	expect_error(t, 2, 10, "workers", "");
	snprintf(t, sizeof(t), "%sworkers: two\n", head);
	expect_error(t, 2, 10, "workers", "");
	snprintf(t, sizeof(t), "%sworker: 2\n", head);
	expect_error(t, 2, 1, "worker", "workers");
}

static void
test_move_spread_mistakes(void **unused)
{
	const char	*head = "listen: [{address: 127.0.0.1:5222, tls: none}]\n";
	char		 t[512];

	snprintf(t, sizeof(t), "%smove_spread: 5\n", head);
	expect_error(t, 2, 14, "move_spread", "");
	snprintf(t, sizeof(t), "%smove_spread: 2h\n", head);
	expect_error(t, 2, 14, "move_spread", "");
	snprintf(t, sizeof(t), "%sdomains: [{name: a.b, move_spread: -1s}]\n", head);
	expect_error(t, 2, 36, "move_spread", "");
	snprintf(t, sizeof(t), "%sdomains: [{name: a.b, move_sprad: 1s}]\n", head);
	expect_error(t, 2, 23, "move_sprad", "move_spread");
}

static void
test_backend_tls_global_and_per_backend(void **unused)
{
	struct cfg_errs			 errs = { NULL, 0 };
	struct proxyd_conf		*c;
	const struct backend_tls_conf	*g, *a, *b, *cc;

	c = load("listen: [{address: 127.0.0.1:5222, tls: none}]\n"
	    "backend_tls: {mode: starttls, ca: CERT, name: xmpp.example.com}\n"
	    "backends:\n"
	    "  - {name: a, tls: {mode: direct, port: 5223}}\n"
	    "  - {name: b, tls: {verify: false}}\n"
	    "  - {name: c}\n"
	    "domains: [{name: example.com}]\n", &errs);
	if (c == NULL) {
		cfg_errs_print(&errs, stderr);
		fail();
	}
	g = &c->backend_tls;
	assert_int_equal(g->mode, BTLS_STARTTLS);
	assert_string_equal(g->ca, cert_path);
	assert_true(g->verify);
	assert_string_equal(g->name, "xmpp.example.com");
	assert_int_equal(c->nbackends, 3);
	a = &c->backends[0].tls;
	assert_string_equal(c->backends[0].name, "a");
	assert_int_equal(a->mode, BTLS_DIRECT);
	assert_int_equal(a->port, 5223);
	/* What a backend does not name comes from backend_tls. */
	assert_string_equal(a->ca, cert_path);
	assert_true(a->verify);
	assert_string_equal(a->name, "xmpp.example.com");
	b = &c->backends[1].tls;
	assert_int_equal(b->mode, BTLS_STARTTLS);
	assert_false(b->verify);
	cc = &c->backends[2].tls;
	assert_memory_equal(cc, g, sizeof(*g));
	proxyd_conf_free(c);

	/* The default: plain XMPP, verification on once TLS is asked for. */
	c = load("domains: [{name: example.com}]\n", &errs);
	assert_non_null(c);
	assert_int_equal(c->backend_tls.mode, BTLS_NONE);
	assert_true(c->backend_tls.verify);
	assert_null(c->backend_tls.ca);
	assert_int_equal(c->nbackends, 0);
	proxyd_conf_free(c);
}

static void
test_backend_tls_mistakes(void **unused)
{
	expect_error("backend_tls: {mode: tls}\n", 1, 21, "mode", "must be one of");
	expect_error("backend_tls: {mode: starttls, ca: /nonexistent/ca.pem}\n",
	    1, 35, "ca", "cannot read");
	expect_error("backend_tls: {mode: direct, port: 70000}\n", 1, 35, "port", "");
	expect_error("backend_tls: {mode: direct, verfiy: false}\n", 1, 29, "verfiy",
	    "verify");
	expect_error("backend_tls: {name: 'a b'}\n", 1, 21, "name", "not a host");
	expect_error("backends: [{name: a}, {name: a}]\n", 1, 30, "name",
	    "listed twice");
	expect_error("backends: [{tls: {mode: none}}]\n", 1, 12, "name", "");
	expect_error("backends: [a]\n", 1, 12, "backends", "");
}

/* A CA file that is not PEM stops the start (or a reload) with its name. */
static void
test_a_bad_ca_file_is_refused_by_name(void **unused)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct proxyd_conf	*c;
	struct tls_client	*tc;
	char			 err[512];

	c = load("backend_tls: {mode: starttls, ca: CERT}\n", &errs);
	assert_non_null(c);
	assert_null(tls_client_new(c, err, sizeof(err)));
	assert_non_null(strstr(err, cert_path));
	assert_non_null(strstr(err, "CA file"));
	proxyd_conf_free(c);
	/* Mode none needs no CA at all. */
	c = load("backend_tls: {mode: none, ca: CERT}\n", &errs);
	assert_non_null(c);
	assert_non_null(tc = tls_client_new(c, err, sizeof(err)));
	assert_int_equal(tls_client_conf(tc, "zz")->mode, BTLS_NONE);
	assert_null(tls_client_ssl(tc, "zz", "example.com"));
	tls_client_free(tc);
	proxyd_conf_free(c);
}

/* An idle proxyd (no listener, no domain) is valid: a reload fills it. */
static void
test_empty_config_is_an_idle_proxy(void **unused)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct proxyd_conf	*c = load("log_level: info\n", &errs);

	assert_non_null(c);
	assert_int_equal(c->nlisten, 0);
	assert_int_equal(c->ndomains, 0);
	assert_null(proxyd_conf_domain(c, "a.b"));
	proxyd_conf_free(c);
	c = load("listen: []\ndomains: []\n", &errs);
	assert_non_null(c);
	proxyd_conf_free(c);
	assert_int_equal(errs.n, 0);
}

static void
test_unknown_top_key_is_named(void **unused)
{
	expect_error("listen: [{address: 127.0.0.1:5222, tls: none}]\n"
	    "domains: [{name: a.b}]\nhamn: /x\n", 3, 1, "hamn", "hamon");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_key_is_read),
		cmocka_unit_test(test_domain_limits_override_only_what_they_name),
		cmocka_unit_test(test_domain_lookup_ignores_case),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_listen_mistakes),
		cmocka_unit_test(test_tls_mistakes),
		cmocka_unit_test(test_limit_mistakes),
		cmocka_unit_test(test_domain_mistakes),
		cmocka_unit_test(test_move_spread_mistakes),
		cmocka_unit_test(test_workers_mistakes),
		cmocka_unit_test(test_backend_tls_global_and_per_backend),
		cmocka_unit_test(test_backend_tls_mistakes),
		cmocka_unit_test(test_a_bad_ca_file_is_refused_by_name),
		cmocka_unit_test(test_empty_config_is_an_idle_proxy),
		cmocka_unit_test(test_unknown_top_key_is_named),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
