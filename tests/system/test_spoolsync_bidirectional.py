# test_spoolsync_bidirectional.py: both nodes write and both see everything,
# without echo loops; a delete travels as a tombstone and never takes the
# other side's new files; simultaneous writes to one file end with the same
# winner on both sides (newest mtime, then node name) and the loser kept in
# conflict_dir, also when the winner is a symlink or a directory; a file
# created on A while B was down survives B's return.

import os
import time

import pytest

import harness
from spoolsync_pair import Pair, write, wait_content, wait_gone


@pytest.fixture
def pair(daemon_factory):
    p = Pair(daemon_factory, ("bidirectional", "bidirectional")).start()
    p.wait_in_sync()
    return p


def test_writes_on_both_sides_meet_without_echo(pair):
    p = pair
    write(p.path("a", "one.test/accounts/alice.dat"), "alice\n")
    write(p.path("b", "two.test/accounts/bob.dat"), "bob\n")
    p.wait_same()
    with open(p.path("b", "one.test/accounts/alice.dat"), "ab") as f:
        f.write(b"edited on b\n")
    wait_content(p.path("a", "one.test/accounts/alice.dat"), "alice\nedited on b\n")
    os.chmod(p.path("a", "two.test/accounts/bob.dat"), 0o600)
    p.wait_same()
    os.rename(p.path("b", "two.test"), p.path("b", "three.test"))
    p.wait_same()
    os.unlink(p.path("a", "one.test/accounts/alice.dat"))
    wait_gone(p.path("b", "one.test/accounts/alice.dat"))
    p.wait_in_sync()
    # no echo: once quiet, nothing more is sent either way
    sa = p.peer_status("a", "b")["files_sent"]
    sb = p.peer_status("b", "a")["files_sent"]
    time.sleep(0.5)
    assert p.peer_status("a", "b")["files_sent"] == sa
    assert p.peer_status("b", "a")["files_sent"] == sb
    assert p.peer_status("a", "b")["conflicts"] == 0
    p.wait_same()


def test_a_delete_never_takes_the_other_sides_new_files(pair):
    p = pair
    d = "one.test/offline"
    write(p.path("a", d + "/old.list"), "old\n")
    p.wait_same()
    p.wait_in_sync()
    p.d["b"].proc.sigstop()
    try:
        os.unlink(p.path("a", d + "/old.list"))     # a deletes what both had
        write(p.path("b", d + "/new.list"), "new on b\n")   # b adds meanwhile
    finally:
        p.d["b"].proc.sigcont()
    wait_gone(p.path("b", d + "/old.list"))
    wait_content(p.path("a", d + "/new.list"), "new on b\n")
    p.wait_same()
    p.wait_in_sync()


def test_simultaneous_writes_end_with_one_winner_and_the_loser_kept(pair):
    p = pair
    rel = "one.test/accounts/carol.dat"
    write(p.path("a", rel), "base\n")
    p.wait_same()
    p.wait_in_sync()
    p.d["b"].proc.sigstop()
    try:
        write(p.path("a", rel), "written on a\n")
        time.sleep(0.05)
        write(p.path("b", rel), "written on b, later\n")   # newer mtime wins
    finally:
        p.d["b"].proc.sigcont()
    wait_content(p.path("a", rel), "written on b, later\n")
    p.wait_same()
    p.wait_in_sync()
    losers = []
    for n in ("a", "b"):
        for dirpath, _, files in os.walk(p.conflicts[n]):
            for f in files:
                with open(os.path.join(dirpath, f), "rb") as fh:
                    losers.append(fh.read())
    assert b"written on a\n" in losers
    assert b"written on b, later\n" not in losers
    total = sum(p.peer_status(n, o)["conflicts"] for n, o in (("a", "b"), ("b", "a")))
    assert total >= 1


def test_same_mtime_conflict_is_won_by_the_greater_node_name(pair):
    p = pair
    rel = "tie.dat"
    write(p.path("a", rel), "base\n")
    p.wait_same()
    p.wait_in_sync()
    p.d["b"].proc.sigstop()
    try:
        write(p.path("a", rel), "from a\n")
        write(p.path("b", rel), "from b\n")
        for n in ("a", "b"):
            os.utime(p.path(n, rel), ns=(1_700_000_000_000_000_000,) * 2)
    finally:
        p.d["b"].proc.sigcont()
    wait_content(p.path("a", rel), "from b\n")
    p.wait_same()


def test_a_file_created_while_the_peer_was_down_survives_its_return(pair):
    p = pair
    write(p.path("b", "shared.dat"), "shared\n")
    p.wait_same()
    p.wait_in_sync()
    p.stop("b")
    write(p.path("a", "made-while-b-was-down.dat"), "keep me\n")
    os.unlink(p.path("a", "shared.dat"))
    p.start("b")
    wait_content(p.path("b", "made-while-b-was-down.dat"), "keep me\n")
    wait_gone(p.path("b", "shared.dat"))
    p.wait_same()
    p.wait_in_sync()
    assert os.path.exists(p.path("a", "made-while-b-was-down.dat"))


def test_trees_seeded_identical_do_not_conflict_on_their_first_edit(daemon_factory):
    p = Pair(daemon_factory, ("bidirectional", "bidirectional"))
    for n in ("a", "b"):            # as if copied with rsync -a before
        for i in range(20):
            write(p.path(n, f"h/accounts/u{i}.dat"), f"user {i}\n")
            os.utime(p.path(n, f"h/accounts/u{i}.dat"), ns=(10**18, 10**18))
    p.start()
    p.wait_in_sync()
    with open(p.path("a", "h/accounts/u1.dat"), "ab") as f:
        f.write(b"edited on a\n")
    with open(p.path("b", "h/accounts/u2.dat"), "ab") as f:
        f.write(b"edited on b\n")
    p.wait_same()
    p.wait_in_sync()
    for n, o in (("a", "b"), ("b", "a")):
        assert p.peer_status(n, o)["conflicts"] == 0
    assert not os.path.exists(p.conflicts["a"]) and not os.path.exists(p.conflicts["b"])


def _make(path, kind, mtime_ns):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "file":
        write(path, "the loser's bytes\n")
    elif kind == "symlink":
        os.symlink("somewhere/else", path)
    else:
        os.mkdir(path)
    os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


@pytest.mark.parametrize("winner", ["symlink", "directory"])
@pytest.mark.parametrize("loser_on", ["a", "b"])
def test_a_file_losing_to_another_type_is_kept(pair, winner, loser_on):
    p = pair
    rel = "one.test/accounts/dave.dat"
    winner_on = "b" if loser_on == "a" else "a"
    write(p.path("a", "one.test/accounts/base.dat"), "base\n")
    p.wait_same()
    p.wait_in_sync()
    now = time.time_ns()
    p.d["b"].proc.sigstop()
    try:
        _make(p.path(loser_on, rel), "file", now - 10_000_000_000)
        _make(p.path(winner_on, rel), winner, now)      # newer: it wins
    finally:
        p.d["b"].proc.sigcont()
    check = os.path.islink if winner == "symlink" else os.path.isdir
    harness.wait_until(lambda: check(p.path(loser_on, rel)), 15,
                       f"{loser_on}'s {rel} to be a {winner}")
    p.wait_same()
    p.wait_in_sync()
    losers = []
    for n in ("a", "b"):
        for dirpath, _, files in os.walk(p.conflicts[n]):
            for f in files:
                with open(os.path.join(dirpath, f), "rb") as fh:
                    losers.append(fh.read())
    assert b"the loser's bytes\n" in losers
