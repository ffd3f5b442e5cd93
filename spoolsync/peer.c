/*
 * peer.c: the links between spoolsync nodes.  Per pair of peers the node
 * with the smaller name dials and the other accepts; every connection is
 * authenticated with the cluster key (auth.c), then carries MAC'd frames
 * (wire.c) starting with a HELLO each way.  A link that says nothing for
 * LINK_DEAD_MS (PINGs keep an idle one talking) or sends one bad frame is
 * closed with its reason logged, and the dialer tries again with backoff.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "engine.h"

#define LINK_LINGER_MS	1000	/* a BYE gets this long to leave */

static void	link_read_cb(struct bufferevent *, void *);
static void	link_write_cb(struct bufferevent *, void *);
static void	link_event_cb(struct bufferevent *, short, void *);
static void	link_free_cb(evutil_socket_t, short, void *);
static void	link_ping_cb(evutil_socket_t, short, void *);
static void	link_pump_cb(evutil_socket_t, short, void *);
static void	peer_retry_cb(evutil_socket_t, short, void *);
static void	link_read(struct link *);

static const char *
link_name(const struct link *l)
{
	return l->peer != NULL ? l->peer->name : l->addr;
}

static void
link_tcp_opts(int fd)
{
	int	on = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
}

static struct link *
link_new(struct spoolsync *sp, struct bufferevent *bev, enum auth_role role,
    const char *addr)
{
	struct link	*l = xcalloc(1, sizeof(*l));
	struct timeval	 tv = { LINK_PING_MS / 1000, (LINK_PING_MS % 1000) * 1000 };

	l->sp = sp;
	l->bev = bev;
	l->role = role;
	l->state = LINK_AUTH;
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
	l->msg = xmalloc(sizeof(*l->msg));
	buf_init(&l->obuf);
	TAILQ_INIT(&l->ops);
	TAILQ_INIT(&l->sigs);
	TAILQ_INIT(&l->commits);
	TAILQ_INIT(&l->mfs);
	l->rx = pmap_new();
	l->busy = pmap_new();
	l->next_xfer = 1;
	l->last_rx_ms = now_mono_ms();
	l->ev_ping = event_new(sp->base, -1, EV_PERSIST, link_ping_cb, l);
	l->ev_pump = evtimer_new(sp->base, link_pump_cb, l);
	l->ev_free = evtimer_new(sp->base, link_free_cb, l);
	if (l->ev_ping == NULL || l->ev_pump == NULL || l->ev_free == NULL)
		fatalx("link: out of memory for events");
	event_add(l->ev_ping, &tv);
	TAILQ_INSERT_TAIL(&sp->links, l, entry);
	return l;
}

static void
link_free(struct link *l)
{
	if (l->bev != NULL) {
		auth_bev_cancel(l->bev);
		bufferevent_free(l->bev);
	}
	event_free(l->ev_ping);
	event_free(l->ev_pump);
	event_free(l->ev_free);
	if (l->wc_ok)
		wire_ctx_clear(&l->wc);
	buf_free(&l->obuf);
	free(l->msg);
	pmap_free(l->rx, NULL);
	pmap_free(l->busy, NULL);
	free(l->lag.v);
	TAILQ_REMOVE(&l->sp->links, l, entry);
	free(l);
}

/*
 * The lag (the age of the oldest change not yet acked) is read on every
 * /status and /metrics poll, with thousands of ops in flight: their
 * since_ms values are counted in a sorted array instead of walked.  New
 * ops come with the newest values, so adding is mostly an append, and
 * acks come mostly in order, so the head moves on.
 */
struct lagent {
	uint64_t	ms;
	size_t		count;		/* 0: a hole the head skips */
};

/* The first index in [head, n) whose value is >= MS. */
static size_t
link_lag_find(const struct lagset *ls, uint64_t ms)
{
	size_t	lo = ls->head, hi = ls->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (ls->v[mid].ms < ms)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void
link_lag_add(struct link *l, uint64_t ms)
{
	struct lagset	*ls = &l->lag;
	size_t		 i;

	ls->total++;
	i = ls->n > ls->head && ls->v[ls->n - 1].ms >= ms ?
	    link_lag_find(ls, ms) : ls->n;
	if (i < ls->n && ls->v[i].ms == ms) {
		if (ls->v[i].count++ == 0)
			ls->live++;
		return;
	}
	if (ls->head > 0 && ls->n == ls->cap) {
		/* Slide the live part down before growing. */
		memmove(ls->v, ls->v + ls->head, (ls->n - ls->head) *
		    sizeof(*ls->v));
		ls->n -= ls->head;
		i -= ls->head;
		ls->head = 0;
	}
	if (ls->n == ls->cap) {
		ls->cap = ls->cap ? ls->cap * 2 : 64;
		ls->v = xreallocarray(ls->v, ls->cap, sizeof(*ls->v));
	}
	memmove(ls->v + i + 1, ls->v + i, (ls->n - i) * sizeof(*ls->v));
	ls->v[i].ms = ms;
	ls->v[i].count = 1;
	ls->n++;
	ls->live++;
}

/* Holes behind an old op that stays (a big file) go, or they would pile up. */
static void
link_lag_compact(struct lagset *ls)
{
	size_t	o = 0;

	for (size_t i = ls->head; i < ls->n; i++)
		if (ls->v[i].count > 0)
			ls->v[o++] = ls->v[i];
	ls->head = 0;
	ls->n = o;
}

void
link_lag_del(struct link *l, uint64_t ms)
{
	struct lagset	*ls = &l->lag;
	size_t		 i = link_lag_find(ls, ms);

	if (i == ls->n || ls->v[i].ms != ms || ls->v[i].count == 0) {
		ls->broken = 1;		/* the lag is walked from now on */
		return;
	}
	ls->total--;
	if (--ls->v[i].count == 0)
		ls->live--;
	while (ls->head < ls->n && ls->v[ls->head].count == 0)
		ls->head++;
	if (ls->head == ls->n)
		ls->head = ls->n = 0;
	else if (ls->n - ls->head > 2 * ls->live + 64)
		link_lag_compact(ls);
}

uint64_t
link_lag_oldest(struct link *l)
{
	struct lagset	*ls = &l->lag;

	if (ls->total == 0 || ls->total != l->nops || ls->broken)
		return 0;
	return ls->v[ls->head].ms;
}

static void
link_free_cb(evutil_socket_t fd, short what, void *arg)
{
	link_free(arg);
}

static void
link_free_soon(struct link *l, int ms)
{
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(l->ev_free, &tv);
}

/* After a BYE: free once the output is gone (or after LINK_LINGER_MS). */
static void
link_linger_write_cb(struct bufferevent *bev, void *arg)
{
	struct link	*l = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		link_free_soon(l, 0);
}

static void
link_linger_event_cb(struct bufferevent *bev, short what, void *arg)
{
	link_free_soon(arg, 0);
}

int
link_alive(const struct link *l)
{
	return l != NULL && l->state != LINK_DEAD;
}

size_t
link_out_len(const struct link *l)
{
	return evbuffer_get_length(bufferevent_get_output(l->bev));
}

int
link_out_high(const struct link *l)
{
	return link_out_len(l) >= LINK_OUT_HIGH;
}

uint64_t
link_next_seq(const struct link *l)
{
	return l->wc.send_seq;
}

static void
peer_schedule_retry(struct peer *p)
{
	struct timeval	tv;
	int64_t		ms = p->backoff_ms;

	if (!p->dialer || p->sp->d == NULL || p->sp->d->stopping)
		return;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(p->ev_retry, &tv);
	p->backoff_ms = ms * 2 > p->sp->reconnect_max_ms ? p->sp->reconnect_max_ms :
	    ms * 2;
}

/* Sends a BYE when the link can still carry one, then closes it. */
static void
link_vclose(struct link *l, int bye, const char *fmt, va_list ap)
{
	struct wire_msg	 m;
	struct peer	*p = l->peer;
	char		 reason[WIRE_TEXT_MAX];
	int		 was_up = l->state == LINK_UP;

	if (l->state == LINK_DEAD)
		return;
	vsnprintf(reason, sizeof(reason), fmt, ap);
	if (l->audit)
		log_info("audit session from %s ended: %s", l->addr, reason);
	else if (was_up)
		log_warnx("peer %s: link down: %s", link_name(l), reason);
	else
		log_info("peer %s (%s): connection closed: %s", link_name(l),
		    l->addr, reason);
	if (p != NULL && p->link == l && !l->audit) {
		snprintf(p->last_error, sizeof(p->last_error), "%s", reason);
		p->last_error_ms = now_mono_ms();
	}
	if (was_up && !l->audit)
		sync_link_down(l);
	recv_link_down(l);
	ae_link_down(l, was_up && !l->audit);
	l->state = LINK_DEAD;
	event_del(l->ev_ping);
	event_del(l->ev_pump);
	if (p != NULL && p->link == l) {
		p->link = NULL;
		peer_schedule_retry(p);
	}
	auth_bev_cancel(l->bev);
	if (bye && l->wc_ok) {
		memset(&m, 0, offsetof(struct wire_msg, vv_store));
		m.type = WIRE_BYE;
		m.bye.reason = reason;
		buf_reset(&l->obuf);
		if (wire_encode(&l->wc, &m, &l->obuf, reason, sizeof(reason)) == 0 &&
		    bufferevent_write(l->bev, l->obuf.data, l->obuf.len) == 0) {
			bufferevent_disable(l->bev, EV_READ);
			bufferevent_setwatermark(l->bev, EV_WRITE, 0, 0);
			bufferevent_setcb(l->bev, NULL, link_linger_write_cb,
			    link_linger_event_cb, l);
			link_free_soon(l, LINK_LINGER_MS);
			return;
		}
	}
	bufferevent_disable(l->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(l->bev, NULL, NULL, NULL, NULL);
	link_free_soon(l, 0);
}

void
link_close(struct link *l, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	link_vclose(l, 1, fmt, ap);
	va_end(ap);
}

static void PRINTFLIKE(2, 3)
link_drop(struct link *l, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	link_vclose(l, 0, fmt, ap);
	va_end(ap);
}

int
link_send(struct link *l, const struct wire_msg *m)
{
	char	err[512];

	if (!link_alive(l) || !l->wc_ok)
		return -1;
	buf_reset(&l->obuf);
	if (wire_encode(&l->wc, m, &l->obuf, err, sizeof(err)) == -1) {
		link_close(l, "cannot encode a frame: %s", err);
		return -1;
	}
	if (bufferevent_write(l->bev, l->obuf.data, l->obuf.len) == -1) {
		link_drop(l, "cannot queue %zu bytes", l->obuf.len);
		return -1;
	}
	if (l->peer != NULL)
		l->peer->bytes_out += l->obuf.len;
	if (link_out_len(l) > LINK_OUT_MAX) {
		link_drop(l, "the peer does not read (%zu bytes waiting)",
		    link_out_len(l));
		return -1;
	}
	return 0;
}

void
link_pump_soon(struct link *l)
{
	struct timeval	tv = { 0, 0 };

	if (link_alive(l))
		evtimer_add(l->ev_pump, &tv);	/* also brings a later one forward */
}

void
link_pause_read(struct link *l, int paused)
{
	if (!link_alive(l) || l->read_paused == paused)
		return;
	l->read_paused = paused;
	if (paused)
		bufferevent_disable(l->bev, EV_READ);
	else {
		bufferevent_enable(l->bev, EV_READ);
		link_pump_soon(l);	/* what is buffered already */
	}
}

struct link *
peer_up_link(const struct peer *p)
{
	return p->link != NULL && p->link->state == LINK_UP ? p->link : NULL;
}

/* HELLO. */

static int
link_send_hello(struct link *l)
{
	struct wire_msg	m;

	memset(&m, 0, offsetof(struct wire_msg, vv_store));
	m.type = WIRE_HELLO;
	m.hello.version = WIRE_VERSION;
	m.hello.node = l->sp->node;
	m.hello.mode = (uint8_t)l->sp->mode;	/* enum spoolsync_mode == wire_mode */
	m.hello.flags = l->sp->is_root ? SPOOLSYNC_HELLO_ROOT : 0;
	return link_send(l, &m);
}

static struct peer *
peer_by_name(struct spoolsync *sp, const char *name)
{
	for (size_t i = 0; i < sp->npeers; i++)
		if (strcmp(sp->peers[i].name, name) == 0)
			return &sp->peers[i];
	return NULL;
}

static int
mode_compatible(int mine, int theirs)
{
	if (mine == MODE_BIDIR || theirs == MODE_BIDIR)
		return mine == theirs;
	return (mine == MODE_SEND && theirs == MODE_RECEIVE) ||
	    (mine == MODE_RECEIVE && theirs == MODE_SEND);
}

static void
link_became_up(struct link *l, struct peer *p)
{
	if (p->link != NULL && p->link != l) {
		/* A reconnect the old link did not notice: the new one wins. */
		link_close(p->link, "replaced by a new connection from %s", l->addr);
	}
	if (p->ev_retry != NULL)
		evtimer_del(p->ev_retry);
	l->peer = p;
	p->link = l;
	l->state = LINK_UP;
	l->up_ms = now_mono_ms();
	p->backoff_ms = LINK_BACKOFF_MIN_MS;
	p->connects++;
	p->last_error[0] = '\0';
	log_info("peer %s: link up (%s, %s, peer %s)", p->name, l->addr,
	    l->role == AUTH_CLIENT ? "dialed" : "accepted",
	    spoolsync_mode_name(p->sp->mode == MODE_SEND ? MODE_RECEIVE :
	    p->sp->mode == MODE_RECEIVE ? MODE_SEND : MODE_BIDIR));
	sync_link_up(l);
	if (link_alive(l))
		ae_link_up(l);
}

static void
link_on_hello(struct link *l, const struct wire_hello *h)
{
	struct peer	*p = peer_by_name(l->sp, h->node);

	if (p == NULL) {
		link_close(l, "node '%s' is not one of this node's peers", h->node);
		return;
	}
	if (l->peer != NULL && l->peer != p) {
		link_close(l, "dialed peer '%s' but '%s' answered", l->peer->name,
		    h->node);
		return;
	}
	l->peer_root = (h->flags & SPOOLSYNC_HELLO_ROOT) != 0;
	if (h->flags & SPOOLSYNC_HELLO_AUDIT) {
		if (l->role != AUTH_SERVER) {
			link_close(l, "an audit HELLO on a link this node dialed");
			return;
		}
		l->peer = p;
		l->audit = 1;
		l->state = LINK_UP;
		log_info("audit session from %s (node %s)", l->addr, p->name);
		return;
	}
	if (!mode_compatible(l->sp->mode, h->mode)) {
		l->peer = p;
		link_close(l, "mode mismatch: this node (%s) is %s, %s is %s",
		    l->sp->node, spoolsync_mode_name(l->sp->mode), p->name,
		    spoolsync_mode_name(h->mode));
		sp_error(l->sp, p, "mode mismatch: this node is %s, peer is %s",
		    spoolsync_mode_name(l->sp->mode), spoolsync_mode_name(h->mode));
		return;
	}
	/* Both sides now know both versions: the first file comes after this
	 * HELLO, in either direction. */
	l->wc.digest_data = h->version >= 2;
	link_became_up(l, p);
}

/* Frames. */

static void
link_on_ping(struct link *l, const struct wire_ping *pg)
{
	struct wire_msg	m;

	memset(&m, 0, offsetof(struct wire_msg, vv_store));
	m.type = WIRE_PONG;
	m.ping.ts = pg->ts;
	link_send(l, &m);
}

static void
link_dispatch(struct link *l, struct wire_msg *m)
{
	if (l->state == LINK_HELLO) {
		if (m->type != WIRE_HELLO) {
			link_close(l, "expected HELLO, got %s", wire_type_name(m->type));
			return;
		}
		link_on_hello(l, &m->hello);
		return;
	}
	switch (m->type) {
	case WIRE_PING:
		link_on_ping(l, &m->ping);
		return;
	case WIRE_PONG:
		return;
	case WIRE_BYE:
		link_drop(l, "the peer said goodbye: %s", m->bye.reason);
		return;
	case WIRE_MANIFEST_REQ:
		ae_on_manifest_req(l, &m->manifest_req);
		return;
	case WIRE_HELLO:
		link_close(l, "a second HELLO");
		return;
	default:
		break;
	}
	if (l->audit) {
		link_close(l, "%s on an audit session", wire_type_name(m->type));
		return;
	}
	switch (m->type) {
	case WIRE_ACK:
		sync_on_ack(l, &m->ack);
		return;
	case WIRE_SIG:
		send_on_sig(l, &m->sig);
		return;
	case WIRE_MANIFEST:
		ae_on_manifest(l, &m->manifest);
		return;
	default:
		recv_msg(l, m);
		return;
	}
}

static void
link_read(struct link *l)
{
	struct evbuffer	*in;
	unsigned char	*p;
	size_t		 avail, need;
	char		 err[512];
	int		 n = 0;

	if (!link_alive(l) || l->state < LINK_HELLO)
		return;
	in = bufferevent_get_input(l->bev);
	while (link_alive(l) && !l->read_paused) {
		if ((avail = evbuffer_get_length(in)) == 0)
			return;
		if (n++ == LINK_FRAMES_PER_READ) {
			link_pump_soon(l);	/* the rest after other work */
			return;
		}
		p = evbuffer_pullup(in, (ev_ssize_t)(avail < WIRE_HDR_LEN ? avail :
		    WIRE_HDR_LEN));
		switch (wire_peek(p, avail, &need, err, sizeof(err))) {
		case WIRE_NEED:
			return;
		case WIRE_BAD:
			link_close(l, "refused a frame: %s", err);
			return;
		case WIRE_READY:
			break;
		}
		p = evbuffer_pullup(in, (ev_ssize_t)need);
		if (wire_decode(&l->wc, p, need, l->msg, err, sizeof(err)) == -1) {
			link_close(l, "malformed frame: %s", err);
			return;
		}
		l->last_rx_ms = now_mono_ms();
		if (l->peer != NULL)
			l->peer->bytes_in += need;
		link_dispatch(l, l->msg);
		if (!link_alive(l))
			return;
		evbuffer_drain(in, need);
	}
}

static void
link_read_cb(struct bufferevent *bev, void *arg)
{
	struct link	*l = arg;
	struct state	*st = l->sp->st;

	state_begin(st);	/* the records of a burst in one transaction */
	link_read(l);
	state_commit(st);
}

static void
link_write_cb(struct bufferevent *bev, void *arg)
{
	link_pump_soon(arg);
}

static void
link_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct link	*l = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;
	link_read(l);	/* what came with the close */
	if (!link_alive(l))
		return;
	if (what & BEV_EVENT_EOF)
		link_drop(l, "connection closed by the peer");
	else if (what & BEV_EVENT_ERROR)
		link_drop(l, "connection error: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		link_drop(l, "connection event 0x%x", (unsigned)what);
}

static void
link_pump_turn(struct link *l)
{
	size_t	budget = SYNC_PUMP_BUDGET;

	if (!l->read_paused)
		link_read(l);
	if (link_alive(l))
		recv_pump(l, &budget);
	if (link_alive(l))
		ae_pump(l, &budget);
	if (link_alive(l) && !l->audit)
		sync_pump(l, &budget);
	if (link_alive(l) && budget == 0)
		link_pump_soon(l);
}

static void
link_pump_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link	*l = arg;
	struct state	*st = l->sp->st;

	if (!link_alive(l) || l->state != LINK_UP)
		return;
	state_begin(st);	/* the records of a turn in one transaction */
	link_pump_turn(l);
	state_commit(st);
}

static void
link_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link	*l = arg;
	struct wire_msg	 m;
	uint64_t	 now = now_mono_ms(), quiet = now - l->last_rx_ms;
	uint64_t	 dead = l->audit ? LINK_AUDIT_DEAD_MS : LINK_DEAD_MS;

	if (l->state == LINK_AUTH || l->state == LINK_HELLO) {
		if (quiet > LINK_AUTH_TIMEOUT_MS + LINK_HELLO_TIMEOUT_MS)
			link_close(l, "no HELLO within %d ms", LINK_AUTH_TIMEOUT_MS +
			    LINK_HELLO_TIMEOUT_MS);
		return;
	}
	if (l->state != LINK_UP)
		return;
	if (quiet > dead) {
		link_drop(l, "nothing heard for %llu ms (dead link)",
		    (unsigned long long)quiet);
		return;
	}
	memset(&m, 0, offsetof(struct wire_msg, vv_store));
	m.type = WIRE_PING;
	m.ping.ts = now;
	link_send(l, &m);
}

/* Authentication done: the frames start with a HELLO each way. */
static void
link_auth_cb(struct bufferevent *bev, int ok, const char *err,
    const unsigned char *key, void *arg)
{
	struct link	*l = arg;
	char		 e[256];

	if (!ok) {
		if (l->role == AUTH_SERVER)
			log_warnx("connection from %s refused: %s", l->addr, err);
		link_drop(l, "%s", err);
		return;
	}
	if (wire_ctx_init(&l->wc, key, l->role, e, sizeof(e)) == -1) {
		link_drop(l, "%s", e);
		return;
	}
	l->wc_ok = 1;
	l->state = LINK_HELLO;
	l->last_rx_ms = now_mono_ms();
	bufferevent_setcb(l->bev, link_read_cb, link_write_cb, link_event_cb, l);
	bufferevent_setwatermark(l->bev, EV_WRITE, LINK_OUT_LOW, 0);
	/* libevent's 16 KiB a syscall would be ~18,000 reads for an initial
	 * sync; and fewer frames straddle two of its buffers (a pullup each). */
	bufferevent_set_max_single_read(l->bev, LINK_IO_MAX);
	bufferevent_set_max_single_write(l->bev, LINK_IO_MAX);
	bufferevent_enable(l->bev, EV_READ | EV_WRITE);
	if (link_send_hello(l) == -1)
		return;
	link_read(l);
}

/* Accepting. */

static void
peer_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct spoolsync	*sp = arg;
	struct bufferevent	*bev;
	struct link		*l;
	char			 addr[128];

	net_sockaddr_str(sa, (socklen_t)salen, addr, sizeof(addr));
	link_tcp_opts(fd);
	bev = bufferevent_socket_new(sp->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		log_warnx("connection from %s dropped: out of memory", addr);
		return;
	}
	l = link_new(sp, bev, AUTH_SERVER, addr);
	log_debug("connection from %s: authenticating", addr);
	auth_bev_start(bev, &sp->key, AUTH_SERVER, LINK_AUTH_TIMEOUT_MS,
	    link_auth_cb, l);
}

static void
peer_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	log_warnx("peer listener: accept: %s",
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

int
peer_listen(struct spoolsync *sp, const struct net_addr *a, char *err,
    size_t errlen)
{
	int	fd;

	if ((fd = net_listen(a, 64, err, errlen)) == -1)
		return -1;
	sp->lev = evconnlistener_new(sp->base, peer_accept_cb, sp,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (sp->lev == NULL) {
		close(fd);
		snprintf(err, errlen, "listen %s: cannot make the listener", a->text);
		return -1;
	}
	evconnlistener_set_error_cb(sp->lev, peer_accept_error_cb);
	return 0;
}

/* Dialing. */

static void
peer_dial(struct peer *p)
{
	struct spoolsync	*sp = p->sp;
	struct bufferevent	*bev;
	struct link		*l;

	if (p->link != NULL)
		return;
	bev = bufferevent_socket_new(sp->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		peer_schedule_retry(p);
		return;
	}
	l = link_new(sp, bev, AUTH_CLIENT, p->addr.text);
	l->peer = p;
	p->link = l;
	l->state = LINK_CONNECTING;
	log_debug("peer %s: dialing %s", p->name, p->addr.text);
	if (bufferevent_socket_connect(bev, (struct sockaddr *)&p->addr.ss,
	    (int)p->addr.len) == -1) {
		link_drop(l, "connect %s: %s", p->addr.text,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		return;
	}
	if (bufferevent_getfd(bev) != -1)
		link_tcp_opts(bufferevent_getfd(bev));
	l->state = LINK_AUTH;
	auth_bev_start(bev, &sp->key, AUTH_CLIENT, LINK_AUTH_TIMEOUT_MS,
	    link_auth_cb, l);
}

static void
peer_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	peer_dial(arg);
}

void
peer_start(struct peer *p)
{
	struct timeval	tv = { 0, 0 };

	p->backoff_ms = LINK_BACKOFF_MIN_MS;
	p->ev_retry = evtimer_new(p->sp->base, peer_retry_cb, p);
	if (p->ev_retry == NULL)
		fatalx("peer: out of memory for a timer");
	if (p->dialer)
		evtimer_add(p->ev_retry, &tv);
}

void
peer_shutdown(struct spoolsync *sp)
{
	struct link	*l, *next;

	if (sp->lev != NULL)
		evconnlistener_free(sp->lev);
	sp->lev = NULL;
	for (size_t i = 0; i < sp->npeers; i++)
		if (sp->peers[i].ev_retry != NULL)
			evtimer_del(sp->peers[i].ev_retry);
	for (l = TAILQ_FIRST(&sp->links); l != NULL; l = next) {
		next = TAILQ_NEXT(l, entry);
		if (link_alive(l))
			link_close(l, "shutting down");
	}
}

/* Called at the very end: every link, lingering or not, goes now. */
void
peer_free_all(struct spoolsync *sp)
{
	struct link	*l;

	while ((l = TAILQ_FIRST(&sp->links)) != NULL) {
		if (link_alive(l))
			link_drop(l, "stopped");
		link_free(l);
	}
	for (size_t i = 0; i < sp->npeers; i++)
		if (sp->peers[i].ev_retry != NULL) {
			event_free(sp->peers[i].ev_retry);
			sp->peers[i].ev_retry = NULL;
		}
}
