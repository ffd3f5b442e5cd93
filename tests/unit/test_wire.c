/* test_wire.c: spoolsync's peer frames: every type round trips, and every
 * truncated, oversized, forged, replayed or hostile frame is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <openssl/evp.h>

#include "spoolsync.h"

enum { V_MIN, V_MAX, V_MID };	/* sample variants: least, largest, small chunks */
#define MID_CHUNK	300

static char		 longpath[PATH_REL_MAX + 1], longpath2[PATH_REL_MAX + 1];
static char		 names[WIRE_VV_MAX][WIRE_NAME_MAX + 1];
static struct wire_vv_ent vvmax[WIRE_VV_MAX];
static char		 longtext[WIRE_TEXT_MAX + 1];
static unsigned char	*bigchunk;

static const unsigned char session_key[AUTH_SESSION_KEY_LEN] =
    "0123456789abcdef0123456789abcdef";

static int
fixtures_setup(void **state)
{
	size_t	o = 0;

	/* 16 components of 255 bytes: exactly PATH_REL_MAX. */
	for (int i = 0; i < 16; i++) {
		if (i > 0)
			longpath[o++] = '/';
		memset(longpath + o, 'a' + i, PATH_NAME_MAX);
		o += PATH_NAME_MAX;
	}
	assert_int_equal(o, PATH_REL_MAX);
	memcpy(longpath2, longpath, sizeof(longpath));
	longpath2[0] = 'z';
	for (int i = 0; i < WIRE_VV_MAX; i++) {
		memset(names[i], 'n', WIRE_NAME_MAX);
		memcpy(names[i], "node", 4);
		names[i][4] = (char)('0' + i / 10);
		names[i][5] = (char)('0' + i % 10);
		names[i][6] = '-';
		vvmax[i].node = names[i];
		vvmax[i].counter = UINT64_MAX - (uint64_t)i;
	}
	memset(longtext, 'T', WIRE_TEXT_MAX);
	bigchunk = malloc(WIRE_CHUNK_MAX);
	for (size_t i = 0; i < WIRE_CHUNK_MAX; i++)
		bigchunk[i] = (unsigned char)(i * 7 + (i >> 11));
	return 0;
}

static int
fixtures_teardown(void **state)
{
	free(bigchunk);
	return 0;
}

static void
chunk_fill(struct wire_chunk *c, uint64_t id, int variant, int last)
{
	c->id = variant == V_MIN ? 0 : UINT64_MAX;
	if (variant == V_MID)
		c->id = id;
	c->data = variant == V_MIN ? NULL : bigchunk;
	c->len = variant == V_MIN ? 0 : variant == V_MAX ? WIRE_CHUNK_MAX : MID_CHUNK;
	c->last = last;
}

static void
attr_fill(struct wire_attr *a, int variant)
{
	if (variant == V_MIN) {
		a->mode = 0;
		a->uid = a->gid = 0;
		a->mtime_ns = INT64_MIN;
	} else {
		a->mode = 07777;
		a->uid = a->gid = UINT32_MAX;
		a->mtime_ns = variant == V_MAX ? INT64_MAX : -1;
	}
}

/* A message of TYPE with the least or the largest values each field takes. */
static void
sample(int type, int variant, struct wire_msg *m)
{
	int		 big = variant != V_MIN;
	const char	*path = big ? longpath : "a";
	struct wire_vv	 vv = { big ? vvmax : NULL, big ? WIRE_VV_MAX : 0 };

	memset(m, 0, sizeof(*m));
	m->type = type;
	switch (type) {
	case WIRE_HELLO:
		m->hello.version = big ? UINT16_MAX : 1;
		m->hello.node = big ? names[WIRE_VV_MAX - 1] : "a";
		m->hello.mode = big ? WIRE_MODE_BIDIR : WIRE_MODE_SEND;
		m->hello.flags = big ? UINT32_MAX : 0;
		break;
	case WIRE_MANIFEST_REQ:
		m->manifest_req.id = big ? UINT64_MAX : 0;
		m->manifest_req.dir = big ? longpath : "";
		break;
	case WIRE_MANIFEST:
		chunk_fill(&m->manifest, 7, variant, big);
		break;
	case WIRE_SIG_REQ:
		m->sig_req.xfer = big ? UINT64_MAX : 0;
		m->sig_req.path = path;
		break;
	case WIRE_SIG:
		chunk_fill(&m->sig, 8, variant, !big);
		break;
	case WIRE_FILE_BEGIN:
		m->file_begin.xfer = big ? UINT64_MAX : 0;
		m->file_begin.path = path;
		m->file_begin.kind = big ? WIRE_KIND_APPEND : WIRE_KIND_WHOLE;
		m->file_begin.ftype = MF_FILE;
		m->file_begin.size = big ? INT64_MAX : 0;
		attr_fill(&m->file_begin.attr, variant);
		memset(m->file_begin.sha256, big ? 0xff : 0, WIRE_HASH_LEN);
		m->file_begin.append_off = big ? INT64_MAX : 0;
		m->file_begin.vv = vv;
		break;
	case WIRE_FILE_DATA:
		chunk_fill(&m->file_data, 9, variant, 0);
		break;
	case WIRE_FILE_END:
		m->file_end.xfer = big ? UINT64_MAX : 0;
		break;
	case WIRE_DELETE:
		m->delete.path = path;
		m->delete.is_dir = big;
		m->delete.vv = vv;
		break;
	case WIRE_RENAME:
		m->rename.from = path;
		m->rename.to = big ? longpath2 : "b";
		m->rename.is_dir = big;
		m->rename.vv = vv;
		break;
	case WIRE_MKDIR:
	case WIRE_META:
		m->mkdir.path = path;
		attr_fill(&m->mkdir.attr, variant);
		break;
	case WIRE_ACK:
		m->ack.ref_kind = big ? WIRE_REF_XFER : WIRE_REF_SEQ;
		m->ack.ref = big ? UINT64_MAX : 0;
		m->ack.status = big ? WIRE_ST_LAST : WIRE_ST_OK;
		m->ack.text = big ? longtext : "";
		break;
	case WIRE_PING:
	case WIRE_PONG:
		m->ping.ts = big ? UINT64_MAX : 0;
		break;
	case WIRE_BYE:
		m->bye.reason = big ? longtext : NULL;
		break;
	default:
		fail_msg("no sample for type %d", type);
	}
}

static void
vv_equal(const struct wire_vv *a, const struct wire_vv *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_string_equal(a->e[i].node, b->e[i].node);
		assert_true(a->e[i].counter == b->e[i].counter);
	}
}

static void
attr_equal(const struct wire_attr *a, const struct wire_attr *b)
{
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->gid, b->gid);
	assert_true(a->mtime_ns == b->mtime_ns);
}

static void
chunk_equal(const struct wire_chunk *a, const struct wire_chunk *b, int has_last)
{
	assert_true(a->id == b->id);
	assert_int_equal(a->len, b->len);
	if (a->len > 0)
		assert_memory_equal(a->data, b->data, a->len);
	if (has_last)
		assert_int_equal(a->last, b->last);
	else
		assert_int_equal(b->last, 0);
}

static void
str_equal(const char *sent, const char *got)
{
	assert_non_null(got);
	assert_string_equal(sent == NULL ? "" : sent, got);
}

/* Every field of A (as sent) is in B (as decoded). */
static void
msg_equal(const struct wire_msg *a, const struct wire_msg *b)
{
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case WIRE_HELLO:
		assert_int_equal(a->hello.version, b->hello.version);
		str_equal(a->hello.node, b->hello.node);
		assert_int_equal(a->hello.mode, b->hello.mode);
		assert_int_equal(a->hello.flags, b->hello.flags);
		break;
	case WIRE_MANIFEST_REQ:
		assert_true(a->manifest_req.id == b->manifest_req.id);
		str_equal(a->manifest_req.dir, b->manifest_req.dir);
		break;
	case WIRE_MANIFEST:
		chunk_equal(&a->manifest, &b->manifest, 1);
		break;
	case WIRE_SIG_REQ:
		assert_true(a->sig_req.xfer == b->sig_req.xfer);
		str_equal(a->sig_req.path, b->sig_req.path);
		break;
	case WIRE_SIG:
		chunk_equal(&a->sig, &b->sig, 1);
		break;
	case WIRE_FILE_BEGIN:
		assert_true(a->file_begin.xfer == b->file_begin.xfer);
		str_equal(a->file_begin.path, b->file_begin.path);
		assert_int_equal(a->file_begin.kind, b->file_begin.kind);
		assert_int_equal(a->file_begin.ftype, b->file_begin.ftype);
		assert_true(a->file_begin.size == b->file_begin.size);
		attr_equal(&a->file_begin.attr, &b->file_begin.attr);
		assert_memory_equal(a->file_begin.sha256, b->file_begin.sha256,
		    WIRE_HASH_LEN);
		assert_true(a->file_begin.append_off == b->file_begin.append_off);
		vv_equal(&a->file_begin.vv, &b->file_begin.vv);
		break;
	case WIRE_FILE_DATA:
		chunk_equal(&a->file_data, &b->file_data, 0);
		break;
	case WIRE_FILE_END:
		assert_true(a->file_end.xfer == b->file_end.xfer);
		break;
	case WIRE_DELETE:
		str_equal(a->delete.path, b->delete.path);
		assert_int_equal(a->delete.is_dir, b->delete.is_dir);
		vv_equal(&a->delete.vv, &b->delete.vv);
		break;
	case WIRE_RENAME:
		str_equal(a->rename.from, b->rename.from);
		str_equal(a->rename.to, b->rename.to);
		assert_int_equal(a->rename.is_dir, b->rename.is_dir);
		vv_equal(&a->rename.vv, &b->rename.vv);
		break;
	case WIRE_MKDIR:
	case WIRE_META:
		str_equal(a->mkdir.path, b->mkdir.path);
		attr_equal(&a->mkdir.attr, &b->mkdir.attr);
		break;
	case WIRE_ACK:
		assert_int_equal(a->ack.ref_kind, b->ack.ref_kind);
		assert_true(a->ack.ref == b->ack.ref);
		assert_int_equal(a->ack.status, b->ack.status);
		str_equal(a->ack.text, b->ack.text);
		break;
	case WIRE_PING:
	case WIRE_PONG:
		assert_true(a->ping.ts == b->ping.ts);
		break;
	case WIRE_BYE:
		str_equal(a->bye.reason, b->bye.reason);
		break;
	}
}

static void
link_pair(struct wire_ctx *client, struct wire_ctx *server)
{
	char	err[256];

	assert_int_equal(wire_ctx_init(client, session_key, AUTH_CLIENT, err,
	    sizeof(err)), 0);
	assert_int_equal(wire_ctx_init(server, session_key, AUTH_SERVER, err,
	    sizeof(err)), 0);
}

static void
encode_ok(struct wire_ctx *c, const struct wire_msg *m, struct buf *b)
{
	char	err[512] = "";

	if (wire_encode(c, m, b, err, sizeof(err)) == -1)
		fail_msg("encode %s: %s", wire_type_name(m->type), err);
}

static void
assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* Decodes a payload placed at the very end of an allocation of its size,
 * so that ASan sees any read past it. */
static int
decode_exact(int type, const void *p, size_t len, struct wire_msg *m, char *err,
    size_t errlen)
{
	unsigned char	*copy = malloc(len == 0 ? 1 : len);
	int		 rc;

	memcpy(copy, p, len);
	rc = wire_decode_payload(type, copy, len, m, err, errlen);
	free(copy);
	return rc;
}

static void
test_every_type_round_trips_with_edge_values(void **state)
{
	struct wire_ctx	 a, b;
	struct wire_msg	 m, *got = malloc(sizeof(*got));
	struct buf	 out;
	char		 err[512];
	uint64_t	 seq = 0;

	link_pair(&a, &b);
	for (int v = V_MIN; v <= V_MID; v++)
		for (int t = WIRE_HELLO; t <= WIRE_TYPE_LAST; t++) {
			sample(t, v, &m);
			buf_init(&out);
			encode_ok(&a, &m, &out);
			assert_true(out.len <= WIRE_MAX_FRAME);
			if (wire_decode(&b, out.data, out.len, got, err,
			    sizeof(err)) == -1)
				fail_msg("%s variant %d: %s", wire_type_name(t), v,
				    err);
			assert_true(got->seq == seq++);
			msg_equal(&m, got);
			buf_free(&out);
		}
	free(got);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

static void
test_every_truncation_point_is_malformed(void **state)
{
	struct wire_msg	*m = malloc(sizeof(*m)), *got = malloc(sizeof(*got));
	struct buf	 pl;
	char		 err[512];

	for (int v = V_MIN; v <= V_MID; v += 2)
		for (int t = WIRE_HELLO; t <= WIRE_TYPE_LAST; t++) {
			sample(t, v, m);
			buf_init(&pl);
			assert_int_equal(wire_encode_payload(m, &pl, err,
			    sizeof(err)), 0);
			assert_int_equal(decode_exact(t, pl.data, pl.len, got, err,
			    sizeof(err)), 0);
			for (size_t k = 0; k < pl.len; k++) {
				err[0] = '\0';
				if (decode_exact(t, pl.data, k, got, err,
				    sizeof(err)) != -1)
					fail_msg("%s cut at %zu of %zu decoded",
					    wire_type_name(t), k, pl.len);
				assert_contains(err, wire_type_name(t));
				assert_contains(err, "truncated");
			}
			buf_free(&pl);
		}
	free(m);
	free(got);
}

static void
test_every_truncated_frame_waits_then_fails(void **state)
{
	struct wire_ctx	 a, b;
	struct wire_msg	 m, *got = malloc(sizeof(*got));
	struct buf	 out;
	char		 err[512];
	size_t		 n;

	link_pair(&a, &b);
	for (int t = WIRE_HELLO; t <= WIRE_TYPE_LAST; t++) {
		sample(t, V_MID, &m);
		buf_init(&out);
		encode_ok(&a, &m, &out);
		for (size_t k = 0; k < out.len; k++) {
			assert_int_equal(wire_peek(out.data, k, &n, err,
			    sizeof(err)), WIRE_NEED);
			assert_true(n > k);
			assert_int_equal(n, k < WIRE_HDR_LEN ? WIRE_HDR_LEN : out.len);
			assert_int_equal(wire_decode(&b, out.data, k, got, err,
			    sizeof(err)), -1);
			b.failed = 0;	/* only to try the next cut */
		}
		assert_int_equal(wire_peek(out.data, out.len, &n, err,
		    sizeof(err)), WIRE_READY);
		assert_int_equal(n, out.len);
		assert_int_equal(wire_decode(&b, out.data, out.len, got, err,
		    sizeof(err)), 0);
		buf_free(&out);
	}
	free(got);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

static void
test_trailing_byte_is_malformed_for_every_type(void **state)
{
	struct wire_msg	 m, *got = malloc(sizeof(*got));
	struct buf	 pl;
	char		 err[512];

	for (int t = WIRE_HELLO; t <= WIRE_TYPE_LAST; t++) {
		sample(t, V_MID, &m);
		buf_init(&pl);
		assert_int_equal(wire_encode_payload(&m, &pl, err, sizeof(err)), 0);
		buf_addc(&pl, 0);
		assert_int_equal(decode_exact(t, pl.data, pl.len, got, err,
		    sizeof(err)), -1);
		assert_contains(err, wire_type_name(t));
		assert_contains(err, "1 trailing bytes");
		buf_free(&pl);
	}
	free(got);
}

static void
header(unsigned char h[WIRE_HDR_LEN], uint32_t plen, uint8_t type)
{
	h[0] = (unsigned char)(plen >> 24);
	h[1] = (unsigned char)(plen >> 16);
	h[2] = (unsigned char)(plen >> 8);
	h[3] = (unsigned char)plen;
	h[4] = type;
}

static void
test_frame_over_the_limit_is_refused_at_its_header(void **state)
{
	unsigned char	h[WIRE_HDR_LEN];
	char		err[256];
	size_t		n;

	header(h, WIRE_MAX_PAYLOAD, WIRE_FILE_DATA);
	assert_int_equal(wire_peek(h, sizeof(h), &n, err, sizeof(err)), WIRE_NEED);
	assert_int_equal(n, WIRE_MAX_FRAME);
	header(h, WIRE_MAX_PAYLOAD + 1, WIRE_FILE_DATA);
	assert_int_equal(wire_peek(h, sizeof(h), &n, err, sizeof(err)), WIRE_BAD);
	assert_contains(err, "FILE_DATA frame of 1048641 payload bytes");
	header(h, UINT32_MAX, WIRE_MANIFEST);
	assert_int_equal(wire_peek(h, sizeof(h), &n, err, sizeof(err)), WIRE_BAD);
	/* A small type may not claim a chunk's room. */
	header(h, WIRE_SMALL_MAX, WIRE_PING);
	assert_int_equal(wire_peek(h, sizeof(h), &n, err, sizeof(err)), WIRE_NEED);
	header(h, WIRE_SMALL_MAX + 1, WIRE_PING);
	assert_int_equal(wire_peek(h, sizeof(h), &n, err, sizeof(err)), WIRE_BAD);
	assert_contains(err, "PING frame");
	header(h, 8, 0);
	assert_int_equal(wire_peek(h, sizeof(h), &n, err, sizeof(err)), WIRE_BAD);
	assert_contains(err, "unknown frame type 0");
	header(h, 8, WIRE_TYPE_LAST + 1);
	assert_int_equal(wire_peek(h, sizeof(h), &n, err, sizeof(err)), WIRE_BAD);
}

static void
test_encoder_refuses_chunk_over_the_limit(void **state)
{
	struct wire_ctx	 a, b;
	struct wire_msg	 m;
	struct buf	 out;
	char		 err[256];
	unsigned char	*big = calloc(1, WIRE_CHUNK_MAX + 1);

	link_pair(&a, &b);
	sample(WIRE_FILE_DATA, V_MAX, &m);
	m.file_data.data = big;
	m.file_data.len = WIRE_CHUNK_MAX + 1;
	buf_init(&out);
	assert_int_equal(wire_encode(&a, &m, &out, err, sizeof(err)), -1);
	assert_contains(err, "FILE_DATA: data length");
	assert_int_equal(out.len, 0);
	assert_true(a.send_seq == 0);
	buf_free(&out);
	free(big);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

/* Every single flipped bit anywhere in a frame makes it fail. */
static void
test_flipped_bit_anywhere_fails_the_mac(void **state)
{
	struct wire_ctx	 a, b;
	struct wire_msg	 m, *got = malloc(sizeof(*got));
	struct buf	 out;
	char		 err[512], hdrerr[256];
	unsigned char	*f;
	size_t		 n;

	link_pair(&a, &b);
	sample(WIRE_FILE_BEGIN, V_MIN, &m);
	buf_init(&out);
	encode_ok(&a, &m, &out);
	f = malloc(out.len);
	for (size_t bit = 0; bit < out.len * 8; bit++) {
		memcpy(f, out.data, out.len);
		f[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		err[0] = '\0';
		assert_int_equal(wire_decode(&b, f, out.len, got, err, sizeof(err)),
		    -1);
		/* Unless the header itself gives it away, the MAC does. */
		if (wire_peek(f, out.len, &n, hdrerr, sizeof(hdrerr)) ==
		    WIRE_READY && n == out.len)
			assert_contains(err, "bad MAC");
		assert_true(b.recv_seq == 0);
		b.failed = 0;	/* only to try the next bit */
	}
	assert_int_equal(wire_decode(&b, out.data, out.len, got, err, sizeof(err)),
	    0);
	free(f);
	free(got);
	buf_free(&out);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

/* PING and PONG, MKDIR and META share a payload layout: the type is MACed. */
static void
test_retyped_frame_fails_the_mac(void **state)
{
	static const int	 pairs[][2] = {
		{ WIRE_PING, WIRE_PONG }, { WIRE_PONG, WIRE_PING },
		{ WIRE_MKDIR, WIRE_META }, { WIRE_META, WIRE_MKDIR },
	};
	struct wire_ctx		 a, b;
	struct wire_msg		 m, *got = malloc(sizeof(*got));
	struct buf		 f;
	char			 err[512];

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		link_pair(&a, &b);
		sample(pairs[i][0], V_MID, &m);
		buf_init(&f);
		encode_ok(&a, &m, &f);
		f.data[4] = (char)pairs[i][1];
		assert_int_equal(wire_decode(&b, f.data, f.len, got, err,
		    sizeof(err)), -1);
		assert_contains(err, "bad MAC");
		buf_free(&f);
		wire_ctx_clear(&a);
		wire_ctx_clear(&b);
	}
	free(got);
}

static void
test_replayed_frame_is_refused_and_fails_the_link(void **state)
{
	struct wire_ctx	 a, b;
	struct wire_msg	 m, *got = malloc(sizeof(*got));
	struct buf	 f0, f1;
	char		 err[512];

	link_pair(&a, &b);
	sample(WIRE_DELETE, V_MIN, &m);
	buf_init(&f0);
	buf_init(&f1);
	encode_ok(&a, &m, &f0);
	encode_ok(&a, &m, &f1);
	/* The same message twice: only the sequence number differs. */
	assert_int_equal(f0.len, f1.len);
	assert_memory_not_equal(f0.data, f1.data, f0.len);
	assert_int_equal(wire_decode(&b, f0.data, f0.len, got, err, sizeof(err)), 0);
	assert_int_equal(wire_decode(&b, f0.data, f0.len, got, err, sizeof(err)), -1);
	assert_contains(err, "DELETE frame #1: bad MAC");
	/* Nothing more is taken from a link that carried a bad frame. */
	assert_int_equal(wire_decode(&b, f1.data, f1.len, got, err, sizeof(err)), -1);
	assert_contains(err, "link already failed");
	free(got);
	buf_free(&f0);
	buf_free(&f1);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

static void
test_reordered_frames_are_refused(void **state)
{
	struct wire_ctx	 a, b;
	struct wire_msg	 m, *got = malloc(sizeof(*got));
	struct buf	 f0, f1;
	char		 err[512];

	link_pair(&a, &b);
	sample(WIRE_PING, V_MIN, &m);
	buf_init(&f0);
	buf_init(&f1);
	encode_ok(&a, &m, &f0);
	encode_ok(&a, &m, &f1);
	assert_int_equal(wire_decode(&b, f1.data, f1.len, got, err, sizeof(err)), -1);
	assert_contains(err, "bad MAC");
	free(got);
	buf_free(&f0);
	buf_free(&f1);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

/* Both directions share one session key: a frame sent back to its own
 * sender must still fail. */
static void
test_reflected_frame_is_refused(void **state)
{
	struct wire_ctx	 a, b;
	struct wire_msg	 m, *got = malloc(sizeof(*got));
	struct buf	 f;
	char		 err[512];

	link_pair(&a, &b);
	sample(WIRE_ACK, V_MIN, &m);
	buf_init(&f);
	encode_ok(&a, &m, &f);
	assert_int_equal(wire_decode(&a, f.data, f.len, got, err, sizeof(err)), -1);
	assert_contains(err, "bad MAC");
	assert_int_equal(wire_decode(&b, f.data, f.len, got, err, sizeof(err)), 0);
	free(got);
	buf_free(&f);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

static void
test_frame_under_another_session_key_is_refused(void **state)
{
	struct wire_ctx	 a, b;
	struct wire_msg	 m, *got = malloc(sizeof(*got));
	struct buf	 f;
	unsigned char	 other[AUTH_SESSION_KEY_LEN];
	char		 err[512];

	memcpy(other, session_key, sizeof(other));
	other[31] ^= 1;
	assert_int_equal(wire_ctx_init(&a, other, AUTH_CLIENT, err, sizeof(err)), 0);
	assert_int_equal(wire_ctx_init(&b, session_key, AUTH_SERVER, err,
	    sizeof(err)), 0);
	sample(WIRE_HELLO, V_MIN, &m);
	buf_init(&f);
	encode_ok(&a, &m, &f);
	assert_int_equal(wire_decode(&b, f.data, f.len, got, err, sizeof(err)), -1);
	assert_contains(err, "HELLO frame #0: bad MAC");
	free(got);
	buf_free(&f);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

/* Payload builders for frames no honest encoder writes. */
static void
p16(struct buf *b, unsigned v)
{
	buf_addc(b, (char)(v >> 8));
	buf_addc(b, (char)v);
}

static void
p64(struct buf *b, uint64_t v)
{
	for (int i = 56; i >= 0; i -= 8)
		buf_addc(b, (char)(v >> i));
}

static void
pstr(struct buf *b, const char *s, size_t n)
{
	p16(b, (unsigned)n);
	buf_add(b, s, n);
}

static const struct {
	const char	*path;
	size_t		 len;
	const char	*why;
} hostile[] = {
	{ "../a", 4, "\"..\" component" },
	{ "a/../../b", 9, "\"..\" component" },
	{ "..", 2, "\"..\" component" },
	{ "/abs", 4, "absolute" },
	{ "/", 1, "absolute" },
	{ "a//b", 4, "empty component" },
	{ "a/./b", 5, "\".\" component" },
	{ ".", 1, "\".\" component" },
	{ "a\0b", 3, "NUL" },
	{ "a/", 2, "trailing slash" },
	{ "", 0, "empty" },
};

/* One payload of TYPE carrying PATH (N bytes) where its path field is. */
static void
hostile_payload(int type, const char *path, size_t n, struct buf *b)
{
	buf_reset(b);
	switch (type) {
	case WIRE_DELETE:
		pstr(b, path, n);
		buf_addc(b, 0);
		p16(b, 0);
		break;
	case WIRE_RENAME:
		pstr(b, "ok", 2);
		pstr(b, path, n);
		buf_addc(b, 0);
		p16(b, 0);
		break;
	case WIRE_SIG_REQ:
		p64(b, 1);
		pstr(b, path, n);
		break;
	case WIRE_MKDIR:
	case WIRE_META:
		pstr(b, path, n);
		buf_add(b, "\0\0\0\0" "\0\0\0\0" "\0\0\0\0" "\0\0\0\0\0\0\0\0", 20);
		break;
	case WIRE_MANIFEST_REQ:
		p64(b, 1);
		pstr(b, path, n);
		break;
	}
}

static void
expect_path_refused(int type, const char *field, const char *path, size_t n,
    const char *why)
{
	struct wire_msg	*got = malloc(sizeof(*got));
	struct buf	 b;
	char		 err[512], want[64];

	buf_init(&b);
	hostile_payload(type, path, n, &b);
	err[0] = '\0';
	if (decode_exact(type, b.data, b.len, got, err, sizeof(err)) != -1)
		fail_msg("%s accepted a %zu-byte path (%s)", wire_type_name(type),
		    n, why);
	snprintf(want, sizeof(want), "%s: %s: ", wire_type_name(type), field);
	assert_contains(err, want);
	assert_contains(err, why);
	buf_free(&b);
	free(got);
}

static void
test_hostile_paths_are_refused_naming_the_field(void **state)
{
	static const struct { int type; const char *field; } where[] = {
		{ WIRE_DELETE, "path" }, { WIRE_RENAME, "to" },
		{ WIRE_SIG_REQ, "path" }, { WIRE_MKDIR, "path" },
		{ WIRE_META, "path" },
	};
	char	*p = malloc(PATH_REL_MAX + 2);

	for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++)
		for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
			expect_path_refused(where[w].type, where[w].field,
			    hostile[i].path, hostile[i].len, hostile[i].why);
	memset(p, 'a', PATH_REL_MAX + 2);
	expect_path_refused(WIRE_DELETE, "path", p, PATH_REL_MAX + 2,
	    "4097 bytes long");
	expect_path_refused(WIRE_DELETE, "path", p, PATH_REL_MAX + 1,
	    "4096 bytes long");
	memcpy(p, "dir/", 4);
	expect_path_refused(WIRE_DELETE, "path", p, 4 + PATH_NAME_MAX + 1,
	    "component of 256 bytes");
	/* The root is only ever asked for, never written to. */
	expect_path_refused(WIRE_MANIFEST_REQ, "dir", "/abs", 4, "absolute");
	expect_path_refused(WIRE_MANIFEST_REQ, "dir", "..", 2, "\"..\"");
	expect_path_refused(WIRE_DELETE, "path", "", 0, "empty");
	free(p);
}

static void
test_longest_valid_path_is_accepted(void **state)
{
	struct wire_msg	*got = malloc(sizeof(*got));
	struct buf	 b;
	char		 err[512];

	buf_init(&b);
	hostile_payload(WIRE_DELETE, longpath, strlen(longpath), &b);
	assert_int_equal(decode_exact(WIRE_DELETE, b.data, b.len, got, err,
	    sizeof(err)), 0);
	assert_string_equal(got->delete.path, longpath);
	buf_free(&b);
	free(got);
}

static void
test_encoder_refuses_hostile_path_and_leaves_buffer_unchanged(void **state)
{
	struct wire_ctx	 a, b;
	struct wire_msg	 m, *got = malloc(sizeof(*got));
	struct buf	 out;
	char		 err[512];

	link_pair(&a, &b);
	buf_init(&out);
	buf_adds(&out, "before");
	sample(WIRE_RENAME, V_MIN, &m);
	m.rename.to = "x/../../etc";
	assert_int_equal(wire_encode(&a, &m, &out, err, sizeof(err)), -1);
	assert_contains(err, "RENAME: to: invalid path");
	assert_int_equal(out.len, 6);
	assert_string_equal(out.data, "before");
	assert_true(a.send_seq == 0);
	m.rename.to = NULL;
	assert_int_equal(wire_encode(&a, &m, &out, err, sizeof(err)), -1);
	assert_contains(err, "RENAME: to: missing");
	/* The refused frames took no sequence number: the next one decodes. */
	m.rename.to = "b";
	buf_reset(&out);
	encode_ok(&a, &m, &out);
	assert_int_equal(wire_decode(&b, out.data, out.len, got, err, sizeof(err)),
	    0);
	buf_free(&out);
	free(got);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

/* Payload with byte OFF replaced by V, then decoded; ERR must name FIELD. */
static void
expect_byte_refused(int type, int variant, size_t off, unsigned char v,
    const char *field)
{
	struct wire_msg	 m, *got = malloc(sizeof(*got));
	struct buf	 pl;
	char		 err[512], want[64];

	sample(type, variant, &m);
	buf_init(&pl);
	assert_int_equal(wire_encode_payload(&m, &pl, err, sizeof(err)), 0);
	assert_true(off < pl.len);
	pl.data[off] = (char)v;
	err[0] = '\0';
	if (decode_exact(type, pl.data, pl.len, got, err, sizeof(err)) != -1)
		fail_msg("%s with byte %zu = %u accepted", wire_type_name(type),
		    off, v);
	snprintf(want, sizeof(want), "%s: %s: ", wire_type_name(type), field);
	assert_contains(err, want);
	buf_free(&pl);
	free(got);
}

static void
test_bad_enum_values_are_refused_naming_the_field(void **state)
{
	/* HELLO(min): version 2, node 2+1, mode at 5. */
	expect_byte_refused(WIRE_HELLO, V_MIN, 5, 0, "mode");
	expect_byte_refused(WIRE_HELLO, V_MIN, 5, 4, "mode");
	expect_byte_refused(WIRE_HELLO, V_MIN, 1, 0, "version");
	expect_byte_refused(WIRE_HELLO, V_MIN, 4, '/', "node");
	/* FILE_BEGIN(min): xfer 8, path 2+1, kind at 11, ftype at 12. */
	expect_byte_refused(WIRE_FILE_BEGIN, V_MIN, 11, 0, "kind");
	expect_byte_refused(WIRE_FILE_BEGIN, V_MIN, 11, 4, "kind");
	expect_byte_refused(WIRE_FILE_BEGIN, V_MIN, 12, MF_DIR, "ftype");
	expect_byte_refused(WIRE_FILE_BEGIN, V_MIN, 12, 0, "ftype");
	/* size at 13: top bit set is beyond off_t. */
	expect_byte_refused(WIRE_FILE_BEGIN, V_MIN, 13, 0x80, "size");
	/* mode at 21: 0x00010000 has a bit outside 07777. */
	expect_byte_refused(WIRE_FILE_BEGIN, V_MIN, 23, 0x10, "mode");
	/* MANIFEST and SIG: id 8, last at 8. */
	expect_byte_refused(WIRE_MANIFEST, V_MIN, 8, 2, "last");
	expect_byte_refused(WIRE_SIG, V_MIN, 8, 0xff, "last");
	/* DELETE(min): path 2+1, is_dir at 3. */
	expect_byte_refused(WIRE_DELETE, V_MIN, 3, 2, "is_dir");
	/* RENAME(min): from 2+1, to 2+1, is_dir at 6. */
	expect_byte_refused(WIRE_RENAME, V_MIN, 6, 1 << 7, "is_dir");
	/* ACK: ref_kind at 0, status at 9-10. */
	expect_byte_refused(WIRE_ACK, V_MIN, 0, 0, "ref_kind");
	expect_byte_refused(WIRE_ACK, V_MIN, 0, 3, "ref_kind");
	expect_byte_refused(WIRE_ACK, V_MIN, 10, WIRE_ST_LAST + 1, "status");
	expect_byte_refused(WIRE_ACK, V_MIN, 9, 1, "status");
	/* MKDIR(min): path 2+1, mode at 3. */
	expect_byte_refused(WIRE_MKDIR, V_MIN, 5, 0x10, "mode");
	/* A control byte in a text. */
	expect_byte_refused(WIRE_BYE, V_MID, 2, '\n', "reason");
	expect_byte_refused(WIRE_ACK, V_MID, 13, 0x7f, "text");
}

static void
expect_payload_refused(int type, struct buf *pl, const char *want)
{
	struct wire_msg	*got = malloc(sizeof(*got));
	char		 err[512] = "";

	if (decode_exact(type, pl->data, pl->len, got, err, sizeof(err)) != -1)
		fail_msg("%s accepted (expected \"%s\")", wire_type_name(type), want);
	assert_contains(err, want);
	free(got);
}

static void
test_counts_over_limits_are_refused_naming_the_field(void **state)
{
	struct buf	pl;
	char		s[WIRE_TEXT_MAX + 1];

	memset(s, 'x', sizeof(s));
	buf_init(&pl);
	/* A count over the limit is refused before its entries are read. */
	pstr(&pl, "a", 1);
	buf_addc(&pl, 0);
	p16(&pl, WIRE_VV_MAX + 1);
	expect_payload_refused(WIRE_DELETE, &pl,
	    "DELETE: vv count: 65 entries (at most 64)");
	buf_reset(&pl);
	p16(&pl, 1);
	pstr(&pl, s, WIRE_NAME_MAX + 1);
	expect_payload_refused(WIRE_HELLO, &pl, "HELLO: node: 65 bytes long");
	buf_reset(&pl);
	pstr(&pl, s, WIRE_TEXT_MAX + 1);
	expect_payload_refused(WIRE_BYE, &pl, "BYE: reason: 1025 bytes long");
	buf_reset(&pl);
	p64(&pl, 1);
	p16(&pl, WIRE_CHUNK_MAX >> 16);		/* u32 length: CHUNK_MAX + 1 */
	p16(&pl, 1);
	expect_payload_refused(WIRE_FILE_DATA, &pl,
	    "FILE_DATA: data length: 1048577 bytes");
	buf_reset(&pl);
	p64(&pl, 1);
	p16(&pl, 0);
	p16(&pl, 10);	/* claims 10 bytes, has 0 */
	expect_payload_refused(WIRE_FILE_DATA, &pl, "FILE_DATA: data: truncated");
	buf_free(&pl);
}

static void
test_duplicate_node_in_version_vector_is_refused(void **state)
{
	struct buf	pl;

	buf_init(&pl);
	pstr(&pl, "a", 1);
	pstr(&pl, "b", 1);
	buf_addc(&pl, 0);
	p16(&pl, 3);
	pstr(&pl, "x", 1);
	p64(&pl, 1);
	pstr(&pl, "y", 1);
	p64(&pl, 2);
	pstr(&pl, "x", 1);
	p64(&pl, 3);
	expect_payload_refused(WIRE_RENAME, &pl,
	    "RENAME: vv[2].node: \"x\" appears twice");
	buf_reset(&pl);
	pstr(&pl, "a", 1);
	buf_addc(&pl, 0);
	p16(&pl, 1);
	pstr(&pl, "b@d", 3);
	p64(&pl, 1);
	expect_payload_refused(WIRE_DELETE, &pl, "DELETE: vv[0].node: bad node name");
	buf_free(&pl);
}

static void
expect_begin_refused(struct wire_msg *m, const char *want)
{
	struct buf	pl;
	char		err[512] = "";

	buf_init(&pl);
	assert_int_equal(wire_encode_payload(m, &pl, err, sizeof(err)), -1);
	assert_contains(err, want);
	assert_int_equal(pl.len, 0);
	buf_free(&pl);
}

static void
test_file_begin_kind_and_append_offset_must_agree(void **state)
{
	struct wire_msg	m;

	sample(WIRE_FILE_BEGIN, V_MIN, &m);
	m.file_begin.append_off = 1;
	expect_begin_refused(&m, "FILE_BEGIN: append_off: must be 0 unless");
	m.file_begin.kind = WIRE_KIND_APPEND;
	m.file_begin.size = 10;
	m.file_begin.append_off = 11;
	expect_begin_refused(&m, "FILE_BEGIN: append_off: 11 is beyond size 10");
	m.file_begin.append_off = 10;
	m.file_begin.ftype = MF_LINK;
	expect_begin_refused(&m, "FILE_BEGIN: kind: a symlink goes whole");
	m.file_begin.kind = WIRE_KIND_DELTA;
	m.file_begin.append_off = 0;
	expect_begin_refused(&m, "FILE_BEGIN: kind: a symlink goes whole");
	m.file_begin.ftype = MF_FILE;
	m.file_begin.size = (uint64_t)INT64_MAX + 1;
	expect_begin_refused(&m, "FILE_BEGIN: size: 9223372036854775808 is beyond");
	m.file_begin.size = 0;
	m.file_begin.attr.mode = 010000;
	expect_begin_refused(&m, "FILE_BEGIN: mode: 010000 has bits outside 07777");
}

static void
test_encoder_defangs_text_instead_of_refusing(void **state)
{
	struct wire_ctx	 a, b;
	struct wire_msg	 m, *got = malloc(sizeof(*got));
	struct buf	 out;
	char		 err[512], *text = malloc(3000);

	link_pair(&a, &b);
	memset(text, 'e', 2999);
	text[2999] = '\0';
	memcpy(text, "disk\nfull\x1b[31m\x7f", 15);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_ACK;
	m.ack.ref_kind = WIRE_REF_XFER;
	m.ack.status = WIRE_ST_NOSPACE;
	m.ack.text = text;
	buf_init(&out);
	encode_ok(&a, &m, &out);
	assert_int_equal(wire_decode(&b, out.data, out.len, got, err, sizeof(err)),
	    0);
	assert_int_equal(strlen(got->ack.text), WIRE_TEXT_MAX);
	assert_memory_equal(got->ack.text, "disk?full?[31m?e", 16);
	buf_free(&out);
	free(text);
	free(got);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

/*
 * The whole conversation through a libevent evbuffer that grows one byte at
 * a time, read the way a bufferevent read callback will read it.
 */
static void
test_stream_fed_one_byte_at_a_time_through_an_evbuffer(void **state)
{
	struct wire_ctx	 a, b;
	struct wire_msg	*sent = calloc(3 * WIRE_TYPE_LAST, sizeof(*sent));
	struct wire_msg	*got = malloc(sizeof(*got));
	struct evbuffer	*in = evbuffer_new();
	enum wire_peek	 st;
	struct buf	 stream;
	char		 err[512];
	size_t		 nsent = 0, ngot = 0, n, avail;
	unsigned char	*p;

	link_pair(&a, &b);
	buf_init(&stream);
	for (int v = V_MIN; v <= V_MID; v++)
		for (int t = WIRE_HELLO; t <= WIRE_TYPE_LAST; t++) {
			sample(t, v, &sent[nsent]);
			encode_ok(&a, &sent[nsent++], &stream);
		}
	for (size_t i = 0; i < stream.len; i++) {
		evbuffer_add(in, stream.data + i, 1);
		avail = evbuffer_get_length(in);
		p = evbuffer_pullup(in, avail < WIRE_HDR_LEN ? (ssize_t)avail :
		    WIRE_HDR_LEN);
		st = wire_peek(p, avail, &n, err, sizeof(err));
		if (st == WIRE_BAD)
			fail_msg("byte %zu: %s", i, err);
		if (st == WIRE_NEED) {
			assert_true(n > avail);
			continue;
		}
		assert_int_equal(n, avail);
		p = evbuffer_pullup(in, (ssize_t)n);
		if (wire_decode(&b, p, n, got, err, sizeof(err)) == -1)
			fail_msg("frame %zu: %s", ngot, err);
		assert_true(ngot < nsent);
		msg_equal(&sent[ngot++], got);
		evbuffer_drain(in, n);
	}
	assert_int_equal(ngot, nsent);
	assert_int_equal(evbuffer_get_length(in), 0);
	evbuffer_free(in);
	buf_free(&stream);
	free(sent);
	free(got);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

static void
test_node_names_are_a_small_alphabet(void **state)
{
	assert_true(wire_name_valid("a"));
	assert_true(wire_name_valid("backend-2.example_net"));
	assert_true(wire_name_valid(names[0]));
	assert_false(wire_name_valid(""));
	assert_false(wire_name_valid(NULL));
	assert_false(wire_name_valid("."));
	assert_false(wire_name_valid(".."));
	assert_true(wire_name_valid("..."));
	assert_true(wire_name_valid(".a"));
	assert_false(wire_name_valid("a b"));
	assert_false(wire_name_valid("a/b"));
	assert_false(wire_name_valid(longtext));	/* 1024 bytes */
	assert_string_equal(wire_type_name(WIRE_FILE_BEGIN), "FILE_BEGIN");
	assert_string_equal(wire_type_name(0), "?");
	assert_string_equal(wire_status_name(WIRE_ST_STALE), "stale");
	assert_string_equal(wire_status_name(99), "?");
}

/* A FILE_DATA frame on a digest link (version 2 both ways). */
static void
digest_frame(struct wire_ctx *a, const unsigned char *data, size_t len,
    const unsigned char *given, struct buf *out)
{
	struct wire_msg	m;

	memset(&m, 0, sizeof(m));
	m.type = WIRE_FILE_DATA;
	m.file_data.id = 42;
	m.file_data.data = data;
	m.file_data.len = len;
	m.file_data.digest = given;
	encode_ok(a, &m, out);
}

/* Version 2: the MAC covers the data's SHA-256, which the decoder hands
 * on; the caller's digest, when given, is the one sent. */
static void
test_digest_link_data_frame_carries_its_sha256(void **state)
{
	static const unsigned char data[] = "the bytes of a small file\n";
	struct wire_ctx	 a, b;
	struct wire_msg	*got = malloc(sizeof(*got));
	struct buf	 out, out2;
	unsigned char	 h[WIRE_HASH_LEN];
	unsigned int	 hl;
	char		 err[512];

	link_pair(&a, &b);
	a.digest_data = b.digest_data = 1;
	EVP_Digest(data, sizeof(data) - 1, h, &hl, EVP_sha256(), NULL);
	buf_init(&out);
	buf_init(&out2);
	digest_frame(&a, data, sizeof(data) - 1, NULL, &out);
	assert_int_equal(wire_decode(&b, out.data, out.len, got, err,
	    sizeof(err)), 0);
	assert_int_equal(got->file_data.len, sizeof(data) - 1);
	assert_memory_equal(got->file_data.data, data, sizeof(data) - 1);
	assert_non_null(got->file_data.digest);
	assert_memory_equal(got->file_data.digest, h, WIRE_HASH_LEN);
	/* The same frame, with the digest given: the same bytes on the wire
	 * (the next sequence number aside: compare with a fresh pair). */
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
	link_pair(&a, &b);
	a.digest_data = b.digest_data = 1;
	digest_frame(&a, data, sizeof(data) - 1, h, &out2);
	assert_int_equal(out2.len, out.len);
	assert_memory_equal(out2.data, out.data, out.len);
	/* A version 1 link hands on no digest. */
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
	link_pair(&a, &b);
	out.len = 0;
	digest_frame(&a, data, sizeof(data) - 1, NULL, &out);
	assert_int_equal(wire_decode(&b, out.data, out.len, got, err,
	    sizeof(err)), 0);
	assert_null(got->file_data.digest);
	free(got);
	buf_free(&out);
	buf_free(&out2);
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
}

/* Every flipped bit of a version 2 FILE_DATA frame, data bytes included,
 * fails it; so does a digest that is not the data's, and a frame MACed by
 * one version read by the other. */
static void
test_digest_link_frame_fails_on_any_change(void **state)
{
	unsigned char	 data[300], wrong[WIRE_HASH_LEN];
	struct wire_ctx	 a, b;
	struct wire_msg	*got = malloc(sizeof(*got));
	struct buf	 out;
	char		 err[512];
	unsigned char	*f;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 31);
	link_pair(&a, &b);
	a.digest_data = b.digest_data = 1;
	buf_init(&out);
	digest_frame(&a, data, sizeof(data), NULL, &out);
	f = malloc(out.len);
	for (size_t bit = 0; bit < out.len * 8; bit++) {
		memcpy(f, out.data, out.len);
		f[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		assert_int_equal(wire_decode(&b, f, out.len, got, err,
		    sizeof(err)), -1);
		assert_true(b.recv_seq == 0);
		b.failed = 0;	/* only to try the next bit */
	}
	assert_int_equal(wire_decode(&b, out.data, out.len, got, err, sizeof(err)),
	    0);
	/* A digest that is not of the bytes sent: refused by the peer. */
	memset(wrong, 0x5a, sizeof(wrong));
	out.len = 0;
	digest_frame(&a, data, sizeof(data), wrong, &out);
	assert_int_equal(wire_decode(&b, out.data, out.len, got, err, sizeof(err)),
	    -1);
	assert_contains(err, "bad MAC");
	wire_ctx_clear(&a);
	wire_ctx_clear(&b);
	/* Version 2 written, version 1 read, and the other way round. */
	for (int v2_sender = 0; v2_sender < 2; v2_sender++) {
		link_pair(&a, &b);
		a.digest_data = v2_sender;
		b.digest_data = !v2_sender;
		out.len = 0;
		digest_frame(&a, data, sizeof(data), NULL, &out);
		assert_int_equal(wire_decode(&b, out.data, out.len, got, err,
		    sizeof(err)), -1);
		assert_contains(err, "bad MAC");
		wire_ctx_clear(&a);
		wire_ctx_clear(&b);
	}
	free(f);
	free(got);
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_type_round_trips_with_edge_values),
		cmocka_unit_test(test_every_truncation_point_is_malformed),
		cmocka_unit_test(test_every_truncated_frame_waits_then_fails),
		cmocka_unit_test(test_trailing_byte_is_malformed_for_every_type),
		cmocka_unit_test(test_frame_over_the_limit_is_refused_at_its_header),
		cmocka_unit_test(test_encoder_refuses_chunk_over_the_limit),
		cmocka_unit_test(test_flipped_bit_anywhere_fails_the_mac),
		cmocka_unit_test(test_retyped_frame_fails_the_mac),
		cmocka_unit_test(test_replayed_frame_is_refused_and_fails_the_link),
		cmocka_unit_test(test_reordered_frames_are_refused),
		cmocka_unit_test(test_reflected_frame_is_refused),
		cmocka_unit_test(test_frame_under_another_session_key_is_refused),
		cmocka_unit_test(test_hostile_paths_are_refused_naming_the_field),
		cmocka_unit_test(test_longest_valid_path_is_accepted),
		cmocka_unit_test(test_encoder_refuses_hostile_path_and_leaves_buffer_unchanged),
		cmocka_unit_test(test_bad_enum_values_are_refused_naming_the_field),
		cmocka_unit_test(test_counts_over_limits_are_refused_naming_the_field),
		cmocka_unit_test(test_duplicate_node_in_version_vector_is_refused),
		cmocka_unit_test(test_file_begin_kind_and_append_offset_must_agree),
		cmocka_unit_test(test_encoder_defangs_text_instead_of_refusing),
		cmocka_unit_test(test_stream_fed_one_byte_at_a_time_through_an_evbuffer),
		cmocka_unit_test(test_node_names_are_a_small_alphabet),
		cmocka_unit_test(test_digest_link_data_frame_carries_its_sha256),
		cmocka_unit_test(test_digest_link_frame_fails_on_any_change),
	};
	return cmocka_run_group_tests(tests, fixtures_setup, fixtures_teardown);
}
