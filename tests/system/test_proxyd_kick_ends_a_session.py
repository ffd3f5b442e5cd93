# test_proxyd_kick_ends_a_session.py: `proxyd kick JID` ends exactly that session
# (the client sees a stream error), the others stay; a JID with no session is
# an error with exit 1.


import harness
import xmpp
from proxyd_helpers import PASSWORD, Chain, raw_login


def test_kick_ends_that_session_only(prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir)
    alice = xmpp.login(ch.jid("alice"), PASSWORD, **ch.client_kw("starttls"))
    bob = xmpp.login(ch.jid("bob"), PASSWORD, **ch.client_kw("starttls"))
    full = ch.jid("alice") + "/test"
    harness.wait_until(lambda: full in [s["jid"] for s in ch.sessions()], 5,
                       "alice listed")
    r = ch.proxyd.cli("kick", full)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 session" in r.stdout, r.stdout
    harness.wait_until(lambda: not alice.connected(), 5, "alice disconnected")
    jids = [s["jid"] for s in ch.sessions()]
    assert full not in jids
    assert ch.jid("bob") + "/test" in jids
    # Bob still talks to the server.
    bob.send_message(ch.jid("bob"), "to myself")
    assert bob.wait_message(frm=ch.jid("bob")).body == "to myself"
    r = ch.proxyd.cli("kick", "nobody@example.test")
    assert r.returncode == 1 and "no session" in r.stderr, r.stdout + r.stderr
    # A bare JID ends every resource of it.
    r = ch.proxyd.cli("kick", ch.jid("bob"))
    assert r.returncode == 0, r.stderr
    harness.wait_until(lambda: not bob.connected(), 5, "bob disconnected")
    alice.disconnect()
    bob.disconnect()


def test_kicked_client_sees_policy_violation(prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir)
    s, jid = raw_login(ch.port_plain, "alice")
    assert jid == ch.jid("alice") + "/raw"
    r = ch.proxyd.cli("kick", jid)
    assert r.returncode == 0, r.stdout + r.stderr
    data = s.read_all(timeout=3)
    assert xmpp.parse_stream_error(data) == "policy-violation", data
    assert b"administrator" in data and data.rstrip().endswith(b"</stream:stream>")
    assert s.eof
