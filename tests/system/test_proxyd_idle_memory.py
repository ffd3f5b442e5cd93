# test_proxyd_idle_memory.py: what an idle plain connection costs proxyd: RSS
# growth / N for N idle streams (header sent, backend connected, not
# authenticated) and N idle authenticated sessions.  The goal is 16 KiB; the
# test prints the figures and fails only far above it.

import os
import socket
import ssl
import time

import pytest

import harness
import xmpp
from proxyd_helpers import Chain, raw_login

N = int(os.environ.get("JHA_PROXYD_IDLE_N", "1000"))
GOAL = 16 * 1024


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def settle(ch):
    time.sleep(2.5)     # past the idle trim of every parser (1 s sweep)


def restart(ch):
    """A fresh proxyd: freed memory would otherwise be reused and hide the cost."""
    ch.proxyd.stop()
    mark = ch.proxyd.log_mark()
    ch.proxyd.start(wait_ready=False)
    ch.proxyd.wait_log(r": ready: ", since=mark, what="proxyd ready again")
    harness.wait_until(lambda: ch.status()["hamon"]["view_received"], 10, "view")


def measure(ch, open_one):
    pid = ch.proxyd.pid
    warm = [open_one() for _ in range(20)]      # the allocator's first arenas
    settle(ch)
    before = rss(pid)
    held = [open_one() for _ in range(N)]
    harness.wait_until(lambda: ch.status()["sessions"] >= N + len(warm), 30,
                       f"{N} sessions")
    settle(ch)
    per = (rss(pid) - before) / N
    return per, held + warm


@pytest.mark.skipif("asan" in os.environ.get("JHA_BUILD", ""),
                    reason="AddressSanitizer's own memory hides proxyd's")
def test_idle_plain_connection_memory(prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir,
               domains=[{"name": harness.XMPP_DOMAIN, "max_connections": 0}],
               limits={"auth_timeout": "10m"})

    def stream():
        s = xmpp.RawStream(ch.port_plain)
        s.send(harness.stream_header())
        s.read_until(rb"</stream:features>")
        return s
    per_stream, held = measure(ch, stream)
    for s in held:
        s.sock.close()
    restart(ch)

    counter = iter(range(10 ** 6))
    per_authed, held = measure(
        ch, lambda: raw_login(ch.port_plain, "alice", resource=f"r{next(counter)}")[0])
    for s in held:
        s.sock.close()
    restart(ch)

    ctx = ssl.create_default_context(cafile=ch.cert)

    def tls_stream():
        t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", ch.port_direct)),
                            server_hostname=harness.XMPP_DOMAIN)
        t.sendall(harness.stream_header().encode())
        data = b""
        while b"</stream:features>" not in data:
            data += t.recv(65536)
        return t
    per_tls, held = measure(ch, tls_stream)
    for t in held:
        t.close()
    print(f"\nproxyd idle connection, N={N}: {per_stream / 1024:.1f} KiB plain "
          f"unauthenticated stream, {per_authed / 1024:.1f} KiB plain authenticated "
          f"session, {per_tls / 1024:.1f} KiB direct-TLS stream; goal (plain) "
          f"{GOAL // 1024} KiB")
    assert per_stream <= 2 * GOAL and per_authed <= 2 * GOAL, (per_stream, per_authed)
