# test_daemon_systemd.py: what systemd and an admin rely on beyond the basic life:
# READY/RELOADING/STOPPING and watchdog pings reach NOTIFY_SOCKET, a daemon
# started as root really becomes its configured user, and the shipped example
# configs validate.

import os
import pwd
import signal
import socket
import subprocess
import time

import pytest

import harness
from test_daemon_lifecycle import MINIMAL, _require_binary

pytestmark = pytest.mark.parametrize("name", harness.DAEMONS)


class NotifiedDaemon(harness.Daemon):
    """A daemon run as systemd would: NOTIFY_SOCKET and a watchdog of 200 ms."""

    def __init__(self, name, config, notify_path):
        super().__init__(name, config)
        self.notify_path = notify_path

    def env(self):
        env = super().env()
        env["NOTIFY_SOCKET"] = self.notify_path
        env["WATCHDOG_USEC"] = "200000"
        return env


class Notifications:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.seen = []

    def wait(self, pred, what, timeout=5.0):
        def poll():
            try:
                self.seen.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
            return any(pred(m) for m in self.seen)
        harness.wait_until(poll, timeout, what)

    def close(self):
        self.sock.close()


@pytest.fixture
def notified(workdir, request):
    started = []

    def make(name):
        _require_binary(name)
        path = os.path.join(workdir, f"{name}.notify")
        n = Notifications(path)
        d = NotifiedDaemon(name, MINIMAL[name](workdir), path)
        started.append((d, n))
        return d, n
    yield make
    for d, n in started:
        d.stop()
        n.close()
        harness.remove_dir(d.dir)


def test_systemd_hears_ready_watchdog_reload_and_stopping(notified, name):
    d, n = notified(name)
    d.start()
    n.wait(lambda m: "READY=1" in m and f"MAINPID={d.pid}" in m, "READY=1 with MAINPID")
    assert any("STATUS=" in m for m in n.seen)
    # Watchdog at half the 200 ms interval: several pings within a second.
    n.seen.clear()
    time.sleep(0.6)
    n.wait(lambda _: sum(m == "WATCHDOG=1" for m in n.seen) >= 3,
           "three WATCHDOG=1 pings", timeout=2.0)
    n.seen.clear()
    d.proc.signal(signal.SIGHUP)
    n.wait(lambda m: m.startswith("RELOADING=1"), "RELOADING=1")
    n.wait(lambda m: m == "READY=1", "READY=1 after the reload")
    d.proc.signal(signal.SIGTERM)
    n.wait(lambda m: m == "STOPPING=1", "STOPPING=1")
    assert d.proc.wait(5) == 0


def test_started_as_root_it_runs_as_the_configured_user(daemon_factory, workdir, name):
    if os.geteuid() != 0:
        pytest.skip("dropping privileges needs root; CI runs as root")
    _require_binary(name)
    config = dict(MINIMAL[name](workdir), user="nobody", group="nogroup")
    d = daemon_factory(name, config, start=False)
    nobody = pwd.getpwnam("nobody")
    # Under systemd the runtime directory belongs to the daemon's user.
    os.chown(d.dir, nobody.pw_uid, -1)
    d.start()
    with open(f"/proc/{d.pid}/status") as f:
        ids = {l.split(":")[0]: l.split()[1:] for l in f if l.startswith(("Uid", "Gid"))}
    assert ids["Uid"] == [str(nobody.pw_uid)] * 4, ids
    assert ids["Gid"][0] != "0"
    # root (this test) can still ask it, and its own user could too.
    assert os.stat(d.control).st_uid == nobody.pw_uid
    assert d.status()["pid"] == d.pid
    d.proc.signal(signal.SIGTERM)
    assert d.proc.wait(5) == 0
    assert not os.path.exists(d.control)


def test_a_user_that_does_not_exist_is_refused_at_start(daemon_factory, workdir, name):
    _require_binary(name)
    config = dict(MINIMAL[name](workdir), user="no-such-user-jha")
    d = daemon_factory(name, config, start=False)
    d.start(wait_ready=False)
    assert d.proc.wait(5) != 0
    assert "user: no such user 'no-such-user-jha'" in d.log_text()


def test_the_shipped_example_config_validates(workdir, name):
    _require_binary(name)
    text = open(harness.REPO / "conf" / f"{name}.yaml").read()
    if name == "spoolsync":
        # The example names the production key; point it at a real 0600 key.
        key = os.path.join(workdir, "cluster.key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(os.urandom(32))
        text = text.replace("/etc/jabber-ha/cluster.key", key)
    if name == "proxyd":
        # The example names the production certificate; point it at a real one.
        cert, key = harness.make_cert(workdir, "example.com")
        text = text.replace("/etc/jabber-ha/tls/example.com.pem", cert)
        text = text.replace("/etc/jabber-ha/tls/example.com.key", key)
    path = os.path.join(workdir, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([str(harness.build_dir() / name), "check-config", "-c", path],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr
