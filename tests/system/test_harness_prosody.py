# test_harness_prosody.py: the Prosody fixture gives a real server that real clients
# use, and the harness controls it by pid (stop, kill -9, SIGSTOP, restart on a spool).

import os
import time

import pytest

import harness
import xmpp

TRICKY = "é ü 漢字 🎉 <&>\"'"


def test_two_users_exchange_a_unicode_message_intact(prosody):
    alice = prosody.register("alice", "alice-pw")
    bob = prosody.register("bob", "bob-pw")
    with xmpp.login(alice, "alice-pw", prosody.port) as a, \
            xmpp.login(bob, "bob-pw", prosody.port) as b:
        a.send_message(bob, TRICKY)
        got = b.wait_message(frm=alice, timeout=5)
    assert got.body == TRICKY
    assert got.type == "chat"
    # Prosody's log names the users who logged in: it really was this server.
    harness.wait_until(lambda: "alice@example.test" in prosody.log_text(), 2,
                       "alice in prosody's log")


def test_stop_kills_by_pid_and_frees_the_port(prosody):
    pid, port = prosody.pid, prosody.port
    assert harness.xmpp_features(port) is not None
    rc = prosody.stop()
    assert rc is not None
    assert harness.pid_gone(pid)
    assert harness.port_is_free(port)
    assert harness.xmpp_features(port, timeout=0.5) is None


def test_wrong_password_is_refused(prosody):
    user = prosody.register("carol", "right")
    with pytest.raises(xmpp.XMPPError, match="authentication failed"):
        xmpp.login(user, "wrong", prosody.port, timeout=5)


def test_sigstop_hangs_it_and_sigcont_resumes(prosody):
    prosody.sigstop()
    try:
        t0 = time.monotonic()
        assert harness.xmpp_features(prosody.port, timeout=0.5) is None
        assert time.monotonic() - t0 >= 0.4
    finally:
        prosody.sigcont()
    prosody.wait_ready(5)


def test_kill9_then_restart_on_the_same_spool_keeps_accounts(prosody_factory):
    first = prosody_factory()
    second = prosody_factory()
    assert first.port != second.port and first.dir != second.dir
    user = first.register("dave", "dave-pw")

    assert first.kill9() == -9
    assert harness.pid_gone(first.pid)

    revived = prosody_factory(data_dir=first.data_dir)
    assert os.path.samefile(revived.data_dir, first.data_dir)
    with xmpp.login(user, "dave-pw", revived.port) as c:
        assert c.get_roster() == {}
    # The other server never had this account.
    with pytest.raises(xmpp.XMPPError, match="authentication failed"):
        xmpp.login(user, "dave-pw", second.port, timeout=5)


def test_tls_clients_log_in_encrypted_and_verify_the_certificate(prosody_factory):
    p = prosody_factory(tls=True)
    user = p.register("erin", "erin-pw")
    for mode, port in (("starttls", p.port), ("direct", p.tls_port)):
        with xmpp.login(user, "erin-pw", port, tls=mode, cafile=p.cert_path) as c:
            assert c.encrypted().startswith("TLSv1.")
    with pytest.raises(xmpp.XMPPError, match="CERTIFICATE_VERIFY_FAILED"):
        xmpp.login(user, "erin-pw", p.port, tls="starttls", timeout=5)


def test_raw_stream_reads_features_and_prosodys_stream_error(prosody):
    with xmpp.RawStream(prosody.port) as s:
        assert b"SCRAM-SHA-1" in s.open_stream()
        s.send(b"<message><</message>")
        condition, data = s.wait_closed(timeout=5)
    assert condition == "not-well-formed", data
