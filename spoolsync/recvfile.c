/*
 * recvfile.c: files arriving from a peer: FILE_BEGIN decides (recv.c),
 * FILE_DATA lands in a temp file beside the target or, for a small file, in
 * memory (whole, an append's tail, or a librsync patch against the current
 * file, stepped in bounded slices), FILE_END checks size and SHA-256, and
 * the file goes to the committer (commit.c), which puts it in place before
 * the ack goes.  A conflict's loser goes there too, to be kept in
 * conflict_dir off the loop.  Also the signatures this node computes for a
 * peer's SIG_REQ.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "engine.h"

#define RECV_PATCH_OUT	(1024 * 1024)	/* patch output per step */
#define RECV_MEM_MAX	(64 * 1024)	/* held in memory, written by the committer */

static void
msg_init(struct wire_msg *m, enum wire_type type)
{
	memset(m, 0, offsetof(struct wire_msg, vv_store));
	m->type = type;
}

/* SHA-256 fetched once: OpenSSL 3 fetches it again on every EVP_sha256()
 * init, which a wide window of small files pays per file (as local.c). */
static EVP_MD		*rx_md;
static pthread_once_t	 rx_md_once = PTHREAD_ONCE_INIT;

static void
rx_md_fetch(void)
{
	rx_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *
rx_md_sha256(void)
{
	pthread_once(&rx_md_once, rx_md_fetch);
	return rx_md != NULL ? rx_md : EVP_sha256();
}

/* Files. */

void
rx_free(struct rx *rx)
{
	if (rx->tmp_open)
		apply_tmp_abort(&rx->tmp);
	if (rx->basis_fd != -1)
		close(rx->basis_fd);
	delta_job_free(rx->patch);
	EVP_MD_CTX_free((EVP_MD_CTX *)rx->md);
	buf_free(&rx->target);
	buf_free(&rx->body);
	vv_free(&rx->vv);
	free(rx->path);
	free(rx);
}

char *
rx_key(uint64_t xfer, char *b, size_t len)
{
	char	t[24];
	size_t	n = 0, i;

	/* Three lookups a file: snprintf's cost showed on a receiver's loop. */
	do {
		t[n++] = (char)('0' + xfer % 10);
		xfer /= 10;
	} while (xfer != 0);
	if (len == 0)
		return b;
	if (n > len - 1)
		n = len - 1;
	for (i = 0; i < n; i++)
		b[i] = t[n - 1 - i];
	b[n] = '\0';
	return b;
}

static void
rx_done(struct link *l, struct rx *rx, int status, const char *text)
{
	char	key[32];

	pmap_del(l->rx, rx_key(rx->xfer, key, sizeof(key)));
	recv_ack(l, WIRE_REF_XFER, rx->xfer, status, text);
	rx_free(rx);
}

static void
rx_skip(struct rx *rx, int status, const char *fmt, ...) PRINTFLIKE(3, 4);

static void
rx_skip(struct rx *rx, int status, const char *fmt, ...)
{
	va_list	ap;

	rx->skip = 1;
	rx->status = status;
	va_start(ap, fmt);
	vsnprintf(rx->text, sizeof(rx->text), fmt, ap);
	va_end(ap);
	if (rx->tmp_open)
		apply_tmp_abort(&rx->tmp);
	rx->tmp_open = 0;
	delta_job_free(rx->patch);
	rx->patch = NULL;
}

static void
rx_skip_errno(struct rx *rx, const char *err)
{
	rx_skip(rx, recv_status_of(errno), "%s", err);
}

static void
rx_open(struct link *l, struct rx *rx)
{
	struct spoolsync	*sp = l->sp;
	char			 err[512];
	struct stat		 st;

	if (rx->ftype == MF_LINK) {
		if (rx->size == 0 || rx->size >= 4096)
			rx_skip(rx, WIRE_ST_PROTO, "%s: symlink target of %" PRIu64
			    " bytes", rx->path, rx->size);
		return;
	}
	if (rx->kind == WIRE_KIND_APPEND && rx->append_off == rx->size)
		return;		/* the content is here already: attributes only */
	if (rx->kind == WIRE_KIND_WHOLE && !rx->conflict &&
	    rx->size <= RECV_MEM_MAX) {
		/* A small file: its temp file is made by the committer, which
		 * leaves the loop free to take the next ones. */
		rx->mem = 1;
		/* Its announced size exactly: buf_add's doubling would hold up
		 * to twice the bytes (and copy them) for every file waiting. */
		if (rx->body.data == NULL) {
			rx->body.data = xmalloc((size_t)rx->size + 1);
			rx->body.cap = (size_t)rx->size + 1;
			rx->body.data[0] = '\0';
		}
		return;		/* hashed as it comes (recv_file_data) */
	}
	if (rx->kind != WIRE_KIND_WHOLE) {
		rx->basis_fd = apply_open_basis(sp->rootfd, rx->path, err, sizeof(err));
		if (rx->basis_fd == -1 || fstat(rx->basis_fd, &st) == -1 ||
		    (rx->kind == WIRE_KIND_APPEND &&
		    (uint64_t)st.st_size < rx->append_off)) {
			rx_skip(rx, WIRE_ST_STALE, "%s: no basis for a%s here", rx->path,
			    rx->kind == WIRE_KIND_APPEND ? "n append" : " delta");
			return;
		}
	}
	if (apply_tmp_open(sp->rootfd, rx->path, 1, &rx->tmp, err, sizeof(err)) == -1) {
		rx_skip_errno(rx, err);
		return;
	}
	rx->tmp_open = 1;
	if (rx->kind == WIRE_KIND_DELTA) {
		rx->patch = delta_patch_begin(rx->basis_fd, rx->tmp.fd, rx->size);
		return;
	}
	if (rx->kind == WIRE_KIND_APPEND) {
		/* The tail lands at its place; the commit worker copies the old
		 * bytes before it and checks the whole (the basis may be big). */
		if (lseek(rx->tmp.fd, (off_t)rx->append_off, SEEK_SET) == -1)
			rx_skip(rx, WIRE_ST_IO, "%s: seek: %s", rx->path,
			    strerror(errno));
		return;
	}
	rx->md = (struct evp_md_ctx_st *)EVP_MD_CTX_new();
	EVP_DigestInit_ex((EVP_MD_CTX *)rx->md, rx_md_sha256(), NULL);
}

void
recv_file_begin(struct link *l, const struct wire_file_begin *fb)
{
	struct spoolsync	*sp = l->sp;
	struct rx		*rx;
	struct vv		 in = { NULL, 0 };
	char			 key[32], why[600];
	int			 loser_local;
	enum recv_decision	 dec;

	if (pmap_count(l->rx) >= SYNC_RX_MAX) {
		link_close(l, "more than %d files arriving at once", SYNC_RX_MAX);
		return;
	}
	if (pmap_get(l->rx, rx_key(fb->xfer, key, sizeof(key))) != NULL) {
		link_close(l, "transfer %" PRIu64 " begun twice", fb->xfer);
		return;
	}
	l->last_file_ms = now_mono_ms();
	rx = xcalloc(1, sizeof(*rx));
	rx->xfer = fb->xfer;
	rx->path = xstrdup(fb->path);
	rx->kind = fb->kind;
	rx->ftype = fb->ftype;
	rx->size = fb->size;
	rx->append_off = fb->append_off;
	rx->attr = fb->attr;
	rx->basis_fd = -1;
	rx->tmp.fd = rx->tmp.dirfd = -1;
	buf_init(&rx->body);
	rx->started_ms = now_mono_ms();
	memcpy(rx->sha, fb->sha256, MF_HASH_LEN);
	buf_init(&rx->target);
	pmap_put(l->rx, key, rx);
	if (recv_refused(l, fb->path, why, sizeof(why))) {
		rx_skip(rx, WIRE_ST_REFUSED, "%s", why);
		return;
	}
	vv_from_wire(&in, &fb->vv);
	dec = recv_decide(l, rx->path, &in, 0, fb->ftype, fb->size, fb->sha256,
	    fb->attr.mtime_ns, &rx->vv, rx->text, sizeof(rx->text), &loser_local);
	vv_free(&in);
	/*
	 * Theirs wins over a version of ours: rx->text (its author) stays set
	 * and the committer keeps ours before theirs replaces it (commit.c).
	 * A symlink is placed here on the loop: ours is kept here first.
	 */
	if (dec == DEC_APPLY && loser_local == 1 && fb->ftype == MF_LINK)
		recv_save_loser_local(sp, rx->text, rx->path);
	if (dec == DEC_APPLY && (loser_local != 1 || fb->ftype == MF_LINK))
		rx->text[0] = '\0';
	if (dec == DEC_REJECT && loser_local == 0) {
		rx->conflict = 1;	/* we keep ours; theirs goes to conflict_dir */
		rx_open(l, rx);
		return;
	}
	if (dec == DEC_REJECT) {
		rx_skip(rx, WIRE_ST_CONFLICT, "%s: this node holds a newer version",
		    rx->path);
		return;
	}
	if (dec == DEC_NOOP) {
		struct st_rec	*r = state_get(sp->st, rx->path);

		if (r != NULL && vv_compare(&r->vv, &rx->vv) != VV_EQUAL) {
			vv_copy(&r->vv, &rx->vv);
			state_save(sp->st, r);
		}
		rx_skip(rx, WIRE_ST_OK, "%s", "");
		return;
	}
	rx_open(l, rx);
}

static void
recv_patch_step(struct link *l, struct rx *rx, const void *p, size_t n)
{
	enum delta_status	st;
	char			err[256];

	st = delta_job_step(rx->patch, p, n, rx->ended, NULL, RECV_PATCH_OUT, err,
	    sizeof(err));
	if (st == DELTA_ERROR)
		rx_skip(rx, WIRE_ST_STALE, "%s: %s", rx->path, err);
	else if (delta_job_busy(rx->patch) || (rx->ended && st != DELTA_DONE)) {
		link_pause_read(l, 1);	/* the pump writes the rest first */
		link_pump_soon(l);
	}
}

void
recv_file_data(struct link *l, const struct wire_chunk *c)
{
	struct rx	*rx;
	char		 key[32], err[512];

	if ((rx = pmap_get(l->rx, rx_key(c->id, key, sizeof(key)))) == NULL ||
	    rx->ended) {
		link_close(l, "FILE_DATA for transfer %" PRIu64 ", which is not open",
		    c->id);
		return;
	}
	rx->got += c->len;
	if (rx->skip)
		return;
	if (rx->ftype == MF_LINK) {
		if (rx->target.len + c->len > rx->size)
			rx_skip(rx, WIRE_ST_STALE, "%s: more target than announced",
			    rx->path);
		else
			buf_add(&rx->target, c->data, c->len);
		return;
	}
	if (rx->kind == WIRE_KIND_DELTA) {
		recv_patch_step(l, rx, c->data, c->len);
		return;
	}
	if (rx->kind == WIRE_KIND_APPEND && rx->append_off == rx->size) {
		rx_skip(rx, WIRE_ST_PROTO, "%s: data for an unchanged file", rx->path);
		return;
	}
	if (rx->append_off + rx->tmp.written + rx->body.len + c->len > rx->size) {
		rx_skip(rx, WIRE_ST_STALE, "%s: more bytes than announced", rx->path);
		return;
	}
	if (rx->kind == WIRE_KIND_WHOLE && c->digest != NULL && rx->got == c->len &&
	    c->len == rx->size) {
		/* All of it in one chunk: the digest its MAC was checked with
		 * is its hash (wire.c), no second pass over the bytes. */
		memcpy(rx->data_sha, c->digest, MF_HASH_LEN);
		rx->data_sha_ok = 1;
	} else if (rx->kind == WIRE_KIND_WHOLE) {
		if (rx->md == NULL) {
			rx->md = (struct evp_md_ctx_st *)EVP_MD_CTX_new();
			EVP_DigestInit_ex((EVP_MD_CTX *)rx->md, rx_md_sha256(), NULL);
		}
		EVP_DigestUpdate((EVP_MD_CTX *)rx->md, c->data, c->len);
	}
	if (rx->mem)
		buf_add(&rx->body, c->data, c->len);
	else if (apply_tmp_write(&rx->tmp, c->data, c->len, err, sizeof(err)) == -1)
		rx_skip_errno(rx, err);
}

/* Attributes only: the content must be here already (hash proves it). */
static void
rx_finish_same(struct link *l, struct rx *rx)
{
	struct spoolsync	*sp = l->sp;
	struct st_rec		*r = state_get(sp->st, rx->path);
	struct apply_meta	 m;
	struct stat		 st;
	unsigned char		 h[MF_HASH_LEN];
	char			 err[512];
	int			 ok = 0;

	if (sync_lstat(sp, rx->path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size == rx->size) {
		if (r != NULL && !r->deleted && r->hash_ok && r->ino ==
		    (uint64_t)st.st_ino && r->size == rx->size &&
		    r->ctime_ns == (int64_t)st.st_ctim.tv_sec * 1000000000LL +
		    st.st_ctim.tv_nsec)
			ok = memcmp(r->hash, rx->sha, MF_HASH_LEN) == 0;
		else if (sync_read_small(sp, rx->path, NULL, h, &st) == 0)
			ok = memcmp(h, rx->sha, MF_HASH_LEN) == 0;
	}
	if (!ok) {
		rx_done(l, rx, WIRE_ST_STALE, "the content here differs");
		return;
	}
	recv_meta(sp, &rx->attr, &m);
	if (apply_set_meta(sp->rootfd, rx->path, &m, err, sizeof(err)) == -1) {
		rx_done(l, rx, recv_status_of(errno), err);
		return;
	}
	recv_record(sp, rx->path, &rx->vv, rx->sha);
	rx_done(l, rx, WIRE_ST_OK, NULL);
}

static void
rx_finish_link(struct link *l, struct rx *rx)
{
	struct spoolsync	*sp = l->sp;
	struct apply_meta	 m;
	unsigned char		 h[MF_HASH_LEN];
	unsigned int		 hl;
	char			 err[512];

	EVP_Digest(rx->target.data, rx->target.len, h, &hl, rx_md_sha256(), NULL);
	if (rx->target.len != rx->size || memchr(rx->target.data, '\0',
	    rx->target.len) != NULL || memcmp(h, rx->sha, MF_HASH_LEN) != 0) {
		rx_done(l, rx, WIRE_ST_STALE, "symlink target does not match");
		return;
	}
	if (rx->conflict) {
		rx_done(l, rx, WIRE_ST_CONFLICT, "this node's version won");
		return;
	}
	recv_meta(sp, &rx->attr, &m);
	m.set &= ~APPLY_MODE;
	if (apply_symlink(sp->rootfd, rx->path, rx->target.data, &m, err,
	    sizeof(err)) == -1) {
		rx_done(l, rx, recv_status_of(errno), err);
		return;
	}
	recv_record(sp, rx->path, &rx->vv, rx->sha);
	l->peer->files_received++;
	sp->applied++;
	rx_done(l, rx, WIRE_ST_OK, NULL);
}

/* A directory where the file goes: removed if this node may. */
int
rx_clear_way(struct link *l, struct rx *rx, char *err, size_t errlen)
{
	struct stat	st;
	int		rv;

	/* The temp file's directory is open already: one fstatat. */
	rv = rx->tmp_open ? fstatat(rx->tmp.dirfd, rx->tmp.leaf, &st,
	    AT_SYMLINK_NOFOLLOW) : sync_lstat(l->sp, rx->path, &st);
	if (rv == -1 || !S_ISDIR(st.st_mode))
		return 0;
	if (apply_delete(l->sp->rootfd, rx->path, l->sp->mode == MODE_RECEIVE,
	    err, errlen) == -1)
		return -1;
	recv_forget_tree(l->sp, rx->path);
	return 0;
}

static void
rx_finish_file(struct link *l, struct rx *rx)
{
	struct spoolsync	*sp = l->sp;
	struct apply_meta	 m;
	unsigned char		 h[MF_HASH_LEN];
	unsigned int		 hl;
	uint64_t		 written;
	char			 err[512];

	if (rx->kind == WIRE_KIND_DELTA) {
		struct delta_stats	ds;

		delta_job_stats(rx->patch, &ds);
		written = ds.out_bytes;
		if (delta_job_digest(rx->patch, h) == -1)
			memset(h, 0, sizeof(h));
	} else if (rx->kind == WIRE_KIND_APPEND) {
		written = rx->append_off + rx->tmp.written;
		memcpy(h, rx->sha, MF_HASH_LEN);	/* the commit worker checks */
	} else {
		written = rx->mem ? rx->body.len : rx->tmp.written;
		if (rx->data_sha_ok)	/* all its bytes came in that chunk */
			memcpy(h, rx->data_sha, MF_HASH_LEN);
		else if (rx->md != NULL)
			EVP_DigestFinal_ex((EVP_MD_CTX *)rx->md, h, &hl);
		else		/* no data came: an empty file */
			EVP_Digest("", 0, h, &hl, rx_md_sha256(), NULL);
	}
	if (written != rx->size || memcmp(h, rx->sha, MF_HASH_LEN) != 0) {
		rx_done(l, rx, WIRE_ST_STALE, "content check failed (changed while "
		    "sent, or a bogus delta)");
		return;
	}
	recv_meta(sp, &rx->attr, &m);
	if (rx->conflict) {
		/* Ours won: the committer keeps theirs (an append's old bytes
		 * put in first), never placed, then acks CONFLICT. */
		recv_commit(l, rx, &m);
		return;
	}
	if (!rx->mem && rx_clear_way(l, rx, err, sizeof(err)) == -1) {
		rx_done(l, rx, recv_status_of(errno), err);
		return;
	}
	recv_commit(l, rx, &m);
}

static void
rx_finish(struct link *l, struct rx *rx)
{
	if (rx->skip)
		rx_done(l, rx, rx->status, rx->text[0] ? rx->text : NULL);
	else if (rx->ftype == MF_LINK)
		rx_finish_link(l, rx);
	else if (rx->kind == WIRE_KIND_APPEND && rx->append_off == rx->size)
		rx_finish_same(l, rx);
	else
		rx_finish_file(l, rx);
}

void
recv_file_end(struct link *l, uint64_t xfer)
{
	struct rx	*rx;
	char		 key[32];

	if ((rx = pmap_get(l->rx, rx_key(xfer, key, sizeof(key)))) == NULL ||
	    rx->ended) {
		link_close(l, "FILE_END for transfer %" PRIu64 ", which is not open",
		    xfer);
		return;
	}
	rx->ended = 1;
	if (!rx->skip && rx->patch != NULL) {
		recv_patch_step(l, rx, NULL, 0);
		if (!rx->skip && delta_job_busy(rx->patch))
			return;		/* the pump finishes it */
	}
	rx_finish(l, rx);
}

/* The patch jobs that still have output to write; done ones finish. */
static int
recv_pump_patches(struct link *l, size_t *budget)
{
	struct pmap_iter	 it = { 0, NULL };
	struct rx		*rx, **done = NULL;
	enum delta_status	 st;
	size_t			 ndone = 0;
	int			 busy = 0;
	char			 err[256];
	void			*val;

	while (pmap_next(l->rx, &it, NULL, &val)) {
		rx = val;
		if (rx->skip || rx->patch == NULL || (!rx->ended &&
		    !delta_job_busy(rx->patch)))
			continue;
		st = DELTA_MORE;
		while (*budget > 0 && delta_job_busy(rx->patch)) {
			st = delta_job_step(rx->patch, NULL, 0, rx->ended, NULL,
			    RECV_PATCH_OUT, err, sizeof(err));
			*budget = *budget > RECV_PATCH_OUT ? *budget - RECV_PATCH_OUT : 0;
			if (st != DELTA_MORE)
				break;
		}
		if (st == DELTA_ERROR)
			rx_skip(rx, WIRE_ST_STALE, "%s: %s", rx->path, err);
		if (rx->ended && (rx->skip || !delta_job_busy(rx->patch))) {
			done = xreallocarray(done, ndone + 1, sizeof(*done));
			done[ndone++] = rx;
		} else if (!rx->skip && delta_job_busy(rx->patch))
			busy = 1;
	}
	for (size_t i = 0; i < ndone && link_alive(l); i++)
		rx_finish(l, done[i]);
	free(done);
	return busy;
}

/* Signatures for SIG_REQ. */

static void
sigjob_free(struct sigjob *sj)
{
	delta_job_free(sj->job);
	if (sj->fd != -1)
		close(sj->fd);
	buf_free(&sj->out);
	buf_free(&sj->all);
	free(sj->path);
	free(sj);
}

/* A signature made ahead, for a file still exactly as it was then. */
static void
recv_sig_cached(struct link *l, uint64_t xfer, const struct buf *sig)
{
	struct wire_msg	 m;
	size_t		 off = 0, k;

	do {
		k = sig->len - off < WIRE_CHUNK_MAX ? sig->len - off : WIRE_CHUNK_MAX;
		msg_init(&m, WIRE_SIG);
		m.sig.id = xfer;
		m.sig.data = (const unsigned char *)sig->data + off;
		m.sig.len = k;
		m.sig.last = off + k == sig->len;
		if (link_send(l, &m) == -1)
			return;
		off += k;
	} while (off < sig->len);
}

/* A signature made on demand serves the next request too, if it held still. */
static void
recv_sig_keep(struct spoolsync *sp, struct sigjob *sj)
{
	struct stat	st;

	if (sj->cache && fstat(sj->fd, &st) == 0 && sigcache_same(&sj->key, &st))
		sigcache_put(sp->sigs, sj->path, &sj->key, sj->all.data, sj->all.len);
}

void
recv_sig_req(struct link *l, const struct wire_sig_req *sr)
{
	struct spoolsync	*sp = l->sp;
	struct sigjob		*sj;
	const struct buf	*cached;
	struct stat		 st;
	char			 err[512];
	int			 fd;

	if (recv_refused(l, sr->path, err, sizeof(err))) {
		recv_ack(l, WIRE_REF_XFER, sr->xfer, WIRE_ST_REFUSED, err);
		return;
	}
	if (l->nsigs >= SYNC_SIGS_MAX) {
		recv_ack(l, WIRE_REF_XFER, sr->xfer, WIRE_ST_STALE,
		    "too many signatures at once: send it whole");
		return;
	}
	fd = apply_open_basis(sp->rootfd, sr->path, err, sizeof(err));
	if (fd == -1 || fstat(fd, &st) == -1) {
		if (fd != -1)
			close(fd);
		recv_ack(l, WIRE_REF_XFER, sr->xfer, WIRE_ST_STALE, "no basis here");
		return;
	}
	if ((cached = sigcache_get(sp->sigs, sr->path, &st)) != NULL) {
		log_debug("%s: signature made ahead (%zu bytes)", sr->path,
		    cached->len);
		close(fd);
		recv_sig_cached(l, sr->xfer, cached);
		return;
	}
	sj = xcalloc(1, sizeof(*sj));
	sj->xfer = sr->xfer;
	sj->fd = fd;
	buf_init(&sj->out);
	buf_init(&sj->all);
	if (st.st_size > SYNC_SMALL_MAX && recv_sigcache(sp) != NULL &&
	    sigcache_settled_in_ns(&st, sp_now_real_ns()) == 0) {
		sj->cache = 1;
		sj->path = xstrdup(sr->path);
		sigcache_key_of(&st, &sj->key);
	}
	sj->job = delta_sig_begin(fd, st.st_size, delta_block_len_for_wire(st.st_size),
	    err, sizeof(err));
	if (sj->job == NULL) {
		sigjob_free(sj);
		recv_ack(l, WIRE_REF_XFER, sr->xfer, WIRE_ST_STALE, err);
		return;
	}
	TAILQ_INSERT_TAIL(&l->sigs, sj, entry);
	l->nsigs++;
	link_pump_soon(l);
}

static void
recv_sig_send(struct link *l, struct sigjob *sj, int last)
{
	struct wire_msg	 m;
	const char	*p = sj->out.data;
	size_t		 n = sj->out.len, k;

	if (sj->cache)
		buf_add(&sj->all, sj->out.data, sj->out.len);
	do {
		k = n < WIRE_CHUNK_MAX ? n : WIRE_CHUNK_MAX;
		msg_init(&m, WIRE_SIG);
		m.sig.id = sj->xfer;
		m.sig.data = (const unsigned char *)p;
		m.sig.len = k;
		m.sig.last = last && k == n;
		if (link_send(l, &m) == -1)
			return;
		p += k;
		n -= k;
	} while (n > 0);
	buf_reset(&sj->out);
}

static void
recv_pump_sigs(struct link *l, size_t *budget)
{
	struct sigjob		*sj, *next;
	enum delta_status	 st;
	char			 err[256];

	for (sj = TAILQ_FIRST(&l->sigs); sj != NULL; sj = next) {
		next = TAILQ_NEXT(sj, entry);
		while (*budget > 0 && !link_out_high(l)) {
			st = delta_job_step(sj->job, NULL, 0, 0, &sj->out, 256 * 1024,
			    err, sizeof(err));
			*budget = *budget > 256 * 1024 ? *budget - 256 * 1024 : 0;
			if (st == DELTA_ERROR) {
				recv_ack(l, WIRE_REF_XFER, sj->xfer, WIRE_ST_STALE, err);
				sj->done = 1;
				break;
			}
			if (st == DELTA_DONE || sj->out.len >= WIRE_CHUNK_MAX / 2) {
				recv_sig_send(l, sj, st == DELTA_DONE);
				if (!link_alive(l))
					return;
			}
			if (st == DELTA_DONE) {
				recv_sig_keep(l->sp, sj);
				sj->done = 1;
				break;
			}
		}
		if (!sj->done)
			return;
		TAILQ_REMOVE(&l->sigs, sj, entry);
		l->nsigs--;
		sigjob_free(sj);
	}
}

void
recv_pump(struct link *l, size_t *budget)
{
	int	busy;

	recv_pump_sigs(l, budget);
	if (!link_alive(l))
		return;
	busy = recv_pump_patches(l, budget);
	if (!link_alive(l))
		return;
	if (busy)
		link_pump_soon(l);
	else if (!recv_commit_full(l))
		link_pause_read(l, 0);
	if (!TAILQ_EMPTY(&l->sigs) && *budget == 0)
		link_pump_soon(l);
}

int
recv_busy(const struct link *l)
{
	return pmap_count(l->rx) > 0 || !TAILQ_EMPTY(&l->sigs) ||
	    !TAILQ_EMPTY(&l->commits);
}

void
recv_link_down(struct link *l)
{
	struct sigjob	*sj;
	struct commit	*c;

	/* Commits finish on their own; their acks have nowhere to go. */
	while ((c = TAILQ_FIRST(&l->commits)) != NULL) {
		TAILQ_REMOVE(&l->commits, c, entry);
		c->l = NULL;
	}
	l->ncommits = l->ncommits_fds = 0;
	l->commit_mem = 0;
	pmap_free(l->rx, (void (*)(void *))rx_free);
	l->rx = pmap_new();
	while ((sj = TAILQ_FIRST(&l->sigs)) != NULL) {
		TAILQ_REMOVE(&l->sigs, sj, entry);
		sigjob_free(sj);
	}
	l->nsigs = 0;
}
