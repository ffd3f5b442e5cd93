# spoolsync_pair.py: two (or more) real spoolsync daemons on loopback with
# temp roots, what the test_spoolsync_*.py scenarios share: configs, a shared
# cluster key, waiting for convergence by polling `status --json`, and the
# trees compared byte for byte (content, type, mode, mtime_ns, symlink target).

import hashlib
import json
import os
import stat
import time

import harness


def write_key(path):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(os.urandom(32))
    os.chmod(path, 0o600)
    return path


def tree(root, mtime=True):
    """{relpath: (type, mode, size, mtime_ns, sha256 or link target)} of ROOT."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if name.startswith(".spoolsync."):
                continue        # spoolsync's own temp files, never replicated
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue        # gone while we walked: the next poll sees it
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode))
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                try:
                    with open(p, "rb") as f:
                        h = hashlib.sha256(f.read()).hexdigest()
                except FileNotFoundError:
                    continue
                out[rel] = ("f", stat.S_IMODE(st.st_mode), st.st_size,
                            st.st_mtime_ns if mtime else 0, h)
    return out


def tree_diff(a, b):
    keys = sorted(set(a) | set(b))
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


class Pair:
    """Daemons named NAMES (default a, b), each peering with all the others.

    MODES: one mode per name (send/receive/bidirectional).  The daemons are
    made but not started; start() starts them and waits for "ready".
    """

    def __init__(self, factory, modes=("send", "receive"), names=("a", "b"),
                 extra=None):
        self.names = list(names)
        self.dir = harness.make_dir("spoolpair")
        self.key = write_key(os.path.join(self.dir, "cluster.key"))
        self.ports = {n: harness.free_port() for n in self.names}
        self.roots = {}
        self.conflicts = {}
        self.d = {}
        for n, mode in zip(self.names, modes):
            self.roots[n] = harness.make_dir("spool-" + n)
            self.conflicts[n] = os.path.join(self.dir, "conflicts-" + n)
            cfg = {
                "node": n,
                "root": self.roots[n],
                "listen": f"127.0.0.1:{self.ports[n]}",
                "peers": [{"name": o, "address": f"127.0.0.1:{self.ports[o]}"}
                          for o in self.names if o != n],
                "cluster_key": self.key,
                "mode": mode,
                "conflict_dir": self.conflicts[n],
                "state_dir": os.path.join(self.dir, "state-" + n),
                "reconnect_max": "500ms",
                "anti_entropy": "60s",
            }
            cfg.update((extra or {}).get(n, {}))
            self.d[n] = factory("spoolsync", config=cfg, start=False)

    def start(self, *names, timeout=10.0):
        for n in names or self.names:
            # A restart appends to the same log: wait for a new ready line.
            mark = self.d[n].log_mark()
            self.d[n].start(wait_ready=False)
            self.d[n].wait_log(r": ready: ", timeout, since=mark,
                               what=f"spoolsync {n}'s ready line")
        return self

    def stop(self, *names):
        for n in names or self.names:
            self.d[n].stop()

    def path(self, n, rel):
        return os.path.join(self.roots[n], rel)

    def status(self, n):
        return self.d[n].status()

    def peer_status(self, n, peer):
        for p in self.status(n)["peers"]:
            if p["name"] == peer:
                return p
        raise KeyError(peer)

    def in_sync(self, names=None):
        """True when every daemon (of NAMES) says every peer is in sync."""
        for n in names or self.names:
            if not self.d[n].proc or not self.d[n].proc.alive():
                return False
            st = self.status(n)
            if not all(p["connected"] and p["in_sync"] and p["queued"] == 0
                       for p in st["peers"]):
                return False
        return True

    def wait_in_sync(self, timeout=15.0, names=None):
        harness.wait_until(lambda: self.in_sync(names), timeout,
                           "spoolsync peers in sync", interval=0.05)

    def wait_connected(self, timeout=10.0):
        def ok():
            return all(p["connected"] for n in self.names
                       for p in self.status(n)["peers"])
        harness.wait_until(ok, timeout, "spoolsync links up", interval=0.05)

    def same(self, a="a", b="b", mtime=True):
        return not tree_diff(tree(self.roots[a], mtime), tree(self.roots[b], mtime))

    def wait_same(self, a="a", b="b", timeout=15.0, mtime=True):
        try:
            harness.wait_until(lambda: self.same(a, b, mtime), timeout,
                               f"{a}'s and {b}'s trees identical", interval=0.02)
        except harness.HarnessError:
            diff = tree_diff(tree(self.roots[a], mtime), tree(self.roots[b], mtime))
            raise harness.HarnessError(f"trees differ after {timeout}s: {diff[:20]}")

    def audit(self, n, *args, timeout=60.0):
        """spoolsync --audit -c CONF --json ARGS: (exit code, parsed JSON or None)."""
        r = self.d[n].cli("--audit", "--json", *args, timeout=timeout)
        try:
            data = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else None
        except ValueError:
            data = None
        return r.returncode, data, r


def write(path, data, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    if mode is not None:
        os.chmod(path, mode)


def wait_content(path, data, timeout=5.0):
    data = data if isinstance(data, bytes) else data.encode()

    def ok():
        try:
            with open(path, "rb") as f:
                return f.read() == data
        except OSError:
            return False
    harness.wait_until(ok, timeout, f"{path} to hold {data[:40]!r}", interval=0.005)


def wait_gone(path, timeout=5.0):
    harness.wait_until(lambda: not os.path.lexists(path), timeout, f"{path} gone",
                       interval=0.005)


def monotonic_ms():
    return time.monotonic() * 1000.0
