# test_proxyd_clients_talk_through_tls.py: slixmpp clients log in through proxyd
# (STARTTLS and direct TLS, certificate verified against the test CA) to a real
# Prosody chosen from hamon's view, and exchange messages and presence; unicode
# and XML-special characters arrive intact; sessions lists them.  Once bound,
# the clients' stanzas are written from their bytes and Prosody's pass as
# theirs (the counts in sessions say so).

import harness
import xmpp
from proxyd_helpers import PASSWORD, Chain

TEXT = "é ü 漢字 🎉 <&>\"' ]]> tab\tend"


def test_starttls_and_direct_tls_clients_exchange_messages_and_presence(
        prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir)
    alice = xmpp.login(ch.jid("alice"), PASSWORD, **ch.client_kw("starttls"))
    bob = xmpp.login(ch.jid("bob"), PASSWORD, **ch.client_kw("direct"))
    assert alice.encrypted() and bob.encrypted()

    alice.send_message(ch.jid("bob"), TEXT)
    m = bob.wait_message(frm=ch.jid("alice"))
    assert m.body == TEXT
    bob.send_message(ch.jid("alice"), "back " + TEXT)
    assert alice.wait_message(frm=ch.jid("bob")).body == "back " + TEXT

    alice.send_presence(pto=ch.jid("bob"), pstatus="here: " + TEXT)
    p = bob.wait_presence(frm=ch.jid("alice"))
    assert p.status == "here: " + TEXT

    sessions = ch.sessions()
    by_jid = {s["jid"]: s for s in sessions if s["jid"]}
    assert set(j.split("/")[0] for j in by_jid) == {ch.jid("alice"), ch.jid("bob")}
    for s in by_jid.values():
        assert s["domain"] == harness.XMPP_DOMAIN
        assert s["backend"] == "a"
        assert s["client"].startswith("127.0.0.1:")
        assert s["tls"] is True
        assert s["bytes_in"] > 0 and s["bytes_out"] > 0
        assert s["stanzas_in"] > 0 and s["stanzas_out"] > 0
        # slixmpp's message and presence took no parser on the way in, and
        # Prosody's none on the way out
        assert 2 <= s["stanzas_in_written"] <= s["stanzas_in"], s
        assert 2 <= s["stanzas_out_passed"] <= s["stanzas_out"], s
        assert s["user"] in ("alice", "bob")
    assert ch.sessions("--domain", "other.test") == []
    alice.disconnect()
    bob.disconnect()


def test_backend_starttls_offer_is_not_passed_on(prosody_factory, daemon_factory,
                                                 workdir):
    # A backend that offers STARTTLS itself: proxyd talks plain XMPP to it and
    # must not offer the client a second TLS layer.
    ch = Chain(prosody_factory, daemon_factory, workdir, prosody_kw={"tls": True})
    assert "urn:ietf:params:xml:ns:xmpp-tls" in harness.xmpp_features(
        ch.backends[0].port)
    s = xmpp.RawStream(ch.port_plain)
    s.send(harness.stream_header())
    features = s.read_until(rb"</stream:features>")
    assert b"xmpp-tls" not in features and b"starttls" not in features, features
    assert b"mechanisms" in features, features
    c = xmpp.login(ch.jid("alice"), PASSWORD, **ch.client_kw("starttls"))
    c.send_message(ch.jid("alice"), "hello")
    assert c.wait_message(frm=ch.jid("alice")).body == "hello"
    c.disconnect()
