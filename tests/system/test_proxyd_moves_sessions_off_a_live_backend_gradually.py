# test_proxyd_moves_sessions_off_a_live_backend_gradually.py: two Prosody
# backends, a real hamon, proxyd in front.  A domain that prefers a sits on b
# while a is in maintenance; when a comes back, the domain moves to it while b
# is still alive: new clients land on a at once, the clients still on b are
# ended spread over move_spread (not all at once: no thundering herd on a),
# each with a stream error saying the domain moved, and they all log in again
# on a.  A session waiting for its turn ends at once if b then dies.

import re
import threading
import time

import harness
import xmpp
from hamon_helpers import wait_states
from proxyd_helpers import Chain, raw_login

N = 10
SPREAD = 4.0


def holder(ch):
    return ch.status()["domains"][0]["backend"]


def chain_on_b(prosody_factory, daemon_factory, workdir, spread):
    ch = Chain(prosody_factory, daemon_factory, workdir, backends=2,
               domains=[{"name": harness.XMPP_DOMAIN, "max_connections": 1000,
                         "prefer": "a"}],
               extra={"move_spread": f"{int(spread * 1000)}ms"})
    assert ch.hamon.cli("maint", "a").returncode == 0
    harness.wait_until(lambda: holder(ch) == "b", 5, "the domain on b")
    return ch


class Watch(threading.Thread):
    """Reads one stream to its end and notes when that came."""

    def __init__(self, raw, timeout):
        super().__init__(daemon=True)
        self.raw, self.timeout = raw, timeout
        self.data, self.ended = b"", None
        self.start()

    def run(self):
        self.data = self.raw.read_all(timeout=self.timeout)
        if self.raw.eof:
            self.ended = time.monotonic()


def login_many(ch, n):
    clients = [raw_login(ch.port_plain, "alice", resource=f"r{i}") for i in range(n)]
    assert {s["backend"] for s in ch.sessions() if s["jid"]} == {"b"}
    return clients


def metric(ch, name):
    text = ch.proxyd.http_get("/metrics").body
    if isinstance(text, bytes):
        text = text.decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"no {name} in /metrics"
    return float(m.group(1))


def test_failback_ends_sessions_on_the_live_backend_over_the_window(
        prosody_factory, daemon_factory, workdir):
    ch = chain_on_b(prosody_factory, daemon_factory, workdir, SPREAD)
    clients = login_many(ch, N)
    watches = [Watch(raw, SPREAD + 10) for raw, _ in clients]

    assert ch.hamon.cli("ready", "a").returncode == 0
    wait_states(ch.hamon, {"a": "up", "b": "up"})
    harness.wait_until(lambda: holder(ch) == "a", 5, "the domain moved to a")
    t_move = time.monotonic()

    # New clients go to a at once, while the old ones are still on b.
    st = ch.status()
    assert st["moves"]["pending"] > 0, st["moves"]
    assert st["domains"][0]["moves_pending"] > 0
    assert metric(ch, "proxyd_moves_pending") > 0
    fresh, _ = raw_login(ch.port_plain, "alice", resource="fresh")
    by_res = {s["jid"].split("/")[1]: s for s in ch.sessions() if s["jid"]}
    assert by_res["fresh"]["backend"] == "a"
    still = [r for r, s in by_res.items() if s["backend"] == "b"]
    assert len(still) >= N // 2, f"most old sessions should still wait: {by_res}"
    assert all("move_in_ms" in by_res[r] for r in still)

    for w in watches:
        w.join(SPREAD + 12)
    ends = sorted(w.ended for w in watches)
    assert all(e is not None for e in ends), "every old session must end"
    for w in watches:
        assert xmpp.parse_stream_error(w.data) == "system-shutdown", w.data
        assert b"moved" in w.data, w.data
    first = ends[0]
    # Spread over the window: not all in its first 10 %, and none late.
    assert sum(1 for e in ends if e - first <= SPREAD * 0.1) < N / 2, \
        [round(e - first, 2) for e in ends]
    assert ends[-1] - first >= SPREAD * 0.6, [round(e - first, 2) for e in ends]
    assert ends[-1] - t_move <= SPREAD + 2

    # Everyone logs in again, on a.
    again = [raw_login(ch.port_plain, "alice", resource=f"r{i}") for i in range(N)]
    sessions = [s for s in ch.sessions() if s["jid"]]
    assert len(sessions) == N + 1
    assert {s["backend"] for s in sessions} == {"a"}, sessions
    st = ch.status()
    assert st["moves"]["pending"] == 0 and st["moves"]["ended"] >= N
    assert metric(ch, "proxyd_moves_pending") == 0
    assert metric(ch, "proxyd_moved_sessions_total") >= N
    for raw, _ in again + [(fresh, None)]:
        raw.close()


def test_a_session_waiting_for_its_turn_ends_at_once_when_its_backend_dies(
        prosody_factory, daemon_factory, workdir):
    ch = chain_on_b(prosody_factory, daemon_factory, workdir, 120.0)
    clients = login_many(ch, 4)
    watches = [Watch(raw, 30) for raw, _ in clients]
    assert ch.hamon.cli("ready", "a").returncode == 0
    harness.wait_until(lambda: ch.status()["moves"]["pending"] == 3, 5,
                       "three sessions wait (the first went at once)")

    # b hangs: its connections stay open, only hamon's view says it is down.
    ch.backends[1].sigstop()
    try:
        wait_states(ch.hamon, {"b": "down"})
        t_down = time.monotonic()
        for w in watches:
            w.join(10)
        assert all(w.ended is not None for w in watches)
        assert max(w.ended for w in watches) - t_down < 3
        for w in watches:
            assert xmpp.parse_stream_error(w.data) == "system-shutdown", w.data
        assert ch.status()["moves"]["pending"] == 0
    finally:
        ch.backends[1].sigcont()
