/*
 * output.c: what a session writes to its client and to its backend: the
 * serialiser's scratch, relayed stanzas gathered per loop turn and written
 * straight to the socket, back-pressure between the two sides.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proxyd.h"
#include "session_int.h"

/* The serialiser's scratch: one per thread, a worker's loop is its own. */
static _Thread_local struct buf session_out;

static void	session_flush_cb(evutil_socket_t, short, void *);

struct buf *
session_buf(void)
{
	buf_reset(&session_out);
	return &session_out;
}

/*
 * Relayed stanzas toward a plain socket are gathered per session and written
 * straight to the socket when its bufferevent holds nothing: one write for
 * all the stanzas one read produced, and no write-event round trip (two
 * epoll_ctl and a loop turn per message).  Output of a read callback goes
 * when that read is done (session_read_end), so the peer works on it while
 * the loop reads the other sockets of its turn; output made anywhere else
 * goes at the end of the loop turn.  What the socket does not take goes to
 * the bufferevent, which keeps the order, the watermarks and the error
 * reporting.
 */
/* S's output goes at the end of this loop turn. */
static void
session_flush_later(struct session *s)
{
	struct session_ctx	*ctx = s->ctx;

	if (ctx->ev_flush == NULL)
		ctx->ev_flush = event_new(ctx->base, -1, 0, session_flush_cb, ctx);
	if (!s->dirty) {
		s->dirty = 1;
		s->dnext = ctx->dirty;
		ctx->dirty = s;
	}
	if (!ctx->flush_armed) {
		ctx->flush_armed = 1;
		event_active(ctx->ev_flush, 0, 0);
	}
}

static void
session_gather(struct session *s, struct buf **pp, const void *p, size_t n)
{
	if (*pp == NULL && s->reading)
		*pp = &s->ctx->rd[pp == &s->cpend ? 0 : 1];	/* no allocation */
	else if (*pp == NULL) {
		*pp = xcalloc(1, sizeof(**pp));
		buf_init(*pp);
	}
	buf_add(*pp, p, n);
	if (!s->reading)
		session_flush_later(s);	/* a read callback flushes when done */
	if ((*pp)->len > SESSION_LOW_WATER)
		session_flush(s);
}

/* Done with *PP: the worker's read buffer is kept (unless big), any
 * other is freed. */
static void
session_pend_free(struct session_ctx *ctx, struct buf **pp)
{
	struct buf	*p = *pp;

	*pp = NULL;
	if (p == &ctx->rd[0] || p == &ctx->rd[1]) {
		if (p->cap > SESSION_HIGH_WATER)
			buf_free(p);
		buf_reset(p);
		return;
	}
	buf_free(p);
	free(p);
}

/* Writes *PP to BEV's socket (or behind what BEV still holds); 1: BEV's
 * output is past the high-water mark, the other side must stop reading. */
static int
session_flush_side(struct session_ctx *ctx, struct bufferevent *bev, struct buf **pp)
{
	struct buf	*p = *pp;
	struct evbuffer	*out;
	ssize_t		 n = 0;

	if (p == NULL)
		return 0;
	if (bev == NULL) {
		/* That side went away: its bytes go with it. */
		session_pend_free(ctx, pp);
		return 0;
	}
	out = bufferevent_get_output(bev);
	if (p->len > 0 && evbuffer_get_length(out) == 0) {
		n = send(bufferevent_getfd(bev), p->data, p->len, MSG_NOSIGNAL);
		if (n < 0)
			n = 0;	/* EAGAIN, or an error the bufferevent reports */
	}
	if ((size_t)n < p->len)
		bufferevent_write(bev, p->data + n, p->len - (size_t)n);
	session_pend_free(ctx, pp);
	return evbuffer_get_length(out) > SESSION_HIGH_WATER;
}

void
session_flush(struct session *s)
{
	if (s->cpend != NULL) {
		if (session_flush_side(s->ctx, s->cbev, &s->cpend) && s->ubev != NULL)
			bufferevent_disable(s->ubev, EV_READ);
	}
	if (s->upend != NULL) {
		if (session_flush_side(s->ctx, s->ubev, &s->upend) && s->cbev != NULL)
			bufferevent_disable(s->cbev, EV_READ);
	}
}

void
session_read_begin(struct session *s)
{
	s->reading = 1;
}

void
session_read_end(struct session *s)
{
	s->reading = 0;
	session_flush(s);
}

static void
session_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session_ctx	*ctx = arg;
	struct session		*s;

	ctx->flush_armed = 0;
	while ((s = ctx->dirty) != NULL) {
		ctx->dirty = s->dnext;
		s->dirty = 0;
		session_flush(s);
	}
}

/* S is being freed: off the dirty list, its gathered bytes dropped. */
void
output_free(struct session *s)
{
	struct session	**pp;

	if (s->dirty) {
		for (pp = &s->ctx->dirty; *pp != s; pp = &(*pp)->dnext)
			;
		*pp = s->dnext;
		s->dirty = 0;
	}
	if (s->cpend != NULL)
		session_pend_free(s->ctx, &s->cpend);
	if (s->upend != NULL)
		session_pend_free(s->ctx, &s->upend);
}

void
output_shutdown(struct session_ctx *ctx)
{
	if (ctx->ev_flush != NULL)
		event_free(ctx->ev_flush);
	ctx->ev_flush = NULL;
	ctx->flush_armed = 0;
	buf_free(&session_out);
	buf_free(&ctx->rd[0]);
	buf_free(&ctx->rd[1]);
	xmlstream_thread_free();
}

void
session_to_client(struct session *s, const struct buf *b)
{
	session_bytes_to_client(s, b->data, b->len);
}

void
session_bytes_to_client(struct session *s, const void *p, size_t n)
{
	if (s->cbev == NULL || n == 0)
		return;
	s->bytes_out += n;
	if (s->state == SS_RELAY && !s->tls) {
		session_gather(s, &s->cpend, p, n);
		return;
	}
	bufferevent_write(s->cbev, p, n);
	if (s->ubev != NULL && evbuffer_get_length(bufferevent_get_output(s->cbev)) >
	    SESSION_HIGH_WATER)
		bufferevent_disable(s->ubev, EV_READ);
}

void
session_to_backend(struct session *s, const struct buf *b)
{
	session_bytes_to_backend(s, b->data, b->len);
}

void
session_bytes_to_backend(struct session *s, const void *p, size_t n)
{
	if (s->ubev == NULL || n == 0)
		return;
	/* STARTTLS with the backend first: the client waits meanwhile. */
	if (s->up_hold != NULL) {
		buf_add(s->up_hold, p, n);
		if (s->up_hold->len > SESSION_HIGH_WATER)
			bufferevent_disable(s->cbev, EV_READ);
		return;
	}
	if (s->state == SS_RELAY && s->up_plain) {
		session_gather(s, &s->upend, p, n);
		return;
	}
	bufferevent_write(s->ubev, p, n);
	if (evbuffer_get_length(bufferevent_get_output(s->ubev)) > SESSION_HIGH_WATER)
		bufferevent_disable(s->cbev, EV_READ);
}
