/*
 * server.c: the running hamon: wires the scheduler's verdicts through the pure
 * view to publish.c, and serves view, watch, drain, maint and ready on the
 * control socket, the view on /status and the checks on /metrics.  After a
 * restart the view in state_file is the previous one: a restart moves nothing.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "hamon.h"

#define SERVER_WARMUP_SLACK_MS	1000	/* past interval + timeout */
#define SERVER_STATE_MAX	(8 * 1024 * 1024)
/* state_file is touched this often (at most), so its age says how long ago
 * a hamon last stood by it, not when a state last changed. */
#define SERVER_TOUCH_MS		60000

const struct probe_ops probe_ops_real = {
	{ check_xmpp_start, check_login_start, check_spoolsync_start,
	    check_exec_start },
	probe_cancel,
};

static const double latency_bounds[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
};

struct hamon {
	struct daemon		*d;
	struct check_sched	*sched;
	struct admin		*admin;
	char			*admin_file;	/* NULL: admin states not kept */
	struct publish		*pub;
	struct view		 view;		/* the last one published */
	int			 published;	/* the first view went out */
	struct event		*ev_warmup;
	/* Until the first view goes out: state_file's, read back at start. */
	struct view		 restored;
	char			*state_file;	/* NULL: none */
	struct event		*ev_touch;	/* keeps state_file's mtime recent */
	int			 touch_failing;	/* log once per failure streak */
	char			 node[HAMON_NAME_MAX + 1];
	int64_t			 interval_ms, timeout_ms, rise, fall;
	struct observation	*obs;
	enum admin_state	*adm;
	size_t			 cap;
};

static struct hamon *
server_get(struct daemon *d)
{
	return d->arg;
}

/* The view as it is now, from the current observations. */
static void
server_compute(struct hamon *h, struct view *out)
{
	size_t	n = check_sched_count(h->sched), i;

	if (n > h->cap) {
		h->cap = n;
		h->obs = xreallocarray(h->obs, n, sizeof(*h->obs));
		h->adm = xreallocarray(h->adm, n, sizeof(*h->adm));
	}
	check_sched_observe(h->sched, h->obs);
	for (i = 0; i < n; i++)
		h->adm[i] = admin_get(h->admin, h->obs[i].name);
	view_compute(h->obs, h->adm, n, h->restored.restored ? &h->restored :
	    &h->view, h->node, now_real_ms(), out);
}

static void
server_touch(struct hamon *h)
{
	char	err[512];
	int	r;

	if (!h->published || h->restored.restored)
		return;
	if ((r = publish_touch_state(h->pub, err, sizeof(err))) == -1) {
		if (!h->touch_failing++)
			log_warnx("state_file: %s (after a restart now, holds may "
			    "be forgotten)", err);
	} else if (r == 0 && h->touch_failing) {
		log_info("state_file: %s touched again", h->state_file);
		h->touch_failing = 0;
	}
}

/* Said once, when the first view is out: what the restart did not move. */
static void
server_log_restored(const struct hamon *h, const struct view *v)
{
	size_t	i;

	for (i = 0; i < v->n; i++)
		if (v->backends[i].holds)
			log_info("%s: still holds its domains after the restart "
			    "(from %s)", v->backends[i].name, h->state_file);
}

static void
server_zero_gauges(struct daemon *d, const char *backend)
{
	char	labels[256];
	int	s;

	for (s = 0; s < BACKEND_NSTATES; s++) {
		labels[0] = '\0';
		snprintf(labels, sizeof(labels), "backend=\"%s\",state=\"%s\"",
		    backend, backend_state_name(s));
		metric_set(metrics_gauge(d->metrics, "hamon_backend_state", labels,
		    "1 for the backend's state in the view."), 0);
	}
	snprintf(labels, sizeof(labels), "backend=\"%s\"", backend);
	metric_set(metrics_gauge(d->metrics, "hamon_backend_eligible", labels,
	    "1 when the backend may take new sessions."), 0);
}

static void
server_log_changes(struct hamon *h, const struct view *old, const struct view *new)
{
	const struct view_backend	*ob, *nb;
	size_t				 i;

	for (i = 0; i < new->n; i++) {
		nb = &new->backends[i];
		ob = view_find(old, nb->name);
		if (ob != NULL && ob->state == nb->state)
			continue;
		log_info("%s: %s -> %s%s%s%s (generation %llu)", nb->name,
		    ob != NULL ? backend_state_name(ob->state) : "none",
		    backend_state_name(nb->state), nb->last_error[0] ? " (" : "",
		    nb->last_error, nb->last_error[0] ? ")" : "",
		    (unsigned long long)new->generation);
	}
	for (i = 0; i < old->n; i++)
		if (view_find(new, old->backends[i].name) == NULL) {
			log_info("%s: removed (generation %llu)", old->backends[i].name,
			    (unsigned long long)new->generation);
			server_zero_gauges(h->d, old->backends[i].name);
		}
}

/* Recompute; a new generation goes out at once. */
static void
server_update(struct hamon *h)
{
	struct view	new;

	if (!h->published) {
		if (!check_sched_settled(h->sched))
			return;
		h->published = 1;
		evtimer_del(h->ev_warmup);
	}
	server_compute(h, &new);
	if (new.generation != h->view.generation) {
		server_log_changes(h, &h->view, &new);
		publish_view(h->pub, h->d->ctl, &h->view, &new);
		daemon_status("generation %llu, %zu of %zu backends eligible",
		    (unsigned long long)new.generation, view_eligible(&new), new.n);
	}
	if (h->restored.restored) {
		server_log_restored(h, &new);
		view_free(&h->restored);
	}
	view_free(&h->view);
	h->view = new;
}

static void
server_touch_cb(evutil_socket_t fd, short what, void *arg)
{
	server_touch(arg);
}

static void
server_changed_cb(void *arg)
{
	server_update(arg);
}

/* The first view waits for every check's first verdict, but not forever. */
static void
server_warmup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hamon	*h = arg;

	if (!h->published) {
		log_warnx("some checks have no verdict yet: publishing without them");
		h->published = 1;
		server_update(h);
	}
}

static void
server_result_cb(const char *backend, const struct check_result *r, void *arg)
{
	struct hamon	*h = arg;
	struct metrics	*m = h->d->metrics;
	char		 labels[256];

	snprintf(labels, sizeof(labels), "backend=\"%s\",check=\"%s\"", backend,
	    check_kind_name(r->kind));
	metric_add(metrics_counter(m, "hamon_checks_total", labels,
	    "Probes that gave a verdict."), 1);
	if (!r->ok)
		metric_add(metrics_counter(m, "hamon_check_failures_total", labels,
		    "Probes that failed."), 1);
	metric_observe(metrics_histogram(m, "hamon_check_duration_seconds", labels,
	    "Probe latency: start to verdict (login: the ping's round trip).",
	    latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0])),
	    (double)r->latency_us / 1e6);
}

static void
server_collect_cb(struct metrics *m, void *arg)
{
	struct daemon			*d = arg;
	struct hamon			*h = server_get(d);
	const struct view_backend	*b;
	char				 labels[256];
	size_t				 i;
	int				 s;

	if (h == NULL)
		return;
	metric_set(metrics_gauge(m, "hamon_view_generation", NULL,
	    "The generation of the published view."), (double)h->view.generation);
	metric_set(metrics_gauge(m, "hamon_backends_eligible", NULL,
	    "Backends that may take new sessions."), (double)view_eligible(&h->view));
	metric_set(metrics_gauge(m, "hamon_watchers", NULL,
	    "Subscribers to the view on the control socket."),
	    d->ctl != NULL ? (double)control_watchers(d->ctl) : 0);
	metric_set(metrics_gauge(m, "hamon_hooks_running", NULL,
	    "on_change hooks running."), (double)publish_hooks_running(h->pub));
	metric_set(metrics_gauge(m, "hamon_hooks_queued", NULL,
	    "on_change hooks waiting for their backend's previous one."),
	    (double)publish_hooks_queued(h->pub));
	metric_set(metrics_counter(m, "hamon_state_file_errors_total", NULL,
	    "Failed writes of state_file."), (double)publish_state_errors(h->pub));
	for (i = 0; i < h->view.n; i++) {
		b = &h->view.backends[i];
		for (s = 0; s < BACKEND_NSTATES; s++) {
			snprintf(labels, sizeof(labels), "backend=\"%s\",state=\"%s\"",
			    b->name, backend_state_name(s));
			metric_set(metrics_gauge(m, "hamon_backend_state", labels,
			    "1 for the backend's state in the view."), (int)b->state == s);
		}
		snprintf(labels, sizeof(labels), "backend=\"%s\"", b->name);
		metric_set(metrics_gauge(m, "hamon_backend_eligible", labels,
		    "1 when the backend may take new sessions."), b->eligible);
	}
}

/* Generations keep growing across restarts: the last one is in state_file. */
static uint64_t
server_last_generation(const char *state_file)
{
	struct jval	*v;
	struct buf	 b;
	FILE		*fp;
	char		 chunk[8192], err[128];
	size_t		 n;
	double		 g = 0;

	if (state_file == NULL || (fp = fopen(state_file, "re")) == NULL)
		return 0;
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0 &&
	    b.len < SERVER_STATE_MAX)
		buf_add(&b, chunk, n);
	fclose(fp);
	if ((v = json_parse(b.data != NULL ? b.data : "", b.len, err,
	    sizeof(err))) != NULL)
		g = jval_num(v, "generation", 0);
	else
		log_warnx("state_file %s: %s (generations restart from 1)",
		    state_file, err);
	jval_free(v);
	buf_free(&b);
	return g >= 1 && g < 9e15 ? (uint64_t)g : 0;
}

static int
server_admin_file(struct hamon *h, const struct hamon_conf *c, char *err,
    size_t errlen)
{
	char	*path;

	if (c->state_file == NULL) {
		if (h->admin_file != NULL || !h->published)
			log_warnx("no state_file: drain, maint and holds are not "
			    "kept across restarts");
		free(h->admin_file);
		h->admin_file = NULL;
		return 0;
	}
	path = admin_path(c->state_file);
	if (h->admin_file != NULL && strcmp(path, h->admin_file) == 0) {
		free(path);
		return 0;
	}
	/* A new place: what is in force now moves there. */
	if (h->admin_file != NULL && admin_save(h->admin, path, err, errlen) == -1) {
		free(path);
		return -1;
	}
	free(h->admin_file);
	h->admin_file = path;
	return 0;
}

/* A new state_file gets the view at once; the touch follows the age limit. */
static void
server_state_file(struct hamon *h, const struct hamon_conf *c)
{
	struct timeval	tv;
	int64_t		ms = c->holds_max_age_ms / 4;
	int		moved;

	moved = c->state_file != NULL && (h->state_file == NULL ||
	    strcmp(c->state_file, h->state_file) != 0);
	free(h->state_file);
	h->state_file = c->state_file != NULL ? xstrdup(c->state_file) : NULL;
	if (moved && h->published && !h->restored.restored)
		publish_save_state(h->pub, &h->view);
	evtimer_del(h->ev_touch);
	if (h->state_file == NULL || c->holds_max_age_ms == 0)
		return;
	ms = ms < 1000 ? 1000 : ms > SERVER_TOUCH_MS ? SERVER_TOUCH_MS : ms;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(h->ev_touch, &tv);
}

/* Read once at start; a doubtful file is ignored, never fatal. */
static void
server_restore(struct hamon *h, const struct hamon_conf *c)
{
	struct buf	 b;
	char		 err[512];
	size_t		 unknown, i;
	int		 r;

	if (c->state_file == NULL || c->holds_max_age_ms == 0)
		return;
	r = restore_view(c->state_file, c, now_real_ms(), &h->restored, &unknown,
	    err, sizeof(err));
	if (r != 0) {
		if (r == -1)
			log_warnx("state_file: %s: ignored, holds start from this "
			    "hamon's own checks", err);
		view_free(&h->restored);
		return;
	}
	h->restored.generation = h->view.generation;
	buf_init(&b);
	for (i = 0; i < h->restored.n; i++)
		if (h->restored.backends[i].holds ||
		    h->restored.backends[i].state == BACKEND_UP)
			buf_printf(&b, " %s=%s", h->restored.backends[i].name,
			    h->restored.backends[i].holds ? "holds" : "up");
	log_info("state_file: previous view read back from %s:%s", c->state_file,
	    b.len > 0 ? b.data : " nothing up or holding");
	buf_free(&b);
	if (unknown > 0)
		log_warnx("state_file: %s names %zu backend%s not in the "
		    "configuration: left out", c->state_file, unknown,
		    unknown == 1 ? "" : "s");
}

static void
server_apply(struct hamon *h, const struct hamon_conf *c)
{
	snprintf(h->node, sizeof(h->node), "%s", c->node);
	h->interval_ms = c->interval_ms;
	h->timeout_ms = c->timeout_ms;
	h->rise = c->rise;
	h->fall = c->fall;
	publish_configure(h->pub, c->state_file, c->on_change,
	    c->on_change_timeout_ms);
	server_state_file(h, c);
	check_sched_configure(h->sched, c);
}

static void
server_free(struct hamon *h)
{
	if (h == NULL)
		return;
	check_sched_free(h->sched);
	publish_free(h->pub);
	admin_free(h->admin);
	if (h->ev_warmup != NULL)
		event_free(h->ev_warmup);
	if (h->ev_touch != NULL)
		event_free(h->ev_touch);
	view_free(&h->view);
	view_free(&h->restored);
	free(h->admin_file);
	free(h->state_file);
	free(h->obs);
	free(h->adm);
	free(h);
}

int
hamon_start(struct daemon *d, void *conf, char *err, size_t errlen)
{
	const struct hamon_conf	*c = conf;
	struct check_sched_cbs	 cbs;
	struct hamon		*h = xcalloc(1, sizeof(*h));
	struct timeval		 tv;
	char			 aerr[512];
	int64_t			 warm;

	h->d = d;
	h->admin = admin_new();
	h->pub = publish_new(d->base);
	if (server_admin_file(h, c, err, errlen) == -1)
		goto fail;
	if (h->admin_file != NULL &&
	    admin_load(h->admin, h->admin_file, aerr, sizeof(aerr)) == -1) {
		snprintf(err, errlen, "%s: fix or remove it (it keeps drain and "
		    "maint across restarts)", aerr);
		goto fail;
	}
	h->view.generation = server_last_generation(c->state_file);
	memset(&cbs, 0, sizeof(cbs));
	cbs.changed = server_changed_cb;
	cbs.result = server_result_cb;
	cbs.arg = h;
	h->sched = check_sched_new(d->base, &probe_ops_real, &cbs);
	if ((h->ev_warmup = evtimer_new(d->base, server_warmup_cb, h)) == NULL ||
	    (h->ev_touch = event_new(d->base, -1, EV_PERSIST, server_touch_cb,
	    h)) == NULL)
		fatalx("hamon: evtimer_new failed");
	server_apply(h, c);
	server_restore(h, c);
	warm = c->interval_ms + c->timeout_ms + SERVER_WARMUP_SLACK_MS;
	tv.tv_sec = warm / 1000;
	tv.tv_usec = (warm % 1000) * 1000;
	evtimer_add(h->ev_warmup, &tv);
	metrics_on_collect(d->metrics, server_collect_cb, d);
	d->arg = h;
	log_info("node %s: %zu backend%s, interval %lld ms, timeout %lld ms, "
	    "rise %lld, fall %lld, %zu admin state%s", c->node, c->nbackends,
	    c->nbackends == 1 ? "" : "s", (long long)c->interval_ms,
	    (long long)c->timeout_ms, (long long)c->rise, (long long)c->fall,
	    admin_count(h->admin), admin_count(h->admin) == 1 ? "" : "s");
	return 0;
fail:
	server_free(h);
	return -1;
}

int
hamon_swap(struct daemon *d, void *conf, char *err, size_t errlen)
{
	const struct hamon_conf	*c = conf;
	struct hamon		*h = server_get(d);

	if (h == NULL) {
		snprintf(err, errlen, "hamon is stopping");
		return -1;
	}
	if (server_admin_file(h, c, err, errlen) == -1)
		return -1;
	server_apply(h, c);
	log_info("node %s: %zu backend%s", c->node, c->nbackends,
	    c->nbackends == 1 ? "" : "s");
	return 0;
}

void
hamon_stop(struct daemon *d)
{
	struct hamon	*h = server_get(d);

	/* The age limit counts from this hamon's last word. */
	if (h != NULL)
		server_touch(h);
	d->arg = NULL;
	server_free(h);
}

void
hamon_status(struct daemon *d, struct json *j)
{
	struct hamon	*h = server_get(d);
	struct view	 v;

	if (h == NULL)
		return;
	server_compute(h, &v);
	view_json_members(&v, j);
	view_free(&v);
	json_kv_bool(j, "published", h->published);
	json_kv_int(j, "interval_ms", h->interval_ms);
	json_kv_int(j, "timeout_ms", h->timeout_ms);
	json_kv_int(j, "rise", h->rise);
	json_kv_int(j, "fall", h->fall);
	json_kv_uint(j, "watchers", d->ctl != NULL ? control_watchers(d->ctl) : 0);
	json_kv_uint(j, "probes_in_flight", check_sched_inflight(h->sched));
	json_kv_uint(j, "hooks_running", publish_hooks_running(h->pub));
	json_kv_uint(j, "hooks_queued", publish_hooks_queued(h->pub));
	json_kv_str(j, "admin_file", h->admin_file);
}

static void
server_reply_view(struct hamon *h, struct control_conn *conn, int watch)
{
	struct view	v;
	struct json	j;

	/* Until the first view is out, a watcher just waits for it. */
	if (watch && !h->published) {
		control_watch(conn, NULL);
		return;
	}
	server_compute(h, &v);
	json_init(&j);
	view_json(&v, &j);
	if (watch)
		control_watch(conn, json_text(&j));
	else
		control_reply(conn, json_text(&j));
	json_free(&j);
	view_free(&v);
}

static int
server_has_backend(struct hamon *h, const char *name)
{
	size_t	n = check_sched_count(h->sched), i;

	if (n > h->cap) {
		h->cap = n;
		h->obs = xreallocarray(h->obs, n, sizeof(*h->obs));
		h->adm = xreallocarray(h->adm, n, sizeof(*h->adm));
	}
	check_sched_observe(h->sched, h->obs);
	for (i = 0; i < n; i++)
		if (strcmp(h->obs[i].name, name) == 0)
			return 1;
	return 0;
}

static void
server_admin_reply(struct hamon *h, struct control_conn *conn, const char *name,
    enum admin_state old)
{
	const struct view_backend	*b;
	struct view			 v;
	struct json			 j;

	server_compute(h, &v);
	b = view_find(&v, name);
	json_init(&j);
	json_obj_begin(&j);
	json_kv_str(&j, "backend", name);
	json_kv_str(&j, "admin", admin_state_name(admin_get(h->admin, name)));
	json_kv_str(&j, "was", admin_state_name(old));
	json_kv_str(&j, "state", b != NULL ? backend_state_name(b->state) : NULL);
	json_kv_uint(&j, "generation", v.generation);
	json_kv_bool(&j, "kept", h->admin_file != NULL);
	json_obj_end(&j);
	control_reply(conn, json_text(&j));
	json_free(&j);
	view_free(&v);
}

static void
server_admin(struct hamon *h, struct control_conn *conn, const char *name,
    enum admin_state st)
{
	enum admin_state	 old;
	char			 err[512];

	if (!server_has_backend(h, name)) {
		control_reply_error(conn, "no backend '%s' in the configuration",
		    name);
		return;
	}
	old = admin_get(h->admin, name);
	if (admin_set(h->admin, name, st) && h->admin_file != NULL &&
	    admin_save(h->admin, h->admin_file, err, sizeof(err)) == -1) {
		admin_set(h->admin, name, old);
		control_reply_error(conn, "not changed: %s", err);
		return;
	}
	if (old != st)
		log_info("%s: admin %s -> %s", name, admin_state_name(old),
		    admin_state_name(st));
	server_update(h);
	server_admin_reply(h, conn, name, old);
}

void
hamon_command(struct daemon *d, struct control_conn *conn, int argc, char **argv)
{
	struct hamon	*h = server_get(d);
	int		 st;

	if (h == NULL) {
		control_reply_error(conn, "hamon is stopping");
		return;
	}
	if (strcmp(argv[0], "view") == 0 && argc == 1)
		server_reply_view(h, conn, 0);
	else if (strcmp(argv[0], "watch") == 0 && argc == 1)
		server_reply_view(h, conn, 1);
	else if ((st = admin_state_parse(argv[0])) >= 0 && argc == 2)
		server_admin(h, conn, argv[1], st);
	else if (admin_state_parse(argv[0]) >= 0)
		control_reply_error(conn, "usage: %s NAME", argv[0]);
	else
		control_reply_error(conn, "unknown command '%s' (hamon knows: "
		    "status, view, watch, drain NAME, maint NAME, ready NAME, "
		    "reload, ping, version)", argv[0]);
}
