/*
 * serialize.c: proxyd's canonical XML writer: the stream header, stanzas and
 * the stream end, written from parsed trees, so a peer only ever gets bytes
 * proxyd wrote.
 *
 * The canonical form: attributes in single quotes; text escapes & < > and CR,
 * attribute values also ' " TAB LF (so that attribute normalisation gives
 * back the same value); every namespace declared where it changes: the
 * stream header declares the content namespace (jabber:client or a
 * configured one) as default and "stream" as the only element prefix; an
 * element whose namespace differs from its parent's default gets xmlns='...'
 * (xmlns='' for none); an element in the streams namespace is written
 * stream:name, one in the XML namespace xml:name (it may never be a default).  Namespaced attributes use xml: for the XML namespace, stream:
 * for the streams one, and nsN declared on the same element for any other.
 * The input is what xmlstream.c produced: valid UTF-8, legal characters,
 * NCNames; a C0 control that got in anyway is written as U+FFFD, never raw.
 */
#include <string.h>

#include "proxyd.h"
#include "xmlscan.h"

enum { E_PLAIN, E_TEXT, E_ATTR, E_CTRL };

/* Which bytes need an entity: in text (E_TEXT), in attributes too (E_ATTR). */
static const unsigned char serialize_class[256] = {
	[0x00] = E_CTRL, [0x01] = E_CTRL, [0x02] = E_CTRL, [0x03] = E_CTRL,
	[0x04] = E_CTRL, [0x05] = E_CTRL, [0x06] = E_CTRL, [0x07] = E_CTRL,
	[0x08] = E_CTRL, [0x0b] = E_CTRL, [0x0c] = E_CTRL, [0x0e] = E_CTRL,
	[0x0f] = E_CTRL, [0x10] = E_CTRL, [0x11] = E_CTRL, [0x12] = E_CTRL,
	[0x13] = E_CTRL, [0x14] = E_CTRL, [0x15] = E_CTRL, [0x16] = E_CTRL,
	[0x17] = E_CTRL, [0x18] = E_CTRL, [0x19] = E_CTRL, [0x1a] = E_CTRL,
	[0x1b] = E_CTRL, [0x1c] = E_CTRL, [0x1d] = E_CTRL, [0x1e] = E_CTRL,
	[0x1f] = E_CTRL,
	['\t'] = E_ATTR, ['\n'] = E_ATTR, ['\r'] = E_TEXT,
	['&'] = E_TEXT, ['<'] = E_TEXT, ['>'] = E_TEXT,
	['\''] = E_ATTR, ['"'] = E_ATTR,
};

static void
serialize_entity(struct buf *b, unsigned char c)
{
	switch (c) {
	case '&':
		SER_LIT(b, "&amp;");
		break;
	case '<':
		SER_LIT(b, "&lt;");
		break;
	case '>':
		SER_LIT(b, "&gt;");
		break;
	case '\r':
		SER_LIT(b, "&#13;");
		break;
	case '\'':
		SER_LIT(b, "&apos;");
		break;
	case '"':
		SER_LIT(b, "&quot;");
		break;
	case '\t':
		SER_LIT(b, "&#9;");
		break;
	case '\n':
		SER_LIT(b, "&#10;");
		break;
	default:
		SER_LIT(b, "\xef\xbf\xbd");
		break;
	}
}

/* The printable ASCII bytes that need no entity (the span loops' class). */
#define S_OF(c)	((c) < 0x20 || (c) >= 0x80 ? 0 :				\
	((c) != '&' && (c) != '<' && (c) != '>' ? S_TEXT : 0) |		\
	((c) != '&' && (c) != '<' && (c) != '>' && (c) != '\'' &&	\
	    (c) != '"' ? S_ATTR : 0))
enum { S_TEXT = 1, S_ATTR = 2 };
static const uint8_t serialize_plain_tab[256] = {
	CLASS_256(S_OF)
};

/* Plain runs go 16 bytes at a time; a control or non-ASCII byte the span
 * stops at is looked up in serialize_class. */
void
serialize_escape(struct buf *b, const char *s, size_t n, int attr)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, run = 0;
	unsigned char		 k;

	while (i < n) {
		i += attr ?
		    xmlscan_span(serialize_plain_tab, S_ATTR, p + i, n - i,
		    '&', '<', '>', '\'', '"') :
		    xmlscan_span(serialize_plain_tab, S_TEXT, p + i, n - i,
		    '&', '<', '>', '>', '>');
		if (i >= n)
			break;
		if ((k = serialize_class[p[i]]) == E_PLAIN || (k == E_ATTR && !attr)) {
			i++;
			continue;
		}
		ser_put(b, s + run, i - run);
		serialize_entity(b, p[i]);
		run = ++i;
	}
	ser_put(b, s + run, n - run);
}

void
serialize_text(struct buf *b, const char *s, size_t n)
{
	serialize_escape(b, s, n, 0);
	ser_end(b);
}

void
serialize_attr_value(struct buf *b, const char *s, size_t n)
{
	serialize_escape(b, s, n, 1);
	ser_end(b);
}

/* The parser shares a child's URI with its parent's: equal pointers first. */
static int
serialize_ns_eq(const char *a, const char *b)
{
	if (a == b)
		return 1;
	if (a == NULL || *a == '\0')
		return b == NULL || *b == '\0';
	return b != NULL && strcmp(a, b) == 0;
}

/* Asked twice for every element: the first byte rules most out. */
static int
serialize_is(const char *ns, const char *uri)
{
	return ns == uri ||
	    (ns != NULL && ns[0] == uri[0] && strcmp(ns, uri) == 0);
}

static int
serialize_plain_ns(const char *ns)
{
	return ns == NULL || *ns == '\0' || serialize_is(ns, XML_NS_XML) ||
	    serialize_is(ns, XML_NS_STREAMS);
}

/* Attribute I's prefix number: the first attribute with the same URI. */
static size_t
serialize_prefix_of(const struct xml_node *n, size_t i)
{
	size_t	j;

	for (j = 0; j < i; j++)
		if (!serialize_plain_ns(n->attrs[j].ns) &&
		    strcmp(n->attrs[j].ns, n->attrs[i].ns) == 0)
			return j;
	return i;
}

static void
serialize_attrs(struct buf *b, const struct xml_node *n)
{
	const struct xml_attr	*a;
	size_t			 i, k;

	for (i = 0; i < n->nattrs; i++) {
		a = &n->attrs[i];
		ser_putc(b, ' ');
		if (a->ns == NULL || *a->ns == '\0')
			;
		else if (serialize_is(a->ns, XML_NS_XML))
			SER_LIT(b, "xml:");
		else if (serialize_is(a->ns, XML_NS_STREAMS))
			SER_LIT(b, "stream:");
		else {
			if ((k = serialize_prefix_of(n, i)) == i) {
				buf_printf(b, "xmlns:ns%zu='", k);
				serialize_escape(b, a->ns, strlen(a->ns), 1);
				SER_LIT(b, "' ");
			}
			buf_printf(b, "ns%zu:", k);
		}
		ser_put(b, a->name, strlen(a->name));
		SER_LIT(b, "='");
		serialize_escape(b, a->value, a->vlen, 1);
		ser_putc(b, '\'');
	}
}

static void
serialize_elem(struct buf *b, const struct xml_node *n, const char *dflt)
{
	const struct xml_node	*c;
	const char		*inner = dflt, *prefix = "";
	size_t			 plen = 0, nlen = strlen(n->name);

	/* The XML namespace may never be a default one: it keeps its prefix. */
	if (serialize_is(n->ns, XML_NS_STREAMS)) {
		prefix = "stream:";
		plen = sizeof("stream:") - 1;
	} else if (serialize_is(n->ns, XML_NS_XML)) {
		prefix = "xml:";
		plen = sizeof("xml:") - 1;
	}
	ser_putc(b, '<');
	ser_put(b, prefix, plen);
	ser_put(b, n->name, nlen);
	if (plen == 0 && !serialize_ns_eq(n->ns, dflt)) {
		SER_LIT(b, " xmlns='");
		if (n->ns != NULL)
			serialize_escape(b, n->ns, strlen(n->ns), 1);
		ser_putc(b, '\'');
		inner = n->ns;
	}
	serialize_attrs(b, n);
	if (n->child == NULL) {
		SER_LIT(b, "/>");
		return;
	}
	ser_putc(b, '>');
	for (c = n->child; c != NULL; c = c->next) {
		if (c->type == XML_NODE_TEXT)
			serialize_escape(b, c->text, c->len, 0);
		else
			serialize_elem(b, c, inner);
	}
	SER_LIT(b, "</");
	ser_put(b, prefix, plen);
	ser_put(b, n->name, nlen);
	ser_putc(b, '>');
}

void
serialize_header(struct buf *b, const struct xml_node *root, const char *content_ns)
{
	if (content_ns == NULL)
		content_ns = XML_NS_CLIENT;
	buf_adds(b, "<?xml version='1.0'?><stream:stream xmlns='");
	serialize_attr_value(b, content_ns, strlen(content_ns));
	buf_adds(b, "' xmlns:stream='" XML_NS_STREAMS "'");
	if (root != NULL)
		serialize_attrs(b, root);
	ser_putc(b, '>');
	ser_end(b);
}

void
serialize_stanza(struct buf *b, const struct xml_node *n, const char *content_ns)
{
	if (n->type == XML_NODE_TEXT)
		serialize_escape(b, n->text, n->len, 0);
	else
		serialize_elem(b, n, content_ns != NULL ? content_ns : XML_NS_CLIENT);
	ser_end(b);
}

void
serialize_close(struct buf *b)
{
	buf_adds(b, "</stream:stream>");
}
