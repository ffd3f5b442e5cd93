#!/usr/bin/python3
# bench_spoolsync_latency.py: write -> durable at the replica, for spoolsync
# (send -> receive on loopback) and, as the anchor, lsyncd with delay = 0
# (default.rsync to a local directory) in the same run: a trickle of
# Prosody-shaped rewrites at a fixed rate, then a burst of N new files.
# The replica side is watched with inotify: a file counts when the version
# written lands at its name (spoolsync links a new file in, or renames over an
# old one, after its syncfs: then it is durable).
#
#   tests/bench/bench_spoolsync_latency.py [--rate 100] [--seconds 10] [--burst 1000]
#
# A benchmark, not a test: it prints figures and never fails on a number.

import argparse
import ctypes
import os
import select
import shutil
import statistics
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system"))
import harness                                   # noqa: E402
from spoolsync_pair import write_key             # noqa: E402

IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x8, 0x80, 0x100
libc = ctypes.CDLL("libc.so.6", use_errno=True)


class Inotify:
    """Recursive enough for the bench: the root and the directories it makes."""

    def __init__(self, root):
        self.fd = libc.inotify_init1(os.O_NONBLOCK)
        self.wd = {}
        self.root = root
        for dp, dn, fn in os.walk(root):
            self.add(dp)

    def add(self, d):
        wd = libc.inotify_add_watch(self.fd, d.encode(),
                                    IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE)
        if wd >= 0:
            self.wd[wd] = d

    def events(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return []
        now = time.monotonic_ns()
        buf = os.read(self.fd, 1 << 20)
        out, i = [], 0
        while i < len(buf):
            wd, mask, _, n = struct.unpack_from("iIII", buf, i)
            name = buf[i + 16:i + 16 + n].rstrip(b"\0").decode()
            i += 16 + n
            path = os.path.join(self.wd.get(wd, ""), name)
            if mask & IN_CREATE and os.path.isdir(path):
                self.add(path)
                for dp, dn, fn in os.walk(path):
                    for d in dn:
                        self.add(os.path.join(dp, d))
                    for f in fn:
                        out.append((now, os.path.join(dp, f)))
            elif mask & (IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE):
                # IN_CREATE: a file linked in whole (spoolsync places a new
                # file with linkat, after its syncfs); one made empty by
                # open(O_CREAT) has no "#seq" line yet and counts at its
                # IN_CLOSE_WRITE.
                out.append((now, path))
        return out


class Collector(threading.Thread):
    """Records when each tagged version (b'#seq N\\n' first line) lands."""

    def __init__(self, root):
        super().__init__(daemon=True)
        self.ino = Inotify(root)
        self.seen = {}
        self.stop = False

    def run(self):
        while not self.stop:
            for t, path in self.ino.events(0.05):
                try:
                    with open(path, "rb") as f:
                        first = f.readline()
                except OSError:
                    continue
                if first.startswith(b"#seq "):
                    seq = int(first[5:])
                    self.seen.setdefault(seq, t)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def trickle(src, rate, seconds, files=200):
    """Rewrites of FILES .dat files (Prosody: x.dat~ then rename) at RATE/s."""
    sent = {}
    n = int(rate * seconds)
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / rate
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        path = os.path.join(src, f"example%2etest/accounts/user{i % files}.dat")
        tmp = path + "~"
        body = f"#seq {i}\nreturn {{ password = \"x{i}\", n = {i} }};\n" + "x" * 300
        sent[i] = time.monotonic_ns()
        with open(tmp, "w") as f:
            f.write(body)
        os.rename(tmp, path)
    return sent


def burst(src, n, base=1_000_000):
    sent = {}
    d = os.path.join(src, "example%2etest/offline")
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        seq = base + i
        sent[seq] = time.monotonic_ns()
        with open(os.path.join(d, f"u{i}.list"), "w") as f:
            f.write(f"#seq {seq}\nitem({{ stanza = \"<message/>\" }});\n")
    return sent


def report(name, sent, col, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(s in col.seen for s in sent):
        time.sleep(0.05)
    lat = [(col.seen[s] - t) / 1e6 for s, t in sent.items() if s in col.seen]
    lost = len(sent) - len(lat)
    if not lat:
        print(f"{name}: nothing arrived ({lost} lost)")
        return None
    first = min(sent.values())
    last = max(col.seen[s] for s in sent if s in col.seen)
    print(f"{name}: n={len(sent)} p50={statistics.median(lat):.1f} ms "
          f"p99={pct(lat, 99):.1f} ms max={max(lat):.1f} ms "
          f"all in {(last - first) / 1e9:.2f} s, lost {lost}")
    return lat


def prepare(src, files=200):
    for i in range(files):
        p = os.path.join(src, f"example%2etest/accounts/user{i}.dat")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write("return {};\n")


def run_spoolsync(args, work):
    src, dst = os.path.join(work, "ss-src"), os.path.join(work, "ss-dst")
    os.makedirs(src)
    os.makedirs(dst)
    prepare(src)
    key = write_key(os.path.join(work, "key"))
    pa, pb = harness.free_port(), harness.free_port()
    d = {}
    for n, mode, root, me, other, op in (("a", "send", src, pa, "b", pb),
                                         ("b", "receive", dst, pb, "a", pa)):
        d[n] = harness.Daemon("spoolsync", {
            "node": n, "root": root, "listen": f"127.0.0.1:{me}",
            "peers": [{"name": other, "address": f"127.0.0.1:{op}"}],
            "cluster_key": key, "mode": mode, "log_level": "info",
            "state_dir": os.path.join(work, "state-" + n),
            "conflict_dir": os.path.join(work, "conf-" + n)})
        d[n].start()
    harness.wait_until(lambda: all(p["in_sync"] for p in d["a"].status()["peers"]),
                       30, "in sync")
    col = Collector(dst)
    col.start()
    res = {"trickle": report("spoolsync trickle", trickle(src, args.rate, args.seconds),
                             col)}
    res["burst"] = report("spoolsync burst", burst(src, args.burst), col)
    col.stop = True
    for x in d.values():
        x.stop()
    return res


def run_lsyncd(args, work):
    src, dst = os.path.join(work, "ls-src"), os.path.join(work, "ls-dst")
    os.makedirs(src)
    os.makedirs(dst)
    prepare(src)
    conf = os.path.join(work, "lsyncd.lua")
    with open(conf, "w") as f:
        f.write(f'settings {{ nodaemon = true, logfile = "{work}/lsyncd.log", '
                f'statusFile = "{work}/lsyncd.status" }}\n'
                f'sync {{ default.rsync, source = "{src}", target = "{dst}", '
                f'delay = 0 }}\n')
    proc = harness.spawn(["lsyncd", conf], os.path.join(work, "lsyncd.out"),
                         name="lsyncd")
    harness.wait_until(lambda: os.path.exists(
        os.path.join(dst, "example%2etest/accounts/user199.dat")), 30,
        "lsyncd's startup sync")
    time.sleep(1)
    col = Collector(dst)
    col.start()
    res = {"trickle": report("lsyncd trickle", trickle(src, args.rate, args.seconds), col)}
    res["burst"] = report("lsyncd burst", burst(src, args.burst), col)
    col.stop = True
    proc.stop()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--no-lsyncd", action="store_true")
    args = ap.parse_args()
    work = harness.make_dir("bench-latency")
    try:
        ss = run_spoolsync(args, work)
        ls = None if args.no_lsyncd or not shutil.which("lsyncd") else \
            run_lsyncd(args, work)
        if ss["trickle"] and ls and ls["trickle"]:
            print(f"trickle p99 ratio spoolsync/lsyncd: "
                  f"{pct(ss['trickle'], 99) / pct(ls['trickle'], 99):.2f}")
    finally:
        harness.cleanup_all()


if __name__ == "__main__":
    main()
