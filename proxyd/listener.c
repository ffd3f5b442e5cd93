/*
 * listener.c: proxyd's listening sockets: one per `listen` entry, handing
 * each accepted connection to the session layer.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/listener.h>

#include "proxyd.h"

/* The kernel caps it at net.core.somaxconn (4096 on current kernels). */
#define LISTENER_BACKLOG	4096

struct listener {
	struct evconnlistener	*ev;
	const struct listen_conf *conf;
	void			(*accept)(int, const struct sockaddr *, socklen_t,
				    const struct listen_conf *, void *);
	void			*arg;
};

static void
listener_accept_cb(struct evconnlistener *ev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener	*l = arg;
	int		 on = 1;

	/*
	 * Stanzas are small and each is written whole: Nagle would hold a
	 * reply back until the client's delayed ACK, some 4 ms a message.
	 */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	l->accept(fd, sa, (socklen_t)salen, l->conf, l->arg);
}

/* Out of descriptors: say so and go on; libevent retries at the next event. */
static void
listener_error_cb(struct evconnlistener *ev, void *arg)
{
	struct listener	*l = arg;

	log_warn("accept on %s", l->conf->addr.text);
}

struct listener *
listener_new(struct event_base *base, const struct listen_conf *lc,
    void (*accept)(int, const struct sockaddr *, socklen_t,
    const struct listen_conf *, void *), void *arg, char *err, size_t errlen)
{
	struct listener	*l;
	int		 fd;

	if ((fd = net_listen(&lc->addr, LISTENER_BACKLOG, err, errlen)) == -1)
		return NULL;
	l = xcalloc(1, sizeof(*l));
	l->conf = lc;
	l->accept = accept;
	l->arg = arg;
	l->ev = evconnlistener_new(base, listener_accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l->ev == NULL) {
		snprintf(err, errlen, "%s: evconnlistener_new failed", lc->addr.text);
		close(fd);
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->ev, listener_error_cb);
	return l;
}

void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	evconnlistener_free(l->ev);
	free(l);
}

void
listener_set_conf(struct listener *l, const struct listen_conf *lc)
{
	l->conf = lc;
}

const struct listen_conf *
listener_conf(const struct listener *l)
{
	return l->conf;
}
