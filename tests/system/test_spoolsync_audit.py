# test_spoolsync_audit.py: `spoolsync --audit` exits 0 on identical trees,
# 1 listing every difference planted on the replica while its daemon was
# stopped (missing here, missing there, content, metadata), 2 when a peer is
# down or the key is wrong; --repair makes the trees identical again.

import os

import pytest

from spoolsync_pair import Pair, write, write_key


@pytest.fixture
def pair(daemon_factory):
    p = Pair(daemon_factory, ("send", "receive"))
    for i in range(30):
        write(p.path("a", f"host/accounts/u{i}.dat"), f"user {i}\n" * 10)
    write(p.path("a", "host/offline/x.list"), "item({});\n")
    p.start()
    p.wait_same()
    p.wait_in_sync()
    return p


def test_identical_trees_audit_clean(pair):
    rc, data, r = pair.audit("a")
    assert rc == 0, r.stdout + r.stderr
    assert data["identical"] is True
    assert data["peers"][0]["reachable"] and data["peers"][0]["differences"] == []
    assert data["entries"] == data["peers"][0]["entries"] >= 33
    r = pair.d["b"].cli("--audit")      # the text form, from the other side
    assert r.returncode == 0 and "identical" in r.stdout


def test_differences_planted_on_the_replica_are_each_listed(pair):
    p = pair
    p.stop()                            # both: nothing repairs behind our back
    write(p.path("b", "host/planted.dat"), "not on a\n")
    os.unlink(p.path("b", "host/accounts/u3.dat"))
    with open(p.path("b", "host/accounts/u4.dat"), "r+b") as f:
        f.write(b"X")                   # same size, other bytes
    st = os.stat(p.path("a", "host/accounts/u4.dat"))
    os.utime(p.path("b", "host/accounts/u4.dat"), ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(p.path("b", "host/accounts/u5.dat"), 0o600)
    p.start("b")                        # the replica's daemon serves the audit
    rc, data, r = p.audit("a")
    assert rc == 1, r.stdout + r.stderr
    diffs = {(d["path"], d["kind"]) for d in data["peers"][0]["differences"]}
    assert diffs == {("host/planted.dat", "missing here"),
                     ("host/accounts/u3.dat", "missing there"),
                     ("host/accounts/u4.dat", "content differs"),
                     ("host/accounts/u5.dat", "metadata differs")}, diffs
    r = p.d["a"].cli("--audit")
    assert r.returncode == 1
    assert "host/accounts/u4.dat" in r.stdout and "DIFFERENT: 4" in r.stdout
    # the sender comes back: its anti-entropy repairs the replica
    p.start("a")
    p.wait_same()
    p.wait_in_sync()
    assert p.audit("a")[0] == 0


def test_repair_ships_the_fixes_and_audits_clean(pair):
    p = pair
    write(p.path("b", "host/accounts/u7.dat"), "changed behind spoolsync's back\n")
    r = p.d["a"].cli("--audit", "--repair", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "host/accounts/u7.dat" in r.stdout       # what was found, then fixed
    assert "identical with every peer" in r.stdout
    p.wait_same()


def test_a_peer_down_means_could_not_audit(pair):
    p = pair
    p.stop("b")
    rc, data, r = p.audit("a")
    assert rc == 2, r.stdout + r.stderr
    assert data["peers"][0]["reachable"] is False
    assert "connect" in data["peers"][0]["error"]


def test_a_wrong_key_means_could_not_audit(pair, workdir):
    p = pair
    bad = os.path.join(workdir, "wrong.key")
    write_key(bad)
    conf = os.path.join(workdir, "a-wrong-key.yaml")
    with open(p.d["a"].conf_path) as f:
        text = f.read().replace(p.key, bad)
    with open(conf, "w") as f:
        f.write(text)
    r = p.d["a"].cli("--audit", conf=conf)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "authentication" in r.stdout
