/* test_net.c: addresses as admins write them parse, or say exactly what is wrong. */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

static void
test_ipv4_and_bracketed_ipv6_parse(void **state)
{
	struct net_addr	a;
	char		err[128];

	assert_int_equal(net_addr_parse("127.0.0.1:5222", &a, err, sizeof(err)), 0);
	assert_int_equal(a.ss.ss_family, AF_INET);
	assert_int_equal(a.port, 5222);
	assert_string_equal(a.host, "127.0.0.1");
	assert_string_equal(a.text, "127.0.0.1:5222");
	assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), 5222);
	assert_int_equal(net_addr_parse("[::1]:9291", &a, err, sizeof(err)), 0);
	assert_int_equal(a.ss.ss_family, AF_INET6);
	assert_string_equal(a.host, "::1");
	assert_int_equal(net_addr_parse("localhost:80", &a, err, sizeof(err)), 0);
}

static void
expect_error(const char *in, const char *want)
{
	struct net_addr	a;
	char		err[128];

	assert_int_equal(net_addr_parse(in, &a, err, sizeof(err)), -1);
	if (strstr(err, want) == NULL)
		fail_msg("'%s': got '%s', want '%s'", in, err, want);
}

static void
test_bad_addresses_say_what_is_wrong(void **state)
{
	expect_error("127.0.0.1", "expected host:port");
	expect_error("127.0.0.1:70000", "port 70000 is out of range (1-65535)");
	expect_error("127.0.0.1:0", "port 0 is out of range (1-65535)");
	expect_error("127.0.0.1:", "missing port");
	expect_error("127.0.0.1:52a", "is not a number");
	expect_error("127.0.0.1:-5", "is not a number");
	expect_error(":5222", "missing host");
	expect_error("::1:5222", "needs brackets");
	expect_error("[::1]5222", "expected [address]:port");
	expect_error("[::1", "expected [address]:port");
	expect_error("no-such-host.invalid:5222", "cannot resolve 'no-such-host.invalid'");
}

static void
test_listen_and_connect_on_loopback(void **state)
{
	struct net_addr		a;
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	char			err[128], text[64];
	struct pollfd		pfd;
	int			lfd, cfd, afd, soerr = 0;

	/* Port 1 parses; the real one comes from the kernel below. */
	assert_int_equal(net_addr_parse("127.0.0.1:1", &a, err, sizeof(err)), 0);
	((struct sockaddr_in *)&a.ss)->sin_port = 0;
	lfd = net_listen(&a, 8, err, sizeof(err));
	assert_true(lfd >= 0);
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	memcpy(&a.ss, &sin, sizeof(sin));
	cfd = net_connect_nb(&a, err, sizeof(err));
	assert_true(cfd >= 0);
	pfd.fd = cfd;
	pfd.events = POLLOUT;
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	len = sizeof(soerr);
	getsockopt(cfd, SOL_SOCKET, SO_ERROR, &soerr, &len);
	assert_int_equal(soerr, 0);
	pfd.fd = lfd;
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	net_sockaddr_str((struct sockaddr *)&sin, sizeof(sin), text, sizeof(text));
	assert_non_null(strstr(text, "127.0.0.1:"));
	close(afd);
	close(cfd);
	close(lfd);
}

static void
test_listen_on_a_taken_port_names_the_address(void **state)
{
	struct net_addr		a;
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	char			err[400], want[400];
	int			lfd;

	assert_int_equal(net_addr_parse("127.0.0.1:1", &a, err, sizeof(err)), 0);
	((struct sockaddr_in *)&a.ss)->sin_port = 0;
	lfd = net_listen(&a, 8, err, sizeof(err));
	assert_true(lfd >= 0);
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	memcpy(&a.ss, &sin, sizeof(sin));
	snprintf(a.text, sizeof(a.text), "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(net_listen(&a, 8, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: Address already in use", a.text);
	assert_string_equal(err, want);
	close(lfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_and_bracketed_ipv6_parse),
		cmocka_unit_test(test_bad_addresses_say_what_is_wrong),
		cmocka_unit_test(test_listen_and_connect_on_loopback),
		cmocka_unit_test(test_listen_on_a_taken_port_names_the_address),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
