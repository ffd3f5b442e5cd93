# test_proxyd_status_and_metrics.py: `proxyd status` (human and --json), /status
# and /metrics show sessions per domain and per backend, the placement, and
# hamon's view; `proxyd sessions` prints a table a person can read.

import json
import os

import harness
import xmpp
from proxyd_helpers import PASSWORD, Chain, raw_login


def test_status_and_metrics_count_sessions_per_domain_and_backend(
        prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir, backends=2)
    holder = ch.status()["domains"][0]["backend"]
    raw, jid = raw_login(ch.port_plain, "alice")
    c = xmpp.login(ch.jid("bob"), PASSWORD, **ch.client_kw("direct"))

    st = ch.status()
    assert st["sessions"] == 2
    assert st["domains"] == [{"name": harness.XMPP_DOMAIN, "sessions": 2,
                              "max_connections": 1000, "moves_pending": 0,
                              "backend": holder}]
    assert st["moves"] == {"pending": 0, "ended": 0, "spread_ms": 5000}
    assert st["backend_sessions"][holder] == 2
    assert st["hamon"]["connected"] is True
    assert {b["name"] for b in st["hamon"]["backends"]} == {"a", "b"}

    http = json.loads(ch.proxyd.http_get("/status").body)
    assert http["sessions"] == 2 and http["domains"][0]["backend"] == holder
    m = ch.proxyd.http_get("/metrics").body
    assert "proxyd_sessions 2" in m, m
    assert f'proxyd_domain_sessions{{domain="{harness.XMPP_DOMAIN}"}} 2' in m, m
    assert f'proxyd_backend_sessions{{backend="{holder}"}} 2' in m, m
    assert "proxyd_hamon_connected 1" in m
    assert "proxyd_moves_pending 0" in m and "proxyd_moved_sessions_total 0" in m
    workers = os.cpu_count() if os.cpu_count() <= 16 else 16
    assert f"proxyd_workers {workers}" in m, m
    assert http["workers"] == workers

    r = ch.proxyd.cli("status")
    assert r.returncode == 0 and f"-> {holder}" in r.stdout, r.stdout + r.stderr
    assert f"{workers} worker(s)" in r.stdout, r.stdout
    r = ch.proxyd.cli("sessions")
    assert r.returncode == 0, r.stderr
    assert jid in r.stdout and ch.jid("bob") in r.stdout and "2 sessions" in r.stdout
    r = ch.proxyd.cli("sessions", "--domain", "nowhere.test")
    assert r.returncode == 0 and "0 sessions" in r.stdout, r.stdout
    r = ch.proxyd.cli("sessions", "--bogus")
    assert r.returncode == 2

    # A refused stream shows in the error counter.
    s = xmpp.RawStream(ch.port_plain)
    s.send(harness.stream_header("nowhere.test"))
    s.read_all(timeout=3)
    m = ch.proxyd.http_get("/metrics").body
    assert 'proxyd_stream_errors_total{condition="host-unknown"} 1' in m, m
    c.disconnect()


def test_status_warns_when_hamon_is_gone_and_keeps_the_view(
        prosody_factory, daemon_factory, workdir):
    ch = Chain(prosody_factory, daemon_factory, workdir)
    ch.hamon.stop()
    harness.wait_until(lambda: not ch.status()["hamon"]["connected"], 5,
                       "proxyd notices hamon is gone")
    st = ch.status()
    assert "hamon is unreachable" in st.get("warning", ""), st
    assert st["domains"][0]["backend"] == "a"
    # The last view stays in force: new clients are still served.
    raw, jid = raw_login(ch.port_plain, "alice")
    assert ch.sessions()[0]["backend"] == "a"
