# test_spoolsync_same_second_rewrites.py: rewrites of one file within one
# second, all the same size, all arrive (rsync's quick check, and so lsyncd,
# compares whole seconds and loses them), even when the writer puts the old
# mtime back, and whether the writer replaces the file (Prosody's x.dat~ ->
# x.dat) or writes it in place.

import os
import time

import pytest

from spoolsync_pair import Pair, write, wait_content


@pytest.fixture
def pair(daemon_factory):
    p = Pair(daemon_factory, ("send", "receive")).start()
    p.wait_in_sync()
    return p


def test_five_in_place_rewrites_in_one_second_all_arrive(pair):
    p = pair
    f = p.path("a", "host/accounts/alice.dat")
    write(f, "version-0\n")
    wait_content(p.path("b", "host/accounts/alice.dat"), "version-0\n")
    t0 = time.time()
    for i in range(1, 6):
        write(f, f"version-{i}\n")
        wait_content(p.path("b", "host/accounts/alice.dat"), f"version-{i}\n",
                     timeout=2.0)
    assert time.time() - t0 < 1.5
    p.wait_same()


def test_rewrites_that_put_the_old_mtime_back_all_arrive(pair):
    p = pair
    f = p.path("a", "same.dat")
    write(f, "AAAA\n")
    st = os.stat(f)
    wait_content(p.path("b", "same.dat"), "AAAA\n")
    for i, body in enumerate(["BBBB\n", "CCCC\n", "DDDD\n", "EEEE\n", "FFFF\n"]):
        write(f, body)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))   # as rsync -t would
        wait_content(p.path("b", "same.dat"), body, timeout=2.0)
    assert os.stat(p.path("b", "same.dat")).st_mtime_ns == st.st_mtime_ns
    p.wait_same()


def test_prosody_style_replace_by_rename_arrives_each_time(pair):
    p = pair
    f = p.path("a", "example%2etest/roster/alice.dat")
    write(f, "return {};\n")
    p.wait_same()
    for i in range(5):
        tmp = f + "~"
        write(tmp, f"return {{ n = {i} }};\n")
        os.rename(tmp, f)
        wait_content(p.path("b", "example%2etest/roster/alice.dat"),
                     f"return {{ n = {i} }};\n", timeout=2.0)
    assert not os.path.exists(p.path("b", "example%2etest/roster/alice.dat~"))
    p.wait_same()
