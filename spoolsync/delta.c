/*
 * delta.c: librsync's signature, delta and patch jobs, each driven in
 * bounded steps over memory buffers so that the event loop never blocks and
 * a 50 MiB file streams through a few small buffers.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librsync.h>
#include <openssl/evp.h>

#include "spoolsync.h"

#define DELTA_OBUF	(64 * 1024)
#define DELTA_WB_STEP	(4 * 1024 * 1024)	/* patch output sent to disk early */
#define DELTA_SIG_HDR	12	/* magic, block length, strong sum length */

enum delta_kind {
	DELTA_SIG,		/* file in, signature out */
	DELTA_LOADSIG,		/* signature in */
	DELTA_DELTA,		/* file in, delta out */
	DELTA_PATCH,		/* delta in, file out */
};

struct delta_job {
	enum delta_kind	 kind;
	rs_job_t	*rs;
	int		 state;		/* 0 running, 1 done, -1 failed */
	char		 failmsg[256];
	char		*obuf;
	uint64_t	 in_total, out_total;
	EVP_MD_CTX	*md;
	unsigned char	 digest[DELTA_DIGEST_LEN];

	/* sig, delta: the file is read here, one chunk per step */
	int		 in_fd;
	off_t		 in_off;
	int		 in_eof;
	char		*ibuf;
	size_t		 ilen, ipos;

	/* loadsig, patch: input the last step could not take yet */
	struct buf	 pend;
	size_t		 pend_pos;
	int		 eof;
	int		 out_blocked;	/* the last step stopped at its output bound */

	/* patch */
	int		 out_fd, basis_fd;
	uint64_t	 wb_off;	/* writeback started below this */
	uint64_t	 max_size;
	int		 copy_errno;
	int		 copy_past_end;

	/* loadsig */
	rs_signature_t	*sig;
	size_t		 max_sig;
	unsigned char	 hdr[DELTA_SIG_HDR];
	size_t		 hdrlen;
};

/*
 * librsync reports details through a global trace hook.  Library modules
 * never log, so the first message of a failing call is kept per thread and
 * put in the error text instead.
 */
static _Thread_local char	delta_rs_msg[200];
static pthread_once_t		delta_trace_once = PTHREAD_ONCE_INIT;

static void
delta_trace_cb(rs_loglevel level, const char *msg)
{
	size_t	n;

	if (level > RS_LOG_ERR || delta_rs_msg[0] != '\0')
		return;
	snprintf(delta_rs_msg, sizeof(delta_rs_msg), "%s", msg);
	n = strlen(delta_rs_msg);
	while (n > 0 && (delta_rs_msg[n - 1] == '\n' || delta_rs_msg[n - 1] == ' '))
		delta_rs_msg[--n] = '\0';
}

static void
delta_trace_init(void)
{
	rs_trace_set_level(RS_LOG_ERR);
	rs_trace_to(delta_trace_cb);
}

static const char *
delta_kind_name(enum delta_kind k)
{
	switch (k) {
	case DELTA_SIG:
		return "signature";
	case DELTA_LOADSIG:
		return "loading signature";
	case DELTA_DELTA:
		return "delta";
	case DELTA_PATCH:
		return "patch";
	}
	return "?";
}

static enum delta_status
delta_fail(struct delta_job *j, const char *fmt, ...) PRINTFLIKE(2, 3);

static enum delta_status
delta_fail(struct delta_job *j, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	n = snprintf(j->failmsg, sizeof(j->failmsg), "%s: ", delta_kind_name(j->kind));
	va_start(ap, fmt);
	vsnprintf(j->failmsg + n, sizeof(j->failmsg) - (size_t)n, fmt, ap);
	va_end(ap);
	j->state = -1;
	return DELTA_ERROR;
}

static enum delta_status
delta_fail_rs(struct delta_job *j, rs_result r)
{
	if (j->copy_past_end)
		return delta_fail(j, "bogus delta: copies past the end of the basis");
	if (j->copy_errno)
		return delta_fail(j, "reading the basis: %s", strerror(j->copy_errno));
	if (delta_rs_msg[0] != '\0')
		return delta_fail(j, "%s (%s)", rs_strerror(r), delta_rs_msg);
	return delta_fail(j, "%s", rs_strerror(r));
}

static struct delta_job *
delta_job_new(enum delta_kind kind)
{
	struct delta_job	*j;

	pthread_once(&delta_trace_once, delta_trace_init);
	j = xcalloc(1, sizeof(*j));
	j->kind = kind;
	j->in_fd = j->out_fd = j->basis_fd = -1;
	j->obuf = xmalloc(DELTA_OBUF);
	buf_init(&j->pend);
	/* Nobody checks a signature's input; its bytes are hashed nowhere. */
	if (kind != DELTA_LOADSIG && kind != DELTA_SIG) {
		if ((j->md = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestInit_ex(j->md, EVP_sha256(), NULL) != 1)
			fatalx("delta: cannot set up SHA-256");
	}
	return j;
}

void
delta_job_free(struct delta_job *j)
{
	if (j == NULL)
		return;
	if (j->rs != NULL)
		rs_job_free(j->rs);
	if (j->sig != NULL)
		rs_free_sumset(j->sig);
	EVP_MD_CTX_free(j->md);
	buf_free(&j->pend);
	free(j->ibuf);
	free(j->obuf);
	free(j);
}

void
delta_sig_free(struct rs_signature *sig)
{
	if (sig != NULL)
		rs_free_sumset(sig);
}

/*
 * A signature carries 4 + 32 bytes per block (the strong sum at full length,
 * since spool files hold attacker-chosen bytes), a small edit costs about one
 * block of literal data: N / B * 36 + B is least at B = sqrt(36 N).
 */
size_t
delta_block_len_for_wire(off_t size)
{
	size_t	b = 2048;

	while (b < DELTA_BLOCK_MAX && (double)b * b < 36.0 * (double)size)
		b += 1024;
	return b;
}

struct delta_job *
delta_sig_begin(int basis_fd, off_t size, size_t block_len, char *err,
    size_t errlen)
{
	struct delta_job	*j;
	rs_magic_number		 magic = RS_RK_BLAKE2_SIG_MAGIC;
	size_t			 strong_len = 0;	/* 0: full length */
	rs_result		 r;

	if (block_len > DELTA_BLOCK_MAX)
		block_len = DELTA_BLOCK_MAX;
	if ((r = rs_sig_args(size, &magic, &block_len, &strong_len)) != RS_DONE) {
		snprintf(err, errlen, "signature: bad parameters for a file of "
		    "%jd bytes: %s", (intmax_t)size, rs_strerror(r));
		return NULL;
	}
	if (block_len > DELTA_BLOCK_MAX)
		block_len = DELTA_BLOCK_MAX;
	j = delta_job_new(DELTA_SIG);
	j->in_fd = basis_fd;
	j->ibuf = xmalloc(DELTA_CHUNK);
	if ((j->rs = rs_sig_begin(block_len, strong_len, magic)) == NULL) {
		snprintf(err, errlen, "signature: librsync refused to start");
		delta_job_free(j);
		return NULL;
	}
	return j;
}

struct delta_job *
delta_loadsig_begin(size_t max_bytes)
{
	struct delta_job	*j = delta_job_new(DELTA_LOADSIG);

	j->max_sig = max_bytes ? max_bytes : DELTA_SIG_MAX;
	j->rs = rs_loadsig_begin(&j->sig);
	return j;
}

struct rs_signature *
delta_loadsig_take(struct delta_job *j)
{
	rs_signature_t	*sig;

	if (j->kind != DELTA_LOADSIG || j->state != 1)
		return NULL;
	sig = j->sig;
	j->sig = NULL;
	return sig;
}

void
delta_job_no_digest(struct delta_job *j)
{
	if (j->kind != DELTA_DELTA || j->in_total > 0)
		return;
	EVP_MD_CTX_free(j->md);
	j->md = NULL;
}

struct delta_job *
delta_delta_begin(struct rs_signature *sig, int new_fd)
{
	struct delta_job	*j = delta_job_new(DELTA_DELTA);

	j->in_fd = new_fd;
	j->ibuf = xmalloc(DELTA_CHUNK);
	j->rs = rs_delta_begin(sig);
	return j;
}

/* Basis bytes for a COPY command; the delta is untrusted, so check its range. */
static rs_result
delta_copy_cb(void *arg, rs_long_t pos, size_t *len, void **bufp)
{
	struct delta_job	*j = arg;
	ssize_t			 n;

	if (j->basis_fd == -1 || pos < 0) {
		j->copy_past_end = 1;
		return RS_CORRUPT;
	}
	do
		n = pread(j->basis_fd, *bufp, *len, (off_t)pos);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		j->copy_errno = errno;
		return RS_IO_ERROR;
	}
	if (n == 0) {
		/* Returning 0 bytes as success would make librsync spin. */
		j->copy_past_end = 1;
		return RS_CORRUPT;
	}
	*len = (size_t)n;
	return RS_DONE;
}

struct delta_job *
delta_patch_begin(int basis_fd, int out_fd, uint64_t max_size)
{
	struct delta_job	*j = delta_job_new(DELTA_PATCH);

	j->basis_fd = basis_fd;
	j->out_fd = out_fd;
	j->max_size = max_size;
	j->rs = rs_patch_begin(delta_copy_cb, j);
	return j;
}

static uint32_t
delta_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * A peer's signature header is checked before librsync sees it: only the
 * BLAKE2 formats at full strong-sum length, and a block length that cannot
 * make the delta job allocate gigabytes.
 */
static enum delta_status
delta_sig_header(struct delta_job *j, const unsigned char *in, size_t inlen)
{
	uint32_t	magic, block_len, strong_len;
	size_t		n = DELTA_SIG_HDR - j->hdrlen;

	if (n == 0)
		return DELTA_MORE;
	if (n > inlen)
		n = inlen;
	memcpy(j->hdr + j->hdrlen, in, n);
	if ((j->hdrlen += n) < DELTA_SIG_HDR)
		return DELTA_MORE;
	magic = delta_be32(j->hdr);
	block_len = delta_be32(j->hdr + 4);
	strong_len = delta_be32(j->hdr + 8);
	if (magic != RS_RK_BLAKE2_SIG_MAGIC && magic != RS_BLAKE2_SIG_MAGIC)
		return delta_fail(j, "bad magic %#x (want a BLAKE2 signature)", magic);
	if (block_len < 1 || block_len > DELTA_BLOCK_MAX)
		return delta_fail(j, "block length %u out of range (1-%d)",
		    block_len, DELTA_BLOCK_MAX);
	if (strong_len != (uint32_t)RS_BLAKE2_SUM_LENGTH)
		return delta_fail(j, "strong sum length %u (want the full %d)",
		    strong_len, RS_BLAKE2_SUM_LENGTH);
	return DELTA_MORE;
}

static enum delta_status
delta_finish(struct delta_job *j)
{
	rs_result	r;
	unsigned int	mdlen;

	if (j->kind == DELTA_LOADSIG &&
	    (r = rs_build_hash_table(j->sig)) != RS_DONE)
		return delta_fail_rs(j, r);
	if (j->md != NULL && EVP_DigestFinal_ex(j->md, j->digest, &mdlen) != 1)
		return delta_fail(j, "SHA-256 failed");
	j->state = 1;
	return DELTA_DONE;
}

/* Reads the next chunk of the job's file; 0, or -1 after delta_fail. */
static int
delta_read_chunk(struct delta_job *j)
{
	ssize_t	n;

	do
		n = pread(j->in_fd, j->ibuf, DELTA_CHUNK, j->in_off);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		delta_fail(j, "reading the file: %s", strerror(errno));
		return -1;
	}
	if (n == 0)
		j->in_eof = 1;
	else if (j->md != NULL && EVP_DigestUpdate(j->md, j->ibuf, (size_t)n) != 1) {
		delta_fail(j, "SHA-256 failed");
		return -1;
	}
	j->ilen = (size_t)n;
	j->ipos = 0;
	j->in_off += n;
	j->in_total += (uint64_t)n;
	return 0;
}

/* sig and delta: at most one chunk read and LIMIT bytes appended to OUT. */
static enum delta_status
delta_step_file_in(struct delta_job *j, struct buf *out, size_t limit)
{
	rs_buffers_t	b;
	rs_result	r;
	size_t		produced = 0, room, n;
	int		did_read = 0;

	for (;;) {
		if (j->ipos == j->ilen && !j->in_eof) {
			if (did_read)
				return DELTA_MORE;
			if (delta_read_chunk(j) == -1)
				return DELTA_ERROR;
			did_read = 1;
		}
		room = limit - produced < DELTA_OBUF ? limit - produced : DELTA_OBUF;
		b.next_in = j->ibuf + j->ipos;
		b.avail_in = j->ilen - j->ipos;
		b.eof_in = j->in_eof;
		b.next_out = j->obuf;
		b.avail_out = room;
		r = rs_job_iter(j->rs, &b);
		j->ipos = j->ilen - b.avail_in;
		n = room - b.avail_out;
		buf_add(out, j->obuf, n);
		produced += n;
		j->out_total += n;
		if (r == RS_DONE)
			return delta_finish(j);
		if (r != RS_BLOCKED)
			return delta_fail_rs(j, r);
		if (produced >= limit)
			return DELTA_MORE;
		if (n == 0 && j->ipos == j->ilen && j->in_eof)
			return delta_fail(j, "librsync made no progress");
	}
}

static int
delta_write_all(struct delta_job *j, const char *p, size_t n)
{
	ssize_t	w;

	if (j->out_total + n > j->max_size) {
		delta_fail(j, "the patched file would exceed %ju bytes",
		    (uintmax_t)j->max_size);
		return -1;
	}
	if (EVP_DigestUpdate(j->md, p, n) != 1) {
		delta_fail(j, "SHA-256 failed");
		return -1;
	}
	j->out_total += n;
	while (n > 0) {
		if ((w = write(j->out_fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			delta_fail(j, "writing the new file: %s", strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	/* The caller fsyncs the result: its writeback starts now, while the
	 * rest is patched, so that the fsync finds little left to do. */
	if (j->out_total - j->wb_off >= DELTA_WB_STEP) {
		(void)sync_file_range(j->out_fd, (off64_t)j->wb_off,
		    (off64_t)(j->out_total - j->wb_off), SYNC_FILE_RANGE_WRITE);
		j->wb_off = j->out_total;
	}
	return 0;
}

/* Keeps what librsync did not take, in front of the next step's input. */
static void
delta_keep(struct delta_job *j, const char *p, size_t n, int from_pend)
{
	if (!from_pend) {
		buf_add(&j->pend, p, n);
		return;
	}
	memmove(j->pend.data, p, n);
	j->pend.len = n;
	j->pend.data[n] = '\0';
	j->pend_pos = 0;
}

/* loadsig and patch: all of the input is taken, at most LIMIT bytes written. */
static enum delta_status
delta_step_stream_in(struct delta_job *j, const char *in, size_t inlen,
    size_t limit)
{
	rs_buffers_t	b;
	rs_result	r;
	const char	*p = in;
	size_t		 left = inlen, written = 0, room, n, took;
	int		 from_pend = 0;

	if (j->pend.len > j->pend_pos) {
		buf_add(&j->pend, in, inlen);
		p = j->pend.data + j->pend_pos;
		left = j->pend.len - j->pend_pos;
		from_pend = 1;
	}
	j->out_blocked = 0;
	for (;;) {
		room = j->kind == DELTA_PATCH && limit - written < DELTA_OBUF ?
		    limit - written : DELTA_OBUF;
		b.next_in = (char *)(uintptr_t)p;
		b.avail_in = left;
		b.eof_in = j->eof;
		b.next_out = j->obuf;
		b.avail_out = room;
		r = rs_job_iter(j->rs, &b);
		took = left - b.avail_in;
		p += took;
		left = b.avail_in;
		n = room - b.avail_out;
		if (n > 0 && j->kind != DELTA_PATCH)
			return delta_fail(j, "librsync produced unexpected output");
		if (n > 0 && delta_write_all(j, j->obuf, n) == -1)
			return DELTA_ERROR;
		written += n;
		if (r == RS_DONE && left > 0)
			return delta_fail(j, "%zu bytes of garbage after its end", left);
		if (r == RS_DONE)
			return delta_finish(j);
		if (r != RS_BLOCKED)
			return delta_fail_rs(j, r);
		if (written >= limit) {
			j->out_blocked = 1;
			break;
		}
		if (n < room) {		/* blocked on input, not on output */
			if (left > 0 && took == 0)
				return delta_fail(j, "librsync made no progress");
			if (left == 0)
				break;
		}
	}
	delta_keep(j, p, left, from_pend);
	if (j->eof && left == 0 && !j->out_blocked)
		return delta_fail(j, "input ended too early (truncated)");
	return DELTA_MORE;
}

enum delta_status
delta_job_step(struct delta_job *j, const void *in, size_t inlen, int eof,
    struct buf *out, size_t max_out, char *err, size_t errlen)
{
	enum delta_status	st;
	size_t			limit = max_out ? max_out : DELTA_STEP_OUT;

	if (j->state == 0) {
		delta_rs_msg[0] = '\0';
		switch (j->kind) {
		case DELTA_SIG:
		case DELTA_DELTA:
			st = delta_step_file_in(j, out, limit);
			break;
		case DELTA_LOADSIG:
			if (j->in_total + inlen > j->max_sig) {
				st = delta_fail(j, "signature larger than %zu bytes",
				    j->max_sig);
				break;
			}
			j->in_total += inlen;
			j->eof |= eof;
			st = delta_sig_header(j, in, inlen);
			if (st == DELTA_MORE)
				st = delta_step_stream_in(j, in, inlen, limit);
			break;
		case DELTA_PATCH:
			j->in_total += inlen;
			j->eof |= eof;
			st = delta_step_stream_in(j, in, inlen, limit);
			break;
		default:
			st = delta_fail(j, "unknown job");
		}
	} else
		st = j->state == 1 ? DELTA_DONE : DELTA_ERROR;
	if (st == DELTA_ERROR)
		snprintf(err, errlen, "%s", j->failmsg);
	return st;
}

int
delta_job_busy(const struct delta_job *j)
{
	if (j->state != 0)
		return 0;
	if (j->kind == DELTA_SIG || j->kind == DELTA_DELTA)
		return 1;
	return j->out_blocked || j->pend.len > j->pend_pos || j->eof;
}

void
delta_job_stats(const struct delta_job *j, struct delta_stats *s)
{
	const rs_stats_t	*rs = rs_job_statistics(j->rs);

	memset(s, 0, sizeof(*s));
	s->in_bytes = j->in_total;
	s->out_bytes = j->out_total;
	s->lit_bytes = (uint64_t)rs->lit_bytes;
	s->copy_bytes = (uint64_t)rs->copy_bytes;
	s->lit_cmds = (uint64_t)rs->lit_cmds;
	s->copy_cmds = (uint64_t)rs->copy_cmds;
	s->sig_blocks = (uint64_t)rs->sig_blocks;
	s->block_len = (uint32_t)rs->block_len;
}

int
delta_job_digest(const struct delta_job *j, unsigned char out[DELTA_DIGEST_LEN])
{
	if (j->state != 1 || j->md == NULL)
		return -1;
	memcpy(out, j->digest, DELTA_DIGEST_LEN);
	return 0;
}
