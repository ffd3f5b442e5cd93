# test_demo.py: `make demo`, the README's first command, starts the whole chain
# (two Prosody, two spoolsync, hamon, proxyd) with a demo user a real client can
# log in as through proxyd, and Ctrl-C stops everything it started.

import os
import re
import signal
import subprocess
import time

import pytest

import harness
import xmpp


def run(argv):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=30)


def test_demo_starts_the_chain_a_client_logs_in_and_ctrl_c_stops_it_all():
    if os.geteuid() != 0:
        pytest.skip("the demo runs as root (Prosody as prosody)")
    p = subprocess.Popen([str(harness.REPO / "tests" / "demo")], cwd=harness.REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, JHA_BUILD=str(harness.build_dir())),
                         start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(lines)
        confs = {}
        for name in harness.DAEMONS:
            found = re.findall(rf"demo: {name}(?: \w+)? ready: status with +\S*/{name} "
                               rf"status -c (\S+\.yaml)", text)
            assert found, text
            confs[name] = found
        assert len(confs["spoolsync"]) == 2, text
        assert len(re.findall(r"demo: prosody \w ready: .*\(pid (\d+)\)", text)) == 2, text
        assert "accept the self-signed certificate" in text
        m = re.search(r"demo: user (\S+) password (\S+) starttls (\d+) direct (\d+) "
                      r"cert (\S+)", text)
        assert m, text
        jid, password, port, cert = m.group(1), m.group(2), int(m.group(3)), m.group(5)

        c = xmpp.login(jid, password, port=port, tls="starttls", cafile=cert)
        c.send_message(jid, "hello é 漢字")
        assert c.wait_message(frm=jid).body == "hello é 漢字"
        c.disconnect()

        bind = harness.build_dir()
        r = run([str(bind / "hamon"), "status", "-c", confs["hamon"][0]])
        assert r.returncode == 0, r.stdout + r.stderr
        for conf in confs["spoolsync"]:
            r = run([str(bind / "spoolsync"), "--audit", "-c", conf])
            assert r.returncode == 0, r.stdout + r.stderr
        r = run([str(bind / "proxyd"), "sessions", "-c", confs["proxyd"][0]])
        assert r.returncode == 0, r.stdout + r.stderr

        pids = [int(x) for x in re.findall(r"\(pid (\d+)\)", text)]
        for name, found in confs.items():
            for conf in found:
                r = run([str(bind / name), "status", "-c", conf, "--json"])
                assert r.returncode in (0, 1, 2), r.stderr
                pids.append(int(re.search(r'"pid":(\d+)', r.stdout).group(1)))
        assert len(pids) == 6
        demo_dir = re.search(r"demo: dir (\S+);", text).group(1)
        assert all(x.startswith(demo_dir + "/") for f in confs.values() for x in f)

        os.killpg(p.pid, signal.SIGINT)     # what Ctrl-C in a terminal does
        assert p.wait(20) is not None
        harness.wait_until(lambda: all(harness.pid_gone(x) for x in pids), 5,
                           "every demo process to exit")
        assert not os.path.exists(demo_dir), "the demo's temp dir was left behind"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
