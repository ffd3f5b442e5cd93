/*
 * wire.c: spoolsync's peer protocol on the byte level: every message type's
 * encoder and strict decoder, the stream framer and the per-frame MAC.
 *
 * Frames, after auth.c's handshake (no frame is ever sent before it):
 *
 *	u32 length	payload bytes, big-endian
 *	u8  type	enum wire_type
 *	    payload	length bytes
 *	    mac		WIRE_MAC_LEN bytes: HMAC-SHA256(dirkey, u64 seq ||
 *			length || type || payload), truncated to 128 bits
 *
 * Once both HELLOs said version 2 (wire_ctx.digest_data), a FILE_DATA
 * frame's MAC takes the SHA-256 of its data bytes in their place:
 * HMAC(dirkey, u64 seq || length || type || xfer || chunk length ||
 * SHA-256(data)).  Hash-then-MAC is as strong as the MAC over the bytes
 * (SHA-256 is collision resistant), every frame is still checked before it
 * is parsed, and the digest is the one both ends need anyway: the sender
 * hashed the file it read, the receiver checks a file that came in one
 * chunk against its announced hash with it.  One pass over a small file's
 * bytes on each side instead of two.
 *
 * The length is bounded per type (WIRE_SMALL_MAX, or WIRE_MAX_PAYLOAD for
 * the three chunk carriers), so a bogus header is refused after 5 bytes,
 * before anything is buffered for it.  Every side keys one HMAC per
 * direction, HMAC-SHA256(session key, "JHA-WIRE v1 client->server" or
 * "... server->client"), so a frame reflected back to its sender never
 * verifies.  The sequence number is never sent: both sides count frames
 * from 0, so a dropped, replayed, reordered or injected frame fails its MAC
 * and the link closes.  The MAC is checked before any field is parsed.
 *
 * Payload fields, all big-endian, in the order listed; str = u16 length and
 * bytes (no NUL); path = str checked by path_validn; name = str of 1-64
 * [A-Za-z0-9._-]; text = str of at most WIRE_TEXT_MAX bytes, no control
 * bytes; bool = u8 0 or 1; chunk = u32 length (<= WIRE_CHUNK_MAX) and bytes;
 * attr = u32 mode (<= 07777), u32 uid, u32 gid, i64 mtime_ns;
 * vv = u16 count (<= WIRE_VV_MAX), then count x (name node, u64 counter),
 * nodes distinct.
 *
 *	HELLO		u16 version (>= 1), name node, u8 mode, u32 flags
 *	MANIFEST_REQ	u64 id, path dir ("" allowed: the root)
 *	MANIFEST	u64 id, bool last, chunk (opaque: manifest.c's encoding)
 *	SIG_REQ		u64 xfer, path
 *	SIG		u64 xfer, bool last, chunk
 *	FILE_BEGIN	u64 xfer, path, u8 kind, u8 ftype, u64 size, attr,
 *			32 bytes sha256, u64 append_off, vv
 *	FILE_DATA	u64 xfer, chunk
 *	FILE_END	u64 xfer
 *	DELETE		path, bool is_dir, vv
 *	RENAME		path from, path to, bool is_dir, vv
 *	MKDIR, META	path, attr
 *	ACK		u8 ref_kind, u64 ref, u16 status, text
 *	PING, PONG	u64 ts
 *	BYE		text reason
 *
 * Decoding is strict: a truncated field, a trailing byte, a value outside its
 * enum, a bad path or a count over its limit is refused with a message that
 * names the frame type and the field.  Encoders check their own output with
 * the decoder, so a frame we send is always one the peer accepts.
 *
 * With libevent, a read callback does:
 *	st = wire_peek(evbuffer_pullup(in, MIN(avail, WIRE_HDR_LEN)), avail, &n, ...);
 *	WIRE_NEED: set the read low watermark to n and return;
 *	WIRE_READY: wire_decode(ctx, evbuffer_pullup(in, n), n, &msg, ...),
 *	    handle msg, then evbuffer_drain(in, n).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include "spoolsync.h"

/* Where a FILE_DATA frame's data bytes start: header, u64 xfer, u32 length. */
#define WIRE_DATA_OFF	(WIRE_HDR_LEN + 8 + 4)

#define WIRE_LABEL_C2S	"JHA-WIRE v1 client->server"
#define WIRE_LABEL_S2C	"JHA-WIRE v1 server->client"

/* The largest small payload: RENAME with two longest paths and a full vv. */
_Static_assert(2 * (2 + PATH_REL_MAX) + 1 + 2 +
    WIRE_VV_MAX * (2 + WIRE_NAME_MAX + 8) <= WIRE_SMALL_MAX,
    "WIRE_SMALL_MAX too small for RENAME");
_Static_assert(2 + WIRE_TEXT_MAX + 1 <= WIRE_STR_SPACE, "text space");

/* A decoder's cursor; the first error sticks and later reads return 0. */
struct rd {
	const unsigned char	*p;
	size_t			 left;
	struct wire_msg		*m;
	const char		*what;		/* frame type name */
	char			*err;
	size_t			 errlen;
	int			 bad;
};

/* An encoder's cursor on OUT; the first error sticks. */
struct wr {
	struct buf		*b;
	const char		*what;
	char			*err;
	size_t			 errlen;
	int			 bad;
};

struct wire_op {
	const char	*name;
	size_t		 max;		/* payload bytes */
	void		(*enc)(struct wr *, const struct wire_msg *);
	void		(*dec)(struct rd *, struct wire_msg *);
};

static const struct wire_op *wire_op(int);

static const char *const wire_status_names[] = {
	"ok", "io", "nospace", "path", "conflict", "stale", "refused", "proto",
};

/* Big-endian integers. */

static void
put_be(unsigned char *p, uint64_t v, int n)
{
	while (n-- > 0) {
		p[n] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t
get_be(const unsigned char *p, int n)
{
	uint64_t	v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* The reader. */

static void PRINTFLIKE(3, 4)
rd_fail(struct rd *r, const char *field, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (r->bad)
		return;
	r->bad = 1;
	n = snprintf(r->err, r->errlen, "%s: %s: ", r->what, field);
	if (n < 0 || (size_t)n >= r->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static const unsigned char *
rd_take(struct rd *r, const char *field, size_t n)
{
	const unsigned char	*p = r->p;

	if (r->bad)
		return NULL;
	if (r->left < n) {
		rd_fail(r, field, "truncated (%zu bytes needed, %zu left)", n,
		    r->left);
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

static uint64_t
rd_uint(struct rd *r, const char *field, int n)
{
	const unsigned char	*p = rd_take(r, field, (size_t)n);

	return p == NULL ? 0 : get_be(p, n);
}

static uint8_t
rd_u8(struct rd *r, const char *field)
{
	return (uint8_t)rd_uint(r, field, 1);
}

static uint16_t
rd_u16(struct rd *r, const char *field)
{
	return (uint16_t)rd_uint(r, field, 2);
}

static uint32_t
rd_u32(struct rd *r, const char *field)
{
	return (uint32_t)rd_uint(r, field, 4);
}

static uint64_t
rd_u64(struct rd *r, const char *field)
{
	return rd_uint(r, field, 8);
}

/* A u8 that must lie in [LO, HI]. */
static uint8_t
rd_enum(struct rd *r, const char *field, unsigned lo, unsigned hi)
{
	const unsigned char	*p = rd_take(r, field, 1);

	if (p == NULL)
		return 0;
	if (*p < lo || *p > hi)
		rd_fail(r, field, "bad value %u (expected %u-%u)", *p, lo, hi);
	return *p;
}

static int
rd_bool(struct rd *r, const char *field)
{
	return rd_enum(r, field, 0, 1);
}

/* A NUL-terminated copy in the message's own storage. */
static const char *
rd_keep(struct rd *r, const char *field, const unsigned char *s, size_t n)
{
	struct wire_msg	*m = r->m;
	char		*d;

	if (n + 1 > sizeof(m->strs) - m->strs_used) {
		rd_fail(r, field, "no string space left (internal limit)");
		return NULL;
	}
	d = m->strs + m->strs_used;
	memcpy(d, s, n);
	d[n] = '\0';
	m->strs_used += n + 1;
	return d;
}

/* A u16-prefixed string of at most MAX bytes; *N is its length. */
static const unsigned char *
rd_str(struct rd *r, const char *field, size_t max, size_t *n)
{
	size_t	len = rd_u16(r, field);

	*n = 0;
	if (r->bad)
		return NULL;
	if (len > max) {
		rd_fail(r, field, "%zu bytes long (at most %zu)", len, max);
		return NULL;
	}
	*n = len;
	return rd_take(r, field, len);
}

static const char *
rd_path(struct rd *r, const char *field, int allow_empty)
{
	const unsigned char	*s;
	size_t			 n;
	char			 why[256];

	/* Longer ones reach path_validn, which says how long they are. */
	if ((s = rd_str(r, field, UINT16_MAX, &n)) == NULL)
		return NULL;
	if (!(allow_empty && n == 0) &&
	    path_validn((const char *)s, n, why, sizeof(why)) == -1) {
		rd_fail(r, field, "%s", why);
		return NULL;
	}
	return rd_keep(r, field, s, n);
}

static int
wire_name_validn(const unsigned char *s, size_t n)
{
	if (n == 0 || n > WIRE_NAME_MAX)
		return 0;
	/* A node name becomes a path component (conflict copies): never these. */
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' ||
		    s[i] == '-'))
			return 0;
	return 1;
}

int
wire_name_valid(const char *name)
{
	return name != NULL && wire_name_validn((const unsigned char *)name,
	    strnlen(name, WIRE_NAME_MAX + 1));
}

static const char *
rd_name(struct rd *r, const char *field)
{
	const unsigned char	*s;
	size_t			 n;
	char			 q[96];

	if ((s = rd_str(r, field, WIRE_NAME_MAX, &n)) == NULL)
		return NULL;
	if (!wire_name_validn(s, n)) {
		path_quote((const char *)s, n, q, sizeof(q));
		rd_fail(r, field, "bad node name \"%s\" (1-%d of A-Z a-z 0-9 . _ -, "
		    "not . or ..)",
		    q, WIRE_NAME_MAX);
		return NULL;
	}
	return rd_keep(r, field, s, n);
}

static const char *
rd_text(struct rd *r, const char *field)
{
	const unsigned char	*s;
	size_t			 n;

	if ((s = rd_str(r, field, WIRE_TEXT_MAX, &n)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] == 0x7f) {
			rd_fail(r, field, "control byte 0x%02x at offset %zu", s[i], i);
			return NULL;
		}
	return rd_keep(r, field, s, n);
}

static void
rd_chunk(struct rd *r, struct wire_chunk *c)
{
	uint32_t	n = rd_u32(r, "data length");

	if (n > WIRE_CHUNK_MAX) {
		rd_fail(r, "data length", "%u bytes (at most %d)", n, WIRE_CHUNK_MAX);
		return;
	}
	c->len = n;
	c->data = rd_take(r, "data", n);
}

static void
rd_attr(struct rd *r, struct wire_attr *a)
{
	a->mode = rd_u32(r, "mode");
	if (a->mode > 07777)
		rd_fail(r, "mode", "0%o has bits outside 07777", a->mode);
	a->uid = rd_u32(r, "uid");
	a->gid = rd_u32(r, "gid");
	a->mtime_ns = (int64_t)rd_u64(r, "mtime_ns");
}

static void
rd_vv(struct rd *r, struct wire_vv *vv)
{
	struct wire_vv_ent	*e = r->m->vv_store;
	char			 field[32];
	size_t			 n = rd_u16(r, "vv count");

	if (n > WIRE_VV_MAX) {
		rd_fail(r, "vv count", "%zu entries (at most %d)", n, WIRE_VV_MAX);
		return;
	}
	for (size_t i = 0; i < n && !r->bad; i++) {
		snprintf(field, sizeof(field), "vv[%zu].node", i);
		e[i].node = rd_name(r, field);
		for (size_t j = 0; j < i && !r->bad; j++)
			if (strcmp(e[i].node, e[j].node) == 0)
				rd_fail(r, field, "\"%s\" appears twice", e[i].node);
		snprintf(field, sizeof(field), "vv[%zu].counter", i);
		e[i].counter = rd_u64(r, field);
	}
	vv->e = e;
	vv->n = r->bad ? 0 : n;
}

/* The writer. */

static void PRINTFLIKE(3, 4)
wr_fail(struct wr *w, const char *field, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (w->bad)
		return;
	w->bad = 1;
	n = snprintf(w->err, w->errlen, "%s: %s: ", w->what, field);
	if (n < 0 || (size_t)n >= w->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(w->err + n, w->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static void
wr_uint(struct wr *w, uint64_t v, int n)
{
	unsigned char	p[8];

	if (w->bad)
		return;
	put_be(p, v, n);
	buf_add(w->b, p, (size_t)n);
}

static void
wr_u8(struct wr *w, uint8_t v)
{
	wr_uint(w, v, 1);
}

static void
wr_u16(struct wr *w, uint16_t v)
{
	wr_uint(w, v, 2);
}

static void
wr_u32(struct wr *w, uint32_t v)
{
	wr_uint(w, v, 4);
}

static void
wr_u64(struct wr *w, uint64_t v)
{
	wr_uint(w, v, 8);
}

static void
wr_bool(struct wr *w, int v)
{
	wr_u8(w, v != 0);
}

/* The decoder checks the content; only what cannot be written fails here. */
static void
wr_str(struct wr *w, const char *field, const char *s)
{
	size_t	n;

	if (s == NULL) {
		wr_fail(w, field, "missing");
		return;
	}
	if ((n = strlen(s)) > UINT16_MAX) {
		wr_fail(w, field, "%zu bytes long (at most %d)", n, UINT16_MAX);
		return;
	}
	wr_u16(w, (uint16_t)n);
	if (!w->bad)
		buf_add(w->b, s, n);
}

/* Text is for people: cut to size and defanged rather than refused. */
static void
wr_text(struct wr *w, const char *s)
{
	size_t	n = s == NULL ? 0 : strnlen(s, WIRE_TEXT_MAX);

	wr_u16(w, (uint16_t)n);
	for (size_t i = 0; i < n && !w->bad; i++) {
		unsigned char	c = (unsigned char)s[i];

		buf_addc(w->b, c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
}

static void
wr_chunk(struct wr *w, const struct wire_chunk *c)
{
	if (c->len > WIRE_CHUNK_MAX) {
		wr_fail(w, "data length", "%zu bytes (at most %d)", c->len,
		    WIRE_CHUNK_MAX);
		return;
	}
	if (c->data == NULL && c->len > 0) {
		wr_fail(w, "data", "missing");
		return;
	}
	wr_u32(w, (uint32_t)c->len);
	if (!w->bad && c->len > 0)
		buf_add(w->b, c->data, c->len);
}

static void
wr_attr(struct wr *w, const struct wire_attr *a)
{
	wr_u32(w, a->mode);
	wr_u32(w, a->uid);
	wr_u32(w, a->gid);
	wr_u64(w, (uint64_t)a->mtime_ns);
}

static void
wr_vv(struct wr *w, const struct wire_vv *vv)
{
	if (vv->n > WIRE_VV_MAX) {
		wr_fail(w, "vv count", "%zu entries (at most %d)", vv->n,
		    WIRE_VV_MAX);
		return;
	}
	if (vv->n > 0 && vv->e == NULL) {
		wr_fail(w, "vv", "missing");
		return;
	}
	wr_u16(w, (uint16_t)vv->n);
	for (size_t i = 0; i < vv->n; i++) {
		wr_str(w, "vv node", vv->e[i].node);
		wr_u64(w, vv->e[i].counter);
	}
}

/* The messages, one encoder and one decoder each. */

static void
enc_hello(struct wr *w, const struct wire_msg *m)
{
	wr_u16(w, m->hello.version);
	wr_str(w, "node", m->hello.node);
	wr_u8(w, m->hello.mode);
	wr_u32(w, m->hello.flags);
}

static void
dec_hello(struct rd *r, struct wire_msg *m)
{
	m->hello.version = rd_u16(r, "version");
	if (m->hello.version == 0)
		rd_fail(r, "version", "0 is not a version");
	m->hello.node = rd_name(r, "node");
	m->hello.mode = rd_enum(r, "mode", WIRE_MODE_SEND, WIRE_MODE_BIDIR);
	m->hello.flags = rd_u32(r, "flags");
}

static void
enc_manifest_req(struct wr *w, const struct wire_msg *m)
{
	wr_u64(w, m->manifest_req.id);
	wr_str(w, "dir", m->manifest_req.dir);
}

static void
dec_manifest_req(struct rd *r, struct wire_msg *m)
{
	m->manifest_req.id = rd_u64(r, "id");
	m->manifest_req.dir = rd_path(r, "dir", 1);
}

/* MANIFEST and SIG: the same shape. */
static void
enc_chunk_last(struct wr *w, const struct wire_msg *m)
{
	const struct wire_chunk	*c = m->type == WIRE_SIG ? &m->sig : &m->manifest;

	wr_u64(w, c->id);
	wr_bool(w, c->last);
	wr_chunk(w, c);
}

static void
dec_chunk_last(struct rd *r, struct wire_msg *m)
{
	struct wire_chunk	*c = m->type == WIRE_SIG ? &m->sig : &m->manifest;

	c->id = rd_u64(r, m->type == WIRE_SIG ? "xfer" : "id");
	c->last = rd_bool(r, "last");
	rd_chunk(r, c);
}

static void
enc_sig_req(struct wr *w, const struct wire_msg *m)
{
	wr_u64(w, m->sig_req.xfer);
	wr_str(w, "path", m->sig_req.path);
}

static void
dec_sig_req(struct rd *r, struct wire_msg *m)
{
	m->sig_req.xfer = rd_u64(r, "xfer");
	m->sig_req.path = rd_path(r, "path", 0);
}

static void
enc_file_begin(struct wr *w, const struct wire_msg *m)
{
	const struct wire_file_begin	*f = &m->file_begin;

	wr_u64(w, f->xfer);
	wr_str(w, "path", f->path);
	wr_u8(w, f->kind);
	wr_u8(w, f->ftype);
	wr_u64(w, f->size);
	wr_attr(w, &f->attr);
	if (!w->bad)
		buf_add(w->b, f->sha256, WIRE_HASH_LEN);
	wr_u64(w, f->append_off);
	wr_vv(w, &f->vv);
}

static void
dec_file_begin_check(struct rd *r, const struct wire_file_begin *f)
{
	if (f->ftype == MF_LINK && f->kind != WIRE_KIND_WHOLE)
		rd_fail(r, "kind", "a symlink goes whole");
	if (f->ftype != MF_FILE && f->ftype != MF_LINK)
		rd_fail(r, "ftype", "bad value %u (expected %d: file or %d: symlink)",
		    f->ftype, MF_FILE, MF_LINK);
	if (f->size > INT64_MAX)
		rd_fail(r, "size", "%llu is beyond 2^63-1",
		    (unsigned long long)f->size);
}

static void
dec_file_begin(struct rd *r, struct wire_msg *m)
{
	struct wire_file_begin	*f = &m->file_begin;
	const unsigned char	*h;

	f->xfer = rd_u64(r, "xfer");
	f->path = rd_path(r, "path", 0);
	f->kind = rd_enum(r, "kind", WIRE_KIND_WHOLE, WIRE_KIND_APPEND);
	f->ftype = rd_u8(r, "ftype");
	f->size = rd_u64(r, "size");
	if (!r->bad)
		dec_file_begin_check(r, f);
	rd_attr(r, &f->attr);
	if ((h = rd_take(r, "sha256", WIRE_HASH_LEN)) != NULL)
		memcpy(f->sha256, h, WIRE_HASH_LEN);
	f->append_off = rd_u64(r, "append_off");
	if (f->kind != WIRE_KIND_APPEND && f->append_off != 0)
		rd_fail(r, "append_off", "must be 0 unless kind is append");
	if (f->kind == WIRE_KIND_APPEND && f->append_off > f->size)
		rd_fail(r, "append_off", "%llu is beyond size %llu",
		    (unsigned long long)f->append_off, (unsigned long long)f->size);
	rd_vv(r, &f->vv);
}

static void
enc_file_data(struct wr *w, const struct wire_msg *m)
{
	wr_u64(w, m->file_data.id);
	wr_chunk(w, &m->file_data);
}

static void
dec_file_data(struct rd *r, struct wire_msg *m)
{
	m->file_data.id = rd_u64(r, "xfer");
	m->file_data.last = 0;
	rd_chunk(r, &m->file_data);
}

static void
enc_file_end(struct wr *w, const struct wire_msg *m)
{
	wr_u64(w, m->file_end.xfer);
}

static void
dec_file_end(struct rd *r, struct wire_msg *m)
{
	m->file_end.xfer = rd_u64(r, "xfer");
}

static void
enc_delete(struct wr *w, const struct wire_msg *m)
{
	wr_str(w, "path", m->delete.path);
	wr_bool(w, m->delete.is_dir);
	wr_vv(w, &m->delete.vv);
}

static void
dec_delete(struct rd *r, struct wire_msg *m)
{
	m->delete.path = rd_path(r, "path", 0);
	m->delete.is_dir = rd_bool(r, "is_dir");
	rd_vv(r, &m->delete.vv);
}

static void
enc_rename(struct wr *w, const struct wire_msg *m)
{
	wr_str(w, "from", m->rename.from);
	wr_str(w, "to", m->rename.to);
	wr_bool(w, m->rename.is_dir);
	wr_vv(w, &m->rename.vv);
}

static void
dec_rename(struct rd *r, struct wire_msg *m)
{
	m->rename.from = rd_path(r, "from", 0);
	m->rename.to = rd_path(r, "to", 0);
	m->rename.is_dir = rd_bool(r, "is_dir");
	rd_vv(r, &m->rename.vv);
}

/* MKDIR and META: the same shape. */
static void
enc_path_attr(struct wr *w, const struct wire_msg *m)
{
	const struct wire_path_attr *pa = m->type == WIRE_MKDIR ? &m->mkdir : &m->meta;

	wr_str(w, "path", pa->path);
	wr_attr(w, &pa->attr);
}

static void
dec_path_attr(struct rd *r, struct wire_msg *m)
{
	struct wire_path_attr	*pa = m->type == WIRE_MKDIR ? &m->mkdir : &m->meta;

	pa->path = rd_path(r, "path", 0);
	rd_attr(r, &pa->attr);
}

static void
enc_ack(struct wr *w, const struct wire_msg *m)
{
	wr_u8(w, m->ack.ref_kind);
	wr_u64(w, m->ack.ref);
	wr_u16(w, m->ack.status);
	wr_text(w, m->ack.text);
}

static void
dec_ack(struct rd *r, struct wire_msg *m)
{
	m->ack.ref_kind = rd_enum(r, "ref_kind", WIRE_REF_SEQ, WIRE_REF_XFER);
	m->ack.ref = rd_u64(r, "ref");
	m->ack.status = rd_u16(r, "status");
	if (m->ack.status > WIRE_ST_LAST)
		rd_fail(r, "status", "bad value %u (expected 0-%d)", m->ack.status,
		    WIRE_ST_LAST);
	m->ack.text = rd_text(r, "text");
}

static void
enc_ping(struct wr *w, const struct wire_msg *m)
{
	wr_u64(w, m->ping.ts);
}

static void
dec_ping(struct rd *r, struct wire_msg *m)
{
	m->ping.ts = rd_u64(r, "ts");
}

static void
enc_bye(struct wr *w, const struct wire_msg *m)
{
	wr_text(w, m->bye.reason);
}

static void
dec_bye(struct rd *r, struct wire_msg *m)
{
	m->bye.reason = rd_text(r, "reason");
}

static const struct wire_op wire_ops[] = {
	[WIRE_HELLO] = { "HELLO", WIRE_SMALL_MAX, enc_hello, dec_hello },
	[WIRE_MANIFEST_REQ] = { "MANIFEST_REQ", WIRE_SMALL_MAX, enc_manifest_req,
	    dec_manifest_req },
	[WIRE_MANIFEST] = { "MANIFEST", WIRE_MAX_PAYLOAD, enc_chunk_last,
	    dec_chunk_last },
	[WIRE_SIG_REQ] = { "SIG_REQ", WIRE_SMALL_MAX, enc_sig_req, dec_sig_req },
	[WIRE_SIG] = { "SIG", WIRE_MAX_PAYLOAD, enc_chunk_last, dec_chunk_last },
	[WIRE_FILE_BEGIN] = { "FILE_BEGIN", WIRE_SMALL_MAX, enc_file_begin,
	    dec_file_begin },
	[WIRE_FILE_DATA] = { "FILE_DATA", WIRE_MAX_PAYLOAD, enc_file_data,
	    dec_file_data },
	[WIRE_FILE_END] = { "FILE_END", WIRE_SMALL_MAX, enc_file_end, dec_file_end },
	[WIRE_DELETE] = { "DELETE", WIRE_SMALL_MAX, enc_delete, dec_delete },
	[WIRE_RENAME] = { "RENAME", WIRE_SMALL_MAX, enc_rename, dec_rename },
	[WIRE_MKDIR] = { "MKDIR", WIRE_SMALL_MAX, enc_path_attr, dec_path_attr },
	[WIRE_META] = { "META", WIRE_SMALL_MAX, enc_path_attr, dec_path_attr },
	[WIRE_ACK] = { "ACK", WIRE_SMALL_MAX, enc_ack, dec_ack },
	[WIRE_PING] = { "PING", WIRE_SMALL_MAX, enc_ping, dec_ping },
	[WIRE_PONG] = { "PONG", WIRE_SMALL_MAX, enc_ping, dec_ping },
	[WIRE_BYE] = { "BYE", WIRE_SMALL_MAX, enc_bye, dec_bye },
};

static const struct wire_op *
wire_op(int type)
{
	if (type < WIRE_HELLO || type > WIRE_TYPE_LAST)
		return NULL;
	return &wire_ops[type];
}

const char *
wire_type_name(int type)
{
	const struct wire_op	*op = wire_op(type);

	return op == NULL ? "?" : op->name;
}

const char *
wire_status_name(int status)
{
	if (status < 0 || status > WIRE_ST_LAST)
		return "?";
	return wire_status_names[status];
}

int
wire_decode_payload(int type, const void *payload, size_t len,
    struct wire_msg *m, char *err, size_t errlen)
{
	const struct wire_op	*op = wire_op(type);
	struct rd		 r;

	if (op == NULL) {
		snprintf(err, errlen, "unknown frame type %d", type);
		return -1;
	}
	memset(m, 0, offsetof(struct wire_msg, vv_store));
	m->type = (enum wire_type)type;
	m->strs_used = 0;
	memset(&r, 0, sizeof(r));
	r.p = payload;
	r.left = len;
	r.m = m;
	r.what = op->name;
	r.err = err;
	r.errlen = errlen;
	op->dec(&r, m);
	if (!r.bad && r.left > 0)
		rd_fail(&r, "end", "%zu trailing bytes", r.left);
	return r.bad ? -1 : 0;
}

int
wire_encode_payload(const struct wire_msg *m, struct buf *out, char *err,
    size_t errlen)
{
	const struct wire_op	*op = wire_op(m->type);
	struct wire_msg		 chk;	/* on the stack: 13 KiB a frame from
					 * malloc cost the loop a bin search */
	struct wr		 w;
	size_t			 start = out->len;

	if (op == NULL) {
		snprintf(err, errlen, "unknown frame type %d", (int)m->type);
		return -1;
	}
	memset(&w, 0, sizeof(w));
	w.b = out;
	w.what = op->name;
	w.err = err;
	w.errlen = errlen;
	op->enc(&w, m);
	if (w.bad)
		goto fail;
	/* What we send must be what the peer accepts: the same checks. */
	if (wire_decode_payload(m->type, out->data + start, out->len - start,
	    &chk, err, errlen) == -1)
		goto fail;
	return 0;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}

/* The frames. */

static struct evp_mac_ctx_st *
wire_mac_new(const unsigned char *session, const char *label)
{
	unsigned char	 key[32];
	unsigned int	 keylen = 0;
	EVP_MAC		*mac;
	EVP_MAC_CTX	*ctx = NULL;
	OSSL_PARAM	 params[2];

	if (HMAC(EVP_sha256(), session, AUTH_SESSION_KEY_LEN,
	    (const unsigned char *)label, strlen(label), key, &keylen) == NULL)
		return NULL;
	if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		goto done;
	ctx = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx != NULL && !EVP_MAC_init(ctx, key, keylen, params)) {
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
done:
	OPENSSL_cleanse(key, sizeof(key));
	return ctx;
}

int
wire_ctx_init(struct wire_ctx *c, const unsigned char *key, enum auth_role role,
    char *err, size_t errlen)
{
	const char	*tx = role == AUTH_CLIENT ? WIRE_LABEL_C2S : WIRE_LABEL_S2C;
	const char	*rx = role == AUTH_CLIENT ? WIRE_LABEL_S2C : WIRE_LABEL_C2S;

	memset(c, 0, sizeof(*c));
	if ((c->tx = wire_mac_new(key, tx)) == NULL ||
	    (c->rx = wire_mac_new(key, rx)) == NULL) {
		wire_ctx_clear(c);
		snprintf(err, errlen, "wire: cannot set up HMAC-SHA256");
		return -1;
	}
	return 0;
}

void
wire_ctx_clear(struct wire_ctx *c)
{
	EVP_MAC_CTX_free(c->tx);
	EVP_MAC_CTX_free(c->rx);
	memset(c, 0, sizeof(*c));
}

/*
 * MAC of SEQ || FRAME (header and payload); the key was set at init.
 * DIGEST non-NULL: the frame's bytes from WIRE_DATA_OFF on are replaced by
 * their SHA-256 (a FILE_DATA frame on a digest link).
 */
static int
wire_mac(struct evp_mac_ctx_st *ctx, uint64_t seq, const void *frame, size_t len,
    const unsigned char *digest, unsigned char out[WIRE_MAC_LEN])
{
	unsigned char	s[8], full[EVP_MAX_MD_SIZE];
	size_t		outlen = 0, n = len;

	if (digest != NULL)
		n = len < WIRE_DATA_OFF ? len : WIRE_DATA_OFF;
	put_be(s, seq, 8);
	if (!EVP_MAC_init(ctx, NULL, 0, NULL) || !EVP_MAC_update(ctx, s, 8) ||
	    !EVP_MAC_update(ctx, frame, n) ||
	    (digest != NULL && !EVP_MAC_update(ctx, digest, WIRE_HASH_LEN)) ||
	    !EVP_MAC_final(ctx, full, &outlen, sizeof(full)) ||
	    outlen < WIRE_MAC_LEN)
		return -1;
	memcpy(out, full, WIRE_MAC_LEN);
	return 0;
}

/* The SHA-256 of a FILE_DATA frame's data bytes (all after WIRE_DATA_OFF). */
static int
wire_data_digest(const unsigned char *frame, size_t len,
    unsigned char out[WIRE_HASH_LEN])
{
	unsigned int	hl = 0;
	size_t		off = len < WIRE_DATA_OFF ? len : WIRE_DATA_OFF;

	return EVP_Digest(frame + off, len - off, out, &hl, EVP_sha256(),
	    NULL) == 1 && hl == WIRE_HASH_LEN ? 0 : -1;
}

int
wire_encode(struct wire_ctx *c, const struct wire_msg *m, struct buf *out,
    char *err, size_t errlen)
{
	static const unsigned char	 zero[WIRE_HDR_LEN];
	unsigned char			 mac[WIRE_MAC_LEN], dbuf[WIRE_HASH_LEN];
	const unsigned char		*frame, *digest = NULL;
	size_t				 start = out->len, plen;
	int				 use_digest;

	buf_add(out, zero, sizeof(zero));
	if (wire_encode_payload(m, out, err, errlen) == -1)
		goto fail;
	plen = out->len - start - WIRE_HDR_LEN;
	if (plen > wire_op(m->type)->max) {
		snprintf(err, errlen, "%s: payload of %zu bytes (at most %zu)",
		    wire_type_name(m->type), plen, wire_op(m->type)->max);
		goto fail;
	}
	put_be((unsigned char *)out->data + start, plen, 4);
	out->data[start + 4] = (char)m->type;
	frame = (const unsigned char *)out->data + start;
	use_digest = c->digest_data && m->type == WIRE_FILE_DATA;
	/* The caller's digest is of these very bytes (send.c gives the hash
	 * of a file it read whole and sends in one chunk). */
	if (use_digest && (digest = m->file_data.digest) == NULL &&
	    wire_data_digest(frame, out->len - start, dbuf) == 0)
		digest = dbuf;
	if (c->send_seq == UINT64_MAX || (use_digest && digest == NULL) ||
	    wire_mac(c->tx, c->send_seq, frame, out->len - start, digest,
	    mac) == -1) {
		snprintf(err, errlen, "%s: cannot compute the MAC",
		    wire_type_name(m->type));
		goto fail;
	}
	buf_add(out, mac, sizeof(mac));
	c->send_seq++;
	return 0;
fail:
	out->len = start;
	out->data[start] = '\0';
	return -1;
}

enum wire_peek
wire_peek(const void *data, size_t avail, size_t *n, char *err, size_t errlen)
{
	const unsigned char	*p = data;
	const struct wire_op	*op;
	uint64_t		 plen;

	*n = WIRE_HDR_LEN;
	if (avail < WIRE_HDR_LEN)
		return WIRE_NEED;
	plen = get_be(p, 4);
	if ((op = wire_op(p[4])) == NULL) {
		snprintf(err, errlen, "unknown frame type %u", p[4]);
		goto bad;
	}
	if (plen > op->max) {
		snprintf(err, errlen, "%s frame of %llu payload bytes (at most %zu)",
		    op->name, (unsigned long long)plen, op->max);
		goto bad;
	}
	*n = WIRE_HDR_LEN + (size_t)plen + WIRE_MAC_LEN;
	return avail < *n ? WIRE_NEED : WIRE_READY;
bad:
	*n = 0;
	return WIRE_BAD;
}

int
wire_decode(struct wire_ctx *c, const void *frame, size_t len,
    struct wire_msg *m, char *err, size_t errlen)
{
	const unsigned char	*p = frame;
	unsigned char		 mac[WIRE_MAC_LEN], dbuf[WIRE_HASH_LEN];
	size_t			 n;
	enum wire_peek		 st;
	int			 digest;

	if (c->failed) {
		snprintf(err, errlen, "link already failed: no more frames");
		return -1;
	}
	if ((st = wire_peek(frame, len, &n, err, errlen)) == WIRE_BAD)
		goto fail;
	if (st == WIRE_NEED || n != len) {
		snprintf(err, errlen, "frame of %zu bytes, its header says %zu",
		    len, n);
		goto fail;
	}
	digest = c->digest_data && p[4] == WIRE_FILE_DATA;
	if ((digest && wire_data_digest(p, len - WIRE_MAC_LEN, dbuf) == -1) ||
	    wire_mac(c->rx, c->recv_seq, p, len - WIRE_MAC_LEN, digest ? dbuf :
	    NULL, mac) == -1 ||
	    CRYPTO_memcmp(mac, p + len - WIRE_MAC_LEN, WIRE_MAC_LEN) != 0) {
		snprintf(err, errlen, "%s frame #%llu: bad MAC (corrupted, forged, "
		    "replayed or out of order)", wire_type_name(p[4]),
		    (unsigned long long)c->recv_seq);
		goto fail;
	}
	if (wire_decode_payload(p[4], p + WIRE_HDR_LEN,
	    len - WIRE_HDR_LEN - WIRE_MAC_LEN, m, err, errlen) == -1)
		goto fail;
	if (digest) {
		memcpy(m->data_digest, dbuf, WIRE_HASH_LEN);
		m->file_data.digest = m->data_digest;
	}
	m->seq = c->recv_seq++;
	return 0;
fail:
	c->failed = 1;
	return -1;
}
