/*
 * sync.c: the per-peer outboxes and what drains them.  Local changes (and
 * anti-entropy's differences) queue paths for each peer; the link's pump
 * starts them in order (send.c ships one change) with a window of changes
 * in flight, a move or a directory's delete waiting for what precedes it
 * (a directory's move also for the files still landing beneath it);
 * the peer's acks settle them: what the peer now holds, a retry after an
 * error, or nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "engine.h"

#define SYNC_SCAN_MAX	1024	/* outbox items looked at for one to start */

/* What a peer holds. */

void
pk_set_from_rec(struct peer *p, const struct st_rec *r)
{
	struct pk	*k = pmap_get(p->pk, r->path);

	if (r->deleted) {
		pk_forget(p, r->path, r->type == MF_DIR);
		return;
	}
	if (k == NULL) {
		k = xcalloc(1, sizeof(*k));
		pmap_put(p->pk, r->path, k);
	}
	k->type = r->type;
	k->mode = r->mode;
	k->uid = r->uid;
	k->gid = r->gid;
	k->size = r->size;
	k->mtime_ns = r->mtime_ns;
	memcpy(k->hash, r->hash, MF_HASH_LEN);
	k->ino = r->ino;
	k->ts_ms = now_mono_ms();
}

void
pk_forget(struct peer *p, const char *path, int subtree)
{
	struct pmap_iter	 it = { 0, NULL };
	const char		*key;
	char			**v = NULL;
	size_t			 n = 0, len = strlen(path);

	free(pmap_del(p->pk, path));
	if (!subtree)
		return;
	while (pmap_next(p->pk, &it, &key, NULL)) {
		if (strncmp(key, path, len) == 0 && key[len] == '/') {
			v = xreallocarray(v, n + 1, sizeof(*v));
			v[n++] = xstrdup(key);
		}
	}
	for (size_t i = 0; i < n; i++) {
		free(pmap_del(p->pk, v[i]));
		free(v[i]);
	}
	free(v);
}

/* PATH may or may not be on the peer now, with unknown content. */
static void
pk_unsure(struct peer *p, const char *path, uint8_t type)
{
	struct pk	*k = pmap_get(p->pk, path);

	if (k == NULL) {
		k = xcalloc(1, sizeof(*k));
		pmap_put(p->pk, path, k);
	}
	k->type = type;
	k->mode = k->uid = k->gid = UINT32_MAX;
	k->size = UINT64_MAX;
	k->mtime_ns = -1;
	memset(k->hash, 0, sizeof(k->hash));
	k->ino = 0;
	k->ts_ms = now_mono_ms();
}

/*
 * A move is going out.  Until it is acked, and if the peer does not take
 * the hint, what the peer holds at FROM and TO (and beneath them) is
 * unknown: a change of either queued behind the move must be neither
 * judged unchanged nor, once deleted here, skipped as never shipped.
 */
static void
pk_unsure_move(struct peer *p, const struct item *it)
{
	struct pmap_iter	 pi = { 0, NULL };
	const char		*key;
	void			*val;
	char			**v = NULL, *to;
	uint8_t			*types = NULL;
	size_t			 n = 0, flen = strlen(it->from), tlen = strlen(it->path);

	pk_unsure(p, it->from, it->is_dir ? MF_DIR : MF_FILE);
	pk_unsure(p, it->path, it->is_dir ? MF_DIR : MF_FILE);
	if (!it->is_dir)
		return;
	while (pmap_next(p->pk, &pi, &key, &val)) {
		if ((strncmp(key, it->from, flen) == 0 && key[flen] == '/') ||
		    (strncmp(key, it->path, tlen) == 0 && key[tlen] == '/')) {
			v = xreallocarray(v, n + 1, sizeof(*v));
			types = xreallocarray(types, n + 1, 1);
			v[n] = xstrdup(key);
			types[n++] = ((struct pk *)val)->type;
		}
	}
	for (size_t i = 0; i < n; i++) {
		pk_unsure(p, v[i], types[i]);
		if (strncmp(v[i], it->from, flen) == 0 && v[i][flen] == '/') {
			xasprintf(&to, "%s%s", it->path, v[i] + flen);
			pk_unsure(p, to, types[i]);
			free(to);
		}
		free(v[i]);
	}
	free(v);
	free(types);
}

/* Outboxes. */

void
item_free(struct item *it)
{
	if (it == NULL)
		return;
	free(it->path);
	free(it->from);
	vv_free(&it->vv);
	free(it);
}

static struct item *
item_new(enum item_kind kind, const char *path)
{
	struct item	*it = xcalloc(1, sizeof(*it));

	it->kind = kind;
	it->path = xstrdup(path);
	it->since_ms = now_mono_ms();
	return it;
}

static void
sync_kick(struct peer *p)
{
	struct link	*l = peer_up_link(p);

	if (l != NULL)
		link_pump_soon(l);
}

void
sync_enqueue(struct peer *p, const char *path, int ae)
{
	struct item	*it;
	struct st_rec	*r;

	if (p->sp->mode == MODE_RECEIVE)
		return;
	/* Never merged into an item queued before a move: that one ships
	 * before the move, and the replica would move what it brought. */
	if ((it = pmap_get(p->queued, path)) != NULL && it->moves == p->moves) {
		if (!ae)
			it->ae = 0;
		/* A directory's delete goes behind the deletes queued for what
		 * it held (sync_tombstone_tree queues them first): they keep it
		 * from overtaking those files while they are in flight.  The
		 * tail is still before any later move. */
		if ((r = state_get(p->sp->st, path)) != NULL && r->deleted &&
		    r->type == MF_DIR && it != TAILQ_LAST(&p->outbox, itemq)) {
			TAILQ_REMOVE(&p->outbox, it, entry);
			TAILQ_INSERT_TAIL(&p->outbox, it, entry);
			sync_kick(p);
		}
		return;
	}
	it = item_new(ITEM_PATH, path);
	it->ae = ae;
	it->moves = p->moves;
	TAILQ_INSERT_TAIL(&p->outbox, it, entry);
	pmap_put(p->queued, path, it);
	p->nqueued++;
	sync_kick(p);
}

void
sync_enqueue_all(struct spoolsync *sp, const char *path)
{
	for (size_t i = 0; i < sp->npeers; i++)
		sync_enqueue(&sp->peers[i], path, 0);
}

/* A rename hint: only useful on a link that is up (else the paths do). */
void
sync_enqueue_move(struct peer *p, const char *from, const char *to, int is_dir,
    const struct vv *vv)
{
	struct item	*it;

	if (p->sp->mode == MODE_RECEIVE || peer_up_link(p) == NULL)
		return;
	it = item_new(ITEM_MOVE, to);
	it->moves = p->moves++;
	it->from = xstrdup(from);
	it->is_dir = is_dir;
	if (vv != NULL)
		vv_copy(&it->vv, vv);
	TAILQ_INSERT_TAIL(&p->outbox, it, entry);
	p->nqueued++;
	sync_kick(p);
}

static void
sync_unqueue(struct peer *p, struct item *it)
{
	TAILQ_REMOVE(&p->outbox, it, entry);
	if (it->kind == ITEM_PATH)
		pmap_del_if(p->queued, it->path, it);
	p->nqueued--;
}

/* Back to the head of the outbox (after an error, or the link went down). */
static void
sync_requeue_head(struct peer *p, struct item *it)
{
	struct item	*q;

	if (it->kind == ITEM_PATH && (q = pmap_get(p->queued, it->path)) != NULL) {
		/* A newer change is queued already: it ships what is there. */
		q->force_whole |= it->force_whole;
		if (it->since_ms < q->since_ms)
			q->since_ms = it->since_ms;
		q->attempts = it->attempts;
		q->not_before_ms = it->not_before_ms;
		item_free(it);
		return;
	}
	TAILQ_INSERT_HEAD(&p->outbox, it, entry);
	if (it->kind == ITEM_PATH)
		pmap_put(p->queued, it->path, it);
	p->nqueued++;
}

/* The pump. */

static int
sync_unsent(const struct link *l)
{
	return l->nunsent > 0;
}

/*
 * A move, or a directory's delete, must not overtake a file in flight.
 * *RP is PATH's record (NULL for a move, or none).
 */
static int
sync_is_barrier(struct spoolsync *sp, const struct item *it,
    struct st_rec **rp)
{
	const struct st_rec	*r;

	*rp = NULL;
	if (it->kind == ITEM_MOVE)
		return 1;
	*rp = state_get(sp->st, it->path);
	r = *rp;
	return r != NULL && r->deleted && r->type == MF_DIR;
}

/*
 * A file in flight at or beneath PATH: it may land on the peer after a
 * rename sent now (its commit runs off the peer's loop), in the old place
 * made again or in the moved directory, where nothing would remove it.
 */
static int
sync_landing_beneath(const struct link *l, const char *path)
{
	const struct op	*op;
	size_t		 len = strlen(path);

	TAILQ_FOREACH(op, &l->ops, entry)
		if (op->type == WIRE_FILE_BEGIN &&
		    strncmp(op->it->path, path, len) == 0 &&
		    (op->it->path[len] == '/' || op->it->path[len] == '\0'))
			return 1;
	return 0;
}

/* The next item to start, and its record (see send_start). */
static struct item *
sync_next_item(struct link *l, uint64_t now, uint64_t *wake, struct st_rec **rp)
{
	struct peer	*p = l->peer;
	struct item	*it;
	int		 scanned = 0, skipped = 0, barrier;

	TAILQ_FOREACH(it, &p->outbox, entry) {
		if (scanned++ == SYNC_SCAN_MAX)
			return NULL;
		barrier = sync_is_barrier(l->sp, it, rp);
		if (barrier && (skipped || sync_unsent(l)))
			return NULL;
		if (it->kind == ITEM_MOVE && it->is_dir &&
		    (sync_landing_beneath(l, it->from) ||
		    sync_landing_beneath(l, it->path)))
			return NULL;
		if (it->not_before_ms > now) {
			if (*wake == 0 || it->not_before_ms < *wake)
				*wake = it->not_before_ms;
			if (barrier)
				return NULL;
			skipped++;
			continue;
		}
		if (pmap_get(l->busy, it->path) != NULL ||
		    (it->from != NULL && pmap_get(l->busy, it->from) != NULL)) {
			/* Nothing may overtake a barrier that waits: a change
			 * of FROM queued after "mv FROM TO" would land first
			 * and be moved along with it. */
			if (barrier)
				return NULL;
			skipped++;
			continue;
		}
		return it;
	}
	return NULL;
}

void
sync_pump(struct link *l, size_t *budget)
{
	struct peer	*p = l->peer;
	struct op	*op, *next;
	struct item	*it;
	struct st_rec	*r;
	uint64_t	 now = now_mono_ms(), wake = 0;
	struct timeval	 tv;
	size_t		 open, left, nops;

	/* Only the ops not wholly sent matter here: a window of small files
	 * is nearly all sent ones, waiting for their acks. */
	left = l->nunsent;
	for (op = TAILQ_FIRST(&l->ops); op != NULL && left > 0; op = next) {
		next = TAILQ_NEXT(op, entry);
		if (op->stage == OP_SENT)
			continue;
		left--;
		if (op->stage == OP_STREAM) {
			send_stream(l, op, budget);
			if (!link_alive(l))
				return;
			if (*budget == 0 || link_out_high(l))
				return;
		}
	}
	open = l->nunsent;
	/* A wide window for small files; the big ones stay few, since the
	 * receiver refuses more than SYNC_RX_MAX transfers open at once. */
	while (l->nops < SYNC_WINDOW && open < SYNC_OPEN_MAX &&
	    !link_out_high(l) && *budget > 0) {
		if ((it = sync_next_item(l, now, &wake, &r)) == NULL)
			break;
		sync_unqueue(p, it);
		if (it->kind == ITEM_MOVE)
			pk_unsure_move(p, it);
		nops = l->nops;
		send_start(l, it, r);
		if (!link_alive(l))
			return;
		if (l->nops > nops && TAILQ_LAST(&l->ops, opq)->stage != OP_SENT)
			open++;
		*budget = *budget > 4096 ? *budget - 4096 : 0;
	}
	if (wake != 0 && !evtimer_pending(l->ev_pump, NULL)) {
		tv.tv_sec = (time_t)((wake - now) / 1000);
		tv.tv_usec = (suseconds_t)((wake - now) % 1000 * 1000);
		evtimer_add(l->ev_pump, &tv);	/* a retry falls due */
	}
	if (TAILQ_EMPTY(&p->outbox) && l->nops == 0) {
		ae_outbox_drained(p);
		sp_repair_check(l->sp);
	}
}

/* A change settled: what the peer holds now, or a retry. */
static int
sync_backoff_ms(int attempts)
{
	int64_t	ms = SYNC_RETRY_MIN_MS;

	while (--attempts > 0 && ms < SYNC_RETRY_MAX_MS)
		ms *= 2;
	return (int)(ms > SYNC_RETRY_MAX_MS ? SYNC_RETRY_MAX_MS : ms);
}

static void
sync_retry_later(struct link *l, struct item *it, const char *why)
{
	struct peer	*p = l->peer;

	it->attempts++;
	p->errors++;
	p->error_pending = 1;
	if (it->attempts > SYNC_GIVE_UP && it->kind == ITEM_PATH &&
	    strstr(why, "space") == NULL) {
		log_warnx("peer %s: %s: giving up after %d attempts (%s); "
		    "anti-entropy will try again", p->name, it->path,
		    it->attempts - 1, why);
		item_free(it);
		return;
	}
	it->not_before_ms = now_mono_ms() + (uint64_t)sync_backoff_ms(it->attempts);
	sync_requeue_head(p, it);
}

static int
sync_any_failing(const struct peer *p)
{
	const struct item	*it;

	TAILQ_FOREACH(it, &p->outbox, entry)
		if (it->attempts > 0)
			return 1;
	return 0;
}

/*
 * A tombstone every peer has is forgotten in send mode (receivers follow
 * this root, they never bring it back).  In bidirectional mode it stays until
 * its TTL: a peer that recreates the path must see it to supersede it.
 */
static void
sync_tomb_acked(struct spoolsync *sp, struct peer *p, struct st_rec *r)
{
	char	*acked, *mark;
	size_t	 i;

	xasprintf(&mark, ",%s,", p->name);
	if (r->acked == NULL || strstr(r->acked, mark) == NULL) {
		xasprintf(&acked, "%s%s,", r->acked != NULL ? r->acked : ",",
		    p->name);
		free(r->acked);
		r->acked = acked;
	}
	free(mark);
	for (i = 0; i < sp->npeers; i++) {
		xasprintf(&mark, ",%s,", sp->peers[i].name);
		acked = strstr(r->acked, mark);
		free(mark);
		if (acked == NULL)
			break;
	}
	if (i == sp->npeers && sp->mode == MODE_SEND)
		state_del(sp->st, r->path);
	else
		sync_save(sp, r);
}

/* The peer holds the version OP shipped. */
static void
sync_op_ok(struct link *l, struct op *op, struct item *it)
{
	struct spoolsync	*sp = l->sp;
	struct peer		*p = l->peer;
	struct st_rec		*r;
	struct pk		*k;

	switch (op->type) {
	case WIRE_FILE_BEGIN:
		k = pmap_get(p->pk, it->path);
		if (k == NULL) {
			k = xcalloc(1, sizeof(*k));
			pmap_put(p->pk, it->path, k);
		}
		k->type = op->ftype;
		k->mode = op->attr.mode;
		k->uid = op->attr.uid;
		k->gid = op->attr.gid;
		k->size = op->size;
		k->mtime_ns = op->attr.mtime_ns;
		memcpy(k->hash, op->sha, MF_HASH_LEN);
		k->ino = op->ino;
		k->ts_ms = now_mono_ms();
		p->files_sent++;
		p->bytes_literal += op->lit;
		p->bytes_matched += op->matched;
		break;
	case WIRE_MKDIR:
		if ((r = state_get(sp->st, it->path)) == NULL || r->deleted)
			break;
		/* What went out, not what the record says now: a chmod seen
		 * since then is still owed to the peer. */
		pk_set_from_rec(p, r);
		k = pmap_get(p->pk, it->path);
		k->type = MF_DIR;
		k->mode = op->attr.mode;
		k->uid = op->attr.uid;
		k->gid = op->attr.gid;
		break;
	case WIRE_DELETE:
		pk_forget(p, it->path, 1);
		if ((r = state_get(sp->st, it->path)) != NULL && r->deleted)
			sync_tomb_acked(sp, p, r);
		break;
	case WIRE_RENAME:
		pk_forget(p, it->from, 1);
		break;
	}
	if (it->attempts > 0 && !sync_any_failing(p)) {
		p->error_pending = 0;
		p->last_error[0] = '\0';
	}
}

void
sync_op_done(struct link *l, struct op *op, int status, const char *text)
{
	struct peer	*p = l->peer;
	struct item	*it = op->it;
	char		 why[600];

	op->it = NULL;
	TAILQ_REMOVE(&l->ops, op, entry);
	link_lag_del(l, op->since_ms);
	l->nops--;
	if (op->stage != OP_SENT)
		l->nunsent--;
	pmap_del_if(l->busy, it->path, op);
	if (status != WIRE_ST_OK)	/* (most acks: no words needed) */
		snprintf(why, sizeof(why), "%s: %s%s%s", it->path,
		    wire_status_name(status), text && *text ? ": " : "",
		    text ? text : "");
	switch (status) {
	case WIRE_ST_OK:
		sync_op_ok(l, op, it);
		item_free(it);
		break;
	case WIRE_ST_STALE:
		pk_forget(p, it->path, 0);
		it->force_whole = 1;
		it->attempts++;
		if (it->attempts > SYNC_GIVE_UP)
			it->not_before_ms = now_mono_ms() +
			    (uint64_t)sync_backoff_ms(it->attempts - SYNC_GIVE_UP);
		sync_requeue_head(p, it);
		break;
	case WIRE_ST_CONFLICT:
		pk_forget(p, it->path, 0);
		item_free(it);
		break;
	case WIRE_ST_IO:
	case WIRE_ST_NOSPACE:
	case WIRE_ST_PATH:
		if (op->type == WIRE_RENAME) {	/* a hint: the paths follow */
			log_debug("peer %s: rename hint %s", p->name, why);
			item_free(it);
			break;
		}
		snprintf(p->last_error, sizeof(p->last_error), "%s", why);
		p->last_error_ms = now_mono_ms();
		log_warnx("peer %s: %s", p->name, why);
		sync_retry_later(l, it, why);
		break;
	default:
		snprintf(p->last_error, sizeof(p->last_error), "%s", why);
		p->last_error_ms = now_mono_ms();
		log_warnx("peer %s: %s", p->name, why);
		item_free(it);
		break;
	}
	op_free(op);
	link_pump_soon(l);
}

void
sync_on_ack(struct link *l, const struct wire_ack *a)
{
	struct op	*op;

	if (a->ref_kind == WIRE_REF_XFER)
		op = send_find_xfer(l, a->ref);
	else {
		TAILQ_FOREACH(op, &l->ops, entry)
			if (op->type != WIRE_FILE_BEGIN && op->stage == OP_SENT &&
			    op->seq == a->ref)
				break;
	}
	if (op == NULL) {
		link_close(l, "ACK for %s %llu, which is not in flight",
		    a->ref_kind == WIRE_REF_XFER ? "transfer" : "frame",
		    (unsigned long long)a->ref);
		return;
	}
	send_on_ack(l, op, a);
}

void
sync_link_up(struct link *l)
{
	struct peer	*p = l->peer;

	/* What it held may have changed while we were apart: the AE says. */
	pmap_free(p->pk, free);
	p->pk = pmap_new();
	link_pump_soon(l);
}

void
sync_link_down(struct link *l)
{
	struct peer	*p = l->peer;
	struct op	*op;
	struct item	*it;

	/* In reverse, each to the head: the outbox keeps their order. */
	while ((op = TAILQ_LAST(&l->ops, opq)) != NULL) {
		TAILQ_REMOVE(&l->ops, op, entry);
		link_lag_del(l, op->since_ms);
		l->nops--;
		if (op->stage != OP_SENT)
			l->nunsent--;
		pmap_del_if(l->busy, op->it->path, op);
		it = op->it;
		op->it = NULL;
		if (it->kind == ITEM_MOVE)
			item_free(it);	/* a stale hint after a reconnect */
		else
			sync_requeue_head(p, it);
		op_free(op);
	}
}
