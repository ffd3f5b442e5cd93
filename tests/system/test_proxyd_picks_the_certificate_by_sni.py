# test_proxyd_picks_the_certificate_by_sni.py: a domain with its own tls
# {cert, key} is served with that certificate when the client's SNI names it
# (direct TLS and STARTTLS); other names and no SNI get the default one.

import socket
import ssl

import harness
import xmpp
from proxyd_helpers import Chain


def peer_cn(port, sni, cafile, starttls_to=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if sni is None:
        ctx.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    if starttls_to:
        s = xmpp.RawStream.__new__(xmpp.RawStream)
        s.timeout, s.sock, s.buf, s.eof = 5, raw, b"", False
        s.send(harness.stream_header(starttls_to))
        s.read_until(rb"</stream:features>")
        s.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        s.read_until(rb"<proceed[^>]*/>")
    with ctx.wrap_socket(raw, server_hostname=sni) as t:
        cert = t.getpeercert()
    return dict(x[0] for x in cert["subject"])["commonName"]


def test_sni_picks_the_domains_certificate(prosody_factory, daemon_factory, workdir):
    other_cert, other_key = harness.make_cert(workdir, "other.test")
    ch = Chain(prosody_factory, daemon_factory, workdir,
               domains=[{"name": harness.XMPP_DOMAIN},
                        {"name": "other.test",
                         "tls": {"cert": other_cert, "key": other_key}}],
               prosody_kw={"extra_hosts": ("other.test",)})
    assert peer_cn(ch.port_direct, "other.test", other_cert) == "other.test"
    assert peer_cn(ch.port_direct, harness.XMPP_DOMAIN, ch.cert) == harness.XMPP_DOMAIN
    assert peer_cn(ch.port_direct, None, ch.cert) == harness.XMPP_DOMAIN
    assert peer_cn(ch.port_starttls, "other.test", other_cert,
                   starttls_to="other.test") == "other.test"
