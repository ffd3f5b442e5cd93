/*
 * test_control.c: the control socket on a real unix socket and a real event
 * loop: requests, errors, limits, watchers, the subscriber, the socket file.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "common.h"

struct fixture {
	char			 dir[64];
	char			 path[100];
	struct event_base	*base;
	struct control		*ctl;
	int			 calls;		/* handler calls */
	struct control_conn	*held;		/* "hold" and "later" */
	struct event		*ev_later;
};

static struct fixture	*fx;

static uint64_t
test_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The event loop, run until COND holds or TIMEOUT_MS pass. */

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

static int
loop_until(int (*cond)(void *), void *arg, int timeout_ms)
{
	struct timeval	 tv = { 0, 5000 };
	struct event	*tick = event_new(fx->base, -1, EV_PERSIST, tick_cb, NULL);
	uint64_t	 end = test_now_ms() + (uint64_t)timeout_ms;

	event_add(tick, &tv);
	while (!cond(arg) && test_now_ms() < end)
		event_base_loop(fx->base, EVLOOP_ONCE);
	event_free(tick);
	return cond(arg);
}

static int
cond_never(void *arg)
{
	return 0;
}

static void
loop_for(int ms)
{
	loop_until(cond_never, NULL, ms);
}

static int
cond_flag(void *arg)
{
	return atomic_load((atomic_int *)arg);
}

static int
cond_watchers(void *arg)
{
	return fx->ctl != NULL && control_watchers(fx->ctl) == *(size_t *)arg;
}

/* The daemon side: a handler with one command per behaviour under test. */

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	control_reply(fx->held, "\"late\"");
	fx->held = NULL;
}

static void
reply_echo(struct control_conn *c, int argc, char **argv)
{
	struct json	j;
	int		i;

	json_init(&j);
	json_arr_begin(&j);
	for (i = 0; i < argc; i++)
		json_str(&j, argv[i]);
	json_arr_end(&j);
	control_reply(c, json_text(&j));
	json_free(&j);
}

static void
reply_big(struct control_conn *c, size_t n)
{
	char	*s = xmalloc(n + 3);

	memset(s + 1, 'x', n);
	s[0] = s[n + 1] = '"';
	s[n + 2] = '\0';
	control_reply(c, s);
	free(s);
}

static void
handler(struct control_conn *c, int argc, char **argv, void *arg)
{
	struct timeval	tv = { 0, 50000 };

	fx->calls++;
	if (strcmp(argv[0], "echo") == 0)
		reply_echo(c, argc, argv);
	else if (strcmp(argv[0], "fail") == 0)
		control_reply_error(c, "no such backend \"%s\"", argc > 1 ? argv[1] : "");
	else if (strcmp(argv[0], "watch") == 0)
		control_watch(c, "{\"n\":0}");
	else if (strcmp(argv[0], "pretty") == 0)
		control_reply(c, "{\n  \"a\": 1,\n  \"b\": [2, 3]\n}\n");
	else if (strcmp(argv[0], "big") == 0)
		reply_big(c, strtoul(argv[1], NULL, 10));
	else if (strcmp(argv[0], "hold") == 0)
		fx->held = c;
	else if (strcmp(argv[0], "later") == 0) {
		fx->held = c;
		fx->ev_later = evtimer_new(fx->base, later_cb, NULL);
		evtimer_add(fx->ev_later, &tv);
	} else if (strcmp(argv[0], "stop") == 0) {
		control_reply(c, "\"stopping\"");
		control_close(fx->ctl);
		fx->ctl = NULL;
	} else
		control_reply_error(c, "unknown command '%s'", argv[0]);
}

static int
serve(void)
{
	char	err[256];

	fx->ctl = control_listen(fx->base, fx->path, handler, NULL, err, sizeof(err));
	if (fx->ctl == NULL)
		fail_msg("control_listen: %s", err);
	return 0;
}

static int
setup(void **state)
{
	fx = xcalloc(1, sizeof(*fx));
	strcpy(fx->dir, "/tmp/test_control.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/ctl.sock", fx->dir);
	if ((fx->base = event_base_new()) == NULL)
		return -1;
	*state = fx;
	return 0;
}

static void
rm_dir(const char *dir)
{
	DIR		*d = opendir(dir);
	struct dirent	*e;
	char		 p[512];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int
teardown(void **state)
{
	control_close(fx->ctl);
	if (fx->ev_later != NULL)
		event_free(fx->ev_later);
	event_base_free(fx->base);
	rm_dir(fx->dir);
	free(fx);
	fx = NULL;
	return 0;
}

/* The blocking client, in a thread while the loop runs here. */

struct req {
	pthread_t	 th;
	char		*line;
	const char	*path;
	int		 timeout_ms;
	int		 rc;
	struct jval	*data;
	char		 err[512];
	atomic_int	 done;
};

static void *
req_main(void *arg)
{
	struct req	*r = arg;

	r->rc = control_request(r->path, r->line, r->timeout_ms, &r->data, r->err,
	    sizeof(r->err));
	atomic_store(&r->done, 1);
	return NULL;
}

static void
req_start(struct req *r, const char *line)
{
	memset(r, 0, sizeof(*r));
	r->line = xstrdup(line);
	r->path = fx->path;
	r->timeout_ms = 10000;
	assert_int_equal(pthread_create(&r->th, NULL, req_main, r), 0);
}

static void
req_finish(struct req *r)
{
	assert_true(loop_until(cond_flag, &r->done, 15000));
	pthread_join(r->th, NULL);
	free(r->line);
}

/* One request, run to its end: rc, with data or err filled. */
static int
request(const char *line, struct jval **data, char *err, size_t errlen)
{
	struct req	r;

	req_start(&r, line);
	req_finish(&r);
	*data = r.data;
	snprintf(err, errlen, "%s", r.err);
	return r.rc;
}

/* A raw client in this thread: what a hostile or odd peer sends. */

struct raw {
	int		fd;
	struct buf	in;
	int		eof;
};

static void
raw_connect(struct raw *r, const char *path)
{
	struct sockaddr_un	sun = { .sun_family = AF_UNIX };

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	buf_init(&r->in);
	r->eof = 0;
	r->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(r->fd != -1);
	assert_int_equal(connect(r->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
}

static void
raw_send(struct raw *r, const char *s, size_t n)
{
	assert_int_equal(send(r->fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void
raw_drain(struct raw *r)
{
	char	chunk[65536];
	ssize_t	n;

	while (!r->eof) {
		n = recv(r->fd, chunk, sizeof(chunk), MSG_DONTWAIT);
		if (n > 0)
			buf_add(&r->in, chunk, (size_t)n);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			r->eof = 1;
		else
			break;
	}
}

static int
cond_raw_eof(void *arg)
{
	struct raw	*r = arg;

	raw_drain(r);
	return r->eof;
}

static int
cond_raw_line(void *arg)
{
	struct raw	*r = arg;

	raw_drain(r);
	return r->in.len > 0 && memchr(r->in.data, '\n', r->in.len) != NULL;
}

static void
raw_close(struct raw *r)
{
	if (r->fd != -1)
		close(r->fd);
	r->fd = -1;
	buf_free(&r->in);
}

/* Sends LINE raw and returns the one reply line, having seen the close. */
static void
raw_exchange(const char *line, size_t len, struct raw *r)
{
	raw_connect(r, fx->path);
	raw_send(r, line, len);
	assert_true(loop_until(cond_raw_eof, r, 10000));
}

static void
assert_error_reply(const struct buf *in, const char *want)
{
	struct jval	*v;
	char		 err[128];

	assert_non_null(in->data);
	assert_true(in->len > 0 && in->data[in->len - 1] == '\n');
	assert_null(memchr(in->data, '\n', in->len - 1));	/* one line */
	v = json_parse(in->data, in->len, err, sizeof(err));
	assert_non_null(v);
	assert_int_equal((int)jval_num(v, "v", 0), CONTROL_VERSION);
	assert_int_equal(jval_bool(v, "ok", 1), 0);
	assert_non_null(jval_str(v, "error"));
	if (strstr(jval_str(v, "error"), want) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", jval_str(v, "error"), want);
	jval_free(v);
}

static int
count_fds(void)
{
	DIR		*d = opendir("/proc/self/fd");
	int		 n = 0;

	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* Requests and replies. */

static void
test_request_reply_round_trip_passes_args(void **state)
{
	struct jval	*data;
	char		 err[512];

	serve();
	assert_int_equal(request("echo  alpha\tbeta\r", &data, err, sizeof(err)), 0);
	assert_int_equal(data->type, J_ARR);
	assert_int_equal(data->n, 3);
	assert_string_equal(data->items[0]->str, "echo");
	assert_string_equal(data->items[1]->str, "alpha");
	assert_string_equal(data->items[2]->str, "beta");
	jval_free(data);
}

static void
test_error_reply_reaches_client_escaped(void **state)
{
	struct jval	*data = NULL;
	char		 err[512];

	serve();
	assert_int_equal(request("fail b\"1\\", &data, err, sizeof(err)), -1);
	assert_null(data);
	assert_string_equal(err, "no such backend \"b\"1\\\"");
	assert_int_equal(request("frobnicate", &data, err, sizeof(err)), -1);
	assert_string_equal(err, "unknown command 'frobnicate'");
}

static void
test_multiline_data_is_sent_as_one_line(void **state)
{
	struct jval	*data;
	char		 err[512];

	serve();
	assert_int_equal(request("pretty", &data, err, sizeof(err)), 0);
	assert_int_equal((int)jval_num(data, "a", 0), 1);
	assert_int_equal(jval_get(data, "b")->n, 2);
	jval_free(data);
}

static void
test_async_reply_after_a_timer(void **state)
{
	struct jval	*data;
	char		 err[512];

	serve();
	assert_int_equal(request("later", &data, err, sizeof(err)), 0);
	assert_int_equal(data->type, J_STR);
	assert_string_equal(data->str, "late");
	jval_free(data);
}

static void
test_large_reply_arrives_whole_and_oversize_is_replaced(void **state)
{
	struct jval	*data;
	char		 err[512], line[64];

	serve();
	snprintf(line, sizeof(line), "big %d", 7 * 1024 * 1024);
	assert_int_equal(request(line, &data, err, sizeof(err)), 0);
	assert_int_equal(data->type, J_STR);
	assert_int_equal(data->slen, 7 * 1024 * 1024);
	jval_free(data);
	snprintf(line, sizeof(line), "big %d", CONTROL_MAX_REPLY);
	assert_int_equal(request(line, &data, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "reply too large"));
}

static void
test_half_closed_client_still_gets_its_reply(void **state)
{
	struct raw	r;

	serve();
	raw_connect(&r, fx->path);
	raw_send(&r, "later\n", 6);
	shutdown(r.fd, SHUT_WR);	/* as `socat` does after its stdin */
	assert_true(loop_until(cond_raw_eof, &r, 10000));
	assert_string_equal(r.in.data, "{\"v\":1,\"ok\":true,\"data\":\"late\"}\n");
	raw_close(&r);
}

static void
test_conn_closed_before_async_reply_is_freed_by_reply(void **state)
{
	struct raw	r;
	int		before;
	struct jval	*data;
	char		 err[512];

	serve();
	before = count_fds();
	raw_connect(&r, fx->path);
	raw_send(&r, "hold\n", 5);
	loop_for(50);
	assert_non_null(fx->held);
	raw_close(&r);
	loop_for(50);
	/* The dead client's descriptor is gone before the reply comes. */
	assert_int_equal(count_fds(), before);
	control_reply(fx->held, "1");
	fx->held = NULL;
	assert_int_equal(request("echo ok", &data, err, sizeof(err)), 0);
	jval_free(data);
}

static void
test_pending_reply_is_delivered_after_control_close(void **state)
{
	struct req	r;
	struct stat	st;

	serve();
	req_start(&r, "hold");
	while (fx->held == NULL)
		event_base_loop(fx->base, EVLOOP_ONCE);
	control_close(fx->ctl);
	fx->ctl = NULL;
	assert_int_equal(lstat(fx->path, &st), -1);
	control_reply(fx->held, "\"bye\"");
	fx->held = NULL;
	req_finish(&r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.data->str, "bye");
	jval_free(r.data);
}

static void
test_reply_then_close_in_handler_still_reaches_client(void **state)
{
	struct jval	*data;
	char		 err[512];

	serve();
	assert_int_equal(request("stop", &data, err, sizeof(err)), 0);
	assert_string_equal(data->str, "stopping");
	jval_free(data);
	assert_null(fx->ctl);
}

/* Limits on what a client may send. */

static void
test_oversize_request_is_refused(void **state)
{
	char		*line = xmalloc(CONTROL_MAX_REQUEST + 2);
	struct raw	 r;

	serve();
	/* The longest request that fits: CONTROL_MAX_REQUEST with its newline. */
	memcpy(line, "echo ", 5);
	memset(line + 5, 'a', CONTROL_MAX_REQUEST - 6);
	line[CONTROL_MAX_REQUEST - 1] = '\n';
	raw_exchange(line, CONTROL_MAX_REQUEST, &r);
	assert_non_null(strstr(r.in.data, "\"ok\":true"));
	raw_close(&r);
	/* One byte more, with or without the newline yet. */
	line[CONTROL_MAX_REQUEST - 1] = 'a';
	line[CONTROL_MAX_REQUEST] = '\n';
	raw_exchange(line, CONTROL_MAX_REQUEST + 1, &r);
	assert_error_reply(&r.in, "request too long");
	raw_close(&r);
	raw_exchange(line, CONTROL_MAX_REQUEST, &r);
	assert_error_reply(&r.in, "request too long");
	raw_close(&r);
	assert_int_equal(fx->calls, 1);
	free(line);
}

static void
test_too_many_words_is_refused(void **state)
{
	struct raw	 r;
	struct buf	 b;
	int		 i;

	serve();
	buf_init(&b);
	buf_adds(&b, "echo");
	for (i = 1; i < CONTROL_MAX_ARGS; i++)
		buf_printf(&b, " w%d", i);
	buf_addc(&b, '\n');
	raw_exchange(b.data, b.len, &r);
	assert_non_null(strstr(r.in.data, "\"w15\"]"));
	raw_close(&r);
	b.data[b.len - 1] = ' ';
	buf_adds(&b, "extra\n");
	raw_exchange(b.data, b.len, &r);
	assert_error_reply(&r.in, "too many words");
	raw_close(&r);
	assert_int_equal(fx->calls, 1);
	buf_free(&b);
}

static void
test_empty_or_nul_request_is_refused(void **state)
{
	struct raw	r;

	serve();
	raw_exchange("\n", 1, &r);
	assert_error_reply(&r.in, "empty request");
	raw_close(&r);
	raw_exchange(" \t \r\n", 5, &r);
	assert_error_reply(&r.in, "empty request");
	raw_close(&r);
	raw_exchange("echo a\0b\n", 9, &r);
	assert_error_reply(&r.in, "NUL");
	raw_close(&r);
	assert_int_equal(fx->calls, 0);
}

static void
test_silent_client_is_timed_out(void **state)
{
	struct raw	r;

	serve();
	raw_connect(&r, fx->path);
	raw_send(&r, "echo", 4);
	assert_true(loop_until(cond_raw_eof, &r, 8000));
	assert_error_reply(&r.in, "timed out");
	raw_close(&r);
	assert_int_equal(fx->calls, 0);
}

static void
test_out_of_descriptors_pauses_accept_instead_of_spinning(void **state)
{
	struct sockaddr_un	sun = { .sun_family = AF_UNIX };
	struct rlimit		old, low;
	struct raw		r;
	struct timeval		tv = { 0, 5000 };
	struct event		*tick;
	int			fds[64], n = 0, loops = 0;
	uint64_t		end;

	serve();
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fx->path);
	buf_init(&r.in);
	r.eof = 0;
	r.fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)count_fds() + 8;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 64 && (fds[n] = dup(0)) != -1)
		n++;
	assert_int_equal(errno, EMFILE);
	assert_int_equal(connect(r.fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	/* accept() fails while the client waits: the loop must not spin on it. */
	tick = event_new(fx->base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &tv);
	end = test_now_ms() + 200;
	for (; test_now_ms() < end; loops++)
		event_base_loop(fx->base, EVLOOP_ONCE);
	event_free(tick);
	while (n > 0)
		close(fds[--n]);
	setrlimit(RLIMIT_NOFILE, &old);
	assert_in_range(loops, 1, 150);	/* ~40 ticks; spinning makes thousands */
	/* Descriptors are back: the waiting client is served. */
	raw_send(&r, "echo\n", 5);
	assert_true(loop_until(cond_raw_eof, &r, 5000));
	assert_non_null(strstr(r.in.data, "\"ok\":true"));
	raw_close(&r);
}

/* The client's view of odd daemons. */

/* A fake daemon that answers REPLY to whatever one request comes. */
static void
fake_daemon_exchange(const char *reply, char *err, size_t errlen, int *rc)
{
	struct sockaddr_un	 sun = { .sun_family = AF_UNIX };
	struct req		 r;
	char			 in[256];
	int			 lfd, fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fx->path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	req_start(&r, "status");
	fd = accept(lfd, NULL, NULL);
	assert_true(fd != -1);
	assert_true(recv(fd, in, sizeof(in), 0) > 0);
	assert_int_equal(send(fd, reply, strlen(reply), MSG_NOSIGNAL),
	    (ssize_t)strlen(reply));
	close(fd);
	req_finish(&r);
	close(lfd);
	unlink(fx->path);
	*rc = r.rc;
	jval_free(r.data);
	snprintf(err, errlen, "%s", r.err);
}

static void
test_client_refuses_other_protocol_version(void **state)
{
	char	err[512];
	int	rc;

	fake_daemon_exchange("{\"v\":2,\"ok\":true,\"data\":1}\n", err, sizeof(err), &rc);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "protocol version 2, expected 1"));
	fake_daemon_exchange("{\"ok\":true,\"data\":1}\n", err, sizeof(err), &rc);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "not a control protocol reply"));
	fake_daemon_exchange("<html>\n", err, sizeof(err), &rc);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "bad reply"));
	fake_daemon_exchange("{\"v\":1,\"ok\":true,\"da", err, sizeof(err), &rc);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "closed in the middle of a reply"));
	fake_daemon_exchange("", err, sizeof(err), &rc);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err, "closed by the daemon"));
}

static void
test_unreachable_socket_says_is_the_daemon_running(void **state)
{
	struct jval	*data;
	char		 err[512], want[512];
	int		 fd;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	assert_int_equal(control_request(fx->path, "status", 1000, &data, err,
	    sizeof(err)), -2);
	snprintf(want, sizeof(want), "cannot connect to %s: No such file or "
	    "directory (is the daemon running?)", fx->path);
	assert_string_equal(err, want);
	/* A socket file nobody listens on: refused. */
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fx->path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	assert_int_equal(control_request(fx->path, "status", 1000, &data, err,
	    sizeof(err)), -2);
	assert_non_null(strstr(err, "Connection refused (is the daemon running?)"));
}

/* Watchers. */

struct stream {
	pthread_t	th;
	const char	*path;
	int		rc;
	char		err[512];
	int		got[256];
	atomic_int	count;
	atomic_int	done;
	int		stop_at;
};

static int
stream_cb(const struct jval *data, void *arg)
{
	struct stream	*s = arg;
	int		 n = (int)jval_num(data, "n", -1);
	int		 i = atomic_load(&s->count);

	if (i < 256)
		s->got[i] = n;
	atomic_store(&s->count, i + 1);
	return n == s->stop_at;
}

static void *
stream_main(void *arg)
{
	struct stream	*s = arg;

	s->rc = control_stream(s->path, "watch", stream_cb, s, s->err, sizeof(s->err));
	atomic_store(&s->done, 1);
	return NULL;
}

static void
stream_start(struct stream *s, int stop_at)
{
	memset(s, 0, sizeof(*s));
	s->path = fx->path;
	s->stop_at = stop_at;
	assert_int_equal(pthread_create(&s->th, NULL, stream_main, s), 0);
}

static void
stream_finish(struct stream *s)
{
	assert_true(loop_until(cond_flag, &s->done, 10000));
	pthread_join(s->th, NULL);
	assert_int_equal(s->rc, 0);
}

static void
broadcast_n(int from, int to)
{
	char	line[64];
	int	i;

	for (i = from; i <= to; i++) {
		snprintf(line, sizeof(line), "{\"n\":%d}", i);
		control_broadcast(fx->ctl, line);
	}
}

static void
assert_got_in_order(const struct stream *s, int last)
{
	int	i;

	assert_int_equal(atomic_load(&s->count), last + 1);
	for (i = 0; i <= last; i++)
		assert_int_equal(s->got[i], i);
}

static void
test_watcher_gets_initial_then_broadcasts_in_order(void **state)
{
	struct stream	s;
	size_t		one = 1, none = 0;

	serve();
	stream_start(&s, 100);
	assert_true(loop_until(cond_watchers, &one, 10000));
	broadcast_n(1, 100);
	stream_finish(&s);
	assert_got_in_order(&s, 100);
	assert_true(loop_until(cond_watchers, &none, 5000));
}

static void
test_two_watchers_each_get_every_broadcast(void **state)
{
	struct stream	a, b;
	size_t		two = 2;

	serve();
	stream_start(&a, 50);
	stream_start(&b, 50);
	assert_true(loop_until(cond_watchers, &two, 10000));
	broadcast_n(1, 50);
	stream_finish(&a);
	stream_finish(&b);
	assert_got_in_order(&a, 50);
	assert_got_in_order(&b, 50);
}

static void
test_watcher_that_hangs_up_is_removed(void **state)
{
	struct raw	r;
	size_t		one = 1, none = 0;

	serve();
	raw_connect(&r, fx->path);
	raw_send(&r, "watch\n", 6);
	assert_true(loop_until(cond_raw_line, &r, 5000));
	assert_string_equal(r.in.data, "{\"v\":1,\"ok\":true,\"data\":{\"n\":0}}\n");
	assert_true(cond_watchers(&one));
	raw_close(&r);
	assert_true(loop_until(cond_watchers, &none, 5000));
	broadcast_n(1, 1);
}

static void
test_slow_watcher_is_dropped(void **state)
{
	struct raw	 r;
	size_t		 one = 1;
	char		*line = xmalloc(65536 + 16);
	int		 i;

	serve();
	raw_connect(&r, fx->path);
	raw_send(&r, "watch\n", 6);
	assert_true(loop_until(cond_watchers, &one, 5000));
	memset(line, ' ', 65536);
	memcpy(line, "{\"n\":1}", 7);
	line[65536] = '\0';
	/* The client never reads: past 4 MiB queued it must go. */
	for (i = 0; i < 400 && control_watchers(fx->ctl) == 1; i++) {
		control_broadcast(fx->ctl, line);
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
	}
	assert_int_equal(control_watchers(fx->ctl), 0);
	assert_true(i > 4 * 16);
	assert_true(loop_until(cond_raw_eof, &r, 5000));
	raw_close(&r);
	free(line);
}

/* The libevent subscriber. */

struct subst {
	int	ups, downs, datas, last_n, free_in_data;
	char	lasterr[512];
	struct control_sub *sub;
};

static void
sub_data_cb(const struct jval *data, void *arg)
{
	struct subst	*st = arg;

	st->datas++;
	st->last_n = (int)jval_num(data, "n", -1);
	if (st->free_in_data) {
		control_sub_free(st->sub);
		st->sub = NULL;
	}
}

static void
sub_state_cb(int up, const char *err, void *arg)
{
	struct subst	*st = arg;

	if (up)
		st->ups++;
	else {
		st->downs++;
		snprintf(st->lasterr, sizeof(st->lasterr), "%s", err);
	}
}

static int	want_datas;

static int
cond_sub_datas(void *arg)
{
	return ((struct subst *)arg)->datas >= want_datas;
}

static int
cond_sub_down(void *arg)
{
	return ((struct subst *)arg)->downs > 0;
}

static void
test_sub_reconnects_after_restart_and_gets_initial_again(void **state)
{
	struct subst	st = { 0 };

	serve();
	st.sub = control_sub_new(fx->base, fx->path, "watch", sub_data_cb,
	    sub_state_cb, &st);
	want_datas = 1;
	assert_true(loop_until(cond_sub_datas, &st, 5000));
	assert_int_equal(st.ups, 1);
	assert_int_equal(st.last_n, 0);
	broadcast_n(1, 1);
	want_datas = 2;
	assert_true(loop_until(cond_sub_datas, &st, 5000));
	assert_int_equal(st.last_n, 1);
	control_close(fx->ctl);
	fx->ctl = NULL;
	assert_true(loop_until(cond_sub_down, &st, 5000));
	assert_non_null(strstr(st.lasterr, "closed by the daemon"));
	serve();
	want_datas = 3;
	assert_true(loop_until(cond_sub_datas, &st, 5000));
	assert_int_equal(st.ups, 2);
	assert_int_equal(st.last_n, 0);
	control_sub_free(st.sub);
}

static void
test_sub_backs_off_exponentially_while_daemon_is_away(void **state)
{
	struct subst	st = { 0 };

	st.sub = control_sub_new(fx->base, fx->path, "watch", sub_data_cb,
	    sub_state_cb, &st);
	/* Attempts at 0, 100, 300, 700 ms: four; a fixed 100 ms would make ten. */
	loop_for(1000);
	assert_int_equal(st.ups, 0);
	assert_in_range(st.downs, 3, 6);
	assert_non_null(strstr(st.lasterr, "is the daemon running?"));
	serve();
	/* The next attempt is at most 2 s away. */
	want_datas = 1;
	assert_true(loop_until(cond_sub_datas, &st, 3000));
	/* A daemon that answered resets the delay: a restart costs 100 ms. */
	control_close(fx->ctl);
	serve();
	want_datas = 2;
	assert_true(loop_until(cond_sub_datas, &st, 800));
	control_sub_free(st.sub);
}

static void
test_sub_reports_daemon_error_and_survives_free_in_callback(void **state)
{
	struct subst	st = { 0 };

	serve();
	st.sub = control_sub_new(fx->base, fx->path, "nonsense", sub_data_cb,
	    sub_state_cb, &st);
	assert_true(loop_until(cond_sub_down, &st, 5000));
	assert_string_equal(st.lasterr, "unknown command 'nonsense'");
	control_sub_free(st.sub);
	memset(&st, 0, sizeof(st));
	st.free_in_data = 1;
	st.sub = control_sub_new(fx->base, fx->path, "watch", sub_data_cb,
	    sub_state_cb, &st);
	want_datas = 1;
	assert_true(loop_until(cond_sub_datas, &st, 5000));
	assert_null(st.sub);
	broadcast_n(1, 3);
	loop_for(50);
	assert_int_equal(st.datas, 1);
}

static void
test_sub_drops_a_line_over_the_reply_limit(void **state)
{
	struct sockaddr_un	 sun = { .sun_family = AF_UNIX };
	struct subst		 st = { 0 };
	char			*chunk = xmalloc(65536);
	size_t			 sent = 0;
	uint64_t		 end = test_now_ms() + 20000;
	ssize_t			 n;
	int			 lfd, fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fx->path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	st.sub = control_sub_new(fx->base, fx->path, "watch", sub_data_cb,
	    sub_state_cb, &st);
	loop_for(50);
	assert_int_equal(st.ups, 1);
	assert_true((fd = accept(lfd, NULL, NULL)) != -1);
	memset(chunk, 'x', 65536);
	/* A daemon gone mad: one endless line. */
	while (st.downs == 0 && sent < 2 * (size_t)CONTROL_MAX_REPLY &&
	    test_now_ms() < end) {
		n = send(fd, chunk, 65536, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0)
			sent += (size_t)n;
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
	}
	assert_int_equal(st.downs, 1);
	assert_non_null(strstr(st.lasterr, "line longer than"));
	assert_int_equal(st.datas, 0);
	control_sub_free(st.sub);
	close(fd);
	close(lfd);
	free(chunk);
}

static void
test_broadcast_over_the_limit_ends_watches_with_an_error(void **state)
{
	struct raw	 r;
	size_t		 one = 1;
	char		*big = xmalloc(CONTROL_MAX_REPLY + 3);

	serve();
	raw_connect(&r, fx->path);
	raw_send(&r, "watch\n", 6);
	assert_true(loop_until(cond_watchers, &one, 5000));
	memset(big + 1, 'x', CONTROL_MAX_REPLY);
	big[0] = big[CONTROL_MAX_REPLY + 1] = '"';
	big[CONTROL_MAX_REPLY + 2] = '\0';
	control_broadcast(fx->ctl, big);
	assert_int_equal(control_watchers(fx->ctl), 0);
	assert_true(loop_until(cond_raw_eof, &r, 5000));
	/* The initial line, then the error that tells it to start over. */
	assert_non_null(strchr(r.in.data, '\n'));
	assert_error_reply(&(struct buf){ strchr(r.in.data, '\n') + 1,
	    r.in.len - (size_t)(strchr(r.in.data, '\n') + 1 - r.in.data), 0 },
	    "reply too large");
	raw_close(&r);
	free(big);
}

/* The socket file. */

static void
test_stale_socket_file_is_replaced(void **state)
{
	struct sockaddr_un	 sun = { .sun_family = AF_UNIX };
	struct jval		*data;
	char			 err[512];
	int			 fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fx->path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);	/* as a crashed daemon leaves it */
	serve();
	assert_int_equal(request("echo", &data, err, sizeof(err)), 0);
	jval_free(data);
}

static void
test_live_daemon_socket_is_not_stolen(void **state)
{
	struct control	*second;
	struct jval	*data;
	char		 err[512], want[512];

	serve();
	second = control_listen(fx->base, fx->path, handler, NULL, err, sizeof(err));
	assert_null(second);
	snprintf(want, sizeof(want), "another daemon is listening on %s", fx->path);
	assert_string_equal(err, want);
	assert_int_equal(request("echo still", &data, err, sizeof(err)), 0);
	assert_string_equal(data->items[1]->str, "still");
	jval_free(data);
}

static void
test_non_socket_file_is_left_alone(void **state)
{
	struct stat	 st;
	char		 err[512];
	FILE		*f = fopen(fx->path, "w");

	fputs("precious", f);
	fclose(f);
	assert_null(control_listen(fx->base, fx->path, handler, NULL, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "exists and is not a socket"));
	assert_int_equal(stat(fx->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 8);
}

static void
test_path_too_long_is_refused(void **state)
{
	char		 path[300], err[512];
	struct jval	*data;

	memset(path, 'p', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_null(control_listen(fx->base, path, handler, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "control socket path too long (299 bytes, at most 107)"));
	assert_int_equal(control_request(path, "x", 100, &data, err, sizeof(err)), -2);
	assert_non_null(strstr(err, "too long"));
}

static void
test_socket_mode_is_0660_and_close_unlinks_only_ours(void **state)
{
	struct sockaddr_un	sun = { .sun_family = AF_UNIX };
	struct stat		st;
	int			fd;
	mode_t			old = umask(0);

	serve();
	umask(old);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	control_close(fx->ctl);
	fx->ctl = NULL;
	assert_int_equal(lstat(fx->path, &st), -1);
	/* Another daemon took the path over: closing ours leaves its socket. */
	serve();
	unlink(fx->path);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fx->path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	control_close(fx->ctl);
	fx->ctl = NULL;
	assert_int_equal(lstat(fx->path, &st), 0);
	close(fd);
}

static void
test_other_users_get_permission_denied(void **state)
{
	struct jval	*data;
	char		 err[512];
	pid_t		 pid;
	int		 status, rc;

	if (geteuid() != 0)
		skip();
	serve();
	/* Let uid 65534 reach the socket, so that only SO_PEERCRED stops it. */
	assert_int_equal(chmod(fx->dir, 0711), 0);
	assert_int_equal(chmod(fx->path, 0666), 0);
	if ((pid = fork()) == 0) {
		if (setgid(65534) == -1 || setuid(65534) == -1)
			_exit(3);
		rc = control_request(fx->path, "echo", 5000, &data, err, sizeof(err));
		_exit(rc == -1 && strcmp(err, "permission denied") == 0 ? 0 : 1);
	}
	assert_true(pid > 0);
	while (waitpid(pid, &status, WNOHANG) == 0)
		event_base_loop(fx->base, EVLOOP_NONBLOCK), usleep(1000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(fx->calls, 0);
}

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_request_reply_round_trip_passes_args),
		T(test_error_reply_reaches_client_escaped),
		T(test_multiline_data_is_sent_as_one_line),
		T(test_async_reply_after_a_timer),
		T(test_large_reply_arrives_whole_and_oversize_is_replaced),
		T(test_half_closed_client_still_gets_its_reply),
		T(test_conn_closed_before_async_reply_is_freed_by_reply),
		T(test_pending_reply_is_delivered_after_control_close),
		T(test_reply_then_close_in_handler_still_reaches_client),
		T(test_oversize_request_is_refused),
		T(test_too_many_words_is_refused),
		T(test_empty_or_nul_request_is_refused),
		T(test_silent_client_is_timed_out),
		T(test_out_of_descriptors_pauses_accept_instead_of_spinning),
		T(test_client_refuses_other_protocol_version),
		T(test_unreachable_socket_says_is_the_daemon_running),
		T(test_watcher_gets_initial_then_broadcasts_in_order),
		T(test_two_watchers_each_get_every_broadcast),
		T(test_watcher_that_hangs_up_is_removed),
		T(test_slow_watcher_is_dropped),
		T(test_sub_reconnects_after_restart_and_gets_initial_again),
		T(test_sub_backs_off_exponentially_while_daemon_is_away),
		T(test_sub_reports_daemon_error_and_survives_free_in_callback),
		T(test_sub_drops_a_line_over_the_reply_limit),
		T(test_broadcast_over_the_limit_ends_watches_with_an_error),
		T(test_stale_socket_file_is_replaced),
		T(test_live_daemon_socket_is_not_stolen),
		T(test_non_socket_file_is_left_alone),
		T(test_path_too_long_is_refused),
		T(test_socket_mode_is_0660_and_close_unlinks_only_ours),
		T(test_other_users_get_permission_denied),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
