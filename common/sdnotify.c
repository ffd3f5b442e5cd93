/*
 * sdnotify.c: readiness, status and watchdog pings to systemd through the
 * sd_notify datagram protocol, without linking libsystemd.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define SD_STATE_MAX	4096

/* NOTIFY_SOCKET is a path, or an abstract name when it begins with '@'. */
static int
sd_addr(const char *name, struct sockaddr_un *sa, socklen_t *len)
{
	size_t	 n = strlen(name);

	if (name[0] != '/' && name[0] != '@') {
		errno = EAFNOSUPPORT;	/* e.g. vsock: from a newer systemd */
		return -1;
	}
	if (n < 2) {
		errno = EINVAL;
		return -1;
	}
	if (n >= sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, name, n);
	if (name[0] == '@') {
		sa->sun_path[0] = '\0';
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int
sd_notify_send(const char *state)
{
	struct sockaddr_un	 sa;
	socklen_t		 len;
	const char		*name;
	size_t			 n = strlen(state);
	ssize_t			 sent;
	int			 fd, saved;

	if ((name = getenv("NOTIFY_SOCKET")) == NULL || *name == '\0')
		return 0;
	if (sd_addr(name, &sa, &len) == -1)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	sent = sendto(fd, state, n, MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
	saved = errno;
	close(fd);
	if (sent == (ssize_t)n)
		return 0;
	errno = sent == -1 ? saved : EMSGSIZE;
	return -1;
}

int
sd_notifyf(const char *fmt, ...)
{
	char	 state[SD_STATE_MAX];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(state, sizeof(state), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(state)) {
		errno = EMSGSIZE;
		return -1;
	}
	return sd_notify_send(state);
}

/* Decimal digits only, no sign, no blanks: what systemd writes. */
static int
sd_parse_u64(const char *s, uint64_t *out)
{
	char	*end;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	return 0;
}

/* WATCHDOG_PID names the process the watchdog is meant for; a child may not ping. */
uint64_t
sd_watchdog_usec(void)
{
	const char	*pid;
	uint64_t	 usec, p;

	if (sd_parse_u64(getenv("WATCHDOG_USEC"), &usec) == -1 || usec == 0)
		return 0;
	if ((pid = getenv("WATCHDOG_PID")) != NULL) {
		if (sd_parse_u64(pid, &p) == -1 || p != (uint64_t)getpid())
			return 0;
	}
	return usec;
}
