# test_spoolsync_burst.py: a burst of 1,000 small files (mkdir-then-write at
# once, Prosody-shaped: few directories, many files) all arrive, and the
# status says in sync only once every one of them is acked.

import os
import time

from spoolsync_pair import Pair, write


def test_a_burst_of_1000_files_arrives_whole(daemon_factory):
    p = Pair(daemon_factory, ("send", "receive")).start()
    p.wait_in_sync()
    t0 = time.monotonic()
    for d in range(4):
        base = p.path("a", f"example%2etest/store{d}")
        os.makedirs(base)
        for i in range(250):
            write(os.path.join(base, f"user{i}.dat"), f"return {{ u = {i}, d = {d} }};\n" * 3)
    p.wait_same(timeout=30)
    elapsed = time.monotonic() - t0
    p.wait_in_sync()
    st = p.peer_status("a", "b")
    assert st["files_sent"] >= 1000
    assert st["queued"] == 0 and st["lag_ms"] < 1000
    print(f"1000-file burst replicated in {elapsed:.2f}s")
