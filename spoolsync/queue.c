/*
 * queue.c: changes coalesced per path for a few milliseconds before they
 * are shipped, with moves kept as ordered operations.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "spoolsync.h"

/*
 * The rules.
 *
 * Coalescing.  Events on one path become one entry; its kind follows
 * what happened (a delete after anything is a delete; anything after a
 * delete is a creation: CHANGE or MKDIR, flagged RECREATED; ATTRIB adds
 * nothing to CHANGE or MKDIR).  An entry is due DELAY after its last event,
 * but never later than MAX_DELAY after its first, so a file written without
 * pause still ships.  Due entries pop earliest due first, then oldest first.
 * CHANGE, ATTRIB and MKDIR mean "ship what is there when popped".
 *
 * Moves.  A move is an operation on the replica (rename FROM to TO), so it
 * must see the replica's paths as they were when it happened:
 * 1. A move is a barrier.  Every entry queued before it pops before it, and
 *    every entry queued after it pops after it.  Events are coalesced only
 *    into entries queued since the last move, never across one: a delete of
 *    d after "mv x d/x" must not overtake the move.
 * 2. Pending CHANGE/ATTRIB/MKDIR entries at or beneath FROM are carried
 *    across the move to the same place beneath TO, because what they
 *    describe is there now; popped before the move they would find FROM
 *    gone, and the replica would rename a stale file.  Being "ship what is
 *    there" entries, carrying one that turns out to be redundant costs a
 *    transfer, never a wrong result.
 * 3. Pending DELETEs are never carried: they describe an object that was at
 *    that path and is gone; they pop before the move, where they belong.
 *    Pending entries for TO also stay before the move: a directory must be
 *    emptied before another is renamed over it.
 * The receiver must treat a move whose source it lacks as a no-op (the
 * file was created and renamed within one window): the carried CHANGE
 * that follows brings the content.
 *
 * Cost: a hash on the path (O(1)) and a binary heap keyed by (epoch, move
 * last, due, seq) (O(log n)) per event; a move scans the pending entries
 * once (O(n)), which is cheap since they live for milliseconds.
 */

struct qent {
	struct queue_entry	 pub;
	uint64_t		 seq;		/* creation order */
	uint64_t		 epoch;		/* moves queued before it */
	uint64_t		 due_ns;
	int			 is_move;
	int			 in_hash;	/* the path's current entry */
	size_t			 hidx;		/* its place in the heap */
	struct qent		*prev, *next;	/* creation order: oldest first */
	struct qent		*hnext;		/* hash chain */
};

struct queue {
	uint64_t	  delay_ns, max_delay_ns;
	uint64_t	(*clock)(void *);
	void		 *clock_arg;

	struct qent	**heap;
	size_t		  n, cap;
	struct qent	 *head, *tail;
	struct qent	**buckets;
	size_t		  nbuckets, nhash;
	uint64_t	  seq, epoch;

	struct event	 *timer;
	void		(*cb)(struct queue *, void *);
	void		 *cb_arg;
	int		  armed, stalled, in_cb;
	uint64_t	  armed_ns;
};

static uint64_t
queue_mono_ns(void *arg)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t
queue_now(const struct queue *q)
{
	return q->clock(q->clock_arg);
}

const char *
queue_kind_name(enum queue_kind k)
{
	switch (k) {
	case QUEUE_CHANGE:	return "change";
	case QUEUE_ATTRIB:	return "attrib";
	case QUEUE_MKDIR:	return "mkdir";
	case QUEUE_DELETE:	return "delete";
	case QUEUE_MOVE:	return "move";
	}
	return "?";
}

static struct qent *
qent_of(struct queue_entry *e)
{
	return (struct qent *)((char *)e - offsetof(struct qent, pub));
}

static void
qent_due(const struct queue *q, struct qent *e)
{
	uint64_t	quiet = e->pub.last_ns + q->delay_ns;
	uint64_t	cap = e->pub.first_ns + q->max_delay_ns;

	e->due_ns = e->is_move ? e->pub.first_ns : (quiet < cap ? quiet : cap);
}

static struct qent *
hash_get(const struct queue *q, const char *path)
{
	struct qent	*e;

	for (e = q->buckets[pmap_hash_str(path) & (q->nbuckets - 1)]; e != NULL;
	    e = e->hnext)
		if (strcmp(e->pub.path, path) == 0)
			return e;
	return NULL;
}

static void
hash_link(struct queue *q, struct qent *e)
{
	size_t	i = pmap_hash_str(e->pub.path) & (q->nbuckets - 1);

	e->hnext = q->buckets[i];
	q->buckets[i] = e;
}

static void
hash_grow(struct queue *q)
{
	struct qent	**old = q->buckets, *e, *next;
	size_t		  oldn = q->nbuckets;

	q->nbuckets *= 2;
	q->buckets = xcalloc(q->nbuckets, sizeof(*q->buckets));
	for (size_t i = 0; i < oldn; i++) {
		for (e = old[i]; e != NULL; e = next) {
			next = e->hnext;
			hash_link(q, e);
		}
	}
	free(old);
}

static void
hash_put(struct queue *q, struct qent *e)
{
	if (q->nhash >= q->nbuckets)
		hash_grow(q);
	hash_link(q, e);
	e->in_hash = 1;
	q->nhash++;
}

static void
hash_del(struct queue *q, struct qent *e)
{
	struct qent	**pp;

	if (!e->in_hash)
		return;
	pp = &q->buckets[pmap_hash_str(e->pub.path) & (q->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->in_hash = 0;
	q->nhash--;
}

/* The heap: what pops next. */

static int
qent_before(const struct qent *a, const struct qent *b)
{
	if (a->epoch != b->epoch)
		return a->epoch < b->epoch;
	if (a->is_move != b->is_move)
		return b->is_move;	/* a move closes its epoch */
	if (a->due_ns != b->due_ns)
		return a->due_ns < b->due_ns;
	return a->seq < b->seq;
}

static void
heap_set(struct queue *q, size_t i, struct qent *e)
{
	q->heap[i] = e;
	e->hidx = i;
}

static void
heap_up(struct queue *q, size_t i)
{
	struct qent	*e = q->heap[i];
	size_t		 p;

	while (i > 0 && qent_before(e, q->heap[p = (i - 1) / 2])) {
		heap_set(q, i, q->heap[p]);
		i = p;
	}
	heap_set(q, i, e);
}

static void
heap_down(struct queue *q, size_t i)
{
	struct qent	*e = q->heap[i];
	size_t		 c;

	while ((c = 2 * i + 1) < q->n) {
		if (c + 1 < q->n && qent_before(q->heap[c + 1], q->heap[c]))
			c++;
		if (!qent_before(q->heap[c], e))
			break;
		heap_set(q, i, q->heap[c]);
		i = c;
	}
	heap_set(q, i, e);
}

static void
heap_fix(struct queue *q, struct qent *e)
{
	heap_up(q, e->hidx);
	heap_down(q, e->hidx);
}

static void
heap_push(struct queue *q, struct qent *e)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		q->heap = xreallocarray(q->heap, q->cap, sizeof(*q->heap));
	}
	heap_set(q, q->n++, e);
	heap_up(q, e->hidx);
}

static void
heap_del(struct queue *q, struct qent *e)
{
	size_t		 i = e->hidx;
	struct qent	*last = q->heap[--q->n];

	if (last == e)
		return;
	heap_set(q, i, last);
	heap_fix(q, last);
}

/* Entries. */

static void
list_append(struct queue *q, struct qent *e)
{
	e->next = NULL;
	e->prev = q->tail;
	if (q->tail != NULL)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
}

static void
list_unlink(struct queue *q, struct qent *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		q->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		q->tail = e->prev;
}

static struct qent *
qent_new(struct queue *q, enum queue_kind kind, const char *path, int is_dir,
    uint64_t now)
{
	struct qent	*e = xcalloc(1, sizeof(*e));

	e->pub.kind = kind;
	e->pub.is_dir = is_dir;
	e->pub.path = xstrdup(path);
	e->pub.first_ns = e->pub.last_ns = now;
	e->pub.events = 1;
	e->seq = ++q->seq;
	e->epoch = q->epoch;
	e->is_move = kind == QUEUE_MOVE;
	qent_due(q, e);
	heap_push(q, e);
	list_append(q, e);
	return e;
}

/* Removes E from the queue (not from memory). */
static void
qent_take(struct queue *q, struct qent *e)
{
	hash_del(q, e);
	heap_del(q, e);
	list_unlink(q, e);
}

void
queue_entry_free(struct queue_entry *pub)
{
	if (pub == NULL)
		return;
	free(pub->path);
	free(pub->from);
	free(qent_of(pub));
}

/* What an entry of kind OLD becomes after an event of kind NEW. */
static enum queue_kind
kind_merge(enum queue_kind old, enum queue_kind new, unsigned *flags)
{
	if (new == QUEUE_DELETE) {
		*flags &= ~QUEUE_F_RECREATED;
		return QUEUE_DELETE;
	}
	if (old == QUEUE_DELETE) {
		*flags |= QUEUE_F_RECREATED;
		return new == QUEUE_ATTRIB ? QUEUE_CHANGE : new;
	}
	return new == QUEUE_ATTRIB ? old : new;
}

/* E absorbs LATER, which follows it in time. */
static void
qent_absorb(struct queue *q, struct qent *e, struct qent *later)
{
	e->pub.kind = kind_merge(e->pub.kind, later->pub.kind, &e->pub.flags);
	e->pub.flags |= later->pub.flags & QUEUE_F_RECREATED;
	e->pub.is_dir = later->pub.is_dir;
	if (later->pub.last_ns > e->pub.last_ns)
		e->pub.last_ns = later->pub.last_ns;
	e->pub.events += later->pub.events;
	qent_due(q, e);
	heap_fix(q, e);
}

/* The libevent timer. */

static void
queue_arm(struct queue *q)
{
	struct timeval	tv;
	uint64_t	due, now, us;

	if (q->timer == NULL || q->in_cb || q->stalled)
		return;
	if (q->n == 0) {
		evtimer_del(q->timer);
		q->armed = 0;
		return;
	}
	due = queue_next_due_ns(q);
	if (q->armed && q->armed_ns == due)
		return;
	now = queue_now(q);
	us = due > now ? (due - now + 999) / 1000 : 0;	/* never early */
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	evtimer_add(q->timer, &tv);
	q->armed = 1;
	q->armed_ns = due;
}

static void
queue_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue	*q = arg;

	q->armed = 0;
	q->in_cb = 1;
	q->cb(q, q->cb_arg);
	q->in_cb = 0;
	/* Left due entries: the consumer is busy and will kick us. */
	if (q->n > 0 && queue_next_due_ns(q) <= queue_now(q))
		q->stalled = 1;
	queue_arm(q);
}

int
queue_attach(struct queue *q, struct event_base *base,
    void (*cb)(struct queue *, void *), void *arg, char *err, size_t errlen)
{
	if (q->timer != NULL)
		event_free(q->timer);
	if ((q->timer = evtimer_new(base, queue_timer_cb, q)) == NULL) {
		snprintf(err, errlen, "cannot make the queue's timer");
		return -1;
	}
	q->cb = cb;
	q->cb_arg = arg;
	q->armed = q->stalled = 0;
	queue_arm(q);
	return 0;
}

void
queue_kick(struct queue *q)
{
	q->stalled = 0;
	q->armed = 0;
	queue_arm(q);
}

/* The API. */

struct queue *
queue_new(const struct queue_opts *opts, char *err, size_t errlen)
{
	struct queue	*q;
	uint64_t	 limit = QUEUE_DELAY_LIMIT_MS * 1000000ULL;

	q = xcalloc(1, sizeof(*q));
	q->delay_ns = QUEUE_DELAY_MS_DEFAULT * 1000000ULL;
	q->max_delay_ns = QUEUE_MAX_DELAY_MS_DEFAULT * 1000000ULL;
	q->clock = queue_mono_ns;
	if (opts != NULL) {
		q->delay_ns = opts->delay_ns;
		q->max_delay_ns = opts->max_delay_ns;
		if (opts->clock != NULL) {
			q->clock = opts->clock;
			q->clock_arg = opts->clock_arg;
		}
	}
	if (q->delay_ns > limit || q->max_delay_ns > limit) {
		snprintf(err, errlen, "coalescing delays are milliseconds, "
		    "at most %d ms", QUEUE_DELAY_LIMIT_MS);
		free(q);
		return NULL;
	}
	if (q->max_delay_ns < q->delay_ns) {
		snprintf(err, errlen, "the maximum delay (%llu ms) is shorter "
		    "than the delay (%llu ms)",
		    (unsigned long long)(q->max_delay_ns / 1000000),
		    (unsigned long long)(q->delay_ns / 1000000));
		free(q);
		return NULL;
	}
	q->nbuckets = 64;
	q->buckets = xcalloc(q->nbuckets, sizeof(*q->buckets));
	return q;
}

void
queue_free(struct queue *q)
{
	struct qent	*e, *next;

	if (q == NULL)
		return;
	for (e = q->head; e != NULL; e = next) {
		next = e->next;
		queue_entry_free(&e->pub);
	}
	if (q->timer != NULL)
		event_free(q->timer);
	free(q->heap);
	free(q->buckets);
	free(q);
}

void
queue_add(struct queue *q, enum queue_kind kind, const char *path, int is_dir)
{
	uint64_t	 now = queue_now(q);
	struct qent	*e;

	if (kind == QUEUE_MOVE)
		return;		/* queue_add_move */
	e = hash_get(q, path);
	if (e != NULL && e->epoch == q->epoch) {
		e->pub.kind = kind_merge(e->pub.kind, kind, &e->pub.flags);
		e->pub.is_dir = is_dir;
		e->pub.last_ns = now;
		e->pub.events++;
		qent_due(q, e);
		heap_fix(q, e);
	} else {
		/* None, or one from before a move: that one stays where it is. */
		if (e != NULL)
			hash_del(q, e);
		hash_put(q, qent_new(q, kind, path, is_dir, now));
	}
	queue_arm(q);
}

static int
qent_seq_cmp(const void *a, const void *b)
{
	const struct qent	*x = *(struct qent *const *)a;
	const struct qent	*y = *(struct qent *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Rule 2: what is pending at or beneath FROM now lives beneath TO. */
static void
queue_carry(struct queue *q, const char *from, const char *to, int is_dir)
{
	struct qent	**v = NULL, *e, *y;
	size_t		  n = 0, flen = strlen(from);
	char		 *path;

	for (size_t i = 0; i < q->n; i++) {
		e = q->heap[i];
		if (e->is_move || e->pub.kind == QUEUE_DELETE)
			continue;
		if (strcmp(e->pub.path, from) != 0 && !(is_dir &&
		    strncmp(e->pub.path, from, flen) == 0 &&
		    e->pub.path[flen] == '/'))
			continue;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n++] = e;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), qent_seq_cmp);
	for (size_t i = 0; i < n; i++) {
		e = v[i];
		xasprintf(&path, "%s%s", to, e->pub.path + flen);
		hash_del(q, e);
		free(e->pub.path);
		e->pub.path = path;
		e->epoch = q->epoch;
		if ((y = hash_get(q, path)) != NULL && y->epoch == q->epoch) {
			qent_take(q, e);	/* carried twice: one entry */
			qent_absorb(q, y, e);
			queue_entry_free(&e->pub);
			continue;
		}
		if (y != NULL)
			hash_del(q, y);		/* rule 3: y stays before */
		hash_put(q, e);
		heap_fix(q, e);
	}
	free(v);
}

void
queue_add_move(struct queue *q, const char *from, const char *to, int is_dir)
{
	struct qent	*m;

	if (strcmp(from, to) == 0)
		return;
	m = qent_new(q, QUEUE_MOVE, to, is_dir, queue_now(q));
	m->pub.from = xstrdup(from);
	q->epoch++;			/* rule 1 */
	queue_carry(q, from, to, is_dir);
	queue_arm(q);
}

int
queue_add_event(struct queue *q, const struct watch_event *ev)
{
	switch (ev->type) {
	case WATCH_CHANGED:
		queue_add(q, QUEUE_CHANGE, ev->relpath, ev->is_dir);
		return 0;
	case WATCH_ATTRIB:
		queue_add(q, QUEUE_ATTRIB, ev->relpath, ev->is_dir);
		return 0;
	case WATCH_DELETED:
		queue_add(q, QUEUE_DELETE, ev->relpath, ev->is_dir);
		return 0;
	case WATCH_MKDIR:
		queue_add(q, QUEUE_MKDIR, ev->relpath, 1);
		return 0;
	case WATCH_MOVED:
		queue_add_move(q, ev->from, ev->relpath, ev->is_dir);
		return 0;
	case WATCH_OVERFLOW:
	case WATCH_ERROR:
		break;
	}
	return 1;
}

struct queue_entry *
queue_pop(struct queue *q)
{
	struct qent	*e;

	if (q->n == 0)
		return NULL;
	e = q->heap[0];
	if (!e->is_move && e->due_ns > queue_now(q))
		return NULL;
	qent_take(q, e);
	if (!q->in_cb)
		queue_arm(q);
	return &e->pub;
}

size_t
queue_pending(const struct queue *q)
{
	return q->n;
}

uint64_t
queue_next_due_ns(const struct queue *q)
{
	return q->n == 0 ? UINT64_MAX : q->heap[0]->due_ns;
}

uint64_t
queue_oldest_age_ns(const struct queue *q)
{
	uint64_t	now;

	/* Creation order is first-event order: the head is the oldest. */
	if (q->head == NULL)
		return 0;
	now = queue_now(q);
	return now > q->head->pub.first_ns ? now - q->head->pub.first_ns : 0;
}
