# test_spoolsync_hostile_peer.py: a peer that holds no key, or one that holds
# the key but lies (an oversized frame, ../ and absolute paths, a symlink to
# walk through, a bogus delta), is refused: nothing outside the root is
# touched, nothing half-written appears inside it, and the daemon goes on
# serving its good peer.

import hashlib
import hmac
import os
import socket
import struct
import time

import pytest

import harness
from spoolsync_pair import Pair, write, wait_content

HELLO, MANIFEST_REQ, MANIFEST, SIG_REQ, SIG, FILE_BEGIN, FILE_DATA, FILE_END, \
    DELETE, RENAME, MKDIR, META, ACK, PING, PONG, BYE = range(1, 17)
WHOLE, DELTA, APPEND = 1, 2, 3
MF_FILE, MF_LINK = 1, 3


def _hmac(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


class Peer:
    """A speaker of spoolsync's protocol, built from its spec, to misbehave."""

    def __init__(self, port, key, node="evil", mode=1, handshake=True):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.key = key
        self.node = node
        self.mode = mode
        self.tx_seq = self.rx_seq = 0
        if handshake:
            self.auth()

    def recv_exact(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise ConnectionError("closed")
            b += c
        return b

    def auth(self):
        cn = os.urandom(32)
        self.s.sendall(b"JHA-AUTH\x01C" + cn)
        hello = self.recv_exact(42)
        assert hello[:10] == b"JHA-AUTH\x01S"
        sn = hello[10:]
        self.s.sendall(_hmac(self.key, b"JHA-AUTH proofC" + cn + sn))
        proof = self.recv_exact(32)
        if proof != _hmac(self.key, b"JHA-AUTH proofS" + cn + sn):
            raise ConnectionError("server proof does not verify")
        session = _hmac(self.key, b"JHA-AUTH session" + cn + sn)
        self.tx = _hmac(session, b"JHA-WIRE v1 client->server")
        self.rx = _hmac(session, b"JHA-WIRE v1 server->client")

    def send_raw(self, ftype, payload, length=None):
        hdr = struct.pack(">IB", len(payload) if length is None else length, ftype)
        mac = _hmac(self.tx, struct.pack(">Q", self.tx_seq) + hdr + payload)[:16]
        self.tx_seq += 1
        self.s.sendall(hdr + payload + mac)

    def recv(self):
        hdr = self.recv_exact(5)
        n, ftype = struct.unpack(">IB", hdr)
        payload = self.recv_exact(n)
        mac = self.recv_exact(16)
        want = _hmac(self.rx, struct.pack(">Q", self.rx_seq) + hdr + payload)[:16]
        assert mac == want, "bad MAC from the daemon"
        self.rx_seq += 1
        return ftype, payload

    def recv_type(self, want, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t, p = self.recv()
            if t == want:
                return p
            if t == BYE:
                raise ConnectionError("BYE: " + p[2:].decode(errors="replace"))
        raise TimeoutError(f"no frame of type {want}")

    def hello(self):
        node = self.node.encode()
        self.send_raw(HELLO, struct.pack(">HH", 1, len(node)) + node +
                      struct.pack(">BI", self.mode, 0))
        self.recv_type(HELLO)

    @staticmethod
    def s16(b):
        return struct.pack(">H", len(b)) + b

    def file_begin(self, xfer, path, data, kind=WHOLE, ftype=MF_FILE, size=None,
                   sha=None, append_off=0):
        size = len(data) if size is None else size
        sha = hashlib.sha256(data).digest() if sha is None else sha
        payload = (struct.pack(">Q", xfer) + self.s16(path.encode()) +
                   struct.pack(">BBQ", kind, ftype, size) +
                   struct.pack(">IIIq", 0o644, 0, 0, time.time_ns()) + sha +
                   struct.pack(">QH", append_off, 0))
        self.send_raw(FILE_BEGIN, payload)

    def file(self, xfer, path, data, **kw):
        self.file_begin(xfer, path, data, **kw)
        self.send_raw(FILE_DATA, struct.pack(">QI", xfer, len(data)) + data)
        self.send_raw(FILE_END, struct.pack(">Q", xfer))

    def ack_status(self):
        p = self.recv_type(ACK)
        kind, ref, status = struct.unpack(">BQH", p[:11])
        return status, p[13:].decode(errors="replace")

    def closed(self, timeout=3.0):
        """True once the daemon has closed the connection."""
        self.s.settimeout(timeout)
        try:
            while True:
                if not self.s.recv(65536):
                    return True
        except (ConnectionError, OSError):
            return True

    def close(self):
        self.s.close()


@pytest.fixture
def setup(daemon_factory, workdir):
    """a (send) -> b (receive); b also lists a sending peer 'evil' that is us."""
    evil_port = harness.free_port()
    p = Pair(daemon_factory, ("send", "receive"))
    cfg = p.d["b"].config
    cfg["peers"] = [{"name": "a", "address": f"127.0.0.1:{p.ports['a']}"},
                    {"name": "evil", "address": f"127.0.0.1:{evil_port}"}]
    p.d["b"].write_config(cfg)
    outside = os.path.join(workdir, "outside")
    os.mkdir(outside)
    write(os.path.join(outside, "victim"), "untouched\n")
    write(p.path("a", "good.dat"), "good\n")
    p.start()
    p.wait_same()
    with open(p.key, "rb") as f:
        key = f.read()
    return p, key, outside


def _outside_untouched(outside):
    assert sorted(os.listdir(outside)) == ["victim"]
    with open(os.path.join(outside, "victim")) as f:
        assert f.read() == "untouched\n"


def _good_peer_still_served(p, n):
    write(p.path("a", f"after-attack-{n}.dat"), f"still served {n}\n")
    wait_content(p.path("b", f"after-attack-{n}.dat"), f"still served {n}\n")


def _no_temp_files(root):
    for dirpath, _, files in os.walk(root):
        assert not [f for f in files if f.startswith(".spoolsync.")], dirpath


def test_a_wrong_key_is_refused_at_the_handshake(setup):
    p, key, outside = setup
    with pytest.raises((ConnectionError, OSError)):
        ev = Peer(p.ports["b"], os.urandom(32))
        ev.hello()
    p.d["b"].wait_log(r"refused: authentication failed: cluster keys differ")
    _good_peer_still_served(p, 1)


def test_an_oversized_frame_closes_the_link_before_it_is_buffered(setup):
    p, key, outside = setup
    ev = Peer(p.ports["b"], key)
    ev.hello()
    ev.send_raw(FILE_DATA, b"", length=100 * 1024 * 1024)
    assert ev.closed()
    p.d["b"].wait_log(r"peer evil: link down: refused a frame: FILE_DATA frame of "
                      r"104857600 payload bytes")
    _good_peer_still_served(p, 2)


@pytest.mark.parametrize("path", ["../escape", "/etc/escape", "a/../../escape",
                                  "ok/\x00nul"])
def test_paths_leaving_the_root_are_refused_and_nothing_is_written(setup, path):
    p, key, outside = setup
    ev = Peer(p.ports["b"], key)
    ev.hello()
    ev.file_begin(1, path, b"pwned\n")     # refused here: no data follows
    assert ev.closed()
    p.d["b"].wait_log(r"peer evil: link down: malformed frame: FILE_BEGIN: path")
    assert not os.path.exists(os.path.join(os.path.dirname(p.roots["b"]), "escape"))
    _outside_untouched(outside)
    _good_peer_still_served(p, 3)


def test_a_symlink_out_of_the_root_is_never_walked_through(setup):
    p, key, outside = setup
    ev = Peer(p.ports["b"], key)
    ev.hello()
    target = outside.encode()
    ev.file(1, "lnk", target, ftype=MF_LINK)
    assert ev.ack_status()[0] == 0                 # a symlink is data: kept as one
    assert os.readlink(p.path("b", "lnk")) == outside
    ev.file(2, "lnk/victim", b"pwned\n")           # through it: refused
    status, text = ev.ack_status()
    assert status != 0, text
    ev.send_raw(MKDIR, Peer.s16(b"lnk/sub") + struct.pack(">IIIq", 0o755, 0, 0, 0))
    assert ev.ack_status()[0] != 0
    ev.send_raw(DELETE, Peer.s16(b"lnk/victim") + struct.pack(">BH", 0, 0))
    ev.ack_status()
    ev.send_raw(RENAME, Peer.s16(b"good.dat") + Peer.s16(b"lnk/moved") +
                struct.pack(">BH", 0, 0))
    assert ev.ack_status()[0] != 0
    ev.close()
    _outside_untouched(outside)
    assert os.path.exists(p.path("b", "good.dat"))
    _no_temp_files(p.roots["b"])
    _good_peer_still_served(p, 4)


def test_a_bogus_delta_or_a_lying_hash_changes_nothing(setup):
    p, key, outside = setup
    ev = Peer(p.ports["b"], key)
    ev.hello()
    # a delta of garbage against good.dat
    ev.file(1, "good.dat", os.urandom(300), kind=DELTA, size=5,
            sha=hashlib.sha256(b"evil\n").digest())
    assert ev.ack_status()[0] == 5                 # stale: nothing applied
    # a whole file whose bytes do not match the hash it announced
    ev.file(2, "good.dat", b"evil\n", sha=hashlib.sha256(b"other").digest())
    assert ev.ack_status()[0] == 5
    # more bytes than announced
    ev.file_begin(3, "good.dat", b"x", size=1)
    ev.send_raw(FILE_DATA, struct.pack(">QI", 3, 10) + b"0123456789")
    ev.send_raw(FILE_END, struct.pack(">Q", 3))
    assert ev.ack_status()[0] == 5
    # data for a transfer that never began: a protocol error, link closed
    ev.send_raw(FILE_DATA, struct.pack(">QI", 99, 1) + b"x")
    assert ev.closed()
    with open(p.path("b", "good.dat")) as f:
        assert f.read() == "good\n"
    _no_temp_files(p.roots["b"])
    _outside_untouched(outside)
    _good_peer_still_served(p, 5)


def test_an_unknown_node_and_a_bad_mac_are_refused(setup):
    p, key, outside = setup
    ev = Peer(p.ports["b"], key, node="stranger")
    ev.hello()                  # ours crosses its HELLO; then it says BYE
    assert ev.closed()
    p.d["b"].wait_log(r"node 'stranger' is not one of this node's peers")
    ev = Peer(p.ports["b"], key)
    ev.hello()
    ev.tx = b"\x00" * 32                            # frames no longer verify
    ev.file_begin(1, "x.dat", b"x")
    assert ev.closed()
    p.d["b"].wait_log(r"bad MAC")
    assert not os.path.exists(p.path("b", "x.dat"))
    _good_peer_still_served(p, 6)
