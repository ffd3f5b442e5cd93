# test_proxyd_hostile_input.py: hostile clients against proxyd in front of a real
# Prosody.  Each hostile input (issue 5's list and variants of it: in the header,
# in attributes, in text, nested, before and after authentication) must get the
# right stream error and a closed stream; proxyd and Prosody must stay alive and
# serving; and a recording relay between proxyd and Prosody proves, by a strict
# parse, that nothing malformed (and nothing of the hostile input) reached Prosody.
#
# Beside the table of cases: one byte per second (stanza_timeout), a stanza
# flood (stanzas_per_second), 2,000 idle unauthenticated connections
# (auth_timeout, no fd leak), max_connections, clients vanishing mid-stanza,
# log forging through error texts, namespace edge cases that must still reach
# Prosody well-formed, and legal-but-tricky XML that must arrive intact.
#
# One rig per module (Prosody, the relay, hamon watching the relay, proxyd);
# cases run one after another so a failure names its case.  RFC 6120 4.9.3
# conditions as proxyd/xmlfilter.c and tests/unit/test_xmlfilter.c chose them.
# The checker itself is tested last (it must refuse what it is there to catch).

import os
import selectors
import socket
import subprocess
import time

import pytest

import harness
import xmpp
from hamon_helpers import hamon_config
from proxyd_hostile import (BARE, HDR, Malformed, Relay, backend_contains, fd_count,
                            raise_fd_limit, raw_login, raw_ping_works, send_streaming,
                            stanzas_of, strict_parse)

STANZA_TIMEOUT_S = 2
AUTH_TIMEOUT_S = 5
RATE = 50
IDLE_CONNS = 2000
LEGIT_EVERY = 5		# a legit login through proxyd after every 5th case
# stanza_timeout and auth_timeout are limits like the others: policy-violation
# (RFC 6120's connection-timeout is for a silent peer, and these are not).
TIMEOUT_CONDS = ("policy-violation",)

PW = {"alice": "alice-pw", "mallory": "mallory-pw"}
# A 100 MB stanza must cost proxyd what its limits say, not what was sent.
RSS_MAX_KIB = 64 * 1024


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def hdr(extra="", to="example.test", decl=True, ns="jabber:client",
        sns=harness.STREAM_NS, version="1.0"):
    """A stream header with EXTRA attributes (bytes or str, raw)."""
    if isinstance(extra, str):
        extra = extra.encode()
    return ((b"<?xml version='1.0'?>" if decl else b"") +
            f"<stream:stream to='{to}' xmlns='{ns}' xmlns:stream='{sns}' "
            f"version='{version}'".encode() + extra + b">")


class Case:
    """A hostile input: PAYLOAD (bytes) sent after a fresh stream (AUTH true: after
    a SASL PLAIN login and bind as mallory through proxyd; "sasl": right after
    <success/>, where the restarted header is due; else on a bare TCP connection,
    the payload bringing its own header if any).  DRIBBLE: one byte per write.  STREAM: (head,
    chunk, total, tail) sent while reading, stopping when proxyd closes.
    MARKER: bytes that must never reach Prosody."""

    def __init__(self, cid, payload, cond, auth=False, marker=None, stream=None,
                 max_sent=None, dribble=False, wait=5.0):
        self.id, self.payload, self.cond, self.wait = cid, payload, cond, wait
        self.auth, self.marker, self.stream = auth, marker, stream
        self.max_sent, self.dribble = max_sent, dribble

    def __repr__(self):
        return self.id


NWF, RXML, PV = "not-well-formed", "restricted-xml", "policy-violation"
INS, UENC, UVER = "invalid-namespace", "unsupported-encoding", "unsupported-version"

LOL = (b"<!DOCTYPE lolz [<!ENTITY lol 'HXlol'>"
       + b"".join(b"<!ENTITY lol%d '%s'>" % (i, b"".join(
           b"&lol%s;" % (str(i - 1).encode() if i > 1 else b"") for _ in range(10)))
           for i in range(1, 10))
       + b"]>")
QUAD = b"<!DOCTYPE k [<!ENTITY a '" + b"HXquad" * 20000 + b"'>]>"


def _deep(n):
    return b"<message><body>HXdeep</body>" + b"<a>" * n


def _attrs(n):
    return b"<message" + b"".join(b" a%d='HXattrs'" % i for i in range(n)) + b"/>"


CASES = [
    # -- DTDs and entities
    Case("billion_laughs_before_the_header", b"<?xml version='1.0'?>" + LOL + BARE +
         b"<message><body>&lol9;</body></message>", RXML, marker=b"HXlol"),
    Case("billion_laughs_inside_the_stream_after_auth", LOL +
         b"<message><body>&lol9;</body></message>", RXML, auth=True, marker=b"HXlol"),
    Case("quadratic_blowup_before_the_header", b"<?xml version='1.0'?>" + QUAD + BARE +
         b"<message><body>" + b"&a;" * 1000 + b"</body></message>", RXML,
         marker=b"HXquad"),
    Case("quadratic_blowup_undeclared_refs_after_auth", b"<message><body>HXq2" +
         b"&a;" * 5000 + b"</body></message>", RXML, auth=True, marker=b"HXq2"),
    Case("external_entity_system", b"<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe "
         b"SYSTEM 'file:///etc/passwd'>]>" + BARE + b"<message><body>&xxe;</body>"
         b"</message>", RXML, marker=b"passwd"),
    Case("external_entity_public", b"<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe "
         b"PUBLIC '-//HX//pub' 'http://127.0.0.1:9/x.dtd'>]>" + BARE +
         b"<message><body>&xxe;</body></message>", RXML, marker=b"HX//pub"),
    Case("external_dtd_system", b"<!DOCTYPE stream SYSTEM 'http://127.0.0.1:9/HXdtd'>"
         + BARE, RXML, marker=b"HXdtd"),
    Case("parameter_entity", b"<!DOCTYPE x [<!ENTITY % p SYSTEM 'http://127.0.0.1:9/HXpe'>"
         b" %p;]>" + BARE, RXML, marker=b"HXpe"),
    Case("doctype_after_the_header", HDR + b"<!DOCTYPE x [<!ENTITY HXd 'x'>]>", RXML,
         marker=b"HXd"),
    Case("doctype_inside_a_stanza_after_auth", b"<message><body>HXdi</body>"
         b"<!DOCTYPE x></message>", RXML, auth=True, marker=b"HXdi"),
    Case("entity_declaration_inside_a_stanza_after_auth", b"<message><!ENTITY a "
         b"'HXent'></message>", RXML, auth=True, marker=b"HXent"),
    # -- comments and processing instructions
    Case("comment_before_the_header", b"<!-- HXc1 -->" + BARE, RXML, marker=b"HXc1"),
    Case("comment_after_the_declaration", b"<?xml version='1.0'?><!-- HXc2 -->" + BARE,
         RXML, marker=b"HXc2"),
    Case("comment_between_stanzas_after_auth", b"<presence/><!-- HXc3 --><presence/>",
         RXML, auth=True, marker=b"HXc3"),
    Case("comment_inside_a_body_after_auth", b"<message><body>a<!-- HXc4 -->b</body>"
         b"</message>", RXML, auth=True, marker=b"HXc4"),
    Case("comment_in_nested_element_after_auth", b"<iq type='get' id='c5'><query "
         b"xmlns='jabber:iq:roster'><!-- HXc5 --></query></iq>", RXML, auth=True,
         marker=b"HXc5"),
    Case("pi_inside_a_stanza_after_auth", b"<message><?php system('HXpi1'); ?>"
         b"</message>", RXML, auth=True, marker=b"HXpi1"),
    Case("pi_between_stanzas_after_auth", b"<?HXpi2 x?>", RXML, auth=True,
         marker=b"HXpi2"),
    Case("stylesheet_pi_before_the_header", b"<?xml-stylesheet href='HXpi3.xsl'?>" + BARE,
         RXML, marker=b"HXpi3"),
    Case("pi_before_the_header_pre_auth", b"<?HXpi4?>" + BARE, RXML, marker=b"HXpi4"),
    Case("xml_declaration_after_white_space", b" <?xml version='1.0'?>" + BARE, RXML),
    Case("xml_declaration_after_the_header", HDR + b"<?xml version='1.0'?>", RXML),
    # -- versions and encodings
    Case("xml_1_1_declaration", b"<?xml version='1.1'?>" + BARE, UVER),
    Case("iso_8859_1_declaration", b"<?xml version='1.0' encoding='ISO-8859-1'?>" + BARE,
         UENC),
    Case("utf_16_declaration", b"<?xml version='1.0' encoding='UTF-16'?>" + BARE, UENC),
    Case("utf_16_be_with_bom", b"\xfe\xff" + HDR.decode().encode("utf-16-be"), UENC),
    Case("utf_16_le_without_bom", HDR.decode().encode("utf-16-le"), UENC),
    Case("utf_32_be", HDR.decode().encode("utf-32-be"), UENC),
    Case("stream_version_2", hdr(version="2.0"), UVER),
    # -- invalid UTF-8, in text, attributes, names, header
    Case("invalid_utf8_byte_in_text_after_auth", b"<message><body>HXu1\xff</body>"
         b"</message>", NWF, auth=True, marker=b"HXu1"),
    Case("latin1_byte_in_text_pre_auth", HDR + b"<auth xmlns='urn:ietf:params:xml:ns:"
         b"xmpp-sasl' mechanism='PLAIN'>caf\xe9HXu2</auth>", NWF, marker=b"HXu2"),
    Case("overlong_2_byte_slash_after_auth", b"<message><body>HXu3\xc0\xaf</body>"
         b"</message>", NWF, auth=True, marker=b"HXu3"),
    Case("overlong_3_byte_in_the_header", hdr(b" id='\xe0\x80\xafHXu4'"), NWF,
         marker=b"HXu4"),
    Case("overlong_4_byte_in_an_attribute_after_auth", b"<message id='\xf0\x80\x80\xaf"
         b"HXu5'/>", NWF, auth=True, marker=b"HXu5"),
    Case("overlong_nul_c0_80_after_auth", b"<message><body>HXu6\xc0\x80</body></message>",
         NWF, auth=True, marker=b"HXu6"),
    Case("surrogate_as_utf8_in_text_after_auth", b"<message><body>HXu7\xed\xa0\x80"
         b"</body></message>", NWF, auth=True, marker=b"HXu7"),
    Case("surrogate_as_utf8_in_the_header", hdr(b" id='\xed\xbf\xbfHXu8'"), NWF,
         marker=b"HXu8"),
    Case("cesu8_surrogate_pair_after_auth", b"<message><body>HXu9\xed\xa0\xbd\xed\xb8\x80"
         b"</body></message>", NWF, auth=True, marker=b"HXu9"),
    Case("above_u10ffff_after_auth", b"<message><body>HXu10\xf4\x90\x80\x80</body>"
         b"</message>", NWF, auth=True, marker=b"HXu10"),
    Case("truncated_sequence_after_auth", b"<message><body>HXu11\xe6\xbc</body>"
         b"</message>", NWF, auth=True, marker=b"HXu11"),
    Case("invalid_utf8_in_an_element_name_after_auth", b"<message><HXu12\xc3x/>"
         b"</message>", NWF, auth=True, marker=b"HXu12"),
    Case("u_fffe_after_auth", b"<message><body>HXu13\xef\xbf\xbe</body></message>", NWF,
         auth=True, marker=b"HXu13"),
    Case("control_character_after_auth", b"<message><body>HXu14\x01</body></message>",
         NWF, auth=True, marker=b"HXu14"),
    Case("escape_character_in_an_attribute_after_auth", b"<message id='HXu15\x1b[2J'/>",
         NWF, auth=True, marker=b"HXu15"),
    # -- NUL bytes
    Case("nul_first_byte", b"\x00" + BARE, UENC),
    Case("nul_in_the_header", b"<stream:stream\x00" + BARE[14:], NWF),
    Case("nul_in_text_after_auth", b"<message><body>HXn1\x00b</body></message>", NWF,
         auth=True, marker=b"HXn1"),
    Case("nul_between_stanzas_after_auth", b"<presence/>\x00<message>HXn2</message>",
         NWF, auth=True, marker=b"HXn2"),
    Case("nul_in_an_attribute_pre_auth", HDR + b"<auth xmlns='urn:ietf:params:xml:ns:"
         b"xmpp-sasl' mechanism='PL\x00AIN'>HXn3</auth>", NWF, marker=b"HXn3"),
    # -- character and entity references
    Case("charref_nul_after_auth", b"<message><body>HXr1&#0;</body></message>", NWF,
         auth=True, marker=b"HXr1"),
    Case("charref_surrogate_in_text_after_auth", b"<message><body>HXr2&#xD800;</body>"
         b"</message>", NWF, auth=True, marker=b"HXr2"),
    Case("charref_surrogate_in_the_header", hdr(b" id='HXr3&#xDFFF;'"), NWF,
         marker=b"HXr3"),
    Case("charref_above_u10ffff_in_an_attribute_after_auth", b"<message id='HXr4"
         b"&#x110000;'/>", NWF, auth=True, marker=b"HXr4"),
    Case("charref_control_after_auth", b"<message><body>HXr5&#1;</body></message>", NWF,
         auth=True, marker=b"HXr5"),
    Case("charref_fffe_after_auth", b"<message><body>HXr6&#xFFFE;</body></message>",
         NWF, auth=True, marker=b"HXr6"),
    Case("charref_40_bytes_long_after_auth", b"<message><body>HXr7&#x" + b"0" * 32 +
         b"41;</body></message>", NWF, auth=True, marker=b"HXr7"),
    Case("unknown_entity_in_text_after_auth", b"<message><body>HXe1&foo;</body>"
         b"</message>", RXML, auth=True, marker=b"HXe1"),
    Case("unknown_entity_nbsp_in_an_attribute_after_auth", b"<message id='HXe2&nbsp;'/>",
         RXML, auth=True, marker=b"HXe2"),
    Case("unknown_entity_in_the_header", hdr(b" id='HXe3&foo;'"), RXML, marker=b"HXe3"),
    Case("unknown_entity_in_a_nested_element_after_auth", b"<message><body>ok</body>"
         b"<x xmlns='urn:x'><y>HXe4&bar;</y></x></message>", RXML, auth=True,
         marker=b"HXe4"),
    Case("bare_ampersand_after_auth", b"<message><body>HXe5 AT&T</body></message>", NWF,
         auth=True, marker=b"HXe5"),
    # -- structure
    Case("mismatched_tags_after_auth", b"<message><body>HXs1</message></body>", NWF,
         auth=True, marker=b"HXs1"),
    Case("mismatched_tags_pre_auth", HDR + b"<auth xmlns='urn:ietf:params:xml:ns:"
         b"xmpp-sasl' mechanism='PLAIN'>HXs2</mechanism>", NWF, marker=b"HXs2"),
    Case("unclosed_tags_at_stream_end_after_auth", b"<message><body>HXs3"
         b"</stream:stream>", NWF, auth=True, marker=b"HXs3"),
    Case("end_tag_never_opened_after_auth", b"</message>", NWF, auth=True),
    Case("duplicate_attribute_after_auth", b"<message id='HXs5' id='b'/>", NWF,
         auth=True, marker=b"HXs5"),
    Case("duplicate_attribute_by_namespace_after_auth", b"<message xmlns:a='urn:x' "
         b"xmlns:b='urn:x' a:t='HXs6' b:t='2'/>", NWF, auth=True, marker=b"HXs6"),
    Case("binding_the_xmlns_prefix_after_auth", b"<message xmlns:xmlns='urn:HXs7'/>",
         NWF, auth=True, marker=b"HXs7"),
    Case("cdata_end_in_text_after_auth", b"<message><body>HXs8]]>b</body></message>",
         NWF, auth=True, marker=b"HXs8"),
    Case("cdata_at_stream_level_after_auth", b"<![CDATA[HXs9]]>", NWF, auth=True,
         marker=b"HXs9"),
    # -- namespaces
    Case("undeclared_element_prefix_after_auth", b"<foo:message><body>HXp1</body>"
         b"</foo:message>", NWF, auth=True, marker=b"HXp1"),
    Case("undeclared_attribute_prefix_after_auth", b"<message foo:to='HXp2'/>", NWF,
         auth=True, marker=b"HXp2"),
    Case("undeclared_prefix_in_a_nested_element_after_auth", b"<message><x:body>HXp3"
         b"</x:body></message>", NWF, auth=True, marker=b"HXp3"),
    Case("undeclared_prefix_in_the_header", hdr(b" foo:bar='HXp4'"), NWF,
         marker=b"HXp4"),
    Case("undeclared_prefix_pre_auth", HDR + b"<sasl:auth mechanism='PLAIN'>HXp5"
         b"</sasl:auth>", NWF, marker=b"HXp5"),
    Case("redefined_stream_prefix_after_auth", b"<message xmlns:stream='urn:HXp6'>"
         b"<stream:error/></message>", INS, auth=True, marker=b"HXp6"),
    Case("redefined_stream_prefix_pre_auth", HDR + b"<auth xmlns='urn:ietf:params:xml:"
         b"ns:xmpp-sasl' xmlns:stream='urn:HXp7' mechanism='PLAIN'/>", INS,
         marker=b"HXp7"),
    Case("stream_prefix_unbound_in_a_nested_element_after_auth", b"<message><body "
         b"xmlns:stream=''>HXp8</body></message>", NWF, auth=True, marker=b"HXp8"),
    # -- the stream itself
    Case("wrong_stream_namespace", hdr(sns="urn:HXw1"), INS, marker=b"HXw1"),
    Case("wrong_content_namespace", hdr(ns="jabber:server"), INS),
    Case("no_content_namespace", b"<stream:stream to='example.test' xmlns:stream='"
         + harness.STREAM_NS.encode() + b"' version='1.0'>", INS),
    Case("root_is_not_a_stream", b"<html xmlns='jabber:client'><body>HXw2</body></html>",
         INS, marker=b"HXw2"),
    Case("stanza_before_the_stream_header", b"<message to='alice@example.test'><body>"
         b"HXw3</body></message>", INS, marker=b"HXw3"),
    Case("text_before_the_header", b"HXw4" + BARE, NWF, marker=b"HXw4"),
    Case("text_at_stream_level_pre_auth", HDR + b"HXw5<presence/>", NWF, marker=b"HXw5"),
    Case("text_at_stream_level_after_auth", b"<presence/>HXw6", NWF, auth=True,
         marker=b"HXw6"),
    Case("reference_at_stream_level_after_auth", b"&amp;HXw7", NWF, auth=True,
         marker=b"HXw7"),
    Case("second_stream_header_pre_auth", HDR + BARE, "unsupported-stanza-type"),
    Case("second_stream_header_after_auth", BARE, "unsupported-stanza-type", auth=True),
    Case("unknown_host", hdr(to="HXnosuch.test"), "host-unknown", marker=b"HXnosuch"),
    # -- limits
    Case("ten_thousand_deep_nesting_after_auth", _deep(10000), PV, auth=True,
         marker=b"HXdeep"),
    Case("ten_thousand_deep_nesting_pre_auth", HDR + _deep(10000), PV, marker=b"HXdeep"),
    Case("depth_33_after_auth", _deep(32), PV, auth=True, marker=b"HXdeep"),
    Case("hundred_thousand_attributes_after_auth", None, PV, auth=True,
         stream=(_attrs(100000), b"", 0, b""), max_sent=16 << 20, marker=b"HXattrs"),
    Case("sixty_five_attributes_after_auth", _attrs(65), PV, auth=True,
         marker=b"HXattrs"),
    Case("seventeen_namespace_declarations_after_auth", b"<message" + b"".join(
        b" xmlns:p%d='urn:HXns%d'" % (i, i) for i in range(17)) + b"/>", PV, auth=True,
        marker=b"urn:HXns"),
    Case("ten_megabyte_attribute_after_auth", None, PV, auth=True,
         stream=(b"<message id='", b"HXbigattr" * 7282, 10 << 20, b"'/>"),
         max_sent=16 << 20, marker=b"HXbigattr"),
    Case("ten_megabyte_attribute_in_the_header", None, PV,
         stream=(hdr(decl=True)[:-1] + b" id='", b"HXbighdr" * 8192, 10 << 20, b"'>"),
         max_sent=16 << 20, marker=b"HXbighdr"),
    Case("hundred_megabyte_stanza_after_auth", None, PV, auth=True,
         stream=(b"<message><body>", b"HXhuge" * 10923, 100 << 20, b"</body></message>"),
         max_sent=16 << 20, marker=b"HXhuge"),
    Case("hundred_megabyte_stanza_pre_auth", None, PV,
         stream=(HDR + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism="
                 b"'PLAIN'>", b"HXhuge" * 10923, 100 << 20, b"</auth>"),
         max_sent=16 << 20, marker=b"HXhuge"),
    Case("hundred_megabyte_tag_after_auth", None, PV, auth=True,
         stream=(b"<message ", b"HXtag" * 13107, 100 << 20, b"/>"), max_sent=16 << 20,
         marker=b"HXtag"),
    Case("oversized_pre_auth_stanza", HDR + b"<auth xmlns='urn:ietf:params:xml:ns:"
         b"xmpp-sasl' mechanism='PLAIN'>" + b"HXpre" * 2001 + b"</auth>", PV,
         marker=b"HXpre"),
    Case("oversized_pre_auth_header", hdr(b" id='" + b"HXph" * 2600 + b"'"), PV,
         marker=b"HXph"),
    Case("oversized_stanza_after_auth", b"<message><body>" + b"HXpost" * 43700 +
         b"</body></message>", PV, auth=True, marker=b"HXpost"),
    Case("attribute_over_8192_bytes_after_auth", b"<message id='HXa8k" + b"x" * 8200 +
         b"'/>", PV, auth=True, marker=b"HXa8k"),
    Case("hundred_thousand_attributes_in_the_header", None, PV,
         stream=(hdr()[:-1] + b"".join(b" a%d='HXhattrs'" % i for i in range(100000)),
                 b"", 0, b">"), max_sent=16 << 20, marker=b"HXhattrs"),
    Case("seventeen_namespace_declarations_in_the_header", hdr(b"".join(
        b" xmlns:p%d='urn:HXhns%d'" % (i, i) for i in range(17))), PV,
        marker=b"urn:HXhns"),
    Case("hundred_kilobyte_element_name_after_auth", b"<message><HXname" +
         b"n" * 300000 + b"/></message>", PV, auth=True, marker=b"HXname"),
    Case("hundred_megabytes_of_white_space_before_auth", None, TIMEOUT_CONDS,
         stream=(HDR, b" " * 65536, 100 << 20, b""), max_sent=200 << 20,
         wait=AUTH_TIMEOUT_S + 3),
    # -- more namespace and markup tricks
    Case("rebinding_the_xml_prefix_after_auth", b"<message xmlns:xml='urn:HXx1'/>", NWF,
         auth=True, marker=b"HXx1"),
    Case("binding_a_prefix_to_the_xml_namespace_after_auth", b"<message xmlns:HXx2="
         b"'http://www.w3.org/XML/1998/namespace'/>", NWF, auth=True, marker=b"HXx2"),
    Case("lt_in_an_attribute_value_after_auth", b"<message id='HXx3<b'/>", NWF,
         auth=True, marker=b"HXx3"),
    Case("element_name_starting_with_a_digit_after_auth", b"<message><1HXx4/></message>",
         NWF, auth=True, marker=b"HXx4"),
    Case("overlong_lt_in_an_attribute_after_auth", b"<message id='HXx5\xc0\xbcstream:"
         b"stream'/>", NWF, auth=True, marker=b"HXx5"),
    Case("lowercase_doctype", HDR + b"<!doctype HXx6>", NWF, marker=b"HXx6"),
    Case("header_without_to", b"<stream:stream xmlns='jabber:client' xmlns:stream='"
         + harness.STREAM_NS.encode() + b"' version='1.0'>", "host-unknown"),
    # -- the restarted stream after <success/>
    Case("restart_with_a_doctype", b"<?xml version='1.0'?><!DOCTYPE HXr [<!ENTITY a "
         b"'b'>]>" + BARE, RXML, auth="sasl", marker=b"HXr"),
    Case("restart_with_a_comment", b"<!-- HXrc -->" + BARE, RXML, auth="sasl",
         marker=b"HXrc"),
    Case("restart_with_xml_1_1", b"<?xml version='1.1'?>" + BARE, UVER, auth="sasl"),
    Case("restart_to_another_domain", hdr(to="HXother.test"), "host-unknown",
         auth="sasl", marker=b"HXother"),
    Case("restart_with_a_wrong_stream_namespace", hdr(sns="urn:HXrns"), INS,
         auth="sasl", marker=b"HXrns"),
    Case("stanza_instead_of_the_restart", b"<message to='alice@example.test'><body>"
         b"HXrst</body></message>", INS, auth="sasl", marker=b"HXrst"),
    # -- the same inputs one byte per write: the streaming parser at every split
    Case("dribbled_surrogate_utf8_after_auth", b"<message><body>HXd1\xed\xa0\x80</body>"
         b"</message>", NWF, auth=True, marker=b"HXd1", dribble=True),
    Case("dribbled_comment_after_auth", b"<message><body>HXd2<!-- x --></body></message>",
         RXML, auth=True, marker=b"HXd2", dribble=True),
    Case("dribbled_unknown_entity_after_auth", b"<message><body>HXd3&foo;</body>"
         b"</message>", RXML, auth=True, marker=b"HXd3", dribble=True),
    Case("dribbled_redefined_stream_prefix_after_auth", b"<message xmlns:stream='urn:"
         b"HXd4'><stream:error/></message>", INS, auth=True, marker=b"HXd4",
         dribble=True),
    Case("dribbled_doctype_before_the_header", b"<?xml version='1.0'?><!DOCTYPE x "
         b"[<!ENTITY HXd5 'y'>]>" + BARE, RXML, marker=b"HXd5", dribble=True),
    Case("dribbled_depth_33_after_auth", b"<message><body>HXd6</body>" + b"<a>" * 32,
         PV, auth=True, marker=b"HXd6", dribble=True),
]


# ---------------------------------------------------------------- the rig

class Rig:
    def __init__(self):
        self.prosody = self.relay = self.hamon = self.proxyd = None
        self.cases_run = 0
        self.checked = set()	# relay conns parsed after they closed
        self.reported = set()	# ... and those that failed (and failed their case)


def start_rig(r, started):
    """Prosody with alice and mallory, the relay, hamon watching the relay, proxyd
    routing example.test to what hamon publishes; STARTED lists what to stop."""
    r.prosody = harness.Prosody().start()
    started.append(r.prosody)
    for u, pw in PW.items():
        r.prosody.register(u, pw)
    r.relay = Relay(r.prosody.port)
    work = harness.make_dir("hostile")
    r.hamon = harness.Daemon("hamon", hamon_config(work, [{
        "name": "a", "address": f"127.0.0.1:{r.relay.port}",
        "domain": harness.XMPP_DOMAIN, "checks": ["xmpp"]}]))
    started.append(r.hamon)
    r.hamon.start()
    r.port = harness.free_port()
    r.proxyd = harness.Daemon("proxyd", {
        "listen": [{"address": f"127.0.0.1:{r.port}", "tls": "none"}],
        "hamon": r.hamon.control,
        "domains": [{"name": harness.XMPP_DOMAIN, "max_connections": 5000}],
        "limits": {"stanza_bytes": 262144, "stanza_bytes_preauth": 10000,
                   "depth": 32, "attributes": 64, "stanzas_per_second": RATE,
                   "stanza_timeout": f"{STANZA_TIMEOUT_S}s",
                   "auth_timeout": f"{AUTH_TIMEOUT_S}s"}})
    started.append(r.proxyd)
    # Under AddressSanitizer, freed memory sits in a 256 MB quarantine: RSS
    # would measure that, not what proxyd holds.
    saved = os.environ.get("ASAN_OPTIONS")
    if "asan" in str(harness.build_dir()):
        os.environ["ASAN_OPTIONS"] = ((saved + ":") if saved else "") + \
            "quarantine_size_mb=4"
    try:
        r.proxyd.start()
    finally:
        if saved is None:
            os.environ.pop("ASAN_OPTIONS", None)
        else:
            os.environ["ASAN_OPTIONS"] = saved
    # Ready: hamon has published the relay as up and proxyd routes to it.
    harness.wait_until(lambda: _try_login(r), 15, "a login through proxyd",
                       interval=0.2)
    return r


def stop_rig(r, started):
    xmpp.close_all()
    for obj in reversed(started):
        try:
            obj.stop()
        except Exception:
            pass
    if r.relay:
        r.relay.stop()


@pytest.fixture(scope="module")
def rig(request):
    if os.geteuid() != 0:
        pytest.skip("needs root (Prosody runs as its own user)")
    raise_fd_limit()
    r = Rig()
    started = []
    failed_before = request.session.testsfailed
    try:
        start_rig(r, started)
        with xmpp.login("alice@example.test", PW["alice"], r.port) as c:
            assert c.connected()
        yield r
    finally:
        if request.session.testsfailed > failed_before:
            for obj in started:
                text = obj.log_tail() if hasattr(obj, "log_tail") else \
                    harness.tail(obj.log_text(), 60)
                print(f"\n===== {type(obj).__name__} {getattr(obj, 'name', '')} pid "
                      f"{obj.pid} ({obj.dir})\n{text}")
        stop_rig(r, started)


def _try_login(r):
    if not r.proxyd.proc.alive():
        raise harness.HarnessError(f"proxyd exited ({r.proxyd.proc.returncode}):\n"
                                   f"{harness.tail(r.proxyd.log_text())}")
    try:
        return raw_ping_works(r.port, "alice", PW["alice"], timeout=2)
    except (AssertionError, OSError):
        return False


# ---------------------------------------------------------------- the checks

def check_alive(r, legit=False):
    """(2) proxyd alive (and serving a fresh legit client when LEGIT), (3) Prosody
    alive and answering, (4) every recorded backend byte parses strictly."""
    assert r.proxyd.proc.alive(), (f"proxyd died ({r.proxyd.proc.returncode}):\n"
                                   f"{harness.tail(r.proxyd.log_text())}")
    assert r.prosody.proc.alive(), "prosody died"
    assert harness.xmpp_features(r.prosody.port, timeout=2), "prosody does not answer"
    if legit:
        assert raw_ping_works(r.port, "alice", PW["alice"]), "a legit client failed"
    check_backend_strict(r)


def check_backend_strict(r):
    for conn, data in r.relay.snapshot():
        if conn.id in r.checked:
            continue
        # An open connection may be caught between two writes of one stanza.
        closed = conn.closed is not None
        try:
            strict_parse(data, what=f"what reached Prosody on {conn}", partial=not closed)
        except Malformed:
            r.checked.add(conn.id)	# fail the case that sent it, not every later one
            r.reported.add(conn.id)
            raise
        if closed:
            r.checked.add(conn.id)


def check_marker(r, marker):
    if marker:
        hit = backend_contains(r.relay, marker)
        assert not hit, f"{marker!r} reached Prosody on {hit}"


def check_error(cond, data, want, eof):
    """(1) the right <stream:error>, followed by </stream:stream>, then EOF."""
    want = (want,) if isinstance(want, str) else want
    assert cond in want, f"stream error {cond!r}, want {' or '.join(want)}; got {data[-600:]!r}"
    i = data.index(b"<stream:error")
    assert b"</stream:stream>" in data[i:], f"no </stream:stream> after the error: {data[i:]!r}"
    assert eof, "proxyd did not close the connection"


class Recorder(xmpp.RawStream):
    """A RawStream that keeps every byte it received (for the strict parse)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.log = bytearray()

    def _recv(self, deadline):
        before = len(self.buf)
        ok = super()._recv(deadline)
        if len(self.buf) > before:
            self.log += self.buf[before:]
        return ok


def recorder_login(port, restart=True):
    s = raw_login(port, "mallory", PW["mallory"], restart=restart, bind=restart)
    # Recording starts here, mid-stream: authenticated cases check the error
    # and the close, not the client side's stream as a whole.
    s.__class__ = Recorder
    s.log = bytearray()
    return s


def run_case(r, case):
    """Send CASE; run every check even when one fails, and report them all."""
    problems = []

    def check(fn, *args, **kw):
        try:
            fn(*args, **kw)
        except (AssertionError, OSError, xmpp.StreamError) as e:
            problems.append(f"{fn.__name__}: {e}")

    t0 = time.monotonic()
    if case.auth:
        s = recorder_login(r.port, restart=case.auth != "sasl")
    else:
        s = Recorder(r.port, timeout=10)
    try:
        if case.stream:
            head, chunk, total, tail = case.stream
            sent, got, eof = send_streaming(s.sock, head, chunk, total, tail,
                                            read_timeout=case.wait)
            s.log += s.buf + got
            data = bytes(s.log)
            if sent > case.max_sent:
                problems.append(f"proxyd read {sent} bytes before closing")
            rss = rss_kib(r.proxyd.pid)
            print(f"\n{case.id}: {sent} bytes sent before the close; proxyd RSS "
                  f"{rss} KiB, peak {rss_kib(r.proxyd.pid, 'VmHWM')} KiB")
            if rss > RSS_MAX_KIB:
                problems.append(f"proxyd RSS {rss} KiB after it (limit {RSS_MAX_KIB})")
        else:
            try:
                if case.dribble:
                    s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    for i in range(len(case.payload)):
                        s.send(case.payload[i:i + 1])
                        time.sleep(0.002)
                else:
                    s.send(case.payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
            s.read_all(8)
            eof = s.eof
            data = bytes(s.log)
    finally:
        s.close()
    check(check_error, xmpp.parse_stream_error(data), data, case.cond, eof)
    if not case.auth:
        check(strict_parse, data, what="what the client received")
    check(check_marker, r, case.marker)
    r.cases_run += 1
    check(check_alive, r, legit=r.cases_run % LEGIT_EVERY == 0)
    took = time.monotonic() - t0
    if problems:
        raise AssertionError(f"{case.id} ({took:.2f}s):\n  " + "\n  ".join(problems))
    return took


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_gets_its_stream_error_and_nothing_reaches_prosody(rig, case):
    run_case(rig, case)


@pytest.mark.parametrize("where", ["header_pre_auth", "stanza_after_auth",
                                   "attribute_after_auth"])
def test_one_byte_per_second_is_cut_by_stanza_timeout(rig, where):
    payload = {"header_pre_auth": HDR,
               "stanza_after_auth": b"<message to='alice@example.test'><body>HXslow",
               "attribute_after_auth": b"<message id='HXslow" + b"x" * 50}[where]
    s = recorder_login(rig.port) if where != "header_pre_auth" else Recorder(rig.port)
    try:
        t0 = time.monotonic()
        i = 0
        # One byte, then a second of reading what comes back, and again.
        while not s.eof and i < len(payload) and time.monotonic() - t0 < 10:
            try:
                s.send(payload[i:i + 1])
            except OSError:
                break
            i += 1
            until = t0 + i
            while not s.eof and time.monotonic() < until:
                s._recv(until)
        s.read_all(2)
        took = time.monotonic() - t0
        data = bytes(s.log)
        check_error(xmpp.parse_stream_error(data), data, TIMEOUT_CONDS, s.eof)
        # Cut by stanza_timeout (checked once a second, say), before auth_timeout.
        assert STANZA_TIMEOUT_S - 0.5 <= took < min(STANZA_TIMEOUT_S + 2.5, AUTH_TIMEOUT_S), \
            f"cut after {took:.1f}s ({i} bytes), stanza_timeout is {STANZA_TIMEOUT_S}s"
        print(f"\nslowloris ({where}): cut after {took:.2f}s, {i} bytes, "
              f"{xmpp.parse_stream_error(data)}")
    finally:
        s.close()
    check_marker(rig, b"HXslow")
    check_alive(rig, legit=True)


def test_stanza_flood_after_auth_is_a_policy_violation(rig):
    s = recorder_login(rig.port)
    try:
        # Under the rate: a burst of RATE - 10 pings is answered in full.
        ok = RATE - 10
        s.send(b"".join(b"<iq type='get' id='ok%d' to='example.test'><ping xmlns="
                        b"'urn:xmpp:ping'/></iq>" % i for i in range(ok)))
        s.read_until(rb"<iq[^>]*id=['\"]ok%d['\"]" % (ok - 1))
        assert bytes(s.log).count(b"<iq ") == ok and b"<stream:error" not in s.log
        time.sleep(1.0)		# the bucket refills
        n = RATE * 6
        s.send(b"".join(b"<iq type='get' id='f%d' to='example.test'><ping xmlns="
                        b"'urn:xmpp:ping'/></iq>" % i for i in range(n)))
        s.read_all(5)
        data = bytes(s.log)
        check_error(xmpp.parse_stream_error(data), data, PV, s.eof)
        answered = data.count(b"<iq ") - ok
        print(f"\nflood: {ok} pings answered, then {n} at once: {answered} answered "
              f"before the error")
        assert answered < n, "every ping of the flood was answered"
    finally:
        s.close()
    check_alive(rig, legit=True)


def accept_queue(port):
    """How many connections wait in the kernel for proxyd to accept them."""
    out = subprocess.run(["ss", "-Hltn", f"( sport = :{port} )"], capture_output=True,
                         text=True, timeout=10).stdout.split()
    return int(out[1]) if len(out) > 1 else 0


# proxyd checks its timeouts once a second (WORKER_SWEEP_MS in proxyd/worker.c):
# a connection is cut between auth_timeout and auth_timeout + SWEEP_S after proxyd
# accepted it.  LATE_SLACK_S is room for what a loaded 2-core machine adds on top
# (proxyd's accept and sweep turn, the client's wake-up): at most 0.06 s measured
# with six busy loops and a disk writer beside the test.
SWEEP_S = 1.0
LATE_SLACK_S = 1.5
IDLE_SPREAD_S = 1.2 * SWEEP_S


def tcp_conns(pid):
    """(local port, peer port) of each of PID's TCP connections (listening sockets
    left out), read from the kernel: PID's socket inodes against /proc/net/tcp.
    Exact where an fd count is not: proxyd's other fds (hamon, the control socket,
    a backend connection closing just after its client saw the end) come and go
    at their own pace."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue		# closed meanwhile
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    conns = set()
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if p[9] in inodes and p[3] != "0A":
                conns.add((int(p[1].split(":")[1], 16), int(p[2].split(":")[1], 16)))
    return conns


def tcp_peers(pid, port):
    """The peer ports of PID's connections accepted on its listening PORT."""
    return {peer for local, peer in tcp_conns(pid) if local == port}


def open_idle(port, n, batch=100, spread=0.0):
    """N connections (non-blocking connects, BATCH at a time, each batch accepted
    before the next: a burst beyond proxyd's listen backlog would leave silent
    clients established on their side only; the batches' starts spaced over
    SPREAD seconds); every odd one sends a stream header and nothing more.  [(socket, time its connect
    began, time the client saw it connected)]: proxyd accepted it after the
    first (so a cut measured from there is never early when proxyd is right,
    however late this process got to look) and, unless proxyd is slow to
    accept, before the second."""
    done = [None] * n
    t0 = time.monotonic()
    for start in range(0, n, batch):
        time.sleep(max(0.0, t0 + spread * start / n - time.monotonic()))
        sel = selectors.DefaultSelector()
        pending = {}
        for i in range(start, min(n, start + batch)):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            began = time.monotonic()
            c.connect_ex(("127.0.0.1", port))
            pending[c] = (i, began)
            sel.register(c, selectors.EVENT_WRITE)
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(0.2):
                c = key.fileobj
                i, began = pending.pop(c)
                sel.unregister(c)
                err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                assert err == 0, f"idle connection {i}: {os.strerror(err)}"
                if i % 2:
                    c.sendall(HDR)
                done[i] = (c, began, time.monotonic())
        sel.close()
        assert not pending, f"{len(pending)} connects did not complete in 10s"
        harness.wait_until(lambda: accept_queue(port) == 0, 5,
                           "proxyd accepting the batch", interval=0.01)
    return done


def watch_closed(conns, deadline):
    """Read every connection until EOF or DEADLINE: ({i: bytes}, {i: time of EOF}).
    The time of an EOF is when select() reported it: it had arrived by then, and
    this process's own work on the other 1,999 sockets is not counted in."""
    sel = selectors.DefaultSelector()
    got, closed_at = {}, {}
    for i, (c, _b, _t) in enumerate(conns):
        sel.register(c, selectors.EVENT_READ, i)
        got[i] = bytearray()
    while len(closed_at) < len(conns) and time.monotonic() < deadline:
        events = sel.select(0.2)
        seen = time.monotonic()
        for key, _ in events:
            i, c = key.data, key.fileobj
            try:
                d = c.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if d:
                got[i] += d
            else:
                closed_at[i] = seen
                sel.unregister(c)
    sel.close()
    return got, closed_at


def test_two_thousand_idle_connections_are_cut_without_a_leak(rig):
    pid = rig.proxyd.pid
    # The baseline once proxyd holds no client and no backend connection: a legit
    # login just before may still be closing its backend side.
    harness.wait_until(lambda: not any(rig.port == local or rig.relay.port == peer
                                       for local, peer in tcp_conns(pid)), 10,
                       "proxyd holding no client or backend connection")
    fds_before = fd_count(pid)
    relay_before = rig.relay.open_count()
    t0 = time.monotonic()
    # Spread over more than one sweep: each run has connections whose deadline
    # falls just before a sweep (cut at auth_timeout) and just after one (cut a
    # whole sweep later), so both ends of the window are tried every time, not
    # only when the module's earlier cases happen to leave the right phase.
    conns = open_idle(rig.port, IDLE_CONNS, spread=IDLE_SPREAD_S)
    ports = {c.getsockname()[1] for c, _b, _t in conns}
    try:
        opened = time.monotonic() - t0
        # Held all at once: proxyd has accepted every one of them.
        harness.wait_until(lambda: ports <= tcp_peers(pid, rig.port), 3,
                           f"proxyd holding all {IDLE_CONNS} idle connections "
                           f"(now {len(ports & tcp_peers(pid, rig.port))})")
        fds_held = fd_count(pid)
        first_connect = min(b for _c, b, _t in conns)
        # A legit client is served while they are all held.
        assert raw_ping_works(rig.port, "alice", PW["alice"]), "legit client failed"
        legit_at = time.monotonic()
        cut = ports - tcp_peers(pid, rig.port)
        assert not cut, f"{len(cut)} idle connections were cut before the legit " \
            f"login ended, {legit_at - first_connect:.2f}s after the first connected"
        last_connect = max(t for _c, _b, t in conns)
        got, closed_at = watch_closed(conns, last_connect + AUTH_TIMEOUT_S + 5)
        still = len(conns) - len(closed_at)
        assert still == 0, f"{still} of {len(conns)} idle connections still open " \
            f"{AUTH_TIMEOUT_S + 5}s after they connected (auth_timeout {AUTH_TIMEOUT_S}s)"
        # Not before auth_timeout, exactly: proxyd accepted each after its connect
        # began and cuts when its own clock (ms) shows more than auth_timeout.
        early = sorted((round(closed_at[i] - b, 3), i) for i, (_c, b, _t)
                       in enumerate(conns) if closed_at[i] - b < AUTH_TIMEOUT_S - 0.001)
        # Not much after: from when the client saw it connected.
        alive = [closed_at[i] - t for i, (_c, _b, t) in enumerate(conns)]
        late_s = AUTH_TIMEOUT_S + SWEEP_S + LATE_SLACK_S
        late = sorted((round(a, 3), i) for i, a in enumerate(alive) if a > late_s)
        assert not early, f"{len(early)} cut before auth_timeout ({AUTH_TIMEOUT_S}s " \
            f"after their connect began): (seconds, connection) {early[:5]}"
        assert not late, f"{len(late)} cut late (over {late_s}s after they " \
            f"connected): (seconds, connection) {late[-5:]}"
        bad, conds, silent = [], {}, {}
        for i in range(len(conns)):
            data = bytes(got[i])
            cond = xmpp.parse_stream_error(data)
            if i % 2:
                conds[cond] = conds.get(cond, 0) + 1
                if cond not in TIMEOUT_CONDS or b"</stream:stream>" not in data:
                    bad.append((i, data[-200:]))
                    continue
                try:
                    strict_parse(data, what=f"idle stream {i}")
                except Malformed as e:
                    bad.append((i, str(e)))
            else:
                silent[cond] = silent.get(cond, 0) + 1
        assert not bad, f"{len(bad)} idle streams got no proper timeout error: {bad[:3]}"
        lag = max(t - b for _c, b, t in conns)
        began = min(closed_at[i] - b for i, (_c, b, _t) in enumerate(conns))
        print(f"\n{IDLE_CONNS} idle: all connected in {opened:.2f}s (a connect seen "
              f"done up to {lag:.3f}s after it began), proxyd fds {fds_before} -> "
              f"{fds_held}, legit login {legit_at - first_connect:.2f}s after the "
              f"first, cut {min(alive):.2f}-{max(alive):.2f}s after connecting, at "
              f"least {began:.3f}s after the connect began (auth_timeout "
              f"{AUTH_TIMEOUT_S}s); streams: {conds}; silent ones: {silent}")
    finally:
        for c, _b, _t in conns:
            c.close()
    # No fd leak in proxyd (back to the baseline exactly: it was taken with no
    # session open), and the backend connections it opened are closed too.
    harness.wait_until(lambda: fd_count(pid) <= fds_before, 5,
                       f"proxyd's fds back to {fds_before} (now {fd_count(pid)})")
    harness.wait_until(lambda: rig.relay.open_count() <= relay_before + 2, 5,
                       f"the backend connections back to {relay_before} "
                       f"(now {rig.relay.open_count()})")
    check_alive(rig, legit=True)


TRICKY_ID = "HXok\ta\nb\rc'\"<>&"
TRICKY_BODY = ("A </stream:stream> &lol; &foo; ]]> <&> \ud7ff\ue000\ufffd\U0010ffff "
               "\u00e9 \u6f22 \U0001F600 <!-- not a comment --> <?not a pi?>")
TRICKY = (b"<body>A &#60;/stream:stream&#62; &amp;lol; &#x26;foo; ]]&gt; <![CDATA[<&>]]> "
          b"&#xD7FF;&#xE000;&#xFFFD;&#x10FFFF; \xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80 "
          b"&lt;!-- not a comment --&gt; &lt;?not a pi?&gt;</body>"
          b"<x xmlns='urn:HXok' xmlns:p='urn:p' p:a='1' a='2'><p:y/><z xmlns=''/></x>")


def tricky_roundtrip(r, dribble):
    """Legal but tricky XML to oneself through proxyd: what Prosody got (parsed
    from the recording) and what came back must mean exactly what was sent."""
    import xml.etree.ElementTree as ET
    s = recorder_login(r.port)
    try:
        mid = TRICKY_ID + ("-dribbled" if dribble else "")
        esc = (mid.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
               .replace("'", "&apos;").replace('"', "&quot;").replace("\t", "&#9;")
               .replace("\n", "&#10;").replace("\r", "&#13;"))
        stanza = (f"<message to='{s.jid}' type='chat' id='{esc}'>".encode() + TRICKY +
                  b"</message>")
        if dribble:
            s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(stanza)):
                s.send(stanza[i:i + 1])
                time.sleep(0.001)
        else:
            s.send(stanza)
        back = s.read_until(rb"<message.*?</message>|</stream:error>")
        assert b"<stream:error" not in back, back
        s.send("</stream:stream>")
        s.read_all(2)
    finally:
        s.close()
    check_alive(r)
    # What Prosody received.
    hits = backend_contains(r.relay, b"urn:HXok")
    assert hits, "the tricky message never reached Prosody"
    data = dict((c.id, d) for c, d in r.relay.snapshot())[hits[-1].id]
    sent = [e for e in stanzas_of(data) if e.get("id") == mid]
    assert sent, f"no stanza with id {mid!r} in what Prosody got: {data[-800:]!r}"
    for el, who in ((sent[0], "Prosody got"),
                    (ET.fromstring(b"<w xmlns='jabber:client'>" + back.split(b"?>")[-1]
                                   + b"</w>")[0], "the client got back")):
        body = el.find("{jabber:client}body")
        assert body is not None and body.text == TRICKY_BODY, \
            f"{who}: body {body.text if body is not None else None!r}"
        x = el.find("{urn:HXok}x")
        assert x is not None, f"{who}: no <x xmlns='urn:HXok'>: {ET.tostring(el)!r}"
        assert x.get("{urn:p}a") == "1" and x.get("a") == "2", f"{who}: {x.attrib}"
        assert x.find("{urn:p}y") is not None and x.find("z") is not None, \
            f"{who}: {ET.tostring(x)!r}"
        if who == "Prosody got":
            assert el.get("id") == mid, f"{who}: id {el.get('id')!r}, sent {mid!r}"


def test_legal_but_tricky_content_reaches_prosody_and_returns_intact(rig):
    tricky_roundtrip(rig, dribble=False)


def test_the_same_stanza_one_byte_per_write_arrives_intact(rig):
    tricky_roundtrip(rig, dribble=True)


NS_EDGES = [
    # Legal input proxyd must re-serialise legally: the predeclared xml prefix on
    # an element (the XML namespace may never be a default namespace), nested;
    # attributes in the streams and xml namespaces; prefixes that collide with
    # the ones proxyd generates; a stanza in no namespace.
    ("element_in_the_xml_namespace", b"<message to='alice@example.test' id='HXns1'>"
     b"<xml:x>HXns1</xml:x></message>"),
    ("nested_element_in_the_xml_namespace", b"<message to='alice@example.test' "
     b"id='HXns2'><x xmlns='urn:x'><xml:y xml:lang='en'>HXns2</xml:y></x></message>"),
    ("attribute_in_the_streams_namespace", b"<iq type='get' id='HXns3' to='example.test'>"
     b"<ping xmlns='urn:xmpp:ping' xmlns:s='http://etherx.jabber.org/streams' s:a='1'/>"
     b"</iq>"),
    ("prefixes_like_the_generated_ones", b"<message to='alice@example.test' id='HXns4' "
     b"xmlns:ns1='urn:a' ns1:a='1'><x xmlns:ns1='urn:b' ns1:b='2' xmlns:ns0='urn:c' "
     b"ns0:c='3' xmlns:ns2='urn:d' ns2:d='4'/></message>"),
    ("stanza_in_no_namespace", b"<message xmlns='' to='alice@example.test' id='HXns5'/>"),
    ("xml_space_and_lang_attributes", b"<message to='alice@example.test' id='HXns6' "
     b"xml:lang='de' xml:space='preserve'><body>HXns6</body></message>"),
]


@pytest.mark.parametrize("payload", [p for _, p in NS_EDGES], ids=[n for n, _ in NS_EDGES])
def test_namespace_edge_cases_reach_prosody_well_formed(rig, payload):
    """Whether proxyd passes these or refuses them, Prosody must never get them
    in a form that is not namespace-well-formed."""
    s = recorder_login(rig.port)
    try:
        s.send(payload)
        s.read_all(1.0)
    finally:
        s.close()
    time.sleep(0.1)
    check_alive(rig)


def test_client_data_never_forges_a_log_line(rig):
    """Stream errors quote what the client sent (a version, a namespace): in the
    log, a newline in it must not start a line of the attacker's choosing."""
    mark = rig.proxyd.log_mark()
    for payload, cond in ((hdr(version="9.0&#10;HXLOGINJ1 forged &#13;"), UVER),
                          (hdr(ns="urn:a&#10;HXLOGINJ2 forged"), INS),
                          (hdr(sns="urn:b&#10;HXLOGINJ3 forged"), INS)):
        with Recorder(rig.port) as s:
            s.send(payload)
            s.read_all(5)
            data = bytes(s.log)
            check_error(xmpp.parse_stream_error(data), data, cond, s.eof)
    time.sleep(0.2)
    with open(rig.proxyd.log_path, "rb") as f:
        f.seek(mark)
        log = f.read()
    forged = [l for l in log.split(b"\n") if l.startswith(b"HXLOGINJ")]
    cr = [l for l in log.split(b"\n") if b"\r" in l]
    assert not forged and not cr, \
        f"client bytes forged log lines: {forged + cr}; log:\n{log[-1500:]!r}"
    check_alive(rig)


def test_connections_over_max_connections_get_policy_violation(rig):
    """A second proxyd on the same hamon, max_connections 5 for the domain."""
    port = harness.free_port()
    p2 = harness.Daemon("proxyd", {
        "listen": [{"address": f"127.0.0.1:{port}", "tls": "none"}],
        "hamon": rig.hamon.control,
        "domains": [{"name": harness.XMPP_DOMAIN, "max_connections": 5}]})
    held = []
    try:
        p2.start()
        harness.wait_until(lambda: _ping(port), 10, "a login through the second proxyd",
                           interval=0.2)
        for _ in range(5):
            s = Recorder(port)
            s.open_stream()
            held.append(s)
        with Recorder(port) as s:
            s.send(HDR)
            s.read_all(5)
            data = bytes(s.log)
            check_error(xmpp.parse_stream_error(data), data, PV, s.eof)
            assert b"max_connections" in data or b"too many" in data, data
            strict_parse(data, what="what the sixth client received")
        held.pop().close()
        harness.wait_until(lambda: _ping(port), 5, "a login once one left", interval=0.1)
        assert p2.proc.alive()
    finally:
        for s in held:
            s.close()
        p2.stop()
        harness.remove_dir(p2.dir)
    check_alive(rig)


def _ping(port):
    try:
        return raw_ping_works(port, "alice", PW["alice"], timeout=2)
    except (AssertionError, OSError):
        return False


def test_clients_that_vanish_mid_stanza_leak_nothing(rig):
    """Reset (RST) or half-closed in the middle of a stanza, before and after
    authentication: proxyd frees the session and its backend connection."""
    import struct
    pid = rig.proxyd.pid
    fds_before = fd_count(pid)
    relay_before = rig.relay.open_count()
    socks = []
    for i in range(100):
        s = Recorder(rig.port)
        s.send(HDR + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PL")
        socks.append(s)
    for i in range(30):
        s = recorder_login(rig.port)
        s.send(b"<message to='alice@example.test'><body>HXvanish")
        socks.append(s)
    time.sleep(0.3)
    for i, s in enumerate(socks):
        if i % 3 == 2:
            s.sock.shutdown(socket.SHUT_WR)		# half-close: then read to EOF
        else:
            s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()				# RST
    for i, s in enumerate(socks):
        if i % 3 == 2:
            s.read_all(3)
            assert s.eof, f"half-closed client {i} not closed by proxyd"
            s.close()
    harness.wait_until(lambda: fd_count(pid) <= fds_before + 2, 5,
                       f"proxyd's fds back to {fds_before} (now {fd_count(pid)})")
    harness.wait_until(lambda: rig.relay.open_count() <= relay_before + 2, 5,
                       f"the backend connections back to {relay_before} "
                       f"(now {rig.relay.open_count()})")
    check_marker(rig, b"HXvanish")
    check_alive(rig, legit=True)


def test_after_everything_proxyd_and_prosody_still_serve(rig):
    with xmpp.login("alice@example.test", PW["alice"], rig.port) as a:
        with xmpp.login("mallory@example.test", PW["mallory"], rig.port) as m:
            body = "still here \u00e9 \u6f22\u5b57 \U0001F600 <&>\"'"
            m.send_message("alice@example.test", body)
            # Offline messages of earlier tests come first: look for this one.
            deadline = time.monotonic() + 5
            seen = []
            while True:
                got = a.wait_message(frm="mallory@example.test",
                                     timeout=max(0.1, deadline - time.monotonic()))
                if got.body == body:
                    break
                seen.append(got.body)
                assert time.monotonic() < deadline, f"not received; got {seen}"
    check_alive(rig, legit=True)
    # Every connection proxyd (and hamon) ever made to Prosody, parsed whole
    # (but those that already failed the test that sent them).
    sessions = 0
    for conn, data in rig.relay.snapshot():
        if conn.id not in rig.reported:
            strict_parse(data, what=f"what reached Prosody on {conn}",
                         partial=conn.closed is None)
        sessions += b"urn:ietf:params:xml:ns:xmpp-bind" in data
    assert sessions >= sum(1 for c in CASES if c.auth is True), \
        f"only {sessions} bound sessions reached Prosody"
    assert not rig.relay.errors, rig.relay.errors


# ---------------------------------------------------------------- the checker itself

CHECKER_REFUSES = [
    ("doctype", HDR + b"<!DOCTYPE x><message/>"),
    ("entity decl", b"<!DOCTYPE x [<!ENTITY a 'b'>]>" + BARE),
    ("comment", HDR + b"<message><!-- x --></message>"),
    ("pi", HDR + b"<?foo?>"),
    ("declaration in a stanza", HDR + b"<message><?xml version='1.0'?></message>"),
    ("xml 1.1", b"<?xml version='1.1'?>" + BARE),
    ("latin-1 declaration", b"<?xml version='1.0' encoding='ISO-8859-1'?>" + BARE),
    ("invalid utf-8", HDR + b"<message>\xff</message>"),
    ("overlong", HDR + b"<message>\xc0\xaf</message>"),
    ("surrogate utf-8", HDR + b"<message>\xed\xa0\x80</message>"),
    ("surrogate ref", HDR + b"<message>&#xD800;</message>"),
    ("nul ref", HDR + b"<message>&#0;</message>"),
    ("nul byte", HDR + b"<message>\x00</message>"),
    ("unknown entity", HDR + b"<message>&foo;</message>"),
    ("bare ampersand", HDR + b"<message>a&b</message>"),
    ("mismatched", HDR + b"<message><body></message></body>"),
    ("undeclared prefix", HDR + b"<foo:message/>"),
    ("rebound stream prefix", HDR + b"<message xmlns:stream='urn:x'/>"),
    ("cut inside a stanza", HDR + b"<message><body>hi"),
    ("cut inside a tag", HDR + b"<message to='a"),
    ("not a stream", b"<message/>"),
    ("xml namespace as the default", HDR + b"<message><x xmlns='http://www.w3.org/XML/"
     b"1998/namespace'/></message>"),
    ("xmlns namespace bound", HDR + b"<message xmlns:a='http://www.w3.org/2000/xmlns/'/>"),
    ("text at stream level", HDR + b"hello"),
]


@pytest.mark.parametrize("what,data", CHECKER_REFUSES, ids=[w for w, _ in CHECKER_REFUSES])
def test_the_backend_checker_refuses(what, data):
    with pytest.raises(Malformed):
        strict_parse(data)


def test_the_backend_checker_accepts_a_restarted_stream():
    data = (HDR + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
            b"AGEAYg==</auth>" + HDR + b"<iq type='set' id='b'><bind xmlns='urn:ietf:"
            b"params:xml:ns:xmpp-bind'/></iq><message><body>\xc3\xa9 &lt;&amp;&#x1F600;"
            b"</body></message>\n</stream:stream></stream:stream>")
    assert strict_parse(data) == 3
    assert strict_parse(HDR) == 0
    assert strict_parse(b"") == 0
