/*
 * proxyd.h: proxyd the filtering, domain-aware XMPP proxy.
 * The table of contents of proxyd/: prototypes grouped by the file defining them.
 */
#ifndef PROXYD_H
#define PROXYD_H

#include <pthread.h>
#include <stdatomic.h>

#include "common.h"

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
size_t		 xmlfilter_stanza_limit(const struct xmlfilter *);	/* now */
void		 xmlfilter_skip(struct xmlfilter *, size_t);	/* see there */

/* Repair stage (backend to client): see the comment in xmlrepair.c. */
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

enum listen_tls { LISTEN_TLS_NONE, LISTEN_TLS_STARTTLS, LISTEN_TLS_DIRECT };
struct listen_conf {
	struct net_addr		 addr;
	int			 tls;		/* enum listen_tls */
};
struct tls_conf {
	const char		*cert, *key;	/* PEM files; NULL: none */
};
/* proxyd to a backend: plain XMPP on a trusted network, or TLS. */
enum backend_tls_mode { BTLS_NONE, BTLS_STARTTLS, BTLS_DIRECT };
struct backend_tls_conf {
	int			 mode;		/* enum backend_tls_mode */
	const char		*ca;		/* PEM trust anchors; NULL: the system's */
	int			 verify;	/* the chain and the name (default 1) */
	const char		*name;		/* checked name; NULL: the stream's domain */
	int64_t			 port;		/* direct: the TLS port; 0: the view's */
};
struct upstream_conf {
	const char		*name;		/* as in hamon's view */
	struct backend_tls_conf	 tls;		/* what it does not name: the global */
};
/* Parser limits plus the session's own; a domain's start as the global ones. */
struct limits_conf {
	struct xml_limits	 xml;
	int64_t			 stanzas_per_second;	/* 0: unlimited */
	int64_t			 stanza_timeout_ms;	/* an unfinished stanza */
	int64_t			 auth_timeout_ms;	/* accept to SASL success */
};
struct domain_conf {
	const char		*name;
	int64_t			 max_connections;	/* 0: unlimited */
	const char		*prefer;		/* a backend name or NULL */
	struct limits_conf	 limits;
	struct tls_conf		 tls;		/* cert NULL: the global one */
	int64_t			 move_spread_ms;	/* as the global one unless set */
};
struct proxyd_conf {
	struct cfg_doc		*doc;		/* strings below point into it */
	struct common_conf	 common;
	struct listen_conf	*listen;
	size_t			 nlisten;
	const char		*hamon;		/* hamon's control socket */
	struct tls_conf		 tls;
	int			 require_tls;
	int64_t			 workers;	/* event loop threads (resolved) */
	struct limits_conf	 limits;
	/* A domain moving off a still-alive backend: its sessions there end
	 * spread over this long (0: at once), so clients do not all log in
	 * on the new backend in the same second. */
	int64_t			 move_spread_ms;
	struct backend_tls_conf	 backend_tls;
	struct upstream_conf	*backends;
	size_t			 nbackends;
	struct domain_conf	*domains;
	size_t			 ndomains;
	struct domain_conf	**by_name;	/* domains sorted, for lookups */
};

/* conf.c */
void		*proxyd_conf_load(const char *path, struct cfg_errs *);
void		 proxyd_conf_free(void *);
const struct common_conf *proxyd_conf_common(const void *);
int		 proxyd_conf_check(const char *path, struct cfg_errs *);
const struct domain_conf *proxyd_conf_domain(const struct proxyd_conf *,
		    const char *name);	/* case-insensitive; NULL if not served */

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
/*
 * Pass mode, for a stream whose stanzas need no reading (a backend's, once
 * its session is bound): a stanza that xmlcheck_stanza proves well-formed
 * goes to RAW as its bytes (repaired, with XMLS_REPAIR) instead of through
 * expat and a tree; every other item takes the parse path and the callbacks
 * above, errors exactly as without pass mode.  RAW returns as they do.
 * NULL turns it off; so does a stream restart.  From the next stanza on.
 */
void		 xmlstream_set_pass(struct xmlstream *,
		    int (*raw)(void *arg, const void *stanza, size_t len));
/*
 * The same, but RAW gets what xmlcanon_stanza wrote for the stanza: the
 * bytes serialize_stanza would write from its tree (for a client's stream
 * once bound; a stanza that needs reading, or any xmlcanon_stanza declines,
 * comes to the stanza callback as before).
 */
void		 xmlstream_set_write(struct xmlstream *,
		    int (*raw)(void *arg, const void *stanza, size_t len));
void		 xmlstream_thread_free(void);	/* the writer's scratch, at a worker's end */
/*
 * xmlcheck.c, for a stream whose lexer F is between stanzas, on the bytes
 * P[0..N) from a stanza's '<' to the end of the read: the stanza's length
 * if it is whole there, within F's limits, and well-formed as it is in any
 * stream with the same default namespace (see there); 0: lex and parse it.
 */
size_t		 xmlcheck_stanza(const void *, size_t, const struct xmlfilter *);
/* The same, the stanza also written to B exactly as serialize_stanza(B,
 * tree, NS) would write it in a stream whose default namespace is NS; on 0,
 * B is as it was. */
size_t		 xmlcanon_stanza(const void *, size_t, const struct xmlfilter *,
		    const char *ns, struct buf *);
/* Tree reading (xmltree.c). */
const char	*xmlstream_attr(const struct xml_node *, const char *ns, const char *name);
const struct xml_node *xmlstream_child(const struct xml_node *, const char *ns,
		    const char *name);		/* NULL NAME: the first element */
const char	*xmlstream_text(const struct xml_node *);	/* "" when none */
int		 xmlstream_node_equal(const struct xml_node *, const struct xml_node *);

/* serialize.c: proxyd's canonical writer: every byte a backend receives but
 * stanzas xmlcanon_stanza wrote the same way from their bytes, and all a
 * client does but stanzas passed as they are (xmlstream_set_pass) */
void		 serialize_header(struct buf *, const struct xml_node *root,
		    const char *content_ns);
void		 serialize_stanza(struct buf *, const struct xml_node *,
		    const char *content_ns);
void		 serialize_close(struct buf *);
void		 serialize_text(struct buf *, const char *, size_t);
void		 serialize_attr_value(struct buf *, const char *, size_t);
/* S[0..N) escaped for text or (ATTR) an attribute value, without the NUL */
void		 serialize_escape(struct buf *, const char *, size_t, int attr);

/*
 * hview.c: hamon's membership view as proxyd holds it.  proxyd subscribes to
 * hamon's control socket (`watch`): the full view at once, then each new
 * one.  When hamon is unreachable the last view stays in force.
 */
struct pbackend {
	char		*name;
	struct net_addr	 address;	/* the backend's c2s address */
	char		*state;		/* up down unsynced draining maint */
	int		 eligible;	/* new sessions may go there */
	int		 holds;		/* unsynced, keeping the domains it served */
};
struct pview {
	uint64_t	 generation;
	char		*node;		/* the hamon that published it ("" if unsaid) */
	struct pbackend	*b;
	size_t		 n;
};
#define PVIEW_MAX_BACKENDS	10000	/* as HAMON_MAX_BACKENDS */
#define PVIEW_MAX_NAME		255	/* bytes of a backend or node name */
/*
 * Pure: hamon's view JSON (the watch data) into OUT; -1 and err if malformed
 * (OUT is then empty).  Strict: unknown states, non-numeric addresses (no DNS
 * on the loop), duplicate names, eligible-but-not-up, wrong types, more than
 * PVIEW_MAX_BACKENDS are refused; unknown members are ignored.
 */
int		 pview_parse(const struct jval *, struct pview *out, char *err,
		    size_t errlen);
void		 pview_free(struct pview *);
void		 pview_copy(struct pview *dst, const struct pview *src);
const struct pbackend *pview_find(const struct pview *, const char *name);
/* Same generation, node, and backends (name, address, state, eligible, order). */
int		 pview_equal(const struct pview *, const struct pview *);
size_t		 pview_eligible(const struct pview *);
struct hview;
/*
 * CHANGED runs after every new view (OLD is empty the first time): one that
 * differs from the current in generation or content, a lower generation
 * included (a restarted hamon is believed).  It may call hview_free.  A
 * malformed view is refused (logged, kept in last_error); a lost hamon is
 * one warning per outage, and connected 0.
 */
struct hview	*hview_new(struct event_base *, const char *hamon_socket,
		    void (*changed)(const struct pview *old, const struct pview *cur,
		    void *), void *arg);
void		 hview_free(struct hview *);
const struct pview *hview_current(const struct hview *);
int		 hview_connected(const struct hview *);
const char	*hview_last_error(const struct hview *);	/* NULL when fine */
int		 hview_received(const struct hview *);	/* a valid view has come */
/* Writes "hamon": {socket, connected, last_error, generation, backends...}. */
void		 hview_status(const struct hview *, struct json *);

/* placement.c: which backend holds a domain: rendezvous hashing */
/*
 * Pure: of the candidates (eligible, or holding: see placement.c), the one
 * with the highest hash(domain, backend name); PREFER (a backend name, may
 * be NULL) wins whenever it is a candidate.  Every proxy given the same view
 * picks the same backend, and losing a backend moves only its own domains.
 * NULL when there is no candidate.
 */
const struct pbackend *placement_pick(const struct pview *, const char *domain,
		    const char *prefer);
/*
 * Pure: the indexes (into DOMAINS, ascending) of the domains whose placement
 * differs between OLD and CUR (another backend name or address, or none
 * where there was one, or one where there was none), written to MOVED_IDX
 * (room for N, may be NULL); returns how many.  PREFERS (may be NULL, or
 * hold NULLs) is each domain's preferred backend.
 */
size_t		 placement_moves(const struct pview *old, const struct pview *cur,
		    const char *const *domains, const char *const *prefers, size_t n,
		    size_t *moved_idx);
/*
 * Each served domain and its backend, as placement_pick gives it: what moved
 * from one view to the next.  Update it with every view and after a reload
 * (D: the domains served now; others are dropped); returns how many
 * placements changed.
 * _get: the backend name (NULL: none) of DOMAIN, case-insensitive; -1 when
 * the table does not hold DOMAIN.
 */
struct placement_table;
struct placement_table *placement_table_new(void);
void		 placement_table_free(struct placement_table *);
size_t		 placement_table_update(struct placement_table *, const struct pview *cur,
		    const struct domain_conf *d, size_t n);
int		 placement_table_get(const struct placement_table *, const char *domain,
		    const char **backend);
/*
 * Pure: how a session on backend FROM leaves when its domain is placed on TO
 * (NULL: nowhere) in CUR: MOVE_STAY when TO is FROM; MOVE_NOW when FROM is
 * down or gone from CUR, or there is nowhere to go; MOVE_SPREAD when FROM is
 * alive (up, unsynced, draining, maint): a graceful end over move_spread.
 */
enum placement_move { MOVE_STAY, MOVE_NOW, MOVE_SPREAD };
enum placement_move placement_move_kind(const struct pview *cur, const char *from,
		    const struct pbackend *to);
/* Pure: when the Ith of K sessions moving over SPREAD_MS ends (0 for the
 * first, evenly after it, all before SPREAD_MS). */
uint64_t	 placement_spread_delay(uint64_t spread_ms, size_t i, size_t k);
/* The rendezvous weight: SipHash-2-4 of lowercase(DOMAIN) || 0 || BACKEND. */
uint64_t	 placement_weight(const char *domain, const char *backend);

/* tls.c: OpenSSL server contexts, one per certificate, chosen by SNI */
struct ssl_ctx_st;
struct tls_set;
struct tls_set	*tls_set_new(const struct proxyd_conf *, char *err, size_t errlen);
void		 tls_set_free(struct tls_set *);
int		 tls_set_enabled(const struct tls_set *);
/* A new server-side SSL object (SNI picks the domain's certificate). */
struct ssl_st	*tls_set_ssl(struct tls_set *);
/* The client side, toward backends: a context per backend_tls setting. */
struct tls_client;
struct tls_client *tls_client_new(const struct proxyd_conf *, char *err, size_t errlen);
void		 tls_client_free(struct tls_client *);
/* Backend NAME's settings: its own entry in backends, else backend_tls. */
const struct backend_tls_conf *tls_client_conf(const struct tls_client *,
		    const char *backend);
/* A client SSL for backend NAME that checks HOST (and sends it as SNI) as
 * its settings say; NULL when its mode is none or on error. */
struct ssl_st	*tls_client_ssl(const struct tls_client *, const char *backend,
		    const char *host);
/* Why a handshake with SSL failed, for a log line and status. */
void		 tls_client_error(struct ssl_st *, unsigned long err, char *out,
		    size_t outlen);

/* server.c: the running proxyd: listeners, the view, sessions, hooks */
struct proxyd;
int		 proxyd_start(struct daemon *, void *conf, char *err, size_t);
int		 proxyd_swap(struct daemon *, void *conf, char *err, size_t);
void		 proxyd_stop(struct daemon *);
void		 proxyd_status(struct daemon *, struct json *);
void		 proxyd_command(struct daemon *, struct control_conn *, int, char **);

/* listener.c: accepting sockets, one per listen entry */
struct listener;
struct listener	*listener_new(struct event_base *, const struct listen_conf *,
		    void (*accept)(int fd, const struct sockaddr *, socklen_t,
		    const struct listen_conf *, void *), void *arg, char *err, size_t);
void		 listener_free(struct listener *);
/* Reload: the same address (its tls mode may change), from the new config. */
void		 listener_set_conf(struct listener *, const struct listen_conf *);
const struct listen_conf *listener_conf(const struct listener *);

/* session.c: one client connection from accept to close */
struct session;
/* count.c: live session counts by name; ICASE: names compare case-insensitively */
struct count_map;
struct count_map *count_map_new(int icase);
void		 count_map_free(struct count_map *);
void		 count_add(struct count_map *, const char *key, int delta);
size_t		 count_get(const struct count_map *, const char *key);

/* What every worker's sessions share (worker.c): the domain counts, so that
 * max_connections holds across workers, and the session ids. */
struct proxyd_shared {
	pthread_mutex_t		 mu;		/* for by_domain */
	struct count_map	*by_domain;	/* sessions not closing */
	atomic_uint_fast64_t	 next_id;
	pthread_mutex_t		 pmu;		/* for prefeat */
	struct prefeat		*prefeat;	/* see prefeat.c */
};
struct proxyd_shared *proxyd_shared_new(void);
void		 proxyd_shared_free(struct proxyd_shared *);

/* One event loop's sessions: a worker's (worker.c), or the main thread's
 * control context (no sessions; its view is hview's). */
struct session_ctx {
	struct event_base	*base;
	const struct proxyd_conf *conf;		/* swapped on reload */
	struct tls_set		*tls;
	struct tls_client	*up_tls;	/* toward the backends */
	struct hview		*hv;		/* the main thread's only */
	const struct pview	*view;		/* the view this loop places by */
	struct placement_table	*placed;	/* each domain's backend, sticky */
	struct proxyd_shared	*shared;
	unsigned		 wid, nw;	/* this worker's index, of nw */
	struct session		*head;		/* all sessions */
	size_t			 count;
	/* Sessions not closing by backend (see session_recount); by domain
	 * is shared. */
	struct count_map	*by_backend;
	struct count_map	*moving;	/* sessions with a spread end, by domain */
	uint64_t		 accepted, refused, no_backend, tls_failures;
	uint64_t		 errors[XML_COND_COUNT];	/* stream errors sent */
	size_t			 trimmed;	/* parser bytes freed since malloc_trim */
	uint64_t		 backend_tls_failures;
	char			 backend_tls_error[400];	/* the last one */
	uint64_t		 backend_tls_logged;	/* now_mono_ms() of its log line */
	size_t			 moves_pending;	/* sessions with a spread end set */
	uint64_t		 moved;		/* sessions ended by a domain move */
	/* Sessions with relayed output gathered this loop turn: see session_flush. */
	struct session		*dirty;
	struct event		*ev_flush;
	int			 flush_armed;
	struct buf		 rd[2];	/* a read's output: to the client, the backend */
};
/* TLS: the listener's enum listen_tls. */
void		 session_accept(struct session_ctx *, int fd, const struct sockaddr *,
		    socklen_t, int tls);
void		 session_sweep(struct session_ctx *);	/* timeouts, trims: 1/s */
size_t		 session_count_domain(const struct session_ctx *, const char *domain);
size_t		 session_count_backend(const struct session_ctx *, const char *backend);
/* Each session (of DOMAIN, NULL: all) as a JSON object, into an array. */
void		 session_list_json(const struct session_ctx *, struct json *,
		    const char *domain);
int		 session_kick(struct session_ctx *, const char *jid);	/* sessions ended */
/* Stop: every session gets COND, what can be written at once is, all freed. */
void		 session_shutdown(struct session_ctx *, enum xml_cond, const char *text);

/* prefeat.c: backends' features before authentication, by backend and domain */
int		 prefeat_get(const struct session_ctx *, const char *backend,
		    const char *domain, struct buf *out);
/* FEATURES as parsed, BODY its children as relayed (less <starttls/>). */
void		 prefeat_put(struct session_ctx *, const char *backend,
		    const char *domain, const struct xml_node *features,
		    const struct buf *body);
void		 prefeat_forget(struct session_ctx *, const char *backend,
		    const char *domain);
size_t		 prefeat_count(const struct session_ctx *);
void		 prefeat_clear(struct proxyd_shared *);

/* worker.c: the event loops that run the sessions */
struct worker;
struct worker_init {
	size_t			 nw;		/* workers in all */
	const struct proxyd_conf *conf;
	struct tls_set		*tls;
	struct tls_client	*up_tls;
	struct proxyd_shared	*shared;
};
struct worker	*worker_new(size_t id, const struct worker_init *, char *err,
		    size_t errlen);
void		 worker_free(struct worker *);	/* its sessions told and freed */
struct session_ctx *worker_ctx(struct worker *);
/* FN(W, ARG) in W's thread, in order: posted (ARG is FN's to free), or
 * called (the caller waits for it). */
void		 worker_post(struct worker *, void (*)(struct worker *, void *),
		    void *);
void		 worker_call(struct worker *, void (*)(struct worker *, void *),
		    void *);
void		 worker_accept(struct worker *, int fd, const struct sockaddr *,
		    socklen_t, int tls);
void		 worker_view(struct worker *, const struct pview *);
void		 worker_swap(struct worker *, const struct proxyd_conf *,
		    struct tls_set *, struct tls_client *, int place);
/* Counters summed over workers; the name lists are the caller's. */
struct worker_stats {
	size_t		 count, moves_pending;
	uint64_t	 accepted, refused, no_backend, tls_failures, moved;
	uint64_t	 backend_tls_failures, backend_tls_logged;
	char		 backend_tls_error[400];
	uint64_t	 errors[XML_COND_COUNT];
	const char	*const *domains;	/* in: names */
	size_t		 ndomains;
	size_t		*dom_moving;		/* out: moves pending per domain */
	const char	*const *backends;
	size_t		 nbackends;
	size_t		*be_sessions;		/* out: sessions per backend */
};
void		 worker_stats_add(struct worker *, struct worker_stats *);

/* move.c: sessions following their domain's placement */
/* After each view (ctx->placed updated first): at once, spread, or stay. */
void		 move_view_changed(struct session_ctx *, const struct pview *);
/* DOMAIN's backend in V from ctx->placed (placement_pick if not there). */
const struct pbackend *move_placement(const struct session_ctx *,
		    const struct pview *v, const char *domain, const char *prefer);
/* Sessions of DOMAIN (NULL: all) waiting for their spread end after a move. */
size_t		 move_count_pending(const struct session_ctx *, const char *domain);

#endif
