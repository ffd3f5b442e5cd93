/*
 * prefeat.c: each backend's stream features before authentication, as it
 * last sent them for a domain, so that proxyd can answer a client's first
 * stream itself and connect to the backend only once the client says
 * something: an idle unauthenticated client holds no backend session.
 * One cache for all workers (struct proxyd_shared), under its own mutex:
 * it is read once per client stream header.
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

/* 0: OUT holds the features BACKEND last offered for DOMAIN. */
int
prefeat_get(const struct session_ctx *ctx, const char *backend,
    const char *domain, struct buf *out)
{
	struct proxyd_shared	*sh = ctx->shared;
	struct prefeat		*p;

	pthread_mutex_lock(&sh->pmu);
	if ((p = prefeat_find(sh->prefeat, backend, domain)) != NULL) {
		buf_reset(out);
		buf_add(out, p->body.data, p->body.len);
	}
	pthread_mutex_unlock(&sh->pmu);
	return p != NULL ? 0 : -1;
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

static void
prefeat_forget_locked(struct proxyd_shared *sh, const char *backend,
    const char *domain)
{
	struct prefeat	*p, **pp;

	for (pp = &sh->prefeat; (p = *pp) != NULL; pp = &p->next)
		if (strcmp(p->backend, backend) == 0 &&
		    strcasecmp(p->domain, domain) == 0) {
			*pp = p->next;
			prefeat_free_one(p);
			return;
		}
}

void
prefeat_put(struct session_ctx *ctx, const char *backend, const char *domain,
    const struct xml_node *features, const struct buf *body)
{
	struct proxyd_shared	*sh = ctx->shared;
	struct prefeat		*p, **pp;
	size_t			 n = 0;

	pthread_mutex_lock(&sh->pmu);
	if (!prefeat_usable(features))
		prefeat_forget_locked(sh, backend, domain);
	else if ((p = prefeat_find(sh->prefeat, backend, domain)) != NULL) {
		buf_reset(&p->body);
		buf_add(&p->body, body->data, body->len);
	} else {
		p = xcalloc(1, sizeof(*p));
		p->backend = xstrdup(backend);
		p->domain = xstrdup(domain);
		buf_init(&p->body);
		buf_add(&p->body, body->data, body->len);
		p->next = sh->prefeat;
		sh->prefeat = p;
		/* The list is newest first: past the bound, its tail goes. */
		for (pp = &sh->prefeat; *pp != NULL && ++n <= PREFEAT_MAX;
		    pp = &(*pp)->next)
			;
		while ((p = *pp) != NULL) {
			*pp = p->next;
			prefeat_free_one(p);
		}
	}
	pthread_mutex_unlock(&sh->pmu);
}

void
prefeat_forget(struct session_ctx *ctx, const char *backend, const char *domain)
{
	pthread_mutex_lock(&ctx->shared->pmu);
	prefeat_forget_locked(ctx->shared, backend, domain);
	pthread_mutex_unlock(&ctx->shared->pmu);
}

size_t
prefeat_count(const struct session_ctx *ctx)
{
	const struct prefeat	*p;
	size_t			 n = 0;

	pthread_mutex_lock(&ctx->shared->pmu);
	for (p = ctx->shared->prefeat; p != NULL; p = p->next)
		n++;
	pthread_mutex_unlock(&ctx->shared->pmu);
	return n;
}

/* At the end (proxyd_shared_free): no worker runs any more. */
void
prefeat_clear(struct proxyd_shared *sh)
{
	struct prefeat	*p;

	while ((p = sh->prefeat) != NULL) {
		sh->prefeat = p->next;
		prefeat_free_one(p);
	}
}
