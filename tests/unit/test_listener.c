/* test_listener.c: proxyd's listening sockets hand over accepted connections
 * with TCP_NODELAY set (a reply must not wait for the client's delayed ACK)
 * and keep accepting after each. */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "proxyd.h"

struct got {
	int	n;
	int	nodelay[4];
	int	tls;
};

static void
accept_cb(int fd, const struct sockaddr *sa, socklen_t salen,
    const struct listen_conf *lc, void *arg)
{
	struct got	*g = arg;
	int		 on = 0;
	socklen_t	 len = sizeof(on);

	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
	assert_true(sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in));
	if (g->n < 4)
		g->nodelay[g->n] = on;
	g->tls = lc->tls;
	g->n++;
	close(fd);
}

static int
dial(const struct sockaddr_in *sin)
{
	int	fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)sin, sizeof(*sin)), 0);
	return fd;
}

static void
test_accepted_connections_have_nodelay_set(void **unused)
{
	struct event_base	*base = event_base_new();
	struct listen_conf	 lc;
	struct listener		*l;
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	struct got		 g;
	char			 err[256], text[64];
	int			 fds[3];

	memset(&lc, 0, sizeof(lc));
	memset(&g, 0, sizeof(g));
	lc.tls = 2;
	/* A free loopback port: bind port 0, read it, let it go. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fds[0], (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fds[0], (struct sockaddr *)&sin, &len), 0);
	close(fds[0]);
	snprintf(text, sizeof(text), "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(net_addr_parse(text, &lc.addr, err, sizeof(err)), 0);
	l = listener_new(base, &lc, accept_cb, &g, err, sizeof(err));
	if (l == NULL)
		fail_msg("%s", err);
	for (int i = 0; i < 3; i++)
		fds[i] = dial(&sin);
	while (g.n < 3)
		event_base_loop(base, EVLOOP_ONCE);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(g.nodelay[i], 1);
		close(fds[i]);
	}
	assert_int_equal(g.tls, 2);
	assert_ptr_equal(listener_conf(l), &lc);
	listener_free(l);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted_connections_have_nodelay_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
