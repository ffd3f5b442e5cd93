# test_chain_whole_host_death.py: a whole backend host dies (its Prosody and its
# spoolsync, kill -9 at once).  The survivor's spoolsync loses its peer link,
# but had caught up before: hamon keeps the survivor up (its peer's backend is
# down, so nothing newer exists anywhere), proxyd moves the domain there, and
# clients log in again within 3 s and find their roster and offline messages.
# When the host returns it gets no domain until its spoolsync has caught up.

import json
import os
import time


import harness
import xmpp
from test_chain_failover_loses_nothing import DOMAIN, PW, TEXT, relogin


def test_a_dead_host_leaves_its_survivor_eligible_and_loses_nothing(cluster):
    c = cluster
    alice, bob = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
    c.register("alice", PW)
    c.register("bob", PW)
    a = xmpp.login(alice, PW, **c.client_kw("starttls"))
    host = c.holder()
    survivor = "b" if host == "a" else "a"

    bodies = [f"to bob, offline {i}: {TEXT}" for i in range(3)]
    for body in bodies:
        a.send_message(bob, body)
    a.send_raw(f"<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
               f"<item jid='{bob}' name='Bob'/></query></iq>")
    harness.wait_until(lambda: bob in a.get_roster(), 5, "bob in alice's roster")
    offline = os.path.join(DOMAIN.replace(".", "%2e"), "offline", "bob.list")
    harness.wait_until(lambda: os.path.exists(c.pair.path(host, offline)), 5,
                       "bob's offline messages stored")
    c.pair.wait_in_sync()
    c.pair.wait_same()
    st = c.pair.peer_status(survivor, host)
    assert st["caught_up"] is True, st

    # The whole host dies: its spoolsync and its Prosody, at once.
    t_kill = time.monotonic()
    c.pair.d[host].proc.kill9()
    c.prosody[host].kill9()
    harness.wait_until(lambda: not a.connected(), 5, "alice's session ended")
    a2, t_back = relogin(alice, c.client_kw("starttls"), 5)
    reconnect = t_back - t_kill
    print(f"\nCHAIN: whole host {host} killed; alice logged in again on "
          f"{c.holder()} after {reconnect:.3f}s")
    assert reconnect < 3, f"reconnect took {reconnect:.3f}s"
    assert c.holder() == survivor
    assert a2.get_roster().get(bob, {}).get("name") == "Bob"
    b = xmpp.login(bob, PW, **c.client_kw("direct"))
    assert [b.wait_message(frm=alice, timeout=5).body for _ in bodies] == bodies

    # It stays so: hamon says why, and the survivor is eligible throughout.
    r = c.hamon.cli("status", "--json")      # exit 1: degraded
    view = {x["name"]: x for x in json.loads(r.stdout)["backends"]}
    assert view[host]["state"] == "down", view
    assert view[survivor]["state"] == "up" and view[survivor]["eligible"], view
    assert f"peer {host} gone" in (view[survivor]["last_error"] or ""), view
    st = c.pair.peer_status(survivor, host)
    assert st["connected"] is False and st["caught_up"] is True, st
    assert st["down_ms"] is not None and st["down_ms"] > 0, st

    # New writes on the survivor while the host is away.
    b.send_message(alice, "while you were away " + TEXT)
    assert a2.wait_message(frm=bob).body == "while you were away " + TEXT
    a2.disconnect()
    b.disconnect()

    # The host returns, Prosody first: alive but its spool unproven, so the
    # domain stays put; the survivor, whose peer's backend is now serving
    # nothing (unsynced), stays up.
    c.prosody[host].start()
    t_end = time.monotonic() + 2
    while time.monotonic() < t_end:
        states = c.hamon_states()
        assert states[host] != "up", states
        assert states[survivor] == "up", states
        assert c.holder() == survivor
        time.sleep(0.1)
    c.pair.start(host)
    c.pair.wait_in_sync()
    harness.wait_until(lambda: c.hamon_states() == {"a": "up", "b": "up"}, 10,
                       "both backends up")
    c.pair.wait_same()
    a3, _ = relogin(alice, c.client_kw("direct"), 10)
    assert a3.get_roster().get(bob, {}).get("name") == "Bob"
