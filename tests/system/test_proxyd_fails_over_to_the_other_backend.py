# test_proxyd_fails_over_to_the_other_backend.py: two Prosody backends (users
# registered on both), a real hamon, proxyd in front.  kill -9 the backend that
# holds the domain: its sessions end with system-shutdown, hamon marks it down,
# and a reconnect lands on the survivor.  A backend taken out by hamon alone
# (maint, the process still alive) moves its sessions the same way: the view
# decides, not the TCP connection.  With no backend eligible a new client gets
# a stream error at once.

import time

import harness
import xmpp
from hamon_helpers import wait_states
from proxyd_helpers import PASSWORD, Chain, raw_login


def holder(ch):
    return ch.status()["domains"][0]["backend"]


def test_kill9_of_the_backend_moves_clients_to_the_survivor(
        prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir, backends=2)
    first = holder(ch)
    other = "b" if first == "a" else "a"
    alice = xmpp.login(ch.jid("alice"), PASSWORD, **ch.client_kw("starttls"))
    raw, jid = raw_login(ch.port_plain, "bob")
    assert {s["backend"] for s in ch.sessions() if s["jid"]} == {first}

    ch.backends[ch.names.index(first)].kill9()
    data = raw.read_all(timeout=5)
    assert xmpp.parse_stream_error(data) == "system-shutdown", data
    assert raw.eof
    harness.wait_until(lambda: not alice.connected(), 5, "alice's session ended")
    wait_states(ch.hamon, {first: "down", other: "up"})
    harness.wait_until(lambda: holder(ch) == other, 5, "proxyd sees the new view")

    t0 = time.monotonic()
    again = xmpp.login(ch.jid("alice"), PASSWORD, **ch.client_kw("direct"))
    assert time.monotonic() - t0 < 3
    sessions = [s for s in ch.sessions() if s["jid"]]
    assert [s["backend"] for s in sessions] == [other], sessions
    again.send_message(ch.jid("alice"), "still here")
    assert again.wait_message(frm=ch.jid("alice")).body == "still here"
    again.disconnect()


def test_view_change_alone_ends_sessions_with_system_shutdown(
        prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir, backends=2)
    first = holder(ch)
    other = "b" if first == "a" else "a"
    raw, jid = raw_login(ch.port_plain, "alice")
    r = ch.hamon.cli("maint", first)
    assert r.returncode == 0, r.stdout + r.stderr
    data = raw.read_all(timeout=5)
    assert xmpp.parse_stream_error(data) == "system-shutdown", data
    assert b"moved" in data
    harness.wait_until(lambda: holder(ch) == other, 5, "domain moved")
    raw2, jid2 = raw_login(ch.port_plain, "alice")
    assert [s["backend"] for s in ch.sessions() if s["jid"]] == [other]

    # Nothing eligible: a new stream is told at once, never left hanging.
    assert ch.hamon.cli("maint", other).returncode == 0
    data = raw2.read_all(timeout=5)
    assert xmpp.parse_stream_error(data) == "system-shutdown", data
    harness.wait_until(lambda: holder(ch) is None, 5, "no placement")
    s = xmpp.RawStream(ch.port_plain)
    t0 = time.monotonic()
    s.send(harness.stream_header())
    data = s.read_all(timeout=3)
    assert time.monotonic() - t0 < 1, "the error must come at once"
    assert xmpp.parse_stream_error(data) == "system-shutdown", data
    assert b"no backend is available" in data
    assert ch.status()["no_backend"] >= 1
