/*
 * xmlstream.c: the streaming XMPP parser on expat: arbitrary byte chunks from a
 * client (or a backend) in; stream open, stanzas as small trees, stream close
 * or one RFC 6120 stream error out.  This file is the driver (lexer, then
 * expat; pass mode) and the interface; expat's side is xmlparse.c.
 *
 * Design
 *
 * Input is whatever a read returned: any split, one byte or megabytes.  Output
 * is a sequence of callbacks: open (the stream header's attributes), stanza
 * (one complete first-level element as a tree: names with namespace URIs,
 * attributes with namespaces, children, merged text), close (the end tag of
 * the stream); or, once, an error with its stream error condition and a text,
 * after which the stream is dead.  The events do not depend on how the input
 * was split (the tests feed every valid stream split at every byte).
 *
 * Every byte goes first through xmlfilter.c's lexer, which validates UTF-8
 * and XML characters, refuses DOCTYPE, markup declarations, comments and
 * processing instructions at their first bytes, counts every limit as bytes
 * arrive, and knows where markup ends.  Expat (XML_ParserCreateNS, separator
 * 0xFF, which no UTF-8 name or URI can hold) then sees only: text as it
 * arrives, and tags once they are complete (an unfinished tag waits in
 * "pend", bounded by the stanza limit).  So expat never re-scans a partial
 * token, and reparse deferral, which would hold a complete stanza back until
 * more bytes arrive, is switched off where the library has it (Debian's 2.5.0
 * has it backported; upstream 2.5.0 has not: a weak symbol decides).  Expat is
 * fed one top-level item (header, stanza, stream end) per XML_Parse, so a
 * callback that asks to stop leaves the following bytes unparsed, kept in
 * "held" for xmlstream_resume (after an xmlstream_restart, say: the client's
 * new stream header pipelined behind its SASL <auth/>).
 *
 * Billion laughs, quadratic blowup and external entities never reach expat:
 * "<!" followed by a letter ends the stream (restricted-xml), and expat's
 * DOCTYPE, entity, comment and PI handlers stop the parser too, should the
 * lexer ever miss one.  Expat's memory goes through a counting allocator:
 * with the trees and buffers here it is held under buffer_bytes, so no input
 * can make a parser grow past its limit (policy-violation).
 *
 * Memory between stanzas: a used expat parser holds about 10 KB.  At every
 * stanza boundary with nothing pending (always, unless XMLS_KEEP), the parser
 * and the tree arena are freed: an idle stream costs sizeof(struct
 * xmlstream) plus the "prime", the stream header's namespace declarations.
 * XML_ParserReset cannot be used mid-stream (it starts a new document), so
 * the next stanza gets a new parser that is first fed the prime,
 * "<stream:stream xmlns:stream='...' xmlns='jabber:client' ...>", with
 * callbacks off: the namespace context is exactly what the peer declared.
 *
 * Pass mode (xmlstream_set_pass), for a stream whose stanzas need no reading
 * (a backend's, once its session is bound): a stanza whole within one read
 * that xmlcheck.c proves well-formed and within the lexer's limits goes on as
 * its bytes, with no lexer pass, expat, tree or serializer; every other item
 * takes the path above from its first byte, so the events and errors are the
 * same as without pass mode.  Its writing variant
 * (xmlstream_set_write), for a client's stream once bound, hands on instead
 * what xmlcheck.c's canonical writer made of the bytes: exactly what
 * serialize_stanza would write from the tree.
 *
 * XMPP rules on top of XML: the root must be <stream> in the streams
 * namespace and declare the content namespace as default (invalid-namespace);
 * a stream version with another major than 1 is unsupported-version; a
 * stanza may not rebind a prefix that the header bound to the streams
 * namespace (invalid-namespace); a <stream:stream> as a stanza is a second
 * header (unsupported-stanza-type: the RFC's condition for an unsupported
 * first-level element); text between stanzas other than white space is
 * not-well-formed.  An undeclared prefix is not-well-formed: RFC 6120 4.9.3.13
 * puts violations of XML-Names there.  The XML declaration must say version
 * 1.0 (else unsupported-version) and, if it names one, encoding UTF-8 (else
 * unsupported-encoding).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmlstream_int.h"
#include "xmlscan.h"

/* ---- the driver: lexer, then expat ---- */

static void
xmlstream_reset_doc(struct xmlstream *xs)
{
	xmlstream_parser_free(xs);
	xmlstream_arena_free(xs);
	xmlstream_bytes_free(xs, &xs->text);
	xmlstream_bytes_free(xs, &xs->pend);
	xmlstream_bytes_free(xs, &xs->prime);
	xmlstream_bytes_free(xs, &xs->sprefix);
	if (xs->ps != NULL) {
		/* a new stream: its owner decides again */
		xs->ps->raw = NULL;
		xs->ps->div = 0;
	}
	xs->has_default = 0;
	xs->depth = 0;
	xs->ndecl = 0;
	xs->since = 0;
	xmlfilter_init(&xs->f, &xs->lim, xs->f.authed);
}

/* A whole markup token or item: the unfinished tag so far, then P. */
static int
xmlstream_flush(struct xmlstream *xs, const unsigned char *p, size_t n)
{
	int	rc;

	if (xs->pend.len == 0)
		return xmlstream_expat(xs, p, n);
	if (xmlstream_bytes_add(xs, &xs->pend, p, n) == -1)
		return XMLS_ERROR;
	rc = xmlstream_expat(xs, xs->pend.d, xs->pend.len);
	xs->pend.len = 0;
	if (xs->pend.cap > 4096)
		xmlstream_bytes_free(xs, &xs->pend);
	return rc;
}

/* Where the open markup began in the buffer whose offset OFF is f.pos. */
static size_t
xmlstream_mark(const struct xmlstream *xs, size_t off)
{
	return off - (size_t)(xs->f.pos - xs->f.mark);
}

static int
xmlstream_lexer_error(struct xmlstream *xs, const unsigned char *p, size_t seg,
    size_t off)
{
	size_t	end = off;

	/* What precedes the bad byte is judged first, as it would be had it
	 * come in an earlier read: expat's error there is the earlier one. */
	if (xmlfilter_in_markup(&xs->f))
		end = xs->pend.len > 0 ? seg : xmlstream_mark(xs, off);
	if (end > seg && xmlstream_expat(xs, p + seg, end - seg) == XMLS_ERROR)
		return XMLS_ERROR;
	if (xs->f.limit > 0)
		return xmlstream_fail(xs, xs->f.cond, "%s (limit %zu) at byte %llu",
		    xs->f.what, xs->f.limit, (unsigned long long)xs->f.pos);
	return xmlstream_fail(xs, xs->f.cond, "%s at byte %llu", xs->f.what,
	    (unsigned long long)xs->f.pos);
}

static int
xmlstream_hold(struct xmlstream *xs, const unsigned char *p, size_t n)
{
	return xmlstream_bytes_add(xs, &xs->held, p, n);
}

static int
xmlstream_item_done(struct xmlstream *xs, const unsigned char *p, size_t off, size_t n)
{
	xs->since = 0;
	if (xs->restart_req) {
		xs->restart_req = 0;
		xmlstream_reset_doc(xs);
	}
	if (!xs->stop_req)
		return XMLS_OK;
	xs->stop_req = 0;
	xs->stopped = 1;
	return xmlstream_hold(xs, p + off, n - off) == -1 ? XMLS_ERROR : XMLS_STOPPED;
}

static int	xmlstream_run(struct xmlstream *, const unsigned char *, size_t);

static int
xmlstream_run_parse(struct xmlstream *xs, const unsigned char *p, size_t n)
{
	size_t	off = 0, seg = 0, m;
	int	ev, rc;

	while (off < n) {
		xs->f.want_markup = xs->pend.len > 0;
		off += xmlfilter_scan(&xs->f, p + off, n - off, &ev);
		if (ev == XF_ERROR)
			return xmlstream_lexer_error(xs, p, seg, off);
		if (ev == XF_MORE)
			continue;
		rc = xmlstream_flush(xs, p + seg, off - seg);
		seg = off;
		if (rc == XMLS_ERROR)
			return rc;
		if (ev != XF_ITEM)
			continue;
		if ((rc = xmlstream_item_done(xs, p, off, n)) != XMLS_OK)
			return rc;
		if (xs->ps != NULL && xs->ps->raw != NULL) {
			xs->ps->div = 0;
			return xmlstream_run(xs, p + off, n - off);
		}
	}
	if (!xmlfilter_in_markup(&xs->f))
		return xmlstream_expat(xs, p + seg, n - seg);
	if (xs->pend.len > 0)
		return xmlstream_bytes_add(xs, &xs->pend, p + seg, n - seg);
	m = xmlstream_mark(xs, n);
	if (xmlstream_expat(xs, p + seg, m - seg) == XMLS_ERROR)
		return XMLS_ERROR;
	return xmlstream_bytes_add(xs, &xs->pend, p + m, n - m);
}

/*
 * Pass mode: where the lexer is between stanzas, white space is skipped and
 * the stanza that follows goes to xmlcheck.c first.  If it takes the stanza
 * (whole within the read, within every limit, well-formed), the stanza goes
 * to the pass callback as the bytes it is (or as written, in writing mode)
 * and the lexer only moves on.  Any other item (a prefixed stanza, the
 * stream's end, a broken one, one the read cuts) takes the lexer and the
 * parse path from where it begins, as though pass mode were off: the same
 * events, the same errors at the same bytes, and nothing held here.
 */

/* What the canonical writer wrote: one per thread, a worker's loop is its own. */
static _Thread_local struct buf xmlstream_out;

/* The stanza at P[0] == '<' of P[0..N): handed on, and its length; 0 if
 * xmlcheck.c does not take it. */
static size_t
xmlstream_pass_one(struct xmlstream *xs, const unsigned char *p, size_t n, int *rc)
{
	const void	*d = p;
	size_t		 k, len;

	if (xs->ps->write) {
		buf_reset(&xmlstream_out);
		k = xmlcanon_stanza(p, n, &xs->f, xs->content_ns, &xmlstream_out);
		d = xmlstream_out.data;
		len = xmlstream_out.len;
	} else
		len = k = xmlcheck_stanza(p, n, &xs->f);
	if (k == 0)
		return 0;
	xmlfilter_skip(&xs->f, k);
	xs->in_parse = 1;
	xmlstream_call(xs, xs->ps->raw(xs->arg, d, len));
	xs->in_parse = 0;
	if (xmlstream_out.cap > XMLS_BLOCK_MAX)
		buf_free(&xmlstream_out);	/* a big stanza's room is not kept */
	*rc = xmlstream_item_done(xs, p, k, n);
	return k;
}

static int
xmlstream_run_pass(struct xmlstream *xs, const unsigned char *p, size_t n)
{
	size_t	off = 0, k;
	int	rc;

	while (xmlfilter_idle(&xs->f) && xs->f.depth == 1 && !xs->f.closed) {
		for (k = off; k < n && xmlscan_is_ws(p[k]); k++)
			;
		xmlfilter_skip(&xs->f, k - off);	/* white space between stanzas */
		if ((off = k) == n)
			return XMLS_OK;
		if ((k = xmlstream_pass_one(xs, p + off, n - off, &rc)) == 0)
			break;
		off += k;
		if (rc != XMLS_OK)
			return rc;
		if (xs->ps->raw == NULL || xs->ps->div)
			return xmlstream_run(xs, p + off, n - off);
	}
	xs->ps->div = 1;	/* this item: pass mode again after it */
	return xmlstream_run_parse(xs, p + off, n - off);
}

static int
xmlstream_run(struct xmlstream *xs, const unsigned char *p, size_t n)
{
	if (n == 0)
		return XMLS_OK;
	if (xs->ps != NULL && xs->ps->raw != NULL && !xs->ps->div)
		return xmlstream_run_pass(xs, p, n);
	return xmlstream_run_parse(xs, p, n);
}

static void
xmlstream_settle(struct xmlstream *xs)
{
	if (xs->failed)
		return;
	if (xs->f.item && xs->since == 0)
		xs->since = now_mono_ms();
	if (!xmlfilter_idle(&xs->f) || xs->pend.len > 0)
		return;
	/* Freed blocks stay in their size class: pages count too. */
	if (!(xs->flags & XMLS_KEEP) || xs->mem.used > XMLS_KEEP_MAX ||
	    xmlmem_pages_bytes(&xs->mem) > XMLS_KEEP_MAX)
		xmlstream_trim(xs);
}

static int
xmlstream_feed_repair(struct xmlstream *xs, const unsigned char *p, size_t n)
{
	unsigned char	out[8192];
	size_t		taken, len;
	int		rc = xs->stopped ? XMLS_STOPPED : XMLS_OK;

	while (n > 0) {
		len = xmlfilter_repair(&xs->r, p, n, out, sizeof(out), &taken);
		p += taken;
		n -= taken;
		if (rc == XMLS_STOPPED) {
			if (xmlstream_hold(xs, out, len) == -1)
				return XMLS_ERROR;
			continue;
		}
		if ((rc = xmlstream_run(xs, out, len)) == XMLS_ERROR)
			return rc;
	}
	return rc;
}

/* ---- the interface ---- */

static const struct xmlstream_cb xmlstream_nocb;

struct xmlstream *
xmlstream_new(const struct xml_limits *lim, const char *content_ns, int flags,
    const struct xmlstream_cb *cb, void *arg)
{
	struct xmlstream	*xs = xcalloc(1, sizeof(*xs));

	if (lim != NULL)
		xs->lim = *lim;
	else
		xmlfilter_limits_default(&xs->lim);
	xs->flags = flags;
	xs->content_ns = xstrdup(content_ns != NULL ? content_ns : XML_NS_CLIENT);
	xs->cb = cb != NULL ? cb : &xmlstream_nocb;
	xs->arg = arg;
	xs->mem.limit = xs->lim.buffer_bytes_preauth;
	xmlfilter_init(&xs->f, &xs->lim, 0);
	xmlfilter_repair_init(&xs->r);
	return xs;
}

void
xmlstream_free(struct xmlstream *xs)
{
	if (xs == NULL)
		return;
	xmlstream_reset_doc(xs);
	xmlstream_bytes_free(xs, &xs->held);
	free(xs->ps);
	free(xs->why);
	free(xs->content_ns);
	free(xs);
}

int
xmlstream_feed(struct xmlstream *xs, const void *data, size_t len)
{
	const unsigned char	*p = data;
	int			 rc;

	if (xs->failed)
		return XMLS_ERROR;
	if (xs->in_parse)
		return xmlstream_fail(xs, XML_COND_INTERNAL_SERVER_ERROR,
		    "xmlstream_feed called from a callback");
	if (xs->flags & XMLS_REPAIR)
		rc = xmlstream_feed_repair(xs, p, len);
	else if (xs->stopped)
		rc = xmlstream_hold(xs, p, len) == -1 ? XMLS_ERROR : XMLS_STOPPED;
	else
		rc = xmlstream_run(xs, p, len);
	xmlstream_settle(xs);
	return rc;
}

int
xmlstream_resume(struct xmlstream *xs)
{
	struct xml_bytes	h;
	int			rc;

	if (xs->failed)
		return XMLS_ERROR;
	if (!xs->stopped || xs->in_parse)
		return XMLS_OK;
	xs->stopped = 0;
	h = xs->held;
	memset(&xs->held, 0, sizeof(xs->held));
	rc = xmlstream_run(xs, h.d, h.len);
	xmlstream_bytes_free(xs, &h);
	xmlstream_settle(xs);
	return rc;
}

void
xmlstream_restart(struct xmlstream *xs)
{
	if (xs->in_parse)
		xs->restart_req = 1;	/* once the current item is done */
	else
		xmlstream_reset_doc(xs);
}

void
xmlstream_set_auth(struct xmlstream *xs, int authenticated)
{
	xs->f.authed = authenticated != 0;
	xs->mem.limit = authenticated ? xs->lim.buffer_bytes :
	    xs->lim.buffer_bytes_preauth;
}

static void
xmlstream_pass_on(struct xmlstream *xs, int (*raw)(void *, const void *, size_t),
    int write)
{
	if (xs->ps == NULL) {
		if (raw == NULL)
			return;
		xs->ps = xcalloc(1, sizeof(*xs->ps));
	}
	xs->ps->raw = raw;
	xs->ps->write = write;
	/* An item under way, or being parsed now, ends on the parse path. */
	xs->ps->div = !xmlfilter_idle(&xs->f) || xs->pend.len > 0 || xs->in_parse;
}

void
xmlstream_set_pass(struct xmlstream *xs, int (*raw)(void *, const void *, size_t))
{
	xmlstream_pass_on(xs, raw, 0);
}

void
xmlstream_set_write(struct xmlstream *xs, int (*raw)(void *, const void *, size_t))
{
	xmlstream_pass_on(xs, raw, 1);
}

void
xmlstream_thread_free(void)
{
	buf_free(&xmlstream_out);
}

void
xmlstream_trim(struct xmlstream *xs)
{
	if (xs->in_parse || !xmlfilter_idle(&xs->f) || xs->pend.len > 0)
		return;
	xmlstream_parser_free(xs);
	xmlstream_arena_free(xs);
	xmlstream_bytes_free(xs, &xs->text);
	xmlstream_bytes_free(xs, &xs->pend);
}

enum xml_cond
xmlstream_error(const struct xmlstream *xs)
{
	return xs->failed ? xs->cond : XML_COND_NONE;
}

const char *
xmlstream_error_text(const struct xmlstream *xs)
{
	if (!xs->failed)
		return "";
	return xs->why != NULL ? xs->why : xmlfilter_cond_name(xs->cond);
}

uint64_t
xmlstream_busy_since(const struct xmlstream *xs)
{
	return xs->since;
}

size_t
xmlstream_memsize(const struct xmlstream *xs)
{
	return sizeof(*xs) + strlen(xs->content_ns) + 1 + xs->mem.used +
	    (xs->ps != NULL ? sizeof(*xs->ps) : 0);
}

size_t
xmlstream_mempeak(const struct xmlstream *xs)
{
	return sizeof(*xs) + strlen(xs->content_ns) + 1 + xs->mem.peak +
	    (xs->ps != NULL ? sizeof(*xs->ps) : 0);
}
