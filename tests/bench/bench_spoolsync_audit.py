#!/usr/bin/python3
# bench_spoolsync_audit.py: `spoolsync --audit` (every file hashed on both
# sides, compared over the peer link) against `rsync -rcn --delete src/ dst/`
# (whole-file checksums, dry run) over the same pair of identical trees of a
# generated Prosody-shaped spool: warm page cache, then once cold each
# (drop_caches before each, when permitted).
#
#   tests/bench/bench_spoolsync_audit.py [--files 100000]
#
# A benchmark, not a test: it prints figures and never fails on a number.

import argparse
import os
import subprocess

import spoolbench as sb
from spoolbench import harness


def audit_row(label, t, rc, last):
    return [label, f"{t:.2f}", rc, last]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--no-cold", action="store_true")
    args = ap.parse_args()
    work = harness.make_dir("bench-audit")
    try:
        src, dst = os.path.join(work, "src"), os.path.join(work, "dst")
        total = sb.gen_spool(src, args.files)
        # The replica starts as an exact copy (cp -a keeps nanosecond mtimes):
        # the initial sync is another bench's business.
        subprocess.run(["cp", "-a", src, dst], check=True, timeout=1800)
        print(f"spool: {args.files} files, {total / 2**20:.1f} MiB in 10 dirs, "
              f"replica made with cp -a")
        pair = sb.SpoolPair(work, src, dst)
        pair.start()
        pair.wait_in_sync(600, interval=0.1)
        rsync = ["rsync", "-rcn", "--delete", "--itemize-changes", src + "/", dst + "/"]
        rows = []
        sb.warm(src)
        sb.warm(dst)
        res = {}
        for label, fn in (
                ("spoolsync --audit", lambda: pair.audit()),
                ("rsync -rcn --delete", lambda: sb.run_timed(rsync))):
            fn()                                # warm-up pass, not counted
            t, r = fn()
            last = (r.stdout.strip().splitlines() or ["(no output: no differences)"])[-1]
            res[label] = t
            rows.append(audit_row(label + " (warm)", t, r.returncode, last))
        cold = {}
        if not args.no_cold:
            for label, fn in (
                    ("spoolsync --audit", lambda: pair.audit()),
                    ("rsync -rcn --delete", lambda: sb.run_timed(rsync))):
                if not sb.drop_caches():
                    rows.append([label + " (cold)", "-", "-", "drop_caches not permitted"])
                    continue
                t, r = fn()
                last = (r.stdout.strip().splitlines() or ["(no output: no differences)"])[-1]
                cold[label] = t
                rows.append(audit_row(label + " (cold)", t, r.returncode, last))
        pair.stop()
        print()
        sb.table(rows, ["", "wall s", "exit", "last line of output"])
        print()
        w = res["spoolsync --audit"] / res["rsync -rcn --delete"]
        print(f"warm: spoolsync --audit / rsync -rcn = {w:.2f}")
        if len(cold) == 2:
            c = cold["spoolsync --audit"] / cold["rsync -rcn --delete"]
            print(f"cold: spoolsync --audit / rsync -rcn = {c:.2f}")
    finally:
        harness.cleanup_all()


if __name__ == "__main__":
    main()
