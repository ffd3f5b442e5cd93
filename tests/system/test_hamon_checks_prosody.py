# test_hamon_checks_prosody.py: hamon's probes against a real Prosody, through
# build/tests/probe_cli (tests/tools/probe_cli.c), which runs one probe and prints
# its check_result as JSON: the xmpp and login checks pass on a live server (SCRAM
# and PLAIN), and fail with the right words when the password is wrong, the host
# unknown, the server hung (SIGSTOP) or dead (kill -9).

import json
import subprocess
import time

import pytest

import harness


def cli_path():
    path = harness.build_dir() / "tests" / "probe_cli"
    if not path.exists():
        pytest.fail(f"{path} is missing: `make unit` builds it from tests/tools/probe_cli.c")
    return str(path)


def probe(kind, port, domain, *args, timeout_ms=1000, count=None):
    """One probe (or COUNT of them, 50 at a time): the result dict, or the summary."""
    cmd = [cli_path()]
    if count:
        cmd += ["-n", str(count), "-c", "50"]
    cmd += [kind, f"127.0.0.1:{port}", domain, *args, str(timeout_ms)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_ms / 1000 + 30)
    lines = r.stdout.splitlines()
    assert lines, f"probe_cli printed nothing (exit {r.returncode}): {r.stderr}"
    return json.loads(lines[-1])


def test_xmpp_check_passes_on_prosody_in_milliseconds(prosody):
    r = probe("xmpp", prosody.port, prosody.domain)
    assert r["ok"], r
    assert r["kind"] == "xmpp"
    assert 0 < r["latency_us"] < 100_000, r


def test_xmpp_check_names_an_unknown_host(prosody):
    r = probe("xmpp", prosody.port, "nosuch.example")
    assert not r["ok"]
    assert "stream error: host-unknown" in r["error"], r


def test_login_check_logs_in_with_scram_and_pings(prosody_factory):
    # Without PLAIN on offer, only a working SCRAM-SHA-1 can log in.
    p = prosody_factory(extra_config='disable_sasl_mechanisms = { "PLAIN" }')
    p.register("probe", "probe-pw")
    r = probe("login", p.port, p.domain, "probe", "probe-pw")
    assert r["ok"], r
    assert r["kind"] == "login"
    assert 0 < r["latency_us"] < 100_000, r
    harness.wait_until(lambda: "probe@example.test" in p.log_text(), 2,
                       "the probe's login in prosody's log")


def test_login_check_falls_back_to_plain(prosody_factory):
    p = prosody_factory(
        extra_config='disable_sasl_mechanisms = { "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS" }')
    p.register("probe", "probe-pw")
    r = probe("login", p.port, p.domain, "probe@example.test", "probe-pw")
    assert r["ok"], r


def test_login_check_with_a_wrong_password_is_not_authorized(prosody):
    prosody.register("probe", "probe-pw")
    r = probe("login", prosody.port, prosody.domain, "probe", "wrong")
    assert not r["ok"]
    assert r["error"].startswith("sasl: not-authorized"), r


def test_fifty_concurrent_logins_all_pass(prosody):
    prosody.register("probe", "probe-pw")
    r = probe("login", prosody.port, prosody.domain, "probe", "probe-pw",
              timeout_ms=5000, count=50)
    assert r["probes"] == 50 and r["ok"] == 50, r


def test_sigstopped_prosody_times_out_and_recovers(prosody):
    prosody.register("probe", "probe-pw")
    prosody.sigstop()
    try:
        t0 = time.monotonic()
        r = probe("xmpp", prosody.port, prosody.domain, timeout_ms=500)
        elapsed = time.monotonic() - t0
        assert not r["ok"]
        # It still accepts TCP (the kernel does): the stream is what times out.
        assert r["error"] == "stream: timeout after 500 ms (0 bytes received)", r
        assert 0.45 < elapsed < 2.0
        r = probe("login", prosody.port, prosody.domain, "probe", "probe-pw",
                  timeout_ms=500)
        assert not r["ok"] and "timeout after 500 ms" in r["error"], r
    finally:
        prosody.sigcont()
    r = probe("xmpp", prosody.port, prosody.domain)
    assert r["ok"], r


def test_killed_prosody_is_connection_refused(prosody):
    prosody.kill9()
    assert harness.pid_gone(prosody.pid)
    for kind, args in (("xmpp", ()), ("login", ("probe", "pw"))):
        t0 = time.monotonic()
        r = probe(kind, prosody.port, prosody.domain, *args, timeout_ms=2000)
        assert not r["ok"]
        assert r["error"] == "connect: Connection refused", r
        assert time.monotonic() - t0 < 1.0
