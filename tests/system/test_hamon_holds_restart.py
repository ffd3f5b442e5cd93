# test_hamon_holds_restart.py: restarting hamon moves no domain.  A backend
# that is `unsynced` after being up holds its domains; the new hamon (stopped
# cleanly or killed, then started again) reads the view state_file kept back
# as the previous one and publishes the backend still holding, so proxyd
# keeps the domain and its sessions there.  Without it (holds_max_age: 0s)
# the restart moves the domain.  A damaged, stale or foreign state_file is
# reported and ignored.

import json
import os
import time

import harness
from hamon_helpers import backend, hamon_config, restart, wait_states
from proxyd_helpers import Chain, raw_login
from spoolsync_pair import Pair


def holder(ch):
    return ch.status()["domains"][0]["backend"]


def a_holds(view):
    return {b["name"]: (b["state"], b["holds"]) for b in view["backends"]}["a"]


def read_json(path):
    with open(path) as f:
        return json.load(f)


def log_since(daemon, mark):
    with open(daemon.log_path, "rb") as f:
        f.seek(mark)
        return f.read().decode("utf-8", "replace")


def start_again(hamon, kill9):
    """Kill or stop HAMON by its pid, start it, wait for its ready line."""
    if kill9:
        hamon.proc.kill9()
    else:
        hamon.stop()
    mark = hamon.log_mark()
    hamon.start(wait_ready=False)
    hamon.wait_log(r": ready: ", since=mark, what="hamon ready again")
    return mark


def unsynced_chain(prosody_factory, daemon_factory, workdir):
    """a (domain preferred there) unsynced and holding, b up; proxyd in front."""
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
    pair.stop("b")
    view = wait_states(ch.hamon, {"a": "unsynced", "b": "up"})
    assert a_holds(view) == ("unsynced", True), view
    harness.wait_until(lambda: ch.status()["hamon"]["generation"] ==
                       view["generation"], 5, "proxyd has the unsynced view")
    assert holder(ch) == "a"
    return pair, ch


def proxyd_has_new_view(ch, view):
    harness.wait_until(lambda: ch.status()["hamon"]["generation"] ==
                       view["generation"], 10, "proxyd has the restarted hamon's view")


def test_a_restarted_hamon_keeps_an_unsynced_backend_holding(
        prosody_factory, daemon_factory, workdir):
    pair, ch = unsynced_chain(prosody_factory, daemon_factory, workdir)
    raw, jid = raw_login(ch.port_plain, "alice", resource="before")
    state_file = os.path.join(workdir, "hamon.view.json")
    assert a_holds(read_json(state_file)) == ("unsynced", True)

    for kill9 in (False, True):
        old_pid = ch.hamon.pid
        mark = start_again(ch.hamon, kill9)
        assert ch.hamon.pid != old_pid
        view = wait_states(ch.hamon, {"a": "unsynced", "b": "up"})
        assert a_holds(view) == ("unsynced", True), view
        log = log_since(ch.hamon, mark)
        assert f"previous view read back from {state_file}: a=holds b=up" in log, log
        assert "a: still holds its domains after the restart" in log, log
        proxyd_has_new_view(ch, view)
        time.sleep(0.5)     # a move (move_spread 0s) would be done by now
        assert holder(ch) == "a"
        assert ch.status()["moves"]["ended"] == 0
        raw.send(f"<message to='{jid}' type='chat'><body>after {kill9}</body>"
                 f"</message>")
        assert f"after {kill9}".encode() in raw.read_until(rb"</message>"), \
            "the session must go on"

    # In sync again: up; the file follows.
    pair.start("b")
    pair.wait_in_sync()
    wait_states(ch.hamon, {"a": "up", "b": "up"})
    harness.wait_until(lambda: a_holds(read_json(state_file)) == ("up", False), 5,
                       "state_file shows a up")
    assert holder(ch) == "a"
    raw.close()


def test_without_the_holds_file_a_restart_moves_the_domain(
        prosody_factory, daemon_factory, workdir):
    # The control: what happened before, and what holds_max_age: 0s still does.
    pair, ch = unsynced_chain(prosody_factory, daemon_factory, workdir)
    ch.hamon.write_config({**ch.hamon.config, "holds_max_age": "0s"})
    start_again(ch.hamon, kill9=False)
    view = wait_states(ch.hamon, {"a": "unsynced", "b": "up"})
    assert a_holds(view) == ("unsynced", False), view
    harness.wait_until(lambda: holder(ch) == "b", 10, "the domain moved to b")
    pair.start("b")


def write_view(workdir, text, age_s=0):
    path = os.path.join(workdir, "hamon.view.json")
    with open(path, "w") as f:
        f.write(text)
    t = time.time() - age_s
    os.utime(path, (t, t))


def view_text(node="p1", backends=(("a", "unsynced", True), ("b", "up", False))):
    return json.dumps({"generation": 40, "node": node, "backends": [
        {"name": n, "address": "127.0.0.1:1", "state": s, "admin": "ready",
         "eligible": s == "up", "holds": h} for n, s, h in backends]})


def test_a_damaged_stale_or_foreign_state_file_is_reported_and_ignored(
        prosody_factory, daemon_factory, workdir):
    pa, pb = prosody_factory(), prosody_factory()
    pair = Pair(daemon_factory, ("bidirectional", "bidirectional")).start()
    pair.wait_connected()
    pair.wait_in_sync()
    pair.stop("b")      # a is unsynced from the start: it holds only if told
    url = f"http://127.0.0.1:{pair.d['a'].http_port}/status"
    hamon = daemon_factory("hamon", hamon_config(workdir, [
        backend("a", pa, checks=("xmpp", "spoolsync"), spoolsync=url,
                max_lag="500ms"),
        backend("b", pb)]), start=False)
    state_file = os.path.join(workdir, "hamon.view.json")
    good = view_text()
    cases = [
        (good[:len(good) // 2], 0, "not valid JSON"),                # truncated
        ("\0\xff garbage", 0, "not valid JSON"),
        (view_text(node="p2"), 0, "the view of node 'p2', this is 'p1'"),
        (good, 11 * 60, "more than holds_max_age (600 s)"),
        (view_text(backends=(("a", "drain", True),)), 0, "backend 1: state"),
        ('{"version":1,"backends":{"a":"holds"}}', 0, "not a hamon view"),
    ]
    for text, age_s, why in cases:
        write_view(workdir, text, age_s)
        mark = hamon.log_mark()
        hamon.start()
        view = wait_states(hamon, {"a": "unsynced", "b": "up"})
        assert a_holds(view) == ("unsynced", False), (text, view)
        log = log_since(hamon, mark)
        assert f"state_file: {state_file}: " in log and why in log and \
            "ignored, holds start from this hamon's own checks" in log, (why, log)
        assert hamon.proc.alive()
        # Ignored, then replaced by the view this hamon publishes.
        harness.wait_until(lambda: a_holds(read_json(state_file)) ==
                           ("unsynced", False), 5, "state_file rewritten")
        hamon.stop()

    # The same view, recent and this node's: a holds (the file decides).
    write_view(workdir, good)
    hamon.start()
    view = wait_states(hamon, {"a": "unsynced", "b": "up"})
    assert a_holds(view) == ("unsynced", True), view
    # Names no longer configured are left out, with a word.
    hamon.stop()
    write_view(workdir, view_text(backends=(("a", "unsynced", True),
                                            ("gone", "up", False))))
    mark = hamon.log_mark()
    hamon.start()
    view = wait_states(hamon, {"a": "unsynced", "b": "up"})
    assert a_holds(view) == ("unsynced", True), view
    assert "names 1 backend not in the configuration" in log_since(hamon, mark)
    pair.start("b")
    pair.wait_in_sync()
    wait_states(hamon, {"a": "up", "b": "up"})
    restart(hamon)
    wait_states(hamon, {"a": "up", "b": "up"})
