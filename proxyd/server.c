/*
 * server.c: the running proxyd: listeners, TLS contexts and hamon's view
 * wired to the sessions; reload, status, the control commands (sessions,
 * kick) and the metrics.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxyd.h"

#define SERVER_MAX_WORKERS	64

struct proxyd {
	struct daemon		*d;
	/* The main thread's: conf, TLS, hamon's view and the placement for
	 * status; the sessions are the workers'. */
	struct session_ctx	 ctx;
	struct proxyd_shared	*shared;
	struct worker		**w;
	size_t			 nw, next_w;
	struct listener		**ls;
	size_t			 nls;
	/* Retired on reload, freed at stop: a handshake begun under an old
	 * set may still call its SNI callback. */
	struct tls_set		**old_tls;
	size_t			 nold_tls;
};

static struct proxyd *
server_get(struct daemon *d)
{
	return d->arg;
}

static void
server_accept_cb(int fd, const struct sockaddr *sa, socklen_t salen,
    const struct listen_conf *lc, void *arg)
{
	struct proxyd	*p = arg;

	if (p->d->stopping || p->nw == 0) {
		close(fd);
		return;
	}
	/* Round robin: XMPP connections live long, so this evens the
	 * workers' session counts as well as anything would. */
	worker_accept(p->w[p->next_w++ % p->nw], fd, sa, salen, lc->tls);
}

/* Every view, in order, goes through the placement rule before sessions
 * look at it: the rule depends on where each domain was. */
static void
server_place(struct proxyd *p, const struct pview *cur)
{
	const struct proxyd_conf	*c = p->ctx.conf;
	size_t				 n, i;

	n = placement_table_update(p->ctx.placed, cur, c->domains, c->ndomains);
	if (n > 0)
		log_info("view generation %llu: %zu domain%s placed anew",
		    (unsigned long long)cur->generation, n, n == 1 ? "" : "s");
	for (i = 0; i < p->nw; i++)
		worker_view(p->w[i], cur);
}

static void
server_view_cb(const struct pview *old, const struct pview *cur, void *arg)
{
	struct proxyd	*p = arg;

	server_place(p, cur);
}

static int
server_needs_tls(const struct proxyd_conf *c)
{
	size_t	i;

	for (i = 0; i < c->nlisten; i++)
		if (c->listen[i].tls != LISTEN_TLS_NONE)
			return 1;
	return 0;
}

/* The workers' counters summed, with per-domain moves and per-backend
 * sessions for C's domains and V's backends; free with server_stats_free. */
static void
server_stats(struct proxyd *p, const struct proxyd_conf *c, const struct pview *v,
    struct worker_stats *st)
{
	const char	**doms = xcalloc(c->ndomains + 1, sizeof(*doms));
	const char	**bes = xcalloc(v->n + 1, sizeof(*bes));
	size_t		  i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < c->ndomains; i++)
		doms[i] = c->domains[i].name;
	for (i = 0; i < v->n; i++)
		bes[i] = v->b[i].name;
	st->domains = doms;
	st->ndomains = c->ndomains;
	st->dom_moving = xcalloc(c->ndomains + 1, sizeof(*st->dom_moving));
	st->backends = bes;
	st->nbackends = v->n;
	st->be_sessions = xcalloc(v->n + 1, sizeof(*st->be_sessions));
	for (i = 0; i < p->nw; i++)
		worker_stats_add(p->w[i], st);
}

static void
server_stats_free(struct worker_stats *st)
{
	free((void *)st->domains);
	free((void *)st->backends);
	free(st->dom_moving);
	free(st->be_sessions);
}

static void
server_collect_cb(struct metrics *m, void *arg)
{
	struct proxyd		*p = server_get(arg);
	const struct proxyd_conf *c;
	const struct pview	*v;
	struct worker_stats	 st;
	char			 labels[512];
	size_t			 i;
	struct buf		 b;

	/* Registered for the daemon's life; proxyd may be stopped already. */
	if (p == NULL || p->ctx.hv == NULL)
		return;
	c = p->ctx.conf;
	v = hview_current(p->ctx.hv);
	server_stats(p, c, v, &st);

	metric_set(metrics_gauge(m, "proxyd_sessions", NULL,
	    "Client connections open now."), (double)st.count);
	metric_set(metrics_counter(m, "proxyd_accepted_total", NULL,
	    "Client connections accepted."), (double)st.accepted);
	metric_set(metrics_counter(m, "proxyd_refused_total", NULL,
	    "Connections refused by max_connections."), (double)st.refused);
	metric_set(metrics_counter(m, "proxyd_no_backend_total", NULL,
	    "Streams ended because no backend was eligible."),
	    (double)st.no_backend);
	metric_set(metrics_counter(m, "proxyd_tls_failures_total", NULL,
	    "TLS handshakes that failed."), (double)st.tls_failures);
	metric_set(metrics_counter(m, "proxyd_backend_tls_failures_total", NULL,
	    "Connections to a backend that failed TLS (verification included)."),
	    (double)st.backend_tls_failures);
	metric_set(metrics_gauge(m, "proxyd_moves_pending", NULL,
	    "Sessions waiting for their spread end after their domain moved "
	    "off a live backend."), (double)st.moves_pending);
	metric_set(metrics_counter(m, "proxyd_moved_sessions_total", NULL,
	    "Sessions ended because their domain moved to another backend."),
	    (double)st.moved);
	metric_set(metrics_gauge(m, "proxyd_workers", NULL,
	    "Event loops (threads) running the sessions."), (double)p->nw);
	metric_set(metrics_gauge(m, "proxyd_hamon_connected", NULL,
	    "1 while the view subscription to hamon is up."),
	    (double)hview_connected(p->ctx.hv));
	metric_set(metrics_gauge(m, "proxyd_view_generation", NULL,
	    "The generation of hamon's view in force."), (double)v->generation);
	buf_init(&b);
	for (i = 1; i < XML_COND_COUNT; i++) {
		if (st.errors[i] == 0)
			continue;
		buf_reset(&b);
		metrics_label(&b, "condition", xmlfilter_cond_name(i));
		metric_set(metrics_counter(m, "proxyd_stream_errors_total", b.data,
		    "Stream errors sent to clients."), (double)st.errors[i]);
	}
	for (i = 0; i < c->ndomains; i++) {
		buf_reset(&b);
		metrics_label(&b, "domain", c->domains[i].name);
		metric_set(metrics_gauge(m, "proxyd_domain_sessions", b.data,
		    "Sessions per domain."),
		    (double)session_count_domain(&p->ctx, c->domains[i].name));
	}
	for (i = 0; i < v->n; i++) {
		buf_reset(&b);
		metrics_label(&b, "backend", v->b[i].name);
		snprintf(labels, sizeof(labels), "%s", b.data);
		metric_set(metrics_gauge(m, "proxyd_backend_sessions", labels,
		    "Sessions per backend."), (double)st.be_sessions[i]);
	}
	buf_free(&b);
	server_stats_free(&st);
}

/*
 * Make the listeners match C: an address kept keeps its socket (and takes
 * its new tls mode), a new one is bound, a gone one closed.  Nothing changes
 * unless every new address could be bound.
 */
static int
server_listen(struct proxyd *p, const struct proxyd_conf *c, char *err,
    size_t errlen)
{
	struct listener	**nls = xcalloc(c->nlisten + 1, sizeof(*nls));
	char		 *kept = xcalloc(p->nls + 1, 1);
	size_t		  i, j;

	for (i = 0; i < c->nlisten; i++) {
		for (j = 0; j < p->nls; j++)
			if (!kept[j] && strcmp(listener_conf(p->ls[j])->addr.text,
			    c->listen[i].addr.text) == 0)
				break;
		if (j < p->nls) {
			kept[j] = 1;
			nls[i] = p->ls[j];
			continue;
		}
		if ((nls[i] = listener_new(p->d->base, &c->listen[i],
		    server_accept_cb, p, err, errlen)) == NULL)
			goto fail;
	}
	for (j = 0; j < p->nls; j++)
		if (!kept[j])
			listener_free(p->ls[j]);
	for (i = 0; i < c->nlisten; i++)
		listener_set_conf(nls[i], &c->listen[i]);
	free(p->ls);
	free(kept);
	p->ls = nls;
	p->nls = c->nlisten;
	return 0;
fail:
	for (j = 0; j < i; j++) {
		for (size_t k = 0; k < p->nls; k++)
			if (nls[j] == p->ls[k])
				nls[j] = NULL;
		listener_free(nls[j]);
	}
	free(nls);
	free(kept);
	return -1;
}

int
proxyd_start(struct daemon *d, void *conf, char *err, size_t errlen)
{
	struct proxyd_conf	*c = conf;
	struct proxyd		*p = xcalloc(1, sizeof(*p));
	struct worker_init	 wi;
	size_t			 i;

	p->d = d;
	d->arg = p;
	p->ctx.base = d->base;
	p->ctx.conf = c;
	p->ctx.placed = placement_table_new();
	p->ctx.by_backend = count_map_new(0);
	p->ctx.moving = count_map_new(1);
	p->ctx.shared = p->shared = proxyd_shared_new();
	if ((p->ctx.up_tls = tls_client_new(c, err, errlen)) == NULL)
		goto fail;
	if (server_needs_tls(c) &&
	    (p->ctx.tls = tls_set_new(c, err, errlen)) == NULL)
		goto fail;
	/* The workers before the listeners: an accepted client has a loop. */
	wi.nw = (size_t)c->workers;
	wi.conf = c;
	wi.tls = p->ctx.tls;
	wi.up_tls = p->ctx.up_tls;
	wi.shared = p->shared;
	p->w = xcalloc((size_t)c->workers, sizeof(*p->w));
	for (i = 0; i < (size_t)c->workers; i++) {
		if ((p->w[i] = worker_new(i, &wi, err, errlen)) == NULL)
			goto fail;
		p->nw++;
	}
	if (server_listen(p, c, err, errlen) == -1)
		goto fail;
	if (c->nlisten == 0)
		log_warnx("no listen in the configuration: no client can connect");
	p->ctx.hv = hview_new(d->base, c->hamon, server_view_cb, p);
	p->ctx.view = hview_current(p->ctx.hv);
	metrics_on_collect(d->metrics, server_collect_cb, d);
	log_info("%zu worker%s", p->nw, p->nw == 1 ? "" : "s");
	return 0;
fail:
	proxyd_stop(d);
	return -1;
}

int
proxyd_swap(struct daemon *d, void *conf, char *err, size_t errlen)
{
	struct proxyd		*p = server_get(d);
	struct proxyd_conf	*c = conf;
	struct tls_set		*ts = NULL;
	struct tls_client	*tc;
	size_t			 i;

	/* Certificates are read again: a renewed one takes effect now. */
	if ((tc = tls_client_new(c, err, errlen)) == NULL)
		return -1;
	if (server_needs_tls(c) && (ts = tls_set_new(c, err, errlen)) == NULL) {
		tls_client_free(tc);
		return -1;
	}
	if (server_listen(p, c, err, errlen) == -1) {
		tls_set_free(ts);
		tls_client_free(tc);
		return -1;
	}
	/* Handshakes under way hold their own reference to the old context. */
	tls_client_free(p->ctx.up_tls);
	p->ctx.up_tls = tc;
	if (p->ctx.tls != NULL) {
		p->old_tls = xreallocarray(p->old_tls, p->nold_tls + 1,
		    sizeof(*p->old_tls));
		p->old_tls[p->nold_tls++] = p->ctx.tls;
	}
	p->ctx.tls = ts;
	if (strcmp(p->ctx.conf->hamon, c->hamon) != 0) {
		hview_free(p->ctx.hv);
		p->ctx.hv = hview_new(d->base, c->hamon, server_view_cb, p);
		p->ctx.view = hview_current(p->ctx.hv);
	}
	if (c->workers != p->ctx.conf->workers)
		log_warnx("workers: %lld now, %zu running: a restart applies it",
		    (long long)c->workers, p->nw);
	p->ctx.conf = c;
	/* A new domain is placed now, a new preference moves its sessions
	 * (gracefully); a new hamon's first view does that when it comes. */
	if (hview_received(p->ctx.hv))
		placement_table_update(p->ctx.placed, hview_current(p->ctx.hv),
		    c->domains, c->ndomains);
	/* Each worker has the new configuration when this returns (the old
	 * one is freed after), and places by it at once. */
	for (i = 0; i < p->nw; i++)
		worker_swap(p->w[i], c, ts, tc, hview_received(p->ctx.hv));
	return 0;
}

void
proxyd_stop(struct daemon *d)
{
	struct proxyd	*p = server_get(d);
	size_t		 i;

	if (p == NULL)
		return;
	d->arg = NULL;
	for (i = 0; i < p->nls; i++)
		listener_free(p->ls[i]);
	free(p->ls);
	/* Every session is told and freed now, each in its worker. */
	for (i = 0; i < p->nw; i++)
		worker_free(p->w[i]);
	free(p->w);
	hview_free(p->ctx.hv);
	placement_table_free(p->ctx.placed);
	count_map_free(p->ctx.by_backend);
	count_map_free(p->ctx.moving);
	proxyd_shared_free(p->shared);
	tls_client_free(p->ctx.up_tls);
	tls_set_free(p->ctx.tls);
	for (i = 0; i < p->nold_tls; i++)
		tls_set_free(p->old_tls[i]);
	free(p->old_tls);
	free(p);
}

static void
server_counts(struct proxyd *p, const struct worker_stats *st, struct json *j)
{
	const struct proxyd_conf *c = p->ctx.conf;
	const struct pview	*v = hview_current(p->ctx.hv);
	const struct pbackend	*b;
	size_t			 i;

	json_key(j, "domains");
	json_arr_begin(j);
	for (i = 0; i < c->ndomains; i++) {
		json_obj_begin(j);
		json_kv_str(j, "name", c->domains[i].name);
		json_kv_uint(j, "sessions", session_count_domain(&p->ctx,
		    c->domains[i].name));
		json_kv_int(j, "max_connections", c->domains[i].max_connections);
		json_kv_uint(j, "moves_pending", st->dom_moving[i]);
		b = move_placement(&p->ctx, v, c->domains[i].name,
		    c->domains[i].prefer);
		json_kv_str(j, "backend", b != NULL ? b->name : NULL);
		json_obj_end(j);
	}
	json_arr_end(j);
	json_key(j, "backend_sessions");
	json_obj_begin(j);
	for (i = 0; i < v->n; i++)
		json_kv_uint(j, v->b[i].name, st->be_sessions[i]);
	json_obj_end(j);
}

void
proxyd_status(struct daemon *d, struct json *j)
{
	struct proxyd		*p = server_get(d);
	struct worker_stats	 st;
	size_t			 i;

	if (p == NULL)
		return;
	server_stats(p, p->ctx.conf, hview_current(p->ctx.hv), &st);
	json_kv_uint(j, "sessions", st.count);
	json_kv_uint(j, "workers", p->nw);
	json_kv_uint(j, "accepted", st.accepted);
	json_kv_uint(j, "refused", st.refused);
	json_kv_uint(j, "no_backend", st.no_backend);
	json_kv_uint(j, "tls_failures", st.tls_failures);
	json_key(j, "backend_tls");
	json_obj_begin(j);
	json_kv_uint(j, "failures", st.backend_tls_failures);
	json_kv_str(j, "last_error", st.backend_tls_error[0] != '\0' ?
	    st.backend_tls_error : NULL);
	json_obj_end(j);
	json_key(j, "moves");
	json_obj_begin(j);
	json_kv_uint(j, "pending", st.moves_pending);
	json_kv_uint(j, "ended", st.moved);
	json_kv_int(j, "spread_ms", p->ctx.conf->move_spread_ms);
	json_obj_end(j);
	json_key(j, "listen");
	json_arr_begin(j);
	for (i = 0; i < p->ctx.conf->nlisten; i++)
		json_str(j, p->ctx.conf->listen[i].addr.text);
	json_arr_end(j);
	server_counts(p, &st, j);
	server_stats_free(&st);
	if (p->ctx.hv != NULL) {
		if (!hview_connected(p->ctx.hv) && hview_last_error(p->ctx.hv))
			json_kv_str(j, "warning", "hamon is unreachable: the last "
			    "view stays in force");
		hview_status(p->ctx.hv, j);
	}
}

/* The workers' sessions (of a domain), into one array, a worker at a time. */
struct server_list {
	struct json	*j;
	const char	*domain;
};

static void
server_list_job(struct worker *w, void *arg)
{
	struct server_list	*l = arg;

	session_list_json(worker_ctx(w), l->j, l->domain);
}

struct server_kick {
	const char	*jid;
	int		 n;
};

static void
server_kick_job(struct worker *w, void *arg)
{
	struct server_kick	*k = arg;

	k->n += session_kick(worker_ctx(w), k->jid);
}

static void
server_cmd_sessions(struct proxyd *p, struct control_conn *conn, int argc,
    char **argv)
{
	struct json		j;
	struct server_list	l;
	size_t			i;

	if (argc > 2) {
		control_reply_error(conn, "usage: sessions [DOMAIN]");
		return;
	}
	json_init(&j);
	l.j = &j;
	l.domain = argc == 2 ? argv[1] : NULL;
	json_arr_begin(&j);
	for (i = 0; i < p->nw; i++)
		worker_call(p->w[i], server_list_job, &l);
	json_arr_end(&j);
	control_reply(conn, json_text(&j));
	json_free(&j);
}

static void
server_cmd_kick(struct proxyd *p, struct control_conn *conn, int argc,
    char **argv)
{
	struct json		 j;
	struct server_kick	 k;
	const char		*c;
	size_t			 i;
	int			 n;

	if (argc != 2) {
		control_reply_error(conn, "usage: kick JID");
		return;
	}
	for (c = argv[1]; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			control_reply_error(conn, "kick: a JID has no control "
			    "characters");
			return;
		}
	k.jid = argv[1];
	k.n = 0;
	for (i = 0; i < p->nw; i++)
		worker_call(p->w[i], server_kick_job, &k);
	if ((n = k.n) == 0) {
		control_reply_error(conn, "no session of %s", argv[1]);
		return;
	}
	log_info("kick %s: %d session%s ended", argv[1], n, n == 1 ? "" : "s");
	json_init(&j);
	json_obj_begin(&j);
	json_kv_str(&j, "jid", argv[1]);
	json_kv_int(&j, "kicked", n);
	json_obj_end(&j);
	control_reply(conn, json_text(&j));
	json_free(&j);
}

void
proxyd_command(struct daemon *d, struct control_conn *conn, int argc,
    char **argv)
{
	struct proxyd	*p = server_get(d);

	if (p == NULL || d->stopping)
		control_reply_error(conn, "proxyd is stopping");
	else if (strcmp(argv[0], "sessions") == 0)
		server_cmd_sessions(p, conn, argc, argv);
	else if (strcmp(argv[0], "kick") == 0)
		server_cmd_kick(p, conn, argc, argv);
	else
		control_reply_error(conn, "unknown command '%s' (proxyd knows: "
		    "status, sessions, kick, reload, version, ping)", argv[0]);
}
