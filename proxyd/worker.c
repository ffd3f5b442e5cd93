/*
 * worker.c: proxyd's event loops.  Each worker is a thread with its own
 * libevent base and its own sessions (a session never leaves its worker);
 * the main thread accepts, follows hamon and serves the control socket, and
 * hands the workers connections, views, configurations and questions
 * through their mailboxes, in order.  What the workers share is in struct
 * proxyd_shared: the per-domain counts (max_connections holds across them)
 * under one mutex, taken once per session change, and the session ids.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxyd.h"

#define WORKER_SWEEP_MS		1000

struct wjob {
	struct wjob	*next;
	void		(*fn)(struct worker *, void *);
	void		*arg;
	int		 sync, done;
};

struct worker {
	struct session_ctx	 ctx;
	size_t			 id;
	pthread_t		 th;
	int			 running;
	struct event		*ev_mail, *ev_sweep;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct wjob		*head, **tail;
	struct pview		 view;		/* this worker's own copy */
};

static void
worker_mail_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct wjob	*j, *next;

	pthread_mutex_lock(&w->mu);
	j = w->head;
	w->head = NULL;
	w->tail = &w->head;
	pthread_mutex_unlock(&w->mu);
	for (; j != NULL; j = next) {
		next = j->next;
		j->fn(w, j->arg);
		if (j->sync) {
			pthread_mutex_lock(&w->mu);
			j->done = 1;
			pthread_cond_broadcast(&w->cv);
			pthread_mutex_unlock(&w->mu);
		} else
			free(j);
	}
}

static void
worker_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;

	session_sweep(&w->ctx);
}

static void *
worker_main(void *arg)
{
	struct worker	*w = arg;

	event_base_loop(w->ctx.base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void
worker_enqueue(struct worker *w, struct wjob *j)
{
	pthread_mutex_lock(&w->mu);
	*w->tail = j;
	w->tail = &j->next;
	pthread_mutex_unlock(&w->mu);
	event_active(w->ev_mail, EV_READ, 0);
}

void
worker_post(struct worker *w, void (*fn)(struct worker *, void *), void *arg)
{
	struct wjob	*j = xcalloc(1, sizeof(*j));

	j->fn = fn;
	j->arg = arg;
	worker_enqueue(w, j);
}

/* Runs FN in W's thread and waits for it: the main thread's questions. */
void
worker_call(struct worker *w, void (*fn)(struct worker *, void *), void *arg)
{
	struct wjob	j;

	memset(&j, 0, sizeof(j));
	j.fn = fn;
	j.arg = arg;
	j.sync = 1;
	worker_enqueue(w, &j);
	pthread_mutex_lock(&w->mu);
	while (!j.done)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

struct session_ctx *
worker_ctx(struct worker *w)
{
	return &w->ctx;
}

struct worker *
worker_new(size_t id, const struct worker_init *in, char *err, size_t errlen)
{
	struct worker	*w = xcalloc(1, sizeof(*w));
	struct timeval	 tv = { WORKER_SWEEP_MS / 1000, 0 };
	int		 rc;

	w->id = id;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->tail = &w->head;
	if ((w->ctx.base = event_base_new()) == NULL) {
		snprintf(err, errlen, "worker %zu: cannot make an event base", id);
		goto fail;
	}
	w->ctx.conf = in->conf;
	w->ctx.tls = in->tls;
	w->ctx.up_tls = in->up_tls;
	w->ctx.shared = in->shared;
	w->ctx.wid = (unsigned)id;
	w->ctx.nw = (unsigned)in->nw;
	w->ctx.view = &w->view;
	w->ctx.placed = placement_table_new();
	w->ctx.by_backend = count_map_new(0);
	w->ctx.moving = count_map_new(1);
	w->ev_mail = event_new(w->ctx.base, -1, 0, worker_mail_cb, w);
	w->ev_sweep = event_new(w->ctx.base, -1, EV_PERSIST, worker_sweep_cb, w);
	event_add(w->ev_sweep, &tv);
	if ((rc = pthread_create(&w->th, NULL, worker_main, w)) != 0) {
		snprintf(err, errlen, "worker %zu: cannot start its thread: %s", id,
		    strerror(rc));
		goto fail;
	}
	w->running = 1;
	return w;
fail:
	worker_free(w);
	return NULL;
}

static void
worker_stop_job(struct worker *w, void *arg)
{
	session_shutdown(&w->ctx, XML_COND_SYSTEM_SHUTDOWN, "proxyd is stopping");
	event_base_loopbreak(w->ctx.base);
}

/* Every session is told and freed, the thread joined, all freed. */
void
worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	if (w->running) {
		worker_call(w, worker_stop_job, NULL);
		pthread_join(w->th, NULL);
	}
	if (w->ev_mail != NULL)
		event_free(w->ev_mail);
	if (w->ev_sweep != NULL)
		event_free(w->ev_sweep);
	placement_table_free(w->ctx.placed);
	count_map_free(w->ctx.by_backend);
	count_map_free(w->ctx.moving);
	pview_free(&w->view);
	if (w->ctx.base != NULL)
		event_base_free(w->ctx.base);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

/* ---- what the main thread hands over ---- */

struct worker_accept {
	int			fd;
	struct sockaddr_storage	ss;
	socklen_t		len;
	int			tls;		/* enum listen_tls */
};

static void
worker_accept_job(struct worker *w, void *arg)
{
	struct worker_accept	*a = arg;

	session_accept(&w->ctx, a->fd, (struct sockaddr *)&a->ss, a->len, a->tls);
	free(a);
}

void
worker_accept(struct worker *w, int fd, const struct sockaddr *sa,
    socklen_t salen, int tls)
{
	struct worker_accept	*a = xcalloc(1, sizeof(*a));

	a->fd = fd;
	if (salen > sizeof(a->ss))
		salen = sizeof(a->ss);
	memcpy(&a->ss, sa, salen);
	a->len = salen;
	a->tls = tls;
	worker_post(w, worker_accept_job, a);
}

/* The domains placed by W's view and configuration; its sessions follow. */
static void
worker_place(struct worker *w)
{
	placement_table_update(w->ctx.placed, &w->view, w->ctx.conf->domains,
	    w->ctx.conf->ndomains);
	move_view_changed(&w->ctx, &w->view);
}

static void
worker_view_job(struct worker *w, void *arg)
{
	struct pview	*v = arg;

	pview_free(&w->view);
	w->view = *v;
	free(v);
	worker_place(w);
}

/* Each view, in order: the worker places the domains as the main thread
 * did (the rule is deterministic) and moves its own sessions. */
void
worker_view(struct worker *w, const struct pview *v)
{
	struct pview	*copy = xcalloc(1, sizeof(*copy));

	pview_copy(copy, v);
	worker_post(w, worker_view_job, copy);
}

struct worker_swap {
	const struct proxyd_conf	*conf;
	struct tls_set			*tls;
	struct tls_client		*up_tls;
	int				 place;
};

static void
worker_swap_job(struct worker *w, void *arg)
{
	struct worker_swap	*s = arg;

	w->ctx.conf = s->conf;
	w->ctx.tls = s->tls;
	w->ctx.up_tls = s->up_tls;
	if (s->place)
		worker_place(w);
}

/* A reload: W uses the new configuration when this returns. */
void
worker_swap(struct worker *w, const struct proxyd_conf *c, struct tls_set *ts,
    struct tls_client *tc, int place)
{
	struct worker_swap	s = { c, ts, tc, place };

	worker_call(w, worker_swap_job, &s);
}

/* ---- what the main thread asks ---- */

static void
worker_stats_job(struct worker *w, void *arg)
{
	struct worker_stats	*st = arg;
	const struct session_ctx *c = &w->ctx;
	size_t			 i;

	st->count += c->count;
	st->moves_pending += c->moves_pending;
	st->accepted += c->accepted;
	st->refused += c->refused;
	st->no_backend += c->no_backend;
	st->tls_failures += c->tls_failures;
	st->moved += c->moved;
	st->backend_tls_failures += c->backend_tls_failures;
	if (c->backend_tls_error[0] != '\0' &&
	    c->backend_tls_logged >= st->backend_tls_logged) {
		st->backend_tls_logged = c->backend_tls_logged;
		memcpy(st->backend_tls_error, c->backend_tls_error,
		    sizeof(st->backend_tls_error));
	}
	for (i = 0; i < XML_COND_COUNT; i++)
		st->errors[i] += c->errors[i];
	for (i = 0; i < st->ndomains; i++)
		st->dom_moving[i] += move_count_pending(c, st->domains[i]);
	for (i = 0; i < st->nbackends; i++)
		st->be_sessions[i] += session_count_backend(c, st->backends[i]);
}

void
worker_stats_add(struct worker *w, struct worker_stats *st)
{
	worker_call(w, worker_stats_job, st);
}

struct proxyd_shared *
proxyd_shared_new(void)
{
	struct proxyd_shared	*sh = xcalloc(1, sizeof(*sh));

	pthread_mutex_init(&sh->mu, NULL);
	pthread_mutex_init(&sh->pmu, NULL);
	sh->by_domain = count_map_new(1);
	atomic_init(&sh->next_id, 0);
	return sh;
}

void
proxyd_shared_free(struct proxyd_shared *sh)
{
	if (sh == NULL)
		return;
	count_map_free(sh->by_domain);
	prefeat_clear(sh);
	pthread_mutex_destroy(&sh->pmu);
	pthread_mutex_destroy(&sh->mu);
	free(sh);
}
