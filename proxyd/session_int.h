/*
 * session_int.h: the session as session.c, sasl.c and upstream handling share
 * it; nothing outside proxyd's session layer includes this.
 */
#ifndef PROXYD_SESSION_INT_H
#define PROXYD_SESSION_INT_H

#define NS_TLS		"urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL		"urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND		"urn:ietf:params:xml:ns:xmpp-bind"
#define NS_STREAM_ERR	"urn:ietf:params:xml:ns:xmpp-streams"

/* Past this much unsent output toward one side, stop reading the other. */
#define SESSION_HIGH_WATER	(256 * 1024)
#define SESSION_LOW_WATER	(64 * 1024)

/* TLS toward the backend, before the client's stream may go there. */
enum up_tls_state {
	UPTLS_OFF,		/* plain, or TLS in place */
	UPTLS_FEATURES,		/* our header sent; waiting for <starttls/> */
	UPTLS_PROCEED,		/* <starttls/> sent; waiting for <proceed/> */
	UPTLS_HANDSHAKE		/* the handshake runs (the client's stream waits) */
};

enum session_state {
	SS_TLS,		/* TLS handshake (direct TLS, or after <proceed/>) */
	SS_HEADER,	/* waiting for the client's stream header */
	SS_PRETLS,	/* STARTTLS offered; only <starttls/> may come */
	SS_SWITCHING,	/* <proceed/> being written; then the handshake */
	SS_RELAY,	/* the backend is connected: stanzas flow both ways */
	SS_CLOSING	/* ended; freed once the last bytes are out */
};

struct session {
	struct session		*prev, *next;
	struct session_ctx	*ctx;
	uint64_t		 id;
	int			 fd;
	int			 state;		/* enum session_state */
	int			 listen_tls;	/* enum listen_tls */
	unsigned		 tls:1, authed:1, client_header:1, up_header:1,
				 up_open:1, up_error:1, bev_owns_fd:1;
	unsigned		 up_switch:1;	/* <proceed/> came: TLS next */
	unsigned		 up_plain:1;	/* ubev is a plain socket */
	/* The first stream was answered from prefeat: the backend is connected
	 * at the client's first stanza (up_first holds the client's header),
	 * and its header and features, already given, are not relayed. */
	unsigned		 up_lazy:1, up_swallow:1;
	struct buf		*up_first;
	unsigned		 dirty:1;	/* on ctx->dirty */
	unsigned		 reading:1;	/* in a read callback: it flushes */
	struct session		*dnext;		/* ctx->dirty's link */
	/* Relayed output of this read, or of this loop turn, written at its
	 * end (session_flush). */
	struct buf		*cpend, *upend;
	int			 up_tls;	/* enum up_tls_state */
	struct buf		*up_hold;	/* for the backend once TLS is up */
	struct bufferevent	*cbev, *ubev;
	struct xmlstream	*cx, *ux;
	struct event		*ev_free;
	struct event		*ev_move;	/* set: a spread end after a move */
	uint64_t		 move_at;	/* now_mono_ms() of that end */
	struct xml_limits	 xml;
	int64_t			 rate, stanza_timeout_ms, auth_timeout_ms;
	double			 tokens;
	uint64_t		 tok_ms;
	char			*domain, *prefer, *backend;
	char			*cnt_domain, *cnt_backend;	/* as counted now */
	char			*pending_user, *user, *jid;
	char			 addr[64];
	uint64_t		 since_ms, start_mono, last_mono;
	uint64_t		 bytes_in, bytes_out, stanzas_in, stanzas_out;
	uint64_t		 written_in, passed_out;	/* of those, unparsed */
};

/* session.c */
void		 session_free(struct session *);
void		 session_recount(struct session *);	/* after domain/backend/state */
void		 session_end(struct session *, enum xml_cond, const char *text);
struct buf	*session_buf(void);	/* the serialiser's scratch, emptied */
void		 session_to_client(struct session *, const struct buf *);
void		 session_bytes_to_client(struct session *, const void *, size_t);
void		 session_to_backend(struct session *, const struct buf *);
void		 session_bytes_to_backend(struct session *, const void *, size_t);
/* Writes what session_to_* gathered for S (before any change of its sides). */
void		 session_flush(struct session *);
/* A read callback's feeding: what it relays is written once it is done. */
void		 session_read_begin(struct session *);
void		 session_read_end(struct session *);

/* output.c (where session_buf, session_to_* and session_flush live too) */
void		 output_free(struct session *);		/* S is being freed */
void		 output_shutdown(struct session_ctx *);
void		 session_new_client_parser(struct session *);
/* The backend bound the session's JID: the client's stanzas are written
 * from their bytes from now on (session_c_written). */
void		 session_bound(struct session *);
/* BODY (a backend's features, less <starttls/>) as the client's features. */
void		 session_features(struct session *, const struct buf *body);
/* 1 while the client may still take the optional STARTTLS of its listener. */
int		 session_may_starttls(const struct session *);
/* Peer text for a log line: control characters become '?'. */
const char	*session_clean(const char *, char *out, size_t outlen);

/* move.c */
void		 move_cancel(struct session *);	/* its spread end, if set */

/* upstream.c: the backend side */
/* Connects to the domain's backend; -1: the session is ended already. */
int		 upstream_connect(struct session *);
/* Closes the backend side; a new upstream_connect may follow. */
void		 upstream_drop(struct session *);

/* sasl.c: who the session is, from the SASL exchange it relays */
void		 sasl_client_element(struct session *, const struct xml_node *);
/* 1 when N is the backend's <success/>: the session is authenticated. */
int		 sasl_backend_element(struct session *, const struct xml_node *);
/* Pure: the authcid of a PLAIN message, the n= of a SCRAM client-first. */
char		*sasl_plain_authcid(const unsigned char *, size_t);
char		*sasl_scram_name(const unsigned char *, size_t);

#endif
