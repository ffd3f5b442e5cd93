/*
 * test_probe.c: what every probe promises: exactly one report, from the loop
 * and never from start; none after a cancel, wherever the cancel comes from;
 * nothing leaked; error text safe to show.
 */
#include "probe_server.h"
#include "probe_int.h"

static void
silent_script(struct srv *s, int fd)
{
	(void)srv_sleep(s, 5000);
}

/* ---------------------------------------------------------------- sanitize */

static void
test_sanitize_keeps_utf8_and_neutralises_the_rest(void **state)
{
	char	out[32];

	probe_sanitize(out, sizeof(out), "caf\xc3\xa9 \xe2\x82\xac", 10);
	assert_string_equal(out, "caf\xc3\xa9 \xe2\x82\xac");
	probe_sanitize(out, sizeof(out), "a\x1b[1m\n\tb\x7f", 9);
	assert_string_equal(out, "a?[1m  b?");
	/* Invalid: a lone continuation, an overlong form, a surrogate, a cut sequence. */
	probe_sanitize(out, sizeof(out), "\x80x\xc0\xafy\xed\xa0\x80z\xe2\x82", 13);
	assert_string_equal(out, "?x??y???z??");
	/* Stops at NUL. */
	probe_sanitize(out, sizeof(out), "ab\0cd", 5);
	assert_string_equal(out, "ab");
}

static void
test_sanitize_never_cuts_a_character(void **state)
{
	char	out[6];

	/* "ab€€": room for 5 bytes: "ab" + one € (3 bytes) exactly. */
	probe_sanitize(out, sizeof(out), "ab\xe2\x82\xac\xe2\x82\xac", 8);
	assert_string_equal(out, "ab\xe2\x82\xac");
	probe_sanitize(out, 5, "ab\xe2\x82\xac", 5);
	assert_string_equal(out, "ab");
}

/* ---------------------------------------------------------------- reports */

struct pair {
	struct probe	*other;
	struct outcome	 o;
	int		 cancel_self;
	struct probe	*self;
};

static void
cancel_other_cb(const struct check_result *r, void *arg)
{
	struct pair	*p = arg;

	p->o.calls++;
	p->o.r = *r;
	if (p->other != NULL)
		probe_cancel(p->other);
	if (p->cancel_self)
		probe_cancel(p->self);		/* a no-op: it is reporting */
}

static void
test_cancel_from_another_probes_callback_is_safe(void **state)
{
	struct event_base	*base = event_base_new();
	struct check_target	 refused, silent;
	struct outcome		 o2;
	struct pair		 p1;
	struct srv		 s;

	srv_start(&s, silent_script, NULL);
	target_init(&refused, srv_free_port(), "example.test");
	target_init(&silent, s.port, "example.test");
	memset(&p1, 0, sizeof(p1));
	memset(&o2, 0, sizeof(o2));
	p1.cancel_self = 1;
	p1.self = check_xmpp_start(base, &refused, 1000, cancel_other_cb, &p1);
	p1.other = check_xmpp_start(base, &silent, 300, outcome_cb, &o2);
	run_for(base, 600);
	srv_stop(&s);
	event_base_free(base);
	assert_int_equal(p1.o.calls, 1);
	assert_int_equal(o2.calls, 0);
}

/* Two verdicts in the same loop turn: each may cancel the other; one report. */
static void
test_cancel_after_the_verdict_but_before_the_report_silences_it(void **state)
{
	struct event_base	*base = event_base_new();
	struct check_target	 a, b;
	struct pair		 pa, pb;

	target_init(&a, srv_free_port(), "example.test");
	target_init(&b, srv_free_port(), "example.test");
	memset(&pa, 0, sizeof(pa));
	memset(&pb, 0, sizeof(pb));
	pa.self = check_xmpp_start(base, &a, 1000, cancel_other_cb, &pa);
	pb.self = check_xmpp_start(base, &b, 1000, cancel_other_cb, &pb);
	pa.other = pb.self;
	pb.other = pa.self;
	run_for(base, 300);
	event_base_free(base);
	assert_int_equal(pa.o.calls + pb.o.calls, 1);
}

static void
test_each_kind_cancelled_in_flight_reports_nothing_and_leaks_nothing(void **state)
{
	struct event_base	*base = event_base_new();
	struct check_target	 t;
	struct outcome		 o[4];
	struct probe		*p[4];
	struct srv		 s;
	char			 url[64];
	int			 i;

	srv_start(&s, silent_script, NULL);
	target_init(&t, s.port, "example.test");
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/status", s.port);
	t.login_user = "probe";
	t.login_password = "pw";
	t.spoolsync_url = url;
	t.exec_command = "sleep 10";
	memset(o, 0, sizeof(o));
	p[0] = check_xmpp_start(base, &t, 1000, outcome_cb, &o[0]);
	p[1] = check_login_start(base, &t, 1000, outcome_cb, &o[1]);
	p[2] = check_spoolsync_start(base, &t, 1000, outcome_cb, &o[2]);
	p[3] = check_exec_start(base, &t, 1000, outcome_cb, &o[3]);
	run_for(base, 50);
	for (i = 0; i < 4; i++)
		probe_cancel(p[i]);
	run_for(base, 1200);
	srv_stop(&s);
	for (i = 0; i < 4; i++)
		assert_int_equal(o[i].calls, 0);
	probe_cancel(NULL);
	event_base_free(base);
}

static void
test_each_kind_reports_exactly_once(void **state)
{
	struct event_base	*base = event_base_new();
	struct check_target	 t;
	struct outcome		 o[4];
	struct srv		 s;
	char			 url[64];
	int			 i;

	srv_start(&s, silent_script, NULL);
	target_init(&t, s.port, "example.test");
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/status", s.port);
	t.login_user = "probe";
	t.login_password = "pw";
	t.spoolsync_url = url;
	t.exec_command = "sleep 10";
	memset(o, 0, sizeof(o));
	for (i = 0; i < 4; i++)
		o[i].t0 = now_mono_ms();
	(void)check_xmpp_start(base, &t, 200, outcome_cb, &o[0]);
	(void)check_login_start(base, &t, 200, outcome_cb, &o[1]);
	(void)check_spoolsync_start(base, &t, 200, outcome_cb, &o[2]);
	(void)check_exec_start(base, &t, 200, outcome_cb, &o[3]);
	for (i = 0; i < 4; i++)
		assert_int_equal(o[i].calls, 0);
	run_for(base, 800);
	srv_stop(&s);
	event_base_free(base);
	for (i = 0; i < 4; i++) {
		assert_int_equal(o[i].calls, 1);
		assert_false(o[i].r.ok);
		assert_error_has(&o[i], "timeout after 200 ms");
		assert_true(o[i].r.latency_us >= 195000);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sanitize_keeps_utf8_and_neutralises_the_rest),
		cmocka_unit_test(test_sanitize_never_cuts_a_character),
		cmocka_unit_test(test_cancel_from_another_probes_callback_is_safe),
		cmocka_unit_test(test_cancel_after_the_verdict_but_before_the_report_silences_it),
		cmocka_unit_test(test_each_kind_cancelled_in_flight_reports_nothing_and_leaks_nothing),
		cmocka_unit_test(test_each_kind_reports_exactly_once),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
