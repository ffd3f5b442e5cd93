/*
 * check.c: the scheduler: every check of every backend starts a probe each
 * interval, phases spread over the interval, with rise/fall hysteresis per
 * check; it reports verdict changes and leaves the view to view.c.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "hamon.h"

/*
 * With a timeout longer than the interval, probes overlap, so that a hung
 * backend is seen within fall x interval + timeout rather than fall x timeout.
 */
#define CHECK_MAX_INFLIGHT	8
/* Past timeout + this, the scheduler stops waiting for a probe's verdict. */
#define CHECK_GUARD_MS		250
#define CHECK_ERROR_MAX		(sizeof(((struct check_result *)0)->error) + 16)

struct check;

struct flight {
	struct check	*check;
	struct probe	*probe;
	struct event	*guard;
	uint64_t	 seq;
	uint64_t	 start_ns;
	int		 busy;
	int		 starting;	/* inside start(): its pointer is not ours yet */
};

struct check {
	struct sched_backend	*b;
	enum check_kind		 kind;
	struct event		*timer;
	uint64_t		 due_ns;	/* the next start, monotonic */
	struct flight		 fl[CHECK_MAX_INFLIGHT];
	uint64_t		 seq;		/* of the last probe started */
	uint64_t		 applied;	/* of the newest result applied */
	uint64_t		 ok_done_ns;	/* when the last success counted */
	struct check_hyst	 h;
	int64_t			 latency_us;	/* of the last good probe, -1 */
	int64_t			 lag_ms;
	char			 peers_gone[sizeof(((struct check_result *)0)->peers_gone)];
	char			 error[CHECK_ERROR_MAX];
};

struct sched_backend {
	struct check_sched	*s;
	struct backend_conf	 conf;		/* a deep copy: probes keep pointers */
	struct check_target	 target;
	struct check		*checks[CHECK_NKINDS];
};

struct check_sched {
	struct event_base	*base;
	const struct probe_ops	*ops;
	struct check_sched_cbs	 cbs;
	struct event		*ev_changed;
	struct sched_backend	**b;
	size_t			 n;
	uint64_t		 interval_ns;
	int			 timeout_ms;
	unsigned		 rise, fall;
};

static void	check_timer_cb(evutil_socket_t, short, void *);
static void	check_guard_cb(evutil_socket_t, short, void *);

void
check_hyst_init(struct check_hyst *h)
{
	h->state = -1;
	h->ok_run = h->fail_run = 0;
}

int
check_hyst_apply(struct check_hyst *h, int ok, unsigned rise, unsigned fall)
{
	int	old = h->state;

	if (ok) {
		h->ok_run++;
		h->fail_run = 0;
		if (h->state == -1 || (h->state == 0 && h->ok_run >= rise))
			h->state = 1;
	} else {
		h->fail_run++;
		h->ok_run = 0;
		if (h->state == -1 || (h->state == 1 && h->fail_run >= fall))
			h->state = 0;
	}
	return h->state != old;
}

static int
check_is_liveness(enum check_kind k)
{
	return (CHECKS_LIVENESS & CHECK_BIT(k)) != 0;
}

/* Verdicts are reported once per loop turn, however many changed in it. */
static void
sched_changed(struct check_sched *s)
{
	event_active(s->ev_changed, EV_TIMEOUT, 0);
}

static void
sched_changed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct check_sched	*s = arg;

	if (s->cbs.changed != NULL)
		s->cbs.changed(s->cbs.arg);
}

/*
 * Overlapping probes that all succeed once a hung backend resumes are one
 * observation, not RISE of them: a success counts towards rise only when its
 * probe started after the last counted success ended.  Falling stays quick.
 */
static int
check_overlaps(struct check *c, uint64_t start_ns)
{
	if (c->h.state != 0 || start_ns >= c->ok_done_ns)
		return 0;
	c->h.fail_run = 0;
	return 1;
}

static void
check_apply(struct check *c, uint64_t seq, uint64_t start_ns,
    const struct check_result *r)
{
	struct check_sched	*s = c->b->s;
	int			 ok;

	if (s->cbs.result != NULL)
		s->cbs.result(c->b->conf.name, r, s->cbs.arg);
	/* Overlapping probes: a late verdict never overrides a newer one. */
	if (seq <= c->applied)
		return;
	c->applied = seq;
	ok = r->ok && (c->kind != CHECK_SPOOLSYNC || r->synced);
	if (c->kind == CHECK_SPOOLSYNC) {
		c->lag_ms = r->ok ? r->lag_ms : -1;
		/* No hysteresis: the view weighs it against the peers' states. */
		if (strcmp(c->peers_gone, r->ok ? r->peers_gone : "") != 0) {
			snprintf(c->peers_gone, sizeof(c->peers_gone), "%s",
			    r->ok ? r->peers_gone : "");
			sched_changed(s);
		}
	}
	if (ok)
		c->latency_us = (int64_t)r->latency_us;
	else
		snprintf(c->error, sizeof(c->error), "%s: %s", check_kind_name(c->kind),
		    r->error[0] != '\0' ? r->error : r->ok ? "not in sync" : "failed");
	if (ok && check_overlaps(c, start_ns))
		return;
	if (ok)
		c->ok_done_ns = now_mono_ns();
	if (check_hyst_apply(&c->h, ok, s->rise, s->fall))
		sched_changed(s);
}

static void
flight_release(struct flight *f)
{
	evtimer_del(f->guard);
	f->probe = NULL;
	f->busy = 0;
}

static void
check_probe_done_cb(const struct check_result *r, void *arg)
{
	struct flight	*f = arg;
	uint64_t	 seq = f->seq, start_ns = f->start_ns;

	flight_release(f);
	check_apply(f->check, seq, start_ns, r);
}

static void
check_fail(struct check *c, uint64_t seq, uint64_t start_ns, const char *why)
{
	struct check_result	r;

	memset(&r, 0, sizeof(r));
	r.kind = c->kind;
	r.lag_ms = -1;
	r.exec_status = -1;
	snprintf(r.error, sizeof(r.error), "%s", why);
	check_apply(c, seq, start_ns, &r);
}

static void
check_guard_cb(evutil_socket_t fd, short what, void *arg)
{
	struct flight	*f = arg;
	struct check	*c = f->check;
	uint64_t	 seq = f->seq, start_ns = f->start_ns;
	char		 why[128];

	if (f->probe != NULL)
		c->b->s->ops->cancel(f->probe);
	flight_release(f);
	snprintf(why, sizeof(why), "no verdict %d ms past the timeout",
	    CHECK_GUARD_MS);
	check_fail(c, seq, start_ns, why);
}

static struct flight *
check_free_flight(struct check *c)
{
	size_t	i;

	for (i = 0; i < CHECK_MAX_INFLIGHT; i++)
		if (!c->fl[i].busy)
			return &c->fl[i];
	return NULL;
}

static void
check_start_probe(struct check *c)
{
	struct check_sched	*s = c->b->s;
	struct flight		*f;
	struct probe		*p;
	struct timeval		 tv;
	uint64_t		 seq;
	int64_t			 guard_ms = s->timeout_ms + CHECK_GUARD_MS;

	if ((f = check_free_flight(c)) == NULL)
		return;		/* all still waiting: a later start can do no better */
	seq = f->seq = ++c->seq;
	f->start_ns = now_mono_ns();
	f->busy = f->starting = 1;
	f->probe = NULL;
	p = s->ops->start[c->kind](s->base, &c->b->target, s->timeout_ms,
	    check_probe_done_cb, f);
	f->starting = 0;
	if (!f->busy || f->seq != seq)
		return;		/* it reported from inside start() */
	if (p == NULL) {
		flight_release(f);
		check_fail(c, seq, f->start_ns,
		    "the probe could not start (out of resources?)");
		return;
	}
	f->probe = p;
	tv.tv_sec = guard_ms / 1000;
	tv.tv_usec = (guard_ms % 1000) * 1000;
	evtimer_add(f->guard, &tv);
}

static void
check_arm(struct check *c, uint64_t now)
{
	struct timeval	tv;
	uint64_t	d = c->due_ns > now ? c->due_ns - now : 0;

	tv.tv_sec = d / 1000000000ull;
	tv.tv_usec = (d % 1000000000ull) / 1000;
	evtimer_add(c->timer, &tv);
}

static void
check_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct check	*c = arg;
	uint64_t	 iv = c->b->s->interval_ns, now;

	check_start_probe(c);
	now = now_mono_ns();
	c->due_ns += iv;
	/* A stalled loop skips the missed starts and keeps its phase. */
	if (c->due_ns <= now)
		c->due_ns += ((now - c->due_ns) / iv + 1) * iv;
	check_arm(c, now);
}

static struct check *
check_new(struct sched_backend *b, enum check_kind kind)
{
	struct check	*c = xcalloc(1, sizeof(*c));
	size_t		 i;

	c->b = b;
	c->kind = kind;
	c->latency_us = -1;
	c->lag_ms = -1;
	check_hyst_init(&c->h);
	if ((c->timer = evtimer_new(b->s->base, check_timer_cb, c)) == NULL)
		fatalx("check: evtimer_new failed");
	for (i = 0; i < CHECK_MAX_INFLIGHT; i++) {
		c->fl[i].check = c;
		if ((c->fl[i].guard = evtimer_new(b->s->base, check_guard_cb,
		    &c->fl[i])) == NULL)
			fatalx("check: evtimer_new failed");
	}
	return c;
}

static void
check_free(struct check *c)
{
	struct flight	*f;
	size_t		 i;

	if (c == NULL)
		return;
	for (i = 0; i < CHECK_MAX_INFLIGHT; i++) {
		f = &c->fl[i];
		if (f->busy && f->probe != NULL)
			c->b->s->ops->cancel(f->probe);
		event_free(f->guard);
	}
	event_free(c->timer);
	free(c);
}

static char *
sched_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static struct sched_backend *
backend_new(struct check_sched *s, const struct backend_conf *bc)
{
	struct sched_backend	*b = xcalloc(1, sizeof(*b));
	struct backend_conf	*c = &b->conf;
	int			 k;

	b->s = s;
	*c = *bc;
	c->name = sched_dup(bc->name);
	c->domain = sched_dup(bc->domain);
	c->login_user = sched_dup(bc->login_user);
	c->password_file = sched_dup(bc->password_file);
	c->login_password = sched_dup(bc->login_password);
	c->spoolsync_url = sched_dup(bc->spoolsync_url);
	c->spool_node = sched_dup(bc->spool_node);
	c->exec_command = sched_dup(bc->exec_command);
	b->target.backend = c->name;
	b->target.address = c->address;
	b->target.domain = c->domain;
	b->target.login_user = c->login_user;
	b->target.login_password = c->login_password;
	b->target.spoolsync_url = c->spoolsync_url;
	b->target.max_lag_ms = c->max_lag_ms;
	b->target.exec_command = c->exec_command;
	for (k = 0; k < CHECK_NKINDS; k++)
		if (c->checks & CHECK_BIT(k))
			b->checks[k] = check_new(b, k);
	return b;
}

static void
backend_free(struct sched_backend *b)
{
	struct backend_conf	*c = &b->conf;
	int			 k;

	for (k = 0; k < CHECK_NKINDS; k++)
		check_free(b->checks[k]);
	free((char *)c->name);
	free((char *)c->domain);
	free((char *)c->login_user);
	free((char *)c->password_file);
	if (c->login_password != NULL)
		explicit_bzero(c->login_password, strlen(c->login_password));
	free(c->login_password);
	free((char *)c->spoolsync_url);
	free((char *)c->spool_node);
	free((char *)c->exec_command);
	free(b);
}

struct check_sched *
check_sched_new(struct event_base *base, const struct probe_ops *ops,
    const struct check_sched_cbs *cbs)
{
	struct check_sched	*s = xcalloc(1, sizeof(*s));

	s->base = base;
	s->ops = ops;
	if (cbs != NULL)
		s->cbs = *cbs;
	s->interval_ns = 1000000000ull;
	s->timeout_ms = 1000;
	s->rise = s->fall = 2;
	if ((s->ev_changed = event_new(base, -1, 0, sched_changed_cb, s)) == NULL)
		fatalx("check: event_new failed");
	return s;
}

void
check_sched_free(struct check_sched *s)
{
	size_t	i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		backend_free(s->b[i]);
	free(s->b);
	event_free(s->ev_changed);
	free(s);
}

/* Take the old backend of that name when nothing about it changed. */
static struct sched_backend *
sched_take(struct sched_backend **old, size_t nold, const struct backend_conf *bc)
{
	struct sched_backend	*b;
	size_t			 i;

	for (i = 0; i < nold; i++) {
		if ((b = old[i]) == NULL || strcmp(b->conf.name, bc->name) != 0)
			continue;
		if (!backend_conf_equal(&b->conf, bc))
			return NULL;
		old[i] = NULL;
		return b;
	}
	return NULL;
}

/* Phases k/N of the interval: never all at once, whatever N is. */
static void
sched_spread(struct check_sched *s)
{
	uint64_t	now = now_mono_ns(), k = 0, total = 0;
	struct check	*c;
	size_t		 i;
	int		 j;

	for (i = 0; i < s->n; i++)
		for (j = 0; j < CHECK_NKINDS; j++)
			total += s->b[i]->checks[j] != NULL;
	for (i = 0; i < s->n; i++)
		for (j = 0; j < CHECK_NKINDS; j++) {
			if ((c = s->b[i]->checks[j]) == NULL)
				continue;
			c->due_ns = now + s->interval_ns * k++ / total;
			check_arm(c, now);
		}
}

void
check_sched_configure(struct check_sched *s, const struct hamon_conf *conf)
{
	struct sched_backend	**old = s->b, **nb;
	size_t			 nold = s->n, i;

	s->interval_ns = (uint64_t)conf->interval_ms * 1000000ull;
	s->timeout_ms = (int)conf->timeout_ms;
	s->rise = (unsigned)conf->rise;
	s->fall = (unsigned)conf->fall;
	nb = xcalloc(conf->nbackends + 1, sizeof(*nb));
	for (i = 0; i < conf->nbackends; i++)
		if ((nb[i] = sched_take(old, nold, &conf->backends[i])) == NULL)
			nb[i] = backend_new(s, &conf->backends[i]);
	for (i = 0; i < nold; i++)
		if (old[i] != NULL)
			backend_free(old[i]);
	free(old);
	s->b = nb;
	s->n = conf->nbackends;
	sched_spread(s);
	sched_changed(s);
}

size_t
check_sched_count(const struct check_sched *s)
{
	return s->n;
}

/* The check to blame: down, or failing longest. */
static const struct check *
backend_worst(const struct sched_backend *b)
{
	const struct check	*c, *worst = NULL;
	int			 k;

	for (k = 0; k < CHECK_NKINDS; k++) {
		if ((c = b->checks[k]) == NULL ||
		    (c->h.fail_run == 0 && c->h.state != 0))
			continue;
		if (worst == NULL || c->h.fail_run > worst->h.fail_run)
			worst = c;
	}
	return worst;
}

static void
backend_observe(const struct sched_backend *b, struct observation *o)
{
	static const enum check_kind latency_pref[] = {
		CHECK_LOGIN, CHECK_XMPP, CHECK_EXEC
	};
	const struct check	*c, *worst;
	size_t			 i;
	int			 k;

	memset(o, 0, sizeof(*o));
	o->name = b->conf.name;
	o->spool_node = b->conf.spool_node;
	o->peers_gone = "";
	o->address = b->conf.address_numeric;
	o->checked = o->alive = 1;
	o->latency_us = o->lag_ms = -1;
	for (k = 0; k < CHECK_NKINDS; k++) {
		if ((c = b->checks[k]) == NULL)
			continue;
		if (check_is_liveness(k)) {
			o->checked &= c->h.state != -1;
			o->alive &= c->h.state == 1;
		} else {
			o->has_sync = 1;
			o->synced = c->h.state == 1;
			o->lag_ms = c->lag_ms;
			o->peers_gone = c->peers_gone;
		}
		if (c->h.fail_run > o->failures)
			o->failures = c->h.fail_run;
	}
	for (i = 0; i < sizeof(latency_pref) / sizeof(latency_pref[0]); i++)
		if ((c = b->checks[latency_pref[i]]) != NULL && c->latency_us >= 0) {
			o->latency_us = c->latency_us;
			break;
		}
	worst = backend_worst(b);
	o->last_error = worst != NULL ? worst->error : o->checked ? "" :
	    "not checked yet";
}

void
check_sched_observe(const struct check_sched *s, struct observation *out)
{
	size_t	i;

	for (i = 0; i < s->n; i++)
		backend_observe(s->b[i], &out[i]);
}

int
check_sched_settled(const struct check_sched *s)
{
	size_t	i;
	int	k;

	for (i = 0; i < s->n; i++)
		for (k = 0; k < CHECK_NKINDS; k++)
			if (s->b[i]->checks[k] != NULL &&
			    s->b[i]->checks[k]->h.state == -1)
				return 0;
	return 1;
}

size_t
check_sched_inflight(const struct check_sched *s)
{
	size_t	i, j, n = 0;
	int	k;

	for (i = 0; i < s->n; i++)
		for (k = 0; k < CHECK_NKINDS; k++)
			for (j = 0; s->b[i]->checks[k] != NULL &&
			    j < CHECK_MAX_INFLIGHT; j++)
				n += s->b[i]->checks[k]->fl[j].busy != 0;
	return n;
}
