# test_proxyd_answers_first_stream_itself.py: once proxyd has seen a backend's
# features for a domain, it answers a client's first stream itself with them
# and connects to the backend only at the client's first stanza, so idle
# unauthenticated clients hold no backend session; logins through that path
# work, over plain and over STARTTLS.

import re
import subprocess
import time

import harness
import xmpp
from proxyd_helpers import PASSWORD, Chain

IDLE = 200


def backend_conns(proxyd_pid, port):
    """proxyd's established TCP connections to the backend's port."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    return sum(1 for line in out.splitlines() if f"pid={proxyd_pid}," in line)


def features_of(data):
    m = re.search(rb"<stream:features>.*</stream:features>", data, re.S)
    assert m, data
    return m.group(0)


def first_stream(port):
    s = xmpp.RawStream(port)
    s.send(harness.stream_header())
    return s, features_of(s.read_until(rb"</stream:features>"))


def test_idle_first_streams_hold_no_backend_connection(prosody_factory, daemon_factory,
                                                       workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir)
    pid, bport = ch.proxyd.pid, ch.backends[0].port
    assert backend_conns(pid, bport) == 0

    # The first client ever: proxyd has no features to give, the backend does.
    s, relayed = first_stream(ch.port_plain)
    assert b"<mechanisms" in relayed and b"PLAIN" in relayed, relayed
    assert backend_conns(pid, bport) == 1
    s.close()
    harness.wait_until(lambda: backend_conns(pid, bport) == 0, 5,
                       "the first client's backend connection closed")

    # Many more first streams: answered by proxyd alone, with the same offer.
    idle = []
    for _ in range(IDLE):
        c, offered = first_stream(ch.port_plain)
        assert offered == relayed, (offered, relayed)
        idle.append(c)
    assert len(ch.sessions()) == IDLE
    assert all(x["backend"] in (None, "") for x in ch.sessions()), ch.sessions()[:3]
    assert backend_conns(pid, bport) == 0, "idle unauthenticated clients hold " \
        "backend connections"

    # One of them authenticates: now, and only now, the backend is connected,
    # and the exchange is the backend's own (its <success/>, its bind).
    import base64
    c = idle.pop()
    token = base64.b64encode(b"\0alice\0" + PASSWORD.encode()).decode()
    c.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
    c.read_until(rb"<success[^>]*(/>|</success>)")
    c.send(harness.stream_header())
    c.read_until(rb"</stream:features>")
    c.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
           "<resource>lazy</resource></bind></iq>")
    assert b"alice@example.test/lazy" in c.read_until(rb"</iq>")
    assert backend_conns(pid, bport) == 1
    harness.wait_until(lambda: ch.jid("alice") + "/lazy" in
                       [x["jid"] for x in ch.sessions()], 5, "the session listed")

    # A wrong password still gets the backend's own failure.
    c2 = idle.pop()
    bad = base64.b64encode(b"\0bob\0wrong").decode()
    c2.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{bad}</auth>")
    assert b"not-authorized" in c2.read_until(rb"</failure>")

    # A real client over STARTTLS, meanwhile: its first stream is proxyd's too
    # (with <starttls/> offered), then TLS, then the backend.
    bob = xmpp.login(ch.jid("bob"), PASSWORD, **ch.client_kw("starttls"))
    bob.send_message(ch.jid("alice") + "/lazy", "hello é 漢字 <&>")
    got = c.read_until(rb"</message>")
    assert "hello é 漢字 &lt;&amp;&gt;".encode() in got, got
    bob.disconnect()
    for x in idle + [c, c2]:
        x.close()


def test_starttls_first_stream_offers_tls_from_the_cache(prosody_factory, daemon_factory,
                                                        workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir)
    pid, bport = ch.proxyd.pid, ch.backends[0].port
    s, relayed = first_stream(ch.port_starttls)
    assert b"<starttls" in relayed and b"<mechanisms" in relayed, relayed
    s.close()
    harness.wait_until(lambda: backend_conns(pid, bport) == 0, 5, "closed")
    s, cached = first_stream(ch.port_starttls)
    assert cached == relayed
    assert backend_conns(pid, bport) == 0
    # STARTTLS taken from the cached offer, then a login: the backend is
    # reached only after TLS and the restarted stream.
    alice = xmpp.login(ch.jid("alice"), PASSWORD, **ch.client_kw("starttls"))
    t0 = time.monotonic()
    alice.send_message(ch.jid("alice"), "to myself")
    assert alice.wait_message(frm=ch.jid("alice")).body == "to myself"
    assert time.monotonic() - t0 < 5
    assert backend_conns(pid, bport) == 1
    alice.disconnect()
    s.close()
