/*
 * xmlparse.c: xmlstream's expat side: the memory a stream holds, counted
 * against its limit; expat's callbacks and the trees they build, with the
 * XMPP rules on the stream header; the parser itself.  The design is in
 * xmlstream.c's opening comment.
 */
#include <sys/random.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xmlstream_int.h"

#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
#define XMLS_HAVE_DEFERRAL	1
#else
/* Present in distributions' backports of 2.6's fix; absent upstream. */
XMLPARSEAPI(XML_Bool) XML_SetReparseDeferralEnabled(XML_Parser, XML_Bool)
    __attribute__((weak));
#define XMLS_HAVE_DEFERRAL	0
#endif

/* ---- memory: everything a parser holds is counted against its limit ---- */

static int
xmlstream_nomem(struct xmlstream *xs)
{
	return xmlstream_fail(xs, XML_COND_POLICY_VIOLATION,
	    "the parser would hold more than %zu bytes", xs->mem.limit);
}

int
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

void
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

void
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

int
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

void
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

int
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
