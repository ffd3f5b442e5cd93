/*
 * test_xmlpass.c: pass mode (xmlstream_set_pass) and xmlcheck_stanza: the
 * stanzas proved well-formed go on as their bytes and mean what the parse
 * path would have made of them; everything else, errors included, comes
 * exactly as without pass mode.  Its writing variant (xmlstream_set_write)
 * and xmlcanon_stanza: what is written is, byte for byte, what the parse
 * path's serializer writes, and the rest comes as without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxyd.h"

#define HDR	"<?xml version='1.0'?><stream:stream xmlns='jabber:client' " \
		"xmlns:stream='http://etherx.jabber.org/streams' to='example.test' " \
		"version='1.0'>"
/* The same default namespace, other prefixes: a backend's header. */
#define HDR2	"<s:stream xmlns:s='http://etherx.jabber.org/streams' " \
		"xmlns='jabber:client' xmlns:x='urn:x' xmlns:y='urn:y' version='1.0'>"

struct prec {
	struct buf		 log;
	int			 nraw, nparsed;
	int			 stop_raw;	/* the raw callback asks to stop */
	int			 verbatim;	/* log raw bytes, not their meaning */
	int			 write;		/* log them as prec_stanza logs a tree */
	struct xmlstream	*xs;
};

/* The limits run() gives its streams (NULL: the defaults). */
static const struct xml_limits	*run_lim;

static int
prec_stanza(void *arg, const struct xml_node *n)
{
	struct prec	*r = arg;

	r->nparsed++;
	buf_adds(&r->log, "stanza ");
	serialize_stanza(&r->log, n, NULL);
	buf_addc(&r->log, '\n');
	return 0;
}

static int
prec_close(void *arg)
{
	struct prec	*r = arg;

	buf_adds(&r->log, "close\n");
	return 0;
}

static const struct xmlstream_cb prec_cb = { NULL, prec_stanza, prec_close };

/* What the parse path makes of STANZA in a client stream: its meaning. */
static void
meaning(struct buf *log, const void *stanza, size_t len)
{
	struct prec		 r;
	struct xmlstream	*xs;

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	xs = xmlstream_new(NULL, NULL, 0, &prec_cb, &r);
	xmlstream_set_auth(xs, 1);
	assert_int_equal(xmlstream_feed(xs, HDR, strlen(HDR)), XMLS_OK);
	assert_int_equal(xmlstream_feed(xs, stanza, len), XMLS_OK);
	assert_int_equal(r.nparsed, 1);
	buf_add(log, r.log.data, r.log.len);
	xmlstream_free(xs);
	buf_free(&r.log);
}

static int
prec_raw(void *arg, const void *stanza, size_t len)
{
	struct prec	*r = arg;

	r->nraw++;
	if (r->write) {
		buf_adds(&r->log, "stanza ");
		buf_add(&r->log, stanza, len);
		buf_addc(&r->log, '\n');
	} else if (r->verbatim) {
		buf_adds(&r->log, "raw ");
		buf_add(&r->log, stanza, len);
		buf_addc(&r->log, '\n');
	} else
		meaning(&r->log, stanza, len);
	return r->stop_raw;
}

/*
 * HEADER, then IN in pieces of STEP bytes (0: whole; or in two, cut at CUT
 * if that is not 0), PASS 0 (off), 1 (pass mode) or 2 (its writing
 * variant); the log of events and the error, if any.  PR, if given, says
 * how to log and gets the counts.
 */
static char *
run(const char *header, const char *in, size_t n, size_t step, size_t cut,
    int pass, int flags, struct prec *pr)
{
	struct prec	 r;
	size_t		 at, k;
	int		 rc = XMLS_OK;

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	buf_adds(&r.log, "");
	if (pr != NULL)
		r.verbatim = pr->verbatim;
	r.write = pass == 2;
	r.xs = xmlstream_new(run_lim, NULL, flags, &prec_cb, &r);
	xmlstream_set_auth(r.xs, 1);
	assert_int_equal(xmlstream_feed(r.xs, header, strlen(header)), XMLS_OK);
	if (pass == 1)
		xmlstream_set_pass(r.xs, prec_raw);
	else if (pass == 2)
		xmlstream_set_write(r.xs, prec_raw);
	for (at = 0; at < n && rc == XMLS_OK; at += k) {
		k = step == 0 || n - at < step ? n - at : step;
		if (cut > 0)
			k = at < cut ? cut : n - at;
		rc = xmlstream_feed(r.xs, in + at, k);
	}
	assert_int_not_equal(rc, XMLS_STOPPED);
	if (rc == XMLS_ERROR)
		buf_printf(&r.log, "error %s: %s\n",
		    xmlfilter_cond_name(xmlstream_error(r.xs)),
		    xmlstream_error_text(r.xs));
	if (pr != NULL) {
		pr->nraw = r.nraw;
		pr->nparsed = r.nparsed;
	}
	xmlstream_free(r.xs);
	return buf_release(&r.log);
}

/* Pass mode (MODE 1) or its writing variant (2) and the parse path agree on
 * IN fed the same way: whole, in pieces of 1 to 3 bytes, cut in two.  In
 * writing mode the log holds the bytes written, so it agrees only if they
 * are the serializer's.  Returns how many stanzas it took, whole. */
static int
same_as(int mode, const char *header, const char *in, size_t n)
{
	static const char *const what[] = { "", "pass mode", "write mode" };
	struct prec	 counts;
	char		*want, *got;
	size_t		 step, cut;

	memset(&counts, 0, sizeof(counts));
	for (step = 0; step <= 3; step++) {
		want = run(header, in, n, step, 0, 0, 0, NULL);
		got = run(header, in, n, step, 0, mode, 0, step == 0 ? &counts : NULL);
		if (strcmp(want, got) != 0)
			fail_msg("%s in pieces of %zu differs on\n%.*s\n"
			    "parse path:\n%s\n%s:\n%s", what[mode], step, (int)n, in,
			    want, what[mode], got);
		free(want);
		free(got);
	}
	for (cut = 1; cut < n; cut += 1 + n / 64) {
		want = run(header, in, n, 0, cut, 0, 0, NULL);
		got = run(header, in, n, 0, cut, mode, 0, NULL);
		if (strcmp(want, got) != 0)
			fail_msg("%s cut at %zu differs on\n%.*s\n"
			    "parse path:\n%s\n%s:\n%s", what[mode], cut, (int)n, in,
			    want, what[mode], got);
		free(want);
		free(got);
	}
	return counts.nraw;
}

static int
same_as_parsed(const char *header, const char *in, size_t n)
{
	return same_as(1, header, in, n);
}

static int
same_as_written(const char *in, size_t n)
{
	return same_as(2, HDR, in, n);
}

static void
test_checked_stanzas_go_on_as_their_bytes(void **state)
{
	static const char	in[] =
	    "<message to='bob@example.test' type='chat'><body>hi &amp; bye</body></message>"
	    "\r\n<presence/>"
	    "<iq type=\"get\" id='1'><query xmlns='jabber:iq:roster'/></iq>";
	struct prec		 counts;
	char			*log;

	(void)state;
	memset(&counts, 0, sizeof(counts));
	counts.verbatim = 1;
	log = run(HDR, in, sizeof(in) - 1, 0, 0, 1, 0, &counts);
	/* the white space between stanzas goes nowhere, as on the parse path */
	assert_string_equal(log,
	    "raw <message to='bob@example.test' type='chat'><body>hi &amp; bye"
	    "</body></message>\n"
	    "raw <presence/>\n"
	    "raw <iq type=\"get\" id='1'><query xmlns='jabber:iq:roster'/></iq>\n");
	assert_int_equal(counts.nraw, 3);
	assert_int_equal(counts.nparsed, 0);
	free(log);
}

static void
test_what_the_check_refuses_is_parsed(void **state)
{
	static const char *const refused[] = {
		"<s:features xmlns:s='http://etherx.jabber.org/streams'/>",
		"<x:a xmlns:x='urn:x'/>",
		"<a xmlns:x='urn:x'><x:b/></a>",
		"<a x:b='1' xmlns:x='urn:x'/>",
		"<m\xc3\xa9/>",
		("<a b='1' c='2' d='3' e='4' f='5' g='6' h='7' i='8' j='9' k='10' "
		    "l='11' m='12' n='13' o='14' p='15' q='16' r='17'/>"),
	};
	struct prec	 counts;
	char		*log;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		memset(&counts, 0, sizeof(counts));
		log = run(HDR, refused[i], strlen(refused[i]), 0, 0, 1, 0, &counts);
		if (counts.nraw != 0 || counts.nparsed != 1)
			fail_msg("%s: %d raw, %d parsed: %s", refused[i],
			    counts.nraw, counts.nparsed, log);
		free(log);
		assert_int_equal(same_as_parsed(HDR, refused[i], strlen(refused[i])), 0);
	}
}

static void
test_passed_stanzas_mean_what_the_parse_path_makes_of_them(void **state)
{
	static const char *const good[] = {
		"<message to=\"bob@example.test\" type=\"chat\" id=\"m1\" xml:lang=\"en\">"
		    "<body>\xc3\xa9 \xc3\xbc \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x8e\x89 "
		    "&lt;&amp;&gt;&quot;&apos;</body>"
		    "<active xmlns=\"http://jabber.org/protocol/chatstates\"/></message>",
		"<message><body>a&#65;&#x42;&#x1F600;&#10;b</body></message>",
		"<message id='a&amp;b&#x27;c' to=\"x&quot;y\"/>",
		"<message id='line\nbreak\ttab\r\nend'><body>cr\r\nlf\rx</body></message>",
		("<iq type='result'><query xmlns='jabber:iq:roster'><item jid='a@b' "
		    "name='&lt;A&gt;'><group>G</group></item></query></iq>"),
		"<message><body><![CDATA[<not> & a ]] tag]]></body></message>",
		"<message xmlns='jabber:server'><body>other default</body></message>",
		"<presence><x xmlns=''><y/></x></presence>",
		"<a  b = '1'\n\tc=\"2\" ></a >",
		"<message><body>]] ] > &gt;</body></message>",
		"<message xml:lang='de'><body xml:lang='fr'>x</body></message>",
	};
	char	in[4096];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(same_as_parsed(HDR, good[i], strlen(good[i])), 1);
		/* and the same in a backend stream binding other prefixes */
		assert_int_equal(same_as_parsed(HDR2, good[i], strlen(good[i])), 1);
	}
	/* all of them at once, with white space between */
	in[0] = '\0';
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		strcat(in, good[i]);
		strcat(in, i % 2 ? "\n" : "");
	}
	assert_int_equal(same_as_parsed(HDR, in, strlen(in)),
	    (int)(sizeof(good) / sizeof(good[0])));
}

static void
test_broken_stanzas_fail_as_on_the_parse_path(void **state)
{
	static const char *const bad[] = {
		"<a><b></a></b>",
		"<a></b>",
		"<message><body>x</body></message></stream:stream>",
		"<a b='1' b='2'/>",
		"<a xml:lang='en' xml:lang='de'/>",
		"<a b='<'/>",
		"<a>&foo;</a>",
		"<a>&#0;</a>",
		"<a>&#xD800;</a>",
		"<a>&#xFFFE;</a>",
		"<a>&#x110000;</a>",
		"<a>]]></a>",
		"<p:a/>",
		"<a p:b='1'/>",
		"<a xmlns='http://www.w3.org/XML/1998/namespace'/>",
		"<a xmlns='http://www.w3.org/2000/xmlns/'/>",
		"<a b/>",
		"<a b='1'c='2'/>",
		"<1a/>",
		"<a\x01/>",
		"<a>\x01</a>",
		"<a><!-- no --></a>",
		"<a><?pi x?></a>",
		"<!DOCTYPE a>",
		"<a>\xff</a>",
		"<a>\xc0\x80</a>",
		"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
		"text at stream level",
		"<message><body>ok</body></message><a></b>",
		/* markup after the stream's end, cut by reads (a fuzzer's find) */
		"</stream:stream><PETA[<a>&]]>",
		"</stream:stream>  <a/>",
	};
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(same_as_parsed(HDR, bad[i], strlen(bad[i])),
		    strncmp(bad[i], "<message>", 9) == 0);
		assert_int_equal(same_as_written(bad[i], strlen(bad[i])),
		    strncmp(bad[i], "<message>", 9) == 0);
	}
	/* the fuzzer's case exactly: the read ends right after the '<' */
	{
		static const char	in[] = "</stream:stream><PETA[<a>&]]>";
		char			*want, *got;

		want = run(HDR, in, sizeof(in) - 1, 0, 17, 0, 0, NULL);
		got = run(HDR, in, sizeof(in) - 1, 0, 17, 1, 0, NULL);
		assert_string_equal(want, got);
		free(want);
		free(got);
	}
	/* a NUL after a stanza that passes */
	assert_int_equal(same_as_parsed(HDR, "<a/>\x00<b/>", 9), 1);
}

/* A small random stanza maker: well-formed pieces, and mutations. */
static uint64_t	rnd_state = 0x9e3779b97f4a7c15ULL;

static unsigned
rnd(unsigned n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return (unsigned)(rnd_state % n);
}

static void
rnd_element(struct buf *b, int depth)
{
	static const char *const names[] = { "a", "body", "message", "x:y", "m\xc3\xa9",
	    "query", "b-c.d" };
	static const char *const attrs[] = { "id", "to", "xml:lang", "xmlns", "xmlns:x",
	    "type", "id" };
	static const char *const values[] = { "1", "a&amp;b", "&foo;", "<", "\"",
	    "&#0;", "\xc3\xa9", "jabber:client", "", "&#x20AC;" };
	static const char *const texts[] = { "hi", "&lt;", "]]>", "]]", "&", "\xff",
	    "<![CDATA[x<]]>", "<!--c-->", " ", "&#65;", "\xe2\x82\xac" };
	const char	*name = names[rnd(sizeof(names) / sizeof(names[0]))];
	unsigned	 i, na = rnd(4), nc = depth < 3 ? rnd(3) : 0;

	buf_printf(b, "<%s", name);
	for (i = 0; i < na; i++) {
		char	q = rnd(2) ? '\'' : '"';

		buf_printf(b, "%s%s%s=%c%s%c", rnd(20) ? " " : "", attrs[rnd(7)],
		    rnd(10) ? "" : " ", q, values[rnd(10)], q);
	}
	if (nc == 0 && rnd(2)) {
		buf_adds(b, rnd(30) ? "/>" : ">");
		return;
	}
	buf_addc(b, '>');
	for (i = 0; i < nc; i++) {
		if (rnd(2))
			buf_adds(b, texts[rnd(sizeof(texts) / sizeof(texts[0]))]);
		rnd_element(b, depth + 1);
	}
	buf_printf(b, "</%s>", rnd(40) ? name : "a");
}

static void
test_random_stanzas_fail_pass_or_are_written_as_on_the_parse_path(void **state)
{
	struct buf	 b;
	int		 i, j, passed = 0, written = 0;

	(void)state;
	buf_init(&b);
	for (i = 0; i < 3000; i++) {
		buf_reset(&b);
		for (j = 0; j < 1 + (int)rnd(3); j++) {
			rnd_element(&b, 0);
			if (rnd(3) == 0)
				buf_adds(&b, "\n");
		}
		passed += same_as_parsed(HDR, b.data, b.len);
		written += same_as_written(b.data, b.len);
	}
	/* the maker makes both kinds */
	assert_true(passed > 300);
	assert_true(written > 300);
	buf_free(&b);
}

static void
test_a_stanza_cut_by_a_read_takes_the_parse_path(void **state)
{
	struct prec	 counts;
	struct buf	 in;
	char		*log;
	size_t		 i;

	(void)state;
	buf_init(&in);
	buf_adds(&in, "<message><body>");
	for (i = 0; i < 100000; i++)
		buf_addc(&in, 'a' + i % 26);
	buf_adds(&in, "</body></message><presence/>");
	memset(&counts, 0, sizeof(counts));
	counts.verbatim = 1;
	log = run(HDR, in.data, in.len, 4096, 0, 1, 0, &counts);
	assert_int_equal(counts.nparsed, 1);
	assert_int_equal(counts.nraw, 1);
	assert_non_null(strstr(log, "raw <presence/>\n"));
	free(log);
	/* whole in one read, it passes too */
	assert_int_equal(same_as_parsed(HDR, in.data, in.len), 2);
	buf_free(&in);
}

static int
stop_raw(void *arg, const void *stanza, size_t len)
{
	struct prec	*r = arg;

	(void)stanza, (void)len;
	r->nraw++;
	return 1;
}

static void
test_a_stop_from_the_pass_callback_holds_the_rest(void **state)
{
	static const char	in[] = "<presence/><message/><iq type='get' id='1'/>";
	struct prec		r;

	(void)state;
	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	r.xs = xmlstream_new(NULL, NULL, 0, &prec_cb, &r);
	assert_int_equal(xmlstream_feed(r.xs, HDR, strlen(HDR)), XMLS_OK);
	xmlstream_set_pass(r.xs, stop_raw);
	assert_int_equal(xmlstream_feed(r.xs, in, sizeof(in) - 1), XMLS_STOPPED);
	assert_int_equal(r.nraw, 1);
	assert_int_equal(xmlstream_feed(r.xs, "<a/>", 4), XMLS_STOPPED);
	assert_int_equal(r.nraw, 1);
	assert_int_equal(xmlstream_resume(r.xs), XMLS_STOPPED);
	assert_int_equal(r.nraw, 2);
	assert_int_equal(xmlstream_resume(r.xs), XMLS_STOPPED);
	assert_int_equal(xmlstream_resume(r.xs), XMLS_STOPPED);
	assert_int_equal(r.nraw, 4);
	assert_int_equal(xmlstream_resume(r.xs), XMLS_OK);
	assert_int_equal(r.nparsed, 0);
	xmlstream_free(r.xs);
	buf_free(&r.log);
}

static void
test_a_stream_restart_turns_pass_mode_off(void **state)
{
	struct prec	r;

	(void)state;
	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	r.verbatim = 1;
	r.xs = xmlstream_new(NULL, NULL, 0, &prec_cb, &r);
	assert_int_equal(xmlstream_feed(r.xs, HDR, strlen(HDR)), XMLS_OK);
	xmlstream_set_pass(r.xs, prec_raw);
	assert_int_equal(xmlstream_feed(r.xs, "<presence/>", 11), XMLS_OK);
	xmlstream_restart(r.xs);
	assert_int_equal(xmlstream_feed(r.xs, HDR "<presence/>",
	    strlen(HDR) + 11), XMLS_OK);
	assert_int_equal(r.nraw, 1);
	assert_int_equal(r.nparsed, 1);
	xmlstream_free(r.xs);
	buf_free(&r.log);
}

static void
test_repair_mode_passes_the_repaired_bytes(void **state)
{
	static const char	in[] = "<message><body>AT&T &nbsp; \xff ok</body></message>";
	struct prec		counts;
	char			*log;

	(void)state;
	memset(&counts, 0, sizeof(counts));
	counts.verbatim = 1;
	log = run(HDR, in, sizeof(in) - 1, 0, 0, 1, XMLS_REPAIR, &counts);
	assert_string_equal(log, "raw <message><body>AT&amp;T &amp;nbsp; \xef\xbf\xbd ok"
	    "</body></message>\n");
	free(log);
}

static void
nest(char *out, size_t levels)
{
	size_t	i;

	out[0] = '\0';
	for (i = 0; i < levels; i++)
		strcat(out, "<a>");
	for (i = 0; i < levels; i++)
		strcat(out, "</a>");
}

static void
test_check_takes_only_what_it_can_prove(void **state)
{
	static const struct {
		const char	*in;
		int		 ok;
	} cases[] = {
		{ "<a/>", 1 }, { " \n<a/>", 0 }, { "<a></a>", 1 }, { "<a></b>", 0 },
		{ "<a><b/></a>", 1 }, { "<a b='1' b='2'/>", 0 }, { "<a xml:lang='en'/>", 1 },
		{ "<a xml:lang='en' xml:lang='de'/>", 0 }, { "<a x:y='1'/>", 0 },
		{ "<a xmlns:x='u'/>", 0 }, { "<a xmlns='u'/>", 1 }, { "<a xmlns=''/>", 1 },
		{ "<a xmlns='http://www.w3.org/XML/1998/namespace'/>", 0 },
		{ "<a xmlns='&amp;'/>", 0 }, { "<a>&amp;&#65;&#x1F600;</a>", 1 },
		{ "<a>&#0;</a>", 0 }, { "<a>&#xD800;</a>", 0 }, { "<a>&nbsp;</a>", 0 },
		{ "<a>&#;</a>", 0 }, { "<a>&#x;</a>", 0 }, { "<a>&amp</a>", 0 },
		{ "<a>]]></a>", 0 }, { "<a>]]</a>", 1 }, { "<a b='<'/>", 0 },
		{ "<a b=\"'\"/>", 1 }, { "<a><![CDATA[<x>]]></a>", 1 },
		{ "<a><![CDATA[<x></a>", 0 }, { "<a><!-- x --></a>", 0 }, { "<a/><b/>", 4 },
		{ "<a/>x", 4 }, { "<a>", 0 }, { "<a b/>", 0 }, { "<a b='1'c='2'/>", 0 },
		{ "<1a/>", 0 }, { "<a-b.c_d1/>", 1 }, { "</a>", 0 }, { "<a></a >", 1 },
		{ "<a></ a>", 0 }, { "<a / >", 0 }, { "<xml:a/>", 0 }, { "<a xml:/>", 0 },
		{ "<a b='1' / >", 0 }, { "<a b = \"1\" />", 1 }, { "", 0 }, { "  ", 0 },
		{ "<a>\xc3\xa9</a>", 1 }, { "<a b='\xc3\xa9'/>", 1 }, { "<\xc3\xa9/>", 0 },
	};
	struct xml_limits	lim;
	struct xmlfilter	f;
	char			deep[1024];
	size_t			i, want;

	(void)state;
	xmlfilter_limits_default(&lim);
	xmlfilter_init(&f, &lim, 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		want = cases[i].ok == 1 ? strlen(cases[i].in) : (size_t)cases[i].ok;
		if (xmlcheck_stanza(cases[i].in, strlen(cases[i].in), &f) != want)
			fail_msg("xmlcheck_stanza(\"%s\") is not %zu", cases[i].in, want);
	}
	/* as deep as the limit: 32 levels are taken, 33 are left to the lexer */
	nest(deep, 32);
	assert_int_equal(xmlcheck_stanza(deep, strlen(deep), &f), strlen(deep));
	nest(deep, 33);
	assert_int_equal(xmlcheck_stanza(deep, strlen(deep), &f), 0);
	/* and under a higher limit, 64 levels are taken, 65 are parsed */
	lim.depth = XML_LIMIT_MAX_DEPTH;
	nest(deep, 64);
	assert_int_equal(xmlcheck_stanza(deep, strlen(deep), &f), strlen(deep));
	nest(deep, 65);
	assert_int_equal(xmlcheck_stanza(deep, strlen(deep), &f), 0);
	/* the lexer's own limits and characters */
	xmlfilter_limits_default(&lim);
	lim.stanza_bytes = 1024;
	lim.attr_bytes = 3072;
	{
		static const struct {
			const char	*in;
			int		 ok;
		} lex[] = {
			{ "<a>\x01</a>", 0 }, { "<a b='\x01'/>", 0 }, { "<a>\x7f</a>", 1 },
			{ "<a>\xc2\x85</a>", 1 }, { "<a>\xc0\x80</a>", 0 },
			{ "<a>\xed\xa0\x80</a>", 0 }, { "<a>\xef\xbf\xbe</a>", 0 },
			{ "<a>\xe6\xbc</a>", 0 }, { "<a b='\xe6\xbc'/>", 0 },
			{ "<a><![CDATA[\x01]]></a>", 0 }, { "<a><![CDATA[\xff]]></a>", 0 },
			{ "<a><![CDATA[\xc3\xa9\r\n]]></a>", 1 },
			{ "<a b='\t\r\n'>\t\r\n</a>", 1 },
			/* 30 and 32 bytes after the '&': the lexer takes at most 31 */
			{ "<a>&#00000000000000000000000000065;</a>", 1 },
			{ "<a>&#0000000000000000000000000000065;</a>", 0 },
		};
		for (i = 0; i < sizeof(lex) / sizeof(lex[0]); i++) {
			want = lex[i].ok ? strlen(lex[i].in) : 0;
			if (xmlcheck_stanza(lex[i].in, strlen(lex[i].in), &f) != want)
				fail_msg("xmlcheck_stanza(\"%s\") is not %zu", lex[i].in,
				    want);
		}
	}
	/* a stanza of exactly the stanza limit is taken, one byte more is not */
	{
		char	big[1100];

		memset(big, 'x', sizeof(big));
		memcpy(big, "<a>", 3);
		memcpy(big + 1024 - 4, "</a>", 4);
		assert_int_equal(xmlcheck_stanza(big, 1024, &f), 1024);
		memcpy(big + 1024 - 4, "xxxx</a>", 8);
		assert_int_equal(xmlcheck_stanza(big, 1028, &f), 0);
	}
}

static void
test_written_stanzas_are_what_the_serializer_writes(void **state)
{
	static const struct {
		const char	*in;
		int		 written;	/* 0: left to the parse path */
	} cases[] = {
		{ "<message to=\"bob@example.test\" type=\"chat\" id=\"m1\" xml:lang=\"en\">"
		    "<body>\xc3\xa9 \xc3\xbc \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x8e\x89 "
		    "&lt;&amp;&gt;&quot;&apos;</body>"
		    "<active xmlns=\"http://jabber.org/protocol/chatstates\"/></message>", 1 },
		{ "<message><body>a&#65;&#x42;&#x1F600;&#10;b&#9;c</body></message>", 1 },
		{ "<message id='a&amp;b&#x27;c' to=\"x&quot;y\"/>", 1 },
		{ "<message id=\"it's\" to='say \"hi\"' type='a>b'/>", 1 },
		{ "<message id='&#9;&#10;&#13;&#32;&#60;&#62;&#38;&#34;&#39;'/>", 1 },
		{ "<message><body>&#13;&#xD;&#60;&#62;&#38;&#34;&#39;</body></message>", 1 },
		{ "<message><body>tab\there\nline feed</body></message>", 1 },
		{ "<iq type='result'><query xmlns='jabber:iq:roster'><item jid='a@b' "
		    "name='&lt;A&gt;'><group>G</group></item></query></iq>", 1 },
		{ "<message><body><![CDATA[<not> & a ]] tag]]></body></message>", 1 },
		{ "<message><body>a<![CDATA[]]>b<![CDATA[c]]></body></message>", 1 },
		{ "<message><body/><body></body><x><![CDATA[]]></x></message>", 1 },
		{ "<message xmlns='jabber:client'><body>the same default</body></message>", 1 },
		{ "<presence><x xmlns=''><y/><z xmlns=''/></x></presence>", 1 },
		{ "<iq><q xmlns='urn:x'><i xmlns='urn:x'/><i xmlns='urn:y'>"
		    "<z xmlns='urn:x'/></i></q></iq>", 1 },
		{ "<iq><q xmlns=\"urn:a'b&quot;c>d\"/></iq>", 0 },
		{ "<iq><q xmlns=\"urn:a'b\\c>d\"/></iq>", 1 },
		{ "<a  b = '1'\n\tc=\"2\" ></a >", 1 },
		{ "<message><body>]] ] > &gt;</body></message>", 1 },
		{ "<message xml:lang='de'><body xml:lang='fr'>x</body></message>", 1 },
		{ "<message><body>\xef\xbf\xbd \xc2\x85 \xf4\x8f\xbf\xbd</body></message>", 1 },
		/* what expat would change: a CR in text, white space in a value */
		{ "<message><body>cr\r\nlf</body></message>", 0 },
		{ "<message id='a\tb'/>", 0 },
		{ "<message id='a\nb'/>", 0 },
		{ "<message id='a\rb'/>", 0 },
		/* a namespace the serializer writes with a prefix */
		{ "<message><x xmlns='http://etherx.jabber.org/streams'/></message>", 0 },
		/* a first element its owner reads, or in another default */
		{ "<message xmlns='jabber:server'><body>x</body></message>", 0 },
		{ "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
		    "AGEAYg==</auth>", 0 },
		{ "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", 0 },
		{ "<r xmlns='urn:xmpp:sm:3'/>", 0 },
		/* prefixes */
		{ "<message xmlns:foo='urn:foo'><foo:x/></message>", 0 },
		{ "<message><body xml:space='preserve'>x</body></message>", 1 },
	};
	struct prec	 counts;
	char		*log;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (same_as_written(cases[i].in, strlen(cases[i].in)) !=
		    cases[i].written)
			fail_msg("write mode does not %s\n%s",
			    cases[i].written ? "write" : "leave to the parse path",
			    cases[i].in);
	/* what it looks like */
	{
		static const char	in[] = "<message to=\"a@b\"  type=\"chat\">"
		    "<body>x&quot;&#65;</body><x xmlns=\"urn:x\"></x></message>";

		memset(&counts, 0, sizeof(counts));
		log = run(HDR, in, sizeof(in) - 1, 0, 0, 2, 0, &counts);
		assert_string_equal(log, "stanza <message to='a@b' type='chat'><body>"
		    "x\"A</body><x xmlns='urn:x'/></message>\n");
		assert_int_equal(counts.nraw, 1);
		free(log);
	}
}

static void
test_write_mode_keeps_the_limits_the_tree_counts(void **state)
{
	static const struct {
		const char	*in;
		int		 written;	/* within the limits below */
	} cases[] = {
		{ "<a><b>12345678</b></a>", 1 },
		{ "<a><b>123456789</b></a>", 0 },
		{ "<a><b>&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;</b></a>", 1 },
		{ "<a><b>&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;</b></a>", 0 },
		{ "<a>1234<![CDATA[5678]]></a>", 1 },
		{ "<a>1234<![CDATA[5678]]>9</a>", 0 },
		{ "<a>1234<b/>5678<c/>1234</a>", 1 },
		{ "<a x='1' y='2'/>", 1 },
		{ "<a x='1' y='2' z='3'/>", 0 },
		{ "<a><b xmlns='urn:u' x='1' y='2'/></a>", 1 },
		{ "<a><b><c/></b></a>", 1 },
		{ "<a><b><c><d/></c></b></a>", 0 },
		{ "<a><b xmlns='urn:u'><c xmlns='urn:v'/></b></a>", 1 },
	};
	struct xml_limits	lim;
	size_t			i;

	(void)state;
	xmlfilter_limits_default(&lim);
	lim.text_bytes = 8;
	lim.attrs = 2;
	lim.depth = 3;
	lim.ns_decls = 2;	/* the least a stream header needs */
	run_lim = &lim;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (same_as_written(cases[i].in, strlen(cases[i].in)) !=
		    cases[i].written)
			fail_msg("write mode does not %s\n%s", cases[i].written ?
			    "write" : "leave to the parse path", cases[i].in);
	/* the default text limit, one in and one past, in a bigger stanza */
	xmlfilter_limits_default(&lim);
	lim.stanza_bytes = 1 << 20;
	lim.buffer_bytes = 8 << 20;
	{
		struct prec	 counts;
		struct buf	 b;
		char		*want, *got;

		buf_init(&b);
		for (i = 0; i < 2; i++) {
			buf_reset(&b);
			buf_adds(&b, "<a>");
			while (b.len < 3 + lim.text_bytes + i)
				buf_addc(&b, 'x');
			buf_adds(&b, "</a>");
			memset(&counts, 0, sizeof(counts));
			want = run(HDR, b.data, b.len, 0, 0, 0, 0, NULL);
			got = run(HDR, b.data, b.len, 0, 0, 2, 0, &counts);
			assert_string_equal(want, got);
			assert_int_equal(counts.nraw, 1 - (int)i);
			free(want);
			free(got);
		}
		buf_free(&b);
	}
	run_lim = NULL;
}

/* Pass mode (MODE 1) or writing mode (2) keeps no parser, tree or bytes. */
static void
holds_nothing(int mode)
{
	struct prec		 r;
	struct xmlstream	*xs;
	size_t			 idle;
	int			 i;

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	r.verbatim = mode == 1;
	r.write = mode == 2;
	xs = xmlstream_new(NULL, NULL, mode == 2 ? XMLS_KEEP : 0, &prec_cb, &r);
	assert_int_equal(xmlstream_feed(xs, HDR, strlen(HDR)), XMLS_OK);
	xmlstream_trim(xs);
	idle = xmlstream_memsize(xs);
	if (mode == 1)
		xmlstream_set_pass(xs, prec_raw);
	else
		xmlstream_set_write(xs, prec_raw);
	for (i = 0; i < 100; i++)
		assert_int_equal(xmlstream_feed(xs, "<message><body>x</body></message>",
		    33), XMLS_OK);
	assert_int_equal(r.nraw, 100);
	assert_int_equal(r.nparsed, 0);
	/* the pass state, no expat, no tree, no bytes held */
	assert_true(xmlstream_memsize(xs) < idle + 256);
	xmlstream_free(xs);
	xmlstream_thread_free();
	buf_free(&r.log);
}

static void
test_pass_mode_holds_nothing_between_stanzas(void **state)
{
	(void)state;
	holds_nothing(1);
}

static void
test_write_mode_holds_nothing_between_stanzas(void **state)
{
	(void)state;
	holds_nothing(2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_takes_only_what_it_can_prove),
		cmocka_unit_test(test_checked_stanzas_go_on_as_their_bytes),
		cmocka_unit_test(test_what_the_check_refuses_is_parsed),
		cmocka_unit_test(test_passed_stanzas_mean_what_the_parse_path_makes_of_them),
		cmocka_unit_test(test_broken_stanzas_fail_as_on_the_parse_path),
		cmocka_unit_test(test_random_stanzas_fail_pass_or_are_written_as_on_the_parse_path),
		cmocka_unit_test(test_a_stanza_cut_by_a_read_takes_the_parse_path),
		cmocka_unit_test(test_a_stop_from_the_pass_callback_holds_the_rest),
		cmocka_unit_test(test_a_stream_restart_turns_pass_mode_off),
		cmocka_unit_test(test_repair_mode_passes_the_repaired_bytes),
		cmocka_unit_test(test_pass_mode_holds_nothing_between_stanzas),
		cmocka_unit_test(test_written_stanzas_are_what_the_serializer_writes),
		cmocka_unit_test(test_write_mode_keeps_the_limits_the_tree_counts),
		cmocka_unit_test(test_write_mode_holds_nothing_between_stanzas),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
