/*
 * probe_cli.c: runs hamon's probes by hand and for the real-backend tests:
 * prints each check_result as one JSON line; -n runs many (CPU cost), and
 * `stub-xmpp` is a fast stub XMPP server to measure that cost against.
 *
 *   probe_cli [-n COUNT] [-c CONCURRENT] [-l MAX_LAG_MS] KIND ADDR DOMAIN [ARGS] TIMEOUT_MS
 *     xmpp      ADDR DOMAIN TIMEOUT_MS
 *     login     ADDR DOMAIN USER PASSWORD TIMEOUT_MS
 *     spoolsync ADDR DOMAIN URL TIMEOUT_MS
 *     exec      ADDR DOMAIN COMMAND TIMEOUT_MS
 *   (ADDR may be "-" where the kind does not use it)
 *   probe_cli stub-xmpp [PORT]      (prints "port N", serves until killed)
 * Exit: 0 when every probe was ok, 1 when one was not, 2 on bad usage.
 */
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "hamon.h"

struct run {
	struct event_base	*base;
	struct check_target	 t;
	enum check_kind		 kind;
	int			 timeout_ms;
	long			 total, started, done, ok, inflight, concurrency;
	int			 quiet;
};

static void	run_next(struct run *);

static void
print_result(const struct check_result *r)
{
	struct json	j;

	json_init(&j);
	json_obj_begin(&j);
	json_kv_str(&j, "kind", check_kind_name(r->kind));
	json_kv_bool(&j, "ok", r->ok);
	json_kv_uint(&j, "latency_us", r->latency_us);
	json_kv_bool(&j, "synced", r->synced);
	json_kv_int(&j, "lag_ms", r->lag_ms);
	json_kv_int(&j, "exec_status", r->exec_status);
	json_kv_str(&j, "error", r->error);
	json_obj_end(&j);
	printf("%s\n", json_text(&j));
	fflush(stdout);
	json_free(&j);
}

static void
done_cb(const struct check_result *r, void *arg)
{
	struct run	*run = arg;

	run->done++;
	run->inflight--;
	if (r->ok)
		run->ok++;
	if (!run->quiet || !r->ok)
		print_result(r);
	run_next(run);
}

static void
run_next(struct run *run)
{
	struct probe	*(*start)(struct event_base *, const struct check_target *,
			    int, probe_done_cb, void *);

	switch (run->kind) {
	case CHECK_XMPP: start = check_xmpp_start; break;
	case CHECK_LOGIN: start = check_login_start; break;
	case CHECK_SPOOLSYNC: start = check_spoolsync_start; break;
	default: start = check_exec_start; break;
	}
	while (run->started < run->total && run->inflight < run->concurrency) {
		run->started++;
		run->inflight++;
		(void)start(run->base, &run->t, run->timeout_ms, done_cb, run);
	}
	if (run->done == run->total)
		event_base_loopbreak(run->base);
}

static double
tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static int
usage(void)
{
	fprintf(stderr, "usage: probe_cli [-n COUNT] [-c CONCURRENT] [-l MAX_LAG_MS] "
	    "xmpp|login|spoolsync|exec ADDR DOMAIN [USER PASS | URL | CMD] "
	    "TIMEOUT_MS\n       probe_cli stub-xmpp [PORT]\n");
	return 2;
}

/* ---------------------------------------------------------------- the stub */

static const char stub_reply[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' from='example.test' "
    "id='stub' version='1.0'><stream:features><mechanisms "
    "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"
    "</mechanisms></stream:features>";

static void
stub_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);
	int		*replied = arg;

	/* The header ends with version='1.0'>; the probe's goodbye ends the stream. */
	if (!*replied && evbuffer_search(in, "'1.0'>", 6, NULL).pos != -1) {
		bufferevent_write(bev, stub_reply, sizeof(stub_reply) - 1);
		*replied = 1;
	}
	evbuffer_drain(in, evbuffer_get_length(in));
}

static void
stub_event_cb(struct bufferevent *bev, short what, void *arg)
{
	free(arg);
	bufferevent_free(bev);
}

static void
stub_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int len, void *arg)
{
	struct bufferevent	*bev;
	int			*replied = xcalloc(1, sizeof(int));

	bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, stub_read_cb, NULL, stub_event_cb, replied);
	bufferevent_enable(bev, EV_READ);
}

static int
stub_main(int port)
{
	struct event_base	*base = event_base_new();
	struct evconnlistener	*l;
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	l = evconnlistener_new_bind(base, stub_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (l == NULL) {
		fprintf(stderr, "stub-xmpp: cannot listen: %s\n", strerror(errno));
		return 1;
	}
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &len);
	printf("port %d\n", ntohs(sin.sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	return 0;
}

/* ---------------------------------------------------------------- main */

static int
parse_args(struct run *run, int argc, char **argv)
{
	char	err[256];
	int	kind;

	if (argc < 4 || (kind = check_kind_parse(argv[0])) == -1)
		return -1;
	run->kind = (enum check_kind)kind;
	if (strcmp(argv[1], "-") != 0 &&
	    net_addr_parse(argv[1], &run->t.address, err, sizeof(err)) == -1) {
		fprintf(stderr, "probe_cli: %s: %s\n", argv[1], err);
		return -1;
	}
	run->t.backend = "cli";
	run->t.domain = argv[2];
	if (run->kind == CHECK_LOGIN) {
		if (argc != 6)
			return -1;
		run->t.login_user = argv[3];
		run->t.login_password = argv[4];
	} else if (run->kind == CHECK_SPOOLSYNC || run->kind == CHECK_EXEC) {
		if (argc != 5)
			return -1;
		run->t.spoolsync_url = run->t.exec_command = argv[3];
	} else if (argc != 4)
		return -1;
	run->timeout_ms = atoi(argv[argc - 1]);
	return 0;
}

int
main(int argc, char **argv)
{
	struct run	 run;
	struct rusage	 ru;
	uint64_t	 t0;
	int		 ch;

	if (argc >= 2 && strcmp(argv[1], "stub-xmpp") == 0)
		return stub_main(argc > 2 ? atoi(argv[2]) : 0);
	memset(&run, 0, sizeof(run));
	run.total = run.concurrency = 1;
	run.t.max_lag_ms = -1;
	while ((ch = getopt(argc, argv, "+n:c:l:")) != -1) {
		switch (ch) {
		case 'n': run.total = atol(optarg); run.quiet = 1; break;
		case 'c': run.concurrency = atol(optarg); break;
		case 'l': run.t.max_lag_ms = atoll(optarg); break;
		default: return usage();
		}
	}
	if (run.total < 1 || run.concurrency < 1 ||
	    parse_args(&run, argc - optind, argv + optind) == -1)
		return usage();
	run.base = event_base_new();
	t0 = now_mono_ns();
	run_next(&run);
	event_base_dispatch(run.base);
	if (run.quiet) {
		getrusage(RUSAGE_SELF, &ru);
		printf("{\"probes\":%ld,\"ok\":%ld,\"wall_s\":%.3f,\"cpu_user_s\":%.3f,"
		    "\"cpu_sys_s\":%.3f}\n", run.done, run.ok,
		    (double)(now_mono_ns() - t0) / 1e9, tv_s(ru.ru_utime),
		    tv_s(ru.ru_stime));
	}
	event_base_free(run.base);
	return run.ok == run.total ? 0 : 1;
}
