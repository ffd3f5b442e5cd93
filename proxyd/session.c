/*
 * session.c: one client connection from accept to close: TLS, the client's
 * stream header, the domain, STARTTLS, limits, then every client stanza
 * parsed, checked and re-serialised for the backend (upstream.c is the
 * backend's side, move.c follows the domain's placement); timeouts and the
 * session list.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "proxyd.h"
#include "session_int.h"

#define SESSION_CLOSE_GRACE_MS	3000
#define SESSION_TRIM_IDLE_MS	1000
#define SESSION_MALLOC_TRIM	(1024 * 1024)	/* bytes freed by trims */


static void	session_client_read_cb(struct bufferevent *, void *);
static void	session_client_write_cb(struct bufferevent *, void *);
static void	session_client_event_cb(struct bufferevent *, short, void *);
static int	session_c_open(void *, const struct xml_node *);
static int	session_c_stanza(void *, const struct xml_node *);
static int	session_c_close(void *);

static const struct xmlstream_cb session_client_cbs = {
	session_c_open, session_c_stanza, session_c_close
};

/* Our own stream header, for answers given before (or without) a backend. */
static void
session_own_header(struct session *s)
{
	struct buf	*b = session_buf();
	uint64_t	 rnd;

	buf_adds(b, "<?xml version='1.0'?><stream:stream xmlns='" XML_NS_CLIENT
	    "' xmlns:stream='" XML_NS_STREAMS "'");
	if (s->domain != NULL) {
		buf_adds(b, " from='");
		serialize_attr_value(b, s->domain, strlen(s->domain));
		buf_addc(b, '\'');
	}
	evutil_secure_rng_get_bytes(&rnd, sizeof(rnd));
	buf_printf(b, " id='%016llx' version='1.0'>", (unsigned long long)rnd);
	session_to_client(s, b);
	s->client_header = 1;
}

/*
 * Peer-supplied text bound for the log (an error text quoting the client, a
 * JID): control characters become '?', so no peer can forge a log line.
 */
const char *
session_clean(const char *in, char *out, size_t outlen)
{
	size_t	i;

	for (i = 0; in != NULL && in[i] != '\0' && i + 1 < outlen; i++)
		out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
	out[i] = '\0';
	return out;
}

/* ---- life and death ---- */

static void
session_free_cb(evutil_socket_t fd, short what, void *arg)
{
	session_free(arg);
}

/*
 * Brings ctx's counts in line with S: a session counts for its domain and its
 * backend while it is not closing.  Called after every change to either, or
 * to the state; cheap when nothing changed.
 */
void
session_recount(struct session *s)
{
	int		 live = s->state != SS_CLOSING;
	const char	*dom = live ? s->domain : NULL;
	const char	*be = live ? s->backend : NULL;

	if (!(dom == NULL && s->cnt_domain == NULL) &&
	    (dom == NULL || s->cnt_domain == NULL ||
	    strcasecmp(dom, s->cnt_domain) != 0)) {
		pthread_mutex_lock(&s->ctx->shared->mu);
		count_add(s->ctx->shared->by_domain, s->cnt_domain, -1);
		free(s->cnt_domain);
		s->cnt_domain = dom != NULL ? xstrdup(dom) : NULL;
		count_add(s->ctx->shared->by_domain, s->cnt_domain, 1);
		pthread_mutex_unlock(&s->ctx->shared->mu);
	}
	if (!(be == NULL && s->cnt_backend == NULL) &&
	    (be == NULL || s->cnt_backend == NULL ||
	    strcmp(be, s->cnt_backend) != 0)) {
		count_add(s->ctx->by_backend, s->cnt_backend, -1);
		free(s->cnt_backend);
		s->cnt_backend = be != NULL ? xstrdup(be) : NULL;
		count_add(s->ctx->by_backend, s->cnt_backend, 1);
	}
}

void
session_free(struct session *s)
{
	struct session_ctx	*ctx = s->ctx;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		ctx->head = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	ctx->count--;
	s->state = SS_CLOSING;
	session_recount(s);
	move_cancel(s);
	output_free(s);
	if (s->ev_free != NULL)
		event_free(s->ev_free);
	if (s->cbev != NULL)
		bufferevent_free(s->cbev);
	if (s->cbev == NULL || !s->bev_owns_fd)
		close(s->fd);
	if (s->ubev != NULL)
		bufferevent_free(s->ubev);
	xmlstream_free(s->cx);
	xmlstream_free(s->ux);
	if (s->up_hold != NULL) {
		buf_free(s->up_hold);
		free(s->up_hold);
	}
	if (s->up_first != NULL) {
		buf_free(s->up_first);
		free(s->up_first);
	}
	free(s->domain);
	free(s->prefer);
	free(s->backend);
	free(s->user);
	free(s->pending_user);
	free(s->jid);
	free(s);
}

/*
 * Ends the session: the stream error (when COND is set) and the stream end
 * go to the client, the backend gets its stream end; the session is freed
 * from the loop once that is written (never inside a parser callback).
 */
void
session_end(struct session *s, enum xml_cond cond, const char *text)
{
	struct buf	*b;
	struct timeval	 tv = { 0, 0 };
	char		 clean[512];

	if (s->state == SS_CLOSING)
		return;
	move_cancel(s);
	/* During a handshake (or just before one) the client expects TLS. */
	if (cond != XML_COND_NONE && s->cbev != NULL && s->state != SS_TLS &&
	    s->state != SS_SWITCHING) {
		if (!s->client_header)
			session_own_header(s);
		b = session_buf();
		buf_printf(b, "<stream:error><%s xmlns='" NS_STREAM_ERR "'/>",
		    xmlfilter_cond_name(cond));
		if (text != NULL && *text != '\0') {
			buf_adds(b, "<text xmlns='" NS_STREAM_ERR "'>");
			serialize_text(b, text, strlen(text));
			buf_adds(b, "</text>");
		}
		buf_adds(b, "</stream:error>");
		session_to_client(s, b);
		log_debug("session %llu (%s): %s%s%s", (unsigned long long)s->id,
		    s->addr, xmlfilter_cond_name(cond), text ? ": " : "",
		    session_clean(text, clean, sizeof(clean)));
		s->ctx->errors[cond]++;
	}
	if (s->client_header && s->cbev != NULL) {
		b = session_buf();
		serialize_close(b);
		session_to_client(s, b);
	}
	if (s->ubev != NULL && s->up_header) {
		b = session_buf();
		serialize_close(b);
		session_to_backend(s, b);
	}
	session_flush(s);
	s->state = SS_CLOSING;
	session_recount(s);
	if (s->cbev != NULL) {
		bufferevent_disable(s->cbev, EV_READ);
		bufferevent_setwatermark(s->cbev, EV_WRITE, 0, 0);
		bufferevent_enable(s->cbev, EV_WRITE);
	}
	if (s->ubev != NULL)
		bufferevent_disable(s->ubev, EV_READ);
	s->ev_free = evtimer_new(s->ctx->base, session_free_cb, s);
	if (s->cbev == NULL ||
	    evbuffer_get_length(bufferevent_get_output(s->cbev)) == 0)
		tv.tv_sec = 0;
	else
		tv.tv_sec = SESSION_CLOSE_GRACE_MS / 1000;
	evtimer_add(s->ev_free, &tv);
}

static void
session_limits_from(struct session *s, const struct limits_conf *l)
{
	s->xml = l->xml;
	s->rate = l->stanzas_per_second;
	s->stanza_timeout_ms = l->stanza_timeout_ms;
	s->auth_timeout_ms = l->auth_timeout_ms;
}

void
session_new_client_parser(struct session *s)
{
	xmlstream_free(s->cx);
	s->cx = xmlstream_new(&s->xml, NULL, XMLS_KEEP, &session_client_cbs, s);
}

static int
session_set_bev(struct session *s, struct bufferevent *bev)
{
	if (bev == NULL)
		return -1;
	s->cbev = bev;
	bufferevent_setcb(bev, session_client_read_cb, session_client_write_cb,
	    session_client_event_cb, s);
	bufferevent_setwatermark(bev, EV_WRITE, SESSION_LOW_WATER, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return 0;
}

static int
session_start_tls(struct session *s)
{
	SSL	*ssl;

	if ((ssl = tls_set_ssl(s->ctx->tls)) == NULL)
		return -1;
	if (session_set_bev(s, bufferevent_openssl_socket_new(s->ctx->base, s->fd,
	    ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)) == -1) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(s->cbev, 1);
	s->bev_owns_fd = 1;
	s->state = SS_TLS;
	return 0;
}

void
session_accept(struct session_ctx *ctx, int fd, const struct sockaddr *sa,
    socklen_t salen, int tls)
{
	struct session	*s = xcalloc(1, sizeof(*s));
	int		 rc;

	s->ctx = ctx;
	s->fd = fd;
	s->id = atomic_fetch_add(&ctx->shared->next_id, 1) + 1;
	ctx->accepted++;
	s->listen_tls = tls;
	s->since_ms = now_real_ms();
	s->start_mono = s->last_mono = now_mono_ms();
	net_sockaddr_str(sa, salen, s->addr, sizeof(s->addr));
	session_limits_from(s, &ctx->conf->limits);
	if ((s->next = ctx->head) != NULL)
		ctx->head->prev = s;
	ctx->head = s;
	ctx->count++;
	if (tls == LISTEN_TLS_DIRECT)
		rc = session_start_tls(s);
	else {
		s->state = SS_HEADER;
		session_new_client_parser(s);
		/* STARTTLS replaces the bufferevent: the first one keeps the fd open. */
		s->bev_owns_fd = tls == LISTEN_TLS_NONE;
		rc = session_set_bev(s, bufferevent_socket_new(ctx->base, fd,
		    s->bev_owns_fd ? BEV_OPT_CLOSE_ON_FREE : 0));
	}
	if (rc == -1) {
		log_warnx("session from %s: cannot set up the connection", s->addr);
		session_end(s, XML_COND_NONE, NULL);
	}
}

/* STARTTLS: <proceed/> is out; bytes the client sent before the handshake
 * are dropped (RFC 6120 5.4.3.3), the socket now speaks TLS. */
static void
session_switch_tls(struct session *s)
{
	bufferevent_free(s->cbev);
	s->cbev = NULL;
	s->client_header = 0;
	s->tls = 0;
	if (session_start_tls(s) == -1) {
		log_warnx("session from %s: cannot start TLS", s->addr);
		session_end(s, XML_COND_NONE, NULL);
	}
}

/* After the handshake: a domain named by SNI gives its limits at once. */
static void
session_tls_up(struct session *s)
{
	SSL			*ssl = bufferevent_openssl_get_ssl(s->cbev);
	const char		*sni = SSL_get_servername(ssl,
				    TLSEXT_NAMETYPE_host_name);
	const struct domain_conf *d;

	s->tls = 1;
	if (s->domain != NULL && (d = proxyd_conf_domain(s->ctx->conf,
	    s->domain)) != NULL)
		session_limits_from(s, &d->limits);
	else if (sni != NULL && (d = proxyd_conf_domain(s->ctx->conf, sni)) != NULL)
		session_limits_from(s, &d->limits);
	s->state = SS_HEADER;
	session_new_client_parser(s);
}

/* ---- the client side ---- */

static void
session_feed_client(struct session *s)
{
	struct evbuffer		*in = bufferevent_get_input(s->cbev);
	struct evbuffer_iovec	 v;
	int			 rc;

	s->last_mono = now_mono_ms();
	while (s->state != SS_CLOSING && s->state != SS_SWITCHING &&
	    evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rc = xmlstream_feed(s->cx, v.iov_base, v.iov_len);
		s->bytes_in += v.iov_len;
		evbuffer_drain(in, v.iov_len);
		/* Callbacks stop the parser only to close or to switch to TLS:
		 * what it holds then is dropped with it. */
		if (rc == XMLS_ERROR)
			session_end(s, xmlstream_error(s->cx),
			    xmlstream_error_text(s->cx));
	}
}

static void
session_client_read_cb(struct bufferevent *bev, void *arg)
{
	struct session	*s = arg;

	session_read_begin(s);
	session_feed_client(s);
	session_read_end(s);
}

static void
session_client_write_cb(struct bufferevent *bev, void *arg)
{
	struct session	*s = arg;

	if (s->state == SS_SWITCHING) {
		session_switch_tls(s);
		return;
	}
	if (s->state == SS_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
			struct timeval	tv = { 0, 0 };

			evtimer_add(s->ev_free, &tv);
		}
		return;
	}
	if (s->ubev != NULL)
		bufferevent_enable(s->ubev, EV_READ);
}

static void
session_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session	*s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == SS_TLS)
			session_tls_up(s);
		return;
	}
	if (s->state != SS_CLOSING) {
		if (s->state == SS_TLS)
			s->ctx->tls_failures++;
		/* The client is gone: nothing more can be said to it. */
		if (s->cbev != NULL)
			bufferevent_disable(s->cbev, EV_READ | EV_WRITE);
		s->client_header = 0;
		session_end(s, XML_COND_NONE, NULL);
	}
	evtimer_del(s->ev_free);
	session_free_cb(-1, 0, s);
}

/* Counted for D at once if D has room: the check and the count are one
 * step, so workers admitting at the same time never pass max_connections. */
static int
session_admit(struct session *s, const struct domain_conf *d)
{
	struct proxyd_shared	*sh = s->ctx->shared;
	int			 ok;

	pthread_mutex_lock(&sh->mu);
	ok = d->max_connections <= 0 || count_get(sh->by_domain, d->name) <
	    (size_t)d->max_connections;
	if (ok) {
		count_add(sh->by_domain, d->name, 1);
		s->cnt_domain = xstrdup(d->name);
	}
	pthread_mutex_unlock(&sh->mu);
	return ok ? 0 : -1;
}

/* The domain the client asked for: known, and with room. */
static int
session_take_domain(struct session *s, const struct xml_node *root)
{
	const char		*to = xmlstream_attr(root, NULL, "to");
	const struct domain_conf *d;
	char			 text[160];

	if (to == NULL || (d = proxyd_conf_domain(s->ctx->conf, to)) == NULL) {
		session_end(s, XML_COND_HOST_UNKNOWN, to == NULL ?
		    "the stream header has no 'to'" : "this domain is not served here");
		return -1;
	}
	if (s->domain == NULL) {
		if (session_admit(s, d) == -1) {
			snprintf(text, sizeof(text), "too many connections to %s "
			    "(max_connections %lld)", d->name,
			    (long long)d->max_connections);
			s->ctx->refused++;
			session_end(s, XML_COND_POLICY_VIOLATION, text);
			return -1;
		}
		s->domain = xstrdup(d->name);
		session_recount(s);
		free(s->prefer);
		s->prefer = d->prefer != NULL ? xstrdup(d->prefer) : NULL;
		session_limits_from(s, &d->limits);
	} else if (strcasecmp(s->domain, d->name) != 0) {
		session_end(s, XML_COND_HOST_UNKNOWN, "a restarted stream must "
		    "keep its domain");
		return -1;
	}
	return 0;
}

/* require_tls: proxyd answers the first stream itself, offering only TLS. */
static void
session_offer_starttls(struct session *s)
{
	struct buf	*b;

	session_own_header(s);
	b = session_buf();
	buf_adds(b, "<stream:features><starttls xmlns='" NS_TLS "'><required/>"
	    "</starttls></stream:features>");
	session_to_client(s, b);
	s->state = SS_PRETLS;
}

/*
 * TLS is optional on a starttls listener (no require_tls): the first stream
 * goes to the backend at once, and its features reach the client with
 * <starttls/> added (upstream.c), so a client may log in without TLS.
 */
int
session_may_starttls(const struct session *s)
{
	return s->listen_tls == LISTEN_TLS_STARTTLS && !s->tls && !s->authed &&
	    !s->ctx->conf->require_tls;
}

/*
 * A backend's features (BODY: their children, less <starttls/>) to the
 * client, with proxyd's own <starttls/> where the listener makes it
 * optional: TLS ends at proxyd.
 */
void
session_features(struct session *s, const struct buf *body)
{
	struct buf	*b = session_buf();

	buf_adds(b, "<stream:features>");
	if (session_may_starttls(s))
		buf_adds(b, "<starttls xmlns='" NS_TLS "'/>");
	buf_add(b, body->data, body->len);
	buf_adds(b, "</stream:features>");
	session_to_client(s, b);
}

/*
 * The first stream of a client, answered by proxyd from what the domain's
 * backend last offered (prefeat.c): the backend is connected only at the
 * client's first stanza, so an idle unauthenticated client costs it
 * nothing.  0: no such offer known (or a pre-1.0 client): relay as ever.
 */
static int
session_answer_first(struct session *s, const struct xml_node *root)
{
	const char		*ver = xmlstream_attr(root, NULL, "version");
	const struct pbackend	*pb;
	struct buf		 f;

	if (ver == NULL || strcmp(ver, "1.0") != 0)
		return 0;
	pb = move_placement(s->ctx, s->ctx->view, s->domain, s->prefer);
	buf_init(&f);
	if (pb == NULL || prefeat_get(s->ctx, pb->name, s->domain, &f) == -1) {
		buf_free(&f);
		return 0;
	}
	if (s->up_first == NULL) {
		s->up_first = xcalloc(1, sizeof(*s->up_first));
		buf_init(s->up_first);
	}
	buf_reset(s->up_first);
	serialize_header(s->up_first, root, NULL);
	session_own_header(s);
	session_features(s, &f);
	buf_free(&f);
	s->up_lazy = 1;
	s->state = SS_RELAY;
	return 1;
}

static int
session_c_open(void *arg, const struct xml_node *root)
{
	struct session	*s = arg;
	struct buf	*b;

	if (session_take_domain(s, root) == -1)
		return 1;
	if (s->listen_tls == LISTEN_TLS_STARTTLS && !s->tls &&
	    s->ctx->conf->require_tls) {
		session_offer_starttls(s);
		return 0;
	}
	if (s->ubev == NULL) {
		if (!s->authed && session_answer_first(s, root))
			return 0;
		if (upstream_connect(s) == -1)
			return 1;
		s->state = SS_RELAY;
	}
	b = session_buf();
	serialize_header(b, root, NULL);
	session_to_backend(s, b);
	s->up_header = 1;
	return 0;
}

/* The first stanza of a stream answered from prefeat: now the backend. */
static int
session_connect_lazy(struct session *s)
{
	struct buf	*hdr = s->up_first;

	s->up_first = NULL;
	s->up_lazy = 0;
	if (upstream_connect(s) == -1) {
		buf_free(hdr);
		free(hdr);
		return -1;
	}
	s->up_swallow = 1;
	session_to_backend(s, hdr);
	s->up_header = 1;
	buf_free(hdr);
	free(hdr);
	return 0;
}

static int
session_is(const struct xml_node *n, const char *ns, const char *name)
{
	return n->type == XML_NODE_ELEM && n->ns != NULL && strcmp(n->ns, ns) == 0 &&
	    (name == NULL || strcmp(n->name, name) == 0);
}

/* <proceed/>, then the handshake once it is written (session_switch_tls). */
static int
session_proceed(struct session *s)
{
	struct buf	*b = session_buf();

	/* Through the bufferevent: its write callback starts the handshake. */
	session_flush(s);
	s->state = SS_SWITCHING;
	buf_adds(b, "<proceed xmlns='" NS_TLS "'/>");
	session_to_client(s, b);
	bufferevent_disable(s->cbev, EV_READ);
	bufferevent_setwatermark(s->cbev, EV_WRITE, 0, 0);
	return 1;
}

/*
 * require_tls, before TLS: SASL gets the failure RFC 6120 6.5.4 names (and
 * the client may still start TLS), anything else is a policy violation.
 */
static int
session_pretls_stanza(struct session *s, const struct xml_node *n)
{
	struct buf	*b;

	if (session_is(n, NS_TLS, "starttls"))
		return session_proceed(s);
	if (session_is(n, NS_SASL, "auth")) {
		b = session_buf();
		buf_adds(b, "<failure xmlns='" NS_SASL "'><encryption-required/>"
		    "<text>TLS is required before authentication: send "
		    "&lt;starttls/&gt;</text></failure>");
		session_to_client(s, b);
		return 0;
	}
	session_end(s, XML_COND_POLICY_VIOLATION, "this listener requires "
	    "STARTTLS before anything else");
	return 1;
}

/*
 * Optional TLS, taken: the plain stream with the backend ends unused (its
 * features were all the client saw of it) and a new one starts after the
 * handshake and the client's stream restart.
 */
static int
session_late_starttls(struct session *s)
{
	if (s->stanzas_in > 0) {
		session_end(s, XML_COND_POLICY_VIOLATION, "STARTTLS must come "
		    "first, before authentication");
		return 1;
	}
	upstream_drop(s);
	return session_proceed(s);
}

/* Token bucket: a second's worth of burst, refilled continuously. */
static int
session_rate_ok(struct session *s)
{
	uint64_t	now = now_mono_ms();

	if (s->rate <= 0)
		return 1;
	if (s->tok_ms == 0)
		s->tokens = (double)s->rate;
	else
		s->tokens += (double)(now - s->tok_ms) * (double)s->rate / 1000.0;
	if (s->tokens > (double)s->rate)
		s->tokens = (double)s->rate;
	s->tok_ms = now;
	if (s->tokens < 1.0)
		return 0;
	s->tokens -= 1.0;
	return 1;
}

/*
 * An element in the XML namespace (<xml:x/>) is legal XML, but Prosody
 * relays it with the reserved namespace as a default, which no parser
 * accepts: the recipient's stream (and its offline queue) would break.
 */
static int
session_has_xml_ns_element(const struct xml_node *n)
{
	const struct xml_node	*c;

	if (n->type != XML_NODE_ELEM)
		return 0;
	if (n->ns != NULL && strcmp(n->ns, XML_NS_XML) == 0)
		return 1;
	for (c = n->child; c != NULL; c = c->next)
		if (session_has_xml_ns_element(c))
			return 1;
	return 0;
}

/* 1 when the stanza is one too many: the session ends. */
static int
session_over_rate(struct session *s)
{
	char	text[96];

	if (session_rate_ok(s))
		return 0;
	snprintf(text, sizeof(text), "more than %lld stanzas per second",
	    (long long)s->rate);
	session_end(s, XML_COND_POLICY_VIOLATION, text);
	return 1;
}

static int
session_c_stanza(void *arg, const struct xml_node *n)
{
	struct session	*s = arg;
	struct buf	*b;

	if (session_over_rate(s))
		return 1;
	if (s->state == SS_PRETLS)
		return session_pretls_stanza(s, n);
	if (session_is(n, NS_TLS, "starttls") && session_may_starttls(s))
		return session_late_starttls(s);
	if (session_is(n, NS_TLS, NULL)) {
		session_end(s, XML_COND_POLICY_VIOLATION, s->tls ?
		    "TLS is already in place" : "STARTTLS is not offered here");
		return 1;
	}
	if (session_has_xml_ns_element(n)) {
		session_end(s, XML_COND_POLICY_VIOLATION, "an element in the XML "
		    "namespace is not relayed");
		return 1;
	}
	if (n->type == XML_NODE_ELEM && n->ns != NULL &&
	    strcmp(n->ns, NS_SASL) == 0 && !s->authed)
		sasl_client_element(s, n);
	if (s->up_lazy && session_connect_lazy(s) == -1)
		return 1;
	s->stanzas_in++;
	b = session_buf();
	serialize_stanza(b, n, NULL);
	session_to_backend(s, b);
	return 0;
}

/*
 * Once bound, a client's stanza in jabber:client needs no reading here:
 * xmlcheck.c writes it from its bytes exactly as serialize_stanza would from
 * its tree, and that goes to the backend.  A stanza in another namespace
 * (TLS, SASL, stream management, ...) and any the writer declines still
 * come to session_c_stanza.
 */
static int
session_c_written(void *arg, const void *stanza, size_t len)
{
	struct session	*s = arg;

	if (session_over_rate(s))
		return 1;
	s->stanzas_in++;
	s->written_in++;
	session_bytes_to_backend(s, stanza, len);
	return 0;
}

void
session_bound(struct session *s)
{
	xmlstream_set_write(s->cx, session_c_written);
}

static int
session_c_close(void *arg)
{
	struct session	*s = arg;

	session_end(s, XML_COND_NONE, NULL);
	return 1;
}

/* ---- the whole set ---- */

/* The bytes an idle parser gave back. */
static size_t
session_trim(struct xmlstream *xs)
{
	size_t	before;

	if (xs == NULL)
		return 0;
	before = xmlstream_memsize(xs);
	xmlstream_trim(xs);
	return before - xmlstream_memsize(xs);
}

static void
session_check_time(struct session *s, uint64_t now)
{
	uint64_t	busy;
	char		text[96];

	if (!s->authed && s->auth_timeout_ms > 0 &&
	    now - s->start_mono > (uint64_t)s->auth_timeout_ms) {
		snprintf(text, sizeof(text), "not authenticated within %llds",
		    (long long)s->auth_timeout_ms / 1000);
		session_end(s, XML_COND_POLICY_VIOLATION, text);
		return;
	}
	if (s->cx != NULL && (busy = xmlstream_busy_since(s->cx)) != 0 &&
	    s->stanza_timeout_ms > 0 && now - busy > (uint64_t)s->stanza_timeout_ms) {
		snprintf(text, sizeof(text), "a stanza left unfinished for over "
		    "%llds", (long long)s->stanza_timeout_ms / 1000);
		session_end(s, XML_COND_POLICY_VIOLATION, text);
		return;
	}
	if (now - s->last_mono >= SESSION_TRIM_IDLE_MS)
		s->ctx->trimmed += session_trim(s->cx) + session_trim(s->ux);
}

void
session_sweep(struct session_ctx *ctx)
{
	struct session	*s, *next;
	uint64_t	 now = now_mono_ms();

	for (s = ctx->head; s != NULL; s = next) {
		next = s->next;
		if (s->state != SS_CLOSING)
			session_check_time(s, now);
	}
	/*
	 * Parsers freed between live sessions' small blocks leave holes that
	 * malloc does not give back by itself: after a burst of connections
	 * the RSS would stay at the burst's peak.
	 */
	if (ctx->trimmed >= SESSION_MALLOC_TRIM) {
#ifdef __GLIBC__
		malloc_trim(0);
#endif
		ctx->trimmed = 0;
	}
}

size_t
session_count_domain(const struct session_ctx *ctx, const char *domain)
{
	size_t	n;

	pthread_mutex_lock(&ctx->shared->mu);
	n = count_get(ctx->shared->by_domain, domain);
	pthread_mutex_unlock(&ctx->shared->mu);
	return n;
}

size_t
session_count_backend(const struct session_ctx *ctx, const char *backend)
{
	return count_get(ctx->by_backend, backend);
}

static const char *
session_state_name(int state)
{
	static const char *const names[] = {
		"tls", "header", "pretls", "switching", "relay", "closing"
	};

	return state >= 0 && state <= SS_CLOSING ? names[state] : "?";
}

static void
session_json(const struct session *s, struct json *j)
{
	json_obj_begin(j);
	json_kv_uint(j, "id", s->id);
	json_kv_str(j, "jid", s->jid);
	json_kv_str(j, "user", s->user);
	json_kv_str(j, "domain", s->domain);
	json_kv_str(j, "backend", s->backend);
	json_kv_str(j, "client", s->addr);
	json_kv_str(j, "state", session_state_name(s->state));
	json_kv_bool(j, "tls", s->tls);
	json_kv_uint(j, "since_ms", s->since_ms);
	json_kv_uint(j, "bytes_in", s->bytes_in);
	json_kv_uint(j, "bytes_out", s->bytes_out);
	json_kv_uint(j, "stanzas_in", s->stanzas_in);
	json_kv_uint(j, "stanzas_out", s->stanzas_out);
	/* how many took no parser: written from their bytes, passed as they are */
	json_kv_uint(j, "stanzas_in_written", s->written_in);
	json_kv_uint(j, "stanzas_out_passed", s->passed_out);
	if (s->ev_move != NULL)
		json_kv_uint(j, "move_in_ms", s->move_at > now_mono_ms() ?
		    s->move_at - now_mono_ms() : 0);
	json_obj_end(j);
}

void
session_list_json(const struct session_ctx *ctx, struct json *j,
    const char *domain)
{
	const struct session	*s;

	for (s = ctx->head; s != NULL; s = s->next)
		if (domain == NULL || (s->domain != NULL &&
		    strcasecmp(s->domain, domain) == 0))
			session_json(s, j);
}

/* A full JID ends that session; a bare one ends all of its resources. */
int
session_kick(struct session_ctx *ctx, const char *jid)
{
	struct session	*s;
	size_t		 n = strlen(jid);
	int		 count = 0;

	for (s = ctx->head; s != NULL; s = s->next) {
		if (s->state == SS_CLOSING || s->jid == NULL)
			continue;
		if (strcmp(s->jid, jid) != 0 && !(strncmp(s->jid, jid, n) == 0 &&
		    s->jid[n] == '/' && strchr(jid, '/') == NULL))
			continue;
		session_end(s, XML_COND_POLICY_VIOLATION, "ended by an administrator");
		count++;
	}
	return count;
}

void
session_shutdown(struct session_ctx *ctx, enum xml_cond cond, const char *text)
{
	struct session		*s;
	struct evbuffer_iovec	 v[4];
	int			 n, i;

	for (s = ctx->head; s != NULL; s = s->next) {
		session_end(s, cond, text);
		/* Best effort, never blocking: the last bytes straight to the
		 * socket (the output of a bufferevent is frozen for us: peek
		 * only); TLS sessions just close. */
		if (s->cbev == NULL || s->tls || !s->client_header)
			continue;
		n = evbuffer_peek(bufferevent_get_output(s->cbev), -1, NULL, v, 4);
		for (i = 0; i < n && i < 4; i++)
			if (write(s->fd, v[i].iov_base, v[i].iov_len) !=
			    (ssize_t)v[i].iov_len)
				break;
	}
	while (ctx->head != NULL)
		session_free(ctx->head);
	output_shutdown(ctx);
}
