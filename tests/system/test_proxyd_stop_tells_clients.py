# test_proxyd_stop_tells_clients.py: SIGTERM ends every session with
# system-shutdown (so clients reconnect elsewhere) and proxyd exits 0.

import signal

import xmpp
from proxyd_helpers import Chain, raw_login


def test_sigterm_sends_system_shutdown_and_exits_zero(prosody_factory,
                                                      daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir)
    raws = [raw_login(ch.port_plain, "alice", resource=f"r{i}")[0] for i in range(3)]
    ch.proxyd.proc.signal(signal.SIGTERM)
    assert ch.proxyd.proc.wait(10) == 0
    for s in raws:
        data = s.read_all(timeout=3)
        assert xmpp.parse_stream_error(data) == "system-shutdown", data
        assert s.eof
