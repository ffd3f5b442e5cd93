/*
 * move.c: sessions following their domain's placement: when hamon's view
 * moves a domain, its sessions on the old backend end at once (that backend
 * is down or gone) or spread over move_spread (it is alive), so clients
 * reconnect to the new one without all logging in there at the same second.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "proxyd.h"
#include "session_int.h"

void
move_cancel(struct session *s)
{
	if (s->ev_move == NULL)
		return;
	event_free(s->ev_move);
	s->ev_move = NULL;
	s->move_at = 0;
	s->ctx->moves_pending--;
	count_add(s->ctx->moving, s->domain, -1);
}

static void
move_end(struct session *s, int nowhere)
{
	move_cancel(s);
	s->ctx->moved++;
	session_end(s, XML_COND_SYSTEM_SHUTDOWN, nowhere ? "no backend is "
	    "available for this domain now: reconnect later" : "this domain "
	    "moved to another backend: reconnect");
}

static void
move_cb(evutil_socket_t fd, short what, void *arg)
{
	move_end(arg, 0);
}

static int64_t
move_spread_ms(const struct session_ctx *ctx, const char *domain)
{
	const struct domain_conf	*d = proxyd_conf_domain(ctx->conf, domain);

	return d != NULL ? d->move_spread_ms : ctx->conf->move_spread_ms;
}

static int
move_cmp_domain(const void *a, const void *b)
{
	const struct session	*x = *(struct session *const *)a;
	const struct session	*y = *(struct session *const *)b;
	int			 c = strcasecmp(x->domain, y->domain);

	if (c != 0)
		return c;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void
move_at(struct session *s, uint64_t now, uint64_t delay)
{
	struct timeval	tv;

	s->move_at = now + delay;
	s->ev_move = evtimer_new(s->ctx->base, move_cb, s);
	tv.tv_sec = (time_t)(delay / 1000);
	tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
	evtimer_add(s->ev_move, &tv);
	s->ctx->moves_pending++;
	count_add(s->ctx->moving, s->domain, 1);
}

/*
 * The K sessions of one domain end evenly over its window: the first at
 * once, the last at (K-1)/K of it, so the new backend sees K/window logins
 * a second instead of K at once.  Each worker schedules its own sessions,
 * in its own slots of a grid NW times finer: worker W takes slots W, W+NW,
 * ..., so the workers' ends interleave instead of coinciding.
 */
static void
move_schedule(struct session_ctx *ctx, struct session **v, size_t n)
{
	uint64_t	now = now_mono_ms(), spread;
	size_t		i, j, end, nw = ctx->nw > 0 ? ctx->nw : 1;

	qsort(v, n, sizeof(*v), move_cmp_domain);
	for (i = 0; i < n; i = end) {
		spread = (uint64_t)move_spread_ms(ctx, v[i]->domain);
		for (end = i; end < n &&
		    strcasecmp(v[end]->domain, v[i]->domain) == 0; end++)
			;
		for (j = i; j < end; j++)
			move_at(v[j], now, placement_spread_delay(spread,
			    (j - i) * nw + ctx->wid, (end - i) * nw));
	}
}

/*
 * Sessions whose backend is no longer their domain's placement move: at once
 * when that backend is gone, spread over the domain's move_spread when it
 * is still alive (a failback, a drain, a preference).  A session already
 * waiting keeps its turn, unless its backend is now gone (at once) or the
 * domain came back to it (it stays).
 */
void
move_view_changed(struct session_ctx *ctx, const struct pview *cur)
{
	const struct pbackend	*to;
	struct session		*s, *next, **later = NULL;
	size_t			 nlater = 0, cap = 0, now = 0;
	enum placement_move	 kind;

	for (s = ctx->head; s != NULL; s = next) {
		next = s->next;
		if (s->state == SS_CLOSING || s->backend == NULL)
			continue;
		to = move_placement(ctx, cur, s->domain, s->prefer);
		kind = placement_move_kind(cur, s->backend, to);
		if (kind == MOVE_STAY) {
			move_cancel(s);
			continue;
		}
		/* One still logging in just starts again on the new backend. */
		if (kind == MOVE_NOW || !s->authed ||
		    move_spread_ms(ctx, s->domain) == 0) {
			move_end(s, to == NULL);
			now++;
			continue;
		}
		if (s->ev_move != NULL)
			continue;
		if (nlater == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			later = xreallocarray(later, cap, sizeof(*later));
		}
		later[nlater++] = s;
	}
	if (nlater > 0)
		move_schedule(ctx, later, nlater);
	free(later);
	if (now + nlater > 0) {
		char	who[32] = "";

		if (ctx->nw > 1)
			snprintf(who, sizeof(who), "worker %u: ", ctx->wid);
		log_info("view generation %llu: %s%zu session%s moved at once, "
		    "%zu spread over move_spread",
		    (unsigned long long)cur->generation, who, now,
		    now == 1 ? "" : "s", nlater);
	}
}

const struct pbackend *
move_placement(const struct session_ctx *ctx, const struct pview *v,
    const char *domain, const char *prefer)
{
	const char	*name;

	/* A domain a reload dropped: its remaining sessions follow the hash. */
	if (placement_table_get(ctx->placed, domain, &name) == -1)
		return placement_pick(v, domain, prefer);
	return name != NULL ? pview_find(v, name) : NULL;
}

size_t
move_count_pending(const struct session_ctx *ctx, const char *domain)
{
	if (domain == NULL)
		return ctx->moves_pending;
	return count_get(ctx->moving, domain);
}
