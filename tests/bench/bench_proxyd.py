#!/usr/bin/python3
# bench_proxyd.py: what proxyd costs on the message path and per idle session,
# against HAProxy in TCP mode and against no proxy at all, in the same run:
# throughput at saturation, latency at fractions of it, RSS per idle client.
#
#   tests/bench/bench_proxyd.py                      # the full run: about 12 minutes
#   tests/bench/bench_proxyd.py --quick              # a quick look: about 3 minutes
#   tests/bench/bench_proxyd.py --pin ...            # load generator and backend on CPU 0,
#                                                    # every proxy on CPU 1 (isolation)
#   tests/bench/bench_proxyd.py --tick 250 ...       # the open loop's send clock, in us
#
# Where added latency comes from: the latency table gives, per path, the proxy's
# CPU per message and its threads' run-queue wait per message (time runnable but
# without a CPU: the machine's contention, other people's work included).  The
# open loop sends on a 1 ms clock, so each tick is a burst of rate/1000 messages
# that every stage (load generator, proxy, backend, proxy, load generator)
# works through in turn, each after a wake-up: a proxy adds two such stages,
# and its CPU per message sets how long its stages take.  --pin takes the load
# generator's and the backend's CPU away from the proxies (the same for every
# contender: all proxies start on CPU 1 and size their threads to it, hamon
# stays unpinned); --tick makes
# smaller bursts (more wake-ups: every path then spends more CPU per message).
#
# Run as root with Debian's /usr/bin/python3 after `make && make unit` (the load
# generator and the echo backend are build/tests/loadgen and echo_xmpp).
# A benchmark, not a test: it prints a table and ratios, never fails on a number.

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system"))
import harness                                          # noqa: E402
from hamon_helpers import backend, hamon_config, wait_states   # noqa: E402

DOMAIN = harness.XMPP_DOMAIN
PASSWORD = "bench-pw"
NOFILE_NOTE = ("N = 10,000 does not fit here: the open-file hard limit is 20,000 per "
               "process and a proxy holds two fds per client (plus its listeners)")
GOALS = {"throughput": 0.80, "p99_added_us": 1000, "idle_plain_kib": 16}
PIN = None      # --pin: (CPUs of the load generator and backends, CPUs of the proxies)
ARGS_TICK = 0   # --tick: the open loop's send clock in us (0: loadgen's 1 ms)


def note(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tool(name):
    path = harness.build_dir() / "tests" / name
    if not os.access(path, os.X_OK):
        sys.exit(f"{path} is not built: run `make && make unit` first")
    return str(path)


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise harness.HarnessError(f"no VmRSS for {pid}")


def pin(pid, which):
    """--pin: every thread of PID on the load's (0) or the proxies' (1) CPUs.
    The proxies also start there (proxy_cpus), so that each sizes its
    threads to the CPU it has, as it would under taskset or systemd's
    CPUAffinity=: HAProxy's nbthread and proxyd's workers both default to
    the CPUs of their affinity."""
    if PIN is None or not pid:
        return
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), PIN[which])
        except OSError:
            pass                        # a thread that just ended


@contextlib.contextmanager
def proxy_cpus():
    """--pin: what starts inside runs on the proxies' CPUs from its first
    instruction (a child inherits the affinity)."""
    if PIN is None:
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, PIN[1])
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def runq_seconds(pid):
    """Seconds PID's threads waited runnable for a CPU (schedstat's second field)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def load_cpus():
    """preexec_fn of the load generator: on the load's CPUs under --pin."""
    if PIN is not None:
        os.sched_setaffinity(0, PIN[0])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the parts

class Echo:
    """build/tests/echo_xmpp on a free port: any PLAIN login, message routing."""

    def __init__(self):
        self.dir = harness.make_dir("echo")
        self.log_path = os.path.join(self.dir, "echo.log")
        self.port = harness.free_port()
        self.domain = DOMAIN
        self.proc = harness.spawn([tool("echo_xmpp"), "-p", str(self.port), "-d", DOMAIN],
                                  self.log_path, name="echo_xmpp")
        harness.wait_log(self.log_path, rf"^port {self.port}$", 10, proc=self.proc)
        pin(self.proc.pid, 0)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        self.proc.stop()


class Proxyd:
    """hamon watching one backend and proxyd in front of it (plain, STARTTLS and
    direct-TLS listeners), configured as in production but for the limits a
    load test trips on purpose: no per-connection stanza rate, no max_connections."""

    binary = None       # a private copy: a rebuild during the run changes nothing

    def __init__(self, be, workers=None):
        self.be = be
        self.dir = harness.make_dir("proxyd-bench")
        self.hamon = harness.Daemon("hamon", hamon_config(
            self.dir, [backend("a", be)], log_level="info")).start()
        wait_states(self.hamon, {"a": "up"})
        self.cert, self.key = harness.make_cert(self.dir, DOMAIN)
        self.ports = {t: harness.free_port() for t in ("none", "starttls", "direct")}
        self.proxyd = harness.Daemon("proxyd", {
            "listen": [{"address": f"127.0.0.1:{p}", "tls": t}
                       for t, p in self.ports.items()],
            "hamon": self.hamon.control,
            "tls": {"cert": self.cert, "key": self.key},
            "log_level": "info",
            "limits": {"stanzas_per_second": 0, "auth_timeout": "1h"},
            "domains": [{"name": DOMAIN, "max_connections": 0}],
            **({"workers": workers} if workers else {}),
        }, binary=Proxyd.binary)
        self.start()

    def start(self):
        with proxy_cpus():
            self.proxyd.start()
        harness.wait_until(lambda: self.proxyd.status()["hamon"]["view_received"], 10,
                           "proxyd has hamon's view")
        harness.wait_until(lambda: (harness.xmpp_features(self.ports["none"]) or "").find(
            "mechanisms") >= 0, 10, "a login offer through proxyd")
        pin(self.proxyd.pid, 1)

    def restart(self):
        """A fresh process: memory freed by a previous run would hide the cost."""
        self.proxyd.stop()
        self.start()

    @property
    def pid(self):
        return self.proxyd.pid

    def sessions(self):
        return self.proxyd.status()["sessions"]

    def stop(self):
        self.proxyd.stop()
        self.hamon.stop()


class Haproxy:
    def __init__(self, be, maxconn, nbthread=None):
        with proxy_cpus():
            self.h = harness.HAProxy([("a", be.port)], xmpp_check=True,
                                     check_domain=DOMAIN, maxconn=maxconn,
                                     nbthread=nbthread).start()
        self.port = self.h.port
        pin(self.h.pid, 1)

    @property
    def pid(self):
        return self.h.pid

    def stop(self):
        self.h.stop()


def prosody_backend(users):
    """A Prosody with USERS accounts u0..u<USERS-1>, registered with prosodyctl."""
    p = harness.Prosody().start()
    pin(p.pid, 0)
    names = [f"u{i}" for i in range(users)]
    errors = []

    def reg(chunk):
        for n in chunk:
            try:
                p.register(n, PASSWORD)
            except Exception as e:      # noqa: BLE001 (reported below)
                errors.append(e)
    threads = [threading.Thread(target=reg, args=(names[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return p


# ---------------------------------------------------------------- the load

def loadgen(port, clients, rate=0, window=8, seconds=5, warmup=1, tls="none",
            users=0, idle=False, body=0, timeout=None, tick=None):
    argv = [tool("loadgen"), "-t", f"127.0.0.1:{port}", "-n", str(clients),
            "-d", DOMAIN, "-u", "u", "-w", PASSWORD, "-T", tls,
            "-s", str(seconds), "-a", str(warmup), "-c", "100"]
    if users:
        argv += ["-U", str(users)]
    if body:
        argv += ["-b", str(body)]
    argv += ["-r", str(rate)] if rate else ["-r", "0", "-W", str(window)]
    tick = tick or ARGS_TICK
    if rate and tick:
        argv += ["-k", str(tick)]
    if idle:
        return subprocess.Popen(argv + ["-I"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, preexec_fn=load_cpus)
    r = subprocess.run(argv, capture_output=True, text=True, preexec_fn=load_cpus,
                       timeout=timeout or (seconds + warmup + 120))
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise harness.HarnessError(f"loadgen printed nothing ({r.returncode}): {r.stderr}")
    res = json.loads(lines[-1])
    if res["failed"] or res["errors"]:
        note(f"  loadgen: {res['failed']} failed logins, {res['errors']} errors: "
             f"{res['first_error']}")
    return res


def measured(target, pid, **kw):
    """A loadgen run against TARGET's port with the proxy's CPU seconds."""
    cpu0 = cpu_seconds(pid) if pid else 0
    rq0 = runq_seconds(pid) if pid else 0
    res = loadgen(target, **kw)
    res["proxy_cpu_s"] = (cpu_seconds(pid) - cpu0) if pid else 0
    res["proxy_runq_s"] = (runq_seconds(pid) - rq0) if pid else 0
    return res


# ---------------------------------------------------------------- phases

def throughput(targets, args, clients, users):
    """Saturation: the closed loop, rounds interleaved (drift hits all alike)."""
    runs = {name: [] for name, _, _ in targets}
    for r in range(args.rounds):
        for name, port, pid in targets:
            res = measured(port, pid, clients=clients, window=args.window,
                           seconds=args.seconds, warmup=args.warmup, users=users,
                           tls="direct" if name.endswith("TLS") else "none",
                           body=args.body)
            note(f"  saturation round {r + 1} {name}: {res['msgs_per_s']:,.0f} msgs/s, "
                 f"p50 {res['p50_us']:.0f} us, p99 {res['p99_us']:.0f} us")
            runs[name].append(res)
    return {name: max(rs, key=lambda x: x["msgs_per_s"]) for name, rs in runs.items()}


def latency(targets, args, clients, users, sat):
    """Open loop at fractions of proxyd's saturating load, the same for all.
    Rounds go through every path in turn (as the saturation runs do), so a
    noisy minute of a shared machine falls on all of them, not on one."""
    out = {}
    for frac in args.loads:
        rate = max(10, int(sat * frac))
        runs = {name: [] for name, _, _ in targets}
        for _ in range(args.rounds):
            for name, port, pid in targets:
                runs[name].append(measured(port, pid, clients=clients, rate=rate,
                                           seconds=args.seconds, warmup=args.warmup,
                                           users=users,
                                           tls="direct" if name.endswith("TLS") else "none",
                                           body=args.body))
        for name, _, _ in targets:
            # The median run by p99: one hiccup of a shared machine is not the figure.
            res = sorted(runs[name], key=lambda x: x["p99_us"])[len(runs[name]) // 2]
            note(f"  {frac:.0%} ({rate:,}/s) {name}: {res['msgs_per_s']:,.0f} msgs/s, "
                 f"p50 {res['p50_us']:.0f} us, p99 {res['p99_us']:.0f} us")
            out[(frac, name)] = res
    return out


def idle_memory(name, pid_fn, port, n, tls, ready_fn=None):
    """(RSS after N idle logged-in clients - RSS before) / N, on a fresh process."""
    warm = loadgen(port, 20, idle=True, tls=tls)
    json.loads(warm.stdout.readline())
    time.sleep(2.5)                     # past proxyd's idle trim (1 s sweep)
    before = rss(pid_fn())
    t0 = time.monotonic()
    lg = loadgen(port, n, idle=True, tls=tls)
    res = json.loads(lg.stdout.readline())
    login_s = time.monotonic() - t0
    if ready_fn:
        harness.wait_until(lambda: ready_fn() >= res["logged_in"] + 20, 60,
                           f"{name}: {n} sessions")
    time.sleep(2.5)
    after = rss(pid_fn())
    for p in (lg, warm):
        p.stdin.close()
        p.wait(60)
    per = (after - before) / max(1, res["logged_in"])
    note(f"  idle {name}: {res['logged_in']}/{n} logged in ({login_s:.1f} s), "
         f"{per / 1024:.2f} KiB per connection")
    return {"n": n, "logged_in": res["logged_in"], "failed": res["failed"],
            "rss_before": before, "rss_after": after, "per_conn": per,
            "first_error": res["first_error"]}


# ---------------------------------------------------------------- report

def fmt_us(v):
    return f"{v:,.0f}"


def print_set(title, sat, lat, loads, sat_clients, window, tick):
    names = list(sat)
    print(f"\n== {title}")
    print(f"saturation: {sat_clients} clients in pairs, {window} messages in flight each "
          f"(closed loop); msgs/s counted at the receivers; the proxy's CPU per message")
    print(f"  {'path':<16} {'msgs/s':>10} {'p50 us':>8} {'p99 us':>8} {'cpu us/msg':>10}")
    for n in names:
        r = sat[n]
        cpu = 1e6 * r["proxy_cpu_s"] / max(1, r["received"])
        print(f"  {n:<16} {r['msgs_per_s']:>10,.0f} {fmt_us(r['p50_us']):>8} "
              f"{fmt_us(r['p99_us']):>8} {cpu:>10.3f}")
    print(f"latency at fractions of proxyd's saturating load (open loop, {tick} us send "
          f"clock; added = path - direct; the proxy's CPU and run-queue wait per message)")
    print(f"  {'load':>12} {'path':<16} {'msgs/s':>10} {'p50 us':>8} {'p99 us':>8} "
          f"{'+p50 us':>8} {'+p99 us':>8} {'cpu us':>7} {'runq us':>7}")
    for frac in loads:
        base = lat.get((frac, "direct"))
        for n in names:
            r = lat.get((frac, n))
            if not r:
                continue
            a50 = r["p50_us"] - base["p50_us"] if base and n != "direct" else None
            a99 = r["p99_us"] - base["p99_us"] if base and n != "direct" else None
            got = max(1, r["received"])
            cpu = f"{1e6 * r['proxy_cpu_s'] / got:.2f}" if n != "direct" else ""
            rq = f"{1e6 * r.get('proxy_runq_s', 0) / got:.2f}" if n != "direct" else ""
            print(f"  {frac:>4.0%} {r['rate']:>7,.0f} {n:<16} {r['msgs_per_s']:>10,.0f} "
                  f"{fmt_us(r['p50_us']):>8} {fmt_us(r['p99_us']):>8} "
                  f"{'' if a50 is None else fmt_us(a50):>8} "
                  f"{'' if a99 is None else fmt_us(a99):>8} {cpu:>7} {rq:>7}")


def filter_floor(body):
    """tests/tools/filter_cost: proxyd's filter and expat alone, per message,
    in one thread without the network, on the bench's own messages."""
    r = subprocess.run([tool("filter_cost"), "-n", "200000", "-r", "3", "-b", str(body)],
                       capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        note(f"filter_cost failed ({r.returncode}): {r.stderr.strip()}")
        return None
    return json.loads(lines[-1])


def print_floor(fl, sat):
    """What expat alone costs sets a ceiling on any proxy that parses the
    client's bytes with it (as proxyd must): HAProxy's whole per-message cost
    on this machine (cores / its msgs/s, the load generator and the backend
    included) plus expat's on those bytes is the best such a proxy could do;
    parsing the backend's bytes too would lower it further."""
    print("\n== the floor: expat alone on the same messages (tests/tools/filter_cost, "
          "one thread, no network)")
    print(f"  expat, client to backend    {fl['expat_up_ns']:8.0f} ns/msg "
          f"({fl['bytes_up']} bytes); both directions {fl['expat_ns']:.0f} "
          f"(+ {fl['bytes_down']} bytes)")
    print(f"  proxyd's filter + serializer {fl['filter_up_ns']:7.0f} ns/msg to the backend "
          f"(expat's share {fl['expat_up_ns'] / fl['filter_up_ns']:.0%}); "
          f"{fl['write_up_ns']:.0f} once bound (writing mode, no expat); "
          f"{fl['pass_down_ns']:.0f} back in pass mode (parsed: {fl['filter_down_ns']:.0f})")
    if "haproxy" in sat and sat["haproxy"]["msgs_per_s"] > 0:
        whole = os.cpu_count() / sat["haproxy"]["msgs_per_s"] * 1e9
        one = whole / (whole + fl["expat_up_ns"])
        both = whole / (whole + fl["expat_ns"])
        print(f"  haproxy's whole cost here {whole:,.0f} ns/msg (cores / msgs/s); plus expat: "
              f"a ceiling of {one:.2f} x haproxy's throughput for any proxy that parses "
              f"the client's bytes with expat ({both:.2f} if both ways); a bound "
              f"session's stanzas in proxyd take neither expat nor a tree")


def verdicts(sat, lat, mem):
    out = []
    if "proxyd 1 worker" in sat and "haproxy 1 thread" in sat:
        r = sat["proxyd 1 worker"]["msgs_per_s"] / max(1, sat["haproxy 1 thread"]["msgs_per_s"])
        out.append(f"throughput proxyd with 1 worker / haproxy TCP with nbthread 1 = {r:.2f}")
    if "proxyd" in sat and "haproxy" in sat:
        r = sat["proxyd"]["msgs_per_s"] / max(1, sat["haproxy"]["msgs_per_s"])
        out.append(f"throughput proxyd / haproxy TCP = {r:.2f} (goal >= "
                   f"{GOALS['throughput']:.2f}): {'met' if r >= GOALS['throughput'] else 'NOT met'}")
    if (0.5, "proxyd") in lat and (0.5, "direct") in lat:
        a = lat[(0.5, "proxyd")]["p99_us"] - lat[(0.5, "direct")]["p99_us"]
        if a < 0:
            # The path without a proxy had the worse tail: the machine's
            # noise, not the proxy, set both; the figure says nothing.
            verdict = "inconclusive (direct's p99 above proxyd's: a noisy machine)"
        else:
            verdict = "met" if a <= GOALS["p99_added_us"] else "NOT met"
        out.append(f"p99 added latency at half load = {a:,.0f} us (goal <= "
                   f"{GOALS['p99_added_us']} us): {verdict}")
    if "proxyd plain" in mem:
        k = mem["proxyd plain"]["per_conn"] / 1024
        out.append(f"idle plain session = {k:.2f} KiB (goal <= {GOALS['idle_plain_kib']} KiB)"
                   f": {'met' if k <= GOALS['idle_plain_kib'] else 'NOT met'}")
    if "proxyd plain" in mem and "haproxy" in mem:
        out.append(f"idle memory proxyd plain / haproxy = "
                   f"{mem['proxyd plain']['per_conn'] / max(1, mem['haproxy']['per_conn']):.2f}")
    return out


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=100, help="clients for the message runs")
    ap.add_argument("--window", type=int, default=8,
                    help="messages in flight per client at saturation")
    ap.add_argument("--seconds", type=float, default=5, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs per figure (best throughput, median p99)")
    ap.add_argument("--loads", type=float, nargs="+", default=[0.05, 0.25, 0.5, 0.75],
                    help="fractions of proxyd's saturating load")
    ap.add_argument("--body", type=int, default=0, help="extra body bytes per message")
    ap.add_argument("--idle-n", type=int, default=9000,
                    help="idle logged-in clients for the memory figures")
    ap.add_argument("--prosody-clients", type=int, default=40)
    ap.add_argument("--prosody-users", type=int, default=20)
    ap.add_argument("--skip-prosody", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-messages", action="store_true",
                    help="only the idle memory figures")
    ap.add_argument("--skip-tls", action="store_true",
                    help="leave proxyd's direct-TLS path out of the message runs")
    ap.add_argument("--quick", action="store_true",
                    help="1 round, 3 s runs, loads 0.5 only, 2,000 idle clients")
    ap.add_argument("--pin", action="store_true",
                    help="load generator and backends on CPU 0, every proxy on CPU 1")
    ap.add_argument("--tick", type=int, default=1000,
                    help="the open loop's send clock in us (10..1000; smaller: "
                    "smaller bursts)")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--proxyd", help="another proxyd binary (default: the build's)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.loads, args.idle_n = 1, 3, [0.5], 2000
    if os.geteuid() != 0:
        sys.exit("bench_proxyd.py runs Prosody as user prosody: run it as root")
    global PIN, ARGS_TICK
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            sys.exit("--pin needs two CPUs")
        PIN = ({cpus[0]}, {cpus[1]})
    if not 10 <= args.tick <= 1000:
        sys.exit("--tick: 10 to 1000 us")
    ARGS_TICK = args.tick if args.tick != 1000 else 0
    note(f"build {harness.build_dir()}; {os.cpu_count()} cores; load average "
         f"{os.getloadavg()[0]:.2f}; {NOFILE_NOTE}"
         + (f"; pinned: load on CPU {PIN[0]}, proxies on CPU {PIN[1]}" if PIN else ""))
    report = {"args": vars(args), "sets": {}}
    Proxyd.binary = os.path.join(harness.make_dir("bin"), "proxyd")
    shutil.copy2(args.proxyd or harness.build_dir() / "proxyd", Proxyd.binary)
    echo = Echo()
    px = Proxyd(echo)
    # Both run one event loop per CPU by default; each also with one alone.
    px1 = Proxyd(echo, workers=1)
    hp = Haproxy(echo, maxconn=args.idle_n + 500)
    hp1 = Haproxy(echo, maxconn=4096, nbthread=1)
    try:
        targets = [("direct", echo.port, None), ("haproxy", hp.port, hp.pid),
                   ("haproxy 1 thread", hp1.port, hp1.pid),
                   ("proxyd", px.ports["none"], px.pid),
                   ("proxyd 1 worker", px1.ports["none"], px1.pid)]
        if not args.skip_tls:
            targets.append(("proxyd TLS", px.ports["direct"], px.pid))
        sat, lat = {}, {}
        if not args.skip_messages:
            note("echo backend: saturation")
            sat = throughput(targets, args, args.clients, 0)
            note("echo backend: latency")
            lat = latency(targets, args, args.clients, 0, sat["proxyd"]["msgs_per_s"])
            report["sets"]["echo"] = {
                "saturation": sat, "latency": {f"{f}|{n}": r for (f, n), r in lat.items()}}
            report["floor"] = filter_floor(args.body)
        mem = {}
        if not args.skip_memory:
            note(f"idle memory, N = {args.idle_n}")
            px.restart()
            mem["proxyd plain"] = idle_memory("proxyd plain", lambda: px.pid,
                                              px.ports["none"], args.idle_n, "none",
                                              px.sessions)
            px.restart()
            mem["proxyd direct TLS"] = idle_memory("proxyd direct TLS", lambda: px.pid,
                                                   px.ports["direct"], args.idle_n,
                                                   "direct", px.sessions)
            px.restart()
            mem["proxyd STARTTLS"] = idle_memory("proxyd STARTTLS", lambda: px.pid,
                                                 px.ports["starttls"], args.idle_n,
                                                 "starttls", px.sessions)
            mem["haproxy"] = idle_memory("haproxy", lambda: hp.pid, hp.port,
                                         args.idle_n, "none")
            report["memory"] = mem
        psat = plat = None
        if not args.skip_prosody and not args.skip_messages:
            hp.stop()
            hp1.stop()
            px.stop()
            px1.stop()
            note(f"Prosody: {args.prosody_users} users")
            pro = prosody_backend(args.prosody_users)
            ppx = Proxyd(pro)
            php = Haproxy(pro, maxconn=4096)
            try:
                ptargets = [("direct", pro.port, None), ("haproxy", php.port, php.pid),
                            ("proxyd", ppx.ports["none"], ppx.pid)]
                note("Prosody backend: saturation")
                psat = throughput(ptargets, args, args.prosody_clients, args.prosody_users)
                note("Prosody backend: latency")
                plat = latency(ptargets, args, args.prosody_clients, args.prosody_users,
                               psat["proxyd"]["msgs_per_s"])
                report["sets"]["prosody"] = {
                    "saturation": psat,
                    "latency": {f"{f}|{n}": r for (f, n), r in plat.items()}}
            finally:
                php.stop()
                ppx.stop()
                pro.stop()
    finally:
        for part in (hp, hp1, px, px1, echo):
            try:
                part.stop()
            except Exception:           # noqa: BLE001 (already stopped)
                pass

    print(f"\nbench_proxyd.py on {os.cpu_count()} cores shared with other work: "
          f"figures are noisy, compare ratios within this run only.")
    if sat:
        print_set("echo backend (build/tests/echo_xmpp): the proxies' own cost", sat, lat,
                  args.loads, args.clients, args.window, args.tick)
    if psat:
        print_set(f"Prosody backend ({args.prosody_users} users, {args.prosody_clients} "
                  f"clients)", psat, plat, args.loads, args.prosody_clients, args.window,
                  args.tick)
    if mem:
        print(f"\n== memory per idle logged-in connection, N = {args.idle_n} "
              f"(RSS growth / N; 20 warm connections first)")
        print(f"  {NOFILE_NOTE}.")
        print(f"  {'path':<20} {'logged in':>10} {'RSS before':>12} {'RSS after':>12} "
              f"{'KiB/conn':>9}")
        for n, m in mem.items():
            print(f"  {n:<20} {m['logged_in']:>10,} {m['rss_before'] / 2**20:>10.1f}Mi "
                  f"{m['rss_after'] / 2**20:>10.1f}Mi {m['per_conn'] / 1024:>9.2f}")
    if report.get("floor"):
        print_floor(report["floor"], sat)
    print("\n== against the goals (echo backend; never a failure)")
    for line in verdicts(sat, lat, mem):
        print("  " + line)
    if psat:
        r = psat["proxyd"]["msgs_per_s"] / max(1, psat["haproxy"]["msgs_per_s"])
        print(f"  Prosody backend: throughput proxyd / haproxy = {r:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        harness.cleanup_all()
