# test_proxyd_keeps_a_domain_on_an_unsynced_backend.py: a domain on backend a
# stays there while hamon shows a merely `unsynced` (its real spoolsync lost
# its peer: a is alive, only its spool is behind), even though a is not
# eligible and b is: its sessions go on, and new ones still land on a (so the
# domain's users keep seeing each other).  Once a is down for hamon (here: in
# maintenance) the domain moves to b.

import time

import harness
from hamon_helpers import wait_states
from proxyd_helpers import Chain, raw_login
from spoolsync_pair import Pair


def holder(ch):
    return ch.status()["domains"][0]["backend"]


def test_an_unsynced_backend_keeps_its_domain_and_sessions(
        prosody_factory, daemon_factory, workdir):
    pair = Pair(daemon_factory, ("bidirectional", "bidirectional")).start()
    pair.wait_connected()
    pair.wait_in_sync()
    url = f"http://127.0.0.1:{pair.d['a'].http_port}/status"
    ch = Chain(prosody_factory, daemon_factory, workdir, backends=2,
               domains=[{"name": harness.XMPP_DOMAIN, "prefer": "a"}],
               backend_kw={"a": {"checks": ["xmpp", "spoolsync"], "spoolsync": url,
                                 "max_lag": "500ms"}},
               extra={"move_spread": "0s"})
    assert holder(ch) == "a"
    raw, jid = raw_login(ch.port_plain, "alice", resource="before")

    # a's spool falls out of sync: a is alive but no longer eligible.
    pair.stop("b")
    view = wait_states(ch.hamon, {"a": "unsynced", "b": "up"})
    assert [b["eligible"] for b in view["backends"]] == [False, True]
    harness.wait_until(lambda: ch.status()["hamon"]["generation"] ==
                       view["generation"], 5, "proxyd has the unsynced view")
    assert holder(ch) == "a"
    time.sleep(0.5)
    raw.send(f"<message to='{jid}' type='chat'><body>still here</body></message>")
    assert b"still here" in raw.read_until(rb"</message>"), "the session must go on"
    fresh, fresh_jid = raw_login(ch.port_plain, "bob", resource="during")
    backends = {s["jid"]: s["backend"] for s in ch.sessions() if s["jid"]}
    assert backends == {jid: "a", fresh_jid: "a"}, backends
    assert ch.status()["moves"]["ended"] == 0
    # hamon's view says a holds: a proxy started only now, which never saw
    # a up, places the domain on a too (every proxy agrees).
    assert view["backends"][0]["holds"] is True, view
    cfg = {k: v for k, v in ch.proxyd.config.items()
           if k not in ("control", "http", "listen")}
    cfg["listen"] = [{"address": f"127.0.0.1:{harness.free_port()}", "tls": "none"}]
    late = daemon_factory("proxyd", cfg)
    harness.wait_until(lambda: late.status()["hamon"]["view_received"], 10,
                       "the late proxy has hamon's view")
    assert late.status()["domains"][0]["backend"] == "a"
    late.stop()

    # In sync again: up, nothing moved.
    pair.start("b")
    pair.wait_in_sync()
    wait_states(ch.hamon, {"a": "up", "b": "up"})
    assert holder(ch) == "a"

    # Out of sync, then taken out: now it moves (move_spread 0: at once).
    pair.stop("b")
    wait_states(ch.hamon, {"a": "unsynced"})
    assert ch.hamon.cli("maint", "a").returncode == 0
    harness.wait_until(lambda: holder(ch) == "b", 5, "the domain moved to b")
    cond, data = raw.wait_closed(timeout=5)
    assert cond == "system-shutdown" and b"moved" in data, data
    again, again_jid = raw_login(ch.port_plain, "alice", resource="after")
    assert {s["backend"] for s in ch.sessions() if s["jid"]} == {"b"}
    pair.start("b")
    for s in (fresh, again):
        s.close()
