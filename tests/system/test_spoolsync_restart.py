# test_spoolsync_restart.py: changes made while the sender's daemon was
# down (creates, rewrites, deletes, a directory move) are found at its
# restart and shipped; the replica converges and the audit agrees.

import os

import harness

from spoolsync_pair import Pair, write, wait_gone


def test_changes_made_while_the_sender_was_down_converge(daemon_factory):
    p = Pair(daemon_factory, ("send", "receive"))
    for i in range(10):
        write(p.path("a", f"h/d1/f{i}.dat"), f"{i}\n")
    write(p.path("a", "h/keep.dat"), "keep\n")
    write(p.path("a", "h/gone.dat"), "gone\n")
    p.start()
    p.wait_same()
    p.wait_in_sync()
    p.stop("a")
    write(p.path("a", "h/new.dat"), "new while down\n")
    write(p.path("a", "h/keep.dat"), "kept, rewritten\n")
    os.unlink(p.path("a", "h/gone.dat"))
    os.rename(p.path("a", "h/d1"), p.path("a", "h/d2"))
    p.start("a")
    wait_gone(p.path("b", "h/gone.dat"))
    p.wait_same()
    p.wait_in_sync()
    assert p.audit("a")[0] == 0


def test_the_receiver_restarting_catches_up(daemon_factory):
    p = Pair(daemon_factory, ("send", "receive")).start()
    p.wait_in_sync()
    p.stop("b")
    for i in range(50):
        write(p.path("a", f"h/while-b-down/{i}.list"), "x" * i)
    # the status shows the backlog, and its age, while the peer is away
    st = harness.wait_until(lambda: (lambda s: s if s["queued"] >= 51 else None)(
        p.peer_status("a", "b")), 5, "51 changes queued for b")
    assert not st["connected"] and not st["in_sync"]
    harness.wait_until(lambda: p.peer_status("a", "b")["lag_ms"] >= 200, 5,
                       "the lag to grow")
    p.start("b")
    p.wait_same()
    p.wait_in_sync()
