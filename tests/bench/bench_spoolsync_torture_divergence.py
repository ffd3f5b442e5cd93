#!/usr/bin/python3
# bench_spoolsync_torture_divergence.py: the same seeded torture workload
# (same-second same-size rewrites, Prosody-style and in place, appends to
# .list files, renames, directory moves, mkdir-then-write, deletes, chmod) run
# against spoolsync (send -> receive) and lsyncd (default.rsync to a local
# dir, delay = 0) in one run; after a settle time, the divergences an
# independent sha256 + mode + type comparison finds, and spoolsync's --audit.
#
#   tests/bench/bench_spoolsync_torture_divergence.py [--seconds 6] [--settle 10]
#
# A benchmark, not a test: it prints figures and never fails on a number.

import argparse
import os
import random
import shutil
import time

import spoolbench as sb
from spoolbench import harness

HOST = "data/example%2etest"


def wr(path, data, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def prosody_write(path, data):
    """Prosody's way: PATH~ then rename over PATH, no fsync."""
    wr(path + "~", data)
    os.rename(path + "~", path)


def prepare(root, n=300):
    for i in range(n):
        store = ("accounts", "roster", "vcard")[i % 3]
        wr(os.path.join(root, HOST, store, f"user{i}.dat"),
           f"return {{ n = {i} }};\n".encode() + b"x" * (100 + i % 200))
    for i in range(50):
        wr(os.path.join(root, HOST, "offline", f"user{i}.list"), b"item({});\n")


def at_second_start():
    """Sleep until just after a whole second: the next 0.9 s are one second."""
    frac = time.time() % 1
    time.sleep((1 - frac) + 0.02)


def same_second_rewrites(root, rounds, base=0):
    """ROUNDS pairs, each: write A, wait for a replicator to copy it, write B
    of the same size in the same second.  Half by rename, half in place."""
    for k in range(base, base + rounds):
        p = os.path.join(root, HOST, "accounts", f"same{k}.dat")
        at_second_start()
        a = f"return {{ password = \"A{k:03d}\" }};\n".encode()
        b = f"return {{ password = \"B{k:03d}\" }};\n".encode()
        w = prosody_write if k % 2 == 0 else wr
        w(p, a)
        time.sleep(0.4)
        w(p, b)
        assert len(a) == len(b)


def mixed(root, seconds, rate, rnd):
    """Random operations at RATE/s for SECONDS; bounded by their count."""
    n = int(seconds * rate)
    t0 = time.monotonic()
    moved = 0
    for i in range(n):
        d = t0 + i / rate - time.monotonic()
        if d > 0:
            time.sleep(d)
        op = rnd.random()
        store = rnd.choice(("accounts", "roster", "vcard"))
        sdir = os.path.join(root, HOST, store)
        names = sorted(os.listdir(sdir)) if os.path.isdir(sdir) else []
        names = [x for x in names if x.endswith(".dat")]
        try:
            if op < 0.30 and names:          # rewrite, size varies
                prosody_write(os.path.join(sdir, rnd.choice(names)),
                              f"return {{ i = {i} }};\n".encode() + b"y" * rnd.randint(0, 300))
            elif op < 0.50:                  # append to an offline list
                with open(os.path.join(root, HOST, "offline",
                                       f"user{rnd.randrange(60)}.list"), "ab") as f:
                    f.write(f"item({{ i = {i} }});\n".encode())
            elif op < 0.60 and names:        # rename, within or across stores
                to = os.path.join(root, HOST, rnd.choice(("accounts", "roster", "vcard")),
                                  f"ren{i}.dat")
                os.rename(os.path.join(sdir, rnd.choice(names)), to)
            elif op < 0.70 and names:        # delete
                os.unlink(os.path.join(sdir, rnd.choice(names)))
            elif op < 0.80 and names:        # chmod
                os.chmod(os.path.join(sdir, rnd.choice(names)),
                         rnd.choice((0o600, 0o640, 0o644, 0o660)))
            elif op < 0.90:                  # new file
                wr(os.path.join(sdir, f"new{i}.dat"), f"return {{ new = {i} }};\n".encode())
            elif op < 0.97:                  # mkdir, then write at once
                nd = os.path.join(root, HOST, f"pep{i}")
                os.mkdir(nd)
                for j in range(5):
                    wr(os.path.join(nd, f"node{j}.dat"), f"pep {i} {j}\n".encode())
            else:                            # move a whole directory
                dirs = sorted(x for x in os.listdir(os.path.join(root, HOST))
                              if x.startswith("pep"))
                if dirs:
                    moved += 1
                    os.rename(os.path.join(root, HOST, rnd.choice(dirs)),
                              os.path.join(root, HOST, f"moved{i}"))
        except FileNotFoundError:
            pass


def workload(root, args):
    rnd = random.Random(args.seed)
    same_second_rewrites(root, args.rewrites)
    mixed(root, args.seconds, args.rate, rnd)
    same_second_rewrites(root, 2, base=100)    # two last pairs right before the settle


def classify(src, dst):
    a, b = sb.tree(src, mtime=False), sb.tree(dst, mtime=False)
    kinds = {"missing at replica": 0, "extra at replica": 0, "content differs": 0,
             "mode differs": 0, "type differs": 0}
    examples, same_lost = [], 0
    for k, x, y in sb.tree_diff(a, b):
        if os.path.basename(k).startswith("same") and x and y and x[0] == y[0] == "f" \
                and x[4] != y[4]:
            same_lost += 1
        if y is None:
            kinds["missing at replica"] += 1
        elif x is None:
            kinds["extra at replica"] += 1
        elif x[0] != y[0]:
            kinds["type differs"] += 1
        elif x[0] == "f" and (x[2], x[4]) != (y[2], y[4]):
            kinds["content differs"] += 1
        else:
            kinds["mode differs"] += 1
        examples.append((k, x, y))
    # Content differences first: they are the ones that lose data.
    examples.sort(key=lambda e: not (e[1] and e[2] and e[1][-1] != e[2][-1]))
    kinds["same-second rewrite lost"] = same_lost
    return sum(v for k, v in kinds.items() if k != "same-second rewrite lost"), \
        kinds, examples[:5], len(a)


def settle(src, dst, seconds):
    """Seconds until the trees compare equal, or None; at most SECONDS."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if classify(src, dst)[0] == 0:
            return time.monotonic() - t0
        time.sleep(0.25)
    return None


def run_spoolsync(args, work):
    src, dst = os.path.join(work, "ss-src"), os.path.join(work, "ss-dst")
    prepare(src)
    os.makedirs(dst)
    pair = sb.SpoolPair(work, src, dst)
    try:
        pair.start()
        pair.wait_in_sync(60)
        t0 = time.monotonic()
        workload(src, args)
        print(f"spoolsync: workload ran {time.monotonic() - t0:.1f} s")
        conv = settle(src, dst, args.settle)
        total, kinds, ex, n = classify(src, dst)
        claims = pair.in_sync("a")
        _, r = pair.audit()
        st = pair.http_status("a")
        return {"total": total, "kinds": kinds, "ex": ex, "n": n, "conv": conv,
                "audit_rc": r.returncode, "claims": claims,
                "audit_last": (r.stdout.strip().splitlines() or [""])[-1],
                "ae_runs": st["peers"][0]["anti_entropy"]["runs"],
                "overflows": st["overflows"]}
    finally:
        pair.stop()


def run_lsyncd(args, work):
    src, dst = os.path.join(work, "ls-src"), os.path.join(work, "ls-dst")
    prepare(src)
    os.makedirs(dst)
    conf = os.path.join(work, "lsyncd.lua")
    with open(conf, "w") as f:
        f.write(f'settings {{ nodaemon = true, logfile = "{work}/lsyncd.log", '
                f'statusFile = "{work}/lsyncd.status" }}\n'
                f'sync {{ default.rsync, source = "{src}", target = "{dst}", '
                f'delay = 0 }}\n')
    proc = harness.spawn(["lsyncd", conf], os.path.join(work, "lsyncd.out"), name="lsyncd")
    try:
        harness.wait_until(lambda: classify(src, dst)[0] == 0, 60, "lsyncd's startup sync",
                           interval=0.2)
        time.sleep(1)
        t0 = time.monotonic()
        workload(src, args)
        print(f"lsyncd: workload ran {time.monotonic() - t0:.1f} s")
        conv = settle(src, dst, args.settle)
        total, kinds, ex, n = classify(src, dst)
        return {"total": total, "kinds": kinds, "ex": ex, "n": n, "conv": conv,
                "alive": proc.alive()}
    finally:
        proc.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6, help="of the mixed workload")
    ap.add_argument("--rate", type=float, default=200, help="mixed operations per second")
    ap.add_argument("--rewrites", type=int, default=6, help="same-second rewrite pairs")
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--no-lsyncd", action="store_true")
    args = ap.parse_args()
    work = harness.make_dir("bench-torture")
    try:
        ss = run_spoolsync(args, work)
        ls = run_lsyncd(args, work) if shutil.which("lsyncd") and not args.no_lsyncd \
            else None
        print()
        kinds = list(ss["kinds"])
        rows = [["entries in the source tree", ss["n"], ls["n"] if ls else "-"]]  # noqa
        rows.append(["divergences after settle", ss["total"], ls["total"] if ls else "-"])
        for k in kinds:
            label = f"  of which: {k} (of {args.rewrites + 2} pairs)" \
                if k.startswith("same") else "  " + k
            rows.append([label, ss["kinds"][k], ls["kinds"][k] if ls else "-"])
        f = lambda c: f"{c:.2f} s" if c is not None else f"not within {args.settle:g} s"  # noqa: E731
        rows.append(["identical after", f(ss["conv"]), f(ls["conv"]) if ls else "-"])
        rows.append(["status says in_sync after settle", ss["claims"], "-"])
        rows.append(["--audit exit (0 = identical)", ss["audit_rc"], "-"])
        sb.table(rows, ["torture workload", "spoolsync", "lsyncd delay=0"])
        print(f"\nspoolsync --audit: {ss['audit_last']}; anti-entropy runs "
              f"{ss['ae_runs']}, inotify overflows {ss['overflows']}")
        for name, r in (("spoolsync", ss), ("lsyncd", ls)):
            for k, x, y in (r or {}).get("ex", []):
                print(f"{name} example: {k}: source {x} replica {y}")
        print("goal: 0 divergences")
    finally:
        harness.cleanup_all()


if __name__ == "__main__":
    main()
