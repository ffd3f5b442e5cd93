/*
 * state.c: what spoolsync knows about every path it has seen: the version
 * vector, the content it agreed on, the local stat that proves the file is
 * unchanged, and tombstones.  In memory for speed, written through to
 * SQLite in state_dir so that a restart knows what changed while it was down.
 *
 * Durability: WAL with synchronous=NORMAL.  A commit is not fsynced (the
 * WAL is, at each checkpoint), so a power cut may roll back the last
 * records, never corrupt the database.  That is safe because the state is
 * a cache of facts that the tree itself proves: at start the tree is
 * compared with the records, so a lost "local change" record is found
 * again (and its vector bumped), and a lost "applied from a peer" record
 * makes an already identical file look changed, which costs one redundant
 * transfer whose content the peer already has.  FULL would add an fsync to
 * every change on the hot path and buy nothing the rescan does not.  For
 * the same reason a rescan's new file, saved again once it is hashed to be
 * sent, is written only then (state_save_later): a crash before it loses a
 * record the next start's rescan finds again.
 *
 * Version vectors use one persistent counter per node (a Lamport-style
 * clock) rather than per-path counters, so a path recreated after its
 * tombstone was forgotten still gets a counter greater than any this node
 * used before.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "spoolsync.h"

#define STATE_SCHEMA_VERSION	"1"
#define STATE_LATER_MS		10000	/* state_save_later's longest wait */

struct state {
	sqlite3		*db;
	sqlite3_stmt	*put, *del, *setmeta;
	struct pmap	*recs;
	uint64_t	 counter;
	int		 lockfd;
	int		 depth;		/* state_begin calls not yet committed */
	int		 tx;		/* BEGIN sent for them (at the first write) */
	int		 counter_dirty;	/* written at the transaction's commit */
	TAILQ_HEAD(, st_rec) later;	/* state_save_later's, oldest first */
	char		 err[256];
};

/*
 * Version vectors.  Every record's vector names the same few nodes: their
 * names are kept once, in a table that only grows (so that a name is read
 * without a lock, from any thread), and vectors point at them.  A peer
 * inventing names past the table's bound gets private copies instead.
 */
#define VV_NAMES_MAX	256
#define VV_NAME_LEN	(WIRE_NAME_MAX + 1)

static char		vv_names[VV_NAMES_MAX][VV_NAME_LEN];
static atomic_size_t	vv_nnames;
static pthread_mutex_t	vv_names_lock = PTHREAD_MUTEX_INITIALIZER;

static int
vv_name_shared(const char *p)
{
	uintptr_t	a = (uintptr_t)p, lo = (uintptr_t)&vv_names[0][0];

	return a >= lo && a < lo + sizeof(vv_names);
}

static const char *
vv_name_find(const char *node, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(vv_names[i], node) == 0)
			return vv_names[i];
	return NULL;
}

/* NODE's shared name, or a private copy when the table is full. */
static char *
vv_name(const char *node)
{
	const char	*p;
	size_t		 n, len;

	if (vv_name_shared(node))
		return (char *)node;
	n = atomic_load_explicit(&vv_nnames, memory_order_acquire);
	if ((p = vv_name_find(node, n)) != NULL)
		return (char *)p;
	if ((len = strlen(node)) >= VV_NAME_LEN)
		return xstrdup(node);
	pthread_mutex_lock(&vv_names_lock);
	n = atomic_load_explicit(&vv_nnames, memory_order_relaxed);
	if ((p = vv_name_find(node, n)) == NULL && n < VV_NAMES_MAX) {
		memcpy(vv_names[n], node, len + 1);
		atomic_store_explicit(&vv_nnames, n + 1, memory_order_release);
		p = vv_names[n];
	}
	pthread_mutex_unlock(&vv_names_lock);
	return p != NULL ? (char *)p : xstrdup(node);
}

static void
vv_name_free(char *p)
{
	if (!vv_name_shared(p))
		free(p);
}

void
vv_free(struct vv *v)
{
	for (size_t i = 0; i < v->n; i++)
		vv_name_free(v->e[i].node);
	free(v->e);
	v->e = NULL;
	v->n = 0;
}

void
vv_copy(struct vv *dst, const struct vv *src)
{
	struct vv	t = { NULL, 0 };

	if (src->n > 0) {
		t.e = xreallocarray(NULL, src->n, sizeof(*t.e));
		for (size_t i = 0; i < src->n; i++) {
			t.e[i].node = vv_name(src->e[i].node);
			t.e[i].counter = src->e[i].counter;
		}
		t.n = src->n;
	}
	vv_free(dst);
	*dst = t;
}

uint64_t
vv_get(const struct vv *v, const char *node)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->e[i].node == node || strcmp(v->e[i].node, node) == 0)
			return v->e[i].counter;
	return 0;
}

/* Entries stay sorted by node, so equal vectors format equally. */
void
vv_set(struct vv *v, const char *node, uint64_t counter)
{
	size_t	i;
	int	c = 1;

	for (i = 0; i < v->n; i++)
		if ((c = strcmp(v->e[i].node, node)) >= 0)
			break;
	if (i < v->n && c == 0) {
		v->e[i].counter = counter;
		return;
	}
	v->e = xreallocarray(v->e, v->n + 1, sizeof(*v->e));
	memmove(v->e + i + 1, v->e + i, (v->n - i) * sizeof(*v->e));
	v->e[i].node = vv_name(node);
	v->e[i].counter = counter;
	v->n++;
}

void
vv_merge(struct vv *into, const struct vv *other)
{
	for (size_t i = 0; i < other->n; i++)
		if (other->e[i].counter > vv_get(into, other->e[i].node))
			vv_set(into, other->e[i].node, other->e[i].counter);
}

/* 1 when some counter of A exceeds B's. */
static int
vv_exceeds(const struct vv *a, const struct vv *b)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->e[i].counter > vv_get(b, a->e[i].node))
			return 1;
	return 0;
}

enum vv_order
vv_compare(const struct vv *a, const struct vv *b)
{
	int	ag = vv_exceeds(a, b), bg = vv_exceeds(b, a);

	if (ag && bg)
		return VV_CONCURRENT;
	if (ag)
		return VV_AFTER;
	return bg ? VV_BEFORE : VV_EQUAL;
}

const char *
vv_author(const struct vv *a, const struct vv *b)
{
	const char	*best = "";

	for (size_t i = 0; i < a->n; i++)
		if (a->e[i].counter > vv_get(b, a->e[i].node) &&
		    strcmp(a->e[i].node, best) > 0)
			best = a->e[i].node;
	return best;
}

char *
vv_format(const struct vv *v)
{
	struct buf	b;

	buf_init(&b);
	buf_adds(&b, "");
	for (size_t i = 0; i < v->n; i++)
		buf_printf(&b, "%s%s:%" PRIu64, i ? "," : "", v->e[i].node,
		    v->e[i].counter);
	return buf_release(&b);
}

int
vv_parse(struct vv *v, const char *s)
{
	struct vv	 t = { NULL, 0 };
	char		*copy = xstrdup(s), *p = copy, *item, *colon, *end;
	unsigned long long c;

	while (*p != '\0') {
		item = strsep(&p, ",");
		if ((colon = strrchr(item, ':')) == NULL)
			goto fail;
		*colon = '\0';
		errno = 0;
		c = strtoull(colon + 1, &end, 10);
		if (errno != 0 || *end != '\0' || end == colon + 1 ||
		    !wire_name_valid(item) || vv_get(&t, item) != 0 ||
		    t.n >= WIRE_VV_MAX)
			goto fail;
		vv_set(&t, item, c);
		if (p == NULL)
			break;
	}
	free(copy);
	vv_free(v);
	*v = t;
	return 0;
fail:
	free(copy);
	vv_free(&t);
	return -1;
}

int
vv_from_wire(struct vv *v, const struct wire_vv *w)
{
	struct vv	t = { NULL, 0 };

	if (w->n > WIRE_VV_MAX)
		return -1;
	for (size_t i = 0; i < w->n; i++)
		if (w->e[i].counter > 0)
			vv_set(&t, w->e[i].node, w->e[i].counter);
	vv_free(v);
	*v = t;
	return 0;
}

void
vv_to_wire(const struct vv *v, struct wire_vv *w, struct wire_vv_ent *store)
{
	size_t	n = v->n < WIRE_VV_MAX ? v->n : WIRE_VV_MAX;

	for (size_t i = 0; i < n; i++) {
		store[i].node = v->e[i].node;
		store[i].counter = v->e[i].counter;
	}
	w->e = store;
	w->n = n;
}

/* Records. */

void
st_rec_clear(struct st_rec *r)
{
	free(r->path);
	free(r->acked);
	vv_free(&r->vv);
	memset(r, 0, sizeof(*r));
}

static void
st_rec_free(void *p)
{
	struct st_rec	*r = p;

	if (r == NULL)
		return;
	st_rec_clear(r);
	free(r);
}

static int
state_fail(struct state *st, const char *what)
{
	snprintf(st->err, sizeof(st->err), "state: %s: %s", what,
	    st->db != NULL ? sqlite3_errmsg(st->db) : "no database");
	return -1;
}

static int
state_exec(struct state *st, const char *sql)
{
	char	*msg = NULL;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(st->err, sizeof(st->err), "state: %s", msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static void	state_save_counter(struct state *);
static void	state_later_flush(struct state *, int all);

/*
 * Writes between state_begin and its state_commit go in one transaction: a
 * burst of records costs one WAL commit instead of one each.  The engine
 * brackets a callback's work, so a transaction never outlives the callback
 * that opened it (nothing it records has reached a peer before it commits).
 * BEGIN goes with the bracket's first write: most callbacks (an ack read, a
 * pump turn) write nothing and then cost no SQL at all.
 */
int
state_begin(struct state *st)
{
	st->depth++;
	return 0;
}

/* Called before every write: opens the bracket's transaction if due. */
static int
state_tx(struct state *st)
{
	if (st->depth == 0 || st->tx)
		return 0;
	st->tx = 1;
	return state_exec(st, "BEGIN");
}

int
state_commit(struct state *st)
{
	int	rv = 0;

	if (st->depth == 1 && !TAILQ_EMPTY(&st->later))
		state_later_flush(st, 0);	/* in the bracket's transaction */
	if (st->depth == 0 || --st->depth > 0)
		return 0;
	if (!st->tx) {
		/* Nothing written: only the counter, if it moved. */
		if (st->counter_dirty)
			state_save_counter(st);
		return 0;
	}
	st->tx = 0;
	/* Not in a transaction any more: a failed write rolled it back. */
	if (!sqlite3_get_autocommit(st->db)) {
		if (st->counter_dirty)
			state_save_counter(st);
		if (state_exec(st, "COMMIT") == 0)
			return 0;
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		rv = -1;
	}
	/* Whatever was lost, the counter never goes back. */
	state_save_counter(st);
	return rv;
}

int
state_set_meta(struct state *st, const char *k, const char *v)
{
	int	rc;

	(void)state_tx(st);	/* a failed BEGIN: the write runs alone */
	sqlite3_reset(st->setmeta);
	sqlite3_bind_text(st->setmeta, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_text(st->setmeta, 2, v, -1, SQLITE_STATIC);
	rc = sqlite3_step(st->setmeta);
	sqlite3_reset(st->setmeta);
	return rc == SQLITE_DONE ? 0 : state_fail(st, "writing meta");
}

/* The meta value K (caller frees), or NULL. */
char *
state_get_meta(struct state *st, const char *k)
{
	sqlite3_stmt	*s;
	char		*v = NULL;

	if (sqlite3_prepare_v2(st->db, "SELECT v FROM meta WHERE k = ?", -1, &s,
	    NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL)
		v = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return v;
}

static int
state_schema(struct state *st)
{
	if (state_exec(st, "PRAGMA journal_mode=WAL") == -1 ||
	    state_exec(st, "PRAGMA synchronous=NORMAL") == -1 ||
	    state_exec(st, "CREATE TABLE IF NOT EXISTS meta ("
	    "k TEXT PRIMARY KEY, v TEXT NOT NULL)") == -1 ||
	    state_exec(st, "CREATE TABLE IF NOT EXISTS files ("
	    "path TEXT PRIMARY KEY, type INTEGER NOT NULL, deleted INTEGER NOT NULL,"
	    " hash_ok INTEGER NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL,"
	    " gid INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
	    " hash BLOB, ino INTEGER NOT NULL, dev INTEGER NOT NULL,"
	    " ctime_ns INTEGER NOT NULL, deleted_ns INTEGER NOT NULL,"
	    " vv TEXT NOT NULL, acked TEXT) WITHOUT ROWID") == -1)
		return -1;
	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO files VALUES "
	    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &st->put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, "DELETE FROM files WHERE path = ?", -1,
	    &st->del, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO meta VALUES (?,?)",
	    -1, &st->setmeta, NULL) != SQLITE_OK)
		return state_fail(st, "preparing statements");
	return 0;
}

static struct st_rec *
state_row(sqlite3_stmt *s)
{
	struct st_rec	*r = xcalloc(1, sizeof(*r));
	const void	*h;
	const char	*vv;

	r->path = xstrdup((const char *)sqlite3_column_text(s, 0));
	r->type = (uint8_t)sqlite3_column_int(s, 1);
	r->deleted = sqlite3_column_int(s, 2) != 0;
	r->hash_ok = sqlite3_column_int(s, 3) != 0;
	r->mode = (uint32_t)sqlite3_column_int64(s, 4) & 07777;
	r->uid = (uint32_t)sqlite3_column_int64(s, 5);
	r->gid = (uint32_t)sqlite3_column_int64(s, 6);
	r->size = (uint64_t)sqlite3_column_int64(s, 7);
	r->mtime_ns = sqlite3_column_int64(s, 8);
	h = sqlite3_column_blob(s, 9);
	if (h != NULL && sqlite3_column_bytes(s, 9) == MF_HASH_LEN)
		memcpy(r->hash, h, MF_HASH_LEN);
	else
		r->hash_ok = 0;
	r->ino = (uint64_t)sqlite3_column_int64(s, 10);
	r->dev = (uint64_t)sqlite3_column_int64(s, 11);
	r->ctime_ns = sqlite3_column_int64(s, 12);
	r->deleted_ns = sqlite3_column_int64(s, 13);
	vv = (const char *)sqlite3_column_text(s, 14);
	if (vv == NULL || vv_parse(&r->vv, vv) == -1 || path_valid(r->path, NULL,
	    0) == -1 || (r->type != MF_FILE && r->type != MF_DIR &&
	    r->type != MF_LINK)) {
		st_rec_free(r);
		return NULL;	/* a damaged row: the rescan rebuilds it */
	}
	if (sqlite3_column_text(s, 15) != NULL)
		r->acked = xstrdup((const char *)sqlite3_column_text(s, 15));
	return r;
}

static int
state_load(struct state *st)
{
	sqlite3_stmt	*s;
	struct st_rec	*r;
	int		 rc;

	if (sqlite3_prepare_v2(st->db, "SELECT * FROM files", -1, &s, NULL) !=
	    SQLITE_OK)
		return state_fail(st, "reading records");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((r = state_row(s)) != NULL)
			st_rec_free(pmap_put(st->recs, r->path, r));
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : state_fail(st, "reading records");
}

/* mkdir -p with MODE for the components it makes. */
static int
state_mkdirs(const char *dir, mode_t mode)
{
	char	*p = xstrdup(dir), *s;
	int	 rv = 0;

	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) == -1 && errno != EEXIST) {
			rv = -1;
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return rv;
}

static int
state_lock(struct state *st, const char *dir, char *err, size_t errlen)
{
	char	*path;

	xasprintf(&path, "%s/lock", dir);
	st->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->lockfd == -1) {
		snprintf(err, errlen, "state_dir: %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if (flock(st->lockfd, LOCK_EX | LOCK_NB) == -1) {
		snprintf(err, errlen, "state_dir: %s is in use by another spoolsync "
		    "(%s)", dir, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	return 0;
}

static int
state_check_root(struct state *st, const char *root)
{
	char	*was = state_get_meta(st, "root"), *c;

	if (was != NULL && strcmp(was, root) != 0) {
		/* Another spool's records would only mislead. */
		if (state_exec(st, "DELETE FROM files") == -1) {
			free(was);
			return -1;
		}
	}
	free(was);
	if ((c = state_get_meta(st, "counter")) != NULL)
		st->counter = strtoull(c, NULL, 10);
	free(c);
	if (state_set_meta(st, "root", root) == -1 ||
	    state_set_meta(st, "schema", STATE_SCHEMA_VERSION) == -1)
		return -1;
	return 0;
}

struct state *
state_open(const char *dir, const char *root, char *err, size_t errlen)
{
	struct state	*st = xcalloc(1, sizeof(*st));
	char		*path;

	st->lockfd = -1;
	st->recs = pmap_new_keyed(offsetof(struct st_rec, path));
	TAILQ_INIT(&st->later);
	if (state_mkdirs(dir, 0700) == -1) {
		snprintf(err, errlen, "state_dir: cannot create %s: %s", dir,
		    strerror(errno));
		goto fail;
	}
	if (state_lock(st, dir, err, errlen) == -1)
		goto fail;
	xasprintf(&path, "%s/state.db", dir);
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "state: %s: %s", path, st->db ?
		    sqlite3_errmsg(st->db) : "cannot open");
		free(path);
		goto fail;
	}
	free(path);
	sqlite3_busy_timeout(st->db, 5000);
	if (state_schema(st) == -1 || state_check_root(st, root) == -1 ||
	    state_load(st) == -1) {
		snprintf(err, errlen, "%s", st->err);
		goto fail;
	}
	st->err[0] = '\0';
	return st;
fail:
	state_close(st);
	return NULL;
}

void
state_close(struct state *st)
{
	if (st == NULL)
		return;
	if (!TAILQ_EMPTY(&st->later)) {
		state_begin(st);
		state_later_flush(st, 1);
		state_commit(st);
	}
	sqlite3_finalize(st->put);
	sqlite3_finalize(st->del);
	sqlite3_finalize(st->setmeta);
	if (st->db != NULL)
		sqlite3_close(st->db);
	pmap_free(st->recs, st_rec_free);
	if (st->lockfd != -1)
		close(st->lockfd);
	free(st);
}

struct st_rec *
state_get(struct state *st, const char *path)
{
	return pmap_get(st->recs, path);
}

struct st_rec *
state_lookup_or_new(struct state *st, const char *path)
{
	struct st_rec	*r;

	if ((r = pmap_get(st->recs, path)) != NULL)
		return r;
	r = xcalloc(1, sizeof(*r));
	r->path = xstrdup(path);
	pmap_put(st->recs, path, r);
	return r;
}

/*
 * V as vv_format writes it, into OUT when it fits (a record is saved for
 * every file shipped or received: no allocation and no printf for that).
 * NULL when it does not fit.
 */
static const char *
state_vv_text(const struct vv *v, char *out, size_t len)
{
	char	 num[24], *q;
	size_t	 o = 0, nl, dl;
	uint64_t c;

	for (size_t i = 0; i < v->n; i++) {
		q = num + sizeof(num);
		c = v->e[i].counter;
		do {
			*--q = (char)('0' + c % 10);
			c /= 10;
		} while (c != 0);
		dl = (size_t)(num + sizeof(num) - q);
		nl = strlen(v->e[i].node);
		if (o + 1 + nl + 1 + dl + 1 > len)
			return NULL;
		if (i > 0)
			out[o++] = ',';
		memcpy(out + o, v->e[i].node, nl);
		o += nl;
		out[o++] = ':';
		memcpy(out + o, q, dl);
		o += dl;
	}
	out[o] = '\0';
	return out;
}

static void
state_later_drop(struct state *st, struct st_rec *r)
{
	if (r->later_ms == 0)
		return;
	TAILQ_REMOVE(&st->later, r, later);
	r->later_ms = 0;
}

void
state_save_later(struct state *st, struct st_rec *r)
{
	uint64_t	now = now_mono_ms();

	if (r->later_ms != 0)
		return;		/* its wait began earlier */
	r->later_ms = now != 0 ? now : 1;
	TAILQ_INSERT_TAIL(&st->later, r, later);
}

/* The waiting records (ALL, or those waiting STATE_LATER_MS) written now. */
static void
state_later_flush(struct state *st, int all)
{
	struct st_rec	*r;
	uint64_t	 now = now_mono_ms();

	while ((r = TAILQ_FIRST(&st->later)) != NULL &&
	    (all || now - r->later_ms >= STATE_LATER_MS))
		(void)state_save(st, r);	/* a failure is in state_error */
}

int
state_save(struct state *st, struct st_rec *r)
{
	sqlite3_stmt	*s = st->put;
	char		 vvbuf[1024], *vvheap = NULL;
	const char	*vv;
	int		 rc;

	state_later_drop(st, r);
	(void)state_tx(st);	/* a failed BEGIN: the write runs alone */
	if ((vv = state_vv_text(&r->vv, vvbuf, sizeof(vvbuf))) == NULL)
		vv = vvheap = vv_format(&r->vv);

	sqlite3_reset(s);
	sqlite3_bind_text(s, 1, r->path, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, r->type);
	sqlite3_bind_int(s, 3, r->deleted);
	sqlite3_bind_int(s, 4, r->hash_ok);
	sqlite3_bind_int64(s, 5, r->mode);
	sqlite3_bind_int64(s, 6, r->uid);
	sqlite3_bind_int64(s, 7, r->gid);
	sqlite3_bind_int64(s, 8, (sqlite3_int64)r->size);
	sqlite3_bind_int64(s, 9, r->mtime_ns);
	sqlite3_bind_blob(s, 10, r->hash, MF_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 11, (sqlite3_int64)r->ino);
	sqlite3_bind_int64(s, 12, (sqlite3_int64)r->dev);
	sqlite3_bind_int64(s, 13, r->ctime_ns);
	sqlite3_bind_int64(s, 14, r->deleted_ns);
	sqlite3_bind_text(s, 15, vv, -1, SQLITE_STATIC);
	if (r->acked != NULL)
		sqlite3_bind_text(s, 16, r->acked, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 16);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	free(vvheap);
	if (rc != SQLITE_DONE)
		return state_fail(st, "saving a record");
	return 0;
}

void
state_del(struct state *st, const char *path)
{
	struct st_rec	*r;

	(void)state_tx(st);	/* a failed BEGIN: the delete runs alone */
	sqlite3_reset(st->del);
	sqlite3_bind_text(st->del, 1, path, -1, SQLITE_STATIC);
	if (sqlite3_step(st->del) != SQLITE_DONE)
		state_fail(st, "deleting a record");
	sqlite3_reset(st->del);
	sqlite3_clear_bindings(st->del);
	if ((r = pmap_del(st->recs, path)) != NULL)
		state_later_drop(st, r);
	st_rec_free(r);
}

size_t
state_count(const struct state *st)
{
	return pmap_count(st->recs);
}

size_t
state_live_count(const struct state *st)
{
	struct pmap_iter	 it = { 0, NULL };
	void			*val;
	size_t			 n = 0;

	while (pmap_next(st->recs, &it, NULL, &val))
		if (!((struct st_rec *)val)->deleted)
			n++;
	return n;
}

static int
state_under(const char *path, const char *dir, size_t dlen)
{
	if (dlen == 0)
		return 1;
	return strncmp(path, dir, dlen) == 0 &&
	    (path[dlen] == '\0' || path[dlen] == '/');
}

size_t
state_collect(struct state *st, const char *dir, struct st_rec ***vp)
{
	struct pmap_iter	 it = { 0, NULL };
	struct st_rec		*r, **v = NULL;
	size_t			 n = 0, cap = 0, dlen = strlen(dir);
	void			*val;

	while (pmap_next(st->recs, &it, NULL, &val)) {
		r = val;
		if (!state_under(r->path, dir, dlen))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[n++] = r;
	}
	*vp = v;
	return n;
}

static void
state_save_counter(struct state *st)
{
	char	s[32];

	snprintf(s, sizeof(s), "%" PRIu64, st->counter);
	if (state_set_meta(st, "counter", s) == 0)
		st->counter_dirty = 0;
}

/* In a transaction the counter is written once, at its commit. */
uint64_t
state_next_counter(struct state *st)
{
	st->counter++;
	if (st->depth > 0)
		st->counter_dirty = 1;
	else
		state_save_counter(st);
	return st->counter;
}

static int
state_mf_cmp(const void *a, const void *b)
{
	return manifest_path_cmp(((const struct mf_entry *)a)->path,
	    ((const struct mf_entry *)b)->path);
}

struct manifest *
state_manifest(struct state *st)
{
	struct pmap_iter	 it = { 0, NULL };
	struct manifest		*mf = xcalloc(1, sizeof(*mf));
	struct mf_entry		*e;
	struct st_rec		*r;
	void			*val;

	mf->cap = pmap_count(st->recs) + 1;
	mf->e = xcalloc(mf->cap, sizeof(*mf->e));
	while (pmap_next(st->recs, &it, NULL, &val)) {
		r = val;
		if (r->deleted || r->type != MF_FILE || !r->hash_ok)
			continue;
		e = &mf->e[mf->n++];
		e->path = xstrdup(r->path);
		e->type = MF_FILE;
		e->mode = r->mode;
		e->uid = r->uid;
		e->gid = r->gid;
		e->size = r->size;
		e->mtime_ns = r->mtime_ns;
		e->ctime_ns = r->ctime_ns;
		e->ino = r->ino;
		e->dev = r->dev;
		memcpy(e->hash, r->hash, MF_HASH_LEN);
	}
	qsort(mf->e, mf->n, sizeof(*mf->e), state_mf_cmp);
	return mf;
}

const char *
state_error(const struct state *st)
{
	return st->err;
}

size_t
state_gc(struct state *st, int64_t ttl_ns)
{
	struct timespec	 ts;
	struct st_rec	**v;
	size_t		 n, i, gone = 0;
	int64_t		 now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	n = state_collect(st, "", &v);
	for (i = 0; i < n; i++) {
		if (!v[i]->deleted || now - v[i]->deleted_ns < ttl_ns)
			continue;
		state_del(st, v[i]->path);
		gone++;
	}
	free(v);
	return gone;
}
