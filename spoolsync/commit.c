/*
 * commit.c: received files made durable and put in place, off the loop.
 * A batch's temp files are written and sealed on one worker; a second
 * worker, in batch order, makes them durable (one syncfs for many files, or
 * fsync for a lone one), renames them, makes the renames durable, and only
 * then does the loop record them and send the acks.  A conflict's losing
 * version is kept under conflict_dir here too, never on the loop: theirs
 * instead of being placed, or ours before theirs replaces it.  Also the
 * signatures made ahead for big files that landed (the next delta's basis).
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "engine.h"

#define COMMIT_GROUP_MIN	4	/* fewer files: each fsynced alone */
#define COMMIT_BATCH_MAX	2048
#define COMMIT_PLACING_MAX	2	/* written batches waiting for their syncfs */
#define RECV_COPY_BUF	(256 * 1024)
#define SIG_PREFETCH_MAX	4	/* signatures made ahead at once */
#define SIG_SETTLE_WAIT_NS	(3 * 1000000000LL)
#define SIG_PREFETCH_SIZE_MAX	(512ULL * 1024 * 1024)	/* bigger: made when asked */


/* An append: the old bytes go in front of the tail, then the whole is checked. */
static int
commit_append(struct commit *c)
{
	struct rx	*rx = c->rx;
	EVP_MD_CTX	*md;
	unsigned char	 h[MF_HASH_LEN], *b;
	unsigned int	 hl;
	uint64_t	 n = 0, tail = rx->tmp.written;
	ssize_t		 r;
	int		 fd, rv = -1;

	if (lseek(rx->tmp.fd, 0, SEEK_SET) == -1 ||
	    apply_tmp_copy(&rx->tmp, rx->basis_fd, rx->append_off, c->err,
	    sizeof(c->err)) == -1) {
		c->e = errno;
		return -1;
	}
	c->e = 0;
	if ((fd = openat(rx->tmp.dirfd, rx->tmp.name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		c->e = errno;
		snprintf(c->err, sizeof(c->err), "%s: reading back: %s", rx->path,
		    strerror(errno));
		return -1;
	}
	b = xmalloc(RECV_COPY_BUF);
	md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	while ((r = pread(fd, b, RECV_COPY_BUF, (off_t)n)) > 0) {
		EVP_DigestUpdate(md, b, (size_t)r);
		n += (uint64_t)r;
	}
	EVP_DigestFinal_ex(md, h, &hl);
	EVP_MD_CTX_free(md);
	free(b);
	close(fd);
	if (r == -1) {
		c->e = errno;
		snprintf(c->err, sizeof(c->err), "%s: reading back: %s", rx->path,
		    strerror(errno));
	} else if (n != rx->size || tail + rx->append_off != rx->size ||
	    memcmp(h, rx->sha, MF_HASH_LEN) != 0) {
		c->stale = 1;
		snprintf(c->err, sizeof(c->err), "%s: the append does not give "
		    "the announced content", rx->path);
	} else
		rv = 0;
	return rv;
}

/*
 * The directories a batch writes in, each opened once (by the committer,
 * beneath the root, no symlink followed) and kept until the batch is
 * placed: a thousand files in one directory cost one walk, not a thousand.
 */
struct cdirs {
	struct pmap	*fds;		/* parent path -> fd + 1 */
};

static int
cdirs_get(struct spoolsync *sp, struct cdirs *d, const char *path, char *err,
    size_t errlen)
{
	char		 dir[PATH_REL_MAX + 1];
	const char	*slash = strrchr(path, '/');
	size_t		 n = slash == NULL ? 0 : (size_t)(slash - path);
	void		*v;
	int		 fd;

	if (n > PATH_REL_MAX)
		n = PATH_REL_MAX;	/* path_valid refuses it anyway */
	memcpy(dir, path, n);
	dir[n] = '\0';
	if ((v = pmap_get(d->fds, dir)) != NULL)
		return (int)(intptr_t)v - 1;
	if ((fd = apply_parent_open(sp->rootfd, path, err, errlen)) == -1)
		return -1;
	pmap_put(d->fds, dir, (void *)(intptr_t)(fd + 1));
	return fd;
}

static void
cdirs_close(struct cdirs *d)
{
	struct pmap_iter	 it = { 0, NULL };
	void			*v;

	if (d->fds == NULL)
		return;
	while (pmap_next(d->fds, &it, NULL, &v))
		close((int)(intptr_t)v - 1);
	pmap_free(d->fds, NULL);
	d->fds = NULL;
}

/*
 * Nameless temp files (apply_tmp_open_anon) hold a descriptor from their
 * write until their batch is placed: at most a third of what the process
 * may open (recv_commit_max has another third), named ones beyond that.
 * Both committer threads count; the loop gives a batch's back when done.
 */
static atomic_size_t	commit_anon_held;

static size_t
commit_anon_max(void)
{
	static atomic_size_t	max;
	struct rlimit		rl;
	size_t			m = atomic_load(&max);

	if (m == 0) {
		m = 256;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
			m = rl.rlim_cur == RLIM_INFINITY ? 65536 : rl.rlim_cur / 3;
		atomic_store(&max, m);
	}
	return m;
}

/*
 * A small file held in memory: its temp file now, on the committer,
 * nameless while descriptors allow.  A directory in the way makes the
 * placing fail (EISDIR): the loop clears it (and forgets its records) and
 * has the file sent again.
 */
static int
commit_write_mem(struct commit *c, struct cdirs *d, size_t *nanon)
{
	struct rx	*rx = c->rx;
	int		 dfd, rv, anon;

	anon = atomic_load(&commit_anon_held) < commit_anon_max();
	if ((dfd = cdirs_get(c->sp, d, rx->path, c->err, sizeof(c->err))) == -1)
		rv = -1;
	else if (anon)
		rv = apply_tmp_open_anon(dfd, rx->path, &c->m, &rx->tmp, c->err,
		    sizeof(c->err));
	else
		rv = apply_tmp_open_in(dfd, rx->path, &rx->tmp, c->err,
		    sizeof(c->err));
	if (rv == -1) {
		/* The directory went away meanwhile (a delete on the loop):
		 * walked afresh, made again, as if it were the first. */
		if (dfd == -1 || errno != ENOENT || apply_tmp_open(c->sp->rootfd,
		    rx->path, 1, &rx->tmp, c->err, sizeof(c->err)) == -1) {
			c->e = errno;
			return -1;
		}
	}
	if (rx->tmp.anon) {
		atomic_fetch_add(&commit_anon_held, 1);
		(*nanon)++;
	}
	if (apply_tmp_write(&rx->tmp, rx->body.data, rx->body.len, c->err,
	    sizeof(c->err)) == -1) {
		c->e = errno;
		apply_tmp_abort(&rx->tmp);
		return -1;
	}
	return 0;
}

/* Conflicts: the losing version kept, the way every file lands. */

/* CDIR (absolute, outside the root), made if missing, as recv.c did (0700). */
static int
commit_conflict_dir(const char *cdir, char *err, size_t errlen)
{
	char	*p, *s;
	int	 fd;

	if (cdir == NULL || cdir[0] != '/') {
		snprintf(err, errlen, "no conflict_dir");
		return -1;
	}
	p = xstrdup(cdir);
	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		if (s[-1] != '/') {
			char	c = *s;

			*s = '\0';
			(void)mkdir(p, 0700);	/* EEXIST, or open says why */
			*s = c;
		}
		if (*s == '\0')
			break;
	}
	free(p);
	if ((fd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		snprintf(err, errlen, "%s: %s", cdir, strerror(errno));
	return fd;
}

/*
 * The bytes of SRCFD kept as CDIR/NODE/PATH.<UTC time>Z: a temp file beside
 * it, fsync, rename, directory fsync (apply.c), confined beneath CDIR.  On
 * the committer's thread, so a big loser never holds up the loop; it logs
 * (log.c writes a line at once).
 */
static void
commit_keep(const char *cdir, int srcfd, const char *node, const char *path)
{
	struct apply_tmp	 t;
	struct timespec		 ts;
	struct stat		 st;
	struct tm		 tm;
	char			 when[32], err[512], *rel = NULL;
	int			 cfd = -1;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y%m%dT%H%M%S", &tm);
	xasprintf(&rel, "%s/%s.%s.%09ldZ", node[0] ? node : "_", path, when,
	    ts.tv_nsec);
	if ((cfd = commit_conflict_dir(cdir, err, sizeof(err))) == -1)
		goto fail;
	if (fstat(srcfd, &st) == -1) {
		snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (apply_tmp_open(cfd, rel, 1, &t, err, sizeof(err)) == -1)
		goto fail;
	if (apply_tmp_copy(&t, srcfd, (uint64_t)st.st_size, err,
	    sizeof(err)) == -1) {
		apply_tmp_abort(&t);
		goto fail;
	}
	if (apply_tmp_commit(&t, NULL, err, sizeof(err)) == -1)
		goto fail;
	close(cfd);
	log_warnx("conflict on %s: %s's version lost; kept as %s/%s", path,
	    node, cdir, rel);
	free(rel);
	return;
fail:
	if (cfd != -1)
		close(cfd);
	log_warnx("conflict on %s: keeping %s's version failed: %s", path, node,
	    err);
	free(rel);
}

/* Theirs lost (fully received and checked): kept, and the temp file goes. */
static void
commit_keep_theirs(struct commit *c, const char *cdir)
{
	struct rx	*rx = c->rx;
	int		 fd;

	/* The temp file is write-only: read it back through its name. */
	fd = openat(rx->tmp.dirfd, rx->tmp.name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1)
		log_warnx("conflict on %s: keeping %s's version failed: %s",
		    rx->path, rx->text, strerror(errno));
	else {
		commit_keep(cdir, fd, rx->text, rx->path);
		close(fd);
	}
	apply_tmp_abort(&rx->tmp);
}

/*
 * Theirs won over a version of ours (FILE_BEGIN left its author in
 * rx->text): ours is kept, durably, before stage two renames theirs over
 * it.  What lies there now is what the rename would destroy.
 */
static void
commit_keep_ours(struct commit *c, const char *cdir)
{
	struct rx	*rx = c->rx;
	struct stat	 st;
	int		 fd;

	fd = openat(rx->tmp.dirfd, rx->tmp.leaf, O_RDONLY | O_NOFOLLOW |
	    O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd == -1)
		return;		/* gone meanwhile: nothing to lose */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		commit_keep(cdir, fd, rx->text, rx->path);
	close(fd);
}

/*
 * Commits run in two stages, each on its own thread: the first writes and
 * seals the temp files of a batch, the second makes them durable and
 * renames them (in batch order: one thread, FIFO), so that the next batch
 * is written while this one waits for the journal.
 */

/*
 * Stage one: the temp file holds the content (rc 1), or the commit failed.
 * A conflict's loser is kept here; theirs (rx->conflict) never goes on.
 */
static void
commit_prep(struct commit *c, struct cdirs *d, size_t *nanon, int seal,
    const char *cdir)
{
	struct rx	*rx = c->rx;

	c->ran = 1;
	c->rc = -1;
	if (rx->mem && commit_write_mem(c, d, nanon) == -1)
		return;
	if (rx->kind == WIRE_KIND_APPEND && commit_append(c) == -1) {
		if (rx->conflict)
			log_warnx("conflict on %s: %s's version not kept: %s",
			    rx->path, rx->text, c->err);
		apply_tmp_abort(&rx->tmp);
		return;
	}
	if (rx->conflict) {
		commit_keep_theirs(c, cdir);
		return;
	}
	if (rx->text[0] != '\0')
		commit_keep_ours(c, cdir);
	if (seal && apply_tmp_seal(&rx->tmp, &c->m, c->err,
	    sizeof(c->err)) == -1) {
		c->e = errno;
		return;
	}
	c->rc = 1;
}

/* One file alone: fsync, rename, directory fsync (apply.c). */
static void
commit_one(struct commit *c)
{
	if (c->rc != 1)
		return;
	c->rc = apply_tmp_commit(&c->rx->tmp, &c->m, c->err, sizeof(c->err));
	c->e = errno;
	c->blocked = c->rc == -1 && c->e == EISDIR && c->rx->mem;
}

/*
 * Many files at once: sealed without fsync (stage one), one syncfs makes
 * them all durable, then the renames, and one more syncfs makes those
 * durable.  A few hundred small files cost two journal commits instead of
 * hundreds.
 */
static void
commit_group(struct spoolsync *sp, struct commit **v, size_t n)
{
	struct commit	*c;
	size_t		 i;
	int		 e;

	if (syncfs(sp->rootfd) == -1) {
		e = errno;
		for (i = 0; i < n; i++)
			if (v[i]->rc == 1) {
				apply_tmp_abort(&v[i]->rx->tmp);
				v[i]->rc = -1;
				v[i]->e = e;
				snprintf(v[i]->err, sizeof(v[i]->err), "%s: syncfs: %s",
				    v[i]->rx->path, strerror(e));
			}
		return;
	}
	for (i = 0; i < n; i++) {
		c = v[i];
		if (c->rc != 1)
			continue;
		c->rc = apply_tmp_rename(&c->rx->tmp, c->err, sizeof(c->err));
		c->e = errno;
		c->blocked = c->rc == -1 && c->e == EISDIR && c->rx->mem;
	}
	if (syncfs(sp->rootfd) == -1) {
		e = errno;
		for (i = 0; i < n; i++)
			if (v[i]->rc == 0) {
				v[i]->rc = -1;
				v[i]->e = e;
				snprintf(v[i]->err, sizeof(v[i]->err), "%s: syncfs after "
				    "the rename: %s", v[i]->rx->path, strerror(e));
			}
	}
}

struct cbatch {
	struct spoolsync *sp;
	struct commit	**v;
	size_t		  n;
	struct cdirs	  dirs;
	size_t		  nanon;	/* in commit_anon_held */
	char		 *conflict_dir;	/* the loop's, copied: reload frees it */
};

static void
cbatch_prep_run(void *arg)
{
	struct cbatch	*b = arg;

	b->dirs.fds = pmap_new();
	for (size_t i = 0; i < b->n; i++)
		commit_prep(b->v[i], &b->dirs, &b->nanon,
		    b->n >= COMMIT_GROUP_MIN, b->conflict_dir);
}

static void
cbatch_place_run(void *arg)
{
	struct cbatch	*b = arg;

	if (b->n < COMMIT_GROUP_MIN) {
		for (size_t i = 0; i < b->n; i++)
			commit_one(b->v[i]);
	} else
		commit_group(b->sp, b->v, b->n);
}

/* Signatures made ahead: a big file that landed is the next delta's basis. */

struct sigpre {
	struct spoolsync *sp;
	char		*path;
	int		 fd;
	int		 rc;
	struct sig_key	 key;
	struct buf	 sig;
	char		 err[256];
};

static void
sigpre_run(void *arg)
{
	struct sigpre	*pf = arg;

	pf->rc = sigcache_compute(pf->fd, SIG_SETTLE_WAIT_NS, &pf->sig, &pf->key,
	    pf->err, sizeof(pf->err));
}

static void
sigpre_done(void *arg, int cancelled)
{
	struct sigpre	*pf = arg;

	pf->sp->sig_pending--;
	if (!cancelled && pf->rc == 0)
		sigcache_put(pf->sp->sigs, pf->path, &pf->key, pf->sig.data,
		    pf->sig.len);
	else if (!cancelled && pf->rc == -1)
		log_debug("%s: signature ahead: %s", pf->path, pf->err);
	close(pf->fd);
	buf_free(&pf->sig);
	free(pf->path);
	free(pf);
}

struct sigcache *
recv_sigcache(struct spoolsync *sp)
{
	char	err[256];

	if (sp->sigs == NULL) {
		if ((sp->sig_bg = bg_new(sp->base, 1, err, sizeof(err))) == NULL) {
			log_warnx("signatures ahead: %s", err);
			return NULL;
		}
		sp->sigs = sigcache_new(SIGCACHE_MAX_BYTES);
	}
	return sp->sigs;
}

static void
recv_sig_prefetch(struct spoolsync *sp, const char *path)
{
	struct sigpre	*pf;
	char		 err[512];
	int		 fd;

	if (recv_sigcache(sp) == NULL)
		return;
	sigcache_del(sp->sigs, path);
	if (sp->sig_pending >= SIG_PREFETCH_MAX)
		return;		/* made when asked for instead */
	if ((fd = apply_open_basis(sp->rootfd, path, err, sizeof(err))) == -1)
		return;
	pf = xcalloc(1, sizeof(*pf));
	pf->sp = sp;
	pf->path = xstrdup(path);
	pf->fd = fd;
	buf_init(&pf->sig);
	sp->sig_pending++;
	bg_submit(sp->sig_bg, sigpre_run, sigpre_done, pf);
}

static void
commit_uncount(struct link *l, const struct commit *c)
{
	l->ncommits--;
	l->ncommits_fds -= (size_t)c->fds;
	l->commit_mem -= c->mem;
}

static void
commit_done(struct commit *c, int cancelled)
{
	struct spoolsync	*sp = c->sp;
	struct rx		*rx = c->rx;
	struct link		*l = c->l;
	struct applying		*ap;
	int			 recheck = 0;

	if (l != NULL) {
		TAILQ_REMOVE(&l->commits, c, entry);
		commit_uncount(l, c);
		link_pump_soon(l);	/* reading may resume */
	}
	if (rx->conflict) {
		/* Ours won: nothing was placed; theirs was kept (or dropped
		 * at shutdown).  The conflict was counted when decided. */
		apply_tmp_abort(&rx->tmp);
		if (l != NULL && link_alive(l) && c->ran)
			recv_ack(l, WIRE_REF_XFER, rx->xfer, WIRE_ST_CONFLICT,
			    "this node's version won");
		rx_free(rx);
		free(c);
		return;
	}
	ap = pmap_get(sp->applying, rx->path);
	if (ap != NULL && --ap->n == 0) {
		recheck = ap->recheck;
		free(pmap_del(sp->applying, rx->path));
	}
	if (!c->ran || c->rc == 1) {
		apply_tmp_abort(&rx->tmp);	/* stopped before it was placed */
		if (c->rc == 1) {
			c->rc = -1;
			c->e = ECANCELED;
			snprintf(c->err, sizeof(c->err), "%s: shutting down", rx->path);
		}
	}
	if (c->ran && c->rc == 0) {
		if (rx->tmp.placed_ok)
			recv_record_stat(sp, rx->path, &rx->vv, rx->sha,
			    &rx->tmp.placed);
		else
			recv_record(sp, rx->path, &rx->vv, rx->sha);
		if (!cancelled && rx->size > SYNC_SMALL_MAX &&
		    rx->size <= SIG_PREFETCH_SIZE_MAX)
			recv_sig_prefetch(sp, rx->path);
		sp->applied++;
		if (l != NULL)
			l->peer->files_received++;
		if (sp->m_apply != NULL)
			metric_observe(sp->m_apply, (double)(now_mono_ms() -
			    rx->started_ms) / 1000.0);
	} else
		sp->apply_errors++;
	if (c->blocked && !cancelled && l != NULL && link_alive(l)) {
		char	err[512];

		if (rx_clear_way(l, rx, err, sizeof(err)) == -1)
			snprintf(c->err, sizeof(c->err), "%s", err);
		else
			c->stale = 1;	/* the way is clear: it comes again */
	}
	if (l != NULL && link_alive(l) && c->ran)
		recv_ack(l, WIRE_REF_XFER, rx->xfer, c->rc == 0 ? WIRE_ST_OK :
		    c->stale ? WIRE_ST_STALE : recv_status_of(c->e),
		    c->rc == 0 ? NULL : c->err);
	if (recheck && !cancelled)
		sync_check_and_enqueue(sp, rx->path);
	rx_free(rx);
	free(c);
}

static void	cbatch_start(struct spoolsync *);

static void
cbatch_free(struct cbatch *b)
{
	/* Every temp file is placed or aborted by now (commit_done). */
	atomic_fetch_sub(&commit_anon_held, b->nanon);
	cdirs_close(&b->dirs);
	free(b->conflict_dir);
	free(b->v);
	free(b);
}

/* Placed (or given up at shutdown): recorded, acked. */
static void
cbatch_done(void *arg, int cancelled)
{
	struct cbatch		*b = arg;
	struct spoolsync	*sp = b->sp;

	state_begin(sp->st);	/* the batch's records in one transaction */
	for (size_t i = 0; i < b->n; i++)
		commit_done(b->v[i], cancelled);
	state_commit(sp->st);
	cbatch_free(b);
	sp->commit_placing--;
	if (!cancelled)
		cbatch_start(sp);
}

/* Written: its placing waits behind the batches before it. */
static void
cbatch_prep_done(void *arg, int cancelled)
{
	struct cbatch		*b = arg;
	struct spoolsync	*sp = b->sp;

	sp->commit_running = 0;
	sp->commit_placing++;
	if (cancelled) {
		cbatch_done(b, 1);
		return;
	}
	bg_submit(sp->bg_place, cbatch_place_run, cbatch_done, b);
	cbatch_start(sp);
}

/*
 * Everything waiting goes in the next batch: one batch being written, at
 * most two waiting to be placed, so that batches stay big enough for the
 * syncfs to pay.
 */
static void
cbatch_start(struct spoolsync *sp)
{
	struct cbatch	*b;
	struct commit	*c;
	size_t		 cap = 0;

	if (sp->commit_running || sp->commit_placing >= COMMIT_PLACING_MAX ||
	    TAILQ_EMPTY(&sp->commit_wait))
		return;
	b = xcalloc(1, sizeof(*b));
	b->sp = sp;
	b->conflict_dir = sp->conflict_dir != NULL ? xstrdup(sp->conflict_dir) :
	    NULL;
	/* Sized as it fills: an idle committer takes files a few at a time,
	 * and a full-sized array zeroed for each batch costs more than them. */
	while (b->n < COMMIT_BATCH_MAX && (c = TAILQ_FIRST(&sp->commit_wait)) !=
	    NULL) {
		if (b->n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			b->v = xreallocarray(b->v, cap, sizeof(*b->v));
		}
		TAILQ_REMOVE(&sp->commit_wait, c, wentry);
		b->v[b->n++] = c;
	}
	sp->commit_running = 1;
	bg_submit(sp->bg_commit, cbatch_prep_run, cbatch_prep_done, b);
}

/* Files waiting for the committer hold two descriptors each (small ones
 * none: the committer opens their temp file): at most a third of what the
 * process may open, whatever SYNC_COMMIT_FDS_MAX says. */
size_t
recv_commit_max(void)
{
	static size_t	max;
	struct rlimit	rl;

	if (max == 0) {
		max = SYNC_COMMIT_FDS_MAX;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur !=
		    RLIM_INFINITY && rl.rlim_cur / 6 < max)
			max = rl.rlim_cur / 6 > 16 ? rl.rlim_cur / 6 : 16;
	}
	return max;
}

/*
 * A wide window of small files keeps every stage busy while a batch waits
 * for its syncfs; what they may hold is bounded in files, in descriptors
 * and in bytes.
 */
int
recv_commit_full(const struct link *l)
{
	return l->ncommits >= SYNC_COMMIT_MAX ||
	    l->ncommits_fds >= recv_commit_max() ||
	    l->commit_mem >= SYNC_COMMIT_MEM_MAX;
}

void
recv_commit(struct link *l, struct rx *rx, const struct apply_meta *m)
{
	struct spoolsync	*sp = l->sp;
	struct commit		*c = xcalloc(1, sizeof(*c));
	struct applying		*ap;
	char			 key[32];

	pmap_del(l->rx, rx_key(rx->xfer, key, sizeof(key)));
	rx->tmp_open = 0;	/* the commit owns the temp file now */
	if (!rx->conflict) {	/* a loser kept leaves PATH alone */
		if ((ap = pmap_get(sp->applying, rx->path)) == NULL) {
			ap = xcalloc(1, sizeof(*ap));
			pmap_put(sp->applying, rx->path, ap);
		}
		ap->n++;
	}
	c->sp = sp;
	c->l = l;
	c->rx = rx;
	c->m = *m;
	TAILQ_INSERT_TAIL(&l->commits, c, entry);
	c->fds = !rx->mem;
	c->mem = rx->mem ? rx->body.len : 0;
	l->ncommits++;
	l->ncommits_fds += (size_t)c->fds;
	l->commit_mem += c->mem;
	/* A peer that does not wait for acks does not fill the disk either. */
	if (recv_commit_full(l))
		link_pause_read(l, 1);
	TAILQ_INSERT_TAIL(&sp->commit_wait, c, wentry);
	cbatch_start(sp);
}

/* At the very end: what never reached a committer is dropped. */
void
recv_shutdown(struct spoolsync *sp)
{
	struct commit	*c;

	bg_free(sp->sig_bg);
	sp->sig_bg = NULL;
	sigcache_free(sp->sigs);
	sp->sigs = NULL;

	while ((c = TAILQ_FIRST(&sp->commit_wait)) != NULL) {
		TAILQ_REMOVE(&sp->commit_wait, c, wentry);
		if (c->l != NULL) {
			TAILQ_REMOVE(&c->l->commits, c, entry);
			commit_uncount(c->l, c);
		}
		commit_done(c, 1);
	}
}
