/*
 * test_http.c: a real evhttp listener on loopback answers /metrics and /status,
 * refuses everything else, survives bad requests, and reports bind failures.
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "common.h"

struct fixture {
	struct event_base	*base;
	struct metrics		*metrics;
	struct metric		*hits;
	struct httpd		*httpd;
	struct net_addr		 addr;
	int			 status_calls;
};

/* A reply as the client saw it. */
struct reply {
	int	 code;
	char	*head;		/* status line and headers */
	char	*body;
	size_t	 body_len;
	int	 closed;	/* the server closed without a status line */
};

struct client {
	const struct net_addr	*addr;
	const char		*request;
	size_t			 request_len;
	struct event_base	*base;
	struct buf		 in;
};

/* A free loopback port: bind port 0, read it, let it go. */
static void
free_port_addr(struct net_addr *a)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	socklen_t		len = sizeof(sin);
	char			text[64], err[256];
	int			fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	snprintf(text, sizeof(text), "127.0.0.1:%u", ntohs(sin.sin_port));
	if (net_addr_parse(text, a, err, sizeof(err)) == -1)
		fail_msg("%s", err);
}

static void
status_cb(struct json *j, void *arg)
{
	struct fixture	*f = arg;

	f->status_calls++;
	json_obj_begin(j);
	json_kv_str(j, "daemon", "test \"d\"");
	json_kv_int(j, "calls", f->status_calls);
	json_obj_end(j);
}

static int
setup(void **state)
{
	struct fixture	*f = calloc(1, sizeof(*f));
	char		 err[256];

	assert_non_null(f);
	assert_non_null(f->base = event_base_new());
	f->metrics = metrics_new();
	f->hits = metrics_counter(f->metrics, "test_hits_total", "path=\"/x\"",
	    "Hits.");
	free_port_addr(&f->addr);
	f->httpd = httpd_start(f->base, &f->addr, f->metrics, status_cb, f, err,
	    sizeof(err));
	if (f->httpd == NULL)
		fail_msg("httpd_start: %s", err);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	httpd_stop(f->httpd);
	metrics_free(f->metrics);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* The blocking client thread: send, read to EOF (with a timeout), stop the loop. */
static void *
client_main(void *arg)
{
	struct client	*c = arg;
	struct timeval	 tv = { 5, 0 };
	char		 chunk[4096];
	ssize_t		 n;
	size_t		 off = 0;
	int		 fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)&c->addr->ss, c->addr->len) == 0) {
		while (off < c->request_len &&
		    (n = send(fd, c->request + off, c->request_len - off,
		    MSG_NOSIGNAL)) > 0)
			off += (size_t)n;
		while ((n = read(fd, chunk, sizeof(chunk))) > 0)
			buf_add(&c->in, chunk, (size_t)n);
	}
	close(fd);
	event_base_loopexit(c->base, NULL);
	return NULL;
}

static void
reply_parse(struct reply *r, struct buf *in)
{
	const char	*data = in->data != NULL ? in->data : "";
	const char	*end = strstr(data, "\r\n\r\n");

	memset(r, 0, sizeof(*r));
	if (in->len == 0 || end == NULL) {
		r->closed = 1;
		r->head = xstrdup(data);
		r->body = xstrdup("");
		return;
	}
	r->head = xstrndup(data, (size_t)(end - data) + 2);
	r->body_len = in->len - (size_t)(end + 4 - data);
	r->body = xstrndup(end + 4, r->body_len);
	if (sscanf(r->head, "HTTP/1.%*d %d", &r->code) != 1)
		r->code = -1;
}

/* Send REQUEST raw while the loop serves it. */
static void
fetch_raw(struct fixture *f, const char *request, size_t len, struct reply *r)
{
	struct client	c = { &f->addr, request, len, f->base, { NULL, 0, 0 } };
	pthread_t	t;

	buf_init(&c.in);
	assert_int_equal(pthread_create(&t, NULL, client_main, &c), 0);
	event_base_dispatch(f->base);
	pthread_join(t, NULL);
	reply_parse(r, &c.in);
	buf_free(&c.in);
}

static void
fetch_str(struct fixture *f, const char *request, struct reply *r)
{
	fetch_raw(f, request, strlen(request), r);
}

static void
fetch(struct fixture *f, const char *method, const char *path, struct reply *r)
{
	char	req[512];

	snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
	    method, path);
	fetch_str(f, req, r);
}

static void
reply_free(struct reply *r)
{
	free(r->head);
	free(r->body);
}

/* The value of header NAME (case-insensitive), copied into OUT. */
static const char *
header(const struct reply *r, const char *name, char *out, size_t outlen)
{
	const char	*line = r->head, *colon, *eol;
	size_t		 n = strlen(name);

	while ((eol = strstr(line, "\r\n")) != NULL) {
		colon = memchr(line, ':', (size_t)(eol - line));
		if (colon != NULL && (size_t)(colon - line) == n &&
		    strncasecmp(line, name, n) == 0) {
			colon++;
			while (*colon == ' ')
				colon++;
			snprintf(out, outlen, "%.*s", (int)(eol - colon), colon);
			return out;
		}
		line = eol + 2;
	}
	return NULL;
}

static void
test_get_metrics_serves_the_prometheus_text(void **state)
{
	struct fixture	*f = *state;
	struct reply	 r;
	char		 v[256];

	metric_add(f->hits, 3);
	fetch(f, "GET", "/metrics", &r);
	assert_int_equal(r.code, 200);
	assert_non_null(header(&r, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "text/plain; version=0.0.4; charset=utf-8");
	assert_string_equal(r.body,
	    "# HELP test_hits_total Hits.\n"
	    "# TYPE test_hits_total counter\n"
	    "test_hits_total{path=\"/x\"} 3\n");
	assert_non_null(header(&r, "Content-Length", v, sizeof(v)));
	assert_int_equal(atoi(v), r.body_len);
	reply_free(&r);

	/* every scrape renders afresh; a query string does not matter */
	metric_add(f->hits, 1);
	fetch(f, "GET", "/metrics?x=1", &r);
	assert_int_equal(r.code, 200);
	assert_non_null(strstr(r.body, "test_hits_total{path=\"/x\"} 4\n"));
	reply_free(&r);
}

static void
test_get_status_serves_the_callback_json(void **state)
{
	struct fixture	*f = *state;
	struct reply	 r;
	struct jval	*v;
	char		 h[256], err[256];

	fetch(f, "GET", "/status", &r);
	assert_int_equal(r.code, 200);
	assert_non_null(header(&r, "Content-Type", h, sizeof(h)));
	assert_string_equal(h, "application/json");
	assert_string_equal(r.body, "{\"daemon\":\"test \\\"d\\\"\",\"calls\":1}\n");
	v = json_parse(r.body, r.body_len, err, sizeof(err));
	if (v == NULL)
		fail_msg("%s", err);
	assert_string_equal(jval_str(v, "daemon"), "test \"d\"");
	jval_free(v);
	reply_free(&r);

	/* HTTP/1.1 with a Connection: close works too */
	fetch_str(f, "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	    &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(r.body, "{\"daemon\":\"test \\\"d\\\"\",\"calls\":2}\n");
	reply_free(&r);
}

static void
test_unknown_paths_are_404(void **state)
{
	struct fixture	*f = *state;
	static const char *const paths[] = { "/nope", "/", "/metrics/", "/status/x",
	    "/METRICS", "/metrics%00", NULL };
	struct reply	 r;
	size_t		 i;

	for (i = 0; paths[i] != NULL; i++) {
		fetch(f, "GET", paths[i], &r);
		if (r.code != 404)
			fail_msg("%s: got %d", paths[i], r.code);
		assert_non_null(strstr(r.body, "not found"));
		reply_free(&r);
	}
}

static void
test_methods_other_than_get_and_head_are_405(void **state)
{
	struct fixture	*f = *state;
	static const char *const methods[] = { "POST", "PUT", "DELETE", "OPTIONS",
	    "PATCH", "TRACE", NULL };
	struct reply	 r;
	char		 h[64];
	size_t		 i;

	for (i = 0; methods[i] != NULL; i++) {
		fetch(f, methods[i], "/metrics", &r);
		if (r.code != 405)
			fail_msg("%s: got %d", methods[i], r.code);
		assert_non_null(header(&r, "Allow", h, sizeof(h)));
		assert_string_equal(h, "GET, HEAD");
		reply_free(&r);
	}
	fetch_str(f, "POST /status HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", &r);
	assert_int_equal(r.code, 405);
	reply_free(&r);
	assert_int_equal(f->status_calls, 0);
}

static void
test_head_has_the_headers_of_get_and_no_body(void **state)
{
	struct fixture	*f = *state;
	struct reply	 get, head;
	char		 a[64], b[64];

	fetch(f, "GET", "/metrics", &get);
	fetch(f, "HEAD", "/metrics", &head);
	assert_int_equal(head.code, 200);
	assert_int_equal(head.body_len, 0);
	assert_non_null(header(&get, "Content-Length", a, sizeof(a)));
	assert_non_null(header(&head, "Content-Length", b, sizeof(b)));
	assert_string_equal(a, b);
	assert_non_null(header(&head, "Content-Type", a, sizeof(a)));
	reply_free(&get);
	reply_free(&head);
}

static void
test_oversized_and_garbage_requests_are_refused_and_service_continues(void **state)
{
	struct fixture	*f = *state;
	struct reply	 r;
	char		*big;
	size_t		 n = 64 * 1024, len;

	big = malloc(n + 64);
	assert_non_null(big);
	len = (size_t)snprintf(big, 64, "GET /metrics HTTP/1.0\r\nX-Big: ");
	memset(big + len, 'a', n - len);
	memcpy(big + n, "\r\n\r\n", 4);
	fetch_raw(f, big, n + 4, &r);
	assert_true(r.closed || r.code == 400 || r.code == 413 || r.code == 431);
	reply_free(&r);

	len = (size_t)snprintf(big, 64, "POST /metrics HTTP/1.0\r\nContent-Length: %zu\r\n\r\n",
	    n);
	memset(big + len, 'b', n - len);
	fetch_raw(f, big, n, &r);
	assert_true(r.closed || r.code == 413 || r.code == 400);
	reply_free(&r);
	free(big);

	fetch_raw(f, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15, &r);
	assert_true(r.closed || r.code == 400);
	reply_free(&r);

	fetch_str(f, "GET\r\n\r\n", &r);
	assert_true(r.closed || r.code == 400);
	reply_free(&r);

	fetch(f, "GET", "/metrics", &r);
	assert_int_equal(r.code, 200);
	reply_free(&r);
}

static void
test_bind_on_a_used_port_fails_with_the_address_and_reason(void **state)
{
	struct fixture	*f = *state;
	struct httpd	*h;
	char		 err[256], want[400];

	/* the fixture's listener holds the port */
	memset(err, 0, sizeof(err));
	h = httpd_start(f->base, &f->addr, f->metrics, NULL, NULL, err, sizeof(err));
	assert_null(h);
	snprintf(want, sizeof(want), "%s: Address already in use", f->addr.text);
	assert_string_equal(err, want);
}

static void
test_stop_releases_the_port_and_defaults_serve_empty(void **state)
{
	struct fixture	*f = *state;
	struct reply	 r;
	char		 err[256];

	httpd_stop(f->httpd);
	f->httpd = httpd_start(f->base, &f->addr, NULL, NULL, NULL, err, sizeof(err));
	if (f->httpd == NULL)
		fail_msg("restart: %s", err);
	fetch(f, "GET", "/status", &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(r.body, "{}\n");
	reply_free(&r);
	fetch(f, "GET", "/metrics", &r);
	assert_int_equal(r.code, 200);
	assert_string_equal(r.body, "");
	reply_free(&r);
	httpd_stop(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_metrics_serves_the_prometheus_text,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_status_serves_the_callback_json,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_paths_are_404, setup, teardown),
		cmocka_unit_test_setup_teardown(test_methods_other_than_get_and_head_are_405,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_head_has_the_headers_of_get_and_no_body,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_oversized_and_garbage_requests_are_refused_and_service_continues,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bind_on_a_used_port_fails_with_the_address_and_reason,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_stop_releases_the_port_and_defaults_serve_empty, setup, teardown),
	};

	if (evthread_use_pthreads() == -1)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
