/*
 * xmlcheck.c: proves a whole stanza well-formed as the bytes it is, so that
 * xmlstream.c's pass mode can hand it on without expat and the serializer.
 *
 * The lexer has already judged every byte of it: valid UTF-8 and XML
 * characters, no DOCTYPE, comment or processing instruction, CDATA sections
 * closed, every limit, and where the stanza ends.  What the lexer leaves to
 * expat is checked here: tag and attribute syntax, end tags matching their
 * start tags, attributes unique, references, "]]>" in text, namespaces.
 * Only the common case is taken: ASCII names without a prefix (xml: on an
 * attribute aside), no namespace declaration but a default one, at most
 * XC_DEPTH levels and XC_ATTRS attributes a tag.  Such a stanza means the same
 * thing in every stream whose default namespace is the same, so it may go
 * from the backend's stream to the client's as it is.  Anything else answers
 * 0 and takes the parse path, which gives the exact error if there is one.
 */
#include <string.h>

#include "proxyd.h"
#include "xmlscan.h"

#define XC_DEPTH	64
#define XC_ATTRS	16
#define XC_NO		((size_t)-1)

enum { C_TEXT = 1, C_APOS = 2, C_QUOT = 4, C_START = 8, C_NAME = 16 };

#define C_OF(c)	(((c) < 0x20 || (c) >= 0x80 ? 0 :				\
	((c) != '<' && (c) != '&' && (c) != ']' ? C_TEXT : 0) |		\
	((c) != '<' && (c) != '&' && (c) != '\'' ? C_APOS : 0) |	\
	((c) != '<' && (c) != '&' && (c) != '"' ? C_QUOT : 0)) |	\
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
 * predefined entities or a character reference to an XML character. */
static size_t
xmlcheck_ref(const unsigned char *p, size_t n, size_t i)
{
	static const char *const named[] = { "lt;", "gt;", "amp;", "quot;", "apos;" };
	uint32_t	cp = 0;
	size_t		j, k, len;
	int		hex;

	for (k = 0; k < 5; k++) {
		len = strlen(named[k]);
		if (n - i - 1 >= len && memcmp(p + i + 1, named[k], len) == 0)
			return i + 1 + len;
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
	if (k == j || k >= n || p[k] != ';' || cp == 0 || !xmlscan_xml_char(cp) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return XC_NO;
	return k + 1;
}

/* Text from P[I]: the offset of the next '<' (or N), or XC_NO. */
static size_t
xmlcheck_text(const unsigned char *p, size_t n, size_t i)
{
	while (i < n) {
		i += xmlscan_span(xmlcheck_tab, C_TEXT, p + i, n - i,
		    '<', '&', ']', ']', ']');
		if (i >= n || p[i] == '<')
			break;
		if (p[i] == '&') {
			if ((i = xmlcheck_ref(p, n, i)) == XC_NO)
				return XC_NO;
		} else if (p[i] == ']' && n - i >= 3 && p[i + 1] == ']' &&
		    p[i + 2] == '>')
			return XC_NO;
		else
			i++;	/* ']', or a character the lexer has judged */
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

/* The quoted value at P[I]: the offset after its closing quote, or XC_NO;
 * *PLAIN is cleared when it holds a reference. */
static size_t
xmlcheck_value(const unsigned char *p, size_t n, size_t i, int *plain)
{
	unsigned char	q;
	uint8_t		m;

	if (i >= n || (p[i] != '\'' && p[i] != '"'))
		return XC_NO;
	q = p[i++];
	m = q == '\'' ? C_APOS : C_QUOT;
	*plain = 1;
	while (i < n) {
		i += q == '\'' ?
		    xmlscan_span(xmlcheck_tab, m, p + i, n - i, '\'', '<', '&', '&', '&') :
		    xmlscan_span(xmlcheck_tab, m, p + i, n - i, '"', '<', '&', '&', '&');
		if (i >= n || p[i] == '<')
			return XC_NO;
		if (p[i] == q)
			return i + 1;
		if (p[i] == '&') {
			*plain = 0;
			if ((i = xmlcheck_ref(p, n, i)) == XC_NO)
				return XC_NO;
		} else
			i++;
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

/* The attributes and the end of the start tag whose name ends at P[I]:
 * the offset after its '>', or XC_NO; *EMPTY is set for "/>". */
static size_t
xmlcheck_attrs(const unsigned char *p, size_t n, size_t i, int *empty)
{
	struct xc_name	seen[XC_ATTRS];
	size_t		nseen = 0, j, k, e;
	int		plain;

	for (;;) {
		j = xmlcheck_space(p, n, i);
		if (j >= n)
			return XC_NO;
		if (p[j] == '>' || p[j] == '/') {
			*empty = p[j] == '/';
			if (*empty && (j + 1 >= n || p[j + 1] != '>'))
				return XC_NO;
			return j + 1 + (size_t)*empty;
		}
		if (j == i || nseen == XC_ATTRS ||
		    (e = xmlcheck_name(p, n, j, 1)) == XC_NO)
			return XC_NO;
		for (k = 0; k < nseen; k++)
			if (seen[k].n == e - j && memcmp(seen[k].p, p + j, e - j) == 0)
				return XC_NO;
		seen[nseen].p = p + j;
		seen[nseen++].n = e - j;
		k = xmlcheck_space(p, n, e);
		if (k >= n || p[k] != '=')
			return XC_NO;
		k = xmlcheck_space(p, n, k + 1);
		if ((i = xmlcheck_value(p, n, k, &plain)) == XC_NO)
			return XC_NO;
		if (e - j == 5 && memcmp(p + j, "xmlns", 5) == 0 &&
		    !xmlcheck_xmlns_ok(p + k + 1, i - k - 2, plain))
			return XC_NO;
	}
}

int
xmlcheck_stanza(const void *data, size_t n)
{
	const unsigned char	*p = data;
	struct xc_name		 open[XC_DEPTH];
	size_t			 depth = 0, i, e;
	int			 empty;

	if ((i = xmlcheck_space(p, n, 0)) >= n || p[i] != '<')
		return 0;
	while (i < n) {
		if (p[i] != '<') {
			if (depth == 0 || (i = xmlcheck_text(p, n, i)) == XC_NO)
				return 0;
			continue;
		}
		if (i + 1 >= n)
			return 0;
		if (p[i + 1] == '/') {
			if (depth == 0 ||
			    (e = xmlcheck_name(p, n, i + 2, 0)) == XC_NO ||
			    e - i - 2 != open[depth - 1].n ||
			    memcmp(p + i + 2, open[depth - 1].p, e - i - 2) != 0 ||
			    (e = xmlcheck_space(p, n, e)) >= n || p[e] != '>')
				return 0;
			i = e + 1;
			if (--depth == 0)
				break;
			continue;
		}
		if (p[i + 1] == '!') {
			const unsigned char	*end;

			if (depth == 0 || n - i < 12 || memcmp(p + i, "<![CDATA[", 9) != 0 ||
			    (end = memmem(p + i + 9, n - i - 9, "]]>", 3)) == NULL)
				return 0;
			i = (size_t)(end - p) + 3;
			continue;
		}
		if (depth == XC_DEPTH || (e = xmlcheck_name(p, n, i + 1, 0)) == XC_NO)
			return 0;
		open[depth].p = p + i + 1;
		open[depth].n = e - i - 1;
		if ((i = xmlcheck_attrs(p, n, e, &empty)) == XC_NO)
			return 0;
		if (!empty)
			depth++;
		else if (depth == 0)
			break;
	}
	return depth == 0 && i == n;
}
