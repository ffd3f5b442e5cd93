# hamon_helpers.py: what the hamon system tests share: a hamon config for a set
# of Prosody backends, `hamon status` with its exit code, and a raw subscriber
# on the control socket that timestamps every view it receives.

import json
import os
import socket
import subprocess
import threading
import time

import harness

INTERVAL_MS = 250
TIMEOUT_MS = 500
RISE = 2
FALL = 2


def backend(name, prosody, checks=("xmpp",), **extra):
    b = {"name": name, "address": f"127.0.0.1:{prosody.port}",
         "domain": prosody.domain, "checks": list(checks)}
    b.update(extra)
    return b


def hamon_config(workdir, backends, **extra):
    c = {"node": "p1", "interval": f"{INTERVAL_MS}ms", "timeout": f"{TIMEOUT_MS}ms",
         "rise": RISE, "fall": FALL,
         "state_file": os.path.join(workdir, "hamon.view.json"),
         "backends": backends}
    c.update(extra)
    return c


def restart(hamon):
    """Stop and start HAMON again, waiting for the new process's ready line."""
    hamon.stop()
    mark = hamon.log_mark()
    hamon.start(wait_ready=False)
    hamon.wait_log(r": ready: ", since=mark, what="hamon ready again")


def status(hamon, *args):
    """(exit code, parsed JSON or text) of `hamon status ARGS`."""
    r = hamon.cli("status", *args)
    if "--json" in args and r.returncode != 3:
        return r.returncode, json.loads(r.stdout)
    return r.returncode, r.stdout + r.stderr


def states(view):
    return {b["name"]: b["state"] for b in view["backends"]}


def wait_states(hamon, want, timeout=10.0):
    """Wait until `hamon status --json` shows WANT ({name: state}); the view."""
    last = {}

    def ok():
        nonlocal last
        code, v = status(hamon, "--json")
        if code == 3:
            return None
        last = states(v)
        # Before its first view goes out, hamon shows unchecked backends down.
        return v if v.get("published") and all(
            last.get(n) == s for n, s in want.items()) else None
    try:
        return harness.wait_until(ok, timeout, f"hamon states {want}", interval=0.05)
    except harness.HarnessError as e:
        raise harness.HarnessError(f"{e}; last seen {last}") from None


class Subscriber:
    """A raw control-socket client: sends `watch`, records (monotonic, view)."""

    def __init__(self, path):
        self.path = path
        self.views = []
        self.closed = False
        self.cond = threading.Condition()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.sock.sendall(b"watch\n")
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    t = time.monotonic()
                    msg = json.loads(line)
                    assert msg["v"] == 1 and msg["ok"], msg
                    with self.cond:
                        self.views.append((t, msg["data"]))
                        self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait(self, pred, timeout=10.0, what="a view", since=0.0):
        """The first (time, view) received at or after SINCE that satisfies PRED."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, v in self.views:
                    if t >= since and pred(v):
                        return t, v
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(v["generation"], states(v)) for _, v in self.views]
                    raise harness.HarnessError(f"timed out waiting for {what}; "
                                               f"seen: {seen}")
                self.cond.wait(left)

    def wait_closed(self, timeout=10.0):
        with self.cond:
            self.cond.wait_for(lambda: self.closed, timeout)
        return self.closed

    def generations(self):
        with self.cond:
            return [v["generation"] for _, v in self.views]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


class CliWatch:
    """`hamon watch` as a child: its stdout lines, as they come."""

    def __init__(self, hamon, *args):
        argv = [hamon.binary, "watch", "-c", hamon.conf_path] + list(args)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=hamon.env(), start_new_session=True)
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait(self, pred, timeout=10.0, what="a line", since=0):
        """The first line from index SINCE on that satisfies PRED."""
        with self.cond:
            if not self.cond.wait_for(
                    lambda: any(pred(l) for l in self.lines[since:]), timeout):
                raise harness.HarnessError(f"`hamon watch` printed no {what}; got "
                                           f"{self.lines}")
            return next(l for l in self.lines[since:] if pred(l))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.thread.join(5)
