/*
 * xmpp_client.c: the small XMPP client stream the xmpp and login checks share:
 * a non-blocking connect, the stream header, and expat within hard bounds
 * (bytes, depth, elements, text; no DTD) so a hostile backend costs nothing.
 */
#include <sys/socket.h>

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <expat.h>

#include "probe_int.h"

#define XC_NS_SEP	'\x01'

struct xc {
	struct probe		*p;
	const struct xc_handler	*h;
	void			*arg;
	char			*domain;
	struct probe_sock	 sock;
	XML_Parser		 parser;
	int			 depth;
	int			 restart;
	char			 abort_msg[200];
	struct xnode		*stanza;	/* being built */
	struct xnode		*cur;
	size_t			 nodes, text;
	unsigned char		 head[8];	/* the first bytes, for hints */
	size_t			 nhead;
};

static void	xc_parser_new(struct xc *);

/* ---------------------------------------------------------------- nodes */

static void
xnode_free(struct xnode *n)
{
	struct xnode	*c, *next;
	char		**a;

	if (n == NULL)
		return;
	for (c = n->child; c != NULL; c = next) {
		next = c->next;
		xnode_free(c);
	}
	for (a = n->attrs; *a != NULL; a++)
		free(*a);
	buf_free(&n->text);
	free(n->ns);
	free(n->name);
	free(n);
}

const struct xnode *
xnode_child(const struct xnode *n, const char *ns, const char *name)
{
	const struct xnode	*c;

	for (c = n->child; c != NULL; c = c->next)
		if ((ns == NULL || strcmp(c->ns, ns) == 0) &&
		    (name == NULL || strcmp(c->name, name) == 0))
			return c;
	return NULL;
}

const char *
xnode_attr(const struct xnode *n, const char *name)
{
	char	*const *a;

	for (a = n->attrs; a[0] != NULL; a += 2)
		if (strcmp(a[0], name) == 0)
			return a[1];
	return NULL;
}

const char *
xnode_condition(const struct xnode *n, const char *ns)
{
	const struct xnode	*c;

	for (c = n->child; c != NULL; c = c->next)
		if (strcmp(c->ns, ns) == 0 && strcmp(c->name, "text") != 0)
			return c->name;
	return NULL;
}

/* "uri\1local" as expat reports it with namespace processing. */
static void
xc_split_name(const char *qname, char **ns, char **local)
{
	const char	*sep;

	if ((sep = strchr(qname, XC_NS_SEP)) == NULL) {
		*ns = xstrdup("");
		*local = xstrdup(qname);
	} else {
		*ns = xstrndup(qname, (size_t)(sep - qname));
		*local = xstrdup(sep + 1);
	}
}

/* ---------------------------------------------------------------- parser */

static void
xc_abort(struct xc *xc, const char *fmt, ...) PRINTFLIKE(2, 3);

static void
xc_abort(struct xc *xc, const char *fmt, ...)
{
	va_list	ap;

	if (xc->abort_msg[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(xc->abort_msg, sizeof(xc->abort_msg), fmt, ap);
		va_end(ap);
	}
	XML_StopParser(xc->parser, XML_FALSE);
}

static int
xc_stopped(const struct xc *xc)
{
	return xc->p->finished || xc->restart || xc->abort_msg[0] != '\0';
}

static void
xc_stream_start(struct xc *xc, const char *qname)
{
	char	*ns, *local;

	xc_split_name(qname, &ns, &local);
	if (strcmp(ns, XMPP_NS_STREAMS) != 0 || strcmp(local, "stream") != 0)
		xc_abort(xc, "expected <stream:stream>, got <%.40s>%s%.60s%s", local,
		    *ns ? " in namespace '" : "", ns, *ns ? "'" : "");
	else
		xc->h->on_stream(xc, xc->arg);
	free(ns);
	free(local);
}

static struct xnode *
xc_node_new(struct xc *xc, const char *qname, const char **atts)
{
	struct xnode	*n;
	size_t		 i;

	if (++xc->nodes > XC_MAX_NODES) {
		xc_abort(xc, "a stanza of more than %d elements", XC_MAX_NODES);
		return NULL;
	}
	n = xcalloc(1, sizeof(*n));
	buf_init(&n->text);
	xc_split_name(qname, &n->ns, &n->name);
	for (i = 0; atts[i] != NULL; i += 2) {
		if (i / 2 >= XC_MAX_ATTRS) {
			xc_abort(xc, "more than %d attributes on <%.40s>",
			    XC_MAX_ATTRS, n->name);
			break;
		}
		n->attrs[i] = xstrdup(atts[i]);
		n->attrs[i + 1] = xstrdup(atts[i + 1]);
	}
	return n;
}

static void
xc_start_cb(void *arg, const XML_Char *name, const XML_Char **atts)
{
	struct xc	*xc = arg;
	struct xnode	*n;

	if (xc_stopped(xc))
		return;
	if (++xc->depth > XC_MAX_DEPTH) {
		xc_abort(xc, "elements nested deeper than %d", XC_MAX_DEPTH);
		return;
	}
	if (xc->depth == 1) {
		xc_stream_start(xc, name);
		return;
	}
	if ((n = xc_node_new(xc, name, atts)) == NULL)
		return;
	if (xc->depth == 2) {
		xc->stanza = n;
		xc->nodes = 1;
		xc->text = 0;
	} else {
		n->parent = xc->cur;
		if (xc->cur->last != NULL)
			xc->cur->last->next = n;
		else
			xc->cur->child = n;
		xc->cur->last = n;
	}
	xc->cur = n;
}

static void
xc_stream_error(struct xc *xc, const struct xnode *n)
{
	const struct xnode	*t;
	const char		*cond;

	cond = xnode_condition(n, XMPP_NS_STREAMERR);
	t = xnode_child(n, XMPP_NS_STREAMERR, "text");
	probe_fail(xc->p, "%s: stream error: %.60s%s%.80s%s", xc->sock.stage,
	    cond != NULL ? cond : "(no condition)",
	    t != NULL && t->text.len ? " (" : "",
	    t != NULL && t->text.len ? t->text.data : "",
	    t != NULL && t->text.len ? ")" : "");
}

static void
xc_end_cb(void *arg, const XML_Char *name)
{
	struct xc	*xc = arg;
	struct xnode	*n;

	if (xc_stopped(xc))
		return;
	if (xc->depth-- == 1) {
		probe_fail(xc->p, "%s: the server closed the stream", xc->sock.stage);
		XML_StopParser(xc->parser, XML_FALSE);
		return;
	}
	if (xc->depth > 1) {
		xc->cur = xc->cur->parent;
		return;
	}
	n = xc->stanza;
	xc->stanza = xc->cur = NULL;
	if (strcmp(n->ns, XMPP_NS_STREAMS) == 0 && strcmp(n->name, "error") == 0)
		xc_stream_error(xc, n);
	else
		xc->h->on_stanza(xc, n, xc->arg);
	xnode_free(n);
	if (xc_stopped(xc))
		XML_StopParser(xc->parser, XML_FALSE);
}

static void
xc_text_cb(void *arg, const XML_Char *s, int len)
{
	struct xc	*xc = arg;

	if (xc_stopped(xc) || xc->cur == NULL || len <= 0)
		return;
	if ((xc->text += (size_t)len) > XC_MAX_TEXT) {
		xc_abort(xc, "more than %d bytes of text in one stanza",
		    XC_MAX_TEXT);
		return;
	}
	buf_add(&xc->cur->text, s, (size_t)len);
}

/* No DTD at all: no entity can expand, nothing is fetched. */
static void
xc_doctype_cb(void *arg, const XML_Char *name, const XML_Char *sysid,
    const XML_Char *pubid, int has_internal_subset)
{
	xc_abort(arg, "a DOCTYPE (not allowed in XMPP)");
}

static void
xc_entity_cb(void *arg, const XML_Char *name, int is_param, const XML_Char *value,
    int value_len, const XML_Char *base, const XML_Char *sysid,
    const XML_Char *pubid, const XML_Char *notation)
{
	xc_abort(arg, "an entity declaration (not allowed in XMPP)");
}

static void
xc_parser_new(struct xc *xc)
{
	if (xc->parser != NULL)
		XML_ParserFree(xc->parser);
	xnode_free(xc->stanza);
	xc->stanza = xc->cur = NULL;
	xc->depth = 0;
	if ((xc->parser = XML_ParserCreateNS("UTF-8", XC_NS_SEP)) == NULL)
		fatalx("xmpp: XML_ParserCreateNS");
	XML_SetUserData(xc->parser, xc);
	XML_SetElementHandler(xc->parser, xc_start_cb, xc_end_cb);
	XML_SetCharacterDataHandler(xc->parser, xc_text_cb);
	XML_SetStartDoctypeDeclHandler(xc->parser, xc_doctype_cb);
	XML_SetEntityDeclHandler(xc->parser, xc_entity_cb);
	XML_SetParamEntityParsing(xc->parser, XML_PARAM_ENTITY_PARSING_NEVER);
}

/* ---------------------------------------------------------------- I/O */

void
xc_send(struct xc *xc, const char *s)
{
	probe_sock_send(&xc->sock, s, strlen(s));
}

static void
xc_send_header(struct xc *xc)
{
	struct buf	b;

	buf_init(&b);
	buf_adds(&b, "<?xml version='1.0'?><stream:stream to='");
	xc_escape(&b, xc->domain);
	buf_adds(&b, "' xmlns='" XMPP_NS_CLIENT "' xmlns:stream='"
	    XMPP_NS_STREAMS "' version='1.0'>");
	probe_sock_send(&xc->sock, b.data, b.len);
	buf_free(&b);
}

void
xc_restart(struct xc *xc)
{
	xc->restart = 1;
}

static const char *
xc_hint(const struct xc *xc)
{
	const unsigned char	*h = xc->head;

	if (xc->nhead >= 2 && (h[0] == 0x15 || h[0] == 0x16) && h[1] == 0x03)
		return " (the server speaks TLS: a direct-TLS port?)";
	if (xc->nhead >= 5 && memcmp(h, "HTTP/", 5) == 0)
		return " (an HTTP server, not XMPP)";
	if (xc->nhead >= 4 && memcmp(h, "SSH-", 4) == 0)
		return " (an SSH server, not XMPP)";
	return "";
}

static void
xc_parse_failed(struct xc *xc)
{
	enum XML_Error	code = XML_GetErrorCode(xc->parser);

	if (xc->abort_msg[0] != '\0')
		probe_fail(xc->p, "%s: %s", xc->sock.stage, xc->abort_msg);
	else if (code != XML_ERROR_ABORTED)
		probe_fail(xc->p, "%s: not XML: %s at byte %ld%s", xc->sock.stage,
		    XML_ErrorString(code), (long)XML_GetCurrentByteIndex(xc->parser),
		    xc_hint(xc));
}

static void
xc_feed(struct xc *xc, const char *data, size_t n)
{
	if (xc->nhead < sizeof(xc->head)) {
		size_t	k = sizeof(xc->head) - xc->nhead;

		memcpy(xc->head + xc->nhead, data, n < k ? n : k);
		xc->nhead += n < k ? n : k;
	}
	if (XML_Parse(xc->parser, data, (int)n, XML_FALSE) != XML_STATUS_OK)
		xc_parse_failed(xc);
	if (xc->p->finished || !xc->restart)
		return;
	/* Whatever followed the restart point belonged to no stream: dropped. */
	xc->restart = 0;
	xc_parser_new(xc);
	xc_stage(xc, "stream");
	xc_send_header(xc);
}

static void
xc_data(void *arg, const char *data, size_t n)
{
	struct xc	*xc = arg;

	if (n == 0)
		probe_fail(xc->p, "%s: connection closed by the server after %zu "
		    "bytes%s", xc->sock.stage, xc->sock.in_bytes, xc_hint(xc));
	else
		xc_feed(xc, data, n);
}

static void
xc_connected(void *arg)
{
	struct xc	*xc = arg;

	xc_stage(xc, "stream");
	xc_send_header(xc);
}

/* ---------------------------------------------------------------- life */

struct xc *
xc_open(struct probe *p, const struct check_target *t, const struct xc_handler *h,
    void *arg)
{
	struct xc	*xc;

	xc = xcalloc(1, sizeof(*xc));
	xc->p = p;
	xc->h = h;
	xc->arg = arg;
	xc->domain = xstrdup(t->domain != NULL ? t->domain : "");
	xc_parser_new(xc);
	xc->sock.on_connect = xc_connected;
	xc->sock.on_data = xc_data;
	xc->sock.arg = xc;
	probe_sock_open(&xc->sock, p, &t->address, XC_MAX_INPUT);
	return xc;
}

void
xc_close(struct xc *xc)
{
	static const char	 end[] = "</stream:stream>";

	if (xc == NULL)
		return;
	/* Politely, when nothing else is still queued; never waits. */
	if (xc->sock.fd != -1 && xc->sock.connected &&
	    xc->sock.out_off == xc->sock.out.len)
		(void)send(xc->sock.fd, end, sizeof(end) - 1,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
	probe_sock_close(&xc->sock);
	XML_ParserFree(xc->parser);
	xnode_free(xc->stanza);
	free(xc->domain);
	free(xc);
}

void
xc_stage(struct xc *xc, const char *stage)
{
	xc->sock.stage = stage;
}

const char *
xc_get_stage(const struct xc *xc)
{
	return xc->sock.stage;
}

void
xc_expire(struct xc *xc)
{
	probe_fail(xc->p, "%s: timeout after %d ms (%zu bytes received)",
	    xc->sock.stage, xc->p->timeout_ms, xc->sock.in_bytes);
}

/* For attribute values between '' quotes. */
void
xc_escape(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '\'': buf_adds(b, "&apos;"); break;
		case '"': buf_adds(b, "&quot;"); break;
		case '&': buf_adds(b, "&amp;"); break;
		case '<': buf_adds(b, "&lt;"); break;
		case '>': buf_adds(b, "&gt;"); break;
		default: buf_addc(b, *s); break;
		}
	}
}
