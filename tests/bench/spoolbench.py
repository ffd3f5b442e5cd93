# spoolbench.py: what the spoolsync benches (initial, delta, audit, torture)
# share: a generated Prosody-shaped spool, a send -> receive spoolsync pair on
# loopback, a byte-counting TCP relay, CPU time from /proc, and tree comparison.

import atexit
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system"))
import harness                                   # noqa: E402
from spoolsync_pair import write_key, tree, tree_diff   # noqa: E402

# The benches use them as sb.tree and sb.tree_diff.
REEXPORTED = (tree, tree_diff)

# A private temp dir for everything harness makes: a bench must not depend on
# /tmp/jha-systest-* surviving other sessions' clean-ups (one lost a tree so).
tempfile.tempdir = tempfile.mkdtemp(prefix="jha-bench-", dir="/var/tmp")
os.chmod(tempfile.tempdir, 0o755)


def _cleanup():
    harness.cleanup_all()
    if not harness.keep_tmp():
        shutil.rmtree(tempfile.tempdir, ignore_errors=True)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

HOSTS = ("example%2etest", "conference%2eexample%2etest")
STORES = (("accounts", ".dat"), ("roster", ".dat"), ("vcard", ".dat"),
          ("private", ".dat"), ("offline", ".list"))


def gen_spool(root, n, seed=1, lo=1024, hi=4096):
    """N files of LO..HI bytes in data/<host>/<store>/<user>.<ext>: 10 dirs."""
    rnd = random.Random(seed)
    dirs = [os.path.join(root, "data", h, s) for h in HOSTS for s, _ in STORES]
    exts = [e for _ in HOSTS for _, e in STORES]
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    total = 0
    for i in range(n):
        k = i % len(dirs)
        size = rnd.randint(lo, hi)
        head = f"return {{ user = \"user{i}\"; n = {i} }};\n".encode()
        body = head + rnd.randbytes(max(0, size - len(head)))
        with open(os.path.join(dirs[k], f"user{i // len(dirs)}{exts[k]}"), "wb") as f:
            f.write(body[:size])
        total += size
    return total


def warm(root):
    """Read every file once so that both contenders start from a warm cache."""
    n = 0
    for dp, _, fn in os.walk(root):
        for name in fn:
            with open(os.path.join(dp, name), "rb") as f:
                n += len(f.read())
    return n


def drop_caches():
    """True when the page cache could be dropped (root, not in a container that forbids it)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def cpu_s(pid):
    """utime + stime of PID in seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def io_bytes(pid):
    """{rchar, wchar, read_bytes, write_bytes, ...} of /proc/PID/io."""
    out = {}
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                k, v = line.split(":")
                out[k.strip()] = int(v)
    except OSError:
        pass
    return out


class Relay:
    """A TCP relay on 127.0.0.1 to TARGET_PORT that counts payload bytes each way."""

    def __init__(self, target_port, name="relay"):
        self.target = ("127.0.0.1", target_port)
        self.name = name
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.up = 0          # client -> target
        self.down = 0        # target -> client
        self.conns = 0
        self.lock = threading.Lock()
        self.socks = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                t = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            t.settimeout(None)
            for s in (c, t):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns += 1
                self.socks += [c, t]
            threading.Thread(target=self._pump, args=(c, t, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(t, c, "down"), daemon=True).start()

    def _pump(self, a, b, way):
        while True:
            try:
                data = a.recv(1 << 18)
            except OSError:
                data = b""
            if not data:
                try:
                    b.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            with self.lock:
                setattr(self, way, getattr(self, way) + len(data))
            try:
                b.sendall(data)
            except OSError:
                return

    def counts(self):
        with self.lock:
            return self.up, self.down

    def close(self):
        self.closed = True
        self.lsock.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


class SpoolPair:
    """spoolsync a (send, root SRC) -> b (receive, root DST) on loopback.

    RELAY: each daemon dials its peer through a byte-counting Relay."""

    def __init__(self, work, src, dst, relay=False, log_level="info", extra=None):
        self.work = work
        self.key = write_key(os.path.join(work, "cluster.key"))
        self.ports = {"a": harness.free_port(), "b": harness.free_port()}
        self.relays = {}
        if relay:
            self.relays = {n: Relay(self.ports[n], "to-" + n) for n in ("a", "b")}
        self.d = {}
        for n, mode, root, other in (("a", "send", src, "b"), ("b", "receive", dst, "a")):
            port = self.relays[other].port if relay else self.ports[other]
            cfg = {"node": n, "root": root, "listen": f"127.0.0.1:{self.ports[n]}",
                   "peers": [{"name": other, "address": f"127.0.0.1:{port}"}],
                   "cluster_key": self.key, "mode": mode, "log_level": log_level,
                   "state_dir": os.path.join(work, "state-" + n),
                   "conflict_dir": os.path.join(work, "conflicts-" + n)}
            cfg.update((extra or {}).get(n, {}))
            self.d[n] = harness.Daemon("spoolsync", cfg)

    def start(self, *names, wait_ready=True):
        for n in names or ("b", "a"):
            self.d[n].start(timeout=60, wait_ready=wait_ready)

    def http_status(self, n):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.d[n].http_port, timeout=5)
            c.request("GET", "/status")
            r = c.getresponse()
            body = r.read()
            c.close()
            return json.loads(body) if r.status == 200 else None
        except (OSError, ValueError):
            return None

    def peer(self, n="a"):
        st = self.http_status(n)
        return st["peers"][0] if st and st.get("peers") else None

    def in_sync(self, n="a"):
        p = self.peer(n)
        return bool(p and p["connected"] and p["in_sync"] and p["queued"] == 0)

    def wait_in_sync(self, timeout, interval=0.02):
        return harness.wait_until(lambda: self.in_sync("a"), timeout,
                                  "spoolsync a in sync with b", interval=interval)

    def relay_bytes(self):
        """(a -> b, b -> a) payload bytes through both relays."""
        ab = ba = 0
        if self.relays:
            up, down = self.relays["b"].counts()       # a dials b
            ab += up
            ba += down
            up, down = self.relays["a"].counts()       # b dials a
            ba += up
            ab += down
        return ab, ba

    def audit(self, n="a", timeout=600):
        t0 = time.monotonic()
        r = self.d[n].cli("--audit", timeout=timeout)
        return time.monotonic() - t0, r

    def stop(self):
        for x in self.d.values():
            x.stop()
        for r in self.relays.values():
            r.close()


def run_timed(argv, timeout=1800, **kw):
    """(seconds, CompletedProcess) of ARGV run to its end."""
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    return time.monotonic() - t0, r


def timed_sync():
    t0 = time.monotonic()
    os.sync()
    return time.monotonic() - t0


def table(rows, head):
    """Print ROWS (lists of cells) under HEAD as an aligned text table."""
    cells = [head] + [[str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(head))]
    for k, r in enumerate(cells):
        print("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i])
                        for i, c in enumerate(r)).rstrip())
        if k == 0:
            print("  ".join("-" * x for x in w))


class LoopExt4:
    """A fresh journalled ext4 on a loop-mounted file in WORK, for the trees:
    every contender starts on the same clean file system, whatever the host's
    own file system (here: ext4 without a journal, whose inode allocator
    skips recently deleted inodes) and whoever deleted what just before."""

    def __init__(self, work, mib, inodes=400_000):
        self.img = os.path.join(work, "fs.img")
        self.mnt = os.path.join(work, "fs")
        os.makedirs(self.mnt)
        with open(self.img, "wb") as f:
            f.truncate(mib << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-N", str(inodes), self.img],
                       check=True, timeout=300)
        subprocess.run(["mount", "-o", "loop", self.img, self.mnt], check=True, timeout=60)
        self.mounted = True

    def describe(self):
        r = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", self.mnt],
                           capture_output=True, text=True, timeout=30)
        return r.stdout.strip()

    def close(self):
        if not self.mounted:
            return
        os.sync()
        for _ in range(20):
            if subprocess.run(["umount", self.mnt], capture_output=True,
                              timeout=120).returncode == 0:
                self.mounted = False
                break
            time.sleep(0.5)
