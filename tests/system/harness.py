# harness.py: what every system test shares: free ports, temp dirs, processes
# stopped by pid, and the real components (Prosody, MariaDB, HAProxy, our daemons).
#
# Every process is started through spawn(): it is registered, killed by its pid
# at the end (SIGTERM, then SIGKILL) whatever happens to the test, and it gets
# SIGKILL from the kernel (setpriv --pdeathsig) should pytest itself die.

import atexit
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAEMONS = ("proxyd", "spoolsync", "hamon")
XMPP_DOMAIN = "example.test"
STREAM_NS = "http://etherx.jabber.org/streams"


def build_dir():
    """The build directory: $JHA_BUILD (relative to the repo root) or build/."""
    return (REPO / os.environ.get("JHA_BUILD", "build")).resolve()


def keep_tmp():
    return os.environ.get("JHA_KEEP_TMP", "") not in ("", "0")


class HarnessError(AssertionError):
    pass


# ---------------------------------------------------------------- waiting

def wait_until(pred, timeout, what, interval=0.02):
    """Poll PRED until it returns a true value (returned); fail after TIMEOUT s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- ports

_handed_ports = set()


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on now and that this session never handed out."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_ports:
            _handed_ports.add(port)
            return port
    raise HarnessError("no free port found")


def port_is_free(port, host="127.0.0.1"):
    """True when a listener can bind HOST:PORT now (nobody listens there)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        # TIME_WAIT leftovers of closed connections must not count as "in use".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1)
        except OSError:
            return False
    return True


# ---------------------------------------------------------------- temp dirs

_tmp_root = None
_dirs = []


def tmp_root():
    """One directory per session, traversable by the daemons' users (0755)."""
    global _tmp_root
    if _tmp_root is None:
        _tmp_root = tempfile.mkdtemp(prefix="jha-systest-")
        os.chmod(_tmp_root, 0o755)
    return _tmp_root


def make_dir(prefix, owner=None, mode=0o755):
    """A fresh temp dir (short path: unix sockets live in it), chowned to OWNER."""
    d = tempfile.mkdtemp(prefix=prefix + "-", dir=tmp_root())
    os.chmod(d, mode)
    if owner:
        chown(d, owner)
    _dirs.append(d)
    return d


def chown(path, owner):
    pw = pwd.getpwnam(owner)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def remove_dir(d):
    if keep_tmp():
        return
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- processes

_procs = []


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


class Proc:
    """A process we started: stdout+stderr to LOG_PATH, stopped by its pid."""

    def __init__(self, argv, log_path, name=None, user=None, env=None, cwd=None):
        self.name = name or os.path.basename(argv[0])
        self.argv = list(argv)
        self.log_path = str(log_path)
        wrap = ["setpriv", "--pdeathsig", "KILL"]
        if user:
            wrap += ["--reuid", user, "--regid", user, "--clear-groups"]
        # setpriv execs: the pid we hold is the program's own pid.
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                wrap + ["--"] + self.argv, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid
        _procs.append(self)

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def signal(self, sig):
        # Popen.send_signal never signals a reaped (possibly reused) pid.
        self.popen.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"{self.name}[{self.pid}] still running after {timeout:g}s")

    def stop(self, grace=3.0):
        """SIGTERM (and SIGCONT, in case it is stopped), then SIGKILL after GRACE s."""
        if self.alive():
            self.signal(signal.SIGTERM)
            self.signal(signal.SIGCONT)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(10)
        if self in _procs:
            _procs.remove(self)
        return self.popen.returncode

    def kill9(self):
        self.signal(signal.SIGKILL)
        self.popen.wait(10)
        if self in _procs:
            _procs.remove(self)
        return self.popen.returncode

    def sigstop(self):
        self.signal(signal.SIGSTOP)

    def sigcont(self):
        self.signal(signal.SIGCONT)

    def log_text(self):
        return read_text(self.log_path)


def spawn(argv, log_path, **kw):
    return Proc(argv, log_path, **kw)


def kill_all():
    """The safety net: whatever is still running is killed by its pid."""
    for p in list(_procs):
        try:
            p.stop(grace=2.0)
        except Exception:
            pass


def cleanup_all():
    kill_all()
    if _tmp_root and not keep_tmp():
        shutil.rmtree(_tmp_root, ignore_errors=True)


atexit.register(cleanup_all)


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def wait_log(path, regex, timeout=10.0, since=0, proc=None, what=None):
    """Wait until the file at PATH (from byte SINCE) matches REGEX; the match.

    Fails at once, with the log's tail, when PROC exits before the line shows.
    """
    rx = re.compile(regex, re.M) if isinstance(regex, str) else regex
    deadline = time.monotonic() + timeout
    while True:
        exited = proc is not None and not proc.alive()
        with open(path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        m = rx.search(text)
        if m:
            return m
        label = what or f"/{rx.pattern}/ in {path}"
        if exited:
            raise HarnessError(f"{proc.name}[{proc.pid}] exited ({proc.returncode}) before "
                               f"{label}; log tail:\n{tail(read_text(path))}")
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:g}s waiting for {label}; "
                               f"log tail:\n{tail(read_text(path))}")
        time.sleep(0.02)


def file_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def pid_gone(pid):
    """True when no process PID exists (or it is a zombie) any more."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


# ---------------------------------------------------------------- YAML

class Raw(str):
    """A scalar written into YAML exactly as given (no quoting)."""


_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./:@+\[\]-]*$")
_YAML_SPECIAL = re.compile(
    r"^(?:~|null|true|false|yes|no|on|off|y|n|[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)"
    r"(?:[eE][-+]?\d+)?|0x[0-9a-fA-F]+|0o[0-7]+|[-+]?\.inf|\.nan)$", re.I)


def yaml_scalar(v):
    if isinstance(v, Raw):
        return str(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    if _PLAIN.match(s) and not _YAML_SPECIAL.match(s):
        return s
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(s, ensure_ascii=False)


def to_yaml(obj, indent=0):
    """YAML block text for dicts, lists and scalars (no PyYAML needed)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            key = yaml_scalar(k)
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{key}:\n{to_yaml(v, indent + 2)}")
            else:
                out.append(f"{pad}{key}: {_inline(v)}\n")
    elif isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                body = to_yaml(v, indent + 2)
                out.append(f"{pad}- {body[indent + 2:]}")
            else:
                out.append(f"{pad}- {_inline(v)}\n")
    else:
        out.append(pad + yaml_scalar(obj) + "\n")
    return "".join(out)


def _inline(v):
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return yaml_scalar(v)


def yaml_position(text, key):
    """(line, key column, value column), 1-based, of the first top-level KEY."""
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith(key + ":"):
            rest = line[len(key) + 1:]
            return n, 1, len(key) + 2 + (len(rest) - len(rest.lstrip(" ")))
    raise KeyError(key)


# ---------------------------------------------------------------- raw XMPP

def stream_header(to=XMPP_DOMAIN):
    return ("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
            "xmlns:stream='%s' version='1.0'>" % (to, STREAM_NS))


def xmpp_features(port, host="127.0.0.1", to=XMPP_DOMAIN, timeout=1.0):
    """The <stream:features> a real XMPP server sends on HOST:PORT, or None."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(stream_header(to).encode())
            data = b""
            deadline = time.monotonic() + timeout
            while b"</stream:features>" not in data and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            # Close the stream properly: a server stopped while it still holds
            # a half-closed probe session waits a second for it at shutdown.
            try:
                s.sendall(b"</stream:stream>")
                s.settimeout(0.2)
                while s.recv(65536):
                    pass
            except OSError:
                pass
    except OSError:
        return None
    m = re.search(rb"<stream:features.*?</stream:features>", data, re.S)
    return m.group(0).decode() if m else None


# ---------------------------------------------------------------- TLS

def make_cert(directory, cn, owner=None):
    """A self-signed certificate (EC P-256, SAN DNS:CN): (cert path, key path)."""
    cert = os.path.join(directory, cn + ".crt")
    key = os.path.join(directory, cn + ".key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-days", "2", "-subj", "/CN=" + cn,
                        "-addext", "subjectAltName=DNS:" + cn,
                        "-keyout", key, "-out", cert],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise HarnessError(f"openssl req failed: {r.stderr}")
    os.chmod(key, 0o600)
    if owner:
        chown(key, owner)
        chown(cert, owner)
    return cert, key


# ---------------------------------------------------------------- Prosody

class Prosody:
    """A Prosody on 127.0.0.1, private temp dir and spool, run as user prosody."""

    def __init__(self, domain=XMPP_DOMAIN, data_dir=None, port=None, extra_config="",
                 extra_hosts=(), tls=False):
        """TLS: offer STARTTLS on the c2s port and direct TLS on .tls_port, with a
        fresh self-signed certificate for DOMAIN (.cert_path is its CA file)."""
        self.domain = domain
        self.hosts = [domain] + list(extra_hosts)
        self.dir = make_dir("prosody", owner="prosody")
        self.data_dir = data_dir or os.path.join(self.dir, "data")
        if not os.path.isdir(self.data_dir):
            os.mkdir(self.data_dir, 0o750)
            chown(self.data_dir, "prosody")
        certs = os.path.join(self.dir, "certs")
        os.mkdir(certs, 0o755)
        self.tls = tls
        self.cert_path = self.key_path = None
        self.tls_port = None
        if tls:
            self.cert_path, self.key_path = make_cert(certs, domain, owner="prosody")
            self.tls_port = free_port()
        self.port = port or free_port()
        self.extra_config = extra_config
        self.config_path = os.path.join(self.dir, "prosody.cfg.lua")
        self.log_path = os.path.join(self.dir, "prosody.log")
        self.out_path = os.path.join(self.dir, "prosody.out")
        self.proc = None
        self.write_config()

    def write_config(self):
        d = self.dir
        text = f"""-- written by tests/system/harness.py
data_path = "{self.data_dir}"; pidfile = "{d}/prosody.pid"
certificates = "{d}/certs"
log = {{ info = "{self.log_path}"; error = "*stderr" }}
interfaces = {{ "127.0.0.1" }}; local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}; s2s_ports = {{ }}
c2s_direct_tls_ports = {{ {self.tls_port or ""} }}
http_ports = {{ }}; https_ports = {{ }}
admin_socket = "{d}/prosody.sock"
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "register"; "offline";
                    "presence"; "message"; "iq"; "admin_shell"; {'"tls"; ' if self.tls else ''}}}
modules_disabled = {{ "s2s"; {'' if self.tls else '"tls"; '}"dialback"; "s2s_auth_certs"; "s2s_bidi" }}
authentication = "internal_hashed"; storage = "internal"
allow_registration = true; min_seconds_between_registrations = 0
c2s_require_encryption = false; allow_unencrypted_plain_auth = true
{self.extra_config}
"""
        if self.tls:
            text += (f'ssl = {{ certificate = "{self.cert_path}"; key = "{self.key_path}" }}\n')
        for h in self.hosts:
            text += f'VirtualHost "{h}"\n'
        with open(self.config_path, "w") as f:
            f.write(text)
        os.chmod(self.config_path, 0o644)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10.0):
        self.proc = spawn(["prosody", "-F", "--config", self.config_path], self.out_path,
                          name="prosody", user="prosody", cwd=self.dir)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=10.0):
        """Ready means: it answers a stream header with <stream:features>."""
        def ready():
            if not self.proc.alive():
                raise HarnessError(f"prosody[{self.pid}] exited ({self.proc.returncode}) "
                                   f"before it was ready:\n{self.log_tail()}")
            f = xmpp_features(self.port, to=self.domain, timeout=0.5)
            return f if f and "mechanisms" in f else None
        try:
            wait_until(ready, timeout, f"prosody on 127.0.0.1:{self.port}", interval=0.03)
        except HarnessError as e:
            if "exited" in str(e):
                raise
            raise HarnessError(f"{e}\n{self.log_tail()}") from None

    def stop(self, grace=3.0):
        return self.proc.stop(grace) if self.proc else None

    def kill9(self):
        return self.proc.kill9()

    def sigstop(self):
        self.proc.sigstop()

    def sigcont(self):
        self.proc.sigcont()

    def restart(self, timeout=10.0):
        """Stop, then start again on the same port and the same data dir."""
        self.stop()
        return self.start(timeout)

    def prosodyctl(self, *args, timeout=15.0, check=True):
        # Run as prosody: as root it would switch itself, but files it creates
        # must never end up owned by root in the spool.
        r = subprocess.run(["setpriv", "--reuid", "prosody", "--regid", "prosody",
                            "--clear-groups", "--", "prosodyctl", "--config",
                            self.config_path] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, cwd=self.dir)
        if check and r.returncode != 0:
            raise HarnessError(f"prosodyctl {' '.join(args[:2])} failed ({r.returncode}):\n"
                               f"{r.stdout}{r.stderr}")
        return r

    def register(self, user, password, host=None):
        host = host or self.domain
        self.prosodyctl("register", user, host, password)
        acct = os.path.join(self.data_dir, host.replace(".", "%2e"), "accounts",
                            user + ".dat")
        if not os.path.exists(acct):
            raise HarnessError(f"prosodyctl register {user}@{host}: {acct} not written")
        return f"{user}@{host}"

    def log_text(self):
        return read_text(self.log_path) + read_text(self.out_path)

    def log_tail(self, lines=30):
        return (f"--- {self.log_path}\n{tail(read_text(self.log_path), lines)}\n"
                f"--- {self.out_path}\n{tail(read_text(self.out_path), lines)}")

    def cleanup(self):
        self.stop()
        remove_dir(self.dir)


# ---------------------------------------------------------------- MariaDB

_mariadb_template = None


class MariaDB:
    """A private mariadbd on 127.0.0.1 with one database and one user."""

    def __init__(self, db="jabber_ha", user="jha", password=None):
        self.dir = make_dir("mariadb", owner="mysql")
        self.datadir = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.db, self.user = db, user
        self.password = password or "pw-" + secrets.token_hex(8)
        self.out_path = os.path.join(self.dir, "mariadbd.out")
        self.proc = None
        # Small InnoDB files: the default log file alone is 100 MB.
        self.server_opts = ["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M",
                            "--skip-log-bin", "--skip-name-resolve", "--max-connections=200"]

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def install(self):
        """A fresh datadir: a copy of one mariadb-install-db run per session."""
        global _mariadb_template
        if _mariadb_template is None:
            tdir = make_dir("mariadb-template", owner="mysql")
            tdata = os.path.join(tdir, "data")
            os.mkdir(tdata, 0o750)
            chown(tdata, "mysql")
            r = subprocess.run(["setpriv", "--reuid", "mysql", "--regid", "mysql",
                                "--clear-groups", "--", "mariadb-install-db", "--no-defaults",
                                "--datadir=" + tdata,
                                "--auth-root-authentication-method=normal",
                                "--skip-test-db", "--tmpdir=" + tdir]
                               + self.server_opts,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=60, cwd=tdir)
            if r.returncode != 0:
                raise HarnessError(f"mariadb-install-db failed ({r.returncode}):\n"
                                   f"{tail(r.stdout + r.stderr)}")
            _mariadb_template = tdata
        r = subprocess.run(["cp", "-a", _mariadb_template, self.datadir],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise HarnessError(f"copying the MariaDB datadir failed: {r.stderr}")

    def start(self, timeout=20.0):
        if not os.path.isdir(self.datadir):
            self.install()
        # Its own tmpdir: $TMPDIR may not be writable by mysql.
        self.proc = spawn(["mariadbd", "--no-defaults", "--datadir=" + self.datadir,
                           "--tmpdir=" + self.dir,
                           "--socket=" + self.socket, "--port=%d" % self.port,
                           "--bind-address=127.0.0.1", "--skip-networking=0",
                           "--pid-file=" + os.path.join(self.dir, "mariadbd.pid"),
                           "--log-error=" + os.path.join(self.dir, "error.log")]
                          + self.server_opts,
                          self.out_path, name="mariadbd", user="mysql", cwd=self.dir)
        self.wait_ready(timeout)
        self.root_sql(f"CREATE DATABASE IF NOT EXISTS `{self.db}` CHARACTER SET utf8mb4;\n"
                      + "".join(f"CREATE USER IF NOT EXISTS '{self.user}'@'{h}' "
                                f"IDENTIFIED BY '{self.password}';\n"
                                f"GRANT ALL ON `{self.db}`.* TO '{self.user}'@'{h}';\n"
                                for h in ("127.0.0.1", "localhost")))
        return self

    def wait_ready(self, timeout):
        """Ready means: a real query answers over the socket."""
        def ready():
            if not self.proc.alive():
                raise HarnessError(f"mariadbd[{self.pid}] exited ({self.proc.returncode}):\n"
                                   f"{self.log_tail()}")
            r = self._client(["--socket=" + self.socket, "-uroot"], "SELECT 1", None)
            return r.returncode == 0 and r.stdout.strip() == "1"
        try:
            wait_until(ready, timeout, f"mariadbd on {self.socket}", interval=0.05)
        except HarnessError as e:
            if "exited" in str(e):
                raise
            raise HarnessError(f"{e}\n{self.log_tail()}") from None

    def _client(self, conn, sql, password, db=None, timeout=30):
        env = dict(os.environ)
        env.pop("MYSQL_PWD", None)
        if password:
            env["MYSQL_PWD"] = password
        argv = ["mariadb", "--no-defaults", "--batch", "--skip-column-names",
                "--default-character-set=utf8mb4"] + conn
        if db:
            argv.append(db)
        return subprocess.run(argv, input=sql, capture_output=True, text=True, env=env,
                              timeout=timeout)

    def root_sql(self, sql):
        r = self._client(["--socket=" + self.socket, "-uroot"], sql, None)
        if r.returncode != 0:
            raise HarnessError(f"mariadb (root) failed: {r.stderr.strip()}\nSQL: {sql}")
        return r.stdout

    def query(self, sql):
        """Run SQL as the test user over TCP; rows as lists of strings."""
        r = self._client(["--protocol=TCP", "-h", self.host, "-P", str(self.port),
                          "-u", self.user], sql, self.password, db=self.db)
        if r.returncode != 0:
            raise HarnessError(f"mariadb query failed: {r.stderr.strip()}\nSQL: {sql}")
        return [line.split("\t") for line in r.stdout.splitlines()]

    def stop(self, grace=10.0):
        return self.proc.stop(grace) if self.proc else None

    def log_tail(self, lines=30):
        err = os.path.join(self.dir, "error.log")
        return (f"--- {err}\n{tail(read_text(err), lines)}\n"
                f"--- {self.out_path}\n{tail(read_text(self.out_path), lines)}")

    def cleanup(self):
        self.stop()
        remove_dir(self.dir)


# ---------------------------------------------------------------- HAProxy

def haproxy_command(sock, cmd, quiet=False, timeout=2.0):
    """One command on haproxy's stats socket SOCK; its whole answer (None when
    QUIET and the socket cannot be reached)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock)
            s.sendall(cmd.encode() + b"\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.decode("utf-8", "replace")
    except OSError:
        if quiet:
            return None
        raise


def haproxy_server_stats(sock, backends):
    """{(backend, server): row of `show stat`} for the servers of BACKENDS."""
    text = haproxy_command(sock, "show stat")
    head = text.splitlines()[0].lstrip("# ").split(",")
    out = {}
    for line in text.splitlines()[1:]:
        row = dict(zip(head, line.split(",")))
        if row.get("pxname") in backends and row.get("svname") not in (
                "BACKEND", "FRONTEND", None):
            out[(row["pxname"], row["svname"])] = row
    return out


class HAProxy:
    """haproxy -db in TCP mode: one frontend on a free port, BACKENDS behind it.

    BACKENDS: list of (name, port) on 127.0.0.1.  XMPP_CHECK: the field notes'
    stream-features tcp-check (inter/fall/rise as given).  MAXCONN: its global
    maxconn (haproxy sizes its open-file limit from it: about 2 fds a client).
    NBTHREAD: its threads (None: haproxy's default, one per CPU).
    """

    def __init__(self, backends, xmpp_check=False, check_domain=XMPP_DOMAIN,
                 inter="250ms", fall=2, rise=2, port=None, balance="roundrobin",
                 maxconn=4096, nbthread=None):
        self.backends = list(backends)
        self.maxconn = maxconn
        self.nbthread = nbthread
        self.xmpp_check = xmpp_check
        self.check_domain = check_domain
        self.inter, self.fall, self.rise = inter, fall, rise
        self.balance = balance
        self.port = port or free_port()
        self.dir = make_dir("haproxy")
        self.config_path = os.path.join(self.dir, "haproxy.cfg")
        self.stats_socket = os.path.join(self.dir, "admin.sock")
        self.log_path = os.path.join(self.dir, "haproxy.log")
        self.proc = None
        self.write_config()

    def write_config(self):
        lines = [
            "# written by tests/system/harness.py",
            "global",
            "    log stderr format raw local0 info",
            f"    stats socket {self.stats_socket} mode 600 level admin",
            f"    maxconn {self.maxconn}",
        ] + ([f"    nbthread {self.nbthread}"] if self.nbthread else []) + [
            "defaults",
            "    mode tcp",
            "    log global",
            "    option tcplog",
            "    timeout connect 2s",
            "    timeout client 1h",
            "    timeout server 1h",
            "frontend fe",
            f"    bind 127.0.0.1:{self.port}",
            "    default_backend be",
            "backend be",
            f"    balance {self.balance}",
        ]
        check = ""
        if self.xmpp_check:
            hdr = stream_header(self.check_domain).replace('"', '\\"')
            lines += ["    option tcp-check",
                      f'    tcp-check send "{hdr}"',
                      "    tcp-check expect string stream:features"]
            check = f" check inter {self.inter} fall {self.fall} rise {self.rise}"
        for name, port in self.backends:
            lines.append(f"    server {name} 127.0.0.1:{port}{check}")
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10.0, wait_up=True):
        r = subprocess.run(["haproxy", "-c", "-q", "-f", self.config_path],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise HarnessError(f"haproxy -c refused {self.config_path}:\n{r.stdout}{r.stderr}")
        self.proc = spawn(["haproxy", "-db", "-f", self.config_path], self.log_path,
                          name="haproxy", cwd=self.dir)
        # Ready means: its own stats socket answers with our pid.
        def ready():
            if not self.proc.alive():
                raise HarnessError(f"haproxy[{self.pid}] exited ({self.proc.returncode}):\n"
                                   f"{tail(read_text(self.log_path))}")
            info = self.command("show info", quiet=True)
            return info and re.search(rf"^Pid: {self.pid}$", info, re.M)
        wait_until(ready, timeout, f"haproxy stats socket {self.stats_socket}")
        if wait_up and self.xmpp_check:
            self.wait_state({name: "UP" for name, _ in self.backends}, timeout)
            self.wait_relay(timeout)
        return self

    def wait_relay(self, timeout=10.0):
        """Wait until an XMPP stream through the frontend gets <stream:features>."""
        wait_until(lambda: xmpp_features(self.port, to=self.check_domain, timeout=0.5),
                   timeout, f"XMPP through haproxy on 127.0.0.1:{self.port}")

    def command(self, cmd, quiet=False):
        return haproxy_command(self.stats_socket, cmd, quiet)

    def server_stats(self):
        """{server name: {column: value}} from 'show stat' (stot, status, ...)."""
        return {sv: row for (_, sv), row in
                haproxy_server_stats(self.stats_socket, ("be",)).items()}

    def server_states(self):
        """{server name: status} ("UP", "DOWN", "no check", ...)."""
        return {n: row.get("status", "") for n, row in self.server_stats().items()}

    def wait_state(self, want, timeout=10.0):
        """Wait until every server named in WANT has that status (prefix match)."""
        def ok():
            st = self.server_states()
            return all(st.get(n, "").startswith(s) for n, s in want.items()) and st
        return wait_until(ok, timeout, f"haproxy servers {want}", interval=0.05)

    def stop(self, grace=3.0):
        return self.proc.stop(grace) if self.proc else None

    def log_text(self):
        return read_text(self.log_path)

    def cleanup(self):
        self.stop()
        remove_dir(self.dir)


# ---------------------------------------------------------------- our daemons

class HTTPResult:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<HTTP {self.status} {self.body[:200]!r}>"


class Daemon:
    """One of our daemons (build/<name>) run in the foreground with a written config.

    CONFIG is a dict of the daemon's own keys; the common keys (control, http,
    log_level) are filled in unless given.  Set a key to None to leave it out.
    """

    def __init__(self, name, config=None, binary=None):
        self.name = name
        self.binary = str(binary or build_dir() / name)
        self.dir = make_dir(name)
        self.conf_path = os.path.join(self.dir, name + ".yaml")
        self.control = os.path.join(self.dir, name + ".sock")
        self.log_path = os.path.join(self.dir, name + ".log")
        self.http_port = free_port()
        self.proc = None
        self.config = {}
        self.write_config(config or {})

    def common_config(self):
        return {"control": self.control, "http": f"127.0.0.1:{self.http_port}",
                "log_level": "debug"}

    def write_config(self, config=None, text=None):
        """Write the config file (from CONFIG merged over the common keys, or TEXT)."""
        if text is None:
            merged = self.common_config()
            merged.update(config if config is not None else self.config)
            self.config = {k: v for k, v in merged.items() if v is not None}
            text = to_yaml(self.config)
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.conf_path)
        self.config_text = text
        return text

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def env(self):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        return env

    def start(self, timeout=10.0, wait_ready=True):
        if not os.access(self.binary, os.X_OK):
            raise HarnessError(f"{self.binary} is not built")
        # A restart appends to the same log: only this run's ready line counts.
        self.start_mark = self.log_mark()
        self.proc = spawn([self.binary, "run", "-c", self.conf_path], self.log_path,
                          name=self.name, env=self.env(), cwd=self.dir)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=10.0):
        return self.wait_log(r": ready: ", timeout, since=getattr(self, "start_mark", 0),
                             what=f"{self.name}'s ready line")

    def wait_log(self, regex, timeout=10.0, since=0, what=None):
        return wait_log(self.log_path, regex, timeout, since=since, proc=self.proc,
                        what=what)

    def log_mark(self):
        """An offset for wait_log(since=...): only lines logged after now count."""
        return file_size(self.log_path)

    def log_text(self):
        return read_text(self.log_path)

    def cli(self, *args, conf=None, timeout=10.0):
        """BIN ARGS[0] -c CONF ARGS[1:]: the CompletedProcess (text)."""
        argv = [self.binary, args[0], "-c", conf or self.conf_path] + list(args[1:])
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, env=self.env(), cwd=self.dir)

    def status(self):
        r = self.cli("status", "--json")
        if r.returncode != 0:
            raise HarnessError(f"{self.name} status exited {r.returncode}:\n"
                               f"{r.stdout}{r.stderr}")
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise HarnessError(f"{self.name} status --json printed no JSON ({e}):\n"
                               f"{r.stdout!r}") from None

    def check_config(self, conf=None):
        return self.cli("check-config", conf=conf)

    def http_get(self, path, timeout=5.0):
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return HTTPResult(r.status, {k.lower(): v for k, v in r.getheaders()},
                              r.read().decode("utf-8", "replace"))
        finally:
            c.close()

    def reload(self):
        self.proc.signal(signal.SIGHUP)

    def stop(self, grace=5.0):
        return self.proc.stop(grace) if self.proc else None

    def cleanup(self):
        self.stop()
        remove_dir(self.dir)
