/*
 * xmlcheck.c: proves a whole stanza well-formed as the bytes it is, so that
 * xmlstream.c's pass mode can hand it on without expat and the serializer;
 * and writes a client's stanza in serialize.c's canonical form straight from
 * its bytes (xmlcanon_stanza), for pass mode's writing variant toward a
 * backend.
 *
 * Both run where the lexer (xmlfilter.c) is between stanzas, on the bytes
 * from a stanza's '<' to the end of the read, and answer the stanza's length
 * when they take it; the lexer then only moves on (xmlfilter_skip).  So what
 * the lexer checks is checked here too, for every byte taken: valid UTF-8,
 * characters XML allows, no DOCTYPE, comment or processing instruction, and
 * every limit it counts (stanza bytes, depth, attributes a tag, attribute
 * value bytes, reference length), each declined where the lexer would fail.
 * And what the lexer leaves to expat: tag and attribute syntax, end tags
 * matching their start tags, attributes unique, references, "]]>" in text,
 * namespaces.  Only the common case is taken: ASCII names without a prefix
 * (xml: on an attribute aside), no namespace declaration but a default one,
 * at most XC_DEPTH levels and XC_ATTRS attributes a tag.  Such a stanza means
 * the same thing in every stream whose default namespace is the same, so it
 * may go from the backend's stream to the client's as it is.  Anything else,
 * a stanza the read cuts included, answers 0 and takes the lexer and the
 * parse path, which give the exact error if there is one.
 *
 * The canonical writer takes a narrower case still and writes exactly what
 * serialize_stanza writes from the tree expat would have built: the same
 * attributes in the same order in single quotes, every value and text node
 * decoded and escaped again by serialize_escape, an xmlns='...' only where
 * the namespace changes, "<a/>" for an element with no content.  Where
 * expat would change the characters (a CR, which it turns into a line feed;
 * a tab or line feed in an attribute value, which it turns into a space) or
 * the serializer the names (the streams namespace, which it writes as
 * stream:), and where a limit the tree builder counts would be passed
 * (depth, attributes, a text node's decoded length), it answers 0 and the
 * stanza is parsed.  A stanza whose first element is not
 * in the stream's default namespace is parsed too: its owner reads it.
 * The unit tests and the fuzz target compare its output with the parse
 * path's, byte for byte.
 */
#include <string.h>

#include "proxyd.h"
#include "xmlscan.h"

#define XC_DEPTH	64
#define XC_ATTRS	16
#define XC_NO		((size_t)-1)

enum { C_TEXT = 1, C_APOS = 2, C_QUOT = 4, C_START = 8, C_NAME = 16, C_VAL = 32,
    C_CHAR = 64 };

#define C_OF(c)	(((c) < 0x20 || (c) >= 0x80 ? 0 :				\
	((c) != '<' && (c) != '&' && (c) != ']' ? C_TEXT : 0) |		\
	((c) != '<' && (c) != '&' && (c) != '\'' ? C_APOS : 0) |	\
	((c) != '<' && (c) != '&' && (c) != '"' ? C_QUOT : 0) |	\
	((c) != '&' ? C_VAL : 0) | C_CHAR) |				\
	(((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') ||	\
	    (c) == '_' ? C_START | C_NAME : 0) |			\
	(((c) >= '0' && (c) <= '9') || (c) == '-' || (c) == '.' ? C_NAME : 0))

static const uint8_t xmlcheck_tab[256] = {
	CLASS_256(C_OF)
};

struct xc_name {
	const unsigned char	*p;
	size_t			 n;
};

/* A start tag as xmlcheck_tag found it. */
struct xc_attr {
	struct xc_name	 name;
	size_t		 v, ve;		/* the value, P[v..ve), quotes excluded */
	int		 plain;		/* no reference in it */
};
struct xc_tag {
	struct xc_name	 name;
	struct xc_attr	 a[XC_ATTRS];
	size_t		 n;
	int		 empty;		/* it ended with "/>" */
};

/* The end of the name at P[I..N): ASCII, no prefix (but "xml:" where XML
 * is set), else XC_NO. */
static size_t
xmlcheck_name(const unsigned char *p, size_t n, size_t i, int xml)
{
	size_t	j;

	if (i >= n || !(xmlcheck_tab[p[i]] & C_START))
		return XC_NO;
	for (j = i + 1; j < n && (xmlcheck_tab[p[j]] & C_NAME); j++)
		;
	if (j < n && p[j] == ':') {
		if (!xml || j - i != 3 || memcmp(p + i, "xml", 3) != 0 ||
		    j + 1 >= n || !(xmlcheck_tab[p[j + 1]] & C_START))
			return XC_NO;
		for (j += 2; j < n && (xmlcheck_tab[p[j]] & C_NAME); j++)
			;
	}
	if (j < n && (p[j] >= 0x80 || p[j] == ':'))
		return XC_NO;		/* a name expat must judge */
	return j;
}

/* The offset after the reference at P[I] == '&', if it is one of the five
 * predefined entities or a character reference to an XML character, whose
 * code point goes to *OUT. */
static size_t
xmlcheck_ref(const unsigned char *p, size_t n, size_t i, uint32_t *out)
{
	static const char *const named[] = { "lt;", "gt;", "amp;", "quot;", "apos;" };
	static const char	 chars[] = "<>&\"'";
	uint32_t		 cp = 0;
	size_t			 j, k, len;
	int			 hex;

	for (k = 0; k < 5; k++) {
		len = strlen(named[k]);
		if (n - i - 1 >= len && memcmp(p + i + 1, named[k], len) == 0) {
			*out = (unsigned char)chars[k];
			return i + 1 + len;
		}
	}
	if (i + 2 >= n || p[i + 1] != '#')
		return XC_NO;
	hex = p[i + 2] == 'x';
	j = i + 2 + (hex ? 1 : 0);
	for (k = j; k < n && k - j < REF_MAX; k++) {
		unsigned char	c = p[k];
		uint32_t	d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (hex && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (hex && c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			break;
		cp = cp * (hex ? 16 : 10) + d;
		if (cp > 0x10ffff)
			return XC_NO;
	}
	/* the lexer takes at most REF_MAX bytes from the '&' to the ';' */
	if (k == j || k >= n || p[k] != ';' || k - i >= REF_MAX || cp == 0 ||
	    !xmlscan_xml_char(cp) || (cp >= 0xd800 && cp <= 0xdfff))
		return XC_NO;
	*out = cp;
	return k + 1;
}

/* The character at P[I] that a span stopped at, if the lexer takes it and
 * it is no markup: its length (a whole UTF-8 one, a tab, a line feed, a CR
 * where CR is set, a printable byte), else 0. */
static size_t
xmlcheck_char(const unsigned char *p, size_t n, size_t i, int cr)
{
	if (p[i] >= 0x80)
		return xmlscan_utf8_len(p + i, n - i);
	if (p[i] < 0x20)
		return p[i] == '\t' || p[i] == '\n' || (cr && p[i] == '\r');
	return 1;
}

/* P[I..E) holds only characters the lexer takes (CR where CR is set). */
static int
xmlcheck_chars(const unsigned char *p, size_t i, size_t e, int cr)
{
	size_t	k;

	while (i < e) {
		i += xmlscan_span(xmlcheck_tab, C_CHAR, p + i, e - i,
		    '\x01', '\x01', '\x01', '\x01', '\x01');
		if (i >= e)
			break;
		if ((k = xmlcheck_char(p, e, i, cr)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

/* Text from P[I]: the offset of the next '<' (or N), or XC_NO. */
static size_t
xmlcheck_text(const unsigned char *p, size_t n, size_t i)
{
	uint32_t	cp;
	size_t		k;

	while (i < n) {
		i += xmlscan_span(xmlcheck_tab, C_TEXT, p + i, n - i,
		    '<', '&', ']', ']', ']');
		if (i >= n || p[i] == '<')
			break;
		if (p[i] == '&') {
			if ((i = xmlcheck_ref(p, n, i, &cp)) == XC_NO)
				return XC_NO;
		} else if (p[i] == ']' && n - i >= 3 && p[i + 1] == ']' &&
		    p[i + 2] == '>')
			return XC_NO;
		else if ((k = xmlcheck_char(p, n, i, 1)) == 0)
			return XC_NO;
		else
			i += k;
	}
	return i;
}

static size_t
xmlcheck_space(const unsigned char *p, size_t n, size_t i)
{
	while (i < n && xmlscan_is_ws(p[i]))
		i++;
	return i;
}

/* The quoted value at P[I], at most MAX bytes: the offset after its closing
 * quote, or XC_NO; *PLAIN is cleared when it holds a reference. */
static size_t
xmlcheck_value(const unsigned char *p, size_t n, size_t i, size_t max, int *plain)
{
	unsigned char	q;
	uint8_t		m;
	uint32_t	cp;
	size_t		k, start;

	if (i >= n || (p[i] != '\'' && p[i] != '"'))
		return XC_NO;
	q = p[i++];
	m = q == '\'' ? C_APOS : C_QUOT;
	*plain = 1;
	start = i;
	while (i < n) {
		i += q == '\'' ?
		    xmlscan_span(xmlcheck_tab, m, p + i, n - i, '\'', '<', '&', '&', '&') :
		    xmlscan_span(xmlcheck_tab, m, p + i, n - i, '"', '<', '&', '&', '&');
		if (i >= n || p[i] == '<')
			return XC_NO;
		if (p[i] == q)
			return i - start < max ? i + 1 : XC_NO;
		if (p[i] == '&') {
			*plain = 0;
			if ((i = xmlcheck_ref(p, n, i, &cp)) == XC_NO)
				return XC_NO;
		} else if ((k = xmlcheck_char(p, n, i, 1)) == 0)
			return XC_NO;
		else
			i += k;
	}
	return XC_NO;
}

/* A default namespace declaration may not name the XML or XMLNS namespace. */
static int
xmlcheck_xmlns_ok(const unsigned char *v, size_t n, int plain)
{
	static const char	xmlns_ns[] = "http://www.w3.org/2000/xmlns/";

	if (!plain)
		return 0;
	return !(n == sizeof(XML_NS_XML) - 1 && memcmp(v, XML_NS_XML, n) == 0) &&
	    !(n == sizeof(xmlns_ns) - 1 && memcmp(v, xmlns_ns, n) == 0);
}

/* The start tag at P[I] == '<' within the limits LIM: the offset after its
 * '>', or XC_NO; its name and attributes go to T. */
static size_t
xmlcheck_tag(const unsigned char *p, size_t n, size_t i, const struct xml_limits *lim,
    struct xc_tag *t)
{
	struct xc_attr	*a;
	size_t		 j, k, e;

	if ((e = xmlcheck_name(p, n, i + 1, 0)) == XC_NO)
		return XC_NO;
	t->name.p = p + i + 1;
	t->name.n = e - i - 1;
	t->n = 0;
	for (i = e;;) {
		j = xmlcheck_space(p, n, i);
		if (j >= n)
			return XC_NO;
		if (p[j] == '>' || p[j] == '/') {
			t->empty = p[j] == '/';
			if (t->empty && (j + 1 >= n || p[j + 1] != '>'))
				return XC_NO;
			return j + 1 + (size_t)t->empty;
		}
		if (j == i || t->n == XC_ATTRS || t->n >= lim->attrs + lim->ns_decls ||
		    (e = xmlcheck_name(p, n, j, 1)) == XC_NO)
			return XC_NO;
		for (k = 0; k < t->n; k++)
			if (t->a[k].name.n == e - j &&
			    memcmp(t->a[k].name.p, p + j, e - j) == 0)
				return XC_NO;
		a = &t->a[t->n++];
		a->name.p = p + j;
		a->name.n = e - j;
		k = xmlcheck_space(p, n, e);
		if (k >= n || p[k] != '=')
			return XC_NO;
		k = xmlcheck_space(p, n, k + 1);
		if ((i = xmlcheck_value(p, n, k, lim->attr_bytes, &a->plain)) == XC_NO)
			return XC_NO;
		a->v = k + 1;
		a->ve = i - 1;
		if (e - j == 5 && memcmp(p + j, "xmlns", 5) == 0 &&
		    !xmlcheck_xmlns_ok(p + a->v, a->ve - a->v, a->plain))
			return XC_NO;
	}
}

/* The end tag at P[I] == '<' of the element named OPEN: the offset after
 * its '>', or XC_NO. */
static size_t
xmlcheck_end(const unsigned char *p, size_t n, size_t i, const struct xc_name *open)
{
	size_t	e;

	if ((e = xmlcheck_name(p, n, i + 2, 0)) == XC_NO ||
	    e - i - 2 != open->n || memcmp(p + i + 2, open->p, open->n) != 0 ||
	    (e = xmlcheck_space(p, n, e)) >= n || p[e] != '>')
		return XC_NO;
	return e + 1;
}

/* The CDATA section at P[I] == '<', holding only characters the lexer
 * takes (CR where CR is set): where its "]]>" is, or NULL. */
static const unsigned char *
xmlcheck_cdata(const unsigned char *p, size_t n, size_t i, int cr)
{
	const unsigned char	*end;

	if (n - i < 12 || memcmp(p + i, "<![CDATA[", 9) != 0 ||
	    (end = memmem(p + i + 9, n - i - 9, "]]>", 3)) == NULL ||
	    !xmlcheck_chars(p, i + 9, (size_t)(end - p), cr))
		return NULL;
	return end;
}

/* The deepest a stanza may go here: the lexer fails on a start tag with
 * LIM->depth elements open, the stream included. */
static size_t
xmlcheck_depth(const struct xml_limits *lim)
{
	return lim->depth < XC_DEPTH ? lim->depth : XC_DEPTH;
}

size_t
xmlcheck_stanza(const void *data, size_t n, const struct xmlfilter *f)
{
	const unsigned char	*p = data, *end;
	struct xc_name		 open[XC_DEPTH];
	struct xc_tag		 t;
	size_t			 depth = 0, i = 0, max = xmlcheck_depth(f->lim);

	if (n < 2 || p[0] != '<')
		return 0;
	while (i < n) {
		if (p[i] != '<') {
			if ((i = xmlcheck_text(p, n, i)) == XC_NO)
				return 0;
			continue;
		}
		if (i + 1 >= n)
			return 0;
		if (p[i + 1] == '/') {
			if (depth == 0 ||
			    (i = xmlcheck_end(p, n, i, &open[depth - 1])) == XC_NO)
				return 0;
			if (--depth == 0)
				break;
			continue;
		}
		if (p[i + 1] == '!') {
			if (depth == 0 || (end = xmlcheck_cdata(p, n, i, 1)) == NULL)
				return 0;
			i = (size_t)(end - p) + 3;
			continue;
		}
		if (depth == max || (i = xmlcheck_tag(p, n, i, f->lim, &t)) == XC_NO)
			return 0;
		open[depth] = t.name;
		if (!t.empty)
			depth++;
		else if (depth == 0)
			break;
	}
	return depth == 0 && i <= xmlfilter_stanza_limit(f) ? i : 0;
}

/* ---- the canonical form, written from the bytes ---- */

struct xc_writer {
	struct buf		*b;
	const struct xml_limits	*lim;
	size_t			 tlen;	/* the text node so far, decoded */
	int			 gt;	/* a start tag waits for its '>' */
};

/* An open element: its name, and the default namespace inside it. */
struct xc_open {
	struct xc_name	 name;
	struct xc_name	 ns;
};

/* Mostly asked of a namespace and the one it was inherited from. */
static int
xmlcanon_eq(const struct xc_name *a, const struct xc_name *b)
{
	return a->n == b->n && (a->p == b->p || memcmp(a->p, b->p, a->n) == 0);
}

/* Decoded characters P[0..N) of a value (ATTR) or a text node, escaped as
 * serialize.c escapes them; -1 when the text node grows past its limit. */
static int
xmlcanon_chars(struct xc_writer *w, const void *p, size_t n, int attr)
{
	if (n == 0)
		return 0;
	if (!attr) {
		if ((w->tlen += n) > w->lim->text_bytes)
			return -1;
		if (w->gt) {
			ser_putc(w->b, '>');
			w->gt = 0;
		}
	}
	serialize_escape(w->b, p, n, attr);
	return 0;
}

/* The reference at P[I] as the character it stands for: the offset after
 * it, or XC_NO. */
static size_t
xmlcanon_ref(struct xc_writer *w, const unsigned char *p, size_t n, size_t i,
    int attr)
{
	char		u[4];
	uint32_t	cp;

	if ((i = xmlcheck_ref(p, n, i, &cp)) == XC_NO ||
	    xmlcanon_chars(w, u, utf8_encode(cp, u), attr) == -1)
		return XC_NO;
	return i;
}

/* Text from P[I] to the next tag (or N), written: the offset of that tag,
 * or XC_NO.  A CR is one expat would turn into a line feed. */
static size_t
xmlcanon_text(struct xc_writer *w, const unsigned char *p, size_t n, size_t i)
{
	size_t	run = i, k;

	while (i < n) {
		i += xmlscan_span(xmlcheck_tab, C_TEXT, p + i, n - i,
		    '<', '&', ']', ']', ']');
		if (i >= n || p[i] == '<')
			break;
		if (p[i] == ']' && n - i >= 3 && p[i + 1] == ']' && p[i + 2] == '>')
			return XC_NO;
		if (p[i] != '&') {
			if ((k = xmlcheck_char(p, n, i, 0)) == 0)
				return XC_NO;
			i += k;
			continue;
		}
		if (xmlcanon_chars(w, p + run, i - run, 0) == -1 ||
		    (i = xmlcanon_ref(w, p, n, i, 0)) == XC_NO)
			return XC_NO;
		run = i;
	}
	return xmlcanon_chars(w, p + run, i - run, 0) == -1 ? XC_NO : i;
}

/* A checked value P[I..E), written; -1 for a tab, line feed or CR, which
 * expat's attribute normalisation would turn into spaces. */
static int
xmlcanon_value(struct xc_writer *w, const unsigned char *p, size_t i, size_t e)
{
	size_t	run = i;

	while (i < e) {
		i += xmlscan_span(xmlcheck_tab, C_VAL, p + i, e - i,
		    '&', '&', '&', '&', '&');
		if (i >= e)
			break;
		if (p[i] == '\t' || p[i] == '\n' || p[i] == '\r')
			return -1;
		if (p[i] != '&') {
			i++;
			continue;
		}
		xmlcanon_chars(w, p + run, i - run, 1);
		i = xmlcanon_ref(w, p, e, i, 1);	/* checked: never XC_NO */
		run = i;
	}
	xmlcanon_chars(w, p + run, i - run, 1);
	return 0;
}

/* The start tag T inside PARENT, written up to its '>' or "/>"; SELF gets
 * its name and namespace. */
static int
xmlcanon_start(struct xc_writer *w, const unsigned char *p, const struct xc_tag *t,
    const struct xc_open *parent, struct xc_open *self)
{
	static const struct xc_name streams = {
		(const unsigned char *)XML_NS_STREAMS, sizeof(XML_NS_STREAMS) - 1
	};
	const struct xc_attr	*a, *decl = NULL;
	size_t			 k;

	if (w->gt) {
		ser_putc(w->b, '>');	/* the parent's content begins */
		w->gt = 0;
	}
	for (k = 0; k < t->n; k++)
		if (t->a[k].name.n == 5 && memcmp(t->a[k].name.p, "xmlns", 5) == 0)
			decl = &t->a[k];
	if (t->n - (decl != NULL) > w->lim->attrs)
		return -1;
	self->name = t->name;
	self->ns = parent->ns;
	if (decl != NULL) {
		self->ns.p = p + decl->v;
		self->ns.n = decl->ve - decl->v;
		/* one declaration is within any limit (namespaces >= 2) */
		if (memchr(self->ns.p, '\t', self->ns.n) ||
		    memchr(self->ns.p, '\n', self->ns.n) ||
		    memchr(self->ns.p, '\r', self->ns.n) ||
		    xmlcanon_eq(&self->ns, &streams))
			return -1;
	}
	ser_putc(w->b, '<');
	ser_put(w->b, t->name.p, t->name.n);
	if (!xmlcanon_eq(&self->ns, &parent->ns)) {
		SER_LIT(w->b, " xmlns='");
		serialize_escape(w->b, (const char *)self->ns.p, self->ns.n, 1);
		ser_putc(w->b, '\'');
	}
	for (a = t->a; a < t->a + t->n; a++) {
		if (a == decl)
			continue;
		ser_putc(w->b, ' ');
		ser_put(w->b, a->name.p, a->name.n);
		SER_LIT(w->b, "='");
		if (xmlcanon_value(w, p, a->v, a->ve) == -1)
			return -1;
		ser_putc(w->b, '\'');
	}
	return 0;
}

/* The end of the element SELF: "/>" if nothing was written inside it. */
static void
xmlcanon_end(struct xc_writer *w, const struct xc_open *self)
{
	if (w->gt) {
		SER_LIT(w->b, "/>");
		w->gt = 0;
		return;
	}
	SER_LIT(w->b, "</");
	ser_put(w->b, self->name.p, self->name.n);
	ser_putc(w->b, '>');
}

/* The stanza at P[0] == '<' in a stream whose default namespace is NS,
 * written: its length, or 0. */
static size_t
xmlcanon_run(struct xc_writer *w, const unsigned char *p, size_t n,
    const struct xmlfilter *f, const char *ns)
{
	struct xc_open		 open[XC_DEPTH + 1];	/* [0]: the stream */
	struct xc_tag		 t;
	const unsigned char	*end;
	size_t			 depth = 0, i = 0, max = xmlcheck_depth(f->lim);

	open[0].ns.p = (const unsigned char *)ns;
	open[0].ns.n = strlen(ns);
	if (n < 2 || p[0] != '<')
		return 0;
	while (i < n) {
		if (p[i] != '<') {
			if ((i = xmlcanon_text(w, p, n, i)) == XC_NO)
				return 0;
			continue;
		}
		if (i + 1 >= n)
			return 0;
		if (p[i + 1] == '/') {
			if (depth == 0 ||
			    (i = xmlcheck_end(p, n, i, &open[depth].name)) == XC_NO)
				return 0;
			xmlcanon_end(w, &open[depth]);
			w->tlen = 0;
			if (--depth == 0)
				break;
			continue;
		}
		if (p[i + 1] == '!') {
			if (depth == 0 || (end = xmlcheck_cdata(p, n, i, 0)) == NULL ||
			    xmlcanon_chars(w, p + i + 9, (size_t)(end - p) - i - 9, 0) == -1)
				return 0;
			i = (size_t)(end - p) + 3;
			continue;
		}
		if (depth == max || (i = xmlcheck_tag(p, n, i, f->lim, &t)) == XC_NO ||
		    xmlcanon_start(w, p, &t, &open[depth], &open[depth + 1]) == -1 ||
		    (depth == 0 && !xmlcanon_eq(&open[1].ns, &open[0].ns)))
			return 0;
		w->tlen = 0;
		if (!t.empty) {
			w->gt = 1;
			depth++;
		} else {
			SER_LIT(w->b, "/>");
			if (depth == 0)
				break;
		}
	}
	return depth == 0 && i <= xmlfilter_stanza_limit(f) ? i : 0;
}

size_t
xmlcanon_stanza(const void *data, size_t n, const struct xmlfilter *f,
    const char *ns, struct buf *b)
{
	struct xc_writer	w = { b, f->lim, 0, 0 };
	size_t			start = b->len, len;

	if ((len = xmlcanon_run(&w, data, n, f, ns)) == 0)
		b->len = start;
	ser_end(b);
	return len;
}
