/*
 * send.c: one change shipped to a peer.  A directory goes as MKDIR, a
 * delete as DELETE (with the tombstone's version vector), a move as a
 * RENAME hint, a file as FILE_BEGIN + FILE_DATA + FILE_END in one of three
 * forms: whole (small files, or new to the peer), append (the peer holds a
 * prefix: only the tail goes), or a librsync delta against the signature
 * the peer sends for a SIG_REQ.  Big files are hashed on a worker thread
 * and streamed in slices by the link's pump, so the loop never blocks.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "engine.h"

#define SEND_SLICE	(256 * 1024)	/* file bytes read per pump step */
#define SEND_AHEAD_MAX	(8 * 1024 * 1024)	/* delta output held before FILE_BEGIN */

struct hashjob {
	struct op	*op;		/* NULL once the op is gone */
	int		 fd;
	unsigned char	 hash[MF_HASH_LEN];
	struct stat	 a, z;
	int		 ok;
};

static void	send_maybe_begin(struct link *, struct op *);

static void
msg_init(struct wire_msg *m, enum wire_type type)
{
	memset(m, 0, offsetof(struct wire_msg, vv_store));
	m->type = type;
}

static struct op *
op_new(struct link *l, struct item *it)
{
	struct op	*op = xcalloc(1, sizeof(*op));

	op->l = l;
	op->it = it;
	op->since_ms = it->since_ms;
	op->fd = -1;
	buf_init(&op->data);
	TAILQ_INSERT_TAIL(&l->ops, op, entry);
	link_lag_add(l, op->since_ms);
	l->nops++;
	l->nunsent++;		/* OP_HASH */
	pmap_put(l->busy, it->path, op);
	return op;
}

/* Stages change here only: the link counts the ops not wholly sent, which
 * spares the pump a walk over a window of sent ones. */
void
op_stage(struct op *op, enum op_stage stage)
{
	if (op->stage != OP_SENT && stage == OP_SENT)
		op->l->nunsent--;
	else if (op->stage == OP_SENT && stage != OP_SENT)
		op->l->nunsent++;
	op->stage = stage;
}

void
op_free(struct op *op)
{
	if (op->hj != NULL)
		op->hj->op = NULL;	/* its result will be dropped */
	if (op->fd != -1)
		close(op->fd);
	buf_free(&op->data);
	vv_free(&op->vv);
	delta_job_free(op->job);
	delta_sig_free(op->sig);
	item_free(op->it);
	free(op);
}

struct op *
send_find_xfer(struct link *l, uint64_t xfer)
{
	struct op	*op;

	TAILQ_FOREACH(op, &l->ops, entry)
		if (op->type == WIRE_FILE_BEGIN && op->xfer == xfer)
			return op;
	return NULL;
}

/* Nothing to send after all (or not now): settled as done. */
static void
send_nothing(struct link *l, struct op *op)
{
	op->type = 0;
	op_stage(op, OP_SENT);
	sync_op_done(l, op, WIRE_ST_OK, NULL);
}

/* The file changed under us: settle this one and ship it again. */
static void
send_again(struct link *l, struct op *op)
{
	struct peer	*p = l->peer;
	char		*path = xstrdup(op->it->path);

	send_nothing(l, op);
	sync_enqueue(p, path, 0);
	free(path);
}

/* A change seen only now (by send_small's read) goes to the others too. */
static void
send_recheck(struct link *l, struct op *op)
{
	struct spoolsync	*sp = l->sp;

	if (sync_local_check(sp, op->it->path))
		for (size_t i = 0; i < sp->npeers; i++)
			if (&sp->peers[i] != l->peer)
				sync_enqueue(&sp->peers[i], op->it->path, 0);
	send_again(l, op);
}

static void
send_simple(struct link *l, struct op *op, struct wire_msg *m)
{
	op->type = m->type;
	op->seq = link_next_seq(l);
	op_stage(op, OP_SENT);
	link_send(l, m);
}

static void
send_rename(struct link *l, struct op *op)
{
	struct wire_msg		m;
	struct wire_vv_ent	store[WIRE_VV_MAX];

	msg_init(&m, WIRE_RENAME);
	m.rename.from = op->it->from;
	m.rename.to = op->it->path;
	m.rename.is_dir = op->it->is_dir;
	vv_to_wire(&op->it->vv, &m.rename.vv, store);
	send_simple(l, op, &m);
}

static void
send_delete(struct link *l, struct op *op, const struct st_rec *r)
{
	struct wire_msg		m;
	struct wire_vv_ent	store[WIRE_VV_MAX];
	struct pk		*k = pmap_get(l->peer->pk, op->it->path);

	msg_init(&m, WIRE_DELETE);
	m.delete.path = op->it->path;
	m.delete.is_dir = r != NULL ? r->type == MF_DIR : k != NULL &&
	    k->type == MF_DIR;
	if (r != NULL)
		vv_to_wire(&r->vv, &m.delete.vv, store);
	op->deleted = 1;
	send_simple(l, op, &m);
}

static void
send_attr(struct wire_attr *a, const struct st_rec *r)
{
	a->mode = r->mode;
	a->uid = r->uid;
	a->gid = r->gid;
	a->mtime_ns = r->mtime_ns;
}

static void
send_mkdir(struct link *l, struct op *op, const struct st_rec *r)
{
	struct wire_msg	 m;
	struct pk	*k = pmap_get(l->peer->pk, op->it->path);

	if (k != NULL && k->type == MF_DIR && k->mode == r->mode &&
	    k->uid == r->uid && k->gid == r->gid) {
		send_nothing(l, op);
		return;
	}
	msg_init(&m, WIRE_MKDIR);
	m.mkdir.path = op->it->path;
	send_attr(&m.mkdir.attr, r);
	op->attr = m.mkdir.attr;	/* what the peer holds once it acks */
	send_simple(l, op, &m);
}

static void
send_begin_frame(struct link *l, struct op *op)
{
	struct wire_msg		m;
	struct wire_vv_ent	store[WIRE_VV_MAX];

	msg_init(&m, WIRE_FILE_BEGIN);
	m.file_begin.xfer = op->xfer;
	m.file_begin.path = op->it->path;
	m.file_begin.kind = (uint8_t)op->kind;
	m.file_begin.ftype = op->ftype;
	m.file_begin.size = op->size;
	m.file_begin.attr = op->attr;
	memcpy(m.file_begin.sha256, op->sha, WIRE_HASH_LEN);
	m.file_begin.append_off = op->kind == WIRE_KIND_APPEND ? op->append_off : 0;
	vv_to_wire(&op->vv, &m.file_begin.vv, store);
	op->begun = 1;
	link_send(l, &m);
}

/* DIGEST: the SHA-256 of these N bytes, when known (else NULL). */
static void
send_data_frame(struct link *l, struct op *op, const void *p, size_t n,
    const unsigned char *digest)
{
	struct wire_msg	m;

	msg_init(&m, WIRE_FILE_DATA);
	m.file_data.id = op->xfer;
	m.file_data.data = p;
	m.file_data.len = n;
	m.file_data.digest = digest;
	link_send(l, &m);
}

static void
send_end_frame(struct link *l, struct op *op)
{
	struct wire_msg	m;

	msg_init(&m, WIRE_FILE_END);
	m.file_end.xfer = op->xfer;
	op_stage(op, OP_SENT);
	link_send(l, &m);
}

/* A file whose bytes are in OP->data: FILE_BEGIN, the data, FILE_END. */
static void
send_in_one(struct link *l, struct op *op, const unsigned char *p, size_t n)
{
	size_t	k;
	int	whole;

	/* A whole file in one chunk: its hash is the chunk's (wire.c). */
	whole = op->kind == WIRE_KIND_WHOLE && op->ftype == MF_FILE &&
	    n == op->size && n <= WIRE_CHUNK_MAX;
	send_begin_frame(l, op);
	while (n > 0 && link_alive(l)) {
		k = n < WIRE_CHUNK_MAX ? n : WIRE_CHUNK_MAX;
		send_data_frame(l, op, p, k, whole ? op->sha : NULL);
		p += k;
		n -= k;
	}
	if (link_alive(l))
		send_end_frame(l, op);
}

static void
send_file_common(struct op *op, const struct st_rec *r)
{
	op->type = WIRE_FILE_BEGIN;
	op->xfer = op->l->next_xfer++;
	send_attr(&op->attr, r);
	vv_copy(&op->vv, &r->vv);
	op->ino = r->ino;
}

static void
send_link(struct link *l, struct op *op, const struct st_rec *r)
{
	const char	*leaf;
	char		 target[4096], err[256];
	unsigned int	 hl;
	ssize_t		 n;
	int		 dfd;

	dfd = path_open_parent(l->sp->rootfd, op->it->path, 0, 0, &leaf, err,
	    sizeof(err));
	n = dfd == -1 ? -1 : readlinkat(dfd, leaf, target, sizeof(target) - 1);
	if (dfd != -1)
		close(dfd);
	if (n <= 0 || (size_t)n >= sizeof(target) - 1) {
		send_again(l, op);
		return;
	}
	send_file_common(op, r);
	op->ftype = MF_LINK;
	op->kind = WIRE_KIND_WHOLE;
	op->size = (uint64_t)n;
	EVP_Digest(target, (size_t)n, op->sha, &hl, EVP_sha256(), NULL);
	op->lit = (uint64_t)n;
	op_stage(op, OP_STREAM);
	send_in_one(l, op, (const unsigned char *)target, (size_t)n);
}

static int
send_meta_same(const struct pk *k, const struct wire_attr *a)
{
	return k->mode == a->mode && k->uid == a->uid && k->gid == a->gid &&
	    k->mtime_ns == a->mtime_ns;
}

/* A file of at most SYNC_SMALL_MAX bytes: read, hashed and sent at once. */
static void
send_small(struct link *l, struct op *op, struct st_rec *r, const struct pk *k)
{
	struct spoolsync	*sp = l->sp;
	unsigned char		 h[MF_HASH_LEN], ph[MF_HASH_LEN];
	unsigned int		 hl;
	struct stat		 st;
	const unsigned char	*p;
	size_t			 n;

	/* The stat taken around the read proves the bytes are the record's;
	 * anything else is looked at afresh first. */
	if (sync_read_small(sp, op->it->path, &op->data, h, &st) != 0 ||
	    !sync_same_stat(r, &st)) {
		send_recheck(l, op);
		return;
	}
	if (!r->hash_ok) {
		/* Recorded unhashed (a rescan's new file): the bytes just read
		 * are the ones it saw, as the stat around the read proves. */
		memcpy(r->hash, h, MF_HASH_LEN);
		r->hash_ok = 1;
		sync_save(sp, r);
	}
	if (memcmp(h, r->hash, MF_HASH_LEN) != 0 || op->data.len != r->size) {
		send_recheck(l, op);	/* changed within a timestamp's tick */
		return;
	}
	send_file_common(op, r);
	op->ftype = MF_FILE;
	op->size = op->data.len;
	memcpy(op->sha, h, MF_HASH_LEN);
	p = (const unsigned char *)op->data.data;
	n = op->data.len;
	op->kind = WIRE_KIND_WHOLE;
	if (k != NULL && k->type == MF_FILE && k->size == op->size &&
	    memcmp(k->hash, h, MF_HASH_LEN) == 0) {
		if (sp->mode != MODE_BIDIR && send_meta_same(k, &op->attr)) {
			send_nothing(l, op);
			return;
		}
		op->kind = WIRE_KIND_APPEND;	/* the content is there already */
		op->append_off = op->size;
	} else if (k != NULL && k->type == MF_FILE && !op->it->force_whole &&
	    k->size > 0 && k->size < op->size) {
		EVP_Digest(p, (size_t)k->size, ph, &hl, EVP_sha256(), NULL);
		if (memcmp(ph, k->hash, MF_HASH_LEN) == 0) {
			op->kind = WIRE_KIND_APPEND;
			op->append_off = k->size;
		}
	}
	if (op->kind == WIRE_KIND_APPEND) {
		p += op->append_off;
		n -= (size_t)op->append_off;
		op->matched = op->append_off;
	}
	op->lit = n;
	op_stage(op, OP_STREAM);
	send_in_one(l, op, p, n);
	if (link_alive(l))
		buf_free(&op->data);	/* a wide window holds many small ops */
}

/* Big files: hashed on a worker thread. */

static void
send_hash_run(void *arg)
{
	struct hashjob	*hj = arg;
	unsigned char	*b = xmalloc(SEND_SLICE * 4);
	EVP_MD_CTX	*md = EVP_MD_CTX_new();
	unsigned int	 hl;
	uint64_t	 n = 0;
	ssize_t		 r;

	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	if (fstat(hj->fd, &hj->a) == -1)
		goto out;
	for (;;) {
		r = pread(hj->fd, b, SEND_SLICE * 4, (off_t)n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		EVP_DigestUpdate(md, b, (size_t)r);
		n += (uint64_t)r;
	}
	EVP_DigestFinal_ex(md, hj->hash, &hl);
	if (r == 0 && fstat(hj->fd, &hj->z) == 0)
		hj->ok = hj->a.st_size == hj->z.st_size &&
		    hj->a.st_mtim.tv_sec == hj->z.st_mtim.tv_sec &&
		    hj->a.st_mtim.tv_nsec == hj->z.st_mtim.tv_nsec &&
		    hj->a.st_ctim.tv_sec == hj->z.st_ctim.tv_sec &&
		    hj->a.st_ctim.tv_nsec == hj->z.st_ctim.tv_nsec &&
		    n == (uint64_t)hj->z.st_size;
out:
	EVP_MD_CTX_free(md);
	free(b);
}

static void
send_hash_done(void *arg, int cancelled)
{
	struct hashjob	*hj = arg;
	struct op	*op = hj->op;
	struct st_rec	*r;

	close(hj->fd);
	if (cancelled || op == NULL) {
		if (op != NULL)
			op->hj = NULL;
		free(hj);
		return;
	}
	op->hj = NULL;
	if (!hj->ok || (uint64_t)hj->z.st_size != op->size ||
	    (uint64_t)hj->z.st_ino != op->ino) {
		free(hj);
		send_again(op->l, op);
		return;
	}
	memcpy(op->sha, hj->hash, MF_HASH_LEN);
	op->hash_done = 1;
	r = state_get(op->l->sp->st, op->it->path);
	if (r != NULL && !r->deleted && r->ino == (uint64_t)hj->z.st_ino &&
	    r->size == (uint64_t)hj->z.st_size && !r->hash_ok) {
		memcpy(r->hash, hj->hash, MF_HASH_LEN);
		r->hash_ok = 1;
		state_save(op->l->sp->st, r);
	}
	free(hj);
	send_maybe_begin(op->l, op);
}

static void
send_sig_req(struct link *l, struct op *op)
{
	struct wire_msg	m;

	msg_init(&m, WIRE_SIG_REQ);
	m.sig_req.xfer = op->xfer;
	m.sig_req.path = op->it->path;
	op->job = delta_loadsig_begin(0);
	op_stage(op, OP_SIGWAIT);
	op->sig_asked = 1;
	link_send(l, &m);
}

static void
send_big(struct link *l, struct op *op, const struct st_rec *r)
{
	struct spoolsync	*sp = l->sp;
	struct pk		*k = pmap_get(l->peer->pk, op->it->path);
	struct hashjob		*hj;
	struct stat		 st;
	char			 err[256];

	op->fd = path_open(sp->rootfd, op->it->path, O_RDONLY | O_NONBLOCK |
	    O_NOCTTY, 0, err, sizeof(err));
	if (op->fd == -1 || fstat(op->fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_ino != r->ino || (uint64_t)st.st_size != r->size) {
		send_again(l, op);
		return;
	}
	send_file_common(op, r);
	op->ftype = MF_FILE;
	op->size = (uint64_t)st.st_size;
	op_stage(op, OP_HASH);
	if (r->hash_ok) {
		memcpy(op->sha, r->hash, MF_HASH_LEN);
		op->hash_done = 1;
	} else {
		hj = xcalloc(1, sizeof(*hj));
		hj->op = op;
		if ((hj->fd = dup(op->fd)) == -1) {
			free(hj);
			send_again(l, op);
			return;
		}
		op->hj = hj;
		bg_submit(sp->bg, send_hash_run, send_hash_done, hj);
	}
	if (op->it->force_whole || k == NULL || k->type != MF_FILE)
		op->kind = WIRE_KIND_WHOLE;
	else if (k->size > 0 && k->size < op->size && k->ino == op->ino) {
		op->kind = WIRE_KIND_APPEND;	/* the receiver checks the result */
		op->append_off = k->size;
	} else if (k->size == op->size) {
		/* Decided once hashed; its stat changed, so the signature is
		 * most likely needed: asked for while it is hashed. */
		op->kind = 0;
		if (!op->hash_done)
			send_sig_req(l, op);
		if (!link_alive(l))
			return;
	} else {
		op->kind = WIRE_KIND_DELTA;
		send_sig_req(l, op);
		if (!link_alive(l))
			return;
	}
	send_maybe_begin(l, op);
}

/* The file is hashed apart (FILE_BEGIN carries it): the delta need not. */
static void
send_delta_job(struct op *op)
{
	op->job = delta_delta_begin(op->sig, op->fd);
	delta_job_no_digest(op->job);
}

/* Hash known and (for a delta) the signature in: FILE_BEGIN and stream. */
static void
send_maybe_begin(struct link *l, struct op *op)
{
	struct pk	*k = pmap_get(l->peer->pk, op->it->path);

	if (!op->hash_done || op->begun || !link_alive(l))
		return;
	if (op->kind == 0) {
		if (k != NULL && k->type == MF_FILE && k->size == op->size &&
		    memcmp(k->hash, op->sha, MF_HASH_LEN) == 0) {
			if (op->sig_asked && !op->sig_done)
				return;		/* its SIG frames come first */
			delta_job_free(op->job);	/* ahead, for nothing */
			op->job = NULL;
			buf_reset(&op->data);
			if (l->sp->mode != MODE_BIDIR && send_meta_same(k, &op->attr)) {
				send_nothing(l, op);
				return;
			}
			op->kind = WIRE_KIND_APPEND;
			op->append_off = op->size;
		} else if (!op->sig_asked) {
			op->kind = WIRE_KIND_DELTA;
			send_sig_req(l, op);
			return;
		} else
			op->kind = op->sig_done && op->sig == NULL ?
			    WIRE_KIND_WHOLE : WIRE_KIND_DELTA;
	}
	if (op->kind == WIRE_KIND_DELTA && !op->sig_done)
		return;
	if (op->kind == WIRE_KIND_DELTA) {
		if (op->job == NULL)
			send_delta_job(op);
		op->off = 0;
	} else
		op->off = op->kind == WIRE_KIND_APPEND ? op->append_off : 0;
	if (op->kind == WIRE_KIND_APPEND)
		op->matched = op->append_off;
	op_stage(op, OP_STREAM);
	send_begin_frame(l, op);	/* OP is gone if the link closed */
	link_pump_soon(l);
}

/* Read and sent at once, unless a delta may beat sending it whole. */
static int
send_goes_small(struct link *l, const struct item *it, const struct st_rec *r,
    const struct pk *k)
{
	if (r->size > SYNC_SMALL_MAX)
		return 0;
	if (r->size < l->sp->whole_below || it->force_whole || k == NULL ||
	    k->type != MF_FILE || !r->hash_ok)
		return 1;	/* (unhashed: send_small hashes what it reads) */
	/* Unchanged or grown: the small path finds out with no round trip. */
	return r->hash_ok && (k->size < r->size || (k->size == r->size &&
	    memcmp(k->hash, r->hash, MF_HASH_LEN) == 0));
}

void
send_start(struct link *l, struct item *it, struct st_rec *r)
{
	struct spoolsync	*sp = l->sp;
	struct op		*op = op_new(l, it);
	const struct pk		*k;
	int			 small = -1, barrier;

	if (it->kind == ITEM_MOVE) {
		send_rename(l, op);
		return;
	}
	barrier = r != NULL && r->deleted && r->type == MF_DIR;
	/*
	 * Ship what is there now; a change seen only now goes to the others
	 * too.  A small file's read is that look (send_small compares the
	 * stat around it with the record): no lstat first.
	 */
	k = pmap_get(l->peer->pk, it->path);
	if (r == NULL || r->deleted || r->type != MF_FILE ||
	    !(small = send_goes_small(l, it, r, k))) {
		if (sync_local_check(sp, it->path))
			for (size_t i = 0; i < sp->npeers; i++)
				if (&sp->peers[i] != l->peer)
					sync_enqueue(&sp->peers[i], it->path, 0);
		r = state_get(sp->st, it->path);
		small = -1;	/* looked at again: decided again */
	}
	if (!barrier && r != NULL && r->deleted && r->type == MF_DIR) {
		/*
		 * A directory found gone only now: its delete is a barrier
		 * (sync.c) the pump never weighed.  Sent at once it would
		 * overtake the files beneath it still in flight, and the
		 * peer, emptying the directory while they land, would have
		 * them make it again.  It waits its turn behind the deletes
		 * its tombstone just queued.
		 */
		send_again(l, op);
		return;
	}
	if (r == NULL || r->deleted) {
		if (r != NULL || (sp->mode == MODE_SEND &&
		    (it->ae || k != NULL)))
			send_delete(l, op, r);
		else
			send_nothing(l, op);
		return;
	}
	switch (r->type) {
	case MF_DIR:
		send_mkdir(l, op, r);
		break;
	case MF_LINK:
		send_link(l, op, r);
		break;
	default:
		if (small == 1 || (small == -1 && send_goes_small(l, it, r, k)))
			send_small(l, op, r, k);
		else
			send_big(l, op, r);
		break;
	}
}

static void
send_stream_file(struct link *l, struct op *op, size_t *budget)
{
	unsigned char	*b = xmalloc(SEND_SLICE);
	ssize_t		 n;
	size_t		 want;

	while (*budget > 0 && !link_out_high(l) && op->off < op->size) {
		want = op->size - op->off < SEND_SLICE ? (size_t)(op->size -
		    op->off) : SEND_SLICE;
		n = pread(op->fd, b, want, (off_t)op->off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;	/* it shrank: the receiver's check says stale */
		send_data_frame(l, op, b, (size_t)n, NULL);
		if (!link_alive(l))
			goto out;
		op->off += (uint64_t)n;
		op->lit += (uint64_t)n;
		*budget = *budget > (size_t)n ? *budget - (size_t)n : 0;
		if (n < (ssize_t)want)
			break;
	}
	if (op->off >= op->size || (*budget > 0 && !link_out_high(l)))
		send_end_frame(l, op);
out:
	free(b);
}

static void
send_delta_failed(struct link *l, struct op *op, const char *err)
{
	log_warnx("peer %s: %s: delta: %s", l->peer->name, op->it->path, err);
	op->it->force_whole = 1;
	if (op->begun) {
		send_end_frame(l, op);	/* the receiver finds it stale */
		return;
	}
	/* Nothing of it went out yet: the file goes whole instead. */
	delta_job_free(op->job);
	op->job = NULL;
	buf_reset(&op->data);
	op->kind = WIRE_KIND_WHOLE;
	op_stage(op, OP_HASH);
	send_maybe_begin(l, op);
}

/*
 * The delta runs as soon as the signature is in, while the file is still
 * being hashed on a worker: its output waits in OP->data (up to
 * SEND_AHEAD_MAX) until FILE_BEGIN, which needs the hash, has gone.
 */
static void
send_stream_delta(struct link *l, struct op *op, size_t *budget)
{
	struct delta_stats	ds;
	enum delta_status	st;
	char			err[256];
	size_t			n;

	while (*budget > 0 && !link_out_high(l)) {
		if (!op->delta_done && (op->begun || op->data.len < SEND_AHEAD_MAX)) {
			st = delta_job_step(op->job, NULL, 0, 0, &op->data, SEND_SLICE,
			    err, sizeof(err));
			*budget = *budget > SEND_SLICE ? *budget - SEND_SLICE : 0;
			if (st == DELTA_ERROR) {
				send_delta_failed(l, op, err);
				return;
			}
			if (st == DELTA_DONE) {
				delta_job_stats(op->job, &ds);
				op->lit = ds.lit_bytes;
				op->matched = ds.copy_bytes;
				op->delta_done = 1;
			}
		} else if (!op->begun)
			return;		/* far enough ahead of the hash */
		if (!op->begun)
			continue;
		for (size_t off = 0; off < op->data.len; off += n) {
			n = op->data.len - off < WIRE_CHUNK_MAX ? op->data.len - off :
			    WIRE_CHUNK_MAX;
			send_data_frame(l, op, op->data.data + off, n, NULL);
			if (!link_alive(l))
				return;
		}
		buf_reset(&op->data);
		if (op->delta_done) {
			send_end_frame(l, op);
			return;
		}
	}
}

void
send_stream(struct link *l, struct op *op, size_t *budget)
{
	if (op->job != NULL)		/* a delta (maybe ahead of the hash) */
		send_stream_delta(l, op, budget);
	else
		send_stream_file(l, op, budget);
}

void
send_on_sig(struct link *l, const struct wire_chunk *c)
{
	struct op		*op = send_find_xfer(l, c->id);
	enum delta_status	 st;
	char			 err[256];

	if (op == NULL || op->stage != OP_SIGWAIT || op->job == NULL) {
		link_close(l, "SIG for transfer %llu, which waits for none",
		    (unsigned long long)c->id);
		return;
	}
	st = delta_job_step(op->job, c->data, c->len, c->last, NULL, 0, err,
	    sizeof(err));
	while (st == DELTA_MORE && delta_job_busy(op->job))
		st = delta_job_step(op->job, NULL, 0, c->last, NULL, 0, err,
		    sizeof(err));
	if (st == DELTA_MORE && !c->last)
		return;
	if (st == DELTA_DONE)
		op->sig = delta_loadsig_take(op->job);
	else
		log_warnx("peer %s: %s: its signature is unusable (%s): sending "
		    "the file whole", l->peer->name, op->it->path,
		    st == DELTA_ERROR ? err : "truncated");
	delta_job_free(op->job);
	op->job = NULL;
	if (op->sig == NULL && op->kind != 0)
		op->kind = WIRE_KIND_WHOLE;
	op->sig_done = 1;
	op_stage(op, OP_HASH);
	if (op->sig != NULL && !op->hash_done) {
		send_delta_job(op);	/* ahead of the hash: see send_stream_delta */
		op_stage(op, OP_STREAM);
		link_pump_soon(l);
		return;
	}
	send_maybe_begin(l, op);
}

void
send_on_ack(struct link *l, struct op *op, const struct wire_ack *a)
{
	if (op->stage == OP_SIGWAIT) {
		/* The peer has no basis for a delta: the file goes whole
		 * (unless the hash, still awaited, finds it unchanged). */
		delta_job_free(op->job);
		op->job = NULL;
		if (op->kind != 0)
			op->kind = WIRE_KIND_WHOLE;
		op->sig_done = 1;
		op_stage(op, OP_HASH);
		send_maybe_begin(l, op);
		return;
	}
	if (op->stage != OP_SENT) {
		link_close(l, "ACK for transfer %llu before its end",
		    (unsigned long long)op->xfer);
		return;
	}
	sync_op_done(l, op, a->status, a->text);
}
