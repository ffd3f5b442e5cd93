/*
 * filter_cost.c: what proxyd's XML filter costs per relayed message, in one
 * thread with no network, next to what expat alone costs on the same bytes:
 * the floor under any proxy that has expat parse every byte both ways.
 *
 *   filter_cost [-n MESSAGES] [-b BODY_BYTES] [-c CHUNK_BYTES] [-r ROUNDS]
 *   prints one JSON line: nanoseconds per message for each stage ("lexer":
 *   xmlfilter.c's lexer, and xmlrepair.c's repair stage from the backend,
 *   alone).
 *
 * The messages are those of bench_proxyd.py's load: what tests/tools/loadgen
 * sends toward the backend and what tests/tools/echo_xmpp sends back, in
 * reads of CHUNK bytes (a busy socket's read holds several stanzas).  The
 * client side is xmlstream (lexer, expat, tree) plus the serializer
 * ("filter_up"), or, once the session is bound, xmlstream's writing mode
 * (xmlcanon_stanza writing the same bytes: "write_up"); the backend side of
 * a bound session is xmlstream in pass mode (repair stage, xmlcheck_stanza,
 * a copy: "pass_down"), and "filter_down" is what parsing it as the client
 * side is parsed would cost (the lexer runs in both modes only on what they
 * decline, here the stanzas a read cuts).  "proxyd" is a bound session's
 * message: write_up plus pass_down.  "expat" is a namespace-aware expat
 * parser with empty handlers, fed the same chunks.
 */
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxyd.h"

struct cost_run {
	struct buf	 out;
	uint64_t	 stanzas;
};

static const char cost_header[] = "<?xml version='1.0'?><stream:stream "
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='example.test' version='1.0'>";

static void
cost_usage(void)
{
	fprintf(stderr, "usage: filter_cost [-n messages] [-b body_bytes] "
	    "[-c chunk_bytes] [-r rounds]\n");
	exit(2);
}

/* The stream one side sees: the header, then N messages. */
static void
cost_stream(struct buf *b, size_t n, size_t body, int from_backend)
{
	char	*pad = xcalloc(1, body + 1);
	size_t	 i;

	memset(pad, 'x', body);
	buf_adds(b, cost_header);
	for (i = 0; i < n; i++) {
		if (from_backend)
			buf_printf(b, "<message from='u%zu@example.test/bench' "
			    "to='u%zu@example.test/bench' type='chat'><body>%zu "
			    "%llu %s</body></message>", i % 100, (i + 1) % 100, i,
			    (unsigned long long)(1700000000000000000ull + i * 977), pad);
		else
			buf_printf(b, "<message to='u%zu@example.test/bench' "
			    "type='chat'><body>%zu %llu %s</body></message>",
			    (i + 1) % 100, i,
			    (unsigned long long)(1700000000000000000ull + i * 977), pad);
	}
	free(pad);
}

static void XMLCALL
cost_start_cb(void *arg, const XML_Char *name, const XML_Char **atts)
{
}

static void XMLCALL
cost_end_cb(void *arg, const XML_Char *name)
{
}

static void XMLCALL
cost_text_cb(void *arg, const XML_Char *s, int len)
{
}

static double
cost_expat(const struct buf *in, size_t chunk)
{
	XML_Parser	p;
	uint64_t	t0;
	size_t		off, k;

	if ((p = XML_ParserCreateNS("UTF-8", '\xff')) == NULL)
		fatalx("XML_ParserCreateNS failed");
	XML_SetElementHandler(p, cost_start_cb, cost_end_cb);
	XML_SetCharacterDataHandler(p, cost_text_cb);
	t0 = now_mono_ns();
	for (off = 0; off < in->len; off += k) {
		k = in->len - off < chunk ? in->len - off : chunk;
		if (XML_Parse(p, in->data + off, (int)k, 0) != XML_STATUS_OK)
			fatalx("expat: %s", XML_ErrorString(XML_GetErrorCode(p)));
	}
	t0 = now_mono_ns() - t0;
	XML_ParserFree(p);
	return (double)t0;
}

static int
cost_stanza_cb(void *arg, const struct xml_node *n)
{
	struct cost_run	*r = arg;

	serialize_stanza(&r->out, n, NULL);
	r->stanzas++;
	return 0;
}

static const struct xmlstream_cb cost_cbs = { NULL, cost_stanza_cb, NULL };

static int
cost_pass_cb(void *arg, const void *stanza, size_t len)
{
	struct cost_run	*r = arg;

	buf_add(&r->out, stanza, len);
	r->stanzas++;
	return 0;
}

/* proxyd's path: the filter and the serializer (or PASS 1, pass mode, or 2,
 * its writing variant), output dropped per read. */
static double
cost_filter(const struct buf *in, size_t chunk, int flags, int pass, size_t want)
{
	struct xml_limits	 lim;
	struct xmlstream	*xs;
	struct cost_run		 r;
	uint64_t		 t0;
	size_t			 off, k;

	memset(&r, 0, sizeof(r));
	buf_init(&r.out);
	xmlfilter_limits_default(&lim);
	xs = xmlstream_new(&lim, NULL, flags | XMLS_KEEP, &cost_cbs, &r);
	xmlstream_set_auth(xs, 1);
	if (pass == 1)
		xmlstream_set_pass(xs, cost_pass_cb);
	else if (pass == 2)
		xmlstream_set_write(xs, cost_pass_cb);
	t0 = now_mono_ns();
	for (off = 0; off < in->len; off += k) {
		k = in->len - off < chunk ? in->len - off : chunk;
		if (xmlstream_feed(xs, in->data + off, k) != XMLS_OK)
			fatalx("xmlstream: %s", xmlstream_error_text(xs));
		buf_reset(&r.out);
	}
	t0 = now_mono_ns() - t0;
	if (r.stanzas != want)
		fatalx("xmlstream passed %llu stanzas of %zu",
		    (unsigned long long)r.stanzas, want);
	xmlstream_free(xs);
	buf_free(&r.out);
	return (double)t0;
}

/* The lexer alone (and the repair stage before it, from the backend), on
 * the same reads: the share of the filter that runs on every byte. */
static double
cost_lexer(const struct buf *in, size_t chunk, int repair, size_t want)
{
	struct xml_limits	 lim;
	struct xmlfilter	 f;
	struct xmlrepair	 r;
	unsigned char		 out[8192];
	const unsigned char	*p;
	uint64_t		 t0, items = 0;
	size_t			 off, k, len, taken, i, t;
	int			 ev;

	xmlfilter_limits_default(&lim);
	xmlfilter_init(&f, &lim, 1);
	xmlfilter_repair_init(&r);
	t0 = now_mono_ns();
	for (off = 0; off < in->len; off += taken) {
		k = in->len - off < chunk ? in->len - off : chunk;
		p = (const unsigned char *)in->data + off;
		len = taken = k;
		if (repair) {
			len = xmlfilter_repair(&r, p, k, out, sizeof(out), &taken);
			p = out;
		}
		for (i = 0; i < len; i += t) {
			t = xmlfilter_scan(&f, p + i, len - i, &ev);
			if (ev == XF_ERROR)
				fatalx("lexer: %s at byte %llu", f.what,
				    (unsigned long long)f.pos);
			items += ev == XF_ITEM;
		}
	}
	t0 = now_mono_ns() - t0;
	if (items != want + 1)
		fatalx("the lexer found %llu items of %zu",
		    (unsigned long long)items, want + 1);
	return (double)t0;
}

static size_t
cost_num(const char *s, size_t min, size_t max)
{
	char			*end;
	unsigned long long	 v;

	v = strtoull(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || v < min || v > max)
		fatalx("'%s' is not a number in %zu..%zu", s, min, max);
	return (size_t)v;
}

static double
cost_min(double a, double b)
{
	return a < b ? a : b;
}

int
main(int argc, char *argv[])
{
	struct buf	 up, down;
	size_t		 n = 200000, body = 0, chunk = 4096, rounds = 3, i;
	double		 e_up = 1e300, e_down = 1e300, f_up = 1e300, f_down = 1e300;
	double		 l_up = 1e300, l_down = 1e300, p_down = 1e300, w_up = 1e300;
	int		 ch;

	while ((ch = getopt(argc, argv, "n:b:c:r:")) != -1) {
		switch (ch) {
		case 'n':
			n = cost_num(optarg, 1, 10000000);
			break;
		case 'b':
			body = cost_num(optarg, 0, 65536);
			break;
		case 'c':
			chunk = cost_num(optarg, 64, 1 << 20);
			break;
		case 'r':
			rounds = cost_num(optarg, 1, 100);
			break;
		default:
			cost_usage();
		}
	}
	if (optind != argc)
		cost_usage();
	buf_init(&up);
	buf_init(&down);
	cost_stream(&up, n, body, 0);
	cost_stream(&down, n, body, 1);
	for (i = 0; i < rounds; i++) {
		e_up = cost_min(e_up, cost_expat(&up, chunk));
		e_down = cost_min(e_down, cost_expat(&down, chunk));
		f_up = cost_min(f_up, cost_filter(&up, chunk, 0, 0, n));
		w_up = cost_min(w_up, cost_filter(&up, chunk, 0, 2, n));
		f_down = cost_min(f_down, cost_filter(&down, chunk, XMLS_REPAIR, 0, n));
		p_down = cost_min(p_down, cost_filter(&down, chunk, XMLS_REPAIR, 1, n));
		l_up = cost_min(l_up, cost_lexer(&up, chunk, 0, n));
		l_down = cost_min(l_down, cost_lexer(&down, chunk, 1, n));
	}
	printf("{\"messages\":%zu,\"bytes_up\":%zu,\"bytes_down\":%zu,"
	    "\"expat_up_ns\":%.1f,\"expat_down_ns\":%.1f,"
	    "\"filter_up_ns\":%.1f,\"filter_down_ns\":%.1f,"
	    "\"write_up_ns\":%.1f,\"pass_down_ns\":%.1f,\"expat_ns\":%.1f,"
	    "\"filter_ns\":%.1f,\"proxyd_ns\":%.1f,\"lexer_up_ns\":%.1f,"
	    "\"lexer_down_ns\":%.1f}\n",
	    n, up.len / n, down.len / n, e_up / n, e_down / n, f_up / n, f_down / n,
	    w_up / n, p_down / n, (e_up + e_down) / n, (f_up + f_down) / n,
	    (w_up + p_down) / n, l_up / n, l_down / n);
	buf_free(&up);
	buf_free(&down);
	return 0;
}
