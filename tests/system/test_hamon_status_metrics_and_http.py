# test_hamon_status_metrics_and_http.py: what on-call and Prometheus see: the status
# table (colour on a terminal only), the Nagios line, /status with the view and
# the daemon, /metrics with states, latencies, failures and the generation.

import os
import pty
import re
import subprocess

from hamon_helpers import backend, hamon_config, status, wait_states


def run_on_a_tty(argv, env):
    """ARGV's output as a terminal shows it."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave,
                             stderr=slave, env=env)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        return p.wait(10), out.decode()
    finally:
        os.close(master)


def test_table_nagios_status_and_metrics(prosody_factory, daemon_factory, workdir):
    pa = prosody_factory()
    dead = backend("b", pa)
    dead["address"] = "127.0.0.1:1"
    hamon = daemon_factory("hamon", hamon_config(workdir, [backend("a", pa), dead]))
    wait_states(hamon, {"a": "up", "b": "down"})

    code, text = status(hamon)
    assert code == 1
    lines = text.splitlines()
    assert re.match(r"hamon p1: generation \d+, 1 of 2 backends eligible \(WARNING\)",
                    lines[0]), text
    assert lines[1].split()[:7] == ["BACKEND", "STATE", "SINCE", "LATENCY", "FAILURES",
                                    "LAG", "LAST"], text
    assert re.match(r"a\s+up\s+\d+s\s+[\d.]+ms\s+0\s+-\s+-$", lines[2]), lines[2]
    assert re.match(r"b\s+down\s+\d+s\s+-\s+\d+\s+-\s+xmpp: ", lines[3]), lines[3]
    assert "\033[" not in text

    rc, shown = run_on_a_tty([hamon.binary, "status", "-c", hamon.conf_path], hamon.env())
    assert rc == 1
    assert "\033[32mup" in shown and "\033[1;31mdown" in shown, repr(shown)

    code, line = status(hamon, "--nagios")
    assert code == 1
    assert re.match(r"HAMON WARNING - 1/2 backends eligible: b down \(xmpp: .*\) \| "
                    r"eligible=1;;;0;2 up=1 down=1 unsynced=0 draining=0 maint=0 "
                    r"latency_a=[\d.]+ms;;;0\n$", line), line

    st = hamon.http_get("/status").json()
    assert st["pid"] == hamon.pid and st["daemon"] == "hamon"
    assert st["node"] == "p1" and st["generation"] >= 1
    assert [b["name"] for b in st["backends"]] == ["a", "b"]
    assert st["published"] is True

    m = hamon.http_get("/metrics").body
    assert 'hamon_backend_state{backend="a",state="up"} 1' in m, m
    assert 'hamon_backend_state{backend="b",state="down"} 1' in m
    assert 'hamon_backend_state{backend="b",state="up"} 0' in m
    assert 'hamon_backend_eligible{backend="a"} 1' in m
    assert re.search(r'^hamon_check_failures_total\{backend="b",check="xmpp"\} [1-9]', m,
                     re.M), m
    assert re.search(r'^hamon_check_duration_seconds_bucket\{backend="a",check="xmpp",'
                     r'le="0.1"\} [1-9]', m, re.M), m
    assert re.search(r"^hamon_view_generation [1-9]", m, re.M)


def test_no_backends_is_ok_and_says_so(daemon_factory, workdir):
    hamon = daemon_factory("hamon", hamon_config(workdir, []))
    code, text = status(hamon)
    assert code == 0
    assert "0 of 0 backends eligible" in text
    code, line = status(hamon, "--nagios")
    assert code == 0 and line.startswith("HAMON OK - no backends configured")
