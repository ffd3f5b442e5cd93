/*
 * test_xmlstream.c: proxyd's streaming parser: its events, the same at every
 * split, stop and restart, memory between stanzas.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxyd.h"

#define HDR	"<?xml version='1.0'?><stream:stream xmlns='jabber:client' " \
		"xmlns:stream='http://etherx.jabber.org/streams' to='example.test' " \
		"version='1.0' xml:lang='en'>"

/* What a slixmpp login looks like on the wire (double quotes, as it writes). */
static const char login1[] =
    "<?xml version=\"1.0\"?><stream:stream to=\"example.test\" "
    "xmlns=\"jabber:client\" xmlns:stream=\"http://etherx.jabber.org/streams\" "
    "xml:lang=\"en\" version=\"1.0\">"
    "<auth xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\" mechanism=\"PLAIN\">"
    "AGFsaWNlAHNlY3JldA==</auth>";
static const char login2[] =
    "<stream:stream to=\"example.test\" xmlns=\"jabber:client\" "
    "xmlns:stream=\"http://etherx.jabber.org/streams\" xml:lang=\"en\" version=\"1.0\">"
    "<iq type=\"set\" id=\"bind_1\"><bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\">"
    "<resource>laptop</resource></bind></iq>\n"
    "<iq type=\"get\" id=\"roster_1\"><query xmlns=\"jabber:iq:roster\"/></iq>"
    "<presence><priority>1</priority><c xmlns=\"http://jabber.org/protocol/caps\" "
    "hash=\"sha-1\" node=\"http://slixmpp.com/ver/1.8.3\" ver=\"abc=\"/></presence> "
    "<message to=\"bob@example.test\" type=\"chat\" id=\"m1\" xml:lang=\"en\">"
    "<body>\xc3\xa9 \xc3\xbc \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x8e\x89 "
    "&lt;&amp;&gt;&quot;&apos;</body>"
    "<active xmlns=\"http://jabber.org/protocol/chatstates\"/></message>\r\n"
    "</stream:stream>";

struct rec {
	struct buf	 log;
	int		 stop_at_auth;
	int		 restart_in_cb;
	int		 nstanza;
	struct xmlstream *xs;
};

static int
rec_open(void *arg, const struct xml_node *root)
{
	struct rec	*r = arg;

	buf_adds(&r->log, "open ");
	serialize_header(&r->log, root, NULL);
	buf_addc(&r->log, '\n');
	return 0;
}

static int
rec_stanza(void *arg, const struct xml_node *n)
{
	struct rec	*r = arg;

	r->nstanza++;
	buf_adds(&r->log, "stanza ");
	serialize_stanza(&r->log, n, NULL);
	buf_addc(&r->log, '\n');
	if (strcmp(n->name, "auth") == 0) {
		if (r->restart_in_cb)
			xmlstream_restart(r->xs);
		return r->stop_at_auth;
	}
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

/* Feed IN in pieces (the cut points in CUTS, ascending); a stop at <auth/>
 * restarts the stream and resumes, as a session does on <success/>. */
static char *
run_cuts(const char *in, size_t n, const size_t *cuts, size_t ncuts, int flags,
    struct xmlstream **keep)
{
	struct rec		 r;
	size_t			 at = 0, i, end;
	int			 rc = 0;

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	buf_adds(&r.log, "");
	r.stop_at_auth = 1;
	r.xs = xmlstream_new(NULL, NULL, flags, &rec_cb, &r);
	for (i = 0; i <= ncuts && rc != XMLS_ERROR; i++) {
		end = i < ncuts ? cuts[i] : n;
		rc = xmlstream_feed(r.xs, in + at, end - at);
		while (rc == XMLS_STOPPED) {
			xmlstream_restart(r.xs);
			rc = xmlstream_resume(r.xs);
		}
		at = end;
	}
	if (rc == XMLS_ERROR)
		buf_printf(&r.log, "error %s\n",
		    xmlfilter_cond_name(xmlstream_error(r.xs)));
	if (keep != NULL)
		*keep = r.xs;
	else
		xmlstream_free(r.xs);
	return buf_release(&r.log);
}

static char *
run_whole(const char *in, size_t n)
{
	return run_cuts(in, n, NULL, 0, 0, NULL);
}

static char *
login(size_t *len)
{
	struct buf	b;

	buf_init(&b);
	buf_adds(&b, login1);
	buf_adds(&b, login2);
	*len = b.len;
	return buf_release(&b);
}

static void
test_login_sequence_gives_the_expected_events(void **state)
{
	size_t	 n;
	char	*in = login(&n), *log = run_whole(in, n);

	assert_string_equal(log,
	    "open <?xml version='1.0'?><stream:stream xmlns='jabber:client' "
	    "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' "
	    "xml:lang='en' version='1.0'>\n"
	    "stanza <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
	    "AGFsaWNlAHNlY3JldA==</auth>\n"
	    "open <?xml version='1.0'?><stream:stream xmlns='jabber:client' "
	    "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' "
	    "xml:lang='en' version='1.0'>\n"
	    "stanza <iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
	    "<resource>laptop</resource></bind></iq>\n"
	    "stanza <iq type='get' id='roster_1'><query xmlns='jabber:iq:roster'/></iq>\n"
	    "stanza <presence><priority>1</priority><c xmlns='http://jabber.org/protocol/caps' "
	    "hash='sha-1' node='http://slixmpp.com/ver/1.8.3' ver='abc='/></presence>\n"
	    "stanza <message to='bob@example.test' type='chat' id='m1' xml:lang='en'>"
	    "<body>\xc3\xa9 \xc3\xbc \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x8e\x89 "
	    "&lt;&amp;&gt;\"'</body>"
	    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>\n"
	    "close\n");
	free(log);
	free(in);
}

static const char *const valid_streams[] = {
	HDR "<message to='a@b'><body>hi</body></message></stream:stream>",
	HDR "<presence/>  \n\t<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
	HDR "<message><body>a&amp;b&#x263A;&#9786;<![CDATA[<not> & markup]]>]</body>"
	    "</message>",
	"\xef\xbb\xbf<stream:stream xmlns='jabber:client' "
	    "xmlns:stream='http://etherx.jabber.org/streams'><presence/></stream:stream>",
	"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' "
	    "xmlns:db='jabber:server:dialback'><s:error><text xmlns="
	    "'urn:ietf:params:xml:ns:xmpp-streams'>x</text></s:error><db:result to='a'>"
	    "k</db:result></s:stream>",
	HDR "<message><x xmlns='urn:a' xmlns:p='urn:p' p:q='1\t2&#10;3&#13;'><p:y/>"
	    "<z xmlns=''/></x><body>line1\r\nline2&#13;\xe2\x82\xac</body></message>",
	HDR "<iq type='result' id='r'><query xmlns='jabber:iq:roster'><item jid='a@b' "
	    "name='&quot;A&apos; &lt;&gt;' subscription='both'><group>G</group></item>"
	    "</query></iq>",
	"<stream:stream xmlns='jabber:client' xmlns:stream="
	    "'http://etherx.jabber.org/streams'/>",
};

static void
test_every_split_point_gives_the_same_events(void **state)
{
	size_t	 i, k, n;
	char	*whole, *split, *in;

	for (i = 0; i <= sizeof(valid_streams) / sizeof(valid_streams[0]); i++) {
		if (i < sizeof(valid_streams) / sizeof(valid_streams[0])) {
			in = strdup(valid_streams[i]);
			n = strlen(in);
		} else
			in = login(&n);
		whole = run_whole(in, n);
		assert_null(strstr(whole, "\nerror "));
		for (k = 1; k < n; k++) {
			split = run_cuts(in, n, &k, 1, 0, NULL);
			if (strcmp(split, whole) != 0)
				fail_msg("stream %zu split at %zu:\n%s\nwhole:\n%s", i, k,
				    split, whole);
			free(split);
		}
		free(whole);
		free(in);
	}
}

static void
test_byte_by_byte_gives_the_same_events(void **state)
{
	size_t	 i, n, *cuts;
	char	*in = login(&n), *whole = run_whole(in, n), *bytes;

	cuts = calloc(n, sizeof(*cuts));
	for (i = 0; i + 1 < n; i++)
		cuts[i] = i + 1;
	bytes = run_cuts(in, n, cuts, n - 1, 0, NULL);
	assert_string_equal(bytes, whole);
	free(bytes);
	bytes = run_cuts(in, n, cuts, n - 1, XMLS_KEEP, NULL);
	assert_string_equal(bytes, whole);
	free(bytes);
	free(cuts);
	free(whole);
	free(in);
}

static void
test_three_way_splits_give_the_same_events(void **state)
{
	const char	*in = valid_streams[4];
	size_t		 n = strlen(in), cuts[2];
	char		*whole = run_whole(in, n), *split;

	for (cuts[0] = 1; cuts[0] < n; cuts[0] += 3)
		for (cuts[1] = cuts[0] + 1; cuts[1] < n; cuts[1]++) {
			split = run_cuts(in, n, cuts, 2, 0, NULL);
			assert_string_equal(split, whole);
			free(split);
		}
	free(whole);
}

static void
test_idle_parser_holds_no_expat_and_no_tree(void **state)
{
	struct xmlstream	*xs;
	struct rec		 r;
	size_t			 idle, busy;
	int			 i;
	const char		 msg[] = "<message to='a@b' id='x'><body>hello</body>"
	    "</message>";

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	xs = xmlstream_new(NULL, NULL, 0, &rec_cb, &r);
	assert_int_equal(xmlstream_feed(xs, HDR, strlen(HDR)), XMLS_OK);
	for (i = 0; i < 100; i++)
		assert_int_equal(xmlstream_feed(xs, msg, sizeof(msg) - 1), XMLS_OK);
	idle = xmlstream_memsize(xs);
	assert_int_equal(r.nstanza, 100);
	assert_true(idle < 1024);	/* the struct and the prime only */
	assert_int_equal(xmlstream_feed(xs, "<message><body>half", 19), XMLS_OK);
	busy = xmlstream_memsize(xs);
	assert_true(busy > idle + 4096);	/* a live expat parser */
	assert_int_equal(xmlstream_feed(xs, "</body></message>", 17), XMLS_OK);
	assert_int_equal(xmlstream_memsize(xs), idle);
	/* a white space keepalive wakes nothing up */
	assert_int_equal(xmlstream_feed(xs, " \n", 2), XMLS_OK);
	assert_int_equal(xmlstream_memsize(xs), idle);
	xmlstream_free(xs);
	buf_free(&r.log);
}

static void
test_keep_mode_holds_the_parser_until_trim(void **state)
{
	struct xmlstream	*xs;
	struct rec		 r;
	size_t			 kept;

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	xs = xmlstream_new(NULL, NULL, XMLS_KEEP, &rec_cb, &r);
	assert_int_equal(xmlstream_feed(xs, HDR "<presence/>", strlen(HDR) + 11), XMLS_OK);
	kept = xmlstream_memsize(xs);
	assert_true(kept > 4096);
	xmlstream_trim(xs);
	assert_true(xmlstream_memsize(xs) < 1024);
	assert_int_equal(xmlstream_feed(xs, "<presence/>", 11), XMLS_OK);
	assert_int_equal(r.nstanza, 2);
	xmlstream_free(xs);
	buf_free(&r.log);
}

static void
test_stanza_after_release_keeps_the_header_namespaces(void **state)
{
	const char	*in = valid_streams[4];
	size_t		 n = strlen(in), k;
	char		*whole = run_whole(in, n), *split;

	/* db: and s: are bound only on the header; each cut frees the parser */
	assert_non_null(strstr(whole, "<stream:error><text xmlns='urn:ietf:params:xml:ns:"
	    "xmpp-streams'>x</text></stream:error>"));
	assert_non_null(strstr(whole, "<result xmlns='jabber:server:dialback' to='a'>"
	    "k</result>"));
	for (k = 1; k < n; k++) {
		split = run_cuts(in, n, &k, 1, 0, NULL);
		assert_string_equal(split, whole);
		free(split);
	}
	free(whole);
}

static void
test_stop_keeps_pipelined_bytes_for_resume(void **state)
{
	struct xmlstream	*xs;
	struct rec		 r;
	size_t			 n;
	char			*in = login(&n);

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	r.stop_at_auth = 1;
	xs = xmlstream_new(NULL, NULL, 0, &rec_cb, &r);
	assert_int_equal(xmlstream_feed(xs, in, n), XMLS_STOPPED);
	assert_int_equal(r.nstanza, 1);
	/* more bytes while stopped are kept too, unparsed */
	assert_int_equal(xmlstream_feed(xs, " ", 1), XMLS_STOPPED);
	assert_int_equal(r.nstanza, 1);
	/* without a restart, the new header is a second header */
	assert_int_equal(xmlstream_resume(xs), XMLS_ERROR);
	assert_int_equal(xmlstream_error(xs), XML_COND_UNSUPPORTED_STANZA_TYPE);
	xmlstream_free(xs);
	buf_free(&r.log);
	free(in);
}

static void
test_restart_from_a_callback_parses_the_rest_as_a_new_stream(void **state)
{
	struct xmlstream	*xs;
	struct rec		 r;
	size_t			 n;
	char			*in = login(&n);

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	r.restart_in_cb = 1;
	xs = r.xs = xmlstream_new(NULL, NULL, 0, &rec_cb, &r);
	assert_int_equal(xmlstream_feed(xs, in, n), XMLS_OK);
	assert_int_equal(r.nstanza, 5);
	assert_non_null(strstr(r.log.data, "close\n"));
	xmlstream_free(xs);
	buf_free(&r.log);
	free(in);
}

static void
test_busy_since_marks_an_unfinished_stanza(void **state)
{
	struct xmlstream	*xs;
	struct rec		 r;
	uint64_t		 t0 = now_mono_ms();

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	xs = xmlstream_new(NULL, NULL, 0, &rec_cb, &r);
	assert_int_equal(xmlstream_busy_since(xs), 0);
	assert_int_equal(xmlstream_feed(xs, "<?xml version='1.0'?><stream:str", 32), XMLS_OK);
	assert_true(xmlstream_busy_since(xs) >= t0);
	assert_int_equal(xmlstream_feed(xs, &HDR[32], strlen(HDR) - 32), XMLS_OK);
	assert_int_equal(xmlstream_busy_since(xs), 0);
	assert_int_equal(xmlstream_feed(xs, "  ", 2), XMLS_OK);
	assert_int_equal(xmlstream_busy_since(xs), 0);
	assert_int_equal(xmlstream_feed(xs, "<message><body>x", 16), XMLS_OK);
	assert_true(xmlstream_busy_since(xs) >= t0);
	assert_int_equal(xmlstream_feed(xs, "</body></message><pres", 22), XMLS_OK);
	assert_true(xmlstream_busy_since(xs) >= t0);	/* a new one began */
	assert_int_equal(xmlstream_feed(xs, "ence/>", 6), XMLS_OK);
	assert_int_equal(xmlstream_busy_since(xs), 0);
	xmlstream_free(xs);
	buf_free(&r.log);
}

static void
test_header_is_announced_as_soon_as_it_is_complete(void **state)
{
	struct xmlstream	*xs;
	struct rec		 r;

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	xs = xmlstream_new(NULL, NULL, 0, &rec_cb, &r);
	assert_int_equal(xmlstream_feed(xs, HDR, strlen(HDR) - 1), XMLS_OK);
	assert_null(r.log.data);
	assert_int_equal(xmlstream_feed(xs, ">", 1), XMLS_OK);
	assert_non_null(strstr(r.log.data, "open "));
	assert_int_equal(xmlstream_feed(xs, "<presence/", 10), XMLS_OK);
	assert_int_equal(r.nstanza, 0);
	assert_int_equal(xmlstream_feed(xs, ">", 1), XMLS_OK);
	assert_int_equal(r.nstanza, 1);
	xmlstream_free(xs);
	buf_free(&r.log);
}

static void
test_a_short_read_completes_a_stanza_after_a_long_partial_token(void **state)
{
	struct xmlstream	*xs;
	struct rec		 r;
	const char		 ref[] = "&#x00000000000000000000000000041";

	/* expat's reparse deferral would wait for 2 x 31 bytes here */
	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	xs = xmlstream_new(NULL, NULL, 0, &rec_cb, &r);
	assert_int_equal(xmlstream_feed(xs, HDR, strlen(HDR)), XMLS_OK);
	assert_int_equal(xmlstream_feed(xs, "<message><body>", 15), XMLS_OK);
	assert_int_equal(xmlstream_feed(xs, ref, sizeof(ref) - 1), XMLS_OK);
	assert_int_equal(xmlstream_feed(xs, ";</body>", 8), XMLS_OK);
	assert_int_equal(xmlstream_feed(xs, "</message>", 10), XMLS_OK);
	assert_int_equal(r.nstanza, 1);
	assert_non_null(strstr(r.log.data, "<body>A</body>"));
	xmlstream_free(xs);
	buf_free(&r.log);
}

static void
test_data_after_the_stream_end_is_refused(void **state)
{
	char	*log;
	const char in[] = HDR "</stream:stream>\n <presence/>";

	log = run_whole(in, sizeof(in) - 1);
	assert_non_null(strstr(log, "close\nerror not-well-formed\n"));
	free(log);
}

static int
tree_stanza(void *arg, const struct xml_node *n)
{
	const struct xml_node	*body, *x;

	assert_string_equal(n->name, "message");
	assert_string_equal(n->ns, "jabber:client");
	assert_string_equal(xmlstream_attr(n, NULL, "to"), "bob@example.test");
	assert_string_equal(xmlstream_attr(n, XML_NS_XML, "lang"), "en");
	assert_null(xmlstream_attr(n, NULL, "lang"));
	body = xmlstream_child(n, "jabber:client", "body");
	assert_non_null(body);
	assert_string_equal(xmlstream_text(body), "a <b> & c");
	assert_ptr_equal(body->parent, n);
	x = xmlstream_child(n, "urn:x", "x");
	assert_non_null(x);
	assert_string_equal(xmlstream_text(x), "");
	assert_string_equal(xmlstream_attr(x, "urn:p", "a"), "1");
	assert_ptr_equal(xmlstream_child(n, NULL, NULL), body);
	assert_null(xmlstream_child(n, NULL, "body"));
	assert_true(xmlstream_node_equal(n, n));
	assert_false(xmlstream_node_equal(n, body));
	*(int *)arg = 1;
	return 0;
}

static void
test_tree_helpers_find_attributes_children_and_text(void **state)
{
	static const struct xmlstream_cb cb = { NULL, tree_stanza, NULL };
	struct xmlstream	*xs;
	int			 seen = 0;
	const char		 in[] = HDR "<message to='bob@example.test' xml:lang='en'>"
	    "<body>a &lt;b&gt; &amp; <![CDATA[c]]></body><x xmlns='urn:x' "
	    "xmlns:p='urn:p' p:a='1'/></message>";

	xs = xmlstream_new(NULL, NULL, 0, &cb, &seen);
	assert_int_equal(xmlstream_feed(xs, in, sizeof(in) - 1), XMLS_OK);
	assert_int_equal(seen, 1);
	xmlstream_free(xs);
}

/* Counts a big stanza's children and checks each, and its long attribute. */
static int
big_stanza(void *arg, const struct xml_node *n)
{
	const struct xml_node	*c;
	const char		*v;
	char			 want[32];
	int			 i = 0;

	v = xmlstream_attr(n, NULL, "id");
	assert_non_null(v);
	assert_int_equal(strlen(v), 3000);
	assert_true(v[0] == 'x' && v[2999] == 'x');
	for (c = n->child; c != NULL; c = c->next, i++) {
		snprintf(want, sizeof(want), "%d", i);
		assert_string_equal(c->name, "item");
		assert_string_equal(xmlstream_attr(c, NULL, "n"), want);
		assert_non_null(c->child);
		assert_string_equal(c->child->text, want);
	}
	*(int *)arg = i;
	return 0;
}

/* A kept stream keeps one tree block between stanzas: small and big trees
 * in turn come out as a fresh stream's would, the memory does not grow, and
 * trim gives the block back. */
static void
test_keep_mode_reuses_the_tree_block_and_trim_frees_it(void **state)
{
	struct xmlstream	*xs;
	struct rec		 r;
	struct buf		 in;
	size_t			 after_one;
	char			*fresh, *kept;
	int			 i, k;

	buf_init(&in);
	buf_adds(&in, HDR);
	for (i = 0; i < 60; i++) {
		buf_printf(&in, "<message to='u%d@b' id='m%d'><body>%d %s</body>"
		    "</message>", i, i, i, i % 2 ? "&lt;x&gt;" : "\xc3\xa9");
		if (i % 20 == 10) {		/* a tree over several blocks */
			buf_adds(&in, "<message>");
			for (k = 0; k < 200; k++)
				buf_printf(&in, "<item n='%d'>%d</item>", k, k);
			buf_adds(&in, "</message>");
		}
	}
	fresh = run_cuts(in.data, in.len, NULL, 0, 0, NULL);
	kept = run_cuts(in.data, in.len, NULL, 0, XMLS_KEEP, NULL);
	assert_string_equal(kept, fresh);
	assert_null(strstr(kept, "error"));
	/* memory: more of the same stanza changes nothing; trim frees the
	 * parser and the block */
	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	xs = xmlstream_new(NULL, NULL, XMLS_KEEP, &rec_cb, &r);
	assert_int_equal(xmlstream_feed(xs, in.data, in.len), XMLS_OK);
	assert_int_equal(xmlstream_feed(xs, "<presence/>", 11), XMLS_OK);
	after_one = xmlstream_memsize(xs);
	for (i = 0; i < 10; i++)
		assert_int_equal(xmlstream_feed(xs, "<presence/>", 11), XMLS_OK);
	assert_int_equal(xmlstream_memsize(xs), after_one);
	xmlstream_trim(xs);
	assert_true(xmlstream_memsize(xs) < 1024);
	assert_int_equal(xmlstream_feed(xs, "<presence/>", 11), XMLS_OK);
	assert_int_equal(r.nstanza, 60 + 3 + 12);
	xmlstream_free(xs);
	buf_free(&r.log);
	free(fresh);
	free(kept);
	buf_free(&in);
}

/* The tree arena grows block by block, and takes a bigger-than-block
 * attribute in one: the whole tree must come out, twice in a row (the
 * second stanza reuses what the first one freed). */
static void
test_a_tree_over_many_arena_blocks_is_whole(void **state)
{
	static const struct xmlstream_cb cb = { NULL, big_stanza, NULL };
	struct xmlstream	*xs;
	struct buf		 in;
	int			 i, seen = 0;

	buf_init(&in);
	buf_adds(&in, HDR "<message id='");
	for (i = 0; i < 3000; i++)
		buf_addc(&in, 'x');
	buf_adds(&in, "'>");
	for (i = 0; i < 400; i++)
		buf_printf(&in, "<item n='%d'>%d</item>", i, i);
	buf_adds(&in, "</message>");
	xs = xmlstream_new(NULL, NULL, 0, &cb, &seen);
	xmlstream_set_auth(xs, 1);	/* past the pre-authentication limits */
	if (xmlstream_feed(xs, in.data, in.len) != XMLS_OK)
		fail_msg("%s", xmlstream_error_text(xs));
	assert_int_equal(seen, 400);
	seen = 0;
	assert_int_equal(xmlstream_feed(xs, in.data + strlen(HDR),
	    in.len - strlen(HDR)), XMLS_OK);
	assert_int_equal(seen, 400);
	xmlstream_free(xs);
	buf_free(&in);
}

static void
test_configured_content_namespace_is_required(void **state)
{
	struct xmlstream	*xs;
	struct rec		 r;
	const char		 comp[] = "<stream:stream xmlns='jabber:component:accept' "
	    "xmlns:stream='http://etherx.jabber.org/streams' to='c.example'>"
	    "<handshake>ab</handshake>";

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	xs = xmlstream_new(NULL, "jabber:component:accept", 0, &rec_cb, &r);
	assert_int_equal(xmlstream_feed(xs, comp, sizeof(comp) - 1), XMLS_OK);
	assert_int_equal(r.nstanza, 1);
	assert_non_null(strstr(r.log.data, "<handshake xmlns='jabber:component:accept'>"));
	xmlstream_free(xs);
	xs = xmlstream_new(NULL, NULL, 0, &rec_cb, &r);
	assert_int_equal(xmlstream_feed(xs, comp, sizeof(comp) - 1), XMLS_ERROR);
	assert_int_equal(xmlstream_error(xs), XML_COND_INVALID_NAMESPACE);
	assert_non_null(strstr(xmlstream_error_text(xs), "jabber:component:accept"));
	xmlstream_free(xs);
	buf_free(&r.log);
}

static void
test_error_is_final(void **state)
{
	struct xmlstream	*xs;
	struct rec		 r;

	memset(&r, 0, sizeof(r));
	buf_init(&r.log);
	xs = xmlstream_new(NULL, NULL, 0, &rec_cb, &r);
	assert_int_equal(xmlstream_error(xs), XML_COND_NONE);
	assert_string_equal(xmlstream_error_text(xs), "");
	assert_int_equal(xmlstream_feed(xs, HDR "<a></b>", strlen(HDR) + 7), XMLS_ERROR);
	assert_int_equal(xmlstream_error(xs), XML_COND_NOT_WELL_FORMED);
	assert_non_null(strstr(xmlstream_error_text(xs), "mismatched tag"));
	assert_int_equal(xmlstream_feed(xs, "<presence/>", 11), XMLS_ERROR);
	assert_int_equal(xmlstream_resume(xs), XMLS_ERROR);
	assert_int_equal(r.nstanza, 0);
	xmlstream_free(xs);
	buf_free(&r.log);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login_sequence_gives_the_expected_events),
		cmocka_unit_test(test_every_split_point_gives_the_same_events),
		cmocka_unit_test(test_byte_by_byte_gives_the_same_events),
		cmocka_unit_test(test_three_way_splits_give_the_same_events),
		cmocka_unit_test(test_idle_parser_holds_no_expat_and_no_tree),
		cmocka_unit_test(test_keep_mode_holds_the_parser_until_trim),
		cmocka_unit_test(test_stanza_after_release_keeps_the_header_namespaces),
		cmocka_unit_test(test_stop_keeps_pipelined_bytes_for_resume),
		cmocka_unit_test(test_restart_from_a_callback_parses_the_rest_as_a_new_stream),
		cmocka_unit_test(test_busy_since_marks_an_unfinished_stanza),
		cmocka_unit_test(test_header_is_announced_as_soon_as_it_is_complete),
		cmocka_unit_test(test_a_short_read_completes_a_stanza_after_a_long_partial_token),
		cmocka_unit_test(test_data_after_the_stream_end_is_refused),
		cmocka_unit_test(test_tree_helpers_find_attributes_children_and_text),
		cmocka_unit_test(test_a_tree_over_many_arena_blocks_is_whole),
		cmocka_unit_test(test_keep_mode_reuses_the_tree_block_and_trim_frees_it),
		cmocka_unit_test(test_configured_content_namespace_is_required),
		cmocka_unit_test(test_error_is_final),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
