/*
 * sigcache.c: a receiver's librsync signatures of its big files, made
 * before a peer asks, so that a small change to a big file costs no full
 * signature pass on the critical path.  An entry stands for the file only
 * while its stat (device, inode, size, nanosecond mtime and ctime) is the
 * one it was made from, and only files last changed long enough before the
 * signature began are cached (a later write must move their timestamps).
 * A stale signature could only cost a retry anyway: the patched file's
 * SHA-256 is checked before anything is renamed into place.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spoolsync.h"

#define SIGCACHE_SEC_RACY_NS	(2 * 1000000000LL)	/* whole-second timestamps */

struct sigent {
	struct sig_key	 key;
	struct buf	 sig;
};

struct sigcache {
	struct pmap	*m;		/* path -> struct sigent */
	size_t		 bytes, max_bytes;
};

static int64_t
sig_ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static int64_t
sigcache_now_ns(void)
{
	struct timespec	t;

	clock_gettime(CLOCK_REALTIME, &t);
	return sig_ts_ns(&t);
}

static void
sigent_free(void *arg)
{
	struct sigent	*e = arg;

	if (e == NULL)
		return;
	buf_free(&e->sig);
	free(e);
}

struct sigcache *
sigcache_new(size_t max_bytes)
{
	struct sigcache	*sc = xcalloc(1, sizeof(*sc));

	sc->m = pmap_new();
	sc->max_bytes = max_bytes;
	return sc;
}

void
sigcache_free(struct sigcache *sc)
{
	if (sc == NULL)
		return;
	pmap_free(sc->m, sigent_free);
	free(sc);
}

void
sigcache_key_of(const struct stat *st, struct sig_key *k)
{
	memset(k, 0, sizeof(*k));
	k->dev = (uint64_t)st->st_dev;
	k->ino = (uint64_t)st->st_ino;
	k->size = (uint64_t)st->st_size;
	k->mtime_ns = sig_ts_ns(&st->st_mtim);
	k->ctime_ns = sig_ts_ns(&st->st_ctim);
}

int
sigcache_same(const struct sig_key *k, const struct stat *st)
{
	struct sig_key	now;

	sigcache_key_of(st, &now);
	return k->dev == now.dev && k->ino == now.ino && k->size == now.size &&
	    k->mtime_ns == now.mtime_ns && k->ctime_ns == now.ctime_ns;
}

/* How long after its last change a file's stat proves its content. */
static int64_t
sigcache_window_ns(const struct stat *st)
{
	if (st->st_mtim.tv_nsec == 0 && st->st_ctim.tv_nsec == 0)
		return SIGCACHE_SEC_RACY_NS;
	return MF_RACY_NS;
}

int64_t
sigcache_settled_in_ns(const struct stat *st, int64_t now_real_ns)
{
	int64_t	newest = sig_ts_ns(&st->st_mtim), left;

	if (sig_ts_ns(&st->st_ctim) > newest)
		newest = sig_ts_ns(&st->st_ctim);
	left = newest + sigcache_window_ns(st) - now_real_ns;
	return left > 0 ? left : 0;
}

const struct buf *
sigcache_get(struct sigcache *sc, const char *path, const struct stat *st)
{
	struct sigent	*e;

	if (sc == NULL || (e = pmap_get(sc->m, path)) == NULL)
		return NULL;
	if (!sigcache_same(&e->key, st)) {
		sigcache_del(sc, path);		/* the file changed: never again */
		return NULL;
	}
	return &e->sig;
}

void
sigcache_del(struct sigcache *sc, const char *path)
{
	struct sigent	*e;

	if (sc == NULL || (e = pmap_del(sc->m, path)) == NULL)
		return;
	sc->bytes -= e->sig.len;
	sigent_free(e);
}

/* Over the bound: entries go in no particular order until it fits. */
static void
sigcache_trim(struct sigcache *sc, size_t need)
{
	struct pmap_iter	 it;
	const char		*key;
	char			*victim;

	while (sc->bytes + need > sc->max_bytes && pmap_count(sc->m) > 0) {
		memset(&it, 0, sizeof(it));
		if (!pmap_next(sc->m, &it, &key, NULL))
			break;
		victim = xstrdup(key);
		sigcache_del(sc, victim);
		free(victim);
	}
}

int
sigcache_put(struct sigcache *sc, const char *path, const struct sig_key *k,
    const void *sig, size_t len)
{
	struct sigent	*e;

	sigcache_del(sc, path);
	if (len == 0 || len > sc->max_bytes)
		return -1;
	sigcache_trim(sc, len);
	e = xcalloc(1, sizeof(*e));
	e->key = *k;
	buf_init(&e->sig);
	buf_add(&e->sig, sig, len);
	pmap_put(sc->m, path, e);
	sc->bytes += len;
	return 0;
}

size_t
sigcache_count(const struct sigcache *sc)
{
	return sc == NULL ? 0 : pmap_count(sc->m);
}

/*
 * The whole signature of FD, blocking (a worker's job).  Waits (at most
 * MAX_WAIT_NS) until the file has settled; 1 when it did not settle or
 * changed while it was read (nothing to cache), -1 on error.
 */
int
sigcache_compute(int fd, int64_t max_wait_ns, struct buf *out, struct sig_key *key,
    char *err, size_t errlen)
{
	struct delta_job	*j;
	struct stat		 a, z;
	struct timespec		 ts;
	enum delta_status	 st;
	int64_t			 left;

	buf_reset(out);
	if (fstat(fd, &a) == -1) {
		snprintf(err, errlen, "fstat: %s", strerror(errno));
		return -1;
	}
	if ((left = sigcache_settled_in_ns(&a, sigcache_now_ns())) > 0) {
		if (left > max_wait_ns)
			return 1;
		ts.tv_sec = (time_t)(left / 1000000000LL);
		ts.tv_nsec = (long)(left % 1000000000LL) + 1000000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
		if (fstat(fd, &a) == -1) {
			snprintf(err, errlen, "fstat: %s", strerror(errno));
			return -1;
		}
		if (sigcache_settled_in_ns(&a, sigcache_now_ns()) > 0)
			return 1;	/* written meanwhile */
	}
	if ((j = delta_sig_begin(fd, a.st_size, delta_block_len_for_wire(a.st_size),
	    err, errlen)) == NULL)
		return -1;
	do
		st = delta_job_step(j, NULL, 0, 0, out, 0, err, errlen);
	while (st == DELTA_MORE);
	delta_job_free(j);
	if (st == DELTA_ERROR)
		return -1;
	if (fstat(fd, &z) == -1) {
		snprintf(err, errlen, "fstat: %s", strerror(errno));
		return -1;
	}
	sigcache_key_of(&a, key);
	return sigcache_same(key, &z) ? 0 : 1;
}
