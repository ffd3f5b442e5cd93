# test_proxyd_session_limits.py: the per-connection limits proxyd enforces
# itself: stanzas_per_second (a token bucket), stanza_timeout (a stanza left
# unfinished: slowloris) and auth_timeout (never authenticates); each gets
# policy-violation with a text naming it, and other sessions go on.

import time

import harness
import xmpp
from proxyd_helpers import PASSWORD, Chain, raw_login

LIMITS = {"stanzas_per_second": 5, "stanza_timeout": "1s", "auth_timeout": "2s"}


def chain(prosody_factory, daemon_factory, workdir):
    return Chain(prosody_factory, daemon_factory, workdir, limits=LIMITS)


def test_stanza_rate_over_the_limit_is_refused(prosody_factory, daemon_factory,
                                               workdir):
    ch = chain(prosody_factory, daemon_factory, workdir)
    s, jid = raw_login(ch.port_plain, "alice")
    s.send("".join(f"<message to='{jid}' id='m{i}'><body>{i}</body></message>"
                   for i in range(30)))
    data = s.read_all(timeout=3)
    assert xmpp.parse_stream_error(data) == "policy-violation", data
    assert b"stanzas per second" in data
    # A client within the rate is fine.
    ok, jid2 = raw_login(ch.port_plain, "bob")
    for i in range(4):
        ok.send(f"<message to='{jid2}' id='n{i}'><body>{i}</body></message>")
        time.sleep(0.25)
    ok.read_until(rb"<body>3</body>")


def test_unfinished_stanza_times_out(prosody_factory, daemon_factory, workdir):
    ch = chain(prosody_factory, daemon_factory, workdir)
    s, jid = raw_login(ch.port_plain, "alice")
    t0 = time.monotonic()
    s.send("<message to='bob@example.test'><bo")
    data = s.read_all(timeout=5)
    took = time.monotonic() - t0
    assert xmpp.parse_stream_error(data) == "policy-violation", data
    assert b"unfinished" in data
    assert 1.0 <= took <= 3.0, took


def test_connection_that_never_authenticates_times_out(prosody_factory,
                                                       daemon_factory, workdir):
    ch = chain(prosody_factory, daemon_factory, workdir)
    s = xmpp.RawStream(ch.port_plain)
    s.send(harness.stream_header())
    s.read_until(rb"</stream:features>")
    t0 = time.monotonic()
    data = s.read_all(timeout=6)
    took = time.monotonic() - t0
    assert xmpp.parse_stream_error(data) == "policy-violation", data
    assert b"not authenticated" in data
    assert took <= 4.0, took
    # An authenticated session outlives auth_timeout.
    ok, jid = raw_login(ch.port_plain, "bob")
    time.sleep(3)
    ok.send(f"<message to='{jid}' id='late'><body>late</body></message>")
    ok.read_until(rb"<body>late</body>")


def test_a_domains_own_limits_apply_after_login(prosody_factory, daemon_factory,
                                                workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir,
               domains=[{"name": harness.XMPP_DOMAIN,
                         "limits": {"stanza_bytes": "2KiB"}},
                        {"name": "other.test"}],
               prosody_kw={"extra_hosts": ("other.test",)})
    ch.backends[0].register("bob", PASSWORD, host="other.test")
    s, jid = raw_login(ch.port_plain, "alice")
    s.send(f"<message to='{jid}' id='small'><body>{'x' * 1000}</body></message>")
    s.read_until(rb"id=.small.")
    s.send(f"<message to='{jid}' id='big'><body>{'y' * 3000}</body></message>")
    data = s.read_all(timeout=3)
    assert xmpp.parse_stream_error(data) == "policy-violation", data
    assert b"stanza_bytes" in data or b"stanza" in data, data
    assert b"yyyy" not in data, "nothing of the refused stanza may come back"
    # The global default (256 KiB) still holds on a domain without its own.
    ok, jid2 = raw_login(ch.port_plain, "bob", domain="other.test")
    ok.send(f"<message to='{jid2}' id='big2'><body>{'z' * 3000}</body></message>")
    ok.read_until(rb"id=.big2.")
