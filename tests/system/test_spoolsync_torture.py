# test_spoolsync_torture.py: a torture workload on the sender (same-second
# same-size rewrites, mkdir-then-write at once, rename storms of files and
# directories, directory moves, .list appends, chmod/chown, deletes, Prosody's
# x.dat~ -> x.dat, and a forced inotify overflow) ends with --audit exit 0 and
# trees identical by an independent sha256 + mode + size + owner comparison.

import os
import pwd
import grp
import random
import shutil
import time

from spoolsync_pair import Pair, write
from spoolsync_torture import wait_converged

HOST = "example%2etest"


def max_queued_events():
    with open("/proc/sys/fs/inotify/max_queued_events") as f:
        return int(f.read())


def same_second_rewrites(p, rng):
    """Five same-size rewrites per file, each putting the old mtime back."""
    for i in range(20):
        f = p.path("a", f"{HOST}/accounts/u{i}.dat")
        write(f, f"v0-{i:04d}\n")
        st = os.stat(f)
        for v in range(1, 6):
            write(f, f"v{v}-{i:04d}\n")
            os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


def mkdir_then_write(p, rng):
    for d in range(30):
        base = p.path("a", f"{HOST}/new{d}/deep/er")
        os.makedirs(base)
        for i in range(5):
            write(os.path.join(base, f"f{i}.dat"), os.urandom(rng.randint(1, 3000)))


def rename_storm(p, rng):
    base = p.path("a", f"{HOST}/storm")
    os.makedirs(base)
    for i in range(50):
        write(os.path.join(base, f"s{i}.dat"), f"storm {i}\n" * (i + 1))
    # files renamed over each other and around, in bursts that the daemon
    # sees both whole and cut in the middle (a pause of a few ms between)
    for burst in range(20):
        for _ in range(30):
            a, b = rng.randrange(60), rng.randrange(60)
            src, dst = os.path.join(base, f"s{a}.dat"), os.path.join(base, f"s{b}.dat")
            if os.path.exists(src):
                os.rename(src, dst)
        time.sleep(0.002 * (burst % 5))
    for i in range(10):         # a directory renamed in a chain, then back
        d = p.path("a", f"{HOST}/dir{i}")
        os.makedirs(os.path.join(d, "sub"))
        write(os.path.join(d, "sub/x.dat"), f"dir {i}\n")
        for k in range(5):
            os.rename(d, d + f".r{k}")
            d = d + f".r{k}"
        os.rename(d, p.path("a", f"{HOST}/dir{i}"))


def directory_moves(p, rng):
    src = p.path("a", f"{HOST}/tree")
    for i in range(40):
        write(os.path.join(src, f"d{i % 4}/f{i}.dat"), os.urandom(200 + i))
    os.makedirs(p.path("a", "moved/into"))
    os.rename(src, p.path("a", "moved/into/tree"))          # whole tree moves
    os.rename(p.path("a", "moved/into/tree/d1"), p.path("a", f"{HOST}/d1-out"))
    write(p.path("a", "moved/into/tree/d2/after-move.dat"), "written after the move\n")


def appends(p, rng):
    for u in range(10):
        f = p.path("a", f"{HOST}/offline/u{u}.list")
        os.makedirs(os.path.dirname(f), exist_ok=True)
        for m in range(30):
            with open(f, "ab") as fh:
                fh.write(f"item({{ to = \"u{u}\", n = {m} }});\n".encode())
            with open(f[:-5] + ".lidx", "ab") as fh:
                fh.write(os.urandom(8))


def chmod_chown(p, rng):
    nobody = pwd.getpwnam("nobody").pw_uid
    nogroup = grp.getgrnam("nogroup").gr_gid
    for i in range(20):
        f = p.path("a", f"{HOST}/perm/p{i}.dat")
        write(f, f"perm {i}\n")
        os.chmod(f, [0o600, 0o640, 0o644, 0o400, 0o755][i % 5])
        if i % 2 == 0:
            os.chown(f, nobody, nogroup)
    os.chmod(p.path("a", f"{HOST}/perm"), 0o750)
    # metadata only: a chmod of an unchanged file
    os.chmod(p.path("a", f"{HOST}/perm/p1.dat"), 0o604)


def deletes(p, rng):
    for i in range(0, 20, 3):
        os.unlink(p.path("a", f"{HOST}/accounts/u{i}.dat"))
    shutil.rmtree(p.path("a", f"{HOST}/new7"))
    for i in range(10):         # created and deleted before anyone looks
        f = p.path("a", f"{HOST}/ephemeral{i}.dat")
        write(f, "brief\n")
        os.unlink(f)


def prosody_replace(p, rng):
    for i in range(30):
        f = p.path("a", f"{HOST}/roster/r{i % 5}.dat")
        os.makedirs(os.path.dirname(f), exist_ok=True)
        write(f + "~", f"return {{ n = {i} }};\n")
        os.rename(f + "~", f)


def flood(p, n_files, tag):
    """About 3 events per file (IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE) plus a
    rename and a delete each on some: returns the number of events made."""
    base = p.path("a", f"{HOST}/flood-{tag}")     # made and watched before
    events = 0
    for i in range(n_files):
        fd = os.open(os.path.join(base, f"m{i}.dat"), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"%d\n" % i)
        os.close(fd)
        events += 3
    for i in range(0, n_files, 4):
        os.rename(os.path.join(base, f"m{i}.dat"), os.path.join(base, f"r{i}.dat"))
        events += 2              # IN_MOVED_FROM + IN_MOVED_TO
    for i in range(1, n_files, 4):
        os.unlink(os.path.join(base, f"m{i}.dat"))
        events += 1
    return events


def test_torture_workload_converges_with_audit_zero(daemon_factory):
    t_start = time.monotonic()
    rng = random.Random(1234)
    p = Pair(daemon_factory, ("send", "receive"))
    write(p.path("a", f"{HOST}/accounts/seed.dat"), "seed\n")
    p.start()
    wait_converged(p, timeout=15)

    for step in (same_second_rewrites, mkdir_then_write, rename_storm,
                 directory_moves, appends, chmod_chown, deletes, prosody_replace):
        step(p, rng)
    t_workload = wait_converged(p, timeout=30)
    print(f"torture workload converged in {t_workload:.2f}s")
    # the replica really kept nobody/nogroup and the modes
    st = os.stat(p.path("b", f"{HOST}/perm/p0.dat"))
    assert (st.st_uid, st.st_gid) == (pwd.getpwnam("nobody").pw_uid,
                                     grp.getgrnam("nogroup").gr_gid)
    assert os.stat(p.path("b", f"{HOST}/perm/p1.dat")).st_mode & 0o7777 == 0o604

    # A forced inotify overflow: more events than the kernel queues
    # (max_queued_events, not changed here), made while the sender's watcher
    # cannot drain the queue (SIGSTOP), so the overflow is certain.
    limit = max_queued_events()
    n_files = limit // 3 + 2000
    # inotify reports only in watched directories: the flood's exists first
    os.makedirs(p.path("a", f"{HOST}/flood-stopped"))
    wait_converged(p, timeout=15)
    before = p.status("a")["overflows"]
    t_flood = time.monotonic()
    p.d["a"].proc.sigstop()
    try:
        events = flood(p, n_files, "stopped")
        # and the kinds of changes an overflow must not lose
        os.unlink(p.path("a", f"{HOST}/accounts/u1.dat"))
        os.rename(p.path("a", f"{HOST}/dir3"), p.path("a", f"{HOST}/dir3-moved"))
        write(p.path("a", f"{HOST}/accounts/u2.dat"), "rewritten during overflow\n")
        os.chmod(p.path("a", f"{HOST}/perm/p2.dat"), 0o611)
    finally:
        p.d["a"].proc.sigcont()
    t_flood = time.monotonic() - t_flood
    assert events > limit
    t_ovf = wait_converged(p, timeout=40)
    after = p.status("a")["overflows"]
    assert after > before, f"no overflow seen by the sender ({before} -> {after})"
    assert "inotify queue overflowed" in p.d["a"].log_text()
    print(f"overflow: flood made in {t_flood:.2f}s, {events} events (max_queued_events {limit}), "
          f"{after - before} overflow(s) seen, converged in {t_ovf:.2f}s; "
          f"test total {time.monotonic() - t_start:.1f}s")
