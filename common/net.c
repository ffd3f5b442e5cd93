/*
 * net.c: addresses as written in configs ("127.0.0.1:5222", "[::1]:5222",
 * "host:port") and the few socket calls every daemon makes.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static int
net_port_parse(const char *s, uint16_t *port, char *err, size_t errlen)
{
	char	*end;
	long	 v;

	if (*s == '\0') {
		snprintf(err, errlen, "missing port after ':'");
		return -1;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (*end != '\0' || errno != 0 || *s == '-' || *s == '+') {
		snprintf(err, errlen, "port '%.32s' is not a number", s);
		return -1;
	}
	if (v < 1 || v > 65535) {
		snprintf(err, errlen, "port %ld is out of range (1-65535)", v);
		return -1;
	}
	*port = (uint16_t)v;
	return 0;
}

/* Splits "host:port" / "[v6]:port" into a NUL-terminated host and the port text. */
static int
net_split(const char *s, char *host, size_t hostlen, const char **portp,
    char *err, size_t errlen)
{
	const char	*colon, *close;
	size_t		 n;

	if (*s == '[') {
		if ((close = strchr(s, ']')) == NULL || close[1] != ':') {
			snprintf(err, errlen, "'%.64s': expected [address]:port", s);
			return -1;
		}
		n = (size_t)(close - s - 1);
		s++;
		colon = close + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL) {
			snprintf(err, errlen, "'%.64s': expected host:port", s);
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			snprintf(err, errlen,
			    "'%.64s': an IPv6 address needs brackets: [::1]:port", s);
			return -1;
		}
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= hostlen) {
		snprintf(err, errlen, "'%.64s': %s host", s, n == 0 ? "missing" :
		    "too long a");
		return -1;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	*portp = colon + 1;
	return 0;
}

int
net_addr_parse(const char *s, struct net_addr *a, char *err, size_t errlen)
{
	struct addrinfo	 hints, *res;
	const char	*porttext;
	char		 host[256];
	int		 rc;

	memset(a, 0, sizeof(*a));
	if (strlen(s) >= sizeof(a->text)) {
		snprintf(err, errlen, "address is too long");
		return -1;
	}
	if (net_split(s, host, sizeof(host), &porttext, err, errlen) == -1 ||
	    net_port_parse(porttext, &a->port, err, errlen) == -1)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host, porttext, &hints, &res);
	if (rc == EAI_NONAME) {
		/* Not numeric: a name, resolved once, at load time. */
		hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
		rc = getaddrinfo(host, porttext, &hints, &res);
	}
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host,
		    gai_strerror(rc));
		return -1;
	}
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(a->text, sizeof(a->text), "%s", s);
	snprintf(a->host, sizeof(a->host), "%s", host);
	return 0;
}

const char *
net_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
	char	host[INET6_ADDRSTRLEN], port[8];

	if (sa->sa_family == AF_UNIX) {
		snprintf(out, outlen, "unix");
		return out;
	}
	if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(out, outlen, "?");
		return out;
	}
	snprintf(out, outlen, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
	    host, port);
	return out;
}

int
net_set_nonblock(int fd)
{
	int	flags;

	if ((flags = fcntl(fd, F_GETFL)) == -1)
		return -1;
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int
net_set_cloexec(int fd)
{
	int	flags;

	if ((flags = fcntl(fd, F_GETFD)) == -1)
		return -1;
	return fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

int
net_listen(const struct net_addr *a, int backlog, char *err, size_t errlen)
{
	int	fd, on = 1;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "%s: socket: %s", a->text, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (a->ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1 ||
	    listen(fd, backlog) == -1) {
		snprintf(err, errlen, "%s: %s", a->text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
net_connect_nb(const struct net_addr *a, char *err, size_t errlen)
{
	int	fd, on = 1;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "%s: socket: %s", a->text, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == -1 &&
	    errno != EINPROGRESS) {
		snprintf(err, errlen, "%s: connect: %s", a->text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}
