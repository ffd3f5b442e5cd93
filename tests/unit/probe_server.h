/*
 * probe_server.h: what the probe tests share: a scripted TCP server on
 * 127.0.0.1 in a thread (each connection handed to a script, in turn), and
 * running probes on a fresh event loop until they report.
 */
#ifndef PROBE_SERVER_H
#define PROBE_SERVER_H

#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "hamon.h"

#define UNUSED	__attribute__((unused))

struct srv;
typedef void	(*srv_script)(struct srv *, int fd);

struct srv {
	int		 lfd;
	uint16_t	 port;
	pthread_t	 th;
	int		 stop[2];	/* readable: stop now */
	srv_script	 script;
	void		*arg;
	int		 conns;
	int		 scripts_done;	/* connections whose script returned */
	char		 got[16384];	/* what the last connection sent */
	size_t		 ngot;
	size_t		 mark;		/* srv_expect looks after it */
	char		 note[16384];	/* what a script wants the test to know */
};

/* 1 readable, 0 timeout, -1 told to stop. */
static UNUSED int
srv_wait(struct srv *s, int fd, int ms)
{
	struct pollfd	pfd[2] = { { s->stop[0], POLLIN, 0 }, { fd, POLLIN, 0 } };
	int		n;

	n = poll(pfd, fd >= 0 ? 2 : 1, ms);
	if (n > 0 && pfd[0].revents)
		return -1;
	return n > 0 ? 1 : 0;
}

static UNUSED int
srv_sleep(struct srv *s, int ms)
{
	return srv_wait(s, -1, ms);
}

/* Reads into s->got until NEEDLE was received after the previous match;
 * 0 found, -1 EOF/timeout/stop. */
static UNUSED int
srv_expect(struct srv *s, int fd, const char *needle, int ms)
{
	const char	*at;
	ssize_t		 n;

	for (;;) {
		s->got[s->ngot] = '\0';
		at = memmem(s->got + s->mark, s->ngot - s->mark, needle, strlen(needle));
		if (at != NULL) {
			s->mark = (size_t)(at - s->got) + strlen(needle);
			return 0;
		}
		if (s->ngot >= sizeof(s->got) - 1 || srv_wait(s, fd, ms) != 1)
			return -1;
		if ((n = read(fd, s->got + s->ngot, sizeof(s->got) - 1 - s->ngot)) <= 0)
			return -1;
		s->ngot += (size_t)n;
	}
}

/* Everything after the last occurrence of START in what was received. */
static UNUSED const char *
srv_after(struct srv *s, const char *start)
{
	const char	*p = s->got, *q, *last = NULL;

	s->got[s->ngot] = '\0';
	while ((q = strstr(p, start)) != NULL) {
		last = q + strlen(start);
		p = q + 1;
	}
	return last;
}

static UNUSED int
srv_send(int fd, const void *data, size_t n)
{
	const char	*p = data;
	ssize_t		 w;

	while (n > 0) {
		if ((w = send(fd, p, n, MSG_NOSIGNAL)) <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static UNUSED int
srv_sends(int fd, const char *s)
{
	return srv_send(fd, s, strlen(s));
}

static void *
srv_main(void *arg)
{
	struct srv	*s = arg;
	int		 fd, one = 1;

	while (srv_wait(s, s->lfd, -1) == 1) {
		if ((fd = accept(s->lfd, NULL, NULL)) == -1)
			continue;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		__atomic_add_fetch(&s->conns, 1, __ATOMIC_SEQ_CST);
		s->ngot = s->mark = 0;
		s->script(s, fd);
		close(fd);
		__atomic_add_fetch(&s->scripts_done, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

/*
 * Runs BASE until N scripts have returned (or MS pass): a probe may report
 * before the bytes it writes next (its stream close) have left the loop.
 */
static UNUSED void
srv_wait_scripts(struct srv *s, struct event_base *base, int n, int ms)
{
	struct timespec	ts = { 0, 1000000 };
	int		i;

	for (i = 0; i < ms && __atomic_load_n(&s->scripts_done,
	    __ATOMIC_SEQ_CST) < n; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		nanosleep(&ts, NULL);
	}
}

static UNUSED void
srv_start(struct srv *s, srv_script script, void *arg)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			one = 1;

	memset(s, 0, sizeof(*s));
	s->script = script;
	s->arg = arg;
	assert_int_equal(pipe(s->stop), 0);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	(void)setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s->lfd, 128), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &len), 0);
	s->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static UNUSED void
srv_stop(struct srv *s)
{
	(void)write(s->stop[1], "x", 1);
	pthread_join(s->th, NULL);
	close(s->lfd);
	close(s->stop[0]);
	close(s->stop[1]);
}

/* A port nobody listens on (bound, then closed). */
static UNUSED uint16_t
srv_free_port(void)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* ---------------------------------------------------------------- probes */

struct outcome {
	int			calls;
	struct check_result	r;
	uint64_t		at_ms;		/* since the run started */
	uint64_t		t0;
};

static UNUSED void
outcome_cb(const struct check_result *r, void *arg)
{
	struct outcome	*o = arg;

	o->calls++;
	o->r = *r;
	o->at_ms = now_mono_ms() - o->t0;
}

static UNUSED void
target_init(struct check_target *t, uint16_t port, const char *domain)
{
	char	addr[64], err[128];

	memset(t, 0, sizeof(*t));
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	assert_int_equal(net_addr_parse(addr, &t->address, err, sizeof(err)), 0);
	t->backend = "b1";
	t->domain = domain;
	t->max_lag_ms = -1;
}

/* Runs BASE until each of the N outcomes was reported, or MAX_MS passed. */
static UNUSED void
run_until(struct event_base *base, struct outcome *o, size_t n, int max_ms)
{
	uint64_t	end = now_mono_ms() + (uint64_t)max_ms;
	size_t		i, done;

	for (;;) {
		for (i = done = 0; i < n; i++)
			done += o[i].calls > 0;
		if (done == n || now_mono_ms() >= end)
			return;
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(200);
	}
}

/* Runs BASE for MS milliseconds whatever happens. */
static UNUSED void
run_for(struct event_base *base, int ms)
{
	uint64_t	end = now_mono_ms() + (uint64_t)ms;

	while (now_mono_ms() < end) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(200);
	}
}

static UNUSED void
assert_error_has(const struct outcome *o, const char *needle)
{
	if (strstr(o->r.error, needle) == NULL)
		fail_msg("error '%s' does not contain '%s'", o->r.error, needle);
}

#endif
