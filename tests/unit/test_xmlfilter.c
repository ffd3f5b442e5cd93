/*
 * test_xmlfilter.c: restricted XML: every hostile input gets its RFC 6120
 * condition, the limits hold, repair mode repairs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxyd.h"

#define HDR	"<?xml version='1.0'?><stream:stream xmlns='jabber:client' " \
		"xmlns:stream='http://etherx.jabber.org/streams' to='example.test' " \
		"version='1.0'>"
#define BARE	"<stream:stream xmlns='jabber:client' " \
		"xmlns:stream='http://etherx.jabber.org/streams'>"

struct rec {
	struct buf	 log;
	int		 nstanza;
};

static int
rec_open(void *arg, const struct xml_node *root)
{
	struct rec	*r = arg;

	buf_adds(&r->log, "open\n");
	return 0;
}

static int
rec_stanza(void *arg, const struct xml_node *n)
{
	struct rec	*r = arg;

	r->nstanza++;
	serialize_stanza(&r->log, n, NULL);
	buf_addc(&r->log, '\n');
	return 0;
}

static int
rec_close(void *arg)
{
	struct rec	*r = arg;

	buf_adds(&r->log, "close\n");
	return 0;
}

static const struct xmlstream_cb rec_cb = { rec_open, rec_stanza, rec_close };

struct run {
	const struct xml_limits	*lim;
	int			 flags;
	int			 authed;
	size_t			 chunk;		/* 0: whole */
	size_t			 cut;		/* 0: none */
};

/* The events of IN as one log line each, then "error COND" if it failed. */
static char *
run(const struct run *how, const char *in, size_t n, struct xmlstream **keep)
{
	struct rec		 r;
	struct xmlstream	*xs;
	size_t			 at = 0, k;
	int			 rc = XMLS_OK;

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	buf_adds(&r.log, "");
	xs = xmlstream_new(how->lim, NULL, how->flags, &rec_cb, &r);
	xmlstream_set_auth(xs, how->authed);
	while (at < n && rc == XMLS_OK) {
		k = n - at;
		if (how->chunk > 0 && k > how->chunk)
			k = how->chunk;
		if (how->cut > 0 && at < how->cut && at + k > how->cut)
			k = how->cut - at;
		rc = xmlstream_feed(xs, in + at, k);
		at += k;
	}
	if (rc == XMLS_ERROR)
		buf_printf(&r.log, "error %s\n", xmlfilter_cond_name(xmlstream_error(xs)));
	if (keep != NULL)
		*keep = xs;
	else
		xmlstream_free(xs);
	return buf_release(&r.log);
}

static enum xml_cond
cond_of(const char *in, size_t n, int authed)
{
	struct run		 how = { NULL, 0, authed, 0, 0 };
	struct xmlstream	*xs;
	enum xml_cond		 c;

	free(run(&how, in, n, &xs));
	c = xmlstream_error(xs);
	xmlstream_free(xs);
	return c;
}

#define COND(s)	cond_of(s, sizeof(s) - 1, 0)

/* The same log whole, at every split point (or every STEP-th), and in 1-byte reads. */
static void
assert_split_invariant(const char *in, size_t n, int flags, int authed, size_t step)
{
	struct run	 how = { NULL, flags, authed, 0, 0 };
	char		*whole = run(&how, in, n, NULL), *other;

	for (how.cut = 1; how.cut < n; how.cut += step) {
		other = run(&how, in, n, NULL);
		if (strcmp(other, whole) != 0)
			fail_msg("split at %zu:\n%s\nwhole:\n%s", how.cut, other, whole);
		free(other);
	}
	how.cut = 0;
	how.chunk = 1;
	other = run(&how, in, n, NULL);
	assert_string_equal(other, whole);
	free(other);
	free(whole);
}

static char *
repeat(const char *head, const char *unit, size_t times, const char *tail, size_t *len)
{
	struct buf	b;
	size_t		i, u = strlen(unit);

	buf_init(&b);
	buf_adds(&b, head);
	for (i = 0; i < times; i++)
		buf_add(&b, unit, u);
	buf_adds(&b, tail);
	*len = b.len;
	return buf_release(&b);
}

/* ---- the hostile inputs of issue 5 that are a parser's matter ---- */

static const struct hostile {
	const char	*name;
	const char	*in;
	size_t		 len;	/* 0: strlen */
	enum xml_cond	 cond;
} hostile[] = {
	{ "billion laughs", "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
	    "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
	    "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>"
	    "]>" BARE "<message><body>&lol3;</body></message>", 0,
	    XML_COND_RESTRICTED_XML },
	{ "external entity", "<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "
	    "'file:///etc/passwd'>]>" BARE "<message><body>&xxe;</body></message>", 0,
	    XML_COND_RESTRICTED_XML },
	{ "external DTD", "<!DOCTYPE stream SYSTEM 'http://evil.example/x.dtd'>" BARE, 0,
	    XML_COND_RESTRICTED_XML },
	{ "DOCTYPE inside the stream", HDR "<!DOCTYPE x>", 0, XML_COND_RESTRICTED_XML },
	{ "ENTITY inside a stanza", HDR "<message><!ENTITY a 'b'></message>", 0,
	    XML_COND_RESTRICTED_XML },
	{ "comment before the header", "<!-- hello -->" BARE, 0, XML_COND_RESTRICTED_XML },
	{ "comment between stanzas", HDR "<presence/><!-- x --><presence/>", 0,
	    XML_COND_RESTRICTED_XML },
	{ "comment inside a stanza", HDR "<message><body>a<!-- x -->b</body></message>",
	    0, XML_COND_RESTRICTED_XML },
	{ "processing instruction", HDR "<message><?php system('id'); ?></message>", 0,
	    XML_COND_RESTRICTED_XML },
	{ "stylesheet PI before the header", "<?xml-stylesheet href='a.xsl'?>" BARE, 0,
	    XML_COND_RESTRICTED_XML },
	{ "XML declaration after white space", " <?xml version='1.0'?>" BARE, 0,
	    XML_COND_RESTRICTED_XML },
	{ "XML 1.1 declaration", "<?xml version='1.1'?>" BARE, 0,
	    XML_COND_UNSUPPORTED_VERSION },
	{ "ISO-8859-1 declaration", "<?xml version='1.0' encoding='ISO-8859-1'?>" BARE, 0,
	    XML_COND_UNSUPPORTED_ENCODING },
	{ "UTF-16 declaration", "<?xml version='1.0' encoding='UTF-16'?>" BARE, 0,
	    XML_COND_UNSUPPORTED_ENCODING },
	{ "UTF-16 byte order mark", "\xfe\xff\0<\0s", 6, XML_COND_UNSUPPORTED_ENCODING },
	{ "UTF-16LE without BOM", "<\0s\0", 4, XML_COND_UNSUPPORTED_ENCODING },
	{ "invalid UTF-8 byte", HDR "<message><body>\xff</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "overlong 2-byte '/'", HDR "<message><body>\xc0\xaf</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "overlong 3-byte", HDR "<message><body>\xe0\x80\xaf</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "overlong 4-byte", HDR "<message><body>\xf0\x80\x80\xaf</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "surrogate", HDR "<message><body>\xed\xa0\x80</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "above U+10FFFF", HDR "<message><body>\xf4\x90\x80\x80</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "truncated sequence", HDR "<message><body>\xe6\xbc</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "invalid UTF-8 in an attribute", HDR "<message to='\xc3\x28'/>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "invalid UTF-8 in a name", HDR "<mess\xc3" "age/>", 0, XML_COND_NOT_WELL_FORMED },
	{ "U+FFFE", HDR "<message><body>\xef\xbf\xbe</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "control character", HDR "<message><body>\x01</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "NUL byte", HDR "<message><body>a\0b</body></message>",
	    sizeof(HDR "<message><body>a\0b</body></message>") - 1,
	    XML_COND_NOT_WELL_FORMED },
	{ "NUL in the header", "<stream:stream\0", 15, XML_COND_NOT_WELL_FORMED },
	{ "&#0;", HDR "<message><body>&#0;</body></message>", 0, XML_COND_NOT_WELL_FORMED },
	{ "&#xD800;", HDR "<message><body>&#xD800;</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "&#x110000; in an attribute", HDR "<message id='&#x110000;'/>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "unknown entity", HDR "<message><body>&nbsp;</body></message>", 0,
	    XML_COND_RESTRICTED_XML },
	{ "unknown entity in an attribute", HDR "<message id='&foo;'/>", 0,
	    XML_COND_RESTRICTED_XML },
	{ "bare ampersand", HDR "<message><body>AT&T</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "mismatched tags", HDR "<message><body>hi</message></body>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "unclosed tags at stream end", HDR "<message><body>hi</stream:stream>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "undeclared element prefix", HDR "<foo:message/>", 0, XML_COND_NOT_WELL_FORMED },
	{ "undeclared attribute prefix", HDR "<message foo:to='x'/>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "redefined stream prefix", HDR "<message xmlns:stream='urn:evil'>"
	    "<stream:error/></message>", 0, XML_COND_INVALID_NAMESPACE },
	{ "second stream header", HDR "<presence/>" BARE, 0,
	    XML_COND_UNSUPPORTED_STANZA_TYPE },
	{ "second header with a declaration", HDR "<?xml version='1.0'?>" BARE, 0,
	    XML_COND_RESTRICTED_XML },
	{ "wrong stream namespace", "<stream:stream xmlns='jabber:client' "
	    "xmlns:stream='urn:not-streams'>", 0, XML_COND_INVALID_NAMESPACE },
	{ "wrong content namespace", "<stream:stream xmlns='jabber:server' xmlns:stream="
	    "'http://etherx.jabber.org/streams'>", 0, XML_COND_INVALID_NAMESPACE },
	{ "no content namespace", "<stream:stream xmlns:stream="
	    "'http://etherx.jabber.org/streams'>", 0, XML_COND_INVALID_NAMESPACE },
	{ "root is not a stream", "<html xmlns='jabber:client'>", 0,
	    XML_COND_INVALID_NAMESPACE },
	{ "stream version 2.0", "<stream:stream xmlns='jabber:client' xmlns:stream="
	    "'http://etherx.jabber.org/streams' version='2.0'>", 0,
	    XML_COND_UNSUPPORTED_VERSION },
	{ "text at stream level", HDR "hello<presence/>", 0, XML_COND_NOT_WELL_FORMED },
	{ "reference at stream level", HDR "&amp;", 0, XML_COND_NOT_WELL_FORMED },
	{ "text before the header", "hello" BARE, 0, XML_COND_NOT_WELL_FORMED },
	{ "CDATA at stream level", HDR "<![CDATA[ ]]>", 0, XML_COND_NOT_WELL_FORMED },
	{ "']]>' in text", HDR "<message><body>a]]>b</body></message>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "duplicate attribute", HDR "<message to='a' to='b'/>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "duplicate attribute by namespace", HDR "<message xmlns:a='urn:x' "
	    "xmlns:b='urn:x' a:t='1' b:t='2'/>", 0, XML_COND_NOT_WELL_FORMED },
	{ "binding the xmlns prefix", HDR "<message xmlns:xmlns='urn:x'/>", 0,
	    XML_COND_NOT_WELL_FORMED },
	{ "a 40-byte reference", HDR "<message><body>&#x000000000000000000000000000000041;"
	    "</body></message>", 0, XML_COND_NOT_WELL_FORMED },
	{ "stanza after the stream end", HDR "</stream:stream><presence/>", 0,
	    XML_COND_NOT_WELL_FORMED },
};

static void
test_every_hostile_input_gets_its_condition(void **state)
{
	size_t			 i, n;
	enum xml_cond		 c;
	const struct hostile	*h;

	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		h = &hostile[i];
		n = h->len ? h->len : strlen(h->in);
		if ((c = cond_of(h->in, n, 0)) != h->cond)
			fail_msg("%s: got %s, want %s", h->name, xmlfilter_cond_name(c),
			    xmlfilter_cond_name(h->cond));
		if ((c = cond_of(h->in, n, 1)) != h->cond)
			fail_msg("%s (authenticated): got %s", h->name,
			    xmlfilter_cond_name(c));
	}
}

static void
test_hostile_inputs_fail_the_same_at_every_split(void **state)
{
	size_t	i;

	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
		assert_split_invariant(hostile[i].in,
		    hostile[i].len ? hostile[i].len : strlen(hostile[i].in), 0, 0, 1);
}

static void
test_stanzas_before_a_hostile_one_are_delivered(void **state)
{
	struct run	 how = { NULL, 0, 0, 0, 0 };
	const char	 in[] = HDR "<presence/><message><!-- x --></message>";
	char		*log = run(&how, in, sizeof(in) - 1, NULL);

	assert_string_equal(log, "open\n<presence/>\nerror restricted-xml\n");
	free(log);
}

static void
test_quadratic_blowup_is_refused_before_any_entity(void **state)
{
	size_t		 n;
	char		*big, *in;
	struct buf	 b;

	big = repeat("", "a", 100000, "", &n);
	buf_init(&b);
	buf_printf(&b, "<?xml version='1.0'?><!DOCTYPE k [<!ENTITY a '%s'>]>" BARE
	    "<message><body>", big);
	for (n = 0; n < 1000; n++)
		buf_adds(&b, "&a;");
	in = buf_release(&b);
	assert_int_equal(cond_of(in, strlen(in), 1), XML_COND_RESTRICTED_XML);
	free(in);
	free(big);
}

static void
test_ten_thousand_deep_nesting_is_a_policy_violation(void **state)
{
	size_t			 n;
	char			*in = repeat(HDR "<message>", "<a>", 10000, "", &n);
	struct run		 how = { NULL, 0, 1, 0, 0 };
	struct xmlstream	*xs;

	free(run(&how, in, n, &xs));
	assert_int_equal(xmlstream_error(xs), XML_COND_POLICY_VIOLATION);
	assert_non_null(strstr(xmlstream_error_text(xs), "nested too deep (limit 32)"));
	xmlstream_free(xs);
	assert_split_invariant(in, n, 0, 1, 101);
	free(in);
}

static void
test_depth_limit_is_exact(void **state)
{
	size_t	 n;
	char	*ok, *deep;

	/* the stanza is depth 1: 31 more levels are allowed, 32 are not */
	ok = repeat(HDR "<message>", "<a>", 31, "", &n);
	assert_int_equal(cond_of(ok, n, 1), XML_COND_NONE);
	deep = repeat(HDR "<message>", "<a>", 32, "", &n);
	assert_int_equal(cond_of(deep, n, 1), XML_COND_POLICY_VIOLATION);
	free(ok);
	free(deep);
}

static void
test_hundred_thousand_attributes_are_a_policy_violation(void **state)
{
	struct buf		 b;
	int			 i;
	struct run		 how = { NULL, 0, 1, 4096, 0 };
	struct xmlstream	*xs;

	buf_init(&b);
	buf_adds(&b, HDR "<message");
	for (i = 0; i < 100000; i++)
		buf_printf(&b, " a%d='x'", i);
	buf_adds(&b, "/>");
	free(run(&how, b.data, b.len, &xs));
	assert_int_equal(xmlstream_error(xs), XML_COND_POLICY_VIOLATION);
	assert_non_null(strstr(xmlstream_error_text(xs), "too many attributes"));
	assert_true(xmlstream_mempeak(xs) < 64 * 1024);
	xmlstream_free(xs);
	buf_free(&b);
}

static void
test_attribute_count_limit_is_exact(void **state)
{
	struct buf	b;
	int		i;

	buf_init(&b);
	buf_adds(&b, HDR "<message");
	for (i = 0; i < 64; i++)
		buf_printf(&b, " a%d='x'", i);
	assert_int_equal(cond_of(b.data, b.len, 1), XML_COND_NONE);
	buf_adds(&b, "/>");
	assert_int_equal(cond_of(b.data, b.len, 1), XML_COND_NONE);
	b.len -= 2;
	buf_adds(&b, " a64='x'/>");
	assert_int_equal(cond_of(b.data, b.len, 1), XML_COND_POLICY_VIOLATION);
	buf_free(&b);
}

static void
test_namespace_declaration_limit_is_exact(void **state)
{
	struct buf	b;
	int		i;

	buf_init(&b);
	buf_adds(&b, HDR "<message");
	for (i = 0; i < 16; i++)
		buf_printf(&b, " xmlns:p%d='urn:%d'", i, i);
	buf_adds(&b, "/>");
	assert_int_equal(cond_of(b.data, b.len, 1), XML_COND_NONE);
	b.len -= 2;
	buf_adds(&b, " xmlns:q='urn:q'/>");
	assert_int_equal(cond_of(b.data, b.len, 1), XML_COND_POLICY_VIOLATION);
	buf_free(&b);
}

static void
test_ten_megabyte_attribute_is_a_policy_violation(void **state)
{
	size_t			 n;
	char			*in = repeat(HDR "<message id='", "x", 10 * 1024 * 1024, "'/>",
	    &n);
	struct run		 how = { NULL, 0, 1, 65536, 0 };
	struct xmlstream	*xs;

	free(run(&how, in, n, &xs));
	assert_int_equal(xmlstream_error(xs), XML_COND_POLICY_VIOLATION);
	assert_non_null(strstr(xmlstream_error_text(xs), "attribute value too long"));
	assert_true(xmlstream_mempeak(xs) < 64 * 1024);
	xmlstream_free(xs);
	free(in);
}

static void
test_attribute_length_limit_is_exact(void **state)
{
	size_t	 n;
	char	*ok = repeat(HDR "<message id='", "x", 8192, "'/>", &n), *big;

	assert_int_equal(cond_of(ok, n, 1), XML_COND_NONE);
	big = repeat(HDR "<message id='", "x", 8193, "'/>", &n);
	assert_int_equal(cond_of(big, n, 1), XML_COND_POLICY_VIOLATION);
	free(ok);
	free(big);
}

/* Feeds a 100 MB stanza in 64 KiB reads, as a socket would. */
static void
hundred_megabytes(int authed, const char *open, size_t limit)
{
	struct xmlstream	*xs;
	struct rec		 r;
	char			*chunk = malloc(65536);
	size_t			 fed = 0;
	int			 rc;

	memset(chunk, 'x', 65536);
	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	xs = xmlstream_new(NULL, NULL, 0, &rec_cb, &r);
	xmlstream_set_auth(xs, authed);
	assert_int_equal(xmlstream_feed(xs, HDR, strlen(HDR)), XMLS_OK);
	assert_int_equal(xmlstream_feed(xs, open, strlen(open)), XMLS_OK);
	while ((rc = xmlstream_feed(xs, chunk, 65536)) == XMLS_OK && fed < 100 * 1024 * 1024)
		fed += 65536;
	assert_int_equal(rc, XMLS_ERROR);
	assert_true(fed <= limit);	/* refused as soon as the limit passed */
	assert_int_equal(xmlstream_error(xs), XML_COND_POLICY_VIOLATION);
	assert_true(xmlstream_mempeak(xs) < 3 * limit + 32 * 1024);
	xmlstream_free(xs);
	buf_free(&r.log);
	free(chunk);
}

static void
test_hundred_megabyte_stanza_is_refused_in_bounded_memory(void **state)
{
	hundred_megabytes(0, "<message><body>", 10000);
	hundred_megabytes(1, "<message><body>", 262144);
	hundred_megabytes(1, "<message><x a='b'/><body>", 262144);
}

static void
test_hundred_megabyte_tag_is_refused_in_bounded_memory(void **state)
{
	hundred_megabytes(0, "<message ", 10000);
	hundred_megabytes(1, "<message ", 262144);
}

static void
test_stanza_limit_before_and_after_authentication(void **state)
{
	size_t	 n;
	/* exactly 10000 bytes from '<' to '>' */
	char	*ok = repeat(HDR "<message><body>", "x", 10000 - 32, "</body></message>", &n);
	char	*big = repeat(HDR "<message><body>", "x", 10000 - 31, "</body></message>",
	    &n);

	assert_int_equal(cond_of(ok, strlen(ok), 0), XML_COND_NONE);
	assert_int_equal(cond_of(big, strlen(big), 0), XML_COND_POLICY_VIOLATION);
	assert_int_equal(cond_of(big, strlen(big), 1), XML_COND_NONE);
	free(ok);
	free(big);
	/* the header counts as a stanza before authentication */
	big = repeat("<stream:stream xmlns='jabber:client' xmlns:stream="
	    "'http://etherx.jabber.org/streams' to='", "x", 10000, "'>", &n);
	assert_int_equal(cond_of(big, n, 0), XML_COND_POLICY_VIOLATION);
	free(big);
}

static void
test_text_limit_counts_decoded_bytes(void **state)
{
	struct xml_limits	 lim;
	struct run		 how = { &lim, 0, 1, 0, 0 };
	size_t			 n;
	char			*in, *log;

	xmlfilter_limits_default(&lim);
	lim.text_bytes = 2000;
	in = repeat(HDR "<message><body>", "&amp;", 2000, "</body></message>", &n);
	log = run(&how, in, n, NULL);
	assert_null(strstr(log, "error"));
	free(log);
	free(in);
	in = repeat(HDR "<message><body>", "&amp;", 2001, "</body></message>", &n);
	log = run(&how, in, n, NULL);
	assert_non_null(strstr(log, "error policy-violation"));
	free(log);
	free(in);
}

static void
test_a_tree_over_the_memory_limit_is_refused(void **state)
{
	struct run		 how = { NULL, 0, 1, 8192, 0 };
	struct xmlstream	*xs;
	size_t			 n;
	char			*in;

	/* 250 KB of empty elements would be megabytes of nodes */
	in = repeat(HDR "<message>", "<a/>", 62000, "</message>", &n);
	free(run(&how, in, n, &xs));
	assert_int_equal(xmlstream_error(xs), XML_COND_POLICY_VIOLATION);
	assert_non_null(strstr(xmlstream_error_text(xs), "more than 2097152 bytes"));
	assert_true(xmlstream_mempeak(xs) <= 2097152 + 1024);
	xmlstream_free(xs);
	free(in);
}

static void
test_limits_defaults_are_valid_and_checked(void **state)
{
	struct xml_limits	lim;
	char			err[128];

	xmlfilter_limits_default(&lim);
	assert_int_equal(lim.stanza_bytes, 262144);
	assert_int_equal(lim.stanza_bytes_preauth, 10000);
	assert_int_equal(lim.depth, 32);
	assert_int_equal(lim.attrs, 64);
	assert_int_equal(xmlfilter_limits_check(&lim, err, sizeof(err)), 0);
	lim.depth = 1;
	assert_int_equal(xmlfilter_limits_check(&lim, err, sizeof(err)), -1);
	assert_string_equal(err, "depth: 1 is out of range (2-256)");
	lim.depth = 32;
	lim.attr_bytes = 100;
	assert_int_equal(xmlfilter_limits_check(&lim, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "attribute_bytes"));
}

static void
test_condition_names_are_rfc_6120s(void **state)
{
	int	c;

	assert_string_equal(xmlfilter_cond_name(XML_COND_NOT_WELL_FORMED), "not-well-formed");
	assert_string_equal(xmlfilter_cond_name(XML_COND_RESTRICTED_XML), "restricted-xml");
	assert_string_equal(xmlfilter_cond_name(XML_COND_UNSUPPORTED_VERSION),
	    "unsupported-version");
	assert_string_equal(xmlfilter_cond_name(XML_COND_NONE), "");
	for (c = 1; c < XML_COND_COUNT; c++)
		assert_int_equal(xmlfilter_cond_parse(xmlfilter_cond_name(c)), c);
	assert_int_equal(xmlfilter_cond_parse("no-such-thing"), XML_COND_NONE);
	assert_int_equal(XML_COND_COUNT, 26);	/* RFC 6120 4.9.3 has 25 */
}

static void
test_utf8_bom_and_valid_multibyte_are_accepted(void **state)
{
	assert_int_equal(COND("\xef\xbb\xbf" BARE "<message><body>\xc2\x80\xdf\xbf"
	    "\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd\xf0\x90\x80\x80"
	    "\xf4\x8f\xbf\xbf\x7f</body></message>"), XML_COND_NONE);
	assert_int_equal(COND(HDR "<message><body>\xef\xbb\xbf</body></message>"),
	    XML_COND_NONE);
	assert_int_equal(COND(HDR "\xef\xbb\xbf"), XML_COND_NOT_WELL_FORMED);
}

/* ---- repair mode ---- */

static char *
repaired(const char *in, size_t n)
{
	struct xmlrepair	 r;
	unsigned char		 out[256];
	struct buf		 b;
	size_t			 len, taken, at = 0;

	xmlfilter_repair_init(&r);
	buf_init(&b);
	buf_adds(&b, "");
	/* one byte at a time: the hardest split */
	while (at < n) {
		len = xmlfilter_repair(&r, (const unsigned char *)in + at, 1, out,
		    sizeof(out), &taken);
		buf_add(&b, out, len);
		at += taken;
	}
	return buf_release(&b);
}

static void
check_repair(const char *in, const char *want)
{
	char	*got = repaired(in, strlen(in));

	if (strcmp(got, want) != 0)
		fail_msg("repair of \"%s\": got \"%s\" want \"%s\"", in, got, want);
	free(got);
}

static void
test_repair_replaces_invalid_utf8_by_maximal_subpart(void **state)
{
	check_repair("caf\xe9!", "caf\xef\xbf\xbd!");
	check_repair("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");
	check_repair("\xe2\x82" "A", "\xef\xbf\xbd" "A");
	check_repair("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	check_repair("\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	check_repair("\xef\xbf\xbe|\x01|\x7f|\t", "\xef\xbf\xbd|\xef\xbf\xbd|\x7f|\t");
	check_repair("\xe6\xbc\xa2\xf0\x9f\x8e\x89", "\xe6\xbc\xa2\xf0\x9f\x8e\x89");
}

static void
test_repair_escapes_broken_references(void **state)
{
	check_repair("AT&T ", "AT&amp;T ");
	check_repair("&nbsp;&lt;&gt;&amp;&quot;&apos;", "&amp;nbsp;&lt;&gt;&amp;&quot;&apos;");
	check_repair("&#0;&#65;&#x41;&#xD800;&#x110000;&#;&#x;",
	    "&amp;#0;&#65;&#x41;&amp;#xD800;&amp;#x110000;&amp;#;&amp;#x;");
	check_repair("<a b='x&y'/>", "<a b='x&amp;y'/>");
	check_repair("&& ", "&amp;&amp; ");
	check_repair("&" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;",
	    "&amp;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;");
	check_repair("&am\xc3\xa9", "&amp;am\xc3\xa9");
}

static void
test_repair_drops_comments_and_pis_and_keeps_cdata(void **state)
{
	check_repair("<?xml version='1.0' encoding='latin1'?><a>x<!-- a & b -->y</a>",
	    "<a>xy</a>");
	check_repair("<a><![CDATA[a & b <c> ]]]>d ]]> e</a>",
	    "<a><![CDATA[a & b <c> ]]]>d ]]&gt; e</a>");
	check_repair("<!DOCTYPE x><<b", "<!DOCTYPE x><<b");
	check_repair("<![CDAT&a", "<![CDAT");	/* "&a" may yet be "&amp;" */
	check_repair("<![CDAT&a b", "<![CDAT&amp;a b");
	check_repair("<!-", "");	/* held: it may yet become a comment */
}

static void
test_repair_mode_turns_broken_backend_output_into_valid_stanzas(void **state)
{
	struct run	 how = { NULL, XMLS_REPAIR, 1, 0, 0 };
	const char	 in[] = "<?xml version='1.0' encoding='ISO-8859-1'?>" BARE
	    "<!-- server -->\n<message from='a@b' id='AT&T'><body>caf\xe9 &nbsp; &#0; "
	    "\x01 ]]> <![CDATA[x & y]]></body></message></stream:stream>";
	char		*log = run(&how, in, sizeof(in) - 1, NULL);

	assert_string_equal(log, "open\n<message from='a@b' id='AT&amp;T'><body>"
	    "caf\xef\xbf\xbd &amp;nbsp; &amp;#0; \xef\xbf\xbd ]]&gt; x &amp; y</body>"
	    "</message>\nclose\n");
	free(log);
	assert_split_invariant(in, sizeof(in) - 1, XMLS_REPAIR, 1, 1);
}

static void
test_repair_mode_still_refuses_what_it_cannot_repair(void **state)
{
	struct run	 how = { NULL, XMLS_REPAIR, 1, 0, 0 };
	const char	 dtd[] = "<!DOCTYPE x [<!ENTITY a 'b'>]>" BARE;
	const char	 tags[] = BARE "<message><body></message>";
	char		*log;

	log = run(&how, dtd, sizeof(dtd) - 1, NULL);
	assert_string_equal(log, "error restricted-xml\n");
	free(log);
	log = run(&how, tags, sizeof(tags) - 1, NULL);
	assert_string_equal(log, "open\nerror not-well-formed\n");
	free(log);
}

static void
test_repair_mode_leaves_valid_streams_alone(void **state)
{
	struct run	 strict = { NULL, 0, 1, 0, 0 }, fix = { NULL, XMLS_REPAIR, 1, 0, 0 };
	const char	 in[] = HDR "<message to='a@b' xml:lang='en'><body>\xc3\xa9 &lt;&amp;"
	    "&gt;&quot;&apos; &#x1F389;</body><x xmlns='urn:x'><![CDATA[<&>]]></x>"
	    "</message><presence/></stream:stream>";
	char		*a = run(&strict, in, sizeof(in) - 1, NULL);
	char		*b = run(&fix, in, sizeof(in) - 1, NULL);

	assert_string_equal(a, b);
	assert_null(strstr(a, "error"));
	free(a);
	free(b);
}

/* ---- the lexer's fast path: 16-byte blocks and whole characters ---- */

/*
 * The lexer's events over IN (want_markup on) in reads of CHUNK bytes (0:
 * whole), as "M<offset>" and "I<offset>" words (the offset after the event's
 * byte), then "E<offset> <what>" at the bad byte; and its state at the end.
 */
static char *
lex(const struct xml_limits *lim, const char *in, size_t n, size_t chunk)
{
	struct xml_limits	 dflt;
	struct xmlfilter	 f;
	struct buf		 b;
	size_t			 at = 0, k, t;
	int			 ev = XF_MORE;

	if (lim == NULL) {
		xmlfilter_limits_default(&dflt);
		lim = &dflt;
	}
	xmlfilter_init(&f, lim, 1);
	f.want_markup = 1;
	buf_init(&b);
	buf_adds(&b, "");
	while (at < n && ev != XF_ERROR) {
		k = chunk == 0 || n - at < chunk ? n - at : chunk;
		while (k > 0) {
			t = xmlfilter_scan(&f, (const unsigned char *)in + at, k, &ev);
			at += t;
			k -= t;
			if (ev == XF_ERROR) {
				buf_printf(&b, "E%zu %s", at, f.what);
				break;
			}
			if (ev != XF_MORE)
				buf_printf(&b, "%c%zu ", ev == XF_ITEM ? 'I' : 'M', at);
		}
	}
	buf_printf(&b, " | state %d depth %u run %u nattr %u slash %d need %d "
	    "pos %llu items %llu", f.state, f.depth, f.run, f.nattr, f.slash, f.need,
	    (unsigned long long)f.pos, (unsigned long long)f.item_bytes);
	return buf_release(&b);
}

/* lex() whole, in 1-, 7- and 16-byte reads and split at every byte: the same. */
static char *
lex_all(const struct xml_limits *lim, const char *in, size_t n)
{
	static const size_t	 chunks[] = { 1, 7, 16 };
	char			*whole = lex(lim, in, n, 0), *other;
	size_t			 i;

	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		other = lex(lim, in, n, chunks[i]);
		if (strcmp(other, whole) != 0)
			fail_msg("%zu-byte reads of \"%s\":\n%s\nwhole:\n%s", chunks[i],
			    in, other, whole);
		free(other);
	}
	return whole;
}

/* Asserts that lex_all(IN) begins with WANT. */
static void
check_lex(const struct xml_limits *lim, const char *in, size_t n, const char *want)
{
	char	*got = lex_all(lim, in, n);

	if (strncmp(got, want, strlen(want)) != 0)
		fail_msg("lexing \"%.*s\": got \"%s\" want \"%s...\"", (int)n, in, got,
		    want);
	free(got);
}

#define STZ	BARE "<message>"	/* a stanza's content follows */

/* The input PRE, K copies of "x", MID, then "x" to 64 bytes, then POST. */
static char *
at_offset(const char *pre, size_t k, const char *mid, const char *post, size_t *n)
{
	struct buf	b;
	size_t		i;

	buf_init(&b);
	buf_adds(&b, pre);
	for (i = 0; i < k; i++)
		buf_addc(&b, 'x');
	buf_adds(&b, mid);
	for (i = k + strlen(mid); i < 64; i++)
		buf_addc(&b, 'x');
	buf_adds(&b, post);
	*n = b.len;
	return buf_release(&b);
}

static void
test_fast_path_finds_each_markup_byte_at_every_offset(void **state)
{
	const size_t	 base = strlen(STZ);
	char		*in, want[128];
	size_t		 k, n;

	for (k = 0; k < 32; k++) {
		/* text: '<' opens a tag, '&' a reference */
		in = at_offset(STZ, k, "<b/>", "", &n);
		snprintf(want, sizeof(want), "I%zu M%zu M%zu ", strlen(BARE), base,
		    base + k + 4);
		check_lex(NULL, in, n, want);
		free(in);
		in = at_offset(STZ, k, "&amp;", "", &n);
		snprintf(want, sizeof(want), "I%zu M%zu  | state 0 depth 2 ",
		    strlen(BARE), base);
		check_lex(NULL, in, n, want);
		free(in);
		in = at_offset(STZ, k, "&", "", &n);	/* x's after it: too long */
		snprintf(want, sizeof(want), "I%zu M%zu E%zu a reference too long",
		    strlen(BARE), base, base + k + 32);
		check_lex(NULL, in, n, want);
		free(in);
		/* attribute values end at their own quote only */
		in = at_offset(STZ "<b v='", k, "\"'/>", "", &n);
		snprintf(want, sizeof(want), "I%zu M%zu M%zu ", strlen(BARE), base,
		    base + 6 + k + 4);
		check_lex(NULL, in, n, want);
		free(in);
		in = at_offset(STZ "<b v=\"", k, "'\"/>", "", &n);
		check_lex(NULL, in, n, want);
		free(in);
		/* a tag ends at '>' and its '/' makes it empty */
		in = at_offset(STZ "<b ", k, "/>", "", &n);
		snprintf(want, sizeof(want), "I%zu M%zu M%zu  | state 0 depth 2 ",
		    strlen(BARE), base, base + 3 + k + 2);
		check_lex(NULL, in, n, want);
		free(in);
		/* CDATA ends at "]]>" */
		in = at_offset(STZ "<![CDATA[", k, "]]>", "", &n);
		snprintf(want, sizeof(want), "I%zu M%zu M%zu  | state 0 depth 2 ",
		    strlen(BARE), base, base + 9);
		check_lex(NULL, in, n, want);
		free(in);
	}
}

static void
test_fast_path_counts_attributes_at_every_offset(void **state)
{
	struct xml_limits	 lim;
	const size_t		 base = strlen(STZ);
	char			*in, want[128];
	size_t			 k, n;

	xmlfilter_limits_default(&lim);
	lim.attrs = 1;
	lim.ns_decls = 1;
	for (k = 0; k < 32; k++) {
		in = at_offset(STZ "<b a='1' b='2'", k, " c='3'", "/>", &n);
		snprintf(want, sizeof(want), "I%zu M%zu E%zu too many attributes",
		    strlen(BARE), base, base + 14 + k + 2);
		check_lex(&lim, in, n, want);
		free(in);
	}
}

static const char *const fast_ctx[] = { STZ, STZ "<b v='", STZ "<b v=\"",
    STZ "<b ", STZ "<![CDATA[" };
#define NCTX	(sizeof(fast_ctx) / sizeof(fast_ctx[0]))

/* Asserts that lex_all(IN) holds WANT (NULL: no error). */
static void
check_lex_has(const char *in, size_t n, const char *want)
{
	char	*got = lex_all(NULL, in, n);

	if (want != NULL ? strstr(got, want) == NULL : strchr(got, 'E') != NULL)
		fail_msg("lexing \"%.*s\": got \"%s\" want \"%s\"", (int)n, in, got,
		    want != NULL ? want : "no error");
	free(got);
}

static void
test_fast_path_refuses_control_bytes_at_every_offset(void **state)
{
	static const char *const ctl[] = { "\x01", "\x1f", "\x0b", "\x7f" };
	char	*in, want[96];
	size_t	 c, k, n, x, at;

	for (x = 0; x < NCTX; x++)
		for (c = 0; c < sizeof(ctl) / sizeof(ctl[0]); c++)
			for (k = 0; k < 32; k++) {
				in = at_offset(fast_ctx[x], k, ctl[c], "", &n);
				at = strlen(fast_ctx[x]) + k;
				snprintf(want, sizeof(want), "E%zu a character XML does "
				    "not allow", at);
				check_lex_has(in, n, ctl[c][0] == 0x7f ? NULL : want);
				in[at] = k % 3 == 0 ? '\t' : k % 3 == 1 ? '\n' : '\r';
				check_lex_has(in, n, NULL);	/* white space is fine */
				free(in);
			}
	/* NUL at a block's last byte and at the last byte of a read */
	for (k = 0; k < 32; k++) {
		in = at_offset(STZ, k, "", "", &n);
		at = strlen(STZ) + k;
		in[at] = '\0';
		snprintf(want, sizeof(want), "I%zu M%zu E%zu a character XML does not allow",
		    strlen(BARE), strlen(STZ), at);
		check_lex(NULL, in, at + 1, want);
		check_lex(NULL, in, n, want);
		free(in);
	}
}

static void
test_fast_path_takes_multibyte_characters_across_blocks_and_reads(void **state)
{
	static const char *const chars[] = { "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80",
	    "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xf0\x90\x80\x80",
	    "\xf4\x8f\xbf\xbf" };
	char	*in, want[64];
	size_t	 c, k, n, x;

	for (x = 0; x < NCTX; x++)
		for (c = 0; c < sizeof(chars) / sizeof(chars[0]); c++)
			for (k = 0; k < 32; k++) {
				in = at_offset(fast_ctx[x], k, chars[c], "", &n);
				check_lex_has(in, n, NULL);
				/* every byte of the value counted */
				snprintf(want, sizeof(want), x == 1 || x == 2 ?
				    "run 64 nattr 1 slash 0 need 0 pos %zu" :
				    "need 0 pos %zu", n);
				check_lex_has(in, n, want);
				free(in);
			}
}

static void
test_fast_path_refuses_bad_utf8_inside_ascii_runs(void **state)
{
	static const struct {
		const char	*seq;
		size_t		 bad;	/* the offset of the byte refused */
	} bad[] = {
		{ "\xc0\xaf", 0 }, { "\xc1\xbf", 0 }, { "\xe0\x80\xaf", 1 },
		{ "\xe0\x9f\xbf", 1 }, { "\xed\xa0\x80", 1 }, { "\xed\xbf\xbf", 1 },
		{ "\xf0\x80\x80\xaf", 1 }, { "\xf4\x90\x80\x80", 1 }, { "\xf5\x80", 0 },
		{ "\xff", 0 }, { "\x80", 0 }, { "\xc3x", 1 }, { "\xe6\xbcx", 2 },
		{ "\xef\xbf\xbe", 2 }, { "\xef\xbf\xbf", 2 }, { "\xf0\x9fx", 2 },
		{ "\xf0\x9f\x98x", 3 }, { "\xf4\x8f\xbf\xc0", 3 }, { "\xdf\xc0", 1 },
	};
	char	*in, want[64];
	size_t	 i, k, n, x;

	for (x = 0; x < NCTX; x++)
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			for (k = 0; k < 32; k++) {
				in = at_offset(fast_ctx[x], k, bad[i].seq, "", &n);
				snprintf(want, sizeof(want), "E%zu invalid UTF-8",
				    strlen(fast_ctx[x]) + k + bad[i].bad);
				check_lex_has(in, n, want);
				free(in);
			}
}

static void
test_fast_path_stops_at_the_exact_byte_of_a_limit(void **state)
{
	struct xml_limits	 lim;
	const size_t		 lead = strlen(STZ "<b v='");
	char			*in, want[128];
	size_t			 n, k;

	xmlfilter_limits_default(&lim);
	lim.attr_bytes = 40;
	/* a value of 40 bytes passes; a character that would end past the
	 * limit is refused at its first byte over it */
	for (k = 34; k <= 41; k++) {
		in = repeat(STZ "<b v='", "x", k, "\xe6\xbc\xa2'/>", &n);
		if (k + 3 <= 40)
			snprintf(want, sizeof(want), "I%zu M%zu M%zu  | state 0 depth 2 "
			    "run %zu ", strlen(BARE), strlen(STZ), n, k + 3);
		else
			snprintf(want, sizeof(want), "I%zu M%zu E%zu an attribute value "
			    "too long", strlen(BARE), strlen(STZ), lead + 40);
		check_lex(&lim, in, n, want);
		free(in);
	}
	/* white space in a value counts too */
	for (k = 38; k <= 40; k++) {
		in = repeat(STZ "<b v='", "x", k, "\t'/>", &n);
		if (k < 40)
			snprintf(want, sizeof(want), "I%zu M%zu M%zu ", strlen(BARE),
			    strlen(STZ), n);
		else
			snprintf(want, sizeof(want), "I%zu M%zu E%zu an attribute value "
			    "too long", strlen(BARE), strlen(STZ), lead + 40);
		check_lex(&lim, in, n, want);
		free(in);
	}
	/* the stanza limit, likewise */
	lim.stanza_bytes = 1024;
	for (k = 0; k <= 4; k++) {
		in = repeat(STZ "<body>", "x", 1024 - 15 - 4 + k, "\xf0\x9f\x98\x80",
		    &n);
		if (k == 0)
			snprintf(want, sizeof(want), "I%zu M%zu M%zu  | state 0 depth 3 ",
			    strlen(BARE), strlen(STZ), strlen(STZ) + 6);
		else
			snprintf(want, sizeof(want), "I%zu M%zu M%zu E%zu a stanza too big",
			    strlen(BARE), strlen(STZ), strlen(STZ) + 6, strlen(BARE) + 1024);
		check_lex(&lim, in, n, want);
		free(in);
	}
}

/* Reads of every length in buffers of exactly that size: under
 * AddressSanitizer, a block read outside a read fails here. */
static void
test_fast_path_reads_no_byte_outside_the_read(void **state)
{
	static const char *const ctx[] = { STZ, STZ "<b v='", STZ "<b " };
	struct xml_limits	 lim;
	struct xmlfilter	 f;
	struct xmlrepair	 r;
	unsigned char		*p, out[256];
	size_t			 k, x, t;
	int			 ev;

	xmlfilter_limits_default(&lim);
	for (x = 0; x < sizeof(ctx) / sizeof(ctx[0]); x++) {
		xmlfilter_init(&f, &lim, 1);
		for (k = 0; k < strlen(ctx[x]); k += t) {
			t = xmlfilter_scan(&f, (const unsigned char *)ctx[x] + k,
			    strlen(ctx[x]) - k, &ev);
			assert_int_not_equal(ev, XF_ERROR);
		}
		for (k = 1; k <= 40; k++) {
			p = malloc(k);
			memset(p, 'x', k);
			assert_int_equal(xmlfilter_scan(&f, p, k, &ev), k);
			assert_int_equal(ev, XF_MORE);
			xmlfilter_repair_init(&r);
			assert_int_equal(xmlfilter_repair(&r, p, k, out, sizeof(out), &t), k);
			free(p);
		}
	}
}

/* Repair whole and one byte at a time: the same output. */
static void
check_repair_whole(const char *in, size_t n, const char *want)
{
	struct xmlrepair	 r;
	unsigned char		 out[4096];
	size_t			 len, taken;
	char			*one;

	xmlfilter_repair_init(&r);
	len = xmlfilter_repair(&r, (const unsigned char *)in, n, out, sizeof(out), &taken);
	assert_int_equal(taken, n);
	one = repaired(in, n);
	if (len != strlen(one) || memcmp(out, one, len) != 0)
		fail_msg("repair of \"%s\": whole \"%.*s\" one by one \"%s\"", in,
		    (int)len, out, one);
	if (want != NULL && (len != strlen(want) || memcmp(out, want, len) != 0))
		fail_msg("repair of \"%s\": got \"%.*s\" want \"%s\"", in, (int)len,
		    out, want);
	free(one);
}

static void
test_repair_fast_path_at_every_offset(void **state)
{
	static const char *const seq[] = { "<", "&", "]]>", "\x01", "\x00", "\t",
	    "\xc3\xa9", "\xe6\xbc\xa2", "\xf0\x9f\x98\x80", "\xc0\xaf", "\xed\xa0\x80",
	    "\xef\xbf\xbe", "\xe6\xbc", "\x80", "\xf0\x9f\x98x", "\xf4\x8f\xbf\xc0",
	    "<b", "<!--c-->", "<?p?>", "&amp;" };
	static const char *const ctx[] = { "", "<a><![CDATA[" };
	char	*in, *want;
	size_t	 i, k, n, x;

	for (x = 0; x < sizeof(ctx) / sizeof(ctx[0]); x++)
		for (i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
			for (k = 0; k < 32; k++) {
				in = at_offset(ctx[x], k, seq[i], "", &n);
				if (seq[i][0] == '\0')
					in[strlen(ctx[x]) + k] = '\0';
				check_repair_whole(in, n, NULL);
				free(in);
			}
	/* a control byte at a block's end becomes U+FFFD, the rest is kept */
	for (k = 0; k < 32; k++) {
		in = at_offset("", k, "\x01", "", &n);
		want = at_offset("", k, "\xef\xbf\xbd", "xx", &n);
		check_repair_whole(in, 64, want);
		free(want);
		free(in);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_hostile_input_gets_its_condition),
		cmocka_unit_test(test_hostile_inputs_fail_the_same_at_every_split),
		cmocka_unit_test(test_stanzas_before_a_hostile_one_are_delivered),
		cmocka_unit_test(test_quadratic_blowup_is_refused_before_any_entity),
		cmocka_unit_test(test_ten_thousand_deep_nesting_is_a_policy_violation),
		cmocka_unit_test(test_depth_limit_is_exact),
		cmocka_unit_test(test_hundred_thousand_attributes_are_a_policy_violation),
		cmocka_unit_test(test_attribute_count_limit_is_exact),
		cmocka_unit_test(test_namespace_declaration_limit_is_exact),
		cmocka_unit_test(test_ten_megabyte_attribute_is_a_policy_violation),
		cmocka_unit_test(test_attribute_length_limit_is_exact),
		cmocka_unit_test(test_hundred_megabyte_stanza_is_refused_in_bounded_memory),
		cmocka_unit_test(test_hundred_megabyte_tag_is_refused_in_bounded_memory),
		cmocka_unit_test(test_stanza_limit_before_and_after_authentication),
		cmocka_unit_test(test_text_limit_counts_decoded_bytes),
		cmocka_unit_test(test_a_tree_over_the_memory_limit_is_refused),
		cmocka_unit_test(test_limits_defaults_are_valid_and_checked),
		cmocka_unit_test(test_condition_names_are_rfc_6120s),
		cmocka_unit_test(test_utf8_bom_and_valid_multibyte_are_accepted),
		cmocka_unit_test(test_repair_replaces_invalid_utf8_by_maximal_subpart),
		cmocka_unit_test(test_repair_escapes_broken_references),
		cmocka_unit_test(test_repair_drops_comments_and_pis_and_keeps_cdata),
		cmocka_unit_test(test_repair_mode_turns_broken_backend_output_into_valid_stanzas),
		cmocka_unit_test(test_repair_mode_still_refuses_what_it_cannot_repair),
		cmocka_unit_test(test_repair_mode_leaves_valid_streams_alone),
		cmocka_unit_test(test_fast_path_finds_each_markup_byte_at_every_offset),
		cmocka_unit_test(test_fast_path_counts_attributes_at_every_offset),
		cmocka_unit_test(test_fast_path_refuses_control_bytes_at_every_offset),
		cmocka_unit_test(test_fast_path_takes_multibyte_characters_across_blocks_and_reads),
		cmocka_unit_test(test_fast_path_refuses_bad_utf8_inside_ascii_runs),
		cmocka_unit_test(test_fast_path_stops_at_the_exact_byte_of_a_limit),
		cmocka_unit_test(test_fast_path_reads_no_byte_outside_the_read),
		cmocka_unit_test(test_repair_fast_path_at_every_offset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
