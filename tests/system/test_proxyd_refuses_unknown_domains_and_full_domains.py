# test_proxyd_refuses_unknown_domains_and_full_domains.py: a stream to a domain
# proxyd does not serve gets host-unknown (on every kind of listener), and one
# past a domain's max_connections gets policy-violation saying so; the others
# go on being served.

import ssl
import socket

import harness
import xmpp
from proxyd_helpers import PASSWORD, Chain


def header(to):
    return harness.stream_header(to)


def test_unknown_domain_gets_host_unknown(prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir)
    for port in (ch.port_plain, ch.port_starttls):
        s = xmpp.RawStream(port)
        s.send(header("nowhere.test"))
        data = s.read_all(timeout=3)
        assert xmpp.parse_stream_error(data) == "host-unknown", data
        assert s.eof, "proxyd must close the stream"
    # Direct TLS too.
    ctx = ssl.create_default_context(cafile=ch.cert)
    with socket.create_connection(("127.0.0.1", ch.port_direct), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=harness.XMPP_DOMAIN) as t:
            t.sendall(header("nowhere.test").encode())
            data = b""
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    break
                data += chunk
    assert xmpp.parse_stream_error(data) == "host-unknown", data
    # A stream with no 'to' at all.
    s = xmpp.RawStream(ch.port_plain)
    s.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
           "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
    assert xmpp.parse_stream_error(s.read_all(timeout=3)) == "host-unknown"
    # proxyd still serves the real domain.
    c = xmpp.login(ch.jid("alice"), PASSWORD, **ch.client_kw("starttls"))
    c.disconnect()


def test_max_connections_gives_policy_violation(prosody_factory, daemon_factory,
                                                workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir,
               domains=[{"name": harness.XMPP_DOMAIN, "max_connections": 2}])
    held = []
    for _ in range(2):
        s = xmpp.RawStream(ch.port_plain)
        s.send(header(harness.XMPP_DOMAIN))
        s.read_until(rb"</stream:features>")
        held.append(s)
    third = xmpp.RawStream(ch.port_plain)
    third.send(header(harness.XMPP_DOMAIN))
    data = third.read_all(timeout=3)
    assert xmpp.parse_stream_error(data) == "policy-violation", data
    assert b"max_connections 2" in data, data
    # The two held streams are untouched; closing one makes room.
    for s in held:
        s.send(" ")
    held[0].send("</stream:stream>")
    held[0].read_all(timeout=3)
    harness.wait_until(lambda: ch.status()["sessions"] == 1, 5, "one session left")
    c = xmpp.login(ch.jid("alice"), PASSWORD, **ch.client_kw("direct"))
    c.disconnect()
    st = ch.status()
    assert st["refused"] == 1, st
