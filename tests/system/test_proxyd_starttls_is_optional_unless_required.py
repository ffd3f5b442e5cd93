# test_proxyd_starttls_is_optional_unless_required.py: on a starttls listener
# without require_tls, <starttls/> is offered beside the backend's mechanisms
# and a client that does not take it logs in in plaintext (raw PLAIN and a
# slixmpp client); one that takes it gets TLS and a fresh backend stream, and
# <starttls/> after authentication began is refused.  With require_tls the
# offer carries <required/> and nothing else; a plaintext <auth/> gets the
# SASL failure <encryption-required/> (the stream stays, STARTTLS still
# works), any other stanza gets policy-violation.

import base64
import re
import ssl

import harness
import xmpp
from proxyd_helpers import PASSWORD, Chain

TLS_NS = b"urn:ietf:params:xml:ns:xmpp-tls"
AUTH = ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
        + base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode() + "</auth>")


def starttls_element(features):
    m = re.search(rb"<starttls[^>]*" + TLS_NS + rb"[^>]*(/>|>.*?</starttls>)",
                  features, re.S)
    assert m, features
    return m.group(0)


def bind(s, resource):
    s.send(harness.stream_header())
    s.read_until(rb"</stream:features>")
    s.send(f"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
           f"<resource>{resource}</resource></bind></iq>")
    return re.search(rb"<jid>([^<]+)</jid>", s.read_until(rb"</iq>")).group(1).decode()


def to_tls(s, cafile):
    """Wrap the RawStream S's socket in TLS after <proceed/>."""
    ctx = ssl.create_default_context(cafile=cafile)
    s.sock = ctx.wrap_socket(s.sock, server_hostname=harness.XMPP_DOMAIN)
    s.buf = b""


def test_without_require_tls_a_client_may_log_in_in_plaintext(
        prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir)
    s = xmpp.RawStream(ch.port_starttls)
    features = s.open_stream()
    assert b"<required" not in starttls_element(features), features
    assert b"<mechanism>PLAIN</mechanism>" in features, features
    s.send(AUTH)
    s.read_until(rb"<success[^>]*(/>|</success>)")
    jid = bind(s, "plain")
    assert jid == ch.jid("alice") + "/plain"
    # After authentication the offer is gone: nothing to take any more.
    s.send(f"<message to='{jid}' type='chat'><body>in the clear</body></message>")
    assert b"in the clear" in s.read_until(rb"</message>")
    by_jid = {x["jid"]: x for x in ch.sessions() if x["jid"]}
    assert by_jid[jid]["tls"] is False and by_jid[jid]["backend"] == "a"

    # A real client that does not do STARTTLS logs in too.
    c = xmpp.login(ch.jid("bob"), PASSWORD, port=ch.port_starttls, tls="none")
    assert not c.encrypted()
    c.disconnect()
    s.close()


def test_without_require_tls_a_client_that_takes_starttls_gets_tls(
        prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir)
    s = xmpp.RawStream(ch.port_starttls)
    s.open_stream()
    s.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    s.read_until(rb"<proceed[^>]*/>")
    to_tls(s, ch.cert)
    features = s.open_stream()
    assert TLS_NS not in features, "no second TLS layer on offer"
    s.send(AUTH)
    s.read_until(rb"<success[^>]*(/>|</success>)")
    jid = bind(s, "tls")
    sessions = [x for x in ch.sessions() if x["jid"]]
    assert [(x["jid"], x["tls"]) for x in sessions] == [(jid, True)], sessions
    s.close()

    c = xmpp.login(ch.jid("bob"), PASSWORD, **ch.client_kw("starttls"))
    assert c.encrypted()
    c.disconnect()

    # STARTTLS once authentication has begun: refused.
    s = xmpp.RawStream(ch.port_starttls)
    s.open_stream()
    s.send(AUTH)
    s.read_until(rb"<success[^>]*(/>|</success>)")
    s.send(harness.stream_header())
    s.read_until(rb"</stream:features>")
    s.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    cond, data = s.wait_closed(timeout=5)
    assert cond == "policy-violation", data


def test_with_require_tls_plaintext_auth_is_refused(
        prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir, require_tls=True)
    s = xmpp.RawStream(ch.port_starttls)
    features = s.open_stream()
    assert b"<required/>" in starttls_element(features), features
    assert b"mechanism" not in features, features
    # Plaintext SASL: the failure says why; the stream stays for STARTTLS.
    s.send(AUTH)
    data = s.read_until(rb"</failure>")
    assert b"<encryption-required/>" in data, data
    assert b"<success" not in data
    s.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    s.read_until(rb"<proceed[^>]*/>")
    to_tls(s, ch.cert)
    features = s.open_stream()
    assert b"<mechanism>PLAIN</mechanism>" in features, features
    s.send(AUTH)
    s.read_until(rb"<success[^>]*(/>|</success>)")
    assert bind(s, "secure") == ch.jid("alice") + "/secure"
    s.close()
    # Nothing of the refused attempt reached the backend: one login only.
    assert ch.backends[0].log_text().count("Authenticated as alice") == 1

    # Anything else in plaintext: the stream ends with policy-violation.
    s = xmpp.RawStream(ch.port_starttls)
    s.open_stream()
    s.send("<message to='bob@example.test'><body>x</body></message>")
    cond, data = s.wait_closed(timeout=5)
    assert cond == "policy-violation", data
    assert b"requires STARTTLS" in data

    c = xmpp.login(ch.jid("bob"), PASSWORD, **ch.client_kw("starttls"))
    assert c.encrypted()
    c.disconnect()
