# test_spoolsync_dead_link.py: a peer that hangs (SIGSTOP: the kernel still
# accepts its TCP, so no reset ever comes) is declared dead once nothing has
# been heard for 10 s (PINGs every 2 s keep an idle link talking): status says
# so, and hamon's check would see it.  Changes made meanwhile are shipped once
# the peer resumes, and the pair converges.

import os
import signal
import time

import harness
from spoolsync_pair import Pair, write


def test_a_hung_peer_is_declared_dead_and_the_pair_converges(daemon_factory):
    p = Pair(daemon_factory, ("bidirectional", "bidirectional")).start()
    p.wait_connected()
    p.wait_in_sync()
    write(p.path("a", "h/before.dat"), "before\n")
    p.wait_same()

    t0 = time.monotonic()
    p.d["b"].proc.signal(signal.SIGSTOP)
    try:
        # An idle link for 4 s first: PINGs must not let a live link die.
        time.sleep(4)
        assert p.peer_status("a", "b")["connected"] is True
        for i in range(20):
            write(p.path("a", f"h/during/{i}.dat"), os.urandom(3000))
        st = harness.wait_until(
            lambda: (lambda s: s if not s["connected"] else None)(
                p.peer_status("a", "b")), 15, "a declares b's link dead")
        dead_after = time.monotonic() - t0
        print(f"\nDEAD LINK: declared after {dead_after:.1f}s of SIGSTOP")
        assert 9.5 <= dead_after <= 14, dead_after
        assert "dead link" in (st["last_error"] or ""), st
        assert st["caught_up"] is True, st      # it had caught up before
        assert st["queued"] >= 20, st
    finally:
        p.d["b"].proc.signal(signal.SIGCONT)
    p.wait_connected(timeout=15)
    p.wait_in_sync(timeout=20)
    p.wait_same()
    assert p.audit("a")[0] == 0
