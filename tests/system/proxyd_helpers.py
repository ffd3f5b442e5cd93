# proxyd_helpers.py: what the proxyd system tests share: Prosody backends, a real
# hamon watching them, and proxyd in front with STARTTLS, direct TLS and plain
# listeners and its own certificate (the tests' CA file).

import json

import harness
from hamon_helpers import backend, hamon_config, wait_states

PASSWORD = "secret-pw"


class Chain:
    """Prosody backends (named a, b, ...) + hamon + proxyd, all started."""

    def __init__(self, prosody_factory, daemon_factory, workdir, backends=1,
                 domains=None, limits=None, require_tls=False, users=("alice", "bob"),
                 extra=None, prosody_kw=None, backend_kw=None):
        self.workdir = workdir
        self.backends = [prosody_factory(**(prosody_kw or {})) for _ in range(backends)]
        self.names = [chr(ord("a") + i) for i in range(backends)]
        for p in self.backends:
            for u in users:
                p.register(u, PASSWORD)
        self.hamon = daemon_factory("hamon", hamon_config(
            workdir, [backend(n, p, **(backend_kw or {}).get(n, {}))
                      for n, p in zip(self.names, self.backends)]))
        wait_states(self.hamon, {n: "up" for n in self.names})
        self.cert, self.key = harness.make_cert(workdir, harness.XMPP_DOMAIN)
        self.port_starttls = harness.free_port()
        self.port_direct = harness.free_port()
        self.port_plain = harness.free_port()
        listen = [{"address": f"127.0.0.1:{self.port_starttls}", "tls": "starttls"},
                  {"address": f"127.0.0.1:{self.port_direct}", "tls": "direct"}]
        if not require_tls:
            listen.append({"address": f"127.0.0.1:{self.port_plain}", "tls": "none"})
        config = {
            "listen": listen,
            "hamon": self.hamon.control,
            "tls": {"cert": self.cert, "key": self.key},
            "require_tls": require_tls,
            "domains": domains or [{"name": harness.XMPP_DOMAIN,
                                    "max_connections": 1000}],
        }
        if limits:
            config["limits"] = limits
        # EXTRA may be a function of the chain: keys that name its backends
        # (a Prosody's certificate, its TLS port).
        config.update((extra(self) if callable(extra) else extra) or {})
        self.proxyd = daemon_factory("proxyd", config)
        harness.wait_until(lambda: self.status()["hamon"]["view_received"], 10,
                           "proxyd has hamon's view")

    def status(self):
        return self.proxyd.status()

    def sessions(self, *args):
        r = self.proxyd.cli("sessions", "--json", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout)

    def jid(self, user):
        return f"{user}@{harness.XMPP_DOMAIN}"

    def client_kw(self, tls="starttls"):
        port = {"starttls": self.port_starttls, "direct": self.port_direct,
                "none": self.port_plain}[tls]
        return {"port": port, "tls": tls, "cafile": self.cert}


def plain_proxyd(daemon_factory, workdir, be, **extra):
    """hamon watching the one backend BE (anything with port and domain) and
    proxyd in front of it on a plain listener, with EXTRA config keys: the
    proxyd daemon and its port, once it has hamon's view."""
    hamon = daemon_factory("hamon", hamon_config(workdir, [backend("a", be)]))
    wait_states(hamon, {"a": "up"})
    port = harness.free_port()
    proxyd = daemon_factory("proxyd", {
        "listen": [{"address": f"127.0.0.1:{port}", "tls": "none"}],
        "hamon": hamon.control,
        "domains": [{"name": be.domain, "max_connections": 0}], **extra})
    harness.wait_until(lambda: proxyd.status()["hamon"]["view_received"], 10,
                       "proxyd has hamon's view")
    return proxyd, port


def raw_login(port, user, password=PASSWORD, resource="raw", domain=None):
    """A plain-listener stream logged in by hand (SASL PLAIN, bind): the
    RawStream and the full JID, so a test sees every byte proxyd sends."""
    import base64
    import re
    import xmpp
    domain = domain or harness.XMPP_DOMAIN
    s = xmpp.RawStream(port)
    s.send(harness.stream_header(domain))
    s.read_until(rb"</stream:features>")
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
    s.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
           f"{token.decode()}</auth>")
    s.read_until(rb"<success[^>]*(/>|</success>)")
    s.send(harness.stream_header(domain))
    s.read_until(rb"</stream:features>")
    s.send(f"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
           f"<resource>{resource}</resource></bind></iq>")
    data = s.read_until(rb"</iq>")
    m = re.search(rb"<jid>([^<]+)</jid>", data)
    assert m, data
    return s, m.group(1).decode()
