# test_demo.py: `make demo`, the README's first command, starts every daemon that
# exists, says how to reach each one, and Ctrl-C stops everything it started.

import os
import re
import signal
import subprocess
import time

import harness


def test_demo_starts_every_daemon_and_ctrl_c_stops_them_all():
    p = subprocess.Popen([str(harness.REPO / "tests" / "demo")], cwd=harness.REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, JHA_BUILD=str(harness.build_dir())),
                         start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        text = "".join(lines)
        for name in harness.DAEMONS:
            assert re.search(rf"demo: {name} ready: status with .*{name} status -c ",
                             text), text
        confs = re.findall(r"status -c (\S+\.yaml)", text)
        pids = []
        for conf in confs:
            name = os.path.basename(conf)[:-5]
            r = subprocess.run([str(harness.build_dir() / name), "status", "-c", conf,
                                "--json"], capture_output=True, text=True, timeout=10)
            assert r.returncode == 0, r.stderr
            pids.append(int(re.search(r'"pid":(\d+)', r.stdout).group(1)))
        assert len(pids) == len(harness.DAEMONS)
        os.killpg(p.pid, signal.SIGINT)     # what Ctrl-C in a terminal does
        assert p.wait(10) is not None
        harness.wait_until(lambda: all(harness.pid_gone(x) for x in pids), 5,
                           "every demo daemon to exit")
        demo_dir = os.path.dirname(confs[0])
        assert not os.path.exists(demo_dir), "the demo's temp dir was left behind"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
