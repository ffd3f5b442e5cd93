# test_proxyd_reload_changes_domains_and_listeners.py: a reload (SIGHUP) adds a
# domain and a listener and drops another listener, while established sessions
# go on; a reload that cannot bind its new address is refused and the running
# config stays.

import socket

import harness
import xmpp
from proxyd_helpers import Chain, raw_login


def features_or_error(port, to):
    s = xmpp.RawStream(port)
    s.send(harness.stream_header(to))
    data = s.read_until(rb"</stream:features>|</stream:error>")
    s.sock.close()
    return data


def test_reload_adds_a_domain_and_a_listener(prosody_factory, daemon_factory,
                                             workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir,
               prosody_kw={"extra_hosts": ("other.test",)})
    raw, jid = raw_login(ch.port_plain, "alice")
    assert xmpp.parse_stream_error(features_or_error(ch.port_plain, "other.test")) \
        == "host-unknown"

    new_port = harness.free_port()
    config = dict(ch.proxyd.config)
    config["domains"] = config["domains"] + [{"name": "other.test"}]
    config["listen"] = [l for l in config["listen"] if l["tls"] != "direct"] + \
        [{"address": f"127.0.0.1:{new_port}", "tls": "none"}]
    ch.proxyd.write_config(config)
    mark = ch.proxyd.log_mark()
    ch.proxyd.reload()
    ch.proxyd.wait_log(r"reload", since=mark, what="the reload")
    harness.wait_until(lambda: ch.status()["reloads"] == 1, 5, "reloaded")

    assert b"<stream:features" in features_or_error(ch.port_plain, "other.test")
    assert b"<stream:features" in features_or_error(new_port, harness.XMPP_DOMAIN)
    try:
        socket.create_connection(("127.0.0.1", ch.port_direct), timeout=1).close()
        assert False, "the dropped listener still accepts"
    except OSError:
        pass
    # The session from before the reload still works.
    raw.send(f"<message to='{jid}' id='x'><body>after reload</body></message>")
    raw.read_until(rb"after reload")

    # A listener that cannot be bound: refused, the running config stays.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    bad = dict(config)
    bad["listen"] = config["listen"] + [
        {"address": f"127.0.0.1:{busy.getsockname()[1]}", "tls": "none"}]
    ch.proxyd.write_config(bad)
    ch.proxyd.reload()
    harness.wait_until(lambda: ch.status()["reload_failures"] == 1, 5, "refused")
    assert ch.status()["last_reload_error"]
    assert b"<stream:features" in features_or_error(new_port, "other.test")
    busy.close()


def test_reload_with_a_new_preference_moves_the_domain_gracefully(
        prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir, backends=2,
               domains=[{"name": harness.XMPP_DOMAIN, "prefer": "a"}],
               extra={"move_spread": "1s"})
    raw, jid = raw_login(ch.port_plain, "alice")
    assert [s["backend"] for s in ch.sessions() if s["jid"]] == ["a"]

    config = dict(ch.proxyd.config)
    config["domains"] = [{"name": harness.XMPP_DOMAIN, "prefer": "b"}]
    ch.proxyd.write_config(config)
    ch.proxyd.reload()
    harness.wait_until(lambda: ch.status()["reloads"] == 1, 5, "reloaded")
    assert ch.status()["domains"][0]["backend"] == "b"
    # Not split across two backends: the session on a is ended (it was the
    # only one, so at the start of the window), a new one lands on b.
    cond, data = raw.wait_closed(timeout=5)
    assert cond == "system-shutdown" and b"moved" in data, data
    raw2, jid2 = raw_login(ch.port_plain, "alice")
    assert [s["backend"] for s in ch.sessions() if s["jid"]] == ["b"]
    raw2.close()
