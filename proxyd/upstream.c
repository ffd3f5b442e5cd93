/*
 * upstream.c: a session's backend side: the connection to the backend the
 * placement gives its domain, and everything the backend sends, parsed in
 * repair mode and re-serialised for the client (its <starttls/> offer
 * dropped, its SASL <success/> and bind result noted).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proxyd.h"
#include "session_int.h"

static int	upstream_open(void *, const struct xml_node *);
static int	upstream_stanza(void *, const struct xml_node *);
static int	upstream_close(void *);

static const struct xmlstream_cb upstream_cbs = {
	upstream_open, upstream_stanza, upstream_close
};

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
	upstream_feed(arg);
}

static void
upstream_write_cb(struct bufferevent *bev, void *arg)
{
	struct session	*s = arg;

	if (s->state != SS_CLOSING && s->state != SS_SWITCHING && s->cbev != NULL)
		bufferevent_enable(s->cbev, EV_READ);
}

static void
upstream_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session	*s = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	if (s->state == SS_CLOSING)
		return;
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

	s->up_open = 1;
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
	struct buf		*b = session_buf();

	buf_adds(b, "<stream:features>");
	for (c = n->child; c != NULL; c = c->next) {
		if (c->type != XML_NODE_ELEM)
			continue;
		if (c->ns != NULL && strcmp(c->ns, NS_TLS) == 0)
			continue;
		serialize_stanza(b, c, NULL);
	}
	buf_adds(b, "</stream:features>");
	session_to_client(s, b);
}

/* A bind result names the session's full JID. */
static void
upstream_bind_result(struct session *s, const struct xml_node *n)
{
	const struct xml_node	*bind, *jid;
	const char		*type = xmlstream_attr(n, NULL, "type");
	char			 clean[3072];

	if (type == NULL || strcmp(type, "result") != 0 ||
	    (bind = xmlstream_child(n, NS_BIND, "bind")) == NULL ||
	    (jid = xmlstream_child(bind, NS_BIND, "jid")) == NULL)
		return;
	free(s->jid);
	s->jid = xstrdup(session_clean(xmlstream_text(jid), clean, sizeof(clean)));
	log_info("session %llu (%s): %s on %s", (unsigned long long)s->id,
	    s->addr, s->jid, s->backend);
}

static int
upstream_stanza(void *arg, const struct xml_node *n)
{
	struct session	*s = arg;
	struct buf	*b;

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
		if (s->jid == NULL && strcmp(n->name, "iq") == 0)
			upstream_bind_result(s, n);
	}
	s->stanzas_out++;
	b = session_buf();
	serialize_stanza(b, n, NULL);
	session_to_client(s, b);
	return 0;
}

static int
upstream_close(void *arg)
{
	struct session	*s = arg;

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

/* The backend the placement gives the domain; none: the client is told now. */
int
upstream_connect(struct session *s)
{
	const struct pbackend	*b;
	char			 err[256], text[300];
	int			 fd;

	b = placement_pick(hview_current(s->ctx->hv), s->domain, s->prefer);
	if (b == NULL) {
		snprintf(text, sizeof(text), "no backend is available for %s; "
		    "try again later", s->domain);
		s->ctx->no_backend++;
		session_end(s, XML_COND_SYSTEM_SHUTDOWN, text);
		return -1;
	}
	if ((fd = net_connect_nb(&b->address, err, sizeof(err))) == -1) {
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
	s->ux = xmlstream_new(upstream_limits(), NULL, XMLS_REPAIR | XMLS_KEEP,
	    &upstream_cbs, s);
	bufferevent_setcb(s->ubev, upstream_read_cb, upstream_write_cb,
	    upstream_event_cb, s);
	bufferevent_setwatermark(s->ubev, EV_WRITE, SESSION_LOW_WATER, 0);
	bufferevent_enable(s->ubev, EV_READ | EV_WRITE);
	return 0;
}
