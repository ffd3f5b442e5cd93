# test_harness_haproxy.py: the HAProxy fixture relays real XMPP clients to Prosody,
# and its XMPP health check sees a backend go down and come back.

import harness
import xmpp


def test_client_logs_in_and_chats_through_haproxy(prosody, haproxy_factory):
    alice = prosody.register("alice", "alice-pw")
    bob = prosody.register("bob", "bob-pw")
    lb = haproxy_factory([("a", prosody.port)], xmpp_check=True)
    assert lb.server_states() == {"a": "UP"}
    sessions = int(lb.server_stats()["a"]["stot"])
    with xmpp.login(alice, "alice-pw", lb.port) as a, \
            xmpp.login(bob, "bob-pw", prosody.port) as b:
        a.send_message(bob, "through the balancer")
        assert b.wait_message(frm=alice, timeout=5).body == "through the balancer"
        # HAProxy really relayed alice: one more session to server a.
        assert int(lb.server_stats()["a"]["stot"]) == sessions + 1


def test_xmpp_check_marks_a_stopped_backend_down_and_back_up(prosody, haproxy_factory):
    lb = haproxy_factory([("a", prosody.port)], xmpp_check=True, inter="100ms",
                         fall=2, rise=1)
    prosody.sigstop()
    try:
        lb.wait_state({"a": "DOWN"}, timeout=5)
    finally:
        prosody.sigcont()
    lb.wait_state({"a": "UP"}, timeout=5)


def test_stop_kills_by_pid_and_frees_the_port(prosody, haproxy_factory):
    lb = haproxy_factory([("a", prosody.port)])
    assert harness.xmpp_features(lb.port) is not None
    pid = lb.pid
    lb.stop()
    assert harness.pid_gone(pid)
    assert harness.port_is_free(lb.port)
