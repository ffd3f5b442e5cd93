# test_proxyd_workers_share_one_proxy.py: with several workers (event loops,
# one thread each) proxyd still behaves as one proxy: max_connections holds
# across workers even when clients arrive at once, `sessions`, `kick` and
# `status` see every worker's sessions, clients on different workers talk,
# and a failover ends the sessions of every worker.

import socket
import threading

import harness
import xmpp
from proxyd_helpers import PASSWORD, Chain

WORKERS = 4
MAX = 5
RUSH = 24


def test_max_connections_holds_across_workers(prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir,
               domains=[{"name": harness.XMPP_DOMAIN, "max_connections": MAX}],
               extra={"workers": WORKERS})
    assert ch.status()["workers"] == WORKERS
    # RUSH clients connect first, then all send their header at once: the
    # workers admit concurrently.
    socks = [socket.create_connection(("127.0.0.1", ch.port_plain), timeout=5)
             for _ in range(RUSH)]
    hdr = harness.stream_header().encode()
    go = threading.Barrier(RUSH)
    answers = [b""] * RUSH

    def rush(i):
        go.wait()
        socks[i].sendall(hdr)
        data = b""
        while b"</stream:features>" not in data and b"</stream:stream>" not in data:
            chunk = socks[i].recv(65536)
            if not chunk:
                break
            data += chunk
        answers[i] = data

    ts = [threading.Thread(target=rush, args=(i,)) for i in range(RUSH)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    admitted = [a for a in answers if b"</stream:features>" in a]
    refused = [a for a in answers if xmpp.parse_stream_error(a) == "policy-violation"]
    assert len(admitted) == MAX, [a[-120:] for a in answers]
    assert len(refused) == RUSH - MAX
    st = ch.status()
    assert st["refused"] == RUSH - MAX
    assert st["domains"][0]["sessions"] == MAX
    assert len(ch.sessions()) == MAX
    for s in socks:
        s.close()
    harness.wait_until(lambda: ch.status()["domains"][0]["sessions"] == 0, 5,
                       "the domain count back to 0")
    # Room again, on whichever worker.
    c = xmpp.login(ch.jid("alice"), PASSWORD, **ch.client_kw("starttls"))
    c.disconnect()


def test_sessions_kick_and_failover_see_every_worker(prosody_factory, daemon_factory,
                                                     workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir, backends=2,
               extra={"workers": WORKERS, "move_spread": "0s"})
    # Round robin: 2 x WORKERS clients cover every worker twice.
    clients = []
    for i in range(2 * WORKERS):
        user = "alice" if i % 2 == 0 else "bob"
        c = xmpp.login(ch.jid(user), PASSWORD, resource=f"r{i}",
                       **ch.client_kw("starttls" if i % 3 else "none"))
        clients.append(c)
    harness.wait_until(lambda: len([s for s in ch.sessions() if s["jid"]]) ==
                       2 * WORKERS, 5, "every session listed with its JID")
    ids = [s["id"] for s in ch.sessions()]
    assert len(set(ids)) == len(ids), f"session ids must be unique: {ids}"
    st = ch.status()
    assert st["sessions"] == 2 * WORKERS
    on = ch.sessions()[0]["backend"]
    assert st["backend_sessions"][on] == 2 * WORKERS
    # Messages cross workers.
    clients[1].send_message(ch.jid("alice") + "/r0", "across é 漢字")
    assert clients[0].wait_message(frm=ch.jid("bob")).body == "across é 漢字"
    # kick with a bare JID ends alice's sessions on every worker.
    r = ch.proxyd.cli("kick", ch.jid("alice"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{WORKERS} session" in r.stdout, r.stdout
    harness.wait_until(lambda: all(not c.connected() for c in clients[0::2]), 5,
                       "alice's sessions ended")
    assert all(c.connected() for c in clients[1::2])
    # The backend dies: every worker ends its sessions at once, bob logs
    # in again on the survivor.
    dead = ch.backends[ch.names.index(on)]
    dead.kill9()
    harness.wait_until(lambda: all(not c.connected() for c in clients[1::2]), 10,
                       "bob's sessions ended on every worker")
    other = [n for n in ch.names if n != on][0]
    harness.wait_until(lambda: ch.status()["domains"][0]["backend"] == other, 10,
                       "the domain on the survivor")
    c = xmpp.login(ch.jid("bob"), PASSWORD, **ch.client_kw("starttls"))
    assert ch.sessions()[0]["backend"] == other
    c.disconnect()
