/*
 * probe.c: what every check kind shares: the deadline, one report from the
 * loop (exactly once, never after a cancel), latency and readable errors.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "probe_int.h"

static void	probe_timer_cb(evutil_socket_t, short, void *);

void
probe_init(struct probe *p, const struct probe_kind_ops *ops, struct event_base *base,
    enum check_kind kind, int timeout_ms, probe_done_cb done, void *arg)
{
	struct timeval	tv;

	p->ops = ops;
	p->base = base;
	p->done = done;
	p->arg = arg;
	p->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	p->start_ns = now_mono_ns();
	memset(&p->res, 0, sizeof(p->res));
	p->res.kind = kind;
	p->res.lag_ms = -1;
	p->res.exec_status = -1;
	if ((p->timer = evtimer_new(base, probe_timer_cb, p)) == NULL)
		fatalx("probe: evtimer_new");
	tv.tv_sec = p->timeout_ms / 1000;
	tv.tv_usec = (p->timeout_ms % 1000) * 1000;
	evtimer_add(p->timer, &tv);
}

uint64_t
probe_elapsed_us(const struct probe *p)
{
	return (now_mono_ns() - p->start_ns) / 1000;
}

static void
probe_free(struct probe *p)
{
	p->ops->release(p);
	event_free(p->timer);
	free(p);
}

/* The report waits for the loop, so no kind code is on the stack during done(). */
static void
probe_finish(struct probe *p)
{
	if (p->finished)
		return;
	p->finished = 1;
	if (p->res.latency_us == 0)
		p->res.latency_us = probe_elapsed_us(p);
	evtimer_del(p->timer);
	event_active(p->timer, EV_TIMEOUT, 1);
}

void
probe_ok(struct probe *p)
{
	if (p->finished)
		return;
	p->res.ok = 1;
	probe_finish(p);
}

void
probe_fail(struct probe *p, const char *fmt, ...)
{
	char	tmp[1024];
	va_list	ap;

	if (p->finished)
		return;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	probe_sanitize(p->res.error, sizeof(p->res.error), tmp, strlen(tmp));
	p->res.ok = 0;
	probe_finish(p);
}

static void
probe_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe	*p = arg;

	if (!p->finished) {
		p->ops->expire(p);
		return;		/* the verdict, when it came, re-armed the timer */
	}
	p->ops->release(p);
	p->reporting = 1;
	p->done(&p->res, p->arg);
	event_free(p->timer);
	free(p);
}

void
probe_cancel(struct probe *p)
{
	if (p == NULL || p->reporting)
		return;		/* inside its own callback: it is freed after */
	probe_free(p);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t
probe_utf8_len(const unsigned char *s, size_t n)
{
	size_t		len, i;
	uint32_t	cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

void
probe_sanitize(char *dst, size_t dstlen, const char *src, size_t n)
{
	const unsigned char	*s = (const unsigned char *)src;
	size_t			 i = 0, o = 0, len;

	if (dstlen == 0)
		return;
	while (i < n && s[i] != '\0') {
		len = probe_utf8_len(s + i, n - i);
		if (len == 0 || (len == 1 && (s[i] < 0x20 || s[i] == 0x7f))) {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ?
			    ' ' : '?';
			i++;
			continue;
		}
		if (o + len >= dstlen)
			break;
		memcpy(dst + o, s + i, len);
		o += len;
		i += len;
	}
	dst[o] = '\0';
}

/* ---------------------------------------------------------------- sockets */

static void
probe_sock_flush(struct probe_sock *s)
{
	ssize_t	n;

	while (s->out_off < s->out.len) {
		n = send(s->fd, s->out.data + s->out_off, s->out.len - s->out_off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(s->ev_write, NULL);
			return;
		}
		if (n == -1) {
			probe_fail(s->p, "%s: write: %s", s->stage, strerror(errno));
			return;
		}
		s->out_off += (size_t)n;
		s->out_sent += (size_t)n;
	}
	buf_reset(&s->out);
	s->out_off = 0;
	event_del(s->ev_write);
}

void
probe_sock_send(struct probe_sock *s, const char *data, size_t n)
{
	if (s->p->finished || s->fd == -1)
		return;
	buf_add(&s->out, data, n);
	if (s->connected)
		probe_sock_flush(s);
}

static void
probe_sock_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe_sock	*s = arg;
	char			 data[4096];
	ssize_t			 n;

	if (s->p->finished)
		return;
	n = recv(fd, data, sizeof(data), 0);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n == -1) {
		/*
		 * A TLS server that gets our plaintext header says nothing and
		 * resets: name the likely cause, the bare errno would not.
		 */
		probe_fail(s->p, "%s: read: %s%s", s->stage, strerror(errno),
		    errno == ECONNRESET && s->in_bytes == 0 && s->out_sent > 0 ?
		    " before any reply (a TLS-only port?)" : "");
		return;
	}
	if ((s->in_bytes += (size_t)n) > s->in_limit) {
		probe_fail(s->p, "%s: more than %zu KiB from the server, given up",
		    s->stage, s->in_limit / 1024);
		return;
	}
	s->on_data(s->arg, data, (size_t)n);
}

static void
probe_sock_connected(struct probe_sock *s)
{
	int		soerr = 0;
	socklen_t	len = sizeof(soerr);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr != 0) {
		probe_fail(s->p, "connect: %s", strerror(soerr));
		return;
	}
	s->connected = 1;
	event_add(s->ev_read, NULL);
	s->on_connect(s->arg);
	if (!s->p->finished)
		probe_sock_flush(s);
}

static void
probe_sock_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe_sock	*s = arg;

	if (s->p->finished)
		return;
	if (!s->connected)
		probe_sock_connected(s);
	else
		probe_sock_flush(s);
}

void
probe_sock_open(struct probe_sock *s, struct probe *p, const struct net_addr *a,
    size_t limit)
{
	char	err[256];

	s->p = p;
	s->fd = -1;
	s->connected = 0;
	s->ev_read = s->ev_write = NULL;
	buf_init(&s->out);
	s->out_off = s->in_bytes = 0;
	s->in_limit = limit;
	s->stage = "connect";
	errno = 0;
	if ((s->fd = net_connect_nb(a, err, sizeof(err))) == -1) {
		probe_fail(p, "connect: %s", errno != 0 ? strerror(errno) : err);
		return;
	}
	s->ev_read = event_new(p->base, s->fd, EV_READ | EV_PERSIST,
	    probe_sock_read_cb, s);
	s->ev_write = event_new(p->base, s->fd, EV_WRITE | EV_PERSIST,
	    probe_sock_write_cb, s);
	if (s->ev_read == NULL || s->ev_write == NULL)
		fatalx("probe: event_new");
	event_add(s->ev_write, NULL);
}

void
probe_sock_close(struct probe_sock *s)
{
	if (s->ev_read != NULL)
		event_free(s->ev_read);
	if (s->ev_write != NULL)
		event_free(s->ev_write);
	if (s->fd != -1)
		close(s->fd);
	s->ev_read = s->ev_write = NULL;
	s->fd = -1;
	buf_free(&s->out);
}
