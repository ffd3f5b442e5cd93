/*
 * test_serialize.c: proxyd's writer: escaping, namespaces, and parse ->
 * write -> parse giving back the same trees.
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

/* A parsed stream, written back out as proxyd would, event by event. */
struct copy {
	struct buf	 out;
	const char	*content_ns;
	int		 nstanza;
};

static int
copy_open(void *arg, const struct xml_node *root)
{
	struct copy	*c = arg;

	serialize_header(&c->out, root, c->content_ns);
	return 0;
}

static int
copy_stanza(void *arg, const struct xml_node *n)
{
	struct copy	*c = arg;

	c->nstanza++;
	serialize_stanza(&c->out, n, c->content_ns);
	return strcmp(n->name, "auth") == 0;	/* a restart follows */
}

static int
copy_close(void *arg)
{
	struct copy	*c = arg;

	serialize_close(&c->out);
	return 0;
}

static const struct xmlstream_cb copy_cb = { copy_open, copy_stanza, copy_close };

static char *
copy(const char *in, size_t n, const char *content_ns, int *nstanza)
{
	struct copy		 c;
	struct xmlstream	*xs;
	int			 rc;

	memset(&c, 0, sizeof(c));
	buf_init(&c.out);
	buf_adds(&c.out, "");
	c.content_ns = content_ns;
	xs = xmlstream_new(NULL, content_ns, 0, &copy_cb, &c);
	xmlstream_set_auth(xs, 1);
	rc = xmlstream_feed(xs, in, n);
	while (rc == XMLS_STOPPED) {
		xmlstream_restart(xs);
		rc = xmlstream_resume(xs);
	}
	if (rc != XMLS_OK)
		fail_msg("%s: %s", xmlfilter_cond_name(xmlstream_error(xs)),
		    xmlstream_error_text(xs));
	xmlstream_free(xs);
	if (nstanza != NULL)
		*nstanza = c.nstanza;
	return buf_release(&c.out);
}

static void
test_text_escapes_markup_and_cr(void **state)
{
	struct buf	b;

	buf_init(&b);
	serialize_text(&b, "a<b>&c\r\n\"'\t\xc3\xa9", 13);
	assert_string_equal(b.data, "a&lt;b&gt;&amp;c&#13;\n\"'\t\xc3\xa9");
	buf_free(&b);
}

static void
test_attribute_values_escape_quotes_and_white_space(void **state)
{
	struct buf	b;

	buf_init(&b);
	serialize_attr_value(&b, "a<b>&c\r\n\"'\tz", 12);
	assert_string_equal(b.data, "a&lt;b&gt;&amp;c&#13;&#10;&quot;&apos;&#9;z");
	buf_free(&b);
}

static void
test_control_characters_are_never_written_raw(void **state)
{
	struct buf	b;

	buf_init(&b);
	serialize_text(&b, "a\0b\x01" "c\x1f", 6);
	assert_memory_equal(b.data, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd", 12);
	buf_free(&b);
}

/* Plain runs go 16 bytes at a time: each special byte at every offset of a
 * run, at the end of an exact-size buffer, is still escaped. */
static void
test_escapes_are_found_at_every_offset(void **state)
{
	static const struct {
		char		 c;
		const char	*text, *attr;
	} sp[] = {
		{ '&', "&amp;", "&amp;" }, { '<', "&lt;", "&lt;" }, { '>', "&gt;", "&gt;" },
		{ '\r', "&#13;", "&#13;" }, { '\'', "'", "&apos;" }, { '"', "\"", "&quot;" },
		{ '\t', "\t", "&#9;" }, { '\n', "\n", "&#10;" }, { '\x01', "\xef\xbf\xbd",
		"\xef\xbf\xbd" },
	};
	char		 in[48], want[96];
	struct buf	 b;
	size_t		 k, off, len;
	int		 attr;

	(void)state;
	buf_init(&b);
	for (k = 0; k < sizeof(sp) / sizeof(sp[0]); k++)
		for (len = 1; len <= 40; len++)
			for (off = 0; off < len; off++)
				for (attr = 0; attr <= 1; attr++) {
					char	*in_exact = malloc(len);

					memset(in, 'x', len);
					in[off] = sp[k].c;
					memcpy(in_exact, in, len);
					snprintf(want, sizeof(want), "%.*s%s%.*s", (int)off, in,
					    attr ? sp[k].attr : sp[k].text,
					    (int)(len - off - 1), in + off + 1);
					buf_reset(&b);
					if (attr)
						serialize_attr_value(&b, in_exact, len);
					else
						serialize_text(&b, in_exact, len);
					free(in_exact);
					if (strcmp(b.data, want) != 0)
						fail_msg("'%c' at %zu of %zu (%s): %s", sp[k].c,
						    off, len, attr ? "attr" : "text", b.data);
				}
	/* non-ASCII between plain runs is passed as it is */
	buf_reset(&b);
	serialize_text(&b, "abcdefghijklmno\xc3\xa9pqrstuvwxyz0123456789<", 39);
	assert_string_equal(b.data, "abcdefghijklmno\xc3\xa9pqrstuvwxyz0123456789&lt;");
	buf_free(&b);
}

static void
test_header_declares_content_namespace_and_stream_prefix(void **state)
{
	struct buf	b;

	buf_init(&b);
	serialize_header(&b, NULL, NULL);
	assert_string_equal(b.data, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
	    "xmlns:stream='http://etherx.jabber.org/streams'>");
	buf_reset(&b);
	serialize_header(&b, NULL, "jabber:server");
	assert_non_null(strstr(b.data, "xmlns='jabber:server'"));
	buf_reset(&b);
	serialize_close(&b);
	assert_string_equal(b.data, "</stream:stream>");
	buf_free(&b);
}

static void
test_namespaces_are_declared_where_they_change(void **state)
{
	const char	 in[] = HDR
	    "<s:features xmlns:s='http://etherx.jabber.org/streams'><x:mechanisms "
	    "xmlns:x='urn:ietf:params:xml:ns:xmpp-sasl'><x:mechanism>PLAIN</x:mechanism>"
	    "</x:mechanisms></s:features>"
	    "<message xmlns:a='urn:a' xmlns:b='urn:b' a:one='1' b:two='2' a:three='3' "
	    "xml:lang='de'><a:x><y/><z xmlns=''><w/></z></a:x>"
	    "<stream:error/></message>";
	char		*out = copy(in, sizeof(in) - 1, NULL, NULL);

	assert_string_equal(out,
	    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
	    "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' "
	    "version='1.0' xml:lang='en'>"
	    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
	    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
	    "<message xmlns:ns0='urn:a' ns0:one='1' xmlns:ns1='urn:b' ns1:two='2' "
	    "ns0:three='3' xml:lang='de'><x xmlns='urn:a'><y xmlns='jabber:client'/>"
	    "<z xmlns=''><w/></z></x>"
	    "<stream:error/></message>");
	free(out);
}

/* Found by the hostile-input suite: xmlns='<the XML namespace>' is illegal. */
static void
test_elements_in_the_xml_namespace_keep_their_prefix(void **state)
{
	const char	 in[] = HDR
	    "<message><xml:x>t</xml:x><x xmlns='urn:x'><xml:y><z/></xml:y></x>"
	    "</message>";
	char		*out = copy(in, sizeof(in) - 1, NULL, NULL);

	assert_non_null(strstr(out, "<message><xml:x>t</xml:x><x xmlns='urn:x'>"
	    "<xml:y><z/></xml:y></x></message>"));
	assert_null(strstr(out, "1998/namespace"));
	free(out);
}

static void
test_a_configured_content_namespace_is_the_default(void **state)
{
	const char	 in[] = "<stream:stream xmlns='jabber:server' xmlns:stream="
	    "'http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>"
	    "<db:result to='b' from='a'>key</db:result><message to='x@b'/>";
	char		*out = copy(in, sizeof(in) - 1, "jabber:server", NULL);

	assert_string_equal(out, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
	    "xmlns:stream='http://etherx.jabber.org/streams'>"
	    "<result xmlns='jabber:server:dialback' to='b' from='a'>key</result>"
	    "<message to='x@b'/>");
	free(out);
}

/* What slixmpp sends for a login and a chat, with unicode and entities. */
static const char login[] =
    "<?xml version=\"1.0\"?><stream:stream to=\"example.test\" "
    "xmlns=\"jabber:client\" xmlns:stream=\"http://etherx.jabber.org/streams\" "
    "xml:lang=\"en\" version=\"1.0\">"
    "<auth xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\" mechanism=\"PLAIN\">"
    "AGFsaWNlAHNlY3JldA==</auth>"
    "<stream:stream to=\"example.test\" xmlns=\"jabber:client\" "
    "xmlns:stream=\"http://etherx.jabber.org/streams\" xml:lang=\"en\" version=\"1.0\">"
    "<iq type=\"set\" id=\"bind_1\"><bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\">"
    "<resource>laptop</resource></bind></iq>"
    "<presence><show>chat</show><status>\xc3\xa9 \xc3\xbc &lt;&amp;&gt;&quot;&apos;"
    "</status></presence>"
    "<message to=\"bob@example.test\" type=\"chat\" id=\"m&amp;1\" xml:lang=\"en\">"
    "<body>\xc3\xa9 \xc3\xbc \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x8e\x89 "
    "&lt;&amp;&gt;&quot;&apos;\r\n<![CDATA[]]>x&#13;y</body>"
    "<x xmlns=\"jabber:x:data\" type=\"submit\"><field var=\"a&#9;b\">"
    "<value>1&#10;2</value></field></x>"
    "<active xmlns=\"http://jabber.org/protocol/chatstates\"/></message>"
    "</stream:stream>";

static int
keep_open(void *arg, const struct xml_node *root)
{
	struct buf	*b = arg;

	/* the header's attributes, written in a form that shows every byte */
	for (size_t i = 0; i < root->nattrs; i++)
		buf_printf(b, "attr {%s}%s=%s\n", root->attrs[i].ns ? root->attrs[i].ns : "",
		    root->attrs[i].name, root->attrs[i].value);
	return 0;
}

static void
dump(struct buf *b, const struct xml_node *n, int depth)
{
	const struct xml_node	*c;
	size_t			 i;

	if (n->type == XML_NODE_TEXT) {
		buf_printf(b, "%*stext [", depth, "");
		buf_add(b, n->text, n->len);
		buf_adds(b, "]\n");
		return;
	}
	buf_printf(b, "%*s{%s}%s\n", depth, "", n->ns ? n->ns : "", n->name);
	for (i = 0; i < n->nattrs; i++)
		buf_printf(b, "%*s @{%s}%s=[%s]\n", depth, "",
		    n->attrs[i].ns ? n->attrs[i].ns : "", n->attrs[i].name,
		    n->attrs[i].value);
	for (c = n->child; c != NULL; c = c->next)
		dump(b, c, depth + 1);
}

static int
keep_stanza(void *arg, const struct xml_node *n)
{
	struct buf	*b = arg;

	dump(b, n, 0);
	return strcmp(n->name, "auth") == 0;
}

static const struct xmlstream_cb keep_cb = { keep_open, keep_stanza, NULL };

/* The trees of IN, dumped with every name, namespace and byte of text. */
static char *
trees(const char *in, size_t n)
{
	struct buf		 b;
	struct xmlstream	*xs;
	int			 rc;

	buf_init(&b);
	buf_adds(&b, "");
	xs = xmlstream_new(NULL, NULL, 0, &keep_cb, &b);
	rc = xmlstream_feed(xs, in, n);
	while (rc == XMLS_STOPPED) {
		xmlstream_restart(xs);
		rc = xmlstream_resume(xs);
	}
	assert_int_equal(rc, XMLS_OK);
	xmlstream_free(xs);
	return buf_release(&b);
}

static void
test_login_round_trips_to_the_same_trees(void **state)
{
	int	 n1, n2;
	char	*once = copy(login, sizeof(login) - 1, NULL, &n1);
	char	*twice = copy(once, strlen(once), NULL, &n2);
	char	*t0 = trees(login, sizeof(login) - 1), *t1 = trees(once, strlen(once));

	assert_int_equal(n1, 4);
	assert_int_equal(n2, 4);
	/* the writer is canonical: writing its own output changes nothing */
	assert_string_equal(twice, once);
	assert_string_equal(t1, t0);
	/* and the text survived: unicode, entities, CR, TAB, LF in attributes */
	assert_non_null(strstr(t0, "text [\xc3\xa9 \xc3\xbc \xe6\xbc\xa2\xe5\xad\x97 "
	    "\xf0\x9f\x8e\x89 <&>\"'\nx\ry]"));
	assert_non_null(strstr(t0, "@{}var=[a\tb]"));
	assert_non_null(strstr(t0, "text [1\n2]"));
	assert_non_null(strstr(t0, "@{}id=[m&1]"));
	assert_non_null(strstr(once, "<body>\xc3\xa9 \xc3\xbc \xe6\xbc\xa2\xe5\xad\x97 "
	    "\xf0\x9f\x8e\x89 &lt;&amp;&gt;\"'\nx&#13;y</body>"));
	free(once);
	free(twice);
	free(t0);
	free(t1);
}

struct cmp {
	struct xmlstream	*second;
	struct buf		 written;
	int			 checked;
	const struct xml_node	*first;
};

static int
cmp_second(void *arg, const struct xml_node *n)
{
	struct cmp	*c = arg;

	if (!xmlstream_node_equal(c->first, n))
		fail_msg("trees differ after a round trip: %s", c->written.data);
	c->checked++;
	return 0;
}

static int
cmp_first(void *arg, const struct xml_node *n)
{
	struct cmp	*c = arg;

	c->first = n;
	buf_reset(&c->written);
	serialize_stanza(&c->written, n, NULL);
	assert_int_equal(xmlstream_feed(c->second, c->written.data, c->written.len),
	    XMLS_OK);
	return 0;
}

static void
test_each_stanza_tree_equals_its_reparsed_copy(void **state)
{
	static const struct xmlstream_cb first = { NULL, cmp_first, NULL };
	static const struct xmlstream_cb second = { NULL, cmp_second, NULL };
	struct xmlstream	*xs;
	struct cmp		 c;
	struct buf		 hdr;
	const char		 in[] = HDR
	    "<message a='&#9;&#10;&#13; &lt;&gt;&amp;&quot;&apos;'><body>\r\n\t]]&gt;</body>"
	    "<q xmlns='urn:q' xmlns:r='urn:r' r:a='1' xml:space='preserve'><r:b/>"
	    "<c xmlns=''/>text<![CDATA[<cdata>]]>more</q></message>"
	    "<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"
	    "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
	    "</stream:error>";

	memset(&c, 0, sizeof(c));
	buf_init(&c.written);
	buf_init(&hdr);
	serialize_header(&hdr, NULL, NULL);
	c.second = xmlstream_new(NULL, NULL, 0, &second, &c);
	xmlstream_set_auth(c.second, 1);
	assert_int_equal(xmlstream_feed(c.second, hdr.data, hdr.len), XMLS_OK);
	xs = xmlstream_new(NULL, NULL, 0, &first, &c);
	assert_int_equal(xmlstream_feed(xs, in, sizeof(in) - 1), XMLS_OK);
	assert_int_equal(c.checked, 3);
	xmlstream_free(xs);
	xmlstream_free(c.second);
	buf_free(&c.written);
	buf_free(&hdr);
}

static void
test_a_hand_built_tree_is_written_well_formed(void **state)
{
	struct xml_attr	a[2] = {
		{ NULL, "to", "x@y'\"<>&", 8 },
		{ "urn:ext", "flag", "1", 1 },
	};
	struct xml_node	text = { .type = XML_NODE_TEXT, .text = "hi & bye", .len = 8 };
	struct xml_node	body = { .type = XML_NODE_ELEM, .ns = XML_NS_CLIENT, .name = "body",
	    .child = &text };
	struct xml_node	msg = { .type = XML_NODE_ELEM, .ns = XML_NS_CLIENT,
	    .name = "message", .attrs = a, .nattrs = 2, .child = &body };
	struct buf	b;

	buf_init(&b);
	serialize_stanza(&b, &msg, NULL);
	assert_string_equal(b.data, "<message to='x@y&apos;&quot;&lt;&gt;&amp;' "
	    "xmlns:ns1='urn:ext' ns1:flag='1'><body>hi &amp; bye</body></message>");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_escapes_markup_and_cr),
		cmocka_unit_test(test_attribute_values_escape_quotes_and_white_space),
		cmocka_unit_test(test_control_characters_are_never_written_raw),
		cmocka_unit_test(test_escapes_are_found_at_every_offset),
		cmocka_unit_test(test_header_declares_content_namespace_and_stream_prefix),
		cmocka_unit_test(test_namespaces_are_declared_where_they_change),
		cmocka_unit_test(test_elements_in_the_xml_namespace_keep_their_prefix),
		cmocka_unit_test(test_a_configured_content_namespace_is_the_default),
		cmocka_unit_test(test_login_round_trips_to_the_same_trees),
		cmocka_unit_test(test_each_stanza_tree_equals_its_reparsed_copy),
		cmocka_unit_test(test_a_hand_built_tree_is_written_well_formed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
