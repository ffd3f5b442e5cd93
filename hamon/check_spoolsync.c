/*
 * check_spoolsync.c: the spoolsync check: GET the backend host's spoolsync
 * /status and judge its peer links: a backend whose spool is not mirrored and
 * current may live, but not take over a domain.  A minimal HTTP/1.0 client,
 * not evhttp: evhttp hides why a connect failed ("connection refused" is the
 * common case here) and its timeouts are per read, not per request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>


#include "probe_int.h"

#define SPOOLSYNC_MAX_BODY	(1024 * 1024)
#define SPOOLSYNC_MAX_HEADERS	(16 * 1024)

struct check_spoolsync {
	struct probe		 p;	/* first: the probe base */
	struct probe_sock	 sock;
	char			*request;
	struct buf		 in;		/* headers and body as received */
	size_t			 head_len;	/* 0 until the headers ended */
	int			 status;
	int64_t			 content_length;	/* -1: until EOF */
	int64_t			 max_lag_ms;
};

/* ---------------------------------------------------------------- URL */

/* Only http://HOST[:PORT][/PATH], HOST numeric ("localhost" allowed): a name
 * would need a resolver, and a blocking one would stall every check. */
int
check_spoolsync_url_parse(const char *url, char *host, size_t hostlen,
    uint16_t *port, const char **path, char *err, size_t errlen)
{
	const char	*s, *h, *hend, *p;
	unsigned char	 a[16];
	long		 v = 80;
	char		*end;
	size_t		 n;

	if (url == NULL || strncmp(url, "http://", 7) != 0) {
		snprintf(err, errlen, "'%.80s': only http://host:port/path URLs are "
		    "supported", url != NULL ? url : "");
		return -1;
	}
	s = url + 7;
	if (*s == '[') {
		h = s + 1;
		if ((hend = strchr(h, ']')) == NULL) {
			snprintf(err, errlen, "'%.80s': unclosed [", url);
			return -1;
		}
		p = hend + 1;
	} else {
		h = s;
		hend = h + strcspn(h, ":/?#");
		p = hend;
	}
	n = (size_t)(hend - h);
	if (n == 0 || n >= hostlen) {
		snprintf(err, errlen, "'%.80s': missing or too long a host", url);
		return -1;
	}
	memcpy(host, h, n);
	host[n] = '\0';
	if (strcmp(host, "localhost") == 0)
		snprintf(host, hostlen, "127.0.0.1");
	if (inet_pton(AF_INET, host, a) != 1 && inet_pton(AF_INET6, host, a) != 1) {
		snprintf(err, errlen, "'%.80s': the host must be an IP address", url);
		return -1;
	}
	if (*p == ':') {
		errno = 0;
		v = strtol(p + 1, &end, 10);
		if (end == p + 1 || errno != 0 || v < 1 || v > 65535 ||
		    (*end != '\0' && *end != '/')) {
			snprintf(err, errlen, "'%.80s': bad port", url);
			return -1;
		}
		p = end;
	}
	if (*p != '\0' && *p != '/') {
		snprintf(err, errlen, "'%.80s': expected a path after the host", url);
		return -1;
	}
	*port = (uint16_t)v;
	*path = *p == '/' ? p : "/";
	return 0;
}

/* ---------------------------------------------------------------- verdict */

/*
 * Every peer connected, in sync and within max_lag; the first that is not
 * says why.  A peer whose link is down but which this spool had caught up
 * with is listed in peers_gone instead: the view knows whether that peer's
 * own backend is down, in which case this spool is the most complete there
 * is and must stay eligible (or a dead host would take its survivor down).
 */
static void
spoolsync_gone(struct check_spoolsync *c, const char *name)
{
	char	*g = c->p.res.peers_gone;
	size_t	 len = strlen(g), n = strlen(name);

	/* A list that would not fit says so: "?" names no backend. */
	if (len + n + 3 > sizeof(c->p.res.peers_gone)) {
		if (len + 2 < sizeof(c->p.res.peers_gone) && strstr(g, "?") == NULL)
			strcat(g, len > 0 ? " ?" : "?");
		return;
	}
	if (len > 0)
		g[len++] = ' ';
	memcpy(g + len, name, n + 1);
}

static void
spoolsync_judge(struct check_spoolsync *c, const struct jval *peers)
{
	const struct jval	*peer;
	const char		*name;
	char			 why[200] = "";
	double			 lag, queued;
	size_t			 i;

	for (i = 0; i < peers->n; i++) {
		peer = peers->items[i];
		if (peer->type != J_OBJ) {
			snprintf(why, sizeof(why), "bad answer: peer %zu is not an "
			    "object", i);
			break;
		}
		name = jval_str(peer, "name") != NULL ? jval_str(peer, "name") : "?";
		lag = jval_num(peer, "lag_ms", -1);
		queued = jval_num(peer, "queued", 0);
		/* A dead peer's backlog grows without bound: not this spool's lag. */
		if (jval_bool(peer, "connected", 0) && lag > (double)c->p.res.lag_ms)
			c->p.res.lag_ms = lag > 1e15 ? (int64_t)1e15 : (int64_t)lag;
		if (why[0] != '\0')
			continue;
		if (!jval_bool(peer, "connected", 0)) {
			if (!hamon_name_valid(name))
				snprintf(why, sizeof(why), "bad answer: peer %zu has "
				    "no valid name", i);
			else if (jval_bool(peer, "caught_up", 0))
				spoolsync_gone(c, name);
			else
				snprintf(why, sizeof(why), "peer %.60s: not connected "
				    "(and this spool had not caught up with it)", name);
		} else if (!jval_bool(peer, "in_sync", 0))
			snprintf(why, sizeof(why), "peer %.60s: not in sync (%.0f queued)",
			    name, queued);
		else if (c->max_lag_ms >= 0 && lag > (double)c->max_lag_ms)
			snprintf(why, sizeof(why), "peer %.60s: lag %.0f ms > %lld ms",
			    name, lag, (long long)c->max_lag_ms);
	}
	if (peers->n == 0)
		snprintf(why, sizeof(why), "no peers: the spool is not mirrored");
	c->p.res.synced = why[0] == '\0';
	probe_sanitize(c->p.res.error, sizeof(c->p.res.error), why, strlen(why));
	probe_ok(&c->p);
}

/* ---------------------------------------------------------------- HTTP */

static const char *
spoolsync_header(const char *head, size_t len, const char *name, size_t *vlen)
{
	const char	*line = head, *end = head + len, *eol, *v;
	size_t		 n = strlen(name);

	for (; line < end; line = eol + 1) {
		if ((eol = memchr(line, '\n', (size_t)(end - line))) == NULL)
			eol = end;
		if ((size_t)(eol - line) > n && strncasecmp(line, name, n) == 0 &&
		    line[n] == ':') {
			for (v = line + n + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
				;
			*vlen = (size_t)(eol - v);
			while (*vlen > 0 && (v[*vlen - 1] == '\r' || v[*vlen - 1] == ' '))
				(*vlen)--;
			return v;
		}
	}
	return NULL;
}

/* The status line and the headers we need: -1 after a verdict. */
static int
spoolsync_head(struct check_spoolsync *c)
{
	const char	*h = c->in.data, *v;
	size_t		 vlen;
	char		 num[24];

	if (c->in.len < 12 || strncmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ' ||
	    sscanf(h + 9, "%3d", &c->status) != 1) {
		probe_fail(&c->p, "http: not an HTTP reply");
		return -1;
	}
	if (c->status != 200) {
		probe_fail(&c->p, "http %d", c->status);
		return -1;
	}
	if (spoolsync_header(h, c->head_len, "Transfer-Encoding", &vlen) != NULL) {
		probe_fail(&c->p, "http: a chunked reply to an HTTP/1.0 request");
		return -1;
	}
	if ((v = spoolsync_header(h, c->head_len, "Content-Length", &vlen)) != NULL) {
		if (vlen == 0 || vlen >= sizeof(num) ||
		    strspn(v, "0123456789") < vlen) {
			probe_fail(&c->p, "http: bad Content-Length");
			return -1;
		}
		memcpy(num, v, vlen);
		num[vlen] = '\0';
		c->content_length = strtoll(num, NULL, 10);
		if (c->content_length > SPOOLSYNC_MAX_BODY) {
			probe_fail(&c->p, "http: reply body over 1 MiB");
			return -1;
		}
	}
	return 0;
}

static void
spoolsync_body(struct check_spoolsync *c, size_t len)
{
	const struct jval	*peers;
	struct jval		*root;
	char			 err[160];

	if (len == 0) {
		probe_fail(&c->p, "bad JSON: an empty reply");
		return;
	}
	if ((root = json_parse(c->in.data + c->head_len, len, err, sizeof(err))) == NULL) {
		probe_fail(&c->p, "bad JSON: %s", err);
		return;
	}
	if (root->type != J_OBJ)
		probe_fail(&c->p, "bad JSON: not an object");
	else if ((peers = jval_get(root, "peers")) == NULL || peers->type != J_ARR)
		probe_fail(&c->p, "bad answer: no \"peers\" list");
	else
		spoolsync_judge(c, peers);
	jval_free(root);
}

static void
spoolsync_data(void *arg, const char *data, size_t n)
{
	struct check_spoolsync	*c = arg;
	const char		*end;
	size_t			 body;

	buf_add(&c->in, data, n);
	if (c->head_len == 0) {
		if ((end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4)) != NULL)
			c->head_len = (size_t)(end - c->in.data) + 4;
		else if ((end = memmem(c->in.data, c->in.len, "\n\n", 2)) != NULL)
			c->head_len = (size_t)(end - c->in.data) + 2;
		else if (n == 0 || c->in.len > SPOOLSYNC_MAX_HEADERS) {
			probe_fail(&c->p, "http: %s", n == 0 ? "connection closed "
			    "before a reply" : "not an HTTP reply (no end of headers)");
			return;
		} else
			return;
		if (spoolsync_head(c) == -1)
			return;
	}
	body = c->in.len - c->head_len;
	if (body > SPOOLSYNC_MAX_BODY)
		probe_fail(&c->p, "http: reply body over 1 MiB");
	else if (c->content_length >= 0 && body >= (size_t)c->content_length)
		spoolsync_body(c, (size_t)c->content_length);
	else if (n == 0 && c->content_length >= 0)
		probe_fail(&c->p, "http: reply truncated (%zu of %lld bytes)", body,
		    (long long)c->content_length);
	else if (n == 0)
		spoolsync_body(c, body);
}

static void
spoolsync_connected(void *arg)
{
	struct check_spoolsync	*c = arg;

	c->sock.stage = "http";
	probe_sock_send(&c->sock, c->request, strlen(c->request));
}

/* ---------------------------------------------------------------- probe */

static void
spoolsync_expire(struct probe *p)
{
	struct check_spoolsync	*c = (struct check_spoolsync *)p;

	probe_fail(p, "%s: timeout after %d ms (%zu bytes received)", c->sock.stage,
	    p->timeout_ms, c->sock.in_bytes);
}

static void
spoolsync_release(struct probe *p)
{
	struct check_spoolsync	*c = (struct check_spoolsync *)p;

	probe_sock_close(&c->sock);
	buf_free(&c->in);
	free(c->request);
	c->request = NULL;
}

static const struct probe_kind_ops spoolsync_ops = {
	.expire = spoolsync_expire,
	.release = spoolsync_release,
};

static void
spoolsync_request(struct check_spoolsync *c, const char *url)
{
	struct net_addr	 addr;
	const char	*path;
	char		 host[64], hostport[80], err[160];
	uint16_t	 port;

	if (check_spoolsync_url_parse(url, host, sizeof(host), &port, &path, err,
	    sizeof(err)) == -1) {
		probe_fail(&c->p, "spoolsync url %s", err);
		return;
	}
	snprintf(hostport, sizeof(hostport), strchr(host, ':') ? "[%s]:%u" : "%s:%u",
	    host, port);
	if (net_addr_parse(hostport, &addr, err, sizeof(err)) == -1) {
		probe_fail(&c->p, "spoolsync url %s", err);
		return;
	}
	/* HTTP/1.0 and close: the reply ends at EOF or Content-Length, unchunked. */
	xasprintf(&c->request, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: hamon/"
	    JHA_VERSION "\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
	    path, hostport);
	c->sock.on_connect = spoolsync_connected;
	c->sock.on_data = spoolsync_data;
	c->sock.arg = c;
	probe_sock_open(&c->sock, &c->p, &addr,
	    SPOOLSYNC_MAX_HEADERS + SPOOLSYNC_MAX_BODY + 4096);
}

struct probe *
check_spoolsync_start(struct event_base *base, const struct check_target *t,
    int timeout_ms, probe_done_cb done, void *arg)
{
	struct check_spoolsync	*c;

	c = xcalloc(1, sizeof(*c));
	c->sock.fd = -1;
	c->content_length = -1;
	buf_init(&c->in);
	c->max_lag_ms = t->max_lag_ms;
	probe_init(&c->p, &spoolsync_ops, base, CHECK_SPOOLSYNC, timeout_ms, done,
	    arg);
	spoolsync_request(c, t->spoolsync_url);
	return &c->p;
}
