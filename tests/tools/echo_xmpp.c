/*
 * echo_xmpp.c: a minimal, fast XMPP server for the proxyd benchmark: any SASL
 * PLAIN login succeeds, bind grants the asked resource, and a <message to=JID>
 * goes to the session bound to JID, so what a proxy in front costs shows.
 *
 *   echo_xmpp [-p PORT] [-d DOMAIN]
 *   prints "port N", serves until SIGTERM/SIGINT, then prints one JSON line
 *   of counts.  It trusts its peers (a loadgen, a proxy): it only splits the
 *   stream into top-level elements, it does not check the XML.
 */
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/evp.h>

#include "common.h"

#define HASH_SIZE	65536		/* bound JIDs: a power of two */
#define MAX_NAME	1024		/* a JID, an id, a resource */

#define NS_SASL		"urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND		"urn:ietf:params:xml:ns:xmpp-bind"

struct echo {
	struct event_base	*base;
	const char		*domain;
	struct conn		*jids[HASH_SIZE];
	uint64_t		 accepted, logins, routed, dropped, open;
	uint64_t		 next_id;
};

struct conn {
	struct echo		*e;
	struct bufferevent	*bev;
	struct conn		*hnext;		/* chain in e->jids */
	char			*user, *jid;
	int			 authed, closing;
	/* The splitter's state, as offsets into the unconsumed input. */
	size_t			 scanned, tag_start, stanza_start;
	int			 depth, in_tag;
	char			 quote;
};

static void	conn_read_cb(struct bufferevent *, void *);

/* ---- bound JIDs ---- */

static uint32_t
jid_hash(const char *s)
{
	uint32_t	h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h & (HASH_SIZE - 1);
}

static struct conn *
jid_find(struct echo *e, const char *jid)
{
	struct conn	*c;

	for (c = e->jids[jid_hash(jid)]; c != NULL; c = c->hnext)
		if (strcmp(c->jid, jid) == 0)
			return c;
	return NULL;
}

static void
jid_remove(struct conn *c)
{
	struct conn	**pp;

	if (c->jid == NULL)
		return;
	for (pp = &c->e->jids[jid_hash(c->jid)]; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
}

/* ---- connections ---- */

static void
conn_free(struct conn *c)
{
	jid_remove(c);
	c->e->open--;
	bufferevent_free(c->bev);
	free(c->user);
	free(c->jid);
	free(c);
}

static void
conn_send(struct conn *c, const char *s)
{
	bufferevent_write(c->bev, s, strlen(s));
}

static void
conn_closed_write_cb(struct bufferevent *bev, void *arg)
{
	conn_free(arg);
}

/* Our stream end is queued: free once it is written. */
static void
conn_close(struct conn *c)
{
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setcb(c->bev, NULL, conn_closed_write_cb, NULL, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_free(c);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn_free(arg);
}

/* ---- element access: enough for what loadgen and proxyd write ---- */

/* The value of attribute NAME in the start tag at P (LEN bytes), or -1. */
static int
attr_get(const char *p, size_t len, const char *name, char *out, size_t outlen)
{
	size_t		 nl = strlen(name), i = 0, j;
	char		 q;

	while (i < len && p[i] != ' ' && p[i] != '>' && p[i] != '/')
		i++;
	while (i < len) {
		while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n'))
			i++;
		j = i;
		while (i < len && p[i] != '=' && p[i] != '>')
			i++;
		if (i + 1 >= len || p[i] != '=' || (p[i + 1] != '\'' && p[i + 1] != '"'))
			return -1;
		q = p[i + 1];
		if (i - j == nl && memcmp(p + j, name, nl) == 0) {
			const char	*v = p + i + 2, *end;

			if ((end = memchr(v, q, len - (i + 2))) == NULL ||
			    (size_t)(end - v) >= outlen)
				return -1;
			memcpy(out, v, (size_t)(end - v));
			out[end - v] = '\0';
			return 0;
		}
		{
			const char	*end = memchr(p + i + 2, q, len - (i + 2));

			if (end == NULL)
				return -1;
			i = (size_t)(end - p) + 1;
		}
	}
	return -1;
}

/* The text between <TAG> (or <TAG xmlns=...>) and </TAG> inside P, or -1. */
static int
child_text(const char *p, size_t len, const char *tag, char *out, size_t outlen)
{
	char		 open[64], close[64];
	const char	*a, *b;
	size_t		 ol = (size_t)snprintf(open, sizeof(open), "<%s", tag);
	size_t		 cl = (size_t)snprintf(close, sizeof(close), "</%s>", tag);

	if ((a = memmem(p, len, open, ol)) == NULL ||
	    (a = memchr(a, '>', len - (size_t)(a - p))) == NULL)
		return -1;
	a++;
	if ((b = memmem(a, len - (size_t)(a - p), close, cl)) == NULL ||
	    (size_t)(b - a) >= outlen)
		return -1;
	memcpy(out, a, (size_t)(b - a));
	out[b - a] = '\0';
	return 0;
}

/* ---- the XMPP side ---- */

static void
stream_open(struct conn *c, const char *tag, size_t len)
{
	char		 to[MAX_NAME], hdr[2 * MAX_NAME];

	if (attr_get(tag, len, "to", to, sizeof(to)) == -1)
		snprintf(to, sizeof(to), "%s", c->e->domain);
	snprintf(hdr, sizeof(hdr), "<?xml version='1.0'?><stream:stream "
	    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
	    "from='%s' id='e%llu' version='1.0'>", to,
	    (unsigned long long)++c->e->next_id);
	conn_send(c, hdr);
	conn_send(c, c->authed ? "<stream:features><bind xmlns='" NS_BIND
	    "'/></stream:features>" : "<stream:features><mechanisms xmlns='"
	    NS_SASL "'><mechanism>PLAIN</mechanism></mechanisms>"
	    "</stream:features>");
}

/* SASL PLAIN: authzid NUL authcid NUL password; any password will do. */
static void
stanza_auth(struct conn *c, const char *p, size_t len)
{
	char		 b64[MAX_NAME];
	unsigned char	 raw[MAX_NAME];
	int		 n;
	size_t		 bl, i;
	const char	*authcid;

	if (child_text(p, len, "auth", b64, sizeof(b64)) == -1 ||
	    (bl = strlen(b64)) == 0 || bl % 4 != 0 ||
	    (n = EVP_DecodeBlock(raw, (unsigned char *)b64, (int)bl)) < 0) {
		conn_send(c, "<failure xmlns='" NS_SASL "'><malformed-request/>"
		    "</failure>");
		return;
	}
	for (i = bl; i > 0 && b64[i - 1] == '='; i--)
		n--;
	raw[n] = '\0';
	authcid = memchr(raw, '\0', (size_t)n) != NULL ?
	    (const char *)raw + strlen((char *)raw) + 1 : "";
	free(c->user);
	c->user = xstrdup(*authcid != '\0' ? authcid : "anonymous");
	c->authed = 1;
	c->e->logins++;
	conn_send(c, "<success xmlns='" NS_SASL "'/>");
	/* The client restarts the stream: a fresh header comes next. */
	c->depth = 0;
}

static void
stanza_bind(struct conn *c, const char *id, const char *p, size_t len)
{
	char		 res[MAX_NAME], jid[3 * MAX_NAME], out[5 * MAX_NAME];
	size_t		 hl;

	if (child_text(p, len, "resource", res, sizeof(res)) == -1 || *res == '\0')
		snprintf(res, sizeof(res), "r%llu", (unsigned long long)++c->e->next_id);
	snprintf(jid, sizeof(jid), "%s@%s/%s", c->user, c->e->domain, res);
	if (jid_find(c->e, jid) != NULL)
		snprintf(jid, sizeof(jid), "%s@%s/%s-%llu", c->user, c->e->domain,
		    res, (unsigned long long)++c->e->next_id);
	jid_remove(c);
	free(c->jid);
	c->jid = xstrdup(jid);
	hl = jid_hash(jid);
	c->hnext = c->e->jids[hl];
	c->e->jids[hl] = c;
	snprintf(out, sizeof(out), "<iq type='result' id='%s'><bind xmlns='" NS_BIND
	    "'><jid>%s</jid></bind></iq>", id, jid);
	conn_send(c, out);
}

static void
stanza_iq(struct conn *c, const char *p, size_t len)
{
	char		 id[MAX_NAME], type[32], out[2 * MAX_NAME];
	const char	*end = memchr(p, '>', len);

	if (attr_get(p, (size_t)(end - p), "id", id, sizeof(id)) == -1)
		snprintf(id, sizeof(id), "none");
	if (attr_get(p, (size_t)(end - p), "type", type, sizeof(type)) == -1 ||
	    (strcmp(type, "get") != 0 && strcmp(type, "set") != 0))
		return;
	if (c->authed && memmem(p, len, "<bind", 5) != NULL) {
		stanza_bind(c, id, p, len);
		return;
	}
	snprintf(out, sizeof(out), "<iq type='result' id='%s'/>", id);
	conn_send(c, out);
}

/* Routed as it came, with the sender's JID stamped in as 'from'. */
static void
stanza_message(struct conn *c, const char *p, size_t len)
{
	char		 to[3 * MAX_NAME];
	const char	*end = memchr(p, '>', len);
	struct conn	*dst;
	struct evbuffer	*out;

	if (c->jid == NULL || attr_get(p, (size_t)(end - p), "to", to,
	    sizeof(to)) == -1 || (dst = jid_find(c->e, to)) == NULL ||
	    dst->closing) {
		c->e->dropped++;
		return;
	}
	out = bufferevent_get_output(dst->bev);
	evbuffer_add(out, "<message from='", 15);
	evbuffer_add(out, c->jid, strlen(c->jid));
	evbuffer_add(out, "'", 1);
	evbuffer_add(out, p + 8, len - 8);
	c->e->routed++;
}

static void
stanza(struct conn *c, const char *p, size_t len)
{
	if (len > 6 && memcmp(p, "<auth ", 6) == 0 && !c->authed)
		stanza_auth(c, p, len);
	else if (len > 4 && memcmp(p, "<iq ", 4) == 0)
		stanza_iq(c, p, len);
	else if (len > 9 && memcmp(p, "<message ", 9) == 0)
		stanza_message(c, p, len);
	/* presence and anything else: nobody here to tell */
}

/*
 * A tag ends at P[i]: P + tag_start .. i.  Returns 1 when the stream ended.
 */
static int
conn_tag(struct conn *c, const char *p, size_t i)
{
	const char	*t = p + c->tag_start;
	size_t		 tl = i + 1 - c->tag_start;

	if (t[1] == '?' || t[1] == '!')
		return 0;
	if (t[1] == '/') {
		if (--c->depth <= 0)
			return 1;
		if (c->depth == 1)
			stanza(c, p + c->stanza_start, i + 1 - c->stanza_start);
		return 0;
	}
	if (t[tl - 2] == '/') {
		if (c->depth == 1)
			stanza(c, t, tl);
		return 0;
	}
	if (c->depth == 0)
		stream_open(c, t, tl);
	else if (c->depth == 1)
		c->stanza_start = c->tag_start;
	c->depth++;
	return 0;
}

/* Splits the input into top-level elements: quotes and tags, nothing more. */
static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	size_t		 len = evbuffer_get_length(in), i, keep;
	const char	*p = (const char *)evbuffer_pullup(in, -1), *q;

	for (i = c->scanned; i < len; i++) {
		if (!c->in_tag) {
			if ((q = memchr(p + i, '<', len - i)) == NULL) {
				i = len;
				break;
			}
			i = (size_t)(q - p);
			c->in_tag = 1;
			c->tag_start = i;
			continue;
		}
		if (c->quote != 0) {
			if (p[i] == c->quote)
				c->quote = 0;
		} else if (p[i] == '\'' || p[i] == '"')
			c->quote = p[i];
		else if (p[i] == '>') {
			c->in_tag = 0;
			if (conn_tag(c, p, i)) {
				conn_send(c, "</stream:stream>");
				conn_close(c);
				return;
			}
		}
	}
	/* Keep from the first byte still needed: an open stanza or tag. */
	keep = c->depth >= 2 ? c->stanza_start : c->in_tag ? c->tag_start : len;
	evbuffer_drain(in, keep);
	c->scanned = len - keep;
	c->stanza_start -= c->depth >= 2 ? keep : 0;
	c->tag_start -= c->in_tag ? keep : 0;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct echo	*e = arg;
	struct conn	*c;
	int		 on = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	c = xcalloc(1, sizeof(*c));
	c->e = e;
	c->bev = bufferevent_socket_new(e->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		free(c);
		return;
	}
	e->accepted++;
	e->open++;
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(((struct echo *)arg)->base);
}

static void
raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	static struct echo	 e;
	struct evconnlistener	*l;
	struct event		*sigterm, *sigint;
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof(sin);
	int			 ch, port = 0;

	e.domain = "example.test";
	while ((ch = getopt(argc, argv, "p:d:")) != -1) {
		switch (ch) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'd':
			e.domain = optarg;
			break;
		default:
			fprintf(stderr, "usage: echo_xmpp [-p PORT] [-d DOMAIN]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	e.base = event_base_new();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = evconnlistener_new_bind(e.base, accept_cb, &e, LEV_OPT_CLOSE_ON_FREE |
	    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (l == NULL) {
		fprintf(stderr, "echo_xmpp: cannot listen on 127.0.0.1:%d: %s\n", port,
		    strerror(errno));
		return 1;
	}
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &slen);
	printf("port %d\n", ntohs(sin.sin_port));
	fflush(stdout);
	sigterm = evsignal_new(e.base, SIGTERM, stop_cb, &e);
	sigint = evsignal_new(e.base, SIGINT, stop_cb, &e);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	event_base_dispatch(e.base);
	printf("{\"accepted\":%llu,\"logins\":%llu,\"routed\":%llu,\"dropped\":%llu,"
	    "\"open\":%llu}\n", (unsigned long long)e.accepted,
	    (unsigned long long)e.logins, (unsigned long long)e.routed,
	    (unsigned long long)e.dropped, (unsigned long long)e.open);
	fflush(stdout);
	event_free(sigterm);
	event_free(sigint);
	evconnlistener_free(l);
	event_base_free(e.base);
	return 0;
}
