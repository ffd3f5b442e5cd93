# test_spoolsync_kill9.py: kill -9 of the sender or of the receiver in the
# middle of a 200 MiB transfer and of a burst of 1,000 small files.  A thread
# reads every file of the replica all along: each must be a complete version
# the sender wrote (small files carry a length + sha256 header; the big one
# must be its old or its whole new version).  After a restart of the killed
# side the trees converge (independent comparison, then --audit exit 0).

import hashlib
import os
import time

import pytest

import harness

from spoolsync_pair import Pair, write
from spoolsync_torture import TornWatch, accept_checked, checked, wait_converged

BIG = 200 * 1024 * 1024
SIDES = {"sender": "a", "receiver": "b"}


def test_the_torn_file_check_catches_torn_files():
    whole = checked(os.urandom(3000))
    assert accept_checked("x", whole) is None
    for bad in (whole[:-1], whole[:100], b"", whole[:50] + checked(b"other")[50:],
                whole + b"x"):
        assert accept_checked("x", bad) is not None


def temp_files(root):
    out = []
    for dirpath, _, names in os.walk(root):
        out += [os.path.join(dirpath, n) for n in names if n.startswith(".spoolsync.")]
    return out


def replace(path, data):
    """Prosody's way: PATH~ then rename, so every version is whole here."""
    write(path + "~", data)
    os.rename(path + "~", path)


@pytest.mark.parametrize("side", ["sender", "receiver"])
def test_kill9_during_a_200_mib_transfer(daemon_factory, side):
    t0 = time.monotonic()
    p = Pair(daemon_factory, ("send", "receive"))
    old = checked(b"the old version\n")
    write(p.path("a", "big.dat"), old)
    p.start()
    wait_converged(p, timeout=15)

    new = checked(os.urandom(BIG - 44))
    versions = {hashlib.sha256(old).digest(), hashlib.sha256(new).digest()}

    def accept(rel, data):
        if rel == "big.dat":
            return None if hashlib.sha256(data).digest() in versions else \
                f"torn big.dat: {len(data)} bytes"
        return accept_checked(rel, data)

    watch = TornWatch(p.roots["b"], accept)
    watch.start()
    try:
        replace(p.path("a", "big.dat"), new)
        del new
        # mid-transfer: the receiver's temp file has grown past 10 MiB
        harness.wait_until(lambda: any(os.path.getsize(f) > 10 << 20
                                       for f in temp_files(p.roots["b"])
                                       if os.path.exists(f)),
                           20, "a transfer of big.dat under way", interval=0.005)
        killed = SIDES[side]
        p.d[killed].proc.kill9()
        time.sleep(0.5)             # the survivor reacts; the watcher keeps reading
        st = os.stat(p.path("b", "big.dat"))
        assert st.st_size in (len(old), BIG), st.st_size
        p.start(killed)
        took = wait_converged(p, timeout=40)
    finally:
        bad = watch.stop()
    assert not bad, f"torn files seen at the replica: {bad[:5]}"
    assert watch.passes > 3
    assert os.path.getsize(p.path("b", "big.dat")) == BIG
    left = temp_files(p.roots["b"])
    print(f"kill -9 {side} mid 200 MiB: converged {took:.2f}s after the restart, "
          f"{watch.passes} replica scans, {len(left)} temp files left; "
          f"test {time.monotonic() - t0:.1f}s")


@pytest.mark.parametrize("side", ["sender", "receiver"])
def test_kill9_during_a_burst_of_1000_small_files(daemon_factory, side):
    t0 = time.monotonic()
    p = Pair(daemon_factory, ("send", "receive")).start()
    p.wait_in_sync()
    base = "example%2etest/offline"
    os.makedirs(p.path("a", base))
    wait_converged(p, timeout=15)
    watch = TornWatch(p.roots["b"], accept_checked)
    watch.start()
    killed = SIDES[side]
    try:
        for i in range(1000):
            replace(p.path("a", f"{base}/u{i}.dat"),
                    checked(os.urandom(500 + (i * 37) % 7000)))
            if i == 300:
                # some of the burst has landed: kill in the middle of it
                harness.wait_until(lambda: len(os.listdir(p.path("b", base))) > 20,
                                   10, "the burst arriving", interval=0.002)
                arrived = len(os.listdir(p.path("b", base)))
                p.d[killed].proc.kill9()
        time.sleep(0.3)
        p.start(killed)
        took = wait_converged(p, timeout=40)
    finally:
        bad = watch.stop()
    assert not bad, f"torn files seen at the replica: {bad[:5]}"
    assert len(os.listdir(p.path("b", base))) == 1000
    print(f"kill -9 {side} mid burst ({arrived} of 1000 there): converged in "
          f"{took:.2f}s after the restart, {watch.reads} replica reads in "
          f"{watch.passes} scans; test {time.monotonic() - t0:.1f}s")
