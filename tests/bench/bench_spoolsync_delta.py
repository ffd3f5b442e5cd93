#!/usr/bin/python3
# bench_spoolsync_delta.py: one byte changed in the middle of a 50 MiB file
# that both sides already hold: bytes on the wire and time from the write to
# durable at the replica, for spoolsync (send -> receive on loopback, each
# dialling its peer through a byte-counting TCP relay) against rsync over TCP
# (`rsync --daemon` on loopback, the client through the same kind of relay;
# `rsync --stats` figures beside it).  Each tree holds only the big file, so
# rsync's file list costs next to nothing.
#
#   tests/bench/bench_spoolsync_delta.py [--mib 50] [--runs 1]
#
# A benchmark, not a test: it prints figures and never fails on a number.

import argparse
import os
import random
import re
import shutil
import time

import spoolbench as sb
from spoolbench import harness

REL = "data/example%2etest/archive/big.list"


def make_big(path, mib, seed=7):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(rnd.randbytes(1 << 20))


def poke(path, off, run):
    """Change the byte at OFF (a different value on every run)."""
    with open(path, "r+b") as f:
        f.seek(off)
        old = f.read(1)[0]
        new = (old + 1 + run) % 256 or 1
        if new == old:
            new = (new + 1) % 256
        f.seek(off)
        f.write(bytes([new]))
    return new


def wait_byte(path, off, want, ino_before, timeout):
    """Wait until PATH holds WANT at OFF in a file renamed into place (new inode)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                st = os.fstat(fd)
                if os.pread(fd, 1, off) == bytes([want]):
                    return time.monotonic(), st.st_ino != ino_before
            finally:
                os.close(fd)
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    return None, False


def spoolsync_run(args, work):
    src, dst = os.path.join(work, "ss-src"), os.path.join(work, "ss-dst")
    make_big(os.path.join(src, REL), args.mib)
    os.makedirs(dst)
    pair = sb.SpoolPair(work, src, dst, relay=True)
    res = []
    try:
        pair.start()
        pair.wait_in_sync(120, interval=0.05)
        time.sleep(1.0)
        for run in range(args.runs):
            ab0, ba0 = pair.relay_bytes()
            p0 = pair.peer("a")
            ino = os.stat(os.path.join(dst, REL)).st_ino
            t0 = time.monotonic()
            want = poke(os.path.join(src, REL), args.offset, run)
            t1, renamed = wait_byte(os.path.join(dst, REL), args.offset, want, ino, 30)
            pair.wait_in_sync(30, interval=0.01)
            time.sleep(1.0)                 # the acks and anything late
            ab1, ba1 = pair.relay_bytes()
            p1 = pair.peer("a")
            res.append({"t": (t1 - t0) if t1 else None, "renamed": renamed,
                        "ab": ab1 - ab0, "ba": ba1 - ba0,
                        "literal": p1["bytes_literal"] - p0["bytes_literal"],
                        "matched": p1["bytes_matched"] - p0["bytes_matched"],
                        "out": p1["bytes_out"] - p0["bytes_out"],
                        "in": p1["bytes_in"] - p0["bytes_in"]})
        same = not sb.tree_diff(sb.tree(src), sb.tree(dst))
    finally:
        pair.stop()
    return res, same


def rsync_run(args, work):
    src, dst = os.path.join(work, "rs-src"), os.path.join(work, "rs-dst")
    make_big(os.path.join(src, REL), args.mib)
    os.makedirs(dst)
    port = harness.free_port()
    conf = os.path.join(work, "rsyncd.conf")
    with open(conf, "w") as f:
        f.write(f"pid file = {work}/rsyncd.pid\nuse chroot = no\nlog file = {work}/rsyncd.log\n"
                f"[spool]\n  path = {dst}\n  read only = no\n  uid = root\n  gid = root\n")
    d = harness.spawn(["rsync", "--daemon", "--no-detach", f"--config={conf}",
                       f"--port={port}", "--address=127.0.0.1"],
                      os.path.join(work, "rsyncd.out"), name="rsyncd")
    relay = sb.Relay(port)
    url = f"rsync://127.0.0.1:{relay.port}/spool/"
    res = []
    try:
        harness.wait_until(lambda: not harness.port_is_free(port), 10, "rsync --daemon")
        t, r = sb.run_timed(["rsync", "-a", src + "/", url])
        if r.returncode != 0:
            raise harness.HarnessError(f"rsync initial copy failed: {r.stderr}")
        os.sync()
        time.sleep(1.0)
        for run in range(args.runs):
            # rsync's quick check skips a file whose size and mtime (whole
            # seconds) match: each poke lands in a new second, or rsync
            # would not even look (spoolsync needs no such help).
            time.sleep(1.05)
            up0, down0 = relay.counts()
            want = poke(os.path.join(src, REL), args.offset, run)
            t, r = sb.run_timed(["rsync", "-a", "--stats", src + "/", url])
            t_sync = sb.timed_sync()
            time.sleep(0.2)
            up1, down1 = relay.counts()
            with open(os.path.join(dst, REL), "rb") as f:
                f.seek(args.offset)
                ok = f.read(1) == bytes([want])
            m_s = re.search(r"Total bytes sent: ([\d,.]+)", r.stdout)
            m_r = re.search(r"Total bytes received: ([\d,.]+)", r.stdout)
            num = lambda m: int(re.sub(r"[,.]", "", m.group(1))) if m else -1  # noqa: E731
            res.append({"t": t, "t_sync": t_sync, "ok": ok and r.returncode == 0,
                        "ab": up1 - up0, "ba": down1 - down0,
                        "sent": num(m_s), "recv": num(m_r)})
        same = not sb.tree_diff(sb.tree(src), sb.tree(dst))
    finally:
        relay.close()
        d.stop()
    return res, same


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=50)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--offset", type=int, default=None, help="default: the middle")
    args = ap.parse_args()
    if args.offset is None:
        args.offset = args.mib * (1 << 20) // 2 + 12345
    if not shutil.which("rsync"):
        raise SystemExit("rsync is not installed")
    work = harness.make_dir("bench-delta")
    try:
        ss, ss_same = spoolsync_run(args, work)
        rs, rs_same = rsync_run(args, work)
        rows = []
        for i, (s, r) in enumerate(zip(ss, rs)):
            s_tot, r_tot = s["ab"] + s["ba"], r["ab"] + r["ba"]
            rows.append([f"run {i + 1} spoolsync", s["ab"], s["ba"], s_tot,
                         f"{s_tot / r_tot:.2f}" if r_tot else "-",
                         f"{s['t'] * 1000:.0f}" if s["t"] is not None else "never",
                         "yes (durable)" if s["renamed"] else "no"])
            rows.append([f"run {i + 1} rsync daemon", r["ab"], r["ba"], r_tot, "1.00",
                         f"{r['t'] * 1000:.0f} (+sync {r['t_sync'] * 1000:.0f})",
                         "yes" if r["ok"] else "NO"])
        print(f"one byte changed at offset {args.offset} of a {args.mib} MiB file\n")
        sb.table(rows, ["", "bytes a->b", "bytes b->a", "total", "x rsync", "ms to replica",
                        "arrived"])
        print()
        for i, (s, r) in enumerate(zip(ss, rs)):
            print(f"run {i + 1}: spoolsync status: bytes_out {s['out']}, bytes_in {s['in']}, "
                  f"literal {s['literal']}, matched {s['matched']}; "
                  f"rsync --stats: sent {r['sent']}, received {r['recv']}")
        print(f"trees identical at the end: spoolsync {ss_same}, rsync {rs_same}")
        print("goal: spoolsync total <= 1.1 x rsync's, and <= 200 ms to durable")
    finally:
        harness.cleanup_all()


if __name__ == "__main__":
    main()
