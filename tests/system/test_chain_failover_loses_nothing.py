# test_chain_failover_loses_nothing.py: the whole chain (issue 5): two Prosody
# backends on spools mirrored by spoolsync, hamon, proxyd.  Clients talk through
# proxyd over STARTTLS and direct TLS; kill -9 of the backend holding the domain
# costs seconds (measured), not the roster nor the offline messages; the dead
# backend, restarted, gets no domain while its spool is not proven in sync.

import os
import time


import harness
import xmpp

PW = "chain-pw"
TEXT = "é ü 漢字 🎉 <&>\"'"
DOMAIN = harness.XMPP_DOMAIN


def relogin(jid, kw, within):
    """Log in, retrying while the chain is still failing over; (client, when)."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        try:
            return xmpp.login(jid, PW, timeout=2.0, **kw), time.monotonic()
        except xmpp.XMPPError as e:
            last = e
            time.sleep(0.05)
    raise AssertionError(f"{jid} could not log in again within {within}s: {last}")


def test_kill9_of_the_holding_backend_loses_nothing(cluster):
    c = cluster
    alice, bob = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
    c.register("alice", PW)
    c.register("bob", PW)
    # B has never seen these accounts but in its mirrored files: it reads them.
    direct = xmpp.login(alice, PW, port=c.prosody["b"].port, resource="direct")
    direct.disconnect()

    a = xmpp.login(alice, PW, **c.client_kw("starttls"))
    b = xmpp.login(bob, PW, **c.client_kw("direct"))
    assert a.encrypted() and b.encrypted()
    first = c.holder()
    other = "b" if first == "a" else "a"
    assert {s["backend"] for s in c.sessions() if s["jid"]} == {first}

    a.send_message(bob, TEXT)
    assert b.wait_message(frm=alice).body == TEXT
    b.send_message(alice, "↩ " + TEXT)
    assert a.wait_message(frm=bob).body == "↩ " + TEXT
    a.send_presence(pto=b.jid, pstatus=TEXT)
    assert b.wait_presence(frm=alice).status == TEXT
    b.send_presence(pto=a.jid, pshow="away")
    assert a.wait_presence(frm=bob).show == "away"

    # bob goes offline; alice writes to him and adds him to her roster.
    b.disconnect()
    harness.wait_until(lambda: bob not in {s["jid"].split("/")[0]
                                            for s in c.sessions() if s["jid"]},
                       5, "bob's session gone")
    time.sleep(0.3)             # Prosody has unbound him once proxyd closed it
    bodies = [f"offline {i}: {TEXT}" for i in range(3)]
    for body in bodies:
        a.send_message(bob, body)
    a.send_raw(f"<iq type='set' id='roster1'><query xmlns='jabber:iq:roster'>"
               f"<item jid='{bob}' name='Bob'/></query></iq>")
    harness.wait_until(lambda: bob in a.get_roster(), 5, "bob in alice's roster")
    offline = os.path.join(DOMAIN.replace(".", "%2e"), "offline", "bob.list")
    harness.wait_until(lambda: os.path.exists(c.pair.path(first, offline)), 5,
                       "bob's offline messages stored")
    c.pair.wait_in_sync()
    c.pair.wait_same()
    code, data, r = c.pair.audit(first)
    assert code == 0, r.stdout + r.stderr

    # kill -9 the backend holding the domain.
    t_kill = time.monotonic()
    c.prosody[first].kill9()
    harness.wait_until(lambda: not a.connected(), 5, "alice's session ended")
    assert any("system-shutdown" in d for _, _, d in a.events[-3:]), a.events[-3:]
    a2, t_back = relogin(alice, c.client_kw("starttls"), 5)
    reconnect = t_back - t_kill
    print(f"\nCHAIN: alice logged in again {reconnect:.3f}s after kill -9 of {first}")
    assert reconnect < 3, f"reconnect took {reconnect:.3f}s"
    assert c.hamon_states()[first] == "down"
    assert c.holder() == other
    roster = a2.get_roster()
    assert roster.get(bob, {}).get("name") == "Bob", roster

    b2 = xmpp.login(bob, PW, **c.client_kw("direct"))
    got = [b2.wait_message(frm=alice, timeout=5).body for _ in bodies]
    assert got == bodies
    assert {s["backend"] for s in c.sessions() if s["jid"]} == {other}

    # Failback: the dead Prosody restarts on a spool spoolsync kept in sync.
    t0 = time.monotonic()
    c.prosody[first].start()
    harness.wait_until(lambda: c.hamon_states()[first] == "up", 10, f"{first} up")
    t_up = time.monotonic() - t0
    time.sleep(1.0)
    back = c.holder()
    print(f"CHAIN: failback: prosody {first} restarted, up in hamon after {t_up:.3f}s; "
          f"domain now on {back}; alice's session on {other} still open: "
          f"{a2.connected()} (last events {[e[1:] for e in a2.events[-3:]]})")
    if back == first:
        # Failback is graceful: the old backend is alive, so its sessions end over
        # proxyd's move_spread (default 5 s), not all at once.
        harness.wait_until(lambda: not a2.connected() and not b2.connected(), 8,
                           "sessions on the old backend ended within move_spread")
        assert any("system-shutdown" in d for _, _, d in a2.events[-3:]), a2.events[-3:]
        a2, _ = relogin(alice, c.client_kw("starttls"), 5)
        assert a2.get_roster().get(bob, {}).get("name") == "Bob"
        assert {s["backend"] for s in c.sessions() if s["jid"]} == {first}
    a2.disconnect()
    b2.disconnect()

    # Again, but the restarted backend's spoolsync is stopped: its spool is not
    # proven in sync, so it is never up and never given the domain.  The
    # survivor's spoolsync lost its peer link, but had caught up before, and
    # that peer's backend serves nothing: the survivor stays up and serving.
    holder = c.holder()
    survivor = "b" if holder == "a" else "a"
    c.prosody[holder].kill9()
    harness.wait_until(lambda: c.holder() == survivor, 5, f"domain on {survivor}")
    c.pair.stop(holder)
    c.prosody[holder].start()
    t_end = time.monotonic() + 3
    seen, placed = set(), set()
    while time.monotonic() < t_end:
        st = c.hamon_states()
        seen.update(st.items())
        placed.add(c.holder())
        assert st[holder] != "up", st
        assert st[survivor] == "up", st
        time.sleep(0.1)
    assert placed == {survivor}, placed
    xmpp.login(alice, PW, resource="meanwhile", timeout=5.0,
               **c.client_kw("starttls")).disconnect()
    print(f"CHAIN: spoolsync {holder} stopped, prosody {holder} restarted: hamon states "
          f"seen {sorted(seen)}, placements {placed}, a new login: logged in")
    assert (holder, "unsynced") in seen

    # spoolsync catches up: the backend becomes up.
    c.pair.start(holder)
    c.pair.wait_in_sync()
    t0 = time.monotonic()
    harness.wait_until(lambda: c.hamon_states() == {"a": "up", "b": "up"}, 10,
                       "both backends up")
    harness.wait_until(lambda: c.holder() is not None, 5, "the domain placed")
    print(f"CHAIN: both up {time.monotonic() - t0:.3f}s after spoolsync caught up; "
          f"domain on {c.holder()}")
    a3 = xmpp.login(alice, PW, resource="after", **c.client_kw("direct"))
    assert a3.get_roster().get(bob, {}).get("name") == "Bob"
