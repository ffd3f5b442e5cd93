/*
 * xmlfilter.c: RFC 6120 restricted XML before expat sees a byte: the limits,
 * the stream error conditions and a byte lexer (the repair stage for what a
 * backend sends is xmlrepair.c).
 *
 * The lexer runs on every byte a peer sends.  It validates UTF-8 (shortest
 * form, no surrogates, nothing above U+10FFFF) and XML 1.0 characters, follows
 * the markup (tags, quoted values, references, CDATA), counts the depth and
 * every limit as bytes arrive, and refuses what RFC 6120 section 11 forbids
 * (DOCTYPE and markup declarations, comments, processing instructions) the
 * moment it sees their first bytes, so that no DTD ever reaches expat.  It
 * also tells xmlstream.c where markup ends: expat is only ever given whole
 * tags, so it never re-scans a partial token (the quadratic case expat 2.6
 * added "reparse deferral" for, which a streaming parser must turn off).
 * Expat stays the judge of everything else (names, tag matching, attribute
 * syntax, namespaces, references); the lexer only needs to be exact about
 * where a well-formed tag ends.
 *
 * Speed: the bytes of well-formed content go through a fast lane
 * (xmlfilter_fast) that finds the next byte a state acts on 16 bytes at a
 * time (SSE2; a table per byte without it), takes whole valid UTF-8
 * characters at once and handles tags, values and references inline;
 * anything else, and every limit's last byte, takes the byte-at-a-time
 * path, which stays the reference: both leave the same state after every
 * byte.
 */
#include <stdio.h>
#include <string.h>

#include "proxyd.h"
#include "xmlscan.h"

static const char *const xmlfilter_conds[XML_COND_COUNT] = {
	[XML_COND_NONE] = "",
	[XML_COND_BAD_FORMAT] = "bad-format",
	[XML_COND_BAD_NAMESPACE_PREFIX] = "bad-namespace-prefix",
	[XML_COND_CONFLICT] = "conflict",
	[XML_COND_CONNECTION_TIMEOUT] = "connection-timeout",
	[XML_COND_HOST_GONE] = "host-gone",
	[XML_COND_HOST_UNKNOWN] = "host-unknown",
	[XML_COND_IMPROPER_ADDRESSING] = "improper-addressing",
	[XML_COND_INTERNAL_SERVER_ERROR] = "internal-server-error",
	[XML_COND_INVALID_FROM] = "invalid-from",
	[XML_COND_INVALID_NAMESPACE] = "invalid-namespace",
	[XML_COND_INVALID_XML] = "invalid-xml",
	[XML_COND_NOT_AUTHORIZED] = "not-authorized",
	[XML_COND_NOT_WELL_FORMED] = "not-well-formed",
	[XML_COND_POLICY_VIOLATION] = "policy-violation",
	[XML_COND_REMOTE_CONNECTION_FAILED] = "remote-connection-failed",
	[XML_COND_RESET] = "reset",
	[XML_COND_RESOURCE_CONSTRAINT] = "resource-constraint",
	[XML_COND_RESTRICTED_XML] = "restricted-xml",
	[XML_COND_SEE_OTHER_HOST] = "see-other-host",
	[XML_COND_SYSTEM_SHUTDOWN] = "system-shutdown",
	[XML_COND_UNDEFINED_CONDITION] = "undefined-condition",
	[XML_COND_UNSUPPORTED_ENCODING] = "unsupported-encoding",
	[XML_COND_UNSUPPORTED_FEATURE] = "unsupported-feature",
	[XML_COND_UNSUPPORTED_STANZA_TYPE] = "unsupported-stanza-type",
	[XML_COND_UNSUPPORTED_VERSION] = "unsupported-version",
};

const char *
xmlfilter_cond_name(enum xml_cond c)
{
	if ((unsigned)c >= XML_COND_COUNT)
		return "undefined-condition";
	return xmlfilter_conds[c];
}

enum xml_cond
xmlfilter_cond_parse(const char *s)
{
	int	c;

	for (c = 1; c < XML_COND_COUNT; c++)
		if (strcmp(s, xmlfilter_conds[c]) == 0)
			return c;
	return XML_COND_NONE;
}

void
xmlfilter_limits_default(struct xml_limits *l)
{
	/* The stanza sizes are Prosody's; the rest leave room for every XEP
	 * in use (a JID is at most 3071 bytes) and nothing for abuse. */
	l->stanza_bytes = 262144;
	l->stanza_bytes_preauth = 10000;
	l->depth = 32;
	l->attrs = 64;
	l->attr_bytes = 8192;
	l->text_bytes = 262144;
	l->ns_decls = 16;
	l->buffer_bytes = 2 * 1024 * 1024;
	l->buffer_bytes_preauth = 128 * 1024;
}

static int
xmlfilter_limit_range(size_t v, size_t min, size_t max, const char *name,
    char *err, size_t errlen)
{
	if (v >= min && v <= max)
		return 0;
	snprintf(err, errlen, "%s: %zu is out of range (%zu-%zu)", name, v, min, max);
	return -1;
}

int
xmlfilter_limits_check(const struct xml_limits *l, char *err, size_t errlen)
{
	const size_t	big = (size_t)1 << 30;

	if (xmlfilter_limit_range(l->stanza_bytes, 1024, big, "stanza_bytes",
	    err, errlen) == -1 ||
	    xmlfilter_limit_range(l->stanza_bytes_preauth, 512, big,
	    "stanza_bytes_preauth", err, errlen) == -1 ||
	    xmlfilter_limit_range(l->depth, 2, XML_LIMIT_MAX_DEPTH, "depth",
	    err, errlen) == -1 ||
	    xmlfilter_limit_range(l->attrs, 4, 100000, "attributes",
	    err, errlen) == -1 ||
	    xmlfilter_limit_range(l->attr_bytes, 3072, big, "attribute_bytes",
	    err, errlen) == -1 ||
	    xmlfilter_limit_range(l->text_bytes, 1024, big, "text_bytes",
	    err, errlen) == -1 ||
	    xmlfilter_limit_range(l->ns_decls, 2, 10000, "namespaces",
	    err, errlen) == -1 ||
	    xmlfilter_limit_range(l->buffer_bytes, 16384, (size_t)4 << 30,
	    "buffer_bytes", err, errlen) == -1 ||
	    xmlfilter_limit_range(l->buffer_bytes_preauth, 16384, (size_t)4 << 30,
	    "buffer_bytes_preauth", err, errlen) == -1)
		return -1;
	return 0;
}

/* ---- the lexer ---- */

enum {
	S_TEXT,		/* content, or the prolog/epilog at depth 0 */
	S_REF,		/* after '&' in content */
	S_LT,		/* after '<' */
	S_TAG,		/* in a start or end tag */
	S_QUOTE,	/* in a quoted attribute value */
	S_BANG,		/* after "<!" */
	S_CDATA_OPEN,	/* matching "[CDATA[" */
	S_CDATA,	/* in a CDATA section */
	S_PI_TARGET,	/* matching "xml" after "<?" at the very start */
	S_PI		/* in the XML declaration */
};

void
xmlfilter_init(struct xmlfilter *f, const struct xml_limits *lim, int authed)
{
	memset(f, 0, sizeof(*f));
	f->lim = lim;
	f->authed = authed;
	f->lower = 0x80;
	f->upper = 0xbf;
}

int
xmlfilter_in_markup(const struct xmlfilter *f)
{
	return f->state != S_TEXT && f->state != S_REF && f->state != S_CDATA;
}

int
xmlfilter_idle(const struct xmlfilter *f)
{
	return f->state == S_TEXT && !f->item && f->need == 0 &&
	    (f->depth == 1 || f->closed || (f->depth == 0 && f->pos == 0));
}

static int
xmlfilter_fail_limit(struct xmlfilter *f, enum xml_cond c, const char *what,
    size_t limit)
{
	f->cond = c;
	f->what = what;
	f->limit = limit;
	return XF_ERROR;
}

static int
xmlfilter_fail(struct xmlfilter *f, enum xml_cond c, const char *what)
{
	return xmlfilter_fail_limit(f, c, what, 0);
}

/*
 * One byte of the WHATWG UTF-8 decoder, which accepts exactly the shortest
 * forms of U+0000..U+10FFFF minus the surrogates.  Returns -1 on a bad byte,
 * 0 inside a sequence, 1 when a character ends (its code point in f->cp).
 */
static int
xmlfilter_utf8(struct xmlfilter *f, unsigned char b)
{
	if (f->need == 0) {
		if (b < 0x80) {
			f->cp = b;
			return 1;
		}
		if (b >= 0xc2 && b <= 0xdf) {
			f->need = 1;
			f->cp = b & 0x1f;
		} else if (b >= 0xe0 && b <= 0xef) {
			if (b == 0xe0)
				f->lower = 0xa0;
			if (b == 0xed)
				f->upper = 0x9f;
			f->need = 2;
			f->cp = b & 0x0f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			if (b == 0xf0)
				f->lower = 0x90;
			if (b == 0xf4)
				f->upper = 0x8f;
			f->need = 3;
			f->cp = b & 0x07;
		} else
			return -1;
		return 0;
	}
	if (b < f->lower || b > f->upper)
		return -1;
	f->lower = 0x80;
	f->upper = 0xbf;
	f->cp = (f->cp << 6) | (b & 0x3f);
	return --f->need == 0 ? 1 : 0;
}

/* A bad first byte that says "UTF-16 or UTF-32" gets its own condition. */
static int
xmlfilter_bad_char(struct xmlfilter *f, unsigned char b)
{
	if (f->pos < 4 && (b == 0x00 || b == 0xfe || b == 0xff))
		return xmlfilter_fail(f, XML_COND_UNSUPPORTED_ENCODING,
		    "not UTF-8 (a UTF-16 or UTF-32 byte order mark or NUL)");
	if (f->need > 0 || b >= 0x80)
		return xmlfilter_fail(f, XML_COND_NOT_WELL_FORMED,
		    "invalid UTF-8 (bad, overlong, surrogate or above U+10FFFF)");
	return xmlfilter_fail(f, XML_COND_NOT_WELL_FORMED,
	    "a character XML does not allow (NUL or a control character)");
}

size_t
xmlfilter_stanza_limit(const struct xmlfilter *f)
{
	return f->authed ? f->lim->stanza_bytes : f->lim->stanza_bytes_preauth;
}

/*
 * N bytes of white space between stanzas and whole stanzas that xmlcheck.c
 * has proved well-formed and within every limit, taken as this lexer would
 * take them: between stanzas before and after, so only the position moves.
 */
void
xmlfilter_skip(struct xmlfilter *f, size_t n)
{
	f->pos += n;
}

static void
xmlfilter_item_begin(struct xmlfilter *f)
{
	if (!f->item) {
		f->item = 1;
		f->item_bytes = 1;
	}
}

static int
xmlfilter_item_end(struct xmlfilter *f)
{
	f->item = 0;
	f->item_bytes = 0;
	return XF_ITEM;
}

static int
xmlfilter_outside_text(struct xmlfilter *f)
{
	if (f->closed)
		return xmlfilter_fail(f, XML_COND_NOT_WELL_FORMED,
		    "data after the end of the stream");
	if (!f->opened)
		return xmlfilter_fail(f, XML_COND_NOT_WELL_FORMED,
		    "text before the stream header");
	return xmlfilter_fail(f, XML_COND_NOT_WELL_FORMED,
	    "text at stream level (only white space may stand between stanzas)");
}

/* CHAR: 1 when B ends a character (code point in f->cp), 0 inside one. */
static int
xmlfilter_text(struct xmlfilter *f, unsigned char b, int chr)
{
	if (b == '<') {
		f->mark = f->pos;
		f->state = S_LT;
		if (f->depth <= 1 && !f->closed)
			xmlfilter_item_begin(f);
		return XF_MORE;
	}
	if (f->depth >= 2) {
		if (b == '&') {
			f->state = S_REF;
			f->run = 1;
		}
		return XF_MORE;
	}
	if (xmlscan_is_ws(b) || !chr)
		return XF_MORE;
	/* A UTF-8 byte order mark may open a document. */
	if (f->cp == 0xfeff && f->pos == 2 && !f->opened) {
		f->bom = 1;
		return XF_MORE;
	}
	return xmlfilter_outside_text(f);
}

static int
xmlfilter_lt(struct xmlfilter *f, unsigned char b)
{
	if (b == '!') {
		f->state = S_BANG;
		return XF_MORE;
	}
	if (b == '?') {
		if (f->opened || f->mark != (f->bom ? 3u : 0u))
			return xmlfilter_fail(f, XML_COND_RESTRICTED_XML,
			    "a processing instruction");
		f->state = S_PI_TARGET;
		f->sub = 0;
		return XF_MORE;
	}
	if (f->closed)
		return xmlfilter_fail(f, XML_COND_NOT_WELL_FORMED,
		    "data after the end of the stream");
	f->state = S_TAG;
	f->end_tag = b == '/';
	f->slash = 0;
	f->nattr = 0;
	if (f->end_tag)
		return XF_MORE;
	if (f->depth > f->lim->depth)
		return xmlfilter_fail_limit(f, XML_COND_POLICY_VIOLATION,
		    "elements nested too deep", f->lim->depth);
	return XF_MORE;
}

static int
xmlfilter_tag_end(struct xmlfilter *f)
{
	f->state = S_TEXT;
	if (f->end_tag) {
		if (f->depth == 0)	/* expat names the error */
			return XF_MARKUP;
		if (--f->depth == 0)
			f->closed = 1;
		return f->depth <= 1 ? xmlfilter_item_end(f) : XF_MARKUP;
	}
	if (f->slash) {
		if (f->depth == 0)
			f->opened = f->closed = 1;
		return f->depth <= 1 ? xmlfilter_item_end(f) : XF_MARKUP;
	}
	if (++f->depth == 1) {
		f->opened = 1;
		return xmlfilter_item_end(f);
	}
	return XF_MARKUP;
}

static int
xmlfilter_tag(struct xmlfilter *f, unsigned char b)
{
	switch (b) {
	case '>':
		return xmlfilter_tag_end(f);
	case '\'':
	case '"':
		f->state = S_QUOTE;
		f->quote = b;
		f->run = 0;
		break;
	case '=':
		if (++f->nattr > f->lim->attrs + f->lim->ns_decls)
			return xmlfilter_fail_limit(f, XML_COND_POLICY_VIOLATION,
			    "too many attributes",
			    f->lim->attrs + f->lim->ns_decls);
		break;
	}
	f->slash = b == '/';
	return XF_MORE;
}

static int
xmlfilter_quote(struct xmlfilter *f, unsigned char b)
{
	if (b == f->quote) {
		f->state = S_TAG;
		f->slash = 0;
	} else if (++f->run > f->lim->attr_bytes)
		return xmlfilter_fail_limit(f, XML_COND_POLICY_VIOLATION,
		    "an attribute value too long", f->lim->attr_bytes);
	return XF_MORE;
}

static int
xmlfilter_bang(struct xmlfilter *f, unsigned char b)
{
	if (b == '-')
		return xmlfilter_fail(f, XML_COND_RESTRICTED_XML, "a comment");
	if (b >= 'A' && b <= 'Z')
		return xmlfilter_fail(f, XML_COND_RESTRICTED_XML,
		    "a DOCTYPE or markup declaration");
	if (b != '[')
		return xmlfilter_fail(f, XML_COND_NOT_WELL_FORMED, "bad markup after <!");
	if (f->depth < 2)
		return xmlfilter_fail(f, XML_COND_NOT_WELL_FORMED,
		    "a CDATA section at stream level");
	f->state = S_CDATA_OPEN;
	f->sub = 0;
	return XF_MORE;
}

static int
xmlfilter_step(struct xmlfilter *f, unsigned char b, int chr)
{
	static const char	cdata[] = "CDATA[";

	switch (f->state) {
	case S_TEXT:
		return xmlfilter_text(f, b, chr);
	case S_REF:
		if (b == ';') {
			f->state = S_TEXT;
		} else if (!xmlscan_is_refchar(b)) {
			f->state = S_TEXT;	/* expat judges the broken reference */
			return xmlfilter_text(f, b, chr);
		} else if (++f->run > REF_MAX)
			return xmlfilter_fail_limit(f, XML_COND_NOT_WELL_FORMED,
			    "a reference too long", REF_MAX);
		return XF_MORE;
	case S_LT:
		return xmlfilter_lt(f, b);
	case S_TAG:
		return xmlfilter_tag(f, b);
	case S_QUOTE:
		return xmlfilter_quote(f, b);
	case S_BANG:
		return xmlfilter_bang(f, b);
	case S_CDATA_OPEN:
		if (b != (unsigned char)cdata[f->sub])
			return xmlfilter_fail(f, XML_COND_NOT_WELL_FORMED,
			    "bad markup after <![");
		if (++f->sub < sizeof(cdata) - 1)
			return XF_MORE;
		f->state = S_CDATA;
		f->run = 0;
		return XF_MARKUP;
	case S_CDATA:
		if (b == ']')
			f->run = f->run < 2 ? f->run + 1 : 2;
		else {
			if (b == '>' && f->run == 2)
				f->state = S_TEXT;
			f->run = 0;
		}
		return XF_MORE;
	case S_PI_TARGET:
		if (f->sub < 3 ? b != (unsigned char)"xml"[f->sub] : !xmlscan_is_ws(b))
			return xmlfilter_fail(f, XML_COND_RESTRICTED_XML,
			    "a processing instruction");
		if (++f->sub == 4) {
			f->state = S_PI;
			f->run = 0;
		}
		return XF_MORE;
	case S_PI:
		if (b == '>' && f->run) {
			f->state = S_TEXT;
			return XF_MARKUP;
		}
		f->run = b == '?';
		return XF_MORE;
	}
	return xmlfilter_fail(f, XML_COND_INTERNAL_SERVER_ERROR, "lexer state");
}

/* Plain ASCII spans of class M (special bytes A..E) and the whole non-ASCII
 * characters between them, which every plain state takes as it takes a
 * plain byte. */
static XMLSCAN_INLINE size_t
xmlfilter_plain_run(uint8_t m, const unsigned char *p, size_t n,
    char a, char b, char c, char d, char e)
{
	size_t	j = 0, k;

	for (;;) {
		j += xmlscan_span(xmlscan_plain_tab, m, p + j, n - j,
		    a, b, c, d, e);
		if (j == n || p[j] < 0x80 ||
		    (k = xmlscan_utf8_len(p + j, n - j)) == 0)
			return j;
		j += k;
	}
}

/*
 * The fast lane: the bytes of well-formed content (text, references, CDATA,
 * tags and attribute values, white space and whole UTF-8 characters
 * included) that the slow path would take without an error, in one loop.
 * It stops short of anything else (stream level, "<!", "<?", a broken
 * reference, a bad or cut character, a limit), which the slow path then
 * takes one byte at a time.
 * pos and item_bytes are brought up to date (xmlfilter_lane_sync) before
 * anything that reads them, and the bytes the lane may take end where the
 * stanza limit would be passed.
 */
static size_t
xmlfilter_lane_sync(struct xmlfilter *f, size_t j, size_t *done, size_t n,
    size_t limit)
{
	size_t	room;

	f->pos += j - *done;
	if (f->item)
		f->item_bytes += j - *done;
	*done = j;
	if (!f->item)
		return n;
	room = limit - f->item_bytes;
	return n - j < room ? n : j + room;
}

static int
xmlfilter_lane_ws(unsigned char b)
{
	return b == '\n' || b == '\t' || b == '\r';
}

/* After '<': a start or end tag opens as xmlfilter_lt would open it. */
static int
xmlfilter_lane_lt(struct xmlfilter *f, unsigned char b)
{
	if (b < 0x20 || b >= 0x80 || b == '!' || b == '?' || f->closed ||
	    (b != '/' && f->depth > f->lim->depth))
		return 0;
	f->state = S_TAG;
	f->end_tag = b == '/';
	f->slash = 0;
	f->nattr = 0;
	return 1;
}

/* One byte of CDATA after its plain span: 1 if the lane took it. */
static int
xmlfilter_lane_cdata(struct xmlfilter *f, unsigned char b)
{
	if (b == ']') {
		f->run = f->run < 2 ? f->run + 1 : 2;
		return 1;
	}
	if (b != '>' && !xmlfilter_lane_ws(b))
		return 0;
	if (b == '>' && f->run == 2)
		f->state = S_TEXT;
	f->run = 0;
	return 1;
}

/* One byte of a reference: 1 if the lane took it (the slow path judges
 * the end of a broken one and the length limit). */
static int
xmlfilter_lane_ref(struct xmlfilter *f, unsigned char b)
{
	if (b == ';') {
		f->state = S_TEXT;
		return 1;
	}
	if (!xmlscan_is_refchar(b) || f->run >= REF_MAX)
		return 0;
	f->run++;
	return 1;
}

/* One byte in a tag after its plain span: 1 if the lane took it. */
static int
xmlfilter_lane_tag(struct xmlfilter *f, unsigned char b)
{
	switch (b) {
	case '\'':
	case '"':
		f->state = S_QUOTE;
		f->quote = b;
		f->run = 0;
		f->slash = 0;
		return 1;
	case '=':
		if (f->nattr >= f->lim->attrs + f->lim->ns_decls)
			return 0;
		f->nattr++;
		f->slash = 0;
		return 1;
	case '/':
		f->slash = 1;
		return 1;
	}
	if (!xmlfilter_lane_ws(b))
		return 0;
	f->slash = 0;
	return 1;
}

/* An attribute value's span, within its limit; 1 if it ended. */
static size_t
xmlfilter_lane_quote(struct xmlfilter *f, const unsigned char *p, size_t n,
    int *ended)
{
	size_t	j = 0, k, room;

	for (;;) {
		room = f->lim->attr_bytes - f->run;
		k = n - j < room ? n - j : room;
		if (f->quote == '\'')
			k = xmlfilter_plain_run(P_APOS, p + j, k,
			    '\'', '\'', '\'', '\'', '\'');
		else
			k = xmlfilter_plain_run(P_QUOT, p + j, k,
			    '"', '"', '"', '"', '"');
		j += k;
		f->run += (uint32_t)k;
		if (j == n)
			break;
		if (p[j] == f->quote) {
			*ended = 1;
			return j + 1;
		}
		if (!xmlfilter_lane_ws(p[j]) || f->run == f->lim->attr_bytes)
			break;
		f->run++;
		j++;
	}
	*ended = 0;
	return j;
}

static size_t
xmlfilter_fast(struct xmlfilter *f, const unsigned char *p, size_t n,
    size_t limit, int *event)
{
	size_t	j = 0, done = 0, end, k;
	int	ev, ended;

	*event = XF_MORE;
	end = xmlfilter_lane_sync(f, 0, &done, n, limit);
	for (;;) {
		switch (f->state) {
		case S_TEXT:
			if (f->depth < 2)
				goto out;
			j += xmlfilter_plain_run(P_TEXT, p + j, end - j,
			    '<', '&', '&', '&', '&');
			if (j == end)
				goto out;
			if (xmlfilter_lane_ws(p[j])) {
				j++;
				break;
			}
			if (p[j] == '&') {
				f->state = S_REF;
				f->run = 1;
				j++;
				break;
			}
			if (p[j] != '<')
				goto out;
			f->mark = f->pos + (j - done);
			f->state = S_LT;
			j++;
			/* FALLTHROUGH */
		case S_LT:
			if (j == end || !xmlfilter_lane_lt(f, p[j]))
				goto out;
			j++;
			/* FALLTHROUGH */
		case S_TAG:
			/* most tags end right after a value or a '/' */
			if (j < end && ((xmlscan_plain_tab[p[j]] & P_TAG) ||
			    p[j] >= 0x80) &&
			    (k = xmlfilter_plain_run(P_TAG, p + j, end - j,
			    '>', '\'', '"', '=', '/')) > 0) {
				j += k;
				f->slash = 0;
			}
			if (j == end)
				goto out;
			if (p[j] != '>') {
				if (!xmlfilter_lane_tag(f, p[j]))
					goto out;
				j++;
				break;
			}
			end = xmlfilter_lane_sync(f, ++j, &done, n, limit);
			ev = xmlfilter_tag_end(f);
			if (ev == XF_ITEM || (ev == XF_MARKUP && f->want_markup)) {
				*event = ev;
				return j;
			}
			end = xmlfilter_lane_sync(f, j, &done, n, limit);
			break;
		case S_CDATA:
			if ((k = xmlfilter_plain_run(P_CDATA, p + j, end - j,
			    ']', '>', '>', '>', '>')) > 0) {
				j += k;
				f->run = 0;
			}
			if (j == end || !xmlfilter_lane_cdata(f, p[j]))
				goto out;
			j++;
			break;
		case S_REF:
			if (j == end || !xmlfilter_lane_ref(f, p[j]))
				goto out;
			j++;
			break;
		case S_QUOTE:
			j += xmlfilter_lane_quote(f, p + j, end - j, &ended);
			if (!ended)
				goto out;
			f->state = S_TAG;
			f->slash = 0;
			break;
		default:
			goto out;
		}
	}
out:
	xmlfilter_lane_sync(f, j, &done, n, limit);
	return j;
}

size_t
xmlfilter_scan(struct xmlfilter *f, const unsigned char *p, size_t n, int *event)
{
	size_t		i = 0, limit = xmlfilter_stanza_limit(f);
	unsigned char	b;
	int		ev, chr;

	while (i < n) {
		if (f->need == 0) {
			i += xmlfilter_fast(f, p + i, n - i, limit, &ev);
			if (ev != XF_MORE) {
				*event = ev;
				return i;
			}
			if (i == n)
				break;
		}
		b = p[i];
		chr = 1;
		if (b >= 0x80 || b < 0x20 || f->need > 0) {
			chr = xmlfilter_utf8(f, b);
			if (chr == -1 || (chr == 1 && !xmlscan_xml_char(f->cp))) {
				*event = xmlfilter_bad_char(f, b);
				return i;
			}
		}
		if (f->item && ++f->item_bytes > limit) {
			*event = xmlfilter_fail_limit(f, XML_COND_POLICY_VIOLATION,
			    f->authed ? "a stanza too big" :
			    "a stanza too big before authentication", limit);
			return i;
		}
		ev = xmlfilter_step(f, b, chr);
		if (ev == XF_ERROR) {
			*event = ev;
			return i;
		}
		f->pos++;
		i++;
		if (ev == XF_ITEM || (ev == XF_MARKUP && f->want_markup)) {
			*event = ev;
			return i;
		}
	}
	*event = XF_MORE;
	return n;
}
