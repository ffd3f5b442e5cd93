/*
 * fuzz_wire.c: libFuzzer target for spoolsync's peer frames: the stream
 * framer and MAC check on raw bytes, and every payload decoder, whose every
 * accepted input must re-encode to the same bytes and survive a sealed trip.
 *
 * Input: byte 0 even: byte 1 is a frame type, the rest its payload;
 *        byte 0 odd: the rest is a byte stream off an authenticated link.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../spoolsync/spoolsync.h"

static const unsigned char fuzz_key[AUTH_SESSION_KEY_LEN] = "fuzz-session-key-0123456789abcde";

static void
fuzz_die(const char *what, const char *err)
{
	fprintf(stderr, "fuzz_wire: %s: %s\n", what, err);
	abort();
}

static void
fuzz_ctx(struct wire_ctx *c, enum auth_role role)
{
	char	err[256];

	if (wire_ctx_init(c, fuzz_key, role, err, sizeof(err)) == -1)
		fuzz_die("ctx", err);
}

/* A decoded payload is canonical: encoding it gives back the same bytes. */
static void
fuzz_payload(int type, const uint8_t *p, size_t len)
{
	static struct wire_ctx	 tx, rx;
	static int		 ready;
	static struct wire_msg	 m, back;
	struct buf		 out;
	char			 err[512] = "";

	if (!ready) {
		fuzz_ctx(&tx, AUTH_CLIENT);
		fuzz_ctx(&rx, AUTH_SERVER);
		ready = 1;
	}
	if (wire_decode_payload(type, p, len, &m, err, sizeof(err)) == -1) {
		if (err[0] == '\0')
			fuzz_die("decode", "refused without a reason");
		return;
	}
	buf_init(&out);
	if (wire_encode_payload(&m, &out, err, sizeof(err)) == -1)
		fuzz_die("re-encode of an accepted payload", err);
	if (out.len != len || memcmp(out.data, p, len) != 0)
		fuzz_die("re-encode", "differs from the accepted payload");
	buf_reset(&out);
	if (wire_encode(&tx, &m, &out, err, sizeof(err)) == -1)
		fuzz_die("seal", err);
	if (wire_decode(&rx, out.data, out.len, &back, err, sizeof(err)) == -1)
		fuzz_die("open of a sealed frame", err);
	if (back.type != m.type)
		fuzz_die("open", "type changed");
	buf_free(&out);
}

/* Raw bytes off the link: the framer never over-reads nor over-promises. */
static void
fuzz_stream(const uint8_t *p, size_t len)
{
	static struct wire_msg	 m;
	struct wire_ctx		 rx;
	size_t			 off = 0, n;
	char			 err[512];
	enum wire_peek		 st;

	fuzz_ctx(&rx, AUTH_SERVER);
	while (off < len) {
		st = wire_peek(p + off, len - off, &n, err, sizeof(err));
		if (st == WIRE_BAD)
			break;
		if (st == WIRE_NEED) {
			if (n <= len - off || n > WIRE_MAX_FRAME)
				fuzz_die("peek", "bad need");
			break;
		}
		if (n > len - off || n < WIRE_HDR_LEN + WIRE_MAC_LEN)
			fuzz_die("peek", "bad frame length");
		if (wire_decode(&rx, p + off, n, &m, err, sizeof(err)) == -1)
			rx.failed = 0;	/* keep going: exercise the rest */
		off += n;
	}
	wire_ctx_clear(&rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (data[0] & 1)
		fuzz_stream(data + 1, size - 1);
	else
		fuzz_payload(data[1], data + 2, size - 2);
	return 0;
}
