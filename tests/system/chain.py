# chain.py: the whole jabber-ha chain on loopback, shared by the chain test and
# `make demo`: two Prosody backends whose data dirs are spoolsync roots mirrored
# both ways, hamon watching both (xmpp + spoolsync), proxyd in front.

import json
import os

import harness
from hamon_helpers import backend, hamon_config, wait_states
from spoolsync_pair import Pair

NAMES = ("a", "b")


def _daemon(name, config=None, start=False):
    d = harness.Daemon(name, config)
    return d.start() if start else d


class Cluster:
    """Built by __init__, started by start(); stop() stops everything by pid."""

    def __init__(self, workdir, log_level="debug", starttls_port=None):
        self.workdir = workdir
        self.started = []           # what stop() stops, in reverse order
        # spoolsync runs as root (owners preserved); the roots are Prosody's
        # data dirs, owned by prosody like any Prosody data dir.
        self.pair = Pair(_daemon, ("bidirectional", "bidirectional"), names=NAMES)
        for n in NAMES:
            harness.chown(self.pair.roots[n], "prosody")
            os.chmod(self.pair.roots[n], 0o750)
            self.pair.d[n].config["log_level"] = log_level
            self.pair.d[n].write_config()
        self.prosody = {n: harness.Prosody(data_dir=self.pair.roots[n]) for n in NAMES}
        self.hamon = harness.Daemon("hamon", hamon_config(workdir, [
            backend(n, self.prosody[n], checks=("xmpp", "spoolsync"),
                    spoolsync=f"http://127.0.0.1:{self.pair.d[n].http_port}/status")
            for n in NAMES], log_level=log_level))
        self.cert, self.key = harness.make_cert(workdir, harness.XMPP_DOMAIN)
        self.port_starttls = starttls_port or harness.free_port()
        self.port_direct = harness.free_port()
        self.proxyd = harness.Daemon("proxyd", {
            "listen": [{"address": f"127.0.0.1:{self.port_starttls}", "tls": "starttls"},
                       {"address": f"127.0.0.1:{self.port_direct}", "tls": "direct"}],
            "hamon": self.hamon.control,
            "tls": {"cert": self.cert, "key": self.key},
            "domains": [{"name": harness.XMPP_DOMAIN, "max_connections": 1000}],
            "log_level": log_level,
        })

    def start(self):
        self.started.append(self.pair)
        self.pair.start()
        for n in NAMES:
            self.started.append(self.prosody[n])
            self.prosody[n].start()
        self.pair.wait_connected()
        self.pair.wait_in_sync()
        self.started.append(self.hamon)
        self.hamon.start()
        wait_states(self.hamon, {n: "up" for n in NAMES}, timeout=15)
        self.started.append(self.proxyd)
        self.proxyd.start()
        harness.wait_until(lambda: self.holder(), 10, "proxyd places the domain")
        return self

    def register(self, user, password, on="a"):
        """Register on ON's Prosody (prosodyctl writes its data dir) and wait
        until spoolsync has mirrored it to the other spool."""
        jid = self.prosody[on].register(user, password)
        self.pair.wait_in_sync()
        rel = os.path.join(harness.XMPP_DOMAIN.replace(".", "%2e"), "accounts",
                           user + ".dat")
        for n in NAMES:
            harness.wait_until(lambda n=n: os.path.exists(self.pair.path(n, rel)), 10,
                               f"{rel} mirrored to {n}")
        return jid

    def holder(self):
        """The backend proxyd places the domain on now (None: none)."""
        return self.proxyd.status()["domains"][0]["backend"]

    def sessions(self):
        r = self.proxyd.cli("sessions", "--json")
        if r.returncode != 0:
            raise harness.HarnessError(f"proxyd sessions: {r.stdout}{r.stderr}")
        return json.loads(r.stdout)

    def hamon_states(self):
        # Its exit code says how many are eligible; the JSON is printed anyway.
        r = self.hamon.cli("status", "--json")
        return {b["name"]: b["state"] for b in json.loads(r.stdout)["backends"]}

    def client_kw(self, tls="starttls"):
        port = self.port_starttls if tls == "starttls" else self.port_direct
        return {"port": port, "tls": tls, "cafile": self.cert}

    def pids(self):
        out = [self.pair.d[n].pid for n in NAMES] + [self.hamon.pid, self.proxyd.pid]
        return out + [self.prosody[n].pid for n in NAMES]

    def dirs(self):
        return [self.pair.dir, self.hamon.dir, self.proxyd.dir] + \
            [self.prosody[n].dir for n in NAMES] + list(self.pair.roots.values())

    def stop(self):
        for obj in reversed(self.started):
            try:
                obj.stop()
            except Exception:
                pass
        self.started = []

    def logs(self):
        out = []
        for n in NAMES:
            out.append(f"===== prosody {n}\n{self.prosody[n].log_tail()}")
            out.append(f"===== spoolsync {n}\n{harness.tail(self.pair.d[n].log_text())}")
        out.append(f"===== hamon\n{harness.tail(self.hamon.log_text())}")
        out.append(f"===== proxyd\n{harness.tail(self.proxyd.log_text())}")
        return "\n".join(out)
