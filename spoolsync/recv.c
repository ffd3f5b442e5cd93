/*
 * recv.c: changes arriving from a peer (files: recvfile.c).  Each is decided
 * first (receive mode takes everything; bidirectional mode compares version
 * vectors: newer applies, older is refused and ours goes back, concurrent
 * is a conflict with a winner both sides pick alike), then applied with
 * apply.c (temp file, fsync, rename, directory fsync) and only then acked.  The
 * record of what was applied is what makes the echo of our own write stop
 * at sync_local_check.  Nothing a peer sends can reach outside the root:
 * paths were checked by the decoder and every open is confined (path.c).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "engine.h"

#define RECV_COPY_BUF	(256 * 1024)

static void
msg_init(struct wire_msg *m, enum wire_type type)
{
	memset(m, 0, offsetof(struct wire_msg, vv_store));
	m->type = type;
}

void
recv_ack(struct link *l, int kind, uint64_t ref, int status, const char *text)
{
	struct wire_msg	m;

	msg_init(&m, WIRE_ACK);
	m.ack.ref_kind = (uint8_t)kind;
	m.ack.ref = ref;
	m.ack.status = (uint16_t)status;
	m.ack.text = text;
	link_send(l, &m);
}

int
recv_status_of(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
		return WIRE_ST_NOSPACE;
	case ELOOP:
	case ENOTDIR:
	case EISDIR:
	case EEXIST:
	case ENOTEMPTY:
	case ENAMETOOLONG:
	case EXDEV:
		return WIRE_ST_PATH;
	default:
		return WIRE_ST_IO;
	}
}

/* Refused outright: a sending node takes no changes; excluded paths never. */
int
recv_refused(struct link *l, const char *path, char *why, size_t len)
{
	if (l->sp->mode == MODE_SEND) {
		snprintf(why, len, "%s is the sending side: it takes no changes",
		    l->sp->node);
		return 1;
	}
	if (exclude_match(l->sp->ex, path)) {
		snprintf(why, len, "%s: excluded on %s", path, l->sp->node);
		return 1;
	}
	return 0;
}

void
recv_meta(struct spoolsync *sp, const struct wire_attr *a, struct apply_meta *m)
{
	m->set = APPLY_MODE | APPLY_MTIME | (sp->is_root ? APPLY_OWNER : 0);
	m->mode = a->mode;
	m->uid = a->uid;
	m->gid = a->gid;
	m->mtime_ns = a->mtime_ns;
}

/* Conflicts. */

static void
recv_conflict_path(struct spoolsync *sp, const char *node, const char *path,
    char **out)
{
	struct timespec	 ts;
	struct tm	 tm;
	char		 when[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y%m%dT%H%M%S", &tm);
	xasprintf(out, "%s/%s/%s.%s.%09ldZ", sp->conflict_dir, node[0] ? node : "_",
	    path, when, ts.tv_nsec);
}

static int
recv_mkdirs_for(const char *file)
{
	char	*p = xstrdup(file), *s;
	int	 rv = 0;

	for (s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) == -1 && errno != EEXIST)
			rv = -1;
		*s = '/';
	}
	free(p);
	return rv;
}

/* The losing version (the bytes of SRCFD) kept under conflict_dir. */
void
recv_save_loser_fd(struct spoolsync *sp, int srcfd, const char *node,
    const char *path)
{
	char	*dest, *b;
	ssize_t	 n;
	off_t	 off = 0;
	int	 fd, ok = 1;

	recv_conflict_path(sp, node, path, &dest);
	recv_mkdirs_for(dest);
	fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		log_warnx("conflict on %s: cannot keep %s's version at %s: %s",
		    path, node, dest, strerror(errno));
		free(dest);
		return;
	}
	b = xmalloc(RECV_COPY_BUF);
	while ((n = pread(srcfd, b, RECV_COPY_BUF, off)) > 0) {
		if (write(fd, b, (size_t)n) != n) {
			ok = 0;
			break;
		}
		off += n;
	}
	if (n == -1 || fsync(fd) == -1)
		ok = 0;
	close(fd);
	free(b);
	if (ok)
		log_warnx("conflict on %s: %s's version lost; kept as %s", path,
		    node, dest);
	else
		log_warnx("conflict on %s: keeping %s's version at %s failed", path,
		    node, dest);
	free(dest);
}

void
recv_save_loser_local(struct spoolsync *sp, const char *node, const char *path)
{
	char		err[256];
	struct stat	st;
	int		fd;

	fd = path_open(sp->rootfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, err,
	    sizeof(err));
	if (fd == -1)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		recv_save_loser_fd(sp, fd, node, path);
	close(fd);
}

/*
 * Bidirectional: may the incoming version (IN, with what it holds) replace
 * ours?  OUT gets the vector the record takes.  On a conflict *LOSER names
 * the losing version's author and *LOSER_LOCAL says whether it is ours.
 */
enum recv_decision
recv_decide(struct link *l, const char *path, const struct vv *in, int in_deleted,
    uint8_t in_type, uint64_t in_size, const unsigned char *in_hash,
    int64_t in_mtime, struct vv *out, char *loser, size_t loserlen,
    int *loser_local)
{
	struct spoolsync	*sp = l->sp;
	struct peer		*p = l->peer;
	struct st_rec		*r;
	struct vv		 merged = { NULL, 0 };
	enum vv_order		 ord;
	const char		*ain, *aloc;
	int			 same, in_wins, c;

	*loser_local = -1;
	loser[0] = '\0';
	vv_copy(out, in);
	if (sp->mode != MODE_BIDIR)
		return DEC_APPLY;
	/* A local change not shipped yet must take part: look first. */
	if (sync_local_check(sp, path))
		sync_enqueue_all(sp, path);
	if ((r = state_get(sp->st, path)) == NULL)
		return DEC_APPLY;
	ord = vv_compare(in, &r->vv);
	if (ord == VV_AFTER)
		return DEC_APPLY;
	if (ord == VV_BEFORE) {
		sync_enqueue(p, path, 0);	/* ours is newer: it goes back */
		return DEC_REJECT;
	}
	if (!in_deleted && in_hash != NULL && r->size == in_size)
		sync_hash_record(sp, r);
	same = (in_deleted && r->deleted) || (!in_deleted && !r->deleted &&
	    r->type == in_type && (in_type == MF_DIR || (r->size == in_size &&
	    r->hash_ok && in_hash != NULL &&
	    memcmp(r->hash, in_hash, MF_HASH_LEN) == 0)));
	vv_copy(&merged, &r->vv);
	vv_merge(&merged, in);
	if (same) {
		vv_copy(out, &merged);
		vv_free(&merged);
		return DEC_NOOP;
	}
	/* A true conflict: the same winner on both sides. */
	ain = vv_author(in, &r->vv);
	aloc = vv_author(&r->vv, in);
	if (in_deleted != r->deleted)
		in_wins = !in_deleted;		/* a write beats a delete */
	else if (in_mtime != r->mtime_ns)
		in_wins = in_mtime > r->mtime_ns;
	else if ((c = strcmp(ain, aloc)) != 0)
		in_wins = c > 0;
	else
		in_wins = in_hash != NULL && memcmp(in_hash, r->hash,
		    MF_HASH_LEN) > 0;
	p->conflicts++;
	sp->conflicts++;
	log_warnx("conflict on %s between %s and %s: %s's version wins", path,
	    ain[0] ? ain : p->name, aloc[0] ? aloc : sp->node,
	    in_wins ? (ain[0] ? ain : p->name) : (aloc[0] ? aloc : sp->node));
	if (in_wins) {
		vv_copy(out, &merged);
		snprintf(loser, loserlen, "%s", aloc[0] ? aloc : sp->node);
		*loser_local = r->deleted ? -1 : 1;
		vv_free(&merged);
		return DEC_APPLY;
	}
	vv_free(&r->vv);
	r->vv = merged;
	sync_touch(r);
	state_save(sp->st, r);
	snprintf(loser, loserlen, "%s", ain[0] ? ain : p->name);
	*loser_local = in_deleted ? -1 : 0;
	sync_enqueue(p, path, 0);
	return DEC_REJECT;
}

/* The record of what was just applied at PATH (what stops its echo). */
struct st_rec *
recv_record(struct spoolsync *sp, const char *path, const struct vv *vv,
    const unsigned char *hash)
{
	struct stat	st;

	if (sync_lstat(sp, path, &st) == -1)
		return NULL;
	return recv_record_stat(sp, path, vv, hash, &st);
}

/* The same, with the stat its committer took right after the rename. */
struct st_rec *
recv_record_stat(struct spoolsync *sp, const char *path, const struct vv *vv,
    const unsigned char *hash, const struct stat *st)
{
	struct st_rec	*r;

	r = state_lookup_or_new(sp->st, path);
	sync_rec_fill(r, st);
	if (hash != NULL) {
		memcpy(r->hash, hash, MF_HASH_LEN);
		r->hash_ok = 1;
	} else
		r->hash_ok = r->type == MF_DIR;
	r->deleted = 0;
	free(r->acked);
	r->acked = NULL;
	vv_copy(&r->vv, vv);
	sync_touch(r);
	state_save(sp->st, r);
	return r;
}

void
recv_forget_tree(struct spoolsync *sp, const char *path)
{
	struct st_rec	**v;
	size_t		  n;
	char		**paths;

	n = state_collect(sp->st, path, &v);
	paths = xcalloc(n + 1, sizeof(*paths));
	for (size_t i = 0; i < n; i++)
		paths[i] = xstrdup(v[i]->path);
	free(v);
	for (size_t i = 0; i < n; i++) {
		state_del(sp->st, paths[i]);
		free(paths[i]);
	}
	free(paths);
}

static void
recv_tombstone(struct spoolsync *sp, const char *path, int is_dir,
    const struct vv *vv)
{
	struct st_rec	*r = state_lookup_or_new(sp->st, path);

	if (r->type == 0)
		r->type = is_dir ? MF_DIR : MF_FILE;
	r->deleted = 1;
	r->deleted_ns = sp_now_real_ns();
	r->hash_ok = 0;
	vv_copy(&r->vv, vv);
	free(r->acked);
	r->acked = NULL;
	sync_touch(r);
	state_save(sp->st, r);
}

/* The simple changes: acked by their frame's sequence number. */

static void
recv_delete(struct link *l, const struct wire_msg *m)
{
	struct spoolsync	*sp = l->sp;
	const struct wire_delete *d = &m->delete;
	struct vv		 in = { NULL, 0 }, out = { NULL, 0 };
	char			 why[600], loser[WIRE_NAME_MAX + 1];
	int			 loser_local, status = WIRE_ST_OK;
	enum recv_decision	 dec;

	if (recv_refused(l, d->path, why, sizeof(why))) {
		recv_ack(l, WIRE_REF_SEQ, m->seq, WIRE_ST_REFUSED, why);
		return;
	}
	vv_from_wire(&in, &d->vv);
	dec = recv_decide(l, d->path, &in, 1, d->is_dir ? MF_DIR : MF_FILE, 0,
	    NULL, 0, &out, loser, sizeof(loser), &loser_local);
	why[0] = '\0';
	if (dec == DEC_REJECT)
		status = WIRE_ST_CONFLICT;
	else if (dec == DEC_APPLY && sp->mode == MODE_RECEIVE) {
		if (apply_delete(sp->rootfd, d->path, 1, why, sizeof(why)) == -1)
			status = recv_status_of(errno);
		else
			recv_forget_tree(sp, d->path);
	} else if (dec == DEC_APPLY) {
		/* Never recursive here: what remains is newer than the delete. */
		if (apply_delete(sp->rootfd, d->path, 0, why, sizeof(why)) == -1) {
			if (errno != ENOTEMPTY && errno != EEXIST)
				status = recv_status_of(errno);
			else
				sync_enqueue(l->peer, d->path, 0);
			why[0] = '\0';
		} else
			recv_tombstone(sp, d->path, d->is_dir, &out);
	} else if (dec == DEC_NOOP && sp->mode == MODE_BIDIR) {
		struct st_rec	*r = state_get(sp->st, d->path);

		if (r != NULL && vv_compare(&r->vv, &out) != VV_EQUAL) {
			vv_copy(&r->vv, &out);
			state_save(sp->st, r);
		}
	}
	vv_free(&in);
	vv_free(&out);
	recv_ack(l, WIRE_REF_SEQ, m->seq, status, why[0] ? why : NULL);
}

/* Bidirectional: the hint applies only to exactly the version it moved. */
static int
recv_rename_ok(struct link *l, const struct wire_rename *rn)
{
	struct spoolsync	*sp = l->sp;
	struct st_rec		*fr = state_get(sp->st, rn->from);
	struct stat		 st, ft;
	struct vv		 in = { NULL, 0 };
	int			 ok;

	if (sync_lstat(sp, rn->to, &st) == 0 || errno != ENOENT)
		return 0;
	if (sync_lstat(sp, rn->from, &ft) == -1)
		return 0;
	if (rn->is_dir)
		return S_ISDIR(ft.st_mode);
	if (fr == NULL || fr->deleted || fr->ino != (uint64_t)ft.st_ino)
		return 0;
	vv_from_wire(&in, &rn->vv);
	ok = vv_compare(&fr->vv, &in) == VV_EQUAL;
	vv_free(&in);
	return ok;
}

/* The records follow the move: same versions at the new paths. */
static void
recv_rename_records(struct spoolsync *sp, const char *from, const char *to)
{
	struct st_rec	**v, *r, *tr;
	struct stat	  st;
	size_t		  n, flen = strlen(from);
	char		**paths, *q;

	n = state_collect(sp->st, from, &v);
	paths = xcalloc(n + 1, sizeof(*paths));
	for (size_t i = 0; i < n; i++)
		paths[i] = xstrdup(v[i]->path);
	free(v);
	for (size_t i = 0; i < n; i++) {
		r = state_get(sp->st, paths[i]);
		if (r != NULL && !r->deleted) {
			xasprintf(&q, "%s%s", to, paths[i] + flen);
			if (sync_lstat(sp, q, &st) == 0) {
				tr = state_lookup_or_new(sp->st, q);
				r = state_get(sp->st, paths[i]);
				vv_copy(&tr->vv, &r->vv);
				tr->hash_ok = r->hash_ok;
				memcpy(tr->hash, r->hash, MF_HASH_LEN);
				sync_rec_fill(tr, &st);
				tr->deleted = 0;
				sync_touch(tr);
				state_save(sp->st, tr);
			}
			free(q);
			r = state_get(sp->st, paths[i]);
			if (sp->mode == MODE_RECEIVE)
				state_del(sp->st, paths[i]);
			else {
				r->deleted = 1;
				r->deleted_ns = sp_now_real_ns();
				sync_touch(r);
				state_save(sp->st, r);
			}
		}
		free(paths[i]);
	}
	free(paths);
}

static void
recv_rename(struct link *l, const struct wire_msg *m)
{
	struct spoolsync	*sp = l->sp;
	const struct wire_rename *rn = &m->rename;
	struct stat		 st;
	char			 why[600];

	if (recv_refused(l, rn->from, why, sizeof(why)) ||
	    recv_refused(l, rn->to, why, sizeof(why))) {
		recv_ack(l, WIRE_REF_SEQ, m->seq, WIRE_ST_REFUSED, why);
		return;
	}
	if (sp->mode == MODE_BIDIR && !recv_rename_ok(l, rn)) {
		recv_ack(l, WIRE_REF_SEQ, m->seq, WIRE_ST_OK, "hint not taken");
		return;
	}
	if (sync_lstat(sp, rn->from, &st) == -1) {
		/* Created and moved within one window: the paths follow. */
		recv_ack(l, WIRE_REF_SEQ, m->seq, WIRE_ST_OK, NULL);
		return;
	}
	if (apply_rename(sp->rootfd, rn->from, rn->to, why, sizeof(why)) == -1) {
		recv_ack(l, WIRE_REF_SEQ, m->seq, recv_status_of(errno), why);
		return;
	}
	if (sp->mode == MODE_RECEIVE)
		recv_forget_tree(sp, rn->to);
	recv_rename_records(sp, rn->from, rn->to);
	recv_ack(l, WIRE_REF_SEQ, m->seq, WIRE_ST_OK, NULL);
}

/*
 * Bidirectional: a directory arrives where ours is a file (or a symlink).
 * MKDIR carries no version vector, so this is the rule recv_decide applies
 * on the peer to our file against its directory, mirrored: the newer
 * mtime, then the greater node name.  A peer that held our version and
 * replaced it is no conflict.  The losing file is kept under conflict_dir
 * before the directory replaces it, as a losing file's bytes always are.
 */
static int
recv_dir_wins(struct link *l, const char *path, const struct wire_attr *a)
{
	struct spoolsync	*sp = l->sp;
	struct peer		*p = l->peer;
	struct st_rec		*r;
	struct pk		*k;
	int			 wins;

	if (sync_local_check(sp, path))	/* ours, as it is now, takes part */
		sync_enqueue_all(sp, path);
	if ((r = state_get(sp->st, path)) == NULL || r->deleted ||
	    r->type == MF_DIR)
		return 1;
	k = pmap_get(p->pk, path);
	if (k != NULL && k->type == r->type && k->size == r->size &&
	    r->hash_ok && memcmp(k->hash, r->hash, MF_HASH_LEN) == 0)
		return 1;
	wins = a->mtime_ns > r->mtime_ns || (a->mtime_ns == r->mtime_ns &&
	    strcmp(p->name, sp->node) > 0);
	p->conflicts++;
	sp->conflicts++;
	log_warnx("conflict on %s between %s and %s: %s's version wins", path,
	    p->name, sp->node, wins ? p->name : sp->node);
	if (wins)
		recv_save_loser_local(sp, sp->node, path);
	return wins;
}

static void
recv_mkdir(struct link *l, const struct wire_msg *m)
{
	struct spoolsync	*sp = l->sp;
	const struct wire_path_attr *pa = m->type == WIRE_MKDIR ? &m->mkdir : &m->meta;
	struct apply_meta	 am;
	struct st_rec		*r;
	struct stat		 st;
	char			 why[600];
	int			 rv;

	if (recv_refused(l, pa->path, why, sizeof(why))) {
		recv_ack(l, WIRE_REF_SEQ, m->seq, WIRE_ST_REFUSED, why);
		return;
	}
	recv_meta(sp, &pa->attr, &am);
	if (m->type == WIRE_MKDIR) {
		if (sync_lstat(sp, pa->path, &st) == 0 && !S_ISDIR(st.st_mode)) {
			if (sp->mode != MODE_RECEIVE &&
			    !recv_dir_wins(l, pa->path, &pa->attr)) {
				recv_ack(l, WIRE_REF_SEQ, m->seq, WIRE_ST_CONFLICT,
				    "this node's version won");
				return;
			}
			if (apply_delete(sp->rootfd, pa->path, 0, why,
			    sizeof(why)) == -1) {
				recv_ack(l, WIRE_REF_SEQ, m->seq,
				    recv_status_of(errno), why);
				return;
			}
		}
		am.set &= ~APPLY_MTIME;	/* a directory's mtime is its own */
		rv = apply_mkdir(sp->rootfd, pa->path, &am, why, sizeof(why));
	} else
		rv = apply_set_meta(sp->rootfd, pa->path, &am, why, sizeof(why));
	if (rv == -1) {
		recv_ack(l, WIRE_REF_SEQ, m->seq, recv_status_of(errno), why);
		return;
	}
	r = state_get(sp->st, pa->path);
	recv_record(sp, pa->path, r != NULL ? &r->vv : &(struct vv){ NULL, 0 },
	    r != NULL && r->hash_ok && m->type == WIRE_META ? r->hash : NULL);
	recv_ack(l, WIRE_REF_SEQ, m->seq, WIRE_ST_OK, NULL);
}

void
recv_msg(struct link *l, struct wire_msg *m)
{
	switch (m->type) {
	case WIRE_SIG_REQ:
		recv_sig_req(l, &m->sig_req);
		break;
	case WIRE_FILE_BEGIN:
		recv_file_begin(l, &m->file_begin);
		break;
	case WIRE_FILE_DATA:
		recv_file_data(l, &m->file_data);
		break;
	case WIRE_FILE_END:
		recv_file_end(l, m->file_end.xfer);
		break;
	case WIRE_DELETE:
		recv_delete(l, m);
		break;
	case WIRE_RENAME:
		recv_rename(l, m);
		break;
	case WIRE_MKDIR:
	case WIRE_META:
		recv_mkdir(l, m);
		break;
	default:
		link_close(l, "unexpected %s frame", wire_type_name(m->type));
		break;
	}
}
