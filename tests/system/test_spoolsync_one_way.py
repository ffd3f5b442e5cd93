# test_spoolsync_one_way.py: a send node's spool appears at its receive peer,
# exactly: creates, rewrites, appends, deletes, renames, new directories,
# permission changes and symlinks, with mode and nanosecond mtime kept, and
# the status says in sync once it is.

import os

import pytest

from spoolsync_pair import Pair, write, wait_content, wait_gone


@pytest.fixture
def pair(daemon_factory):
    return Pair(daemon_factory, ("send", "receive")).start()


def test_existing_tree_is_copied_at_first_contact(daemon_factory):
    p = Pair(daemon_factory, ("send", "receive"))
    write(p.path("a", "example%2etest/accounts/alice.dat"), "return { p = 1 };\n", 0o640)
    write(p.path("a", "example%2etest/offline/bob.list"), "item({});\n" * 50)
    os.symlink("accounts/alice.dat", p.path("a", "example%2etest/link"))
    p.start()
    p.wait_same()
    p.wait_in_sync()
    st = p.peer_status("a", "b")
    assert st["files_sent"] >= 3
    assert st["last_error"] is None


def test_every_kind_of_change_replicates(pair):
    p = pair
    p.wait_in_sync()
    f = p.path("a", "host/accounts/alice.dat")
    write(f, "one\n", 0o640)
    wait_content(p.path("b", "host/accounts/alice.dat"), "one\n")
    p.wait_same()

    write(f, "two, longer\n")                       # rewrite
    p.wait_same()
    with open(f, "ab") as fh:                       # append
        fh.write(b"appended\n")
    p.wait_same()
    os.chmod(f, 0o600)                              # permission change
    p.wait_same()
    os.mkdir(p.path("a", "host/newdir"), 0o750)     # empty directory
    p.wait_same()
    os.rename(f, p.path("a", "host/accounts/alice2.dat"))   # rename
    p.wait_same()
    os.symlink("alice2.dat", p.path("a", "host/accounts/ln"))
    p.wait_same()
    os.unlink(p.path("a", "host/accounts/alice2.dat"))     # delete
    wait_gone(p.path("b", "host/accounts/alice2.dat"))
    p.wait_same()
    os.utime(p.path("a", "host/accounts/ln"), ns=(1, 1), follow_symlinks=False)
    p.wait_same()
    p.wait_in_sync()


def test_mkdir_then_write_at_once_and_a_directory_move(pair):
    p = pair
    p.wait_in_sync()
    d = p.path("a", "h/offline")
    os.makedirs(d)
    for i in range(20):
        write(os.path.join(d, f"u{i}.list"), f"item({i});\n")
    p.wait_same()
    os.rename(d, p.path("a", "h/offline-moved"))
    p.wait_same()
    assert not os.path.exists(p.path("b", "h/offline"))
    os.makedirs(p.path("a", "h/x/y/z"))
    os.rename(p.path("a", "h/offline-moved"), p.path("a", "h/x/y/z/deep"))
    p.wait_same()
    p.wait_in_sync()


def test_a_big_file_edited_in_the_middle_goes_as_a_delta(pair):
    p = pair
    p.wait_in_sync()
    big = p.path("a", "archive.list")
    data = bytearray(os.urandom(3 * 1024 * 1024))
    write(big, bytes(data))
    p.wait_same()
    before = p.peer_status("a", "b")
    data[1_500_000] ^= 0xff
    write(big, bytes(data))
    p.wait_same()
    p.wait_in_sync()
    after = p.peer_status("a", "b")
    literal = after["bytes_literal"] - before["bytes_literal"]
    matched = after["bytes_matched"] - before["bytes_matched"]
    assert matched > 2_900_000, (literal, matched)
    assert literal < 64 * 1024, (literal, matched)


def test_an_append_sends_only_the_tail(pair):
    p = pair
    p.wait_in_sync()
    f = p.path("a", "offline/bob.list")
    write(f, b"x" * 200_000)
    p.wait_same()
    p.wait_in_sync()
    before = p.peer_status("a", "b")
    with open(f, "ab") as fh:
        fh.write(b"item({new});\n")
    p.wait_same()
    p.wait_in_sync()
    after = p.peer_status("a", "b")
    assert after["bytes_literal"] - before["bytes_literal"] == len(b"item({new});\n")
    assert after["bytes_matched"] - before["bytes_matched"] == 200_000


def test_status_table_and_json_name_the_peer(pair):
    p = pair
    p.wait_in_sync()
    r = p.d["a"].cli("status")
    assert r.returncode == 0
    assert "PEER" in r.stdout and "IN_SYNC" in r.stdout and "\nb " in r.stdout
    st = p.d["b"].http_get("/status").json()
    assert st["node"] == "b" and st["mode"] == "receive"
    peer = st["peers"][0]
    for key in ("name", "connected", "in_sync", "queued", "lag_ms", "bytes_literal",
                "bytes_matched", "files_sent", "files_received", "conflicts",
                "last_error"):
        assert key in peer
    m = p.d["a"].http_get("/metrics").body
    assert 'spoolsync_peer_in_sync{peer="b"} 1' in m
    assert 'spoolsync_peer_connected{peer="b"} 1' in m
