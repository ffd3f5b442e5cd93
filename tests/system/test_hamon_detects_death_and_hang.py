# test_hamon_detects_death_and_hang.py: two real Prosody backends: both up (exit 0);
# one killed -9 is down within fall x interval + timeout (exit 1); the other
# SIGSTOPped, still accepting TCP but silent, is down too (exit 2); SIGCONT
# brings it back after rise.  The times are measured at a subscriber.

import re
import time

from hamon_helpers import (FALL, INTERVAL_MS, RISE, TIMEOUT_MS, Subscriber, backend,
                           hamon_config, states, status, wait_states)

# Worst case: the failure lands just after a probe started (one interval of
# phase), then fall-1 more intervals, and the last probe's timeout.
DEADLINE_S = (FALL * INTERVAL_MS + TIMEOUT_MS) / 1000.0
SLACK_S = 0.3   # loop turns, process scheduling on a busy 2-core machine


def test_kill_and_hang_are_detected_within_the_bound(prosody_factory, daemon_factory,
                                                      workdir):
    pa, pb = prosody_factory(), prosody_factory()
    hamon = daemon_factory("hamon", hamon_config(
        workdir, [backend("a", pa), backend("b", pb)]))
    wait_states(hamon, {"a": "up", "b": "up"})
    code, text = status(hamon)
    assert code == 0, text
    assert re.search(r"^a\s+up\s", text, re.M), text
    sub = Subscriber(hamon.control)
    try:
        sub.wait(lambda v: states(v) == {"a": "up", "b": "up"}, what="both up")

        t0 = time.monotonic()
        pa.kill9()
        t, v = sub.wait(lambda v: states(v).get("a") == "down", what="a down",
                          since=t0)
        kill_s = t - t0
        a = next(b for b in v["backends"] if b["name"] == "a")
        assert a["eligible"] is False
        assert a["last_error"] and "xmpp" in a["last_error"], a
        assert kill_s <= DEADLINE_S + SLACK_S, f"kill -9 seen after {kill_s:.3f}s"
        code, text = status(hamon)
        assert code == 1, text

        t0 = time.monotonic()
        pb.sigstop()
        try:
            t, v = sub.wait(lambda v: states(v).get("b") == "down",
                              what="b down", since=t0)
            hang_s = t - t0
            assert hang_s <= DEADLINE_S + SLACK_S, f"SIGSTOP seen after {hang_s:.3f}s"
            b = next(x for x in v["backends"] if x["name"] == "b")
            assert "xmpp" in (b["last_error"] or ""), b
            code, text = status(hamon, "--nagios")
            assert code == 2, text
            assert text.startswith("HAMON CRITICAL - 0/2 backends eligible"), text
            assert "eligible=0;" in text
            gen_down = v["generation"]
        finally:
            t0 = time.monotonic()
            pb.sigcont()
        t, v = sub.wait(lambda v: states(v).get("b") == "up", what="b up again",
                          since=t0)
        up_s = t - t0
        assert v["generation"] > gen_down
        # rise successes one interval apart (the first may need a timeout).
        assert up_s <= (RISE * INTERVAL_MS + TIMEOUT_MS) / 1000.0 + SLACK_S, up_s
        code, text = status(hamon)
        assert code == 1, text
        print(f"\nhamon detection at interval {INTERVAL_MS} ms, fall {FALL}, timeout "
              f"{TIMEOUT_MS} ms: kill -9 {kill_s * 1000:.0f} ms, SIGSTOP "
              f"{hang_s * 1000:.0f} ms, SIGCONT->up {up_s * 1000:.0f} ms")
        gens = sub.generations()
        assert gens == sorted(set(gens)), gens
    finally:
        sub.close()


def test_status_says_unreachable_with_exit_3(daemon_factory, workdir):
    hamon = daemon_factory("hamon", hamon_config(workdir, []), start=False)
    code, text = status(hamon)
    assert code == 3
    assert "hamon" in text
    code, text = status(hamon, "--nagios")
    assert code == 3
    assert text.startswith("HAMON UNKNOWN - "), text
