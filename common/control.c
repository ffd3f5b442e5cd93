/*
 * control.c: the unix control socket every daemon serves (one request line in,
 * one JSON line out, or a stream of lines for watchers); clients: control_client.c.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common.h"
#include "control_int.h"

#define CONTROL_MODE		0660
#define CONTROL_BACKLOG		64
#define CONTROL_READ_TIMEOUT_S	5	/* for the request line */
#define CONTROL_WRITE_TIMEOUT_S	30	/* for a reply to be taken */
#define CONTROL_WATCH_BACKLOG	(4 * 1024 * 1024)	/* then a watcher is dropped */
#define CONTROL_ACCEPT_PAUSE_MS	100

/*
 * A connection's life: READ the request line, PENDING in the handler until it
 * replies, then FLUSH the reply and close; or WATCH until the client hangs up.
 * A PENDING connection whose client went away, or whose control was closed,
 * becomes a ZOMBIE: it has no bufferevent, and the handler's reply frees it.
 * So a handler may reply late without ever seeing a dangling connection.
 */
enum conn_state {
	CONN_READ,
	CONN_PENDING,
	CONN_WATCH,
	CONN_FLUSH,
	CONN_ZOMBIE,
};

struct control_conn {
	TAILQ_ENTRY(control_conn) entry;
	struct control		*ctl;	/* NULL for a zombie */
	struct bufferevent	*bev;	/* NULL for a zombie */
	int			 fd;	/* ours: the bufferevent does not close it */
	enum conn_state		 state;
	char			*line;	/* argv points into it until the reply */
	char			*argv[CONTROL_MAX_ARGS + 1];
};
TAILQ_HEAD(control_conns, control_conn);

struct control {
	struct event_base	*base;
	struct evconnlistener	*lev;
	struct event		*ev_resume;	/* accepting again after EMFILE */
	char			*path;
	dev_t			 dev;		/* the socket we bound, so that */
	ino_t			 ino;		/* close never unlinks another's */
	control_handler_cb	 handler;
	void			*arg;
	struct control_conns	 conns;
	size_t			 nwatchers;
};

static void	control_conn_read_cb(struct bufferevent *, void *);
static void	control_conn_write_cb(struct bufferevent *, void *);
static void	control_conn_event_cb(struct bufferevent *, short, void *);
static void	control_conn_error(struct control_conn *, const char *, ...)
		    PRINTFLIKE(2, 3);

/* Formatting: the one line shape of every reply and broadcast. */

/* Copies DATA turning raw newlines (only white space in valid JSON) into blanks. */
static void
control_add_oneline(struct buf *b, const char *data, size_t len)
{
	size_t	start = b->len, i;

	buf_add(b, data, len);
	for (i = start; i < b->len; i++)
		if (b->data[i] == '\n' || b->data[i] == '\r')
			b->data[i] = ' ';
}

static void
control_format_error(struct buf *b, const char *msg)
{
	struct json	j;

	json_init(&j);
	json_obj_begin(&j);
	json_kv_int(&j, "v", CONTROL_VERSION);
	json_kv_bool(&j, "ok", 0);
	json_kv_str(&j, "error", msg);
	json_obj_end(&j);
	buf_adds(b, json_text(&j));
	buf_addc(b, '\n');
	json_free(&j);
}

/* The ok line for DATA (NULL or empty: null); -1 and an error line when too big. */
static int
control_format_ok(struct buf *b, const char *data)
{
	char	head[64], msg[128];
	size_t	hlen, dlen;

	if (data == NULL || *data == '\0')
		data = "null";
	dlen = strlen(data);
	hlen = (size_t)snprintf(head, sizeof(head), "{\"v\":%d,\"ok\":true,\"data\":",
	    CONTROL_VERSION);
	if (dlen > CONTROL_MAX_REPLY - hlen - 2) {
		snprintf(msg, sizeof(msg), "reply too large (%zu bytes, limit %d)",
		    hlen + dlen + 2, CONTROL_MAX_REPLY);
		control_format_error(b, msg);
		return -1;
	}
	buf_add(b, head, hlen);
	control_add_oneline(b, data, dlen);
	buf_adds(b, "}\n");
	return 0;
}

/* Best effort, never blocking: what the socket takes now. */
static void
control_send_nb(int fd, const char *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* Server: connections. */

static void
control_conn_unlink(struct control_conn *c)
{
	if (c->ctl == NULL)
		return;
	if (c->state == CONN_WATCH)
		c->ctl->nwatchers--;
	TAILQ_REMOVE(&c->ctl->conns, c, entry);
	c->ctl = NULL;
}

static void
control_conn_free(struct control_conn *c)
{
	control_conn_unlink(c);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->fd != -1)
		close(c->fd);
	free(c->line);
	free(c);
}

/* PENDING without a link any more; KEEP_FD lets the late reply still go out. */
static void
control_conn_bury(struct control_conn *c, int keep_fd)
{
	control_conn_unlink(c);
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (!keep_fd) {
		close(c->fd);
		c->fd = -1;
	}
	c->state = CONN_ZOMBIE;
}

/* The last line for C: queue it and close once written. */
static void
control_conn_finish(struct control_conn *c, const struct buf *b)
{
	struct timeval	tv = { CONTROL_WRITE_TIMEOUT_S, 0 };

	switch (c->state) {
	case CONN_READ:
	case CONN_PENDING:
	case CONN_WATCH:
		if (c->state == CONN_WATCH)
			c->ctl->nwatchers--;
		c->state = CONN_FLUSH;
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_enable(c->bev, EV_WRITE);
		bufferevent_set_timeouts(c->bev, NULL, &tv);
		evbuffer_add(bufferevent_get_output(c->bev), b->data, b->len);
		break;
	case CONN_ZOMBIE:
		if (c->fd != -1)
			control_send_nb(c->fd, b->data, b->len);
		control_conn_free(c);
		break;
	case CONN_FLUSH:
		break;		/* a second reply: the first one stands */
	}
}

static void
control_conn_verror(struct control_conn *c, const char *fmt, va_list ap)
{
	struct buf	msg, b;

	buf_init(&msg);
	buf_init(&b);
	buf_vprintf(&msg, fmt, ap);
	control_format_error(&b, msg.data);
	control_conn_finish(c, &b);
	buf_free(&msg);
	buf_free(&b);
}

static void
control_conn_error(struct control_conn *c, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	control_conn_verror(c, fmt, ap);
	va_end(ap);
}

static int
control_peer_allowed(int fd)
{
	struct ucred	uc;
	socklen_t	len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == -1)
		return 0;
	return uc.uid == 0 || uc.uid == geteuid();
}

/* Splits LINE in place on blanks; -1 when there are too many words. */
static int
control_split(char *line, char **argv)
{
	int	argc = 0;
	char	*p = line;

	for (;;) {
		p += strspn(p, " \t\r");
		if (*p == '\0')
			break;
		if (argc == CONTROL_MAX_ARGS)
			return -1;
		argv[argc++] = p;
		p += strcspn(p, " \t\r");
		if (*p != '\0')
			*p++ = '\0';
	}
	argv[argc] = NULL;
	return argc;
}

/* The handler may reply, watch, or close the control: C is not ours after. */
static void
control_conn_dispatch(struct control_conn *c, char *line, size_t len)
{
	struct control	*ctl = c->ctl;
	int		 argc;

	c->line = line;
	if (strlen(line) != len) {
		control_conn_error(c, "request contains a NUL byte");
		return;
	}
	if ((argc = control_split(line, c->argv)) == -1) {
		control_conn_error(c, "too many words in the request (at most %d)",
		    CONTROL_MAX_ARGS);
		return;
	}
	if (argc == 0) {
		control_conn_error(c, "empty request");
		return;
	}
	c->state = CONN_PENDING;
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	ctl->handler(c, argc, c->argv, ctl->arg);
}

static void
control_conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_conn	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*line;
	size_t			 len;

	if (c->state != CONN_READ) {
		/* Nothing more is asked of the client: read only to see it leave. */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL && evbuffer_get_length(in) < CONTROL_MAX_REQUEST)
		return;
	if (line == NULL || len + 1 > CONTROL_MAX_REQUEST) {
		free(line);
		control_conn_error(c, "request too long (limit %d bytes)",
		    CONTROL_MAX_REQUEST);
		return;
	}
	control_conn_dispatch(c, line, len);
}

static void
control_conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct control_conn	*c = arg;

	if (c->state == CONN_FLUSH)
		control_conn_free(c);
}

/* POLLHUP on a unix socket: the peer closed both ways, not just its writing. */
static int
control_peer_gone(int fd)
{
	struct pollfd	pfd = { .fd = fd, .events = POLLOUT };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR));
}

static void
control_conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct control_conn	*c = arg;

	if (c->state == CONN_READ && (what & BEV_EVENT_TIMEOUT)) {
		control_conn_error(c, "timed out waiting for the request line");
		return;
	}
	if (c->state == CONN_PENDING) {
		/* A client that only shut its writing down still waits for us. */
		if ((what & BEV_EVENT_EOF) && !control_peer_gone(c->fd))
			bufferevent_disable(bev, EV_READ);
		else
			control_conn_bury(c, 0);
		return;
	}
	control_conn_free(c);
}

static struct control_conn *
control_conn_new(struct control *ctl, int fd)
{
	struct control_conn	*c;
	struct timeval		 tv = { CONTROL_READ_TIMEOUT_S, 0 };

	c = xcalloc(1, sizeof(*c));
	if ((c->bev = bufferevent_socket_new(ctl->base, fd, 0)) == NULL) {
		free(c);
		return NULL;
	}
	c->ctl = ctl;
	c->fd = fd;
	c->state = CONN_READ;
	TAILQ_INSERT_TAIL(&ctl->conns, c, entry);
	bufferevent_setcb(c->bev, control_conn_read_cb, control_conn_write_cb,
	    control_conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONTROL_MAX_REQUEST);
	bufferevent_set_timeouts(c->bev, &tv, NULL);
	return c;
}

static void
control_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control		*ctl = arg;
	struct control_conn	*c;

	if ((c = control_conn_new(ctl, fd)) == NULL) {
		close(fd);
		return;
	}
	if (!control_peer_allowed(fd)) {
		control_conn_error(c, "permission denied");
		return;
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* Out of descriptors: the waiting client keeps the socket readable, so pause. */
static void
control_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct control	*ctl = arg;
	struct timeval	 tv = { 0, CONTROL_ACCEPT_PAUSE_MS * 1000 };

	evconnlistener_disable(lev);
	evtimer_add(ctl->ev_resume, &tv);
}

static void
control_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control	*ctl = arg;

	evconnlistener_enable(ctl->lev);
}

/* Server: the socket file. */

/* A socket file nobody accepts on is a crashed daemon's: remove it. */
static int
control_clear_stale(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	const char	*path = sun->sun_path;
	struct stat	 st;
	int		 fd, r, saved;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket: remove it or "
		    "choose another control path", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	saved = errno;
	close(fd);
	if (r == 0 || saved == EAGAIN) {
		snprintf(err, errlen, "another daemon is listening on %s", path);
		return -1;
	}
	if (saved != ECONNREFUSED) {
		snprintf(err, errlen, "cannot check %s: %s", path, strerror(saved));
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale socket %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Bound, mode 0660 and listening; records which file is ours. */
static int
control_bind(struct control *ctl, const struct sockaddr_un *sun, char *err,
    size_t errlen)
{
	const char	*path = sun->sun_path;
	struct stat	 st;
	int		 fd;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (bind(fd, (const struct sockaddr *)sun, sizeof(*sun)) == -1) {
		snprintf(err, errlen, "cannot bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(path, CONTROL_MODE) == -1 || stat(path, &st) == -1 ||
	    listen(fd, CONTROL_BACKLOG) == -1) {
		snprintf(err, errlen, "cannot set up %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	return fd;
}

struct control *
control_listen(struct event_base *base, const char *path, control_handler_cb cb,
    void *arg, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct control		*ctl;
	int			 fd;

	if (control_sockaddr(path, &sun, err, errlen) == -1 ||
	    control_clear_stale(&sun, err, errlen) == -1)
		return NULL;
	ctl = xcalloc(1, sizeof(*ctl));
	TAILQ_INIT(&ctl->conns);
	ctl->base = base;
	ctl->handler = cb;
	ctl->arg = arg;
	ctl->path = xstrdup(path);
	if ((fd = control_bind(ctl, &sun, err, errlen)) == -1)
		goto fail;
	ctl->lev = evconnlistener_new(base, control_accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	ctl->ev_resume = evtimer_new(base, control_resume_cb, ctl);
	if (ctl->lev == NULL || ctl->ev_resume == NULL) {
		snprintf(err, errlen, "%s: cannot add the socket to the event loop",
		    path);
		if (ctl->lev == NULL)
			close(fd);
		unlink(path);
		goto fail;
	}
	evconnlistener_set_error_cb(ctl->lev, control_accept_error_cb);
	return ctl;
fail:
	if (ctl->lev != NULL)
		evconnlistener_free(ctl->lev);
	if (ctl->ev_resume != NULL)
		event_free(ctl->ev_resume);
	free(ctl->path);
	free(ctl);
	return NULL;
}

/* What is queued for C goes out now if the socket takes it (a last reply). */
static void
control_conn_flush_now(struct control_conn *c)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	size_t		 len = evbuffer_get_length(out);

	if (len > 0)
		control_send_nb(c->fd, (const char *)evbuffer_pullup(out, -1), len);
}

void
control_close(struct control *ctl)
{
	struct control_conn	*c;
	struct stat		 st;

	if (ctl == NULL)
		return;
	while ((c = TAILQ_FIRST(&ctl->conns)) != NULL) {
		if (c->state == CONN_PENDING) {
			control_conn_bury(c, 1);
			continue;
		}
		if (c->state == CONN_FLUSH || c->state == CONN_WATCH)
			control_conn_flush_now(c);
		control_conn_free(c);
	}
	evconnlistener_free(ctl->lev);
	event_free(ctl->ev_resume);
	if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
	    st.st_ino == ctl->ino)
		unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

/* Server: replies and watchers. */

void
control_reply(struct control_conn *c, const char *data)
{
	struct buf	b;

	buf_init(&b);
	control_format_ok(&b, data);
	control_conn_finish(c, &b);
	buf_free(&b);
}

void
control_reply_error(struct control_conn *c, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	control_conn_verror(c, fmt, ap);
	va_end(ap);
}

/* INITIAL NULL: no first line, the watcher waits for the next broadcast. */
void
control_watch(struct control_conn *c, const char *initial)
{
	struct buf	b;

	if (c->state == CONN_ZOMBIE) {
		control_conn_free(c);
		return;
	}
	if (c->state != CONN_PENDING)
		return;
	buf_init(&b);
	if (initial != NULL && control_format_ok(&b, initial) == -1) {
		control_conn_finish(c, &b);
		buf_free(&b);
		return;
	}
	c->state = CONN_WATCH;
	c->ctl->nwatchers++;
	evbuffer_add(bufferevent_get_output(c->bev), b.data, b.len);
	buf_free(&b);
}

void
control_broadcast(struct control *ctl, const char *data)
{
	struct control_conn	*c, *next;
	struct evbuffer		*out;
	struct buf		 b;
	int			 toobig;

	if (ctl->nwatchers == 0)
		return;
	buf_init(&b);
	toobig = control_format_ok(&b, data) == -1;
	for (c = TAILQ_FIRST(&ctl->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->state != CONN_WATCH)
			continue;
		out = bufferevent_get_output(c->bev);
		if (evbuffer_get_length(out) > CONTROL_WATCH_BACKLOG)
			control_conn_free(c);	/* a slow consumer */
		else if (toobig)
			control_conn_finish(c, &b);	/* it must start over */
		else
			evbuffer_add(out, b.data, b.len);
	}
	buf_free(&b);
}

size_t
control_watchers(const struct control *ctl)
{
	return ctl->nwatchers;
}
