/*
 * test_sdnotify.c: sd_notify datagrams reach a real AF_UNIX socket (path and
 * abstract), nothing is sent outside systemd, and the watchdog is read right.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"

static char	 tmpdir[64];

static int
setup_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_sdnotify.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_tmpdir(void **state)
{
	char	 cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int
clear_env(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return 0;
}

/* A listening notify socket; NAME starting with '@' is abstract. */
static int
notify_listen(const char *name)
{
	struct sockaddr_un	 sa;
	socklen_t		 len;
	size_t			 n = strlen(name);
	int			 fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, n);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	if (name[0] == '@') {
		sa.sun_path[0] = '\0';
		len--;
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
	return fd;
}

/* The next datagram within WAIT_MS, NUL-terminated; -1 if none came. */
static ssize_t
notify_recv(int fd, char *buf, size_t size, int wait_ms)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
	ssize_t		 n;

	if (poll(&pfd, 1, wait_ms) != 1)
		return -1;
	if ((n = recv(fd, buf, size - 1, 0)) >= 0)
		buf[n] = '\0';
	return n;
}

static void
notify_reaches_path_socket(void **state)
{
	char	 path[128], buf[256];
	int	 fd;

	snprintf(path, sizeof(path), "%s/notify", tmpdir);
	fd = notify_listen(path);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(sd_notify_send("READY=1"), 0);
	assert_int_equal(notify_recv(fd, buf, sizeof(buf), 1000), 7);
	assert_string_equal(buf, "READY=1");

	assert_int_equal(sd_notifyf("STATUS=%d peers, view %s", 3, "g42"), 0);
	assert_int_equal(notify_recv(fd, buf, sizeof(buf), 1000) > 0, 1);
	assert_string_equal(buf, "STATUS=3 peers, view g42");
	close(fd);
	unlink(path);
}

static void
notify_reaches_abstract_socket(void **state)
{
	char	 name[108], buf[256];
	int	 fd;

	snprintf(name, sizeof(name), "@jha-test-sdnotify-%ld-%d", (long)getpid(),
	    rand());
	fd = notify_listen(name);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(sd_notify_send("WATCHDOG=1"), 0);
	assert_int_equal(notify_recv(fd, buf, sizeof(buf), 1000), 10);
	assert_string_equal(buf, "WATCHDOG=1");
	close(fd);
}

static void
notify_outside_systemd_sends_nothing_and_succeeds(void **state)
{
	char	 path[128], buf[256];
	int	 fd;

	snprintf(path, sizeof(path), "%s/idle", tmpdir);
	fd = notify_listen(path);
	assert_int_equal(sd_notify_send("READY=1"), 0);
	assert_int_equal(sd_notifyf("STATUS=%s", "x"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(sd_notify_send("READY=1"), 0);
	assert_int_equal(notify_recv(fd, buf, sizeof(buf), 100), -1);
	close(fd);
	unlink(path);
}

static void
notify_to_missing_or_bad_socket_fails_without_harm(void **state)
{
	char	 path[128];
	char	 longname[200];

	snprintf(path, sizeof(path), "%s/nobody-listens", tmpdir);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(sd_notify_send("READY=1"), -1);
	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	assert_int_equal(sd_notify_send("READY=1"), -1);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	assert_int_equal(sd_notify_send("READY=1"), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	setenv("NOTIFY_SOCKET", "@", 1);
	assert_int_equal(sd_notify_send("READY=1"), -1);
}

static void
watchdog_usec_read_from_environment(void **state)
{
	char	 pid[32];

	assert_int_equal(sd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "2000000", 1);
	assert_int_equal(sd_watchdog_usec(), 2000000);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sd_watchdog_usec(), 2000000);
	setenv("WATCHDOG_USEC", "18446744073709551615", 1);
	assert_true(sd_watchdog_usec() == UINT64_MAX);
}

static void
watchdog_meant_for_another_pid_is_ignored(void **state)
{
	char	 pid[32];

	setenv("WATCHDOG_USEC", "2000000", 1);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sd_watchdog_usec(), 0);
	setenv("WATCHDOG_PID", "not-a-pid", 1);
	assert_int_equal(sd_watchdog_usec(), 0);
}

static void
watchdog_malformed_usec_is_ignored(void **state)
{
	const char *bad[] = { "", "0", "-5", " 5", "12x", "1e6",
	    "99999999999999999999999" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		assert_int_equal(sd_watchdog_usec(), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(notify_reaches_path_socket, clear_env),
		cmocka_unit_test_setup(notify_reaches_abstract_socket, clear_env),
		cmocka_unit_test_setup(notify_outside_systemd_sends_nothing_and_succeeds,
		    clear_env),
		cmocka_unit_test_setup(notify_to_missing_or_bad_socket_fails_without_harm,
		    clear_env),
		cmocka_unit_test_setup(watchdog_usec_read_from_environment, clear_env),
		cmocka_unit_test_setup(watchdog_meant_for_another_pid_is_ignored,
		    clear_env),
		cmocka_unit_test_setup(watchdog_malformed_usec_is_ignored, clear_env),
	};

	return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
