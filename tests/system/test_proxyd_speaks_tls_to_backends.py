# test_proxyd_speaks_tls_to_backends.py: with backend_tls, proxyd reaches a real
# Prosody (its own certificate; the tests make the CA) over STARTTLS or direct
# TLS and verifies the certificate.  That Prosody refuses PLAIN on an
# unencrypted connection, so a PLAIN login through proxyd proves the backend
# leg is encrypted.  A certificate that does not verify (another CA, another
# name) ends the client's stream with internal-server-error, is logged, and
# shows in status and metrics; nothing is sent to the backend in the clear.

import harness
import xmpp
from proxyd_helpers import PASSWORD, Chain, raw_login

# The harness sets it true globally; a host's own setting wins (and a second
# global one would be a duplicate Prosody refuses).
TLS_ONLY_PLAIN = f'VirtualHost "{harness.XMPP_DOMAIN}"\nallow_unencrypted_plain_auth = false'



def tls_chain(prosody_factory, daemon_factory, workdir, backend_tls, backends=None):
    """A Chain on a Prosody with a certificate.  BACKEND_TLS and BACKENDS are
    functions of that Prosody (its certificate, its TLS port)."""
    def extra(ch):
        p = ch.backends[0]
        e = {"backend_tls": backend_tls(p)}
        if backends:
            e["backends"] = backends(p)
        return e
    ch = Chain(prosody_factory, daemon_factory, workdir,
               prosody_kw={"tls": True, "extra_config": TLS_ONLY_PLAIN}, extra=extra)
    features = harness.xmpp_features(ch.backends[0].port)
    assert "starttls" in features and ">PLAIN<" not in features, features
    return ch


def plain_login_refused(ch, what):
    s = xmpp.RawStream(ch.port_plain)
    s.send(harness.stream_header())
    cond, data = s.wait_closed(timeout=5)
    assert cond == "internal-server-error", data
    assert b"securely" in data, data
    st = ch.status()["backend_tls"]
    assert st["failures"] >= 1 and what in (st["last_error"] or ""), st
    m = ch.proxyd.http_get("/metrics").body
    assert "proxyd_backend_tls_failures_total" in m
    ch.proxyd.wait_log(what, what="the TLS failure logged")
    r = ch.proxyd.cli("status")
    assert "backend TLS:" in r.stdout and what in r.stdout, r.stdout


def test_starttls_to_the_backend_with_a_verified_certificate(
        prosody_factory, daemon_factory, workdir):
    ch = tls_chain(prosody_factory, daemon_factory, workdir,
                   lambda p: {"mode": "starttls", "ca": p.cert_path, "verify": True})
    raw, jid = raw_login(ch.port_plain, "alice")
    assert jid.startswith(ch.jid("alice") + "/")
    raw.send(f"<message to='{jid}' type='chat'><body>é 漢字 &lt;&amp;&gt;</body></message>")
    assert "é 漢字 &lt;&amp;&gt;".encode() in raw.read_until(rb"</message>")
    # A slixmpp client over proxyd's own direct TLS: TLS on both legs.
    c = xmpp.login(ch.jid("bob"), PASSWORD, **ch.client_kw("direct"))
    c.send_message(ch.jid("bob"), "both legs encrypted")
    assert c.wait_message(frm=ch.jid("bob")).body == "both legs encrypted"
    c.disconnect()
    assert ch.status()["backend_tls"] == {"failures": 0, "last_error": None}
    raw.close()


def test_direct_tls_to_the_backend_on_its_own_port(
        prosody_factory, daemon_factory, workdir):
    ch = tls_chain(prosody_factory, daemon_factory, workdir,
                   lambda p: {"mode": "none"},
                   lambda p: [{"name": "a", "tls": {"mode": "direct", "ca": p.cert_path,
                                                    "port": p.tls_port}}])
    raw, jid = raw_login(ch.port_plain, "alice")
    assert jid.startswith(ch.jid("alice") + "/")
    raw.close()


def test_a_certificate_from_another_ca_is_refused(
        prosody_factory, daemon_factory, workdir):
    other_ca, _ = harness.make_cert(workdir, "other-ca.test")
    ch = tls_chain(prosody_factory, daemon_factory, workdir,
                   lambda p: {"mode": "starttls", "ca": other_ca})
    plain_login_refused(ch, "certificate verification failed")
    # Nothing of the client's stream reached Prosody: it saw no login.
    assert "alice" not in ch.backends[0].log_text()


def test_a_certificate_for_another_name_is_refused(
        prosody_factory, daemon_factory, workdir):
    ch = tls_chain(prosody_factory, daemon_factory, workdir,
                   lambda p: {"mode": "starttls", "ca": p.cert_path,
                              "name": "not-the-backend.test"})
    plain_login_refused(ch, "hostname mismatch")


def test_verify_false_accepts_any_certificate(
        prosody_factory, daemon_factory, workdir):
    other_ca, _ = harness.make_cert(workdir, "other-ca.test")
    ch = tls_chain(prosody_factory, daemon_factory, workdir,
                   lambda p: {"mode": "starttls", "ca": other_ca, "verify": False})
    raw, jid = raw_login(ch.port_plain, "alice")
    raw.close()


def test_a_backend_that_offers_no_starttls_is_refused(
        prosody_factory, daemon_factory, workdir):
    # A plain Prosody (no tls module) while proxyd insists on STARTTLS.
    ch = Chain(prosody_factory, daemon_factory, workdir,
               extra={"backend_tls": {"mode": "starttls"}})
    plain_login_refused(ch, "does not offer STARTTLS")
