/*
 * prefeat.c: each backend's stream features before authentication, as it
 * last sent them for a domain, so that proxyd can answer a client's first
 * stream itself and connect to the backend only once the client says
 * something: an idle unauthenticated client holds no backend session.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxyd.h"

/* Backends x domains in practice; past this, the oldest entry goes. */
#define PREFEAT_MAX	1024

#define NS_IQ_AUTH	"http://jabber.org/features/iq-auth"

struct prefeat {
	struct prefeat	*next;
	char		*backend, *domain;
	struct buf	 body;		/* the children, less <starttls/> */
};

static struct prefeat *
prefeat_find(struct prefeat *head, const char *backend, const char *domain)
{
	struct prefeat	*p;

	for (p = head; p != NULL; p = p->next)
		if (strcmp(p->backend, backend) == 0 &&
		    strcasecmp(p->domain, domain) == 0)
			return p;
	return NULL;
}

static void
prefeat_free_one(struct prefeat *p)
{
	free(p->backend);
	free(p->domain);
	buf_free(&p->body);
	free(p);
}

const struct buf *
prefeat_get(const struct session_ctx *ctx, const char *backend, const char *domain)
{
	struct prefeat	*p = prefeat_find(ctx->prefeat, backend, domain);

	return p != NULL ? &p->body : NULL;
}

/*
 * Legacy authentication (XEP-0078) digests the stream id, which only the
 * backend's own header can give: such a backend is never answered for.
 */
static int
prefeat_usable(const struct xml_node *features)
{
	const struct xml_node	*c;

	for (c = features->child; c != NULL; c = c->next)
		if (c->type == XML_NODE_ELEM && c->ns != NULL &&
		    strcmp(c->ns, NS_IQ_AUTH) == 0)
			return 0;
	return 1;
}

void
prefeat_put(struct session_ctx *ctx, const char *backend, const char *domain,
    const struct xml_node *features, const struct buf *body)
{
	struct prefeat	*p, **pp;
	size_t		 n = 0;

	if ((p = prefeat_find(ctx->prefeat, backend, domain)) != NULL) {
		if (!prefeat_usable(features)) {
			prefeat_forget(ctx, backend, domain);
			return;
		}
		buf_reset(&p->body);
		buf_add(&p->body, body->data, body->len);
		return;
	}
	if (!prefeat_usable(features))
		return;
	p = xcalloc(1, sizeof(*p));
	p->backend = xstrdup(backend);
	p->domain = xstrdup(domain);
	buf_init(&p->body);
	buf_add(&p->body, body->data, body->len);
	p->next = ctx->prefeat;
	ctx->prefeat = p;
	/* The list is newest first: past the bound, its tail goes. */
	for (pp = &ctx->prefeat; *pp != NULL && ++n <= PREFEAT_MAX;
	    pp = &(*pp)->next)
		;
	while ((p = *pp) != NULL) {
		*pp = p->next;
		prefeat_free_one(p);
	}
}

void
prefeat_forget(struct session_ctx *ctx, const char *backend, const char *domain)
{
	struct prefeat	*p, **pp;

	for (pp = &ctx->prefeat; (p = *pp) != NULL; pp = &p->next)
		if (strcmp(p->backend, backend) == 0 &&
		    strcasecmp(p->domain, domain) == 0) {
			*pp = p->next;
			prefeat_free_one(p);
			return;
		}
}

size_t
prefeat_count(const struct session_ctx *ctx)
{
	const struct prefeat	*p;
	size_t			 n = 0;

	for (p = ctx->prefeat; p != NULL; p = p->next)
		n++;
	return n;
}

void
prefeat_clear(struct session_ctx *ctx)
{
	struct prefeat	*p;

	while ((p = ctx->prefeat) != NULL) {
		ctx->prefeat = p->next;
		prefeat_free_one(p);
	}
}
