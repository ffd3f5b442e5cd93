# test_hamon_hostile_backends.py: the real hamon against seven hostile backends
# (garbage, a never-ending stream header, one byte a second, a 100 MB reply, a
# TLS-only port, an immediate close, accept-and-silence) and one real Prosody:
# hamon stays alive and small, every hostile backend is down with a last_error
# that says what kind of failure it was, and the Prosody backend stays up with
# no flap and its checks unstalled (every probe under 100 ms, none skipped).

import re
import socket
import ssl
import threading
import time

import harness
from hamon_helpers import (INTERVAL_MS, TIMEOUT_MS, Subscriber, backend, hamon_config,
                           states, status, wait_states)

OBSERVE_S = 4.0          # after the first view: 16 intervals of hostile traffic
GOOD_MAX_LATENCY_MS = 100
HAMON_MAX_RSS_KB = 64 * 1024   # it must never hold a 100 MB reply

STREAM_OPEN = ("<?xml version='1.0'?><stream:stream from='example.test' id='h' "
               "xmlns='jabber:client' xmlns:stream='%s' version='1.0'>"
               % harness.STREAM_NS)
FEATURES = ("<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            "<mechanism>PLAIN</mechanism></mechanisms></stream:features>")


# ---------------------------------------------------------------- behaviours
# Each serves one accepted connection until the peer goes or STOP is set.

def drain(c, stop):
    """Read and drop until EOF: the connection stays open as long as hamon wants."""
    c.settimeout(0.2)
    while not stop.is_set():
        try:
            if not c.recv(65536):
                return
        except socket.timeout:
            continue


def send_chunks(c, stop, chunks):
    """Send each chunk; stop quietly when hamon has hung up."""
    try:
        for chunk in chunks:
            if stop.is_set():
                return
            c.sendall(chunk)
    except OSError:
        pass


def garbage(c, stop, ctx):
    send_chunks(c, stop, [b"\x00\xff\x13\x37 GARBAGE \x80\x81\xfe" * 64])
    drain(c, stop)


def endless_header(c, stop, ctx):
    """A stream header whose attributes never end, as fast as hamon reads."""
    def chunks():
        yield b"<?xml version='1.0'?><stream:stream xmlns:stream='%s'" % \
            harness.STREAM_NS.encode()
        i = 0
        while True:
            i += 1
            yield b" a%d='%s'" % (i, b"x" * 200)
    send_chunks(c, stop, chunks())


def one_byte_a_second(c, stop, ctx):
    """A real reply, one byte a second: it would be valid in a few minutes."""
    for b in (STREAM_OPEN + FEATURES).encode():
        try:
            c.sendall(bytes([b]))
        except OSError:
            return
        if stop.wait(1.0):
            return


def hundred_mb(c, stop, ctx):
    """A reply of 100 MB: a well-formed start, then one enormous text node."""
    def chunks():
        yield (STREAM_OPEN + "<stream:features><mechanisms "
               "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>").encode()
        block = b"A" * 65536
        for _ in range(100 * 1024 * 1024 // len(block)):
            yield block
        yield b"</mechanism></mechanisms></stream:features>"
    send_chunks(c, stop, chunks())


def tls_only(c, stop, ctx):
    """A real TLS server (direct TLS, as on port 5223): plaintext XML fails it."""
    c.settimeout(2)
    try:
        s = ctx.wrap_socket(c, server_side=True)
    except (OSError, ssl.SSLError):
        return
    drain(s, stop)


def immediate_close(c, stop, ctx):
    pass   # closed by the caller at once


def silence(c, stop, ctx):
    drain(c, stop)


class HostileServer:
    """A listener on 127.0.0.1 (free port) serving BEHAVIOUR on every connection."""

    def __init__(self, behaviour, ctx=None):
        self.behaviour, self.ctx = behaviour, ctx
        self.stop_ev = threading.Event()
        self.accepted = 0
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.ls.settimeout(0.2)
        self.port = self.ls.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop_ev.is_set():
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            self.behaviour(c, self.stop_ev, self.ctx)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stop_ev.set()
        self.thread.join(5)
        self.ls.close()


# What each hostile backend's last_error must say.
STREAM_GONE = (r"stream: (read: Connection reset by peer|connection closed by the "
               r"server after 0 bytes)")
HOSTILE = {
    # expat's own verdict, with the stage
    "garbage": (garbage, r"^xmpp: stream: not XML: .* at byte \d+"),
    # the 64 KiB bound on everything a probe reads
    "endless-header": (endless_header,
                       r"^xmpp: stream: more than 64 KiB from the server, given up$"),
    # the probe's timeout, with how far it got
    "one-byte-a-second": (one_byte_a_second,
                          r"^xmpp: stream: timeout after %d ms \([0-9] bytes received\)$"
                          % TIMEOUT_MS),
    # the per-stanza text bound, long before 100 MB
    "hundred-mb": (hundred_mb,
                   r"^xmpp: features: more than 16384 bytes of text in one stanza$"),
    # A TLS server sends nothing to a plaintext client: it resets or closes.
    "tls-only": (tls_only, r"^xmpp: " + STREAM_GONE),
    "immediate-close": (immediate_close, r"^xmpp: (" + STREAM_GONE +
                        r"|stream: write: (Broken pipe|Connection reset by peer))"),
    "silence": (silence, r"^xmpp: stream: timeout after %d ms \(0 bytes received\)$"
                % TIMEOUT_MS),
}


def good_metrics(hamon):
    """(probes, probes under 100 ms) of the good backend's xmpp check, from /metrics."""
    m = hamon.http_get("/metrics").body
    lab = r'backend="good",check="xmpp"'
    count = re.search(r'^hamon_check_duration_seconds_count\{%s\} (\d+)' % lab, m, re.M)
    fast = re.search(r'^hamon_check_duration_seconds_bucket\{%s,le="0\.1"\} (\d+)' % lab,
                     m, re.M)
    assert count and fast, m
    return int(count.group(1)), int(fast.group(1))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def test_hostile_backends_go_down_clearly_and_never_disturb_a_good_one(
        prosody, daemon_factory, workdir):
    cert, key = harness.make_cert(workdir, "hostile.test")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    servers = {name: HostileServer(fn, ctx) for name, (fn, _) in HOSTILE.items()}
    sub = None
    try:
        backends = [backend("good", prosody)]
        for name, srv in servers.items():
            backends.append({"name": name, "address": f"127.0.0.1:{srv.port}",
                             "domain": "example.test", "checks": ["xmpp"]})
        hamon = daemon_factory("hamon", hamon_config(workdir, backends))
        sub = Subscriber(hamon.control)
        want = dict({"good": "up"}, **{n: "down" for n in HOSTILE})
        wait_states(hamon, want)
        sub.wait(lambda v: True, what="the first view")
        n0, _ = good_metrics(hamon)

        # Keep looking while every hostile backend is hit again and again.
        latencies = []
        deadline = time.monotonic() + OBSERVE_S
        while time.monotonic() < deadline:
            code, v = status(hamon, "--json")
            assert code == 1, v
            assert states(v) == want, v
            good = next(b for b in v["backends"] if b["name"] == "good")
            latencies.append(good["latency_ms"])
            time.sleep(0.1)

        assert hamon.proc.alive(), harness.tail(hamon.log_text())
        code, v = status(hamon, "--json")
        byname = {b["name"]: b for b in v["backends"]}
        for name, (_, rx) in HOSTILE.items():
            b = byname[name]
            assert b["state"] == "down" and b["eligible"] is False, b
            assert b["failures"] >= 2, b
            assert re.search(rx, b["last_error"] or ""), (name, b["last_error"])
            assert servers[name].accepted >= 2, (name, servers[name].accepted)
        good = byname["good"]
        assert good["state"] == "up" and good["failures"] == 0 and \
            good["last_error"] is None, good

        # Not one flap: every view a subscriber got has the same states.
        seen = [(g["generation"], states(g)) for _, g in sub.views]
        assert all(s == want for _, s in seen), seen
        # The good check kept its pace and its speed.
        assert max(latencies) < GOOD_MAX_LATENCY_MS, latencies
        n1, fast1 = good_metrics(hamon)
        assert fast1 == n1, f"{n1 - fast1} of {n1} good probes took 100 ms or more"
        assert n1 - n0 >= 0.8 * OBSERVE_S * 1000 / INTERVAL_MS, (n0, n1)
        assert rss_kb(hamon.pid) < HAMON_MAX_RSS_KB
        print(f"\ngood backend latency over {len(latencies)} looks: max "
              f"{max(latencies):.2f} ms; {n1 - n0} probes in {OBSERVE_S:g} s; "
              f"hamon RSS {rss_kb(hamon.pid)} kB")
        for name in HOSTILE:
            print(f"  {name:18s} {byname[name]['last_error']}")
    finally:
        if sub is not None:
            sub.close()
        for srv in servers.values():
            srv.stop()
