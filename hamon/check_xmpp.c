/*
 * check_xmpp.c: the xmpp check: a client stream must be answered by a
 * well-formed <stream:stream> and a complete <stream:features> in time.
 * A bare TCP connect proves nothing (some networks accept for anyone).
 */
#include <stdlib.h>
#include <string.h>

#include "probe_int.h"

struct check_xmpp {
	struct probe	 p;		/* first: the probe base */
	struct xc	*xc;
};

static void
check_xmpp_on_stream(struct xc *xc, void *arg)
{
	xc_stage(xc, "features");
}

static void
check_xmpp_on_stanza(struct xc *xc, const struct xnode *n, void *arg)
{
	struct check_xmpp	*c = arg;

	if (strcmp(n->ns, XMPP_NS_STREAMS) != 0 || strcmp(n->name, "features") != 0) {
		probe_fail(&c->p, "features: expected <stream:features>, got <%.40s>",
		    n->name);
		return;
	}
	probe_ok(&c->p);
}

static const struct xc_handler check_xmpp_handler = {
	.on_stream = check_xmpp_on_stream,
	.on_stanza = check_xmpp_on_stanza,
};

static void
check_xmpp_expire(struct probe *p)
{
	xc_expire(((struct check_xmpp *)p)->xc);
}

static void
check_xmpp_release(struct probe *p)
{
	struct check_xmpp	*c = (struct check_xmpp *)p;

	xc_close(c->xc);
	c->xc = NULL;
}

static const struct probe_kind_ops check_xmpp_ops = {
	.expire = check_xmpp_expire,
	.release = check_xmpp_release,
};

struct probe *
check_xmpp_start(struct event_base *base, const struct check_target *t,
    int timeout_ms, probe_done_cb done, void *arg)
{
	struct check_xmpp	*c;

	c = xcalloc(1, sizeof(*c));
	probe_init(&c->p, &check_xmpp_ops, base, CHECK_XMPP, timeout_ms, done, arg);
	c->xc = xc_open(&c->p, t, &check_xmpp_handler, c);
	return &c->p;
}
