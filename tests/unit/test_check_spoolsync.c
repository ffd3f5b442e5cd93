/*
 * test_check_spoolsync.c: the spoolsync check against scripted HTTP servers:
 * in sync, a peer down, lagging or behind; HTTP errors, bad JSON, floods,
 * silence and refusal, each with a clear error.
 */
#include "probe_server.h"

#define SYNCED	"{\"node\":\"a\",\"mode\":\"both\",\"peers\":[" \
		"{\"name\":\"b\",\"connected\":true,\"in_sync\":true,\"queued\":0,\"lag_ms\":12}," \
		"{\"name\":\"c\",\"connected\":true,\"in_sync\":true,\"queued\":0,\"lag_ms\":40}]}"

/* s->arg: the whole reply, or NULL for a 200 with SYNCED. */
static void
http_script(struct srv *s, int fd)
{
	char	reply[4096];

	if (srv_expect(s, fd, "\r\n\r\n", 2000) == -1)
		return;
	if (s->arg != NULL)
		srv_sends(fd, s->arg);
	else {
		snprintf(reply, sizeof(reply), "HTTP/1.1 200 OK\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\n\r\n%s",
		    strlen(SYNCED), SYNCED);
		srv_sends(fd, reply);
	}
	(void)srv_sleep(s, 2000);
}

/* A body of 100 MB announced, or streamed without a length. */
static void
flood_script(struct srv *s, int fd)
{
	static char	chunk[65536];
	size_t		sent = 0;

	memset(chunk, ' ', sizeof(chunk));
	(void)srv_expect(s, fd, "\r\n\r\n", 2000);
	srv_sends(fd, s->arg != NULL ? "HTTP/1.0 200 OK\r\nContent-Length: "
	    "104857600\r\n\r\n" : "HTTP/1.0 200 OK\r\n\r\n");
	while (sent < 100u * 1024 * 1024 && srv_send(fd, chunk, sizeof(chunk)) == 0)
		sent += sizeof(chunk);
}

/* Sends s->arg and closes. */
static void
close_script(struct srv *s, int fd)
{
	if (srv_expect(s, fd, "\r\n\r\n", 2000) == 0)
		srv_sends(fd, s->arg);
}

static void
silent_script(struct srv *s, int fd)
{
	(void)srv_sleep(s, 3000);
}

static void
spoolsync_url(struct check_target *t, uint16_t port, char *url, size_t len)
{
	snprintf(url, len, "http://127.0.0.1:%u/status", port);
	memset(t, 0, sizeof(*t));
	t->backend = "b1";
	t->spoolsync_url = url;
	t->max_lag_ms = 2000;
}

static void
spoolsync_once(srv_script script, const char *reply, int64_t max_lag,
    struct outcome *o, struct srv *keep)
{
	struct event_base	*base = event_base_new();
	struct check_target	 t;
	struct srv		 s;
	char			 url[128];

	srv_start(&s, script, (void *)reply);
	spoolsync_url(&t, s.port, url, sizeof(url));
	t.max_lag_ms = max_lag;
	memset(o, 0, sizeof(*o));
	o->t0 = now_mono_ms();
	(void)check_spoolsync_start(base, &t, 500, outcome_cb, o);
	run_until(base, o, 1, 3000);
	srv_stop(&s);
	if (keep != NULL)
		*keep = s;
	event_base_free(base);
	assert_int_equal(o->calls, 1);
	assert_int_equal(o->r.kind, CHECK_SPOOLSYNC);
}

static void	close_script(struct srv *, int);

/* A 200 reply carrying BODY, ended by the close (no Content-Length). */
static void
spoolsync_body(const char *body, int64_t max_lag, struct outcome *o)
{
	char	reply[4096];

	snprintf(reply, sizeof(reply), "HTTP/1.0 200 OK\r\n\r\n%s", body);
	spoolsync_once(close_script, reply, max_lag, o, NULL);
}

static void
test_every_peer_in_sync_is_synced_with_the_worst_lag(void **state)
{
	struct outcome	o;
	struct srv	s;

	spoolsync_once(http_script, NULL, 2000, &o, &s);
	assert_true(o.r.ok);
	assert_true(o.r.synced);
	assert_int_equal(o.r.lag_ms, 40);
	assert_string_equal(o.r.error, "");
	assert_non_null(strstr(s.got, "GET /status HTTP/1.0\r\n"));
	assert_non_null(strstr(s.got, "Host: 127.0.0.1:"));
}

static void
test_a_peer_down_or_behind_is_unsynced(void **state)
{
	struct outcome	o;

	spoolsync_body("{\"peers\":[{\"name\":\"a\",\"connected\":true,\"in_sync\":true,"
	    "\"lag_ms\":1},{\"name\":\"b\",\"connected\":false,\"in_sync\":false}]}",
	    2000, &o);
	assert_true(o.r.ok);
	assert_false(o.r.synced);
	assert_string_equal(o.r.error, "peer b: not connected (and this spool had "
	    "not caught up with it)");
	assert_string_equal(o.r.peers_gone, "");

	spoolsync_body("{\"peers\":[{\"name\":\"b\",\"connected\":true,\"in_sync\":false,"
	    "\"queued\":12,\"lag_ms\":5}]}", 2000, &o);
	assert_true(o.r.ok);
	assert_false(o.r.synced);
	assert_string_equal(o.r.error, "peer b: not in sync (12 queued)");
}

static void
test_lag_over_max_lag_is_unsynced(void **state)
{
	struct outcome	o;

	spoolsync_body("{\"peers\":[{\"name\":\"b\",\"connected\":true,\"in_sync\":true,"
	    "\"lag_ms\":3200}]}", 2000, &o);
	assert_true(o.r.ok);
	assert_false(o.r.synced);
	assert_int_equal(o.r.lag_ms, 3200);
	assert_string_equal(o.r.error, "peer b: lag 3200 ms > 2000 ms");
	/* No max_lag configured: lag alone does not count. */
	spoolsync_body("{\"peers\":[{\"name\":\"b\",\"connected\":true,\"in_sync\":true,"
	    "\"lag_ms\":3200}]}", -1, &o);
	assert_true(o.r.synced);
}

/* A down link to a peer this spool had caught up with is left to the view. */
static void
test_gone_peers_that_were_caught_up_are_listed_not_judged(void **state)
{
	struct outcome	o;

	spoolsync_body("{\"peers\":[{\"name\":\"a\",\"connected\":false,"
	    "\"caught_up\":true,\"lag_ms\":90000,\"queued\":500},"
	    "{\"name\":\"c\",\"connected\":true,\"in_sync\":true,\"lag_ms\":7},"
	    "{\"name\":\"d\",\"connected\":false,\"caught_up\":true}]}", 2000, &o);
	assert_true(o.r.ok);
	assert_true(o.r.synced);
	assert_string_equal(o.r.peers_gone, "a d");
	assert_int_equal(o.r.lag_ms, 7);	/* a dead peer's backlog is not lag */

	/* A hostile name cannot smuggle extra names into the list. */
	spoolsync_body("{\"peers\":[{\"name\":\"a b\",\"connected\":false,"
	    "\"caught_up\":true}]}", 2000, &o);
	assert_false(o.r.synced);
	assert_string_equal(o.r.peers_gone, "");
	assert_non_null(strstr(o.r.error, "no valid name"));
}

static void
test_no_peers_is_unsynced(void **state)
{
	struct outcome	o;

	spoolsync_body("{\"node\":\"a\",\"peers\":[]}", 2000, &o);
	assert_true(o.r.ok);
	assert_false(o.r.synced);
	assert_error_has(&o, "no peers");
}

static void
test_http_errors_and_bad_json_are_not_ok(void **state)
{
	struct outcome	o;

	spoolsync_once(http_script, "HTTP/1.1 500 Internal Server Error\r\n"
	    "Content-Length: 0\r\n\r\n", 2000, &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "http 500");

	spoolsync_body("{\"peers\": [", 2000, &o);
	assert_false(o.r.ok);
	assert_error_has(&o, "bad JSON: ");

	spoolsync_body("[1,2]", 2000, &o);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "bad JSON: not an object");

	spoolsync_body("{\"node\":\"a\"}", 2000, &o);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "bad answer: no \"peers\" list");

	spoolsync_once(http_script, "SSH-2.0-OpenSSH_9.2\r\n\r\n", 2000, &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "http: not an HTTP reply");
}

static void
test_a_truncated_reply_is_said(void **state)
{
	struct outcome	o;

	spoolsync_once(http_script, "HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n"
	    "{\"peers\":[]}", 2000, &o, NULL);
	/* The server keeps the connection open: the deadline ends it. */
	assert_false(o.r.ok);
	assert_error_has(&o, "http: timeout after 500 ms");

	spoolsync_once(close_script, "HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n"
	    "{\"peers\":[]}", 2000, &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "http: reply truncated (12 of 100 bytes)");

	spoolsync_once(close_script, "HTTP/1.0 200 OK\r\nContent-Type: text/plain",
	    2000, &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "http: connection closed before a reply");
}

static void
test_huge_replies_are_cut_at_one_mebibyte(void **state)
{
	struct outcome	o;

	spoolsync_once(flood_script, "announced", 2000, &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "http: reply body over 1 MiB");
	assert_true(o.at_ms < 300);

	spoolsync_once(flood_script, NULL, 2000, &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "http: reply body over 1 MiB");
	assert_true(o.at_ms < 500);
}

static void
test_refused_and_silent_servers_fail_in_time(void **state)
{
	struct event_base	*base = event_base_new();
	struct check_target	 t;
	struct outcome		 o;
	char			 url[128];

	spoolsync_url(&t, srv_free_port(), url, sizeof(url));
	memset(&o, 0, sizeof(o));
	(void)check_spoolsync_start(base, &t, 500, outcome_cb, &o);
	run_until(base, &o, 1, 2000);
	event_base_free(base);
	assert_int_equal(o.calls, 1);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "connect: Connection refused");

	spoolsync_once(silent_script, NULL, 2000, &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "http: timeout after 500 ms (0 bytes received)");
	assert_in_range(o.at_ms, 495, 850);
}

static void
test_url_forms(void **state)
{
	static const struct {
		const char	*url, *host, *path;
		unsigned	 port;
	} good[] = {
		{ "http://127.0.0.1:9291/status", "127.0.0.1", "/status", 9291 },
		{ "http://127.0.0.1/status", "127.0.0.1", "/status", 80 },
		{ "http://127.0.0.1:8080", "127.0.0.1", "/", 8080 },
		{ "http://[::1]:9291/status?x=1", "::1", "/status?x=1", 9291 },
		{ "http://localhost:9291/status", "127.0.0.1", "/status", 9291 },
	};
	static const char *const bad[] = {
		"https://127.0.0.1/status", "ftp://x/", "http://", "http://:80/",
		"http://example.com/status", "http://127.0.0.1:0/", "http://127.0.0.1:99999/",
		"http://127.0.0.1:80x/", "http://[::1/", "127.0.0.1:80", NULL,
	};
	char		 host[64], err[160];
	const char	*path;
	uint16_t	 port;
	size_t		 i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(check_spoolsync_url_parse(good[i].url, host,
		    sizeof(host), &port, &path, err, sizeof(err)), 0);
		assert_string_equal(host, good[i].host);
		assert_string_equal(path, good[i].path);
		assert_int_equal(port, good[i].port);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (check_spoolsync_url_parse(bad[i], host, sizeof(host), &port, &path,
		    err, sizeof(err)) != -1)
			fail_msg("accepted %s", bad[i] ? bad[i] : "NULL");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_peer_in_sync_is_synced_with_the_worst_lag),
		cmocka_unit_test(test_a_peer_down_or_behind_is_unsynced),
		cmocka_unit_test(test_lag_over_max_lag_is_unsynced),
		cmocka_unit_test(test_gone_peers_that_were_caught_up_are_listed_not_judged),
		cmocka_unit_test(test_no_peers_is_unsynced),
		cmocka_unit_test(test_http_errors_and_bad_json_are_not_ok),
		cmocka_unit_test(test_a_truncated_reply_is_said),
		cmocka_unit_test(test_huge_replies_are_cut_at_one_mebibyte),
		cmocka_unit_test(test_refused_and_silent_servers_fail_in_time),
		cmocka_unit_test(test_url_forms),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
