/*
 * fuzz_xmlfilter.c: libFuzzer target for proxyd's XML filter: the lexer, the
 * repair stage, expat and the tree builder, and the canonical writer.
 *
 * Input: byte 0 holds flags (bit 0 repair mode, bit 1 authenticated, bit 2
 * keep the parser, bit 3 small limits) and bits 4-7 seed the read sizes; the
 * rest is the byte stream.  Properties checked, any failure aborts:
 *  - the events and the error do not depend on how the stream is split;
 *  - every error has a condition and a text;
 *  - memory never passes the limit;
 *  - what proxyd writes from the events parses strictly, with no error, to
 *    the same events (the writer is canonical and only writes valid XML);
 *  - in pass mode (on from each stream header, as for a bound backend
 *    stream), the same reads give the same events: every stanza passed as
 *    its bytes parses alone to exactly what the parse path made of it;
 *  - in its writing variant (as for a bound client stream), the same reads
 *    give the same log: every stanza written is, byte for byte, what the
 *    serializer writes from the parse path's tree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../proxyd/proxyd.h"

struct fz {
	struct buf		 log;	/* the events, as written by proxyd */
	size_t			 okl;	/* its length before an error line */
	struct buf		 out;	/* the bytes proxyd would send on */
	struct xmlstream	*xs;
	int			 pass;	/* from each header on: 1 pass mode, 2 writing */
	char			*why;	/* the error's text, if any */
};

static int	fz_raw(void *, const void *, size_t);
static int	fz_written(void *, const void *, size_t);

static void
fz_die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_xmlfilter: %s: %s\n", what, detail);
	abort();
}

static int
fz_open(void *arg, const struct xml_node *root)
{
	struct fz	*f = arg;

	buf_adds(&f->log, "O");
	serialize_header(&f->log, root, NULL);
	buf_adds(&f->log, "\n");
	serialize_header(&f->out, root, NULL);
	if (f->pass == 1)
		xmlstream_set_pass(f->xs, fz_raw);
	else if (f->pass == 2)
		xmlstream_set_write(f->xs, fz_written);
	return 0;
}

static int
fz_stanza(void *arg, const struct xml_node *n)
{
	struct fz	*f = arg;

	buf_adds(&f->log, "S");
	serialize_stanza(&f->log, n, NULL);
	buf_adds(&f->log, "\n");
	serialize_stanza(&f->out, n, NULL);
	/* as after SASL success: the stream restarts (the reparse does too) */
	return strcmp(n->name, "auth") == 0;
}

static int
fz_close(void *arg)
{
	struct fz	*f = arg;

	buf_adds(&f->log, "C\n");
	serialize_close(&f->out);
	return 0;
}

static const struct xmlstream_cb fz_cb = { fz_open, fz_stanza, fz_close };

/* A passed stanza: what it means alone in a client stream, logged and
 * written as fz_stanza would have. */
static int
fz_meaning(void *arg, const struct xml_node *n)
{
	struct fz	*g = arg;

	if (g->log.len > 0)
		fz_die("pass", "a passed item holds more than one stanza");
	serialize_stanza(&g->log, n, NULL);
	g->okl = strcmp(n->name, "auth") == 0;
	return 0;
}

static int
fz_raw(void *arg, const void *stanza, size_t len)
{
	static const char	 hdr[] = "<stream:stream xmlns='jabber:client' "
	    "xmlns:stream='http://etherx.jabber.org/streams'>";
	static const struct xmlstream_cb cb = { NULL, fz_meaning, NULL };
	struct fz		*f = arg;
	struct xml_limits	 lim;
	struct fz		 g;

	xmlfilter_limits_default(&lim);
	lim.stanza_bytes = lim.text_bytes = lim.attr_bytes = 64 * 1024 * 1024;
	lim.buffer_bytes = 1024 * 1024 * 1024;
	memset(&g, 0, sizeof(g));
	buf_init(&g.log);
	g.xs = xmlstream_new(&lim, NULL, 0, &cb, &g);
	xmlstream_set_auth(g.xs, 1);
	if (xmlstream_feed(g.xs, hdr, sizeof(hdr) - 1) != XMLS_OK ||
	    xmlstream_feed(g.xs, stanza, len) != XMLS_OK || g.log.len == 0) {
		fprintf(stderr, "passed: %.*s\n", (int)len, (const char *)stanza);
		fz_die("pass", "a passed stanza does not parse alone");
	}
	buf_adds(&f->log, "S");
	buf_add(&f->log, g.log.data, g.log.len);
	buf_adds(&f->log, "\n");
	buf_add(&f->out, g.log.data, g.log.len);
	xmlstream_free(g.xs);
	buf_free(&g.log);
	return (int)g.okl;
}

/* A written stanza: logged as it is, so the log equals the parse path's
 * only if these are the serializer's bytes. */
static int
fz_written(void *arg, const void *stanza, size_t len)
{
	struct fz	*f = arg;

	buf_adds(&f->log, "S");
	buf_add(&f->log, stanza, len);
	buf_adds(&f->log, "\n");
	buf_add(&f->out, stanza, len);
	return len >= 6 && memcmp(stanza, "<auth", 5) == 0 &&
	    strchr(" />", ((const char *)stanza)[5]) != NULL;
}

static void
fz_limits(struct xml_limits *lim, int small)
{
	xmlfilter_limits_default(lim);
	if (!small)
		return;
	lim->stanza_bytes = lim->stanza_bytes_preauth = 1024;
	lim->depth = 4;
	lim->attrs = 4;
	lim->attr_bytes = 3072;
	lim->text_bytes = 1024;
	lim->ns_decls = 2;
	lim->buffer_bytes = lim->buffer_bytes_preauth = 65536;
}

static int
fz_step(struct xmlstream *xs, int rc)
{
	while (rc == XMLS_STOPPED) {
		xmlstream_restart(xs);
		rc = xmlstream_resume(xs);
	}
	return rc;
}

/* Runs the stream; SEED 0 feeds it whole, else in pseudo-random reads. */
static void
fz_run(struct fz *f, const struct xml_limits *lim, int flags, int authed,
    const uint8_t *p, size_t n, unsigned seed, int pass)
{
	size_t	at = 0, k;
	int	rc = XMLS_OK;

	f->pass = pass;
	f->why = NULL;
	buf_init(&f->log);
	buf_init(&f->out);
	buf_adds(&f->log, "");
	buf_adds(&f->out, "");
	f->xs = xmlstream_new(lim, NULL, flags, &fz_cb, f);
	xmlstream_set_auth(f->xs, authed);
	while (at < n && rc != XMLS_ERROR) {
		k = n - at;
		if (seed != 0) {
			seed = seed * 1103515245u + 12345u;
			k = 1 + (seed >> 16) % (seed & 0x100 ? 3 : 64);
			if (k > n - at)
				k = n - at;
		}
		rc = fz_step(f->xs, xmlstream_feed(f->xs, p + at, k));
		if (seed != 0 && (seed & 0x200))
			xmlstream_trim(f->xs);
		at += k;
	}
	if (xmlstream_mempeak(f->xs) > 4096 +
	    (authed ? lim->buffer_bytes : lim->buffer_bytes_preauth))
		fz_die("memory", "over the limit");
	f->okl = f->log.len;
	if (rc != XMLS_ERROR)
		return;
	if (xmlstream_error(f->xs) == XML_COND_NONE || xmlstream_error_text(f->xs)[0] == '\0')
		fz_die("error", "no condition or no text");
	buf_printf(&f->log, "E%s\n", xmlfilter_cond_name(xmlstream_error(f->xs)));
	f->why = xstrdup(xmlstream_error_text(f->xs));
}

static int
fz_memory_error(const struct fz *f)
{
	return strncmp(xmlstream_error_text(f->xs), "the parser would hold", 21) == 0;
}

static void
fz_done(struct fz *f)
{
	xmlstream_free(f->xs);
	buf_free(&f->log);
	buf_free(&f->out);
	free(f->why);
}

/* What proxyd wrote must parse strictly to the same events. */
static void
fz_reparse(const struct fz *f)
{
	struct xml_limits	 lim;
	struct fz		 g;
	char			*want;

	if (f->out.len == 0)
		return;
	xmlfilter_limits_default(&lim);
	lim.stanza_bytes = lim.text_bytes = 64 * 1024 * 1024;
	lim.attr_bytes = 64 * 1024 * 1024;
	lim.buffer_bytes = 1024 * 1024 * 1024;
	fz_run(&g, &lim, 0, 1, (const uint8_t *)f->out.data, f->out.len, 0, 0);
	if (xmlstream_error(g.xs) != XML_COND_NONE) {
		fprintf(stderr, "wrote: %s\n", f->out.data);
		fz_die("reparse of proxyd's output", xmlstream_error_text(g.xs));
	}
	want = xstrndup(f->log.data, f->okl);
	if (strcmp(want, g.log.data) != 0) {
		fprintf(stderr, "first:\n%s\nreparsed:\n%s\n", want, g.log.data);
		fz_die("reparse", "events differ");
	}
	free(want);
	fz_done(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xml_limits	 lim;
	struct fz		 whole, split, pass, write;
	int			 flags, authed;
	unsigned		 seed;

	if (size < 1)
		return 0;
	flags = (data[0] & 1 ? XMLS_REPAIR : 0) | (data[0] & 4 ? XMLS_KEEP : 0);
	authed = (data[0] & 2) != 0;
	seed = (unsigned)(data[0] >> 4) * 2654435761u + (unsigned)size;
	fz_limits(&lim, data[0] & 8);
	fz_run(&whole, &lim, flags, authed, data + 1, size - 1, 0, 0);
	fz_run(&split, &lim, flags, authed, data + 1, size - 1, seed | 1, 0);
	fz_run(&pass, &lim, flags, authed, data + 1, size - 1, seed | 1, 1);
	fz_run(&write, &lim, flags, authed, data + 1, size - 1, seed | 1, 2);
	/* How much memory expat holds depends on the reads, so only the
	 * memory limit may fire in one run and not the other. */
	if (strcmp(whole.log.data, split.log.data) != 0 &&
	    !fz_memory_error(&whole) && !fz_memory_error(&split)) {
		fprintf(stderr, "whole:\n%s\nsplit:\n%s\n", whole.log.data, split.log.data);
		fz_die("split", "events depend on the read sizes");
	}
	if (strcmp(split.log.data, pass.log.data) != 0 &&
	    !fz_memory_error(&split) && !fz_memory_error(&pass)) {
		fprintf(stderr, "parsed:\n%s\npassed:\n%s\n", split.log.data,
		    pass.log.data);
		fz_die("pass", "pass mode changes the events");
	}
	if (strcmp(split.log.data, write.log.data) != 0 &&
	    !fz_memory_error(&split) && !fz_memory_error(&write)) {
		fprintf(stderr, "parsed:\n%s\nwritten:\n%s\n", split.log.data,
		    write.log.data);
		fz_die("write", "writing mode writes other bytes or changes the events");
	}
	/* the same error at the same byte: the lexer's positions held */
	if (split.why != NULL && !fz_memory_error(&split) &&
	    ((pass.why != NULL && strcmp(split.why, pass.why) != 0) ||
	    (write.why != NULL && strcmp(split.why, write.why) != 0))) {
		fprintf(stderr, "parsed: %s\npassed: %s\nwritten: %s\n", split.why,
		    pass.why ? pass.why : "", write.why ? write.why : "");
		fz_die("pass", "pass or writing mode changes an error's text");
	}
	fz_reparse(&whole);
	fz_reparse(&pass);
	fz_done(&whole);
	fz_done(&split);
	fz_done(&pass);
	fz_done(&write);
	return 0;
}
