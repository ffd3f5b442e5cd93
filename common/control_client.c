/*
 * control_client.c: the clients of the control socket: blocking request and
 * stream (the command line), and a reconnecting subscriber on libevent.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common.h"
#include "control_int.h"

#define CONTROL_CONNECT_MS	5000	/* control_stream's connect and send */
#define CONTROL_SUB_MIN_MS	100
#define CONTROL_SUB_MAX_MS	2000

/* The socket's address: here, so that a client never links the server. */

static void
control_path_error(const char *path, char *err, size_t errlen)
{
	snprintf(err, errlen, "control socket path too long (%zu bytes, at most "
	    "%zu): %s", strlen(path), sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
	    path);
}

int
control_sockaddr(const char *path, struct sockaddr_un *sun, char *err,
    size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (*path == '\0') {
		snprintf(err, errlen, "control socket path is empty");
		return -1;
	}
	if (strlen(path) >= sizeof(sun->sun_path)) {
		control_path_error(path, err, errlen);
		return -1;
	}
	memcpy(sun->sun_path, path, strlen(path));
	return 0;
}

/* Blocking client. */

struct control_client {
	const char	*path;
	int		 fd;
	uint64_t	 deadline;	/* now_mono_ms(); 0: none */
	struct buf	 in;
	size_t		 off;		/* start of the next line in in */
	size_t		 scanned;	/* leading bytes known to hold no newline */
};

/* Milliseconds left for poll: -1 without a deadline, 0 once it passed. */
static int
control_client_left(const struct control_client *cl)
{
	uint64_t	now;

	if (cl->deadline == 0)
		return -1;
	now = now_mono_ms();
	return now >= cl->deadline ? 0 : (int)(cl->deadline - now);
}

/* Waits for EVENTS; -1 with err on timeout. */
static int
control_client_wait(struct control_client *cl, short events, char *err,
    size_t errlen)
{
	struct pollfd	pfd = { .fd = cl->fd, .events = events };
	int		r;

	do
		r = poll(&pfd, 1, control_client_left(cl));
	while (r == -1 && errno == EINTR);
	if (r == 1)
		return 0;
	if (r == 0)
		snprintf(err, errlen, "%s: timed out waiting for the daemon", cl->path);
	else
		snprintf(err, errlen, "%s: poll: %s", cl->path, strerror(errno));
	return -1;
}

static int
control_client_connect(struct control_client *cl, int timeout_ms, char *err,
    size_t errlen)
{
	struct sockaddr_un	sun;
	struct timeval		tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	int			r;

	if (control_sockaddr(cl->path, &sun, err, errlen) == -1)
		return -1;
	if ((cl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Bounds the wait when the daemon's backlog is full. */
	if (timeout_ms > 0)
		setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	do
		r = connect(cl->fd, (struct sockaddr *)&sun, sizeof(sun));
	while (r == -1 && errno == EINTR);
	if (r == -1) {
		snprintf(err, errlen, "cannot connect to %s: %s (is the daemon "
		    "running?)", cl->path, errno == EAGAIN ? "timed out" :
		    strerror(errno));
		return -1;
	}
	if (net_set_nonblock(cl->fd) == -1) {
		snprintf(err, errlen, "%s: %s", cl->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* A peer that closed after an error reply is not a failure: read the reply. */
static int
control_client_send(struct control_client *cl, const char *line, char *err,
    size_t errlen)
{
	struct buf	b;
	size_t		off = 0;
	ssize_t		n;
	int		rc = 0;

	buf_init(&b);
	buf_adds(&b, line);
	buf_addc(&b, '\n');
	while (off < b.len) {
		if ((rc = control_client_wait(cl, POLLOUT, err, errlen)) == -1)
			break;
		n = send(cl->fd, b.data + off, b.len - off, MSG_NOSIGNAL);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == -1 && errno != EPIPE && errno != ECONNRESET) {
			snprintf(err, errlen, "%s: send: %s", cl->path, strerror(errno));
			rc = -1;
		}
		if (n == -1)
			break;
		off += (size_t)n;
	}
	buf_free(&b);
	return rc;
}

static int
control_client_open(struct control_client *cl, const char *path, const char *line,
    int timeout_ms, char *err, size_t errlen)
{
	memset(cl, 0, sizeof(*cl));
	cl->path = path;
	cl->fd = -1;
	buf_init(&cl->in);
	if (timeout_ms > 0)
		cl->deadline = now_mono_ms() + (uint64_t)timeout_ms;
	if (strchr(line, '\n') != NULL) {
		snprintf(err, errlen, "a control request is one line");
		return -1;
	}
	if (control_client_connect(cl, timeout_ms, err, errlen) == -1)
		return -2;	/* unreachable: callers tell it apart */
	return control_client_send(cl, line, err, errlen);
}

static void
control_client_close(struct control_client *cl)
{
	if (cl->fd != -1)
		close(cl->fd);
	buf_free(&cl->in);
}

/* Bytes of the next line, without its newline, or 0 when more must be read. */
static size_t
control_client_scan(struct control_client *cl, size_t *linelen)
{
	char	*nl;

	if (cl->off > 0) {
		memmove(cl->in.data, cl->in.data + cl->off, cl->in.len - cl->off);
		cl->in.len -= cl->off;
		cl->off = 0;
	}
	nl = cl->in.len > cl->scanned ? memchr(cl->in.data + cl->scanned, '\n',
	    cl->in.len - cl->scanned) : NULL;
	if (nl == NULL) {
		cl->scanned = cl->in.len;
		return 0;
	}
	*linelen = (size_t)(nl - cl->in.data);
	cl->off = *linelen + 1;
	cl->scanned = 0;
	return 1;
}

/* 0 and the next line (in cl->in, NUL at its end); 1 at EOF; -1 on error. */
static int
control_client_readln(struct control_client *cl, const char **line, size_t *len,
    char *err, size_t errlen)
{
	char	chunk[65536];
	ssize_t	n;

	while (!control_client_scan(cl, len)) {
		if (cl->in.len > CONTROL_MAX_REPLY) {
			snprintf(err, errlen, "%s: reply longer than %d bytes", cl->path,
			    CONTROL_MAX_REPLY);
			return -1;
		}
		if (control_client_wait(cl, POLLIN, err, errlen) == -1)
			return -1;
		n = recv(cl->fd, chunk, sizeof(chunk), 0);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s: %s", cl->path, strerror(errno));
			return -1;
		}
		if (n == 0) {
			snprintf(err, errlen, cl->in.len > 0 ? "%s: connection closed in "
			    "the middle of a reply" : "%s: connection closed by the "
			    "daemon", cl->path);
			return cl->in.len > 0 ? -1 : 1;
		}
		buf_add(&cl->in, chunk, (size_t)n);
	}
	cl->in.data[*len] = '\0';
	*line = cl->in.data;
	return 0;
}

/* Takes KEY's value out of OBJ (a null value when absent). */
static struct jval *
control_take(struct jval *obj, const char *key)
{
	struct jval	*v;
	size_t		 i;

	for (i = 0; i < obj->n; i++) {
		if (strcmp(obj->keys[i], key) == 0) {
			v = obj->items[i];
			obj->items[i] = NULL;
			return v;
		}
	}
	return json_parse("null", 4, NULL, 0);
}

/* 0 and DATA when ok; -1 and the daemon's error (or what is wrong) otherwise. */
static int
control_parse_reply(const char *path, const char *line, size_t len,
    struct jval **data, char *err, size_t errlen)
{
	struct jval		*root;
	const struct jval	*v, *ok;
	const char		*msg;
	char			 perr[160];

	if ((root = json_parse(line, len, perr, sizeof(perr))) == NULL) {
		snprintf(err, errlen, "%s: bad reply: %s", path, perr);
		return -1;
	}
	v = jval_get(root, "v");
	ok = jval_get(root, "ok");
	if (v == NULL || v->type != J_NUM || ok == NULL || ok->type != J_BOOL)
		snprintf(err, errlen, "%s: bad reply: not a control protocol reply",
		    path);
	else if (v->num != CONTROL_VERSION)
		snprintf(err, errlen, "%s: protocol version %g, expected %d (the "
		    "daemon and this client are different versions)", path, v->num,
		    CONTROL_VERSION);
	else if (!ok->b) {
		msg = jval_str(root, "error");
		snprintf(err, errlen, "%s", msg != NULL ? msg :
		    "the daemon reported an error without saying why");
	} else {
		*data = control_take(root, "data");
		jval_free(root);
		return 0;
	}
	jval_free(root);
	return -1;
}

int
control_request(const char *path, const char *line, int timeout_ms,
    struct jval **data, char *err, size_t errlen)
{
	struct control_client	 cl;
	const char		*reply;
	size_t			 len;
	int			 r, rc = -1;

	*data = NULL;
	if ((r = control_client_open(&cl, path, line, timeout_ms, err, errlen)) < 0) {
		rc = r;
		goto done;
	}
	if ((r = control_client_readln(&cl, &reply, &len, err, errlen)) != 0)
		goto done;	/* at EOF err already says the daemon closed */
	rc = control_parse_reply(path, reply, len, data, err, errlen);
done:
	control_client_close(&cl);
	return rc;
}

int
control_stream(const char *path, const char *line,
    int (*cb)(const struct jval *, void *), void *arg, char *err, size_t errlen)
{
	struct control_client	 cl;
	struct jval		*data;
	const char		*reply;
	size_t			 len;
	int			 r, rc = -1;

	if ((r = control_client_open(&cl, path, line, CONTROL_CONNECT_MS, err,
	    errlen)) < 0) {
		rc = r;
		goto done;
	}
	cl.deadline = 0;	/* a watch may stay quiet for hours */
	for (;;) {
		/* At EOF err says the daemon closed, should the caller want it. */
		if ((r = control_client_readln(&cl, &reply, &len, err, errlen)) != 0) {
			rc = r == 1 ? 0 : -1;
			break;
		}
		if (control_parse_reply(path, reply, len, &data, err, errlen) == -1)
			break;
		r = cb(data, arg);
		jval_free(data);
		if (r != 0) {
			rc = 0;
			break;
		}
	}
done:
	control_client_close(&cl);
	return rc;
}

/* Client on libevent. */

struct control_sub {
	struct event_base	*base;
	char			*path;
	char			*line;
	void			(*on_data)(const struct jval *, void *);
	void			(*on_state)(int, const char *, void *);
	void			*arg;
	struct bufferevent	*bev;
	struct event		*ev_retry;
	int			 backoff_ms;
	int			 busy;	/* inside a callback: free later */
	int			 dead;
};

static void
control_sub_destroy(struct control_sub *sub)
{
	if (sub->bev != NULL)
		bufferevent_free(sub->bev);
	event_free(sub->ev_retry);
	free(sub->path);
	free(sub->line);
	free(sub);
}

/* Around every callback, which may free SUB. */
static void
control_sub_enter(struct control_sub *sub)
{
	sub->busy++;
}

/* -1 when SUB was freed in the callback: the caller must not touch it. */
static int
control_sub_leave(struct control_sub *sub)
{
	if (--sub->busy == 0 && sub->dead) {
		control_sub_destroy(sub);
		return -1;
	}
	return sub->dead ? -1 : 0;
}

static int
control_sub_state(struct control_sub *sub, int up, const char *err)
{
	control_sub_enter(sub);
	if (sub->on_state != NULL)
		sub->on_state(up, err, sub->arg);
	return control_sub_leave(sub);
}

/* Drops the link, schedules the next attempt, tells the owner. */
static void
control_sub_fail(struct control_sub *sub, const char *err)
{
	struct timeval	tv = { sub->backoff_ms / 1000, (sub->backoff_ms % 1000) * 1000 };

	if (sub->bev != NULL) {
		bufferevent_free(sub->bev);
		sub->bev = NULL;
	}
	evtimer_add(sub->ev_retry, &tv);
	sub->backoff_ms *= 2;
	if (sub->backoff_ms > CONTROL_SUB_MAX_MS)
		sub->backoff_ms = CONTROL_SUB_MAX_MS;
	control_sub_state(sub, 0, err);
}

/* One line: -1 when the link was dropped or SUB freed. */
static int
control_sub_line(struct control_sub *sub, const char *line, size_t len)
{
	struct jval	*data;
	char		 err[512];

	if (control_parse_reply(sub->path, line, len, &data, err, sizeof(err)) == -1) {
		control_sub_fail(sub, err);
		return -1;
	}
	sub->backoff_ms = CONTROL_SUB_MIN_MS;	/* the daemon really answers */
	control_sub_enter(sub);
	sub->on_data(data, sub->arg);
	jval_free(data);
	return control_sub_leave(sub);
}

static void
control_sub_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_sub	*sub = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*line, err[512];
	size_t			 len;
	int			 r;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		r = control_sub_line(sub, line, len);
		free(line);
		if (r == -1)
			return;
	}
	if (evbuffer_get_length(in) > CONTROL_MAX_REPLY) {
		snprintf(err, sizeof(err), "%s: line longer than %d bytes", sub->path,
		    CONTROL_MAX_REPLY);
		control_sub_fail(sub, err);
	}
}

static void
control_sub_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct control_sub	*sub = arg;
	char			 err[512];

	if (what & BEV_EVENT_EOF)
		snprintf(err, sizeof(err), "%s: connection closed by the daemon",
		    sub->path);
	else
		snprintf(err, sizeof(err), "%s: %s", sub->path,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	control_sub_fail(sub, err);
}

static void
control_sub_retry_cb(evutil_socket_t unused, short what, void *arg)
{
	struct control_sub	*sub = arg;
	struct sockaddr_un	 sun;
	char			 err[512];
	int			 fd;

	if (control_sockaddr(sub->path, &sun, err, sizeof(err)) == -1) {
		control_sub_fail(sub, err);
		return;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		snprintf(err, sizeof(err), "cannot connect to %s: %s (is the daemon "
		    "running?)", sub->path, strerror(errno));
		if (fd != -1)
			close(fd);
		control_sub_fail(sub, err);
		return;
	}
	if ((sub->bev = bufferevent_socket_new(sub->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		control_sub_fail(sub, "cannot create a bufferevent");
		return;
	}
	bufferevent_setcb(sub->bev, control_sub_read_cb, NULL, control_sub_event_cb,
	    sub);
	bufferevent_enable(sub->bev, EV_READ | EV_WRITE);
	evbuffer_add_printf(bufferevent_get_output(sub->bev), "%s\n", sub->line);
	control_sub_state(sub, 1, NULL);
}

struct control_sub *
control_sub_new(struct event_base *base, const char *path, const char *line,
    void (*on_data)(const struct jval *, void *),
    void (*on_state)(int, const char *, void *), void *arg)
{
	struct control_sub	*sub = xcalloc(1, sizeof(*sub));
	struct timeval		 now = { 0, 0 };

	sub->base = base;
	sub->path = xstrdup(path);
	sub->line = xstrdup(line);
	sub->on_data = on_data;
	sub->on_state = on_state;
	sub->arg = arg;
	sub->backoff_ms = CONTROL_SUB_MIN_MS;
	if ((sub->ev_retry = evtimer_new(base, control_sub_retry_cb, sub)) == NULL)
		fatalx("control_sub_new: evtimer_new failed");
	/* The first attempt runs from the loop, so callbacks never run in here. */
	evtimer_add(sub->ev_retry, &now);
	return sub;
}

void
control_sub_free(struct control_sub *sub)
{
	if (sub == NULL)
		return;
	if (sub->busy > 0) {
		sub->dead = 1;
		if (sub->bev != NULL)
			bufferevent_disable(sub->bev, EV_READ | EV_WRITE);
		event_del(sub->ev_retry);
		return;
	}
	control_sub_destroy(sub);
}
