/*
 * probe_int.h: what the check kinds (check_*.c) share and the scheduler never
 * sees: the probe base (probe.c) and the small XMPP client (xmpp_client.c).
 */
#ifndef HAMON_PROBE_INT_H
#define HAMON_PROBE_INT_H

#include "hamon.h"

struct probe_kind_ops {
	/* The deadline passed: fail now with a message, or arrange to. */
	void	(*expire)(struct probe *);
	/* Close every fd and event of the kind; the probe is freed next.  Also
	 * runs on cancel, so a child process must be killed and reaped here. */
	void	(*release)(struct probe *);
};

/*
 * Every kind embeds this first.  A verdict (probe_ok, probe_fail) only marks
 * the probe finished: the report itself always comes from the loop, never
 * from inside start or a parser callback, so the caller may cancel or free
 * anything in its callback.
 */
struct probe {
	const struct probe_kind_ops	*ops;
	struct event_base	*base;
	struct event		*timer;		/* the deadline, then the report */
	probe_done_cb		 done;
	void			*arg;
	uint64_t		 start_ns;
	int			 timeout_ms;
	int			 finished;	/* verdict known, report pending */
	int			 reporting;	/* inside done() */
	struct check_result	 res;
};

/* probe.c */
void		 probe_init(struct probe *, const struct probe_kind_ops *,
		    struct event_base *, enum check_kind, int timeout_ms,
		    probe_done_cb, void *arg);
void		 probe_ok(struct probe *);
void		 probe_fail(struct probe *, const char *, ...) PRINTFLIKE(2, 3);
uint64_t	 probe_elapsed_us(const struct probe *);
/* Bytes read on fd as text a person may see: printable UTF-8, truncated on a
 * character boundary, control characters and invalid bytes as '?'. */
void		 probe_sanitize(char *dst, size_t dstlen, const char *src, size_t n);

/*
 * A non-blocking TCP client for a probe: connect, a write queue, reads
 * bounded by LIMIT bytes in all.  Errors become the probe's verdict:
 * "connect: ...", "STAGE: read: ...", "STAGE: more than N KiB ...".
 */
struct probe_sock {
	struct probe	*p;
	int		 fd;
	int		 connected;
	struct event	*ev_read, *ev_write;
	struct buf	 out;
	size_t		 out_off;
	size_t		 out_sent;	/* bytes the server has been sent */
	size_t		 in_bytes, in_limit;
	const char	*stage;		/* for messages; "connect" until connected */
	void		(*on_connect)(void *arg);
	void		(*on_data)(void *arg, const char *, size_t);	/* 0: EOF */
	void		*arg;
};
void		 probe_sock_open(struct probe_sock *, struct probe *,
		    const struct net_addr *, size_t limit);
void		 probe_sock_send(struct probe_sock *, const char *, size_t);
void		 probe_sock_close(struct probe_sock *);	/* idempotent */

/* xmpp_client.c: one client stream, parsed by expat within hard bounds */
#define XC_MAX_INPUT	(64 * 1024)	/* bytes per probe, all streams */
#define XC_MAX_DEPTH	16
#define XC_MAX_NODES	256		/* elements per top-level stanza */
#define XC_MAX_TEXT	(16 * 1024)	/* character data per stanza */
#define XC_MAX_ATTRS	16		/* per element */

#define XMPP_NS_STREAMS	"http://etherx.jabber.org/streams"
#define XMPP_NS_SASL	"urn:ietf:params:xml:ns:xmpp-sasl"
#define XMPP_NS_BIND	"urn:ietf:params:xml:ns:xmpp-bind"
#define XMPP_NS_STANZAS	"urn:ietf:params:xml:ns:xmpp-stanzas"
#define XMPP_NS_STREAMERR "urn:ietf:params:xml:ns:xmpp-streams"
#define XMPP_NS_PING	"urn:xmpp:ping"
#define XMPP_NS_CLIENT	"jabber:client"

/* A complete child of <stream:stream>, as a small tree. */
struct xnode {
	char		*ns;		/* namespace URI, "" when none */
	char		*name;		/* local name */
	char		*attrs[2 * XC_MAX_ATTRS + 1];	/* name, value, ..., NULL */
	struct buf	 text;
	struct xnode	*parent, *child, *last, *next;
};
const struct xnode *xnode_child(const struct xnode *, const char *ns, const char *name);
const char	*xnode_attr(const struct xnode *, const char *name);
/* The first child element in NS that is not <text/> (an error condition). */
const char	*xnode_condition(const struct xnode *, const char *ns);

struct xc;
struct xc_handler {
	/* A valid <stream:stream> arrived (again after xc_restart). */
	void	(*on_stream)(struct xc *, void *arg);
	/* A complete top-level element other than <stream:error>. */
	void	(*on_stanza)(struct xc *, const struct xnode *, void *arg);
};
/* Connects to the target; failures go to probe_fail with the current stage. */
struct xc	*xc_open(struct probe *, const struct check_target *,
		    const struct xc_handler *, void *arg);
/* Sends </stream:stream> when the stream was open, and closes. */
void		 xc_close(struct xc *);
void		 xc_send(struct xc *, const char *);
/* A new stream on the same connection (after SASL success). */
void		 xc_restart(struct xc *);
/* Where the probe is, for messages: "connect", "stream", "sasl", ... */
void		 xc_stage(struct xc *, const char *);
const char	*xc_get_stage(const struct xc *);
/* "STAGE: timeout after N ms (M bytes received)" */
void		 xc_expire(struct xc *);
void		 xc_escape(struct buf *, const char *);	/* XML attribute value */

/* check_login.c: SCRAM-SHA-1 (RFC 5802), exposed for its test vectors */
#define SCRAM_SIG_LEN	20
char		*scram_client_first_bare(const char *user, const char *cnonce);
char		*scram_client_final(const char *first_bare, const char *cnonce,
		    const char *server_first, const char *password,
		    unsigned char server_sig[SCRAM_SIG_LEN], char *err, size_t errlen);
int		 scram_server_verify(const char *server_final,
		    const unsigned char sig[SCRAM_SIG_LEN], char *err, size_t errlen);

#endif
