/*
 * upstream.c: a session's backend side: the connection to the backend the
 * placement gives its domain (plain, STARTTLS or direct TLS, as backend_tls
 * says), and everything the backend sends, parsed in repair mode and
 * re-serialised for the client (its <starttls/> offer dropped, its SASL
 * <success/> and bind result noted).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "proxyd.h"
#include "session_int.h"

#define UPSTREAM_TLS_LOG_MS	10000

static int	upstream_open(void *, const struct xml_node *);
static int	upstream_stanza(void *, const struct xml_node *);
static int	upstream_close(void *);
static int	upstream_pass(void *, const void *, size_t);

static const struct xmlstream_cb upstream_cbs = {
	upstream_open, upstream_stanza, upstream_close
};

static void	upstream_starttls(struct session *);

static void
upstream_feed(struct session *s)
{
	struct evbuffer		*in = bufferevent_get_input(s->ubev);
	struct evbuffer_iovec	 v;
	int			 rc;

	s->last_mono = now_mono_ms();
	while (s->state == SS_RELAY && evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rc = xmlstream_feed(s->ux, v.iov_base, v.iov_len);
		evbuffer_drain(in, v.iov_len);
		if (s->up_switch) {
			/* The bytes after <proceed/> (none, from a sane
			 * server) go with the plain-text parser. */
			upstream_starttls(s);
			return;
		}
		if (rc == XMLS_ERROR) {
			char	clean[512];

			log_warnx("backend %s (session %llu): %s: %s", s->backend,
			    (unsigned long long)s->id,
			    xmlfilter_cond_name(xmlstream_error(s->ux)),
			    session_clean(xmlstream_error_text(s->ux), clean,
			    sizeof(clean)));
			session_end(s, XML_COND_INTERNAL_SERVER_ERROR,
			    "the backend sent a broken stream");
		}
	}
}

static void
upstream_read_cb(struct bufferevent *bev, void *arg)
{
	struct session	*s = arg;

	session_read_begin(s);
	upstream_feed(s);
	session_read_end(s);
}

static void
upstream_write_cb(struct bufferevent *bev, void *arg)
{
	struct session	*s = arg;

	if (s->state != SS_CLOSING && s->state != SS_SWITCHING && s->cbev != NULL &&
	    s->up_hold == NULL)
		bufferevent_enable(s->cbev, EV_READ);
}

/* Kept for status (the operator's clue), logged, the client told. */
static void
upstream_tls_error(struct session *s, const char *what)
{
	struct session_ctx	*ctx = s->ctx;
	char			 text[sizeof(ctx->backend_tls_error)];
	uint64_t		 now = now_mono_ms();

	ctx->backend_tls_failures++;
	snprintf(text, sizeof(text), "backend %s: TLS: %s", s->backend, what);
	/* Every client of a misconfigured backend fails alike: one line per
	 * change, or per UPSTREAM_TLS_LOG_MS, not one per client. */
	if (strcmp(text, ctx->backend_tls_error) != 0 ||
	    now - ctx->backend_tls_logged >= UPSTREAM_TLS_LOG_MS) {
		log_warnx("session %llu (%s): %s (see backend_tls in the "
		    "configuration)", (unsigned long long)s->id, s->addr, text);
		ctx->backend_tls_logged = now;
	}
	memcpy(ctx->backend_tls_error, text, sizeof(text));
	s->up_header = 0;
	session_end(s, XML_COND_INTERNAL_SERVER_ERROR, "the backend cannot be "
	    "reached securely");
}

static void
upstream_tls_failed(struct session *s, unsigned long err)
{
	char	what[300];

	tls_client_error(bufferevent_openssl_get_ssl(s->ubev), err, what,
	    sizeof(what));
	upstream_tls_error(s, what);
}

static void
upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session	*s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->up_tls == UPTLS_HANDSHAKE)
			s->up_tls = UPTLS_OFF;
		return;
	}
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	if (s->state == SS_CLOSING)
		return;
	if (s->up_tls == UPTLS_HANDSHAKE) {
		upstream_tls_failed(s, bufferevent_get_openssl_error(bev));
		return;
	}
	log_info("session %llu (%s): backend %s %s", (unsigned long long)s->id,
	    s->jid != NULL ? s->jid : s->addr, s->backend,
	    s->up_open ? "closed the connection" : "is unreachable");
	s->up_header = 0;
	if (s->up_error)
		session_end(s, XML_COND_NONE, NULL);
	else
		session_end(s, XML_COND_SYSTEM_SHUTDOWN, s->up_open ?
		    "the backend went away: reconnect" :
		    "the backend is unreachable: reconnect");
}

static int
upstream_open(void *arg, const struct xml_node *root)
{
	struct session	*s = arg;
	struct buf	*b = session_buf();

	/* The plain-text stream before STARTTLS is proxyd's own business. */
	if (s->up_tls == UPTLS_FEATURES || s->up_tls == UPTLS_PROCEED)
		return 0;
	s->up_tls = UPTLS_OFF;		/* a stream over TLS: the handshake is done */
	s->up_open = 1;
	if (s->up_swallow)
		return 0;	/* the client has proxyd's (session_answer_first) */
	serialize_header(b, root, NULL);
	session_to_client(s, b);
	s->client_header = 1;
	return 0;
}

/* The backend's features, less <starttls/>: TLS ends at proxyd. */
static void
upstream_features(struct session *s, const struct xml_node *n)
{
	const struct xml_node	*c;
	struct buf		 body;

	buf_init(&body);
	for (c = n->child; c != NULL; c = c->next) {
		if (c->type != XML_NODE_ELEM)
			continue;
		if (c->ns != NULL && strcmp(c->ns, NS_TLS) == 0)
			continue;
		serialize_stanza(&body, c, NULL);
	}
	/* Kept for the next client's first stream (session_answer_first). */
	if (!s->authed)
		prefeat_put(s->ctx, s->backend, s->domain, n, &body);
	if (s->up_swallow) {
		/* The client has them already, from the last time. */
		s->up_swallow = 0;
		buf_free(&body);
		return;
	}
	session_features(s, &body);
	buf_free(&body);
}

/* A bind result names the session's full JID: 1 when N is one. */
static int
upstream_bind_result(struct session *s, const struct xml_node *n)
{
	const struct xml_node	*bind, *jid;
	const char		*type = xmlstream_attr(n, NULL, "type");
	char			 clean[3072];

	if (type == NULL || strcmp(type, "result") != 0 ||
	    (bind = xmlstream_child(n, NS_BIND, "bind")) == NULL ||
	    (jid = xmlstream_child(bind, NS_BIND, "jid")) == NULL)
		return 0;
	free(s->jid);
	s->jid = xstrdup(session_clean(xmlstream_text(jid), clean, sizeof(clean)));
	log_info("session %llu (%s): %s on %s", (unsigned long long)s->id,
	    s->addr, s->jid, s->backend);
	return 1;
}

/* STARTTLS with the backend: its features must offer it, then <proceed/>. */
static int
upstream_tls_stanza(struct session *s, const struct xml_node *n)
{
	static const char	 starttls[] = "<starttls xmlns='" NS_TLS "'/>";
	int			 is_tls = n->type == XML_NODE_ELEM && n->ns != NULL &&
				    strcmp(n->ns, NS_TLS) == 0;

	if (s->up_tls == UPTLS_FEATURES && n->type == XML_NODE_ELEM &&
	    n->ns != NULL && strcmp(n->ns, XML_NS_STREAMS) == 0 &&
	    strcmp(n->name, "features") == 0) {
		if (xmlstream_child(n, NS_TLS, "starttls") == NULL) {
			upstream_tls_error(s, "it does not offer STARTTLS");
			return 1;
		}
		bufferevent_write(s->ubev, starttls, sizeof(starttls) - 1);
		s->up_tls = UPTLS_PROCEED;
		return 0;
	}
	if (s->up_tls == UPTLS_PROCEED && is_tls && strcmp(n->name, "proceed") == 0) {
		s->up_switch = 1;
		return 1;
	}
	upstream_tls_error(s, is_tls && strcmp(n->name, "failure") == 0 ?
	    "it refused STARTTLS" : "it sent something else than the STARTTLS "
	    "exchange");
	return 1;
}

static int
upstream_stanza(void *arg, const struct xml_node *n)
{
	struct session	*s = arg;
	struct buf	*b;

	if (s->up_tls == UPTLS_FEATURES || s->up_tls == UPTLS_PROCEED)
		return upstream_tls_stanza(s, n);
	if (n->type == XML_NODE_ELEM && n->ns != NULL) {
		if (strcmp(n->ns, XML_NS_STREAMS) == 0 &&
		    strcmp(n->name, "features") == 0) {
			upstream_features(s, n);
			return 0;
		}
		if (strcmp(n->ns, XML_NS_STREAMS) == 0 &&
		    strcmp(n->name, "error") == 0)
			s->up_error = 1;
		if (strcmp(n->ns, NS_SASL) == 0 && !s->authed &&
		    sasl_backend_element(s, n)) {
			/* Both streams restart after <success/>. */
			b = session_buf();
			serialize_stanza(b, n, NULL);
			session_to_client(s, b);
			s->stanzas_out++;
			s->up_header = 0;
			s->client_header = 0;
			xmlstream_restart(s->ux);
			xmlstream_set_auth(s->ux, 1);
			/*
			 * The client restarts only once it has this <success/>,
			 * so its parser holds nothing yet: a new one takes the
			 * domain's limits (the first header was parsed under
			 * the global ones).
			 */
			session_new_client_parser(s);
			xmlstream_set_auth(s->cx, 1);
			return 0;
		}
		if (s->jid == NULL && strcmp(n->name, "iq") == 0 &&
		    upstream_bind_result(s, n)) {
			xmlstream_set_pass(s->ux, upstream_pass);
			session_bound(s);
		}
	}
	s->stanzas_out++;
	b = session_buf();
	serialize_stanza(b, n, NULL);
	session_to_client(s, b);
	return 0;
}

/*
 * Once bound, what the backend sends needs no reading here: a stanza the
 * lexer and xmlcheck_stanza have proved well-formed (repaired first) goes
 * to the client as it is, which saves expat, a tree and the serializer on
 * half of all relayed bytes.  The client's stream header declares the same
 * default namespace as the backend's, so it means the same there.  Stream
 * errors, features and anything prefixed still come as parsed stanzas.
 */
static int
upstream_pass(void *arg, const void *stanza, size_t len)
{
	struct session	*s = arg;

	s->stanzas_out++;
	s->passed_out++;
	session_bytes_to_client(s, stanza, len);
	return 0;
}

static int
upstream_close(void *arg)
{
	struct session	*s = arg;

	if (s->up_tls != UPTLS_OFF) {
		upstream_tls_error(s, "it closed the stream during STARTTLS");
		return 1;
	}
	s->up_header = 0;
	session_end(s, XML_COND_NONE, NULL);
	return 1;
}

static const struct xml_limits *
upstream_limits(void)
{
	static struct xml_limits	l;
	static int			done;

	/* The backend is trusted to be sane, not to be small: rosters. */
	if (!done) {
		xmlfilter_limits_default(&l);
		l.stanza_bytes = l.text_bytes = 64 * 1024 * 1024;
		l.stanza_bytes_preauth = 1024 * 1024;
		l.attr_bytes = 1024 * 1024;
		l.depth = 128;
		l.attrs = 1024;
		l.ns_decls = 256;
		l.buffer_bytes = 256 * 1024 * 1024;
		l.buffer_bytes_preauth = 4 * 1024 * 1024;
		done = 1;
	}
	return &l;
}

/* TLS over the connection as it is (the socket's own bufferevent below). */
static int
upstream_wrap_tls(struct session *s, const char *backend)
{
	struct bufferevent	*tb;
	SSL			*ssl;

	if ((ssl = tls_client_ssl(s->ctx->up_tls, backend, s->domain)) == NULL)
		return -1;
	tb = bufferevent_openssl_filter_new(s->ctx->base, s->ubev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	s->ubev = tb;
	s->up_tls = UPTLS_HANDSHAKE;
	bufferevent_setcb(s->ubev, upstream_read_cb, upstream_write_cb,
	    upstream_event_cb, s);
	bufferevent_setwatermark(s->ubev, EV_WRITE, SESSION_LOW_WATER, 0);
	bufferevent_enable(s->ubev, EV_READ | EV_WRITE);
	return 0;
}

static struct xmlstream *
upstream_parser(struct session *s)
{
	return xmlstream_new(upstream_limits(), NULL, XMLS_REPAIR | XMLS_KEEP,
	    &upstream_cbs, s);
}

/* <proceed/> came: the handshake, then what the client sent meanwhile. */
static void
upstream_starttls(struct session *s)
{
	struct buf	*hold = s->up_hold;

	s->up_switch = 0;
	s->up_hold = NULL;
	xmlstream_free(s->ux);
	s->ux = upstream_parser(s);
	if (upstream_wrap_tls(s, s->backend) == -1) {
		buf_free(hold);
		free(hold);
		upstream_tls_error(s, "cannot set up TLS (out of memory?)");
		return;
	}
	session_to_backend(s, hold);
	buf_free(hold);
	free(hold);
	if (s->cbev != NULL && s->state == SS_RELAY)
		bufferevent_enable(s->cbev, EV_READ);
}

/* Our own stream header: STARTTLS comes before the client's stream. */
static void
upstream_begin_starttls(struct session *s)
{
	struct buf	*b = session_buf();

	buf_adds(b, "<?xml version='1.0'?><stream:stream to='");
	serialize_attr_value(b, s->domain, strlen(s->domain));
	buf_adds(b, "' xmlns='" XML_NS_CLIENT "' xmlns:stream='" XML_NS_STREAMS
	    "' version='1.0'>");
	bufferevent_write(s->ubev, b->data, b->len);
	s->up_hold = xcalloc(1, sizeof(*s->up_hold));
	buf_init(s->up_hold);
	s->up_tls = UPTLS_FEATURES;
}

/* Direct TLS may use another port than the view's c2s address. */
static void
upstream_port(struct net_addr *a, int64_t port)
{
	if (port <= 0)
		return;
	a->port = (uint16_t)port;
	if (a->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = htons(a->port);
	else if (a->ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(a->port);
}

void
upstream_drop(struct session *s)
{
	session_flush(s);
	if (s->ubev != NULL)
		bufferevent_free(s->ubev);
	s->ubev = NULL;
	xmlstream_free(s->ux);
	s->ux = NULL;
	free(s->backend);
	s->backend = NULL;
	session_recount(s);
	if (s->up_hold != NULL) {
		buf_free(s->up_hold);
		free(s->up_hold);
		s->up_hold = NULL;
	}
	if (s->up_first != NULL) {
		buf_free(s->up_first);
		free(s->up_first);
		s->up_first = NULL;
	}
	s->up_lazy = s->up_swallow = 0;
	s->up_header = s->up_open = s->up_error = s->up_switch = s->up_plain = 0;
	s->up_tls = UPTLS_OFF;
}

/* The backend the placement gives the domain; none: the client is told now. */
int
upstream_connect(struct session *s)
{
	const struct pbackend		*b;
	const struct backend_tls_conf	*t;
	struct net_addr			 addr;
	char				 err[256], text[300];
	int				 fd;

	b = move_placement(s->ctx, s->ctx->view, s->domain,
	    s->prefer);
	if (b == NULL) {
		snprintf(text, sizeof(text), "no backend is available for %s; "
		    "try again later", s->domain);
		s->ctx->no_backend++;
		session_end(s, XML_COND_SYSTEM_SHUTDOWN, text);
		return -1;
	}
	t = tls_client_conf(s->ctx->up_tls, b->name);
	addr = b->address;
	if (t->mode == BTLS_DIRECT)
		upstream_port(&addr, t->port);
	if ((fd = net_connect_nb(&addr, err, sizeof(err))) == -1) {
		log_warnx("backend %s: %s", b->name, err);
		session_end(s, XML_COND_SYSTEM_SHUTDOWN, "the backend is "
		    "unreachable: reconnect");
		return -1;
	}
	s->ubev = bufferevent_socket_new(s->ctx->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->ubev == NULL) {
		close(fd);
		session_end(s, XML_COND_INTERNAL_SERVER_ERROR, NULL);
		return -1;
	}
	s->backend = xstrdup(b->name);
	session_recount(s);
	s->ux = upstream_parser(s);
	bufferevent_setcb(s->ubev, upstream_read_cb, upstream_write_cb,
	    upstream_event_cb, s);
	bufferevent_setwatermark(s->ubev, EV_WRITE, SESSION_LOW_WATER, 0);
	bufferevent_enable(s->ubev, EV_READ | EV_WRITE);
	s->up_plain = t->mode == BTLS_NONE;
	if (t->mode == BTLS_STARTTLS)
		upstream_begin_starttls(s);
	else if (t->mode == BTLS_DIRECT && upstream_wrap_tls(s, b->name) == -1) {
		session_end(s, XML_COND_INTERNAL_SERVER_ERROR, NULL);
		return -1;
	}
	return 0;
}
