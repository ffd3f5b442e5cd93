# test_spoolsync_recv_gaps.py: two receiver gaps, closed.  A directory the
# receiver has to make because a file came before its MKDIR is like its parent
# (never 0700), and the MKDIR still sets the exact mode and owner; trees
# converge exactly.  A conflict's losing copy is written off the event loop
# (the daemon answers while the copy's fsync is slow), through a temp file
# renamed into conflict_dir, and counted.

import hashlib
import os
import stat
import struct
import subprocess
import threading
import time

import pytest

import harness
from spoolsync_pair import Pair, write, wait_content
from test_spoolsync_hostile_peer import (Peer, FILE_BEGIN, FILE_DATA, FILE_END, MKDIR,
                                         _no_temp_files)


def _mode_owner(path):
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


@pytest.fixture
def evil_pair(daemon_factory):
    """a (send) -> b (receive); b also takes changes from 'evil', which is us."""
    evil_port = harness.free_port()
    p = Pair(daemon_factory, ("send", "receive"))
    cfg = p.d["b"].config
    cfg["peers"] = [{"name": "a", "address": f"127.0.0.1:{p.ports['a']}"},
                    {"name": "evil", "address": f"127.0.0.1:{evil_port}"}]
    p.d["b"].write_config(cfg)
    write(p.path("a", "good.dat"), "good\n")
    p.start()
    p.wait_same()
    with open(p.key, "rb") as f:
        key = f.read()
    return p, key


def test_a_directory_made_before_its_mkdir_is_like_its_parent_then_exact(evil_pair):
    p, key = evil_pair
    root = p.roots["b"]
    os.chown(root, 4321, 4322)
    os.chmod(root, 0o751)
    ev = Peer(p.ports["b"], key)
    ev.hello()
    ev.file(1, "late.test/offline/bob.list", b"item({});\n")
    assert ev.ack_status()[0] == 0
    # the file is there before its directories' MKDIRs: they are like the root
    for d in ("late.test", "late.test/offline"):
        assert _mode_owner(os.path.join(root, d)) == (0o751, 4321, 4322), d
    with open(os.path.join(root, "late.test/offline/bob.list"), "rb") as f:
        assert f.read() == b"item({});\n"
    # the MKDIRs arrive: exact mode and owner
    ev.send_raw(MKDIR, Peer.s16(b"late.test") +
                struct.pack(">IIIq", 0o710, 1001, 1002, 0))
    assert ev.ack_status()[0] == 0
    ev.send_raw(MKDIR, Peer.s16(b"late.test/offline") +
                struct.pack(">IIIq", 0o2750, 1003, 1004, 0))
    assert ev.ack_status()[0] == 0
    assert _mode_owner(os.path.join(root, "late.test")) == (0o710, 1001, 1002)
    assert _mode_owner(os.path.join(root, "late.test/offline")) == \
        (0o2750, 1003, 1004)
    ev.close()
    _no_temp_files(root)


def test_new_directories_with_odd_modes_and_owners_converge_exactly(daemon_factory):
    p = Pair(daemon_factory, ("send", "receive")).start()
    p.wait_in_sync()
    # A tree made aside, then moved in whole: the sender finds its files and
    # directories at once, in whatever order its scan ships them.
    stage = os.path.join(p.dir, "stage")
    for i in range(20):
        write(os.path.join(stage, f"odd.test/accounts/u{i}.dat"),
              f"return {{ n = {i} }};\n")
        write(os.path.join(stage, f"odd.test/offline/deep/q{i}.list"),
              "item({});\n" * i)
    modes = {"odd.test": (0o751, 1101, 1102), "odd.test/accounts": (0o710, 1103, 1104),
             "odd.test/offline": (0o2770, 1105, 1106),
             "odd.test/offline/deep": (0o750, 1107, 1108)}
    for d, (mode, uid, gid) in sorted(modes.items(), reverse=True):
        os.chown(os.path.join(stage, d), uid, gid)
        os.chmod(os.path.join(stage, d), mode)
    os.rename(os.path.join(stage, "odd.test"), p.path("a", "odd.test"))
    p.wait_same(timeout=30)
    p.wait_in_sync(timeout=30)
    for d, want in modes.items():
        assert _mode_owner(p.path("b", d)) == want, d
    rc, data, r = p.audit("a")
    assert rc == 0, r.stdout + r.stderr
    assert data["identical"] is True


SHIM = r"""
#define _GNU_SOURCE
#include <sys/stat.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* fsync of a file beneath $SLOW_FSYNC_UNDER takes $SLOW_FSYNC_MS longer. */
int
fsync(int fd)
{
	static int	(*real)(int);
	const char	*under = getenv("SLOW_FSYNC_UNDER"), *ms;
	char		 link[64], path[4096];
	struct stat	 st;
	ssize_t		 n;

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	if (under != NULL && *under != '\0' &&
	    (ms = getenv("SLOW_FSYNC_MS")) != NULL &&
	    fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n > 0) {
			path[n] = '\0';
			if (strncmp(path, under, strlen(under)) == 0)
				usleep((useconds_t)atoi(ms) * 1000);
		}
	}
	return real(fd);
}
"""

SLOW_MS = 2500
CONFLICT = 4        # WIRE_ST_CONFLICT


def _slow_fsync_under(d, shim, under):
    """Daemon D runs with fsync beneath UNDER slowed down by SLOW_MS."""
    base = d.env

    def env():
        e = base()
        e.update(LD_PRELOAD=shim, SLOW_FSYNC_UNDER=under, SLOW_FSYNC_MS=str(SLOW_MS))
        return e
    d.env = env


class Poller(threading.Thread):
    """GET /status from each daemon again and again: the slowest answer."""

    def __init__(self, daemons):
        super().__init__(daemon=True)
        self.daemons = daemons
        self.worst = [0.0] * len(daemons)
        self.errors = []
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            for i, d in enumerate(self.daemons):
                t0 = time.monotonic()
                try:
                    r = d.http_get("/status", timeout=30)
                    if r.status != 200:
                        self.errors.append(r.status)
                except OSError as e:
                    self.errors.append(repr(e))
                self.worst[i] = max(self.worst[i], time.monotonic() - t0)
            time.sleep(0.05)

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=60)


def _losers(p):
    out = {}
    for n in p.names:
        for dirpath, _, files in os.walk(p.conflicts[n]):
            for f in files:
                if f.startswith(".spoolsync."):
                    continue    # being written: it appears whole, renamed
                with open(os.path.join(dirpath, f), "rb") as fh:
                    out[(n, os.path.relpath(os.path.join(dirpath, f),
                                            p.conflicts[n]))] = fh.read()
    return out


def _no_temps_under(d):
    for dirpath, _, files in os.walk(d):
        assert not [f for f in files if f.startswith(".spoolsync.")], dirpath


@pytest.fixture
def shim(workdir):
    src = os.path.join(workdir, "slowfsync.c")
    so = os.path.join(workdir, "slowfsync.so")
    with open(src, "w") as f:
        f.write(SHIM)
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", so, src, "-ldl"],
                   check=True, capture_output=True)
    return so


def _file_begin(ev, xfer, path, data, mtime_ns, vv):
    """FILE_BEGIN of a whole file with version vector VV ({node: counter})."""
    payload = (struct.pack(">Q", xfer) + Peer.s16(path.encode()) +
               struct.pack(">BBQ", 1, 1, len(data)) +
               struct.pack(">IIIq", 0o640, 0, 0, mtime_ns) +
               hashlib.sha256(data).digest() + struct.pack(">QH", 0, len(vv)))
    for node, counter in vv.items():
        payload += Peer.s16(node.encode()) + struct.pack(">Q", counter)
    ev.send_raw(FILE_BEGIN, payload)
    ev.send_raw(FILE_DATA, struct.pack(">QI", xfer, len(data)) + data)
    ev.send_raw(FILE_END, struct.pack(">Q", xfer))


def test_both_kinds_of_loser_are_kept_off_the_event_loop(daemon_factory, shim):
    """a (bidirectional) and 'evil', a bidirectional peer that is us, write
    the same paths concurrently: evil's newer version wins over a's (a keeps
    its own first), evil's older one loses (a keeps evil's).  Every fsync in
    conflict_dir takes SLOW_MS; a's loop answers meanwhile."""
    evil_port = harness.free_port()
    p = Pair(daemon_factory, ("bidirectional", "bidirectional"))
    cfg = p.d["a"].config
    cfg["peers"].append({"name": "evil", "address": f"127.0.0.1:{evil_port}"})
    p.d["a"].write_config(cfg)
    _slow_fsync_under(p.d["a"], shim, p.conflicts["a"])
    write(p.path("a", "x.dat"), "ours on a, loses\n")
    write(p.path("a", "y.dat"), "ours on a, wins\n")
    p.start()
    p.wait_same()
    with open(p.key, "rb") as f:
        key = f.read()
    ev = Peer(p.ports["a"], key, node="evil", mode=3)
    ev.hello()
    ev.s.settimeout(SLOW_MS / 1000.0 + 10)     # an ack waits for a's copy
    poller = Poller([p.d["a"]])
    poller.start()
    try:
        now = time.time_ns()
        _file_begin(ev, 1, "x.dat", b"evil's, newer\n", now + 3600 * 10**9,
                    {"evil": 1})
        assert ev.ack_status()[0] == 0
        _file_begin(ev, 2, "y.dat", b"evil's, older\n", 10**9, {"evil": 1})
        assert ev.ack_status()[0] == CONFLICT
    finally:
        poller.stop()
    with open(p.path("a", "x.dat"), "rb") as f:
        assert f.read() == b"evil's, newer\n"
    with open(p.path("a", "y.dat"), "rb") as f:
        assert f.read() == b"ours on a, wins\n"
    losers = _losers(p)
    assert sorted(losers.values()) == [b"evil's, older\n", b"ours on a, loses\n"], \
        losers
    names = sorted(name for _, name in losers)
    assert names[0].startswith("a/x.dat.") and names[1].startswith("evil/y.dat."), names
    _no_temps_under(p.conflicts["a"])
    _no_temp_files(p.roots["a"])
    assert not poller.errors, poller.errors
    assert max(poller.worst) < SLOW_MS / 2000.0, poller.worst
    assert p.peer_status("a", "evil")["conflicts"] == 2
    assert p.status("a")["conflicts"] == 2
    ev.close()


def test_a_conflicts_losing_copy_is_kept_off_the_event_loop(daemon_factory, shim):
    p = Pair(daemon_factory, ("bidirectional", "bidirectional"))
    for n in p.names:
        _slow_fsync_under(p.d[n], shim, p.conflicts[n])
    p.start()
    p.wait_in_sync()
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
        poller = Poller([p.d["a"], p.d["b"]])
        p.d["b"].proc.sigcont()
        poller.start()
    try:
        # a keeps its own losing version before b's replaces it; b keeps the
        # one it refused.  Each copy's fsync takes SLOW_MS.
        harness.wait_until(lambda: len(_losers(p)) >= 1, 30,
                           "the losing copy kept", interval=0.05)
        wait_content(p.path("a", rel), "written on b, later\n", timeout=30)
        p.wait_same(timeout=30)
    finally:
        poller.stop()
    losers = _losers(p)
    assert set(losers.values()) == {b"written on a\n"}, losers
    for (n, name), _ in losers.items():
        assert name.startswith("a/" + rel + "."), name
        _no_temps_under(p.conflicts[n])
    assert not poller.errors, poller.errors
    # the loop answered while a copy's fsync took SLOW_MS on another thread
    assert max(poller.worst) < SLOW_MS / 2000.0, poller.worst
    total = sum(p.peer_status(n, o)["conflicts"] for n, o in (("a", "b"), ("b", "a")))
    assert total >= 1
    p.wait_in_sync(timeout=30)


def test_an_appended_loser_is_kept_whole_on_both_sides(daemon_factory):
    p = Pair(daemon_factory, ("bidirectional", "bidirectional")).start()
    p.wait_in_sync()
    rel = "big.test/offline/dave.list"
    base = b"".join(b"item({ n = %d });\n" % i for i in range(8000))   # > whole_below
    write(p.path("a", rel), base)
    p.wait_same()
    p.wait_in_sync()
    p.d["b"].proc.sigstop()
    try:
        with open(p.path("a", rel), "ab") as f:
            f.write(b"item({ from = 'a' });\n")
        time.sleep(0.05)
        with open(p.path("b", rel), "ab") as f:
            f.write(b"item({ from = 'b', later = true });\n")
    finally:
        p.d["b"].proc.sigcont()
    want_b = base + b"item({ from = 'b', later = true });\n"
    wait_content(p.path("a", rel), want_b, timeout=15)
    p.wait_same(timeout=15)
    p.wait_in_sync(timeout=15)
    harness.wait_until(lambda: len(_losers(p)) >= 1, 10, "a losing copy kept")
    losers = _losers(p)
    assert set(losers.values()) == {base + b"item({ from = 'a' });\n"}, \
        {k: len(v) for k, v in losers.items()}
    for n in p.names:
        _no_temps_under(p.conflicts[n])
        _no_temp_files(p.roots[n])
