/*
 * antientropy.c: manifests, so that a missed event can never leave a silent
 * difference.  On every (re)connect, on an inotify overflow and every
 * anti_entropy period, each side asks the other for its manifest (path,
 * type, size, mode, owner, mtime_ns, SHA-256; per-directory digests make an
 * unchanged subtree cost one compare), builds its own on a worker thread,
 * diffs them and queues what differs.  In send mode this root is the truth
 * (what the receiver has extra is deleted); in bidirectional mode a diff
 * never deletes: deletes travel only as tombstones with version vectors.
 * The same manifests, fully hashed, serve `spoolsync --audit`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "engine.h"

/* Rescan entries looked at per loop turn: few, so that an initial sync
 * ships while the rescan runs (with 2048, about 4,000 of 100,000 files went
 * out in the 0.6 s it took; with 512, about 14,000; 256 was faster still). */
#define AE_RECONCILE_STEP	256

struct mfreq {
	TAILQ_ENTRY(mfreq) entry;
	int		 full;
	void		(*cb)(struct mfref *, const char *, void *);
	void		*arg;
};

/* One manifest build on a worker thread. */
struct ajob {
	struct spoolsync *sp;
	int		 rootfd;
	const struct exclude *ex;
	struct mfref	*prev;
	int		 full;
	struct manifest	*out;
	char		 err[512];
	int		 rc;
	struct link	*l;		/* an audit session's (NULL: gone) */
	struct mfsend	*mfs;
	int		 audit;
};

static void	ae_finish(struct peer *, int ok);
static void	ae_local_cb(struct mfref *, const char *, void *);
static int	ae_defer(struct peer *);
static int	ae_busy(struct peer *);

/* Shared manifests. */

struct mfref *
mfref_get(struct mfref *r)
{
	if (r != NULL)
		r->refs++;
	return r;
}

void
mfref_put(struct mfref *r)
{
	if (r == NULL || --r->refs > 0)
		return;
	manifest_free(r->mf);
	free(r);
}

struct mfref *
mfref_new(struct manifest *mf)
{
	struct mfref	*r = xcalloc(1, sizeof(*r));

	r->mf = mf;
	r->refs = 1;
	r->built_ms = now_mono_ms();
	return r;
}

static void
ajob_run(void *arg)
{
	struct ajob	*j = arg;

	j->rc = manifest_build(j->rootfd, j->ex, j->prev != NULL ? j->prev->mf :
	    NULL, j->full, &j->out, j->err, sizeof(j->err));
}

static void
ajob_free(struct ajob *j)
{
	manifest_free(j->out);
	mfref_put(j->prev);
	free(j);
}

static void	mf_build_start(struct spoolsync *);

static void
mf_build_done(void *arg, int cancelled)
{
	struct ajob	*j = arg;
	struct spoolsync *sp = j->sp;
	struct mfreq	*req;
	struct mfref	*ref = NULL;

	if (cancelled) {
		ajob_free(j);
		return;
	}
	if (j->rc == 0) {
		ref = mfref_new(j->out);
		j->out = NULL;
		mfref_put(sp->last_mf);
		sp->last_mf = mfref_get(ref);
	} else
		log_warnx("listing the tree: %s", j->err);
	/* Still "building" while the callbacks run: they may ask again. */
	while ((req = TAILQ_FIRST(&sp->mf_run)) != NULL) {
		TAILQ_REMOVE(&sp->mf_run, req, entry);
		req->cb(ref, ref == NULL ? j->err : NULL, req->arg);
		free(req);
	}
	mfref_put(ref);
	ajob_free(j);
	sp->mf_building = 0;
	if (!TAILQ_EMPTY(&sp->mf_wait))
		mf_build_start(sp);
}

static void
mf_build_start(struct spoolsync *sp)
{
	struct ajob	*j = xcalloc(1, sizeof(*j));
	struct mfreq	*req;

	while ((req = TAILQ_FIRST(&sp->mf_wait)) != NULL) {
		TAILQ_REMOVE(&sp->mf_wait, req, entry);
		TAILQ_INSERT_TAIL(&sp->mf_run, req, entry);
		j->full |= req->full;
	}
	j->sp = sp;
	j->rootfd = sp->rootfd;
	j->ex = sp->ex;
	j->prev = j->full ? NULL : mfref_get(sp->last_mf);
	sp->mf_building = 1;
	bg_submit(sp->bg, ajob_run, mf_build_done, j);
}

/* CB gets a manifest built after this call (or NULL and an error). */
struct mfreq *
mf_request(struct spoolsync *sp, int full,
    void (*cb)(struct mfref *, const char *err, void *), void *arg)
{
	struct mfreq	*req = xcalloc(1, sizeof(*req));

	req->full = full;
	req->cb = cb;
	req->arg = arg;
	TAILQ_INSERT_TAIL(&sp->mf_wait, req, entry);
	if (!sp->mf_building)
		mf_build_start(sp);
	return req;
}

void
mf_cancel(struct spoolsync *sp, struct mfreq *req)
{
	struct mfreq	*r;

	if (req == NULL)
		return;
	TAILQ_FOREACH(r, &sp->mf_wait, entry)
		if (r == req) {
			TAILQ_REMOVE(&sp->mf_wait, r, entry);
			free(r);
			return;
		}
	TAILQ_FOREACH(r, &sp->mf_run, entry)
		if (r == req) {
			TAILQ_REMOVE(&sp->mf_run, r, entry);
			free(r);
			return;
		}
}

/* Serving MANIFEST_REQ. */

static void
mfsend_free(struct spoolsync *sp, struct mfsend *mfs)
{
	mf_cancel(sp, mfs->req);
	if (mfs->ev_wait != NULL)
		event_free(mfs->ev_wait);
	buf_free(&mfs->data);
	free(mfs);
}

static void
ae_serve_cb(struct mfref *ref, const char *err, void *arg)
{
	struct mfsend	*mfs = arg;

	mfs->req = NULL;
	if (ref == NULL) {
		link_close(mfs->l, "cannot list the tree for the peer: %s", err);
		return;
	}
	manifest_encode(ref->mf, &mfs->data);
	mfs->ready = 1;
	link_pump_soon(mfs->l);
}

static void
ae_audit_done(void *arg, int cancelled)
{
	struct ajob	*j = arg;
	struct link	*l = j->l;

	if (cancelled || l == NULL) {
		ajob_free(j);
		return;
	}
	l->audit_job = NULL;
	if (j->rc == -1) {
		link_close(l, "cannot list the tree for the audit: %s", j->err);
		ajob_free(j);
		return;
	}
	mfref_put(l->audit_mf);
	l->audit_mf = mfref_new(j->out);
	j->out = NULL;
	manifest_encode(l->audit_mf->mf, &j->mfs->data);
	j->mfs->ready = 1;
	ajob_free(j);
	link_pump_soon(l);
}

/* An audit: the first manifest hashes everything, re-checks reuse it. */
static void
ae_audit_build(struct link *l, struct mfsend *mfs, int full)
{
	struct ajob	*j;

	if (l->audit_job != NULL) {
		link_close(l, "one manifest at a time on an audit session");
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->sp = l->sp;
	j->rootfd = l->sp->rootfd;
	j->ex = l->sp->ex;
	j->full = full || l->audit_mf == NULL;
	j->prev = j->full ? NULL : mfref_get(l->audit_mf);
	j->l = l;
	j->mfs = mfs;
	j->audit = 1;
	l->audit_job = j;
	bg_submit(l->sp->bg, ajob_run, ae_audit_done, j);
}

/*
 * A sender busy shipping (its startup rescan, or changes queued for this
 * peer) answers a plain MANIFEST_REQ once it is done: a listing made now
 * would hash every file the outbox is about to read and hash anyway, and
 * tell the peer only what is still in flight.  A full request (repair,
 * audit) is answered at once; any after AE_DEFER_MAX_MS.
 */
static int
ae_serve_busy(struct link *l)
{
	struct spoolsync	*sp = l->sp;
	struct peer		*p = l->peer;

	return sp->mode == MODE_SEND && p != NULL && (sp->rescan_run != NULL ||
	    p->nqueued > 0 || l->nops > 0);
}

static void
ae_serve_start(struct mfsend *mfs)
{
	mfs->waiting = 0;
	if (mfs->ev_wait != NULL)
		event_free(mfs->ev_wait);
	mfs->ev_wait = NULL;
	mfs->req = mf_request(mfs->l->sp, 0, ae_serve_cb, mfs);
}

static void
ae_serve_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	ae_serve_start(arg);
}

static void
ae_serve_defer(struct mfsend *mfs)
{
	struct timeval	tv = { AE_DEFER_MAX_MS / 1000,
			    (AE_DEFER_MAX_MS % 1000) * 1000 };

	mfs->waiting = 1;
	if ((mfs->ev_wait = evtimer_new(mfs->l->sp->base, ae_serve_wait_cb,
	    mfs)) == NULL)
		fatalx("anti-entropy: out of memory for a timer");
	evtimer_add(mfs->ev_wait, &tv);
}

void
ae_on_manifest_req(struct link *l, const struct wire_manifest_req *req)
{
	struct mfsend	*mfs;
	struct peer	*p = l->peer;
	int		 full = (req->id & SPOOLSYNC_MF_FULL) != 0;
	size_t		 n;

	if (req->dir[0] != '\0') {
		link_close(l, "MANIFEST_REQ for a subtree (\"%s\"): only the whole "
		    "tree is served", req->dir);
		return;
	}
	n = 0;
	TAILQ_FOREACH(mfs, &l->mfs, entry)
		n++;
	if (n >= AE_SERVE_MAX) {
		link_close(l, "more than %d manifests asked for at once",
		    AE_SERVE_MAX);
		return;
	}
	mfs = xcalloc(1, sizeof(*mfs));
	mfs->id = req->id;
	mfs->l = l;
	buf_init(&mfs->data);
	TAILQ_INSERT_TAIL(&l->mfs, mfs, entry);
	if (l->audit) {
		ae_audit_build(l, mfs, full);
		return;
	}
	if (!full && ae_serve_busy(l))
		ae_serve_defer(mfs);
	else
		mfs->req = mf_request(l->sp, full, ae_serve_cb, mfs);
	/* The peer compares: so do we, unless we just did (or files flow). */
	if (!p->ae.running && now_mono_ms() - p->ae.done_ms > AE_RECIPROCAL_MS &&
	    (full || !ae_defer(p)))
		ae_start(p, full, "the peer compares");
	else if (p->ae.running && full)
		p->ae.again = p->ae.again_full = 1;
}

void
ae_pump(struct link *l, size_t *budget)
{
	struct mfsend	*mfs;
	struct wire_msg	 m;
	size_t		 n;

	TAILQ_FOREACH(mfs, &l->mfs, entry)
		if (mfs->waiting && !ae_serve_busy(l))
			ae_serve_start(mfs);
	while ((mfs = TAILQ_FIRST(&l->mfs)) != NULL && mfs->ready &&
	    *budget > 0 && !link_out_high(l)) {
		n = mfs->data.len - mfs->off;
		if (n > WIRE_CHUNK_MAX)
			n = WIRE_CHUNK_MAX;
		memset(&m, 0, offsetof(struct wire_msg, vv_store));
		m.type = WIRE_MANIFEST;
		m.manifest.id = mfs->id;
		m.manifest.data = (const unsigned char *)mfs->data.data + mfs->off;
		m.manifest.len = n;
		m.manifest.last = mfs->off + n == mfs->data.len;
		if (link_send(l, &m) == -1)
			return;
		mfs->off += n;
		*budget = *budget > n ? *budget - n : 0;
		if (mfs->off == mfs->data.len) {
			TAILQ_REMOVE(&l->mfs, mfs, entry);
			mfsend_free(l->sp, mfs);
		}
	}
	if (mfs != NULL && mfs->ready && *budget == 0)
		link_pump_soon(l);
}

/* Our side of a pass. */

/* The tree and the records disagree: look at the path (events were missed). */
static int
ae_rec_differs(const struct st_rec *r, const struct mf_entry *e)
{
	if (r == NULL || r->deleted || r->type != e->type || r->mode != e->mode ||
	    r->uid != e->uid || r->gid != e->gid)
		return 1;
	if (e->type == MF_DIR)
		return 0;
	return r->size != e->size || r->mtime_ns != e->mtime_ns ||
	    r->ino != e->ino || r->ctime_ns != e->ctime_ns ||
	    (r->hash_ok && !(e->flags & MF_F_NOHASH) &&
	    memcmp(r->hash, e->hash, MF_HASH_LEN) != 0);
}

/*
 * Entries [FROM, TO) of MF against the records: how many changed.  LISTED
 * counts the live records MF lists, OLD those of them untouched since
 * SINCE_MS (monotonic), which a rescan's gone check needs.
 */
static size_t
ae_reconcile_range(struct spoolsync *sp, const struct manifest *mf, size_t from,
    size_t to, size_t *listed, uint64_t since_ms, size_t *old)
{
	const struct st_rec	*r;
	size_t			 found = 0;

	state_begin(sp->st);	/* the slice's records in one transaction */
	for (size_t i = from; i < to; i++) {
		int	changed;

		r = state_get(sp->st, mf->e[i].path);
		if (r != NULL && !r->deleted && r->touched_ms < since_ms)
			(*old)++;
		if (!ae_rec_differs(r, &mf->e[i])) {
			(*listed)++;
			continue;
		}
		if (mf->e[i].flags & MF_F_NOHASH)
			changed = sync_adopt_new(sp, &mf->e[i]);
		else
			changed = sync_adopt(sp, &mf->e[i]);
		if (changed == -1)
			changed = sync_local_check(sp, mf->e[i].path);
		if (changed) {
			sync_enqueue_all(sp, mf->e[i].path);
			found++;
		}
		if ((r = state_get(sp->st, mf->e[i].path)) != NULL && !r->deleted)
			(*listed)++;
	}
	state_commit(sp->st);
	return found;
}

/* Records of paths MF does not list: gone, unless they came meanwhile. */
static size_t
ae_reconcile_gone(struct spoolsync *sp, const struct manifest *mf)
{
	struct st_rec	**v;
	size_t		  n, found = 0;
	char		**gone;
	size_t		  ngone = 0;

	state_begin(sp->st);
	n = state_collect(sp->st, "", &v);
	gone = xcalloc(n + 1, sizeof(*gone));
	for (size_t i = 0; i < n; i++)
		if (!v[i]->deleted && manifest_find(mf, v[i]->path) == NULL)
			gone[ngone++] = xstrdup(v[i]->path);
	free(v);
	for (size_t i = 0; i < ngone; i++) {
		if (sync_local_check(sp, gone[i])) {
			sync_enqueue_all(sp, gone[i]);
			found++;
		}
		free(gone[i]);
	}
	free(gone);
	state_commit(sp->st);
	return found;
}

static size_t
ae_reconcile(struct spoolsync *sp, const struct manifest *mf)
{
	size_t	listed = 0, old = 0, found;

	found = ae_reconcile_range(sp, mf, 0, mf->n, &listed, 0, &old);
	/* Every live record stands for a listed path: none is gone. */
	if (listed == state_live_count(sp->st))
		return found;
	return found + ae_reconcile_gone(sp, mf);
}

/*
 * A rescan.  It only looks for local changes, so a file it has no hash for
 * (a new one) is not read here: it becomes a record without one, hashed
 * when it is shipped.  The walk, on a worker, hands its listing over in
 * slices as it goes, and the records follow each slice a few entries per
 * loop turn: an initial sync ships its first files a few ms after the
 * start, not once the whole tree has been listed (and never after a pass
 * over every byte of it).  What only the whole listing can tell (which
 * records are gone) waits for its end.
 */
struct rslice {
	struct rslice	*next;
	struct rescan	*rs;
	struct manifest	*mf;
};

struct rescan {
	struct spoolsync *sp;
	/* the walk's, on the worker until its end */
	struct bg	*bg;
	int		 rootfd;
	const struct exclude *ex;
	struct mfref	*prev;
	struct manifest	*out;
	char		 err[512];
	int		 rc;
	/* the loop's */
	struct rslice	*head, *tail;	/* slices not yet reconciled */
	size_t		 next;		/* in head */
	struct manifest	*mf;		/* the whole listing, once walked */
	int		 walking;	/* the worker has it */
	int		 dead;		/* superseded or stopped: nothing more */
	size_t		 found, listed;
	size_t		 live0, old;	/* live records at the start; listed of them */
	uint64_t	 start_ms;
	struct event	*ev;
};

static void
rslice_free(struct rslice *sl)
{
	manifest_free(sl->mf);
	free(sl);
}

static void
rescan_drop_slices(struct rescan *rs)
{
	struct rslice	*sl;

	while ((sl = rs->head) != NULL) {
		rs->head = sl->next;
		rslice_free(sl);
	}
	rs->tail = NULL;
	rs->next = 0;
}

/*
 * No longer the rescan: its slices are dropped (a newer one lists the tree
 * again, or the daemon stops), and it is freed once its walk is back.
 */
static void
rescan_free(struct rescan *rs)
{
	if (rs == NULL)
		return;
	if (rs->sp->rescan_run == rs)
		rs->sp->rescan_run = NULL;
	rs->dead = 1;
	rescan_drop_slices(rs);
	if (rs->ev != NULL)
		evtimer_del(rs->ev);
	if (rs->walking)
		return;
	if (rs->ev != NULL)
		event_free(rs->ev);
	manifest_free(rs->mf);
	manifest_free(rs->out);
	mfref_put(rs->prev);
	free(rs);
}

/* On the worker: a slice of the listing goes to the loop now. */
static void	ae_rescan_slice_cb(void *, int);

static void
ae_rescan_slice(struct manifest *part, void *arg)
{
	struct rescan	*rs = arg;
	struct rslice	*sl = xcalloc(1, sizeof(*sl));

	sl->rs = rs;
	sl->mf = part;
	bg_post(rs->bg, ae_rescan_slice_cb, sl);
}

static void
ae_rescan_run(void *arg)
{
	struct rescan	*rs = arg;

	rs->rc = manifest_build_quick_stream(rs->rootfd, rs->ex, rs->prev != NULL ?
	    rs->prev->mf : NULL, ae_rescan_slice, rs, &rs->out, rs->err,
	    sizeof(rs->err));
}

static void
ae_rescan_slice_cb(void *arg, int cancelled)
{
	struct rslice	*sl = arg;
	struct rescan	*rs = sl->rs;
	struct timeval	 tv = { 0, 0 };

	if (cancelled || rs->dead || rs->sp->mode == MODE_RECEIVE) {
		rslice_free(sl);
		return;
	}
	if (rs->tail != NULL)
		rs->tail->next = sl;
	else
		rs->head = sl;
	rs->tail = sl;
	evtimer_add(rs->ev, &tv);
}

/*
 * The passes that waited for this rescan (see ae_start) take its listing as
 * their side, already reconciled; MF NULL: none came, they list the tree.
 */
static void
ae_rescan_feed(struct spoolsync *sp, struct manifest *mf)
{
	struct mfref	*ref = mf != NULL ? mfref_new(mf) : NULL;
	struct peer	*p;

	for (size_t i = 0; i < sp->npeers; i++) {
		p = &sp->peers[i];
		if (!p->ae.wait_rescan)
			continue;
		p->ae.wait_rescan = 0;
		if (ref == NULL) {
			p->ae.req = mf_request(sp, 0, ae_local_cb, p);
			continue;
		}
		p->ae.local = mfref_get(ref);
		p->ae.local_rescan = 1;
		ae_finish(p, 1);
	}
	mfref_put(ref);
}

/* The whole listing is in and every slice of it reconciled. */
static void
ae_rescan_end(struct rescan *rs)
{
	struct spoolsync	*sp = rs->sp;
	struct manifest		*mf;

	/*
	 * Only a record older than the rescan can be gone unseen (the others
	 * were just made or looked at): when the listing names every one of
	 * them, none is.
	 */
	if (rs->old != rs->live0)
		rs->found += ae_reconcile_gone(sp, rs->mf);
	if (!sp->rescan_done || rs->found > 0)
		log_info("rescan: %zu entries, %zu changed since they were last "
		    "seen", rs->mf->n, rs->found);
	sp->rescan_done = 1;
	mf = rs->mf;
	rs->mf = NULL;
	rescan_free(rs);
	ae_rescan_feed(sp, mf);
}

static void
ae_rescan_step_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rescan	*rs = arg;
	struct rslice	*sl;
	struct timeval	 tv = { 0, 0 };
	size_t		 budget = AE_RECONCILE_STEP, to;

	while (budget > 0 && (sl = rs->head) != NULL) {
		to = sl->mf->n - rs->next > budget ? rs->next + budget : sl->mf->n;
		rs->found += ae_reconcile_range(rs->sp, sl->mf, rs->next, to,
		    &rs->listed, rs->start_ms, &rs->old);
		budget -= to - rs->next;
		rs->next = to;
		if (rs->next < sl->mf->n)
			break;
		if ((rs->head = sl->next) == NULL)
			rs->tail = NULL;
		rs->next = 0;
		rslice_free(sl);
	}
	if (rs->head != NULL)
		evtimer_add(rs->ev, &tv);	/* after the links' turn */
	else if (rs->mf != NULL)
		ae_rescan_end(rs);
	/* else the walk's next slice (or its end) comes */
}

static void
ae_rescan_done(void *arg, int cancelled)
{
	struct rescan		*rs = arg;
	struct spoolsync	*sp = rs->sp;
	struct timeval		 tv = { 0, 0 };

	sp->rescan_listing--;
	rs->walking = 0;
	if (cancelled || rs->dead) {
		if (rs->dead)
			rescan_free(rs);
		return;		/* else ae_shutdown frees it */
	}
	if (rs->rc == -1 || sp->mode == MODE_RECEIVE) {
		if (rs->rc == -1)
			log_warnx("rescan: listing the tree: %s", rs->err);
		else
			sp->rescan_done = 1;
		rescan_free(rs);
		ae_rescan_feed(sp, NULL);
		return;
	}
	rs->mf = rs->out;
	rs->out = NULL;
	evtimer_add(rs->ev, &tv);	/* the last slices, then the end */
}

/* A newer rescan supersedes one under way: it lists the whole tree again. */
void
ae_rescan(struct spoolsync *sp)
{
	struct rescan	*rs = xcalloc(1, sizeof(*rs));

	rescan_free(sp->rescan_run);
	rs->sp = sp;
	rs->bg = sp->bg;
	rs->rootfd = sp->rootfd;
	rs->ex = sp->ex;
	rs->prev = mfref_get(sp->last_mf);
	/* Touched in this ms or later: not older than the rescan. */
	rs->start_ms = now_mono_ms();
	rs->live0 = sp->mode == MODE_RECEIVE ? 0 : state_live_count(sp->st);
	if ((rs->ev = evtimer_new(sp->base, ae_rescan_step_cb, rs)) == NULL)
		fatalx("rescan: out of memory for a timer");
	rs->walking = 1;
	sp->rescan_run = rs;
	sp->rescan_listing++;
	bg_submit(sp->bg, ae_rescan_run, ae_rescan_done, rs);
}

static void
ae_local_cb(struct mfref *ref, const char *err, void *arg)
{
	struct peer	*p = arg;

	p->ae.req = NULL;
	if (ref == NULL) {
		sp_error(p->sp, p, "anti-entropy: %s", err);
		ae_finish(p, 0);
		return;
	}
	p->ae.local = mfref_get(ref);
	ae_finish(p, 1);
}

static int
ae_under(const char *path, const char *dir)
{
	size_t	n = strlen(dir);

	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/*
 * Bidirectional first contact: trees that start identical (seeded with
 * rsync, say) hold versions neither side has seen the other's vector for,
 * and the first edit of each file would look concurrent.  Every file goes
 * once as "same content, here is my vector", which both sides merge.
 */
static int
ae_synced(struct peer *p)
{
	char	 key[WIRE_NAME_MAX + 16], *v;
	int	 yes;

	snprintf(key, sizeof(key), "synced:%s", p->name);
	v = state_get_meta(p->sp->st, key);
	yes = v != NULL && strcmp(v, "1") == 0;
	free(v);
	return yes;
}

static void
ae_first_contact(struct peer *p, const struct manifest *here)
{
	size_t	n = 0;

	for (size_t i = 0; i < here->n; i++)
		if (here->e[i].type != MF_DIR) {
			sync_enqueue(p, here->e[i].path, 1);
			n++;
		}
	if (n > 0)
		log_info("peer %s: first contact: %zu version vectors exchanged",
		    p->name, n);
}

static void
ae_mark_synced(struct peer *p)
{
	char	key[WIRE_NAME_MAX + 16];

	snprintf(key, sizeof(key), "synced:%s", p->name);
	if (state_set_meta(p->sp->st, key, "1") == -1)
		sp_error(p->sp, p, "%s", state_error(p->sp->st));
}

/*
 * The peer acked HERE's exact content and metadata after this pass began
 * (ae_learn trusts such an ack over the manifest too): the difference is
 * settled, and queueing it again would only read and hash the file once
 * more to find so.  A quick listing's new file carries no hash: its record,
 * hashed when the file was shipped, tells the content while it still has
 * the stat the listing saw; such a file in flight is settled too (its ack
 * settles it, a failure queues it again).  (An initial sync ships most of
 * the tree before its rescan's pass compares, some of it from records made
 * before the pass began, when the link came up after the rescan's first
 * slices.)
 */
static int
ae_acked_since(const struct peer *p, const struct link *l,
    const struct mf_entry *here)
{
	const struct pk		*k;
	const struct st_rec	*r;
	const unsigned char	*hash;

	if (here == NULL || (here->type != MF_FILE && here->type != MF_DIR) ||
	    (here->flags & (MF_F_UNSTABLE | MF_F_RACY)))
		return 0;
	hash = here->hash;
	if (here->type == MF_FILE && (here->flags & MF_F_NOHASH)) {
		r = state_get(p->sp->st, here->path);
		if (r == NULL || r->deleted || r->type != MF_FILE ||
		    !r->hash_ok || r->size != here->size ||
		    r->mtime_ns != here->mtime_ns ||
		    r->ctime_ns != here->ctime_ns || r->ino != here->ino ||
		    r->dev != here->dev || r->mode != here->mode ||
		    r->uid != here->uid || r->gid != here->gid)
			return 0;
		if (pmap_get(l->busy, here->path) != NULL)
			return 1;
		hash = r->hash;
	}
	if ((k = pmap_get(p->pk, here->path)) == NULL ||
	    k->ts_ms <= p->ae.started_ms || k->type != here->type ||
	    k->mode != here->mode || k->uid != here->uid || k->gid != here->gid)
		return 0;
	if (here->type == MF_DIR)
		return 1;
	return k->size == here->size && k->mtime_ns == here->mtime_ns &&
	    memcmp(k->hash, hash, MF_HASH_LEN) == 0;
}

/* What the diff says: queued for the peer, and counted. */
static void
ae_apply_diff(struct peer *p, struct link *l, const struct manifest *here,
    const struct manifest *there)
{
	struct spoolsync	*sp = p->sp;
	struct mf_diffs		 ds;
	const struct mf_diff	*d;
	const struct st_rec	*r;
	const char		*path, *skip = NULL;
	size_t			 stable = 0;
	unsigned		 flags = 0;
	int			 acked;

	if (!(sp->is_root && l->peer_root))
		flags |= MF_CMP_NO_OWNER;
	manifest_diff(here, there, flags, &ds);
	for (size_t i = 0; i < ds.n; i++) {
		d = &ds.d[i];
		path = d->here != NULL ? d->here->path : d->there->path;
		if (skip != NULL && ae_under(path, skip))
			continue;
		r = state_get(sp->st, path);
		acked = sp->mode == MODE_SEND && ae_acked_since(p, l, d->here);
		if (!acked && !(r != NULL && r->touched_ms >= p->ae.started_ms) &&
		    pmap_get(p->queued, path) == NULL &&
		    pmap_get(l->busy, path) == NULL)
			stable++;
		if (sp->mode == MODE_SEND) {
			if (!acked)
				sync_enqueue(p, path, 1);
			if (d->kind == MF_MISSING_HERE && d->there->type == MF_DIR)
				skip = path;	/* its delete takes the subtree */
		} else if (sp->mode == MODE_BIDIR &&
		    (d->kind != MF_MISSING_HERE || r != NULL))
			sync_enqueue(p, path, 1);
	}
	if (sp->mode == MODE_BIDIR && !ae_synced(p))
		ae_first_contact(p, here);
	p->ae.diffs = ds.n;
	p->ae.stable_diffs = stable;
	p->ae.clean = stable == 0;
	if (ds.n > 0)
		log_info("peer %s: anti-entropy: %zu difference%s (%zu settled "
		    "by changes in flight)%s", p->name, ds.n, ds.n == 1 ? "" : "s",
		    ds.n - stable, sp->mode == MODE_RECEIVE ? "; the sender ships "
		    "them" : "; shipping them");
	manifest_diffs_free(&ds);
}

/* What the peer holds now: its manifest, then what acks taught us since. */
static void
ae_learn(struct peer *p, const struct manifest *there)
{
	struct pmap		*npk = pmap_new();
	struct pmap_iter	 it = { 0, NULL };
	const char		*key;
	struct pk		*k;
	void			*val;

	for (size_t i = 0; i < there->n; i++) {
		const struct mf_entry	*e = &there->e[i];

		k = xcalloc(1, sizeof(*k));
		k->type = e->type;
		k->mode = e->mode;
		k->uid = e->uid;
		k->gid = e->gid;
		k->size = e->size;
		k->mtime_ns = e->mtime_ns;
		memcpy(k->hash, e->hash, MF_HASH_LEN);
		k->ts_ms = p->ae.started_ms;
		pmap_put(npk, e->path, k);
	}
	while (pmap_next(p->pk, &it, &key, &val)) {
		k = val;
		if (k->ts_ms > p->ae.started_ms)
			free(pmap_put(npk, key, k));
		else
			free(k);
	}
	pmap_free(p->pk, NULL);
	p->pk = npk;
}

static void
ae_schedule(struct peer *p)
{
	struct spoolsync	*sp = p->sp;
	struct ae		*ae = &p->ae;
	struct timeval		 tv;
	int64_t			 ms;

	if (ae->clean) {
		ae->backoff_ms = AE_RETRY_MIN_MS;
		ms = sp->anti_entropy_ms;
	} else {
		ms = ae->backoff_ms;
		ae->backoff_ms = ae->backoff_ms * 2 > sp->anti_entropy_ms ?
		    sp->anti_entropy_ms : ae->backoff_ms * 2;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(ae->ev_timer, &tv);
}

static void
ae_reset(struct peer *p)
{
	struct ae	*ae = &p->ae;

	if (ae->running && !ae->have_remote)
		ae->abandoned_id = ae->id;
	mf_cancel(p->sp, ae->req);
	ae->req = NULL;
	ae->wait_rescan = 0;
	mfref_put(ae->local);
	ae->local = NULL;
	ae->local_rescan = 0;
	buf_reset(&ae->remote_buf);
	ae->have_remote = 0;
	ae->running = 0;
}

/* Both manifests in (or a failure): compare, queue, schedule the next. */
static void
ae_finish(struct peer *p, int ok)
{
	struct spoolsync	*sp = p->sp;
	struct ae		*ae = &p->ae;
	struct link		*l = peer_up_link(p);
	struct manifest		*there;
	char			 err[512];

	if (ok && (ae->local == NULL || !ae->have_remote))
		return;
	if (!ok || l == NULL) {
		ae_reset(p);
		if (l != NULL)
			ae_schedule(p);
		return;
	}
	there = manifest_decode(ae->remote_buf.data, ae->remote_buf.len, err,
	    sizeof(err));
	if (there == NULL) {
		ae_reset(p);
		link_close(l, "refused the peer's manifest: %s", err);
		return;
	}
	if (sp->mode != MODE_RECEIVE && !ae->local_rescan)
		ae_reconcile(sp, ae->local->mf);
	ae_apply_diff(p, l, ae->local->mf, there);
	ae_learn(p, there);
	manifest_free(there);
	ae->runs++;
	sp->ae_runs++;
	ae->done_ms = now_mono_ms();
	ae->ok_since_up = 1;
	if (ae->clean) {
		ae->caught_up = 1;
		p->error_pending = 0;
		if (sp->mode == MODE_BIDIR && !ae_synced(p) &&
		    sp_peer_queued(p) == 0)
			ae_mark_synced(p);
	}
	if (sp->repair != NULL && ae->full)
		ae->repair_done = 1;
	ae_reset(p);
	ae_schedule(p);
	link_pump_soon(l);
	if (ae->again) {
		int	full = ae->again_full;

		ae->again = ae->again_full = 0;
		ae_start(p, full, "asked again meanwhile");
	}
	sp_repair_check(sp);
}

void
ae_start(struct peer *p, int full, const char *why)
{
	struct ae	*ae = &p->ae;
	struct link	*l = peer_up_link(p);
	struct wire_msg	 m;

	if (l == NULL)
		return;
	if (ae->running) {
		ae->again = 1;
		ae->again_full |= full;
		return;
	}
	evtimer_del(ae->ev_timer);
	ae->running = 1;
	ae->full = full;
	ae->id = (((ae->id & ~SPOOLSYNC_MF_FULL) + 1) & ~SPOOLSYNC_MF_FULL) |
	    (full ? SPOOLSYNC_MF_FULL : 0);
	ae->started_ms = now_mono_ms();
	buf_reset(&ae->remote_buf);
	ae->have_remote = 0;
	log_debug("peer %s: anti-entropy%s (%s)", p->name, full ? ", full" : "",
	    why);
	memset(&m, 0, offsetof(struct wire_msg, vv_store));
	m.type = WIRE_MANIFEST_REQ;
	m.manifest_req.id = ae->id;
	m.manifest_req.dir = "";
	if (link_send(l, &m) == -1)
		return;
	/*
	 * A sender's rescan under way lists the tree anyway: its listing,
	 * which hashes only what it knows no hash for, is this side.  The
	 * rest are new files, queued and hashed as they are shipped, not
	 * read once more here before the first one goes.
	 */
	if (!full && p->sp->mode == MODE_SEND &&
	    p->sp->rescan_run != NULL) {
		ae->wait_rescan = 1;
		return;
	}
	ae->req = mf_request(p->sp, full, ae_local_cb, p);
}

void
ae_on_manifest(struct link *l, const struct wire_chunk *c)
{
	struct peer	*p = l->peer;
	struct ae	*ae = &p->ae;

	if (c->id == ae->abandoned_id && c->id != 0 && !(ae->running &&
	    c->id == ae->id)) {
		if (c->last)
			ae->abandoned_id = 0;
		return;		/* the answer to a pass given up */
	}
	if (!ae->running || c->id != ae->id || ae->have_remote) {
		link_close(l, "MANIFEST %llx, which was not asked for",
		    (unsigned long long)c->id);
		return;
	}
	if (ae->remote_buf.len + c->len > AE_MANIFEST_MAX) {
		link_close(l, "the peer's manifest is over %d bytes", AE_MANIFEST_MAX);
		return;
	}
	buf_add(&ae->remote_buf, c->data, c->len);
	if (c->last) {
		ae->have_remote = 1;
		ae_finish(p, 1);
	}
}

/* Files flow on the link: a pass now finds only what is in flight. */
static int
ae_busy(struct peer *p)
{
	struct link	*l = peer_up_link(p);

	if (l == NULL)
		return 0;
	return p->nqueued > 0 || l->nops > 0 || recv_busy(l) ||
	    now_mono_ms() - l->last_file_ms < AE_QUIET_MS;
}

/*
 * A pass due while the link is busy waits (an initial sync would otherwise
 * list and compare both trees again and again while they converge), but
 * never longer than AE_DEFER_MAX_MS: overflows and a new link still start
 * one at once.  1 when deferred (the timer looks again).
 */
static int
ae_defer(struct peer *p)
{
	struct ae	*ae = &p->ae;
	struct timeval	 tv = { AE_DEFER_RECHECK_MS / 1000,
			    (AE_DEFER_RECHECK_MS % 1000) * 1000 };
	uint64_t	 now = now_mono_ms();

	if (ae->running || !ae_busy(p) || (ae->deferred_ms != 0 &&
	    now - ae->deferred_ms >= AE_DEFER_MAX_MS)) {
		ae->deferred_ms = 0;
		return 0;
	}
	if (ae->deferred_ms == 0)
		ae->deferred_ms = now;
	evtimer_add(ae->ev_timer, &tv);
	return 1;
}

static void
ae_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer	*p = arg;

	if (ae_defer(p))
		return;
	ae_start(p, 0, p->ae.clean ? "periodic" : "checking again");
}

void
ae_outbox_drained(struct peer *p)
{
	struct ae	*ae = &p->ae;

	if (p->sp->mode == MODE_BIDIR && ae->ok_since_up && ae->clean &&
	    !ae->running && !ae_synced(p))
		ae_mark_synced(p);
	if (!ae->running && ae->ok_since_up && !ae->clean &&
	    now_mono_ms() - ae->done_ms >= (uint64_t)ae->backoff_ms / 2 &&
	    !ae_busy(p))
		ae_start(p, 0, "queued changes shipped");
}

void
ae_link_up(struct link *l)
{
	struct ae	*ae = &l->peer->ae;

	ae->ok_since_up = 0;
	ae->clean = 0;
	ae->caught_up = 0;
	ae->down_ms = 0;
	ae->backoff_ms = AE_RETRY_MIN_MS;
	ae_start(l->peer, 0, "link up");
}

void
ae_link_down(struct link *l, int was_up)
{
	struct mfsend	*mfs;

	while ((mfs = TAILQ_FIRST(&l->mfs)) != NULL) {
		TAILQ_REMOVE(&l->mfs, mfs, entry);
		mfsend_free(l->sp, mfs);
	}
	if (l->audit_job != NULL)
		l->audit_job->l = NULL;
	l->audit_job = NULL;
	mfref_put(l->audit_mf);
	l->audit_mf = NULL;
	if (!was_up || l->peer == NULL)
		return;
	ae_reset(l->peer);
	l->peer->ae.again = l->peer->ae.again_full = 0;
	l->peer->ae.ok_since_up = 0;
	l->peer->ae.clean = 0;
	l->peer->ae.down_ms = now_mono_ms();
	evtimer_del(l->peer->ae.ev_timer);
}

void
ae_init(struct peer *p)
{
	p->ae.backoff_ms = AE_RETRY_MIN_MS;
	buf_init(&p->ae.remote_buf);
	p->ae.ev_timer = evtimer_new(p->sp->base, ae_timer_cb, p);
	if (p->ae.ev_timer == NULL)
		fatalx("anti-entropy: out of memory for a timer");
}

void
ae_free(struct peer *p)
{
	ae_reset(p);
	buf_free(&p->ae.remote_buf);
	if (p->ae.ev_timer != NULL)
		event_free(p->ae.ev_timer);
	p->ae.ev_timer = NULL;
}

/* Waiting requests are dropped (their owners are being freed too). */
void
ae_shutdown(struct spoolsync *sp)
{
	struct mfreq	*req;

	rescan_free(sp->rescan_run);

	while ((req = TAILQ_FIRST(&sp->mf_wait)) != NULL) {
		TAILQ_REMOVE(&sp->mf_wait, req, entry);
		free(req);
	}
	while ((req = TAILQ_FIRST(&sp->mf_run)) != NULL) {
		TAILQ_REMOVE(&sp->mf_run, req, entry);
		free(req);
	}
}
