#!/usr/bin/python3
# hamon_detect.py: how fast hamon sees a Jabber backend die (kill -9) or hang
# (SIGSTOP), side by side in the same run with HAProxy's XMPP tcp-check (the
# field notes' stream-header check) at its defaults and tuned to hamon's interval;
# then false downs under a CPU stress, and hamon's CPU for 1,000 backends.
#
#   tests/bench/hamon_detect.py [--runs 20] [--stress-seconds 300] [--skip-cpu]
#
# Run as root with Debian's /usr/bin/python3 (Prosody runs as user prosody).
# A benchmark, not a test: it prints a table and ratios, never fails on a number.

import argparse
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system"))
import harness                                   # noqa: E402
from hamon_helpers import Subscriber, states     # noqa: E402

DOMAIN = harness.XMPP_DOMAIN
WAIT_DETECT_S = 30.0      # a detector that needs longer counts as a miss
WAIT_UP_S = 30.0
HAMON = {"interval": "250ms", "timeout": "500ms", "rise": 2, "fall": 2}
# HAProxy: "check" alone is inter 2s fall 3 rise 2; the tuned one matches hamon.
HAPROXY_SETUPS = [
    ("be_tuned", "haproxy tuned", "inter 250ms fall 2 rise 2", "500ms"),
    ("be_defaults", "haproxy defaults", "", None),
]
DETECTORS = [("hamon", "hamon")] + [(be, label) for be, label, _, _ in HAPROXY_SETUPS]


def note(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

class Piped:
    """A child whose stdout+stderr lines are timestamped (monotonic) as they
    arrive through a pipe; killed by its pid (and by the kernel if we die)."""

    live = []

    def __init__(self, argv, cwd=None, log_path=None):
        self.popen = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--"] + list(argv),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid
        self.lines = []
        self.cond = threading.Condition()
        self.log = open(log_path, "ab") if log_path else None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        Piped.live.append(self)

    def _read(self):
        fd = self.popen.stdout.fileno()
        buf = b""
        while True:
            select.select([fd], [], [])
            chunk = os.read(fd, 65536)
            t = time.monotonic()
            if not chunk:
                break
            if self.log:
                self.log.write(chunk)
                self.log.flush()
            buf += chunk
            *done, buf = buf.split(b"\n")
            with self.cond:
                self.lines.extend((t, ln.decode("utf-8", "replace")) for ln in done)
                self.cond.notify_all()

    def wait_line(self, rx, since, timeout):
        """Arrival time of the first line matching RX that came at or after SINCE."""
        rx = re.compile(rx)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, ln in self.lines:
                    if t >= since and rx.search(ln):
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def count(self, rx, since):
        rx = re.compile(rx)
        with self.cond:
            return sum(1 for t, ln in self.lines if t >= since and rx.search(ln))

    def alive(self):
        return self.popen.poll() is None

    def stop(self, grace=3.0):
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.send_signal(signal.SIGKILL)
                self.popen.wait(10)
        self.thread.join(5)
        if self.log:
            self.log.close()
            self.log = None
        if self in Piped.live:
            Piped.live.remove(self)


def stop_all_piped():
    for p in list(Piped.live):
        try:
            p.stop(grace=2.0)
        except Exception:
            pass


class Busy:
    """N busy loops (one per core by default), each stopped by its pid."""

    def __init__(self, n):
        self.procs = [harness.spawn(["/usr/bin/python3", "-c", "while 1: pass"],
                                    os.devnull, name="busy") for _ in range(n)]

    def stop(self):
        for p in self.procs:
            p.kill9()


# ---------------------------------------------------------------- HAProxy

def xmpp_tcp_check(domain):
    hdr = harness.stream_header(domain).replace('"', '\\"')
    return ["    option tcp-check", f'    tcp-check send "{hdr}"',
            "    tcp-check expect string stream:features"]


class HAProxyChecks:
    """One haproxy -db checking servers in several backends (no frontend needed);
    state changes are read from its log as they arrive."""

    def __init__(self, backends):
        """BACKENDS: [(backend name, check params, timeout check or None,
        [(server name, port), ...])]."""
        self.dir = harness.make_dir("haproxy-bench")
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        self.sock = os.path.join(self.dir, "admin.sock")
        self.log_path = os.path.join(self.dir, "haproxy.log")
        lines = ["global", "    log stderr format raw local0 info",
                 f"    stats socket {self.sock} mode 600 level admin",
                 "    maxconn 4096",
                 "defaults", "    mode tcp", "    log global", "    timeout connect 2s",
                 "    timeout client 1h", "    timeout server 1h"]
        for be, params, tcheck, servers in backends:
            lines.append(f"backend {be}")
            if tcheck:
                lines.append(f"    timeout check {tcheck}")
            lines += xmpp_tcp_check(DOMAIN)
            for name, port in servers:
                lines.append(f"    server {name} 127.0.0.1:{port} check {params}".rstrip())
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.backends = [be for be, _, _, _ in backends]
        self.proc = None

    def start(self):
        r = subprocess.run(["haproxy", "-c", "-q", "-f", self.cfg], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            raise harness.HarnessError(f"haproxy -c: {r.stdout}{r.stderr}")
        self.proc = Piped(["haproxy", "-db", "-f", self.cfg], cwd=self.dir,
                          log_path=self.log_path)
        def ready():
            if not self.proc.alive():
                raise harness.HarnessError("haproxy exited:\n" + "\n".join(
                    ln for _, ln in self.proc.lines[-20:]))
            return self.command("show info", quiet=True)
        harness.wait_until(ready, 10, "haproxy's stats socket")
        return self

    @property
    def pid(self):
        return self.proc.pid

    def command(self, cmd, quiet=False):
        return harness.haproxy_command(self.sock, cmd, quiet, timeout=5)

    def stats(self):
        """{(backend, server): row of `show stat`} for our backends' servers."""
        return harness.haproxy_server_stats(self.sock, self.backends)

    def all_up(self):
        st = self.stats()
        return bool(st) and all(r.get("status") == "UP" for r in st.values())

    def event_re(self, be, server, state):
        return rf"^Server {re.escape(be)}/{re.escape(server)} is {state}\b"

    def stop(self):
        if self.proc:
            self.proc.stop()

    def cleanup(self):
        self.stop()
        harness.remove_dir(self.dir)


# ---------------------------------------------------------------- figures

def pct(xs, q):
    """Percentile Q (0-100) by linear interpolation between ranks (numpy's default)."""
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt_ms(x):
    return "-" if x is None else f"{x * 1000:.0f}"


def ratio(a, b):
    return "-" if a is None or b is None or b <= 0 else f"{a / b:.1f}x"


def cpu_seconds(pid):
    """utime + stime of PID, in seconds (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1)) / 1024.0


# ---------------------------------------------------------------- part (a)

class Rig:
    """One Prosody, the hamon under test with a watch subscriber, and HAProxy's
    two setups, all on the same backend."""

    def __init__(self):
        self.prosody = harness.Prosody().start()
        self.work = harness.make_dir("hamon-bench")
        cfg = dict(HAMON, node="bench", log_level="info",
                   state_file=os.path.join(self.work, "hamon.view.json"),
                   backends=[{"name": "a", "address": f"127.0.0.1:{self.prosody.port}",
                              "domain": DOMAIN, "checks": ["xmpp"]}])
        self.hamon = harness.Daemon("hamon", cfg).start()
        self.sub = Subscriber(self.hamon.control)
        self.haproxy = HAProxyChecks([(be, params, tc, [("a", self.prosody.port)])
                                      for be, _, params, tc in HAPROXY_SETUPS]).start()

    def hamon_state(self):
        with self.sub.cond:
            return states(self.sub.views[-1][1]).get("a") if self.sub.views else None

    def wait_all_up(self):
        harness.wait_until(lambda: self.hamon_state() == "up" and self.haproxy.all_up(),
                           WAIT_UP_S, "hamon and both HAProxy setups to see the backend up",
                           interval=0.05)

    def detect(self, since):
        """{detector: seconds from SINCE to its first 'down', None if missed}."""
        out = {}
        deadline = since + WAIT_DETECT_S
        try:
            t, _ = self.sub.wait(lambda v: states(v).get("a") == "down",
                                 timeout=max(0.0, deadline - time.monotonic()),
                                 what="a down", since=since)
            out["hamon"] = t - since
        except harness.HarnessError:
            out["hamon"] = None
        for be, _, _, _ in HAPROXY_SETUPS:
            t = self.haproxy.proc.wait_line(self.haproxy.event_re(be, "a", "DOWN"), since,
                                            max(0.0, deadline - time.monotonic()))
            out[be] = None if t is None else t - since
        return out

    def hamon_error(self):
        with self.sub.cond:
            for _, v in reversed(self.sub.views):
                for b in v["backends"]:
                    if b["name"] == "a" and b["state"] == "down":
                        return b["last_error"]
        return None

    def one_run(self, how, rng):
        self.wait_all_up()
        # A random phase against every detector's check schedule.
        time.sleep(rng.uniform(0.0, 2.0))
        t0 = time.monotonic()
        if how == "kill":
            self.prosody.kill9()
        else:
            self.prosody.sigstop()
        res = self.detect(t0)
        err = self.hamon_error()
        # A stopped process dies of SIGKILL too; then the same data dir again.
        self.prosody.kill9()
        self.prosody.start(timeout=20)
        return res, err

    def cleanup(self):
        self.sub.close()
        self.haproxy.cleanup()
        self.hamon.cleanup()
        self.prosody.cleanup()
        harness.remove_dir(self.work)


def run_detection(rig, runs, rng):
    results = {"kill": {d: [] for d, _ in DETECTORS},
               "stop": {d: [] for d, _ in DETECTORS}}
    errors = {"kill": {}, "stop": {}}
    for how in ("kill", "stop"):
        for i in range(runs):
            res, err = rig.one_run(how, rng)
            for d, _ in DETECTORS:
                results[how][d].append(res[d])
            errors[how][err] = errors[how].get(err, 0) + 1
            note(f"{how} run {i + 1}/{runs}: " + ", ".join(
                f"{label} {fmt_ms(res[d])} ms" for d, label in DETECTORS))
    return results, errors


def print_detection(results, errors, runs):
    print(f"\n(a) failure -> detection, ms, {runs} runs each "
          f"(p99 interpolated between ranks; misses > {WAIT_DETECT_S:g} s excluded)")
    print("    hamon: interval 250ms timeout 500ms rise 2 fall 2, check xmpp; "
          "time until the view reaches a `watch` subscriber")
    print("    haproxy 2.6 tcp-check (stream header, expect stream:features); time until "
          "its log line 'Server ... is DOWN'")
    print("    tuned: check inter 250ms fall 2 rise 2, timeout check 500ms; "
          "defaults: check (inter 2s fall 3 rise 2)")
    hdr = f"{'detector':<18} {'kill -9: p50':>12} {'p99':>7} {'max':>7} {'miss':>5}   " \
          f"{'SIGSTOP: p50':>12} {'p99':>7} {'max':>7} {'miss':>5}"
    print(hdr)
    print("-" * len(hdr))
    summary = {}
    for d, label in DETECTORS:
        row = f"{label:<18}"
        for how in ("kill", "stop"):
            xs = [x for x in results[how][d] if x is not None]
            miss = len(results[how][d]) - len(xs)
            p50, p99, mx = pct(xs, 50), pct(xs, 99), max(xs) if xs else None
            summary[(d, how)] = (p50, p99)
            row += f" {fmt_ms(p50):>12} {fmt_ms(p99):>7} {fmt_ms(mx):>7} {miss:>5}  "
        print(row.rstrip())
    print("ratios (anchor / hamon):")
    for d, label in DETECTORS[1:]:
        print(f"  {label:<16} kill -9 p50 {ratio(summary[(d, 'kill')][0], summary[('hamon', 'kill')][0]):>6}"
              f"  p99 {ratio(summary[(d, 'kill')][1], summary[('hamon', 'kill')][1]):>6}"
              f"   SIGSTOP p50 {ratio(summary[(d, 'stop')][0], summary[('hamon', 'stop')][0]):>6}"
              f"  p99 {ratio(summary[(d, 'stop')][1], summary[('hamon', 'stop')][1]):>6}")
    for how, name in (("kill", "kill -9"), ("stop", "SIGSTOP")):
        p99 = summary[("hamon", how)][1]
        goal = "-" if p99 is None else ("met" if p99 <= 1.0 else "NOT met")
        print(f"goal hamon p99 <= 1000 ms, {name}: {goal}")
    for how, name in (("kill", "kill -9"), ("stop", "SIGSTOP")):
        for err, n in sorted(errors[how].items(), key=lambda kv: -kv[1]):
            print(f"hamon last_error after {name} ({n}x): {err}")


# ---------------------------------------------------------------- part (b)

def hamon_failures(rig):
    m = rig.hamon.http_get("/metrics").body
    f = re.search(r'^hamon_check_failures_total\{backend="a",check="xmpp"\} (\d+)', m, re.M)
    t = re.search(r'^hamon_checks_total\{backend="a",check="xmpp"\} (\d+)', m, re.M)
    slow = {}
    for le in ("0.1", "0.25", "0.5"):
        b = re.search(r'^hamon_check_duration_seconds_bucket\{backend="a",check="xmpp",'
                      r'le="%s"\} (\d+)' % re.escape(le), m, re.M)
        slow[le] = int(b.group(1)) if b else 0
    return (int(f.group(1)) if f else 0), (int(t.group(1)) if t else 0), slow


def hamon_transitions(rig, since):
    """State changes of backend a in the views received since SINCE."""
    with rig.sub.cond:
        seq = [states(v).get("a") for t, v in rig.sub.views if t >= since]
        before = [states(v).get("a") for t, v in rig.sub.views if t < since]
    prev = before[-1] if before else "up"
    changes = []
    for s in seq:
        if s != prev:
            changes.append(f"{prev}->{s}")
            prev = s
    return changes


def run_stress(rig, seconds, nbusy):
    rig.wait_all_up()
    f0, n0, b0 = hamon_failures(rig)
    st0 = rig.haproxy.stats()
    mark = rig.hamon.log_mark()
    t0 = time.monotonic()
    busy = Busy(nbusy)
    cpu0 = cpu_seconds(rig.hamon.pid)
    note(f"stress: {nbusy} busy loops for {seconds} s")
    try:
        end = t0 + seconds
        while time.monotonic() < end:
            time.sleep(min(10.0, max(0.0, end - time.monotonic())))
            if not rig.prosody.proc.alive() or not rig.hamon.proc.alive():
                note("stress: prosody or hamon died")
                break
        busy_cpu = sum(cpu_seconds(p.pid) for p in busy.procs)
    finally:
        busy.stop()
    t1 = time.monotonic()
    cpu1 = cpu_seconds(rig.hamon.pid)
    f1, n1, b1 = hamon_failures(rig)
    st1 = rig.haproxy.stats()
    time.sleep(0.1)
    with open(rig.hamon.log_path, "rb") as f:
        f.seek(mark)
        log = f.read().decode("utf-8", "replace")
    out = {"seconds": t1 - t0, "nbusy": nbusy,
           "busy_share": busy_cpu / (t1 - t0) / os.cpu_count() * 100,
           "hamon_log": [ln for ln in log.splitlines() if re.search(r": a: \w+ -> ", ln)],
           "hamon": {"changes": hamon_transitions(rig, t0), "probes": n1 - n0,
                     "failed": f1 - f0,
                     "over": {le: (n1 - n0) - (b1[le] - b0[le]) for le in b1},
                     "cpu": (cpu1 - cpu0) / (t1 - t0) * 100}}
    for be, _, _, _ in HAPROXY_SETUPS:
        k = (be, "a")
        out[be] = {"downs": rig.haproxy.proc.count(rig.haproxy.event_re(be, "a", "DOWN"), t0),
                   "failed": int(st1[k].get("chkfail") or 0) - int(st0[k].get("chkfail") or 0)}
    return out


def print_stress(s):
    h = s["hamon"]
    print(f"\n(b) false downs of a healthy Prosody, {s['seconds']:.0f} s with {s['nbusy']} "
          f"busy loops on {os.cpu_count()} cores")
    print(f"{'detector':<18} {'false downs':>11} {'failed checks':>14} {'checks':>7}")
    print(f"{'hamon':<18} {sum(1 for c in h['changes'] if c.endswith('->down')):>11} "
          f"{h['failed']:>14} {h['probes']:>7}   view changes: "
          f"{', '.join(h['changes']) or 'none'}")
    for be, label, _, _ in HAPROXY_SETUPS:
        print(f"{label:<18} {s[be]['downs']:>11} {s[be]['failed']:>14} {'-':>7}")
    print(f"hamon probes slower than 100/250/500 ms: {h['over']['0.1']}/"
          f"{h['over']['0.25']}/{h['over']['0.5']}; hamon CPU {h['cpu']:.2f}% of a core; "
          f"the busy loops got {s['busy_share']:.0f}% of all cores")
    for ln in s["hamon_log"]:
        print(f"  hamon log: {ln}")


# ---------------------------------------------------------------- part (c)

def measure_cpu(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return (c1 - c0) / (t1 - t0) * 100.0


def run_cpu(nbackends, nstubs, seconds):
    probe_cli = str(harness.build_dir() / "tests" / "probe_cli")
    d = harness.make_dir("stubs")
    stubs, ports = [], []
    out = {}
    try:
        for i in range(nstubs):
            log = os.path.join(d, f"stub{i}.log")
            p = harness.spawn([probe_cli, "stub-xmpp", "0"], log, name="stub-xmpp")
            stubs.append(p)
            m = harness.wait_log(log, r"^port (\d+)$", timeout=10, proc=p)
            ports.append(int(m.group(1)))
        servers = [(f"s{i % nstubs}-b{i // nstubs}", ports[i % nstubs])
                   for i in range(nbackends)]

        # hamon: 1,000 backends, interval 1 s
        work = harness.make_dir("hamon-cpu")
        cfg = {"node": "cpu", "interval": "1s", "timeout": "500ms", "rise": 2, "fall": 2,
               "log_level": "info", "state_file": os.path.join(work, "view.json"),
               "backends": [{"name": n, "address": f"127.0.0.1:{p}", "domain": DOMAIN,
                             "checks": ["xmpp"]} for n, p in servers]}
        hamon = harness.Daemon("hamon", cfg).start()
        try:
            def all_up():
                r = hamon.cli("status", "--json", timeout=30)
                if r.returncode != 0:
                    return None
                v = json.loads(r.stdout)
                return v.get("published") and sum(b["state"] == "up"
                                                  for b in v["backends"]) == nbackends
            harness.wait_until(all_up, 60, f"{nbackends} backends up", interval=0.5)
            time.sleep(3)
            n0 = probes_total(hamon)
            note(f"cpu: hamon, {nbackends} backends, {seconds} s")
            out["hamon"] = measure_cpu(hamon.pid, seconds)
            out["hamon_probes"] = (probes_total(hamon) - n0) / seconds
            out["hamon_rss"] = rss_mb(hamon.pid)
            out["hamon_up"] = bool(all_up())
        finally:
            hamon.cleanup()
            harness.remove_dir(work)

        # the anchor: one HAProxy checking the same servers at the same interval
        hap = HAProxyChecks([("be_cpu", "inter 1s fall 2 rise 2", "500ms", servers)]).start()
        try:
            harness.wait_until(hap.all_up, 60, f"haproxy: {nbackends} servers up",
                               interval=0.5)
            time.sleep(3)
            note(f"cpu: haproxy, {nbackends} servers, {seconds} s")
            out["haproxy"] = measure_cpu(hap.pid, seconds)
            out["haproxy_rss"] = rss_mb(hap.pid)
            out["haproxy_up"] = hap.all_up()
        finally:
            hap.cleanup()
    finally:
        for p in stubs:
            p.stop()
        harness.remove_dir(d)
    out.update(nbackends=nbackends, nstubs=nstubs, seconds=seconds)
    return out


def probes_total(hamon):
    m = hamon.http_get("/metrics", timeout=30).body
    return sum(int(x) for x in re.findall(r'^hamon_checks_total\{[^}]*\} (\d+)', m, re.M))


def print_cpu(c):
    print(f"\n(c) CPU for {c['nbackends']} backends at a 1 s interval (xmpp check, timeout "
          f"500ms) against {c['nstubs']} stub XMPP servers, utime+stime over "
          f"{c['seconds']} s")
    print(f"{'checker':<18} {'% of one core':>13} {'RSS MB':>7}  all up")
    print(f"{'hamon':<18} {c['hamon']:>13.1f} {c['hamon_rss']:>7.1f}  {c['hamon_up']}"
          f"   ({c['hamon_probes']:.0f} probes/s)")
    print(f"{'haproxy':<18} {c['haproxy']:>13.1f} {c['haproxy_rss']:>7.1f}  {c['haproxy_up']}")
    print(f"ratio haproxy / hamon CPU: {ratio(c['haproxy'], c['hamon'])}")


# ---------------------------------------------------------------- main

def interrupted(signum, frame):
    # SIGTERM unwinds like Ctrl-C, so that every process is stopped by its pid.
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20, help="kill -9 and SIGSTOP runs each")
    ap.add_argument("--stress-seconds", type=int, default=300,
                    help="length of the CPU-stress run (0 skips it)")
    ap.add_argument("--busy", type=int, default=os.cpu_count(),
                    help="busy loops during the stress run (default: one per core)")
    ap.add_argument("--skip-cpu", action="store_true", help="skip the 1,000-backend part")
    ap.add_argument("--backends", type=int, default=1000)
    ap.add_argument("--stubs", type=int, default=10)
    ap.add_argument("--cpu-seconds", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1, help="for the random kill phase")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("hamon_detect.py: run as root (Prosody runs as user prosody)")
    for exe in (harness.build_dir() / "hamon", harness.build_dir() / "tests" / "probe_cli"):
        if not os.access(exe, os.X_OK):
            sys.exit(f"hamon_detect.py: {exe} is not built (make; make unit)")
    signal.signal(signal.SIGTERM, interrupted)

    # A private temp dir for everything harness makes: a long run must not
    # depend on /tmp/jha-systest-* surviving other sessions' clean-ups.
    tempfile.tempdir = tempfile.mkdtemp(prefix="jha-bench-", dir="/var/tmp")
    os.chmod(tempfile.tempdir, 0o755)
    rng = random.Random(args.seed)
    t_start = time.monotonic()
    rig = None
    try:
        rig = Rig()
        rig.wait_all_up()
        results, errors = run_detection(rig, args.runs, rng) if args.runs > 0 else (None, None)
        stress = run_stress(rig, args.stress_seconds, args.busy) \
            if args.stress_seconds > 0 else None
        rig.cleanup()
        rig = None
        cpu = None if args.skip_cpu else run_cpu(args.backends, args.stubs, args.cpu_seconds)
    finally:
        if rig is not None:
            rig.cleanup()
        stop_all_piped()
        harness.cleanup_all()
        if not harness.keep_tmp():
            shutil.rmtree(tempfile.tempdir, ignore_errors=True)

    print(f"hamon_detect: {' '.join(sys.argv[1:]) or '(defaults)'}; "
          f"{os.cpu_count()} cores; {time.monotonic() - t_start:.0f} s")
    if results:
        print_detection(results, errors, args.runs)
    if stress:
        print_stress(stress)
    if cpu:
        print_cpu(cpu)


if __name__ == "__main__":
    main()
