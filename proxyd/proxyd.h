/*
 * proxyd.h: proxyd the filtering, domain-aware XMPP proxy.
 * The table of contents of proxyd/: prototypes grouped by the file defining them.
 */
#ifndef PROXYD_H
#define PROXYD_H

#include "common.h"

struct proxyd_conf {
	struct cfg_doc		*doc;		/* strings below point into it */
	struct common_conf	 common;
};

/* conf.c */
void		*proxyd_conf_load(const char *path, struct cfg_errs *);
void		 proxyd_conf_free(void *);
const struct common_conf *proxyd_conf_common(const void *);

/*
 * The XML core: bytes in, checked events out, canonical bytes back.  Transport-
 * free: a session feeds what it reads and writes what serialize.c produces.
 */
#define XML_NS_STREAMS	"http://etherx.jabber.org/streams"
#define XML_NS_XML	"http://www.w3.org/XML/1998/namespace"
#define XML_NS_CLIENT	"jabber:client"

/* xmlfilter.c: RFC 6120 restricted XML: limits, stream error conditions, and
 * the byte-level lexer (and repair stage) that runs before expat sees a byte */

/* RFC 6120 4.9.3, every defined condition, in the RFC's order. */
enum xml_cond {
	XML_COND_NONE = 0,
	XML_COND_BAD_FORMAT,
	XML_COND_BAD_NAMESPACE_PREFIX,
	XML_COND_CONFLICT,
	XML_COND_CONNECTION_TIMEOUT,
	XML_COND_HOST_GONE,
	XML_COND_HOST_UNKNOWN,
	XML_COND_IMPROPER_ADDRESSING,
	XML_COND_INTERNAL_SERVER_ERROR,
	XML_COND_INVALID_FROM,
	XML_COND_INVALID_NAMESPACE,
	XML_COND_INVALID_XML,
	XML_COND_NOT_AUTHORIZED,
	XML_COND_NOT_WELL_FORMED,
	XML_COND_POLICY_VIOLATION,
	XML_COND_REMOTE_CONNECTION_FAILED,
	XML_COND_RESET,
	XML_COND_RESOURCE_CONSTRAINT,
	XML_COND_RESTRICTED_XML,
	XML_COND_SEE_OTHER_HOST,
	XML_COND_SYSTEM_SHUTDOWN,
	XML_COND_UNDEFINED_CONDITION,
	XML_COND_UNSUPPORTED_ENCODING,
	XML_COND_UNSUPPORTED_FEATURE,
	XML_COND_UNSUPPORTED_STANZA_TYPE,
	XML_COND_UNSUPPORTED_VERSION,
	XML_COND_COUNT
};
const char	*xmlfilter_cond_name(enum xml_cond);	/* "not-well-formed"; "" for NONE */
enum xml_cond	 xmlfilter_cond_parse(const char *);	/* XML_COND_NONE if unknown */

/*
 * Per-connection parser limits (xmlfilter_limits_check says which values are
 * sane).  Byte limits count bytes as they arrive, before expat sees them,
 * except text_bytes (the decoded text of one node).  depth counts a stanza's
 * elements: the stanza itself is depth 1.  buffer_bytes caps everything one
 * parser holds at once: expat's allocations, the tree, unfinished markup,
 * bytes held after a stop.  Over any limit: policy-violation, with a text
 * naming the limit.
 */
struct xml_limits {
	size_t	stanza_bytes;		/* 262144: one stanza, after authentication */
	size_t	stanza_bytes_preauth;	/* 10000: one stanza or the stream header, before */
	size_t	depth;			/* 32 */
	size_t	attrs;			/* 64 attributes per element (xmlns excluded) */
	size_t	attr_bytes;		/* 8192: one attribute value as sent */
	size_t	text_bytes;		/* 262144: one text node, decoded */
	size_t	ns_decls;		/* 16 namespace declarations per element */
	size_t	buffer_bytes;		/* 2 MiB: memory of one parser at its peak */
	size_t	buffer_bytes_preauth;	/* 128 KiB */
};
#define XML_LIMIT_MAX_DEPTH	256
void		 xmlfilter_limits_default(struct xml_limits *);
int		 xmlfilter_limits_check(const struct xml_limits *, char *err, size_t errlen);

/* The lexer: validates UTF-8 and XML characters, follows markup, counts. */
enum xmlfilter_event {
	XF_MORE = 0,		/* all bytes taken */
	XF_MARKUP,		/* a markup token ended (only when want_markup) */
	XF_ITEM,		/* a top-level item ended: header, stanza, stream end */
	XF_ERROR		/* cond, what and limit are set; the bad byte is not taken */
};
struct xmlfilter {
	const struct xml_limits	*lim;
	int			 authed;
	int			 want_markup;
	uint8_t			 state, quote, sub, end_tag, slash;
	uint8_t			 need, lower, upper;	/* UTF-8 decoder */
	uint32_t		 cp;
	int			 item;		/* a top-level item is in progress */
	int			 opened, closed;	/* stream header seen, stream ended */
	int			 bom;
	uint32_t		 depth;		/* open elements, the stream included */
	uint32_t		 nattr, run;
	uint64_t		 pos;		/* document offset of the next byte */
	uint64_t		 mark;		/* offset of the '<' of open markup */
	uint64_t		 item_bytes;
	enum xml_cond		 cond;
	const char		*what;		/* the error, and the limit it broke */
	size_t			 limit;
};
void		 xmlfilter_init(struct xmlfilter *, const struct xml_limits *, int authed);
size_t		 xmlfilter_scan(struct xmlfilter *, const unsigned char *, size_t,
		    int *event);			/* returns the bytes taken */
int		 xmlfilter_in_markup(const struct xmlfilter *);
int		 xmlfilter_idle(const struct xmlfilter *);	/* between stanzas */

/* Repair stage (backend to client): see the comment in xmlfilter.c. */
struct xmlrepair {
	uint8_t		state, need, lower, upper, run;
	uint8_t		nu8, nlook;
	unsigned char	u8[4];
	unsigned char	look[40];
	uint32_t	cp;
};
#define XML_REPAIR_SLACK	64	/* output room the repair needs per input byte */
void		 xmlfilter_repair_init(struct xmlrepair *);
/* Repairs IN into OUT (CAP >= XML_REPAIR_SLACK); returns bytes written,
 * *TAKEN the input bytes consumed. */
size_t		 xmlfilter_repair(struct xmlrepair *, const unsigned char *in, size_t n,
		    unsigned char *out, size_t cap, size_t *taken);

/* xmlstream.c: the streaming XMPP parser on expat: bytes in, events out */
enum xml_node_type { XML_NODE_ELEM, XML_NODE_TEXT };
struct xml_attr {
	const char	*ns;		/* namespace URI; NULL: none */
	const char	*name;		/* local name */
	const char	*value;		/* decoded, NUL-terminated */
	size_t		 vlen;
};
struct xml_node {
	enum xml_node_type	 type;
	struct xml_node		*parent, *next, *child, *last;
	const char		*ns;		/* ELEM: namespace URI; NULL: none */
	const char		*name;		/* ELEM: local name */
	struct xml_attr		*attrs;		/* ELEM */
	size_t			 nattrs;
	const char		*text;		/* TEXT: decoded, NUL-terminated */
	size_t			 len;
};
/*
 * Each returns 0 to go on, non-zero to stop: xmlstream_feed then returns
 * XMLS_STOPPED and keeps the bytes after this event for xmlstream_resume.
 * A node lives until its callback returns.  A callback may call
 * xmlstream_restart (the rest is then a new stream) and xmlstream_set_auth,
 * never xmlstream_feed or xmlstream_free.
 */
struct xmlstream_cb {
	int	(*open)(void *arg, const struct xml_node *root);  /* attributes only */
	int	(*stanza)(void *arg, const struct xml_node *stanza);
	int	(*close)(void *arg);
};
#define XMLS_REPAIR	0x01	/* backend to client: repair instead of failing */
#define XMLS_KEEP	0x02	/* keep expat between stanzas: faster, ~13 KiB each;
				   xmlstream_trim (from an idle timer) frees it */
#define XMLS_OK		0
#define XMLS_STOPPED	1
#define XMLS_ERROR	(-1)
struct xmlstream;
/*
 * CONTENT_NS: the default namespace the stream must declare (NULL:
 * jabber:client).  LIMITS is copied (NULL: the defaults); it starts
 * unauthenticated.  Feeding returns XMLS_OK, XMLS_STOPPED or XMLS_ERROR
 * (then xmlstream_error says the condition; the stream is dead).
 */
struct xmlstream *xmlstream_new(const struct xml_limits *, const char *content_ns,
		    int flags, const struct xmlstream_cb *, void *arg);
void		 xmlstream_free(struct xmlstream *);
int		 xmlstream_feed(struct xmlstream *, const void *, size_t);
int		 xmlstream_resume(struct xmlstream *);	/* after XMLS_STOPPED */
void		 xmlstream_restart(struct xmlstream *);	/* a new stream header is next */
void		 xmlstream_set_auth(struct xmlstream *, int authenticated);
void		 xmlstream_trim(struct xmlstream *);	/* free what an idle parser holds */
enum xml_cond	 xmlstream_error(const struct xmlstream *);
const char	*xmlstream_error_text(const struct xmlstream *);
/* now_mono_ms() when the unfinished stanza (or header) began; 0 between stanzas */
uint64_t	 xmlstream_busy_since(const struct xmlstream *);
size_t		 xmlstream_memsize(const struct xmlstream *);	/* bytes held now */
size_t		 xmlstream_mempeak(const struct xmlstream *);
/* Tree reading. */
const char	*xmlstream_attr(const struct xml_node *, const char *ns, const char *name);
const struct xml_node *xmlstream_child(const struct xml_node *, const char *ns,
		    const char *name);		/* NULL NAME: the first element */
const char	*xmlstream_text(const struct xml_node *);	/* "" when none */
int		 xmlstream_node_equal(const struct xml_node *, const struct xml_node *);

/* serialize.c: proxyd's canonical writer: the only bytes a peer receives */
void		 serialize_header(struct buf *, const struct xml_node *root,
		    const char *content_ns);
void		 serialize_stanza(struct buf *, const struct xml_node *,
		    const char *content_ns);
void		 serialize_close(struct buf *);
void		 serialize_text(struct buf *, const char *, size_t);
void		 serialize_attr_value(struct buf *, const char *, size_t);

#endif
