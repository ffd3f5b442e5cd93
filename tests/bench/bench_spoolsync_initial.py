#!/usr/bin/python3
# bench_spoolsync_initial.py: initial sync of a generated Prosody-shaped spool
# (N small files) to an empty replica: spoolsync (send -> receive on loopback,
# from the sender's start until its status says in_sync) against local
# `rsync -a src/ dst/`, alone and followed by `sync` (spoolsync fsyncs).
#
#   tests/bench/bench_spoolsync_initial.py [--files 100000] [--perf] [--loop-ext4 MIB]
#
# --loop-ext4 puts the three trees on a fresh journalled ext4 (a loop-mounted
# file of MIB MiB): an ext4 without a journal, as / is on the machine this was
# written on, makes every inode allocation search past recently deleted inodes.
#
# A benchmark, not a test: it prints figures and never fails on a number.

import argparse
import collections
import os
import subprocess
import threading
import time

import spoolbench as sb
from spoolbench import harness


class WaitSampler(threading.Thread):
    """Off-CPU view perf cannot give: every 10 ms, each thread's state and
    kernel wait channel (/proc/PID/task/TID/{stat,wchan}), tallied."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = pids
        self.tally = {n: collections.Counter() for n in pids}
        self.samples = 0
        self.stop = False

    def run(self):
        while not self.stop and self.samples < 360_000:
            for n, pid in self.pids.items():
                try:
                    tids = os.listdir(f"/proc/{pid}/task")
                except OSError:
                    continue
                for tid in tids:
                    try:
                        with open(f"/proc/{pid}/task/{tid}/stat") as f:
                            st = f.read()
                        with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                            wchan = f.read().strip() or "-"
                    except OSError:
                        continue
                    comm = st[st.index("(") + 1:st.rindex(")")]
                    state = st.rsplit(")", 1)[1].split()[0]
                    self.tally[n][(comm if tid != str(pid) else "main", state,
                                   wchan if state != "R" else "(running)")] += 1
            self.samples += 1
            time.sleep(0.01)

    def report(self):
        for n, c in self.tally.items():
            print(f"\nthread states, spoolsync {'a sender' if n == 'a' else 'b receiver'} "
                  f"({self.samples} samples, >= 3 % of a thread's samples):")
            per = collections.Counter()
            for (comm, _, _), k in c.items():
                per[comm] += k
            for (comm, state, wchan), k in sorted(c.items(), key=lambda x: -x[1]):
                if k >= 0.03 * per[comm]:
                    print(f"  {comm:16} {state} {wchan:28} {100.0 * k / per[comm]:5.1f} %")


def thread_cpu(pid):
    """[(tid, comm, user s, sys s)] of PID's threads, oldest first: the main
    thread, then the others in the order they were started."""
    out = []
    tck = os.sysconf("SC_CLK_TCK")
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        v = st.rsplit(")", 1)[1].split()
        out.append((tid, "main" if tid == pid else comm, int(v[11]) / tck,
                    int(v[12]) / tck))
    return out


def spoolsync_run(args, work, src, base):
    dst = os.path.join(base, "ss-dst")
    os.makedirs(dst)
    pair = sb.SpoolPair(work, src, dst)
    perf = []
    sampler = None
    try:
        pair.start("b")
        t0 = time.monotonic()
        pair.start("a", wait_ready=False)
        if args.perf:
            # System-wide, then filtered by process: "-p" on a daemon just
            # started missed the threads it made next.
            perf.append(("all", subprocess.Popen(
                ["perf", "record", "-a", "-g", "-q", "-o", os.path.join(work, "perf.data")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            sampler = WaitSampler({n: pair.d[n].pid for n in ("a", "b")})
            sampler.start()
        pair.wait_in_sync(args.timeout, interval=0.05)
        if sampler:
            sampler.stop = True
            sampler.join(5)
        t = time.monotonic() - t0
        cpu = {n: sb.cpu_s(pair.d[n].pid) for n in ("a", "b")}
        threads = {n: thread_cpu(pair.d[n].pid) for n in ("a", "b")}
        for n, p in perf:
            p.send_signal(2)
            p.wait(60)
        st = pair.peer("a")
        diff = sb.tree_diff(sb.tree(src, mtime=True), sb.tree(dst, mtime=True))
        t_audit, r = pair.audit()
        return {"pids": {n: pair.d[n].pid for n in ("a", "b")}, "sampler": sampler, "t": t, "cpu": cpu, "threads": threads, "diff": len(diff), "files_sent": st["files_sent"],
                "bytes_out": st["bytes_out"], "audit_rc": r.returncode,
                "audit_last": (r.stdout.strip().splitlines() or [""])[-1],
                "log_bytes": sum(harness.file_size(pair.d[n].log_path) for n in "ab")}
    finally:
        for n, p in perf:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        pair.stop()


def perf_report(work, pids):
    data = os.path.join(work, "perf.data")
    if not os.path.exists(data):
        return
    for n in ("a", "b"):
        pid = str(pids[n])
        r = subprocess.run(["perf", "report", "-i", data, "--pid", pid, "--stdio",
                            "--no-children", "--sort", "dso,symbol", "--percent-limit",
                            "1", "-g", "none"],
                           capture_output=True, text=True, timeout=300)
        print(f"\nperf (spoolsync {'a sender' if n == 'a' else 'b receiver'}), "
              f"self time >= 1 %:")
        print("\n".join(line.rstrip(" -") for line in r.stdout.splitlines()
                        if line.strip() and not line.startswith("#")))
        # Who spends it: inclusive time by function (children included).
        r = subprocess.run(["perf", "report", "-i", data, "--pid", pid, "--stdio",
                            "--children", "--sort", "symbol", "--percent-limit", "8",
                            "-g", "none"],
                           capture_output=True, text=True, timeout=300)
        print("inclusive (children included) >= 8 %:")
        print("\n".join(line.rstrip(" -") for line in r.stdout.splitlines()
                        if line.strip() and not line.startswith("#")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--perf", action="store_true", help="perf record -g both daemons")
    ap.add_argument("--loop-ext4", type=int, metavar="MIB", default=0,
                    help="the trees on a fresh journalled ext4 of MIB MiB (3072 will do)")
    args = ap.parse_args()
    work = harness.make_dir("bench-initial")
    fs = None
    try:
        base = work
        if args.loop_ext4:
            fs = sb.LoopExt4(work, args.loop_ext4)
            base = fs.mnt
            print(f"trees on {fs.describe()}")
        src = os.path.join(base, "src")
        t0 = time.monotonic()
        total = sb.gen_spool(src, args.files)
        print(f"spool: {args.files} files, {total / 2**20:.1f} MiB in 10 dirs "
              f"(generated in {time.monotonic() - t0:.1f} s)")
        sb.warm(src)
        os.sync()

        rdst = os.path.join(base, "rsync-dst")
        t_rsync, r = sb.run_timed(["rsync", "-a", src + "/", rdst + "/"])
        if r.returncode != 0:
            print(f"rsync failed ({r.returncode}): {r.stderr}")
        t_sync = sb.timed_sync()
        rdiff = len(sb.tree_diff(sb.tree(src), sb.tree(rdst)))
        # rsync's copy stays until the end: freeing 100,000 inodes just before
        # spoolsync's run makes ext4 search for inodes not recently deleted.
        os.sync()
        sb.warm(src)

        ss = spoolsync_run(args, work, src, base)
        rs_sync = t_rsync + t_sync
        print()
        sb.table([
            ["rsync -a (local)", f"{t_rsync:.2f}", "-", f"{rdiff}", "1.00"],
            ["rsync -a; sync", f"{rs_sync:.2f}", "-", f"{rdiff}",
             f"{rs_sync / t_rsync:.2f}"],
            ["spoolsync a->b", f"{ss['t']:.2f}",
             f"{ss['cpu']['a']:.1f}+{ss['cpu']['b']:.1f}", f"{ss['diff']}",
             f"{ss['t'] / t_rsync:.2f}"],
        ], ["initial sync", "wall s", "cpu s (a+b)", "differences", "x rsync -a"])
        print(f"\nspoolsync / rsync -a        = {ss['t'] / t_rsync:.2f}  (goal <= 1.2)")
        print(f"spoolsync / (rsync -a; sync) = {ss['t'] / rs_sync:.2f}")
        print(f"spoolsync: files_sent {ss['files_sent']}, bytes_out {ss['bytes_out']}, "
              f"audit exit {ss['audit_rc']} ({ss['audit_last']}), "
              f"logs {ss['log_bytes']} bytes")
        for n in ("a", "b"):
            print(f"spoolsync {'a sender' if n == 'a' else 'b receiver'} per-thread "
                  "cpu s (user+sys), in start order: " + ", ".join(
                      f"{c}{i} {u + s:.2f} ({u:.2f}+{s:.2f})"
                      for i, (_, c, u, s) in enumerate(ss["threads"][n])
                      if u + s >= 0.01))
        if args.perf:
            perf_report(work, ss["pids"])
            ss["sampler"].report()
    finally:
        harness.kill_all()
        if fs is not None:
            fs.close()
        harness.cleanup_all()


if __name__ == "__main__":
    main()
