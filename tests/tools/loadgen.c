/*
 * loadgen.c: an XMPP load generator for the proxyd benchmark: N clients log
 * in (SASL PLAIN, bind), then pairs exchange messages at an aggregate rate, or
 * as fast as they go; one JSON line of msgs/s and latency percentiles.
 *
 *   loadgen -t HOST:PORT -n CLIENTS [-d DOMAIN] [-u PREFIX] [-U USERS]
 *           [-w PASSWORD] [-T none|starttls|direct] [-r RATE | -W WINDOW]
 *           [-s SECONDS] [-a WARMUP_S] [-b BODY_BYTES] [-c CONNECTING]
 *           [-P PROCS] [-k TICK_US] [-e] [-I]
 *
 * Client i logs in as PREFIX<i % USERS> with resource r<i>; clients 2k and
 * 2k+1 are partners.  -r RATE: messages/s in all, sent on a 1 ms clock
 * (open loop; -k TICK_US: a finer clock, so smaller bursts); -r 0: every
 * client keeps WINDOW messages in flight to its partner (closed loop: the
 * saturating load).  The latency of a message runs
 * from just before it is written until its partner has read it; the send
 * time (CLOCK_MONOTONIC) travels in the body.  -I: log in, print one line and
 * hold the clients idle until stdin closes or SIGTERM (memory figures).
 * -e: send initial presence after bind.  Clients are spread over PROCS
 * processes (more when the open-file limit needs it); partners share one.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "common.h"

#define HIST_LINEAR	1024			/* 1 us buckets below 1.024 ms */
#define HIST_SUB	64			/* then 64 per power of two */
#define HIST_BUCKETS	(HIST_LINEAR + 26 * HIST_SUB)
#define FD_RESERVE	64
#define DRAIN_MS	2000
#define TICK_US		1000

#define NS_SASL		"urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND		"urn:ietf:params:xml:ns:xmpp-bind"
#define NS_TLS		"urn:ietf:params:xml:ns:xmpp-tls"

enum tls_mode { TLS_NONE, TLS_STARTTLS, TLS_DIRECT };

enum phase {
	P_IDLE /* not started */, P_CONNECT, P_FEATURES, P_PROCEED, P_AUTH, P_BIND, P_READY, P_DEAD
};

enum run_phase { R_LOGIN, R_WAIT, R_WARM, R_MEASURE, R_DRAIN, R_DONE };

struct opts {
	struct net_addr	 target;
	const char	*domain, *prefix, *password;
	long		 clients, users, procs, connecting, window, body, tick_us;
	double		 rate, seconds, warmup;
	enum tls_mode	 tls;
	int		 idle, presence;
};

struct hist {
	uint64_t	 n[HIST_BUCKETS];
	uint64_t	 count, max_us, min_us;
};

struct client {
	struct worker		*w;
	long			 idx;
	int			 fd;
	enum phase		 phase;
	int			 tls_done, authed;
	struct bufferevent	*bev;
	struct client		*peer;
	char			*jid;
	uint64_t		 seq;
};

struct worker {
	const struct opts	*o;
	struct event_base	*base;
	SSL_CTX			*ssl_ctx;
	struct client		*c;
	long			 first, count, next, inflight, ready, failed;
	struct client		**senders;
	long			 nsenders, cursor;
	enum run_phase		 rphase;
	struct bufferevent	*ctrl;
	struct event		*tick, *phase_ev;
	uint64_t		 t_login0, t_go, t_measure0, t_measure1;
	uint64_t		 scheduled, sent, received, recv_window, skipped;
	uint64_t		 errors;
	char			 first_error[160];
	struct hist		 h;
};

static void	client_start(struct worker *, struct client *);
static void	client_event_cb(struct bufferevent *, short, void *);
static void	client_read_cb(struct bufferevent *, void *);
static void	client_message(struct client *, const char *body, const char *end);
static void	worker_next_phase(struct worker *);

static char	body_pad[60001];	/* -b: filler for the body */

/* ---- latency histogram ---- */

static size_t
hist_index(uint64_t us)
{
	int	e;

	if (us < HIST_LINEAR)
		return (size_t)us;
	e = 63 - __builtin_clzll(us);		/* 10 .. */
	if (e > 35)
		return HIST_BUCKETS - 1;
	return HIST_LINEAR + (size_t)(e - 10) * HIST_SUB +
	    (size_t)((us >> (e - 6)) & (HIST_SUB - 1));
}

/* The middle of bucket I, in microseconds. */
static double
hist_value(size_t i)
{
	size_t	e, sub;
	double	lo, width;

	if (i < HIST_LINEAR)
		return (double)i;
	e = (i - HIST_LINEAR) / HIST_SUB + 10;
	sub = (i - HIST_LINEAR) % HIST_SUB;
	width = ldexp(1.0, (int)e - 6);
	lo = ldexp(1.0, (int)e) + (double)sub * width;
	return lo + width / 2;
}

static void
hist_add(struct hist *h, uint64_t us)
{
	h->n[hist_index(us)]++;
	if (h->count == 0 || us < h->min_us)
		h->min_us = us;
	if (us > h->max_us)
		h->max_us = us;
	h->count++;
}

static double
hist_pct(const struct hist *h, double q)
{
	uint64_t	want, seen = 0;
	size_t		i;

	if (h->count == 0)
		return 0;
	want = (uint64_t)ceil(q / 100.0 * (double)h->count);
	if (want == 0)
		want = 1;
	for (i = 0; i < HIST_BUCKETS; i++)
		if ((seen += h->n[i]) >= want)
			return hist_value(i);
	return (double)h->max_us;
}

/* ---- a client's stream ---- */

static void
client_fail(struct client *c, const char *why, const char *data, size_t len)
{
	struct worker	*w = c->w;
	enum phase	 was = c->phase;

	if (c->phase == P_DEAD)
		return;
	c->phase = P_DEAD;
	w->errors++;
	if (w->first_error[0] == '\0')
		snprintf(w->first_error, sizeof(w->first_error), "client %ld: %s%s%.*s",
		    c->idx, why, data ? ": " : "", (int)(len > 100 ? 100 : len),
		    data ? data : "");
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	if (was != P_READY) {
		w->failed++;
		w->inflight--;
		while (w->inflight < w->o->connecting && w->next < w->count)
			client_start(w, &w->c[w->next++]);
		if (w->rphase == R_LOGIN && w->ready + w->failed == w->count)
			worker_next_phase(w);
	}
}

static void
client_send(struct client *c, const char *s)
{
	bufferevent_write(c->bev, s, strlen(s));
}

static void
client_header(struct client *c)
{
	char	hdr[512];

	snprintf(hdr, sizeof(hdr), "<?xml version='1.0'?><stream:stream to='%s' "
	    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
	    "version='1.0'>", c->w->o->domain);
	client_send(c, hdr);
	c->phase = P_FEATURES;
}

static void
client_auth(struct client *c)
{
	const struct opts	*o = c->w->o;
	unsigned char		 raw[512], b64[800];
	char			 user[256], out[1024];
	int			 n, bl;

	snprintf(user, sizeof(user), "%s%ld", o->prefix, c->idx % o->users);
	n = snprintf((char *)raw, sizeof(raw), "%c%s%c%s", 0, user, 0, o->password);
	bl = EVP_EncodeBlock(b64, raw, n);
	snprintf(out, sizeof(out), "<auth xmlns='" NS_SASL "' mechanism='PLAIN'>"
	    "%.*s</auth>", bl, b64);
	client_send(c, out);
	c->phase = P_AUTH;
}

static void
client_bind(struct client *c)
{
	char	out[256];

	snprintf(out, sizeof(out), "<iq type='set' id='bind1'><bind xmlns='" NS_BIND
	    "'><resource>r%ld</resource></bind></iq>", c->idx);
	client_send(c, out);
	c->phase = P_BIND;
}

static int
client_set_bev(struct client *c, struct bufferevent *bev)
{
	if (bev == NULL)
		return -1;
	c->bev = bev;
	bufferevent_setcb(bev, client_read_cb, NULL, client_event_cb, c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return 0;
}

/* TLS on the client's socket: from the first byte, or after <proceed/>. */
static int
client_tls(struct client *c)
{
	SSL	*ssl = SSL_new(c->w->ssl_ctx);

	if (ssl == NULL)
		return -1;
	SSL_set_tlsext_host_name(ssl, c->w->o->domain);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
	if (client_set_bev(c, bufferevent_openssl_socket_new(c->w->base, c->fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING, 0)) == -1) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	c->phase = P_CONNECT;
	c->tls_done = 1;
	return 0;
}

static void
client_ready(struct client *c, const char *jid, size_t len)
{
	struct worker	*w = c->w;

	c->jid = xstrndup(jid, len);
	c->phase = P_READY;
	if (w->o->presence)
		client_send(c, "<presence/>");
	w->ready++;
	w->inflight--;
	while (w->inflight < w->o->connecting && w->next < w->count)
		client_start(w, &w->c[w->next++]);
	if (w->ready + w->failed == w->count)
		worker_next_phase(w);
}

/* Handshake steps: each waits for one marker; what precedes it is consumed. */
static void
client_handshake(struct client *c, struct evbuffer *in)
{
	size_t		 len = evbuffer_get_length(in);
	const char	*p = (const char *)evbuffer_pullup(in, -1), *m, *j, *je;

	if (memmem(p, len, "<stream:error", 13) != NULL ||
	    memmem(p, len, "</stream:stream>", 16) != NULL) {
		client_fail(c, "stream error", p, len);
		return;
	}
	switch (c->phase) {
	case P_FEATURES:
		if (memmem(p, len, "</stream:features>", 18) == NULL)
			return;
		evbuffer_drain(in, len);
		if (c->w->o->tls == TLS_STARTTLS && !c->tls_done) {
			client_send(c, "<starttls xmlns='" NS_TLS "'/>");
			c->phase = P_PROCEED;
		} else if (!c->authed)
			client_auth(c);
		else
			client_bind(c);
		return;
	case P_PROCEED:
		if (memmem(p, len, "<proceed", 8) == NULL)
			return;
		evbuffer_drain(in, len);
		if (client_tls(c) == -1)
			client_fail(c, "cannot start TLS", NULL, 0);
		return;
	case P_AUTH:
		if (memmem(p, len, "<failure", 8) != NULL) {
			client_fail(c, "SASL failure", p, len);
			return;
		}
		if (memmem(p, len, "<success", 8) == NULL)
			return;
		evbuffer_drain(in, len);
		c->authed = 1;
		client_header(c);
		return;
	case P_BIND:
		if ((m = memmem(p, len, "</iq>", 5)) == NULL)
			return;
		if ((j = memmem(p, (size_t)(m - p), "<jid>", 5)) == NULL ||
		    (je = memmem(j, (size_t)(m - j), "</jid>", 6)) == NULL) {
			client_fail(c, "bind failed", p, len);
			return;
		}
		client_ready(c, j + 5, (size_t)(je - j - 5));
		evbuffer_drain(in, (size_t)(m + 5 - p));
		return;
	default:
		return;
	}
}

/* Relay: every complete <message/> that carries one of our bodies. */
static void
client_relay(struct client *c, struct evbuffer *in)
{
	size_t		 len = evbuffer_get_length(in), off = 0;
	const char	*p = (const char *)evbuffer_pullup(in, -1), *e, *b;

	while ((e = memmem(p + off, len - off, "</message>", 10)) != NULL) {
		if ((b = memmem(p + off, (size_t)(e - p - off), "<body>", 6)) != NULL)
			client_message(c, b + 6, e);
		off = (size_t)(e - p) + 10;
		if (c->phase != P_READY)
			return;
	}
	if (memmem(p + off, len - off, "<stream:error", 13) != NULL ||
	    memmem(p + off, len - off, "</stream:stream>", 16) != NULL) {
		client_fail(c, "stream error", p + off, len - off);
		return;
	}
	evbuffer_drain(in, off);
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct client	*c = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);

	if (c->phase == P_READY)
		client_relay(c, in);
	else
		client_handshake(c, in);
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client	*c = arg;
	char		 why[200];
	unsigned long	 e;

	if (what & BEV_EVENT_CONNECTED) {
		if (c->w->o->tls == TLS_DIRECT && !c->tls_done) {
			if (client_tls(c) == -1)
				client_fail(c, "cannot start TLS", NULL, 0);
			return;
		}
		client_header(c);
		return;
	}
	e = bufferevent_get_openssl_error(bev);
	snprintf(why, sizeof(why), "%s%s%s%s", what & BEV_EVENT_EOF ? "closed" :
	    "connection error", EVUTIL_SOCKET_ERROR() ? ": " : "",
	    EVUTIL_SOCKET_ERROR() ? strerror(EVUTIL_SOCKET_ERROR()) : "",
	    e ? ERR_reason_error_string(e) : "");
	client_fail(c, why, NULL, 0);
}

static void
client_start(struct worker *w, struct client *c)
{
	char	err[200];
	int	on = 1;

	c->phase = P_CONNECT;
	w->inflight++;
	if ((c->fd = net_connect_nb(&w->o->target, err, sizeof(err))) == -1) {
		client_fail(c, err, NULL, 0);
		return;
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	/* A socket bufferevent that sees its connect complete. */
	if (client_set_bev(c, bufferevent_socket_new(w->base, c->fd, 0)) == -1) {
		client_fail(c, "bufferevent", NULL, 0);
		return;
	}
	if (bufferevent_socket_connect(c->bev, NULL, 0) == -1)
		client_fail(c, "connect failed", NULL, 0);
}

/* ---- messages ---- */

static void
client_send_message(struct client *c)
{
	struct worker	*w = c->w;
	char		 out[512 + 65536];
	int		 n;

	n = snprintf(out, sizeof(out), "<message to='%s' type='chat'><body>%llu "
	    "%llu %.*s</body></message>", c->peer->jid,
	    (unsigned long long)++c->seq, (unsigned long long)now_mono_ns(),
	    (int)w->o->body, body_pad);
	bufferevent_write(c->bev, out, (size_t)n);
	w->sent++;
}

static void
client_message(struct client *c, const char *body, const char *end)
{
	struct worker	*w = c->w;
	char		*q;
	uint64_t	 t0, now;

	(void)strtoull(body, &q, 10);
	if (q >= end || *q != ' ')
		return;
	t0 = strtoull(q + 1, NULL, 10);
	now = now_mono_ns();
	w->received++;
	if (w->rphase == R_MEASURE) {
		w->recv_window++;
		hist_add(&w->h, now > t0 ? (now - t0) / 1000 : 0);
	}
	/* Closed loop: each message that arrives sends the next one back. */
	if (w->o->rate == 0 && c->peer != NULL && (w->rphase == R_WARM ||
	    w->rphase == R_MEASURE))
		client_send_message(c);
	else if (w->rphase == R_DRAIN && w->received >= w->sent) {
		evtimer_del(w->phase_ev);
		worker_next_phase(w);
	}
}

/* Open loop: what is due by now, round robin over the senders. */
static void
worker_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	double		 share = w->o->rate * (double)w->count / (double)w->o->clients;
	uint64_t	 due, cap = (uint64_t)(share * 2) + 1000;
	struct client	*c;

	due = (uint64_t)(share * (double)(now_mono_ns() - w->t_go) / 1e9);
	while (w->scheduled < due && w->nsenders > 0) {
		w->scheduled++;
		c = w->senders[w->cursor++ % w->nsenders];
		/* More than two seconds' worth in flight: the target is behind. */
		if (w->sent - w->received > cap || c->phase != P_READY ||
		    c->peer->phase != P_READY) {
			w->skipped++;
			continue;
		}
		client_send_message(c);
	}
}

/* ---- the worker's phases ---- */

static void
worker_report_login(struct worker *w)
{
	char	line[400];

	snprintf(line, sizeof(line), "login %ld %ld %.3f %s\n", w->ready, w->failed,
	    (double)(now_mono_ns() - w->t_login0) / 1e9, w->first_error);
	bufferevent_write(w->ctrl, line, strlen(line));
}

static void
worker_report_result(struct worker *w)
{
	struct buf	b;
	size_t		i;

	buf_init(&b);
	buf_printf(&b, "result %llu %llu %llu %llu %llu %.6f %llu %llu",
	    (unsigned long long)w->sent, (unsigned long long)w->received,
	    (unsigned long long)w->recv_window, (unsigned long long)w->skipped,
	    (unsigned long long)w->errors,
	    (double)(w->t_measure1 - w->t_measure0) / 1e9,
	    (unsigned long long)w->h.min_us, (unsigned long long)w->h.max_us);
	for (i = 0; i < HIST_BUCKETS; i++)
		if (w->h.n[i] != 0)
			buf_printf(&b, " %zu:%llu", i, (unsigned long long)w->h.n[i]);
	buf_printf(&b, " |%s\n", w->first_error);
	bufferevent_write(w->ctrl, b.data, b.len);
	buf_free(&b);
}

static void
worker_phase_cb(evutil_socket_t fd, short what, void *arg)
{
	worker_next_phase(arg);
}

static void
worker_after(struct worker *w, double seconds)
{
	struct timeval	tv;

	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	evtimer_add(w->phase_ev, &tv);
}

static void
worker_go(struct worker *w)
{
	struct timeval	tv = { 0, w->o->tick_us };
	long		i, k;

	w->t_go = now_mono_ns();
	w->rphase = R_WARM;
	worker_after(w, w->o->warmup);
	if (w->o->rate > 0) {
		w->tick = event_new(w->base, -1, EV_PERSIST, worker_tick_cb, w);
		evtimer_add(w->tick, &tv);
		return;
	}
	for (i = 0; i < w->nsenders; i++)
		for (k = 0; k < w->o->window; k++)
			client_send_message(w->senders[i]);
}

static void
worker_next_phase(struct worker *w)
{
	switch (w->rphase) {
	case R_LOGIN:
		w->rphase = R_WAIT;
		worker_report_login(w);
		break;
	case R_WAIT:
		break;
	case R_WARM:
		w->rphase = R_MEASURE;
		w->t_measure0 = now_mono_ns();
		worker_after(w, w->o->seconds);
		break;
	case R_MEASURE:
		w->rphase = R_DRAIN;
		w->t_measure1 = now_mono_ns();
		if (w->tick != NULL)
			event_del(w->tick);
		/* Whatever is still in flight may arrive, for a while. */
		if (w->received < w->sent) {
			worker_after(w, DRAIN_MS / 1000.0);
			break;
		}
		/* FALLTHROUGH */
	case R_DRAIN:
		w->rphase = R_DONE;
		worker_report_result(w);
		break;
	case R_DONE:
		break;
	}
}

static void
worker_pair(struct worker *w)
{
	long	i;

	w->senders = xcalloc((size_t)w->count, sizeof(*w->senders));
	for (i = 0; i + 1 < w->count; i += 2) {
		struct client	*a = &w->c[i], *b = &w->c[i + 1];

		if (a->phase != P_READY || b->phase != P_READY)
			continue;
		a->peer = b;
		b->peer = a;
		w->senders[w->nsenders++] = a;
		w->senders[w->nsenders++] = b;
	}
}

static void
worker_ctrl_read_cb(struct bufferevent *bev, void *arg)
{
	struct worker	*w = arg;
	char		*line;

	while ((line = evbuffer_readln(bufferevent_get_input(bev), NULL,
	    EVBUFFER_EOL_LF)) != NULL) {
		if (strcmp(line, "go") == 0 && w->rphase == R_WAIT) {
			worker_pair(w);
			worker_go(w);
		}
		free(line);
	}
}

static void
worker_ctrl_write_cb(struct bufferevent *bev, void *arg)
{
	struct worker	*w = arg;

	if (w->rphase == R_DONE)
		event_base_loopexit(w->base, NULL);
}

static void
worker_ctrl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	/* The parent is gone (or done with us): so are we. */
	event_base_loopexit(((struct worker *)arg)->base, NULL);
}

static SSL_CTX *
worker_ssl_ctx(void)
{
	SSL_CTX	*ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		fatalx("SSL_CTX_new failed");
	/* A benchmark against its own test certificates: no verification. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

/* Below 1 ms the clock needs a precise timer: epoll waits in whole ms. */
static struct event_base *
worker_base(const struct opts *o)
{
	struct event_config	*cfg;
	struct event_base	*base;

	if (o->tick_us >= 1000)
		return event_base_new();
	if ((cfg = event_config_new()) == NULL)
		fatalx("event_config_new failed");
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

static int
worker_run(const struct opts *o, long first, long count, int ctrl_fd)
{
	static struct worker	w;
	long			i;

	w.o = o;
	w.first = first;
	w.count = count;
	w.base = worker_base(o);
	if (o->tls != TLS_NONE)
		w.ssl_ctx = worker_ssl_ctx();
	w.c = xcalloc((size_t)count, sizeof(*w.c));
	for (i = 0; i < count; i++) {
		w.c[i].w = &w;
		w.c[i].idx = first + i;
		w.c[i].fd = -1;
	}
	w.ctrl = bufferevent_socket_new(w.base, ctrl_fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(w.ctrl, worker_ctrl_read_cb, worker_ctrl_write_cb,
	    worker_ctrl_event_cb, &w);
	bufferevent_enable(w.ctrl, EV_READ | EV_WRITE);
	w.phase_ev = evtimer_new(w.base, worker_phase_cb, &w);
	w.t_login0 = now_mono_ns();
	if (count == 0)
		worker_next_phase(&w);
	while (w.inflight < o->connecting && w.next < w.count)
		client_start(&w, &w.c[w.next++]);
	event_base_dispatch(w.base);
	return 0;
}

/* ---- the parent: spreads clients, gathers figures ---- */

struct child {
	pid_t	 pid;
	FILE	*f;
	int	 fd;
};

static void
parent_merge(struct hist *h, char *line, uint64_t *tot, double *secs,
    char *err, size_t errlen)
{
	char		*p = line + 7, *tok, *save, *bar;
	uint64_t	 v[8];
	double		 s;
	int		 i;

	if ((bar = strchr(p, '|')) != NULL) {
		*bar = '\0';
		bar[strcspn(bar + 1, "\n") + 1] = '\0';
		if (*err == '\0' && bar[1] != '\0')
			snprintf(err, errlen, "%s", bar + 1);
	}
	for (i = 0; i < 8; i++) {
		if (i == 5) {
			s = strtod(p, &p);
			if (s > *secs)
				*secs = s;
			v[i] = 0;
			continue;
		}
		v[i] = strtoull(p, &p, 10);
	}
	for (i = 0; i < 5; i++)
		tot[i] += v[i];
	if (v[6] != 0 && (h->min_us == 0 || v[6] < h->min_us))
		h->min_us = v[6];
	if (v[7] > h->max_us)
		h->max_us = v[7];
	for (tok = strtok_r(p, " \n", &save); tok != NULL;
	    tok = strtok_r(NULL, " \n", &save)) {
		size_t		 idx = strtoul(tok, &tok, 10);
		uint64_t	 n;

		if (*tok != ':' || idx >= HIST_BUCKETS)
			continue;
		n = strtoull(tok + 1, NULL, 10);
		h->n[idx] += n;
		h->count += n;
	}
}

static char *
parent_line(struct child *ch, const char *want)
{
	static char	*line;
	static size_t	 cap;

	while (getline(&line, &cap, ch->f) > 0)
		if (strncmp(line, want, strlen(want)) == 0)
			return line;
	return NULL;
}

static void
print_login_json(struct json *j, const struct opts *o, long procs, long ready,
    long failed, double secs)
{
	json_kv_int(j, "clients", o->clients);
	json_kv_int(j, "procs", procs);
	json_kv_str(j, "tls", o->tls == TLS_NONE ? "none" : o->tls == TLS_STARTTLS ?
	    "starttls" : "direct");
	json_kv_int(j, "logged_in", ready);
	json_kv_int(j, "failed", failed);
	json_kv_double(j, "login_s", secs);
}

static volatile sig_atomic_t	stop_idle;

static void
idle_stop(int sig)
{
	stop_idle = 1;
}

/* Idle: hold everyone until stdin closes or a signal comes. */
static void
parent_hold(void)
{
	struct pollfd	pfd = { .fd = 0, .events = POLLIN };
	char		buf[256];

	signal(SIGTERM, idle_stop);
	signal(SIGINT, idle_stop);
	while (!stop_idle) {
		if (poll(&pfd, 1, 200) > 0 && read(0, buf, sizeof(buf)) <= 0)
			break;
	}
}

static int
parent_run(const struct opts *o, struct child *ch, long procs)
{
	static struct hist	 h;
	struct json		 j;
	char			*line, err[200] = "", *e;
	long			 i, ready = 0, failed = 0;
	double			 lsecs = 0, msecs = 0, s;
	uint64_t		 tot[5] = { 0 };

	for (i = 0; i < procs; i++) {
		if ((line = parent_line(&ch[i], "login ")) == NULL)
			fatalx("loadgen: worker %ld died during login", i);
		ready += strtol(line + 6, &e, 10);
		failed += strtol(e, &e, 10);
		if ((s = strtod(e, &e)) > lsecs)
			lsecs = s;
		e[strcspn(e, "\n")] = '\0';
		if (*err == '\0' && *++e != '\0')
			snprintf(err, sizeof(err), "%s", e);
	}
	json_init(&j);
	json_obj_begin(&j);
	json_kv_str(&j, "mode", o->idle ? "idle" : "run");
	print_login_json(&j, o, procs, ready, failed, lsecs);
	if (o->idle) {
		json_kv_str(&j, "first_error", err);
		json_obj_end(&j);
		printf("%s\n", json_text(&j));
		fflush(stdout);
		json_free(&j);
		parent_hold();
		return 0;
	}
	for (i = 0; i < procs; i++)
		if (write(ch[i].fd, "go\n", 3) != 3)
			fatal("loadgen: worker %ld", i);
	for (i = 0; i < procs; i++) {
		if ((line = parent_line(&ch[i], "result ")) == NULL)
			fatalx("loadgen: worker %ld died during the run", i);
		parent_merge(&h, line, tot, &msecs, err, sizeof(err));
	}
	json_kv_double(&j, "rate", o->rate);
	json_kv_int(&j, "tick_us", o->rate > 0 ? o->tick_us : 0);
	json_kv_int(&j, "window", o->rate == 0 ? o->window : 0);
	json_kv_double(&j, "seconds", msecs);
	json_kv_uint(&j, "sent", tot[0]);
	json_kv_uint(&j, "received", tot[1]);
	json_kv_uint(&j, "measured", tot[2]);
	json_kv_uint(&j, "skipped", tot[3]);
	json_kv_uint(&j, "errors", tot[4]);
	json_kv_double(&j, "msgs_per_s", msecs > 0 ? (double)tot[2] / msecs : 0);
	json_kv_double(&j, "p50_us", hist_pct(&h, 50));
	json_kv_double(&j, "p90_us", hist_pct(&h, 90));
	json_kv_double(&j, "p99_us", hist_pct(&h, 99));
	json_kv_double(&j, "p999_us", hist_pct(&h, 99.9));
	json_kv_uint(&j, "min_us", h.min_us);
	json_kv_uint(&j, "max_us", h.max_us);
	json_kv_str(&j, "first_error", err);
	json_obj_end(&j);
	printf("%s\n", json_text(&j));
	fflush(stdout);
	json_free(&j);
	return tot[2] > 0 ? 0 : 1;
}

static long
procs_needed(const struct opts *o)
{
	struct rlimit	rl;
	long		per, procs = o->procs;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return procs;
	per = (long)rl.rlim_cur - FD_RESERVE;
	if (per < 2)
		fatalx("loadgen: the open-file limit (%ld) is too low", (long)rl.rlim_cur);
	if ((o->clients + per - 1) / per > procs)
		procs = (o->clients + per - 1) / per;
	return procs;
}

static int
spawn_workers(const struct opts *o, long procs, struct child *ch)
{
	long	i, pairs = (o->clients + 1) / 2, first = 0, n;
	int	sv[2];

	for (i = 0; i < procs; i++) {
		/* Whole pairs per worker: partners share one event loop. */
		n = 2 * (pairs / procs + (i < pairs % procs));
		if (first + n > o->clients)
			n = o->clients - first;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
			fatal("socketpair");
		fflush(stdout);
		if ((ch[i].pid = fork()) == -1)
			fatal("fork");
		if (ch[i].pid == 0) {
			close(sv[0]);
			(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1)
				_exit(1);
			_exit(worker_run(o, first, n, sv[1]));
		}
		close(sv[1]);
		ch[i].fd = sv[0];
		if ((ch[i].f = fdopen(dup(sv[0]), "r")) == NULL)
			fatal("fdopen");
		first += n;
	}
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: loadgen -t HOST:PORT -n CLIENTS [-d DOMAIN] "
	    "[-u PREFIX] [-U USERS] [-w PASSWORD]\n"
	    "               [-T none|starttls|direct] [-r RATE | -W WINDOW] "
	    "[-s SECONDS] [-a WARMUP]\n"
	    "               [-b BODY_BYTES] [-c CONNECTING] [-P PROCS] [-k TICK_US] "
	    "[-e] [-I]\n");
	exit(2);
}

static void
parse_opts(int argc, char **argv, struct opts *o)
{
	char	err[256];
	int	ch, have_target = 0;

	memset(o, 0, sizeof(*o));
	o->domain = "example.test";
	o->prefix = "u";
	o->password = "pw";
	o->clients = 2;
	o->procs = 1;
	o->connecting = 100;
	o->window = 4;
	o->seconds = 5;
	o->warmup = 1;
	o->tick_us = TICK_US;
	while ((ch = getopt(argc, argv, "t:n:d:u:U:w:T:r:W:s:a:b:c:P:k:eI")) != -1) {
		switch (ch) {
		case 't':
			if (net_addr_parse(optarg, &o->target, err, sizeof(err)) == -1)
				fatalx("loadgen: -t %s", err);
			have_target = 1;
			break;
		case 'n': o->clients = atol(optarg); break;
		case 'd': o->domain = optarg; break;
		case 'u': o->prefix = optarg; break;
		case 'U': o->users = atol(optarg); break;
		case 'w': o->password = optarg; break;
		case 'T':
			if (strcmp(optarg, "none") == 0)
				o->tls = TLS_NONE;
			else if (strcmp(optarg, "starttls") == 0)
				o->tls = TLS_STARTTLS;
			else if (strcmp(optarg, "direct") == 0)
				o->tls = TLS_DIRECT;
			else
				usage();
			break;
		case 'r': o->rate = atof(optarg); break;
		case 'W': o->window = atol(optarg); break;
		case 's': o->seconds = atof(optarg); break;
		case 'a': o->warmup = atof(optarg); break;
		case 'b': o->body = atol(optarg); break;
		case 'c': o->connecting = atol(optarg); break;
		case 'P': o->procs = atol(optarg); break;
		case 'k': o->tick_us = atol(optarg); break;
		case 'e': o->presence = 1; break;
		case 'I': o->idle = 1; break;
		default: usage();
		}
	}
	if (!have_target || o->clients < 1 || o->procs < 1 || o->connecting < 1 ||
	    o->window < 1 || o->rate < 0 || o->seconds <= 0 || o->warmup < 0 ||
	    o->body < 0 || o->body > 60000 || o->users < 0 ||
	    o->tick_us < 10 || o->tick_us > 1000)
		usage();
	if (o->users == 0)
		o->users = o->clients;
}

int
main(int argc, char **argv)
{
	struct opts	 o;
	struct child	*ch;
	long		 procs, i;
	int		 rc, status;

	log_init("loadgen", LOG_LVL_INFO);
	parse_opts(argc, argv, &o);
	memset(body_pad, 'x', sizeof(body_pad) - 1);
	signal(SIGPIPE, SIG_IGN);
	procs = procs_needed(&o);
	if (procs > (o.clients + 1) / 2)
		procs = (o.clients + 1) / 2;
	ch = xcalloc((size_t)procs, sizeof(*ch));
	spawn_workers(&o, procs, ch);
	rc = parent_run(&o, ch, procs);
	for (i = 0; i < procs; i++) {
		close(ch[i].fd);
		fclose(ch[i].f);
	}
	for (i = 0; i < procs; i++)
		(void)waitpid(ch[i].pid, &status, 0);
	free(ch);
	return rc;
}
