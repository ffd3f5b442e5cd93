# spoolsync_torture.py: what the torture, kill -9, disk-full and Prosody
# failover tests share: an independent tree comparison (sha256, mode, size,
# owner; no spoolsync code involved), self-checking file contents so a torn
# copy is detectable, and a watcher thread that polls the replica all along.

import hashlib
import os
import stat
import struct
import threading
import time

import harness

MAGIC = b"SSTC"          # self-checking content: MAGIC, length, sha256, body
HDR = len(MAGIC) + 8 + 32


def checked(body):
    """BODY wrapped so that any truncation or mix of two versions shows."""
    return MAGIC + struct.pack(">Q", len(body)) + hashlib.sha256(body).digest() + body


def is_whole(data):
    """True when DATA is a complete checked() blob."""
    if len(data) < HDR or not data.startswith(MAGIC):
        return False
    (n,) = struct.unpack(">Q", data[4:12])
    body = data[HDR:]
    return len(body) == n and hashlib.sha256(body).digest() == data[12:HDR]


def snapshot(root, owner=True):
    """{relpath: (kind, mode, size, sha256, uid, gid)}, read without spoolsync."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if name.startswith(".spoolsync."):
                continue
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            try:
                st = os.lstat(p)
                own = (st.st_uid, st.st_gid) if owner else (0, 0)
                if stat.S_ISDIR(st.st_mode):
                    out[rel] = ("d", stat.S_IMODE(st.st_mode)) + own
                elif stat.S_ISLNK(st.st_mode):
                    out[rel] = ("l", os.readlink(p)) + own
                else:
                    h = hashlib.sha256()
                    with open(p, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                    out[rel] = ("f", stat.S_IMODE(st.st_mode), st.st_size,
                                h.hexdigest()) + own
            except FileNotFoundError:
                continue
    return out


def differences(a, b, owner=True):
    sa, sb = snapshot(a, owner), snapshot(b, owner)
    return [(k, sa.get(k), sb.get(k)) for k in sorted(set(sa) | set(sb))
            if sa.get(k) != sb.get(k)]


def wait_converged(pair, timeout=30.0, owner=True, names=("a", "b")):
    """Poll until both trees are identical by the independent comparison and
    every daemon says in sync; then --audit must exit 0 on NAMES[0].  Returns
    the seconds it took."""
    t0 = time.monotonic()
    a, b = (pair.roots[n] for n in names)
    last = []

    t_same = []

    def same():
        last[:] = differences(a, b, owner)
        if not last and not t_same:
            t_same.append(time.monotonic() - t0)
        return not last
    try:
        harness.wait_until(lambda: same() and pair.in_sync(list(names)), timeout,
                           "trees identical and in sync", interval=0.1)
    except harness.HarnessError:
        raise AssertionError(f"not converged after {timeout}s: {len(last)} "
                             f"differences, first: {last[:10]}") from None
    took = time.monotonic() - t0
    print(f"[converged: trees identical after {t_same[0]:.2f}s, all in sync "
          f"after {took:.2f}s]")
    rc, data, r = pair.audit(names[0])
    assert rc == 0, f"audit exit {rc} after convergence:\n{r.stdout[-3000:]}{r.stderr[-2000:]}"
    assert not differences(a, b, owner), "trees changed after convergence"
    return took


class TornWatch(threading.Thread):
    """Polls ROOT until stopped; every regular file it reads must pass
    ACCEPT(relpath, data).  Collects the violations (path, why)."""

    def __init__(self, root, accept, interval=0.0):
        super().__init__(daemon=True)
        self.root, self.accept, self.interval = root, accept, interval
        self.bad = []
        self.reads = 0
        self.passes = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            for dirpath, _, filenames in os.walk(self.root):
                for name in filenames:
                    if name.startswith(".spoolsync."):
                        continue
                    p = os.path.join(dirpath, name)
                    try:
                        with open(p, "rb") as f:
                            data = f.read()
                    except (FileNotFoundError, IsADirectoryError):
                        continue
                    self.reads += 1
                    rel = os.path.relpath(p, self.root)
                    why = self.accept(rel, data)
                    if why:
                        self.bad.append((rel, why))
            self.passes += 1
            if self.interval:
                time.sleep(self.interval)

    def stop(self):
        self._halt.set()
        self.join(30)
        return self.bad


def accept_checked(rel, data):
    """TornWatch acceptor for files written with checked(): None when whole."""
    return None if is_whole(data) else f"torn: {len(data)} bytes"
