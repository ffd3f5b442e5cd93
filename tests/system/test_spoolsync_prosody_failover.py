# test_spoolsync_prosody_failover.py: end to end with Prosody.  Two Prosody
# servers for one domain, each on its own data dir, which spoolsync mirrors
# both ways.  A user registered on A gets an offline message there; once the
# spools agree (--audit 0, owners kept), A dies, Prosody B starts on its
# mirrored spool, and the user logs in on B and receives the message.

import os
import pwd
import time

import harness
import xmpp

from spoolsync_pair import Pair
from spoolsync_torture import snapshot, wait_converged

BODY = "sent while you were away: é 漢字 <&>"
MARK = b"sent while you were away"     # as the spool stores it (Lua-escaped)


def test_offline_message_survives_failover_to_the_mirrored_spool(
        daemon_factory, prosody_factory):
    t0 = time.monotonic()
    p = Pair(daemon_factory, ("bidirectional", "bidirectional"))
    for n in ("a", "b"):
        harness.chown(p.roots[n], "prosody")
        os.chmod(p.roots[n], 0o750)
    p.start()
    wait_converged(p, timeout=15)

    a = prosody_factory(data_dir=p.roots["a"])
    alice = a.register("alice", "alice-pw")
    bob = a.register("bob", "bob-pw")
    with xmpp.login(bob, "bob-pw", a.port) as c:
        c.send_message(alice, BODY)
        offline = p.path("a", "example%2etest/offline/alice.list")
        harness.wait_until(lambda: os.path.exists(offline) and
                           MARK in open(offline, "rb").read(), 10,
                           "the offline message in A's spool")
    took = wait_converged(p, timeout=20)     # trees + owners identical, audit 0
    uid = pwd.getpwnam("prosody").pw_uid
    replica = snapshot(p.roots["b"])
    assert replica["example%2etest/accounts/alice.dat"][4] == uid
    assert replica["example%2etest/offline/alice.list"][4] == uid
    assert MARK in open(p.path("b", "example%2etest/offline/alice.list"), "rb").read()
    a.kill9()

    b = prosody_factory(data_dir=p.roots["b"])
    with xmpp.login(alice, "alice-pw", b.port) as c:
        msg = c.wait_message(frm=bob, timeout=10)
    assert msg.body == BODY
    # B really served it: alice logged in there, and B delivered (deleted)
    # the offline store, which spoolsync carries back to A's spool too.
    assert "alice@example.test" in b.log_text()
    harness.wait_until(lambda: not os.path.exists(
        p.path("a", "example%2etest/offline/alice.list")), 10,
        "the delivered offline store gone from A's spool as well")
    print(f"prosody failover: spools agreed {took:.2f}s after the message; "
          f"test {time.monotonic() - t0:.1f}s")
