# test_hamon_spoolsync_unsynced.py: a backend whose spool is not mirrored is not
# eligible.  hamon reads the real spoolsync's /status: a cut peer link, or a
# peer that stops acknowledging (lag over max_lag), makes the backend
# `unsynced` (alive, but no domain may move to it); once the spool is in sync
# again it is `up`.

import os
import signal
import time

from hamon_helpers import backend, hamon_config, status, wait_states
from spoolsync_pair import Pair, write


def test_cut_or_lagging_peer_link_makes_the_backend_unsynced(prosody_factory,
                                                             daemon_factory, workdir):
    pa = prosody_factory()
    pair = Pair(daemon_factory, ("bidirectional", "bidirectional")).start()
    pair.wait_connected()
    pair.wait_in_sync()
    url = f"http://127.0.0.1:{pair.d['a'].http_port}/status"
    hamon = daemon_factory("hamon", hamon_config(workdir, [
        backend("a", pa, checks=("xmpp", "spoolsync"), spoolsync=url,
                max_lag="500ms")]))
    wait_states(hamon, {"a": "up"})

    # The peer link cut: b is gone.
    pair.stop("b")
    view = wait_states(hamon, {"a": "unsynced"})
    b = view["backends"][0]
    assert b["eligible"] is False
    assert "b" in (b["last_error"] or ""), b
    code, _ = status(hamon, "--json")
    assert code == 2, "the only backend is not eligible: none eligible"

    # Back, and caught up: up again.
    pair.start("b")
    pair.wait_in_sync()
    wait_states(hamon, {"a": "up"})

    # Lagging: b hangs (its link stays open) while a has changes to ship.
    pair.d["b"].proc.signal(signal.SIGSTOP)
    try:
        for i in range(20):
            write(pair.path("a", f"f{i}.dat"), os.urandom(2048))
            time.sleep(0.05)
        view = wait_states(hamon, {"a": "unsynced"}, timeout=10)
        err = view["backends"][0]["last_error"] or ""
        assert "peer b" in err and ("lag" in err or "not in sync" in err), err
    finally:
        pair.d["b"].proc.signal(signal.SIGCONT)
    pair.wait_in_sync()
    wait_states(hamon, {"a": "up"})
