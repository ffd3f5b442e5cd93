/*
 * xmlstream.c: the streaming XMPP parser on expat: arbitrary byte chunks from a
 * client (or a backend) in; stream open, stanzas as small trees, stream close
 * or one RFC 6120 stream error out.
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
 * that the lexer and xmlcheck.c prove well-formed goes on as its bytes, with
 * no expat, tree or serializer; every other item is replayed through the
 * path above from the lexer's state at its first byte, so the events and
 * errors are the same as without pass mode.
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
#include <sys/random.h>

#include <expat.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxyd.h"
#include "xmlmem.h"

#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
#define XMLS_HAVE_DEFERRAL	1
#else
/* Present in distributions' backports of 2.6's fix; absent upstream. */
XMLPARSEAPI(XML_Bool) XML_SetReparseDeferralEnabled(XML_Parser, XML_Bool)
    __attribute__((weak));
#define XMLS_HAVE_DEFERRAL	0
#endif

#define XMLS_SEP	'\xff'
#define XMLS_BLOCK_MIN	1024
#define XMLS_BLOCK_MAX	65536
#define XMLS_KEEP_MAX	65536		/* XMLS_KEEP still frees a bigger parser */
#define XMLS_CHUNK	(1u << 30)	/* XML_Parse takes an int */
struct xml_bytes {
	unsigned char	*d;
	size_t		 len, cap;
};

struct xml_block {
	struct xml_block	*next;
	size_t			 size, used;
	size_t			 pad;	/* data stays 16-aligned */
	unsigned char		 data[];
};

struct xmlstream {
	struct xml_limits	 lim;
	int			 flags;
	char			*content_ns;
	const struct xmlstream_cb *cb;
	void			*arg;

	struct xmlfilter	 f;
	struct xmlrepair	 r;
	XML_Parser		 p;
	struct xml_mem		 mem;
	int			 in_parse, priming;
	int			 failed, stopped, stop_req, restart_req;
	enum xml_cond		 cond;
	char			*why;
	uint64_t		 since;

	struct xml_bytes	 pend;		/* an unfinished tag */
	struct xml_bytes	 held;		/* lexer input after a stop */
	struct xml_bytes	 prime;		/* the stream header's declarations */
	struct xml_bytes	 sprefix;	/* " p1 p2 ": prefixes of the streams ns */
	int			 has_default;

	int			 depth;		/* as expat reports it */
	size_t			 ndecl;
	struct xml_block	*blocks;
	size_t			 nblocks;
	struct xml_node		*root, *cur;
	struct xml_bytes	 text;
	struct xmlstream_pass	*ps;		/* once pass mode was asked for */
};

/* Pass mode (xmlstream_run_pass), allocated only for the streams that use it. */
struct xmlstream_pass {
	int			(*raw)(void *, const void *, size_t);	/* NULL: off */
	int			 div;	/* this item takes the parse path */
	struct xmlfilter	 f;	/* the lexer at the item's first byte */
};

/* ---- memory: everything a parser holds is counted against its limit ---- */

static int xmlstream_fail(struct xmlstream *, enum xml_cond, const char *, ...)
    PRINTFLIKE(3, 4);

static int
xmlstream_nomem(struct xmlstream *xs)
{
	return xmlstream_fail(xs, XML_COND_POLICY_VIOLATION,
	    "the parser would hold more than %zu bytes", xs->mem.limit);
}

static int
xmlstream_bytes_add(struct xmlstream *xs, struct xml_bytes *b, const void *p, size_t n)
{
	size_t	cap;

	if (n == 0)
		return 0;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap < 64 ? 64 : b->cap;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (xmlmem_take(&xs->mem, cap - b->cap) == -1)
			return xmlstream_nomem(xs);
		b->d = xreallocarray(b->d, 1, cap);
		b->cap = cap;
	}
	memcpy(b->d + b->len, p, n);
	b->len += n;
	b->d[b->len] = '\0';
	return 0;
}

static void
xmlstream_bytes_free(struct xmlstream *xs, struct xml_bytes *b)
{
	xs->mem.used -= b->cap;
	free(b->d);
	memset(b, 0, sizeof(*b));
}

/* The arena of one tree: freed whole once its callback returns. */
static void *
xmlstream_alloc(struct xmlstream *xs, size_t n)
{
	struct xml_block	*b = xs->blocks;
	size_t			 size;
	void			*p;

	n = (n + 15) & ~(size_t)15;
	if (b == NULL || b->size - b->used < n) {
		size = XMLS_BLOCK_MIN << (xs->nblocks < 6 ? xs->nblocks : 6);
		if (size < n)
			size = n;
		if (xmlmem_take(&xs->mem, sizeof(*b) + size) == -1) {
			xmlstream_nomem(xs);
			return NULL;
		}
		b = xmalloc(sizeof(*b) + size);
		b->size = size;
		b->used = 0;
		b->next = xs->blocks;
		xs->blocks = b;
		xs->nblocks++;
	}
	p = b->data + b->used;
	b->used += n;
	return p;
}

static void
xmlstream_arena_free(struct xmlstream *xs)
{
	struct xml_block	*b;

	while ((b = xs->blocks) != NULL) {
		xs->blocks = b->next;
		xs->mem.used -= sizeof(*b) + b->size;
		free(b);
	}
	xs->nblocks = 0;
	xs->root = xs->cur = NULL;
}

/* After a stanza: a kept stream keeps a lone first block for the next tree
 * (a malloc and a free less per stanza); xmlstream_trim frees it. */
static void
xmlstream_arena_clear(struct xmlstream *xs)
{
	if (!(xs->flags & XMLS_KEEP) || xs->nblocks != 1) {
		xmlstream_arena_free(xs);
		return;
	}
	xs->blocks->used = 0;
	xs->root = xs->cur = NULL;
}

static int
xmlstream_fail(struct xmlstream *xs, enum xml_cond c, const char *fmt, ...)
{
	va_list	ap;

	if (xs->failed)
		return XMLS_ERROR;
	xs->failed = 1;
	xs->cond = c;
	va_start(ap, fmt);
	if (vasprintf(&xs->why, fmt, ap) == -1)
		xs->why = NULL;
	va_end(ap);
	if (xs->p != NULL && xs->in_parse)
		XML_StopParser(xs->p, XML_FALSE);
	return XMLS_ERROR;
}

/* ---- trees ---- */

static char *
xmlstream_strdup(struct xmlstream *xs, const char *s, size_t n)
{
	char	*d;

	if ((d = xmlstream_alloc(xs, n + 1)) == NULL)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* "uri\xfflocal" or "local"; the URI is shared with HINT when equal. */
static int
xmlstream_qname(struct xmlstream *xs, const char *qn, const char *hint,
    const char **ns, const char **name)
{
	const char	*sep, *end;
	size_t		 ulen;

	for (sep = qn; *sep != '\0' && *sep != XMLS_SEP; sep++)
		;
	*ns = NULL;
	if (*sep == '\0')
		end = sep;
	else {
		ulen = (size_t)(sep - qn);
		if (hint != NULL && strncmp(hint, qn, ulen) == 0 && hint[ulen] == '\0')
			*ns = hint;
		else if (ulen == sizeof(XML_NS_XML) - 1 &&
		    memcmp(qn, XML_NS_XML, ulen) == 0)
			*ns = XML_NS_XML;
		else if ((*ns = xmlstream_strdup(xs, qn, ulen)) == NULL)
			return -1;
		qn = sep + 1;
		for (end = qn; *end != '\0'; end++)
			;
	}
	*name = xmlstream_strdup(xs, qn, (size_t)(end - qn));
	return *name == NULL ? -1 : 0;
}

static struct xml_node *
xmlstream_element(struct xmlstream *xs, const char *qn, const char **atts,
    const char *hint)
{
	struct xml_node	*n;
	size_t		 i, count = 0;

	while (atts[count * 2] != NULL)
		count++;
	if (count > xs->lim.attrs) {
		xmlstream_fail(xs, XML_COND_POLICY_VIOLATION,
		    "an element with more than %zu attributes", xs->lim.attrs);
		return NULL;
	}
	if ((n = xmlstream_alloc(xs, sizeof(*n))) == NULL)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->type = XML_NODE_ELEM;
	if (xmlstream_qname(xs, qn, hint, &n->ns, &n->name) == -1)
		return NULL;
	if (count > 0 &&
	    (n->attrs = xmlstream_alloc(xs, count * sizeof(*n->attrs))) == NULL)
		return NULL;
	for (i = 0; i < count; i++) {
		struct xml_attr	*a = &n->attrs[i];

		if (xmlstream_qname(xs, atts[2 * i], n->ns, &a->ns, &a->name) == -1)
			return NULL;
		a->vlen = strlen(atts[2 * i + 1]);
		if ((a->value = xmlstream_strdup(xs, atts[2 * i + 1], a->vlen)) == NULL)
			return NULL;
	}
	n->nattrs = count;
	return n;
}

static void
xmlstream_append(struct xml_node *parent, struct xml_node *n)
{
	n->parent = parent;
	if (parent->last != NULL)
		parent->last->next = n;
	else
		parent->child = n;
	parent->last = n;
}

static int
xmlstream_flush_text(struct xmlstream *xs)
{
	struct xml_node	*n;

	if (xs->text.len == 0)
		return 0;
	if ((n = xmlstream_alloc(xs, sizeof(*n))) == NULL)
		return -1;
	memset(n, 0, sizeof(*n));
	n->type = XML_NODE_TEXT;
	n->len = xs->text.len;
	if ((n->text = xmlstream_strdup(xs, (char *)xs->text.d, n->len)) == NULL)
		return -1;
	xmlstream_append(xs->cur, n);
	xs->text.len = 0;
	return 0;
}

/* ---- expat's callbacks ---- */

static int
xmlstream_is_stream_prefix(const struct xmlstream *xs, const char *prefix)
{
	const char	*s = (const char *)xs->sprefix.d;
	size_t		 n = strlen(prefix);

	for (; s != NULL && (s = strstr(s, prefix)) != NULL; s += n)
		if (s[-1] == ' ' && s[n] == ' ')
			return 1;
	return 0;
}

static int
xmlstream_prime_add(struct xmlstream *xs, const char *prefix, const char *uri)
{
	struct buf	b;
	int		rc;

	buf_init(&b);
	buf_printf(&b, " xmlns%s%s='", prefix ? ":" : "", prefix ? prefix : "");
	serialize_attr_value(&b, uri ? uri : "", uri ? strlen(uri) : 0);
	buf_addc(&b, '\'');
	rc = xmlstream_bytes_add(xs, &xs->prime, b.data, b.len);
	buf_free(&b);
	if (rc == 0 && prefix != NULL && uri != NULL && strcmp(uri, XML_NS_STREAMS) == 0) {
		if (xs->sprefix.len == 0)
			rc = xmlstream_bytes_add(xs, &xs->sprefix, " ", 1);
		if (rc == 0)
			rc = xmlstream_bytes_add(xs, &xs->sprefix, prefix, strlen(prefix));
		if (rc == 0)
			rc = xmlstream_bytes_add(xs, &xs->sprefix, " ", 1);
	}
	return rc;
}

static void XMLCALL
xmlstream_ns_cb(void *arg, const XML_Char *prefix, const XML_Char *uri)
{
	struct xmlstream	*xs = arg;

	if (xs->failed || xs->priming)
		return;
	if (++xs->ndecl > xs->lim.ns_decls) {
		xmlstream_fail(xs, XML_COND_POLICY_VIOLATION,
		    "an element with more than %zu namespace declarations",
		    xs->lim.ns_decls);
		return;
	}
	if (xs->depth == 0) {
		if (prefix == NULL) {
			if (uri == NULL || strcmp(uri, xs->content_ns) != 0) {
				xmlstream_fail(xs, XML_COND_INVALID_NAMESPACE,
				    "the stream's default namespace is '%s', not '%s'",
				    uri ? uri : "", xs->content_ns);
				return;
			}
			xs->has_default = 1;
		}
		xmlstream_prime_add(xs, prefix, uri);
		return;
	}
	if (prefix != NULL && xmlstream_is_stream_prefix(xs, prefix) &&
	    (uri == NULL || strcmp(uri, XML_NS_STREAMS) != 0))
		xmlstream_fail(xs, XML_COND_INVALID_NAMESPACE,
		    "the stream prefix '%s' is bound to another namespace", prefix);
}

/* RFC 6120 4.7.5: "major.minor", leading zeros ignored; we speak 1.x. */
static int
xmlstream_version_ok(const char *v)
{
	const char	*s = v;

	while (*s == '0')
		s++;
	if (s[0] != '1' || s[1] != '.' || s[2] < '0' || s[2] > '9')
		return 0;
	for (s += 2; *s >= '0' && *s <= '9'; s++)
		;
	return *s == '\0';
}

static int
xmlstream_call(struct xmlstream *xs, int rc)
{
	if (rc != 0)
		xs->stop_req = 1;
	return rc;
}

static void
xmlstream_header(struct xmlstream *xs, const char *name, const char **atts)
{
	struct xml_node	*root;
	const char	*v;
	const char	*sp;
	size_t		 splen;
	struct buf	 b;

	if (strncmp(name, XML_NS_STREAMS, sizeof(XML_NS_STREAMS) - 1) != 0 ||
	    strcmp(name + sizeof(XML_NS_STREAMS) - 1, "\xffstream") != 0) {
		xmlstream_fail(xs, XML_COND_INVALID_NAMESPACE,
		    "the root element is not <stream> in %s", XML_NS_STREAMS);
		return;
	}
	if (xs->sprefix.len == 0) {
		xmlstream_fail(xs, XML_COND_INVALID_NAMESPACE,
		    "the stream header binds no prefix to %s", XML_NS_STREAMS);
		return;
	}
	if (!xs->has_default) {
		xmlstream_fail(xs, XML_COND_INVALID_NAMESPACE,
		    "the stream header declares no default namespace ('%s')",
		    xs->content_ns);
		return;
	}
	if ((root = xmlstream_element(xs, name, atts, NULL)) == NULL)
		return;
	if ((v = xmlstream_attr(root, NULL, "version")) != NULL &&
	    !xmlstream_version_ok(v)) {
		xmlstream_fail(xs, XML_COND_UNSUPPORTED_VERSION,
		    "stream version '%s' (this proxy speaks 1.x)", v);
		return;
	}
	/* The prime: the same prefixes bound to the same URIs. */
	sp = (const char *)xs->sprefix.d + 1;
	splen = strcspn(sp, " ");
	buf_init(&b);
	buf_printf(&b, "<%.*s:stream%s>", (int)splen, sp, (const char *)xs->prime.d);
	xmlstream_bytes_free(xs, &xs->prime);
	if (xmlstream_bytes_add(xs, &xs->prime, b.data, b.len) == -1) {
		buf_free(&b);
		return;
	}
	buf_free(&b);
	xs->depth = 1;
	if (xs->cb->open != NULL)
		xmlstream_call(xs, xs->cb->open(xs->arg, root));
	xmlstream_arena_free(xs);
}

static void XMLCALL
xmlstream_start_cb(void *arg, const XML_Char *name, const XML_Char **atts)
{
	struct xmlstream	*xs = arg;
	struct xml_node		*n;

	xs->ndecl = 0;
	if (xs->failed || xs->priming)
		return;
	if (xs->depth == 0) {
		xmlstream_header(xs, name, atts);
		return;
	}
	if ((size_t)xs->depth > xs->lim.depth) {
		xmlstream_fail(xs, XML_COND_POLICY_VIOLATION,
		    "elements nested deeper than %zu", xs->lim.depth);
		return;
	}
	if (xs->depth == 1) {
		if (name[0] == XML_NS_STREAMS[0] &&
		    strcmp(name, XML_NS_STREAMS "\xffstream") == 0) {
			xmlstream_fail(xs, XML_COND_UNSUPPORTED_STANZA_TYPE,
			    "a second stream header without a stream restart");
			return;
		}
		if ((n = xmlstream_element(xs, name, atts, NULL)) == NULL)
			return;
		xs->root = n;
	} else {
		if (xmlstream_flush_text(xs) == -1 ||
		    (n = xmlstream_element(xs, name, atts, xs->cur->ns)) == NULL)
			return;
		xmlstream_append(xs->cur, n);
	}
	xs->cur = n;
	xs->depth++;
}

static void XMLCALL
xmlstream_end_cb(void *arg, const XML_Char *name)
{
	struct xmlstream	*xs = arg;

	if (xs->failed || xs->priming)
		return;
	if (xs->depth >= 2 && xmlstream_flush_text(xs) == -1)
		return;
	if (--xs->depth == 1) {
		if (xs->cb->stanza != NULL)
			xmlstream_call(xs, xs->cb->stanza(xs->arg, xs->root));
		xmlstream_arena_clear(xs);
		if (xs->text.cap > 4096)
			xmlstream_bytes_free(xs, &xs->text);
	} else if (xs->depth == 0) {
		if (xs->cb->close != NULL)
			xmlstream_call(xs, xs->cb->close(xs->arg));
	} else
		xs->cur = xs->cur->parent;
}

static void XMLCALL
xmlstream_text_cb(void *arg, const XML_Char *s, int len)
{
	struct xmlstream	*xs = arg;
	int			 i;

	if (xs->failed || xs->priming)
		return;
	if (xs->depth <= 1) {
		for (i = 0; i < len; i++)
			if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
				xmlstream_fail(xs, XML_COND_NOT_WELL_FORMED,
				    "text at stream level");
				return;
			}
		return;
	}
	if (xs->text.len + (size_t)len > xs->lim.text_bytes) {
		xmlstream_fail(xs, XML_COND_POLICY_VIOLATION,
		    "a text node over %zu bytes", xs->lim.text_bytes);
		return;
	}
	xmlstream_bytes_add(xs, &xs->text, s, (size_t)len);
}

static void XMLCALL
xmlstream_decl_cb(void *arg, const XML_Char *version, const XML_Char *encoding,
    int standalone)
{
	struct xmlstream	*xs = arg;

	if (xs->failed)
		return;
	if (version == NULL || strcmp(version, "1.0") != 0)
		xmlstream_fail(xs, XML_COND_UNSUPPORTED_VERSION,
		    "XML version '%s' (XMPP is XML 1.0)", version ? version : "");
	else if (encoding != NULL && strcasecmp(encoding, "UTF-8") != 0)
		xmlstream_fail(xs, XML_COND_UNSUPPORTED_ENCODING,
		    "encoding '%s' (XMPP is UTF-8 only)", encoding);
}

/* The lexer refuses all of these first; expat's word is the backstop. */
static void XMLCALL
xmlstream_doctype_cb(void *arg, const XML_Char *name, const XML_Char *sysid,
    const XML_Char *pubid, int has_internal_subset)
{
	xmlstream_fail(arg, XML_COND_RESTRICTED_XML, "a DOCTYPE");
}

static void XMLCALL
xmlstream_entity_cb(void *arg, const XML_Char *name, int pe, const XML_Char *value,
    int len, const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
    const XML_Char *notation)
{
	xmlstream_fail(arg, XML_COND_RESTRICTED_XML, "an entity declaration");
}

static void XMLCALL
xmlstream_comment_cb(void *arg, const XML_Char *data)
{
	xmlstream_fail(arg, XML_COND_RESTRICTED_XML, "a comment");
}

static void XMLCALL
xmlstream_pi_cb(void *arg, const XML_Char *target, const XML_Char *data)
{
	xmlstream_fail(arg, XML_COND_RESTRICTED_XML, "a processing instruction");
}

static void XMLCALL
xmlstream_skipped_cb(void *arg, const XML_Char *name, int pe)
{
	xmlstream_fail(arg, XML_COND_RESTRICTED_XML, "an entity reference");
}

/* ---- expat ---- */

static enum xml_cond
xmlstream_cond_of(enum XML_Error e)
{
	switch (e) {
	case XML_ERROR_PARAM_ENTITY_REF:
	case XML_ERROR_UNDEFINED_ENTITY:
	case XML_ERROR_RECURSIVE_ENTITY_REF:
	case XML_ERROR_ASYNC_ENTITY:
	case XML_ERROR_BINARY_ENTITY_REF:
	case XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF:
	case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
	case XML_ERROR_NOT_STANDALONE:
	case XML_ERROR_ENTITY_DECLARED_IN_PE:
	case XML_ERROR_FEATURE_REQUIRES_XML_DTD:
	case XML_ERROR_INCOMPLETE_PE:
	case XML_ERROR_PUBLICID:
	case XML_ERROR_SUSPEND_PE:
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 4)
	case XML_ERROR_AMPLIFICATION_LIMIT_BREACH:
#endif
		return XML_COND_RESTRICTED_XML;
	case XML_ERROR_UNKNOWN_ENCODING:
	case XML_ERROR_INCORRECT_ENCODING:
		return XML_COND_UNSUPPORTED_ENCODING;
	default:
		return XML_COND_NOT_WELL_FORMED;
	}
}

static unsigned long
xmlstream_salt(void)
{
	static unsigned long	salt;

	/* One random salt per process spares a getrandom() per parser; the
	 * lexer's attribute cap leaves hash flooding nothing to work with. */
	while (salt == 0)
		if (getrandom(&salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
			salt = (unsigned long)(uintptr_t)&salt ^ now_mono_ns();
	return salt;
}

static int
xmlstream_parser(struct xmlstream *xs)
{
	XML_Parser	p;
	int		st;

	xmlmem_use(&xs->mem);
	if ((p = XML_ParserCreate_MM("UTF-8", &xmlmem_suite, "\xff")) == NULL)
		return xmlstream_nomem(xs);
	XML_SetUserData(p, xs);
	XML_SetHashSalt(p, xmlstream_salt());
	XML_SetElementHandler(p, xmlstream_start_cb, xmlstream_end_cb);
	XML_SetCharacterDataHandler(p, xmlstream_text_cb);
	XML_SetStartNamespaceDeclHandler(p, xmlstream_ns_cb);
	XML_SetXmlDeclHandler(p, xmlstream_decl_cb);
	XML_SetStartDoctypeDeclHandler(p, xmlstream_doctype_cb);
	XML_SetEntityDeclHandler(p, xmlstream_entity_cb);
	XML_SetCommentHandler(p, xmlstream_comment_cb);
	XML_SetProcessingInstructionHandler(p, xmlstream_pi_cb);
	XML_SetSkippedEntityHandler(p, xmlstream_skipped_cb);
	XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XMLS_HAVE_DEFERRAL
	XML_SetReparseDeferralEnabled(p, XML_FALSE);
#else
	if (XML_SetReparseDeferralEnabled != NULL)
		XML_SetReparseDeferralEnabled(p, XML_FALSE);
#endif
	xs->p = p;
	if (xs->depth != 1)
		return 0;
	xs->priming = 1;
	st = XML_Parse(p, (const char *)xs->prime.d, (int)xs->prime.len, 0);
	xs->priming = 0;
	if (st != XML_STATUS_OK)
		return xs->mem.hit ? xmlstream_nomem(xs) :
		    xmlstream_fail(xs, XML_COND_INTERNAL_SERVER_ERROR,
		    "the saved stream context does not parse: %s",
		    XML_ErrorString(XML_GetErrorCode(p)));
	return 0;
}

static void
xmlstream_parser_free(struct xmlstream *xs)
{
	if (xs->p == NULL)
		return;
	XML_ParserFree(xs->p);
	xs->p = NULL;
}

static int
xmlstream_all_space(const unsigned char *p, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
			return 0;
	return 1;
}

static int
xmlstream_expat(struct xmlstream *xs, const unsigned char *p, size_t n)
{
	enum XML_Status	st = XML_STATUS_OK;
	size_t		k;

	if (n == 0)
		return 0;
	if (xs->p == NULL) {
		/* white space between stanzas tells expat nothing */
		if (xmlstream_all_space(p, n))
			return 0;
		if (xmlstream_parser(xs) == -1)
			return XMLS_ERROR;
	}
	xmlmem_use(&xs->mem);
	xs->in_parse = 1;
	while (n > 0 && st == XML_STATUS_OK) {
		k = n < XMLS_CHUNK ? n : XMLS_CHUNK;
		st = XML_Parse(xs->p, (const char *)p, (int)k, 0);
		p += k;
		n -= k;
	}
	xs->in_parse = 0;
	if (xs->failed)
		return XMLS_ERROR;
	if (st == XML_STATUS_OK)
		return 0;
	if (XML_GetErrorCode(xs->p) == XML_ERROR_NO_MEMORY)
		return xs->mem.hit ? xmlstream_nomem(xs) :
		    xmlstream_fail(xs, XML_COND_RESOURCE_CONSTRAINT, "out of memory");
	return xmlstream_fail(xs, xmlstream_cond_of(XML_GetErrorCode(xs->p)),
	    "%s before byte %llu", XML_ErrorString(XML_GetErrorCode(xs->p)),
	    (unsigned long long)xs->f.pos);
}

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
 * Pass mode: the lexer runs as always, but expat is not given the bytes of
 * an item as they come.  A stanza that is whole within one read and that
 * xmlcheck_stanza proves well-formed goes to the pass callback as the bytes
 * it is.  Any other item (a prefixed stanza, the stream's end, one with a
 * lexer error, one the read cuts) is replayed through the parse path from
 * the lexer's state at its first byte, as though pass mode were off: the
 * same events, the same errors at the same bytes, and nothing held here.
 */
static int
xmlstream_replay(struct xmlstream *xs, const unsigned char *p, size_t n)
{
	xs->f = xs->ps->f;
	xs->ps->div = 1;
	return xmlstream_run_parse(xs, p, n);
}

/* The item P[SEG..OFF) of P[0..N): passed as it is, or parsed. */
static int
xmlstream_pass_item(struct xmlstream *xs, const unsigned char *p, size_t seg,
    size_t off, size_t n)
{
	int	rc;

	if (!xmlcheck_stanza(p + seg, off - seg)) {
		rc = xmlstream_replay(xs, p + seg, off - seg);
		if (rc == XMLS_STOPPED && xmlstream_hold(xs, p + off, n - off) == -1)
			return XMLS_ERROR;
		return rc;
	}
	xs->in_parse = 1;
	xmlstream_call(xs, xs->ps->raw(xs->arg, p + seg, off - seg));
	xs->in_parse = 0;
	return xmlstream_item_done(xs, p, off, n);
}

static int
xmlstream_run_pass(struct xmlstream *xs, const unsigned char *p, size_t n)
{
	size_t	off = 0, seg = 0;
	int	ev, rc;

	while (off < n) {
		if (off == seg)
			xs->ps->f = xs->f;	/* an item's first byte */
		xs->f.want_markup = 0;
		off += xmlfilter_scan(&xs->f, p + off, n - off, &ev);
		if (ev == XF_ERROR)
			return xmlstream_replay(xs, p + seg, n - seg);
		if (ev != XF_ITEM)
			continue;
		rc = xmlstream_pass_item(xs, p, seg, off, n);
		seg = off;
		if (rc != XMLS_OK)
			return rc;
		if (xs->ps->raw == NULL || xs->ps->div)
			return xmlstream_run(xs, p + off, n - off);
	}
	/* An item, or markup after the stream's end, cut by the read. */
	if (!xmlfilter_idle(&xs->f))
		return xmlstream_replay(xs, p + seg, n - seg);
	return XMLS_OK;		/* white space between stanzas */
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

void
xmlstream_set_pass(struct xmlstream *xs, int (*raw)(void *, const void *, size_t))
{
	if (xs->ps == NULL) {
		if (raw == NULL)
			return;
		xs->ps = xcalloc(1, sizeof(*xs->ps));
	}
	xs->ps->raw = raw;
	/* An item under way, or being parsed now, ends on the parse path. */
	xs->ps->div = !xmlfilter_idle(&xs->f) || xs->pend.len > 0 || xs->in_parse;
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
