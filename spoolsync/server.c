/*
 * server.c: the spoolsync daemon's life: what starts (state, workers, the
 * watch, the listener, the peers), what reload may change, what stops, and
 * what it tells: `status` (also HTTP /status, which hamon reads), /metrics
 * and the control commands (`repair`, `sync`).
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine.h"

#define GC_EVERY_S	3600
#define REPAIR_TIMEOUT_S 600

struct repair {
	struct control_conn	*c;
	uint64_t		 started_ms;
	struct event		*timeout;
};

struct spoolsync *
spoolsync_of(struct daemon *d)
{
	return d == NULL ? NULL : d->arg;
}

void
sp_error(struct spoolsync *sp, struct peer *p, const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("%s%s%s%s", p != NULL ? "peer " : "", p != NULL ? p->name : "",
	    p != NULL ? ": " : "", msg);
	snprintf(sp->last_error, sizeof(sp->last_error), "%s", msg);
	if (p != NULL) {
		snprintf(p->last_error, sizeof(p->last_error), "%s", msg);
		p->last_error_ms = now_mono_ms();
	}
}

size_t
sp_peer_queued(const struct peer *p)
{
	const struct link	*l = p->link;

	return p->nqueued + (l != NULL && l->state == LINK_UP ? l->nops : 0);
}

uint64_t
sp_peer_lag_ms(struct spoolsync *sp, struct peer *p)
{
	uint64_t		 now = now_mono_ms(), oldest = 0, age, lo;
	const struct item	*it;
	const struct op		*op;
	struct link		*l = peer_up_link(p);

	if ((it = TAILQ_FIRST(&p->outbox)) != NULL)
		oldest = it->since_ms;
	if (l != NULL && (lo = link_lag_oldest(l)) != 0) {
		if (oldest == 0 || lo < oldest)
			oldest = lo;
	} else if (l != NULL) {
		/* Not every op counted (see link_lag_oldest): walk them. */
		TAILQ_FOREACH(op, &l->ops, entry)
			if (op->it != NULL && (oldest == 0 || op->since_ms < oldest))
				oldest = op->since_ms;
	}
	age = oldest != 0 && now > oldest ? now - oldest : 0;
	if (sp->q != NULL && sp->mode != MODE_RECEIVE) {
		uint64_t qa = queue_oldest_age_ns(sp->q) / 1000000;

		if (qa > age)
			age = qa;
	}
	return age;
}

int
sp_peer_in_sync(struct spoolsync *sp, struct peer *p)
{
	return peer_up_link(p) != NULL && p->ae.ok_since_up && p->ae.clean &&
	    sp_peer_queued(p) == 0 && !p->error_pending;
}

/* Repair: a full pass with every peer, answered once all are in sync. */

static void
sp_repair_end(struct spoolsync *sp, const char *error)
{
	struct repair	*r = sp->repair;
	struct json	 j;

	sp->repair = NULL;
	if (error != NULL)
		control_reply_error(r->c, "repair: %s", error);
	else {
		json_init(&j);
		json_obj_begin(&j);
		json_kv_bool(&j, "repaired", 1);
		json_kv_uint(&j, "ms", now_mono_ms() - r->started_ms);
		json_key(&j, "peers");
		json_arr_begin(&j);
		for (size_t i = 0; i < sp->npeers; i++) {
			json_obj_begin(&j);
			json_kv_str(&j, "name", sp->peers[i].name);
			json_kv_uint(&j, "differences", sp->peers[i].ae.diffs);
			json_obj_end(&j);
		}
		json_arr_end(&j);
		json_obj_end(&j);
		control_reply(r->c, json_text(&j));
		json_free(&j);
	}
	event_free(r->timeout);
	free(r);
}

void
sp_repair_check(struct spoolsync *sp)
{
	struct peer	*p;

	if (sp->repair == NULL)
		return;
	for (size_t i = 0; i < sp->npeers; i++) {
		p = &sp->peers[i];
		if (peer_up_link(p) == NULL) {
			sp_repair_end(sp, "the link to a peer went down");
			return;
		}
		if (!p->ae.repair_done || !sp_peer_in_sync(sp, p))
			return;
	}
	log_info("repair: every peer is in sync");
	sp_repair_end(sp, NULL);
}

static void
sp_repair_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spoolsync	*sp = arg;

	sp_repair_end(sp, "peers not in sync after the time allowed");
}

static void
sp_repair(struct spoolsync *sp, struct control_conn *c)
{
	struct timeval	 tv = { REPAIR_TIMEOUT_S, 0 };
	struct repair	*r;

	if (sp->repair != NULL) {
		control_reply_error(c, "a repair is running already");
		return;
	}
	for (size_t i = 0; i < sp->npeers; i++)
		if (peer_up_link(&sp->peers[i]) == NULL) {
			control_reply_error(c, "peer %s is not connected: nothing "
			    "can be repaired with it", sp->peers[i].name);
			return;
		}
	r = xcalloc(1, sizeof(*r));
	r->c = c;
	r->started_ms = now_mono_ms();
	r->timeout = evtimer_new(sp->base, sp_repair_timeout_cb, sp);
	evtimer_add(r->timeout, &tv);
	sp->repair = r;
	log_info("repair: a full comparison with every peer");
	for (size_t i = 0; i < sp->npeers; i++) {
		sp->peers[i].ae.repair_done = 0;
		ae_start(&sp->peers[i], 1, "repair");
	}
}

void
spoolsync_command(struct daemon *d, struct control_conn *c, int argc, char **argv)
{
	struct spoolsync	*sp = spoolsync_of(d);

	if (sp == NULL) {
		control_reply_error(c, "stopping");
		return;
	}
	if (strcmp(argv[0], "repair") == 0 && argc == 1)
		sp_repair(sp, c);
	else if (strcmp(argv[0], "sync") == 0 && argc == 1) {
		for (size_t i = 0; i < sp->npeers; i++)
			ae_start(&sp->peers[i], 0, "asked on the control socket");
		control_reply(c, "\"anti-entropy started\"");
	} else
		control_reply_error(c, "unknown command '%s' (spoolsync knows "
		    "status, repair, sync, reload, version, ping)", argv[0]);
}

/* Status. */

static void
sp_status_peer(struct spoolsync *sp, struct peer *p, struct json *j)
{
	uint64_t	now = now_mono_ms();

	json_obj_begin(j);
	json_kv_str(j, "name", p->name);
	json_kv_str(j, "address", p->addr.text);
	json_kv_bool(j, "connected", peer_up_link(p) != NULL);
	json_kv_bool(j, "in_sync", sp_peer_in_sync(sp, p));
	/* Inbound: a send-mode root is the truth, it lacks nothing. */
	json_kv_bool(j, "caught_up", sp->mode == MODE_SEND || p->ae.caught_up);
	if (peer_up_link(p) == NULL && p->ae.down_ms != 0)
		json_kv_uint(j, "down_ms", now - p->ae.down_ms);
	else
		json_kv_str(j, "down_ms", NULL);
	json_kv_uint(j, "queued", sp_peer_queued(p));
	json_kv_uint(j, "lag_ms", sp_peer_lag_ms(sp, p));
	json_kv_uint(j, "bytes_literal", p->bytes_literal);
	json_kv_uint(j, "bytes_matched", p->bytes_matched);
	json_kv_uint(j, "files_sent", p->files_sent);
	json_kv_uint(j, "files_received", p->files_received);
	json_kv_uint(j, "conflicts", p->conflicts);
	json_kv_str(j, "last_error", p->last_error[0] ? p->last_error : NULL);
	json_kv_str(j, "role", p->dialer ? "dials" : "accepts");
	json_kv_uint(j, "connects", p->connects);
	json_kv_uint(j, "errors", p->errors);
	json_kv_uint(j, "bytes_out", p->bytes_out);
	json_kv_uint(j, "bytes_in", p->bytes_in);
	json_key(j, "anti_entropy");
	json_obj_begin(j);
	json_kv_uint(j, "runs", p->ae.runs);
	json_kv_bool(j, "running", p->ae.running);
	if (p->ae.done_ms != 0)
		json_kv_uint(j, "last_ms_ago", now - p->ae.done_ms);
	else
		json_kv_str(j, "last_ms_ago", NULL);
	json_kv_uint(j, "differences", p->ae.diffs);
	json_kv_uint(j, "unexplained", p->ae.stable_diffs);
	json_kv_bool(j, "clean", p->ae.ok_since_up && p->ae.clean);
	json_obj_end(j);
	json_obj_end(j);
}

void
spoolsync_status(struct daemon *d, struct json *j)
{
	struct spoolsync	*sp = spoolsync_of(d);
	struct watch_stats	 ws;

	if (sp == NULL)
		return;
	json_kv_str(j, "node", sp->node);
	json_kv_str(j, "mode", spoolsync_mode_name(sp->mode));
	json_kv_str(j, "root", sp->root);
	json_key(j, "peers");
	json_arr_begin(j);
	for (size_t i = 0; i < sp->npeers; i++)
		sp_status_peer(sp, &sp->peers[i], j);
	json_arr_end(j);
	json_kv_uint(j, "local_pending", sp->q != NULL ? queue_pending(sp->q) : 0);
	json_kv_uint(j, "local_changes", sp->local_changes);
	json_kv_uint(j, "applied", sp->applied);
	json_kv_uint(j, "apply_errors", sp->apply_errors);
	json_kv_uint(j, "conflicts", sp->conflicts);
	json_kv_uint(j, "overflows", sp->overflows);
	json_kv_uint(j, "state_records", state_count(sp->st));
	json_kv_bool(j, "rescan_done", sp->rescan_done || sp->mode == MODE_RECEIVE);
	json_kv_str(j, "last_error", sp->last_error[0] ? sp->last_error : NULL);
	if (sp->w != NULL) {
		watch_get_stats(sp->w, &ws);
		json_key(j, "watch");
		json_obj_begin(j);
		json_kv_uint(j, "events", ws.events);
		json_kv_uint(j, "dropped", ws.dropped);
		json_kv_uint(j, "overflows", ws.overflows);
		json_kv_uint(j, "dirs", ws.dirs);
		json_kv_uint(j, "limit_failures", ws.limit_failures);
		json_obj_end(j);
	}
}

static const char *
sp_jstr(const struct jval *o, const char *key, const char *def)
{
	const char	*s = jval_str(o, key);

	return s != NULL ? s : def;
}

static void
sp_human_bytes(double b, char *out, size_t len)
{
	const char	*u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int		 i = 0;

	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(out, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

void
spoolsync_print_status(const struct jval *v, void *arg)
{
	const struct jval	*peers = jval_get(v, "peers"), *p;
	char			 lit[32], mat[32];

	printf("spoolsync %s (%s), root %s: %.0f local change%s pending, "
	    "%.0f conflict%s\n", sp_jstr(v, "node", "?"), sp_jstr(v, "mode", "?"),
	    sp_jstr(v, "root", "?"), jval_num(v, "local_pending", 0),
	    jval_num(v, "local_pending", 0) == 1 ? "" : "s",
	    jval_num(v, "conflicts", 0), jval_num(v, "conflicts", 0) == 1 ? "" : "s");
	printf("%-16s %-9s %-7s %-9s %7s %8s %10s %10s %7s %8s %9s  %s\n", "PEER",
	    "CONNECTED", "IN_SYNC", "CAUGHT_UP", "QUEUED", "LAG_MS", "LITERAL", "MATCHED", "SENT",
	    "RECEIVED", "CONFLICTS", "LAST_ERROR");
	for (size_t i = 0; peers != NULL && peers->type == J_ARR && i < peers->n;
	    i++) {
		p = peers->items[i];
		sp_human_bytes(jval_num(p, "bytes_literal", 0), lit, sizeof(lit));
		sp_human_bytes(jval_num(p, "bytes_matched", 0), mat, sizeof(mat));
		printf("%-16s %-9s %-7s %-9s %7.0f %8.0f %10s %10s %7.0f %8.0f "
		    "%9.0f  %s\n", sp_jstr(p, "name", "?"),
		    jval_bool(p, "connected", 0) ? "yes" : "no",
		    jval_bool(p, "in_sync", 0) ? "yes" : "no",
		    jval_bool(p, "caught_up", 0) ? "yes" : "no",
		    jval_num(p, "queued", 0), jval_num(p, "lag_ms", 0), lit, mat,
		    jval_num(p, "files_sent", 0), jval_num(p, "files_received", 0),
		    jval_num(p, "conflicts", 0), sp_jstr(p, "last_error", "-"));
	}
	if (jval_str(v, "last_error") != NULL)
		printf("last error: %s\n", jval_str(v, "last_error"));
}

/* Metrics, refreshed at every scrape. */

static void
sp_metric(struct metrics *m, int counter, const char *name, const char *peer,
    const char *help, double v)
{
	struct buf	 lb;
	struct metric	*mt;

	buf_init(&lb);
	buf_adds(&lb, "");
	if (peer != NULL)
		metrics_label(&lb, "peer", peer);
	mt = counter ? metrics_counter(m, name, lb.data, help) :
	    metrics_gauge(m, name, lb.data, help);
	metric_set(mt, v);
	buf_free(&lb);
}

static void
sp_metrics_cb(struct metrics *m, void *arg)
{
	struct spoolsync	*sp = spoolsync_of(arg);
	struct peer		*p;

	if (sp == NULL)
		return;
	for (size_t i = 0; i < sp->npeers; i++) {
		p = &sp->peers[i];
		sp_metric(m, 0, "spoolsync_peer_connected", p->name,
		    "1 when the link to the peer is up.", peer_up_link(p) != NULL);
		sp_metric(m, 0, "spoolsync_peer_in_sync", p->name,
		    "1 when the peer holds everything (nothing queued, last "
		    "anti-entropy clean).", sp_peer_in_sync(sp, p));
		sp_metric(m, 0, "spoolsync_peer_caught_up", p->name,
		    "1 when this node had caught up with the peer (a clean "
		    "anti-entropy on the current link, or the last one).",
		    sp->mode == MODE_SEND || p->ae.caught_up);
		sp_metric(m, 0, "spoolsync_peer_queued", p->name,
		    "Changes queued or in flight to the peer.", sp_peer_queued(p));
		sp_metric(m, 0, "spoolsync_peer_lag_seconds", p->name,
		    "Age of the oldest change the peer has not acknowledged.",
		    (double)sp_peer_lag_ms(sp, p) / 1000.0);
		sp_metric(m, 1, "spoolsync_peer_bytes_literal_total", p->name,
		    "File bytes sent literally.", (double)p->bytes_literal);
		sp_metric(m, 1, "spoolsync_peer_bytes_matched_total", p->name,
		    "File bytes the peer had already (delta matches, appends).",
		    (double)p->bytes_matched);
		sp_metric(m, 1, "spoolsync_peer_files_sent_total", p->name,
		    "Files the peer acknowledged.", (double)p->files_sent);
		sp_metric(m, 1, "spoolsync_peer_files_received_total", p->name,
		    "Files received from the peer and applied.",
		    (double)p->files_received);
		sp_metric(m, 1, "spoolsync_peer_conflicts_total", p->name,
		    "Concurrent changes resolved with the peer.", (double)p->conflicts);
		sp_metric(m, 1, "spoolsync_peer_errors_total", p->name,
		    "Changes the peer could not apply (retried).", (double)p->errors);
		sp_metric(m, 1, "spoolsync_peer_connects_total", p->name,
		    "Times the link came up.", (double)p->connects);
		sp_metric(m, 1, "spoolsync_peer_anti_entropy_total", p->name,
		    "Anti-entropy passes completed.", (double)p->ae.runs);
	}
	sp_metric(m, 0, "spoolsync_local_pending", NULL,
	    "Local changes being coalesced.", sp->q ? queue_pending(sp->q) : 0);
	sp_metric(m, 1, "spoolsync_local_changes_total", NULL,
	    "Local changes seen (new versions).", (double)sp->local_changes);
	sp_metric(m, 1, "spoolsync_applied_total", NULL,
	    "Changes from peers applied.", (double)sp->applied);
	sp_metric(m, 1, "spoolsync_watch_overflows_total", NULL,
	    "inotify overflows (each followed by a full comparison).",
	    (double)sp->overflows);
	sp_metric(m, 0, "spoolsync_state_records", NULL,
	    "Paths in the state database.", (double)state_count(sp->st));
}

/* Start, reload, stop. */

/* The exclude list as written, to tell a reload that changes it. */
static char *
sp_exclude_text(const struct spoolsync_conf *c)
{
	const struct cfg_node	*list = cfg_map_get(c->doc->root, "exclude");
	struct buf		 b;

	buf_init(&b);
	buf_adds(&b, list == NULL ? "(default)" : "");
	for (size_t i = 0; list != NULL && list->kind == CFG_LIST && i < list->n;
	    i++)
		if (list->vals[i]->kind == CFG_SCALAR)
			buf_printf(&b, "%s\n", list->vals[i]->scalar);
	return buf_release(&b);
}

static int
sp_excluded_cb(const char *relpath, int is_dir, void *arg)
{
	struct spoolsync	*sp = arg;

	return exclude_match(sp->ex, relpath);
}

static int
sp_runs_as_root(const struct spoolsync_conf *c)
{
	struct passwd	*pw;

	if (geteuid() != 0)
		return 0;
	if (c->common.user == NULL)
		return 1;
	return (pw = getpwnam(c->common.user)) != NULL && pw->pw_uid == 0;
}

/*
 * Temp files left by a crash (kill -9 mid-transfer) are never anything's
 * content: removed at start, before anything new is written.
 */
static size_t
sp_clean_temps(int dfd, int depth)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	size_t		 n = 0;
	int		 sub, isdir;

	if (depth > PATH_REL_MAX / 2 || (d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (exclude_is_temp(de->d_name)) {
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				n++;
			continue;
		}
		isdir = de->d_type == DT_DIR || (de->d_type == DT_UNKNOWN &&
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode));
		if (!isdir)
			continue;
		sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (sub != -1)
			n += sp_clean_temps(sub, depth + 1);
	}
	closedir(d);
	return n;
}

static void
sp_gc_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spoolsync	*sp = arg;
	size_t			 n;

	if ((n = state_gc(sp->st, STATE_TOMB_TTL_NS)) > 0)
		log_info("state: %zu old tombstones forgotten", n);
}

static void
sp_free(struct spoolsync *sp)
{
	struct item	*it;

	if (sp == NULL)
		return;
	peer_shutdown(sp);
	peer_free_all(sp);
	if (sp->w != NULL)
		watch_stop(sp->w);
	bg_free(sp->bg_commit);		/* written, not placed: removed */
	bg_free(sp->bg_place);		/* what landed is still recorded */
	recv_shutdown(sp);
	bg_free(sp->bg);
	pmap_free(sp->applying, free);
	ae_shutdown(sp);
	for (size_t i = 0; i < sp->npeers; i++) {
		struct peer	*p = &sp->peers[i];

		ae_free(p);
		while ((it = TAILQ_FIRST(&p->outbox)) != NULL) {
			TAILQ_REMOVE(&p->outbox, it, entry);
			item_free(it);
		}
		pmap_free(p->queued, NULL);
		pmap_free(p->pk, free);
		free(p->name);
	}
	free(sp->peers);
	if (sp->repair != NULL) {
		control_reply_error(sp->repair->c, "repair: the daemon is stopping");
		event_free(sp->repair->timeout);
		free(sp->repair);
	}
	queue_free(sp->q);
	if (sp->ev_gc != NULL)
		event_free(sp->ev_gc);
	if (sp->ev_qkick != NULL)
		event_free(sp->ev_qkick);
	mfref_put(sp->last_mf);
	state_close(sp->st);
	if (sp->rootfd != -1)
		close(sp->rootfd);
	exclude_free(sp->ex);
	explicit_bzero(&sp->key, sizeof(sp->key));
	free(sp->node);
	free(sp->root);
	free(sp->conflict_dir);
	free(sp->state_dir);
	free(sp->exclude_text);
	free(sp);
}

static void
sp_init_peers(struct spoolsync *sp, const struct spoolsync_conf *c)
{
	sp->npeers = c->npeers;
	sp->peers = xcalloc(c->npeers, sizeof(*sp->peers));
	for (size_t i = 0; i < c->npeers; i++) {
		struct peer	*p = &sp->peers[i];

		p->sp = sp;
		p->name = xstrdup(c->peers[i].name);
		p->addr = c->peers[i].address;
		p->dialer = strcmp(sp->node, p->name) < 0;
		TAILQ_INIT(&p->outbox);
		p->queued = pmap_new();
		p->pk = pmap_new();
		ae_init(p);
	}
}

static int
sp_start_watch(struct spoolsync *sp, const struct spoolsync_conf *c, char *err,
    size_t errlen)
{
	struct queue_opts	qo;
	struct watch_opts	wo;

	memset(&qo, 0, sizeof(qo));
	qo.delay_ns = (uint64_t)c->coalesce_ms * 1000000ULL;
	qo.max_delay_ns = (uint64_t)c->coalesce_max_ms * 1000000ULL;
	if ((sp->q = queue_new(&qo, err, errlen)) == NULL ||
	    queue_attach(sp->q, sp->base, sync_queue_cb, sp, err, errlen) == -1)
		return -1;
	memset(&wo, 0, sizeof(wo));
	wo.excluded = sp_excluded_cb;
	wo.excluded_arg = sp;
	sp->w = watch_start(sp->base, sp->root, &wo, sync_watch_cb, sp, err, errlen);
	return sp->w == NULL ? -1 : 0;
}

int
spoolsync_start(struct daemon *d, void *confp, char *err, size_t errlen)
{
	struct spoolsync_conf	*c = confp;
	struct spoolsync	*sp = xcalloc(1, sizeof(*sp));
	struct timeval		 tv = { GC_EVERY_S, 0 };
	double			 bounds[] = { 0.001, 0.002, 0.005, 0.01, 0.025,
				    0.05, 0.1, 0.25, 0.5, 1, 5 };
	size_t			 ntemp;
	int			 fd;

	sp->d = d;
	sp->base = d->base;
	sp->rootfd = -1;
	sp->node = xstrdup(c->node);
	sp->root = xstrdup(c->root);
	sp->conflict_dir = xstrdup(c->conflict_dir);
	sp->state_dir = xstrdup(c->state_dir);
	sp->mode = c->mode;
	sp->key = *c->key;
	sp->ex = c->exclude;
	c->exclude = NULL;	/* ours now: the watcher thread reads it */
	sp->exclude_text = sp_exclude_text(c);
	sp->anti_entropy_ms = c->anti_entropy_ms;
	sp->reconnect_max_ms = c->reconnect_max_ms;
	sp->whole_below = c->whole_below;
	sp->is_root = sp_runs_as_root(c);
	TAILQ_INIT(&sp->links);
	TAILQ_INIT(&sp->mf_wait);
	TAILQ_INIT(&sp->mf_run);
	sp->applying = pmap_new();
	TAILQ_INIT(&sp->commit_wait);
	if ((sp->rootfd = open(sp->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "root: %s: %s", sp->root, strerror(errno));
		goto fail;
	}
	if ((sp->st = state_open(sp->state_dir, sp->root, err, errlen)) == NULL)
		goto fail;
	/* The state lock is ours: no other spoolsync writes temp files here. */
	if ((fd = openat(sp->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1 &&
	    (ntemp = sp_clean_temps(fd, 0)) > 0)
		log_info("removed %zu temp file%s left by an interrupted run", ntemp,
		    ntemp == 1 ? "" : "s");
	if ((sp->bg = bg_new(sp->base, 2, err, errlen)) == NULL ||
	    (sp->bg_commit = bg_new(sp->base, 1, err, errlen)) == NULL ||
	    (sp->bg_place = bg_new(sp->base, 1, err, errlen)) == NULL)
		goto fail;
	sp->last_mf = mfref_new(state_manifest(sp->st));
	sp_init_peers(sp, c);
	if (sp->mode != MODE_RECEIVE && sp_start_watch(sp, c, err, errlen) == -1)
		goto fail;
	if (c->has_listen && peer_listen(sp, &c->listen, err, errlen) == -1)
		goto fail;
	d->arg = sp;
	sp->m_apply = metrics_histogram(d->metrics, "spoolsync_apply_seconds", NULL,
	    "From FILE_BEGIN to the file durable in place, at this receiver.",
	    bounds, sizeof(bounds) / sizeof(bounds[0]));
	metrics_on_collect(d->metrics, sp_metrics_cb, d);
	for (size_t i = 0; i < sp->npeers; i++)
		peer_start(&sp->peers[i]);
	if (sp->mode != MODE_RECEIVE)
		ae_rescan(sp);
	sp->ev_gc = event_new(sp->base, -1, EV_PERSIST, sp_gc_cb, sp);
	event_add(sp->ev_gc, &tv);
	log_info("node %s (%s): root %s, %zu peer%s, %zu known paths, listening "
	    "on %s", sp->node, spoolsync_mode_name(sp->mode), sp->root, sp->npeers,
	    sp->npeers == 1 ? "" : "s", state_count(sp->st),
	    c->has_listen ? c->listen.text : "nothing (dialing only)");
	return 0;
fail:
	d->arg = NULL;
	sp_free(sp);
	return -1;
}

/* Only the tuning changes live; the rest asks for a restart. */
int
spoolsync_swap(struct daemon *d, void *confp, char *err, size_t errlen)
{
	struct spoolsync	*sp = spoolsync_of(d);
	struct spoolsync_conf	*c = confp;
	const char		*what = NULL;

	if (sp == NULL)
		return 0;
	if (strcmp(c->node, sp->node) != 0)
		what = "node";
	else if (strcmp(c->root, sp->root) != 0)
		what = "root";
	else if (c->mode != sp->mode)
		what = "mode";
	else if (strcmp(c->state_dir, sp->state_dir) != 0)
		what = "state_dir";
	else if (c->npeers != sp->npeers)
		what = "peers";
	else if (c->key->len != sp->key.len || memcmp(c->key->bytes, sp->key.bytes,
	    sp->key.len) != 0)
		what = "cluster_key";
	if (what == NULL) {
		char	*ex = sp_exclude_text(c);

		if (strcmp(ex, sp->exclude_text) != 0)
			what = "exclude";
		free(ex);
	}
	for (size_t i = 0; what == NULL && i < c->npeers; i++)
		if (strcmp(c->peers[i].name, sp->peers[i].name) != 0 ||
		    strcmp(c->peers[i].address.text, sp->peers[i].addr.text) != 0)
			what = "peers";
	if (what != NULL) {
		snprintf(err, errlen, "%s: cannot change on reload (restart "
		    "spoolsync)", what);
		return -1;
	}
	sp->anti_entropy_ms = c->anti_entropy_ms;
	sp->reconnect_max_ms = c->reconnect_max_ms;
	sp->whole_below = c->whole_below;
	free(sp->conflict_dir);
	sp->conflict_dir = xstrdup(c->conflict_dir);
	return 0;
}

void
spoolsync_stop(struct daemon *d)
{
	struct spoolsync	*sp = spoolsync_of(d);

	if (sp == NULL)
		return;
	d->arg = NULL;
	sp_free(sp);
}
