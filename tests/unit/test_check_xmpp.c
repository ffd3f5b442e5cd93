/*
 * test_check_xmpp.c: the xmpp check against scripted servers on 127.0.0.1:
 * a real stream passes; refusal, silence, garbage, TLS, floods, trickles and
 * XML tricks fail with a clear error in time, and stall no other probe.
 */
#include "probe_server.h"

#define DOMAIN	"example.test"

static const char header_reply[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' from='example.test' "
    "id='s1' version='1.0' xml:lang='en'>";
static const char features[] =
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    "<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism>"
    "</mechanisms></stream:features>";

/* Scripts: each gets the connection after the probe connected. */

static void
good_script(struct srv *s, int fd)
{
	if (srv_expect(s, fd, "version='1.0'>", 2000) == -1)
		return;
	srv_sends(fd, header_reply);
	srv_sends(fd, features);
	(void)srv_expect(s, fd, "</stream:stream>", 2000);
	snprintf(s->note, sizeof(s->note), "%s", s->got);
}

/* The reply in two writes, split at the offset in s->arg. */
static void
split_script(struct srv *s, int fd)
{
	char	reply[1024];
	size_t	at = *(size_t *)s->arg, len;

	snprintf(reply, sizeof(reply), "%s%s", header_reply, features);
	len = strlen(reply);
	if (srv_expect(s, fd, "version='1.0'>", 2000) == -1)
		return;
	srv_send(fd, reply, at);
	srv_sleep(s, 2);
	srv_send(fd, reply + at, len - at);
	(void)srv_expect(s, fd, "</stream:stream>", 2000);
}

static void
silent_script(struct srv *s, int fd)
{
	(void)srv_sleep(s, 5000);
}

static void
close_script(struct srv *s, int fd)
{
}

/* What a direct-TLS server does with a plaintext header: reads it, resets. */
static void
reset_after_header_script(struct srv *s, int fd)
{
	struct linger	lg = { 1, 0 };

	(void)srv_expect(s, fd, "<stream:stream", 1000);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void
garbage_script(struct srv *s, int fd)
{
	srv_sends(fd, "\x01\x02garbage\xff\xfe and more garbage\n");
	(void)srv_sleep(s, 3000);
}

static void
tls_script(struct srv *s, int fd)
{
	static const unsigned char hello[] = { 0x16, 0x03, 0x03, 0x00, 0x31, 0x02,
	    0x00, 0x00, 0x2d, 0x03, 0x03, 0x5a, 0x1b, 0x00, 0x00, 0x00 };

	(void)srv_expect(s, fd, "version='1.0'>", 2000);
	srv_send(fd, hello, sizeof(hello));
	(void)srv_sleep(s, 3000);
}

/* A stream header whose attributes never end. */
static void
endless_header_script(struct srv *s, int fd)
{
	char	attr[64];
	int	i;

	srv_sends(fd, "<?xml version='1.0'?><stream:stream xmlns:stream="
	    "'http://etherx.jabber.org/streams' ");
	for (i = 0; i < 1000000; i++) {
		snprintf(attr, sizeof(attr), "a%d='%d' ", i, i);
		if (srv_sends(fd, attr) == -1 || (i % 64 == 0 && srv_sleep(s, 0) == -1))
			return;
	}
}

static void
trickle_script(struct srv *s, int fd)
{
	char	reply[1024];
	size_t	i;

	snprintf(reply, sizeof(reply), "%s%s", header_reply, features);
	for (i = 0; reply[i] != '\0'; i++)
		if (srv_send(fd, reply + i, 1) == -1 || srv_sleep(s, 1000) != 0)
			return;
}

/* 100 MB of a valid-looking stream, as fast as the socket takes it. */
static void
flood_script(struct srv *s, int fd)
{
	static char	chunk[65536];
	size_t		sent = 0;

	memset(chunk, ' ', sizeof(chunk));
	(void)srv_expect(s, fd, "version='1.0'>", 2000);
	srv_sends(fd, header_reply);
	while (sent < 100u * 1024 * 1024) {
		if (srv_send(fd, chunk, sizeof(chunk)) == -1)
			return;
		sent += sizeof(chunk);
	}
}

static void
reply_script(struct srv *s, int fd)
{
	(void)srv_expect(s, fd, "version='1.0'>", 2000);
	srv_sends(fd, s->arg);
	(void)srv_sleep(s, 3000);
}

/* ---------------------------------------------------------------- helpers */

/* One xmpp probe against a server running SCRIPT; the outcome in O. */
static void
probe_once(srv_script script, void *arg, int timeout_ms, struct outcome *o,
    struct srv *keep)
{
	struct event_base	*base = event_base_new();
	struct check_target	 t;
	struct srv		 s;

	srv_start(&s, script, arg);
	target_init(&t, s.port, DOMAIN);
	memset(o, 0, sizeof(*o));
	o->t0 = now_mono_ms();
	(void)check_xmpp_start(base, &t, timeout_ms, outcome_cb, o);
	run_until(base, o, 1, timeout_ms + 3000);
	if (keep != NULL)
		srv_wait_scripts(&s, base, 1, 3000);
	srv_stop(&s);
	if (keep != NULL)
		*keep = s;
	event_base_free(base);
	assert_int_equal(o->calls, 1);
	assert_int_equal(o->r.kind, CHECK_XMPP);
}

static void
probe_reply(const char *reply, int timeout_ms, struct outcome *o)
{
	probe_once(reply_script, (void *)reply, timeout_ms, o, NULL);
}

/* ---------------------------------------------------------------- tests */

static void
test_features_in_time_is_ok_and_the_stream_is_closed_politely(void **state)
{
	struct outcome	o;
	struct srv	s;

	probe_once(good_script, NULL, 1000, &o, &s);
	assert_true(o.r.ok);
	assert_string_equal(o.r.error, "");
	assert_true(o.r.latency_us > 0 && o.r.latency_us < 500000);
	assert_non_null(strstr(s.note, "<stream:stream to='example.test' "
	    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
	    "version='1.0'>"));
	assert_non_null(strstr(s.note, "</stream:stream>"));
}

static void
test_features_split_at_every_byte_is_ok(void **state)
{
	struct outcome	o;
	size_t		at, len = strlen(header_reply) + strlen(features);

	for (at = 1; at < len; at++) {
		probe_once(split_script, &at, 1000, &o, NULL);
		if (!o.r.ok)
			fail_msg("split at %zu: %s", at, o.r.error);
	}
}

static void
test_refused_port_says_connection_refused(void **state)
{
	struct event_base	*base = event_base_new();
	struct check_target	 t;
	struct outcome		 o;

	target_init(&t, srv_free_port(), DOMAIN);
	memset(&o, 0, sizeof(o));
	o.t0 = now_mono_ms();
	(void)check_xmpp_start(base, &t, 1000, outcome_cb, &o);
	/* Even an immediate failure is reported from the loop, not from start. */
	assert_int_equal(o.calls, 0);
	run_until(base, &o, 1, 2000);
	event_base_free(base);
	assert_int_equal(o.calls, 1);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "connect: Connection refused");
	assert_true(o.at_ms < 200);
}

static void
test_silent_server_times_out_at_the_timeout(void **state)
{
	struct outcome	o;

	probe_once(silent_script, NULL, 300, &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "stream: timeout after 300 ms (0 bytes received)");
	assert_in_range(o.at_ms, 295, 650);
}

static void
test_immediate_close_says_closed(void **state)
{
	struct outcome	o;

	probe_once(close_script, NULL, 1000, &o, NULL);
	assert_false(o.r.ok);
	/* Closed before or after our header went out: either way, said so. */
	if (strstr(o.r.error, "connection closed by the server after 0 bytes") == NULL)
		assert_error_has(&o, "Connection reset");
	assert_true(o.at_ms < 500);
}

static void
test_reset_after_our_header_names_a_tls_only_port(void **state)
{
	struct outcome	o;

	probe_once(reset_after_header_script, NULL, 1000, &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "stream: read: Connection reset by peer "
	    "before any reply (a TLS-only port?)");
}

static void
test_garbage_is_not_xml(void **state)
{
	struct outcome	o;

	probe_once(garbage_script, NULL, 1000, &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "stream: not XML: ");
	assert_true(o.at_ms < 500);
	/* Shown to people: no control bytes survive. */
	assert_null(strpbrk(o.r.error, "\x01\x02\n"));
}

static void
test_tls_only_port_is_named(void **state)
{
	struct outcome	o;

	probe_once(tls_script, NULL, 1000, &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "not XML");
	assert_error_has(&o, "TLS");
	assert_true(o.at_ms < 500);
}

static void
test_endless_stream_header_is_cut_at_the_byte_bound(void **state)
{
	struct outcome	o;

	probe_once(endless_header_script, NULL, 2000, &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "stream: more than 64 KiB");
	assert_true(o.at_ms < 1000);
}

static void
test_one_byte_a_second_times_out(void **state)
{
	struct outcome	o;

	probe_once(trickle_script, NULL, 500, &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "stream: timeout after 500 ms (1 bytes received)");
	assert_in_range(o.at_ms, 495, 850);
}

static void
test_hundred_megabytes_are_not_read(void **state)
{
	struct outcome	o;

	probe_once(flood_script, NULL, 2000, &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "features: more than 64 KiB");
	assert_true(o.at_ms < 1000);
}

static void
test_stream_error_gives_its_condition(void **state)
{
	char		reply[1024];
	struct outcome	o;

	snprintf(reply, sizeof(reply), "%s<stream:error><host-unknown xmlns="
	    "'urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns="
	    "'urn:ietf:params:xml:ns:xmpp-streams'>no such host</text>"
	    "</stream:error></stream:stream>", header_reply);
	probe_reply(reply, 1000, &o);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error,
	    "features: stream error: host-unknown (no such host)");
}

static void
test_wrong_root_or_namespace_is_refused(void **state)
{
	struct outcome	o;

	probe_reply("<html><body>hello</body></html>", 1000, &o);
	assert_false(o.r.ok);
	assert_error_has(&o, "stream: expected <stream:stream>, got <html>");

	probe_reply("<stream:stream xmlns:stream='urn:bogus' version='1.0'>"
	    "<stream:features/>", 1000, &o);
	assert_false(o.r.ok);
	assert_error_has(&o, "in namespace 'urn:bogus'");

	probe_reply("HTTP/1.1 400 Bad Request\r\n\r\n", 1000, &o);
	assert_false(o.r.ok);
	assert_error_has(&o, "an HTTP server");
}

static void
test_something_else_than_features_fails(void **state)
{
	char		reply[1024];
	struct outcome	o;

	snprintf(reply, sizeof(reply), "%s<message><body>hi</body></message>",
	    header_reply);
	probe_reply(reply, 1000, &o);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error,
	    "features: expected <stream:features>, got <message>");
}

static void
test_unfinished_features_time_out(void **state)
{
	char		reply[1024];
	struct outcome	o;

	snprintf(reply, sizeof(reply), "%s<stream:features><mechanisms", header_reply);
	probe_reply(reply, 300, &o);
	assert_false(o.r.ok);
	assert_error_has(&o, "features: timeout after 300 ms");
}

static void
test_doctype_and_entities_are_refused(void **state)
{
	struct outcome	o;

	probe_reply("<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY a 'aaaa'>"
	    "<!ENTITY b '&a;&a;&a;&a;'>]><stream:stream xmlns:stream="
	    "'http://etherx.jabber.org/streams'>&b;", 1000, &o);
	assert_false(o.r.ok);
	assert_error_has(&o, "DOCTYPE");
}

static void
test_deep_nesting_is_refused(void **state)
{
	struct outcome	o;
	struct buf	b;
	int		i;

	buf_init(&b);
	buf_adds(&b, header_reply);
	buf_adds(&b, "<stream:features>");
	for (i = 0; i < 100; i++)
		buf_adds(&b, "<a>");
	probe_reply(b.data, 1000, &o);
	buf_free(&b);
	assert_false(o.r.ok);
	assert_error_has(&o, "nested deeper than");
}

static void
test_too_many_elements_or_attributes_are_refused(void **state)
{
	struct outcome	o;
	struct buf	b;
	int		i;

	buf_init(&b);
	buf_adds(&b, header_reply);
	buf_adds(&b, "<stream:features>");
	for (i = 0; i < 1000; i++)
		buf_adds(&b, "<x/>");
	probe_reply(b.data, 1000, &o);
	assert_false(o.r.ok);
	assert_error_has(&o, "more than 256 elements");

	buf_reset(&b);
	buf_adds(&b, header_reply);
	buf_adds(&b, "<stream:features");
	for (i = 0; i < 40; i++)
		buf_printf(&b, " a%d='x'", i);
	buf_adds(&b, "/>");
	probe_reply(b.data, 1000, &o);
	buf_free(&b);
	assert_false(o.r.ok);
	assert_error_has(&o, "more than 16 attributes");
}

/* 50 probes at once, one against a trickling server: the others do not wait. */
static void
test_hostile_backend_stalls_no_other_probe(void **state)
{
	struct event_base	*base = event_base_new();
	struct check_target	 good, bad;
	struct outcome		 o[50];
	struct srv		 sg, sb;
	uint64_t		 last = 0;
	int			 i;

	srv_start(&sg, good_script, NULL);
	srv_start(&sb, trickle_script, NULL);
	target_init(&good, sg.port, DOMAIN);
	target_init(&bad, sb.port, DOMAIN);
	memset(o, 0, sizeof(o));
	for (i = 0; i < 50; i++) {
		o[i].t0 = now_mono_ms();
		(void)check_xmpp_start(base, i == 0 ? &bad : &good, 1000, outcome_cb,
		    &o[i]);
	}
	run_until(base, o, 50, 4000);
	srv_stop(&sg);
	srv_stop(&sb);
	event_base_free(base);
	for (i = 1; i < 50; i++) {
		assert_int_equal(o[i].calls, 1);
		if (!o[i].r.ok)
			fail_msg("probe %d: %s", i, o[i].r.error);
		last = o[i].at_ms > last ? o[i].at_ms : last;
	}
	assert_true(last < 500);
	assert_int_equal(o[0].calls, 1);
	assert_false(o[0].r.ok);
	assert_error_has(&o[0], "timeout after 1000 ms");
	assert_in_range(o[0].at_ms, 995, 1400);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_features_in_time_is_ok_and_the_stream_is_closed_politely),
		cmocka_unit_test(test_features_split_at_every_byte_is_ok),
		cmocka_unit_test(test_refused_port_says_connection_refused),
		cmocka_unit_test(test_silent_server_times_out_at_the_timeout),
		cmocka_unit_test(test_immediate_close_says_closed),
		cmocka_unit_test(test_reset_after_our_header_names_a_tls_only_port),
		cmocka_unit_test(test_garbage_is_not_xml),
		cmocka_unit_test(test_tls_only_port_is_named),
		cmocka_unit_test(test_endless_stream_header_is_cut_at_the_byte_bound),
		cmocka_unit_test(test_one_byte_a_second_times_out),
		cmocka_unit_test(test_hundred_megabytes_are_not_read),
		cmocka_unit_test(test_stream_error_gives_its_condition),
		cmocka_unit_test(test_wrong_root_or_namespace_is_refused),
		cmocka_unit_test(test_something_else_than_features_fails),
		cmocka_unit_test(test_unfinished_features_time_out),
		cmocka_unit_test(test_doctype_and_entities_are_refused),
		cmocka_unit_test(test_deep_nesting_is_refused),
		cmocka_unit_test(test_too_many_elements_or_attributes_are_refused),
		cmocka_unit_test(test_hostile_backend_stalls_no_other_probe),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
