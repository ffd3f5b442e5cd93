/*
 * xmlrepair.c: the repair stage in front of the strict lexer on what a backend
 * sends toward the client (xmlfilter_repair); see the comment below.
 */
#include <string.h>

#include "proxyd.h"
#include "xmlscan.h"

/*
 * Repair mode (what a backend sends, on its way to the client).  Old servers
 * send broken characters; killing the client's stream for them helps no one,
 * so before the strict lexer sees a byte:
 *  - invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart (as the
 *    WHATWG decoder does), and so do the characters XML 1.0 forbids (C0
 *    controls other than tab, LF and CR; U+FFFE; U+FFFF);
 *  - an '&' that does not begin one of the five predefined entity references
 *    or a character reference to a legal character, ended by ';' within 32
 *    bytes, becomes "&amp;" (so "AT&T", "&nbsp;" and "&#0;" show as written);
 *  - "]]>" in text becomes "]]&gt;";
 *  - comments and processing instructions (the XML declaration included:
 *    proxyd writes its own) are dropped.
 * Inside CDATA sections only characters are repaired.  Everything else (a
 * DOCTYPE, mismatched tags, limits) still ends the stream: that is not
 * repairable without guessing.
 */
enum { R_TEXT, R_REF, R_LT, R_CDATA, R_COMMENT, R_PI };

struct xmlrepair_out {
	unsigned char	*p;
	size_t		 len;
};

void
xmlfilter_repair_init(struct xmlrepair *r)
{
	memset(r, 0, sizeof(*r));
	r->lower = 0x80;
	r->upper = 0xbf;
}

static void
xmlrepair_emit(struct xmlrepair_out *o, const void *p, size_t n)
{
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

static int
xmlrepair_ref_ok(const unsigned char *s, size_t n)
{
	static const char *const named[] = { "lt", "gt", "amp", "quot", "apos" };
	unsigned long	v = 0;
	size_t		i, j, start;
	int		hex;

	for (j = 0; j < 5; j++)
		if (n == strlen(named[j]) && memcmp(s, named[j], n) == 0)
			return 1;
	if (n < 2 || s[0] != '#')
		return 0;
	hex = s[1] == 'x';
	start = hex ? 2 : 1;
	if (n == start)
		return 0;
	for (i = start; i < n; i++) {
		int	d;

		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (hex && s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (hex && s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			return 0;
		v = v * (hex ? 16 : 10) + (unsigned long)d;
		if (v > 0x10ffff)
			return 0;
	}
	return xmlscan_xml_char((uint32_t)v) && !(v >= 0xd800 && v <= 0xdfff);
}

/* A reference that turned out broken: its '&' is escaped, the rest kept. */
static void
xmlrepair_ref_broken(struct xmlrepair *r, struct xmlrepair_out *o)
{
	xmlrepair_emit(o, "&amp;", 5);
	xmlrepair_emit(o, r->look + 1, r->nlook - 1);
	r->nlook = 0;
	r->state = R_TEXT;
}

static void xmlrepair_char(struct xmlrepair *, struct xmlrepair_out *,
    const unsigned char *, size_t);

static void
xmlrepair_ref(struct xmlrepair *r, struct xmlrepair_out *o, const unsigned char *c,
    size_t n)
{
	if (n == 1 && c[0] == ';') {
		if (xmlrepair_ref_ok(r->look + 1, r->nlook - 1)) {
			xmlrepair_emit(o, r->look, r->nlook);
			xmlrepair_emit(o, ";", 1);
			r->nlook = 0;
			r->state = R_TEXT;
		} else {
			xmlrepair_ref_broken(r, o);
			xmlrepair_emit(o, ";", 1);
		}
		return;
	}
	if (n == 1 && xmlscan_is_refchar(c[0]) && r->nlook < REF_MAX) {
		r->look[r->nlook++] = c[0];
		return;
	}
	xmlrepair_ref_broken(r, o);
	xmlrepair_char(r, o, c, n);
}

/* After '<': hold "<!--", "<![CDATA[" and "<?" until they are certain. */
static void
xmlrepair_lt(struct xmlrepair *r, struct xmlrepair_out *o, const unsigned char *c,
    size_t n)
{
	static const char	cdata[] = "<![CDATA[", comment[] = "<!--";

	if (n == 1 && r->nlook < sizeof(cdata) - 1) {
		r->look[r->nlook++] = c[0];
		if (r->nlook == 2 && c[0] == '?') {
			r->state = R_PI;
			r->run = 0;
			r->nlook = 0;
			return;
		}
		if (r->nlook == sizeof(comment) - 1 &&
		    memcmp(r->look, comment, r->nlook) == 0) {
			r->state = R_COMMENT;
			r->run = 0;
			r->nlook = 0;
			return;
		}
		if (r->nlook == sizeof(cdata) - 1 &&
		    memcmp(r->look, cdata, r->nlook) == 0) {
			xmlrepair_emit(o, r->look, r->nlook);
			r->state = R_CDATA;
			r->run = 0;
			r->nlook = 0;
			return;
		}
		if (memcmp(r->look, cdata, r->nlook) == 0 ||
		    (r->nlook < sizeof(comment) - 1 &&
		    memcmp(r->look, comment, r->nlook) == 0))
			return;
		r->nlook--;	/* not ours: C is handled as text */
	}
	xmlrepair_emit(o, r->look, r->nlook);
	r->nlook = 0;
	r->state = R_TEXT;
	xmlrepair_char(r, o, c, n);
}

/* One character C (N bytes, valid and legal) in the current state. */
static void
xmlrepair_char(struct xmlrepair *r, struct xmlrepair_out *o, const unsigned char *c,
    size_t n)
{
	unsigned char	a = n == 1 ? c[0] : 0;

	switch (r->state) {
	case R_TEXT:
		if (a == '&' || a == '<') {
			r->state = a == '&' ? R_REF : R_LT;
			r->look[0] = a;
			r->nlook = 1;
			r->run = 0;
			return;
		}
		if (a == '>' && r->run >= 2)
			xmlrepair_emit(o, "&gt;", 4);
		else
			xmlrepair_emit(o, c, n);
		r->run = a == ']' ? (r->run < 2 ? r->run + 1 : 2) : 0;
		return;
	case R_REF:
		xmlrepair_ref(r, o, c, n);
		return;
	case R_LT:
		xmlrepair_lt(r, o, c, n);
		return;
	case R_CDATA:
		xmlrepair_emit(o, c, n);
		if (a == '>' && r->run >= 2)
			r->state = R_TEXT;
		r->run = a == ']' ? (r->run < 2 ? r->run + 1 : 2) : 0;
		return;
	case R_COMMENT:
		if (a == '>' && r->run >= 2)
			r->state = R_TEXT;
		r->run = a == '-' ? (r->run < 2 ? r->run + 1 : 2) : 0;
		return;
	case R_PI:
		if (a == '>' && r->run)
			r->state = R_TEXT;
		r->run = a == '?';
		return;
	}
}

static const unsigned char xmlrepair_fffd[3] = { 0xef, 0xbf, 0xbd };

/* The UTF-8 layer: bytes in, repaired characters to xmlrepair_char. */
static void
xmlrepair_byte(struct xmlrepair *r, struct xmlrepair_out *o, unsigned char b)
{
	if (r->need > 0) {
		if (b < r->lower || b > r->upper) {
			r->need = r->nu8 = 0;
			r->lower = 0x80;
			r->upper = 0xbf;
			xmlrepair_char(r, o, xmlrepair_fffd, 3);
			xmlrepair_byte(r, o, b);	/* at most once: need is 0 */
			return;
		}
		r->lower = 0x80;
		r->upper = 0xbf;
		r->u8[r->nu8++] = b;
		r->cp = (r->cp << 6) | (b & 0x3f);
		if (--r->need > 0)
			return;
		if (r->cp == 0xfffe || r->cp == 0xffff)
			xmlrepair_char(r, o, xmlrepair_fffd, 3);
		else
			xmlrepair_char(r, o, r->u8, r->nu8);
		r->nu8 = 0;
		return;
	}
	if (b < 0x80) {
		if (b < 0x20 && !xmlscan_is_ws(b))
			xmlrepair_char(r, o, xmlrepair_fffd, 3);
		else
			xmlrepair_char(r, o, &b, 1);
		return;
	}
	if (b >= 0xc2 && b <= 0xdf) {
		r->need = 1;
		r->cp = b & 0x1f;
	} else if (b >= 0xe0 && b <= 0xef) {
		r->lower = b == 0xe0 ? 0xa0 : 0x80;
		r->upper = b == 0xed ? 0x9f : 0xbf;
		r->need = 2;
		r->cp = b & 0x0f;
	} else if (b >= 0xf0 && b <= 0xf4) {
		r->lower = b == 0xf0 ? 0x90 : 0x80;
		r->upper = b == 0xf4 ? 0x8f : 0xbf;
		r->need = 3;
		r->cp = b & 0x07;
	} else {
		xmlrepair_char(r, o, xmlrepair_fffd, 3);
		return;
	}
	r->u8[0] = b;
	r->nu8 = 1;
}

/* Printable ASCII that R_TEXT passes as it is; a '<' before one of R_NAME
 * opens a tag (not "<!" or "<?") and passes too. */
enum { R_PLAIN = 1, R_NAME = 2 };

#define R_OF(c)	((c) < 0x20 || (c) >= 0x80 ? 0 :				\
	((c) != '&' && (c) != '<' && (c) != ']' ? R_PLAIN : 0) |		\
	(((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') ||		\
	    (c) == '/' || (c) == '_' || (c) == ':' ? R_NAME : 0))

static const uint8_t xmlrepair_tab[256] = {
	CLASS_256(R_OF)
};

/*
 * How many bytes from P on R_TEXT (CDATA: R_CDATA) would copy unchanged:
 * plain ASCII, white space, whole valid characters and '<' opening a tag.
 * The caller then clears the "]]" count (none of these is ']').
 */
static size_t
xmlrepair_plain(const struct xmlrepair *r, const unsigned char *p, size_t n,
    int cdata)
{
	size_t	j = 0, k;

	if (!cdata && n > 0 && p[0] == '>' && r->run >= 2)
		return 0;			/* "]]>": the slow path escapes it */
	for (;;) {
		if (cdata)
			j += xmlscan_span(xmlscan_plain_tab, P_CDATA, p + j,
			    n - j, ']', '>', '>', '>', '>');
		else
			j += xmlscan_span(xmlrepair_tab, R_PLAIN, p + j, n - j,
			    '&', '<', ']', ']', ']');
		if (j == n)
			return j;
		if (p[j] >= 0x80)
			k = xmlscan_utf8_len(p + j, n - j);
		else if (p[j] == '<' && !cdata)
			k = j + 1 < n && (xmlrepair_tab[p[j + 1]] & R_NAME) ? 2 : 0;
		else
			k = xmlscan_is_ws(p[j]);
		if (k == 0)
			return j;
		j += k;
	}
}

size_t
xmlfilter_repair(struct xmlrepair *r, const unsigned char *in, size_t n,
    unsigned char *out, size_t cap, size_t *taken)
{
	struct xmlrepair_out	o = { out, 0 };
	size_t			i = 0, j, room;

	while (i < n && cap - o.len >= XML_REPAIR_SLACK) {
		/* plain ASCII in text or CDATA passes as it is */
		if (r->need == 0 && (r->state == R_TEXT || r->state == R_CDATA)) {
			room = cap - o.len - XML_REPAIR_SLACK;
			room = n - i < room ? n - i : room;
			j = i + xmlrepair_plain(r, in + i, room, r->state == R_CDATA);
			if (j > i) {
				xmlrepair_emit(&o, in + i, j - i);
				r->run = 0;
				i = j;
				continue;
			}
		}
		xmlrepair_byte(r, &o, in[i++]);
	}
	*taken = i;
	return o.len;
}
